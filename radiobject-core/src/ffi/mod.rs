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

#![allow(unsafe_code)]

pub(crate) mod process;
mod sys;

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use crate::dtype::{Datatype, Layout};
use crate::metadata::MetaValue;

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

fn err(message: impl Into<String>) -> TdbError {
    TdbError { message: message.into() }
}

fn cstring(s: &str) -> TdbResult<CString> {
    CString::new(s).map_err(|_| err(format!("string contains an interior NUL byte: {s:?}")))
}

fn current_pid() -> u32 {
    std::process::id()
}

/// The libtiledb version this process loaded, e.g. `(2, 30, 0)`.
pub fn version() -> (i32, i32, i32) {
    let (mut a, mut b, mut c) = (0, 0, 0);
    // SAFETY: tiledb_version only writes three ints through valid pointers.
    unsafe { sys::tiledb_version(&mut a, &mut b, &mut c) };
    (a, b, c)
}

// ---------------------------------------------------------------------------------------------
// Config and context
// ---------------------------------------------------------------------------------------------

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
        // SAFETY: cfg.0 is a live config; the out-pointer is valid.
        let rc = unsafe { sys::tiledb_ctx_alloc(cfg.0, &mut ctx) };
        match NonNull::new(ctx) {
            Some(ptr) if rc == sys::TILEDB_OK => Ok(Ctx(Arc::new(RawCtx { ptr, pid: current_pid() }))),
            _ => Err(err("tiledb_ctx_alloc failed (invalid configuration?)")),
        }
    }

    fn ptr(&self) -> *mut sys::tiledb_ctx_t {
        self.0.ptr.as_ptr()
    }

    /// Whether this context was created by the current process (false in a forked child).
    pub fn in_current_process(&self) -> bool {
        self.0.pid == current_pid()
    }

    /// Turns a C return code into a result, reading the message from the context on failure.
    fn check(&self, rc: i32) -> TdbResult<()> {
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

// ---------------------------------------------------------------------------------------------
// Small owned C handles used while building schemas
// ---------------------------------------------------------------------------------------------

macro_rules! owned_handle {
    ($name:ident, $raw:ty, $free:ident) => {
        struct $name(*mut $raw);
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

owned_handle!(OwnedDimension, sys::tiledb_dimension_t, tiledb_dimension_free);
owned_handle!(OwnedDomain, sys::tiledb_domain_t, tiledb_domain_free);
owned_handle!(OwnedAttribute, sys::tiledb_attribute_t, tiledb_attribute_free);
owned_handle!(OwnedFilter, sys::tiledb_filter_t, tiledb_filter_free);
owned_handle!(OwnedFilterList, sys::tiledb_filter_list_t, tiledb_filter_list_free);
owned_handle!(OwnedSchema, sys::tiledb_array_schema_t, tiledb_array_schema_free);
owned_handle!(OwnedSubarray, sys::tiledb_subarray_t, tiledb_subarray_free);
owned_handle!(OwnedQuery, sys::tiledb_query_t, tiledb_query_free);
owned_handle!(OwnedVfs, sys::tiledb_vfs_t, tiledb_vfs_free);
owned_handle!(OwnedEvolution, sys::tiledb_array_schema_evolution_t, tiledb_array_schema_evolution_free);
owned_handle!(OwnedCondition, sys::tiledb_query_condition_t, tiledb_query_condition_free);

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

// ---------------------------------------------------------------------------------------------
// Schema specification (pure data) and creation
// ---------------------------------------------------------------------------------------------

/// One compression or encoding filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterSpec {
    /// Zstandard with a level (-7..22; TileDB's default coords filter uses -1).
    Zstd(i32),
    /// LZ4 with a level.
    Lz4(i32),
    /// Gzip with a level (1..9, or -1).
    Gzip(i32),
    /// Run-length encoding.
    Rle,
    /// Byte shuffle.
    ByteShuffle,
}

/// A dimension of an array schema.
#[derive(Debug, Clone, PartialEq)]
pub struct DimSpec {
    /// Dimension name.
    pub name: String,
    /// Integer type of the dimension, or `StringAscii` for a var-sized string dimension.
    pub datatype: Datatype,
    /// Inclusive integer domain; `None` for string dimensions.
    pub domain: Option<(i64, i64)>,
    /// Tile extent; `None` for string dimensions.
    pub extent: Option<i64>,
    /// Filters on the dimension's coordinates (empty = TileDB default).
    pub filters: Vec<FilterSpec>,
}

/// An attribute of an array schema.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrSpec {
    /// Attribute name.
    pub name: String,
    /// Cell type.
    pub datatype: Datatype,
    /// Variable-sized cells (strings).
    pub var: bool,
    /// Whether the attribute carries a validity vector.
    pub nullable: bool,
    /// Filters (compression) applied to the attribute.
    pub filters: Vec<FilterSpec>,
}

/// A whole array schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaSpec {
    /// Sparse or dense.
    pub sparse: bool,
    /// Dimensions, in order.
    pub dims: Vec<DimSpec>,
    /// Attributes, in order.
    pub attrs: Vec<AttrSpec>,
    /// Order of cells within a tile.
    pub cell_order: Layout,
    /// Order of tiles.
    pub tile_order: Layout,
    /// Sparse tile capacity (ignored for dense arrays).
    pub capacity: Option<u64>,
    /// Whether a sparse array allows duplicate coordinates.
    pub allows_dups: bool,
    /// Filters on the offsets of var-sized data (empty = TileDB default).
    pub offsets_filters: Vec<FilterSpec>,
}

fn datatype_raw(d: Datatype) -> u32 {
    match d {
        Datatype::Int8 => sys::TILEDB_INT8,
        Datatype::UInt8 => sys::TILEDB_UINT8,
        Datatype::Int16 => sys::TILEDB_INT16,
        Datatype::UInt16 => sys::TILEDB_UINT16,
        Datatype::Int32 => sys::TILEDB_INT32,
        Datatype::UInt32 => sys::TILEDB_UINT32,
        Datatype::Int64 => sys::TILEDB_INT64,
        Datatype::UInt64 => sys::TILEDB_UINT64,
        Datatype::Float32 => sys::TILEDB_FLOAT32,
        Datatype::Float64 => sys::TILEDB_FLOAT64,
        Datatype::Char => sys::TILEDB_CHAR,
        Datatype::StringAscii => sys::TILEDB_STRING_ASCII,
        Datatype::StringUtf8 => sys::TILEDB_STRING_UTF8,
        Datatype::Bool => sys::TILEDB_BOOL,
        Datatype::Blob => sys::TILEDB_BLOB,
        Datatype::Other(x) => x,
    }
}

