//! Image file readers: NIfTI (`.nii`, `.nii.gz`, `.hdr`/`.img`) and DICOM series, turned into
//! voxels plus the metadata the storage layer records. Pure Rust, no TileDB here.
//!
//! Every reader returns an [`ImageVolume`]:
//! * `data`: the voxels as a Fortran-order (column-major) array of shape `(x, y, z[, t])`: the
//!   axis order and values of nibabel's `np.asarray(img.dataobj)`, except that scaled data keep a
//!   compact dtype (see [`read_nifti`]);
//! * `affine`: voxel index → RAS+ millimetres, after reorientation when one was asked for;
//! * `volume_metadata`: the string metadata of a stored volume (reference §1.4), formatted as the
//!   Python reference formats it (`json.dumps`, `str(float)`), so either library reads the other's;
//! * `obs`: the typed obs columns of the reference's ingest (§1.5), in its order.
//!
//! ```no_run
//! use radiobject_core::imaging::{read_nifti, Target};
//! # fn main() -> radiobject_core::Result<()> {
//! let img = read_nifti("sub-01_T1w.nii.gz".as_ref(), Some(Target::Ras))?;
//! assert_eq!(img.orientation.axcodes, "RAS");
//! println!("{:?} {}", img.data.shape(), img.dtype());
//! # Ok(()) }
//! ```
//!
//! Obs values describe the **source file** (its header affine, axis codes and dimensions, as the
//! reference extracts them before any reorientation); `volume_metadata` and [`OrientationInfo`]
//! describe the **returned array**.

mod dicom;
pub mod format;
mod nifti;
mod orientation;
mod scaling;

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

pub use orientation::{Affine, Target, axcodes, axcodes_valid, reorient};

use crate::dtype::Datatype;
use crate::error::{Error, Result};
use crate::volume::VolumeData;

/// One obs cell, typed as the reference's obs schema types it.
#[derive(Debug, Clone, PartialEq)]
pub enum ObsValue {
    /// A string column (TileDB `STRING_UTF8`).
    Str(String),
    /// An `INT32` column.
    Int32(i32),
    /// A `FLOAT64` column (NaN where the reference has no value).
    Float64(f64),
}

/// Where an orientation came from (metadata value `orientation_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrientationSource {
    /// The NIfTI sform (`sform_code > 0`).
    NiftiSform,
    /// The NIfTI qform (`qform_code > 0`, no sform).
    NiftiQform,
    /// DICOM ImageOrientationPatient / ImagePositionPatient.
    DicomIop,
    /// No orientation in the header (or an identity affine).
    Identity,
}

impl OrientationSource {
    /// The metadata value: `nifti_sform`, `nifti_qform`, `dicom_iop` or `identity`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrientationSource::NiftiSform => "nifti_sform",
            OrientationSource::NiftiQform => "nifti_qform",
            OrientationSource::DicomIop => "dicom_iop",
            OrientationSource::Identity => "identity",
        }
    }
}

/// How far the orientation can be trusted (metadata value `orientation_confidence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Confidence {
    /// Read from header fields.
    Header,
    /// No usable header orientation.
    Unknown,
}

impl Confidence {
    /// The metadata value: `header` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Header => "header",
            Confidence::Unknown => "unknown",
        }
    }
}

/// Orientation of a returned array (the reference's `OrientationInfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct OrientationInfo {
    /// Axis codes, e.g. `"RAS"` (see [`axcodes`]).
    pub axcodes: String,
    /// Voxel → RAS+ mm affine.
    pub affine: Affine,
    /// Whether `axcodes` is `"RAS"`.
    pub is_canonical: bool,
    /// How far it can be trusted.
    pub confidence: Confidence,
    /// Where it came from. Reorientation keeps the source of the header it was derived from.
    pub source: OrientationSource,
}

