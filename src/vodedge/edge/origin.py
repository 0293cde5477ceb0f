"""Origins: where a domain's objects come from (an HTTP server or a directory)."""

from __future__ import annotations

import asyncio
import email.utils
import errno
import hashlib
import os
import stat
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

import aiohttp
from multidict import CIMultiDict
from yarl import URL

CHUNK = 256 << 10
# Errors that mean "out of descriptors or memory" (resources.EXHAUSTED).
EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class OriginError(Exception):
    """The origin could not be reached or answered badly; `status` is ours to send."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class OriginResponse:
    """An origin's answer: status, headers and a body read in chunks."""

    status: int
    headers: CIMultiDict[str]
    body: AsyncIterator[bytes]
    _close: list[object] = field(default_factory=list)

    @property
    def length(self) -> int | None:
        """The body length the origin announced, if any."""
        value = self.headers.get("Content-Length")
        if value is None or not value.isdigit():
            return None
        return int(value)

    async def aclose(self) -> None:
        """Release the connection behind the body."""
        for closer in self._close:
            release = getattr(closer, "release", None)
            if release is not None:
                release()
        aclose = getattr(self.body, "aclose", None)
        if aclose is not None:
            await aclose()


class Origin(Protocol):
    """Something objects can be fetched from by path (and query)."""

    async def fetch(
        self,
        path: str,
        query: str,
        *,
        host: str | None = None,
        byte_range: tuple[int, int] | None = None,
        validators: Mapping[str, str] | None = None,
    ) -> OriginResponse:
        """GET `path?query` (as `host`), optionally a byte range `[start, end)` or
        conditionally."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class HttpOrigin:
    """An HTTP(S) origin, reached with one pooled aiohttp session."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        deadline: float = 600.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.deadline = deadline
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                auto_decompress=False,
                connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=60),
            )
        return self._session

    async def fetch(
        self,
        path: str,
        query: str,
        *,
        host: str | None = None,
        byte_range: tuple[int, int] | None = None,
        validators: Mapping[str, str] | None = None,
    ) -> OriginResponse:
        """GET from the origin; connection failures and timeouts become OriginError."""
        headers: dict[str, str] = {"Accept-Encoding": "identity", "User-Agent": "vodedge"}
        if host:
            headers["Host"] = host
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        if validators:
            headers.update(validators)
        url = self.base_url + path + (f"?{query}" if query else "")
        # One deadline for the whole response: an origin dripping a byte now and then
        # never trips the read timeout, and must not hold clients forever.
        deadline = asyncio.get_running_loop().time() + self.deadline
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._client().get(
                    URL(url, encoded=True), headers=headers, allow_redirects=False
                )
        except TimeoutError as exc:
            raise OriginError(504, "origin_timeout", "the origin did not answer in time") from exc
        except aiohttp.ClientError as exc:
            if isinstance(exc, aiohttp.ClientOSError) and exc.errno in EXHAUSTED:
                raise OriginError(503, "overloaded", "the node is out of resources") from exc
            # The exception's text names the origin's address: clients get its kind only.
            message = f"the origin could not be reached ({type(exc).__name__})"
            raise OriginError(502, "origin_unreachable", message) from exc

        async def body() -> AsyncIterator[bytes]:
            chunks = response.content.iter_chunked(CHUNK).__aiter__()
            try:
                while True:
                    # The timeout spans one read, never a yield: it must not fire
                    # while the consumer is busy elsewhere.
                    async with asyncio.timeout_at(deadline):
                        try:
                            chunk = await chunks.__anext__()
                        except StopAsyncIteration:
                            return
                    yield chunk
            except TimeoutError as exc:
                raise OriginError(504, "origin_timeout", "the origin stalled mid-body") from exc
            except aiohttp.ClientError as exc:
                message = f"the origin broke mid-body ({type(exc).__name__})"
                raise OriginError(502, "origin_broken", message) from exc

        return OriginResponse(response.status, CIMultiDict(response.headers), body(), [response])

    async def close(self) -> None:
        """Close the pooled session."""
        if self._session is not None:
            await self._session.close()


def _http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


class DirectoryOrigin:
    """A local directory as an origin; paths never escape it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def _resolve(self, path: str) -> Path | None:
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") or "\0" in p or "\\" in p for p in parts):
            return None
        candidate = self.root.joinpath(*parts)
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if real != self.root and self.root not in real.parents:
            return None  # a symlink that leads outside the root
        return real

    async def fetch(
        self,
        path: str,
        query: str,
        *,
        host: str | None = None,
        byte_range: tuple[int, int] | None = None,
        validators: Mapping[str, str] | None = None,
    ) -> OriginResponse:
        """Open the file under the root that `path` names, as an HTTP origin would."""
        del query, host  # a directory has no use for query strings or host names
        try:
            real = self._resolve(unquote(path, errors="strict"))
        except UnicodeDecodeError:
            real = None
        not_found = OriginResponse(404, CIMultiDict({"Content-Length": "0"}), _empty())
        if real is None:
            return not_found
        try:
            fd = os.open(real, os.O_RDONLY)
        except OSError:
            return not_found
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return not_found
        tag = hashlib.blake2s(
            f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}".encode(), digest_size=8
        ).hexdigest()
        headers = CIMultiDict(
            {
                "ETag": f'"{tag}"',
                "Last-Modified": _http_date(info.st_mtime),
                "Accept-Ranges": "bytes",
            }
        )
        if validators and validators.get("If-None-Match") == headers["ETag"]:
            os.close(fd)
            headers["Content-Length"] = "0"
            return OriginResponse(304, headers, _empty())
        start, end = 0, info.st_size
        status = 200
        if byte_range is not None:
            start, end = byte_range[0], min(byte_range[1], info.st_size)
            if start >= info.st_size:
                os.close(fd)
                return OriginResponse(416, CIMultiDict({"Content-Length": "0"}), _empty())
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.st_size}"
        headers["Content-Length"] = str(end - start)
        return OriginResponse(status, headers, _read_file(fd, start, end))

    async def close(self) -> None:
        """Nothing to release."""


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


async def _read_file(fd: int, start: int, end: int) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    try:
        position = start
        while position < end:
            chunk = await loop.run_in_executor(
                None, os.pread, fd, min(CHUNK * 4, end - position), position
            )
            if not chunk:
                raise OriginError(502, "origin_broken", "the origin file shrank while read")
            position += len(chunk)
            yield chunk
    finally:
        os.close(fd)
