//! Read-path benchmarks on a BraTS-sized float32 phantom (240x240x155, 35.7 MB decoded).
//!
//! The phantom is written once into a temporary directory with axial `(X, Y, 1)` and isotropic
//! `64^3` tiles (zstd level 3, the default). Benchmarks:
//!
//! * `full_volume/{axial,isotropic}`: whole-volume read (bypasses the tile cache by design);
//! * `axial_slice/cold`: one random z plane from the axial tiling, tile cache emptied first;
//! * `roi64/{cold,warm}`: a random 64^3 region from the isotropic tiling; `cold` empties the tile
//!   cache before every read (setup, not timed), `warm` reads the same region again and again.
//!
//! Every read path is checked against the source array once before it is timed. The OS page cache
//! stays warm throughout: "cold" means "not in our tile cache", not "not in RAM".
//!
//! Run: `cargo bench -p radiobject-core --bench read_paths` (add `-- --quick` for a fast pass).
//! See docs/benchmarks.md for the Python side-by-side comparison with the peers.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array3, ArrayD, Axis, Slice};
use radiobject_core::{Context, RadiObjectConfig, Region, SliceOrientation, TileConfig, Volume, WriteConfig};

const SHAPE: [usize; 3] = [240, 240, 155];
const ROI: u64 = 64;

/// Deterministic xorshift64 generator (no extra dev-dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform integer in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An ellipsoid "brain" of smooth Gaussian blobs plus noise, rounded to integers; the background
/// (about 80% of voxels) is exactly 0. Same recipe as `brain_phantom()` in benches/data.py (not
/// bit-identical: different random generator).
fn brain_phantom() -> Array3<f32> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let [nx, ny, nz] = SHAPE.map(|n| n as f32);
    let blobs: Vec<[f32; 5]> = (0..40)
        .map(|_| {
            let c = [nx, ny, nz].map(|n| (0.25 + 0.5 * rng.unit()) * n);
            [c[0], c[1], c[2], 8.0 + 20.0 * rng.unit(), 40.0 + 160.0 * rng.unit()]
        })
        .collect();
    Array3::from_shape_fn((SHAPE[0], SHAPE[1], SHAPE[2]), |(x, y, z)| {
        let (x, y, z) = (x as f32, y as f32, z as f32);
        let (dx, dy, dz) = ((x - nx / 2.0) / (0.36 * nx), (y - ny / 2.0) / (0.42 * ny), (z - nz / 2.0) / (0.40 * nz));
        if dx * dx + dy * dy + dz * dz > 1.0 {
            return 0.0;
        }
        let mut v = 0.0;
        for &[bx, by, bz, s, a] in &blobs {
            let d2 = (x - bx).powi(2) + (y - by).powi(2) + (z - bz).powi(2);
            v += a * (-d2 / (2.0 * s * s)).exp();
        }
        // Roughly N(0, 15) noise: sum of 4 uniforms, centred.
        let noise: f32 = (0..4).map(|_| rng.unit()).sum::<f32>() - 2.0;
        (v + 26.0 * noise).round()
    })
}

fn write_config(orientation: SliceOrientation) -> WriteConfig {
    WriteConfig { tile: TileConfig { orientation, ..TileConfig::default() }, ..WriteConfig::default() }
}

/// The part of `data` covered by `region`.
fn crop(data: &Array3<f32>, region: &Region) -> ArrayD<f32> {
    let mut v = data.view().into_dyn();
    for (axis, &(a, b)) in region.ranges().iter().enumerate() {
        v.slice_axis_inplace(Axis(axis), Slice::from(a as isize..b as isize));
    }
    v.to_owned()
}

/// Seeded random 64^3 regions (same sequence on every run).
fn random_rois(n: usize, seed: u64) -> Vec<Region> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| Region::new(SHAPE.iter().map(|&s| rng.below(s as u64 - ROI + 1)).map(|a| (a, a + ROI)).collect()))
        .collect()
}

