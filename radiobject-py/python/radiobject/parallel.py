"""Parallel execution: contexts for threads and processes, batch reads, and a thread map.

* Threads share a context, and with it the tile cache: :func:`ctx_for_threads`.
* Processes never share one: :func:`ctx_for_process` builds a new, isolated context (fresh TileDB
  context, empty cache). A forked child never uses its parent's TileDB context anyway: the global
  context is tied to the process id, and volumes opened in the parent reopen themselves through a
  context of the child on first use.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from radiobject import _radiobject as _rb
from radiobject.ctx import Context, get_radiobject_config, resolve_ctx

__all__ = ["ctx_for_threads", "ctx_for_process", "map_on_threads", "read_regions", "WriteResult"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class WriteResult:
    """Result of one write in a parallel write."""

    index: int
    uri: str
    obs_id: str
    success: bool
    error: Exception | None = None


def ctx_for_threads(ctx: Context | None = None) -> Context:
    """The context threads should share: ``ctx`` itself, or the global context."""
    return resolve_ctx(ctx)


def ctx_for_process(base: Context | None = None, *, base_ctx: Context | None = None) -> Context:
    """A new, isolated context (fresh TileDB context, empty tile cache) for a worker process,
    configured like ``base`` (default: the global configuration)."""
    base = base if base is not None else base_ctx
    if base is None:
        return Context(None)
    return Context(resolve_ctx(base).config_json())


def read_regions(
    requests: Sequence[tuple[Any, Sequence[tuple[int, int]]]],
    ctx: Context | None = None,
) -> list[np.ndarray]:
    """Reads many regions of many volumes at once on the context's worker pool
    (``ReadConfig.max_workers`` threads), with the GIL released; results in request order.

    Args:
        requests: ``(volume, [(start, stop), ...])`` pairs; ``volume`` is a
            :class:`~radiobject.Volume`.
        ctx: context whose worker pool runs the reads (default: the global one).
    """
    natives = [(v._native, [(int(a), int(b)) for a, b in region]) for v, region in requests]
    return _rb.read_batch(resolve_ctx(ctx), natives)


def _progress(iterable: Iterable[Any], total: int, desc: str | None) -> Iterable[Any]:
    try:
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc)
    except ImportError:
        return _plain_progress(iterable, total, desc)


def _plain_progress(iterable: Iterable[Any], total: int, desc: str | None) -> Iterable[Any]:
    label = f"{desc}: " if desc else ""
    for i, item in enumerate(iterable, 1):
        yield item
        if sys.stderr.isatty() or i == total:
            print(f"\r{label}{i}/{total}", end="\n" if i == total else "", file=sys.stderr, flush=True)


def map_on_threads(
    fn: Callable[[T], R],
    items: Iterable[T],
    max_workers: int | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> list[R]:
    """Runs ``fn`` on every item in a thread pool; results in input order, first error re-raised.

    radiobject releases the GIL around every TileDB call, so reads and writes in ``fn`` run in
    parallel. ``max_workers`` defaults to ``ReadConfig.max_workers``.
    """
    items_list = list(items)
    if not items_list:
        return []
    workers = max_workers or min(get_radiobject_config().read.max_workers, len(items_list))
    results: list[Any] = [None] * len(items_list)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items_list)}
        done: Iterable[Any] = as_completed(futures)
        if progress:
            done = _progress(done, len(futures), desc)
        for fut in done:
            results[futures[fut]] = fut.result()
    return results
