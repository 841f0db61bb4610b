//! Dataframes: the sparse TileDB arrays holding `obs` (one row per volume) and `obs_meta` (one row
//! per subject), laid out as the reference writes them.
//!
//! Layout: a sparse array whose dimensions are the index columns (`obs_subject_id`[, `obs_id`]),
//! `STRING_ASCII`, variable-sized, with TileDB's default `Zstd(-1)` coordinate filter; one
//! attribute per column; row-major cell and tile order, capacity 10000, no duplicates (writing a
//! row with existing index values replaces it).
//!
//! Differences from the reference, each fixing one of its defects while staying readable by it:
//! * every attribute is **nullable**, so missing values round-trip as nulls (the reference cannot
//!   store a `None`); tiledb-py returns masked arrays for them, which pandas turns into NaN/None;
//! * strings are stored as UTF-8 bytes in the index dimensions too (the reference refuses
//!   non-ASCII ids; tiledb-py returns the bytes, which the reference decodes as UTF-8);
//! * writes always carry every column (full rows), so updating some columns never fails with a
//!   missing attribute, and new columns are added by schema evolution.
//!
//! Rows are returned sorted by the index columns (byte order), the order TileDB's global order
//! gives and the reference relies on.

use std::collections::{HashMap, HashSet};

use crate::context::Context;
use crate::dtype::{Datatype, Layout};
use crate::error::{Error, Result, StorageContext};
use crate::ffi::{self, AttrSpec, ColumnBuffer, ColumnRequest, DimSpec, FilterSpec, Mode, ObjectType, SchemaSpec};

/// Values of one column (without nulls: see [`Column::valid`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// UTF-8 strings.
    Str(Vec<String>),
    /// Fixed-size cells of `datatype` (integers, floats, bools as one byte), native-endian bytes.
    Fixed {
        /// Cell type.
        datatype: Datatype,
        /// `len * datatype.size()` bytes.
        bytes: Vec<u8>,
    },
}

impl Values {
    /// Number of cells.
    pub fn len(&self) -> usize {
        match self {
            Values::Str(v) => v.len(),
            Values::Fixed { datatype, bytes } => bytes.len() / datatype.size().max(1),
        }
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The storage type.
    pub fn datatype(&self) -> Datatype {
        match self {
            Values::Str(_) => Datatype::StringUtf8,
            Values::Fixed { datatype, .. } => *datatype,
        }
    }

    /// 64-bit integers.
    pub fn int64(v: Vec<i64>) -> Values {
        Values::Fixed { datatype: Datatype::Int64, bytes: bytemuck::cast_slice(&v).to_vec() }
    }

    /// 32-bit integers.
    pub fn int32(v: Vec<i32>) -> Values {
        Values::Fixed { datatype: Datatype::Int32, bytes: bytemuck::cast_slice(&v).to_vec() }
    }

    /// 64-bit floats.
    pub fn float64(v: Vec<f64>) -> Values {
        Values::Fixed { datatype: Datatype::Float64, bytes: bytemuck::cast_slice(&v).to_vec() }
    }

    /// Booleans (stored as TileDB BOOL, one byte each).
    pub fn bool(v: Vec<bool>) -> Values {
        Values::Fixed { datatype: Datatype::Bool, bytes: v.into_iter().map(u8::from).collect() }
    }

    /// The strings, if this is a string column.
    pub fn as_str(&self) -> Option<&[String]> {
        match self {
            Values::Str(v) => Some(v),
            Values::Fixed { .. } => None,
        }
    }

    /// Cell `i` as an `i64` (integers and bools), if representable.
    pub fn get_i64(&self, i: usize) -> Option<i64> {
        let Values::Fixed { datatype, bytes } = self else { return None };
        let w = datatype.size();
        let c = bytes.get(i * w..(i + 1) * w)?;
        Some(match datatype {
            Datatype::Int8 => i64::from(c[0] as i8),
            Datatype::UInt8 | Datatype::Bool => i64::from(c[0]),
            Datatype::Int16 => i64::from(i16::from_ne_bytes(c.try_into().ok()?)),
            Datatype::UInt16 => i64::from(u16::from_ne_bytes(c.try_into().ok()?)),
            Datatype::Int32 => i64::from(i32::from_ne_bytes(c.try_into().ok()?)),
            Datatype::UInt32 => i64::from(u32::from_ne_bytes(c.try_into().ok()?)),
            Datatype::Int64 => i64::from_ne_bytes(c.try_into().ok()?),
            Datatype::UInt64 => i64::try_from(u64::from_ne_bytes(c.try_into().ok()?)).ok()?,
            _ => return None,
        })
    }

    /// Cell `i` as an `f64` (floats and integers).
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        match self {
            Values::Fixed { datatype: Datatype::Float64, bytes } => {
                Some(f64::from_ne_bytes(bytes.get(i * 8..i * 8 + 8)?.try_into().ok()?))
            }
            Values::Fixed { datatype: Datatype::Float32, bytes } => {
                Some(f64::from(f32::from_ne_bytes(bytes.get(i * 4..i * 4 + 4)?.try_into().ok()?)))
            }
            _ => self.get_i64(i).map(|x| x as f64),
        }
    }

