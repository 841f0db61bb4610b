//! `Context`, configuration and statistics bindings.

use pyo3::prelude::*;
use pyo3::types::PyString;
use radiobject_core::{Context, RadiObjectConfig, StatsScope};

use crate::error::{IntoPyResult, run};

/// Turns `None` / a JSON string / a config object or mapping into a validated configuration.
///
/// Objects other than strings go through `radiobject.ctx._config_json`, which understands the
/// package's config classes, the reference's pydantic models, dicts and OmegaConf configs.
pub(crate) fn config_from_py(py: Python<'_>, config: Option<&Bound<'_, PyAny>>) -> PyResult<RadiObjectConfig> {
    match config {
        None => Ok(radiobject_core::global_config()),
        Some(obj) if obj.is_none() => Ok(radiobject_core::global_config()),
        Some(obj) => {
            let json: String = if let Ok(s) = obj.cast::<PyString>() {
                s.to_str()?.to_owned()
            } else {
                py.import("radiobject.ctx")?.getattr("_config_json")?.call1((obj,))?.extract()?
            };
            RadiObjectConfig::from_json(&json).py(py)
        }
    }
}

/// A TileDB context with its tile cache, counters and worker pool.
///
/// Threads share a context (and its cache); processes never do. ``Context()`` builds a new,
/// isolated context from the global configuration; ``Context(config)`` from a configuration
/// (a ``RadiObjectConfig``, a dict, or JSON). Usually obtained from ``get_tiledb_ctx()``,
/// ``ctx_for_threads()`` or ``ctx_for_process()``.
#[pyclass(name = "Context", module = "radiobject._radiobject", frozen, eq)]
pub struct PyContext {
    pub(crate) inner: Context,
}

impl PartialEq for PyContext {
    fn eq(&self, other: &Self) -> bool {
        self.inner.same(&other.inner)
    }
}

#[pymethods]
impl PyContext {
    #[new]
    #[pyo3(signature = (config=None))]
    fn new(py: Python<'_>, config: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let cfg = config_from_py(py, config)?;
        let inner = run(py, || Context::new(&cfg))?;
        Ok(PyContext { inner })
    }

    /// Unique id of this context within its process.
    #[getter]
    fn id(&self) -> u64 {
        self.inner.id()
    }

    /// Id of the process that created this context.
    #[getter]
    fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// The configuration this context was built from, as JSON.
    fn config_json(&self) -> String {
        self.inner.config().to_json()
    }

    /// The TileDB config parameters this context was built with (no credentials).
    fn tiledb_params(&self) -> Vec<(String, String)> {
        self.inner.config().tiledb_params()
    }

    /// ``(bytes, tiles, budget_bytes)`` of the tile cache now.
    fn cache_info(&self) -> (usize, usize, u64) {
        let (bytes, tiles) = self.inner.cache_usage();
        (bytes, tiles, self.inner.config().read.tile_cache_size_mb * 1024 * 1024)
    }

    /// Empties the tile cache (its counters keep counting).
    fn clear_cache(&self) {
        self.inner.clear_cache();
    }

    /// This context in the calling process: itself, or in a forked child a fresh context with the
    /// same configuration (one per child).
    fn for_current_process(&self, py: Python<'_>) -> PyResult<PyContext> {
        let inner = run(py, || self.inner.for_current_process())?;
        Ok(PyContext { inner })
    }

    /// Whether this libtiledb build can reach S3.
    fn supports_s3(&self) -> bool {
        self.inner.supports_s3()
    }

    /// All counters of this context now, as JSON ``{"counters": {...}, "timers": {...}}``.
    fn snapshot_json(&self, py: Python<'_>) -> PyResult<String> {
        Ok(run(py, || self.inner.snapshot())?.to_json())
    }

