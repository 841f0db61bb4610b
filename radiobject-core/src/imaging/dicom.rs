//! DICOM series reader (see [`crate::imaging::read_dicom_series`] for the conventions).
//!
//! Two passes: headers first (every file read up to its pixel data, in parallel) to validate the
//! series and order the slices; then pixel data, decoded file by file straight into its slot of
//! the output buffer.

use std::io::Read;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions, Tag};
use dicom_pixeldata::PixelDecoder;
use rayon::prelude::*;

use super::format::{affine_json, py_float_tuple, py_int_tuple};
use super::orientation::{Affine, Target, axcodes, matmul};
use super::scaling::{Linear, Sample, scale};
use super::{Confidence, ImageVolume, ObsValue, OrientationInfo, OrientationSource, reorient_if};
use crate::error::{Error, Result};
use crate::volume::VolumeData;

/// SOP class of a DICOMDIR (media directory index, no image).
const DICOMDIR_SOP_CLASS: &str = "1.2.840.10008.1.3.10";
/// Largest difference between direction cosines still taken as the same orientation.
const IOP_TOLERANCE: f64 = 1e-4;
/// Slices closer than this (mm) along the normal are duplicates.
const DUPLICATE_TOLERANCE: f64 = 1e-4;
/// More frames than this in one file is taken as a corrupt header.
const MAX_FRAMES: i64 = 100_000;
/// DICOM patient coordinates (LPS) to RAS.
const LPS_TO_RAS: Affine = [[-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]];

fn invalid(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("cannot read DICOM {}: {reason}", path.display()))
}

/// An error with its chain of causes: `a: b: c`.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = c.source();
    }
    s
}

/// Series-level values the obs columns record (from the first slice).
#[derive(Debug, Clone, Default)]
struct SeriesMeta {
    modality: String,
    series_description: String,
    kvp: f64,
    exposure: f64,
    repetition_time: f64,
    echo_time: f64,
    magnetic_field_strength: f64,
}

/// One 2D image to place in the volume: a single-frame file, or one frame of a multi-frame file.
#[derive(Debug, Clone)]
struct Slice {
    file: usize,
    frame: u32,
    ipp: Option<[f64; 3]>,
    iop: Option<[f64; 6]>,
    pixel_spacing: Option<[f64; 2]>,
    rescale: Linear,
    instance_number: Option<i64>,
}

/// What a file's header says about its pixels.
#[derive(Debug, Clone)]
struct FileInfo {
    path: PathBuf,
    series_uid: String,
    rows: u32,
    cols: u32,
    frames: u32,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
    slice_thickness: Option<f64>,
    spacing_between_slices: Option<f64>,
    meta: SeriesMeta,
    slices: Vec<Slice>,
}

fn elem_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok()??;
    let s = e.to_str().ok()?;
    Some(s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_owned())
}

fn elem_floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let e = obj.element_opt(tag).ok()??;
    let v = e.to_multi_float64().ok()?;
    if v.is_empty() || v.iter().any(|x| !x.is_finite()) { None } else { Some(v) }
}

fn elem_f64(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    elem_floats(obj, tag).and_then(|v| v.first().copied())
}

fn elem_int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    let e = obj.element_opt(tag).ok()??;
    e.to_int::<i64>().ok().or_else(|| elem_f64(obj, tag).map(|f| f as i64))
}

fn elem_array<const N: usize>(obj: &InMemDicomObject, tag: Tag) -> Option<[f64; N]> {
    let v = elem_floats(obj, tag)?;
    (v.len() >= N).then(|| std::array::from_fn(|i| v[i]))
}

/// The first item of sequence `tag` in `obj`.
fn item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.element_opt(tag).ok()??.items()?.first()
}

/// A functional-group attribute: `group_seq > attr_seq[0] > tag`, looked up in the per-frame
/// group first, then the shared one.
fn fg_value<T>(
    per_frame: Option<&InMemDicomObject>,
    shared: Option<&InMemDicomObject>,
    seq: Tag,
    get: impl Fn(&InMemDicomObject) -> Option<T>,
) -> Option<T> {
    [per_frame, shared].into_iter().flatten().find_map(|g| item(g, seq).and_then(&get))
}

