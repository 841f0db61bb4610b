"""MONAI / TorchIO compatibility: ``Compose`` (MONAI's, else TorchIO's, else a small fallback) and
:class:`VolumeCollectionSubjectsDataset`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from radiobject.ml.compat.torchio import VolumeCollectionSubjectsDataset

try:
    from monai.transforms import Compose
except ImportError:
    try:
        from torchio import Compose  # type: ignore[assignment]
    except ImportError:

        class Compose:  # type: ignore[no-redef]
            """Applies transforms in order (used when neither MONAI nor TorchIO is installed)."""

            def __init__(self, transforms: Sequence[Callable[[Any], Any]]):
                self.transforms = list(transforms)

            def __call__(self, data: Any) -> Any:
                for t in self.transforms:
                    data = t(data)
                return data

            def __repr__(self) -> str:
                return f"Compose({[t.__class__.__name__ for t in self.transforms]})"


__all__ = ["Compose", "VolumeCollectionSubjectsDataset"]