    /// The cells at `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Values {
        match self {
            Values::Str(v) => Values::Str(rows.iter().map(|&r| v[r].clone()).collect()),
            Values::Fixed { datatype, bytes } => {
                let w = datatype.size();
                let mut out = Vec::with_capacity(rows.len() * w);
                for &r in rows {
                    out.extend_from_slice(&bytes[r * w..(r + 1) * w]);
                }
                Values::Fixed { datatype: *datatype, bytes: out }
            }
        }
    }

    fn extend(&mut self, other: &Values) -> Result<()> {
        match (self, other) {
            (Values::Str(a), Values::Str(b)) => a.extend(b.iter().cloned()),
            (Values::Fixed { datatype: da, bytes: a }, Values::Fixed { datatype: db, bytes: b }) if da == db => {
                a.extend_from_slice(b)
            }
            (a, b) => {
                return Err(Error::Invalid(format!(
                    "cannot append {} values to a {} column",
                    b.datatype(),
                    a.datatype()
                )));
            }
        }
        Ok(())
    }

    /// `n` null placeholders of the same type as `self` (empty strings or zero bytes).
    pub(crate) fn placeholders(datatype: Datatype, var: bool, n: usize) -> Values {
        if var {
            Values::Str(vec![String::new(); n])
        } else {
            Values::Fixed { datatype, bytes: vec![0; n * datatype.size()] }
        }
    }
}

/// One named column; `valid[i] == false` marks a null.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Cell values (placeholders where null).
    pub values: Values,
    /// Validity per cell; `None` means every cell is valid.
    pub valid: Option<Vec<bool>>,
}

impl Column {
    /// A column without nulls.
    pub fn new(name: impl Into<String>, values: Values) -> Column {
        Column { name: name.into(), values, valid: None }
    }

    /// Whether cell `i` is null.
    pub fn is_null(&self, i: usize) -> bool {
        self.valid.as_ref().is_some_and(|v| !v[i])
    }

    /// String cell `i` (None when null or not a string column).
    pub fn str_at(&self, i: usize) -> Option<&str> {
        if self.is_null(i) {
            return None;
        }
        self.values.as_str().map(|v| v[i].as_str())
    }
}

/// Rows of a dataframe as columns of equal length; index columns first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    /// The columns.
    pub columns: Vec<Column>,
}

impl Frame {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Mutable access to the column called `name`.
    pub fn column_mut(&mut self, name: &str) -> Option<&mut Column> {
        self.columns.iter_mut().find(|c| c.name == name)
    }

