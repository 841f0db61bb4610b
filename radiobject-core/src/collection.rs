//! Volume collections: a group holding an `obs` dataframe (one row per volume) and a `volumes`
//! group of dense volume arrays, laid out exactly as the reference writes them (§1 of the layout
//! notes) so that either library reads the other's collections.
//!
//! ```text
//! <collection>/            group   meta: n_volumes INT64, name STRING_UTF8, [x_dim, y_dim, z_dim INT64]
//!   obs/                   sparse  dims obs_subject_id, obs_id; one attribute per column
//!   volumes/               group   members "0" .. "N-1"
//!     0/ 1/ ...            dense   one volume each; metadata obs_id names its row
//! ```
//!
//! **The volume mapping is always right.** The reference maps an obs_id to `volumes/<i>` by its
//! position `i` in the sorted obs order, and silently returns the wrong volume when volumes were
//! written or appended in another order. Here:
//! * writers store volume `i` of the sorted order at `volumes/<i>` (renumbering directories when
//!   volumes arrive out of order), so the reference reads our collections correctly;
//! * readers check the `obs_id` metadata of every volume they open (it comes with the open, no extra
//!   read); on a mismatch — a collection written out of order by the reference — they rebuild the
//!   mapping from every volume's metadata once, and serve the right volume from then on.
//!
//! Opening a collection costs a constant number of storage reads (two groups and the obs array);
//! a volume opened through it is cached, so `volume(i)` reads storage at most once per volume.
//!
//! Member URIs are relative, so a collection stays valid after being copied or moved.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::sync::{ForkMutex, ForkRwLock};
use ndarray::ArrayViewD;
use rayon::prelude::*;

use crate::config::WriteConfig;
use crate::context::Context;
use crate::dataframe::{Column, ColumnType, Dataframe, Frame, Values};
use crate::dtype::{Datatype, Element, Layout};
use crate::error::{Error, Result, StorageContext};
use crate::group::{GroupInfo, GroupUpdate, create_group, join, read_group, update_group};
use crate::metadata::MetaValue;
use crate::volume::{Volume, VolumeData, contiguous_bytes, read_array_metadata, voxel_checksum};

/// Index columns of `obs`.
pub const OBS_INDEX: [&str; 2] = ["obs_subject_id", "obs_id"];
/// Name of the obs member.
pub const OBS: &str = "obs";
/// Name of the volumes member.
pub const VOLUMES: &str = "volumes";

/// Names of the numbered directories (`<i>`) in a listing of a collection's `volumes/`.
pub(crate) fn numbered_dirs(listing: &[String]) -> Vec<String> {
    listing
        .iter()
        .map(|e| crate::group::leaf(e))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}
/// The obs_id of a volume of subject `sid` in collection `name`: `{sid}_{name}`, and
/// `{sid}_{name}_acq-{k}` for acquisition `k` (the reference's `generate_obs_id`).
pub fn obs_id(sid: &str, name: &str, acquisition: Option<usize>) -> String {
    match acquisition {
        None => format!("{sid}_{name}"),
        Some(k) => format!("{sid}_{name}_acq-{k}"),
    }
}

/// New obs_ids for volumes of `subject_ids` (in order) in collection `name`: `{sid}_{name}`, and
/// `{sid}_{name}_acq-{k}` (k = 1, 2, ...) when that id is in `taken` or was given to an earlier
/// volume, so ids never collide (the reference repeated `{sid}_{name}` for a subject's second
/// image). The naming rule of every path that names volumes (ingest, `from_niftis`, `append`).
pub fn assign_obs_ids(subject_ids: &[String], name: &str, taken: &[String]) -> Vec<String> {
    let mut used: HashSet<String> = taken.iter().cloned().collect();
    subject_ids
        .iter()
        .map(|sid| {
            let mut id = obs_id(sid, name, None);
            let mut k = 0;
            while used.contains(&id) {
                k += 1;
                id = obs_id(sid, name, Some(k));
            }
            used.insert(id.clone());
            id
        })
        .collect()
}

/// New obs_ids for a copy of volumes of `subject_ids` (in order) under collection name `name`:
/// `{sid}_{name}` for a subject with one volume, `{sid}_{name}_acq-{k}` (k = 1, 2, ... in order)
/// for every volume of a subject with several, so they never collide (the reference gave them all
/// `{sid}_{name}`). The naming rule of `write(name=...)` / `rename` copies.
pub fn rename_obs_ids(subject_ids: &[String], name: &str) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for s in subject_ids {
        *counts.entry(s.as_str()).or_default() += 1;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    subject_ids
        .iter()
        .map(|sid| {
            if counts[sid.as_str()] == 1 {
                obs_id(sid, name, None)
            } else {
                let k = seen.entry(sid.as_str()).or_default();
                *k += 1;
                obs_id(sid, name, Some(*k))
            }
        })
        .collect()
}

/// The subjects of `given` that are new to a dataset whose subjects are `existing`, sorted. Every
/// new subject needs an obs_meta row: `obs_meta` lists the subjects that have one (None: no
/// obs_meta was given). Errors name the subjects ("obs_meta required for new subject(s)",
/// "obs_meta missing entries for ..."), the reference's wording.
pub fn new_subjects_with_rows(
    existing: &[String],
    given: &[String],
    obs_meta: Option<&[String]>,
) -> Result<Vec<String>> {
    let have: HashSet<&str> = existing.iter().map(String::as_str).collect();
    let new: BTreeSet<&str> = given.iter().map(String::as_str).filter(|s| !have.contains(s)).collect();
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let first: Vec<&str> = new.iter().take(5).copied().collect();
    let Some(rows) = obs_meta else {
        return Err(Error::Alignment(format!(
            "obs_meta required for new subject(s) {first:?} ({} in all): give obs_meta rows for them",
            new.len()
        )));
    };
    let rows: HashSet<&str> = rows.iter().map(String::as_str).collect();
    let missing: Vec<&str> = new.iter().filter(|s| !rows.contains(*s)).copied().collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).copied().collect();
        return Err(Error::Alignment(format!(
            "obs_meta missing entries for new subject(s) {shown:?} ({} in all)",
            missing.len()
        )));
    }
    Ok(new.into_iter().map(str::to_owned).collect())
}

