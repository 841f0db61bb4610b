"""Writes cannot break a dataset or lose data: the dataset write lock (local disk and S3, real
concurrent processes), checks before anything is written, the manifest, duplicate content, Ctrl-C,
command-line messages, and DICOM files written by pydicom's plain ``save_as()``."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

import radiobject as ro
from radiobject.exceptions import AlignmentError, DatasetLockedError, RadiObjectError
from radiobject.ingest import from_images
from radiobject.verify import verify

BIN = Path(sys.executable).with_name("radiobject")
LOCK = ".radiobject-write.lock"


def write_nifti(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 2.0, 1.0])), path)
    return path


@pytest.fixture(scope="module")
def heavy(tmp_path_factory) -> Path:
    """36 noisy volumes: an ingest of them on one worker takes seconds, long enough to meet it."""
    src = tmp_path_factory.mktemp("heavy")
    rng = np.random.default_rng(0)
    for i in range(36):
        write_nifti(src / f"sub-{i:03d}.nii.gz", rng.integers(-1000, 3000, (96, 96, 48), dtype=np.int16))
    return src


@pytest.fixture
def small(tmp_path) -> Path:
    src = tmp_path / "small"
    src.mkdir()
    for i, sid in enumerate(["s1", "s2", "s3"]):
        write_nifti(src / f"{sid}.nii.gz", np.full((6, 5, 4), i + 1, np.int16))
    return src


def ingest_cmd(uri: Path | str, src: Path | str, *extra: str, name: str = "T1w") -> list[str]:
    return [str(BIN), "ingest", str(uri), "--images", f"{name}={src}", "--no-progress", *extra]


def wait_for(cond, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended ({proc.returncode}) before the condition held")
        time.sleep(0.01)
    raise AssertionError("timed out")


def finished_volumes(uri: Path, name: str = "T1w") -> int:
    vols = uri / "collections" / name / "volumes"
    if not vols.exists():
        return 0
    return sum(
        1 for v in vols.iterdir() if v.name.isdigit() and (v / "__meta").is_dir() and any((v / "__meta").iterdir())
    )


# ---------------------------------------------------------------------------------------------
# The write lock: real concurrent processes
# ---------------------------------------------------------------------------------------------


def test_a_second_writer_is_refused_or_waits_and_nothing_is_lost(tmp_path, heavy, small):
    uri = tmp_path / "ds"
    first = subprocess.Popen(
        ingest_cmd(uri, heavy, "-j", "1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: (uri / LOCK).exists(), proc=first)
        # fail fast: names the owner, its age and the cure; writes nothing
        refused = subprocess.run(ingest_cmd(uri, small, name="FLAIR"), capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2, refused.stderr
        assert f"is being written by ingest (pid {first.pid} on " in refused.stderr, refused.stderr
        assert "ago" in refused.stderr and f"radiobject unlock {uri}" in refused.stderr
        # the Python front: a typed error, nothing written
        with pytest.raises(DatasetLockedError, match=f"ingest \\(pid {first.pid}"):
            from_images(str(uri), {"FLAIR": str(small)})
        assert not (uri / "collections" / "FLAIR").exists()
    except BaseException:
        first.kill()
        raise
    # a waiting writer runs once the first is done; both keep everything
    waiter = subprocess.run(
        ingest_cmd(uri, small, "--wait-lock", "300", name="FLAIR"), capture_output=True, text=True, timeout=400
    )
    _out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert waiter.returncode == 0, waiter.stderr
    radi = ro.RadiObject(str(uri))
    assert len(radi.collection("T1w")) == 36 and len(radi.collection("FLAIR")) == 3
    assert verify(str(uri), deep=True).ok
    assert not (uri / LOCK).exists()


def test_two_ingests_at_once_into_one_dataset_both_complete(tmp_path, heavy):
    """Today one run deleted the other's volumes; now they take turns."""
    uri = tmp_path / "ds"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for i, p in enumerate(sorted(heavy.iterdir())[:16]):
        shutil.copy(p, (a if i % 2 else b) / p.name)
    procs = [
        subprocess.Popen(ingest_cmd(uri, src, "-j", "1", "--wait-lock", "300"), stderr=subprocess.PIPE, text=True)
        for src in (a, b)
    ]
    errs = [p.communicate(timeout=400)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    t1 = ro.RadiObject(str(uri)).collection("T1w")
    assert sorted(t1.obs_ids) == sorted(f"{p.name.split('.')[0]}_T1w" for p in list(a.iterdir()) + list(b.iterdir()))
    assert verify(str(uri), deep=True).ok


def test_the_dataset_writer_is_refused_while_an_ingest_runs(tmp_path, heavy, small):
    uri = tmp_path / "ds"
    from_images(str(uri), {"T1w": str(small)})
    radi = ro.RadiObject(str(uri))
    ext = str(tmp_path / "ext")
    from radiobject.writers import VolumeCollectionWriter

    with VolumeCollectionWriter(ext, name="T2w") as w:
        w.write_volume(np.ones((6, 5, 4), np.float32), "s1_T2w", "s1")
    busy = subprocess.Popen(ingest_cmd(uri, heavy, "-j", "1", name="CT"), stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (uri / LOCK).exists(), proc=busy)
        # the dataset writer (Python's RadiObjectWriter) is refused before it writes anything
        with pytest.raises(RadiObjectError, match=f"is being written by ingest \\(pid {busy.pid}"):
            radi.add_collection("T2w", ext)
        with pytest.raises(DatasetLockedError, match=f"is being written by ingest \\(pid {busy.pid}"):
            radi.append(images={"FLAIR": str(small)})
        assert not (uri / "collections" / "T2w").exists()
    finally:
        busy.communicate(timeout=300)
    assert busy.returncode == 0
    assert verify(str(uri)).ok


def test_a_killed_writers_lock_is_broken_with_a_warning_and_the_rerun_finishes(tmp_path, heavy):
    uri = tmp_path / "ds"
    cmd = ingest_cmd(uri, heavy, "-j", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: finished_volumes(uri) >= 2, proc=proc, timeout=120)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    owner = json.loads((uri / LOCK).read_text())
    assert owner["pid"] == proc.pid and owner["operation"] == "ingest"
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr
    assert f"broke the stale write lock of ingest (pid {proc.pid}" in rerun.stderr
    assert len(ro.RadiObject(str(uri)).collection("T1w")) == 36
    assert not (uri / LOCK).exists()


def test_a_foreign_hosts_lock_is_refused_until_unlocked(tmp_path, small):
    uri = tmp_path / "ds"
    from_images(str(uri), {"T1w": str(small)})
    started = int(time.time() * 1000) - 2 * 3600 * 1000
    (uri / LOCK).write_text(
        json.dumps({"host": "gpu-node-7", "pid": 4242, "operation": "ingest", "started_unix_ms": started, "token": "t"})
    )
    refused = subprocess.run(ingest_cmd(uri, small, name="seg"), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "ingest (pid 4242 on gpu-node-7) (lock taken 2h00m ago)" in refused.stderr, refused.stderr
    unlocked = subprocess.run([str(BIN), "unlock", str(uri)], capture_output=True, text=True, timeout=60)
    assert unlocked.returncode == 0 and "removed the write lock of ingest (pid 4242 on gpu-node-7)" in unlocked.stdout
    ok = subprocess.run(ingest_cmd(uri, small, name="seg"), capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ro.RadiObject(str(uri)).collection_names.count("seg") == 1


def test_appending_to_a_datasets_collection_directly_takes_the_lock_and_sees_other_appends(tmp_path, small):
    """VolumeCollection.append on a collection of a dataset (not through RadiObject.append) takes the
    dataset's write lock, and appends after what another process appended meanwhile instead of
    reusing its slots."""
    uri = tmp_path / "ds"
    from_images(str(uri), {"T1w": str(small)})
    vc = ro.RadiObject(str(uri)).collection("T1w")  # a handle from before the other append
    vol = np.full((6, 5, 4), 7, np.int16)
    started = int(time.time() * 1000)
    (uri / LOCK).write_text(
        json.dumps({"host": "gpu-node-7", "pid": 4242, "operation": "ingest", "started_unix_ms": started, "token": "t"})
    )
    with pytest.raises(DatasetLockedError, match="gpu-node-7"):
        vc.append([(vol, "s9_T1w", "s9")])
    (uri / LOCK).unlink()
    assert len(ro.RadiObject(str(uri)).collection("T1w")) == 3
    other = textwrap.dedent(
        f"""
        import numpy as np, radiobject as ro
        vc = ro.RadiObject({str(uri)!r}).collection("T1w")
        vc.append([(np.full((6, 5, 4), 8, np.int16), "s8_T1w", "s8")])
        """
    )
    done = subprocess.run([sys.executable, "-c", other], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    vc.append([(vol, "s9_T1w", "s9")])  # the stale handle appends after s8, not over it
    fresh = ro.RadiObject(str(uri)).collection("T1w")
    assert len(fresh) == 5 and sorted(fresh.obs_ids)[-2:] == ["s8_T1w", "s9_T1w"]
    assert int(fresh.loc["s8_T1w"][:].max()) == 8 and int(fresh.loc["s9_T1w"][:].max()) == 7
    assert not (uri / LOCK).exists()


S3_INGEST = """
import json, sys
import radiobject as ro
from radiobject.ingest import from_images
args = json.loads(sys.argv[1])
ctx = ro.Context(ro.RadiObjectConfig(s3=ro.S3Config(endpoint=args["endpoint"], use_virtual_addressing=False, region="us-east-1")))
from_images(args["uri"], {"T1w": args["images"]}, ctx=ctx, lock_timeout=300, max_workers=1)
"""


def test_s3_lock_is_a_conditional_put_and_concurrent_writers_take_turns(tmp_path, s3_endpoint, s3_ctx, s3_uri, small):
    import boto3

    uri = s3_uri("ds")
    bucket, key = uri[len("s3://") :].split("/", 1)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    # a lock object already there: the conditional put fails, the writer is refused
    s3.put_object(
        Bucket=bucket,
        Key=f"{key}/{LOCK}",
        Body=json.dumps({"host": "other-host", "pid": 7, "operation": "write", "started_unix_ms": 0, "token": "x"}),
    )
    with pytest.raises(DatasetLockedError, match="write \\(pid 7 on other-host\\)"):
        from_images(uri, {"T1w": str(small)}, ctx=s3_ctx)
    assert s3.get_object(Bucket=bucket, Key=f"{key}/{LOCK}")["Body"].read().startswith(b'{"host": "other-host"')
    unlocked = subprocess.run(
        [str(BIN), "unlock", uri, "--s3-endpoint", s3_endpoint], capture_output=True, text=True, timeout=60
    )
    assert unlocked.returncode == 0, unlocked.stderr
    # two processes at once, each with its own subjects
    halves = []
    for k, names in enumerate([["s1", "s2"], ["s3"]]):
        d = tmp_path / f"half{k}"
        d.mkdir()
        for n in names:
            shutil.copy(small / f"{n}.nii.gz", d)
        halves.append(d)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", S3_INGEST, json.dumps({"endpoint": s3_endpoint, "uri": uri, "images": str(d)})],
            stderr=subprocess.PIPE,
            text=True,
        )
        for d in halves
    ]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    radi = ro.RadiObject(uri, ctx=s3_ctx)
    assert sorted(radi.collection("T1w").obs_ids) == ["s1_T1w", "s2_T1w", "s3_T1w"]
    assert verify(uri, ctx=s3_ctx).ok
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=f"{key}/{LOCK}")


# ---------------------------------------------------------------------------------------------
# Checked before anything is written
# ---------------------------------------------------------------------------------------------


def test_duplicate_obs_meta_rows_are_refused_before_anything_is_registered(tmp_path, small):
    uri = tmp_path / "ds"
    dup = pd.DataFrame({"obs_subject_id": ["s1", "s2", "s2", "s3"], "age": [1, 2, 3, 4]})
    with pytest.raises(AlignmentError, match='"s2" twice'):
        from_images(str(uri), {"T1w": str(small)}, obs_meta=dup)
    assert not uri.exists()
    with pytest.raises(RadiObjectError, match="obs_subject_id"):
        from_images(str(uri), {"T1w": str(small)}, obs_meta=pd.DataFrame({"age": [1, 2, 3]}))
    assert not uri.exists()
    # into an existing dataset: refused, the dataset still verifies
    from_images(str(uri), {"T1w": str(small)}, obs_meta=dup.drop_duplicates("obs_subject_id"))
    with pytest.raises(AlignmentError, match="twice"):
        from_images(str(uri), {"seg": str(small)}, obs_meta=dup)
    assert verify(str(uri)).ok
    assert list(ro.RadiObject(str(uri)).collection_names) == ["T1w"]


def test_a_source_given_twice_is_refused_before_anything_is_written(tmp_path, small):
    uri = tmp_path / "ds"
    p = str(small / "s1.nii.gz")
    with pytest.raises(AlignmentError, match="given twice"):
        from_images(str(uri), {"T1w": [(p, "s1"), (p, "s1")]})
    assert not uri.exists()


# ---------------------------------------------------------------------------------------------
# The same content again
# ---------------------------------------------------------------------------------------------


def test_a_moved_folder_is_not_stored_again_unless_allowed(tmp_path, small):
    uri = tmp_path / "ds"
    from_images(str(uri), {"T1w": str(small)})
    moved = tmp_path / "moved"
    shutil.move(str(small), moved)
    radi = from_images(str(uri), {"T1w": str(moved)})
    report = radi.ingest_report
    assert report["written"] == 0 and report["duplicates"] == 3
    assert any("same content" in w and "s1_T1w" in w for w in report["warnings"]), report["warnings"]
    assert radi.collection("T1w").obs_ids == ["s1_T1w", "s2_T1w", "s3_T1w"]
    cli = subprocess.run(ingest_cmd(uri, moved), capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "3 skipped: content already in the dataset" in cli.stderr, cli.stderr
    allowed = subprocess.run(
        ingest_cmd(uri, moved, "--allow-duplicate-content"), capture_output=True, text=True, timeout=60
    )
    assert allowed.returncode == 0, allowed.stderr
    assert len(ro.RadiObject(str(uri)).collection("T1w")) == 6
    again = from_images(str(uri), {"T1w": str(moved)}, allow_duplicate_content=True)
    assert again.ingest_report["duplicates"] == 0


# ---------------------------------------------------------------------------------------------
# Ctrl-C and the command line's output
# ---------------------------------------------------------------------------------------------


def test_ctrl_c_stops_the_cli_cleanly_with_130_and_a_rerun_resumes(tmp_path, heavy):
    uri = tmp_path / "ds"
    cmd = ingest_cmd(uri, heavy, "-j", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: finished_volumes(uri) >= 2, proc=proc, timeout=120)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    m = re.search(r"interrupted: (\d+) of 36 sources ingested; rerun to resume", err)
    assert m, err
    kept = int(m.group(1))
    assert 2 <= kept < 36 and "error:" not in err
    assert not (uri / LOCK).exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr
    assert f"({kept} already done by an earlier run" in rerun.stderr
    assert verify(str(uri), deep=True).ok


def run_in_pty(cmd: list[str], timeout: float = 120) -> tuple[int, str]:
    """Runs ``cmd`` with a terminal as stdout/stderr (progress bars draw only on a terminal)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), b"".join(chunks).decode(errors="replace")


def test_progress_bars_count_up_and_verify_deep_shows_progress(tmp_path, small):
    uri = tmp_path / "ds"
    code, out = run_in_pty([str(BIN), "ingest", str(uri), "--images", f"T1w={small}", "-j", "2"])
    assert code == 0, out
    counts = [tuple(map(int, m)) for m in re.findall(r"(\d+)/(\d+) volumes", out)]
    assert counts and all(total == 3 for _, total in counts), out
    assert [d for d, _ in counts] == sorted(d for d, _ in counts), out
    assert "0/0" not in out and "Some(" not in out and "None" not in out
    code, out = run_in_pty([str(BIN), "verify", "--deep", str(uri)])
    assert code == 0 and "OK: no problem found" in out, out
    assert re.search(r"verify \[.*\] 3/3 volumes", out), out
    # nothing to do: no bar at all (not an empty 0/0 one)
    code, out = run_in_pty([str(BIN), "ingest", str(uri), "--images", f"T1w={small}"])
    assert code == 0 and "volumes" not in out.split("ingested")[0], out


# ---------------------------------------------------------------------------------------------
# DICOM written by pydicom's plain save_as()
# ---------------------------------------------------------------------------------------------


def test_dicom_without_group_length_from_pydicom_save_as(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    series = tmp_path / "ct" / "sub-01"
    series.mkdir(parents=True)
    rng = np.random.default_rng(1)
    slices = [rng.integers(-1000, 2000, (6, 5), dtype=np.int16) for _ in range(3)]
    for z, px in enumerate(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.preamble = b"\0" * 128
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.Rows, ds.Columns = px.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], 2.0
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 2.0 * z], [1, 0, 0, 0, 1, 0]
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = px.tobytes()
        ds.save_as(series / f"{z}.dcm")  # plain: no (0002,0000) group length
    raw = (series / "0.dcm").read_bytes()
    assert raw[128:132] == b"DICM" and raw[132:136] != b"\x02\x00\x00\x00", "pydicom wrote a group length"
    ref = pydicom.dcmread(series / "0.dcm")
    np.testing.assert_array_equal(ref.pixel_array, slices[0])
    radi = from_images(str(tmp_path / "ds"), {"CT": str(tmp_path / "ct")}, format_hint="dicom")
    vol = radi.collection("CT").iloc[0].to_numpy()
    assert vol.shape == (5, 6, 3)
    for z, px in enumerate(slices):
        np.testing.assert_array_equal(vol[:, :, z], px.T)
