//! Linear value scaling (NIfTI `scl_slope`/`scl_inter`, DICOM `RescaleSlope`/`RescaleIntercept`)
//! with the dtype rule that keeps integer data integer where it can.
//!
//! The rule, shared by both readers:
//! * every segment has slope 1 and intercept 0: the raw array, raw dtype;
//! * integer input, every slope and intercept integral, and every scaled value fits `int16`
//!   (else `int32`): that signed integer type. CT stored as `uint16` with intercept -1024 becomes
//!   `int16` Hounsfield units;
//! * otherwise floats: `float32` for 8- and 16-bit integers and `float32` input, `float64` for
//!   32- and 64-bit integers (which `float32` cannot hold exactly) and `float64` input. Values are
//!   computed in `f64` as `raw * slope + inter`, then rounded once.

use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::volume::VolumeData;

/// `value * slope + inter`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Linear {
    pub slope: f64,
    pub inter: f64,
}

impl Linear {
    pub const IDENTITY: Linear = Linear { slope: 1.0, inter: 0.0 };

    fn is_identity(self) -> bool {
        self.slope == 1.0 && self.inter == 0.0
    }

    fn is_integral(self) -> bool {
        self.slope.is_finite()
            && self.inter.is_finite()
            && self.slope.fract() == 0.0
            && self.inter.fract() == 0.0
            && self.slope.abs() < 9.0e15
            && self.inter.abs() < 9.0e15
    }
}

/// A raw sample type read from an image file.
pub(crate) trait Sample: bytemuck::Pod + Default + PartialOrd + Send + Sync + 'static {
    /// Integer value, `None` for floats.
    fn to_i128(self) -> Option<i128>;
    /// Value as `f64`.
    fn to_f64(self) -> f64;
    /// Whether scaled floats of this type need `f64` (32/64-bit integers, `f64`).
    const WIDE: bool;
    /// Reverses the byte order in place.
    fn swap(&mut self);
    /// Wraps an array of this type.
    fn wrap(a: ArrayD<Self>) -> VolumeData;
}

macro_rules! int_sample {
    ($($t:ty => $v:ident, $wide:expr);* $(;)?) => {$(
        impl Sample for $t {
            fn to_i128(self) -> Option<i128> { Some(self as i128) }
            fn to_f64(self) -> f64 { self as f64 }
            const WIDE: bool = $wide;
            fn swap(&mut self) { *self = self.swap_bytes() }
            fn wrap(a: ArrayD<Self>) -> VolumeData { VolumeData::$v(a) }
        }
    )*};
}

int_sample!(
    u8 => UInt8, false; i8 => Int8, false; u16 => UInt16, false; i16 => Int16, false;
    u32 => UInt32, true; i32 => Int32, true; u64 => UInt64, true; i64 => Int64, true;
);

