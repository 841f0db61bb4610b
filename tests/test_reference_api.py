"""The reference's API on our package: ``from_niftis``, ``lazy()``/``LazyQuery``, ``obs.read()``,
``Dataframe.drop_column``/``delete``, the writer's declared shape, ``append`` refusals and
``S3Stats.parallelization_rate`` — with the reference's error phrases, and interop with the PyPI
reference (``run_peer``) in both directions."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import radiobject as ro
from radiobject import (
    AlignmentError,
    Dataframe,
    InvalidArgumentError,
    LazyQuery,
    NotFoundError,
    RadiObject,
    SchemaError,
    ShapeError,
    VolumeCollection,
)
from radiobject.stats import S3Stats
from radiobject.writers import VolumeCollectionWriter

AFFINE = np.diag([1.5, 1.5, 2.0, 1.0])


def write_nifti(path: Path, data: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(data, AFFINE), str(path))
    return str(path)


@pytest.fixture
def niftis(tmp_path, make_phantom):
    """Three subjects' T1w files (12x10x6 int16), unsorted on purpose."""
    d = tmp_path / "nii"
    d.mkdir()
    out = []
    for i, sid in enumerate(["sub-03", "sub-01", "sub-02"]):
        data = make_phantom((12, 10, 6), dtype=np.int16, seed=i)
        out.append((write_nifti(d / f"{sid}_T1w.nii.gz", data), sid))
    return out


def small_collection(uri: str, make_phantom, n: int = 4, name: str = "T1w") -> VolumeCollection:
    with VolumeCollectionWriter(uri, shape=(8, 8, 4), name=name) as w:
        for i in range(n):
            sid = f"s{i}"
            w.write_volume(make_phantom((8, 8, 4), seed=i), obs_id=f"{sid}_{name}", obs_subject_id=sid, age=30 + 10 * i)
    return w.finalize()


# ------------------------------------------------------------------ VolumeCollection.from_niftis


def test_vc_from_niftis_writes_voxels_and_imaging_obs(tmp_uri, niftis):
    vc = VolumeCollection.from_niftis(uri=tmp_uri("vc"), niftis=niftis, name="T1w")
    assert len(vc) == 3 and vc.name == "T1w" and vc.shape == (12, 10, 6)
    assert vc.obs_ids == ["sub-01_T1w", "sub-02_T1w", "sub-03_T1w"]
    obs = vc.obs.read()
    assert list(obs.columns[:2]) == ["obs_subject_id", "obs_id"]
    assert {"series_type", "voxel_spacing", "dimensions", "source_path"} <= set(obs.columns)
    assert obs["series_type"].tolist() == ["T1w"] * 3
    for path, sid in niftis:
        got = vc.loc[f"{sid}_T1w"].to_numpy()
        np.testing.assert_array_equal(got, np.asarray(nib.load(path).dataobj))
    vc.validate()


def test_vc_from_niftis_stores_the_imaging_obs_as_ingest_does(tmp_uri, niftis):
    """One native image writer serves ingest, from_niftis and append(niftis=): same columns, same
    stored types (INT32 imaging columns stay INT32), same values."""
    vc = VolumeCollection.from_niftis(tmp_uri("vc"), niftis, name="T1w")
    radi = RadiObject.from_images(tmp_uri("radi"), {"T1w": niftis})
    ours, ingested = vc.obs.read(), radi.T1w.obs.read()
    assert ours.dtypes.to_dict() == ingested.dtypes.to_dict()
    pd.testing.assert_frame_equal(ours, ingested)
    appended = VolumeCollection.from_niftis(tmp_uri("vc2"), niftis[:1], name="T1w")
    appended.append(niftis=niftis[1:])
    pd.testing.assert_frame_equal(appended.obs.read(), ingested)


def test_vc_from_niftis_names_repeats_with_acq_and_defaults_to_volume(tmp_uri, niftis):
    path, sid = niftis[0]
    vc = VolumeCollection.from_niftis(tmp_uri("vc"), [(path, sid), (niftis[1][0], sid)])
    assert vc.name is None and sorted(vc.obs_ids) == [f"{sid}_volume", f"{sid}_volume_acq-1"]


