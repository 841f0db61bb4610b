//! Batch reads on a context's worker pool.

use rayon::prelude::*;

use crate::context::Context;
use crate::error::Result;
use crate::region::Region;
use crate::volume::{Volume, VolumeData};

/// Reads many regions of many volumes on `ctx`'s pool (`ReadConfig.max_workers` threads).
///
/// Results come back in request order; the first error (in request order) is returned. Volumes
/// read through the same context share its tile cache.
pub fn read_batch(ctx: &Context, requests: &[(Volume, Region)]) -> Result<Vec<VolumeData>> {
    let ctx = ctx.for_current_process()?;
    if requests.len() <= 1 {
        return requests.iter().map(|(v, r)| v.read_region_dyn(r)).collect();
    }
    prefetch(&ctx, requests);
    ctx.pool()?.install(|| requests.par_iter().map(|(v, r)| v.read_region_dyn(r)).collect())
}

/// Like [`read_batch`], writing raw Fortran-ordered bytes into caller-provided buffers (one per
/// request, each exactly the region's size).
pub fn read_batch_into(ctx: &Context, requests: &[(Volume, Region)], outs: &mut [&mut [u8]]) -> Result<()> {
    let ctx = ctx.for_current_process()?;
    if requests.len() != outs.len() {
        return Err(crate::Error::Invalid(format!("{} requests but {} output buffers", requests.len(), outs.len())));
    }
    prefetch(&ctx, requests);
    ctx.pool()?
        .install(|| requests.par_iter().zip(outs.par_iter_mut()).try_for_each(|((v, r), out)| v.read_into(r, out)))
}

/// One request wave for the stored tiles of every remote volume in the batch (see
/// [`crate::volume::prefetch_stored`]).
fn prefetch(ctx: &Context, requests: &[(Volume, Region)]) {
    let items: Vec<(&Volume, &Region)> = requests.iter().map(|(v, r)| (v, r)).collect();
    crate::volume::prefetch_stored(ctx, &items);
}