    /// Column names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The index values (text columns `index`) of each row.
    fn keys<'a>(&'a self, index: &[&str]) -> Result<Vec<Vec<&'a str>>> {
        let cols = index
            .iter()
            .map(|k| {
                self.column(k)
                    .and_then(|c| c.values.as_str())
                    .ok_or_else(|| Error::Schema(format!("the rows need the text index column {k:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((0..self.len()).map(|i| cols.iter().map(|c| c[i].as_str()).collect()).collect())
    }

    /// These rows as they replace rows of `stored` (both holding the index columns `index`): a
    /// row whose index values are stored keeps the stored values of every column it lacks; a new
    /// row gets nulls there. Refuses index values given twice. The rule of an upsert
    /// ([`Dataframe::update`], and `obs_meta` rows given for subjects already in a dataset).
    pub fn completed_from(&self, stored: &Frame, index: &[&str]) -> Result<Frame> {
        let keys = self.keys(index)?;
        let mut seen = HashSet::with_capacity(keys.len());
        if let Some(k) = keys.iter().find(|k| !seen.insert(k.as_slice())) {
            return Err(Error::Schema(format!("the rows give the index values {k:?} twice")));
        }
        let at: HashMap<Vec<&str>, usize> = if stored.is_empty() {
            HashMap::new()
        } else {
            stored.keys(index)?.into_iter().enumerate().map(|(i, k)| (k, i)).collect()
        };
        let pos: Vec<Option<usize>> = keys.iter().map(|k| at.get(k).copied()).collect();
        let rows: Vec<usize> = pos.iter().map(|p| p.unwrap_or(0)).collect();
        let mut out = self.clone();
        for c in stored.columns.iter().filter(|c| !index.contains(&c.name.as_str()) && self.column(&c.name).is_none()) {
            let values = if stored.is_empty() {
                Values::placeholders(c.values.datatype(), matches!(c.values, Values::Str(_)), pos.len())
            } else {
                c.values.take(&rows)
            };
            let valid: Vec<bool> =
                pos.iter().map(|p| p.is_some_and(|r| c.valid.as_ref().is_none_or(|v| v[r]))).collect();
            let valid = if valid.iter().all(|&v| v) { None } else { Some(valid) };
            out.columns.push(Column { name: c.name.clone(), values, valid });
        }
        Ok(out)
    }

    /// The rows at `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Frame {
        Frame {
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    values: c.values.take(rows),
                    valid: c.valid.as_ref().map(|v| rows.iter().map(|&r| v[r]).collect()),
                })
                .collect(),
        }
    }

    /// Checks that every column has the same length and names are unique.
    pub fn check(&self) -> Result<()> {
        let n = self.len();
        for (i, c) in self.columns.iter().enumerate() {
            if c.values.len() != n || c.valid.as_ref().is_some_and(|v| v.len() != n) {
                return Err(Error::Invalid(format!("column {} has {} rows, expected {n}", c.name, c.values.len())));
            }
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return Err(Error::Invalid(format!("duplicate column {:?}", c.name)));
            }
            if c.name.is_empty() || c.name.contains('\0') {
                return Err(Error::Invalid(format!("invalid column name {:?}", c.name)));
            }
        }
        Ok(())
    }

    /// Appends the rows of `other` (same column names; columns missing on either side are filled
    /// with nulls).
    pub fn append(&mut self, other: &Frame) -> Result<()> {
        let (n0, n1) = (self.len(), other.len());
        for c in &other.columns {
            if self.column(&c.name).is_none() {
                let var = matches!(c.values, Values::Str(_));
                self.columns.push(Column {
                    name: c.name.clone(),
                    values: Values::placeholders(c.values.datatype(), var, n0),
                    valid: Some(vec![false; n0]),
                });
            }
        }
        for mine in &mut self.columns {
            match other.column(&mine.name) {
                Some(c) => {
                    mine.values.extend(&c.values)?;
                    if mine.valid.is_some() || c.valid.is_some() {
                        let mut v = mine.valid.take().unwrap_or_else(|| vec![true; n0]);
                        v.extend(c.valid.clone().unwrap_or_else(|| vec![true; n1]));
                        mine.valid = Some(v);
                    }
                }
                None => {
                    let var = matches!(mine.values, Values::Str(_));
                    mine.values.extend(&Values::placeholders(mine.values.datatype(), var, n1))?;
                    let mut v = mine.valid.take().unwrap_or_else(|| vec![true; n0]);
                    v.extend(std::iter::repeat_n(false, n1));
                    mine.valid = Some(v);
                }
            }
        }
        Ok(())
    }

    /// Row order sorting by the string columns `keys` (byte order), stable.
    pub fn sorted_order(&self, keys: &[&str]) -> Result<Vec<usize>> {
        let cols: Vec<&[String]> = keys
            .iter()
            .map(|k| {
                self.column(k)
                    .and_then(|c| c.values.as_str())
                    .ok_or_else(|| Error::Invalid(format!("no string column {k:?} to sort by")))
            })
            .collect::<Result<_>>()?;
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by(|&a, &b| {
            cols.iter()
                .map(|c| c[a].as_bytes().cmp(c[b].as_bytes()))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        Ok(order)
    }
}

/// Type of a dataframe column as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnType {
    /// Cell type (`StringUtf8` for text).
    pub datatype: Datatype,
    /// Variable-sized (text).
    pub var: bool,
}

