"""Writers: one group write per collection, all-or-nothing on errors, obs_ids filled, obs_id
uniqueness across collections, and datasets the PyPI reference reads back."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import radiobject as ro
from radiobject import AlignmentError, RadiObject, SchemaError, ShapeError, StorageError, VolumeCollection
from radiobject import _radiobject as _rb
from radiobject.writers import RadiObjectWriter, VolumeCollectionWriter


def _vol(value: float, shape=(6, 5, 4), dtype=np.float32) -> np.ndarray:
    return np.full(shape, value, dtype=dtype) + np.arange(np.prod(shape), dtype=dtype).reshape(shape) % 3


def _group_writes(path: str) -> int:
    return len(os.listdir(os.path.join(path, "__group")))


def _listing(root: str) -> set[str]:
    return {str(p.relative_to(root)) for p in Path(root).rglob("*")} if os.path.exists(root) else set()


def test_collection_writer_round_trip_in_any_write_order(tmp_uri):
    uri = tmp_uri("coll")
    order = ["s3", "s1", "s2"]
    with VolumeCollectionWriter(uri, shape=(6, 5, 4), obs_schema={"qc": str, "snr": np.float32}, name="T1w") as w:
        for i, sid in enumerate(order):
            w.write_volume(_vol(i), obs_id=f"{sid}_T1w", obs_subject_id=sid, qc="pass", snr=float(i))
        assert w.n_written == 3
    vc = w.collection
    assert isinstance(vc, VolumeCollection) and vc.name == "T1w" and vc.shape == (6, 5, 4)
    assert vc.obs_ids == ["s1_T1w", "s2_T1w", "s3_T1w"]
    for i, sid in enumerate(order):
        np.testing.assert_array_equal(vc.loc[f"{sid}_T1w"].to_numpy(), _vol(i))
    obs = vc.obs.set_index("obs_id")
    assert obs.loc["s3_T1w", "snr"] == 0.0 and obs.loc["s1_T1w", "qc"] == "pass"
    assert vc._snap.native.is_in_sorted_layout()  # the reference reads it right too
    vc.validate()


def test_one_group_write_for_all_volumes(tmp_uri):
    # the reference wrote the volumes group once per volume (O(N^2) reads over the writes)
    uri = tmp_uri("coll")
    with VolumeCollectionWriter(uri) as w:
        for i in range(40):
            w.write_volume(np.full((2, 2, 2), i, np.uint8), f"s{i:02d}_x", f"s{i:02d}")
    assert _group_writes(f"{uri}/volumes") == 1
    assert len(VolumeCollection(uri)) == 40


def test_shape_dtype_and_misuse_checks(tmp_uri):
    w = VolumeCollectionWriter(tmp_uri("c"), shape=(6, 5, 4))
    with pytest.raises(StorageError, match="context manager"):
        w.write_volume(_vol(0), "a", "a")
    with w:
        w.write_volume(np.zeros((6, 5, 4, 3), np.int16), "a_4d", "a")  # 4D: first three axes checked
        with pytest.raises(ShapeError):
            w.write_volume(_vol(0, (6, 5, 3)), "b", "b")
        with pytest.raises(ShapeError):
            w.write_volume(np.zeros((6, 5)), "c", "c")
        with pytest.raises(ro.DtypeError):
            w.write_volume(np.zeros((6, 5, 4), np.complex64), "d", "d")
        with pytest.raises(AlignmentError):
            w.write_volume(_vol(0), "a_4d", "a")
    with pytest.raises(StorageError):
        w.write_volume(_vol(0), "e", "e")
    with pytest.raises(StorageError):
        w.__enter__()
    assert VolumeCollection(w.uri).obs_ids == ["a_4d"]


def test_an_error_removes_everything_written(tmp_uri, tmp_path):
    uri = tmp_uri("coll")
    with pytest.raises(RuntimeError, match="boom"):
        with VolumeCollectionWriter(uri) as w:
            w.write_volume(_vol(1), "a_T1w", "a")
            w.write_volume(_vol(2), "b_T1w", "b")
            raise RuntimeError("boom")
    assert not os.path.exists(uri)
    assert ro.uri_exists(uri) is False


def test_refuses_a_non_empty_directory(tmp_uri):
    uri = tmp_uri("taken")
    os.makedirs(uri)
    Path(uri, "keep.txt").write_text("mine")
    with pytest.raises(ro.AlreadyExistsError):
        with VolumeCollectionWriter(uri) as w:
            w.write_volume(_vol(0), "a", "a")
    with pytest.raises(ro.AlreadyExistsError):
        with RadiObjectWriter(uri):
            pass
    assert Path(uri, "keep.txt").read_text() == "mine"


def test_narrow_obs_columns_are_widened_for_new_collections(tmp_uri):
    uri = tmp_uri("c")
    with VolumeCollectionWriter(uri, obs_schema={"x": np.float32, "k": np.int16, "flag": bool}) as w:
        w.write_volume(_vol(0), "a", "a", x=1.5, k=3, flag=True)
        w.write_volume(_vol(0), "b", "b", x=None, k=None, flag=None)
    obs = VolumeCollection(uri).obs
    assert obs["x"].tolist()[0] == 1.5 and pd.isna(obs["x"][1]) and obs["k"].tolist()[0] == 3
    assert obs["flag"].tolist()[0] is True


def _dataset(uri: str, *, meta: bool = True) -> RadiObject:
    with RadiObjectWriter(uri, obs_meta_schema={"age": np.int64, "diagnosis": str}) as w:
        if meta:
            w.write_obs_meta(
                pd.DataFrame({"obs_subject_id": ["s2", "s1", "s3"], "age": [50, 40, 60], "diagnosis": ["a", "b", "a"]})
            )
        with w.add_collection("T1w", shape=(6, 5, 4)) as t1:
            for i, sid in enumerate(["s2", "s3", "s1"]):
                t1.write_volume(_vol(i), f"{sid}_T1w", sid, qc="ok")
        with w.add_collection("seg") as seg:
            for i, sid in enumerate(["s1", "s2"]):
                seg.write_volume(_vol(10 + i, dtype=np.uint8), f"{sid}_seg", sid)
        assert w.collection_names == ["T1w", "seg"]
    return w.finalize()


def test_radi_object_writer_fills_obs_ids_and_validates(tmp_uri):
    radi = _dataset(tmp_uri("ds"))
    assert len(radi) == 3 and set(radi.collection_names) == {"T1w", "seg"}
    meta = radi.obs_meta.set_index("obs_subject_id")
    # defect 5 (writer half): the reference wrote "[]" and its own validate() failed
    assert meta.loc["s1", "obs_ids"] == '["s1_T1w", "s1_seg"]' and meta.loc["s3", "obs_ids"] == '["s3_T1w"]'
    assert meta.loc["s2", "age"] == 50
    radi.validate()
    assert radi.metadata == {"subject_count": 3, "n_collections": 2}
    # one group write for the collections group per collection, one for each volumes group
    assert _group_writes(f"{radi.uri}/collections/T1w/volumes") == 1


def test_radi_object_writer_without_obs_meta_makes_bare_rows(tmp_uri):
    radi = _dataset(tmp_uri("ds"), meta=False)
    assert radi.obs_subject_ids == ["s1", "s2", "s3"]
    radi.validate()


def test_obs_id_unique_across_collections(tmp_uri):
    uri = tmp_uri("ds")
    with RadiObjectWriter(uri) as w:
        with w.add_collection("T1w") as t1:
            t1.write_volume(_vol(0), "s1_scan", "s1")
        with pytest.raises(AlignmentError, match="unique"):
            with w.add_collection("FLAIR") as fl:
                fl.write_volume(_vol(1), "s1_flair", "s1")
                fl.write_volume(_vol(2), "s1_scan", "s1")
        # the failed collection left nothing behind; its obs_ids are free again
        assert not os.path.exists(f"{uri}/collections/FLAIR")
        with w.add_collection("FLAIR") as fl:
            fl.write_volume(_vol(1), "s1_flair", "s1")
        with pytest.raises(ro.AlreadyExistsError):
            w.add_collection("T1w")
    radi = w.finalize()
    assert set(radi.collection_names) == {"T1w", "FLAIR"} and radi.all_obs_ids.count("s1_flair") == 1
    radi.validate()


def test_an_error_in_the_dataset_block_removes_the_dataset(tmp_uri):
    uri = tmp_uri("ds")
    with pytest.raises(RuntimeError):
        with RadiObjectWriter(uri) as w:
            with w.add_collection("T1w") as t1:
                t1.write_volume(_vol(0), "s1_T1w", "s1")
            raise RuntimeError("boom")
    assert not os.path.exists(uri)


def test_missing_obs_meta_row_is_an_alignment_error(tmp_uri):
    uri = tmp_uri("ds")
    with pytest.raises(AlignmentError, match="s2"):
        with RadiObjectWriter(uri) as w:
            w.write_obs_meta(pd.DataFrame({"obs_subject_id": ["s1"]}))
            with w.add_collection("T1w") as t1:
                t1.write_volume(_vol(0), "s1_T1w", "s1")
                t1.write_volume(_vol(0), "s2_T1w", "s2")
    assert not os.path.exists(uri)


PEER_READ_DATASET = """
import numpy as np
from radiobject import RadiObject
r = RadiObject(args["uri"])
out = {"len": len(r), "collections": sorted(r.collection_names), "subjects": r.obs_subject_ids,
       "meta": r.obs_meta.read().drop(columns=["obs_id"], errors="ignore").to_dict("list"), "colls": {}}
