//! Native dataframes, collections, datasets and their writers.
//!
//! Frames cross the boundary as ``{name: (kind, values, valid)}`` dicts (insertion-ordered):
//! ``kind`` is ``"str"`` or a NumPy dtype name, ``values`` a list of str or a NumPy array,
//! ``valid`` ``None`` (no nulls) or a NumPy bool array (True = present).

use numpy::{IntoPyArray, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use radiobject_core::collection::{Cell, CollectionWriter, VolumeCollection};
use radiobject_core::dataframe::{Column, ColumnType, Dataframe, Frame, Values};
use radiobject_core::dataset::{Dataset, DatasetWriter};
use radiobject_core::{Datatype, with_voxel_type};

use crate::context::PyContext;
use crate::error::{Exc, IntoPyResult, raise, run};
use crate::volume::{PyVolume, meta_to_py, metadata_from_dict, write_config};

fn kind_of(dt: Datatype) -> &'static str {
    match dt {
        Datatype::StringUtf8 | Datatype::StringAscii | Datatype::Char => "str",
        d => d.numpy_name().unwrap_or("bytes"),
    }
}

fn datatype_of_kind(kind: &str) -> Option<Datatype> {
    match kind {
        "str" => Some(Datatype::StringUtf8),
        "bool" => Some(Datatype::Bool),
        k => Datatype::from_numpy_name(k),
    }
}

/// Frame -> dict of (kind, values, valid).
pub(crate) fn frame_to_py<'py>(py: Python<'py>, frame: &Frame) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for c in &frame.columns {
        let kind = kind_of(c.values.datatype());
        let values: Bound<'py, PyAny> = match &c.values {
            Values::Str(v) => PyList::new(py, v)?.into_any(),
            Values::Fixed { datatype, bytes } => {
                let dt = *datatype;
                if dt == Datatype::Bool {
                    let v: Vec<bool> = bytes.iter().map(|&b| b != 0).collect();
                    v.into_pyarray(py).into_any()
                } else {
                    with_voxel_type!(dt, T => {
                        let mut v: Vec<T> = vec![<T as bytemuck::Zeroable>::zeroed(); bytes.len() / std::mem::size_of::<T>()];
                        bytemuck::cast_slice_mut(&mut v).copy_from_slice(bytes);
                        v.into_pyarray(py).into_any()
                    }, _ => pyo3::types::PyBytes::new(py, bytes).into_any())
                }
            }
        };
        let valid: Bound<'py, PyAny> = match &c.valid {
            Some(v) => v.clone().into_pyarray(py).into_any(),
            None => py.None().into_bound(py),
        };
        out.set_item(&c.name, PyTuple::new(py, [PyString::new(py, kind).into_any(), values, valid])?)?;
    }
    Ok(out)
}

/// dict of (kind, values, valid) -> Frame.
pub(crate) fn frame_from_py(d: &Bound<'_, PyDict>) -> PyResult<Frame> {
    let mut columns = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let name: String = k.extract()?;
        let (kind, values, valid): (String, Bound<'_, PyAny>, Option<Bound<'_, PyAny>>) = v.extract()?;
        let valid: Option<Vec<bool>> = match valid {
            Some(m) if !m.is_none() => Some(m.extract()?),
            _ => None,
        };
        let dt = datatype_of_kind(&kind)
            .ok_or_else(|| PyTypeError::new_err(format!("column {name:?}: unsupported type {kind:?}")))?;
        let values = if dt == Datatype::StringUtf8 {
            let items: Vec<Option<String>> = values.extract()?;
            Values::Str(items.into_iter().map(Option::unwrap_or_default).collect())
        } else if dt == Datatype::Bool {
            let arr = values.cast::<PyUntypedArray>()?;
            let v: Vec<bool> = arr.call_method1("astype", ("bool",))?.call_method0("tolist")?.extract()?;
            Values::bool(v)
        } else {
            with_voxel_type!(dt, T => {
                let arr = values.cast::<numpy::PyArrayDyn<T>>()?.readonly();
                let v: Vec<T> = arr.as_array().iter().copied().collect();
                Values::Fixed { datatype: dt, bytes: bytemuck::cast_slice(&v).to_vec() }
            }, _ => return Err(PyTypeError::new_err(format!("column {name:?}: unsupported type {kind:?}"))))
        };
        columns.push(Column { name, values, valid });
    }
    let f = Frame { columns };
    f.check().map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(f)
}

