"""The loaders the factories return: a ``torch.utils.data.DataLoader`` that reads ahead in Rust,
is deterministic and resumable, and reports where the time goes.

* With ``num_workers=0`` (the default) batches are read by the native prefetcher: the next
  ``prefetch`` batches are read on the context's worker pool while the training step runs, in the
  sampler's order, with back-pressure; the batch arrays are handed to torch without a copy.
* With ``num_workers > 0`` torch's worker processes call the dataset's ``__getitems__`` (one
  native parallel read per batch); each worker gets its own context and ``cores // num_workers``
  reader threads.
* The samplers yield :class:`~radiobject.ml.datasets.EpochIndex` values, so every item knows its
  epoch: patch positions come from ``(seed, epoch, index)`` in any process.
* ``state_dict()`` / ``load_state_dict()`` (torchdata's ``StatefulDataLoader`` names) resume an
  epoch at the next batch without reading the skipped ones.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import time
import warnings
import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data._utils.collate import default_collate
from torch.utils.data._utils.pin_memory import pin_memory as _pin_memory
from torch.utils.data.distributed import DistributedSampler

from radiobject import _radiobject as _rb
from radiobject.ml.datasets._base import _STAT_FIELDS, EpochIndex, PlanDataset, Samples

__all__ = ["RadiObjectDataLoader", "EpochSampler", "DistributedEpochSampler", "LoaderStats", "collate"]

log = logging.getLogger("radiobject.ml")

_SEED_MASK = (1 << 63) - 1


def collate(samples: Any) -> Any:
    """Collate function of the loaders: the batch a dataset already built (no copy), else torch's
    ``default_collate``."""
    if isinstance(samples, Samples) and samples.batch is not None:
        return samples.batch
    return default_collate(samples)


class _Resumable:
    """Epoch bookkeeping shared by the samplers: the epoch of the running pass and the number of
    leading samples to skip once (set by ``load_state_dict``)."""

    epoch: int
    current_epoch: int | None
    skip: int

    def _order(self, epoch: int) -> list[int]:
        raise NotImplementedError

    def _iter_epoch(self, epoch: int) -> Iterator[int]:
        order = self._order(epoch)
        skip, self.skip = self.skip, 0
        self.current_epoch = epoch
        return (EpochIndex(i, epoch) for i in order[skip:])


class EpochSampler(_Resumable, Sampler[int]):
    """Sampler of the training and validation loaders: ``range(n)``, shuffled by
    ``(seed, epoch)`` when ``shuffle``. Each pass advances the epoch by one unless
    :meth:`set_epoch` says otherwise, so a plain ``for epoch ...: for batch in loader`` gets a
    new order and new patches every epoch, reproducibly."""

    def __init__(self, n: int, shuffle: bool, seed: int):
        self.n = int(n)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0
        self.current_epoch = None
        self.skip = 0
        #: Whether each pass moves to the next epoch (validation loaders keep epoch 0).
        self.advance = True

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch of the next pass."""
        self.epoch = int(epoch)

    def _order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        return list(_rb.shuffle_order(self.seed, epoch, self.n))

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        if self.advance:
            self.epoch = epoch + 1
        return self._iter_epoch(epoch)

    def __len__(self) -> int:
        return self.n


class DistributedEpochSampler(_Resumable, DistributedSampler):
    """``DistributedSampler`` (same partition, padding, ``drop_last`` and ``set_epoch``
    semantics) whose indices carry their epoch."""

    def __init__(self, dataset: Any, num_replicas: int, rank: int, shuffle: bool, seed: int, drop_last: bool):
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed & _SEED_MASK, drop_last=drop_last
        )
        self.current_epoch = None
        self.skip = 0

    def _order(self, epoch: int) -> list[int]:
        saved, self.epoch = self.epoch, epoch
        try:
            return list(DistributedSampler.__iter__(self))
        finally:
            self.epoch = saved

    def __iter__(self) -> Iterator[int]:
        return self._iter_epoch(self.epoch)


