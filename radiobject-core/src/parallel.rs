//! Batch reads on a context's worker pool.

use rayon::prelude::*;

use crate::cancel::Checkpoint;
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
    let checkpoint = Checkpoint::new();
    ctx.workers()?.install(|| {
        requests
            .par_iter()
            .map(|(v, r)| {
                checkpoint.check(|| "batch read stopped; nothing was returned".into())?;
                v.read_region_dyn(r)
            })
            .collect()
    })
}

/// Like [`read_batch`], writing raw Fortran-ordered bytes into caller-provided buffers (one per
/// request, each exactly the region's size).
pub fn read_batch_into(ctx: &Context, requests: &[(Volume, Region)], outs: &mut [&mut [u8]]) -> Result<()> {
    let ctx = ctx.for_current_process()?;
    if requests.len() != outs.len() {
        return Err(crate::Error::Invalid(format!("{} requests but {} output buffers", requests.len(), outs.len())));
    }
    prefetch(&ctx, requests);
    let checkpoint = Checkpoint::new();
    ctx.workers()?.install(|| {
        requests.par_iter().zip(outs.par_iter_mut()).try_for_each(|((v, r), out)| {
            checkpoint.check(|| "batch read stopped; the output buffers are incomplete".into())?;
            v.read_into(r, out)
        })
    })
}

/// One request wave for the stored tiles of every remote volume in the batch (see
/// [`crate::volume::prefetch_stored`]).
fn prefetch(ctx: &Context, requests: &[(Volume, Region)]) {
    let items: Vec<(&Volume, &Region)> = requests.iter().map(|(v, r)| (v, r)).collect();
    crate::volume::prefetch_stored(ctx, &items);
}

/// At most `workers` jobs at a time on a context's pool: for work whose parallelism the caller
/// chooses (an ingest's `max_workers`) without starting a pool of its own.
pub(crate) struct Bounded<'a> {
    ctx: &'a Context,
    workers: usize,
}

impl<'a> Bounded<'a> {
    pub(crate) fn new(ctx: &'a Context, workers: usize) -> Self {
        Bounded { ctx, workers: workers.max(1) }
    }

    /// `f` applied to every item, results in item order; `workers` tasks each take the next item
    /// until none is left.
    pub(crate) fn map<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&T) -> R + Sync) -> Result<Vec<R>> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let task = |_| {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { return out };
                out.push((i, f(item)));
            }
        };
        let tasks = self.workers.min(items.len());
        let mut all: Vec<(usize, R)> = if tasks <= 1 {
            task(0)
        } else {
            self.ctx.workers()?.install(|| (0..tasks).into_par_iter().map(task).flatten_iter().collect())
        };
        all.sort_unstable_by_key(|(i, _)| *i);
        Ok(all.into_iter().map(|(_, r)| r).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_map_keeps_order_and_runs_at_most_workers_at_once() {
        let ctx = Context::new(&crate::RadiObjectConfig::default()).unwrap();
        let running = std::sync::atomic::AtomicUsize::new(0);
        let peak = std::sync::atomic::AtomicUsize::new(0);
        let items: Vec<u32> = (0..40).collect();
        let out = Bounded::new(&ctx, 2).map(&items, |&x| {
            let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            x * 2
        });
        let out = out.unwrap();
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 2);
    }
}
