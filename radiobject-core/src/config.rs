//! Configuration: how volumes are written (tiling, compression, orientation), read (memory,
//! concurrency, tile cache, workers) and reached on S3.
//!
//! The structs mirror the Python reference's pydantic models field for field (same names, same
//! defaults), deserialise from the same dictionaries, and are validated as a whole by
//! [`RadiObjectConfig::validate`]. [`RadiObjectConfig::tiledb_params`] maps them onto the TileDB 2.30
//! keys that actually act.
//!
//! A process-wide configuration lives behind [`global_config`]; it is installed by
//! [`crate::context::configure`], which also rebuilds the global context (contexts depend on
//! configurations, never the other way round).

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MIB: u64 = 1024 * 1024;

/// Preferred slicing orientation; decides the default tile shape of new volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SliceOrientation {
    /// X-Y planes: tiles `(X, Y, 1)`. Fast axial slices.
    #[default]
    Axial,
    /// Y-Z planes: tiles `(1, Y, Z)`.
    Sagittal,
    /// X-Z planes: tiles `(X, 1, Z)`.
    Coronal,
    /// Cubes: tiles `(64, 64, 64)`. Fast 3D regions of interest.
    Isotropic,
}

impl SliceOrientation {
    /// The lowercase name stored in volume metadata (`tile_orientation`).
    pub fn as_str(self) -> &'static str {
        match self {
            SliceOrientation::Axial => "axial",
            SliceOrientation::Sagittal => "sagittal",
            SliceOrientation::Coronal => "coronal",
            SliceOrientation::Isotropic => "isotropic",
        }
    }
}

/// Compression algorithm for voxel data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compressor {
    /// Zstandard (levels -1..=22).
    #[default]
    Zstd,
    /// LZ4 (levels -1..=16).
    Lz4,
    /// Gzip (levels -1..=9).
    Gzip,
    /// No compression.
    None,
}

/// Tile extents of new volumes.
///
/// `x`, `y`, `z` override the extents implied by `orientation`; `t` is the extent along time for
/// 4D volumes. Extents are clipped to the volume's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TileConfig {
    /// Slicing orientation the tiles favour.
    ///
    /// > default: `axial`
    pub orientation: SliceOrientation,
    /// Tile extent along x (None = from the orientation).
    pub x: Option<u64>,
    /// Tile extent along y (None = from the orientation).
    pub y: Option<u64>,
    /// Tile extent along z (None = from the orientation).
    pub z: Option<u64>,
    /// Tile extent along t for 4D volumes.
    ///
    /// > default: `1`
    pub t: u64,
}

impl Default for TileConfig {
    fn default() -> Self {
        TileConfig { orientation: SliceOrientation::Axial, x: None, y: None, z: None, t: 1 }
    }
}

impl TileConfig {
    /// Tile extents for a volume of `shape` (3 or 4 axes), clipped to the shape.
    pub fn extents_for_shape(&self, shape: &[u64]) -> Vec<u64> {
        let (sx, sy, sz) = (shape[0], shape[1], shape[2]);
        let (dx, dy, dz) = match self.orientation {
            SliceOrientation::Axial => (sx, sy, 1),
            SliceOrientation::Sagittal => (1, sy, sz),
            SliceOrientation::Coronal => (sx, 1, sz),
            SliceOrientation::Isotropic => (64, 64, 64),
        };
        let mut ext = vec![self.x.unwrap_or(dx), self.y.unwrap_or(dy), self.z.unwrap_or(dz)];
        if shape.len() == 4 {
            ext.push(self.t);
        }
        ext.iter().zip(shape).map(|(&e, &n)| e.clamp(1, n.max(1))).collect()
    }

    fn validate(&self) -> Result<()> {
        for (name, v) in [("x", self.x), ("y", self.y), ("z", self.z), ("t", Some(self.t))] {
            if v == Some(0) {
                return Err(Error::Config(format!("TileConfig.{name} must be >= 1, got 0")));
            }
        }
        Ok(())
    }
}

