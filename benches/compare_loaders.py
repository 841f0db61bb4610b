"""Training-loader benchmark: radiobject (this repository) against the PyPI reference RadiObject
0.1.1 and MONAI, side by side in one run, on the same data.

Data: ``--subjects`` subjects (default 16) x two modalities (T1w, FLAIR), each a 240x240x155
float32 brain phantom (:func:`benches.data.brain_phantom`, background exactly 0; a different seed
per subject and modality), generated once as uncompressed NIfTI (``.nii``) under ``--out`` and then
written by each system's own writer:

* ``radiobject``        ``radiobject.writers.RadiObjectWriter(uri, write=WriteConfig(tile={"orientation":
                        "isotropic"}))``: 64^3 tiles, default compression;
* ``RadiObject 0.1.1``  its ``radiobject.streaming.RadiObjectWriter`` after ``configure(write=WriteConfig(
                        tile=TileConfig(orientation="isotropic")))``: 64^3 tiles, its default compression
                        (it runs with ``PYTHONPATH=.peers/radiobject-0.1.1``: same import name);
* ``MONAI``             reads the ``.nii`` files themselves.

Modes (``--modes``): ``patch`` (batches of 4 random 64^3 patches x 2 channels, 4 patches per volume
per epoch), ``slice`` (batches of 16 random axial 240x240 slices x 2 channels), ``full`` (batches of
2 whole volumes x 2 channels).

Settings, each in a fresh subprocess (its own process group, killed on timeout or when it stops
making progress, then reported as ``hang``), so no cache carries over:

* ours: ``radiobject.ml.create_training_dataloader(collections=[radi.T1w, radi.FLAIR], batch_size,
  patch_size, patches_per_volume, num_workers, seed=0[, prefetch])`` for patch and full; for slices
  the same factory with ``slice_orientation="axial"`` when it has that argument, else (or with
  ``--ours-slice torch``) ``torch.utils.data.DataLoader(VolumeCollectionDataset(collections,
  config=DatasetConfig(loading_mode=LoadingMode.SLICE_2D)), batch_size=16, shuffle=True)`` (the
  dataset's ``__getitems__`` reads a batch in one native call); at ``--workers`` (default 0 and 2).
  Arguments the factory does not take are dropped (and listed in the JSON); every call is guarded:
  an API that is missing or fails shows as an error cell, the rest of the benchmark goes on.
* ours ``read_regions``: the same number and shape of samples read with
  ``radiobject.parallel.read_regions`` (one call per batch: B items x 2 channels, random positions,
  stacked into one ``(B, C, ...)`` array), no torch: the floor the loader's overhead is measured
  against.
* the reference: its ``radiobject.ml.create_training_dataloader(collections, batch_size,
  patch_size, num_workers, patches_per_volume)`` for patch and full (0.1.1 has no seed argument);
  for slices its ``VolumeCollectionDataset`` + ``DataLoader`` as for ours; at ``--ref-workers``
  (default 0 and 2); the ratios use its best setting.
* MONAI: ``monai.data.Dataset`` over the ``.nii`` files with ``LoadImaged`` + ``EnsureChannelFirstd``
  + ``ConcatItemsd`` (2 channels) + ``DeleteItemsd`` (the two sources) and, for patches, ``RandSpatialCropSamplesd`` (4 samples of 64^3
  per loaded volume pair, ``batch_size=1``: batches of 4); for slices ``RandSpatialCropSamplesd``
  (16 of 240x240x1) + ``SqueezeDimd``; ``monai.data.DataLoader`` at ``--monai-workers`` (default 2).
  MONAI decodes the whole volume pair for every 4 patches / 16 slices: that is its standard pattern.

In each process: build the loader, then epochs 1 (cold: fresh process, OS page cache warm for all)
and 2 as fast as they go (samples/s; the time from building the loader to the first batch in
hand), then an epoch 3 with a simulated ``--step-ms`` (default 50 ms) training step after every
batch: its data-wait fraction = time spent in ``next(iterator)`` / wall time of the epoch. Every
epoch is capped at ``--max-batches`` batches (slice mode; patch and full epochs are whole by
default) and ``--epoch-seconds``. Memory: peak RSS of the main process (``VmHWM``), the largest
worker (``getrusage(RUSAGE_CHILDREN)``) and the sampled peak of the sum over the process tree
(RSS, so pages shared with forked workers count once per process).

Usage::

    .venv/bin/python benches/compare_loaders.py [--quick] [--subjects N] [--modes patch,slice,full]
        [--systems ours,ours-raw,reference,monai] [--workers 0,2] [--ref-workers 0,2]
        [--monai-workers 2] [--ours-slice factory|torch] [--prefetch N] [--max-batches N] [--epoch-seconds S] [--step-ms MS]
        [--json PATH] [--out DIR] [--rebuild]

Progress goes to stderr, the tables to stdout, everything to ``--json``
(default ``.data/bench/compare_loaders.json``).
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import inspect
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER_PATH = ROOT / ".peers" / "radiobject-0.1.1"

OURS, OURS_RAW, REFERENCE, MONAI = "radiobject", "radiobject read_regions", "RadiObject 0.1.1", "MONAI"
SYSTEM_KEYS = {"ours": OURS, "ours-raw": OURS_RAW, "reference": REFERENCE, "monai": MONAI}
SHAPE = (240, 240, 155)
MODALITIES = ("T1w", "FLAIR")
PATCH = (64, 64, 64)
PATCHES_PER_VOLUME = 4
BATCH = {"patch": 4, "slice": 16, "full": 2}
MODES = ("patch", "slice", "full")
SEED = 0
RECIPE = 1  # bump when the generated data changes (invalidates the caches under --out)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Data (NumPy + nibabel only, so the processes of every system can use it)
# ---------------------------------------------------------------------------------------------


def subject_ids(n: int) -> list[str]:
    return [f"sub-{k:03d}" for k in range(n)]


def nifti_path(nifti_dir: str | Path, sid: str, modality: str) -> Path:
    return Path(nifti_dir) / f"{sid}_{modality}.nii"


def phantom_seed(k: int, modality: str) -> int:
    return 10_000 * (1 + MODALITIES.index(modality)) + k


def load_nifti(nifti_dir: str | Path, sid: str, modality: str) -> np.ndarray:
    import nibabel as nib

    return np.ascontiguousarray(np.asanyarray(nib.load(nifti_path(nifti_dir, sid, modality)).dataobj), dtype=np.float32)


def make_niftis(root: Path, n: int) -> dict:
    """Writes the first n subjects' two phantoms as uncompressed .nii (once; more are added when a
    later run asks for more subjects)."""
    import nibabel as nib

    sys.path.insert(0, str(ROOT))
    from benches.data import brain_phantom

    marker = root / "recipe.json"
    want = {"recipe": RECIPE, "shape": list(SHAPE), "modalities": list(MODALITIES)}
    have = 0
    if marker.exists():
        info = json.loads(marker.read_text())
        if {k: info.get(k) for k in want} == want:
            have = int(info.get("n", 0))
        else:
            shutil.rmtree(root, ignore_errors=True)
    if have >= n:
        return json.loads(marker.read_text())
    root.mkdir(parents=True, exist_ok=True)
    affine = np.eye(4)
    affine[:3, 3] = [-120.0, -120.0, -77.0]
    t = time.perf_counter()
    for k, sid in enumerate(subject_ids(n)):
        if k < have:
            continue
        for mod in MODALITIES:
            img = nib.Nifti1Image(brain_phantom(SHAPE, seed=phantom_seed(k, mod)), affine)
            img.header.set_data_dtype(np.float32)
            img.header.set_xyzt_units("mm", "sec")
            nib.save(img, nifti_path(root, sid, mod))
        log(f"  generated {sid} ({k + 1}/{n}, {time.perf_counter() - t:.0f} s)")
    info = {**want, "n": n, "file_mb": sum(p.stat().st_size for p in root.glob("*.nii")) / 1e6}
    marker.write_text(json.dumps(info))
    return info


def disk_mb(path: str | Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


# ---------------------------------------------------------------------------------------------
# Child process helpers: results file, heartbeat, memory
# ---------------------------------------------------------------------------------------------


class Reporter:
    """The child's side of the protocol: the result JSON (rewritten atomically after every phase,
    so a killed child still leaves what it measured) and a heartbeat file touched on every batch."""

    def __init__(self, spec: dict) -> None:
        self.path = Path(spec["result"])
        self.beat_path = Path(spec["heartbeat"])
        self.res: dict = {"status": "running", "phase": "start"}

    def beat(self, phase: str | None = None) -> None:
        if phase is not None:
            self.res["phase"] = phase
            self.save()
        with open(self.beat_path, "w") as f:
            f.write(self.res.get("phase", ""))

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.res, default=str))
        os.replace(tmp, self.path)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class TreeRss(threading.Thread):
    """Samples the RSS of this process plus all its descendants (DataLoader workers) every 50 ms."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.interval = interval
        self.peak = 0
        self.peak_procs = 1
        self.stop = threading.Event()

    def sample(self) -> None:
        total, procs = self.me.memory_info().rss, 1
        for p in self.me.children(recursive=True):
            try:
                total += p.memory_info().rss
                procs += 1
            except self.psutil.Error:
                pass
        if total > self.peak:
            self.peak, self.peak_procs = total, procs

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - a process vanished mid-sample
                pass
            time.sleep(self.interval)