fn datatype_from_raw(x: u32) -> Datatype {
    match x {
        sys::TILEDB_INT8 => Datatype::Int8,
        sys::TILEDB_UINT8 => Datatype::UInt8,
        sys::TILEDB_INT16 => Datatype::Int16,
        sys::TILEDB_UINT16 => Datatype::UInt16,
        sys::TILEDB_INT32 => Datatype::Int32,
        sys::TILEDB_UINT32 => Datatype::UInt32,
        sys::TILEDB_INT64 => Datatype::Int64,
        sys::TILEDB_UINT64 => Datatype::UInt64,
        sys::TILEDB_FLOAT32 => Datatype::Float32,
        sys::TILEDB_FLOAT64 => Datatype::Float64,
        sys::TILEDB_CHAR => Datatype::Char,
        sys::TILEDB_STRING_ASCII => Datatype::StringAscii,
        sys::TILEDB_STRING_UTF8 => Datatype::StringUtf8,
        sys::TILEDB_BOOL => Datatype::Bool,
        sys::TILEDB_BLOB => Datatype::Blob,
        other => Datatype::Other(other),
    }
}

fn layout_raw(l: Layout) -> u32 {
    match l {
        Layout::RowMajor => sys::TILEDB_ROW_MAJOR,
        Layout::ColMajor => sys::TILEDB_COL_MAJOR,
        Layout::GlobalOrder => sys::TILEDB_GLOBAL_ORDER,
        Layout::Unordered => sys::TILEDB_UNORDERED,
    }
}

fn layout_from_raw(x: u32) -> Layout {
    match x {
        sys::TILEDB_COL_MAJOR => Layout::ColMajor,
        sys::TILEDB_GLOBAL_ORDER => Layout::GlobalOrder,
        sys::TILEDB_UNORDERED => Layout::Unordered,
        _ => Layout::RowMajor,
    }
}

/// Writes an integer of datatype `d` into `buf` (native endian) and returns its byte length.
fn encode_int(d: Datatype, v: i64, buf: &mut [u8; 8]) -> TdbResult<usize> {
    let n = match d {
        Datatype::Int8 => {
            buf[..1].copy_from_slice(&i8::try_from(v).map_err(|_| err("value out of int8 range"))?.to_ne_bytes());
            1
        }
        Datatype::UInt8 => {
            buf[..1].copy_from_slice(&u8::try_from(v).map_err(|_| err("value out of uint8 range"))?.to_ne_bytes());
            1
        }
        Datatype::Int16 => {
            buf[..2].copy_from_slice(&i16::try_from(v).map_err(|_| err("value out of int16 range"))?.to_ne_bytes());
            2
        }
        Datatype::UInt16 => {
            buf[..2].copy_from_slice(&u16::try_from(v).map_err(|_| err("value out of uint16 range"))?.to_ne_bytes());
            2
        }
        Datatype::Int32 => {
            buf[..4].copy_from_slice(&i32::try_from(v).map_err(|_| err("value out of int32 range"))?.to_ne_bytes());
            4
        }
        Datatype::UInt32 => {
            buf[..4].copy_from_slice(&u32::try_from(v).map_err(|_| err("value out of uint32 range"))?.to_ne_bytes());
            4
        }
        Datatype::Int64 => {
            buf.copy_from_slice(&v.to_ne_bytes());
            8
        }
        Datatype::UInt64 => {
            buf.copy_from_slice(&u64::try_from(v).map_err(|_| err("value out of uint64 range"))?.to_ne_bytes());
            8
        }
        other => return Err(err(format!("{other:?} is not an integer dimension type"))),
    };
    Ok(n)
}

/// Reads an integer of datatype `d` from `p`.
///
/// # Safety
/// `p` must point to at least `d.size()` readable bytes.
unsafe fn decode_int(d: Datatype, p: *const u8) -> Option<i64> {
    // SAFETY: the caller guarantees the bytes are readable; reads are unaligned-safe.
    unsafe {
        Some(match d {
            Datatype::Int8 => i64::from(p.cast::<i8>().read_unaligned()),
            Datatype::UInt8 => i64::from(p.read_unaligned()),
            Datatype::Int16 => i64::from(p.cast::<i16>().read_unaligned()),
            Datatype::UInt16 => i64::from(p.cast::<u16>().read_unaligned()),
            Datatype::Int32 => i64::from(p.cast::<i32>().read_unaligned()),
            Datatype::UInt32 => i64::from(p.cast::<u32>().read_unaligned()),
            Datatype::Int64 => p.cast::<i64>().read_unaligned(),
            Datatype::UInt64 => i64::try_from(p.cast::<u64>().read_unaligned()).ok()?,
            _ => return None,
        })
    }
}

impl Ctx {
    fn filter_list(&self, filters: &[FilterSpec]) -> TdbResult<OwnedFilterList> {
        let mut list = OwnedFilterList(ptr::null_mut());
        // SAFETY: the context is live; the out-pointer is valid.
        self.check(unsafe { sys::tiledb_filter_list_alloc(self.ptr(), &mut list.0) })?;
        for f in filters {
            let (kind, level) = match *f {
                FilterSpec::Zstd(l) => (sys::TILEDB_FILTER_ZSTD, Some(l)),
                FilterSpec::Lz4(l) => (sys::TILEDB_FILTER_LZ4, Some(l)),
                FilterSpec::Gzip(l) => (sys::TILEDB_FILTER_GZIP, Some(l)),
                FilterSpec::Rle => (sys::TILEDB_FILTER_RLE, None),
                FilterSpec::ByteShuffle => (sys::TILEDB_FILTER_BYTESHUFFLE, None),
            };
            let mut filter = OwnedFilter(ptr::null_mut());
            // SAFETY: the context is live; the out-pointer is valid.
            self.check(unsafe { sys::tiledb_filter_alloc(self.ptr(), kind, &mut filter.0) })?;
            if let Some(level) = level {
                let level: i32 = level;
                // SAFETY: COMPRESSION_LEVEL takes a pointer to an int32 that outlives the call.
                self.check(unsafe {
                    sys::tiledb_filter_set_option(
                        self.ptr(),
                        filter.0,
                        sys::TILEDB_COMPRESSION_LEVEL,
                        (&raw const level).cast(),
                    )
                })?;
            }
            // SAFETY: both handles are live; the list keeps its own reference to the filter.
            self.check(unsafe { sys::tiledb_filter_list_add_filter(self.ptr(), list.0, filter.0) })?;
        }
        Ok(list)
    }

    fn attribute(&self, a: &AttrSpec) -> TdbResult<OwnedAttribute> {
        let ctx = self.ptr();
        let name = cstring(&a.name)?;
        let mut attr = OwnedAttribute(ptr::null_mut());
        // SAFETY: the context is live; name outlives the call.
        self.check(unsafe { sys::tiledb_attribute_alloc(ctx, name.as_ptr(), datatype_raw(a.datatype), &mut attr.0) })?;
        if a.var {
            // SAFETY: attr is live; u32::MAX is TILEDB_VAR_NUM.
            self.check(unsafe { sys::tiledb_attribute_set_cell_val_num(ctx, attr.0, u32::MAX) })?;
        }
        if a.nullable {
            // SAFETY: attr is live.
            self.check(unsafe { sys::tiledb_attribute_set_nullable(ctx, attr.0, 1) })?;
        }
        let fl = self.filter_list(&a.filters)?;
        // SAFETY: both handles are live.
        self.check(unsafe { sys::tiledb_attribute_set_filter_list(ctx, attr.0, fl.0) })?;
        Ok(attr)
    }

