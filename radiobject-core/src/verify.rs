//! `verify`: checks that a dataset is complete and consistent before anyone trains on it.
//!
//! Fast checks (a few reads per volume, run in parallel):
//! * the root opens; `subject_count` / `n_collections` agree with `obs_meta` and the members;
//! * per collection: `n_volumes` = obs rows = `volumes` members, members are `0..N-1`, every
//!   volume opens, carries the `obs_id` of its sorted position (the layout the reference needs),
//!   and has the collection's uniform shape when one is recorded;
//! * every subject with volumes has an `obs_meta` row, `obs_ids` lists exactly its obs_ids, and
//!   obs_ids are unique across collections;
//! * the ingest manifest (if any): every source it records is registered, with the recorded
//!   shape, dtype and voxel checksum;
//! * no volume directory under `collections/*/volumes/` is left unregistered (what an interrupted
//!   ingest or write leaves behind).
//!
//! Deep check (`deep`): every volume is read back and its voxels hashed against the
//! `voxel_checksum` stored when it was written.

use std::collections::{BTreeMap, HashMap, HashSet};

use parking_lot::Mutex;
use rayon::prelude::*;
use serde::Serialize;

use crate::cancel::Checkpoint;

use crate::collection::{LAYOUT_KEY, VOLUMES, VolumeCollection, numbered_dirs};
use crate::context::Context;
use crate::dataset::{COLLECTIONS, Dataset, obs_ids_json};
use crate::dtype::Layout;
use crate::error::{Error, Result, StorageContext};
use crate::group::{join, leaf};
use crate::ingest::manifest_frame;
use crate::metadata::MetaValue;
use crate::region::Region;
use crate::volume::{CacheUse, voxel_checksum};

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where: `collection T1w, volume sub-01_T1w`, `obs_meta`, ...
    pub location: String,
    /// What is wrong.
    pub message: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// The dataset verified.
    pub uri: String,
    /// Subjects in `obs_meta`.
    pub subjects: usize,
    /// Collections checked.
    pub collections: usize,
    /// Volumes checked.
    pub volumes: usize,
    /// Sources in the ingest manifest (0 if the dataset has none).
    pub manifest_sources: usize,
    /// Whether voxels were re-read and hashed.
    pub deep: bool,
    /// Everything wrong, empty when the dataset is sound.
    pub problems: Vec<Problem>,
    /// What could not be checked (e.g. volumes written without a checksum, by the reference
    /// package); not a failure.
    pub warnings: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn push(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { location: location.into(), message: message.into() });
    }

    fn warn(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem { location: location.into(), message: message.into() });
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} subjects, {} collections, {} volumes{}{}",
            self.uri,
            self.subjects,
            self.collections,
            self.volumes,
            if self.manifest_sources > 0 {
                format!(", {} ingested sources", self.manifest_sources)
            } else {
                String::new()
            },
            if self.deep { ", voxels re-read" } else { "" }
        )?;
        for w in &self.warnings {
            writeln!(f, "  warning: {}: {}", w.location, w.message)?;
        }
        if self.problems.is_empty() {
            return writeln!(f, "OK: no problem found");
        }
        writeln!(f, "{} problem(s):", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  - {}: {}", p.location, p.message)?;
        }
        Ok(())
    }
}

/// Per-volume facts gathered in parallel.
struct VolumeFacts {
    rank: usize,
    problems: Vec<String>,
    warnings: Vec<String>,
    shape: Option<Vec<u64>>,
    dtype: Option<String>,
    checksum: Option<String>,
}

