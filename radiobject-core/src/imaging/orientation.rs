//! Orientation: axis codes of an affine and reorientation by axis permutation and flips.
//!
//! These follow nibabel's `io_orientation`, `aff2axcodes` and `as_closest_canonical` so that
//! the same file gives the same codes, the same array and the same affine in either library.

use std::str::FromStr;

use ndarray::{ArrayD, Axis, IxDyn, ShapeBuilder};

use crate::error::{Error, Result};
use crate::volume::VolumeData;

/// A 4×4 homogeneous affine, row-major: `affine[row][col]`.
pub type Affine = [[f64; 4]; 4];

/// The orientation volumes can be reoriented to (the reference's `canonical_target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// x → Right, y → Anterior, z → Superior (nibabel's canonical orientation).
    Ras,
    /// x → Left, y → Anterior, z → Superior (RAS with x flipped).
    Las,
    /// x → Left, y → Posterior, z → Superior (DICOM's patient axes; RAS with x and y flipped).
    Lps,
}

impl Target {
    /// The three-letter code: `"RAS"`, `"LAS"` or `"LPS"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Ras => "RAS",
            Target::Las => "LAS",
            Target::Lps => "LPS",
        }
    }

    /// Which of the RAS axes are flipped to reach this target.
    fn flips(self) -> [bool; 3] {
        match self {
            Target::Ras => [false, false, false],
            Target::Las => [true, false, false],
            Target::Lps => [true, true, false],
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Target {
    type Err = Error;

    /// Parses `RAS`, `LAS` or `LPS` (case-insensitive).
    fn from_str(s: &str) -> Result<Target> {
        match s.to_ascii_uppercase().as_str() {
            "RAS" => Ok(Target::Ras),
            "LAS" => Ok(Target::Las),
            "LPS" => Ok(Target::Lps),
            _ => Err(Error::Config(format!("orientation target must be RAS, LAS or LPS, got {s:?}"))),
        }
    }
}

/// For each input (voxel) axis: the output (world) axis it maps to and its direction (+1/-1), or
/// `None` when the axis has no direction (a zero column). nibabel's `io_orientation`.
pub(crate) type Ornt = [Option<(usize, f64)>; 3];

/// nibabel's `io_orientation`: the world axis closest to each voxel axis, found on the closest
/// orthogonal matrix to the affine's normalised rotation-zoom part (its polar decomposition),
/// choosing greedily by largest absolute component.
pub(crate) fn io_orientation(affine: &Affine) -> Ornt {
    // RZS with unit columns (zero columns stay zero).
    let mut rs = [[0.0f64; 3]; 3];
    for c in 0..3 {
        let mut zoom = (0..3).map(|r| affine[r][c] * affine[r][c]).sum::<f64>().sqrt();
        if zoom == 0.0 {
            zoom = 1.0;
        }
        for r in 0..3 {
            rs[r][c] = affine[r][c] / zoom;
        }
    }
    let mut r = polar_orthogonal(&rs);
    let mut ornt: Ornt = [None; 3];
    for (in_ax, slot) in ornt.iter_mut().enumerate() {
        let col = [r[0][in_ax], r[1][in_ax], r[2][in_ax]];
        // np.allclose(col, 0): |x| <= 1e-8
        if col.iter().all(|v| v.abs() <= 1e-8) {
            continue;
        }
        let mut out_ax = 0;
        for k in 1..3 {
            if col[k].abs() > col[out_ax].abs() {
                out_ax = k;
            }
        }
        *slot = Some((out_ax, if col[out_ax] < 0.0 { -1.0 } else { 1.0 }));
        r[out_ax] = [0.0; 3];
    }
    ornt
}

/// The orthogonal factor `U_k V_kᵀ` of the SVD of `a`, keeping singular values above numpy's
/// default rank tolerance (`S.max() * 3 * eps`), as nibabel computes it.
fn polar_orthogonal(a: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    // One-sided Jacobi: rotate columns of U = A·V until they are mutually orthogonal.
    let mut u = *a;
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..60 {
        let mut rotated = false;
        for p in 0..2 {
            for q in p + 1..3 {
                let alpha: f64 = (0..3).map(|i| u[i][p] * u[i][p]).sum();
                let beta: f64 = (0..3).map(|i| u[i][q] * u[i][q]).sum();
                let gamma: f64 = (0..3).map(|i| u[i][p] * u[i][q]).sum();
                if gamma.abs() <= f64::EPSILON * (alpha * beta).sqrt() || gamma == 0.0 {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let t = if zeta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for row in u.iter_mut().chain(v.iter_mut()) {
                    let (x, y) = (row[p], row[q]);
                    row[p] = c * x - s * y;
                    row[q] = s * x + c * y;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let sigma: [f64; 3] = std::array::from_fn(|k| (0..3).map(|i| u[i][k] * u[i][k]).sum::<f64>().sqrt());
    let smax = sigma.iter().copied().fold(0.0, f64::max);
    let tol = smax * 3.0 * f64::EPSILON;
    let mut out = [[0.0; 3]; 3];
    for k in 0..3 {
        if sigma[k] <= tol {
            continue;
        }
        for i in 0..3 {
            for j in 0..3 {
                out[i][j] += u[i][k] / sigma[k] * v[j][k];
            }
        }
    }
    out
}

/// The anatomical axis codes of an affine, like nibabel's `aff2axcodes`: for each voxel axis the
/// world direction it points to, `R`/`L`, `A`/`P`, `S`/`I` (e.g. `"RAS"`, `"LPS"`). An axis
/// without direction (zero column) gets `?` where nibabel gives `None`.
pub fn axcodes(affine: &Affine) -> String {
    ornt_codes(&io_orientation(affine))
}

/// The two codes of each world axis: (negative, positive) direction of x, y, z.
const LABELS: [(char, char); 3] = [('L', 'R'), ('P', 'A'), ('I', 'S')];

/// Whether `codes` are three axis codes naming each world axis once (`"RAS"`, `"PIL"`...).
pub fn axcodes_valid(codes: &[&str]) -> bool {
    let mut seen = [false; 3];
    codes.len() == 3
        && codes.iter().all(|c| {
            let mut chars = c.chars();
            let (Some(ch), None) = (chars.next(), chars.next()) else { return false };
            match LABELS.iter().position(|&(neg, pos)| ch == neg || ch == pos) {
                Some(axis) if !seen[axis] => {
                    seen[axis] = true;
                    true
                }
                _ => false,
            }
        })
}

fn ornt_codes(ornt: &Ornt) -> String {
    ornt.iter()
        .map(|o| match o {
            Some((ax, dir)) => {
                if *dir > 0.0 {
                    LABELS[*ax].1
                } else {
                    LABELS[*ax].0
                }
            }
            None => '?',
        })
        .collect()
}

/// Whether an affine is the identity within numpy's `allclose(atol=1e-6)` (rtol 1e-5), the test
/// the reference uses to call an orientation unknown.
pub(crate) fn is_identity(affine: &Affine) -> bool {
    (0..4).all(|r| {
        (0..4).all(|c| {
            let id = if r == c { 1.0 } else { 0.0 };
            (affine[r][c] - id).abs() <= 1e-6 + 1e-5 * f64::abs(id)
        })
    })
}

/// `a · b` for 4×4 matrices, summed left to right from the first product like `numpy.dot`
/// (so that the signs of zeros, which `json.dumps` prints, come out the same).
pub(crate) fn matmul(a: &Affine, b: &Affine) -> Affine {
    std::array::from_fn(|r| {
        std::array::from_fn(|c| a[r][0] * b[0][c] + a[r][1] * b[1][c] + a[r][2] * b[2][c] + a[r][3] * b[3][c])
    })
}

/// Reorients `data` to `target` by permuting and flipping the spatial axes only (no resampling),
/// and returns the new data (Fortran order) with the affine that maps its voxels to the same
/// world positions.
///
/// This is nibabel's `as_closest_canonical` (for RAS) followed by the reference's flips of x (LAS)
/// or x and y (LPS). A 4th (time) axis is carried along unchanged. Data already in the target
/// orientation is returned as it is. An affine with an axis that has no direction (a zero
/// column) is left alone, as nibabel refuses it.
pub fn reorient(data: VolumeData, affine: Affine, target: Target) -> (VolumeData, Affine) {
    let ornt = io_orientation(&affine);
    let Some(plan) = plan_for(&ornt, target) else {
        return (data, affine);
    };
    if plan.iter().enumerate().all(|(i, (ax, flip))| *ax == i && !*flip) {
        return (data, affine);
    }
    let shape = data.shape().to_vec();
    let new_affine = matmul(&affine, &inv_ornt_aff(&plan, &shape));
    let new_data = apply_plan(data, &plan);
    (new_data, new_affine)
}

/// For each input axis: the output axis and whether it is flipped, combining the RAS
/// orientation with the target's extra flips. `None` if an axis has no direction.
fn plan_for(ornt: &Ornt, target: Target) -> Option<[(usize, bool); 3]> {
    let flips = target.flips();
    let mut plan = [(0usize, false); 3];
    for (i, o) in ornt.iter().enumerate() {
        let (ax, dir) = (*o)?;
        plan[i] = (ax, (dir < 0.0) ^ flips[ax]);
    }
    Some(plan)
}

/// nibabel's `inv_ornt_aff`: the affine from reoriented voxel indices to original ones.
fn inv_ornt_aff(plan: &[(usize, bool); 3], shape: &[usize]) -> Affine {
    let mut m = [[0.0; 4]; 4];
    m[3][3] = 1.0;
    for (i, (ax, flip)) in plan.iter().enumerate() {
        let extent = shape.get(i).copied().unwrap_or(1) as f64;
        if *flip {
            m[i][*ax] = -1.0;
            m[i][3] = extent - 1.0;
        } else {
            m[i][*ax] = 1.0;
        }
    }
    m
}

fn apply_plan(data: VolumeData, plan: &[(usize, bool); 3]) -> VolumeData {
    fn go<T: Clone + Default>(a: ArrayD<T>, plan: &[(usize, bool); 3]) -> ArrayD<T> {
        let ndim = a.ndim();
        let mut view = a.view();
        for (i, (_, flip)) in plan.iter().enumerate() {
            if *flip {
                view.invert_axis(Axis(i));
            }
        }
        // New axis j takes the input axis whose output axis is j; time stays last.
        let mut perm: Vec<usize> = (0..ndim).collect();
        for (i, (ax, _)) in plan.iter().enumerate() {
            perm[*ax] = i;
        }
        let view = view.permuted_axes(IxDyn(&perm));
        let mut out = ArrayD::<T>::default(IxDyn(view.shape()).f());
        out.assign(&view);
        out
    }
    match data {
        VolumeData::Int8(a) => VolumeData::Int8(go(a, plan)),
        VolumeData::UInt8(a) => VolumeData::UInt8(go(a, plan)),
        VolumeData::Int16(a) => VolumeData::Int16(go(a, plan)),
        VolumeData::UInt16(a) => VolumeData::UInt16(go(a, plan)),
        VolumeData::Int32(a) => VolumeData::Int32(go(a, plan)),
        VolumeData::UInt32(a) => VolumeData::UInt32(go(a, plan)),
        VolumeData::Int64(a) => VolumeData::Int64(go(a, plan)),
        VolumeData::UInt64(a) => VolumeData::UInt64(go(a, plan)),
        VolumeData::Float32(a) => VolumeData::Float32(go(a, plan)),
        VolumeData::Float64(a) => VolumeData::Float64(go(a, plan)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn axcodes_name_each_world_axis_once() {
        for ok in [["R", "A", "S"], ["L", "P", "S"], ["P", "I", "L"]] {
            assert!(super::axcodes_valid(&ok), "{ok:?}");
        }
        for bad in [
            &["R", "L", "S"][..],
            &["R", "A"],
            &["R", "A", "S", "S"],
            &["R", "A", "X"],
            &["RA", "S", "I"],
            &["?", "A", "S"],
        ] {
            assert!(!super::axcodes_valid(bad), "{bad:?}");
        }
    }

    use super::*;

    fn diag(x: f64, y: f64, z: f64) -> Affine {
        [[x, 0.0, 0.0, 0.0], [0.0, y, 0.0, 0.0], [0.0, 0.0, z, 0.0], [0.0, 0.0, 0.0, 1.0]]
    }

    #[test]
    fn codes_of_simple_affines() {
        assert_eq!(axcodes(&diag(1.0, 1.0, 1.0)), "RAS");
        assert_eq!(axcodes(&diag(-1.0, 1.0, 1.0)), "LAS");
        assert_eq!(axcodes(&diag(-1.0, -1.0, 1.0)), "LPS");
        // Axes swapped: voxel x runs along world y (posterior), voxel y along world x.
        let a = [[0.0, 2.0, 0.0, 0.0], [-3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        assert_eq!(axcodes(&a), "PRS");
        // A zero column has no direction.
        assert_eq!(axcodes(&diag(1.0, 0.0, 1.0)), "R?S");
    }

    #[test]
    fn rotated_affine_picks_closest_axes() {
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let a = [[c, -s, 0.0, 0.0], [s, c, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        assert_eq!(axcodes(&a), "RAI");
    }

    #[test]
    fn reorient_round_trip_and_affine() {
        let data: ArrayD<i16> =
            ArrayD::from_shape_fn(IxDyn(&[3, 4, 5]).f(), |i| (i[0] * 100 + i[1] * 10 + i[2]) as i16);
        let affine = [[0.0, 0.0, -2.0, 10.0], [-1.0, 0.0, 0.0, 20.0], [0.0, 3.0, 0.0, 30.0], [0.0, 0.0, 0.0, 1.0]];
        assert_eq!(axcodes(&affine), "PSL");
        let (ras, ras_aff) = reorient(VolumeData::Int16(data.clone()), affine, Target::Ras);
        assert_eq!(axcodes(&ras_aff), "RAS");
        assert_eq!(ras.shape(), &[5, 3, 4]);
        // Every voxel keeps its world position.
        let VolumeData::Int16(r) = &ras else { panic!() };
        for (idx, v) in r.indexed_iter() {
            let (i, j, k) = (idx[0], idx[1], idx[2]);
            let w: [f64; 3] = std::array::from_fn(|row| {
                ras_aff[row][0] * i as f64 + ras_aff[row][1] * j as f64 + ras_aff[row][2] * k as f64 + ras_aff[row][3]
            });
            let (oi, oj, ok) = (*v / 100, (*v / 10) % 10, *v % 10);
            let w0: [f64; 3] = std::array::from_fn(|row| {
                affine[row][0] * oi as f64 + affine[row][1] * oj as f64 + affine[row][2] * ok as f64 + affine[row][3]
            });
            assert_eq!(w, w0);
        }
        assert!(r.t().is_standard_layout(), "Fortran order");
        let (lps, lps_aff) = reorient(ras, ras_aff, Target::Lps);
        assert_eq!(axcodes(&lps_aff), "LPS");
        let (back, back_aff) = reorient(lps, lps_aff, Target::Ras);
        assert_eq!(back_aff, ras_aff);
        let (orig, orig_aff) = reorient(back, back_aff, Target::Ras);
        assert_eq!(orig_aff, ras_aff);
        assert_eq!(orig.shape(), &[5, 3, 4]);
    }

    #[test]
    fn identity_test_and_targets() {
        assert!(is_identity(&diag(1.0, 1.0, 1.0)));
        assert!(!is_identity(&diag(-1.0, 1.0, 1.0)));
        assert_eq!("lps".parse::<Target>().unwrap(), Target::Lps);
        assert!("XYZ".parse::<Target>().is_err());
    }
}
