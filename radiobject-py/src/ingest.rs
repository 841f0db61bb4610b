//! Native ingest, image reading, verify and the command line.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use radiobject_core::imaging::{self, ImageVolume, ObsValue};
use radiobject_core::ingest::{self, CollectionSpec, ImageFormat, IngestOptions, Source};

use crate::context::PyContext;
use crate::dataset::{PyDataset, frame_from_py};
use crate::error::{Exc, IntoPyResult, raise, run, run_interruptible, wait_interruptible};
use crate::volume::data_to_py;

pub(crate) fn format_of(py: Python<'_>, s: Option<&str>) -> PyResult<Option<ImageFormat>> {
    match s.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("nifti") => Ok(Some(ImageFormat::Nifti)),
        Some("dicom") => Ok(Some(ImageFormat::Dicom)),
        Some(other) => Err(raise(py, Exc::Ingest, format!("unknown image format {other:?}: use 'nifti' or 'dicom'"))),
    }
}

/// ``reorient`` of the Python API under `config`: None follows the configuration, True its
/// ``canonical_target``, False none, or an explicit ``"RAS"``/``"LAS"``/``"LPS"``.
pub(crate) fn reorient_of(
    py: Python<'_>,
    reorient: Option<&Bound<'_, PyAny>>,
    config: &radiobject_core::RadiObjectConfig,
) -> PyResult<Option<imaging::Target>> {
    let o = &config.write.orientation;
    match reorient {
        None => Ok(ingest::reorient_target(o, None)),
        Some(v) if v.is_none() => Ok(ingest::reorient_target(o, None)),
        Some(v) if v.is_instance_of::<pyo3::types::PyBool>() => Ok(ingest::reorient_target(o, Some(v.is_truthy()?))),
        Some(v) => target_of(py, Some(&v.str()?.to_str()?.to_ascii_uppercase())),
    }
}

/// The reorientation target of ``reorient`` (None follows the configuration of ``ctx``, or the
/// global one; True its ``canonical_target``; False none; or ``"RAS"``/``"LAS"``/``"LPS"``).
#[pyfunction]
#[pyo3(signature = (reorient=None, ctx=None))]
pub fn resolve_reorient(
    py: Python<'_>,
    reorient: Option<&Bound<'_, PyAny>>,
    ctx: Option<PyRef<'_, PyContext>>,
) -> PyResult<Option<String>> {
    let config = ctx.map_or_else(radiobject_core::global_config, |c| c.inner.config().clone());
    Ok(reorient_of(py, reorient, &config)?.map(|t| t.to_string()))
}

fn target_of(py: Python<'_>, s: Option<&str>) -> PyResult<Option<imaging::Target>> {
    match s {
        None => Ok(None),
        Some(t) => ingest::parse_target(t).map(Some).ok_or_else(|| {
            raise(py, Exc::Configuration, format!("reorientation target must be RAS, LAS or LPS, got {t:?}"))
        }),
    }
}

/// Finds the images of a glob, a NIfTI directory or a directory of DICOM series:
/// ``(format, [(path, subject_id)])``.
/// `(name, format, [(subject, path)])` of one collection to ingest.
type CollectionSources = (String, String, Vec<(String, String)>);

#[pyfunction]
#[pyo3(signature = (spec, format=None))]
pub fn discover(py: Python<'_>, spec: &str, format: Option<&str>) -> PyResult<(String, Vec<(String, String)>)> {
    let f = format_of(py, format)?;
    let (fmt, sources) = py.detach(|| ingest::discover(spec, f)).map_err(|e| match e {
        radiobject_core::Error::NotFound { .. } => crate::error::to_pyerr(py, e),
        other => raise(py, Exc::Ingest, other.to_string()),
    })?;
    Ok((
        fmt.as_str().to_owned(),
        sources.into_iter().map(|s| (s.path.to_string_lossy().into_owned(), s.subject_id)).collect(),
    ))
}

/// Sources given as a list (``[(path, subject_id or None)]``), named as ``discover`` names them
/// (NIfTI: the file name without ``.nii[.gz]``; DICOM: the series directory's name). Returns
/// ``(format, [(path, subject_id)])``; the format is ``format``, else NIfTI when the first path is.
#[pyfunction]
#[pyo3(signature = (items, format=None))]
pub fn sources_of(
    py: Python<'_>,
    items: Vec<(std::path::PathBuf, Option<String>)>,
    format: Option<&str>,
) -> PyResult<(String, Vec<(String, String)>)> {
    let f = format_of(py, format)?;
    let (fmt, sources) = ingest::sources_of(&items, f).map_err(|e| raise(py, Exc::Ingest, e.to_string()))?;
    Ok((
        fmt.as_str().to_owned(),
        sources.into_iter().map(|s| (s.path.to_string_lossy().into_owned(), s.subject_id)).collect(),
    ))
}

