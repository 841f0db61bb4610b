//! The batch pipeline under the training loaders, against real libtiledb: values, layouts,
//! determinism across pool sizes, foreground sampling, alignment checks, prefetching.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TempUri, ctx_with, phantom_f32};
use ndarray::{ArrayD, IxDyn, s};
use radiobject_core::loader::{Channel, Key, Mode, Plan, PlanConfig, Prefetcher, permutation};
use radiobject_core::{Context, Error, SliceOrientation, Volume, VolumeData, WriteConfig, config::TileConfig};

fn iso() -> WriteConfig {
    WriteConfig {
        tile: TileConfig {
            orientation: SliceOrientation::Isotropic,
            x: Some(16),
            y: Some(16),
            z: Some(16),
            ..Default::default()
        },
        ..Default::default()
    }
}

struct Fixture {
    _tmp: TempUri,
    data: Vec<Vec<ArrayD<f32>>>,
    vols: Vec<Vec<Volume>>,
}

/// `channels` collections of `n` volumes each (distinct values per channel and volume).
fn fixture(ctx: &Context, channels: usize, n: usize, shape: &[usize]) -> Fixture {
    let tmp = TempUri::new();
    let mut data = Vec::new();
    let mut vols = Vec::new();
    for c in 0..channels {
        let mut d = Vec::new();
        let mut v = Vec::new();
        for i in 0..n {
            let a = phantom_f32(shape).mapv(|x| x + (1000 * c + 100 * i) as f32);
            v.push(Volume::from_array(&tmp.uri(&format!("c{c}_v{i}")), a.view(), ctx, &iso()).unwrap());
            d.push(a);
        }
        data.push(d);
        vols.push(v);
    }
    Fixture { _tmp: tmp, data, vols }
}

fn key(name: &str, f: &Fixture, subjects: &[String]) -> Key {
    Key {
        name: name.into(),
        channels: f
            .vols
            .iter()
            .enumerate()
            .map(|(c, v)| Channel { name: format!("c{c}"), volumes: v.clone(), subjects: subjects.to_vec() })
            .collect(),
    }
}

fn subjects(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("sub-{i:02}")).collect()
}

fn f32s(a: &VolumeData) -> &ArrayD<f32> {
    match a {
        VolumeData::Float32(x) => x,
        other => panic!("expected float32, got {:?}", other.shape()),
    }
}

#[test]
fn patch_batches_hold_the_source_voxels_in_c_order() {
    let ctx = ctx_with(|_| {});
    let f = fixture(&ctx, 2, 3, &[40, 36, 30]);
    let cfg = PlanConfig { mode: Mode::Patch([16, 20, 12]), patches_per_volume: 4, seed: 7, foreground: None };
    let plan = Plan::new(vec![key("image", &f, &subjects(3))], cfg).unwrap();
    assert_eq!(plan.len(), 12);
    let req: Vec<(u64, u64)> = (0..12).map(|i| (3, i)).collect();
    let batch = plan.read_batch(&req).unwrap();
    let arr = f32s(&batch.arrays[0]);
    assert_eq!(arr.shape(), &[12, 2, 16, 20, 12]);
    assert!(arr.is_standard_layout(), "batches are C-contiguous");
    for (b, it) in batch.items.iter().enumerate() {
        assert_eq!(it.volume, b / 4);
        assert_eq!(it.patch_idx, b as u64 % 4);
        let r = it.region.ranges();
        for c in 0..2 {
            let want = f.data[c][it.volume].slice(s![
                r[0].0 as usize..r[0].1 as usize,
                r[1].0 as usize..r[1].1 as usize,
                r[2].0 as usize..r[2].1 as usize
            ]);
            assert_eq!(arr.slice(s![b, c, .., .., ..]), want, "item {b} channel {c}");
        }
    }
    // Same (seed, epoch, index): same box; another epoch moves the patches.
    assert_eq!(plan.item(3, 5).unwrap(), batch.items[5]);
    let moved = (0..12).filter(|&i| plan.item(4, i).unwrap().region != plan.item(3, i).unwrap().region).count();
    assert!(moved >= 10, "only {moved} of 12 patches moved between epochs");
}

