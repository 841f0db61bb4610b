//! A pure-Rust reader of TileDB's dense on-disk format (libtiledb 2.30, format version 22):
//! which fragments to read, the array schema, each fragment's footer and tile offsets, and the
//! filter pipelines that encode tiles. It refuses anything it does not understand with a reason
//! ([`FormatError::Unsupported`]); the volume then reads through libtiledb and counts the reason.
//!
//! The format is written down in the project's `tiledb-direct-read.md`; section numbers in
//! comments refer to it.

pub mod array;
pub mod bytes;
pub mod filter;
pub mod fragment;
pub mod schema;
pub mod shuffle;

use thiserror::Error;

/// Highest format version (schema, fragment footer, generic tile) this reader understands.
pub const MAX_FORMAT_VERSION: u32 = 22;

/// Why bytes could not be read as TileDB's format.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// Valid TileDB content this reader does not handle (read it through libtiledb instead).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Bytes that do not parse, fail a checksum or disagree with their headers.
    #[error("corrupt: {0}")]
    Corrupt(String),
}

impl FormatError {
    /// A [`FormatError::Corrupt`] with this message.
    pub fn corrupt(msg: impl Into<String>) -> FormatError {
        FormatError::Corrupt(msg.into())
    }

    /// A [`FormatError::Unsupported`] with this message.
    pub fn unsupported(msg: impl Into<String>) -> FormatError {
        FormatError::Unsupported(msg.into())
    }
}

/// A TileDB datatype by its on-disk code (`tiledb_datatype_t`), with what decoding needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellType(pub u8);

impl CellType {
    /// `CHAR`, the type of generic tiles' payloads.
    pub const CHAR: CellType = CellType(4);
    /// `ANY`: a filter option meaning "no reinterpretation".
    pub const ANY: CellType = CellType(17);

    /// Bytes per value, for the fixed-size types this reader handles.
    pub fn size(self) -> Option<usize> {
        Some(match self.0 {
            4 | 5 | 6 | 40 | 41 => 1,
            7 | 8 => 2,
            0 | 2 | 9 => 4,
            1 | 3 | 10 | 18..=39 => 8,
            _ => return None,
        })
    }

    /// Floating point (`FLOAT32`, `FLOAT64`).
    pub fn is_float(self) -> bool {
        matches!(self.0, 2 | 3)
    }

    /// Signed integer (`INT8..INT64`, datetimes).
    pub fn is_signed_int(self) -> bool {
        matches!(self.0, 0 | 1 | 5 | 7 | 18..=39)
    }

    /// The crate's [`Datatype`](crate::dtype::Datatype) for voxel types.
    pub fn datatype(self) -> Option<crate::dtype::Datatype> {
        use crate::dtype::Datatype as D;
        Some(match self.0 {
            0 => D::Int32,
            1 => D::Int64,
            2 => D::Float32,
            3 => D::Float64,
            5 => D::Int8,
            6 => D::UInt8,
            7 => D::Int16,
            8 => D::UInt16,
            9 => D::UInt32,
            10 => D::UInt64,
            _ => return None,
        })
    }
}
