"""Access keys: [[access_keys]] in TOML, the environment's pair, and when a node may start."""

from __future__ import annotations

from pathlib import Path

import pytest

from vodedge.config import ConfigError, ConfigFileError, load_toml
from vodedge.config.keys import DEFAULT_RATE, AccessKey
from vodedge.control.keys import (
    ENV_ID,
    ENV_SECRET,
    CurrentKeys,
    KeyRing,
    check_admin_keys,
    is_loopback,
)

DOMAIN = '\n[[domain]]\nname = "a.example.com"\norigins = ["http://127.0.0.1:8000"]\n'
SECRET = "s3cret-s3cret-s3cret"


def load(tmp_path: Path, text: str) -> tuple[AccessKey, ...]:
    path = tmp_path / "vodedge.toml"
    path.write_text(text + DOMAIN)
    return load_toml(path).access_keys


def test_keys_load_with_their_defaults(tmp_path: Path) -> None:
    keys = load(
        tmp_path,
        f'[[access_keys]]\nid = "ops"\nsecret = "{SECRET}"\n'
        f'[[access_keys]]\nid = "viewer.1"\nsecret = "{SECRET}x"\nread_only = true\nrate = 5\n',
    )
    assert keys == (
        AccessKey("ops", SECRET, False, DEFAULT_RATE),
        AccessKey("viewer.1", SECRET + "x", True, 5.0),
    )
    assert SECRET not in repr(keys)


def test_no_keys_is_an_empty_tuple(tmp_path: Path) -> None:
    assert load(tmp_path, "") == ()


def test_a_file_of_keys_and_settings_only_loads(tmp_path: Path) -> None:
    """The domains of such a node all come from the API."""
    path = tmp_path / "keys-only.toml"
    path.write_text(f'[node]\nworkers = 1\n[[access_keys]]\nid = "ops"\nsecret = "{SECRET}"\n')
    node = load_toml(path)
    assert not node.domains and node.default_domain is None
    assert [k.id for k in node.access_keys] == ["ops"]


@pytest.mark.parametrize(
    ("table", "where", "reason"),
    [
        ('secret = "SECRET"', "access_keys[0].id", "missing"),
        ('id = "k"', "access_keys[0].secret", "missing"),
        ('id = "k"\nsecret = 12345678901234567', "access_keys[0].secret", "must be a string"),
        ('id = "k k"\nsecret = "SECRET"', "access_keys[0]", "access key id"),
        ('id = "k"\nsecret = "short"', "access_keys[0]", "16 to 256"),
        ('id = "k"\nsecret = "SECRET with spaces"', "access_keys[0]", "without spaces"),
        ('id = "k"\nsecret = "SECRET"\nread_only = "yes"', "access_keys[0].read_only", "true"),
        ('id = "k"\nsecret = "SECRET"\nrate = 0', "access_keys[0]", "rate"),
        ('id = "k"\nsecret = "SECRET"\nrate = "fast"', "access_keys[0].rate", "number"),
        ('id = "k"\nsecret = "SECRET"\nrole = "admin"', "access_keys[0].role", "not a known key"),
    ],
)
def test_bad_keys_name_the_key_and_never_the_secret(
    tmp_path: Path, table: str, where: str, reason: str
) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load(tmp_path, "[[access_keys]]\n" + table.replace("SECRET", SECRET) + "\n")
    message = str(caught.value)
    assert where in message and reason in message, message
    for leaked in (SECRET, "12345678901234567", "short"):
        assert f"{leaked}'" not in message and f'"{leaked}' not in message, message
    assert "\n" not in message


def test_a_key_id_twice_is_refused(tmp_path: Path) -> None:
    table = f'[[access_keys]]\nid = "k"\nsecret = "{SECRET}"\n'
    with pytest.raises(ConfigFileError, match=r"access_keys\[1\]\.id.*twice"):
        load(tmp_path, table + table)


def test_the_environment_adds_one_full_access_pair() -> None:
    ring = KeyRing.of(
        [AccessKey("file", SECRET, read_only=True)], {ENV_ID: "env", ENV_SECRET: SECRET}
    )
    assert len(ring) == 2
    env = ring.get("env")
    assert env is not None and not env.read_only and env.secret == SECRET
    assert ring.get("nobody") is None


@pytest.mark.parametrize(
    "environ",
    [{ENV_ID: "env"}, {ENV_SECRET: SECRET}, {ENV_ID: "env", ENV_SECRET: "short"}],
)
def test_a_half_or_bad_environment_pair_is_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        KeyRing.of([], environ)
    secret = environ.get(ENV_SECRET)
    assert secret is None or secret not in caught.value.message


def test_the_same_id_with_two_secrets_is_refused() -> None:
    with pytest.raises(ConfigError, match="twice"):
        KeyRing.of([AccessKey("k", SECRET)], {ENV_ID: "k", ENV_SECRET: SECRET + "2"})


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.1", False),
        ("example.com", False),
    ],
)
def test_only_a_loopback_admin_listener_may_run_without_keys(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_admin_keys(host, 9090, KeyRing([]))
    else:
        with pytest.raises(ConfigError, match="not loopback and no access key"):
            check_admin_keys(host, 9090, KeyRing([]))
    check_admin_keys(host, 9090, KeyRing([AccessKey("k", SECRET)]))


def test_the_current_keys_follow_the_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    pairs: list[tuple[AccessKey, ...]] = [(AccessKey("a", SECRET),)]
    keys = CurrentKeys(lambda: pairs[-1], {ENV_ID: "env", ENV_SECRET: SECRET})
    assert keys().get("a") is not None and keys().get("env") is not None
    pairs.append((AccessKey("b", SECRET),))
    assert keys().get("a") is None and keys().get("b") is not None
    # A reload whose pairs clash with the environment's keeps the last good ones.
    pairs.append((AccessKey("env", SECRET + "-other"),))
    assert keys().get("b") is not None
    assert "access keys not reloaded" in capsys.readouterr().err
