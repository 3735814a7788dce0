//! Flushes and commits: how the memtable becomes a segment and the manifest
//! moves forward (merges: `compaction`).
//!
//! Commits are serialized by the `maintenance` mutex: a flush (on
//! `refresh()`, `close()`, or on the flush thread when the memtable is full)
//! holds it throughout; a merge (on the merge thread, or `compact()`) holds
//! it only to pick its inputs and to commit, and writes the merged segment
//! without it, so that flushes never wait for a merge. Writers are held only
//! for the short steps that change shared state: the freeze and the
//! installs. The prefix rule (a manifest covers a prefix of the operations)
//! holds because a commit's state is snapshotted at the freeze, after the
//! log is fsynced through it:
//! the manifest covering serial F holds exactly the effects of operations
//! 1..F (the frozen memtable, the deletion bitmaps and checkpoints as they
//! were at F). Deletions made after F live only in memory and in the newer
//! log, which open replays. `docs/FORMAT.md` has the crash argument step by
//! step.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::error::{Error, Result};
use crate::files::FileName;
use crate::index::background::Job;
use crate::index::tables::{CheckpointEntry, Frozen, LiveSegment, Tables};
use crate::index::Inner;
use crate::manifest::{self, Manifest, SegmentRef};
use crate::segment::{self, Segment, SegmentEntry, Terms};
use crate::trie::Trie;
use crate::wal::{self, WalWriter};

/// State kept by the one maintenance cycle that may run at a time.
#[derive(Debug)]
pub(crate) struct Maintenance {
    /// The next unused file generation (logs, segments, bitmaps).
    pub next_gen: u64,
    /// The serial the last manifest covers.
    pub committed: u64,
    /// The base of a flush that failed after its freeze, to commit first.
    pub(crate) pending: Option<Base>,
    /// The last manifest written (or read at open).
    pub manifest: Manifest,
    /// The segment a merge is writing, not yet in any manifest.
    pub merge_output: Option<String>,
}

/// Hands the heap's free memory back to the operating system. glibc keeps
/// freed small allocations (a dropped memtable is millions of them) in its
/// arenas, and the process would sit at its peak size for good; other
/// allocators return memory on their own.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes the
    // allocator's own locks and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The state at the freeze: what the commit will hold.
#[derive(Debug)]
pub(crate) struct Base {
    serial: u64,
    log_gen: u64,
    frozen: Arc<Frozen>,
    segments: Vec<LiveSegment>,
    checkpoints: Vec<(String, String, u64)>,
}

impl Inner {
    /// Whether the active memtable has passed the flush threshold.
    pub(crate) fn memtable_full(&self) -> bool {
        self.read_tables().tables.mem_bytes >= self.memtable_limit()
    }

