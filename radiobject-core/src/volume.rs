//! Volumes: 3D/4D dense TileDB arrays with one numeric attribute, `voxels`.
//!
//! Layout (shared with the Python reference, so either library reads the other's volumes):
//! dimensions `x, y, z[, t]` of type INT32 with domain `0..n-1`, one attribute `voxels` of the
//! volume's dtype, tile extents from [`TileConfig`](crate::config::TileConfig), compression from
//! [`CompressionConfig`](crate::config::CompressionConfig), string metadata `tile_orientation`
//! (and `obs_id` when part of a collection).
//!
//! New volumes use **column-major** cell and tile order, and reads return **Fortran-ordered**
//! arrays (x fastest, as NIfTI stores voxels and nibabel returns them): every tile is then copied
//! as contiguous runs instead of being scattered cell by cell. Volumes written row-major (by the
//! reference) read correctly, TileDB reorders them.
//!
//! A [`Volume`] keeps its array open for reading: no per-read open. Reads of regions go through
//! the context's tile cache; whole-volume reads and very large regions stream straight into the
//! result (see [`Volume::read_into`]).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ndarray::{ArrayD, ArrayViewD, IxDyn, ShapeBuilder};
use rayon::prelude::*;

use crate::cache::{LoadCell, LoadGuard, Lookup, Tile, TileKey};
use crate::config::WriteConfig;
use crate::context::Context;
use crate::dtype::{Datatype, Element, Layout};
use crate::error::{Error, Result, StorageContext};
use crate::ffi::{self, AttrSpec, DimSpec, FilterSpec, Mode, ObjectType, SchemaSpec};
use crate::format::FormatError;
use crate::format::array::{DirectArray, DirectError};
use crate::io::IoError;
use crate::metadata::MetaValue;
use crate::region::{Region, TileGrid, copy_box, copy_box_f_to_c, copy_tile_part};
use crate::sync::ForkRwLock;

/// Name of the voxel attribute.
pub const VOXELS_ATTR: &str = "voxels";
/// Dimension names, in order.
pub const DIM_NAMES: [&str; 4] = ["x", "y", "z", "t"];

/// Reads below this size are done in one query (splitting costs more than it saves).
const PARALLEL_MIN_BYTES: usize = 4 << 20;

/// How a read uses the tile cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheUse {
    /// Regions through the cache; whole volumes and regions larger than a quarter of the budget
    /// straight into the result.
    #[default]
    Auto,
    /// Whole volumes through the cache as well, when they fit a quarter of the budget.
    PreferCache,
}

/// What a volume array holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    /// Voxels along each axis.
    pub shape: Vec<u64>,
    /// Voxel type.
    pub dtype: Datatype,
    /// Tile extent along each axis.
    pub tile_extents: Vec<u64>,
    /// Cell order within tiles.
    pub cell_order: Layout,
    /// Order of tiles.
    pub tile_order: Layout,
    /// Dimension names.
    pub dim_names: Vec<String>,
    /// Attribute holding the voxels.
    pub attr: String,
    /// Compression filters on the voxels.
    pub filters: Vec<FilterSpec>,
    origin: Vec<i64>,
}

struct OpenState {
    ctx: Context,
    array: ffi::Array,
    info: VolumeInfo,
    grid: TileGrid,
    metadata: BTreeMap<String, MetaValue>,
    version: u64,
    /// The crate's own reader of this array's tiles, when it understands the array.
    direct: Option<Arc<DirectArray>>,
}

struct Inner {
    uri: String,
    ctx: Context,
    /// Fork-safe (a child reaches it through volumes it inherits); held only to swap the handle.
    state: ForkRwLock<Option<Arc<OpenState>>>,
}

/// An open volume. Cheap to clone; clones share the open array. `Send + Sync`: threads may read
/// one volume concurrently.
#[derive(Clone)]
pub struct Volume {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Volume");
        d.field("uri", &self.inner.uri);
        if let Some(st) = self.inner.state.read().as_ref() {
            d.field("shape", &st.info.shape).field("dtype", &st.info.dtype);
        }
        d.finish()
    }
}

/// A region read into an owned array of the volume's type (Fortran order).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum VolumeData {
    Int8(ArrayD<i8>),
    UInt8(ArrayD<u8>),
    Int16(ArrayD<i16>),
    UInt16(ArrayD<u16>),
    Int32(ArrayD<i32>),
    UInt32(ArrayD<u32>),
    Int64(ArrayD<i64>),
    UInt64(ArrayD<u64>),
    Float32(ArrayD<f32>),
    Float64(ArrayD<f64>),
}

/// Runs `$body` with `$t` bound to the Rust type of voxel datatype `$dt`; `$other` otherwise.
#[macro_export]
#[doc(hidden)]
macro_rules! with_voxel_type {
    ($dt:expr, $t:ident => $body:expr, _ => $other:expr) => {
        match $dt {
            $crate::Datatype::Int8 => {
                type $t = i8;
                $body
            }
            $crate::Datatype::UInt8 => {
                type $t = u8;
                $body
            }
            $crate::Datatype::Int16 => {
                type $t = i16;
                $body
            }
            $crate::Datatype::UInt16 => {
                type $t = u16;
                $body
            }
            $crate::Datatype::Int32 => {
                type $t = i32;
                $body
            }
            $crate::Datatype::UInt32 => {
                type $t = u32;
                $body
            }
            $crate::Datatype::Int64 => {
                type $t = i64;
                $body
            }
            $crate::Datatype::UInt64 => {
                type $t = u64;
                $body
            }
            $crate::Datatype::Float32 => {
                type $t = f32;
                $body
            }
            $crate::Datatype::Float64 => {
                type $t = f64;
                $body
            }
            _ => $other,
        }
    };
}

