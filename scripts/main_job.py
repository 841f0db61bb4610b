"""The main job: build a dataset from real sample images, verify it, read it back; then store the two
sample volumes on their own and time reads. Prints timings and cache statistics.

Part 1, a dataset (``.data/main-job/dataset``), ingested with ``RadiObject.from_images`` from files
staged under ``.data/main-job/sources/`` (one folder per collection, files named by subject):

* ``sub-mni152``: nilearn's MNI152 T1 template and its grey- and white-matter maps (197x233x189
  uint8 each, shipped in the nilearn wheel) as collections ``T1w``, ``GM`` and ``WM``;
* ``sub-phantom01..04``: generated brain phantoms (``benches/data.py``, 120x120x78 here to stay
  quick), written as int16 NIfTI with nibabel, more subjects of ``T1w``;
* ``sub-example4d``: nibabel's 4D example (128x96x24x2 int16, LAS), collection ``bold``: a 4D
  functional series is a different kind of image than a T1w, and it is not the template's;
* ``sub-ct01``: pydicom's 4-slice CT test series (``dicomdirtests/77654033/CT2``), collection
  ``CT``, stored in Hounsfield units;

with an ``obs_meta`` table (age, sex, site: a null and non-ASCII text). The dataset is verified
(``radiobject.verify``, voxels re-read; the job fails if anything is wrong), summarised as
``radiobject info`` does, ingested again (nothing to do), and read back through ``RadiObject`` and
``VolumeCollection``: views by position, id and filter, whole volumes, axial slices and 64^3
regions, cold and warm. Every read is compared with the source array, read independently with
nibabel/pydicom.

Part 2, the sample volumes on their own: nilearn's MNI152 T1 template (197x233x189 uint8) and a
generated 240x240x155 float32 brain phantom (BraTS-sized), each stored with axial and with isotropic
tiles, then read as whole volumes, axial slices and random 64^3 regions, cold (empty cache) and
warm. Every result is checked against the source array.

Part 3, training: a tiny 3D CNN trained for a few steps on the dataset's ``T1w`` collection
through ``radiobject.ml.create_training_dataloader`` (random 32^3 patches, new every epoch,
reproducible from the seed), checking each batch against the volumes, and printing the loader's
statistics (samples/s, time waited for data, tile-cache hits).

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
from radiobject import RadiObject, ReadConfig, TileDBStats, Volume, WriteConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benches.data import brain_phantom, mni_t1  # the sample volumes, shared with the benchmarks

PHANTOM_SHAPE = (120, 120, 78)
N_PHANTOMS = 4


def ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:8.2f} ms"


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def check(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Fails the job unless ``got`` equals ``want`` (values and dtype)."""
    if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
        raise AssertionError(
            f"{what}: read {got.dtype}{got.shape}, expected {want.dtype}{want.shape} (or values differ)"
        )


# ---------------------------------------------------------------------------------------------
# Part 1: a dataset from real images
# ---------------------------------------------------------------------------------------------


def sample_files() -> dict[str, Path]:
    """Real images shipped inside the nilearn, nibabel and pydicom wheels (no download)."""
    import nibabel
    import nilearn
    import pydicom

    nl = Path(nilearn.__file__).parent / "datasets" / "data"
    return {
        "T1w": nl / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
        "GM": nl / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
        "WM": nl / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
        "bold": Path(nibabel.__file__).parent / "tests" / "data" / "example4d.nii.gz",
        "CT": Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "77654033" / "CT2",
    }


def stage_sources(src: Path) -> dict[str, np.ndarray]:
    """Copies/writes the images as ``<collection>/<subject>.nii.gz`` (DICOM: ``CT/<subject>/``) and
    returns the expected voxels by obs_id, read independently with nibabel and pydicom."""
    import nibabel as nib
    import pydicom

    files = sample_files()
    expected: dict[str, np.ndarray] = {}
    for coll in ("T1w", "GM", "WM"):
        (src / coll).mkdir(parents=True)
        dst = src / coll / "sub-mni152.nii.gz"
        shutil.copy(files[coll], dst)
        expected[f"sub-mni152_{coll}"] = np.asarray(nib.load(dst).dataobj)
    for i in range(1, N_PHANTOMS + 1):
        sid = f"sub-phantom{i:02d}"
        data = brain_phantom(PHANTOM_SHAPE, seed=i).astype(np.int16)  # integer-valued already
        nib.save(nib.Nifti1Image(data, np.diag([1.2, 1.2, 1.5, 1.0])), src / "T1w" / f"{sid}.nii.gz")
        expected[f"{sid}_T1w"] = data
    (src / "bold").mkdir()
    shutil.copy(files["bold"], src / "bold" / "sub-example4d.nii.gz")
    expected["sub-example4d_bold"] = np.asarray(nib.load(files["bold"]).dataobj)
    ct = src / "CT" / "sub-ct01"
    shutil.copytree(files["CT"], ct)
    # Hounsfield units: stored value * RescaleSlope + RescaleIntercept, slices ordered by position
    # along the slice normal, x = column index (as nibabel lays out NIfTI)
    slices = [pydicom.dcmread(p) for p in sorted(ct.iterdir())]
    normal = np.cross(*np.asarray(slices[0].ImageOrientationPatient, float).reshape(2, 3))
    slices.sort(key=lambda d: float(np.dot(normal, np.asarray(d.ImagePositionPatient, float))))
    hu = [d.pixel_array.astype(np.int32) * int(d.RescaleSlope) + int(d.RescaleIntercept) for d in slices]
    expected["sub-ct01_CT"] = np.stack([h.T for h in hu], axis=-1).astype(np.int16)
    return expected


