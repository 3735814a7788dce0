//! The indexes of a data directory, one per name in `DATA/indexes/<name>/`,
//! opened when first asked for and kept open until the server stops.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use super::error::{ApiError, ApiResult};
use crate::{Create, Error, Index, Options};

/// The longest index name.
pub const MAX_NAME_CHARS: usize = 64;

/// The open indexes share this memory budget for writing
/// ([`pushdex::Options::memory_budget`]: memtables, flushes, merges' tables):
/// each gets the budget divided by the number of open indexes, between
/// [`MIN_INDEX_BUDGET`] and [`MAX_INDEX_BUDGET`], lowered for every index
/// as more open. HTTP.md bounds the server's RSS at 512 MiB with 20
/// indexes written at once (`cargo bench --bench server -- memory`,
/// figures in the README).
pub const MEMORY_BUDGET_BYTES: usize = 512 << 20;
/// The largest budget an index gets (one index alone): a 16 MiB memtable.
pub const MAX_INDEX_BUDGET: usize = 80 << 20;
/// The smallest (many indexes): a 1 MiB memtable; below it, flushes make
/// segments too small to be worth their merges.
pub const MIN_INDEX_BUDGET: usize = 5 << 20;

/// The indexes of one data directory.
///
/// An index is created by the first request that writes to it, and only if
/// that request is accepted: [`Indexes::create_or_use`] runs the request on
/// the new index before any other request can see it, and removes the
/// index if the request is refused. Opening, creating and removing hold
/// `changing`, so that no request opens a directory while another creates
/// or removes it. Lock order: `changing`, then `open`.
pub struct Indexes {
    backend: Box<dyn Backend>,
    open: Mutex<HashMap<String, Index>>,
    changing: Mutex<()>,
    /// Set by [`Indexes::close_all`]: nothing opens or is created after.
    stopping: std::sync::atomic::AtomicBool,
}

/// Where indexes live: the data directory's folders (one server), or the
/// cluster's object store (`--cluster`).
pub trait Backend: Send + Sync {
    /// Opens index `name` with `options` (`NoIndex` when it does not exist
    /// and `options` do not create it).
    fn open(&self, name: &str, options: Options) -> crate::Result<Index>;

    /// Removes index `name`, closed.
    fn remove(&self, name: &str) -> crate::Result<()>;

    /// The names that may be indexes, sorted. Opens nothing.
    fn names(&self) -> crate::Result<Vec<String>>;

    /// Where index `name` lives (its [`Index::path`] once open).
    fn dir_of(&self, name: &str) -> PathBuf;
}

/// One folder per index under `DATA/indexes/`.
struct Folders {
    dir: PathBuf,
}

impl Backend for Folders {
    fn open(&self, name: &str, options: Options) -> crate::Result<Index> {
        Index::open_with(self.dir.join(name), options)
    }

    fn remove(&self, name: &str) -> crate::Result<()> {
        std::fs::remove_dir_all(self.dir.join(name)).map_err(Error::Io)
    }

    fn names(&self) -> crate::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if check_name(&name).is_ok() && entry.path().is_dir() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn dir_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// `503`: the server is stopping.
fn stopping() -> ApiError {
    ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the server is stopping")
}

/// Checks an index name: 1–64 characters of `A-Z a-z 0-9 . _ -`, not
/// starting with `.`.
pub fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "index name {name:?}: 1 to {MAX_NAME_CHARS} characters of A-Z a-z 0-9 . _ -, not starting with ."
        )))
    }
}

impl Indexes {
    /// The indexes under `data/indexes/`.
    pub fn new(data: &std::path::Path) -> std::io::Result<Indexes> {
        let dir = data.join("indexes");
        std::fs::create_dir_all(&dir)?;
        Ok(Indexes::with_backend(Box::new(Folders { dir })))
    }

    /// The indexes of `backend`.
    pub fn with_backend(backend: Box<dyn Backend>) -> Indexes {
        Indexes { backend, open: Mutex::new(HashMap::new()), changing: Mutex::new(()), stopping: Default::default() }
    }

    /// Where index `name` lives.
    pub fn dir_of(&self, name: &str) -> PathBuf {
        self.backend.dir_of(name)
    }

