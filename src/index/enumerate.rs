//! Streaming enumeration: weakly consistent chunks, each entry once, in order.
//!
//! A [`Walk`] never holds the index's lock between two chunks. It takes the
//! read lock for one chunk at a time, copies the chunk's entries into a
//! [`Chunk`] (two buffers reused from chunk to chunk, so nothing is
//! allocated per entry), remembers the smallest key it has not looked at
//! yet, and resumes from there: writes made in between may or may not be
//! seen, but no entry is yielded twice and the order never goes backwards.
//! The entries are handed out after the lock is released, so a caller may
//! call the index (even write to it) while it enumerates.
//!
//! Three readers share the walk: [`Index::enumerate_with`] lends each entry
//! to a callback, the [`Enumeration`] iterator copies each into an owned
//! [`Entry`], and [`Index::count`] counts them.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::index::cursor::Cursor;
use crate::index::{Index, Inner};
use crate::status::{DocumentRef, Entry, EntryRef, EnumerationMode, Serial, State};
use crate::uri::{folder_prefix, place, prefix_successor, Place};

/// Entries gathered per lock hold.
const CHUNK_ENTRIES: usize = 512;
/// Keys looked at per lock hold (bounds the hold when few keys qualify).
const CHUNK_KEYS: usize = 8192;

/// Where an enumeration is: its folder, what it lists, and the smallest key
/// it has not looked at yet.
#[derive(Debug)]
pub(super) struct Walk {
    prefix: Vec<u8>,
    mode: EnumerationMode,
    synced_only: bool,
    /// The smallest key not yet looked at; `None` once everything has been.
    resume: Option<Vec<u8>>,
}

/// One chunk's entries: their strings one after the other in `text` (a
/// document's URI then its stamp, or a folder), described by `slots`.
///
/// Gathered as bytes and checked to be UTF-8 once for the whole chunk
/// ([`Chunk::seal`]): one pass over a few tens of kilobytes costs a fraction
/// of a check per key.
#[derive(Debug, Default)]
struct Chunk {
    /// The strings while the chunk is gathered.
    bytes: Vec<u8>,
    /// The strings once sealed (the same allocation).
    text: String,
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Where the URI or folder ends in `text` (it starts where the slot
    /// before ends).
    key_end: usize,
    /// Where the stamp ends (`key_end` for a folder).
    end: usize,
    /// `None` for a folder.
    document: Option<(Serial, State)>,
}

impl Chunk {
    fn clear(&mut self) {
        self.bytes = std::mem::take(&mut self.text).into_bytes();
        self.bytes.clear();
        self.slots.clear();
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn get(&self, i: usize) -> EntryRef<'_> {
        let slot = self.slots[i];
        let start = if i == 0 { 0 } else { self.slots[i - 1].end };
        let key = &self.text[start..slot.key_end];
        match slot.document {
            Some((serial, state)) => {
                EntryRef::Document(DocumentRef { uri: key, stamp: &self.text[slot.key_end..slot.end], state, serial })
            }
            None => EntryRef::Folder(key),
        }
    }

    fn push_folder(&mut self, folder: &[u8]) {
        self.bytes.extend_from_slice(folder);
        let end = self.bytes.len();
        self.slots.push(Slot { key_end: end, end, document: None });
    }

    fn push_document(&mut self, uri: &[u8], stamp: &str, serial: Serial, state: State) {
        self.bytes.extend_from_slice(uri);
        let key_end = self.bytes.len();
        self.bytes.extend_from_slice(stamp.as_bytes());
        self.slots.push(Slot { key_end, end: self.bytes.len(), document: Some((serial, state)) });
    }

    /// Turns the gathered bytes into `text`. Keys are UTF-8 unless a
    /// segment is damaged behind valid checksums, which the enumeration
    /// does not fail on: such a key gets the replacement character, as
    /// `String::from_utf8_lossy` gives it. (The whole being UTF-8 is not
    /// enough: each key must end on a character boundary.)
    fn seal(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        self.text = match String::from_utf8(bytes) {
            Ok(text) if self.slots.iter().all(|s| text.is_char_boundary(s.key_end) && text.is_char_boundary(s.end)) => {
                text
            }
            Ok(text) => self.lossy(text.as_bytes()),
            Err(e) => self.lossy(e.as_bytes()),
        };
    }

    /// `bytes` key by key through `from_utf8_lossy`, the slots moved to match.
    fn lossy(&mut self, bytes: &[u8]) -> String {
        let mut text = String::with_capacity(bytes.len());
        let mut start = 0;
        for slot in &mut self.slots {
            text.push_str(&String::from_utf8_lossy(&bytes[start..slot.key_end]));
            let key_end = text.len();
            text.push_str(&String::from_utf8_lossy(&bytes[slot.key_end..slot.end]));
            start = slot.end;
            slot.key_end = key_end;
            slot.end = text.len();
        }
        text
    }
}

impl Walk {
    pub(super) fn new(root: &str, mode: EnumerationMode, synced_only: bool) -> Walk {
        let prefix = folder_prefix(root).into_owned().into_bytes();
        Walk { resume: Some(prefix.clone()), prefix, mode, synced_only }
    }

    fn done(&self) -> bool {
        self.resume.is_none()
    }

