//! Contexts: what threads share and processes do not.
//!
//! A [`Context`] owns one libtiledb context (TileDB's thread pools, S3 client, config), one
//! [`tile cache`](crate::cache), its read counters and a worker pool sized by
//! `ReadConfig.max_workers`. Cloning a `Context` is cheap and clones share all of it, so threads
//! that read through one context share its cache.
//!
//! Processes never share a context. Every context remembers the process that created it;
//! [`Context::for_current_process`] returns the context itself in that process and, in a forked
//! child, a fresh context built from the same configuration (once per child). The global context
//! ([`global_context`]) is tied to the process id the same way, so a forked child never touches its
//! parent's TileDB context.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock, Weak};

use parking_lot::Mutex;

use crate::cache::{CompressedCache, TileCache};
use crate::config::{RadiObjectConfig, global_config, set_global_config};
use crate::error::{Error, Result, StorageContext};
use crate::ffi;
use crate::io::{IoCounters, LocalStorage, Storage};
use crate::stats::CounterSnapshot;
use crate::sync::ForkMutex;

/// Counters of the read path, per context; monotonic except `in_flight`.
#[derive(Debug, Default)]
pub(crate) struct ReadCounters {
    /// Region reads served.
    pub regions: AtomicU64,
    /// TileDB read queries issued.
    pub queries: AtomicU64,
    /// Queries issued while another query of the same context was running.
    pub parallel_queries: AtomicU64,
    /// Queries running now.
    pub in_flight: AtomicU64,
    /// Reads that bypassed the tile cache (whole-volume reads, very large regions, cache off).
    pub bypass_reads: AtomicU64,
    /// Bytes returned by reads that bypassed the cache.
    pub bypass_bytes: AtomicU64,
}

/// Counters of the direct read path (`crate::format`), per context.
#[derive(Debug, Default)]
pub(crate) struct DirectCounters {
    /// Volume opens served by the direct reader.
    pub volumes: AtomicU64,
    /// Volume opens read through libtiledb instead, by reason.
    pub fallbacks: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Tiles decoded by the direct reader.
    pub tiles: AtomicU64,
    /// Bytes those tiles hold decoded.
    pub tile_bytes: AtomicU64,
}

impl DirectCounters {
    pub(crate) fn fallback(&self, reason: &'static str) {
        *self.fallbacks.lock().entry(reason).or_default() += 1;
    }
}

pub(crate) struct Inner {
    id: u64,
    pid: u32,
    config: RadiObjectConfig,
    tdb: ffi::Ctx,
    cache: Arc<TileCache>,
    compressed: Arc<CompressedCache>,
    pub(crate) reads: ReadCounters,
    pub(crate) direct: DirectCounters,
    io: Arc<IoCounters>,
    /// The tokio runtime that drives object-store requests (started on first use).
    io_runtime: Arc<crate::runtime::IoRuntime>,
    pool: OnceLock<std::result::Result<rayon::ThreadPool, String>>,
    vfs: OnceLock<ffi::Vfs>,
    child: ForkMutex<Option<Context>>,
    /// Whether this is (or was) its process's global context.
    global: std::sync::atomic::AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.pid == std::process::id() {
            // Keep process-wide totals monotonic when a context goes away (see crate::stats).
            if let Ok(snap) = snapshot_inner(self) {
                RETIRED.lock().add(&snap);
            }
        } else {
            // A forked child dropping its parent's context: the pool's threads only exist in the
            // parent, so leave the pool alone (the TileDB handles skip their frees themselves).
            std::mem::forget(self.pool.take());
        }
    }
}

/// See [`Context::workers`].
pub struct Workers<'a>(Option<&'a rayon::ThreadPool>);

impl Workers<'_> {
    /// Runs `f` so that its parallel iterators use these workers.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self.0 {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }
}

/// A shared TileDB context with its tile cache, counters and worker pool.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Worker pool size for pools created from now on in this process (0: the configuration's).
static WORKER_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Sets the size of the worker pools this process creates from now on, whatever the
/// configuration says (0 restores `ReadConfig.max_workers`). Used by DataLoader worker processes
/// so that workers x threads does not exceed the cores; pools that already exist keep their size.
pub fn set_process_worker_threads(n: usize) {
    WORKER_THREADS.store(n, Ordering::Relaxed);
}
// Reachable from a forked child, so fork-safe locks (see crate::sync).
static REGISTRY: ForkMutex<Vec<Weak<Inner>>> = ForkMutex::new(Vec::new());
static RETIRED: LazyLock<ForkMutex<CounterSnapshot>> = LazyLock::new(|| ForkMutex::new(CounterSnapshot::default()));
static GLOBAL: ForkMutex<Option<Context>> = ForkMutex::new(None);

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (bytes, tiles) = self.inner.cache.usage();
        f.debug_struct("Context")
            .field("id", &self.inner.id)
            .field("pid", &self.inner.pid)
            .field("cache_budget", &self.inner.cache.budget())
            .field("cache_bytes", &bytes)
            .field("cache_tiles", &tiles)
            .finish()
    }
}

