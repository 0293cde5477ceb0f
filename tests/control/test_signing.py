"""signing.py against the SDKs' own signing code, for any parameters (no server).

The SDKs are the specification: for arbitrary names and values, what
aliyun-python-sdk-core and alibabacloud-tea-openapi sign must verify, and the
string to sign must be the one they computed (the older SDK compares it).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from alibabacloud_tea_openapi.utils import Utils
from aliyunsdkcore.auth.composer import rpc_signature_composer
from hypothesis import given, settings
from hypothesis import strategies as st

from vodedge.config.keys import AccessKey
from vodedge.control.calls import COMMON_PARAMETERS
from vodedge.control.errors import ApiError
from vodedge.control.signing import SignedRequest, v1_string_to_sign, verify

KEY = AccessKey("unit-key", "unit-secret-0123456789abcdef")
NOW = time.time()
STAMP = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW))
names = st.text(
    st.characters(whitelist_categories=("Lu", "Ll", "Nd"), max_codepoint=127), min_size=1
).filter(lambda n: n not in COMMON_PARAMETERS)
values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
params_strategy = st.dictionaries(names, values, max_size=8)


def lookup(key_id: str) -> AccessKey | None:
    return KEY if key_id == KEY.id else None


def v1_request(method: str, query: dict[str, str], form: dict[str, str]) -> SignedRequest:
    """A request the older SDK signed: envelope added, signature in the query."""
    envelope = {
        "Action": "DescribeUserDomains",
        "Version": "2018-05-10",
        "Format": "JSON",
        "AccessKeyId": KEY.id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureType": "",
        "SignatureVersion": "1.0",
        "SignatureNonce": str(uuid.uuid4()),
        "Timestamp": STAMP,
    }
    signed_query = {**query, **envelope}
    sts = getattr(rpc_signature_composer, "__compose_string_to_sign")(
        method, {**signed_query, **form}
    )
    signature = getattr(rpc_signature_composer, "__get_signature")(sts, KEY.secret)
    signed_query["Signature"] = signature
    return SignedRequest(method, "/", signed_query, form, {}, urlencode(form).encode())


@settings(max_examples=100, deadline=None)
@given(params_strategy, params_strategy, st.sampled_from(["GET", "POST"]))
def test_v1_verifies_what_the_older_sdk_signs(
    query: dict[str, str], form: dict[str, str], method: str
) -> None:
    form = {k: v for k, v in form.items() if k not in query}
    request = v1_request(method, query, form)
    verified = verify(request, lookup, NOW)
    assert verified.key == KEY
    assert verified.params["Signature"] == request.query["Signature"]
    # The string to sign is the SDK's, character for character.
    expected = getattr(rpc_signature_composer, "__compose_string_to_sign")(
        method, {k: v for k, v in {**request.query, **form}.items() if k != "Signature"}
    )
    assert v1_string_to_sign(method, {**request.query, **form}) == expected


def acs3_request(
    query: dict[str, str], form: dict[str, str], extra: dict[str, str]
) -> SignedRequest:
    """A request the current SDK signed, headers as it sets them (plus `extra`)."""
    body = urlencode(form).encode() if form else b""
    payload = hashlib.sha256(body).hexdigest()
    headers = {
        "host": "127.0.0.1:9090",
        "x-acs-version": "2018-05-10",
        "x-acs-action": "DescribeUserDomains",
        "user-agent": "AlibabaCloud (Linux) Python/3.11 Core/0.4",
        "x-acs-date": STAMP,
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "accept": "application/json",
        "x-acs-content-sha256": payload,
        **extra,
    }
    if form:
        headers["content-type"] = "application/x-www-form-urlencoded"
    signed = SimpleNamespace(pathname="/", method="POST", query=query, headers=headers)
    authorization = Utils.get_authorization(signed, "ACS3-HMAC-SHA256", payload, KEY.id, KEY.secret)
    received = {k: [v] for k, v in headers.items()}
    received["authorization"] = [authorization]
    return SignedRequest("POST", "/", query, form, received, body)


header_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)


@settings(max_examples=100, deadline=None)
@given(params_strategy, params_strategy, st.dictionaries(st.just("x-acs-extra"), header_values))
def test_acs3_verifies_what_the_current_sdk_signs(
    query: dict[str, str], form: dict[str, str], extra: dict[str, str]
) -> None:
    verified = verify(acs3_request(query, form, extra), lookup, NOW)
    assert verified.key == KEY and verified.action == "DescribeUserDomains"
    assert dict(verified.params) == {**query, **form}


@pytest.mark.parametrize("field", ["query", "form", "header"])
def test_acs3_notices_any_change(field: str) -> None:
    request = acs3_request({"A": "1"}, {"B": "2"}, {})
    if field == "query":
        request = SignedRequest(
            "POST", "/", {"A": "2"}, request.form, request.headers, request.body
        )
    elif field == "form":
        request = SignedRequest("POST", "/", request.query, {"B": "3"}, request.headers, b"B=3")
    else:
        headers = {**request.headers, "x-acs-version": ["2014-11-11"]}
        request = SignedRequest("POST", "/", request.query, request.form, headers, request.body)
    with pytest.raises(ApiError) as caught:
        verify(request, lookup, NOW)
    assert caught.value.code == "SignatureDoesNotMatch"
    assert "\n" not in caught.value.message
