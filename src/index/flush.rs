//! Flushes, commits and merges: how the memtable becomes a segment and the
//! manifest moves forward.
//!
//! Commits are serialized by the `maintenance` mutex: a flush (on
//! `refresh()`, `close()`, or on the flush thread when the memtable is full)
//! holds it throughout; a merge (on the merge thread, or `compact()`) holds
//! it only to pick its inputs and to commit, and writes the merged segment
//! without it, so that flushes never wait for a merge. Writers are held only
//! for the short steps that change shared state: the freeze and the
//! installs. The prefix rule of DESIGN.md section 5 holds because a commit's
//! state is snapshotted at the freeze, after the log is fsynced through it:
//! the manifest covering serial F holds exactly the effects of operations
//! 1..F (the frozen memtable, the deletion bitmaps and checkpoints as they
//! were at F). Deletions made after F live only in memory and in the newer
//! log, which open replays. `docs/FORMAT.md` has the crash argument step by
//! step.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use roaring::RoaringBitmap;

use crate::error::{Error, Result};
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

/// What the background thread is asked to do.
#[derive(Default)]
pub(crate) struct Signal {
    wanted: Mutex<bool>,
    wake: Condvar,
}

impl Signal {
    pub fn notify(&self) {
        *self.wanted.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Waits until notified or `timeout` passed; true if notified.
    fn wait(&self, timeout: Duration) -> bool {
        let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
        if !*wanted {
            wanted = self.wake.wait_timeout(wanted, timeout).unwrap_or_else(|e| e.into_inner()).0;
        }
        std::mem::replace(&mut *wanted, false)
    }
}

/// Starts the background threads: one flushes full memtables, the other
/// merges segments, so that a long merge never holds up a flush (and the
/// writers waiting for it). They hold only a `Weak` reference, so they never
/// keep an index open.
pub(crate) fn spawn_background(inner: &Arc<Inner>) -> Result<()> {
    let flusher = Arc::downgrade(inner);
    let signal = inner.signal.clone();
    spawn("pushdex-flush", signal, flusher, |inner| {
        // Errors are not lost: a failed log fsync poisons the writer, and
        // anything else is retried on the next signal; the caller of
        // refresh() or close() sees its own errors.
        if inner.memtable_full() {
            let _ = inner.flush(false);
        }
    })?;
    let merger = Arc::downgrade(inner);
    spawn("pushdex-merge", inner.merge_signal.clone(), merger, |inner| {
        if let Err(e) = inner.merge_if_needed() {
            inner.merge_failures.fetch_add(1, Ordering::SeqCst);
            *inner.last_background_failure.lock().unwrap_or_else(|e| e.into_inner()) = format!("merge: {e}");
        }
    })
}

fn spawn(name: &str, signal: Arc<Signal>, inner: Weak<Inner>, work: fn(&Inner)) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || loop {
            let notified = signal.wait(Duration::from_millis(200));
            let Some(inner) = inner.upgrade() else { return };
            if inner.closed.load(Ordering::SeqCst) {
                return;
            }
            if notified {
                work(&inner);
            }
        })
        .map_err(Error::Io)?;
    Ok(())
}

