//! The one error boundary.
//!
//! The exception classes of `radiobject.exceptions` are created here, when the native module is
//! imported: each derives from `RadiObjectError` and also from the builtin that fits (e.g.
//! `NotFoundError` is a `FileNotFoundError`), and carries the `uri` and `op` (operation) of the
//! error as attributes (`None` when the error has none). Every `radiobject_core::Error` becomes
//! its class through [`to_pyerr`]; an interrupted operation becomes a `KeyboardInterrupt`.
//!
//! [`run`] is how every call into the core crosses: the GIL is released for the call and the
//! error mapped on the way back. [`run_interruptible`] does the same for long work (ingest,
//! verify, whole-volume and batch reads), and keeps Ctrl-C working while it runs.

use std::time::Duration;

use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use radiobject_core::{Context, Error};

/// The exception classes, in creation order (a class's bases come before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exc {
    RadiObject,
    Shape,
    Region,
    Dtype,
    Alignment,
    Storage,
    CorruptData,
    Configuration,
    Schema,
    Ingest,
    View,
    NotFound,
    AlreadyExists,
    ObjectType,
    InvalidArgument,
    OutOfMemory,
    DatasetLocked,
}

/// Either a class of this module or a builtin exception (by its `builtins` name).
enum Base {
    Ours(Exc),
    Builtin(&'static str),
}

use Base::{Builtin, Ours};

/// `(class, name, bases, docstring)` for every class, in [`Exc`] order.
const CLASSES: &[(Exc, &str, &[Base], &str)] = &[
    (
        Exc::RadiObject,
        "RadiObjectError",
        &[Builtin("Exception")],
        "Base class of every radiobject error.\n\nAttributes: ``uri`` (the object involved) and ``op`` (the operation), ``None`` when unknown.",
    ),
    (
        Exc::Shape,
        "ShapeError",
        &[Ours(Exc::RadiObject), Builtin("ValueError")],
        "A shape is invalid or does not match.",
    ),
    (
        Exc::Region,
        "RegionError",
        &[Ours(Exc::Shape), Builtin("IndexError")],
        "A region or index lies outside the volume or selects nothing.",
    ),
    (
        Exc::Dtype,
        "DtypeError",
        &[Ours(Exc::Shape), Builtin("TypeError")],
        "A voxel type is unsupported or does not match the volume's.",
    ),
    (
        Exc::Alignment,
        "AlignmentError",
        &[Ours(Exc::RadiObject), Builtin("ValueError")],
        "Index or subject alignment failure.",
    ),
    (
        Exc::Storage,
        "StorageError",
        &[Ours(Exc::RadiObject), Builtin("RuntimeError")],
        "A TileDB storage or I/O operation failed.",
    ),
    (
        Exc::CorruptData,
        "CorruptDataError",
        &[Ours(Exc::Storage)],
        "Stored data failed to decode: a truncated, corrupted or inconsistent tile (checksums where the array has them). Names the array and the tile; no voxels are returned.",
    ),
    (
        Exc::Configuration,
        "ConfigurationError",
        &[Ours(Exc::RadiObject), Builtin("ValueError")],
        "Invalid configuration.",
    ),
    (
        Exc::Schema,
        "SchemaError",
        &[Ours(Exc::RadiObject), Builtin("ValueError")],
        "Column, schema, or metadata conflict.",
    ),
    (
        Exc::Ingest,
        "IngestError",
        &[Ours(Exc::RadiObject), Builtin("ValueError")],
        "Image discovery or format detection failure.",
    ),
    (Exc::View, "ViewError", &[Ours(Exc::RadiObject), Builtin("TypeError")], "Attempted mutation of a read-only view."),
    (
        Exc::NotFound,
        "NotFoundError",
        &[Ours(Exc::RadiObject), Builtin("FileNotFoundError")],
        "Nothing exists at the URI.",
    ),
    (
        Exc::AlreadyExists,
        "AlreadyExistsError",
        &[Ours(Exc::Storage), Builtin("FileExistsError")],
        "The target already exists; nothing was written.",
    ),
    (
        Exc::ObjectType,
        "ObjectTypeError",
        &[Ours(Exc::RadiObject), Builtin("ValueError")],
        "The URI holds another kind of TileDB object than expected.",
    ),
    (
        Exc::InvalidArgument,
        "InvalidArgumentError",
        &[Ours(Exc::RadiObject), Builtin("ValueError")],
        "An argument is invalid.",
    ),
    (
        Exc::OutOfMemory,
        "OutOfMemoryError",
        &[Ours(Exc::RadiObject), Builtin("MemoryError")],
        "A buffer whose size the input decides (a region, a batch, a mask) cannot be allocated.",
    ),
    (
        Exc::DatasetLocked,
        "DatasetLockedError",
        &[Ours(Exc::Storage)],
        "Another writer (named in the message, with the lock's age) is changing the dataset; nothing was written. Wait and retry (``lock_timeout=`` waits), or remove a stale lock with ``radiobject unlock <uri>``.",
    ),
];

static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn create_all(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let builtins = py.import("builtins")?;
    let type_ = builtins.getattr("type")?;
    let mut made: Vec<Py<PyType>> = Vec::with_capacity(CLASSES.len());
    for (i, (exc, name, bases, doc)) in CLASSES.iter().enumerate() {
        debug_assert_eq!(*exc as usize, i, "CLASSES must follow the order of Exc");
        let bases: Vec<Bound<'_, PyAny>> = bases
            .iter()
            .map(|b| match b {
                Ours(e) => Ok(made[*e as usize].bind(py).clone().into_any()),
                Builtin(n) => builtins.getattr(*n),
            })
            .collect::<PyResult<_>>()?;
        let dict = PyDict::new(py);
        dict.set_item("__module__", "radiobject.exceptions")?;
        dict.set_item("__doc__", *doc)?;
        if *exc == Exc::RadiObject {
            dict.set_item("uri", py.None())?;
            dict.set_item("op", py.None())?;
        }
        let cls = type_.call1((*name, PyTuple::new(py, bases)?, dict))?.cast_into::<PyType>()?;
        made.push(cls.unbind());
    }
    Ok(made)
}

/// The class of `exc`.
pub(crate) fn class(py: Python<'_>, exc: Exc) -> PyResult<Bound<'_, PyType>> {
    Ok(TYPES.get_or_try_init(py, || create_all(py))?[exc as usize].bind(py).clone())
}

/// Adds every class to the native module (re-exported by `radiobject.exceptions`).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    for (exc, name, _, _) in CLASSES {
        m.add(*name, class(m.py(), *exc)?)?;
    }
    Ok(())
}