/// Collection metadata written by this library's writers: `sorted:<n_volumes>` says volume `i` of
/// the sorted obs order is at `volumes/<i>` (ignored by the reference).
pub const LAYOUT_KEY: &str = "radiobject_layout";

struct Inner {
    ctx: Context,
    uri: String,
    group: GroupInfo,
    obs: Frame,
    obs_ids: Vec<String>,
    subjects: Vec<String>,
    rank: HashMap<String, usize>,
    members: Vec<String>,
    /// Directory of each rank when it differs from the rank itself (reference-written collections
    /// whose write order was not sorted).
    dirs: ForkRwLock<Option<Vec<Option<String>>>>,
    handles: ForkMutex<HashMap<usize, Volume>>,
}

/// An opened collection (obs and membership loaded; volumes opened on demand and cached).
#[derive(Clone)]
pub struct VolumeCollection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for VolumeCollection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeCollection")
            .field("uri", &self.inner.uri)
            .field("name", &self.name())
            .field("len", &self.len())
            .finish()
    }
}

fn string_column(frame: &Frame, name: &str, uri: &str) -> Result<Vec<String>> {
    frame
        .column(name)
        .and_then(|c| c.values.as_str())
        .map(<[String]>::to_vec)
        .ok_or_else(|| Error::NotAVolume { uri: uri.to_owned(), reason: format!("obs has no {name} column") })
}

/// The rule of a collection's uniform shape: `(x, y, z)` with no zero axis.
pub fn check_collection_shape(s: &[u64]) -> Result<()> {
    if s.len() != 3 || s.contains(&0) {
        return Err(Error::shape(format!("a collection shape is (x, y, z) with no zero axis, got {s:?}")));
    }
    Ok(())
}

impl VolumeCollection {
    /// Opens the collection at `uri`: one read of its group, its `volumes` group and its `obs`.
    pub fn open(uri: &str, ctx: &Context) -> Result<VolumeCollection> {
        let ctx = ctx.for_current_process()?;
        let uri = uri.trim_end_matches('/').to_owned();
        let group = read_group(&ctx, &uri, "volume collection")?;
        let vols = read_group(&ctx, &join(&uri, VOLUMES), "volumes group")?;
        let obs = Dataframe::open(&ctx, &join(&uri, OBS))?.read(None)?;
        let obs_ids = string_column(&obs, "obs_id", &uri)?;
        let subjects = string_column(&obs, "obs_subject_id", &uri)?;
        let rank = obs_ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
        Ok(VolumeCollection {
            inner: Arc::new(Inner {
                ctx,
                uri,
                group,
                obs,
                obs_ids,
                subjects,
                rank,
                members: vols.members.into_iter().map(|m| m.name).collect(),
                dirs: ForkRwLock::new(None),
                handles: ForkMutex::new(HashMap::new()),
            }),
        })
    }

    /// The collection URI.
    pub fn uri(&self) -> &str {
        &self.inner.uri
    }

    /// The context it reads through.
    pub fn context(&self) -> &Context {
        &self.inner.ctx
    }

    /// Number of volumes (rows of obs).
    pub fn len(&self) -> usize {
        self.inner.obs_ids.len()
    }

    /// Whether the collection holds no volume.
    pub fn is_empty(&self) -> bool {
        self.inner.obs_ids.is_empty()
    }

    /// The `name` metadata.
    pub fn name(&self) -> Option<String> {
        self.inner.group.meta_str("name").map(str::to_owned)
    }

