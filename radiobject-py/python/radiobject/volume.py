"""Volume: one 3D or 4D radiology acquisition stored as a dense TileDB array."""

from __future__ import annotations

import builtins
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from radiobject import _radiobject as _rb
from radiobject.ctx import (
    Context,
    SliceOrientation,
    WriteConfig,
    _config_json,
    get_radiobject_config,
    get_tiledb_ctx,
    resolve_ctx,
)
from radiobject.exceptions import DtypeError, RegionError, ShapeError
from radiobject.imaging import volume_from_dicom, volume_from_nifti, volume_to_nifti
from radiobject.orientation import metadata_to_orientation_info

if TYPE_CHECKING:
    from radiobject.orientation import OrientationInfo

__all__ = ["Volume", "VOXELS_ATTR"]

VOXELS_ATTR = "voxels"  #: name of the attribute holding the voxels


def _write_json(write: WriteConfig | None) -> str:
    cfg = write if write is not None else get_radiobject_config().write
    return _config_json(cfg)


def _as_index(v: Any, what: str) -> int:
    """``v`` as an int: ints and NumPy integers only (a float would be truncated silently)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {type(v).__name__} {v!r}")
    return int(v)


def _region_arg(region: Any) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` checked: integer bounds, none negative (a region never wraps)."""
    out = []
    for axis, r in enumerate(region):
        try:
            a, b = r
        except (TypeError, ValueError):
            raise TypeError(f"region axis {axis} must be a (start, stop) pair, got {r!r}") from None
        a, b = _as_index(a, f"region start of axis {axis}"), _as_index(b, f"region stop of axis {axis}")
        if a < 0 or b < 0:
            raise RegionError(
                f"region ({a}, {b}) of axis {axis} has a negative bound; regions are [start, stop) from 0"
            )
        out.append((a, b))
    return out


def _parse_key(key: Any, shape: tuple[int, ...]) -> tuple[list[tuple[int, int]], tuple[Any, ...], list[int]]:
    """Turns a NumPy-style key into (region, post-read index, axes to drop).

    Supports ints (negative too), slices (negative bounds, steps) and ``...``. Explicit bounds
    outside the volume raise :class:`RegionError` rather than being clipped.
    """
    if not isinstance(key, tuple):
        key = (key,)
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if Ellipsis in key:
        i = key.index(Ellipsis)
        fill = len(shape) - (len(key) - 1)
        key = key[:i] + (slice(None),) * max(fill, 0) + key[i + 1 :]
    if len(key) > len(shape):
        raise RegionError(f"too many indices: the volume has {len(shape)} axes, got {len(key)}")
    key = key + (slice(None),) * (len(shape) - len(key))
    region: list[tuple[int, int]] = []
    post: list[Any] = []
    drop: list[int] = []
    for axis, (k, n) in enumerate(zip(key, shape)):
        if isinstance(k, (bool, np.bool_)):
            raise TypeError("boolean indices are not supported on volumes")
        if isinstance(k, (int, np.integer)):
            i = int(k)
            j = i + n if i < 0 else i
            if not 0 <= j < n:
                raise RegionError(f"index {i} is out of bounds for axis {axis} with size {n}")
            region.append((j, j + 1))
            post.append(0)
            drop.append(axis)
        elif isinstance(k, slice):
            step = 1 if k.step is None else int(k.step)
            if step == 0:
                raise ValueError("slice step cannot be zero")
            start, stop = k.start, k.stop
            for b in (start, stop):
                if b is not None and not isinstance(b, (int, np.integer)):
                    raise TypeError(f"slice bounds must be integers, got {type(b).__name__}")
            if step > 0:
                a = 0 if start is None else int(start) + (n if int(start) < 0 else 0)
                b = n if stop is None else int(stop) + (n if int(stop) < 0 else 0)
            else:
                # reversed slice: read the covered range, then reverse
                hi = n - 1 if start is None else int(start) + (n if int(start) < 0 else 0)
                lo = -1 if stop is None else int(stop) + (n if int(stop) < 0 else 0)
                a, b = lo + 1, hi + 1
            if a < 0 or b > n:
                raise RegionError(f"slice {k} is out of bounds for axis {axis} with size {n}")
            if a >= b:
                raise RegionError(f"slice {k} selects no voxel on axis {axis} (size {n})")
            region.append((a, b))
            post.append(slice(None, None, step) if step != 1 else slice(None))
        elif k is None:
            raise TypeError("np.newaxis is not supported on volumes; reshape the result instead")
        else:
            raise TypeError(
                f"volumes accept ints, slices and '...' as indices, got {type(k).__name__}; "
                "read a bounding region and index the NumPy result for fancy indexing"
            )
    return region, tuple(post), drop


