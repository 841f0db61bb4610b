"""Exceptions raised by radiobject.

Every error derives from :class:`RadiObjectError` and also from the builtin exception that fits, so
``except ValueError`` or ``except FileNotFoundError`` work as expected:

================================  ===========================================================
class                              raised for
================================  ===========================================================
``NotFoundError``                  nothing at the URI (a ``FileNotFoundError``)
``AlreadyExistsError``             creating over an existing object (``FileExistsError``)
``ObjectTypeError``                a group where an array is expected, a sparse array... (``ValueError``)
``ShapeError``                     2D/5D shapes, zero-sized axes, size mismatches (``ValueError``)
``RegionError``                    out-of-bounds or empty regions and indices (``ShapeError``, ``IndexError``)
``DtypeError``                     unsupported or mismatched voxel types (``ShapeError``, ``TypeError``)
``ConfigurationError``             invalid configuration values (``ValueError``)
``InvalidArgumentError``           other invalid arguments (``ValueError``)
``StorageError``                   a failed TileDB operation or storage read (``RuntimeError``)
``CorruptDataError``               a truncated, corrupted or inconsistent tile (``StorageError``)
``AlignmentError``                 misaligned subjects or indexes (``ValueError``)
``SchemaError``                    column, schema or metadata conflicts (``ValueError``)
``IngestError``                    image discovery or format problems (``ValueError``)
``ViewError``                      mutating a read-only view (``TypeError``)
``OutOfMemoryError``               a size decided by the input cannot be allocated (``MemoryError``)
``DatasetLockedError``             another writer holds the dataset's write lock (``StorageError``)
================================  ===========================================================

The classes are created by the native module (one definition, in Rust, where errors are mapped).
Every instance has ``uri`` (the object involved) and ``op`` (the operation: ``"open"``,
``"read"``, ``"write"``...) attributes, ``None`` when the error names none. An operation
interrupted by Ctrl-C raises the builtin ``KeyboardInterrupt`` after keeping what it finished.
"""

from __future__ import annotations

__all__ = [
    "RadiObjectError",
    "ShapeError",
    "RegionError",
    "DtypeError",
    "AlignmentError",
    "StorageError",
    "CorruptDataError",
    "ConfigurationError",
    "SchemaError",
    "IngestError",
    "ViewError",
    "NotFoundError",
    "AlreadyExistsError",
    "ObjectTypeError",
    "InvalidArgumentError",
    "OutOfMemoryError",
    "DatasetLockedError",
]


from radiobject._radiobject import (
    AlignmentError,
    AlreadyExistsError,
    ConfigurationError,
    CorruptDataError,
    DatasetLockedError,
    DtypeError,
    IngestError,
    InvalidArgumentError,
    NotFoundError,
    ObjectTypeError,
    OutOfMemoryError,
    RadiObjectError,
    RegionError,
    SchemaError,
    ShapeError,
    StorageError,
    ViewError,
)
