//! Storage I/O for the direct read path: one small trait, [`Storage`], with two backends —
//! local files ([`LocalStorage`], positioned reads) and object stores ([`object::ObjectStorage`]:
//! S3 through `object_store`, driven by the context's tokio runtime).
//!
//! Paths are relative to the array's root (`__commits`, `__fragments/<name>/a0.tdb`). Every
//! backend counts its requests and bytes in shared [`IoCounters`].

pub mod object;

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

/// A storage failure.
#[derive(Debug, Error)]
pub enum IoError {
    /// The object or directory does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Fewer bytes than requested (the object is shorter than its metadata says).
    #[error("{path}: wanted bytes {start}..{end}, the object ends at {size}")]
    Short {
        /// The object.
        path: String,
        /// Requested start.
        start: u64,
        /// Requested end.
        end: u64,
        /// Its actual size.
        size: u64,
    },
    /// Anything else the backend reported.
    #[error("{0}")]
    Other(String),
}

/// Request and byte counters of a storage backend (shared by every backend of a context).
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Listings sent.
    pub list_requests: AtomicU64,
    /// Whole-object or range reads sent (after coalescing).
    pub range_requests: AtomicU64,
    /// Bytes received.
    pub bytes_fetched: AtomicU64,
    /// Requests running now.
    pub in_flight: AtomicU64,
    /// Most requests seen running at once.
    pub max_in_flight: AtomicU64,
    /// Requests started while another one was running (monotonic, so scopes can diff it).
    pub overlapped: AtomicU64,
}

impl IoCounters {
    /// Marks a request as started; the guard marks it finished and counts `bytes` set on it.
    pub fn start(&self) -> RequestGuard<'_> {
        self.range_requests.fetch_add(1, Ordering::Relaxed);
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        if now > 1 {
            self.overlapped.fetch_add(1, Ordering::Relaxed);
        }
        RequestGuard { counters: self, bytes: 0 }
    }
}

/// One request in flight (see [`IoCounters::start`]).
#[derive(Debug)]
pub struct RequestGuard<'a> {
    counters: &'a IoCounters,
    /// Bytes the request received.
    pub bytes: u64,
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.counters.bytes_fetched.fetch_add(self.bytes, Ordering::Relaxed);
    }
}

/// Read access to the objects of one array.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Names (last path component) of the objects directly under `dir`; an empty list when `dir`
    /// does not exist.
    fn list(&self, dir: &str) -> Result<Vec<String>, IoError>;

    /// A whole object.
    fn read(&self, path: &str) -> Result<Vec<u8>, IoError>;

    /// The last `n` bytes of an object (all of it if shorter) and the object's size.
    fn read_suffix(&self, path: &str, n: u64) -> Result<(Vec<u8>, u64), IoError>;

    /// Byte ranges of one object, in the order asked. Backends may coalesce nearby ranges and run
    /// requests concurrently; every range must be returned in full or the call fails.
    fn read_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>, IoError>;

    /// Whether reads are local (cheap enough that prefetching tiles buys nothing).
    fn is_local(&self) -> bool;

    /// Creates the object `path` holding `data` only if nothing is there, atomically: local
    /// files with `O_CREAT|O_EXCL`, object stores with a conditional put (`If-None-Match: *`).
    /// `Ok(false)` when the object already exists. Used for the dataset write lock.
    fn create_new(&self, path: &str, data: &[u8]) -> Result<bool, IoError>;

    /// Removes the object `path` (no error if it is absent).
    fn delete(&self, path: &str) -> Result<(), IoError>;
}

/// Files of an array on the local file system, read with positioned reads (`pread`).
#[derive(Debug)]
pub struct LocalStorage {
    root: PathBuf,
    counters: Arc<IoCounters>,
}