impl ColumnType {
    /// UTF-8 text.
    pub const STR: ColumnType = ColumnType { datatype: Datatype::StringUtf8, var: true };

    /// The type of some values.
    pub fn of(values: &Values) -> ColumnType {
        match values {
            Values::Str(_) => ColumnType::STR,
            Values::Fixed { datatype, .. } => ColumnType { datatype: *datatype, var: false },
        }
    }
}

/// An opened dataframe (schema loaded; data read on demand).
#[derive(Debug, Clone)]
pub struct Dataframe {
    ctx: Context,
    uri: String,
    index: Vec<String>,
    attrs: Vec<(String, ColumnType, bool)>,
}

fn attr_filters(ctx: &Context) -> Vec<FilterSpec> {
    use crate::config::Compressor;
    let c = &ctx.config().write.compression;
    match c.algorithm {
        Compressor::Zstd => vec![FilterSpec::Zstd(c.level)],
        Compressor::Lz4 => vec![FilterSpec::Lz4(c.level)],
        Compressor::Gzip => vec![FilterSpec::Gzip(c.level)],
        Compressor::None => vec![],
    }
}

fn attr_spec(ctx: &Context, name: &str, t: ColumnType) -> Result<AttrSpec> {
    if name.is_empty() || name.contains('\0') {
        return Err(Error::Invalid(format!("invalid column name {name:?}")));
    }
    let datatype = if t.var { Datatype::StringUtf8 } else { t.datatype };
    if !t.var && !datatype.is_voxel_type() && datatype != Datatype::Bool {
        return Err(Error::UnsupportedDtype(format!("{datatype} (column {name})")));
    }
    Ok(AttrSpec { name: name.to_owned(), datatype, var: t.var, nullable: true, filters: attr_filters(ctx) })
}

impl Dataframe {
    /// Creates an empty dataframe with `index` dimensions (string) and `columns` attributes.
    pub fn create(ctx: &Context, uri: &str, index: &[&str], columns: &[(String, ColumnType)]) -> Result<Dataframe> {
        let ctx = ctx.for_current_process()?;
        if index.is_empty() {
            return Err(Error::Invalid("a dataframe needs at least one index column".into()));
        }
        for (name, _) in columns {
            if index.contains(&name.as_str()) {
                return Err(Error::Invalid(format!("column {name:?} collides with an index column")));
            }
        }
        let spec = SchemaSpec {
            sparse: true,
            dims: index
                .iter()
                .map(|n| DimSpec {
                    name: (*n).to_owned(),
                    datatype: Datatype::StringAscii,
                    domain: None,
                    extent: None,
                    filters: vec![FilterSpec::Zstd(-1)],
                })
                .collect(),
            attrs: columns.iter().map(|(n, t)| attr_spec(&ctx, n, *t)).collect::<Result<_>>()?,
            cell_order: Layout::RowMajor,
            tile_order: Layout::RowMajor,
            capacity: Some(10_000),
            allows_dups: false,
            offsets_filters: vec![],
        };
        ctx.tdb().create_array(uri, &spec).at("create", uri)?;
        Dataframe::open(&ctx, uri)
    }

