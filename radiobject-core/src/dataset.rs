//! Datasets (the reference's `RadiObject`): a root group holding a subject-level `obs_meta`
//! dataframe and a `collections` group of [`VolumeCollection`]s.
//!
//! ```text
//! <root>/                 group   meta: subject_count INT64, n_collections INT64
//!   obs_meta/             sparse  dims obs_subject_id, obs_id (= obs_subject_id); attrs: user columns + obs_ids
//!   collections/          group   one member per collection, named by it
//!     <name>/             a VolumeCollection
//! ```
//!
//! `obs_meta` is written with both dimensions and the `obs_ids` attribute (a JSON list of the
//! subject's obs_ids across all collections, formatted as Python's `json.dumps(sorted(ids))`):
//! the PyPI release of the reference reads the two-dimension form, its current code reads any
//! dimensions plus `obs_ids`, so both read our datasets. Both forms are read here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::collection::{CollectionWriter, VolumeCollection};
use crate::config::WriteConfig;
use crate::context::Context;
use crate::dataframe::{Column, ColumnType, Dataframe, Frame, Values};
use crate::error::{Error, Result, StorageContext};
use crate::group::{GroupInfo, GroupUpdate, create_group, join, leaf, read_group, update_group};
use crate::lock::{LOCK_NAME, WriteLock};
use crate::metadata::MetaValue;

/// Member name of the subject table.
pub const OBS_META: &str = "obs_meta";
/// Member name of the collections group.
pub const COLLECTIONS: &str = "collections";

/// `json.dumps(sorted(ids))` exactly as Python writes it (", " separator, non-ASCII escaped).
pub fn obs_ids_json(ids: &[String]) -> String {
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut out = String::from("[");
    for (i, id) in sorted.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('"');
        for ch in id.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}

struct Inner {
    ctx: Context,
    uri: String,
    group: GroupInfo,
    obs_meta: Frame,
    index_columns: Vec<String>,
    subjects: Vec<String>,
    collection_names: Vec<String>,
    collections: crate::sync::ForkMutex<HashMap<String, VolumeCollection>>,
}

/// An opened dataset.
#[derive(Clone)]
pub struct Dataset {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("uri", &self.inner.uri)
            .field("subjects", &self.inner.subjects.len())
            .field("collections", &self.inner.collection_names)
            .finish()
    }
}

impl Dataset {
    /// Opens a dataset: one read of the root group, the collections group and `obs_meta`.
    pub fn open(uri: &str, ctx: &Context) -> Result<Dataset> {
        let ctx = ctx.for_current_process()?;
        let uri = uri.trim_end_matches('/').to_owned();
        let group = read_group(&ctx, &uri, "RadiObject")?;
        if group.member(COLLECTIONS).is_none() && group.member(OBS_META).is_none() {
            return Err(Error::WrongObjectType { uri: uri.clone(), expected: "RadiObject", found: "group" });
        }
        let colls = read_group(&ctx, &join(&uri, COLLECTIONS), "collections group")?;
        let df = Dataframe::open(&ctx, &join(&uri, OBS_META))?;
        let index_columns = df.index_columns().to_vec();
        let obs_meta = df.read(None)?;
        let subjects = unique_subjects(&obs_meta)?;
        Ok(Dataset {
            inner: Arc::new(Inner {
                ctx,
                uri,
                group,
                obs_meta,
                index_columns,
                subjects,
                collection_names: colls.members.into_iter().map(|m| m.name).collect(),
                collections: crate::sync::ForkMutex::new(HashMap::new()),
            }),
        })
    }

    /// The root URI.
    pub fn uri(&self) -> &str {
        &self.inner.uri
    }

    /// The context it reads through.
    pub fn context(&self) -> &Context {
        &self.inner.ctx
    }

