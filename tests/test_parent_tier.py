"""The parent tier's words: origins of kind vodedge (TOML and the API's Sources), a
node's role and fleet secret, and the signature of an edge's source requests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vodedge.config import ConfigFileError, load_toml
from vodedge.control.domains import origin_of, parse_sources, source_of
from vodedge.control.errors import ApiError
from vodedge.edge.parent_tier import SourceDenied, sign_source, source_cache_control, verify_source

SECRET = "fleet-secret-0123456789"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vodedge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_parent_origin_role_and_secret_from_the_file(tmp_path: Path) -> None:
    node = load_toml(
        write(
            tmp_path,
            f"""
[node]
role = "parent"
fleet_secret = "{SECRET}"

[[domain]]
name = "v.example.com"
origins = [{{ vodedge = "http://10.0.0.9:8080" }}, {{ url = "http://10.0.0.1", priority = 30 }}]
""",
        )
    )
    assert (node.tier.role, node.tier.secret) == ("parent", SECRET)
    assert SECRET not in repr(node)
    parent, backup = node.domains["v.example.com"].origins
    assert (parent.kind, parent.host, parent.port, parent.url) == (
        "vodedge",
        "10.0.0.9",
        8080,
        "http://10.0.0.9:8080",
    )
    assert (backup.kind, backup.priority) == ("http", 30)
    # Into the store and back, as the API keeps it: nothing lost.
    source = source_of(parent)
    assert (source.type, source.content, source.port) == ("vodedge", "10.0.0.9", 8080)
    assert origin_of(source) == parent
    assert load_toml(write(tmp_path, "")).tier.role == "edge"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[node]\nrole = "middle"', "node.role", "must be edge or parent"),
        ('[node]\nfleet_secret = "short"', "node.fleet_secret", "16 to 256"),
        ("[node]\nfleet_secret = 12", "node.fleet_secret", "must be a string"),
        (
            '[[domain]]\nname = "v.example.com"\norigins = [{ vodedge = "http://p:80/x" }]',
            "domain[0].origins[0].vodedge",
            "no path",
        ),
        (
            '[[domain]]\nname = "v.example.com"\n'
            'origins = [{ vodedge = "http://p:80", host = "o.example.com" }]',
            "domain[0].origins[0].host",
            "client's Host",
        ),
        (
            '[[domain]]\nname = "v.example.com"\n'
            'origins = [{ vodedge = "http://p:80", url = "http://o" }]',
            "domain[0].origins[0]",
            "exactly one of url, dir or vodedge",
        ),
    ],
)
def test_bad_tier_settings_are_refused_by_key(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    with pytest.raises(ConfigFileError) as refused:
        load_toml(write(tmp_path, text))
    assert refused.value.key == key and reason in refused.value.reason
    assert "short" not in str(refused.value)  # a secret is never quoted back


def test_the_api_takes_a_parent_as_a_source_of_type_vodedge() -> None:
    sources = parse_sources(
        json.dumps(
            [
                {"type": "vodedge", "content": "parent.internal", "port": 8080},
                {"type": "vodedge", "content": "[::1]", "port": 443, "priority": 25},
            ]
        )
    )
    first, second = (origin_of(source) for source in sources)
    assert (first.kind, first.url) == ("vodedge", "http://parent.internal:8080")
    assert (second.kind, second.url, second.priority) == ("vodedge", "https://[::1]", 25)
    with pytest.raises(ApiError) as refused:
        parse_sources(json.dumps([{"type": "parent", "content": "p.internal"}]))
    assert refused.value.code == "InvalidSourceType.Malformed"
    assert "vodedge" in refused.value.message


def test_a_source_request_verifies_only_as_signed() -> None:
    now = 1_800_000_000.0
    value = sign_source(SECRET, "v.example.com", "/a.mp4?x=1", 1_799_999_990.5, now)
    assert verify_source(SECRET, "v.example.com", "/a.mp4?x=1", value, now + 59).purged_at == (
        1_799_999_990.5
    )
    unpurged = sign_source(SECRET, "v.example.com", "/a", None, now)
    assert verify_source(SECRET, "v.example.com", "/a", unpurged, now).purged_at is None
    refusals = {
        "another secret": (SECRET + "x", "v.example.com", "/a.mp4?x=1", value, now),
        "another host": (SECRET, "w.example.com", "/a.mp4?x=1", value, now),
        "another path": (SECRET, "v.example.com", "/b.mp4?x=1", value, now),
        "another query": (SECRET, "v.example.com", "/a.mp4?x=2", value, now),
        "too old": (SECRET, "v.example.com", "/a.mp4?x=1", value, now + 61),
        "from the future": (SECRET, "v.example.com", "/a.mp4?x=1", value, now - 61),
        "no secret here": (None, "v.example.com", "/a.mp4?x=1", value, now),
        "a changed purge": (
            SECRET,
            "v.example.com",
            "/a.mp4?x=1",
            value.replace("1799999990.5", "1799999999.5"),
            now,
        ),
        "malformed": (SECRET, "v.example.com", "/a.mp4?x=1", "v1 x - y", now),
        "empty": (SECRET, "v.example.com", "/a.mp4?x=1", "", now),
    }
    for why, (secret, host, target, header, when) in refusals.items():
        with pytest.raises(SourceDenied):
            verify_source(secret, host, target, header, when)
            pytest.fail(why)


def test_the_parent_says_how_long_an_edge_may_keep_its_answer() -> None:
    assert source_cache_control(100.0, 700.0, 400.0) == "max-age=300"
    assert source_cache_control(100.0, 700.0, 800.0) == "max-age=0"
    assert source_cache_control(100.0, 100.0, 100.0) == "no-store"
