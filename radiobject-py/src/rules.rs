//! Small domain rules the Python package asks the core for (naming, tiling, orientation), so each
//! rule lives once, in Rust.

use pyo3::prelude::*;

use crate::context::config_from_py;
use crate::error::{Exc, IntoPyResult, raise};

/// New obs_ids for a copy of volumes of ``subject_ids`` (in order) named ``name``:
/// ``{sid}_{name}``, and ``{sid}_{name}_acq-{k}`` for every volume of a subject with several.
#[pyfunction]
fn rename_obs_ids(subject_ids: Vec<String>, name: &str) -> Vec<String> {
    radiobject_core::collection::rename_obs_ids(&subject_ids, name)
}

/// ``{subject}_{collection}``, plus ``_acq-{k}`` for the k-th acquisition of a subject.
#[pyfunction]
#[pyo3(signature = (obs_subject_id, collection_name, acquisition_index=None))]
fn generate_obs_id(obs_subject_id: &str, collection_name: &str, acquisition_index: Option<usize>) -> String {
    radiobject_core::collection::obs_id(obs_subject_id, collection_name, acquisition_index)
}

/// Tile extents of a volume of ``shape`` (3 or 4 axes) under ``config`` (a configuration or a
/// section of one, JSON or object; None: the global one), clipped to the shape.
#[pyfunction]
#[pyo3(signature = (shape, config=None))]
fn tile_extents(py: Python<'_>, shape: Vec<u64>, config: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<u64>> {
    if !(3..=4).contains(&shape.len()) {
        return Err(raise(py, Exc::Shape, format!("volumes are 3D or 4D, got shape {shape:?}")));
    }
    Ok(config_from_py(py, config)?.write.tile.extents_for_shape(&shape))
}

/// Checks a collection's uniform ``shape``: ``(x, y, z)`` with no zero axis (:class:`ShapeError`).
#[pyfunction]
fn check_collection_shape(py: Python<'_>, shape: Vec<u64>) -> PyResult<()> {
    radiobject_core::collection::check_collection_shape(&shape).py(py)
}

/// Axis codes of an affine (its upper-left 3x3 is used), as nibabel's ``aff2axcodes``, e.g.
/// ``"RAS"``; an axis without direction gets ``"?"``.
#[pyfunction]
fn axcodes(py: Python<'_>, affine: Vec<Vec<f64>>) -> PyResult<String> {
    let mut a: radiobject_core::imaging::Affine = [[0.0; 4]; 4];
    a[3][3] = 1.0;
    if affine.len() < 3 || affine.iter().take(3).any(|row| row.len() < 3) {
        return Err(raise(py, Exc::Shape, "an affine is 3x3 or 4x4".to_owned()));
    }
    for (i, row) in affine.iter().take(4).enumerate() {
        for (j, v) in row.iter().take(4).enumerate() {
            a[i][j] = *v;
        }
    }
    Ok(radiobject_core::imaging::axcodes(&a))
}

/// Whether ``codes`` are three axis codes naming each world axis once (``["R", "A", "S"]``).
#[pyfunction]
fn axcodes_valid(codes: Vec<String>) -> bool {
    radiobject_core::imaging::axcodes_valid(&codes.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Registers the rule functions.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rename_obs_ids, m)?)?;
    m.add_function(wrap_pyfunction!(generate_obs_id, m)?)?;
    m.add_function(wrap_pyfunction!(tile_extents, m)?)?;
    m.add_function(wrap_pyfunction!(axcodes, m)?)?;
    m.add_function(wrap_pyfunction!(axcodes_valid, m)?)?;
    m.add_function(wrap_pyfunction!(check_collection_shape, m)?)?;
    Ok(())
}