    /// Opens an existing dataframe.
    pub fn open(ctx: &Context, uri: &str) -> Result<Dataframe> {
        let ctx = ctx.for_current_process()?;
        let array = ffi::Array::open(ctx.tdb(), uri, Mode::Read, None).map_err(|e| {
            Error::open_failed(ctx.tdb(), uri, ObjectType::Array, "dataframe array", "dataframe array", e)
        })?;
        let s = array.schema();
        if !s.sparse {
            return Err(Error::WrongObjectType {
                uri: uri.to_owned(),
                expected: "sparse dataframe",
                found: "dense array",
            });
        }
        Ok(Dataframe {
            uri: uri.to_owned(),
            index: s.dims.iter().map(|d| d.name.clone()).collect(),
            attrs: s
                .attrs
                .iter()
                .map(|a| {
                    let var =
                        a.var || matches!(a.datatype, Datatype::StringUtf8 | Datatype::StringAscii | Datatype::Char);
                    (a.name.clone(), ColumnType { datatype: a.datatype, var }, a.nullable)
                })
                .collect(),
            ctx,
        })
    }

    /// The URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Index (dimension) column names.
    pub fn index_columns(&self) -> &[String] {
        &self.index
    }

    /// Attribute columns with their types.
    pub fn columns(&self) -> Vec<(String, ColumnType)> {
        self.attrs.iter().map(|(n, t, _)| (n.clone(), *t)).collect()
    }

    /// Reads every row (the newest value of each index), sorted by the index columns. `columns`
    /// limits the attributes read (index columns are always returned, first).
    pub fn read(&self, columns: Option<&[String]>) -> Result<Frame> {
        let array = ffi::Array::open(self.ctx.tdb(), &self.uri, Mode::Read, None).at("open", &self.uri)?;
        let wanted: Vec<&(String, ColumnType, bool)> = match columns {
            None => self.attrs.iter().collect(),
            Some(cols) => {
                let mut v = Vec::new();
                for c in cols.iter().filter(|c| !self.index.contains(c)) {
                    v.push(
                        self.attrs
                            .iter()
                            .find(|a| &a.0 == c)
                            .ok_or_else(|| Error::Invalid(format!("{}: no column {c:?}", self.uri)))?,
                    );
                }
                v
            }
        };
        let mut req: Vec<ColumnRequest> = self
            .index
            .iter()
            .map(|n| ColumnRequest { name: n.clone(), var: true, nullable: false, cell_size: 1 })
            .collect();
        req.extend(wanted.iter().map(|(n, t, nullable)| ColumnRequest {
            name: n.clone(),
            var: t.var,
            nullable: *nullable,
            cell_size: t.datatype.size(),
        }));
        let bufs = array.read_sparse(&req, Layout::GlobalOrder).at("read", &self.uri)?;
        let types: Vec<(ColumnType, bool)> = self
            .index
            .iter()
            .map(|_| (ColumnType::STR, false))
            .chain(wanted.iter().map(|(_, t, nl)| (*t, *nl)))
            .collect();
        let frame =
            Frame { columns: bufs.into_iter().zip(types).map(|(b, (t, nl))| decode_column(b, t, nl)).collect() };
        let keys: Vec<&str> = self.index.iter().map(String::as_str).collect();
        let order = frame.sorted_order(&keys)?;
        if order.iter().enumerate().all(|(i, &o)| i == o) { Ok(frame) } else { Ok(frame.take(&order)) }
    }

