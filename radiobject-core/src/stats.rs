//! Statistics: TileDB's own counters plus the tile cache's and the read path's, per context or
//! for the whole process, as deltas over a scope.
//!
//! Every number is measured:
//!
//! * TileDB counters (`Context.VFS.read_ops_num`, `Context.VFS.read_byte_num`, ...) come from
//!   `tiledb_ctx_get_stats` of each context. They are always collected in TileDB 2.30 and never
//!   reset by this crate (TileDB's reset is process-global and would corrupt other scopes).
//! * `RadiObject.TileCache.*` counts tile lookups in our cache, `RadiObject.Reads.*` the queries
//!   our read path sent to TileDB.
//!
//! A [`StatsScope`](crate::context::StatsScope) (next to the contexts it measures) records a
//! snapshot when it begins and another when it ends; it reports the difference. Snapshots are
//! monotonic (dropped contexts' final counters are kept), so scopes nest and run concurrently
//! without clobbering each other.
//!
//! This module is pure data (snapshots and the figures derived from them) and imports nothing
//! from the rest of the crate; [`crate::context`] fills the snapshots.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counter and timer values at one point in time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterSnapshot {
    /// Integer counters by full name (`Context.VFS.read_ops_num`, `RadiObject.TileCache.hits`, ...).
    pub counters: BTreeMap<String, u64>,
    /// TileDB timers by full name, in seconds (`...sum` cumulative, `...avg` averages).
    pub timers: BTreeMap<String, f64>,
}

impl CounterSnapshot {
    /// Parses the JSON of `tiledb_ctx_get_stats` (an object, or a list of objects as
    /// `tiledb_stats_dump_str` returns, which are summed).
    pub fn from_tiledb_json(json: &str) -> CounterSnapshot {
        let mut out = CounterSnapshot::default();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else { return out };
        let items = match v {
            serde_json::Value::Array(a) => a,
            other => vec![other],
        };
        for item in items {
            if let Some(c) = item.get("counters").and_then(|c| c.as_object()) {
                for (k, v) in c {
                    if let Some(n) = v.as_u64() {
                        *out.counters.entry(k.clone()).or_default() += n;
                    }
                }
            }
            if let Some(t) = item.get("timers").and_then(|t| t.as_object()) {
                for (k, v) in t {
                    if let Some(x) = v.as_f64() {
                        *out.timers.entry(k.clone()).or_default() += x;
                    }
                }
            }
        }
        out
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &CounterSnapshot) {
        for (k, v) in &other.counters {
            *self.counters.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.timers {
            *self.timers.entry(k.clone()).or_default() += v;
        }
    }

    /// `self - earlier`, dropping names that did not change.
    pub fn delta(&self, earlier: &CounterSnapshot) -> CounterSnapshot {
        let counters = self
            .counters
            .iter()
            .filter_map(|(k, &v)| {
                let d = v.saturating_sub(earlier.counters.get(k).copied().unwrap_or(0));
                (d > 0).then(|| (k.clone(), d))
            })
            .collect();
        let timers = self
            .timers
            .iter()
            .filter(|(k, _)| k.ends_with(".sum"))
            .filter_map(|(k, &v)| {
                let d = v - earlier.timers.get(k).copied().unwrap_or(0.0);
                (d > 0.0).then(|| (k.clone(), d))
            })
            .collect();
        CounterSnapshot { counters, timers }
    }

    /// One counter, 0 if absent.
    pub fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// TileDB-style JSON: `{"counters": {...}, "timers": {...}}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Tile-cache figures.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            cache_hits: self.get("RadiObject.TileCache.hits"),
            cache_misses: self.get("RadiObject.TileCache.misses"),
            tile_bytes_read: self.get("RadiObject.TileCache.miss_bytes"),
            vfs_read_bytes: self.get("Context.VFS.read_byte_num") + self.get("RadiObject.IO.bytes_fetched"),
        }
    }

    /// Storage (VFS) figures, S3 or local.
    pub fn s3_stats(&self) -> S3Stats {
        S3Stats {
            read_ops: self.get("Context.VFS.read_ops_num") + self.get("RadiObject.IO.range_requests"),
            parallelized_reads: self.get("RadiObject.Reads.parallel_queries")
                + self.get("RadiObject.IO.overlapped_requests"),
            write_ops: self.get("Context.VFS.write_ops_num"),
            total_bytes_read: self.get("Context.VFS.read_byte_num") + self.get("RadiObject.IO.bytes_fetched"),
            total_bytes_written: self.get("Context.VFS.write_byte_num"),
            read_queries: self.get("RadiObject.Reads.queries") + self.get("RadiObject.IO.range_requests"),
        }
    }
}

/// Tile-cache statistics over a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Tile lookups served without reading storage (including lookups that waited for another
    /// thread's read of the same tile).
    pub cache_hits: u64,
    /// Tile lookups that read the tile from storage.
    pub cache_misses: u64,
    /// Decoded bytes of the tiles read on misses.
    pub tile_bytes_read: u64,
    /// Bytes read from storage: by TileDB (`Context.VFS.read_byte_num`: fragment metadata,
    /// schemas, metadata, tiles of arrays it reads) plus by the direct reader
    /// (`RadiObject.IO.bytes_fetched`: its metadata and stored tiles).
    pub vfs_read_bytes: u64,
}

impl CacheStats {
    /// `hits / (hits + misses)`, 0 when there was no lookup.
    pub fn hit_rate(&self) -> f64 {
        let total = self.cache_hits + self.cache_misses;
        if total == 0 { 0.0 } else { self.cache_hits as f64 / total as f64 }
    }

    /// `misses / (hits + misses)`, 0 when there was no lookup.
    pub fn miss_rate(&self) -> f64 {
        let total = self.cache_hits + self.cache_misses;
        if total == 0 { 0.0 } else { self.cache_misses as f64 / total as f64 }
    }
}

/// Storage statistics over a scope. TileDB 2.30 has no S3-specific counters: these are its VFS
/// counters, which count S3 requests for `s3://` URIs and file reads for local paths, plus the
/// direct reader's own requests (`RadiObject.IO.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Stats {
    /// Backend read requests (`Context.VFS.read_ops_num`, each parallel S3 sub-request counts,
    /// plus the direct reader's `RadiObject.IO.range_requests`).
    pub read_ops: u64,
    /// Reads our read path issued while another one of the same context was running: TileDB
    /// queries (`RadiObject.Reads.parallel_queries`) plus the direct reader's storage reads
    /// (`RadiObject.IO.overlapped_requests`).
    pub parallelized_reads: u64,
    /// Backend write requests (`Context.VFS.write_ops_num`).
    pub write_ops: u64,
    /// Bytes read from storage (`Context.VFS.read_byte_num` + `RadiObject.IO.bytes_fetched`).
    pub total_bytes_read: u64,
    /// Bytes written to storage (`Context.VFS.write_byte_num`).
    pub total_bytes_written: u64,
    /// Reads our read path issued (the denominator of `parallelization_rate`): TileDB queries
    /// plus the direct reader's storage reads (`RadiObject.IO.range_requests`).
    pub read_queries: u64,
}

impl S3Stats {
    /// `parallelized_reads / read_queries`, 0 when there was no query.
    pub fn parallelization_rate(&self) -> f64 {
        if self.read_queries == 0 { 0.0 } else { self.parallelized_reads as f64 / self.read_queries as f64 }
    }
}
