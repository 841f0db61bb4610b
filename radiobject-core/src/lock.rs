//! The dataset write lock: one writer per dataset at a time.
//!
//! Every operation that changes a dataset (ingest, the dataset writers, renaming a collection)
//! first creates the lock object `<root>/.radiobject-write.lock`, atomically: a local file is
//! created with `O_CREAT|O_EXCL`, an S3 object with a conditional put (`If-None-Match: *`, which
//! S3 and S3-compatible servers honour since 2024). Whoever creates it holds the lock; it records
//! the owner (host, pid, operation, start time and a random token) as JSON, and is removed when
//! the operation ends (also on error, and on Ctrl-C).
//!
//! A second writer either fails at once with [`Error::Locked`] (naming the owner, the lock's
//! age and the cure) or, when given a wait, polls until the lock is free or the wait is over.
//! Nothing is written before the lock is held, so a refused writer changes nothing.
//!
//! A lock whose owner ran on this host and whose process no longer exists (killed, crashed) is
//! stale: it is broken with a warning on stderr and taken over. A lock from another host cannot be
//! checked; `radiobject unlock <uri>` ([`break_lock`]) removes it once you know its writer is gone.
//! Breaking re-reads the lock just before removing it and only removes the one found stale; two
//! processes breaking the same stale lock in the same instant remain a (tiny) race.
//!
//! Readers never take the lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cancel::Checkpoint;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::io::{IoError, Storage};

/// Name of the lock object in the dataset root.
pub const LOCK_NAME: &str = ".radiobject-write.lock";

/// How often a waiting writer looks at the lock again.
const POLL: Duration = Duration::from_millis(200);

/// Who holds a dataset's write lock (the lock object's content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    /// Host name of the writer.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// What it is doing (`"ingest"`, `"write"`, `"rename collection"`...).
    pub operation: String,
    /// When it took the lock, in ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Tells one holder from another (a broken and retaken lock has a new token).
    pub token: String,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `"45s"`, `"3m12s"`, `"2h05m"`, `"3d04h"`.
pub fn format_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

impl LockOwner {
    fn new(operation: &str) -> LockOwner {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        LockOwner {
            host: crate::ffi::process::hostname(),
            pid,
            operation: operation.to_owned(),
            started_unix_ms: now_ms(),
            token: format!("{pid:x}-{nanos:x}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed)),
        }
    }

    /// How long ago the lock was taken.
    pub fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.started_unix_ms))
    }

    /// `ingest (pid 4242 on host node-7)`.
    pub fn describe(&self) -> String {
        let host = if self.host.is_empty() { "an unknown host" } else { &self.host };
        format!("{} (pid {} on {host})", self.operation, self.pid)
    }

    /// Whether the owner ran on this host and its process is gone: the lock is stale.
    pub fn is_dead_local(&self) -> bool {
        self.host == crate::ffi::process::hostname() && !crate::ffi::process::pid_alive(self.pid)
    }

    /// Whether the owner runs on this host and its process exists.
    pub fn is_running_here(&self) -> bool {
        self.host == crate::ffi::process::hostname() && crate::ffi::process::pid_alive(self.pid)
    }
}

/// The lock object of the dataset at `root`.
fn storage(ctx: &Context, root: &str) -> Result<Arc<dyn Storage>> {
    ctx.storage_for(root.trim_end_matches('/'))
        .map_err(|why| Error::Invalid(format!("cannot lock {root} for writing: no storage for this URI ({why})")))
}

fn io_err(root: &str, e: IoError) -> Error {
    Error::Io { uri: format!("{}/{LOCK_NAME}", root.trim_end_matches('/')), detail: e.to_string() }
}

/// What the lock object holds: `Ok(None)` when there is none, `Err(())` when it cannot be parsed
/// (being written this instant, or damaged).
fn read_owner(s: &dyn Storage, root: &str) -> Result<Option<std::result::Result<LockOwner, String>>> {
    match s.read(LOCK_NAME) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|_| String::from_utf8_lossy(&bytes).into_owned()))),
        Err(IoError::NotFound(_)) => Ok(None),
        Err(e) => Err(io_err(root, e)),
    }
}

