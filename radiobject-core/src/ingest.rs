//! Ingest: NIfTI files and DICOM series into a dataset, in parallel and resumably.
//!
//! A dataset built by ingest carries a **manifest** (`<root>/manifest`, a dataframe) with one row
//! per ingested source: `(collection, source)` → size, sha256, obs_id, shape, dtype, voxel
//! checksum and the volume's obs row. Each volume carries its own row too, as the metadata key
//! `ingest_record` (JSON), committed when the volume's array is closed, after its voxels: a volume
//! with that key is finished. The manifest rows of a run are written once per collection, after
//! its volumes (one fragment, not one per volume), so the ledger of finished work is the manifest
//! plus the `ingest_record` of volumes a killed run wrote but did not yet list:
//!
//! * run again after a crash (even SIGKILL), ingest recovers the rows of finished volumes from
//!   their `ingest_record`, skips every source whose row matches (same size and checksum), removes
//!   half-written volumes of the others and writes them again, then registers everything: every
//!   volume exactly once, none rewritten;
//! * volume positions are deterministic (the sorted order of the sources of each collection), so a
//!   resumed run writes each source where the first run would have;
//! * registration (obs rows, volume members, counts, obs_meta) happens once per collection at the
//!   end, through the same writers as everything else.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::cancel::Checkpoint;
use crate::collection::{Cell, CollectionWriter, VolumeCollection, numbered_dirs};
use crate::context::Context;
use crate::dataframe::{Column, ColumnType, Dataframe, Frame, Values};
use crate::dataset::{COLLECTIONS, Dataset, DatasetWriter, OBS_META};
use crate::error::{Error, Result};
use crate::group::{GroupUpdate, create_group, join, read_group, update_group};
use crate::imaging::{self, ImageVolume, ObsValue, Target};
use crate::lock::{WriteLock, format_age};
use crate::metadata::MetaValue;
use crate::volume::{VolumeData, contiguous_bytes, voxel_checksum, write_new_volume};

/// Member name of the ingest manifest.
pub const MANIFEST: &str = "manifest";

/// `"RAS"`, `"LAS"` or `"LPS"` (case-insensitive) as a reorientation target.
pub fn parse_target(s: &str) -> Option<Target> {
    s.parse().ok()
}

/// The orientation to reorient images to: `choice` None follows `orientation`
/// (`canonical_target` when `reorient_on_load`), `Some(true)` its `canonical_target`,
/// `Some(false)` none.
pub fn reorient_target(orientation: &crate::config::OrientationConfig, choice: Option<bool>) -> Option<Target> {
    if choice.unwrap_or(orientation.reorient_on_load) { parse_target(&orientation.canonical_target) } else { None }
}

/// Image file formats ingest reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// NIfTI-1/2 (`.nii`, `.nii.gz`).
    Nifti,
    /// A DICOM series (a directory of slices, or one multi-frame file).
    Dicom,
}

impl ImageFormat {
    /// `"nifti"` or `"dicom"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Nifti => "nifti",
            ImageFormat::Dicom => "dicom",
        }
    }
}

/// One image to ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// File (NIfTI) or directory (DICOM series).
    pub path: PathBuf,
    /// Subject the image belongs to.
    pub subject_id: String,
}

/// The images of one collection.
#[derive(Debug, Clone)]
pub struct CollectionSpec {
    /// Collection name.
    pub name: String,
    /// Its sources.
    pub sources: Vec<Source>,
    /// Their format.
    pub format: ImageFormat,
}

/// A progress callback: `(collection, done, total)` after each finished volume.
pub type ProgressFn = Box<dyn Fn(&str, usize, usize) + Send + Sync>;

/// Options of an ingest run.
#[derive(Default)]
pub struct IngestOptions {
    /// Reorient every volume to this orientation (the original affine is kept in metadata when
    /// `store_original_affine`).
    pub reorient: Option<Target>,
    /// Keep `original_affine` metadata when reorienting.
    pub store_original_affine: bool,
    /// Subject-level rows for `obs_meta` (an `obs_subject_id` text column plus any columns).
    pub obs_meta: Option<Frame>,
    /// Require every collection to cover the same subjects.
    pub validate_alignment: bool,
    /// Parallel image reads/writes (default: `ReadConfig.max_workers`).
    pub max_workers: Option<usize>,
    /// Called after each finished volume with `(collection, done, total)`; `done` only grows.
    pub progress: Option<ProgressFn>,
    /// Store a source whose content (sha256) the collection already holds from another path (a
    /// moved or copied folder). By default it is skipped with a warning.
    pub allow_duplicate_content: bool,
    /// How long to wait for another writer of the dataset to finish (default: fail at once with
    /// [`Error::Locked`]).
    pub lock_wait: Option<std::time::Duration>,
}

impl IngestOptions {
    /// Options following a configuration: reorientation per `write.orientation`
    /// (`reorient_on_load`, `canonical_target`, `store_original_affine`), workers per
    /// `read.max_workers`.
    pub fn from_config(config: &crate::config::RadiObjectConfig) -> IngestOptions {
        let o = &config.write.orientation;
        IngestOptions {
            reorient: reorient_target(o, None),
            store_original_affine: o.store_original_affine,
            max_workers: Some(config.read.max_workers as usize),
            ..Default::default()
        }
    }
}

impl std::fmt::Debug for IngestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestOptions")
            .field("reorient", &self.reorient)
            .field("validate_alignment", &self.validate_alignment)
            .field("max_workers", &self.max_workers)
            .field("allow_duplicate_content", &self.allow_duplicate_content)
            .field("lock_wait", &self.lock_wait)
            .finish()
    }
}

/// What an ingest run did.
#[derive(Debug, Clone)]
pub struct IngestReport {
    /// Volumes written by this run.
    pub written: usize,
    /// Sources skipped because a previous run finished them.
    pub skipped: usize,
    /// Half-written volumes of an interrupted run that were removed and written again.
    pub repaired: usize,
    /// Sources not stored because the collection already holds their content (see
    /// [`IngestOptions::allow_duplicate_content`]); each has a warning.
    pub duplicates: usize,
    /// Warnings from the image readers (path: message).
    pub warnings: Vec<String>,
    /// The finished dataset.
    pub dataset: Dataset,
}

// -------------------------------------------------------------------------------------------
// Source discovery
// -------------------------------------------------------------------------------------------

fn is_nifti(p: &Path) -> bool {
    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
    n.ends_with(".nii") || n.ends_with(".nii.gz") || n.ends_with(".hdr")
}

