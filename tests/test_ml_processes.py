"""The training loaders across processes (issue 7, parts 3, 4, 5, 7, 8): resuming after a
SIGKILL, ``torchrun`` with two ranks, worker processes, robustness (errors, ``break``,
``del``, interpreter exit, a corrupt volume) and the peak-RSS bound.

Every scenario runs in its own Python process (a kill, an interpreter exit, a fresh tile cache,
``maxrss`` and thread counts need one), started with a time limit so that a hang fails the test
instead of hanging pytest. The scripts block MONAI's import (``sys.modules["monai"] = None``):
nothing here uses it, and importing it costs ~10 s per process; ``radiobject.ml`` falls back to
its own ``Compose``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, phantom

import radiobject as ro
from radiobject.ctx import WriteConfig
from radiobject.writers import RadiObjectWriter

pytestmark = pytest.mark.slow  # each scenario starts Python processes that import torch

TORCHRUN = Path(sys.executable).parent / "torchrun"

SHAPE = (32, 32, 24)
N_SUBJECTS = 10
SMALL_TILE = 16  # patches of 12^3 span several tiles: the reads use the pool inside pool jobs
BIG_SHAPE = (128, 128, 80)  # 5 MiB of float32 per volume
N_BIG = 28

# ------------------------------------------------------------------------------------------------
# Running scripts
# ------------------------------------------------------------------------------------------------

PREAMBLE = r'''
import sys
sys.modules.setdefault("monai", None)  # unused here; its import costs ~10 s per process
import gc, hashlib, json, os, time
import numpy as np
import radiobject as ro

ARGS = json.loads(sys.argv[1])


def batch_hash(b):
    """Digest of a batch's voxels, volume indices and patch starts."""
    h = hashlib.sha256()
    h.update(b["image"].numpy().tobytes())
    h.update(np.asarray(b["idx"]).tobytes())
    if "patch_start" in b:
        h.update(np.stack([np.asarray(t) for t in b["patch_start"]]).tobytes())
    return h.hexdigest()[:20]


def threads():
    """Names of this process's threads."""
    out = []
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                out.append(f.read().strip())
        except OSError:
            pass
    return out


def settle(limit, timeout=10.0):
    """Waits (collecting garbage) until at most ``limit`` threads remain; returns the count."""
    deadline = time.time() + timeout
    while True:
        gc.collect()
        n = len(threads())
        if n <= limit or time.time() > deadline:
            return n
        time.sleep(0.05)


def result(obj):
    print("@@RESULT@@" + json.dumps(obj), flush=True)
