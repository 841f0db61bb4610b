"""Conversions between the native layer's frame dicts and pandas, shared by every module.

A *frame* is what ``radiobject._radiobject`` reads and writes: an insertion-ordered dict
``{column: (kind, values, valid)}`` where ``kind`` is ``"str"`` or a NumPy dtype name (``"int64"``,
``"float64"``, ``"bool"``, ...), ``values`` a ``list[str]`` or a NumPy array, and ``valid`` None
(no nulls) or a bool array (False = null).

Reading (``frame_to_pandas``) — one rule per kind, so nulls round-trip:

=============  ======================  ==============================
stored kind    no nulls                with nulls
=============  ======================  ==============================
``str``        ``object`` of str       ``object``, ``None`` for nulls
``bool``       ``bool``                ``"boolean"`` (``pd.NA``)
ints           ``int64`` / ``int32``…  ``"Int64"`` / ``"Int32"``…
floats         ``float64``/``float32`` same dtype, NaN for nulls
=============  ======================  ==============================

String columns come back as ``object`` rather than pandas 3's ``str`` dtype, so missing values are
``None`` and code that tests ``dtype == object`` (as the reference's label loader does) keeps
working.

Writing (``pandas_to_frame``) accepts ``object`` columns of str / bool / int / float (with None,
NaN or ``pd.NA`` as nulls), pandas ``str``/``string``, categoricals (stored as their values),
NumPy bools / ints / floats (float16 widened to float32) and the nullable ``Int*``, ``UInt*``,
``Float*`` and ``boolean`` dtypes. NaN in a NumPy float column is stored as NaN (a value, as the
reference stores it); ``pd.NA`` in a nullable column is stored as a null.

**Datetimes, timedeltas, periods, intervals and complex numbers are refused** with a
:class:`~radiobject.exceptions.SchemaError`: store ``series.astype("int64")`` (ns since the epoch)
or ISO strings explicitly, so the stored type is a choice the caller made and other readers
(the reference, tiledb-py) see a plain column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from radiobject import _radiobject as _rb
from radiobject.exceptions import SchemaError

__all__ = [
    "Frame",
    "INT_KINDS",
    "FLOAT_KINDS",
    "KINDS",
    "kind_of_dtype",
    "frame_to_pandas",
    "pandas_to_frame",
    "series_to_column",
    "frame_len",
    "frame_kinds",
    "frame_column_values",
    "frame_records",
    "py_value",
]

Frame = dict  # {name: (kind, values, valid)}

INT_KINDS = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
FLOAT_KINDS = frozenset({"float32", "float64"})
KINDS = INT_KINDS | FLOAT_KINDS | {"str", "bool"}

# the nullable Int*/UInt*/Float*/boolean dtypes
_MaskedDtype = pd.core.dtypes.dtypes.BaseMaskedDtype  # type: ignore[attr-defined]  # not in pandas-stubs


# ---------------------------------------------------------------------------------------------
# kinds


def _refuse(name: str, what: str) -> SchemaError:
    return SchemaError(
        f"column {name!r}: {what} cannot be stored; convert it first "
        "(e.g. datetimes with .astype('int64') for ns since the epoch, or .astype(str) for ISO text)"
    )


def kind_of_dtype(dtype: Any, name: str = "?") -> str:
    """The storage kind for a dtype-like (``np.dtype``, a type, ``"U64"``, ``"str"``, ``object``,
    ``"Int64"``, ``"boolean"``...). Text, object and byte-string dtypes are ``"str"``."""
    if isinstance(dtype, str):
        low = dtype.strip()
        if low in KINDS:
            return low
        if low in ("string", "object", "O", "text", "U", "unicode"):
            return "str"
        if low == "boolean":
            return "bool"
        if low[:1] in ("I", "U", "F") and low.lower() in KINDS:  # Int64, UInt8, Float64
            return low.lower()
    if dtype is str or dtype is object:
        return "str"
    if dtype is bool:
        return "bool"
    if dtype is int:
        return "int64"
    if dtype is float:
        return "float64"
    if isinstance(dtype, pd.StringDtype):
        return "str"
    if isinstance(dtype, pd.BooleanDtype):
        return "bool"
    if isinstance(dtype, _MaskedDtype):
        return np.dtype(dtype.numpy_dtype).name
    if isinstance(dtype, pd.CategoricalDtype):
        return kind_of_dtype(dtype.categories.dtype, name)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise SchemaError(f"column {name!r}: unsupported column type {dtype!r}") from None
    if dt.kind in "OUS":
        return "str"
    if dt.kind == "b":
        return "bool"
    if dt.kind in "iu":
        return dt.name
    if dt.kind == "f":
        if dt.itemsize == 2:
            return "float32"
        if dt.name in FLOAT_KINDS:
            return dt.name
    if dt.kind in "mM":
        raise _refuse(name, f"a {dt} column")
    raise SchemaError(f"column {name!r}: unsupported column type {dt}")


def _is_null(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, (float, np.floating)):
        return math.isnan(v)
    return False


def py_value(v: Any) -> Any:
    """A plain Python scalar (``None`` for every kind of null), as the native writers take them."""
    if _is_null(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


# ---------------------------------------------------------------------------------------------
# frame -> pandas


def _column_to_array(kind: str, values: Any, valid: Any) -> Any:
    if kind == "str":
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        if valid is not None:
            arr[~np.asarray(valid, dtype=bool)] = None
        return pd.Series(arr, dtype=object, copy=False)
    if not isinstance(values, np.ndarray):  # bytes of an unsupported kind: hand over as is
        return pd.Series([values] if isinstance(values, bytes) else list(values), dtype=object)
    if valid is None:
        return values
    mask = ~np.asarray(valid, dtype=bool)
    if kind == "bool":
        return pd.arrays.BooleanArray(values.astype(bool, copy=False), mask)
    if kind in INT_KINDS:
        return pd.arrays.IntegerArray(values, mask)
    if kind in FLOAT_KINDS:
        out = values.copy()
        out[mask] = np.nan
        return out
    return values


def frame_to_pandas(frame: Mapping[str, Any], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A pandas DataFrame of ``frame`` (all columns, or ``columns`` in that order), RangeIndex."""
    names = list(frame) if columns is None else list(columns)
    data = {n: _column_to_array(*frame[n]) for n in names}
    n = frame_len(frame)
    df = pd.DataFrame(data, index=pd.RangeIndex(n), copy=False) if data else pd.DataFrame(index=pd.RangeIndex(n))
    return df