fn commit_names(vfs: &ffi::Vfs, uri: &str) -> Vec<String> {
    let mut names: Vec<String> = vfs
        .ls(&format!("{uri}/__commits"))
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

fn version_of(uri: &str, commits: &[String]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    uri.hash(&mut h);
    commits.hash(&mut h);
    h.finish()
}

fn classify_open_error(ctx: &Context, uri: &str, e: ffi::TdbError) -> Error {
    Error::open_failed(ctx.tdb(), uri, ObjectType::Array, "volume array", "TileDB array", e)
}

fn volume_info(uri: &str, schema: &ffi::SchemaInfo) -> Result<VolumeInfo> {
    let bad = |reason: String| Error::NotAVolume { uri: uri.to_owned(), reason };
    if schema.sparse {
        return Err(bad("it is a sparse array (volumes are dense)".into()));
    }
    if !(3..=4).contains(&schema.dims.len()) {
        return Err(bad(format!("it has {} dimensions (volumes have 3 or 4)", schema.dims.len())));
    }
    let mut shape = Vec::new();
    let mut origin = Vec::new();
    let mut extents = Vec::new();
    for d in &schema.dims {
        let (Some((lo, hi)), Some(ext)) = (d.domain, d.extent) else {
            return Err(bad(format!("dimension {} is not an integer dimension", d.name)));
        };
        shape.push((hi - lo + 1) as u64);
        origin.push(lo);
        extents.push(ext.max(1) as u64);
    }
    let attr = schema
        .attrs
        .iter()
        .find(|a| a.name == VOXELS_ATTR)
        .or_else(|| if schema.attrs.len() == 1 { schema.attrs.first() } else { None })
        .ok_or_else(|| bad(format!("no '{VOXELS_ATTR}' attribute")))?;
    if attr.nullable || attr.var {
        let what = if attr.nullable { "nullable" } else { "variable-sized" };
        return Err(bad(format!("attribute {} is {what}; volumes hold one non-null number per voxel", attr.name)));
    }
    if !attr.datatype.is_voxel_type() {
        return Err(bad(format!("attribute {} holds {:?} cells, not numeric voxels", attr.name, attr.datatype)));
    }
    Ok(VolumeInfo {
        shape,
        dtype: attr.datatype,
        tile_extents: extents,
        cell_order: schema.cell_order,
        tile_order: schema.tile_order,
        dim_names: schema.dims.iter().map(|d| d.name.clone()).collect(),
        attr: attr.name.clone(),
        filters: attr.filters.clone(),
        origin,
    })
}

fn open_state(uri: &str, ctx: &Context) -> Result<OpenState> {
    let vfs = ctx.vfs()?;
    // The cache version is the set of committed fragments the handle sees. List the commits before
    // and after opening: if both agree, the handle sees exactly that set.
    let mut attempt = 0;
    loop {
        let before = commit_names(vfs, uri);
        let array = ffi::Array::open(ctx.tdb(), uri, Mode::Read, None).map_err(|e| classify_open_error(ctx, uri, e))?;
        let after = commit_names(vfs, uri);
        attempt += 1;
        if before != after && attempt < 5 {
            continue;
        }
        let info = volume_info(uri, array.schema())?;
        let metadata = array.metadata().at("metadata read", uri)?;
        let version = if before == after {
            version_of(uri, &after)
        } else {
            // Commits kept changing while we opened: a version nobody else can share.
            version_of(uri, &[format!("unstable-{}", std::process::id()), format!("{:p}", &array)])
        };
        let direct = open_direct(ctx, uri, &info, &after);
        let mut info = info;
        if let Some(d) = &direct {
            // A current domain (TileDB 2.30) is the array's shape for now: reads stay inside it.
            info.shape = d.readable_box().iter().map(|&(_, hi)| hi).collect();
        }
        let grid = TileGrid::new(&info.shape, &info.tile_extents);
        return Ok(OpenState { ctx: ctx.clone(), array, info, grid, metadata, version, direct });
    }
}

/// Opens the direct reader for a volume libtiledb just opened, if the configuration asks for it
/// and the reader understands the array and sees the same commits; counts why not otherwise.
fn open_direct(ctx: &Context, uri: &str, info: &VolumeInfo, commits: &[String]) -> Option<Arc<DirectArray>> {
    if !ctx.config().read.direct_reads {
        return None;
    }
    let counters = ctx.direct();
    let storage = match ctx.storage_for(uri) {
        Ok(s) => s,
        Err(reason) => {
            counters.fallback(reason);
            return None;
        }
    };
    let remote = !storage.is_local();
    // On the context's pool: the open lists a few prefixes side by side.
    let opened = match ctx.pool() {
        Ok(pool) => pool.install(|| DirectArray::open(storage, &info.attr, None)),
        Err(_) => DirectArray::open(storage, &info.attr, None),
    };
    match opened {
        Ok(mut d) => {
            if remote && ctx.config().read.compressed_cache_mb > 0 {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                uri.hash(&mut h);
                d = d.with_stored_cache(ctx.compressed_cache().clone(), h.finish());
            }
            if d.readable_box().iter().any(|&(lo, _)| lo != 0) {
                // A current domain not anchored at the domain's low corner: libtiledb's reads.
                counters.fallback("current_domain");
                return None;
            }
            let same = d.commits == commits
                && d.shape == info.shape
                && d.extents == info.tile_extents
                && d.cell.datatype() == Some(info.dtype);
            if same {
                counters.volumes.fetch_add(1, Ordering::Relaxed);
                Some(Arc::new(d))
            } else {
                counters.fallback("changed_during_open");
                None
            }
        }
        Err(e) => {
            counters.fallback(fallback_reason(&e));
            None
        }
    }
}

/// Reads attribute `attr` of the dense array at `uri` with the direct reader only, as of `t_end`
/// (ms since the epoch; None = now), into a C-ordered array of the region (None = the whole
/// domain). Never falls back to libtiledb: an array the reader refuses is an
/// [`Error::Invalid`] saying why. For differential tests against libtiledb and for diagnosis.
pub fn direct_read_array(
    ctx: &Context,
    uri: &str,
    attr: &str,
    t_end: Option<u64>,
    region: Option<&Region>,
) -> Result<VolumeData> {
    let storage = ctx.storage_for(uri).map_err(|why| Error::Invalid(format!("{uri}: no direct storage ({why})")))?;
    let d = match ctx.workers()?.install(|| DirectArray::open(storage, attr, t_end)) {
        Ok(d) => d,
        Err(e) if e.is_unsupported() => return Err(Error::Invalid(format!("{uri}: direct reader refuses it: {e}"))),
        Err(e) => return Err(direct_error(uri, e)),
    };
    let readable = d.readable_box();
    let region = region.cloned().unwrap_or_else(|| Region::new(readable.clone()));
    region.check_within(&d.shape)?;
    if crate::region::intersect(region.ranges(), &readable).as_deref() != Some(region.ranges()) {
        return Err(Error::region(format!("region {region} of {uri} lies outside the current domain {readable:?}")));
    }
    let dtype = d.cell.datatype().ok_or_else(|| Error::UnsupportedDtype(format!("TileDB type {}", d.cell.0)))?;
    let shape = usize_vec(&region.shape());
    with_voxel_type!(dtype, T => {
        let n: usize = shape.iter().product();
        let mut v: Vec<T> = Vec::new();
        v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory { what: format!("region {region} of {uri}"), bytes: (n * dtype.size()) as u64 })?;
        v.resize(n, <T as bytemuck::Zeroable>::zeroed());
        ctx.workers()?.install(|| d.read_box(region.ranges(), bytemuck::cast_slice_mut(&mut v), true)).map_err(|e| direct_error(uri, e))?;
        let a = ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| Error::shape(e.to_string()))?;
        Ok(VolumeData::from(a))
    }, _ => Err(Error::UnsupportedDtype(dtype.to_string())))
}