def participants():
    import pandas as pd

    rows = [
        ("sub-ct01", 63, "F", "Zürich", "ct"),
        ("sub-example4d", None, "M", "Genève", "fmri"),
        ("sub-mni152", None, None, "Montréal", "template"),  # an average of 152 brains: no age or sex
    ]
    rows += [(f"sub-phantom{i:02d}", 30 + 7 * i, "FM"[i % 2], "synthetic", "phantom") for i in range(1, N_PHANTOMS + 1)]
    df = pd.DataFrame(rows, columns=["participant_id", "age", "sex", "site", "group"])
    df["age"] = df["age"].astype("Int64")  # nullable integers
    return df


def dataset_part(out: Path, repeats: int) -> None:
    ctx = ro.get_tiledb_ctx()
    src, uri = out / "sources", str(out / "dataset")
    print("\n== dataset: real images -> RadiObject.from_images")
    t = time.perf_counter()
    expected = stage_sources(src)
    print(f"  staged {len(expected)} images under {src} in {time.perf_counter() - t:.1f} s")
    for p in sorted(src.rglob("*.nii.gz")):
        print(f"    {p.relative_to(src)}")
    print(f"    CT/sub-ct01/ ({len(list((src / 'CT' / 'sub-ct01').iterdir()))} DICOM slices)")
    images = {name: str(src / name) for name in ("T1w", "GM", "WM", "bold", "CT")}
    images["T1w"] = str(src / "T1w" / "*.nii.gz")  # a glob works as well as a directory

    t = time.perf_counter()
    radi = RadiObject.from_images(uri, images, obs_meta=participants(), max_workers=2)
    ingest_s = time.perf_counter() - t
    rep = radi.ingest_report
    print(f"  ingested {rep['written']} volumes in {ingest_s:.2f} s: {radi}")
    for w in rep["warnings"]:
        print(f"  reader warning: {w}")

    t = time.perf_counter()
    report = ro.verify.verify(uri, deep=True)
    print(f"\n  verify (deep) in {time.perf_counter() - t:.2f} s:")
    print("    " + str(report).replace("\n", "\n    "))
    if not report.ok:
        raise SystemExit("the dataset failed verification")

    print("\n  radiobject info:")
    sys.stdout.flush()  # the summary is printed by the Rust command line, after Python's output
    if ro.__main__.main(["info", uri]) != 0:
        raise SystemExit("radiobject info failed")

    t = time.perf_counter()
    again = RadiObject.from_images(uri, images, obs_meta=participants())
    r = again.ingest_report
    print(f"\n  ingest again: {r['written']} written, {r['skipped']} skipped ({time.perf_counter() - t:.2f} s)")
    assert r["written"] == 0 and r["skipped"] == len(expected)

    # ---- reading back
    t = time.perf_counter()
    radi = RadiObject(uri)
    open_s = time.perf_counter() - t
    print(f"\n  opened {radi} in {open_s * 1e3:.1f} ms")
    print("  obs_meta:")
    meta = radi.obs_meta.drop(columns=["obs_id", "obs_ids"])
    print("    " + meta.to_string(index=False).replace("\n", "\n    "))
    n_checked = 0
    for name in radi.collection_names:
        vc = radi.collection(name)
        for vol in vc:  # every volume of every collection, in obs_id order
            check(vol.to_numpy(), expected[vol.obs_id], vol.obs_id)
            n_checked += 1
    assert n_checked == len(expected)
    print(f"  all {n_checked} volumes read back equal to their sources")

    t1 = radi.T1w
    print(f"\n  {t1}: obs_ids {t1.obs_ids}")
    first = t1.iloc[0]
    check(first.to_numpy(), expected[first.obs_id], "T1w.iloc[0]")
    mni = radi.loc["sub-mni152"]  # a view: every collection holds only this subject's volumes
    print(
        f"  radi.loc['sub-mni152'] -> {mni}; collections {[f'{n}:{len(mni.collection(n))}' for n in mni.collection_names]}"
    )
    for name in ("T1w", "GM", "WM"):
        vol = mni.collection(name).iloc[0]
        check(vol.to_numpy(), expected[f"sub-mni152_{name}"], f"sub-mni152 {name}")
    women = radi.filter("sex == 'F' and age > 40")
    print(
        f"  radi.filter(\"sex == 'F' and age > 40\") -> subjects {women.obs_subject_ids}, "
        f"T1w {women.T1w.obs_ids}, CT {women.CT.obs_ids}"
    )
    assert women.obs_subject_ids == ["sub-ct01", "sub-phantom02", "sub-phantom04"]
    for vol in women.T1w:
        check(vol.to_numpy(), expected[vol.obs_id], f"view {vol.obs_id}")
    no_age = radi.filter("age.isna()")
    assert no_age.obs_subject_ids == ["sub-example4d", "sub-mni152"], no_age.obs_subject_ids
    ct = radi.CT.loc["sub-ct01_CT"]
    hu = ct.to_numpy()
    check(hu, expected["sub-ct01_CT"], "CT")
    print(f"  CT {ct.shape} {ct.dtype}: {hu.min()} .. {hu.max()} HU, axcodes {ct.metadata['orientation_axcodes']}")
    bold = radi.bold.sel(subject="sub-example4d")
    check(bold.axial(12, t=1), expected["sub-example4d_bold"][:, :, 12, 1], "bold axial t=1")
    print(f"  bold {bold.shape} {bold.dtype}, axcodes {bold.metadata['orientation_axcodes']}: axial(12, t=1) ok")

    # ---- timings: the MNI template in the dataset (axial tiles), cold and warm
    vol = radi.T1w.loc["sub-mni152_T1w"]
    want = expected["sub-mni152_T1w"]
    rng = np.random.default_rng(7)
    zs = [int(z) for z in rng.integers(0, vol.shape[2], repeats)]
    corners = [tuple(int(rng.integers(0, n - 64 + 1)) for n in vol.shape) for _ in range(repeats)]

    def roi(c):
        return tuple(slice(a, a + 64) for a in c)

    def cold(fn, items):
        it = iter(items)

        def run():
            ctx.clear_cache()
            fn(next(it))

        return run

    axial_cold = timed(cold(lambda z: vol.axial(z), zs), repeats)
    roi_cold = timed(cold(lambda c: vol[roi(c)], corners), repeats)
    for z in zs[:3]:
        check(vol.axial(z), want[:, :, z], f"axial {z}")
    for c in corners[:3]:
        check(vol[roi(c)], want[roi(c)], f"ROI at {c}")
    with TileDBStats(ctx) as stats:
        roi_warm = timed(lambda: vol[roi(corners[0])], repeats)
        axial_warm = timed(lambda: vol.axial(zs[0]), repeats)
    cs = stats.cache_stats()
    print(f"\n  sub-mni152_T1w from the dataset {vol.shape} {vol.dtype}, tiles {vol.tile_extents}:")
    print(
        f"    axial slice cold {ms(axial_cold)} | warm {ms(axial_warm)} | 64^3 ROI cold {ms(roi_cold)} | warm {ms(roi_warm)}"
    )
    print(
        f"    warm reads: {cs.cache_hits} tile-cache hits, {cs.cache_misses} misses (hit rate {cs.hit_rate:.0%}), "
        f"{stats.s3_stats().read_ops} storage reads"
    )

    # a batch of regions over every phantom, read in parallel
    phantoms = radi.T1w.filter("obs_subject_id.str.startswith('sub-phantom')")
    regions = [(v, [(20, 84), (20, 84), (10, 74)]) for v in phantoms]
    ctx.clear_cache()
    t = time.perf_counter()
    batch = ro.parallel.read_regions(regions)
    batch_s = time.perf_counter() - t
    for v, got in zip(phantoms, batch):
        check(got, expected[v.obs_id][20:84, 20:84, 10:74], f"batch {v.obs_id}")
    print(f"    {len(batch)} phantom 64^3 regions in one parallel batch (cold): {batch_s * 1e3:.1f} ms")


