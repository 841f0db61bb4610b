//! Opened groups (`tiledb_group_t`): members and metadata.

use std::collections::BTreeMap;
use std::ffi::c_char;
use std::ptr::{self, NonNull};

use super::array::Mode;
use super::context::{Ctx, ObjectType, TdbResult, cstring, err};
use super::metadata::{self, HasMetadata, MetaFns};
use super::sys;
use crate::metadata::MetaValue;

struct OwnedString(*mut sys::tiledb_string_t);

impl OwnedString {
    fn to_string_lossy(&self) -> String {
        if self.0.is_null() {
            return String::new();
        }
        let mut data: *const c_char = ptr::null();
        let mut len = 0usize;
        // SAFETY: self.0 is a live tiledb_string_t; the view is valid until it is freed.
        let rc = unsafe { sys::tiledb_string_view(self.0, &mut data, &mut len) };
        if rc != sys::TILEDB_OK || data.is_null() {
            return String::new();
        }
        // SAFETY: TileDB guarantees `len` readable bytes at `data`.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        String::from_utf8_lossy(bytes).into_owned()
    }
}

impl Drop for OwnedString {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: returned by TileDB, freed exactly once.
            unsafe { sys::tiledb_string_free(&mut self.0) };
        }
    }
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member name (may be empty for unnamed members).
    pub name: String,
    /// Member URI as TileDB resolves it (absolute).
    pub uri: String,
    /// Array or group.
    pub kind: ObjectType,
}

/// An opened TileDB group. Closed (and freed) on drop; use [`Group::close`] to see errors.
pub struct Group {
    ctx: Ctx,
    ptr: NonNull<sys::tiledb_group_t>,
    open: bool,
}

// SAFETY: a group handle is only used by one thread at a time through `&mut self` for writes;
// reads of an opened group are internally synchronised by TileDB.
unsafe impl Send for Group {}
// SAFETY: see `Send`.
unsafe impl Sync for Group {}

impl Group {
    /// Creates an empty group at `uri`.
    pub fn create(ctx: &Ctx, uri: &str) -> TdbResult<()> {
        let c = cstring(uri)?;
        // SAFETY: the context is live; c outlives the call.
        ctx.check(unsafe { sys::tiledb_group_create(ctx.ptr(), c.as_ptr()) })
    }

    /// Opens the group at `uri`.
    pub fn open(ctx: &Ctx, uri: &str, mode: Mode) -> TdbResult<Group> {
        let c = cstring(uri)?;
        let mut raw = ptr::null_mut();
        // SAFETY: the context is live.
        ctx.check(unsafe { sys::tiledb_group_alloc(ctx.ptr(), c.as_ptr(), &mut raw) })?;
        let ptr = NonNull::new(raw).ok_or_else(|| err("tiledb_group_alloc returned NULL"))?;
        let mut g = Group { ctx: ctx.clone(), ptr, open: false };
        let qt = if mode == Mode::Read { sys::TILEDB_READ } else { sys::TILEDB_WRITE };
        // Process-wide libtiledb state (open-array registry, contexts): no fork() meanwhile.
        let _gate = crate::sync::enter();
        // SAFETY: the group is allocated; Drop frees it if this fails.
        ctx.check(unsafe { sys::tiledb_group_open(ctx.ptr(), raw, qt) })?;
        g.open = true;
        Ok(g)
    }

    /// Members in TileDB's iteration order.
    pub fn members(&self) -> TdbResult<Vec<Member>> {
        let ctx = self.ctx.ptr();
        let mut n = 0u64;
        // SAFETY: the group is open.
        self.ctx.check(unsafe { sys::tiledb_group_get_member_count(ctx, self.ptr.as_ptr(), &mut n) })?;
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let (mut uri, mut name) = (OwnedString(ptr::null_mut()), OwnedString(ptr::null_mut()));
            let mut t = 0u32;
            // SAFETY: i < n; the returned strings are owned and freed by OwnedString.
            self.ctx.check(unsafe {
                sys::tiledb_group_get_member_by_index_v2(ctx, self.ptr.as_ptr(), i, &mut uri.0, &mut t, &mut name.0)
            })?;
            out.push(Member {
                name: name.to_string_lossy(),
                uri: uri.to_string_lossy(),
                kind: match t {
                    sys::TILEDB_ARRAY => ObjectType::Array,
                    sys::TILEDB_GROUP => ObjectType::Group,
                    _ => ObjectType::Invalid,
                },
            });
        }
        Ok(out)
    }

    /// Adds a member (group opened for writing; persisted on close).
    pub fn add_member(&mut self, uri: &str, relative: bool, name: &str) -> TdbResult<()> {
        let (u, n) = (cstring(uri)?, cstring(name)?);
        // SAFETY: the group is open for writing; strings outlive the call.
        self.ctx.check(unsafe {
            sys::tiledb_group_add_member(self.ctx.ptr(), self.ptr.as_ptr(), u.as_ptr(), u8::from(relative), n.as_ptr())
        })
    }

    /// Removes a member by name or URI (group opened for writing).
    pub fn remove_member(&mut self, name_or_uri: &str) -> TdbResult<()> {
        let n = cstring(name_or_uri)?;
        // SAFETY: the group is open for writing.
        self.ctx.check(unsafe { sys::tiledb_group_remove_member(self.ctx.ptr(), self.ptr.as_ptr(), n.as_ptr()) })
    }

    /// All metadata of the group (opened for reading).
    pub fn metadata(&self) -> TdbResult<BTreeMap<String, MetaValue>> {
        metadata::read_all(self)
    }

    /// Writes one metadata item (group opened for writing; persisted on close).
    pub fn put_metadata(&mut self, key: &str, value: &MetaValue) -> TdbResult<()> {
        metadata::put(self, key, value)
    }

    /// Deletes one metadata item (group opened for writing).
    pub fn delete_metadata(&mut self, key: &str) -> TdbResult<()> {
        metadata::delete(self, key)
    }

    /// Closes the group, reporting errors (member and metadata changes are written here).
    pub fn close(mut self) -> TdbResult<()> {
        self.open = false;
        // Process-wide libtiledb state (open-array registry, contexts): no fork() meanwhile.
        let _gate = crate::sync::enter();
        // SAFETY: the group is open; Drop only frees it afterwards.
        self.ctx.check(unsafe { sys::tiledb_group_close(self.ctx.ptr(), self.ptr.as_ptr()) })
    }
}

// SAFETY: a `Group` is open from `open` until `close` consumes it (or Drop), so `ptr` is a live,
// opened tiledb_group_t of `ctx` while `self` is borrowed.
unsafe impl HasMetadata for Group {
    type Raw = sys::tiledb_group_t;
    const FNS: MetaFns<sys::tiledb_group_t> = metadata::GROUP;
    fn ctx(&self) -> &Ctx {
        &self.ctx
    }
    fn raw(&self) -> *mut sys::tiledb_group_t {
        self.ptr.as_ptr()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.ctx.in_current_process() {
            return;
        }
        if self.open {
            // Process-wide libtiledb state (open-array registry, contexts): no fork() meanwhile.
            let _gate = crate::sync::enter();
            // SAFETY: the group is open.
            unsafe { sys::tiledb_group_close(self.ctx.ptr(), self.ptr.as_ptr()) };
        }
        let mut p = self.ptr.as_ptr();
        // SAFETY: allocated by tiledb_group_alloc and freed once.
        unsafe { sys::tiledb_group_free(&mut p) };
    }
}
