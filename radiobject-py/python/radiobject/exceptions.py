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


class RadiObjectError(Exception):
    """Base class of every radiobject error."""


class ShapeError(RadiObjectError, ValueError):
    """A shape is invalid or does not match."""


class RegionError(ShapeError, IndexError):
    """A region or index lies outside the volume or selects nothing."""


class DtypeError(ShapeError, TypeError):
    """A voxel type is unsupported or does not match the volume's."""


class AlignmentError(RadiObjectError, ValueError):
    """Index or subject alignment failure."""


class StorageError(RadiObjectError, RuntimeError):
    """A TileDB storage or I/O operation failed."""


class CorruptDataError(StorageError):
    """Stored data failed to decode: a truncated, corrupted or inconsistent tile (checksums where
    the array has them). Names the array and the tile; no voxels are returned."""


class ConfigurationError(RadiObjectError, ValueError):
    """Invalid configuration."""


class SchemaError(RadiObjectError, ValueError):
    """Column, schema, or metadata conflict."""


class IngestError(RadiObjectError, ValueError):
    """Image discovery or format detection failure."""


class ViewError(RadiObjectError, TypeError):
    """Attempted mutation of a read-only view."""


class NotFoundError(RadiObjectError, FileNotFoundError):
    """Nothing exists at the URI."""


class AlreadyExistsError(StorageError, FileExistsError):
    """The target already exists; nothing was written."""


class ObjectTypeError(RadiObjectError, ValueError):
    """The URI holds another kind of TileDB object than expected."""


class InvalidArgumentError(RadiObjectError, ValueError):
    """An argument is invalid."""


class OutOfMemoryError(RadiObjectError, MemoryError):
    """A buffer whose size the input decides (a region, a batch, a mask) cannot be allocated."""


class DatasetLockedError(StorageError):
    """Another writer (named in the message, with the lock's age) is changing the dataset; nothing
    was written. Wait and retry (``lock_timeout=`` waits), or remove a stale lock with
    ``radiobject unlock <uri>``."""