/// Ingests ``collections`` (``[(name, format, [(path, subject_id)])]``) into the dataset at
/// ``uri``; resumable. ``lock_timeout`` (seconds) waits for another writer of the dataset;
/// ``allow_duplicate_content`` stores sources whose content the collection already holds.
/// Returns ``(dataset, report dict)``.
#[pyfunction]
#[pyo3(signature = (uri, ctx, collections, obs_meta=None, reorient=None, validate_alignment=false, max_workers=None, progress=None, allow_duplicate_content=false, lock_timeout=None))]
#[allow(clippy::too_many_arguments)]
pub fn ingest_images<'py>(
    py: Python<'py>,
    uri: &str,
    ctx: PyRef<'py, PyContext>,
    collections: Vec<CollectionSources>,
    obs_meta: Option<&Bound<'py, PyDict>>,
    reorient: Option<&Bound<'py, PyAny>>,
    validate_alignment: bool,
    max_workers: Option<usize>,
    progress: Option<Py<PyAny>>,
    allow_duplicate_content: bool,
    lock_timeout: Option<f64>,
) -> PyResult<(PyDataset, Bound<'py, PyDict>)> {
    let lock_wait = match lock_timeout {
        None => None,
        Some(s) if s.is_finite() && s >= 0.0 => Some(std::time::Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(raise(py, Exc::InvalidArgument, format!("lock_timeout must be seconds >= 0, got {s}")));
        }
    };
    let mut specs = Vec::with_capacity(collections.len());
    for (name, fmt, sources) in collections {
        let format = format_of(py, Some(&fmt))?.unwrap_or(ImageFormat::Nifti);
        specs.push(CollectionSpec {
            name,
            format,
            sources: sources.into_iter().map(|(p, s)| Source { path: PathBuf::from(p), subject_id: s }).collect(),
        });
    }
    let config = ctx.inner.config();
    let mut opts = IngestOptions {
        reorient: reorient_of(py, reorient, config)?,
        store_original_affine: config.write.orientation.store_original_affine,
        validate_alignment,
        max_workers,
        obs_meta: obs_meta.map(frame_from_py).transpose()?,
        progress: None,
        allow_duplicate_content,
        lock_wait,
    };
    if let Some(cb) = progress {
        opts.progress = Some(Box::new(move |name: &str, done: usize, total: usize| {
            Python::attach(|py| {
                if let Err(e) = cb.call1(py, (name, done, total)) {
                    e.write_unraisable(py, None);
                }
            });
        }));
    }
    let c = ctx.inner.clone();
    let report = run_interruptible(py, &c, || ingest::ingest(&c, uri, &specs, &opts))?;
    let d = PyDict::new(py);
    d.set_item("written", report.written)?;
    d.set_item("skipped", report.skipped)?;
    d.set_item("repaired", report.repaired)?;
    d.set_item("duplicates", report.duplicates)?;
    d.set_item("warnings", PyList::new(py, &report.warnings)?)?;
    Ok((PyDataset { inner: report.dataset }, d))
}

fn image_to_py<'py>(py: Python<'py>, img: ImageVolume) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("affine", img.affine.iter().map(|r| r.to_vec()).collect::<Vec<_>>())?;
    d.set_item("original_affine", img.original_affine.map(|a| a.iter().map(|r| r.to_vec()).collect::<Vec<_>>()))?;
    d.set_item("axcodes", &img.orientation.axcodes)?;
    d.set_item("orientation_source", img.orientation.source.as_str())?;
    d.set_item("orientation_confidence", img.orientation.confidence.as_str())?;
    let meta = PyDict::new(py);
    for (k, v) in &img.volume_metadata {
        meta.set_item(k, v)?;
    }
    d.set_item("metadata", meta)?;
    let obs = PyDict::new(py);
    for (k, v) in &img.obs {
        match v {
            ObsValue::Str(s) => obs.set_item(k, s)?,
            ObsValue::Int32(i) => obs.set_item(k, *i)?,
            ObsValue::Float64(x) => obs.set_item(k, *x)?,
        }
    }
    d.set_item("obs", obs)?;
    d.set_item("source_path", &img.source_path)?;
    d.set_item("warnings", PyList::new(py, &img.warnings)?)?;
    d.set_item("data", data_to_py(py, img.data))?;
    Ok(d)
}

