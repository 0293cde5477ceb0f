"""The seeds' five steps in headless chromium, and what the console must refuse.

A real node (the control tests' keys, one file domain whose origin holds talk.mp4),
one chromium for the module; every page visited is saved as a screenshot.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from api_node import FULL, READ_ONLY, ApiNode, start_node
from browser import Browser
from edge_harness import http_request
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.xdist_group("console")

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
DOMAIN = "preloaded.example.com"


@dataclass
class Console:
    node: ApiNode

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.node.port}"

    def get(self, query: str) -> tuple[int, str, bytes]:
        """(status, Content-Type, body) of talk.mp4 on the domain, from the edge."""
        reply = http_request(self.node.server.port, DOMAIN, "/talk.mp4" + query)
        return reply.status, reply.header("Content-Type") or "", reply.body

    def post(self, path: str, form: dict[str, str], cookie: str, csrf: str | None) -> Any:
        """A console request made by hand (a replay): its status and JSON answer."""
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"vodedge_console={cookie}",
        }
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf
        connection = HTTPConnection("127.0.0.1", self.node.port, timeout=10)
        try:
            connection.request("POST", path, urlencode(form), headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def split_state(self) -> str:
        """ali_video_split's enable as the API describes it ("" when not set)."""
        old = self.node.old_client()
        from aliyunsdkcore.request import CommonRequest

        request = CommonRequest(
            domain=None, version="2018-05-10", action_name="DescribeCdnDomainConfigs"
        )
        request.add_query_param("DomainName", DOMAIN)
        request.add_query_param("FunctionNames", "ali_video_split")
        configs = old.call(request)["DomainConfigs"]["DomainConfig"]
        return next((a["ArgValue"] for c in configs for a in c["FunctionArgs"]["FunctionArg"]
                     if a["ArgName"] == "enable"), "")  # fmt: skip


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    work = tmp_path_factory.mktemp("console-node")
    (work / "origin").mkdir()
    shutil.copyfile(SAMPLES / "talk.mp4", work / "origin" / "talk.mp4")
    server = start_node(work)
    try:
        yield Console(ApiNode(server))
    finally:
        server.stop()


def split_form(enable: str) -> dict[str, str]:
    """The form the Audio Extraction switch sends."""
    functions = [{"functionName": "ali_video_split",
                  "functionArgs": [{"argName": "enable", "argValue": enable}]}]  # fmt: skip
    return {
        "Action": "BatchSetCdnDomainConfig",
        "DomainNames": DOMAIN,
        "Functions": json.dumps(functions),
    }


UNLABELLED = """
return [...document.querySelectorAll("input, select, textarea, button")]
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                 && !(e.tagName === "BUTTON" && e.textContent.trim()))
  .map((e) => e.outerHTML);
"""


def assert_labelled(browser: Browser) -> None:
    """Every control of the page has a name a screen reader can say."""
    assert browser.driver.execute_script(UNLABELLED) == []


def open_video(browser: Browser) -> None:
    """Domain Names, Manage (on the domain's row), Video: as an operator clicks."""
    browser.by_text("a", "Domain Names").click()
    row = browser.wait(By.XPATH, f"//tr[th[normalize-space(.)='{DOMAIN}']]")
    browser.screenshot("domain-names")
    row.find_element(By.XPATH, ".//a[normalize-space(.)='Manage']").click()
    browser.by_text("a", "Video").click()
    browser.by_text("h2", "Video")
    browser.by_text("h3", "Audio Extraction")
    assert_labelled(browser)


def test_a_wrong_key_is_refused(browser: Browser, console: Console) -> None:
    browser.open_console(console.base)
    browser.screenshot("log-on")
    browser.type_into(browser.labelled("AccessKey ID"), FULL.id)
    browser.type_into(browser.labelled("AccessKey Secret"), FULL.secret + "x")
    browser.by_text("button", "Log on").click()
    error = browser.wait_text(By.ID, "logon-error", "InvalidAccessKey")
    browser.screenshot("log-on-refused")
    assert "not valid" in error.text
    assert browser.driver.get_cookie("vodedge_console") is None
    browser.by_text("h1", "Log on")