/// Compression of voxel data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// Algorithm.
    ///
    /// > default: `zstd`
    pub algorithm: Compressor,
    /// Level; its valid range depends on the algorithm (zstd -1..=22, lz4 -1..=16, gzip -1..=9).
    ///
    /// > default: `3`
    pub level: i32,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig { algorithm: Compressor::Zstd, level: 3 }
    }
}

impl CompressionConfig {
    fn validate(&self) -> Result<()> {
        let (lo, hi) = match self.algorithm {
            Compressor::Zstd => (-1, 22),
            Compressor::Lz4 => (-1, 16),
            Compressor::Gzip => (-1, 9),
            Compressor::None => (-1, 22),
        };
        if self.level < lo || self.level > hi {
            return Err(Error::Config(format!(
                "compression level {} is out of range for {:?}: valid levels are {lo}..={hi}",
                self.level, self.algorithm
            )));
        }
        Ok(())
    }
}

/// Orientation handling at ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrientationConfig {
    /// Read the orientation from file headers.
    ///
    /// > default: `true`
    pub auto_detect: bool,
    /// Canonical orientation to reorient to: `RAS`, `LAS` or `LPS`.
    ///
    /// > default: `"RAS"`
    pub canonical_target: String,
    /// Reorient volumes to `canonical_target` on ingest.
    ///
    /// > default: `false`
    pub reorient_on_load: bool,
    /// Keep the original affine in metadata (`original_affine`) when reorienting.
    ///
    /// > default: `true`
    pub store_original_affine: bool,
}

impl Default for OrientationConfig {
    fn default() -> Self {
        OrientationConfig {
            auto_detect: true,
            canonical_target: "RAS".to_owned(),
            reorient_on_load: false,
            store_original_affine: true,
        }
    }
}

impl OrientationConfig {
    fn validate(&self) -> Result<()> {
        if !["RAS", "LAS", "LPS"].contains(&self.canonical_target.as_str()) {
            return Err(Error::Config(format!(
                "canonical_target must be one of RAS, LAS, LPS; got {:?}",
                self.canonical_target
            )));
        }
        Ok(())
    }
}

/// Settings applied when creating volumes (fixed once an array exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WriteConfig {
    /// Tiling.
    pub tile: TileConfig,
    /// Compression.
    pub compression: CompressionConfig,
    /// Orientation handling.
    pub orientation: OrientationConfig,
}

/// Settings for reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadConfig {
    /// Memory budget of TileDB's readers, in MiB (`sm.mem.total_budget`, and `sm.memory_budget` /
    /// `sm.memory_budget_var` for the legacy readers). At least 64. 1/256 of it (4..256 MiB) bounds
    /// the decoded tiles a read holds at once (`sm.mem.tile_upper_memory_limit`).
    ///
    /// > default: `1024`
    pub memory_budget_mb: u64,
    /// Byte budget of the per-context tile cache, in MiB. `0` disables the cache.
    ///
    /// > default: `512`
    pub tile_cache_size_mb: u64,
    /// TileDB compute and I/O thread-pool sizes (`sm.compute_concurrency_level`,
    /// `sm.io_concurrency_level`), 1..=64.
    ///
    /// > default: `4`
    pub concurrency: u32,
    /// Threads serving batch reads and parallel writes, 1..=32.
    ///
    /// > default: `4`
    pub max_workers: u32,
    /// Read tiles with the crate's own format reader and decoders (`crate::format`) instead of
    /// libtiledb's reader. Arrays the reader does not understand are read by libtiledb either way
    /// (the reason is counted in `RadiObject.Direct.fallback.*`); `false` sends every read to
    /// libtiledb.
    ///
    /// > default: `true`
    pub direct_reads: bool,
    /// Byte budget, in MiB, of the compressed-tile cache: tiles of remote arrays (S3) as stored,
    /// so that data several times larger than the tile cache still reads epoch 2+ from memory
    /// instead of the network. Local arrays skip it (the OS page cache holds their files). `0`
    /// disables it.
    ///
    /// > default: `1024`
    pub compressed_cache_mb: u64,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            memory_budget_mb: 1024,
            tile_cache_size_mb: 512,
            concurrency: 4,
            max_workers: 4,
            direct_reads: true,
            compressed_cache_mb: 1024,
        }
    }
}

