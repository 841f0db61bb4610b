//! What a training dataset reads: its keys and channels, its items, and one batch at a time.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::context::Context;
use crate::dtype::Datatype;
use crate::error::{Error, Result};
use crate::loader::foreground::Foreground;
use crate::loader::sampling::{Stream, below, word};
use crate::loader::transpose::fortran_to_c_convert;
use crate::region::Region;
use crate::volume::{CacheUse, Volume, VolumeData};
use crate::with_voxel_type;

/// How items are cut from volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// One item per volume: the whole volume (uniform shapes required).
    FullVolume,
    /// `patches_per_volume` items per volume: boxes of this size at random positions (every
    /// volume at least this large; shapes may differ between volumes).
    Patch([u64; 3]),
    /// One item per 2D slice across this axis (0 sagittal, 1 coronal, 2 axial); uniform shapes.
    Slice(usize),
}

/// One input channel: the volumes of one collection, in item order.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Name used in messages (the collection's name).
    pub name: String,
    /// One volume per dataset volume index.
    pub volumes: Vec<Volume>,
    /// Subject of each volume (checked equal across channels).
    pub subjects: Vec<String>,
}

/// One output key (`image`, `mask`): channels stacked along axis 1 of its batch array.
#[derive(Debug, Clone)]
pub struct Key {
    /// Key name.
    pub name: String,
    /// Its channels (all of one dtype).
    pub channels: Vec<Channel>,
}

/// Sampling settings of a [`Plan`].
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// How items are cut.
    pub mode: Mode,
    /// Items per volume in [`Mode::Patch`] (≥ 1; ignored otherwise).
    pub patches_per_volume: u64,
    /// Seed of every random choice (with the epoch and the item index).
    pub seed: u64,
    /// `(key, channel)` holding a mask whose non-zero voxels patch centres are drawn from.
    pub foreground: Option<(usize, usize)>,
}

/// Where one item comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Epoch the item was drawn for.
    pub epoch: u64,
    /// Index in the dataset (`0..len`).
    pub index: u64,
    /// Volume index (position in the channels).
    pub volume: usize,
    /// Patch number within its volume ([`Mode::Patch`]), else 0.
    pub patch_idx: u64,
    /// Slice number ([`Mode::Slice`]), else 0.
    pub slice_idx: u64,
    /// The box read, per axis.
    pub region: Region,
}

/// A read batch: one C-ordered array of shape `(B, C, *item_shape)` per key, and its items.
#[derive(Debug)]
pub struct Batch {
    /// The items, in request order.
    pub items: Vec<Item>,
    /// One array per key, in key order.
    pub arrays: Vec<VolumeData>,
    /// Wall time of the read.
    pub read_nanos: u64,
    /// Bytes of the arrays.
    pub bytes: u64,
}

/// Counters of a plan's reads, cumulative.
#[derive(Debug, Default)]
pub struct PlanCounters {
    /// Batches read.
    pub batches: AtomicU64,
    /// Items read.
    pub items: AtomicU64,
    /// Bytes of batch arrays produced.
    pub bytes: AtomicU64,
    /// Sum of the batches' read wall times.
    pub read_nanos: AtomicU64,
}

/// A dataset's reading plan: validated channels, per-volume shapes, items, batch reads.
#[derive(Debug)]
pub struct Plan {
    keys: Vec<Key>,
    dtypes: Vec<Datatype>,
    config: PlanConfig,
    n_volumes: usize,
    shapes: Vec<Vec<u64>>,
    len: u64,
    foreground: Option<Foreground>,
    /// Cumulative read counters.
    pub counters: PlanCounters,
}

