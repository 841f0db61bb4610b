//! `radiobject._radiobject`: the native module behind the `radiobject` Python package.
//!
//! Every method here is thin: extract Python arguments into owned Rust values, run the core with
//! the GIL released through [`error::run`] (long work through [`error::run_interruptible`], which
//! keeps Ctrl-C working), convert the result. Errors cross the boundary only through
//! [`error::to_pyerr`], and the exception classes are created in [`error`].

#![deny(unsafe_code)]

mod context;
mod dataset;
mod error;
mod ingest;
mod loader;
mod rules;
mod volume;

use pyo3::prelude::*;

/// The libtiledb version loaded, e.g. ``(2, 30, 0)``.
#[pyfunction]
fn tiledb_version() -> (i32, i32, i32) {
    radiobject_core::tiledb_version()
}

/// Native module of the `radiobject` package.
#[pymodule]
fn _radiobject(m: &Bound<'_, PyModule>) -> PyResult<()> {
    error::register(m)?;
    m.add_class::<context::PyContext>()?;
    m.add_class::<context::PyStatsScope>()?;
    m.add_class::<volume::PyVolume>()?;
    m.add_class::<loader::PyPlan>()?;
    m.add_class::<loader::PyPrefetcher>()?;
    m.add_function(wrap_pyfunction!(volume::direct_read, m)?)?;
    m.add_function(wrap_pyfunction!(loader::check_dataset_config, m)?)?;
    m.add_function(wrap_pyfunction!(loader::check_aligned, m)?)?;
    m.add_function(wrap_pyfunction!(loader::common_shape, m)?)?;
    m.add_function(wrap_pyfunction!(loader::check_patch_fits, m)?)?;
    m.add_function(wrap_pyfunction!(loader::shuffle_order, m)?)?;
    m.add_function(wrap_pyfunction!(loader::set_process_worker_threads, m)?)?;
    dataset::register(m)?;
    rules::register(m)?;
    m.add_function(wrap_pyfunction!(context::global_context, m)?)?;
    m.add_function(wrap_pyfunction!(context::validate_config, m)?)?;
    m.add_function(wrap_pyfunction!(context::set_global_config, m)?)?;
    m.add_function(wrap_pyfunction!(context::global_config_json, m)?)?;
    m.add_function(wrap_pyfunction!(context::reset_global_config, m)?)?;
    m.add_function(wrap_pyfunction!(context::tiledb_params, m)?)?;
    m.add_function(wrap_pyfunction!(context::process_snapshot_json, m)?)?;
    m.add_function(wrap_pyfunction!(volume::read_batch, m)?)?;
    m.add_function(wrap_pyfunction!(tiledb_version, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::discover, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::sources_of, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::resolve_reorient, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::ingest_images, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::read_image, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::verify, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::verify_collection, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::validate_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::cli_main, m)?)?;
    Ok(())
}