fn schema_from_py(schema: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, ColumnType)>> {
    let mut out = Vec::new();
    if let Some(s) = schema {
        for (k, v) in s.iter() {
            let name: String = k.extract()?;
            let kind: String = v.extract()?;
            let dt = datatype_of_kind(&kind)
                .ok_or_else(|| PyTypeError::new_err(format!("obs column {name:?}: unsupported type {kind:?}")))?;
            out.push((name, ColumnType { datatype: dt, var: dt == Datatype::StringUtf8 }));
        }
    }
    Ok(out)
}

/// One obs value from Python. None, NaN and pandas' `NA`/`NaT` are nulls; NumPy scalars count as
/// their Python kinds. Converting it to a column's stored type is the core's rule (`cell_column`).
fn cell_from_py(v: &Bound<'_, PyAny>) -> PyResult<Cell> {
    use pyo3::types::{PyBool, PyFloat, PyInt};
    if v.is_none() || matches!(v.get_type().name()?.to_str()?, "NAType" | "NaTType") {
        return Ok(Cell::Null);
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Cell::Str(s.to_str()?.to_owned()));
    }
    let numpy_kind = v.getattr("dtype").and_then(|d| d.getattr("kind")).and_then(|k| k.extract::<String>()).ok();
    if v.is_instance_of::<PyBool>() || numpy_kind.as_deref() == Some("b") {
        return Ok(Cell::Bool(v.is_truthy()?));
    }
    if v.is_instance_of::<PyInt>() {
        return v
            .extract()
            .map(Cell::Int)
            .map_err(|_| raise(v.py(), Exc::Schema, format!("obs value {v} does not fit int64")));
    }
    let float = |x: f64| if x.is_nan() { Cell::Null } else { Cell::Float(x) };
    if v.is_instance_of::<PyFloat>() || numpy_kind.as_deref() == Some("f") {
        return Ok(float(v.extract()?));
    }
    if let Ok(x) = v.extract::<i64>() {
        return Ok(Cell::Int(x));
    }
    if numpy_kind.is_none()
        && let Ok(x) = v.extract::<f64>()
    {
        return Ok(float(x));
    }
    Err(raise(
        v.py(),
        Exc::Schema,
        format!(
            "cannot store a {} value ({}) in a column: give str, int, float, bool or None (store datetimes \
             as text, e.g. .isoformat(), or as int64 ns since the epoch)",
            v.get_type().name()?,
            v.repr()?
        ),
    ))
}

