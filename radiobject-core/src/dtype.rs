//! Element types, TileDB datatypes and cell layouts.

use serde::{Deserialize, Serialize};

/// A TileDB cell datatype (the subset this crate reads and writes, plus a catch-all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Datatype {
    /// `int8`
    Int8,
    /// `uint8`
    UInt8,
    /// `int16`
    Int16,
    /// `uint16`
    UInt16,
    /// `int32`
    Int32,
    /// `uint32`
    UInt32,
    /// `int64`
    Int64,
    /// `uint64`
    UInt64,
    /// `float32`
    Float32,
    /// `float64`
    Float64,
    /// Single-byte characters.
    Char,
    /// ASCII string (dimensions).
    StringAscii,
    /// UTF-8 string.
    StringUtf8,
    /// Boolean stored as one byte.
    Bool,
    /// Opaque bytes.
    Blob,
    /// Any other TileDB datatype, by its C enum value.
    Other(u32),
}

impl Datatype {
    /// The type both `self` and `other` convert to without loss of range, as NumPy's
    /// `result_type` decides for two arrays (`uint8`+`int16` -> `int16`, `int16`+`float32` ->
    /// `float32`, `int32`+`float32` -> `float64`, `uint64`+`int64` -> `float64`). `None` for
    /// non-numeric types.
    pub fn promote(self, other: Datatype) -> Option<Datatype> {
        use Datatype::*;
        // (kind, bytes): kind 0 unsigned, 1 signed, 2 float
        let class = |d: Datatype| -> Option<(u8, usize)> {
            Some(match d {
                UInt8 | UInt16 | UInt32 | UInt64 => (0, d.size()),
                Int8 | Int16 | Int32 | Int64 => (1, d.size()),
                Float32 | Float64 => (2, d.size()),
                _ => return None,
            })
        };
        let ((ka, sa), (kb, sb)) = (class(self)?, class(other)?);
        let int = |signed: bool, bytes: usize| -> Datatype {
            match (signed, bytes) {
                (false, 1) => UInt8,
                (false, 2) => UInt16,
                (false, 4) => UInt32,
                (false, _) => UInt64,
                (true, 1) => Int8,
                (true, 2) => Int16,
                (true, 4) => Int32,
                (true, _) => Int64,
            }
        };
        Some(match (ka, kb) {
            _ if self == other => self,
            (2, 2) => {
                if sa.max(sb) == 8 {
                    Float64
                } else {
                    Float32
                }
            }
            (2, _) | (_, 2) => {
                let (fs, is) = if ka == 2 { (sa, sb) } else { (sb, sa) };
                if fs == 8 || is >= 4 { Float64 } else { Float32 }
            }
            (0, 0) => int(false, sa.max(sb)),
            (1, 1) => int(true, sa.max(sb)),
            _ => {
                let (us, ss) = if ka == 0 { (sa, sb) } else { (sb, sa) };
                if us >= 8 {
                    Float64
                } else if ss > us {
                    int(true, ss)
                } else {
                    int(true, us * 2)
                }
            }
        })
    }

    /// Bytes per value (1 for the string and byte types).
    pub fn size(self) -> usize {
        match self {
            Datatype::Int16 | Datatype::UInt16 => 2,
            Datatype::Int32 | Datatype::UInt32 | Datatype::Float32 => 4,
            Datatype::Int64 | Datatype::UInt64 | Datatype::Float64 => 8,
            _ => 1,
        }
    }

