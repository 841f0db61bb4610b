"""No deadlock, by construction (issue 7, part 11): overlapping cold reads from plain threads,
``radiobject.parallel.read_regions`` and loader batches at once, through a 1 MiB tile cache
that evicts all the time; every result equal to NumPy slicing of the source.

Each scenario runs in a subprocess with a time limit, so a deadlock fails the test (with the
threads' Python stacks, from ``faulthandler``) instead of hanging pytest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, phantom

from radiobject.ctx import WriteConfig
from radiobject.writers import RadiObjectWriter

SHAPE = (48, 40, 32)  # 240 KiB of float32: 120 tiles of 8^3 (2 KiB); a whole volume fits a quarter of 1 MiB
N = 6  # 1.4 MiB per collection, 2.8 MiB in all: more than the 1 MiB cache
TIMEOUT = 150

PREAMBLE = r'''
import sys
sys.modules.setdefault("monai", None)  # unused here; its import costs ~10 s per process
import faulthandler, json, threading, time
import numpy as np
import radiobject as ro
from radiobject.parallel import read_regions

ARGS = json.loads(sys.argv[1])
faulthandler.dump_traceback_later(ARGS["timeout"] - 10, exit=True)  # a hang shows every thread's stack
ro.configure(read=ro.ReadConfig(tile_cache_size_mb=1, max_workers=4))
radi = ro.RadiObject(ARGS["uri"])
NAMES = ["T1w", "FLAIR"]
vols = {name: [getattr(radi, name).iloc[i] for i in range(ARGS["n"])] for name in NAMES}
src = {name: np.load(ARGS["src"][name]) for name in NAMES}  # (n, X, Y, Z)
SHAPE = src["T1w"].shape[1:]
ctx = ro.get_tiledb_ctx()
errors = []
counts = {}


def box(rng, min_size=1):
    """A random region (start, stop) per axis."""
    out = []
    for n in SHAPE:
        a = int(rng.integers(0, n - min_size + 1))
        b = int(rng.integers(a + min_size, n + 1))
        out.append((a, b))
    return out


def check(what, got, want):
    if got.shape != want.shape or not np.array_equal(got, want):
        errors.append(f"{what}: wrong voxels (shape {got.shape} vs {want.shape})")


def guarded(name, fn):
    def run():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001
            errors.append(f"{name}: {type(e).__name__}: {e}")
    return threading.Thread(target=run, name=name)


def result(obj):
    print("@@RESULT@@" + json.dumps(obj), flush=True)
'''

MIXED = r"""
from radiobject.ml import DatasetConfig, VolumeCollectionDataset, create_training_dataloader

ds = VolumeCollectionDataset([radi.T1w, radi.FLAIR], DatasetConfig(loading_mode="patch", patch_size=(16, 16, 12)),
                             seed=3)
start = threading.Barrier(7)


def plain(t):
    def body():
        rng = np.random.default_rng(t)
        start.wait()
        for k in range(ARGS["plain"]):
            name, i = NAMES[int(rng.integers(2))], int(rng.integers(ARGS["n"]))
            b = box(rng)
            got = vols[name][i][b[0][0]:b[0][1], b[1][0]:b[1][1], b[2][0]:b[2][1]]
            check(f"plain {t} read {k}", got, src[name][i][b[0][0]:b[0][1], b[1][0]:b[1][1], b[2][0]:b[2][1]])
            if k % 25 == 0:
                ctx.clear_cache()  # cold again
        counts[f"plain{t}"] = ARGS["plain"]
    return body


def regions():
    rng = np.random.default_rng(100)
    start.wait()
    n = 0
    for k in range(ARGS["calls"]):
        reqs, want = [], []
        for _ in range(8):
            name, i = NAMES[int(rng.integers(2))], int(rng.integers(ARGS["n"]))
            b = box(rng)
            reqs.append((vols[name][i], b))
            want.append(src[name][i][b[0][0]:b[0][1], b[1][0]:b[1][1], b[2][0]:b[2][1]])
        for j, (g, w) in enumerate(zip(read_regions(reqs), want)):
            check(f"read_regions call {k} request {j}", g, w)
        n += len(reqs)
    counts["read_regions"] = n


def batches():
    start.wait()
    n = 0
    rng = np.random.default_rng(200)
    for k in range(ARGS["batches"]):
        ds.set_epoch(k)
        idx = [int(i) for i in rng.integers(0, len(ds), 4)]
        samples = ds.__getitems__(idx)
        for s in samples:
            (x, y, z), v = s["patch_start"], s["idx"]
            for c, name in enumerate(NAMES):
                check(f"batch {k} item {v}", s["image"][c].numpy(), src[name][v][x:x + 16, y:y + 16, z:z + 12])
            n += 2
    counts["dataset_items"] = n


