"""Batch reads on the worker pool, map_on_threads, and GIL release."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import radiobject as ro
from radiobject import Volume
from radiobject.parallel import map_on_threads, read_regions


def test_read_regions_keeps_request_order_across_volumes(tmp_uri, make_phantom):
    ctx = ro.Context({"read": {"max_workers": 4, "tile_cache_size_mb": 16}})
    datas = [
        make_phantom((32, 24, 16), dtype, seed=i)
        for i, dtype in enumerate([np.float32, np.int16, np.uint8, np.float64])
    ]
    vols = [Volume.from_numpy(tmp_uri(f"v{i}"), d, ctx=ctx) for i, d in enumerate(datas)]
    rng = np.random.default_rng(1)
    requests, expected = [], []
    for _ in range(60):
        i = int(rng.integers(len(vols)))
        x0, y0, z0 = (int(rng.integers(0, n - 4)) for n in (32, 24, 16))
        region = [(x0, x0 + 4), (y0, y0 + 3), (z0, z0 + 2)]
        requests.append((vols[i], region))
        expected.append(datas[i][x0 : x0 + 4, y0 : y0 + 3, z0 : z0 + 2])
    out = read_regions(requests, ctx=ctx)
    assert len(out) == len(expected)
    for got, want in zip(out, expected):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_read_regions_reports_the_first_error(tmp_uri, make_phantom):
    vol = Volume.from_numpy(tmp_uri(), make_phantom((8, 8, 8)))
    with pytest.raises(ro.RegionError):
        read_regions([(vol, [(0, 8), (0, 8), (0, 8)]), (vol, [(0, 9), (0, 8), (0, 8)])])


def test_map_on_threads_order_and_errors():
    assert map_on_threads(lambda x: x * x, range(50), max_workers=8) == [x * x for x in range(50)]
    assert map_on_threads(str, []) == []

    def boom(x):
        if x == 7:
            raise KeyError(x)
        return x

    with pytest.raises(KeyError):
        map_on_threads(boom, range(10))


def test_reads_release_the_gil(tmp_uri, make_phantom):
    """While a large read runs in native code, other Python threads keep running."""
    ctx = ro.Context({"read": {"tile_cache_size_mb": 0, "max_workers": 1, "concurrency": 1}})
    data = make_phantom((256, 256, 96))
    vol = Volume.from_numpy(tmp_uri(), data, ctx=ctx, write=ro.WriteConfig(tile={"orientation": "isotropic"}))
    ticks = 0
    stop = threading.Event()

    def spin():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        ticks_before = ticks
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < 0.5:
            vol.to_numpy()
            n += 1
        during = ticks - ticks_before
    finally:
        stop.set()
        t.join()
    # A thread holding the GIL in native code would freeze the spinner for the whole read.
    assert during > 10_000, f"the spinner advanced only {during} times during {n} native reads"


def test_threads_reading_one_volume_concurrently(tmp_uri, make_phantom):
    data = make_phantom((64, 64, 32))
    vol = Volume.from_numpy(tmp_uri(), data)
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(30):
            x, y, z = (int(rng.integers(0, n - 8)) for n in data.shape)
            if not np.array_equal(vol[x : x + 8, y : y + 8, z : z + 8], data[x : x + 8, y : y + 8, z : z + 8]):
                errors.append((x, y, z))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