def test_the_seeds_procedure_turns_audio_extraction_on_and_off(
    browser: Browser, console: Console
) -> None:
    whole = (SAMPLES / "talk.mp4").read_bytes()
    assert console.get("?ali_audio_only=1")[2] == whole  # off: the parameter changes nothing
    browser.log_on(console.base, FULL.id, FULL.secret)
    assert FULL.secret not in str(browser.driver.get_cookies())
    stored = browser.driver.execute_script(
        "return JSON.stringify([localStorage, sessionStorage, document.cookie])"
    )
    assert FULL.secret not in stored
    open_video(browser)
    switch = browser.labelled("Audio Extraction")
    assert switch.get_attribute("role") == "switch" and not switch.is_selected()
    switch.click()
    browser.wait_text(By.ID, "card-ali_video_split", "Saved.")
    saved = time.time()  # after the answer: the browser shows "Saved." once it has it
    browser.screenshot("video-audio-extraction-on")

    def audio_only() -> bool:
        status, content_type, body = console.get("?ali_audio_only=1")
        return status == 200 and content_type.startswith("audio/") and len(body) < len(whole)

    # Within a second on every worker, by the node's clock (see changed_within).
    console.node.server.changed_within(
        DOMAIN,
        saved,
        audio_only,
        lambda line: (line["status"], line["function"]) == (200, "audio_only"),
    )
    assert console.split_state() == "on"

    # Off from the keyboard this time: the switch is a focusable control Space flips.
    browser.labelled("Audio Extraction").send_keys(Keys.SPACE)
    browser.wait_text(By.ID, "card-ali_video_split", "Saved.")
    console.node.server.changed_within(
        DOMAIN,
        time.time(),
        lambda: console.get("?ali_audio_only=1")[2] == whole,
        lambda line: (line["status"], line["function"]) == (200, "plain"),
    )
    assert console.get("?ali_audio_only=1")[1] == "video/mp4"
    browser.screenshot("video-audio-extraction-off")


def test_a_bad_preview_parameter_shows_the_api_error_beside_its_field(
    browser: Browser, console: Console
) -> None:
    from aliyunsdkcore.acs_exception.exceptions import ServerException
    from aliyunsdkcore.request import CommonRequest

    browser.log_on(console.base, FULL.id, FULL.secret)
    open_video(browser)
    field = browser.labelled("Preview parameter")
    browser.type_into(field, "my preview")
    browser.labelled("Audio/video Preview").click()
    error_id = str(field.get_attribute("aria-describedby")).split()[0]
    shown = browser.wait_text(By.ID, error_id, "ali_video_preview_argument").text
    browser.screenshot("video-preview-error")
    assert field.get_attribute("aria-invalid") == "true"
    assert not browser.labelled("Audio/video Preview").is_selected()
    # The very error the API answers an SDK for the same function.
    request = CommonRequest(
        domain=None, version="2018-05-10", action_name="BatchSetCdnDomainConfig"
    )
    request.add_query_param("DomainNames", DOMAIN)
    functions = [{"functionName": "ali_video_preview", "functionArgs": [
        {"argName": "enable", "argValue": "on"},
        {"argName": "ali_video_preview_argument", "argValue": "my preview"}]}]  # fmt: skip
    request.add_query_param("Functions", json.dumps(functions))
    with pytest.raises(ServerException) as raised:
        console.node.old_client().call(request)
    assert shown == f"{raised.value.get_error_msg()} ({raised.value.get_error_code()})"


def test_a_request_without_the_csrf_token_is_refused(browser: Browser, console: Console) -> None:
    browser.log_on(console.base, FULL.id, FULL.secret)
    cookie, token = browser.session_cookie(), browser.csrf_token()
    status, answer = console.post("/console/api/call", split_form("on"), cookie, None)
    assert (status, answer["Code"]) == (403, "Console.CsrfTokenInvalid")
    status, answer = console.post("/console/api/call", split_form("on"), cookie, "x" + token)
    assert (status, answer["Code"]) == (403, "Console.CsrfTokenInvalid")
    assert console.split_state() in ("", "off")
    # The same request with its token is the switch's own: it works.
    status, answer = console.post("/console/api/call", split_form("on"), cookie, token)
    assert status == 200, answer
    assert console.split_state() == "on"
    status, answer = console.post("/console/api/call", split_form("off"), cookie, token)
    assert status == 200, answer