    /// Root metadata.
    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.inner.group.metadata
    }

    /// The subject rows, sorted by subject.
    pub fn obs_meta(&self) -> &Frame {
        &self.inner.obs_meta
    }

    /// Index (dimension) columns of `obs_meta`: `[obs_subject_id]` or `[obs_subject_id, obs_id]`.
    pub fn obs_meta_index(&self) -> &[String] {
        &self.inner.index_columns
    }

    /// Subject ids, sorted.
    pub fn subject_ids(&self) -> &[String] {
        &self.inner.subjects
    }

    /// Collection names in TileDB's member order.
    pub fn collection_names(&self) -> &[String] {
        &self.inner.collection_names
    }

    /// The collection `name` (opened once, then cached).
    pub fn collection(&self, name: &str) -> Result<VolumeCollection> {
        if let Some(c) = self.inner.collections.lock().get(name) {
            return Ok(c.clone());
        }
        if !self.inner.collection_names.iter().any(|n| n == name) {
            return Err(Error::NotFound {
                uri: join(&join(&self.inner.uri, COLLECTIONS), name),
                expected: "collection",
            });
        }
        let c = VolumeCollection::open(&join(&join(&self.inner.uri, COLLECTIONS), name), &self.inner.ctx)?;
        self.inner.collections.lock().insert(name.to_owned(), c.clone());
        Ok(c)
    }

    /// Renames a collection: its directory, its member of `collections`, its `name` metadata.
    pub fn rename_collection(&self, old: &str, new: &str) -> Result<Dataset> {
        let ctx = &self.inner.ctx;
        check_collection_name(new)?;
        if !self.inner.collection_names.iter().any(|n| n == old) {
            return Err(Error::NotFound {
                uri: join(&join(&self.inner.uri, COLLECTIONS), old),
                expected: "collection",
            });
        }
        if self.inner.collection_names.iter().any(|n| n == new) {
            return Err(Error::AlreadyExists { uri: join(&join(&self.inner.uri, COLLECTIONS), new) });
        }
        let _lock = WriteLock::acquire(ctx, &self.inner.uri, "rename collection", None)?;
        let base = join(&self.inner.uri, COLLECTIONS);
        let (from, to) = (join(&base, old), join(&base, new));
        if ctx.object_kind(&to)?.is_some() {
            return Err(Error::AlreadyExists { uri: to });
        }
        update_group(
            ctx,
            &from,
            &GroupUpdate { put: vec![("name".into(), MetaValue::from(new))], ..Default::default() },
        )?;
        ctx.vfs()?.move_dir(&from, &to).at("rename", &from)?;
        update_group(
            ctx,
            &base,
            &GroupUpdate {
                remove: vec![old.to_owned()],
                add: vec![(new.to_owned(), new.to_owned())],
                ..Default::default()
            },
        )?;
        Dataset::open(&self.inner.uri, ctx)
    }

    /// Copies the whole dataset to `dst` (relative member URIs keep the copy valid).
    pub fn copy_to(&self, dst: &str) -> Result<Dataset> {
        let ctx = &self.inner.ctx;
        if ctx.object_kind(dst)?.is_some() {
            return Err(Error::AlreadyExists { uri: dst.to_owned() });
        }
        ctx.vfs()?.copy_dir(&self.inner.uri, dst).at("copy", &self.inner.uri)?;
        // a writer's lock copied along is not the copy's
        crate::lock::break_lock(ctx, dst)?;
        Dataset::open(dst, ctx)
    }
}

fn unique_subjects(obs_meta: &Frame) -> Result<Vec<String>> {
    let s = obs_meta
        .column("obs_subject_id")
        .and_then(|c| c.values.as_str())
        .ok_or_else(|| Error::Invalid("obs_meta has no obs_subject_id column".into()))?;
    let mut out: Vec<String> = Vec::with_capacity(s.len());
    for id in s {
        if out.last() != Some(id) {
            out.push(id.clone());
        }
    }
    Ok(out)
}

/// The one rule for collection names, checked before anything is written: a collection is a
/// folder of the dataset and a member of its group, so its name must be one path component that
/// is not hidden and not reserved by TileDB (`__meta`, `__group`, `__tiledb_group.tdb`, ... all
/// start with `__`).
pub fn check_collection_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.starts_with('.') {
        Some("it starts with '.' ('.', '..' and hidden names are not allowed)")
    } else if name.contains(['/', '\\']) {
        Some("it contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("it contains control characters")
    } else if name.starts_with("__") {
        Some("names starting with '__' are reserved by TileDB")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::Invalid(format!(
            "invalid collection name {name:?}: {why}; use letters, digits, '-', '_' and '.'"
        ))),
        None => Ok(()),
    }
}

