//! Contexts and configs (`tiledb_ctx_t`, `tiledb_config_t`), and the error funnel [`Ctx::check`].

use std::ffi::{CStr, CString, c_char};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use super::sys;

/// An error reported by libtiledb (or by the argument conversion in front of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdbError {
    /// TileDB's own message, e.g. `[TileDB::Array] Error: Cannot open array; Array does not exist.`
    pub message: String,
}

impl std::fmt::Display for TdbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TdbError {}

/// Result of a libtiledb call.
pub type TdbResult<T> = Result<T, TdbError>;

pub(super) fn err(message: impl Into<String>) -> TdbError {
    TdbError { message: message.into() }
}

pub(super) fn cstring(s: &str) -> TdbResult<CString> {
    CString::new(s).map_err(|_| err(format!("string contains an interior NUL byte: {s:?}")))
}

pub(super) fn current_pid() -> u32 {
    std::process::id()
}

/// The libtiledb version this process loaded, e.g. `(2, 30, 0)`.
pub fn version() -> (i32, i32, i32) {
    let (mut a, mut b, mut c) = (0, 0, 0);
    // SAFETY: tiledb_version only writes three ints through valid pointers.
    unsafe { sys::tiledb_version(&mut a, &mut b, &mut c) };
    (a, b, c)
}

struct RawConfig(*mut sys::tiledb_config_t);

impl RawConfig {
    fn new(params: &[(String, String)]) -> TdbResult<Self> {
        let mut cfg = ptr::null_mut();
        let mut e = ptr::null_mut();
        // SAFETY: out-pointers are valid; on failure the error handle is consumed by take_error.
        let rc = unsafe { sys::tiledb_config_alloc(&mut cfg, &mut e) };
        if rc != sys::TILEDB_OK {
            return Err(take_error(e, "tiledb_config_alloc failed"));
        }
        let cfg = RawConfig(cfg);
        for (k, v) in params {
            let (ck, cv) = (cstring(k)?, cstring(v)?);
            let mut e = ptr::null_mut();
            // SAFETY: cfg.0 is a live config; both strings are NUL-terminated and outlive the call.
            let rc = unsafe { sys::tiledb_config_set(cfg.0, ck.as_ptr(), cv.as_ptr(), &mut e) };
            if rc != sys::TILEDB_OK {
                return Err(take_error(e, &format!("cannot set TileDB config key {k}")));
            }
        }
        Ok(cfg)
    }
}

impl Drop for RawConfig {
    fn drop(&mut self) {
        // SAFETY: self.0 was allocated by tiledb_config_alloc and is freed once.
        unsafe { sys::tiledb_config_free(&mut self.0) };
    }
}

/// Reads and frees a `tiledb_error_t`.
fn take_error(mut e: *mut sys::tiledb_error_t, fallback: &str) -> TdbError {
    if e.is_null() {
        return err(fallback);
    }
    let mut msg: *const c_char = ptr::null();
    // SAFETY: e is a live error handle; the message pointer is valid until tiledb_error_free.
    let text = unsafe {
        if sys::tiledb_error_message(e, &mut msg) == sys::TILEDB_OK && !msg.is_null() {
            CStr::from_ptr(msg).to_string_lossy().into_owned()
        } else {
            fallback.to_owned()
        }
    };
    // SAFETY: e is freed exactly once here.
    unsafe { sys::tiledb_error_free(&mut e) };
    err(text)
}

struct RawCtx {
    ptr: NonNull<sys::tiledb_ctx_t>,
    pid: u32,
}

// SAFETY: libtiledb contexts are thread-safe: the C API may be called with one context from many
// threads at once (the context owns TileDB's own thread pools and guards its state internally).
unsafe impl Send for RawCtx {}
// SAFETY: see `Send`; all shared access goes through C calls that TileDB synchronises.
unsafe impl Sync for RawCtx {}

impl Drop for RawCtx {
    fn drop(&mut self) {
        if self.pid != current_pid() {
            // Forked child: the parent's TileDB threads do not exist here; freeing could deadlock.
            return;
        }
        let mut p = self.ptr.as_ptr();
        // Process-wide libtiledb state (open-array registry, contexts): no fork() meanwhile.
        let _gate = crate::sync::enter();
        // SAFETY: allocated by tiledb_ctx_alloc in this process and freed exactly once.
        unsafe { sys::tiledb_ctx_free(&mut p) };
    }
}