    /// Consolidates the fragments of an array into one and vacuums the old ones (readers opened
    /// afterwards read a single fragment).
    pub fn consolidate_and_vacuum(&self, uri: &str) -> TdbResult<()> {
        let c = cstring(uri)?;
        // SAFETY: the context is live; NULL config means the context's configuration.
        self.check(unsafe { sys::tiledb_array_consolidate(self.ptr(), c.as_ptr(), ptr::null_mut()) })?;
        // SAFETY: as above.
        self.check(unsafe { sys::tiledb_array_vacuum(self.ptr(), c.as_ptr(), ptr::null_mut()) })
    }

    /// Adds attributes to an existing array (schema evolution); existing cells read as null (or
    /// the fill value for non-nullable attributes).
    pub fn add_attributes(&self, uri: &str, attrs: &[AttrSpec]) -> TdbResult<()> {
        let curi = cstring(uri)?;
        let mut evo = OwnedEvolution(ptr::null_mut());
        // SAFETY: the context is live; the out-pointer is valid.
        self.check(unsafe { sys::tiledb_array_schema_evolution_alloc(self.ptr(), &mut evo.0) })?;
        for a in attrs {
            let attr = self.attribute(a)?;
            // SAFETY: both handles are live; the evolution copies the attribute.
            self.check(unsafe { sys::tiledb_array_schema_evolution_add_attribute(self.ptr(), evo.0, attr.0) })?;
        }
        // SAFETY: the evolution is live; curi outlives the call.
        self.check(unsafe { sys::tiledb_array_evolve(self.ptr(), curi.as_ptr(), evo.0) })
    }

    /// Drops attributes from an existing array (schema evolution); their data is no longer read.
    pub fn drop_attributes(&self, uri: &str, names: &[&str]) -> TdbResult<()> {
        let curi = cstring(uri)?;
        let mut evo = OwnedEvolution(ptr::null_mut());
        // SAFETY: the context is live; the out-pointer is valid.
        self.check(unsafe { sys::tiledb_array_schema_evolution_alloc(self.ptr(), &mut evo.0) })?;
        for n in names {
            let cn = cstring(n)?;
            // SAFETY: the evolution is live; cn outlives the call (the name is copied).
            self.check(unsafe { sys::tiledb_array_schema_evolution_drop_attribute(self.ptr(), evo.0, cn.as_ptr()) })?;
        }
        // SAFETY: the evolution is live; curi outlives the call.
        self.check(unsafe { sys::tiledb_array_evolve(self.ptr(), curi.as_ptr(), evo.0) })
    }

    /// Creates an array at `uri` with the given schema. Fails if anything exists there.
    pub fn create_array(&self, uri: &str, spec: &SchemaSpec) -> TdbResult<()> {
        let curi = cstring(uri)?;
        let ctx = self.ptr();
        let mut domain = OwnedDomain(ptr::null_mut());
        // SAFETY: the context is live; the out-pointer is valid.
        self.check(unsafe { sys::tiledb_domain_alloc(ctx, &mut domain.0) })?;
        for d in &spec.dims {
            let name = cstring(&d.name)?;
            let dt = datatype_raw(d.datatype);
            let mut dim = OwnedDimension(ptr::null_mut());
            match (d.domain, d.extent) {
                (Some((lo, hi)), Some(ext)) => {
                    let (mut blo, mut bhi, mut bext) = ([0u8; 8], [0u8; 8], [0u8; 8]);
                    let n = encode_int(d.datatype, lo, &mut blo)?;
                    encode_int(d.datatype, hi, &mut bhi)?;
                    encode_int(d.datatype, ext, &mut bext)?;
                    let mut dom = [0u8; 16];
                    dom[..n].copy_from_slice(&blo[..n]);
                    dom[n..2 * n].copy_from_slice(&bhi[..n]);
                    // SAFETY: domain holds two values of the dimension type and extent one; both outlive the call.
                    self.check(unsafe {
                        sys::tiledb_dimension_alloc(
                            ctx,
                            name.as_ptr(),
                            dt,
                            dom.as_ptr().cast(),
                            bext.as_ptr().cast(),
                            &mut dim.0,
                        )
                    })?;
                }
                _ => {
                    // SAFETY: string dimensions take NULL domain and extent.
                    self.check(unsafe {
                        sys::tiledb_dimension_alloc(ctx, name.as_ptr(), dt, ptr::null(), ptr::null(), &mut dim.0)
                    })?;
                }
            }
            if !d.filters.is_empty() {
                let fl = self.filter_list(&d.filters)?;
                // SAFETY: both handles are live.
                self.check(unsafe { sys::tiledb_dimension_set_filter_list(ctx, dim.0, fl.0) })?;
            }
            // SAFETY: both handles are live; the domain copies the dimension.
            self.check(unsafe { sys::tiledb_domain_add_dimension(ctx, domain.0, dim.0) })?;
        }
        let kind = if spec.sparse { sys::TILEDB_SPARSE } else { sys::TILEDB_DENSE };
        let mut schema = OwnedSchema(ptr::null_mut());
        // SAFETY: the context is live; the out-pointer is valid.
        self.check(unsafe { sys::tiledb_array_schema_alloc(ctx, kind, &mut schema.0) })?;
        // SAFETY: all handles are live.
        self.check(unsafe { sys::tiledb_array_schema_set_domain(ctx, schema.0, domain.0) })?;
        for a in &spec.attrs {
            let attr = self.attribute(a)?;
            // SAFETY: both handles are live; the schema copies the attribute.
            self.check(unsafe { sys::tiledb_array_schema_add_attribute(ctx, schema.0, attr.0) })?;
        }
        // SAFETY: the schema handle is live for each setter.
        self.check(unsafe { sys::tiledb_array_schema_set_cell_order(ctx, schema.0, layout_raw(spec.cell_order)) })?;
        // SAFETY: as above.
        self.check(unsafe { sys::tiledb_array_schema_set_tile_order(ctx, schema.0, layout_raw(spec.tile_order)) })?;
        if spec.sparse {
            if let Some(c) = spec.capacity {
                // SAFETY: as above.
                self.check(unsafe { sys::tiledb_array_schema_set_capacity(ctx, schema.0, c) })?;
            }
            // SAFETY: as above.
            self.check(unsafe {
                sys::tiledb_array_schema_set_allows_dups(ctx, schema.0, i32::from(spec.allows_dups))
            })?;
        }
        if !spec.offsets_filters.is_empty() {
            let fl = self.filter_list(&spec.offsets_filters)?;
            // SAFETY: both handles are live.
            self.check(unsafe { sys::tiledb_array_schema_set_offsets_filter_list(ctx, schema.0, fl.0) })?;
        }
        // SAFETY: the schema handle is live.
        self.check(unsafe { sys::tiledb_array_schema_check(ctx, schema.0) })?;
        // SAFETY: the context and schema are live; curi outlives the call.
        self.check(unsafe { sys::tiledb_array_create(ctx, curi.as_ptr(), schema.0) })
    }
}

