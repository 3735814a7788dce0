//! The index's state in memory: the active memtable, the frozen memtable
//! being flushed, the live segments with their deletion bitmaps, and the
//! checkpoints.
//!
//! Every operation changes it through [`Tables::apply`], both on the live
//! write path and when the log is replayed at open, so the two can never
//! disagree. Reads look newest to oldest: active memtable, frozen memtable
//! (minus the deletions made since it froze), then the segments, skipping
//! deleted rows; the first hit wins.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::document::{Body, Document};
use crate::error::{Error, Result};
use crate::record::Op;
use crate::segment::Segment;
use crate::trie::Trie;
use crate::uri::{folder_prefix, place, prefix_successor, Place};

/// Checkpoint names starting with this belong to pushdex's own layers.
pub const RESERVED_CHECKPOINT_PREFIX: &str = "pushdex.";

/// A memtable entry: the newest version of one URI.
#[derive(Debug)]
pub(crate) struct MemEntry {
    pub serial: u64,
    pub stamp: Box<str>,
    /// [`Body::encode`] of the document's metas and parts.
    pub body: Box<[u8]>,
}

/// A checkpoint's value and the serial that set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CheckpointEntry {
    pub value: String,
    pub serial: u64,
}

/// A memtable frozen for flushing: immutable, shared with the flusher.
#[derive(Debug)]
pub(crate) struct Frozen {
    pub mem: Trie<MemEntry>,
}

/// A deletion made after the frozen memtable froze: reads must not see the
/// frozen entries it matches, and the segment the frozen memtable becomes
/// gets it applied when it is installed.
#[derive(Clone, Debug)]
pub(crate) enum Deletion {
    Uri(Vec<u8>),
    /// Every key starting with the bytes (raw prefix, recursive root path).
    Prefix(Vec<u8>),
    /// The direct children of a folder prefix.
    Children(Vec<u8>),
}

impl Deletion {
    fn matches(&self, key: &[u8]) -> bool {
        match self {
            Deletion::Uri(uri) => uri == key,
            Deletion::Prefix(prefix) => key.starts_with(prefix),
            Deletion::Children(folder) => key.starts_with(folder) && place(folder, key) == Place::Child,
        }
    }
}

/// A segment in use, with its deletions.
#[derive(Clone, Debug)]
pub(crate) struct LiveSegment {
    pub seg: Arc<Segment>,
    /// Ordinals deleted so far. Copy-on-write: snapshots (commits, search)
    /// hold clones of the `Arc`, so marking a row never disturbs them.
    pub deleted: Arc<RoaringBitmap>,
    /// The bitmap as of the last commit, and the file that holds it.
    pub committed: Arc<RoaringBitmap>,
    pub committed_file: Option<String>,
}

impl LiveSegment {
    pub fn new(seg: Arc<Segment>, deleted: RoaringBitmap, file: Option<String>) -> LiveSegment {
        let deleted = Arc::new(deleted);
        LiveSegment { seg, committed: deleted.clone(), deleted, committed_file: file }
    }

    /// The ordinal of `uri` if this segment holds it and it is not deleted.
    pub fn live_ordinal(&self, uri: &[u8]) -> Result<Option<u32>> {
        Ok(self.seg.ordinal(uri)?.filter(|&ord| !self.deleted.contains(ord)))
    }

    /// Marks the rows that `deletion` matches; returns how many were live.
    fn delete(&mut self, deletion: &Deletion) -> Result<u64> {
        let marks = self.marks(deletion)?;
        Ok(self.mark(marks))
    }

    /// The rows `deletion` matches, found without changing anything (so a
    /// failing read leaves the bitmaps untouched).
    fn marks(&self, deletion: &Deletion) -> Result<Marks> {
        Ok(match deletion {
            Deletion::Uri(uri) => match self.seg.ordinal(uri)? {
                Some(ord) => Marks::One(ord),
                None => Marks::None,
            },
            Deletion::Prefix(prefix) => Marks::Range(self.seg.prefix_range(prefix)?),
            Deletion::Children(folder) => {
                // Walk the folder's one range, hopping over sub-folders.
                let mut ords = Vec::new();
                let mut it = self.seg.names_in(folder, folder)?;
                while let Some(item) = it.next_entry() {
                    let (key, ord) = item?;
                    match place(folder, key) {
                        Place::Child => ords.push(ord),
                        Place::InFolder(end) => {
                            let Some(next) = prefix_successor(&key[..end]) else { break };
                            it.seek(&next)?;
                        }
                    }
                }
                Marks::Many(ords)
            }
        })
    }