'''


def _write_script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(PREAMBLE + textwrap.dedent(body))
    return path


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONFAULTHANDLER="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", RUST_BACKTRACE="0")


def _start(script: Path, args: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        env=_env(),
        start_new_session=True,  # so a timeout kills its DataLoader workers too
    )


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILLs the process and its session (its DataLoader workers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _finish(proc: subprocess.Popen, timeout: float, what: str) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        out, err = proc.communicate()
        pytest.fail(f"{what}: no exit within {timeout:.0f} s (hang or deadlock)\n{out[-4000:]}\n{err[-8000:]}")
    return proc.returncode, out, err


def _result(rc: int, out: str, err: str, what: str, expect_rc: int = 0) -> dict:
    assert rc == expect_rc, f"{what} exited with {rc} (expected {expect_rc}):\n{out[-4000:]}\n{err[-8000:]}"
    lines = [line for line in out.splitlines() if line.startswith("@@RESULT@@")]
    assert lines, f"{what} printed no result:\n{out[-4000:]}\n{err[-8000:]}"
    return json.loads(lines[-1][len("@@RESULT@@") :])


def _run(script: Path, args: dict, timeout: float, what: str, expect_rc: int = 0) -> dict:
    return _result(*_finish(_start(script, args), timeout, what), what, expect_rc)


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def _write_small(uri: str) -> None:
    """Two aligned collections (T1w, FLAIR) of 10 subjects, 32x32x24 float32, 16^3 tiles."""
    write = WriteConfig(tile={"orientation": "isotropic", "x": SMALL_TILE, "y": SMALL_TILE, "z": SMALL_TILE})
    with RadiObjectWriter(uri, write=write) as w:
        for c, name in enumerate(["T1w", "FLAIR"]):
            with w.add_collection(name, shape=SHAPE) as cw:
                for i in range(N_SUBJECTS):
                    data = phantom(SHAPE, seed=100 * c + i) + c
                    cw.write_volume(data, obs_id=f"s{i:02d}_{name}", obs_subject_id=f"s{i:02d}")


@pytest.fixture(scope="module")
def small_uri(tmp_path_factory) -> str:
    uri = str(tmp_path_factory.mktemp("ml_small") / "ds")
    _write_small(uri)
    return uri


@pytest.fixture(scope="module")
def big_uri(tmp_path_factory) -> str:
    """28 volumes of 128x128x80 float32 (5 MiB each, 140 MiB in all), 32^3 tiles (128 KiB)."""
    uri = str(tmp_path_factory.mktemp("ml_big") / "ds")
    write = WriteConfig(tile={"orientation": "isotropic", "x": 32, "y": 32, "z": 32})
    base = np.add.outer(np.add.outer(np.arange(BIG_SHAPE[0]), np.arange(BIG_SHAPE[1])), np.arange(BIG_SHAPE[2]))
    base = base.astype(np.float32)
    rng = np.random.default_rng(7)
    with RadiObjectWriter(uri, write=write) as w:
        with w.add_collection("T1w", shape=BIG_SHAPE) as cw:
            for i in range(N_BIG):
                noise = rng.integers(0, 16, size=BIG_SHAPE).astype(np.float32)
                cw.write_volume(base * (i + 1) + noise, obs_id=f"b{i:02d}_T1w", obs_subject_id=f"b{i:02d}")
    return uri


def _corrupt_volume(uri: str, collection: str, index: int) -> str:
    """Flips the bytes of the voxel data file of one volume (same size, so metadata-only checks
    still pass); returns the volume's URI."""
    vuri = getattr(ro.RadiObject(uri), collection).iloc[index].uri
    files = sorted(Path(vuri, "__fragments").glob("*/a0.tdb"))
    assert files, f"no voxel data file under {vuri}"
    for f in files:
        data = bytearray(f.read_bytes())
        for i in range(64, len(data)):
            data[i] ^= 0x5A
        f.write_bytes(bytes(data))
    return vuri


# ------------------------------------------------------------------------------------------------
# 1. Resume after SIGKILL (part 5)
# ------------------------------------------------------------------------------------------------

RESUME = r"""
from radiobject.ml import create_training_dataloader

radi = ro.RadiObject(ARGS["uri"])
EPOCHS = ARGS["epochs"]


def make(**kw):
    return create_training_dataloader([radi.T1w, radi.FLAIR], batch_size=2, patch_size=(12, 12, 12),
                                      patches_per_volume=2, seed=ARGS["seed"], **kw)


mode = ARGS["mode"]
if mode == "reference":
    L = make(num_workers=0)
    result({"hashes": [[batch_hash(b) for b in L] for _ in range(EPOCHS)], "len": len(L)})

elif mode == "kill":
    L = make(num_workers=0, prefetch=4)
    done = []
    for epoch in range(EPOCHS):
        for k, b in enumerate(L, 1):
            done.append([epoch, batch_hash(b)])  # the "training step"
            tmp = ARGS["ckpt"] + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"state": L.state_dict(), "done": done}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, ARGS["ckpt"])
            if epoch == ARGS["kill_epoch"] and k == ARGS["kill_after"]:
                open(ARGS["ready"], "w").close()
                time.sleep(600)  # the parent SIGKILLs us here, with batches still prefetching
    result({"error": "not killed"})

elif mode == "resume":
    state = json.load(open(ARGS["ckpt"]))["state"]
    out = {}
    for nw in (0, 2):
        L = make(num_workers=nw)
        L.load_state_dict(state)
        passes, first = [], None
        for epoch in range(state["epoch"], EPOCHS):
            hs, yielded = [], []
            for b in L:
                hs.append(batch_hash(b))
                st = L.state_dict()
                yielded.append([st["epoch"], st["batches_yielded"]])
            passes.append(hs)
            if first is None:
                s = L.stats()
                first = {"batches": s.batches, "bytes_read": s.bytes_read, "epoch": s.epoch, "yielded": yielded,
                         "counters": dict(L.dataset._plan.counters()) if nw == 0 else None}
        out[str(nw)] = {"passes": passes, "first": first}
    result(out)
"""


def test_resume_after_sigkill_continues_with_the_same_batches_without_reading_skipped_ones(small_uri, tmp_path):
    script = _write_script(tmp_path, "resume", RESUME)
    ckpt, ready = str(tmp_path / "ckpt.json"), str(tmp_path / "ready")
    common = {"uri": small_uri, "seed": 1234, "epochs": 3, "ckpt": ckpt}
    k, kill_epoch = 4, 1
    # The uninterrupted run and the run to be killed, side by side.
    ref_proc = _start(script, {**common, "mode": "reference"})
    victim = _start(script, {**common, "mode": "kill", "kill_epoch": kill_epoch, "kill_after": k, "ready": ready})
    deadline = time.time() + 120
    while not os.path.exists(ready):
        if victim.poll() is not None or time.time() > deadline:
            _kill(victim)
            _kill(ref_proc)
            out, err = victim.communicate()
            pytest.fail(f"the training process never reached epoch {kill_epoch} batch {k}:\n{out}\n{err[-8000:]}")
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    rc, _, err = _finish(victim, 30, "killed run")
    assert rc == -signal.SIGKILL, err[-4000:]
    ref = _result(*_finish(ref_proc, 120, "reference run"), "reference run")

    n = ref["len"]
    assert n == N_SUBJECTS * 2 // 2  # 20 patches, batches of 2, drop_last
    epochs = ref["hashes"]
    assert len({h for e in epochs for h in e}) == 3 * n, "every batch of every epoch differs"

    ck = json.loads(Path(ckpt).read_text())
    # state_dict() during a pass names the pass's epoch (a checkpoint of epoch 1 saying epoch 0
    # would resume into the wrong epoch)
    assert ck["state"] == {"epoch": kill_epoch, "batches_yielded": k, "seed": 1234}, ck["state"]
    # What the killed job trained on is exactly the start of the uninterrupted run.
    want_done = [[e, h] for e in range(kill_epoch) for h in epochs[e]]
    want_done += [[kill_epoch, h] for h in epochs[kill_epoch][:k]]
    assert ck["done"] == want_done

    res = _run(script, {**common, "mode": "resume"}, 180, "resumed run")
    batch_bytes = 2 * 2 * 12**3 * 4  # items x channels x patch voxels x float32
    for nw in ("0", "2"):
        got = res[nw]
        # The resumed job continues with batch k+1 of epoch 1, then a whole epoch 2.
        assert got["passes"] == [epochs[kill_epoch][k:], *epochs[kill_epoch + 1 :]], f"num_workers={nw}"
        first = got["first"]
        assert first["epoch"] == kill_epoch, "stats() names the pass's epoch"
        assert first["batches"] == n - k
        assert first["yielded"] == [[kill_epoch, j] for j in range(k + 1, n + 1)], "state_dict counts from the resume"
        # Nothing of the k skipped batches was read.
        assert first["bytes_read"] == (n - k) * batch_bytes, f"num_workers={nw}"
        if nw == "0":
            c = first["counters"]
            assert (c["batches"], c["items"]) == (n - k, 2 * (n - k)), c


# ------------------------------------------------------------------------------------------------
# 2. torchrun, two ranks (part 8)
# ------------------------------------------------------------------------------------------------

DISTRIBUTED = r"""
import torch
import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
from radiobject.ml.distributed import create_distributed_dataloader, set_epoch

radi = ro.RadiObject(ARGS["uri"])
cases = {
    # 8 volumes, 2 channels, whole volumes: 4 per rank, 2 full batches
    "even": dict(collections=[radi.T1w.iloc[:8], radi.FLAIR.iloc[:8]], drop_last=True, seed=77),
    # 9 patches: drop_last drops one item (4 per rank), padding repeats one (5 per rank)
    "drop": dict(collections=radi.T1w.iloc[:9], patch_size=(12, 12, 12), drop_last=True, seed=5),
    "pad": dict(collections=radi.T1w.iloc[:9], patch_size=(12, 12, 12), drop_last=False, seed=5),
    # no seed: rank 0's torch.initial_seed(), broadcast
    "noseed": dict(collections=radi.T1w, patch_size=(12, 12, 12), drop_last=True, seed=None),
}
out = {"rank": rank, "world": world}
for name, kw in cases.items():
    L = create_distributed_dataloader(rank=rank, world_size=world, batch_size=2, **kw)
    n = len(L.dataset)
    epochs = []
    for epoch in range(2):
        set_epoch(L, epoch)
        batches = []
        for b in L:
            starts = np.stack([np.asarray(t) for t in b["patch_start"]], 1).tolist() if "patch_start" in b else None
            batches.append({"idx": b["idx"].tolist(), "starts": starts, "hash": batch_hash(b)})
        ts = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True,
                                seed=L.seed & ((1 << 63) - 1), drop_last=kw["drop_last"])
        ts.set_epoch(epoch)
        epochs.append({"batches": batches, "torch_order": list(ts), "sampler_len": len(L.sampler)})
    out[name] = {"n": n, "seed": L.seed, "epochs": epochs, "sampler": type(L.sampler).__mro__[1].__name__,
                 "is_distributed_sampler": isinstance(L.sampler, DistributedSampler)}
with open(os.path.join(ARGS["out"], f"rank{rank}.json"), "w") as f:
    json.dump(out, f)
dist.barrier()
dist.destroy_process_group()
"""


def _torchrun(script: Path, args: dict, timeout: float) -> list[dict]:
    out_dir = Path(args["out"])
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(script), json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        env=_env(),
        start_new_session=True,
    )
    rc, out, err = _finish(proc, timeout, "torchrun")
    assert rc == 0, f"torchrun exited with {rc}:\n{out[-4000:]}\n{err[-8000:]}"
    return [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.timeout(400)
def test_torchrun_two_ranks_partition_every_epoch_and_rerun_identically(small_uri, tmp_path):
    if not TORCHRUN.exists():
        pytest.fail(f"torchrun is missing at {TORCHRUN}")
    script = _write_script(tmp_path, "dist", DISTRIBUTED)
    runs = [_torchrun(script, {"uri": small_uri, "out": str(tmp_path / f"run{i}")}, 180) for i in range(2)]
    r0, r1 = runs[0]
    assert (r0["rank"], r1["rank"], r0["world"]) == (0, 1, 2)
    for name in ("even", "drop", "pad", "noseed"):
        a, b = r0[name], r1[name]
        assert a["is_distributed_sampler"] and b["is_distributed_sampler"]
        assert a["seed"] == b["seed"], f"{name}: ranks must agree on the seed"
        n = a["n"]
        orders = []
        for e in range(2):
            ea, eb = a["epochs"][e], b["epochs"][e]
            for got in (ea, eb):
                idx = [i for bt in got["batches"] for i in bt["idx"]]
                # The loader yields the DistributedSampler's order (cut to whole batches if drop_last).
                want = got["torch_order"]
                if name != "pad":
                    want = want[: len(want) // 2 * 2]
                assert idx == want, f"{name} epoch {e}"
                assert got["sampler_len"] == len(got["torch_order"])
            ia = [i for bt in ea["batches"] for i in bt["idx"]]
            ib = [i for bt in eb["batches"] for i in bt["idx"]]
            if name == "even":
                assert n == 8 and len(ia) == len(ib) == 4
                assert sorted(ia + ib) == list(range(8)), "the ranks partition the epoch"
            elif name == "drop":
                assert n == 9 and len(ia) == len(ib) == 4
                assert not set(ia) & set(ib) and len(set(ia + ib)) == 8
            elif name == "pad":
                assert n == 9 and len(ia) == len(ib) == 5
                assert set(ia + ib) == set(range(9)), "padding repeats, never loses, an item"
                assert [len(bt["idx"]) for bt in ea["batches"]] == [2, 2, 1]
            else:
                assert n == 10 and len(ia) == len(ib) == 4
                assert not set(ia) & set(ib)
                assert set(ea["torch_order"]) | set(eb["torch_order"]) == set(range(10))
            orders.append((ia, ib, [s for bt in ea["batches"] for s in (bt["starts"] or [])]))
        assert orders[0][:2] != orders[1][:2], f"{name}: epochs 0 and 1 have the same order"
        if name != "even":
            assert orders[0][2] != orders[1][2], f"{name}: epochs 0 and 1 have the same patches"
    # A rerun gives the very same batches (bytes included) wherever the seed is given.
    for rank in range(2):
        for name in ("even", "drop", "pad"):
            assert runs[0][rank][name] == runs[1][rank][name], f"rank {rank}, {name}: rerun differs"


# ------------------------------------------------------------------------------------------------
# 3. Worker processes (part 7)
# ------------------------------------------------------------------------------------------------

WORKERS = r'''
import torch
from radiobject.ml import create_training_dataloader

