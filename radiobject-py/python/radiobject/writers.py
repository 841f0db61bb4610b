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
from radiobject._frames import (
    coerce_value,
    frame_kinds,
    kind_of_dtype,
    kind_of_value,
    pandas_to_frame,
    py_value,
)
from radiobject._registry import wrapper
from radiobject.ctx import Context, WriteConfig, resolve_ctx
from radiobject.exceptions import (
    AlignmentError,
    SchemaError,
    StorageError,
)
from radiobject.volume import _write_json

if TYPE_CHECKING:
    from radiobject.radi_object import RadiObject
    from radiobject.volume_collection import VolumeCollection

__all__ = ["VolumeCollectionWriter", "RadiObjectWriter"]

log = logging.getLogger(__name__)

_OBS_INDEX = ("obs_subject_id", "obs_id")


class _AttrTyper:
    """Converts obs attribute values to the stored type of their column (learning the type of new
    columns from their first non-null value)."""

    def __init__(self, kinds: Mapping[str, str], *, existing: bool):
        self.kinds = dict(kinds)
        self.existing = existing

    def cells(self, attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if not attrs:
            return None
        out: dict[str, Any] = {}
        for key, value in attrs.items():
            name = str(key)
            if name in _OBS_INDEX:
                continue
            kind = self.kinds.get(name)
            if kind is None:
                kind = kind_of_value(value)
                if kind is not None:
                    self.kinds[name] = kind
                out[name] = py_value(value)
                continue
            if value is None or py_value(value) is None:
                out[name] = None
                continue
            out[name] = coerce_value(value, kind, name)
        return out


def _native_array(data: Any) -> np.ndarray:
    """``data`` as an array in native byte order (the native writer checks ndim, dtype and shape)."""
    arr = np.asarray(data)
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _schema_kinds(schema: Mapping[str, Any] | None) -> dict[str, str]:
    out = {}
    for name, dtype in (schema or {}).items():
        name = str(name)
        if name in _OBS_INDEX:
            continue
        out[name] = kind_of_dtype(dtype, name)
    return out


class VolumeCollectionWriter:
    """Writes a new collection volume by volume (a context manager).

    Args:
        uri: where to create the collection (nothing may exist there).
        shape: ``(x, y, z)`` every volume must have (4D volumes: their first three axes); None
            allows any shapes (``x_dim/y_dim/z_dim`` are still recorded if they all agree).
        obs_schema: ``{column: dtype}`` created up front; other columns are added as they appear.
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
        self._native: Any = None
        self._state = "new"  # new -> open -> finished | aborted
        self._typer = _AttrTyper(_schema_kinds(self.obs_schema), existing=False)
        self._obs_ids: list[str] = []
        self._result: Any = None
        self._created_here = True  # False when appending to or linking an existing collection

    # -- lifecycle

    def _open_native(self) -> Any:
        return _rb.NativeCollectionWriter.create(
            self.uri,
            self._ctx,
            name=self.name,
            shape=None if self.shape is None else list(self.shape),
            obs_schema=self._typer.kinds,
            write_json=_write_json(self._write),
        )

    def __enter__(self) -> VolumeCollectionWriter:
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

    def _finish(self) -> None:
        self._result = self._native.finish()
        self._state = "finished"
        log.info("wrote %d volumes to %s", len(self._obs_ids), self.uri)

    def _abort(self) -> None:
        try:
            self._native.abort()
        finally:
            self._state = "aborted"

    # -- writing

    def _check_open(self) -> None:
        if self._state != "open":
            if self._state == "new":
                raise StorageError("use the writer as a context manager: `with VolumeCollectionWriter(...) as w:`")
            raise StorageError(f"this writer is already {self._state}")

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
        obs_id, sid = str(obs_id), str(obs_subject_id)
        cells = self._typer.cells(attrs)
        self._native.write_volume(_native_array(data), obs_id, sid, cells, dict(metadata) if metadata else None)
        self._obs_ids.append(obs_id)

    def write_batch(self, volumes: Iterable[tuple[Any, ...]]) -> None:
        """Writes ``(data, obs_id, obs_subject_id[, attrs])`` tuples."""
        for item in volumes:
            data, obs_id, sid = item[0], item[1], item[2]
            attrs = item[3] if len(item) > 3 else None
            self._write_one(data, obs_id, sid, attrs or None, None)

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
    """A collection of a :class:`RadiObjectWriter`: remembers its subjects and registers itself
    with the dataset when its block ends cleanly (or, for a writer extending a dataset, when the
    dataset's block does); the native registration refuses obs_ids used elsewhere in the dataset."""

    def __init__(self, parent: RadiObjectWriter, name: str, native_factory: Any, **kw: Any):
        super().__init__(f"{parent.uri}/collections/{name}", name=name, ctx=parent._ctx, **kw)
        self._parent = parent
        self._factory = native_factory
        self._subjects: set[str] = set()  # for the obs_meta coverage check

    def _write_one(self, data: Any, obs_id: str, obs_subject_id: str, attrs: Any, metadata: Any) -> None:
        super()._write_one(data, obs_id, obs_subject_id, attrs, metadata)
        self._subjects.add(str(obs_subject_id))

    def _open_native(self) -> Any:
        return self._factory(self)

    def __enter__(self) -> _ManagedCollectionWriter:
        super().__enter__()
        self._parent._children.append(self)
        return self

    def _finish(self) -> None:
        self._state = "done"
        if self._parent._defer:
            self._parent._pending.append(self)
        else:
            self._register()

    def _register(self) -> None:
        try:
            self._result = self._parent._native.register(self._native)
        except BaseException:
            self._state = "aborted"
            raise
        self._state = "finished"
        self._parent._registered(self.name or "")


class RadiObjectWriter:
    """Writes a new RadiObject collection by collection (a context manager).

    Args:
        uri: where to create the dataset (nothing may exist there).
        obs_meta_schema: ``{column: dtype}`` of the subject table (``obs_ids`` is managed).
        ctx: context to write through (default: the global one).
        write: tiling and compression for the volumes (default: the global configuration).

    ``write_obs_meta(df)`` may be called before or after the collections; if it is called, every
    subject that has volumes needs a row (else :class:`AlignmentError` at the end); without it,
    each subject gets a bare row. Leaving the block cleanly writes ``obs_meta`` (with each
    subject's ``obs_ids``) and the counts; an exception removes the whole dataset.
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
        self._native: Any = None
        self._state = "new"
        self._collection_names: list[str] = []
        self._children: list[_ManagedCollectionWriter] = []
        self._pending: list[_ManagedCollectionWriter] = []
        self._defer = False
        self._meta_subjects: set[str] | None = None
        self._existing_subjects: set[str] = set()
        self._result: Any = None
        self._keep: list[str] | None = None  # from_collections: collections already in place below uri

    @classmethod
    def _extend(cls, radi: RadiObject, *, write: WriteConfig | None = None) -> RadiObjectWriter:
        """A writer adding to an existing dataset: collections are registered only when the
        whole block succeeded (all volumes written first)."""
        native = radi._native
        self = cls(native.uri, None, native.context, write=write)
        self._native = _rb.NativeDatasetWriter.extend(native)
        self._state = "open"
        self._defer = True
        self._collection_names = list(native.collection_names)
        self._meta_kinds = {
            n: k for n, k in frame_kinds(radi._meta_frame()).items() if n not in ("obs_subject_id", "obs_id", "obs_ids")
        }
        self._existing_subjects = set(native.subject_ids)
        return self

    # -- lifecycle

    def __enter__(self) -> RadiObjectWriter:
        if self._state == "open" and self._defer:
            return self
        if self._state != "new":
            raise StorageError(f"this writer is already {self._state}; use a new one")
        if self._keep is not None:
            self._native = _rb.NativeDatasetWriter.create_around(
                self.uri, self._ctx, self._keep, obs_meta_schema=self._meta_kinds
            )
        else:
            self._native = _rb.NativeDatasetWriter.create(self.uri, self._ctx, obs_meta_schema=self._meta_kinds)
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
        errors = []
        for child in self._children:
            if child._state in ("open", "done"):
                try:
                    child._abort()
                except Exception as e:  # noqa: BLE001 - keep cleaning up; logged below
                    errors.append(e)
        self._pending.clear()
        try:
            self._native.abort()
        finally:
            self._state = "aborted"
        if errors:
            log.warning("errors while aborting %s: %s", self.uri, errors)

    def _finish(self) -> None:
        try:
            for child in self._children:
                if child._state == "open":
                    raise StorageError(f"collection {child.name!r} was never closed; end its `with` block first")
            if self._meta_subjects is not None:
                have = self._meta_subjects | self._existing_subjects
                written = {s for c in self._children if c._state in ("done", "finished") for s in c._subjects}
                missing = sorted(written - have)
                if missing:
                    raise AlignmentError(f"obs_meta has no row for subject(s) {missing[:5]} that have volumes")
            for child in list(self._pending):
                child._register()
                self._pending.remove(child)
            self._result = self._native.finish()
        except BaseException:
            self._abort()
            raise
        self._state = "finished"

    # -- content

    @property
    def collection_names(self) -> list[str]:
        """Collections registered so far."""
        return list(self._collection_names)

    def _registered(self, name: str) -> None:
        if name not in self._collection_names:
            self._collection_names.append(name)

    def _check_open(self) -> None:
        if self._state != "open":
            if self._state == "new":
                raise StorageError("use the writer as a context manager: `with RadiObjectWriter(...) as w:`")
            raise StorageError(f"this writer is already {self._state}")

    def write_obs_meta(self, df: pd.DataFrame) -> None:
        """Subject rows (``obs_subject_id`` plus any columns; ``obs_ids`` is computed)."""
        self._check_open()
        if "obs_subject_id" not in df.columns:
            raise SchemaError("obs_meta needs an 'obs_subject_id' column")
        frame = pandas_to_frame(df, ["obs_subject_id"], self._meta_kinds, skip=("obs_ids", "obs_id"))
        sids = frame["obs_subject_id"][1]
        if len(set(sids)) != len(sids):
            raise SchemaError("obs_meta has duplicate obs_subject_id values")
        again = sorted(set(sids) & (self._meta_subjects or set()))
        if again:
            raise SchemaError(f"obs_meta rows for {again[:5]} were already written")
        for n, (k, _, _) in frame.items():
            if n != "obs_subject_id":
                self._meta_kinds.setdefault(n, k)
        self._native.write_obs_meta(frame)
        self._meta_subjects = (self._meta_subjects or set()) | set(sids)

    def add_collection(
        self,
        name: str,
        shape: tuple[int, int, int] | None = None,
        obs_schema: Mapping[str, Any] | None = None,
    ) -> VolumeCollectionWriter:
        """A writer for a new collection ``name`` (use it as a context manager)."""
        self._check_open()
        name = str(name)
        taken = set(self._collection_names) | {c.name for c in self._children if c._state in ("open", "done")}
        if name in taken:
            raise SchemaError(f"collection {name!r} already exists in this RadiObject")

        def factory(w: _ManagedCollectionWriter) -> Any:
            return self._native.add_collection(
                name,
                shape=None if w.shape is None else list(w.shape),
                obs_schema=w._typer.kinds,
                write_json=_write_json(w._write),
            )

        return _ManagedCollectionWriter(self, name, factory, shape=shape, obs_schema=obs_schema, write=self._write)

    def _append_to(self, vc: VolumeCollection) -> VolumeCollectionWriter:
        """A writer appending to an existing collection of this dataset (extend mode)."""
        native = vc._snap.native

        def factory(w: _ManagedCollectionWriter) -> Any:
            return _rb.NativeCollectionWriter.append(native, write_json=_write_json(w._write))

        w = _ManagedCollectionWriter(self, native.uri.rsplit("/", 1)[-1], factory, shape=vc.shape, write=self._write)
        w._typer = _AttrTyper(vc._snap.kinds, existing=True)
        w._created_here = False
        return w

    def _link(self, vc: VolumeCollection, name: str) -> None:
        """Registers a collection already stored at ``{uri}/collections/{name}``."""
        native = vc._snap.native
        w = _ManagedCollectionWriter(
            self, name, lambda _w: _rb.NativeCollectionWriter.append(native, write_json=None), shape=None
        )
        w._created_here = False
        with w:
            w._subjects.update(native.subject_ids)

    def finalize(self) -> RadiObject:
        """Finishes (if still open) and returns the RadiObject."""
        if self._state == "open":
            self._finish()
        if self._state != "finished":
            raise StorageError(f"this writer was {self._state}; nothing to return")
        return wrapper("RadiObject")._from_native(self._result)