fn attrs_from_py(d: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, Cell)>> {
    let mut out = Vec::new();
    if let Some(d) = d {
        for (k, v) in d.iter() {
            out.push((k.extract()?, cell_from_py(&v)?));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------

/// One image of ``write_images``: ``(path, format, obs_id, obs_subject_id, attrs or None)``.
type ImageArg<'py> = (std::path::PathBuf, String, String, String, Option<Bound<'py, PyDict>>);

/// A sparse dataframe array (``obs`` or ``obs_meta``).
#[pyclass(name = "NativeDataframe", module = "radiobject._radiobject")]
pub struct PyDataframe {
    inner: Dataframe,
}

#[pymethods]
impl PyDataframe {
    /// Opens the dataframe at ``uri``.
    #[staticmethod]
    fn open(py: Python<'_>, uri: &str, ctx: PyRef<'_, PyContext>) -> PyResult<PyDataframe> {
        let c = ctx.inner.clone();
        Ok(PyDataframe { inner: run(py, || Dataframe::open(&c, uri))? })
    }

    /// Creates a dataframe with string index columns and typed attribute columns.
    #[staticmethod]
    #[pyo3(signature = (uri, ctx, index_columns, schema=None))]
    fn create(
        py: Python<'_>,
        uri: &str,
        ctx: PyRef<'_, PyContext>,
        index_columns: Vec<String>,
        schema: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyDataframe> {
        let c = ctx.inner.clone();
        let cols = schema_from_py(schema)?;
        let idx: Vec<&str> = index_columns.iter().map(String::as_str).collect();
        Ok(PyDataframe { inner: run(py, || Dataframe::create(&c, uri, &idx, &cols))? })
    }

    /// Index column names.
    #[getter]
    fn index_columns(&self) -> Vec<String> {
        self.inner.index_columns().to_vec()
    }

    /// ``[(name, kind)]`` of the attribute columns.
    #[getter]
    fn columns(&self) -> Vec<(String, &'static str)> {
        self.inner.columns().into_iter().map(|(n, t)| (n, kind_of(t.datatype))).collect()
    }

    /// Reads all rows (sorted by index), optionally only some attribute columns.
    #[pyo3(signature = (columns=None))]
    fn read<'py>(&self, py: Python<'py>, columns: Option<Vec<String>>) -> PyResult<Bound<'py, PyDict>> {
        let f = run(py, || self.inner.read(columns.as_deref()))?;
        frame_to_py(py, &f)
    }

    /// Number of rows.
    fn count(&self, py: Python<'_>) -> PyResult<usize> {
        run(py, || self.inner.count())
    }

    /// Writes full rows (missing columns as nulls, new columns added); replaces rows with the same index.
    fn write(&mut self, py: Python<'_>, frame: &Bound<'_, PyDict>) -> PyResult<()> {
        let f = frame_from_py(frame)?;
        let inner = &mut self.inner;
        run(py, || inner.write(&f))
    }

    /// Upserts rows: a row whose index exists replaces it, keeping the stored values of columns
    /// the rows lack; other rows are added. Every column must exist already.
    fn update(&mut self, py: Python<'_>, frame: &Bound<'_, PyDict>) -> PyResult<()> {
        let f = frame_from_py(frame)?;
        let inner = &mut self.inner;
        run(py, || inner.update(&f))
    }

    /// Adds typed columns (``{name: kind}``).
    fn add_columns(&mut self, py: Python<'_>, schema: &Bound<'_, PyDict>) -> PyResult<()> {
        let cols = schema_from_py(Some(schema))?;
        let inner = &mut self.inner;
        run(py, || inner.add_columns(&cols))
    }

    /// Drops an attribute column (not an index column; it must exist).
    fn drop_column(&mut self, py: Python<'_>, name: &str) -> PyResult<()> {
        let inner = &mut self.inner;
        run(py, || inner.drop_column(name))
    }

    /// Deletes the rows whose index values are in ``keys`` (a frame of the index columns);
    /// returns the number of distinct keys given.
    fn delete(&self, py: Python<'_>, keys: &Bound<'_, PyDict>) -> PyResult<usize> {
        let f = frame_from_py(keys)?;
        run(py, || self.inner.delete(&f))
    }
}

/// An opened volume collection.
#[pyclass(name = "NativeCollection", module = "radiobject._radiobject", frozen)]
pub struct PyCollection {
    pub(crate) inner: VolumeCollection,
}

#[pymethods]
impl PyCollection {
    /// Opens the collection at ``uri``.
    #[staticmethod]
    fn open(py: Python<'_>, uri: &str, ctx: PyRef<'_, PyContext>) -> PyResult<PyCollection> {
        let c = ctx.inner.clone();
        Ok(PyCollection { inner: run(py, || VolumeCollection::open(uri, &c))? })
    }

    /// The collection URI.
    #[getter]
    fn uri(&self) -> &str {
        self.inner.uri()
    }

    /// The ``name`` metadata.
    #[getter]
    fn name(&self) -> Option<String> {
        self.inner.name()
    }

    /// ``(x, y, z)`` if uniform.
    #[getter]
    fn shape(&self) -> Option<(u64, u64, u64)> {
        self.inner.shape().map(|s| (s[0], s[1], s[2]))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Group metadata.
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.inner.metadata() {
            d.set_item(k, meta_to_py(py, v)?)?;
        }
        Ok(d)
    }

    /// obs rows (sorted by subject, obs_id), as a frame dict.
    fn obs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        frame_to_py(py, self.inner.obs())
    }

    /// obs_ids in rank order.
    #[getter]
    fn obs_ids(&self) -> Vec<String> {
        self.inner.obs_ids().to_vec()
    }

    /// Subject of each volume, in rank order.
    #[getter]
    fn subject_ids(&self) -> Vec<String> {
        self.inner.subject_ids().to_vec()
    }

    /// Member names of the volumes group.
    #[getter]
    fn members(&self) -> Vec<String> {
        self.inner.members().to_vec()
    }

    /// The volume at ``rank`` (opened once, cached).
    fn volume(&self, py: Python<'_>, rank: usize) -> PyResult<PyVolume> {
        Ok(PyVolume { inner: run(py, || self.inner.volume(rank))? })
    }

    /// Volumes at several ranks, opened in parallel on the context's pool.
    fn volumes(&self, py: Python<'_>, ranks: Vec<usize>) -> PyResult<Vec<PyVolume>> {
        use rayon::prelude::*;
        let inner = &self.inner;
        let out = py
            .detach(|| {
                inner
                    .context()
                    .pool()?
                    .install(|| ranks.par_iter().map(|&r| inner.volume(r)).collect::<Result<Vec<_>, _>>())
            })
            .py(py)?;
        Ok(out.into_iter().map(|inner| PyVolume { inner }).collect())
    }

    /// URI of the volume at ``rank``.
    fn volume_uri(&self, py: Python<'_>, rank: usize) -> PyResult<String> {
        self.inner.volume_uri(rank).py(py)
    }

    /// Rank of ``obs_id`` (None if absent).
    fn rank_of(&self, obs_id: &str) -> Option<usize> {
        self.inner.rank_of(obs_id)
    }

    /// Whether every volume sits at its sorted position (reads every volume's metadata).
    fn is_in_sorted_layout(&self, py: Python<'_>) -> PyResult<bool> {
        run(py, || self.inner.is_in_sorted_layout())
    }

    /// The context this collection reads through.
    #[getter]
    fn context(&self) -> PyContext {
        PyContext { inner: self.inner.context().clone() }
    }
}

