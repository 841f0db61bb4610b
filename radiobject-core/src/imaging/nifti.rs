//! NIfTI-1 and NIfTI-2 reader: `.nii`, `.nii.gz`, and `.hdr`/`.img` pairs (either compressed),
//! little or big endian.
//!
//! Header handling follows what `nibabel.load` does, so that the voxels, affine and header values
//! match nibabel's for the same file:
//! * header checks nibabel fixes silently are fixed the same way: spatial `pixdim` are made
//!   positive and zeros become 1, a `qfac` (`pixdim[0]`) other than ±1 becomes 1, unknown
//!   `qform_code`/`sform_code` values become 0, `bitpix` follows the datatype;
//! * the affine is nibabel's `img.affine`: the sform when `sform_code > 0`, else the qform
//!   (quaternion → matrix as nibabel) when `qform_code > 0`, else the "base affine" built from
//!   the shape and `pixdim` (x flipped, centred);
//! * `scl_slope` 0 or non-finite means no scaling.
//!
//! Where nibabel would read garbage, this reader refuses or corrects instead: a single-file
//! `vox_offset` of 0 is taken as the minimum (352 for NIfTI-1, 544 for NIfTI-2).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use super::format::{affine_json, py_float_repr, py_float_tuple, py_int_tuple};
use super::orientation::{Affine, Target, axcodes, is_identity};
use super::scaling::{Linear, Sample, scale};
use super::{Confidence, ImageVolume, ObsValue, OrientationInfo, OrientationSource, infer_series_type, reorient_if};
use crate::error::{Error, Result};
use crate::volume::VolumeData;

const NIFTI1_HEADER: usize = 348;
const NIFTI2_HEADER: usize = 540;
/// Bytes read per step when the decompressed size cannot be checked up front.
const READ_CHUNK: usize = 8 << 20;

/// Which NIfTI version a header is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    One,
    Two,
}

/// The NIfTI header fields this crate uses, widened to 64 bits, after nibabel's fixes.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub version: Version,
    pub big_endian: bool,
    /// `true` for `n+1`/`n+2` (data in the same file), `false` for `ni1`/`ni2` pairs.
    pub single_file: bool,
    pub shape: Vec<usize>,
    pub datatype: i16,
    pub bitpix: i16,
    pub pixdim: [f64; 8],
    pub vox_offset: u64,
    /// Raw header values (may be 0 or NaN).
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub xyzt_units: i32,
    pub qform_code: i32,
    pub sform_code: i32,
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub srow: [[f64; 4]; 3],
}

/// Field access with the file's byte order.
struct Fields<'a> {
    buf: &'a [u8],
    be: bool,
}

impl Fields<'_> {
    fn bytes<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut b = [0u8; N];
        b.copy_from_slice(&self.buf[off..off + N]);
        if self.be {
            b.reverse();
        }
        b
    }
    fn i16(&self, off: usize) -> i16 {
        i16::from_le_bytes(self.bytes(off))
    }
    fn i32(&self, off: usize) -> i32 {
        i32::from_le_bytes(self.bytes(off))
    }
    fn i64(&self, off: usize) -> i64 {
        i64::from_le_bytes(self.bytes(off))
    }
    fn f32(&self, off: usize) -> f64 {
        f64::from(f32::from_le_bytes(self.bytes(off)))
    }
    fn f64(&self, off: usize) -> f64 {
        f64::from_le_bytes(self.bytes(off))
    }
}

/// Bytes per voxel and a name for every NIfTI datatype code.
fn datatype_info(code: i16) -> Option<(&'static str, i16)> {
    Some(match code {
        1 => ("binary", 1),
        2 => ("uint8", 8),
        4 => ("int16", 16),
        8 => ("int32", 32),
        16 => ("float32", 32),
        32 => ("complex64", 64),
        64 => ("float64", 64),
        128 => ("RGB24", 24),
        256 => ("int8", 8),
        512 => ("uint16", 16),
        768 => ("uint32", 32),
        1024 => ("int64", 64),
        1280 => ("uint64", 64),
        1536 => ("float128", 128),
        1792 => ("complex128", 128),
        2048 => ("complex256", 256),
        2304 => ("RGBA32", 32),
        _ => return None,
    })
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("cannot read NIfTI file {}: {reason}", path.display()))
}

