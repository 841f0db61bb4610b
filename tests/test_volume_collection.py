"""VolumeCollection: index order, views, the right volume for every obs_id whatever the write order,
obs read once, appends that keep user columns and leave nothing behind on errors, copies, map."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import radiobject as ro
from radiobject import AlignmentError, EagerQuery, TileDBStats, ViewError, Volume, VolumeCollection
from radiobject.writers import VolumeCollectionWriter

SHAPE = (6, 5, 4)
# written in this (unsorted) order; s1 has two volumes
ROWS = [
    ("s3_T1w", "s3", 3.0, "pass", 31.0, 60),
    ("s1_T1w_b", "s1", 11.0, "fail", 12.0, 40),
    ("s2_T1w", "s2", 2.0, "pass", 22.0, 50),
    ("s1_T1w_a", "s1", 10.0, "pass", 11.0, 40),
    ("s0_T1w", "s0", 0.0, "fail", 5.0, 30),
]
SORTED = ["s0_T1w", "s1_T1w_a", "s1_T1w_b", "s2_T1w", "s3_T1w"]
VALUE = {r[0]: r[2] for r in ROWS}


def vol(value: float, shape=SHAPE, dtype=np.float32) -> np.ndarray:
    base = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) % 5
    return (base + value * 100).astype(dtype)


def write_collection(uri: str, rows=ROWS, name: str | None = "T1w") -> VolumeCollection:
    with VolumeCollectionWriter(uri, shape=SHAPE, name=name) as w:
        for oid, sid, v, qc, snr, age in rows:
            w.write_volume(vol(v), oid, sid, qc=qc, snr=snr, age=age)
    return VolumeCollection(uri)


@pytest.fixture
def coll(tmp_uri) -> VolumeCollection:
    return write_collection(tmp_uri("T1w"))


def assert_right_volume(v: Volume, obs_id: str) -> None:
    assert v.obs_id == obs_id
    np.testing.assert_array_equal(v.to_numpy(), vol(VALUE[obs_id]))


# ---------------------------------------------------------------------------------------------
# reading


def test_basics_and_index_order(coll):
    assert len(coll) == 5 and coll.obs_ids == SORTED and coll.name == "T1w" and coll.shape == SHAPE
    assert coll.is_uniform and not coll.is_view and coll.uri.endswith("T1w")
    assert coll.obs_subject_ids == ["s0", "s1", "s1", "s2", "s3"]
    assert coll.index == ro.Index.build(SORTED, "obs_id") and coll.index.get_index("s2_T1w") == 3
    assert coll.subjects.keys == ("s0", "s1", "s2", "s3") and coll.subjects.name == "obs_subject_id"
    assert [v.obs_id for v in coll] == SORTED
    assert "s2_T1w" in coll and "nope" not in coll
    assert repr(coll) == "VolumeCollection('T1w', 5 volumes, shape=6x5x4)"
    obs = coll.obs
    assert list(obs.columns[:2]) == ["obs_subject_id", "obs_id"] and obs["obs_id"].tolist() == SORTED
    assert obs["qc"].tolist() == ["fail", "pass", "fail", "pass", "pass"] and obs["age"].dtype == np.int64
    obs.loc[0, "qc"] = "changed"  # a copy
    assert coll.obs["qc"][0] == "fail"
    row = coll.get_obs_row_by_obs_id("s2_T1w")
    assert len(row) == 1 and row["snr"][0] == 22.0
    with pytest.raises(KeyError):
        coll.get_obs_row_by_obs_id("nope")


def test_every_obs_id_gets_its_own_volume(coll):
    # defect 1: the reference served volumes/<sorted position>, i.e. wrong data for this write order
    for oid in SORTED:
        assert_right_volume(coll.loc[oid], oid)
        assert_right_volume(coll[oid], oid)
    for i, oid in enumerate(SORTED):
        assert_right_volume(coll.iloc[i], oid)
    assert coll._snap.native.is_in_sorted_layout()  # and the files sit where the reference looks


def test_getitem_iloc_loc(coll):
    assert coll[0].obs_id == "s0_T1w" and coll[-1].obs_id == "s3_T1w"
    assert coll[1:3].obs_ids == SORTED[1:3] and coll[[4, 0]].obs_ids == [SORTED[0], SORTED[4]]
    assert coll[["s3_T1w", "s0_T1w"]].obs_ids == ["s0_T1w", "s3_T1w"] and len(coll[[]]) == 0
    assert coll.iloc[np.array([True, False, True, False, False])].obs_ids == [SORTED[0], SORTED[2]]
    assert coll.iloc[[True, False, False, False, True]].obs_ids == [SORTED[0], SORTED[4]]
    assert coll.iloc[::2].obs_ids == SORTED[::2] and coll.iloc[np.int64(2)].obs_id == SORTED[2]
    with pytest.raises(IndexError):
        coll.iloc[5]
    with pytest.raises(IndexError):
        coll.iloc[[True, False]]
    with pytest.raises(TypeError):
        coll.iloc["s0_T1w"]
    with pytest.raises(TypeError):
        coll[1.5]
    with pytest.raises(KeyError):
        coll.loc["nope"]
    with pytest.raises(KeyError):
        coll.loc[["s0_T1w", "nope"]]
    view = coll.iloc[1:3]
    assert view.is_view and view.uri == coll.uri and view.name == "T1w"
    assert view.loc["s1_T1w_b"].obs_id == "s1_T1w_b"
    with pytest.raises(KeyError):
        view.loc["s0_T1w"]  # exists, but not in the view
    assert view.iloc[-1].obs_id == "s1_T1w_b" and view[0].obs_id == "s1_T1w_a"
    assert view.iloc[[1]].obs_ids == ["s1_T1w_b"]  # positions are the view's


def test_sel(coll):
    assert isinstance(coll.sel(subject="s2"), Volume) and coll.sel(subject="s2").obs_id == "s2_T1w"
    two = coll.sel(subject="s1")
    assert isinstance(two, VolumeCollection) and two.obs_ids == ["s1_T1w_a", "s1_T1w_b"]
    assert coll.sel(subject=["s3", "s0"]).obs_ids == ["s0_T1w", "s3_T1w"]
    assert isinstance(coll.sel(subject=["s2"]), VolumeCollection)
    with pytest.raises(KeyError):
        coll.sel(subject="nope")
    with pytest.raises(KeyError):
        coll.head(1).sel(subject="s3")


def test_views_filter_head_tail_sample_groupby(coll):
    passed = coll.filter("qc == 'pass'")
    assert passed.obs_ids == ["s1_T1w_a", "s2_T1w", "s3_T1w"] and passed.obs["qc"].unique().tolist() == ["pass"]
    assert passed.filter("age >= 50").obs_ids == ["s2_T1w", "s3_T1w"]  # views of views
    assert passed.filter("snr > 100").obs_ids == [] and len(passed.filter("snr > 100").obs) == 0
    assert (
        coll.head(2).obs_ids == SORTED[:2] and coll.tail(2).obs_ids == SORTED[-2:] and coll.head(99).obs_ids == SORTED
    )
    assert passed.head(1).obs_ids == ["s1_T1w_a"] and passed.tail(1).obs_ids == ["s3_T1w"]
    a, b = coll.sample(3, seed=7), coll.sample(3, seed=7)
    assert a.obs_ids == b.obs_ids and len(a) == 3 and set(a.obs_ids) <= set(SORTED)
    groups = dict(coll.groupby_subject())
    assert list(groups) == ["s0", "s1", "s2", "s3"] and groups["s1"].obs_ids == ["s1_T1w_a", "s1_T1w_b"]
    assert [s for s, _ in passed.groupby_subject()] == ["s1", "s2", "s3"]
    view = coll.iloc[[1, 3]]
    assert view.obs["obs_id"].tolist() == ["s1_T1w_a", "s2_T1w"] and view.obs.index.tolist() == [0, 1]
    assert view.to_obs().equals(view.obs) and view.subjects.keys == ("s1", "s2")
    assert view.obs_subject_ids == ["s1", "s2"] and view.index.keys == ("s1_T1w_a", "s2_T1w")
    with pytest.raises(KeyError):
        coll.filter("nope > 3")
    assert coll.copy().obs_ids == SORTED and view.copy().obs_ids == view.obs_ids and view.copy().is_view


def test_views_are_read_only(coll):
    view = coll.head(2)
    with pytest.raises(ViewError):
        view.append([(vol(1), "x", "x")])
    with pytest.raises(ViewError):
        view.validate()
    with pytest.raises(ViewError):
        view.obs_dataframe


def test_obs_is_read_once(coll):
    # defect 13: the reference re-read obs for obs_subject_ids, to_obs, sel, map... every time
    fresh = VolumeCollection(coll.uri)
    with TileDBStats() as st:
        fresh.obs, fresh.obs_ids, fresh.obs_subject_ids, fresh.index, fresh.subjects
        fresh.filter("qc == 'pass'").obs
        fresh.sel(subject="s1").obs_ids
        fresh.get_obs_row_by_obs_id("s0_T1w")
        dict(fresh.groupby_subject())
        fresh.iloc[1:4].filter("age > 40").obs
    assert st.s3_stats().read_ops == 0


def test_iloc_costs_the_same_whatever_the_size(tmp_uri):
    costs = {}
    for n in (6, 90):
        uri = tmp_uri(f"c{n}")
        with VolumeCollectionWriter(uri) as w:
            for i in range(n):
                w.write_volume(np.full((3, 3, 2), i % 250, np.uint8), f"s{i:03d}_x", f"s{i:03d}", k=i)
        vc = VolumeCollection(uri)
        with TileDBStats() as st:
            v = vc.iloc[n // 2]
            assert v.to_numpy()[0, 0, 0] == (n // 2) % 250
        costs[n] = st.s3_stats().read_ops
        with TileDBStats() as st:
            vc.iloc[n // 2].to_numpy()
        assert st.s3_stats().read_ops <= 2  # the volume handle is cached
    assert 0 < costs[90] <= costs[6] + 2


def test_heterogeneous_shapes(tmp_uri):
    uri = tmp_uri("h")
    with VolumeCollectionWriter(uri) as w:
        w.write_volume(vol(1, (4, 4, 2)), "a_x", "a")
        w.write_volume(vol(2, (5, 4, 2)), "b_x", "b")
        w.write_volume(vol(3, (5, 4, 2, 3)), "c_x", "c")
    vc = VolumeCollection(uri)
    assert vc.shape is None and not vc.is_uniform and "heterogeneous" in repr(vc)
    assert [v.shape for v in vc] == [(4, 4, 2), (5, 4, 2), (5, 4, 2, 3)]
    out = vc.iloc[1:].write(tmp_uri("h2"))  # these two share their spatial shape
    assert out.shape == (5, 4, 2) and [v.shape for v in out] == [(5, 4, 2), (5, 4, 2, 3)]
    assert vc.write(tmp_uri("h3")).shape is None


# ---------------------------------------------------------------------------------------------
# changes


def test_append_keeps_user_columns_and_the_mapping(coll):
    # defect 3: the reference's append crashed (KeyError 'qc') when obs had non-imaging columns;
    # defect 1: appending a subject that sorts first made every loc/iloc wrong
    coll.append([(vol(7), "a0_T1w", "a0", {"qc": "pass", "batch": 2}), (vol(8), "s9_T1w", "s9")])
    VALUE.update({"a0_T1w": 7.0, "s9_T1w": 8.0})
    try:
        assert coll.obs_ids == ["a0_T1w", *SORTED, "s9_T1w"] and len(coll) == 7
        obs = coll.obs.set_index("obs_id")
        assert obs.loc["s3_T1w", "qc"] == "pass" and obs.loc["s3_T1w", "snr"] == 31.0 and obs.loc["s3_T1w", "age"] == 60
        assert (
            obs.loc["a0_T1w", "batch"] == 2
            and pd.isna(obs.loc["s3_T1w", "batch"])
            and pd.isna(obs.loc["s9_T1w", "age"])
        )
        for oid in coll.obs_ids:
            assert_right_volume(coll.loc[oid], oid)
        again = VolumeCollection(coll.uri)
        assert again.obs_ids == coll.obs_ids and again._snap.native.is_in_sorted_layout()
        again.validate()
        assert again.metadata["n_volumes"] == 7
    finally:
        del VALUE["a0_T1w"], VALUE["s9_T1w"]


def test_append_is_all_or_nothing(coll):
    before = {str(p.relative_to(coll.uri)) for p in Path(coll.uri).rglob("*") if "__" not in p.name}
    with pytest.raises(ro.ShapeError):
        coll.append([(vol(7), "a0_T1w", "a0"), (vol(8, (2, 2, 2)), "s9_T1w", "s9")])
    with pytest.raises(AlignmentError):
        coll.append([(vol(7), "s2_T1w", "s2")])
    with pytest.raises(AlignmentError):
        coll.append([(vol(7), "n_T1w", "n"), (vol(7), "n_T1w", "n")])
    after = {str(p.relative_to(coll.uri)) for p in Path(coll.uri).rglob("*") if "__" not in p.name}
    assert after == before  # no orphan volume directories
    again = VolumeCollection(coll.uri)
    assert again.obs_ids == SORTED and sorted(again._snap.native.members) == ["0", "1", "2", "3", "4"]
    again.validate()


def test_validate_finds_a_volume_with_the_wrong_obs_id(coll):
    coll.validate()
    Volume(f"{coll.uri}/volumes/2").set_obs_id("someone_else")
    with pytest.raises(AlignmentError):
        VolumeCollection(coll.uri).validate()


def test_write_copies_a_view_keeping_obs_ids_and_metadata(coll, tmp_uri):
    Volume(f"{coll.uri}/volumes/0").set_metadata({"orientation_axcodes": "RAS"})
    fresh = VolumeCollection(coll.uri)
    out = fresh.filter("age <= 40").write(tmp_uri("copy"))
    assert not out.is_view and out.name == "T1w" and out.obs_ids == ["s0_T1w", "s1_T1w_a", "s1_T1w_b"]
    assert out.obs.drop(columns=[]).equals(fresh.filter("age <= 40").obs)
    for oid in out.obs_ids:
        assert_right_volume(out.loc[oid], oid)
    assert out.loc["s0_T1w"].metadata["orientation_axcodes"] == "RAS"
    out.validate()


def test_write_renames_without_collisions(coll, tmp_uri):
    # defect 11: the reference renamed both of s1's volumes to "s1_T2w"
    out = coll.write(tmp_uri("t2"), name="T2w")
    assert out.name == "T2w"
    assert out.obs_ids == ["s0_T2w", "s1_T2w_acq-1", "s1_T2w_acq-2", "s2_T2w", "s3_T2w"]
    np.testing.assert_array_equal(out.loc["s1_T2w_acq-2"].to_numpy(), vol(VALUE["s1_T1w_b"]))
    kept = coll.write(tmp_uri("t2b"), name="T2w", rename_obs_ids=False)
    assert kept.obs_ids == SORTED and kept.name == "T2w"
    with pytest.raises(ro.AlreadyExistsError):
        coll.write(tmp_uri("t2"))


def test_map_runs_in_parallel_and_chains(coll, tmp_uri):
    barrier = threading.Barrier(2, timeout=20)
    threads = set()

    def fn(data, row):
        threads.add(threading.get_ident())
        if row["obs_id"] in ("s0_T1w", "s1_T1w_a"):
            barrier.wait()  # only passes if two volumes are processed at the same time
        assert data[0, 0, 0] == VALUE[row["obs_id"]] * 100  # the row belongs to the volume
        return data * 2, {"mean": float(data.mean()), "flag": row["qc"] == "pass"}

    q = coll.map(fn, max_workers=2)
    assert isinstance(q, EagerQuery) and len(q) == 5 and len(threads) >= 2
    res, row = q[1]
    assert row["obs_id"] == "s1_T1w_a" and row["flag"] == True and res[0, 0, 0] == 2000  # noqa: E712
    assert q[-1][1]["obs_id"] == "s3_T1w"
    q2 = q.map(lambda r, row: (r + 1, {"seen_flag": bool(row["flag"])}))
    assert [r[0, 0, 0] for r, _ in q2.to_list()] == [1, 2001, 2201, 401, 601]
    assert [row["obs_id"] for _, row in q2] == SORTED
    df = q2.to_dataframe()
    assert list(df.columns) == ["obs_id", "obs_subject_id", "mean", "flag", "seen_flag", "result"]
    assert df["result"][0] == "6x5x4 float32" and df["obs_id"].tolist() == SORTED
    assert "EagerQuery(5 results)" == repr(q2) and "<table" in q2._repr_html_()
    out = q2.write(tmp_uri("mapped"))
    assert out.obs_ids == SORTED and out.name == "T1w"
    obs = out.obs.set_index("obs_id")
    assert obs.loc["s2_T1w", "seen_flag"] == True and obs.loc["s0_T1w", "flag"] == False  # noqa: E712
    assert obs.loc["s2_T1w", "qc"] == "pass" and obs.loc["s2_T1w", "mean"] == pytest.approx(vol(2).mean())
    np.testing.assert_array_equal(out.loc["s2_T1w"].to_numpy(), vol(2) * 2 + 1)
    renamed = q.write(tmp_uri("mapped2"), name="T1w_x2")
    assert renamed.obs_ids[1:3] == ["s1_T1w_x2_acq-1", "s1_T1w_x2_acq-2"]
    scalars = coll.head(2).map(lambda d, r: float(d.max()))
    with pytest.raises(ro.InvalidArgumentError):
        scalars.write(tmp_uri("nope"))


def test_map_batches(coll):
    q = coll.map_batches(lambda batch: [float(a.sum()) for a, row in batch], batch_size=2)
    assert len(q) == 5 and [r for r, _ in q][3] == pytest.approx(float(vol(2).sum()))


# ---------------------------------------------------------------------------------------------
# interop with the PyPI reference

PEER_WRITE_UNSORTED = """
import numpy as np
from radiobject.streaming import StreamingWriter
with StreamingWriter(args["uri"], shape=(6, 5, 4), name="T1w", obs_schema={"site": np.dtype("U8")}) as w:
    for sid, value in args["rows"]:
        data = (np.arange(120, dtype=np.float64).reshape(6, 5, 4) % 5 + value * 100).astype(np.float32)
        w.write_volume(data, f"{sid}_T1w", sid, site="X" + sid)