impl OrientationInfo {
    /// The reference's `orientation_info_to_metadata`: `orientation_axcodes`,
    /// `orientation_affine` (JSON), `orientation_source`, `orientation_confidence`, and
    /// `original_affine` (JSON) when given.
    pub fn metadata(&self, original_affine: Option<&Affine>) -> Vec<(String, String)> {
        let mut m = vec![
            ("orientation_axcodes".to_owned(), self.axcodes.clone()),
            ("orientation_affine".to_owned(), format::affine_json(&self.affine)),
            ("orientation_source".to_owned(), self.source.as_str().to_owned()),
            ("orientation_confidence".to_owned(), self.confidence.as_str().to_owned()),
        ];
        if let Some(a) = original_affine {
            m.push(("original_affine".to_owned(), format::affine_json(a)));
        }
        m
    }
}

/// An image read from disk: voxels, geometry and the metadata the storage layer records.
#[derive(Debug, Clone)]
pub struct ImageVolume {
    /// Voxels, Fortran order, shape `(x, y, z[, t])`.
    pub data: VolumeData,
    /// Voxel → RAS+ mm, after reorientation if any.
    pub affine: Affine,
    /// The file's affine, when the data was reoriented.
    pub original_affine: Option<Affine>,
    /// Orientation of `data`.
    pub orientation: OrientationInfo,
    /// Volume array metadata (reference §1.4), every value a string, in the reference's order.
    /// Includes `original_affine` when reoriented; a writer configured with
    /// `store_original_affine = false` drops that key.
    pub volume_metadata: Vec<(String, String)>,
    /// Obs columns (reference §1.5) in the reference's order, describing the source file.
    pub obs: Vec<(String, ObsValue)>,
    /// Absolute path of the file (NIfTI) or directory/file (DICOM) read.
    pub source_path: String,
    /// Things that were read but look wrong (non-uniform DICOM slice spacing, skipped files...).
    pub warnings: Vec<String>,
}

/// Whether a writer records volume metadata `key` of an image: every key, except
/// `original_affine` when the configuration says not to store it.
pub fn records_metadata(key: &str, store_original_affine: bool) -> bool {
    store_original_affine || key != "original_affine"
}

impl ImageVolume {
    /// Element type of `data`.
    pub fn dtype(&self) -> Datatype {
        datatype_of(&self.data)
    }

