"""Ingest of real NIfTI/DICOM files: voxels, obs, scaling, resumability after SIGKILL, verify, CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

import radiobject as ro
from radiobject.ingest import discover_sources, from_images
from radiobject.verify import VerificationError, verify

SITE = Path(nib.__file__).resolve().parents[1]
NIBABEL_DATA = SITE / "nibabel" / "tests" / "data"
NILEARN_DATA = SITE / "nilearn" / "datasets" / "data"
PYDICOM_DATA = SITE / "pydicom" / "data" / "test_files"
BIN = Path(sys.executable).with_name("radiobject")


def write_nifti(path: Path, data: np.ndarray, slope: float | None = None, inter: float | None = None) -> Path:
    img = nib.Nifti1Image(data, np.diag([1.5, 1.5, 2.0, 1.0]))
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    nib.save(img, path)
    return path


@pytest.fixture
def nifti_dir(tmp_path, make_phantom):
    d = tmp_path / "t1"
    d.mkdir()
    for i, sid in enumerate(["sub-03", "sub-01", "sub-02"]):  # unsorted on purpose
        write_nifti(d / f"{sid}.nii.gz", make_phantom((20, 18, 12), np.int16, seed=i))
    return d


def test_from_images_nifti_and_dicom_with_obs_meta(tmp_path, nifti_dir):
    dicom = tmp_path / "ct"
    shutil.copytree(PYDICOM_DATA / "dicomdirtests" / "77654033" / "CT2", dicom / "sub-01")
    obs_meta = pd.DataFrame(
        {"participant_id": ["sub-01", "sub-02", "sub-03"], "age": [34, None, 51], "site": ["Zürich", "Bern", None]}
    )
    uri = str(tmp_path / "ds")
    radi = from_images(uri, images={"T1w": str(nifti_dir / "*.nii.gz"), "CT": str(dicom)}, obs_meta=obs_meta)
    assert set(radi.collection_names) == {"T1w", "CT"}
    assert list(radi.obs_subject_ids) == ["sub-01", "sub-02", "sub-03"]
    t1 = radi.collection("T1w")
    assert t1.obs_ids == ["sub-01_T1w", "sub-02_T1w", "sub-03_T1w"]
    for obs_id in t1.obs_ids:
        sid = obs_id.split("_")[0]
        src = nib.load(nifti_dir / f"{sid}.nii.gz")
        vol = t1.loc[obs_id]
        assert vol.dtype == np.int16, "unscaled int16 stays int16"
        np.testing.assert_array_equal(vol.to_numpy(), np.asarray(src.dataobj))
        assert vol.metadata["orientation_axcodes"] == "RAS"
        assert json.loads(vol.metadata["orientation_affine"]) == src.affine.tolist()
    obs = t1.obs
    assert list(obs.columns[:2]) == ["obs_subject_id", "obs_id"]
    for col in [
        "series_type",
        "voxel_spacing",
        "dimensions",
        "datatype",
        "bitpix",
        "scl_slope",
        "axcodes",
        "affine_json",
        "source_path",
    ]:
        assert col in obs.columns, col
    assert obs["voxel_spacing"].iloc[0] == "(1.5, 1.5, 2.0)" and obs["dimensions"].iloc[0] == "(20, 18, 12)"
    meta = radi.obs_meta.set_index("obs_subject_id")
    assert meta.loc["sub-01", "site"] == "Zürich" and pd.isna(meta.loc["sub-03", "site"])
    assert pd.isna(meta.loc["sub-02", "age"]) and meta.loc["sub-03", "age"] == 51
    assert json.loads(meta.loc["sub-01", "obs_ids"]) == ["sub-01_CT", "sub-01_T1w"]
    ct = radi.collection("CT").iloc[0]
    assert ct.metadata["orientation_source"] == "dicom_iop"
    assert radi.ingest_report["written"] == 4
    report = verify(uri, deep=True)
    assert report.ok, str(report)


def test_dicom_is_in_hounsfield_units(tmp_path):
    d = tmp_path / "ct" / "sub-ct"
    d.mkdir(parents=True)
    shutil.copy(PYDICOM_DATA / "CT_small.dcm", d / "slice.dcm")
    ds = pydicom.dcmread(PYDICOM_DATA / "CT_small.dcm")
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    radi = from_images(str(tmp_path / "ds"), images={"CT": str(tmp_path / "ct")})
    vol = radi.collection("CT").iloc[0]
    got = vol.to_numpy()
    assert got.shape == (ds.Columns, ds.Rows, 1)
    assert np.issubdtype(got.dtype, np.integer), "integral rescale keeps integers"
    np.testing.assert_array_equal(got[:, :, 0], expected.T)


@pytest.mark.parametrize(
    ("dtype", "slope", "inter", "want"),
    [(np.int16, None, None, np.int16), (np.uint16, 1.0, -1024.0, np.int16), (np.int16, 0.5, 0.0, np.float32)],
)
def test_nifti_scaling_rules(tmp_path, make_phantom, dtype, slope, inter, want):
    src = make_phantom((8, 8, 4), dtype)
    path = write_nifti(tmp_path / "s.nii.gz", src, slope, inter)
    vol = ro.Volume.from_nifti(str(tmp_path / "v"), str(path))
    assert vol.dtype == want
    np.testing.assert_allclose(vol.to_numpy(), nib.load(path).get_fdata(), rtol=0, atol=1e-6)


def test_reorientation_keeps_the_original_affine(tmp_path):
    path = NIBABEL_DATA / "example4d.nii.gz"  # LAS on disk
    vol = ro.Volume.from_nifti(str(tmp_path / "v"), str(path), reorient="RAS")
    info = vol.orientation_info
    assert info.axcodes == ("R", "A", "S") and info.is_canonical
    assert json.loads(vol.metadata["original_affine"]) == nib.load(path).affine.tolist()
    canon = nib.as_closest_canonical(nib.load(path))
    np.testing.assert_array_equal(vol.to_numpy(), np.asarray(canon.dataobj))


def test_store_original_affine_false_drops_it_on_every_write_path(tmp_path):
    """The context's write.orientation.store_original_affine decides, through one native rule,
    for Volume.from_nifti, ingest, from_niftis and append(niftis=)."""
    path = str(NIBABEL_DATA / "example4d.nii.gz")  # LAS on disk: reorienting records the original
    config = ro.get_radiobject_config()
    config.write.orientation.store_original_affine = False
    ctx = ro.Context(config)
    assert "original_affine" in ro.Volume.from_nifti(str(tmp_path / "kept"), path, reorient="RAS").metadata
    assert "original_affine" not in ro.Volume.from_nifti(str(tmp_path / "v"), path, ctx=ctx, reorient="RAS").metadata
    radi = from_images(str(tmp_path / "ds"), {"bold": [(path, "s1")]}, reorient="RAS", ctx=ctx)
    assert "original_affine" not in radi.bold.iloc[0].metadata
    vc = ro.VolumeCollection.from_niftis(str(tmp_path / "vc"), [(path, "s1")], reorient="RAS", ctx=ctx)
    vc.append(niftis=[(path, "s2")], reorient="RAS")
    assert all("original_affine" not in v.metadata for v in vc)
    assert vc.iloc[0].orientation_info.axcodes == ("R", "A", "S")


def test_discovery_and_bad_sources(tmp_path, nifti_dir):
    fmt, sources = discover_sources(str(nifti_dir))
    assert fmt.value == "nifti" and [s for _, s in sources] == ["sub-01", "sub-02", "sub-03"]
    with pytest.raises(ro.NotFoundError):
        discover_sources(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ro.IngestError):
        discover_sources(str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "sub-x.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(ro.RadiObjectError, match="sub-x"):
        from_images(str(tmp_path / "ds"), images={"T1w": str(bad)})
    obs_meta = pd.DataFrame({"obs_subject_id": ["sub-01"]})
    with pytest.raises(ro.AlignmentError, match="sub-02"):
        from_images(str(tmp_path / "ds2"), images={"T1w": str(nifti_dir)}, obs_meta=obs_meta)


def _fragments(uri: Path) -> dict[str, list[str]]:
    out = {}
    for v in sorted((uri / "collections" / "T1w" / "volumes").iterdir()):
        if not v.name.isdigit():
            continue
        frags = v / "__fragments"
        out[v.name] = sorted(os.listdir(frags)) if frags.exists() else []
    return out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_then_rerun_finishes_every_volume_exactly_once(tmp_path, make_phantom):
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(0)
    n = 36
    for i in range(n):  # noisy volumes so each one takes a moment to compress
        write_nifti(src / f"sub-{i:03d}.nii.gz", rng.integers(-1000, 3000, (96, 96, 48), dtype=np.int16))
    uri = tmp_path / "ds"
    cmd = [str(BIN), "ingest", str(uri), "--images", f"T1w={src}", "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    volumes = uri / "collections" / "T1w" / "volumes"

    def finished_volumes() -> set[str]:
        # a volume's metadata (its ingest_record among it) is committed when its array is closed,
        # after its voxels: a volume with metadata is finished
        if not volumes.exists():
            return set()
        return {
            v.name
            for v in volumes.iterdir()
            if v.name.isdigit() and (v / "__meta").is_dir() and any((v / "__meta").iterdir())
        }

    def committed() -> int:
        return len(finished_volumes())

    deadline = time.time() + 120
    while time.time() < deadline:
        if committed() >= 6:
            break
        assert proc.poll() is None, "ingest finished before it could be killed; make the inputs bigger"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = finished_volumes()
    done_before = len(done)
    assert 6 <= done_before < n, done_before
    assert done == {str(i) for i in range(done_before)}  # one worker: positions in order
    before = _fragments(uri)
    finished = {k: v for k, v in before.items() if k in done}
    # nothing is registered yet: the interrupted collection is not even listed
    partial = ro.RadiObject(str(uri))
    assert "T1w" not in partial.collection_names and len(partial) == 0
    # ... and verify refuses it: the finished volumes are on disk but not registered
    report = verify(str(uri))
    assert not report.ok
    assert any(
        "volume directories not registered" in str(p) or "volume directory not registered" in str(p)
        for p in report.problems
    ), report
    # run again: finishes, skips what was done, rewrites nothing finished
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{done_before} already done by an earlier run" in rerun.stderr
    after = _fragments(uri)
    for k, frags in finished.items():
        assert after[k] == frags, f"volume {k} was rewritten"
    radi = ro.RadiObject(str(uri))
    t1 = radi.collection("T1w")
    assert len(t1) == n and len(set(t1.obs_ids)) == n
    assert t1.obs_ids == [f"sub-{i:03d}_T1w" for i in range(n)]
    for i in (0, done_before - 1, done_before, n - 1):
        np.testing.assert_array_equal(t1.iloc[i].to_numpy(), np.asarray(nib.load(src / f"sub-{i:03d}.nii.gz").dataobj))
    assert verify(str(uri), deep=True).ok
    # the manifest lists every source once: the killed run's finished volumes were recovered from
    # their ingest_record
    info = json.loads(subprocess.run([str(BIN), "info", str(uri), "--json"], capture_output=True, text=True).stdout)
    assert info["manifest_sources"] == n
    # a third run has nothing to do
    third = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert third.returncode == 0 and "ingested 0 volume(s)" in third.stderr
    assert len(ro.RadiObject(str(uri)).collection("T1w")) == n


@pytest.mark.slow
def test_cli_verify_reports_damage_and_info(tmp_path, nifti_dir):
    uri = tmp_path / "ds"
    ok = subprocess.run(
        [str(BIN), "ingest", str(uri), "-i", f"T1w={nifti_dir}", "--no-progress"], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "OK: no problem found" in ok.stdout
    info = json.loads(subprocess.run([str(BIN), "info", str(uri), "--json"], capture_output=True, text=True).stdout)
    assert info["subjects"] == 3 and info["collections"][0]["volumes"] == 3 and info["manifest_sources"] == 3
    # damage: overwrite one volume's voxels behind the dataset's back, remove another volume
    import tiledb

    with tiledb.open(str(uri / "collections" / "T1w" / "volumes" / "1"), "w") as A:
        A[0:2, 0:2, 0:2] = np.full((2, 2, 2), 7, np.int16)
    fast = subprocess.run([str(BIN), "verify", str(uri)], capture_output=True, text=True)
    assert fast.returncode == 0, "a fast verify does not read voxels"
    deep = subprocess.run([str(BIN), "verify", "--deep", str(uri)], capture_output=True, text=True)
    assert deep.returncode == 1 and "voxels changed" in deep.stdout
    shutil.rmtree(uri / "collections" / "T1w" / "volumes" / "2")
    broken = subprocess.run([sys.executable, "-m", "radiobject", "verify", str(uri)], capture_output=True, text=True)
    assert broken.returncode == 1
    assert "sub-03_T1w" in broken.stdout and "does not open" in broken.stdout
    with pytest.raises(VerificationError):
        verify(str(uri)).raise_for_problems()
    missing = subprocess.run([str(BIN), "verify", str(tmp_path / "nope")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no RadiObject at" in missing.stderr


def test_cli_help_is_followable():
    out = subprocess.run([str(BIN), "ingest", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for word in ["--images", "NAME=SOURCE", "--obs-meta", "--reorient", "resumable"]:
        assert word in out.stdout
    mod = subprocess.run([sys.executable, "-m", "radiobject", "--help"], capture_output=True, text=True)
    assert mod.returncode == 0 and "ingest" in mod.stdout and "verify" in mod.stdout


def test_the_reference_reads_an_ingested_dataset(tmp_path, nifti_dir, peer):
    uri = str(tmp_path / "ds")
    from_images(
        uri,
        images={"T1w": str(nifti_dir), "mask": [(str(p), p.name.split(".")[0]) for p in sorted(nifti_dir.iterdir())]},
    )
    res = peer(
        """
