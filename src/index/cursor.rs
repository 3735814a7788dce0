//! An ordered walk over everything the index holds under a prefix: the
//! active memtable, the frozen one and every segment, merged in URI order,
//! each URI once, from its newest visible source.
//!
//! Nothing is copied per key: each source lends its current key from its
//! own buffer (the trie iterator's path, the segment's decoded block of
//! names), and a source moves on only when the cursor is asked for the key
//! after the one it lent, so the key the cursor returns stays borrowed from
//! the source that holds it.

use roaring::RoaringBitmap;

use crate::error::Result;
use crate::index::tables::{MemEntry, Tables};
use crate::segment::Names;
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
    Mem { it: trie::Iter<'a, MemEntry>, frozen: bool },
    /// A segment's names, read block by block (cheaper per URI than its
    /// fst).
    Seg { names: Names<'a>, index: usize, deleted: &'a RoaringBitmap },
}

struct Head<'a> {
    source: Source<'a>,
    /// The source's current item (its key is the source's); `None` once it
    /// is exhausted.
    item: Option<Item<'a>>,
    /// The head holds the key returned last: it moves on before the next.
    lent: bool,
}

/// The merged cursor. Sources are kept newest first, so on equal keys the
/// first one wins and the others are skipped.
pub(crate) struct Cursor<'a> {
    tables: &'a Tables,
    prefix: &'a [u8],
    heads: Vec<Head<'a>>,
}

impl<'a> Cursor<'a> {
    /// Positions a cursor at the first key under `prefix` that is >= `start`.
    pub fn new(tables: &'a Tables, prefix: &'a [u8], start: &[u8]) -> Result<Cursor<'a>> {
        let mut heads = Vec::with_capacity(2 + tables.segments.len());
        let mut sources = vec![Source::Mem { it: tables.mem.range(prefix, start), frozen: false }];
        if let Some(frozen) = &tables.frozen {
            sources.push(Source::Mem { it: frozen.mem.range(prefix, start), frozen: true });
        }
        for (index, live) in tables.segments.iter().enumerate() {
            sources.push(Source::Seg { names: live.seg.names_in(prefix, start)?, index, deleted: &live.deleted });
        }
        for source in sources {
            let mut head = Head { source, item: None, lent: false };
            head.advance(tables)?;
            heads.push(head);
        }
        Ok(Cursor { tables, prefix, heads })
    }

    /// Moves to the first key >= `start`, which must be greater than the
    /// key returned last (a cursor only moves forward). A source already
    /// at or past `start` stays where it is.
    pub fn seek(&mut self, start: &[u8]) -> Result<()> {
        let tables = self.tables;
        for head in &mut self.heads {
            head.lent = false;
            if head.item.is_none() || head.key() >= start {
                continue;
            }
            match &mut head.source {
                Source::Mem { it, frozen } => {
                    let mem = if *frozen { tables.frozen.as_ref().map(|f| &f.mem) } else { Some(&tables.mem) };
                    if let Some(mem) = mem {
                        *it = mem.range(self.prefix, start);
                    }
                }
                Source::Seg { names, .. } => names.seek(start)?,
            }
            head.advance(tables)?;
        }
        Ok(())
    }

    /// The next key and its newest visible version. The key is valid until
    /// the next call.
    pub fn next_entry(&mut self) -> Result<Option<(&[u8], Item<'a>)>> {
        for head in &mut self.heads {
            if head.lent {
                head.lent = false;
                head.advance(self.tables)?;
            }
        }
        let heads = &mut self.heads;
        let mut best: Option<usize> = None;
        for (i, head) in heads.iter().enumerate() {
            if head.item.is_none() {
                continue;
            }
            match best {
                Some(b) if heads[b].key() <= head.key() => {}
                _ => best = Some(i),
            }
        }
        let Some(best) = best else { return Ok(None) };
        // Every head at this key moves on before the next one: the newest
        // (`best`, the first of them) is the version returned.
        for i in best..heads.len() {
            let tie = i == best || (heads[i].item.is_some() && heads[i].key() == heads[best].key());
            heads[i].lent = tie;
        }
        let head = &self.heads[best];
        Ok(Some((head.key(), head.item.expect("the best head has an item"))))
    }
}

impl<'a> Head<'a> {
    /// The current key (meaningful while `item` is `Some`).
    fn key(&self) -> &[u8] {
        match &self.source {
            Source::Mem { it, .. } => it.key(),
            Source::Seg { names, .. } => names.key(),
        }
    }

    /// Moves to the source's next visible entry.
    fn advance(&mut self, tables: &'a Tables) -> Result<()> {
        self.item = None;
        match &mut self.source {
            Source::Mem { it, frozen } => {
                while let Some((key, entry)) = it.next_entry() {
                    if *frozen && !tables.frozen_visible(key) {
                        continue;
                    }
                    self.item = Some(Item::Mem(entry));
                    return Ok(());
                }
            }
            Source::Seg { names, index, deleted } => {
                while let Some(next) = names.next_entry() {
                    let (_, ord) = next?;
                    if deleted.contains(ord) {
                        continue;
                    }
                    self.item = Some(Item::Seg(*index, ord));
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

impl<'a> Item<'a> {
    /// The serial of the version.
    pub fn serial(&self, tables: &Tables) -> Result<u64> {
        match *self {
            Item::Mem(entry) => Ok(entry.serial),
            Item::Seg(index, ord) => tables.segments[index].seg.serial(ord),
        }
    }

    /// The serial and stamp of the version.
    pub fn status(&self, tables: &'a Tables) -> Result<(u64, &'a str)> {
        match *self {
            Item::Mem(entry) => Ok((entry.serial, &entry.stamp)),
            Item::Seg(index, ord) => tables.segments[index].seg.status(ord),
        }
    }
}
