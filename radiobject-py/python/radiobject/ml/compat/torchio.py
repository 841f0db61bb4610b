"""TorchIO integration: collections as ``torchio.Subject`` datasets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from radiobject._types import LabelSource
from radiobject.ml.datasets._base import _as_list, _names
from radiobject.ml.utils.labels import load_labels

if TYPE_CHECKING:
    from radiobject.volume_collection import VolumeCollection

import importlib.util

#: Whether TorchIO is installed (imported on first use: it is slow to import).
HAS_TORCHIO = importlib.util.find_spec("torchio") is not None

__all__ = ["VolumeCollectionSubjectsDataset", "HAS_TORCHIO"]


def _require_torchio() -> None:
    if not HAS_TORCHIO:
        raise ImportError("TorchIO required. Install with: pip install torchio")


class VolumeCollectionSubjectsDataset(Dataset):
    """A TorchIO-compatible dataset: one ``tio.Subject`` per volume index, one ``ScalarImage`` per
    collection (named after it), plus ``label`` when labels are given. The volumes of a subject are
    read in one parallel native call."""

    def __init__(
        self,
        collections: VolumeCollection | Sequence[VolumeCollection],
        labels: LabelSource = None,
        transform: Any | None = None,
    ):
        _require_torchio()
        colls = _as_list(collections)
        self._collections = colls
        self._collection_names = _names(colls)
        self._transform = transform
        self._n_subjects = len(colls[0])
        self._labels = load_labels(colls[0], labels) if labels is not None else None

    def __len__(self) -> int:
        return self._n_subjects

    def __getitem__(self, idx: int) -> Any:
        import torchio as tio

        from radiobject.parallel import read_regions

        if not -self._n_subjects <= idx < self._n_subjects:
            raise IndexError(f"index {idx} is out of range for {self._n_subjects} subjects")
        idx %= self._n_subjects
        vols = [c.iloc[idx] for c in self._collections]
        arrays = read_regions([(v, [(0, n) for n in v.shape]) for v in vols])
        subject: dict[str, Any] = {}
        for name, data in zip(self._collection_names, arrays):
            subject[name] = tio.ScalarImage(tensor=torch.from_numpy(data).unsqueeze(0).float())
        if self._labels is not None and idx in self._labels:
            subject["label"] = self._labels[idx]
        out = tio.Subject(subject)
        return self._transform(out) if self._transform else out

    @property
    def collection_names(self) -> list[str]:
        """Names of the images in each Subject."""
        return list(self._collection_names)