    /// Group metadata.
    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.inner.group.metadata
    }

    /// `(x, y, z)` when every volume has the same spatial shape (`x_dim/y_dim/z_dim` metadata).
    pub fn shape(&self) -> Option<[u64; 3]> {
        let g = &self.inner.group;
        match (g.meta_int("x_dim"), g.meta_int("y_dim"), g.meta_int("z_dim")) {
            (Some(x), Some(y), Some(z)) => Some([x as u64, y as u64, z as u64]),
            _ => None,
        }
    }

    /// The obs rows, sorted by (obs_subject_id, obs_id).
    pub fn obs(&self) -> &Frame {
        &self.inner.obs
    }

    /// obs_ids in sorted order (rank order).
    pub fn obs_ids(&self) -> &[String] {
        &self.inner.obs_ids
    }

    /// Subject of each volume, in rank order.
    pub fn subject_ids(&self) -> &[String] {
        &self.inner.subjects
    }

    /// Rank of an obs_id.
    pub fn rank_of(&self, obs_id: &str) -> Option<usize> {
        self.inner.rank.get(obs_id).copied()
    }

    /// Names of the members of the `volumes` group.
    pub fn members(&self) -> &[String] {
        &self.inner.members
    }

    fn dir_of(&self, rank: usize) -> String {
        match self.inner.dirs.read().as_ref() {
            Some(d) => d.get(rank).cloned().flatten().unwrap_or_else(|| rank.to_string()),
            None => rank.to_string(),
        }
    }

    /// URI of the volume at `rank`.
    pub fn volume_uri(&self, rank: usize) -> Result<String> {
        self.check_rank(rank)?;
        Ok(join(&join(&self.inner.uri, VOLUMES), &self.dir_of(rank)))
    }

    fn check_rank(&self, rank: usize) -> Result<()> {
        if rank >= self.len() {
            return Err(Error::region(format!("volume index {rank} is out of range for {} volumes", self.len())));
        }
        Ok(())
    }

    /// The volume at `rank` (sorted obs order), opened once and cached.
    pub fn volume(&self, rank: usize) -> Result<Volume> {
        self.check_rank(rank)?;
        if let Some(v) = self.inner.handles.lock().get(&rank) {
            return Ok(v.clone());
        }
        let want = &self.inner.obs_ids[rank];
        let vol = Volume::open(&self.volume_uri(rank)?, &self.inner.ctx)?;
        let vol = match vol.obs_id()? {
            Some(id) if &id != want => {
                // Written out of sorted order (the reference's writer does this): map every volume
                // by its own obs_id metadata, once, then serve the right one.
                self.remap()?;
                let v = Volume::open(&self.volume_uri(rank)?, &self.inner.ctx)?;
                if v.obs_id()?.as_deref() != Some(want.as_str()) {
                    return Err(Error::Invalid(format!(
                        "{}: no volume carries obs_id {want:?} (run verify)",
                        self.inner.uri
                    )));
                }
                v
            }
            _ => vol,
        };
        self.inner.handles.lock().insert(rank, vol.clone());
        Ok(vol)
    }

    /// The volume whose obs_id is `obs_id`.
    pub fn volume_by_obs_id(&self, obs_id: &str) -> Result<Volume> {
        let rank = self
            .rank_of(obs_id)
            .ok_or_else(|| Error::NotFound { uri: format!("{}#{obs_id}", self.inner.uri), expected: "obs_id" })?;
        self.volume(rank)
    }

    /// Reads the `obs_id` metadata of every member volume (in parallel) and maps ranks to them.
    fn remap(&self) -> Result<()> {
        let base = join(&self.inner.uri, VOLUMES);
        let ctx = &self.inner.ctx;
        let found: Vec<(String, Option<String>)> = ctx.workers()?.install(|| {
            self.inner
                .members
                .par_iter()
                .map(|m| {
                    let meta = read_array_metadata(ctx, &join(&base, m))?;
                    Ok((m.clone(), meta.get("obs_id").and_then(MetaValue::as_str).map(str::to_owned)))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let by_id: HashMap<String, String> = found.into_iter().filter_map(|(m, id)| id.map(|i| (i, m))).collect();
        let dirs = self.inner.obs_ids.iter().map(|id| by_id.get(id).cloned()).collect();
        *self.inner.dirs.write() = Some(dirs);
        self.inner.handles.lock().clear();
        Ok(())
    }

    /// Whether volumes sit at their sorted positions (what the reference needs to read them).
    pub fn is_in_sorted_layout(&self) -> Result<bool> {
        let base = join(&self.inner.uri, VOLUMES);
        let ctx = &self.inner.ctx;
        let ok: Vec<bool> = ctx.workers()?.install(|| {
            (0..self.len())
                .into_par_iter()
                .map(|i| {
                    let meta = read_array_metadata(ctx, &join(&base, &i.to_string()))?;
                    Ok(meta.get("obs_id").and_then(MetaValue::as_str) == Some(self.inner.obs_ids[i].as_str()))
                })
                .collect::<Result<Vec<bool>>>()
        })?;
        Ok(ok.into_iter().all(|x| x))
    }

    /// Whether this library's writer left the layout sorted and nobody changed the collection
    /// since (the marker records the volume count it was written with).
    fn marked_sorted(&self) -> bool {
        self.inner.group.meta_str(LAYOUT_KEY) == Some(format!("sorted:{}", self.len()).as_str())
            && self.inner.members.len() == self.len()
    }

    /// Current directory of every rank (reading volume metadata if the layout is not known to be
    /// sorted).
    fn current_dirs(&self) -> Result<Vec<String>> {
        if !self.is_empty() && !self.marked_sorted() && !self.is_in_sorted_layout()? {
            self.remap()?;
        }
        (0..self.len())
            .map(|r| {
                let d = self.dir_of(r);
                Ok(d)
            })
            .collect()
    }
}

/// A value of one obs cell given to a writer.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Null.
    Null,
    /// Text.
    Str(String),
    /// Integer (stored INT64 unless the column exists with another integer type).
    Int(i64),
    /// Float (FLOAT64).
    Float(f64),
    /// Boolean.
    Bool(bool),
}

/// One cell as a one-row column of the column's stored type (`existing`), or of the type the
/// value implies for a new column (text, INT64, FLOAT64, BOOL). Values are converted to the stored
/// type when that is exact (an int into a float32 column, 3.0 into an int16 column, True into a
/// uint8 column) and refused otherwise.
fn cell_column(name: &str, cell: &Cell, existing: Option<ColumnType>) -> Result<Column> {
    let bad = |what: String| Error::Schema(format!("column {name:?}: {what}"));
    let target = match existing {
        Some(t) => t,
        None => implied_type(name, std::slice::from_ref(cell))?,
    };
    let values = if target.var {
        match cell {
            Cell::Null => Values::Str(vec![String::new()]),
            Cell::Str(s) => Values::Str(vec![s.clone()]),
            other => return Err(bad(format!("holds text; got {other:?}"))),
        }
    } else {
        let dt = target.datatype;
        let as_int = |c: &Cell| -> Result<Option<i128>> {
            Ok(match c {
                Cell::Null => None,
                Cell::Int(v) => Some(i128::from(*v)),
                Cell::Bool(b) => Some(i128::from(*b)),
                Cell::Float(x) if x.fract() == 0.0 && x.abs() < 1e18 => Some(*x as i128),
                Cell::Float(x) => return Err(bad(format!("holds {dt} integers; {x} is not an integer"))),
                Cell::Str(s) => return Err(bad(format!("holds {dt} values; got text {s:?}"))),
            })
        };
        macro_rules! int_cell {
            ($t:ty) => {{
                let v: $t = match as_int(cell)? {
                    None => 0,
                    Some(i) => <$t>::try_from(i).map_err(|_| bad(format!("{i} does not fit {dt} (out of range)")))?,
                };
                bytemuck::bytes_of(&v).to_vec()
            }};
        }
        let bytes = match dt {
            Datatype::Int8 => int_cell!(i8),
            Datatype::UInt8 => int_cell!(u8),
            Datatype::Int16 => int_cell!(i16),
            Datatype::UInt16 => int_cell!(u16),
            Datatype::Int32 => int_cell!(i32),
            Datatype::UInt32 => int_cell!(u32),
            Datatype::Int64 => int_cell!(i64),
            Datatype::UInt64 => int_cell!(u64),
            Datatype::Bool => match cell {
                Cell::Null => vec![0],
                Cell::Bool(b) => vec![u8::from(*b)],
                Cell::Int(v @ (0 | 1)) => vec![*v as u8],
                other => return Err(bad(format!("holds booleans; got {other:?}"))),
            },
            Datatype::Float32 | Datatype::Float64 => {
                let x = match cell {
                    Cell::Null => 0.0,
                    Cell::Float(x) => *x,
                    Cell::Int(v) => *v as f64,
                    Cell::Bool(b) => f64::from(u8::from(*b)),
                    Cell::Str(s) => return Err(bad(format!("holds {dt} values; got text {s:?}"))),
                };
                if dt == Datatype::Float32 { (x as f32).to_ne_bytes().to_vec() } else { x.to_ne_bytes().to_vec() }
            }
            other => return Err(bad(format!("cannot write into a column stored as {other}"))),
        };
        Values::Fixed { datatype: dt, bytes }
    };
    Ok(Column { name: name.to_owned(), values, valid: Some(vec![!matches!(cell, Cell::Null)]) })
}

/// The type values imply for a new column: text, BOOL, INT64, or FLOAT64 for floats (with or
/// without ints); text when every value is null. Other mixes are refused.
fn implied_type(name: &str, cells: &[Cell]) -> Result<ColumnType> {
    let has = |f: fn(&Cell) -> bool| cells.iter().any(f);
    let (text, bools) = (has(|c| matches!(c, Cell::Str(_))), has(|c| matches!(c, Cell::Bool(_))));
    let (ints, floats) = (has(|c| matches!(c, Cell::Int(_))), has(|c| matches!(c, Cell::Float(_))));
    let fixed = |datatype| Ok(ColumnType { datatype, var: false });
    match (text, bools, ints, floats) {
        (_, false, false, false) => Ok(ColumnType::STR),
        (false, true, false, false) => fixed(Datatype::Bool),
        (false, false, true, false) => fixed(Datatype::Int64),
        (false, false, _, true) => fixed(Datatype::Float64),
        _ => {
            let kinds: Vec<&str> = [(text, "text"), (bools, "bool"), (ints, "int"), (floats, "float")]
                .into_iter()
                .filter_map(|(on, k)| on.then_some(k))
                .collect();
            Err(Error::Schema(format!("column {name:?} mixes {} values; give it one type", kinds.join(", "))))
        }
    }
}

/// A column of `cells`, of the stored type `target`, or (None) of the type the values imply
/// (text, BOOL, INT64, or FLOAT64 for floats with or without ints; text when all are null). Each
/// value is converted as an obs value is ([`CollectionWriter::write_volume`]): exactly, or refused
/// with [`Error::Schema`]. Nulls are marked in `valid` (None when there are none).
pub fn cells_column(name: &str, cells: &[Cell], target: Option<ColumnType>) -> Result<Column> {
    let target = match target {
        Some(t) => t,
        None => implied_type(name, cells)?,
    };
    let mut values = Values::placeholders(target.datatype, target.var, 0);
    let mut valid = Vec::with_capacity(cells.len());
    for cell in cells {
        let one = cell_column(name, cell, Some(target))?;
        match (&mut values, one.values) {
            (Values::Str(all), Values::Str(v)) => all.extend(v),
            (Values::Fixed { bytes: all, .. }, Values::Fixed { bytes, .. }) => all.extend(bytes),
            _ => return Err(Error::Schema(format!("column {name:?}: mixed storage"))),
        }
        valid.push(!matches!(cell, Cell::Null));
    }
    let valid = if valid.iter().all(|&v| v) { None } else { Some(valid) };
    Ok(Column { name: name.to_owned(), values, valid })
}

/// What a writer needs to know about the volumes already in a collection it appends to.
struct Existing {
    collection: VolumeCollection,
    dirs: Vec<String>,
}

/// Writes volumes into a new or existing collection; nothing is registered (obs rows, `volumes`
/// members, `n_volumes`) until [`finish`](Self::finish), which does it with one write each.
///
/// Dropping an unfinished writer removes everything it wrote (and the collection itself if this
/// writer created it): an error never leaves volumes registered half-way.
pub struct CollectionWriter {
    ctx: Context,
    uri: String,
    name: Option<String>,
    shape: Option<Vec<u64>>,
    write: WriteConfig,
    created: bool,
    existing: Option<Existing>,
    schema: Vec<(String, ColumnType)>,
    rows: Frame,
    dirs: Vec<usize>,
    shapes: Vec<Vec<u64>>,
    seen: HashSet<String>,
    untyped: BTreeSet<String>,
    next_dir: usize,
    keep_on_drop: bool,
    done: bool,
    /// The dataset's write lock, for a writer that appends to a dataset's collection on its own
    /// ([`append_alone`](Self::append_alone)); released when the writer finishes or is dropped.
    lock: Option<crate::lock::WriteLock>,
}

impl std::fmt::Debug for CollectionWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectionWriter").field("uri", &self.uri).field("written", &self.dirs.len()).finish()
    }
}

