"""vodedge: a video edge node that extracts audio and seeks MP4/FLV on the fly."""

__version__ = "0.1.0"
