//! An open dense array read directly: its fragments, tile offsets and the decode of tiles into
//! Fortran-ordered boxes (§6, §7).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;
use thiserror::Error;

use super::filter::Pipeline;
use super::fragment::{
    Commits, FragmentRef, footer_schema_name, parse_footer, parse_tile_offsets, parse_timestamped_name,
};
use super::schema::{Order, Schema, decode_generic_tile};
use super::{CellType, FormatError};
use crate::io::{IoError, Storage};
use crate::region::{copy_box, copy_box_f_to_c, copy_tile_part, intersect};

/// Bytes read from the end of a fragment metadata file at open: the footer and, for volumes of a
/// few hundred tiles, the tile offsets too.
const META_TAIL: u64 = 64 * 1024;

/// Why a direct read failed.
#[derive(Debug, Error)]
pub enum DirectError {
    /// The format says something this reader does not handle, or bytes are corrupt.
    #[error("{0}")]
    Format(#[from] FormatError),
    /// Storage failed.
    #[error("{0}")]
    Io(#[from] IoError),
    /// The read was interrupted (Ctrl-C, see [`crate::cancel`]) between request waves.
    #[error("interrupted")]
    Interrupted,
}

impl DirectError {
    /// Whether the array holds content this reader refuses (read it through libtiledb).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, DirectError::Format(FormatError::Unsupported(_)))
    }
}

/// One fragment the reader sees.
#[derive(Debug, Clone)]
pub struct Fragment {
    /// Name, timestamps.
    pub r#ref: FragmentRef,
    /// Non-empty domain relative to the domain's low corner, half-open per dimension.
    pub ned: Vec<(u64, u64)>,
    /// First tile index along each dimension.
    first: Vec<u64>,
    /// Tiles along each dimension.
    counts: Vec<u64>,
    /// Data file path (relative to the array).
    data_path: String,
    /// Tile start offsets in the data file.
    offsets: Vec<u64>,
    /// Data file size.
    file_size: u64,
    /// Filters of this fragment's tiles.
    pipeline: Pipeline,
}

impl Fragment {
    /// Position of tile `coords` in this fragment's file, if the fragment holds it.
    fn position(&self, coords: &[u64], order: Order) -> Option<usize> {
        let mut pos = 0u64;
        let n = coords.len();
        let dims: Box<dyn Iterator<Item = usize>> =
            if order == Order::RowMajor { Box::new(0..n) } else { Box::new((0..n).rev()) };
        for d in dims {
            let rel = coords[d].checked_sub(self.first[d]).filter(|&r| r < self.counts[d])?;
            pos = pos * self.counts[d] + rel;
        }
        usize::try_from(pos).ok()
    }

    /// Byte range of tile `pos` in the data file.
    fn range(&self, pos: usize) -> Range<u64> {
        let start = self.offsets[pos];
        let end = self.offsets.get(pos + 1).copied().unwrap_or(self.file_size);
        start..end
    }

    /// Number of data bytes this fragment stores.
    pub fn data_bytes(&self) -> u64 {
        self.file_size
    }
}

/// A cache of stored (still filtered) tiles, keyed by `(hash of the data file, tile position)`.
pub trait StoredTileCache: Send + Sync {
    /// The bytes, if cached (counts a hit or a miss).
    fn get(&self, key: (u64, u64)) -> Option<Arc<Vec<u8>>>;
    /// Whether the key is cached (counts nothing).
    fn contains(&self, key: (u64, u64)) -> bool;
    /// Counts `n` lookups that went to storage (a prefetch's misses).
    fn count_misses(&self, n: u64);
    /// Offers fetched bytes to the cache.
    fn put(&self, key: (u64, u64), bytes: Arc<Vec<u8>>);
}

/// Stored bytes a whole-region read fetches at once from an object store (one round of
/// concurrent requests per wave).
pub const REMOTE_WAVE_BYTES: u64 = 64 << 20;

/// Key of a stored tile: `(hash of the array and data file, tile position)`.
pub type StoredKey = (u64, u64);

/// Stored tiles fetched for a read, by `(fragment, position)`.
type StoredMap = HashMap<(usize, usize), Arc<Vec<u8>>>;

/// One slab of a region read: its sub-region, its part of the output and its tiles.
type Slab<'a> = (Vec<(u64, u64)>, &'a mut [u8], Vec<Vec<u64>>);

