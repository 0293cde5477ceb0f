"""Loading TOML: the documented format, and errors that name the file, the key and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from vodedge.config import ConfigError, ConfigFileError, load_toml

REPO = Path(__file__).resolve().parent.parent
GOOD_DOMAIN = """
[[domain]]
name = "video.example.com"
origins = [{ url = "http://127.0.0.1:8000" }]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vodedge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_file_loads() -> None:
    node = load_toml(REPO / "examples" / "vodedge.toml")
    assert str(node.listen) == "127.0.0.1:8080" and node.cache_size == 10 << 30
    assert node.cache_dir == REPO / "var" / "cache"
    video = node.domain_for("video.example.com")
    assert video is not None and video.audio_split and video.fallback == "passthrough"
    assert (video.seek.mp4_start_arg, video.seek.mp4_end_arg) == ("s", "e")
    assert video.origins[0].host_header == "origin.example.com"
    assert video.ttl_for("/live/a.flv") == 60 and video.ttl_for("/a.flv") == 86400
    media = node.domain_for("clips.media.example.com")
    assert media is not None and media.origins[0].directory == REPO / "samples"
    assert not media.ip_allowed("192.0.2.7")
    paid = node.domain_for("paid.example.com")
    assert paid is not None and paid.url_auth is not None and paid.preview is not None
    assert paid.url_auth.signed_args == ("free_time",) and len(paid.url_auth.keys) == 2


