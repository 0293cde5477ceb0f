"""`multipart/byteranges` (RFC 9110 §14.6): the parts of an answer to a request for
several ranges, read incrementally as the body arrives (no I/O here)."""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_CONTENT_RANGE = re.compile(rb"content-range:\s*bytes (\d+)-(\d+)/(\d+)\s*$", re.IGNORECASE)
# Part headers longer than this are not a byte range's.
MAX_HEAD = 4096


class BadByteRanges(ValueError):
    """The body is not a well-formed multipart/byteranges."""


class OtherTotal(BadByteRanges):
    """A part names another total length than the object's: another version."""


def boundary_of(content_type: str) -> str | None:
    """The boundary of a `multipart/byteranges` content type, None for another type."""
    if not content_type.lower().startswith("multipart/byteranges"):
        return None
    found = _BOUNDARY.search(content_type)
    return found.group(1) if found else None


class ByteRanges:
    """Feed the body's bytes; get `(offset, data)` pieces of the object, in body order.

    Every part must announce its range and the object's total length (`total`).
    """

    def __init__(self, boundary: str, total: int) -> None:
        self._delimiter = b"--" + boundary.encode("latin-1")
        self.total = total
        self._buffer = b""
        self._at = 0  # where the current part's next byte goes
        self._left = 0  # bytes of the current part still to come
        self.parts: list[tuple[int, int]] = []
        self.done = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The object bytes in `data` (and what was buffered before), with their offsets."""
        out: list[tuple[int, bytes]] = []
        self._buffer += data
        while self._buffer and not self.done:
            if self._left:
                piece = self._buffer[: self._left]
                self._buffer = self._buffer[len(piece) :]
                out.append((self._at, piece))
                self._at += len(piece)
                self._left -= len(piece)
                continue
            if not self._next_part():
                break
        return out

    def _next_part(self) -> bool:
        """Read the next delimiter and part headers; False if more bytes are needed."""
        buffer = self._buffer
        start = buffer.find(self._delimiter)
        if start < 0:
            if len(buffer) > MAX_HEAD + len(self._delimiter):
                raise BadByteRanges("no part delimiter")
            return False
        if buffer[:start].strip(b"\r\n"):
            raise BadByteRanges("bytes between parts")
        after = start + len(self._delimiter)
        if len(buffer) < after + 2:
            return False
        if buffer[after : after + 2] == b"--":
            self.done = True
            self._buffer = b""
            return True
        end = buffer.find(b"\r\n\r\n", after)
        if end < 0:
            if len(buffer) - after > MAX_HEAD:
                raise BadByteRanges("part headers too long")
            return False
        found = None
        for line in buffer[after:end].split(b"\r\n"):
            found = _CONTENT_RANGE.match(line.strip()) or found
        if found is None:
            raise BadByteRanges("a part without Content-Range")
        first, last, total = (int(g) for g in found.groups())
        if total != self.total:
            raise OtherTotal(f"a part of bytes {first}-{last}/{total}, not /{self.total}")
        if last < first or last >= total:
            raise BadByteRanges(f"a part of bytes {first}-{last}/{total}")
        self.parts.append((first, last + 1))
        self._at, self._left = first, last + 1 - first
        self._buffer = buffer[end + 4 :]
        return True

    def close(self) -> None:
        """The body ended: it must have ended with the closing delimiter."""
        if not self.done or self._left:
            raise BadByteRanges("the body ended inside a part")
