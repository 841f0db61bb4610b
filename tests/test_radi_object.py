"""RadiObject: views that filter everything, one filter grammar, appends and collections that keep
user columns and obs_ids right, renames that keep working, validation, and reference interop."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import radiobject as ro
from radiobject import AlignmentError, RadiObject, ViewError, VolumeCollection
from radiobject.writers import RadiObjectWriter, VolumeCollectionWriter

SHAPE = (6, 5, 4)
META = pd.DataFrame(
    {
        "obs_subject_id": ["s2", "s1", "s3", "s4"],
        "age": [50, 40, 60, 35],
        "diagnosis": ["tumor", "healthy", "tumor", None],
        "weight": [70.0, 80.5, np.nan, 60.0],
    }
)


def vol(value: float, shape=SHAPE, dtype=np.float32) -> np.ndarray:
    return (np.arange(np.prod(shape)).reshape(shape) % 7 + value * 100).astype(dtype)


def value_of(v: ro.Volume) -> float:
    return float(v.to_numpy().flat[0]) / 100


def build(uri: str) -> RadiObject:
    """T1w for s1..s4 (written out of order), seg for s1, s2 (and s2 twice)."""
    with RadiObjectWriter(uri, obs_meta_schema={"age": np.int64}) as w:
        w.write_obs_meta(META)
        with w.add_collection("T1w", shape=SHAPE) as t1:
            for sid, v in [("s3", 3), ("s1", 1), ("s4", 4), ("s2", 2)]:
                t1.write_volume(vol(v), f"{sid}_T1w", sid, qc="pass" if v != 4 else "fail")
        with w.add_collection("seg") as seg:
            seg.write_volume(vol(12, dtype=np.int16), "s2_seg_b", "s2")
            seg.write_volume(vol(11, dtype=np.int16), "s1_seg", "s1")
            seg.write_volume(vol(13, dtype=np.int16), "s2_seg_a", "s2")
    return w.finalize()


@pytest.fixture
def radi(tmp_uri) -> RadiObject:
    return build(tmp_uri("ds"))


# ---------------------------------------------------------------------------------------------
# attached


def test_basics(radi):
    assert len(radi) == 4 and radi.obs_subject_ids == ["s1", "s2", "s3", "s4"] and not radi.is_view
    assert set(radi.collection_names) == {"T1w", "seg"} and radi.n_collections == 2 and set(radi) == {"T1w", "seg"}
    assert radi.index.name == "obs_subject_id" and radi.index.get_index("s3") == 2
    assert isinstance(radi.T1w, VolumeCollection) and radi.T1w is radi.collection("T1w")  # opened once
    assert len(radi.seg) == 3 and radi.seg.obs_ids == ["s1_seg", "s2_seg_a", "s2_seg_b"]
    assert sorted(radi.all_obs_ids) == sorted(
        ["s1_T1w", "s2_T1w", "s3_T1w", "s4_T1w", "s1_seg", "s2_seg_a", "s2_seg_b"]
    )
    assert value_of(radi.get_volume("s2_seg_a")) == 13 and value_of(radi.get_volume("s4_T1w")) == 4
    with pytest.raises(KeyError):
        radi.get_volume("nope")
    with pytest.raises(KeyError):
        radi.collection("nope")
    with pytest.raises(AttributeError):
        radi.nope
    meta = radi.obs_meta
    assert meta["obs_subject_id"].tolist() == ["s1", "s2", "s3", "s4"]
    assert meta["diagnosis"].tolist() == ["healthy", "tumor", "tumor", None] and meta["age"].dtype == np.int64
    assert json.loads(meta["obs_ids"][1]) == ["s2_T1w", "s2_seg_a", "s2_seg_b"]
    row = radi.get_obs_row_by_obs_subject_id("s3")
    assert len(row) == 1 and row["age"][0] == 60
    assert "RadiObject(4 subjects, 2 collections" in repr(radi)
    text = radi.describe()
    assert "Subjects: 4" in text and "T1w: 4 volumes, shape=6x5x4" in text and "seg: 3 volumes" in text
    assert "diagnosis: {'tumor': 2, 'healthy': 1}" in text
    radi.validate()
    assert radi.copy() is radi


# ---------------------------------------------------------------------------------------------
# views


def test_views_filter_collections(radi):
    # defect 2: in the reference, radi.filter(...).T1w still held every subject's volume
    view = radi.filter("age >= 50")
    assert view.is_view and view.uri is None and len(view) == 2 and view.obs_subject_ids == ["s2", "s3"]
    assert view.T1w.obs_ids == ["s2_T1w", "s3_T1w"] and view.collection("seg").obs_ids == ["s2_seg_a", "s2_seg_b"]
    assert [value_of(v) for v in view.T1w] == [2, 3] and len(view.seg) == 2
    assert view.obs_meta["obs_subject_id"].tolist() == ["s2", "s3"] and set(view.all_obs_ids) == {
        "s2_T1w",
        "s3_T1w",
        "s2_seg_a",
        "s2_seg_b",
    }
    assert view.T1w.is_view and view.T1w.loc["s3_T1w"].obs_id == "s3_T1w"
    with pytest.raises(KeyError):
        view.T1w.loc["s1_T1w"]
    with pytest.raises(KeyError):
        view.get_volume("s1_T1w")
    with pytest.raises(KeyError):
        view.get_obs_row_by_obs_subject_id("s1")
    assert "(view)" in repr(view) and "URI: (view)" in view.describe()


def test_one_filter_grammar_for_objects_and_views(radi):
    # defect 7: the reference used TileDB QueryConditions on attached objects, pandas on views
    expr = "diagnosis == 'tumor' and weight > 60"
    assert radi.filter(expr).obs_subject_ids == ["s2"]
    assert radi.iloc[:].filter(expr).obs_subject_ids == ["s2"]
    assert radi.head(3).filter(
        "age < 45 or diagnosis.isna()",
    ).obs_subject_ids == ["s1"]
    assert radi.filter("diagnosis.isna()").obs_subject_ids == ["s4"]
    assert radi.filter("age > 40").filter("age < 55").obs_subject_ids == ["s2"]  # views of views
    with pytest.raises(KeyError):
        radi.filter("nope == 1")


def test_selections(radi):
    assert radi.iloc[0].obs_subject_ids == ["s1"] and radi.iloc[-1].obs_subject_ids == ["s4"]
    assert radi.iloc[1:3].obs_subject_ids == ["s2", "s3"] and radi.iloc[[3, 0]].obs_subject_ids == ["s1", "s4"]
    assert radi.iloc[np.array([True, False, False, True])].obs_subject_ids == ["s1", "s4"]
    assert radi.loc["s2"].obs_subject_ids == ["s2"] and radi["s3"].T1w.obs_ids == ["s3_T1w"]
    assert radi.loc[["s4", "s1"]].obs_subject_ids == ["s1", "s4"] and radi.sel(subject="s1").seg.obs_ids == ["s1_seg"]
    assert radi.head(2).obs_subject_ids == ["s1", "s2"] and radi.tail(1).obs_subject_ids == ["s4"]
    assert radi.sample(2, seed=3).obs_subject_ids == radi.sample(2, seed=3).obs_subject_ids
    assert len(radi.sample(9)) == 4
    with pytest.raises(IndexError):
        radi.iloc[4]
    with pytest.raises(KeyError):
        radi.loc["nope"]
    with pytest.raises(KeyError):
        radi.loc[["s1", "nope"]]
    only_seg = radi.select_collections(["seg"])
    assert only_seg.collection_names == ("seg",) and only_seg.n_collections == 1 and len(only_seg) == 4
    with pytest.raises(AttributeError):
        only_seg.T1w
    with pytest.raises(KeyError):
        only_seg.collection("T1w")
    both = only_seg.loc[["s1", "s3"]]
    assert both.collection_names == ("seg",) and both.obs_subject_ids == ["s1", "s3"] and both.seg.obs_ids == ["s1_seg"]
    with pytest.raises(KeyError):
        radi.select_collections(["nope"])
    assert both.copy().is_view and both.copy().obs_subject_ids == both.obs_subject_ids
    view = radi.head(2)
    for op in (
        lambda: view.validate(),
        lambda: view.rename_collection("seg", "x"),
        lambda: view.add_collection("x", radi.seg),
        lambda: view.append({"T1w": [(vol(1), "x", "x")]}),
    ):
        with pytest.raises(ViewError):
            op()


def test_write_a_view_keeps_obs_ids(radi, tmp_uri):
    out = radi.filter("age >= 50").select_collections(["seg", "T1w"]).write(tmp_uri("sub"))
    assert not out.is_view and out.obs_subject_ids == ["s2", "s3"]
    assert out.T1w.obs_ids == ["s2_T1w", "s3_T1w"] and out.seg.obs_ids == ["s2_seg_a", "s2_seg_b"]
    assert value_of(out.seg.loc["s2_seg_b"]) == 12 and value_of(out.T1w.loc["s3_T1w"]) == 3
    meta = out.obs_meta.set_index("obs_subject_id")
    assert meta.loc["s2", "diagnosis"] == "tumor" and meta.loc["s3", "age"] == 60
    assert json.loads(meta.loc["s3", "obs_ids"]) == ["s3_T1w"]
    assert out.T1w.obs["qc"].tolist() == ["pass", "pass"]
    out.validate()
    only = radi.loc["s4"].write(tmp_uri("s4"))  # s4 has no seg volume: the collection is left out
    assert only.collection_names == ("T1w",) and only.obs_subject_ids == ["s4"]
    whole = radi.write(tmp_uri("all"))
    assert whole.obs_meta.drop(columns=["obs_id"]).equals(radi.obs_meta.drop(columns=["obs_id"]))
    whole.validate()


# ---------------------------------------------------------------------------------------------
# changes


def test_append_with_user_columns(radi):
    # defect 3: the reference crashed with KeyError when obs_meta/obs had user columns
    new_meta = pd.DataFrame(
        {"obs_subject_id": ["s0", "s5", "s1"], "age": [20, 70, 99], "diagnosis": ["x", "y", "ignored"]}
    )
    radi.append(
        {
            "T1w": [(vol(0), "s0_T1w", "s0", {"qc": "pass"}), (vol(5), "s5_T1w", "s5")],
            "seg": [(vol(15, dtype=np.int16), "s1_seg_2", "s1")],
            "FLAIR": [(vol(21), "s1_FLAIR", "s1", {"te": 90.0})],
        },
        obs_meta=new_meta,
    )
    assert len(radi) == 6 and radi.obs_subject_ids == ["s0", "s1", "s2", "s3", "s4", "s5"]
    assert set(radi.collection_names) == {"T1w", "seg", "FLAIR"}
    meta = radi.obs_meta.set_index("obs_subject_id")
    assert meta.loc["s1", "age"] == 40 and meta.loc["s1", "diagnosis"] == "healthy"  # existing rows untouched
    assert meta.loc["s0", "age"] == 20 and pd.isna(meta.loc["s0", "weight"]) and meta.loc["s2", "weight"] == 70.0
    assert json.loads(meta.loc["s1", "obs_ids"]) == ["s1_FLAIR", "s1_T1w", "s1_seg", "s1_seg_2"]
    assert radi.T1w.obs_ids == ["s0_T1w", "s1_T1w", "s2_T1w", "s3_T1w", "s4_T1w", "s5_T1w"]
    assert [value_of(v) for v in radi.T1w] == [0, 1, 2, 3, 4, 5]
    assert radi.T1w.obs.set_index("obs_id").loc["s3_T1w", "qc"] == "pass"
    assert radi.FLAIR.obs["te"].tolist() == [90.0] and value_of(radi.seg.loc["s1_seg_2"]) == 15
    radi.validate()
    again = RadiObject(radi.uri)
    assert again.obs_subject_ids == radi.obs_subject_ids and again.metadata["subject_count"] == 6
    again.validate()


def _files(root: str) -> set[str]:
    return {str(p.relative_to(root)) for p in Path(root).rglob("*") if not p.name.startswith("__")}


def test_append_is_all_or_nothing(radi):
    before = _files(radi.uri)
    with pytest.raises(AlignmentError, match="s9"):  # a new subject without an obs_meta row
        radi.append({"T1w": [(vol(9), "s9_T1w", "s9")]})
    with pytest.raises(AlignmentError):  # an obs_id used by another collection
        radi.append({"FLAIR": [(vol(9), "s1_T1w", "s1")]})
    with pytest.raises(ro.ShapeError):  # the last volume is wrong: the earlier ones are removed
        radi.append(
            {
                "seg": [(vol(1, dtype=np.int16), "s3_seg", "s3")],
                "NEW": [(vol(1), "s3_new", "s3")],
                "T1w": [(vol(9), "s9_T1w", "s9"), (vol(9, (2, 2, 2)), "s8_T1w", "s8")],
            },
            obs_meta=pd.DataFrame({"obs_subject_id": ["s8", "s9"]}),
        )
    assert _files(radi.uri) == before
    again = RadiObject(radi.uri)
    assert again.obs_subject_ids == ["s1", "s2", "s3", "s4"] and len(again.T1w) == 4 and len(again.seg) == 3
    assert set(again.collection_names) == {"T1w", "seg"} and not os.path.exists(f"{radi.uri}/collections/NEW")
    again.validate()


def test_add_collection_copies_or_links(radi, tmp_uri):
    ext = tmp_uri("ext")
    with VolumeCollectionWriter(ext, name="T2w") as w:
        w.write_volume(vol(31), "s1_T2w", "s1", te=80)
        w.write_volume(vol(36), "s6_T2w", "s6", te=85)
    radi.add_collection("T2w", ext)
    assert set(radi.collection_names) == {"T1w", "seg", "T2w"} and radi.obs_subject_ids[-1] == "s6"
    assert radi.T2w.uri.endswith("collections/T2w") and value_of(radi.T2w.loc["s6_T2w"]) == 36
    meta = radi.obs_meta.set_index("obs_subject_id")
    assert json.loads(meta.loc["s6", "obs_ids"]) == ["s6_T2w"] and pd.isna(meta.loc["s6", "age"])
    assert meta.loc["s2", "diagnosis"] == "tumor"
    radi.validate()
    # a collection already in place is linked, not copied
    inplace = f"{radi.uri}/collections/PD"
    with VolumeCollectionWriter(inplace, name="PD") as w:
        w.write_volume(vol(41), "s1_PD", "s1")
    marker = Path(inplace, "volumes", "0", "__schema")
    mtime = sorted(p.stat().st_mtime_ns for p in marker.iterdir())
    radi.add_collection("PD", VolumeCollection(inplace))
    assert sorted(p.stat().st_mtime_ns for p in marker.iterdir()) == mtime
    assert radi.PD.obs_ids == ["s1_PD"] and "s1_PD" in radi.obs_meta.set_index("obs_subject_id").loc["s1", "obs_ids"]
    radi.validate()
    # a view copies its volumes only; clashing obs_ids and names are refused
    radi.add_collection("T1w_late", radi.T1w.filter("qc == 'fail'").write(tmp_uri("late"), name="T1w_late"))
    assert radi.T1w_late.obs_ids == ["s4_T1w_late"]
    with pytest.raises(AlignmentError):
        radi.add_collection("again", radi.T1w.head(1))
    with pytest.raises(ro.SchemaError):
        radi.add_collection("T1w", ext)
    radi.validate()


def test_rename_collection_keeps_it_reachable(radi, tmp_uri):
    # defect 5: in the reference, collection(new) failed with "Group does not exist" after a rename
    radi.rename_collection("seg", "mask")
    assert set(radi.collection_names) == {"T1w", "mask"} and radi.mask.obs_ids == ["s1_seg", "s2_seg_a", "s2_seg_b"]
    assert radi.mask.name == "mask" and value_of(radi.mask.loc["s2_seg_b"]) == 12
    assert RadiObject(radi.uri).collection("mask").name == "mask"
    with pytest.raises(AttributeError):
        radi.seg
    with pytest.raises(KeyError):
        radi.rename_collection("seg", "x")
    with pytest.raises(ro.SchemaError):
        radi.rename_collection("mask", "T1w")
    radi.validate()
    radi.append({"mask": [(vol(14, dtype=np.int16), "s3_seg", "s3")]})
    assert radi.mask.obs_ids[-1] == "s3_seg"
    radi.validate()


def test_validate_finds_problems(radi):
    radi.validate()
    # obs_ids of a subject out of date
    radi.obs_meta_dataframe.update(
        pd.DataFrame({"obs_subject_id": ["s1"], "obs_id": ["s1"], "obs_ids": ['["s1_T1w"]']})
    )
    with pytest.raises(AlignmentError, match="obs_ids of subject 's1'"):
        RadiObject(radi.uri).validate()


def test_validate_finds_orphan_subjects(radi, tmp_uri):
    uri = tmp_uri("orphan")
    radi.write(uri)
    ro.Dataframe(f"{uri}/collections/T1w/obs").update(
        pd.DataFrame({"obs_subject_id": ["zz"], "obs_id": ["zz_T1w"], "qc": ["x"]})
    )
    with pytest.raises(AlignmentError):
        RadiObject(uri).validate()


def test_from_collections(radi, tmp_uri):
    uri = tmp_uri("fc")
    out = RadiObject.from_collections(uri, {"anat": radi.T1w, "lesion": radi.seg.uri})
    assert set(out.collection_names) == {"anat", "lesion"} and out.obs_subject_ids == ["s1", "s2", "s3", "s4"]
    assert (
        out.anat.obs_ids == radi.T1w.obs_ids and out.anat.name == "anat" and value_of(out.lesion.loc["s2_seg_a"]) == 13
    )
    out.validate()
    # obs_meta must cover every subject; nothing is written otherwise
    bad = tmp_uri("bad")
    with pytest.raises(AlignmentError):
        RadiObject.from_collections(bad, {"T1w": radi.T1w}, obs_meta=pd.DataFrame({"obs_subject_id": ["s1"]}))
    assert not os.path.exists(bad)
    with pytest.raises(AlignmentError):
        RadiObject.from_collections(tmp_uri("dup"), {"a": radi.T1w, "b": radi.T1w})
    # collections already in place are linked; the others copied
    uri2 = tmp_uri("fc2")
    radi.T1w.map(lambda d, r: d + 1).write(f"{uri2}/collections/T1w")
    out2 = RadiObject.from_collections(
        uri2,
        {"T1w": f"{uri2}/collections/T1w", "seg": radi.seg.head(2)},
        obs_meta=radi.obs_meta.drop(columns=["obs_ids"]),
    )
    assert out2.seg.obs_ids == ["s1_seg", "s2_seg_a"] and value_of(out2.T1w.loc["s2_T1w"]) == pytest.approx(2.01)
    assert out2.obs_meta.set_index("obs_subject_id").loc["s3", "age"] == 60
    out2.validate()


def test_from_images_delegates_to_ingest(monkeypatch, tmp_uri):
    calls = []
    fake = types.ModuleType("radiobject.ingest")
    fake.from_images = lambda uri, images, **kw: calls.append((uri, images, kw)) or "made"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "radiobject.ingest", fake)
    assert RadiObject.from_images("u", {"CT": "*.nii.gz"}, obs_meta=None) == "made"
    assert calls == [("u", {"CT": "*.nii.gz"}, {"obs_meta": None})]


def test_pickles_as_a_recipe(radi):
    import pickle

    again = pickle.loads(pickle.dumps(radi))
    assert not again.is_view and again.obs_subject_ids == radi.obs_subject_ids
    view = pickle.loads(pickle.dumps(radi.filter("age >= 50").select_collections(["T1w"])))
    assert view.is_view and view.obs_subject_ids == ["s2", "s3"] and view.collection_names == ("T1w",)
    assert [value_of(v) for v in view.T1w] == [2, 3]


def test_missing_dataset(tmp_uri):
    with pytest.raises(ro.NotFoundError):
        RadiObject(tmp_uri("nothing"))


# ---------------------------------------------------------------------------------------------
# interop with the PyPI reference

PEER_READ = """
from radiobject import RadiObject
r = RadiObject(args["uri"])
out = {"len": len(r), "subjects": r.obs_subject_ids, "names": sorted(r.collection_names),
       "meta": r.obs_meta.read()[["obs_subject_id", "age", "diagnosis"]].astype(str).to_dict("list"), "colls": {}}