impl Context {
    /// A new context (fresh TileDB context, empty cache) from a validated configuration.
    pub fn new(config: &RadiObjectConfig) -> Result<Context> {
        config.validate()?;
        let tdb = ffi::Ctx::new(&config.tiledb_params()).at("context creation", "")?;
        let budget = usize::try_from(config.read.tile_cache_size_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let inner = Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pid: std::process::id(),
            config: config.clone(),
            tdb,
            cache: TileCache::new(budget),
            compressed: CompressedCache::new(
                usize::try_from(config.read.compressed_cache_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX),
            ),
            reads: ReadCounters::default(),
            direct: DirectCounters::default(),
            io: Arc::new(IoCounters::default()),
            io_runtime: Arc::new(crate::runtime::IoRuntime::new()),
            pool: OnceLock::new(),
            vfs: OnceLock::new(),
            child: ForkMutex::new(None),
            global: std::sync::atomic::AtomicBool::new(false),
        });
        let mut reg = REGISTRY.lock();
        reg.retain(|w| w.strong_count() > 0);
        reg.push(Arc::downgrade(&inner));
        Ok(Context { inner })
    }

    /// A new context built from the current global configuration.
    pub fn from_global_config() -> Result<Context> {
        Context::new(&global_config())
    }

    /// Unique id of this context within the process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Id of the process that created this context.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// Whether this context belongs to the calling process.
    pub fn in_current_process(&self) -> bool {
        self.inner.pid == std::process::id()
    }

    /// The configuration this context was built from.
    pub fn config(&self) -> &RadiObjectConfig {
        &self.inner.config
    }

    /// This context in its own process; in a forked child, the child's global context if this was
    /// the parent's global context, else a new context with the same configuration (created once
    /// per child and reused).
    pub fn for_current_process(&self) -> Result<Context> {
        if self.in_current_process() {
            return Ok(self.clone());
        }
        if self.inner.global.load(Ordering::Relaxed) {
            return global_context();
        }
        let mut child = self.inner.child.lock();
        if let Some(c) = child.as_ref().filter(|c| c.in_current_process()) {
            return Ok(c.clone());
        }
        let c = Context::new(&self.inner.config)?;
        *child = Some(c.clone());
        Ok(c)
    }

    /// Whether two handles are the same context.
    pub fn same(&self, other: &Context) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn tdb(&self) -> &ffi::Ctx {
        &self.inner.tdb
    }

    pub(crate) fn cache(&self) -> &Arc<TileCache> {
        &self.inner.cache
    }

    pub(crate) fn reads(&self) -> &ReadCounters {
        &self.inner.reads
    }

    pub(crate) fn direct(&self) -> &DirectCounters {
        &self.inner.direct
    }

    /// The compressed-tile tier (stored tiles of remote arrays).
    pub(crate) fn compressed_cache(&self) -> &Arc<CompressedCache> {
        &self.inner.compressed
    }

    /// Bytes and tiles held by the compressed-tile tier.
    pub fn compressed_cache_usage(&self) -> (usize, usize) {
        self.inner.compressed.usage()
    }

    /// Storage for the direct reader of the array at `uri`, or why there is none.
    pub(crate) fn storage_for(&self, uri: &str) -> std::result::Result<Arc<dyn Storage>, &'static str> {
        if uri.starts_with("file://") || !uri.contains("://") {
            return Ok(Arc::new(LocalStorage::new(uri, self.inner.io.clone())));
        }
        if crate::io::object::ObjectStorage::supports(uri) {
            return crate::io::object::ObjectStorage::new(
                uri,
                &self.inner.config.s3,
                self.inner.io_runtime.clone(),
                self.inner.io.clone(),
            )
            .map(|s| Arc::new(s) as Arc<dyn Storage>)
            .map_err(|_| "object_store_config");
        }
        Err("storage_scheme")
    }

    /// The worker pool (`ReadConfig.max_workers` threads), created on first use.
    pub fn pool(&self) -> Result<&rayon::ThreadPool> {
        let id = self.inner.id;
        let workers = match WORKER_THREADS.load(Ordering::Relaxed) {
            0 => self.inner.config.read.max_workers as usize,
            n => n,
        };
        self.inner
            .pool
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(workers)
                    .thread_name(move |i| format!("radiobject-{id}-{i}"))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::Invalid(format!("cannot start worker threads: {e}")))
    }

    /// Where this context's parallel work runs: its pool, or for a thread that already is a pool
    /// worker, that worker's own pool. Installing into another pool from a worker makes the worker
    /// run other jobs of its pool while it waits, and a batch of reads of volumes of another context
    /// (opened before a `configure()`) would then nest one read in the next until the stack
    /// overflows.
    pub fn workers(&self) -> Result<Workers<'_>> {
        Ok(Workers(if crate::sync::on_pool() { None } else { Some(self.pool()?) }))
    }

    pub(crate) fn vfs(&self) -> Result<&ffi::Vfs> {
        if let Some(v) = self.inner.vfs.get() {
            return Ok(v);
        }
        let v = ffi::Vfs::new(&self.inner.tdb).at("vfs", "")?;
        Ok(self.inner.vfs.get_or_init(|| v))
    }

    /// Bytes and number of tiles in the tile cache.
    pub fn cache_usage(&self) -> (usize, usize) {
        self.inner.cache.usage()
    }

    /// Empties the tile cache and the compressed-tile tier (counters are kept).
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
        self.inner.compressed.clear();
    }

    /// This context's counters now: TileDB's own plus the tile cache's and the read path's.
    pub fn snapshot(&self) -> Result<CounterSnapshot> {
        snapshot_inner(&self.inner)
    }

    /// Whether this libtiledb build can reach S3.
    pub fn supports_s3(&self) -> bool {
        self.inner.tdb.supports_s3()
    }

    /// What TileDB object exists at `uri`, if any.
    pub fn object_kind(&self, uri: &str) -> Result<Option<ObjectKind>> {
        Ok(match self.inner.tdb.object_type(uri).at("object type", uri)? {
            ffi::ObjectType::Array => Some(ObjectKind::Array),
            ffi::ObjectType::Group => Some(ObjectKind::Group),
            ffi::ObjectType::Invalid => None,
        })
    }

    /// Removes the directory or prefix at `uri` with everything below it (no-op if absent).
    pub fn remove_uri(&self, uri: &str) -> Result<()> {
        let vfs = self.vfs()?;
        if vfs.is_dir(uri).at("remove", uri)? {
            vfs.remove_dir(uri).at("remove", uri)?;
        } else if vfs.is_file(uri).at("remove", uri)? {
            vfs.remove_file(uri).at("remove", uri)?;
        }
        Ok(())
    }

    /// Creates the S3 bucket of an `s3://bucket/...` URI if it does not exist yet.
    pub fn ensure_bucket(&self, uri: &str) -> Result<()> {
        let Some(rest) = uri.strip_prefix("s3://") else {
            return Err(Error::Invalid(format!("{uri} is not an s3:// URI")));
        };
        let bucket = format!("s3://{}", rest.split('/').next().unwrap_or_default());
        let vfs = self.vfs()?;
        if !vfs.is_bucket(&bucket).at("bucket check", &bucket)? {
            vfs.create_bucket(&bucket).at("bucket create", &bucket)?;
        }
        Ok(())
    }
}