/// Stored bytes of one tile of one fragment.
#[derive(Debug, Clone)]
pub struct StoredTile {
    /// Index of the fragment in [`DirectArray::fragments`].
    pub fragment: usize,
    /// Tile position in the fragment's file.
    pub pos: usize,
    /// The bytes as stored.
    pub bytes: Arc<Vec<u8>>,
}

/// A dense array opened for direct reads: everything a tile read needs, cached.
pub struct DirectArray {
    storage: Arc<dyn Storage>,
    stored_cache: Option<(Arc<dyn StoredTileCache>, u64)>,
    /// Tile order, cell order, dimensions (of the newest schema).
    pub schema: Schema,
    /// The attribute read.
    pub attr: String,
    /// Its cell type.
    pub cell: CellType,
    cell_size: usize,
    fill: Vec<u8>,
    /// Fragments in read order (oldest first; newer wins where they overlap).
    pub fragments: Vec<Fragment>,
    /// Shape of the domain.
    pub shape: Vec<u64>,
    /// Tile extents.
    pub extents: Vec<u64>,
    /// Where tiles are clipped: the end of the current domain, else of the domain.
    ends: Vec<u64>,
    /// The `__commits` listing this view was built from (sorted names).
    pub commits: Vec<String>,
}

impl std::fmt::Debug for DirectArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectArray")
            .field("storage", &self.storage)
            .field("attr", &self.attr)
            .field("shape", &self.shape)
            .field("extents", &self.extents)
            .field("fragments", &self.fragments.len())
            .field("stored_cache", &self.stored_cache.is_some())
            .finish()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Reads and parses the schema file `name`.
fn load_schema(storage: &dyn Storage, name: &str) -> Result<Schema, DirectError> {
    let bytes = storage.read(&format!("__schema/{name}"))?;
    let (payload, _) = decode_generic_tile(&bytes, 0)?;
    Ok(Schema::parse(&payload)?)
}

