"""What the ML datasets share: the native plan, batch reads, epochs and seeds, sample dicts.

A dataset reads a whole batch in one native call (``__getitems__``, which torch's DataLoader
calls with the batch's indices): every item and channel on the context's worker pool with the
GIL released, straight into one C-contiguous ``(B, C, ...)`` array per key, handed to torch
without another copy. Which voxels an item holds is a pure function of ``(seed, epoch, index)``
(decided in Rust), so batches do not depend on threads, workers or prefetching.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import default_collate

from radiobject import _radiobject as _rb
from radiobject.ml.config import DatasetConfig, LoadingMode, slice_dim_index

if TYPE_CHECKING:
    from radiobject.volume_collection import VolumeCollection

__all__ = ["EpochIndex", "Samples", "default_seed"]

_MASK64 = (1 << 64) - 1


class EpochIndex(int):
    """A dataset index that also carries the epoch it was drawn for.

    The loaders' samplers yield these, so a worker process (persistent or not) knows the epoch
    of every item it reads without any shared state. Plain ints mean the dataset's own epoch
    (:meth:`set_epoch`)."""

    epoch: int

    def __new__(cls, index: int, epoch: int) -> EpochIndex:
        obj = super().__new__(cls, index)
        obj.epoch = int(epoch)
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (EpochIndex, (int(self), self.epoch))

    def __repr__(self) -> str:
        return f"EpochIndex({int(self)}, epoch={self.epoch})"


class Samples(list):
    """The list of sample dicts ``__getitems__`` returns (views into the batch arrays), with the
    collated batch already built (``batch``) when no transform ran: the loaders' collate function
    returns it as is, any other collate function sees an ordinary list of samples."""

    batch: dict[str, Any] | None = None


def default_seed() -> int:
    """The seed used when none is given: torch's initial seed, so ``torch.manual_seed`` governs
    shuffling and patch positions."""
    return int(torch.initial_seed()) & _MASK64


def _names(collections: Sequence[VolumeCollection]) -> list[str]:
    return [c.name or f"collection_{i}" for i, c in enumerate(collections)]


def _as_list(collections: Any) -> list[VolumeCollection]:
    from radiobject.volume_collection import VolumeCollection

    if isinstance(collections, VolumeCollection):
        return [collections]
    if isinstance(collections, (str, bytes)) or not isinstance(collections, Sequence):
        raise TypeError(
            f"collections must be a VolumeCollection or a sequence of them, got {type(collections).__name__}"
        )
    out = list(collections)
    if not out:
        raise ValueError("At least one collection required")
    for c in out:
        if not isinstance(c, VolumeCollection):
            raise TypeError(f"collections must be VolumeCollections, got {type(c).__name__}")
    return out


class PlanDataset(Dataset):
    """Base class of the datasets: a native plan over keys of stacked channels."""

    _config: DatasetConfig
    _transform: Callable[[dict[str, Any]], dict[str, Any]] | None
    _seed: int
    _epoch: int

    def _setup(
        self,
        keys: list[tuple[str, list[VolumeCollection]]],
        config: DatasetConfig | None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None,
        seed: int | None,
        foreground: tuple[int, int] | None = None,
    ) -> None:
        self._config = config if config is not None else DatasetConfig()
        if not isinstance(self._config, DatasetConfig):
            raise TypeError(f"config must be a DatasetConfig, got {type(self._config).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self._transform = transform
        self._seed = default_seed() if seed is None else int(seed) & _MASK64
        self._epoch = 0
        self._keys = keys
        self._foreground = foreground
        self._plan_obj: Any = None
        self._shared_stats: Any = None
        first = keys[0][1][0]
        self._obs_ids = first.obs_ids
        self._obs_subject_ids = first.obs_subject_ids
        self._plan  # noqa: B018 - validate now: alignment, shapes, patch sizes

    # ------------------------------------------------------------------ native plan

    @property
    def _plan(self) -> Any:
        if self._plan_obj is None:
            cfg = self._config
            native_keys = []
            for key, colls in self._keys:
                chans = []
                for name, coll in zip(_names(colls), colls):
                    ranks = list(coll._rank_seq)
                    vols = coll._snap.native.volumes(ranks)
                    chans.append((name, vols, coll.obs_subject_ids))
                native_keys.append((key, chans))
            axis = slice_dim_index(cfg.slice_orientation)
            self._plan_obj = _rb.NativePlan(
                native_keys,
                cfg.loading_mode.value,
                patch_size=cfg.patch_size,
                axis=axis,
                patches_per_volume=cfg.patches_per_volume,
                seed=self._seed,
                foreground=self._foreground,
            )
        return self._plan_obj

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_plan_obj"] = None  # rebuilt (and re-validated) on first use in the new process
        return state

    # ------------------------------------------------------------------ epochs and seeds

    @property
    def seed(self) -> int:
        """Seed of the shuffle order and of every patch/slice position."""
        return self._seed

    @property
    def epoch(self) -> int:
        """Epoch used for plain (non-:class:`EpochIndex`) indices."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch of plain indices: patch positions are drawn from ``(seed, epoch, index)``.
        The loaders' samplers carry the epoch with each index, so this is only needed when the
        dataset is used without them (e.g. inside a plain ``DataLoader``)."""
        self._epoch = int(epoch)

    # ------------------------------------------------------------------ items

    def __len__(self) -> int:
        return len(self._plan)

    def _resolve(self, i: Any) -> tuple[int, int]:
        epoch = i.epoch if isinstance(i, EpochIndex) else self._epoch
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"dataset indices must be integers, not {type(i).__name__}")
        n = len(self._plan)
        j = int(i)
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError(f"index {int(i)} is out of range for a dataset of {n} items")
        return epoch, j

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.__getitems__([idx])[0]

    def __getitems__(self, indices: Sequence[int]) -> Samples:
        """Reads the items of a batch in one native call (parallel, GIL released)."""
        requests = [self._resolve(i) for i in indices]
        if self._shared_stats is not None:
            _process_scope()  # counts from before this worker's first read
        result = self._plan.read_batch(requests)
        samples = self._samples_from(result)
        if self._shared_stats is not None:
            self._report(len(requests), sum(a.nbytes for a in result[0]), result[5])
        return samples

    def _samples_from(self, result: tuple) -> Samples:
        """Sample dicts (and the collated batch, without a transform) from a native batch read."""
        arrays, vols, patch_idx, slice_idx, starts, _seconds = result
        tensors = [torch.from_numpy(a) for a in arrays]
        samples = Samples()
        for b in range(len(vols)):
            samples.append(self._sample(tensors, b, vols[b], patch_idx[b], slice_idx[b], starts[b]))
        if self._transform is not None:
            samples[:] = [self._transform(s) for s in samples]
        else:
            samples.batch = self._batch(samples, tensors)
        return samples

    def _sample(self, tensors: list[torch.Tensor], b: int, vol: int, patch: int, sl: int, start: tuple) -> dict:
        raise NotImplementedError

    def _big_keys(self) -> list[str]:
        return [k for k, _ in self._keys]

    def _batch(self, samples: Samples, tensors: list[torch.Tensor]) -> dict[str, Any]:
        """The batch ``default_collate`` would build from ``samples``, reusing the batch arrays
        (no copy) for the voxel keys and collating only the small metadata."""
        big = dict(zip(self._big_keys(), tensors))
        keys = list(samples[0])
        for s in samples[1:]:
            if list(s) != keys:
                missing = sorted(set(keys) ^ set(s))
                raise ValueError(
                    f"items of one batch differ in keys {missing} (volumes {samples[0]['idx']} and {s['idx']}); "
                    "when labels are given, every volume needs one"
                )
        out: dict[str, Any] = {}
        for key in keys:
            out[key] = big[key] if key in big else default_collate([s[key] for s in samples])
        return out

    def _mode_fields(self, sample: dict[str, Any], vol: int, patch: int, sl: int, start: tuple) -> None:
        mode = self._config.loading_mode
        if mode == LoadingMode.PATCH:
            sample["patch_idx"] = int(patch)
            sample["patch_start"] = tuple(int(s) for s in start)
        elif mode == LoadingMode.SLICE_2D:
            sample["slice_idx"] = int(sl)

    # ------------------------------------------------------------------ stats of worker processes

    def _report(self, items: int, nbytes: int, seconds: float) -> None:
        info = torch.utils.data.get_worker_info()
        if info is None:
            return
        row = self._shared_stats
        k = info.id * _STAT_FIELDS
        if k + _STAT_FIELDS > len(row):
            return
        row[k] += 1
        row[k + 1] += items
        row[k + 2] += nbytes
        row[k + 3] += seconds
        hits, misses = _cache_counts()
        row[k + 4] = hits
        row[k + 5] = misses
        row[k + 6] = time.time()


#: Per-worker fields of the shared stats array: batches, items, bytes, read seconds, cache hits,
#: cache misses (cumulative in the worker process), last report time.
_STAT_FIELDS = 7


def _cache_counts() -> tuple[int, int]:
    scope = _process_scope()
    s = scope.cache_stats()
    return int(s[0]), int(s[1])


_SCOPE: Any = None
_SCOPE_PID = -1


def _process_scope() -> Any:
    """A stats scope over every context of this process, opened once per process."""
    import os

    global _SCOPE, _SCOPE_PID
    if _SCOPE is None or _SCOPE_PID != os.getpid():
        _SCOPE = _rb.StatsScope(None)
        _SCOPE_PID = os.getpid()
    return _SCOPE