def first_tensor(batch):
    """The image array of a batch, whatever shape the loader gives it in."""
    if isinstance(batch, dict):
        if "image" in batch:
            return batch["image"]
        for v in batch.values():
            if hasattr(v, "shape") and len(getattr(v, "shape", ())) >= 3:
                return v
        raise TypeError(f"no image-like entry in batch keys {list(batch)}")
    if isinstance(batch, (list, tuple)):
        return first_tensor(batch[0]) if not hasattr(batch[0], "shape") else batch[0]
    return batch


def run_epoch(loader, rep: Reporter, name: str, max_batches: int | None, max_s: float, step_s: float) -> dict:
    """Iterates one epoch (or until a cap); returns its timings."""
    samples = batches = 0
    wait = 0.0
    first = None
    capped = None
    shape = dtype = None
    start = time.perf_counter()
    it = iter(loader)
    while True:
        t = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            break
        now = time.perf_counter()
        wait += now - t
        if first is None:
            first = now - start
        img = first_tensor(batch)
        if shape is None:
            shape, dtype = list(img.shape), str(img.dtype)
        samples += int(img.shape[0])
        batches += 1
        del batch, img
        rep.beat()
        if step_s:
            time.sleep(step_s)
        elapsed = time.perf_counter() - start
        if max_batches and batches >= max_batches:
            capped = f"{batches} batches"
            break
        if elapsed >= max_s:
            capped = f"{max_s:g} s"
            break
    wall = time.perf_counter() - start
    del it
    out = {
        "samples": samples,
        "batches": batches,
        "wall_s": wall,
        "wait_s": wait,
        "first_batch_s": first,
        "samples_per_s": samples / wall if wall > 0 and samples else None,
        "wait_fraction": wait / wall if wall > 0 else None,
        "capped": capped,
        "step_s": step_s,
        "batch_shape": shape,
        "dtype": dtype,
    }
    log(
        f"    {name}: {batches} batches, {samples} samples in {wall:.2f} s"
        f" ({out['samples_per_s'] or 0:.1f}/s, wait {out['wait_fraction'] or 0:.0%})"
        + (f", capped at {capped}" if capped else "")
    )
    return out


# ---------------------------------------------------------------------------------------------
# Loader builders (inside the child; imports are local because ours and the reference share the
# import name `radiobject`)
# ---------------------------------------------------------------------------------------------


def check_ours_imported() -> None:
    import radiobject as ro

    if Path(ro.__file__).resolve().is_relative_to(PEER_PATH.resolve()):
        raise RuntimeError(f"imported the reference package ({ro.__file__}) instead of ours")