/// Checks the volume of sorted position `rank`. With `any_layout`, a volume out of its sorted
/// position is only a warning when the collection finds it by its obs_id (this library reads such
/// layouts right; the reference package does not).
fn check_volume(c: &VolumeCollection, rank: usize, deep: bool, any_layout: bool) -> VolumeFacts {
    let mut f =
        VolumeFacts { rank, problems: Vec::new(), warnings: Vec::new(), shape: None, dtype: None, checksum: None };
    let want = &c.obs_ids()[rank];
    let uri = format!("{}/volumes/{rank}", c.uri());
    let mut v = match crate::volume::Volume::open(&uri, c.context()) {
        Ok(v) => v,
        Err(e) => {
            f.problems.push(format!("volume {rank} does not open: {e}"));
            return f;
        }
    };
    let mut meta = v.metadata().unwrap_or_default();
    match meta.get("obs_id").and_then(MetaValue::as_str) {
        Some(id) if id == want => {}
        Some(id) => {
            let misplaced = format!(
                "volumes/{rank} holds {id:?} but sorted position {rank} is {want:?}: the reference package would read the wrong volume"
            );
            match c.volume(rank) {
                Ok(mapped) if any_layout => {
                    f.warnings.push(misplaced);
                    meta = mapped.metadata().unwrap_or_default();
                    v = mapped;
                }
                Ok(_) => f.problems.push(misplaced),
                Err(e) => f.problems.push(format!("{misplaced}; {e}")),
            }
        }
        None => f.problems.push(format!("volumes/{rank} has no obs_id metadata")),
    }
    if let Ok(info) = v.info() {
        f.shape = Some(info.shape.clone());
        f.dtype = Some(info.dtype.to_string());
        if let Some(s) = c.shape()
            && (info.shape.len() < 3 || info.shape[..3] != s[..])
        {
            f.problems.push(format!("shape {:?} differs from the collection's {s:?}", info.shape));
        }
    }
    f.checksum = meta.get("voxel_checksum").and_then(MetaValue::as_str).map(str::to_owned);
    if deep {
        match &f.checksum {
            None => f.warnings.push("no voxel_checksum recorded (written by another tool): voxels not verified".into()),
            Some(stored) => match deep_checksum(&v, stored) {
                Ok(actual) if &actual == stored => {}
                Ok(actual) => f.problems.push(format!("voxels changed: checksum {actual} != recorded {stored}")),
                Err(e) => f.problems.push(format!("voxels could not be read: {e}")),
            },
        }
    }
    f
}

/// Reads the whole volume and hashes it in the byte order the stored checksum names.
fn deep_checksum(v: &crate::volume::Volume, stored: &str) -> Result<String> {
    let info = v.info()?;
    let n = info.shape.iter().product::<u64>() as usize * info.dtype.size();
    let mut buf = vec![0u8; n];
    let whole = Region::full(&info.shape);
    if stored.starts_with("xxh3-128:C:") {
        v.read_into_c(&whole, &mut buf, CacheUse::Auto)?;
        Ok(voxel_checksum(&buf, Layout::RowMajor))
    } else {
        v.read_into(&whole, &mut buf)?;
        Ok(voxel_checksum(&buf, Layout::ColMajor))
    }
}

/// Volume directories under `<root>/collections/*/volumes/` that no collection registers: what an
/// interrupted ingest or write leaves (an ingest run again finishes them). Costs one listing per
/// collection directory.
fn check_stray_volumes(
    ctx: &Context,
    ds: &Dataset,
    registered: &HashMap<String, VolumeCollection>,
    r: &mut VerifyReport,
) -> Result<()> {
    let base = join(ds.uri(), COLLECTIONS);
    let vfs = ctx.vfs()?;
    if !vfs.is_dir(&base).unwrap_or(false) {
        return Ok(());
    }
    // Registered collections by directory name (listings give absolute URIs, a dataset opened by
    // a relative path has relative ones).
    let by_dir: HashMap<&str, &VolumeCollection> = registered.values().map(|c| (leaf(c.uri()), c)).collect();
    let mut dirs = vfs.ls(&base).at("list", &base)?;
    dirs.sort();
    for dir in dirs {
        let name = leaf(&dir);
        let vbase = join(dir.trim_end_matches('/'), VOLUMES);
        if name.starts_with("__") || !vfs.is_dir(&vbase).unwrap_or(false) {
            continue;
        }
        let members: HashSet<&str> =
            by_dir.get(name).map(|c| c.members().iter().map(String::as_str).collect()).unwrap_or_default();
        let mut stray: Vec<u64> = numbered_dirs(&vfs.ls(&vbase).at("list", &vbase)?)
            .iter()
            .filter(|n| !members.contains(n.as_str()))
            .map(|n| n.parse().unwrap_or(u64::MAX))
            .collect();
        if stray.is_empty() {
            continue;
        }
        stray.sort_unstable();
        let shown: Vec<String> = stray.iter().take(5).map(ToString::to_string).collect();
        let more = if stray.len() > 5 { format!(" and {} more", stray.len() - 5) } else { String::new() };
        let what = if by_dir.contains_key(name) { "" } else { " (the collection itself is not registered)" };
        r.push(
            format!("collections/{name}"),
            format!(
                "{} volume director{} not registered{what}: volumes/{{{}}}{more}; left by an interrupted \
                 ingest or write: run the ingest again to finish it, or remove them",
                stray.len(),
                if stray.len() == 1 { "y" } else { "ies" },
                shown.join(",")
            ),
        );
    }
    Ok(())
}