    fn mark(&mut self, marks: Marks) -> u64 {
        let was = self.deleted.len();
        match marks {
            Marks::None => return 0,
            Marks::One(ord) if self.deleted.contains(ord) => return 0,
            Marks::Range(range) if range.is_empty() => return 0,
            Marks::Many(ords) if ords.is_empty() => return 0,
            Marks::One(ord) => {
                Arc::make_mut(&mut self.deleted).insert(ord);
            }
            Marks::Range(range) => {
                Arc::make_mut(&mut self.deleted).insert_range(range);
            }
            Marks::Many(ords) => {
                Arc::make_mut(&mut self.deleted).extend(ords);
            }
        }
        self.deleted.len() - was
    }
}

enum Marks {
    None,
    One(u32),
    Range(std::ops::Range<u32>),
    Many(Vec<u32>),
}

/// Where a read found a URI.
pub(crate) enum Found<'a> {
    Mem(&'a MemEntry),
    Seg(&'a Segment, u32),
}

/// The in-memory state that every operation changes.
#[derive(Default)]
pub(crate) struct Tables {
    pub mem: Trie<MemEntry>,
    /// Bytes pushed into the active memtable since it was last empty: an
    /// estimate of its size, compared with the flush threshold.
    pub mem_bytes: usize,
    pub frozen: Option<Arc<Frozen>>,
    /// Deletions made since `frozen` froze.
    pub frozen_deletions: Vec<Deletion>,
    /// Newest first.
    pub segments: Vec<LiveSegment>,
    pub checkpoints: BTreeMap<String, CheckpointEntry>,
    /// The serial of the last operation applied.
    pub last: u64,
}

impl Tables {
    /// Every segment with its deletions as of the last commit: what a
    /// search snapshot holds.
    pub fn committed_segments(&self) -> Vec<(Arc<Segment>, Arc<RoaringBitmap>)> {
        self.segments.iter().map(|live| (live.seg.clone(), live.committed.clone())).collect()
    }

    /// Applies one operation whose first serial is `serial`; returns its
    /// last serial. Fails (with nothing changed) only if a segment read fails.
    pub fn apply(&mut self, serial: u64, op: Op<'_>) -> Result<u64> {
        let last = serial + op.serials() - 1;
        match op {
            Op::Add(doc) => self.put(serial, doc.uri, doc.stamp.into(), doc.body.into()),
            Op::Batch(docs) => {
                for (serial, doc) in (serial..).zip(&docs) {
                    self.put(serial, doc.uri, doc.stamp.into(), doc.body.into());
                }
            }
            Op::Delete(uri) => {
                self.mem.remove(uri.as_bytes());
                self.delete_older(Deletion::Uri(uri.as_bytes().to_vec()))?;
            }
            Op::DeleteRootPath(root, recursive) => {
                let prefix = folder_prefix(root).into_owned().into_bytes();
                if recursive {
                    self.mem.remove_prefix(&prefix);
                    self.delete_older(Deletion::Prefix(prefix))?;
                } else {
                    self.mem.remove_children(&prefix);
                    self.delete_older(Deletion::Children(prefix))?;
                }
            }
            Op::DeletePrefix(prefix) => {
                self.mem.remove_prefix(prefix.as_bytes());
                self.delete_older(Deletion::Prefix(prefix.as_bytes().to_vec()))?;
            }
            Op::SetCheckpoint(name, value) => {
                self.checkpoints.insert(name.to_string(), CheckpointEntry { value: value.to_string(), serial });
            }
            Op::DeleteCheckpoint(name) => {
                self.checkpoints.remove(name);
            }
            Op::ClearCheckpoints => self.checkpoints.retain(|name, _| name.starts_with(RESERVED_CHECKPOINT_PREFIX)),
        }
        self.last = last;
        Ok(last)
    }

    /// Puts the newest version of `uri` into the active memtable. The stamp
    /// and body are moved in (`into_boxed_*` reallocates only a buffer
    /// with spare capacity).
    pub fn put(&mut self, serial: u64, uri: &str, stamp: String, body: Vec<u8>) {
        self.mem_bytes += mem_cost(uri.len(), stamp.len(), body.len());
        let entry = MemEntry { serial, stamp: stamp.into_boxed_str(), body: body.into_boxed_slice() };
        self.mem.insert(uri.as_bytes(), entry);
    }

    /// Applies a deletion to what is older than the active memtable: the
    /// frozen memtable (recorded) and the segments (marked). Every segment
    /// read happens before anything changes.
    fn delete_older(&mut self, deletion: Deletion) -> Result<()> {
        let mut marks = Vec::with_capacity(self.segments.len());
        for live in &self.segments {
            marks.push(live.marks(&deletion)?);
        }
        for (live, marks) in self.segments.iter_mut().zip(marks) {
            live.mark(marks);
        }
        if self.frozen.is_some() {
            self.frozen_deletions.push(deletion);
        }
        Ok(())
    }

    /// Marks `deletion` on one segment (used when installing a segment).
    pub fn delete_in(live: &mut LiveSegment, deletion: &Deletion) -> Result<u64> {
        live.delete(deletion)
    }

    /// Whether the frozen memtable's entry for `key` is still visible.
    pub fn frozen_visible(&self, key: &[u8]) -> bool {
        !self.frozen_deletions.iter().any(|d| d.matches(key))
    }

    /// The newest live version of `uri`.
    pub fn find(&self, uri: &[u8]) -> Result<Option<Found<'_>>> {
        if let Some(entry) = self.mem.get(uri) {
            return Ok(Some(Found::Mem(entry)));
        }
        if let Some(frozen) = &self.frozen {
            if let Some(entry) = frozen.mem.get(uri) {
                if self.frozen_visible(uri) {
                    return Ok(Some(Found::Mem(entry)));
                }
            }
        }
        for live in &self.segments {
            if let Some(ord) = live.live_ordinal(uri)? {
                return Ok(Some(Found::Seg(&live.seg, ord)));
            }
        }
        Ok(None)
    }

    /// How many documents are under `prefix`, when that can be counted
    /// without walking them: from the trie's subtree counts and the segments'
    /// ordinal ranges minus their deletions (at most one live row per URI
    /// across segments). `None` when both the memtables and the segments
    /// hold documents, since a URI may then be in both.
    pub fn count_under(&self, prefix: &[u8]) -> Result<Option<u64>> {
        if self.frozen.is_some() {
            return Ok(None);
        }
        if self.segments.is_empty() {
            return Ok(Some(self.mem.count_prefix(prefix) as u64));
        }
        if !self.mem.is_empty() {
            return Ok(None);
        }
        let mut n = 0;
        for live in &self.segments {
            let range = live.seg.prefix_range(prefix)?;
            let deleted = if range.is_empty() { 0 } else { live.deleted.range_cardinality(range.clone()) };
            n += u64::from(range.end - range.start) - deleted;
        }
        Ok(Some(n))
    }

    /// The serial and stamp of the newest live version of `uri`.
    pub fn status(&self, uri: &[u8]) -> Result<Option<(u64, &str)>> {
        Ok(match self.find(uri)? {
            None => None,
            Some(Found::Mem(entry)) => Some((entry.serial, &entry.stamp)),
            Some(Found::Seg(seg, ord)) => Some(seg.status(ord)?),
        })
    }

    /// The newest live version of the document `uri`.
    pub fn document(&self, uri: &str, path: &Path) -> Result<Option<Document>> {
        let (stamp, body, path) = match self.find(uri.as_bytes())? {
            None => return Ok(None),
            Some(Found::Mem(entry)) => (entry.stamp.to_string(), Body::decode(&entry.body), path.to_path_buf()),
            Some(Found::Seg(seg, ord)) => {
                let row = seg.row(ord)?;
                (row.stamp.to_string(), Body::decode(row.body), seg.path().to_path_buf())
            }
        };
        let body = body.ok_or_else(|| Error::corrupt(path, format!("the stored body of {uri:?} does not decode")))?;
        Ok(Some(Document::from_parts(uri.to_string(), stamp, body)))
    }
}

/// What one memtable entry is reckoned to cost, for the flush threshold:
/// its bytes plus a measured average of what the trie spends around it
/// (about two nodes of ~120 bytes per key, allocator rounding, spare
/// capacity of child vectors). Undercounting here let two memtables of a
/// nominal 64 MiB take ~300 MiB in the 2M-document run of `examples/scale`.
pub(crate) fn mem_cost(uri: usize, stamp: usize, body: usize) -> usize {
    const PER_ENTRY: usize = 320;
    uri + stamp + body + PER_ENTRY
}