impl ReadConfig {
    fn validate(&self) -> Result<()> {
        if self.memory_budget_mb < 64 {
            return Err(Error::Config(format!("memory_budget_mb must be >= 64, got {}", self.memory_budget_mb)));
        }
        if self.tile_cache_size_mb > 1 << 30 {
            return Err(Error::Config(format!("tile_cache_size_mb is too large: {}", self.tile_cache_size_mb)));
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err(Error::Config(format!("concurrency must be in 1..=64, got {}", self.concurrency)));
        }
        if !(1..=32).contains(&self.max_workers) {
            return Err(Error::Config(format!("max_workers must be in 1..=32, got {}", self.max_workers)));
        }
        Ok(())
    }
}

/// S3 (and S3-compatible) storage settings.
///
/// Credentials are never stored here: TileDB resolves them through the standard AWS chain
/// (environment, shared profile, SSO, web identity, container and instance roles) when the first S3
/// request is made, and refreshes them as they expire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// AWS region (`vfs.s3.region`).
    ///
    /// > default: `"us-east-1"`
    pub region: String,
    /// Custom endpoint, e.g. `http://127.0.0.1:9000` (`vfs.s3.endpoint_override`; a scheme given
    /// here sets `vfs.s3.scheme`).
    pub endpoint: Option<String>,
    /// Virtual-hosted-style addressing (`vfs.s3.use_virtual_addressing`). Most S3-compatible
    /// servers need `false`.
    ///
    /// > default: `true`
    pub use_virtual_addressing: bool,
    /// Parallel sub-requests per large read or write (`vfs.s3.max_parallel_ops`).
    ///
    /// > default: `8`
    pub max_parallel_ops: u32,
    /// Multipart upload part size in MiB, at least 5 (`vfs.s3.multipart_part_size`).
    ///
    /// > default: `50`
    pub multipart_part_size_mb: u64,
    /// Sign requests with credentials from the AWS chain; `false` sends anonymous requests
    /// (`vfs.s3.no_sign_request`), for public buckets.
    ///
    /// > default: `true`
    pub include_credentials: bool,
    /// `https` or `http` (`vfs.s3.scheme`); None = from `endpoint`, else https.
    pub scheme: Option<String>,
    /// Verify TLS certificates (`vfs.s3.verify_ssl`).
    ///
    /// > default: `true`
    pub verify_ssl: bool,
    /// Request timeout in ms (`vfs.s3.request_timeout_ms`); None = TileDB's default.
    pub request_timeout_ms: Option<u64>,
    /// Connection attempts (`vfs.s3.connect_max_tries`); None = TileDB's default.
    pub connect_max_tries: Option<u32>,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            region: "us-east-1".to_owned(),
            endpoint: None,
            use_virtual_addressing: true,
            max_parallel_ops: 8,
            multipart_part_size_mb: 50,
            include_credentials: true,
            scheme: None,
            verify_ssl: true,
            request_timeout_ms: None,
            connect_max_tries: None,
        }
    }
}