/// Before a batch of reads: fetches the stored tiles the reads of remote volumes will miss, in
/// one request wave per volume (volumes side by side on the context's pool), into the
/// compressed-tile tier. The reads that follow then find their bytes in memory, so a batch pays
/// about one round trip instead of one per read. Local volumes, volumes read through libtiledb
/// and contexts without a compressed tier skip it. Errors are left to the reads (which report
/// them per item).
pub(crate) fn prefetch_stored(ctx: &Context, items: &[(&Volume, &Region)]) {
    if ctx.config().read.compressed_cache_mb == 0 || items.len() < 2 {
        return;
    }
    // Group the regions by volume; volumes not yet open are opened here, side by side (an open
    // on S3 is several round trips).
    let mut per: Vec<(&Volume, Vec<&Region>)> = Vec::new();
    for &(v, r) in items {
        match per.iter_mut().find(|(w, _)| Arc::ptr_eq(&w.inner, &v.inner)) {
            Some((_, rs)) => rs.push(r),
            None => per.push((v, vec![r])),
        }
    }
    let fetch = |(v, regions): (&Volume, Vec<&Region>)| {
        let Ok(st) = v.state() else { return };
        let Some(d) = st.direct.as_ref().filter(|d| !d.is_local()) else { return };
        let cache = st.ctx.cache();
        let mut tiles: Vec<Vec<u64>> = regions
            .into_iter()
            .filter(|r| r.check_within(&st.info.shape).is_ok())
            .flat_map(|r| st.grid.tiles_overlapping(r))
            .filter(|c| !cache.contains(&(st.version, st.grid.linear(c))))
            .collect();
        tiles.sort_unstable();
        tiles.dedup();
        let _ = d.prefetch(&tiles);
    };
    match ctx.pool() {
        Ok(pool) if per.len() > 1 => pool.install(|| per.into_par_iter().for_each(fetch)),
        _ => per.into_iter().for_each(fetch),
    }
}

/// A short, stable name for why the direct reader refused an array (a counter name).
fn fallback_reason(e: &DirectError) -> &'static str {
    let DirectError::Format(FormatError::Unsupported(msg)) = e else {
        return match e {
            DirectError::Io(_) => "io_error",
            _ => "corrupt_metadata",
        };
    };
    let has = |w: &str| msg.contains(w);
    if has("encrypt") {
        "encryption"
    } else if has("nullable") || has("value per cell") {
        "nullable_or_var"
    } else if has("filter") || has("compressor") {
        "filter"
    } else if has("version") || has("legacy") || has("__schema") {
        "format_version"
    } else if has("delete or update") {
        "delete_update"
    } else if has("overlapping") {
        "ambiguous_overlap"
    } else if has("attribute") || has("geometry") || has("schema") {
        "schema_evolution"
    } else {
        "other"
    }
}

/// A direct-read failure as the crate's error for volume `uri`.
fn direct_error(uri: &str, e: DirectError) -> Error {
    let uri = uri.to_owned();
    match e {
        DirectError::Format(FormatError::Corrupt(detail) | FormatError::Unsupported(detail)) => {
            Error::Corrupt { uri, detail }
        }
        DirectError::Io(IoError::Short { path, start, end, size }) => Error::Corrupt {
            uri,
            detail: format!("{path} is truncated: bytes {start}..{end} were expected, the file ends at {size}"),
        },
        DirectError::Io(e) => Error::Io { uri, detail: e.to_string() },
        DirectError::Interrupted => Error::Interrupted(format!("the read of {uri} stopped; nothing was returned")),
    }
}

/// The shape rule of every volume: 3D or 4D, no empty axis, each axis within the INT32 domain.
pub fn check_shape(shape: &[u64]) -> Result<()> {
    if !(3..=4).contains(&shape.len()) {
        return Err(Error::shape(format!(
            "volumes are 3D (x, y, z) or 4D (x, y, z, t); got a {}D shape {shape:?}",
            shape.len()
        )));
    }
    if let Some(axis) = shape.iter().position(|&n| n == 0) {
        return Err(Error::shape(format!(
            "axis {axis} of shape {shape:?} has size 0; every axis needs at least 1 voxel"
        )));
    }
    if let Some(&n) = shape.iter().find(|&&n| n > i32::MAX as u64) {
        return Err(Error::shape(format!("axis size {n} exceeds the INT32 dimension domain")));
    }
    Ok(())
}

fn compression_filters(w: &WriteConfig) -> Vec<FilterSpec> {
    use crate::config::Compressor;
    let l = w.compression.level;
    match w.compression.algorithm {
        Compressor::Zstd => vec![FilterSpec::Zstd(l)],
        Compressor::Lz4 => vec![FilterSpec::Lz4(l)],
        Compressor::Gzip => vec![FilterSpec::Gzip(l)],
        Compressor::None => vec![],
    }
}

/// The schema of a new volume.
fn volume_schema(shape: &[u64], dtype: Datatype, write: &WriteConfig) -> SchemaSpec {
    let extents = write.tile.extents_for_shape(shape);
    SchemaSpec {
        sparse: false,
        dims: shape
            .iter()
            .zip(&extents)
            .enumerate()
            .map(|(i, (&n, &e))| DimSpec {
                name: DIM_NAMES[i].to_owned(),
                datatype: Datatype::Int32,
                domain: Some((0, n as i64 - 1)),
                extent: Some(e as i64),
                filters: vec![],
            })
            .collect(),
        attrs: vec![AttrSpec {
            name: VOXELS_ATTR.to_owned(),
            datatype: dtype,
            var: false,
            nullable: false,
            filters: compression_filters(write),
        }],
        cell_order: Layout::ColMajor,
        tile_order: Layout::ColMajor,
        capacity: None,
        allows_dups: false,
        offsets_filters: vec![],
    }
}

/// Splits the last axis of `region` at tile boundaries into at most `max_slabs` groups.
fn slab_cuts(region: &Region, ext_last: u64, max_slabs: usize) -> Vec<u64> {
    let (a, b) = region.ranges()[region.ndim() - 1];
    let mut cuts = vec![a];
    let mut x = (a / ext_last + 1) * ext_last;
    while x < b {
        cuts.push(x);
        x += ext_last;
    }
    cuts.push(b);
    let slabs = cuts.len() - 1;
    if slabs <= max_slabs {
        return cuts;
    }
    let step = slabs.div_ceil(max_slabs);
    let mut merged: Vec<u64> = cuts.iter().step_by(step).copied().collect();
    if merged.last() != Some(&b) {
        merged.push(b);
    }
    merged
}

