"""VolumeCollectionDataset: collections stacked as channels, ``(C, X, Y, Z)`` items."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from radiobject._types import LabelSource
from radiobject.ml.config import DatasetConfig, LoadingMode
from radiobject.ml.datasets._base import PlanDataset, _as_list, _names
from radiobject.ml.utils.labels import load_labels

if TYPE_CHECKING:
    from radiobject.volume_collection import VolumeCollection

__all__ = ["VolumeCollectionDataset"]


class VolumeCollectionDataset(PlanDataset):
    """A PyTorch dataset over one or more aligned collections, stacked as channels.

    Items are dicts: ``{"image": (C, X, Y, Z) tensor, "idx": volume index, ["label"]}``; patch
    mode adds ``patch_idx`` and ``patch_start``, slice mode gives ``(C, ·, ·)`` images and
    ``slice_idx``. Images keep the volumes' dtype. ``len`` is the number of volumes, volumes x
    ``patches_per_volume``, or volumes x slices.

    A batch is read in one native call (``__getitems__``): every item and channel in parallel on
    the context's worker pool, GIL released, into one ``(B, C, ...)`` buffer, so even a plain
    ``DataLoader(num_workers=0)`` reads in parallel. Patch positions come from
    ``(seed, epoch, index)``: new patches every epoch, the same ones for the same seed and epoch.

    Args:
        collections: a collection or a sequence of them (views included: a view trains on exactly
            its subjects). Several collections must hold the same subjects in the same order
            (:class:`~radiobject.exceptions.AlignmentError` otherwise) and, per subject, the same
            shape.
        config: :class:`DatasetConfig` (default: full volumes).
        labels: an obs column name, a DataFrame (``obs_id`` column or index), a dict
            ``obs_id -> label``, or a callable ``obs_id -> label``.
        transform: applied to each sample dict (MONAI dict transforms work directly); costs one
            copy of the batch when set.
        seed: seed of patch positions (default: ``torch.initial_seed()``).
    """

    def __init__(
        self,
        collections: VolumeCollection | Sequence[VolumeCollection],
        config: DatasetConfig | None = None,
        labels: LabelSource = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        seed: int | None = None,
    ):
        colls = _as_list(collections)
        self._collections = colls
        self._collection_names = _names(colls)
        self._setup([("image", colls)], config, transform, seed)
        self._labels: dict[int, Any] | None = load_labels(colls[0], labels) if labels is not None else None

    def _sample(self, tensors: list[torch.Tensor], b: int, vol: int, patch: int, sl: int, start: tuple) -> dict:
        s: dict[str, Any] = {"image": tensors[0][b], "idx": int(vol)}
        self._mode_fields(s, vol, patch, sl, start)
        if self._labels is not None and vol in self._labels:
            label = self._labels[vol]
            s["label"] = torch.tensor(label) if isinstance(label, (int, float, np.integer, np.floating)) else label
        return s

    @property
    def collection_names(self) -> list[str]:
        """Names of the collections, in channel order."""
        return list(self._collection_names)

    @property
    def volume_shape(self) -> tuple[int, ...] | None:
        """Shape of each volume; None in patch mode (volumes may differ there)."""
        if self._config.loading_mode == LoadingMode.PATCH:
            return None
        shapes = self._plan.shapes
        return tuple(int(n) for n in shapes[0]) if shapes else None

    @property
    def n_channels(self) -> int:
        """Number of channels (collections)."""
        return len(self._collections)

    @property
    def n_volumes(self) -> int:
        """Number of volumes per channel."""
        return int(self._plan.n_volumes)

    @property
    def obs_ids(self) -> list[str]:
        """obs_id of each volume of the first collection."""
        return list(self._obs_ids)