def test_vc_from_niftis_with_user_obs(tmp_uri, niftis):
    obs = pd.DataFrame(
        {
            "obs_id": [f"custom-{s}" for _, s in niftis],
            "obs_subject_id": [s for _, s in niftis],
            "site": ["A", "B", "C"],
        }
    )
    vc = VolumeCollection.from_niftis(tmp_uri("vc"), niftis, obs=obs, name="T1w")
    got = vc.obs.read(columns=["site"]).set_index("obs_id")
    assert got.loc["custom-sub-03", "site"] == "A" and got.loc["custom-sub-01", "site"] == "B"
    assert "series_type" in vc.obs.columns


@pytest.mark.parametrize(
    "case, exc, phrase",
    [
        ("empty", InvalidArgumentError, "At least one NIfTI"),
        ("length", InvalidArgumentError, "obs length"),
        ("mismatch", AlignmentError, "obs_subject_id mismatch"),
        ("no_obs_id", SchemaError, "obs_id"),
        ("collide", SchemaError, "collide"),
        ("whitelist", AlignmentError, "Invalid obs_subject_ids"),
    ],
)
def test_vc_from_niftis_refuses_bad_input_and_writes_nothing(tmp_uri, niftis, case, exc, phrase):
    uri = tmp_uri("vc")
    sids = [s for _, s in niftis]
    obs = pd.DataFrame({"obs_id": [f"{s}_x" for s in sids], "obs_subject_id": sids})
    kwargs: dict = {"niftis": niftis}
    if case == "empty":
        kwargs["niftis"] = []
    elif case == "length":
        kwargs["obs"] = obs.iloc[:2]
    elif case == "mismatch":
        kwargs["obs"] = obs.assign(obs_subject_id=list(reversed(sids)))
    elif case == "no_obs_id":
        kwargs["obs"] = obs.drop(columns=["obs_id"])
    elif case == "collide":
        kwargs["obs"] = obs.assign(series_type="mine")
    elif case == "whitelist":
        kwargs["valid_subject_ids"] = {"sub-01"}
    with pytest.raises(exc, match=phrase):
        VolumeCollection.from_niftis(uri, **kwargs)
    assert not Path(uri).exists()
    assert issubclass(exc, ValueError)


def test_vc_from_niftis_dimension_mismatch_and_missing_file(tmp_uri, tmp_path, niftis, make_phantom):
    odd = write_nifti(tmp_path / "odd.nii.gz", make_phantom((9, 9, 9), dtype=np.int16))
    uri = tmp_uri("vc")
    with pytest.raises(ShapeError, match="Dimension mismatch"):
        VolumeCollection.from_niftis(uri, [*niftis, (odd, "sub-09")])
    assert not Path(uri).exists()
    mixed = VolumeCollection.from_niftis(uri, [*niftis, (odd, "sub-09")], validate_dimensions=False)
    assert len(mixed) == 4 and mixed.shape is None
    with pytest.raises(FileNotFoundError):
        VolumeCollection.from_niftis(tmp_uri("vc2"), [("/nonexistent/x.nii.gz", "s")])
    with pytest.raises(NotFoundError):
        VolumeCollection.from_niftis(tmp_uri("vc3"), [("/nonexistent/x.nii.gz", "s")])


def test_vc_from_niftis_is_read_by_the_reference(tmp_uri, niftis, peer):
    vc = VolumeCollection.from_niftis(tmp_uri("vc"), niftis, name="T1w")
    got = peer(
        """
from radiobject.volume_collection import VolumeCollection
vc = VolumeCollection(args["uri"])
obs = vc.obs.read()
result = {"ids": sorted(obs["obs_id"].tolist()), "sum": {i: float(vc.loc[i].to_numpy().sum()) for i in obs["obs_id"]},
          "shape": list(vc.shape)}
""",
        uri=vc.uri,
    )
    assert got["ids"] == vc.obs_ids and got["shape"] == [12, 10, 6]
    assert got["sum"] == {i: float(vc.loc[i].to_numpy().sum()) for i in vc.obs_ids}


# ------------------------------------------------------------------ RadiObject.from_niftis