impl CollectionWriter {
    /// Creates the empty structure of a collection (group, `volumes` group, `obs`) if it is not
    /// there yet; completes a structure left half-made by an interrupted run.
    pub fn ensure_skeleton(ctx: &Context, uri: &str, name: Option<&str>) -> Result<()> {
        let ctx = ctx.for_current_process()?;
        if ctx.object_kind(uri)?.is_none() {
            create_group(&ctx, uri)?;
        }
        let info = read_group(&ctx, uri, "volume collection")?;
        let mut update = GroupUpdate::default();
        if ctx.object_kind(&join(uri, VOLUMES))?.is_none() {
            create_group(&ctx, &join(uri, VOLUMES))?;
        }
        if ctx.object_kind(&join(uri, OBS))?.is_none() {
            Dataframe::create(&ctx, &join(uri, OBS), &OBS_INDEX, &[])?;
        }
        for m in [VOLUMES, OBS] {
            if info.member(m).is_none() {
                update.add.push((m.into(), m.into()));
            }
        }
        if info.meta_int("n_volumes").is_none() {
            update.put.push(("n_volumes".into(), MetaValue::from(0i64)));
        }
        if let (Some(n), None) = (name, info.meta_str("name")) {
            update.put.push(("name".into(), MetaValue::from(n)));
        }
        update_group(&ctx, uri, &update)
    }

