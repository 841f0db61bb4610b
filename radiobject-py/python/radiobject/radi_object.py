"""``RadiObject``: a dataset of subjects (``obs_meta``) and their volume collections.

A RadiObject is **attached** (opened from a URI) or a **view**: a selection of subjects and/or
collections of an attached one (``iloc``/``loc``/``sel``/``filter``/``head``/``select_collections``;
views of views select from the same attached object). On a view, **everything is filtered**:
``radi_view.T1w`` holds only the view's subjects' volumes, ``obs_meta`` only their rows, ``len``
counts them, and ``write(uri)`` stores exactly that (the reference filtered only on ``write``).

``filter(expr)`` is a pandas :meth:`~pandas.DataFrame.query` on ``obs_meta`` for attached objects
and views alike. ``uri`` is None on views (as in the reference); ``copy()`` returns the object
itself when attached and an equal view otherwise (``write(uri)`` materialises).

Opening reads the root group, the collections group and obs_meta once; a collection is opened on
first use and kept. Changes (``append``, ``add_collection``, ``rename_collection``) go through
the native writers: volumes are written first and registered only when all succeeded, obs_meta is
rewritten as full rows (user columns survive), each subject's ``obs_ids`` is recomputed, and the
object reopens itself afterwards. ``rename_collection`` moves the collection's directory, so the
renamed collection opens under its new name (in the reference it became unreachable).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from radiobject import _radiobject as _rb
from radiobject._frames import frame_kinds, frame_to_pandas, py_value
from radiobject._registry import register
from radiobject.ctx import Context, WriteConfig, resolve_ctx
from radiobject.dataframe import Dataframe, ObsFrame, query_frame
from radiobject.exceptions import InvalidArgumentError, SchemaError, ViewError
from radiobject.indexing import STALE_HINT, Index, iloc_positions
from radiobject.ingest import _sources, append_images, discover_sources
from radiobject.verify import check_aligned, verify
from radiobject.volume import Volume, context_for_config
from radiobject.volume_collection import VolumeCollection
from radiobject.writers import RadiObjectWriter, VolumeCollectionWriter

__all__ = ["RadiObject"]

_META_SYSTEM = ("obs_id", "obs_ids")


def _norm_uri(uri: str) -> str:
    u = str(uri).rstrip("/")
    if u.startswith("file://"):
        u = u[len("file://") :]
    if "://" not in u:
        u = os.path.normpath(os.path.abspath(u))
    return u


def _same_uri(a: str, b: str) -> bool:
    return _norm_uri(a) == _norm_uri(b)


def _is_array_items(items: Any) -> bool:
    return isinstance(items, (list, tuple)) and all(
        isinstance(it, (list, tuple)) and len(it) >= 3 and isinstance(it[0], np.ndarray) for it in items
    )


class _State:
    """An opened dataset: the native handle and what was read at open."""

    def __init__(self, native: Any):
        self.native = native
        self.subjects: tuple[str, ...] = tuple(native.subject_ids)
        self.names: tuple[str, ...] = tuple(native.collection_names)
        self.index = Index.build(self.subjects, "obs_subject_id")
        self.collections: dict[str, VolumeCollection] = {}
        self._frame: dict | None = None
        self._df: pd.DataFrame | None = None

    @property
    def frame(self) -> dict:
        if self._frame is None:
            self._frame = self.native.obs_meta()
        return self._frame

    @property
    def df(self) -> pd.DataFrame:
        if self._df is None:
            self._df = frame_to_pandas(self.frame)
        return self._df

    def collection(self, name: str) -> VolumeCollection:
        vc = self.collections.get(name)
        if vc is None:
            vc = VolumeCollection._from_native(self.native.collection(name))
            self.collections[name] = vc
        return vc


class _ILoc:
    def __init__(self, radi: RadiObject):
        self._r = radi

    def __getitem__(self, key: Any) -> RadiObject:
        subjects = self._r.obs_subject_ids
        pos = iloc_positions(key, len(subjects), "subjects")
        return self._r._with_subjects([subjects[pos]] if isinstance(pos, int) else [subjects[i] for i in pos])


class _Loc:
    def __init__(self, radi: RadiObject):
        self._r = radi

    def __getitem__(self, key: Any) -> RadiObject:
        r = self._r
        keys = (
            [key]
            if isinstance(key, str)
            else list(key)
            if isinstance(key, (list, tuple, pd.Index, pd.Series, np.ndarray))
            else None
        )
        if keys is None or not all(isinstance(k, str) for k in keys):
            raise TypeError("loc takes an obs_subject_id or a list of them")
        idx = r.index
        missing = [k for k in keys if k not in idx]
        if missing:
            raise KeyError(f"obs_subject_id(s) not found: {missing[:5]}{STALE_HINT}")
        return r._with_subjects(keys)


@register
class RadiObject:
    """Subjects and their volume collections.

    Args:
        uri: the dataset root, local or ``s3://``.
        ctx: context to read through (default: the global one).
    """

    def __init__(self, uri: str, ctx: Context | None = None):
        self._init_attached(_State(_rb.NativeDataset.open(str(uri), resolve_ctx(ctx))))

    def _init_attached(self, state: _State) -> None:
        self._state = state
        self._source: RadiObject | None = None
        self._subject_ids: tuple[str, ...] | None = None
        self._collection_filter: tuple[str, ...] | None = None
        self._view_cache: dict[str, VolumeCollection] = {}
        self._index_cache: Index | None = None

    @classmethod
    def _from_native(cls, native: Any) -> RadiObject:
        self = cls.__new__(cls)
        self._init_attached(_State(native))
        return self

    @classmethod
    def open(cls, uri: str, ctx: Context | None = None) -> RadiObject:
        """Same as ``RadiObject(uri, ctx)``."""
        return cls(uri, ctx)

    # ------------------------------------------------------------------ internals

    @property
    def _root(self) -> RadiObject:
        return self if self._source is None else self._source

    @property
    def _native(self) -> Any:
        return self._state.native

    def _meta_frame(self) -> dict:
        return self._state.frame

    def _with_subjects(self, subjects: Sequence[str]) -> RadiObject:
        return self._make_view(subjects=subjects)

    def _make_view(self, subjects: Sequence[str] | None = None, collections: Sequence[str] | None = None) -> RadiObject:
        root = self._root
        sub = self._subject_ids
        if subjects is not None:
            want = set(subjects)
            base = root._state.subjects if sub is None else sub
            sub = tuple(s for s in base if s in want)
        cols = self._collection_filter
        if collections is not None:
            want_c = set(collections)
            base_c = root._state.names if cols is None else cols
            cols = tuple(n for n in base_c if n in want_c)
        out = RadiObject.__new__(RadiObject)
        out._state = root._state
        out._source = root
        out._subject_ids = sub
        out._collection_filter = cols
        out._view_cache = {}
        out._index_cache = None
        return out

    def _check_not_view(self, op: str) -> None:
        if self.is_view:
            raise ViewError(f"cannot {op} a view; write it first with .write(uri)")

    def _refresh(self, native: Any | None = None) -> None:
        n = native if native is not None else _rb.NativeDataset.open(self._state.native.uri, self._state.native.context)
        self._init_attached(_State(n))

    def __getstate__(self) -> dict[str, Any]:
        # a recipe (URI, configuration, selection), never native handles
        native = self._state.native
        return {
            "uri": native.uri,
            "config": native.context.config_json(),
            "subjects": self._subject_ids,
            "collections": self._collection_filter,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        ctx = context_for_config(state["config"])
        root = RadiObject._from_native(_rb.NativeDataset.open(state["uri"], ctx))
        if state["subjects"] is None and state["collections"] is None:
            self._init_attached(root._state)
            return
        view = root._make_view(subjects=state["subjects"], collections=state["collections"])
        self.__dict__.update(view.__dict__)

    # ------------------------------------------------------------------ basics

    @property
    def uri(self) -> str | None:
        """The dataset URI; None for a view."""
        return None if self.is_view else self._state.native.uri

    @property
    def is_view(self) -> bool:
        """Whether this is a selection of another RadiObject."""
        return self._source is not None

    @property
    def index(self) -> Index:
        """``Index('obs_subject_id')`` of the subjects (sorted order)."""
        if self._subject_ids is None:
            return self._state.index
        if self._index_cache is None:
            self._index_cache = Index.build(self._subject_ids, "obs_subject_id")
        return self._index_cache

    @property
    def obs_subject_ids(self) -> list[str]:
        """Subject ids in index order."""
        return list(self._state.subjects if self._subject_ids is None else self._subject_ids)

    def __len__(self) -> int:
        """Number of subjects."""
        return len(self.index)

    @property
    def collection_names(self) -> tuple[str, ...]:
        """Collections (of this view)."""
        names = self._state.names
        return names if self._collection_filter is None else self._collection_filter

    @property
    def n_collections(self) -> int:
        return len(self.collection_names)

    def __iter__(self) -> Iterator[str]:
        """Iterates over collection names."""
        return iter(self.collection_names)

    def __contains__(self, name: object) -> bool:
        return name in self.collection_names

    def __repr__(self) -> str:
        names = ", ".join(self.collection_names) or "none"
        view = " (view)" if self.is_view else ""
        return f"RadiObject({len(self)} subjects, {self.n_collections} collections: [{names}]){view}"

    def collection(self, name: str) -> VolumeCollection:
        """The collection ``name`` — on a view, only the volumes of the view's subjects."""
        if name not in self.collection_names:
            raise KeyError(f"no collection {name!r}; collections: {list(self.collection_names)}")
        vc = self._state.collection(name)
        if self._subject_ids is None:
            return vc
        hit = self._view_cache.get(name)
        if hit is None:
            keep = set(self._subject_ids)
            subj = vc._snap.subject_ids
            hit = vc._view([r for r in range(len(subj)) if subj[r] in keep])
            self._view_cache[name] = hit
        return hit

    def __getattr__(self, name: str) -> VolumeCollection:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.collection(name)
        except KeyError:
            raise AttributeError(f"RadiObject has no attribute or collection {name!r}") from None

    def __getitem__(self, key: str | Sequence[str]) -> RadiObject:
        """``radi["sub-01"]`` = ``radi.loc["sub-01"]``: a view."""
        return self.loc[key]

    @property
    def iloc(self) -> _ILoc:
        """Subjects by position -> view."""
        return _ILoc(self)

    @property
    def loc(self) -> _Loc:
        """Subjects by id -> view."""
        return _Loc(self)

    def sel(self, *, subject: str | Sequence[str]) -> RadiObject:
        """Subjects by id -> view (same as ``loc``)."""
        return self.loc[subject]

    @property
    def obs_meta(self) -> ObsFrame:
        """Subject rows (of this view), index columns first: a pandas DataFrame (a copy) that also
        has the reference's ``read(columns=None, value_filter=None, include_index=True)`` and
        ``index_columns`` (see :class:`~radiobject.dataframe.ObsFrame`)."""
        df = self._state.df
        if self._subject_ids is None:
            rows = df.copy()
        else:
            keep = set(self._subject_ids)
            rows = df[df["obs_subject_id"].isin(keep)].reset_index(drop=True)
        native = self._state.native
        return ObsFrame._of(rows, tuple(native.obs_meta_index), f"{native.uri}/obs_meta")

    @property
    def obs_meta_dataframe(self) -> Dataframe:
        """The stored ``obs_meta`` array as a :class:`Dataframe` (attached objects only)."""
        self._check_not_view("open the obs_meta storage of")
        return Dataframe(f"{self._state.native.uri}/obs_meta", self._state.native.context)

    @property
    def metadata(self) -> dict[str, Any]:
        """Root group metadata (``subject_count``, ``n_collections``)."""
        return self._state.native.metadata()

    @property
    def all_obs_ids(self) -> list[str]:
        """obs_ids of every volume of every collection (of this view)."""
        return [i for n in self.collection_names for i in self.collection(n).obs_ids]

    def get_volume(self, obs_id: str) -> Volume:
        """The volume ``obs_id``, whichever collection holds it (``KeyError`` if none)."""
        for n in self.collection_names:
            vc = self.collection(n)
            if obs_id in vc:
                return vc._volume(vc._rank_of(obs_id))
        raise KeyError(f"obs_id {obs_id!r} is in no collection{STALE_HINT}")

    def get_obs_row_by_obs_subject_id(self, obs_subject_id: str) -> pd.DataFrame:
        """The obs_meta row of a subject, as a one-row DataFrame (``KeyError`` if absent)."""
        if obs_subject_id not in self.index:
            raise KeyError(f"obs_subject_id {obs_subject_id!r} not found{STALE_HINT}")
        df = self._state.df
        return df[df["obs_subject_id"] == obs_subject_id].reset_index(drop=True)

    # ------------------------------------------------------------------ selections

    def filter(self, expr: str) -> RadiObject:
        """Subjects whose obs_meta row matches a pandas query expression -> view."""
        hit = query_frame(self.obs_meta, expr)
        return self._with_subjects(hit["obs_subject_id"].tolist())

    def head(self, n: int = 5) -> RadiObject:
        return self._with_subjects(self.obs_subject_ids[: max(int(n), 0)])

    def tail(self, n: int = 5) -> RadiObject:
        s = self.obs_subject_ids
        return self._with_subjects(s[max(len(s) - int(n), 0) :])

    def sample(self, n: int = 5, seed: int | None = None) -> RadiObject:
        s = self.obs_subject_ids
        k = min(max(int(n), 0), len(s))
        picks = np.random.default_rng(seed).choice(len(s), size=k, replace=False)
        return self._with_subjects([s[int(i)] for i in picks])

    def select_collections(self, names: Sequence[str]) -> RadiObject:
        """A view with only the collections ``names``."""
        names = [names] if isinstance(names, str) else list(names)
        missing = [n for n in names if n not in self.collection_names]
        if missing:
            raise KeyError(f"no collection(s) {missing}; collections: {list(self.collection_names)}")
        return self._make_view(collections=names)

    def copy(self) -> RadiObject:
        """An attached object returns itself; a view returns an equal view. Nothing is copied in
        storage (``write(uri)`` does that)."""
        if not self.is_view:
            return self
        out = self._make_view()
        return out

    # ------------------------------------------------------------------ summaries

    def describe(self) -> str:
        """A readable summary: subjects, collections with counts and shapes, and the value
        counts of obs_meta columns with at most 10 distinct values."""
        lines = [
            "RadiObject Summary",
            "==================",
            f"URI: {self.uri or '(view)'}",
            f"Subjects: {len(self)}",
            f"Collections: {self.n_collections}",
            "",
            "Collections:",
        ]
        for n in self.collection_names:
            vc = self.collection(n)
            shape = vc.shape
            shape_s = "x".join(map(str, shape)) if shape else "heterogeneous"
            mixed = "" if shape else " (mixed shapes)"
            lines.append(f"  - {n}: {len(vc)} volumes, shape={shape_s}{mixed}")
        df = self.obs_meta
        labels = [
            c for c in df.columns if c not in ("obs_subject_id", *_META_SYSTEM) and 0 < df[c].nunique(dropna=True) <= 10
        ]
        if labels:
            lines += ["", "Label Columns:"]
            for c in labels:
                counts = {py_value(k): int(v) for k, v in df[c].value_counts(dropna=True).items()}
                lines.append(f"  - {c}: {counts}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ validation

    @property
    def context(self) -> Context:
        """The context this dataset reads through."""
        return self._root._state.native.context

    def verify(self, deep: bool = False) -> Any:
        """Verifies the dataset on storage (see :mod:`radiobject.verify`): every obs row has its
        volume and the reverse, counts and metadata agree, each volume opens with the recorded
        obs_id/shape/dtype, the ingest manifest is fully registered; ``deep`` re-reads every
        volume's voxels against its checksum. Returns a :class:`~radiobject.verify.VerifyReport`
        (call ``.raise_for_problems()`` to fail on problems). Views verify their whole dataset."""
        root = self._root
        return verify(str(root.uri), deep=deep, ctx=root.context)

    def validate(self) -> None:
        """Checks the dataset's consistency (the native verify, not deep), raising
        :class:`AlignmentError` listing every problem: root counts, every collection (``VolumeCollection.validate``), subjects with
        volumes but no obs_meta row, obs_ids used twice across collections, and each subject's
        ``obs_ids`` list against the collections."""
        self._check_not_view("validate")
        check_aligned(self._state.native.uri, self._state.native.context)

    # ------------------------------------------------------------------ writing

    def write(self, uri: str, ctx: Context | None = None, *, write: WriteConfig | None = None) -> RadiObject:
        """Writes this object or view as a new dataset at ``uri`` (obs_ids kept, volume metadata
        and every obs/obs_meta column copied; collections without volumes in a view are left
        out)."""
        c = resolve_ctx(ctx) if ctx is not None else self._state.native.context
        meta = self.obs_meta.drop(columns=[m for m in _META_SYSTEM if m in self.obs_meta.columns])
        kinds = {n: k for n, k in frame_kinds(self._state.frame).items() if n not in ("obs_subject_id", *_META_SYSTEM)}
        w = RadiObjectWriter(uri, obs_meta_schema=kinds, ctx=c, write=write)
        with w:
            for n in self.collection_names:
                vc = self.collection(n)
                if len(vc) == 0:
                    continue
                with w.add_collection(n, shape=vc.shape if not vc.is_view else None, obs_schema=vc._snap.kinds) as cw:
                    vc._copy_into(cw)
            if len(meta):
                w.write_obs_meta(meta)
        return w.finalize()

    def append(
        self,
        images: Mapping[str, Any],
        obs_meta: pd.DataFrame | None = None,
        reorient: bool | None = None,
        format_hint: Mapping[str, str] | None = None,
        progress: bool = False,
        *,
        write: WriteConfig | None = None,
    ) -> None:
        """Adds volumes of new or existing subjects to existing or new collections, all or
        nothing.

        ``images`` maps a collection name to a list of ``(array, obs_id, obs_subject_id[, attrs[,
        volume_metadata]])``. New subjects need a row in ``obs_meta`` (rows of subjects already
        present are ignored, as in the reference); every obs_id must be new to the whole dataset.
        Volumes are all written before anything is registered; on any error they are removed.
        Image files (paths, globs, ``(path, subject)`` lists) are handed to
        ``radiobject.ingest.append_images``.
        """
        self._check_not_view("append to")
        if not images:
            raise InvalidArgumentError("images dict cannot be empty: give {collection name: images}")
        if not all(_is_array_items(v) for v in images.values()):
            # the subjects the files belong to, as ingest will name them
            given: list[str] = []
            for name, spec in images.items():
                hint = format_hint.get(name) if isinstance(format_hint, Mapping) else format_hint
                given.extend(sid for _, sid in _sources(name, spec, hint)[1])
            self._check_new_subjects(given, obs_meta)

            append_images(
                self, images, obs_meta=obs_meta, reorient=reorient, format_hint=format_hint, progress=progress
            )
            return
        self._append_arrays(images, obs_meta, write=write)

    def _append_arrays(
        self,
        images: Mapping[str, Sequence[tuple[Any, ...]]],
        obs_meta: pd.DataFrame | None,
        *,
        write: WriteConfig | None = None,
    ) -> None:
        """``append`` for in-memory volumes (what the ingest layer calls after reading files)."""
        self._check_not_view("append to")
        _rb.check_unique_obs_ids([(n, [str(it[1]) for it in items]) for n, items in images.items()], self._native)
        new_subjects = self._check_new_subjects([str(it[2]) for items in images.values() for it in items], obs_meta)
        rows = None
        if new_subjects:
            assert obs_meta is not None
            rows = obs_meta[obs_meta["obs_subject_id"].astype(str).isin(new_subjects)]
        w = RadiObjectWriter._extend(self, write=write)
        with w:
            for name, items in images.items():
                cw = w._append_to(name) if name in self._state.names else w.add_collection(name)
                with cw:
                    for it in items:
                        attrs = it[3] if len(it) > 3 else None
                        meta = it[4] if len(it) > 4 else None
                        cw._write_one(it[0], it[1], it[2], attrs, meta)
            if rows is not None and len(rows):
                w.write_obs_meta(rows)
        self._refresh(w._result)

    def _check_new_subjects(self, given: Sequence[str], obs_meta: pd.DataFrame | None) -> list[str]:
        """The new subjects among ``given`` (each must have an ``obs_meta`` row)."""
        return RadiObject._rows_for_new_subjects(list(self._state.subjects), given, obs_meta)

    @staticmethod
    def _rows_for_new_subjects(
        existing: Sequence[str], given: Sequence[str], obs_meta: pd.DataFrame | None
    ) -> list[str]:
        """The subjects of ``given`` new to ``existing``, each of which needs an ``obs_meta`` row
        (the native ``new_subjects_with_rows``)."""
        have = None
        if obs_meta is not None:
            col = "obs_subject_id" if "obs_subject_id" in obs_meta.columns else "participant_id"
            if col not in obs_meta.columns:
                raise SchemaError("obs_meta must contain an 'obs_subject_id' column")
            have = [str(s) for s in obs_meta[col].tolist()]
        return list(_rb.new_subjects_with_rows(list(existing), [str(s) for s in given], have))

    def add_collection(self, name: str, vc: VolumeCollection | str) -> None:
        """Adds a collection: linked if it already sits at ``{uri}/collections/{name}``, copied
        otherwise (a view copies its volumes only). Subjects new to the dataset get an obs_meta
        row; obs_ids must not clash with the other collections (:class:`AlignmentError`)."""
        self._check_not_view("add a collection to")
        name = str(name)
        if name in self._state.names:
            raise SchemaError(f"collection {name!r} already exists")
        src = VolumeCollection(vc, self._state.native.context) if isinstance(vc, str) else vc
        _rb.check_unique_obs_ids([(name, src.obs_ids)], self._native)
        target = f"{self._state.native.uri}/collections/{name}"
        w = RadiObjectWriter._extend(self)
        with w:
            if not src.is_view and _same_uri(src.uri, target):
                w._link(name)
            else:
                with w.add_collection(name, shape=None if src.is_view else src.shape, obs_schema=src._snap.kinds) as cw:
                    src._copy_into(cw)
        self._refresh(w._result)

    def rename_collection(self, old: str, new: str) -> None:
        """Renames a collection (its directory, member and name); it opens as ``radi.<new>``."""
        self._check_not_view("rename a collection of")
        if old not in self._state.names:
            raise KeyError(f"no collection {old!r}")
        if new in self._state.names:
            raise SchemaError(f"collection {new!r} already exists")
        self._refresh(self._state.native.rename_collection(old, str(new)))

    # ------------------------------------------------------------------ creation

    @classmethod
    def from_collections(
        cls,
        uri: str,
        collections: Mapping[str, VolumeCollection | str],
        obs_meta: pd.DataFrame | None = None,
        ctx: Context | None = None,
    ) -> RadiObject:
        """A new dataset at ``uri`` from collections: each is linked if already at
        ``{uri}/collections/{name}``, else copied (obs_ids kept). ``obs_meta`` (one row per
        subject) must cover every subject with volumes; without it, bare rows are made.
        Everything is checked before anything is written."""
        if not collections:
            raise InvalidArgumentError("at least one collection is required")
        c = resolve_ctx(ctx)
        uri = str(uri).rstrip("/")
        resolved = {str(n): (VolumeCollection(v, c) if isinstance(v, str) else v) for n, v in collections.items()}
        _rb.check_unique_obs_ids([(n, vc.obs_ids) for n, vc in resolved.items()])
        if obs_meta is not None:
            # every subject needs a row: the rule of subjects new to a dataset
            subjects = [s for vc in resolved.values() for s in vc.obs_subject_ids]
            RadiObject._rows_for_new_subjects([], subjects, obs_meta)
        base = f"{uri}/collections"
        in_place = {n for n, vc in resolved.items() if not vc.is_view and _same_uri(vc.uri, f"{base}/{n}")}
        kind = c.object_type(uri)
        if kind is not None:
            raise InvalidArgumentError(f"{uri} already holds a TileDB {kind}")
        for n in resolved:
            if n not in in_place and c.object_type(f"{base}/{n}") is not None:
                raise InvalidArgumentError(f"{base}/{n} already exists and is not the collection given for {n!r}")
        # 1. copy collections into place (each writer cleans up after itself; earlier copies are
        #    removed if a later one fails), so the dataset writer below only links.
        copied: list[str] = []
        try:
            for n, vc in resolved.items():
                if n in in_place:
                    continue
                w = VolumeCollectionWriter(
                    f"{base}/{n}", shape=None if vc.is_view else vc.shape, obs_schema=vc._snap.kinds, name=n, ctx=c
                )
                with w:
                    vc._copy_into(w)
                copied.append(n)
            linked = {n: VolumeCollection(f"{base}/{n}", c) for n in resolved}
        except BaseException:
            for n in copied:
                c.remove(f"{base}/{n}")
            raise
        # 2. the dataset around them
        meta_kinds: dict[str, Any] = {}
        rw = RadiObjectWriter(uri, obs_meta_schema=meta_kinds, ctx=c)
        rw._keep = list(linked)  # the collections are already in place below it; never removed
        with rw:
            for n in linked:
                rw._link(n)
            if obs_meta is not None and len(obs_meta):
                rw.write_obs_meta(obs_meta)
        return rw.finalize()

    @classmethod
    def from_niftis(
        cls,
        uri: str,
        niftis: Sequence[tuple[Any, str]] | None = None,
        image_dir: str | os.PathLike[str] | None = None,
        collection_name: str | None = None,
        images: Mapping[str, Any] | None = None,
        validate_alignment: bool = False,
        obs_meta: pd.DataFrame | None = None,
        reorient: bool | str | None = None,
        ctx: Context | None = None,
        progress: bool = False,
    ) -> RadiObject:
        """A new dataset from NIfTI files (the reference's signature); the images go through
        :func:`radiobject.ingest.from_images` (parallel Rust readers, resumable).

        Give one of:

        * ``images``: ``{collection: glob | directory | [(path, subject_id)]}``;
        * ``niftis``: ``[(path, subject_id)]``;
        * ``image_dir``: a directory of ``*.nii``/``*.nii.gz`` files (subject = file name).

        With ``niftis``/``image_dir``, every file goes to ``collection_name`` if given, otherwise
        files are grouped into collections by the series type their names say (``T1w``,
        ``FLAIR``, ``CT``..., ``unknown``). ``obs_meta`` (one row per subject, an
        ``obs_subject_id`` column) must cover every subject; without it, bare rows are made.
        """
        if images is not None:
            if niftis is not None or image_dir is not None or collection_name is not None:
                raise InvalidArgumentError(
                    "Cannot use 'images' with legacy parameters (niftis, image_dir, collection_name)"
                )
            if not images:
                raise InvalidArgumentError("images dict cannot be empty")
            spec: dict[str, Any] = dict(images)
        else:
            if niftis is not None and image_dir is not None:
                raise InvalidArgumentError("Cannot specify both 'niftis' and 'image_dir'")
            if image_dir is not None:
                pairs = list(discover_sources(str(image_dir), "nifti")[1])
            elif niftis is not None:
                pairs = [(str(p), str(sid)) for p, sid in niftis]
            else:
                raise InvalidArgumentError("Must specify 'images', 'niftis', or 'image_dir'")
            if not pairs:
                raise InvalidArgumentError("No NIfTI files found")
            if collection_name:
                spec = {collection_name: pairs}
            else:
                spec = {}
                for path, sid in pairs:
                    spec.setdefault(_rb.infer_series_type(path), []).append((path, sid))
        return cls.from_images(
            uri,
            spec,
            validate_alignment=validate_alignment,
            obs_meta=obs_meta,
            reorient=reorient,
            format_hint="nifti",
            ctx=ctx,
            progress=progress,
        )

    @classmethod
    def from_images(cls, uri: str, images: Mapping[str, Any], **kwargs: Any) -> RadiObject:
        """Builds a dataset from NIfTI/DICOM images (see :func:`radiobject.ingest.from_images`)."""
        # looked up at call time, so the ingest module can be replaced (tests do)
        return importlib.import_module("radiobject.ingest").from_images(uri, images, **kwargs)
