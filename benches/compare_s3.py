"""S3 benchmark: radiobject's direct tile reader against libtiledb, on local disk, on S3 (moto on
127.0.0.1) and on S3 behind a proxy adding 50 ms to every request, in one run, on the same data.

Data (generated once per run, :func:`benches.data.brain_phantom`, float32, background exactly 0):

* ``--volumes`` (default 8) volumes of ``--shape`` (default 128^3), isotropic 64^3 tiles, default
  compression (zstd 3), written to a local folder and to S3;
* a RadiObject of ``--subjects`` (default 8) subjects x two collections (T1w, FLAIR) of the same
  shape and tiling, written to a local folder and to S3.

Storages: ``local`` (the OS page cache is warm: this is decoding and assembly, not the disk),
``S3`` (moto on 127.0.0.1, sub-millisecond round trips; moto itself is a Python server, so its
throughput, not the network, bounds this column) and ``S3+50ms`` (the same moto behind
``tests/s3_delay_proxy.py``: one extra ``--delay-ms`` per request, as on a real network; requests
on separate connections wait out their delays concurrently).

Paths: ``direct`` (default configuration: the direct reader; ``ReadConfig()``) and ``libtiledb``
(``ReadConfig(direct_reads=False)``). Every measurement uses a fresh :class:`radiobject.Context`, so
no cache carries over; each is run once.

Operations:

* ``open``: opening the volumes (``Volume(uri, ctx=ctx)``, one after the other; libtiledb opens
  every volume, and the direct path then also reads the array's commits, schema and fragment
  metadata itself); ms per volume.

* ``batch``: 32 cold 64^3 regions, 4 per volume (grouped by volume), each crossing tile boundaries
  on every axis (8 tiles), read with one ``radiobject.parallel.read_regions`` call; the volumes are
  opened before the clock starts.
* ``whole``: every volume read whole (``Volume.to_numpy()``), one after the other, cold; ms per
  volume.
* ``loader e1`` / ``loader e2+``: ``radiobject.ml.create_training_dataloader([radi.T1w, radi.FLAIR],
  batch_size=4, patch_size=(64, 64, 64), patches_per_volume=4, num_workers=0, seed=0)``, no training
  step: epoch 1 (cold) and epochs 2-3 together (tile cache and compressed-tile tier warm; new patch
  positions every epoch), samples/s; at most ``--max-batches`` batches per epoch.

Before the measurements a local batch and a short local loader epoch run once (not reported), so
the first measured column does not pay for starting threads and importing torch.

Requests per operation: the direct reader's own requests (``RadiObject.IO.range_requests`` +
``RadiObject.IO.list_requests``) plus libtiledb's reads (``Context.VFS.read_ops_num``; its listings
and HEADs are not counted there) inside the timed section.

Bars (from the issue): ``batch`` on S3+50ms within 3x local; loader throughput over S3 at least
50% of local.

Usage::

    .venv/bin/python benches/compare_s3.py [--quick] [--volumes 8] [--shape 128] [--subjects 8]
        [--delay-ms 50] [--max-batches N] [--json PATH]

moto is the one named by ``RADIOBJECT_TEST_S3_ENDPOINT`` (scripts/test.sh exports it) or one this
script starts from ``.venv/bin/moto_server`` and stops at the end. Progress goes to stderr, the
tables to stdout, everything to ``--json`` (default ``.data/bench/compare_s3.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# moto accepts any credentials; set before anything builds an S3 client.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing-secret-value")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import radiobject as ro  # noqa: E402
from benches.data import brain_phantom  # noqa: E402
from radiobject import TileDBStats, Volume  # noqa: E402
from radiobject.parallel import read_regions  # noqa: E402

BUCKET = "radiobject-bench"
ROI = 64
REGIONS = 32
STORAGES = ("local", "S3", "S3+50ms")
PATHS = ("direct", "libtiledb")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# moto
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """A helper server process of this benchmark, stopped (with its process group) on exit."""

    proc: subprocess.Popen | None = None

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)


class Moto(_Server):
    """The moto server of ``RADIOBJECT_TEST_S3_ENDPOINT``, or one started here."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.endpoint = os.environ.get("RADIOBJECT_TEST_S3_ENDPOINT", "")

    def __enter__(self) -> Moto:
        if self.endpoint:
            return self
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
        if exe is None:
            raise SystemExit("moto_server is not installed (bash scripts/setup.sh installs it)")
        port = _free_port()
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"moto_server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("moto_server did not start within 30 s") from None
                time.sleep(0.1)
        self.endpoint = f"http://127.0.0.1:{port}"
        return self


