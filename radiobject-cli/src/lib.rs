//! The `radiobject` command line: `ingest`, `verify`, `info`, `unlock`, `bench-loader`.
//!
//! The same code runs as the `radiobject` binary and as `python -m radiobject` (through the Python
//! extension), so both accept the same arguments and print the same output. Exit codes: 0 success,
//! 1 verification found problems, 2 error, 130 interrupted (Ctrl-C; what was finished is kept).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use radiobject_core::dataframe::{Column, Frame, Values};
use radiobject_core::dataset::Dataset;
use radiobject_core::ingest::{self, CollectionSpec, ImageFormat, IngestOptions};
use radiobject_core::{Context, Error, MetaValue, RadiObjectConfig, lock, verify};

/// Store, check and inspect radiology datasets (TileDB; local disk or S3).
#[derive(Parser, Debug)]
#[command(name = "radiobject", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

#[derive(Args, Debug, Clone)]
struct Global {
    /// Configuration as JSON (same fields as `RadiObjectConfig`: write/read/s3), e.g. config.json.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// S3 endpoint of an S3-compatible server, e.g. http://127.0.0.1:9000.
    #[arg(long, global = true, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, global = true)]
    s3_region: Option<String>,
    /// Path-style S3 addressing (most S3-compatible servers need it).
    #[arg(long, global = true)]
    s3_path_style: bool,
    /// Parallel workers (default: ReadConfig.max_workers).
    #[arg(long, short = 'j', global = true)]
    workers: Option<u32>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Ingest NIfTI files or DICOM series into a dataset (resumable: run it again after a crash).
    ///
    /// Example: radiobject ingest data/brats --images T1w='imagesTr/*.nii.gz' --images seg=labelsTr
    ///          --obs-meta participants.tsv
    Ingest(IngestArgs),
    /// Check that a dataset is complete and consistent (exit code 1 if not).
    Verify(VerifyArgs),
    /// Show what a dataset holds.
    Info(InfoArgs),
    /// Remove the write lock a writer left in a dataset (after it was killed on another machine;
    /// a lock of a dead process on this machine is removed by the next writer by itself).
    Unlock(UnlockArgs),
    /// Measure training-loader settings (threads, prefetch, worker processes) on a dataset for a
    /// bounded time and print the best as a ready-to-paste configuration (needs torch).
    ///
    /// Example: radiobject bench-loader brats.ro --collection T1w --patch 64 --seconds 60
    #[command(disable_help_flag = true)]
    BenchLoader(BenchLoaderArgs),
}