def check_ref_imported() -> None:
    import radiobject as ro

    if not Path(ro.__file__).resolve().is_relative_to(PEER_PATH.resolve()):
        raise RuntimeError(f"expected the reference package from {PEER_PATH}, imported {ro.__file__}")


def ours_version() -> str:
    import radiobject as ro

    return f"radiobject {ro.__version__} (libtiledb {'.'.join(map(str, ro.tiledb_version()))})"


def ref_version() -> str:
    import tiledb

    libtiledb = ".".join(map(str, tiledb.libtiledb.version()))
    return (
        f"radiobject {importlib.metadata.version('radiobject')} (tiledb-py {tiledb.__version__}, libtiledb {libtiledb})"
    )


def call_accepting(fn, used: dict, **kw):
    """Calls fn with the keyword arguments it accepts (all of them when it takes **kwargs); records
    in ``used`` what was passed and what was dropped."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = None
    if params is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        passed = kw
    else:
        passed = {k: v for k, v in kw.items() if k in params}
    dropped = sorted(set(kw) - set(passed))
    used["kwargs"] = {
        k: (v if isinstance(v, (int, float, str, bool, tuple, list, type(None))) else type(v).__name__)
        for k, v in passed.items()
    }
    if dropped:
        used["dropped_kwargs"] = dropped
    return fn(**passed)


def torch_slice_loader(dataset, nw: int, seed: int, worker_init_fn=None, collate_fn=None):
    import torch
    from torch.utils.data import DataLoader

    g = torch.Generator()
    g.manual_seed(seed)
    kw = {}
    if collate_fn is not None:
        kw["collate_fn"] = collate_fn
    return DataLoader(
        dataset,
        batch_size=BATCH["slice"],
        shuffle=True,
        num_workers=nw,
        generator=g,
        drop_last=True,
        persistent_workers=nw > 0,
        worker_init_fn=worker_init_fn if nw > 0 else None,
        **kw,
    )


def build_ours(spec: dict, info: dict):
    check_ours_imported()
    import radiobject as ro

    info["version"] = ours_version()
    if spec.get("cache_mb") is not None:
        # "where the data fits the tile cache": the epoch-2 bar assumes it does
        ro.configure(read=ro.ReadConfig(tile_cache_size_mb=spec["cache_mb"]))
        info["tile_cache_size_mb"] = spec["cache_mb"]
    radi = ro.RadiObject(spec["ours_uri"])
    collections = [radi.T1w, radi.FLAIR]
    import radiobject.ml as ml  # the part under construction: any failure here is reported

    mode, nw = spec["mode"], spec["nw"]
    kw = dict(collections=collections, batch_size=BATCH[mode], num_workers=nw, seed=spec["seed"])
    if spec.get("prefetch") is not None:
        kw["prefetch"] = spec["prefetch"]
    factory = ml.create_training_dataloader
    if (
        mode == "slice"
        and spec.get("ours_slice") == "factory"
        and "slice_orientation" in inspect.signature(factory).parameters
    ):
        info["loader"] = "radiobject.ml.create_training_dataloader(slice_orientation='axial')"
        return call_accepting(factory, info, slice_orientation="axial", **kw)
    if mode == "slice":
        ds = ml.VolumeCollectionDataset(collections, config=ml.DatasetConfig(loading_mode=ml.LoadingMode.SLICE_2D))
        info["dataset_len"] = len(ds)
        info["has___getitems__"] = hasattr(ds, "__getitems__")
        collate = getattr(ds, "collate_fn", None) or getattr(ml, "collate_fn", None)
        winit = getattr(ml, "worker_init_fn", None)
        if winit is None:
            try:
                from radiobject.ml.utils.worker_init import worker_init_fn as winit  # type: ignore[no-redef]
            except Exception:  # noqa: BLE001
                winit = None
        info["loader"] = "torch DataLoader(VolumeCollectionDataset(SLICE_2D))" + (" + collate_fn" if collate else "")
        return torch_slice_loader(ds, nw, spec["seed"], winit, collate)
    if mode == "patch":
        kw.update(patch_size=PATCH, patches_per_volume=PATCHES_PER_VOLUME)
    info["loader"] = "radiobject.ml.create_training_dataloader"
    return call_accepting(factory, info, **kw)


def build_ref(spec: dict, info: dict):
    check_ref_imported()
    import radiobject as ro
    import radiobject.ml as ml

    info["version"] = ref_version()
    radi = ro.RadiObject(spec["ref_uri"])
    collections = [radi.T1w, radi.FLAIR]
    mode, nw = spec["mode"], spec["nw"]
    if mode == "slice":
        from radiobject.ml.utils.worker_init import worker_init_fn

        ds = ml.VolumeCollectionDataset(collections, config=ml.DatasetConfig(loading_mode=ml.LoadingMode.SLICE_2D))
        info["dataset_len"] = len(ds)
        info["loader"] = "torch DataLoader(VolumeCollectionDataset(SLICE_2D))"
        return torch_slice_loader(ds, nw, spec["seed"], worker_init_fn)
    kw = dict(collections=collections, batch_size=BATCH[mode], num_workers=nw)
    if mode == "patch":
        kw.update(patch_size=PATCH, patches_per_volume=PATCHES_PER_VOLUME)
    info["loader"] = "radiobject.ml.create_training_dataloader (0.1.1)"
    return call_accepting(ml.create_training_dataloader, info, **kw)


def build_monai(spec: dict, info: dict):
    import monai
    from monai.data import DataLoader, Dataset
    from monai.transforms import (
        Compose,
        ConcatItemsd,
        DeleteItemsd,
        EnsureChannelFirstd,
        LoadImaged,
        RandSpatialCropSamplesd,
        SqueezeDimd,
    )
    from monai.utils import set_determinism

    info["version"] = f"monai {monai.__version__} (nibabel {importlib.metadata.version('nibabel')})"
    set_determinism(seed=spec["seed"])
    keys = [m.lower() for m in MODALITIES]
    files = [
        {k: str(nifti_path(spec["nifti_dir"], sid, m)) for k, m in zip(keys, MODALITIES)}
        for sid in subject_ids(spec["n"])
    ]
    tx = [
        LoadImaged(keys=keys),
        EnsureChannelFirstd(keys=keys, channel_dim="no_channel"),
        ConcatItemsd(keys=keys, name="image", dim=0),
        DeleteItemsd(keys=keys),
    ]  # else RandSpatialCropSamplesd deep-copies both source volumes per sample
    mode, nw = spec["mode"], spec["nw"]
    if mode == "patch":
        tx.append(
            RandSpatialCropSamplesd(keys="image", roi_size=PATCH, num_samples=PATCHES_PER_VOLUME, random_size=False)
        )
        batch_size = BATCH["patch"] // PATCHES_PER_VOLUME  # 1 volume pair -> 4 patches per batch
    elif mode == "slice":
        tx += [
            RandSpatialCropSamplesd(keys="image", roi_size=(-1, -1, 1), num_samples=BATCH["slice"], random_size=False),
            SqueezeDimd(keys="image", dim=-1),
        ]
        batch_size = 1  # 1 volume pair -> 16 slices per batch
    else:
        batch_size = BATCH["full"]
    ds = Dataset(files, transform=Compose(tx))
    info["dataset_len"] = len(ds)
    info["loader"] = f"monai.data.DataLoader(Dataset, batch_size={batch_size})"
    return DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=nw, persistent_workers=nw > 0)


class RawRegions:
    """Batches read straight with radiobject.parallel.read_regions (no torch): per batch, one call
    for B items x 2 channels, stacked into one (B, C, ...) array. The items are exactly those our
    loader reads for the same seed and epoch (same order, same patch/slice positions, taken from
    the loader's native plan), so the two rows compare the loader's overhead on identical work."""

    def __init__(self, spec: dict, info: dict) -> None:
        check_ours_imported()
        import radiobject as ro
        from radiobject import _radiobject as rb
        from radiobject.parallel import read_regions

        info["version"] = ours_version()
        info["loader"] = "radiobject.parallel.read_regions + np.stack (the loader's items)"
        self.read_regions = read_regions
        self.rb = rb
        if spec.get("cache_mb") is not None:
            ro.configure(read=ro.ReadConfig(tile_cache_size_mb=spec["cache_mb"]))
        radi = ro.RadiObject(spec["ours_uri"])
        colls = (radi.T1w, radi.FLAIR)
        self.vols = [[vc.iloc[i] for i in range(len(vc))] for vc in colls]
        self.n = len(self.vols[0])
        self.mode = spec["mode"]
        self.seed = spec["seed"]
        native_mode = {"patch": "patch", "slice": "slice_2d", "full": "full_volume"}[self.mode]
        keys = [("image", [(c.name, c._snap.native.volumes(list(c._rank_seq)), c.obs_subject_ids) for c in colls])]
        self.plan = rb.NativePlan(keys, native_mode, patch_size=PATCH if self.mode == "patch" else None, axis=2,
                                  patches_per_volume=PATCHES_PER_VOLUME if self.mode == "patch" else 1, seed=self.seed)  # fmt: skip
        self.epoch = 0
        self.len = len(self.plan) // BATCH[self.mode]
        info["dataset_len"] = self.len * BATCH[self.mode]

    def __iter__(self):
        b = BATCH[self.mode]
        order = self.rb.shuffle_order(self.seed, self.epoch, len(self.plan))
        epoch, self.epoch = self.epoch, self.epoch + 1
        for k in range(self.len):
            reqs = []
            for i in order[k * b : (k + 1) * b]:
                v, _, _, start = self.plan.item(epoch, i)
                shape = self.plan.item_shape(v)
                if self.mode == "slice":
                    region = [(0, SHAPE[0]), (0, SHAPE[1]), (start[2], start[2] + 1)]
                else:
                    region = [(a, a + n) for a, n in zip(start, shape)]
                reqs.extend((ch[v], region) for ch in self.vols)
            arrays = self.read_regions(reqs)
            out = np.stack(arrays).reshape(b, len(self.vols), *arrays[0].shape)
            yield out[..., 0] if self.mode == "slice" else out


def work_loader(spec: dict) -> None:
    rep = Reporter(spec)
    res = rep.res
    res.update({"system": spec["system"], "mode": spec["mode"], "nw": spec["nw"], "pid": os.getpid()})
    t_import = time.perf_counter()
    sampler = TreeRss()
    sampler.start()
    loader = None
    try:
        rep.beat("import")
        # every package import here, so that the build below times opening the data, not imports
        if spec["system"] != OURS_RAW:
            import torch

            torch.manual_seed(spec["seed"])
            res["torch_threads"] = torch.get_num_threads()
        if spec["system"] == MONAI:
            import monai.data
            import monai.transforms  # noqa: F401
        else:
            (check_ref_imported if spec["system"] == REFERENCE else check_ours_imported)()
            import radiobject.parallel

            if spec["system"] != OURS_RAW:
                import radiobject.ml  # noqa: F401
        res["import_s"] = time.perf_counter() - t_import
        rep.beat("build")
        t0 = time.perf_counter()
        builder = {OURS: build_ours, REFERENCE: build_ref, MONAI: build_monai, OURS_RAW: RawRegions}[spec["system"]]
        loader = builder(spec, res)
        res["construct_s"] = time.perf_counter() - t0
        ds = getattr(loader, "dataset", None)
        if ds is not None and "dataset_len" not in res:
            try:
                res["dataset_len"] = len(ds)
            except TypeError:
                pass
        for attr in ("prefetch", "num_workers", "batch_size"):
            v = getattr(loader, attr, None)
            if isinstance(v, (int, float, str)):
                res[f"loader_{attr}"] = v
        epochs = []
        res["epochs"] = epochs
        plan = [("epoch 1", 0.0), ("epoch 2", 0.0)]
        if spec["step_s"]:
            plan.append((f"epoch 3 ({spec['step_s'] * 1e3:g} ms step)", spec["step_s"]))
        for k, (name, step) in enumerate(plan):
            rep.beat(name)
            e = run_epoch(loader, rep, f"{spec['label']} {name}", spec["max_batches"], spec["epoch_s"], step)
            epochs.append(e)
            if k == 0 and e["first_batch_s"] is not None:
                res["first_batch_s"] = res["construct_s"] + e["first_batch_s"]
            rep.save()
        res["status"] = "ok"
    except BaseException as e:  # noqa: BLE001 - reported in the table
        res["status"] = "error"
        res["error"] = f"{type(e).__name__}: {e}"
        res["traceback"] = traceback.format_exc()
        log(f"    {spec['label']}: {res['error']}")
    rep.beat("teardown")
    del loader
    gc.collect()
    sampler.stop.set()
    sampler.join()
    res["peak_rss_main_mb"] = _status_kb("VmHWM") / 1024
    res["peak_rss_tree_mb"] = sampler.peak / 2**20
    res["peak_rss_tree_procs"] = sampler.peak_procs
    res["max_worker_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 or None
    res["phase"] = "done"
    rep.save()


# ---------------------------------------------------------------------------------------------
# Build the two TileDB datasets (in a child, each with its own package)
# ---------------------------------------------------------------------------------------------


def work_build(spec: dict) -> None:
    rep = Reporter(spec)
    res = rep.res
    system, uri, n = spec["system"], spec["uri"], spec["n"]
    sids = subject_ids(n)

    def write_modalities(w) -> None:
        # the same calls on both writers (each package's own RadiObjectWriter)
        for mod in MODALITIES:
            with w.add_collection(mod, shape=SHAPE) as cw:
                for sid in sids:
                    cw.write_volume(load_nifti(spec["nifti_dir"], sid, mod), f"{sid}_{mod}", sid)
                    rep.beat(f"{mod} {sid}")

    try:
        t = time.perf_counter()
        if system == OURS:
            check_ours_imported()
            import radiobject as ro
            from radiobject.writers import RadiObjectWriter

            res["version"] = ours_version()
            with RadiObjectWriter(uri, write=ro.WriteConfig(tile={"orientation": "isotropic"})) as w:
                write_modalities(w)
            res["build_s"] = time.perf_counter() - t
            radi = ro.RadiObject(uri)
            vol = radi.T1w.iloc[0]
            res["tiles"] = list(vol.tile_extents)
        else:
            check_ref_imported()
            import pandas as pd

            import radiobject as ro
            from radiobject.ctx import SliceOrientation, TileConfig, WriteConfig
            from radiobject.streaming import RadiObjectWriter

            res["version"] = ref_version()
            ro.configure(write=WriteConfig(tile=TileConfig(orientation=SliceOrientation.ISOTROPIC)))
            with RadiObjectWriter(uri) as w:
                w.write_obs_meta(pd.DataFrame({"obs_subject_id": sids}))
                write_modalities(w)
            res["build_s"] = time.perf_counter() - t
            radi = ro.RadiObject(uri)
            vol = radi.T1w.iloc[0]
            res["tiles"] = [int(d.tile) for d in vol._schema.domain]
        # read back: the first and last subject of each modality equal to the source
        for mod in MODALITIES:
            vc = radi.collection(mod)
            if len(vc) != n:
                raise AssertionError(f"{mod} holds {len(vc)} volumes, expected {n}")
            for i in {0, n - 1}:
                got = np.asarray(vc.iloc[i].to_numpy())
                want = load_nifti(spec["nifti_dir"], sids[i], mod)
                if got.shape != want.shape or got.dtype != want.dtype or not np.array_equal(got, want):
                    raise AssertionError(f"{mod} volume {i} differs from the source NIfTI")
        res["disk_mb"] = disk_mb(uri)
        res["status"] = "ok"
    except BaseException as e:  # noqa: BLE001
        res["status"] = "error"
        res["error"] = f"{type(e).__name__}: {e}"
        res["traceback"] = traceback.format_exc()
    rep.save()


# ---------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------


def run_child(kind: str, system: str, workdir: Path, timeout_s: float, stall_s: float, **kw) -> dict:
    """Runs one measurement in a fresh subprocess, in its own process group. Kills the group when it
    runs past timeout_s or shows no progress (heartbeat) for stall_s; returns what it recorded."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # the reference runs boto3's credential chain on first use
    if system == REFERENCE:
        if not (PEER_PATH / "radiobject" / "__init__.py").exists():
            return {
                "status": "error",
                "error": f"the reference package is missing at {PEER_PATH} (bash scripts/setup.sh installs it)",
            }
        env["PYTHONPATH"] = str(PEER_PATH)
    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"{kind}-{int(time.time() * 1e3)}-{os.getpid()}"
    result, beat = workdir / f"{tag}.json", workdir / f"{tag}.beat"
    spec = json.dumps({"kind": kind, "system": system, "result": str(result), "heartbeat": str(beat), **kw})
    beat.write_text("")
    # the child's stdout and stderr (progress, warnings, tracebacks) are copied to our stderr as they
    # come; the last lines are kept to explain a crash (a native panic leaves no result behind)
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--worker", spec],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(ROOT),
        start_new_session=True,
        text=True,
        errors="replace",
        bufsize=1,
    )
    tail: deque[str] = deque(maxlen=200)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            sys.stderr.write(line)
        sys.stderr.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    start = time.monotonic()
    killed = None
    while proc.poll() is None:
        time.sleep(0.25)
        now = time.monotonic()
        try:
            quiet = time.time() - beat.stat().st_mtime
        except OSError:
            quiet = 0.0
        if now - start > timeout_s:
            killed = f"ran past {timeout_s:.0f} s"
        elif quiet > stall_s:
            killed = f"no progress for {stall_s:.0f} s"
        if killed:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group this Popen created (child + its workers)
            except ProcessLookupError:
                pass
            proc.wait()
            break
    wall = time.monotonic() - start
    reader.join(timeout=5)  # a stray grandchild holding the pipe must not block us
    got: dict = {}
    if result.exists():
        try:
            got = json.loads(result.read_text())
        except json.JSONDecodeError:
            got = {}
    for p in (result, beat, result.with_suffix(".tmp")):
        p.unlink(missing_ok=True)
    got["child_wall_s"] = wall
    if killed:
        got["status"] = "hang"
        got["error"] = f"killed: {killed}, in {got.get('phase', 'start')}"
    elif proc.returncode != 0 and got.get("status") != "error":
        code = proc.returncode
        how = (
            f"killed by {signal.Signals(-code).name}"
            if code < 0 and -code in signal.valid_signals()
            else f"exit code {code}"
        )
        got["status"] = "error"
        got["error"] = got.get("error") or f"{how} in {got.get('phase', 'start')}: {crash_reason(list(tail))}"
        got["output_tail"] = list(tail)[-40:]
    elif not got:
        got = {"status": "error", "error": "no result", "child_wall_s": wall}
    return got


