//! Regions of a volume, the tile grid, and Fortran-order box copies.

use crate::error::{Error, Result};

/// A box within a volume: one half-open range `start..stop` per axis, in voxel coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Region {
    ranges: Vec<(u64, u64)>,
}

impl Region {
    /// A region from `(start, stop)` pairs (half-open), one per axis.
    pub fn new(ranges: Vec<(u64, u64)>) -> Region {
        Region { ranges }
    }

    /// The whole of a volume of `shape`.
    pub fn full(shape: &[u64]) -> Region {
        Region { ranges: shape.iter().map(|&n| (0, n)).collect() }
    }

    /// The `(start, stop)` pairs.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.ranges.len()
    }

    /// Extent along each axis.
    pub fn shape(&self) -> Vec<u64> {
        self.ranges.iter().map(|&(a, b)| b.saturating_sub(a)).collect()
    }

    /// Number of voxels.
    pub fn num_cells(&self) -> u64 {
        self.shape().iter().product()
    }

    /// Whether this region covers the whole of `shape`.
    pub fn is_full(&self, shape: &[u64]) -> bool {
        self.ranges.len() == shape.len() && self.ranges.iter().zip(shape).all(|(&(a, b), &n)| a == 0 && b == n)
    }

    /// Checks that the region has one non-empty range per axis, all inside `shape`.
    pub fn check_within(&self, shape: &[u64]) -> Result<()> {
        if self.ranges.len() != shape.len() {
            return Err(Error::region(format!(
                "region has {} axes but the volume has {} (shape {shape:?})",
                self.ranges.len(),
                shape.len()
            )));
        }
        for (axis, (&(a, b), &n)) in self.ranges.iter().zip(shape).enumerate() {
            if a >= b {
                return Err(Error::region(format!(
                    "empty region: axis {axis} selects {a}..{b}, which holds no voxel (shape {shape:?})"
                )));
            }
            if b > n {
                return Err(Error::region(format!(
                    "region out of bounds: axis {axis} selects {a}..{b} but the volume has {n} voxels there (shape {shape:?})"
                )));
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.ranges.iter().map(|(a, b)| format!("{a}:{b}")).collect();
        write!(f, "[{}]", parts.join(", "))
    }
}

/// The regular tile grid of a dense array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TileGrid {
    pub shape: Vec<u64>,
    pub extents: Vec<u64>,
    ntiles: Vec<u64>,
}

impl TileGrid {
    pub(crate) fn new(shape: &[u64], extents: &[u64]) -> TileGrid {
        let ntiles = shape.iter().zip(extents).map(|(&n, &e)| n.div_ceil(e.max(1))).collect();
        TileGrid { shape: shape.to_vec(), extents: extents.to_vec(), ntiles }
    }

    /// Linear (Fortran-order) index of a tile.
    pub(crate) fn linear(&self, coords: &[u64]) -> u64 {
        let mut idx = 0;
        for d in (0..coords.len()).rev() {
            idx = idx * self.ntiles[d] + coords[d];
        }
        idx
    }

    /// The voxel box covered by a tile, clipped to the array.
    pub(crate) fn tile_box(&self, coords: &[u64]) -> Vec<(u64, u64)> {
        coords
            .iter()
            .enumerate()
            .map(|(d, &c)| {
                let a = c * self.extents[d];
                (a, (a + self.extents[d]).min(self.shape[d]))
            })
            .collect()
    }

    /// Range of tile coordinates along each axis that `region` touches (half-open).
    pub(crate) fn tile_span(&self, region: &Region) -> Vec<(u64, u64)> {
        region
            .ranges()
            .iter()
            .enumerate()
            .map(|(d, &(a, b))| (a / self.extents[d], (b - 1) / self.extents[d] + 1))
            .collect()
    }

    /// Coordinates of every tile `region` touches, Fortran order (axis 0 fastest).
    pub(crate) fn tiles_overlapping(&self, region: &Region) -> Vec<Vec<u64>> {
        boxes_in(&self.tile_span(region))
    }

    /// Bytes of all tiles `region` touches (each clipped to the array), for `elem`-byte cells.
    pub(crate) fn footprint_bytes(&self, region: &Region, elem: usize) -> u64 {
        self.tile_span(region)
            .iter()
            .enumerate()
            .map(|(d, &(a, b))| (b * self.extents[d]).min(self.shape[d]) - a * self.extents[d])
            .product::<u64>()
            * elem as u64
    }
}