from radiobject import RadiObject
r = RadiObject(args["uri"])
out = {}
for name in r.collection_names:
    vc = r.collection(name)
    out[name] = {i: float(vc.loc[i].to_numpy().astype("float64").sum()) for i in vc.obs_ids}
result = {"n": len(r), "colls": out}
""",
        uri=uri,
    )
    assert res["n"] == 3
    for name in ("T1w", "mask"):
        for obs_id, total in res["colls"][name].items():
            sid = obs_id.split("_")[0]
            assert total == float(np.asarray(nib.load(nifti_dir / f"{sid}.nii.gz").dataobj).astype(np.float64).sum())


def test_obs_meta_given_again_updates_rows_and_keeps_the_other_columns(tmp_path, nifti_dir):
    """A later ingest's obs_meta upserts (the rule of Dataframe.update): the columns it has replace
    the stored values of its subjects, the columns it lacks keep theirs, new subjects are added."""
    uri = str(tmp_path / "ds")
    images = sorted(Path(nifti_dir).glob("*.nii.gz"))
    sids = [p.name[: -len(".nii.gz")] for p in images]
    first = pd.DataFrame({"obs_subject_id": sids, "age": [40 + i for i in range(len(sids))], "site": "A"})
    from_images(uri, {"T1w": [(str(p), s) for p, s in zip(images, sids)]}, obs_meta=first)
    again = pd.DataFrame({"obs_subject_id": sids[:1], "site": ["B"]})
    radi = from_images(uri, {"T1w": [(str(images[0]), sids[0])]}, obs_meta=again)
    meta = radi.obs_meta.set_index("obs_subject_id")
    assert meta.loc[sids[0], "site"] == "B" and meta.loc[sids[0], "age"] == 40
    assert meta.loc[sids[1], "site"] == "A" and meta.loc[sids[1], "age"] == 41
    radi.validate()