def test_radi_from_niftis_modes(tmp_uri, tmp_path, niftis):
    by_type = RadiObject.from_niftis(tmp_uri("a"), niftis=niftis)
    assert by_type.collection_names == ("T1w",) and len(by_type) == 3
    named = RadiObject.from_niftis(tmp_uri("b"), image_dir=str(tmp_path / "nii"), collection_name="anat")
    assert named.collection_names == ("anat",) and sorted(named.anat.obs_subject_ids) == [
        "sub-01_T1w",
        "sub-02_T1w",
        "sub-03_T1w",
    ]
    meta = pd.DataFrame({"obs_subject_id": ["sub-01", "sub-02", "sub-03"], "age": [1, 2, 3]})
    via_images = RadiObject.from_niftis(tmp_uri("c"), images={"T1w": niftis}, obs_meta=meta)
    assert via_images.obs_meta.read(columns=["age"])["age"].tolist() == [1, 2, 3]
    via_images.validate()


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        ({"images": {}}, "images dict cannot be empty"),
        ({"images": {"T1w": "x"}, "collection_name": "T1w"}, "Cannot use 'images'"),
        ({"niftis": [("a.nii", "a")], "image_dir": "d"}, "Cannot specify both"),
        ({}, "Must specify"),
    ],
)
def test_radi_from_niftis_argument_errors(tmp_uri, kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        RadiObject.from_niftis(tmp_uri("r"), **kwargs)


# ------------------------------------------------------------------ lazy() / LazyQuery


def test_lazy_is_exported_and_selects_like_the_reference(tmp_uri, make_phantom):
    assert "LazyQuery" in ro.__all__ and ro.LazyQuery is LazyQuery
    vc = small_collection(tmp_uri("vc"), make_phantom)
    q = vc.lazy()
    assert isinstance(q, LazyQuery) and q.count() == len(q) == 4
    assert q.head(2).to_obs()["obs_id"].tolist() == ["s0_T1w", "s1_T1w"]
    assert q.tail(1).to_obs()["obs_id"].tolist() == ["s3_T1w"]
    assert q.iloc([0, -1]).count() == 2 and q.loc("s2_T1w").count() == 1
    assert q.filter("age >= 40").filter("age < 60").to_obs()["obs_id"].tolist() == ["s1_T1w", "s2_T1w"]
    assert q.filter_subjects(["s0", "s3"]).count() == 2
    # positions count in the source, as in the reference: s0 and s1 are first, only s1 matches
    assert q.filter("age >= 40").head(2).to_obs()["obs_id"].tolist() == ["s1_T1w"]
    assert q.sample(2, seed=7).to_obs().equals(q.sample(2, seed=7).to_obs())
    view = vc.iloc[1:3]
    assert view.lazy().count() == 2
    stack = q.head(3).to_numpy_stack()
    assert stack.shape == (3, 8, 8, 4)
    np.testing.assert_array_equal(stack[1], vc.loc["s1_T1w"].to_numpy())
    assert [v.obs_id for v in q.iter_volumes()] == sorted(vc.obs_ids)
    with pytest.raises(InvalidArgumentError, match="No volumes match"):
        q.filter("age > 1000").to_numpy_stack()


def test_lazy_write_composes_transforms_and_records_updates(tmp_uri, make_phantom):
    vc = small_collection(tmp_uri("vc"), make_phantom)
    src = {i: vc.loc[i].to_numpy() for i in vc.obs_ids}

    def mean(v, row):
        return v, {"mean": float(v.mean()), "seen_age": int(row["age"])}

    out = (
        vc.lazy()
        .filter("age >= 40")
        .map(lambda v, row: v * 3)
        .map(mean)
        .map(lambda v, row: v - row["mean"])
        .write(tmp_uri("out"), name="norm")
    )
    assert out.obs_ids == ["s1_norm", "s2_norm", "s3_norm"] and out.name == "norm"
    obs = out.obs.read().set_index("obs_subject_id")
    for sid in ("s1", "s2", "s3"):
        want = src[f"{sid}_T1w"] * 3
        np.testing.assert_allclose(out.loc[f"{sid}_norm"].to_numpy(), want - want.mean(), rtol=1e-5, atol=1e-4)
        assert obs.loc[sid, "mean"] == pytest.approx(float(want.mean()))
        assert obs.loc[sid, "age"] == obs.loc[sid, "seen_age"]
    plain = vc.lazy().head(2).write(tmp_uri("plain"))
    assert len(plain) == 2 and plain.shape == (8, 8, 4) and plain.obs_ids == ["s0_T1w", "s1_T1w"]
    np.testing.assert_array_equal(plain.loc["s1_T1w"].to_numpy(), src["s1_T1w"])


def test_lazy_output_is_read_by_the_reference(tmp_uri, make_phantom, peer):
    vc = small_collection(tmp_uri("vc"), make_phantom)
    out = vc.lazy().map(lambda v, row: (v + 1, {"done": True})).write(tmp_uri("out"), name="plus")
    got = peer(
        """
from radiobject.volume_collection import VolumeCollection
vc = VolumeCollection(args["uri"])
obs = vc.obs.read()
result = {"ids": obs["obs_id"].tolist(), "done": [bool(x) for x in obs["done"]],
          "first": float(vc.loc["s0_plus"].to_numpy().sum())}
""",
        uri=out.uri,
    )
    assert got["ids"] == out.obs_ids and got["done"] == [True] * 4
    assert got["first"] == pytest.approx(float((vc.loc["s0_T1w"].to_numpy() + 1).sum()), rel=1e-6)


# ------------------------------------------------------------------ obs / obs_meta


def test_obs_is_a_dataframe_with_read(tmp_uri, make_phantom):
    vc = small_collection(tmp_uri("vc"), make_phantom)
    obs = vc.obs
    assert isinstance(obs, pd.DataFrame) and obs["age"].tolist() == [30, 40, 50, 60]  # pandas use keeps working
    assert obs.index_columns == ("obs_subject_id", "obs_id") and obs.uri == f"{vc.uri}/obs"
    full = obs.read()
    assert type(full) is pd.DataFrame and full.equals(pd.DataFrame(obs))
    assert obs.read(columns=["age"], include_index=False).columns.tolist() == ["age"]
    assert obs.read(value_filter="age > 45")["obs_id"].tolist() == ["s2_T1w", "s3_T1w"]
    assert type(obs.set_index("obs_id")) is pd.DataFrame  # derived frames are plain pandas
    with pytest.raises(KeyError, match="nope"):
        obs.read(columns=["nope"])
    # a view reads its own rows; the stored table is unchanged
    assert vc.iloc[1:3].obs.read()["obs_id"].tolist() == ["s1_T1w", "s2_T1w"]
    assert vc.to_obs().equals(full)


def test_obs_meta_read_on_dataset_and_view(tmp_uri, make_phantom):
    from radiobject.writers import RadiObjectWriter

    with RadiObjectWriter(tmp_uri("r"), obs_meta_schema={"age": np.int64}) as w:
        w.write_obs_meta(pd.DataFrame({"obs_subject_id": ["s1", "s2"], "age": [40, 50]}))
        with w.add_collection("T1w", shape=(8, 8, 4)) as cw:
            for sid in ("s1", "s2"):
                cw.write_volume(make_phantom((8, 8, 4)), obs_id=f"{sid}_T1w", obs_subject_id=sid)
    radi = w.finalize()
    meta = radi.obs_meta.read()
    assert meta["obs_subject_id"].tolist() == ["s1", "s2"] and meta["age"].tolist() == [40, 50]
    assert "obs_subject_id" in radi.obs_meta.index_columns
    assert radi.obs_meta.read(value_filter="age > 45")["obs_subject_id"].tolist() == ["s2"]
    assert radi.iloc[[1]].obs_meta.read()["obs_subject_id"].tolist() == ["s2"]
    assert radi.obs_meta.set_index("obs_subject_id").loc["s1", "age"] == 40


# ------------------------------------------------------------------ Dataframe.drop_column / delete


@pytest.fixture
def frame(tmp_uri):
    df = pd.DataFrame(
        {
            "obs_subject_id": [f"subj_{i}" for i in range(1, 6)],
            "obs_id": [f"vol_{i}" for i in range(1, 6)],
            "age": np.array([35, 45, 30, 60, 50], dtype=np.int32),
            "survival_months": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    return Dataframe.from_pandas(tmp_uri("df"), df)


def test_drop_column(frame):
    frame.drop_column("survival_months")
    assert frame.columns == ["age"]
    reopened = Dataframe(frame.uri)
    assert reopened.columns == ["age"] and reopened.read()["age"].tolist() == [35, 45, 30, 60, 50]
    with pytest.raises(ValueError, match="does not exist"):
        frame.drop_column("nonexistent_col")
    with pytest.raises(ValueError, match="Cannot drop index column"):
        frame.drop_column("obs_id")


def test_delete_rows(frame):
    assert frame.delete("age < 40") == 2
    rest = frame.read()
    assert (rest["age"] >= 40).all() and len(rest) == len(frame) == 3
    assert Dataframe(frame.uri).read()["obs_id"].tolist() == ["vol_2", "vol_4", "vol_5"]
    assert frame.delete("age > 1000") == 0 and len(frame) == 3
    # deleted keys can be written again
    frame.update(pd.DataFrame({"obs_subject_id": ["subj_1"], "obs_id": ["vol_1"], "age": [99]}))
    assert frame.read(value_filter="obs_id == 'vol_1'")["age"].tolist() == [99]


def test_dataframe_reference_phrases(frame):
    with pytest.raises(SchemaError, match="conflicts with index column"):
        frame.add_column("obs_subject_id", np.int32)
    with pytest.raises(ValueError, match=r"Unknown columns.*add_column"):
        frame.update(pd.DataFrame({"obs_subject_id": ["subj_1"], "obs_id": ["vol_1"], "nonexistent": [1]}))
    with pytest.raises(ValueError, match="must contain index column"):
        frame.update(pd.DataFrame({"age": [99]}))


def test_deletes_and_drops_are_seen_by_the_reference(frame, peer):
    frame.delete("age < 40")
    frame.drop_column("survival_months")
    got = peer(
        """
from radiobject.dataframe import Dataframe
df = Dataframe(args["uri"]).read()
result = {"ids": sorted(df["obs_id"].tolist()), "cols": sorted(df.columns)}
""",
        uri=frame.uri,
    )
    assert got == {"ids": ["vol_2", "vol_4", "vol_5"], "cols": ["age", "obs_id", "obs_subject_id"]}


# ------------------------------------------------------------------ writer shape


def test_writer_keeps_declared_shape_without_volumes(tmp_uri, make_phantom, peer):
    with VolumeCollectionWriter(tmp_uri("empty"), shape=(8, 8, 4), name="T1w"):
        pass
    vc = VolumeCollection(tmp_uri("empty"))
    assert len(vc) == 0 and vc.shape == (8, 8, 4) and vc.is_uniform
    got = peer(
        """
import tiledb
with tiledb.Group(args["uri"]) as g:
    result = {k: int(g.meta[k]) for k in ("x_dim", "y_dim", "z_dim", "n_volumes")}
""",
        uri=vc.uri,
    )
    assert got == {"x_dim": 8, "y_dim": 8, "z_dim": 4, "n_volumes": 0}
    vc.append([(make_phantom((8, 8, 4)), "s1_T1w", "s1")])
    assert vc.shape == (8, 8, 4)
    with pytest.raises(ShapeError, match="Dimension mismatch"):
        vc.append([(make_phantom((8, 8, 5)), "s2_T1w", "s2")])


# ------------------------------------------------------------------ append refusals


def test_vc_append_refuses_both_sources_and_nothing(tmp_uri, make_phantom):
    vc = small_collection(tmp_uri("vc"), make_phantom, n=1)
    with pytest.raises(ValueError, match="Cannot provide both"):
        vc.append(niftis=[("fake.nii", "sub")], dicom_dirs=[("fake_dir", "sub")])
    with pytest.raises(ValueError, match="Must provide"):
        vc.append()
    assert len(VolumeCollection(vc.uri)) == 1


def test_vc_append_niftis_with_acquisition_suffix_and_dimension_check(tmp_uri, tmp_path, niftis, make_phantom):
    vc = VolumeCollection.from_niftis(tmp_uri("vc"), niftis[:1], name="T1w")
    vc.append(niftis=[(niftis[1][0], niftis[0][1])])
    assert sorted(vc.obs_ids) == ["sub-03_T1w", "sub-03_T1w_acq-1"]
    odd = write_nifti(tmp_path / "odd.nii.gz", make_phantom((9, 9, 9), dtype=np.int16))
    with pytest.raises(ValueError, match="Dimension mismatch"):
        vc.append(niftis=[(odd, "sub-BAD")])
    assert len(VolumeCollection(vc.uri)) == 2


def test_radi_append_needs_obs_meta_for_new_subjects(tmp_uri, niftis):
    radi = RadiObject.from_niftis(tmp_uri("r"), images={"T1w": niftis[:2]})
    new_path, new_sid = niftis[2]
    for kwargs, phrase in [
        ({}, "obs_meta required"),
        ({"obs_meta": pd.DataFrame({"obs_subject_id": ["sub-OTHER"]})}, "missing entries"),
        ({"obs_meta": pd.DataFrame({"subject_name": [new_sid]})}, "obs_subject_id"),
    ]:
        with pytest.raises(ValueError, match=phrase):
            radi.append(images={"T1w": [(new_path, new_sid)]}, **kwargs)
        assert len(RadiObject(radi.uri)) == 2 and new_sid not in RadiObject(radi.uri).obs_subject_ids
    with pytest.raises(ValueError, match="images dict cannot be empty"):
        radi.append(images={})
    # in-memory volumes follow the same rule
    with pytest.raises(AlignmentError, match="obs_meta required"):
        radi.append({"T1w": [(np.zeros((12, 10, 6), np.int16), "x_T1w", "x")]})
    # an existing subject needs no obs_meta; a new one with a row is added
    radi.append(images={"DWI": [(new_path, niftis[0][1])]})
    radi.append(images={"T1w": [(new_path, new_sid)]}, obs_meta=pd.DataFrame({"obs_subject_id": [new_sid]}))
    assert len(radi) == 3 and "DWI" in radi.collection_names
    assert json.loads(radi.obs_meta.read().set_index("obs_subject_id").loc[new_sid, "obs_ids"]) == [f"{new_sid}_T1w"]
    radi.validate()


# ------------------------------------------------------------------ S3Stats


def test_parallelization_rate_is_the_references_formula():
    assert (
        S3Stats(
            read_ops=0, parallelized_reads=0, write_ops=5, total_bytes_read=0, total_bytes_written=0
        ).parallelization_rate
        == 0.0
    )
    s = S3Stats(read_ops=10, parallelized_reads=7, write_ops=5, total_bytes_read=10**6, total_bytes_written=5 * 10**5)
    assert s.parallelization_rate == 0.7
    # the denominator is read_ops, not read_queries
    assert S3Stats(10, 7, 0, 0, 0, read_queries=70).parallelization_rate == 0.7


def test_is_orientation_valid_names_each_axis_once():
    from radiobject.orientation import aff2axcodes, is_orientation_valid

    assert is_orientation_valid("RAS") and is_orientation_valid(("L", "P", "S")) and is_orientation_valid("PIL")
    for bad in ("RRS", "RA", "RASS", "RAX", None, 123, ["RA", "S", "I"]):
        assert not is_orientation_valid(bad), bad
    assert is_orientation_valid(aff2axcodes(np.diag([-1.0, -1.0, 1.0, 1.0])))


def test_generate_obs_id_is_the_naming_rule_of_the_writers():
    from radiobject import _radiobject as _rb
    from radiobject.volume_collection import generate_obs_id

    assert generate_obs_id("sub-01", "T1w") == "sub-01_T1w"
    assert generate_obs_id("sub-01", "T1w", 2) == "sub-01_T1w_acq-2"
    assert _rb.assign_obs_ids(["a", "a", "a"], "CT") == [
        "a_CT",
        generate_obs_id("a", "CT", 1),
        generate_obs_id("a", "CT", 2),
    ]
