//! Collections and datasets: layout, the obs_id -> volume mapping under any write order,
//! renumbering, rollback, rename and copy.

mod common;

use common::{TempUri, ctx_with};
use ndarray::{ArrayD, IxDyn};
use radiobject_core::collection::{Cell, CollectionWriter, VolumeCollection};
use radiobject_core::dataframe::{Column, Frame, Values};
use radiobject_core::dataset::DatasetWriter;
use radiobject_core::{Context, MetaValue, WriteConfig};

/// A volume whose every voxel equals `v` (so a wrong mapping is visible).
fn vol(v: f32, shape: &[usize]) -> ArrayD<f32> {
    ArrayD::from_elem(IxDyn(shape), v)
}

fn value_of(c: &VolumeCollection, rank: usize) -> f32 {
    let v = c.volume(rank).unwrap().read_all::<f32>().unwrap();
    v.iter().next().copied().unwrap()
}

fn write(w: &mut CollectionWriter, sid: &str, name: &str, v: f32, attrs: &[(String, Cell)]) {
    w.write_volume(vol(v, &[4, 3, 2]).view(), &format!("{sid}_{name}"), sid, attrs, &[]).unwrap();
}

#[test]
fn unsorted_writes_land_at_sorted_positions() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let uri = tmp.uri("T1w");
    let mut w = CollectionWriter::create(&ctx, &uri, Some("T1w"), None, &[], &WriteConfig::default()).unwrap();
    for (sid, v) in [("sub-c", 3.0), ("sub-a", 1.0), ("sub-b", 2.0)] {
        write(&mut w, sid, "T1w", v, &[("age".into(), Cell::Int((v * 10.0) as i64))]);
    }
    let c = w.finish().unwrap();
    assert_eq!(c.obs_ids(), &["sub-a_T1w", "sub-b_T1w", "sub-c_T1w"]);
    for rank in 0..3 {
        assert_eq!(value_of(&c, rank), (rank + 1) as f32, "rank {rank}");
        // the sorted layout the reference relies on: volumes/<rank> holds that rank's volume
        let v = radiobject_core::Volume::open(&format!("{uri}/volumes/{rank}"), &ctx).unwrap();
        assert_eq!(v.obs_id().unwrap().unwrap(), c.obs_ids()[rank]);
    }
    assert!(c.is_in_sorted_layout().unwrap());
    assert_eq!(c.metadata()["n_volumes"], MetaValue::Int(vec![3]));
    assert_eq!(c.metadata()["name"], MetaValue::from("T1w"));
    assert_eq!(c.shape(), Some([4, 3, 2]));
    let age = c.obs().column("age").unwrap();
    assert_eq!((0..3).map(|i| age.values.get_i64(i).unwrap()).collect::<Vec<_>>(), vec![10, 20, 30]);
    assert_eq!(c.members().len(), 3);
}

#[test]
fn appends_that_sort_first_renumber_and_stay_right() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let uri = tmp.uri("c");
    let mut w = CollectionWriter::create(&ctx, &uri, Some("c"), None, &[], &WriteConfig::default()).unwrap();
    write(&mut w, "s2", "c", 2.0, &[]);
    write(&mut w, "s3", "c", 3.0, &[]);
    let c = w.finish().unwrap();
    let mut a = CollectionWriter::append(&c, &WriteConfig::default()).unwrap();
    write(&mut a, "s1", "c", 1.0, &[("qc".into(), Cell::Str("ok".into()))]);
    let c = a.finish().unwrap();
    assert_eq!(c.obs_ids(), &["s1_c", "s2_c", "s3_c"]);
    for rank in 0..3 {
        assert_eq!(value_of(&c, rank), (rank + 1) as f32);
    }
    assert!(c.is_in_sorted_layout().unwrap());
    let qc = c.obs().column("qc").unwrap();
    assert_eq!((qc.str_at(0), qc.str_at(1)), (Some("ok"), None));
    assert_eq!(c.metadata()["n_volumes"], MetaValue::Int(vec![3]));
    // duplicates are refused before anything is written
    let mut again = CollectionWriter::append(&c, &WriteConfig::default()).unwrap();
    assert!(matches!(
        again.write_volume(vol(9.0, &[4, 3, 2]).view(), "s2_c", "s2", &[], &[]),
        Err(radiobject_core::Error::Alignment(_))
    ));
}

