//! Volume creation, reads, writes and metadata against real libtiledb.

mod common;

use common::{TempUri, ctx_with, phantom_f32};
use ndarray::{ArrayD, IxDyn, ShapeBuilder, s};
use radiobject_core::{Datatype, Error, MetaValue, Region, SliceOrientation, Volume, WriteConfig, config::TileConfig};

fn write_cfg(orientation: SliceOrientation) -> WriteConfig {
    WriteConfig { tile: TileConfig { orientation, ..Default::default() }, ..Default::default() }
}

#[test]
fn round_trip_regions_every_orientation() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let data = phantom_f32(&[37, 29, 23]);
    for o in
        [SliceOrientation::Axial, SliceOrientation::Sagittal, SliceOrientation::Coronal, SliceOrientation::Isotropic]
    {
        let uri = tmp.uri(o.as_str());
        let vol = Volume::from_array(&uri, data.view(), &ctx, &write_cfg(o)).unwrap();
        assert_eq!(vol.shape().unwrap(), vec![37, 29, 23]);
        assert_eq!(vol.dtype().unwrap(), Datatype::Float32);
        let all = vol.read_all::<f32>().unwrap();
        assert_eq!(all, data, "{o:?} full read");
        assert!(all.t().is_standard_layout(), "reads are Fortran-ordered");
        for r in [
            [(0, 37), (0, 29), (5, 6)],
            [(3, 4), (0, 29), (0, 23)],
            [(10, 30), (7, 8), (1, 22)],
            [(1, 36), (2, 28), (3, 22)],
        ] {
            let region = Region::new(r.to_vec());
            let got = vol.read_region::<f32>(&region).unwrap();
            let want = data.slice(s![
                r[0].0 as usize..r[0].1 as usize,
                r[1].0 as usize..r[1].1 as usize,
                r[2].0 as usize..r[2].1 as usize
            ]);
            assert_eq!(got, want.into_dyn(), "{o:?} region {region}");
            // a second read (cache hits) returns the same
            assert_eq!(vol.read_region::<f32>(&region).unwrap(), got);
        }
        assert_eq!(vol.metadata().unwrap()["tile_orientation"], MetaValue::from(o.as_str()));
    }
}

#[test]
fn every_voxel_dtype_round_trips_3d_and_4d() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    macro_rules! check {
        ($t:ty, $name:expr) => {{
            for shape in [vec![6usize, 5, 4], vec![6, 5, 4, 3]] {
                let n: usize = shape.iter().product();
                let data = ArrayD::from_shape_vec(IxDyn(&shape), (0..n).map(|i| (i % 100) as $t).collect()).unwrap();
                let uri = tmp.uri(&format!("{}_{}", $name, shape.len()));
                let vol = Volume::from_array(&uri, data.view(), &ctx, &WriteConfig::default()).unwrap();
                assert_eq!(vol.read_all::<$t>().unwrap(), data);
                assert_eq!(vol.dtype().unwrap().numpy_name(), Some($name));
            }
        }};
    }
    check!(u8, "uint8");
    check!(u16, "uint16");
    check!(u32, "uint32");
    check!(u64, "uint64");
    check!(i8, "int8");
    check!(i16, "int16");
    check!(i32, "int32");
    check!(i64, "int64");
    check!(f32, "float32");
    check!(f64, "float64");
}

#[test]
fn fortran_and_strided_inputs_write_the_same_voxels() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let data = phantom_f32(&[9, 8, 7]);
    let f_order = ArrayD::from_shape_vec(IxDyn(&[9, 8, 7]).f(), data.t().iter().copied().collect::<Vec<_>>()).unwrap();
    let _ = f_order; // constructed to exercise the layout path below
    let mut f = ArrayD::<f32>::zeros(IxDyn(&[9, 8, 7]).f());
    f.assign(&data);
    let a = Volume::from_array(&tmp.uri("f"), f.view(), &ctx, &WriteConfig::default()).unwrap();
    assert_eq!(a.read_all::<f32>().unwrap(), data);
    let big = phantom_f32(&[18, 8, 7]);
    let strided = big.slice(s![..;2, .., ..]).into_dyn();
    let b = Volume::from_array(&tmp.uri("s"), strided.view(), &ctx, &WriteConfig::default()).unwrap();
    assert_eq!(b.read_all::<f32>().unwrap(), strided);
}

