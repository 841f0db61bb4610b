//! Native volume: open handle, reads into NumPy without extra copies, writes, metadata.

use std::collections::BTreeMap;

use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use radiobject_core::{Datatype, Layout, MetaValue, Region, Volume, VolumeData, WriteConfig, with_voxel_type};

use crate::context::PyContext;
use crate::error::{Exc, IntoPyResult, raise, run, run_interruptible};

/// Converts a metadata value to a Python object (str, int, float, tuple or bytes).
pub(crate) fn meta_to_py<'py>(py: Python<'py>, v: &MetaValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        MetaValue::Str(s) => PyString::new(py, s).into_any(),
        MetaValue::Int(xs) if xs.len() == 1 => xs[0].into_pyobject(py)?.into_any(),
        MetaValue::Int(xs) => PyTuple::new(py, xs)?.into_any(),
        MetaValue::Float(xs) if xs.len() == 1 => xs[0].into_pyobject(py)?.into_any(),
        MetaValue::Float(xs) => PyTuple::new(py, xs)?.into_any(),
        MetaValue::Bytes(b) => PyBytes::new(py, b).into_any(),
    })
}

/// Converts a Python value to metadata (str, int, bool, float, bytes, or a sequence of numbers).
pub(crate) fn meta_from_py(key: &str, v: &Bound<'_, PyAny>) -> PyResult<MetaValue> {
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(MetaValue::Str(s.to_str()?.to_owned()));
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(MetaValue::Int(vec![i64::from(v.extract::<bool>()?)]));
    }
    if v.is_instance_of::<PyInt>() {
        return Ok(MetaValue::Int(vec![v.extract()?]));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(MetaValue::Float(vec![v.extract()?]));
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(MetaValue::Bytes(b.as_bytes().to_vec()));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        if let Ok(xs) = v.extract::<Vec<i64>>() {
            return Ok(MetaValue::Int(xs));
        }
        if let Ok(xs) = v.extract::<Vec<f64>>() {
            return Ok(MetaValue::Float(xs));
        }
    }
    // numpy scalars and other numbers
    if let Ok(x) = v.extract::<i64>() {
        return Ok(MetaValue::Int(vec![x]));
    }
    if let Ok(x) = v.extract::<f64>() {
        return Ok(MetaValue::Float(vec![x]));
    }
    Err(PyTypeError::new_err(format!(
        "metadata {key:?}: cannot store values of type {} (use str, int, float, bytes, or a list of numbers)",
        v.get_type().name()?
    )))
}

pub(crate) fn metadata_from_dict(d: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, MetaValue)>> {
    let mut out = Vec::new();
    if let Some(d) = d {
        for (k, v) in d.iter() {
            let key: String = k.extract()?;
            out.push((key.clone(), meta_from_py(&key, &v)?));
        }
    }
    Ok(out)
}

pub(crate) fn data_to_py<'py>(py: Python<'py>, data: VolumeData) -> Bound<'py, PyAny> {
    macro_rules! conv {
        ($($v:ident),*) => {
            match data { $(VolumeData::$v(a) => a.into_pyarray(py).into_any()),* }
        };
    }
    conv!(Int8, UInt8, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float32, Float64)
}

fn datatype_of(py: Python<'_>, array: &Bound<'_, PyUntypedArray>) -> PyResult<Datatype> {
    let dt = array.dtype();
    let name: String = dt.getattr("name")?.extract()?;
    if !dt.getattr("isnative")?.extract::<bool>()? {
        return Err(raise(
            py,
            Exc::Dtype,
            format!("byte-swapped arrays are not supported ({name}); use .astype(native)"),
        ));
    }
    Datatype::from_numpy_name(&name).ok_or_else(|| {
        raise(
            py,
            Exc::Dtype,
            format!("unsupported dtype {name}: volumes hold int8..int64, uint8..uint64, float32 or float64"),
        )
    })
}

/// Open handle of one volume (the array stays open for reading).
#[pyclass(name = "NativeVolume", module = "radiobject._radiobject", frozen)]
pub struct PyVolume {
    pub(crate) inner: Volume,
}

fn region_of(ranges: Vec<(u64, u64)>) -> Region {
    Region::new(ranges)
}

#[pymethods]
impl PyVolume {
    /// Opens the volume at ``uri`` through ``ctx``.
    #[staticmethod]
    fn open(py: Python<'_>, uri: &str, ctx: PyRef<'_, PyContext>) -> PyResult<PyVolume> {
        let c = ctx.inner.clone();
        let inner = run(py, || Volume::open(uri, &c))?;
        Ok(PyVolume { inner })
    }