#[derive(Args, Debug)]
struct BenchLoaderArgs {
    /// Arguments of `python -m radiobject bench-loader` (see `radiobject bench-loader --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Args, Debug)]
struct IngestArgs {
    /// Dataset URI (local path or s3://bucket/prefix); created if missing.
    uri: String,
    /// A collection: NAME=SOURCE, where SOURCE is a glob ('imagesTr/*.nii.gz'), a directory of
    /// NIfTI files, or a directory of DICOM series directories. Repeat for more collections.
    #[arg(long = "images", short = 'i', value_name = "NAME=SOURCE", required = true)]
    images: Vec<String>,
    /// Subject table (CSV or TSV) for obs_meta; one row per subject.
    #[arg(long, value_name = "FILE")]
    obs_meta: Option<PathBuf>,
    /// Column of --obs-meta holding subject ids [default: obs_subject_id, else participant_id, else the first].
    #[arg(long, value_name = "COLUMN")]
    subject_column: Option<String>,
    /// Force the image format instead of detecting it.
    #[arg(long, value_parser = ["nifti", "dicom"])]
    format: Option<String>,
    /// Reorient every volume to RAS, LAS or LPS (the original affine is kept in metadata).
    #[arg(long, value_parser = ["RAS", "LAS", "LPS"])]
    reorient: Option<String>,
    /// Require every collection to cover the same subjects.
    #[arg(long)]
    validate_alignment: bool,
    /// Do not show progress bars.
    #[arg(long)]
    no_progress: bool,
    /// Skip the verification that follows the ingest.
    #[arg(long)]
    no_verify: bool,
    /// Store a source even when the collection already holds the same content (sha256) from
    /// another path (by default such a source, e.g. from a moved or copied folder, is skipped with
    /// a warning).
    #[arg(long)]
    allow_duplicate_content: bool,
    /// Wait up to SECONDS for another writer of the dataset to finish (default: fail at once).
    #[arg(long, value_name = "SECONDS")]
    wait_lock: Option<f64>,
}

#[derive(Args, Debug)]
struct UnlockArgs {
    /// Dataset URI.
    uri: String,
    /// Remove the lock even when its process is still running on this machine.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Dataset URI.
    uri: String,
    /// Also re-read every volume and compare its voxels with the checksum stored at write time.
    #[arg(long)]
    deep: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Do not show a progress bar (--deep shows one).
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// Dataset URI.
    uri: String,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

fn context(g: &Global) -> Result<Context, String> {
    let mut cfg = match &g.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            RadiObjectConfig::from_json(&text).map_err(|e| e.to_string())?
        }
        None => radiobject_core::global_config(),
    };
    if let Some(e) = &g.s3_endpoint {
        cfg.s3.endpoint = Some(e.clone());
    }
    if let Some(r) = &g.s3_region {
        cfg.s3.region = r.clone();
    }
    if g.s3_path_style || g.s3_endpoint.is_some() {
        cfg.s3.use_virtual_addressing = !g.s3_path_style && g.s3_endpoint.is_none();
    }
    if let Some(w) = g.workers {
        cfg.read.max_workers = w;
    }
    Context::new(&cfg).map_err(|e| e.to_string())
}

/// Parses a CSV/TSV subject table into an obs_meta frame (types inferred per column; empty cells
/// are nulls).
fn read_obs_meta(path: &PathBuf, subject_column: Option<&str>) -> Result<Frame, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let delim = if path.extension().is_some_and(|e| e == "tsv") || text.lines().next().is_some_and(|l| l.contains('\t'))
    {
        b'\t'
    } else {
        b','
    };
    let mut rdr = csv::ReaderBuilder::new().delimiter(delim).from_reader(text.as_bytes());
    let headers: Vec<String> = rdr.headers().map_err(|e| e.to_string())?.iter().map(str::to_owned).collect();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); headers.len()];
    for rec in rdr.records() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, v) in rec.iter().enumerate().take(headers.len()) {
            cells[i].push(v.trim().to_owned());
        }
    }
    let subject = match subject_column {
        Some(c) => headers.iter().position(|h| h == c).ok_or_else(|| format!("{}: no column {c:?}", path.display()))?,
        None => headers
            .iter()
            .position(|h| h == "obs_subject_id")
            .or_else(|| headers.iter().position(|h| h == "participant_id"))
            .unwrap_or(0),
    };
    let mut columns = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let vals = &cells[i];
        let name = if i == subject { "obs_subject_id".to_owned() } else { h.clone() };
        let valid: Vec<bool> = vals.iter().map(|v| !v.is_empty() && v != "n/a" && v != "NA").collect();
        let present = || vals.iter().zip(&valid).filter(|(_, ok)| **ok).map(|(v, _)| v);
        let values = if i == subject {
            Values::Str(vals.clone())
        } else if present().all(|v| v.parse::<i64>().is_ok()) && valid.iter().any(|&x| x) {
            Values::int64(vals.iter().map(|v| v.parse().unwrap_or(0)).collect())
        } else if present().all(|v| v.parse::<f64>().is_ok()) && valid.iter().any(|&x| x) {
            Values::float64(vals.iter().map(|v| v.parse().unwrap_or(f64::NAN)).collect())
        } else if present().all(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "false"))
            && valid.iter().any(|&x| x)
        {
            Values::bool(vals.iter().map(|v| v.eq_ignore_ascii_case("true")).collect())
        } else {
            Values::Str(vals.iter().zip(&valid).map(|(v, ok)| if *ok { v.clone() } else { String::new() }).collect())
        };
        let all_valid = valid.iter().all(|&x| x);
        columns.push(Column { name, values, valid: if all_valid || i == subject { None } else { Some(valid) } });
    }
    Ok(Frame { columns })
}

