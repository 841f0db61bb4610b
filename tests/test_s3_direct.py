"""The direct tile reader on ``s3://`` (radiobject-core/src/io/object.rs), against a real
S3-compatible server (moto) on 127.0.0.1.

* Equality: volumes of several dtypes and tile layouts written to S3 read bit for bit the same
  through the direct reader (whole, regions, axial planes, ``parallel.read_regions`` batches; with
  and without the tile cache) and through libtiledb (``ReadConfig(direct_reads=False)``); the
  counters prove which path served each read.
* Datasets: a RadiObject with two collections on S3, its volumes and a patch dataset's batches.
* Latency: behind a proxy adding 50 ms to every request, a batch of 32 cold 64^3 regions from 8
  volumes takes far fewer round trips than requests (requests run concurrently), and its time is
  compared with the same batch on local disk.
* The compressed-tile tier: with no decoded tile cache, a second pass over the same tiles makes no
  request at all; without the tier it fetches everything again.
* Faults: a data object truncated or deleted on S3 under an open volume gives a typed error, never
  wrong voxels, a crash or a hang (each in a subprocess with a timeout).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import S3_BUCKET, phantom, s3_config
from direct_arrays import run_isolated

import radiobject as ro
from radiobject import TileDBStats, Volume
from radiobject.parallel import read_regions

pytestmark = pytest.mark.s3

ROOT = Path(__file__).resolve().parents[1]
DELAY_S = 0.05


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _ctx(endpoint: str, **read) -> ro.Context:
    return ro.Context(s3_config(endpoint, **read))


def _bits(a: np.ndarray) -> np.ndarray:
    """``a`` as unsigned integers of the same width (floats compared by their bits: NaN payloads
    and signed zeros included), C-contiguous."""
    a = np.ascontiguousarray(a)
    return a.view(np.dtype(f"u{a.dtype.itemsize}"))


def assert_bitwise(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    g, w = _bits(got), _bits(want)
    if not np.array_equal(g, w):
        bad = np.argwhere(g != w)
        raise AssertionError(
            f"{what}: {len(bad)} voxels differ, first at {tuple(bad[0])}: {got[tuple(bad[0])]!r} != {want[tuple(bad[0])]!r}"
        )


def counters(stats: TileDBStats) -> dict[str, int]:
    c = stats.all_counters()
    return {k: int(v) for k, v in c.items()}


def get(c: dict[str, int], name: str) -> int:
    return int(c.get(f"RadiObject.{name}", 0))


def _source(shape, dtype, seed) -> np.ndarray:
    """Noise with the values that only a bitwise comparison tells apart."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = (rng.normal(0, 100, shape)).astype(dt)
        flat = a.reshape(-1)
        flat[::97] = 0.0
        flat[1::97] = -0.0
        flat[2::389] = np.nan
        flat[3::389] = np.inf
        flat[4::389] = -np.inf
        flat[5::211] = np.finfo(dt).tiny / 4  # subnormal
        return a
    info = np.iinfo(dt)
    a = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    a.reshape(-1)[::53] = 0  # runs the compressors see
    return a


# name -> (dtype, shape, write config, Fortran-ordered source)
CASES = {
    "f32_iso64_partial": (np.float32, (70, 66, 40), ro.WriteConfig(tile={"orientation": "isotropic"}), False),
    "i16_axial": (np.int16, (48, 40, 24), ro.WriteConfig(tile={"orientation": "axial"}), False),
    "u8_iso16": (
        np.uint8,
        (40, 36, 20),
        ro.WriteConfig(tile={"orientation": "isotropic", "x": 16, "y": 16, "z": 16}),
        True,
    ),
    "f64_coronal_lz4": (
        np.float64,
        (30, 28, 26),
        ro.WriteConfig(tile={"orientation": "coronal"}, compression={"algorithm": "lz4", "level": 1}),
        False,
    ),
    "i32_sagittal_nocomp": (
        np.int32,
        (20, 24, 18),
        ro.WriteConfig(tile={"orientation": "sagittal"}, compression={"algorithm": "none"}),
        True,
    ),
    "i64_iso_gzip": (
        np.int64,
        (26, 22, 19),
        ro.WriteConfig(
            tile={"orientation": "isotropic", "x": 8, "y": 8, "z": 8}, compression={"algorithm": "gzip", "level": 5}
        ),
        False,
    ),
    "f32_4d_iso": (
        np.float32,
        (24, 20, 16, 3),
        ro.WriteConfig(tile={"orientation": "isotropic", "x": 8, "y": 8, "z": 8}),
        False,
    ),
}


