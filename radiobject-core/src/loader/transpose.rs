//! Fortran-order to C-order copies: volumes are read x-fastest (as NIfTI stores them), training
//! batches are C-contiguous `(B, C, X, Y, Z)` tensors (as torch expects them).

use crate::dtype::Datatype;

/// Block edge of the 2D transposes, in elements: a 16×16 block of 8-byte elements is 2 KiB per
/// side, well inside L1.
const BLOCK: usize = 16;

/// Copies the Fortran-ordered array `src` of shape `dims` into `dst` in C order (same shape).
///
/// Axes of length 1 are dropped first, so a `(X, Y, 1)` slice is a plain 2D transpose and a line
/// is a plain copy. `src` and `dst` hold exactly `dims.iter().product()` elements.
pub(crate) fn fortran_to_c<T: Copy>(src: &[T], dims: &[usize], dst: &mut [T]) {
    fortran_to_c_map(src, dims, dst, |v| v);
}

/// [`fortran_to_c`] converting each element with `f` (e.g. `i16 as f32`).
pub(crate) fn fortran_to_c_map<S: Copy, D>(src: &[S], dims: &[usize], dst: &mut [D], f: impl Fn(S) -> D + Copy) {
    let dims: Vec<usize> = dims.iter().copied().filter(|&n| n != 1).collect();
    let n = dims.len();
    debug_assert_eq!(src.len(), dims.iter().product::<usize>());
    debug_assert_eq!(src.len(), dst.len());
    if n <= 1 {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = f(v);
        }
        return;
    }
    // Strides (in elements) of each axis in the source (F) and destination (C) layouts.
    let mut s = vec![1usize; n];
    for k in 1..n {
        s[k] = s[k - 1] * dims[k - 1];
    }
    let mut t = vec![1usize; n];
    for k in (0..n - 1).rev() {
        t[k] = t[k + 1] * dims[k + 1];
    }
    let (n0, nl) = (dims[0], dims[n - 1]);
    let middle = &dims[1..n - 1];
    let mut idx = vec![0usize; middle.len()];
    loop {
        let s_off: usize = idx.iter().enumerate().map(|(k, &i)| i * s[k + 1]).sum();
        let t_off: usize = idx.iter().enumerate().map(|(k, &i)| i * t[k + 1]).sum();
        transpose_2d(src, s_off, s[n - 1], dst, t_off, t[0], n0, nl, f);
        // Next middle index (any order: every combination is visited once).
        let mut k = 0;
        loop {
            if k == middle.len() {
                return;
            }
            idx[k] += 1;
            if idx[k] < middle[k] {
                break;
            }
            idx[k] = 0;
            k += 1;
        }
    }
}

/// `dst[t_off + i0 * t0 + il] = f(src[s_off + i0 + il * sl])` for `i0 < n0`, `il < nl`, blocked.
#[allow(clippy::too_many_arguments)]
#[inline]
fn transpose_2d<S: Copy, D>(
    src: &[S],
    s_off: usize,
    sl: usize,
    dst: &mut [D],
    t_off: usize,
    t0: usize,
    n0: usize,
    nl: usize,
    f: impl Fn(S) -> D + Copy,
) {
    for b0 in (0..n0).step_by(BLOCK) {
        let e0 = (b0 + BLOCK).min(n0);
        for bl in (0..nl).step_by(BLOCK) {
            let el = (bl + BLOCK).min(nl);
            for i0 in b0..e0 {
                let row = &mut dst[t_off + i0 * t0 + bl..t_off + i0 * t0 + el];
                let base = s_off + i0;
                for (j, d) in row.iter_mut().enumerate() {
                    *d = f(src[base + (bl + j) * sl]);
                }
            }
        }
    }
}

/// [`fortran_to_c`] on raw bytes of `elem`-byte elements. Both slices must be aligned to `elem`
/// (they come from typed allocations); returns false for an unsupported element size or a
/// misaligned buffer (never the case for the loader's buffers).
pub(crate) fn fortran_to_c_bytes(elem: usize, src: &[u8], dims: &[usize], dst: &mut [u8]) -> bool {
    macro_rules! typed {
        ($t:ty) => {{
            match (bytemuck::try_cast_slice::<u8, $t>(src), bytemuck::try_cast_slice_mut::<u8, $t>(dst)) {
                (Ok(s), Ok(d)) => {
                    fortran_to_c(s, dims, d);
                    true
                }
                _ => false,
            }
        }};
    }
    match elem {
        1 => {
            fortran_to_c(src, dims, dst);
            true
        }
        2 => typed!(u16),
        4 => typed!(u32),
        8 => typed!(u64),
        _ => false,
    }
}

/// Transposes `src` (Fortran order, `from` voxels) into `dst` (C order, `to` voxels), converting
/// each value as Rust's `as` does (the loader only converts to a promoted type, which holds every
/// value). Returns false for a misaligned buffer or a non-voxel type.
pub(crate) fn fortran_to_c_convert(from: Datatype, src: &[u8], dims: &[usize], to: Datatype, dst: &mut [u8]) -> bool {
    if from == to {
        return fortran_to_c_bytes(from.size(), src, dims, dst);
    }
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
    fn bytes_version_dispatches_on_element_size() {
        let src: Vec<u64> = (0..24).collect();
        let mut dst = vec![0u64; 24];
        assert!(fortran_to_c_bytes(8, bytemuck::cast_slice(&src), &[2, 3, 4], bytemuck::cast_slice_mut(&mut dst)));
        let mut want = vec![0u64; 24];
        fortran_to_c(&src, &[2, 3, 4], &mut want);
        assert_eq!(dst, want);
        assert!(!fortran_to_c_bytes(3, &[0; 3], &[1], &mut [0; 3]));
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