    /// Number of rows.
    pub fn count(&self) -> Result<usize> {
        Ok(self.read(Some(&[]))?.len())
    }

    /// Merges all fragments into one (after many small writes) and removes the old ones.
    pub fn consolidate(&self) -> Result<()> {
        self.ctx.tdb().consolidate_and_vacuum(&self.uri).at("consolidate", &self.uri)
    }

    /// Adds attribute columns (existing rows read as null).
    pub fn add_columns(&mut self, columns: &[(String, ColumnType)]) -> Result<()> {
        if columns.is_empty() {
            return Ok(());
        }
        for (n, _) in columns {
            if self.index.contains(n) || self.attrs.iter().any(|a| &a.0 == n) {
                return Err(Error::Invalid(format!("{}: column {n:?} already exists", self.uri)));
            }
        }
        let specs: Vec<AttrSpec> = columns.iter().map(|(n, t)| attr_spec(&self.ctx, n, *t)).collect::<Result<_>>()?;
        self.ctx.tdb().add_attributes(&self.uri, &specs).at("add columns", &self.uri)?;
        *self = Dataframe::open(&self.ctx, &self.uri)?;
        Ok(())
    }

    /// Drops an attribute column (schema evolution). Index columns cannot be dropped, and the
    /// column must exist.
    pub fn drop_column(&mut self, name: &str) -> Result<()> {
        if self.index.iter().any(|i| i == name) {
            return Err(Error::Invalid(format!("{}: Cannot drop index column {name:?}", self.uri)));
        }
        if !self.attrs.iter().any(|a| a.0 == name) {
            let cols: Vec<&str> = self.attrs.iter().map(|a| a.0.as_str()).collect();
            return Err(Error::Invalid(format!("{}: column {name:?} does not exist (columns: {cols:?})", self.uri)));
        }
        self.ctx.tdb().drop_attributes(&self.uri, &[name]).at("drop column", &self.uri)?;
        *self = Dataframe::open(&self.ctx, &self.uri)?;
        Ok(())
    }

    /// Deletes the rows whose index values are in `keys` (a frame holding every index column;
    /// keys that match no row are ignored). One TileDB delete query; the index values can be
    /// written again later. Returns the number of distinct keys given.
    pub fn delete(&self, keys: &Frame) -> Result<usize> {
        keys.check()?;
        let mut cols = Vec::with_capacity(self.index.len());
        for name in &self.index {
            let c = keys
                .column(name)
                .ok_or_else(|| Error::Invalid(format!("{}: delete keys lack the index column {name:?}", self.uri)))?;
            let Values::Str(v) = &c.values else {
                return Err(Error::Invalid(format!("{}: index column {name:?} must hold strings", self.uri)));
            };
            if c.valid.as_ref().is_some_and(|v| v.iter().any(|x| !x)) {
                return Err(Error::Invalid(format!("{}: index column {name:?} has nulls", self.uri)));
            }
            cols.push(v);
        }
        let mut seen = std::collections::BTreeSet::new();
        let rows: Vec<Vec<String>> = (0..keys.len())
            .map(|i| cols.iter().map(|c| c[i].clone()).collect::<Vec<String>>())
            .filter(|r| seen.insert(r.clone()))
            .collect();
        if rows.is_empty() {
            return Ok(0);
        }
        let fields: Vec<&str> = self.index.iter().map(String::as_str).collect();
        let array =
            ffi::Array::open(self.ctx.tdb(), &self.uri, Mode::Delete, None).at("open for deleting", &self.uri)?;
        array.delete_rows(&fields, &rows).at("delete", &self.uri)?;
        array.close().at("close", &self.uri)?;
        Ok(rows.len())
    }