/// The one rule for subject ids: not empty, not only whitespace, no control characters (they
/// name rows of `obs_meta` and prefix every `obs_id`).
pub fn check_subject_id(id: &str) -> Result<()> {
    if id.trim().is_empty() || id.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "invalid subject id {id:?}: subject ids must be non-empty and free of control characters"
        )));
    }
    Ok(())
}

/// `lock` must be the write lock of `uri`.
fn check_lock(lock: &WriteLock, uri: &str) -> Result<()> {
    if lock.root() != uri.trim_end_matches('/') {
        return Err(Error::Invalid(format!("the write lock of {} does not lock {uri}", lock.root())));
    }
    Ok(())
}

/// The one rule for `obs_meta` rows, checked before anything is written or registered: an
/// `obs_subject_id` text column without nulls, every id valid ([`check_subject_id`]) and given
/// once, columns of equal length with unique names, and columns the dataset already stores
/// (`stored`, from [`Dataframe::columns`]) given with their stored type.
pub fn check_obs_meta(rows: &Frame, stored: &[(String, ColumnType)]) -> Result<()> {
    rows.check()?;
    let col = rows.column("obs_subject_id").ok_or_else(|| {
        Error::Invalid(format!(
            "obs_meta needs an obs_subject_id column (it has: {})",
            if rows.columns.is_empty() { "no columns".to_owned() } else { rows.names().join(", ") }
        ))
    })?;
    let ids = col.values.as_str().ok_or_else(|| {
        Error::Invalid(format!("obs_meta's obs_subject_id column must hold text, not {}", col.values.datatype()))
    })?;
    if let Some(i) = (0..ids.len()).find(|&i| col.is_null(i)) {
        return Err(Error::Invalid(format!("obs_meta row {i} has no obs_subject_id (null)")));
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        check_subject_id(id).map_err(|e| Error::Invalid(format!("obs_meta row {i}: {e}")))?;
        if let Some(first) = seen.insert(id.as_str(), i) {
            return Err(Error::Alignment(format!(
                "obs_meta gives subject {id:?} twice (rows {first} and {i}); give one row per subject"
            )));
        }
    }
    for c in &rows.columns {
        let Some((_, t)) = stored.iter().find(|(n, _)| *n == c.name) else { continue };
        let have = ColumnType::of(&c.values);
        if c.name != "obs_id" && c.name != "obs_ids" && (have.var != t.var || (!t.var && have.datatype != t.datatype)) {
            return Err(Error::Invalid(format!(
                "obs_meta column {:?} is stored as {}, got {} values",
                c.name, t.datatype, have.datatype
            )));
        }
    }
    Ok(())
}

/// Builds a dataset: the skeleton at creation, collections registered one by one (one group write
/// each), `obs_meta` (with `obs_ids`) and the counts at [`finish`](Self::finish).
///
/// Dropping an unfinished writer removes the dataset if this writer created it.
///
/// A writer holds the dataset's write lock ([`crate::lock`]) from its creation until it is
/// finished, aborted or dropped: a second writer of the same dataset is refused before it writes
/// anything.
pub struct DatasetWriter {
    ctx: Context,
    uri: String,
    /// Released after the rollback of an unfinished writer (`Drop::drop` runs before fields drop).
    lock: Option<Arc<WriteLock>>,
    created: bool,
    /// Collections that were in place before this writer (never removed on rollback).
    kept: Vec<String>,
    obs_meta: Option<Frame>,
    names: Vec<String>,
    /// Collection writers handed to [`register`](DatasetWriter::register), registered at
    /// [`finish`](DatasetWriter::finish) (dropped unregistered, with what they wrote, otherwise).
    pending: Vec<(String, CollectionWriter)>,
    done: bool,
}

