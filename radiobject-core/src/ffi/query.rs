//! Queries (`tiledb_query_t`) on an opened [`Array`]: dense boxes, sparse columns, deletes.

use std::ffi::{CString, c_void};
use std::ptr;

use super::array::Array;
use super::context::{TdbResult, cstring, err};
use super::schema::{encode_int, layout_raw};
use super::sys;
use crate::dtype::Layout;

owned_handle!(OwnedSubarray, sys::tiledb_subarray_t, tiledb_subarray_free);
owned_handle!(OwnedQuery, sys::tiledb_query_t, tiledb_query_free);
owned_handle!(OwnedCondition, sys::tiledb_query_condition_t, tiledb_query_condition_free);

impl Array {
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

    /// Deletes the cells of a sparse array (opened with [`Mode::Delete`](super::Mode::Delete)) whose fields equal one
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
