"""The console's longer forms in chromium: several origins with priorities and weights,
TTL rule options and removed parameters, referer deny and IP allow lists, URL signing
keys; each saves through the API (read back through the SDK) and shows the API's error
beside the field it concerns. A node of its own, so no other test sees these rules."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_node import FULL, READ_ONLY, ApiNode, start_node
from browser import Browser
from edge_harness import http_request, wait_until
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from test_actions_sdk import NewSdk
from test_console import assert_labelled, row_of

pytestmark = pytest.mark.xdist_group("console-forms")
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
DOMAIN = "preloaded.example.com"
MULTI = "multi.example.com"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiNode]:
    work = tmp_path_factory.mktemp("console-forms")
    (work / "origin").mkdir()
    shutil.copyfile(SAMPLES / "talk.mp4", work / "origin" / "talk.mp4")
    server = start_node(work)
    try:
        node = ApiNode(server)
        sources = [{"content": "127.0.0.1", "type": "ipaddr", "port": 80}]
        NewSdk(node)("AddCdnDomain", DomainName=MULTI, CdnType="video", Sources=json.dumps(sources))
        yield node
    finally:
        server.stop()


def _manage(browser: Browser, node: ApiNode, domain: str, page: str) -> None:
    browser.log_on(f"http://127.0.0.1:{node.port}", FULL.id, FULL.secret)
    row_of(browser, domain).find_element(By.XPATH, ".//a[normalize-space(.)='Manage']").click()
    browser.by_text("a", page).click()
    browser.by_text("h2", page)


def _by_id(browser: Browser, element_id: str) -> Any:
    return browser.driver.find_element(By.ID, element_id)


def _configs(node: ApiNode, domain: str, names: str) -> dict[str, dict[str, str]]:
    answer = NewSdk(node)("DescribeCdnDomainConfigs", DomainName=domain, FunctionNames=names)
    return {
        c["FunctionName"]: {a["ArgName"]: a["ArgValue"] for a in c["FunctionArgs"]["FunctionArg"]}
        for c in answer["DomainConfigs"]["DomainConfig"]
    }


def test_basic_takes_several_origins_with_priority_and_weight(
    browser: Browser, node: ApiNode
) -> None:
    _manage(browser, node, MULTI, "Basic")
    browser.by_text("button", "Add Origin").click()
    browser.type_into(_by_id(browser, "origin-2-content"), "origin-b.example.com")
    browser.type_into(_by_id(browser, "origin-2-port"), "8080")
    Select(_by_id(browser, "origin-2-priority")).select_by_visible_text("Backup")
    weight = _by_id(browser, "origin-2-weight")
    browser.type_into(weight, "500")
    browser.by_text("button", "Save Origins").click()
    shown = browser.wait_text(By.ID, "error-origin-2-weight", "weight").text
    assert "InvalidSources.Malformed" in shown and weight.get_attribute("aria-invalid") == "true"
    assert _by_id(browser, "error-origin-1-weight").text == ""
    browser.screenshot("domain-basic-origins-error")
    browser.type_into(_by_id(browser, "origin-2-weight"), "5")
    browser.by_text("button", "Save Origins").click()
    browser.wait_text(By.ID, "card-origins", "Saved.")
    browser.wait_text(By.ID, "card-origins", "origin-b.example.com:8080 (domain, backup, weight 5)")
    browser.screenshot("domain-basic-origins")
    assert_labelled(browser)
    detail = NewSdk(node)("DescribeCdnDomainDetail", DomainName=MULTI)["GetDomainDetailModel"]
    sources = detail["SourceModels"]["SourceModel"]
    assert [(s["Content"], s["Port"], s["Priority"], s["Weight"]) for s in sources] == [
        ("127.0.0.1", 80, "20", "10"),
        ("origin-b.example.com", 8080, "30", "5"),
    ]
    # The first row removed: the backup is all that is left.
    card = _by_id(browser, "card-origins")
    card.find_elements(By.XPATH, ".//fieldset//button[normalize-space(.)='Remove']")[0].click()
    assert _by_id(browser, "origin-2-content").get_attribute("value") == "origin-b.example.com"
    browser.by_text("button", "Save Origins").click()
    browser.wait_text(By.ID, "card-origins", "Saved.")
    detail = NewSdk(node)("DescribeCdnDomainDetail", DomainName=MULTI)["GetDomainDetailModel"]
    assert [s["Content"] for s in detail["SourceModels"]["SourceModel"]] == ["origin-b.example.com"]


def test_basic_keeps_a_parent_origin_a_parent(browser: Browser, node: ApiNode) -> None:
    """Saving the origins of a domain fetched through a parent vodedge keeps that origin
    of type vodedge (by its address alone it would become a direct origin)."""
    name = "tiered.example.com"
    sources = [
        {"content": "10.0.0.9", "type": "vodedge", "port": 8080},
        {"content": "10.0.0.1", "type": "ipaddr", "port": 80, "priority": 30},
    ]
    NewSdk(node)("AddCdnDomain", DomainName=name, CdnType="video", Sources=json.dumps(sources))
    _manage(browser, node, name, "Basic")
    browser.wait_text(By.ID, "card-origins", "10.0.0.9:8080 (vodedge, primary, weight 10)")
    browser.type_into(_by_id(browser, "origin-1-weight"), "20")
    browser.by_text("button", "Save Origins").click()
    browser.wait_text(By.ID, "card-origins", "Saved.")
    detail = NewSdk(node)("DescribeCdnDomainDetail", DomainName=name)["GetDomainDetailModel"]
    saved = detail["SourceModels"]["SourceModel"]
    assert [(s["Type"], s["Content"], s["Weight"]) for s in saved] == [
        ("vodedge", "10.0.0.9", "20"),
        ("ipaddr", "10.0.0.1", "10"),
    ]


def test_cache_rules_take_their_options_and_removed_parameters(
    browser: Browser, node: ApiNode
) -> None:
    _manage(browser, node, MULTI, "Cache")
    browser.type_into(browser.labelled("Directory or file types"), "/hls")
    browser.type_into(browser.labelled("TTL (seconds)"), "600")
    weight = browser.labelled("Weight (1-99, higher wins)")
    browser.type_into(weight, "100")
    browser.labelled("Origin cache headers first").click()
    browser.by_text("button", "Add TTL Rule").click()
    browser.wait_text(By.ID, "error-ttl-weight", "weight")
    assert weight.get_attribute("aria-invalid") == "true"
    browser.type_into(weight, "50")
    browser.by_text("button", "Add TTL Rule").click()
    rule = row_of(browser, "/hls")
    assert "50" in rule.text and "Origin cache headers first" in rule.text
    args = _configs(node, MULTI, "path_based_ttl_set")["path_based_ttl_set"]
    assert (args["weight"], args["swift_origin_cache_high"], args["ttl"]) == ("50", "on", "600")
    card = _by_id(browser, "card-ali_remove_args")
    browser.type_into(browser.labelled("Removed parameters"), "utm_source token")
    card.find_element(By.XPATH, ".//button[.='Save']").click()
    browser.wait_text(By.ID, "card-ali_remove_args", "Saved.")
    removed = _configs(node, MULTI, "ali_remove_args")["ali_remove_args"]
    assert removed["ali_remove_args"] == "utm_source token"
    # Kept and removed parameters exclude each other: the API says so beside the card.
    kept = _by_id(browser, "card-set_hashkey_args")
    browser.type_into(browser.labelled("Kept parameters"), "start")
    kept.find_element(By.XPATH, ".//button[.='Save']").click()
    browser.wait_text(By.ID, "card-set_hashkey_args", "Conflict")
    browser.screenshot("domain-cache-options", whole=True)
    assert_labelled(browser)


def test_access_control_deny_and_allow_lists_and_signing_keys(
    browser: Browser, node: ApiNode
) -> None:
    port = node.server.port

    def status(**headers: str) -> int:
        return http_request(port, DOMAIN, "/talk.mp4", headers=headers).status

    _manage(browser, node, DOMAIN, "Access Control")
    deny = _by_id(browser, "card-referer_black_list_set")
    browser.type_into(browser.labelled("Denied referers"), "evil example")
    deny.find_element(By.XPATH, ".//button[.='Save']").click()
    browser.wait_text(By.ID, "error-referer_black_list_set-refer_domain_deny_list", "Malformed")
    browser.type_into(browser.labelled("Denied referers"), "evil.example")
    deny.find_element(By.XPATH, ".//button[.='Save']").click()
    browser.wait_text(By.ID, "card-referer_black_list_set", "Saved.")
    wait_until(lambda: status(Referer="http://evil.example/p") == 403, 1.0, "the deny list")
    assert status(Referer="http://fine.example/p") == 200
    deny.find_element(By.XPATH, ".//button[.='Remove']").click()
    browser.wait_text(By.ID, "card-referer_black_list_set", "Removed.")
    wait_until(lambda: status(Referer="http://evil.example/p") == 200, 1.0, "deny list removed")

    allow = _by_id(browser, "card-ip_white_list_set")
    browser.type_into(browser.labelled("Allowed IP addresses"), "10.0.0.0/33")
    allow.find_element(By.XPATH, ".//button[.='Save']").click()
    browser.wait_text(By.ID, "error-ip_white_list_set-ip_list", "ip_list")
    browser.type_into(browser.labelled("Allowed IP addresses"), "10.0.0.0/8")
    allow.find_element(By.XPATH, ".//button[.='Save']").click()
    browser.wait_text(By.ID, "card-ip_white_list_set", "Saved.")
    wait_until(lambda: status() == 403, 1.0, "only 10/8 allowed")
    browser.type_into(browser.labelled("Allowed IP addresses"), "10.0.0.0/8, 127.0.0.1")
    allow.find_element(By.XPATH, ".//button[.='Save']").click()
    browser.wait_text(By.ID, "card-ip_white_list_set", "Saved.")
    wait_until(lambda: status() == 200, 1.0, "127.0.0.1 allowed")

    signing = _by_id(browser, "card-aliauth")
    browser.type_into(browser.labelled("Primary key"), "short")
    signing.find_element(By.XPATH, ".//button[.='Save']").click()
    browser.wait_text(By.ID, "error-aliauth-auth_key1", "auth_key1")
    browser.type_into(browser.labelled("Primary key"), "Key1Key1Key1Key1Key1")
    browser.type_into(browser.labelled("Secondary key"), "Key2Key2Key2Key2Key2")
    signing.find_element(By.XPATH, ".//button[.='Save']").click()
    browser.wait_text(By.ID, "card-aliauth", "Saved.")
    args = _configs(node, DOMAIN, "aliauth")["aliauth"]
    assert (args["auth_type"], args["auth_key1"], args["auth_key2"]) == (
        "type_a",
        "Key1Key1Key1Key1Key1",
        "Key2Key2Key2Key2Key2",
    )
    wait_until(lambda: status() == 403, 1.0, "unsigned requests refused")
    browser.screenshot("domain-access-control-lists", whole=True)
    assert_labelled(browser)
    signing.find_element(By.XPATH, ".//button[.='Remove']").click()
    browser.wait_text(By.ID, "card-aliauth", "Removed.")
    wait_until(lambda: status() == 200, 1.0, "served unsigned again")


def test_a_read_only_key_sees_the_forms_but_cannot_use_them(
    browser: Browser, node: ApiNode
) -> None:
    browser.log_on(f"http://127.0.0.1:{node.port}", READ_ONLY.id, READ_ONLY.secret)
    row_of(browser, MULTI).find_element(By.XPATH, ".//a[normalize-space(.)='Manage']").click()
    browser.by_text("a", "Basic").click()
    browser.wait(By.ID, "origin-1-content")
    card = _by_id(browser, "card-origins")
    controls = card.find_elements(By.CSS_SELECTOR, "input, select, button")
    assert controls and not any(c.is_enabled() for c in controls)
    browser.by_text("a", "Cache").click()
    browser.by_text("h3", "Removed Parameters")
    main = browser.driver.find_element(By.TAG_NAME, "main")
    controls = main.find_elements(By.CSS_SELECTOR, "section input, section select, section button")
    assert controls and not any(c.is_enabled() for c in controls)