/// Who holds the write lock of the dataset at `root`, if anyone.
pub fn lock_owner(ctx: &Context, root: &str) -> Result<Option<LockOwner>> {
    let s = storage(ctx, root)?;
    Ok(match read_owner(s.as_ref(), root)? {
        Some(Ok(o)) => Some(o),
        Some(Err(raw)) => Some(LockOwner {
            host: String::new(),
            pid: 0,
            operation: format!("an unknown writer (unreadable lock object: {raw:?})"),
            started_unix_ms: now_ms(),
            token: String::new(),
        }),
        None => None,
    })
}

/// Removes the write lock of the dataset at `root` whoever holds it, and returns who did. For a
/// lock left by a writer that is gone (`radiobject unlock`); breaking the lock of a live writer
/// lets two writers change the dataset at once.
pub fn break_lock(ctx: &Context, root: &str) -> Result<Option<LockOwner>> {
    let owner = lock_owner(ctx, root)?;
    if owner.is_some() {
        storage(ctx, root)?.delete(LOCK_NAME).map_err(|e| io_err(root, e))?;
    }
    Ok(owner)
}

/// A held write lock; released when dropped (or by [`release`](WriteLock::release)).
#[derive(Debug)]
pub struct WriteLock {
    root: String,
    storage: Arc<dyn Storage>,
    owner: LockOwner,
    broken: Option<LockOwner>,
    released: bool,
}

