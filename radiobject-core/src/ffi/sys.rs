//! Hand-written declarations of the libtiledb 2.30 C API functions this crate calls.
//!
//! Signatures are taken from the TileDB 2.30.0 headers (`tiledb/api/c_api/**`). Every C enum is
//! `int`-sized; they are declared here as `u32`/`i32` aliases with the constants actually used.
//! Nothing outside [`crate::ffi`] may use this module.

#![allow(non_camel_case_types, missing_docs, dead_code)]

use std::ffi::{c_char, c_int, c_void};

pub type capi_return_t = i32;
pub const TILEDB_OK: capi_return_t = 0;

macro_rules! opaque {
    ($($name:ident),* $(,)?) => {
        $(
            #[repr(C)]
            pub struct $name {
                _private: [u8; 0],
            }
        )*
    };
}

opaque!(
    tiledb_config_t,
    tiledb_error_t,
    tiledb_ctx_t,
    tiledb_array_t,
    tiledb_array_schema_t,
    tiledb_attribute_t,
    tiledb_dimension_t,
    tiledb_domain_t,
    tiledb_filter_t,
    tiledb_filter_list_t,
    tiledb_query_t,
    tiledb_subarray_t,
    tiledb_group_t,
    tiledb_string_t,
    tiledb_vfs_t,
    tiledb_array_schema_evolution_t,
);

pub type tiledb_datatype_t = u32;
pub type tiledb_layout_t = u32;
pub type tiledb_array_type_t = u32;
pub type tiledb_query_type_t = u32;
pub type tiledb_query_status_t = u32;
pub type tiledb_filter_type_t = u32;
pub type tiledb_filter_option_t = u32;
pub type tiledb_object_t = u32;
pub type tiledb_filesystem_t = u32;

// tiledb_datatype_t
pub const TILEDB_INT32: u32 = 0;
pub const TILEDB_INT64: u32 = 1;
pub const TILEDB_FLOAT32: u32 = 2;
pub const TILEDB_FLOAT64: u32 = 3;
pub const TILEDB_CHAR: u32 = 4;
pub const TILEDB_INT8: u32 = 5;
pub const TILEDB_UINT8: u32 = 6;
pub const TILEDB_INT16: u32 = 7;
pub const TILEDB_UINT16: u32 = 8;
pub const TILEDB_UINT32: u32 = 9;
pub const TILEDB_UINT64: u32 = 10;
pub const TILEDB_STRING_ASCII: u32 = 11;
pub const TILEDB_STRING_UTF8: u32 = 12;
pub const TILEDB_BLOB: u32 = 40;
pub const TILEDB_BOOL: u32 = 41;

// tiledb_layout_t
pub const TILEDB_ROW_MAJOR: u32 = 0;
pub const TILEDB_COL_MAJOR: u32 = 1;
pub const TILEDB_GLOBAL_ORDER: u32 = 2;
pub const TILEDB_UNORDERED: u32 = 3;

// tiledb_array_type_t
pub const TILEDB_DENSE: u32 = 0;
pub const TILEDB_SPARSE: u32 = 1;

// tiledb_query_type_t
pub const TILEDB_READ: u32 = 0;
pub const TILEDB_WRITE: u32 = 1;
pub const TILEDB_DELETE: u32 = 2;

// query conditions (deletes): tiledb_query_condition_op_t, tiledb_query_condition_combination_op_t
opaque!(tiledb_query_condition_t);
pub const TILEDB_EQ: u32 = 4;
pub const TILEDB_AND: u32 = 0;
pub const TILEDB_OR: u32 = 1;

// tiledb_query_status_t
pub const TILEDB_FAILED: u32 = 0;
pub const TILEDB_COMPLETED: u32 = 1;
pub const TILEDB_INPROGRESS: u32 = 2;
pub const TILEDB_INCOMPLETE: u32 = 3;
pub const TILEDB_UNINITIALIZED: u32 = 4;
pub const TILEDB_INITIALIZED: u32 = 5;

