//! # radiobject-core
//!
//! Storage of 3D/4D radiology volumes (CT, MRI, masks) in TileDB arrays, read fast from local
//! disk or S3: shared [`Context`]s with a real tile cache and honest counters, [`Volume`]s that keep
//! their array open, and parallel, order-preserving batch reads.
//!
//! ```no_run
//! use radiobject_core::{Context, Region, Volume, RadiObjectConfig};
//! # fn main() -> radiobject_core::Result<()> {
//! let ctx = Context::new(&RadiObjectConfig::default())?;
//! let vol = Volume::open("/data/brats/collections/T1w/volumes/0", &ctx)?;
//! let roi = vol.read_region::<f32>(&Region::new(vec![(10, 74), (20, 84), (30, 94)]))?;
//! assert_eq!(roi.shape(), &[64, 64, 64]);
//! # Ok(()) }
//! ```
//!
//! All TileDB calls live in one private module (`ffi`), the only place with `unsafe` code.

#![deny(unsafe_code)]

pub(crate) mod cache;
pub mod cancel;
pub mod collection;
pub mod config;
pub mod context;
pub mod dataframe;
pub mod dataset;
pub mod dtype;
pub mod error;
mod ffi;
pub mod format;
pub mod group;
pub mod imaging;
pub mod ingest;
pub mod io;
pub mod loader;
pub mod lock;
pub mod metadata;
pub mod parallel;
pub mod region;
pub mod runtime;
pub mod stats;
pub(crate) mod sync;
pub mod verify;
pub mod volume;

pub use config::{
    CompressionConfig, Compressor, OrientationConfig, RadiObjectConfig, ReadConfig, S3Config, SliceOrientation,
    TileConfig, WriteConfig, global_config,
};
pub use context::{
    Context, ObjectKind, StatsScope, configure, global_context, process_snapshot, reset_config, reset_global_context,
    set_process_worker_threads,
};
pub use dtype::{Datatype, Element, Layout};
pub use error::{Error, Result, TdbError};
pub use metadata::MetaValue;
pub use region::Region;
pub use stats::{CacheStats, CounterSnapshot, S3Stats};
pub use volume::{CacheUse, VOXELS_ATTR, Volume, VolumeData, VolumeInfo};

/// The libtiledb version loaded at run time, e.g. `(2, 30, 0)`.
pub fn tiledb_version() -> (i32, i32, i32) {
    ffi::version()
}
