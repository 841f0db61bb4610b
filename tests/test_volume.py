"""Volume: creation, reads (NumPy-style), writes, metadata, tiling, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

import radiobject as ro
from radiobject import (
    AlreadyExistsError,
    CompressionConfig,
    Compressor,
    DtypeError,
    NotFoundError,
    ObjectTypeError,
    RegionError,
    ShapeError,
    SliceOrientation,
    TileConfig,
    Volume,
    WriteConfig,
)

ALL_DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64, np.float32, np.float64]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape", [(12, 10, 8), (12, 10, 8, 3)])
def test_every_dtype_round_trips_3d_and_4d(tmp_uri, make_phantom, dtype, shape):
    data = make_phantom(shape, dtype)
    vol = Volume.from_numpy(tmp_uri(), data)
    assert vol.shape == shape and vol.ndim == len(shape) and vol.dtype == np.dtype(dtype)
    out = vol.to_numpy()
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, data)
    assert out.flags.f_contiguous, "reads come back in Fortran order, like nibabel"


def test_reopen_by_uri_reads_same_voxels_and_metadata(tmp_uri, make_phantom):
    data = make_phantom()
    Volume.from_numpy(tmp_uri(), data, metadata={"obs_id": "sub-01_T1w", "count": 3, "ratio": 0.5})
    vol = Volume(tmp_uri())
    np.testing.assert_array_equal(vol[:], data)
    assert vol.obs_id == "sub-01_T1w"
    assert vol.metadata == {"obs_id": "sub-01_T1w", "count": 3, "ratio": 0.5, "tile_orientation": "axial"}
    assert vol.tile_orientation is SliceOrientation.AXIAL
    assert "48x40x32" in repr(vol) and "sub-01_T1w" in repr(vol)


@pytest.mark.parametrize(
    "key",
    [
        (slice(10, 30), slice(5, 25), slice(3, 19)),
        (slice(None), slice(None), 7),
        (3, slice(None), slice(None)),
        (slice(None), -1, slice(2, -2)),
        (Ellipsis, 0),
        (slice(-10, None), Ellipsis),
        (slice(None, None, 2), slice(1, None, 3), slice(None)),
        (slice(None, None, -1), slice(None), 5),
        (slice(30, 10, -2), 4, slice(None)),
        (5, 6, 7),
        slice(2, 9),
    ],
)
def test_numpy_style_indexing_matches_numpy(tmp_uri, make_phantom, key):
    data = make_phantom()
    vol = Volume.from_numpy(tmp_uri(), data)
    np.testing.assert_array_equal(vol[key], data[key])


def test_slice_helpers_3d_and_4d(tmp_uri, make_phantom):
    d3 = make_phantom((20, 16, 12))
    v3 = Volume.from_numpy(tmp_uri("a"), d3)
    np.testing.assert_array_equal(v3.axial(5), d3[:, :, 5])
    np.testing.assert_array_equal(v3.sagittal(-1), d3[-1, :, :])
    np.testing.assert_array_equal(v3.coronal(3), d3[:, 3, :])
    np.testing.assert_array_equal(v3.slice(slice(1, 5), slice(None), slice(2, 4)), d3[1:5, :, 2:4])
    with pytest.raises(RegionError):
        v3.axial(0, t=0)
    d4 = make_phantom((20, 16, 12, 4))
    v4 = Volume.from_numpy(tmp_uri("b"), d4)
    np.testing.assert_array_equal(v4.axial(5), d4[:, :, 5, :])
    np.testing.assert_array_equal(v4.axial(5, t=2), d4[:, :, 5, 2])
    np.testing.assert_array_equal(v4.coronal(0, t=3), d4[:, 0, :, 3])
    np.testing.assert_array_equal(v4.slice(slice(0, 4), slice(1, 2), slice(None)), d4[0:4, 1:2, :, :])
    np.testing.assert_array_equal(v4.slice(slice(0, 4), slice(1, 2), slice(None), slice(1, 3)), d4[0:4, 1:2, :, 1:3])


def test_region_writes_and_setitem(tmp_uri, make_phantom):
    data = make_phantom()
    vol = Volume.from_numpy(tmp_uri(), data)
    vol[:]  # populate nothing (full reads bypass the cache) but read once
    patch = np.full((8, 6, 4), -7.0, np.float32)
    before = vol[10:18, 5:11, 2:6]
    vol[10:18, 5:11, 2:6] = patch
    expect = data.copy()
    expect[10:18, 5:11, 2:6] = patch
    np.testing.assert_array_equal(vol[10:18, 5:11, 2:6], patch)
    assert not np.array_equal(before, patch)
    vol[:, :, 0] = np.float32(1.5)  # broadcast a scalar over a plane
    expect[:, :, 0] = 1.5
    vol.write(expect[::-1].copy()[::-1], region=[(0, 48), (0, 40), (0, 32)])  # strided input
    np.testing.assert_array_equal(vol.to_numpy(), expect)
    full = make_phantom(seed=3)
    vol.write(full)
    np.testing.assert_array_equal(Volume(tmp_uri())[:], full)


def test_create_then_fill_fortran_and_strided_inputs(tmp_uri, make_phantom):
    data = make_phantom((10, 9, 8), np.int16)
    vol = Volume.create(tmp_uri("c"), (10, 9, 8), dtype=np.int16)
    assert vol.dtype == np.int16
    vol.write(np.asfortranarray(data))
    np.testing.assert_array_equal(vol[:], data)
    big = make_phantom((20, 9, 8), np.int16)
    strided = big[::2]
    assert not strided.flags.c_contiguous and not strided.flags.f_contiguous
    v2 = Volume.from_numpy(tmp_uri("s"), strided)
    np.testing.assert_array_equal(v2[:], strided)
    v3 = Volume.from_numpy(tmp_uri("t"), np.transpose(make_phantom((8, 9, 10), np.int16), (2, 1, 0)))
    assert v3.shape == (10, 9, 8)


@pytest.mark.parametrize(
    ("orientation", "shape", "extents"),
    [
        (SliceOrientation.AXIAL, (24, 20, 16), (24, 20, 1)),
        (SliceOrientation.SAGITTAL, (24, 20, 16), (1, 20, 16)),
        (SliceOrientation.CORONAL, (24, 20, 16), (24, 1, 16)),
        (SliceOrientation.ISOTROPIC, (100, 70, 30), (64, 64, 30)),
        (SliceOrientation.SAGITTAL, (10, 100, 30, 5), (1, 100, 30, 1)),
    ],
)
def test_tiling_follows_tile_config(tmp_uri, make_phantom, orientation, shape, extents):
    ro.configure(write=WriteConfig(tile=TileConfig(orientation=orientation)))
    data = make_phantom(shape)
    vol = Volume.from_numpy(tmp_uri(), data)
    assert vol.tile_extents == extents
    assert vol.tile_orientation is orientation
    np.testing.assert_array_equal(vol[:], data)


def test_explicit_tile_extents_and_compression(tmp_uri, make_phantom):
    write = WriteConfig(
        tile=TileConfig(orientation="isotropic", x=16, y=8, z=4),
        compression=CompressionConfig(algorithm=Compressor.LZ4, level=5),
    )
    data = make_phantom((40, 30, 20))
    vol = Volume.from_numpy(tmp_uri(), data, write=write)
    assert vol.tile_extents == (16, 8, 4)
    assert vol._native.filters == ["lz4(5)"]
    np.testing.assert_array_equal(vol[3:33, 1:29, 2:18], data[3:33, 1:29, 2:18])
    none = Volume.from_numpy(tmp_uri("raw"), data, write=WriteConfig(compression={"algorithm": "none"}))
    assert none._native.filters == []


def test_statistics_and_histogram(tmp_uri, make_phantom):
    data = make_phantom()
    vol = Volume.from_numpy(tmp_uri(), data)
    s = vol.get_statistics(percentiles=[5, 95])
    assert s["mean"] == pytest.approx(float(data.mean()), rel=1e-5)
    assert s["std"] == pytest.approx(float(data.std()), rel=1e-4)
    assert s["min"] == float(data.min()) and s["max"] == float(data.max())
    assert s["median"] == pytest.approx(float(np.median(data)))
    assert s["p95"] == pytest.approx(float(np.percentile(data, 95)))
    counts, edges = vol.compute_histogram(bins=32, value_range=(0, 200))
    c2, e2 = np.histogram(data, bins=32, range=(0, 200))
    np.testing.assert_array_equal(counts, c2)
    np.testing.assert_allclose(edges, e2)


def test_metadata_set_and_delete(tmp_uri, make_phantom):
    vol = Volume.from_numpy(tmp_uri(), make_phantom((4, 4, 4)))
    vol.set_obs_id("sub-02_seg")
    vol.set_metadata({"spacing": (1.0, 1.0, 2.5)}, series="T1w", n=4, flag=True)
    m = Volume(tmp_uri()).metadata
    assert m["obs_id"] == "sub-02_seg" and m["series"] == "T1w" and m["n"] == 4 and m["flag"] == 1
    assert m["spacing"] == (1.0, 1.0, 2.5)
    vol.delete_metadata("series", "n")
    assert "series" not in vol.metadata and "n" not in vol.metadata
    with pytest.raises(TypeError):
        vol.set_metadata(bad=object())


# ------------------------------------------------------------------ bad inputs


def test_missing_uri_and_group_uri(tmp_uri, tmp_path):
    with pytest.raises(NotFoundError) as e:
        Volume(tmp_uri("missing"))
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ro.RadiObjectError)
    assert "missing" in str(e.value)
    import tiledb

    tiledb.Group.create(str(tmp_path / "grp"))
    with pytest.raises(ObjectTypeError, match="group"):
        Volume(str(tmp_path / "grp"))


@pytest.mark.parametrize("shape", [(8, 8), (2, 2, 2, 2, 2), (8,)])
def test_2d_and_5d_shapes_write_nothing(tmp_uri, shape):
    with pytest.raises(ShapeError, match="3D"):
        Volume.from_numpy(tmp_uri(), np.zeros(shape, np.float32))
    with pytest.raises(ShapeError):
        Volume.create(tmp_uri(), shape)
    assert not ro.uri_exists(tmp_uri())


def test_zero_sized_axes_write_nothing(tmp_uri):
    with pytest.raises(ShapeError, match="size 0"):
        Volume.from_numpy(tmp_uri(), np.zeros((4, 0, 4), np.float32))
    with pytest.raises(ShapeError, match="size 0"):
        Volume.create(tmp_uri(), (4, 4, 0))
    assert not ro.uri_exists(tmp_uri())


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4, 4), np.complex64),
        np.zeros((4, 4, 4), bool),
        np.zeros((4, 4, 4), np.float16),
        np.array([[["a"]]]),
    ],
)
def test_unsupported_dtypes(tmp_uri, bad):
    with pytest.raises(DtypeError):
        Volume.from_numpy(tmp_uri(), bad)
    assert not ro.uri_exists(tmp_uri())


def test_existing_uri_is_never_overwritten(tmp_uri, make_phantom):
    data = make_phantom((6, 6, 6))
    Volume.from_numpy(tmp_uri(), data)
    with pytest.raises(AlreadyExistsError) as e:
        Volume.from_numpy(tmp_uri(), np.zeros((6, 6, 6), np.float32))
    assert isinstance(e.value, FileExistsError)
    with pytest.raises(AlreadyExistsError):
        Volume.create(tmp_uri(), (6, 6, 6))
    np.testing.assert_array_equal(Volume(tmp_uri())[:], data)


@pytest.mark.parametrize(
    "key",
    [
        (slice(0, 49), slice(None), slice(None)),
        (slice(None), slice(-41, None), slice(None)),
        (48, 0, 0),
        (-49, 0, 0),
        (slice(5, 5), 0, 0),
        (slice(6, 2), 0, 0),
        (0, 0, 0, 0),
    ],
)
def test_out_of_bounds_and_empty_regions(tmp_uri, make_phantom, key):
    vol = Volume.from_numpy(tmp_uri(), make_phantom())
    with pytest.raises(RegionError) as e:
        vol[key]
    assert isinstance(e.value, IndexError) and isinstance(e.value, ValueError)
    with pytest.raises(RegionError, match="out of bounds"):
        vol.read([(0, 10), (0, 10), (30, 33)])
    with pytest.raises(RegionError, match="empty"):
        vol.read([(0, 10), (4, 4), (0, 3)])


def test_wrong_dtype_or_shape_on_write_leaves_data_intact(tmp_uri, make_phantom):
    data = make_phantom()
    vol = Volume.from_numpy(tmp_uri(), data)
    with pytest.raises(DtypeError):
        vol.write(data.astype(np.float64))
    with pytest.raises(DtypeError):
        vol[0:2, 0:2, 0:2] = np.zeros((2, 2, 2), np.int32)
    with pytest.raises(ShapeError):
        vol.write(data[:-1])
    with pytest.raises(ShapeError):
        vol[0:2, 0:2, 0:2] = np.zeros((3, 2, 2), np.float32)
    with pytest.raises(TypeError):
        vol[::2, :, :] = np.zeros((24, 40, 32), np.float32)
    np.testing.assert_array_equal(Volume(tmp_uri())[:], data)


def test_unsupported_index_kinds(tmp_uri, make_phantom):
    vol = Volume.from_numpy(tmp_uri(), make_phantom((4, 4, 4)))
    for key in ([0, 1], None, "a", (0.5, 0, 0), np.array([True])):
        with pytest.raises((TypeError, IndexError)):
            vol[key]


def test_huge_regions_raise_instead_of_aborting(tmp_uri, make_phantom):
    """The region is checked before the output is allocated (this used to abort the interpreter
    with `memory allocation of 4000000000000000000 bytes failed`); run in a subprocess so that a
    regression fails the test instead of killing pytest."""
    import subprocess
    import sys
    import textwrap

    uri = tmp_uri("v")
    Volume.from_numpy(uri, make_phantom((16, 12, 8)))
    code = textwrap.dedent(f"""
        import radiobject as ro
        vol = ro.Volume({uri!r})
        try:
            vol.read([(0, 10**6)] * 3)
        except ro.RegionError as e:
            print("RegionError", e)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "RegionError" in proc.stdout and "out of bounds" in proc.stdout