    /// Creates an empty volume of ``shape`` and ``dtype`` (a NumPy dtype name).
    #[staticmethod]
    #[pyo3(signature = (uri, shape, dtype, ctx, write_json=None, metadata=None))]
    fn create(
        py: Python<'_>,
        uri: &str,
        shape: Vec<u64>,
        dtype: &str,
        ctx: PyRef<'_, PyContext>,
        write_json: Option<&str>,
        metadata: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyVolume> {
        let dt = Datatype::from_numpy_name(dtype).ok_or_else(|| {
            raise(
                py,
                Exc::Dtype,
                format!("unsupported dtype {dtype}: volumes hold int8..int64, uint8..uint64, float32 or float64"),
            )
        })?;
        let write = write_config(py, write_json)?;
        let meta = metadata_from_dict(metadata)?;
        let c = ctx.inner.clone();
        let inner = run(py, || Volume::create_with(uri, &shape, dt, &c, &write, &meta, None))?;
        Ok(PyVolume { inner })
    }

    /// Creates a volume holding ``data`` (any NumPy array of a voxel dtype, C/F order or strided),
    /// writing ``metadata`` in the same array session.
    #[staticmethod]
    #[pyo3(signature = (uri, data, ctx, write_json=None, metadata=None))]
    fn from_numpy(
        py: Python<'_>,
        uri: &str,
        data: &Bound<'_, PyUntypedArray>,
        ctx: PyRef<'_, PyContext>,
        write_json: Option<&str>,
        metadata: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyVolume> {
        let write = write_config(py, write_json)?;
        let meta = metadata_from_dict(metadata)?;
        let c = ctx.inner.clone();
        // the shape first, then the dtype (the order the Python API has always checked them in)
        let shape: Vec<u64> = data.shape().iter().map(|&n| n as u64).collect();
        radiobject_core::volume::check_shape(&shape).py(py)?;
        let dt = datatype_of(py, data)?;
        let inner = with_voxel_type!(dt, T => {
            let arr = data.cast::<PyArrayDyn<T>>()?.readonly();
            let view = arr.as_array();
            run(py, || Volume::from_array_with(uri, view, &c, &write, &meta))?
        }, _ => unreachable!("datatype_of only returns voxel types"));
        Ok(PyVolume { inner })
    }

    /// The array URI.
    #[getter]
    fn uri(&self) -> &str {
        self.inner.uri()
    }

    /// Voxels along each axis.
    #[getter]
    fn shape(&self, py: Python<'_>) -> PyResult<Vec<u64>> {
        self.inner.shape().py(py)
    }

    /// NumPy dtype name of the voxels.
    #[getter]
    fn dtype(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(self.inner.dtype().py(py)?.numpy_name().unwrap_or("unknown"))
    }

    /// Tile extent along each axis.
    #[getter]
    fn tile_extents(&self, py: Python<'_>) -> PyResult<Vec<u64>> {
        Ok(self.inner.info().py(py)?.tile_extents)
    }

    /// ``"row-major"`` or ``"col-major"`` cell order within tiles.
    #[getter]
    fn cell_order(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(match self.inner.info().py(py)?.cell_order {
            Layout::ColMajor => "col-major",
            _ => "row-major",
        })
    }

    /// Compression filters of the voxels, e.g. ``["zstd(3)"]``.
    #[getter]
    fn filters(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        Ok(self.inner.info().py(py)?.filters.iter().map(|f| format!("{f:?}").to_lowercase()).collect())
    }

    /// The context this volume reads through.
    #[getter]
    fn context(&self, py: Python<'_>) -> PyResult<PyContext> {
        Ok(PyContext { inner: self.inner.context().py(py)? })
    }

    /// Array metadata (as of the last open).
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m: BTreeMap<String, MetaValue> = self.inner.metadata().py(py)?;
        let d = PyDict::new(py);
        for (k, v) in &m {
            d.set_item(k, meta_to_py(py, v)?)?;
        }
        Ok(d)
    }

    /// Writes metadata items in one array session.
    fn set_metadata(&self, py: Python<'_>, items: &Bound<'_, PyDict>) -> PyResult<()> {
        let meta = metadata_from_dict(Some(items))?;
        run(py, || self.inner.set_metadata(&meta))
    }

    /// Deletes metadata keys in one array session.
    fn delete_metadata(&self, py: Python<'_>, keys: Vec<String>) -> PyResult<()> {
        run(py, || self.inner.delete_metadata(&keys))
    }

    /// Reads the region ``[(start, stop), ...]`` into a new Fortran-ordered array (no extra copy).
    fn read<'py>(&self, py: Python<'py>, region: Vec<(u64, u64)>) -> PyResult<Bound<'py, PyAny>> {
        let r = region_of(region);
        let voxels: u128 = r.ranges().iter().map(|&(a, b)| u128::from(b.saturating_sub(a))).product();
        let data = if voxels >= LONG_READ_VOXELS {
            // Long enough to want Ctrl-C (a whole volume, from S3 in particular).
            let ctx = run(py, || self.inner.context())?;
            run_interruptible(py, &ctx, || self.inner.read_region_dyn(&r))?
        } else {
            run(py, || self.inner.read_region_dyn(&r))?
        };
        Ok(data_to_py(py, data))
    }

    /// Reads the region into ``out`` (a writeable Fortran-contiguous array of the region's shape and
    /// the volume's dtype).
    fn read_into(&self, py: Python<'_>, region: Vec<(u64, u64)>, out: &Bound<'_, PyUntypedArray>) -> PyResult<()> {
        let r = region_of(region);
        let dt = datatype_of(py, out)?;
        let have = self.inner.dtype().py(py)?;
        if dt != have {
            return Err(raise(py, Exc::Dtype, format!("out has dtype {dt} but the volume stores {have}")));
        }
        if !out.is_fortran_contiguous() {
            return Err(raise(py, Exc::InvalidArgument, "out must be Fortran-contiguous (order='F')"));
        }
        let want: Vec<usize> = r.shape().iter().map(|&n| n as usize).collect();
        if out.shape() != want.as_slice() {
            return Err(raise(py, Exc::Shape, format!("out has shape {:?}; the region needs {want:?}", out.shape())));
        }
        with_voxel_type!(dt, T => {
            let arr = out.cast::<PyArrayDyn<T>>()?;
            let mut rw = arr.try_readwrite().map_err(|e| raise(py, Exc::InvalidArgument, e.to_string()))?;
            let mut view = rw.as_array_mut();
            let slice = view.as_slice_memory_order_mut().ok_or_else(|| raise(py, Exc::InvalidArgument, "out is not contiguous"))?;
            let bytes: &mut [u8] = radiobject_core::dtype::as_bytes_mut(slice);
            run(py, || self.inner.read_into(&r, bytes))
        }, _ => unreachable!("datatype_of only returns voxel types"))
    }

    /// Writes ``data`` (same dtype as the volume, shape of the region) into the region.
    fn write(&self, py: Python<'_>, region: Vec<(u64, u64)>, data: &Bound<'_, PyUntypedArray>) -> PyResult<()> {
        let r = region_of(region);
        let dt = datatype_of(py, data)?;
        with_voxel_type!(dt, T => {
            let arr = data.cast::<PyArrayDyn<T>>()?.readonly();
            let view = arr.as_array();
            run(py, || self.inner.write_region(&r, view))
        }, _ => unreachable!("datatype_of only returns voxel types"))
    }

    /// Drops the open handle and reopens the array (sees writes made elsewhere).
    fn reopen(&self, py: Python<'_>) -> PyResult<()> {
        run(py, || self.inner.reopen())
    }
}

