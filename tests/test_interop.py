"""Interop: volumes we write read equal in PyPI radiobject 0.1.1 and plain tiledb-py, and volumes
they write read equal in ours."""

from __future__ import annotations

import numpy as np
import pytest
import tiledb

import radiobject as ro
from radiobject import Volume

pytestmark = pytest.mark.interop

PEER_READ = """
import numpy as np
from radiobject import Volume
out = {}
for i, uri in enumerate(args["uris"]):
    v = Volume(uri)
    np.save(args["npy"] + f"_{i}.npy", v.to_numpy())
    out[uri] = {"shape": list(v.shape), "dtype": str(v.dtype), "obs_id": v.obs_id,
                "tile_orientation": v.tile_orientation.value if v.tile_orientation else None,
                "axial": v.axial(2).tolist() if v.ndim == 3 else None,
                "roi": np.asarray(v[1:5, 2:6, 1:3]).tolist()}
result = out
"""


@pytest.mark.slow
def test_volumes_we_write_read_equal_in_the_reference(tmp_uri, tmp_path, peer, make_phantom):
    cases = [
        ((20, 16, 12), np.float32, "axial"),
        ((20, 16, 12), np.int16, "sagittal"),
        ((20, 16, 12), np.uint8, "isotropic"),
        ((12, 10, 8, 3), np.float64, "coronal"),
    ]
    uris, datas = [], []
    for i, (shape, dtype, orientation) in enumerate(cases):
        data = make_phantom(shape, dtype, seed=i)
        uri = tmp_uri(f"v{i}")
        write = ro.WriteConfig(tile=ro.TileConfig(orientation=orientation))
        Volume.from_numpy(uri, data, write=write, metadata={"obs_id": f"sub-{i:02d}_T1w"})
        uris.append(uri)
        datas.append(data)
    res = peer(PEER_READ, uris=uris, npy=str(tmp_path / "peer"))
    for i, (uri, data, (shape, dtype, orientation)) in enumerate(zip(uris, datas, cases)):
        got = np.load(tmp_path / f"peer_{i}.npy")
        assert got.dtype == data.dtype
        np.testing.assert_array_equal(got, data)
        r = res[uri]
        assert tuple(r["shape"]) == shape and r["dtype"] == str(np.dtype(dtype))
        assert r["obs_id"] == f"sub-{i:02d}_T1w" and r["tile_orientation"] == orientation
        np.testing.assert_array_equal(np.array(r["roi"]), data[1:5, 2:6, 1:3])
        if r["axial"] is not None:
            np.testing.assert_array_equal(np.array(r["axial"]), data[:, :, 2])


PEER_WRITE = """
import numpy as np
from radiobject import Volume, configure, WriteConfig
from radiobject.ctx import TileConfig, SliceOrientation
configure(write=WriteConfig(tile=TileConfig(orientation=SliceOrientation(args["orientation"]))))
v = Volume.from_numpy(args["uri"], np.load(args["npy"]))
v.set_obs_id(args["obs_id"])
result = {"shape": list(v.shape)}
"""


@pytest.mark.slow
@pytest.mark.parametrize("orientation", ["axial", "isotropic", "coronal"])
def test_volumes_the_reference_writes_read_equal_in_ours(tmp_uri, tmp_path, peer, make_phantom, orientation):
    data = make_phantom((70, 66, 40), np.int16)  # several tiles in every orientation
    np.save(tmp_path / "src.npy", data)
    uri = tmp_uri()
    peer(PEER_WRITE, uri=uri, npy=str(tmp_path / "src.npy"), orientation=orientation, obs_id="sub-07_CT")
    ctx = ro.Context({"read": {"tile_cache_size_mb": 32}})
    vol = Volume(uri, ctx=ctx)
    assert vol._native.cell_order == "row-major"  # the reference's layout
    assert vol.obs_id == "sub-07_CT" and vol.tile_orientation.value == orientation
    np.testing.assert_array_equal(vol.to_numpy(), data)
    for key in [
        (slice(3, 67), slice(1, 65), slice(5, 37)),
        (slice(None), slice(None), 17),
        (5, slice(None), slice(None)),
    ]:
        np.testing.assert_array_equal(vol[key], data[key])  # cold (cache misses)
        np.testing.assert_array_equal(vol[key], data[key])  # warm (cache hits)


def test_plain_tiledb_reads_ours_and_sees_the_reference_layout(tmp_uri, make_phantom):
    data = make_phantom((30, 20, 10, 2), np.uint16)
    uri = tmp_uri()
    Volume.from_numpy(uri, data, metadata={"obs_id": "s_T2w"})
    with tiledb.open(uri) as A:
        schema = A.schema
        assert [schema.domain.dim(i).name for i in range(4)] == ["x", "y", "z", "t"]
        assert all(schema.domain.dim(i).dtype == np.int32 for i in range(4))
        assert [schema.domain.dim(i).domain for i in range(4)] == [(0, 29), (0, 19), (0, 9), (0, 1)]
        assert schema.attr(0).name == "voxels" and schema.attr(0).dtype == np.uint16
        assert isinstance(schema.attr(0).filters[0], tiledb.ZstdFilter) and schema.attr(0).filters[0].level == 3
        assert not schema.sparse
        np.testing.assert_array_equal(A[:]["voxels"], data)
        meta = dict(A.meta)
    assert meta == {"tile_orientation": "axial", "obs_id": "s_T2w"}
    assert all(isinstance(v, str) for v in meta.values())


def test_ours_reads_arrays_written_by_plain_tiledb(tmp_uri, make_phantom):
    data = make_phantom((25, 18, 11), np.float32)
    uri = tmp_uri()
    dims = [tiledb.Dim(n, (0, s - 1), tile=t, dtype=np.int32) for n, s, t in zip("xyz", data.shape, (8, 18, 3))]
    schema = tiledb.ArraySchema(
        domain=tiledb.Domain(*dims),
        attrs=[tiledb.Attr("voxels", dtype=np.float32, filters=tiledb.FilterList([tiledb.GzipFilter(5)]))],
        sparse=False,
    )
    tiledb.Array.create(uri, schema)
    with tiledb.open(uri, "w") as A:
        A[:] = data
        A.meta["tile_orientation"] = "axial"
    vol = Volume(uri)
    assert vol.tile_extents == (8, 18, 3)
    np.testing.assert_array_equal(vol[:], data)
    np.testing.assert_array_equal(vol[2:23, 1:17, 4:10], data[2:23, 1:17, 4:10])
    np.testing.assert_array_equal(vol.sagittal(7), data[7])


def test_sparse_arrays_are_not_volumes(tmp_uri):
    uri = tmp_uri()
    dom = tiledb.Domain(tiledb.Dim("x", (0, 9), tile=10, dtype=np.int32))
    tiledb.Array.create(uri, tiledb.ArraySchema(domain=dom, attrs=[tiledb.Attr("a", dtype=np.int32)], sparse=True))
    with pytest.raises(ro.ObjectTypeError, match="sparse"):
        Volume(uri)
