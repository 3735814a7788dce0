//! Compaction: merging segments into one, and the policy that decides when.
//!
//! A merge (on the merge thread, or `compact()`) holds the `maintenance`
//! lock only to pick its inputs and to commit; it writes the merged segment
//! without it, so that flushes never wait for a merge. The `merging` lock
//! makes merges one at a time, and close waits for it (a merge gives up
//! when the index closes).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::error::{Error, Result};
use crate::files::FileName;
use crate::index::flush::Maintenance;
use crate::index::tables::{LiveSegment, Tables};
use crate::index::Inner;
use crate::manifest::{self, SegmentRef};
use crate::segment::{self, Segment, SegmentEntry, Terms};

impl Inner {
    /// Merges segments when the tiered policy asks for it. Runs on the merge
    /// thread; does nothing while `compact()` merges.
    pub(crate) fn merge_if_needed(&self) -> Result<()> {
        let _merging = match self.merging.try_lock() {
            Ok(guard) => guard,
            // A merge that panicked held it; nothing it guards is left half done.
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
        };
        self.merge(|segments| self.merge_policy.pick(&segments.iter().map(|l| l.seg.file_bytes()).collect::<Vec<_>>()))
            .map(|_| ())
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
        if self.merge(all)? == MergeOutcome::Abandoned {
            const WHY: &str = "a flush failed during the merge; retry after it succeeds";
            return Err(if self.closed.load(Ordering::SeqCst) {
                Error::Closed
            } else {
                match self.background.last_flush_failure() {
                    Some(failure) => failure.to_error(WHY),
                    None => Error::Io(std::io::Error::other(WHY)),
                }
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
    fn merge(&self, choose: impl FnOnce(&[LiveSegment]) -> Option<Vec<usize>>) -> Result<MergeOutcome> {
        let (inputs, name) = {
            let mut m = self.lock_maintenance();
            if self.closed.load(Ordering::SeqCst) || m.pending.is_some() {
                return Ok(MergeOutcome::Abandoned);
            }
            let shared = self.read_tables();
            let segments = &shared.tables.segments;
            let Some(picked) = choose(segments) else { return Ok(MergeOutcome::Nothing) };
            let inputs: Vec<LiveSegment> = picked.iter().map(|&i| segments[i].clone()).collect();
            let name = FileName::Segment(m.next_gen).to_string();
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
        // The merge's working set (its tables, the ordinal mapping) is
        // freed by now.
        super::flush::release_free_memory();
        match committed {
            Ok(true) => Ok(MergeOutcome::Done),
            // Still under the directory lock: close waits for `merging`.
            Ok(false) | Err(Error::Closed) if !committing => {
                self.remove_unused(&name).map(|()| MergeOutcome::Abandoned)
            }
            Ok(false) => Ok(MergeOutcome::Abandoned),
            Err(e) => {
                if !committing {
                    let _ = self.remove_unused(&name);
                }
                Err(e)
            }
        }
    }

    /// Writes the live rows of `inputs` (as of their last commit) as segment
    /// `name`; returns it with the ordinal mapping, `remap[i][old ordinal]` =
    /// new ordinal, or `u32::MAX` for a row left out. Gives up with `Closed`
    /// when the index closes, so that close never waits for a long merge.
    fn write_merged(&self, inputs: &[LiveSegment], name: &str) -> Result<(Arc<Segment>, Vec<Vec<u32>>)> {
        let storage = self.storage.as_ref();
        let remap = std::cell::RefCell::new(Vec::new());
        let terms = Terms::Merge {
            inputs: inputs.iter().map(|l| l.seg.as_ref()).collect(),
            remap: &remap,
            analysis: self.search_cache.analyzer(),
        };
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
                    if rows.is_multiple_of(segment::RELEASE_EVERY) {
                        inputs.iter().for_each(|l| l.seg.release_pages());
                    }
                    visit(entry)
                })
            },
            terms,
            self.table_bytes(),
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
            let name = FileName::Bitmap(m.next_gen).to_string();
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
enum MergeOutcome {
    Done,
    /// Nothing to merge.
    Nothing,
    /// Given up: the index closed, or a failed flush waits to be committed.
    Abandoned,
}

/// Chooses which segments to merge.
pub(crate) trait MergePolicy: Send + Sync {
    /// Positions (ascending) of the segments to merge into one, given the
    /// file sizes of the live segments (newest first); `None` when nothing
    /// needs merging.
    fn pick(&self, sizes: &[u64]) -> Option<Vec<usize>>;
}

/// Segments merge in tiers: at least `factor` segments of similar size
/// (within a factor of `factor` of each other) merge into one, so each row
/// is rewritten about log(n) times. Past `max_segments`, the smallest merge
/// whatever their sizes, to bound the work of every read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tiered {
    pub factor: usize,
    pub max_segments: usize,
}

impl Default for Tiered {
    fn default() -> Tiered {
        Tiered { factor: 4, max_segments: 16 }
    }
}

impl MergePolicy for Tiered {
    fn pick(&self, sizes: &[u64]) -> Option<Vec<usize>> {
        let Tiered { factor, max_segments } = *self;
        let mut by_size: Vec<usize> = (0..sizes.len()).collect();
        by_size.sort_by_key(|&i| sizes[i]);
        let mut best: Option<&[usize]> = None;
        for start in 0..by_size.len() {
            let smallest = sizes[by_size[start]].max(1);
            let end =
                by_size[start..].iter().take_while(|&&i| sizes[i] <= smallest.saturating_mul(factor as u64)).count();
            if end >= factor {
                best = Some(&by_size[start..start + end]);
                break;
            }
        }
        let mut picked = match best {
            Some(group) => group.to_vec(),
            None if sizes.len() > max_segments => by_size[..sizes.len() - max_segments + factor].to_vec(),
            None => return None,
        };
        picked.sort_unstable();
        Some(picked)
    }
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
    let mut iters: Vec<_> = inputs.iter().map(|l| l.seg.names()).collect();
    // Each input's next live URI (in a buffer of its own, reused) and
    // ordinal, or `None` once it has no more.
    let mut heads: Vec<Option<(Vec<u8>, u32)>> = vec![Some((Vec::new(), 0)); inputs.len()];
    for (i, it) in iters.iter_mut().enumerate() {
        next_live(it, &inputs[i].committed, &mut heads[i])?;
    }
    let (mut min, mut next_ord) = (Vec::new(), 0u32);
    loop {
        let Some(first) = (0..heads.len()).filter(|&i| heads[i].is_some()).min_by_key(|&i| head_key(&heads[i])) else {
            return Ok(());
        };
        min.clear();
        min.extend_from_slice(head_key(&heads[first]).expect("a head"));
        // The row with the higher serial, should another input hold the
        // same URI (serials read only then).
        let (mut i, mut ord) = (first, heads[first].as_ref().expect("a head").1);
        let mut serial = None;
        for (j, head) in heads.iter().enumerate().skip(first + 1) {
            if let Some((_, other_ord)) = head.as_ref().filter(|(other, _)| *other == min) {
                let best = match serial {
                    Some(s) => s,
                    None => inputs[i].seg.serial(ord)?,
                };
                let candidate = inputs[j].seg.serial(*other_ord)?;
                serial = Some(best.max(candidate));
                if candidate > best {
                    (i, ord) = (j, *other_ord);
                }
            }
        }
        let row = inputs[i].seg.row(ord)?;
        visit(SegmentEntry { uri: &min, serial: row.serial, stamp: row.stamp, body: row.body })?;
        remap[i][ord as usize] = next_ord;
        next_ord += 1;
        for (j, head) in heads.iter_mut().enumerate() {
            if head_key(head) == Some(min.as_slice()) {
                next_live(&mut iters[j], &inputs[j].committed, head)?;
            }
        }
    }
}

fn head_key(head: &Option<(Vec<u8>, u32)>) -> Option<&[u8]> {
    head.as_ref().map(|(key, _)| key.as_slice())
}

/// Moves `head` to `it`'s next row not in `deleted` (`None` past the last),
/// reusing its buffer.
fn next_live(it: &mut segment::Names<'_>, deleted: &RoaringBitmap, head: &mut Option<(Vec<u8>, u32)>) -> Result<()> {
    while let Some(next) = it.next_entry() {
        let (key, ord) = next?;
        if !deleted.contains(ord) {
            let (buf, at) = head.get_or_insert_with(|| (Vec::new(), 0));
            buf.clear();
            buf.extend_from_slice(key);
            *at = ord;
            return Ok(());
        }
    }
    *head = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{MergePolicy, Tiered};

    #[test]
    fn tiers_merge_similar_sizes_and_bound_the_count() {
        let policy = Tiered::default();
        assert_eq!(policy.pick(&[10, 10, 10]), None);
        assert_eq!(policy.pick(&[10, 1000, 12, 11, 13]), Some(vec![0, 2, 3, 4]));
        // Sizes too far apart never form a tier; past 16 segments the
        // smallest merge anyway.
        let sizes: Vec<u64> = (0..17).map(|i| 1u64 << (3 * i)).collect();
        assert_eq!(policy.pick(&sizes[..16]), None);
        assert_eq!(policy.pick(&sizes), Some(vec![0, 1, 2, 3, 4]));
        assert_eq!(policy.pick(&[0, 0, 0, 0]), Some(vec![0, 1, 2, 3]));
    }
}
