"""Type aliases shared by the package (the reference's ``radiobject._types``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "AttrValue",
    "TransformResult",
    "TransformFn",
    "BatchTransformFn",
    "LabelSource",
    "normalize_transform_result",
]

#: A scalar that fits in one obs / obs_meta cell.
AttrValue = int | float | bool | str

#: What a transform returns: a volume, or ``(volume, obs_updates)`` whose items are merged into the
#: volume's obs row (and written as obs columns by ``EagerQuery.write``).
TransformResult = npt.NDArray[Any] | tuple[npt.NDArray[Any], dict[str, AttrValue]]

#: ``fn(volume, obs_row) -> volume | (volume, obs_updates)``.
TransformFn = Callable[[npt.NDArray[Any], pd.Series], TransformResult]

#: ``fn([(volume, obs_row), ...]) -> [volume | (volume, obs_updates), ...]``.
BatchTransformFn = Callable[[list[tuple[npt.NDArray[Any], pd.Series]]], list[TransformResult]]

#: Labels for ML datasets: an obs column name, a DataFrame (``obs_id`` column or index), a dict
#: ``obs_id -> label``, a callable ``obs_id -> label``, or None.
LabelSource = str | pd.DataFrame | dict[str, Any] | Callable[[str], Any] | None


def normalize_transform_result(result: Any) -> tuple[Any, dict[str, AttrValue]]:
    """Splits a transform result into ``(value, obs_updates)``: a 2-tuple whose second item is a
    dict carries updates, anything else is a plain value with no updates."""
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        return result[0], dict(result[1])
    return result, {}


# keep numpy importable for users annotating with these aliases
_ = np
