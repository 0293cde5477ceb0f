"""Both official SDKs, unchanged but for the endpoint, against the front door.

What the SDKs themselves report: the older one tells a wrong secret from a wrong
signature by comparing the server's string to sign with its own, so
`InvalidAccessKeySecret` proves both sides computed the same string.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alibabacloud_cdn20180510 import models
from alibabacloud_tea_openapi.exceptions import ClientException, ThrottlingException
from aliyunsdkcdn.request.v20180510.AddCdnDomainRequest import AddCdnDomainRequest
from aliyunsdkcdn.request.v20180510.DescribeRefreshQuotaRequest import (
    DescribeRefreshQuotaRequest,
)
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.request import CommonRequest
from api_client import Key
from api_node import FULL, READ_ONLY, SLOW, UNKNOWN, ApiNode, keys_toml, start_node

WRONG = Key(FULL.id, "not-the-right-secret-0123")


def test_the_older_sdk_reports_a_wrong_secret_as_such(api_node: ApiNode) -> None:
    with pytest.raises(ServerException) as caught:
        api_node.old_client(WRONG).call(DescribeRefreshQuotaRequest())
    assert caught.value.get_error_code() == "InvalidAccessKeySecret"
    assert caught.value.get_http_status() == 400


def test_the_older_sdk_reports_a_wrong_secret_on_a_common_request(api_node: ApiNode) -> None:
    request = CommonRequest(version="2018-05-10", action_name="DescribeUserDomains")
    request.set_method("POST")
    request.add_query_param("PageSize", "5")
    request.add_body_params("DomainName", "a b+c~*é.example.com")
    with pytest.raises(ServerException) as caught:
        api_node.old_client(WRONG).call(request)
    # CommonRequest compares its own (unset) string to sign, not its inner request's,
    # so the SDK cannot tell the cases apart here: compare the inner one ourselves.
    assert caught.value.get_error_code() == "SignatureDoesNotMatch"
    server_string = caught.value.get_error_msg().split(":")[1]
    assert server_string == request.request.string_to_sign


def test_the_current_sdk_reports_a_wrong_secret(api_node: ApiNode) -> None:
    with pytest.raises(ClientException) as caught:
        api_node.new_client(WRONG).describe_refresh_quota(models.DescribeRefreshQuotaRequest())
    assert caught.value.code == "SignatureDoesNotMatch"
    assert caught.value.status_code == 400


def test_both_sdks_report_an_unknown_key(api_node: ApiNode) -> None:
    with pytest.raises(ClientException) as new:
        api_node.new_client(UNKNOWN).describe_refresh_quota(models.DescribeRefreshQuotaRequest())
    assert (new.value.code, new.value.status_code) == ("InvalidAccessKeyId.NotFound", 404)
    with pytest.raises(ServerException) as old:
        api_node.old_client(UNKNOWN).call(DescribeRefreshQuotaRequest())
    assert old.value.get_error_code() == "InvalidAccessKeyId.NotFound"


def test_both_sdks_report_a_read_only_key_writing(api_node: ApiNode) -> None:
    with pytest.raises(ClientException) as new:
        api_node.new_client(READ_ONLY).add_cdn_domain(
            models.AddCdnDomainRequest(
                domain_name="ro.example.com",
                cdn_type="video",
                sources='[{"content":"127.0.0.1","type":"ipaddr","port":80}]',
            )
        )
    assert (new.value.code, new.value.status_code) == ("Forbidden.RAM", 403)
    request = AddCdnDomainRequest()
    request.set_DomainName("ro.example.com")
    request.set_CdnType("video")
    request.set_Sources('[{"content":"127.0.0.1","type":"ipaddr","port":80}]')
    with pytest.raises(ServerException) as old:
        api_node.old_client(READ_ONLY).call(request)
    assert (old.value.get_error_code(), old.value.get_http_status()) == ("Forbidden.RAM", 403)


def test_the_current_sdk_sees_throttling_with_a_retry_delay(api_node: ApiNode) -> None:
    client = api_node.new_client(SLOW)
    client.describe_refresh_quota(models.DescribeRefreshQuotaRequest())
    with pytest.raises(ThrottlingException) as caught:
        for _ in range(5):
            client.describe_refresh_quota(models.DescribeRefreshQuotaRequest())
    assert caught.value.code == "Throttling.User"
    assert 0 < caught.value.retry_after <= 1000


# --- calls that pass, through both SDKs --------------------------------------------------------

SOURCES = '[{"content":"127.0.0.1","type":"ipaddr","port":8000}]'


def domain_names(api_node: ApiNode) -> set[str]:
    """The node's domains, as the current SDK lists them."""
    answer = api_node.new_client().describe_user_domains(
        models.DescribeUserDomainsRequest(page_size=500)
    )
    return {d.domain_name for d in answer.body.domains.page_data}