/// Why a command stopped: its message and exit code.
struct Failure {
    msg: String,
    code: i32,
}

impl From<String> for Failure {
    fn from(msg: String) -> Failure {
        Failure { msg, code: 2 }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        // Ctrl-C: 130, as shells report a command stopped by SIGINT
        let code = if matches!(e, Error::Interrupted(_)) { 130 } else { 2 };
        Failure { msg: e.to_string(), code }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} volumes {elapsed_precise} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Moves `bar` to `done` of `total`: never backwards, finished at the end.
fn advance(bar: &ProgressBar, done: usize, total: usize) {
    if bar.length() != Some(total as u64) {
        bar.set_length(total as u64);
    }
    if done as u64 > bar.position() {
        bar.set_position(done as u64);
    }
    if done >= total && !bar.is_finished() {
        bar.finish();
    }
}

/// Progress bars of an ingest, one per collection, each created at its first report (when its
/// total is known: no bar shows 0/0, and a collection with nothing to do shows none).
fn progress_callback() -> (radiobject_core::ingest::ProgressFn, Arc<MultiProgress>) {
    let multi = Arc::new(MultiProgress::new());
    let bars: std::sync::Mutex<BTreeMap<String, ProgressBar>> = std::sync::Mutex::new(BTreeMap::new());
    let m = multi.clone();
    let cb = move |name: &str, done: usize, total: usize| {
        let mut bars = bars.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bar = bars.entry(name.to_owned()).or_insert_with(|| {
            let b = m.add(ProgressBar::new(total as u64));
            b.set_style(bar_style());
            b.set_prefix(name.to_owned());
            b
        });
        advance(bar, done, total);
    };
    (Box::new(cb), multi)
}

fn run_ingest(g: &Global, a: &IngestArgs) -> Result<i32, Failure> {
    let ctx = context(g)?;
    let format = a.format.as_deref().map(|f| if f == "dicom" { ImageFormat::Dicom } else { ImageFormat::Nifti });
    let mut specs = Vec::new();
    for item in &a.images {
        let (name, src) = item.split_once('=').ok_or_else(|| format!("--images expects NAME=SOURCE, got {item:?}"))?;
        let (fmt, sources) = ingest::discover(src, format)?;
        eprintln!("{name}: {} {} source(s) from {src}", sources.len(), fmt.as_str());
        specs.push(CollectionSpec { name: name.to_owned(), sources, format: fmt });
    }
    let mut opts = IngestOptions::from_config(ctx.config());
    if let Some(r) = &a.reorient {
        opts.reorient = ingest::parse_target(r);
    }
    opts.validate_alignment = a.validate_alignment;
    opts.allow_duplicate_content = a.allow_duplicate_content;
    if let Some(s) = a.wait_lock {
        if !(s.is_finite() && s >= 0.0) {
            return Err(format!("--wait-lock expects seconds >= 0, got {s}").into());
        }
        opts.lock_wait = Some(Duration::from_secs_f64(s));
    }
    if let Some(p) = &a.obs_meta {
        opts.obs_meta = Some(read_obs_meta(p, a.subject_column.as_deref())?);
    }
    let _multi;
    if !a.no_progress {
        let (cb, m) = progress_callback();
        opts.progress = Some(cb);
        _multi = m;
    }
    let t = Instant::now();
    let report = ingest::ingest(&ctx, &a.uri, &specs, &opts)?;
    let dups = if report.duplicates > 0 {
        format!(", {} skipped: content already in the dataset", report.duplicates)
    } else {
        String::new()
    };
    eprintln!(
        "ingested {} volume(s) in {:.1}s ({} already done by an earlier run, {} half-written volume(s) redone{dups})",
        report.written,
        t.elapsed().as_secs_f64(),
        report.skipped,
        report.repaired
    );
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if a.no_verify {
        return Ok(0);
    }
    // Checked under the write lock: a writer that waited for this ingest's lock must not change the
    // dataset while it is being checked (its half-written volumes would read as problems).
    let held = lock::WriteLock::acquire(
        &ctx,
        &a.uri,
        "verify after ingest",
        Some(opts.lock_wait.unwrap_or(VERIFY_LOCK_WAIT)),
    )?;
    let v = verify::verify(&ctx, &a.uri, false)?;
    held.release()?;
    print!("{v}");
    Ok(if v.ok() { 0 } else { 1 })
}

/// How long the verify after an ingest waits for another writer to finish (without `--wait-lock`).
const VERIFY_LOCK_WAIT: Duration = Duration::from_secs(600);

fn run_verify(g: &Global, a: &VerifyArgs) -> Result<i32, Failure> {
    let ctx = context(g)?;
    // --deep reads every voxel: show how far it is (a fast verify takes moments)
    let bar = (a.deep && !a.no_progress).then(|| {
        let b = ProgressBar::hidden();
        b.set_style(bar_style());
        b.set_prefix("verify");
        b
    });
    let shown = std::sync::atomic::AtomicBool::new(false);
    let progress = |done: usize, total: usize| {
        if let Some(b) = &bar {
            if !shown.swap(true, std::sync::atomic::Ordering::AcqRel) {
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            advance(b, done, total);
        }
    };
    let report = verify::verify_with_progress(&ctx, &a.uri, a.deep, Some(&progress))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print!("{report}");
    }
    Ok(if report.ok() { 0 } else { 1 })
}

fn meta_json(m: &BTreeMap<String, MetaValue>) -> serde_json::Value {
    let one = |v: &MetaValue| match v {
        MetaValue::Int(x) if x.len() == 1 => serde_json::json!(x[0]),
        MetaValue::Float(x) if x.len() == 1 => serde_json::json!(x[0]),
        other => serde_json::to_value(other).unwrap_or(serde_json::Value::Null),
    };
    serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), one(v))).collect())
}