/// Opens `path`, transparently gunzipping when it starts with the gzip magic (whatever its
/// name); also says whether it is compressed.
fn open_stream(path: &Path) -> Result<(Box<dyn Read>, bool)> {
    let file = File::open(path).map_err(|e| open_error(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 18, file);
    let head = reader.fill_buf().map_err(|e| invalid(path, e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((Box::new(BufReader::with_capacity(1 << 18, MultiGzDecoder::new(reader))), true))
    } else {
        Ok((Box::new(reader), false))
    }
}

fn open_error(path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::NotFound { uri: path.display().to_string(), expected: "NIfTI file" }
    } else {
        invalid(path, e)
    }
}

/// Reads exactly `buf.len()` bytes, naming a short read as truncation.
fn read_exact_or(reader: &mut dyn Read, buf: &mut [u8], path: &Path, what: &str) -> Result<()> {
    reader.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            invalid(path, format!("file is truncated: it ends inside the {what}"))
        } else {
            invalid(path, format!("{what}: {e}"))
        }
    })
}

/// Reads and validates the header from the start of `reader`.
fn read_header(reader: &mut dyn Read, path: &Path) -> Result<Header> {
    let mut buf = vec![0u8; NIFTI2_HEADER];
    read_exact_or(reader, &mut buf[..4], path, "header")?;
    let le = i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let be = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let (version, big_endian) = match (le, be) {
        (348, _) => (Version::One, false),
        (_, 348) => (Version::One, true),
        (540, _) => (Version::Two, false),
        (_, 540) => (Version::Two, true),
        _ => {
            return Err(invalid(
                path,
                format!("not a NIfTI-1 or NIfTI-2 header (sizeof_hdr is {le}, expected 348 or 540)"),
            ));
        }
    };
    let len = if version == Version::One { NIFTI1_HEADER } else { NIFTI2_HEADER };
    read_exact_or(reader, &mut buf[4..len], path, "header")?;
    parse_header(&buf[..len], version, big_endian, path)
}