    /// An obs value by column name.
    pub fn obs_value(&self, name: &str) -> Option<&ObsValue> {
        self.obs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A volume metadata value by key.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.volume_metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The element type of a [`VolumeData`].
pub fn datatype_of(data: &VolumeData) -> Datatype {
    match data {
        VolumeData::Int8(_) => Datatype::Int8,
        VolumeData::UInt8(_) => Datatype::UInt8,
        VolumeData::Int16(_) => Datatype::Int16,
        VolumeData::UInt16(_) => Datatype::UInt16,
        VolumeData::Int32(_) => Datatype::Int32,
        VolumeData::UInt32(_) => Datatype::UInt32,
        VolumeData::Int64(_) => Datatype::Int64,
        VolumeData::UInt64(_) => Datatype::UInt64,
        VolumeData::Float32(_) => Datatype::Float32,
        VolumeData::Float64(_) => Datatype::Float64,
    }
}

/// Reads a NIfTI-1 or NIfTI-2 image: `.nii`, `.nii.gz`, or a `.hdr`/`.img` pair (give either
/// file), little or big endian, 3D or 4D, of type (u)int8/16/32/64 or float32/64.
///
/// * **Voxels** equal nibabel's `np.asarray(img.dataobj)` (Fortran order, `(x, y, z[, t])`; a 4D
///   image with one time point stays 4D), except for the dtype of scaled data: `scl_slope` 0 or
///   NaN means no scaling; integer data with slope 1 and intercept 0 keeps its dtype; integral
///   slope and intercept whose results fit `int16` (else `int32`) give that type (a `uint16` CT
///   with intercept -1024 gives `int16` HU); anything else gives `float32` (`float64` for 32/64-bit
///   integer or `float64` input). nibabel gives `float64` for every scaled image.
/// * **Affine** equals nibabel's `img.affine`: sform if `sform_code > 0`, else qform if
///   `qform_code > 0`, else nibabel's base affine from `pixdim` (its orientation source is then
///   `identity`, confidence `unknown`, as in the reference).
/// * `reorient`: when given and the file's axis codes differ, the data is permuted/flipped to the
///   target (see [`reorient`]) and `original_affine` is set.
///
/// # Errors
/// [`Error::NotFound`] if `path` does not exist; [`Error::Invalid`] (naming the file and the
/// reason) for bad magic, truncated or corrupt files and invalid headers;
/// [`Error::UnsupportedDtype`] for RGB, complex, binary or float128 images; [`Error::Shape`] for
/// images that are not 3D or 4D.
pub fn read_nifti(path: &Path, reorient: Option<Target>) -> Result<ImageVolume> {
    crate::context::on_a_pool(|| nifti::read(path, reorient))
}

/// Reads a DICOM series: a directory of single-frame files of one series, or one (multi-frame)
/// file.
///
/// * **Layout**: `x` = column index, `y` = row index, `z` = slice, i.e. each frame's row-major
///   pixels are laid out x-fastest. Slices are ordered by ImagePositionPatient projected on the
///   slice normal (row cosines × column cosines), ascending, never by InstanceNumber or file
///   name; the slice spacing comes from those positions (median step), not SliceThickness.
/// * **Affine** (RAS): columns are the row direction × column spacing (PixelSpacing\[1\]), the
///   column direction × row spacing (PixelSpacing\[0\]) and the normal × slice spacing, the origin
///   is the first slice's ImagePositionPatient; x and y are negated (DICOM is LPS). Voxel
///   `(0, 0, 0)` thus maps to the first slice's position. Without ImageOrientationPatient the
///   affine is the identity (source `identity`), and slices keep InstanceNumber order.
/// * **Values**: RescaleSlope/RescaleIntercept are applied (CT in Hounsfield units) with the
///   dtype rule of [`read_nifti`]; without rescaling the stored type is kept.
/// * Multi-frame files: frame positions come from the per-frame functional groups, or from
///   GridFrameOffsetVector (RT dose); without either, frames keep file order.
///
/// Files in the directory without the DICOM `DICM` marker (and DICOMDIR indexes) are skipped
/// with a warning.
///
/// # Errors
/// [`Error::NotFound`] if `dir` does not exist; [`Error::Invalid`] (naming the file and reason)
/// for an empty directory, unreadable or pixel-less files, mixed series (several
/// SeriesInstanceUIDs, orientations, or image sizes), duplicate slice positions, colour images
/// or unsupported pixel encodings.
pub fn read_dicom_series(dir: &Path, reorient: Option<Target>) -> Result<ImageVolume> {
    crate::context::on_a_pool(|| dicom::read(dir, reorient))
}

/// Reorients when `target` is given and differs from `codes`; returns the original affine when
/// the data changed.
pub(crate) fn reorient_if(
    data: VolumeData,
    affine: Affine,
    codes: &str,
    target: Option<Target>,
) -> (VolumeData, Affine, Option<Affine>) {
    match target {
        Some(t) if codes != t.as_str() => {
            let (d, a) = reorient(data, affine, t);
            let original = (a != affine).then_some(affine);
            (d, a, original)
        }
        _ => (data, affine, None),
    }
}

/// BIDS-aligned series types the reference knows (`KNOWN_SERIES_TYPES`).
pub const KNOWN_SERIES_TYPES: [&str; 27] = [
    "T1w",
    "T2w",
    "T1rho",
    "T1map",
    "T2map",
    "T2star",
    "FLAIR",
    "FLASH",
    "PD",
    "PDmap",
    "PDT2",
    "inplaneT1",
    "inplaneT2",
    "angio",
    "T1gd",
    "bold",
    "cbv",
    "phase",
    "dwi",
    "CT",
    "HRCT",
    "CTA",
    "CTPA",
    "phasediff",
    "magnitude",
    "fieldmap",
    "epi",
];

/// Filename patterns, most specific first (the reference's `_FILENAME_PATTERNS`).
const FILENAME_PATTERNS: [(&str, &str); 20] = [
    ("T1GD", "T1gd"),
    ("T1CE", "T1gd"),
    ("T1C", "T1gd"),
    ("T1W", "T1w"),
    ("T1", "T1w"),
    ("T2W", "T2w"),
    ("T2", "T2w"),
    ("FLAIR", "FLAIR"),
    ("DWI", "dwi"),
    ("DTI", "dwi"),
    ("BOLD", "bold"),
    ("FUNC", "bold"),
    ("LUNG_", "CT"),
    ("LIVER_", "CT"),
    ("COLON_", "CT"),
    ("PANCREAS_", "CT"),
    ("SPLEEN_", "CT"),
    ("HEPATIC", "CT"),
    ("_CT_", "CT"),
    ("_CT.", "CT"),
];

/// Infers a series type from a file name, as the reference's `infer_series_type`:
/// 1. the BIDS suffix (last `_` part of the name without `.nii`/`.nii.gz`) if it is a known type
///    (case-insensitive): `sub-01_ses-01_T1w.nii.gz` → `T1w`;
/// 2. filename patterns, most specific first: `T1_MPRAGE.nii.gz` → `T1w`, `BraTS_t1ce` → `T1gd`,
///    `liver_3.nii.gz` → `CT`;
/// 3. a known type contained in the header description `descrip` (case-insensitive). The
///    reference iterates a Python set here, whose order varies between runs; this tries longer
///    names first (`phasediff` before `phase`, `CTPA` before `CT`), then the list order;
/// 4. `"unknown"`.
///
/// Like the reference's ingest, [`read_nifti`] does not pass the header description.
pub fn infer_series_type(path: &Path, descrip: Option<&str>) -> String {
    // Path.stem, then without a trailing ".nii".
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = stem.strip_suffix(".nii").unwrap_or(&stem);
    let suffix = name.rsplit('_').next().unwrap_or(name);
    if let Some(known) = KNOWN_SERIES_TYPES.iter().find(|k| k.eq_ignore_ascii_case(suffix)) {
        return (*known).to_owned();
    }
    let upper = name.to_uppercase();
    if let Some((_, series)) = FILENAME_PATTERNS.iter().find(|(p, _)| upper.contains(p)) {
        return (*series).to_owned();
    }
    if let Some(descrip) = descrip {
        let lower = descrip.to_lowercase();
        let mut known: Vec<&str> = KNOWN_SERIES_TYPES.to_vec();
        known.sort_by_key(|k| std::cmp::Reverse(k.len()));
        if let Some(k) = known.iter().find(|k| lower.contains(&k.to_lowercase())) {
            return (*k).to_owned();
        }
    }
    "unknown".to_owned()
}

/// SHA-256 of a file's bytes, as lowercase hex, read in 1 MiB blocks.
///
/// # Errors
/// [`Error::NotFound`] if `path` does not exist, [`Error::Invalid`] if it cannot be read.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound { uri: path.display().to_string(), expected: "file" }
        } else {
            Error::Invalid(format!("cannot read {}: {e}", path.display()))
        }
    })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_types_like_the_reference() {
        let t = |p: &str| infer_series_type(Path::new(p), None);
        assert_eq!(t("/d/sub-01_ses-01_T1w.nii.gz"), "T1w");
        assert_eq!(t("sub-01_flair.nii"), "FLAIR");
        assert_eq!(t("BraTS2021_00000_t1ce.nii.gz"), "T1gd");
        assert_eq!(t("T1_MPRAGE.nii.gz"), "T1w");
        assert_eq!(t("liver_3.nii.gz"), "CT");
        assert_eq!(t("anatomical.nii"), "unknown");
        assert_eq!(infer_series_type(Path::new("x.nii"), Some("FSL phasediff map")), "phasediff");
        assert_eq!(infer_series_type(Path::new("x.nii"), Some("nothing here")), "unknown");
    }

    #[test]
    fn sha256_of_a_small_file() {
        let dir = std::env::temp_dir().join(format!("radiobject-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("abc.txt");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(file_sha256(&p).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(file_sha256(&p), Err(Error::NotFound { .. })));
    }
}
