//! Metadata of arrays and groups: one implementation over the C functions of either kind.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_void};
use std::ptr;

use super::context::{Ctx, TdbResult, cstring};
use super::schema::{datatype_from_raw, decode_int};
use super::sys;
use crate::dtype::Datatype;
use crate::metadata::MetaValue;

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

/// The metadata functions of one kind of TileDB object: arrays and groups each have a set with the
/// same signatures but for the handle type `H`.
pub(super) struct MetaFns<H> {
    num: unsafe extern "C" fn(*mut sys::tiledb_ctx_t, *mut H, *mut u64) -> i32,
    #[allow(clippy::type_complexity)]
    from_index: unsafe extern "C" fn(
        *mut sys::tiledb_ctx_t,
        *mut H,
        u64,
        *mut *const c_char,
        *mut u32,
        *mut u32,
        *mut u32,
        *mut *const c_void,
    ) -> i32,
    put: unsafe extern "C" fn(*mut sys::tiledb_ctx_t, *mut H, *const c_char, u32, u32, *const c_void) -> i32,
    delete: unsafe extern "C" fn(*mut sys::tiledb_ctx_t, *mut H, *const c_char) -> i32,
}

/// Array metadata: `tiledb_array_*_metadata*`.
pub(super) const ARRAY: MetaFns<sys::tiledb_array_t> = MetaFns {
    num: sys::tiledb_array_get_metadata_num,
    from_index: sys::tiledb_array_get_metadata_from_index,
    put: sys::tiledb_array_put_metadata,
    delete: sys::tiledb_array_delete_metadata,
};

/// Group metadata: `tiledb_group_*_metadata*`.
pub(super) const GROUP: MetaFns<sys::tiledb_group_t> = MetaFns {
    num: sys::tiledb_group_get_metadata_num,
    from_index: sys::tiledb_group_get_metadata_from_index,
    put: sys::tiledb_group_put_metadata,
    delete: sys::tiledb_group_delete_metadata,
};

/// An opened TileDB object that carries metadata (arrays and groups).
///
/// # Safety
/// `raw` must return a live handle of the kind `FNS` expects, opened with `ctx`, and stay valid
/// for as long as `self` is borrowed.
pub(super) unsafe trait HasMetadata {
    /// The C handle type.
    type Raw;
    /// The metadata functions for that handle type.
    const FNS: MetaFns<Self::Raw>;
    /// The context the object was opened with.
    fn ctx(&self) -> &Ctx;
    /// The opened handle.
    fn raw(&self) -> *mut Self::Raw;
}

/// All metadata of an object (opened for reading).
pub(super) fn read_all<T: HasMetadata>(obj: &T) -> TdbResult<BTreeMap<String, MetaValue>> {
    let (c, ctx, h) = (obj.ctx(), obj.ctx().ptr(), obj.raw());
    let mut n = 0u64;
    // SAFETY: the object is open (see `HasMetadata`); the out-pointer is valid.
    c.check(unsafe { (T::FNS.num)(ctx, h, &mut n) })?;
    let mut out = BTreeMap::new();
    for i in 0..n {
        let (mut key, mut klen, mut t, mut num, mut val): (*const c_char, u32, u32, u32, *const c_void) =
            (ptr::null(), 0, 0, 0, ptr::null());
        // SAFETY: i < n; out-pointers are valid; returned pointers live until close.
        c.check(unsafe { (T::FNS.from_index)(ctx, h, i, &mut key, &mut klen, &mut t, &mut num, &mut val) })?;
        // SAFETY: key points to klen bytes.
        let k = unsafe { std::slice::from_raw_parts(key.cast::<u8>(), klen as usize) };
        // SAFETY: val points to num values of type t.
        let v = unsafe { decode_meta(t, num, val) };
        out.insert(String::from_utf8_lossy(k).into_owned(), v);
    }
    Ok(out)
}

/// Writes one metadata item (object opened for writing; persisted on close).
pub(super) fn put<T: HasMetadata>(obj: &mut T, key: &str, value: &MetaValue) -> TdbResult<()> {
    let k = cstring(key)?;
    let (t, n, bytes) = encode_meta(value);
    // An empty string is stored as one NUL-free zero-length value: TileDB needs a non-null pointer.
    let p: *const c_void = if bytes.is_empty() { [0u8; 1].as_ptr().cast() } else { bytes.as_ptr().cast() };
    let c = obj.ctx();
    // SAFETY: the object is open (for writing, else TileDB refuses); bytes hold n values of type t
    // and outlive the call.
    c.check(unsafe { (T::FNS.put)(c.ptr(), obj.raw(), k.as_ptr(), t, n, p) })
}

/// Deletes one metadata item (object opened for writing).
pub(super) fn delete<T: HasMetadata>(obj: &mut T, key: &str) -> TdbResult<()> {
    let k = cstring(key)?;
    let c = obj.ctx();
    // SAFETY: the object is open (for writing, else TileDB refuses); k outlives the call.
    c.check(unsafe { (T::FNS.delete)(c.ptr(), obj.raw(), k.as_ptr()) })
}
