"""Reading NIfTI and DICOM images (through radiobject's Rust readers) and writing NIfTI.

* :func:`read_image` returns voxels (Fortran order, ``(x, y, z[, t])``), the affine, the
  orientation, and the volume metadata and obs columns ingest records.
* Scaling keeps integer data integer when it can: NIfTI integer data with ``scl_slope`` 1 and
  ``scl_inter`` 0 keeps its dtype; integral slope/intercept give int16/int32 (a uint16 CT with
  intercept -1024 becomes int16 Hounsfield units); anything else float32 (float64 for float64 or
  32/64-bit integer input). DICOM applies RescaleSlope/RescaleIntercept the same way, so CT is in
  HU, and orders slices by ImagePositionPatient along the slice normal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radiobject import _radiobject as _rb
from radiobject.ctx import resolve_ctx

if TYPE_CHECKING:
    from radiobject.ctx import Context
    from radiobject.volume import Volume

__all__ = ["read_image", "volume_from_nifti", "volume_from_dicom", "volume_to_nifti", "resolve_reorient"]


def resolve_reorient(reorient: bool | str | None) -> str | None:
    """The reorientation target for ``reorient``: None follows the configuration
    (``write.orientation.reorient_on_load`` and ``canonical_target``), True the configured target,
    False none, or an explicit "RAS"/"LAS"/"LPS" (the native rule ingest uses)."""
    return _rb.resolve_reorient(reorient)


def read_image(path: str | Path, format: str = "nifti", reorient: bool | str | None = False) -> dict[str, Any]:
    """Reads a NIfTI file (``format="nifti"``) or a DICOM series directory (``"dicom"``).

    Returns a dict with ``data``, ``affine``, ``original_affine``, ``axcodes``,
    ``orientation_source``, ``orientation_confidence``, ``metadata`` (volume metadata), ``obs``
    (obs columns), ``source_path`` and ``warnings``.
    """
    return _rb.read_image(str(path), format, reorient)


def _volume_from(
    cls: type[Volume],
    uri: str,
    path: Any,
    fmt: str,
    reorient: bool | str | None,
    ctx: Context | None,
    dtype: Any = None,
) -> Volume:
    """A new volume of an image file, with the metadata a writer through ``ctx`` records."""
    image = _rb.read_image(str(path), fmt, reorient, resolve_ctx(ctx))
    data = image["data"] if dtype is None else image["data"].astype(dtype)
    return cls.from_numpy(uri, data, ctx=ctx, metadata=dict(image["metadata"]))


def volume_from_nifti(
    cls: type[Volume], uri: str, path: Any, ctx: Context | None = None, reorient: bool | str | None = None
) -> Volume:
    """A new volume holding a NIfTI file's voxels, orientation and NIfTI header metadata."""
    return _volume_from(cls, uri, path, "nifti", reorient, ctx)


def volume_from_dicom(
    cls: type[Volume],
    uri: str,
    dicom_dir: Any,
    ctx: Context | None = None,
    reorient: bool | str | None = None,
    dtype: Any = None,
) -> Volume:
    """A new volume holding a DICOM series (CT in Hounsfield units); ``dtype`` casts the voxels."""
    return _volume_from(cls, uri, dicom_dir, "dicom", reorient, ctx, dtype)


def volume_to_nifti(vol: Volume, file_path: Any, compression: bool = True) -> Path:
    """Writes a volume to NIfTI with its affine (``orientation_affine``, else identity) and the
    NIfTI header fields recorded at ingest. Needs nibabel. Returns the path written."""
    try:
        import nibabel as nib
    except ImportError:  # pragma: no cover - nibabel is a declared optional dependency
        raise ImportError("Volume.to_nifti needs nibabel: pip install nibabel") from None
    path = Path(file_path)
    if compression and not str(path).endswith(".gz"):
        path = Path(str(path) + ".gz")
    meta = vol.metadata
    affine = np.array(json.loads(meta["orientation_affine"])) if meta.get("orientation_affine") else np.eye(4)
    img = nib.Nifti1Image(vol.to_numpy(), affine)
    header = img.header
    if "nifti_sform_code" in meta:
        header.set_sform(affine, code=int(meta["nifti_sform_code"]))
    if "nifti_qform_code" in meta:
        header.set_qform(affine, code=int(meta["nifti_qform_code"]))
    if "nifti_xyzt_units" in meta:
        header["xyzt_units"] = int(meta["nifti_xyzt_units"])
    nib.save(img, path)
    return path
