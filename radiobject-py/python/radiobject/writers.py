"""Streaming writers: build a ``VolumeCollection`` or a whole ``RadiObject`` volume by volume.

Both are context managers over the native writers:

* volumes are written as they arrive (memory stays bounded), but **nothing is registered** — obs
  rows, ``volumes`` group members, ``n_volumes`` — until the ``with`` block ends cleanly; then each
  collection is registered with **one** group write (the reference wrote the ``volumes`` group once
  per volume, so writing N volumes cost O(N²) group reads);
* if the block raises, the writer **aborts**: every volume it wrote is removed (and the collection
  or dataset, if it created it), so no orphan volume and no half-registered collection remains
  (the reference left both behind);
* ``RadiObjectWriter`` fills each subject's ``obs_ids`` in ``obs_meta`` from the collections
  actually written (the reference left ``"[]"``, so its own ``validate()`` failed), and refuses an
  ``obs_id`` already used by another collection of the dataset (:class:`AlignmentError`).

The rules (obs_id uniqueness, obs column types, obs_meta rows, what is registered when) are the
native writers'; these classes add the ``with`` protocol and pandas conversion.

Example::

    with RadiObjectWriter(uri, obs_meta_schema={"age": "int64"}) as w:
        w.write_obs_meta(pd.DataFrame({"obs_subject_id": ["s1", "s2"], "age": [40, 51]}))
        with w.add_collection("T1w", shape=(240, 240, 155)) as t1:
            for sid, data in scans:
                t1.write_volume(data, obs_id=f"{sid}_T1w", obs_subject_id=sid, scanner="A")
    radi = w.finalize()
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from radiobject import _radiobject as _rb
from radiobject._frames import frame_kinds, kind_of_dtype, pandas_to_frame
from radiobject._registry import wrapper
from radiobject.ctx import Context, WriteConfig, resolve_ctx
from radiobject.exceptions import StorageError
from radiobject.volume import _write_json

if TYPE_CHECKING:
    from radiobject.radi_object import RadiObject
    from radiobject.volume_collection import VolumeCollection

__all__ = ["VolumeCollectionWriter", "RadiObjectWriter"]

log = logging.getLogger(__name__)

_OBS_INDEX = ("obs_subject_id", "obs_id")


def _native_array(data: Any) -> np.ndarray:
    """``data`` as an array in native byte order (the native writer checks ndim, dtype and shape)."""
    arr = np.asarray(data)
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _schema_kinds(schema: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(n): kind_of_dtype(d, str(n)) for n, d in (schema or {}).items() if str(n) not in _OBS_INDEX}


class _Lifecycle:
    """``new -> open -> finished | aborted`` around a native writer: used as a context manager,
    a clean exit finishes it and an exception aborts it (the native writer removes what it wrote)."""

    _native: Any = None
    _state = "new"

    def _open_native(self) -> Any:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        if self._state != "new":
            raise StorageError(f"this writer is already {self._state}; use a new one")
        self._native = self._open_native()
        self._state = "open"
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._state != "open":
            return
        if exc_type is None:
            self._finish()
        else:
            self._abort()

    def _abort(self) -> None:
        try:
            self._native.abort()
        finally:
            self._state = "aborted"

    def _check_open(self) -> None:
        if self._state == "new":
            raise StorageError(f"use the writer as a context manager: `with {type(self).__name__}(...) as w:`")
        if self._state != "open":
            raise StorageError(f"this writer is already {self._state}")


class VolumeCollectionWriter(_Lifecycle):
    """Writes a new collection volume by volume (a context manager).

    Args:
        uri: where to create the collection (nothing may exist there).
        shape: ``(x, y, z)`` every volume must have (4D volumes: their first three axes); None
            allows any shapes (``x_dim/y_dim/z_dim`` are still recorded if they all agree).
        obs_schema: ``{column: dtype}`` created up front; other columns are added as they appear
            (typed by their first non-null value; later values are converted to the stored type
            when exact, else :class:`SchemaError`).
        name: the collection's ``name`` metadata.
        ctx: context to write through (default: the global one).
        write: tiling and compression (default: the global configuration).
    """

    def __init__(
        self,
        uri: str,
        shape: tuple[int, int, int] | None = None,
        obs_schema: Mapping[str, Any] | None = None,
        name: str | None = None,
        ctx: Context | None = None,
        *,
        write: WriteConfig | None = None,
    ):
        self.uri = str(uri).rstrip("/")
        self.shape = None if shape is None else tuple(int(n) for n in shape)
        if self.shape is not None:
            _rb.check_collection_shape(self.shape)
        self.obs_schema = dict(obs_schema or {})
        self.name = name
        self._ctx = resolve_ctx(ctx)
        self._write = write
        self._kinds = _schema_kinds(self.obs_schema)
        self._obs_ids: list[str] = []
        self._result: Any = None

    def _open_native(self) -> Any:
        return _rb.NativeCollectionWriter.create(
            self.uri,
            self._ctx,
            name=self.name,
            shape=None if self.shape is None else list(self.shape),
            obs_schema=self._kinds,
            write_json=_write_json(self._write),
        )

    @classmethod
    def _appending(cls, vc: VolumeCollection, opener: Any, *, write: WriteConfig | None = None) -> Any:
        """A writer adding to the existing collection ``vc`` through the native writer ``opener()``
        returns (its obs columns keep their stored types)."""
        w = cls(vc.uri or "", shape=vc.shape, ctx=vc._context, write=write)
        w._open_native = opener  # type: ignore[method-assign]
        return w

    def _finish(self) -> None:
        self._result = self._native.finish()
        self._state = "finished"
        log.info("wrote %d volumes to %s", len(self._obs_ids), self.uri)

    def write_volume(self, data: np.ndarray, obs_id: str, obs_subject_id: str, **attrs: Any) -> None:
        """Writes one volume and buffers its obs row (``attrs``: extra obs columns)."""
        self._write_one(data, obs_id, obs_subject_id, attrs, None)

    def _write_one(
        self,
        data: Any,
        obs_id: str,
        obs_subject_id: str,
        attrs: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
    ) -> None:
        self._check_open()
        cells = {str(k): v for k, v in attrs.items()} if attrs else None
        self._native.write_volume(
            _native_array(data), str(obs_id), str(obs_subject_id), cells, dict(metadata) if metadata else None
        )
        self._obs_ids.append(str(obs_id))

    def write_batch(self, volumes: Iterable[tuple[Any, ...]]) -> None:
        """Writes ``(data, obs_id, obs_subject_id[, attrs])`` tuples."""
        for item in volumes:
            self._write_one(item[0], item[1], item[2], item[3] if len(item) > 3 else None, None)

    @property
    def n_written(self) -> int:
        """Volumes written so far."""
        return len(self._obs_ids)

    @property
    def obs_ids(self) -> list[str]:
        """obs_ids written so far, in write order."""
        return list(self._obs_ids)

    def finalize(self) -> VolumeCollection:
        """Finishes (if still open) and returns the collection."""
        if self._state == "open":
            self._finish()
        if self._state != "finished":
            raise StorageError(f"this writer was {self._state}; nothing to return")
        return wrapper("VolumeCollection")._from_native(self._result)

    @property
    def collection(self) -> VolumeCollection:
        """The written collection (after a clean exit)."""
        return self.finalize()


class _ManagedCollectionWriter(VolumeCollectionWriter):
    """A collection of a :class:`RadiObjectWriter`: a clean exit hands it to the native dataset
    writer, which checks its obs_ids against the other collections and registers it when the
    dataset's block ends (an exception there drops it with its volumes)."""

    def __init__(self, parent: RadiObjectWriter, name: str, opener: Any, **kw: Any):
        super().__init__(f"{parent.uri}/collections/{name}", name=name, ctx=parent._ctx, **kw)
        self._parent = parent
        self._open_native = opener  # type: ignore[method-assign]

    def __enter__(self) -> _ManagedCollectionWriter:
        super().__enter__()
        self._parent._children.append(self)
        return self

    def _finish(self) -> None:
        try:
            self._parent._native.register(self._native)
        except BaseException:
            self._state = "aborted"
            raise
        self._state = "finished"

    def finalize(self) -> VolumeCollection:
        """The collection, once its dataset's writer has finished (collections of a dataset are
        registered together, at the end of the dataset's block)."""
        if self._state == "open":
            self._finish()
        if self._parent._state != "finished" or self._state != "finished":
            raise StorageError("a dataset's collections are registered when its RadiObjectWriter finishes")
        return self._parent.finalize().collection(self.name or "")


