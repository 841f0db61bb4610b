//! Array schemas: pure-data specs for creation ([`SchemaSpec`]), what an existing array
//! stores ([`SchemaInfo`]), schema evolution, and the datatype/layout conversions.

use std::ffi::{CStr, c_char, c_void};
use std::ptr;

use super::context::{Ctx, TdbResult, cstring, err};
use super::sys;
use crate::dtype::{Datatype, Layout};

owned_handle!(OwnedDimension, sys::tiledb_dimension_t, tiledb_dimension_free);
owned_handle!(OwnedDomain, sys::tiledb_domain_t, tiledb_domain_free);
owned_handle!(OwnedAttribute, sys::tiledb_attribute_t, tiledb_attribute_free);
owned_handle!(OwnedFilter, sys::tiledb_filter_t, tiledb_filter_free);
owned_handle!(OwnedFilterList, sys::tiledb_filter_list_t, tiledb_filter_list_free);
owned_handle!(pub(super) OwnedSchema, sys::tiledb_array_schema_t, tiledb_array_schema_free);
owned_handle!(OwnedEvolution, sys::tiledb_array_schema_evolution_t, tiledb_array_schema_evolution_free);

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

pub(super) fn datatype_from_raw(x: u32) -> Datatype {
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

pub(super) fn layout_raw(l: Layout) -> u32 {
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
pub(super) fn encode_int(d: Datatype, v: i64, buf: &mut [u8; 8]) -> TdbResult<usize> {
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
pub(super) unsafe fn decode_int(d: Datatype, p: *const u8) -> Option<i64> {
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

/// An attribute as stored in an existing array: what was asked for when it was created.
pub type AttrInfo = AttrSpec;

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

    pub(super) fn schema_info(&self, schema: *mut sys::tiledb_array_schema_t) -> TdbResult<SchemaInfo> {
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