    /// Starts a new collection at `uri` (refused if anything exists there).
    ///
    /// `shape`: if given, every volume's first three axes must equal it. `obs_schema`: columns
    /// created up front with these types (others are added as they appear).
    pub fn create(
        ctx: &Context,
        uri: &str,
        name: Option<&str>,
        shape: Option<&[u64]>,
        obs_schema: &[(String, ColumnType)],
        write: &WriteConfig,
    ) -> Result<CollectionWriter> {
        let ctx = ctx.for_current_process()?;
        let uri = uri.trim_end_matches('/').to_owned();
        if let Some(s) = shape {
            check_collection_shape(s)?;
        }
        for (n, _) in obs_schema {
            if OBS_INDEX.contains(&n.as_str()) {
                return Err(Error::Invalid(format!("obs column {n:?} collides with an index column")));
            }
        }
        create_group(&ctx, &uri)?;
        let setup = (|| -> Result<()> {
            create_group(&ctx, &join(&uri, VOLUMES))?;
            Dataframe::create(&ctx, &join(&uri, OBS), &OBS_INDEX, obs_schema)?;
            let mut put = vec![("n_volumes".to_owned(), MetaValue::from(0i64))];
            if let Some(n) = name {
                put.push(("name".into(), MetaValue::from(n)));
            }
            update_group(
                &ctx,
                &uri,
                &GroupUpdate {
                    add: vec![(VOLUMES.into(), VOLUMES.into()), (OBS.into(), OBS.into())],
                    put,
                    ..Default::default()
                },
            )
        })();
        if let Err(e) = setup {
            let _ = ctx.remove_uri(&uri);
            return Err(e);
        }
        Ok(CollectionWriter {
            ctx,
            uri,
            name: name.map(str::to_owned),
            shape: shape.map(<[u64]>::to_vec),
            write: write.clone(),
            created: true,
            existing: None,
            schema: obs_schema.to_vec(),
            rows: Frame::default(),
            dirs: Vec::new(),
            shapes: Vec::new(),
            seen: HashSet::new(),
            untyped: BTreeSet::new(),
            next_dir: 0,
            keep_on_drop: false,
            done: false,
            lock: None,
        })
    }

    /// Appends to an existing collection.
    pub fn append(collection: &VolumeCollection, write: &WriteConfig) -> Result<CollectionWriter> {
        let ctx = collection.context().clone();
        let dirs = collection.current_dirs()?;
        let next_dir = collection
            .members()
            .iter()
            .filter_map(|m| m.parse::<usize>().ok().map(|x| x + 1))
            .max()
            .unwrap_or(0)
            .max(collection.len());
        let schema = Dataframe::open(&ctx, &join(collection.uri(), OBS))?.columns();
        Ok(CollectionWriter {
            ctx,
            uri: collection.uri().to_owned(),
            name: collection.name(),
            shape: collection.shape().map(|s| s.to_vec()),
            write: write.clone(),
            created: false,
            seen: collection.obs_ids().iter().cloned().collect(),
            existing: Some(Existing { collection: collection.clone(), dirs }),
            schema,
            rows: Frame::default(),
            dirs: Vec::new(),
            shapes: Vec::new(),
            untyped: BTreeSet::new(),
            next_dir,
            keep_on_drop: false,
            done: false,
            lock: None,
        })
    }

