"""``VolumeCollection``: the volumes of one kind (``T1w``, ``seg``...) with their ``obs`` rows.

A collection is **attached** (opened from a URI) or a **view** (a subset of an attached one, made
by ``iloc``/``loc``/``sel``/``filter``/``head``...). Views are cheap, read-only selections:
they hold the attached collection and the *ranks* (positions in its index) they keep; a view of
a view selects from the same attached collection. Everything follows the collection's index
order, which is the ``obs`` order: sorted by ``(obs_subject_id, obs_id)``.

What is read when:

* opening reads the collection group, its ``volumes`` group and **all of obs, once** (native);
  ``obs``, ``obs_ids``, ``index``, ``filter``, ``sel``... never read storage again (the reference
  re-read obs on almost every call);
* a volume is opened on first access and cached (``vc.iloc[i]`` twice opens it once);
* the mapping ``obs_id -> volumes/<dir>`` comes from the native layer, which checks every volume's
  own ``obs_id`` and is right whatever order the volumes were written in (the reference served
  the wrong volume when they were not written in sorted order).

``uri`` of a view is the attached collection's URI (as in the reference); ``is_view`` tells them
apart. Views cannot ``append`` or ``validate`` (:class:`~radiobject.exceptions.ViewError`);
``write(uri)`` materialises one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pandas as pd

from radiobject import _radiobject as _rb
from radiobject._frames import frame_records, frame_to_pandas
from radiobject._registry import register
from radiobject._types import normalize_transform_result
from radiobject.ctx import Context, WriteConfig, get_radiobject_config, resolve_ctx
from radiobject.dataframe import Dataframe, ObsFrame, query_frame
from radiobject.exceptions import (
    AlignmentError,
    InvalidArgumentError,
    NotFoundError,
    SchemaError,
    ViewError,
)
from radiobject.indexing import Index, iloc_positions
from radiobject.ingest import _progress_callback, append_to_collection
from radiobject.parallel import map_on_threads
from radiobject.query import EagerQuery, LazyQuery
from radiobject.verify import check_aligned
from radiobject.volume import Volume, _write_json, context_for_config
from radiobject.writers import VolumeCollectionWriter

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["VolumeCollection", "generate_obs_id"]

_INDEX = ("obs_subject_id", "obs_id")
# volume metadata the writers set themselves (not copied from a source volume)
_OWN_META = frozenset({"obs_id", "voxel_checksum", "tile_orientation"})


def generate_obs_id(obs_subject_id: str, collection_name: str, acquisition_index: int | None = None) -> str:
    """``{subject}_{collection}``, plus ``_acq-{k}`` for the k-th acquisition of a subject (the
    native naming rule every writer uses)."""
    return _rb.generate_obs_id(str(obs_subject_id), str(collection_name), acquisition_index)


class _Snapshot:
    """An opened collection: the native handle and what was read at open (shared by views)."""

    def __init__(self, native: Any):
        self.native = native
        self.obs_ids: tuple[str, ...] = tuple(native.obs_ids)
        self.subject_ids: tuple[str, ...] = tuple(native.subject_ids)
        self._lock = threading.Lock()
        self._index: Index | None = None
        self._frame: dict | None = None
        self._df: pd.DataFrame | None = None
        self._by_subject: dict[str, list[int]] | None = None

    @property
    def index(self) -> Index:
        if self._index is None:
            self._index = Index.build(self.obs_ids, "obs_id")
        return self._index

    @property
    def frame(self) -> dict:
        with self._lock:
            if self._frame is None:
                self._frame = self.native.obs()
            return self._frame

    @property
    def df(self) -> pd.DataFrame:
        """obs as pandas, RangeIndex = rank (internal; never handed out without a copy)."""
        frame = self.frame
        with self._lock:
            if self._df is None:
                self._df = frame_to_pandas(frame)
            return self._df

    @property
    def kinds(self) -> dict[str, str]:
        return {n: c[0] for n, c in self.frame.items() if n not in _INDEX}

    @property
    def by_subject(self) -> dict[str, list[int]]:
        if self._by_subject is None:
            d: dict[str, list[int]] = {}
            for r, s in enumerate(self.subject_ids):
                d.setdefault(s, []).append(r)
            self._by_subject = d
        return self._by_subject

    def rank(self, obs_id: str) -> int | None:
        r = self.native.rank_of(obs_id) if isinstance(obs_id, str) else None
        return None if r is None else int(r)


class _ILoc:
    def __init__(self, vc: VolumeCollection):
        self._vc = vc

    @overload
    def __getitem__(self, key: int) -> Volume: ...
    @overload
    def __getitem__(self, key: Any) -> Volume | VolumeCollection: ...
    def __getitem__(self, key: Any) -> Volume | VolumeCollection:
        ranks = self._vc._rank_seq
        pos = iloc_positions(key, len(ranks), "volumes")
        if isinstance(pos, int):
            return self._vc._volume(ranks[pos])
        return self._vc._view([ranks[i] for i in pos])


class _Loc:
    def __init__(self, vc: VolumeCollection):
        self._vc = vc

    def __getitem__(self, key: Any) -> Volume | VolumeCollection:
        vc = self._vc
        if isinstance(key, str):
            return vc._volume(vc._rank_of(key))
        if isinstance(key, (list, tuple, np.ndarray, pd.Series, pd.Index)):
            keys = list(key)
            if not all(isinstance(k, str) for k in keys):
                raise TypeError("loc takes an obs_id or a list of obs_ids")
            return vc._view([vc._rank_of(k) for k in keys])
        raise TypeError(f"loc takes an obs_id or a list of obs_ids; got {type(key).__name__}")


@register
class VolumeCollection:
    """Volumes indexed by ``obs_id``, with one ``obs`` row each.

    Args:
        uri: the collection (a group with ``obs`` and ``volumes``), local or ``s3://``.
        ctx: context to read through (default: the global one).
    """

    def __init__(self, uri: str, ctx: Context | None = None):
        native = _rb.NativeCollection.open(str(uri), resolve_ctx(ctx))
        self._init(_Snapshot(native), None, None)

    def _init(self, snap: _Snapshot, ranks: tuple[int, ...] | None, source: VolumeCollection | None) -> None:
        self._snap = snap
        self._ranks = ranks
        self._source = source
        self._rank_set: frozenset[int] | None = None
        self._index_cache: Index | None = None
        self._subjects_cache: Index | None = None

    @classmethod
    def _from_native(cls, native: Any) -> VolumeCollection:
        self = cls.__new__(cls)
        self._init(_Snapshot(native), None, None)
        return self

    @classmethod
    def open(cls, uri: str, ctx: Context | None = None) -> VolumeCollection:
        """Same as ``VolumeCollection(uri, ctx)``."""
        return cls(uri, ctx)

    # ------------------------------------------------------------------ internals

    @property
    def _root(self) -> VolumeCollection:
        return self if self._source is None else self._source

    @property
    def _rank_seq(self) -> Sequence[int]:
        return range(len(self._snap.obs_ids)) if self._ranks is None else self._ranks

    def _view(self, ranks: Any) -> VolumeCollection:
        """A view keeping ``ranks`` (deduplicated, index order)."""
        out = VolumeCollection.__new__(VolumeCollection)
        if self._ranks is not None:
            mine = self._ranks_as_set()
            ranks = [r for r in ranks if r in mine]
        out._init(self._snap, tuple(sorted(set(int(r) for r in ranks))), self._root)
        return out

    def _ranks_as_set(self) -> frozenset[int]:
        if self._rank_set is None:
            self._rank_set = frozenset(self._rank_seq)
        return self._rank_set

    def _rank_of(self, obs_id: str) -> int:
        r = self._snap.rank(obs_id)
        if r is None or (self._ranks is not None and r not in self._ranks_as_set()):
            where = "this view" if self.is_view else f"collection {self.name or self.uri!r}"
            raise KeyError(f"obs_id {obs_id!r} is not in {where}")
        return r

    def _volume(self, rank: int) -> Volume:
        return Volume._wrap(self._snap.native.volume(int(rank)))

    def _obs_df(self) -> pd.DataFrame:
        """obs rows of this view, labelled by rank (internal, not a copy for attached)."""
        df = self._snap.df
        return df if self._ranks is None else df.iloc[list(self._ranks)]

    @property
    def _context(self) -> Context:
        return self._snap.native.context

    def _check_not_view(self, op: str) -> None:
        if self.is_view:
            raise ViewError(f"cannot {op} a view; write it first with .write(uri)")

    def __getstate__(self) -> dict[str, Any]:
        # pickles a recipe (URI, configuration, selected obs_ids), never native handles, so
        # collections travel to DataLoader workers and other processes
        return {
            "uri": self.uri,
            "config": self._context.config_json(),
            "obs_ids": None if self._ranks is None else self.obs_ids,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        ctx = context_for_config(state["config"])
        snap = _Snapshot(_rb.NativeCollection.open(state["uri"], ctx))
        if state["obs_ids"] is None:
            self._init(snap, None, None)
            return
        root = VolumeCollection.__new__(VolumeCollection)
        root._init(snap, None, None)
        ranks = [snap.rank(i) for i in state["obs_ids"]]
        self._init(snap, tuple(sorted(r for r in ranks if r is not None)), root)

    # ------------------------------------------------------------------ basics

    def __len__(self) -> int:
        return len(self._rank_seq)

    def __iter__(self) -> Iterator[Volume]:
        for r in self._rank_seq:
            yield self._volume(r)

    def __contains__(self, obs_id: object) -> bool:
        if not isinstance(obs_id, str):
            return False
        r = self._snap.rank(obs_id)
        return r is not None and (self._ranks is None or r in self._ranks_as_set())

    def __repr__(self) -> str:
        shape = self.shape
        shape_s = "x".join(map(str, shape)) if shape else "heterogeneous"
        name = f"'{self.name}', " if self.name else ""
        view = ", view" if self.is_view else ""
        return f"VolumeCollection({name}{len(self)} volumes, shape={shape_s}{view})"

    def __getitem__(self, key: Any) -> Volume | VolumeCollection:
        """``vc[int]`` / ``vc["obs_id"]`` -> Volume; slices, lists and masks -> views."""
        if isinstance(key, str):
            return self.loc[key]
        if isinstance(key, (int, np.integer, slice)) and not isinstance(key, (bool, np.bool_)):
            return self.iloc[key]
        if isinstance(key, (list, tuple, np.ndarray, pd.Series, pd.Index)):
            items = list(key)
            if not items:
                return self._view([])
            if all(isinstance(k, str) for k in items):
                return self.loc[items]
            return self.iloc[key]
        raise TypeError(f"index with an int, an obs_id, a slice or a list; got {type(key).__name__}")

    @property
    def iloc(self) -> _ILoc:
        """By position: ``iloc[int]`` -> Volume; slices, int lists, boolean masks -> views."""
        return _ILoc(self)

    @property
    def loc(self) -> _Loc:
        """By obs_id: ``loc["id"]`` -> Volume; ``loc[[ids]]`` -> view."""
        return _Loc(self)

    def sel(self, *, subject: str | Sequence[str]) -> Volume | VolumeCollection:
        """Volumes of one or more subjects: a Volume when ``subject`` is one id with exactly one
        volume, otherwise a view. ``KeyError`` if no volume matches."""
        subjects = [subject] if isinstance(subject, str) else list(subject)
        by = self._snap.by_subject
        ranks = [r for s in subjects for r in by.get(s, ())]
        if self._ranks is not None:
            mine = self._ranks_as_set()
            ranks = [r for r in ranks if r in mine]
        if not ranks:
            raise KeyError(f"no volume of subject(s) {subjects[:5]} in this collection")
        if isinstance(subject, str) and len(ranks) == 1:
            return self._volume(ranks[0])
        return self._view(ranks)

    # ------------------------------------------------------------------ properties

    @property
    def uri(self) -> str:
        """URI of the collection (for a view: of the collection it selects from)."""
        return self._snap.native.uri

    @property
    def is_view(self) -> bool:
        """Whether this is a selection of another collection."""
        return self._source is not None

    @property
    def name(self) -> str | None:
        """The ``name`` metadata."""
        return self._snap.native.name

    @property
    def shape(self) -> tuple[int, int, int] | None:
        """``(x, y, z)`` when every volume of the collection has it, else None."""
        s = self._snap.native.shape
        return None if s is None else (int(s[0]), int(s[1]), int(s[2]))

    @property
    def is_uniform(self) -> bool:
        """Whether every volume has the same spatial shape."""
        return self.shape is not None

    @property
    def metadata(self) -> dict[str, Any]:
        """Group metadata of the collection."""
        return self._snap.native.metadata()

    @property
    def obs(self) -> ObsFrame:
        """obs rows of this collection or view (index order; index columns first): a pandas
        DataFrame (a copy: changing it changes nothing stored) that also has the reference's
        ``read(columns=None, value_filter=None, include_index=True)`` and ``index_columns``
        (see :class:`~radiobject.dataframe.ObsFrame`)."""
        return ObsFrame._of(self._obs_df().reset_index(drop=True), _INDEX, f"{self.uri}/obs")

    def to_obs(self) -> pd.DataFrame:
        """obs rows of this collection or view as a plain pandas DataFrame (a copy)."""
        return self._obs_df().reset_index(drop=True)

    @property
    def obs_dataframe(self) -> Dataframe:
        """The stored ``obs`` array as a :class:`Dataframe` (attached collections only)."""
        self._check_not_view("open the obs storage of")
        return Dataframe(f"{self.uri}/obs", self._context)

    @property
    def obs_ids(self) -> list[str]:
        """obs_ids in index order."""
        ids = self._snap.obs_ids
        return list(ids) if self._ranks is None else [ids[r] for r in self._ranks]

    @property
    def obs_subject_ids(self) -> list[str]:
        """Subject of each volume, in index order."""
        s = self._snap.subject_ids
        return list(s) if self._ranks is None else [s[r] for r in self._ranks]

    @property
    def index(self) -> Index:
        """``Index('obs_id')`` of the volumes."""
        if self._ranks is None:
            return self._snap.index
        if self._index_cache is None:
            self._index_cache = Index.build(self.obs_ids, "obs_id")
        return self._index_cache

    @property
    def subjects(self) -> Index:
        """``Index('obs_subject_id')``: distinct subjects in order of first appearance."""
        if self._subjects_cache is None:
            self._subjects_cache = Index.build(dict.fromkeys(self.obs_subject_ids), "obs_subject_id")
        return self._subjects_cache

    def get_obs_row_by_obs_id(self, obs_id: str) -> pd.DataFrame:
        """The obs row of ``obs_id`` as a one-row DataFrame (``KeyError`` if absent)."""
        r = self._rank_of(obs_id)
        return self._snap.df.iloc[[r]].reset_index(drop=True)

    # ------------------------------------------------------------------ selections

    def filter(self, expr: str) -> VolumeCollection:
        """Volumes whose obs row matches a pandas :meth:`~pandas.DataFrame.query` expression,
        e.g. ``"qc == 'pass' and snr > 20"`` (the same grammar everywhere)."""
        hit = query_frame(self._obs_df(), expr)
        return self._view(hit.index.tolist())

    def head(self, n: int = 5) -> VolumeCollection:
        """The first ``n`` volumes."""
        return self._view(self._rank_seq[: max(int(n), 0)])

    def tail(self, n: int = 5) -> VolumeCollection:
        """The last ``n`` volumes."""
        seq = self._rank_seq
        return self._view(seq[max(len(seq) - int(n), 0) :])

    def sample(self, n: int = 5, seed: int | None = None) -> VolumeCollection:
        """``n`` volumes drawn without replacement (reproducible with ``seed``)."""
        seq = self._rank_seq
        k = min(max(int(n), 0), len(seq))
        picks = np.random.default_rng(seed).choice(len(seq), size=k, replace=False)
        return self._view([seq[int(i)] for i in picks])

    def groupby_subject(self) -> Iterator[tuple[str, VolumeCollection]]:
        """``(subject, view of its volumes)`` for each subject, in order of first appearance."""
        groups: dict[str, list[int]] = {}
        s = self._snap.subject_ids
        for r in self._rank_seq:
            groups.setdefault(s[r], []).append(r)
        for sid, ranks in groups.items():
            yield sid, self._view(ranks)

    def copy(self) -> VolumeCollection:
        """A new handle on the same selection (attached: same collection; views stay views).
        Nothing is copied in storage; use :meth:`write` for that."""
        out = VolumeCollection.__new__(VolumeCollection)
        out._init(self._snap, self._ranks, self._source)
        return out

    # ------------------------------------------------------------------ transforms

    def map(self, fn: Callable[..., Any], *, max_workers: int | None = None, progress: bool = False) -> EagerQuery:
        """Runs ``fn(volume_array, obs_row)`` on every volume (on a thread pool, results in index
        order). ``fn`` returns a value or ``(value, obs_updates)``; see :class:`EagerQuery`."""
        ranks = list(self._rank_seq)
        obs = self.obs
        rows = [obs.iloc[i] for i in range(len(ranks))]
        native = self._snap.native

        def run(i: int) -> tuple[Any, dict[str, Any]]:
            vol = native.volume(ranks[i])
            data = vol.read([(0, n) for n in vol.shape])
            return normalize_transform_result(fn(data, rows[i]))

        out = map_on_threads(run, range(len(ranks)), max_workers=max_workers, progress=progress, desc=self.name)
        return EagerQuery([v for v, _ in out], obs, source=self, obs_updates=[u for _, u in out])

    def lazy(self) -> LazyQuery:
        """A deferred pipeline over this collection or view (:class:`~radiobject.LazyQuery`):
        chain ``filter``/``head``/``map``... and run it with ``write`` (one volume at a time)."""
        return LazyQuery(self._root, volume_ids=frozenset(self.obs_ids) if self.is_view else None)

    def map_batches(self, fn: Callable[..., Any], batch_size: int = 8) -> EagerQuery:
        """Runs ``fn([(volume_array, obs_row), ...])`` on batches of ``batch_size`` volumes;
        ``fn`` returns one result per item (a value or ``(value, obs_updates)``)."""
        if batch_size < 1:
            raise InvalidArgumentError("batch_size must be >= 1")
        ranks = list(self._rank_seq)
        obs = self.obs
        results: list[Any] = []
        updates: list[dict[str, Any]] = []
        for start in range(0, len(ranks), batch_size):
            chunk = ranks[start : start + batch_size]
            arrays = self._read_ranks(chunk)
            batch = [(a, obs.iloc[start + j]) for j, a in enumerate(arrays)]
            out = fn(batch)
            if len(out) != len(batch):
                raise InvalidArgumentError(f"map_batches: fn returned {len(out)} results for {len(batch)} items")
            for raw in out:
                v, u = normalize_transform_result(raw)
                results.append(v)
                updates.append(u)
        return EagerQuery(results, obs, source=self, obs_updates=updates)

    def _read_ranks(self, ranks: Sequence[int]) -> list[np.ndarray]:
        """Whole volumes at ``ranks``, opened and read in parallel on the context's pool."""
        if not ranks:
            return []
        vols = self._snap.native.volumes(list(ranks))
        return _rb.read_batch(self._context, [(v, [(0, n) for n in v.shape]) for v in vols])

    def _iter_arrays(self, ranks: Sequence[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(rank, array)`` for every volume, read a few at a time in parallel."""
        ranks = list(self._rank_seq if ranks is None else ranks)
        step = max(1, get_radiobject_config().read.max_workers)
        for start in range(0, len(ranks), step):
            chunk = ranks[start : start + step]
            yield from zip(chunk, self._read_ranks(chunk))

    def _copy_into(self, writer: Any, obs_ids: Sequence[str] | None = None) -> None:
        """Streams this collection's volumes (data, obs row, volume metadata) into ``writer``
        (a :class:`~radiobject.writers.VolumeCollectionWriter`), optionally renaming obs_ids."""
        ranks = list(self._rank_seq)
        records = frame_records(self._snap.frame, ranks)
        native = self._snap.native
        for k, (rank, data) in enumerate(self._iter_arrays(ranks)):
            rec = records[k]
            attrs = {n: v for n, v in rec.items() if n not in _INDEX}
            meta = {m: v for m, v in native.volume(rank).metadata().items() if m not in _OWN_META}
            oid = rec["obs_id"] if obs_ids is None else obs_ids[k]
            writer._write_one(data, oid, rec["obs_subject_id"], attrs, meta)

    def write(
        self,
        uri: str | None = None,
        name: str | None = None,
        ctx: Context | None = None,
        *,
        rename_obs_ids: bool | None = None,
        write: WriteConfig | None = None,
    ) -> VolumeCollection:
        """Copies this collection or view into a new standalone collection at ``uri`` (volumes,
        obs rows with every column, volume metadata such as orientation).

        obs_ids are **kept**, unless ``rename_obs_ids`` is True — or, by default, ``name`` is
        given and differs from this collection's name: then they become ``{subject}_{name}``
        (``_acq-1``, ``_acq-2``... for subjects with several volumes), so the copy can sit next
        to its source in one RadiObject (obs_ids are unique across a RadiObject).

        ``uri=None`` writes next to the source, as the reference does: ``<parent>/<name>`` when
        ``name`` is given, else ``<source>_written``.
        """
        if uri is None:
            uri = f"{self.uri.rsplit('/', 1)[0]}/{name}" if name else f"{self.uri}_written"

        out_name = name if name is not None else self.name
        rename = (name is not None and name != self.name) if rename_obs_ids is None else bool(rename_obs_ids)
        new_ids = None
        if rename:
            if not out_name:
                raise InvalidArgumentError("renaming obs_ids needs a collection name; pass name=")
            new_ids = _rb.rename_obs_ids(self.obs_subject_ids, out_name)
        shape = self.shape if not self.is_view else None
        c = resolve_ctx(ctx) if ctx is not None else self._context
        w = VolumeCollectionWriter(uri, shape=shape, obs_schema=self._snap.kinds, name=out_name, ctx=c, write=write)
        with w:
            self._copy_into(w, new_ids)
        return w.finalize()

    # ------------------------------------------------------------------ changes

    def append(
        self,
        volumes: Sequence[tuple[Any, ...]] | None = None,
        *,
        niftis: Sequence[tuple[Any, str]] | None = None,
        dicom_dirs: Sequence[tuple[Any, str]] | None = None,
        reorient: bool | None = None,
        progress: bool = False,
        write: WriteConfig | None = None,
    ) -> None:
        """Adds volumes, all or nothing: ``volumes`` is a list of ``(array, obs_id,
        obs_subject_id[, attrs[, volume_metadata]])``; ``attrs`` fills obs columns (new columns
        are added, existing user columns keep their values). If anything fails, every volume
        written so far is removed and nothing is registered.

        ``niftis=`` / ``dicom_dirs=`` are handed to ``radiobject.ingest.append_to_collection``.
        For a collection inside a RadiObject, prefer ``RadiObject.append`` (it also updates
        ``obs_meta``).
        """
        self._check_not_view("append to")
        if niftis is not None and dicom_dirs is not None:
            raise InvalidArgumentError("Cannot provide both niftis= and dicom_dirs=; append them in two calls")
        if niftis is not None or dicom_dirs is not None:
            if volumes is not None:
                raise InvalidArgumentError("Cannot provide both volumes= and niftis=/dicom_dirs=")
            append_to_collection(self, niftis=niftis, dicom_dirs=dicom_dirs, reorient=reorient, progress=progress)
            return
        if not volumes:
            raise InvalidArgumentError("Must provide volumes=, niftis= or dicom_dirs= (at least one volume)")
        items = [tuple(v) for v in volumes]

        def fill(w: VolumeCollectionWriter) -> None:
            for item in items:
                attrs = item[3] if len(item) > 3 else None
                meta = item[4] if len(item) > 4 else None
                w._write_one(item[0], item[1], item[2], attrs, meta)

        self._append_with(fill, write=write)

    def _append_with(self, fill: Any, *, write: WriteConfig | None = None) -> None:
        """Appends what ``fill(writer)`` writes, all or nothing, holding the dataset's write lock
        when the collection belongs to one; then shows the new volumes."""
        native = self._snap.native
        w = VolumeCollectionWriter._appending(
            self, lambda: _rb.NativeCollectionWriter.append_alone(native, write_json=_write_json(write)), write=write
        )
        with w:
            fill(w)
        self._snap = w.finalize()._snap
        self._rank_set = self._index_cache = self._subjects_cache = None

    @classmethod
    def from_niftis(
        cls,
        uri: str,
        niftis: Sequence[tuple[str | Path, str]],
        obs: pd.DataFrame | None = None,
        reorient: bool | str | None = None,
        validate_dimensions: bool = True,
        valid_subject_ids: set[str] | None = None,
        name: str | None = None,
        ctx: Context | None = None,
        progress: bool = False,
        *,
        write: WriteConfig | None = None,
    ) -> VolumeCollection:
        """A new collection at ``uri`` from NIfTI files ``[(path, subject_id)]`` (the reference's
        signature), read by radiobject's Rust readers on a thread pool and written through the
        native collection writer, all or nothing: on any error nothing is left at ``uri``.

        Each volume gets the NIfTI obs columns (``series_type``, ``voxel_spacing``,
        ``dimensions``, ``datatype``... ``source_path``) and orientation metadata.

        Args:
            uri: where to create the collection (nothing may exist there).
            niftis: ``[(path, obs_subject_id)]``; at least one.
            obs: optional per-volume rows, aligned with ``niftis`` row by row: ``obs_id`` and
                ``obs_subject_id`` (equal to the subject given with the file), plus extra columns
                stored as obs columns (a name taken by an imaging column is a
                :class:`SchemaError`). Without it, obs_ids are ``{subject}_{name or 'volume'}``
                (``_acq-k`` for a subject's further files).
            reorient: None follows the configuration, True the configured target, or
                ``"RAS"``/``"LAS"``/``"LPS"``.
            validate_dimensions: every file must have the first file's spatial shape
                (:class:`ShapeError` "Dimension mismatch" otherwise); False allows mixed shapes.
            valid_subject_ids: if given, every subject must be in it (:class:`AlignmentError`).
            name: the collection's ``name``.
            ctx: context to write through (default: the global one).
            progress: show a progress bar.
            write: tiling and compression (default: the global configuration).
        """
        items = [(str(p), str(s)) for p, s in (niftis or [])]
        if not items:
            raise InvalidArgumentError("At least one NIfTI file is required")
        sids = [s for _, s in items]
        user_rows: list[dict[str, Any]] | None = None
        if obs is not None:
            for col in ("obs_subject_id", "obs_id"):
                if col not in obs.columns:
                    raise SchemaError(f"VolumeCollection.from_niftis: obs must contain {col!r}")
            if len(obs) != len(items):
                raise InvalidArgumentError(f"obs length ({len(obs)}) != niftis length ({len(items)})")
            given = [str(s) for s in obs["obs_subject_id"].tolist()]
            bad = next((i for i, (a, b) in enumerate(zip(given, sids)) if a != b), None)
            if bad is not None:
                raise AlignmentError(
                    f"obs_subject_id mismatch at position {bad}: obs={given[bad]!r}, niftis={sids[bad]!r}"
                )
            obs_ids = [str(i) for i in obs["obs_id"].tolist()]
            extra = [c for c in obs.columns if c not in _INDEX]
            user_rows = [
                {str(c): v for c, v in zip(extra, row)} for row in obs[extra].itertuples(index=False, name=None)
            ]
        else:
            obs_ids = list(_rb.assign_obs_ids(sids, name or "volume"))
        if valid_subject_ids is not None:
            invalid = sorted(set(sids) - {str(s) for s in valid_subject_ids})
            if invalid:
                raise AlignmentError(f"Invalid obs_subject_ids (not in valid_subject_ids): {invalid[:5]}")
        missing = [p for p, _ in items if not os.path.exists(p)]
        if missing:
            raise NotFoundError(
                f"NIfTI file not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )

        callback, close = _progress_callback(progress)
        tick = None if callback is None else (lambda done, total: callback(name or "volumes", done, total))
        rows: list[Any] = user_rows if user_rows is not None else [None] * len(items)
        jobs = [(path, "nifti", obs_ids[i], sid, rows[i]) for i, (path, sid) in enumerate(items)]
        try:
            with VolumeCollectionWriter(uri, name=name, ctx=resolve_ctx(ctx), write=write) as w:
                w._native.write_images(jobs, reorient, uniform=validate_dimensions, progress=tick)
        finally:
            close()
        return w.finalize()

    def refresh(self) -> VolumeCollection:
        """Reopens the collection to see changes made through other handles (attached only)."""
        self._check_not_view("refresh")
        self._snap = _Snapshot(_rb.NativeCollection.open(self.uri, self._context))
        self._index_cache = self._subjects_cache = None
        return self

    def validate(self) -> None:
        """Checks the collection's consistency (the native verify of one collection), raising
        :class:`AlignmentError` listing every problem: ``n_volumes`` vs obs rows vs ``volumes``
        members (named ``0..N-1``), unique obs_ids, and every volume carrying the ``obs_id`` of
        its obs row (each volume is opened, in parallel)."""
        self._check_not_view("validate")
        check_aligned(self.uri, self._context, collection=True)
