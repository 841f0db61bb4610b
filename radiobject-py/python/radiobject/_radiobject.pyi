# Type stubs for the native module `radiobject._radiobject` (radiobject-py/src/*.rs), written by
# hand and checked against the compiled module by `python -m mypy.stubtest radiobject._radiobject`
# (tests/test_stubs.py). Keep them in step with the #[pyclass]/#[pyfunction] definitions.
#
# Regions are sequences of half-open `(start, stop)` voxel ranges, one per axis. "Configuration"
# arguments accept `None` (the global configuration), a JSON string, a `RadiObjectConfig`, or any
# mapping / pydantic model / OmegaConf config that `radiobject.ctx._config_json` understands; invalid
# ones raise `radiobject.exceptions.ConfigurationError`.

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "Context",
    "StatsScope",
    "NativeVolume",
    "NativeDataframe",
    "NativeCollection",
    "NativeCollectionWriter",
    "NativeDataset",
    "NativeDatasetWriter",
    "NativePlan",
    "NativePrefetcher",
    "check_dataset_config",
    "check_aligned",
    "common_shape",
    "check_patch_fits",
    "shuffle_order",
    "set_process_worker_threads",
    "global_context",
    "validate_config",
    "set_global_config",
    "global_config_json",
    "reset_global_config",
    "tiledb_params",
    "process_snapshot_json",
    "read_batch",
    "assign_obs_ids",
    "rename_obs_ids",
    "generate_obs_id",
    "tile_extents",
    "axcodes",
    "axcodes_valid",
    "check_collection_shape",
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
    "new_subjects_with_rows",
    "check_unique_obs_ids",
    "cells_column",
    "infer_series_type",
    "tiledb_version",
    "discover",
    "sources_of",
    "resolve_reorient",
    "ingest_images",
    "read_image",
    "verify",
    "verify_collection",
    "validate_dataset",
    "cli_main",
    "direct_read",
]

_Region = Sequence[tuple[int, int]]
# What metadata values come back as: STRING_UTF8 -> str, one integer/float -> int/float, several
# -> a tuple, BLOB and uninterpreted types -> bytes.
_MetaValue = str | int | float | bytes | tuple[int, ...] | tuple[float, ...]
# Dataframes cross the boundary as {column: (kind, values, valid)}, insertion-ordered: kind is "str"
# or a NumPy dtype name, values a list of str (None allowed when writing) or a NumPy array, valid
# None (no nulls) or a NumPy bool array (True = present).
_Frame = dict[str, tuple[str, list[str] | list[str | None] | npt.NDArray[Any], npt.NDArray[np.bool_] | None]]
# Column types for new columns: {name: kind}.
_Schema = dict[str, str]
# obs values of one volume: column -> str / int / float / bool / None.
_Cell = str | int | float | bool | None

@final
class Context:
    """A TileDB context with its tile cache, counters and worker pool.

    Threads share a context (and its cache); processes never do. ``Context()`` builds a new,
    isolated context from the global configuration; ``Context(config)`` from a configuration.
    Two ``Context`` objects compare equal when they are handles of the same context.
    """

    def __new__(cls, config: object | None = None) -> Context: ...
    @property
    def id(self) -> int:
        """Unique id of this context within its process."""

    @property
    def pid(self) -> int:
        """Id of the process that created this context."""

    def config_json(self) -> str:
        """The configuration this context was built from, as JSON."""

    def tiledb_params(self) -> list[tuple[str, str]]:
        """The TileDB config parameters this context was built with (no credentials)."""

    def cache_info(self) -> tuple[int, int, int]:
        """``(bytes, tiles, budget_bytes)`` of the tile cache now."""

    def clear_cache(self) -> None:
        """Empties the tile cache (its counters keep counting)."""

    def for_current_process(self) -> Context:
        """This context in the calling process: itself, or in a forked child a fresh context with
        the same configuration (one per child)."""

    def supports_s3(self) -> bool:
        """Whether this libtiledb build can reach S3."""

    def snapshot_json(self) -> str:
        """All counters of this context now, as JSON ``{"counters": {...}, "timers": {...}}``."""

    def object_type(self, uri: str) -> Literal["array", "group"] | None:
        """What TileDB object exists at ``uri``, if any."""

    def remove(self, uri: str) -> None:
        """Removes ``uri`` (directory or S3 prefix) with everything below it; no-op if absent."""

    def ensure_bucket(self, uri: str) -> None:
        """Creates the bucket of an ``s3://bucket/...`` URI if missing."""

    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class StatsScope:
    """Measures counters between construction and ``end()``, for one context or, with ``None``,
    every context of the process (including ones created inside the scope)."""

    def __new__(cls, ctx: Context | None = None) -> StatsScope: ...
    def end(self) -> None:
        """Stops measuring; later calls return the fixed result."""

    def delta_json(self) -> str:
        """The measured difference as JSON ``{"counters": ..., "timers": ...}`` (so far, if not
        ended)."""

    def cache_stats(self) -> tuple[int, int, int, int]:
        """``(cache_hits, cache_misses, tile_bytes_read, vfs_read_bytes)`` of the delta."""

    def s3_stats(self) -> tuple[int, int, int, int, int, int]:
        """``(read_ops, parallelized_reads, write_ops, total_bytes_read, total_bytes_written,
        read_queries)`` of the delta."""

