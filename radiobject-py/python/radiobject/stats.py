"""Statistics from TileDB's own counters and radiobject's tile cache, over a ``with`` block.

Unlike the reference (which toggles TileDB's process-global statistics), every number here is a
difference of monotonic counters taken when the block starts and ends, so blocks nest and may run
concurrently in several threads without disturbing each other.

What is counted:

* ``cache_stats()`` — :class:`CacheStats`: ``cache_hits`` / ``cache_misses`` are tile lookups in
  the context's tile cache (a hit never touched storage, including lookups that waited for another
  thread reading the same tile); ``tile_bytes_read`` is the decoded size of the tiles read on
  misses; ``vfs_read_bytes`` is every byte TileDB read from storage (``Context.VFS.read_byte_num``:
  tiles, fragment metadata, schemas, array metadata, and reads that bypass the cache).
* ``s3_stats()`` — :class:`S3Stats`: TileDB 2.30 has no S3-specific counters, so these are its VFS
  counters, which count S3 requests for ``s3://`` URIs and file reads for local paths.
  ``read_ops`` counts each backend request (parallel sub-requests included);
  ``parallelized_reads`` counts radiobject read queries that started while another one of the same
  context was running; ``parallelization_rate`` = ``parallelized_reads / read_ops``, as the
  reference computes it.
* ``all_counters()`` — every counter by its full name (``Context.VFS.read_ops_num``,
  ``Context.Query.Reader.num_tiles_read``, ``RadiObject.TileCache.hits``, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from radiobject import _radiobject as _rb
from radiobject.ctx import Context

__all__ = ["TileDBStats", "CacheStats", "S3Stats"]


@dataclass(frozen=True)
class CacheStats:
    """Tile-cache statistics of a :class:`TileDBStats` block."""

    cache_hits: int
    cache_misses: int
    tile_bytes_read: int
    vfs_read_bytes: int

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)``; 0.0 when nothing was looked up."""
        total = self.cache_hits + self.cache_misses
        return self.cache_hits / total if total else 0.0

    @property
    def miss_rate(self) -> float:
        """``misses / (hits + misses)``; 0.0 when nothing was looked up."""
        total = self.cache_hits + self.cache_misses
        return self.cache_misses / total if total else 0.0


@dataclass(frozen=True)
class S3Stats:
    """Storage (VFS) statistics of a :class:`TileDBStats` block."""

    read_ops: int
    parallelized_reads: int
    write_ops: int
    total_bytes_read: int
    total_bytes_written: int
    read_queries: int = 0

    @property
    def parallelization_rate(self) -> float:
        """``parallelized_reads / read_ops`` (the reference's formula); 0.0 without read ops."""
        return self.parallelized_reads / self.read_ops if self.read_ops else 0.0


class TileDBStats:
    """Measures what happens inside a ``with`` block.

    Args:
        ctx: measure this :class:`~radiobject.Context` only. Default: every context of the
            process, including contexts created inside the block.

    Example::

        with TileDBStats() as stats:
            patch = vol[10:74, 20:84, 30:94]
            again = vol[10:74, 20:84, 30:94]
        print(stats.cache_stats().hit_rate, stats.s3_stats().read_ops)
    """

    def __init__(self, ctx: Context | None = None) -> None:
        self._ctx = ctx
        self._scope: Any = None

    def __enter__(self) -> TileDBStats:
        self._scope = _rb.StatsScope(self._ctx)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._scope is not None:
            self._scope.end()

    def _require(self) -> Any:
        if self._scope is None:
            raise RuntimeError("TileDBStats results are available inside or after a `with TileDBStats():` block")
        return self._scope

    def raw_json(self) -> str:
        """The measured counters and timers as JSON: ``{"counters": {...}, "timers": {...}}``."""
        return self._require().delta_json()

    def all_counters(self) -> dict[str, int]:
        """Every counter that changed, by full name."""
        return dict(json.loads(self.raw_json())["counters"])

    def counters(self) -> dict[str, int]:
        """Counters by short name (the part after the last dot; the first name seen wins)."""
        out: dict[str, int] = {}
        for key, value in self.all_counters().items():
            out.setdefault(key.rsplit(".", 1)[-1], value)
        return out

    def timers(self) -> dict[str, float]:
        """TileDB timers that changed (cumulative ``.sum`` values, in seconds)."""
        return dict(json.loads(self.raw_json())["timers"])

    def cache_stats(self) -> CacheStats:
        """Tile-cache figures (see the module documentation for what each counts)."""
        return CacheStats(*self._require().cache_stats())

    def s3_stats(self) -> S3Stats:
        """Storage request figures (see the module documentation)."""
        return S3Stats(*self._require().s3_stats())