#[test]
fn a_mis_ordered_layout_is_detected_and_remapped() {
    // What the reference's writer leaves behind when subjects arrive unsorted: volumes/<i> in write
    // order while obs is read sorted. Simulate by swapping two volume directories.
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let uri = tmp.uri("c");
    let mut w = CollectionWriter::create(&ctx, &uri, Some("c"), None, &[], &WriteConfig::default()).unwrap();
    for (s, v) in [("a", 1.0), ("b", 2.0), ("c", 3.0)] {
        write(&mut w, s, "c", v, &[]);
    }
    w.finish().unwrap();
    let p = |i: u32| format!("{uri}/volumes/{i}");
    std::fs::rename(p(0), p(9)).unwrap();
    std::fs::rename(p(2), p(0)).unwrap();
    std::fs::rename(p(9), p(2)).unwrap();
    let c = VolumeCollection::open(&uri, &Context::new(&Default::default()).unwrap()).unwrap();
    assert!(!c.is_in_sorted_layout().unwrap());
    for rank in [2, 0, 1] {
        assert_eq!(value_of(&c, rank), (rank + 1) as f32, "rank {rank} after remapping");
    }
    assert_eq!(c.volume_by_obs_id("c_c").unwrap().obs_id().unwrap().as_deref(), Some("c_c"));
    // appending repairs the layout for the reference too
    let mut a = CollectionWriter::append(&c, &WriteConfig::default()).unwrap();
    write(&mut a, "d", "c", 4.0, &[]);
    let c = a.finish().unwrap();
    assert!(c.is_in_sorted_layout().unwrap());
    for rank in 0..4 {
        assert_eq!(value_of(&c, rank), (rank + 1) as f32);
    }
}

#[test]
fn an_unfinished_writer_leaves_nothing_registered() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let uri = tmp.uri("c");
    {
        let mut w = CollectionWriter::create(&ctx, &uri, Some("c"), None, &[], &WriteConfig::default()).unwrap();
        write(&mut w, "a", "c", 1.0, &[]);
        // dropped without finish (an error path)
    }
    assert!(!std::path::Path::new(&uri).exists());
    let mut w =
        CollectionWriter::create(&ctx, &uri, Some("c"), Some(&[4, 3, 2]), &[], &WriteConfig::default()).unwrap();
    write(&mut w, "a", "c", 1.0, &[]);
    let c = w.finish().unwrap();
    let mut a = CollectionWriter::append(&c, &WriteConfig::default()).unwrap();
    write(&mut a, "b", "c", 2.0, &[]);
    // a shape mismatch is refused before writing
    assert!(a.write_volume(vol(1.0, &[5, 3, 2]).view(), "x_c", "x", &[], &[]).is_err());
    a.abort().unwrap();
    let c = VolumeCollection::open(&uri, &ctx).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c.members().len(), 1);
    assert!(!std::path::Path::new(&format!("{uri}/volumes/1")).exists());
}

fn meta_rows(subjects: &[&str], ages: &[i64]) -> Frame {
    Frame {
        columns: vec![
            Column::new("obs_subject_id", Values::Str(subjects.iter().map(|s| (*s).to_owned()).collect())),
            Column::new("age", Values::int64(ages.to_vec())),
        ],
    }
}