/// Every integer point of a box of half-open ranges, Fortran order.
pub(crate) fn boxes_in(span: &[(u64, u64)]) -> Vec<Vec<u64>> {
    let count: u64 = span.iter().map(|&(a, b)| b - a).product();
    let mut out = Vec::with_capacity(count as usize);
    if count == 0 {
        return out;
    }
    let mut cur: Vec<u64> = span.iter().map(|&(a, _)| a).collect();
    loop {
        out.push(cur.clone());
        let mut d = 0;
        loop {
            if d == cur.len() {
                return out;
            }
            cur[d] += 1;
            if cur[d] < span[d].1 {
                break;
            }
            cur[d] = span[d].0;
            d += 1;
        }
    }
}

/// Intersection of two boxes, or None if they do not overlap.
pub(crate) fn intersect(a: &[(u64, u64)], b: &[(u64, u64)]) -> Option<Vec<(u64, u64)>> {
    let out: Vec<(u64, u64)> = a.iter().zip(b).map(|(&(a0, a1), &(b0, b1))| (a0.max(b0), a1.min(b1))).collect();
    out.iter().all(|&(x, y)| x < y).then_some(out)
}

/// Copies the part of a Fortran-ordered tile (covering `tile_box`) that lies inside `dst_box`
/// into `dst`, a buffer of `dst_box` in Fortran or (transposing) C order; nothing when they do not
/// overlap. Boxes are half-open voxel ranges in the same coordinates.
pub(crate) fn copy_tile_part(
    elem: usize,
    tile: &[u8],
    tile_box: &[(u64, u64)],
    dst: &mut [u8],
    dst_box: &[(u64, u64)],
    c_order: bool,
) {
    let Some(inter) = intersect(tile_box, dst_box) else { return };
    let len = |b: &[(u64, u64)]| -> Vec<usize> { b.iter().map(|&(a, z)| (z - a) as usize).collect() };
    let off = |b: &[(u64, u64)]| -> Vec<usize> { inter.iter().zip(b).map(|(x, o)| (x.0 - o.0) as usize).collect() };
    let copy = if c_order { copy_box_f_to_c } else { copy_box };
    copy(elem, tile, &len(tile_box), &off(tile_box), dst, &len(dst_box), &off(dst_box), &len(&inter));
}

/// Copies the sub-box `ext` at `src_off` of a Fortran-ordered `src` of `src_shape` to `dst_off` of
/// a Fortran-ordered `dst` of `dst_shape`; `elem` bytes per cell. Up to 4 axes.
///
/// Axes along which both boxes are copied whole are merged into one contiguous run.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_box(
    elem: usize,
    src: &[u8],
    src_shape: &[usize],
    src_off: &[usize],
    dst: &mut [u8],
    dst_shape: &[usize],
    dst_off: &[usize],
    ext: &[usize],
) {
    let n = ext.len();
    debug_assert!(n <= 4 && src_shape.len() == n && dst_shape.len() == n);
    let pad = |v: &[usize], fill: usize| -> [usize; 4] {
        let mut a = [fill; 4];
        a[..n].copy_from_slice(v);
        a
    };
    let (ss, so, ds, dof, e) = (pad(src_shape, 1), pad(src_off, 0), pad(dst_shape, 1), pad(dst_off, 0), pad(ext, 1));
    // Strides in cells.
    let sstr = [1, ss[0], ss[0] * ss[1], ss[0] * ss[1] * ss[2]];
    let dstr = [1, ds[0], ds[0] * ds[1], ds[0] * ds[1] * ds[2]];
    // Merge leading axes copied whole in both boxes.
    let mut run = e[0];
    let mut k = 1;
    while k < 4 && e[k - 1] == ss[k - 1] && e[k - 1] == ds[k - 1] {
        run *= e[k];
        k += 1;
    }
    let run_bytes = run * elem;
    let base_s: usize = (0..4).map(|d| so[d] * sstr[d]).sum();
    let base_d: usize = (0..4).map(|d| dof[d] * dstr[d]).sum();
    // Iterate over the remaining axes k..4.
    let mut idx = [0usize; 4];
    loop {
        let s = (base_s + (k..4).map(|d| idx[d] * sstr[d]).sum::<usize>()) * elem;
        let d = (base_d + (k..4).map(|d| idx[d] * dstr[d]).sum::<usize>()) * elem;
        dst[d..d + run_bytes].copy_from_slice(&src[s..s + run_bytes]);
        let mut a = k;
        loop {
            if a >= 4 {
                return;
            }
            idx[a] += 1;
            if idx[a] < e[a] {
                break;
            }
            idx[a] = 0;
            a += 1;
        }
    }
}