    /// Lends every entry to `f`, chunk by chunk, until `f` breaks.
    pub(super) fn for_each<B>(
        mut self,
        inner: &Inner,
        mut f: impl FnMut(EntryRef<'_>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        let mut chunk = Chunk::default();
        while !self.done() {
            let filled = self.fill(inner, &mut chunk);
            for i in 0..chunk.len() {
                if let ControlFlow::Break(b) = f(chunk.get(i)) {
                    return Ok(ControlFlow::Break(b));
                }
            }
            filled?;
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Replaces `chunk` with the next chunk, gathered under the read lock.
    /// After an error the walk is over; the chunk then holds the entries
    /// before the one that failed, to be handed out before the error.
    fn fill(&mut self, inner: &Inner, chunk: &mut Chunk) -> Result<()> {
        chunk.clear();
        let gathered = self.gather(inner, chunk);
        chunk.seal();
        gathered
    }

    fn gather(&mut self, inner: &Inner, chunk: &mut Chunk) -> Result<()> {
        let Some(start) = self.resume.take() else { return Ok(()) };
        let shared = inner.read_lock()?;
        let tables = &shared.tables;
        let limit = if self.synced_only { inner.synced.load(Ordering::SeqCst) } else { u64::MAX };
        let marks = inner.watermarks();
        let mode = self.mode;
        let mut keys = Cursor::new(tables, &self.prefix, &start)?;
        let mut looked = 0;
        while let Some((key, item)) = keys.next_entry()? {
            looked += 1;
            // The end of the folder whose keys are to be skipped, if any.
            let mut skip = None;
            let folder = match mode.recursive() {
                true => None,
                false => match place(&self.prefix, key) {
                    Place::InFolder(end) => Some(end),
                    Place::Child => None,
                },
            };
            match folder {
                Some(end) => {
                    let serial = if self.synced_only { item.serial(tables)? } else { 0 };
                    if mode.folders() && serial <= limit {
                        chunk.push_folder(&key[..end]);
                    }
                    // Skip the folder's other keys once it is listed (or when
                    // folders are not wanted). A synced-only folder whose
                    // first document is not synced yet is not skipped: its
                    // next document may be.
                    if !mode.folders() || serial <= limit {
                        skip = Some(end);
                    }
                }
                None if mode.documents() => {
                    let (serial, stamp) = item.status(tables)?;
                    if serial <= limit {
                        let serial = Serial(serial);
                        chunk.push_document(key, stamp, serial, marks.state_of(serial));
                    }
                }
                None => {}
            }
            let full = chunk.len() >= CHUNK_ENTRIES || looked >= CHUNK_KEYS;
            if let Some(end) = skip {
                let Some(next) = prefix_successor(&key[..end]) else { return Ok(()) };
                if full {
                    self.resume = Some(next);
                    return Ok(());
                }
                keys.seek(&next)?;
            } else if full {
                self.resume = Some(key_successor(key));
                return Ok(());
            }
        }
        Ok(())
    }
}

/// The smallest key greater than `key`.
fn key_successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The iterator returned by [`Index::enumerate`] and
/// [`Index::enumerate_synced`]: `Iterator<Item = Result<Entry>>`.
///
/// Each entry is copied out into an owned [`Entry`];
/// [`Index::enumerate_with`] lends them instead.
#[derive(Debug)]
pub struct Enumeration {
    index: Index,
    walk: Walk,
    chunk: Chunk,
    /// The next entry of `chunk` to yield.
    next: usize,
    /// The error that ended the walk, yielded after the chunk's entries.
    error: Option<crate::error::Error>,
}

impl Enumeration {
    pub(super) fn new(index: Index, walk: Walk) -> Enumeration {
        Enumeration { index, walk, chunk: Chunk::default(), next: 0, error: None }
    }
}

impl Iterator for Enumeration {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if self.next < self.chunk.len() {
                self.next += 1;
                return Some(Ok(self.chunk.get(self.next - 1).to_entry()));
            }
            if let Some(e) = self.error.take() {
                return Some(Err(e));
            }
            if self.walk.done() {
                return None;
            }
            self.next = 0;
            self.error = self.walk.fill(&self.index.inner, &mut self.chunk).err();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(push: impl FnOnce(&mut Chunk)) -> Vec<Entry> {
        let mut chunk = Chunk::default();
        // A chunk reused: what the one before held is gone.
        chunk.push_folder(b"old/");
        chunk.seal();
        chunk.clear();
        push(&mut chunk);
        chunk.seal();
        (0..chunk.len()).map(|i| chunk.get(i).to_entry()).collect()
    }

    fn doc(uri: &str, stamp: &str) -> Entry {
        let serial = Serial(7);
        Entry::Document(crate::DocumentStatus { uri: uri.into(), stamp: stamp.into(), state: State::Pushed, serial })
    }

    #[test]
    fn a_chunk_lends_its_keys_as_text_and_damaged_ones_lossily() {
        let serial = Serial(7);
        let entries = sealed(|c| {
            c.push_document("a/é".as_bytes(), "s1", serial, State::Pushed);
            c.push_folder(b"a/b/");
            c.push_document(b"a/c", "", serial, State::Pushed);
        });
        assert_eq!(entries, [doc("a/é", "s1"), Entry::Folder("a/b/".into()), doc("a/c", "")]);
        // Not UTF-8: the key gets the replacement character, its
        // neighbours are untouched.
        let entries = sealed(|c| {
            c.push_document(b"a/x", "s", serial, State::Pushed);
            c.push_document(b"a/\xff", "t", serial, State::Pushed);
            c.push_folder(b"a/y/");
        });
        assert_eq!(entries, [doc("a/x", "s"), doc("a/\u{fffd}", "t"), Entry::Folder("a/y/".into())]);
        // Two halves of "é" in two keys: UTF-8 together, neither alone.
        let entries = sealed(|c| {
            c.push_folder(b"a\xc3");
            c.push_folder(b"\xa9");
        });
        assert_eq!(entries, [Entry::Folder("a\u{fffd}".into()), Entry::Folder("\u{fffd}".into())]);
    }
}
