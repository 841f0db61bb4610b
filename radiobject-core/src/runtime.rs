//! The I/O runtime of a context: a small multi-thread tokio runtime that drives object-store
//! requests (`object_store` is async) on behalf of synchronous callers.
//!
//! Every [`crate::Context`] owns one [`IoRuntime`]; it is created lazily, on the first object-store
//! request, with two worker threads named `radiobject-io-N`. The workers only move bytes (HTTP,
//! TLS); decoding stays on the caller's threads (rayon).
//!
//! Callers block on futures with [`IoRuntime::block_on`] / [`IoRuntime::try_block_on`] from any
//! thread that is not itself a tokio worker (the calling thread, the main thread, rayon pool
//! threads). Many threads may block on the same runtime at once.
//!
//! Besides the runtime, an `IoRuntime` keeps per-context I/O state that must outlive single arrays:
//! object-store clients (connection pools, cached credentials) and their request limiters, keyed by
//! bucket and configuration (see [`crate::io::object`]).
//!
//! # Fork
//!
//! A runtime started in a parent process must not be used in a forked child: its worker threads
//! do not exist there, and its connections are shared with the parent. [`IoRuntime::try_block_on`]
//! refuses (and [`IoRuntime::block_on`] panics) in a child, and dropping the runtime in a child
//! leaks it instead of touching the parent's thread state. A runtime never started before the fork
//! starts normally in the child. (Contexts already refuse to be used in a child; this is a second
//! line of defence.)

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tokio::runtime::Runtime;

use crate::io::IoError;

/// Worker threads of a context's I/O runtime unless set otherwise.
pub const DEFAULT_IO_THREADS: usize = 2;

/// A lazily started multi-thread tokio runtime, owned by one context (see the module docs).
pub struct IoRuntime {
    threads: usize,
    /// The runtime and the id of the process that started it.
    rt: OnceLock<Result<(u32, Runtime), String>>,
    /// Per-context shared I/O state (object-store clients), keyed by the code that made it.
    shared: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for IoRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoRuntime")
            .field("threads", &self.threads)
            .field("started", &matches!(self.rt.get(), Some(Ok(_))))
            .finish_non_exhaustive()
    }
}

impl Default for IoRuntime {
    fn default() -> Self {
        IoRuntime::new()
    }
}

impl IoRuntime {
    /// A runtime with [`DEFAULT_IO_THREADS`] worker threads, started on first use.
    pub fn new() -> IoRuntime {
        IoRuntime::with_threads(DEFAULT_IO_THREADS)
    }

    /// A runtime with `threads` worker threads (at least 1), started on first use.
    pub fn with_threads(threads: usize) -> IoRuntime {
        IoRuntime { threads: threads.max(1), rt: OnceLock::new(), shared: Mutex::new(HashMap::new()) }
    }

    /// Whether the runtime has been started (by a first request).
    pub fn is_started(&self) -> bool {
        matches!(self.rt.get(), Some(Ok(_)))
    }

    fn runtime(&self) -> Result<&Runtime, IoError> {
        let started = self.rt.get_or_init(|| {
            let next = Arc::new(AtomicUsize::new(0));
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.threads)
                .max_blocking_threads(self.threads.max(2))
                .thread_name_fn(move || format!("radiobject-io-{}", next.fetch_add(1, Ordering::Relaxed)))
                .enable_io()
                .enable_time()
                .build()
                .map(|rt| (std::process::id(), rt))
                .map_err(|e| format!("cannot start the I/O runtime: {e}"))
        });
        match started {
            Ok((pid, _)) if *pid != std::process::id() => Err(IoError::Other(
                "the I/O runtime was started in a parent process and cannot be used after fork(); \
                 create a new context in the child"
                    .into(),
            )),
            Ok((_, rt)) => Ok(rt),
            Err(e) => Err(IoError::Other(e.clone())),
        }
    }

    /// Runs `f` to completion on this runtime, blocking the calling thread.
    ///
    /// Fails if the runtime cannot be started, if it was started in a parent process (after
    /// `fork()`), or if the calling thread is already inside a tokio runtime (blocking there would
    /// stall it).
    pub fn try_block_on<F: Future>(&self, f: F) -> Result<F::Output, IoError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(IoError::Other(
                "blocking I/O called from inside an async runtime; call it from a plain thread".into(),
            ));
        }
        Ok(self.runtime()?.block_on(f))
    }

    /// Runs `f` to completion on this runtime, blocking the calling thread.
    ///
    /// # Panics
    ///
    /// Where [`IoRuntime::try_block_on`] fails.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        match self.try_block_on(f) {
            Ok(out) => out,
            Err(e) => panic!("{e}"),
        }
    }

    /// The value shared under `key` in this runtime, made by `make` on first use. `make` runs under
    /// a lock: keep it cheap and non-blocking. A value of another type under the same key is an
    /// error.
    pub(crate) fn shared<T, E>(&self, key: &str, make: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E>
    where
        T: Send + Sync + 'static,
        E: From<IoError>,
    {
        let mut map = self.shared.lock();
        if let Some(v) = map.get(key) {
            return Arc::clone(v)
                .downcast::<T>()
                .map_err(|_| E::from(IoError::Other(format!("I/O runtime: {key} holds another type"))));
        }
        let v = Arc::new(make()?);
        map.insert(key.to_owned(), v.clone() as Arc<dyn Any + Send + Sync>);
        Ok(v)
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        match self.rt.take() {
            Some(Ok((pid, rt))) if pid != std::process::id() => {
                // A forked child: the workers are the parent's, and the clients' sockets are
                // registered in the parent's epoll instance (shared across fork), so deregistering
                // them here would break the parent. Leak both.
                std::mem::forget(std::mem::take(self.shared.get_mut()));
                std::mem::forget(rt);
            }
            Some(Ok((_, rt))) => {
                // Clients first: their connection pools hold tasks of the runtime.
                self.shared.get_mut().clear();
                // Never waits: in-flight tasks are dropped, worker threads exit on their own.
                rt.shutdown_background();
            }
            _ => self.shared.get_mut().clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_lazily_and_blocks_from_many_threads() {
        let rt = Arc::new(IoRuntime::new());
        assert!(!rt.is_started());
        let sum: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8u64)
                .map(|i| {
                    let rt = rt.clone();
                    s.spawn(move || {
                        rt.block_on(async move {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            let name =
                                tokio::spawn(async { std::thread::current().name().map(str::to_owned) }).await.unwrap();
                            assert!(name.unwrap().starts_with("radiobject-io-"));
                            i
                        })
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(sum, 28);
        assert!(rt.is_started());
    }

    #[test]
    fn refuses_to_block_inside_a_runtime_and_drops_without_waiting() {
        let rt = IoRuntime::with_threads(1);
        let inner = rt.block_on(async {
            let nested = IoRuntime::new();
            nested.try_block_on(async {}).is_err()
        });
        assert!(inner);
        // A task that never ends must not keep drop waiting.
        rt.block_on(async {
            tokio::spawn(async { tokio::time::sleep(std::time::Duration::from_secs(3600)).await });
        });
        let t = std::time::Instant::now();
        drop(rt);
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn shared_values_are_made_once_per_key() {
        let rt = IoRuntime::new();
        let a: Arc<u32> = rt.shared::<u32, IoError>("k", || Ok(1)).unwrap();
        let b: Arc<u32> = rt.shared::<u32, IoError>("k", || Ok(2)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(rt.shared::<String, IoError>("k", || Ok(String::new())).is_err());
    }
}