impl S3Config {
    fn validate(&self) -> Result<()> {
        if self.max_parallel_ops == 0 {
            return Err(Error::Config("max_parallel_ops must be >= 1".into()));
        }
        if self.multipart_part_size_mb < 5 {
            return Err(Error::Config(format!(
                "multipart_part_size_mb must be >= 5 (the S3 minimum part size), got {}",
                self.multipart_part_size_mb
            )));
        }
        if let Some(s) = &self.scheme
            && s != "http"
            && s != "https"
        {
            return Err(Error::Config(format!("scheme must be 'http' or 'https', got {s:?}")));
        }
        if let Some(e) = &self.endpoint {
            if e.trim().is_empty() {
                return Err(Error::Config("endpoint must not be empty (use None for AWS)".into()));
            }
            if let Some((scheme, _)) = e.split_once("://")
                && scheme != "http"
                && scheme != "https"
            {
                return Err(Error::Config(format!("endpoint scheme must be http or https, got {scheme:?}")));
            }
            // The host (and port) must be there and look like one: "http://" or "not a url" would
            // otherwise fall back to AWS or fail only at the first request.
            let rest = e.split_once("://").map_or(e.as_str(), |(_, r)| r);
            let authority = rest.split('/').next().unwrap_or_default();
            let (host, port) = match authority.rsplit_once(':') {
                // A bracketed IPv6 address without a port has colons of its own.
                _ if authority.starts_with('[') && authority.ends_with(']') => (authority, None),
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            let host_ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c));
            let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
            if !host_ok || !port_ok {
                return Err(Error::Config(format!(
                    "endpoint {e:?} is not a valid host[:port] (e.g. \"http://127.0.0.1:9000\" or \"s3.eu-west-1.amazonaws.com\")"
                )));
            }
        }
        Ok(())
    }

    /// `(scheme, host[:port])` of the configured endpoint.
    fn endpoint_parts(&self) -> Option<(Option<&str>, &str)> {
        let e = self.endpoint.as_deref()?;
        Some(match e.split_once("://") {
            Some((s, rest)) => (Some(s), rest.trim_end_matches('/')),
            None => (None, e.trim_end_matches('/')),
        })
    }
}

/// The whole configuration: write, read and S3 sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RadiObjectConfig {
    /// How new volumes are written.
    pub write: WriteConfig,
    /// How volumes are read.
    pub read: ReadConfig,
    /// How S3 is reached.
    pub s3: S3Config,
}

/// A deserialization error of a configuration, named by the field that causes it
/// (`read.max_workers: invalid type: string "x", expected u32`) instead of a position in the
/// JSON the bindings generated.
fn describe_config_error(value: &serde_json::Value, whole: serde_json::Error) -> String {
    fn fails(v: serde_json::Value) -> Option<serde_json::Error> {
        serde_json::from_value::<RadiObjectConfig>(v).err()
    }
    // The deepest field that fails on its own, found by rebuilding the document one key at a time.
    fn find(
        path: &mut Vec<String>,
        v: &serde_json::Value,
        wrap: &dyn Fn(serde_json::Value) -> serde_json::Value,
    ) -> Option<String> {
        let err = fails(wrap(v.clone()))?;
        if let serde_json::Value::Object(map) = v {
            for (k, sub) in map {
                path.push(k.clone());
                let inner =
                    |x: serde_json::Value| wrap(serde_json::Value::Object([(k.clone(), x)].into_iter().collect()));
                if let Some(found) = find(path, sub, &inner) {
                    return Some(found);
                }
                path.pop();
            }
        }
        Some(if path.is_empty() { err.to_string() } else { format!("{}: {err}", path.join(".")) })
    }
    find(&mut Vec::new(), value, &|x| x).unwrap_or_else(|| whole.to_string())
}

impl RadiObjectConfig {
    /// Checks every field; the first problem is returned as [`Error::Config`].
    pub fn validate(&self) -> Result<()> {
        self.write.tile.validate()?;
        self.write.compression.validate()?;
        self.write.orientation.validate()?;
        self.read.validate()?;
        self.s3.validate()
    }