#[test]
fn region_writes_and_reopen_see_new_data_not_stale_tiles() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let uri = tmp.uri("v");
    let data = phantom_f32(&[20, 20, 20]);
    let vol = Volume::from_array(&uri, data.view(), &ctx, &write_cfg(SliceOrientation::Isotropic)).unwrap();
    let region = Region::new(vec![(2, 10), (3, 9), (4, 8)]);
    let before = vol.read_region::<f32>(&region).unwrap(); // caches the tile
    let patch = ArrayD::<f32>::from_elem(IxDyn(&[8, 6, 4]), -5.0);
    vol.write_region(&region, patch.view()).unwrap();
    let after = vol.read_region::<f32>(&region).unwrap();
    assert_eq!(after, patch);
    assert_ne!(before, after);
    // A second handle opened now also sees the new data, from a fresh cache version.
    let other = Volume::open(&uri, &ctx).unwrap();
    assert_eq!(other.read_region::<f32>(&region).unwrap(), patch);
    // Outside the patch nothing changed.
    assert_eq!(
        other.read_region::<f32>(&Region::new(vec![(12, 20), (0, 20), (0, 20)])).unwrap(),
        data.slice(s![12..20, .., ..]).into_dyn()
    );
}

#[test]
fn bad_inputs_give_typed_errors_and_write_nothing() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    // missing URI
    assert!(matches!(Volume::open(&tmp.uri("nope"), &ctx), Err(Error::NotFound { .. })));
    // 2D and 5D
    let d2 = ArrayD::<f32>::zeros(IxDyn(&[4, 4]));
    assert!(matches!(
        Volume::from_array(&tmp.uri("d2"), d2.view(), &ctx, &WriteConfig::default()),
        Err(Error::Shape { .. })
    ));
    let d5 = ArrayD::<f32>::zeros(IxDyn(&[2, 2, 2, 2, 2]));
    assert!(matches!(
        Volume::from_array(&tmp.uri("d5"), d5.view(), &ctx, &WriteConfig::default()),
        Err(Error::Shape { .. })
    ));
    let z = ArrayD::<f32>::zeros(IxDyn(&[4, 0, 4]));
    assert!(matches!(
        Volume::from_array(&tmp.uri("z"), z.view(), &ctx, &WriteConfig::default()),
        Err(Error::Shape { .. })
    ));
    for name in ["d2", "d5", "z"] {
        assert!(!std::path::Path::new(&tmp.uri(name)).exists(), "{name} left something behind");
    }
    // regions
    let vol = Volume::from_array(&tmp.uri("v"), phantom_f32(&[4, 5, 6]).view(), &ctx, &WriteConfig::default()).unwrap();
    assert!(matches!(vol.read_region::<f32>(&Region::new(vec![(0, 5), (0, 5), (0, 6)])), Err(Error::Region { .. })));
    assert!(matches!(vol.read_region::<f32>(&Region::new(vec![(2, 2), (0, 5), (0, 6)])), Err(Error::Region { .. })));
    assert!(matches!(vol.read_region::<u8>(&Region::full(&[4, 5, 6])), Err(Error::Dtype { .. })));
    // wrong dtype / shape on write leaves the data intact
    let before = vol.read_all::<f32>().unwrap();
    let wrong = ArrayD::<f64>::zeros(IxDyn(&[4, 5, 6]));
    assert!(matches!(vol.write_region(&Region::full(&[4, 5, 6]), wrong.view()), Err(Error::Dtype { .. })));
    let small = ArrayD::<f32>::zeros(IxDyn(&[4, 5, 5]));
    assert!(matches!(vol.write_region(&Region::full(&[4, 5, 6]), small.view()), Err(Error::Shape { .. })));
    assert_eq!(vol.read_all::<f32>().unwrap(), before);
    // existing URI is never overwritten
    let again = Volume::from_array(&tmp.uri("v"), phantom_f32(&[4, 5, 6]).view(), &ctx, &WriteConfig::default());
    assert!(matches!(again, Err(Error::AlreadyExists { .. })));
    assert_eq!(vol.read_all::<f32>().unwrap(), before);
}

