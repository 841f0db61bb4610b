"""PyTorch training on radiobject datasets (needs torch).

The reference's API (``radiobject.ml``): :class:`DatasetConfig`, :class:`LoadingMode`,
:class:`VolumeCollectionDataset`, :class:`SegmentationDataset`, the ``create_*_dataloader``
factories, ``radiobject.ml.distributed`` (re-exported here) and ``radiobject.ml.compat``. Under
it, batches are read by a Rust pipeline: every item of a batch in parallel on the context's
threads with the GIL released, read ahead of the training step, and identical for a given seed and
epoch whatever the thread, worker or prefetch counts. See docs/loaders.md.
"""

from typing import Any

from radiobject.ml.compat import VolumeCollectionSubjectsDataset
from radiobject.ml.config import DatasetConfig, LoadingMode
from radiobject.ml.datasets import EpochIndex, SegmentationDataset, VolumeCollectionDataset
from radiobject.ml.distributed import create_distributed_dataloader, set_epoch
from radiobject.ml.factory import (
    create_inference_dataloader,
    create_segmentation_dataloader,
    create_training_dataloader,
    create_validation_dataloader,
)
from radiobject.ml.loader import DistributedEpochSampler, EpochSampler, LoaderStats, RadiObjectDataLoader
from radiobject.ml.utils import LabelSource

__all__ = [
    "Compose",
    "DatasetConfig",
    "DistributedEpochSampler",
    "EpochIndex",
    "EpochSampler",
    "LabelSource",
    "LoaderStats",
    "LoadingMode",
    "RadiObjectDataLoader",
    "SegmentationDataset",
    "VolumeCollectionDataset",
    "VolumeCollectionSubjectsDataset",
    "create_distributed_dataloader",
    "create_inference_dataloader",
    "create_segmentation_dataloader",
    "create_training_dataloader",
    "create_validation_dataloader",
    "set_epoch",
]


def __getattr__(name: str) -> Any:
    if name == "Compose":  # MONAI's (or TorchIO's) Compose, imported on first use
        from radiobject.ml import compat

        return compat.Compose
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