/// Kind of TileDB object at a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A TileDB array.
    Array,
    /// A TileDB group.
    Group,
}

fn snapshot_inner(inner: &Inner) -> Result<CounterSnapshot> {
    let json = inner.tdb.stats_json().at("stats", "")?;
    let mut snap = CounterSnapshot::from_tiledb_json(&json);
    let c = &inner.cache.counters;
    let r = &inner.reads;
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for (k, v) in [
        ("RadiObject.TileCache.hits", ld(&c.hits)),
        ("RadiObject.TileCache.misses", ld(&c.misses)),
        ("RadiObject.TileCache.hit_bytes", ld(&c.hit_bytes)),
        ("RadiObject.TileCache.miss_bytes", ld(&c.miss_bytes)),
        ("RadiObject.TileCache.inserts", ld(&c.inserts)),
        ("RadiObject.TileCache.evictions", ld(&c.evictions)),
        ("RadiObject.Reads.regions", ld(&r.regions)),
        ("RadiObject.Reads.queries", ld(&r.queries)),
        ("RadiObject.Reads.parallel_queries", ld(&r.parallel_queries)),
        ("RadiObject.Reads.bypass_reads", ld(&r.bypass_reads)),
        ("RadiObject.Reads.bypass_bytes", ld(&r.bypass_bytes)),
        ("RadiObject.Direct.volumes", ld(&inner.direct.volumes)),
        ("RadiObject.Direct.tiles", ld(&inner.direct.tiles)),
        ("RadiObject.Direct.tile_bytes", ld(&inner.direct.tile_bytes)),
        ("RadiObject.CompressedCache.hits", ld(&inner.compressed.hits)),
        ("RadiObject.CompressedCache.misses", ld(&inner.compressed.misses)),
        ("RadiObject.CompressedCache.hit_bytes", ld(&inner.compressed.hit_bytes)),
        ("RadiObject.CompressedCache.evictions", ld(&inner.compressed.evictions)),
        ("RadiObject.IO.list_requests", ld(&inner.io.list_requests)),
        ("RadiObject.IO.range_requests", ld(&inner.io.range_requests)),
        ("RadiObject.IO.bytes_fetched", ld(&inner.io.bytes_fetched)),
        ("RadiObject.IO.overlapped_requests", ld(&inner.io.overlapped)),
    ] {
        snap.counters.insert(k.to_owned(), v);
    }
    let mut fallbacks = 0;
    for (reason, n) in inner.direct.fallbacks.lock().iter() {
        fallbacks += n;
        snap.counters.insert(format!("RadiObject.Direct.fallback.{reason}"), *n);
    }
    snap.counters.insert("RadiObject.Direct.fallbacks".to_owned(), fallbacks);
    Ok(snap)
}