    /// Upserts rows: a row whose index values exist replaces that row, keeping the stored values
    /// of the columns `rows` lacks ([`Frame::completed_from`]); other rows are added, with nulls
    /// there. Every column must exist already ([`Self::add_columns`]). One fragment.
    pub fn update(&mut self, rows: &Frame) -> Result<()> {
        rows.check()?;
        let unknown: Vec<&str> = rows
            .names()
            .into_iter()
            .filter(|n| !self.index.iter().any(|i| i == n) && !self.attrs.iter().any(|a| a.0 == *n))
            .collect();
        if !unknown.is_empty() {
            return Err(Error::Schema(format!("Unknown columns: {unknown:?}; add them with add_column() first")));
        }
        if rows.is_empty() {
            return Ok(());
        }
        let missing: Vec<String> =
            self.attrs.iter().map(|a| a.0.clone()).filter(|n| rows.column(n).is_none()).collect();
        let stored = if missing.is_empty() { Frame::default() } else { self.read(Some(&missing))? };
        let index: Vec<&str> = self.index.iter().map(String::as_str).collect();
        let full = rows.completed_from(&stored, &index)?;
        self.write(&full)
    }

    /// Writes rows: every index column must be given; attribute columns missing from `frame`
    /// are written as nulls, columns unknown to the schema are added first. Rows whose index
    /// values already exist replace the old rows. One fragment per call.
    pub fn write(&mut self, frame: &Frame) -> Result<()> {
        frame.check()?;
        if frame.is_empty() {
            return Ok(());
        }
        let new: Vec<(String, ColumnType)> = frame
            .columns
            .iter()
            .filter(|c| !self.index.contains(&c.name) && !self.attrs.iter().any(|a| a.0 == c.name))
            .map(|c| (c.name.clone(), ColumnType::of(&c.values)))
            .collect();
        self.add_columns(&new)?;
        let n = frame.len();
        let mut bufs = Vec::with_capacity(self.index.len() + self.attrs.len());
        for name in &self.index {
            let c = frame
                .column(name)
                .ok_or_else(|| Error::Invalid(format!("{}: rows lack the index column {name:?}", self.uri)))?;
            if c.valid.as_ref().is_some_and(|v| v.iter().any(|x| !x)) {
                return Err(Error::Invalid(format!("{}: index column {name:?} has nulls", self.uri)));
            }
            let Values::Str(v) = &c.values else {
                return Err(Error::Invalid(format!("{}: index column {name:?} must hold strings", self.uri)));
            };
            if let Some(i) = v.iter().position(String::is_empty) {
                return Err(Error::Invalid(format!(
                    "{}: index column {name:?} has an empty value (row {i})",
                    self.uri
                )));
            }
            bufs.push(encode_column(name, &c.values, None, false));
        }
        for (name, t, nullable) in &self.attrs {
            match frame.column(name) {
                Some(c) => {
                    let have = ColumnType::of(&c.values);
                    if have.var != t.var || (!t.var && have.datatype != t.datatype) {
                        return Err(Error::Invalid(format!(
                            "{}: column {name:?} is stored as {}, got {} values",
                            self.uri, t.datatype, have.datatype
                        )));
                    }
                    if !nullable && c.valid.as_ref().is_some_and(|v| v.iter().any(|x| !x)) {
                        return Err(Error::Invalid(format!(
                            "{}: column {name:?} was created without null support and got nulls",
                            self.uri
                        )));
                    }
                    bufs.push(encode_column(name, &c.values, c.valid.as_deref(), *nullable));
                }
                None if *nullable => {
                    let placeholder = Values::placeholders(t.datatype, t.var, n);
                    bufs.push(encode_column(name, &placeholder, Some(&vec![false; n]), true));
                }
                None => {
                    return Err(Error::Invalid(format!(
                        "{}: rows lack column {name:?}, which does not accept nulls",
                        self.uri
                    )));
                }
            }
        }
        let array = ffi::Array::open(self.ctx.tdb(), &self.uri, Mode::Write, None).at("open for writing", &self.uri)?;
        array.write_sparse(&bufs).at("write", &self.uri)?;
        array.close().at("close", &self.uri)
    }
}

