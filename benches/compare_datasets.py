"""Dataset-level benchmark: radiobject (this repository) against the PyPI reference RadiObject
0.1.1, in one run, on the same data.

Three measurements, each with a tracked bar:

1. **Ingest throughput.** ``--subjects`` NIfTI files (default 24; 128x128x80 int16, a smooth
   ellipsoid "brain" with a darker centre, Gaussian blobs and sigma=25 noise, background exactly 0;
   gzip-1 as nibabel writes it), generated once into ``--out``. Ours:
   ``radiobject.ingest.from_images(uri, images={"T1w": "<dir>/*.nii.gz"})`` (default workers =
   ``ReadConfig.max_workers``); the reference: ``RadiObject.from_niftis(uri, images={...})``
   (its default thread pool). Each run is a fresh subprocess writing a fresh URI; runs of the two
   packages alternate; the wall time of the call is reported (median of ``--runs``), as volumes/s
   and MB/s of source (decoded voxels and .nii.gz bytes). After each run the first, middle and
   last subject are read back and compared with the source voxels (dtype, shape and values, by
   sha256), outside the timed call. For ours, the time from the last volume written (its progress
   callback) to the call's return is shown too (registration and manifest consolidation).
   **Bar: ours >= 3x faster.**
2. **Per-volume write cost at 100 vs 1,000 volumes.** 16^3 int16 volumes (the same seeded data
   for both), written one by one: ours ``radiobject.writers.VolumeCollectionWriter``, the
   reference ``radiobject.streaming.StreamingWriter`` (the 0.1.1 name of its
   ``VolumeCollectionWriter``). One fresh subprocess and URI per collection size and run; per-volume
   cost = (``__enter__`` + every ``write_volume`` + ``__exit__``) / N. Also shown: the median
   ``write_volume`` time of the first and of the last 100 volumes. Every collection is opened
   afterwards and checked (length, and the first, middle and last volume equal to their data).
   **Bar: ours at 1,000 <= 1.2x ours at 100.** The reference (one run; 1,000 volumes, 300 with
   ``--quick``) registers each volume with its own group write, so its cost per volume grows with N.
3. **``iloc[i]`` on a 1,000- and a 10,000-volume collection** (``--quick``: 100 and 1,000) of
   16^3 int16 volumes, built once **with ours** and cached under ``--out`` (the reference's
   writer would need hours for 10,000 volumes); the reference reads the same collections. In a
   fresh subprocess per package and size: open (``VolumeCollection(uri)``), then the first access
   (``iloc[i].to_numpy()``: the reference loads its obs index here), then distinct random
   positions (seed 42, the same for both): ``iloc[i]`` and ``.to_numpy()`` timed separately (median),
   and in a second pass over other positions the storage read operations of each access (ours:
   ``radiobject.TileDBStats().s3_stats().read_ops``; the reference has no stats API, so
   libtiledb's ``Context.VFS.read_ops_num`` through ``tiledb.stats_*``, i.e. the same counter).
   Every array read is checked equal to the volume's data. **Bar: ours costs the same number of
   storage reads per access at both sizes (O(1) after the index load).** The time and read-op
   ratios against the reference are reported without a bar.

Each measurement runs in its own subprocess; the reference has the same import name as ours, so
it runs with ``PYTHONPATH=.peers/radiobject-0.1.1``. Progress goes to stderr, results to stdout.
Usage::

    .venv/bin/python benches/compare_datasets.py [--quick] [--json PATH] [--out DIR]
        [--skip-reference] [--subjects N] [--runs N] [--rebuild]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER_PATH = ROOT / ".peers" / "radiobject-0.1.1"

OURS, REFERENCE = "radiobject", "RadiObject 0.1.1"
SLUG = {OURS: "radiobject", REFERENCE: "radiobject-0.1.1"}
SEED = 42
NIFTI_SHAPE = (128, 128, 80)
TINY = (16, 16, 16)
COLLECTION = "T1w"
RECIPE = 1  # bump when the generated data changes (invalidates the caches under --out)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Data (NumPy and nibabel only, so both packages' processes can use it)
# ---------------------------------------------------------------------------------------------


def brain_volume(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """A smooth brain-like int16 volume: an ellipsoid with a darker centre ("ventricles"), a
    dozen Gaussian blobs and sigma=25 noise; the background is exactly 0."""
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    r = rng.uniform(0.85, 0.95, 3).astype(np.float32)
    inside = (x / (0.80 * r[0])) ** 2 + (y / (0.92 * r[1])) ** 2 + (z / (0.86 * r[2])) ** 2 <= 1
    core = (x / 0.22) ** 2 + (y / 0.35) ** 2 + (z / 0.30) ** 2 <= 1
    vol = np.full(shape, 620.0, np.float32) - 280.0 * core
    for _ in range(12):
        c = rng.uniform(-0.6, 0.6, 3).astype(np.float32)
        s = np.float32(rng.uniform(0.08, 0.3))
        amp = np.float32(rng.uniform(-150, 250))
        # separable Gaussian: a product of three 1D profiles (cheap)
        vol += amp * (
            np.exp(-((x - c[0]) ** 2) / (2 * s * s))
            * np.exp(-((y - c[1]) ** 2) / (2 * s * s))
            * np.exp(-((z - c[2]) ** 2) / (2 * s * s))
        )
    vol += rng.normal(0, 25, shape).astype(np.float32)
    return np.where(inside, np.round(vol), 0).astype(np.int16)


def tiny_volume(i: int) -> np.ndarray:
    """The i-th 16^3 int16 volume of the write and iloc collections (seeded by i)."""
    return np.random.default_rng(1_000_003 + i).integers(0, 1000, TINY, dtype=np.int16)


def tiny_ids(i: int) -> tuple[str, str]:
    """(obs_id, obs_subject_id) of the i-th tiny volume; sorted order = write order."""
    return f"s{i:05d}_tiny", f"s{i:05d}"


def voxel_digest(a) -> str:
    a = np.asarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def make_niftis(root: Path, n: int, shape: tuple[int, int, int]) -> dict:
    """Writes n NIfTI files into root (once; reused while its marker matches)."""
    import nibabel as nib

    marker = root / "recipe.json"
    want = {"recipe": RECIPE, "n": n, "shape": list(shape), "seed": SEED}
    if marker.exists():
        info = json.loads(marker.read_text())
        if {k: info.get(k) for k in want} == want:
            return info
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    affine = np.diag([1.0, 1.0, 1.5, 1.0])
    affine[:3, 3] = [-64.0, -64.0, -60.0]
    t = time.perf_counter()
    digests = {}
    for k in range(n):
        sid = f"sub-{k:03d}"
        vol = brain_volume(shape, SEED + k)
        img = nib.Nifti1Image(vol, affine)
        img.header.set_data_dtype(np.int16)
        img.header.set_xyzt_units("mm", "sec")
        img.set_sform(affine, 1)
        img.set_qform(affine, 1)
        nib.save(img, root / f"{sid}.nii.gz")
        digests[sid] = voxel_digest(vol)
    info = {
        **want,
        "dtype": "int16",
        "decoded_mb": n * int(np.prod(shape)) * 2 / 1e6,
        "file_mb": sum(p.stat().st_size for p in root.glob("*.nii.gz")) / 1e6,
        "digests": digests,
    }
    marker.write_text(json.dumps(info))
    log(
        f"  wrote {n} NIfTI files ({info['file_mb']:.1f} MB gzip, {info['decoded_mb']:.1f} MB decoded) in {time.perf_counter() - t:.1f} s"
    )
    return info


def disk_mb(path: str | Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


# ---------------------------------------------------------------------------------------------
# Package adapters (inside the worker subprocesses; imports are local because both packages are
# called `radiobject`)
# ---------------------------------------------------------------------------------------------


class Ours:
    name = OURS

    def __init__(self) -> None:
        import radiobject as ro

        if Path(ro.__file__).resolve().is_relative_to(PEER_PATH.resolve()):
            raise RuntimeError(f"imported the reference package ({ro.__file__}) instead of ours")
        self.ro = ro
        ro.get_tiledb_ctx()  # build the global context outside the timed sections

    def version(self) -> str:
        return f"radiobject {self.ro.__version__} (libtiledb {'.'.join(map(str, self.ro.tiledb_version()))})"

    def ingest(self, uri: str, pattern: str) -> float | None:
        """Ingests; returns when (perf_counter) the last volume was written, or None."""
        from radiobject.ingest import from_images

        marks: list[float] = []
        from_images(
            uri, images={COLLECTION: pattern}, progress=lambda name, done, total: marks.append(time.perf_counter())
        )
        return marks[-1] if marks else None

    def writer(self, uri: str, shape, name: str):
        from radiobject.writers import VolumeCollectionWriter

        return VolumeCollectionWriter(uri, shape=shape, name=name)

    def collection(self, uri: str):
        return self.ro.VolumeCollection(uri)

    def stats(self):
        return OurStats(self.ro)


class OurStats:
    def __init__(self, ro) -> None:
        self.s = ro.TileDBStats()

    def __enter__(self):
        self.s.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.s.__exit__(*exc)
        st = self.s.s3_stats()
        self.read_ops, self.read_bytes = st.read_ops, st.total_bytes_read


class Reference(Ours):
    name = REFERENCE

    def __init__(self) -> None:
        import radiobject as ro

        if not Path(ro.__file__).resolve().is_relative_to(PEER_PATH.resolve()):
            raise RuntimeError(f"expected the reference package from {PEER_PATH}, imported {ro.__file__}")
        self.ro = ro
        ro.ctx()  # the global context (and boto3's credential chain) outside the timed sections

    def version(self) -> str:
        import tiledb

        libtiledb = ".".join(map(str, tiledb.libtiledb.version()))
        return f"radiobject {importlib.metadata.version('radiobject')} (tiledb-py {tiledb.__version__}, libtiledb {libtiledb})"

    def ingest(self, uri: str, pattern: str) -> float | None:
        self.ro.RadiObject.from_niftis(uri, images={COLLECTION: pattern})
        return None  # no progress callback in 0.1.1 (only a tqdm bar)

    def writer(self, uri: str, shape, name: str):
        from radiobject.streaming import StreamingWriter

        return StreamingWriter(uri, shape=shape, name=name)

    def stats(self):
        return RefStats()


class RefStats:
    """libtiledb's process-global counters through tiledb-py (the reference has no stats API)."""

    def __enter__(self):
        import tiledb

        self.tiledb = tiledb
        tiledb.stats_enable()
        tiledb.stats_reset()
        return self

    def __exit__(self, *exc) -> None:
        try:
            counters = json.loads(self.tiledb.stats_dump(print_out=False, json=True))["counters"]
        except IndexError:  # tiledb-py 0.36 fails to dump when libtiledb recorded nothing
            counters = {}
        self.tiledb.stats_disable()
        self.read_ops = int(counters.get("Context.VFS.read_ops_num", 0))
        self.read_bytes = int(counters.get("Context.VFS.read_byte_num", 0))