#[test]
fn datasets_register_collections_and_obs_ids() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let uri = tmp.uri("radi");
    let mut d = DatasetWriter::create(&ctx, &uri, &[]).unwrap();
    d.write_obs_meta(meta_rows(&["sub-02", "sub-01"], &[50, 40])).unwrap();
    for name in ["T1w", "seg"] {
        let mut w = d.add_collection(name, None, &[], &WriteConfig::default()).unwrap();
        for s in ["sub-02", "sub-01"] {
            write(&mut w, s, name, 1.0, &[]);
        }
        d.register(w).unwrap();
    }
    let ds = d.finish().unwrap();
    assert_eq!(ds.subject_ids(), &["sub-01", "sub-02"]);
    assert_eq!(ds.obs_meta_index(), &["obs_subject_id", "obs_id"]);
    assert_eq!(ds.collection_names().len(), 2);
    let ids = ds.obs_meta().column("obs_ids").unwrap();
    assert_eq!(ids.str_at(0), Some(r#"["sub-01_T1w", "sub-01_seg"]"#));
    let age = ds.obs_meta().column("age").unwrap();
    assert_eq!(age.values.get_i64(0), Some(40));
    assert_eq!(ds.metadata()["subject_count"], MetaValue::Int(vec![2]));
    assert_eq!(ds.metadata()["n_collections"], MetaValue::Int(vec![2]));
    assert_eq!(ds.collection("seg").unwrap().len(), 2);

    // rename keeps the collection reachable under its new name
    let ds = ds.rename_collection("seg", "mask").unwrap();
    let m = ds.collection("mask").unwrap();
    assert_eq!(m.name().as_deref(), Some("mask"));
    assert_eq!(m.len(), 2);
    assert!(ds.collection("seg").is_err());

    // a copy is self-contained
    let copy = ds.copy_to(&tmp.uri("copy")).unwrap();
    std::fs::remove_dir_all(&uri).unwrap();
    assert_eq!(copy.collection("T1w").unwrap().volume(1).unwrap().obs_id().unwrap().as_deref(), Some("sub-02_T1w"));
}

#[test]
fn dataset_refuses_cross_collection_duplicates_and_missing_subjects() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let mut d = DatasetWriter::create(&ctx, &tmp.uri("r"), &[]).unwrap();
    d.write_obs_meta(meta_rows(&["a"], &[1])).unwrap();
    let mut w = d.add_collection("x", None, &[], &WriteConfig::default()).unwrap();
    write(&mut w, "b", "x", 1.0, &[]);
    d.register(w).unwrap();
    assert!(matches!(d.finish(), Err(radiobject_core::Error::Alignment(_))));
    assert!(!std::path::Path::new(&tmp.uri("r")).exists(), "a failed finish removes what this writer created");
}

#[test]
fn extending_a_dataset_registers_nothing_unless_every_collection_passes() {
    use radiobject_core::dataset::Dataset;
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let uri = tmp.uri("r");
    let mut d = DatasetWriter::create(&ctx, &uri, &[]).unwrap();
    let mut w = d.add_collection("T1w", None, &[], &WriteConfig::default()).unwrap();
    write(&mut w, "a", "T1w", 1.0, &[]);
    d.register(w).unwrap();
    d.finish().unwrap();

    // a new collection is handed over, then an append to T1w that reuses its id: refused at once
    let ds = Dataset::open(&uri, &ctx).unwrap();
    let mut d = DatasetWriter::extend(&ds).unwrap();
    let mut seg = d.add_collection("seg", None, &[], &WriteConfig::default()).unwrap();
    write(&mut seg, "b", "seg", 2.0, &[]);
    d.register(seg).unwrap();
    let mut t1 = d.append_collection("T1w", &WriteConfig::default()).unwrap();
    t1.write_volume(vol(3.0, &[4, 3, 2]).view(), "b_seg", "b", &[], &[]).unwrap();
    assert!(matches!(d.register(t1), Err(radiobject_core::Error::Alignment(_))));
    d.abort().unwrap();
    let ds = Dataset::open(&uri, &ctx).unwrap();
    assert_eq!(ds.collection_names(), &["T1w"]);
    assert_eq!(ds.collection("T1w").unwrap().len(), 1);
    assert!(
        !std::path::Path::new(&format!("{uri}/collections/seg")).exists(),
        "the unregistered collection is removed"
    );

    // obs_meta rows that miss a subject fail the finish before any collection is registered
    let mut d = DatasetWriter::extend(&ds).unwrap();
    let mut t1 = d.append_collection("T1w", &WriteConfig::default()).unwrap();
    write(&mut t1, "c", "T1w", 4.0, &[]);
    d.register(t1).unwrap();
    d.write_obs_meta(Frame { columns: vec![Column::new("obs_subject_id", Values::Str(vec!["d".into()]))] }).unwrap();
    let e = d.finish().unwrap_err();
    assert!(e.to_string().contains("no row for subject(s) [\"c\"]"), "{e}");
    assert_eq!(Dataset::open(&uri, &ctx).unwrap().collection("T1w").unwrap().obs_ids(), &["a_T1w"]);
}