/// obs_ids are unique across a dataset. `new` lists the obs_ids each collection is about to get;
/// `stored` those the dataset's collections already hold. Refuses an obs_id given twice in `new`
/// (in one collection or two) or already stored in *another* collection (appending to a
/// collection checks its own ids itself), naming the first few.
pub fn check_unique_obs_ids(new: &[(String, Vec<String>)], stored: &[(String, Vec<String>)]) -> Result<()> {
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for (name, ids) in stored {
        for id in ids {
            owner.insert(id.as_str(), name.as_str());
        }
    }
    let mut given: HashMap<&str, &str> = HashMap::new();
    let mut clashes: Vec<String> = Vec::new();
    for (name, ids) in new {
        for id in ids {
            if let Some(other) = given.insert(id.as_str(), name.as_str()) {
                clashes.push(format!("{id:?} (in {other:?} and {name:?})"));
            } else if let Some(other) = owner.get(id.as_str()).filter(|o| **o != name.as_str()) {
                clashes.push(format!("{id:?} (already in {other:?})"));
            }
        }
    }
    if clashes.is_empty() {
        return Ok(());
    }
    let n = clashes.len();
    clashes.truncate(5);
    Err(Error::Alignment(format!("obs_ids must be unique across a RadiObject: {} ({n} in all)", clashes.join(", "))))
}

/// With obs_meta rows given (`given`, besides those `stored`), every subject that has volumes
/// needs one.
fn rows_cover<'a>(subjects: impl Iterator<Item = &'a String>, given: &Frame, stored: &Frame) -> Result<()> {
    fn ids(f: &Frame) -> &[String] {
        f.column("obs_subject_id").and_then(|c| c.values.as_str()).unwrap_or(&[])
    }
    let have: HashSet<&String> = ids(given).iter().chain(ids(stored)).collect();
    let missing: BTreeSet<&String> = subjects.filter(|s| !have.contains(s)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let shown: Vec<&&String> = missing.iter().take(5).collect();
    Err(Error::Alignment(format!(
        "obs_meta has no row for subject(s) {shown:?} that have volumes ({} in all)",
        missing.len()
    )))
}

impl std::fmt::Debug for DatasetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetWriter").field("uri", &self.uri).field("collections", &self.names).finish()
    }
}

/// Fills a new dataset root whose `collections` group exists: `obs_meta` (`obs_ids` first, then
/// the given columns), both members, and zero counts.
fn init_root(ctx: &Context, uri: &str, obs_meta_schema: &[(String, ColumnType)]) -> Result<()> {
    let mut schema = vec![("obs_ids".to_owned(), ColumnType::STR)];
    schema.extend(obs_meta_schema.iter().filter(|(n, _)| n != "obs_ids").cloned());
    Dataframe::create(ctx, &join(uri, OBS_META), &["obs_subject_id", "obs_id"], &schema)?;
    update_group(
        ctx,
        uri,
        &GroupUpdate {
            add: vec![(OBS_META.into(), OBS_META.into()), (COLLECTIONS.into(), COLLECTIONS.into())],
            put: vec![("subject_count".into(), MetaValue::from(0i64)), ("n_collections".into(), MetaValue::from(0i64))],
            ..Default::default()
        },
    )
}

impl DatasetWriter {
    /// Creates the dataset skeleton at `uri` (refused if anything exists there), holding its write
    /// lock until the writer is finished or dropped.
    pub fn create(ctx: &Context, uri: &str, obs_meta_schema: &[(String, ColumnType)]) -> Result<DatasetWriter> {
        let ctx = ctx.for_current_process()?;
        let lock = Arc::new(WriteLock::acquire(&ctx, uri, "write", None)?);
        Self::create_locked(&ctx, uri, obs_meta_schema, lock)
    }

    /// [`create`](Self::create) under a write lock the caller already holds (ingest).
    pub fn create_locked(
        ctx: &Context,
        uri: &str,
        obs_meta_schema: &[(String, ColumnType)],
        lock: Arc<WriteLock>,
    ) -> Result<DatasetWriter> {
        let ctx = ctx.for_current_process()?;
        let uri = uri.trim_end_matches('/').to_owned();
        check_lock(&lock, &uri)?;
        create_group(&ctx, &uri)?;
        let setup = (|| -> Result<()> {
            create_group(&ctx, &join(&uri, COLLECTIONS))?;
            init_root(&ctx, &uri, obs_meta_schema)
        })();
        if let Err(e) = setup {
            let _ = ctx.remove_uri(&uri);
            return Err(e);
        }
        Ok(DatasetWriter {
            ctx,
            uri,
            lock: Some(lock),
            created: true,
            kept: Vec::new(),
            obs_meta: None,
            names: Vec::new(),
            pending: Vec::new(),
            done: false,
        })
    }