def make_adapter(store: str):
    return {OURS: Ours, REFERENCE: Reference}[store]()


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------


def check_collection(a, uri: str, expect: dict[int, np.ndarray], n: int) -> None:
    vc = a.collection(uri)
    if len(vc) != n:
        raise AssertionError(f"{a.name}: {uri} holds {len(vc)} volumes, expected {n}")
    for i, data in expect.items():
        out = np.asarray(vc.iloc[i].to_numpy())
        if out.shape != data.shape or out.dtype != data.dtype or not np.array_equal(out, data):
            raise AssertionError(f"{a.name}: volume {i} of {uri} differs from the data written")


def work_ingest(spec: dict) -> dict:
    a = make_adapter(spec["store"])
    uri = spec["uri"]
    t = time.perf_counter()
    last = a.ingest(uri, spec["pattern"])
    end = time.perf_counter()
    dt = end - t
    # read back some subjects, untimed
    vc = a.collection(f"{uri}/collections/{COLLECTION}")
    sids = list(vc.obs_subject_ids)
    digests = {}
    for sid in spec["check"]:
        digests[sid] = voxel_digest(vc.iloc[sids.index(sid)].to_numpy())
    return {
        "version": a.version(),
        "s": dt,
        "tail_s": None if last is None else end - last,
        "n": len(vc),
        "digests": digests,
        "disk_mb": disk_mb(uri),
    }