    /// Appends to `collection` on its own, not through its dataset's writer: when the collection
    /// belongs to a dataset (`<root>/collections/<name>`), the dataset's write lock is taken first
    /// (failing with [`Error::Locked`] while another writer holds it) and held until the writer
    /// finishes, and the collection is read again under the lock, so volumes another process
    /// appended since `collection` was opened are neither overwritten nor renumbered.
    pub fn append_alone(collection: &VolumeCollection, write: &WriteConfig) -> Result<CollectionWriter> {
        let ctx = collection.context().clone();
        let Some(root) = dataset_root_of(&ctx, collection.uri())? else {
            return Self::append(collection, write);
        };
        let lock = crate::lock::WriteLock::acquire(&ctx, &root, "append", None)?;
        let fresh = VolumeCollection::open(collection.uri(), &ctx)?;
        let mut w = Self::append(&fresh, write)?;
        w.lock = Some(lock);
        Ok(w)
    }

    /// Takes over volumes already written at `volumes/<dir>` (by a resumable ingest) so that
    /// [`finish`](Self::finish) registers them: `rows` are their obs rows (with
    /// `obs_subject_id`/`obs_id`), `dirs` and `shapes` their directories and shapes. Dropping this
    /// writer unfinished removes nothing (the ingest manifest tracks those volumes).
    pub fn adopt(
        collection: &VolumeCollection,
        rows: Frame,
        dirs: Vec<usize>,
        shapes: Vec<Vec<u64>>,
        write: &WriteConfig,
    ) -> Result<CollectionWriter> {
        let mut w = CollectionWriter::append(collection, write)?;
        rows.check()?;
        if rows.len() != dirs.len() || dirs.len() != shapes.len() {
            return Err(Error::Invalid("adopt: rows, dirs and shapes differ in length".into()));
        }
        w.next_dir = w.next_dir.max(dirs.iter().map(|d| d + 1).max().unwrap_or(0));
        for id in rows.column("obs_id").and_then(|c| c.values.as_str()).unwrap_or(&[]) {
            if !w.seen.insert(id.clone()) {
                return Err(Error::Alignment(format!("obs_id {id:?} already exists in {}", w.uri)));
            }
        }
        w.rows = rows;
        w.dirs = dirs;
        w.shapes = shapes;
        w.keep_on_drop = true;
        Ok(w)
    }

    /// The collection URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The context written through.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Gives columns not known yet (neither stored nor typed by an earlier value) their type, for
    /// the values written from now on (ingest's INT32 imaging columns).
    pub fn declare_columns(&mut self, columns: &[(String, ColumnType)]) {
        for (name, t) in columns {
            if !self.schema.iter().any(|(n, _)| n == name) && self.rows.column(name).is_none() {
                self.schema.push((name.clone(), *t));
            }
        }
    }

    /// Volumes written so far (not counting existing ones).
    pub fn n_written(&self) -> usize {
        self.dirs.len()
    }

    /// The obs_ids of the volumes written (or adopted) so far, in write order.
    pub fn written_obs_ids(&self) -> &[String] {
        self.rows.column("obs_id").and_then(|c| c.values.as_str()).unwrap_or(&[])
    }

    /// The subjects of the volumes written (or adopted) so far, in write order.
    pub fn written_subject_ids(&self) -> &[String] {
        self.rows.column("obs_subject_id").and_then(|c| c.values.as_str()).unwrap_or(&[])
    }

    /// Writes one volume (any layout) with its obs row.
    pub fn write_volume<T: Element>(
        &mut self,
        data: ArrayViewD<'_, T>,
        obs_id: &str,
        subject_id: &str,
        attrs: &[(String, Cell)],
        extra_metadata: &[(String, MetaValue)],
    ) -> Result<()> {
        let shape: Vec<u64> = data.shape().iter().map(|&n| n as u64).collect();
        let (bytes, layout) = contiguous_bytes(&data);
        self.write_raw(&bytes, layout, &shape, T::DATATYPE, obs_id, subject_id, attrs, extra_metadata)
    }

    /// Writes one volume given as [`VolumeData`].
    pub fn write_volume_data(
        &mut self,
        data: &VolumeData,
        obs_id: &str,
        subject_id: &str,
        attrs: &[(String, Cell)],
        extra_metadata: &[(String, MetaValue)],
    ) -> Result<()> {
        macro_rules! w {
            ($($v:ident),*) => {
                match data { $(VolumeData::$v(a) => self.write_volume(a.view(), obs_id, subject_id, attrs, extra_metadata)),* }
            };
        }
        w!(Int8, UInt8, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float32, Float64)
    }

    /// Checks an obs_id/subject pair and the shape before anything is written.
    fn check_row(&self, obs_id: &str, subject_id: &str, shape: &[u64]) -> Result<()> {
        if obs_id.is_empty() {
            return Err(Error::Invalid("obs_id and obs_subject_id must be non-empty".into()));
        }
        crate::dataset::check_subject_id(subject_id)?;
        if !(3..=4).contains(&shape.len()) {
            return Err(Error::shape(format!("volume {obs_id:?}: volumes are 3D or 4D, got shape {shape:?}")));
        }
        if self.seen.contains(obs_id) {
            return Err(Error::Alignment(format!("obs_id {obs_id:?} already exists in {}", self.uri)));
        }
        if let Some(s) = &self.shape
            && (shape.len() < 3 || shape[..3] != s[..])
        {
            return Err(Error::shape(format!(
                "Dimension mismatch: volume {obs_id:?} has shape {shape:?}; this collection holds volumes of shape {s:?}"
            )));
        }
        Ok(())
    }

