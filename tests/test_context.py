"""Contexts: shared by threads, never by processes, fork-safe."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import radiobject as ro
from radiobject import ReadConfig, TileDBStats, Volume
from radiobject.parallel import ctx_for_process, ctx_for_threads


def test_ctx_for_threads_is_the_same_context():
    g = ro.get_tiledb_ctx()
    assert ctx_for_threads() == g
    assert ro.tdb_ctx() == g
    mine = ro.Context()
    assert ctx_for_threads(mine) == mine


def test_ctx_for_process_is_new_and_isolated(tmp_uri, make_phantom):
    ro.configure(read=ReadConfig(tile_cache_size_mb=32, max_workers=3))
    base = ro.get_tiledb_ctx()
    vol = Volume.from_numpy(tmp_uri(), make_phantom())
    vol[0:10, 0:10, 0:10]
    assert base.cache_info()[1] > 0
    fresh = ctx_for_process()
    assert fresh != base and fresh.id != base.id
    assert fresh.cache_info()[:2] == (0, 0)  # empty cache
    assert fresh.config_json() == base.config_json()
    from_base = ctx_for_process(base)
    assert from_base != base and from_base.config_json() == base.config_json()


def test_threads_share_one_cache(tmp_uri, make_phantom):
    ctx = ro.Context({"read": {"tile_cache_size_mb": 64}})
    vol = Volume.from_numpy(tmp_uri(), make_phantom(), ctx=ctx)
    t = threading.Thread(target=lambda: vol[5:25, 5:25, 5:25])
    t.start()
    t.join()
    with TileDBStats(ctx) as s:
        vol[5:25, 5:25, 5:25]
    assert s.cache_stats().cache_misses == 0 and s.cache_stats().cache_hits == 20  # 20 axial tiles


def _child_reads(vol: Volume, uri: str, parent_ctx_id: int, parent_pid: int) -> int:
    """Runs in the forked child; returns an exit status (0 = all checks passed)."""
    try:
        g = ro.get_tiledb_ctx()
        if g.pid != os.getpid() or g.pid == parent_pid:
            return 2
        a = vol[0:16, 0:16, 0:16]  # a volume opened by the parent reopens in the child
        if vol.context.pid != os.getpid():
            return 3
        if vol.context != g:  # ...through the child's global context (one cache, visible to stats)
            return 6
        b = Volume(uri)[0:16, 0:16, 0:16]
        if not np.array_equal(a, b):
            return 4
        new = ro.Volume.from_numpy(uri + "_child", a)  # writes work too
        if not np.array_equal(new[:], a):
            return 5
        return 0
    except Exception as exc:  # noqa: BLE001 - report anything as a failure code
        print("child failed:", repr(exc), flush=True)
        return 1


@pytest.mark.timeout(120)
def test_fork_while_parent_holds_an_active_context(tmp_uri, make_phantom):
    ro.configure(read=ReadConfig(max_workers=2, concurrency=2))
    uri = tmp_uri()
    data = make_phantom()
    vol = Volume.from_numpy(uri, data)
    parent = ro.get_tiledb_ctx()
    # Make the parent's context busy: worker pool started, TileDB threads used, cache filled,
    # and a reader thread still running while we fork.
    ro.parallel.read_regions([(vol, [(0, 48), (0, 40), (i, i + 1)]) for i in range(32)])
    stop = threading.Event()

    def keep_reading():
        while not stop.is_set():
            vol[0:20, 0:20, 0:20]

    bg = threading.Thread(target=keep_reading, daemon=True)
    bg.start()
    try:
        pid = os.fork()
        if pid == 0:  # child
            os._exit(_child_reads(vol, uri, parent.id, os.getppid()))
        _, status = os.waitpid(pid, 0)
    finally:
        stop.set()
        bg.join()
    assert os.WIFEXITED(status), "child crashed or hung"
    assert os.WEXITSTATUS(status) == 0, f"child check failed with code {os.WEXITSTATUS(status)}"
    # the parent's context is untouched and still works
    assert ro.get_tiledb_ctx() == parent
    np.testing.assert_array_equal(vol[:], data)
    np.testing.assert_array_equal(Volume(uri + "_child")[:], data[0:16, 0:16, 0:16])


def test_pickled_volume_reopens(tmp_uri, make_phantom):
    import pickle

    data = make_phantom()
    vol = Volume.from_numpy(tmp_uri(), data)
    clone = pickle.loads(pickle.dumps(vol))
    np.testing.assert_array_equal(clone[1:5, 2:6, 3:7], data[1:5, 2:6, 3:7])
    assert clone.uri == vol.uri


# ---------------------------------------------------------------------------------------------
# Fork safety and thread/pool interplay: each case runs in a subprocess with a timeout, so a hang
# or a crash fails the test instead of the suite.
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_200_forks_while_4_threads_read_never_hang(tmp_path):
    """Torch's DataLoader forks its workers while the parent's threads keep reading: every lock a
    child can reach (global context and config, volume handles, libtiledb's open-array registry)
    must be free at fork time. 200 children, each reading parent-opened and new volumes through
    its own context, while 4 parent threads open, reopen, read and batch-read."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("fork_stress.py")
    out = subprocess.run(
        [sys.executable, "-W", "ignore", str(script), str(tmp_path), "200", "4"],
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["hung"] == 0, result
    assert result["ok"] == 200, (result, out.stderr[-3000:])
    assert min(result["parent_iterations"]) > 10, "the parent's threads were not busy while forking"


def _run_python(code: str, timeout: float = 120):
    import subprocess
    import sys
    import textwrap

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )


def test_a_cold_volume_read_and_a_batch_of_it_at_once_do_not_deadlock(tmp_path):
    """vol[...] on one thread and parallel.read_regions on another, both cold: the batch's pool
    threads never wait for tiles the other thread is loading, and opening never holds the handle
    lock while it waits for the pool."""
    out = _run_python(
        f"""
        import threading, numpy as np, radiobject as ro
        data = np.random.default_rng(0).random((96, 96, 64), dtype=np.float32)
        for rep in range(30):
            ro.configure(read=ro.ReadConfig(max_workers=2, tile_cache_size_mb=64))
            uri = {str(tmp_path)!r} + f"/v{{rep}}"
            ro.Volume.from_numpy(uri, data)
            vol = ro.Volume(uri)
            vol.reopen()
            res = {{}}
            a = threading.Thread(target=lambda: res.setdefault("a", vol[0:96, 0:96, 0:64]))
            b = threading.Thread(target=lambda: res.setdefault("b", ro.parallel.read_regions([(vol, [(0, 96), (0, 96), (z, z + 8)]) for z in range(0, 64, 8)])))
            a.start(); b.start(); a.join(60); b.join(60)
            assert not a.is_alive() and not b.is_alive(), "deadlock"
            assert np.array_equal(res["a"], data)
            assert np.array_equal(np.concatenate(res["b"], axis=2), data)
        print("OK")
        """,
        timeout=300,
    )
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


def test_a_large_batch_of_volumes_opened_before_configure_does_not_overflow_the_stack(tmp_path):
    """Volumes keep the context they were opened with; a batch read through the new global context
    after configure() used to nest one read inside the next on a worker (installing into the
    volumes' pool from another pool's worker) until the stack overflowed (SIGSEGV)."""
    out = _run_python(
        f"""
        import numpy as np, radiobject as ro
        vols = [ro.Volume.from_numpy({str(tmp_path)!r} + f"/v{{i}}", np.full((64, 64, 32), i, np.float32)) for i in range(4)]
        ro.configure(read=ro.ReadConfig(tile_cache_size_mb=0, max_workers=1))
        requests = [(v, [(0, 64), (0, 64), (z, z + 1)]) for _ in range(300) for v in vols for z in range(0, 32, 4)]
        out = ro.parallel.read_regions(requests)
        assert len(out) == len(requests)
        assert all(float(o[0, 0, 0]) == float(i % 4) for i, o in enumerate(o for o in out[::8]))
        print("OK", len(out))
        """,
        timeout=300,
    )
    assert out.returncode == 0 and "OK" in out.stdout, (out.returncode, out.stderr[-3000:])