impl DirectArray {
    /// Opens the array in `storage` for reads of attribute `attr` as of `t_end` (ms since the
    /// epoch; `None` = now, as libtiledb opens arrays for reading).
    pub fn open(storage: Arc<dyn Storage>, attr: &str, t_end: Option<u64>) -> Result<DirectArray, DirectError> {
        // Three listings, side by side (each is a round trip on object stores).
        let (root, (commits, schema_list)) = crate::sync::join(
            || storage.list(""),
            || crate::sync::join(|| storage.list("__commits"), || storage.list("__schema")),
        );
        let (root, commits, schema_list) = (root?, commits?, schema_list?);
        if root.iter().any(|e| {
            e.ends_with(".ok")
                || e == "__array_schema.tdb"
                || e.strip_prefix("__").is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        }) {
            return Err(FormatError::unsupported("legacy (format < 12) array layout").into());
        }
        let parsed = Commits::from_listing(&commits, |e| {
            storage.read(&format!("__commits/{e}")).map_err(|e| FormatError::corrupt(e.to_string()))
        })?;
        let refs = parsed.select(0, t_end.unwrap_or_else(now_ms))?;

        let mut schema_names: Vec<String> =
            schema_list.into_iter().filter(|n| n.starts_with("__") && n != "__enumerations").collect();
        schema_names.sort_by_key(|n| parse_timestamped_name(n).map(|(t1, t2, _)| (t1, t2)));
        let latest =
            schema_names.last().ok_or_else(|| FormatError::unsupported("no __schema folder (format < 10)"))?.clone();
        let mut schemas: HashMap<String, Schema> = HashMap::new();
        schemas.insert(latest.clone(), load_schema(storage.as_ref(), &latest)?);
        let schema = schemas[&latest].clone();
        let a = schema
            .attr_index(attr)
            .ok_or_else(|| FormatError::unsupported(format!("no attribute {attr} in the newest schema")))?;
        let attr_def = &schema.attrs[a];
        if attr_def.nullable || attr_def.cell_val_num != 1 {
            return Err(
                FormatError::unsupported(format!("attribute {attr} is nullable or not one value per cell")).into()
            );
        }
        let cell = attr_def.dtype;
        let cell_size = cell.size().ok_or_else(|| FormatError::unsupported(format!("attribute type {}", cell.0)))?;
        if attr_def.fill.len() != cell_size {
            return Err(FormatError::corrupt(format!(
                "fill value of {} bytes for {cell_size}-byte cells",
                attr_def.fill.len()
            ))
            .into());
        }
        let fill = attr_def.fill.clone();
        let shape: Vec<u64> = schema.dims.iter().map(|d| (d.hi - d.lo) as u64 + 1).collect();
        let extents: Vec<u64> = schema.dims.iter().map(|d| d.extent as u64).collect();
        let cells_per_tile = extents.iter().try_fold(1u64, |a, &e| a.checked_mul(e));
        if cells_per_tile.and_then(|c| c.checked_mul(cell_size as u64)).is_none_or(|b| b > (1 << 32)) {
            return Err(FormatError::unsupported("tiles larger than 4 GiB").into());
        }

        let mut fragments = Vec::with_capacity(refs.len());
        for r in refs {
            fragments.push(Self::load_fragment(storage.as_ref(), &mut schemas, &schema, attr, r)?);
        }
        // Equal t1 and overlapping domains: libtiledb's order is unspecified.
        for (i, f) in fragments.iter().enumerate() {
            for g in &fragments[i + 1..] {
                if g.r#ref.t1 == f.r#ref.t1 && intersect(&f.ned, &g.ned).is_some() {
                    return Err(FormatError::unsupported("overlapping fragments with equal timestamps").into());
                }
            }
        }
        let mut commits = commits;
        commits.sort();
        let mut d = DirectArray {
            storage,
            stored_cache: None,
            schema,
            attr: attr.to_owned(),
            cell,
            cell_size,
            fill,
            fragments,
            ends: shape.clone(),
            shape,
            extents,
            commits,
        };
        d.ends = d.readable_box().iter().map(|&(_, hi)| hi).collect();
        Ok(d)
    }

    fn load_fragment(
        storage: &dyn Storage,
        schemas: &mut HashMap<String, Schema>,
        latest: &Schema,
        attr: &str,
        r: FragmentRef,
    ) -> Result<Fragment, DirectError> {
        let meta_path = format!("__fragments/{}/__fragment_metadata.tdb", r.name);
        let (mut tail, size) = storage.read_suffix(&meta_path, META_TAIL)?;
        let mut tail_start = size - tail.len() as u64;
        let footer_len = |t: &[u8]| -> u64 {
            t.len().checked_sub(8).map(|n| u64::from_le_bytes(t[n..].try_into().unwrap_or([0; 8]))).unwrap_or(u64::MAX)
        };
        if tail_start > 0 && footer_len(&tail).saturating_add(8) > tail.len() as u64 {
            tail = storage.read(&meta_path)?;
            tail_start = 0;
        }
        // The footer names its schema; load it once per name.
        let schema_name = footer_schema_name(&tail)?;
        if !schemas.contains_key(&schema_name) {
            let s = load_schema(storage, &schema_name)?;
            schemas.insert(schema_name.clone(), s);
        }
        let (footer, fschema) =
            parse_footer(&tail, |n| schemas.get(n).ok_or_else(|| FormatError::corrupt(format!("schema {n} missing"))))?;
        if fschema.dims != latest.dims
            || fschema.cell_order != latest.cell_order
            || fschema.tile_order != latest.tile_order
        {
            return Err(FormatError::unsupported(format!(
                "fragment {} has another geometry than the newest schema",
                r.name
            ))
            .into());
        }
        let a = fschema
            .attr_index(attr)
            .ok_or_else(|| FormatError::unsupported(format!("fragment {} predates attribute {attr}", r.name)))?;
        let fattr = &fschema.attrs[a];
        let latest_attr = &latest.attrs[latest.attr_index(attr).unwrap_or(0)];
        if fattr.dtype != latest_attr.dtype || fattr.nullable || fattr.cell_val_num != 1 {
            return Err(FormatError::unsupported(format!("attribute {attr} changed type across schemas")).into());
        }
        let pipeline = fattr.pipeline.clone().map_err(FormatError::Unsupported)?;
        // The tile offsets: in the tail already, or one bounded read.
        let gt_start = footer.gt_tile_offsets[a];
        let gt_end = footer.gt_tile_offsets.get(a + 1).copied().unwrap_or(size);
        let offsets = if gt_start >= tail_start && gt_end <= size {
            parse_tile_offsets(&tail, tail_start, &footer, a)?
        } else {
            let block = storage
                .read_ranges(&meta_path, std::slice::from_ref(&(gt_start..gt_end.max(gt_start))))?
                .pop()
                .unwrap_or_default();
            parse_tile_offsets(&block, gt_start, &footer, a)?
        };
        let lo: Vec<i64> = latest.dims.iter().map(|d| d.lo).collect();
        let ned: Vec<(u64, u64)> =
            footer.ned.iter().zip(&lo).map(|(&(a, b), &l)| ((a - l) as u64, (b - l) as u64 + 1)).collect();
        let ext: Vec<u64> = latest.dims.iter().map(|d| d.extent as u64).collect();
        let first: Vec<u64> = ned.iter().zip(&ext).map(|(&(a, _), &e)| a / e).collect();
        let counts: Vec<u64> =
            ned.iter().zip(&ext).zip(&first).map(|((&(_, b), &e), &f)| (b - 1) / e - f + 1).collect();
        let ntiles = counts.iter().try_fold(1u64, |a, &c| a.checked_mul(c));
        let file_size = footer.file_sizes[a];
        if ntiles != Some(offsets.len() as u64)
            || offsets.windows(2).any(|w| w[0] > w[1])
            || offsets.last().is_some_and(|&o| o > file_size)
        {
            return Err(FormatError::corrupt(format!(
                "fragment {}: {} tile offsets for a grid of {:?} tiles, file of {file_size} bytes",
                r.name,
                offsets.len(),
                counts
            ))
            .into());
        }
        Ok(Fragment {
            data_path: format!("__fragments/{}/a{a}.tdb", r.name),
            r#ref: r,
            ned,
            first,
            counts,
            offsets,
            file_size,
            pipeline,
        })
    }

    /// Keeps fetched tiles in `cache`; `namespace` distinguishes arrays (e.g. a hash of the URI).
    pub fn with_stored_cache(mut self, cache: Arc<dyn StoredTileCache>, namespace: u64) -> DirectArray {
        self.stored_cache = Some((cache, namespace));
        self
    }

    fn stored_key(&self, f: usize, pos: usize) -> Option<(&Arc<dyn StoredTileCache>, StoredKey)> {
        let (cache, ns) = self.stored_cache.as_ref()?;
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ns.hash(&mut h);
        self.fragments[f].data_path.hash(&mut h);
        Some((cache, (h.finish(), pos as u64)))
    }

    /// Bytes per cell.
    pub fn cell_size(&self) -> usize {
        self.cell_size
    }

    /// The voxel box of tile `coords` clipped to the domain, or to the current domain's upper
    /// corner when the schema sets one (half-open).
    pub fn tile_box(&self, coords: &[u64]) -> Vec<(u64, u64)> {
        coords.iter().zip(&self.extents).zip(&self.ends).map(|((&c, &e), &n)| (c * e, ((c + 1) * e).min(n))).collect()
    }

    /// Which fragments a tile needs, oldest first: all that overlap it, or only the newest when
    /// that one covers the whole (clipped) tile. The flag says whether the fragments cover it.
    fn sources(&self, tbox: &[(u64, u64)]) -> (Vec<usize>, bool) {
        let mut out = Vec::new();
        let mut covered = false;
        for (i, f) in self.fragments.iter().enumerate().rev() {
            let Some(inter) = intersect(&f.ned, tbox) else { continue };
            out.push(i);
            if inter == tbox {
                // Every older fragment is hidden behind this one.
                covered = true;
                break;
            }
        }
        out.reverse();
        (out, covered)
    }

    /// The stored tiles (fragment, position) that tiles `coords` need.
    pub fn needed(&self, coords: &[Vec<u64>]) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for c in coords {
            let tbox = self.tile_box(c);
            for f in self.sources(&tbox).0 {
                if let Some(p) = self.fragments[f].position(c, self.schema.tile_order) {
                    v.push((f, p));
                }
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Fetches stored tiles, from the stored-tile cache when it holds them (a counted hit or
    /// miss), else from storage.
    pub fn fetch(&self, wanted: &[(usize, usize)]) -> Result<Vec<StoredTile>, DirectError> {
        let mut out = Vec::with_capacity(wanted.len());
        let mut missing = Vec::new();
        for &(f, pos) in wanted {
            match self.stored_key(f, pos).and_then(|(c, k)| c.get(k)) {
                Some(bytes) => out.push(StoredTile { fragment: f, pos, bytes }),
                None => missing.push((f, pos)),
            }
        }
        out.extend(self.fetch_from_storage(&missing)?);
        Ok(out)
    }

    /// Reads stored tiles from storage, one request batch per fragment file (runs of `wanted`
    /// with the same fragment), and offers them to the stored-tile cache.
    fn fetch_from_storage(&self, wanted: &[(usize, usize)]) -> Result<Vec<StoredTile>, DirectError> {
        let mut out = Vec::with_capacity(wanted.len());
        for run in wanted.chunk_by(|a, b| a.0 == b.0) {
            let frag = &self.fragments[run[0].0];
            let ranges: Vec<Range<u64>> = run.iter().map(|&(_, p)| frag.range(p)).collect();
            for (&(f, pos), bytes) in run.iter().zip(self.storage.read_ranges(&frag.data_path, &ranges)?) {
                let bytes = Arc::new(bytes);
                if let Some((c, k)) = self.stored_key(f, pos) {
                    c.put(k, bytes.clone());
                }
                out.push(StoredTile { fragment: f, pos, bytes });
            }
        }
        Ok(out)
    }

    /// Fetches the stored tiles that tiles `coords` need and the stored-tile cache lacks, in one
    /// request wave, into that cache (without one, does nothing). Returns how many it fetched.
    /// Reads that follow then find their stored tiles in memory: a batch of reads over many
    /// tiles pays one round trip instead of one per read.
    pub fn prefetch(&self, coords: &[Vec<u64>]) -> Result<usize, DirectError> {
        let Some((cache, _)) = &self.stored_cache else { return Ok(0) };
        let wanted: Vec<(usize, usize)> = self
            .needed(coords)
            .into_iter()
            .filter(|&(f, p)| self.stored_key(f, p).is_some_and(|(c, k)| !c.contains(k)))
            .collect();
        self.fetch_from_storage(&wanted)?;
        cache.count_misses(wanted.len() as u64);
        Ok(wanted.len())
    }

    /// Decodes tile `coords` into `out`: its box clipped to the domain, Fortran order. Stored
    /// tiles it needs (see [`needed`](Self::needed)) come from `stored`, or are fetched here when
    /// missing. `scratch` is reused between calls.
    pub fn decode_tile(
        &self,
        coords: &[u64],
        stored: &StoredMap,
        out: &mut [u8],
        scratch: &mut Vec<u8>,
    ) -> Result<(), DirectError> {
        let tbox = self.tile_box(coords);
        let bshape: Vec<usize> = tbox.iter().map(|&(a, b)| (b - a) as usize).collect();
        if out.len() != bshape.iter().product::<usize>() * self.cell_size {
            return Err(FormatError::corrupt("tile output of the wrong size").into());
        }
        let (sources, covered) = self.sources(&tbox);
        let full_tile = bshape.iter().zip(&self.extents).all(|(&s, &e)| s as u64 == e);
        if !covered {
            for c in out.chunks_exact_mut(self.cell_size) {
                c.copy_from_slice(&self.fill);
            }
        }
        let ext: Vec<usize> = self.extents.iter().map(|&e| e as usize).collect();
        let tile_bytes = ext.iter().product::<usize>() * self.cell_size;
        for f in sources {
            let frag = &self.fragments[f];
            let Some(pos) = frag.position(coords, self.schema.tile_order) else { continue };
            // Local reads fetch each tile in the task that decodes it (reads overlap decodes).
            let fetched;
            let bytes = match stored.get(&(f, pos)) {
                Some(b) => b,
                None => {
                    fetched = self.fetch(&[(f, pos)])?.pop().ok_or_else(|| FormatError::corrupt("tile not fetched"))?;
                    &fetched.bytes
                }
            };
            let what = |e: FormatError| -> DirectError {
                let msg = format!("tile {coords:?} of fragment {}: {e}", frag.r#ref.name);
                match e {
                    FormatError::Unsupported(_) => FormatError::Unsupported(msg).into(),
                    FormatError::Corrupt(_) => FormatError::Corrupt(msg).into(),
                }
            };
            let region = intersect(&frag.ned, &tbox).unwrap_or_default();
            if region == tbox && full_tile && self.schema.cell_order == Order::ColMajor {
                // The stored tile is exactly the output box: decode in place.
                frag.pipeline.unfilter_tile(bytes, self.cell, out, true).map_err(what)?;
                continue;
            }
            scratch.clear();
            scratch.try_reserve(tile_bytes).map_err(|_| FormatError::corrupt("cannot allocate a tile"))?;
            scratch.resize(tile_bytes, 0);
            frag.pipeline.unfilter_tile(bytes, self.cell, scratch, true).map_err(what)?;
            let origin: Vec<u64> = coords.iter().zip(&self.extents).map(|(&c, &e)| c * e).collect();
            let soff: Vec<usize> = region.iter().zip(&origin).map(|(r, &o)| (r.0 - o) as usize).collect();
            let doff: Vec<usize> = region.iter().zip(&tbox).map(|(r, t)| (r.0 - t.0) as usize).collect();
            let rext: Vec<usize> = region.iter().map(|&(a, b)| (b - a) as usize).collect();
            match self.schema.cell_order {
                Order::ColMajor => copy_box(self.cell_size, scratch, &ext, &soff, out, &bshape, &doff, &rext),
                Order::RowMajor => {
                    // A C-ordered tile is the Fortran-ordered tile of the reversed shape.
                    let rev = |v: &[usize]| v.iter().rev().copied().collect::<Vec<_>>();
                    copy_box_f_to_c(
                        self.cell_size,
                        scratch,
                        &rev(&ext),
                        &rev(&soff),
                        out,
                        &rev(&bshape),
                        &rev(&doff),
                        &rev(&rext),
                    )
                }
            }
        }
        Ok(())
    }

    /// Reads and decodes tiles `coords` (in parallel on the current rayon pool): each result is
    /// the tile's box clipped to the domain, Fortran order.
    pub fn read_tiles(&self, coords: &[Vec<u64>]) -> Result<Vec<Vec<u8>>, DirectError> {
        if self.is_local() {
            // Each decoding task reads its own tiles: no wave to wait for.
            return self.decode_from(coords, &StoredMap::new());
        }
        let stored = self.fetch(&self.needed(coords))?;
        self.decode_tiles(coords, &stored)
    }

    /// Decodes tiles from bytes already fetched (see [`needed`](Self::needed), [`fetch`](Self::fetch)).
    pub fn decode_tiles(&self, coords: &[Vec<u64>], stored: &[StoredTile]) -> Result<Vec<Vec<u8>>, DirectError> {
        let map: StoredMap = stored.iter().map(|s| ((s.fragment, s.pos), s.bytes.clone())).collect();
        self.decode_from(coords, &map)
    }

    /// Decodes tile `c` into `out` (resized to the tile's clipped box).
    fn decode_into_vec(
        &self,
        c: &[u64],
        stored: &StoredMap,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Result<(), DirectError> {
        let n = self.tile_box(c).iter().map(|&(a, b)| (b - a) as usize).product::<usize>() * self.cell_size;
        out.clear();
        out.try_reserve_exact(n).map_err(|_| FormatError::corrupt("cannot allocate a tile"))?;
        out.resize(n, 0);
        self.decode_tile(c, stored, out, scratch)
    }

    /// Decodes tiles in parallel on the current rayon pool.
    fn decode_from(&self, coords: &[Vec<u64>], map: &StoredMap) -> Result<Vec<Vec<u8>>, DirectError> {
        let decode = |c: &Vec<u64>, scratch: &mut Vec<u8>| -> Result<Vec<u8>, DirectError> {
            let mut out = Vec::new();
            self.decode_into_vec(c, map, &mut out, scratch)?;
            Ok(out)
        };
        if coords.len() == 1 || !crate::sync::on_pool() {
            let mut scratch = Vec::new();
            return coords.iter().map(|c| decode(c, &mut scratch)).collect();
        }
        coords.par_iter().map_init(Vec::new, |scratch, c| decode(c, scratch)).collect()
    }

    /// The box reads may touch (half-open, from the domain's low corner): the current domain when
    /// the schema sets one (libtiledb refuses reads outside it), else the whole domain.
    pub fn readable_box(&self) -> Vec<(u64, u64)> {
        match &self.schema.current_domain {
            Some(cd) => cd
                .iter()
                .zip(&self.schema.dims)
                .map(|(&(lo, hi), d)| ((lo.max(d.lo) - d.lo) as u64, (hi.min(d.hi) - d.lo) as u64 + 1))
                .collect(),
            None => self.shape.iter().map(|&n| (0, n)).collect(),
        }
    }

    /// Where tile `c` lies in a Fortran-ordered buffer of region `sub`, when its (clipped) box is
    /// one contiguous run of it: the box spans `sub` whole along every axis but the last and lies
    /// inside it along the last (e.g. an axial tile of a whole-volume read).
    fn contiguous_in(&self, c: &[u64], sub: &[(u64, u64)], c_order: bool) -> Option<Range<usize>> {
        if c_order {
            return None;
        }
        let tb = self.tile_box(c);
        let last = tb.len() - 1;
        if tb[..last] != sub[..last] || tb[last].0 < sub[last].0 || tb[last].1 > sub[last].1 {
            return None;
        }
        let plane: usize = sub[..last].iter().map(|&(a, b)| (b - a) as usize).product::<usize>() * self.cell_size;
        let start = (tb[last].0 - sub[last].0) as usize * plane;
        Some(start..start + (tb[last].1 - tb[last].0) as usize * plane)
    }

    /// Whether the array's files are local (no request latency to hide).
    pub fn is_local(&self) -> bool {
        self.storage.is_local()
    }

    /// Reads `region` (half-open, relative to the domain's low corner) into `out`, Fortran order
    /// or C order. The output is cut into slabs along its slowest axis at tile boundaries; slabs
    /// decode in parallel on the current rayon pool, each tile into a per-thread buffer and from
    /// there into its slab, so memory beyond `out` is a few tiles per thread plus the stored
    /// bytes of one wave. On object stores a wave is a run of slabs whose stored tiles (at most
    /// [`REMOTE_WAVE_BYTES`], at least one slab) are fetched at once: one round of concurrent
    /// requests. Local reads fetch each tile in the task that decodes it: one wave, nothing held.
    /// Returns the number of tiles decoded.
    pub fn read_box(&self, region: &[(u64, u64)], out: &mut [u8], c_order: bool) -> Result<usize, DirectError> {
        let nd = self.shape.len();
        if region.len() != nd || region.iter().zip(&self.shape).any(|(&(a, b), &n)| a >= b || b > n) {
            return Err(FormatError::corrupt(format!("region {region:?} outside the domain {:?}", self.shape)).into());
        }
        let dshape: Vec<usize> = region.iter().map(|&(a, b)| (b - a) as usize).collect();
        if dshape.iter().product::<usize>() * self.cell_size != out.len() {
            return Err(FormatError::corrupt("output buffer of the wrong size").into());
        }
        let slow = if c_order { 0 } else { nd - 1 };
        let ext = self.extents[slow];
        let (ra, rb) = region[slow];
        let slab_stride = out.len() / dshape[slow];
        // Slabs: one per tile row along the slow axis, with their part of `out` and their tiles.
        let mut slabs: Vec<Slab<'_>> = Vec::new();
        let mut rest = out;
        for t in ra / ext..(rb - 1) / ext + 1 {
            let (lo, hi) = ((t * ext).max(ra), ((t + 1) * ext).min(rb));
            let (chunk, tail) = rest.split_at_mut((hi - lo) as usize * slab_stride);
            rest = tail;
            let mut sub = region.to_vec();
            sub[slow] = (lo, hi);
            let mut span: Vec<(u64, u64)> =
                sub.iter().zip(&self.extents).map(|(&(a, b), &e)| (a / e, (b - 1) / e + 1)).collect();
            span[slow] = (t, t + 1);
            slabs.push((sub, chunk, crate::region::boxes_in(&span)));
        }
        let ntiles = slabs.iter().map(|s| s.2.len()).sum();
        let local = self.is_local();
        let checkpoint = crate::cancel::Checkpoint::new();
        while !slabs.is_empty() {
            if checkpoint.interrupted() {
                return Err(DirectError::Interrupted);
            }
            // The next wave: every slab when local; on object stores, slabs while their stored
            // bytes fit the budget, fetched here at once.
            let mut stored = StoredMap::new();
            let mut take = slabs.len();
            if !local {
                let (mut bytes, mut wanted) = (0u64, Vec::new());
                take = 0;
                while take < slabs.len() {
                    let need = self.needed(&slabs[take].2);
                    let b: u64 = need.iter().map(|&(f, p)| self.fragments[f].range(p)).map(|r| r.end - r.start).sum();
                    if take > 0 && bytes + b > REMOTE_WAVE_BYTES {
                        break;
                    }
                    bytes += b;
                    wanted.extend(need);
                    take += 1;
                }
                wanted.sort_unstable();
                wanted.dedup();
                stored = self.fetch(&wanted)?.into_iter().map(|s| ((s.fragment, s.pos), s.bytes)).collect();
            }
            let wave: Vec<_> = slabs.drain(..take).collect();
            // Tiles of one slab decode `per` at a time in parallel when there are fewer slabs than
            // threads (e.g. one slab of axial tiles), else one by one per slab: a few tiles per
            // thread in flight keeps a whole read's peak near the result's size.
            let per = (rayon::current_num_threads() / wave.len()).max(1);
            let run = |(sub, chunk, tiles): Slab<'_>, bufs: &mut (Vec<u8>, Vec<u8>)| {
                let place = |c: &Vec<u64>, tile: &[u8], chunk: &mut [u8]| {
                    copy_tile_part(self.cell_size, tile, &self.tile_box(c), chunk, &sub, c_order);
                };
                if per > 1 {
                    for group in tiles.chunks(per) {
                        for (c, tile) in group.iter().zip(self.decode_from(group, &stored)?) {
                            place(c, &tile, chunk);
                        }
                    }
                    return Ok(());
                }
                for c in &tiles {
                    let (tile, scratch) = bufs;
                    if let Some(run) = self.contiguous_in(c, &sub, c_order) {
                        // The tile's box is one contiguous run of the slab: decode straight into it.
                        self.decode_tile(c, &stored, &mut chunk[run], scratch)?;
                        continue;
                    }
                    self.decode_into_vec(c, &stored, tile, scratch)?;
                    place(c, tile, chunk);
                }
                Ok::<(), DirectError>(())
            };
            if wave.len() == 1 || !crate::sync::on_pool() {
                let mut bufs = (Vec::new(), Vec::new());
                wave.into_iter().try_for_each(|w| run(w, &mut bufs))?;
            } else {
                wave.into_par_iter().try_for_each_init(|| (Vec::new(), Vec::new()), |bufs, w| run(w, bufs))?;
            }
        }
        Ok(ntiles)
    }
}
