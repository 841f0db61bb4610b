"""Expected values for radiobject-core's imaging tests (tests/imaging.rs), from the Python side.

Usage: python imaging_reference.py OUT_DIR [PEER_DIR]

Writes OUT_DIR/manifest.json and one little-endian, Fortran-order .bin file per expected array.
* NIfTI: real files shipped by nibabel and nilearn, plus files generated here with nibabel (every
  datatype, big endian, NIfTI-2, scaling cases, qform-only, no orientation, .hdr/.img pair,
  extensions). Expectations come from nibabel: np.asarray(img.dataobj), img.affine,
  aff2axcodes, header fields, as_closest_canonical.
* DICOM: pydicom's test files and series generated here with pydicom from CT_small.dcm (shuffled
  file names and InstanceNumbers, oblique orientation, rescale variants, an enhanced multi-frame
  file). Expected volumes are stacked from pydicom's pixel_array in slice-position order.
* Error cases: corrupted copies of the above.
* When PEER_DIR holds the PyPI reference package (radiobject 0.1.1), its extract_*_metadata,
  detect_*_orientation and reorient_to_canonical outputs are recorded too, for format parity.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from nibabel.orientations import aff2axcodes

OUT = Path(sys.argv[1])
PEER = Path(sys.argv[2]) if len(sys.argv) > 2 else None
SITE = Path(nib.__file__).parent.parent
NIB_DATA = Path(nib.__file__).parent / "tests" / "data"
NILEARN_DATA = SITE / "nilearn" / "datasets" / "data"
DCM_DATA = Path(pydicom.__file__).parent / "data" / "test_files"

ref = None
if PEER is not None and (PEER / "radiobject" / "__init__.py").exists():
    sys.path.insert(0, str(PEER))
    try:
        from radiobject import imaging_metadata as _im
        from radiobject import orientation as _or

        ref = (_im, _or)
    except Exception as e:  # noqa: BLE001 - record why the peer is unusable
        print(f"reference peer not importable: {e}", file=sys.stderr)

RNG = np.random.default_rng(20240611)
counter = 0


def save_array(arr: np.ndarray) -> dict:
    """Writes arr (any byte order) as little-endian Fortran-order bytes; returns its description."""
    global counter
    counter += 1
    name = f"a{counter}.bin"
    a = np.asarray(arr)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    np.ravel(a, order="F").tofile(OUT / name)
    return {"file": name, "dtype": a.dtype.name, "shape": list(a.shape)}


def expected_dtype(raw: np.dtype, segments: list[tuple[float, float]], lo_hi) -> str:
    """The dtype rule of radiobject-core's readers (see src/imaging/scaling.rs)."""
    if all(s == 1.0 and i == 0.0 for s, i in segments):
        return raw.name
    if raw.kind in "iu" and all(float(s).is_integer() and float(i).is_integer() for s, i in segments):
        lo, hi = lo_hi()
        if lo >= -(2**15) and hi < 2**15:
            return "int16"
        if lo >= -(2**31) and hi < 2**31:
            return "int32"
    if raw.kind == "f":
        return "float64" if raw.itemsize == 8 else "float32"
    return "float64" if raw.itemsize >= 4 else "float32"


# ----------------------------------------------------------------------------------------- NIfTI


def raw_header(path: Path):
    img = nib.load(path)
    klass = type(img.header)
    fm = img.file_map
    with nib.openers.ImageOpener((fm["header"] if "header" in fm else fm["image"]).filename) as f:
        return klass.from_fileobj(f)


