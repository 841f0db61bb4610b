//! The per-context tile cache: an LRU of decoded tiles under a byte budget.
//!
//! TileDB 2.30 has no tile cache of its own (`sm.tile_cache_size` was removed; setting it is
//! accepted and ignored), so `ReadConfig.tile_cache_size_mb` is implemented here.
//!
//! * Keys are `(array version, tile index)`. The array version is a hash of the array URI and the
//!   names of its committed fragments when it was opened, so a rewritten array (a new fragment) gets
//!   a new version and can never be served tiles of the old one.
//! * Values are decoded tiles (Fortran order within the tile, clipped to the array domain).
//! * Concurrent misses of one tile are read once: the first lookup gets a [`LoadGuard`] and reads
//!   the tile; the others get a [`Lookup::Wait`] on the same cell ("single flight").
//! * Counters are exact: every tile lookup is either a hit (served without reading storage,
//!   including lookups that waited for another thread's read) or a miss (this lookup read it).
//! * Threads of a worker pool never wait for another thread's read ([`Lookup::Busy`]): the reader
//!   may itself be waiting for that pool, so a pool thread that blocked on it could deadlock the
//!   pool. A busy tile is read again by the pool thread instead (a miss, not cached twice).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

/// `(array version, linear tile index)`.
pub(crate) type TileKey = (u64, u64);

/// A decoded tile: Fortran-ordered cells of the tile's (clipped) box.
pub(crate) type Tile = Arc<Vec<u8>>;

/// Where a pending tile read ends up.
pub(crate) struct LoadCell {
    result: Mutex<Option<Option<Tile>>>,
    ready: Condvar,
}

impl LoadCell {
    /// Blocks until the loading thread finishes. `None` means it failed (the caller reads the
    /// tile itself).
    pub(crate) fn wait(&self) -> Option<Tile> {
        let mut r = self.result.lock();
        while r.is_none() {
            self.ready.wait(&mut r);
        }
        r.clone().flatten()
    }

    fn finish(&self, tile: Option<Tile>) {
        *self.result.lock() = Some(tile);
        self.ready.notify_all();
    }
}

enum Slot {
    Ready { tile: Tile, tick: u64 },
    Loading(Arc<LoadCell>),
}

#[derive(Default)]
struct State {
    map: HashMap<TileKey, Slot>,
    /// tick -> key, oldest first.
    lru: BTreeMap<u64, TileKey>,
    bytes: usize,
    tick: u64,
}

/// Result of looking up one tile.
pub(crate) enum Lookup {
    /// Cached.
    Hit(Tile),
    /// Not cached and not being read: the caller must read it and call [`LoadGuard::fulfill`].
    Load(LoadGuard),
    /// Another thread is reading it.
    Wait(Arc<LoadCell>),
    /// Another thread is reading it and the caller may not wait (a pool thread): the caller
    /// reads the tile itself, without caching it. Counted as a miss.
    Busy,
}

/// Exact counters of one cache, monotonic.
#[derive(Debug, Default)]
pub(crate) struct CacheCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub hit_bytes: AtomicU64,
    pub miss_bytes: AtomicU64,
    pub inserts: AtomicU64,
    pub evictions: AtomicU64,
}

/// LRU tile cache with a byte budget.
pub(crate) struct TileCache {
    budget: usize,
    state: Mutex<State>,
    pub(crate) counters: CacheCounters,
}

impl TileCache {
    /// A cache holding at most `budget` bytes of tiles (0 disables it).
    pub(crate) fn new(budget: usize) -> Arc<TileCache> {
        Arc::new(TileCache { budget, state: Mutex::new(State::default()), counters: CacheCounters::default() })
    }

    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    pub(crate) fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// Whether a decoded tile is held (counts nothing; a tile being loaded counts as held).
    pub(crate) fn contains(&self, key: &TileKey) -> bool {
        self.state.lock().map.contains_key(key)
    }