/// A value for a message: the value, or `missing`.
fn shown<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "missing".to_owned(), |v| v.to_string())
}

/// The checks of one collection (counts, members, unique obs_ids, every volume, layout), pushed
/// to `r` under `loc`; returns the facts of its volumes.
#[allow(clippy::too_many_arguments)]
fn check_collection(
    ctx: &Context,
    c: &VolumeCollection,
    loc: &str,
    deep: bool,
    any_layout: bool,
    r: &mut VerifyReport,
    checkpoint: &Checkpoint,
    total: usize,
    done: &Mutex<usize>,
    tick: &(dyn Fn() + Sync),
) -> Result<Vec<VolumeFacts>> {
    let n = c.len();
    r.volumes += n;
    match c.metadata().get("n_volumes").and_then(MetaValue::as_int) {
        Some(k) if k == n as i64 => {}
        other => r.push(loc, format!("n_volumes is {} but obs has {n} rows", shown(other))),
    }
    let members: HashSet<&str> = c.members().iter().map(String::as_str).collect();
    if members.len() != n {
        r.push(loc, format!("{} volume members for {n} obs rows", members.len()));
    }
    for i in 0..n {
        if !members.contains(i.to_string().as_str()) {
            r.push(loc, format!("volume member {i} is missing"));
        }
    }
    let mut seen = HashSet::new();
    let mut dups: Vec<&str> = c.obs_ids().iter().filter(|id| !seen.insert(id.as_str())).map(String::as_str).collect();
    dups.sort_unstable();
    dups.dedup();
    if !dups.is_empty() {
        r.push(loc, format!("obs_ids used by several volumes: {:?}", &dups[..dups.len().min(5)]));
    }
    let facts: Vec<VolumeFacts> = ctx.workers()?.install(|| {
        (0..n)
            .into_par_iter()
            .map(|i| {
                checkpoint.check(|| {
                    format!("verify stopped after {} of {total} volumes; nothing was changed", *done.lock())
                })?;
                let f = check_volume(c, i, deep, any_layout);
                tick();
                Ok(f)
            })
            .collect::<Result<_>>()
    })?;
    for f in &facts {
        for p in &f.problems {
            r.push(format!("{loc}, volume {}", c.obs_ids()[f.rank]), p.clone());
        }
        for w in &f.warnings {
            r.warn(format!("{loc}, volume {}", c.obs_ids()[f.rank]), w.clone());
        }
    }
    if let Some(layout) = c.metadata().get(LAYOUT_KEY).and_then(MetaValue::as_str)
        && layout != format!("sorted:{n}")
    {
        r.push(loc, format!("{LAYOUT_KEY} says {layout:?} but the collection has {n} volumes"));
    }
    Ok(facts)
}