#[test]
fn metadata_round_trips_with_types() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let vol = Volume::from_array_with(
        &tmp.uri("m"),
        phantom_f32(&[3, 3, 3]).view(),
        &ctx,
        &WriteConfig::default(),
        &[("obs_id".into(), "sub-01_T1w".into())],
    )
    .unwrap();
    assert_eq!(vol.obs_id().unwrap().as_deref(), Some("sub-01_T1w"));
    vol.set_metadata(&[("count".into(), MetaValue::from(7i64)), ("empty".into(), MetaValue::from(""))]).unwrap();
    let m = vol.metadata().unwrap();
    assert_eq!(m["count"], MetaValue::Int(vec![7]));
    assert_eq!(m["empty"], MetaValue::Str(String::new()));
    assert_eq!(m["obs_id"], MetaValue::from("sub-01_T1w"));
    vol.delete_metadata(&["count".into()]).unwrap();
    assert!(!vol.metadata().unwrap().contains_key("count"));
}

#[test]
fn chunked_direct_reads_match_for_narrow_tiles() {
    // Tiles narrower than the region along x or y: many tiles per row of the output.
    let tmp = TempUri::new();
    let ctx = ctx_with(|c| c.read.tile_cache_size_mb = 0);
    let data = phantom_f32(&[37, 29, 23]);
    for (name, tile) in [
        ("small", TileConfig { orientation: SliceOrientation::Isotropic, x: Some(7), y: Some(5), z: Some(4), t: 1 }),
        ("sagittal", TileConfig { orientation: SliceOrientation::Sagittal, ..Default::default() }),
        ("coronal", TileConfig { orientation: SliceOrientation::Coronal, ..Default::default() }),
    ] {
        let w = WriteConfig { tile, ..Default::default() };
        let vol = Volume::from_array(&tmp.uri(name), data.view(), &ctx, &w).unwrap();
        assert_eq!(vol.read_all::<f32>().unwrap(), data, "{name} full");
        for r in [[(3, 36), (2, 27), (1, 22)], [(0, 37), (0, 29), (5, 6)], [(6, 7), (0, 29), (0, 23)]] {
            let got = vol.read_region::<f32>(&Region::new(r.to_vec())).unwrap();
            let want = data.slice(s![
                r[0].0 as usize..r[0].1 as usize,
                r[1].0 as usize..r[1].1 as usize,
                r[2].0 as usize..r[2].1 as usize
            ]);
            assert_eq!(got, want.into_dyn(), "{name} {r:?}");
        }
    }
    // 4D with narrow tiles along t too
    let d4 =
        ndarray::ArrayD::from_shape_fn(IxDyn(&[9, 8, 7, 5]), |i| (i[0] * 1000 + i[1] * 100 + i[2] * 10 + i[3]) as f32);
    let w = WriteConfig {
        tile: TileConfig { orientation: SliceOrientation::Isotropic, x: Some(4), y: Some(3), z: Some(2), t: 2 },
        ..Default::default()
    };
    let v4 = Volume::from_array(&tmp.uri("4d"), d4.view(), &ctx, &w).unwrap();
    assert_eq!(v4.read_all::<f32>().unwrap(), d4);
}
