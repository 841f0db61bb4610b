"""``EagerQuery``: the materialised results of ``VolumeCollection.map``.

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

from radiobject._frames import kind_of_value, py_value
from radiobject._types import AttrValue, normalize_transform_result
from radiobject.ctx import Context, WriteConfig, resolve_ctx
from radiobject.exceptions import InvalidArgumentError
from radiobject.parallel import map_on_threads

if TYPE_CHECKING:
    from radiobject.volume_collection import VolumeCollection

__all__ = ["EagerQuery"]

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
        from radiobject.volume_collection import renamed_obs_ids
        from radiobject.writers import VolumeCollectionWriter

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
            ids = renamed_obs_ids(sids, out_name)
        kinds: dict[str, str] = dict(self._source._snap.kinds) if self._source is not None else {}
        for upd in self._obs_updates:
            for k, v in upd.items():
                if k not in kinds and k not in _INDEX:
                    kind = kind_of_value(v)
                    if kind is not None:
                        kinds[k] = kind
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
                attrs = {c: py_value(row[c]) for c in cols}
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
        return self.to_dataframe()._repr_html_()  # type: ignore[no-any-return]

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
