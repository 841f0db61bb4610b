//! Cooperative interruption of long work (Ctrl-C).
//!
//! An interrupt is process-wide, as SIGINT is: [`interrupt`] advances a generation counter, and
//! every long operation that started before it stops at its next [`Checkpoint::check`] with
//! [`Error::Interrupted`]. Operations check between units of work (a source of an ingest, a volume
//! of a verify, a wave of a large read, a batch of a loader), so what they completed stays intact:
//! an interrupted ingest keeps, and records, the volumes it finished, and a rerun resumes.
//!
//! The Python bindings call [`interrupt`] when the interpreter sees a `KeyboardInterrupt` while a
//! call runs with the GIL released; the `radiobject` command calls it from its SIGINT handler
//! ([`interrupt`] is async-signal-safe: one atomic add).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Interrupts every operation of this process that is running now. Async-signal-safe.
pub fn interrupt() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// Makes SIGINT call [`interrupt`] (a second SIGINT exits at once with status 130). For programs
/// that own the process, such as the `radiobject` command; Python installs its own handler.
pub fn install_sigint_handler() -> std::io::Result<()> {
    crate::ffi::process::install_sigint_handler()
}

/// Taken when a long operation starts; [`check`](Checkpoint::check) fails once [`interrupt`] has
/// been called since.
#[derive(Clone, Copy, Debug)]
pub struct Checkpoint(u64);

impl Default for Checkpoint {
    fn default() -> Self {
        Self::new()
    }
}

impl Checkpoint {
    /// A checkpoint for an operation starting now.
    pub fn new() -> Self {
        Checkpoint(GENERATION.load(Ordering::Acquire))
    }

    /// Whether this process was interrupted since the checkpoint was taken.
    pub fn interrupted(&self) -> bool {
        GENERATION.load(Ordering::Acquire) != self.0
    }

    /// `Err(Error::Interrupted)` naming `what` if this process was interrupted since the
    /// checkpoint was taken.
    pub fn check(&self, what: impl FnOnce() -> String) -> Result<()> {
        if self.interrupted() { Err(Error::Interrupted(what())) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_operations_started_before_an_interrupt_stop() {
        let before = Checkpoint::new();
        assert!(before.check(|| "x".into()).is_ok());
        interrupt();
        let after = Checkpoint::new();
        assert!(matches!(before.check(|| "read".into()), Err(Error::Interrupted(w)) if w == "read"));
        assert!(after.check(|| "x".into()).is_ok());
    }
}