thread_local! {
    /// Per-thread scratch for Fortran-ordered reads that are converted to another dtype while
    /// transposed (8-byte aligned). Reads of the batch's own dtype need none.
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Scratch above this size is released after use instead of kept by the thread.
const KEEP_SCRATCH_BYTES: usize = 64 << 20;

/// Channels line up when they hold the same number of volumes, of the same subjects in the same
/// order: `channels` are `(collection name, subject of each volume)`. The first is the reference.
pub fn check_aligned(channels: &[(&str, &[String])]) -> Result<()> {
    let Some((first, ref_subjects)) = channels.first() else { return Ok(()) };
    for (name, subjects) in &channels[1..] {
        if subjects.len() != ref_subjects.len() {
            return Err(Error::Alignment(format!(
                "Collection '{name}' has {} volumes, expected {} (as in '{first}')",
                subjects.len(),
                ref_subjects.len()
            )));
        }
        if let Some(i) = (0..subjects.len()).find(|&i| subjects[i] != ref_subjects[i]) {
            return Err(Error::Alignment(format!(
                "Subject mismatch for collection '{name}': volume {i} belongs to subject {:?} but volume {i} of '{first}' to {:?}; channels must hold the same subjects in the same order",
                subjects[i], ref_subjects[i]
            )));
        }
    }
    Ok(())
}

/// Patches of `patch` fit every volume of `shapes` (3D volumes, no axis smaller than the patch).
pub fn check_patch_fits(shapes: &[Vec<u64>], patch: [u64; 3]) -> Result<()> {
    for (i, s) in shapes.iter().enumerate() {
        if s.len() != 3 {
            return Err(Error::shape(format!("volume {i} has {} axes; patches are cut from 3D volumes", s.len())));
        }
        if let Some(d) = (0..3).find(|&d| s[d] < patch[d]) {
            return Err(Error::shape(format!(
                "Volume {i} shape {s:?} is smaller than patch_size {patch:?} in dimension {d}"
            )));
        }
    }
    Ok(())
}

/// The shape shared by collections whose volumes all have one shape each (`(name, shape or None
/// for a heterogeneous collection)`), as whole-volume and slice items need.
pub fn common_shape(collections: &[(&str, Option<[u64; 3]>)]) -> Result<[u64; 3]> {
    let mut common: Option<(&str, [u64; 3])> = None;
    for (name, shape) in collections {
        let s = shape.ok_or_else(|| heterogeneous(name))?;
        match common {
            None => common = Some((name, s)),
            Some((first, c)) if c != s => {
                return Err(Error::shape(format!(
                    "Shape mismatch: collection '{name}' has shape {s:?}, expected {c:?} (as in '{first}')"
                )));
            }
            Some(_) => {}
        }
    }
    common.map(|(_, s)| s).ok_or_else(|| Error::Invalid("at least one collection is required".into()))
}

fn heterogeneous(name: &str) -> Error {
    Error::shape(format!(
        "Collection '{name}' has heterogeneous shapes. Resample to uniform dimensions before ML training (or use patch mode)."
    ))
}

fn alloc_error(what: &str, bytes: u128) -> Error {
    Error::OutOfMemory { what: what.to_owned(), bytes: u64::try_from(bytes).unwrap_or(u64::MAX) }
}

impl Plan {
    /// Validates the channels (same volume count, same subjects in the same order, same shape
    /// per volume, one dtype per key, shapes the mode can cut) and builds the plan. With
    /// `config.foreground`, reads every mask once (in parallel on the context's pool) to index
    /// its foreground.
    pub fn new(keys: Vec<Key>, config: PlanConfig) -> Result<Plan> {
        let first = keys
            .first()
            .and_then(|k| k.channels.first())
            .ok_or_else(|| Error::Invalid("at least one collection is required".into()))?;
        let n_volumes = first.volumes.len();
        if config.patches_per_volume == 0 {
            return Err(Error::Invalid("patches_per_volume must be >= 1".into()));
        }
        for key in &keys {
            if key.channels.is_empty() {
                return Err(Error::Invalid(format!("key {:?} has no collection", key.name)));
            }
            for ch in &key.channels {
                if ch.subjects.len() != ch.volumes.len() {
                    return Err(Error::Invalid(format!(
                        "collection '{}': one subject per volume is required",
                        ch.name
                    )));
                }
            }
        }
        let channels: Vec<(&str, &[String])> =
            keys.iter().flat_map(|k| &k.channels).map(|c| (c.name.as_str(), c.subjects.as_slice())).collect();
        check_aligned(&channels)?;
        // Shapes and dtypes, opened volumes only (no voxel is read).
        let ctx = first.volumes.first().map(Volume::context).transpose()?;
        let infos = |ch: &Channel| -> Result<Vec<(Vec<u64>, Datatype)>> {
            let one = |v: &Volume| v.info().map(|i| (i.shape, i.dtype));
            match &ctx {
                // Side by side: an open on S3 is several round trips.
                Some(c) if n_volumes > 1 => c.workers()?.install(|| ch.volumes.par_iter().map(one).collect()),
                _ => ch.volumes.iter().map(one).collect(),
            }
        };
        let first_infos = infos(first)?;
        let shapes: Vec<Vec<u64>> = first_infos.iter().map(|(s, _)| s.clone()).collect();
        let mut dtypes = Vec::with_capacity(keys.len());
        for key in &keys {
            let mut dtype: Option<Datatype> = None;
            for ch in &key.channels {
                let inf = if std::ptr::eq(ch, first) { first_infos.clone() } else { infos(ch)? };
                for (i, (shape, dt)) in inf.iter().enumerate() {
                    if shape != &shapes[i] {
                        return Err(Error::Alignment(format!(
                            "volume {i} (subject {:?}) has shape {shape:?} in '{}' but {:?} in '{}'; channels must have the same shape per subject",
                            first.subjects[i], ch.name, shapes[i], first.name
                        )));
                    }
                    // One array per key: volumes of different dtypes are converted to the type
                    // NumPy would stack them as (uint8 + int16 -> int16, int16 + float32 -> float32).
                    dtype = Some(match dtype {
                        None => *dt,
                        Some(d) => d.promote(*dt).ok_or_else(|| Error::UnsupportedDtype(dt.to_string()))?,
                    });
                }
            }
            dtypes.push(dtype.unwrap_or(Datatype::Float32));
        }
        let uniform = shapes.windows(2).all(|w| w[0] == w[1]);
        let len = match &config.mode {
            Mode::FullVolume => {
                if !uniform {
                    return Err(heterogeneous(&first.name));
                }
                n_volumes as u64
            }
            Mode::Patch(p) => {
                if p.contains(&0) {
                    return Err(Error::Invalid(format!("patch_size {p:?} must be positive")));
                }
                check_patch_fits(&shapes, *p)?;
                (n_volumes as u64)
                    .checked_mul(config.patches_per_volume)
                    .ok_or_else(|| Error::Invalid("patches_per_volume is too large".into()))?
            }
            Mode::Slice(axis) => {
                if *axis > 2 {
                    return Err(Error::Invalid(format!("slice axis {axis} must be 0, 1 or 2")));
                }
                if !uniform {
                    return Err(heterogeneous(&first.name));
                }
                match shapes.first() {
                    Some(s) if s.len() != 3 => {
                        return Err(Error::shape(format!("slices are cut from 3D volumes; these have shape {s:?}")));
                    }
                    Some(s) => n_volumes as u64 * s[*axis],
                    None => 0,
                }
            }
        };
        let foreground = match config.foreground {
            Some((k, c)) => {
                let ch = keys
                    .get(k)
                    .and_then(|key| key.channels.get(c))
                    .ok_or_else(|| Error::Invalid(format!("foreground channel ({k}, {c}) does not exist")))?;
                match &ctx {
                    Some(ctx) if matches!(config.mode, Mode::Patch(_)) => Some(Foreground::index(ctx, &ch.volumes)?),
                    _ => None,
                }
            }
            None => None,
        };
        Ok(Plan { keys, dtypes, config, n_volumes, shapes, len, foreground, counters: PlanCounters::default() })
    }

    /// Number of items.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there is no item.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of volumes per channel.
    pub fn n_volumes(&self) -> usize {
        self.n_volumes
    }

    /// Shape of each volume.
    pub fn shapes(&self) -> &[Vec<u64>] {
        &self.shapes
    }

    /// The keys.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// dtype of each key's array.
    pub fn dtypes(&self) -> &[Datatype] {
        &self.dtypes
    }

    /// The sampling settings.
    pub fn config(&self) -> &PlanConfig {
        &self.config
    }

    /// The foreground index, when the plan samples patches from a mask.
    pub fn foreground(&self) -> Option<&Foreground> {
        self.foreground.as_ref()
    }

    /// Whether any volume lives on an object store (S3): reads then wait on round trips.
    pub fn is_remote(&self) -> bool {
        self.keys.iter().flat_map(|k| &k.channels).flat_map(|c| &c.volumes).any(|v| {
            let u = v.uri();
            u.contains("://") && !u.starts_with("file://")
        })
    }

    /// How many batches the native prefetcher reads ahead by default: 2 whole volumes, 1 patch
    /// or slice batch, and on object stores at least 4, so that batches' request waves overlap.
    /// Measured locally (docs/benchmarks.md, 2 cores): one batch ahead already keeps the data
    /// wait at 2% when a batch reads faster than the step; for patches and slices a second batch
    /// in flight lowered throughput by ~35% (concurrent batches decode the same tiles), for whole
    /// volumes it raised it (large batches, more to overlap).
    pub fn recommended_prefetch(&self) -> usize {
        let local = match self.config.mode {
            Mode::FullVolume => 2,
            Mode::Patch(_) | Mode::Slice(_) => 1,
        };
        if self.is_remote() { local.max(4) } else { local }
    }

    /// The context whose pool reads this plan's batches (this process's).
    pub fn context(&self) -> Result<Context> {
        self.keys[0].channels[0].volumes.first().map(Volume::context).unwrap_or_else(crate::context::global_context)
    }

    /// Shape of one item of one channel (without batch and channel axes).
    pub fn item_shape(&self, volume: usize) -> Vec<u64> {
        match &self.config.mode {
            Mode::FullVolume => self.shapes[volume].clone(),
            Mode::Patch(p) => p.to_vec(),
            Mode::Slice(axis) => {
                self.shapes[volume].iter().enumerate().filter(|&(d, _)| d != *axis).map(|(_, &n)| n).collect()
            }
        }
    }

    /// Where item `index` of `epoch` comes from: a pure function of `(seed, epoch, index)`.
    pub fn item(&self, epoch: u64, index: u64) -> Result<Item> {
        if index >= self.len {
            return Err(Error::Invalid(format!("index {index} is out of range for a dataset of {} items", self.len)));
        }
        let seed = self.config.seed;
        Ok(match &self.config.mode {
            Mode::FullVolume => {
                let volume = index as usize;
                Item { epoch, index, volume, patch_idx: 0, slice_idx: 0, region: Region::full(&self.shapes[volume]) }
            }
            Mode::Slice(axis) => {
                let n = self.shapes[0][*axis];
                let volume = (index / n) as usize;
                let s = index % n;
                let mut ranges: Vec<(u64, u64)> = self.shapes[volume].iter().map(|&n| (0, n)).collect();
                ranges[*axis] = (s, s + 1);
                Item { epoch, index, volume, patch_idx: 0, slice_idx: s, region: Region::new(ranges) }
            }
            Mode::Patch(p) => {
                let ppv = self.config.patches_per_volume;
                let volume = (index / ppv) as usize;
                let shape = &self.shapes[volume];
                let max_start: Vec<u64> = (0..3).map(|d| shape[d] - p[d]).collect();
                let start: Vec<u64> = match self.foreground.as_ref().and_then(|f| f.centre(volume, seed, epoch, index))
                {
                    Some(centre) => (0..3).map(|d| centre[d].saturating_sub(p[d] / 2).min(max_start[d])).collect(),
                    None => (0..3)
                        .map(|d| below(word(seed, epoch, index, Stream::PatchAxis, d as u64), max_start[d] + 1))
                        .collect(),
                };
                let ranges = (0..3).map(|d| (start[d], start[d] + p[d])).collect();
                Item { epoch, index, volume, patch_idx: index % ppv, slice_idx: 0, region: Region::new(ranges) }
            }
        })
    }

    /// Reads the items `(epoch, index)` into one C-ordered `(B, C, *item_shape)` array per key,
    /// every item and channel in parallel on the context's pool.
    ///
    /// Items of one batch must have the same item shape (always true except for full volumes of
    /// different shapes, which the plan refuses). An error names the item and its volume.
    pub fn read_batch(&self, requests: &[(u64, u64)]) -> Result<Batch> {
        let t0 = Instant::now();
        let items: Vec<Item> = requests.iter().map(|&(e, i)| self.item(e, i)).collect::<Result<_>>()?;
        let b = items.len();
        let item_shape: Vec<u64> = items.first().map(|it| self.item_shape(it.volume)).unwrap_or_default();
        if let Some(it) = items.iter().find(|it| self.item_shape(it.volume) != item_shape) {
            return Err(Error::shape(format!(
                "item {} has shape {:?} but item {} has {item_shape:?}; a batch needs one item shape",
                it.index,
                self.item_shape(it.volume),
                items[0].index
            )));
        }
        let item_cells: u128 = item_shape.iter().map(|&n| u128::from(n)).product();
        // Allocate every key's array first (fallibly: sizes come from the data).
        let mut arrays: Vec<VolumeData> = Vec::with_capacity(self.keys.len());
        for (key, &dtype) in self.keys.iter().zip(&self.dtypes) {
            let c = key.channels.len();
            let mut shape: Vec<usize> = vec![b, c];
            shape.extend(item_shape.iter().map(|&n| n as usize));
            let cells = item_cells * b as u128 * c as u128;
            let bytes = cells * dtype.size() as u128;
            let cells =
                usize::try_from(cells).map_err(|_| alloc_error(&format!("batch array {:?}", key.name), bytes))?;
            arrays.push(with_voxel_type!(dtype, T => {
                let mut v: Vec<T> = Vec::new();
                v.try_reserve_exact(cells).map_err(|_| alloc_error(&format!("batch array {:?}", key.name), bytes))?;
                v.resize(cells, <T as bytemuck::Zeroable>::zeroed());
                let a = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), v)
                    .map_err(|e| Error::shape(e.to_string()))?;
                VolumeData::from(a)
            }, _ => return Err(Error::UnsupportedDtype(dtype.to_string()))));
        }
        // One job per (key, item, channel), each writing its own slice of its key's array.
        let dims: Vec<usize> = item_shape.iter().map(|&n| n as usize).collect();
        let mut jobs: Vec<(&Volume, &Item, &mut [u8], Datatype)> = Vec::new();
        for ((key, arr), dtype) in self.keys.iter().zip(arrays.iter_mut()).zip(&self.dtypes) {
            let elem = dtype.size();
            let chunk = item_cells as usize * elem;
            let bytes = arr.as_bytes_mut();
            if chunk == 0 {
                continue;
            }
            for (k, out) in bytes.chunks_mut(chunk).enumerate() {
                let (it, ch) = (&items[k / key.channels.len()], &key.channels[k % key.channels.len()]);
                jobs.push((&ch.volumes[it.volume], it, out, *dtype));
            }
        }
        // Whole volumes go through the tile cache when they fit it: epoch 2+ then reads memory.
        let cache_use = if self.config.mode == Mode::FullVolume { CacheUse::PreferCache } else { CacheUse::Auto };
        let read_one = |(vol, it, out, to): (&Volume, &Item, &mut [u8], Datatype)| -> Result<()> {
            read_transposed(vol, &it.region, &dims, to, cache_use, out).map_err(|e| Error::Item {
                index: it.index,
                uri: vol.uri().to_owned(),
                source: Box::new(e),
            })
        };
        let ctx = self.context()?;
        // Remote volumes: one request wave for the whole batch's stored tiles.
        let wanted: Vec<(&Volume, &Region)> = jobs.iter().map(|(v, it, _, _)| (*v, &it.region)).collect();
        crate::volume::prefetch_stored(&ctx, &wanted);
        if jobs.len() == 1 {
            jobs.into_iter().try_for_each(read_one)?;
        } else {
            ctx.workers()?.install(|| jobs.into_par_iter().try_for_each(read_one))?;
        }
        let bytes: u64 = arrays.iter().map(|a| a.as_bytes().len() as u64).sum();
        let read_nanos = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let c = &self.counters;
        c.batches.fetch_add(1, Ordering::Relaxed);
        c.items.fetch_add(b as u64, Ordering::Relaxed);
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
        c.read_nanos.fetch_add(read_nanos, Ordering::Relaxed);
        Ok(Batch { items, arrays, read_nanos, bytes })
    }
}