/// Splits a Fortran-ordered buffer over `region` into the contiguous slabs given by `cuts` along
/// the last axis.
fn split_slabs<'a>(region: &Region, cuts: &[u64], elem: usize, mut out: &'a mut [u8]) -> Vec<(Region, &'a mut [u8])> {
    let last = region.ndim() - 1;
    let plane: u64 = region.shape()[..last].iter().product::<u64>() * elem as u64;
    let mut slabs = Vec::with_capacity(cuts.len());
    for w in cuts.windows(2) {
        let (chunk, rest) = std::mem::take(&mut out).split_at_mut(((w[1] - w[0]) * plane) as usize);
        out = rest;
        let mut r = region.ranges().to_vec();
        r[last] = (w[0], w[1]);
        slabs.push((Region::new(r), chunk));
    }
    slabs
}

fn usize_vec(v: &[u64]) -> Vec<usize> {
    v.iter().map(|&x| x as usize).collect()
}

impl Volume {
    /// Opens the volume at `uri` for reading (the array stays open until the last clone drops).
    ///
    /// Errors: [`Error::NotFound`] if nothing is there, [`Error::WrongObjectType`] for a group,
    /// [`Error::NotAVolume`] for an array that is not a dense 3D/4D numeric array.
    pub fn open(uri: &str, ctx: &Context) -> Result<Volume> {
        let uri = uri.trim_end_matches('/').to_owned();
        let ctx = ctx.for_current_process()?;
        let st = open_state(&uri, &ctx)?;
        Ok(Volume { inner: Arc::new(Inner { uri, ctx, state: ForkRwLock::new(Some(Arc::new(st))) }) })
    }

    /// Creates an empty volume (every voxel the fill value) with tiling and compression from
    /// `write`, and opens it.
    pub fn create(uri: &str, shape: &[u64], dtype: Datatype, ctx: &Context, write: &WriteConfig) -> Result<Volume> {
        Self::create_with(uri, shape, dtype, ctx, write, &[], None)
    }

    /// Creates a volume holding `data` (C- or Fortran-ordered, or any strided view).
    pub fn from_array<T: Element>(
        uri: &str,
        data: ArrayViewD<'_, T>,
        ctx: &Context,
        write: &WriteConfig,
    ) -> Result<Volume> {
        Self::from_array_with(uri, data, ctx, write, &[])
    }

    /// Like [`from_array`](Self::from_array), also writing `metadata` in the same array session.
    pub fn from_array_with<T: Element>(
        uri: &str,
        data: ArrayViewD<'_, T>,
        ctx: &Context,
        write: &WriteConfig,
        metadata: &[(String, MetaValue)],
    ) -> Result<Volume> {
        let shape: Vec<u64> = data.shape().iter().map(|&n| n as u64).collect();
        check_shape(&shape)?;
        let (bytes, layout) = contiguous_bytes(&data);
        Self::create_with(uri, &shape, T::DATATYPE, ctx, write, metadata, Some((&bytes, layout)))
    }

    /// Creates a volume and, in one array session, writes `data` (raw cells in `layout`) and
    /// `metadata`. Validates everything first; if writing fails, the new array is removed again.
    /// Refuses to touch an existing object ([`Error::AlreadyExists`]).
    pub fn create_with(
        uri: &str,
        shape: &[u64],
        dtype: Datatype,
        ctx: &Context,
        write: &WriteConfig,
        metadata: &[(String, MetaValue)],
        data: Option<(&[u8], Layout)>,
    ) -> Result<Volume> {
        write_new_volume(uri, shape, dtype, ctx, write, metadata, data)?;
        Volume::open(uri, ctx)
    }

    fn state(&self) -> Result<Arc<OpenState>> {
        if let Some(st) = self.inner.state.read().as_ref()
            && st.ctx.in_current_process()
        {
            return Ok(st.clone());
        }
        // Opened without holding the lock: opening runs jobs on the context's pool, whose threads
        // may be waiting for this very lock (and a fork meanwhile must find it free). Threads that
        // race here each open; the first handle installed wins and the others are dropped.
        let ctx = self.inner.ctx.for_current_process()?;
        let opened = Arc::new(open_state(&self.inner.uri, &ctx)?);
        let mut w = self.inner.state.write();
        if let Some(st) = w.as_ref().filter(|s| s.ctx.in_current_process()) {
            return Ok(st.clone());
        }
        if let Some(stale) = w.take() {
            // Opened by the parent of this forked process: never touch its TileDB handles.
            std::mem::forget(stale);
        }
        *w = Some(opened.clone());
        Ok(opened)
    }

    /// Drops the open handle (outside the lock: closing it calls TileDB; a parent's handle in a
    /// forked child is leaked by the FFI owners).
    fn forget_state(&self) {
        let old = self.inner.state.write().take();
        drop(old);
    }

    /// Drops the open handle; the next access reopens the array (and sees new writes).
    pub fn reopen(&self) -> Result<()> {
        self.forget_state();
        self.state().map(|_| ())
    }

    /// The array URI.
    pub fn uri(&self) -> &str {
        &self.inner.uri
    }

    /// The context this volume reads through (in a forked child: that child's context).
    pub fn context(&self) -> Result<Context> {
        Ok(self.state()?.ctx.clone())
    }

    /// Shape, dtype and tiling.
    pub fn info(&self) -> Result<VolumeInfo> {
        Ok(self.state()?.info.clone())
    }

    /// Voxels along each axis.
    pub fn shape(&self) -> Result<Vec<u64>> {
        Ok(self.state()?.info.shape.clone())
    }

    /// Voxel type.
    pub fn dtype(&self) -> Result<Datatype> {
        Ok(self.state()?.info.dtype)
    }

    /// Array metadata as read when the volume was (re)opened.
    pub fn metadata(&self) -> Result<BTreeMap<String, MetaValue>> {
        Ok(self.state()?.metadata.clone())
    }

    /// The `obs_id` metadata, if any.
    pub fn obs_id(&self) -> Result<Option<String>> {
        Ok(self.state()?.metadata.get("obs_id").and_then(MetaValue::as_str).map(str::to_owned))
    }

    /// Writes metadata items in one array session, then reopens the volume.
    pub fn set_metadata(&self, items: &[(String, MetaValue)]) -> Result<()> {
        self.with_writer(|a, uri| {
            for (k, v) in items {
                a.put_metadata(k, v).at("metadata write", uri)?;
            }
            Ok(())
        })
    }

    /// Deletes metadata keys in one array session, then reopens the volume.
    pub fn delete_metadata(&self, keys: &[String]) -> Result<()> {
        self.with_writer(|a, uri| {
            for k in keys {
                a.delete_metadata(k).at("metadata delete", uri)?;
            }
            Ok(())
        })
    }

