"""``radiobject bench-loader``: measure loader settings on your own store, print the best one.

Runs the training loader over the given collections for a bounded time with a few settings of
reader threads (``ReadConfig.max_workers``), ``prefetch`` and ``num_workers``, each from a cold
tile cache, and prints samples/s and the time the loop waited for data, then the best setting as
code to paste. With ``--step-ms`` each batch is followed by a simulated training step of that
length, so the ranking reflects a loop that does work between batches.

Example::

    radiobject bench-loader brats.ro --collection T1w --collection FLAIR --patch 64 --seconds 60
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["main", "Setting", "measure"]


@dataclass(frozen=True)
class Setting:
    """One loader setting."""

    threads: int
    prefetch: int
    num_workers: int

    def label(self) -> str:
        return f"threads={self.threads} prefetch={self.prefetch} num_workers={self.num_workers}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radiobject bench-loader",
        description="Measure training-loader settings (reader threads, prefetch, worker processes) on a "
        "dataset for a bounded time and print the fastest as a ready-to-paste configuration.",
    )
    p.add_argument("uri", help="dataset URI (local path or s3://bucket/prefix)")
    p.add_argument("--collection", "-c", action="append", required=True,
                   help="collection to load as a channel (repeat for several)")  # fmt: skip
    p.add_argument("--mask", help="segmentation mode: mask collection (one --collection is the image)")
    p.add_argument("--patch", type=int, nargs="+", metavar="N",
                   help="patch size: one value (cube) or three; default: whole volumes")  # fmt: skip
    p.add_argument("--slices", choices=["axial", "sagittal", "coronal"], help="2D slices instead of volumes/patches")
    p.add_argument("--batch-size", "-b", type=int, default=4)
    p.add_argument("--patches-per-volume", type=int, default=1)
    p.add_argument("--seconds", type=float, default=60.0, help="total time budget (default 60)")
    p.add_argument("--step-ms", type=float, default=0.0, help="simulated training step per batch (default 0)")
    p.add_argument("--threads", type=int, nargs="+", help="reader threads to try (default: 1, cores/2, cores, 2x)")
    p.add_argument("--prefetch", type=int, nargs="+", default=[0, 2, 4], help="prefetch depths to try")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="num_workers values to try")
    p.add_argument("--cache-mb", type=int, help="tile cache per context in MiB (default: the configuration's)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p


def _settings(a: argparse.Namespace) -> list[Setting]:
    from radiobject.ml.utils.worker_init import cpu_count

    cores = cpu_count()
    threads = a.threads or sorted({1, max(1, cores // 2), cores, 2 * cores})
    out: list[Setting] = []
    for t, p, w in itertools.product(threads, a.prefetch, a.workers):
        if w > 0 and p != a.prefetch[0]:
            continue  # prefetch is native with num_workers=0 only; workers use torch's prefetch_factor
        if w > 0 and t != threads[0]:
            continue  # each worker gets cores // num_workers threads
        out.append(Setting(t, p, w))
    return out


def _factory_call(a: argparse.Namespace, s: Setting) -> str:
    colls = ", ".join(f"radi.{c}" if c.isidentifier() else f"radi.collection({c!r})" for c in a.collection)
    patch = _patch(a)
    if a.mask:
        args = [
            f"image={colls}",
            f"mask=radi.{a.mask}" if a.mask.isidentifier() else f"mask=radi.collection({a.mask!r})",
        ]
        fn = "create_segmentation_dataloader"
    else:
        args = [f"collections=[{colls}]"]
        fn = "create_training_dataloader"
    args.append(f"batch_size={a.batch_size}")
    if patch:
        args.append(f"patch_size={patch}")
        args.append(f"patches_per_volume={a.patches_per_volume}")
    if a.slices:
        args.append(f"slice_orientation={a.slices!r}")
    args.append(f"num_workers={s.num_workers}")
    if s.num_workers == 0:
        args.append(f"prefetch={s.prefetch}")
    return f"{fn}({', '.join(args)})"


def _patch(a: argparse.Namespace) -> tuple[int, int, int] | None:
    if not a.patch:
        return None
    if len(a.patch) == 1:
        return (a.patch[0],) * 3
    if len(a.patch) != 3:
        raise SystemExit("--patch takes one or three values")
    return tuple(a.patch)


def measure(a: argparse.Namespace, s: Setting, seconds: float) -> dict[str, Any]:
    """Runs the loader with setting ``s`` from a cold cache for about ``seconds``."""
    import radiobject as ro
    from radiobject.ml import create_segmentation_dataloader, create_training_dataloader

    read: dict[str, Any] = {"max_workers": s.threads}
    if a.cache_mb is not None:
        read["tile_cache_size_mb"] = a.cache_mb
    base = ro.get_radiobject_config().read
    ro.configure(read=ro.ReadConfig(**{**base.model_dump(), **read}))
    radi = ro.RadiObject(a.uri)
    colls = [radi.collection(c) for c in a.collection]
    common: dict[str, Any] = {"batch_size": a.batch_size, "num_workers": s.num_workers, "seed": 0, "verify": False}
    if s.num_workers == 0:
        common["prefetch"] = s.prefetch
    patch = _patch(a)
    if a.mask:
        loader = create_segmentation_dataloader(colls[0], radi.collection(a.mask), patch_size=patch,
                                                patches_per_volume=a.patches_per_volume, **common)  # fmt: skip
    else:
        loader = create_training_dataloader(colls, patch_size=patch, patches_per_volume=a.patches_per_volume,
                                            slice_orientation=a.slices, **common)  # fmt: skip
    t_end = time.perf_counter() + seconds
    batches = samples = 0
    wait = 0.0
    t0 = time.perf_counter()
    done = False
    first = None
    while not done:
        it = iter(loader)
        while True:
            tw = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            now = time.perf_counter()
            wait += now - tw
            if first is None:
                first = now - t0
            batches += 1
            samples += int(next(iter(batch.values())).shape[0])
            if a.step_ms:
                time.sleep(a.step_ms / 1000)
            if time.perf_counter() >= t_end and batches >= 3:
                done = True
                break
        if not done and batches == 0:
            break
    elapsed = time.perf_counter() - t0
    st = loader.stats()
    del it, loader
    return {
        "setting": s.label(),
        "threads": s.threads,
        "prefetch": s.prefetch,
        "num_workers": s.num_workers,
        "batches": batches,
        "samples": samples,
        "seconds": elapsed,
        "samples_per_s": samples / elapsed if elapsed else 0.0,
        "wait_fraction": wait / elapsed if elapsed else 0.0,
        "first_batch_s": first,
        "read_ms_per_batch": st.read_s_per_batch * 1000,
        "cache_hit_rate": st.cache_hit_rate,
    }


def main(argv: list[str] | None = None) -> int:
    """Runs the command; returns its exit code."""
    a = _parser().parse_args(argv)
    if a.mask and len(a.collection) != 1:
        raise SystemExit("--mask needs exactly one --collection (the image)")
    if a.batch_size < 1 or a.seconds <= 0:
        raise SystemExit("--batch-size and --seconds must be positive")
    settings = _settings(a)
    per = a.seconds / len(settings)
    results: list[dict[str, Any]] = []
    for k, s in enumerate(settings, 1):
        print(f"[{k}/{len(settings)}] {s.label()} ...", file=sys.stderr, end="", flush=True)
        try:
            r = measure(a, s, per)
        except Exception as e:  # noqa: BLE001 - report and go on with the other settings
            print(f" failed: {e}", file=sys.stderr)
            results.append({"setting": s.label(), "error": str(e)})
            continue
        print(f" {r['samples_per_s']:.1f} samples/s, waited {r['wait_fraction']:.0%}", file=sys.stderr)
        results.append(r)
    ok = [r for r in results if "error" not in r]
    if not ok:
        print("error: no setting could run", file=sys.stderr)
        return 2
    best = max(ok, key=lambda r: r["samples_per_s"])
    s = Setting(best["threads"], best["prefetch"], best["num_workers"])
    if a.json:
        print(json.dumps({"results": results, "best": best}, indent=2))
        return 0
    print(f"{'setting':<40} {'samples/s':>10} {'wait':>6} {'read ms/batch':>14} {'first batch s':>14}")
    for r in results:
        if "error" in r:
            print(f"{r['setting']:<40} failed: {r['error']}")
        else:
            print(f"{r['setting']:<40} {r['samples_per_s']:>10.1f} {r['wait_fraction']:>6.0%} "
                  f"{r['read_ms_per_batch']:>14.1f} {r['first_batch_s'] or 0:>14.2f}")  # fmt: skip
    print(f"\nBest: {s.label()} ({best['samples_per_s']:.1f} samples/s). Paste:\n")
    print("from radiobject import RadiObject, ReadConfig, configure")
    print("from radiobject.ml import create_segmentation_dataloader, create_training_dataloader\n")
    print(f"configure(read=ReadConfig(max_workers={s.threads}))")
    print(f"radi = RadiObject({a.uri!r})")
    print(f"loader = {_factory_call(a, s)}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