fn parse_header(buf: &[u8], version: Version, big_endian: bool, path: &Path) -> Result<Header> {
    let f = Fields { buf, be: big_endian };
    let mut h = match version {
        Version::One => {
            let magic = &buf[344..348];
            let single_file = match magic {
                b"n+1\0" => true,
                b"ni1\0" => false,
                _ => {
                    return Err(invalid(
                        path,
                        format!("bad NIfTI-1 magic {:?} (expected \"n+1\" or \"ni1\")", String::from_utf8_lossy(magic)),
                    ));
                }
            };
            let dims: [i64; 8] = std::array::from_fn(|i| i64::from(f.i16(40 + 2 * i)));
            let vox_offset = f.f32(108);
            Header {
                version,
                big_endian,
                single_file,
                shape: shape_from_dims(&dims, path)?,
                datatype: f.i16(70),
                bitpix: f.i16(72),
                pixdim: std::array::from_fn(|i| f.f32(76 + 4 * i)),
                vox_offset: offset_from(vox_offset, path)?,
                scl_slope: f.f32(112),
                scl_inter: f.f32(116),
                xyzt_units: i32::from(buf[123]),
                qform_code: i32::from(f.i16(252)),
                sform_code: i32::from(f.i16(254)),
                quatern: [f.f32(256), f.f32(260), f.f32(264)],
                qoffset: [f.f32(268), f.f32(272), f.f32(276)],
                srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f32(280 + 16 * r + 4 * c))),
            }
        }
        Version::Two => {
            let magic = &buf[4..8];
            let single_file = match magic {
                b"n+2\0" => true,
                b"ni2\0" => false,
                _ => {
                    return Err(invalid(
                        path,
                        format!("bad NIfTI-2 magic {:?} (expected \"n+2\" or \"ni2\")", String::from_utf8_lossy(magic)),
                    ));
                }
            };
            let eol = &buf[8..12];
            if eol != [13, 10, 26, 10] && eol != [0, 0, 0, 0] {
                return Err(invalid(
                    path,
                    "NIfTI-2 end-of-line check bytes are corrupt (file altered by EOL conversion?)",
                ));
            }
            let dims: [i64; 8] = std::array::from_fn(|i| f.i64(16 + 8 * i));
            let vox_offset = f.i64(168);
            if vox_offset < 0 {
                return Err(invalid(path, format!("negative vox_offset {vox_offset}")));
            }
            Header {
                version,
                big_endian,
                single_file,
                shape: shape_from_dims(&dims, path)?,
                datatype: f.i16(12),
                bitpix: f.i16(14),
                pixdim: std::array::from_fn(|i| f.f64(104 + 8 * i)),
                vox_offset: vox_offset as u64,
                scl_slope: f.f64(176),
                scl_inter: f.f64(184),
                xyzt_units: f.i32(500),
                qform_code: f.i32(344),
                sform_code: f.i32(348),
                quatern: [f.f64(352), f.f64(360), f.f64(368)],
                qoffset: [f.f64(376), f.f64(384), f.f64(392)],
                srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f64(400 + 32 * r + 8 * c))),
            }
        }
    };
    // nibabel's header fixes (`check_fix` on load).
    let Some((name, bitpix)) = datatype_info(h.datatype) else {
        return Err(invalid(path, format!("unknown NIfTI datatype code {}", h.datatype)));
    };
    if !matches!(h.datatype, 2 | 4 | 8 | 16 | 64 | 256 | 512 | 768 | 1024 | 1280) {
        return Err(Error::UnsupportedDtype(format!(
            "{name} (NIfTI datatype {}) in {}: only real-valued integer and float images are supported",
            h.datatype,
            path.display()
        )));
    }
    h.bitpix = bitpix;
    for p in &mut h.pixdim[1..4] {
        if *p == 0.0 {
            *p = 1.0;
        }
        *p = p.abs();
    }
    if h.pixdim[0] != 1.0 && h.pixdim[0] != -1.0 {
        h.pixdim[0] = 1.0;
    }
    for code in [&mut h.qform_code, &mut h.sform_code] {
        if !(0..=5).contains(code) {
            *code = 0;
        }
    }
    if h.single_file {
        let min = if version == Version::One { 352 } else { 544 };
        if h.vox_offset == 0 {
            h.vox_offset = min;
        } else if h.vox_offset < min {
            return Err(invalid(path, format!("vox_offset {} is inside the header (minimum {min})", h.vox_offset)));
        }
    }
    Ok(h)
}

fn offset_from(vox_offset: f64, path: &Path) -> Result<u64> {
    if !(0.0..=1e15).contains(&vox_offset) {
        return Err(invalid(path, format!("invalid vox_offset {vox_offset}")));
    }
    Ok(vox_offset as u64)
}

fn shape_from_dims(dims: &[i64; 8], path: &Path) -> Result<Vec<usize>> {
    let ndim = dims[0];
    if !(1..=7).contains(&ndim) {
        return Err(invalid(path, format!("dim[0] is {ndim}, expected 1..7")));
    }
    let shape = &dims[1..=ndim as usize];
    if let Some(bad) = shape.iter().find(|d| **d <= 0) {
        return Err(Error::Shape {
            message: format!("{}: invalid dimension {bad} in shape {shape:?}", path.display()),
        });
    }
    if !(3..=4).contains(&ndim) {
        return Err(Error::Shape {
            message: format!(
                "{}: {ndim}D image of shape {shape:?}; only 3D (x, y, z) and 4D (x, y, z, t) volumes are supported",
                path.display()
            ),
        });
    }
    shape
        .iter()
        .map(|d| usize::try_from(*d).map_err(|_| invalid(path, format!("dimension {d} is too large"))))
        .collect()
}