@final
class NativeVolume:
    """Open handle of one volume (the array stays open for reading). Not constructible directly:
    use :meth:`open`, :meth:`create` or :meth:`from_numpy`."""

    @staticmethod
    def open(uri: str, ctx: Context) -> NativeVolume:
        """Opens the volume at ``uri`` through ``ctx``."""

    @staticmethod
    def create(
        uri: str,
        shape: Sequence[int],
        dtype: str,
        ctx: Context,
        write_json: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> NativeVolume:
        """Creates an empty volume of ``shape`` and ``dtype`` (a NumPy dtype name)."""

    @staticmethod
    def from_numpy(
        uri: str,
        data: npt.NDArray[Any],
        ctx: Context,
        write_json: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> NativeVolume:
        """Creates a volume holding ``data`` (any NumPy array of a voxel dtype, C/F order or
        strided), writing ``metadata`` in the same array session."""

    @property
    def uri(self) -> str:
        """The array URI."""

    @property
    def shape(self) -> list[int]:
        """Voxels along each axis."""

    @property
    def dtype(self) -> str:
        """NumPy dtype name of the voxels."""

    @property
    def tile_extents(self) -> list[int]:
        """Tile extent along each axis."""

    @property
    def cell_order(self) -> Literal["row-major", "col-major"]:
        """Cell order within tiles."""

    @property
    def filters(self) -> list[str]:
        """Compression filters of the voxels, e.g. ``["zstd(3)"]``."""

    @property
    def context(self) -> Context:
        """The context this volume reads through."""

    def metadata(self) -> dict[str, _MetaValue]:
        """Array metadata (as of the last open)."""

    def set_metadata(self, items: dict[str, Any]) -> None:
        """Writes metadata items in one array session (str, int, bool, float, bytes, or a list
        of numbers)."""

    def delete_metadata(self, keys: Sequence[str]) -> None:
        """Deletes metadata keys in one array session."""

    def read(self, region: _Region) -> npt.NDArray[Any]:
        """Reads the region into a new Fortran-ordered array (no extra copy)."""

    def read_into(self, region: _Region, out: npt.NDArray[Any]) -> None:
        """Reads the region into ``out`` (a writeable Fortran-contiguous array of the region's shape
        and the volume's dtype)."""

    def write(self, region: _Region, data: npt.NDArray[Any]) -> None:
        """Writes ``data`` (same dtype as the volume, shape of the region) into the region."""

    def reopen(self) -> None:
        """Drops the open handle and reopens the array (sees writes made elsewhere)."""

@final
class NativeDataframe:
    """A sparse dataframe array (``obs`` or ``obs_meta``)."""

    @staticmethod
    def open(uri: str, ctx: Context) -> NativeDataframe:
        """Opens the dataframe at ``uri``."""

    @staticmethod
    def create(uri: str, ctx: Context, index_columns: Sequence[str], schema: _Schema | None = None) -> NativeDataframe:
        """Creates a dataframe with string index columns and typed attribute columns."""

    @property
    def index_columns(self) -> list[str]:
        """Index column names."""

    @property
    def columns(self) -> list[tuple[str, str]]:
        """``[(name, kind)]`` of the attribute columns."""

    def read(self, columns: Sequence[str] | None = None) -> _Frame:
        """Reads all rows (sorted by index), optionally only some attribute columns."""

    def count(self) -> int:
        """Number of rows."""

    def write(self, frame: _Frame) -> None:
        """Writes full rows (missing columns as nulls, new columns added); replaces rows with the
        same index."""

    def update(self, frame: _Frame) -> None:
        """Upserts rows: a row whose index exists replaces it, keeping the stored values of columns
        the rows lack; other rows are added. Every column must exist already."""

    def add_columns(self, schema: _Schema) -> None:
        """Adds typed columns (``{name: kind}``)."""

    def drop_column(self, name: str) -> None:
        """Drops an attribute column (not an index column; it must exist)."""

    def delete(self, keys: _Frame) -> int:
        """Deletes the rows whose index values are in ``keys`` (a frame of the index columns);
        returns the number of distinct keys given."""

@final
class NativeCollection:
    """An opened volume collection."""

    @staticmethod
    def open(uri: str, ctx: Context) -> NativeCollection:
        """Opens the collection at ``uri``."""

    @property
    def uri(self) -> str:
        """The collection URI."""

    @property
    def name(self) -> str | None:
        """The ``name`` metadata."""

    @property
    def shape(self) -> tuple[int, int, int] | None:
        """``(x, y, z)`` if uniform."""

    def __len__(self) -> int: ...
    def metadata(self) -> dict[str, _MetaValue]:
        """Group metadata."""

    def obs(self) -> _Frame:
        """obs rows (sorted by subject, obs_id), as a frame dict."""

    @property
    def obs_ids(self) -> list[str]:
        """obs_ids in rank order."""

    @property
    def subject_ids(self) -> list[str]:
        """Subject of each volume, in rank order."""

    @property
    def members(self) -> list[str]:
        """Member names of the volumes group."""

    def volume(self, rank: int) -> NativeVolume:
        """The volume at ``rank`` (opened once, cached)."""

    def volumes(self, ranks: Sequence[int]) -> list[NativeVolume]:
        """Volumes at several ranks, opened in parallel on the context's pool."""

    def volume_uri(self, rank: int) -> str:
        """URI of the volume at ``rank``."""

    def rank_of(self, obs_id: str) -> int | None:
        """Rank of ``obs_id`` (None if absent)."""

    def is_in_sorted_layout(self) -> bool:
        """Whether every volume sits at its sorted position (reads every volume's metadata)."""

    @property
    def context(self) -> Context:
        """The context this collection reads through."""

@final
class NativeCollectionWriter:
    """Writes volumes into a new or existing collection; registers them at ``finish()``."""

    @staticmethod
    def create(
        uri: str,
        ctx: Context,
        name: str | None = None,
        shape: Sequence[int] | None = None,
        obs_schema: _Schema | None = None,
        write_json: str | None = None,
    ) -> NativeCollectionWriter:
        """Starts a new collection at ``uri``."""

    @staticmethod
    def append_alone(collection: NativeCollection, write_json: str | None = None) -> NativeCollectionWriter:
        """Appends to an existing collection on its own: takes its dataset's write lock (when it
        belongs to one) until the writer finishes, and reads the collection again under it."""

    def write_volume(
        self,
        data: npt.NDArray[Any],
        obs_id: str,
        obs_subject_id: str,
        attrs: dict[str, _Cell] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Writes one volume and buffers its obs row."""

    def write_images(
        self,
        items: Sequence[tuple[str | os.PathLike[str], str, str, str, Mapping[str, Any] | None]],
        reorient: bool | str | None = None,
        uniform: bool = False,
        progress: Callable[[int, int], object] | None = None,
    ) -> None:
        """Reads image files with the native readers (``ReadConfig.max_workers`` at a time, GIL
        released, Ctrl-C honoured) and writes each as a volume with the imaging obs columns and
        orientation metadata ingest records (``original_affine`` per the writer's configuration).
        ``items``: ``[(path, "nifti"|"dicom", obs_id, obs_subject_id, attrs or None)]``;
        ``reorient``: None follows the configuration, True its target, False none, or
        ``"RAS"``/``"LAS"``/``"LPS"``; ``uniform``: every image must have the first one's spatial
        shape; ``progress(done, total)`` after each volume."""

    @property
    def n_written(self) -> int:
        """Volumes written by this writer so far."""

    def finish(self) -> NativeCollection:
        """Registers everything written and returns the collection."""

    def abort(self) -> None:
        """Removes what this writer wrote (the collection too if it created it)."""

@final
class NativeDataset:
    """An opened dataset (RadiObject)."""

    @staticmethod
    def open(uri: str, ctx: Context) -> NativeDataset:
        """Opens the dataset at ``uri``."""

    @property
    def uri(self) -> str:
        """The root URI."""

    def metadata(self) -> dict[str, _MetaValue]:
        """Root metadata."""

    def obs_meta(self) -> _Frame:
        """obs_meta rows (sorted), as a frame dict."""

    @property
    def obs_meta_index(self) -> list[str]:
        """Index columns of obs_meta."""

    @property
    def subject_ids(self) -> list[str]:
        """Subject ids, sorted."""

    @property
    def collection_names(self) -> list[str]:
        """Collection names in member order."""

    def collection(self, name: str) -> NativeCollection:
        """The collection ``name``."""

    def rename_collection(self, old: str, new: str) -> NativeDataset:
        """Renames a collection (directory, member and name metadata); returns the reopened
        dataset."""

    def copy_to(self, dst: str) -> NativeDataset:
        """Copies the dataset to ``dst``."""

    @property
    def context(self) -> Context:
        """The context this dataset reads through."""

@final
class NativeDatasetWriter:
    """Builds a dataset: skeleton, collections (registered one by one), obs_meta and counts."""

    @staticmethod
    def create(uri: str, ctx: Context, obs_meta_schema: _Schema | None = None) -> NativeDatasetWriter:
        """Creates the dataset skeleton at ``uri``."""

    @staticmethod
    def extend(dataset: NativeDataset) -> NativeDatasetWriter:
        """Continues an existing dataset."""

    @staticmethod
    def create_around(
        uri: str, ctx: Context, keep: Sequence[str], obs_meta_schema: _Schema | None = None
    ) -> NativeDatasetWriter:
        """Creates a dataset around collections already at ``<uri>/collections/<name>``; a
        rollback never removes them."""
    def link(self, name: str) -> NativeCollection:
        """Registers a collection already at ``<uri>/collections/<name>``."""
    def write_obs_meta(self, frame: _Frame) -> None:
        """Buffers obs_meta rows (a frame dict with ``obs_subject_id``)."""

    def add_collection(
        self,
        name: str,
        shape: Sequence[int] | None = None,
        obs_schema: _Schema | None = None,
        write_json: str | None = None,
    ) -> NativeCollectionWriter:
        """Starts collection ``name``; register it with :meth:`register` when written."""

    def check_new_collection(self, name: str) -> None:
        """Refuses ``name`` for a new collection (invalid, or already in the dataset or this writer)."""

    def append_collection(self, name: str, write_json: str | None = None) -> NativeCollectionWriter:
        """Starts appending to the dataset's collection ``name``; register it with ``register``."""

    def register(self, writer: NativeCollectionWriter) -> None:
        """Takes a written collection writer: its obs_ids are checked against the other collections
        now, and it is registered when this writer finishes."""

    def finish(self) -> NativeDataset:
        """Writes obs_meta (with obs_ids) and counts; returns the dataset."""

    def abort(self) -> None:
        """Removes the dataset if this writer created it."""

_Batch = tuple[list[npt.NDArray[Any]], list[int], list[int], list[int], list[tuple[int, ...]], float]

@final
class NativePlan:
    """A dataset's reading plan: validated channels, items and batch reads."""

    def __new__(
        cls,
        keys: Sequence[tuple[str, Sequence[tuple[str, Sequence[NativeVolume], Sequence[str]]]]],
        mode: str,
        patch_size: tuple[int, int, int] | None = None,
        axis: int = 2,
        patches_per_volume: int = 1,
        seed: int = 0,
        foreground: tuple[int, int] | None = None,
    ) -> NativePlan: ...
    def __len__(self) -> int: ...
    @property
    def n_volumes(self) -> int:
        """Volumes per channel."""
    @property
    def shapes(self) -> list[list[int]]:
        """Shape of each volume."""
    @property
    def dtypes(self) -> list[str]:
        """dtype name of each key's array."""
    @property
    def seed(self) -> int:
        """The seed of every random choice."""
    @property
    def recommended_prefetch(self) -> int:
        """Batches the native prefetcher reads ahead by default (more on object stores)."""
    @property
    def threads(self) -> int:
        """Threads of the worker pool that reads this plan's batches."""
    def item_shape(self, volume: int) -> list[int]:
        """Shape of one item of one channel of volume ``volume``."""
    def item(self, epoch: int, index: int) -> tuple[int, int, int, list[int]]:
        """``(volume, patch_idx, slice_idx, start)`` of item ``index`` in ``epoch``."""
    def read_batch(self, requests: Sequence[tuple[int, int]]) -> _Batch:
        """Reads a batch of ``(epoch, index)`` items now."""
    def prefetcher(self) -> NativePrefetcher:
        """A prefetcher reading this plan's batches in the background."""
    def foreground_summary(self) -> list[tuple[int, int]]:
        """Foreground voxels and blocks of each mask."""
    def counters(self) -> dict[str, float]:
        """Cumulative counters of this plan's reads."""

@final
class NativePrefetcher:
    """Batches read ahead on the context's pool, returned in submission order."""

    def submit(self, requests: Sequence[tuple[int, int]]) -> None:
        """Starts reading a batch of ``(epoch, index)`` items in the background."""
    @property
    def pending(self) -> int:
        """Batches submitted and not taken yet."""
    def next(self) -> tuple[_Batch, float] | None:
        """Waits for the oldest submitted batch."""
    def cancel(self) -> None:
        """Cancels batches not started; waits for those reading."""

def check_aligned(channels: Sequence[tuple[str, Sequence[str]]]) -> None:
    """Checks that collections line up as channels: ``[(name, subject of each volume)]`` hold the
    same number of volumes of the same subjects in the same order (``AlignmentError``)."""

def common_shape(collections: Sequence[tuple[str, tuple[int, int, int] | None]]) -> list[int]:
    """The shape collections share (``[(name, shape or None when heterogeneous)]``), or
    ``ShapeError``."""

def check_patch_fits(shapes: Sequence[Sequence[int]], patch_size: tuple[int, int, int]) -> None:
    """Checks that patches of ``patch_size`` fit volumes of ``shapes`` (``ShapeError``)."""

def check_dataset_config(mode: str, patch_size: tuple[int, int, int] | None, patches_per_volume: int) -> None:
    """Checks a dataset configuration."""

def shuffle_order(seed: int, epoch: int, n: int) -> list[int]:
    """A uniform random permutation of ``range(n)`` for ``(seed, epoch)``."""

def set_process_worker_threads(n: int) -> None:
    """Sets the worker pool size of pools this process creates from now on."""

def global_context() -> Context:
    """The process-wide context (built lazily from the global configuration; rebuilt after
    ``configure()`` and in a forked child)."""

def validate_config(config: object) -> str:
    """Validates a configuration and returns it normalised (every field, as JSON)."""

def set_global_config(config: object) -> None:
    """Installs a validated configuration as the global one and drops the global context."""

def global_config_json() -> str:
    """The global configuration as JSON."""

def reset_global_config() -> None:
    """Restores the default global configuration and drops the global context."""

def tiledb_params(config: object) -> list[tuple[str, str]]:
    """The TileDB parameters a configuration maps to (no credentials)."""

def process_snapshot_json() -> str:
    """Counters of every context of this process (live and dropped), as JSON."""

def infer_series_type(path: str | os.PathLike[str]) -> str:
    """The series type of an image file from its name (BIDS suffix, then name patterns), e.g.
    ``"T1w"``, ``"FLAIR"``, ``"CT"``; ``"unknown"`` when nothing matches. Reads nothing."""

def new_subjects_with_rows(
    existing: Sequence[str], given: Sequence[str], obs_meta: Sequence[str] | None = None
) -> list[str]:
    """The subjects of ``given`` new to a dataset holding ``existing``, sorted; each needs a row in
    ``obs_meta`` (the subjects with a row; None: no obs_meta given), else ``AlignmentError``."""

def cells_column(name: str, values: Sequence[Any], kind: str | None = None) -> tuple[str, Any, Any]:
    """One frame column ``(kind, values, valid)`` of Python values, of the stored type ``kind``
    (``"str"``, ``"int8"``...) or, when None, of the type the values imply (text, bool, int64, or
    float64 for floats with ints). Values convert exactly or raise ``SchemaError`` (the rule of obs
    values); None, NaN and pandas' NA/NaT are nulls."""

def check_unique_obs_ids(new: Sequence[tuple[str, Sequence[str]]], dataset: NativeDataset | None = None) -> None:
    """Refuses obs_ids that are not unique across a dataset: ``new`` is ``[(collection, [obs_id])]``
    about to be written, ``dataset`` the dataset they go into (its collections' obs_ids count as
    taken); ``AlignmentError`` names the clashes."""

def assign_obs_ids(subject_ids: Sequence[str], name: str, taken: Sequence[str] = ...) -> list[str]:
    """New obs_ids ``{sid}_{name}`` for volumes of ``subject_ids`` (in order), with ``_acq-{k}`` when
    the id is in ``taken`` or already given to an earlier volume."""

def generate_obs_id(obs_subject_id: str, collection_name: str, acquisition_index: int | None = None) -> str:
    """``{subject}_{collection}``, plus ``_acq-{k}`` for the k-th acquisition of a subject."""

def rename_obs_ids(subject_ids: Sequence[str], name: str) -> list[str]:
    """New obs_ids for a copy of volumes of ``subject_ids`` (in order) named ``name``:
    ``{sid}_{name}``, and ``{sid}_{name}_acq-{k}`` for every volume of a subject with several."""

def tile_extents(shape: Sequence[int], config: object | None = None) -> list[int]:
    """Tile extents of a volume of ``shape`` (3 or 4 axes) under ``config`` (a configuration or a
    section of one, JSON or object; None: the global one), clipped to the shape."""

def check_collection_shape(shape: Sequence[int]) -> None:
    """Checks a collection's uniform ``shape``: ``(x, y, z)`` with no zero axis (ShapeError)."""

def axcodes(affine: Sequence[Sequence[float]]) -> str:
    """Axis codes of an affine (its upper-left 3x3 is used), as nibabel's ``aff2axcodes``, e.g.
    ``"RAS"``; an axis without direction gets ``"?"``."""

def axcodes_valid(codes: Sequence[str]) -> bool:
    """Whether ``codes`` are three axis codes naming each world axis once (``["R", "A", "S"]``)."""

def read_batch(ctx: Context, requests: Sequence[tuple[NativeVolume, _Region]]) -> list[npt.NDArray[Any]]:
    """Reads many regions of many volumes on ``ctx``'s worker pool, with the GIL released;
    results in request order."""

def direct_read(
    uri: str,
    ctx: Context,
    attr: str = "voxels",
    timestamp_ms: int | None = None,
    region: _Region | None = None,
) -> npt.NDArray[Any]:
    """Reads with radiobject's own TileDB format reader only (C order)."""

def tiledb_version() -> tuple[int, int, int]:
    """The libtiledb version loaded, e.g. ``(2, 30, 0)``."""

def discover(spec: str, format: str | None = None) -> tuple[str, list[tuple[str, str]]]:
    """Finds the images of a glob, a NIfTI directory or a directory of DICOM series:
    ``(format, [(path, subject_id)])``."""

def sources_of(
    items: Sequence[tuple[str | os.PathLike[str], str | None]], format: str | None = None
) -> tuple[str, list[tuple[str, str]]]:
    """Sources given as a list (``[(path, subject_id or None)]``), named as ``discover`` names them
    (NIfTI: the file name without ``.nii[.gz]``; DICOM: the series directory's name). Returns
    ``(format, [(path, subject_id)])``; the format is ``format``, else NIfTI when the first path is."""

def ingest_images(
    uri: str,
    ctx: Context,
    collections: Sequence[tuple[str, str, Sequence[tuple[str, str]]]],
    obs_meta: Mapping[str, tuple[str, Any, Any]] | None = None,
    reorient: bool | str | None = None,
    validate_alignment: bool = False,
    max_workers: int | None = None,
    progress: Callable[[str, int, int], object] | None = None,
    allow_duplicate_content: bool = False,
    lock_timeout: float | None = None,
) -> tuple[NativeDataset, dict[str, Any]]:
    """Ingests ``collections`` (``[(name, format, [(path, subject_id)])]``) into the dataset at
    ``uri``; resumable. ``lock_timeout`` (seconds) waits for another writer of the dataset;
    ``allow_duplicate_content`` stores sources whose content the collection already holds.
    Returns ``(dataset, report dict)``."""

def resolve_reorient(reorient: bool | str | None = None, ctx: Context | None = None) -> str | None:
    """The reorientation target of ``reorient`` (None follows the configuration of ``ctx``, or the
    global one; True its ``canonical_target``; False none; or ``"RAS"``/``"LAS"``/``"LPS"``)."""

def read_image(
    path: str, format: str = "nifti", reorient: bool | str | None = None, ctx: Context | None = None
) -> dict[str, Any]:
    """Reads one image: voxels (Fortran order), affine, orientation, the volume metadata and obs
    columns ingest would record. ``reorient`` as in ``resolve_reorient``, under the configuration
    of ``ctx`` (or the global one). With ``ctx``, ``metadata`` is what a writer through it records
    (``original_affine`` per its configuration)."""

def verify(uri: str, ctx: Context, deep: bool = False) -> dict[str, Any]:
    """Verifies the dataset at ``uri``; returns the report as a dict (``text``: as the command line
    prints it)."""

def verify_collection(uri: str, ctx: Context, deep: bool = False, any_layout: bool = False) -> dict[str, Any]:
    """Verifies the volume collection at ``uri`` on its own; returns the report as a dict.
    ``any_layout``: volumes out of their sorted positions are warnings when found by obs_id."""

def validate_dataset(uri: str, ctx: Context) -> dict[str, Any]:
    """The checks of ``RadiObject.validate()`` (verify, not deep, any layout); the report as a dict."""

def cli_main(argv: Sequence[str]) -> int:
    """Runs the ``radiobject`` command line with ``argv``; returns the exit code."""

# Exception classes, created by the native module (re-exported by radiobject.exceptions).
class RadiObjectError(Exception):
    uri: str | None
    op: str | None

class ShapeError(RadiObjectError, ValueError): ...
class RegionError(ShapeError, IndexError): ...
class DtypeError(ShapeError, TypeError): ...
class AlignmentError(RadiObjectError, ValueError): ...
class StorageError(RadiObjectError, RuntimeError): ...
class CorruptDataError(StorageError): ...
class ConfigurationError(RadiObjectError, ValueError): ...
class SchemaError(RadiObjectError, ValueError): ...
class IngestError(RadiObjectError, ValueError): ...
class ViewError(RadiObjectError, TypeError): ...
class NotFoundError(RadiObjectError, FileNotFoundError): ...
class AlreadyExistsError(StorageError, FileExistsError): ...
class ObjectTypeError(RadiObjectError, ValueError): ...
class InvalidArgumentError(RadiObjectError, ValueError): ...
class OutOfMemoryError(RadiObjectError, MemoryError): ...
class DatasetLockedError(StorageError): ...
