"""MPEG audio frame headers (MPEG-1, 2 and 2.5, layers I, II and III)."""

from __future__ import annotations

from typing import NamedTuple

# Versions as the header's two bits name them: 0 = MPEG-2.5, 2 = MPEG-2, 3 = MPEG-1.
MPEG1, MPEG2, MPEG25 = 3, 2, 0
_RATES = {MPEG1: (44100, 48000, 32000), MPEG2: (22050, 24000, 16000), MPEG25: (11025, 12000, 8000)}
# kbit/s by (MPEG-1?, layer); index 0 is free format, 15 is invalid.
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
MONO = 3


class FrameHeader(NamedTuple):
    """The fields of a 4-byte frame header that sizes and timing depend on."""

    version: int
    layer: int  # 1, 2 or 3
    protected: bool  # a 16-bit CRC follows the header
    bitrate: int  # bit/s; 0 for free format
    sample_rate: int
    padding: bool
    channel_mode: int  # 3 = mono

    @property
    def samples(self) -> int:
        """Samples per channel in this frame."""
        if self.layer == 1:
            return 384
        return 576 if self.layer == 3 and self.version != MPEG1 else 1152

    @property
    def slot(self) -> int:
        """The size of the padding slot: 4 bytes in layer I, 1 otherwise."""
        return 4 if self.layer == 1 else 1

    @property
    def free_format(self) -> bool:
        """Whether the bitrate is not in the header (free format)."""
        return self.bitrate == 0

    def size(self) -> int:
        """The frame's length in bytes, header included (not for free format)."""
        if self.layer == 1:
            return (12 * self.bitrate // self.sample_rate + self.padding) * 4
        per_sample = self.samples // 8
        return per_sample * self.bitrate // self.sample_rate + self.padding

    def stream_key(self) -> tuple[int, int, int]:
        """What every frame of one stream shares: version, layer, sample rate."""
        return (self.version, self.layer, self.sample_rate)

    def side_info(self) -> int:
        """Bytes of layer III side information after the header (and CRC)."""
        if self.version == MPEG1:
            return 17 if self.channel_mode == MONO else 32
        return 9 if self.channel_mode == MONO else 17


def parse_header(data: bytes | memoryview, at: int = 0) -> FrameHeader | None:
    """The frame header at `data[at:at+4]`, or None if those bytes are not one."""
    if len(data) - at < 4:
        return None
    b0, b1, b2, b3 = data[at], data[at + 1], data[at + 2], data[at + 3]
    if b0 != 0xFF or (b1 & 0xE0) != 0xE0:
        return None
    version = (b1 >> 3) & 3
    layer_bits = (b1 >> 1) & 3
    bitrate_index = b2 >> 4
    rate_index = (b2 >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index == 15 or rate_index == 3:
        return None
    if (b3 & 3) == 2:  # reserved emphasis
        return None
    layer = 4 - layer_bits
    kbits = _BITRATES[(version == MPEG1, layer)][bitrate_index]
    return FrameHeader(
        version=version,
        layer=layer,
        protected=not (b1 & 1),
        bitrate=kbits * 1000,
        sample_rate=_RATES[version][rate_index],
        padding=bool(b2 & 2),
        channel_mode=b3 >> 6,
    )