def _regions(shape, rng, n=4) -> list[list[tuple[int, int]]]:
    out = [[(0, s) for s in shape]]  # the whole box, through the region path
    for _ in range(n):
        r = []
        for s in shape:
            a = int(rng.integers(0, s))
            b = int(rng.integers(a + 1, s + 1))
            r.append((a, b))
        out.append(r)
    out.append([(s - 1, s) for s in shape])  # one voxel in the far corner (last tiles)
    return out


def _read_all_ways(vol: Volume, regions, ctx) -> dict[str, np.ndarray]:
    """Every kind of read, keyed by a label."""
    got: dict[str, np.ndarray] = {"whole": vol.to_numpy(), "getitem": vol[:]}
    for i, r in enumerate(regions):
        got[f"region{i}"] = vol.read(r)
    nz = vol.shape[2]
    for z in sorted({0, nz // 2, nz - 1}):
        got[f"axial{z}"] = vol.axial(z)
    batch = read_regions([(vol, r) for r in regions], ctx=ctx)
    for i, b in enumerate(batch):
        got[f"batch{i}"] = b
    return got


def _expected(data: np.ndarray, regions) -> dict[str, np.ndarray]:
    want: dict[str, np.ndarray] = {"whole": data, "getitem": data}
    for i, r in enumerate(regions):
        want[f"region{i}"] = data[tuple(slice(a, b) for a, b in r)]
    nz = data.shape[2]
    for z in sorted({0, nz // 2, nz - 1}):
        want[f"axial{z}"] = data[:, :, z].squeeze() if data.ndim == 4 else data[:, :, z]
    for i, r in enumerate(regions):
        want[f"batch{i}"] = data[tuple(slice(a, b) for a, b in r)]
    return want


# ---------------------------------------------------------------------------------------------
# 1. Equality: direct reader on S3 == libtiledb on S3 == the source, bit for bit
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_direct_and_libtiledb_read_the_same_bits(s3_endpoint, s3_uri, name):
    dtype, shape, write, fortran = CASES[name]
    data = _source(shape, dtype, seed=sum(map(ord, name)))
    if fortran:
        data = np.asfortranarray(data)
    uri = s3_uri(name)
    Volume.from_numpy(uri, data, ctx=_ctx(s3_endpoint), write=write)
    regions = _regions(shape, np.random.default_rng(len(name)))
    want = _expected(data, regions)

    results = {}
    for label, read in {
        "direct": {},
        "direct_nocache": {"tile_cache_size_mb": 0},  # regions stream through read_box
        "libtiledb": {"direct_reads": False},
    }.items():
        ctx = _ctx(s3_endpoint, **read)
        with TileDBStats(ctx) as s:
            vol = Volume(uri, ctx=ctx)
            got = _read_all_ways(vol, regions, ctx)
        c = counters(s)
        results[label] = got
        for key in want:
            assert_bitwise(got[key], want[key], f"{name} {label} {key}")
        if label.startswith("direct"):
            assert get(c, "Direct.volumes") >= 1, (label, c)
            assert get(c, "Direct.fallbacks") == 0, (label, c)
            assert get(c, "IO.range_requests") > 0, (label, c)
            assert get(c, "Direct.tiles") > 0, (label, c)
        else:
            assert get(c, "Direct.tiles") == 0, c
            assert get(c, "Direct.volumes") == 0, c
            assert get(c, "IO.range_requests") == 0, c
    for key in want:
        assert_bitwise(results["direct"][key], results["libtiledb"][key], f"{name} direct vs libtiledb {key}")


def test_volume_written_through_libtiledb_context_reads_directly(s3_endpoint, s3_uri):
    """A volume written by a ``direct_reads=False`` context (and rewritten in part, so it has two
    fragments) reads the same through the direct reader."""
    writer = _ctx(s3_endpoint, direct_reads=False)
    data = _source((64, 48, 40), np.float32, seed=11)
    uri = s3_uri("written_by_libtiledb")
    vol = Volume.from_numpy(
        uri, data, ctx=writer, write=ro.WriteConfig(tile={"orientation": "isotropic", "x": 16, "y": 16, "z": 16})
    )
    patch = _source((20, 10, 9), np.float32, seed=12)
    vol.write(patch, [(10, 30), (5, 15), (3, 12)])  # a second fragment, not tile-aligned
    data[10:30, 5:15, 3:12] = patch

    direct = _ctx(s3_endpoint)
    with TileDBStats(direct) as s:
        v = Volume(uri, ctx=direct)
        whole = v.to_numpy()
        region = v.read([(5, 40), (0, 20), (0, 16)])
        plane = v.axial(7)
    c = counters(s)
    assert_bitwise(whole, data, "whole")
    assert_bitwise(region, data[5:40, 0:20, 0:16], "region")
    assert_bitwise(plane, data[:, :, 7], "axial")
    assert get(c, "Direct.volumes") == 1 and get(c, "Direct.fallbacks") == 0, c
    assert get(c, "IO.range_requests") > 0 and get(c, "Direct.tiles") > 0, c
    # and the libtiledb reader agrees
    lib = _ctx(s3_endpoint, direct_reads=False)
    assert_bitwise(Volume(uri, ctx=lib).to_numpy(), whole, "libtiledb whole")


def test_many_volumes_in_one_batch_through_one_client(s3_endpoint, s3_uri):
    """``read_regions`` over regions of many S3 volumes: every result right, requests overlap."""
    ctx = _ctx(s3_endpoint, tile_cache_size_mb=0)
    write = ro.WriteConfig(tile={"orientation": "isotropic", "x": 16, "y": 16, "z": 16})
    datas = [_source((48, 48, 32), np.int16, seed=100 + i) for i in range(6)]
    uris = [s3_uri(f"many{i}") for i in range(6)]
    for u, d in zip(uris, datas):
        Volume.from_numpy(u, d, ctx=_ctx(s3_endpoint), write=write)
    vols = [Volume(u, ctx=ctx) for u in uris]
    rng = np.random.default_rng(5)
    reqs = []
    for k in range(24):
        i = k % 6
        a = [int(rng.integers(0, n - 20)) for n in (48, 48, 32)]
        reqs.append((i, [(x, x + 20) for x in a]))
    with TileDBStats(ctx) as s:
        out = read_regions([(vols[i], r) for i, r in reqs], ctx=ctx)
    for (i, r), got in zip(reqs, out):
        assert_bitwise(got, datas[i][tuple(slice(a, b) for a, b in r)], f"vol {i} {r}")
    c = counters(s)
    assert get(c, "IO.range_requests") > 0 and get(c, "Direct.fallbacks") == 0
    assert get(c, "IO.overlapped_requests") > 0, c


# ---------------------------------------------------------------------------------------------
# 2. Datasets on S3
# ---------------------------------------------------------------------------------------------


def test_radi_object_on_s3_reads_directly(s3_endpoint, s3_uri):
    from radiobject.ml import DatasetConfig, LoadingMode, VolumeCollectionDataset
    from radiobject.writers import RadiObjectWriter

    shape = (40, 36, 28)
    sids = ["s0", "s1", "s2"]
    data = {
        (mod, sid): _source(shape, np.float32, seed=1000 * m + k)
        for m, mod in enumerate(("T1w", "FLAIR"))
        for k, sid in enumerate(sids)
    }
    uri = s3_uri("radi")
    with RadiObjectWriter(
        uri, ctx=_ctx(s3_endpoint), write=ro.WriteConfig(tile={"orientation": "isotropic", "x": 16, "y": 16, "z": 16})
    ) as w:
        for mod in ("T1w", "FLAIR"):
            with w.add_collection(mod, shape=shape) as cw:
                for sid in sids:
                    cw.write_volume(data[(mod, sid)], f"{sid}_{mod}", sid)

    direct = _ctx(s3_endpoint)
    lib = _ctx(s3_endpoint, direct_reads=False)
    batches = {}
    for label, ctx in (("direct", direct), ("libtiledb", lib)):
        with TileDBStats(ctx) as s:
            radi = ro.RadiObject(uri, ctx=ctx)
            assert set(radi.collection_names) == {"T1w", "FLAIR"}
            for mod in ("T1w", "FLAIR"):
                coll = radi.collection(mod)
                assert len(coll) == 3
                for sid in sids:
                    vol = coll.loc[f"{sid}_{mod}"]
                    assert_bitwise(vol.to_numpy(), data[(mod, sid)], f"{label} {mod} {sid}")
                    assert_bitwise(
                        vol[3:30, 5:21, 9:27], data[(mod, sid)][3:30, 5:21, 9:27], f"{label} {mod} {sid} region"
                    )
            ds = VolumeCollectionDataset(
                [radi.T1w, radi.FLAIR],
                config=DatasetConfig(loading_mode=LoadingMode.PATCH, patch_size=(16, 20, 12), patches_per_volume=2),
                seed=0,
            )
            items = ds.__getitems__(list(range(len(ds))))
        c = counters(s)
        images = (
            np.asarray(items["image"])
            if isinstance(items, dict)
            else np.stack([np.asarray(it["image"]) for it in items])
        )
        starts = items["patch_start"] if isinstance(items, dict) else [it["patch_start"] for it in items]
        idxs = items["idx"] if isinstance(items, dict) else [it["idx"] for it in items]
        for k, (img, start, idx) in enumerate(zip(images, starts, idxs)):
            start = [int(v) for v in np.asarray(start).reshape(-1)]
            sid = sids[int(np.asarray(idx).reshape(-1)[0])]
            box = tuple(slice(a, a + n) for a, n in zip(start, (16, 20, 12)))
            for ch, mod in enumerate(("T1w", "FLAIR")):
                assert_bitwise(np.asarray(img[ch]), data[(mod, sid)][box], f"{label} item {k} {mod}")
        batches[label] = images
        if label == "direct":
            assert get(c, "Direct.volumes") >= 6 and get(c, "Direct.fallbacks") == 0, c
            assert get(c, "IO.range_requests") > 0, c
        else:
            assert get(c, "Direct.tiles") == 0, c
    assert_bitwise(batches["direct"], batches["libtiledb"], "dataset batch direct vs libtiledb")


# ---------------------------------------------------------------------------------------------
# 3. Latency: 32 cold 64^3 regions from 8 volumes, 50 ms per request
# ---------------------------------------------------------------------------------------------

LAT_SHAPE = (128, 128, 128)
LAT_VOLUMES = 8
LAT_REGIONS = 32
LAT_ROI = 64


def latency_batch(seed: int = 0) -> list[tuple[int, list[tuple[int, int]]]]:
    """(volume index, region): 4 regions per volume, grouped by volume; every region crosses
    tile boundaries on every axis (8 tiles of 64^3)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(LAT_REGIONS):
        v = k * LAT_VOLUMES // LAT_REGIONS
        start = [int(rng.integers(8, LAT_SHAPE[d] - LAT_ROI - 8)) for d in range(3)]
        out.append((v, [(a, a + LAT_ROI) for a in start]))
    return out


@pytest.fixture(scope="module")
def latency_data(s3_endpoint, tmp_path_factory):
    """The 8 volumes on S3 and on local disk (written once for the module)."""
    ctx = _ctx(s3_endpoint)
    prefix = f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:12]}"
    ctx.ensure_bucket(prefix)
    local = tmp_path_factory.mktemp("latency")
    write = ro.WriteConfig(tile={"orientation": "isotropic"})
    datas, s3_uris, local_uris = [], [], []
    for i in range(LAT_VOLUMES):
        d = phantom(LAT_SHAPE, np.float32, seed=500 + i)
        datas.append(d)
        s3_uris.append(f"{prefix}/lat{i}")
        local_uris.append(str(local / f"lat{i}"))
        Volume.from_numpy(s3_uris[-1], d, ctx=ctx, write=write)
        Volume.from_numpy(local_uris[-1], d, ctx=ro.Context(ro.RadiObjectConfig()), write=write)
    return datas, s3_uris, local_uris


def _timed_batch(ctx: ro.Context, uris: list[str], batch) -> tuple[float, dict[str, int], list[np.ndarray]]:
    vols = [Volume(u, ctx=ctx) for u in uris]  # opened first: the batch itself is what is timed
    with TileDBStats(ctx) as s:
        t = time.perf_counter()
        out = read_regions([(vols[v], r) for v, r in batch], ctx=ctx)
        wall = time.perf_counter() - t
    return wall, counters(s), out


@pytest.mark.slow
def test_cold_batch_behind_50ms_latency_overlaps_requests(latency_data, s3_endpoint, s3_slow_endpoint):
    """The issue's scenario with the default configuration: 32 cold 64^3 regions (8 tiles each)
    from 8 volumes, on local disk, on S3 and on S3 with 50 ms per request."""
    datas, s3_uris, local_uris = latency_data
    batch = latency_batch()

    _timed_batch(ro.Context(ro.RadiObjectConfig()), local_uris, batch)  # warm-up: threads, page cache
    local_s, _local_c, local_out = _timed_batch(ro.Context(ro.RadiObjectConfig()), local_uris, batch)
    fast_s, fast_c, fast_out = _timed_batch(_ctx(s3_endpoint), s3_uris, batch)
    slow_s, slow_c, slow_out = _timed_batch(_ctx(s3_slow_endpoint), s3_uris, batch)
    lib_s, lib_c, lib_out = _timed_batch(_ctx(s3_slow_endpoint, direct_reads=False), s3_uris, batch)

    for (v, r), *outs in zip(batch, local_out, fast_out, slow_out, lib_out):
        want = datas[v][tuple(slice(x, y) for x, y in r)]
        for label, got in zip(("local", "s3", "s3+50ms", "s3+50ms libtiledb"), outs):
            assert_bitwise(got, want, f"{label} volume {v} {r}")

    requests = get(slow_c, "IO.range_requests")
    overlapped = get(slow_c, "IO.overlapped_requests")
    lib_ops = int(lib_c.get("Context.VFS.read_ops_num", 0))
    print(
        f"\n32 cold 64^3 regions of 8 volumes (load {os.getloadavg()[0]:.1f}): local {local_s * 1e3:.0f} ms; "
        f"S3 direct {fast_s * 1e3:.0f} ms ({get(fast_c, 'IO.range_requests')} requests); "
        f"S3+50ms direct {slow_s * 1e3:.0f} ms ({requests} requests, {overlapped} overlapped, "
        f"{get(slow_c, 'IO.bytes_fetched') / 1e6:.1f} MB, {get(slow_c, 'Direct.tiles')} tiles decoded), "
        f"{slow_s / local_s:.1f}x local; S3+50ms libtiledb {lib_s * 1e3:.0f} ms ({lib_ops} VFS reads), "
        f"{lib_s / local_s:.1f}x local"
    )
    assert get(slow_c, "Direct.fallbacks") == 0, slow_c
    assert get(slow_c, "Direct.tiles") >= LAT_VOLUMES * 8, f"every tile of every volume is decoded: {slow_c}"
    # A volume's tiles lie next to each other in its data object: coalesced into few requests.
    assert 0 < requests <= get(slow_c, "Direct.tiles"), slow_c
    assert overlapped > 0, slow_c
    assert get(lib_c, "Direct.tiles") == 0 and lib_ops > 0, lib_c
    # The bar is 3x local (default configuration); a generous bound for a loaded box.
    assert slow_s <= 20 * max(local_s, 0.05), (slow_s, local_s)


def single_tile_batch() -> list[tuple[int, list[tuple[int, int]]]]:
    """32 regions of 8^3, each inside one tile, no two in the same tile: 4 tiles of each of the
    8 volumes, so no two requests can be coalesced or served from a cache."""
    out = []
    for k in range(LAT_REGIONS):
        v, j = divmod(k, 4)
        b = 2 * j + (v % 2)  # tiles 0..7 of a 2x2x2 grid: alternate halves between volumes
        corner = [LAT_ROI * ((b >> 2) & 1), LAT_ROI * ((b >> 1) & 1), LAT_ROI * (b & 1)]
        out.append((v, [(c + 20, c + 28) for c in corner]))
    return out


@pytest.mark.parametrize("workers", [4, 8])
def test_requests_of_a_batch_overlap_their_round_trips(latency_data, s3_slow_endpoint, workers):
    """Behind 50 ms per request, a batch of 32 regions in 32 different tiles of 8 volumes takes a
    few round trips, not 32: the batch's stored tiles are prefetched in one request wave per
    volume (volumes side by side on the ``max_workers`` pool), and each tile is fetched once."""
    datas, s3_uris, _ = latency_data
    batch = single_tile_batch()
    assert len({(v, tuple(a // LAT_ROI for a, _ in r)) for v, r in batch}) == LAT_REGIONS
    ctx = _ctx(s3_slow_endpoint, max_workers=workers)
    wall, c, out = _timed_batch(ctx, s3_uris, batch)
    for (v, r), got in zip(batch, out):
        assert_bitwise(got, datas[v][tuple(slice(x, y) for x, y in r)], f"volume {v} {r}")
    requests = get(c, "IO.range_requests")
    print(
        f"\n32 single-tile regions, max_workers={workers} (load {os.getloadavg()[0]:.1f}): {wall * 1e3:.0f} ms, "
        f"{requests} requests ({get(c, 'IO.overlapped_requests')} overlapped): {wall / DELAY_S:.1f} round trips "
        f"of wall time, {LAT_REGIONS * DELAY_S * 1e3:.0f} ms if each tile were its own sequential request"
    )
    assert get(c, "Direct.tiles") == LAT_REGIONS, c
    # Every tile fetched once (the prefetch's misses), then served from memory to the reads.
    assert get(c, "CompressedCache.misses") == LAT_REGIONS and get(c, "CompressedCache.hits") == LAT_REGIONS, c
    assert 1 <= requests <= LAT_REGIONS and get(c, "IO.overlapped_requests") >= 1, c
    # 8 volumes, `workers` at a time: 8 / workers request waves (measured 2.1 round trips with 8 workers).
    assert wall < (8 / workers + 3) * DELAY_S * 2, (wall, requests)


# ---------------------------------------------------------------------------------------------
# 4. The compressed-tile tier
# ---------------------------------------------------------------------------------------------


def _two_passes(ctx, uris, regions):
    vols = [Volume(u, ctx=ctx) for u in uris]
    passes = []
    for _ in range(2):
        with TileDBStats(ctx) as s:
            out = [v.read(r) for v in vols for r in regions]
        passes.append((counters(s), out))
    return passes


@pytest.mark.parametrize("tile_cache_mb", [0, 1])
def test_compressed_tier_serves_the_second_pass(s3_endpoint, s3_uri, tile_cache_mb):
    write = ro.WriteConfig(tile={"orientation": "isotropic", "x": 32, "y": 32, "z": 32})
    datas = [_source((64, 64, 64), np.float32, seed=900 + i) for i in range(3)]
    uris = [s3_uri(f"cc{i}") for i in range(3)]
    for u, d in zip(uris, datas):
        Volume.from_numpy(u, d, ctx=_ctx(s3_endpoint), write=write)
    # Regions covering every tile (8 tiles of 32^3 x 4 B = 128 KiB each): the whole volume in two
    # halves (so the reads take the region path, not the whole-volume one), one across 8 tiles,
    # and one inside a single tile (with a 1 MiB tile cache that one goes through the cache).
    regions = [
        [(0, 64), (0, 64), (0, 32)],
        [(0, 64), (0, 64), (32, 64)],
        [(5, 40), (30, 34), (10, 50)],
        [(2, 10), (2, 10), (2, 10)],
    ]
    tiles_of = lambda r: int(np.prod([(b - 1) // 32 - a // 32 + 1 for a, b in r]))  # noqa: E731
    tiles_per_pass = 3 * sum(tiles_of(r) for r in regions)

    on = _ctx(s3_endpoint, tile_cache_size_mb=tile_cache_mb, compressed_cache_mb=64)
    (c1, out1), (c2, out2) = _two_passes(on, uris, regions)
    for k, (a, b) in enumerate(zip(out1, out2)):
        v, r = divmod(k, len(regions))
        want = datas[v][tuple(slice(x, y) for x, y in regions[r])]
        assert_bitwise(a, want, f"pass 1 read {k}")
        assert_bitwise(b, want, f"pass 2 read {k}")
    assert get(c1, "IO.range_requests") > 0 and get(c1, "CompressedCache.misses") > 0, c1
    assert get(c2, "IO.range_requests") == 0, f"the second pass must come from memory: {c2}"
    assert get(c2, "IO.bytes_fetched") == 0, c2
    assert get(c2, "CompressedCache.misses") == 0, c2
    direct_tiles = get(c2, "Direct.tiles")
    assert direct_tiles > 0, c2
    assert get(c2, "CompressedCache.hits") == direct_tiles, f"every tile decoded came from the tier: {c2}"
    if tile_cache_mb == 0:
        assert direct_tiles == tiles_per_pass, c2
        assert get(c2, "TileCache.hits") == 0, c2
    else:
        # the single-tile regions (one per volume) fit the decoded cache and hit it in pass 2
        assert get(c2, "TileCache.hits") == 3 and direct_tiles == tiles_per_pass - 3, c2
    assert get(c2, "CompressedCache.hit_bytes") > 0, c2

    off = _ctx(s3_endpoint, tile_cache_size_mb=tile_cache_mb, compressed_cache_mb=0)
    (d1, o1), (d2, o2) = _two_passes(off, uris, regions)
    for a, b in zip(o1 + o2, out1 + out2):
        assert_bitwise(a, b, "tier off")
    assert get(d2, "IO.range_requests") > 0, f"without the tier the second pass fetches again: {d2}"
    assert get(d2, "CompressedCache.hits") == 0 and get(d2, "CompressedCache.misses") == 0, d2
    assert get(d2, "IO.bytes_fetched") >= 0.9 * get(d1, "IO.bytes_fetched"), (d1, d2)


def test_compressed_tier_is_bounded_and_evicts(s3_endpoint, s3_uri):
    """A tier smaller than the data keeps within its budget (evictions counted) and still returns
    the right voxels."""
    write = ro.WriteConfig(tile={"orientation": "isotropic", "x": 32, "y": 32, "z": 32})
    data = _source((64, 64, 128), np.float32, seed=77)  # 16 stored tiles of ~128 KiB (noise)
    uri = s3_uri("evict")
    Volume.from_numpy(uri, data, ctx=_ctx(s3_endpoint), write=write)
    ctx = _ctx(s3_endpoint, tile_cache_size_mb=0, compressed_cache_mb=1)
    vol = Volume(uri, ctx=ctx)
    regions = [[(0, 64), (0, 64), (z, z + 32)] for z in range(0, 128, 32)]
    with TileDBStats(ctx) as s:
        for _ in range(2):
            for r in regions:
                assert_bitwise(vol.read(r), data[:, :, r[2][0] : r[2][1]], f"{r}")
    c = counters(s)
    assert get(c, "CompressedCache.evictions") > 0, c
    # 2 MiB of tiles cycle through a 1 MiB tier in order: LRU keeps none of the next ones
    assert get(c, "IO.range_requests") > 0 and get(c, "Direct.fallbacks") == 0, c


def test_compressed_tier_never_serves_a_rewritten_volume(s3_endpoint, s3_uri):
    """Stored tiles are keyed by their data object: after the volume is rewritten (a new
    fragment), a reopened volume reads the new voxels, not the tier's old bytes."""
    write = ro.WriteConfig(tile={"orientation": "isotropic", "x": 16, "y": 16, "z": 16})
    old = _source((32, 32, 32), np.int16, seed=1)
    new = _source((32, 32, 32), np.int16, seed=2)
    uri = s3_uri("rewritten")
    Volume.from_numpy(uri, old, ctx=_ctx(s3_endpoint), write=write)
    ctx = _ctx(s3_endpoint, tile_cache_size_mb=0, compressed_cache_mb=64)
    region = [(0, 32), (0, 32), (0, 16)]
    assert_bitwise(Volume(uri, ctx=ctx).read(region), old[:, :, :16], "before")
    Volume(uri, ctx=_ctx(s3_endpoint, direct_reads=False)).write(new)
    with TileDBStats(ctx) as s:
        got = Volume(uri, ctx=ctx).read(region)
    assert_bitwise(got, new[:, :, :16], "after the rewrite")
    c = counters(s)
    assert get(c, "Direct.volumes") == 1 and get(c, "IO.range_requests") > 0, c


def test_compressed_tier_is_for_remote_storage_only(tmp_uri):
    data = _source((32, 32, 32), np.float32, seed=3)
    uri = tmp_uri("local")
    Volume.from_numpy(uri, data, write=ro.WriteConfig(tile={"orientation": "isotropic", "x": 16, "y": 16, "z": 16}))
    ctx = ro.Context(ro.RadiObjectConfig(read=ro.ReadConfig(tile_cache_size_mb=0, compressed_cache_mb=64)))
    vol = Volume(uri, ctx=ctx)
    vol.read([(0, 32), (0, 32), (0, 16)])
    with TileDBStats(ctx) as s:
        assert_bitwise(vol.read([(0, 32), (0, 32), (0, 16)]), data[:, :, :16], "local")
    c = counters(s)
    assert get(c, "Direct.tiles") == 4 and get(c, "IO.range_requests") > 0, c
    assert get(c, "CompressedCache.hits") == 0 and get(c, "CompressedCache.misses") == 0, c


# ---------------------------------------------------------------------------------------------
# 5. Faults on S3 (each in a subprocess: a crash or a hang fails the test)
# ---------------------------------------------------------------------------------------------

FAULT_CODE = r"""
import json, sys
import numpy as np
import boto3
import radiobject as ro

args = json.loads(sys.argv[1])
def cfg(**read):
    return ro.RadiObjectConfig(
        s3=ro.S3Config(endpoint=args["endpoint"], use_virtual_addressing=False, region="us-east-1",
                       connect_max_tries=2, request_timeout_ms=20000),
        read=ro.ReadConfig(**read),
    )
def outcome(fn):
    try:
        r = fn()
        return {"exc": None, "equal": bool(np.array_equal(np.asarray(r), np.asarray(want_of(fn))))}
    except Exception as e:
        return {"exc": type(e).__name__, "msg": str(e)[:600], "mro": [c.__name__ for c in type(e).__mro__]}

data = np.load(args["npy"])
vols = {}
for label, read in (("direct", {}), ("direct_nocache", {"tile_cache_size_mb": 0}), ("libtiledb", {"direct_reads": False})):
    ctx = ro.Context(cfg(**read))
    vols[label] = (ro.Volume(args["uri"], ctx=ctx), ctx)

s3 = boto3.client("s3", endpoint_url=args["endpoint"], region_name="us-east-1")
bucket, key = args["uri"][len("s3://"):].split("/", 1)
objs = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=key + "/__fragments/")["Contents"]]
data_keys = [k for k in objs if k.endswith("/a0.tdb")]
assert data_keys, objs
for k in data_keys:
    if args["fault"] == "truncate":
        body = s3.get_object(Bucket=bucket, Key=k)["Body"].read()
        s3.put_object(Bucket=bucket, Key=k, Body=body[: len(body) // 3])
    elif args["fault"] == "delete":
        s3.delete_object(Bucket=bucket, Key=k)
    else:
        raise SystemExit("unknown fault")

region = [(30, 64), (40, 64), (20, 32)]  # far from the origin: tiles past the truncation
wants = {}
def want_of(fn):
    return wants[fn]
out = {}
for label, (vol, ctx) in vols.items():
    for what, fn in (("whole", lambda v=vol: v.to_numpy()), ("region", lambda v=vol: v.read(region)),
                     ("axial", lambda v=vol: v.axial(31))):
        wants[fn] = {"whole": data, "region": data[30:64, 40:64, 20:32], "axial": data[:, :, 31]}[what]
        with ro.TileDBStats(ctx) as s:
            r = outcome(fn)
        r["direct_tiles"] = s.all_counters().get("RadiObject.Direct.tiles", 0)
        out[f"{label}_{what}"] = r
print("@@RESULT@@" + json.dumps(out), flush=True)
"""


def _run_fault(endpoint: str, uri: str, npy: Path, fault: str, timeout: float = 180) -> dict:
    return run_isolated(FAULT_CODE, timeout, prelude="", endpoint=endpoint, uri=uri, npy=str(npy), fault=fault)


def _fault_volume(s3_endpoint, s3_uri, tmp_path, name):
    pytest.importorskip("boto3")
    data = _source((64, 64, 32), np.float32, seed=31)
    uri = s3_uri(name)
    Volume.from_numpy(
        uri,
        data,
        ctx=_ctx(s3_endpoint),
        write=ro.WriteConfig(tile={"orientation": "isotropic", "x": 16, "y": 16, "z": 16}),
    )
    npy = tmp_path / "data.npy"
    np.save(npy, data)
    return uri, npy


def test_fault_truncated_tile_object_under_an_open_volume(s3_endpoint, s3_uri, tmp_path):
    uri, npy = _fault_volume(s3_endpoint, s3_uri, tmp_path, "truncated")
    res = _run_fault(s3_endpoint, uri, npy, "truncate")
    print({k: (r["exc"], r.get("msg", "")[:160]) for k, r in res.items()})
    for key, r in res.items():
        if r["exc"] is None:
            # Only tiles before the cut could have been read: then the voxels must be right.
            assert r["equal"], f"{key}: returned voxels that differ from what was written"
            continue
        assert "StorageError" in r["mro"], f"{key}: untyped error {r}"
    for label in ("direct", "direct_nocache"):
        for what in ("whole", "region"):
            r = res[f"{label}_{what}"]
            assert r["exc"] == "CorruptDataError", f"{label} {what}: {r}"
            msg = r["msg"].lower()
            assert "truncat" in msg or "ends at" in msg, r
            assert "a0.tdb" in r["msg"] or "truncated" in r["msg"], r
    assert res["libtiledb_whole"]["exc"] is not None, "libtiledb returned voxels of a truncated object"


def test_fault_deleted_tile_object_under_an_open_volume(s3_endpoint, s3_uri, tmp_path):
    uri, npy = _fault_volume(s3_endpoint, s3_uri, tmp_path, "deleted")
    res = _run_fault(s3_endpoint, uri, npy, "delete")
    print({k: (r["exc"], r.get("msg", "")[:160]) for k, r in res.items()})
    for key, r in res.items():
        assert r["exc"] is not None, f"{key}: voxels returned although the data object is gone: {r}"
        assert {"StorageError", "NotFoundError"} & set(r["mro"]), f"{key}: untyped error {r}"