/// The subject id of a NIfTI path: its file name without `.nii`/`.nii.gz` (as the reference).
pub fn nifti_subject_id(p: &Path) -> String {
    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let lower = n.to_ascii_lowercase();
    let cut = if lower.ends_with(".nii.gz") {
        n.len() - 7
    } else if lower.ends_with(".nii") || lower.ends_with(".hdr") {
        n.len() - 4
    } else {
        n.len()
    };
    n[..cut].to_owned()
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Invalid(format!("cannot list {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.file_name().and_then(|n| n.to_str()).unwrap_or(".").starts_with('.'))
        .collect();
    v.sort();
    Ok(v)
}

/// Finds the images of `spec`: a glob (`imagesTr/*.nii.gz`), a directory of NIfTI files, or a
/// directory whose subdirectories each hold one DICOM series (subject id = subdirectory name).
/// `format` forces the format; otherwise it is detected as the reference does.
pub fn discover(spec: &str, format: Option<ImageFormat>) -> Result<(ImageFormat, Vec<Source>)> {
    let path = Path::new(spec);
    let has_glob = spec.contains(['*', '?', '[']);
    let files: Vec<PathBuf> = if has_glob {
        let mut v: Vec<PathBuf> = glob::glob(spec)
            .map_err(|e| Error::Invalid(format!("bad pattern {spec:?}: {e}")))?
            .filter_map(std::result::Result::ok)
            .collect();
        v.sort();
        v
    } else if path.is_dir() {
        sorted_entries(path)?
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        return Err(Error::NotFound { uri: spec.to_owned(), expected: "image file, directory or glob" });
    };
    let niftis: Vec<&PathBuf> = files.iter().filter(|p| p.is_file() && is_nifti(p)).collect();
    let dirs: Vec<&PathBuf> = files.iter().filter(|p| p.is_dir()).collect();
    let detected = match format {
        Some(f) => f,
        None if !niftis.is_empty() => ImageFormat::Nifti,
        None if !dirs.is_empty() => ImageFormat::Dicom,
        None if !has_glob && path.is_file() => ImageFormat::Dicom,
        // a directory of plain files that are not NIfTI: one DICOM series
        None if !has_glob && path.is_dir() && files.iter().any(|p| p.is_file()) => ImageFormat::Dicom,
        None => {
            return Err(Error::Invalid(format!(
                "{spec}: found neither NIfTI files (.nii, .nii.gz) nor DICOM series directories"
            )));
        }
    };
    let sources = match detected {
        ImageFormat::Nifti => {
            niftis.into_iter().map(|p| Source { subject_id: nifti_subject_id(p), path: p.clone() }).collect()
        }
        ImageFormat::Dicom if dirs.is_empty() && path.is_dir() && !has_glob => {
            // a single series directory
            vec![Source { subject_id: dir_name(path), path: path.to_path_buf() }]
        }
        ImageFormat::Dicom => {
            let mut v: Vec<Source> =
                dirs.into_iter().map(|p| Source { subject_id: dir_name(p), path: p.clone() }).collect();
            if v.is_empty() {
                v = files
                    .iter()
                    .filter(|p| p.is_file())
                    .map(|p| Source { subject_id: dir_name(p), path: p.clone() })
                    .collect();
            }
            v
        }
    };
    if sources.is_empty() {
        return Err(Error::Invalid(format!("{spec}: no {} images found", detected.as_str())));
    }
    Ok((detected, sources))
}

/// Sources given as a list: each a path with its subject id, or a path alone, named as
/// [`discover`] names it (a NIfTI file by its name without `.nii[.gz]`, a DICOM series by its
/// directory's name). The format is `format`, else NIfTI when the first path is a NIfTI file.
pub fn sources_of(
    items: &[(PathBuf, Option<String>)],
    format: Option<ImageFormat>,
) -> Result<(ImageFormat, Vec<Source>)> {
    let Some((first, _)) = items.first() else {
        return Err(Error::Invalid("no images given".into()));
    };
    let fmt = format.unwrap_or(if is_nifti(first) { ImageFormat::Nifti } else { ImageFormat::Dicom });
    let sources = items
        .iter()
        .map(|(path, sid)| Source {
            subject_id: sid
                .clone()
                .unwrap_or_else(|| if is_nifti(path) { nifti_subject_id(path) } else { dir_name(path) }),
            path: path.clone(),
        })
        .collect();
    Ok((fmt, sources))
}

fn dir_name(p: &Path) -> String {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned()
}

// -------------------------------------------------------------------------------------------
// Checksums and manifest rows
// -------------------------------------------------------------------------------------------

/// `(size, newest modification time in ns)` of a source file or directory, without reading it.
pub fn source_stat(path: &Path) -> Result<(u64, i64)> {
    let io = |e: std::io::Error| Error::Invalid(format!("cannot stat {}: {e}", path.display()));
    let one = |p: &Path| -> Result<(u64, i64)> {
        let m = std::fs::metadata(p).map_err(io)?;
        let t = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Ok((m.len(), t))
    };
    if path.is_dir() {
        let (mut size, mut newest) = (0u64, 0i64);
        for p in sorted_entries(path)? {
            if p.is_file() {
                let (n, t) = one(&p)?;
                size += n;
                newest = newest.max(t);
            }
        }
        Ok((size, newest))
    } else {
        one(path)
    }
}

/// `(size, sha256 hex)` of a source file, or of a directory (every file, sorted by name, hashed
/// with its name).
pub fn source_fingerprint(path: &Path) -> Result<(u64, String)> {
    let io = |e: std::io::Error| Error::Invalid(format!("cannot read {}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut feed = |p: &Path, h: &mut Sha256| -> Result<()> {
        let mut f = std::fs::File::open(p).map_err(io)?;
        loop {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                return Ok(());
            }
            size += n as u64;
            h.update(&buf[..n]);
        }
    };
    if path.is_dir() {
        for p in sorted_entries(path)? {
            if p.is_file() {
                h.update(dir_name(&p).as_bytes());
                h.update([0u8]);
                feed(&p, &mut h)?;
            }
        }
    } else {
        feed(path, &mut h)?;
    }
    let digest = h.finalize();
    Ok((size, digest.iter().map(|b| format!("{b:02x}")).collect()))
}

fn obs_json(subject: &str, obs_id: &str, obs: &[(String, ObsValue)]) -> String {
    let mut cols =
        vec![serde_json::json!(["obs_subject_id", "str", subject]), serde_json::json!(["obs_id", "str", obs_id])];
    for (k, v) in obs {
        cols.push(match v {
            ObsValue::Str(s) => serde_json::json!([k, "str", s]),
            ObsValue::Int32(i) => serde_json::json!([k, "int32", i]),
            ObsValue::Float64(x) if x.is_finite() => serde_json::json!([k, "float64", x]),
            ObsValue::Float64(x) => serde_json::json!([k, "float64", x.to_string()]),
        });
    }
    serde_json::Value::Array(cols).to_string()
}

fn obs_row_from_json(json: &str) -> Result<Frame> {
    let bad = || Error::Invalid(format!("corrupt obs record in the ingest manifest: {json}"));
    let v: serde_json::Value = serde_json::from_str(json).map_err(|_| bad())?;
    let mut columns = Vec::new();
    for item in v.as_array().ok_or_else(bad)? {
        let a = item.as_array().ok_or_else(bad)?;
        let (name, kind) = (a[0].as_str().ok_or_else(bad)?, a[1].as_str().ok_or_else(bad)?);
        let values = match kind {
            "str" => Values::Str(vec![a[2].as_str().ok_or_else(bad)?.to_owned()]),
            "int32" => Values::int32(vec![a[2].as_i64().and_then(|x| i32::try_from(x).ok()).ok_or_else(bad)?]),
            "float64" => Values::float64(vec![match &a[2] {
                serde_json::Value::String(s) => s.parse::<f64>().map_err(|_| bad())?,
                x => x.as_f64().ok_or_else(bad)?,
            }]),
            _ => return Err(bad()),
        };
        columns.push(Column::new(name, values));
    }
    Ok(Frame { columns })
}

/// One row of the manifest.
#[derive(Debug, Clone)]
struct ManifestRow {
    size: u64,
    mtime_ns: Option<i64>,
    sha256: String,
    obs_id: String,
    /// Where the volume was written before registration; -1 for a dropped source.
    position: i64,
    shape: Vec<u64>,
    obs: String,
}

impl ManifestRow {
    fn dropped(&self) -> bool {
        self.position < 0
    }
}

/// Volume metadata key holding the volume's manifest row as JSON (see the module docs).
pub const INGEST_RECORD: &str = "ingest_record";

/// A full manifest row, as written to the manifest and to the volume's `ingest_record`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct LedgerRow {
    collection: String,
    source: String,
    size: u64,
    mtime_ns: i64,
    sha256: String,
    obs_id: String,
    obs_subject_id: String,
    position: u64,
    shape: Vec<u64>,
    dtype: String,
    voxel_checksum: String,
    format: String,
    obs: String,
}

impl LedgerRow {
    fn manifest_row(&self) -> ManifestRow {
        ManifestRow {
            size: self.size,
            mtime_ns: Some(self.mtime_ns),
            sha256: self.sha256.clone(),
            obs_id: self.obs_id.clone(),
            position: self.position as i64,
            shape: self.shape.clone(),
            obs: self.obs.clone(),
        }
    }

    /// The rows as one manifest frame.
    fn frame(rows: &[LedgerRow]) -> Frame {
        let s = |f: fn(&LedgerRow) -> String| Values::Str(rows.iter().map(f).collect());
        let i = |f: fn(&LedgerRow) -> i64| Values::int64(rows.iter().map(f).collect());
        Frame {
            columns: vec![
                Column::new("collection", s(|r| r.collection.clone())),
                Column::new("source", s(|r| r.source.clone())),
                Column::new("size", i(|r| r.size as i64)),
                Column::new("mtime_ns", i(|r| r.mtime_ns)),
                Column::new("sha256", s(|r| r.sha256.clone())),
                Column::new("obs_id", s(|r| r.obs_id.clone())),
                Column::new("obs_subject_id", s(|r| r.obs_subject_id.clone())),
                Column::new("position", i(|r| r.position as i64)),
                Column::new("shape", s(|r| serde_json::to_string(&r.shape).unwrap_or_default())),
                Column::new("dtype", s(|r| r.dtype.clone())),
                Column::new("voxel_checksum", s(|r| r.voxel_checksum.clone())),
                Column::new("format", s(|r| r.format.clone())),
                Column::new("obs", s(|r| r.obs.clone())),
            ],
        }
    }
}

/// Rows of finished volumes under `volumes/` that a killed run wrote but never listed in the
/// manifest, from their `ingest_record`. Directories without one are half-written; they are left
/// for the run to remove and rewrite.
fn recover_ledger(ctx: &Context, vbase: &str, registered: &[String], collection: &str) -> Result<Vec<LedgerRow>> {
    let registered: HashSet<&str> = registered.iter().map(String::as_str).collect();
    let mut rows = Vec::new();
    for name in numbered_dirs(&ctx.vfs()?.ls(vbase).unwrap_or_default()) {
        if registered.contains(name.as_str()) {
            continue;
        }
        let uri = join(vbase, &name);
        if ctx.object_kind(&uri)? != Some(crate::context::ObjectKind::Array) {
            continue;
        }
        let Ok(vol) = crate::volume::Volume::open(&uri, ctx) else { continue };
        let Ok(Some(MetaValue::Str(json))) = vol.metadata().map(|m| m.get(INGEST_RECORD).cloned()) else { continue };
        let row: LedgerRow = serde_json::from_str(&json)
            .map_err(|e| Error::Invalid(format!("{uri}: corrupt {INGEST_RECORD} metadata: {e}")))?;
        // a record that could not be registered is treated as half-written (removed, redone)
        let sound = crate::dataset::check_subject_id(&row.obs_subject_id).is_ok() && !row.obs_id.is_empty();
        if sound && row.collection == collection && row.position.to_string() == name {
            rows.push(row);
        }
    }
    Ok(rows)
}

const MANIFEST_INDEX: [&str; 2] = ["collection", "source"];

fn manifest_schema() -> Vec<(String, ColumnType)> {
    use crate::dtype::Datatype;
    let int = ColumnType { datatype: Datatype::Int64, var: false };
    vec![
        ("size".into(), int),
        ("mtime_ns".into(), int),
        ("sha256".into(), ColumnType::STR),
        ("obs_id".into(), ColumnType::STR),
        ("obs_subject_id".into(), ColumnType::STR),
        ("position".into(), int),
        ("shape".into(), ColumnType::STR),
        ("dtype".into(), ColumnType::STR),
        ("voxel_checksum".into(), ColumnType::STR),
        ("format".into(), ColumnType::STR),
        ("obs".into(), ColumnType::STR),
    ]
}

fn changed(path: &Path, obs_id: &str) -> Error {
    Error::Invalid(format!(
        "{} changed since an earlier run ingested it as {obs_id} (size/sha256 differ); remove it from \
         the dataset or restore the file",
        path.display()
    ))
}

/// Reads the manifest of a dataset: `(collection, source) -> row`.
fn read_manifest(ctx: &Context, root: &str) -> Result<HashMap<(String, String), ManifestRow>> {
    let f = Dataframe::open(ctx, &join(root, MANIFEST))?.read(None)?;
    let col = |n: &str| f.column(n).ok_or_else(|| Error::Invalid(format!("{root}: manifest lacks column {n}")));
    let (coll, src, size, sha, obs_id, pos, shape, obs) = (
        col("collection")?,
        col("source")?,
        col("size")?,
        col("sha256")?,
        col("obs_id")?,
        col("position")?,
        col("shape")?,
        col("obs")?,
    );
    let subject = f.column("obs_subject_id");
    let mut out = HashMap::new();
    for i in 0..f.len() {
        let s = |c: &Column| c.str_at(i).unwrap_or_default().to_owned();
        // A row that cannot describe a finished volume (an empty subject or obs_id, written by an
        // older version) is ignored: its source counts as not ingested and is written again.
        let position = pos.values.get_i64(i).unwrap_or(-1);
        let bad_subject =
            subject.is_some_and(|c| crate::dataset::check_subject_id(c.str_at(i).unwrap_or_default()).is_err());
        if position >= 0 && (s(obs_id).is_empty() || bad_subject) {
            continue;
        }
        let shape_v: Vec<u64> = serde_json::from_str(&s(shape)).unwrap_or_default();
        let mtime = f.column("mtime_ns").filter(|c| !c.is_null(i)).and_then(|c| c.values.get_i64(i));
        out.insert(
            (s(coll), s(src)),
            ManifestRow {
                size: size.values.get_i64(i).unwrap_or(-1) as u64,
                mtime_ns: mtime,
                sha256: s(sha),
                obs_id: s(obs_id),
                position,
                shape: shape_v,
                obs: s(obs),
            },
        );
    }
    Ok(out)
}

/// The manifest rows of a dataset as a frame (for `verify` and `info`).
pub fn manifest_frame(ctx: &Context, root: &str) -> Result<Option<Frame>> {
    if ctx.object_kind(&join(root, MANIFEST))?.is_none() {
        return Ok(None);
    }
    Ok(Some(Dataframe::open(ctx, &join(root, MANIFEST))?.read(None)?))
}

// -------------------------------------------------------------------------------------------
// The run
// -------------------------------------------------------------------------------------------

/// Creates what is missing of a dataset skeleton with a manifest (idempotent), under `lock`.
fn ensure_dataset(ctx: &Context, root: &str, lock: &Arc<WriteLock>) -> Result<()> {
    if ctx.object_kind(root)?.is_none() {
        DatasetWriter::create_locked(ctx, root, &[], lock.clone())?.keep();
    }
    let info = read_group(ctx, root, "RadiObject")?;
    let mut update = GroupUpdate::default();
    if ctx.object_kind(&join(root, COLLECTIONS))?.is_none() {
        create_group(ctx, &join(root, COLLECTIONS))?;
    }
    if info.member(COLLECTIONS).is_none() {
        update.add.push((COLLECTIONS.into(), COLLECTIONS.into()));
    }
    if ctx.object_kind(&join(root, OBS_META))?.is_none() {
        Dataframe::create(
            ctx,
            &join(root, OBS_META),
            &["obs_subject_id", "obs_id"],
            &[("obs_ids".into(), ColumnType::STR)],
        )?;
    }
    if info.member(OBS_META).is_none() {
        update.add.push((OBS_META.into(), OBS_META.into()));
    }
    if ctx.object_kind(&join(root, MANIFEST))?.is_none() {
        Dataframe::create(ctx, &join(root, MANIFEST), &MANIFEST_INDEX, &manifest_schema())?;
    }
    if info.member(MANIFEST).is_none() {
        update.add.push((MANIFEST.into(), MANIFEST.into()));
    }
    update_group(ctx, root, &update)
}

/// A source with its place in the collection.
struct Planned {
    source: Source,
    key: String,
    obs_id: String,
    position: usize,
    /// Finished by an earlier run (its manifest row is complete); never rewritten.
    recorded: bool,
}

/// What to do for one collection.
struct Plan {
    /// Sources to register (written now or recorded earlier), not yet registered.
    todo: Vec<Planned>,
    /// Sources already registered by an earlier run.
    registered: Vec<(Source, String)>,
    /// Manifest rows of sources no longer given (dropped before registration).
    dropped: Vec<String>,
}

/// Assigns obs_ids (`{sid}_{collection}`, `_acq-{k}` for further images of a subject) and
/// positions: a source an earlier run finished keeps its position (it is never rewritten); new
/// sources take free positions in sorted order after the registered volumes. Registration later
/// renumbers into the sorted layout if needed.
fn plan(spec: &CollectionSpec, existing: &VolumeCollection, manifest: &HashMap<(String, String), ManifestRow>) -> Plan {
    let mut sources = spec.sources.clone();
    sources.sort_by(|a, b| {
        (a.subject_id.as_bytes(), a.path.as_os_str()).cmp(&(b.subject_id.as_bytes(), b.path.as_os_str()))
    });
    let registered_ids: HashSet<&str> = existing.obs_ids().iter().map(String::as_str).collect();
    let row = |key: &str| manifest.get(&(spec.name.clone(), key.to_owned())).filter(|r| !r.dropped());
    let mut used_ids: HashSet<String> = registered_ids.iter().map(|s| (*s).to_owned()).collect();
    for ((c, _), r) in manifest {
        if c == &spec.name && !r.dropped() {
            used_ids.insert(r.obs_id.clone());
        }
    }
    let mut todo = Vec::new();
    let mut registered = Vec::new();
    let mut given: HashSet<String> = HashSet::new();
    for s in sources {
        let key = source_key(&s.path);
        given.insert(key.clone());
        match row(&key) {
            Some(r) if registered_ids.contains(r.obs_id.as_str()) => registered.push((s, r.obs_id.clone())),
            Some(r) => {
                let pos = usize::try_from(r.position).unwrap_or(0);
                todo.push(Planned { source: s, key, obs_id: r.obs_id.clone(), position: pos, recorded: true });
            }
            None => {
                let base = format!("{}_{}", s.subject_id, spec.name);
                let mut id = base.clone();
                let mut k = 0;
                while used_ids.contains(&id) {
                    k += 1;
                    id = format!("{base}_acq-{k}");
                }
                used_ids.insert(id.clone());
                todo.push(Planned { source: s, key, obs_id: id, position: usize::MAX, recorded: false });
            }
        }
    }
    // free positions for new sources, in sorted order
    let mut taken: HashSet<usize> = existing.members().iter().filter_map(|m| m.parse().ok()).collect();
    taken.extend(todo.iter().filter(|p| p.recorded).map(|p| p.position));
    let mut next = existing.len();
    let mut fresh: Vec<usize> = (0..todo.len()).filter(|&i| !todo[i].recorded).collect();
    fresh.sort_by(|&a, &b| {
        (todo[a].source.subject_id.as_bytes(), todo[a].obs_id.as_bytes())
            .cmp(&(todo[b].source.subject_id.as_bytes(), todo[b].obs_id.as_bytes()))
    });
    for i in fresh {
        while taken.contains(&next) {
            next += 1;
        }
        todo[i].position = next;
        taken.insert(next);
    }
    let dropped = manifest
        .iter()
        .filter(|((c, key), r)| {
            c == &spec.name && !r.dropped() && !given.contains(key) && !registered_ids.contains(r.obs_id.as_str())
        })
        .map(|((_, key), _)| key.clone())
        .collect();
    Plan { todo, registered, dropped }
}

fn source_key(p: &Path) -> String {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).to_string_lossy().into_owned()
}

