"""Configuration of the ML datasets: loading modes and :class:`DatasetConfig`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from radiobject import _radiobject as _rb
from radiobject.ctx import SliceOrientation

__all__ = ["LoadingMode", "DatasetConfig", "SLICE_DIM", "slice_dim_index"]


class LoadingMode(str, enum.Enum):
    """How items are cut from volumes.

    * ``FULL_VOLUME``: one item per volume, the whole volume (uniform shapes required).
    * ``PATCH``: ``patches_per_volume`` items per volume, fixed-size boxes at random positions
      (drawn anew every epoch from ``(seed, epoch, index)``); volumes may differ in shape.
    * ``SLICE_2D``: one item per 2D slice across ``slice_orientation`` (uniform shapes required).
    """

    FULL_VOLUME = "full_volume"
    PATCH = "patch"
    SLICE_2D = "slice_2d"


#: Volume axis a slice orientation cuts across: axial -> z (2), sagittal -> x (0), coronal -> y (1).
SLICE_DIM: dict[SliceOrientation, int] = {
    SliceOrientation.AXIAL: 2,
    SliceOrientation.SAGITTAL: 0,
    SliceOrientation.CORONAL: 1,
}


def slice_dim_index(orientation: SliceOrientation | str) -> int:
    """The volume axis that ``orientation`` slices across."""
    return SLICE_DIM[SliceOrientation(orientation)]


def _patch_tuple(value: Any) -> tuple[int, int, int] | None:
    if value is None:
        return None
    if isinstance(value, (int,)) and not isinstance(value, bool):
        value = (value, value, value)
    try:
        out = tuple(int(v) for v in value)
    except TypeError as e:
        raise TypeError(f"patch_size must be an int or a tuple of 3 ints, got {value!r}") from e
    if len(out) != 3 or any(isinstance(v, bool) for v in value):
        raise ValueError(f"patch_size must have 3 values (x, y, z), got {value!r}")
    return out


@dataclass(frozen=True)
class DatasetConfig:
    """Configuration of a dataset (frozen, like the reference's pydantic model).

    Args:
        loading_mode: :class:`LoadingMode` (or its value).
        patch_size: ``(x, y, z)`` box of ``PATCH`` items (an int means a cube); required there.
        patches_per_volume: items per volume and epoch in ``PATCH`` mode (>= 1).
        slice_orientation: axis of ``SLICE_2D`` items.
        modalities, label_column, value_filter: accepted for compatibility with the reference,
            which never reads them either; pass collections and ``labels=`` to the datasets.
    """

    loading_mode: LoadingMode = LoadingMode.FULL_VOLUME
    patch_size: tuple[int, int, int] | None = None
    patches_per_volume: int = 1
    slice_orientation: SliceOrientation = SliceOrientation.AXIAL
    modalities: list[str] | None = field(default=None, compare=False)
    label_column: str | None = None
    value_filter: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "loading_mode", LoadingMode(self.loading_mode))
        object.__setattr__(self, "slice_orientation", SliceOrientation(self.slice_orientation))
        object.__setattr__(self, "patch_size", _patch_tuple(self.patch_size))
        if isinstance(self.patches_per_volume, bool) or not isinstance(self.patches_per_volume, int):
            raise TypeError(f"patches_per_volume must be an int, got {self.patches_per_volume!r}")
        _rb.check_dataset_config(self.loading_mode.value, self.patch_size, self.patches_per_volume)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> DatasetConfig:
        """A copy with some fields replaced (pydantic's name, for code written for the reference)."""
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        fields.update(update or {})
        return DatasetConfig(**fields)

    def model_dump(self, **_: Any) -> dict[str, Any]:
        """The fields as a dict (pydantic's name)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}