// ---------------------------------------------------------------------------------------------
// Schema inspection
// ---------------------------------------------------------------------------------------------

/// A dimension as stored in an existing array.
#[derive(Debug, Clone, PartialEq)]
pub struct DimInfo {
    /// Dimension name.
    pub name: String,
    /// Dimension type.
    pub datatype: Datatype,
    /// Inclusive domain for integer dimensions.
    pub domain: Option<(i64, i64)>,
    /// Tile extent for integer dimensions.
    pub extent: Option<i64>,
}

/// An attribute as stored in an existing array.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrInfo {
    /// Attribute name.
    pub name: String,
    /// Cell type.
    pub datatype: Datatype,
    /// Variable-sized cells.
    pub var: bool,
    /// Nullable attribute.
    pub nullable: bool,
    /// Filters applied, in order.
    pub filters: Vec<FilterSpec>,
}

/// The schema of an existing array.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaInfo {
    /// Sparse or dense.
    pub sparse: bool,
    /// Dimensions, in order.
    pub dims: Vec<DimInfo>,
    /// Attributes, in order.
    pub attrs: Vec<AttrInfo>,
    /// Order of cells within a tile.
    pub cell_order: Layout,
    /// Order of tiles.
    pub tile_order: Layout,
    /// Whether a sparse array allows duplicates.
    pub allows_dups: bool,
}

impl Ctx {
    fn read_filters(&self, list: *mut sys::tiledb_filter_list_t) -> TdbResult<Vec<FilterSpec>> {
        let ctx = self.ptr();
        let mut n = 0u32;
        // SAFETY: list is live; the out-pointer is valid.
        self.check(unsafe { sys::tiledb_filter_list_get_nfilters(ctx, list, &mut n) })?;
        let mut out = Vec::new();
        for i in 0..n {
            let mut f = OwnedFilter(ptr::null_mut());
            // SAFETY: index < n; the out-pointer is valid.
            self.check(unsafe { sys::tiledb_filter_list_get_filter_from_index(ctx, list, i, &mut f.0) })?;
            let mut kind = 0u32;
            // SAFETY: f is live.
            self.check(unsafe { sys::tiledb_filter_get_type(ctx, f.0, &mut kind) })?;
            let mut level: i32 = 0;
            let has_level = matches!(kind, sys::TILEDB_FILTER_ZSTD | sys::TILEDB_FILTER_LZ4 | sys::TILEDB_FILTER_GZIP);
            if has_level {
                // SAFETY: COMPRESSION_LEVEL writes one int32.
                self.check(unsafe {
                    sys::tiledb_filter_get_option(ctx, f.0, sys::TILEDB_COMPRESSION_LEVEL, (&raw mut level).cast())
                })?;
            }
            match kind {
                sys::TILEDB_FILTER_ZSTD => out.push(FilterSpec::Zstd(level)),
                sys::TILEDB_FILTER_LZ4 => out.push(FilterSpec::Lz4(level)),
                sys::TILEDB_FILTER_GZIP => out.push(FilterSpec::Gzip(level)),
                sys::TILEDB_FILTER_RLE => out.push(FilterSpec::Rle),
                sys::TILEDB_FILTER_BYTESHUFFLE => out.push(FilterSpec::ByteShuffle),
                _ => {}
            }
        }
        Ok(out)
    }