/// Hands the heap's free memory back to the operating system. glibc keeps
/// freed small allocations (a dropped memtable is millions of them) in its
/// arenas, and the process would sit at its peak size for good; other
/// allocators return memory on their own.
fn release_free_memory() {
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

    fn read_tables(&self) -> std::sync::RwLockReadGuard<'_, super::Shared> {
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
            if let Err(e) = self.write_and_commit(m, &base) {
                // The frozen memtable stays readable; the newer log keeps
                // the operations after it.
                m.pending = Some(base);
                return Err(self.flush_failed(e));
            }
            self.flushed.notify_all();
            // A new segment may complete a tier.
            self.merge_signal.notify();
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
        *self.last_background_failure.lock().unwrap_or_else(|e| e.into_inner()) = format!("flush: {e}");
        self.flush_failures.fetch_add(1, Ordering::SeqCst);
        self.flushed.notify_all();
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
            let name = segment_name(m.next_gen);
            m.next_gen += 1;
            segment::write_segment(storage, &name, &|visit| frozen_entries(&base.frozen.mem, visit))?;
            storage.sync_dir()?;
            Some(Arc::new(Segment::open(storage, &name)?))
        };
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
                let name = bitmap_name(m.next_gen);
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

    /// Merges segments when the tiered policy asks for it. Runs on the merge
    /// thread; does nothing while `compact()` merges.
    pub(crate) fn merge_if_needed(&self) -> Result<()> {
        let Ok(_merging) = self.merging.try_lock() else { return Ok(()) };
        self.merge(|segments| pick_merge(&segments.iter().map(|l| l.seg.file_bytes()).collect::<Vec<_>>())).map(|_| ())
    }

    /// Merges every segment into one.
    pub(crate) fn compact(&self) -> Result<()> {
        let _merging = self.merging.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut m = self.lock_maintenance();
            if self.closed.load(Ordering::SeqCst) {
                return Err(Error::Closed);
            }
            if m.pending.is_some() {
                self.flush_locked(&mut m, false)?;
            }
        }
        let all = |segments: &[LiveSegment]| {
            let has_deletions = segments.iter().any(|l| !l.committed.is_empty());
            (segments.len() > 1 || has_deletions).then(|| (0..segments.len()).collect())
        };
        if self.merge(all)? == Merged::Abandoned {
            return Err(if self.closed.load(Ordering::SeqCst) {
                Error::Closed
            } else {
                Error::Io(std::io::Error::other("a flush failed during the merge; retry after it succeeds"))
            });
        }
        Ok(())
    }

    /// Merges the segments at the positions `choose` picks (given the live
    /// segments) into one; the caller holds `merging`.
    ///
    /// The merged segment is written without the maintenance lock, so that
    /// flushes (and the writers behind a full memtable) never wait for a
    /// merge. It holds the inputs as the last commit before the merge left
    /// them (their committed bitmaps); the lock is taken to snapshot the
    /// inputs and again to commit and install, where the deletions committed
    /// or made in the meantime move to the merged segment through the
    /// ordinal mapping. So the new manifest covers exactly what the manifest
    /// it replaces covered.
    fn merge(&self, choose: impl FnOnce(&[LiveSegment]) -> Option<Vec<usize>>) -> Result<Merged> {
        let (inputs, name) = {
            let mut m = self.lock_maintenance();
            if self.closed.load(Ordering::SeqCst) || m.pending.is_some() {
                return Ok(Merged::Abandoned);
            }
            let shared = self.read_tables();
            let segments = &shared.tables.segments;
            let Some(picked) = choose(segments) else { return Ok(Merged::Nothing) };
            let inputs: Vec<LiveSegment> = picked.iter().map(|&i| segments[i].clone()).collect();
            let name = segment_name(m.next_gen);
            m.next_gen += 1;
            // A commit in the meantime must not take it for an orphan.
            m.merge_output = Some(name.clone());
            (inputs, name)
        };
        let written = self.write_merged(&inputs, &name);
        let mut m = self.lock_maintenance();
        m.merge_output = None;
        // Set once the manifest naming the output may have reached the disk
        // (a failed rename or directory fsync leaves that unknown): from then
        // on the output is never removed, only replaced by a later commit.
        let mut committing = false;
        let committed = match written {
            Ok((merged, remap)) => self.commit_merge(&mut m, &inputs, merged, &remap, &mut committing),
            Err(e) => Err(e),
        };
        match committed {
            Ok(true) => Ok(Merged::Done),
            // Still under the directory lock: close waits for `merging`.
            Ok(false) | Err(Error::Closed) if !committing => self.remove_unused(&name).map(|()| Merged::Abandoned),
            Ok(false) => Ok(Merged::Abandoned),
            Err(e) => {
                if !committing {
                    let _ = self.remove_unused(&name);
                }
                Err(e)
            }
        }
    }

    /// Removes log `gen` durably (gone already is fine).
    fn remove_log(&self, gen: u64) -> Result<()> {
        self.remove_unused(&wal::log_name(gen))?;
        self.storage.sync_dir().map_err(Error::Io)
    }

    fn remove_unused(&self, name: &str) -> Result<()> {
        match self.storage.remove(name) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io(e)),
            _ => Ok(()),
        }
    }

    /// Writes the live rows of `inputs` (as of their last commit) as segment
    /// `name`; returns it with the ordinal mapping, `remap[i][old ordinal]` =
    /// new ordinal, or `u32::MAX` for a row left out. Gives up with `Closed`
    /// when the index closes, so that close never waits for a long merge.
    fn write_merged(&self, inputs: &[LiveSegment], name: &str) -> Result<(Arc<Segment>, Vec<Vec<u32>>)> {
        let storage = self.storage.as_ref();
        let remap = std::cell::RefCell::new(Vec::new());
        let terms = Terms::Merge { inputs: inputs.iter().map(|l| l.seg.as_ref()).collect(), remap: &remap };
        segment::write_segment_with(
            storage,
            name,
            &|visit| {
                let mut remap = remap.borrow_mut();
                *remap = inputs.iter().map(|l| vec![u32::MAX; l.seg.rows() as usize]).collect();
                let mut rows = 0u32;
                merge_rows(inputs, &mut remap, &mut |entry| {
                    rows = rows.wrapping_add(1);
                    if rows.is_multiple_of(4096) && self.closed.load(Ordering::SeqCst) {
                        return Err(Error::Closed);
                    }
                    visit(entry)
                })
            },
            terms,
        )?;
        storage.sync_dir()?;
        let merged = Arc::new(Segment::open(storage, name)?);
        Ok((merged, remap.into_inner()))
    }

    /// Commits the merged segment in place of its inputs and installs it.
    /// Returns false (nothing changed) when the merge must be abandoned.
    fn commit_merge(
        &self,
        m: &mut Maintenance,
        inputs: &[LiveSegment],
        merged: Arc<Segment>,
        remap: &[Vec<u32>],
        committing: &mut bool,
    ) -> Result<bool> {
        if self.closed.load(Ordering::SeqCst) || m.pending.is_some() {
            // A pending flush's base names the inputs: it must install first.
            return Ok(false);
        }
        let storage = self.storage.as_ref();
        // The rows of `inputs` that a bitmap of the current segment list
        // deletes and the merge did not already leave out, renumbered.
        let carried = |tables: &Tables, pick: fn(&LiveSegment) -> &RoaringBitmap| -> Result<RoaringBitmap> {
            let mut out = RoaringBitmap::new();
            for (input, map) in inputs.iter().zip(remap) {
                let current = tables.segments.iter().find(|l| Arc::ptr_eq(&l.seg, &input.seg)).ok_or_else(|| {
                    Error::corrupt(input.seg.path(), "a merged segment vanished during the merge (a bug)")
                })?;
                let since = pick(current) - input.committed.as_ref();
                out.extend(since.iter().filter_map(|ord| map.get(ord as usize).copied().filter(|&n| n != u32::MAX)));
            }
            Ok(out)
        };
        // Commits cannot move while `m` is held: the committed bitmaps are
        // final; live deletions are taken again at the install.
        let committed = carried(&self.read_tables().tables, |l| l.committed.as_ref())?;
        let bitmap_file = if committed.is_empty() {
            None
        } else {
            let name = bitmap_name(m.next_gen);
            m.next_gen += 1;
            manifest::write_bitmap(storage, &name, &committed)?;
            storage.sync_dir()?;
            Some(name)
        };

        // The commit: the last manifest with the inputs replaced.
        let input_names: Vec<&str> = inputs.iter().map(|l| l.seg.name()).collect();
        let mut manifest = m.manifest.clone();
        let at = manifest.segments.iter().position(|r| input_names.contains(&r.name.as_str())).unwrap_or(0);
        manifest.segments.retain(|r| !input_names.contains(&r.name.as_str()));
        let at = at.min(manifest.segments.len());
        let merged_ref =
            SegmentRef { name: merged.name().to_string(), rows: merged.rows(), deletions: bitmap_file.clone() };
        manifest.segments.insert(at, merged_ref);
        manifest.next_gen = m.next_gen;
        *committing = true;
        manifest::write_manifest(storage, &manifest)?;
        m.manifest = manifest.clone();

        // Install.
        {
            let mut shared = self.write_lock();
            let deleted = carried(&shared.tables, |l| l.deleted.as_ref())?;
            let segments = &mut shared.tables.segments;
            let first = segments.iter().position(|l| inputs.iter().any(|i| Arc::ptr_eq(&l.seg, &i.seg))).unwrap_or(0);
            segments.retain(|l| !inputs.iter().any(|i| Arc::ptr_eq(&l.seg, &i.seg)));
            let mut live = LiveSegment::new(merged, committed, bitmap_file);
            live.deleted = Arc::new(deleted);
            segments.insert(first.min(segments.len()), live);
        }
        // Done: a failure here only leaves orphans for a later cleanup.
        let _ = self.remove_obsolete(&manifest, None);
        Ok(true)
    }
}

