"""The two sample volumes shared by the main job (scripts/main_job.py) and the benchmarks.

* :func:`brain_phantom`: a generated 240x240x155 float32 "brain" (BraTS-sized, 35.7 MB decoded):
  an ellipsoid of 40 smooth Gaussian blobs plus sigma=15 noise, rounded to integers, with an
  exactly-zero background (about 80% of voxels), as in MSD/BraTS.
* :func:`mni_t1`: nilearn's MNI152 T1 template, 197x233x189 uint8 (8.7 MB decoded), read from the
  file shipped inside the nilearn wheel (no download).

Only NumPy (and nibabel + nilearn for the template) are imported here, so any process can use this
module, including the one running the PyPI reference package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["brain_phantom", "mni_t1", "SAMPLES"]


def brain_phantom(shape=(240, 240, 155), seed=7) -> np.ndarray:
    """An ellipsoid 'brain' of smooth Gaussian blobs plus noise, background exactly 0."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij", sparse=True)
    cx, cy, cz = (n / 2 for n in shape)
    inside = ((x - cx) / (0.36 * shape[0])) ** 2 + ((y - cy) / (0.42 * shape[1])) ** 2 + (
        (z - cz) / (0.40 * shape[2])
    ) ** 2 <= 1
    vol = np.zeros(shape, np.float32)
    for _ in range(40):
        bx, by, bz = (rng.uniform(0.25, 0.75) * n for n in shape)
        s = rng.uniform(8, 28)
        vol += rng.uniform(40, 200) * np.exp(-((x - bx) ** 2 + (y - by) ** 2 + (z - bz) ** 2) / (2 * s * s))
    vol += rng.normal(0, 15, shape).astype(np.float32)
    return np.where(inside, np.round(vol), 0).astype(np.float32)


def mni_t1() -> np.ndarray:
    """nilearn's MNI152 T1 template (197x233x189 uint8), from the file in the nilearn wheel."""
    import nibabel as nib
    from nilearn import datasets

    path = Path(datasets.__file__).parent / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    return np.asarray(nib.load(path).dataobj)


#: name -> generator of each sample volume
SAMPLES = {"phantom_240x240x155": brain_phantom, "mni152_t1": mni_t1}
