"""Names that could break a dataset are refused before anything is written (issue #9, part 3):
collection names with path separators, '.', '..', TileDB's reserved '__' prefix or nothing at all,
and empty subject ids. The dataset that was there stays intact and verifiable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import radiobject as ro
from radiobject.ingest import from_images
from radiobject.verify import verify

BIN = Path(sys.executable).with_name("radiobject")


def _nifti(path: Path, seed: int) -> Path:
    data = np.random.default_rng(seed).integers(0, 1000, size=(12, 10, 8)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


@pytest.fixture
def dataset(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, sid in enumerate(["sub-01", "sub-02"]):
        _nifti(src / f"{sid}.nii.gz", i)
    uri = str(tmp_path / "ds")
    from_images(uri, images={"T1w": str(src / "*.nii.gz")})
    return uri, src


def _snapshot(root: str) -> set[str]:
    return {str(p.relative_to(root)) for p in Path(root).rglob("*")}


def _still_sound(uri: str, before: set[str]) -> None:
    assert _snapshot(uri) == before, "nothing may be written"
    radi = ro.RadiObject(uri)
    assert list(radi.collection_names) == ["T1w"]
    assert radi.collection("T1w").obs_ids == ["sub-01_T1w", "sub-02_T1w"]
    verify(uri)


@pytest.mark.parametrize("name", ["__meta", "__x", "", ".", "..", "../../escape", "a/b", "a\\b", ".hidden"])
def test_bad_collection_names_are_refused_before_any_write(dataset, tmp_path, name):
    uri, src = dataset
    before = _snapshot(uri)
    with pytest.raises(ro.InvalidArgumentError, match="collection name"):
        from_images(uri, images={name: str(src / "*.nii.gz")})
    _still_sound(uri, before)
    assert not (tmp_path / "escape").exists()


def test_cli_refuses_a_reserved_collection_name(dataset):
    uri, src = dataset
    before = _snapshot(uri)
    proc = subprocess.run(
        [str(BIN), "ingest", uri, "-i", f"__meta={src}/*.nii.gz"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert "collection name" in (proc.stderr + proc.stdout)
    _still_sound(uri, before)


def test_empty_subject_ids_are_refused_before_any_write(dataset, tmp_path):
    uri, _src = dataset
    before = _snapshot(uri)
    extra = _nifti(tmp_path / "extra.nii.gz", 7)
    for sid in ["", "   ", "a\0b"]:
        with pytest.raises(ro.InvalidArgumentError, match="subject id"):
            from_images(uri, images={"T1w": [(str(extra), sid)]})
        _still_sound(uri, before)
