//! The one error boundary: every `radiobject_core::Error` becomes the matching exception of
//! `radiobject.exceptions` (all under `RadiObjectError`, each also subclassing the builtin that
//! fits, e.g. `NotFoundError` is a `FileNotFoundError`).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use radiobject_core::Error;

static EXCEPTIONS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Name of the `radiobject.exceptions` class for a core error.
fn class_name(e: &Error) -> &'static str {
    match e {
        Error::NotFound { .. } => "NotFoundError",
        Error::WrongObjectType { .. } | Error::NotAVolume { .. } => "ObjectTypeError",
        Error::AlreadyExists { .. } => "AlreadyExistsError",
        Error::Shape { .. } => "ShapeError",
        Error::Region { .. } => "RegionError",
        Error::Dtype { .. } | Error::UnsupportedDtype(_) => "DtypeError",
        Error::Config(_) => "ConfigurationError",
        Error::Alignment(_) => "AlignmentError",
        Error::Invalid(_) => "InvalidArgumentError",
        Error::Storage { .. } | Error::Io { .. } => "StorageError",
        Error::Corrupt { .. } => "CorruptDataError",
        Error::OutOfMemory { .. } => "OutOfMemoryError",
        Error::Item { source, .. } => class_name(source),
        _ => "RadiObjectError",
    }
}

/// The exception class `name` of `radiobject.exceptions`.
pub(crate) fn exception_type<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module = EXCEPTIONS.get_or_try_init(py, || py.import("radiobject.exceptions").map(Bound::unbind))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

/// Converts a core error into a Python exception.
pub(crate) fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    let msg = e.to_string();
    match exception_type(py, class_name(&e)) {
        Ok(t) => PyErr::from_type(t, (msg,)),
        Err(import_err) => PyRuntimeError::new_err(format!("{msg} (radiobject.exceptions unavailable: {import_err})")),
    }
}

/// `?`-friendly conversion of core results.
pub(crate) trait IntoPyResult<T> {
    /// Maps the error into the matching `radiobject.exceptions` class.
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_pyerr(py, e))
    }
}

/// A `radiobject.exceptions` error of class `name` with `msg`.
pub(crate) fn raise(py: Python<'_>, name: &str, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    match exception_type(py, name) {
        Ok(t) => PyErr::from_type(t, (msg,)),
        Err(e) => PyRuntimeError::new_err(format!("{msg} ({e})")),
    }
}