fn encode_column(name: &str, values: &Values, valid: Option<&[bool]>, nullable: bool) -> ColumnBuffer {
    let mut b = ColumnBuffer { name: name.to_owned(), ..Default::default() };
    match values {
        Values::Str(v) => {
            let mut off = 0u64;
            for s in v {
                b.offsets.push(off);
                b.data.extend_from_slice(s.as_bytes());
                off += s.len() as u64;
            }
        }
        Values::Fixed { bytes, .. } => b.data.clone_from(bytes),
    }
    if nullable {
        let n = values.len();
        b.validity = match valid {
            Some(v) => v.iter().map(|&x| u8::from(x)).collect(),
            None => vec![1; n],
        };
    }
    b
}

fn decode_column(b: ColumnBuffer, t: ColumnType, nullable: bool) -> Column {
    let valid = if nullable && !b.validity.is_empty() {
        let v: Vec<bool> = b.validity.iter().map(|&x| x != 0).collect();
        if v.iter().all(|&x| x) { None } else { Some(v) }
    } else {
        None
    };
    let values = if t.var {
        let n = b.offsets.len();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let a = b.offsets[i] as usize;
            let z = if i + 1 < n { b.offsets[i + 1] as usize } else { b.data.len() };
            out.push(String::from_utf8_lossy(&b.data[a.min(z)..z]).into_owned());
        }
        Values::Str(out)
    } else {
        Values::Fixed { datatype: t.datatype, bytes: b.data }
    };
    Column { name: b.name, values, valid }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_fills_missing_columns_with_nulls() {
        let mut a = Frame {
            columns: vec![Column::new("id", Values::Str(vec!["a".into()])), Column::new("x", Values::int64(vec![1]))],
        };
        let b = Frame {
            columns: vec![
                Column::new("id", Values::Str(vec!["b".into()])),
                Column::new("y", Values::float64(vec![2.5])),
            ],
        };
        a.append(&b).unwrap();
        assert_eq!(a.len(), 2);
        assert!(a.column("x").unwrap().is_null(1) && !a.column("x").unwrap().is_null(0));
        assert!(a.column("y").unwrap().is_null(0));
        assert_eq!(a.column("y").unwrap().values.get_f64(1), Some(2.5));
        a.check().unwrap();
    }

    #[test]
    fn upserted_rows_keep_stored_values_of_the_columns_they_lack() {
        let s = |v: &[&str]| Values::Str(v.iter().map(|x| x.to_string()).collect());
        let stored =
            Frame { columns: vec![Column::new("id", s(&["a", "b"])), Column::new("age", Values::int64(vec![40, 50]))] };
        let rows = Frame { columns: vec![Column::new("id", s(&["b", "c"])), Column::new("site", s(&["x", "y"]))] };
        let full = rows.completed_from(&stored, &["id"]).unwrap();
        let age = full.column("age").unwrap();
        assert_eq!((age.values.get_i64(0), age.valid.clone()), (Some(50), Some(vec![true, false])));
        let empty = rows.completed_from(&Frame::default(), &["id"]).unwrap();
        assert_eq!(empty.columns.len(), 2);
        let twice = Frame { columns: vec![Column::new("id", s(&["a", "a"]))] };
        assert!(matches!(twice.completed_from(&stored, &["id"]), Err(Error::Schema(_))));
    }

    #[test]
    fn sorted_order_is_bytewise_and_stable() {
        let f = Frame {
            columns: vec![
                Column::new("s", Values::Str(vec!["b".into(), "a".into(), "b".into(), "Z".into()])),
                Column::new("o", Values::Str(vec!["2".into(), "9".into(), "1".into(), "0".into()])),
            ],
        };
        assert_eq!(f.sorted_order(&["s", "o"]).unwrap(), vec![3, 1, 2, 0]);
    }
}