def crash_reason(lines: list[str]) -> str:
    """The gist of a crashed child's output: a Rust panic (location and message), else the last
    exception line, else the last line."""
    for i in range(len(lines) - 1, -1, -1):
        if "panicked at" in lines[i]:
            msg = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return f"{lines[i].strip()} {msg}".strip()
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line.strip()
    return next((ln.strip() for ln in reversed(lines) if ln.strip()), "no output")


def ensure_store(system: str, out: Path, nifti_dir: Path, n: int, rebuild: bool, stall_s: float) -> tuple[Path, dict]:
    slug = {OURS: "radiobject", REFERENCE: "radiobject-0.1.1"}[system]
    uri = out / f"{slug}-iso64-n{n}"
    marker = out / f"{slug}-iso64-n{n}.json"
    want = {"recipe": RECIPE, "n": n, "shape": list(SHAPE)}
    if not rebuild and marker.exists() and uri.exists():
        got = json.loads(marker.read_text())
        if {k: got.get(k) for k in want} == want:
            log(f"  reusing {system}'s dataset at {uri} (built {got.get('built')} by {got.get('version')})")
            return uri, {**got, "status": "ok", "reused": True}
    marker.unlink(missing_ok=True)
    shutil.rmtree(uri, ignore_errors=True)
    log(f"  writing {n} subjects x {len(MODALITIES)} with {system}'s writer at {uri}")
    got = run_child(
        "build",
        system,
        out / "tmp",
        timeout_s=3600,
        stall_s=max(stall_s, 300),
        uri=str(uri),
        nifti_dir=str(nifti_dir),
        n=n,
    )
    if got.get("status") != "ok":
        log(f"  {system}: building the dataset failed: {got.get('error')}\n{got.get('traceback', '')}")
        shutil.rmtree(uri, ignore_errors=True)
        return uri, got
    log(f"  {system}: built in {got['build_s']:.1f} s, tiles {got['tiles']}, {got['disk_mb']:.0f} MB on disk")
    info = {
        **want,
        **{k: got[k] for k in ("version", "build_s", "tiles", "disk_mb")},
        "built": time.strftime("%Y-%m-%d %H:%M"),
    }
    marker.write_text(json.dumps(info))
    return uri, {**info, "status": "ok"}