for name in r.collection_names:
    vc = r.collection(name)
    obs = vc.obs.read()
    out["colls"][name] = {"len": len(vc), "shape": list(vc.shape) if vc.shape else None, "obs_ids": vc.obs_ids,
                          "obs": obs.to_dict("list"),
                          "sums": {i: float(vc.loc[i].to_numpy().astype("float64").sum()) for i in vc.obs_ids},
                          "first": float(vc.iloc[0].to_numpy().astype("float64").sum())}
r.validate()
out["valid"] = True
result = out
"""


@pytest.mark.slow
def test_the_reference_reads_what_the_writers_write(tmp_uri, peer):
    radi = _dataset(tmp_uri("ds"))
    got = peer(PEER_READ_DATASET, uri=radi.uri)
    assert got["valid"] and got["len"] == 3 and got["collections"] == ["T1w", "seg"]
    assert got["subjects"] == ["s1", "s2", "s3"]
    assert got["meta"]["age"] == [40, 50, 60] and got["meta"]["obs_ids"] == list(radi.obs_meta["obs_ids"])
    for name in ("T1w", "seg"):
        vc = radi.collection(name)
        g = got["colls"][name]
        assert g["len"] == len(vc) and g["obs_ids"] == vc.obs_ids
        assert g["shape"] == (list(vc.shape) if vc.shape else None)
        for oid in vc.obs_ids:
            assert g["sums"][oid] == pytest.approx(float(vc.loc[oid].to_numpy().astype(np.float64).sum()))
        assert g["first"] == pytest.approx(float(vc.iloc[0].to_numpy().astype(np.float64).sum()))
    assert got["colls"]["T1w"]["obs"]["qc"] == ["ok", "ok", "ok"]


# ---------------------------------------------------------------------------------------------
# Native writer edge cases


def test_native_writer_fills_narrow_obs_columns(tmp_uri):
    ctx = ro.get_tiledb_ctx()
    schema = {"x": "float32", "n": "int8", "u": "uint16", "b": "bool"}
    w = _rb.NativeCollectionWriter.create(tmp_uri("c"), ctx, obs_schema=schema)
    w.write_volume(_vol(0), "a", "a", {"x": 1.5, "n": -3, "u": 3.0, "b": True}, None)
    with pytest.raises(ro.SchemaError, match="does not fit int8"):
        w.write_volume(_vol(1), "b", "b", {"n": 300}, None)
    with pytest.raises(ro.SchemaError, match="not an integer"):
        w.write_volume(_vol(1), "b", "b", {"u": 2.5}, None)
    obs = w.finish().obs()
    assert obs["x"][0] == "float32" and obs["x"][1].tolist() == [1.5]
    assert obs["n"][1].tolist() == [-3] and obs["u"][1].tolist() == [3] and obs["b"][1].tolist() == [True]


@pytest.mark.parametrize("which", ["dataset", "collection"])
def test_native_writers_refuse_foreign_directories_and_keep_them(tmp_uri, which):
    uri = tmp_uri(which)
    os.makedirs(uri)
    Path(uri, "keep.txt").write_text("mine")
    with pytest.raises(ro.AlreadyExistsError):
        if which == "dataset":
            _rb.NativeDatasetWriter.create(uri, ro.get_tiledb_ctx())
        else:
            _rb.NativeCollectionWriter.create(uri, ro.get_tiledb_ctx())
    assert Path(uri, "keep.txt").read_text() == "mine"
    empty = tmp_uri(which + "-empty")
    os.makedirs(empty)  # an empty directory is fine to build in
    w = (
        _rb.NativeDatasetWriter.create(empty, ro.get_tiledb_ctx())
        if which == "dataset"
        else _rb.NativeCollectionWriter.create(empty, ro.get_tiledb_ctx())
    )
    w.abort()


@pytest.mark.parametrize("order", ["C", "F"])
def test_deep_verify_checks_voxels_in_the_order_they_were_written(tmp_uri, order):
    """The stored checksum hashes the bytes in the order they were given (C or Fortran); a deep
    verify re-reads each volume in that order and notices a changed voxel."""
    from radiobject.verify import verify

    uri = tmp_uri("ds")
    rng = np.random.default_rng(7)
    data = {s: np.asarray(rng.normal(size=(9, 7, 5)).astype(np.float32), order=order) for s in ("a", "b")}
    with RadiObjectWriter(uri) as w:
        with w.add_collection("T1w") as c:
            for s, a in data.items():
                c.write_volume(a, f"{s}_T1w", s)
    radi = RadiObject(uri)
    assert radi.T1w.loc["a_T1w"].metadata["voxel_checksum"].startswith(f"xxh3-128:{order}:")
    assert verify(uri, deep=True).ok
    vol = radi.T1w.loc["b_T1w"]
    vol[3:4, 2:3, 1:2] = np.full((1, 1, 1), 1e6, np.float32)
    report = verify(uri, deep=True)
    assert not report.ok and any("voxels changed" in p.message for p in report.problems)


def test_obs_values_are_typed_by_the_native_writer_from_numpy_and_pandas_scalars(tmp_uri):
    """The writer hands attrs to the native writer as given: NumPy scalars count as their Python
    kind, None/NaN/pd.NA/pd.NaT are nulls, a column takes the type of its first value."""
    uri = tmp_uri("c")
    with VolumeCollectionWriter(uri, obs_schema={"snr": np.float32}) as w:
        w.write_volume(_vol(0), "a", "a", snr=np.int16(3), grade=pd.NA, ok=np.bool_(True), n=np.int64(7))
        w.write_volume(_vol(1), "b", "b", snr=np.float32(1.5), grade=np.str_("II"), ok=None, n=float("nan"))
        w.write_volume(_vol(2), "c", "c", snr=float("nan"), grade=None, ok=False, n=pd.NaT)
        with pytest.raises(SchemaError, match="Timestamp"):
            w.write_volume(_vol(3), "d", "d", when=pd.Timestamp("2024-01-01"))
        with pytest.raises(SchemaError, match=r'"n".*text'):
            w.write_volume(_vol(3), "d", "d", n="seven")
    obs = w.collection.obs.set_index("obs_id")
    assert obs["snr"].dtype == np.float32 and obs.loc["a", "snr"] == 3.0 and np.isnan(obs.loc["c", "snr"])
    assert obs["grade"].tolist() == [None, "II", None]
    assert obs["ok"].tolist() == [True, pd.NA, False] and str(obs["ok"].dtype) == "boolean"
    assert obs["n"].tolist() == [7, pd.NA, pd.NA] and str(obs["n"].dtype) == "Int64"