/// Block edge of the transposing copies, in elements (a 16×16 block of 8-byte elements is 2 KiB
/// per side, well inside L1).
const BLOCK: usize = 16;

/// Copies the box `ext` at `src_off` of the Fortran-ordered array `src` (shape `src_shape`) into
/// the box at `dst_off` of the C-ordered array `dst` (shape `dst_shape`), converting each element
/// with `f`. Axes of extent 1 are fixed; of the others, the first (contiguous in the source) and
/// the last (contiguous in the destination) are copied in blocks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_box_f_to_c_map<S: Copy, D>(
    src: &[S],
    src_shape: &[usize],
    src_off: &[usize],
    dst: &mut [D],
    dst_shape: &[usize],
    dst_off: &[usize],
    ext: &[usize],
    f: impl Fn(S) -> D + Copy,
) {
    let n = ext.len();
    let mut sstr = vec![1usize; n];
    for k in 1..n {
        sstr[k] = sstr[k - 1] * src_shape[k - 1];
    }
    let mut dstr = vec![1usize; n];
    for k in (0..n.saturating_sub(1)).rev() {
        dstr[k] = dstr[k + 1] * dst_shape[k + 1];
    }
    let base_s: usize = (0..n).map(|k| src_off[k] * sstr[k]).sum();
    let base_d: usize = (0..n).map(|k| dst_off[k] * dstr[k]).sum();
    let axes: Vec<usize> = (0..n).filter(|&k| ext[k] > 1).collect();
    match axes.as_slice() {
        [] => {
            if ext.iter().all(|&e| e == 1) {
                dst[base_d] = f(src[base_s]);
            }
        }
        &[k] => {
            for i in 0..ext[k] {
                dst[base_d + i * dstr[k]] = f(src[base_s + i * sstr[k]]);
            }
        }
        &[a0, .., al] => {
            let middle = &axes[1..axes.len() - 1];
            let mut idx = vec![0usize; middle.len()];
            loop {
                let s_off = base_s + middle.iter().zip(&idx).map(|(&m, &i)| i * sstr[m]).sum::<usize>();
                let d_off = base_d + middle.iter().zip(&idx).map(|(&m, &i)| i * dstr[m]).sum::<usize>();
                for b0 in (0..ext[a0]).step_by(BLOCK) {
                    let e0 = (b0 + BLOCK).min(ext[a0]);
                    for bl in (0..ext[al]).step_by(BLOCK) {
                        let el = (bl + BLOCK).min(ext[al]);
                        for i0 in b0..e0 {
                            let (s_row, d_row) = (s_off + i0 * sstr[a0], d_off + i0 * dstr[a0]);
                            if dstr[al] == 1 {
                                let row = &mut dst[d_row + bl..d_row + el];
                                for (j, d) in row.iter_mut().enumerate() {
                                    *d = f(src[s_row + (bl + j) * sstr[al]]);
                                }
                            } else {
                                for il in bl..el {
                                    dst[d_row + il * dstr[al]] = f(src[s_row + il * sstr[al]]);
                                }
                            }
                        }
                    }
                }
                let mut k = 0;
                loop {
                    if k == middle.len() {
                        return;
                    }
                    idx[k] += 1;
                    if idx[k] < ext[middle[k]] {
                        break;
                    }
                    idx[k] = 0;
                    k += 1;
                }
            }
        }
    }
}