    /// Creates a dataset around collections already sitting at `<uri>/collections/<name>` for each
    /// name in `keep` (written there beforehand); register them with [`Self::link`]. `uri` may hold
    /// nothing else. A rollback removes only what this writer created, never those collections.
    pub fn create_around(
        ctx: &Context,
        uri: &str,
        obs_meta_schema: &[(String, ColumnType)],
        keep: &[String],
    ) -> Result<DatasetWriter> {
        let ctx = ctx.for_current_process()?;
        let uri = uri.trim_end_matches('/').to_owned();
        let base = join(&uri, COLLECTIONS);
        let vfs = ctx.vfs()?;
        let refuse = |why: String| Err(Error::AlreadyExists { uri: format!("{uri} ({why})") });
        if ctx.object_kind(&uri)?.is_some() {
            return refuse("already a TileDB object".into());
        }
        let lock = Arc::new(WriteLock::acquire(&ctx, &uri, "write", None)?);
        for entry in vfs.ls(&uri).at("list", &uri)? {
            if leaf(&entry) != COLLECTIONS && leaf(&entry) != LOCK_NAME {
                return refuse(format!("holds {entry}"));
            }
        }
        for entry in vfs.ls(&base).unwrap_or_default() {
            let name = leaf(&entry);
            if !keep.iter().any(|k| k == name) || ctx.object_kind(&entry)? != Some(crate::context::ObjectKind::Group) {
                return refuse(format!("holds {entry}, which is not one of the collections to keep"));
            }
        }
        let mut w = DatasetWriter {
            ctx: ctx.clone(),
            uri: uri.clone(),
            lock: Some(lock),
            created: true,
            kept: keep.to_vec(),
            obs_meta: None,
            names: Vec::new(),
            pending: Vec::new(),
            done: false,
        };
        let setup = (|| -> Result<()> {
            for g in [&uri, &base] {
                crate::ffi::Group::create(ctx.tdb(), g).at("create group", g)?;
            }
            init_root(&ctx, &uri, obs_meta_schema)
        })();
        if let Err(e) = setup {
            let _ = w.rollback();
            w.done = true;
            return Err(e);
        }
        Ok(w)
    }

    /// Registers a collection already at `<uri>/collections/<name>` (one group write).
    pub fn link(&mut self, name: &str) -> Result<VolumeCollection> {
        let coll = VolumeCollection::open(&join(&join(&self.uri, COLLECTIONS), name), &self.ctx)?;
        if !self.names.iter().any(|n| n == name) {
            update_group(
                &self.ctx,
                &join(&self.uri, COLLECTIONS),
                &GroupUpdate { add: vec![(name.to_owned(), name.to_owned())], ..Default::default() },
            )?;
            self.names.push(name.to_owned());
        }
        Ok(coll)
    }

    /// Removes what this writer created, sparing collections it was told to keep.
    fn rollback(&self) -> Result<()> {
        if !self.created {
            return Ok(());
        }
        if self.kept.is_empty() {
            return self.ctx.remove_uri(&self.uri);
        }
        let base = join(&self.uri, COLLECTIONS);
        for dir in [&self.uri, &base] {
            for marker in ["__group", "__meta", "__tiledb_group.tdb"] {
                self.ctx.remove_uri(&join(dir, marker))?;
            }
        }
        self.ctx.remove_uri(&join(&self.uri, OBS_META))?;
        for name in &self.names {
            if !self.kept.contains(name) {
                self.ctx.remove_uri(&join(&base, name))?;
            }
        }
        Ok(())
    }

    /// Continues an existing dataset (append subjects, add collections), holding its write lock
    /// until the writer is finished or dropped.
    pub fn extend(dataset: &Dataset) -> Result<DatasetWriter> {
        let lock = Arc::new(WriteLock::acquire(dataset.context(), dataset.uri(), "write", None)?);
        Self::extend_locked(dataset, lock)
    }

