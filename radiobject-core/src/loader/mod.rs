//! The batch pipeline under the training loaders: pure Rust, nothing here knows Python or torch.
//!
//! * [`Plan`]: a dataset's channels (validated: same subjects in the same order, same shape per
//!   subject), its items (whole volumes, random patches, 2D slices) and batch reads: every item and
//!   channel of a batch read in parallel on the context's pool, straight into one C-ordered
//!   `(B, C, *item_shape)` array per key.
//! * [`sampling`]: shuffle orders and patch positions as pure functions of `(seed, epoch, index)`,
//!   so batches are identical whatever the thread, worker or prefetch counts.
//! * [`Foreground`]: where each mask's foreground is, computed once per dataset.
//! * [`Prefetcher`]: batches read ahead on the pool, returned in order, cancelled on drop.

mod foreground;
mod plan;
mod prefetch;
pub mod sampling;
mod transpose;

pub use foreground::{BLOCK as FOREGROUND_BLOCK, Foreground, MaskIndex};
pub use plan::{
    Batch, Channel, Item, Key, Mode, Plan, PlanConfig, PlanCounters, check_aligned, check_patch_fits, common_shape,
};
pub use prefetch::Prefetcher;
pub use sampling::permutation;