impl Header {
    /// nibabel's `get_best_affine`, and the reference's name for where it came from.
    pub fn affine(&self, path: &Path) -> Result<(Affine, OrientationSource)> {
        if self.sform_code > 0 {
            let s = &self.srow;
            let a = [s[0], s[1], s[2], [0.0, 0.0, 0.0, 1.0]];
            return Ok((a, OrientationSource::NiftiSform));
        }
        if self.qform_code > 0 {
            return Ok((self.qform(path)?, OrientationSource::NiftiQform));
        }
        Ok((self.base_affine(), OrientationSource::Identity))
    }

    /// nibabel's `get_qform`: rotation from the quaternion (`a` recovered from `b, c, d`), zooms
    /// from `pixdim[1..4]` with `qfac` on z, offsets from `qoffset_*`.
    ///
    /// nibabel computes this in `long double`; doing it in double-double arithmetic and rounding
    /// once gives the same `f64` values (and so the same JSON text), where plain `f64` arithmetic
    /// would differ in the last digit.
    fn qform(&self, path: &Path) -> Result<Affine> {
        let [b, c, d] = self.quatern.map(Dd::from);
        let eps = if self.version == Version::One { f64::from(f32::EPSILON) } else { f64::EPSILON };
        let w2 = Dd::from(1.0).sub(b.mul(b).add(c.mul(c)).add(d.mul(d)));
        let a = if w2.hi().abs() < eps * 3.0 {
            Dd::from(0.0)
        } else if w2.hi() < 0.0 {
            let [b, c, d] = self.quatern;
            return Err(invalid(path, format!("invalid qform quaternion (b, c, d) = ({b}, {c}, {d}): b²+c²+d² > 1")));
        } else {
            w2.sqrt()
        };
        let (w, x, y, z) = (a, b, c, d);
        let nq = w.mul(w).add(x.mul(x)).add(y.mul(y)).add(z.mul(z));
        let one = Dd::from(1.0);
        let r: [[Dd; 3]; 3] = if nq.hi() < f64::EPSILON {
            std::array::from_fn(|i| std::array::from_fn(|j| Dd::from(if i == j { 1.0 } else { 0.0 })))
        } else {
            let s = Dd::from(2.0).div(nq);
            let (xs, ys, zs) = (x.mul(s), y.mul(s), z.mul(s));
            let (wx, wy, wz) = (w.mul(xs), w.mul(ys), w.mul(zs));
            let (xx, xy, xz) = (x.mul(xs), x.mul(ys), x.mul(zs));
            let (yy, yz, zz) = (y.mul(ys), y.mul(zs), z.mul(zs));
            [
                [one.sub(yy.add(zz)), xy.sub(wz), xz.add(wy)],
                [xy.add(wz), one.sub(xx.add(zz)), yz.sub(wx)],
                [xz.sub(wy), yz.add(wx), one.sub(xx.add(yy))],
            ]
        };
        let vox = [self.pixdim[1], self.pixdim[2], self.pixdim[3] * self.pixdim[0]];
        let mut m = [[0.0; 4]; 4];
        for i in 0..3 {
            // R · diag(vox), summed as numpy's dot does.
            for j in 0..3 {
                let s = |k: usize| Dd::from(if k == j { vox[j] } else { 0.0 });
                m[i][j] = r[i][0].mul(s(0)).add(r[i][1].mul(s(1))).add(r[i][2].mul(s(2))).to_f64();
            }
            m[i][3] = self.qoffset[i];
        }
        m[3][3] = 1.0;
        Ok(m)
    }

    /// nibabel's `get_base_affine` (`shape_zoom_affine` with x flipped).
    fn base_affine(&self) -> Affine {
        let zooms = [-self.pixdim[1], self.pixdim[2], self.pixdim[3]];
        let mut m = [[0.0; 4]; 4];
        for i in 0..3 {
            let n = self.shape.get(i).copied().unwrap_or(1) as f64;
            m[i][i] = zooms[i];
            m[i][3] = -((n - 1.0) / 2.0) * zooms[i];
        }
        m[3][3] = 1.0;
        m
    }

