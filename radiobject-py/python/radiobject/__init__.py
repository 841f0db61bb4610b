"""radiobject — 3D/4D radiology volumes in TileDB, read fast from local disk or S3.

A Rust core (``radiobject-core``, libtiledb 2.30) with this Python front. The API follows the
RadiObject package, and datasets share its on-disk layout::

    from radiobject import configure, ReadConfig, Volume, TileDBStats

    configure(read=ReadConfig(max_workers=8, tile_cache_size_mb=1024))
    vol = Volume.from_numpy("/data/vol0", data)          # or "s3://bucket/ds/vol0"
    with TileDBStats() as stats:
        patch = vol[10:74, 20:84, 30:94]
    print(stats.cache_stats().hit_rate)
"""

from __future__ import annotations

from radiobject import parallel as parallel  # the submodule, as `radiobject.parallel`
from radiobject._radiobject import tiledb_version
from radiobject._types import AttrValue, BatchTransformFn, LabelSource, TransformFn
from radiobject.ctx import (
    CompressionConfig,
    Compressor,
    Context,
    OrientationConfig,
    RadiObjectConfig,
    ReadConfig,
    S3Config,
    SliceOrientation,
    TileConfig,
    WriteConfig,
    configure,
    get_config,
    get_radiobject_config,
    get_tiledb_config,
    get_tiledb_ctx,
    reset_radiobject_config,
    tdb_ctx,
)
from radiobject.dataframe import Dataframe
from radiobject.exceptions import (
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
from radiobject.indexing import Index, align
from radiobject.query import EagerQuery, LazyQuery
from radiobject.radi_object import RadiObject
from radiobject.stats import CacheStats, S3Stats, TileDBStats
from radiobject.utils import delete_tiledb_uri, uri_exists
from radiobject.volume import Volume
from radiobject.volume_collection import VolumeCollection

__version__ = "0.2.0"

__all__ = [
    # core classes
    "RadiObject",
    "Volume",
    "VolumeCollection",
    "Dataframe",
    "Index",
    "align",
    "EagerQuery",
    "LazyQuery",
    # transform and label types
    "TransformFn",
    "BatchTransformFn",
    "AttrValue",
    "LabelSource",
    "Context",
    # configuration
    "configure",
    "get_radiobject_config",
    "get_config",
    "reset_radiobject_config",
    "get_tiledb_ctx",
    "tdb_ctx",
    "get_tiledb_config",
    "RadiObjectConfig",
    "WriteConfig",
    "ReadConfig",
    "TileConfig",
    "CompressionConfig",
    "OrientationConfig",
    "S3Config",
    "SliceOrientation",
    "Compressor",
    # statistics
    "TileDBStats",
    "CacheStats",
    "S3Stats",
    # utilities
    "uri_exists",
    "delete_tiledb_uri",
    "tiledb_version",
    # exceptions (every class of radiobject.exceptions)
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