pub(crate) fn write_config(py: Python<'_>, json: Option<&str>) -> PyResult<WriteConfig> {
    match json {
        None => Ok(radiobject_core::global_config().write),
        Some(j) => {
            let cfg: WriteConfig = serde_json::from_str(j)
                .map_err(|e| raise(py, Exc::Configuration, format!("invalid write config: {e}")))?;
            let full = radiobject_core::RadiObjectConfig { write: cfg, ..Default::default() };
            full.validate().py(py)?;
            Ok(full.write)
        }
    }
}

/// Reads of at least this many voxels run interruptibly (see [`run_interruptible`]).
const LONG_READ_VOXELS: u128 = 1 << 24;

/// One region request of [`read_batch`]: a volume and half-open ranges.
type VolumeRequest<'py> = (PyRef<'py, PyVolume>, Vec<(u64, u64)>);

/// Reads many regions of many volumes on ``ctx``'s worker pool, with the GIL released; results
/// in request order.
#[pyfunction]
pub fn read_batch<'py>(
    py: Python<'py>,
    ctx: PyRef<'py, PyContext>,
    requests: Vec<VolumeRequest<'py>>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let reqs: Vec<(Volume, Region)> = requests.iter().map(|(v, r)| (v.inner.clone(), region_of(r.clone()))).collect();
    let c = ctx.inner.clone();
    let out = run_interruptible(py, &c, || radiobject_core::parallel::read_batch(&c, &reqs))?;
    Ok(out.into_iter().map(|d| data_to_py(py, d)).collect())
}

/// Reads attribute ``attr`` of the dense array at ``uri`` with radiobject's own TileDB format
/// reader only (never libtiledb), as of ``timestamp_ms`` (None = now), whole domain or
/// ``region`` (half-open ranges from the domain's low corner), C order. Raises
/// ``InvalidArgumentError`` naming the reason when the reader refuses the array. For
/// differential tests and diagnosis.
#[pyfunction]
#[pyo3(signature = (uri, ctx, attr="voxels", timestamp_ms=None, region=None))]
pub fn direct_read<'py>(
    py: Python<'py>,
    uri: &str,
    ctx: PyRef<'py, PyContext>,
    attr: &str,
    timestamp_ms: Option<u64>,
    region: Option<Vec<(u64, u64)>>,
) -> PyResult<Bound<'py, PyAny>> {
    let c = ctx.inner.clone();
    let region = region.map(region_of);
    let data = py
        .detach(|| radiobject_core::volume::direct_read_array(&c, uri, attr, timestamp_ms, region.as_ref()))
        .py(py)?;
    Ok(data_to_py(py, data))
}
