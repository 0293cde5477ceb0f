"""ISO BMFF (MP4, MOV, 3GP...): inspection, clipping and audio extraction as plans."""
