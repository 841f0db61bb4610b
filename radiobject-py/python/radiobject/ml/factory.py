"""Factories of training, validation, inference and segmentation loaders (the reference's API).

Each factory checks the store first (a metadata-only ``verify`` of the dataset the collections
belong to, refusing an incomplete or inconsistent store with its findings), logs one line on the
``radiobject.ml`` logger, and returns a :class:`~radiobject.ml.loader.RadiObjectDataLoader` (a
``torch.utils.data.DataLoader``) with a real ``sampler``.

Defaults differ from the reference in one place on purpose: ``num_workers=0``. Batches are read in
parallel by native threads with the GIL released, so worker processes add pickling and memory
without adding read speed; use them for heavy Python transforms (docs/loaders.md).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from radiobject._types import LabelSource
from radiobject.ctx import SliceOrientation
from radiobject.ml.config import DatasetConfig, LoadingMode
from radiobject.ml.datasets import SegmentationDataset, VolumeCollectionDataset
from radiobject.ml.datasets._base import PlanDataset, _as_list
from radiobject.ml.loader import EpochSampler, RadiObjectDataLoader, _threads

if TYPE_CHECKING:
    from radiobject.volume_collection import VolumeCollection

__all__ = [
    "create_training_dataloader",
    "create_validation_dataloader",
    "create_inference_dataloader",
    "create_segmentation_dataloader",
]

log = logging.getLogger("radiobject.ml")

_VERIFIED: dict[str, Any] = {}


def _dataset_root(uri: str) -> str | None:
    head, sep, _ = uri.rstrip("/").rpartition("/collections/")
    return head if sep else None


def preflight(collections: Sequence[VolumeCollection]) -> None:
    """Metadata-only verification of the datasets the collections belong to (once per dataset and
    process): raises :class:`~radiobject.verify.VerificationError`-style ``RadiObjectError`` with
    the findings if the store is incomplete or inconsistent. No voxel is read."""
    from radiobject.exceptions import NotFoundError, ObjectTypeError, RadiObjectError
    from radiobject.verify import verify

    for coll in collections:
        root = _dataset_root(coll._root.uri)
        if root is None or root in _VERIFIED:
            continue
        try:
            report = verify(root, deep=False, ctx=coll._context)
        except (NotFoundError, ObjectTypeError):
            _VERIFIED[root] = None  # a collection on its own: nothing to verify at dataset level
            continue
        if not report.ok:
            lines = "\n".join(f"  {p.location}: {p.message}" for p in report.problems[:20])
            more = f"\n  ... and {len(report.problems) - 20} more" if len(report.problems) > 20 else ""
            raise RadiObjectError(
                f"the store {root} failed verification ({len(report.problems)} problems); refusing to train "
                f"on it. Run `radiobject verify {root}` for the report, re-run the ingest to finish it, or pass "
                f"verify=False to skip this check.\n{lines}{more}"
            )
        _VERIFIED[root] = report


def _log(
    kind: str, ds: PlanDataset, loader: RadiObjectDataLoader, colls: Sequence[VolumeCollection], extra: str
) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    import torch

    from radiobject import __version__

    cfg = ds._config
    log.info(
        "%s loader: store=%s items=%d mode=%s batch=%d%s threads=%d prefetch=%d num_workers=%d seed=%d "
        "radiobject=%s torch=%s",
        kind,
        _dataset_root(colls[0]._root.uri) or colls[0]._root.uri,
        len(ds),
        cfg.loading_mode.value,
        loader.batch_size or 0,
        extra,
        _threads(loader),
        loader.prefetch if loader.num_workers == 0 else 0,
        loader.num_workers,
        ds.seed,
        __version__,
        torch.__version__,
    )


def _mode(patch_size: Any) -> LoadingMode:
    return LoadingMode.PATCH if patch_size is not None else LoadingMode.FULL_VOLUME


def _loader(
    kind: str,
    ds: PlanDataset,
    colls: Sequence[VolumeCollection],
    *,
    batch_size: int,
    shuffle: bool,
    drop_last: bool,
    num_workers: int,
    pin_memory: bool,
    persistent_workers: bool,
    prefetch: int | None,
    **kw: Any,
) -> RadiObjectDataLoader:
    loader = RadiObjectDataLoader(
        ds,
        batch_size=batch_size,
        sampler=EpochSampler(len(ds), shuffle=shuffle, seed=ds.seed),
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers,
        prefetch=prefetch,
        **kw,
    )
    p = ds._config.patch_size
    extra = f" patch={p} patches_per_volume={ds._config.patches_per_volume}" if p else ""
    _log(kind, ds, loader, colls, extra)
    return loader


def create_training_dataloader(
    collections: VolumeCollection | Sequence[VolumeCollection],
    labels: LabelSource = None,
    batch_size: int = 4,
    patch_size: tuple[int, int, int] | None = None,
    num_workers: int = 0,
    pin_memory: bool = True,
    persistent_workers: bool = True,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    patches_per_volume: int = 1,
    *,
    seed: int | None = None,
    prefetch: int | None = None,
    slice_orientation: SliceOrientation | str | None = None,
    verify: bool = True,
    **loader_kwargs: Any,
) -> RadiObjectDataLoader:
    """A shuffling, ``drop_last`` loader for training.

    Args:
        collections: a collection or several (stacked as channels: ``image`` is ``(B, C, ...)``).
        labels: an obs column, a DataFrame, a dict ``obs_id -> label`` or a callable.
        batch_size: items per batch.
        patch_size: ``(x, y, z)``: random patches (new every epoch); None: whole volumes.
        num_workers: worker processes (0: batches read by native threads in this process).
        pin_memory: pin batches (when CUDA is available).
        persistent_workers: keep worker processes between epochs (with ``num_workers > 0``).
        transform: applied to each sample dict (MONAI dict transforms work directly).
        patches_per_volume: patches per volume and epoch.
        seed: seed of order and patch positions (default ``torch.initial_seed()``).
        prefetch: batches read ahead while the step runs (``num_workers=0``; default 1 for patches
            and slices, 2 for whole volumes: see docs/loaders.md).
        slice_orientation: 2D slices across this axis instead of volumes or patches.
        verify: check the store (metadata only) before the first batch.
        loader_kwargs: ``prefetch_factor``, ``timeout``, ``multiprocessing_context`` for torch.
    """
    colls = _as_list(collections)
    if verify:
        preflight(colls)
    if slice_orientation is not None:
        if patch_size is not None:
            raise ValueError("give either patch_size (3D patches) or slice_orientation (2D slices), not both")
        config = DatasetConfig(loading_mode=LoadingMode.SLICE_2D, slice_orientation=SliceOrientation(slice_orientation))
    else:
        config = DatasetConfig(
            loading_mode=_mode(patch_size), patch_size=patch_size, patches_per_volume=patches_per_volume
        )
    ds = VolumeCollectionDataset(colls, config=config, labels=labels, transform=transform, seed=seed)
    return _loader("training", ds, colls, batch_size=batch_size, shuffle=True, drop_last=True,
                   num_workers=num_workers, pin_memory=pin_memory, persistent_workers=persistent_workers,
                   prefetch=prefetch, **loader_kwargs)  # fmt: skip


def create_validation_dataloader(
    collections: VolumeCollection | Sequence[VolumeCollection],
    labels: LabelSource = None,
    batch_size: int = 4,
    patch_size: tuple[int, int, int] | None = None,
    num_workers: int = 0,
    pin_memory: bool = True,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    *,
    seed: int | None = None,
    prefetch: int | None = None,
    verify: bool = True,
    **loader_kwargs: Any,
) -> RadiObjectDataLoader:
    """A loader for validation: no shuffle, keeps the last partial batch. Patch positions are
    fixed by ``seed`` and epoch 0 unless ``set_epoch`` is called."""
    colls = _as_list(collections)
    if verify:
        preflight(colls)
    config = DatasetConfig(loading_mode=_mode(patch_size), patch_size=patch_size, patches_per_volume=1)
    ds = VolumeCollectionDataset(colls, config=config, labels=labels, transform=transform, seed=seed)
    loader = _loader("validation", ds, colls, batch_size=batch_size, shuffle=False, drop_last=False,
                     num_workers=num_workers, pin_memory=pin_memory, persistent_workers=False, prefetch=prefetch,
                     **loader_kwargs)  # fmt: skip
    loader.sampler.advance = False  # type: ignore[attr-defined]
    return loader


def create_inference_dataloader(
    collections: VolumeCollection | Sequence[VolumeCollection],
    batch_size: int = 1,
    num_workers: int = 0,
    pin_memory: bool = True,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    *,
    prefetch: int | None = None,
    verify: bool = True,
    **loader_kwargs: Any,
) -> RadiObjectDataLoader:
    """A loader of whole volumes in order, for inference."""
    colls = _as_list(collections)
    if verify:
        preflight(colls)
    ds = VolumeCollectionDataset(colls, config=DatasetConfig(loading_mode=LoadingMode.FULL_VOLUME),
                                 transform=transform, seed=0)  # fmt: skip
    return _loader("inference", ds, colls, batch_size=batch_size, shuffle=False, drop_last=False,
                   num_workers=num_workers, pin_memory=pin_memory, persistent_workers=False, prefetch=prefetch,
                   **loader_kwargs)  # fmt: skip


def create_segmentation_dataloader(
    image: VolumeCollection,
    mask: VolumeCollection,
    batch_size: int = 4,
    patch_size: tuple[int, int, int] | None = None,
    num_workers: int = 0,
    pin_memory: bool = True,
    persistent_workers: bool = True,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    foreground_sampling: bool = False,
    patches_per_volume: int = 1,
    *,
    seed: int | None = None,
    prefetch: int | None = None,
    verify: bool = True,
    **loader_kwargs: Any,
) -> RadiObjectDataLoader:
    """A shuffling, ``drop_last`` loader of ``{"image": (B, 1, ...), "mask": (B, 1, ...), ...}``
    batches; ``foreground_sampling`` centres patches on the mask's foreground."""
    colls = _as_list(image) + _as_list(mask)
    if foreground_sampling and patch_size is None:
        warnings.warn("foreground_sampling applies to patches; without patch_size whole volumes are read", stacklevel=2)
    if verify:
        preflight(colls)
    config = DatasetConfig(loading_mode=_mode(patch_size), patch_size=patch_size, patches_per_volume=patches_per_volume)
    ds = SegmentationDataset(image, mask, config=config, transform=transform,
                             foreground_sampling=foreground_sampling, seed=seed)  # fmt: skip
    return _loader("segmentation", ds, colls, batch_size=batch_size, shuffle=True, drop_last=True,
                   num_workers=num_workers, pin_memory=pin_memory, persistent_workers=persistent_workers,
                   prefetch=prefetch, **loader_kwargs)  # fmt: skip