def test_a_read_only_key_cannot_flip_a_switch(browser: Browser, console: Console) -> None:
    browser.log_on(console.base, READ_ONLY.id, READ_ONLY.secret)
    open_video(browser)
    switch = browser.labelled("Audio Extraction")
    browser.screenshot("video-read-only")
    assert not switch.is_enabled()
    assert "read-only" in browser.driver.find_element(By.TAG_NAME, "main").text
    # Replayed by hand with the session's cookie and token: the action refuses it.
    cookie, token = browser.session_cookie(), browser.csrf_token()
    status, answer = console.post("/console/api/call", split_form("on"), cookie, token)
    assert (status, answer["Code"]) == (403, "Forbidden.RAM")
    assert console.split_state() in ("", "off")
    status, answer = console.post(
        "/console/api/call", {"Action": "DescribeUserDomains"}, cookie, token
    )
    assert status == 200 and answer["TotalCount"] >= 1


def test_log_off_ends_the_session(browser: Browser, console: Console) -> None:
    browser.log_on(console.base, FULL.id, FULL.secret)
    cookie, token = browser.session_cookie(), browser.csrf_token()
    browser.by_text("button", "Log off").click()
    browser.by_text("h1", "Log on")
    status, answer = console.post("/console/api/call", split_form("on"), cookie, token)
    assert (status, answer["Code"]) == (401, "Console.NotLoggedOn")


def row_of(browser: Browser, name: str) -> WebElement:
    """The Domain Names row of `name`."""
    return browser.wait(By.XPATH, f"//tr[th[normalize-space(.)='{name}']]")


def test_domains_are_added_stopped_started_and_deleted(browser: Browser, console: Console) -> None:
    name = "added.example.com"
    browser.log_on(console.base, FULL.id, FULL.secret)
    browser.type_into(browser.labelled("Domain Name"), "not a domain")
    browser.type_into(browser.labelled("Origin"), "127.0.0.1")
    browser.by_text("button", "Add Domain").click()
    shown = browser.wait_text(By.ID, "error-add-domain-name", "DomainName").text
    browser.screenshot("domain-names-add-error")
    assert "Malformed" in shown
    browser.type_into(browser.labelled("Domain Name"), name)
    browser.by_text("button", "Add Domain").click()
    row = row_of(browser, name)
    assert "online" in row.text and "127.0.0.1:80 (ipaddr)" in row.text
    # The CNAME column: where the node serves (its client listener here).
    assert f"127.0.0.1:{console.node.server.port}" in row.text
    browser.screenshot("domain-names-added")
    assert_labelled(browser)

    row.find_element(By.XPATH, ".//button[normalize-space(.)='Stop']").click()
    browser.wait_text(By.XPATH, f"//tr[th[normalize-space(.)='{name}']]", "offline")
    row_of(browser, name).find_element(By.XPATH, ".//button[normalize-space(.)='Start']").click()
    browser.wait_text(By.XPATH, f"//tr[th[normalize-space(.)='{name}']]", "online")

    row_of(browser, name).find_element(By.XPATH, ".//button[normalize-space(.)='Delete']").click()
    browser.screenshot("domain-names-delete-confirm")
    row_of(browser, name).find_element(By.XPATH, ".//button[normalize-space(.)='Cancel']").click()
    row_of(browser, name).find_element(By.XPATH, ".//button[normalize-space(.)='Delete']").click()
    confirm = ".//button[normalize-space(.)='Confirm Delete']"
    row_of(browser, name).find_element(By.XPATH, confirm).click()
    WebDriverWait(browser.driver, 10).until(
        lambda d: not d.find_elements(By.XPATH, f"//tr[th[normalize-space(.)='{name}']]")
    )
    row_of(browser, DOMAIN)


def test_refresh_and_prefetch_tasks_reach_complete(browser: Browser, console: Console) -> None:
    browser.log_on(console.base, FULL.id, FULL.secret)
    browser.by_text("a", "Refresh and Prefetch").click()
    urls = browser.labelled("URLs")
    browser.type_into(urls, f"http://{DOMAIN}/a talk.mp4")
    browser.by_text("button", "Submit Refresh").click()
    browser.wait_text(By.ID, "error-object-path", "ObjectPath")
    assert urls.get_attribute("aria-invalid") == "true"
    browser.type_into(urls, "http://elsewhere.example.org/talk.mp4")
    browser.by_text("button", "Submit Refresh").click()
    browser.wait_text(By.ID, "error-object-path", "InvalidDomain.NotFound")
    browser.type_into(urls, f"http://{DOMAIN}/talk.mp4")
    browser.by_text("button", "Submit Refresh").click()
    browser.wait_text(By.XPATH, "//main", "Submitted: task")
    browser.by_text("button", "Submit Prefetch").click()
    for kind in ("file", "preload"):
        WebDriverWait(browser.driver, 10).until(
            lambda d, kind=kind: d.find_elements(
                By.XPATH, f"//tr[td[.='{kind}'] and td[.='Complete']]"
            )
        )
    browser.screenshot("refresh-and-prefetch")
    assert_labelled(browser)


