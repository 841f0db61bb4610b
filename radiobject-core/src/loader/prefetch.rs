//! Reading batches ahead of the training step, in order, with back-pressure.
//!
//! A [`Prefetcher`] owns a queue of submitted batches. Each submitted batch is one job on the
//! context's worker pool (no thread of its own); the caller decides how many are in flight (the
//! loader keeps `prefetch` of them while the step runs) and takes them back strictly in submission
//! order. Dropping the prefetcher cancels every job that has not started; jobs already reading
//! finish their one batch and drop it. Nothing blocks a pool thread.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::loader::plan::{Batch, Plan};

struct Slot {
    result: Mutex<Option<Result<Batch>>>,
    ready: Condvar,
}

/// Batches read in the background on the plan's context pool, returned in submission order.
pub struct Prefetcher {
    plan: Arc<Plan>,
    queue: VecDeque<Arc<Slot>>,
    cancelled: Arc<AtomicBool>,
}

impl std::fmt::Debug for Prefetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetcher").field("pending", &self.queue.len()).finish()
    }
}

impl Prefetcher {
    /// A prefetcher of `plan`'s batches.
    pub fn new(plan: Arc<Plan>) -> Prefetcher {
        Prefetcher { plan, queue: VecDeque::new(), cancelled: Arc::new(AtomicBool::new(false)) }
    }

    /// Batches submitted and not taken yet.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Starts reading the batch of `(epoch, index)` items in the background.
    pub fn submit(&mut self, requests: Vec<(u64, u64)>) -> Result<()> {
        let slot = Arc::new(Slot { result: Mutex::new(None), ready: Condvar::new() });
        let (plan, cancelled, job_slot) = (self.plan.clone(), self.cancelled.clone(), slot.clone());
        let pool_ctx = self.plan.context()?;
        pool_ctx.pool()?.spawn(move || {
            let r = if cancelled.load(Ordering::Acquire) {
                Err(Error::Invalid("cancelled".into()))
            } else {
                plan.read_batch(&requests)
            };
            *job_slot.result.lock() = Some(r);
            job_slot.ready.notify_all();
        });
        self.queue.push_back(slot);
        Ok(())
    }

    /// Waits up to `timeout` for the oldest submitted batch. `None`: not ready yet (call again),
    /// or nothing submitted ([`pending`](Self::pending) is 0).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Batch>> {
        let slot = self.queue.front()?.clone();
        let mut r = slot.result.lock();
        if r.is_none() {
            slot.ready.wait_for(&mut r, timeout);
        }
        let out = r.take()?;
        drop(r);
        self.queue.pop_front();
        Some(out)
    }

    /// Cancels the batches that have not started and waits for those already reading (at most
    /// one batch read each); [`pending`](Self::pending) becomes 0 and no job of this prefetcher
    /// runs afterwards.
    pub fn cancel(&mut self) {
        self.cancelled.store(true, Ordering::Release);
        for slot in self.queue.drain(..) {
            let mut r = slot.result.lock();
            while r.is_none() {
                slot.ready.wait(&mut r);
            }
        }
        self.cancelled = Arc::new(AtomicBool::new(false));
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Release);
    }
}