fn rescale_of(obj: &InMemDicomObject) -> Option<Linear> {
    let slope = elem_f64(obj, tags::RESCALE_SLOPE);
    let inter = elem_f64(obj, tags::RESCALE_INTERCEPT);
    if slope.is_none() && inter.is_none() {
        return None;
    }
    let slope = slope.filter(|s| *s != 0.0).unwrap_or(1.0);
    Some(Linear { slope, inter: inter.unwrap_or(0.0) })
}

/// Whether `path` has the `DICM` marker after the 128-byte preamble.
fn has_dicm_marker(path: &Path) -> bool {
    let mut buf = [0u8; 132];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut buf)).is_ok() && &buf[128..] == b"DICM"
}

/// The file's bytes with a File Meta Information Group Length element (0002,0000) inserted, when
/// it has a preamble and a meta group without one (what pydicom's plain `save_as()` writes, and
/// what pydicom and the reference read); `None` when that is not the problem.
fn with_meta_group_length(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.get(128..132)? != b"DICM" {
        return None;
    }
    let u16_at = |i: usize| bytes.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    if u16_at(132)? != 0x0002 || u16_at(134)? == 0x0000 {
        return None; // no meta group, or it has its length: another problem
    }
    // The meta group is always explicit VR little endian.
    let mut at = 132;
    while u16_at(at) == Some(0x0002) {
        let vr = bytes.get(at + 4..at + 6)?;
        let long = matches!(
            vr,
            b"OB" | b"OW" | b"OF" | b"OD" | b"OL" | b"OV" | b"SQ" | b"UT" | b"UN" | b"UC" | b"UR" | b"SV" | b"UV"
        );
        let (head, len) = if long {
            let b = bytes.get(at + 8..at + 12)?;
            (12, u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        } else {
            (8, u16_at(at + 6)? as usize)
        };
        if len == 0xFFFF_FFFF {
            return None; // undefined length in the meta group: not ours to fix
        }
        at = at.checked_add(head + len)?;
        if at > bytes.len() {
            return None;
        }
    }
    let group_len = u32::try_from(at - 132).ok()?;
    let mut out = Vec::with_capacity(bytes.len() + 12);
    out.extend_from_slice(&bytes[..132]);
    out.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 0x04, 0x00]);
    out.extend_from_slice(&group_len.to_le_bytes());
    out.extend_from_slice(&bytes[132..]);
    Some(out)
}

/// Opens a DICOM file (up to its pixel data when `header_only`), also when its meta group lacks
/// the group length element.
fn open_dicom(path: &Path, header_only: bool) -> std::result::Result<DefaultDicomObject, String> {
    let options = || {
        let o = OpenFileOptions::new();
        if header_only { o.read_until(tags::PIXEL_DATA) } else { o }
    };
    match options().open_file(path) {
        Ok(obj) => Ok(obj),
        Err(e) => match with_meta_group_length(path) {
            Some(fixed) => options()
                .read_preamble(dicom_object::file::ReadPreamble::Always)
                .from_reader(std::io::Cursor::new(fixed))
                .map_err(|_| with_causes(&e)),
            None => Err(with_causes(&e)),
        },
    }
}

fn open_header(path: &Path) -> Result<DefaultDicomObject> {
    open_dicom(path, true).map_err(|e| invalid(path, format!("not a readable DICOM file: {e}")))
}