// tiledb_filter_type_t
pub const TILEDB_FILTER_NONE: u32 = 0;
pub const TILEDB_FILTER_GZIP: u32 = 1;
pub const TILEDB_FILTER_ZSTD: u32 = 2;
pub const TILEDB_FILTER_LZ4: u32 = 3;
pub const TILEDB_FILTER_RLE: u32 = 4;
pub const TILEDB_FILTER_BZIP2: u32 = 5;
pub const TILEDB_FILTER_BYTESHUFFLE: u32 = 9;

// tiledb_filter_option_t
pub const TILEDB_COMPRESSION_LEVEL: u32 = 0;

// tiledb_object_t
pub const TILEDB_INVALID: u32 = 0;
pub const TILEDB_GROUP: u32 = 1;
pub const TILEDB_ARRAY: u32 = 2;

// tiledb_filesystem_t
pub const TILEDB_S3: u32 = 1;

pub type LsCallback = unsafe extern "C" fn(path: *const c_char, data: *mut c_void) -> i32;

unsafe extern "C" {
    pub fn tiledb_version(major: *mut i32, minor: *mut i32, rev: *mut i32);

    // config / errors
    pub fn tiledb_config_alloc(config: *mut *mut tiledb_config_t, error: *mut *mut tiledb_error_t) -> capi_return_t;
    pub fn tiledb_config_free(config: *mut *mut tiledb_config_t);
    pub fn tiledb_config_set(
        config: *mut tiledb_config_t,
        param: *const c_char,
        value: *const c_char,
        error: *mut *mut tiledb_error_t,
    ) -> capi_return_t;
    pub fn tiledb_config_get(
        config: *mut tiledb_config_t,
        param: *const c_char,
        value: *mut *const c_char,
        error: *mut *mut tiledb_error_t,
    ) -> capi_return_t;
    pub fn tiledb_error_message(err: *mut tiledb_error_t, errmsg: *mut *const c_char) -> capi_return_t;
    pub fn tiledb_error_free(err: *mut *mut tiledb_error_t);

    // context
    pub fn tiledb_ctx_alloc(config: *mut tiledb_config_t, ctx: *mut *mut tiledb_ctx_t) -> capi_return_t;
    pub fn tiledb_ctx_free(ctx: *mut *mut tiledb_ctx_t);
    pub fn tiledb_ctx_get_last_error(ctx: *mut tiledb_ctx_t, err: *mut *mut tiledb_error_t) -> capi_return_t;
    pub fn tiledb_ctx_get_stats(ctx: *mut tiledb_ctx_t, stats_json: *mut *mut c_char) -> capi_return_t;
    pub fn tiledb_ctx_is_supported_fs(
        ctx: *mut tiledb_ctx_t,
        fs: tiledb_filesystem_t,
        is_supported: *mut i32,
    ) -> capi_return_t;
    pub fn tiledb_stats_free_str(out: *mut *mut c_char) -> i32;

    // dimension / domain / attribute / filters
    pub fn tiledb_dimension_alloc(
        ctx: *mut tiledb_ctx_t,
        name: *const c_char,
        type_: tiledb_datatype_t,
        dim_domain: *const c_void,
        tile_extent: *const c_void,
        dim: *mut *mut tiledb_dimension_t,
    ) -> i32;
    pub fn tiledb_dimension_free(dim: *mut *mut tiledb_dimension_t);
    pub fn tiledb_dimension_set_filter_list(
        ctx: *mut tiledb_ctx_t,
        dim: *mut tiledb_dimension_t,
        filter_list: *mut tiledb_filter_list_t,
    ) -> i32;
    pub fn tiledb_dimension_set_cell_val_num(
        ctx: *mut tiledb_ctx_t,
        dim: *mut tiledb_dimension_t,
        cell_val_num: u32,
    ) -> i32;
    pub fn tiledb_dimension_get_name(
        ctx: *mut tiledb_ctx_t,
        dim: *const tiledb_dimension_t,
        name: *mut *const c_char,
    ) -> i32;
    pub fn tiledb_dimension_get_type(
        ctx: *mut tiledb_ctx_t,
        dim: *const tiledb_dimension_t,
        type_: *mut tiledb_datatype_t,
    ) -> i32;
    pub fn tiledb_dimension_get_domain(
        ctx: *mut tiledb_ctx_t,
        dim: *const tiledb_dimension_t,
        domain: *mut *const c_void,
    ) -> i32;
    pub fn tiledb_dimension_get_tile_extent(
        ctx: *mut tiledb_ctx_t,
        dim: *const tiledb_dimension_t,
        tile_extent: *mut *const c_void,
    ) -> i32;
    pub fn tiledb_domain_alloc(ctx: *mut tiledb_ctx_t, domain: *mut *mut tiledb_domain_t) -> i32;
    pub fn tiledb_domain_free(domain: *mut *mut tiledb_domain_t);
    pub fn tiledb_domain_add_dimension(
        ctx: *mut tiledb_ctx_t,
        domain: *mut tiledb_domain_t,
        dim: *mut tiledb_dimension_t,
    ) -> i32;
    pub fn tiledb_domain_get_ndim(ctx: *mut tiledb_ctx_t, domain: *const tiledb_domain_t, ndim: *mut u32) -> i32;
    pub fn tiledb_domain_get_dimension_from_index(
        ctx: *mut tiledb_ctx_t,
        domain: *const tiledb_domain_t,
        index: u32,
        dim: *mut *mut tiledb_dimension_t,
    ) -> i32;
    pub fn tiledb_attribute_alloc(
        ctx: *mut tiledb_ctx_t,
        name: *const c_char,
        type_: tiledb_datatype_t,
        attr: *mut *mut tiledb_attribute_t,
    ) -> i32;
    pub fn tiledb_attribute_free(attr: *mut *mut tiledb_attribute_t);
    pub fn tiledb_attribute_set_filter_list(
        ctx: *mut tiledb_ctx_t,
        attr: *mut tiledb_attribute_t,
        filter_list: *mut tiledb_filter_list_t,
    ) -> i32;
    pub fn tiledb_attribute_set_cell_val_num(
        ctx: *mut tiledb_ctx_t,
        attr: *mut tiledb_attribute_t,
        cell_val_num: u32,
    ) -> i32;
    pub fn tiledb_attribute_set_nullable(ctx: *mut tiledb_ctx_t, attr: *mut tiledb_attribute_t, nullable: u8) -> i32;
    pub fn tiledb_attribute_get_name(
        ctx: *mut tiledb_ctx_t,
        attr: *const tiledb_attribute_t,
        name: *mut *const c_char,
    ) -> i32;
    pub fn tiledb_attribute_get_type(
        ctx: *mut tiledb_ctx_t,
        attr: *const tiledb_attribute_t,
        type_: *mut tiledb_datatype_t,
    ) -> i32;
    pub fn tiledb_attribute_get_cell_val_num(
        ctx: *mut tiledb_ctx_t,
        attr: *const tiledb_attribute_t,
        cell_val_num: *mut u32,
    ) -> i32;
    pub fn tiledb_attribute_get_nullable(
        ctx: *mut tiledb_ctx_t,
        attr: *mut tiledb_attribute_t,
        nullable: *mut u8,
    ) -> i32;
    pub fn tiledb_attribute_get_filter_list(
        ctx: *mut tiledb_ctx_t,
        attr: *mut tiledb_attribute_t,
        filter_list: *mut *mut tiledb_filter_list_t,
    ) -> i32;
    pub fn tiledb_filter_alloc(
        ctx: *mut tiledb_ctx_t,
        type_: tiledb_filter_type_t,
        filter: *mut *mut tiledb_filter_t,
    ) -> capi_return_t;
    pub fn tiledb_filter_free(filter: *mut *mut tiledb_filter_t);
    pub fn tiledb_filter_set_option(
        ctx: *mut tiledb_ctx_t,
        filter: *mut tiledb_filter_t,
        option: tiledb_filter_option_t,
        value: *const c_void,
    ) -> capi_return_t;
    pub fn tiledb_filter_get_type(
        ctx: *mut tiledb_ctx_t,
        filter: *mut tiledb_filter_t,
        type_: *mut tiledb_filter_type_t,
    ) -> capi_return_t;
    pub fn tiledb_filter_get_option(
        ctx: *mut tiledb_ctx_t,
        filter: *mut tiledb_filter_t,
        option: tiledb_filter_option_t,
        value: *mut c_void,
    ) -> capi_return_t;
    pub fn tiledb_filter_list_alloc(
        ctx: *mut tiledb_ctx_t,
        filter_list: *mut *mut tiledb_filter_list_t,
    ) -> capi_return_t;
    pub fn tiledb_filter_list_free(filter_list: *mut *mut tiledb_filter_list_t);
    pub fn tiledb_filter_list_add_filter(
        ctx: *mut tiledb_ctx_t,
        filter_list: *mut tiledb_filter_list_t,
        filter: *mut tiledb_filter_t,
    ) -> capi_return_t;
    pub fn tiledb_filter_list_get_nfilters(
        ctx: *mut tiledb_ctx_t,
        filter_list: *const tiledb_filter_list_t,
        nfilters: *mut u32,
    ) -> capi_return_t;
    pub fn tiledb_filter_list_get_filter_from_index(
        ctx: *mut tiledb_ctx_t,
        filter_list: *const tiledb_filter_list_t,
        index: u32,
        filter: *mut *mut tiledb_filter_t,
    ) -> capi_return_t;

    // array schema
    pub fn tiledb_array_schema_alloc(
        ctx: *mut tiledb_ctx_t,
        array_type: tiledb_array_type_t,
        array_schema: *mut *mut tiledb_array_schema_t,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_free(array_schema: *mut *mut tiledb_array_schema_t);
    pub fn tiledb_array_schema_set_domain(
        ctx: *mut tiledb_ctx_t,
        array_schema: *mut tiledb_array_schema_t,
        domain: *mut tiledb_domain_t,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_add_attribute(
        ctx: *mut tiledb_ctx_t,
        array_schema: *mut tiledb_array_schema_t,
        attr: *mut tiledb_attribute_t,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_set_tile_order(
        ctx: *mut tiledb_ctx_t,
        array_schema: *mut tiledb_array_schema_t,
        tile_order: tiledb_layout_t,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_set_cell_order(
        ctx: *mut tiledb_ctx_t,
        array_schema: *mut tiledb_array_schema_t,
        cell_order: tiledb_layout_t,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_set_capacity(
        ctx: *mut tiledb_ctx_t,
        array_schema: *mut tiledb_array_schema_t,
        capacity: u64,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_set_allows_dups(
        ctx: *mut tiledb_ctx_t,
        array_schema: *mut tiledb_array_schema_t,
        allows_dups: c_int,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_set_coords_filter_list(
        ctx: *mut tiledb_ctx_t,
        array_schema: *mut tiledb_array_schema_t,
        filter_list: *mut tiledb_filter_list_t,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_set_offsets_filter_list(
        ctx: *mut tiledb_ctx_t,
        array_schema: *mut tiledb_array_schema_t,
        filter_list: *mut tiledb_filter_list_t,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_check(ctx: *mut tiledb_ctx_t, array_schema: *mut tiledb_array_schema_t)
    -> capi_return_t;
    pub fn tiledb_array_schema_get_array_type(
        ctx: *mut tiledb_ctx_t,
        array_schema: *const tiledb_array_schema_t,
        array_type: *mut tiledb_array_type_t,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_get_domain(
        ctx: *mut tiledb_ctx_t,
        array_schema: *const tiledb_array_schema_t,
        domain: *mut *mut tiledb_domain_t,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_get_attribute_num(
        ctx: *mut tiledb_ctx_t,
        array_schema: *const tiledb_array_schema_t,
        attribute_num: *mut u32,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_get_attribute_from_index(
        ctx: *mut tiledb_ctx_t,
        array_schema: *const tiledb_array_schema_t,
        index: u32,
        attr: *mut *mut tiledb_attribute_t,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_get_cell_order(
        ctx: *mut tiledb_ctx_t,
        array_schema: *const tiledb_array_schema_t,
        cell_order: *mut tiledb_layout_t,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_get_tile_order(
        ctx: *mut tiledb_ctx_t,
        array_schema: *const tiledb_array_schema_t,
        tile_order: *mut tiledb_layout_t,
    ) -> capi_return_t;
    pub fn tiledb_array_schema_get_allows_dups(
        ctx: *mut tiledb_ctx_t,
        array_schema: *mut tiledb_array_schema_t,
        allows_dups: *mut c_int,
    ) -> capi_return_t;

    // array
    pub fn tiledb_array_create(
        ctx: *mut tiledb_ctx_t,
        uri: *const c_char,
        array_schema: *const tiledb_array_schema_t,
    ) -> capi_return_t;
    pub fn tiledb_array_alloc(
        ctx: *mut tiledb_ctx_t,
        uri: *const c_char,
        array: *mut *mut tiledb_array_t,
    ) -> capi_return_t;
    pub fn tiledb_array_free(array: *mut *mut tiledb_array_t);
    pub fn tiledb_array_set_open_timestamp_end(
        ctx: *mut tiledb_ctx_t,
        array: *mut tiledb_array_t,
        timestamp_end: u64,
    ) -> capi_return_t;
    pub fn tiledb_array_open(
        ctx: *mut tiledb_ctx_t,
        array: *mut tiledb_array_t,
        query_type: tiledb_query_type_t,
    ) -> capi_return_t;
    pub fn tiledb_array_close(ctx: *mut tiledb_ctx_t, array: *mut tiledb_array_t) -> capi_return_t;
    pub fn tiledb_array_get_schema(
        ctx: *mut tiledb_ctx_t,
        array: *mut tiledb_array_t,
        array_schema: *mut *mut tiledb_array_schema_t,
    ) -> capi_return_t;
    pub fn tiledb_array_get_non_empty_domain(
        ctx: *mut tiledb_ctx_t,
        array: *mut tiledb_array_t,
        domain: *mut c_void,
        is_empty: *mut i32,
    ) -> capi_return_t;
    pub fn tiledb_array_put_metadata(
        ctx: *mut tiledb_ctx_t,
        array: *mut tiledb_array_t,
        key: *const c_char,
        value_type: tiledb_datatype_t,
        value_num: u32,
        value: *const c_void,
    ) -> capi_return_t;
    pub fn tiledb_array_delete_metadata(
        ctx: *mut tiledb_ctx_t,
        array: *mut tiledb_array_t,
        key: *const c_char,
    ) -> capi_return_t;
    pub fn tiledb_array_get_metadata_num(
        ctx: *mut tiledb_ctx_t,
        array: *mut tiledb_array_t,
        num: *mut u64,
    ) -> capi_return_t;
    pub fn tiledb_array_get_metadata_from_index(
        ctx: *mut tiledb_ctx_t,
        array: *mut tiledb_array_t,
        index: u64,
        key: *mut *const c_char,
        key_len: *mut u32,
        value_type: *mut tiledb_datatype_t,
        value_num: *mut u32,
        value: *mut *const c_void,
    ) -> capi_return_t;
    pub fn tiledb_array_delete(ctx: *mut tiledb_ctx_t, uri: *const c_char) -> capi_return_t;

    pub fn tiledb_array_consolidate(
        ctx: *mut tiledb_ctx_t,
        array_uri: *const c_char,
        config: *mut tiledb_config_t,
    ) -> capi_return_t;
    pub fn tiledb_array_vacuum(
        ctx: *mut tiledb_ctx_t,
        array_uri: *const c_char,
        config: *mut tiledb_config_t,
    ) -> capi_return_t;

    // schema evolution
    pub fn tiledb_array_schema_evolution_alloc(
        ctx: *mut tiledb_ctx_t,
        evolution: *mut *mut tiledb_array_schema_evolution_t,
    ) -> i32;
    pub fn tiledb_array_schema_evolution_free(evolution: *mut *mut tiledb_array_schema_evolution_t);
    pub fn tiledb_array_schema_evolution_add_attribute(
        ctx: *mut tiledb_ctx_t,
        evolution: *mut tiledb_array_schema_evolution_t,
        attribute: *mut tiledb_attribute_t,
    ) -> i32;
    pub fn tiledb_array_schema_evolution_drop_attribute(
        ctx: *mut tiledb_ctx_t,
        evolution: *mut tiledb_array_schema_evolution_t,
        attribute_name: *const c_char,
    ) -> i32;
    pub fn tiledb_array_evolve(
        ctx: *mut tiledb_ctx_t,
        array_uri: *const c_char,
        evolution: *mut tiledb_array_schema_evolution_t,
    ) -> capi_return_t;

    // subarray / query
    pub fn tiledb_subarray_alloc(
        ctx: *mut tiledb_ctx_t,
        array: *const tiledb_array_t,
        subarray: *mut *mut tiledb_subarray_t,
    ) -> capi_return_t;
    pub fn tiledb_subarray_free(subarray: *mut *mut tiledb_subarray_t);
    pub fn tiledb_subarray_add_range(
        ctx: *mut tiledb_ctx_t,
        subarray: *mut tiledb_subarray_t,
        dim_idx: u32,
        start: *const c_void,
        end: *const c_void,
        stride: *const c_void,
    ) -> capi_return_t;
    pub fn tiledb_query_alloc(
        ctx: *mut tiledb_ctx_t,
        array: *mut tiledb_array_t,
        query_type: tiledb_query_type_t,
        query: *mut *mut tiledb_query_t,
    ) -> i32;
    pub fn tiledb_query_free(query: *mut *mut tiledb_query_t);
    pub fn tiledb_query_set_layout(ctx: *mut tiledb_ctx_t, query: *mut tiledb_query_t, layout: tiledb_layout_t) -> i32;
    pub fn tiledb_query_set_subarray_t(
        ctx: *mut tiledb_ctx_t,
        query: *mut tiledb_query_t,
        subarray: *const tiledb_subarray_t,
    ) -> i32;
    pub fn tiledb_query_set_data_buffer(
        ctx: *mut tiledb_ctx_t,
        query: *mut tiledb_query_t,
        name: *const c_char,
        buffer: *mut c_void,
        buffer_size: *mut u64,
    ) -> i32;
    pub fn tiledb_query_set_offsets_buffer(
        ctx: *mut tiledb_ctx_t,
        query: *mut tiledb_query_t,
        name: *const c_char,
        buffer: *mut u64,
        buffer_size: *mut u64,
    ) -> i32;
    pub fn tiledb_query_set_validity_buffer(
        ctx: *mut tiledb_ctx_t,
        query: *mut tiledb_query_t,
        name: *const c_char,
        buffer: *mut u8,
        buffer_size: *mut u64,
    ) -> i32;
    pub fn tiledb_query_submit(ctx: *mut tiledb_ctx_t, query: *mut tiledb_query_t) -> i32;
    pub fn tiledb_query_condition_alloc(ctx: *mut tiledb_ctx_t, cond: *mut *mut tiledb_query_condition_t) -> i32;
    pub fn tiledb_query_condition_free(cond: *mut *mut tiledb_query_condition_t);
    pub fn tiledb_query_condition_init(
        ctx: *mut tiledb_ctx_t,
        cond: *mut tiledb_query_condition_t,
        attribute_name: *const c_char,
        condition_value: *const c_void,
        condition_value_size: u64,
        op: u32,
    ) -> i32;
    pub fn tiledb_query_condition_combine(
        ctx: *mut tiledb_ctx_t,
        left_cond: *const tiledb_query_condition_t,
        right_cond: *const tiledb_query_condition_t,
        combination_op: u32,
        combined_cond: *mut *mut tiledb_query_condition_t,
    ) -> i32;
    pub fn tiledb_query_set_condition(
        ctx: *mut tiledb_ctx_t,
        query: *mut tiledb_query_t,
        cond: *const tiledb_query_condition_t,
    ) -> i32;
    pub fn tiledb_query_finalize(ctx: *mut tiledb_ctx_t, query: *mut tiledb_query_t) -> i32;
    pub fn tiledb_query_submit_and_finalize(ctx: *mut tiledb_ctx_t, query: *mut tiledb_query_t) -> i32;
    pub fn tiledb_query_get_status(
        ctx: *mut tiledb_ctx_t,
        query: *mut tiledb_query_t,
        status: *mut tiledb_query_status_t,
    ) -> i32;
    pub fn tiledb_query_get_est_result_size(
        ctx: *mut tiledb_ctx_t,
        query: *const tiledb_query_t,
        name: *const c_char,
        size: *mut u64,
    ) -> i32;
    pub fn tiledb_query_get_est_result_size_var(
        ctx: *mut tiledb_ctx_t,
        query: *const tiledb_query_t,
        name: *const c_char,
        size_off: *mut u64,
        size_val: *mut u64,
    ) -> i32;
    pub fn tiledb_query_get_est_result_size_nullable(
        ctx: *mut tiledb_ctx_t,
        query: *const tiledb_query_t,
        name: *const c_char,
        size_val: *mut u64,
        size_validity: *mut u64,
    ) -> i32;
    pub fn tiledb_query_get_est_result_size_var_nullable(
        ctx: *mut tiledb_ctx_t,
        query: *const tiledb_query_t,
        name: *const c_char,
        size_off: *mut u64,
        size_val: *mut u64,
        size_validity: *mut u64,
    ) -> i32;

    // groups
    pub fn tiledb_group_create(ctx: *mut tiledb_ctx_t, group_uri: *const c_char) -> capi_return_t;
    pub fn tiledb_group_alloc(
        ctx: *mut tiledb_ctx_t,
        group_uri: *const c_char,
        group: *mut *mut tiledb_group_t,
    ) -> capi_return_t;
    pub fn tiledb_group_free(group: *mut *mut tiledb_group_t);
    pub fn tiledb_group_open(
        ctx: *mut tiledb_ctx_t,
        group: *mut tiledb_group_t,
        query_type: tiledb_query_type_t,
    ) -> capi_return_t;
    pub fn tiledb_group_close(ctx: *mut tiledb_ctx_t, group: *mut tiledb_group_t) -> capi_return_t;
    pub fn tiledb_group_add_member(
        ctx: *mut tiledb_ctx_t,
        group: *mut tiledb_group_t,
        uri: *const c_char,
        relative: u8,
        name: *const c_char,
    ) -> capi_return_t;
    pub fn tiledb_group_remove_member(
        ctx: *mut tiledb_ctx_t,
        group: *mut tiledb_group_t,
        name_or_uri: *const c_char,
    ) -> capi_return_t;
    pub fn tiledb_group_get_member_count(
        ctx: *mut tiledb_ctx_t,
        group: *mut tiledb_group_t,
        count: *mut u64,
    ) -> capi_return_t;
    pub fn tiledb_group_get_member_by_index_v2(
        ctx: *mut tiledb_ctx_t,
        group: *mut tiledb_group_t,
        index: u64,
        uri: *mut *mut tiledb_string_t,
        type_: *mut tiledb_object_t,
        name: *mut *mut tiledb_string_t,
    ) -> capi_return_t;
    pub fn tiledb_group_put_metadata(
        ctx: *mut tiledb_ctx_t,
        group: *mut tiledb_group_t,
        key: *const c_char,
        value_type: tiledb_datatype_t,
        value_num: u32,
        value: *const c_void,
    ) -> capi_return_t;
    pub fn tiledb_group_delete_metadata(
        ctx: *mut tiledb_ctx_t,
        group: *mut tiledb_group_t,
        key: *const c_char,
    ) -> capi_return_t;
    pub fn tiledb_group_get_metadata_num(
        ctx: *mut tiledb_ctx_t,
        group: *mut tiledb_group_t,
        num: *mut u64,
    ) -> capi_return_t;
    pub fn tiledb_group_get_metadata_from_index(
        ctx: *mut tiledb_ctx_t,
        group: *mut tiledb_group_t,
        index: u64,
        key: *mut *const c_char,
        key_len: *mut u32,
        value_type: *mut tiledb_datatype_t,
        value_num: *mut u32,
        value: *mut *const c_void,
    ) -> capi_return_t;
    pub fn tiledb_string_view(s: *mut tiledb_string_t, data: *mut *const c_char, length: *mut usize) -> capi_return_t;
    pub fn tiledb_string_free(s: *mut *mut tiledb_string_t) -> capi_return_t;

    // objects
    pub fn tiledb_object_type(ctx: *mut tiledb_ctx_t, path: *const c_char, type_: *mut tiledb_object_t) -> i32;

    // VFS
    pub fn tiledb_vfs_alloc(
        ctx: *mut tiledb_ctx_t,
        config: *mut tiledb_config_t,
        vfs: *mut *mut tiledb_vfs_t,
    ) -> capi_return_t;
    pub fn tiledb_vfs_free(vfs: *mut *mut tiledb_vfs_t);
    pub fn tiledb_vfs_is_bucket(
        ctx: *mut tiledb_ctx_t,
        vfs: *mut tiledb_vfs_t,
        uri: *const c_char,
        is_bucket: *mut i32,
    ) -> capi_return_t;
    pub fn tiledb_vfs_create_bucket(
        ctx: *mut tiledb_ctx_t,
        vfs: *mut tiledb_vfs_t,
        uri: *const c_char,
    ) -> capi_return_t;
    pub fn tiledb_vfs_is_dir(
        ctx: *mut tiledb_ctx_t,
        vfs: *mut tiledb_vfs_t,
        uri: *const c_char,
        is_dir: *mut i32,
    ) -> capi_return_t;
    pub fn tiledb_vfs_is_file(
        ctx: *mut tiledb_ctx_t,
        vfs: *mut tiledb_vfs_t,
        uri: *const c_char,
        is_file: *mut i32,
    ) -> capi_return_t;
    pub fn tiledb_vfs_remove_dir(ctx: *mut tiledb_ctx_t, vfs: *mut tiledb_vfs_t, uri: *const c_char) -> capi_return_t;
    pub fn tiledb_vfs_remove_file(ctx: *mut tiledb_ctx_t, vfs: *mut tiledb_vfs_t, uri: *const c_char) -> capi_return_t;
    pub fn tiledb_vfs_move_dir(
        ctx: *mut tiledb_ctx_t,
        vfs: *mut tiledb_vfs_t,
        old_uri: *const c_char,
        new_uri: *const c_char,
    ) -> capi_return_t;
    pub fn tiledb_vfs_copy_dir(
        ctx: *mut tiledb_ctx_t,
        vfs: *mut tiledb_vfs_t,
        old_uri: *const c_char,
        new_uri: *const c_char,
    ) -> capi_return_t;
    pub fn tiledb_vfs_file_size(
        ctx: *mut tiledb_ctx_t,
        vfs: *mut tiledb_vfs_t,
        uri: *const c_char,
        size: *mut u64,
    ) -> capi_return_t;
    pub fn tiledb_vfs_dir_size(
        ctx: *mut tiledb_ctx_t,
        vfs: *mut tiledb_vfs_t,
        uri: *const c_char,
        size: *mut u64,
    ) -> capi_return_t;
    pub fn tiledb_vfs_ls(
        ctx: *mut tiledb_ctx_t,
        vfs: *mut tiledb_vfs_t,
        path: *const c_char,
        callback: Option<LsCallback>,
        data: *mut c_void,
    ) -> capi_return_t;
}