fn read_image(format: ImageFormat, path: &Path, reorient: Option<Target>) -> Result<ImageVolume> {
    match format {
        ImageFormat::Nifti => imaging::read_nifti(path, reorient),
        ImageFormat::Dicom => imaging::read_dicom_series(path, reorient),
    }
}

/// An image for [`write_images`].
#[derive(Debug, Clone)]
pub struct ImageItem {
    /// The NIfTI file or DICOM series.
    pub path: PathBuf,
    /// Its format.
    pub format: ImageFormat,
    /// The volume's obs_id.
    pub obs_id: String,
    /// Its subject.
    pub subject_id: String,
    /// Further obs columns; a name the reader fills itself is refused.
    pub attrs: Vec<(String, Cell)>,
}

/// The volume metadata of an image: its orientation keys, and `original_affine` when kept.
fn image_metadata(image: &ImageVolume, store_original_affine: bool) -> Vec<(String, MetaValue)> {
    image
        .volume_metadata
        .iter()
        .filter(|(n, _)| imaging::records_metadata(n, store_original_affine))
        .map(|(n, v)| (n.clone(), MetaValue::from(v.as_str())))
        .collect()
}

/// The stored type of an imaging obs column (as ingest stores it).
fn obs_column_type(v: &ObsValue) -> ColumnType {
    match v {
        ObsValue::Str(_) => ColumnType::STR,
        ObsValue::Int32(_) => ColumnType { datatype: crate::Datatype::Int32, var: false },
        ObsValue::Float64(_) => ColumnType { datatype: crate::Datatype::Float64, var: false },
    }
}

