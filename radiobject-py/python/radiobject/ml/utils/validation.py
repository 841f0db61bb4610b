"""Checks of collections before training. The rules themselves live in the native plan
(``radiobject_core::loader``); these functions are the reference's names for them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from radiobject import _radiobject as _rb

if TYPE_CHECKING:
    from radiobject.volume_collection import VolumeCollection

__all__ = ["validate_collection_alignment", "validate_uniform_shapes", "collect_volume_shapes"]


def validate_collection_alignment(collections: Mapping[str, VolumeCollection]) -> None:
    """Raises :class:`~radiobject.exceptions.AlignmentError` (a ``ValueError``) unless every
    collection holds the same subjects in the same order (metadata only, no voxel read)."""
    _rb.check_aligned([(str(n), c.obs_subject_ids) for n, c in collections.items()])


def validate_uniform_shapes(collections: Mapping[str, VolumeCollection]) -> tuple[int, int, int]:
    """The common ``(x, y, z)`` shape of the collections; ``ShapeError`` (a ``ValueError``) if a
    collection is heterogeneous or two differ."""
    x, y, z = _rb.common_shape([(str(n), c.shape) for n, c in collections.items()])
    return x, y, z


def collect_volume_shapes(
    collections: Mapping[str, VolumeCollection], patch_size: tuple[int, int, int]
) -> list[tuple[int, int, int]]:
    """Shape of each volume of the first collection; ``ShapeError`` if one is smaller than
    ``patch_size``."""
    coll = next(iter(collections.values()))
    shapes = [(int(s[0]), int(s[1]), int(s[2])) for s in (coll.iloc[i].shape for i in range(len(coll)))]
    _rb.check_patch_fits([list(s) for s in shapes], (int(patch_size[0]), int(patch_size[1]), int(patch_size[2])))
    return shapes