    fn with_writer(&self, f: impl FnOnce(&mut ffi::Array, &str) -> Result<()>) -> Result<()> {
        let ctx = self.state()?.ctx.clone();
        let uri = &self.inner.uri;
        let mut array = ffi::Array::open(ctx.tdb(), uri, Mode::Write, None).at("open for writing", uri)?;
        f(&mut array, uri)?;
        array.close().at("close", uri)?;
        // The read handle is a snapshot: reopen so this volume sees what it just wrote.
        self.forget_state();
        Ok(())
    }

    /// Writes raw cells (`layout` order, the volume's dtype) into `region`.
    pub fn write_bytes(&self, region: &Region, data: &[u8], layout: Layout) -> Result<()> {
        let st = self.state()?;
        region.check_within(&st.info.shape)?;
        let want = region.num_cells() as usize * st.info.dtype.size();
        if data.len() != want {
            return Err(Error::shape(format!(
                "data holds {} bytes but region {region} of {} needs {want}",
                data.len(),
                st.info.dtype
            )));
        }
        let ranges = self.inclusive(&st, region.ranges());
        let attr = st.info.attr.clone();
        drop(st);
        self.with_writer(|a, uri| a.write_dense(&ranges, layout, &attr, data).at("write", uri))
    }

    /// Writes `data` (shape = the region's shape, same dtype as the volume) into `region`.
    pub fn write_region<T: Element>(&self, region: &Region, data: ArrayViewD<'_, T>) -> Result<()> {
        let st = self.state()?;
        if st.info.dtype != T::DATATYPE {
            return Err(Error::Dtype { uri: self.inner.uri.clone(), expected: st.info.dtype, found: T::DATATYPE });
        }
        let want = region.shape();
        if data.shape().iter().map(|&n| n as u64).ne(want.iter().copied()) {
            return Err(Error::shape(format!(
                "data of shape {:?} does not fit region {region} of shape {want:?}",
                data.shape()
            )));
        }
        drop(st);
        let (bytes, layout) = contiguous_bytes(&data);
        self.write_bytes(region, &bytes, layout)
    }

    fn inclusive(&self, st: &OpenState, ranges: &[(u64, u64)]) -> Vec<(i64, i64)> {
        ranges.iter().zip(&st.info.origin).map(|(&(a, b), &o)| (o + a as i64, o + b as i64 - 1)).collect()
    }

    /// One TileDB read query of `ranges` into `out` (`layout` order), with read-path counters.
    fn query(&self, st: &OpenState, ranges: &[(u64, u64)], layout: Layout, out: &mut [u8]) -> Result<()> {
        let r = st.ctx.reads();
        r.queries.fetch_add(1, Ordering::Relaxed);
        if r.in_flight.fetch_add(1, Ordering::AcqRel) > 0 {
            r.parallel_queries.fetch_add(1, Ordering::Relaxed);
        }
        let res = st.array.read_dense(&self.inclusive(st, ranges), layout, &st.info.attr, out);
        r.in_flight.fetch_sub(1, Ordering::AcqRel);
        res.at("read", &self.inner.uri)
    }

    /// Reads `region` into `out`: raw cells of the volume's dtype, Fortran order.
    ///
    /// Regions go through the context's tile cache. Whole-volume reads, regions whose tiles exceed
    /// a quarter of the cache budget, and every read when the cache is disabled stream straight into
    /// `out` in one query (TileDB decodes its tiles in parallel): caching them would double their memory,
    /// and training loops that read whole volumes cycle through more data than a cache holds.
    pub fn read_into(&self, region: &Region, out: &mut [u8]) -> Result<()> {
        self.read_into_with(region, out, CacheUse::Auto)
    }

    /// [`read_into`](Self::read_into) with a choice of how whole-volume reads use the tile cache:
    /// [`CacheUse::PreferCache`] caches them too when they fit a quarter of the budget (training
    /// epochs over whole volumes that fit the cache then read epoch 2+ from memory).
    pub fn read_into_with(&self, region: &Region, out: &mut [u8], cache_use: CacheUse) -> Result<()> {
        self.read_impl(region, out, cache_use, false)
    }

    /// Like [`read_into_with`](Self::read_into_with), writing `out` in **C order** (last axis
    /// fastest, as NumPy and torch lay out arrays by default). Cached reads copy each tile's part
    /// transposed straight into `out` (no extra pass); reads that bypass the cache decode into a
    /// temporary Fortran-ordered buffer first.
    pub fn read_into_c(&self, region: &Region, out: &mut [u8], cache_use: CacheUse) -> Result<()> {
        self.read_impl(region, out, cache_use, true)
    }

    fn read_impl(&self, region: &Region, out: &mut [u8], cache_use: CacheUse, c_order: bool) -> Result<()> {
        let st = self.state()?;
        region.check_within(&st.info.shape)?;
        let elem = st.info.dtype.size();
        let want = region.num_cells() as usize * elem;
        if out.len() != want {
            return Err(Error::shape(format!("output holds {} bytes; region {region} needs {want}", out.len())));
        }
        let reads = st.ctx.reads();
        reads.regions.fetch_add(1, Ordering::Relaxed);
        let cache = st.ctx.cache();
        let footprint = st.grid.footprint_bytes(region, elem);
        let whole = region.is_full(&st.info.shape) && cache_use == CacheUse::Auto;
        if !cache.enabled() || whole || footprint > cache.budget() as u64 / 4 {
            reads.bypass_reads.fetch_add(1, Ordering::Relaxed);
            reads.bypass_bytes.fetch_add(want as u64, Ordering::Relaxed);
            match &st.direct {
                Some(d) => self.read_region_direct(&st, d, region, out, c_order),
                None => self.read_bypass_tiledb(&st, region, out, c_order),
            }
        } else {
            self.read_cached(&st, region, out, c_order)
        }
    }

    /// Reads `region` with libtiledb straight into `out`, in Fortran order or (through a temporary
    /// Fortran-ordered buffer, allocated fallibly) in C order.
    fn read_bypass_tiledb(&self, st: &OpenState, region: &Region, out: &mut [u8], c_order: bool) -> Result<()> {
        if !c_order {
            return self.read_direct(st, region, out);
        }
        let mut tmp: Vec<u8> = Vec::new();
        tmp.try_reserve_exact(out.len()).map_err(|_| Error::OutOfMemory {
            what: format!("region {region} of {}", self.inner.uri),
            bytes: out.len() as u64,
        })?;
        tmp.resize(out.len(), 0);
        self.read_direct(st, region, &mut tmp)?;
        let shape = usize_vec(&region.shape());
        let zero = vec![0; shape.len()];
        copy_box_f_to_c(st.info.dtype.size(), &tmp, &shape, &zero, out, &shape, &zero, &shape);
        Ok(())
    }

