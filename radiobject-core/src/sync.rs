//! Locks that are safe to `fork()` at any moment.
//!
//! A process that forks while another of its threads holds a lock gives its child a copy of that
//! lock, held by a thread that does not exist there: the child waits for it forever. Torch's
//! DataLoader forks its workers exactly like this, while the parent's threads keep reading.
//!
//! Every lock that a forked child can reach through objects it inherits (the global configuration
//! and context, the context registry, volume and collection handles) is a [`ForkMutex`] or a
//! [`ForkRwLock`]. Taking one first enters the *fork gate*; a `pthread_atfork` prepare handler
//! (registered in the FFI module on first use) closes the gate and waits until no thread is
//! inside, so `fork()` happens only while none of these locks is held; the parent and child handlers
//! open the gate again. Sections inside the gate are short and never wait for pool work, so the
//! wait in `fork()` is short too. The locks are `std`'s futex locks, which keep no process-wide
//! state a fork could leave inconsistent.
//!
//! Locks of per-process objects (a context's caches and counters, its pools, its I/O runtime) are
//! not gated: a child never uses its parent's contexts (see [`crate::context`]).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Once, PoisonError};

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static FORKING: AtomicBool = AtomicBool::new(false);
static REGISTER: Once = Once::new();

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Proof that the current thread is inside the fork gate; leaving it on drop.
pub(crate) struct GateToken {
    // Not Send: the depth is per thread.
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Enters the fork gate (re-entrant), waiting while a `fork()` is being prepared.
pub(crate) fn enter() -> GateToken {
    REGISTER.call_once(crate::ffi::process::register_atfork);
    let depth = DEPTH.with(Cell::get);
    if depth == 0 {
        loop {
            ACTIVE.fetch_add(1, SeqCst);
            if !FORKING.load(SeqCst) {
                break;
            }
            ACTIVE.fetch_sub(1, SeqCst);
            while FORKING.load(SeqCst) {
                std::thread::yield_now();
            }
        }
    }
    DEPTH.with(|d| d.set(depth + 1));
    GateToken { _not_send: std::marker::PhantomData }
}

impl Drop for GateToken {
    fn drop(&mut self) {
        let depth = DEPTH.with(Cell::get) - 1;
        DEPTH.with(|d| d.set(depth));
        if depth == 0 {
            ACTIVE.fetch_sub(1, SeqCst);
        }
    }
}

/// `pthread_atfork` prepare: close the gate and wait until no other thread is inside.
pub(crate) fn before_fork() {
    FORKING.store(true, SeqCst);
    let own = usize::from(DEPTH.with(Cell::get) > 0);
    let mut spins = 0u32;
    while ACTIVE.load(SeqCst) > own {
        spins += 1;
        if spins < 1000 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}

/// `pthread_atfork` parent and child: open the gate again. In the child only the forking thread
/// exists, so only its own presence in the gate remains.
pub(crate) fn after_fork(in_child: bool) {
    if in_child {
        ACTIVE.store(usize::from(DEPTH.with(Cell::get) > 0), SeqCst);
    }
    FORKING.store(false, SeqCst);
}

/// Whether the current thread is a pool worker. Parallel iterators run only there; elsewhere
/// (tests, tools calling the format reader directly) the work runs on the calling thread instead of
/// starting rayon's global pool.
pub(crate) fn on_pool() -> bool {
    rayon::current_thread_index().is_some()
}

/// `rayon::join` on a pool worker; elsewhere `a` then `b` on the calling thread (see [`on_pool`]).
pub(crate) fn join<A: FnOnce() -> RA + Send, B: FnOnce() -> RB + Send, RA: Send, RB: Send>(a: A, b: B) -> (RA, RB) {
    if on_pool() { rayon::join(a, b) } else { (a(), b()) }
}

/// A guard together with the gate token it was taken under (the guard is released first).
pub(crate) struct Gated<G> {
    guard: G,
    _gate: GateToken,
}

impl<G: std::ops::Deref> std::ops::Deref for Gated<G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: std::ops::DerefMut> std::ops::DerefMut for Gated<G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

/// A mutex safe to fork under (see the module docs). A panic while holding it does not poison it.
#[derive(Default)]
pub(crate) struct ForkMutex<T>(std::sync::Mutex<T>);

impl<T> ForkMutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        ForkMutex(std::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> Gated<std::sync::MutexGuard<'_, T>> {
        let gate = enter();
        Gated { guard: self.0.lock().unwrap_or_else(PoisonError::into_inner), _gate: gate }
    }
}

/// A reader-writer lock safe to fork under (see the module docs). Not poisoned by panics.
#[derive(Default)]
pub(crate) struct ForkRwLock<T>(std::sync::RwLock<T>);

impl<T> ForkRwLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        ForkRwLock(std::sync::RwLock::new(value))
    }

    pub(crate) fn read(&self) -> Gated<std::sync::RwLockReadGuard<'_, T>> {
        let gate = enter();
        Gated { guard: self.0.read().unwrap_or_else(PoisonError::into_inner), _gate: gate }
    }

    pub(crate) fn write(&self) -> Gated<std::sync::RwLockWriteGuard<'_, T>> {
        let gate = enter();
        Gated { guard: self.0.write().unwrap_or_else(PoisonError::into_inner), _gate: gate }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_is_reentrant_and_counts_threads_once() {
        let a = enter();
        let b = enter();
        drop(a);
        drop(b);
        let m = ForkMutex::new(1);
        let r = ForkRwLock::new(2);
        {
            let g = m.lock();
            let x = r.read();
            assert_eq!(*g + *x, 3);
        }
        *r.write() += 1;
        assert_eq!(*r.read(), 3);
    }

    #[test]
    fn prepare_waits_for_threads_inside_the_gate() {
        let m = std::sync::Arc::new(ForkMutex::new(0u32));
        let held = m.lock();
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let d2 = done.clone();
        let t = std::thread::spawn(move || {
            before_fork();
            d2.store(true, SeqCst);
            after_fork(false);
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!done.load(SeqCst), "prepare returned while a lock was held");
        drop(held);
        t.join().unwrap();
        assert!(done.load(SeqCst));
        *m.lock() += 1;
    }
}
