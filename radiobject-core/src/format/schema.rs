//! Generic tiles (§3.1) and the array schema (§4).

use super::bytes::Reader;
use super::filter::Pipeline;
use super::{CellType, FormatError, MAX_FORMAT_VERSION};

/// Bytes of a generic tile's fixed header, before its pipeline.
const GENERIC_HEADER: usize = 34;

/// Largest payload a generic tile may claim (schemas and tile-offset blocks are far smaller).
const MAX_GENERIC_PAYLOAD: u64 = 1 << 31;

/// Decodes the generic tile starting at `off` of `buf`: returns its payload and the bytes the
/// tile occupies. Encrypted tiles are [`FormatError::Unsupported`].
pub fn decode_generic_tile(buf: &[u8], off: usize) -> Result<(Vec<u8>, usize), FormatError> {
    let rest = buf.get(off..).ok_or_else(|| FormatError::corrupt(format!("generic tile offset {off} past the end")))?;
    let mut r = Reader::new(rest, "generic tile");
    let version = r.u32()?;
    if version > MAX_FORMAT_VERSION {
        return Err(FormatError::unsupported(format!("generic tile format version {version}")));
    }
    let persisted = r.u64()?;
    let tile_size = r.u64()?;
    let _datatype = r.u8()?;
    let _cell_size = r.u64()?;
    let encryption = r.u8()?;
    if encryption != 0 {
        return Err(FormatError::unsupported("encrypted array (AES-256-GCM)"));
    }
    let pipeline_size = r.u32()? as usize;
    let p_start = r.position();
    let pipeline = Pipeline::parse(&mut r)?;
    if r.position() != p_start + pipeline_size {
        return Err(FormatError::corrupt("generic tile: pipeline size disagrees with its header"));
    }
    if tile_size > MAX_GENERIC_PAYLOAD || persisted > r.remaining() as u64 {
        return Err(FormatError::corrupt(format!(
            "generic tile: {persisted} stored / {tile_size} decoded bytes do not fit the {} bytes left",
            r.remaining()
        )));
    }
    let data = r.take(persisted as usize)?;
    let mut out = Vec::new();
    out.try_reserve_exact(tile_size as usize)
        .map_err(|_| FormatError::corrupt(format!("generic tile of {tile_size} bytes cannot be allocated")))?;
    out.resize(tile_size as usize, 0);
    pipeline.unfilter_tile(data, CellType::CHAR, &mut out, true)?;
    Ok((out, GENERIC_HEADER + pipeline_size + persisted as usize))
}

/// Cell or tile order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Last dimension fastest.
    RowMajor,
    /// First dimension fastest.
    ColMajor,
}

impl Order {
    fn from_code(code: u8, what: &str) -> Result<Order, FormatError> {
        match code {
            0 => Ok(Order::RowMajor),
            1 => Ok(Order::ColMajor),
            c => Err(FormatError::unsupported(format!("{what} order {c}"))),
        }
    }
}

/// One integer dimension of a dense array.
#[derive(Debug, Clone, PartialEq)]
pub struct Dim {
    /// Name.
    pub name: String,
    /// Coordinate type.
    pub dtype: CellType,
    /// Domain, inclusive.
    pub lo: i64,
    /// Domain, inclusive.
    pub hi: i64,
    /// Tile extent.
    pub extent: i64,
}

/// One attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    /// Name.
    pub name: String,
    /// Cell type.
    pub dtype: CellType,
    /// Values per cell.
    pub cell_val_num: u32,
    /// Filters of its tiles, or why this reader cannot reverse them.
    pub pipeline: Result<Pipeline, String>,
    /// Fill value of one cell.
    pub fill: Vec<u8>,
    /// Whether cells may be null.
    pub nullable: bool,
}

/// A dense array's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// Format version.
    pub version: u32,
    /// Tile order.
    pub tile_order: Order,
    /// Cell order within tiles.
    pub cell_order: Order,
    /// Dimensions.
    pub dims: Vec<Dim>,
    /// Attributes.
    pub attrs: Vec<Attr>,
    /// Current domain (format 22), inclusive per dimension, when set.
    pub current_domain: Option<Vec<(i64, i64)>>,
}

/// Reads one integer of `t` (1, 2, 4 or 8 bytes, signed or not) as `i64`.
pub(crate) fn read_int(r: &mut Reader<'_>, t: CellType) -> Result<i64, FormatError> {
    Ok(match t.0 {
        5 => r.u8()? as i8 as i64,
        6 => r.u8()? as i64,
        7 => i16::from_le_bytes(r.array()?) as i64,
        8 => u16::from_le_bytes(r.array()?) as i64,
        0 => r.i32()? as i64,
        9 => r.u32()? as i64,
        1 | 18..=39 => i64::from_le_bytes(r.array()?),
        10 => {
            let v = r.u64()?;
            i64::try_from(v).map_err(|_| FormatError::unsupported(format!("uint64 coordinate {v} above i64::MAX")))?
        }
        c => return Err(FormatError::unsupported(format!("dimension type {c}"))),
    })
}

