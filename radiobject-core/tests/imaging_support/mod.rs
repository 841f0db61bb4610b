//! Expected values for the imaging tests, produced once per test run by
//! `tests/imaging_reference.py` with nibabel, pydicom and the PyPI reference package.
#![allow(dead_code, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use radiobject_core::VolumeData;
use serde_json::Value;

/// The workspace root (parent of the crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crate has a parent").to_path_buf()
}

/// The Python with nibabel and pydicom: `RADIOBJECT_TEST_PYTHON`, else `<workspace>/.venv/bin/python`.
pub fn python() -> PathBuf {
    std::env::var_os("RADIOBJECT_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv").join("bin").join("python"))
}

/// What the Python side wrote: the manifest and the directory holding its arrays and files.
pub struct Expected {
    pub dir: PathBuf,
    pub manifest: Value,
}

impl Expected {
    pub fn cases(&self, kind: &str) -> Vec<&Value> {
        self.manifest["cases"].as_array().expect("cases").iter().filter(|c| c["kind"] == kind).collect()
    }

    pub fn case(&self, name: &str) -> &Value {
        self.manifest["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no case {name}"))
    }

    pub fn has_reference(&self) -> bool {
        self.manifest["reference_peer"].as_bool().unwrap_or(false)
    }

    /// An expected array: (dtype name, shape, values as f64 in Fortran order, raw bytes).
    pub fn array(&self, desc: &Value) -> ExpectedArray {
        let file = self.dir.join(desc["file"].as_str().expect("file"));
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let dtype = desc["dtype"].as_str().expect("dtype").to_owned();
        let shape: Vec<usize> =
            desc["shape"].as_array().expect("shape").iter().map(|v| v.as_u64().expect("dim") as usize).collect();
        ExpectedArray { dtype, shape, bytes }
    }
}

pub struct ExpectedArray {
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Little-endian, Fortran order.
    pub bytes: Vec<u8>,
}

impl ExpectedArray {
    pub fn values(&self) -> Vec<f64> {
        macro_rules! conv {
            ($t:ty) => {
                self.bytes
                    .chunks_exact(std::mem::size_of::<$t>())
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk")) as f64)
                    .collect()
            };
        }
        match self.dtype.as_str() {
            "uint8" => conv!(u8),
            "int8" => conv!(i8),
            "uint16" => conv!(u16),
            "int16" => conv!(i16),
            "uint32" => conv!(u32),
            "int32" => conv!(i32),
            "uint64" => conv!(u64),
            "int64" => conv!(i64),
            "float32" => conv!(f32),
            "float64" => conv!(f64),
            other => panic!("unexpected dtype {other}"),
        }
    }
}

static EXPECTED: OnceLock<Expected> = OnceLock::new();

/// Runs the Python side once per test process.
pub fn expected() -> &'static Expected {
    EXPECTED.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("imaging-reference-{}", std::process::id()));
        clean_stale_dirs();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create expectation dir");
        let py = python();
        assert!(
            py.exists(),
            "no Python at {} (run scripts/setup.sh, or set RADIOBJECT_TEST_PYTHON to a Python with nibabel and pydicom)",
            py.display()
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("imaging_reference.py");
        let peer = workspace().join(".peers").join("radiobject-0.1.1");
        let out = Command::new(&py)
            .arg(&script)
            .arg(&dir)
            .arg(&peer)
            .env("PYTHONHASHSEED", "0")
            .output()
            .expect("run imaging_reference.py");
        assert!(
            out.status.success(),
            "imaging_reference.py failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
        Expected { dir, manifest }
    })
}

/// Removes expectation directories left by earlier runs (each run writes one named by its pid).
pub fn clean_stale_dirs() {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let me = format!("imaging-reference-{}", std::process::id());
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("imaging-reference-") && name != me {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Values of a [`VolumeData`] as f64, Fortran order, with its dtype name and shape.
pub fn volume_values(data: &VolumeData) -> (String, Vec<usize>, Vec<f64>) {
    macro_rules! go {
        ($a:expr, $name:expr) => {{
            let a = $a;
            assert!(a.t().is_standard_layout(), "arrays must be in Fortran order");
            (
                $name.to_owned(),
                a.shape().to_vec(),
                a.as_slice_memory_order().expect("contiguous").iter().map(|v| *v as f64).collect(),
            )
        }};
    }
    match data {
        VolumeData::Int8(a) => go!(a, "int8"),
        VolumeData::UInt8(a) => go!(a, "uint8"),
        VolumeData::Int16(a) => go!(a, "int16"),
        VolumeData::UInt16(a) => go!(a, "uint16"),
        VolumeData::Int32(a) => go!(a, "int32"),
        VolumeData::UInt32(a) => go!(a, "uint32"),
        VolumeData::Int64(a) => go!(a, "int64"),
        VolumeData::UInt64(a) => go!(a, "uint64"),
        VolumeData::Float32(a) => go!(a, "float32"),
        VolumeData::Float64(a) => go!(a, "float64"),
    }
}

/// Raw bytes (native = little endian here) of a [`VolumeData`] in Fortran order.
pub fn volume_bytes(data: &VolumeData) -> Vec<u8> {
    macro_rules! go {
        ($a:expr) => {
            $a.as_slice_memory_order().expect("contiguous").iter().flat_map(|v| v.to_le_bytes()).collect()
        };
    }
    match data {
        VolumeData::Int8(a) => go!(a),
        VolumeData::UInt8(a) => go!(a),
        VolumeData::Int16(a) => go!(a),
        VolumeData::UInt16(a) => go!(a),
        VolumeData::Int32(a) => go!(a),
        VolumeData::UInt32(a) => go!(a),
        VolumeData::Int64(a) => go!(a),
        VolumeData::UInt64(a) => go!(a),
        VolumeData::Float32(a) => go!(a),
        VolumeData::Float64(a) => go!(a),
    }
}

/// Asserts `got` equals the expected array: bit-exact when the dtypes agree, else within
/// float32 rounding of the expected (float64) values.
pub fn assert_voxels(name: &str, got: &VolumeData, exp: &ExpectedArray) {
    let (dtype, shape, values) = volume_values(got);
    assert_eq!(shape, exp.shape, "{name}: shape");
    if dtype == exp.dtype {
        assert!(volume_bytes(got) == exp.bytes, "{name}: voxels differ from the reference ({dtype})");
        return;
    }
    let want = exp.values();
    // float32 output: one rounding of the float64 value; wider types: exact up to f64 rounding.
    let tol_rel = if dtype == "float32" { 1.0 / (1u64 << 23) as f64 } else { 1e-12 };
    let bad =
        values.iter().zip(want.iter()).enumerate().find(|(_, (g, w))| (*g - *w).abs() > tol_rel * w.abs() + 1e-300);
    if let Some((i, (g, w))) = bad {
        panic!("{name}: voxel {i}: got {g}, expected {w} ({dtype} vs reference {})", exp.dtype);
    }
}

/// Affine from the manifest.
pub fn affine_of(v: &Value) -> [[f64; 4]; 4] {
    let rows = v.as_array().expect("affine rows");
    std::array::from_fn(|r| std::array::from_fn(|c| rows[r][c].as_f64().expect("affine value")))
}

pub fn assert_affine_close(name: &str, got: &[[f64; 4]; 4], want: &[[f64; 4]; 4], tol: f64) {
    for r in 0..4 {
        for c in 0..4 {
            assert!(
                (got[r][c] - want[r][c]).abs() <= tol,
                "{name}: affine[{r}][{c}] {} != {}\n{got:?}\n{want:?}",
                got[r][c],
                want[r][c]
            );
        }
    }
}