/// Verifies one volume collection at `uri` on its own (a collection of a dataset or a standalone
/// one): the per-collection and per-volume checks of [`verify`], without the dataset-level ones.
/// `any_layout`: volumes out of their sorted positions are warnings when each is found by its
/// obs_id (what `validate()` accepts), not problems.
pub fn verify_collection(ctx: &Context, uri: &str, deep: bool, any_layout: bool) -> Result<VerifyReport> {
    let checkpoint = Checkpoint::new();
    let ctx = ctx.for_current_process()?;
    let mut r = VerifyReport { uri: uri.trim_end_matches('/').to_owned(), deep, ..Default::default() };
    let c = VolumeCollection::open(uri, &ctx)?;
    r.collections = 1;
    let loc = match c.name() {
        Some(n) => format!("collection {n}"),
        None => "collection".to_owned(),
    };
    let done = Mutex::new(0usize);
    let tick = || *done.lock() += 1;
    check_collection(&ctx, &c, &loc, deep, any_layout, &mut r, &checkpoint, c.len(), &done, &tick)?;
    Ok(r)
}

/// Verifies the dataset at `uri`. Problems are collected in the report; an `Err` means the dataset
/// could not be examined at all.
pub fn verify(ctx: &Context, uri: &str, deep: bool) -> Result<VerifyReport> {
    verify_with_progress(ctx, uri, deep, None)
}

/// [`verify`], calling `progress(done, total)` after each volume checked (`done` only grows;
/// `total` counts the volumes of every collection). Ctrl-C ([`crate::cancel`]) stops it between
/// volumes with [`Error::Interrupted`]; verify never changes the dataset.
pub fn verify_with_progress(
    ctx: &Context,
    uri: &str,
    deep: bool,
    progress: Option<&(dyn Fn(usize, usize) + Sync)>,
) -> Result<VerifyReport> {
    run_verify(ctx, uri, deep, false, progress)
}

/// The consistency checks of [`verify`] (not deep), accepting volumes out of their sorted
/// positions when each is found by its obs_id (reported as warnings): what `validate()` checks.
pub fn validate(ctx: &Context, uri: &str) -> Result<VerifyReport> {
    run_verify(ctx, uri, false, true, None)
}