impl Schema {
    /// Parses a schema generic tile's payload.
    pub fn parse(payload: &[u8]) -> Result<Schema, FormatError> {
        let mut r = Reader::new(payload, "array schema");
        let version = r.u32()?;
        if !(10..=MAX_FORMAT_VERSION).contains(&version) {
            return Err(FormatError::unsupported(format!("schema format version {version}")));
        }
        if version < MAX_FORMAT_VERSION {
            // Older layouts differ in optional fields; untested here, so libtiledb reads them.
            return Err(FormatError::unsupported(format!(
                "schema format version {version} (only {MAX_FORMAT_VERSION} is verified)"
            )));
        }
        let _allows_dups = r.u8()?;
        if r.u8()? != 0 {
            return Err(FormatError::unsupported("sparse array"));
        }
        let tile_order = Order::from_code(r.u8()?, "tile")?;
        let cell_order = Order::from_code(r.u8()?, "cell")?;
        let _capacity = r.u64()?;
        for _ in 0..3 {
            // Coordinate, offset and validity filters: parsed to skip them, unused for dense reads.
            skip_pipeline(&mut r)?;
        }
        let ndim = r.u32()?;
        if !(1..=4).contains(&ndim) {
            return Err(FormatError::unsupported(format!("{ndim} dimensions (at most 4 are read directly)")));
        }
        let mut dims = Vec::with_capacity(ndim as usize);
        for _ in 0..ndim {
            let nlen = r.len_u32(1)?;
            let name = String::from_utf8_lossy(r.take(nlen)?).into_owned();
            let dtype = CellType(r.u8()?);
            let cvn = r.u32()?;
            skip_pipeline(&mut r)?;
            let dsize = r.u64()?;
            let fixed_int = dtype.size().filter(|_| !dtype.is_float() && cvn == 1);
            if fixed_int.is_none_or(|s| dsize != 2 * s as u64) {
                return Err(FormatError::unsupported(format!(
                    "dimension {name} is not a fixed-size integer dimension"
                )));
            }
            let lo = read_int(&mut r, dtype)?;
            let hi = read_int(&mut r, dtype)?;
            let null_extent = r.u8()?;
            if null_extent != 0 {
                return Err(FormatError::unsupported(format!("dimension {name} has no tile extent")));
            }
            let extent = read_int(&mut r, dtype)?;
            if extent <= 0 || hi < lo {
                return Err(FormatError::corrupt(format!("dimension {name}: domain [{lo}, {hi}], extent {extent}")));
            }
            dims.push(Dim { name, dtype, lo, hi, extent });
        }
        if dims.iter().any(|d| d.dtype != dims[0].dtype) {
            return Err(FormatError::unsupported("dimensions of different types"));
        }
        let nattr = r.u32()?;
        let mut attrs = Vec::new();
        for _ in 0..nattr {
            let nlen = r.len_u32(1)?;
            let name = String::from_utf8_lossy(r.take(nlen)?).into_owned();
            let dtype = CellType(r.u8()?);
            let cell_val_num = r.u32()?;
            // An attribute this reader cannot decode is refused only if it is the one read.
            let pipeline = match Pipeline::parse(&mut r) {
                Ok(p) => Ok(p),
                Err(FormatError::Unsupported(why)) => Err(why),
                Err(e) => return Err(e),
            };
            let fsize = r.len_u64(1)?;
            let fill = r.take(fsize)?.to_vec();
            let nullable = r.u8()? != 0;
            let _fill_validity = r.u8()?;
            let _order = r.u8()?;
            let elen = r.len_u32(1)?;
            let enumeration = r.take(elen)?;
            if !enumeration.is_empty() {
                return Err(FormatError::unsupported(format!("attribute {name} has an enumeration")));
            }
            attrs.push(Attr { name, dtype, cell_val_num, pipeline, fill, nullable });
        }
        if r.u32()? != 0 {
            return Err(FormatError::unsupported("dimension labels"));
        }
        let nenum = r.u32()?;
        for _ in 0..nenum {
            let n = r.len_u32(1)?;
            r.skip(n)?;
            let n = r.len_u32(1)?;
            r.skip(n)?;
        }
        let _cd_version = r.u32()?;
        let empty = r.u8()? != 0;
        let current_domain = if empty {
            None
        } else {
            if r.u8()? != 0 {
                return Err(FormatError::unsupported("unknown current domain type"));
            }
            let mut cd = Vec::with_capacity(dims.len());
            for d in &dims {
                cd.push((read_int(&mut r, d.dtype)?, read_int(&mut r, d.dtype)?));
            }
            Some(cd)
        };
        Ok(Schema { version, tile_order, cell_order, dims, attrs, current_domain })
    }

    /// Index of the attribute named `name`.
    pub fn attr_index(&self, name: &str) -> Option<usize> {
        self.attrs.iter().position(|a| a.name == name)
    }
}

fn skip_pipeline(r: &mut Reader<'_>) -> Result<(), FormatError> {
    let _max_chunk = r.u32()?;
    let n = r.u32()?;
    for _ in 0..n {
        let _t = r.u8()?;
        let len = r.len_u32(1)?;
        r.skip(len)?;
    }
    Ok(())
}
