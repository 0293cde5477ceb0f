"""An independent URL signer written from Alibaba Cloud CDN's documentation (not from vodedge).

Type A: `auth_key=<time>-<rand>-<uid>-md5("Path-time-rand-uid-key")`; B: the path
`/<YYYYMMDDHHMM in UTC+8>/md5(key + time + Path)/Path`; C: `/md5(key + Path + hex
time)/<hex time>/Path` or `KEY1`/`KEY2` parameters; F: `sign`/`time` parameters (names
configurable) with C's hash. `signed` adds vodedge's own extension: the named query
parameters follow the Path in the hashed string as `?name=value&...`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

CN = timezone(timedelta(hours=8))


def md5(text: str) -> str:
    """The documented md5sum: lower-case hex of the UTF-8 string."""
    return hashlib.md5(text.encode()).hexdigest()


def ref_sign(
    kind: str, key: str, path: str, when: int, *, query: str = "", rand: str = "0",
    uid: str = "0", c_query: bool = False, sign_param: str = "sign", time_param: str = "time",
    dec: bool = False, signed: tuple[str, ...] = (),
) -> tuple[str, str]:  # fmt: skip
    """A signed (path, query) as the documentation builds it (plus vodedge's extension)."""
    pairs = dict(p.split("=", 1) for p in query.split("&") if p)
    covered = path + ("?" + "&".join(f"{n}={pairs.get(n, '')}" for n in signed) if signed else "")
    sep = "&" if query else ""
    if kind == "a":
        digest = md5(f"{covered}-{when}-{rand}-{uid}-{key}")
        return path, f"{query}{sep}auth_key={when}-{rand}-{uid}-{digest}"
    if kind == "b":
        stamp = datetime.fromtimestamp(when, CN).strftime("%Y%m%d%H%M")
        return f"/{stamp}/{md5(key + stamp + covered)}{path}", query
    stamp = str(when) if dec else format(when, "X")
    digest = md5(key + covered + stamp)
    if kind == "c" and not c_query:
        return f"/{digest}/{stamp}{path}", query
    names = ("KEY1", "KEY2") if kind == "c" else (sign_param, time_param)
    return path, f"{query}{sep}{names[0]}={digest}&{names[1]}={stamp}"