radi = ro.RadiObject(ARGS["uri"])
parent = ro.get_tiledb_ctx()
radi.T1w.iloc[0][0:4, 0:4, 0:4]  # the parent's context and pool exist before the workers fork
parent_info = {"pid": os.getpid(), "ctx_pid": parent.pid, "ctx_id": parent.id}


def record(sample):
    """A transform that notes which process, context and reader threads served the sample."""
    ctx = ro.get_tiledb_ctx()
    names = [t for t in threads() if t.startswith("radiobject-")]
    sample["pid"] = os.getpid()
    sample["ctx_pid"] = ctx.pid
    sample["ctx_id"] = ctx.id
    sample["pool_ctx"] = len({t.split("-")[1] for t in names})
    sample["pool_of_global"] = sum(t.startswith(f"radiobject-{ctx.id}-") for t in names)
    sample["pool_threads"] = len(names)
    return sample


def make(**kw):
    return create_training_dataloader([radi.T1w, radi.FLAIR], batch_size=2, patch_size=(12, 12, 12), seed=99, **kw)


def epochs(L, n=2, extra=()):
    out, meta = [], []
    for _ in range(n):
        hashes = []
        for b in L:
            hashes.append(batch_hash(b))
            meta.append({k: b[k].tolist() for k in extra})
        out.append(hashes)
    return out, meta