/// Reads `region` of `vol` into `out`, C-ordered, as `to` voxels: straight from the tiles when the
/// volume holds `to`, else through this thread's scratch (Fortran order) and a converting copy.
fn read_transposed(
    vol: &Volume,
    region: &Region,
    dims: &[usize],
    to: Datatype,
    cache_use: CacheUse,
    out: &mut [u8],
) -> Result<()> {
    let from = vol.dtype()?;
    if from == to {
        // Straight into the batch, transposed tile by tile.
        return vol.read_into_c(region, out, cache_use);
    }
    let cells = out.len() / to.size();
    let nbytes = cells * from.size();
    // The scratch is taken out of the thread-local for the read: `read_into` may run other pool
    // jobs on this thread while it waits (work stealing), and those may read items too.
    let mut scratch = SCRATCH.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    let words = nbytes.div_ceil(8);
    if scratch.len() < words {
        scratch.clear();
        scratch.try_reserve_exact(words).map_err(|_| alloc_error("read buffer", nbytes as u128))?;
        scratch.resize(words, 0);
    }
    let buf = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut scratch[..words])[..nbytes];
    let res = vol.read_into_with(region, buf, cache_use).and_then(|()| {
        if fortran_to_c_convert(from, buf, dims, to, out) {
            Ok(())
        } else {
            Err(Error::Invalid(format!("cannot convert {from} voxels to {to}")))
        }
    });
    if scratch.len() * 8 <= KEEP_SCRATCH_BYTES {
        SCRATCH.with(|cell| {
            let mut kept = cell.borrow_mut();
            if kept.len() < scratch.len() {
                *kept = scratch;
            }
        });
    }
    res
}