    pub(super) fn read_tables(&self) -> std::sync::RwLockReadGuard<'_, super::Shared> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_maintenance(&self) -> std::sync::MutexGuard<'_, Maintenance> {
        self.maintenance.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Freezes the memtable, writes it as a segment and commits a manifest
    /// covering every operation so far. Returns the covered serial. With
    /// `publish`, that serial also becomes Searchable.
    ///
    /// `Closed` once the index is shut down: a flush that was waiting for
    /// the maintenance lock while `close` (or the last drop) ran must not
    /// write after the directory lock was released.
    pub(crate) fn flush(&self, publish: bool) -> Result<u64> {
        let mut m = self.lock_maintenance();
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        self.flush_locked(&mut m, publish)
    }

    pub(crate) fn flush_locked(&self, m: &mut Maintenance, publish: bool) -> Result<u64> {
        let target = self.last.load(Ordering::SeqCst);
        while m.committed < target {
            // A flush that failed half-way left its base: commit it first,
            // as it was (its log rotation and snapshot stay valid).
            let base = match m.pending.take() {
                Some(base) => base,
                None => match self.freeze(m) {
                    Ok(Some(base)) => base,
                    Ok(None) => break,
                    Err(e) => return Err(self.flush_failed(e)),
                },
            };
            // A panic while writing must leave the base pending, as an
            // error does: the frozen memtable's operations are in no
            // manifest yet, and a second freeze must not replace it.
            let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.write_and_commit(m, &base)));
            let written = match written {
                Ok(written) => written,
                Err(panic) => {
                    m.pending = Some(base);
                    std::panic::resume_unwind(panic);
                }
            };
            if let Err(e) = written {
                // The frozen memtable stays readable; the newer log keeps
                // the operations after it.
                m.pending = Some(base);
                return Err(self.flush_failed(e));
            }
            self.wake_stalled();
            // A new segment may complete a tier.
            self.background.merge.notify();
            // The frozen memtable goes with the base (unless a reader still
            // holds it): tens of MiB of small allocations.
            drop(base);
            release_free_memory();
        }
        if publish {
            self.publish()?;
            self.searchable.fetch_max(m.committed, Ordering::SeqCst);
        }
        Ok(m.committed)
    }

    /// Records a failed flush for [`Index::health`](crate::Index::health)
    /// and for the writers that wait on it (backpressure), and wakes them.
    fn flush_failed(&self, e: Error) -> Error {
        self.background.record(Job::Flush, &e);
        self.wake_stalled();
        e
    }

    /// Step 1, under the writer lock: make the log durable through `last`,
    /// start a new log file, and set the memtable aside.
    fn freeze(&self, m: &mut Maintenance) -> Result<Option<Base>> {
        let mut shared = self.write_lock();
        if let Some(e) = shared.wal.poisoned() {
            return Err(e);
        }
        let last = self.last.load(Ordering::SeqCst);
        if last == m.committed {
            return Ok(None);
        }
        debug_assert!(shared.tables.frozen.is_none(), "a frozen memtable without a pending base");
        // The rotation point must be durable before anything depends on it.
        if let Err(e) = shared.wal.write_out().and_then(|()| shared.wal.file().sync().map_err(Error::Io)) {
            shared.wal.poison(&e.to_string());
            return Err(e);
        }
        self.synced.fetch_max(last, Ordering::SeqCst);
        let log_gen = m.next_gen;
        let new_wal = match WalWriter::create(self.storage.as_ref(), log_gen) {
            Ok(wal) => wal,
            Err(e) => {
                // The writer stays on the current log. A half-made newer log
                // must not outlive this: recovery only forgives a torn tail
                // in the last log, and the current one would no longer be
                // last. If it cannot be removed for sure, nothing more may be
                // appended to the current log.
                if let Err(why) = self.remove_log(log_gen) {
                    shared.wal.poison(&format!("a failed log rotation left {}: {why}", wal::log_name(log_gen)));
                }
                return Err(e);
            }
        };
        m.next_gen += 1;
        shared.wal = new_wal;
        let tables = &mut shared.tables;
        let frozen = Arc::new(Frozen { mem: std::mem::take(&mut tables.mem) });
        tables.mem_bytes = 0;
        tables.frozen = Some(frozen.clone());
        let checkpoints = checkpoint_list(&tables.checkpoints);
        Ok(Some(Base { serial: last, log_gen, frozen, segments: tables.segments.clone(), checkpoints }))
    }

    /// Steps 2-6: write the segment, commit, install, clean up.
    fn write_and_commit(&self, m: &mut Maintenance, base: &Base) -> Result<u64> {
        let storage = self.storage.as_ref();
        // 2. The frozen memtable as a segment.
        let new_seg = if base.frozen.mem.is_empty() {
            None
        } else {
            let name = FileName::Segment(m.next_gen).to_string();
            m.next_gen += 1;
            let analyze = Terms::Analyze(m.manifest.analyzer);
            let entries =
                |visit: &mut dyn FnMut(SegmentEntry<'_>) -> Result<()>| frozen_entries(&base.frozen.mem, visit);
            segment::write_segment_with(storage, &name, &entries, analyze, self.table_bytes())?;
            storage.sync_dir()?;
            Some(Arc::new(Segment::open(storage, &name)?))
        };
        #[cfg(test)]
        crate::index::tests::flush_panic_point(storage.root());
        // 3. One live row per URI: the older rows this segment rewrites.
        let mut rewrites: Vec<Vec<u32>> = vec![Vec::new(); base.segments.len()];
        if new_seg.is_some() && !base.segments.is_empty() {
            let mut keys = base.frozen.mem.iter();
            while let Some((key, _)) = keys.next_entry() {
                for (i, live) in base.segments.iter().enumerate() {
                    if let Some(ord) = live.live_ordinal(key)? {
                        rewrites[i].push(ord);
                        break;
                    }
                }
            }
        }
        // 4. The commit: bitmaps as of the freeze plus the rewrites.
        let mut refs = Vec::with_capacity(base.segments.len() + 1);
        if let Some(seg) = &new_seg {
            refs.push(SegmentRef { name: seg.name().to_string(), rows: seg.rows(), deletions: None });
        }
        let mut committed = Vec::with_capacity(base.segments.len());
        let mut wrote_bitmaps = false;
        for (live, rewrites) in base.segments.iter().zip(&rewrites) {
            let mut bitmap = live.deleted.clone();
            if !rewrites.is_empty() {
                Arc::make_mut(&mut bitmap).extend(rewrites.iter().copied());
            }
            let file = if Arc::ptr_eq(&bitmap, &live.committed) || *bitmap == *live.committed {
                live.committed_file.clone()
            } else if bitmap.is_empty() {
                None
            } else {
                let name = FileName::Bitmap(m.next_gen).to_string();
                m.next_gen += 1;
                manifest::write_bitmap(storage, &name, &bitmap)?;
                wrote_bitmaps = true;
                Some(name)
            };
            refs.push(SegmentRef { name: live.seg.name().to_string(), rows: live.seg.rows(), deletions: file.clone() });
            committed.push((bitmap, file));
        }
        if wrote_bitmaps {
            storage.sync_dir()?;
        }
        let manifest = Manifest {
            serial: base.serial,
            log_gen: base.log_gen,
            next_gen: m.next_gen,
            segments: refs,
            checkpoints: base.checkpoints.clone(),
            analyzer: m.manifest.analyzer,
        };
        manifest::write_manifest(storage, &manifest)?;
        m.committed = base.serial;
        m.manifest = manifest.clone();

        // 5. Install, under the writer lock.
        {
            let mut shared = self.write_lock();
            let tables = &mut shared.tables;
            install(tables, base, new_seg, rewrites, committed)?;
        }
        // 6. Remove what the commit made obsolete. The flush is done: a
        // failure here only leaves orphans, which the next commit or open
        // removes.
        let _ = self.remove_obsolete(&manifest, m.merge_output.as_deref());
        Ok(base.serial)
    }

    /// Removes log files older than the manifest's and files it does not
    /// name, except `keep` (a merge's output while it is being written).
    pub(crate) fn remove_obsolete(&self, manifest: &Manifest, keep: Option<&str>) -> Result<()> {
        let storage = self.storage.as_ref();
        let mut removed = false;
        for name in storage.list()? {
            if wal::parse_log_name(&name).is_some_and(|gen| gen < manifest.log_gen) {
                storage.remove(&name)?;
                removed = true;
            }
        }
        if removed {
            storage.sync_dir()?;
        }
        manifest::remove_orphans(storage, manifest, |name| Some(name) == keep)?;
        Ok(())
    }

    /// Wakes the writers stalled behind a full memtable (see
    /// `Inner::write_with`). `stall` is taken first: a writer checks its
    /// condition and starts waiting under it, so this notification cannot
    /// fall between its check and its wait.
    pub(crate) fn wake_stalled(&self) {
        let _stall = self.stall.lock().unwrap_or_else(|e| e.into_inner());
        self.flushed.notify_all();
    }

    /// Removes log `gen` durably (gone already is fine).
    fn remove_log(&self, gen: u64) -> Result<()> {
        self.remove_unused(&wal::log_name(gen))?;
        self.storage.sync_dir().map_err(Error::Io)
    }

    pub(crate) fn remove_unused(&self, name: &str) -> Result<()> {
        match self.storage.remove(name) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io(e)),
            _ => Ok(()),
        }
    }
}