fn run_unlock(g: &Global, a: &UnlockArgs) -> Result<i32, Failure> {
    let ctx = context(g)?;
    let Some(owner) = lock::lock_owner(&ctx, &a.uri)? else {
        println!("{}: no write lock", a.uri);
        return Ok(0);
    };
    if owner.is_running_here() && !a.force {
        return Err(format!(
            "{}: the write lock belongs to {}, which is still running (taken {} ago); let it finish, or \
             stop it, or pass --force",
            a.uri,
            owner.describe(),
            lock::format_age(owner.age())
        )
        .into());
    }
    lock::break_lock(&ctx, &a.uri)?;
    println!(
        "{}: removed the write lock of {} (taken {} ago); run the interrupted ingest again to finish its work",
        a.uri,
        owner.describe(),
        lock::format_age(owner.age())
    );
    Ok(0)
}

fn run_info(g: &Global, a: &InfoArgs) -> Result<i32, Failure> {
    let ctx = context(g)?;
    let ds = Dataset::open(&a.uri, &ctx)?;
    let manifest = ingest::manifest_frame(&ctx, ds.uri())?;
    // dtypes per collection from the manifest (every ingested volume), else the first volume's
    let mut manifest_dtypes: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    if let Some(m) = &manifest {
        for i in 0..m.len() {
            let get = |n: &str| m.column(n).and_then(|c| c.str_at(i)).unwrap_or_default().to_owned();
            if !get("obs_id").is_empty() {
                manifest_dtypes.entry(get("collection")).or_default().insert(get("dtype"));
            }
        }
    }
    let mut colls = Vec::new();
    for name in ds.collection_names() {
        let c = ds.collection(name)?;
        let first = if c.is_empty() { None } else { c.volume(0).ok() };
        let info = first.as_ref().and_then(|v| v.info().ok());
        let dtypes: Vec<String> = match manifest_dtypes.get(name) {
            Some(d) => d.iter().cloned().collect(),
            None => info.as_ref().map(|i| vec![i.dtype.to_string()]).unwrap_or_default(),
        };
        let obs_columns: Vec<&str> = c.obs().names().into_iter().skip(2).collect();
        let mut subjects = c.subject_ids().to_vec();
        subjects.dedup();
        colls.push(serde_json::json!({
            "name": name,
            "volumes": c.len(),
            "subjects": subjects.len(),
            "shape": c.shape(),
            "dtypes": dtypes,
            "tile_extents": info.as_ref().map(|i| i.tile_extents.clone()),
            "obs_columns": obs_columns,
        }));
    }
    let obs_meta_columns: Vec<&str> =
        ds.obs_meta().names().into_iter().filter(|n| *n != "obs_subject_id" && *n != "obs_id").collect();
    let out = serde_json::json!({
        "uri": ds.uri(),
        "subjects": ds.subject_ids().len(),
        "metadata": meta_json(ds.metadata()),
        "obs_meta_columns": obs_meta_columns,
        "collections": colls,
        "manifest_sources": manifest.map(|m| m.len()),
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
        return Ok(0);
    }
    println!("RadiObject {}", ds.uri());
    println!("  subjects: {}   obs_meta columns: {}", ds.subject_ids().len(), obs_meta_columns.join(", "));
    for c in &colls {
        println!(
            "  collection {:<12} {:>6} volumes  shape {:<16} dtype {:<16} tiles {}",
            c["name"].as_str().unwrap_or(""),
            c["volumes"],
            c["shape"]
                .as_array()
                .map_or("mixed".to_owned(), |s| { s.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("x") }),
            c["dtypes"].as_array().map_or("-".to_owned(), |d| d
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join("/")),
            if c["tile_extents"].is_null() { "-".to_owned() } else { c["tile_extents"].to_string() },
        );
    }
    if let Some(n) = out["manifest_sources"].as_u64() {
        println!("  ingest manifest: {n} source(s)");
    }
    Ok(0)
}

/// `bench-loader` measures torch loaders, so it runs in Python: the interpreter named by
/// `RADIOBJECT_PYTHON`, else the `python` beside this binary (a virtual environment's), else
/// `python3`.
fn run_bench_loader(a: &BenchLoaderArgs) -> Result<i32, Failure> {
    let python = std::env::var_os("RADIOBJECT_PYTHON").map(PathBuf::from).or_else(|| {
        let exe = std::env::current_exe().ok()?;
        let beside = exe.parent()?.join("python");
        beside.is_file().then_some(beside)
    });
    let python = python.unwrap_or_else(|| PathBuf::from("python3"));
    let status =
        std::process::Command::new(&python).args(["-m", "radiobject", "bench-loader"]).args(&a.args).status().map_err(
            |e| {
                format!(
                    "cannot run {}: {e} (set RADIOBJECT_PYTHON to a Python with radiobject and torch)",
                    python.display()
                )
            },
        )?;
    Ok(status.code().unwrap_or(2))
}

/// Runs the command line with `args` (without the program name); returns the exit code:
/// 0 success, 1 verification found problems, 2 error, 130 interrupted. Ctrl-C stops long work
/// cleanly only where SIGINT calls [`radiobject_core::cancel::interrupt`] (the `radiobject` binary
/// installs that handler; see [`main`]).
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> =
        std::iter::once(OsString::from("radiobject")).chain(args.into_iter().map(Into::into)).collect();
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let res = match &cli.command {
        Command::Ingest(a) => run_ingest(&cli.global, a),
        Command::Verify(a) => run_verify(&cli.global, a),
        Command::Info(a) => run_info(&cli.global, a),
        Command::Unlock(a) => run_unlock(&cli.global, a),
        Command::BenchLoader(a) => run_bench_loader(a),
    };
    match res {
        Ok(code) => code,
        Err(Failure { msg, code: 130 }) => {
            eprintln!("{msg}");
            130
        }
        Err(Failure { msg, code }) => {
            eprintln!("error: {msg}");
            code
        }
    }
}

/// The `radiobject` binary: Ctrl-C stops long work cleanly (a second Ctrl-C at once), then runs
/// the command line.
pub fn main() -> i32 {
    if let Err(e) = radiobject_core::cancel::install_sigint_handler() {
        eprintln!("warning: cannot install the Ctrl-C handler: {e}");
    }
    run(std::env::args_os().skip(1))
}
