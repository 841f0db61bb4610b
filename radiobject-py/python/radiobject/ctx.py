"""Configuration and contexts.

The configuration has three sections, each a small class with the same fields and defaults as the
reference RadiObject package:

* :class:`WriteConfig` — how new volumes are written (:class:`TileConfig`,
  :class:`CompressionConfig`, :class:`OrientationConfig`);
* :class:`ReadConfig` — TileDB memory budget and concurrency, the tile cache, worker threads;
* :class:`S3Config` — region, endpoint, parallelism of S3 requests.

Every section validates on construction and :func:`configure` validates the whole configuration
before installing it; invalid values raise :class:`~radiobject.exceptions.ConfigurationError` and
leave the previous configuration in place. Plain dicts (e.g. from Hydra/OmegaConf) are accepted
wherever a section is.

A :class:`Context` owns a TileDB context, a tile cache and a worker pool. :func:`get_tiledb_ctx`
returns the process-wide one, built lazily from the configuration and rebuilt after
:func:`configure` or in a forked child.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from radiobject import _radiobject as _rb
from radiobject._radiobject import Context

__all__ = [
    "SliceOrientation",
    "Compressor",
    "TileConfig",
    "CompressionConfig",
    "OrientationConfig",
    "WriteConfig",
    "ReadConfig",
    "S3Config",
    "RadiObjectConfig",
    "Context",
    "configure",
    "get_radiobject_config",
    "get_config",
    "reset_radiobject_config",
    "get_tiledb_ctx",
    "tdb_ctx",
    "get_tiledb_config",
]


class SliceOrientation(str, enum.Enum):
    """Preferred slicing orientation; decides the tile shape of new volumes."""

    AXIAL = "axial"  #: tiles (X, Y, 1): fast axial slices
    SAGITTAL = "sagittal"  #: tiles (1, Y, Z)
    CORONAL = "coronal"  #: tiles (X, 1, Z)
    ISOTROPIC = "isotropic"  #: tiles (64, 64, 64): fast 3D regions


class Compressor(str, enum.Enum):
    """Compression algorithm for voxel data."""

    ZSTD = "zstd"
    LZ4 = "lz4"
    GZIP = "gzip"
    NONE = "none"


#: The defaults, from the native configuration model (the one place they are defined).
_DEFAULT: dict[str, Any] = json.loads(_rb.validate_config("{}"))
_TILE, _COMPRESSION, _ORIENTATION = (_DEFAULT["write"][k] for k in ("tile", "compression", "orientation"))
_READ, _S3 = _DEFAULT["read"], _DEFAULT["s3"]
_SLICING, _COMPRESSOR = SliceOrientation(_TILE["orientation"]), Compressor(_COMPRESSION["algorithm"])


def _plain(obj: Any) -> Any:
    """Converts config objects, pydantic models, mappings and enums into JSON-able values."""
    if isinstance(obj, enum.Enum):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if hasattr(obj, "model_dump") and callable(obj.model_dump):
        return _plain(obj.model_dump())
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if hasattr(obj, "items") and callable(obj.items):  # OmegaConf DictConfig and friends
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _config_json(obj: Any) -> str:
    """JSON of a whole configuration given as a RadiObjectConfig, pydantic model or mapping."""
    return json.dumps(_plain(obj))


class _Section:
    """Shared behaviour of the config classes: validation and pydantic-style helpers."""

    _section: str = ""

    def __post_init__(self) -> None:
        self._coerce()
        _rb.validate_config(json.dumps(self._wrap()))

    def _coerce(self) -> None:
        pass

    def _wrap(self) -> dict:
        """This section placed in a whole-config dict, for validation."""
        return {self._section: self.model_dump()}

    def model_dump(self, **_: Any) -> dict:
        """The fields as a plain dict (enums as their values)."""
        return _plain(self)

    def to_dict(self) -> dict:
        """Alias of :meth:`model_dump`."""
        return self.model_dump()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Any:
        """A validated copy with ``update`` applied."""
        return dataclasses.replace(self, **dict(update or {}))  # type: ignore[type-var]  # subclasses are dataclasses

    @classmethod
    def model_validate(cls, obj: Any) -> Any:
        """Builds the section from a mapping (or returns it if it already is one)."""
        return _coerce_section(cls, obj)


def _coerce_section(cls: type, obj: Any) -> Any:
    if isinstance(obj, cls):
        return obj
    if obj is None:
        return cls()
    data = _plain(obj)
    if not isinstance(data, dict):
        from radiobject.exceptions import ConfigurationError

        raise ConfigurationError(f"{cls.__name__} expects a mapping or a {cls.__name__}, got {type(obj).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        from radiobject.exceptions import ConfigurationError

        raise ConfigurationError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {sorted(known)}")
    return cls(**data)


@dataclass
class TileConfig(_Section):
    """Tile extents of new volumes.

    ``x``/``y``/``z`` override the extents implied by ``orientation``; ``t`` is the extent along
    time for 4D volumes. Extents are clipped to the volume's shape.
    """

    orientation: SliceOrientation = _SLICING
    x: int | None = _TILE["x"]
    y: int | None = _TILE["y"]
    z: int | None = _TILE["z"]
    t: int = _TILE["t"]

    def _coerce(self) -> None:
        self.orientation = _enum(SliceOrientation, self.orientation)

    def _wrap(self) -> dict:
        return {"write": {"tile": self.model_dump()}}

    def extents_for_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Tile extents for a volume of ``shape`` (3 or 4 axes), clipped to the shape (the
        native rule the writers use)."""
        return tuple(_rb.tile_extents([int(n) for n in shape], json.dumps(self._wrap())))