/// Reads `items` with the native readers on the writer's context pool, `ReadConfig.max_workers`
/// images at a time (memory stays bounded), and writes them in order through `writer` with the
/// obs columns and orientation metadata ingest records (`original_affine` only when
/// `store_original_affine`). `uniform`: every image must have the first one's spatial shape.
/// `progress(done, total)` follows each volume; Ctrl-C stops it between windows, keeping what the
/// writer holds (the writer decides what stays).
pub fn write_images(
    writer: &mut CollectionWriter,
    items: &[ImageItem],
    reorient: Option<Target>,
    store_original_affine: bool,
    uniform: bool,
    progress: &dyn Fn(usize, usize),
) -> Result<()> {
    use rayon::prelude::*;
    let ctx = writer.context().clone();
    let window = (ctx.config().read.max_workers as usize).max(1);
    let checkpoint = Checkpoint::new();
    let mut first: Option<(Vec<u64>, &Path)> = None;
    for (w, chunk) in items.chunks(window).enumerate() {
        checkpoint.check(|| format!("{} of {} images written", w * window, items.len()))?;
        let images: Vec<Result<ImageVolume>> =
            ctx.workers()?.install(|| chunk.par_iter().map(|it| read_image(it.format, &it.path, reorient)).collect());
        for (k, (item, image)) in chunk.iter().zip(images).enumerate() {
            let image = image?;
            let shape: Vec<u64> = image.data.shape().iter().take(3).map(|&n| n as u64).collect();
            match &first {
                None => first = Some((shape, &item.path)),
                Some((s, p)) if uniform && *s != shape => {
                    return Err(Error::shape(format!(
                        "Dimension mismatch: {} has spatial shape {shape:?}; {} has {s:?}",
                        item.path.display(),
                        p.display()
                    )));
                }
                Some(_) => {}
            }
            let typed: Vec<(String, ColumnType)> =
                image.obs.iter().map(|(n, v)| (n.clone(), obs_column_type(v))).collect();
            writer.declare_columns(&typed);
            let mut attrs: Vec<(String, Cell)> = image
                .obs
                .iter()
                .map(|(n, v)| {
                    let cell = match v {
                        ObsValue::Str(s) => Cell::Str(s.clone()),
                        ObsValue::Int32(i) => Cell::Int(i64::from(*i)),
                        ObsValue::Float64(x) => Cell::Float(*x),
                    };
                    (n.clone(), cell)
                })
                .collect();
            for (n, cell) in &item.attrs {
                if attrs.iter().any(|(m, _)| m == n) {
                    return Err(Error::Schema(format!("obs column {n:?} collides with an imaging obs column")));
                }
                attrs.push((n.clone(), cell.clone()));
            }
            let meta = image_metadata(&image, store_original_affine);
            writer.write_volume_data(&image.data, &item.obs_id, &item.subject_id, &attrs, &meta)?;
            progress(w * window + k + 1, items.len());
        }
    }
    Ok(())
}

/// Runs `f` on the voxel bytes of `data` (borrowed when contiguous), their layout and shape.
fn with_bytes<R>(data: &VolumeData, f: impl FnOnce(&[u8], crate::dtype::Layout, Vec<u64>) -> R) -> R {
    macro_rules! b {
        ($($v:ident),*) => {
            match data { $(VolumeData::$v(a) => {
                let view = a.view();
                let (bytes, layout) = contiguous_bytes(&view);
                f(&bytes, layout, a.shape().iter().map(|&n| n as u64).collect())
            })* }
        };
    }
    b!(Int8, UInt8, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float32, Float64)
}

