//! An ordered walk over everything the index holds under a prefix: the
//! active memtable, the frozen one and every segment, merged in URI order,
//! each URI once, from its newest visible source.

use crate::error::Result;
use crate::index::tables::{MemEntry, Tables};
use crate::segment::SegmentIter;
use crate::trie;

/// One visible version of a URI.
#[derive(Clone, Copy)]
pub(crate) enum Item<'a> {
    Mem(&'a MemEntry),
    /// A segment (index into `Tables::segments`) and a row.
    Seg(usize, u32),
}

enum Source<'a> {
    /// The active memtable, or the frozen one when `frozen`.
    Mem {
        it: trie::Iter<'a, MemEntry>,
        frozen: bool,
    },
    Seg {
        it: SegmentIter<'a>,
        index: usize,
    },
}

struct Head<'a> {
    source: Source<'a>,
    /// The source's current key and item; `None` once it is exhausted.
    key: Vec<u8>,
    item: Option<Item<'a>>,
}

/// The merged cursor. Sources are kept newest first, so on equal keys the
/// first one wins and the others are skipped.
pub(crate) struct Cursor<'a> {
    tables: &'a Tables,
    prefix: &'a [u8],
    heads: Vec<Head<'a>>,
    key: Vec<u8>,
}

impl<'a> Cursor<'a> {
    /// Positions a cursor at the first key under `prefix` that is >= `start`.
    pub fn new(tables: &'a Tables, prefix: &'a [u8], start: &[u8]) -> Result<Cursor<'a>> {
        let mut cursor = Cursor { tables, prefix, heads: Vec::new(), key: Vec::new() };
        cursor.seek(start)?;
        Ok(cursor)
    }

    /// Moves to the first key >= `start`.
    pub fn seek(&mut self, start: &[u8]) -> Result<()> {
        let tables = self.tables;
        let prefix = self.prefix;
        self.heads.clear();
        let mut sources = vec![Source::Mem { it: tables.mem.range(prefix, start), frozen: false }];
        if let Some(frozen) = &tables.frozen {
            sources.push(Source::Mem { it: frozen.mem.range(prefix, start), frozen: true });
        }
        for (index, live) in tables.segments.iter().enumerate() {
            sources.push(Source::Seg { it: live.seg.range(prefix, start), index });
        }
        for source in sources {
            let mut head = Head { source, key: Vec::new(), item: None };
            head.advance(tables)?;
            self.heads.push(head);
        }
        Ok(())
    }

    /// The next key and its newest visible version. The key is valid until
    /// the next call.
    pub fn next_entry(&mut self) -> Result<Option<(&[u8], Item<'a>)>> {
        let mut best: Option<usize> = None;
        for (i, head) in self.heads.iter().enumerate() {
            if head.item.is_none() {
                continue;
            }
            match best {
                Some(b) if self.heads[b].key <= head.key => {}
                _ => best = Some(i),
            }
        }
        let Some(best) = best else { return Ok(None) };
        let item = self.heads[best].item.expect("the best head has an item");
        self.key.clear();
        self.key.extend_from_slice(&self.heads[best].key);
        for head in &mut self.heads {
            if head.item.is_some() && head.key == self.key {
                head.advance(self.tables)?;
            }
        }
        Ok(Some((&self.key, item)))
    }
}

impl<'a> Head<'a> {
    /// Moves to the source's next visible entry.
    fn advance(&mut self, tables: &'a Tables) -> Result<()> {
        self.item = None;
        match &mut self.source {
            Source::Mem { it, frozen } => {
                while let Some((key, entry)) = it.next_entry() {
                    if *frozen && !tables.frozen_visible(key) {
                        continue;
                    }
                    self.key.clear();
                    self.key.extend_from_slice(key);
                    self.item = Some(Item::Mem(entry));
                    return Ok(());
                }
            }
            Source::Seg { it, index } => {
                let deleted = &tables.segments[*index].deleted;
                while let Some(next) = it.next_entry() {
                    let (key, ord) = next?;
                    if deleted.contains(ord) {
                        continue;
                    }
                    self.key.clear();
                    self.key.extend_from_slice(key);
                    self.item = Some(Item::Seg(*index, ord));
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

impl Item<'_> {
    /// The serial of the version.
    pub fn serial(&self, tables: &Tables) -> Result<u64> {
        match *self {
            Item::Mem(entry) => Ok(entry.serial),
            Item::Seg(index, ord) => tables.segments[index].seg.serial(ord),
        }
    }

    /// The serial and stamp of the version.
    pub fn status(&self, tables: &Tables) -> Result<(u64, String)> {
        match *self {
            Item::Mem(entry) => Ok((entry.serial, entry.stamp.to_string())),
            Item::Seg(index, ord) => {
                let row = tables.segments[index].seg.row(ord)?;
                Ok((row.serial, row.stamp.to_string()))
            }
        }
    }
}