ref, _ = epochs(make(num_workers=0))
L2 = make(num_workers=2, persistent_workers=True, pin_memory=True)
got, _ = epochs(L2)
s = L2.stats()
keys = ("pid", "ctx_pid", "ctx_id", "pool_ctx", "pool_of_global", "pool_threads")
L3 = make(num_workers=2, persistent_workers=True, transform=record)
got3, meta = epochs(L3, extra=keys)
result({"ref": ref, "workers": got, "workers_transform": got3, "meta": meta, "parent": parent_info,
        "cores": len(os.sched_getaffinity(0)), "cuda": torch.cuda.is_available(),
        "stats": {"batches": s.batches, "num_workers": s.num_workers, "threads": s.threads}})
'''


def test_worker_processes_give_the_same_batches_with_their_own_context_and_threads(small_uri, tmp_path):
    script = _write_script(tmp_path, "workers", WORKERS)
    res = _run(script, {"uri": small_uri}, 180, "worker run")
    ref = res["ref"]
    assert len(ref) == 2 and len(ref[0]) == 5 and ref[0] != ref[1]
    # persistent workers, pin_memory (no CUDA here: a no-op, not an error), same batches as in-process
    assert res["workers"] == ref
    assert res["workers_transform"] == ref
    expect_threads = max(1, res["cores"] // 2)
    assert res["stats"] == {"batches": 5, "num_workers": 2, "threads": expect_threads}
    parent = res["parent"]
    assert parent["ctx_pid"] == parent["pid"]
    pids_by_epoch = []
    for e in range(2):
        rows = res["meta"][5 * e : 5 * e + 5]
        pids = set()
        for row in rows:
            for i, pid in enumerate(row["pid"]):
                pids.add(pid)
                assert pid != parent["pid"], "items were read in the main process"
                assert row["ctx_pid"][i] == pid, "a worker used a context of another process"
                assert row["ctx_id"][i] != parent["ctx_id"]
                # one pool, of the worker's own context, with cores // num_workers threads
                assert row["pool_ctx"][i] == 1 and row["pool_of_global"][i] == expect_threads, row
                assert row["pool_threads"][i] == expect_threads, row
        pids_by_epoch.append(pids)
    assert len(pids_by_epoch[0]) == 2, "two worker processes served the batches"
    assert pids_by_epoch[0] == pids_by_epoch[1], "persistent workers live across epochs"


# ------------------------------------------------------------------------------------------------
# 4. Robustness (part 3)
# ------------------------------------------------------------------------------------------------

ROBUST = r"""
from radiobject.exceptions import RadiObjectError
from radiobject.ml import create_training_dataloader, create_validation_dataloader

radi = ro.RadiObject(ARGS["uri"])


def make(**kw):
    kw.setdefault("prefetch", 4)
    return create_training_dataloader([radi.T1w, radi.FLAIR], batch_size=2, patch_size=(12, 12, 12), seed=11, **kw)


ref = [batch_hash(b) for b in make()]  # epoch 0; also starts the context's pool
base = settle(0, timeout=0.5)
report = {"base_threads": base, "names": sorted(set(threads()))}

# an exception in the training step, mid-epoch
L = make()
try:
    for k, b in enumerate(L):
        if k == 2:
            raise ValueError("step failed")
except ValueError:
    pass
report["after_exception"] = settle(base)

# break out of the loop, then iterate the same loader again (the next epoch, in full)
L2 = make()
for k, b in enumerate(L2):
    if k == 1:
        break
report["after_break"] = settle(base)
report["again_after_break"] = len([batch_hash(b) for b in L2])

# del the loader while its iterator is alive and batches are in flight
L3 = make(prefetch=8)
it = iter(L3)
next(it)
del L3, it
report["after_del"] = settle(base)

# many abandoned iterators
for _ in range(20):
    it = iter(make(prefetch=8))
    next(it)
    del it
report["after_many"] = settle(base)

# the next loader works and reads the same batches
report["next_loader_same"] = [batch_hash(b) for b in make()] == ref

# an error reading a volume surfaces at the batch holding it, naming the volume
bad = ro.RadiObject(ARGS["bad_uri"])
for nw in (0, 2):
    V = create_validation_dataloader([bad.T1w, bad.FLAIR], batch_size=2, prefetch=4, num_workers=nw)
    seen, error = [], None
    try:
        for b in V:
            seen.append(b["idx"].tolist())
    except Exception as e:  # noqa: BLE001
        error = {"type": type(e).__name__, "is_radiobject_error": isinstance(e, RadiObjectError), "msg": str(e)}
    report[f"bad_{nw}"] = {"seen": seen, "error": error}
report["after_errors"] = settle(base)
report["after_errors_same"] = [batch_hash(b) for b in make()] == ref
report["final_threads"] = sorted(set(threads()))
result(report)
"""


def test_errors_break_del_and_corrupt_volumes_neither_hang_nor_leak_threads(small_uri, tmp_path):
    bad_uri = str(tmp_path / "bad")
    shutil.copytree(small_uri, bad_uri)
    bad_index = 5
    vuri = _corrupt_volume(bad_uri, "T1w", bad_index)
    script = _write_script(tmp_path, "robust", ROBUST)
    r = _run(script, {"uri": small_uri, "bad_uri": bad_uri}, 240, "robustness run")
    base = r["base_threads"]
    for key in ("after_exception", "after_break", "after_del", "after_many", "after_errors"):
        assert r[key] <= base, f"{key}: {r[key]} threads, {base} before ({r['names']} -> {r['final_threads']})"
    assert r["again_after_break"] == 5
    assert r["next_loader_same"] and r["after_errors_same"]
    for nw in (0, 2):
        got = r[f"bad_{nw}"]
        # validation order: batches [0, 1], [2, 3], [4, 5]: the third one holds volume 5
        assert got["seen"] == [[0, 1], [2, 3]], f"num_workers={nw}: {got}"
        err = got["error"]
        assert err is not None, f"num_workers={nw}: no error"
        assert vuri in err["msg"], f"num_workers={nw}: the error does not name {vuri}: {err['msg'][:2000]}"
        if nw == 0:
            assert err["is_radiobject_error"], err


EXIT = r"""
from radiobject.ml import create_training_dataloader

radi = ro.RadiObject(ARGS["uri"])
L = create_training_dataloader(radi.T1w, batch_size=2, prefetch=8, seed=3)
it = iter(L)
b = next(it)
print("first batch", tuple(b["image"].shape), flush=True)
t0 = time.time()
if ARGS["how"] == "sys.exit":
    sys.exit(0)
if ARGS["how"] == "raise":
    raise RuntimeError("stop")
# "return": fall off the end with the iterator alive
"""


def test_interpreter_exit_while_prefetching_does_not_hang(big_uri, tmp_path):
    script = _write_script(tmp_path, "exit", EXIT)
    hows = {"sys.exit": 0, "return": 0, "raise": 1}
    procs = {how: _start(script, {"uri": big_uri, "how": how}) for how in hows}
    for how, want in hows.items():
        rc, out, err = _finish(procs[how], 120, f"exit by {how}")
        assert "first batch (2, 1, 128, 128, 80)" in out, err[-4000:]
        assert rc == want, f"exit by {how}: rc {rc}\n{err[-4000:]}"
        if how != "raise":
            assert "Traceback" not in err and "panic" not in err, err[-4000:]


# ------------------------------------------------------------------------------------------------
# 5. Peak RSS (part 3)
# ------------------------------------------------------------------------------------------------

RSS = r"""
import resource
from radiobject import _radiobject as _rb
from radiobject.ml import create_training_dataloader

scope = _rb.StatsScope(None)

ro.configure(read=ro.ReadConfig(tile_cache_size_mb=ARGS["cache_mb"], max_workers=2))
radi = ro.RadiObject(ARGS["uri"])
patch = tuple(ARGS["patch"]) if ARGS["patch"] else None
L = create_training_dataloader(radi.T1w, batch_size=ARGS["batch"], patch_size=patch,
                               patches_per_volume=4 if patch else 1, prefetch=ARGS["prefetch"], seed=5)


def maxrss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


it = iter(L)
b = next(it)
batch_bytes = b["image"].numpy().nbytes
del b
base = maxrss()
n = 1
for b in it:
    n += 1
    time.sleep(0.002)  # a short step: the prefetch queue stays full
for _ in range(2):
    for b in L:
        n += 1
result({"base": base, "peak": maxrss(), "batch_bytes": batch_bytes, "batches": n, "len": len(L),
        "cache": list(ro.get_tiledb_ctx().cache_info()), "tile_bytes": int(scope.cache_stats()[2])})
"""


MODES = {
    # mode: (patch, batch, prefetch, cache MiB)
    "full_volume": (None, 2, 3, 8),  # whole volumes bypass the cache: batches dominate
    # 32^3 patches touch up to 8 tiles (1 MiB, a quarter of the budget: read through the cache):
    # 140 MiB of tiles pass through a 4 MiB cache
    "patch": ((32, 32, 32), 8, 4, 4),
}


def test_peak_rss_is_bounded_by_cache_and_prefetched_batches(big_uri, tmp_path):
    script = _write_script(tmp_path, "rss", RSS)
    procs = {}
    for mode, (patch, batch, prefetch, cache_mb) in MODES.items():  # one process per mode, side by side
        args = {"uri": big_uri, "patch": patch, "batch": batch, "prefetch": prefetch, "cache_mb": cache_mb}
        procs[mode] = _start(script, args)
    mib = 2**20
    for mode, (_patch, _batch, prefetch, cache_mb) in MODES.items():
        r = _result(*_finish(procs[mode], 180, f"{mode} RSS run"), f"{mode} RSS run")
        assert r["batches"] == 3 * r["len"]
        streamed = max(r["batches"] * r["batch_bytes"], r["tile_bytes"])
        constant = 96 * mib
        bound = cache_mb * mib + (prefetch + 2) * r["batch_bytes"] + constant
        growth = r["peak"] - r["base"]
        assert streamed > bound, "the run streams more data than the bound, so the bound means something"
        assert growth <= bound, (
            f"{mode}: peak RSS grew by {growth / mib:.0f} MiB after the first batch; bound {bound / mib:.0f} MiB "
            f"(cache {cache_mb} MiB + {prefetch + 2} batches of {r['batch_bytes'] / mib:.1f} MiB + 96 MiB); "
            f"base {r['base'] / mib:.0f} MiB, cache_info {r['cache']}"
        )
        print(f"{mode}: base {r['base'] / mib:.0f} MiB, growth {growth / mib:.0f} MiB, bound {bound / mib:.0f} MiB")