@dataclass(frozen=True)
class LoaderStats:
    """What the latest pass over a loader (an epoch, finished or running) cost.

    ``wait_fraction`` is the share of wall time the training loop spent waiting for data (in
    ``next(loader)``, including collation and pinning); near 0 means the loader keeps up.
    ``read_s_per_batch`` is the mean native read time of a batch (all items, all channels, in
    parallel). Cache figures are the tile cache's lookups during the pass (of every worker
    process with ``num_workers > 0``)."""

    epoch: int
    batches: int
    samples: int
    elapsed_s: float
    samples_per_s: float
    wait_s: float
    wait_fraction: float
    read_s_per_batch: float
    bytes_read: int
    cache_hits: int
    cache_misses: int
    cache_hit_rate: float
    threads: int
    prefetch: int
    num_workers: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """The figures as a dict."""
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"epoch {self.epoch}: {self.samples} samples in {self.batches} batches, {self.elapsed_s:.2f} s, "
            f"{self.samples_per_s:.1f} samples/s; waited for data {self.wait_fraction:.1%} of the time; "
            f"read {self.read_s_per_batch * 1000:.1f} ms/batch, {self.bytes_read / 2**20:.1f} MiB; "
            f"tile cache {self.cache_hits} hits / {self.cache_misses} misses ({self.cache_hit_rate:.1%}); "
            f"threads={self.threads} prefetch={self.prefetch} num_workers={self.num_workers} seed={self.seed}"
        )


class _Pass:
    """Counters of one pass (epoch)."""

    def __init__(self, loader: RadiObjectDataLoader, epoch: int, skipped: int):
        self.epoch = epoch
        self.skipped = skipped
        self.batches = 0
        self.samples = 0
        self.wait = 0.0
        self.read = 0.0
        self.bytes = 0
        self.t0 = time.perf_counter()
        self.t_last = self.t0
        self.done = False
        self.scope = _rb.StatsScope(None) if loader.num_workers == 0 else None
        self.worker_base = loader._worker_totals() if loader.num_workers > 0 else None


_LIVE: weakref.WeakSet[_NativeIter] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for it in list(_LIVE):
        it.close()


class _NativeIter:
    """Iterator of a ``num_workers=0`` pass: batches read ahead by the native prefetcher."""

    def __init__(self, loader: RadiObjectDataLoader):
        self._loader = loader
        self._ds: PlanDataset = loader.dataset  # type: ignore[assignment]
        skipped = loader._pending_skip_batches
        loader._pending_skip_batches = 0
        self._batches = iter(loader.batch_sampler)  # type: ignore[arg-type]
        self._pref = self._ds._plan.prefetcher()
        self._pending: deque[list[Any]] = deque()
        self._exhausted = False
        self._len = max(0, len(loader) - skipped)
        _LIVE.add(self)
        # Start reading now: this also starts the sampler, which fixes the epoch of this pass.
        self._fill(max(1, loader.prefetch))
        epoch = getattr(loader.sampler, "current_epoch", None)
        self._pass = loader._begin(0 if epoch is None else epoch, skipped)

    def __iter__(self) -> _NativeIter:
        return self

    def __len__(self) -> int:
        return self._len

    def _fill(self, target: int) -> None:
        while len(self._pending) < target and not self._exhausted:
            try:
                idx = next(self._batches)
            except StopIteration:
                self._exhausted = True
                return
            self._pref.submit([self._ds._resolve(i) for i in idx])
            self._pending.append(idx)

    def __next__(self) -> Any:
        t0 = time.perf_counter()
        self._fill(max(1, self._loader.prefetch))
        if not self._pending:
            self._finish()
            raise StopIteration
        idx = self._pending.popleft()
        got = self._pref.next()  # raises the error of a failed item at its own batch
        assert got is not None
        result, _waited = got
        self._fill(self._loader.prefetch)  # keep `prefetch` batches reading during the step
        samples = self._ds._samples_from(result)
        batch = self._loader.collate_fn(samples)
        if self._loader.pin_memory and torch.cuda.is_available():
            batch = _pin_memory(batch)
        p = self._pass
        now = time.perf_counter()
        p.wait += now - t0
        p.t_last = now
        p.batches += 1
        p.samples += len(idx)
        p.read += float(result[5])
        p.bytes += sum(int(a.nbytes) for a in result[0])
        self._loader._yielded = p.skipped + p.batches
        return batch

    def _finish(self) -> None:
        if not self._pass.done:
            self._pass.done = True
            self._loader._end(self._pass)

    def close(self) -> None:
        """Stops reading ahead (batches not started are cancelled, running ones finish)."""
        self._pref.cancel()
        self._pending.clear()
        self._exhausted = True

    def __del__(self) -> None:
        try:
            self._pref.cancel()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class _WorkerIter:
    """Iterator of a ``num_workers > 0`` pass: torch's worker iterator, measured."""

    def __init__(self, loader: RadiObjectDataLoader, inner: Iterator[Any], skipped: int):
        self._loader = loader
        self._inner = inner
        epoch = getattr(loader.sampler, "current_epoch", None)
        self._pass = loader._begin(0 if epoch is None else epoch, skipped)
        self._len = max(0, len(loader) - skipped)

    def __iter__(self) -> _WorkerIter:
        return self

    def __len__(self) -> int:
        return self._len

    def __next__(self) -> Any:
        t0 = time.perf_counter()
        try:
            batch = next(self._inner)
        except StopIteration:
            if not self._pass.done:
                self._pass.done = True
                self._loader._end(self._pass)
            raise
        p = self._pass
        now = time.perf_counter()
        p.wait += now - t0
        p.t_last = now
        p.batches += 1
        p.samples += _batch_len(batch, self._loader.batch_size or 1)
        self._loader._yielded = p.skipped + p.batches
        return batch