def test_a_full_file(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    path = write(
        tmp_path,
        """
[node]
listen = ":8081"
admin_listen = "[::1]:9091"
workers = 3
cache_dir = "cache"
cache_size = 1073741824

[[domain]]
name = "Video.Example.com"
origins = [
  "http://10.0.0.1:8000/base",
  { url = "https://10.0.0.2", host = "origin.example.com", priority = 30 },
  "media",
  { dir = "media", priority = 40 },
]
fallback = "passthrough"
enabled = false

[[domain.function]]
name = "video_seek"
args = { enable = true, flv_seek_by_time = false, mp4_seek_start = "s" }

[[domain.function]]
name = "filetype_based_ttl_set"
args = { ttl = 3600, file_type = "mp4", weight = 5 }

[[domain]]
name = "*"
origins = ["media"]
""",
    )
    node = load_toml(path)
    assert (str(node.listen), str(node.admin_listen), node.workers) == (
        "0.0.0.0:8081",
        "[::1]:9091",
        3,
    )
    assert node.cache_dir == tmp_path / "cache" and node.cache_size == 1 << 30
    video = node.lookup("video.example.com")
    assert video is not None and not video.enabled and node.domain_for("video.example.com") is None
    assert [o.kind for o in video.origins] == ["http", "http", "dir", "dir"]
    assert video.origins[0].base_path == "/base" and video.origins[1].priority == 30
    assert video.origins[2].directory == media.resolve()
    assert video.seek.enabled and not video.seek.flv_by_time and video.seek.mp4_start_arg == "s"
    assert video.functions[0].arg("enable") == "on"
    assert video.ttl_for("/x.mp4") == 3600
    assert node.default_domain is not None and node.domain_for("other.host") is node.default_domain


def test_defaults_when_node_is_absent(tmp_path: Path) -> None:
    node = load_toml(write(tmp_path, GOOD_DOMAIN))
    assert str(node.listen) == "127.0.0.1:8080" and node.admin_listen is None
    assert node.workers >= 1 and node.cache_size == 10 << 30


# (file text, the key path the error names, a fragment of the reason)
BAD_FILES: list[tuple[str, str, str]] = [
    ("[node]\nlisten = 8080\n" + GOOD_DOMAIN, "node.listen", "must be a string"),
    ('[node]\nlisten = "nowhere"\n' + GOOD_DOMAIN, "node.listen", "host:port"),
    ('[node]\nadmin_listen = "1.2.3.4:70000"\n' + GOOD_DOMAIN, "node.admin_listen", "host:port"),
    ("[node]\nworkers = 0\n" + GOOD_DOMAIN, "node.workers", "1..1024"),
    ('[node]\nworkers = "4"\n' + GOOD_DOMAIN, "node.workers", "integer"),
    ("[node]\nworkers = true\n" + GOOD_DOMAIN, "node.workers", "integer"),
    ('[node]\ncache_size = "ten gigs"\n' + GOOD_DOMAIN, "node.cache_size", "size"),
    ("[node]\ncache_size = 0\n" + GOOD_DOMAIN, "node.cache_size", "positive"),
    ("[node]\ncache_size = 1.5\n" + GOOD_DOMAIN, "node.cache_size", "size"),
    ("[node]\ncache_dir = 3\n" + GOOD_DOMAIN, "node.cache_dir", "path"),
    ("[node]\nthreads = 4\n" + GOOD_DOMAIN, "node.threads", "not a known key"),
    ('title = "x"\n' + GOOD_DOMAIN, "title", "not a known key"),
    ('domain = "x"\n', "domain", "array"),
    ('[[domain]]\norigins = ["http://a"]\n', "domain[0].name", "missing"),
    ('[[domain]]\nname = 3\norigins = ["http://a"]\n', "domain[0].name", "domain name"),
    ('[[domain]]\nname = "bad name"\norigins = ["http://a"]\n', "domain[0].name", "domain name"),
    ('[[domain]]\nname = "a.com"\n', "domain[0].origins", "list"),
    ('[[domain]]\nname = "a.com"\norigins = []\n', "domain[0].origins", "at least one"),
    (
        '[[domain]]\nname = "a.com"\norigins = ["ftp://x"]\n',
        "domain[0].origins[0].dir",
        "not a directory",
    ),
    (
        '[[domain]]\nname = "a.com"\norigins = [{ url = "http://a", dir = "/" }]\n',
        "domain[0].origins[0]",
        "exactly one",
    ),
    (
        '[[domain]]\nname = "a.com"\norigins = [{ url = "http://u:p@a" }]\n',
        "domain[0].origins[0].url",
        "no user",
    ),
    (
        '[[domain]]\nname = "a.com"\norigins = [{ url = "http://a", host = "b c" }]\n',
        "domain[0].origins[0].host",
        "domain name",
    ),
    (
        '[[domain]]\nname = "a.com"\norigins = [{ url = "http://a", priority = 0 }]\n',
        "domain[0].origins[0].priority",
        "1..65535",
    ),
    (
        '[[domain]]\nname = "a.com"\norigins = [{ dir = "/", host = "b" }]\n',
        "domain[0].origins[0].host",
        "URL origins",
    ),
    (
        '[[domain]]\nname = "a.com"\norigins = [{ url = "http://a", weight = 1 }]\n',
        "domain[0].origins[0].weight",
        "not a known key",
    ),
    ('[[domain]]\nname = "a.com"\norigins = [3]\n', "domain[0].origins[0]", "table"),
    (GOOD_DOMAIN + 'fallback = "ignore"\n', "domain[0].fallback", "error or passthrough"),
    (GOOD_DOMAIN + 'enabled = "yes"\n', "domain[0].enabled", "true or false"),
    (GOOD_DOMAIN + "colour = 1\n", "domain[0].colour", "not a known key"),
    (GOOD_DOMAIN + GOOD_DOMAIN, "domain[1].name", "configured twice"),
    (
        GOOD_DOMAIN + '[[domain]]\nname = "*"\norigins = ["http://a"]\n'
        '[[domain]]\nname = "*"\norigins = ["http://b"]\n',
        "domain[2].name",
        "configured twice",
    ),
    (
        GOOD_DOMAIN + '[[domain.function]]\nargs = { enable = "on" }\n',
        "domain[0].function[0].name",
        "missing",
    ),
    (
        GOOD_DOMAIN + '[[domain.function]]\nname = "gzip"\n',
        "domain[0].function[0].name",
        "not supported",
    ),
    (
        GOOD_DOMAIN + '[[domain.function]]\nname = "range"\nargs = { enable = "on" }\nextra = 1\n',
        "domain[0].function[0].extra",
        "not a known key",
    ),
    (
        GOOD_DOMAIN + '[[domain.function]]\nname = "range"\nargs = "on"\n',
        "domain[0].function[0].args",
        "table",
    ),
    (
        GOOD_DOMAIN + '[[domain.function]]\nname = "range"\nargs = { enable = 1.5 }\n',
        "domain[0].function[0].args.enable",
        "string",
    ),
    (
        GOOD_DOMAIN + '[[domain.function]]\nname = "range"\nargs = { enable = "auto" }\n',
        "domain[0].function[0].args.enable",
        "on or off or force",
    ),
    (
        GOOD_DOMAIN + '[[domain.function]]\nname = "range"\nargs = {}\n',
        "domain[0].function[0].args.enable",
        "missing",
    ),
    (
        GOOD_DOMAIN
        + '[[domain.function]]\nname = "range"\nargs = { enable = "on", speed = "1" }\n',
        "domain[0].function[0].args.speed",
        "not supported",
    ),
    (
        GOOD_DOMAIN
        + '[[domain.function]]\nname = "range"\nargs = { enable = "on" }\n'
        + '[[domain.function]]\nname = "filetype_based_ttl_set"\n'
        + 'args = { ttl = 0, file_type = "mp4" }\n'
        + '[[domain.function]]\nname = "filetype_based_ttl_set"\n'
        + 'args = { ttl = 100000000, file_type = "mp4" }\n',
        "domain[0].function[2].args.ttl",
        "0 to 99999999",
    ),
    (
        GOOD_DOMAIN
        + '[[domain.function]]\nname = "range"\nargs = { enable = "on" }\n'
        + '[[domain.function]]\nname = "range"\nargs = { enable = "off" }\n',
        "domain[0].function[1]",
        "more than once",
    ),
    (
        GOOD_DOMAIN
        + '[[domain]]\nname = "b.com"\norigins = ["http://b"]\n'
        + '[[domain.function]]\nname = "ip_allow_list_set"\nargs = { ip_list = "1.2.3.4" }\n'
        + '[[domain.function]]\nname = "ip_black_list_set"\nargs = { ip_list = "1.2.3.5" }\n',
        "domain[1].function[1]",
        "conflicts",
    ),
]


@pytest.mark.parametrize(("text", "key", "reason"), BAD_FILES, ids=[b[1] for b in BAD_FILES])
def test_bad_file_names_file_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as caught:
        load_toml(path)
    error = caught.value
    assert (error.path, error.key) == (str(path), key)
    assert reason in error.reason
    line = str(error)
    assert line.startswith(f"{path}: {key}: ") and "\n" not in line
    assert isinstance(error, ConfigError) and error.code


def test_function_errors_keep_the_api_code(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_DOMAIN + '[[domain.function]]\nname = "nope"\n')
    with pytest.raises(ConfigFileError) as caught:
        load_toml(path)
    assert caught.value.code == "InvalidFunctionName.ValueNotSupported"


def test_syntax_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[node\nlisten = 1\n")
    with pytest.raises(ConfigFileError) as caught:
        load_toml(path)
    assert str(caught.value).startswith(f"{path}: is not valid TOML")
    assert "line 1" in str(caught.value) and "\n" not in str(caught.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot be read"):
        load_toml(tmp_path / "absent.toml")
    with pytest.raises(ConfigFileError, match="cannot be read"):
        load_toml(tmp_path)
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'title = "\xe9"\n')
    with pytest.raises(ConfigFileError) as caught:
        load_toml(path)
    assert str(caught.value).startswith(str(path))


# --- [node] limits -------------------------------------------------------------------------


def test_node_limits_from_the_file(tmp_path: Path) -> None:
    """Durations as numbers or with units, counts and sizes; unnamed keys keep defaults."""
    text = (
        '[node]\nidle_timeout = "500ms"\nsend_timeout = 3\norigin_deadline = "2m"\n'
        'max_connections = 100\nmin_free_space = "16MiB"\n' + GOOD_DOMAIN
    )
    limits = load_toml(write(tmp_path, text)).limits
    assert limits.idle_timeout == 0.5 and limits.send_timeout == 3.0
    assert limits.origin_deadline == 120.0 and limits.max_connections == 100
    assert limits.min_free_space == 16 << 20
    assert limits.origin_read_timeout == 30.0 and limits.shutdown_timeout == 5.0


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('idle_timeout = "0s"', "node.idle_timeout"),
        ('send_timeout = "soon"', "node.send_timeout"),
        ("origin_read_timeout = true", "node.origin_read_timeout"),
        ("max_connections = -1", "node.max_connections"),
        ('origin_deadline = "8d"', "node.origin_deadline"),
        ('min_free_space = "lots"', "node.min_free_space"),
    ],
)
def test_bad_node_limits_name_their_key(tmp_path: Path, line: str, key: str) -> None:
    path = write(tmp_path, f"[node]\n{line}\n" + GOOD_DOMAIN)
    with pytest.raises(ConfigFileError) as caught:
        load_toml(path)
    assert caught.value.key == key, caught.value


def test_every_limit_is_a_serve_flag() -> None:
    """The flags the CLI offers are exactly the limits the file knows."""
    from vodedge.cli import LIMIT_FLAGS
    from vodedge.config.limits import LIMIT_KEYS

    assert set(LIMIT_FLAGS) == LIMIT_KEYS and len(LIMIT_FLAGS) == len(LIMIT_KEYS)


def test_flags_override_the_files_limits(tmp_path: Path) -> None:
    node = load_toml(write(tmp_path, "[node]\nsend_timeout = 3\n" + GOOD_DOMAIN))
    changed = node.with_overrides(limits={"send_timeout": "7s", "max_connections": "9"})
    assert changed.limits.send_timeout == 7.0 and changed.limits.max_connections == 9