# ---------------------------------------------------------------------------------------------
# pandas -> frame


def series_to_column(s: pd.Series, name: str, kind: str | None = None) -> tuple[str, Any, Any]:
    """``(kind, values, valid)`` for a pandas Series, converted to ``kind`` when given (an
    existing column's stored type); SchemaError when the values do not fit. Typed columns of
    their own kind pass as arrays; every other conversion is the native one (``cells_column``)."""
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        s = s.astype(object)
        dt = s.dtype
    if isinstance(dt, (pd.DatetimeTZDtype, pd.PeriodDtype, pd.IntervalDtype)) or (
        isinstance(dt, np.dtype) and dt.kind in "mMc"
    ):
        raise _refuse(name, f"a {dt} column")
    if isinstance(dt, pd.StringDtype) or (isinstance(dt, np.dtype) and dt.kind in "OUS"):
        own = "str" if isinstance(dt, pd.StringDtype) else None
        return _rb.cells_column(name, s.tolist(), kind or own)
    if isinstance(dt, _MaskedDtype):
        own = kind_of_dtype(dt, name)
        if (kind or own) != own:
            return _rb.cells_column(name, s.astype(object).tolist(), kind)
        mask = s.isna().to_numpy()
        na: Any = False if own == "bool" else (np.nan if own in FLOAT_KINDS else 0)
        data = s.to_numpy(dtype=np.dtype(own) if own != "bool" else np.bool_, na_value=na)
        return own, np.ascontiguousarray(data), (~mask if mask.any() else None)
    if isinstance(dt, np.dtype):
        own = kind_of_dtype(dt, name)
        arr = s.to_numpy()
        if arr.dtype == np.float16:
            arr = arr.astype(np.float32)
        target = kind or own
        if target == own:
            return target, np.ascontiguousarray(arr), None
        if target in FLOAT_KINDS and own in (INT_KINDS | FLOAT_KINDS):
            return target, arr.astype(target), None  # NaN stays a value in float columns
        # other conversions go cell by cell (range checks; NaN becomes null)
        return _rb.cells_column(name, arr.tolist(), target)
    raise SchemaError(f"column {name!r}: unsupported column type {dt}")


def _index_column(s: pd.Series, name: str) -> tuple[str, list[str], None]:
    vals = s.tolist()
    out = []
    for v in vals:
        if _is_null(v):
            raise SchemaError(f"index column {name!r} has a missing value")
        out.append(v if isinstance(v, str) else str(py_value(v)))
    return "str", out, None


def pandas_to_frame(
    df: pd.DataFrame,
    index_columns: Sequence[str] = (),
    kinds: Mapping[str, str] | None = None,
    *,
    skip: Iterable[str] = (),
) -> Frame:
    """A frame of ``df``: ``index_columns`` first (as text, no nulls allowed), then every other
    column (minus ``skip``) converted to ``kinds[name]`` when given."""
    kinds = kinds or {}
    skip = set(skip)
    if df.columns.has_duplicates:
        dups = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise SchemaError(f"duplicate column names: {dups}")
    frame: Frame = {}
    for name in index_columns:
        if name not in df.columns:
            raise SchemaError(f"the DataFrame must contain index column {name!r}")
        frame[name] = _index_column(df[name], name)
    for col in df.columns:
        name = str(col)
        if name in frame or name in skip:
            continue
        frame[name] = series_to_column(df[col], name, kinds.get(name))
    return frame


# ---------------------------------------------------------------------------------------------
# frame utilities


def frame_len(frame: Mapping[str, Any]) -> int:
    """Number of rows."""
    for _, values, _ in frame.values():
        return len(values)
    return 0


def frame_kinds(frame: Mapping[str, Any]) -> dict[str, str]:
    """``{column: kind}``."""
    return {n: c[0] for n, c in frame.items()}


def frame_column_values(frame: Mapping[str, Any], name: str) -> list[Any]:
    """Python values of one column (None for nulls)."""
    _kind, values, valid = frame[name]
    vals = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if valid is not None:
        ok = np.asarray(valid, dtype=bool)
        vals = [v if k else None for v, k in zip(vals, ok)]
    return vals


def frame_records(frame: Mapping[str, Any], rows: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Rows as dicts of Python values (None for nulls)."""
    names = list(frame)
    cols = [frame_column_values(frame, n) for n in names]
    idx = range(frame_len(frame)) if rows is None else rows
    return [{n: c[i] for n, c in zip(names, cols)} for i in idx]