    /// [`extend`](Self::extend) under a write lock the caller already holds (ingest).
    pub fn extend_locked(dataset: &Dataset, lock: Arc<WriteLock>) -> Result<DatasetWriter> {
        check_lock(&lock, dataset.uri())?;
        Ok(DatasetWriter {
            ctx: dataset.context().clone(),
            uri: dataset.uri().to_owned(),
            lock: Some(lock),
            created: false,
            kept: Vec::new(),
            obs_meta: None,
            names: dataset.collection_names().to_vec(),
            pending: Vec::new(),
            done: false,
        })
    }

    /// The root URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The context used.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The write lock this writer holds.
    pub fn write_lock(&self) -> Option<&WriteLock> {
        self.lock.as_deref()
    }

    /// Rows to write to `obs_meta` (must hold `obs_subject_id`; other columns are user columns),
    /// checked now by [`check_obs_meta`].
    pub fn write_obs_meta(&mut self, rows: Frame) -> Result<()> {
        let stored = Dataframe::open(&self.ctx, &join(&self.uri, OBS_META))?.columns();
        check_obs_meta(&rows, &stored)?;
        if let Some(f) = &self.obs_meta {
            let mut all = f.clone();
            all.append(&rows)?;
            check_obs_meta(&all, &stored)?;
        }
        match &mut self.obs_meta {
            Some(f) => f.append(&rows)?,
            None => self.obs_meta = Some(rows),
        }
        Ok(())
    }

    /// Starts a new collection `name`; register it with [`Self::register`] once written.
    pub fn add_collection(
        &mut self,
        name: &str,
        shape: Option<&[u64]>,
        obs_schema: &[(String, ColumnType)],
        write: &WriteConfig,
    ) -> Result<CollectionWriter> {
        self.check_new_collection(name)?;
        CollectionWriter::create(
            &self.ctx,
            &join(&join(&self.uri, COLLECTIONS), name),
            Some(name),
            shape,
            obs_schema,
            write,
        )
    }

    /// Refuses `name` for a new collection: an invalid name ([`check_collection_name`]), or one
    /// the dataset or this writer already has.
    pub fn check_new_collection(&self, name: &str) -> Result<()> {
        check_collection_name(name)?;
        if self.names.iter().chain(self.pending.iter().map(|(n, _)| n)).any(|n| n == name) {
            return Err(Error::AlreadyExists { uri: join(&join(&self.uri, COLLECTIONS), name) });
        }
        Ok(())
    }

    /// Starts appending to the dataset's collection `name`; register it with [`Self::register`]
    /// once written.
    pub fn append_collection(&mut self, name: &str, write: &WriteConfig) -> Result<CollectionWriter> {
        if !self.names.iter().any(|n| n == name) {
            return Err(Error::NotFound { uri: join(&join(&self.uri, COLLECTIONS), name), expected: "collection" });
        }
        let coll = VolumeCollection::open(&join(&join(&self.uri, COLLECTIONS), name), &self.ctx)?;
        CollectionWriter::append(&coll, write)
    }

    /// The obs_ids of every registered collection (other than `except`) and pending writer.
    fn stored_obs_ids(&self, except: &str) -> Result<Vec<(String, Vec<String>)>> {
        let mut out = Vec::new();
        for other in self.names.iter().filter(|n| *n != except) {
            let c = VolumeCollection::open(&join(&join(&self.uri, COLLECTIONS), other), &self.ctx)?;
            out.push((other.clone(), c.obs_ids().to_vec()));
        }
        for (other, w) in self.pending.iter().filter(|(n, _)| n != except) {
            out.push((other.clone(), w.written_obs_ids().to_vec()));
        }
        Ok(out)
    }