    /// `(slope, inter)` as nibabel applies them: none when the slope is 0 or not finite.
    fn scaling(&self, path: &Path) -> Result<Linear> {
        if self.scl_slope == 0.0 || !self.scl_slope.is_finite() {
            return Ok(Linear::IDENTITY);
        }
        if !self.scl_inter.is_finite() {
            return Err(invalid(
                path,
                format!("valid scl_slope {} but invalid scl_inter {}", self.scl_slope, self.scl_inter),
            ));
        }
        Ok(Linear { slope: self.scl_slope, inter: self.scl_inter })
    }
}

/// A double-double number (`hi + lo`, ~106-bit significand) for the few operations that nibabel
/// does in `long double`.
#[derive(Debug, Clone, Copy)]
struct Dd(f64, f64);

impl Dd {
    fn from(x: f64) -> Dd {
        Dd(x, 0.0)
    }

    fn hi(self) -> f64 {
        self.0
    }

    /// `a + b` when `|a| >= |b|`; keeps the sign of `a` when `b` is zero (IEEE `-0.0` semantics).
    fn quick(a: f64, b: f64) -> Dd {
        if b == 0.0 {
            return Dd(a, 0.0);
        }
        let s = a + b;
        Dd(s, b - (s - a))
    }

    fn add(self, o: Dd) -> Dd {
        let s = self.0 + o.0;
        let bb = s - self.0;
        let e = (self.0 - (s - bb)) + (o.0 - bb);
        Dd::quick(s, e + self.1 + o.1)
    }

    fn sub(self, o: Dd) -> Dd {
        self.add(Dd(-o.0, -o.1))
    }

    fn mul(self, o: Dd) -> Dd {
        let p = self.0 * o.0;
        let e = self.0.mul_add(o.0, -p) + (self.0 * o.1 + self.1 * o.0);
        Dd::quick(p, e)
    }

    fn div(self, o: Dd) -> Dd {
        let q1 = self.0 / o.0;
        let r = self.sub(o.mul(Dd::from(q1)));
        let q2 = r.0 / o.0;
        let r = r.sub(o.mul(Dd::from(q2)));
        let q3 = r.0 / o.0;
        Dd::quick(q1, q2).add(Dd::from(q3))
    }

    fn sqrt(self) -> Dd {
        if self.0 <= 0.0 {
            return Dd::from(self.0.sqrt());
        }
        let x = self.0.sqrt();
        let r = self.sub(Dd::from(x).mul(Dd::from(x)));
        Dd::quick(x, r.0 / (2.0 * x))
    }

    fn to_f64(self) -> f64 {
        if self.1 == 0.0 { self.0 } else { self.0 + self.1 }
    }
}

/// Where the voxels of a `.hdr` live: the `.img` beside it (or `.img.gz`).
fn image_file_for(header_path: &Path) -> Result<PathBuf> {
    let name = header_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let stem = if lower.ends_with(".hdr.gz") {
        &name[..name.len() - 7]
    } else if lower.ends_with(".hdr") {
        &name[..name.len() - 4]
    } else {
        return Err(invalid(header_path, "header of a .hdr/.img pair, but the file is not named .hdr"));
    };
    let candidates = [format!("{stem}.img"), format!("{stem}.img.gz"), format!("{stem}.IMG")];
    candidates
        .iter()
        .map(|c| header_path.with_file_name(c))
        .find(|p| p.is_file())
        .ok_or_else(|| invalid(header_path, format!("its image file {stem}.img (or .img.gz) does not exist")))
}

/// If `path` is the `.img` of a pair, the `.hdr` beside it.
fn header_file_for(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let lower = name.to_ascii_lowercase();
    let stem = if lower.ends_with(".img.gz") {
        &name[..name.len() - 7]
    } else if lower.ends_with(".img") {
        &name[..name.len() - 4]
    } else {
        return None;
    };
    [format!("{stem}.hdr"), format!("{stem}.hdr.gz")].iter().map(|c| path.with_file_name(c)).find(|p| p.is_file())
}

