"""ML utilities: labels, collection checks, worker initialisation."""

from radiobject.ml.utils.labels import LabelSource, load_labels
from radiobject.ml.utils.validation import (
    collect_volume_shapes,
    validate_collection_alignment,
    validate_uniform_shapes,
)
from radiobject.ml.utils.worker_init import worker_init_fn, worker_threads

__all__ = [
    "LabelSource",
    "collect_volume_shapes",
    "load_labels",
    "validate_collection_alignment",
    "validate_uniform_shapes",
    "worker_init_fn",
    "worker_threads",
]