impl Sample for f32 {
    fn to_i128(self) -> Option<i128> {
        None
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    const WIDE: bool = false;
    fn swap(&mut self) {
        *self = f32::from_bits(self.to_bits().swap_bytes());
    }
    fn wrap(a: ArrayD<Self>) -> VolumeData {
        VolumeData::Float32(a)
    }
}

impl Sample for f64 {
    fn to_i128(self) -> Option<i128> {
        None
    }
    fn to_f64(self) -> f64 {
        self
    }
    const WIDE: bool = true;
    fn swap(&mut self) {
        *self = f64::from_bits(self.to_bits().swap_bytes());
    }
    fn wrap(a: ArrayD<Self>) -> VolumeData {
        VolumeData::Float64(a)
    }
}

/// Builds a Fortran-order array of `shape` from `values` (x fastest).
pub(crate) fn fortran<T>(shape: &[usize], values: Vec<T>) -> Result<ArrayD<T>> {
    let n = values.len();
    ArrayD::from_shape_vec(IxDyn(shape).f(), values)
        .map_err(|e| Error::shape(format!("cannot shape {n} voxels as {shape:?}: {e}")))
}

/// Applies `segments` to `raw` (segment `i` covers `raw[i*seg_len .. (i+1)*seg_len]`; a single
/// segment may cover everything) and returns the array of `shape` in the dtype chosen by the rule
/// in the module docs.
pub(crate) fn scale<T: Sample>(raw: Vec<T>, shape: &[usize], segments: &[Linear]) -> Result<VolumeData> {
    if segments.iter().all(|s| s.is_identity()) {
        return Ok(T::wrap(fortran(shape, raw)?));
    }
    let seg_len = if segments.len() <= 1 { raw.len() } else { raw.len() / segments.len() }.max(1);
    if segments.len() > 1 && seg_len * segments.len() != raw.len() {
        return Err(Error::shape(format!(
            "{} scaling segments do not divide {} voxels evenly",
            segments.len(),
            raw.len()
        )));
    }
    let seg_of = |i: usize| segments.get(i).copied().unwrap_or(Linear::IDENTITY);

    if segments.iter().all(|s| s.is_integral())
        && let Some((lo, hi)) = integer_range(&raw, seg_len, &seg_of)
    {
        // Every result fits the target type and |inter| < 2^53, so every product `v * slope`
        // (bounded by the range's end points) fits i64, and so does every raw value that has one.
        let int = |v: T, s: Linear| v.to_i128().unwrap_or_default() as i64 * s.slope as i64 + s.inter as i64;
        if lo >= i128::from(i16::MIN) && hi <= i128::from(i16::MAX) {
            let out = map_values(&raw, seg_len, &seg_of, |v, s| int(v, s) as i16);
            return Ok(VolumeData::Int16(fortran(shape, out)?));
        }
        if lo >= i128::from(i32::MIN) && hi <= i128::from(i32::MAX) {
            let out = map_values(&raw, seg_len, &seg_of, |v, s| int(v, s) as i32);
            return Ok(VolumeData::Int32(fortran(shape, out)?));
        }
    }
    if T::WIDE {
        let out = map_values(&raw, seg_len, &seg_of, |v, s| v.to_f64() * s.slope + s.inter);
        Ok(VolumeData::Float64(fortran(shape, out)?))
    } else {
        let out = map_values(&raw, seg_len, &seg_of, |v, s| (v.to_f64() * s.slope + s.inter) as f32);
        Ok(VolumeData::Float32(fortran(shape, out)?))
    }
}

/// The range of integer-scaled values, `None` for float input.
fn integer_range<T: Sample>(raw: &[T], seg_len: usize, seg_of: &dyn Fn(usize) -> Linear) -> Option<(i128, i128)> {
    let mut lo = i128::MAX;
    let mut hi = i128::MIN;
    for (i, chunk) in raw.chunks(seg_len).enumerate() {
        let Some(first) = chunk.first() else { continue };
        let s = seg_of(i);
        let (cmin, cmax) =
            chunk.iter().fold((*first, *first), |(a, b), v| (if *v < a { *v } else { a }, if *v > b { *v } else { b }));
        let (cmin, cmax) = (cmin.to_i128()?, cmax.to_i128()?);
        let (slope, inter) = (s.slope as i128, s.inter as i128);
        let (a, b) = (cmin * slope + inter, cmax * slope + inter);
        lo = lo.min(a.min(b));
        hi = hi.max(a.max(b));
    }
    if lo > hi { Some((0, 0)) } else { Some((lo, hi)) }
}

/// `f(value, scaling of its segment)` for every value, in parallel blocks.
fn map_values<T: Sample, U: Copy + Default + Send>(
    raw: &[T],
    seg_len: usize,
    seg_of: &(dyn Fn(usize) -> Linear + Sync),
    f: impl Fn(T, Linear) -> U + Sync,
) -> Vec<U> {
    const BLOCK: usize = 1 << 16;
    let mut out = vec![U::default(); raw.len()];
    out.par_chunks_mut(BLOCK).zip(raw.par_chunks(BLOCK)).enumerate().for_each(|(block, (dst, src))| {
        let start = block * BLOCK;
        let mut i = 0;
        while i < src.len() {
            let seg = (start + i) / seg_len;
            let end = ((seg + 1) * seg_len - start).min(src.len());
            let s = seg_of(seg);
            for (d, v) in dst[i..end].iter_mut().zip(&src[i..end]) {
                *d = f(*v, s);
            }
            i = end;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lin(slope: f64, inter: f64) -> Linear {
        Linear { slope, inter }
    }

    #[test]
    fn identity_keeps_dtype() {
        let d = scale(vec![1u16, 2, 3, 4], &[2, 2, 1], &[Linear::IDENTITY]).unwrap();
        assert!(matches!(d, VolumeData::UInt16(_)));
    }

    #[test]
    fn ct_intercept_gives_int16() {
        let d = scale(vec![0u16, 1024, 4095, 2000], &[2, 2, 1], &[lin(1.0, -1024.0)]).unwrap();
        let VolumeData::Int16(a) = d else { panic!("{d:?}") };
        assert_eq!(a.as_slice_memory_order().unwrap(), &[-1024, 0, 3071, 976]);
    }

    #[test]
    fn large_range_gives_int32_then_float() {
        let d = scale(vec![0u16, 65535], &[2, 1, 1], &[lin(1.0, 10.0)]).unwrap();
        assert!(matches!(d, VolumeData::Int32(_)));
        let d = scale(vec![0u32, u32::MAX], &[2, 1, 1], &[lin(1.0, 10.0)]).unwrap();
        assert!(matches!(d, VolumeData::Float64(_)));
    }

    #[test]
    fn fractional_slope_gives_float32() {
        let d = scale(vec![1i16, 2], &[2, 1, 1], &[lin(0.5, 0.0)]).unwrap();
        let VolumeData::Float32(a) = d else { panic!() };
        assert_eq!(a.as_slice_memory_order().unwrap(), &[0.5, 1.0]);
        let d = scale(vec![1.0f64, 2.0], &[2, 1, 1], &[lin(2.0, 0.0)]).unwrap();
        assert!(matches!(d, VolumeData::Float64(_)));
        let d = scale(vec![1.0f32, 2.0], &[2, 1, 1], &[lin(2.0, 1.0)]).unwrap();
        assert!(matches!(d, VolumeData::Float32(_)));
    }

    #[test]
    fn per_segment_scaling() {
        let d = scale(vec![1u8, 2, 3, 4], &[2, 1, 2], &[lin(1.0, 0.0), lin(2.0, -1.0)]).unwrap();
        let VolumeData::Int16(a) = d else { panic!() };
        assert_eq!(a.as_slice_memory_order().unwrap(), &[1, 2, 5, 7]);
    }
}