    fn schema_info(&self, schema: *mut sys::tiledb_array_schema_t) -> TdbResult<SchemaInfo> {
        let ctx = self.ptr();
        let mut kind = 0u32;
        // SAFETY: schema is live for all calls below; out-pointers are valid.
        self.check(unsafe { sys::tiledb_array_schema_get_array_type(ctx, schema, &mut kind) })?;
        let (mut cell, mut tile) = (0u32, 0u32);
        // SAFETY: as above.
        self.check(unsafe { sys::tiledb_array_schema_get_cell_order(ctx, schema, &mut cell) })?;
        // SAFETY: as above.
        self.check(unsafe { sys::tiledb_array_schema_get_tile_order(ctx, schema, &mut tile) })?;
        let mut dups = 0;
        if kind == sys::TILEDB_SPARSE {
            // SAFETY: as above.
            self.check(unsafe { sys::tiledb_array_schema_get_allows_dups(ctx, schema, &mut dups) })?;
        }
        let mut domain = OwnedDomain(ptr::null_mut());
        // SAFETY: as above.
        self.check(unsafe { sys::tiledb_array_schema_get_domain(ctx, schema, &mut domain.0) })?;
        let mut ndim = 0u32;
        // SAFETY: domain is live.
        self.check(unsafe { sys::tiledb_domain_get_ndim(ctx, domain.0, &mut ndim) })?;
        let mut dims = Vec::with_capacity(ndim as usize);
        for i in 0..ndim {
            let mut dim = OwnedDimension(ptr::null_mut());
            // SAFETY: i < ndim; out-pointer valid.
            self.check(unsafe { sys::tiledb_domain_get_dimension_from_index(ctx, domain.0, i, &mut dim.0) })?;
            let mut name: *const c_char = ptr::null();
            // SAFETY: dim is live; the name is owned by the dimension.
            self.check(unsafe { sys::tiledb_dimension_get_name(ctx, dim.0, &mut name) })?;
            // SAFETY: a NUL-terminated string valid while dim lives.
            let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
            let mut dt = 0u32;
            // SAFETY: dim is live.
            self.check(unsafe { sys::tiledb_dimension_get_type(ctx, dim.0, &mut dt) })?;
            let datatype = datatype_from_raw(dt);
            let (mut dom, mut ext): (*const c_void, *const c_void) = (ptr::null(), ptr::null());
            // SAFETY: dim is live; pointers are owned by the dimension.
            self.check(unsafe { sys::tiledb_dimension_get_domain(ctx, dim.0, &mut dom) })?;
            // SAFETY: as above.
            self.check(unsafe { sys::tiledb_dimension_get_tile_extent(ctx, dim.0, &mut ext) })?;
            let size = datatype.size();
            let domain = if dom.is_null() || !datatype.is_integer() {
                None
            } else {
                // SAFETY: an integer domain holds two values of the dimension's type.
                unsafe {
                    Some((
                        decode_int(datatype, dom.cast()).unwrap_or(0),
                        decode_int(datatype, dom.cast::<u8>().add(size)).unwrap_or(0),
                    ))
                }
            };
            let extent = if ext.is_null() || !datatype.is_integer() {
                None
            } else {
                // SAFETY: the extent is one value of the dimension's type.
                unsafe { decode_int(datatype, ext.cast()) }
            };
            dims.push(DimInfo { name, datatype, domain, extent });
        }
        let mut nattr = 0u32;
        // SAFETY: schema is live.
        self.check(unsafe { sys::tiledb_array_schema_get_attribute_num(ctx, schema, &mut nattr) })?;
        let mut attrs = Vec::with_capacity(nattr as usize);
        for i in 0..nattr {
            let mut attr = OwnedAttribute(ptr::null_mut());
            // SAFETY: i < nattr.
            self.check(unsafe { sys::tiledb_array_schema_get_attribute_from_index(ctx, schema, i, &mut attr.0) })?;
            let mut name: *const c_char = ptr::null();
            // SAFETY: attr is live for these calls.
            self.check(unsafe { sys::tiledb_attribute_get_name(ctx, attr.0, &mut name) })?;
            // SAFETY: a NUL-terminated string valid while attr lives.
            let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
            let mut dt = 0u32;
            // SAFETY: as above.
            self.check(unsafe { sys::tiledb_attribute_get_type(ctx, attr.0, &mut dt) })?;
            let mut cvn = 0u32;
            // SAFETY: as above.
            self.check(unsafe { sys::tiledb_attribute_get_cell_val_num(ctx, attr.0, &mut cvn) })?;
            let mut nullable = 0u8;
            // SAFETY: as above.
            self.check(unsafe { sys::tiledb_attribute_get_nullable(ctx, attr.0, &mut nullable) })?;
            let mut fl = OwnedFilterList(ptr::null_mut());
            // SAFETY: as above.
            self.check(unsafe { sys::tiledb_attribute_get_filter_list(ctx, attr.0, &mut fl.0) })?;
            let filters = self.read_filters(fl.0)?;
            attrs.push(AttrInfo {
                name,
                datatype: datatype_from_raw(dt),
                var: cvn == u32::MAX,
                nullable: nullable != 0,
                filters,
            });
        }
        Ok(SchemaInfo {
            sparse: kind == sys::TILEDB_SPARSE,
            dims,
            attrs,
            cell_order: layout_from_raw(cell),
            tile_order: layout_from_raw(tile),
            allows_dups: dups != 0,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata (shared by arrays and groups)
// ---------------------------------------------------------------------------------------------

/// Encodes a metadata value as (datatype, count, bytes).
fn encode_meta(v: &MetaValue) -> (u32, u32, Vec<u8>) {
    match v {
        MetaValue::Str(s) => (sys::TILEDB_STRING_UTF8, s.len() as u32, s.as_bytes().to_vec()),
        MetaValue::Int(xs) => (sys::TILEDB_INT64, xs.len() as u32, bytemuck::cast_slice(xs).to_vec()),
        MetaValue::Float(xs) => (sys::TILEDB_FLOAT64, xs.len() as u32, bytemuck::cast_slice(xs).to_vec()),
        MetaValue::Bytes(b) => (sys::TILEDB_BLOB, b.len() as u32, b.clone()),
    }
}

/// Decodes a metadata value of `n` elements of raw type `t` at `p`.
///
/// # Safety
/// `p` must point to `n` readable elements of type `t` (or be null when `n == 0`).
unsafe fn decode_meta(t: u32, n: u32, p: *const c_void) -> MetaValue {
    let dt = datatype_from_raw(t);
    let nbytes = dt.size() * n as usize;
    let bytes: &[u8] = if p.is_null() || nbytes == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(p.cast::<u8>(), nbytes) }
    };
    let ints = |w: usize| -> Vec<i64> {
        bytes
            .chunks_exact(w)
            // SAFETY: each chunk has exactly `w` = dt.size() bytes.
            .map(|c| unsafe { decode_int(dt, c.as_ptr()) }.unwrap_or(i64::MAX))
            .collect()
    };
    match dt {
        Datatype::StringUtf8 | Datatype::StringAscii | Datatype::Char => {
            MetaValue::Str(String::from_utf8_lossy(bytes).into_owned())
        }
        Datatype::Float64 => MetaValue::Float(
            bytes.chunks_exact(8).map(|c| f64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
        ),
        Datatype::Float32 => MetaValue::Float(
            bytes.chunks_exact(4).map(|c| f64::from(f32::from_ne_bytes(c.try_into().unwrap_or([0; 4])))).collect(),
        ),
        Datatype::Bool => MetaValue::Int(bytes.iter().map(|&b| i64::from(b != 0)).collect()),
        d if d.is_integer() => MetaValue::Int(ints(d.size())),
        _ => MetaValue::Bytes(bytes.to_vec()),
    }
}

// ---------------------------------------------------------------------------------------------
// Arrays and queries
// ---------------------------------------------------------------------------------------------

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
    ctx: Ctx,
    ptr: NonNull<sys::tiledb_array_t>,
    open: bool,
    schema: SchemaInfo,
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
        let ctx = self.ctx.ptr();
        let a = self.ptr.as_ptr();
        let mut n = 0u64;
        // SAFETY: the array is open.
        self.ctx.check(unsafe { sys::tiledb_array_get_metadata_num(ctx, a, &mut n) })?;
        let mut out = BTreeMap::new();
        for i in 0..n {
            let (mut key, mut klen, mut t, mut num, mut val): (*const c_char, u32, u32, u32, *const c_void) =
                (ptr::null(), 0, 0, 0, ptr::null());
            // SAFETY: i < n; out-pointers are valid; returned pointers live until close.
            self.ctx.check(unsafe {
                sys::tiledb_array_get_metadata_from_index(ctx, a, i, &mut key, &mut klen, &mut t, &mut num, &mut val)
            })?;
            // SAFETY: key points to klen bytes.
            let k = unsafe { std::slice::from_raw_parts(key.cast::<u8>(), klen as usize) };
            // SAFETY: val points to num values of type t.
            let v = unsafe { decode_meta(t, num, val) };
            out.insert(String::from_utf8_lossy(k).into_owned(), v);
        }
        Ok(out)
    }

    /// Writes one metadata item (array opened for writing; persisted on close).
    pub fn put_metadata(&mut self, key: &str, value: &MetaValue) -> TdbResult<()> {
        let k = cstring(key)?;
        let (t, n, bytes) = encode_meta(value);
        // An empty string is stored as one NUL-free zero-length value: TileDB needs a non-null pointer.
        let p: *const c_void = if bytes.is_empty() { [0u8; 1].as_ptr().cast() } else { bytes.as_ptr().cast() };
        // SAFETY: the array is open for writing; bytes hold n values of type t and outlive the call.
        self.ctx
            .check(unsafe { sys::tiledb_array_put_metadata(self.ctx.ptr(), self.ptr.as_ptr(), k.as_ptr(), t, n, p) })
    }

    /// Deletes one metadata item (array opened for writing).
    pub fn delete_metadata(&mut self, key: &str) -> TdbResult<()> {
        let k = cstring(key)?;
        // SAFETY: the array is open for writing.
        self.ctx.check(unsafe { sys::tiledb_array_delete_metadata(self.ctx.ptr(), self.ptr.as_ptr(), k.as_ptr()) })
    }

    /// Closes the array, reporting errors (metadata and fragment commits happen here).
    pub fn close(mut self) -> TdbResult<()> {
        self.open = false;
        // SAFETY: the array is open; after this Drop only frees it.
        self.ctx.check(unsafe { sys::tiledb_array_close(self.ctx.ptr(), self.ptr.as_ptr()) })
    }

    fn subarray(&self, ranges: &[(i64, i64)]) -> TdbResult<OwnedSubarray> {
        if ranges.len() != self.schema.dims.len() {
            return Err(err(format!(
                "subarray has {} ranges but the array has {} dimensions",
                ranges.len(),
                self.schema.dims.len()
            )));
        }
        let mut sub = OwnedSubarray(ptr::null_mut());
        // SAFETY: the array is open.
        self.ctx.check(unsafe { sys::tiledb_subarray_alloc(self.ctx.ptr(), self.ptr.as_ptr(), &mut sub.0) })?;
        for (i, (&(lo, hi), dim)) in ranges.iter().zip(&self.schema.dims).enumerate() {
            let (mut blo, mut bhi) = ([0u8; 8], [0u8; 8]);
            encode_int(dim.datatype, lo, &mut blo)?;
            encode_int(dim.datatype, hi, &mut bhi)?;
            // SAFETY: start/end hold one value of the dimension's type each; stride must be NULL.
            self.ctx.check(unsafe {
                sys::tiledb_subarray_add_range(
                    self.ctx.ptr(),
                    sub.0,
                    i as u32,
                    blo.as_ptr().cast(),
                    bhi.as_ptr().cast(),
                    ptr::null(),
                )
            })?;
        }
        Ok(sub)
    }

    fn new_query(&self, kind: u32, layout: Layout) -> TdbResult<OwnedQuery> {
        let mut q = OwnedQuery(ptr::null_mut());
        // SAFETY: the array is open in the matching mode.
        self.ctx.check(unsafe { sys::tiledb_query_alloc(self.ctx.ptr(), self.ptr.as_ptr(), kind, &mut q.0) })?;
        // SAFETY: q is live.
        self.ctx.check(unsafe { sys::tiledb_query_set_layout(self.ctx.ptr(), q.0, layout_raw(layout)) })?;
        Ok(q)
    }

    fn query_status(&self, q: &OwnedQuery) -> TdbResult<u32> {
        let mut status = 0u32;
        // SAFETY: q is live.
        self.ctx.check(unsafe { sys::tiledb_query_get_status(self.ctx.ptr(), q.0, &mut status) })?;
        Ok(status)
    }

    /// Reads the box `ranges` (inclusive, one per dimension) of fixed-size attribute `attr` into
    /// `out`, cells ordered by `layout`. `out` must be exactly the result size in bytes.
    pub fn read_dense(&self, ranges: &[(i64, i64)], layout: Layout, attr: &str, out: &mut [u8]) -> TdbResult<()> {
        let name = cstring(attr)?;
        let sub = self.subarray(ranges)?;
        let q = self.new_query(sys::TILEDB_READ, layout)?;
        let ctx = self.ctx.ptr();
        // SAFETY: q and sub are live.
        self.ctx.check(unsafe { sys::tiledb_query_set_subarray_t(ctx, q.0, sub.0) })?;
        let mut size = out.len() as u64;
        // SAFETY: out is valid for `size` bytes and, like `size`, outlives the submit below.
        self.ctx.check(unsafe {
            sys::tiledb_query_set_data_buffer(ctx, q.0, name.as_ptr(), out.as_mut_ptr().cast(), &mut size)
        })?;
        // SAFETY: the query is fully set up; buffers are live.
        self.ctx.check(unsafe { sys::tiledb_query_submit(ctx, q.0) })?;
        let status = self.query_status(&q)?;
        if status != sys::TILEDB_COMPLETED {
            return Err(err(format!("dense read did not complete (status {status})")));
        }
        if size != out.len() as u64 {
            return Err(err(format!("dense read returned {size} bytes, expected {}", out.len())));
        }
        Ok(())
    }

    /// Writes `data` (cells ordered by `layout`) into the box `ranges` of attribute `attr`.
    pub fn write_dense(&self, ranges: &[(i64, i64)], layout: Layout, attr: &str, data: &[u8]) -> TdbResult<()> {
        let name = cstring(attr)?;
        let sub = self.subarray(ranges)?;
        let q = self.new_query(sys::TILEDB_WRITE, layout)?;
        let ctx = self.ctx.ptr();
        // SAFETY: q and sub are live.
        self.ctx.check(unsafe { sys::tiledb_query_set_subarray_t(ctx, q.0, sub.0) })?;
        let mut size = data.len() as u64;
        // SAFETY: TileDB only reads from the buffer of a write query; data and size outlive the submit.
        self.ctx.check(unsafe {
            sys::tiledb_query_set_data_buffer(ctx, q.0, name.as_ptr(), data.as_ptr().cast_mut().cast(), &mut size)
        })?;
        // SAFETY: the query is fully set up.
        self.ctx.check(unsafe { sys::tiledb_query_submit(ctx, q.0) })?;
        // SAFETY: finalizing a row/col-major write is a no-op flush; the query is live.
        self.ctx.check(unsafe { sys::tiledb_query_finalize(ctx, q.0) })?;
        let status = self.query_status(&q)?;
        if status != sys::TILEDB_COMPLETED {
            return Err(err(format!("dense write did not complete (status {status})")));
        }
        Ok(())
    }
}

impl Drop for Array {
    fn drop(&mut self) {
        if !self.ctx.in_current_process() {
            return;
        }
        if self.open {
            // SAFETY: the array is open; close errors cannot be reported from Drop (use `close`).
            unsafe { sys::tiledb_array_close(self.ctx.ptr(), self.ptr.as_ptr()) };
        }
        let mut p = self.ptr.as_ptr();
        // SAFETY: allocated by tiledb_array_alloc and freed once.
        unsafe { sys::tiledb_array_free(&mut p) };
    }
}

// ---------------------------------------------------------------------------------------------
// Sparse (dataframe) columns
// ---------------------------------------------------------------------------------------------

/// One column of a sparse read or write: a dimension or an attribute.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ColumnBuffer {
    /// Column (dimension or attribute) name.
    pub name: String,
    /// Fixed-size cells, or the concatenated bytes of var-sized cells.
    pub data: Vec<u8>,
    /// Start offset of each var-sized cell in `data` (empty for fixed-size columns).
    pub offsets: Vec<u64>,
    /// One byte per cell (1 = valid) for nullable attributes; empty otherwise.
    pub validity: Vec<u8>,
}