class Proxy(_Server):
    """``tests/s3_delay_proxy.py`` in its own process (in this one, its event loop would compete
    for the GIL with the loader's Python code and add latency of its own)."""

    def __init__(self, target: str, delay_ms: float) -> None:
        self.target = target.split("://", 1)[-1].rstrip("/")
        self.delay_ms = delay_ms
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""

    def __enter__(self) -> Proxy:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "s3_delay_proxy.py"), "--listen", "127.0.0.1:0",
             "--target", self.target, "--delay-ms", str(self.delay_ms)],
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            raise SystemExit(f"the delay proxy did not start (printed {line!r})")
        self.endpoint = f"http://127.0.0.1:{int(line)}"
        return self


def config(endpoint: str | None, **read) -> ro.RadiObjectConfig:
    s3 = ro.S3Config(endpoint=endpoint, use_virtual_addressing=False, region="us-east-1") if endpoint else ro.S3Config()
    return ro.RadiObjectConfig(s3=s3, read=ro.ReadConfig(**read))


def fresh_ctx(endpoint: str | None, path: str) -> ro.Context:
    return ro.Context(config(endpoint, **({} if path == "direct" else {"direct_reads": False})))


def requests_of(c: dict) -> dict:
    return {
        "direct_requests": int(c.get("RadiObject.IO.range_requests", 0)),
        "list_requests": int(c.get("RadiObject.IO.list_requests", 0)),
        "overlapped": int(c.get("RadiObject.IO.overlapped_requests", 0)),
        "vfs_reads": int(c.get("Context.VFS.read_ops_num", 0)),
        "bytes": int(c.get("RadiObject.IO.bytes_fetched", 0)) + int(c.get("Context.VFS.read_byte_num", 0)),
        "direct_tiles": int(c.get("RadiObject.Direct.tiles", 0)),
        "compressed_hits": int(c.get("RadiObject.CompressedCache.hits", 0)),
        "fallbacks": int(c.get("RadiObject.Direct.fallbacks", 0)),
    }


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def batch_regions(n_volumes: int, shape: int, seed: int = 0) -> list[tuple[int, list[tuple[int, int]]]]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(REGIONS):
        v = k * n_volumes // REGIONS
        # crosses the 64-boundary on every axis of a 128^3 volume; clipped for other shapes
        lo, hi = max(1, ROI // 8), max(2, shape - ROI - ROI // 8)
        start = [int(rng.integers(lo, hi)) if hi > lo else 0 for _ in range(3)]
        out.append((v, [(a, a + ROI) for a in start]))
    return out


def write_data(args, s3_prefix: str, local_dir: Path, endpoint: str) -> dict:
    from radiobject.writers import RadiObjectWriter

    shape = (args.shape,) * 3
    write = ro.WriteConfig(tile={"orientation": "isotropic"})
    s3_ctx = ro.Context(config(endpoint))
    local_ctx = ro.Context(config(None))
    s3_ctx.ensure_bucket(s3_prefix)
    t = time.perf_counter()
    vols = {"local": [], "S3": []}
    datas = []
    for i in range(args.volumes):
        d = brain_phantom(shape, seed=100 + i)
        datas.append(d)
        for where, base, ctx in (("local", str(local_dir), local_ctx), ("S3", s3_prefix, s3_ctx)):
            uri = f"{base}/vol{i}"
            Volume.from_numpy(uri, d, ctx=ctx, write=write)
            vols[where].append(uri)
        log(f"  volume {i + 1}/{args.volumes} written ({time.perf_counter() - t:.0f} s)")
    radi = {}
    for where, base, ctx in (("local", str(local_dir), local_ctx), ("S3", s3_prefix, s3_ctx)):
        uri = f"{base}/radi"
        with RadiObjectWriter(uri, ctx=ctx, write=write) as w:
            for m, mod in enumerate(("T1w", "FLAIR")):
                with w.add_collection(mod, shape=shape) as cw:
                    for k in range(args.subjects):
                        cw.write_volume(
                            brain_phantom(shape, seed=1000 * (m + 1) + k), f"sub-{k:03d}_{mod}", f"sub-{k:03d}"
                        )
        radi[where] = uri
        log(f"  RadiObject on {where} written ({time.perf_counter() - t:.0f} s)")
    vols["S3+50ms"] = vols["S3"]
    radi["S3+50ms"] = radi["S3"]
    return {"volumes": vols, "radi": radi, "datas": datas}


# ---------------------------------------------------------------------------------------------
# Operations (each on a fresh context)
# ---------------------------------------------------------------------------------------------


def op_batch(ctx, uris, batch, datas) -> tuple[dict, dict]:
    """The batch, and (separately) opening its volumes first."""
    with TileDBStats(ctx) as so:
        t = time.perf_counter()
        vols = [Volume(u, ctx=ctx) for u in uris]
        open_s = time.perf_counter() - t
    with TileDBStats(ctx) as s:
        t = time.perf_counter()
        out = read_regions([(vols[v], r) for v, r in batch], ctx=ctx)
        wall = time.perf_counter() - t
    for (v, r), a in zip(batch, out):
        if not np.array_equal(a, datas[v][tuple(slice(x, y) for x, y in r)]):
            raise AssertionError(f"batch: wrong voxels in volume {v} {r}")
    opened = {"s": open_s, "ms_per_volume": open_s * 1e3 / len(uris), **requests_of(so.all_counters())}
    return {"s": wall, **requests_of(s.all_counters())}, opened


def op_whole(ctx, uris, datas) -> dict:
    vols = [Volume(u, ctx=ctx) for u in uris]
    with TileDBStats(ctx) as s:
        t = time.perf_counter()
        outs = [v.to_numpy() for v in vols]
        wall = time.perf_counter() - t
    for a, d in zip(outs, datas):
        if not np.array_equal(a, d):
            raise AssertionError("whole: wrong voxels")
    mb = sum(d.nbytes for d in datas) / 1e6
    return {"s": wall, "ms_per_volume": wall * 1e3 / len(uris), "mb_s": mb / wall, **requests_of(s.all_counters())}


def op_loader(ctx, uri, max_batches: int) -> dict:
    import radiobject.ml as ml

    t = time.perf_counter()
    radi = ro.RadiObject(uri, ctx=ctx)
    loader = ml.create_training_dataloader([radi.T1w, radi.FLAIR], batch_size=4, patch_size=(ROI, ROI, ROI),
                                           patches_per_volume=4, num_workers=0, seed=0)  # fmt: skip
    build_s = time.perf_counter() - t
    res = {"build_s": build_s}
    # epoch 1 cold; "e2" is epochs 2 and 3 together (warm caches; short epochs time poorly alone)
    for key, epochs in (("e1", 1), ("e2", 2)):
        n = 0
        with TileDBStats(ctx) as s:
            t = time.perf_counter()
            for _ in range(epochs):
                for k, b in enumerate(loader):
                    n += int(b["image"].shape[0])
                    if k + 1 >= max_batches:
                        break
            wall = time.perf_counter() - t
        res[key] = {"s": wall, "samples": n, "samples_s": n / wall, **requests_of(s.all_counters())}
    return res


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:,.0f} ms"