    /// Takes a collection writer whose volumes are all written. It is checked now (its obs_ids
    /// against every other collection, [`check_unique_obs_ids`]) and registered at
    /// [`finish`](Self::finish), after the checks that span collections: until then nothing of it
    /// is visible, and a dataset writer dropped or aborted before that drops it with what it wrote.
    pub fn register(&mut self, writer: CollectionWriter) -> Result<()> {
        let name = leaf(writer.uri()).to_owned();
        if name.is_empty() {
            return Err(Error::Invalid("collection writer without a name".into()));
        }
        if self.pending.iter().any(|(n, _)| *n == name) {
            return Err(Error::AlreadyExists { uri: writer.uri().to_owned() });
        }
        check_unique_obs_ids(&[(name.clone(), writer.written_obs_ids().to_vec())], &self.stored_obs_ids(&name)?)?;
        self.pending.push((name, writer));
        Ok(())
    }

    /// Registers the pending collections: first checks that `obs_meta` rows (if any were given,
    /// besides the `stored` ones) cover every subject they bring, then finishes each writer and
    /// adds it to `collections`.
    fn register_pending(&mut self, stored: &Frame) -> Result<()> {
        if let Some(user) = &self.obs_meta {
            rows_cover(self.pending.iter().flat_map(|(_, w)| w.written_subject_ids()), user, stored)?;
        }
        for (name, writer) in std::mem::take(&mut self.pending) {
            writer.finish()?;
            if !self.names.contains(&name) {
                update_group(
                    &self.ctx,
                    &join(&self.uri, COLLECTIONS),
                    &GroupUpdate { add: vec![(name.clone(), name.clone())], ..Default::default() },
                )?;
                self.names.push(name);
            }
        }
        Ok(())
    }

    /// Writes `obs_meta` (user rows merged with the existing ones, `obs_ids` recomputed from every
    /// collection) and the root counts. Every subject that has volumes must have an `obs_meta` row
    /// if any `obs_meta` rows were given; subjects without rows get one.
    pub fn finish(mut self) -> Result<Dataset> {
        self.finish_inner()?;
        self.done = true;
        Dataset::open(&self.uri, &self.ctx)
    }

    fn finish_inner(&mut self) -> Result<()> {
        let ctx = self.ctx.clone();
        let mut df = Dataframe::open(&ctx, &join(&self.uri, OBS_META))?;
        let existing = df.read(None)?;
        self.register_pending(&existing)?;
        let base = join(&self.uri, COLLECTIONS);
        // obs_ids of every subject across all collections, and global obs_id uniqueness
        let mut ids_by_subject: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut all = Vec::new();
        for name in &self.names {
            let c = VolumeCollection::open(&join(&base, name), &ctx)?;
            for (s, id) in c.subject_ids().iter().zip(c.obs_ids()) {
                ids_by_subject.entry(s.clone()).or_default().push(id.clone());
            }
            all.push((name.clone(), c.obs_ids().to_vec()));
        }
        check_unique_obs_ids(&all, &[])?;
        let mut rows = existing.clone();
        if let Some(user) = self.obs_meta.take() {
            rows_cover(ids_by_subject.keys(), &user, &existing)?;
            // A subject given again keeps its other columns (the upsert rule); new subjects are added.
            let mut user = user;
            let system = |c: &Column| c.name != "obs_id" && c.name != "obs_ids";
            user.columns.retain(system);
            let mut stored = existing.clone();
            stored.columns.retain(system);
            let given = user.completed_from(&stored, &["obs_subject_id"])?;
            let replaced: HashSet<&String> =
                given.column("obs_subject_id").and_then(|c| c.values.as_str()).into_iter().flatten().collect();
            let ex_ids = existing.column("obs_subject_id").and_then(|c| c.values.as_str()).unwrap_or(&[]);
            let keep: Vec<usize> = (0..existing.len()).filter(|&i| !replaced.contains(&ex_ids[i])).collect();
            rows = existing.take(&keep);
            rows.append(&given)?;
        }
        // subjects with volumes but no row get a bare row
        let have: BTreeSet<String> =
            rows.column("obs_subject_id").and_then(|c| c.values.as_str()).into_iter().flatten().cloned().collect();
        let bare: Vec<String> = ids_by_subject.keys().filter(|s| !have.contains(*s)).cloned().collect();
        if !bare.is_empty() {
            rows.append(&Frame { columns: vec![Column::new("obs_subject_id", Values::Str(bare))] })?;
        }
        // obs_id := obs_subject_id (two-dimension layout), obs_ids recomputed
        let subjects: Vec<String> =
            rows.column("obs_subject_id").and_then(|c| c.values.as_str()).unwrap_or(&[]).to_vec();
        let obs_ids: Vec<String> =
            subjects.iter().map(|s| obs_ids_json(ids_by_subject.get(s).map(Vec::as_slice).unwrap_or(&[]))).collect();
        rows.columns.retain(|c| c.name != "obs_id" && c.name != "obs_ids");
        rows.columns.insert(1, Column::new("obs_id", Values::Str(subjects.clone())));
        rows.columns.push(Column::new("obs_ids", Values::Str(obs_ids)));
        if df.index_columns().len() == 1 {
            rows.columns.retain(|c| c.name != "obs_id");
        }
        df.write(&rows)?;
        let n_subjects = {
            let mut s = subjects;
            s.sort();
            s.dedup();
            s.len()
        };
        update_group(
            &ctx,
            &self.uri,
            &GroupUpdate {
                put: vec![
                    ("subject_count".into(), MetaValue::from(n_subjects as i64)),
                    ("n_collections".into(), MetaValue::from(self.names.len() as i64)),
                ],
                ..Default::default()
            },
        )
    }