/// Seeded random axial planes.
fn random_planes(n: usize, seed: u64) -> Vec<Region> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let z = rng.below(SHAPE[2] as u64);
            Region::new(vec![(0, SHAPE[0] as u64), (0, SHAPE[1] as u64), (z, z + 1)])
        })
        .collect()
}

fn read_paths(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = brain_phantom();
    let ctx = Context::new(&RadiObjectConfig::default()).expect("context");
    let uri = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let axial = Volume::from_array(&uri("axial"), data.view().into_dyn(), &ctx, &write_config(SliceOrientation::Axial))
        .expect("write axial volume");
    let iso =
        Volume::from_array(&uri("isotropic"), data.view().into_dyn(), &ctx, &write_config(SliceOrientation::Isotropic))
            .expect("write isotropic volume");
    let elem = std::mem::size_of::<f32>() as u64;
    let full_bytes = data.len() as u64 * elem;

    // Every path is checked against the source before it is timed.
    for vol in [&axial, &iso] {
        assert_eq!(vol.read_all::<f32>().expect("full read"), data.view().into_dyn(), "full read of {}", vol.uri());
    }
    let rois = random_rois(64, 42);
    let planes = random_planes(64, 43);
    for r in rois.iter().take(8) {
        ctx.clear_cache();
        assert_eq!(iso.read_region::<f32>(r).expect("roi"), crop(&data, r), "ROI {r}");
    }
    for r in planes.iter().take(8) {
        ctx.clear_cache();
        assert_eq!(axial.read_region::<f32>(r).expect("plane"), crop(&data, r), "plane {r}");
    }

    // The same reads through the direct tile reader (the default) and through libtiledb's reader
    // (`direct_reads = false`), on the same arrays.
    for (path, direct) in [("direct", true), ("libtiledb", false)] {
        let mut config = RadiObjectConfig::default();
        config.read.direct_reads = direct;
        let ctx = Context::new(&config).expect("context");
        let axial = Volume::open(&uri("axial"), &ctx).expect("open axial");
        let iso = Volume::open(&uri("isotropic"), &ctx).expect("open isotropic");
        bench_reads(c, path, &ctx, &axial, &iso, &rois, &planes, full_bytes, elem);
    }
}

/// The timed reads of one read path.
#[allow(clippy::too_many_arguments)]
fn bench_reads(
    c: &mut Criterion,
    path: &str,
    ctx: &Context,
    axial: &Volume,
    iso: &Volume,
    rois: &[Region],
    planes: &[Region],
    full_bytes: u64,
    elem: u64,
) {
    let mut g = c.benchmark_group(format!("{path}/full_volume"));
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(full_bytes));
    for (name, vol) in [("axial", axial), ("isotropic", iso)] {
        g.bench_function(name, |b| b.iter(|| black_box(vol.read_all::<f32>().expect("full read"))));
    }
    g.finish();

    let mut g = c.benchmark_group(format!("{path}/axial_slice"));
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(SHAPE[0] as u64 * SHAPE[1] as u64 * elem));
    let mut i = 0;
    g.bench_function("cold", |b| {
        b.iter_batched(
            || {
                ctx.clear_cache();
                i += 1;
                &planes[i % planes.len()]
            },
            |r| black_box(axial.read_region::<f32>(r).expect("plane")),
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let mut g = c.benchmark_group(format!("{path}/roi64"));
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(ROI.pow(3) * elem));
    let mut i = 0;
    g.bench_function("cold", |b| {
        b.iter_batched(
            || {
                ctx.clear_cache();
                i += 1;
                &rois[i % rois.len()]
            },
            |r| black_box(iso.read_region::<f32>(r).expect("roi")),
            BatchSize::PerIteration,
        )
    });
    let warm = &rois[0];
    iso.read_region::<f32>(warm).expect("prime the cache");
    g.bench_function("warm", |b| b.iter(|| black_box(iso.read_region::<f32>(warm).expect("roi"))));
    g.finish();
}

criterion_group!(benches, read_paths);
criterion_main!(benches);
