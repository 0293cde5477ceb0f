"""The vodedge configuration the edge tests run: one domain per function under test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_harness import FaultOrigin, Nginx
from edge_media import MediaDir


@dataclass(frozen=True)
class Origins:
    """The origins a test session runs."""

    nginx: Nginx
    fault: FaultOrigin
    directory: Path  # the directory origin's root
    secret: Path  # a file beside `directory` that must stay unreachable
    media: MediaDir  # what nginx and the fault origin serve


def function(name: str, **args: str) -> str:
    """One [[domain.function]] table."""
    pairs = ", ".join(f'{key} = "{value}"' for key, value in args.items())
    return f'[[domain.function]]\nname = "{name}"\nargs = {{ {pairs} }}\n'


def domain(
    name: str,
    origin: str,
    *functions: str,
    fallback: str | None = None,
    enabled: bool = True,
    origins: str | None = None,
) -> str:
    """One [[domain]] table; `origins` (a TOML array) replaces the single `origin`."""
    head = f'[[domain]]\nname = "{name}"\norigins = {origins or f"""["{origin}"]"""}\n'
    if fallback is not None:
        head += f'fallback = "{fallback}"\n'
    if not enabled:
        head += "enabled = false\n"
    return head + "".join(functions) + "\n"


SPLIT = function("ali_video_split", enable="on")
SEEK = function("video_seek", enable="on")
WHOLE = function("range", enable="off")
# Custom parameter names, and FLV seeking in seconds.
CUSTOM_SEEK = function(
    "video_seek",
    enable="on",
    flv_seek_by_time="on",
    mp4_seek_start="from",
    mp4_seek_end="to",
    flv_seek_start="fs",
    flv_seek_end="fe",
)
PREVIEW_ARG = "trial"
RATE = 256 << 10  # what limit_rate below allows per request, bytes per second
RATE_ARG_UNIT = 1 << 10  # traffic_limit_unit k


def domains(origins: Origins, extra: str = "") -> str:
    """The TOML of every test domain (and `extra` tables)."""
    nginx, fault = origins.nginx.url, origins.fault.url
    return "".join(
        [
            domain("video.test", nginx, SPLIT, SEEK),
            domain("seek.test", nginx, SPLIT, CUSTOM_SEEK),
            # Whole-object fills (the range function off): what the fault tests of fills
            # exercise; ranged fetches have their own domains (test_edge_sparse*).
            domain("faulty.test", fault, SPLIT, SEEK, WHOLE),
            domain("whole.test", nginx, SPLIT, SEEK, WHOLE),
            domain("dir.test", str(origins.directory), SPLIT),
            domain("pass.test", nginx, SPLIT, fallback="passthrough"),
            domain(
                "referer.test",
                nginx,
                function("referer_white_list_set", refer_domain_allow_list="good.example"),
            ),
            domain("blocked.test", nginx, function("ip_black_list_set", ip_list="127.0.0.1")),
            domain(
                "status.test",
                nginx,
                function(
                    "ip_black_list_set", ip_list="127.0.0.1", customize_response_status_code="451"
                ),
            ),
            domain("xff.test", nginx, function("ip_black_list_set", ip_list="203.0.113.7")),
            domain("slow.test", nginx, function("limit_rate", ali_limit_rate="256k")),
            domain(
                "rate-arg.test",
                nginx,
                # No default limit; ?rate=N asks for N KiB/s.
                function(
                    "limit_rate",
                    ali_limit_rate="0k",
                    traffic_limit_arg="rate",
                    traffic_limit_unit="k",
                ),
            ),
            domain(
                "hashkey.test",
                fault,
                function("set_hashkey_args", hashkey_args="v", disable="on", keep_oss_args="on"),
            ),
            domain(
                "preview.test",
                nginx,
                SPLIT,
                SEEK,
                function("ali_video_preview", enable="on", ali_video_preview_argument=PREVIEW_ARG),
            ),
            extra,
        ]
    )