    /// Keeps what was written without finishing (the skeleton stays; used by resumable ingest).
    pub fn keep(mut self) {
        self.done = true;
    }

    /// Removes what this writer created (the whole dataset, unless it was built around kept
    /// collections, which stay).
    pub fn abort(mut self) -> Result<()> {
        self.done = true;
        self.rollback()
    }
}

impl Drop for DatasetWriter {
    fn drop(&mut self) {
        if !self.done && self.ctx.in_current_process() {
            let _ = self.rollback();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{check_collection_name, check_subject_id, check_unique_obs_ids, obs_ids_json};
    use crate::Error;

    #[test]
    fn obs_ids_are_unique_across_collections_given_and_stored() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let stored = vec![("T1w".to_owned(), ids(&["a_T1w", "b_T1w"]))];
        // new ids, and ids of the collection itself (an append checks those itself)
        check_unique_obs_ids(&[("seg".into(), ids(&["a_seg"])), ("T1w".into(), ids(&["a_T1w"]))], &stored).unwrap();
        let e = check_unique_obs_ids(&[("seg".into(), ids(&["a_seg", "b_T1w"]))], &stored).unwrap_err();
        assert!(matches!(&e, Error::Alignment(m) if m.contains(r#""b_T1w" (already in "T1w")"#)), "{e}");
        let e = check_unique_obs_ids(&[("x".into(), ids(&["i"])), ("y".into(), ids(&["i"]))], &[]).unwrap_err();
        assert!(e.to_string().contains(r#""i" (in "x" and "y")"#), "{e}");
        let e = check_unique_obs_ids(&[("x".into(), ids(&["i", "i"]))], &[]).unwrap_err();
        assert!(e.to_string().contains("(1 in all)"), "{e}");
    }

    #[test]
    fn one_rule_for_collection_names_and_subject_ids() {
        for ok in ["T1w", "FLAIR", "seg-manual", "ct_2", "t1.ce", "Zoë"] {
            check_collection_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "../../x", "a/b", "a\\b", "__meta", "__group", ".hidden", "a\nb"] {
            let e = check_collection_name(bad).unwrap_err().to_string();
            assert!(e.contains("invalid collection name"), "{bad:?}: {e}");
        }
        check_subject_id("sub-01").unwrap();
        for bad in ["", "  ", "a\0b", "a\tb"] {
            assert!(check_subject_id(bad).unwrap_err().to_string().contains("invalid subject id"), "{bad:?}");
        }
    }

    #[test]
    fn obs_ids_json_matches_python_json_dumps() {
        let ids = vec!["sub-01_seg".to_owned(), "sub-01_T1w".to_owned()];
        assert_eq!(obs_ids_json(&ids), r#"["sub-01_T1w", "sub-01_seg"]"#);
        assert_eq!(obs_ids_json(&[]), "[]");
        assert_eq!(obs_ids_json(&["Zoë_\"x\"".to_owned()]), r#"["Zo\u00eb_\"x\""]"#);
    }
}