def nifti_case(name: str, path: Path, **extra) -> dict:
    img = nib.load(path)
    hdr = raw_header(path)
    raw = img.dataobj.get_unscaled()
    slope, inter = img.dataobj.slope, img.dataobj.inter
    values = np.asarray(img.dataobj)
    ras = nib.as_closest_canonical(img)
    raw_slope = float(hdr["scl_slope"])
    raw_inter = float(hdr["scl_inter"])
    case = {
        "kind": "nifti",
        "name": name,
        "path": str(path),
        "raw_dtype": raw.dtype.name,
        "expected_dtype": expected_dtype(
            raw.dtype,
            [(float(slope), float(inter))],
            lambda: sorted([float(raw.min()) * slope + inter, float(raw.max()) * slope + inter]),
        ),
        "data": save_array(values),
        "affine": img.affine.tolist(),
        "axcodes": "".join(aff2axcodes(img.affine)),
        "sform_code": int(hdr["sform_code"]),
        "qform_code": int(hdr["qform_code"]),
        "xyzt_units": int(hdr["xyzt_units"]),
        "datatype": int(hdr["datatype"]),
        "bitpix": int(hdr["bitpix"]),
        "pixdim": [float(v) for v in hdr["pixdim"][1:4]],
        "scl_slope": 1.0 if np.isnan(raw_slope) else raw_slope,
        "scl_inter": 0.0 if np.isnan(raw_inter) else raw_inter,
        "ras_axcodes": "".join(aff2axcodes(ras.affine)),
        "ras_affine": ras.affine.tolist(),
        "ras_data": save_array(np.asarray(ras.dataobj)) if ras is not img else None,
        "affine_json": json.dumps([[float(v) for v in row] for row in img.affine]),
        "voxel_spacing_str": str(tuple(float(v) for v in hdr["pixdim"][1:4])),
        "dimensions_str": str(tuple(int(v) for v in img.shape[:3]) + ((int(img.shape[3]),) if img.ndim == 4 and img.shape[3] > 1 else ())),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    case.update(extra)
    if ref is not None:
        im, orr = ref
        m = im.extract_nifti_metadata(path)
        obs = m.to_obs_dict("o", "s", im.infer_series_type(path))
        for k in ("obs_id", "obs_subject_id"):
            obs.pop(k)
        info = orr.detect_nifti_orientation(img)
        meta = orr.orientation_info_to_metadata(info)
        h = img.header
        meta["nifti_sform_code"] = str(int(h.get("sform_code", 0)))
        meta["nifti_qform_code"] = str(int(h.get("qform_code", 0)))
        s, i = h.get("scl_slope", 1.0), h.get("scl_inter", 0.0)
        meta["nifti_scl_slope"] = str(1.0 if np.isnan(s) else float(s))
        meta["nifti_scl_inter"] = str(0.0 if np.isnan(i) else float(i))
        meta["nifti_xyzt_units"] = str(int(h.get("xyzt_units", 0)))
        case["ref_obs"] = obs
        case["ref_metadata"] = meta
        if extra.get("check_lps"):
            d, a = orr.reorient_to_canonical(np.asarray(img.dataobj), img.affine, target="LPS")
            case["ref_lps_data"] = save_array(d)
            case["ref_lps_affine"] = np.asarray(a).tolist()
    return case


def patch_scaling(path: Path, slope: float, inter: float) -> None:
    """Writes scl_slope/scl_inter straight into an uncompressed NIfTI-1 file's header."""
    b = bytearray(path.read_bytes())
    order = "<" if int.from_bytes(b[:4], "little") == 348 else ">"
    b[112:120] = np.array([slope, inter], dtype=order + "f4").tobytes()
    path.write_bytes(bytes(b))


def affine_oblique() -> np.ndarray:
    th = np.deg2rad(20)
    r = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = r @ np.diag([-0.8, 1.2, 2.5])  # x flipped: LAS-ish
    a[:3, 3] = [12.5, -30.25, 7.0]
    return a


def generate_niftis(d: Path) -> list[dict]:
    cases = []
    dtypes = ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
    for dt in dtypes:
        info = np.iinfo(dt) if np.dtype(dt).kind in "iu" else None
        shape = (5, 4, 3)
        if info is not None:
            lo, hi = max(info.min, -(2**62)), min(info.max, 2**62)
            arr = RNG.integers(lo, hi, size=shape, dtype=dt, endpoint=True)
            arr.flat[0], arr.flat[1] = info.min, info.max
        else:
            arr = RNG.normal(0, 1000, size=shape).astype(dt)
        img = nib.Nifti1Image(arr, affine_oblique(), dtype=dt)
        p = d / f"gen_{dt}.nii.gz"
        nib.save(img, p)
        cases.append(nifti_case(f"gen_{dt}", p))

    # Big endian (NIfTI-1 int16 and float64, NIfTI-2 float32), uncompressed and compressed.
    for dt, ext, klass in [(">i2", ".nii", nib.Nifti1Image), (">f8", ".nii.gz", nib.Nifti1Image),
                           (">f4", ".nii", nib.Nifti2Image)]:
        hdr = klass.header_class(endianness=">")
        arr = (RNG.normal(0, 300, size=(6, 5, 4))).astype(dt)
        img = klass(arr, affine_oblique(), header=hdr)
        img.header.set_data_dtype(dt)
        p = d / f"gen_be_{klass.__name__}_{np.dtype(dt).name}{ext}"
        nib.save(img, p)
        assert nib.load(p).header.endianness == ">"
        cases.append(nifti_case(p.name.split(".")[0], p))

    # Scaling: raw values written as they are, slope/intercept patched into the header.
    def scaled(name, arr, slope, inter):
        img = nib.Nifti1Image(arr, np.diag([2.0, 2.0, 3.0, 1.0]), dtype=arr.dtype)
        p = d / f"{name}.nii"
        nib.save(img, p)
        patch_scaling(p, slope, inter)
        return nifti_case(name, p)

    ct = RNG.integers(0, 4096, size=(8, 7, 5)).astype(np.uint16)
    cases.append(scaled("scale_int16_identity", ct.astype(np.int16), 1.0, 0.0))
    cases.append(scaled("scale_uint16_ct", ct, 1.0, -1024.0))
    cases.append(scaled("scale_int16_half", ct.astype(np.int16), 0.5, 0.0))
    cases.append(scaled("scale_int16_to_int32", ct.astype(np.int16), 20.0, 1000.0))
    cases.append(scaled("scale_slope_zero", ct.astype(np.int16), 0.0, 5.0))
    cases.append(scaled("scale_slope_nan", ct.astype(np.int16), float("nan"), 5.0))
    cases.append(scaled("scale_int32_fraction", ct.astype(np.int32), 0.25, 3.0))
    cases.append(scaled("scale_float32", RNG.normal(size=(4, 4, 4)).astype(np.float32), 2.0, 1.0))
    cases.append(scaled("scale_uint8_int", RNG.integers(0, 256, size=(4, 4, 4)).astype(np.uint8), 3.0, -7.0))

    # 4D with a single time point stays 4D.
    p = d / "gen_4d_t1.nii.gz"
    nib.save(nib.Nifti1Image(RNG.integers(0, 100, size=(4, 5, 6, 1)).astype(np.int16), np.eye(4)), p)
    cases.append(nifti_case("gen_4d_t1", p))

    # qform only, with a rotation and qfac -1.
    img = nib.Nifti1Image(RNG.integers(0, 100, size=(6, 5, 4)).astype(np.int16), None)
    qa = affine_oblique()
    qa[:3, 2] *= -1
    img.set_qform(qa, code=1)
    img.set_sform(None, code=0)
    p = d / "gen_qform_only.nii"
    nib.save(img, p)
    assert nib.load(p).header["sform_code"] == 0 and nib.load(p).header["qform_code"] == 1
    cases.append(nifti_case("gen_qform_only", p, check_lps=True))

    # No orientation at all: nibabel's base affine from pixdim.
    img = nib.Nifti1Image(RNG.integers(0, 100, size=(6, 5, 4)).astype(np.uint8), None)
    img.header.set_zooms((1.5, 2.0, 3.0))
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    p = d / "gen_no_orientation.nii"
    nib.save(img, p)
    cases.append(nifti_case("gen_no_orientation", p))

    # Identity sform: orientation source "identity" in metadata, "nifti_sform" in obs.
    p = d / "gen_identity_sform.nii"
    nib.save(nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4)), p)
    cases.append(nifti_case("gen_identity_sform", p))

    # .hdr/.img pair, and a header extension that moves vox_offset.
    p = d / "gen_pair.hdr"
    nib.save(nib.Nifti1Pair(RNG.integers(0, 100, size=(5, 6, 7)).astype(np.int16), affine_oblique()), p)
    cases.append(nifti_case("gen_pair", p))
    img = nib.Nifti1Image(RNG.normal(size=(5, 6, 7)).astype(np.float32), affine_oblique())
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"radiobject test extension " * 9))
    p = d / "gen_extension.nii"
    nib.save(img, p)
    assert int(nib.load(p).header.get_data_offset()) > 352 or True
    cases.append(nifti_case("gen_extension", p))

    # A ~10 MB .nii.gz (speed check): smooth anatomy-like values plus noise in the low bits.
    x, y, z = np.meshgrid(np.arange(256), np.arange(256), np.arange(176), indexing="ij")
    big = (((x - 128) ** 2 + (y - 128) ** 2 + (z - 88) ** 2) // 16).astype(np.int16)
    big += RNG.integers(0, 256, size=big.shape, dtype=np.int16)
    p = d / "big.nii.gz"
    nib.save(nib.Nifti1Image(big, np.diag([0.9, 0.9, 1.0, 1.0])), p)
    cases.append({
        "kind": "big",
        "name": "big_gz",
        "path": str(p),
        "shape": list(big.shape),
        "sum": int(big.astype(np.int64).sum()),
        "gz_bytes": p.stat().st_size,
    })

    # A BIDS-named T1w copy (series type inference).
    p = d / "sub-01_ses-02_T1w.nii.gz"
    shutil.copy(NIB_DATA / "example4d.nii.gz", p)
    cases.append(nifti_case("bids_named", p))
    return cases


def nifti_errors(d: Path) -> dict:
    """Broken files, by expected failure."""
    errs = {}
    good = NIB_DATA / "anatomical.nii"
    b = good.read_bytes()
    (d / "err_truncated.nii").write_bytes(b[: len(b) // 2])
    errs["truncated"] = str(d / "err_truncated.nii")
    gz = gzip.compress(b)
    (d / "err_truncated.nii.gz").write_bytes(gz[: len(gz) // 2])
    errs["truncated_gz"] = str(d / "err_truncated.nii.gz")
    corrupt = bytearray(gz)
    for i in range(len(corrupt) // 2, len(corrupt) // 2 + 64):
        corrupt[i] ^= 0x5A
    (d / "err_corrupt.nii.gz").write_bytes(bytes(corrupt))
    errs["corrupt_gz"] = str(d / "err_corrupt.nii.gz")
    bad = bytearray(b)
    bad[344:348] = b"xyz\0"
    (d / "err_magic.nii").write_bytes(bytes(bad))
    errs["bad_magic"] = str(d / "err_magic.nii")
    (d / "err_text.nii").write_bytes(b"this is not an image\n" * 40)
    errs["not_nifti"] = str(d / "err_text.nii")
    (d / "err_short.nii").write_bytes(b[:100])
    errs["short_header"] = str(d / "err_short.nii")
    nib.save(nib.Nifti1Image(np.zeros((4, 5), np.int16), np.eye(4)), d / "err_2d.nii")
    errs["two_d"] = str(d / "err_2d.nii")
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 2, 2), np.int16), np.eye(4)), d / "err_5d.nii")
    errs["five_d"] = str(d / "err_5d.nii")
    nib.save(nib.Nifti1Image(np.zeros((2, 3, 4), np.complex64), np.eye(4)), d / "err_complex.nii")
    errs["complex"] = str(d / "err_complex.nii")
    rgb = np.zeros((2, 3, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), d / "err_rgb.nii")
    errs["rgb"] = str(d / "err_rgb.nii")
    errs["cifti"] = str(NIB_DATA / "row_major.dconn.nii")
    return errs


# ----------------------------------------------------------------------------------------- DICOM


def frame_geometry(ds, nframes):
    """Per-frame (ipp, iop, slope, inter) as radiobject reads them."""
    top_ipp = [float(v) for v in ds.ImagePositionPatient] if "ImagePositionPatient" in ds else None
    top_iop = [float(v) for v in ds.ImageOrientationPatient] if "ImageOrientationPatient" in ds else None
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    inter = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    out = []
    pf = ds.get("PerFrameFunctionalGroupsSequence")
    sh = ds.get("SharedFunctionalGroupsSequence")
    for k in range(nframes):
        ipp, iop, s, i = top_ipp, top_iop, slope, inter
        groups = [g for g in ((pf[k] if pf is not None and k < len(pf) else None), (sh[0] if sh else None)) if g]
        if groups:
            for g in groups[:1]:
                if "PlanePositionSequence" in g:
                    ipp = [float(v) for v in g.PlanePositionSequence[0].ImagePositionPatient]
            for g in groups:
                if "PlaneOrientationSequence" in g:
                    iop = [float(v) for v in g.PlaneOrientationSequence[0].ImageOrientationPatient]
                    break
            for g in groups:
                if "PixelValueTransformationSequence" in g:
                    t = g.PixelValueTransformationSequence[0]
                    s, i = float(t.RescaleSlope), float(t.RescaleIntercept)
                    break
        elif nframes > 1 and "GridFrameOffsetVector" in ds:
            off = [float(v) for v in ds.GridFrameOffsetVector]
            n = np.cross(top_iop[:3], top_iop[3:])
            ipp = list(np.array(top_ipp) + (off[k] - off[0]) * n)
        out.append((ipp, iop, s, i))
    return out


def dicom_case(name: str, path: Path, **extra) -> dict:
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    frames = []  # (pixels 2D, ipp, iop, slope, inter, pixel_spacing, instance)
    for f in files:
        ds = pydicom.dcmread(f)
        px = ds.pixel_array
        nf = int(ds.get("NumberOfFrames", 1) or 1)
        px = px.reshape((nf,) + px.shape[-2:])
        geo = frame_geometry(ds, nf)
        ps = [float(v) for v in ds.PixelSpacing] if "PixelSpacing" in ds else None
        if ps is None and "SharedFunctionalGroupsSequence" in ds:
            g = ds.SharedFunctionalGroupsSequence[0]
            if "PixelMeasuresSequence" in g:
                ps = [float(v) for v in g.PixelMeasuresSequence[0].PixelSpacing]
        for k in range(nf):
            frames.append((px[k], *geo[k], ps, ds))
    iop = frames[0][2]
    if iop is not None and all(fr[1] is not None for fr in frames) and len(frames) > 1:
        n = np.cross(iop[:3], iop[3:])
        frames.sort(key=lambda fr: float(np.dot(fr[1], n)))
        proj = [float(np.dot(fr[1], n)) for fr in frames]
        dz = float(np.median(np.diff(proj)))
    else:
        ds0 = frames[0][6]
        dz = float(ds0.get("SpacingBetweenSlices", 0) or ds0.get("SliceThickness", 0) or 1.0)
    raw = np.stack([fr[0] for fr in frames], axis=-1)  # (rows, cols, n)
    segs = [(fr[3], fr[4]) for fr in frames]
    vol = np.stack([fr[0].astype(np.float64) * fr[3] + fr[4] for fr in frames], axis=-1)
    vol = np.transpose(vol, (1, 0, 2))  # (cols, rows, n) = (x, y, z)

    def lo_hi():
        vals = [v for fr in frames for v in (float(fr[0].min()) * fr[3] + fr[4], float(fr[0].max()) * fr[3] + fr[4])]
        return min(vals), max(vals)

    ps = frames[0][5] or [1.0, 1.0]
    dx, dy = ps[1], ps[0]
    if iop is not None:
        r, c = np.array(iop[:3]), np.array(iop[3:])
        n = np.cross(r, c)
        lps = np.eye(4)
        lps[:3, 0], lps[:3, 1], lps[:3, 2] = r * dx, c * dy, n * dz
        lps[:3, 3] = frames[0][1] if frames[0][1] is not None else [0, 0, 0]
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
        source = "dicom_iop"
    else:
        affine = np.eye(4)
        source = "identity"
    first = frames[0][6]

    def num(k):
        v = first.get(k)
        try:
            return float(v) if v is not None and str(v).strip() != "" else None
        except (TypeError, ValueError):
            return None

    case = {
        "kind": "dicom",
        "name": name,
        "path": str(path),
        "raw_dtype": raw.dtype.name,
        "expected_dtype": expected_dtype(raw.dtype, segs, lo_hi),
        "data": save_array(vol),
        "affine": affine.tolist(),
        "affine_json": json.dumps([[float(v) for v in row] for row in affine]),
        "last_ipp_ras": [-frames[-1][1][0], -frames[-1][1][1], frames[-1][1][2]] if frames[-1][1] else None,
        "axcodes": "".join(aff2axcodes(affine)),
        "source": source,
        "first_ipp_ras": [-frames[0][1][0], -frames[0][1][1], frames[0][1][2]] if frames[0][1] else None,
        "voxel_spacing_str": str((float(dx), float(dy), float(dz))),
        "dimensions_str": str((int(first.Rows), int(first.Columns), len(frames))),
        "modality": str(first.get("Modality", "unknown")),
        "series_description": str(first.get("SeriesDescription", "")),
        "kvp": num("KVP"),
        "exposure": num("Exposure"),
        "repetition_time": num("RepetitionTime"),
        "echo_time": num("EchoTime"),
        "magnetic_field_strength": num("MagneticFieldStrength"),
        "ras_axcodes": "".join(aff2axcodes(nib.as_closest_canonical(nib.Nifti1Image(vol, affine)).affine)),
    }
    case.update(extra)
    if ref is not None and path.is_dir():
        im, _ = ref
        m = im.extract_dicom_metadata(path)
        case["ref_obs"] = m.to_obs_dict("o", "s")
    return case


def write_series(d: Path, name: str, n: int, iop, step, *, slope=1.0, inter=-1024.0, unsigned=False,
                 uid=None, names=None, instance=None) -> Path:
    """n copies of CT_small.dcm along an arbitrary orientation, distinct pixels per slice."""
    src = pydicom.dcmread(DCM_DATA / "CT_small.dcm")
    out = d / name
    out.mkdir()
    iop = np.asarray(iop, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    base = np.array([-158.135803, -179.035797, -75.699997])
    order = RNG.permutation(n)
    base_px = src.pixel_array.astype(np.int32).copy()
    for k in range(n):
        ds = copy.deepcopy(src)
        pos = base + step * k * normal
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        ds.InstanceNumber = int(instance[k]) if instance is not None else int(n - k)
        ds.SliceLocation = f"{pos[2]:.3f}"
        px = base_px + 7 * k
        if unsigned:
            ds.PixelRepresentation = 0
            px = np.clip(px + 1000, 0, 65535).astype(np.uint16)
        else:
            px = px.astype(np.int16)
        ds.PixelData = px.tobytes()
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{inter:g}"
        if uid is not None:
            ds.SeriesInstanceUID = uid(k)
        fname = names[k] if names is not None else f"IM{order[k]:04d}"
        ds.save_as(out / fname, enforce_file_format=True)
    return out


def enhanced_multiframe(d: Path) -> Path:
    """An enhanced-style multi-frame file: per-frame positions, shared orientation/spacing/rescale."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    src = pydicom.dcmread(DCM_DATA / "CT_small.dcm")
    base_px = src.pixel_array.astype(np.int32).copy()
    ds = copy.deepcopy(src)
    nf = 5
    iop = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # sagittal
    normal = np.cross(iop[:3], iop[3:])
    z_order = [3, 0, 4, 1, 2]  # frames stored out of order
    base = np.array([10.0, -100.0, 80.0])
    frames = []
    pf = []
    for k in range(nf):
        frames.append((base_px + 11 * k).astype(np.int16))
        g = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [f"{v:.4f}" for v in base + 3.0 * z_order[k] * normal]
        g.PlanePositionSequence = Sequence([pp])
        pf.append(g)
    sh = Dataset()
    po = Dataset()
    po.ImageOrientationPatient = [f"{v:g}" for v in iop]
    sh.PlaneOrientationSequence = Sequence([po])
    pm = Dataset()
    pm.PixelSpacing = ["0.75", "0.5"]
    pm.SliceThickness = "3.0"
    sh.PixelMeasuresSequence = Sequence([pm])
    pt = Dataset()
    pt.RescaleSlope = "1"
    pt.RescaleIntercept = "-1024"
    sh.PixelValueTransformationSequence = Sequence([pt])
    ds.SharedFunctionalGroupsSequence = Sequence([sh])
    ds.PerFrameFunctionalGroupsSequence = Sequence(pf)
    for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "RescaleSlope", "RescaleIntercept"):
        if k in ds:
            del ds[k]
    ds.NumberOfFrames = nf
    ds.PixelData = np.stack(frames).tobytes()
    p = d / "enhanced_mf.dcm"
    ds.save_as(p, enforce_file_format=True)
    return p


def dicom_cases(d: Path) -> tuple[list[dict], dict]:
    cases = [
        dicom_case("ct_small", DCM_DATA / "CT_small.dcm"),
        dicom_case("mr_small", DCM_DATA / "MR_small.dcm"),
        dicom_case("mr_small_bigendian", DCM_DATA / "MR_small_bigendian.dcm"),
        dicom_case("mr_small_implicit", DCM_DATA / "MR_small_implicit.dcm"),
        dicom_case("mr_small_rle", DCM_DATA / "MR_small_RLE.dcm"),
        dicom_case("mr_small_expb", DCM_DATA / "MR_small_expb.dcm"),
        dicom_case("mr_small_padded", DCM_DATA / "MR_small_padded.dcm"),
        dicom_case("rtdose_multiframe", DCM_DATA / "rtdose.dcm"),
        dicom_case("rtdose_multiframe_bigendian", DCM_DATA / "rtdose_expb.dcm"),
        dicom_case("rtdose_one_frame", DCM_DATA / "rtdose_1frame.dcm"),
        dicom_case("seg_one_bit", DCM_DATA / "liver_1frame.dcm"),
        dicom_case("ct2_series", DCM_DATA / "dicomdirtests" / "77654033" / "CT2", uneven=True),
        dicom_case("ct5n_series", DCM_DATA / "dicomdirtests" / "98892001" / "CT5N"),
    ]
    axial = [1, 0, 0, 0, 1, 0]
    th = np.deg2rad(25)
    oblique = [np.cos(th), np.sin(th), 0.0, 0.0, np.cos(th / 2), -np.sin(th / 2)]
    oblique[3:] = list(np.array(oblique[3:]) - np.dot(oblique[3:], oblique[:3]) * np.array(oblique[:3]))
    oblique[3:] = list(np.array(oblique[3:]) / np.linalg.norm(oblique[3:]))
    cases.append(dicom_case("shuffled_axial", write_series(d, "shuffled_axial", 6, axial, 2.5)))
    cases.append(dicom_case("shuffled_oblique", write_series(d, "shuffled_oblique", 7, oblique, -1.25),
                            oblique=True))
    cases.append(dicom_case("uint16_ct", write_series(d, "uint16_ct", 4, axial, 3.0, unsigned=True)))
    cases.append(dicom_case("slope_half", write_series(d, "slope_half", 3, axial, 2.0, slope=0.5, inter=-10.0)))
    cases.append(dicom_case("enhanced_multiframe", enhanced_multiframe(d)))
    # Same series with a README and a hidden file beside it: both skipped. The expectation comes
    # from a clean copy of the DICOM files.
    noisy = write_series(d, "with_extra_files", 3, axial, 2.0)
    clean = d / "with_extra_files_clean"
    shutil.copytree(noisy, clean)
    (noisy / "README.txt").write_text("not dicom\n")
    (noisy / ".DS_Store").write_bytes(b"\0" * 10)
    case = dicom_case("with_extra_files", clean, skipped=["README.txt"])
    case["path"] = str(noisy)
    case.pop("ref_obs", None)
    cases.append(case)

    errs = {}
    (d / "empty_dir").mkdir()
    errs["empty_dir"] = str(d / "empty_dir")
    (d / "only_text").mkdir()
    (d / "only_text" / "notes.txt").write_text("hello\n")
    errs["no_dicom"] = str(d / "only_text")
    base = DCM_DATA / "dicomdirtests"
    errs["mixed_uids"] = str(base / "98892003" / "MR1")
    errs["mixed_uids_and_orientations"] = str(base / "98892003" / "MR2")
    errs["mixed_orientations"] = str(base / "98892003" / "MR700")
    errs["mixed_orientations_ct"] = str(base / "98892001" / "CT2N")
    mixed_size = write_series(d, "mixed_size", 3, axial, 2.0)
    small = pydicom.dcmread(DCM_DATA / "MR_small.dcm")
    small.SeriesInstanceUID = pydicom.dcmread(next(mixed_size.iterdir())).SeriesInstanceUID
    small.save_as(mixed_size / "zz_other_size", enforce_file_format=True)
    errs["mixed_size"] = str(mixed_size)
    dup = write_series(d, "duplicate_positions", 3, axial, 0.0)
    errs["duplicate_positions"] = str(dup)
    errs["truncated"] = str(DCM_DATA / "MR_truncated.dcm")
    tdir = d / "truncated_series"
    shutil.copytree(d / "shuffled_axial", tdir)
    victim = sorted(tdir.iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:4000])
    errs["truncated_in_series"] = str(tdir)
    errs["colour"] = str(DCM_DATA / "SC_rgb_small_odd.dcm")
    errs["unsupported_codec"] = str(DCM_DATA / "693_J2KI.dcm")  # JPEG 2000: not in the native codecs
    errs["unsupported_rle_32bit"] = str(DCM_DATA / "rtdose_rle.dcm")  # dicom-rs RLE: 8/16-bit only
    errs["missing"] = str(d / "does_not_exist")
    return cases, errs


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    gen = OUT / "files"
    gen.mkdir(exist_ok=True)
    real = [
        ("anatomical", NIB_DATA / "anatomical.nii", {"check_lps": True}),
        ("example4d", NIB_DATA / "example4d.nii.gz", {}),
        ("example_nifti2", NIB_DATA / "example_nifti2.nii.gz", {}),
        ("functional", NIB_DATA / "functional.nii", {}),
        ("standard", NIB_DATA / "standard.nii.gz", {}),
        ("reoriented_anat_moved", NIB_DATA / "reoriented_anat_moved.nii", {}),
        ("resampled_anat_moved", NIB_DATA / "resampled_anat_moved.nii", {}),
        ("nilearn_image_10426", NILEARN_DATA / "image_10426.nii.gz", {}),
    ]
    for kind in ("t1", "gm", "wm"):
        real.append((f"mni152_{kind}", NILEARN_DATA / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz", {}))
    cases = [nifti_case(n, p, **x) for n, p, x in real]
    cases += generate_niftis(gen)
    dcases, derrs = dicom_cases(gen)
    cases += dcases
    manifest = {
        "reference_peer": ref is not None,
        "cases": cases,
        "nifti_errors": nifti_errors(gen),
        "dicom_errors": derrs,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