/// Checks everything about the request that needs no storage, before anything is written: names,
/// subject ids, sources given twice, alignment, `obs_meta` rows.
fn check_request(collections: &[CollectionSpec], opts: &IngestOptions) -> Result<()> {
    if collections.is_empty() {
        return Err(Error::Invalid("nothing to ingest: no collections given".into()));
    }
    let mut names = HashSet::new();
    for c in collections {
        // A bad name could break the dataset or write outside it.
        crate::dataset::check_collection_name(&c.name)?;
        for src in &c.sources {
            crate::dataset::check_subject_id(&src.subject_id)?;
        }
        if !names.insert(c.name.as_str()) {
            return Err(Error::Invalid(format!("collection {:?} given twice", c.name)));
        }
        // One source, one volume: the same file (however it is spelled) given twice would be
        // written twice and then collide in the manifest.
        let mut seen: HashMap<String, &Source> = HashMap::new();
        for src in &c.sources {
            if let Some(first) = seen.insert(source_key(&src.path), src) {
                return Err(Error::Alignment(format!(
                    "collection {:?}: {} is given twice (for subject {:?} and {:?}); give each source once",
                    c.name,
                    src.path.display(),
                    first.subject_id,
                    src.subject_id
                )));
            }
        }
    }
    if opts.validate_alignment {
        let sets: Vec<std::collections::BTreeSet<&str>> =
            collections.iter().map(|c| c.sources.iter().map(|s| s.subject_id.as_str()).collect()).collect();
        if let Some((i, _)) = sets.iter().enumerate().find(|(_, s)| *s != &sets[0]) {
            return Err(Error::Alignment(format!(
                "collections {:?} and {:?} cover different subjects (validate_alignment)",
                collections[0].name, collections[i].name
            )));
        }
    }
    if let Some(meta) = &opts.obs_meta {
        crate::dataset::check_obs_meta(meta, &[])?;
        let given: HashSet<&str> = meta
            .column("obs_subject_id")
            .and_then(|c| c.values.as_str())
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
            .collect();
        let missing: std::collections::BTreeSet<&str> = collections
            .iter()
            .flat_map(|c| c.sources.iter().map(|s| s.subject_id.as_str()))
            .filter(|s| !given.contains(s))
            .collect();
        if !missing.is_empty() {
            let missing: Vec<&str> = missing.into_iter().collect();
            return Err(Error::Alignment(format!("obs_meta has no row for subject(s) {}", missing.join(", "))));
        }
    }
    Ok(())
}

/// Sources of `spec` whose content the collection already holds (a registered volume, or a
/// source of this run that sorts first) are taken out, each with a warning. Returns the sources to
/// ingest and the `(size, sha256)` of those new to the manifest (computed once, used again when
/// their volume is written).
#[allow(clippy::type_complexity)]
fn drop_duplicate_content(
    pool: &crate::parallel::Bounded<'_>,
    checkpoint: &Checkpoint,
    spec: &CollectionSpec,
    existing: &VolumeCollection,
    manifest: &HashMap<(String, String), ManifestRow>,
    allow: bool,
    warnings: &Mutex<Vec<String>>,
) -> Result<(CollectionSpec, HashMap<String, (u64, String)>, usize)> {
    let known = |key: &str| manifest.get(&(spec.name.clone(), key.to_owned())).is_some_and(|r| !r.dropped());
    let mut fresh: Vec<&Source> = spec.sources.iter().filter(|s| !known(&source_key(&s.path))).collect();
    fresh.sort_by(|a, b| (a.subject_id.as_bytes(), &a.path).cmp(&(b.subject_id.as_bytes(), &b.path)));
    let sums: Vec<(String, (u64, String))> = pool
        .map(&fresh, |s| {
            checkpoint.check(|| "ingest stopped while checksumming its sources; nothing was written".into())?;
            Ok((source_key(&s.path), source_fingerprint(&s.path)?))
        })?
        .into_iter()
        .collect::<Result<_>>()?;
    let sums: HashMap<String, (u64, String)> = sums.into_iter().collect();
    if allow {
        return Ok((spec.clone(), sums, 0));
    }
    // Content the collection holds: registered volumes, and sources of this run (given again).
    let given: HashSet<String> = spec.sources.iter().map(|s| source_key(&s.path)).collect();
    let registered: HashSet<&str> = existing.obs_ids().iter().map(String::as_str).collect();
    let mut held: HashMap<String, (String, String)> = HashMap::new(); // sha -> (source, obs_id)
    for ((c, key), r) in manifest {
        if c == &spec.name && !r.dropped() && (registered.contains(r.obs_id.as_str()) || given.contains(key)) {
            held.entry(r.sha256.clone()).or_insert_with(|| (key.clone(), r.obs_id.clone()));
        }
    }
    let mut skip: HashSet<String> = HashSet::new();
    for s in &fresh {
        let key = source_key(&s.path);
        let sha = &sums[&key].1;
        match held.get(sha) {
            Some((other, obs_id)) => {
                let what = if obs_id.is_empty() { String::new() } else { format!(" as {obs_id}") };
                warnings.lock().push(format!(
                    "{}: same content (sha256) as {other}, already ingested{what} into {:?}; skipped \
                     (allow_duplicate_content=True / --allow-duplicate-content stores it again)",
                    s.path.display(),
                    spec.name
                ));
                skip.insert(key);
            }
            None => {
                held.insert(sha.clone(), (key, String::new()));
            }
        }
    }
    let mut kept = spec.clone();
    kept.sources.retain(|s| !skip.contains(&source_key(&s.path)));
    Ok((kept, sums, skip.len()))
}