def work_write(spec: dict) -> dict:
    a = make_adapter(spec["store"])
    n, uri = spec["n"], spec["uri"]
    vols = [tiny_volume(i) for i in range(n)]
    ids = [tiny_ids(i) for i in range(n)]
    per = []
    t0 = time.perf_counter()
    w = a.writer(uri, TINY, "tiny")
    w.__enter__()
    t1 = time.perf_counter()
    for data, (obs_id, sid) in zip(vols, ids):
        t = time.perf_counter()
        w.write_volume(data, obs_id, sid)
        per.append(time.perf_counter() - t)
    t2 = time.perf_counter()
    w.__exit__(None, None, None)
    t3 = time.perf_counter()
    check_collection(a, uri, {i: vols[i] for i in {0, n // 2, n - 1}}, n)
    groups = len(list((Path(uri) / "volumes" / "__group").glob("*")))
    return {
        "version": a.version(),
        "n": n,
        "enter_s": t1 - t0,
        "writes_s": t2 - t1,
        "exit_s": t3 - t2,
        "total_s": t3 - t0,
        "per_volume_s": per,
        "volumes_group_files": groups,
        "disk_mb": disk_mb(uri),
    }


def work_build(spec: dict) -> dict:
    """Builds (with ours) the n-volume collection that the iloc benchmark reads."""
    a = make_adapter(OURS)
    n, uri = spec["n"], spec["uri"]
    t = time.perf_counter()
    last = t
    with a.writer(uri, TINY, "tiny") as w:
        for i in range(n):
            obs_id, sid = tiny_ids(i)
            w.write_volume(tiny_volume(i), obs_id, sid)
            if time.perf_counter() - last > 15:
                last = time.perf_counter()
                log(f"    built {i + 1}/{n} volumes ({last - t:.0f} s)")
    dt = time.perf_counter() - t
    check_collection(a, uri, {i: tiny_volume(i) for i in {0, n // 2, n - 1}}, n)
    return {"version": a.version(), "n": n, "s": dt}


def work_iloc(spec: dict) -> dict:
    a = make_adapter(spec["store"])
    uri, n = spec["uri"], spec["n"]
    perm = [int(i) for i in np.random.default_rng(SEED).permutation(n)]
    first = perm[0]
    timed = perm[1 : 1 + spec["accesses"]]
    counted = perm[1 + spec["accesses"] : 1 + spec["accesses"] + spec["counted"]]

    def check(out, i: int) -> None:
        out, want = np.asarray(out), tiny_volume(i)
        if out.shape != want.shape or out.dtype != want.dtype or not np.array_equal(out, want):
            raise AssertionError(f"{a.name}: iloc[{i}] of {uri} differs from the volume written there")

    with a.stats() as st_open:
        t = time.perf_counter()
        vc = a.collection(uri)
        open_s = time.perf_counter() - t
    with a.stats() as st_first:
        t = time.perf_counter()
        out = vc.iloc[first].to_numpy()
        first_s = time.perf_counter() - t
    check(out, first)
    if len(vc) != n:
        raise AssertionError(f"{a.name}: {uri} holds {len(vc)} volumes, expected {n}")
    # pass 1: time (no stats collection running)
    iloc_s, read_s = [], []
    for i in timed:
        t = time.perf_counter()
        v = vc.iloc[i]
        t1 = time.perf_counter()
        out = v.to_numpy()
        t2 = time.perf_counter()
        iloc_s.append(t1 - t)
        read_s.append(t2 - t1)
        check(out, i)
    # pass 2: storage read operations of each access, on other positions
    ops_iloc, ops_read, bytes_total = [], [], []
    for i in counted:
        with a.stats() as s1:
            v = vc.iloc[i]
        with a.stats() as s2:
            out = v.to_numpy()
        check(out, i)
        ops_iloc.append(s1.read_ops)
        ops_read.append(s2.read_ops)
        bytes_total.append(s1.read_bytes + s2.read_bytes)
    return {
        "version": a.version(),
        "n": n,
        "open_s": open_s,
        "open_read_ops": st_open.read_ops,
        "open_read_bytes": st_open.read_bytes,
        "first_s": first_s,
        "first_read_ops": st_first.read_ops,
        "first_read_bytes": st_first.read_bytes,
        "iloc_s": iloc_s,
        "to_numpy_s": read_s,
        "access_s": [x + y for x, y in zip(iloc_s, read_s)],
        "iloc_read_ops": ops_iloc,
        "to_numpy_read_ops": ops_read,
        "access_read_ops": [x + y for x, y in zip(ops_iloc, ops_read)],
        "access_read_bytes": bytes_total,
    }


WORKERS = {"ingest": work_ingest, "write": work_write, "build": work_build, "iloc": work_iloc}


def run_worker(kind: str, store: str, **kw) -> dict:
    env = dict(os.environ)
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # the reference runs boto3's credential chain on first use
    if store == REFERENCE:
        if not (PEER_PATH / "radiobject" / "__init__.py").exists():
            raise SystemExit(f"the reference package is missing at {PEER_PATH} (bash scripts/setup.sh installs it)")
        env["PYTHONPATH"] = str(PEER_PATH)
    spec = json.dumps({"kind": kind, "store": store, **kw})
    # the worker's stderr (progress, warnings, tracebacks) goes straight to ours
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", spec],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=3600,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker for {store} failed ({proc.returncode}):\n{proc.stdout}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULT@@")][-1]
    return json.loads(line[len("@@RESULT@@") :])


# ---------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------


def med(xs) -> float:
    return statistics.median(xs)


def ms(s: float) -> str:
    v = s * 1e3
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
            + " |"
        )

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *[line(r) for r in rows]]


def faster(ratio: float) -> str:
    """'2.1x faster' for ratio = their time / our time >= 1, else '1.6x slower'."""
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def bar_line(b: dict) -> str:
    verdict = "INFO" if b["passed"] is None else ("PASS" if b["passed"] else "FAIL")
    return f"  {verdict}  {b['shown']:>22}  bar {b['bar']:<24} {b['label']}"


def bench_ingest(args, out: Path, stores: list[str], report: dict) -> list[str]:
    n = args.subjects or (8 if args.quick else 24)
    runs = args.runs or (1 if args.quick else 3)
    src = out / f"niftis-{'x'.join(map(str, NIFTI_SHAPE))}-n{n}"
    log(f"[ingest] {n} NIfTI files {NIFTI_SHAPE} int16 under {src}")
    info = make_niftis(src, n, NIFTI_SHAPE)
    sids = sorted(info["digests"])
    check = sorted({sids[0], sids[len(sids) // 2], sids[-1]})
    res: dict = {s: [] for s in stores}
    for r in range(runs):
        for store in stores:
            uri = out / "ingest" / f"{SLUG[store]}-run{r}"
            shutil.rmtree(uri, ignore_errors=True)
            uri.parent.mkdir(parents=True, exist_ok=True)
            got = run_worker("ingest", store, uri=str(uri), pattern=str(src / "*.nii.gz"), check=check)
            for sid, d in got["digests"].items():
                if d != info["digests"][sid]:
                    raise SystemExit(f"{store} ingest: the voxels of {sid} differ from the source NIfTI")
            if got["n"] != n:
                raise SystemExit(f"{store} ingest: {got['n']} volumes, expected {n}")
            res[store].append(got)
            log(f"  {store} run {r + 1}/{runs}: {got['s']:.2f} s ({n / got['s']:.1f} volumes/s)")
            shutil.rmtree(uri, ignore_errors=True)
    rows = []
    for store in stores:
        t = med([g["s"] for g in res[store]])
        tails = [g["tail_s"] for g in res[store] if g.get("tail_s") is not None]
        rows.append(
            [
                store,
                f"{t:.2f}",
                " ".join(f"{g['s']:.2f}" for g in res[store]),
                f"{med(tails):.2f}" if tails else "—",
                f"{n / t:.1f}",
                f"{info['decoded_mb'] / t:.0f}",
                f"{info['file_mb'] / t:.1f}",
                f"{res[store][-1]['disk_mb']:.1f}",
            ]
        )
    bars = []
    if OURS in res and REFERENCE in res:
        o, r = med([g["s"] for g in res[OURS]]), med([g["s"] for g in res[REFERENCE]])
        bars.append(
            {
                "label": f"ours ingest vs RadiObject 0.1.1 ({n} volumes: {o:.2f} vs {r:.2f} s)",
                "value": r / o,
                "shown": faster(r / o),
                "bar": ">= 3x faster",
                "passed": r / o >= 3,
            }
        )
    report["ingest"] = {
        "subjects": n,
        "shape": list(NIFTI_SHAPE),
        "runs": runs,
        "source": {k: v for k, v in info.items() if k != "digests"},
        "checked_subjects": check,
        "results": res,
        "bars": bars,
    }
    lines = [
        f"### 1. Ingest: {n} NIfTI files, {NIFTI_SHAPE[0]}x{NIFTI_SHAPE[1]}x{NIFTI_SHAPE[2]} int16 "
        f"({info['decoded_mb']:.1f} MB decoded, {info['file_mb']:.1f} MB .nii.gz); median of {runs} run(s), fresh process and URI each",
        "",
        *table(
            [
                "store",
                "wall s",
                "runs s",
                "after last volume s",
                "volumes/s",
                "MB/s decoded",
                "MB/s .nii.gz",
                "dataset MB",
            ],
            rows,
        ),
        "",
        f"voxels of {', '.join(check)} checked equal to the source (dtype, shape, values) after every run, for both."
        " 'after last volume' = time from the last volume written (ours: progress callback) to the call's return"
        " (registration, obs, manifest consolidation, opening the result).",
        "",
        *[bar_line(b) for b in bars],
    ]
    return lines


def bench_writes(args, out: Path, stores: list[str], report: dict) -> list[str]:
    small = 100
    big = {OURS: 1000, REFERENCE: 300 if args.quick else 1000}
    runs = {OURS: args.runs or (1 if args.quick else 3), REFERENCE: 1}
    log(f"[writes] 16^3 int16 volumes, collections of {small} and {big[OURS]} volumes")
    res: dict = {}
    for store in stores:
        res[store] = {}
        for n in (small, big[store]):
            res[store][n] = []
            for r in range(runs[store]):
                uri = out / "writes" / f"{SLUG[store]}-n{n}-run{r}"
                shutil.rmtree(uri, ignore_errors=True)
                uri.parent.mkdir(parents=True, exist_ok=True)
                got = run_worker("write", store, uri=str(uri), n=n)
                res[store][n].append(got)
                log(
                    f"  {store} {n} volumes run {r + 1}/{runs[store]}: {got['total_s']:.1f} s ({got['total_s'] / n * 1e3:.1f} ms/volume)"
                )
                shutil.rmtree(uri, ignore_errors=True)

    def per_volume(store: str, n: int) -> float:
        return med([g["total_s"] / n for g in res[store][n]])

    rows = []
    for store in stores:
        for n in (small, big[store]):
            gs = res[store][n]
            rows.append(
                [
                    store,
                    str(n),
                    str(len(gs)),
                    f"{med([g['total_s'] for g in gs]):.2f}",
                    ms(per_volume(store, n)),
                    ms(med([med(g["per_volume_s"][:100]) for g in gs])),
                    ms(med([med(g["per_volume_s"][-100:]) for g in gs])),
                    ms(med([g["exit_s"] for g in gs])),
                    str(gs[-1]["volumes_group_files"]),
                ]
            )
    bars = []
    if OURS in res:
        a, b = per_volume(OURS, small), per_volume(OURS, big[OURS])
        bars.append(
            {
                "label": f"ours per-volume write at {big[OURS]} vs {small} volumes ({b * 1e3:.1f} vs {a * 1e3:.1f} ms)",
                "value": b / a,
                "shown": f"{b / a:.2f}x",
                "bar": "<= 1.2x",
                "passed": b / a <= 1.2,
            }
        )
    if REFERENCE in res:
        a, b = per_volume(REFERENCE, small), per_volume(REFERENCE, big[REFERENCE])
        bars.append(
            {
                "label": f"RadiObject 0.1.1 per-volume write at {big[REFERENCE]} vs {small} volumes ({b * 1e3:.1f} vs {a * 1e3:.1f} ms)",
                "value": b / a,
                "shown": f"{b / a:.2f}x",
                "bar": "(reference)",
                "passed": None,
            }
        )
        if OURS in res:
            nb = big[REFERENCE]
            o = per_volume(OURS, nb) if nb in res[OURS] else None
            if o:
                r = per_volume(REFERENCE, nb)
                bars.append(
                    {
                        "label": f"ours vs RadiObject 0.1.1 per-volume write at {nb} volumes ({o * 1e3:.1f} vs {r * 1e3:.1f} ms)",
                        "value": r / o,
                        "shown": faster(r / o),
                        "bar": "(no bar)",
                        "passed": None,
                    }
                )
    report["writes"] = {
        "shape": list(TINY),
        "dtype": "int16",
        "small": small,
        "big": big,
        "runs": runs,
        "results": {s: {str(n): v for n, v in d.items()} for s, d in res.items()},
        "bars": bars,
    }
    return [
        f"### 2. Per-volume write cost: 16^3 int16 volumes, collections of {small} and {big[OURS]} volumes"
        f"{f' ({big[REFERENCE]} for the reference)' if REFERENCE in stores and big[REFERENCE] != big[OURS] else ''}; "
        "median over runs, fresh process and URI each (ms)",
        "",
        *table(
            [
                "store",
                "volumes",
                "runs",
                "total s",
                "per volume",
                "first 100 (median)",
                "last 100 (median)",
                "__exit__",
                "volumes/__group files",
            ],
            rows,
        ),
        "",
        "per volume = (__enter__ + all write_volume + __exit__) / N. Each collection checked after writing (length; first, middle, last volume).",
        "",
        *[bar_line(b) for b in bars],
    ]


def ensure_collection(out: Path, n: int, rebuild: bool) -> Path:
    uri = out / "iloc" / f"tiny16-n{n}"
    marker = out / "iloc" / f"tiny16-n{n}.json"
    want = {"recipe": RECIPE, "n": n, "shape": list(TINY)}
    if not rebuild and marker.exists() and uri.exists():
        got = json.loads(marker.read_text())
        if {k: got.get(k) for k in want} == want:
            log(f"  reusing the {n}-volume collection at {uri} (built {got.get('built')} by {got.get('version')})")
            return uri
    marker.unlink(missing_ok=True)
    shutil.rmtree(uri, ignore_errors=True)
    uri.parent.mkdir(parents=True, exist_ok=True)
    log(f"  building the {n}-volume collection with ours at {uri} (cached for later runs)")
    got = run_worker("build", OURS, uri=str(uri), n=n)
    log(f"  built in {got['s']:.0f} s ({got['s'] / n * 1e3:.1f} ms/volume)")
    marker.write_text(
        json.dumps({**want, "version": got["version"], "build_s": got["s"], "built": time.strftime("%Y-%m-%d %H:%M")})
    )
    return uri


def bench_iloc(args, out: Path, stores: list[str], report: dict) -> list[str]:
    sizes = (100, 1000) if args.quick else (1000, 10000)
    accesses, counted = (40, 20) if args.quick else (200, 50)
    log(f"[iloc] collections of {sizes[0]} and {sizes[1]} volumes (built with ours, read by every store)")
    uris = {n: ensure_collection(out, n, args.rebuild) for n in sizes}
    res: dict = {s: {} for s in stores}
    for n in sizes:
        for store in stores:
            got = run_worker("iloc", store, uri=str(uris[n]), n=n, accesses=accesses, counted=counted)
            res[store][n] = got
            log(
                f"  {store} n={n}: open {got['open_s'] * 1e3:.1f} ms, first {got['first_s'] * 1e3:.1f} ms, access {med(got['access_s']) * 1e3:.2f} ms, "
                f"{med(got['access_read_ops']):g} read ops/access"
            )

    def ops(xs) -> str:
        lo, hi, m = min(xs), max(xs), med(xs)
        return f"{m:g}" if lo == hi else f"{m:g} ({lo}-{hi})"

    rows = []
    for n in sizes:
        for store in stores:
            g = res[store][n]
            rows.append(
                [
                    store,
                    str(n),
                    f"{ms(g['open_s'])} / {g['open_read_ops']}",
                    f"{ms(g['first_s'])} / {g['first_read_ops']}",
                    ms(med(g["iloc_s"])),
                    ms(med(g["to_numpy_s"])),
                    ms(med(g["access_s"])),
                    ops(g["iloc_read_ops"]),
                    ops(g["to_numpy_read_ops"]),
                    ops(g["access_read_ops"]),
                    f"{med(g['access_read_bytes']) / 1e3:.1f}",
                ]
            )
    bars = []
    if OURS in res:
        a, b = res[OURS][sizes[0]]["access_read_ops"], res[OURS][sizes[1]]["access_read_ops"]
        same = med(a) == med(b) and max(b) <= max(a)
        bars.append(
            {
                "label": f"ours storage reads per iloc[i].to_numpy() at {sizes[1]} vs {sizes[0]} volumes (median {med(b):g} vs {med(a):g}; max {max(b)} vs {max(a)})",
                "value": med(b) / med(a) if med(a) else None,
                "shown": f"{med(b):g} vs {med(a):g}",
                "bar": "equal (O(1))",
                "passed": same,
            }
        )
    if OURS in res and REFERENCE in res:
        for n in sizes:
            o, r = res[OURS][n], res[REFERENCE][n]
            tr = med(r["access_s"]) / med(o["access_s"])
            bars.append(
                {
                    "label": f"ours vs RadiObject 0.1.1 per access at {n} volumes ({med(o['access_s']) * 1e3:.2f} vs {med(r['access_s']) * 1e3:.2f} ms;"
                    f" read ops {med(o['access_read_ops']):g} vs {med(r['access_read_ops']):g})",
                    "value": tr,
                    "shown": faster(tr),
                    "bar": "(no bar)",
                    "passed": None,
                }
            )
            fo, fr = o["open_s"] + o["first_s"], r["open_s"] + r["first_s"]
            bars.append(
                {
                    "label": f"ours vs RadiObject 0.1.1 open + first access at {n} volumes ({fo * 1e3:.1f} vs {fr * 1e3:.1f} ms;"
                    f" read ops {o['open_read_ops'] + o['first_read_ops']} vs {r['open_read_ops'] + r['first_read_ops']})",
                    "value": fr / fo,
                    "shown": faster(fr / fo),
                    "bar": "(no bar)",
                    "passed": None,
                }
            )
    report["iloc"] = {
        "sizes": list(sizes),
        "accesses": accesses,
        "counted": counted,
        "built_with": OURS,
        "results": {s: {str(n): v for n, v in d.items()} for s, d in res.items()},
        "bars": bars,
    }
    return [
        f"### 3. iloc[i] on collections of {sizes[0]} and {sizes[1]} 16^3 int16 volumes (built with ours; both packages read the same collection)",
        "",
        f"ms (median of {accesses} distinct random positions) and storage read ops (median over {counted} other positions; (min-max) when they vary)",
        "",
        *table(
            [
                "store",
                "volumes",
                "open ms / ops",
                "first access ms / ops",
                "iloc[i]",
                ".to_numpy()",
                "access",
                "ops iloc",
                "ops to_numpy",
                "ops access",
                "KB read/access",
            ],
            rows,
        ),
        "",
        "open = VolumeCollection(uri); first access = iloc[i].to_numpy() right after (the reference reads obs for its index here);"
        " access = iloc[i] + .to_numpy() of another volume. Every array read checked equal to the volume written.",
        "",
        *[bar_line(b) for b in bars],
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smaller N everywhere (8 subjects, 1 run, iloc on 100 and 1,000 volumes; ~1-2 min once cached)",
    )
    ap.add_argument("--json", metavar="PATH", help="write all samples and results as JSON")
    ap.add_argument(
        "--out",
        default=".data/bench-datasets",
        help="data, datasets and cached collections (default .data/bench-datasets)",
    )
    ap.add_argument("--skip-reference", action="store_true", help="measure ours only")
    ap.add_argument("--subjects", type=int, help="NIfTI files to ingest (default 24; 8 with --quick)")
    ap.add_argument("--runs", type=int, help="runs of ingest (both) and of our writes (default 3; 1 with --quick)")
    ap.add_argument("--only", default="ingest,writes,iloc", help="comma-separated subset of: ingest, writes, iloc")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached iloc collections")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print("@@RESULT@@" + json.dumps(WORKERS[spec["kind"]](spec)))
        return

    stores = [OURS] if args.skip_reference else [OURS, REFERENCE]
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - {"ingest", "writes", "iloc"}
    if unknown:
        ap.error(f"unknown part(s) {sorted(unknown)}")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    head = f"{platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · load {load0[0]:.2f}"
    log(head)
    report: dict = {"cpus": os.cpu_count(), "load_start": load0, "seed": SEED, "quick": args.quick, "stores": stores}
    lines: list[str] = []
    for part, fn in (("ingest", bench_ingest), ("writes", bench_writes), ("iloc", bench_iloc)):
        if part in only:
            lines += ["", *fn(args, out, stores, report)]
    load1 = os.getloadavg()
    report["load_end"] = load1
    report["wall_s"] = time.perf_counter() - t0
    print(head)
    versions = {}
    for part in ("ingest", "writes", "iloc"):
        for store, r in report.get(part, {}).get("results", {}).items():
            first = r[0] if isinstance(r, list) else next(iter(r.values()))
            first = first[0] if isinstance(first, list) else first
            versions.setdefault(store, first["version"])
    for store, v in versions.items():
        print(f"{store}: {v}")
    print("\n".join(lines))
    print(
        f"\nload average {load0[0]:.2f} at start, {load1[0]:.2f} at end; {report['wall_s']:.0f} s in all. Absolute times drift"
        f" ±50% between runs on a shared 2-core machine; ratios measured in the same run hold better."
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
