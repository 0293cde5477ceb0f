"""The HTTP edge: host to domain, cache or origin, transform, response."""