def print_header() -> None:
    """The header of a table with one column per storage."""
    head = f"{'operation':<11} {'path':<10} " + " ".join(f"{w:>22}" for w in STORAGES)
    print(head)
    print("-" * len(head))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 volumes, 4 subjects, 4 loader batches")
    ap.add_argument("--volumes", type=int, default=8)
    ap.add_argument("--shape", type=int, default=128, help="edge of the cubic volumes")
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    ap.add_argument("--max-batches", type=int, default=8, help="loader batches per epoch at most")
    ap.add_argument("--json", default=str(ROOT / ".data" / "bench" / "compare_s3.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.volumes, args.subjects, args.max_batches = 4, 4, 4

    t_all = time.perf_counter()
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "load_start": os.getloadavg(), "platform": platform.platform()},
        "args": vars(args),
    }
    with Moto() as moto, Proxy(moto.endpoint, args.delay_ms) as proxy, \
            tempfile.TemporaryDirectory(prefix="compare_s3_") as tmp:  # fmt: skip
        endpoints = {"local": None, "S3": moto.endpoint, "S3+50ms": proxy.endpoint}
        prefix = f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"
        log(f"writing data (moto at {moto.endpoint}, proxy +{args.delay_ms:.0f} ms at {proxy.endpoint})")
        data = write_data(args, prefix, Path(tmp), moto.endpoint)
        batch = batch_regions(args.volumes, args.shape)
        # warm-up (not reported): worker threads, torch, the OS page cache of the local copies
        op_batch(fresh_ctx(None, "direct"), data["volumes"]["local"], batch, data["datas"])
        op_loader(fresh_ctx(None, "direct"), data["radi"]["local"], 2)
        ops: dict = {}
        for where in STORAGES:
            for path in PATHS:
                key = f"{where}/{path}"
                log(f"{key}: batch")
                b, opened = op_batch(fresh_ctx(endpoints[where], path), data["volumes"][where], batch, data["datas"])
                ops.setdefault("open", {})[key] = opened
                ops.setdefault("batch", {})[key] = b
                log(f"{key}: whole volumes")
                ops.setdefault("whole", {})[key] = op_whole(
                    fresh_ctx(endpoints[where], path), data["volumes"][where], data["datas"]
                )
                log(f"{key}: loader")
                lo = op_loader(fresh_ctx(endpoints[where], path), data["radi"][where], args.max_batches)
                ops.setdefault("loader e1", {})[key] = {**lo["e1"], "build_s": lo["build_s"]}
                ops.setdefault("loader e2+", {})[key] = lo["e2"]
        results["ops"] = ops
    results["machine"]["load_end"] = os.getloadavg()
    results["total_s"] = time.perf_counter() - t_all

    # Tables
    print(
        f"\nS3: direct reads vs libtiledb ({args.volumes} volumes {args.shape}^3 float32, 64^3 tiles; "
        f"{args.subjects} subjects x 2 collections; +{args.delay_ms:.0f} ms per request behind the proxy)"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average {results['machine']['load_start'][0]:.1f} at start, "
        f"{results['machine']['load_end'][0]:.1f} at end; total {results['total_s']:.0f} s\n"
    )
    print_header()
    for op, rows in ops.items():
        for path in PATHS:
            cells = []
            base = rows[f"local/{path}"]
            for where in STORAGES:
                r = rows[f"{where}/{path}"]
                if op.startswith("loader"):
                    v = f"{r['samples_s']:.1f}/s"
                    ratio = r["samples_s"] / base["samples_s"]
                    cell = f"{v} ({ratio:.0%})" if where != "local" else v
                else:
                    v = fmt_ms(r["ms_per_volume"] / 1e3) + "/vol" if op in ("whole", "open") else fmt_ms(r["s"])
                    ratio = r["s"] / base["s"]
                    cell = f"{v} ({ratio:.1f}x)" if where != "local" else v
                cells.append(f"{cell:>22}")
            print(f"{op:<11} {path:<10} " + " ".join(cells))
    print(
        "\nrequests per operation (direct reader's range GETs and listings + libtiledb VFS reads; overlapped = started while another was in flight)"
    )
    print_header()
    for op, rows in ops.items():
        for path in PATHS:
            cells = []
            for where in STORAGES:
                r = rows[f"{where}/{path}"]
                n = r["direct_requests"] + r["list_requests"] + r["vfs_reads"]
                cell = f"{n} ({r['overlapped']} ovl)" if path == "direct" else f"{n}"
                cells.append(f"{cell:>22}")
            print(f"{op:<11} {path:<10} " + " ".join(cells))

    b = ops["batch"]
    bar_batch = b["S3+50ms/direct"]["s"] / b["local/direct"]["s"]
    bar_loader = ops["loader e1"]["S3/direct"]["samples_s"] / ops["loader e1"]["local/direct"]["samples_s"]
    bar_loader_slow = ops["loader e1"]["S3+50ms/direct"]["samples_s"] / ops["loader e1"]["local/direct"]["samples_s"]
    bar_loader2 = ops["loader e2+"]["S3+50ms/direct"]["samples_s"] / ops["loader e2+"]["local/direct"]["samples_s"]
    results["bars"] = {
        "batch_s3_50ms_over_local": bar_batch,
        "loader_e1_s3_over_local": bar_loader,
        "loader_e1_s3_50ms_over_local": bar_loader_slow,
        "loader_e2_s3_50ms_over_local": bar_loader2,
    }
    print("\nbars (direct path, default configuration):")
    print(f"  batch S3+50ms / local = {bar_batch:.2f}x  (bar: <= 3x)  {'MET' if bar_batch <= 3 else 'NOT MET'}")
    print(f"  loader epoch 1 S3 / local = {bar_loader:.0%}  (bar: >= 50%)  {'MET' if bar_loader >= 0.5 else 'NOT MET'}")
    print(
        f"  loader epoch 1 S3+50ms / local = {bar_loader_slow:.0%}  (bar: >= 50%)  {'MET' if bar_loader_slow >= 0.5 else 'NOT MET'}"
    )
    print(
        f"  loader epochs 2-3 S3+50ms / local = {bar_loader2:.0%}  (bar: >= 50%)  {'MET' if bar_loader2 >= 0.5 else 'NOT MET'}"
    )

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
