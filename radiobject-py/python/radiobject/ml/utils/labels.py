"""Labels of ML datasets: from an obs column, a DataFrame, a dict or a callable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from radiobject._types import LabelSource

if TYPE_CHECKING:
    from radiobject.volume_collection import VolumeCollection

__all__ = ["LabelSource", "load_labels"]


def _is_id_index(index: pd.Index) -> bool:
    """Whether an index holds ids: named ``obs_id``, or of object / string dtype (pandas 3's
    ``str`` dtype included, which the reference misses)."""
    return index.name == "obs_id" or index.dtype == object or pd.api.types.is_string_dtype(index.dtype)


def load_labels(
    collection: VolumeCollection,
    labels: LabelSource,
    obs_df: pd.DataFrame | None = None,
) -> dict[int, Any] | None:
    """Labels by volume position (the collection's or view's order).

    Args:
        collection: the collection (or view) whose volumes the positions refer to.
        labels: ``str`` (a column of the collection's ``obs``), a ``DataFrame`` (an ``obs_id``
            column and the first other column as label, or ids as index and its first column), a
            mapping ``obs_id -> label``, a callable ``obs_id -> label``, or None.
        obs_df: the collection's obs rows, when already read (``str`` labels).

    Returns:
        ``{position: label}`` for the volumes that have one; None when no volume has a label.
    """
    if labels is None:
        return None
    obs_ids = collection.obs_ids
    if isinstance(labels, str):
        df = collection.obs if obs_df is None else obs_df
        if labels not in df.columns:
            raise ValueError(f"Label column '{labels}' not found in obs DataFrame (columns: {list(df.columns)})")
        if "obs_id" in df.columns:
            lookup = dict(zip(df["obs_id"], df[labels]))
        elif df.index.name == "obs_id":
            lookup = df[labels].to_dict()
        else:
            raise ValueError("obs DataFrame must have 'obs_id' column or index")
    elif isinstance(labels, pd.DataFrame):
        if "obs_id" in labels.columns:
            cols = [c for c in labels.columns if c != "obs_id"]
            if not cols:
                raise ValueError("Labels DataFrame must have at least one label column")
            lookup = dict(zip(labels["obs_id"], labels[cols[0]]))
        elif _is_id_index(labels.index):
            if len(labels.columns) == 0:
                raise ValueError("Labels DataFrame must have at least one label column")
            lookup = labels[labels.columns[0]].to_dict()
        else:
            raise ValueError("Labels DataFrame must have 'obs_id' as column or index")
    elif isinstance(labels, Mapping):
        lookup = dict(labels)
    elif callable(labels):
        out = {i: labels(o) for i, o in enumerate(obs_ids)}
        return out or None
    else:
        raise TypeError(f"labels must be str, DataFrame, dict, callable, or None, got {type(labels)}")
    out = {i: lookup[o] for i, o in enumerate(obs_ids) if o in lookup}
    return out or None