    /// Whether this is one of the eight integer types.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Datatype::Int8
                | Datatype::UInt8
                | Datatype::Int16
                | Datatype::UInt16
                | Datatype::Int32
                | Datatype::UInt32
                | Datatype::Int64
                | Datatype::UInt64
        )
    }

    /// Whether volumes may hold this type (integers and floats).
    pub fn is_voxel_type(self) -> bool {
        self.is_integer() || matches!(self, Datatype::Float32 | Datatype::Float64)
    }

    /// The NumPy dtype name (`"uint8"`, `"float32"`, ...), for voxel types.
    pub fn numpy_name(self) -> Option<&'static str> {
        Some(match self {
            Datatype::Int8 => "int8",
            Datatype::UInt8 => "uint8",
            Datatype::Int16 => "int16",
            Datatype::UInt16 => "uint16",
            Datatype::Int32 => "int32",
            Datatype::UInt32 => "uint32",
            Datatype::Int64 => "int64",
            Datatype::UInt64 => "uint64",
            Datatype::Float32 => "float32",
            Datatype::Float64 => "float64",
            Datatype::Bool => "bool",
            _ => return None,
        })
    }

    /// Parses a NumPy dtype name (`"float32"`, `"<f4"`, `"u1"`, ...) into a voxel type.
    pub fn from_numpy_name(name: &str) -> Option<Datatype> {
        let n = name.trim_start_matches(['<', '>', '=', '|']);
        Some(match n {
            "int8" | "i1" | "b" => Datatype::Int8,
            "uint8" | "u1" | "B" => Datatype::UInt8,
            "int16" | "i2" | "h" => Datatype::Int16,
            "uint16" | "u2" | "H" => Datatype::UInt16,
            "int32" | "i4" | "i" => Datatype::Int32,
            "uint32" | "u4" | "I" => Datatype::UInt32,
            "int64" | "i8" | "l" | "q" => Datatype::Int64,
            "uint64" | "u8" | "L" | "Q" => Datatype::UInt64,
            "float32" | "f4" | "f" => Datatype::Float32,
            "float64" | "f8" | "d" => Datatype::Float64,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Datatype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.numpy_name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{self:?}"),
        }
    }
}

/// Cell order of a schema, or result order of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Layout {
    /// C order: the last dimension varies fastest.
    RowMajor,
    /// Fortran order: the first dimension varies fastest.
    ColMajor,
    /// TileDB's global order (sparse reads).
    GlobalOrder,
    /// No particular order (sparse writes).
    Unordered,
}

/// A Rust element type that maps to one TileDB voxel datatype.
pub trait Element: bytemuck::Pod + Send + Sync + 'static {
    /// The TileDB datatype of this element type.
    const DATATYPE: Datatype;
}

macro_rules! element {
    ($($t:ty => $d:ident),* $(,)?) => {
        $(impl Element for $t { const DATATYPE: Datatype = Datatype::$d; })*
    };
}

element!(
    i8 => Int8, u8 => UInt8, i16 => Int16, u16 => UInt16, i32 => Int32, u32 => UInt32,
    i64 => Int64, u64 => UInt64, f32 => Float32, f64 => Float64,
);

/// Views a slice of voxels as raw bytes (for reading into caller-provided buffers).
pub fn as_bytes_mut<T: Element>(s: &mut [T]) -> &mut [u8] {
    bytemuck::cast_slice_mut(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_follows_numpy() {
        use Datatype::*;
        for (a, b, want) in [
            (UInt8, Int16, Int16),
            (UInt8, Int8, Int16),
            (UInt16, Int16, Int32),
            (UInt32, Int32, Int64),
            (UInt64, Int64, Float64),
            (Int16, Float32, Float32),
            (Int32, Float32, Float64),
            (UInt8, Float32, Float32),
            (Float32, Float64, Float64),
            (Int8, Int64, Int64),
            (UInt8, UInt16, UInt16),
            (Float32, Float32, Float32),
        ] {
            assert_eq!(a.promote(b), Some(want), "{a:?}+{b:?}");
            assert_eq!(b.promote(a), Some(want), "{b:?}+{a:?}");
        }
        assert_eq!(Char.promote(Int8), None);
    }

    #[test]
    fn numpy_names_round_trip() {
        for d in [
            Datatype::Int8,
            Datatype::UInt8,
            Datatype::Int16,
            Datatype::UInt16,
            Datatype::Int32,
            Datatype::UInt32,
            Datatype::Int64,
            Datatype::UInt64,
            Datatype::Float32,
            Datatype::Float64,
        ] {
            let name = d.numpy_name().unwrap();
            assert_eq!(Datatype::from_numpy_name(name), Some(d));
            assert!(d.is_voxel_type());
        }
        assert_eq!(Datatype::from_numpy_name("<f4"), Some(Datatype::Float32));
        assert_eq!(Datatype::from_numpy_name("complex64"), None);
        assert!(!Datatype::StringUtf8.is_voxel_type());
    }
}