result = {"ok": True}
"""


@pytest.mark.slow
def test_collections_the_reference_writes_out_of_order_read_right(tmp_uri, peer):
    uri = tmp_uri("peer")
    rows = [("b", 2.0), ("a", 1.0), ("c", 3.0)]
    peer(PEER_WRITE_UNSORTED, uri=uri, rows=rows)
    vc = VolumeCollection(uri)
    assert vc.obs_ids == ["a_T1w", "b_T1w", "c_T1w"] and not vc._snap.native.is_in_sorted_layout()
    for sid, value in rows:
        v = vc.loc[f"{sid}_T1w"]
        assert v.obs_id == f"{sid}_T1w" and v.to_numpy()[0, 0, 0] == value * 100
    assert vc.iloc[0].to_numpy()[0, 0, 0] == 100 and vc.obs["site"].tolist() == ["Xa", "Xb", "Xc"]
    vc.validate()
    # a copy of it is laid out in sorted order, so the reference reads the copy right as well
    out = vc.write(tmp_uri("fixed"))
    assert out._snap.native.is_in_sorted_layout()


PEER_READ_COLLECTION = """
from radiobject import VolumeCollection
vc = VolumeCollection(args["uri"])
result = {"obs_ids": vc.obs_ids, "n": len(vc), "shape": list(vc.shape),
          "first": {i: float(vc.loc[i].to_numpy()[0, 0, 0]) for i in vc.obs_ids},
          "qc": vc.obs.read()["qc"].tolist()}