    /// Parses and validates a JSON document (missing fields take their defaults).
    pub fn from_json(json: &str) -> Result<Self> {
        // Not JSON at all: serde's message with its position is the useful one.
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| Error::Config(format!("not valid JSON: {e}")))?;
        let cfg: RadiObjectConfig = match serde_json::from_value(value.clone()) {
            Ok(cfg) => cfg,
            Err(e) => return Err(Error::Config(describe_config_error(&value, e))),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The configuration as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The TileDB config parameters this configuration sets, as `(key, value)` pairs.
    ///
    /// No credentials are ever included.
    pub fn tiledb_params(&self) -> Vec<(String, String)> {
        let r = &self.read;
        let s = &self.s3;
        let budget = (r.memory_budget_mb * MIB).to_string();
        let mut p: Vec<(&str, String)> = vec![
            // The refactored dense/sparse readers (2.30 defaults) budget with sm.mem.total_budget;
            // the legacy readers with sm.memory_budget(_var).
            ("sm.mem.total_budget", budget.clone()),
            ("sm.memory_budget", budget.clone()),
            ("sm.memory_budget_var", budget),
            ("sm.compute_concurrency_level", r.concurrency.to_string()),
            ("sm.io_concurrency_level", r.concurrency.to_string()),
            // Read exactly the tiles a query needs: with the defaults (20 MiB / 500 KB) TileDB
            // coalesces neighbouring tiles into one request and over-reads up to ~3x.
            ("vfs.min_batch_size", "0".to_owned()),
            // TileDB trims the heap after every query by default, so the next query page-faults all
            // of its tile buffers in again (measured: 20-35% of a cold 64^3 ROI read).
            ("sm.mem.malloc_trim", "false".to_owned()),
            // The dense reader decodes tiles in batches of at most half this much (two batches
            // overlap). TileDB's default (1 GiB) lets a whole-volume read hold every decoded tile
            // next to the result (2-2.5x the volume); 1/256 of the budget (4 MiB by default) keeps
            // the peak at 1.1x (240x240x155 float32) to 1.4x (the 8.7 MB MNI152 template) with no
            // slower reads measured than at 8 MiB (1.2x / 1.6x).
            ("sm.mem.tile_upper_memory_limit", (r.memory_budget_mb * MIB / 256).clamp(4 * MIB, 256 * MIB).to_string()),
            ("vfs.min_batch_gap", "0".to_owned()),
            ("vfs.s3.region", s.region.clone()),
            ("vfs.s3.use_virtual_addressing", s.use_virtual_addressing.to_string()),
            ("vfs.s3.max_parallel_ops", s.max_parallel_ops.to_string()),
            ("vfs.s3.multipart_part_size", (s.multipart_part_size_mb * MIB).to_string()),
            ("vfs.s3.verify_ssl", s.verify_ssl.to_string()),
            ("vfs.s3.no_sign_request", (!s.include_credentials).to_string()),
        ];
        let mut scheme = s.scheme.clone();
        if let Some((es, host)) = s.endpoint_parts() {
            p.push(("vfs.s3.endpoint_override", host.to_owned()));
            if scheme.is_none() {
                scheme = es.map(str::to_owned);
            }
        }
        p.push(("vfs.s3.scheme", scheme.unwrap_or_else(|| "https".to_owned())));
        if let Some(t) = s.request_timeout_ms {
            p.push(("vfs.s3.request_timeout_ms", t.to_string()));
        }
        if let Some(t) = s.connect_max_tries {
            p.push(("vfs.s3.connect_max_tries", t.to_string()));
        }
        p.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

static GLOBAL_CONFIG: LazyLock<crate::sync::ForkRwLock<RadiObjectConfig>> =
    LazyLock::new(|| crate::sync::ForkRwLock::new(RadiObjectConfig::default()));

/// A copy of the process-wide configuration.
pub fn global_config() -> RadiObjectConfig {
    GLOBAL_CONFIG.read().clone()
}

/// Installs `config` as the process-wide configuration, unvalidated. The public ways in are
/// [`crate::context::configure`] and [`crate::context::reset_config`], which also drop the global
/// context built from the old one.
pub(crate) fn set_global_config(config: RadiObjectConfig) {
    *GLOBAL_CONFIG.write() = config;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_reference() {
        let c = RadiObjectConfig::default();
        assert_eq!(
            c.read,
            ReadConfig {
                memory_budget_mb: 1024,
                tile_cache_size_mb: 512,
                concurrency: 4,
                max_workers: 4,
                direct_reads: true,
                compressed_cache_mb: 1024
            }
        );
        assert_eq!(c.s3.max_parallel_ops, 8);
        assert_eq!(c.s3.multipart_part_size_mb, 50);
        assert_eq!(c.write.compression.level, 3);
        assert_eq!(c.write.tile.orientation, SliceOrientation::Axial);
        c.validate().unwrap();
    }

    #[test]
    fn config_errors_name_the_field_not_a_json_position() {
        let e = RadiObjectConfig::from_json(r#"{"write": {"tile": {}}, "read": {"max_workers": "x"}}"#).unwrap_err();
        assert_eq!(e.to_string(), r#"invalid configuration: read.max_workers: invalid type: string "x", expected u32"#);
        let e = RadiObjectConfig::from_json(r#"{"read": {"nope": 1}}"#).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid configuration: read.nope: unknown field `nope`") && !e.contains("column"),
            "{e}"
        );
        let e = RadiObjectConfig::from_json("{bad").unwrap_err().to_string();
        assert!(e.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn from_json_fills_defaults_and_rejects_typos() {
        let c = RadiObjectConfig::from_json(r#"{"read": {"max_workers": 8}}"#).unwrap();
        assert_eq!(c.read.max_workers, 8);
        assert_eq!(c.read.concurrency, 4);
        let e = RadiObjectConfig::from_json(r#"{"read": {"max_wrokers": 8}}"#).unwrap_err();
        assert!(e.to_string().contains("max_wrokers"), "{e}");
    }

    #[test]
    fn compression_levels_are_checked_per_algorithm() {
        let mut c = RadiObjectConfig::default();
        c.write.compression = CompressionConfig { algorithm: Compressor::Gzip, level: 15 };
        assert!(matches!(c.validate(), Err(Error::Config(_))));
        c.write.compression.level = 9;
        c.validate().unwrap();
        c.write.compression = CompressionConfig { algorithm: Compressor::Zstd, level: 23 };
        assert!(c.validate().is_err());
    }

    #[test]
    fn tile_extents_follow_the_orientation_and_clip() {
        let mut t = TileConfig::default();
        assert_eq!(t.extents_for_shape(&[8, 8, 4]), vec![8, 8, 1]);
        t.orientation = SliceOrientation::Sagittal;
        assert_eq!(t.extents_for_shape(&[10, 100, 30, 5]), vec![1, 100, 30, 1]);
        t.orientation = SliceOrientation::Isotropic;
        assert_eq!(t.extents_for_shape(&[100, 100, 30]), vec![64, 64, 30]);
        t.z = Some(8);
        assert_eq!(t.extents_for_shape(&[100, 100, 30]), vec![64, 64, 8]);
    }

    #[test]
    fn s3_endpoints_are_validated_before_use() {
        let with = |e: &str| {
            let mut c = RadiObjectConfig::default();
            c.s3.endpoint = Some(e.to_owned());
            c.validate()
        };
        for ok in [
            "http://127.0.0.1:9000",
            "https://s3.eu-west-1.amazonaws.com",
            "minio.local:9000/",
            "http://[::1]:9000",
            "http://[::1]",
        ] {
            with(ok).unwrap();
        }
        for bad in ["http://", "not a url", "http://host:port", "http://host:0", "http://host:70000", "ftp://x", " "] {
            assert!(with(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn s3_endpoint_sets_scheme_and_host_without_credentials() {
        let mut c = RadiObjectConfig::default();
        c.s3.endpoint = Some("http://127.0.0.1:5055/".into());
        c.s3.use_virtual_addressing = false;
        let p: std::collections::HashMap<_, _> = c.tiledb_params().into_iter().collect();
        assert_eq!(p["vfs.s3.endpoint_override"], "127.0.0.1:5055");
        assert_eq!(p["vfs.s3.scheme"], "http");
        assert_eq!(p["vfs.s3.use_virtual_addressing"], "false");
        assert!(!p.keys().any(|k| k.contains("secret") || k.contains("access_key")));
    }
}
