"""The package's public wrapper classes, looked up by the lower modules that return them.

``writers`` and ``ingest`` hand back a ``VolumeCollection`` / ``RadiObject`` but sit below the
modules defining those classes (which use them), so imports point one way:
``radi_object -> volume_collection -> query/writers/ingest -> _registry``; the classes register
themselves here when their module is imported (``radiobject/__init__`` imports them all).
"""

from __future__ import annotations

from typing import Any

_CLASSES: dict[str, Any] = {}


def register(cls: Any) -> Any:
    """Records ``cls`` under its name (a class decorator)."""
    _CLASSES[cls.__name__] = cls
    return cls


def wrapper(name: str) -> Any:
    """The registered class ``name`` (``"VolumeCollection"`` or ``"RadiObject"``)."""
    return _CLASSES[name]