def _batch_len(batch: Any, default: int) -> int:
    """Number of items in a collated batch (its first tensor's length)."""
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else [batch]
    for v in values:
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return int(v.shape[0])
    return default


class RadiObjectDataLoader(DataLoader):
    """A ``torch.utils.data.DataLoader`` over a radiobject dataset, as the factories build it.

    Adds to torch's loader: ``prefetch`` (batches read ahead natively with ``num_workers=0``),
    ``seed``, :meth:`set_epoch`, :meth:`stats`, :meth:`state_dict` / :meth:`load_state_dict`.
    Everything else (``sampler``, ``batch_size``, ``num_workers``, ``pin_memory``,
    ``persistent_workers``...) is torch's.
    """

    def __init__(
        self,
        dataset: PlanDataset,
        *,
        batch_size: int,
        sampler: Sampler[int],
        drop_last: bool,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        prefetch: int | None = None,
        prefetch_factor: int | None = None,
        timeout: float = 0,
        multiprocessing_context: Any = None,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        if prefetch is not None and num_workers > 0:
            warnings.warn(
                "prefetch applies to num_workers=0 (native read-ahead); with worker processes torch's "
                "prefetch_factor decides how far they read ahead",
                stacklevel=3,
            )
        if prefetch is None:
            prefetch = dataset._plan.recommended_prefetch
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch must be an int >= 0, got {prefetch!r}")
        from radiobject.ml.utils.worker_init import worker_init_fn

        workers = num_workers > 0
        super().__init__(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=num_workers,
            collate_fn=collate,
            pin_memory=bool(pin_memory) and torch.cuda.is_available(),
            persistent_workers=bool(persistent_workers) and workers,
            worker_init_fn=worker_init_fn if workers else None,
            prefetch_factor=prefetch_factor if workers else None,
            timeout=timeout,
            multiprocessing_context=multiprocessing_context if workers else None,
        )
        self.prefetch = prefetch
        self._pending_skip_batches = 0
        self._yielded = 0
        self._last: _Pass | None = None
        self._running: _Pass | None = None
        if workers:
            # Each worker reports its cumulative counters here (fork/spawn inherit it).
            dataset._shared_stats = multiprocessing.RawArray("d", num_workers * _STAT_FIELDS)

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Any:
        if self.num_workers == 0:
            return _NativeIter(self)
        skipped = self._pending_skip_batches
        self._pending_skip_batches = 0
        return _WorkerIter(self, super().__iter__(), skipped)

    @property
    def seed(self) -> int:
        """Seed of the shuffle order and of patch positions."""
        return int(self.dataset.seed)  # type: ignore[attr-defined]

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch of the next pass (order and patch positions come from
        ``(seed, epoch)``)."""
        self.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        self.dataset.set_epoch(epoch)  # type: ignore[attr-defined]

    def _begin(self, epoch: int, skipped: int) -> _Pass:
        self._yielded = skipped
        p = _Pass(self, epoch, skipped)
        self._running = p
        return p

    def _end(self, p: _Pass) -> None:
        self._last = p
        self._running = None

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Where this loader is: ``{"epoch", "batches_yielded", "seed"}``. Saved with a checkpoint
        after batch k of epoch e, :meth:`load_state_dict` in a new process makes the next pass
        start at batch k+1 of epoch e, with exactly the batches the uninterrupted run would have
        produced, reading none of the first k."""
        p = self._running
        if p is not None:
            return {"epoch": p.epoch, "batches_yielded": self._yielded, "seed": self.seed}
        return {"epoch": int(getattr(self.sampler, "epoch", 0)), "batches_yielded": 0, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resumes from :meth:`state_dict`: the next pass is epoch ``state["epoch"]`` from batch
        ``state["batches_yielded"]`` on."""
        seed = state.get("seed")
        if seed is not None and int(seed) != self.seed:
            raise ValueError(
                f"this loader's seed is {self.seed} but the state was saved with seed {seed}; "
                "pass seed= to the factory to resume the same sequence"
            )
        epoch = int(state["epoch"])
        k = int(state.get("batches_yielded", 0))
        if k < 0:
            raise ValueError(f"batches_yielded must be >= 0, got {k}")
        self.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        self.dataset.set_epoch(epoch)  # type: ignore[attr-defined]
        self.sampler.skip = k * int(self.batch_size or 1)  # type: ignore[attr-defined]
        self._pending_skip_batches = k

    # ------------------------------------------------------------------ stats

    def _worker_totals(self) -> list[float]:
        arr = getattr(self.dataset, "_shared_stats", None)
        if arr is None:
            return [0.0] * _STAT_FIELDS
        tot = [0.0] * _STAT_FIELDS
        for w in range(len(arr) // _STAT_FIELDS):
            for f in range(_STAT_FIELDS):
                tot[f] += arr[w * _STAT_FIELDS + f]
        return tot

    def stats(self) -> LoaderStats:
        """Figures of the running pass, or of the last finished one."""
        p = self._running or self._last
        threads = _threads(self)
        if p is None:
            return LoaderStats(0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, 0.0, threads, self.prefetch,
                               self.num_workers, self.seed)  # fmt: skip
        end = p.t_last if p.done or p.batches else time.perf_counter()
        elapsed = max(end - p.t0, 1e-9)
        if p.scope is not None:
            hits, misses = (int(x) for x in p.scope.cache_stats()[:2])
            read, nbytes = p.read, p.bytes
        else:
            now = self._worker_totals()
            base = p.worker_base or [0.0] * _STAT_FIELDS
            read, nbytes = now[3] - base[3], int(now[2] - base[2])
            hits, misses = int(now[4] - base[4]), int(now[5] - base[5])
            batches_read = max(1.0, now[0] - base[0])
            read = read / batches_read * max(p.batches, 1)
        total = hits + misses
        return LoaderStats(
            epoch=p.epoch,
            batches=p.batches,
            samples=p.samples,
            elapsed_s=elapsed,
            samples_per_s=p.samples / elapsed,
            wait_s=p.wait,
            wait_fraction=min(1.0, p.wait / elapsed),
            read_s_per_batch=read / p.batches if p.batches else 0.0,
            bytes_read=nbytes,
            cache_hits=hits,
            cache_misses=misses,
            cache_hit_rate=hits / total if total else 0.0,
            threads=threads,
            prefetch=self.prefetch if self.num_workers == 0 else 0,
            num_workers=self.num_workers,
            seed=self.seed,
        )


def _threads(loader: DataLoader) -> int:
    """Reader threads of one process of the loader: the worker pool of the context its volumes
    read through, or each worker's share of the cores."""
    from radiobject.ml.utils.worker_init import worker_threads

    if loader.num_workers > 0:
        return worker_threads(loader.num_workers)
    return int(loader.dataset._plan.threads)  # type: ignore[attr-defined]
