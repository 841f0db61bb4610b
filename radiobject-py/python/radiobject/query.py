"""``EagerQuery`` (the materialised results of ``VolumeCollection.map``) and ``LazyQuery`` (a
deferred pipeline from ``VolumeCollection.lazy()``).

Each result is paired with its volume's obs row. A transform may return ``(value, obs_updates)``;
the updates accumulate over chained ``.map`` calls, are merged into the row every later transform
sees, and become obs columns on ``.write``. Rows are looked up by position (O(1)); the reference
filtered the whole obs DataFrame once per volume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from radiobject import _radiobject as _rb
from radiobject._types import AttrValue, normalize_transform_result
from radiobject.ctx import Context, WriteConfig, resolve_ctx
from radiobject.dataframe import query_frame
from radiobject.exceptions import InvalidArgumentError, ShapeError
from radiobject.indexing import iloc_positions
from radiobject.parallel import map_on_threads
from radiobject.writers import VolumeCollectionWriter

if TYPE_CHECKING:
    from radiobject.volume import Volume
    from radiobject.volume_collection import VolumeCollection

__all__ = ["EagerQuery", "LazyQuery"]

_INDEX = ("obs_id", "obs_subject_id")


def _summary(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{'x'.join(map(str, value.shape))} {value.dtype}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4f}"
    return str(value)


class EagerQuery:
    """Computed results with their obs rows.

    Args:
        results: one result per volume.
        obs_df: the obs rows, aligned with ``results`` (row ``i`` belongs to result ``i``).
        source: the collection (or view) the results came from.
        obs_updates: per-result dicts of obs changes accumulated so far.
    """

    def __init__(
        self,
        results: Sequence[Any],
        obs_df: pd.DataFrame,
        source: VolumeCollection | None = None,
        obs_updates: Sequence[dict[str, AttrValue]] | None = None,
    ):
        self._results = list(results)
        self._obs_df = obs_df.reset_index(drop=True)
        if len(self._obs_df) != len(self._results):
            raise InvalidArgumentError(f"{len(self._results)} results for {len(self._obs_df)} obs rows")
        self._source = source
        self._obs_updates = [dict(u) for u in obs_updates] if obs_updates is not None else [{} for _ in self._results]
        if len(self._obs_updates) != len(self._results):
            raise InvalidArgumentError("obs_updates must have one dict per result")

    def _merged_obs(self, i: int) -> pd.Series:
        row = self._obs_df.iloc[i]
        upd = self._obs_updates[i]
        if not upd:
            return row.copy()
        row = row.astype(object)
        for k, v in upd.items():
            row[k] = v
        return row

    def map(self, fn: Callable[..., Any], *, max_workers: int | None = None) -> EagerQuery:
        """Applies ``fn(result, obs_row)`` to every result now (on a thread pool); the row has
        the updates of earlier transforms merged in."""
        rows = [self._merged_obs(i) for i in range(len(self))]

        def run(i: int) -> tuple[Any, dict[str, Any]]:
            return normalize_transform_result(fn(self._results[i], rows[i]))

        out = map_on_threads(run, range(len(self)), max_workers=max_workers)
        updates = [{**prev, **u} for prev, (_, u) in zip(self._obs_updates, out)]
        return EagerQuery([v for v, _ in out], self._obs_df, self._source, updates)

    def write(
        self,
        uri: str,
        name: str | None = None,
        ctx: Context | None = None,
        *,
        rename_obs_ids: bool | None = None,
        write: WriteConfig | None = None,
    ) -> VolumeCollection:
        """Writes the results (3D/4D arrays) as a new collection at ``uri``; obs rows keep their
        columns, plus the accumulated updates as new or changed columns.

        obs_ids are kept unless renamed — ``rename_obs_ids=True``, or by default when ``name``
        is given and differs from the source's name — to ``{subject}_{name}`` (``_acq-k`` for
        subjects with several volumes; see ``VolumeCollection.write``).
        """
        bad = [i for i, r in enumerate(self._results) if not isinstance(r, np.ndarray)]
        if bad:
            raise InvalidArgumentError(
                f"write() needs array results; result {bad[0]} is a {type(self._results[bad[0]]).__name__}"
            )
        src_name = self._source.name if self._source is not None else None
        out_name = name if name is not None else src_name
        rename = (name is not None and name != src_name) if rename_obs_ids is None else bool(rename_obs_ids)
        sids = [str(s) for s in self._obs_df["obs_subject_id"].tolist()]
        ids = [str(s) for s in self._obs_df["obs_id"].tolist()]
        if rename:
            if not out_name:
                raise InvalidArgumentError("renaming obs_ids needs a collection name; pass name=")
            ids = _rb.rename_obs_ids(sids, out_name)
        kinds: dict[str, str] = dict(self._source._snap.kinds) if self._source is not None else {}
        if ctx is not None:
            c = resolve_ctx(ctx)
        elif self._source is not None:
            c = self._source._context
        else:
            c = resolve_ctx(None)
        w = VolumeCollectionWriter(uri, obs_schema=kinds, name=out_name, ctx=c, write=write)
        cols = [c for c in self._obs_df.columns if c not in _INDEX]
        with w:
            for i, result in enumerate(self._results):
                row = self._obs_df.iloc[i]
                attrs = {c: row[c] for c in cols}
                attrs.update(self._obs_updates[i])
                w._write_one(result, ids[i], sids[i], attrs, None)
        return w.finalize()

    def to_list(self) -> list[tuple[Any, pd.Series]]:
        """``[(result, merged obs row), ...]``."""
        return list(self)

    def to_dataframe(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per result: obs columns (default: obs_id, obs_subject_id and updated keys)
        and a ``result`` summary (``"8x8x4 float32"`` for arrays)."""
        default = ["obs_id", "obs_subject_id"]
        extra: list[str] = []
        for upd in self._obs_updates:
            extra.extend(k for k in upd if k not in extra and k not in default)
        cols = list(columns) if columns is not None else default + extra
        rows = []
        for result, row in self:
            d = {c: row.get(c, None) for c in cols}
            d["result"] = _summary(result)
            rows.append(d)
        return pd.DataFrame(rows, columns=[*cols, "result"])

    def _repr_html_(self) -> str:
        return self.to_dataframe()._repr_html_()  # type: ignore[operator]  # not in pandas-stubs

    def __iter__(self) -> Iterator[tuple[Any, pd.Series]]:
        for i in range(len(self._results)):
            yield self._results[i], self._merged_obs(i)

    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, i: int) -> tuple[Any, pd.Series]:
        n = len(self._results)
        j = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"result {i} is out of range for {n} results")
        return self._results[j], self._merged_obs(j)

    def __repr__(self) -> str:
        return f"EagerQuery({len(self._results)} results)"


