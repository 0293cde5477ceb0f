"""Which query parameters make the cache key and which go to the origin."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

# The parameter audio extraction reads; it never reaches the cache key or the origin.
AUDIO_ONLY_ARG = "ali_audio_only"
# vodedge's own: which audio track (by track id) an audio-only MP4 keeps; all by default.
AUDIO_TRACK_ARG = "vodedge_audio_track"


@dataclass(frozen=True)
class QueryPolicy:
    """The set_hashkey_args / ali_remove_args semantics plus the parameters the edge consumes.

    `mode` "all" keeps every parameter in the key; "keep" keeps only `names`
    (set_hashkey_args with a list); "none" keeps none (set_hashkey_args with
    disable=on and no list); "remove" drops `names` (ali_remove_args).
    `keep_origin_args` is keep_oss_args: on sends the origin every parameter, off
    sends it those of the cache key.
    """

    mode: Literal["all", "keep", "none", "remove"] = "all"
    names: frozenset[str] = frozenset()
    keep_origin_args: bool = True
    consumed: frozenset[str] = frozenset({AUDIO_ONLY_ARG, AUDIO_TRACK_ARG})

    def _key_filter(self, items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        if self.mode == "keep":
            return [(k, v) for k, v in items if k in self.names]
        if self.mode == "remove":
            return [(k, v) for k, v in items if k not in self.names]
        if self.mode == "none":
            return []
        return list(items)

    def _unconsumed(self, query: Mapping[str, str]) -> list[tuple[str, str]]:
        return [(k, v) for k, v in query.items() if k not in self.consumed]

    def cache_key_args(self, query: Mapping[str, str]) -> list[tuple[str, str]]:
        """The parameters that distinguish cached objects, sorted by name so their order
        does not matter. A repeated name keeps its values in request order: an origin
        may read the first or the last, so `v=1&v=2` and `v=2&v=1` are two objects."""
        return sorted(self._key_filter(self._unconsumed(query)), key=lambda item: item[0])

    def origin_args(self, query: Mapping[str, str]) -> list[tuple[str, str]]:
        """The parameters to send the origin, in request order."""
        items = self._unconsumed(query)
        return items if self.keep_origin_args else self._key_filter(items)
