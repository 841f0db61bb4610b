"""Anatomical orientation: axis codes, affines, and their volume metadata.

Volumes ingested from NIfTI or DICOM carry their orientation as string metadata (the reference's
keys): ``orientation_axcodes`` (e.g. ``"RAS"``), ``orientation_affine`` (JSON 4x4, voxel -> RAS+
mm), ``orientation_source`` (``nifti_sform``, ``nifti_qform``, ``dicom_iop`` or ``identity``),
``orientation_confidence`` (``header`` or ``unknown``) and, when reoriented at ingest,
``original_affine``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from radiobject import _radiobject as _rb

__all__ = [
    "OrientationInfo",
    "metadata_to_orientation_info",
    "orientation_info_to_metadata",
    "aff2axcodes",
    "is_orientation_valid",
]


@dataclass(frozen=True)
class OrientationInfo:
    """Orientation of a volume."""

    axcodes: tuple[str, str, str]
    affine: list[list[float]] | None
    is_canonical: bool
    confidence: str
    source: str


def aff2axcodes(affine: Any) -> tuple[str, str, str]:
    """Axis codes of an affine (which world axis each voxel axis points along), as nibabel's
    ``aff2axcodes``; an axis without direction gets ``"?"`` (the native rule ingest uses)."""
    codes = _rb.axcodes(np.asarray(affine, dtype=float).tolist())
    return codes[0], codes[1], codes[2]


def is_orientation_valid(axcodes: Any) -> bool:
    """Whether three axis codes name each anatomical axis once (the native rule)."""
    try:
        return _rb.axcodes_valid([str(c) for c in axcodes])
    except TypeError:
        return False


def metadata_to_orientation_info(meta: Mapping[str, Any]) -> OrientationInfo | None:
    """The orientation recorded in volume metadata (None if there is none)."""
    codes = meta.get("orientation_axcodes")
    if not codes:
        return None
    affine_json = meta.get("orientation_affine")
    affine = json.loads(affine_json) if affine_json else None
    axcodes = tuple(str(codes))
    return OrientationInfo(
        axcodes=axcodes,  # type: ignore[arg-type]
        affine=affine,
        is_canonical="".join(axcodes) == "RAS",
        confidence=str(meta.get("orientation_confidence", "unknown")),
        source=str(meta.get("orientation_source", "identity")),
    )


def orientation_info_to_metadata(info: OrientationInfo, original_affine: Any = None) -> dict[str, str]:
    """The metadata keys recording ``info`` (and ``original_affine`` if given)."""
    meta = {
        "orientation_axcodes": "".join(info.axcodes),
        "orientation_affine": json.dumps([[float(x) for x in row] for row in (info.affine or np.eye(4).tolist())]),
        "orientation_source": info.source,
        "orientation_confidence": info.confidence,
    }
    if original_affine is not None:
        meta["original_affine"] = json.dumps([[float(x) for x in row] for row in np.asarray(original_affine).tolist()])
    return meta