    /// Reads straight into `out` with one query: TileDB decodes the tiles in parallel, in batches
    /// bounded by `sm.mem.tile_upper_memory_limit`, so the peak stays near the result's size.
    fn read_direct(&self, st: &OpenState, region: &Region, out: &mut [u8]) -> Result<()> {
        // One query, not parallel slab queries: each query holds its own batch of decoded tiles
        // and worker threads keep their malloc arenas, so slabs measured ~20% faster but raised a
        // full read's peak memory from 1.2x to 1.9x the volume (docs/benchmarks.md).
        self.query(st, region.ranges(), Layout::ColMajor, out)
    }

    /// Decodes tiles with the direct reader on the context's pool (each clipped to the volume,
    /// Fortran order). A data file that vanished under the open handle (vacuumed) is read
    /// through libtiledb instead.
    fn direct_tiles(&self, st: &OpenState, d: &DirectArray, coords: &[Vec<u64>]) -> Result<Vec<Tile>> {
        let tiles = match st.ctx.workers()?.install(|| d.read_tiles(coords)) {
            Ok(t) => t,
            Err(DirectError::Io(IoError::NotFound(_))) => {
                return coords.iter().map(|c| self.fetch_tile_tiledb(st, c)).collect();
            }
            Err(e) => return Err(direct_error(&self.inner.uri, e)),
        };
        let c = st.ctx.direct();
        c.tiles.fetch_add(tiles.len() as u64, Ordering::Relaxed);
        c.tile_bytes.fetch_add(tiles.iter().map(|t| t.len() as u64).sum(), Ordering::Relaxed);
        Ok(tiles.into_iter().map(Arc::new).collect())
    }

    /// Reads `region` with the direct reader straight into `out` (Fortran or C order), in waves
    /// of tiles (see [`DirectArray::read_box`]): memory beyond `out` stays bounded by the wave. A
    /// data file that vanished under the open handle (vacuumed) is read through libtiledb instead.
    fn read_region_direct(
        &self,
        st: &OpenState,
        d: &DirectArray,
        region: &Region,
        out: &mut [u8],
        c_order: bool,
    ) -> Result<()> {
        match st.ctx.workers()?.install(|| d.read_box(region.ranges(), out, c_order)) {
            Ok(n) => {
                let c = st.ctx.direct();
                c.tiles.fetch_add(n as u64, Ordering::Relaxed);
                c.tile_bytes.fetch_add(st.grid.footprint_bytes(region, st.info.dtype.size()), Ordering::Relaxed);
                Ok(())
            }
            Err(DirectError::Io(IoError::NotFound(_))) => self.read_bypass_tiledb(st, region, out, c_order),
            Err(e) => Err(direct_error(&self.inner.uri, e)),
        }
    }

    fn fetch_tile(&self, st: &OpenState, coords: &[u64]) -> Result<Tile> {
        if let Some(d) = &st.direct {
            return self
                .direct_tiles(st, d, &[coords.to_vec()])?
                .pop()
                .ok_or_else(|| Error::Invalid("no tile decoded".into()));
        }
        self.fetch_tile_tiledb(st, coords)
    }

    fn fetch_tile_tiledb(&self, st: &OpenState, coords: &[u64]) -> Result<Tile> {
        let b = st.grid.tile_box(coords);
        let n: u64 = b.iter().map(|&(a, z)| z - a).product();
        let mut buf = vec![0u8; n as usize * st.info.dtype.size()];
        self.query(st, &b, Layout::ColMajor, &mut buf)?;
        Ok(Arc::new(buf))
    }

    /// Reads a group of missing tiles with one query over their bounding box and hands each
    /// tile to its waiters.
    fn fetch_group(
        &self,
        st: &OpenState,
        tiles: &[Vec<u64>],
        group: Vec<(usize, LoadGuard)>,
    ) -> Result<Vec<(usize, Tile)>> {
        if let [(i, _)] = group.as_slice() {
            let i = *i;
            let tile = self.fetch_tile(st, &tiles[i])?;
            let (_, guard) = group.into_iter().next().expect("one element");
            guard.fulfill(tile.clone());
            return Ok(vec![(i, tile)]);
        }
        let elem = st.info.dtype.size();
        let boxes: Vec<Vec<(u64, u64)>> = group.iter().map(|(i, _)| st.grid.tile_box(&tiles[*i])).collect();
        let bbox: Vec<(u64, u64)> = (0..boxes[0].len())
            .map(|d| (boxes.iter().map(|b| b[d].0).min().unwrap_or(0), boxes.iter().map(|b| b[d].1).max().unwrap_or(0)))
            .collect();
        let bshape: Vec<usize> = bbox.iter().map(|&(a, b)| (b - a) as usize).collect();
        let mut buf = vec![0u8; bshape.iter().product::<usize>() * elem];
        let mut out = Vec::with_capacity(group.len());
        if st.info.cell_order == Layout::ColMajor {
            // Global order returns the box tile after tile (in the array's tile order), each tile's
            // cells contiguous: every tile is one memcpy away, no scatter.
            self.query(st, &bbox, Layout::GlobalOrder, &mut buf)?;
            let mut order: Vec<usize> = (0..group.len()).collect();
            let key = |i: usize| -> Vec<u64> {
                let c = &tiles[group[i].0];
                if st.info.tile_order == Layout::RowMajor { c.clone() } else { c.iter().rev().copied().collect() }
            };
            order.sort_by_key(|&i| key(i));
            let mut offsets = vec![0usize; group.len()];
            let mut off = 0usize;
            for &i in &order {
                offsets[i] = off;
                off += boxes[i].iter().map(|&(a, b)| (b - a) as usize).product::<usize>() * elem;
            }
            if off != buf.len() {
                return Err(Error::Invalid(format!("{}: unexpected global-order result size", self.inner.uri)));
            }
            // Splitting the box into tiles is a copy per tile; on the pool the copies (and the page
            // faults of their fresh buffers) run side by side instead of on the caller's thread.
            let split = |k: usize| -> Tile {
                let n = boxes[k].iter().map(|&(a, b)| (b - a) as usize).product::<usize>() * elem;
                Arc::new(buf[offsets[k]..offsets[k] + n].to_vec())
            };
            let split: Vec<Tile> = st.ctx.workers()?.install(|| (0..group.len()).into_par_iter().map(split).collect());
            for ((i, guard), tile) in group.into_iter().zip(split) {
                guard.fulfill(tile.clone());
                out.push((i, tile));
            }
            return Ok(out);
        }
        self.query(st, &bbox, Layout::ColMajor, &mut buf)?;
        for ((i, guard), tb) in group.into_iter().zip(boxes) {
            let tshape: Vec<usize> = tb.iter().map(|&(a, b)| (b - a) as usize).collect();
            let off: Vec<usize> = tb.iter().zip(&bbox).map(|(t, b)| (t.0 - b.0) as usize).collect();
            let mut t = vec![0u8; tshape.iter().product::<usize>() * elem];
            copy_box(elem, &buf, &bshape, &off, &mut t, &tshape, &vec![0; tshape.len()], &tshape);
            let tile: Tile = Arc::new(t);
            guard.fulfill(tile.clone());
            out.push((i, tile));
        }
        Ok(out)
    }

