//! Helpers shared by the integration tests.
#![allow(dead_code, missing_docs)]

use radiobject_core::{Context, RadiObjectConfig};

/// A fresh temporary directory and a URI inside it.
pub struct TempUri {
    pub dir: tempfile::TempDir,
}

impl TempUri {
    pub fn new() -> TempUri {
        TempUri { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn uri(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

/// A context with the default configuration (or a tweaked one).
pub fn ctx_with(f: impl FnOnce(&mut RadiObjectConfig)) -> Context {
    let mut cfg = RadiObjectConfig::default();
    f(&mut cfg);
    Context::new(&cfg).expect("context")
}

/// A deterministic pseudo-random volume of `shape` (Fortran order irrelevant: values are unique-ish).
pub fn phantom_f32(shape: &[usize]) -> ndarray::ArrayD<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(shape), |idx| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let s: usize = ndarray::Dimension::slice(&idx).iter().sum();
        (s as f32) + (state % 1000) as f32 / 1000.0
    })
}