for n in r.collection_names:
    vc = r.collection(n)
    out["colls"][n] = {"ids": vc.obs_ids, "shape": list(vc.shape) if vc.shape else None,
                       "values": [float(vc.loc[i].to_numpy().flat[0]) for i in vc.obs_ids],
                       "by_pos": [float(vc.iloc[k].to_numpy().flat[0]) for k in range(len(vc))]}
r.validate()
result = out
"""


def test_the_reference_reads_ours_after_changes(radi, peer):
    radi.append({"T1w": [(vol(0), "s0_T1w", "s0")]}, obs_meta=pd.DataFrame({"obs_subject_id": ["s0"], "age": [1]}))
    radi.rename_collection("seg", "mask")
    got = peer(PEER_READ, uri=radi.uri)
    assert got["len"] == 5 and got["subjects"] == radi.obs_subject_ids and got["names"] == ["T1w", "mask"]
    assert got["meta"]["age"] == ["1", "40", "50", "60", "35"] and got["meta"]["diagnosis"][2] == "tumor"
    for name in ("T1w", "mask"):
        vc = radi.collection(name)
        g = got["colls"][name]
        assert g["ids"] == vc.obs_ids and g["shape"] == (list(vc.shape) if vc.shape else None)
        want = [float(v.to_numpy().flat[0]) for v in vc]
        assert g["values"] == want and g["by_pos"] == want


PEER_WRITE = """
import numpy as np, pandas as pd
from radiobject.streaming import RadiObjectWriter
def vol(v):
    return (np.arange(120).reshape(6, 5, 4) % 7 + v * 100).astype(np.float32)
