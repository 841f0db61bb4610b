//! Bindings of the batch pipeline (`radiobject_core::loader`): plans, batch reads, prefetching.
//!
//! Python (`radiobject.ml`) keeps the torch glue: samplers, collation of metadata, labels,
//! transforms, pinning. Everything that decides which voxels a batch holds lives in the core.

use std::sync::Arc;
use std::time::Duration;

use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use radiobject_core::loader::{Batch, Channel, Key, Mode, Plan, PlanConfig, Prefetcher, permutation};
use radiobject_core::{Error, VolumeData};

use crate::error::{IntoPyResult, run};
use crate::volume::PyVolume;

/// One channel as Python passes it: `(name, volumes, subject ids)`.
type ChannelArg<'py> = (String, Vec<PyRef<'py, PyVolume>>, Vec<String>);

fn mode_of(mode: &str, patch_size: Option<(u64, u64, u64)>, axis: usize) -> Result<Mode, Error> {
    match (mode, patch_size) {
        ("full_volume", _) => Ok(Mode::FullVolume),
        ("patch", Some((x, y, z))) => Ok(Mode::Patch([x, y, z])),
        ("patch", None) => Err(Error::Invalid("patch_size required when loading_mode is PATCH".into())),
        ("slice_2d", _) => Ok(Mode::Slice(axis)),
        (other, _) => Err(Error::Invalid(format!(
            "unknown loading mode {other:?} (expected 'full_volume', 'patch' or 'slice_2d')"
        ))),
    }
}

/// Checks that collections line up as channels: ``[(name, subject of each volume)]`` hold the
/// same number of volumes of the same subjects in the same order (``AlignmentError``).
#[pyfunction]
pub fn check_aligned(py: Python<'_>, channels: Vec<(String, Vec<String>)>) -> PyResult<()> {
    let refs: Vec<(&str, &[String])> = channels.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
    radiobject_core::loader::check_aligned(&refs).py(py)
}

/// The shape collections share (``[(name, shape or None when heterogeneous)]``), or
/// ``ShapeError``.
#[pyfunction]
pub fn common_shape(py: Python<'_>, collections: Vec<(String, Option<[u64; 3]>)>) -> PyResult<[u64; 3]> {
    let refs: Vec<(&str, Option<[u64; 3]>)> = collections.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    radiobject_core::loader::common_shape(&refs).py(py)
}

/// Checks that patches of ``patch_size`` fit volumes of ``shapes`` (``ShapeError``).
#[pyfunction]
pub fn check_patch_fits(py: Python<'_>, shapes: Vec<Vec<u64>>, patch_size: [u64; 3]) -> PyResult<()> {
    radiobject_core::loader::check_patch_fits(&shapes, patch_size).py(py)
}

/// Checks a dataset configuration (the one rule behind ``DatasetConfig``'s validation).
#[pyfunction]
#[pyo3(signature = (mode, patch_size, patches_per_volume))]
pub fn check_dataset_config(
    py: Python<'_>,
    mode: &str,
    patch_size: Option<(u64, u64, u64)>,
    patches_per_volume: i64,
) -> PyResult<()> {
    let r = (|| {
        mode_of(mode, patch_size, 2)?;
        if patches_per_volume < 1 {
            return Err(Error::Invalid("patches_per_volume must be >= 1".into()));
        }
        if let Some(p) = patch_size
            && (p.0 == 0 || p.1 == 0 || p.2 == 0)
        {
            return Err(Error::Invalid(format!("patch_size {p:?} must be positive")));
        }
        Ok(())
    })();
    r.py(py)
}

/// Sets the worker pool size of pools this process creates from now on (0: the configuration's).
#[pyfunction]
pub fn set_process_worker_threads(n: usize) {
    radiobject_core::set_process_worker_threads(n);
}

/// A uniform random permutation of ``range(n)`` for ``(seed, epoch)``.
#[pyfunction]
pub fn shuffle_order(py: Python<'_>, seed: u64, epoch: u64, n: usize) -> Vec<u64> {
    py.detach(|| permutation(seed, epoch, n))
}