    /// Closes index `name` if it is open here, and forgets it (the cluster:
    /// another node owns it now). Its close may fail (fenced): ignored.
    #[cfg(feature = "cluster")]
    pub fn evict(&self, name: &str) {
        let _changing = self.changing();
        let index = {
            let mut open = self.lock();
            let index = open.remove(name);
            Indexes::rebalance(&open);
            index
        };
        if let Some(index) = index {
            let _ = index.close();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Index>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn options(create: Create) -> Options {
        Options::default().memory_budget(MIN_INDEX_BUDGET).create(create)
    }

    /// Shares the memory budget among the open indexes (called with the
    /// map locked, whenever an index opens or goes).
    fn rebalance(open: &HashMap<String, Index>) {
        let share = (MEMORY_BUDGET_BYTES / open.len().max(1)).clamp(MIN_INDEX_BUDGET, MAX_INDEX_BUDGET);
        for index in open.values() {
            // Cannot fail: the share is above the library's minimum.
            let _ = index.set_memory_budget(share);
        }
    }

    fn changing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The index `name` if it exists (opening it on first use). Blocks.
    pub fn get(&self, name: &str) -> ApiResult<Option<Index>> {
        check_name(name)?;
        if let Some(index) = self.lock().get(name) {
            return Ok(Some(index.clone()));
        }
        let _changing = self.changing();
        self.open_existing(name)
    }

    /// [`Indexes::get`] with `changing` held (which every insertion and
    /// removal holds: the map is locked only to look and to insert, never
    /// while an index recovers).
    fn open_existing(&self, name: &str) -> ApiResult<Option<Index>> {
        if let Some(index) = self.lock().get(name) {
            return Ok(Some(index.clone()));
        }
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(stopping());
        }
        match self.backend.open(name, Indexes::options(Create::Never)) {
            Ok(index) => {
                let mut open = self.lock();
                open.insert(name.to_string(), index.clone());
                Indexes::rebalance(&open);
                Ok(Some(index))
            }
            Err(Error::NoIndex { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The index `name`, which must exist: `404 not_found` otherwise.
    pub fn existing(&self, name: &str) -> ApiResult<Index> {
        self.get(name)?.ok_or_else(|| ApiError::not_found(format!("no index named {name:?}")))
    }

    /// Runs `request` on index `name`, creating the index if it does not
    /// exist (`request` is told whether it did). A new index is seen by no
    /// other request until `request` returns; if `request` is refused (a
    /// 4xx), the new index is closed and removed, so that a refused request
    /// creates nothing. Other requests that need to open an index wait
    /// meanwhile.
    pub fn create_or_use<T>(&self, name: &str, request: impl FnOnce(&Index, bool) -> ApiResult<T>) -> ApiResult<T> {
        self.create_or_use_keeping(name, request, |_| true)
    }

    /// [`Indexes::create_or_use`], where an accepted request keeps a new
    /// index only when `keep` says it changed something (a bulk request
    /// whose every line failed creates nothing either).
    pub fn create_or_use_keeping<T>(
        &self,
        name: &str,
        request: impl FnOnce(&Index, bool) -> ApiResult<T>,
        keep: impl FnOnce(&T) -> bool,
    ) -> ApiResult<T> {
        if let Some(index) = self.get(name)? {
            return request(&index, false);
        }
        let changing = self.changing();
        if let Some(index) = self.open_existing(name)? {
            drop(changing);
            return request(&index, false);
        }
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(stopping());
        }
        let index = self.backend.open(name, Indexes::options(Create::IfEmpty))?;
        let answer = request(&index, true);
        let refused = match &answer {
            Ok(value) => !keep(value),
            Err(e) => e.status.is_client_error(),
        };
        match refused {
            true => {
                index.close()?;
                self.backend.remove(name)?;
            }
            false => {
                let mut open = self.lock();
                open.insert(name.to_string(), index);
                Indexes::rebalance(&open);
            }
        }
        answer
    }

    /// The indexes open now, by name.
    pub fn open_indexes(&self) -> Vec<(String, Index)> {
        let mut open: Vec<_> = self.lock().iter().map(|(name, index)| (name.clone(), index.clone())).collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        open
    }

    /// The names of the data directory's folders that may hold an index
    /// (their names are valid index names), sorted. Opens nothing.
    pub fn candidates(&self) -> ApiResult<Vec<String>> {
        Ok(self.backend.names()?)
    }

    /// How many indexes the data directory holds, and what is wrong with
    /// any of them: one that does not open, or whose writer stopped.
    /// Opens every index not open yet.
    pub fn readiness(&self) -> (usize, Vec<String>) {
        let mut problems = Vec::new();
        let mut count = 0;
        let names = match self.candidates() {
            Ok(names) => names,
            Err(e) => return (0, vec![e.message]),
        };
        for name in names {
            match self.get(&name) {
                Ok(Some(index)) => {
                    count += 1;
                    if let Some(why) = index.health().writer_stopped {
                        problems.push(format!("index {name}: its writer stopped ({why}); restart the server"));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    count += 1;
                    problems.push(format!("index {name} does not open: {}", e.message));
                }
            }
        }
        (count, problems)
    }

    /// Closes and removes index `name`; false if there was none. An index
    /// that does not open because it is damaged is removed too. `closing`
    /// runs once the index is out of reach of new requests and before it
    /// closes (what it returns, a guard, is held until the index is closed):
    /// the server drops what it keeps of the index there.
    pub fn remove<G>(&self, name: &str, closing: impl FnOnce() -> G) -> ApiResult<bool> {
        check_name(name)?;
        let _changing = self.changing();
        let index = match self.open_existing(name) {
            Ok(Some(index)) => Some(index),
            Ok(None) => return Ok(false),
            Err(e) if e.code == "corrupt" => None,
            Err(e) => return Err(e),
        };
        {
            let mut open = self.lock();
            open.remove(name);
            Indexes::rebalance(&open);
        }
        let guard = closing();
        if let Some(index) = index {
            index.close()?;
        }
        drop(guard);
        self.backend.remove(name)?;
        Ok(true)
    }

    /// Closes every open index (each syncs); the first failure is returned
    /// after all were tried.
    pub fn close_all(&self) -> crate::Result<()> {
        // After every create in progress; none starts after.
        let _changing = self.changing();
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        let open: Vec<(String, Index)> = self.lock().drain().collect();
        let mut result = Ok(());
        for (name, index) in open {
            if let Err(e) = index.close() {
                eprintln!("closing index {name}: {e}");
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }
}
