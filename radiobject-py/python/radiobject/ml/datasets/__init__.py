"""PyTorch datasets over collections."""

from radiobject.ml.datasets._base import EpochIndex
from radiobject.ml.datasets.collection_dataset import VolumeCollectionDataset
from radiobject.ml.datasets.segmentation_dataset import SegmentationDataset

__all__ = ["EpochIndex", "SegmentationDataset", "VolumeCollectionDataset"]