/// Which columns a sparse read returns and how they are laid out.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnRequest {
    /// Column name.
    pub name: String,
    /// Var-sized cells.
    pub var: bool,
    /// Nullable (attributes only).
    pub nullable: bool,
    /// Bytes per cell for fixed-size columns.
    pub cell_size: usize,
}

impl Array {
    /// Reads every cell of a sparse array, in `layout` order.
    ///
    /// Handles incomplete queries by growing buffers and resubmitting.
    pub fn read_sparse(&self, columns: &[ColumnRequest], layout: Layout) -> TdbResult<Vec<ColumnBuffer>> {
        let ctx = self.ctx.ptr();
        let mut out: Vec<ColumnBuffer> =
            columns.iter().map(|c| ColumnBuffer { name: c.name.clone(), ..Default::default() }).collect();
        // Initial guess: 64 KiB per buffer, doubled on INCOMPLETE with no progress.
        let mut cap: usize = 1 << 16;
        loop {
            let q = self.new_query(sys::TILEDB_READ, layout)?;
            let names: Vec<CString> = columns.iter().map(|c| cstring(&c.name)).collect::<TdbResult<_>>()?;
            // Per column scratch buffers; sizes are per submit.
            let mut data: Vec<Vec<u8>> = Vec::with_capacity(columns.len());
            let mut offs: Vec<Vec<u64>> = Vec::with_capacity(columns.len());
            let mut valid: Vec<Vec<u8>> = Vec::with_capacity(columns.len());
            let mut sizes: Vec<[u64; 3]> = vec![[0; 3]; columns.len()];
            for c in columns {
                let cells = (cap / c.cell_size.max(1)).max(1);
                data.push(vec![0u8; if c.var { cap } else { cells * c.cell_size }]);
                offs.push(if c.var { vec![0u64; cells] } else { Vec::new() });
                valid.push(if c.nullable { vec![0u8; cells] } else { Vec::new() });
            }
            // Resubmit the same query until complete, appending each batch.
            let mut first = true;
            let mut progressed_any = false;
            loop {
                for (i, c) in columns.iter().enumerate() {
                    sizes[i] = [data[i].len() as u64, (offs[i].len() * 8) as u64, valid[i].len() as u64];
                    if first {
                        // SAFETY: buffers and sizes live in this stack frame until the query is freed.
                        self.ctx.check(unsafe {
                            sys::tiledb_query_set_data_buffer(
                                ctx,
                                q.0,
                                names[i].as_ptr(),
                                data[i].as_mut_ptr().cast(),
                                &mut sizes[i][0],
                            )
                        })?;
                        if c.var {
                            // SAFETY: as above.
                            self.ctx.check(unsafe {
                                sys::tiledb_query_set_offsets_buffer(
                                    ctx,
                                    q.0,
                                    names[i].as_ptr(),
                                    offs[i].as_mut_ptr(),
                                    &mut sizes[i][1],
                                )
                            })?;
                        }
                        if c.nullable {
                            // SAFETY: as above.
                            self.ctx.check(unsafe {
                                sys::tiledb_query_set_validity_buffer(
                                    ctx,
                                    q.0,
                                    names[i].as_ptr(),
                                    valid[i].as_mut_ptr(),
                                    &mut sizes[i][2],
                                )
                            })?;
                        }
                    }
                }
                first = false;
                // SAFETY: all buffers are set and live.
                self.ctx.check(unsafe { sys::tiledb_query_submit(ctx, q.0) })?;
                let status = self.query_status(&q)?;
                // Number of cells returned in this batch (same for every column).
                let cells = columns
                    .iter()
                    .enumerate()
                    .map(
                        |(i, c)| {
                            if c.var { sizes[i][1] as usize / 8 } else { sizes[i][0] as usize / c.cell_size.max(1) }
                        },
                    )
                    .next()
                    .unwrap_or(0);
                for (i, c) in columns.iter().enumerate() {
                    let o = &mut out[i];
                    if c.var {
                        let base = o.data.len() as u64;
                        o.offsets.extend(offs[i][..cells].iter().map(|x| x + base));
                        o.data.extend_from_slice(&data[i][..sizes[i][0] as usize]);
                    } else {
                        o.data.extend_from_slice(&data[i][..cells * c.cell_size]);
                    }
                    if c.nullable {
                        o.validity.extend_from_slice(&valid[i][..cells]);
                    }
                }
                progressed_any |= cells > 0;
                match status {
                    sys::TILEDB_COMPLETED => return Ok(out),
                    sys::TILEDB_INCOMPLETE if cells > 0 => continue,
                    sys::TILEDB_INCOMPLETE => break, // buffers too small for one cell: grow and restart
                    other => return Err(err(format!("sparse read failed (status {other})"))),
                }
            }
            if progressed_any {
                // Partial results were appended; restart from scratch with bigger buffers.
                for o in &mut out {
                    o.data.clear();
                    o.offsets.clear();
                    o.validity.clear();
                }
            }
            cap = cap.checked_mul(4).ok_or_else(|| err("sparse read buffers overflow"))?;
            if cap > (1usize << 34) {
                return Err(err("a single sparse cell exceeds 16 GiB"));
            }
        }
    }