    /// Writes one volume from raw cells.
    #[allow(clippy::too_many_arguments)]
    pub fn write_raw(
        &mut self,
        bytes: &[u8],
        layout: Layout,
        shape: &[u64],
        dtype: Datatype,
        obs_id: &str,
        subject_id: &str,
        attrs: &[(String, Cell)],
        extra_metadata: &[(String, MetaValue)],
    ) -> Result<()> {
        self.check_row(obs_id, subject_id, shape)?;
        let mut row = Frame {
            columns: vec![
                Column::new("obs_subject_id", Values::Str(vec![subject_id.to_owned()])),
                Column::new("obs_id", Values::Str(vec![obs_id.to_owned()])),
            ],
        };
        for (name, cell) in attrs {
            if OBS_INDEX.contains(&name.as_str()) {
                continue;
            }
            let existing = self
                .schema
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .or_else(|| self.rows.column(name).map(|c| ColumnType::of(&c.values)));
            if existing.is_none() && matches!(cell, Cell::Null) {
                // A null says nothing about the column's type: wait for a value (rows before it
                // are filled with nulls then); all-null columns become text at finish.
                self.untyped.insert(name.clone());
                continue;
            }
            row.columns.push(cell_column(name, cell, existing)?);
        }
        row.check()?;
        let dir = self.next_dir;
        let vuri = join(&join(&self.uri, VOLUMES), &dir.to_string());
        let mut meta = vec![("obs_id".to_owned(), MetaValue::from(obs_id))];
        meta.push(("voxel_checksum".into(), MetaValue::from(voxel_checksum(bytes, layout))));
        meta.extend(extra_metadata.iter().cloned());
        Volume::create_with(&vuri, shape, dtype, &self.ctx, &self.write, &meta, Some((bytes, layout)))?;
        self.rows.append(&row)?;
        self.next_dir += 1;
        self.dirs.push(dir);
        self.shapes.push(shape.to_vec());
        self.seen.insert(obs_id.to_owned());
        Ok(())
    }

    /// Registers everything written: renumbers volume directories into sorted order if needed,
    /// writes the obs rows (one fragment), adds the `volumes` members (one group write) and
    /// updates `n_volumes`/`name`/`x_dim..z_dim` (one metadata write).
    pub fn finish(mut self) -> Result<VolumeCollection> {
        self.register()?;
        self.done = true;
        VolumeCollection::open(&self.uri, &self.ctx)
    }

    fn register(&mut self) -> Result<()> {
        let vbase = join(&self.uri, VOLUMES);
        // (subject, obs_id, current dir) of every volume, existing first.
        let mut all: Vec<(String, String, String)> = Vec::new();
        let mut old_shape_uniform: Option<Option<[u64; 3]>> = None;
        if let Some(ex) = &self.existing {
            let c = &ex.collection;
            for (i, d) in ex.dirs.iter().enumerate() {
                all.push((c.subject_ids()[i].clone(), c.obs_ids()[i].clone(), d.clone()));
            }
            if !c.is_empty() {
                old_shape_uniform = Some(c.shape());
            }
        }
        let new_subjects = self.rows.column("obs_subject_id").and_then(|c| c.values.as_str()).unwrap_or(&[]).to_vec();
        let new_ids = self.rows.column("obs_id").and_then(|c| c.values.as_str()).unwrap_or(&[]).to_vec();
        for ((s, id), d) in new_subjects.iter().zip(&new_ids).zip(&self.dirs) {
            all.push((s.clone(), id.clone(), d.to_string()));
        }
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.sort_by(|&a, &b| {
            (all[a].0.as_bytes(), all[a].1.as_bytes()).cmp(&(all[b].0.as_bytes(), all[b].1.as_bytes()))
        });
        // Renumber: the volume of sorted rank r must live at volumes/<r>.
        let moves: Vec<(String, String)> = order
            .iter()
            .enumerate()
            .filter(|&(rank, &i)| all[i].2 != rank.to_string())
            .map(|(rank, &i)| (all[i].2.clone(), rank.to_string()))
            .collect();
        if !moves.is_empty() {
            let vfs = self.ctx.vfs()?;
            let tmp = |d: &str| join(&vbase, &format!(".renumber-{d}"));
            for (from, _) in &moves {
                vfs.move_dir(&join(&vbase, from), &tmp(from)).at("renumber", &vbase)?;
            }
            for (from, to) in &moves {
                vfs.move_dir(&tmp(from), &join(&vbase, to)).at("renumber", &vbase)?;
            }
            self.ctx.clear_cache();
        }
        let total = all.len();
        // columns that only ever held nulls: text
        let n = self.rows.len();
        for name in std::mem::take(&mut self.untyped) {
            if self.rows.column(&name).is_none() && !self.schema.iter().any(|(s, _)| *s == name) {
                self.rows.columns.push(Column {
                    name,
                    values: Values::Str(vec![String::new(); n]),
                    valid: Some(vec![false; n]),
                });
            }
        }
        // obs rows (full rows; one fragment)
        if !self.rows.is_empty() {
            Dataframe::open(&self.ctx, &join(&self.uri, OBS))?.write(&self.rows)?;
        }
        // members for the new positions
        let have: HashSet<String> = match &self.existing {
            Some(ex) => ex.collection.members().iter().cloned().collect(),
            None => HashSet::new(),
        };
        let add: Vec<(String, String)> =
            (0..total).map(|r| r.to_string()).filter(|r| !have.contains(r)).map(|r| (r.clone(), r)).collect();
        update_group(&self.ctx, &vbase, &GroupUpdate { add, ..Default::default() })?;
        // metadata last: n_volumes acts as the commit of this write
        let spatial: HashSet<[u64; 3]> = self.shapes.iter().map(|s| [s[0], s[1], s[2]]).collect();
        let uniform = match old_shape_uniform {
            // A declared shape holds (every volume was checked against it), even with no volume
            // written yet.
            None => match self.shape.as_deref() {
                Some(&[x, y, z]) => Some([x, y, z]),
                _ => (spatial.len() == 1).then(|| *spatial.iter().next().expect("one shape")),
            },
            Some(None) => None,
            Some(Some(s)) => (spatial.is_empty() || (spatial.len() == 1 && spatial.contains(&s))).then_some(s),
        };
        let mut put = vec![
            ("n_volumes".to_owned(), MetaValue::from(total as i64)),
            (LAYOUT_KEY.to_owned(), MetaValue::from(format!("sorted:{total}"))),
        ];
        if let Some(n) = &self.name {
            put.push(("name".into(), MetaValue::from(n.as_str())));
        }
        let mut delete = Vec::new();
        match uniform {
            Some([x, y, z]) => {
                put.push(("x_dim".into(), MetaValue::from(x as i64)));
                put.push(("y_dim".into(), MetaValue::from(y as i64)));
                put.push(("z_dim".into(), MetaValue::from(z as i64)));
            }
            None if old_shape_uniform.flatten().is_some() => {
                delete = vec!["x_dim".into(), "y_dim".into(), "z_dim".into()];
            }
            None => {}
        }
        update_group(&self.ctx, &self.uri, &GroupUpdate { put, delete, ..Default::default() })
    }