/// A dataset's reading plan: channels, items and batch reads (``radiobject_core::loader::Plan``).
#[pyclass(name = "NativePlan", module = "radiobject._radiobject", frozen)]
pub struct PyPlan {
    inner: Arc<Plan>,
}

fn batch_to_py<'py>(py: Python<'py>, batch: Batch) -> PyResult<Bound<'py, PyTuple>> {
    let arrays = PyList::empty(py);
    for a in batch.arrays {
        macro_rules! conv {
            ($($v:ident),*) => { match a { $(VolumeData::$v(x) => x.into_pyarray(py).into_any()),* } };
        }
        arrays.append(conv!(Int8, UInt8, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float32, Float64))?;
    }
    let n = batch.items.len();
    let (mut vols, mut patches, mut slices, mut starts) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for it in &batch.items {
        vols.push(it.volume);
        patches.push(it.patch_idx);
        slices.push(it.slice_idx);
        starts.push(PyTuple::new(py, it.region.ranges().iter().map(|r| r.0))?);
    }
    let secs = batch.read_nanos as f64 * 1e-9;
    PyTuple::new(
        py,
        [
            arrays.into_any(),
            vols.into_pyobject(py)?.into_any(),
            patches.into_pyobject(py)?.into_any(),
            slices.into_pyobject(py)?.into_any(),
            PyList::new(py, starts)?.into_any(),
            secs.into_pyobject(py)?.into_any(),
        ],
    )
}

#[pymethods]
impl PyPlan {
    /// Validates the channels and builds the plan.
    ///
    /// ``keys``: ``[(key name, [(channel name, [NativeVolume...], [subject id...]), ...]), ...]``;
    /// ``mode``: ``full_volume``, ``patch`` or ``slice_2d``; ``foreground``: ``(key, channel)`` of
    /// a mask to centre patches on (indexed now, in parallel).
    #[new]
    #[pyo3(signature = (keys, mode, patch_size=None, axis=2, patches_per_volume=1, seed=0, foreground=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        keys: Vec<(String, Vec<ChannelArg<'_>>)>,
        mode: &str,
        patch_size: Option<(u64, u64, u64)>,
        axis: usize,
        patches_per_volume: u64,
        seed: u64,
        foreground: Option<(usize, usize)>,
    ) -> PyResult<PyPlan> {
        let mode = mode_of(mode, patch_size, axis).py(py)?;
        let keys: Vec<Key> = keys
            .into_iter()
            .map(|(name, chans)| Key {
                name,
                channels: chans
                    .into_iter()
                    .map(|(name, vols, subjects)| Channel {
                        name,
                        volumes: vols.iter().map(|v| v.inner.clone()).collect(),
                        subjects,
                    })
                    .collect(),
            })
            .collect();
        let config = PlanConfig { mode, patches_per_volume, seed, foreground };
        let plan = run(py, || Plan::new(keys, config))?;
        Ok(PyPlan { inner: Arc::new(plan) })
    }

    fn __len__(&self) -> usize {
        usize::try_from(self.inner.len()).unwrap_or(usize::MAX)
    }

    /// Volumes per channel.
    #[getter]
    fn n_volumes(&self) -> usize {
        self.inner.n_volumes()
    }

    /// Shape of each volume.
    #[getter]
    fn shapes(&self) -> Vec<Vec<u64>> {
        self.inner.shapes().to_vec()
    }

    /// dtype name of each key's array.
    #[getter]
    fn dtypes(&self) -> Vec<String> {
        self.inner.dtypes().iter().map(|d| d.numpy_name().unwrap_or("float32").to_owned()).collect()
    }

    /// The seed of every random choice.
    #[getter]
    fn seed(&self) -> u64 {
        self.inner.config().seed
    }

    /// Batches the native prefetcher reads ahead by default (more on object stores).
    #[getter]
    fn recommended_prefetch(&self) -> usize {
        self.inner.recommended_prefetch()
    }

    /// Threads of the worker pool that reads this plan's batches (this process's context).
    #[getter]
    fn threads(&self, py: Python<'_>) -> PyResult<usize> {
        let plan = self.inner.clone();
        run(py, move || plan.context().and_then(|c| c.pool().map(rayon::ThreadPool::current_num_threads)))
    }

    /// Shape of one item of one channel of volume ``volume``.
    fn item_shape(&self, volume: usize) -> Vec<u64> {
        self.inner.item_shape(volume)
    }

    /// ``(volume, patch_idx, slice_idx, start)`` of item ``index`` in ``epoch``.
    fn item(&self, py: Python<'_>, epoch: u64, index: u64) -> PyResult<(usize, u64, u64, Vec<u64>)> {
        let it = self.inner.item(epoch, index).py(py)?;
        Ok((it.volume, it.patch_idx, it.slice_idx, it.region.ranges().iter().map(|r| r.0).collect()))
    }

    /// Reads a batch of ``(epoch, index)`` items now (GIL released, on the context's pool):
    /// ``(arrays, volumes, patch_idx, slice_idx, starts, read_seconds)``.
    fn read_batch<'py>(&self, py: Python<'py>, requests: Vec<(u64, u64)>) -> PyResult<Bound<'py, PyTuple>> {
        let plan = self.inner.clone();
        let batch = run(py, move || plan.read_batch(&requests))?;
        batch_to_py(py, batch)
    }

    /// A prefetcher reading this plan's batches in the background.
    fn prefetcher(&self) -> PyPrefetcher {
        PyPrefetcher { inner: Prefetcher::new(self.inner.clone()) }
    }

    /// Foreground voxels and blocks of each mask (empty without foreground sampling).
    fn foreground_summary(&self) -> Vec<(u64, usize)> {
        self.inner
            .foreground()
            .map(|f| f.masks().iter().map(|m| (m.voxels(), m.blocks())).collect())
            .unwrap_or_default()
    }

    /// Cumulative counters of this plan's reads: batches, items, bytes, read_seconds.
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.inner.counters;
        let d = PyDict::new(py);
        d.set_item("batches", c.batches.load(Relaxed))?;
        d.set_item("items", c.items.load(Relaxed))?;
        d.set_item("bytes", c.bytes.load(Relaxed))?;
        d.set_item("read_seconds", c.read_nanos.load(Relaxed) as f64 * 1e-9)?;
        Ok(d)
    }
}