def _enum(cls: type[enum.Enum], value: Any) -> Any:
    if isinstance(value, cls):
        return value
    try:
        return cls(value.value if isinstance(value, enum.Enum) else str(value).lower())
    except ValueError:
        from radiobject.exceptions import ConfigurationError

        choices = ", ".join(m.value for m in cls)
        raise ConfigurationError(f"{cls.__name__} must be one of {choices}; got {value!r}") from None


@dataclass
class CompressionConfig(_Section):
    """Compression of voxel data. Valid levels: zstd -1..22, lz4 -1..16, gzip -1..9."""

    algorithm: Compressor = _COMPRESSOR
    level: int = _COMPRESSION["level"]

    def _coerce(self) -> None:
        self.algorithm = _enum(Compressor, self.algorithm)

    def _wrap(self) -> dict:
        return {"write": {"compression": self.model_dump()}}


@dataclass
class OrientationConfig(_Section):
    """Orientation handling at ingest: ``canonical_target`` is RAS, LAS or LPS."""

    auto_detect: bool = _ORIENTATION["auto_detect"]
    canonical_target: str = _ORIENTATION["canonical_target"]
    reorient_on_load: bool = _ORIENTATION["reorient_on_load"]
    store_original_affine: bool = _ORIENTATION["store_original_affine"]

    def _wrap(self) -> dict:
        return {"write": {"orientation": self.model_dump()}}