    /// Removes everything this writer wrote (and the collection, if it created it).
    pub fn abort(mut self) -> Result<()> {
        self.done = true;
        self.rollback()
    }

    fn rollback(&mut self) -> Result<()> {
        if self.created {
            return self.ctx.remove_uri(&self.uri);
        }
        let vbase = join(&self.uri, VOLUMES);
        for d in &self.dirs {
            self.ctx.remove_uri(&join(&vbase, &d.to_string()))?;
        }
        Ok(())
    }
}

/// The dataset a collection at `uri` belongs to: `<root>` for `<root>/collections/<name>` when
/// both are groups, else `None` (a collection on its own).
fn dataset_root_of(ctx: &Context, uri: &str) -> Result<Option<String>> {
    let trimmed = uri.trim_end_matches('/');
    let Some((parent, _name)) = trimmed.rsplit_once('/') else { return Ok(None) };
    let Some(root) = parent.strip_suffix(&format!("/{}", crate::dataset::COLLECTIONS)) else { return Ok(None) };
    let group = Some(crate::context::ObjectKind::Group);
    if root.is_empty() || ctx.object_kind(parent)? != group || ctx.object_kind(root)? != group {
        return Ok(None);
    }
    Ok(Some(root.to_owned()))
}

impl Drop for CollectionWriter {
    fn drop(&mut self) {
        if !self.done && !self.keep_on_drop && self.ctx.in_current_process() {
            let _ = self.rollback();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_of_values_takes_one_type_and_converts_exactly() {
        let cells = [Cell::Int(1), Cell::Null, Cell::Float(2.5)];
        let c = cells_column("x", &cells, None).unwrap();
        assert_eq!(c.values.datatype(), Datatype::Float64);
        assert_eq!(c.valid, Some(vec![true, false, true]));
        assert_eq!(c.values.get_f64(2), Some(2.5));
        let all_null = cells_column("x", &[Cell::Null, Cell::Null], None).unwrap();
        assert!(matches!(all_null.values, Values::Str(_)));
        let e = cells_column("x", &[Cell::Str("a".into()), Cell::Int(1)], None).unwrap_err();
        assert!(matches!(&e, Error::Schema(m) if m.contains("mixes text, int")), "{e}");
        let int8 = ColumnType { datatype: Datatype::Int8, var: false };
        let c = cells_column("n", &[Cell::Float(3.0), Cell::Bool(true)], Some(int8)).unwrap();
        assert_eq!((c.values.get_i64(0), c.values.get_i64(1), c.valid), (Some(3), Some(1), None));
        let e = cells_column("n", &[Cell::Int(300)], Some(int8)).unwrap_err();
        assert!(e.to_string().contains("300 does not fit") && e.to_string().contains("out of range"), "{e}");
        assert!(cells_column("n", &[Cell::Float(2.5)], Some(int8)).is_err());
        assert!(cells_column("s", &[Cell::Int(2)], Some(ColumnType::STR)).is_err());
    }

    #[test]
    fn assign_obs_ids_numbers_repeats_and_taken_ids() {
        let sids: Vec<String> = ["a", "b", "a", "a"].iter().map(|s| (*s).to_owned()).collect();
        let got = assign_obs_ids(&sids, "T1w", &["b_T1w".to_owned()]);
        assert_eq!(got, ["a_T1w", "b_T1w_acq-1", "a_T1w_acq-1", "a_T1w_acq-2"]);
    }

    #[test]
    fn rename_obs_ids_numbers_every_volume_of_a_repeated_subject() {
        let sids: Vec<String> = ["a", "b", "a"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(rename_obs_ids(&sids, "T2w"), ["a_T2w_acq-1", "b_T2w", "a_T2w_acq-2"]);
    }

    #[test]
    fn new_subjects_need_obs_meta_rows() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
        let (existing, given) = (s(&["a"]), s(&["a", "c", "b"]));
        assert!(new_subjects_with_rows(&existing, &s(&["a"]), None).unwrap().is_empty());
        let e = new_subjects_with_rows(&existing, &given, None).unwrap_err().to_string();
        assert!(e.contains("obs_meta required") && e.contains("\"b\""), "{e}");
        let e = new_subjects_with_rows(&existing, &given, Some(&s(&["b"]))).unwrap_err().to_string();
        assert!(e.contains("missing entries") && e.contains("\"c\""), "{e}");
        assert_eq!(new_subjects_with_rows(&existing, &given, Some(&s(&["c", "b", "z"]))).unwrap(), s(&["b", "c"]));
    }
}