/// Batches read ahead on the context's pool, returned in submission order.
#[pyclass(name = "NativePrefetcher", module = "radiobject._radiobject")]
pub struct PyPrefetcher {
    inner: Prefetcher,
}

#[pymethods]
impl PyPrefetcher {
    /// Starts reading a batch of ``(epoch, index)`` items in the background.
    fn submit(&mut self, py: Python<'_>, requests: Vec<(u64, u64)>) -> PyResult<()> {
        self.inner.submit(requests).py(py)
    }

    /// Batches submitted and not taken yet.
    #[getter]
    fn pending(&self) -> usize {
        self.inner.pending()
    }

    /// Waits (GIL released, Ctrl-C honoured) for the oldest submitted batch: the same tuple as
    /// ``NativePlan.read_batch``, plus the seconds waited. ``None`` if nothing was submitted.
    fn next<'py>(&mut self, py: Python<'py>) -> PyResult<Option<(Bound<'py, PyTuple>, f64)>> {
        let t0 = std::time::Instant::now();
        loop {
            if self.inner.pending() == 0 {
                return Ok(None);
            }
            let inner = &mut self.inner;
            match py.detach(|| inner.next_timeout(Duration::from_millis(50))) {
                Some(r) => {
                    let waited = t0.elapsed().as_secs_f64();
                    return Ok(Some((batch_to_py(py, r.py(py)?)?, waited)));
                }
                None => py.check_signals()?,
            }
        }
    }

    /// Cancels every batch that has not started reading and waits (GIL released) for those
    /// already reading.
    fn cancel(&mut self, py: Python<'_>) {
        let inner = &mut self.inner;
        py.detach(|| inner.cancel());
    }
}