/// Swaps the new segment in and the frozen memtable out. The segment list
/// has not changed since the freeze (maintenance is serialized), so the
/// base's segments are `tables.segments` position for position.
fn install(
    tables: &mut Tables,
    base: &Base,
    new_seg: Option<Arc<Segment>>,
    rewrites: Vec<Vec<u32>>,
    committed: Vec<(Arc<RoaringBitmap>, Option<String>)>,
) -> Result<()> {
    debug_assert_eq!(tables.segments.len(), base.segments.len());
    let mut new_live = None;
    if let Some(seg) = new_seg {
        let mut live = LiveSegment::new(seg, RoaringBitmap::new(), None);
        // Deletions made while the segment was written apply to it too.
        for deletion in &tables.frozen_deletions {
            Tables::delete_in(&mut live, deletion)?;
        }
        new_live = Some(live);
    }
    for ((live, rewrites), (bitmap, file)) in tables.segments.iter_mut().zip(rewrites).zip(committed) {
        if !rewrites.is_empty() {
            Arc::make_mut(&mut live.deleted).extend(rewrites);
        }
        live.committed = bitmap;
        live.committed_file = file;
    }
    if let Some(live) = new_live {
        tables.segments.insert(0, live);
    }
    tables.frozen = None;
    tables.frozen_deletions.clear();
    Ok(())
}

fn checkpoint_list(checkpoints: &std::collections::BTreeMap<String, CheckpointEntry>) -> Vec<(String, String, u64)> {
    checkpoints.iter().map(|(name, c)| (name.clone(), c.value.clone(), c.serial)).collect()
}

/// Feeds the frozen memtable's entries, in URI order, to the segment writer.
fn frozen_entries(
    mem: &Trie<super::tables::MemEntry>,
    visit: &mut dyn FnMut(SegmentEntry<'_>) -> Result<()>,
) -> Result<()> {
    let mut it = mem.iter();
    while let Some((key, entry)) = it.next_entry() {
        visit(SegmentEntry { uri: key, serial: entry.serial, stamp: &entry.stamp, body: &entry.body })?;
    }
    Ok(())
}