/// Ingests `collections` into the dataset at `uri` (created if missing, resumed if a previous run
/// was interrupted, extended with new sources otherwise).
///
/// The whole run holds the dataset's write lock ([`crate::lock`]): a concurrent writer is refused
/// (or waits, [`IngestOptions::lock_wait`]) before anything is written. The request is checked
/// before the lock is taken and before anything is written. A source that fails (or Ctrl-C,
/// [`Error::Interrupted`]) stops the run after the sources in flight; the volumes finished by then
/// are kept and recorded in the manifest, so a rerun resumes, and nothing is registered.
pub fn ingest(ctx: &Context, uri: &str, collections: &[CollectionSpec], opts: &IngestOptions) -> Result<IngestReport> {
    let checkpoint = Checkpoint::new();
    let ctx = ctx.for_current_process()?;
    let root = uri.trim_end_matches('/').to_owned();
    check_request(collections, opts)?;
    let lock = Arc::new(WriteLock::acquire(&ctx, &root, "ingest", opts.lock_wait)?);
    let warnings = Mutex::new(Vec::new());
    if let Some(old) = lock.broken() {
        warnings.lock().push(format!(
            "{root}: broke the stale write lock of {}, taken {} ago by a process that no longer exists",
            old.describe(),
            format_age(old.age())
        ));
    }
    // obs_meta columns must fit the stored ones: checked before anything is written
    if let Some(meta) = &opts.obs_meta
        && ctx.object_kind(&join(&root, OBS_META))?.is_some()
    {
        crate::dataset::check_obs_meta(meta, &Dataframe::open(&ctx, &join(&root, OBS_META))?.columns())?;
    }
    ensure_dataset(&ctx, &root, &lock)?;
    let write = ctx.config().write.clone();
    let mut manifest_rows = read_manifest(&ctx, &root)?;
    let mut manifest = Dataframe::open(&ctx, &join(&root, MANIFEST))?;
    let workers = opts.max_workers.unwrap_or(ctx.config().read.max_workers as usize).max(1);
    // The context's threads, at most `workers` of them busy with this ingest.
    let pool = crate::parallel::Bounded::new(&ctx, workers);
    let (mut written, mut repaired, mut duplicates) = (0usize, 0usize, 0usize);
    let all_sources: usize = collections.iter().map(|c| c.sources.len()).sum();
    // sources finished (now or by an earlier run), for the message of an interrupted run
    let mut finished = 0usize;
    let mut ready: Vec<(String, CollectionWriter)> = Vec::new();
    for spec in collections {
        let curi = join(&join(&root, COLLECTIONS), &spec.name);
        CollectionWriter::ensure_skeleton(&ctx, &curi, Some(&spec.name))?;
        let existing = VolumeCollection::open(&curi, &ctx)?;
        let vbase = join(&curi, crate::collection::VOLUMES);
        // Finished volumes of a killed run that the manifest does not list yet.
        let mut recovered = recover_ledger(&ctx, &vbase, existing.members(), &spec.name)?;
        recovered.retain(|r| !manifest_rows.contains_key(&(r.collection.clone(), r.source.clone())));
        for r in &recovered {
            manifest_rows.insert((r.collection.clone(), r.source.clone()), r.manifest_row());
        }
        let (spec_kept, sums, dups) = drop_duplicate_content(
            &pool,
            &checkpoint,
            spec,
            &existing,
            &manifest_rows,
            opts.allow_duplicate_content,
            &warnings,
        )?;
        duplicates += dups;
        let spec = &spec_kept;
        let Plan { todo: planned, registered, dropped } = plan(spec, &existing, &manifest_rows);
        // Registered sources must not have changed since they were ingested: compare size and
        // modification time, and the sha256 when those differ.
        pool.map(&registered, |(src, obs_id)| {
            let row = &manifest_rows[&(spec.name.clone(), source_key(&src.path))];
            let (size, mtime) = source_stat(&src.path)?;
            if size == row.size && row.mtime_ns.is_none_or(|t| t == mtime) {
                return Ok(());
            }
            let (size, sha) = source_fingerprint(&src.path)?;
            if size != row.size || sha != row.sha256 {
                return Err(changed(&src.path, obs_id));
            }
            Ok(())
        })?
        .into_iter()
        .collect::<Result<()>>()?;
        finished += registered.len();
        let total = planned.len();
        // the count and the callback under one lock: progress never goes backwards
        let done = Mutex::new(0usize);
        let tick = || {
            let mut n = done.lock();
            *n += 1;
            if let Some(cb) = &opts.progress {
                cb(&spec.name, *n, total);
            }
        };
        let ledger: Mutex<Vec<LedgerRow>> = Mutex::new(Vec::new());
        let results: Vec<Result<(bool, bool)>> = pool.map(&planned, |p| {
            checkpoint.check(String::new)?;
            let (size, mtime) = source_stat(&p.source.path)?;
            if p.recorded {
                let row = &manifest_rows[&(spec.name.clone(), p.key.clone())];
                if size != row.size || row.mtime_ns.is_some_and(|t| t != mtime) {
                    let (size, sha) = source_fingerprint(&p.source.path)?;
                    if size != row.size || sha != row.sha256 {
                        return Err(changed(&p.source.path, &p.obs_id));
                    }
                }
                tick();
                return Ok((false, false));
            }
            let sha = match sums.get(&p.key) {
                Some((_, sha)) => sha.clone(),
                None => source_fingerprint(&p.source.path)?.1,
            };
            let sha = &sha;
            let vuri = join(&vbase, &p.position.to_string());
            let was_partial = ctx.object_kind(&vuri)?.is_some() || ctx.vfs()?.is_dir(&vuri).unwrap_or(false);
            if was_partial {
                ctx.remove_uri(&vuri)?;
            }
            let image = read_image(spec.format, &p.source.path, opts.reorient)?;
            if !image.warnings.is_empty() {
                warnings.lock().extend(image.warnings.iter().cloned());
            }
            let record = with_bytes(&image.data, |bytes, layout, shape| -> Result<LedgerRow> {
                let checksum = voxel_checksum(bytes, layout);
                let record = LedgerRow {
                    collection: spec.name.clone(),
                    source: p.key.clone(),
                    size,
                    mtime_ns: mtime,
                    sha256: sha.clone(),
                    obs_id: p.obs_id.clone(),
                    obs_subject_id: p.source.subject_id.clone(),
                    position: p.position as u64,
                    shape: shape.to_vec(),
                    dtype: image.dtype().to_string(),
                    voxel_checksum: checksum.clone(),
                    format: spec.format.as_str().to_owned(),
                    obs: obs_json(&p.source.subject_id, &p.obs_id, &image.obs),
                };
                let json = serde_json::to_string(&record)
                    .map_err(|e| Error::Invalid(format!("cannot encode the ingest record: {e}")))?;
                let mut meta: Vec<(String, MetaValue)> = vec![
                    ("obs_id".into(), MetaValue::from(p.obs_id.as_str())),
                    ("voxel_checksum".into(), MetaValue::from(checksum.as_str())),
                    (INGEST_RECORD.into(), MetaValue::from(json.as_str())),
                ];
                meta.extend(image_metadata(&image, opts.store_original_affine));
                write_new_volume(&vuri, &shape, image.dtype(), &ctx, &write, &meta, Some((bytes, layout)))?;
                Ok(record)
            })?;
            drop(image);
            ledger.lock().push(record);
            tick();
            Ok((true, was_partial))
        })?;
        let mut failure: Option<Error> = None;
        let mut interrupted = false;
        for r in results {
            match r {
                Ok((w, partial)) => {
                    written += usize::from(w);
                    repaired += usize::from(partial);
                    finished += 1;
                }
                Err(Error::Interrupted(_)) => interrupted = true,
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        // The rows of the volumes finished now (and the recovered ones) go to the manifest in one
        // write, whatever happened to the other sources: a rerun skips them. Only finished
        // volumes have rows.
        let mut ledger = ledger.into_inner();
        ledger.extend(recovered.into_iter().filter(|r| !dropped.contains(&r.source)));
        ledger.sort_by_key(|r| r.position);
        if !ledger.is_empty() {
            manifest.write(&LedgerRow::frame(&ledger))?;
        }
        if interrupted {
            return Err(Error::Interrupted(format!(
                "{finished} of {} sources ingested; rerun to resume",
                all_sources - duplicates
            )));
        }
        if let Some(e) = failure {
            return Err(e);
        }
        for r in &ledger {
            manifest_rows.insert((r.collection.clone(), r.source.clone()), r.manifest_row());
        }
        let mut rows = Frame::default();
        let mut dirs = Vec::with_capacity(planned.len());
        let mut shapes = Vec::with_capacity(planned.len());
        for p in &planned {
            let r = manifest_rows.get(&(spec.name.clone(), p.key.clone())).ok_or_else(|| {
                Error::Invalid(format!("{}: finished volume missing from the manifest", p.source.path.display()))
            })?;
            rows.append(&obs_row_from_json(&r.obs)?)?;
            dirs.push(usize::try_from(r.position).map_err(|_| Error::Invalid("negative manifest position".into()))?);
            shapes.push(r.shape.clone());
        }
        // Directories under volumes/ that nothing will register (sources dropped from the list,
        // half-written leftovers) are removed; dropped sources are marked in the manifest.
        let keep: HashSet<String> =
            existing.members().iter().cloned().chain(dirs.iter().map(ToString::to_string)).collect();
        for name in numbered_dirs(&ctx.vfs()?.ls(&vbase).unwrap_or_default()) {
            if !keep.contains(&name) {
                ctx.remove_uri(&join(&vbase, &name))?;
            }
        }
        if !dropped.is_empty() {
            let n = dropped.len();
            manifest.write(&Frame {
                columns: vec![
                    Column::new("collection", Values::Str(vec![spec.name.clone(); n])),
                    Column::new("source", Values::Str(dropped)),
                    Column::new("position", Values::int64(vec![-1; n])),
                    Column::new("obs_id", Values::Str(vec![String::new(); n])),
                ],
            })?;
        }
        ready.push((spec.name.clone(), CollectionWriter::adopt(&existing, rows, dirs, shapes, &write)?));
    }
    // register collections, then obs_meta/obs_ids/counts
    let mut dw = DatasetWriter::extend_locked(&Dataset::open(&root, &ctx)?, lock.clone())?;
    for (_, w) in ready {
        dw.register(w)?;
    }
    if let Some(meta) = &opts.obs_meta {
        dw.write_obs_meta(meta.clone())?;
    }
    let dataset = dw.finish()?;
    manifest.consolidate()?;
    drop(lock);
    let skipped = all_sources - written - duplicates;
    Ok(IngestReport { written, skipped, repaired, duplicates, warnings: warnings.into_inner(), dataset })
}

/// Subject ids of every collection, for alignment reports.
pub fn subjects_by_collection(collections: &[CollectionSpec]) -> BTreeMap<String, Vec<String>> {
    collections.iter().map(|c| (c.name.clone(), c.sources.iter().map(|s| s.subject_id.clone()).collect())).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn listed_sources_are_named_as_discovery_names_them() {
        let items = vec![
            (PathBuf::from("/a/BraTS_001.nii.gz"), None),
            (PathBuf::from("/a/x.nii"), Some("given".to_owned())),
            (PathBuf::from("/dicom/sub-07"), None),
        ];
        let (fmt, s) = sources_of(&items, None).unwrap();
        assert_eq!(fmt, ImageFormat::Nifti);
        let ids: Vec<&str> = s.iter().map(|s| s.subject_id.as_str()).collect();
        assert_eq!(ids, ["BraTS_001", "given", "sub-07"]);
        assert_eq!(sources_of(&items[2..], None).unwrap().0, ImageFormat::Dicom);
        assert_eq!(sources_of(&items, Some(ImageFormat::Dicom)).unwrap().0, ImageFormat::Dicom);
        assert!(sources_of(&[], None).is_err());
    }

    #[test]
    fn subject_ids_from_nifti_names() {
        assert_eq!(nifti_subject_id(Path::new("/a/BraTS_001.nii.gz")), "BraTS_001");
        assert_eq!(nifti_subject_id(Path::new("sub-01_T1w.nii")), "sub-01_T1w");
        assert_eq!(nifti_subject_id(Path::new("x.NII.GZ")), "x");
    }

    #[test]
    fn obs_rows_survive_the_manifest() {
        let obs = vec![
            ("series_type".to_owned(), ObsValue::Str("T1w".into())),
            ("datatype".to_owned(), ObsValue::Int32(4)),
            ("kvp".to_owned(), ObsValue::Float64(f64::NAN)),
            ("scl_slope".to_owned(), ObsValue::Float64(1.0)),
        ];
        let f = obs_row_from_json(&obs_json("s1", "s1_T1w", &obs)).unwrap();
        assert_eq!(f.names(), vec!["obs_subject_id", "obs_id", "series_type", "datatype", "kvp", "scl_slope"]);
        assert!(f.column("kvp").unwrap().values.get_f64(0).unwrap().is_nan());
        assert_eq!(f.column("datatype").unwrap().values.get_i64(0), Some(4));
    }

    use crate::config::RadiObjectConfig;

    /// A NIfTI-1 file (`.nii`) of int16 voxels `0..n` plus `seed`, shape `dims`.
    pub(crate) fn write_nifti(path: &Path, dims: [i16; 3], seed: i16) {
        let mut h = vec![0u8; 352];
        h[0..4].copy_from_slice(&348i32.to_le_bytes());
        let dim: [i16; 8] = [3, dims[0], dims[1], dims[2], 1, 1, 1, 1];
        for (k, d) in dim.iter().enumerate() {
            h[40 + 2 * k..42 + 2 * k].copy_from_slice(&d.to_le_bytes());
        }
        h[70..72].copy_from_slice(&4i16.to_le_bytes()); // int16
        h[72..74].copy_from_slice(&16i16.to_le_bytes());
        for k in 0..8 {
            h[76 + 4 * k..80 + 4 * k].copy_from_slice(&1f32.to_le_bytes());
        }
        h[108..112].copy_from_slice(&352f32.to_le_bytes());
        h[344..348].copy_from_slice(b"n+1\0");
        let n = dims.iter().map(|&d| d as usize).product::<usize>();
        for v in 0..n {
            h.extend_from_slice(&((v as i16).wrapping_add(seed)).to_le_bytes());
        }
        std::fs::write(path, h).unwrap();
    }

    fn ctx() -> Context {
        Context::new(&RadiObjectConfig::default()).unwrap()
    }

    fn spec(name: &str, sources: &[(&Path, &str)]) -> CollectionSpec {
        CollectionSpec {
            name: name.into(),
            format: ImageFormat::Nifti,
            sources: sources.iter().map(|(p, s)| Source { path: p.to_path_buf(), subject_id: (*s).into() }).collect(),
        }
    }

    fn subjects_frame(ids: &[&str]) -> Frame {
        Frame {
            columns: vec![
                Column::new("obs_subject_id", Values::Str(ids.iter().map(|s| (*s).to_owned()).collect())),
                Column::new("age", Values::int64((0..ids.len() as i64).collect())),
            ],
        }
    }

    #[test]
    fn a_source_given_twice_is_refused_before_anything_is_written() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.nii");
        write_nifti(&a, [4, 4, 3], 0);
        let uri = d.path().join("ds");
        let uri = uri.to_str().unwrap();
        let again = d.path().join(".").join("a.nii"); // the same file, spelled otherwise
        let e =
            ingest(&ctx(), uri, &[spec("T1w", &[(&a, "a"), (&again, "b")])], &IngestOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Alignment(_)), "{e}");
        assert!(e.to_string().contains("is given twice"), "{e}");
        assert!(!Path::new(uri).exists(), "nothing may be written");
        // two different files of one subject are two acquisitions (documented: _acq-1)
        let b = d.path().join("b.nii");
        write_nifti(&b, [4, 4, 3], 1);
        let r = ingest(&ctx(), uri, &[spec("T1w", &[(&a, "a"), (&b, "a")])], &IngestOptions::default()).unwrap();
        assert_eq!(r.dataset.collection("T1w").unwrap().obs_ids(), ["a_T1w", "a_T1w_acq-1"]);
    }

    #[test]
    fn bad_obs_meta_is_refused_before_anything_is_written() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.nii");
        write_nifti(&a, [4, 4, 3], 0);
        let uri = d.path().join("ds");
        let uri = uri.to_str().unwrap();
        let c = ctx();
        let with = |f: Frame| IngestOptions { obs_meta: Some(f), ..Default::default() };
        let e = ingest(&c, uri, &[spec("T1w", &[(&a, "a")])], &with(subjects_frame(&["a", "a"]))).unwrap_err();
        assert!(matches!(e, Error::Alignment(_)) && e.to_string().contains("twice"), "{e}");
        assert!(!Path::new(uri).exists(), "nothing may be written");
        let no_ids = Frame { columns: vec![Column::new("age", Values::int64(vec![1]))] };
        let e = ingest(&c, uri, &[spec("T1w", &[(&a, "a")])], &with(no_ids)).unwrap_err();
        assert!(e.to_string().contains("needs an obs_subject_id column"), "{e}");
        // on an existing dataset: refused before registering anything, the dataset stays sound
        ingest(&c, uri, &[spec("T1w", &[(&a, "a")])], &with(subjects_frame(&["a"]))).unwrap();
        let b = d.path().join("b.nii");
        write_nifti(&b, [4, 4, 3], 1);
        let e = ingest(&c, uri, &[spec("T1w", &[(&a, "a"), (&b, "b")])], &with(subjects_frame(&["a", "b", "b"])))
            .unwrap_err();
        assert!(e.to_string().contains("\"b\" twice"), "{e}");
        let mistyped = Frame {
            columns: vec![
                Column::new("obs_subject_id", Values::Str(vec!["a".into(), "b".into()])),
                Column::new("age", Values::Str(vec!["x".into(), "y".into()])),
            ],
        };
        let e = ingest(&c, uri, &[spec("T1w", &[(&a, "a"), (&b, "b")])], &with(mistyped)).unwrap_err();
        assert!(e.to_string().contains("stored as"), "{e}");
        let v = crate::verify::verify(&c, uri, false).unwrap();
        assert!(v.ok(), "{v}");
        assert_eq!(v.volumes, 1);
    }

    #[test]
    fn the_same_content_from_another_path_is_skipped_unless_allowed() {
        let d = tempfile::tempdir().unwrap();
        let (old, moved) = (d.path().join("old"), d.path().join("moved"));
        std::fs::create_dir_all(&old).unwrap();
        for s in ["s1", "s2"] {
            write_nifti(&old.join(format!("{s}.nii")), [4, 4, 3], s.len() as i16 + s.as_bytes()[1] as i16);
        }
        let uri = d.path().join("ds");
        let uri = uri.to_str().unwrap();
        let c = ctx();
        let (_, sources) = discover(old.to_str().unwrap(), None).unwrap();
        let first = CollectionSpec { name: "T1w".into(), sources, format: ImageFormat::Nifti };
        ingest(&c, uri, std::slice::from_ref(&first), &IngestOptions::default()).unwrap();
        std::fs::rename(&old, &moved).unwrap();
        let (_, sources) = discover(moved.to_str().unwrap(), None).unwrap();
        let again = CollectionSpec { name: "T1w".into(), sources, format: ImageFormat::Nifti };
        let r = ingest(&c, uri, std::slice::from_ref(&again), &IngestOptions::default()).unwrap();
        assert_eq!((r.written, r.duplicates), (0, 2));
        assert!(r.warnings.iter().any(|w| w.contains("same content") && w.contains("as s1_T1w")), "{:?}", r.warnings);
        assert_eq!(r.dataset.collection("T1w").unwrap().obs_ids(), ["s1_T1w", "s2_T1w"]);
        assert!(crate::verify::verify(&c, uri, false).unwrap().ok());
        // explicitly allowed: stored again
        let opts = IngestOptions { allow_duplicate_content: true, ..Default::default() };
        let r = ingest(&c, uri, std::slice::from_ref(&again), &opts).unwrap();
        assert_eq!((r.written, r.duplicates), (2, 0));
        assert_eq!(r.dataset.collection("T1w").unwrap().len(), 4);
    }

    #[test]
    fn a_failed_source_keeps_the_finished_ones_in_the_manifest() {
        let d = tempfile::tempdir().unwrap();
        let (a, bad) = (d.path().join("a.nii"), d.path().join("bad.nii"));
        write_nifti(&a, [4, 4, 3], 0);
        std::fs::write(&bad, b"not a nifti file").unwrap();
        let uri = d.path().join("ds");
        let uri = uri.to_str().unwrap();
        let c = ctx();
        let opts = IngestOptions { max_workers: Some(1), ..Default::default() };
        assert!(ingest(&c, uri, &[spec("T1w", &[(&a, "a"), (&bad, "bad")])], &opts).is_err());
        // only the source that succeeded has a row
        let m = manifest_frame(&c, uri).unwrap().unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m.column("obs_subject_id").unwrap().str_at(0), Some("a"));
        // fixed, run again: the finished volume is not rewritten
        write_nifti(&bad, [4, 4, 3], 5);
        let r = ingest(&c, uri, &[spec("T1w", &[(&a, "a"), (&bad, "bad")])], &opts).unwrap();
        assert_eq!((r.written, r.skipped), (1, 1));
        assert!(crate::verify::verify(&c, uri, true).unwrap().ok());
    }

    #[test]
    fn a_manifest_row_without_a_subject_does_not_block_reruns() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.nii");
        write_nifti(&a, [4, 4, 3], 0);
        let uri = d.path().join("ds");
        let uri = uri.to_str().unwrap();
        let c = ctx();
        // what an older version recorded: a finished-looking row with an empty subject id
        let lock = Arc::new(WriteLock::acquire(&c, uri, "test", None).unwrap());
        ensure_dataset(&c, uri, &lock).unwrap();
        let row = LedgerRow {
            collection: "T1w".into(),
            source: source_key(&a),
            size: 0,
            mtime_ns: 0,
            sha256: "x".into(),
            obs_id: "_T1w".into(),
            obs_subject_id: String::new(),
            position: 0,
            shape: vec![4, 4, 3],
            dtype: "int16".into(),
            voxel_checksum: "x".into(),
            format: "nifti".into(),
            obs: obs_json("", "_T1w", &[]),
        };
        Dataframe::open(&c, &join(uri, MANIFEST)).unwrap().write(&LedgerRow::frame(&[row])).unwrap();
        drop(lock);
        let r = ingest(&c, uri, &[spec("T1w", &[(&a, "a")])], &IngestOptions::default()).unwrap();
        assert_eq!(r.written, 1);
        assert_eq!(r.dataset.collection("T1w").unwrap().obs_ids(), ["a_T1w"]);
        assert!(crate::verify::verify(&c, uri, false).unwrap().ok());
    }

    #[test]
    fn a_second_writer_is_refused_and_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.nii");
        write_nifti(&a, [4, 4, 3], 0);
        let uri = d.path().join("ds");
        let uri = uri.to_str().unwrap();
        let c = ctx();
        ingest(&c, uri, &[spec("T1w", &[(&a, "a")])], &IngestOptions::default()).unwrap();
        let held = WriteLock::acquire(&c, uri, "write", None).unwrap();
        let b = d.path().join("b.nii");
        write_nifti(&b, [4, 4, 3], 1);
        let e = ingest(&c, uri, &[spec("T1w", &[(&a, "a"), (&b, "b")])], &IngestOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Locked { .. }), "{e}");
        assert!(e.to_string().contains("write (pid"), "{e}");
        assert!(crate::dataset::DatasetWriter::extend(&Dataset::open(uri, &c).unwrap()).is_err());
        drop(held);
        let r = ingest(&c, uri, &[spec("T1w", &[(&a, "a"), (&b, "b")])], &IngestOptions::default()).unwrap();
        assert_eq!((r.written, r.skipped), (1, 1));
        assert!(crate::lock::lock_owner(&c, uri).unwrap().is_none(), "the lock is released");
    }

    /// Runs the ignored test `name` of this binary in a child process (a Ctrl-C is process-wide:
    /// it would stop the other tests running beside it).
    pub(crate) fn run_child(name: &str) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", name, "--nocapture", "--test-threads=1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    #[test]
    fn ctrl_c_keeps_and_records_the_finished_sources() {
        run_child("ingest::tests::ctrl_c_child");
    }

    #[test]
    #[ignore = "run by ctrl_c_keeps_and_records_the_finished_sources in a child process"]
    fn ctrl_c_child() {
        let d = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..4).map(|i| d.path().join(format!("s{i}.nii"))).collect();
        for (i, p) in paths.iter().enumerate() {
            write_nifti(p, [4, 4, 3], i as i16);
        }
        let sources: Vec<(&Path, &str)> =
            paths.iter().zip(["s0", "s1", "s2", "s3"]).map(|(p, s)| (p.as_path(), s)).collect();
        let uri = d.path().join("ds");
        let uri = uri.to_str().unwrap();
        let c = ctx();
        let opts = IngestOptions {
            max_workers: Some(1),
            // Ctrl-C once the first volume is done
            progress: Some(Box::new(|_, done, _| {
                if done == 1 {
                    crate::cancel::interrupt();
                }
            })),
            ..Default::default()
        };
        let e = ingest(&c, uri, &[spec("T1w", &sources)], &opts).unwrap_err();
        assert!(matches!(e, Error::Interrupted(_)), "{e}");
        assert_eq!(e.to_string(), "interrupted: 1 of 4 sources ingested; rerun to resume");
        assert_eq!(manifest_frame(&c, uri).unwrap().unwrap().len(), 1);
        assert!(crate::lock::lock_owner(&c, uri).unwrap().is_none(), "the lock is released");
        let r = ingest(&c, uri, &[spec("T1w", &sources)], &IngestOptions::default()).unwrap();
        assert_eq!((r.written, r.skipped), (3, 1));
        assert!(crate::verify::verify(&c, uri, true).unwrap().ok());
    }
}