/// Writes volumes into a new or existing collection; registers them at ``finish()``.
#[pyclass(name = "NativeCollectionWriter", module = "radiobject._radiobject")]
pub struct PyCollectionWriter {
    inner: Option<CollectionWriter>,
}

impl PyCollectionWriter {
    fn writer(&mut self, py: Python<'_>) -> PyResult<&mut CollectionWriter> {
        self.inner.as_mut().ok_or_else(|| raise(py, Exc::Storage, "this writer is already finished or aborted"))
    }
}

#[pymethods]
impl PyCollectionWriter {
    /// Starts a new collection at ``uri``.
    #[staticmethod]
    #[pyo3(signature = (uri, ctx, name=None, shape=None, obs_schema=None, write_json=None))]
    fn create(
        py: Python<'_>,
        uri: &str,
        ctx: PyRef<'_, PyContext>,
        name: Option<String>,
        shape: Option<Vec<u64>>,
        obs_schema: Option<&Bound<'_, PyDict>>,
        write_json: Option<&str>,
    ) -> PyResult<PyCollectionWriter> {
        let c = ctx.inner.clone();
        let schema = schema_from_py(obs_schema)?;
        let write = write_config(py, write_json)?;
        let w = py
            .detach(|| CollectionWriter::create(&c, uri, name.as_deref(), shape.as_deref(), &schema, &write))
            .py(py)?;
        Ok(PyCollectionWriter { inner: Some(w) })
    }