class Volume:
    """A single 3D/4D volume backed by a dense TileDB array.

    The array is opened once, when the ``Volume`` is created, and stays open: reads never reopen it.
    Reads return NumPy arrays in Fortran order (x fastest, like NIfTI and nibabel) without extra
    copies; regions go through the context's tile cache. Every TileDB call releases the GIL.

    Args:
        uri: local path or ``s3://`` URI of the array.
        ctx: the :class:`~radiobject.Context` to read through (default: the global one).
    """

    __slots__ = ("__weakref__", "_native", "_uri")

    def __init__(self, uri: str, ctx: Context | None = None):
        if not isinstance(uri, (str, os.PathLike)):
            raise TypeError(f"uri must be a str or os.PathLike, got {type(uri).__name__}")
        self._native = _rb.NativeVolume.open(str(uri), resolve_ctx(ctx))
        self._uri = str(uri)

    @classmethod
    def _wrap(cls, native: Any) -> Volume:
        v = cls.__new__(cls)
        v._native = native
        v._uri = native.uri
        return v

    @classmethod
    def open(cls, uri: str, ctx: Context | None = None) -> Volume:
        """Opens an existing volume (same as ``Volume(uri, ctx)``)."""
        return cls(uri, ctx)

    @classmethod
    def create(
        cls,
        uri: str,
        shape: tuple[int, ...],
        dtype: Any = np.float32,
        ctx: Context | None = None,
        *,
        write: WriteConfig | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Volume:
        """Creates an empty 3D/4D volume (tiling and compression from ``write`` or the global
        configuration). Raises :class:`ShapeError` for other shapes and refuses existing URIs."""
        shape = tuple(int(n) for n in shape)
        name = np.dtype(dtype).name
        native = _rb.NativeVolume.create(
            str(uri), list(shape), name, resolve_ctx(ctx), _write_json(write), metadata or {}
        )
        return cls._wrap(native)

    @classmethod
    def from_numpy(
        cls,
        uri: str,
        data: np.ndarray,
        ctx: Context | None = None,
        *,
        write: WriteConfig | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Volume:
        """Creates a volume holding ``data`` (3D or 4D, any voxel dtype, any memory layout).

        ``data`` and ``metadata`` are written in a single array session; if anything fails, nothing
        is left at ``uri``.
        """
        arr = np.asarray(data)  # the native writer checks ndim/shape, then dtype
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        native = _rb.NativeVolume.from_numpy(str(uri), arr, resolve_ctx(ctx), _write_json(write), metadata or {})
        return cls._wrap(native)

    @classmethod
    def from_nifti(cls, uri: str, nifti_path: Any, ctx: Context | None = None, reorient: bool | None = None) -> Volume:
        """Creates a volume from a NIfTI file (voxels, orientation and NIfTI header metadata)."""
        return volume_from_nifti(cls, uri, nifti_path, ctx=ctx, reorient=reorient)

    @classmethod
    def from_dicom(
        cls, uri: str, dicom_dir: Any, ctx: Context | None = None, reorient: bool | None = None, dtype: Any = None
    ) -> Volume:
        """Creates a volume from a DICOM series directory (CT in Hounsfield units)."""
        return volume_from_dicom(cls, uri, dicom_dir, ctx=ctx, reorient=reorient, dtype=dtype)

    # ------------------------------------------------------------------ properties

    @property
    def uri(self) -> str:
        """URI of the array."""
        return self._uri

    @property
    def shape(self) -> tuple[int, ...]:
        """Voxels along x, y, z (and t)."""
        return tuple(self._native.shape)

    @property
    def ndim(self) -> int:
        """3 or 4."""
        return len(self._native.shape)

    @property
    def dtype(self) -> np.dtype:
        """Voxel type."""
        return np.dtype(self._native.dtype)

    @property
    def nbytes(self) -> int:
        """Size of the decoded voxels in bytes."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def tile_extents(self) -> tuple[int, ...]:
        """Tile extent along each axis."""
        return tuple(self._native.tile_extents)

    @property
    def context(self) -> Context:
        """The context this volume reads through."""
        return self._native.context

    @property
    def metadata(self) -> dict[str, Any]:
        """All array metadata (str, int, float, tuples or bytes)."""
        return self._native.metadata()

    @property
    def obs_id(self) -> str | None:
        """The ``obs_id`` metadata, if this volume belongs to a collection."""
        v = self._native.metadata().get("obs_id")
        return v if isinstance(v, str) else None

    @property
    def tile_orientation(self) -> SliceOrientation | None:
        """Tiling the volume was created with (None if unknown)."""
        v = self._native.metadata().get("tile_orientation")
        try:
            return SliceOrientation(v) if v else None
        except ValueError:
            return None

    @property
    def orientation_info(self) -> OrientationInfo | None:
        """Anatomical orientation from metadata (None if the volume has none)."""
        try:
            return metadata_to_orientation_info(self._native.metadata())
        except (KeyError, ValueError, TypeError):
            return None

    def __repr__(self) -> str:
        shape = "x".join(str(n) for n in self.shape)
        obs = f", obs_id='{self.obs_id}'" if self.obs_id else ""
        return f"Volume(shape={shape}, dtype={self.dtype}{obs})"

    # ------------------------------------------------------------------ reads

    def read(self, region: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> np.ndarray:
        """Reads ``[(start, stop), ...]`` (one half-open range per axis) into a new array."""
        return self._native.read(_region_arg(region))

    def read_into(self, region: list[tuple[int, int]], out: np.ndarray) -> np.ndarray:
        """Reads ``region`` into ``out`` (Fortran-contiguous, the region's shape and the volume's dtype)."""
        self._native.read_into(_region_arg(region), out)
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        """NumPy-style reads: ``vol[10:74, 20:84, 30:94]``, ``vol[:, :, -1]``, ``vol[..., 0]``.

        Integer indices drop their axis; slice steps are applied after reading the covered range.
        Bounds outside the volume raise :class:`~radiobject.exceptions.RegionError`.
        """
        region, post, _drop = _parse_key(key, self.shape)
        out = self._native.read(region)
        if any(p != slice(None) for p in post):
            out = out[post]
        return out

    def __setitem__(self, key: Any, value: Any) -> None:
        """Writes ``value`` (broadcast to the selection, same dtype as the volume) into a region:
        ``vol[10:20, :, 5] = plane``. Ints and step-1 slices only."""
        region, post, drop = _parse_key(key, self.shape)
        if any(p not in (slice(None), 0) for p in post):
            raise TypeError("writes support ints and step-1 slices only")
        shape = tuple(b - a for a, b in region)
        selected = tuple(n for axis, n in enumerate(shape) if axis not in drop)
        arr = np.asarray(value)
        if arr.dtype != self.dtype:
            raise DtypeError(f"cannot write {arr.dtype} data into a {self.dtype} volume; cast it first")
        try:
            arr = np.broadcast_to(arr, selected)
        except ValueError:
            raise ShapeError(f"cannot write data of shape {arr.shape} into a selection of shape {selected}") from None
        self._native.write(region, arr.reshape(shape))

    def write(self, data: np.ndarray, region: list[tuple[int, int]] | None = None) -> None:
        """Writes ``data`` into ``region`` (default: the whole volume). Same dtype required."""
        arr = np.asarray(data)
        if region is None:
            region = [(0, n) for n in self.shape]
        self._native.write(_region_arg(region), arr)

    def slice(
        self,
        x: builtins.slice,
        y: builtins.slice,
        z: builtins.slice,
        t: builtins.slice | None = None,
    ) -> np.ndarray:
        """Reads ``[x, y, z(, t)]`` given as slices; on 4D volumes ``t=None`` reads every t."""
        if self.ndim == 4:
            return self[x, y, z, t if t is not None else builtins.slice(None)]
        if t is not None:
            raise RegionError("t is only valid for 4D volumes")
        return self[x, y, z]

    def _plane(self, axis: int, index: int, t: int | None) -> np.ndarray:
        key: list[Any] = [builtins.slice(None)] * self.ndim
        key[axis] = builtins.slice(index, index + 1) if index >= 0 else builtins.slice(index, index + 1 or None)
        if t is not None:
            t = _as_index(t, "t")
            if self.ndim != 4:
                raise RegionError("t is only valid for 4D volumes")
            key[3] = builtins.slice(t, t + 1) if t >= 0 else builtins.slice(t, t + 1 or None)
        return self[tuple(key)].squeeze()

    def axial(self, z: int, t: int | None = None) -> np.ndarray:
        """The x-y plane at ``z`` (squeezed; 4D with ``t=None`` keeps every t)."""
        return self._plane(2, _as_index(z, "z"), t)

    def sagittal(self, x: int, t: int | None = None) -> np.ndarray:
        """The y-z plane at ``x``."""
        return self._plane(0, _as_index(x, "x"), t)

    def coronal(self, y: int, t: int | None = None) -> np.ndarray:
        """The x-z plane at ``y``."""
        return self._plane(1, _as_index(y, "y"), t)

    def to_numpy(self) -> np.ndarray:
        """Reads the whole volume (streamed straight into the result, bypassing the tile cache)."""
        return self._native.read([(0, n) for n in self.shape])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self.to_numpy()
        return a if dtype is None else a.astype(dtype)

    def get_statistics(self, percentiles: list[float] | None = None) -> dict[str, float]:
        """Mean, std, min, max, median and optional percentiles (``p<int>`` keys)."""
        flat = self.to_numpy().ravel(order="K")
        stats = {
            "mean": float(flat.mean()),
            "std": float(flat.std()),
            "min": float(flat.min()),
            "max": float(flat.max()),
            "median": float(np.median(flat)),
        }
        if percentiles:
            for p, v in zip(percentiles, np.percentile(flat, percentiles)):
                stats[f"p{int(p)}"] = float(v)
        return stats

    def compute_histogram(
        self, bins: int = 256, value_range: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Intensity histogram: ``(counts, bin_edges)``."""
        return np.histogram(self.to_numpy().ravel(order="K"), bins=bins, range=value_range)

    # ------------------------------------------------------------------ metadata

    def set_metadata(self, items: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Writes metadata items in one array session."""
        merged = {**(items or {}), **kwargs}
        if merged:
            self._native.set_metadata(merged)

    def delete_metadata(self, *keys: str) -> None:
        """Deletes metadata keys."""
        self._native.delete_metadata(list(keys))

    def set_obs_id(self, obs_id: str) -> None:
        """Stores the observation identifier (``obs_id`` metadata)."""
        self._native.set_metadata({"obs_id": str(obs_id)})

    def reopen(self) -> None:
        """Reopens the array to see writes made through other handles or processes."""
        self._native.reopen()

    def to_nifti(self, file_path: Any, compression: bool = True) -> None:
        """Exports to NIfTI, restoring the affine and NIfTI header fields from metadata."""
        volume_to_nifti(self, file_path, compression=compression)

    def __getstate__(self) -> dict[str, Any]:
        ctx = self._native.context
        return {"uri": self._uri, "config": ctx.config_json()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickled volumes (e.g. sent to DataLoader workers) reopen through the receiving process's
        # global context when its configuration matches, else through one shared context per
        # configuration (so they share a cache and TileDB's threads).
        self._native = _rb.NativeVolume.open(state["uri"], context_for_config(state["config"]))
        self._uri = state["uri"]


_CONTEXTS: dict[tuple[int, str], Context] = {}


def context_for_config(config_json: str) -> Context:
    """The context for unpickled objects configured as ``config_json``: the global context if its
    configuration matches, else one context per configuration and process."""
    g = get_tiledb_ctx()
    if g.config_json() == config_json:
        return g
    key = (os.getpid(), config_json)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = _CONTEXTS[key] = Context(config_json)
    return ctx