impl WriteLock {
    /// Takes the write lock of the dataset at `root` for `operation`. Fails with
    /// [`Error::Locked`] if another writer holds it and `wait` (none: fail at once) passes first;
    /// breaks it (with a warning) if its owner is a dead process of this host; stops with
    /// [`Error::Interrupted`] on Ctrl-C while waiting.
    pub fn acquire(ctx: &Context, root: &str, operation: &str, wait: Option<Duration>) -> Result<WriteLock> {
        let root = root.trim_end_matches('/').to_owned();
        let s = storage(ctx, &root)?;
        let me = LockOwner::new(operation);
        let body = serde_json::to_vec(&me).map_err(|e| Error::Invalid(format!("cannot encode the lock: {e}")))?;
        let start = std::time::Instant::now();
        let wait = wait.unwrap_or(Duration::ZERO);
        let checkpoint = Checkpoint::new();
        let mut broken = None;
        // an unparseable lock (being written this instant) gets a moment before it counts
        let mut unreadable_since: Option<std::time::Instant> = None;
        loop {
            if s.create_new(LOCK_NAME, &body).map_err(|e| io_err(&root, e))? {
                return Ok(WriteLock { root, storage: s, owner: me, broken, released: false });
            }
            let held = match read_owner(s.as_ref(), &root)? {
                None => continue, // released between our attempt and the read: try again
                Some(Ok(owner)) => {
                    unreadable_since = None;
                    if owner.is_dead_local() {
                        // Re-read just before removing, so that only the stale lock goes.
                        if matches!(read_owner(s.as_ref(), &root)?, Some(Ok(ref again)) if again.token == owner.token) {
                            s.delete(LOCK_NAME).map_err(|e| io_err(&root, e))?;
                            eprintln!(
                                "warning: {root}: broke the stale write lock of {}, taken {} ago by a process \
                                 that no longer exists; an ingest run again finishes what it left",
                                owner.describe(),
                                format_age(owner.age())
                            );
                            broken = Some(owner);
                        }
                        continue;
                    }
                    owner
                }
                Some(Err(raw)) => {
                    let since = *unreadable_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() < Duration::from_secs(2) {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    LockOwner {
                        host: String::new(),
                        pid: 0,
                        operation: format!("an unknown writer (unreadable lock object: {raw:?})"),
                        started_unix_ms: now_ms(),
                        token: String::new(),
                    }
                }
            };
            let elapsed = start.elapsed();
            if elapsed >= wait {
                let waited = if wait.is_zero() { String::new() } else { format!("waited {}; ", format_age(wait)) };
                return Err(Error::Locked {
                    uri: root.clone(),
                    owner: held.describe(),
                    age: format_age(held.age()),
                    cure: format!(
                        "{waited}one writer at a time: wait for it to finish and run again (the command line's \
                         --wait-lock SECONDS, Python's lock_timeout= wait for you), or, if that process is \
                         gone, remove the stale lock with `radiobject unlock {root}`"
                    ),
                });
            }
            checkpoint.check(|| format!("waiting for the write lock of {root}; nothing was written"))?;
            std::thread::sleep(POLL.min(wait - elapsed));
        }
    }

    /// Who holds it (this process).
    pub fn owner(&self) -> &LockOwner {
        &self.owner
    }

    /// The stale lock this one replaced, if it broke one.
    pub fn broken(&self) -> Option<&LockOwner> {
        self.broken.as_ref()
    }

    /// The dataset root it locks.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Removes the lock object if it is still this lock's (not broken and retaken by another).
    pub fn release(mut self) -> Result<()> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<()> {
        if self.released || std::process::id() != self.owner.pid {
            // released already, or a forked child that inherited the guard: the lock is not its own
            return Ok(());
        }
        self.released = true;
        match read_owner(self.storage.as_ref(), &self.root)? {
            Some(Ok(o)) if o.token == self.owner.token => {
                self.storage.delete(LOCK_NAME).map_err(|e| io_err(&self.root, e))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RadiObjectConfig;

    fn ctx() -> Context {
        Context::new(&RadiObjectConfig::default()).unwrap()
    }

    #[test]
    fn one_holder_at_a_time_and_the_message_names_it() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ds");
        let root = root.to_str().unwrap();
        let c = ctx();
        let a = WriteLock::acquire(&c, root, "ingest", None).unwrap();
        assert!(d.path().join("ds").join(LOCK_NAME).is_file());
        let e = WriteLock::acquire(&c, root, "write", None).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Locked { .. }), "{msg}");
        assert!(msg.contains(&format!("ingest (pid {}", std::process::id())), "{msg}");
        assert!(msg.contains("radiobject unlock") && msg.contains("ago"), "{msg}");
        assert_eq!(lock_owner(&c, root).unwrap().unwrap().operation, "ingest");
        // a waiter gets it once the holder lets go
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(a);
        });
        let b = WriteLock::acquire(&c, root, "write", Some(Duration::from_secs(20))).unwrap();
        t.join().unwrap();
        assert_eq!(lock_owner(&c, root).unwrap().unwrap().token, b.owner().token);
        b.release().unwrap();
        assert!(lock_owner(&c, root).unwrap().is_none());
    }

    #[test]
    fn a_dead_local_owner_is_broken_a_foreign_one_is_not() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_str().unwrap();
        let c = ctx();
        // a process that has exited: its pid is free
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let mut stale = LockOwner::new("ingest");
        stale.pid = dead;
        stale.started_unix_ms -= 3_600_000;
        std::fs::write(d.path().join(LOCK_NAME), serde_json::to_vec(&stale).unwrap()).unwrap();
        let l = WriteLock::acquire(&c, root, "write", None).unwrap();
        assert_eq!(l.broken().map(|o| o.pid), Some(dead));
        drop(l);
        // another host's lock cannot be checked: refused, and `break_lock` is the cure
        let mut foreign = stale.clone();
        foreign.host = "elsewhere.example".into();
        std::fs::write(d.path().join(LOCK_NAME), serde_json::to_vec(&foreign).unwrap()).unwrap();
        let msg = WriteLock::acquire(&c, root, "write", None).unwrap_err().to_string();
        assert!(msg.contains("elsewhere.example") && msg.contains("1h00m"), "{msg}");
        assert_eq!(break_lock(&c, root).unwrap().unwrap().host, "elsewhere.example");
        WriteLock::acquire(&c, root, "write", None).unwrap();
    }

    #[test]
    fn a_lock_taken_over_by_another_is_not_removed_by_the_old_holder() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_str().unwrap();
        let c = ctx();
        let old = WriteLock::acquire(&c, root, "ingest", None).unwrap();
        break_lock(&c, root).unwrap();
        let new = WriteLock::acquire(&c, root, "write", None).unwrap();
        drop(old);
        assert_eq!(lock_owner(&c, root).unwrap().unwrap().token, new.owner().token);
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(format_age(Duration::from_secs(5)), "5s");
        assert_eq!(format_age(Duration::from_secs(192)), "3m12s");
        assert_eq!(format_age(Duration::from_secs(7500)), "2h05m");
        assert_eq!(format_age(Duration::from_secs(3 * 86400 + 4 * 3600)), "3d04h");
    }
}
