//! TileDB's virtual filesystem (`tiledb_vfs_t`).

use std::ffi::{CStr, c_char, c_void};
use std::ptr;

use super::context::{Ctx, TdbResult, cstring};
use super::sys;

owned_handle!(OwnedVfs, sys::tiledb_vfs_t, tiledb_vfs_free);

/// TileDB's virtual filesystem (local paths, `file://`, `s3://`, `mem://`, ...).
pub struct Vfs {
    ctx: Ctx,
    raw: OwnedVfs,
}

// SAFETY: TileDB's VFS is safe to call from several threads with one context.
unsafe impl Send for Vfs {}
// SAFETY: see `Send`.
unsafe impl Sync for Vfs {}

impl Drop for Vfs {
    fn drop(&mut self) {
        if !self.ctx.in_current_process() {
            // Leak in a forked child (see the `ffi` module docs).
            self.raw.0 = ptr::null_mut();
        }
    }
}

unsafe extern "C" fn ls_collect(path: *const c_char, data: *mut c_void) -> i32 {
    // SAFETY: data is the &mut Vec<String> passed to tiledb_vfs_ls below; path is NUL-terminated.
    unsafe {
        let v = &mut *data.cast::<Vec<String>>();
        v.push(CStr::from_ptr(path).to_string_lossy().into_owned());
    }
    1
}

impl Vfs {
    /// A VFS using the context's configuration.
    pub fn new(ctx: &Ctx) -> TdbResult<Vfs> {
        let mut raw = OwnedVfs(ptr::null_mut());
        // SAFETY: the context is live; NULL config means "the context's config".
        ctx.check(unsafe { sys::tiledb_vfs_alloc(ctx.ptr(), ptr::null_mut(), &mut raw.0) })?;
        Ok(Vfs { ctx: ctx.clone(), raw })
    }

    fn flag(
        &self,
        uri: &str,
        f: unsafe extern "C" fn(*mut sys::tiledb_ctx_t, *mut sys::tiledb_vfs_t, *const c_char, *mut i32) -> i32,
    ) -> TdbResult<bool> {
        let c = cstring(uri)?;
        let mut out = 0;
        // SAFETY: f is one of the vfs predicate functions; all pointers are valid for the call.
        self.ctx.check(unsafe { f(self.ctx.ptr(), self.raw.0, c.as_ptr(), &mut out) })?;
        Ok(out != 0)
    }

    fn action(
        &self,
        uri: &str,
        f: unsafe extern "C" fn(*mut sys::tiledb_ctx_t, *mut sys::tiledb_vfs_t, *const c_char) -> i32,
    ) -> TdbResult<()> {
        let c = cstring(uri)?;
        // SAFETY: f is one of the single-URI vfs actions; pointers are valid for the call.
        self.ctx.check(unsafe { f(self.ctx.ptr(), self.raw.0, c.as_ptr()) })
    }

    /// Whether `uri` is a directory (on S3: a non-empty prefix).
    pub fn is_dir(&self, uri: &str) -> TdbResult<bool> {
        self.flag(uri, sys::tiledb_vfs_is_dir)
    }

    /// Whether `uri` is a file/object.
    pub fn is_file(&self, uri: &str) -> TdbResult<bool> {
        self.flag(uri, sys::tiledb_vfs_is_file)
    }

    /// Whether `uri` names an existing S3 bucket.
    pub fn is_bucket(&self, uri: &str) -> TdbResult<bool> {
        self.flag(uri, sys::tiledb_vfs_is_bucket)
    }

    /// Creates an S3 bucket.
    pub fn create_bucket(&self, uri: &str) -> TdbResult<()> {
        self.action(uri, sys::tiledb_vfs_create_bucket)
    }

    /// Removes a directory and everything below it.
    pub fn remove_dir(&self, uri: &str) -> TdbResult<()> {
        self.action(uri, sys::tiledb_vfs_remove_dir)
    }

    /// Removes one file.
    pub fn remove_file(&self, uri: &str) -> TdbResult<()> {
        self.action(uri, sys::tiledb_vfs_remove_file)
    }

    /// Moves (renames) a directory.
    pub fn move_dir(&self, from: &str, to: &str) -> TdbResult<()> {
        let (a, b) = (cstring(from)?, cstring(to)?);
        // SAFETY: pointers are valid for the call.
        self.ctx.check(unsafe { sys::tiledb_vfs_move_dir(self.ctx.ptr(), self.raw.0, a.as_ptr(), b.as_ptr()) })
    }

    /// Copies a directory recursively.
    pub fn copy_dir(&self, from: &str, to: &str) -> TdbResult<()> {
        let (a, b) = (cstring(from)?, cstring(to)?);
        // SAFETY: pointers are valid for the call.
        self.ctx.check(unsafe { sys::tiledb_vfs_copy_dir(self.ctx.ptr(), self.raw.0, a.as_ptr(), b.as_ptr()) })
    }

    /// Full URIs of the direct children of `uri` (unsorted).
    pub fn ls(&self, uri: &str) -> TdbResult<Vec<String>> {
        let c = cstring(uri)?;
        let mut out: Vec<String> = Vec::new();
        // SAFETY: the callback only pushes into `out`, which outlives the call.
        self.ctx.check(unsafe {
            sys::tiledb_vfs_ls(self.ctx.ptr(), self.raw.0, c.as_ptr(), Some(ls_collect), (&raw mut out).cast())
        })?;
        Ok(out)
    }
}
