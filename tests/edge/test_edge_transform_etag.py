"""A transform's derived ETag: stable across processes, another for any change."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

from vodedge.edge.transforms import Transform

BASES = ('"5f3a-1234"', 'W/"5f3a-1234"', "v1|2", "")
TRANSFORMS = [
    Transform(kind, audio, start, end, by_time, track)
    for kind, audio, start, end, by_time, track in itertools.product(
        ("mp4", "flv", "mp3", "ts"),
        (False, True),
        (None, 0.0, 1.5, 600.25),
        (None, 10.0, 610.25),
        (True, False),
        (None, 1, 2),
    )
]


def test_every_transform_and_version_has_its_own_etag() -> None:
    """No two (version, transform) pairs share an ETag; each is a quoted strong tag."""
    tags = {transform.etag(base): (base, transform) for base in BASES for transform in TRANSFORMS}
    assert len(tags) == len(BASES) * len(TRANSFORMS)
    assert all(tag.startswith('"') and tag.endswith('"') and len(tag) == 22 for tag in tags)


def test_the_etag_is_the_same_in_another_process() -> None:
    """Workers and restarts agree (no per-process hash seed in it)."""
    script = (
        "from vodedge.edge.transforms import Transform;"
        "print(Transform('mp4', True, 12.5, 22.5, True, 2).etag('\"v\"'))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == Transform("mp4", True, 12.5, 22.5, True, 2).etag('"v"')