/// The class for a core error.
fn class_of(e: &Error) -> Exc {
    match e {
        Error::NotFound { .. } => Exc::NotFound,
        Error::WrongObjectType { .. } | Error::NotAVolume { .. } => Exc::ObjectType,
        Error::AlreadyExists { .. } => Exc::AlreadyExists,
        Error::Shape { .. } => Exc::Shape,
        Error::Region { .. } => Exc::Region,
        Error::Dtype { .. } | Error::UnsupportedDtype(_) => Exc::Dtype,
        Error::Config(_) => Exc::Configuration,
        Error::Alignment(_) => Exc::Alignment,
        Error::Invalid(_) => Exc::InvalidArgument,
        Error::Schema(_) => Exc::Schema,
        Error::Storage { .. } | Error::Io { .. } => Exc::Storage,
        Error::Corrupt { .. } => Exc::CorruptData,
        Error::OutOfMemory { .. } => Exc::OutOfMemory,
        Error::Locked { .. } => Exc::DatasetLocked,
        Error::Item { source, .. } => class_of(source),
        _ => Exc::RadiObject,
    }
}

/// A `exc` exception with `msg`, and `uri`/`op` attributes when given.
pub(crate) fn new_err(py: Python<'_>, exc: Exc, msg: impl Into<String>, uri: Option<&str>, op: Option<&str>) -> PyErr {
    let msg = msg.into();
    let make = || -> PyResult<PyErr> {
        let value = class(py, exc)?.call1((msg.as_str(),))?;
        if let Some(uri) = uri {
            value.setattr("uri", uri)?;
        }
        if let Some(op) = op {
            value.setattr("op", op)?;
        }
        Ok(PyErr::from_value(value))
    };
    make().unwrap_or_else(|e| PyRuntimeError::new_err(format!("{msg} (creating the exception failed: {e})")))
}

/// Converts a core error into a Python exception.
pub(crate) fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    if let Error::Interrupted(what) = &e {
        return PyKeyboardInterrupt::new_err(format!("interrupted: {what}"));
    }
    new_err(py, class_of(&e), e.to_string(), e.uri(), e.op())
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

/// A `radiobject.exceptions` error of class `exc` with `msg` (for checks made in the bindings).
pub(crate) fn raise(py: Python<'_>, exc: Exc, msg: impl Into<String>) -> PyErr {
    new_err(py, exc, msg, None, None)
}

/// Runs `f` (a call into the core) with the GIL released and maps its error.
pub(crate) fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, Error> + Send) -> PyResult<T> {
    py.detach(f).py(py)
}

/// Runs long work `f` on `ctx`'s worker pool while this thread, with the GIL released, waits and
/// checks for signals every 50 ms. On Ctrl-C (a `KeyboardInterrupt` from a signal handler) the
/// core is interrupted ([`radiobject_core::cancel`]), the work stops at its next checkpoint, keeping
/// what it completed, and the `KeyboardInterrupt` is raised here.
pub(crate) fn run_interruptible<T: Send>(
    py: Python<'_>,
    ctx: &Context,
    f: impl FnOnce() -> Result<T, Error> + Send,
) -> PyResult<T> {
    let (result, interrupted) = wait_interruptible(py, ctx, f)?;
    match (interrupted, result) {
        // The work says what it stopped and what it kept: that is the KeyboardInterrupt's message.
        (Some(_), Err(e @ Error::Interrupted(_))) => Err(to_pyerr(py, e)),
        (Some(signal), _) => Err(signal),
        (None, result) => result.py(py),
    }
}

/// The waiting of [`run_interruptible`]: `f`'s output, and the `KeyboardInterrupt` seen while it
/// ran (the work was then interrupted and its output says how it stopped).
pub(crate) fn wait_interruptible<T: Send>(
    py: Python<'_>,
    ctx: &Context,
    f: impl FnOnce() -> T + Send,
) -> PyResult<(T, Option<PyErr>)> {
    let pool = run(py, || ctx.pool())?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<T>(1);
    let mut interrupted: Option<PyErr> = None;
    let result = pool.in_place_scope(|scope| {
        scope.spawn(move |_| {
            // The receiver outlives the scope, so the send cannot fail.
            let _ = tx.send(f());
        });
        let mut rx = rx;
        loop {
            // The receiver is Send but not Sync: it moves into the GIL-free wait and back.
            let (back, got) = py.detach(move || {
                let got = rx.recv_timeout(Duration::from_millis(50));
                (rx, got)
            });
            rx = back;
            match got {
                Ok(r) => return Some(r),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if interrupted.is_none()
                && let Err(e) = py.check_signals()
            {
                radiobject_core::cancel::interrupt();
                interrupted = Some(e);
            }
        }
    });
    match result {
        Some(r) => Ok((r, interrupted)),
        None => Err(interrupted.unwrap_or_else(|| PyRuntimeError::new_err("the work panicked on a worker thread"))),
    }
}