#[test]
fn slices_and_full_volumes() {
    let ctx = ctx_with(|_| {});
    let f = fixture(&ctx, 1, 2, &[20, 18, 10]);
    let subs = subjects(2);
    for (axis, n) in [(0usize, 20u64), (1, 18), (2, 10)] {
        let cfg = PlanConfig { mode: Mode::Slice(axis), patches_per_volume: 1, seed: 0, foreground: None };
        let plan = Plan::new(vec![key("image", &f, &subs)], cfg).unwrap();
        assert_eq!(plan.len(), 2 * n);
        let batch = plan.read_batch(&[(0, n + 3), (0, 1)]).unwrap();
        let arr = f32s(&batch.arrays[0]);
        let want = |v: usize, i: usize| match axis {
            0 => f.data[0][v].slice(s![i, .., ..]).to_owned(),
            1 => f.data[0][v].slice(s![.., i, ..]).to_owned(),
            _ => f.data[0][v].slice(s![.., .., i]).to_owned(),
        };
        assert_eq!(arr.slice(s![0, 0, .., ..]), want(1, 3));
        assert_eq!(arr.slice(s![1, 0, .., ..]), want(0, 1));
        assert_eq!(batch.items[0].slice_idx, 3);
    }
    let cfg = PlanConfig { mode: Mode::FullVolume, patches_per_volume: 1, seed: 0, foreground: None };
    let plan = Plan::new(vec![key("image", &f, &subs)], cfg).unwrap();
    let batch = plan.read_batch(&[(0, 1), (0, 0)]).unwrap();
    let arr = f32s(&batch.arrays[0]);
    assert_eq!(arr.slice(s![0, 0, .., .., ..]), f.data[0][1].view().into_dimensionality().unwrap());
    assert_eq!(arr.slice(s![1, 0, .., .., ..]), f.data[0][0].view().into_dimensionality().unwrap());
}

#[test]
fn batches_are_identical_whatever_the_pool_size() {
    let mut outs: Vec<Vec<f32>> = Vec::new();
    let keep = TempUri::new();
    let base = ctx_with(|_| {});
    let f = fixture(&base, 2, 4, &[33, 31, 29]);
    let uris: Vec<Vec<String>> = f.vols.iter().map(|c| c.iter().map(|v| v.uri().to_owned()).collect()).collect();
    for workers in [1u32, 2, 4] {
        let ctx = ctx_with(|c| {
            c.read.max_workers = workers;
            c.read.tile_cache_size_mb = 1;
        });
        let channels = uris
            .iter()
            .enumerate()
            .map(|(c, us)| Channel {
                name: format!("c{c}"),
                volumes: us.iter().map(|u| Volume::open(u, &ctx).unwrap()).collect(),
                subjects: subjects(4),
            })
            .collect();
        let cfg = PlanConfig { mode: Mode::Patch([12, 12, 12]), patches_per_volume: 3, seed: 99, foreground: None };
        let plan = Plan::new(vec![Key { name: "image".into(), channels }], cfg).unwrap();
        let order = permutation(99, 2, plan.len() as usize);
        let mut all = Vec::new();
        for chunk in order.chunks(5) {
            let req: Vec<(u64, u64)> = chunk.iter().map(|&i| (2, i)).collect();
            all.extend(f32s(&plan.read_batch(&req).unwrap().arrays[0]).iter().copied());
        }
        outs.push(all);
    }
    drop(keep);
    assert!(outs.windows(2).all(|w| w[0].iter().map(|x| x.to_bits()).eq(w[1].iter().map(|x| x.to_bits()))));
}

#[test]
fn misaligned_channels_are_refused() {
    let ctx = ctx_with(|_| {});
    let f = fixture(&ctx, 2, 3, &[16, 16, 16]);
    let mut k = key("image", &f, &subjects(3));
    k.channels[1].subjects.swap(0, 1);
    let cfg = || PlanConfig { mode: Mode::FullVolume, patches_per_volume: 1, seed: 0, foreground: None };
    assert!(matches!(Plan::new(vec![k], cfg()), Err(Error::Alignment(m)) if m.contains("Subject mismatch")));
    let mut k = key("image", &f, &subjects(3));
    k.channels[1].volumes.pop();
    k.channels[1].subjects.pop();
    assert!(matches!(Plan::new(vec![k], cfg()), Err(Error::Alignment(m)) if m.contains("has 2 volumes, expected 3")));
    let too_big = PlanConfig { mode: Mode::Patch([17, 4, 4]), patches_per_volume: 1, seed: 0, foreground: None };
    assert!(
        matches!(Plan::new(vec![key("image", &f, &subjects(3))], too_big), Err(Error::Shape { message }) if message.contains("smaller than patch_size"))
    );
}