/// Reads `n` samples of `T`, failing cleanly on truncation; fixes the byte order.
fn read_samples<T: Sample>(
    reader: &mut dyn Read,
    n: usize,
    big_endian: bool,
    known_len: bool,
    path: &Path,
) -> Result<Vec<T>> {
    let size = std::mem::size_of::<T>();
    let mut out: Vec<T> = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| invalid(path, format!("the header describes {n} voxels, more than this machine can hold")))?;
    if known_len {
        out.resize(n, T::default());
        read_exact_or(reader, bytemuck::cast_slice_mut(&mut out), path, "voxel data")?;
    } else {
        // Compressed: grow as data arrives so a corrupt header cannot commit memory it lacks.
        let step = (READ_CHUNK / size).max(1);
        while out.len() < n {
            let start = out.len();
            out.resize((start + step).min(n), T::default());
            read_exact_or(reader, bytemuck::cast_slice_mut(&mut out[start..]), path, "voxel data")?;
        }
    }
    if big_endian != cfg!(target_endian = "big") && size > 1 {
        out.iter_mut().for_each(Sample::swap);
    }
    Ok(out)
}

/// Skips `n` bytes of `reader`.
fn skip(reader: &mut dyn Read, n: u64, path: &Path) -> Result<()> {
    let copied = io::copy(&mut reader.take(n), &mut io::sink()).map_err(|e| invalid(path, e))?;
    if copied < n {
        return Err(invalid(path, "file is truncated: it ends before the voxel data starts"));
    }
    Ok(())
}

/// Header plus voxels of a NIfTI file, before orientation handling.
pub(crate) struct Loaded {
    pub header: Header,
    pub data: VolumeData,
}

/// Reads header and (scaled) voxels.
pub(crate) fn load(path: &Path) -> Result<Loaded> {
    let header_path = header_file_for(path).unwrap_or_else(|| path.to_path_buf());
    let (mut hreader, hcompressed) = open_stream(&header_path)?;
    let header = read_header(&mut hreader, &header_path)?;
    let header_len = if header.version == Version::One { NIFTI1_HEADER } else { NIFTI2_HEADER } as u64;
    let (data_path, mut reader, compressed, skip_bytes) = if header.single_file {
        (header_path.clone(), hreader, hcompressed, header.vox_offset - header_len)
    } else {
        drop(hreader);
        let img = image_file_for(&header_path)?;
        let (r, c) = open_stream(&img)?;
        (img, r, c, header.vox_offset)
    };
    let n: usize = header.shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d)).ok_or_else(|| Error::Shape {
        message: format!("{}: shape {:?} is too large", header_path.display(), header.shape),
    })?;
    let nbytes = n.checked_mul(usize::from(header.bitpix.unsigned_abs()) / 8).ok_or_else(|| Error::Shape {
        message: format!("{}: shape {:?} is too large", header_path.display(), header.shape),
    })?;
    // Uncompressed: the file length bounds what can be read, check it before allocating.
    if !compressed {
        let len = std::fs::metadata(&data_path).map_err(|e| invalid(&data_path, e))?.len();
        let start = if header.single_file { header.vox_offset } else { skip_bytes };
        if len < start + nbytes as u64 {
            return Err(invalid(
                &data_path,
                format!(
                    "file is truncated: {len} bytes, but the header needs {} bytes of voxel data from offset {start}",
                    nbytes
                ),
            ));
        }
    }
    skip(&mut reader, skip_bytes, &data_path)?;
    let scaling = header.scaling(&header_path)?;
    let be = header.big_endian;
    let shape = header.shape.clone();
    macro_rules! read_as {
        ($t:ty) => {{
            let raw: Vec<$t> = read_samples(&mut reader, n, be, !compressed, &data_path)?;
            scale(raw, &shape, &[scaling])?
        }};
    }
    let data = match header.datatype {
        2 => read_as!(u8),
        4 => read_as!(i16),
        8 => read_as!(i32),
        16 => read_as!(f32),
        64 => read_as!(f64),
        256 => read_as!(i8),
        512 => read_as!(u16),
        768 => read_as!(u32),
        1024 => read_as!(i64),
        1280 => read_as!(u64),
        other => return Err(Error::UnsupportedDtype(format!("NIfTI datatype {other} in {}", header_path.display()))),
    };
    Ok(Loaded { header, data })
}

