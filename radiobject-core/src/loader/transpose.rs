//! Fortran-order to C-order copies: volumes are read x-fastest (as NIfTI stores them), training
//! batches are C-contiguous `(B, C, X, Y, Z)` tensors (as torch expects them).

use crate::dtype::Datatype;
use crate::region::copy_box_f_to_c_map;

/// Copies the Fortran-ordered array `src` of shape `dims` into `dst` in C order (same shape).
#[cfg(test)]
pub(crate) fn fortran_to_c<T: Copy>(src: &[T], dims: &[usize], dst: &mut [T]) {
    fortran_to_c_map(src, dims, dst, |v| v);
}

/// Copies the Fortran-ordered array `src` of shape `dims` into `dst` in C order, converting each
/// element with `f` (e.g. `i16 as f32`).
pub(crate) fn fortran_to_c_map<S: Copy, D>(src: &[S], dims: &[usize], dst: &mut [D], f: impl Fn(S) -> D + Copy) {
    let zero = vec![0; dims.len()];
    copy_box_f_to_c_map(src, dims, &zero, dst, dims, &zero, dims, f);
}

/// Transposes `src` (Fortran order, `from` voxels) into `dst` (C order, `to` voxels), converting
/// each value as Rust's `as` does (the loader only converts to a promoted type, which holds every
/// value; equal types copy unchanged). Returns false for a misaligned buffer or a non-voxel type.
pub(crate) fn fortran_to_c_convert(from: Datatype, src: &[u8], dims: &[usize], to: Datatype, dst: &mut [u8]) -> bool {
    crate::with_voxel_type!(from, S => {
        crate::with_voxel_type!(to, D => {
            match (bytemuck::try_cast_slice::<u8, S>(src), bytemuck::try_cast_slice_mut::<u8, D>(dst)) {
                (Ok(s), Ok(d)) => {
                    #[allow(clippy::cast_lossless, clippy::unnecessary_cast)]
                    fortran_to_c_map(s, dims, d, |v| v as D);
                    true
                }
                _ => false,
            }
        }, _ => false)
    }, _ => false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(src: &[u32], dims: &[usize]) -> Vec<u32> {
        // dst[C index of (i0..in)] = src[F index of the same]
        let total: usize = dims.iter().product();
        let mut out = vec![0; total];
        for (f, &v) in src.iter().enumerate() {
            let mut rem = f;
            let mut coords = vec![0; dims.len()];
            for (k, &d) in dims.iter().enumerate() {
                coords[k] = rem % d;
                rem /= d;
            }
            let c = coords.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i);
            out[c] = v;
        }
        out
    }

    #[test]
    fn matches_the_definition_for_many_shapes() {
        for dims in [
            vec![5],
            vec![3, 4],
            vec![17, 33],
            vec![4, 1, 6],
            vec![1, 1, 1],
            vec![7, 5, 3],
            vec![33, 17, 19],
            vec![2, 3, 4, 5],
            vec![20, 1, 18, 3],
        ] {
            let total: usize = dims.iter().product();
            let src: Vec<u32> = (0..total as u32).map(|v| v.wrapping_mul(2_654_435_761)).collect();
            let mut dst = vec![0; total];
            fortran_to_c(&src, &dims, &mut dst);
            assert_eq!(dst, reference(&src, &dims), "dims {dims:?}");
        }
    }

    #[test]
    fn same_type_conversion_is_a_plain_transpose() {
        let src: Vec<u64> = (0..24).collect();
        let mut dst = vec![0u64; 24];
        assert!(fortran_to_c_convert(
            Datatype::UInt64,
            bytemuck::cast_slice(&src),
            &[2, 3, 4],
            Datatype::UInt64,
            bytemuck::cast_slice_mut(&mut dst)
        ));
        let mut want = vec![0u64; 24];
        fortran_to_c(&src, &[2, 3, 4], &mut want);
        assert_eq!(dst, want);
        assert!(!fortran_to_c_convert(Datatype::Char, &[0; 3], &[3], Datatype::UInt8, &mut [0; 3]));
    }

    #[test]
    fn converting_transpose() {
        let src: Vec<i16> = (0..24).map(|v| v * 3 - 30).collect();
        let mut dst = vec![0f32; 24];
        assert!(fortran_to_c_convert(
            Datatype::Int16,
            bytemuck::cast_slice(&src),
            &[2, 3, 4],
            Datatype::Float32,
            bytemuck::cast_slice_mut(&mut dst)
        ));
        let mut want = vec![0i16; 24];
        fortran_to_c(&src, &[2, 3, 4], &mut want);
        assert_eq!(dst, want.iter().map(|&v| f32::from(v)).collect::<Vec<_>>());
    }
}