#[test]
fn foreground_patches_contain_foreground() {
    let ctx = ctx_with(|_| {});
    let tmp = TempUri::new();
    let mut masks = Vec::new();
    let mut images = Vec::new();
    let mut mask_data = Vec::new();
    for i in 0..3usize {
        let mut m = ArrayD::<u8>::zeros(IxDyn(&[48, 40, 36]));
        // a small blob at a different place per volume (none in volume 2)
        if i < 2 {
            m.slice_mut(s![5 + 20 * i..9 + 20 * i, 30..33, 2..5]).fill(1);
        }
        masks.push(Volume::from_array(&tmp.uri(&format!("m{i}")), m.view(), &ctx, &iso()).unwrap());
        images.push(Volume::from_array(&tmp.uri(&format!("i{i}")), m.mapv(f32::from).view(), &ctx, &iso()).unwrap());
        mask_data.push(m);
    }
    let subs = subjects(3);
    let keys = vec![
        Key {
            name: "image".into(),
            channels: vec![Channel { name: "img".into(), volumes: images, subjects: subs.clone() }],
        },
        Key { name: "mask".into(), channels: vec![Channel { name: "seg".into(), volumes: masks, subjects: subs }] },
    ];
    let cfg = PlanConfig { mode: Mode::Patch([16, 16, 16]), patches_per_volume: 20, seed: 5, foreground: Some((1, 0)) };
    let plan = Plan::new(keys, cfg).unwrap();
    let fg = plan.foreground().unwrap();
    assert_eq!(fg.masks().iter().map(|m| m.voxels()).collect::<Vec<_>>(), vec![36, 36, 0]);
    let req: Vec<(u64, u64)> = (0..40).map(|i| (1, i)).collect();
    let batch = plan.read_batch(&req).unwrap();
    let VolumeData::UInt8(mask) = &batch.arrays[1] else { panic!("mask dtype") };
    for b in 0..40 {
        let n: u64 = mask.slice(s![b, 0, .., .., ..]).iter().map(|&v| u64::from(v)).sum();
        assert!(n > 0, "patch {b} of a volume with foreground holds none");
    }
}

#[test]
fn prefetcher_returns_batches_in_order_and_cancels() {
    let ctx = ctx_with(|c| c.read.max_workers = 2);
    let f = fixture(&ctx, 1, 4, &[32, 32, 32]);
    let cfg = PlanConfig { mode: Mode::Patch([16, 16, 16]), patches_per_volume: 8, seed: 1, foreground: None };
    let plan = Arc::new(Plan::new(vec![key("image", &f, &subjects(4))], cfg).unwrap());
    let mut p = Prefetcher::new(plan.clone());
    let batches: Vec<Vec<(u64, u64)>> = (0..8).map(|k| (0..4).map(|i| (0, 4 * k + i)).collect()).collect();
    for b in &batches {
        p.submit(b.clone()).unwrap();
    }
    for b in &batches {
        let got = loop {
            if let Some(r) = p.next_timeout(Duration::from_millis(50)) {
                break r.unwrap();
            }
        };
        let direct = plan.read_batch(b).unwrap();
        assert_eq!(got.items, direct.items);
        assert_eq!(f32s(&got.arrays[0]), f32s(&direct.arrays[0]));
    }
    assert_eq!(p.pending(), 0);
    for b in &batches {
        p.submit(b.clone()).unwrap();
    }
    p.cancel();
    assert_eq!(p.pending(), 0);
    assert!(p.next_timeout(Duration::from_millis(1)).is_none());
}

#[test]
fn out_of_range_items_are_errors_not_panics() {
    let ctx = ctx_with(|_| {});
    let f = fixture(&ctx, 1, 2, &[16, 16, 16]);
    let cfg = PlanConfig { mode: Mode::FullVolume, patches_per_volume: 1, seed: 0, foreground: None };
    let plan = Plan::new(vec![key("image", &f, &subjects(2))], cfg).unwrap();
    assert!(matches!(plan.read_batch(&[(0, 2)]), Err(Error::Invalid(_))));
    assert!(plan.read_batch(&[]).unwrap().items.is_empty());
}