def test_access_control_blocks_an_ip_and_removing_the_rule_serves_it_again(
    browser: Browser, console: Console
) -> None:
    browser.log_on(console.base, FULL.id, FULL.secret)
    browser.by_text("a", "Domain Names").click()
    row_of(browser, DOMAIN).find_element(By.XPATH, ".//a[normalize-space(.)='Manage']").click()
    browser.by_text("a", "Basic").click()
    browser.by_text("h3", "Back-to-origin Host")
    origins = browser.wait(By.XPATH, "//section[@id='card-origins']//li").text
    browser.type_into(browser.driver.find_element(By.ID, "origin-1-content"), "not an origin!")
    browser.by_text("button", "Save Origins").click()
    browser.wait_text(By.ID, "error-origin-1-content", "Sources")
    shown = browser.driver.find_element(By.XPATH, "//section[@id='card-origins']//li").text
    assert shown == origins  # a refused change leaves the origins as they were
    browser.screenshot("domain-basic")
    assert_labelled(browser)
    browser.by_text("a", "Access Control").click()
    browser.by_text("h2", "Access Control")
    assert "null" not in browser.driver.find_element(By.TAG_NAME, "main").text
    field = browser.labelled("Blocked IP addresses")
    card = browser.driver.find_element(By.ID, "card-ip_black_list_set")
    browser.type_into(field, "127.0.0.300")
    card.find_element(By.XPATH, ".//button[.='Save']").click()
    browser.wait_text(By.ID, "error-ip_black_list_set-ip_list", "ip_list")
    assert field.get_attribute("aria-invalid") == "true"
    browser.type_into(field, "127.0.0.1")
    card.find_element(By.XPATH, ".//button[.='Save']").click()
    browser.wait_text(By.ID, "card-ip_black_list_set", "Saved.")
    saved = time.time()
    browser.screenshot("domain-access-control")
    assert_labelled(browser)
    server = console.node.server
    server.changed_within(
        DOMAIN, saved, lambda: console.get("")[0] == 403, lambda line: line["status"] == 403
    )
    card.find_element(By.XPATH, ".//button[.='Remove']").click()
    browser.wait_text(By.ID, "card-ip_black_list_set", "Removed.")
    server.changed_within(
        DOMAIN, time.time(), lambda: console.get("")[0] == 200, lambda line: line["status"] == 200
    )


def test_https_takes_an_uploaded_certificate(browser: Browser, console: Console) -> None:
    from tls_certs import CertificateAuthority, other_key_pem

    pair = CertificateAuthority().issue(DOMAIN)
    browser.log_on(console.base, FULL.id, FULL.secret)
    browser.by_text("a", "Domain Names").click()
    row_of(browser, DOMAIN).find_element(By.XPATH, ".//a[normalize-space(.)='Manage']").click()
    browser.by_text("a", "HTTPS").click()
    browser.by_text("h3", "HTTPS Certificate")
    browser.by_text("h3", "Force HTTPS")
    browser.type_into(browser.labelled("Certificate (PEM)"), pair.cert_pem)
    browser.type_into(browser.labelled("Private Key (PEM)"), other_key_pem())
    browser.by_text("button", "Upload Certificate").click()
    shown = browser.wait(By.XPATH, "//p[@role='alert' and normalize-space(.)!='']").text
    assert "SSLPri" in shown or "key" in shown
    key = browser.labelled("Private Key (PEM)")
    browser.type_into(key, pair.key_pem)
    browser.by_text("button", "Upload Certificate").click()
    browser.wait_text(By.ID, "card-certificate", "Certificate uploaded.")
    assert key.get_attribute("value") == ""  # the key does not stay in the page
    browser.wait_text(By.ID, "card-certificate", DOMAIN)
    browser.screenshot("domain-https")
    assert_labelled(browser)


