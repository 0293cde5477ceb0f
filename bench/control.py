"""The control plane's numbers: how soon an API change is served, and how fast the store
takes writes. `python bench/control.py [--toggles 20] [--writes 100]`.

A two-worker `vodedge serve` (store only, loopback admin listener with one key from
the environment) in front of a `python -m http.server` origin; calls through the
current SDK (alibabacloud-cdn20180510). Printed, never asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEY, SECRET = "bench", "bench-secret-0123456789abcdef"
HOST = "bench.example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def head(port: int, query: str) -> tuple[int, str]:
    """Status and Content-Type of the sample on a fresh connection (either worker)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("HEAD", "/talk.mp4" + query, headers={"Host": HOST})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Content-Type") or ""
    finally:
        connection.close()


def until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("the change was never served")
        time.sleep(0.005)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--toggles", type=int, default=20)
    parser.add_argument("--writes", type=int, default=100)
    args = parser.parse_args()
    from alibabacloud_cdn20180510 import models
    from alibabacloud_cdn20180510.client import Client
    from alibabacloud_tea_openapi.models import Config

    work = Path(tempfile.mkdtemp(prefix="vodedge-bench-control-"))
    media = work / "media"
    media.mkdir()
    (media / "talk.mp4").write_bytes((REPO / "samples" / "talk.mp4").read_bytes())
    origin_port, port, admin = free_port(), free_port(), free_port()
    env = {**os.environ, "VODEDGE_ACCESS_KEY_ID": KEY, "VODEDGE_ACCESS_KEY_SECRET": SECRET}
    origin = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(origin_port), "--bind", "127.0.0.1",
         "-d", str(media)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    node = subprocess.Popen(
        [sys.executable, "-m", "vodedge", "serve", "--listen", f"127.0.0.1:{port}",
         "--admin", f"127.0.0.1:{admin}", "--workers", "2", "--cache-dir", str(work / "cache"),
         "--access-log", "off"],
        env=env, stderr=(work / "stderr.log").open("w"),
    )  # fmt: skip
    try:
        wait_port(admin)
        wait_port(origin_port)
        cdn = Client(
            Config(access_key_id=KEY, access_key_secret=SECRET, endpoint=f"127.0.0.1:{admin}",
                   protocol="http")
        )  # fmt: skip
        sources = json.dumps([{"content": "127.0.0.1", "type": "ipaddr", "port": origin_port}])
        cdn.add_cdn_domain(
            models.AddCdnDomainRequest(domain_name=HOST, cdn_type="video", sources=sources)
        )
        until(lambda: all(head(port, "")[0] == 200 for _ in range(8)))
        calls, seen = [], []
        for n in range(args.toggles):
            enable, wanted = ("on", "audio/mp4") if n % 2 == 0 else ("off", "video/mp4")
            split = [{"functionName": "ali_video_split",
                      "functionArgs": [{"argName": "enable", "argValue": enable}]}]  # fmt: skip
            started = time.monotonic()
            cdn.batch_set_cdn_domain_config(
                models.BatchSetCdnDomainConfigRequest(
                    domain_names=HOST, functions=json.dumps(split)
                )
            )
            answered = time.monotonic()
            until(
                lambda w=wanted: all(head(port, "?ali_audio_only=1") == (200, w) for _ in range(8))
            )
            calls.append(answered - started)
            seen.append(time.monotonic() - answered)
        started = time.monotonic()
        for n in range(args.writes):
            cdn.add_cdn_domain(
                models.AddCdnDomainRequest(
                    domain_name=f"w{n}.example.com", cdn_type="web", sources=sources
                )
            )
        writes = args.writes / (time.monotonic() - started)
        task = cdn.refresh_object_caches(
            models.RefreshObjectCachesRequest(object_path=f"{HOST}/talk.mp4")
        ).body.refresh_task_id
        started = time.monotonic()

        def complete() -> bool:
            request = models.DescribeRefreshTasksRequest(task_id=task)
            body = cdn.describe_refresh_tasks(request).body
            return bool(body.tasks.cdntask[0].status == "Complete")

        until(complete)
        refreshed = time.monotonic() - started
        print(f"BatchSetCdnDomainConfig answered: median {statistics.median(calls) * 1e3:.1f} ms")
        print(
            f"ali_video_split change served on 8 fresh connections (both workers): median"
            f" {statistics.median(seen) * 1e3:.0f} ms, max {max(seen) * 1e3:.0f} ms"
            f" (n={args.toggles})"
        )
        print(f"AddCdnDomain, one client in sequence: {writes:.0f} calls/s (each fsynced)")
        print(
            f"RefreshObjectCaches Complete (applied by both workers) after {refreshed * 1e3:.0f} ms"
        )
    finally:
        node.terminate()
        origin.terminate()
        node.wait(15)
        origin.wait(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