impl LocalStorage {
    /// Storage rooted at the array folder `root` (a path or a `file://` URI).
    pub fn new(root: &str, counters: Arc<IoCounters>) -> LocalStorage {
        let root = root.strip_prefix("file://").unwrap_or(root);
        LocalStorage { root: PathBuf::from(root), counters }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

fn local_err(path: &std::path::Path, e: std::io::Error) -> IoError {
    if e.kind() == std::io::ErrorKind::NotFound {
        IoError::NotFound(path.display().to_string())
    } else {
        IoError::Other(format!("{}: {e}", path.display()))
    }
}

/// Reads `range` of `f` fully, or reports how short the file is.
fn pread_exact(f: &File, p: &std::path::Path, range: &Range<u64>) -> Result<Vec<u8>, IoError> {
    let len = range.end.saturating_sub(range.start);
    let size = f.metadata().map_err(|e| local_err(p, e))?.len();
    if range.end > size || range.start > range.end {
        return Err(IoError::Short { path: p.display().to_string(), start: range.start, end: range.end, size });
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(len as usize)
        .map_err(|_| IoError::Other(format!("{}: cannot allocate {len} bytes", p.display())))?;
    buf.resize(len as usize, 0);
    f.read_exact_at(&mut buf, range.start).map_err(|e| local_err(p, e))?;
    Ok(buf)
}

impl Storage for LocalStorage {
    fn list(&self, dir: &str) -> Result<Vec<String>, IoError> {
        let p = self.path(dir);
        self.counters.list_requests.fetch_add(1, Ordering::Relaxed);
        let rd = match std::fs::read_dir(&p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(local_err(&p, e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| local_err(&p, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, IoError> {
        let p = self.path(path);
        let mut g = self.counters.start();
        let b = std::fs::read(&p).map_err(|e| local_err(&p, e))?;
        g.bytes = b.len() as u64;
        Ok(b)
    }

    fn read_suffix(&self, path: &str, n: u64) -> Result<(Vec<u8>, u64), IoError> {
        let p = self.path(path);
        let f = File::open(&p).map_err(|e| local_err(&p, e))?;
        let size = f.metadata().map_err(|e| local_err(&p, e))?.len();
        let mut g = self.counters.start();
        let b = pread_exact(&f, &p, &(size.saturating_sub(n)..size))?;
        g.bytes = b.len() as u64;
        Ok((b, size))
    }

    fn read_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>, IoError> {
        let p = self.path(path);
        let f = File::open(&p).map_err(|e| local_err(&p, e))?;
        ranges
            .iter()
            .map(|r| {
                let mut g = self.counters.start();
                let b = pread_exact(&f, &p, r)?;
                g.bytes = b.len() as u64;
                Ok(b)
            })
            .collect()
    }

    fn is_local(&self) -> bool {
        true
    }

    fn create_new(&self, path: &str, data: &[u8]) -> Result<bool, IoError> {
        use std::io::Write;
        let p = self.path(path);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| local_err(dir, e))?;
        }
        let mut f = match std::fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(local_err(&p, e)),
        };
        // A reader may see the file before its bytes: readers treat an empty or partial object
        // as "being written" (see `crate::lock`).
        f.write_all(data).and_then(|()| f.sync_all()).map_err(|e| local_err(&p, e))?;
        Ok(true)
    }

    fn delete(&self, path: &str) -> Result<(), IoError> {
        let p = self.path(path);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(local_err(&p, e)),
        }
    }
}

/// Byte ranges merged where they lie at most `gap` bytes apart (sorted by start): returns the
/// merged ranges and, for each input range, `(merged index, offset inside it)`.
pub fn coalesce(ranges: &[Range<u64>], gap: u64) -> (Vec<Range<u64>>, Vec<(usize, u64)>) {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| ranges[i].start);
    let mut merged: Vec<Range<u64>> = Vec::new();
    let mut at = vec![(0usize, 0u64); ranges.len()];
    for i in order {
        let r = &ranges[i];
        let k = merged.len();
        match merged.last_mut() {
            Some(m) if r.start <= m.end.saturating_add(gap) => {
                m.end = m.end.max(r.end);
                at[i] = (k - 1, r.start - m.start);
            }
            _ => {
                merged.push(r.clone());
                at[i] = (merged.len() - 1, 0);
            }
        }
    }
    (merged, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_nearby_ranges_and_maps_back() {
        let (m, at) = coalesce(&[10..20, 0..4, 25..30, 100..110], 5);
        assert_eq!(m, vec![0..4, 10..30, 100..110]);
        assert_eq!(at, vec![(1, 0), (0, 0), (1, 15), (2, 0)]);
        let (m, _) = coalesce(&[10..20, 0..5], 5);
        assert_eq!(m, vec![0..20]);
    }

    #[test]
    fn local_reads_count_and_refuse_short_ranges() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("__commits")).unwrap();
        std::fs::write(d.path().join("__commits/b.wrt"), b"").unwrap();
        std::fs::write(d.path().join("f"), (0u8..100).collect::<Vec<_>>()).unwrap();
        let c = Arc::new(IoCounters::default());
        let s = LocalStorage::new(d.path().to_str().unwrap(), c.clone());
        assert_eq!(s.list("__commits").unwrap(), vec!["b.wrt"]);
        assert!(s.list("missing").unwrap().is_empty());
        let r = s.read_ranges("f", &[2..4, 98..100]).unwrap();
        assert_eq!(r, vec![vec![2, 3], vec![98, 99]]);
        assert!(matches!(s.read_ranges("f", &[90..101, 0..1]), Err(IoError::Short { size: 100, .. })));
        assert_eq!(s.read_suffix("f", 3).unwrap(), (vec![97, 98, 99], 100));
        assert_eq!(c.range_requests.load(Ordering::Relaxed), 4);
        assert_eq!(c.bytes_fetched.load(Ordering::Relaxed), 4 + 3);
        assert_eq!(c.in_flight.load(Ordering::Relaxed), 0);
        assert!(matches!(s.read("nope"), Err(IoError::NotFound(_))));
    }
}