def epoch(r: dict, k: int) -> dict | None:
    es = r.get("epochs") or []
    return es[k] if len(es) > k else None


def rate(r: dict | None, k: int) -> float | None:
    e = epoch(r, k) if r else None
    return e["samples_per_s"] if e else None


def fmt(v, spec: str = ".3g", unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and spec == ".3g" and v >= 100:
        return f"{v:.0f}{unit}"
    return f"{v:{spec}}{unit}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return (
            "| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
        )

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *[line(r) for r in rows]]


def short(msg: str, n: int = 70) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= n else msg[: n - 1] + "…"


def expected_shape(mode: str) -> list[int]:
    b = BATCH[mode]
    return {"patch": [b, 2, *PATCH], "slice": [b, 2, SHAPE[0], SHAPE[1]], "full": [b, 2, *SHAPE]}[mode]


def mode_rows(mode: str, results: list[dict]) -> tuple[list[list[str]], list[str]]:
    rows, notes = [], []
    for r in results:
        label = r["system"]
        cells = [label, str(r["nw"]) if r["system"] != OURS_RAW else "—"]
        e1, e2, e3 = epoch(r, 0), epoch(r, 1), epoch(r, 2)
        status = r.get("status")
        if status != "ok":
            cells.append(status if status else "?")
            notes.append(f"  {label} nw={r['nw']}: {short(r.get('error', ''), 160)}")
        else:
            shape = (e1 or {}).get("batch_shape")
            ok = shape == expected_shape(mode)
            cells.append("ok" if ok else "shape!")
            if not ok:
                notes.append(f"  {label} nw={r['nw']}: batch shape {shape}, expected {expected_shape(mode)}")
        for e in (e1, e2):
            cells.append(fmt(e["samples_per_s"]) if e and e["samples_per_s"] else "—")
        cells.append(fmt(r.get("first_batch_s"), ".2f"))
        cells.append(fmt(e3["wait_fraction"] * 100, ".0f", "%") if e3 and e3["wait_fraction"] is not None else "—")
        cells.append(fmt(e3["samples_per_s"]) if e3 and e3["samples_per_s"] else "—")
        cells.append(fmt(r.get("peak_rss_main_mb"), ".0f"))
        cells.append(fmt(r.get("max_worker_rss_mb") if r["nw"] else None, ".0f"))
        cells.append(fmt(r.get("peak_rss_tree_mb"), ".0f"))
        cells.append("/".join(str(e["batches"]) + ("*" if e["capped"] else "") for e in (e1, e2, e3) if e) or "—")
        rows.append(cells)
    return rows, notes


