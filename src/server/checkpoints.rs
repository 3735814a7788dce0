//! The newest *synced* value of each checkpoint, which the Push API's
//! `get_checkpoint` answers (HTTP.md) while the library keeps only the
//! newest value.
//!
//! Every checkpoint write of every dialect goes through [`CheckpointHistory`]:
//! it records, per index and name, the value each write left (`None` for a
//! deletion or a clear) with its serial, and the value before the first
//! write since the server started (synced: recovery syncs what it finds).
//! The synced value is then the newest recorded write at or below the
//! synced watermark, or that first value. Writes are recorded under one
//! lock, so their order is their serials' order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{Index, Result, Serial};

/// See the module documentation.
#[derive(Default)]
pub(crate) struct CheckpointHistory {
    names: Mutex<HashMap<(PathBuf, String), History>>,
}

/// One checkpoint's recent writes.
struct History {
    /// Its value before `writes` (synced).
    base: Option<String>,
    /// `(serial, value left)`, in serial order.
    writes: Vec<(u64, Option<String>)>,
}

impl History {
    /// Drops what no reader can ask for any more: every write but the
    /// newest synced one, which becomes the base.
    fn prune(&mut self, synced: u64) {
        if let Some(newest) = self.writes.iter().rposition(|(serial, _)| *serial <= synced) {
            self.base = self.writes[newest].1.take();
            self.writes.drain(..=newest);
        }
    }
}

impl CheckpointHistory {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(PathBuf, String), History>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `index.set_checkpoint(name, value)`, recorded.
    pub(crate) fn set(&self, index: &Index, name: &str, value: &str) -> Result<Serial> {
        self.write(index, &[name.to_string()], || index.set_checkpoint(name, value), Some(value))
    }

    /// `index.delete_checkpoint(name)`, recorded.
    pub(crate) fn delete(&self, index: &Index, name: &str) -> Result<Serial> {
        self.write(index, &[name.to_string()], || index.delete_checkpoint(name), None)
    }

    /// `index.clear_checkpoints()`, recorded for every checkpoint it clears.
    pub(crate) fn clear(&self, index: &Index) -> Result<Serial> {
        let mut histories = self.lock();
        let names = Self::names_locked(&histories, index)?;
        Self::write_locked(&mut histories, index, &names, || index.clear_checkpoints(), None)
    }

    /// Every checkpoint name of `index` now, and those written since the
    /// server started (a deleted one may still have a synced value), sorted.
    pub(crate) fn names(&self, index: &Index) -> Result<Vec<String>> {
        Self::names_locked(&self.lock(), index)
    }

    fn names_locked(histories: &HashMap<(PathBuf, String), History>, index: &Index) -> Result<Vec<String>> {
        let mut names: Vec<String> = index.checkpoints()?.into_iter().map(|c| c.name).collect();
        let path = index.path();
        names.extend(histories.keys().filter(|(p, _)| p == path).map(|(_, n)| n.clone()));
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn write(
        &self,
        index: &Index,
        names: &[String],
        write: impl FnOnce() -> Result<Serial>,
        left: Option<&str>,
    ) -> Result<Serial> {
        Self::write_locked(&mut self.lock(), index, names, write, left)
    }

    fn write_locked(
        histories: &mut HashMap<(PathBuf, String), History>,
        index: &Index,
        names: &[String],
        write: impl FnOnce() -> Result<Serial>,
        left: Option<&str>,
    ) -> Result<Serial> {
        let path = index.path().to_path_buf();
        // The values before the first recorded write, read before it.
        let mut bases = Vec::new();
        for name in names {
            if !histories.contains_key(&(path.clone(), name.clone())) {
                bases.push((name.clone(), index.checkpoint(name)?.map(|c| c.value)));
            }
        }
        let serial = write()?;
        for (name, base) in bases {
            histories.insert((path.clone(), name), History { base, writes: Vec::new() });
        }
        let synced = index.watermarks().synced.0;
        for name in names {
            if let Some(history) = histories.get_mut(&(path.clone(), name.clone())) {
                history.writes.push((serial.0, left.map(str::to_string)));
                history.prune(synced);
            }
        }
        Ok(serial)
    }

    /// The newest synced value of checkpoint `name`.
    pub(crate) fn synced_value(&self, index: &Index, name: &str) -> Result<Option<String>> {
        let histories = self.lock();
        let synced = index.watermarks().synced.0;
        match histories.get(&(index.path().to_path_buf(), name.to_string())) {
            Some(history) => Ok(history
                .writes
                .iter()
                .rev()
                .find(|(serial, _)| *serial <= synced)
                .map_or_else(|| history.base.clone(), |(_, value)| value.clone())),
            // Not written since the server started: what the index holds
            // was synced by its recovery.
            None => Ok(index.checkpoint(name)?.map(|c| c.value)),
        }
    }

    /// Forgets an index that was removed.
    pub(crate) fn forget(&self, path: &Path) {
        self.lock().retain(|(p, _), _| p != path);
    }
}