    /// ``"array"``, ``"group"`` or ``None``: what TileDB object exists at ``uri``.
    fn object_type(&self, py: Python<'_>, uri: &str) -> PyResult<Option<&'static str>> {
        let kind = run(py, || self.inner.object_kind(uri))?;
        Ok(kind.map(|k| match k {
            radiobject_core::ObjectKind::Array => "array",
            radiobject_core::ObjectKind::Group => "group",
        }))
    }

    /// Removes ``uri`` (directory or S3 prefix) with everything below it; no-op if absent.
    fn remove(&self, py: Python<'_>, uri: &str) -> PyResult<()> {
        run(py, || self.inner.remove_uri(uri))
    }

    /// Creates the bucket of an ``s3://bucket/...`` URI if missing.
    fn ensure_bucket(&self, py: Python<'_>, uri: &str) -> PyResult<()> {
        run(py, || self.inner.ensure_bucket(uri))
    }

    fn __repr__(&self) -> String {
        let (bytes, tiles) = self.inner.cache_usage();
        let r = &self.inner.config().read;
        format!(
            "Context(id={}, pid={}, tile_cache={}/{} MiB in {} tiles, concurrency={}, max_workers={})",
            self.inner.id(),
            self.inner.pid(),
            bytes / (1024 * 1024),
            r.tile_cache_size_mb,
            tiles,
            r.concurrency,
            r.max_workers
        )
    }

    fn __hash__(&self) -> u64 {
        self.inner.id() ^ (u64::from(self.inner.pid()) << 40)
    }
}

/// The process-wide context (built lazily from the global configuration; rebuilt after
/// ``configure()`` and in a forked child).
#[pyfunction]
pub fn global_context(py: Python<'_>) -> PyResult<PyContext> {
    let inner = run(py, radiobject_core::global_context)?;
    Ok(PyContext { inner })
}

/// Validates a configuration and returns it normalised (every field, as JSON).
#[pyfunction]
pub fn validate_config(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(config_from_py(py, Some(config))?.to_json())
}

/// Installs a validated configuration as the global one and drops the global context.
#[pyfunction]
pub fn set_global_config(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<()> {
    let cfg = config_from_py(py, Some(config))?;
    run(py, || radiobject_core::configure(cfg))
}

/// The global configuration as JSON.
#[pyfunction]
pub fn global_config_json() -> String {
    radiobject_core::global_config().to_json()
}

/// Restores the default global configuration and drops the global context.
#[pyfunction]
pub fn reset_global_config(py: Python<'_>) {
    py.detach(radiobject_core::reset_config);
}

/// The TileDB parameters a configuration maps to (no credentials).
#[pyfunction]
pub fn tiledb_params(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    Ok(config_from_py(py, Some(config))?.tiledb_params())
}

/// Counters of every context of this process (live and dropped), as JSON.
#[pyfunction]
pub fn process_snapshot_json(py: Python<'_>) -> PyResult<String> {
    Ok(run(py, radiobject_core::process_snapshot)?.to_json())
}

/// Measures counters between ``begin`` (construction) and ``end()``, for one context or, with
/// ``None``, every context of the process (including ones created inside the scope).
#[pyclass(name = "StatsScope", module = "radiobject._radiobject")]
pub struct PyStatsScope {
    scope: StatsScope,
}

#[pymethods]
impl PyStatsScope {
    #[new]
    #[pyo3(signature = (ctx=None))]
    fn new(py: Python<'_>, ctx: Option<PyRef<'_, PyContext>>) -> PyResult<Self> {
        let c = ctx.map(|c| c.inner.clone());
        let scope = run(py, || StatsScope::begin(c.as_ref()))?;
        Ok(PyStatsScope { scope })
    }

    /// Stops measuring; later calls to ``delta_json`` return the fixed result.
    fn end(&mut self, py: Python<'_>) -> PyResult<()> {
        let scope = &mut self.scope;
        run(py, || scope.end().map(|_| ()))
    }

    /// The measured difference as JSON ``{"counters": ..., "timers": ...}`` (so far, if not ended).
    fn delta_json(&self, py: Python<'_>) -> PyResult<String> {
        Ok(run(py, || self.scope.delta())?.to_json())
    }

    /// ``(cache_hits, cache_misses, tile_bytes_read, vfs_read_bytes)`` of the delta.
    fn cache_stats(&self, py: Python<'_>) -> PyResult<(u64, u64, u64, u64)> {
        let c = run(py, || self.scope.delta())?.cache_stats();
        Ok((c.cache_hits, c.cache_misses, c.tile_bytes_read, c.vfs_read_bytes))
    }

    /// ``(read_ops, parallelized_reads, write_ops, total_bytes_read, total_bytes_written,
    /// read_queries)`` of the delta.
    fn s3_stats(&self, py: Python<'_>) -> PyResult<(u64, u64, u64, u64, u64, u64)> {
        let s = run(py, || self.scope.delta())?.s3_stats();
        Ok((s.read_ops, s.parallelized_reads, s.write_ops, s.total_bytes_read, s.total_bytes_written, s.read_queries))
    }
}