def test_both_sdks_read_the_refresh_quota(api_node: ApiNode) -> None:
    new = api_node.new_client(READ_ONLY).describe_refresh_quota(
        models.DescribeRefreshQuotaRequest()
    )
    assert new.status_code == 200 and new.body.request_id
    assert int(new.body.url_quota) >= int(new.body.url_remain) >= 0
    old = api_node.old_client(READ_ONLY).call(DescribeRefreshQuotaRequest())
    assert old["RequestId"] != new.body.request_id
    assert old["UrlQuota"] == new.body.url_quota


def test_a_domain_added_by_one_sdk_is_seen_and_deleted_by_the_other(api_node: ApiNode) -> None:
    name = "both-sdks.example.com"
    api_node.new_client().add_cdn_domain(
        models.AddCdnDomainRequest(domain_name=name, cdn_type="video", sources=SOURCES)
    )
    listing = CommonRequest(version="2018-05-10", action_name="DescribeUserDomains")
    listing.add_query_param("DomainName", name)
    found = api_node.old_client(READ_ONLY).call(listing)
    assert [d["DomainName"] for d in found["Domains"]["PageData"]] == [name]
    delete = CommonRequest(version="2018-05-10", action_name="DeleteCdnDomain")
    delete.set_method("POST")
    delete.add_query_param("DomainName", name)
    api_node.old_client().call(delete)
    assert name not in domain_names(api_node)


def test_refused_writes_change_nothing(api_node: ApiNode) -> None:
    name = "refused.example.com"
    before = domain_names(api_node)
    request = models.AddCdnDomainRequest(domain_name=name, cdn_type="video", sources=SOURCES)
    for key in (WRONG, UNKNOWN, READ_ONLY):
        with pytest.raises(ClientException):
            api_node.new_client(key).add_cdn_domain(request)
    old_request = AddCdnDomainRequest()
    old_request.set_DomainName(name)
    old_request.set_CdnType("video")
    old_request.set_Sources(SOURCES)
    for key in (WRONG, UNKNOWN, READ_ONLY):
        with pytest.raises(ServerException):
            api_node.old_client(key).call(old_request)
    assert domain_names(api_node) == before


def test_the_current_sdk_in_its_hmac_sha1_mode_works_too(api_node: ApiNode) -> None:
    name = "v2-mode.example.com"
    client = api_node.new_client(signature_algorithm="v2")
    client.add_cdn_domain(
        models.AddCdnDomainRequest(domain_name=name, cdn_type="video", sources=SOURCES)
    )
    answer = client.describe_user_domains(models.DescribeUserDomainsRequest(domain_name=name))
    assert [d.domain_name for d in answer.body.domains.page_data] == [name]
    client.delete_cdn_domain(models.DeleteCdnDomainRequest(domain_name=name))
    with pytest.raises(ClientException) as caught:
        api_node.new_client(WRONG, "v2").describe_refresh_quota(
            models.DescribeRefreshQuotaRequest()
        )
    assert caught.value.code == "SignatureDoesNotMatch"


def test_a_node_configured_with_keys_only_takes_its_domains_from_the_api(tmp_path: Path) -> None:
    server = start_node(tmp_path, "[node]\nworkers = 1\n" + keys_toml())
    try:
        node = ApiNode(server)
        assert domain_names(node) == set()
        node.old_client().call(_add_request("keys-only.example.com"))
        assert domain_names(node) == {"keys-only.example.com"}
        with pytest.raises(ServerException) as caught:
            node.old_client(READ_ONLY).call(_add_request("reader.example.com"))
        assert caught.value.get_error_code() == "Forbidden.RAM"
    finally:
        server.stop()


def _add_request(name: str) -> AddCdnDomainRequest:
    request = AddCdnDomainRequest()
    request.set_DomainName(name)
    request.set_CdnType("video")
    request.set_Sources(SOURCES)
    return request