# ---------------------------------------------------------------------------------------------
# Part 2: the two sample volumes on their own (issue 2's demo)
# ---------------------------------------------------------------------------------------------


def volumes_part(out: Path, repeats: int) -> None:
    ctx = ro.get_tiledb_ctx()
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
            print(
                f"  [{tiling:9}] stored in {write_s * 1e3:7.1f} ms, {disk:5.2f} MB on disk ({mb / disk:4.1f}x), tiles {vol.tile_extents}"
            )

            full = timed(lambda: vol.to_numpy(), 5)
            assert np.array_equal(vol.to_numpy(), data)
            zs = rng.integers(0, data.shape[2], repeats)
            corners = [tuple(int(rng.integers(0, n - 64 + 1)) for n in data.shape) for _ in range(repeats)]

            def cold(fn):
                def run():
                    ctx.clear_cache()
                    fn()

                return run

            it = iter(zs)
            axial_cold = timed(cold(lambda: vol.axial(int(next(it)))), repeats)
            it = iter(corners)
            roi_cold = timed(
                cold(
                    lambda: vol[
                        (lambda c: (slice(c[0], c[0] + 64), slice(c[1], c[1] + 64), slice(c[2], c[2] + 64)))(next(it))
                    ]
                ),
                repeats,
            )
            c = corners[0]
            roi = (slice(c[0], c[0] + 64), slice(c[1], c[1] + 64), slice(c[2], c[2] + 64))
            assert np.array_equal(vol[roi], data[roi])
            with TileDBStats(ctx) as stats:
                roi_warm = timed(lambda: vol[roi], repeats)
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


