//! Opened arrays (`tiledb_array_t`), and array maintenance on a context.

use std::collections::BTreeMap;
use std::ptr::{self, NonNull};

use super::context::{Ctx, TdbResult, cstring, err};
use super::metadata::{self, HasMetadata, MetaFns};
use super::schema::{OwnedSchema, SchemaInfo};
use super::sys;
use crate::dtype::Layout;
use crate::metadata::MetaValue;

/// How an array is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read queries and metadata reads.
    Read,
    /// Write queries and metadata writes.
    Write,
    /// Delete queries ([`Array::delete_rows`]).
    Delete,
}

/// An opened TileDB array. Closed (and freed) on drop.
pub struct Array {
    pub(super) ctx: Ctx,
    pub(super) ptr: NonNull<sys::tiledb_array_t>,
    open: bool,
    pub(super) schema: SchemaInfo,
}

// SAFETY: an opened tiledb_array_t may be shared by threads that each create and submit their own
// queries (TileDB guards array state internally; confirmed by the TileDB maintainers). Mutation of
// the handle itself (metadata writes, close) takes `&mut self`.
unsafe impl Send for Array {}
// SAFETY: see `Send`.
unsafe impl Sync for Array {}

impl Array {
    /// Opens the array at `uri`. With `timestamp_end`, only fragments written at or before that
    /// time (ms since the epoch) are visible.
    pub fn open(ctx: &Ctx, uri: &str, mode: Mode, timestamp_end: Option<u64>) -> TdbResult<Array> {
        let c = cstring(uri)?;
        let mut raw = ptr::null_mut();
        // SAFETY: the context is live; c outlives the call.
        ctx.check(unsafe { sys::tiledb_array_alloc(ctx.ptr(), c.as_ptr(), &mut raw) })?;
        let ptr = NonNull::new(raw).ok_or_else(|| err("tiledb_array_alloc returned NULL"))?;
        let mut array = Array {
            ctx: ctx.clone(),
            ptr,
            open: false,
            schema: SchemaInfo {
                sparse: false,
                dims: vec![],
                attrs: vec![],
                cell_order: Layout::RowMajor,
                tile_order: Layout::RowMajor,
                allows_dups: false,
            },
        };
        if let Some(ts) = timestamp_end {
            // SAFETY: the array is allocated and not yet open.
            ctx.check(unsafe { sys::tiledb_array_set_open_timestamp_end(ctx.ptr(), raw, ts) })?;
        }
        let qt = match mode {
            Mode::Read => sys::TILEDB_READ,
            Mode::Write => sys::TILEDB_WRITE,
            Mode::Delete => sys::TILEDB_DELETE,
        };
        // Process-wide libtiledb state (open-array registry, contexts): no fork() meanwhile.
        let _gate = crate::sync::enter();
        // SAFETY: the array is allocated; on failure Drop frees it without closing.
        ctx.check(unsafe { sys::tiledb_array_open(ctx.ptr(), raw, qt) })?;
        array.open = true;
        let mut schema = OwnedSchema(ptr::null_mut());
        // SAFETY: the array is open.
        ctx.check(unsafe { sys::tiledb_array_get_schema(ctx.ptr(), raw, &mut schema.0) })?;
        array.schema = ctx.schema_info(schema.0)?;
        Ok(array)
    }

    /// The schema loaded when the array was opened.
    pub fn schema(&self) -> &SchemaInfo {
        &self.schema
    }

    /// All metadata of the array (opened for reading).
    pub fn metadata(&self) -> TdbResult<BTreeMap<String, MetaValue>> {
        metadata::read_all(self)
    }

    /// Writes one metadata item (array opened for writing; persisted on close).
    pub fn put_metadata(&mut self, key: &str, value: &MetaValue) -> TdbResult<()> {
        metadata::put(self, key, value)
    }

    /// Deletes one metadata item (array opened for writing).
    pub fn delete_metadata(&mut self, key: &str) -> TdbResult<()> {
        metadata::delete(self, key)
    }

    /// Closes the array, reporting errors (metadata and fragment commits happen here).
    pub fn close(mut self) -> TdbResult<()> {
        self.open = false;
        // Process-wide libtiledb state (open-array registry, contexts): no fork() meanwhile.
        let _gate = crate::sync::enter();
        // SAFETY: the array is open; after this Drop only frees it.
        self.ctx.check(unsafe { sys::tiledb_array_close(self.ctx.ptr(), self.ptr.as_ptr()) })
    }
}

// SAFETY: an `Array` is open from `open` until `close` consumes it (or Drop), so `ptr` is a live,
// opened tiledb_array_t of `ctx` while `self` is borrowed.
unsafe impl HasMetadata for Array {
    type Raw = sys::tiledb_array_t;
    const FNS: MetaFns<sys::tiledb_array_t> = metadata::ARRAY;
    fn ctx(&self) -> &Ctx {
        &self.ctx
    }
    fn raw(&self) -> *mut sys::tiledb_array_t {
        self.ptr.as_ptr()
    }
}

impl Drop for Array {
    fn drop(&mut self) {
        if !self.ctx.in_current_process() {
            return;
        }
        if self.open {
            // Process-wide libtiledb state (open-array registry, contexts): no fork() meanwhile.
            let _gate = crate::sync::enter();
            // SAFETY: the array is open; close errors cannot be reported from Drop (use `close`).
            unsafe { sys::tiledb_array_close(self.ctx.ptr(), self.ptr.as_ptr()) };
        }
        let mut p = self.ptr.as_ptr();
        // SAFETY: allocated by tiledb_array_alloc and freed once.
        unsafe { sys::tiledb_array_free(&mut p) };
    }
}

impl Ctx {
    /// Consolidates the fragments of an array into one and vacuums the old ones (readers opened
    /// afterwards read a single fragment).
    pub fn consolidate_and_vacuum(&self, uri: &str) -> TdbResult<()> {
        let c = cstring(uri)?;
        // SAFETY: the context is live; NULL config means the context's configuration.
        self.check(unsafe { sys::tiledb_array_consolidate(self.ptr(), c.as_ptr(), ptr::null_mut()) })?;
        // SAFETY: as above.
        self.check(unsafe { sys::tiledb_array_vacuum(self.ptr(), c.as_ptr(), ptr::null_mut()) })
    }
}
