"""SegmentationDataset: image and mask as separate keys, cut with the same box."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from radiobject.ml.config import DatasetConfig, LoadingMode
from radiobject.ml.datasets._base import PlanDataset, _as_list, _names

if TYPE_CHECKING:
    from radiobject.volume_collection import VolumeCollection

__all__ = ["SegmentationDataset"]


class SegmentationDataset(PlanDataset):
    """A PyTorch dataset of image/mask pairs for segmentation.

    Items: ``{"image": (1, X, Y, Z), "mask": (1, X, Y, Z), "idx", ["patch_idx", "patch_start" |
    "slice_idx"], "obs_id", "obs_subject_id"}``; image and mask are cut with the same box. Patch
    mode allows volumes of different shapes (each at least the patch size).

    With ``foreground_sampling=True`` (patch mode), patches are centred on the mask's non-zero
    voxels: each mask is read once, in parallel in Rust, when the dataset is created, and indexed
    as the 8³ blocks holding foreground with their voxel counts (a few KB per mask); centres are
    drawn from that index with no further reads. A volume with an empty mask gets uniform patches.

    Args:
        image: collection of images.
        mask: collection of masks, aligned with ``image`` (same subjects, same order, same shapes).
        config: :class:`DatasetConfig`.
        transform: applied to each sample dict (e.g. ``RandFlipd(keys=["image", "mask"])``).
        foreground_sampling: centre patches on foreground voxels.
        seed: seed of patch positions (default: ``torch.initial_seed()``).
    """

    def __init__(
        self,
        image: VolumeCollection,
        mask: VolumeCollection,
        config: DatasetConfig | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        foreground_sampling: bool = False,
        seed: int | None = None,
    ):
        (img,) = _as_list(image)[:1]
        (msk,) = _as_list(mask)[:1]
        self._image, self._mask = img, msk
        self._foreground_sampling = bool(foreground_sampling)
        cfg = config if config is not None else DatasetConfig()
        fg = (1, 0) if self._foreground_sampling and cfg.loading_mode == LoadingMode.PATCH else None
        self._names = _names([img, msk])
        self._setup([("image", [img]), ("mask", [msk])], cfg, transform, seed, foreground=fg)

    def _sample(self, tensors: list[torch.Tensor], b: int, vol: int, patch: int, sl: int, start: tuple) -> dict:
        s: dict[str, Any] = {"image": tensors[0][b], "mask": tensors[1][b], "idx": int(vol)}
        self._mode_fields(s, vol, patch, sl, start)
        s["obs_id"] = self._obs_ids[vol]
        s["obs_subject_id"] = self._obs_subject_ids[vol]
        return s

    @property
    def volume_shape(self) -> tuple[int, ...]:
        """Shape of the first volume (of every volume outside patch mode)."""
        return tuple(int(n) for n in self._plan.shapes[0])

    @property
    def volume_shapes(self) -> list[tuple[int, ...]]:
        """Shape of each volume."""
        return [tuple(int(n) for n in s) for s in self._plan.shapes]

    @property
    def n_volumes(self) -> int:
        """Number of image/mask pairs."""
        return int(self._plan.n_volumes)

    @property
    def foreground_voxels(self) -> list[int]:
        """Foreground voxels of each mask (empty without foreground sampling)."""
        return [int(v) for v, _ in self._plan.foreground_summary()]