def training_part(out: Path) -> None:
    import logging

    import torch
    from torch import nn

    from radiobject.ml import create_training_dataloader, set_epoch

    print("\n== training: a tiny 3D CNN on T1w patches through radiobject.ml")
    logging.basicConfig(format="  [%(name)s] %(message)s")
    logging.getLogger("radiobject.ml").setLevel(logging.INFO)
    radi = RadiObject(str(out / "dataset"))
    t1 = radi.T1w
    phantom = {o: int("phantom" in o) for o in t1.obs_ids}  # label: phantom (1) or template (0)
    torch.manual_seed(0)
    loader = create_training_dataloader(
        collections=[t1], labels=phantom, batch_size=4, patch_size=(32, 32, 32), patches_per_volume=8
    )
    volumes = [v.to_numpy() for v in t1]
    model = nn.Sequential(
        nn.Conv3d(1, 8, 3, stride=2),
        nn.ReLU(),
        nn.Conv3d(8, 16, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(16, 2),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    print(
        f"  {len(t1)} volumes, dtypes {sorted({str(v.dtype) for v in volumes})} -> batches of "
        f"{loader.batch_size} x 1 x 32^3, {len(loader)} steps per epoch, seed {loader.seed}"
    )
    for epoch in range(3):
        set_epoch(loader, epoch)
        losses = []
        for batch in loader:
            x = batch["image"].float()
            for k in range(x.shape[0]):  # every patch is exactly the volume's voxels
                v, st = int(batch["idx"][k]), [int(t[k]) for t in batch["patch_start"]]
                want = volumes[v][st[0] : st[0] + 32, st[1] : st[1] + 32, st[2] : st[2] + 32]
                assert np.array_equal(x[k, 0].numpy(), want.astype(np.float32)), "batch differs from the volume"
            x = (x - x.mean()) / (x.std() + 1e-6)
            loss = nn.functional.cross_entropy(model(x), batch["label"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        print(f"  epoch {epoch}: loss {statistics.fmean(losses):.3f} over {len(losses)} steps")
        print(f"    {loader.stats()}")
    again = create_training_dataloader(collections=[t1], labels=phantom, batch_size=4, patch_size=(32, 32, 32),
                                       patches_per_volume=8, seed=loader.seed)  # fmt: skip
    set_epoch(again, 2)
    first = next(iter(again))
    set_epoch(loader, 2)
    assert torch.equal(first["image"], next(iter(loader))["image"]), "same seed and epoch, same batch"
    print("  the same seed and epoch give the same batches (checked)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".data/main-job", help="where to store everything (recreated)")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    import radiobject.__main__  # the command line, for `info`
    import radiobject.verify  # noqa: F401

    started = time.perf_counter()
    ro.configure(read=ReadConfig(tile_cache_size_mb=512, max_workers=4))
    ctx = ro.get_tiledb_ctx()
    print(f"radiobject {ro.__version__} · libtiledb {'.'.join(map(str, ro.tiledb_version()))} · {ctx}")
    dataset_part(out, args.repeats)
    volumes_part(out, args.repeats)
    training_part(out)
    used, tiles, budget = ctx.cache_info()
    print(f"\ntile cache now holds {tiles} tiles, {used / 2**20:.1f} of {budget / 2**20:.0f} MiB")
    print(
        f"everything stored under {out.resolve()}; every read matched its source array "
        f"({time.perf_counter() - started:.1f} s in all)"
    )


if __name__ == "__main__":
    main()