    /// Appends to an existing collection on its own: takes its dataset's write lock (when it
    /// belongs to one) until the writer finishes, and reads the collection again under it.
    #[staticmethod]
    #[pyo3(signature = (collection, write_json=None))]
    fn append_alone(
        py: Python<'_>,
        collection: PyRef<'_, PyCollection>,
        write_json: Option<&str>,
    ) -> PyResult<PyCollectionWriter> {
        let write = write_config(py, write_json)?;
        let coll = collection.inner.clone();
        Ok(PyCollectionWriter { inner: Some(run(py, || CollectionWriter::append_alone(&coll, &write))?) })
    }

    /// Writes one volume and buffers its obs row (``attrs``: column -> str/int/float/bool/None).
    #[pyo3(signature = (data, obs_id, obs_subject_id, attrs=None, metadata=None))]
    fn write_volume(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyUntypedArray>,
        obs_id: &str,
        obs_subject_id: &str,
        attrs: Option<&Bound<'_, PyDict>>,
        metadata: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let attrs = attrs_from_py(attrs)?;
        let meta = metadata_from_dict(metadata)?;
        let name: String = data.dtype().getattr("name")?.extract()?;
        let dt = Datatype::from_numpy_name(&name)
            .ok_or_else(|| raise(py, Exc::Dtype, format!("unsupported dtype {name} for a volume")))?;
        let w = self.writer(py)?;
        with_voxel_type!(dt, T => {
            let arr = data.cast::<numpy::PyArrayDyn<T>>()?.readonly();
            let view = arr.as_array();
            run(py, || w.write_volume(view, obs_id, obs_subject_id, &attrs, &meta))
        }, _ => unreachable!("from_numpy_name returns voxel types"))
    }

    /// Reads image files with the native readers (``ReadConfig.max_workers`` at a time, GIL
    /// released, Ctrl-C honoured) and writes each as a volume with the imaging obs columns and
    /// orientation metadata ingest records (``original_affine`` per the writer's configuration).
    /// ``items``: ``[(path, "nifti"|"dicom", obs_id, obs_subject_id, attrs or None)]``;
    /// ``reorient``: None follows the configuration, True its target, False none, or
    /// ``"RAS"``/``"LAS"``/``"LPS"``; ``uniform``: every image must have the first one's spatial
    /// shape; ``progress(done, total)`` after each volume.
    #[pyo3(signature = (items, reorient=None, uniform=false, progress=None))]
    fn write_images(
        &mut self,
        py: Python<'_>,
        items: Vec<ImageArg<'_>>,
        reorient: Option<&Bound<'_, PyAny>>,
        uniform: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        use radiobject_core::ingest::{ImageFormat, ImageItem, write_images};
        let config = self.writer(py)?.context().config().clone();
        let reorient = crate::ingest::reorient_of(py, reorient, &config)?;
        let store_original_affine = config.write.orientation.store_original_affine;
        let mut images = Vec::with_capacity(items.len());
        for (path, format, obs_id, subject_id, attrs) in items {
            let format = crate::ingest::format_of(py, Some(&format))?.unwrap_or(ImageFormat::Nifti);
            images.push(ImageItem { path, format, obs_id, subject_id, attrs: attrs_from_py(attrs.as_ref())? });
        }
        let w = self.writer(py)?;
        let ctx = w.context().clone();
        let tick = move |done: usize, total: usize| {
            if let Some(cb) = &progress {
                Python::attach(|py| {
                    if let Err(e) = cb.call1(py, (done, total)) {
                        e.write_unraisable(py, None);
                    }
                });
            }
        };
        crate::error::run_interruptible(py, &ctx, || {
            write_images(w, &images, reorient, store_original_affine, uniform, &tick)
        })
    }

    /// Volumes written by this writer so far.
    #[getter]
    fn n_written(&self) -> usize {
        self.inner.as_ref().map_or(0, CollectionWriter::n_written)
    }

    /// Registers everything written and returns the collection.
    fn finish(&mut self, py: Python<'_>) -> PyResult<PyCollection> {
        let w =
            self.inner.take().ok_or_else(|| raise(py, Exc::Storage, "this writer is already finished or aborted"))?;
        Ok(PyCollection { inner: run(py, || w.finish())? })
    }