class RadiObjectWriter(_Lifecycle):
    """Writes a new RadiObject collection by collection (a context manager).

    Args:
        uri: where to create the dataset (nothing may exist there).
        obs_meta_schema: ``{column: dtype}`` of the subject table (``obs_ids`` is managed).
        ctx: context to write through (default: the global one).
        write: tiling and compression for the volumes (default: the global configuration).

    ``write_obs_meta(df)`` may be called before or after the collections; if it is called, every
    subject that has volumes needs a row (else :class:`AlignmentError` at the end); without it,
    each subject gets a bare row. Collections are registered together when the block ends
    cleanly, with ``obs_meta`` (each subject's ``obs_ids``) and the counts; an exception removes
    the whole dataset.
    """

    def __init__(
        self,
        uri: str,
        obs_meta_schema: Mapping[str, Any] | None = None,
        ctx: Context | None = None,
        *,
        write: WriteConfig | None = None,
    ):
        self.uri = str(uri).rstrip("/")
        self._ctx = resolve_ctx(ctx)
        self._write = write
        schema = {str(k): v for k, v in (obs_meta_schema or {}).items() if str(k) not in ("obs_ids", "obs_id")}
        self._meta_kinds = {n: kind_of_dtype(d, n) for n, d in schema.items() if n != "obs_subject_id"}
        self.obs_meta_schema = schema
        self._children: list[_ManagedCollectionWriter] = []
        self._result: Any = None
        self._keep: list[str] | None = None  # from_collections: collections already in place below uri

    @classmethod
    def _extend(cls, radi: RadiObject, *, write: WriteConfig | None = None) -> RadiObjectWriter:
        """A writer adding to an existing dataset (nothing it adds is registered unless the whole
        block succeeds)."""
        native = radi._native
        self = cls(native.uri, None, native.context, write=write)
        self._meta_kinds = {
            n: k for n, k in frame_kinds(radi._meta_frame()).items() if n not in ("obs_subject_id", "obs_id", "obs_ids")
        }
        self._open_native = lambda: _rb.NativeDatasetWriter.extend(native)  # type: ignore[method-assign]
        return self

    def _open_native(self) -> Any:
        if self._keep is not None:
            return _rb.NativeDatasetWriter.create_around(
                self.uri, self._ctx, self._keep, obs_meta_schema=self._meta_kinds
            )
        return _rb.NativeDatasetWriter.create(self.uri, self._ctx, obs_meta_schema=self._meta_kinds)

    def _abort(self) -> None:
        for child in self._children:
            if child._state == "open":
                try:
                    child._abort()
                except Exception as e:  # noqa: BLE001 - keep cleaning up
                    log.warning("error while aborting collection %s of %s: %s", child.name, self.uri, e)
        super()._abort()

    def _finish(self) -> None:
        try:
            open_ = [c.name for c in self._children if c._state == "open"]
            if open_:
                raise StorageError(f"collection {open_[0]!r} was never closed; end its `with` block first")
            self._result = self._native.finish()
        except BaseException:
            self._abort()
            raise
        self._state = "finished"

    @property
    def collection_names(self) -> list[str]:
        """Collections handed over so far (registered when the block ends)."""
        return [c.name or "" for c in self._children if c._state == "finished"]

    def write_obs_meta(self, df: pd.DataFrame) -> None:
        """Subject rows (``obs_subject_id`` plus any columns; ``obs_ids`` is computed)."""
        self._check_open()
        frame = pandas_to_frame(df, ["obs_subject_id"], self._meta_kinds, skip=("obs_ids", "obs_id"))
        self._native.write_obs_meta(frame)
        for n, (k, _, _) in frame.items():
            if n != "obs_subject_id":
                self._meta_kinds.setdefault(n, k)

    def add_collection(
        self,
        name: str,
        shape: tuple[int, int, int] | None = None,
        obs_schema: Mapping[str, Any] | None = None,
    ) -> VolumeCollectionWriter:
        """A writer for a new collection ``name`` (use it as a context manager)."""
        self._check_open()
        name = str(name)
        self._native.check_new_collection(name)

        def opener() -> Any:
            return self._native.add_collection(
                name,
                shape=None if w.shape is None else list(w.shape),
                obs_schema=w._kinds,
                write_json=_write_json(w._write),
            )

        w = _ManagedCollectionWriter(self, name, opener, shape=shape, obs_schema=obs_schema, write=self._write)
        return w

    def _append_to(self, name: str) -> VolumeCollectionWriter:
        """A writer appending to this dataset's collection ``name`` (extend mode)."""
        return _ManagedCollectionWriter(
            self, name, lambda: self._native.append_collection(name, write_json=_write_json(self._write))
        )

    def _link(self, name: str) -> None:
        """Registers a collection already stored at ``{uri}/collections/{name}``."""
        self._native.link(name)

    def finalize(self) -> RadiObject:
        """Finishes (if still open) and returns the RadiObject."""
        if self._state == "open":
            self._finish()
        if self._state != "finished":
            raise StorageError(f"this writer was {self._state}; nothing to return")
        return wrapper("RadiObject")._from_native(self._result)
