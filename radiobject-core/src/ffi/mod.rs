//! The only place where this crate talks to libtiledb, and the only module allowed `unsafe`.
//!
//! Everything here is a thin RAII owner over one C handle (`Ctx`, `Array`, `Group`, `Vfs`, and the
//! short-lived schema/query objects), and every C call goes through [`Ctx::check`], which turns a
//! non-OK return code into a [`TdbError`] read back from the context. No raw pointer leaves this module.
//!
//! Fork safety: every owner remembers the process that created its context. In a forked child,
//! `Drop` leaks instead of calling `tiledb_*_free`/`close`, because the parent's TileDB threads (and
//! any lock they held at fork time) do not exist in the child. Child processes build their own
//! contexts (see [`crate::context`]).
//!
//! One submodule per TileDB object: [`context`] (context, config, errors), [`schema`],
//! [`array`](mod@array), [`query`], [`group`], [`vfs`], and [`metadata`] (one implementation for
//! arrays and groups).
//! `sys` holds the `extern "C"` declarations, `process` the process-level hooks (SIGINT, fork).

#![allow(unsafe_code)]

/// An owner of one short-lived C handle, freed on drop with the matching `tiledb_*_free`. The
/// caller's module must have `sys` in scope.
macro_rules! owned_handle {
    ($vis:vis $name:ident, $raw:ty, $free:ident) => {
        $vis struct $name($vis *mut $raw);
        impl Drop for $name {
            fn drop(&mut self) {
                if !self.0.is_null() {
                    // SAFETY: the handle was allocated by the matching tiledb_*_alloc and is freed once.
                    unsafe { sys::$free(&mut self.0) };
                }
            }
        }
    };
}

mod array;
mod context;
mod group;
mod metadata;
pub(crate) mod process;
mod query;
mod schema;
mod sys;
mod vfs;

pub use array::{Array, Mode};
pub use context::{Ctx, ObjectType, TdbError, version};
pub use group::Group;
pub use query::{ColumnBuffer, ColumnRequest};
pub use schema::{AttrSpec, DimSpec, FilterSpec, SchemaInfo, SchemaSpec};
pub use vfs::Vfs;