    /// Deletes the cells of a sparse array (opened with [`Mode::Delete`]) whose fields equal one
    /// of `rows`: `fields` names the fields (dimensions or attributes) and each row holds one
    /// string value per field. One delete query, whose condition is `OR` over rows of `AND` over
    /// fields of `field == value`; later writes of the same coordinates are visible again.
    pub fn delete_rows(&self, fields: &[&str], rows: &[Vec<String>]) -> TdbResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if fields.is_empty() || rows.iter().any(|r| r.len() != fields.len()) {
            return Err(err("delete_rows: every row needs one value per field"));
        }
        let ctx = self.ctx.ptr();
        let names: Vec<CString> = fields.iter().map(|f| cstring(f)).collect::<TdbResult<_>>()?;
        let combine = |a: OwnedCondition, b: OwnedCondition, op: u32| -> TdbResult<OwnedCondition> {
            let mut out = OwnedCondition(ptr::null_mut());
            // SAFETY: both conditions are live and initialised; combine copies them.
            self.ctx.check(unsafe { sys::tiledb_query_condition_combine(ctx, a.0, b.0, op, &mut out.0) })?;
            Ok(out)
        };
        // Balanced reduction, so the condition tree stays O(log n) deep.
        let reduce = |mut v: Vec<OwnedCondition>, op: u32| -> TdbResult<OwnedCondition> {
            while v.len() > 1 {
                let mut next = Vec::with_capacity(v.len().div_ceil(2));
                let mut it = v.into_iter();
                while let Some(a) = it.next() {
                    match it.next() {
                        Some(b) => next.push(combine(a, b, op)?),
                        None => next.push(a),
                    }
                }
                v = next;
            }
            v.pop().ok_or_else(|| err("empty condition"))
        };
        let mut per_row = Vec::with_capacity(rows.len());
        for row in rows {
            let mut eqs = Vec::with_capacity(fields.len());
            for (name, value) in names.iter().zip(row) {
                let mut c = OwnedCondition(ptr::null_mut());
                // SAFETY: the context is live; the out-pointer is valid.
                self.ctx.check(unsafe { sys::tiledb_query_condition_alloc(ctx, &mut c.0) })?;
                // An empty string still needs a non-null pointer.
                let p: *const c_void = if value.is_empty() { [0u8; 1].as_ptr().cast() } else { value.as_ptr().cast() };
                // SAFETY: c is allocated; name and value outlive the call (the value is copied).
                self.ctx.check(unsafe {
                    sys::tiledb_query_condition_init(ctx, c.0, name.as_ptr(), p, value.len() as u64, sys::TILEDB_EQ)
                })?;
                eqs.push(c);
            }
            per_row.push(reduce(eqs, sys::TILEDB_AND)?);
        }
        let cond = reduce(per_row, sys::TILEDB_OR)?;
        let mut q = OwnedQuery(ptr::null_mut());
        // SAFETY: the array is open for deletes.
        self.ctx.check(unsafe { sys::tiledb_query_alloc(ctx, self.ptr.as_ptr(), sys::TILEDB_DELETE, &mut q.0) })?;
        // SAFETY: q and cond are live; the query copies the condition.
        self.ctx.check(unsafe { sys::tiledb_query_set_condition(ctx, q.0, cond.0) })?;
        // SAFETY: the query is fully set up.
        self.ctx.check(unsafe { sys::tiledb_query_submit(ctx, q.0) })
    }

    /// Writes cells to a sparse array (unordered layout). Every dimension and attribute of the
    /// schema must be given, with the same number of cells.
    pub fn write_sparse(&self, columns: &[ColumnBuffer]) -> TdbResult<()> {
        let ctx = self.ctx.ptr();
        let q = self.new_query(sys::TILEDB_WRITE, Layout::Unordered)?;
        let names: Vec<CString> = columns.iter().map(|c| cstring(&c.name)).collect::<TdbResult<_>>()?;
        let mut sizes: Vec<[u64; 3]> = columns
            .iter()
            .map(|c| [c.data.len() as u64, (c.offsets.len() * 8) as u64, c.validity.len() as u64])
            .collect();
        let dummy = [0u8; 8];
        for (i, c) in columns.iter().enumerate() {
            let p: *mut c_void =
                if c.data.is_empty() { dummy.as_ptr().cast_mut().cast() } else { c.data.as_ptr().cast_mut().cast() };
            // SAFETY: write queries only read the buffers; buffers and sizes outlive the submit.
            self.ctx.check(unsafe {
                sys::tiledb_query_set_data_buffer(ctx, q.0, names[i].as_ptr(), p, &mut sizes[i][0])
            })?;
            if !c.offsets.is_empty() {
                // SAFETY: as above.
                self.ctx.check(unsafe {
                    sys::tiledb_query_set_offsets_buffer(
                        ctx,
                        q.0,
                        names[i].as_ptr(),
                        c.offsets.as_ptr().cast_mut(),
                        &mut sizes[i][1],
                    )
                })?;
            }
            if !c.validity.is_empty() {
                // SAFETY: as above.
                self.ctx.check(unsafe {
                    sys::tiledb_query_set_validity_buffer(
                        ctx,
                        q.0,
                        names[i].as_ptr(),
                        c.validity.as_ptr().cast_mut(),
                        &mut sizes[i][2],
                    )
                })?;
            }
        }
        // SAFETY: the query is fully set up.
        self.ctx.check(unsafe { sys::tiledb_query_submit(ctx, q.0) })?;
        // SAFETY: the query is live.
        self.ctx.check(unsafe { sys::tiledb_query_finalize(ctx, q.0) })?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------

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
        let ctx = self.ctx.ptr();
        let g = self.ptr.as_ptr();
        let mut n = 0u64;
        // SAFETY: the group is open.
        self.ctx.check(unsafe { sys::tiledb_group_get_metadata_num(ctx, g, &mut n) })?;
        let mut out = BTreeMap::new();
        for i in 0..n {
            let (mut key, mut klen, mut t, mut num, mut val): (*const c_char, u32, u32, u32, *const c_void) =
                (ptr::null(), 0, 0, 0, ptr::null());
            // SAFETY: i < n; returned pointers live until close.
            self.ctx.check(unsafe {
                sys::tiledb_group_get_metadata_from_index(ctx, g, i, &mut key, &mut klen, &mut t, &mut num, &mut val)
            })?;
            // SAFETY: key points to klen bytes.
            let k = unsafe { std::slice::from_raw_parts(key.cast::<u8>(), klen as usize) };
            // SAFETY: val points to num values of type t.
            let v = unsafe { decode_meta(t, num, val) };
            out.insert(String::from_utf8_lossy(k).into_owned(), v);
        }
        Ok(out)
    }

    /// Writes one metadata item (group opened for writing; persisted on close).
    pub fn put_metadata(&mut self, key: &str, value: &MetaValue) -> TdbResult<()> {
        let k = cstring(key)?;
        let (t, n, bytes) = encode_meta(value);
        let p: *const c_void = if bytes.is_empty() { [0u8; 1].as_ptr().cast() } else { bytes.as_ptr().cast() };
        // SAFETY: the group is open for writing; bytes hold n values of type t.
        self.ctx
            .check(unsafe { sys::tiledb_group_put_metadata(self.ctx.ptr(), self.ptr.as_ptr(), k.as_ptr(), t, n, p) })
    }

    /// Deletes one metadata item (group opened for writing).
    pub fn delete_metadata(&mut self, key: &str) -> TdbResult<()> {
        let k = cstring(key)?;
        // SAFETY: the group is open for writing.
        self.ctx.check(unsafe { sys::tiledb_group_delete_metadata(self.ctx.ptr(), self.ptr.as_ptr(), k.as_ptr()) })
    }

    /// Closes the group, reporting errors (member and metadata changes are written here).
    pub fn close(mut self) -> TdbResult<()> {
        self.open = false;
        // SAFETY: the group is open; Drop only frees it afterwards.
        self.ctx.check(unsafe { sys::tiledb_group_close(self.ctx.ptr(), self.ptr.as_ptr()) })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.ctx.in_current_process() {
            return;
        }
        if self.open {
            // SAFETY: the group is open.
            unsafe { sys::tiledb_group_close(self.ctx.ptr(), self.ptr.as_ptr()) };
        }
        let mut p = self.ptr.as_ptr();
        // SAFETY: allocated by tiledb_group_alloc and freed once.
        unsafe { sys::tiledb_group_free(&mut p) };
    }
}

// ---------------------------------------------------------------------------------------------
// VFS
// ---------------------------------------------------------------------------------------------

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
            // Leak in a forked child (see module docs).
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