def test_cache_ttl_rules_are_added_and_removed(browser: Browser, console: Console) -> None:
    browser.log_on(console.base, FULL.id, FULL.secret)
    browser.by_text("a", "Domain Names").click()
    row_of(browser, DOMAIN).find_element(By.XPATH, ".//a[normalize-space(.)='Manage']").click()
    browser.by_text("a", "Cache").click()
    browser.by_text("h3", "TTL Rules")
    browser.type_into(browser.labelled("Directory or file types"), "/videos")
    browser.type_into(browser.labelled("TTL (seconds)"), "-5")
    browser.by_text("button", "Add TTL Rule").click()
    browser.wait_text(By.ID, "error-ttl-seconds", "ttl")
    browser.type_into(browser.labelled("TTL (seconds)"), "3600")
    browser.by_text("button", "Add TTL Rule").click()
    rule = row_of(browser, "/videos")
    assert "3600" in rule.text
    browser.screenshot("domain-cache")
    assert_labelled(browser)
    rule.find_element(By.XPATH, ".//button[.='Remove']").click()
    browser.wait_text(By.ID, "card-ttl", "No TTL rule")


def raw_post(console: Console, path: str, body: bytes, headers: dict[str, str]) -> Any:
    """A POST to the admin listener: (status, headers, JSON or text)."""
    connection = HTTPConnection("127.0.0.1", console.node.port, timeout=10)
    try:
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        data = response.read()
        ctype = response.getheader("Content-Type") or ""
        return response.status, response.headers, json.loads(data) if "json" in ctype else data
    finally:
        connection.close()


def test_the_console_http_surface_answers_hostile_requests_plainly(console: Console) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    logon = urlencode({"AccessKeyId": FULL.id, "AccessKeySecret": FULL.secret}).encode()
    status, headers, answer = raw_post(console, "/console/api/logon", logon, form)
    assert status == 200 and FULL.secret not in json.dumps(answer)
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console/" in cookie
    assert "Max-Age=" in cookie and "Secure" not in cookie  # plain HTTP here
    token = cookie.split(";")[0].split("=", 1)[1]
    csrf = answer["CsrfToken"]
    # Another site's page posting with the browser's cookie and (somehow) the token.
    status, _, answer = raw_post(console, "/console/api/call", b"Action=DescribeUserDomains", {
        **form, "Origin": "http://evil.example", "Cookie": f"vodedge_console={token}",
        "X-CSRF-Token": csrf})  # fmt: skip
    assert (status, answer["Code"]) == (403, "Console.CrossOrigin")
    session = {**form, "Cookie": f"vodedge_console={token}", "X-CSRF-Token": csrf}
    status, _, answer = raw_post(console, "/console/api/call", b"Action=NoSuchThing", session)
    assert (status, answer["Code"]) == (404, "InvalidApi.NotFound")
    status, _, answer = raw_post(console, "/console/api/call", b"\xff\xfe", session)
    assert (status, answer["Code"]) == (400, "InvalidParameter")
    json_body = {**session, "Content-Type": "application/json"}
    status, _, answer = raw_post(console, "/console/api/call", b"{}", json_body)
    assert (status, answer["Code"]) == (400, "InvalidParameter")
    status, _, answer = raw_post(console, "/console/api/call", b"a=1&a=2", session)
    assert (status, answer["Code"]) == (400, "InvalidParameter")
    status, _, answer = raw_post(console, "/console/api/call", b"x" * (2 << 20), session)
    assert (status, answer["Code"]) == (413, "RequestEntityTooLarge")
    status, _, answer = raw_post(console, "/console/api/logon", b"AccessKeyId=nobody", form)
    assert (status, answer["Code"]) == (401, "InvalidAccessKey")
    # Guessing is slowed for every key id together; the right pair still gets in.
    guesses = [
        raw_post(console, "/console/api/logon", f"AccessKeyId=k{i}".encode(), form)[2]["Code"]
        for i in range(40)
    ]
    assert "Throttling.User" in guesses and set(guesses) <= {"InvalidAccessKey", "Throttling.User"}
    assert raw_post(console, "/console/api/logon", logon, form)[0] == 200
    for path in ("/console/static/..%2f..%2fapi.py", "/console/static/index.html"):
        reply = http_request(console.node.port, "127.0.0.1", path)
        assert reply.status == 404, path
    page = http_request(console.node.port, "127.0.0.1", "/console/")
    assert page.status == 200
    assert (page.header("Content-Security-Policy") or "").startswith("default-src 'self'")
    assert b"http://" not in page.body and b"https://" not in page.body