/// How a merge ended.
#[derive(Debug, PartialEq, Eq)]
enum Merged {
    Done,
    /// Nothing to merge.
    Nothing,
    /// Given up: the index closed, or a failed flush waits to be committed.
    Abandoned,
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

pub(crate) fn segment_name(gen: u64) -> String {
    format!("seg-{gen}.pdx")
}

pub(crate) fn bitmap_name(gen: u64) -> String {
    format!("del-{gen}.bm")
}

/// The generation of a segment or bitmap file name.
pub(crate) fn parse_gen(name: &str) -> Option<u64> {
    let gen = name.strip_prefix("seg-").and_then(|r| r.strip_suffix(".pdx"));
    let gen = gen.or_else(|| name.strip_prefix("del-").and_then(|r| r.strip_suffix(".bm")))?;
    gen.parse().ok()
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

/// Segments merge in tiers: at least `MERGE_FACTOR` segments of similar size
/// (within a factor of `MERGE_FACTOR` of each other) merge into one, so each
/// row is rewritten about log(n) times. Past `MAX_SEGMENTS`, the smallest
/// merge whatever their sizes, to bound the work of every read.
const MERGE_FACTOR: usize = 4;
const MAX_SEGMENTS: usize = 16;

/// Positions (ascending) of the segments to merge, if any.
fn pick_merge(sizes: &[u64]) -> Option<Vec<usize>> {
    let mut by_size: Vec<usize> = (0..sizes.len()).collect();
    by_size.sort_by_key(|&i| sizes[i]);
    let mut best: Option<&[usize]> = None;
    for start in 0..by_size.len() {
        let smallest = sizes[by_size[start]].max(1);
        let end = by_size[start..].iter().take_while(|&&i| sizes[i] <= smallest * MERGE_FACTOR as u64).count();
        if end >= MERGE_FACTOR {
            best = Some(&by_size[start..start + end]);
            break;
        }
    }
    let mut picked = match best {
        Some(group) => group.to_vec(),
        None if sizes.len() > MAX_SEGMENTS => by_size[..sizes.len() - MAX_SEGMENTS + MERGE_FACTOR].to_vec(),
        None => return None,
    };
    picked.sort_unstable();
    Some(picked)
}

/// Feeds the live rows of `inputs` to the segment writer in URI order,
/// recording where each row lands. Inputs hold at most one live row per URI
/// (their committed bitmaps keep that rule); should two ever hold the same
/// URI, the row with the higher serial wins.
fn merge_rows(
    inputs: &[LiveSegment],
    remap: &mut [Vec<u32>],
    visit: &mut dyn FnMut(SegmentEntry<'_>) -> Result<()>,
) -> Result<()> {
    let mut iters: Vec<_> = inputs.iter().map(|l| l.seg.range(b"", b"")).collect();
    let mut heads: Vec<Option<(Vec<u8>, u32)>> = Vec::with_capacity(inputs.len());
    for (i, it) in iters.iter_mut().enumerate() {
        heads.push(next_live(it, &inputs[i].committed)?);
    }
    let mut next_ord = 0u32;
    loop {
        let Some(min) = heads.iter().flatten().map(|(k, _)| k.as_slice()).min().map(<[u8]>::to_vec) else {
            return Ok(());
        };
        let mut winner: Option<(usize, u32, u64)> = None;
        for (i, head) in heads.iter().enumerate() {
            if let Some((key, ord)) = head {
                if *key == min {
                    let serial = inputs[i].seg.serial(*ord)?;
                    if winner.is_none_or(|(_, _, s)| serial > s) {
                        winner = Some((i, *ord, serial));
                    }
                }
            }
        }
        let (i, ord, _) = winner.expect("some head holds the smallest key");
        let row = inputs[i].seg.row(ord)?;
        visit(SegmentEntry { uri: &min, serial: row.serial, stamp: row.stamp, body: row.body })?;
        remap[i][ord as usize] = next_ord;
        next_ord += 1;
        for (j, head) in heads.iter_mut().enumerate() {
            if head.as_ref().is_some_and(|(key, _)| *key == min) {
                *head = next_live(&mut iters[j], &inputs[j].committed)?;
            }
        }
    }
}

fn next_live(it: &mut segment::SegmentIter<'_>, deleted: &RoaringBitmap) -> Result<Option<(Vec<u8>, u32)>> {
    while let Some(next) = it.next_entry() {
        let (key, ord) = next?;
        if !deleted.contains(ord) {
            return Ok(Some((key.to_vec(), ord)));
        }
    }
    Ok(None)
}
