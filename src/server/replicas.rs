//! Searches on a cluster node, served from the published manifest
//! (`../shared/CLUSTER.md`: "every node's search sees exactly the latest
//! published manifest of the index").
//!
//! A search does not go to the index's owner: every node, the owner too,
//! answers it from a *replica*, a read-only copy of the index made of the
//! files the published `MANIFEST` names (the segments and their deletion
//! bitmaps, no log), downloaded from the store into
//! `DATA/replicas/<name>/v<n>/` and opened as an ordinary [`Index`], which
//! memory-maps them. Its Searchable state is exactly the manifest's:
//! every node holding the same manifest answers a query the same.
//!
//! Before each search the node reads the published view from etcd (one
//! read); when its `MANIFEST` changed, a new replica is made, hard-linking
//! from the previous one every file the new manifest still names with the
//! same pieces (segments never change, so a refresh downloads only what it
//! added), and the previous one is dropped. A search therefore sees every
//! refresh that returned before it started, on any node, and keeps working
//! while the owner is paused or dead.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::cluster::replicated::{restore_file, Piece, View};
use crate::storage::FsStorage;
use crate::{Create, Error, Index, Options};

/// The commit point's file name in a view.
const MANIFEST: &str = "MANIFEST";

/// The memory budget of a replica: it never takes a write.
const REPLICA_BUDGET: usize = super::indexes::MIN_INDEX_BUDGET;

/// One index's read-only copy.
struct Replica {
    /// The pieces of the `MANIFEST` it was made from.
    manifest: Vec<Piece>,
    /// The etcd revision of the newest view it was found to match.
    revision: i64,
    /// The files it holds (beside `MANIFEST`), with their pieces.
    files: HashMap<String, Vec<Piece>>,
    dir: PathBuf,
    index: Index,
}

/// The replicas of this node, one per index searched here.
pub(crate) struct Replicas {
    /// `DATA/replicas`.
    dir: PathBuf,
    /// Each index's replica, behind a lock of its own: a search waits while
    /// another makes the replica it needs.
    slots: Mutex<HashMap<String, Arc<Mutex<Option<Replica>>>>>,
    /// Numbers the replicas' directories.
    next: AtomicU64,
}

impl Replicas {
    /// The replicas kept in `dir`; what an earlier run left there is removed.
    pub fn new(dir: PathBuf) -> io::Result<Replicas> {
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Replicas { dir, slots: Mutex::default(), next: AtomicU64::new(1) })
    }

    fn slot(&self, name: &str) -> Arc<Mutex<Option<Replica>>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(name.to_string()).or_default().clone()
    }

    /// The replica of index `name` for the published `view` and the etcd
    /// revision that published it (`None`: the index does not exist, and
    /// its replica is dropped), made or brought up to date first, its files
    /// fetched by key with `fetch`. A view older than the replica (a search
    /// that read etcd before another that made the replica) gets the
    /// replica: what a node's searches see only moves forward.
    pub fn index(
        &self,
        name: &str,
        view: Option<(&View, i64)>,
        fetch: &dyn Fn(&str) -> io::Result<Vec<u8>>,
    ) -> crate::Result<Option<Index>> {
        let Some((view, revision)) = view else {
            self.drop_index(name);
            return Ok(None);
        };
        let manifest = view.files.get(MANIFEST).cloned().unwrap_or_default();
        let slot = self.slot(name);
        let mut replica = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = replica.as_mut() {
            if current.manifest == manifest || current.revision > revision {
                current.revision = current.revision.max(revision);
                return Ok(Some(current.index.clone()));
            }
        }
        let made = self.make(name, view, manifest, revision, replica.as_ref(), fetch)?;
        let index = made.index.clone();
        if let Some(previous) = replica.replace(made) {
            discard(previous);
        }
        Ok(Some(index))
    }

    /// Drops the replica of index `name` (deleted).
    pub fn drop_index(&self, name: &str) {
        let slot = self.slots.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        if let Some(previous) = slot.and_then(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).take()) {
            discard(previous);
        }
    }

    /// A new replica of `view` in a directory of its own.
    fn make(
        &self,
        name: &str,
        view: &View,
        manifest: Vec<Piece>,
        revision: i64,
        previous: Option<&Replica>,
        fetch: &dyn Fn(&str) -> io::Result<Vec<u8>>,
    ) -> crate::Result<Replica> {
        let dir = self.dir.join(name).join(format!("v{}", self.next.fetch_add(1, Ordering::Relaxed)));
        let made = (|| {
            std::fs::create_dir_all(&dir)?;
            let local = FsStorage::new(&dir)?;
            let mut files = HashMap::new();
            if !manifest.is_empty() {
                restore_file(MANIFEST, &manifest, &local, fetch)?;
                let read = crate::manifest::read_manifest(&local)?;
                let named = read
                    .iter()
                    .flat_map(|m| &m.segments)
                    .flat_map(|s| std::iter::once(s.name.clone()).chain(s.deletions.clone()));
                for file in named {
                    let pieces = view.files.get(&file).ok_or_else(|| Error::Corrupt {
                        path: dir.join(MANIFEST),
                        detail: format!("the published manifest names {file}, which the published view lacks"),
                    })?;
                    let linked = previous
                        .filter(|p| p.files.get(&file) == Some(pieces))
                        .is_some_and(|p| std::fs::hard_link(p.dir.join(&file), dir.join(&file)).is_ok());
                    if !linked {
                        restore_file(&file, pieces, &local, fetch)?;
                    }
                    files.insert(file, pieces.clone());
                }
            }
            let options = Options::default().create(Create::IfEmpty).memory_budget(REPLICA_BUDGET);
            let index = Index::open_on(Arc::new(local), options)?;
            Ok(Replica { manifest, revision, files, dir: dir.clone(), index })
        })();
        if made.is_err() {
            remove_dir(&dir);
        }
        made
    }
}

/// Closes a replica nobody will search again (a search under way keeps
/// its segments: they are memory-mapped) and removes its directory.
fn discard(replica: Replica) {
    let Replica { index, dir, .. } = replica;
    drop(index);
    remove_dir(&dir);
}

fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas").field("dir", &self.dir).finish()
    }
}