/// Name of the spatial unit in `xyzt_units` (low 3 bits), as the reference writes it.
fn spatial_units(xyzt_units: i32) -> &'static str {
    match xyzt_units & 0x07 {
        1 => "m",
        2 => "mm",
        3 => "um",
        _ => "unknown",
    }
}

/// See [`crate::imaging::read_nifti`].
pub(crate) fn read(path: &Path, target: Option<Target>) -> Result<ImageVolume> {
    let abs = std::path::absolute(path).map_err(|e| invalid(path, e))?;
    if !abs.exists() {
        return Err(Error::NotFound { uri: abs.display().to_string(), expected: "NIfTI file" });
    }
    let Loaded { header: h, data } = load(&abs)?;
    let (affine, header_source) = h.affine(&abs)?;
    let file_axcodes = axcodes(&affine);
    let source_path = abs.display().to_string();

    // Orientation of what is returned: the reference calls an identity affine "identity"
    // whatever the header codes say, and only header-derived orientations "header".
    let source = if is_identity(&affine) { OrientationSource::Identity } else { header_source };
    let confidence = if source == OrientationSource::Identity { Confidence::Unknown } else { Confidence::Header };
    let (data, final_affine, original_affine) = reorient_if(data, affine, &file_axcodes, target);
    let final_axcodes = axcodes(&final_affine);
    let orientation = OrientationInfo {
        is_canonical: final_axcodes == "RAS",
        axcodes: final_axcodes,
        affine: final_affine,
        confidence,
        source,
    };

    let mut volume_metadata = orientation.metadata(original_affine.as_ref());
    volume_metadata.extend([
        ("nifti_sform_code".to_owned(), h.sform_code.to_string()),
        ("nifti_qform_code".to_owned(), h.qform_code.to_string()),
        // The stored voxels are already scaled: record the identity scaling (as the reference
        // does), so that exporting the volume back to NIfTI does not scale twice.
        ("nifti_scl_slope".to_owned(), py_float_repr(1.0)),
        ("nifti_scl_inter".to_owned(), py_float_repr(0.0)),
        ("nifti_xyzt_units".to_owned(), h.xyzt_units.to_string()),
    ]);

    let mut dims: Vec<usize> = h.shape[..3].to_vec();
    if h.shape.len() == 4 && h.shape[3] > 1 {
        dims.push(h.shape[3]);
    }
    let slope = if h.scl_slope.is_nan() { 1.0 } else { h.scl_slope };
    let inter = if h.scl_inter.is_nan() { 0.0 } else { h.scl_inter };
    let obs = vec![
        ("series_type".to_owned(), ObsValue::Str(infer_series_type(&abs, None))),
        ("voxel_spacing".to_owned(), ObsValue::Str(py_float_tuple(&h.pixdim[1..4]))),
        ("dimensions".to_owned(), ObsValue::Str(py_int_tuple(&dims))),
        ("datatype".to_owned(), ObsValue::Int32(i32::from(h.datatype))),
        ("bitpix".to_owned(), ObsValue::Int32(i32::from(h.bitpix))),
        ("scl_slope".to_owned(), ObsValue::Float64(slope)),
        ("scl_inter".to_owned(), ObsValue::Float64(inter)),
        ("xyzt_units".to_owned(), ObsValue::Int32(h.xyzt_units)),
        ("spatial_units".to_owned(), ObsValue::Str(spatial_units(h.xyzt_units).to_owned())),
        ("qform_code".to_owned(), ObsValue::Int32(h.qform_code)),
        ("sform_code".to_owned(), ObsValue::Int32(h.sform_code)),
        ("axcodes".to_owned(), ObsValue::Str(file_axcodes)),
        ("affine_json".to_owned(), ObsValue::Str(affine_json(&affine))),
        ("orientation_source".to_owned(), ObsValue::Str(header_source.as_str().to_owned())),
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
        warnings: Vec::new(),
    })
}
