"""radiobject.ml: the reference's training-loader API on the native batch path.

Real torch, real TileDB, real MONAI; every value is checked against numpy slicing of the arrays
that were written. The datasets are small (6 subjects of 48x40x32 float32, 16^3 tiles) and
built once per module.
"""

from __future__ import annotations

import gc
import glob
import importlib
import logging
import multiprocessing
import os
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import phantom
from torch.utils.data import DataLoader, DistributedSampler

import radiobject as ro
import radiobject.ml as ml
from radiobject import RadiObject, ReadConfig, TileConfig, VolumeCollection, WriteConfig, configure
from radiobject.exceptions import AlignmentError, RadiObjectError, ShapeError
from radiobject.ml import (
    Compose,
    DatasetConfig,
    LoadingMode,
    SegmentationDataset,
    VolumeCollectionDataset,
    create_inference_dataloader,
    create_segmentation_dataloader,
    create_training_dataloader,
    create_validation_dataloader,
)
from radiobject.ml.distributed import create_distributed_dataloader, set_epoch
from radiobject.writers import RadiObjectWriter, VolumeCollectionWriter

SHAPE = (48, 40, 32)
PATCH = (16, 16, 16)
SUBJECTS = [f"s{i}" for i in range(1, 7)]
GRADE = [0, 1, 0, 1, 1, 0]
SITE = ["a", "b", "a", "c", "b", "a"]
AGE = [30, 50, 40, 60, 70, 20]
ISO16 = WriteConfig(tile=TileConfig(orientation="isotropic", x=16, y=16, z=16))
ISO = WriteConfig(tile={"orientation": "isotropic"})
HET_SHAPES = [(40, 36, 28), (48, 40, 32), (32, 44, 24), (20, 16, 18)]


def _t1(i: int) -> np.ndarray:
    return phantom(SHAPE, seed=i)


def _flair(i: int) -> np.ndarray:
    return (phantom(SHAPE, seed=50 + i) * 0.5 + 7).astype(np.float32)


def _blob(shape, i: int, box=(4, 4, 3)) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    x, y, z = 4 + 5 * i, 6 + 3 * i, 3 + 4 * i
    m[x : x + box[0], y : y + box[1], z : z + box[2]] = 1
    m[x, y, z] = 2  # two labels
    return m


def _seg(i: int) -> np.ndarray:
    return np.zeros(SHAPE, np.uint8) if i == 5 else _blob(SHAPE, i)  # s6: empty mask


class Store:
    """The module's data: URIs and the arrays written (by collection, in volume order)."""

    uri: str
    arrays: dict[str, list[np.ndarray]]
    fewer: str
    other: str
    het_img: str
    het_mask: str

    def radi(self) -> RadiObject:
        return RadiObject(self.uri)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    base = tmp_path_factory.mktemp("ml")
    s = Store()
    s.uri = str(base / "ds")
    s.arrays = {
        "T1w": [_t1(i) for i in range(6)],
        "FLAIR": [_flair(i) for i in range(6)],
        "seg": [_seg(i) for i in range(6)],
    }
    with RadiObjectWriter(s.uri, obs_meta_schema={"age": np.int64}, write=ISO16) as w:
        w.write_obs_meta(pd.DataFrame({"obs_subject_id": SUBJECTS, "age": AGE}))
        with w.add_collection(
            "T1w", shape=SHAPE, obs_schema={"grade": np.int64, "site": str, "score": np.float64}
        ) as c:
            for i in (3, 0, 5, 1, 4, 2):  # written out of order: volumes are still in subject order
                c.write_volume(s.arrays["T1w"][i], f"{SUBJECTS[i]}_T1w", SUBJECTS[i],
                               grade=GRADE[i], site=SITE[i], score=0.5 * i)  # fmt: skip
        with w.add_collection("FLAIR", shape=SHAPE) as c:
            for i in range(6):
                c.write_volume(s.arrays["FLAIR"][i], f"{SUBJECTS[i]}_FLAIR", SUBJECTS[i])
        with w.add_collection("seg", shape=SHAPE) as c:
            for i in range(6):
                c.write_volume(s.arrays["seg"][i], f"{SUBJECTS[i]}_seg", SUBJECTS[i])
    # standalone collections: fewer subjects, another subject, heterogeneous shapes
    s.fewer = str(base / "fewer")
    with VolumeCollectionWriter(s.fewer, shape=SHAPE, name="fewer", write=ISO) as c:
        for i in range(5):
            c.write_volume(_t1(i), f"{SUBJECTS[i]}_fewer", SUBJECTS[i])
    s.other = str(base / "other")
    with VolumeCollectionWriter(s.other, shape=SHAPE, name="other", write=ISO) as c:
        for i, sid in enumerate([*SUBJECTS[:5], "s7"]):
            c.write_volume(_t1(i), f"{sid}_other", sid)
    s.arrays["het_img"] = [phantom(sh, seed=20 + i) for i, sh in enumerate(HET_SHAPES)]
    s.arrays["het_mask"] = [_blob(sh, 0, box=(3, 3, 3)) for sh in HET_SHAPES]
    s.het_img, s.het_mask = str(base / "het_img"), str(base / "het_mask")
    for uri, key, name in ((s.het_img, "het_img", "img"), (s.het_mask, "het_mask", "mask")):
        with VolumeCollectionWriter(uri, name=name, write=ISO) as c:
            for i, a in enumerate(s.arrays[key]):
                c.write_volume(a, f"h{i}_{name}", f"h{i}")
    return s


@pytest.fixture(scope="module")
def radi(store) -> RadiObject:
    return store.radi()


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def _box(arr: np.ndarray, start, size) -> np.ndarray:
    return arr[tuple(slice(int(s), int(s) + int(n)) for s, n in zip(start, size))]


def _starts(batch) -> list[tuple[int, int, int]]:
    """``patch_start`` of a collated batch (a list of 3 tensors) as one tuple per item."""
    return [tuple(int(v) for v in t) for t in zip(*batch["patch_start"])]


def _check_patch_batch(batch, sources: list[list[np.ndarray]], size=PATCH) -> None:
    img = batch["image"]
    assert img.shape == (len(batch["idx"]), len(sources), *size)
    for b, (vi, start) in enumerate(zip(batch["idx"].tolist(), _starts(batch))):
        for c, src in enumerate(sources):
            shape = src[vi].shape
            assert all(0 <= start[d] and start[d] + size[d] <= shape[d] for d in range(3)), (start, shape)
            np.testing.assert_array_equal(img[b, c].numpy(), _box(src[vi], start, size))


def _snapshot(loader) -> list[dict]:
    """Every batch of one pass, as plain comparable values."""
    out = []
    for batch in loader:
        snap = {"image": batch["image"].clone(), "idx": batch["idx"].tolist()}
        if "patch_start" in batch:
            snap["patch_start"] = _starts(batch)
            snap["patch_idx"] = batch["patch_idx"].tolist()
        if "label" in batch:
            snap["label"] = batch["label"].tolist()
        if "mask" in batch:
            snap["mask"] = batch["mask"].clone()
        out.append(snap)
    return out