    /// Removes what this writer wrote (the collection too if it created it).
    fn abort(&mut self, py: Python<'_>) -> PyResult<()> {
        match self.inner.take() {
            Some(w) => run(py, || w.abort()),
            None => Ok(()),
        }
    }
}

/// An opened dataset (RadiObject).
#[pyclass(name = "NativeDataset", module = "radiobject._radiobject", frozen)]
pub struct PyDataset {
    pub(crate) inner: Dataset,
}

#[pymethods]
impl PyDataset {
    /// Opens the dataset at ``uri``.
    #[staticmethod]
    fn open(py: Python<'_>, uri: &str, ctx: PyRef<'_, PyContext>) -> PyResult<PyDataset> {
        let c = ctx.inner.clone();
        Ok(PyDataset { inner: run(py, || Dataset::open(uri, &c))? })
    }

    /// The root URI.
    #[getter]
    fn uri(&self) -> &str {
        self.inner.uri()
    }

    /// Root metadata.
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.inner.metadata() {
            d.set_item(k, meta_to_py(py, v)?)?;
        }
        Ok(d)
    }

    /// obs_meta rows (sorted), as a frame dict.
    fn obs_meta<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        frame_to_py(py, self.inner.obs_meta())
    }

    /// Index columns of obs_meta.
    #[getter]
    fn obs_meta_index(&self) -> Vec<String> {
        self.inner.obs_meta_index().to_vec()
    }

    /// Subject ids, sorted.
    #[getter]
    fn subject_ids(&self) -> Vec<String> {
        self.inner.subject_ids().to_vec()
    }

    /// Collection names in member order.
    #[getter]
    fn collection_names(&self) -> Vec<String> {
        self.inner.collection_names().to_vec()
    }

    /// The collection ``name``.
    fn collection(&self, py: Python<'_>, name: &str) -> PyResult<PyCollection> {
        Ok(PyCollection { inner: run(py, || self.inner.collection(name))? })
    }

    /// Renames a collection (directory, member and name metadata); returns the reopened dataset.
    fn rename_collection(&self, py: Python<'_>, old: &str, new: &str) -> PyResult<PyDataset> {
        Ok(PyDataset { inner: run(py, || self.inner.rename_collection(old, new))? })
    }

    /// Copies the dataset to ``dst``.
    fn copy_to(&self, py: Python<'_>, dst: &str) -> PyResult<PyDataset> {
        Ok(PyDataset { inner: run(py, || self.inner.copy_to(dst))? })
    }

    /// The context this dataset reads through.
    #[getter]
    fn context(&self) -> PyContext {
        PyContext { inner: self.inner.context().clone() }
    }
}

/// Builds a dataset: skeleton, collections (registered one by one), obs_meta and counts.
#[pyclass(name = "NativeDatasetWriter", module = "radiobject._radiobject")]
pub struct PyDatasetWriter {
    inner: Option<DatasetWriter>,
}

impl PyDatasetWriter {
    fn writer(&mut self, py: Python<'_>) -> PyResult<&mut DatasetWriter> {
        self.inner.as_mut().ok_or_else(|| raise(py, Exc::Storage, "this writer is already finished or aborted"))
    }
}