vc.validate()
"""


@pytest.mark.slow
def test_the_reference_reads_our_collections_after_an_append(coll, peer):
    coll.append([(vol(7), "a0_T1w", "a0", {"qc": "pass"})])
    got = peer(PEER_READ_COLLECTION, uri=coll.uri)
    assert got["obs_ids"] == coll.obs_ids and got["n"] == 6 and got["shape"] == list(SHAPE)
    assert got["first"]["a0_T1w"] == 700 and got["first"]["s3_T1w"] == 300 and got["first"]["s1_T1w_b"] == 1100
    assert got["qc"] == coll.obs["qc"].tolist()


PEER_FROM_NIFTIS = """
from radiobject import VolumeCollection
VolumeCollection.from_niftis(args["uri"], niftis=[tuple(x) for x in args["niftis"]], name="CT")
result = {"ok": True}
"""


@pytest.mark.slow
def test_reference_nifti_collections_read_right(tmp_uri, tmp_path, peer):
    import nibabel as nib

    niftis = []
    for sid, value in [("sub-b", 2), ("sub-a", 1), ("sub-c", 3)]:
        path = tmp_path / f"{sid}.nii.gz"
        nib.save(nib.Nifti1Image(np.full((5, 4, 3), value, np.int16), np.eye(4)), str(path))
        niftis.append((str(path), sid))
    uri = tmp_uri("ct")
    peer(PEER_FROM_NIFTIS, uri=uri, niftis=niftis)
    vc = VolumeCollection(uri)  # PyPI names them {subject}_{series type}
    assert vc.obs_subject_ids == ["sub-a", "sub-b", "sub-c"] and vc.name == "CT"
    assert not vc._snap.native.is_in_sorted_layout()  # written b, a, c
    for i, v in enumerate(vc, start=1):
        assert np.unique(v.to_numpy()).tolist() == [i]
    assert np.unique(vc.sel(subject="sub-b").to_numpy()).tolist() == [2]
    obs = vc.obs
    assert obs["source_path"].str.endswith(".nii.gz").all() and obs["datatype"].dtype == np.int32


def test_pickles_as_a_recipe(coll):
    import pickle

    again = pickle.loads(pickle.dumps(coll))
    assert again.obs_ids == SORTED and not again.is_view
    view = pickle.loads(pickle.dumps(coll.filter("qc == 'pass'")))
    assert view.is_view and view.obs_ids == ["s1_T1w_a", "s2_T1w", "s3_T1w"]
    assert_right_volume(view.iloc[1], "s2_T1w")


@pytest.mark.slow
@pytest.mark.s3
def test_collection_on_s3(s3_uri, s3_ctx):
    uri = s3_uri("T1w")
    with VolumeCollectionWriter(uri, shape=SHAPE, name="T1w", ctx=s3_ctx) as w:
        for oid, sid, v, qc, _snr, _age in ROWS:
            w.write_volume(vol(v), oid, sid, qc=qc)
    vc = VolumeCollection(uri, ctx=s3_ctx)
    assert vc.obs_ids == SORTED
    for oid in SORTED:
        assert_right_volume(vc.loc[oid], oid)
    out = vc.filter("qc == 'pass'").write(s3_uri("copy"))
    assert out.obs_ids == ["s1_T1w_a", "s2_T1w", "s3_T1w"] and out.uri.startswith("s3://")
    out.validate()


def test_missing_collection(tmp_uri):
    with pytest.raises(ro.NotFoundError):
        VolumeCollection(tmp_uri("nothing"))
    assert not os.path.exists(tmp_uri("nothing"))