    /// Bytes and number of tiles currently held.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let s = self.state.lock();
        (s.bytes, s.lru.len())
    }

    /// Drops every cached tile (in-flight reads are unaffected).
    pub(crate) fn clear(&self) {
        let mut s = self.state.lock();
        let keys: Vec<TileKey> = s.lru.values().copied().collect();
        for k in keys {
            s.map.remove(&k);
        }
        s.lru.clear();
        s.bytes = 0;
    }

    /// Looks up several tiles under one lock. With `may_wait` false (pool threads), a tile
    /// another thread is reading comes back as [`Lookup::Busy`] instead of [`Lookup::Wait`].
    pub(crate) fn lookup_many(self: &Arc<Self>, keys: &[TileKey], may_wait: bool) -> Vec<Lookup> {
        let mut s = self.state.lock();
        let mut out = Vec::with_capacity(keys.len());
        let (mut hits, mut hit_bytes, mut misses) = (0u64, 0u64, 0u64);
        for &key in keys {
            s.tick += 1;
            let tick = s.tick;
            let found = match s.map.get_mut(&key) {
                Some(Slot::Ready { tile, tick: t }) => {
                    let old = std::mem::replace(t, tick);
                    Some((Lookup::Hit(tile.clone()), Some(old), tile.len()))
                }
                Some(Slot::Loading(cell)) if may_wait => Some((Lookup::Wait(cell.clone()), None, 0)),
                Some(Slot::Loading(_)) => {
                    misses += 1;
                    out.push(Lookup::Busy);
                    continue;
                }
                None => None,
            };
            match found {
                Some((lookup, old_tick, len)) => {
                    if let Some(old) = old_tick {
                        s.lru.remove(&old);
                        s.lru.insert(tick, key);
                    }
                    hits += 1;
                    hit_bytes += len as u64;
                    out.push(lookup);
                }
                None => {
                    let cell = Arc::new(LoadCell { result: Mutex::new(None), ready: Condvar::new() });
                    s.map.insert(key, Slot::Loading(cell.clone()));
                    misses += 1;
                    out.push(Lookup::Load(LoadGuard { cache: self.clone(), key, cell, done: false }));
                }
            }
        }
        drop(s);
        let c = &self.counters;
        c.hits.fetch_add(hits, Ordering::Relaxed);
        c.hit_bytes.fetch_add(hit_bytes, Ordering::Relaxed);
        c.misses.fetch_add(misses, Ordering::Relaxed);
        out
    }

    /// Counts the bytes of a tile read for a [`Lookup::Busy`] (a miss that is not cached).
    pub(crate) fn count_uncached_miss(&self, bytes: usize) {
        self.counters.miss_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn complete(&self, key: TileKey, cell: &LoadCell, tile: Option<Tile>) {
        let mut s = self.state.lock();
        s.map.remove(&key);
        if let Some(t) = &tile {
            let len = t.len();
            self.counters.miss_bytes.fetch_add(len as u64, Ordering::Relaxed);
            if len <= self.budget {
                while s.bytes + len > self.budget {
                    let Some((_, victim)) = s.lru.pop_first() else { break };
                    if let Some(Slot::Ready { tile, .. }) = s.map.remove(&victim) {
                        s.bytes -= tile.len();
                        self.counters.evictions.fetch_add(1, Ordering::Relaxed);
                    }
                }
                s.tick += 1;
                let tick = s.tick;
                s.map.insert(key, Slot::Ready { tile: t.clone(), tick });
                s.lru.insert(tick, key);
                s.bytes += len;
                self.counters.inserts.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(s);
        cell.finish(tile);
    }
}

/// The obligation to read one missing tile. Dropping it without [`fulfill`](Self::fulfill)
/// (an error path) releases the waiters, who then read the tile themselves.
pub(crate) struct LoadGuard {
    cache: Arc<TileCache>,
    key: TileKey,
    cell: Arc<LoadCell>,
    done: bool,
}

impl LoadGuard {
    /// Stores the tile (if it fits the budget) and hands it to every waiter.
    pub(crate) fn fulfill(mut self, tile: Tile) {
        self.done = true;
        self.cache.complete(self.key, &self.cell, Some(tile));
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        if !self.done {
            self.cache.complete(self.key, &self.cell, None);
        }
    }
}

/// The compressed-tile tier: stored tile bytes of remote arrays, as fetched, under their own byte
/// budget (`ReadConfig.compressed_cache_mb`). Keys name an immutable fragment file and a tile
/// position in it, so entries stay valid across reopens and new commits. Counters are exact: a
/// lookup is a hit or a miss.
pub(crate) struct CompressedCache {
    budget: usize,
    state: Mutex<CState>,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) hit_bytes: AtomicU64,
    pub(crate) evictions: AtomicU64,
}

/// A stored tile and the tick of its last use.
type CEntry = (Arc<Vec<u8>>, u64);

#[derive(Default)]
struct CState {
    map: HashMap<(u64, u64), CEntry>,
    lru: BTreeMap<u64, (u64, u64)>,
    tick: u64,
    bytes: usize,
}

impl CompressedCache {
    pub(crate) fn new(budget: usize) -> Arc<CompressedCache> {
        Arc::new(CompressedCache {
            budget,
            state: Mutex::new(CState::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            hit_bytes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        })
    }

    /// Bytes and tiles held.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let s = self.state.lock();
        (s.bytes, s.map.len())
    }

    pub(crate) fn clear(&self) {
        let mut s = self.state.lock();
        *s = CState::default();
    }
}

impl crate::format::array::StoredTileCache for CompressedCache {
    fn get(&self, key: (u64, u64)) -> Option<Arc<Vec<u8>>> {
        let mut s = self.state.lock();
        s.tick += 1;
        let tick = s.tick;
        let found = s.map.get_mut(&key).map(|(bytes, t)| {
            let old = std::mem::replace(t, tick);
            (bytes.clone(), old)
        });
        match found {
            Some((bytes, old)) => {
                s.lru.remove(&old);
                s.lru.insert(tick, key);
                self.hits.fetch_add(1, Ordering::Relaxed);
                self.hit_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Some(bytes)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn contains(&self, key: (u64, u64)) -> bool {
        self.state.lock().map.contains_key(&key)
    }

    fn count_misses(&self, n: u64) {
        self.misses.fetch_add(n, Ordering::Relaxed);
    }

    fn put(&self, key: (u64, u64), bytes: Arc<Vec<u8>>) {
        if bytes.len() > self.budget / 4 {
            return;
        }
        let mut s = self.state.lock();
        if s.map.contains_key(&key) {
            return;
        }
        s.tick += 1;
        let tick = s.tick;
        s.bytes += bytes.len();
        s.map.insert(key, (bytes, tick));
        s.lru.insert(tick, key);
        while s.bytes > self.budget {
            let Some((_, k)) = s.lru.pop_first() else { break };
            if let Some((b, _)) = s.map.remove(&k) {
                s.bytes -= b.len();
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(n: usize, v: u8) -> Tile {
        Arc::new(vec![v; n])
    }

    #[test]
    fn hit_after_load_and_exact_counters() {
        let c = TileCache::new(100);
        let mut l = c.lookup_many(&[(1, 0)], true);
        let Some(Lookup::Load(g)) = l.pop() else { panic!("expected a miss") };
        g.fulfill(tile(10, 7));
        let l = c.lookup_many(&[(1, 0)], true);
        assert!(matches!(&l[0], Lookup::Hit(t) if t[0] == 7));
        assert_eq!(c.counters.hits.load(Ordering::Relaxed), 1);
        assert_eq!(c.counters.misses.load(Ordering::Relaxed), 1);
        assert_eq!(c.counters.miss_bytes.load(Ordering::Relaxed), 10);
        assert_eq!(c.usage(), (10, 1));
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let c = TileCache::new(25);
        for i in 0..3 {
            let Some(Lookup::Load(g)) = c.lookup_many(&[(1, i)], true).pop() else { panic!() };
            g.fulfill(tile(10, i as u8));
            if i == 1 {
                // touch tile 0 so tile 1 becomes the oldest
                assert!(matches!(c.lookup_many(&[(1, 0)], true).pop(), Some(Lookup::Hit(_))));
            }
        }
        assert_eq!(c.usage(), (20, 2));
        assert!(matches!(c.lookup_many(&[(1, 0)], true).pop(), Some(Lookup::Hit(_))));
        assert!(matches!(c.lookup_many(&[(1, 2)], true).pop(), Some(Lookup::Hit(_))));
        assert!(matches!(c.lookup_many(&[(1, 1)], true).pop(), Some(Lookup::Load(_))));
        assert_eq!(c.counters.evictions.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn tiles_larger_than_the_budget_are_served_not_kept() {
        let c = TileCache::new(5);
        let Some(Lookup::Load(g)) = c.lookup_many(&[(1, 0)], true).pop() else { panic!() };
        g.fulfill(tile(10, 1));
        assert_eq!(c.usage(), (0, 0));
    }

    #[test]
    fn concurrent_misses_read_once() {
        let c = TileCache::new(1000);
        let first = c.lookup_many(&[(9, 9)], true).pop();
        let Some(Lookup::Load(g)) = first else { panic!() };
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || match c.lookup_many(&[(9, 9)], true).pop() {
                    Some(Lookup::Wait(cell)) => cell.wait().map(|t| t[0]),
                    Some(Lookup::Hit(t)) => Some(t[0]),
                    _ => None,
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(20));
        g.fulfill(tile(4, 42));
        for w in waiters {
            assert_eq!(w.join().unwrap(), Some(42));
        }
        assert_eq!(c.counters.misses.load(Ordering::Relaxed), 1);
        assert_eq!(c.counters.hits.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn threads_that_may_not_wait_get_busy_and_a_miss() {
        let c = TileCache::new(1000);
        let Some(Lookup::Load(g)) = c.lookup_many(&[(2, 2)], false).pop() else { panic!() };
        assert!(matches!(c.lookup_many(&[(2, 2)], false).pop(), Some(Lookup::Busy)));
        assert_eq!(c.counters.misses.load(Ordering::Relaxed), 2);
        assert_eq!(c.counters.hits.load(Ordering::Relaxed), 0);
        g.fulfill(tile(4, 1));
        assert!(matches!(c.lookup_many(&[(2, 2)], false).pop(), Some(Lookup::Hit(_))));
    }

    #[test]
    fn failed_load_releases_waiters() {
        let c = TileCache::new(1000);
        let Some(Lookup::Load(g)) = c.lookup_many(&[(1, 1)], true).pop() else { panic!() };
        let Some(Lookup::Wait(cell)) = c.lookup_many(&[(1, 1)], true).pop() else { panic!() };
        drop(g);
        assert!(cell.wait().is_none());
        assert!(matches!(c.lookup_many(&[(1, 1)], true).pop(), Some(Lookup::Load(_))));
    }

    #[test]
    fn compressed_tier_counts_exactly_and_evicts_oldest() {
        use crate::format::array::StoredTileCache;
        let c = CompressedCache::new(400);
        assert!(c.get((1, 1)).is_none());
        c.put((1, 1), Arc::new(vec![0; 100]));
        c.put((1, 2), Arc::new(vec![1; 100]));
        assert_eq!(c.get((1, 1)).unwrap().len(), 100);
        c.put((1, 3), Arc::new(vec![2; 100]));
        c.put((1, 4), Arc::new(vec![3; 100]));
        c.put((1, 5), Arc::new(vec![4; 100]));
        // (1, 2) was the least recently used.
        assert!(c.get((1, 2)).is_none());
        assert!(c.get((1, 1)).is_some());
        assert_eq!(c.usage(), (400, 4));
        assert_eq!(c.hits.load(Ordering::Relaxed), 2);
        assert_eq!(c.misses.load(Ordering::Relaxed), 2);
        assert_eq!(c.evictions.load(Ordering::Relaxed), 1);
        // Larger than a quarter of the budget: served, not kept.
        c.put((2, 0), Arc::new(vec![0; 101]));
        assert!(c.get((2, 0)).is_none());
    }
}
