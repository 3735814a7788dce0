//! Streaming enumeration: weakly consistent chunks, each entry once, in order.
//!
//! An [`Enumeration`] never holds the index's lock between two calls of
//! `next`. It takes the read lock for one chunk at a time, remembers the
//! smallest key it has not looked at yet, and resumes from there: writes made
//! in between may or may not be seen, but no entry is yielded twice and the
//! order never goes backwards.

use std::collections::VecDeque;

use crate::error::Result;
use crate::index::cursor::Cursor;
use crate::index::Index;
use crate::status::{DocumentStatus, Entry, EnumerationMode, Serial};
use crate::uri::{folder_prefix, place, prefix_successor, Place};

/// Entries gathered per lock hold.
const CHUNK_ENTRIES: usize = 512;
/// Keys looked at per lock hold (bounds the hold when few keys qualify).
const CHUNK_KEYS: usize = 8192;

/// The iterator returned by [`Index::enumerate`] and
/// [`Index::enumerate_synced`]: `Iterator<Item = Result<Entry>>`.
#[derive(Debug)]
pub struct Enumeration {
    index: Index,
    prefix: Vec<u8>,
    mode: EnumerationMode,
    synced_only: bool,
    /// The smallest key not yet looked at; `None` once everything has been.
    resume: Option<Vec<u8>>,
    ready: VecDeque<Entry>,
}

impl Enumeration {
    pub(super) fn new(index: Index, root: &str, mode: EnumerationMode, synced_only: bool) -> Enumeration {
        let prefix = folder_prefix(root).into_owned().into_bytes();
        Enumeration { index, resume: Some(prefix.clone()), prefix, mode, synced_only, ready: VecDeque::new() }
    }

    /// Gathers the next chunk under the read lock.
    fn fill(&mut self) -> Result<()> {
        let Some(start) = self.resume.take() else { return Ok(()) };
        let inner = &self.index.inner;
        let shared = inner.read_lock()?;
        let tables = &shared.tables;
        let limit = if self.synced_only { inner.synced.load(std::sync::atomic::Ordering::SeqCst) } else { u64::MAX };
        let marks = inner.watermarks();
        let mode = self.mode;
        let mut keys = Cursor::new(tables, &self.prefix, &start)?;
        let mut looked = 0;
        while let Some((key, item)) = keys.next_entry()? {
            looked += 1;
            // The end of the folder whose keys are to be skipped, if any.
            let mut skip = None;
            match place(&self.prefix, key) {
                Place::InFolder(end) if !mode.recursive() => {
                    let serial = if self.synced_only { item.serial(tables)? } else { 0 };
                    if mode.folders() && serial <= limit {
                        let folder = String::from_utf8_lossy(&key[..end]).into_owned();
                        self.ready.push_back(Entry::Folder(folder));
                    }
                    // Skip the folder's other keys once it is listed (or when
                    // folders are not wanted). A synced-only folder whose
                    // first document is not synced yet is not skipped: its
                    // next document may be.
                    if !mode.folders() || serial <= limit {
                        skip = Some(end);
                    }
                }
                _ if mode.documents() => {
                    let (serial, stamp) = item.status(tables)?;
                    if serial <= limit {
                        self.ready.push_back(Entry::Document(DocumentStatus {
                            uri: String::from_utf8_lossy(key).into_owned(),
                            stamp,
                            state: marks.state_of(Serial(serial)),
                            serial: Serial(serial),
                        }));
                    }
                }
                _ => {}
            }
            let full = self.ready.len() >= CHUNK_ENTRIES || looked >= CHUNK_KEYS;
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

impl Iterator for Enumeration {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(entry) = self.ready.pop_front() {
                return Some(Ok(entry));
            }
            self.resume.as_ref()?;
            if let Err(e) = self.fill() {
                self.resume = None;
                return Some(Err(e));
            }
        }
    }
}
