"""Arguments of the wrong type or sign get a clear, typed error instead of a confusing one or a
silent truncation (issue #9)."""

from __future__ import annotations

import numpy as np
import pytest

import radiobject as ro
from radiobject import Volume


@pytest.fixture
def vol(tmp_uri):
    return Volume.from_numpy(tmp_uri(), np.arange(8 * 6 * 4, dtype=np.int16).reshape(8, 6, 4))


def test_volume_of_none_is_a_type_error():
    with pytest.raises(TypeError, match="uri must be a str"):
        Volume(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("call", [lambda v: v.axial(1.5), lambda v: v.sagittal(np.float64(2.0)), lambda v: v.coronal("1"),
                                  lambda v: v.read([(0, 2.5), (0, 6), (0, 4)]), lambda v: v.axial(1, t=0.5)])  # fmt: skip
def test_float_and_string_indices_are_type_errors_not_truncated(vol, call):
    with pytest.raises(TypeError, match="must be an integer"):
        call(vol)


def test_negative_region_bounds_are_region_errors(vol):
    with pytest.raises(ro.RegionError, match="negative bound"):
        vol.read([(-1, 2), (0, 6), (0, 4)])
    with pytest.raises(ro.RegionError):
        vol.write(np.zeros((2, 6, 4), np.int16), [(-2, 0), (0, 6), (0, 4)])


def test_integer_indices_of_every_kind_still_work(vol):
    data = np.arange(8 * 6 * 4, dtype=np.int16).reshape(8, 6, 4)
    np.testing.assert_array_equal(vol.axial(np.int64(2)), data[:, :, 2])
    np.testing.assert_array_equal(vol.read([(np.int32(1), 3), (0, 6), (0, 4)]), data[1:3])
    np.testing.assert_array_equal(vol.sagittal(-1), data[-1])


def _python(code: str, timeout: float = 120):
    import subprocess
    import sys
    import textwrap

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )


def test_reads_larger_than_memory_raise_memory_errors_and_the_process_lives_on(tmp_path):
    """A region whose output cannot be allocated, and to_numpy() of a volume larger than memory,
    used to abort the process ('memory allocation of ... bytes failed'); they are MemoryErrors
    (OutOfMemoryError) raised before anything is read, and regions past the shape RegionErrors.
    Runs in a subprocess: an abort would kill the test run."""
    out = _python(
        f"""
        import numpy as np, radiobject as ro
        v = ro.Volume.create({str(tmp_path / "huge")!r}, shape=(200_000, 200_000, 2_000), dtype=np.uint8)
        for what, call in [("to_numpy", v.to_numpy), ("slice", lambda: v[:, :, 0]), ("region", lambda: v.read([(0, 200_000)] * 2 + [(0, 2_000)]))]:
            try:
                call()
                print(what, "RETURNED")
            except ro.OutOfMemoryError as e:
                assert isinstance(e, MemoryError) and "cannot allocate" in str(e), e
                print(what, "MemoryError")
        small = ro.Volume.from_numpy({str(tmp_path / "small")!r}, np.zeros((8, 6, 4), np.int16))
        try:
            small.read([(0, 10**6)] * 3)
        except ro.RegionError as e:
            print("out-of-bounds", "RegionError")
        print("ALIVE", int(small[:].sum()))
        """
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split("\n")
    assert "to_numpy MemoryError" in lines and "slice MemoryError" in lines and "region MemoryError" in lines, (
        out.stdout
    )
    assert "out-of-bounds RegionError" in lines and "ALIVE 0" in lines


def test_a_handle_opened_before_another_process_appends_is_a_consistent_snapshot(tmp_path):
    """Another process appends a subject while this one holds the dataset open: the handle keeps
    showing the dataset as of its open (consistent counts, rows and volumes); a lookup of the new
    subject says why it is missing and the cure; a new handle sees the append."""
    import subprocess
    import sys

    import nibabel as nib
    import pandas as pd

    from radiobject.ingest import from_images

    for sid, value in [("a", 1), ("b", 2)]:
        nib.save(nib.Nifti1Image(np.full((6, 5, 4), value, np.int16), np.eye(4)), tmp_path / f"{sid}.nii.gz")
    (tmp_path / "new").mkdir()
    nib.save(nib.Nifti1Image(np.full((6, 5, 4), 3, np.int16), np.eye(4)), tmp_path / "new" / "c.nii.gz")
    uri = str(tmp_path / "ds")
    from_images(uri, {"T1w": str(tmp_path / "*.nii.gz")})
    radi = ro.RadiObject(uri)
    before = (len(radi.T1w), radi.T1w.obs.shape[0], radi.obs_meta.shape[0])
    code = (
        "import pandas as pd, radiobject as ro\n"
        "from radiobject.ingest import append_images\n"
        f"append_images(ro.RadiObject({uri!r}), {{'T1w': {str(tmp_path / 'new' / 'c.nii.gz')!r}}},"
        " obs_meta=pd.DataFrame({'obs_subject_id': ['c']}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (len(radi.T1w), radi.T1w.obs.shape[0], radi.obs_meta.shape[0]) == before == (2, 2, 2)
    assert sorted(int(radi.T1w.iloc[i][:].max()) for i in range(len(radi.T1w))) == [1, 2]
    with pytest.raises(KeyError, match="open it again to see later writes"):
        radi.loc["c"]
    fresh = ro.RadiObject(uri)
    assert len(fresh.T1w) == 3 and int(fresh.loc["c"].T1w.iloc[0][:].max()) == 3
    assert isinstance(pd.DataFrame(fresh.obs_meta), pd.DataFrame)


def test_every_exception_class_is_exported_from_the_package_too():
    import radiobject.exceptions as exc

    for name in exc.__all__:
        assert name in ro.__all__ and getattr(ro, name) is getattr(exc, name), name
    assert issubclass(ro.DatasetLockedError, ro.StorageError)