    fn read_cached(&self, st: &OpenState, region: &Region, out: &mut [u8], c_order: bool) -> Result<()> {
        let tiles = st.grid.tiles_overlapping(region);
        let keys: Vec<TileKey> = tiles.iter().map(|c| (st.version, st.grid.linear(c))).collect();
        let mut have: Vec<(usize, Tile)> = Vec::with_capacity(tiles.len());
        let mut loads: Vec<(usize, LoadGuard)> = Vec::new();
        let mut waits: Vec<(usize, Arc<LoadCell>)> = Vec::new();
        let mut busy: Vec<usize> = Vec::new();
        // A pool thread never blocks on a tile another thread is reading: that thread may hold
        // its load guards while it waits for this very pool (see crate::cache).
        let may_wait = rayon::current_thread_index().is_none();
        for (i, l) in st.ctx.cache().lookup_many(&keys, may_wait).into_iter().enumerate() {
            match l {
                Lookup::Hit(t) => have.push((i, t)),
                Lookup::Load(g) => loads.push((i, g)),
                Lookup::Wait(c) => waits.push((i, c)),
                Lookup::Busy => busy.push(i),
            }
        }
        if let Some(d) = &st.direct {
            // One fetch (one request wave on object stores) and a parallel decode for every
            // tile this read misses.
            let want: Vec<Vec<u64>> =
                busy.iter().chain(loads.iter().map(|(i, _)| i)).map(|&i| tiles[i].clone()).collect();
            let mut got = self.direct_tiles(st, d, &want)?.into_iter();
            for &i in &busy {
                let tile = got.next().ok_or_else(|| Error::Invalid("missing tile".into()))?;
                st.ctx.cache().count_uncached_miss(tile.len());
                have.push((i, tile));
            }
            for ((i, guard), tile) in loads.into_iter().zip(got) {
                guard.fulfill(tile.clone());
                have.push((i, tile));
            }
        } else {
            for i in busy {
                let tile = self.fetch_tile(st, &tiles[i])?;
                st.ctx.cache().count_uncached_miss(tile.len());
                have.push((i, tile));
            }
            let groups = group_missing(&tiles, loads);
            let fetched: Vec<Result<Vec<(usize, Tile)>>> = if groups.len() > 1 {
                st.ctx.workers()?.install(|| groups.into_par_iter().map(|g| self.fetch_group(st, &tiles, g)).collect())
            } else {
                groups.into_iter().map(|g| self.fetch_group(st, &tiles, g)).collect()
            };
            for f in fetched {
                have.extend(f?);
            }
        }
        for (i, cell) in waits {
            let tile = match cell.wait() {
                Some(t) => t,
                None => self.fetch_tile(st, &tiles[i])?,
            };
            have.push((i, tile));
        }
        self.assemble(st, region, &tiles, &have, out, c_order)
    }

    /// Copies the parts of `have` (tiles) inside `region` into `out`.
    fn assemble(
        &self,
        st: &OpenState,
        region: &Region,
        tiles: &[Vec<u64>],
        have: &[(usize, Tile)],
        out: &mut [u8],
        c_order: bool,
    ) -> Result<()> {
        let elem = st.info.dtype.size();
        // Tiles are Fortran-ordered; the result is in Fortran or (transposing each part) C order.
        let copy_into = |sub: &Region, dst: &mut [u8]| {
            for (i, tile) in have {
                copy_tile_part(elem, tile, &st.grid.tile_box(&tiles[*i]), dst, sub.ranges(), c_order);
            }
        };
        if c_order {
            // On this thread: C-order slabs along the last axis are not contiguous, and the
            // loaders already read items in parallel.
            copy_into(region, out);
            return Ok(());
        }
        let ext_last = st.info.tile_extents[region.ndim() - 1];
        let workers = st.ctx.config().read.max_workers as usize;
        let cuts = slab_cuts(region, ext_last, workers * 2);
        if cuts.len() <= 2 || out.len() < PARALLEL_MIN_BYTES {
            copy_into(region, out);
            return Ok(());
        }
        let slabs = split_slabs(region, &cuts, elem, out);
        st.ctx.workers()?.install(|| slabs.into_par_iter().for_each(|(r, chunk)| copy_into(&r, chunk)));
        Ok(())
    }

    /// Reads `region` into an array of `T` (which must be the volume's dtype), Fortran order.
    pub fn read_region<T: Element>(&self, region: &Region) -> Result<ArrayD<T>> {
        let dtype = self.dtype()?;
        if dtype != T::DATATYPE {
            return Err(Error::Dtype { uri: self.inner.uri.clone(), expected: dtype, found: T::DATATYPE });
        }
        // Check the region before allocating: its size comes from the caller.
        region.check_within(&self.shape()?)?;
        let cells = usize::try_from(region.num_cells()).unwrap_or(usize::MAX);
        let too_big = || Error::OutOfMemory {
            what: format!("region {region} of {}", self.inner.uri),
            bytes: region.num_cells().saturating_mul(dtype.size() as u64),
        };
        let mut v: Vec<T> = Vec::new();
        v.try_reserve_exact(cells).map_err(|_| too_big())?;
        v.resize(cells, T::zeroed());
        self.read_into(region, bytemuck::cast_slice_mut(&mut v))?;
        let shape: Vec<usize> = usize_vec(&region.shape());
        ArrayD::from_shape_vec(IxDyn(&shape).f(), v).map_err(|e| Error::shape(e.to_string()))
    }

    /// Reads the whole volume.
    pub fn read_all<T: Element>(&self) -> Result<ArrayD<T>> {
        self.read_region(&Region::full(&self.shape()?))
    }

    /// Reads `region` into an array of the volume's own dtype.
    pub fn read_region_dyn(&self, region: &Region) -> Result<VolumeData> {
        let dtype = self.dtype()?;
        with_voxel_type!(dtype, T => {
            let a = self.read_region::<T>(region)?;
            Ok(VolumeData::from(a))
        }, _ => Err(Error::UnsupportedDtype(dtype.to_string())))
    }
}

