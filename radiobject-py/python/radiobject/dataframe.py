"""``Dataframe``: the sparse TileDB arrays holding ``obs`` (one row per volume) and ``obs_meta``
(one row per subject), read and written as pandas DataFrames.

Differences from the reference's ``Dataframe`` (each fixes one of its defects):

* ``shape`` is ``(rows, columns)`` — the reference returned the largest index *key* as the row count;
* string columns, non-ASCII ids and nulls work (see :mod:`radiobject._frames` for the type rules);
* ``read(value_filter=...)`` uses **pandas** :meth:`~pandas.DataFrame.query` on the rows read —
  the same grammar as ``VolumeCollection.filter`` and ``RadiObject.filter``, attached or view (the
  reference used TileDB QueryConditions here and pandas on views);
* writes are always full rows (``update`` fills the columns it is not given from the stored rows),
  so a table with user columns never fails to update.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from radiobject import _radiobject as _rb
from radiobject._frames import (
    frame_len,
    frame_to_pandas,
    kind_of_dtype,
    pandas_to_frame,
    series_to_column,
)
from radiobject.ctx import Context, resolve_ctx
from radiobject.exceptions import SchemaError

__all__ = ["Dataframe", "ObsFrame", "INDEX_COLUMNS"]

#: Index columns of a collection's ``obs``.
INDEX_COLUMNS: tuple[str, ...] = ("obs_subject_id", "obs_id")


def _schema_kinds(schema: Mapping[str, Any] | None, index_columns: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, dtype in (schema or {}).items():
        name = str(name)
        if "\x00" in name or not name:
            raise SchemaError(f"invalid column name {name!r}")
        if name in index_columns:
            raise SchemaError(f"column {name!r} conflicts with index column {name!r}")
        out[name] = kind_of_dtype(dtype, name)
    return out


def _caller_frame() -> Any:
    """The innermost stack frame outside the radiobject package (the user's code)."""
    import sys
    from types import FrameType

    f: FrameType | None = sys._getframe(1)
    while f is not None and str(f.f_globals.get("__name__", "")).split(".")[0] == "radiobject":
        f = f.f_back
    return f


def query_frame(df: pd.DataFrame, expr: str) -> pd.DataFrame:
    """``df.query(expr)``: the one filter grammar of the package, with ``@name`` resolved in the
    caller's scope as pandas does. Unknown names raise ``KeyError`` naming the expression."""
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError("a filter expression must be a non-empty string")
    caller = _caller_frame()
    scope = {} if caller is None else {"local_dict": caller.f_locals, "global_dict": caller.f_globals}
    try:
        out = df.query(expr, **scope)
    except (KeyError, NameError, pd.errors.UndefinedVariableError) as e:
        raise KeyError(f"filter {expr!r}: unknown column or name ({e})") from None
    if not isinstance(out, pd.DataFrame):
        raise ValueError(f"filter {expr!r} does not select rows")
    return out


class ObsFrame(pd.DataFrame):
    """The rows of ``VolumeCollection.obs`` / ``RadiObject.obs_meta``: a pandas DataFrame (a copy;
    changing it changes nothing stored) that also answers the reference's ``Dataframe`` calls,
    so both ``vc.obs["qc"]`` and ``vc.obs.read()`` work.

    * :meth:`read` (``columns=None, value_filter=None, include_index=True``) returns the rows as a
      plain DataFrame, like ``Dataframe.read`` — from the rows already loaded (no storage read),
      and for a view only the view's rows (the reference read the whole stored table);
    * :attr:`index_columns` and :attr:`uri` name the stored table.

    Every pandas operation (``set_index``, ``drop``, slicing...) returns a plain DataFrame. To
    change the stored table, use ``VolumeCollection.obs_dataframe`` /
    ``RadiObject.obs_meta_dataframe`` (a :class:`Dataframe`).
    """

    _metadata: ClassVar[list[str]] = ["_ro_index_columns", "_ro_uri"]
    _ro_index_columns: tuple[str, ...]
    _ro_uri: str | None

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    @classmethod
    def _of(cls, df: pd.DataFrame, index_columns: Sequence[str], uri: str | None) -> ObsFrame:
        out = cls(df)
        out._ro_index_columns = tuple(index_columns)
        out._ro_uri = uri
        return out

    @property
    def index_columns(self) -> tuple[str, ...]:
        """Index (dimension) columns of the stored table."""
        return tuple(getattr(self, "_ro_index_columns", ()) or ())

    @property
    def uri(self) -> str | None:
        """URI of the stored table."""
        return getattr(self, "_ro_uri", None)

    @property
    def all_columns(self) -> list[str]:
        """Every column, index columns first (as ``Dataframe.all_columns``)."""
        return [str(c) for c in self.columns]

    def read(
        self,
        columns: Sequence[str] | None = None,
        value_filter: str | None = None,
        include_index: bool = True,
    ) -> pd.DataFrame:
        """The rows as a plain pandas DataFrame, index columns first (``Dataframe.read``).

        Args:
            columns: attribute columns to return (default: all); index columns always come too
                unless ``include_index`` is False.
            value_filter: a pandas :meth:`~pandas.DataFrame.query` expression, e.g.
                ``"age > 40 and qc == 'pass'"``.
            include_index: keep the index columns.
        """
        df = pd.DataFrame(self, copy=True)
        idx = [c for c in self.index_columns if c in df.columns]
        attrs = [str(c) for c in df.columns if c not in idx]
        if columns is not None:
            wanted = [str(c) for c in columns if str(c) not in idx]
            unknown = [c for c in wanted if c not in attrs]
            if unknown:
                raise KeyError(f"no column(s) {unknown}; columns are {[*idx, *attrs]}")
            attrs = wanted
        if value_filter is not None:
            df = query_frame(df, value_filter)
        keep = (idx if include_index else []) + attrs
        return df[keep].reset_index(drop=True)


class Dataframe:
    """A sparse TileDB dataframe (``obs`` / ``obs_meta``).

    Args:
        uri: the array.
        ctx: context to read through (default: the global one).
    """

    def __init__(self, uri: str, ctx: Context | None = None):
        self._ctx = resolve_ctx(ctx)
        self.uri = str(uri)
        self._native = _rb.NativeDataframe.open(self.uri, self._ctx)

    @classmethod
    def _wrap(cls, native: Any, uri: str, ctx: Context) -> Dataframe:
        self = cls.__new__(cls)
        self._ctx = ctx
        self.uri = uri
        self._native = native
        return self

    # ------------------------------------------------------------------ schema

    @property
    def index_columns(self) -> tuple[str, ...]:
        """Index (dimension) columns, from the schema."""
        return tuple(self._native.index_columns)

    @property
    def columns(self) -> list[str]:
        """Attribute (non-index) columns."""
        return [n for n, _ in self._native.columns]

    @property
    def all_columns(self) -> list[str]:
        """Index columns, then attribute columns."""
        return [*self.index_columns, *self.columns]

    @property
    def kinds(self) -> dict[str, str]:
        """Stored kind of every attribute column (``"str"`` or a NumPy dtype name)."""
        return dict(self._native.columns)

    @property
    def dtypes(self) -> dict[str, np.dtype]:
        """NumPy dtype of every attribute column (``object`` for text)."""
        return {n: np.dtype(object) if k == "str" else np.dtype(k) for n, k in self._native.columns}

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, attribute columns)``."""
        return (len(self), len(self._native.columns))

    def __len__(self) -> int:
        return int(self._native.count())

    def __repr__(self) -> str:
        return f"Dataframe(uri={self.uri!r}, shape={self.shape}, columns={self.columns})"

    # ------------------------------------------------------------------ reads

    def read_frame(self, columns: Sequence[str] | None = None) -> dict:
        """The rows as a native frame dict (index columns first, sorted by index)."""
        return self._native.read(None if columns is None else list(columns))

    def read(
        self,
        columns: Sequence[str] | None = None,
        value_filter: str | None = None,
        include_index: bool = True,
    ) -> pd.DataFrame:
        """The rows (sorted by the index columns) as a pandas DataFrame, index columns first.

        Args:
            columns: attribute columns to return (default: all). Index columns are always read.
            value_filter: a pandas :meth:`~pandas.DataFrame.query` expression over any column,
                e.g. ``"age > 40 and diagnosis == 'tumor'"``.
            include_index: keep the index columns in the result.
        """
        idx = list(self.index_columns)
        wanted = None if columns is None else [c for c in columns if c not in idx]
        if wanted is not None:
            unknown = [c for c in wanted if c not in self.kinds]
            if unknown:
                raise KeyError(f"{self.uri}: no column(s) {unknown}; columns are {self.all_columns}")
        frame = self._native.read(None if value_filter is not None else wanted)
        df = frame_to_pandas(frame)
        if value_filter is not None:
            df = query_frame(df, value_filter).reset_index(drop=True)
        keep = (idx if include_index else []) + (self.columns if wanted is None else wanted)
        return df[keep]

    # ------------------------------------------------------------------ writes

    def add_column(self, name: str, dtype: Any, fill: Any = None) -> None:
        """Adds a column (existing rows read as null, or ``fill`` when given)."""
        name = str(name)
        if name in self.index_columns:
            raise SchemaError(f"column {name!r} conflicts with index column {name!r}")
        if name in self.kinds:
            raise SchemaError(f"column {name!r} already exists")
        kind = _schema_kinds({name: dtype}, self.index_columns)[name]
        self._native.add_columns({name: kind})
        if fill is not None:
            frame = self._native.read(None)
            n = frame_len(frame)
            if n:
                frame[name] = series_to_column(pd.Series([fill] * n, dtype=object), name, kind)
                self._native.write(frame)

    def update(self, df: pd.DataFrame) -> None:
        """Upserts rows: rows whose index exists are replaced, others are added. Columns missing
        from ``df`` keep their stored values (new rows get nulls). Every column of ``df`` must
        exist (:meth:`add_column` first); values are converted to the stored types."""
        self._native.update(pandas_to_frame(df, list(self.index_columns), self.kinds))

    def drop_column(self, name: str) -> None:
        """Removes an attribute column (schema evolution; the stored values are no longer read).

        TileDB keeps the dropped values in the fragments written before the drop: a column added
        later under the **same name** shows them again (as in the reference). Use a new name.

        Raises:
            InvalidArgumentError: ``name`` is an index column ("Cannot drop index column") or no
                column of this dataframe ("does not exist").
        """
        self._native.drop_column(str(name))

    def delete(self, cond: str) -> int:
        """Deletes the rows matching ``cond`` — a pandas :meth:`~pandas.DataFrame.query`
        expression over any column, the grammar of :meth:`read`'s ``value_filter`` (simple
        conditions such as ``"age < 40"`` read the same as the reference's TileDB conditions).

        The matching rows are removed with one TileDB delete query on their index values; the
        same index values can be written again later (:meth:`update`). Returns the number of rows
        deleted.
        """
        hit = self.read(value_filter=cond)
        if hit.empty:
            return 0
        idx = list(self.index_columns)
        keys = pandas_to_frame(hit[idx], idx, {})
        return int(self._native.delete(keys))

    # ------------------------------------------------------------------ creation

    @classmethod
    def create(
        cls,
        uri: str,
        schema: Mapping[str, Any] | None = None,
        ctx: Context | None = None,
        index_columns: Sequence[str] = INDEX_COLUMNS,
    ) -> Dataframe:
        """Creates an empty dataframe: text ``index_columns`` and ``schema`` columns
        (``{name: dtype}``; ``str``/``object``/``"U64"`` for text)."""
        c = resolve_ctx(ctx)
        idx = [str(i) for i in index_columns]
        kinds = _schema_kinds(schema, idx)
        native = _rb.NativeDataframe.create(str(uri), c, idx, kinds)
        return cls._wrap(native, str(uri), c)

    @classmethod
    def from_pandas(
        cls,
        uri: str,
        df: pd.DataFrame,
        ctx: Context | None = None,
        index_columns: Sequence[str] = INDEX_COLUMNS,
    ) -> Dataframe:
        """Creates a dataframe holding ``df`` (which must contain the ``index_columns``)."""
        idx = [str(i) for i in index_columns]
        frame = pandas_to_frame(df, idx)
        keys = list(zip(*(frame[c][1] for c in idx)))
        if len(set(keys)) != len(keys):
            raise SchemaError("from_pandas(): the DataFrame has duplicate index values")
        out = cls.create(uri, {n: k for n, (k, _, _) in frame.items() if n not in idx}, ctx, idx)
        if keys:
            out._native.write(frame)
        return out