def best(results: list[dict], system: str, k: int) -> tuple[float | None, dict | None]:
    cands = [
        (rate(r, k), r) for r in results if r["system"] == system and r.get("status") in ("ok", "hang") and rate(r, k)
    ]
    if not cands:
        return None, None
    return max(cands, key=lambda c: c[0])


def ratio_lines(mode: str, results: list[dict]) -> tuple[list[str], list[dict]]:
    out, recs = [], []

    def add(label: str, a: float | None, b: float | None, what: str) -> None:
        if a and b:
            v = a / b
            recs.append({"mode": mode, "label": label, "value": v, "a": a, "b": b})
            out.append(f"  {v:7.2f}x  {label} ({what}: {a:.3g} vs {b:.3g} samples/s)")
        else:
            recs.append({"mode": mode, "label": label, "value": None})
            out.append(f"  {'—':>8}  {label} (not measured)")

    for k, ep in ((1, "epoch 2"), (0, "epoch 1")):
        o, orr = best(results, OURS, k)
        r, rr = best(results, REFERENCE, k)
        m, mr = best(results, MONAI, k)
        onw = f"nw={orr['nw']}" if orr else "?"
        add(f"ours {ep} / RadiObject 0.1.1 best {ep} (ours {onw}, ref nw={rr['nw'] if rr else '?'})", o, r, ep)
        add(f"ours {ep} / MONAI best {ep} (ours {onw}, MONAI nw={mr['nw'] if mr else '?'})", o, m, ep)
    by_nw = {r["nw"]: r for r in results if r["system"] == OURS and r.get("status") == "ok"}
    nws = sorted(by_nw)
    if len(nws) >= 2:
        lo, hi = nws[0], nws[-1]
        add(f"ours nw={lo} / ours nw={hi} epoch 2", rate(by_nw[lo], 1), rate(by_nw[hi], 1), "epoch 2")
    raw = next((r for r in results if r["system"] == OURS_RAW and r.get("status") == "ok"), None)
    if raw and 0 in by_nw:
        add(
            "ours loader nw=0 / raw read_regions, epoch 2 (1.00x = no overhead; below 1 = overhead)",
            rate(by_nw[0], 1),
            rate(raw, 1),
            "epoch 2",
        )
        add("ours loader nw=0 / raw read_regions, epoch 1", rate(by_nw[0], 0), rate(raw, 0), "epoch 1")
    return out, recs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="shorter epochs (slice epochs of 8 batches, 10 s epoch cap), 8 subjects unless --subjects",
    )
    ap.add_argument("--subjects", type=int, help="subjects (x2 modalities; default 16, 8 with --quick)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of: {', '.join(MODES)}")
    ap.add_argument(
        "--systems", default=",".join(SYSTEM_KEYS), help=f"comma-separated subset of: {', '.join(SYSTEM_KEYS)}"
    )
    ap.add_argument("--workers", default="0,2", help="num_workers settings for ours (default 0,2)")
    ap.add_argument("--ref-workers", default="0,2", help="num_workers settings for RadiObject 0.1.1 (default 0,2)")
    ap.add_argument("--monai-workers", default="2", help="num_workers settings for MONAI (default 2)")
    ap.add_argument(
        "--ours-slice",
        choices=["factory", "torch"],
        default="factory",
        help="ours in slice mode: create_training_dataloader(slice_orientation='axial') when it has that argument"
        " (default), or torch's DataLoader over VolumeCollectionDataset(SLICE_2D)",
    )
    ap.add_argument(
        "--cache-mb",
        type=int,
        default=2048,
        help="ours' tile cache in MiB (default 2048: the 16-subject dataset, 1.1 GB decoded, fits)",
    )
    ap.add_argument(
        "--prefetch", type=int, help="passed to ours' create_training_dataloader as prefetch= (default: its own)"
    )
    ap.add_argument(
        "--max-batches",
        type=int,
        help="cap on batches per epoch (default: whole epochs for patch and full; 40 slice batches, 8 with --quick)",
    )
    ap.add_argument("--epoch-seconds", type=float, help="cap on the time of one epoch (default 60 s; 10 with --quick)")
    ap.add_argument(
        "--step-ms", type=float, default=50.0, help="simulated training step of epoch 3 (default 50 ms; 0: no epoch 3)"
    )
    ap.add_argument(
        "--stall",
        type=float,
        help="kill a setting after this many seconds without a batch (default 120; 60 with --quick)",
    )
    ap.add_argument(
        "--json",
        metavar="PATH",
        default=".data/bench/compare_loaders.json",
        help="results as JSON (default .data/bench/compare_loaders.json)",
    )
    ap.add_argument(
        "--out", default=".data/bench-loaders", help="NIfTI files and datasets (default .data/bench-loaders)"
    )
    ap.add_argument("--rebuild", action="store_true", help="rewrite the two TileDB datasets")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        {"loader": work_loader, "build": work_build}[spec["kind"]](spec)
        return

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - set(MODES):
        ap.error(f"unknown mode(s) {sorted(set(modes) - set(MODES))}")
    sys_keys = [s.strip() for s in args.systems.split(",") if s.strip()]
    if set(sys_keys) - set(SYSTEM_KEYS):
        ap.error(f"unknown system(s) {sorted(set(sys_keys) - set(SYSTEM_KEYS))}")
    systems = [SYSTEM_KEYS[k] for k in SYSTEM_KEYS if k in sys_keys]
    nws = {
        OURS: [int(x) for x in args.workers.split(",") if x.strip()],
        OURS_RAW: [0],
        REFERENCE: [int(x) for x in args.ref_workers.split(",") if x.strip()],
        MONAI: [int(x) for x in args.monai_workers.split(",") if x.strip()],
    }
    n = args.subjects or (8 if args.quick else 16)
    epoch_s = args.epoch_seconds or (10.0 if args.quick else 60.0)
    stall_s = args.stall or (60.0 if args.quick else 120.0)
    step_s = args.step_ms / 1e3
    n_epochs = 3 if step_s else 2
    caps = {m: args.max_batches for m in MODES}
    if args.max_batches is None:
        caps["slice"] = 8 if args.quick else 40
    timeout_s = n_epochs * (epoch_s + 30) + 180  # startup, one over-long batch per epoch, teardown

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    head = f"{platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · load {load0[0]:.2f}"
    log(head)
    nifti_dir = out / "niftis"
    log(f"[data] {n} subjects x {MODALITIES} {SHAPE} float32 phantoms as .nii under {nifti_dir}")
    ninfo = make_niftis(nifti_dir, n)
    report: dict = {
        "cpus": os.cpu_count(),
        "load_start": load0,
        "seed": SEED,
        "quick": args.quick,
        "subjects": n,
        "shape": list(SHAPE),
        "modalities": list(MODALITIES),
        "modes": modes,
        "systems": systems,
        "workers": {k: v for k, v in nws.items() if k in systems},
        "batch": BATCH,
        "patch": list(PATCH),
        "patches_per_volume": PATCHES_PER_VOLUME,
        "max_batches": caps,
        "epoch_s": epoch_s,
        "step_s": step_s,
        "stall_s": stall_s,
        "timeout_s": timeout_s,
        "prefetch": args.prefetch,
        "stores": {},
        "results": {},
        "ratios": [],
    }
    stores: dict[str, Path] = {}
    for system in (OURS, REFERENCE):
        if system in systems or (system == OURS and OURS_RAW in systems):
            uri, info = ensure_store(system, out, nifti_dir, n, args.rebuild, stall_s)
            report["stores"][system] = info
            if info.get("status") == "ok":
                stores[system] = uri
    report["stores"][MONAI] = {
        "files": 2 * n,
        "disk_mb": sum(nifti_path(nifti_dir, s, m).stat().st_size for s in subject_ids(n) for m in MODALITIES) / 1e6,
    }

    lines: list[str] = []
    for mode in modes:
        log(f"[{mode}] batches of {BATCH[mode]}, cap {caps[mode] or 'none'} batches / {epoch_s:g} s per epoch")
        results = []
        for system in systems:
            store_system = OURS if system == OURS_RAW else system
            for nw in nws[system]:
                label = f"{system} {mode} nw={nw}" if system != OURS_RAW else f"{system} {mode}"
                if store_system in (OURS, REFERENCE) and store_system not in stores:
                    err = report["stores"][store_system].get("error", "dataset not built")
                    results.append(
                        {"system": system, "mode": mode, "nw": nw, "status": "error", "error": f"no dataset: {err}"}
                    )
                    continue
                log(f"  {label} ...")
                r = run_child(
                    "loader",
                    system,
                    out / "tmp",
                    timeout_s=timeout_s,
                    stall_s=stall_s,
                    label=label,
                    mode=mode,
                    nw=nw,
                    n=n,
                    ours_uri=str(stores.get(OURS, "")),
                    ref_uri=str(stores.get(REFERENCE, "")),
                    nifti_dir=str(nifti_dir),
                    seed=SEED,
                    max_batches=caps[mode],
                    epoch_s=epoch_s,
                    step_s=step_s,
                    prefetch=args.prefetch,
                    cache_mb=args.cache_mb,
                    ours_slice=args.ours_slice,
                )
                r.update({"system": system, "mode": mode, "nw": nw})
                if r.get("status") != "ok":
                    log(f"  {label}: {r.get('status')}: {short(r.get('error', ''), 300)}")
                results.append(r)
        report["results"][mode] = results
        rows, notes = mode_rows(mode, results)
        rlines, recs = ratio_lines(mode, results)
        report["ratios"] += recs
        shape = " x ".join(map(str, expected_shape(mode)))
        lines += [
            "",
            f"### {mode}: batches of {shape} float32; epoch = {n} subjects"
            + {"patch": f" x {PATCHES_PER_VOLUME} patches", "slice": f" x {SHAPE[2]} slices", "full": ""}[mode]
            + f" (capped at {caps[mode] or '—'} batches / {epoch_s:g} s)",
            "",
            *table(
                [
                    "system",
                    "nw",
                    "status",
                    "ep1 samples/s",
                    "ep2 samples/s",
                    "first batch s",
                    f"wait @{args.step_ms:g}ms",
                    f"samples/s @{args.step_ms:g}ms",
                    "RSS main MB",
                    "RSS worker MB",
                    "RSS tree MB",
                    "batches e1/e2/e3",
                ],
                rows,
            ),
            *(["", *notes] if notes else []),
            "",
            "loaders: " + "; ".join(dict.fromkeys(f"{r['system']}: {r['loader']}" for r in results if r.get("loader"))),
            "",
            "ratios (samples/s, higher = ours faster):",
            *rlines,
        ]

    load1 = os.getloadavg()
    report["load_end"] = load1
    report["wall_s"] = time.perf_counter() - t0
    print(head)
    versions = {}
    for results in report["results"].values():
        for r in results:
            if r.get("version"):
                versions.setdefault(r["system"] if r["system"] != OURS_RAW else OURS, r["version"])
    for system, v in versions.items():
        print(f"{system}: {v}")
    for system, info in report["stores"].items():
        if info.get("status") == "ok" or system == MONAI:
            print(
                f"  {system} data: {info.get('disk_mb', 0):.0f} MB on disk"
                + (
                    f", tiles {info['tiles']}, written in {info['build_s']:.1f} s"
                    if "tiles" in info
                    else " (.nii, uncompressed)"
                )
            )
        else:
            print(f"  {system} data: not built: {short(info.get('error', ''), 200)}")
    print(
        f"{n} subjects x {len(MODALITIES)} modalities {'x'.join(map(str, SHAPE))} float32 (NIfTI source {ninfo.get('file_mb', 0):.0f} MB)"
    )
    print("\n".join(lines))
    print(
        f"\nep1/ep2 = samples/s of epochs 1 (fresh process) and 2, no training step; first batch = building the loader"
        f" (opening the dataset) + the first next(); wait @{args.step_ms:g}ms = share of epoch 3's wall time spent in next()"
        f" with a {args.step_ms:g} ms sleep per batch; RSS main = VmHWM of the main process, RSS worker = the largest"
        f" DataLoader worker (getrusage), RSS tree = sampled peak of the sum over the process tree (shared pages count once"
        f" per process). batches: * = epoch cut at the cap. Each row is a fresh subprocess in its own process group;"
        f" 'hang' = killed after {stall_s:g} s without a batch or {timeout_s:g} s in all (what it measured before is kept)."
        f"\nload average {load0[0]:.2f} at start, {load1[0]:.2f} at end; {report['wall_s']:.0f} s in all. Absolute rates drift"
        f" between runs on a shared {os.cpu_count()}-core machine; ratios measured in the same run hold better."
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