/// [`copy_box_f_to_c_map`] on raw bytes of `elem`-byte elements (any alignment).
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_box_f_to_c(
    elem: usize,
    src: &[u8],
    src_shape: &[usize],
    src_off: &[usize],
    dst: &mut [u8],
    dst_shape: &[usize],
    dst_off: &[usize],
    ext: &[usize],
) {
    macro_rules! go {
        ($n:literal) => {
            copy_box_f_to_c_map(
                bytemuck::cast_slice::<u8, [u8; $n]>(src),
                src_shape,
                src_off,
                bytemuck::cast_slice_mut::<u8, [u8; $n]>(dst),
                dst_shape,
                dst_off,
                ext,
                |v| v,
            )
        };
    }
    match elem {
        1 => go!(1),
        2 => go!(2),
        4 => go!(4),
        8 => go!(8),
        16 => go!(16),
        _ => panic!("unsupported element size {elem}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposing_box_copies_match_the_definition() {
        // src F-order 5x4x3 (values = F index), copy box [1..4, 0..3, 1..3] into a C-order 3x3x2
        let ss = [5usize, 4, 3];
        let src: Vec<u32> = (0..60).collect();
        let mut dst = vec![0u32; 18];
        copy_box_f_to_c_map(&src, &ss, &[1, 0, 1], &mut dst, &[3, 3, 2], &[0, 0, 0], &[3, 3, 2], |v| v);
        for x in 0..3 {
            for y in 0..3 {
                for z in 0..2 {
                    let want = (x + 1) + 5 * (y + 4 * (z + 1));
                    assert_eq!(dst[(x * 3 + y) * 2 + z], want as u32, "({x},{y},{z})");
                }
            }
        }
        // a single axial plane (extent 1 on z) and a line
        let mut plane = vec![0u32; 20];
        copy_box_f_to_c_map(&src, &ss, &[0, 0, 2], &mut plane, &[5, 4, 1], &[0, 0, 0], &[5, 4, 1], |v| v);
        assert_eq!(plane[4 + 1], (1 + 5 * (1 + 4 * 2)) as u32);
        let mut bytes = vec![0u8; 18 * 4];
        copy_box_f_to_c(4, bytemuck::cast_slice(&src), &ss, &[1, 0, 1], &mut bytes, &[3, 3, 2], &[0, 0, 0], &[3, 3, 2]);
        assert_eq!(bytemuck::cast_slice::<u8, u32>(&bytes), dst.as_slice());
    }

    #[test]
    fn region_checks() {
        let shape = [10, 20, 30];
        Region::new(vec![(0, 10), (5, 6), (29, 30)]).check_within(&shape).unwrap();
        assert!(Region::new(vec![(0, 11), (0, 1), (0, 1)]).check_within(&shape).is_err());
        assert!(Region::new(vec![(3, 3), (0, 1), (0, 1)]).check_within(&shape).is_err());
        assert!(Region::new(vec![(0, 1), (0, 1)]).check_within(&shape).is_err());
        assert!(Region::full(&shape).is_full(&shape));
    }

    #[test]
    fn grid_enumerates_clipped_tiles() {
        let g = TileGrid::new(&[10, 10, 5], &[4, 10, 1]);
        let r = Region::new(vec![(3, 9), (0, 10), (4, 5)]);
        let tiles = g.tiles_overlapping(&r);
        assert_eq!(tiles, vec![vec![0, 0, 4], vec![1, 0, 4], vec![2, 0, 4]]);
        assert_eq!(g.tile_box(&[2, 0, 4]), vec![(8, 10), (0, 10), (4, 5)]);
        assert_eq!(g.footprint_bytes(&r, 4), 10 * 10 * 4);
        assert_ne!(g.linear(&[0, 0, 4]), g.linear(&[1, 0, 4]));
    }

    #[test]
    fn copy_box_matches_naive_indexing() {
        // src 5x4x3 F-order with value = linear index; copy sub-box into dst 6x6x6.
        let (sx, sy, sz) = (5usize, 4usize, 3usize);
        let src: Vec<u8> = (0..sx * sy * sz).map(|i| i as u8).collect();
        let mut dst = vec![0u8; 6 * 6 * 6];
        copy_box(1, &src, &[sx, sy, sz], &[1, 0, 1], &mut dst, &[6, 6, 6], &[2, 3, 0], &[3, 4, 2]);
        for i in 0..3 {
            for j in 0..4 {
                for k in 0..2 {
                    let s = (1 + i) + sx * (j + sy * (1 + k));
                    let d = (2 + i) + 6 * ((3 + j) + 6 * k);
                    assert_eq!(dst[d], src[s]);
                }
            }
        }
        // whole-box copy merges into a single run
        let mut whole = vec![0u8; src.len()];
        copy_box(1, &src, &[sx, sy, sz], &[0, 0, 0], &mut whole, &[sx, sy, sz], &[0, 0, 0], &[sx, sy, sz]);
        assert_eq!(whole, src);
    }
}