fn run_verify(
    ctx: &Context,
    uri: &str,
    deep: bool,
    any_layout: bool,
    progress: Option<&(dyn Fn(usize, usize) + Sync)>,
) -> Result<VerifyReport> {
    let checkpoint = Checkpoint::new();
    let ctx = ctx.for_current_process()?;
    let mut r = VerifyReport { uri: uri.trim_end_matches('/').to_owned(), deep, ..Default::default() };
    let ds = match Dataset::open(uri, &ctx) {
        Ok(d) => d,
        Err(e @ (Error::NotFound { .. } | Error::WrongObjectType { .. })) => return Err(e),
        Err(e) => {
            r.push("dataset", format!("does not open: {e}"));
            return Ok(r);
        }
    };
    r.subjects = ds.subject_ids().len();
    r.collections = ds.collection_names().len();
    let meta_int = |k: &str| ds.metadata().get(k).and_then(MetaValue::as_int);
    if meta_int("subject_count") != Some(r.subjects as i64) {
        r.push(
            "root",
            format!("subject_count is {} but obs_meta has {} subjects", shown(meta_int("subject_count")), r.subjects),
        );
    }
    if meta_int("n_collections") != Some(r.collections as i64) {
        r.push(
            "root",
            format!(
                "n_collections is {} but {} collections are registered",
                shown(meta_int("n_collections")),
                r.collections
            ),
        );
    }
    let mut ids_by_subject: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut collections: HashMap<String, VolumeCollection> = HashMap::new();
    let mut facts_by_coll: HashMap<String, Vec<VolumeFacts>> = HashMap::new();
    // every collection opened first, for the total of the progress
    let opened: Vec<(String, Result<VolumeCollection>)> =
        ds.collection_names().iter().map(|n| (n.clone(), ds.collection(n))).collect();
    let total: usize = opened.iter().map(|(_, c)| c.as_ref().map_or(0, VolumeCollection::len)).sum();
    let done = Mutex::new(0usize);
    let tick = || {
        let mut n = done.lock();
        *n += 1;
        if let Some(cb) = progress {
            cb(*n, total);
        }
    };
    for (name, c) in opened {
        let loc = format!("collection {name}");
        let c = match c {
            Ok(c) => c,
            Err(e) => {
                r.push(&loc, format!("does not open: {e}"));
                continue;
            }
        };
        if c.name().as_deref() != Some(name.as_str()) {
            r.push(
                &loc,
                format!("name metadata is {}", c.name().map_or_else(|| "missing".into(), |n| format!("{n:?}"))),
            );
        }
        for (s, id) in c.subject_ids().iter().zip(c.obs_ids()) {
            if let Some(other) = owner.insert(id.clone(), name.clone())
                && other != name
            {
                r.push(&loc, format!("obs_id {id:?} is also used by collection {other:?}"));
            }
            ids_by_subject.entry(s.clone()).or_default().push(id.clone());
        }
        let facts = check_collection(&ctx, &c, &loc, deep, any_layout, &mut r, &checkpoint, total, &done, &tick)?;
        facts_by_coll.insert(name.clone(), facts);
        collections.insert(name, c);
    }
    check_stray_volumes(&ctx, &ds, &collections, &mut r)?;
    // obs_meta
    let obs_ids_col = ds.obs_meta().column("obs_ids");
    let subjects = ds.obs_meta().column("obs_subject_id").and_then(|c| c.values.as_str()).unwrap_or(&[]).to_vec();
    for s in ids_by_subject.keys() {
        if !subjects.contains(s) {
            r.push("obs_meta", format!("subject {s:?} has volumes but no obs_meta row"));
        }
    }
    if let Some(col) = obs_ids_col {
        for (i, s) in subjects.iter().enumerate() {
            let ids = ids_by_subject.get(s).map(Vec::as_slice).unwrap_or(&[]);
            let want = obs_ids_json(ids);
            // compared as lists (any JSON spacing or order, as other writers may store it)
            let stored = match col.str_at(i) {
                None | Some("") => Some(obs_ids_json(&[])),
                Some(j) => serde_json::from_str::<Vec<String>>(j).ok().map(|v| obs_ids_json(&v)),
            };
            if stored.as_deref() != Some(want.as_str()) {
                r.push("obs_meta", format!("obs_ids of subject '{s}' is {}, expected {want}", shown(col.str_at(i))));
            }
        }
    }
    // manifest
    if let Some(m) = manifest_frame(&ctx, ds.uri())? {
        r.manifest_sources = m.len();
        let col = |n: &str| m.column(n);
        for i in 0..m.len() {
            let s = |n: &str| col(n).and_then(|c| c.str_at(i)).unwrap_or_default().to_owned();
            let (coll, src, id) = (s("collection"), s("source"), s("obs_id"));
            if col("position").and_then(|c| c.values.get_i64(i)).is_some_and(|p| p < 0) {
                continue; // a source dropped before registration
            }
            let loc = format!("manifest {src}");
            let Some(c) = collections.get(&coll) else {
                r.push(&loc, format!("collection {coll:?} is not registered"));
                continue;
            };
            let Some(rank) = c.rank_of(&id) else {
                r.push(&loc, format!("ingested as {id:?} but not registered in {coll}"));
                continue;
            };
            if let Some(f) = facts_by_coll.get(&coll).and_then(|v| v.get(rank)) {
                let shape: Vec<u64> = serde_json::from_str(&s("shape")).unwrap_or_default();
                if let Some(sh) = f.shape.as_ref().filter(|sh| **sh != shape) {
                    r.push(&loc, format!("shape {sh:?} != recorded {shape:?}"));
                }
                if let Some(d) = f.dtype.as_ref().filter(|d| **d != s("dtype")) {
                    r.push(&loc, format!("dtype {d} != recorded {}", s("dtype")));
                }
                if f.checksum.as_ref().is_some_and(|k| *k != s("voxel_checksum")) {
                    r.push(&loc, "voxel checksum differs from the one recorded at ingest");
                }
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::RadiObjectConfig;
    use crate::ingest::tests::{run_child, write_nifti};
    use crate::ingest::{CollectionSpec, ImageFormat, IngestOptions, Source, ingest};

    /// A dataset of `n` small volumes, verified on one worker.
    fn dataset(d: &std::path::Path, n: usize) -> (Context, String) {
        let mut cfg = RadiObjectConfig::default();
        cfg.read.max_workers = 1;
        let c = Context::new(&cfg).unwrap();
        let sources: Vec<Source> = (0..n)
            .map(|i| {
                let p: PathBuf = d.join(format!("s{i}.nii"));
                write_nifti(&p, [4, 4, 3], i as i16);
                Source { path: p, subject_id: format!("s{i}") }
            })
            .collect();
        let uri = d.join("ds").to_str().unwrap().to_owned();
        let spec = CollectionSpec { name: "T1w".into(), sources, format: ImageFormat::Nifti };
        ingest(&c, &uri, &[spec], &IngestOptions::default()).unwrap();
        (c, uri)
    }

    #[test]
    fn progress_counts_every_volume_once_upwards() {
        let d = tempfile::tempdir().unwrap();
        let (c, uri) = dataset(d.path(), 5);
        let seen = Mutex::new(Vec::new());
        let r = verify_with_progress(&c, &uri, true, Some(&|done, total| seen.lock().push((done, total)))).unwrap();
        assert!(r.ok(), "{r}");
        assert_eq!(seen.into_inner(), (1..=5).map(|i| (i, 5)).collect::<Vec<_>>());
    }

    #[test]
    fn messages_show_values_not_rust_debug_text() {
        let d = tempfile::tempdir().unwrap();
        let (c, uri) = dataset(d.path(), 2);
        crate::group::update_group(
            &c,
            &join(&join(&uri, COLLECTIONS), "T1w"),
            &crate::group::GroupUpdate { delete: vec!["n_volumes".into()], ..Default::default() },
        )
        .unwrap();
        crate::group::update_group(
            &c,
            &uri,
            &crate::group::GroupUpdate {
                put: vec![("subject_count".into(), MetaValue::from(0i64))],
                ..Default::default()
            },
        )
        .unwrap();
        let text = verify(&c, &uri, false).unwrap().to_string();
        assert!(text.contains("n_volumes is missing but obs has 2 rows"), "{text}");
        assert!(text.contains("subject_count is 0 but obs_meta has 2 subjects"), "{text}");
        assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
    }

    #[test]
    fn verify_collection_runs_the_collection_checks_alone() {
        let d = tempfile::tempdir().unwrap();
        let (c, uri) = dataset(d.path(), 3);
        let coll = join(&join(&uri, COLLECTIONS), "T1w");
        let r = verify_collection(&c, &coll, false, false).unwrap();
        assert!(r.ok(), "{r}");
        assert_eq!((r.collections, r.volumes, r.subjects), (1, 3, 0));
        crate::volume::Volume::open(&format!("{coll}/volumes/1"), &c)
            .unwrap()
            .set_metadata(&[("obs_id".into(), MetaValue::from("someone_else"))])
            .unwrap();
        let text = verify_collection(&c, &coll, false, false).unwrap().to_string();
        assert!(text.contains("collection T1w, volume s1_T1w: volumes/1 holds \"someone_else\""), "{text}");
        // the dataset verify reports the same problem, once
        let text = verify(&c, &uri, false).unwrap().to_string();
        assert_eq!(text.matches("someone_else").count(), 1, "{text}");
    }

    #[test]
    fn ctrl_c_stops_verify_between_volumes() {
        run_child("verify::tests::ctrl_c_child");
    }

    #[test]
    #[ignore = "run by ctrl_c_stops_verify_between_volumes in a child process"]
    fn ctrl_c_child() {
        let d = tempfile::tempdir().unwrap();
        let (c, uri) = dataset(d.path(), 4);
        let e = verify_with_progress(
            &c,
            &uri,
            true,
            Some(&|done, _| {
                if done == 1 {
                    crate::cancel::interrupt();
                }
            }),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Interrupted(_)), "{e}");
        assert_eq!(e.to_string(), "interrupted: verify stopped after 1 of 4 volumes; nothing was changed");
    }
}
