"""Sans-IO media formats: ISO BMFF (MP4 family) and FLV, bytes in, plans out."""