def _compose(prev: Callable[..., Any] | None, new: Callable[..., Any]) -> Callable[..., Any]:
    """``prev`` then ``new``; ``prev``'s obs updates are merged into the row ``new`` sees, and
    both sets of updates are returned (later keys win)."""
    if prev is None:
        return new

    def composed(volume: Any, obs_row: pd.Series) -> Any:
        vol, upd = normalize_transform_result(prev(volume, obs_row))
        row = obs_row.copy()
        if upd:
            row = row.astype(object)
            for k, v in upd.items():
                row[k] = v
        out, upd2 = normalize_transform_result(new(vol, row))
        merged = {**upd, **upd2}
        return (out, merged) if merged else out

    return composed


class LazyQuery:
    """A deferred selection of a collection's volumes, with queued transforms
    (``VolumeCollection.lazy()``). Immutable: every method returns a new query, nothing is read
    until ``count``/``to_obs``/``iter_volumes``/``to_numpy_stack``/``write``.

    Follows the reference's semantics:

    * selections combine by intersection: ``filter`` expressions are AND-ed, ``filter_subjects``
      and ``iloc``/``loc``/``head``/``tail`` intersect with what was selected before, and the
      positions of ``iloc``/``head``/``tail`` count in the **source** collection (so
      ``.filter(e).head(2)`` keeps those of the source's first two volumes that match ``e``);
      ``sample`` draws from the current selection;
    * ``filter`` takes the package's one filter grammar (pandas :meth:`~pandas.DataFrame.query`,
      as ``VolumeCollection.filter``); simple conditions such as ``"qc == 'pass'"`` read the same
      as the reference's TileDB conditions;
    * ``map`` composes: ``q.map(f).map(g)`` runs ``f`` then ``g``; a transform returns the volume
      or ``(volume, obs_updates)``, updates are merged into the row later transforms see and
      become obs columns on ``write``;
    * ``iter_volumes``, ``to_numpy_stack`` and ``write`` visit volumes in ``sorted(obs_id)`` order.

    Args:
        source: the attached collection the query selects from.
        volume_ids: obs_ids to keep (None: all).
        volume_query: a filter expression (None: no filter).
        subject_ids: subjects to keep (None: all).
        transform_fn: the queued transform (None: none).
    """

    def __init__(
        self,
        source: VolumeCollection,
        *,
        volume_ids: frozenset[str] | None = None,
        volume_query: str | None = None,
        subject_ids: frozenset[str] | None = None,
        transform_fn: Callable[..., Any] | None = None,
    ):
        self._source = source._root
        self._volume_ids = None if volume_ids is None else frozenset(str(i) for i in volume_ids)
        self._volume_query = volume_query
        self._subject_ids = None if subject_ids is None else frozenset(str(s) for s in subject_ids)
        self._transform_fn = transform_fn

    def _copy(self, **changes: Any) -> LazyQuery:
        fields: dict[str, Any] = {
            "volume_ids": self._volume_ids,
            "volume_query": self._volume_query,
            "subject_ids": self._subject_ids,
            "transform_fn": self._transform_fn,
        }
        fields.update(changes)
        return LazyQuery(self._source, **fields)

    def _with_ids(self, ids: frozenset[str]) -> LazyQuery:
        return self._copy(volume_ids=ids if self._volume_ids is None else self._volume_ids & ids)

    # ------------------------------------------------------------------ selection

    def filter(self, expr: str) -> LazyQuery:
        """Keeps volumes whose obs row matches ``expr`` (AND-ed with earlier filters)."""
        if not isinstance(expr, str) or not expr.strip():
            raise InvalidArgumentError("a filter expression must be a non-empty string")
        q = expr if self._volume_query is None else f"({self._volume_query}) and ({expr})"
        return self._copy(volume_query=q)

    def filter_subjects(self, ids: Sequence[str]) -> LazyQuery:
        """Keeps volumes of the subjects ``ids``."""
        new = frozenset([ids] if isinstance(ids, str) else (str(i) for i in ids))
        return self._copy(subject_ids=new if self._subject_ids is None else self._subject_ids & new)

    def iloc(self, key: Any) -> LazyQuery:
        """Keeps the volumes at positions ``key`` (int, slice, int list or boolean mask) of the
        source collection."""
        ids = self._source.obs_ids
        pos = iloc_positions(key, len(ids), "volumes")
        picked = [ids[pos]] if isinstance(pos, int) else [ids[i] for i in pos]
        return self._with_ids(frozenset(picked))

    def loc(self, key: str | Sequence[str]) -> LazyQuery:
        """Keeps the volumes ``key`` (an obs_id or a list of them)."""
        return self._with_ids(frozenset([key] if isinstance(key, str) else (str(k) for k in key)))

    def head(self, n: int = 5) -> LazyQuery:
        """Keeps the source's first ``n`` volumes."""
        return self.iloc(slice(0, max(int(n), 0)))

    def tail(self, n: int = 5) -> LazyQuery:
        """Keeps the source's last ``n`` volumes."""
        total = len(self._source)
        return self.iloc(slice(max(0, total - int(n)), total))

    def sample(self, n: int = 5, seed: int | None = None) -> LazyQuery:
        """Keeps ``n`` volumes drawn without replacement from the current selection."""
        resolved = sorted(self._resolve())
        k = min(max(int(n), 0), len(resolved))
        picks = np.random.default_rng(seed).choice(len(resolved), size=k, replace=False)
        return self._copy(volume_ids=frozenset(resolved[int(i)] for i in picks))

    def map(self, fn: Callable[..., Any]) -> LazyQuery:
        """Queues ``fn(volume, obs_row)`` (run on ``write``), after the transforms queued before."""
        if not callable(fn):
            raise InvalidArgumentError(f"map() needs a callable, got {type(fn).__name__}")
        return self._copy(transform_fn=_compose(self._transform_fn, fn))

    # ------------------------------------------------------------------ resolution

    def _resolve(self) -> frozenset[str]:
        """obs_ids selected by every filter."""
        src = self._source
        obs = src._obs_df()
        if self._volume_query is not None:
            obs = query_frame(obs, self._volume_query)
        ids = obs["obs_id"]
        if self._subject_ids is not None:
            ids = ids[obs["obs_subject_id"].isin(self._subject_ids)]
        out = frozenset(str(i) for i in ids)
        return out if self._volume_ids is None else out & self._volume_ids

    def _view(self) -> VolumeCollection:
        """The selection as a view of the source (index order)."""
        src = self._source
        return src._view([src._rank_of(i) for i in self._resolve()])

    def count(self) -> int:
        """Number of volumes selected."""
        return len(self._resolve())

    def __len__(self) -> int:
        return self.count()

    def to_obs(self) -> pd.DataFrame:
        """obs rows of the selected volumes (index order)."""
        return self._view().obs

    def iter_volumes(self) -> Iterator[Volume]:
        """The selected volumes, in ``sorted(obs_id)`` order."""
        src = self._source
        for obs_id in sorted(self._resolve()):
            yield src.loc[obs_id]  # type: ignore[misc]

    def to_numpy_stack(self) -> np.ndarray:
        """The selected volumes (untransformed) stacked as ``(N, X, Y, Z[, T])``, in
        ``sorted(obs_id)`` order. All must have one shape."""
        ids = sorted(self._resolve())
        if not ids:
            raise InvalidArgumentError("No volumes match the query")
        src = self._source
        ranks = [src._rank_of(i) for i in ids]
        arrays = src._read_ranks(ranks)
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ShapeError(f"cannot stack volumes of different shapes: {sorted(shapes)[:3]}")
        return np.stack(arrays, axis=0)

    def write(
        self,
        uri: str | None = None,
        name: str | None = None,
        ctx: Context | None = None,
        *,
        write: WriteConfig | None = None,
    ) -> VolumeCollection:
        """Runs the queued transforms and writes the selection as a new collection, one volume
        at a time (memory stays bounded). obs rows keep their columns, plus transform updates.

        Like the reference, obs_ids become ``{subject}_{name}`` (``name``, else the source's
        name), with ``_acq-k`` for subjects with several volumes so they never collide; without
        any name they are kept. ``uri=None`` writes next to the source: ``<parent>/<name>``,
        else ``<source>_<transform name>``, else ``<source>_written``.
        """
        view = self._view()
        if len(view) == 0:
            raise InvalidArgumentError("No volumes match the query")
        src = self._source
        out_name = name if name is not None else src.name
        if uri is None:
            parent, leaf = src.uri.rsplit("/", 1)
            fn_name = getattr(self._transform_fn, "__name__", None)
            if name:
                uri = f"{parent}/{name}"
            elif self._transform_fn is not None and fn_name and fn_name not in ("<lambda>", "composed"):
                uri = f"{parent}/{leaf}_{fn_name}"
            else:
                uri = f"{src.uri}_written"
        new_ids = _rb.rename_obs_ids(view.obs_subject_ids, out_name) if out_name else None
        c = resolve_ctx(ctx) if ctx is not None else src._context
        if self._transform_fn is None:
            w = VolumeCollectionWriter(
                uri, shape=src.shape, obs_schema=src._snap.kinds, name=out_name, ctx=c, write=write
            )
            with w:
                view._copy_into(w, new_ids)
            return w.finalize()
        fn = self._transform_fn
        obs = view.obs
        cols = [col for col in obs.columns if col not in _INDEX]
        ids = new_ids if new_ids is not None else view.obs_ids
        sids = view.obs_subject_ids
        w = VolumeCollectionWriter(uri, shape=None, obs_schema=src._snap.kinds, name=out_name, ctx=c, write=write)
        with w:
            for k, (_, data) in enumerate(view._iter_arrays()):
                row = obs.iloc[k]
                result, updates = normalize_transform_result(fn(data, row))
                if not isinstance(result, np.ndarray):
                    raise InvalidArgumentError(
                        f"write() needs array results; the transform returned a {type(result).__name__}"
                    )
                attrs = {col: row[col] for col in cols}
                attrs.update(updates)
                w._write_one(result, ids[k], sids[k], attrs, None)
        return w.finalize()

    def __repr__(self) -> str:
        shape = self._source.shape
        shape_s = "x".join(map(str, shape)) if shape else "heterogeneous"
        return f"LazyQuery('{self._source.name or 'unnamed'}', {self.count()} volumes, shape={shape_s})"