#[pymethods]
impl PyDatasetWriter {
    /// Creates the dataset skeleton at ``uri``.
    #[staticmethod]
    #[pyo3(signature = (uri, ctx, obs_meta_schema=None))]
    fn create(
        py: Python<'_>,
        uri: &str,
        ctx: PyRef<'_, PyContext>,
        obs_meta_schema: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyDatasetWriter> {
        let c = ctx.inner.clone();
        let schema = schema_from_py(obs_meta_schema)?;
        Ok(PyDatasetWriter { inner: Some(run(py, || DatasetWriter::create(&c, uri, &schema))?) })
    }

    /// Creates a dataset around collections already at ``<uri>/collections/<name>`` (``keep``);
    /// a rollback never removes them. Register them with ``link``.
    #[staticmethod]
    #[pyo3(signature = (uri, ctx, keep, obs_meta_schema=None))]
    fn create_around(
        py: Python<'_>,
        uri: &str,
        ctx: PyRef<'_, PyContext>,
        keep: Vec<String>,
        obs_meta_schema: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyDatasetWriter> {
        let c = ctx.inner.clone();
        let schema = schema_from_py(obs_meta_schema)?;
        Ok(PyDatasetWriter { inner: Some(run(py, || DatasetWriter::create_around(&c, uri, &schema, &keep))?) })
    }

    /// Registers a collection already at ``<uri>/collections/<name>``.
    fn link(&mut self, py: Python<'_>, name: &str) -> PyResult<PyCollection> {
        let w = self.writer(py)?;
        Ok(PyCollection { inner: run(py, || w.link(name))? })
    }

    /// Continues an existing dataset.
    #[staticmethod]
    fn extend(py: Python<'_>, dataset: PyRef<'_, PyDataset>) -> PyResult<PyDatasetWriter> {
        Ok(PyDatasetWriter { inner: Some(DatasetWriter::extend(&dataset.inner).py(py)?) })
    }

    /// Buffers obs_meta rows (a frame dict with ``obs_subject_id``).
    fn write_obs_meta(&mut self, py: Python<'_>, frame: &Bound<'_, PyDict>) -> PyResult<()> {
        let f = frame_from_py(frame)?;
        self.writer(py)?.write_obs_meta(f).py(py)
    }

    /// Starts collection ``name``; register it with ``register`` when written.
    #[pyo3(signature = (name, shape=None, obs_schema=None, write_json=None))]
    fn add_collection(
        &mut self,
        py: Python<'_>,
        name: &str,
        shape: Option<Vec<u64>>,
        obs_schema: Option<&Bound<'_, PyDict>>,
        write_json: Option<&str>,
    ) -> PyResult<PyCollectionWriter> {
        let schema = schema_from_py(obs_schema)?;
        let write = write_config(py, write_json)?;
        let w = self.writer(py)?;
        let cw = run(py, || w.add_collection(name, shape.as_deref(), &schema, &write))?;
        Ok(PyCollectionWriter { inner: Some(cw) })
    }

    /// Refuses ``name`` for a new collection (invalid, or already in the dataset or this writer).
    fn check_new_collection(&mut self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.writer(py)?.check_new_collection(name).py(py)
    }

    /// Starts appending to the dataset's collection ``name``; register it with ``register``.
    #[pyo3(signature = (name, write_json=None))]
    fn append_collection(
        &mut self,
        py: Python<'_>,
        name: &str,
        write_json: Option<&str>,
    ) -> PyResult<PyCollectionWriter> {
        let write = write_config(py, write_json)?;
        let w = self.writer(py)?;
        Ok(PyCollectionWriter { inner: Some(run(py, || w.append_collection(name, &write))?) })
    }

    /// Takes a written collection writer: its obs_ids are checked against the other collections
    /// now, and it is registered when this writer finishes.
    fn register(&mut self, py: Python<'_>, mut writer: PyRefMut<'_, PyCollectionWriter>) -> PyResult<()> {
        let cw =
            writer.inner.take().ok_or_else(|| raise(py, Exc::Storage, "that collection writer is already finished"))?;
        let w = self.writer(py)?;
        run(py, || w.register(cw))
    }

    /// Writes obs_meta (with obs_ids) and counts; returns the dataset.
    fn finish(&mut self, py: Python<'_>) -> PyResult<PyDataset> {
        let w =
            self.inner.take().ok_or_else(|| raise(py, Exc::Storage, "this writer is already finished or aborted"))?;
        Ok(PyDataset { inner: run(py, || w.finish())? })
    }

    /// Removes the dataset if this writer created it.
    fn abort(&mut self, py: Python<'_>) -> PyResult<()> {
        match self.inner.take() {
            Some(w) => run(py, || w.abort()),
            None => Ok(()),
        }
    }
}

/// New obs_ids ``{sid}_{name}`` for volumes of ``subject_ids`` (in order), with ``_acq-{k}`` when
/// the id is in ``taken`` or already given to an earlier volume.
#[pyfunction]
#[pyo3(signature = (subject_ids, name, taken=Vec::new()))]
fn assign_obs_ids(subject_ids: Vec<String>, name: &str, taken: Vec<String>) -> Vec<String> {
    radiobject_core::collection::assign_obs_ids(&subject_ids, name, &taken)
}

/// The series type of an image file from its name (BIDS suffix, then name patterns), e.g.
/// ``"T1w"``, ``"FLAIR"``, ``"CT"``; ``"unknown"`` when nothing matches. Reads nothing.
#[pyfunction]
fn infer_series_type(path: std::path::PathBuf) -> String {
    radiobject_core::imaging::infer_series_type(&path, None)
}

/// The subjects of ``given`` new to a dataset holding ``existing``, sorted; each needs a row in
/// ``obs_meta`` (the subjects with a row; None: no obs_meta given), else ``AlignmentError``.
#[pyfunction]
#[pyo3(signature = (existing, given, obs_meta=None))]
fn new_subjects_with_rows(
    py: Python<'_>,
    existing: Vec<String>,
    given: Vec<String>,
    obs_meta: Option<Vec<String>>,
) -> PyResult<Vec<String>> {
    radiobject_core::collection::new_subjects_with_rows(&existing, &given, obs_meta.as_deref()).py(py)
}

/// Refuses obs_ids that are not unique across a dataset: ``new`` is ``[(collection, [obs_id])]``
/// about to be written, ``dataset`` the dataset they go into (its collections' obs_ids count as
/// taken); ``AlignmentError`` names the clashes.
#[pyfunction]
#[pyo3(signature = (new, dataset=None))]
fn check_unique_obs_ids(
    py: Python<'_>,
    new: Vec<(String, Vec<String>)>,
    dataset: Option<PyRef<'_, PyDataset>>,
) -> PyResult<()> {
    let ds = dataset.map(|d| d.inner.clone());
    run(py, || {
        let mut stored = Vec::new();
        if let Some(ds) = &ds {
            for name in ds.collection_names() {
                stored.push((name.clone(), ds.collection(name)?.obs_ids().to_vec()));
            }
        }
        radiobject_core::dataset::check_unique_obs_ids(&new, &stored)
    })
}

/// One frame column ``(kind, values, valid)`` of Python values, of the stored type ``kind``
/// (``"str"``, ``"int8"``...) or, when None, of the type the values imply (text, bool, int64, or
/// float64 for floats with ints). Values convert exactly or raise ``SchemaError`` (the rule of obs
/// values); None, NaN and pandas' NA/NaT are nulls.
#[pyfunction]
#[pyo3(signature = (name, values, kind=None))]
fn cells_column<'py>(
    py: Python<'py>,
    name: &str,
    values: Vec<Bound<'py, PyAny>>,
    kind: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let target = match kind {
        None => None,
        Some(k) => {
            let dt = datatype_of_kind(k)
                .ok_or_else(|| raise(py, Exc::Schema, format!("column {name:?}: unsupported type {k:?}")))?;
            Some(ColumnType { datatype: dt, var: dt == Datatype::StringUtf8 })
        }
    };
    let cells = values.iter().map(cell_from_py).collect::<PyResult<Vec<Cell>>>()?;
    let column = radiobject_core::collection::cells_column(name, &cells, target).py(py)?;
    frame_to_py(py, &Frame { columns: vec![column] })?.get_item(name)?.ok_or_else(|| PyValueError::new_err("no column"))
}

/// Registers the dataset classes.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(new_subjects_with_rows, m)?)?;
    m.add_function(wrap_pyfunction!(check_unique_obs_ids, m)?)?;
    m.add_function(wrap_pyfunction!(cells_column, m)?)?;
    m.add_function(wrap_pyfunction!(assign_obs_ids, m)?)?;
    m.add_function(wrap_pyfunction!(infer_series_type, m)?)?;
    m.add_class::<PyDataframe>()?;
    m.add_class::<PyCollection>()?;
    m.add_class::<PyCollectionWriter>()?;
    m.add_class::<PyDataset>()?;
    m.add_class::<PyDatasetWriter>()?;
    Ok(())
}
