"""Everything on s3:// through TileDB's VFS, against a real S3-compatible server on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest

import radiobject as ro
from radiobject import S3Config, TileDBStats, Volume

pytestmark = pytest.mark.s3


def test_round_trip_regions_metadata_and_writes(s3_ctx, s3_uri, make_phantom):
    data = make_phantom((40, 36, 20), np.int16)
    uri = s3_uri("ct")
    vol = Volume.from_numpy(uri, data, ctx=s3_ctx, metadata={"obs_id": "sub-01_CT"})
    again = Volume(uri, ctx=s3_ctx)
    np.testing.assert_array_equal(again.to_numpy(), data)
    np.testing.assert_array_equal(again[5:30, 3:33, 2:18], data[5:30, 3:33, 2:18])
    np.testing.assert_array_equal(again.axial(7), data[:, :, 7])
    assert again.obs_id == "sub-01_CT" and again.metadata["tile_orientation"] == "axial"
    vol[0:4, 0:4, 0:4] = np.full((4, 4, 4), -1000, np.int16)
    assert (vol[0:4, 0:4, 0:4] == -1000).all()
    vol.set_metadata(series="CT")
    assert Volume(uri, ctx=s3_ctx).metadata["series"] == "CT"


def test_cache_and_s3_request_counters(s3_ctx, s3_uri, make_phantom):
    data = make_phantom((64, 64, 32))
    vol = Volume.from_numpy(
        s3_uri("mr"),
        data,
        ctx=s3_ctx,
        write=ro.WriteConfig(tile={"orientation": "isotropic", "x": 32, "y": 32, "z": 16}),
    )
    with TileDBStats(s3_ctx) as cold:
        a = vol[10:50, 10:50, 5:25]
    with TileDBStats(s3_ctx) as warm:
        b = vol[10:50, 10:50, 5:25]
    np.testing.assert_array_equal(a, data[10:50, 10:50, 5:25])
    np.testing.assert_array_equal(b, a)
    assert cold.cache_stats().cache_misses == 8 and cold.s3_stats().read_ops > 0
    assert cold.s3_stats().total_bytes_read > 0
    assert warm.cache_stats().cache_hits == 8 and warm.s3_stats().read_ops == 0


def test_same_code_through_the_global_configuration(s3_endpoint, s3_uri, make_phantom):
    ro.configure(s3=S3Config(endpoint=s3_endpoint, use_virtual_addressing=False, max_parallel_ops=16))
    data = make_phantom((16, 16, 8), np.uint8)
    vol = Volume.from_numpy(s3_uri("g"), data)
    with TileDBStats() as stats:
        patch = vol[2:10, 3:11, 1:7]
        again = vol[2:10, 3:11, 1:7]
    np.testing.assert_array_equal(patch, again)
    assert stats.cache_stats().hit_rate == 0.5
    assert stats.s3_stats().read_ops > 0
    assert ro.uri_exists(s3_uri("g")) and not ro.uri_exists(s3_uri("nothing"))
    ro.delete_tiledb_uri(s3_uri("g"))
    assert not ro.uri_exists(s3_uri("g"))


def test_missing_s3_uri_is_file_not_found(s3_ctx, s3_uri):
    with pytest.raises(ro.NotFoundError) as e:
        Volume(s3_uri("absent"), ctx=s3_ctx)
    assert isinstance(e.value, FileNotFoundError)


def test_batch_reads_on_s3(s3_ctx, s3_uri, make_phantom):
    datas = [make_phantom((24, 24, 12), seed=i) for i in range(3)]
    vols = [Volume.from_numpy(s3_uri(f"b{i}"), d, ctx=s3_ctx) for i, d in enumerate(datas)]
    out = ro.parallel.read_regions([(v, [(0, 24), (0, 24), (3, 9)]) for v in vols], ctx=s3_ctx)
    for got, d in zip(out, datas):
        np.testing.assert_array_equal(got, d[:, :, 3:9])