def _same(a: list[dict], b: list[dict]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.keys() != y.keys():
            return False
        for k in x:
            if isinstance(x[k], torch.Tensor):
                if not (x[k].dtype == y[k].dtype and x[k].shape == y[k].shape and torch.equal(x[k], y[k])):
                    return False
            elif x[k] != y[k]:
                return False
    return True


def _native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


# ------------------------------------------------------------------------------------------------
# 1. API parity
# ------------------------------------------------------------------------------------------------

REFERENCE_EXPORTS = {
    "Compose",
    "DatasetConfig",
    "LabelSource",
    "LoadingMode",
    "SegmentationDataset",
    "VolumeCollectionDataset",
    "VolumeCollectionSubjectsDataset",
    "create_inference_dataloader",
    "create_segmentation_dataloader",
    "create_training_dataloader",
    "create_validation_dataloader",
}


def test_module_paths_and_exports():
    assert REFERENCE_EXPORTS <= set(ml.__all__)
    for name in ml.__all__:
        assert getattr(ml, name) is not None, name
    # the reference's module paths
    paths = {
        "radiobject.ml.config": ["DatasetConfig", "LoadingMode", "slice_dim_index", "SLICE_DIM"],
        "radiobject.ml.datasets": ["VolumeCollectionDataset", "SegmentationDataset"],
        "radiobject.ml.datasets.collection_dataset": ["VolumeCollectionDataset"],
        "radiobject.ml.datasets.segmentation_dataset": ["SegmentationDataset"],
        "radiobject.ml.factory": [
            "create_training_dataloader",
            "create_validation_dataloader",
            "create_inference_dataloader",
            "create_segmentation_dataloader",
        ],
        "radiobject.ml.distributed": ["create_distributed_dataloader", "set_epoch"],
        "radiobject.ml.compat": ["Compose", "VolumeCollectionSubjectsDataset"],
        "radiobject.ml.compat.torchio": ["VolumeCollectionSubjectsDataset"],
        "radiobject.ml.utils": [
            "LabelSource",
            "load_labels",
            "validate_collection_alignment",
            "validate_uniform_shapes",
            "collect_volume_shapes",
            "worker_init_fn",
        ],
        "radiobject.ml.utils.labels": ["load_labels"],
        "radiobject.ml.utils.validation": ["validate_collection_alignment"],
        "radiobject.ml.utils.worker_init": ["worker_init_fn"],
    }
    for mod, names in paths.items():
        m = importlib.import_module(mod)
        for n in names:
            assert hasattr(m, n), f"{mod}.{n}"
    # re-exported from distributed
    assert {"create_distributed_dataloader", "set_epoch"} <= set(ml.__all__)
    assert ml.create_distributed_dataloader is create_distributed_dataloader and ml.set_epoch is set_epoch
    assert (
        ml.VolumeCollectionDataset
        is importlib.import_module("radiobject.ml.datasets.collection_dataset").VolumeCollectionDataset
    )
    assert {m.value for m in LoadingMode} == {"full_volume", "patch", "slice_2d"}
    assert LoadingMode("patch") is LoadingMode.PATCH and LoadingMode.PATCH == "patch"


def test_dataset_config_validation_and_frozen():
    c = DatasetConfig()
    assert (c.loading_mode, c.patch_size, c.patches_per_volume) == (LoadingMode.FULL_VOLUME, None, 1)
    assert c.slice_orientation == ro.SliceOrientation.AXIAL
    with pytest.raises(ValueError, match="patch_size required"):
        DatasetConfig(loading_mode=LoadingMode.PATCH)
    with pytest.raises(ValueError, match="patches_per_volume must be >= 1"):
        DatasetConfig(loading_mode=LoadingMode.PATCH, patch_size=PATCH, patches_per_volume=0)
    with pytest.raises(ValueError, match="patches_per_volume must be >= 1"):
        DatasetConfig(patches_per_volume=-3)
    p = DatasetConfig(loading_mode="patch", patch_size=[16, 16, 16], patches_per_volume=2)
    assert p.loading_mode is LoadingMode.PATCH and p.patch_size == (16, 16, 16)
    with pytest.raises(Exception) as e:
        p.patch_size = (8, 8, 8)  # frozen
    assert isinstance(e.value, (AttributeError, TypeError, ValueError))
    assert p.patch_size == (16, 16, 16)
    assert hash(p) == hash(DatasetConfig(loading_mode="patch", patch_size=(16, 16, 16), patches_per_volume=2))
    q = p.model_copy(update={"patches_per_volume": 3})
    assert q.patches_per_volume == 3 and p.patches_per_volume == 2
    # the reference's never-read fields are accepted
    DatasetConfig(modalities=["T1w"], label_column="grade", value_filter="age > 3")


def test_full_volume_items_keys_shapes_dtypes(radi):
    ds = VolumeCollectionDataset(radi.T1w, labels="grade")
    assert len(ds) == 6
    item = ds[2]
    assert list(item) == ["image", "idx", "label"]
    assert item["image"].shape == (1, *SHAPE) and item["image"].dtype == torch.float32
    assert item["idx"] == 2 and isinstance(item["idx"], int)
    assert isinstance(item["label"], torch.Tensor) and item["label"].item() == GRADE[2]
    assert ds.collection_names == ["T1w"] and ds.n_channels == 1 and ds.volume_shape == SHAPE
    # a uint8 collection keeps its dtype
    seg = VolumeCollectionDataset(radi.seg)
    assert seg[0]["image"].dtype == torch.uint8
    np.testing.assert_array_equal(seg[0]["image"][0].numpy(), _seg(0))


def test_patch_items_keys_len_and_properties(radi):
    cfg = DatasetConfig(loading_mode=LoadingMode.PATCH, patch_size=PATCH, patches_per_volume=3)
    ds = VolumeCollectionDataset([radi.T1w, radi.FLAIR], config=cfg, labels="grade", seed=11)
    assert len(ds) == 18
    assert ds.volume_shape is None  # patch mode: volumes may differ
    assert ds.n_channels == 2 and ds.collection_names == ["T1w", "FLAIR"]
    item = ds[7]
    assert list(item) == ["image", "idx", "patch_idx", "patch_start", "label"]
    assert item["image"].shape == (2, *PATCH) and item["image"].dtype == torch.float32
    assert (item["idx"], item["patch_idx"]) == (2, 1)
    assert isinstance(item["patch_start"], tuple) and len(item["patch_start"]) == 3
    assert all(isinstance(v, int) for v in item["patch_start"])


def test_slice_items_keys_and_len(radi):
    for orient, axis in (("axial", 2), ("sagittal", 0), ("coronal", 1)):
        cfg = DatasetConfig(loading_mode=LoadingMode.SLICE_2D, slice_orientation=orient)
        ds = VolumeCollectionDataset([radi.T1w, radi.FLAIR], config=cfg)
        assert len(ds) == 6 * SHAPE[axis]
        assert ds.volume_shape == SHAPE
        item = ds[SHAPE[axis] + 3]
        assert list(item) == ["image", "idx", "slice_idx"]
        want = tuple(n for d, n in enumerate(SHAPE) if d != axis)
        assert item["image"].shape == (2, *want)
        assert (item["idx"], item["slice_idx"]) == (1, 3)


def test_segmentation_items_and_properties(radi):
    for cfg, n, mode_keys in (
        (DatasetConfig(), 6, []),
        (DatasetConfig(loading_mode="patch", patch_size=PATCH, patches_per_volume=2), 12, ["patch_idx", "patch_start"]),
        (DatasetConfig(loading_mode="slice_2d", slice_orientation="sagittal"), 6 * SHAPE[0], ["slice_idx"]),
    ):
        ds = SegmentationDataset(radi.T1w, radi.seg, config=cfg, seed=1)
        assert len(ds) == n and ds.n_volumes == 6 and ds.volume_shape == SHAPE
        item = ds[n - 1]
        assert list(item) == ["image", "mask", "idx", *mode_keys, "obs_id", "obs_subject_id"]
        assert item["image"].dtype == torch.float32 and item["mask"].dtype == torch.uint8
        assert item["image"].shape[0] == 1 and item["mask"].shape == item["image"].shape
        assert (item["obs_id"], item["obs_subject_id"]) == ("s6_T1w", "s6")


def test_factories_return_torch_dataloaders_with_real_samplers(radi):
    cols = [radi.T1w, radi.FLAIR]
    train = create_training_dataloader(cols, labels="grade", batch_size=4, seed=3)
    val = create_validation_dataloader(cols, batch_size=4, seed=3)
    inf = create_inference_dataloader(cols)
    segl = create_segmentation_dataloader(radi.T1w, radi.seg, batch_size=4, patch_size=PATCH, seed=3)
    for dl in (train, val, inf, segl):
        assert isinstance(dl, torch.utils.data.DataLoader)
        assert isinstance(dl.sampler, torch.utils.data.Sampler) and len(dl.sampler) == len(dl.dataset)
        assert dl.num_workers == 0
    assert (train.batch_size, train.drop_last) == (4, True)
    assert (val.batch_size, val.drop_last) == (4, False)
    assert (inf.batch_size, inf.drop_last) == (1, False)
    assert (segl.batch_size, segl.drop_last) == (4, True)
    # training drops the last partial batch, validation keeps it
    assert len(train) == 1 and [len(b["idx"]) for b in train] == [4]
    assert len(val) == 2 and [b["idx"].tolist() for b in val] == [[0, 1, 2, 3], [4, 5]]
    # inference: whole volumes, batch 1, in order
    seen = []
    for b in inf:
        assert b["image"].shape == (1, 2, *SHAPE)
        seen.append(int(b["idx"]))
    assert seen == list(range(6))
    # the samplers: training and segmentation shuffle (a permutation), the others do not
    orders = [[int(i) for i in train.sampler] for _ in range(4)]
    assert all(sorted(o) == list(range(6)) for o in orders) and any(o != list(range(6)) for o in orders)
    assert [int(i) for i in val.sampler] == list(range(6)) == [int(i) for i in inf.sampler]
    assert sorted(int(i) for i in segl.sampler) == list(range(6))
    # training: every volume at most once per epoch
    idx = [i for b in create_training_dataloader(cols, batch_size=2, seed=4) for i in b["idx"].tolist()]
    assert sorted(idx) == list(range(6))


def test_distributed_factory_partitions_each_epoch(radi):
    loaders = [
        create_distributed_dataloader(
            radi.T1w, rank=r, world_size=2, batch_size=1, patch_size=PATCH, patches_per_volume=2, seed=8
        )
        for r in (0, 1)
    ]
    for dl in loaders:
        assert isinstance(dl, torch.utils.data.DataLoader) and isinstance(dl.sampler, DistributedSampler)
        assert len(dl) == 6
    orders = {}
    for epoch in (0, 1):
        got = []
        for dl in loaders:
            set_epoch(dl, epoch)
            got.append([(b["idx"].item(), b["patch_idx"].item()) for b in dl])
        assert not set(got[0]) & set(got[1])
        assert sorted(got[0] + got[1]) == sorted((v, p) for v in range(6) for p in range(2))
        orders[epoch] = got
    assert orders[0] != orders[1]
    with pytest.raises(ValueError):
        create_distributed_dataloader(radi.T1w, rank=2, world_size=2)


def test_factories_log_one_line(radi, store, caplog):
    with caplog.at_level(logging.INFO, logger="radiobject.ml"):
        create_training_dataloader(radi.T1w, batch_size=2, patch_size=PATCH, seed=5)
    lines = [r.getMessage() for r in caplog.records if r.name == "radiobject.ml"]
    assert len(lines) == 1
    assert store.uri in lines[0] and "mode=patch" in lines[0] and "seed=5" in lines[0] and "items=6" in lines[0]


# ------------------------------------------------------------------------------------------------
# 2. Values
# ------------------------------------------------------------------------------------------------


def test_full_volumes_are_exact(radi, store):
    ds = VolumeCollectionDataset([radi.FLAIR, radi.T1w])  # channel order is the order given
    assert ds.collection_names == ["FLAIR", "T1w"]
    for i in range(6):
        img = ds[i]["image"].numpy()
        np.testing.assert_array_equal(img[0], store.arrays["FLAIR"][i])
        np.testing.assert_array_equal(img[1], store.arrays["T1w"][i])
    batches = list(DataLoader(ds, batch_size=4))
    assert [tuple(b["image"].shape) for b in batches] == [(4, 2, *SHAPE), (2, 2, *SHAPE)]
    full = torch.cat([b["image"] for b in batches]).numpy()
    np.testing.assert_array_equal(full[:, 0], np.stack(store.arrays["FLAIR"]))
    np.testing.assert_array_equal(full[:, 1], np.stack(store.arrays["T1w"]))
    assert full.flags["C_CONTIGUOUS"]


def test_patches_are_exact_and_in_bounds(radi, store):
    dl = create_training_dataloader([radi.T1w, radi.FLAIR], batch_size=4, patch_size=PATCH, patches_per_volume=4,
                                    seed=21)  # fmt: skip
    n = 0
    starts = set()
    for _ in range(2):
        for batch in dl:
            _check_patch_batch(batch, [store.arrays["T1w"], store.arrays["FLAIR"]])
            starts.update(_starts(batch))
            n += len(batch["idx"])
    assert n == 2 * 24 and len(starts) > 10  # random positions, not a fixed grid
    # anisotropic patches, read through the dataset directly
    cfg = DatasetConfig(loading_mode="patch", patch_size=(40, 8, 31), patches_per_volume=5)
    ds = VolumeCollectionDataset(radi.T1w, config=cfg, seed=2)
    for i in range(len(ds)):
        it = ds[i]
        assert it["image"].shape == (1, 40, 8, 31)
        np.testing.assert_array_equal(
            it["image"][0].numpy(), _box(store.arrays["T1w"][it["idx"]], it["patch_start"], (40, 8, 31))
        )
    # a patch as large as the volume is the whole volume
    cfg = DatasetConfig(loading_mode="patch", patch_size=SHAPE)
    it = VolumeCollectionDataset(radi.T1w, config=cfg, seed=2)[4]
    assert it["patch_start"] == (0, 0, 0)
    np.testing.assert_array_equal(it["image"][0].numpy(), store.arrays["T1w"][4])


@pytest.mark.parametrize("orient,axis", [("axial", 2), ("sagittal", 0), ("coronal", 1)])
def test_slices_are_exact(radi, store, orient, axis):
    cfg = DatasetConfig(loading_mode=LoadingMode.SLICE_2D, slice_orientation=orient)
    ds = VolumeCollectionDataset([radi.T1w, radi.FLAIR], config=cfg)
    n = SHAPE[axis]
    seen = 0
    for batch in DataLoader(ds, batch_size=37):
        for b, (vi, si) in enumerate(zip(batch["idx"].tolist(), batch["slice_idx"].tolist())):
            for c, key in enumerate(("T1w", "FLAIR")):
                want = np.take(store.arrays[key][vi], si, axis=axis)
                np.testing.assert_array_equal(batch["image"][b, c].numpy(), want)
            assert vi * n + si == seen
            seen += 1
    assert seen == 6 * n
    # the training factory's slice mode
    dl = create_training_dataloader(radi.T1w, batch_size=8, slice_orientation=orient, seed=1)
    batch = next(iter(dl))
    assert batch["image"].shape[:2] == (8, 1)
    for b, (vi, si) in enumerate(zip(batch["idx"].tolist(), batch["slice_idx"].tolist())):
        np.testing.assert_array_equal(batch["image"][b, 0].numpy(), np.take(store.arrays["T1w"][vi], si, axis=axis))
    # segmentation slices: image and mask of the same slice
    sds = SegmentationDataset(radi.T1w, radi.seg, config=cfg)
    for i in (0, n + 5, 3 * n + n - 1):
        it = sds[i]
        vi, si = it["idx"], it["slice_idx"]
        np.testing.assert_array_equal(it["image"][0].numpy(), np.take(store.arrays["T1w"][vi], si, axis=axis))
        np.testing.assert_array_equal(it["mask"][0].numpy(), np.take(store.arrays["seg"][vi], si, axis=axis))


def test_segmentation_image_and_mask_share_the_box(radi, store):
    dl = create_segmentation_dataloader(radi.T1w, radi.seg, batch_size=3, patch_size=PATCH, patches_per_volume=3,
                                        seed=13)  # fmt: skip
    assert len(dl) == 6
    for batch in dl:
        assert batch["image"].shape == (3, 1, *PATCH) and batch["mask"].shape == (3, 1, *PATCH)
        assert batch["image"].dtype == torch.float32 and batch["mask"].dtype == torch.uint8
        for b, (vi, st) in enumerate(zip(batch["idx"].tolist(), _starts(batch))):
            np.testing.assert_array_equal(batch["image"][b, 0].numpy(), _box(store.arrays["T1w"][vi], st, PATCH))
            np.testing.assert_array_equal(batch["mask"][b, 0].numpy(), _box(store.arrays["seg"][vi], st, PATCH))
            assert batch["obs_id"][b] == f"{SUBJECTS[vi]}_T1w" and batch["obs_subject_id"][b] == SUBJECTS[vi]
    # full volumes
    ds = SegmentationDataset(radi.T1w, radi.seg)
    for i in range(6):
        it = ds[i]
        np.testing.assert_array_equal(it["image"][0].numpy(), store.arrays["T1w"][i])
        np.testing.assert_array_equal(it["mask"][0].numpy(), store.arrays["seg"][i])


def test_heterogeneous_shapes_in_patch_mode_only(store):
    img, msk = VolumeCollection(store.het_img), VolumeCollection(store.het_mask)
    assert img.shape is None  # heterogeneous
    cfg = DatasetConfig(loading_mode="patch", patch_size=PATCH, patches_per_volume=6)
    ds = SegmentationDataset(img, msk, config=cfg, seed=4)
    assert len(ds) == 24 and ds.n_volumes == 4
    assert ds.volume_shapes == HET_SHAPES and ds.volume_shape == HET_SHAPES[0]
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for batch in DataLoader(ds, batch_size=5):
            for b, (vi, st) in enumerate(zip(batch["idx"].tolist(), _starts(batch))):
                shape = HET_SHAPES[vi]
                assert all(0 <= st[d] <= shape[d] - PATCH[d] for d in range(3))
                np.testing.assert_array_equal(
                    batch["image"][b, 0].numpy(), _box(store.arrays["het_img"][vi], st, PATCH)
                )
                np.testing.assert_array_equal(
                    batch["mask"][b, 0].numpy(), _box(store.arrays["het_mask"][vi], st, PATCH)
                )
    # the factory and VolumeCollectionDataset accept them too in patch mode
    dl = create_segmentation_dataloader(img, msk, batch_size=2, patch_size=PATCH, seed=1)
    assert sum(len(b["idx"]) for b in dl) == 4
    vds = VolumeCollectionDataset(img, config=cfg, seed=3)
    it = vds[len(vds) - 1]
    np.testing.assert_array_equal(it["image"][0].numpy(), _box(store.arrays["het_img"][3], it["patch_start"], PATCH))
    # full volumes and slices need one shape
    for bad in (DatasetConfig(), DatasetConfig(loading_mode="slice_2d")):
        with pytest.raises(ValueError) as e:
            SegmentationDataset(img, msk, config=bad)
        assert isinstance(e.value, RadiObjectError)
        with pytest.raises(ValueError, match="heterogeneous"):
            VolumeCollectionDataset(img, config=bad)
    with pytest.raises(ValueError):
        create_inference_dataloader(img)


def test_volume_smaller_than_patch_is_refused(radi, store):
    with pytest.raises(ValueError, match="smaller than patch_size") as e:
        VolumeCollectionDataset(radi.T1w, config=DatasetConfig(loading_mode="patch", patch_size=(64, 16, 16)))
    assert isinstance(e.value, ShapeError)
    img, msk = VolumeCollection(store.het_img), VolumeCollection(store.het_mask)
    with pytest.raises(ValueError, match="smaller than patch_size"):
        SegmentationDataset(img, msk, config=DatasetConfig(loading_mode="patch", patch_size=(24, 24, 24)))
    with pytest.raises(ValueError, match="smaller than patch_size"):
        create_training_dataloader(radi.T1w, patch_size=(16, 16, 33))


# ------------------------------------------------------------------------------------------------
# 3. Labels
# ------------------------------------------------------------------------------------------------


def test_labels_from_every_source(radi):
    ids = [f"{s}_T1w" for s in SUBJECTS]
    t1 = radi.T1w

    def labels_of(source):
        ds = VolumeCollectionDataset(t1, labels=source)
        return [ds[i].get("label", "missing") for i in range(6)]

    got = labels_of("grade")
    assert all(isinstance(v, torch.Tensor) for v in got) and [int(v) for v in got] == GRADE
    assert labels_of("site") == SITE  # strings stay strings
    got = labels_of("score")
    assert all(isinstance(v, torch.Tensor) and v.is_floating_point() for v in got)
    assert [float(v) for v in got] == [0.5 * i for i in range(6)]
    # DataFrame with an obs_id column (the first other column is the label)
    df = pd.DataFrame({"obs_id": ids[::-1], "y": [10 * i for i in range(6)][::-1], "z": 0})
    assert [int(v) for v in labels_of(df)] == [10 * i for i in range(6)]
    # DataFrame indexed by obs_id: object index, pandas 3 "str" index, named index
    for index in (
        pd.Index(ids, dtype=object),
        pd.Index(ids, dtype="str"),
        pd.Index(ids, name="obs_id"),
    ):
        df = pd.DataFrame({"y": [7 * i for i in range(6)]}, index=index)
        assert [int(v) for v in labels_of(df)] == [7 * i for i in range(6)], index.dtype
    # dict and callable; numbers become tensors
    got = labels_of({o: 0.25 * i for i, o in enumerate(ids)})
    assert all(isinstance(v, torch.Tensor) for v in got) and [float(v) for v in got] == [0.25 * i for i in range(6)]
    got = labels_of(lambda oid: int(oid[1]) * 3)
    assert [int(v) for v in got] == [3 * i for i in range(1, 7)]
    assert labels_of(lambda oid: oid.upper()) == [o.upper() for o in ids]
    # missing labels: no "label" key for those volumes
    got = labels_of({ids[0]: 1, ids[3]: 0})
    assert [int(v) for v in (got[0], got[3])] == [1, 0]
    assert [got[i] for i in (1, 2, 4, 5)] == ["missing"] * 4
    assert "label" not in VolumeCollectionDataset(t1, labels={"nobody": 1})[0]
    assert "label" not in VolumeCollectionDataset(t1)[0]
    with pytest.raises(ValueError, match="nope"):
        VolumeCollectionDataset(t1, labels="nope")


def test_labels_in_batches(radi):
    dl = create_training_dataloader(radi.T1w, labels="grade", batch_size=3, patch_size=PATCH, patches_per_volume=2,
                                    seed=9)  # fmt: skip
    for batch in dl:
        assert batch["label"].dtype == torch.int64
        assert batch["label"].tolist() == [GRADE[i] for i in batch["idx"].tolist()]
    dl = create_validation_dataloader(radi.T1w, labels="site", batch_size=4)
    assert [b["label"] for b in dl] == [SITE[:4], SITE[4:]]


# ------------------------------------------------------------------------------------------------
# 4. Views
# ------------------------------------------------------------------------------------------------


def test_views_train_on_exactly_their_subjects(radi, store):
    view = radi.filter("age > 35")
    keep = [SUBJECTS.index(s) for s in ("s2", "s3", "s4", "s5")]
    assert view.obs_subject_ids == ["s2", "s3", "s4", "s5"]
    ds = VolumeCollectionDataset([view.T1w, view.FLAIR], labels="grade")
    assert len(ds) == 4 and ds.obs_ids == [f"{SUBJECTS[i]}_T1w" for i in keep]
    for j, i in enumerate(keep):
        it = ds[j]
        np.testing.assert_array_equal(it["image"][0].numpy(), store.arrays["T1w"][i])
        np.testing.assert_array_equal(it["image"][1].numpy(), store.arrays["FLAIR"][i])
        assert int(it["label"]) == GRADE[i]
    # the training factory over the view: patches of those subjects only, with their labels
    dl = create_training_dataloader([view.T1w, view.FLAIR], labels="grade", batch_size=2, patch_size=PATCH,
                                    patches_per_volume=3, seed=6)  # fmt: skip
    seen = set()
    for batch in dl:
        _check_patch_batch(batch, [[store.arrays["T1w"][i] for i in keep], [store.arrays["FLAIR"][i] for i in keep]])
        assert batch["label"].tolist() == [GRADE[keep[j]] for j in batch["idx"].tolist()]
        seen.update(batch["idx"].tolist())
    assert seen == {0, 1, 2, 3}
    # loc views (subjects), segmentation over them
    sub = radi.loc[["s5", "s1"]]
    sds = SegmentationDataset(sub.T1w, sub.seg)
    assert sds.n_volumes == 2
    got = [(sds[i]["obs_subject_id"], sds[i]["obs_id"]) for i in range(2)]
    assert sorted(got) == [("s1", "s1_T1w"), ("s5", "s5_T1w")]
    for i in range(2):
        it = sds[i]
        k = SUBJECTS.index(it["obs_subject_id"])
        np.testing.assert_array_equal(it["image"][0].numpy(), store.arrays["T1w"][k])
        np.testing.assert_array_equal(it["mask"][0].numpy(), store.arrays["seg"][k])
    # collection views: loc (views keep index order), filter, iloc
    cv = radi.T1w.loc[["s4_T1w", "s1_T1w"]]
    ds = VolumeCollectionDataset(cv, labels="site")
    assert ds.obs_ids == cv.obs_ids == ["s1_T1w", "s4_T1w"] and len(ds) == 2
    np.testing.assert_array_equal(ds[0]["image"][0].numpy(), store.arrays["T1w"][0])
    np.testing.assert_array_equal(ds[1]["image"][0].numpy(), store.arrays["T1w"][3])
    assert [ds[0]["label"], ds[1]["label"]] == [SITE[0], SITE[3]]
    fv = radi.T1w.filter("grade == 1")
    ds = VolumeCollectionDataset(fv, labels="grade")
    ones = [i for i, g in enumerate(GRADE) if g == 1]
    assert ds.obs_ids == [f"{SUBJECTS[i]}_T1w" for i in ones]
    for j, i in enumerate(ones):
        np.testing.assert_array_equal(ds[j]["image"][0].numpy(), store.arrays["T1w"][i])
        assert int(ds[j]["label"]) == 1
    iv = radi.T1w.iloc[2:4]
    loader = create_inference_dataloader(iv)
    got = [b["image"][0, 0].numpy() for b in loader]
    assert len(got) == 2
    np.testing.assert_array_equal(got[0], store.arrays["T1w"][2])
    np.testing.assert_array_equal(got[1], store.arrays["T1w"][3])


# ------------------------------------------------------------------------------------------------
# 5. Alignment
# ------------------------------------------------------------------------------------------------


def test_misaligned_collections_raise_alignment_error(radi, store):
    fewer, other = VolumeCollection(store.fewer), VolumeCollection(store.other)
    with pytest.raises(AlignmentError, match=r"has .* volumes, expected") as e:
        VolumeCollectionDataset([radi.T1w, fewer])
    assert isinstance(e.value, ValueError)
    with pytest.raises(AlignmentError, match=r"has .* volumes, expected"):
        create_training_dataloader([radi.T1w, fewer], patch_size=PATCH)
    with pytest.raises(AlignmentError, match=r"has .* volumes, expected"):
        SegmentationDataset(radi.T1w, fewer)
    with pytest.raises(AlignmentError):  # same count, another subject
        VolumeCollectionDataset([radi.T1w, other])
    with pytest.raises(AlignmentError):
        SegmentationDataset(other, radi.seg)
    # views of the same length over other subjects
    with pytest.raises(AlignmentError, match="s2"):
        VolumeCollectionDataset([radi.T1w.iloc[0:3], radi.FLAIR.iloc[1:4]],
                                config=DatasetConfig(loading_mode="patch", patch_size=PATCH))  # fmt: skip
    # a view against the whole collection
    with pytest.raises(AlignmentError):
        VolumeCollectionDataset([radi.filter("age > 35").T1w, radi.FLAIR])
    # aligned views are fine
    v = radi.filter("age > 35")
    ok = VolumeCollectionDataset([v.T1w, v.FLAIR], config=DatasetConfig(loading_mode="patch", patch_size=PATCH))
    assert len(ok) == 4 and ok.obs_ids == ["s2_T1w", "s3_T1w", "s4_T1w", "s5_T1w"]


# ------------------------------------------------------------------------------------------------
# 6. Determinism
# ------------------------------------------------------------------------------------------------


def _training_run(store, *, max_workers: int, prefetch: int, num_workers: int, sleep: float = 0.0) -> dict:
    configure(read=ReadConfig(max_workers=max_workers))
    r = store.radi()  # opened through the reconfigured global context
    dl = create_training_dataloader([r.T1w, r.FLAIR], labels="grade", batch_size=4, patch_size=PATCH,
                                    patches_per_volume=2, seed=777, prefetch=None if num_workers else prefetch,
                                    num_workers=num_workers,
                                    persistent_workers=False, timeout=120 if num_workers else 0)  # fmt: skip
    out = {}
    try:
        for epoch in (0, 1):
            set_epoch(dl, epoch)
            batches = []
            for batch in dl:
                if sleep:
                    time.sleep(sleep)
                batches.append(batch)
            out[epoch] = _snapshot(batches)
        assert dl.stats().threads >= 1
        assert dl.stats().num_workers == num_workers
        if num_workers == 0:
            assert dl.stats().threads == max_workers and dl.stats().prefetch == prefetch
    finally:
        del dl
    return out


def test_batches_identical_across_threads_prefetch_and_workers(store):
    ref = _training_run(store, max_workers=1, prefetch=0, num_workers=0)
    assert len(ref[0]) == 3 and all(b["image"].shape == (4, 2, *PATCH) for b in ref[0])
    for epoch in (0, 1):
        for b in ref[epoch]:
            _check_patch_batch({"image": b["image"], "idx": torch.tensor(b["idx"]),
                                "patch_start": list(torch.tensor(b["patch_start"]).T)},
                               [store.arrays["T1w"], store.arrays["FLAIR"]])  # fmt: skip
            assert b["label"] == [GRADE[i] for i in b["idx"]]
    # a new epoch: other patches and another order
    items = lambda e: [(i, p, s) for b in ref[e] for i, p, s in zip(b["idx"], b["patch_idx"], b["patch_start"])]  # noqa: E731
    assert items(0) != items(1)
    assert {s for *_, s in items(0)} != {s for *_, s in items(1)}
    assert [(i, p) for i, p, _ in items(0)] != [(i, p) for i, p, _ in items(1)]
    settings = [
        dict(max_workers=2, prefetch=4, num_workers=0),
        dict(max_workers=4, prefetch=4, num_workers=0, sleep=0.02),
        dict(max_workers=4, prefetch=0, num_workers=0),
        dict(max_workers=1, prefetch=4, num_workers=0),
        dict(max_workers=1, prefetch=0, num_workers=2),
        dict(max_workers=4, prefetch=0, num_workers=2),
    ]
    for s in settings:
        got = _training_run(store, **s)
        for epoch in (0, 1):
            assert _same(got[epoch], ref[epoch]), (s, epoch)


def test_plain_loop_advances_epochs_reproducibly(radi):
    dl = create_training_dataloader(radi.T1w, batch_size=2, patch_size=PATCH, patches_per_volume=2, seed=31)
    passes = [_snapshot(dl) for _ in range(3)]
    assert not _same(passes[0], passes[1]) and not _same(passes[1], passes[2])
    again = create_training_dataloader(radi.T1w, batch_size=2, patch_size=PATCH, patches_per_volume=2, seed=31)
    set_epoch(again, 2)
    assert _same(_snapshot(again), passes[2])
    again.set_epoch(0)
    assert _same(_snapshot(again), passes[0])
    other = create_training_dataloader(radi.T1w, batch_size=2, patch_size=PATCH, patches_per_volume=2, seed=32)
    assert not _same(_snapshot(other), passes[0])
    # validation keeps its patches (epoch 0) pass after pass
    val = create_validation_dataloader(radi.T1w, batch_size=4, patch_size=PATCH, seed=31)
    assert _same(_snapshot(val), _snapshot(val))


def test_torch_manual_seed_governs_the_default_seed(radi):
    def run():
        dl = create_training_dataloader(radi.T1w, batch_size=2, patch_size=PATCH, patches_per_volume=2)
        return dl.seed, _snapshot(dl)

    with torch.random.fork_rng():
        torch.manual_seed(1234)
        s1, a = run()
        ds = VolumeCollectionDataset(radi.T1w)
        torch.manual_seed(1234)
        s2, b = run()
        torch.manual_seed(99)
        s3, c = run()
    assert s1 == s2 == 1234 == ds.seed and s3 == 99
    assert _same(a, b) and not _same(a, c)


def test_dataset_set_epoch_changes_patches(radi, store):
    cfg = DatasetConfig(loading_mode="patch", patch_size=PATCH, patches_per_volume=2)
    ds = VolumeCollectionDataset(radi.T1w, config=cfg, seed=5)
    e0 = [ds[i]["patch_start"] for i in range(len(ds))]
    assert e0 == [ds[i]["patch_start"] for i in range(len(ds))]  # stable within an epoch
    ds.set_epoch(1)
    assert ds.epoch == 1
    e1 = [ds[i]["patch_start"] for i in range(len(ds))]
    assert e0 != e1
    ds2 = VolumeCollectionDataset(radi.T1w, config=cfg, seed=5)
    ds2.set_epoch(1)
    assert [ds2[i]["patch_start"] for i in range(len(ds))] == e1


# ------------------------------------------------------------------------------------------------
# 7. Plain torch DataLoader, indexing
# ------------------------------------------------------------------------------------------------


def test_plain_torch_dataloader_around_the_datasets(radi, store):
    cfg = DatasetConfig(loading_mode="patch", patch_size=PATCH, patches_per_volume=3)
    ds = VolumeCollectionDataset([radi.T1w, radi.FLAIR], config=cfg, labels="grade", seed=17)
    dl = DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    n = 0
    for batch in dl:
        assert batch["image"].shape[1:] == (2, *PATCH)
        _check_patch_batch(batch, [store.arrays["T1w"], store.arrays["FLAIR"]])
        for b, (vi, pi) in enumerate(zip(batch["idx"].tolist(), batch["patch_idx"].tolist())):
            it = ds[vi * 3 + pi]  # the same item, read alone
            assert it["patch_start"] == _starts(batch)[b]
            assert torch.equal(it["image"], batch["image"][b])
        n += len(batch["idx"])
    assert n == 18
    # worker processes (as Lightning may build it) give the same batches
    seq = _snapshot(DataLoader(ds, batch_size=4))
    work = _snapshot(DataLoader(ds, batch_size=4, num_workers=2, timeout=120))
    assert _same(seq, work)
    # segmentation dataset too
    sds = SegmentationDataset(radi.T1w, radi.seg, config=cfg, seed=3)
    for batch in DataLoader(sds, batch_size=5, shuffle=True):
        assert batch["obs_id"] == [f"{SUBJECTS[i]}_T1w" for i in batch["idx"].tolist()]
        for b, (vi, st) in enumerate(zip(batch["idx"].tolist(), _starts(batch))):
            np.testing.assert_array_equal(batch["mask"][b, 0].numpy(), _box(store.arrays["seg"][vi], st, PATCH))


def test_indexing_negative_and_out_of_range(radi, store):
    ds = VolumeCollectionDataset(radi.T1w)
    np.testing.assert_array_equal(ds[-1]["image"][0].numpy(), store.arrays["T1w"][5])
    assert ds[-6]["idx"] == 0 and ds[np.int64(3)]["idx"] == 3
    for bad in (6, 100, -7):
        with pytest.raises(IndexError):
            ds[bad]
    with pytest.raises(TypeError):
        ds["s1_T1w"]
    cfg = DatasetConfig(loading_mode="patch", patch_size=PATCH, patches_per_volume=2)
    pds = VolumeCollectionDataset(radi.T1w, config=cfg, seed=1)
    a, b = pds[-1], pds[11]
    assert a["patch_start"] == b["patch_start"] and torch.equal(a["image"], b["image"]) and a["idx"] == 5
    with pytest.raises(IndexError):
        pds[12]
    sds = SegmentationDataset(radi.T1w, radi.seg, config=DatasetConfig(loading_mode="slice_2d"))
    assert sds[-1]["slice_idx"] == SHAPE[2] - 1 and sds[-1]["idx"] == 5
    with pytest.raises(IndexError):
        sds[6 * SHAPE[2]]
    # a batch with one bad index fails as a whole, with IndexError
    with pytest.raises(IndexError):
        ds.__getitems__([0, 1, 6])


# ------------------------------------------------------------------------------------------------
# 8. Transforms
# ------------------------------------------------------------------------------------------------


def test_monai_and_plain_transforms_run_per_sample(radi, store):
    from monai.transforms import Compose as MonaiCompose
    from monai.transforms import NormalizeIntensityd, RandFlipd

    assert Compose is MonaiCompose and ml.compat.Compose is MonaiCompose
    ds = VolumeCollectionDataset(radi.T1w, transform=NormalizeIntensityd(keys="image"))
    for i in (0, 4):
        src = store.arrays["T1w"][i].astype(np.float64)
        want = (src - src.mean()) / src.std()
        got = torch.as_tensor(ds[i]["image"][0]).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # in a factory loader: each sample normalised on its own
    dl = create_training_dataloader(radi.T1w, batch_size=3, transform=NormalizeIntensityd(keys="image"), seed=2)
    for batch in dl:
        for b, vi in enumerate(batch["idx"].tolist()):
            src = store.arrays["T1w"][vi].astype(np.float64)
            np.testing.assert_allclose(torch.as_tensor(batch["image"][b, 0]).numpy(), (src - src.mean()) / src.std(),
                                       rtol=1e-4, atol=1e-4)  # fmt: skip
    # a plain callable, composed with a MONAI transform
    calls = []

    def double(sample):
        calls.append(sample["idx"])
        return {**sample, "image": sample["image"] * 2, "extra": 1}

    dl = create_validation_dataloader(radi.T1w, batch_size=4, patch_size=PATCH, transform=Compose([double]), seed=3)
    n = 0
    for batch in dl:
        assert batch["extra"].tolist() == [1] * len(batch["idx"])
        for b, (vi, st) in enumerate(zip(batch["idx"].tolist(), _starts(batch))):
            np.testing.assert_array_equal(batch["image"][b, 0].numpy(), 2 * _box(store.arrays["T1w"][vi], st, PATCH))
        n += len(batch["idx"])
    assert n == 6 and sorted(calls) == list(range(6))
    # segmentation: one random flip applied to image and mask alike
    flip = RandFlipd(keys=["image", "mask"], prob=1.0, spatial_axis=0)
    sds = SegmentationDataset(radi.T1w, radi.seg, config=DatasetConfig(loading_mode="patch", patch_size=PATCH),
                              transform=flip, seed=4)  # fmt: skip
    for i in range(6):
        it = sds[i]
        st = it["patch_start"]
        np.testing.assert_array_equal(
            torch.as_tensor(it["image"][0]).numpy(), _box(store.arrays["T1w"][i], st, PATCH)[::-1]
        )
        np.testing.assert_array_equal(
            torch.as_tensor(it["mask"][0]).numpy(), _box(store.arrays["seg"][i], st, PATCH)[::-1]
        )


# ------------------------------------------------------------------------------------------------
# 9. Foreground sampling
# ------------------------------------------------------------------------------------------------


def test_foreground_sampling_every_patch_hits_the_mask(radi, store):
    for size in (PATCH, (20, 16, 24)):
        dl = create_segmentation_dataloader(radi.T1w, radi.seg, batch_size=4, patch_size=size, patches_per_volume=8,
                                            foreground_sampling=True, seed=23)  # fmt: skip
        ds = dl.dataset
        assert ds.foreground_voxels == [int(np.count_nonzero(m)) for m in store.arrays["seg"]]
        assert ds.foreground_voxels[5] == 0 and ds.foreground_voxels[0] == 48
        starts = set()
        for epoch in range(3):
            set_epoch(dl, epoch)
            for batch in dl:
                for b, (vi, st) in enumerate(zip(batch["idx"].tolist(), _starts(batch))):
                    mask = _box(store.arrays["seg"][vi], st, size)
                    np.testing.assert_array_equal(batch["mask"][b, 0].numpy(), mask)
                    np.testing.assert_array_equal(batch["image"][b, 0].numpy(), _box(store.arrays["T1w"][vi], st, size))
                    assert all(0 <= st[d] <= SHAPE[d] - size[d] for d in range(3))
                    if vi != 5:  # s6's mask is empty: uniform patches there
                        assert np.count_nonzero(mask) > 0, (vi, st)
                    starts.add((vi, st))
        assert len(starts) > 12  # not one fixed patch per volume
    # without foreground sampling nothing is indexed
    plain = SegmentationDataset(radi.T1w, radi.seg, config=DatasetConfig(loading_mode="patch", patch_size=PATCH))
    assert plain.foreground_voxels == []


# ------------------------------------------------------------------------------------------------
# 10. Stats and resuming
# ------------------------------------------------------------------------------------------------


def test_stats_after_an_epoch(radi):
    dl = create_training_dataloader([radi.T1w, radi.FLAIR], batch_size=4, patch_size=PATCH, patches_per_volume=3,
                                    seed=41)  # fmt: skip
    assert dl.stats().batches == 0  # before any pass
    set_epoch(dl, 3)
    for _ in dl:
        time.sleep(0.005)
    s = dl.stats()
    assert s.batches == 4 and s.samples == 16 and s.seed == 41
    assert s.samples_per_s > 0 and s.elapsed_s > 0
    assert 0 <= s.wait_fraction <= 1 and s.wait_s >= 0
    # every patch of every channel looks up at least one 16^3 tile
    assert s.cache_hits + s.cache_misses >= 16 * 2 and 0 <= s.cache_hit_rate <= 1
    assert s.bytes_read == 16 * 2 * 16**3 * 4
    assert s.read_s_per_batch > 0
    assert s.to_dict()["samples"] == 16 and "samples/s" in str(s)
    assert s.epoch == 3


def test_stats_with_worker_processes(radi):
    # two batches, one per worker process
    dl = create_training_dataloader([radi.T1w, radi.FLAIR], batch_size=3, patch_size=PATCH, seed=41, num_workers=2,
                                    persistent_workers=False, timeout=120)  # fmt: skip
    n = sum(len(b["idx"]) for b in dl)
    s = dl.stats()
    assert n == 6 and s.batches == 2 and s.samples == 6 and s.num_workers == 2
    assert s.samples_per_s > 0 and 0 <= s.wait_fraction <= 1
    assert s.bytes_read == 6 * 2 * 16**3 * 4
    # every patch of every channel looks up at least one 16^3 tile, in whichever process read it
    assert s.cache_hits + s.cache_misses >= 6 * 2, s


def test_state_dict_resumes_mid_epoch(radi, store):
    def make(seed=55, r=radi):
        return create_training_dataloader([r.T1w, r.FLAIR], labels="grade", batch_size=2, patch_size=PATCH,
                                          patches_per_volume=2, seed=seed)  # fmt: skip

    full = make()
    set_epoch(full, 2)
    ref = _snapshot(full)
    assert len(ref) == 6
    after = full.state_dict()
    assert after["epoch"] == 3 and after["batches_yielded"] == 0
    for k in (1, 2, 5):
        part = make()
        set_epoch(part, 2)
        it = iter(part)
        head = [next(it) for _ in range(k)]
        state = part.state_dict()
        assert state == {"epoch": 2, "batches_yielded": k, "seed": 55}
        assert _same(_snapshot(head), ref[:k])
        del it
        ctx = ro.Context()  # a new "process": its own context, nothing cached
        fresh = make(r=RadiObject(store.uri, ctx=ctx))
        fresh.load_state_dict(state)
        with ro.TileDBStats(ctx) as reads:
            rest_iter = iter(fresh)
            assert len(rest_iter) == 6 - k
            rest = _snapshot(rest_iter)
        assert _same(rest, ref[k:]), k
        # the skipped batches were not read: one region per remaining item and channel
        assert reads.all_counters()["RadiObject.Reads.regions"] == 2 * 2 * (6 - k)
        st = fresh.stats()
        assert st.batches == 6 - k and st.samples == 2 * (6 - k)
        # in the same loader too
        part.load_state_dict(state)
        assert _same(_snapshot(part), ref[k:])
    # the state after a finished epoch resumes at the next one
    nxt = make()
    nxt.load_state_dict(after)
    cont = make()
    set_epoch(cont, 3)
    assert _same(_snapshot(nxt), _snapshot(cont))
    with pytest.raises(ValueError, match="seed"):
        make(seed=56).load_state_dict(state)


# ------------------------------------------------------------------------------------------------
# 11. Errors, threads
# ------------------------------------------------------------------------------------------------


def _small_store(uri: str) -> list[np.ndarray]:
    arrays = [phantom((24, 20, 16), seed=i) for i in range(4)]
    with RadiObjectWriter(uri, write=ISO) as w:
        with w.add_collection("T1w", shape=(24, 20, 16)) as c:
            for i, a in enumerate(arrays):
                c.write_volume(a, f"c{i}_T1w", f"c{i}")
    return arrays


@pytest.mark.parametrize("patch", [None, (8, 8, 8)])
def test_a_removed_fragment_fails_at_its_batch_naming_the_volume(tmp_uri, patch):
    uri = tmp_uri("corrupt")
    arrays = _small_store(uri)
    ctx = ro.Context({"read": {"max_workers": 2}})  # a fresh context: nothing cached
    r = RadiObject(uri, ctx=ctx)
    if patch is None:
        dl = create_inference_dataloader(r.T1w, prefetch=3)
    else:
        dl = create_validation_dataloader(r.T1w, batch_size=1, patch_size=patch, prefetch=3, seed=1)
    victim = r.T1w.iloc[2].uri
    frags = glob.glob(os.path.join(victim, "__fragments", "*", "a0.tdb"))
    assert frags
    for f in frags:
        os.remove(f)
    it = iter(dl)
    for i in range(2):
        b = next(it)
        assert int(b["idx"]) == i
        if patch is None:
            np.testing.assert_array_equal(b["image"][0, 0].numpy(), arrays[i])
    with pytest.raises(RadiObjectError) as e:
        next(it)
    assert victim in str(e.value)
    del it, dl
    # the other volumes still read
    ok = VolumeCollectionDataset(RadiObject(uri, ctx=ro.Context()).T1w)
    np.testing.assert_array_equal(ok[3]["image"][0].numpy(), arrays[3])


def test_breaking_out_leaks_no_threads(radi, store):
    def make(**kw):
        return create_training_dataloader([radi.T1w, radi.FLAIR], batch_size=2, patch_size=PATCH,
                                          patches_per_volume=4, seed=61, prefetch=4, **kw)  # fmt: skip

    for _ in make():  # warm-up: the context's pool exists from here on
        pass
    gc.collect()
    time.sleep(0.3)
    py0, native0 = threading.active_count(), _native_threads()
    for _ in range(5):
        dl = make()
        for i, _batch in enumerate(dl):
            if i == 1:
                break
        del dl
        # an exception in the step
        dl = make()
        with pytest.raises(RuntimeError, match="step failed"):
            for _batch in dl:
                raise RuntimeError("step failed")
        del dl
    gc.collect()
    time.sleep(0.5)
    assert threading.active_count() <= py0
    assert _native_threads() <= native0
    # a following loader still works, with exact values
    dl = make()
    n = 0
    for batch in dl:
        _check_patch_batch(batch, [store.arrays["T1w"], store.arrays["FLAIR"]])
        n += len(batch["idx"])
    assert n == 24


def test_breaking_out_of_worker_loader_leaves_no_processes(radi, store):
    children0 = len(multiprocessing.active_children())
    py0 = threading.active_count()
    dl = create_training_dataloader(radi.T1w, batch_size=2, patch_size=PATCH, patches_per_volume=4, seed=62,
                                    num_workers=2, timeout=120)  # fmt: skip
    for i, _batch in enumerate(dl):
        if i == 1:
            break
    del dl, _batch
    gc.collect()
    deadline = time.time() + 10
    # torch closes its queues without joining their feeder threads: they end on their own, soon
    while time.time() < deadline and (
        len(multiprocessing.active_children()) > children0 or threading.active_count() > py0
    ):
        time.sleep(0.1)
    assert len(multiprocessing.active_children()) <= children0
    assert threading.active_count() <= py0, [t.name for t in threading.enumerate()]
    dl = create_validation_dataloader(radi.T1w, batch_size=3, patch_size=PATCH, seed=62)
    for batch in dl:
        _check_patch_batch(batch, [store.arrays["T1w"]])


def test_the_collection_checks_are_the_native_plan_rules(radi, store):
    """The reference's names for the checks (radiobject.ml.utils) give the plan's answers."""
    from radiobject.ml.utils import collect_volume_shapes, validate_collection_alignment, validate_uniform_shapes

    validate_collection_alignment({"T1w": radi.T1w, "seg": radi.seg})
    with pytest.raises(AlignmentError, match="'fewer' has 5 volumes, expected 6"):
        validate_collection_alignment({"T1w": radi.T1w, "fewer": VolumeCollection(store.fewer)})
    with pytest.raises(AlignmentError, match="Subject mismatch for collection 'other'"):
        validate_collection_alignment({"T1w": radi.T1w, "other": VolumeCollection(store.other)})
    assert validate_uniform_shapes({"T1w": radi.T1w, "seg": radi.seg}) == SHAPE
    with pytest.raises(ShapeError, match="heterogeneous"):
        validate_uniform_shapes({"T1w": radi.T1w, "img": VolumeCollection(store.het_img)})
    het = {"img": VolumeCollection(store.het_img)}
    assert collect_volume_shapes(het, (2, 2, 2)) == [tuple(s[:3]) for s in HET_SHAPES]
    with pytest.raises(ShapeError, match="smaller than patch_size"):
        collect_volume_shapes(het, (64, 64, 64))