with RadiObjectWriter(args["uri"], obs_meta_schema={"age": np.int64}) as w:
    w.write_obs_meta(pd.DataFrame({"obs_subject_id": ["b", "a", "c"], "age": [2, 1, 3]}))
    with w.add_collection("T1w", shape=(6, 5, 4)) as c:
        for sid, v in [("b", 2), ("a", 1), ("c", 3)]:
            c.write_volume(vol(v), f"{sid}_T1w", sid)
    with w.add_collection("FLAIR", shape=(6, 5, 4)) as c:
        for sid, v in [("c", 33), ("a", 11)]:
            c.write_volume(vol(v), f"{sid}_FLAIR", sid)
result = {"ok": True}
"""


@pytest.mark.slow
def test_reference_datasets_written_out_of_order_read_right(tmp_uri, peer):
    uri = tmp_uri("peer")
    peer(PEER_WRITE, uri=uri)
    radi = RadiObject(uri)
    assert radi.obs_subject_ids == ["a", "b", "c"] and set(radi.collection_names) == {"T1w", "FLAIR"}
    assert radi.obs_meta["age"].tolist() == [1, 2, 3]
    assert [value_of(v) for v in radi.T1w] == [1, 2, 3]
    assert value_of(radi.T1w.loc["b_T1w"]) == 2 and value_of(radi.FLAIR.loc["c_FLAIR"]) == 33
    assert radi.loc["c"].FLAIR.obs_ids == ["c_FLAIR"] and value_of(radi.loc["c"].FLAIR[0]) == 33
    # a copy is sorted on disk and has obs_ids filled in
    out = radi.write(tmp_uri("fixed"))
    out.validate()
    assert json.loads(out.obs_meta.set_index("obs_subject_id").loc["a", "obs_ids"]) == ["a_FLAIR", "a_T1w"]


PEER_FROM_NIFTIS = """
from radiobject import RadiObject
RadiObject.from_niftis(args["uri"], images={"CT": [tuple(x) for x in args["ct"]], "seg": [tuple(x) for x in args["seg"]]})
result = {"ok": True}
"""


@pytest.mark.slow
def test_reference_nifti_datasets_read_right(tmp_uri, tmp_path, peer):
    import nibabel as nib

    def save(name, value):
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.full((5, 4, 3), value, np.int16), np.eye(4)), str(path))
        return str(path)

    ct = [(save(f"ct_{s}", v), s) for s, v in [("p2", 2), ("p1", 1), ("p3", 3)]]
    seg = [(save(f"seg_{s}", v), s) for s, v in [("p3", 30), ("p1", 10)]]
    uri = tmp_uri("nifti")
    peer(PEER_FROM_NIFTIS, uri=uri, ct=ct, seg=seg)
    radi = RadiObject(uri)
    assert radi.obs_subject_ids == ["p1", "p2", "p3"]
    assert [int(v.to_numpy().flat[0]) for v in radi.CT] == [1, 2, 3]
    assert [int(v.to_numpy().flat[0]) for v in radi.seg] == [10, 30]
    assert int(radi.loc["p3"].seg[0].to_numpy().flat[0]) == 30


@pytest.mark.s3
def test_dataset_on_s3(s3_uri, s3_ctx):
    uri = s3_uri("ds")
    with RadiObjectWriter(uri, ctx=s3_ctx) as w:
        w.write_obs_meta(META)
        with w.add_collection("T1w") as t1:
            for sid, v in [("s3", 3), ("s1", 1), ("s2", 2), ("s4", 4)]:
                t1.write_volume(vol(v), f"{sid}_T1w", sid)
    radi = RadiObject(uri, ctx=s3_ctx)
    assert [value_of(v) for v in radi.filter("age > 45").T1w] == [2, 3]
    radi.rename_collection("T1w", "anat")
    assert value_of(radi.anat.loc["s4_T1w"]) == 4
    radi.validate()
