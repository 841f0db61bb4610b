"""The tile cache and TileDBStats: exact, measured counters."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import radiobject as ro
from radiobject import TileConfig, TileDBStats, Volume, WriteConfig

ISO16 = WriteConfig(tile=TileConfig(orientation="isotropic", x=16, y=16, z=16))


def _ctx(mb=64, workers=4):
    return ro.Context({"read": {"tile_cache_size_mb": mb, "max_workers": workers}})


def test_repeated_region_hits_with_exact_counts(tmp_uri, make_phantom):
    ctx = _ctx()
    data = make_phantom((48, 48, 48))
    vol = Volume.from_numpy(tmp_uri(), data, ctx=ctx, write=ISO16)
    with TileDBStats(ctx) as first:
        a = vol[10:30, 10:30, 10:30]  # touches 2x2x2 = 8 tiles of 16^3
    with TileDBStats(ctx) as second:
        b = vol[10:30, 10:30, 10:30]
    np.testing.assert_array_equal(a, data[10:30, 10:30, 10:30])
    np.testing.assert_array_equal(b, a)
    c1, c2 = first.cache_stats(), second.cache_stats()
    assert (c1.cache_hits, c1.cache_misses) == (0, 8)
    assert c1.tile_bytes_read == 8 * 16**3 * 4 and c1.vfs_read_bytes > 0
    assert (c2.cache_hits, c2.cache_misses, c2.tile_bytes_read) == (8, 0, 0)
    assert c2.hit_rate == 1.0 and c1.hit_rate == 0.0 and c1.miss_rate == 1.0
    assert second.s3_stats().read_ops == 0, "a fully cached read touches no storage"
    # an overlapping region reuses the cached tiles and reads only the new ones
    with TileDBStats(ctx) as third:
        vol[10:40, 10:30, 10:30]
    assert (third.cache_stats().cache_hits, third.cache_stats().cache_misses) == (8, 4)


def test_cache_disabled_and_whole_volume_reads_bypass(tmp_uri, make_phantom):
    off = _ctx(mb=0)
    data = make_phantom()
    vol = Volume.from_numpy(tmp_uri("a"), data, ctx=off)
    with TileDBStats(off) as s:
        vol[0:10, 0:10, 0:10]
        vol[0:10, 0:10, 0:10]
    assert (s.cache_stats().cache_hits, s.cache_stats().cache_misses) == (0, 0)
    assert s.all_counters()["RadiObject.Reads.bypass_reads"] == 2
    on = _ctx()
    v2 = Volume(tmp_uri("a"), ctx=on)
    with TileDBStats(on) as s:
        np.testing.assert_array_equal(v2.to_numpy(), data)
    assert s.cache_stats().cache_hits + s.cache_stats().cache_misses == 0
    assert on.cache_info()[0] == 0, "whole-volume reads do not fill the cache"


def test_lru_respects_the_byte_budget(tmp_uri, make_phantom):
    ctx = _ctx(mb=1)  # 1 MiB = 64 tiles of 16^3 float32
    data = make_phantom((64, 64, 128))
    vol = Volume.from_numpy(tmp_uri(), data, ctx=ctx, write=ISO16)  # 128 tiles = 2 MiB
    for z in range(0, 128, 16):  # 8 slabs of 16 tiles: the first 4 slabs get evicted
        np.testing.assert_array_equal(vol[0:64, 0:64, z : z + 16], data[:, :, z : z + 16])
    used, tiles, budget = ctx.cache_info()
    assert budget == 1024 * 1024 and used <= budget and tiles == 64
    with TileDBStats(ctx) as recent:
        vol[0:16, 0:16, 112:128]  # read last: still cached
    with TileDBStats(ctx) as oldest:
        vol[0:16, 0:16, 0:16]  # read first: evicted
    assert (recent.cache_stats().cache_hits, recent.cache_stats().cache_misses) == (1, 0)
    assert (oldest.cache_stats().cache_hits, oldest.cache_stats().cache_misses) == (0, 1)
    assert recent.all_counters().get("RadiObject.TileCache.evictions", 0) == 0
    assert oldest.all_counters()["RadiObject.TileCache.evictions"] == 1


def test_a_rewritten_array_never_serves_stale_tiles(tmp_uri, make_phantom):
    import tiledb

    ctx = _ctx()
    uri = tmp_uri()
    data = make_phantom((32, 32, 32))
    vol = Volume.from_numpy(uri, data, ctx=ctx, write=ISO16)
    old = vol[0:16, 0:16, 0:16]  # cached
    # rewrite through another library and another process-level handle
    with tiledb.open(uri, "w") as A:
        A[0:16, 0:16, 0:16] = np.full((16, 16, 16), 42.0, np.float32)
    np.testing.assert_array_equal(vol[0:16, 0:16, 0:16], old)  # this handle is a snapshot
    fresh = Volume(uri, ctx=ctx)  # same context, same cache: must not see the old tiles
    np.testing.assert_array_equal(fresh[0:16, 0:16, 0:16], 42.0)
    vol.reopen()
    np.testing.assert_array_equal(vol[0:16, 0:16, 0:16], 42.0)
    # and our own writes are visible to the writing handle immediately
    vol[0:4, 0:4, 0:4] = np.zeros((4, 4, 4), np.float32)
    np.testing.assert_array_equal(vol[0:4, 0:4, 0:4], 0.0)


def test_concurrent_misses_of_one_tile_read_it_once(tmp_uri, make_phantom):
    ctx = _ctx(workers=8)
    vol = Volume.from_numpy(tmp_uri(), make_phantom((64, 64, 64)), ctx=ctx, write=ISO16)
    barrier = threading.Barrier(8)
    results = []

    def read():
        barrier.wait()
        results.append(vol[0:32, 0:32, 0:32])

    with TileDBStats(ctx) as s:
        threads = [threading.Thread(target=read) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    c = s.cache_stats()
    assert c.cache_misses == 8, "each of the 8 tiles is read from storage exactly once"
    assert c.cache_hits == 8 * 8 - 8
    assert all(np.array_equal(r, results[0]) for r in results)


def test_stats_nest_and_run_concurrently(tmp_uri, make_phantom):
    a, b = _ctx(), _ctx()
    va = Volume.from_numpy(tmp_uri("a"), make_phantom(), ctx=a, write=ISO16)
    vb = Volume.from_numpy(tmp_uri("b"), make_phantom(), ctx=b, write=ISO16)
    with TileDBStats() as outer:
        with TileDBStats(a) as inner_a:
            va[0:16, 0:16, 0:16]
        with TileDBStats(a) as inner_a2:
            va[0:16, 0:16, 0:16]
        done = {}

        def other():
            with TileDBStats(b) as sb:
                vb[0:32, 0:16, 0:16]
            done["b"] = sb.cache_stats()

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert (inner_a.cache_stats().cache_misses, inner_a.cache_stats().cache_hits) == (1, 0)
    assert (inner_a2.cache_stats().cache_misses, inner_a2.cache_stats().cache_hits) == (0, 1)
    assert done["b"].cache_misses == 2 and done["b"].cache_hits == 0
    total = outer.cache_stats()
    assert (total.cache_misses, total.cache_hits) == (3, 1), "process-wide block sees both contexts"


def test_global_stats_include_contexts_created_inside(tmp_uri, make_phantom):
    Volume.from_numpy(tmp_uri(), make_phantom())
    with TileDBStats() as s:
        ctx = ro.Context({"read": {"tile_cache_size_mb": 8}})
        Volume(tmp_uri(), ctx=ctx)[0:8, 0:8, 0:8]
        del ctx
    c = s.all_counters()
    assert c["RadiObject.TileCache.misses"] == 8  # 8 axial tiles
    # Storage reads: libtiledb's (opening the array) plus the direct reader's: its open (the
    # fragment's metadata, the schema) and one per tile.
    assert c["Context.VFS.read_ops_num"] > 0 and c["RadiObject.IO.range_requests"] == 2 + 8
    assert s.s3_stats().read_ops == c["Context.VFS.read_ops_num"] + c["RadiObject.IO.range_requests"]
    assert s.counters()["read_ops_num"] == c["Context.VFS.read_ops_num"]
    raw = json.loads(s.raw_json())
    assert set(raw) == {"counters", "timers"} and raw["counters"] == c
    assert any(k.endswith(".sum") for k in s.timers())


def test_parallel_reads_are_recorded(tmp_uri, make_phantom):
    ctx = _ctx(mb=0, workers=4)
    vols = [Volume.from_numpy(tmp_uri(f"v{i}"), make_phantom((96, 96, 64), seed=i), ctx=ctx) for i in range(4)]
    with TileDBStats(ctx) as s:
        ro.parallel.read_regions([(v, [(0, 96), (0, 96), (0, 64)]) for v in vols for _ in range(3)], ctx=ctx)
    st = s.s3_stats()
    c = s.all_counters()
    # Reads issued: the direct reader's, one per tile (12 whole volumes of 96x96x64 in axial tiles).
    assert c["RadiObject.IO.range_requests"] >= 12 * 64 and st.read_queries >= 12 * 64
    assert st.parallelized_reads > 0
    assert 0 < st.parallelization_rate <= 1
    assert st.read_ops > 0 and st.total_bytes_read > 0 and st.write_ops == 0


def test_write_counters(tmp_uri, make_phantom):
    with TileDBStats() as s:
        Volume.from_numpy(tmp_uri(), make_phantom())
    st = s.s3_stats()
    assert st.write_ops > 0 and st.total_bytes_written > 0


def test_results_outside_a_block():
    s = TileDBStats()
    with pytest.raises(RuntimeError):
        s.cache_stats()