@dataclass
class WriteConfig(_Section):
    """Settings applied when creating volumes (fixed once an array exists)."""

    tile: TileConfig = field(default_factory=TileConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    orientation: OrientationConfig = field(default_factory=OrientationConfig)

    _section = "write"

    def _coerce(self) -> None:
        self.tile = _coerce_section(TileConfig, self.tile)
        self.compression = _coerce_section(CompressionConfig, self.compression)
        self.orientation = _coerce_section(OrientationConfig, self.orientation)


@dataclass
class ReadConfig(_Section):
    """Settings for reading.

    * ``memory_budget_mb`` (>= 64): TileDB's reader budget (``sm.mem.total_budget``, and
      ``sm.memory_budget``/``sm.memory_budget_var`` for the legacy readers).
    * ``tile_cache_size_mb`` (>= 0): byte budget of each context's tile cache; 0 disables it.
    * ``concurrency`` (1..64): TileDB compute and I/O threads.
    * ``max_workers`` (1..32): threads serving batch reads and parallel writes.
    * ``direct_reads``: decode tiles with radiobject's own TileDB format reader instead of
      libtiledb's reader (arrays it does not understand still go to libtiledb; ``False`` sends every
      read there).
    * ``compressed_cache_mb`` (>= 0): budget of the compressed-tile cache, which keeps remote (S3)
      tiles as stored so epoch 2+ of data larger than the tile cache reads from memory; 0 disables it.
    """

    memory_budget_mb: int = _READ["memory_budget_mb"]
    tile_cache_size_mb: int = _READ["tile_cache_size_mb"]
    concurrency: int = _READ["concurrency"]
    max_workers: int = _READ["max_workers"]
    direct_reads: bool = _READ["direct_reads"]
    compressed_cache_mb: int = _READ["compressed_cache_mb"]

    _section = "read"


@dataclass
class S3Config(_Section):
    """S3 settings. Credentials are never stored: TileDB resolves them through the standard AWS
    chain (environment, profile, SSO, web identity, container/instance roles) when needed.

    ``include_credentials=False`` sends unsigned requests (public buckets). An ``endpoint`` with a
    scheme (``http://127.0.0.1:9000``) also sets the scheme; S3-compatible servers usually need
    ``use_virtual_addressing=False``.
    """

    region: str = _S3["region"]
    endpoint: str | None = _S3["endpoint"]
    use_virtual_addressing: bool = _S3["use_virtual_addressing"]
    max_parallel_ops: int = _S3["max_parallel_ops"]
    multipart_part_size_mb: int = _S3["multipart_part_size_mb"]
    include_credentials: bool = _S3["include_credentials"]
    scheme: str | None = _S3["scheme"]
    verify_ssl: bool = _S3["verify_ssl"]
    request_timeout_ms: int | None = _S3["request_timeout_ms"]
    connect_max_tries: int | None = _S3["connect_max_tries"]

    _section = "s3"


@dataclass
class RadiObjectConfig(_Section):
    """The whole configuration.

    The defaults and every check are the native configuration model's; these classes are typed
    views of it (what a section accepts is exactly what ``radiobject.configure`` accepts)."""

    write: WriteConfig = field(default_factory=WriteConfig)
    read: ReadConfig = field(default_factory=ReadConfig)
    s3: S3Config = field(default_factory=S3Config)

    def _coerce(self) -> None:
        self.write = _coerce_section(WriteConfig, self.write)
        self.read = _coerce_section(ReadConfig, self.read)
        self.s3 = _coerce_section(S3Config, self.s3)

    def _wrap(self) -> dict:
        return self.model_dump()

    def tiledb_params(self) -> dict[str, str]:
        """The TileDB config parameters this configuration sets (never credentials)."""
        return dict(_rb.tiledb_params(_config_json(self)))

    def to_tiledb_config(self, include_s3_credentials: bool = False) -> Any:
        """A ``tiledb.Config`` with these parameters (for use with tiledb-py).

        Credentials are left to the AWS credential chain; ``include_s3_credentials`` is accepted
        for compatibility and ignored.
        """
        import tiledb

        return tiledb.Config(self.tiledb_params())

    def to_tiledb_ctx(self, include_s3_credentials: bool = False) -> Any:
        """A ``tiledb.Ctx`` with these parameters (for use with tiledb-py)."""
        import tiledb

        return tiledb.Ctx(self.to_tiledb_config())

    def to_context(self) -> Context:
        """A new radiobject :class:`Context` built from this configuration."""
        return Context(_config_json(self))

    @classmethod
    def from_json(cls, text: str) -> RadiObjectConfig:
        """Builds a configuration from JSON."""
        return _coerce_section(cls, json.loads(text))


def get_radiobject_config() -> RadiObjectConfig:
    """A copy of the current global configuration."""
    return RadiObjectConfig.from_json(_rb.global_config_json())


def get_config() -> RadiObjectConfig:
    """Alias of :func:`get_radiobject_config` (PyPI radiobject 0.1.1 name)."""
    return get_radiobject_config()


def configure(
    *,
    write: WriteConfig | Mapping[str, Any] | None = None,
    read: ReadConfig | Mapping[str, Any] | None = None,
    s3: S3Config | Mapping[str, Any] | None = None,
) -> None:
    """Replaces whole sections of the global configuration.

    Sections may be config objects or plain mappings (missing fields take their defaults). The
    merged configuration is validated before anything changes; on success the global context is
    dropped and rebuilt lazily. Existing :class:`Context` objects keep their configuration.

    Example::

        configure(read=ReadConfig(max_workers=8, tile_cache_size_mb=1024),
                  s3={"endpoint": "http://127.0.0.1:9000", "use_virtual_addressing": False})
    """
    current = get_radiobject_config()
    merged = RadiObjectConfig(
        write=_coerce_section(WriteConfig, write) if write is not None else current.write,
        read=_coerce_section(ReadConfig, read) if read is not None else current.read,
        s3=_coerce_section(S3Config, s3) if s3 is not None else current.s3,
    )
    _rb.set_global_config(_config_json(merged))


def reset_radiobject_config() -> None:
    """Restores the default configuration and drops the global context."""
    _rb.reset_global_config()


def get_tiledb_ctx() -> Context:
    """The process-wide :class:`Context` (never shared with a forked child)."""
    return _rb.global_context()


def tdb_ctx() -> Context:
    """Alias of :func:`get_tiledb_ctx`."""
    return _rb.global_context()


def get_tiledb_config() -> Any:
    """The global configuration as a ``tiledb.Config`` (for tiledb-py)."""
    return get_radiobject_config().to_tiledb_config()


_TILEDB_CTX_CONTEXTS: dict[int, tuple[Any, Context]] = {}


def resolve_ctx(ctx: Any = None) -> Context:
    """The :class:`Context` to use for ``ctx``: the global one for None, ``ctx`` itself, or for a
    tiledb-py ``tiledb.Ctx`` (code written for the reference) a context built from the global
    configuration, created once per ``tiledb.Ctx`` (its own TileDB parameters are not carried over).
    """
    if ctx is None:
        return _rb.global_context()
    if isinstance(ctx, Context):
        return ctx
    if type(ctx).__module__.startswith("tiledb"):
        hit = _TILEDB_CTX_CONTEXTS.get(id(ctx))
        if hit is not None and hit[0] is ctx:
            return hit[1]
        context = Context(get_radiobject_config())
        _TILEDB_CTX_CONTEXTS[id(ctx)] = (ctx, context)
        return context
    from radiobject.exceptions import InvalidArgumentError

    raise InvalidArgumentError(f"ctx must be a radiobject Context (or None), got {type(ctx).__name__}")