/// Reads the header of one file (its pixel data is left on disk).
fn read_info(path: &Path, index: usize) -> Result<Option<FileInfo>> {
    let obj = open_header(path)?;
    if obj.meta().media_storage_sop_class_uid().trim_end_matches('\0') == DICOMDIR_SOP_CLASS {
        return Ok(None);
    }
    let rows = elem_int(&obj, tags::ROWS);
    let cols = elem_int(&obj, tags::COLUMNS);
    let (Some(rows), Some(cols)) = (rows, cols) else {
        return Err(invalid(path, "no image (Rows/Columns missing): not an image object"));
    };
    if rows <= 0 || cols <= 0 || rows > 65535 || cols > 65535 {
        return Err(invalid(path, format!("invalid image size {rows}×{cols}")));
    }
    let samples = elem_int(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let photometric = elem_str(&obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    if samples != 1 || !(photometric.is_empty() || photometric.starts_with("MONOCHROME")) {
        return Err(Error::UnsupportedDtype(format!(
            "{} is a colour image ({photometric}, {samples} samples per pixel): only monochrome \
             DICOM can be read as a volume",
            path.display()
        )));
    }
    if obj.element_opt(tags::FLOAT_PIXEL_DATA).ok().flatten().is_some()
        || obj.element_opt(tags::DOUBLE_FLOAT_PIXEL_DATA).ok().flatten().is_some()
    {
        return Err(Error::UnsupportedDtype(format!("{}: float pixel data is not supported", path.display())));
    }
    let bits_allocated = elem_int(&obj, tags::BITS_ALLOCATED).unwrap_or(0);
    if !matches!(bits_allocated, 1 | 8 | 16 | 32) {
        return Err(Error::UnsupportedDtype(format!(
            "{}: BitsAllocated {bits_allocated} (supported: 1, 8, 16, 32)",
            path.display()
        )));
    }
    let bits_stored = elem_int(&obj, tags::BITS_STORED).unwrap_or(bits_allocated).clamp(1, bits_allocated);
    let signed = elem_int(&obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
    let frames = elem_int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    if frames > MAX_FRAMES {
        return Err(invalid(path, format!("NumberOfFrames {frames} is implausible (more than {MAX_FRAMES})")));
    }
    let frames = frames as u32;

    let meta = SeriesMeta {
        modality: elem_str(&obj, tags::MODALITY).unwrap_or_else(|| "unknown".to_owned()),
        series_description: elem_str(&obj, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        kvp: elem_f64(&obj, tags::KVP).unwrap_or(f64::NAN),
        exposure: elem_f64(&obj, tags::EXPOSURE).unwrap_or(f64::NAN),
        repetition_time: elem_f64(&obj, tags::REPETITION_TIME).unwrap_or(f64::NAN),
        echo_time: elem_f64(&obj, tags::ECHO_TIME).unwrap_or(f64::NAN),
        magnetic_field_strength: elem_f64(&obj, tags::MAGNETIC_FIELD_STRENGTH).unwrap_or(f64::NAN),
    };

    let top_ipp = elem_array::<3>(&obj, tags::IMAGE_POSITION_PATIENT);
    let top_iop = elem_array::<6>(&obj, tags::IMAGE_ORIENTATION_PATIENT);
    let top_spacing = elem_array::<2>(&obj, tags::PIXEL_SPACING);
    let top_rescale = rescale_of(&obj).unwrap_or(Linear::IDENTITY);
    let instance_number = elem_int(&obj, tags::INSTANCE_NUMBER);
    let mut slice_thickness = elem_f64(&obj, tags::SLICE_THICKNESS);

    let per_frame: Vec<InMemDicomObject> = obj
        .element_opt(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .ok()
        .flatten()
        .and_then(|e| e.items())
        .map(<[InMemDicomObject]>::to_vec)
        .unwrap_or_default();
    let shared = item(&obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let grid_offsets = elem_floats(&obj, tags::GRID_FRAME_OFFSET_VECTOR);

    let mut slices = Vec::with_capacity(frames as usize);
    for frame in 0..frames {
        let pf = per_frame.get(frame as usize);
        let mut s = Slice {
            file: index,
            frame,
            ipp: top_ipp,
            iop: top_iop,
            pixel_spacing: top_spacing,
            rescale: top_rescale,
            instance_number,
        };
        if pf.is_some() || shared.is_some() {
            if let Some(p) =
                fg_value(pf, None, tags::PLANE_POSITION_SEQUENCE, |g| elem_array::<3>(g, tags::IMAGE_POSITION_PATIENT))
            {
                s.ipp = Some(p);
            } else if frames > 1 {
                s.ipp = None;
            }
            if let Some(o) = fg_value(pf, shared, tags::PLANE_ORIENTATION_SEQUENCE, |g| {
                elem_array::<6>(g, tags::IMAGE_ORIENTATION_PATIENT)
            }) {
                s.iop = Some(o);
            }
            if let Some(sp) =
                fg_value(pf, shared, tags::PIXEL_MEASURES_SEQUENCE, |g| elem_array::<2>(g, tags::PIXEL_SPACING))
            {
                s.pixel_spacing = Some(sp);
            }
            if slice_thickness.is_none() {
                slice_thickness =
                    fg_value(pf, shared, tags::PIXEL_MEASURES_SEQUENCE, |g| elem_f64(g, tags::SLICE_THICKNESS));
            }
            if let Some(r) = fg_value(pf, shared, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, rescale_of) {
                s.rescale = r;
            }
        } else if frames > 1 {
            // Legacy multi-frame (RT dose): frame k lies GridFrameOffsetVector[k] along the normal.
            match (&grid_offsets, top_ipp, top_iop) {
                (Some(off), Some(ipp), Some(iop)) if off.len() == frames as usize => {
                    let n = normal(&iop);
                    let d = off[frame as usize] - off[0];
                    s.ipp = Some(std::array::from_fn(|i| ipp[i] + d * n[i]));
                }
                _ => s.ipp = None,
            }
        }
        slices.push(s);
    }

    Ok(Some(FileInfo {
        path: path.to_path_buf(),
        series_uid: elem_str(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        rows: rows as u32,
        cols: cols as u32,
        frames,
        bits_allocated: bits_allocated as u16,
        bits_stored: bits_stored as u16,
        signed,
        slice_thickness,
        spacing_between_slices: elem_f64(&obj, tags::SPACING_BETWEEN_SLICES),
        meta,
        slices,
    }))
}

/// Row cosines × column cosines.
fn normal(iop: &[f64; 6]) -> [f64; 3] {
    let (r, c) = ([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]]);
    [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]
}

fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// The files of a series directory (non-hidden regular files, by name), or the file itself.
fn candidate_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| invalid(path, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| invalid(path, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let p = entry.path();
        if p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Geometry of the ordered series.
struct Geometry {
    order: Vec<Slice>,
    iop: Option<[f64; 6]>,
    origin: [f64; 3],
    slice_spacing: f64,
}

/// Orders the slices by position along the normal and derives the slice spacing.
fn order_slices(files: &[FileInfo], dir: &Path, warnings: &mut Vec<String>) -> Result<Geometry> {
    let mut slices: Vec<Slice> = files.iter().flat_map(|f| f.slices.iter().cloned()).collect();
    let first = &files[0];
    let thickness_spacing = first.spacing_between_slices.or(first.slice_thickness).filter(|s| *s > 0.0).unwrap_or(1.0);

    // One orientation for the whole series.
    let iop = slices[0].iop;
    for s in &slices {
        let same = match (iop, s.iop) {
            (Some(a), Some(b)) => a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() <= IOP_TOLERANCE),
            (None, None) => true,
            _ => false,
        };
        if !same {
            return Err(invalid(
                &files[s.file].path,
                format!(
                    "mixed series in {}: ImageOrientationPatient {:?} differs from {:?} in {}",
                    dir.display(),
                    s.iop,
                    iop,
                    files[slices[0].file].path.display()
                ),
            ));
        }
    }

    let positioned = iop.is_some() && slices.iter().all(|s| s.ipp.is_some());
    if slices.len() == 1 || !positioned {
        if slices.len() > 1 {
            warnings.push(format!(
                "{}: slices lack ImagePositionPatient/ImageOrientationPatient; ordered by InstanceNumber, \
                 slice spacing from SpacingBetweenSlices/SliceThickness",
                dir.display()
            ));
            slices.sort_by(|a, b| {
                (a.instance_number, &files[a.file].path, a.frame).cmp(&(
                    b.instance_number,
                    &files[b.file].path,
                    b.frame,
                ))
            });
        }
        let origin = slices[0].ipp.unwrap_or([0.0; 3]);
        return Ok(Geometry { order: slices, iop, origin, slice_spacing: thickness_spacing });
    }

    let Some(iop_v) = iop else {
        return Err(invalid(dir, "internal: orientation missing"));
    };
    let n = normal(&iop_v);
    let pos = |s: &Slice| s.ipp.map(|p| dot(&p, &n)).unwrap_or(0.0);
    slices.sort_by(|a, b| pos(a).total_cmp(&pos(b)));
    let projected: Vec<f64> = slices.iter().map(pos).collect();
    let mut steps: Vec<f64> = projected.windows(2).map(|w| w[1] - w[0]).collect();
    if let Some(i) = steps.iter().position(|d| *d < DUPLICATE_TOLERANCE) {
        let (a, b) = (&slices[i], &slices[i + 1]);
        return Err(invalid(
            dir,
            format!(
                "two slices at the same position {:.4} mm along the normal ({} frame {} and {} frame {}): \
                 several echoes, phases or series mixed in one directory?",
                projected[i],
                files[a.file].path.display(),
                a.frame,
                files[b.file].path.display(),
                b.frame
            ),
        ));
    }
    steps.sort_by(f64::total_cmp);
    let mid = steps.len() / 2;
    let spacing = if steps.len() % 2 == 1 { steps[mid] } else { (steps[mid - 1] + steps[mid]) / 2.0 };
    let spread = steps.last().copied().unwrap_or(spacing) - steps.first().copied().unwrap_or(spacing);
    if spread > (spacing * 0.01).max(1e-3) {
        warnings.push(format!(
            "{}: slice spacing is not uniform (steps from {:.4} to {:.4} mm along the normal); the affine \
             uses the median step {:.4} mm",
            dir.display(),
            steps[0],
            steps[steps.len() - 1],
            spacing
        ));
    }
    let origin = slices[0].ipp.unwrap_or([0.0; 3]);
    Ok(Geometry { order: slices, iop, origin, slice_spacing: spacing })
}

/// What it takes to turn the decoded bytes of a file into native-endian samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteOrderFix {
    /// Already native (little-endian files, encapsulated data, 8-bit samples).
    None,
    /// Explicit VR big endian, pixel data read as bytes (OB): reverse each sample.
    SwapBytes,
    /// Explicit VR big endian, 32-bit samples read as 16-bit words (OW): swap the two words.
    SwapWords,
}

fn native_order_fix(obj: &DefaultDicomObject, bytes_per: usize) -> ByteOrderFix {
    const BIG_ENDIAN_TS: &str = "1.2.840.10008.1.2.2";
    let big_endian = obj.meta().transfer_syntax().trim_end_matches('\0') == BIG_ENDIAN_TS;
    if !big_endian || bytes_per == 1 {
        return ByteOrderFix::None;
    }
    let ow = obj.element(tags::PIXEL_DATA).map(|e| e.vr().to_string() == "OW").unwrap_or(true);
    match (ow, bytes_per) {
        (true, 4) => ByteOrderFix::SwapWords,
        (true, _) => ByteOrderFix::None,
        (false, _) => ByteOrderFix::SwapBytes,
    }
}

/// Copies one decoded frame into `dest` as native samples, keeping only the stored bits.
fn place_frame<T: Sample + Unused>(dest: &mut [T], bytes: &[u8], order: ByteOrderFix, bits_stored: u16) {
    let size = std::mem::size_of::<T>();
    if size == 1 || order == ByteOrderFix::None {
        bytemuck::cast_slice_mut::<T, u8>(dest).copy_from_slice(bytes);
    } else {
        for (d, chunk) in dest.iter_mut().zip(bytes.chunks_exact(size)) {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(chunk);
            match order {
                ByteOrderFix::None => {}
                ByteOrderFix::SwapBytes => b[..size].reverse(),
                ByteOrderFix::SwapWords => b[..4].rotate_left(2),
            }
            *d = bytemuck::pod_read_unaligned(&b[..size]);
        }
    }
    let bits = std::mem::size_of::<T>() as u32 * 8;
    if u32::from(bits_stored) < bits {
        dest.iter_mut().for_each(|v| *v = v.keep_bits(u32::from(bits_stored)));
    }
}

/// Masking of the unused high bits (and sign extension for signed types).
trait Unused {
    fn keep_bits(self, bits: u32) -> Self;
}

macro_rules! unused {
    ($($t:ty, $u:ty);*) => {$(
        impl Unused for $t {
            fn keep_bits(self, bits: u32) -> Self {
                let total = <$t>::BITS;
                let shift = total - bits;
                // Shift left then right: arithmetic for signed (sign-extends), logical for unsigned.
                ((self as $u) << shift) as $t >> shift
            }
        }
    )*};
}

unused!(u8, u8; i8, u8; u16, u16; i16, u16; u32, u32; i32, u32);

fn decode_into<T: Sample + Unused>(
    order: &[Slice],
    files: &[FileInfo],
    frame_len: usize,
    bits_stored: u16,
    one_bit: bool,
) -> Result<Vec<T>> {
    let too_large =
        || Error::shape(format!("a DICOM series of {} frames of {frame_len} pixels is too large", order.len()));
    let total = frame_len.checked_mul(order.len()).ok_or_else(too_large)?;
    let mut out: Vec<T> = Vec::new();
    out.try_reserve_exact(total).map_err(|_| too_large())?;
    out.resize(total, T::default());
    let bytes_per = std::mem::size_of::<T>();
    // Group slices by file so each file is opened and decoded once.
    let mut by_file: Vec<Vec<(usize, u32)>> = vec![Vec::new(); files.len()];
    for (z, s) in order.iter().enumerate() {
        by_file[s.file].push((z, s.frame));
    }
    let mut dest: Vec<Option<&mut [T]>> = out.chunks_mut(frame_len).map(Some).collect();
    // (file, [(frame, destination)])
    type Job<'a, T> = (usize, Vec<(u32, &'a mut [T])>);
    let mut jobs: Vec<Job<'_, T>> = Vec::new();
    for (fi, list) in by_file.into_iter().enumerate() {
        if list.is_empty() {
            continue;
        }
        let mut targets = Vec::with_capacity(list.len());
        for (z, frame) in list {
            let Some(chunk) = dest.get_mut(z).and_then(Option::take) else {
                return Err(Error::shape("internal: slice placed twice"));
            };
            targets.push((frame, chunk));
        }
        jobs.push((fi, targets));
    }
    jobs.into_par_iter().try_for_each(|(fi, targets)| -> Result<()> {
        let path = &files[fi].path;
        let obj = open_dicom(path, false).map_err(|e| invalid(path, e))?;
        let decoded = obj
            .decode_pixel_data()
            .map_err(|e| invalid(path, format!("cannot decode pixel data: {}", with_causes(&e))))?;
        let data = decoded.data();
        let frame_bytes = frame_len * bytes_per;
        let order = native_order_fix(&obj, bytes_per);
        for (frame, chunk) in targets {
            let start = frame as usize * frame_bytes;
            let Some(bytes) = data.get(start..start + frame_bytes) else {
                return Err(invalid(
                    path,
                    format!(
                        "pixel data is truncated: {} bytes, frame {frame} needs bytes {start}..{}",
                        data.len(),
                        start + frame_bytes
                    ),
                ));
            };
            place_frame(chunk, bytes, order, if one_bit { 8 } else { bits_stored });
            if one_bit {
                // dicom-pixeldata expands 1-bit samples to 0/255; keep 0/1 like pydicom.
                for v in bytemuck::cast_slice_mut::<T, u8>(chunk) {
                    *v = u8::from(*v != 0);
                }
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// See [`crate::imaging::read_dicom_series`].
pub(crate) fn read(path: &Path, target: Option<Target>) -> Result<ImageVolume> {
    let abs = std::path::absolute(path).map_err(|e| invalid(path, e))?;
    if !abs.exists() {
        return Err(Error::NotFound { uri: abs.display().to_string(), expected: "DICOM series" });
    }
    let mut warnings = Vec::new();
    let candidates = candidate_files(&abs)?;
    let (dicm, skipped): (Vec<PathBuf>, Vec<PathBuf>) =
        candidates.into_iter().partition(|p| abs.is_file() || has_dicm_marker(p));
    if !skipped.is_empty() {
        let names: Vec<String> =
            skipped.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
        warnings.push(format!("{}: skipped {} non-DICOM file(s): {}", abs.display(), names.len(), names.join(", ")));
    }
    let infos: Vec<Option<FileInfo>> =
        dicm.par_iter().enumerate().map(|(i, p)| read_info(p, i)).collect::<Result<Vec<_>>>()?;
    // Re-index after dropping DICOMDIR files.
    let mut files: Vec<FileInfo> = Vec::with_capacity(infos.len());
    for info in infos.into_iter().flatten() {
        let idx = files.len();
        let mut info = info;
        info.slices.iter_mut().for_each(|s| s.file = idx);
        files.push(info);
    }
    if files.is_empty() {
        return Err(invalid(
            &abs,
            if skipped.is_empty() {
                "no DICOM files found".to_owned()
            } else {
                format!("no DICOM files found ({} non-DICOM file(s) skipped)", skipped.len())
            },
        ));
    }
    validate_series(&files, &abs)?;

    let geometry = order_slices(&files, &abs, &mut warnings)?;
    let first = &files[geometry.order[0].file];
    let (rows, cols) = (first.rows as usize, first.cols as usize);
    let nz = geometry.order.len();
    let shape = [cols, rows, nz];
    let frame_len = rows * cols;
    let segments: Vec<Linear> = geometry.order.iter().map(|s| s.rescale).collect();
    let one_bit = first.bits_allocated == 1;
    let bits_stored = first.bits_stored;
    macro_rules! decode_as {
        ($t:ty) => {{
            let raw: Vec<$t> = decode_into(&geometry.order, &files, frame_len, bits_stored, one_bit)?;
            scale(raw, &shape, &segments)?
        }};
    }
    let data: VolumeData = match (first.bits_allocated, first.signed) {
        (1 | 8, false) => decode_as!(u8),
        (8, true) => decode_as!(i8),
        (16, false) => decode_as!(u16),
        (16, true) => decode_as!(i16),
        (32, false) => decode_as!(u32),
        (32, true) => decode_as!(i32),
        (bits, _) => {
            return Err(Error::UnsupportedDtype(format!("{}: BitsAllocated {bits}", first.path.display())));
        }
    };

    // Geometry → RAS affine.
    let spacing_rc = geometry.order[0].pixel_spacing.unwrap_or([1.0, 1.0]);
    let (dx, dy, dz) = (spacing_rc[1], spacing_rc[0], geometry.slice_spacing);
    let (affine, source) = match geometry.iop {
        Some(iop) => {
            // LPS affine, then diag(-1, -1, 1, 1) · LPS, computed as the reference computes it.
            let n = normal(&iop);
            let o = geometry.origin;
            let lps: Affine = [
                [iop[0] * dx, iop[3] * dy, n[0] * dz, o[0]],
                [iop[1] * dx, iop[4] * dy, n[1] * dz, o[1]],
                [iop[2] * dx, iop[5] * dy, n[2] * dz, o[2]],
                [0.0, 0.0, 0.0, 1.0],
            ];
            (matmul(&LPS_TO_RAS, &lps), OrientationSource::DicomIop)
        }
        None => (LPS_TO_RAS.map(|row| row.map(f64::abs)), OrientationSource::Identity),
    };
    let confidence = if source == OrientationSource::Identity { Confidence::Unknown } else { Confidence::Header };
    let file_axcodes = axcodes(&affine);
    let (data, final_affine, original_affine) = reorient_if(data, affine, &file_axcodes, target);
    let final_axcodes = axcodes(&final_affine);
    let orientation = OrientationInfo {
        is_canonical: final_axcodes == "RAS",
        axcodes: final_axcodes,
        affine: final_affine,
        confidence,
        source,
    };
    let volume_metadata = orientation.metadata(original_affine.as_ref());

    let m = &first.meta;
    let source_path = abs.display().to_string();
    let obs = vec![
        ("voxel_spacing".to_owned(), ObsValue::Str(py_float_tuple(&[dx, dy, dz]))),
        ("dimensions".to_owned(), ObsValue::Str(py_int_tuple(&[rows, cols, nz]))),
        ("modality".to_owned(), ObsValue::Str(m.modality.clone())),
        ("series_description".to_owned(), ObsValue::Str(m.series_description.clone())),
        ("kvp".to_owned(), ObsValue::Float64(m.kvp)),
        ("exposure".to_owned(), ObsValue::Float64(m.exposure)),
        ("repetition_time".to_owned(), ObsValue::Float64(m.repetition_time)),
        ("echo_time".to_owned(), ObsValue::Float64(m.echo_time)),
        ("magnetic_field_strength".to_owned(), ObsValue::Float64(m.magnetic_field_strength)),
        ("axcodes".to_owned(), ObsValue::Str(file_axcodes)),
        ("affine_json".to_owned(), ObsValue::Str(affine_json(&affine))),
        ("orientation_source".to_owned(), ObsValue::Str(source.as_str().to_owned())),
        ("source_path".to_owned(), ObsValue::Str(source_path.clone())),
    ];

    Ok(ImageVolume {
        data,
        affine: final_affine,
        original_affine,
        orientation,
        volume_metadata,
        obs,
        source_path,
        warnings,
    })
}

/// Refuses directories that hold more than one series or images of different kinds.
fn validate_series(files: &[FileInfo], dir: &Path) -> Result<()> {
    let first = &files[0];
    if files.len() > 1
        && let Some(mf) = files.iter().find(|f| f.frames > 1)
    {
        return Err(invalid(
            &mf.path,
            format!(
                "{} holds a multi-frame file among {} files: read a multi-frame file on its own",
                dir.display(),
                files.len()
            ),
        ));
    }
    let mut uids: Vec<&str> = files.iter().map(|f| f.series_uid.as_str()).collect();
    uids.sort_unstable();
    uids.dedup();
    if uids.len() > 1 {
        return Err(invalid(
            dir,
            format!(
                "mixed series: {} SeriesInstanceUIDs among {} files ({}); put each series in its own directory",
                uids.len(),
                files.len(),
                uids.join(", ")
            ),
        ));
    }
    for f in &files[1..] {
        if (f.rows, f.cols) != (first.rows, first.cols) {
            return Err(invalid(
                dir,
                format!(
                    "mixed series: {} is {}×{} (rows×columns) but {} is {}×{}",
                    f.path.display(),
                    f.rows,
                    f.cols,
                    first.path.display(),
                    first.rows,
                    first.cols
                ),
            ));
        }
        if (f.bits_allocated, f.signed) != (first.bits_allocated, first.signed) {
            return Err(invalid(
                dir,
                format!(
                    "mixed series: {} stores {}-bit {} pixels but {} stores {}-bit {}",
                    f.path.display(),
                    f.bits_allocated,
                    if f.signed { "signed" } else { "unsigned" },
                    first.path.display(),
                    first.bits_allocated,
                    if first.signed { "signed" } else { "unsigned" }
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_bits_are_masked_and_sign_extended() {
        assert_eq!(0xF123u16.keep_bits(12), 0x0123);
        assert_eq!((0x0FFFu16 as i16).keep_bits(12), -1);
        assert_eq!((0x0800u16 as i16).keep_bits(12), -2048);
        assert_eq!(0x07FFi16.keep_bits(12), 2047);
        assert_eq!(0xFFu8.keep_bits(8), 0xFF);
    }

    #[test]
    fn normal_is_row_cross_column() {
        assert_eq!(normal(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]), [0.0, 0.0, 1.0]);
        assert_eq!(normal(&[0.0, 1.0, 0.0, 0.0, 0.0, -1.0]), [-1.0, 0.0, 0.0]);
    }
}
