"""Checks of collections before training. The rules themselves live in the native plan
(``radiobject_core::loader``); these functions are the reference's names for them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from radiobject.exceptions import AlignmentError, ShapeError

if TYPE_CHECKING:
    from radiobject.volume_collection import VolumeCollection

__all__ = ["validate_collection_alignment", "validate_uniform_shapes", "collect_volume_shapes"]


def validate_collection_alignment(collections: Mapping[str, VolumeCollection]) -> None:
    """Raises :class:`~radiobject.exceptions.AlignmentError` (a ``ValueError``) unless every
    collection holds the same subjects in the same order (metadata only, no voxel read)."""
    names = list(collections)
    if len(names) < 2:
        return
    first = collections[names[0]]
    ref = first.obs_subject_ids
    for name in names[1:]:
        coll = collections[name]
        if len(coll) != len(first):
            raise AlignmentError(f"Collection '{name}' has {len(coll)} volumes, expected {len(first)}")
        subs = coll.obs_subject_ids
        if subs != ref:
            missing = [s for s in ref if s not in set(subs)]
            extra = [s for s in subs if s not in set(ref)]
            raise AlignmentError(
                f"Subject mismatch for collection '{name}': missing={missing[:3]}, extra={extra[:3]}"
                + ("" if missing or extra else " (same subjects in another order)")
            )


def validate_uniform_shapes(collections: Mapping[str, VolumeCollection]) -> tuple[int, int, int]:
    """The common ``(x, y, z)`` shape of the collections; ``ShapeError`` (a ``ValueError``) if a
    collection is heterogeneous or two differ."""
    shape: tuple[int, int, int] | None = None
    for name, coll in collections.items():
        s = coll.shape
        if s is None:
            raise ShapeError(
                f"Collection '{name}' has heterogeneous shapes. Resample to uniform dimensions before ML training."
            )
        if shape is None:
            shape = s
        elif s != shape:
            raise ShapeError(f"Shape mismatch: collection '{name}' has shape {s}, expected {shape}")
    if shape is None:
        raise ValueError("No collections provided")
    return shape


def collect_volume_shapes(
    collections: Mapping[str, VolumeCollection], patch_size: tuple[int, int, int]
) -> list[tuple[int, int, int]]:
    """Shape of each volume of the first collection; ``ShapeError`` if one is smaller than
    ``patch_size``."""
    coll = next(iter(collections.values()))
    shapes: list[tuple[int, int, int]] = []
    for i in range(len(coll)):
        s = tuple(int(n) for n in coll.iloc[i].shape[:3])
        for d in range(3):
            if s[d] < patch_size[d]:
                raise ShapeError(
                    f"Volume {i} shape {s} is smaller than patch_size {tuple(patch_size)} in dimension {d}"
                )
        shapes.append(s)  # type: ignore[arg-type]
    return shapes