/// Reads one image (``format`` ``"nifti"`` or ``"dicom"``): voxels (Fortran order), affine,
/// orientation, the volume metadata and obs columns ingest would record. ``reorient`` as in
/// ``resolve_reorient``, under the configuration of ``ctx`` (or the global one). With ``ctx``,
/// ``metadata`` is what a writer through it records (``original_affine`` per its configuration).
#[pyfunction]
#[pyo3(signature = (path, format="nifti", reorient=None, ctx=None))]
pub fn read_image<'py>(
    py: Python<'py>,
    path: &str,
    format: &str,
    reorient: Option<&Bound<'py, PyAny>>,
    ctx: Option<PyRef<'py, PyContext>>,
) -> PyResult<Bound<'py, PyDict>> {
    let f = format_of(py, Some(format))?.unwrap_or(ImageFormat::Nifti);
    let config = ctx.as_ref().map_or_else(radiobject_core::global_config, |c| c.inner.config().clone());
    let t = reorient_of(py, reorient, &config)?;
    let p = PathBuf::from(path);
    let mut img = py
        .detach(|| match f {
            ImageFormat::Nifti => imaging::read_nifti(&p, t),
            ImageFormat::Dicom => imaging::read_dicom_series(&p, t),
        })
        .py(py)?;
    if ctx.is_some() {
        let store = config.write.orientation.store_original_affine;
        img.volume_metadata.retain(|(k, _)| imaging::records_metadata(k, store));
    }
    image_to_py(py, img)
}

/// Verifies the dataset at ``uri``; returns the report as a dict (``problems`` is a list of
/// ``{location, message}``).
#[pyfunction]
#[pyo3(signature = (uri, ctx, deep=false))]
pub fn verify<'py>(py: Python<'py>, uri: &str, ctx: PyRef<'py, PyContext>, deep: bool) -> PyResult<Bound<'py, PyAny>> {
    let c = ctx.inner.clone();
    let report = run_interruptible(py, &c, || radiobject_core::verify::verify(&c, uri, deep))?;
    report_to_py(py, &report)
}

/// A verify report as a dict (its fields, and ``text``: the report as the command line prints it).
fn report_to_py<'py>(py: Python<'py>, report: &radiobject_core::verify::VerifyReport) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_string(report).map_err(|e| raise(py, Exc::Storage, e.to_string()))?;
    let d = py.import("json")?.call_method1("loads", (json,))?;
    d.set_item("text", report.to_string().trim_end())?;
    Ok(d)
}

/// Verifies the volume collection at ``uri`` on its own (its counts, members, obs_ids and
/// volumes); returns the report as a dict, like :func:`verify`. ``any_layout``: volumes out of
/// their sorted positions are warnings when each is found by its obs_id.
#[pyfunction]
#[pyo3(signature = (uri, ctx, deep=false, any_layout=false))]
pub fn verify_collection<'py>(
    py: Python<'py>,
    uri: &str,
    ctx: PyRef<'py, PyContext>,
    deep: bool,
    any_layout: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let c = ctx.inner.clone();
    let report = run_interruptible(py, &c, || radiobject_core::verify::verify_collection(&c, uri, deep, any_layout))?;
    report_to_py(py, &report)
}

/// The checks of ``RadiObject.validate()`` on the dataset at ``uri``: those of :func:`verify`
/// (not deep), volumes out of their sorted positions being warnings when each is found by its
/// obs_id; returns the report as a dict.
#[pyfunction]
pub fn validate_dataset<'py>(py: Python<'py>, uri: &str, ctx: PyRef<'py, PyContext>) -> PyResult<Bound<'py, PyAny>> {
    let c = ctx.inner.clone();
    let report = run_interruptible(py, &c, || radiobject_core::verify::validate(&c, uri))?;
    report_to_py(py, &report)
}

/// Runs the ``radiobject`` command line with ``argv`` (without the program name); returns the
/// exit code.
#[pyfunction]
pub fn cli_main(py: Python<'_>, argv: Vec<String>) -> PyResult<i32> {
    // Ctrl-C interrupts the command's work (it then reports what it kept and exits 130).
    let ctx = run(py, radiobject_core::global_context)?;
    Ok(wait_interruptible(py, &ctx, || radiobject_cli::run(argv))?.0)
}
