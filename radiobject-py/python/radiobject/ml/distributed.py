"""Distributed training (DDP): each rank reads a disjoint share of every epoch.

Process-group set-up (``init_process_group``) and model wrapping stay with the caller, as in the
reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from radiobject._types import LabelSource
from radiobject.ml.config import DatasetConfig, LoadingMode
from radiobject.ml.datasets import VolumeCollectionDataset
from radiobject.ml.datasets._base import _as_list, default_seed
from radiobject.ml.factory import _log, preflight
from radiobject.ml.loader import DistributedEpochSampler, RadiObjectDataLoader

if TYPE_CHECKING:
    from radiobject.volume_collection import VolumeCollection

__all__ = ["create_distributed_dataloader", "set_epoch"]


def _shared_seed(seed: int | None) -> int:
    """The seed every rank uses: ``seed``, else rank 0's ``torch.initial_seed()`` (broadcast when a
    process group is up, so ranks always agree), else 0 (``DistributedSampler``'s default)."""
    if seed is not None:
        return int(seed)
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        t = torch.tensor([default_seed() & ((1 << 63) - 1)], dtype=torch.int64)
        dist.broadcast(t, src=0)
        return int(t.item())
    return 0


def create_distributed_dataloader(
    collections: VolumeCollection | Sequence[VolumeCollection],
    rank: int,
    world_size: int,
    labels: LabelSource = None,
    batch_size: int = 4,
    patch_size: tuple[int, int, int] | None = None,
    num_workers: int = 0,
    pin_memory: bool = True,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    *,
    patches_per_volume: int = 1,
    seed: int | None = None,
    prefetch: int | None = None,
    drop_last: bool = True,
    verify: bool = True,
    **loader_kwargs: Any,
) -> RadiObjectDataLoader:
    """A loader whose sampler is a ``DistributedSampler`` (shuffled by ``(seed, epoch)``; padding
    and ``drop_last`` as torch). Call :func:`set_epoch` before each epoch, as with torch."""
    if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
    colls = _as_list(collections)
    if verify:
        preflight(colls)
    mode = LoadingMode.PATCH if patch_size is not None else LoadingMode.FULL_VOLUME
    config = DatasetConfig(loading_mode=mode, patch_size=patch_size, patches_per_volume=patches_per_volume)
    ds = VolumeCollectionDataset(colls, config=config, labels=labels, transform=transform, seed=_shared_seed(seed))
    sampler = DistributedEpochSampler(ds, num_replicas=world_size, rank=rank, shuffle=True, seed=ds.seed,
                                      drop_last=drop_last)  # fmt: skip
    loader = RadiObjectDataLoader(ds, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                                  num_workers=num_workers, pin_memory=pin_memory, prefetch=prefetch,
                                  **loader_kwargs)  # fmt: skip
    _log("distributed", ds, loader, colls, f" rank={rank}/{world_size}")
    return loader


def set_epoch(dataloader: DataLoader, epoch: int) -> None:
    """Sets the epoch of a loader's sampler (``DistributedSampler`` or the factories' sampler)
    and of its dataset: order and patch positions then come from ``(seed, epoch)``."""
    sampler = getattr(dataloader, "sampler", None)
    if isinstance(sampler, DistributedSampler) or hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)  # type: ignore[union-attr]
    ds = getattr(dataloader, "dataset", None)
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(epoch)  # type: ignore[union-attr]
