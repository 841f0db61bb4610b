"""MONAI / TorchIO compatibility: ``Compose`` (MONAI's, else TorchIO's, else a small fallback) and
:class:`VolumeCollectionSubjectsDataset`.

``Compose`` is resolved on first use: importing MONAI takes seconds, and every DataLoader worker
process would pay it at ``import radiobject.ml``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from radiobject.ml.compat.torchio import VolumeCollectionSubjectsDataset

__all__ = ["Compose", "VolumeCollectionSubjectsDataset"]


class _FallbackCompose:
    """Applies transforms in order (used when neither MONAI nor TorchIO is installed)."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]):
        self.transforms = list(transforms)

    def __call__(self, data: Any) -> Any:
        for t in self.transforms:
            data = t(data)
        return data

    def __repr__(self) -> str:
        return f"Compose({[t.__class__.__name__ for t in self.transforms]})"


def _compose() -> Any:
    try:
        from monai.transforms import Compose as monai_compose

        return monai_compose
    except ImportError:
        pass
    try:
        from torchio import Compose as torchio_compose

        return torchio_compose
    except ImportError:
        return _FallbackCompose


def __getattr__(name: str) -> Any:
    if name == "Compose":
        value = _compose()
        globals()["Compose"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