/// A libtiledb context (`tiledb_ctx_t`), shared by reference counting.
///
/// Cloning is cheap and clones share one C context. Only objects created through the same `Ctx`
/// may be used together.
#[derive(Clone)]
pub struct Ctx(Arc<RawCtx>);

impl Ctx {
    /// Creates a context from `(key, value)` TileDB config parameters.
    pub fn new(params: &[(String, String)]) -> TdbResult<Self> {
        let cfg = RawConfig::new(params)?;
        let mut ctx = ptr::null_mut();
        // Process-wide libtiledb state (open-array registry, contexts): no fork() meanwhile.
        let _gate = crate::sync::enter();
        // SAFETY: cfg.0 is a live config; the out-pointer is valid.
        let rc = unsafe { sys::tiledb_ctx_alloc(cfg.0, &mut ctx) };
        match NonNull::new(ctx) {
            Some(ptr) if rc == sys::TILEDB_OK => Ok(Ctx(Arc::new(RawCtx { ptr, pid: current_pid() }))),
            _ => Err(err("tiledb_ctx_alloc failed (invalid configuration?)")),
        }
    }

    pub(super) fn ptr(&self) -> *mut sys::tiledb_ctx_t {
        self.0.ptr.as_ptr()
    }

    /// Whether this context was created by the current process (false in a forked child).
    pub fn in_current_process(&self) -> bool {
        self.0.pid == current_pid()
    }

    /// Turns a C return code into a result, reading the message from the context on failure.
    pub(super) fn check(&self, rc: i32) -> TdbResult<()> {
        if rc == sys::TILEDB_OK {
            return Ok(());
        }
        let mut e = ptr::null_mut();
        // SAFETY: the context is live; the out-pointer is valid.
        let got = unsafe { sys::tiledb_ctx_get_last_error(self.ptr(), &mut e) };
        if got != sys::TILEDB_OK {
            return Err(err(format!("TileDB call failed with code {rc}")));
        }
        Err(take_error(e, &format!("TileDB call failed with code {rc}")))
    }

    /// This context's statistics as TileDB's JSON (`{"timers": {...}, "counters": {...}}`).
    pub fn stats_json(&self) -> TdbResult<String> {
        let mut out: *mut c_char = ptr::null_mut();
        // SAFETY: the context is live; the returned string is freed with tiledb_stats_free_str.
        self.check(unsafe { sys::tiledb_ctx_get_stats(self.ptr(), &mut out) })?;
        if out.is_null() {
            return Ok("{}".to_owned());
        }
        // SAFETY: out is a NUL-terminated string owned by TileDB until freed below.
        let s = unsafe { CStr::from_ptr(out) }.to_string_lossy().into_owned();
        // SAFETY: frees the string returned above, once.
        unsafe { sys::tiledb_stats_free_str(&mut out) };
        Ok(s)
    }

    /// Whether this libtiledb build supports S3.
    pub fn supports_s3(&self) -> bool {
        let mut yes = 0;
        // SAFETY: the context is live; the out-pointer is valid.
        let rc = unsafe { sys::tiledb_ctx_is_supported_fs(self.ptr(), sys::TILEDB_S3, &mut yes) };
        rc == sys::TILEDB_OK && yes != 0
    }

    /// What TileDB object lives at `uri`.
    pub fn object_type(&self, uri: &str) -> TdbResult<ObjectType> {
        let c = cstring(uri)?;
        let mut t = sys::TILEDB_INVALID;
        // SAFETY: the context is live; c outlives the call; the out-pointer is valid.
        self.check(unsafe { sys::tiledb_object_type(self.ptr(), c.as_ptr(), &mut t) })?;
        Ok(match t {
            sys::TILEDB_ARRAY => ObjectType::Array,
            sys::TILEDB_GROUP => ObjectType::Group,
            _ => ObjectType::Invalid,
        })
    }
}

/// Kind of TileDB object found at a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// Nothing TileDB knows (missing path, or a plain directory/file).
    Invalid,
    /// A TileDB group.
    Group,
    /// A TileDB array.
    Array,
}