def loader():
    start.wait()
    L = create_training_dataloader([radi.T1w, radi.FLAIR], batch_size=3, patch_size=(16, 16, 12), seed=9,
                                   prefetch=4, patches_per_volume=4)
    n = 0
    for epoch in range(ARGS["epochs"]):
        for b in L:
            for j in range(b["image"].shape[0]):
                v = int(b["idx"][j])
                x, y, z = (int(t[j]) for t in b["patch_start"])
                for c, name in enumerate(NAMES):
                    want = src[name][v][x:x + 16, y:y + 16, z:z + 12]
                    check(f"loader epoch {epoch} item {v}", b["image"][j, c].numpy(), want)
                n += 2
    counts["loader_items"] = n


threads = [guarded(f"plain{t}", plain(t)) for t in range(4)]
threads += [guarded("regions", regions), guarded("batches", batches), guarded("loader", loader)]
t0 = time.time()
for t in threads:
    t.start()
for t in threads:
    t.join()
result({"errors": errors[:20], "n_errors": len(errors), "counts": counts, "seconds": time.time() - t0,
        "cache": list(ctx.cache_info())})
"""

EXACT = r"""
# The case of the issue: one thread reads vol[...] (through the cache: a whole volume's tiles are
# less than a quarter of the budget) while another calls read_regions on the same volume, cold.
name = "T1w"
done = 0
for rep in range(ARGS["reps"]):
    vol, want = vols[name][rep % ARGS["n"]], src[name][rep % ARGS["n"]]
    ctx.clear_cache()
    go = threading.Barrier(2)
    rng = np.random.default_rng(rep)
    boxes = [box(rng, 4) for _ in range(8)]

    def reader():
        go.wait()
        got = vol[1:-1, 1:-1, 1:-1]
        check(f"rep {rep} vol[...]", got, want[1:-1, 1:-1, 1:-1])

    def batch():
        go.wait()
        out = read_regions([(vol, b) for b in boxes])
        for b, g in zip(boxes, out):
            check(f"rep {rep} read_regions", g, want[b[0][0]:b[0][1], b[1][0]:b[1][1], b[2][0]:b[2][1]])

    ts = [guarded("reader", reader), guarded("read_regions", batch)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    done += 1 + len(boxes)
result({"errors": errors[:20], "n_errors": len(errors), "reads": done})
"""


@pytest.fixture(scope="module")
def stress_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("stress")
    uri = str(root / "ds")
    write = WriteConfig(tile={"orientation": "isotropic", "x": 8, "y": 8, "z": 8})
    src = {}
    with RadiObjectWriter(uri, write=write) as w:
        for c, name in enumerate(["T1w", "FLAIR"]):
            vols = np.stack([phantom(SHAPE, seed=10 * c + i) + c for i in range(N)])
            with w.add_collection(name, shape=SHAPE) as cw:
                for i in range(N):
                    cw.write_volume(vols[i], obs_id=f"s{i}_{name}", obs_subject_id=f"s{i}")
            src[name] = str(root / f"{name}.npy")
            np.save(src[name], vols)
    return {"uri": uri, "src": src, "n": N}


def _run(body: str, args: dict, tmp_path: Path, what: str) -> dict:
    script = tmp_path / "stress.py"
    script.write_text(PREAMBLE + textwrap.dedent(body))
    proc = subprocess.Popen(
        [sys.executable, str(script), json.dumps({**args, "timeout": TIMEOUT})],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        env=dict(os.environ, OMP_NUM_THREADS="1", RUST_BACKTRACE="0"),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{what}: deadlock (no exit within {TIMEOUT} s)\n{out[-2000:]}\n{err[-12000:]}")
    assert proc.returncode == 0, f"{what} exited with {proc.returncode}:\n{out[-2000:]}\n{err[-12000:]}"
    line = [x for x in out.splitlines() if x.startswith("@@RESULT@@")][-1]
    return json.loads(line[len("@@RESULT@@") :])


def test_plain_threads_read_regions_and_loader_batches_at_once_through_a_tiny_cache(stress_data, tmp_path):
    args = {**stress_data, "plain": 200, "calls": 40, "batches": 40, "epochs": 3}
    r = _run(MIXED, args, tmp_path, "mixed stress")
    assert r["n_errors"] == 0, r["errors"]
    c = r["counts"]
    assert all(c.get(f"plain{t}") == 200 for t in range(4)), c
    assert c["read_regions"] == 320 and c["dataset_items"] == 320
    assert c["loader_items"] == 3 * (N * 4 // 3 * 3) * 2  # epochs x items per epoch (drop_last) x channels
    assert sum(c.values()) >= 1000
    used, _entries, budget = r["cache"]
    assert budget == 2**20 and used <= budget


def test_vol_getitem_against_read_regions_on_the_same_cold_volume(stress_data, tmp_path):
    r = _run(EXACT, {**stress_data, "reps": 150}, tmp_path, "vol[...] vs read_regions")
    assert r["n_errors"] == 0, r["errors"]
    assert r["reads"] == 150 * 9