/// Counters of every context of this process: live ones plus those already dropped.
///
/// Monotonic, so the difference of two snapshots is exactly what happened in between, including
/// contexts created or dropped in between.
pub fn process_snapshot() -> Result<CounterSnapshot> {
    let live: Vec<Arc<Inner>> = {
        let mut reg = REGISTRY.lock();
        reg.retain(|w| w.strong_count() > 0);
        reg.iter().filter_map(Weak::upgrade).collect()
    };
    let me = std::process::id();
    let mut total = RETIRED.lock().clone();
    for inner in live.iter().filter(|i| i.pid == me) {
        total.add(&snapshot_inner(inner)?);
    }
    Ok(total)
}

/// Measures what happens between [`begin`](Self::begin) and [`end`](Self::end), for one context
/// or (with `None`) every context of the process.
#[derive(Debug, Clone)]
pub struct StatsScope {
    ctx: Option<Context>,
    start: CounterSnapshot,
    delta: Option<CounterSnapshot>,
}

impl StatsScope {
    /// Starts measuring.
    pub fn begin(ctx: Option<&Context>) -> Result<StatsScope> {
        let ctx = ctx.cloned();
        let start = Self::now(ctx.as_ref())?;
        Ok(StatsScope { ctx, start, delta: None })
    }

    fn now(ctx: Option<&Context>) -> Result<CounterSnapshot> {
        match ctx {
            Some(c) => c.snapshot(),
            None => process_snapshot(),
        }
    }

    /// Stops measuring and fixes the result.
    pub fn end(&mut self) -> Result<&CounterSnapshot> {
        let end = Self::now(self.ctx.as_ref())?;
        Ok(self.delta.insert(end.delta(&self.start)))
    }

    /// The result: fixed after `end`, otherwise what happened so far.
    pub fn delta(&self) -> Result<CounterSnapshot> {
        match &self.delta {
            Some(d) => Ok(d.clone()),
            None => Ok(Self::now(self.ctx.as_ref())?.delta(&self.start)),
        }
    }
}

/// The process-wide context, built lazily from the global configuration and rebuilt after
/// [`configure`] or in a forked child.
pub fn global_context() -> Result<Context> {
    let mut g = GLOBAL.lock();
    if let Some(c) = g.as_ref().filter(|c| c.in_current_process()) {
        return Ok(c.clone());
    }
    if let Some(stale) = g.take().filter(|c| !c.in_current_process()) {
        // The parent's context: never freed here (see crate::ffi on fork safety).
        std::mem::forget(stale);
    }
    drop(g);
    // Built without holding the lock: creating a TileDB context takes milliseconds, and a fork
    // meanwhile must not leave the lock held in the child.
    let fresh = Context::from_global_config()?;
    let mut g = GLOBAL.lock();
    if let Some(c) = g.as_ref().filter(|c| c.in_current_process()) {
        return Ok(c.clone());
    }
    fresh.inner.global.store(true, Ordering::Relaxed);
    *g = Some(fresh.clone());
    Ok(fresh)
}

/// Runs `f` on a worker pool: the calling thread's when it is a pool worker, else the global
/// context's. Parallel iterators inside `f` thus never fall on rayon's global pool, which this
/// crate never uses (its threads would be one more pool per process, outside `max_workers`, and
/// missing in a forked child).
pub(crate) fn on_a_pool<R: Send>(f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    global_context()?.workers()?.install(f)
}

/// Validates and installs a new process-wide configuration, and drops the global context so the
/// next use builds one from it. Nothing changes if validation fails.
pub fn configure(config: RadiObjectConfig) -> Result<()> {
    config.validate()?;
    set_global_config(config);
    reset_global_context();
    Ok(())
}

/// Restores the default configuration (and drops the global context).
pub fn reset_config() {
    set_global_config(RadiObjectConfig::default());
    reset_global_context();
}

/// Drops the global context; the next [`global_context`] call builds a new one.
pub fn reset_global_context() {
    let old = GLOBAL.lock().take();
    if let Some(c) = old
        && !c.in_current_process()
    {
        std::mem::forget(c);
    }
}
