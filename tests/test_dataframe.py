"""Dataframe: typed columns with nulls, string columns, one filter grammar, full-row updates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radiobject import Dataframe, SchemaError
from radiobject._frames import frame_to_pandas, pandas_to_frame


def _people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "obs_subject_id": ["s2", "s1", "s3"],
            "age": [41, 35, 60],
            "weight": [70.5, np.nan, 80.0],
            "diagnosis": ["tumor", "healthy", None],
            "smoker": [True, False, True],
            "grade": pd.array([2, None, 3], dtype="Int64"),
            "treated": pd.array([True, None, False], dtype="boolean"),
            "score": pd.array([0.5, None, 1.5], dtype="Float64"),
            "site": pd.Categorical(["A", "B", "A"]),
            "note": pd.Series(["x", None, "z"], dtype="str"),
        }
    )


def test_round_trip_types_and_nulls(tmp_uri):
    df = Dataframe.from_pandas(tmp_uri("df"), _people(), index_columns=("obs_subject_id",))
    got = df.read()
    assert list(got.columns) == [
        "obs_subject_id",
        "age",
        "weight",
        "diagnosis",
        "smoker",
        "grade",
        "treated",
        "score",
        "site",
        "note",
    ]
    assert got["obs_subject_id"].tolist() == ["s1", "s2", "s3"]  # sorted by index
    assert got["age"].dtype == np.int64 and got["age"].tolist() == [35, 41, 60]
    assert got["weight"].dtype == np.float64 and np.isnan(got["weight"][0]) and got["weight"][1] == 70.5
    assert got["diagnosis"].dtype == object and got["diagnosis"].tolist() == ["healthy", "tumor", None]
    assert got["smoker"].dtype == bool
    assert str(got["grade"].dtype) == "Int64" and got["grade"].isna().tolist() == [True, False, False]
    assert str(got["treated"].dtype) == "boolean" and got["treated"].isna().tolist() == [True, False, False]
    assert got["score"].isna().tolist() == [True, False, False] and got["score"][2] == 1.5
    assert got["site"].tolist() == ["B", "A", "A"]
    assert got["note"].dtype == object and got["note"].tolist() == [None, "x", "z"]
    assert df.kinds["diagnosis"] == "str" and df.kinds["grade"] == "int64" and df.kinds["treated"] == "bool"


def test_shape_is_rows_by_columns(tmp_uri):
    # defect 6: the reference returned the largest index key as the row count
    df = Dataframe.from_pandas(tmp_uri("df"), _people(), index_columns=("obs_subject_id",))
    assert df.shape == (3, 9) and len(df) == 3
    assert df.index_columns == ("obs_subject_id",) and df.all_columns[0] == "obs_subject_id"
    empty = Dataframe.create(tmp_uri("empty"), {"age": np.int64, "name": str})
    assert empty.shape == (0, 2) and empty.index_columns == ("obs_subject_id", "obs_id")
    assert empty.dtypes == {"age": np.dtype("int64"), "name": np.dtype(object)}
    assert len(empty.read()) == 0 and list(empty.read().columns) == ["obs_subject_id", "obs_id", "age", "name"]


def test_read_columns_filter_and_index(tmp_uri):
    df = Dataframe.from_pandas(tmp_uri("df"), _people(), index_columns=("obs_subject_id",))
    assert list(df.read(columns=["age"]).columns) == ["obs_subject_id", "age"]
    assert list(df.read(columns=["age"], include_index=False).columns) == ["age"]
    # the pandas query grammar, on any column (not only the ones returned)
    hit = df.read(columns=["age"], value_filter="diagnosis == 'tumor' or age > 50")
    assert hit["obs_subject_id"].tolist() == ["s2", "s3"] and list(hit.columns) == ["obs_subject_id", "age"]
    assert df.read(value_filter="grade >= 3")["obs_subject_id"].tolist() == ["s3"]
    with pytest.raises(KeyError):
        df.read(columns=["nope"])
    with pytest.raises(KeyError):
        df.read(value_filter="nope > 1")


def test_non_ascii_ids_and_text(tmp_uri):
    frame = pd.DataFrame(
        {"obs_subject_id": ["Zoë", "Åsa"], "obs_id": ["Zoë_T1w", "Åsa_T1w"], "city": ["Zürich", "東京"]}
    )
    df = Dataframe.from_pandas(tmp_uri("df"), frame)
    got = df.read()
    assert sorted(got["obs_subject_id"]) == ["Zoë", "Åsa"] and set(got["city"]) == {"Zürich", "東京"}


def test_update_upserts_full_rows(tmp_uri):
    df = Dataframe.from_pandas(tmp_uri("df"), _people(), index_columns=("obs_subject_id",))
    # change one column of an existing row, add a new row: other columns of s1 keep their values
    df.update(pd.DataFrame({"obs_subject_id": ["s1", "s9"], "age": [36, 20]}))
    got = df.read().set_index("obs_subject_id")
    assert got.loc["s1", "age"] == 36 and got.loc["s1", "diagnosis"] == "healthy" and got.loc["s1", "smoker"] == False  # noqa: E712
    assert got.loc["s9", "age"] == 20 and got.loc["s9", "diagnosis"] is None and pd.isna(got.loc["s9", "grade"])
    assert len(got) == 4
    # values converted to the stored type: ints into a float column
    df.update(pd.DataFrame({"obs_subject_id": ["s2"], "weight": [71]}))
    assert df.read().set_index("obs_subject_id").loc["s2", "weight"] == 71.0
    with pytest.raises(SchemaError, match="add_column"):
        df.update(pd.DataFrame({"obs_subject_id": ["s1"], "unknown": [1]}))
    with pytest.raises(SchemaError):
        df.update(pd.DataFrame({"obs_subject_id": ["s1"], "age": ["old"]}))
    with pytest.raises(SchemaError):
        df.update(pd.DataFrame({"obs_subject_id": ["s1", "s1"], "age": [1, 2]}))


def test_update_narrow_int_column_range_checked(tmp_uri):
    df = Dataframe.create(tmp_uri("df"), {"n": np.int8}, index_columns=("obs_subject_id",))
    df.update(pd.DataFrame({"obs_subject_id": ["a"], "n": [5]}))
    assert df.read()["n"].tolist() == [5] and df.read()["n"].dtype == np.int8
    with pytest.raises(SchemaError, match="out of range"):
        df.update(pd.DataFrame({"obs_subject_id": ["a"], "n": [500]}))


def test_add_column_with_fill(tmp_uri):
    df = Dataframe.from_pandas(tmp_uri("df"), _people(), index_columns=("obs_subject_id",))
    df.add_column("site_id", np.int32, fill=7)
    df.add_column("comment", str)
    got = df.read()
    assert got["site_id"].tolist() == [7, 7, 7] and got["site_id"].dtype == np.int32
    assert got["comment"].tolist() == [None, None, None]
    assert got["age"].tolist() == [35, 41, 60]  # untouched
    with pytest.raises(SchemaError):
        df.add_column("age", np.int64)
    with pytest.raises(SchemaError):
        df.add_column("obs_subject_id", str)


def test_refused_columns(tmp_uri):
    base = {"obs_subject_id": ["a", "b"], "obs_id": ["a1", "b1"]}
    with pytest.raises(SchemaError, match="datetime"):
        Dataframe.from_pandas(tmp_uri("d1"), pd.DataFrame({**base, "t": pd.to_datetime(["2020-01-01", "2021-01-01"])}))
    with pytest.raises(SchemaError, match="mixes"):
        Dataframe.from_pandas(tmp_uri("d2"), pd.DataFrame({**base, "m": pd.Series(["x", 1], dtype=object)}))
    with pytest.raises(SchemaError, match="missing value"):
        Dataframe.from_pandas(tmp_uri("d3"), pd.DataFrame({"obs_subject_id": ["a", None], "obs_id": ["1", "2"]}))
    with pytest.raises(SchemaError, match="obs_id"):
        Dataframe.from_pandas(tmp_uri("d4"), pd.DataFrame({"obs_subject_id": ["a"]}))
    with pytest.raises(SchemaError):
        Dataframe.create(tmp_uri("d5"), {"obs_id": str})
    # datetimes stored explicitly as int64 ns work
    t = pd.to_datetime(["2020-01-01", "2021-01-01"])
    df = Dataframe.from_pandas(tmp_uri("d6"), pd.DataFrame({**base, "t_ns": t.as_unit("ns").astype("int64")}))
    assert pd.to_datetime(df.read()["t_ns"], unit="ns").tolist() == list(t)


def test_frame_helpers_object_columns():
    frame = pandas_to_frame(
        pd.DataFrame(
            {
                "k": ["a", "b", "c"],
                "ints": pd.Series([1, None, 3], dtype=object),
                "mixed_num": pd.Series([1, 2.5, None], dtype=object),
                "flags": pd.Series([True, None, False], dtype=object),
                "empty": pd.Series([None, None, None], dtype=object),
                "f16": np.array([1, 2, 3], dtype=np.float16),
            }
        ),
        ["k"],
    )
    assert frame["ints"][0] == "int64" and frame["ints"][2].tolist() == [True, False, True]
    assert frame["mixed_num"][0] == "float64" and frame["flags"][0] == "bool" and frame["empty"][0] == "str"
    assert frame["f16"][0] == "float32"
    back = frame_to_pandas(frame)
    assert str(back["ints"].dtype) == "Int64" and back["ints"].tolist()[0] == 1 and pd.isna(back["ints"][1])
    assert back["empty"].tolist() == [None, None, None]