/// Creates a volume array holding `data` and `metadata` (one array session) without opening it
/// for reading. Validates first; removes the array again if writing fails; refuses existing URIs.
pub(crate) fn write_new_volume(
    uri: &str,
    shape: &[u64],
    dtype: Datatype,
    ctx: &Context,
    write: &WriteConfig,
    metadata: &[(String, MetaValue)],
    data: Option<(&[u8], Layout)>,
) -> Result<()> {
    let uri = uri.trim_end_matches('/');
    check_shape(shape)?;
    if !dtype.is_voxel_type() {
        return Err(Error::UnsupportedDtype(dtype.to_string()));
    }
    if let Some((bytes, layout)) = data {
        let want = shape.iter().product::<u64>() as usize * dtype.size();
        if bytes.len() != want {
            return Err(Error::shape(format!(
                "data holds {} bytes but shape {shape:?} of {dtype} needs {want}",
                bytes.len()
            )));
        }
        if !matches!(layout, Layout::RowMajor | Layout::ColMajor) {
            return Err(Error::Invalid("volume data must be row- or column-major".into()));
        }
    }
    let ctx = ctx.for_current_process()?;
    crate::group::ensure_vacant(&ctx, uri)?;
    let spec = volume_schema(shape, dtype, write);
    ctx.tdb().create_array(uri, &spec).at("create", uri)?;
    let written = (|| -> Result<()> {
        let mut array = ffi::Array::open(ctx.tdb(), uri, Mode::Write, None).at("open for writing", uri)?;
        if let Some((bytes, layout)) = data {
            let ranges: Vec<(i64, i64)> = shape.iter().map(|&n| (0, n as i64 - 1)).collect();
            array.write_dense(&ranges, layout, VOXELS_ATTR, bytes).at("write", uri)?;
        }
        array
            .put_metadata("tile_orientation", &MetaValue::from(write.tile.orientation.as_str()))
            .at("metadata write", uri)?;
        for (k, v) in metadata {
            array.put_metadata(k, v).at("metadata write", uri)?;
        }
        array.close().at("close", uri)
    })();
    if let Err(e) = written {
        // Leave nothing half-written behind.
        if let Ok(vfs) = ctx.vfs() {
            let _ = vfs.remove_dir(uri);
        }
        return Err(e);
    }
    Ok(())
}

/// Cells of `data` as bytes in a layout TileDB accepts, copying only if `data` is strided.
pub(crate) fn contiguous_bytes<'a, T: Element>(data: &ArrayViewD<'a, T>) -> (std::borrow::Cow<'a, [u8]>, Layout) {
    use std::borrow::Cow;
    if let Some(s) = data.clone().to_slice() {
        return (Cow::Borrowed(bytemuck::cast_slice(s)), Layout::RowMajor);
    }
    if data.t().is_standard_layout()
        && let Some(s) = data.clone().to_slice_memory_order()
    {
        return (Cow::Borrowed(bytemuck::cast_slice(s)), Layout::ColMajor);
    }
    let owned: Vec<T> = data.iter().copied().collect();
    (Cow::Owned(bytemuck::cast_slice(&owned).to_vec()), Layout::RowMajor)
}

/// Metadata of the array at `uri`, read without keeping it open.
pub(crate) fn read_array_metadata(ctx: &Context, uri: &str) -> Result<BTreeMap<String, MetaValue>> {
    let array = ffi::Array::open(ctx.tdb(), uri, Mode::Read, None).map_err(|e| classify_open_error(ctx, uri, e))?;
    array.metadata().at("metadata read", uri)
}

/// Checksum of voxel bytes as stored in `voxel_checksum` metadata: `xxh3-128:<order>:<hex>`, where
/// order is `F` or `C`, the order of the bytes hashed.
pub fn voxel_checksum(bytes: &[u8], layout: Layout) -> String {
    let order = if layout == Layout::ColMajor { 'F' } else { 'C' };
    format!("xxh3-128:{order}:{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// Groups missing tiles into boxes fetched with one query each: all of them if they fill their
/// bounding box, else runs along axis 0.
fn group_missing(tiles: &[Vec<u64>], loads: Vec<(usize, LoadGuard)>) -> Vec<Vec<(usize, LoadGuard)>> {
    if loads.len() <= 1 {
        return if loads.is_empty() { vec![] } else { vec![loads] };
    }
    let nd = tiles[0].len();
    let span: u64 = (0..nd)
        .map(|d| {
            let lo = loads.iter().map(|(i, _)| tiles[*i][d]).min().unwrap_or(0);
            let hi = loads.iter().map(|(i, _)| tiles[*i][d]).max().unwrap_or(0);
            hi - lo + 1
        })
        .product();
    if span == loads.len() as u64 {
        return vec![loads];
    }
    let mut groups: Vec<Vec<(usize, LoadGuard)>> = Vec::new();
    for (i, g) in loads {
        let extends = groups.last().is_some_and(|last| {
            let (j, _) = last.last().expect("groups are never empty");
            tiles[*j][1..] == tiles[i][1..] && tiles[*j][0] + 1 == tiles[i][0]
        });
        if extends {
            groups.last_mut().expect("checked").push((i, g));
        } else {
            groups.push(vec![(i, g)]);
        }
    }
    groups
}

macro_rules! volume_data_from {
    ($($t:ty => $v:ident),* $(,)?) => {
        $(impl From<ArrayD<$t>> for VolumeData {
            fn from(a: ArrayD<$t>) -> Self { VolumeData::$v(a) }
        })*
    };
}

volume_data_from!(
    i8 => Int8, u8 => UInt8, i16 => Int16, u16 => UInt16, i32 => Int32, u32 => UInt32,
    i64 => Int64, u64 => UInt64, f32 => Float32, f64 => Float64,
);

impl VolumeData {
    /// Shape of the array.
    pub fn shape(&self) -> &[usize] {
        macro_rules! s { ($($v:ident),*) => { match self { $(VolumeData::$v(a) => a.shape()),* } } }
        s!(Int8, UInt8, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float32, Float64)
    }

    /// The elements' bytes in memory order (empty for a non-contiguous array).
    pub fn as_bytes(&self) -> &[u8] {
        macro_rules! s { ($($v:ident),*) => { match self { $(VolumeData::$v(a) => a.as_slice_memory_order().map(bytemuck::cast_slice).unwrap_or(&[])),* } } }
        s!(Int8, UInt8, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float32, Float64)
    }

    /// The elements' bytes in memory order, writable (empty for a non-contiguous array).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        macro_rules! s { ($($v:ident),*) => { match self { $(VolumeData::$v(a) => a.as_slice_memory_order_mut().map(bytemuck::cast_slice_mut).unwrap_or(&mut [])),* } } }
        s!(Int8, UInt8, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float32, Float64)
    }
}
