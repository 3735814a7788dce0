//! A segment's inverted index: what search reads instead of the bodies.
//!
//! Written with the segment (at flush, by analysing each body; at merge, by
//! carrying the inputs' postings over, renumbered), as four sections of the
//! segment file (docs/FORMAT.md, "Search sections"):
//!
//! - `norms`: per text part, a *column*: the rows that have the part and
//!   each one's length in words;
//! - `postings`: per term, a column: the rows holding the term and, for a
//!   word, its occurrences in each;
//! - `terms`: an `fst::Map` from a word's term key to the offset of its
//!   postings;
//! - `metas`: the meta-value terms, a front-coded sorted table (see
//!   `Sink::metas` for why not the fst) from key to postings offset;
//! - `parts`: the text parts, by name: documents, total length in words, and
//!   where their norms are.
//!
//! A term key is a kind byte ([`WORD`]: a word of a text part, [`META`]: a
//! meta value), the part's or meta's name, a NUL (names never hold one), and
//! the word or value. A column is `count` (varint), a value width `w` (one
//! byte: 0 means every value is 1, else 1, 2 or 4), the rows as a roaring
//! bitmap (its byte length as a varint, then its portable serialization),
//! then `count` values of `w` bytes, little-endian, in row order.

use std::collections::BTreeMap;
use std::io;

use roaring::RoaringBitmap;

use crate::document::{Body, BodyItem};
use crate::error::{Error, Result};
use crate::record::{get_varint, put_varint, varint_len};
use crate::storage::{Storage, StorageFile};
use crate::text::analyze;

use super::format::{le_u64, Section, SectionWriter, Sections, Slice, Spill, Written, TABLE_DRAIN};

/// Columns of at most this many rows hold them as varints (the first row,
/// then the differences) rather than as a roaring bitmap, whose smallest
/// serialization is about 18 bytes: most meta values are in one document.
pub(crate) const SMALL_COLUMN: usize = 8;

/// Rows per block of a word column's impacts (version 6 on): the unit a
/// top-k search skips when the block's best possible score cannot make the
/// results. A column of at most this many rows has no impacts (it is
/// scored whole).
pub(crate) const IMPACT_BLOCK: usize = 128;

/// Kind byte of a term key: a word of a text part.
pub(crate) const WORD: u8 = b'w';
/// Kind byte of a term key: a meta value.
pub(crate) const META: u8 = b'm';

/// Writes the key of `term` of kind `kind` under `name` into `out`.
pub(crate) fn term_key(out: &mut Vec<u8>, kind: u8, name: &str, term: &str) {
    out.clear();
    out.push(kind);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(term.as_bytes());
}

/// Rows in increasing order, each with a value (a length or a frequency)
/// and, for a word, its positions: `values[i]` of them for `rows[i]`, all
/// rows' one after the other (empty for norms and meta values).
#[derive(Default)]
struct Column {
    rows: Vec<u32>,
    values: Vec<u32>,
    /// A word's positions, encoded as the postings hold them (see the
    /// module docs): each row's on its own, the first absolute, so that a
    /// merge copies a kept row's bytes as they are and a flush encodes each
    /// position once, as it is counted. Row `i`'s end at `raw_ends[i]`.
    raw: Vec<u8>,
    raw_ends: Vec<usize>,
    /// The last position [`Column::bump_at`] encoded.
    last_position: u32,
}

impl Column {
    /// Counts one more occurrence of a word in `row` (which is the last row
    /// or after it), at `position` (above the row's positions so far).
    fn bump_at(&mut self, row: u32, position: u32) {
        // The first position of a row as it is, then each one's distance
        // to the one before, less one.
        let delta = if self.rows.last() == Some(&row) {
            position.saturating_sub(self.last_position).saturating_sub(1)
        } else {
            self.raw_ends.push(self.raw.len());
            position
        };
        self.bump(row);
        self.last_position = position;
        put_varint(&mut self.raw, delta as usize);
        *self.raw_ends.last_mut().expect("a row was pushed") = self.raw.len();
    }

    /// Counts one more of `row` (which is the last row or after it).
    fn bump(&mut self, row: u32) {
        if self.rows.last() == Some(&row) {
            *self.values.last_mut().expect("values follow rows") += 1;
        } else {
            self.rows.push(row);
            self.values.push(1);
        }
    }

    fn push(&mut self, row: u32, value: u32) {
        self.rows.push(row);
        self.values.push(value);
    }

    /// Adds `row` with `freq` occurrences whose positions are encoded in
    /// `raw`.
    fn push_raw(&mut self, row: u32, freq: u32, raw: &[u8]) {
        self.push(row, freq);
        self.raw.extend_from_slice(raw);
        self.raw_ends.push(self.raw.len());
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.values.clear();
        self.raw.clear();
        self.raw_ends.clear();
    }

    /// Sorts rows gathered out of order (each row once), their positions
    /// with them. A merge gathers a term's rows input by input, each
    /// input's in increasing order: those runs are merged, a stretch at a
    /// time (a run's rows below every other run's next row), not sorted
    /// anew.
    fn sort(&mut self) {
        if self.rows.is_sorted() {
            return;
        }
        let Column { rows, values, raw, raw_ends, .. } = &*self;
        // The runs, as (next, end) cursors.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        for i in 1..=rows.len() {
            if i == rows.len() || rows[i] < rows[i - 1] {
                runs.push((start, i));
                start = i;
            }
        }
        let mut sorted = Column {
            rows: Vec::with_capacity(rows.len()),
            values: Vec::with_capacity(values.len()),
            raw: Vec::with_capacity(raw.len()),
            raw_ends: Vec::with_capacity(raw_ends.len()),
            last_position: 0,
        };
        loop {
            // The run with the smallest next row (few runs: a scan), and
            // the next row of the others.
            let (mut best, mut first, mut second) = (None, u32::MAX, u32::MAX);
            for (r, &(next, end)) in runs.iter().enumerate() {
                if next < end {
                    let row = rows[next];
                    if row < first {
                        (best, first, second) = (Some(r), row, first);
                    } else if row < second {
                        second = row;
                    }
                }
            }
            let Some(r) = best else { break };
            let (from, end) = runs[r];
            let to = from + 1 + rows[from + 1..end].iter().take_while(|&&row| row < second).count();
            runs[r].0 = to;
            sorted.rows.extend_from_slice(&rows[from..to]);
            sorted.values.extend_from_slice(&values[from..to]);
            if !raw_ends.is_empty() {
                let start = if from == 0 { 0 } else { raw_ends[from - 1] };
                let moved = sorted.raw.len();
                sorted.raw.extend_from_slice(&raw[start..raw_ends[to - 1]]);
                sorted.raw_ends.extend(raw_ends[from..to].iter().map(|&e| e - start + moved));
            }
        }
        *self = sorted;
    }

    /// Appends the column's encoding (see the module docs): with its
    /// values (a word's frequencies, a part's lengths) or without (a meta
    /// value's), and with its positions after them (a word's, from version 5
    /// on).
    fn encode(&self, out: &mut Vec<u8>, with_values: bool, with_positions: bool) {
        put_varint(out, self.rows.len());
        let max = if with_values { self.values.iter().copied().max().unwrap_or(1) } else { 1 };
        let all_one = !with_values || self.values.iter().all(|&v| v == 1);
        let width: u8 = match max {
            _ if all_one => 0,
            0..=0xff => 1,
            0x100..=0xffff => 2,
            _ => 4,
        };
        out.push(width);
        if self.rows.len() <= SMALL_COLUMN {
            // The first row, then the differences.
            let deltas = || self.rows.iter().scan(0, |prev, &row| Some((row - std::mem::replace(prev, row)) as usize));
            put_varint(out, deltas().map(varint_len).sum());
            deltas().for_each(|delta| put_varint(out, delta));
        } else {
            let bitmap =
                RoaringBitmap::from_sorted_iter(self.rows.iter().copied()).expect("column rows are increasing");
            put_varint(out, bitmap.serialized_size());
            bitmap.serialize_into(&mut *out).expect("serializing into a Vec cannot fail");
        }
        if width > 0 {
            for &v in &self.values {
                out.extend_from_slice(&v.to_le_bytes()[..usize::from(width)]);
            }
        }
        if with_positions {
            // Per row, its positions: the first, then each one's distance
            // to the one before, less one (positions of a word in a part
            // strictly increase).
            debug_assert_eq!(self.raw_ends.len(), self.rows.len(), "every row's positions");
            put_varint(out, self.raw.len());
            out.extend_from_slice(&self.raw);
        }
    }
}

/// Frequencies below this get a slot of their own when a block's impacts
/// are gathered; higher ones (rare) are sorted.
const SMALL_FREQ: usize = 16;

/// Builds word columns' impacts (see docs/FORMAT.md, "Impacts"): per block
/// of [`IMPACT_BLOCK`] rows, the block's last row and the (frequency,
/// length) pairs of its rows that no other row of the block beats on both
/// counts, a higher frequency and a shorter part. BM25 grows with the
/// frequency and shrinks with the length, so the best of those pairs'
/// scores bounds every score in the block, whatever the statistics.
#[derive(Default)]
struct ImpactWriter {
    /// Per frequency below [`SMALL_FREQ`], the shortest length seen with it.
    shortest: [u32; SMALL_FREQ],
    /// (frequency, length) of the rows with a higher frequency.
    high: Vec<(u32, u32)>,
    frontier: Vec<(u32, u32)>,
    bytes: Vec<u8>,
}

impl ImpactWriter {
    /// Appends the impacts of `column` (a word's) to `out`, `lens[row]`
    /// being each row's length in words (missing: 0).
    fn encode(&mut self, column: &Column, lens: &[u32], out: &mut Vec<u8>) {
        self.bytes.clear();
        if column.rows.len() > IMPACT_BLOCK {
            let mut prev = 0;
            for (rows, values) in column.rows.chunks(IMPACT_BLOCK).zip(column.values.chunks(IMPACT_BLOCK)) {
                let last = *rows.last().expect("chunks are not empty");
                put_varint(&mut self.bytes, (last - prev) as usize);
                prev = last;
                self.gather(rows, values, lens);
                put_varint(&mut self.bytes, self.frontier.len());
                for &(freq, len) in &self.frontier {
                    put_varint(&mut self.bytes, freq as usize);
                    put_varint(&mut self.bytes, len as usize);
                }
            }
        }
        put_varint(out, self.bytes.len());
        out.extend_from_slice(&self.bytes);
    }

    /// Sets `frontier` to the block's pairs that no other pair beats on
    /// both counts: frequencies and lengths both decreasing.
    fn gather(&mut self, rows: &[u32], values: &[u32], lens: &[u32]) {
        self.shortest = [u32::MAX; SMALL_FREQ];
        self.high.clear();
        for (&row, &freq) in rows.iter().zip(values) {
            let len = lens.get(row as usize).copied().unwrap_or(0);
            match self.shortest.get_mut(freq as usize) {
                Some(shortest) => *shortest = (*shortest).min(len),
                None => self.high.push((freq, len)),
            }
        }
        self.high.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let small = (0..SMALL_FREQ as u32).rev().map(|freq| (freq, self.shortest[freq as usize]));
        self.frontier.clear();
        let mut shortest = u32::MAX;
        for (freq, len) in self.high.iter().copied().chain(small) {
            if len < shortest {
                self.frontier.push((freq, len));
                shortest = len;
            }
        }
    }
}

/// One text part's entry in the `parts` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartInfo {
    pub name: String,
    /// Rows that have the part (deleted ones too).
    pub docs: u64,
    /// Their total length in words.
    pub total_len: u64,
    /// Where the part's norms column is in the `norms` section.
    pub norms: std::ops::Range<u64>,
}

/// Where the search sections landed, in file order.
pub(crate) type SearchSections = Vec<(Section, Written)>;

/// How many rows or terms a merge reads between two releases of its
/// inputs' pages.
pub(crate) const RELEASE_EVERY: u32 = 1 << 16;

/// Meta-value terms per block of the `metas` section.
pub(crate) const META_BLOCK: usize = 32;

/// Term keys, each stored once in one arena and numbered in order of first
/// sight: analysing a body costs one hash and, for a known term, one
/// comparison against the arena per word.
#[derive(Default)]
struct Interner {
    /// Every term: its hash, id, and key as `arena[start..start + len]`.
    table: hashbrown::HashTable<TermSlot>,
    arena: Vec<u8>,
    /// Where each term's key is in `arena`, by id.
    spans: Vec<(usize, usize)>,
}

#[derive(Clone, Copy)]
struct TermSlot {
    hash: u64,
    id: u32,
    len: u32,
    start: usize,
}

impl Interner {
    fn key(&self, id: u32) -> &[u8] {
        let (start, len) = self.spans[id as usize];
        &self.arena[start..start + len]
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    /// The id of `key`, a new one if it is new.
    fn intern(&mut self, key: &[u8]) -> u32 {
        let hash = xxhash_rust::xxh3::xxh3_64(key);
        let Interner { table, arena, spans } = self;
        let same = |slot: &TermSlot| {
            slot.hash == hash && slot.len as usize == key.len() && &arena[slot.start..slot.start + key.len()] == key
        };
        if let Some(slot) = table.find(hash, same) {
            return slot.id;
        }
        let id = u32::try_from(spans.len()).expect("fewer than 2^32 terms in one segment");
        let len = u32::try_from(key.len()).expect("a term key under 4 GiB");
        let slot = TermSlot { hash, id, len, start: arena.len() };
        spans.push((arena.len(), key.len()));
        arena.extend_from_slice(key);
        table.insert_unique(hash, slot, |slot| slot.hash);
        id
    }

    /// Term ids in key order.
    ///
    /// A key is its kind and name up to a NUL (the only one: names hold
    /// none), then the term. Keys order by that prefix first (neither of two
    /// different prefixes starts the other), so each term is sorted by the
    /// rank of its prefix among the few there are, then by its first 16
    /// bytes as a big-endian number: those settle most comparisons without
    /// a call to `memcmp`, which a head of the whole key did not when the
    /// name took most of it.
    fn sorted(&self) -> Vec<u32> {
        let split = |key: &[u8]| key.iter().position(|&b| b == 0).map_or(key.len(), |nul| nul + 1);
        // Each term's prefix, numbered in order of first sight, and where
        // its term starts in its key (4 bytes a term each: the sort below
        // holds every term at once, so its working set is kept small).
        let mut groups = hashbrown::HashTable::<(u64, u32)>::new();
        let mut prefixes: Vec<&[u8]> = Vec::new();
        let mut group_of = Vec::with_capacity(self.len());
        let mut splits = Vec::with_capacity(self.len());
        for id in 0..self.len() as u32 {
            let key = self.key(id);
            let at = split(key);
            let prefix = &key[..at];
            let hash = xxhash_rust::xxh3::xxh3_64(prefix);
            let group = match groups.find(hash, |&(h, g)| h == hash && prefixes[g as usize] == prefix) {
                Some(&(_, group)) => group,
                None => {
                    let group = prefixes.len() as u32;
                    prefixes.push(prefix);
                    groups.insert_unique(hash, (hash, group), |&(h, _)| h);
                    group
                }
            };
            group_of.push(group);
            splits.push(at as u32);
        }
        // Bucketed by prefix (a counting sort, in prefix order), then each
        // bucket sorted by head, ties by the rest of the term.
        let mut order: Vec<u32> = (0..prefixes.len() as u32).collect();
        order.sort_unstable_by_key(|&group| prefixes[group as usize]);
        let mut counts = vec![0usize; prefixes.len()];
        for &group in &group_of {
            counts[group as usize] += 1;
        }
        let mut at = 0;
        let mut bounds = Vec::with_capacity(order.len());
        let mut fill = vec![0usize; prefixes.len()];
        for &group in &order {
            fill[group as usize] = at;
            at += counts[group as usize];
            bounds.push(at);
        }
        let term = |id: u32| &self.key(id)[splits[id as usize] as usize..];
        let mut sorted = vec![Headed::default(); self.len()];
        for (id, &group) in group_of.iter().enumerate() {
            let id = id as u32;
            sorted[fill[group as usize]] = Headed::new(term(id), id);
            fill[group as usize] += 1;
        }
        drop(group_of);
        // Equal heads: equal first 16 bytes when both are that long.
        let tie = |a: u32, b: u32| {
            let (a, b) = (term(a), term(b));
            if a.len() >= 16 && b.len() >= 16 {
                a[16..].cmp(&b[16..])
            } else {
                a.cmp(b)
            }
        };
        let mut scratch = vec![Headed::default(); sorted.len()];
        let mut begin = 0;
        for end in bounds {
            sort_by_head(&mut sorted[begin..end], &mut scratch[begin..end], 0, &tie);
            begin = end;
        }
        drop(scratch);
        sorted.into_iter().map(|headed| headed.id).collect()
    }
}

/// A term's first 16 bytes as a big-endian number, in two halves (24
/// bytes with its id, where a `u128` would align the pair to 32), for
/// [`sort_by_head`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Headed {
    high: u64,
    low: u64,
    id: u32,
}

impl Headed {
    fn new(term: &[u8], id: u32) -> Headed {
        let mut bytes = [0u8; 16];
        let n = term.len().min(16);
        bytes[..n].copy_from_slice(&term[..n]);
        let (high, low) = bytes.split_at(8);
        let half = |b: &[u8]| u64::from_be_bytes(b.try_into().expect("8 bytes"));
        Headed { high: half(high), low: half(low), id }
    }

    /// The head's byte `byte` (0 the most significant).
    fn byte(&self, byte: u32) -> usize {
        let (half, at) = if byte < 8 { (self.high, byte) } else { (self.low, byte - 8) };
        usize::from((half >> (56 - 8 * at)) as u8)
    }

    fn head(&self) -> (u64, u64) {
        (self.high, self.low)
    }
}

/// Items under this many are sorted by comparisons, not by their next byte.
const RADIX_MIN: usize = 48;

/// Sorts `items` by their head, then by `tie` of their ids where heads are
/// equal: a most-significant-byte-first radix sort of the heads from byte
/// `byte` (0 the most significant), handing each bucket of fewer than
/// [`RADIX_MIN`] items to a comparison sort. `scratch` is as long as
/// `items`. Half a million meta terms sort in a few passes over them,
/// where a comparison sort made some twenty (with a call per comparison
/// for the terms whose heads tie).
fn sort_by_head(
    items: &mut [Headed],
    scratch: &mut [Headed],
    mut byte: u32,
    tie: &impl Fn(u32, u32) -> std::cmp::Ordering,
) {
    loop {
        if items.len() < RADIX_MIN || byte == 16 {
            items.sort_unstable_by(|a, b| a.head().cmp(&b.head()).then_with(|| tie(a.id, b.id)));
            return;
        }
        let at = byte;
        let digit = |item: &Headed| item.byte(at);
        let mut counts = [0usize; 256];
        for item in items.iter() {
            counts[digit(item)] += 1;
        }
        byte += 1;
        // All in one bucket: on to the next byte, nothing moved.
        if counts.contains(&items.len()) {
            continue;
        }
        let mut starts = [0usize; 256];
        let mut at = 0;
        for (start, &count) in starts.iter_mut().zip(&counts) {
            *start = at;
            at += count;
        }
        let mut fill = starts;
        for item in items.iter() {
            let d = digit(item);
            scratch[fill[d]] = *item;
            fill[d] += 1;
        }
        items.copy_from_slice(scratch);
        for (&start, &count) in starts.iter().zip(&counts) {
            if count > 1 {
                let range = start..start + count;
                sort_by_head(&mut items[range.clone()], &mut scratch[range], byte, tie);
            }
        }
        return;
    }
}

/// Gathers a new segment's inverted index from its rows' bodies.
///
/// Each occurrence of a term is appended to one flat list, rows in order,
/// so that analysing touches little memory per word; [`Analyzer::write`]
/// then sorts the occurrences by term (a counting sort, stable, so each
/// term's rows stay in order) and counts repeats as frequencies.
#[derive(Default)]
pub(crate) struct Analyzer {
    /// How text parts become words.
    analysis: crate::text::Analyzer,
    parts: BTreeMap<String, Column>,
    terms: Interner,
    /// Term ids of every occurrence, row after row.
    occurrences: Vec<u32>,
    /// The position of each occurrence in its part (0 for a meta value).
    positions: Vec<u32>,
    /// Per row, the end of its occurrences.
    row_ends: Vec<usize>,
    /// Occurrences per term id.
    counts: Vec<u32>,
    key: Vec<u8>,
}

impl Analyzer {
    pub fn new(analysis: crate::text::Analyzer) -> Analyzer {
        Analyzer { analysis, ..Analyzer::default() }
    }

    /// Adds row `row` (rows come in increasing order, from 0). Bytes that
    /// are not an encoded body (only low-level tests and benches write
    /// such) add what they hold up to where they stop parsing.
    pub fn add(&mut self, row: u32, body: &[u8]) {
        debug_assert_eq!(row as usize, self.row_ends.len());
        let Analyzer { analysis, parts, terms, occurrences, positions, counts, key, .. } = self;
        let mut note = |key: &[u8], position: u32| {
            let id = terms.intern(key);
            if id as usize == counts.len() {
                counts.push(0);
            }
            counts[id as usize] += 1;
            occurrences.push(id);
            positions.push(position);
        };
        let _ = Body::visit_encoded(body, &mut |item| match item {
            // A name holding a NUL would end its term key early (names
            // never hold one: only bytes that are not a document's body,
            // from a damaged or hostile log, can): not indexed.
            BodyItem::Meta(name, _) | BodyItem::Text(name, _) if name.contains('\0') => {}
            BodyItem::Meta(name, value) => {
                term_key(key, META, name, value);
                note(key, 0);
            }
            BodyItem::Text(name, text) => {
                // A part repeated in the body (see below) goes on from the
                // words of its first text, so that positions keep rising.
                let first = match parts.get(name) {
                    Some(column) if column.rows.last() == Some(&row) => *column.values.last().expect("values"),
                    _ => 0,
                };
                term_key(key, WORD, name, "");
                let base = key.len();
                let len = analyze(*analysis, text, &mut |token| {
                    key.truncate(base);
                    key.extend_from_slice(token.term.as_bytes());
                    note(key, first.saturating_add(token.position));
                });
                match parts.get_mut(name) {
                    // A body names each part once (Document keeps part
                    // names unique), but the bytes come from files: a
                    // repeated part adds to the row's length instead of
                    // listing the row twice, which the reader refuses
                    // (a part in more rows than the segment has).
                    Some(column) if column.rows.last() == Some(&row) => {
                        let last = column.values.last_mut().expect("values follow rows");
                        *last = last.saturating_add(len);
                    }
                    Some(column) => column.push(row, len),
                    None => {
                        let mut column = Column::default();
                        column.push(row, len);
                        parts.insert(name.to_string(), column);
                    }
                }
            }
        });
        self.row_ends.push(self.occurrences.len());
    }

    /// Writes the four search sections, starting at `at` in `file`.
    /// `table_bytes` bounds what the terms fst and the metas table hold in
    /// memory (see [`Spill`]).
    pub fn write(
        self,
        storage: &dyn Storage,
        file: &dyn StorageFile,
        at: u64,
        table_bytes: usize,
    ) -> Result<SearchSections> {
        let mut sink = Sink::new(storage, file, at, table_bytes)?;
        for (name, column) in &self.parts {
            sink.part(name, column)?;
        }
        sink.start_postings()?;
        // The terms in key order, renumbered by their rank there, with their
        // keys copied out in that order. Ids in key order are scattered over
        // the arena and the tables; a loop that only copies lets the
        // processor overlap those cache misses, which the writing loop below
        // (encoding between two terms) took one after the other.
        let order = self.terms.sorted();
        let mut rank_of = vec![0u32; order.len()];
        let mut keys = Vec::with_capacity(self.terms.arena.len());
        let mut key_ends = Vec::with_capacity(order.len());
        let mut starts = Vec::with_capacity(order.len() + 1);
        let mut at = 0usize;
        for (rank, &id) in order.iter().enumerate() {
            rank_of[id as usize] = rank as u32;
            keys.extend_from_slice(self.terms.key(id));
            key_ends.push(keys.len());
            starts.push(at);
            at += self.counts[id as usize] as usize;
        }
        starts.push(at);
        drop((order, self.terms, self.counts));
        // Counting sort: each term's rows, in order, a row once per
        // occurrence, the terms in key order.
        let mut fill = starts.clone();
        let mut by_term = vec![0u32; at];
        let mut positions = vec![0u32; at];
        let mut begin = 0;
        for (row, &end) in self.row_ends.iter().enumerate() {
            for (&id, &position) in self.occurrences[begin..end].iter().zip(&self.positions[begin..end]) {
                let slot = &mut fill[rank_of[id as usize] as usize];
                by_term[*slot] = row as u32;
                positions[*slot] = position;
                *slot += 1;
            }
            begin = end;
        }
        drop((self.occurrences, self.positions, fill, rank_of));
        let mut column = Column::default();
        let mut key_start = 0;
        for (rank, &key_end) in key_ends.iter().enumerate() {
            let key = &keys[key_start..key_end];
            key_start = key_end;
            column.clear();
            let range = starts[rank]..starts[rank + 1];
            if key.first() == Some(&WORD) {
                for (&row, &position) in by_term[range.clone()].iter().zip(&positions[range]) {
                    column.bump_at(row, position);
                }
            } else {
                for &row in &by_term[range] {
                    column.bump(row);
                }
            }
            sink.term(key, &column)?;
        }
        sink.finish()
    }
}

/// Carries the inverted indexes of merged segments over to their merge:
/// `inputs[i]`'s row `r` is row `remap[i][r]` of the new segment, or left
/// out when that is `u32::MAX`. No body is read or analysed again.
pub(crate) fn write_merged(
    inputs: &[Inverted<'_>],
    remap: &[Vec<u32>],
    storage: &dyn Storage,
    file: &dyn StorageFile,
    at: u64,
    table_bytes: usize,
) -> Result<SearchSections> {
    let mut sink = Sink::new(storage, file, at, table_bytes)?;
    let mut column = Column::default();
    // The inputs are read once, in order: their pages are let go as the
    // merge moves on (see `Segment::release_pages`).
    let mut terms = 0u32;
    let mut moved_on = || {
        terms = terms.wrapping_add(1);
        if terms.is_multiple_of(RELEASE_EVERY) {
            inputs.iter().for_each(|seg| seg.sections.release_pages());
        }
    };
    let carry = |column: &mut Column, seg: &Inverted<'_>, map: &[u32], from: &Postings<'_>| -> Result<()> {
        for (rank, row) in from.rows.iter().enumerate() {
            let new = *map
                .get(row as usize)
                .ok_or_else(|| seg.corrupt(format!("a search column names row {row}, past the {} rows", seg.rows)))?;
            if new != u32::MAX {
                column.push(new, from.value(rank));
            }
        }
        Ok(())
    };
    // Parts, by name across the inputs.
    let mut names: Vec<&str> = inputs.iter().flat_map(|seg| seg.parts().iter().map(|p| p.name.as_str())).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        column.clear();
        for (seg, map) in inputs.iter().zip(remap) {
            if let Some(part) = seg.parts().iter().find(|p| p.name == name) {
                carry(&mut column, seg, map, &seg.norms(part)?)?;
            }
        }
        column.sort();
        if !column.rows.is_empty() {
            sink.part(name, &column)?;
        }
    }
    sink.start_postings()?;
    // Meta values: a merge of the inputs' tables, in key order.
    let mut tables = inputs.iter().map(|seg| seg.meta_terms()).collect::<Result<Vec<_>>>()?;
    let mut key = vec![META];
    loop {
        // The smallest head.
        let mut any = false;
        for table in &mut tables {
            let Some(head) = table.peek()? else { continue };
            if !any || head < &key[1..] {
                key.truncate(1);
                key.extend_from_slice(head);
                any = true;
            }
        }
        if !any {
            break;
        }
        moved_on();
        column.clear();
        for (i, table) in tables.iter_mut().enumerate() {
            if table.peek()? == Some(&key[1..]) {
                let (_, offset) = table.next_term()?.expect("peeked");
                carry(&mut column, &inputs[i], &remap[i], &inputs[i].postings_at(offset)?)?;
            }
        }
        column.sort();
        if !column.rows.is_empty() {
            sink.term(&key, &column)?;
        }
    }
    // Words: the union of the inputs' fsts.
    let mut union = fst::map::OpBuilder::new();
    for seg in inputs {
        union = union.add(seg.terms());
    }
    let mut stream = union.union();
    use fst::Streamer;
    while let Some((key, found)) = stream.next() {
        moved_on();
        column.clear();
        for found in found {
            let (seg, map) = (&inputs[found.index], &remap[found.index]);
            let from = seg.postings_at(found.value)?;
            let Some(mut positions) = seg.positions(&from)? else {
                return Err(Error::invalid_input("a merge that carries postings over needs inputs with positions"));
            };
            for (rank, row) in from.rows.iter().enumerate() {
                let new = *map.get(row as usize).ok_or_else(|| {
                    seg.corrupt(format!("a search column names row {row}, past the {} rows", seg.rows))
                })?;
                let freq = from.value(rank);
                let raw = positions.raw(freq).map_err(|e| seg.corrupt(e))?;
                if new != u32::MAX {
                    column.push_raw(new, freq, raw);
                }
            }
        }
        column.sort();
        if !column.rows.is_empty() {
            sink.term(key, &column)?;
        }
    }
    sink.finish()
}

/// Writes the search sections in order: norms (one column per part), then
/// postings (one per term) while the terms fst, the metas table and the
/// parts table are built aside (the first two in [`Spill`]s, the parts
/// table in memory: one entry per part), then those three.
struct Sink<'f> {
    file: &'f dyn StorageFile,
    norms: Option<SectionWriter<'f>>,
    postings: Option<SectionWriter<'f>>,
    written: SearchSections,
    parts: Vec<u8>,
    part_count: usize,
    terms: fst::MapBuilder<Spill<'f>>,
    /// The `metas` section: the meta-value terms (their keys without the
    /// kind byte) in key order with their postings offsets, front-coded in
    /// blocks of [`META_BLOCK`], each block's offset, and the number of
    /// blocks (a `u64`). Meta values are mostly unique per document (hashes,
    /// titles, dates), so there are several times more of them than
    /// documents; building them into the terms fst made it the main cost of
    /// a flush (its node registry), while this table is written in one pass
    /// and read by a binary search over the blocks' first keys.
    metas: crate::frontcode::Builder,
    /// The metas table's blocks as [`Sink::metas`] hands them out.
    metas_out: Spill<'f>,
    /// Per text part (in the order [`Sink::part`] saw them), each row's
    /// length in words (0 for a row without the part): what a word's
    /// impacts need.
    lens: Vec<(String, Vec<u32>)>,
    /// The part of the last word written (an index into `lens`): words
    /// come in key order, a part's all together.
    last_part: usize,
    buf: Vec<u8>,
    impacts: ImpactWriter,
}

impl<'f> Sink<'f> {
    fn new(storage: &'f dyn Storage, file: &'f dyn StorageFile, at: u64, table_bytes: usize) -> Result<Sink<'f>> {
        let terms = fst::MapBuilder::new(Spill::new(storage, table_bytes))
            .map_err(terms_error)?;
        Ok(Sink {
            file,
            norms: Some(SectionWriter::new(file, at)),
            postings: None,
            written: Vec::with_capacity(5),
            parts: Vec::new(),
            part_count: 0,
            terms,
            metas: crate::frontcode::Builder::new(META_BLOCK),
            metas_out: Spill::new(storage, table_bytes),
            lens: Vec::new(),
            last_part: 0,
            buf: Vec::new(),
            impacts: ImpactWriter::default(),
        })
    }

    fn part(&mut self, name: &str, column: &Column) -> Result<()> {
        let norms = self.norms.as_mut().expect("parts come before postings");
        let start = norms.len();
        self.buf.clear();
        column.encode(&mut self.buf, true, false);
        norms.put(&self.buf)?;
        put_str(&mut self.parts, name);
        put_varint(&mut self.parts, column.rows.len());
        let total: u64 = column.values.iter().map(|&v| u64::from(v)).sum();
        put_u64(&mut self.parts, total);
        put_u64(&mut self.parts, start);
        put_u64(&mut self.parts, self.buf.len() as u64);
        self.part_count += 1;
        let mut lens = vec![0; column.rows.last().map_or(0, |&row| row as usize + 1)];
        for (&row, &len) in column.rows.iter().zip(&column.values) {
            lens[row as usize] = len;
        }
        self.lens.push((name.to_string(), lens));
        Ok(())
    }

    fn start_postings(&mut self) -> Result<()> {
        let norms = self.norms.take().expect("postings start once");
        let done = norms.finish()?;
        self.postings = Some(SectionWriter::new(self.file, done.end()));
        self.written.push((Section::Norms, done));
        Ok(())
    }

    fn term(&mut self, key: &[u8], column: &Column) -> Result<()> {
        let postings = self.postings.as_mut().expect("terms come after start_postings");
        let offset = postings.len();
        self.buf.clear();
        let word = key.first() == Some(&WORD);
        column.encode(&mut self.buf, word, word);
        if word {
            let name = key[1..].split(|&b| b == 0).next().unwrap_or_default();
            if self.lens.get(self.last_part).is_none_or(|(part, _)| part.as_bytes() != name) {
                self.last_part = self.lens.iter().position(|(part, _)| part.as_bytes() == name).unwrap_or(usize::MAX);
            }
            // A word of a part no row has (only a damaged input can give
            // one): length 0 for every row, the highest bound.
            let lens = self.lens.get(self.last_part).map_or(&[][..], |(_, lens)| lens);
            self.impacts.encode(column, lens, &mut self.buf);
        }
        postings.put(&self.buf)?;
        match key.split_first() {
            Some((&META, key)) => {
                self.metas.push(key, Some(offset));
                let out = &mut self.metas_out;
                Ok(self.metas.drain(TABLE_DRAIN.min(out.limit()), |bytes| out.put(bytes))?)
            }
            _ => self.terms.insert(key, offset).map_err(terms_error),
        }
    }

    fn finish(mut self) -> Result<SearchSections> {
        let postings = self.postings.take().expect("postings were started");
        let done = postings.finish()?;
        let mut at = done.end();
        self.written.push((Section::Postings, done));
        let terms = self.terms.into_inner().map_err(terms_error)?;
        let mut w = SectionWriter::new(self.file, at);
        terms.copy_to(&mut w)?;
        let done = w.finish()?;
        at = done.end();
        self.written.push((Section::Terms, done));
        let mut w = SectionWriter::new(self.file, at);
        let blocks = self.metas.blocks() as u64;
        self.metas_out.copy_to(&mut w)?;
        w.put(&self.metas.finish())?;
        w.put(&blocks.to_le_bytes())?;
        let done = w.finish()?;
        at = done.end();
        self.written.push((Section::Metas, done));
        let mut table = Vec::with_capacity(self.parts.len() + 10);
        put_varint(&mut table, self.part_count);
        table.extend_from_slice(&self.parts);
        let mut w = SectionWriter::new(self.file, at);
        w.put(&table)?;
        self.written.push((Section::Parts, w.finish()?));
        Ok(self.written)
    }
}

/// An error of the terms fst's builder: its writer's (the [`Spill`]) as
/// the I/O error it is; keys out of order (only a writer's bug can give
/// them) as invalid input.
fn terms_error(e: fst::Error) -> Error {
    match e {
        fst::Error::Io(e) => Error::Io(e),
        e => Error::invalid_input(format!("search terms: {e}")),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    put_varint(out, n as usize);
}

/// Parses the `parts` section; `norms_len` bounds the norms ranges.
pub(crate) fn parse_parts(bytes: &[u8], rows: u64, norms_len: u64) -> std::result::Result<Vec<PartInfo>, String> {
    let mut at = 0;
    let bad = |what: &str| format!("the parts table is damaged: {what}");
    let count = get_varint(bytes, &mut at).ok_or_else(|| bad("no count"))?;
    let mut parts: Vec<PartInfo> = Vec::new();
    for _ in 0..count {
        let len = get_varint(bytes, &mut at).ok_or_else(|| bad("a name length"))? as usize;
        let name = bytes.get(at..at.saturating_add(len)).ok_or_else(|| bad("a name runs past the end"))?;
        at += len;
        let name = std::str::from_utf8(name).map_err(|_| bad("a name is not UTF-8"))?.to_string();
        let mut num = || get_varint(bytes, &mut at).ok_or_else(|| bad("a number"));
        let (docs, total_len, start, len) = (num()?, num()?, num()?, num()?);
        let end = start.checked_add(len).filter(|&end| end <= norms_len).ok_or_else(|| bad("norms out of place"))?;
        if docs > rows || parts.last().is_some_and(|p| p.name >= name) {
            return Err(bad("parts out of order or too many documents"));
        }
        parts.push(PartInfo { name, docs, total_len, norms: start..end });
    }
    if at != bytes.len() {
        return Err(bad("bytes after the last part"));
    }
    Ok(parts)
}

/// A segment's inverted index as read at open: the verified `terms` fst
/// and the parsed `parts` table.
pub(crate) struct InvertedIndex {
    terms: fst::Map<Slice>,
    parts: Vec<PartInfo>,
}

impl InvertedIndex {
    /// Reads the `terms` fst and the `parts` table of `sections` (both
    /// verified whole at open) and checks the `metas` block index.
    pub(crate) fn open(sections: &Sections, rows: u64) -> Result<InvertedIndex> {
        let terms = fst::Map::new(sections.slice(Section::Terms))
            .map_err(|e| sections.corrupt(format!("the terms section is not an fst: {e}")))?;
        let parts = parse_parts(sections.whole(Section::Parts), rows, sections.len(Section::Norms))
            .map_err(|e| sections.corrupt(e))?;
        let index = InvertedIndex { terms, parts };
        let inverted = Inverted { sections, index: &index, rows, positions: false, impacts: false };
        inverted.meta_index()?;
        // Each norms column's header against its part (a block read per
        // part): the count, a width a writer uses, the length.
        for part in &index.parts {
            let bad = |what: &str| sections.corrupt(format!("the norms of part {:?}: {what}", part.name));
            let head = sections.read(Section::Norms, part.norms.start..part.norms.end.min(part.norms.start + 32))?;
            let len = column_len(head).ok_or_else(|| bad("a damaged column header"))?;
            if len as u64 != part.norms.end - part.norms.start {
                return Err(bad(&format!(
                    "a column of {len} bytes in a place of {}",
                    part.norms.end - part.norms.start
                )));
            }
            if column_count(head) != Some(part.docs) {
                return Err(bad(&format!("a column of {:?} rows for {} documents", column_count(head), part.docs)));
            }
        }
        Ok(index)
    }
}

/// The inverted index of an open segment: what search and merges read.
#[derive(Clone, Copy)]
pub(crate) struct Inverted<'a> {
    pub(crate) sections: &'a Sections,
    pub(crate) index: &'a InvertedIndex,
    /// The segment's row count.
    pub(crate) rows: u64,
    /// Whether word columns are followed by their positions (version 5 on).
    pub(crate) positions: bool,
    /// Whether word columns' positions are followed by their impacts
    /// (version 6 on).
    pub(crate) impacts: bool,
}

impl<'a> Inverted<'a> {
    fn corrupt(&self, detail: impl Into<String>) -> Error {
        self.sections.corrupt(detail)
    }

    /// The text parts, by name.
    pub(crate) fn parts(&self) -> &'a [PartInfo] {
        &self.index.parts
    }

    /// The norms of `part` (one of [`Inverted::parts`]): its rows and their
    /// lengths in words, as many rows as the part's documents, the lengths
    /// adding up to its total.
    pub(crate) fn norms(&self, part: &PartInfo) -> Result<Postings<'a>> {
        let bytes = self.sections.read(Section::Norms, part.norms.clone())?;
        let norms = parse_column(bytes, self.rows).map_err(|e| self.corrupt(e))?;
        let total: u64 = (0..norms.rows.len() as usize).map(|rank| u64::from(norms.value(rank))).sum();
        if norms.rows.len() != part.docs || total != part.total_len {
            return Err(self.corrupt(format!(
                "part {:?} has {} documents of {} words, and norms for {} of {total}",
                part.name,
                part.docs,
                part.total_len,
                norms.rows.len()
            )));
        }
        Ok(norms)
    }

    /// The terms fst: term key → offset of its postings.
    pub(crate) fn terms(&self) -> &'a fst::Map<Slice> {
        &self.index.terms
    }

    /// The postings at `offset` in the postings section.
    pub(crate) fn postings_at(&self, offset: u64) -> Result<Postings<'a>> {
        let head = self.postings_head(offset)?;
        let bad = || self.corrupt(format!("postings at {offset} are out of place"));
        let len = column_len(head).ok_or_else(bad)? as u64;
        let to = offset.checked_add(len).filter(|&to| to <= self.sections.len(Section::Postings)).ok_or_else(bad)?;
        let bytes = self.sections.read(Section::Postings, offset..to)?;
        let mut column = parse_column(bytes, self.rows).map_err(|e| self.corrupt(e))?;
        column.end = to;
        Ok(column)
    }

    /// The positions of `word`'s column (one read from
    /// [`Inverted::postings_at`] or [`Inverted::postings`] with a word's
    /// key), which follow it in the `postings` section; `None` in a segment
    /// written before version 5, which has none.
    pub(crate) fn positions(&self, word: &Postings<'a>) -> Result<Option<Positions<'a>>> {
        if !self.positions {
            return Ok(None);
        }
        let (bytes, _) = self.sized(word.end, "positions")?;
        Ok(Some(Positions { bytes, at: 0 }))
    }

    /// The impacts of `word`'s column (see [`Inverted::positions`]), which
    /// follow its positions; `None` in a segment written before version 6,
    /// which has none. A column of at most [`IMPACT_BLOCK`] rows has no
    /// blocks.
    pub(crate) fn impacts(&self, word: &Postings<'a>) -> Result<Option<Impacts<'a>>> {
        if !self.impacts {
            return Ok(None);
        }
        let (_, end) = self.sized(word.end, "positions")?;
        let (bytes, _) = self.sized(end, "impacts")?;
        let rows = word.rows.len() as usize;
        let left = if rows > IMPACT_BLOCK { rows.div_ceil(IMPACT_BLOCK) } else { 0 };
        Ok(Some(Impacts { bytes, at: 0, left, last: None }))
    }

    /// Where `word`'s impacts are in the postings section (for tests that
    /// damage them).
    #[cfg(test)]
    pub(crate) fn impacts_range(&self, word: &Postings<'a>) -> Result<std::ops::Range<u64>> {
        let (_, end) = self.sized(word.end, "positions")?;
        let (bytes, to) = self.sized(end, "impacts")?;
        Ok(to - bytes.len() as u64..to)
    }

    /// The bytes at `at` in the postings section that a varint length
    /// prefixes, and where they end.
    fn sized(&self, at: u64, what: &str) -> Result<(&'a [u8], u64)> {
        let end = self.sections.len(Section::Postings);
        let bad = || self.corrupt(format!("the {what} at {at} are out of place"));
        if at >= end {
            return Err(bad());
        }
        let head = self.sections.read(Section::Postings, at..end.min(at + 10))?;
        let mut skip = 0;
        let len = get_varint(head, &mut skip).ok_or_else(bad)?;
        let from = at + skip as u64;
        let to = from.checked_add(len).filter(|&to| to <= end).ok_or_else(bad)?;
        Ok((self.sections.read(Section::Postings, from..to)?, to))
    }

    /// The (verified) bytes at `offset` in the postings section that a
    /// column's header can take, fewer at the section's end.
    fn postings_head(&self, offset: u64) -> Result<&'a [u8]> {
        let end = self.sections.len(Section::Postings);
        if offset >= end {
            return Err(self.corrupt(format!("postings at {offset} are out of place")));
        }
        self.sections.read(Section::Postings, offset..end.min(offset + 32))
    }

    /// How many rows the term with key `key` is in (deleted ones too),
    /// read from its postings' header alone; `None` if the segment does
    /// not hold it.
    pub(crate) fn postings_count(&self, key: &[u8]) -> Result<Option<u64>> {
        let Some(offset) = self.term_offset(key)? else { return Ok(None) };
        let count = column_count(self.postings_head(offset)?)
            .filter(|&n| n <= self.rows)
            .ok_or_else(|| self.corrupt(format!("the postings at {offset} have a damaged header")))?;
        Ok(Some(count))
    }

    /// The postings of the term with key `key` (see [`term_key`]), if the
    /// segment holds it.
    pub(crate) fn postings(&self, key: &[u8]) -> Result<Option<Postings<'a>>> {
        self.term_offset(key)?.map(|offset| self.postings_at(offset)).transpose()
    }

    /// Where the postings of the term with key `key` are: words in the
    /// terms fst, meta values in the metas table.
    fn term_offset(&self, key: &[u8]) -> Result<Option<u64>> {
        match key.split_first() {
            Some((&META, key)) => self.meta_offset(key),
            _ => Ok(self.index.terms.get(key)),
        }
    }

    /// The `metas` section's block count and where its block index starts.
    fn meta_index(&self) -> Result<(u64, u64)> {
        let len = self.sections.len(Section::Metas);
        let bad = || self.corrupt("the metas table's block index is damaged");
        let last = len.checked_sub(8).ok_or_else(bad)?;
        let count = le_u64(self.sections.read(Section::Metas, last..len)?, 0);
        let index = count.checked_mul(8).and_then(|n| last.checked_sub(n)).ok_or_else(bad)?;
        Ok((count, index))
    }

    /// The postings offset of meta term `key` (without its kind byte): a
    /// binary search over the blocks' first keys, then a scan of one block.
    fn meta_offset(&self, key: &[u8]) -> Result<Option<u64>> {
        let at = self.meta_index()?;
        let Some(block) = self.blocks_up_to(at, key)?.checked_sub(1) else { return Ok(None) };
        let mut found = None;
        self.sections.front_coded_block(Section::Metas, at, block, true, &mut |k, offset| {
            if k == key {
                found = Some(offset);
            }
            k < key
        })?;
        Ok(found)
    }

    /// How many blocks of the metas table begin with a key <= `key` (a
    /// binary search over the blocks' first keys): `key` is in the last of
    /// them, if anywhere.
    fn blocks_up_to(&self, at: (u64, u64), key: &[u8]) -> Result<u64> {
        let (mut lo, mut hi) = (0, at.0);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let mut first_le = false;
            self.sections.front_coded_block(Section::Metas, at, mid, true, &mut |k, _| {
                first_le = k <= key;
                false
            })?;
            if first_le {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// The meta terms in key order, a block at a time.
    pub(crate) fn meta_terms(&self) -> Result<MetaTerms<'a>> {
        self.meta_terms_from(&[])
    }

    /// The meta terms in key order from the block that would hold `key`
    /// (keys below it may come first: the caller skips them).
    pub(crate) fn meta_terms_from(&self, key: &[u8]) -> Result<MetaTerms<'a>> {
        let at = self.meta_index()?;
        let block = self.blocks_up_to(at, key)?.saturating_sub(1);
        Ok(MetaTerms { inv: *self, at, block, keys: Vec::new(), entries: Vec::new(), next: 0 })
    }

    /// Reads the whole inverted index: every part's norms and every term's
    /// postings, checking each as a search would. Returns how many
    /// (term, row) postings there are.
    pub(crate) fn check(&self) -> Result<u64> {
        let mut norms = Vec::with_capacity(self.parts().len());
        for part in self.parts() {
            norms.push((part.name.as_bytes(), self.norms(part)?));
        }
        let mut total = 0;
        let mut stream = self.index.terms.stream();
        use fst::Streamer;
        let mut scratch = Vec::new();
        // For the impacts: each part's lengths by row, once a word of it
        // has impacts.
        let mut lens: Vec<(Vec<u8>, Vec<u32>)> = Vec::new();
        let (mut column, mut writer, mut scratch_bytes) = (Column::default(), ImpactWriter::default(), Vec::new());
        while let Some((key, offset)) = stream.next() {
            let postings = self.postings_at(offset)?;
            total += postings.rows.len();
            let Some(mut positions) = self.positions(&postings)? else { continue };
            // Each row's positions: as many as its frequency, rising, below
            // the length of the row's part; and nothing after the last row's.
            let name = key.get(1..).and_then(|k| k.split(|&b| b == 0).next()).unwrap_or_default();
            let bad = |what: String| self.corrupt(format!("the positions of the word column at {offset}: {what}"));
            let part = norms.iter().find(|(n, _)| *n == name).map(|(_, norms)| norms);
            for (rank, row) in postings.rows.iter().enumerate() {
                let Some(len) = part.filter(|norms| norms.rows.contains(row)).map(|norms| {
                    norms.value((norms.rows.rank(row) - 1) as usize)
                }) else {
                    return Err(bad(format!("row {row} does not have the word's part")));
                };
                scratch.clear();
                positions.read(postings.value(rank), &mut scratch).map_err(bad)?;
                if scratch.last().is_some_and(|&last| last >= len) {
                    return Err(bad(format!("row {row} has a position past its part's {len} words")));
                }
            }
            if !positions.at_end() {
                return Err(bad("bytes after the last row's".to_string()));
            }
            // The impacts: exactly what the writer makes of the column.
            if let Some(mut impacts) = self.impacts(&postings)? {
                let bad = |what: String| self.corrupt(format!("the impacts of the word column at {offset}: {what}"));
                let mut pairs = Vec::new();
                while impacts.next_block(&mut pairs).map_err(bad)?.is_some() {}
                let at = match lens.iter().position(|(n, _)| *n == name) {
                    Some(at) => at,
                    None => {
                        let mut dense = Vec::new();
                        if let Some(norms) = part {
                            dense = vec![0; norms.rows.max().map_or(0, |max| max as usize + 1)];
                            for (rank, row) in norms.rows.iter().enumerate() {
                                dense[row as usize] = norms.value(rank);
                            }
                        }
                        lens.push((name.to_vec(), dense));
                        lens.len() - 1
                    }
                };
                column.clear();
                for (rank, row) in postings.rows.iter().enumerate() {
                    column.push(row, postings.value(rank));
                }
                writer.encode(&column, &lens[at].1, &mut scratch_bytes);
                if writer.bytes != impacts.bytes {
                    return Err(self.corrupt(format!("the impacts of the word column at {offset} are not its rows'")));
                }
            }
        }
        let mut metas = self.meta_terms()?;
        while let Some((_, offset)) = metas.next_term()? {
            total += self.postings_at(offset)?.rows.len();
        }
        Ok(total)
    }
}

/// A segment's meta terms (keys without the kind byte) with their
/// postings offsets, in key order, decoded a block at a time.
pub(crate) struct MetaTerms<'a> {
    inv: Inverted<'a>,
    at: (u64, u64),
    block: u64,
    /// The current block's keys, one after the other, and per entry the
    /// end of its key and its postings offset.
    keys: Vec<u8>,
    entries: Vec<(usize, u64)>,
    next: usize,
}

impl MetaTerms<'_> {
    /// The next term, valid until the next call.
    pub(crate) fn next_term(&mut self) -> Result<Option<(&[u8], u64)>> {
        if self.peek()?.is_none() {
            return Ok(None);
        }
        self.next += 1;
        let (start, (end, offset)) = (self.start(self.next - 1), self.entries[self.next - 1]);
        Ok(Some((&self.keys[start..end], offset)))
    }

    fn start(&self, entry: usize) -> usize {
        entry.checked_sub(1).map_or(0, |e| self.entries[e].0)
    }

    /// The next term without moving past it.
    pub(crate) fn peek(&mut self) -> Result<Option<&[u8]>> {
        while self.next == self.entries.len() {
            if self.block == self.at.0 {
                return Ok(None);
            }
            let (keys, entries) = (&mut self.keys, &mut self.entries);
            keys.clear();
            entries.clear();
            self.inv.sections.front_coded_block(Section::Metas, self.at, self.block, true, &mut |k, offset| {
                keys.extend_from_slice(k);
                entries.push((keys.len(), offset));
                true
            })?;
            self.next = 0;
            self.block += 1;
        }
        Ok(Some(&self.keys[self.start(self.next)..self.entries[self.next].0]))
    }
}

/// A column read back: rows, and a value by rank.
pub(crate) struct Postings<'a> {
    pub rows: RoaringBitmap,
    width: u8,
    values: &'a [u8],
    /// Where the column ends in its section (where a word's positions
    /// start).
    end: u64,
}

/// A word column's positions read back, row after row: each row's
/// `freq` positions (its value in the column), the first as a varint,
/// then each one's distance to the one before, less one.
pub(crate) struct Positions<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Positions<'a> {
    /// Appends the next row's `freq` positions to `out`, strictly
    /// increasing.
    pub(crate) fn read(&mut self, freq: u32, out: &mut Vec<u32>) -> std::result::Result<(), String> {
        let mut prev: Option<u32> = None;
        for _ in 0..freq {
            let delta = get_varint(self.bytes, &mut self.at).ok_or("the positions run past their end")?;
            let position = match prev {
                None => u32::try_from(delta).ok(),
                Some(prev) => u32::try_from(delta).ok().and_then(|d| prev.checked_add(d)).and_then(|p| p.checked_add(1)),
            };
            let position = position.ok_or("a position past 2^32")?;
            out.push(position);
            prev = Some(position);
        }
        Ok(())
    }

    /// The next row's `freq` positions, as they are encoded (a row's on
    /// their own: its first position absolute).
    pub(crate) fn raw(&mut self, freq: u32) -> std::result::Result<&'a [u8], String> {
        let start = self.at;
        self.skip(freq)?;
        Ok(&self.bytes[start..self.at])
    }

    /// Skips the next row's `freq` positions.
    pub(crate) fn skip(&mut self, freq: u32) -> std::result::Result<(), String> {
        for _ in 0..freq {
            loop {
                let byte = *self.bytes.get(self.at).ok_or("the positions run past their end")?;
                self.at += 1;
                if byte & 0x80 == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Whether every byte was read.
    pub(crate) fn at_end(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// A word column's impacts read back (version 6 on), a block at a time
/// (see [`ImpactWriter`]).
pub(crate) struct Impacts<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Blocks not read yet.
    left: usize,
    /// The last row of the block read last.
    last: Option<u32>,
}

impl Impacts<'_> {
    /// The next block's last row, with its (frequency, length) pairs in
    /// `pairs`; `None` after the last block.
    pub(crate) fn next_block(&mut self, pairs: &mut Vec<(u32, u32)>) -> std::result::Result<Option<u32>, String> {
        if self.left == 0 {
            return match self.at == self.bytes.len() {
                true => Ok(None),
                false => Err("bytes after the last block's impacts".into()),
            };
        }
        self.left -= 1;
        let (bytes, at) = (self.bytes, &mut self.at);
        let mut num = || {
            get_varint(bytes, at).and_then(|n| u32::try_from(n).ok()).ok_or("the impacts run past their end")
        };
        let delta = num()?;
        let last = match self.last {
            None => delta,
            Some(prev) if delta > 0 => prev.checked_add(delta).ok_or("a block's last row past 2^32")?,
            Some(_) => return Err("impact blocks out of order".into()),
        };
        let count = num()? as usize;
        if count == 0 || count > IMPACT_BLOCK {
            return Err(format!("a block with {count} impacts"));
        }
        pairs.clear();
        for _ in 0..count {
            pairs.push((num()?, num()?));
        }
        self.last = Some(last);
        Ok(Some(last))
    }
}

impl Postings<'_> {
    /// The value of the `rank`-th row (0-based).
    #[inline(always)]
    pub fn value(&self, rank: usize) -> u32 {
        value_at(self.width, self.values, rank)
    }

    /// The width of a value in bytes (0: every value is 1).
    pub fn width(&self) -> u8 {
        self.width
    }

    /// The raw values, `width` bytes each, in row order.
    pub fn raw_values(&self) -> &[u8] {
        self.values
    }
}

/// Value `rank` of `values`, `width` bytes each (0: every value is 1).
#[inline(always)]
pub(crate) fn value_at(width: u8, values: &[u8], rank: usize) -> u32 {
    match width {
        0 => 1,
        1 => u32::from(values[rank]),
        2 => u32::from(u16::from_le_bytes([values[2 * rank], values[2 * rank + 1]])),
        _ => {
            let at = 4 * rank;
            u32::from_le_bytes([values[at], values[at + 1], values[at + 2], values[at + 3]])
        }
    }
}

/// The row count of the column at the start of `bytes` (which may run
/// past it), from its header.
pub(crate) fn column_count(bytes: &[u8]) -> Option<u64> {
    get_varint(bytes, &mut 0)
}

/// The bytes a column at the start of `bytes` needs, from its header, or
/// `None` if the header is damaged. `bytes` may run past the column.
pub(crate) fn column_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    let count = get_varint(bytes, &mut at)?;
    let width = *bytes.get(at)?;
    at += 1;
    let bitmap = get_varint(bytes, &mut at)?;
    if !matches!(width, 0 | 1 | 2 | 4) {
        return None;
    }
    let values = count.checked_mul(u64::from(width))?;
    usize::try_from(bitmap.checked_add(values)?.checked_add(at as u64)?).ok()
}

/// Parses the column that exactly fills `bytes`; `rows` bounds its rows.
pub(crate) fn parse_column(bytes: &[u8], rows: u64) -> std::result::Result<Postings<'_>, String> {
    let mut at = 0;
    let bad = |what: &str| format!("a search column is damaged: {what}");
    let count = get_varint(bytes, &mut at).ok_or_else(|| bad("no count"))?;
    let width = *bytes.get(at).ok_or_else(|| bad("no width"))?;
    if !matches!(width, 0 | 1 | 2 | 4) {
        // Any other width would index values out of bounds.
        return Err(bad(&format!("a value width of {width} bytes")));
    }
    at += 1;
    let len = get_varint(bytes, &mut at).ok_or_else(|| bad("no bitmap length"))? as usize;
    let raw = bytes.get(at..at.saturating_add(len)).ok_or_else(|| bad("the rows run past the end"))?;
    let rows_bitmap = if count <= SMALL_COLUMN as u64 {
        let (mut pos, mut prev) = (0, None::<u32>);
        let mut small = RoaringBitmap::new();
        for _ in 0..count {
            let delta = get_varint(raw, &mut pos).ok_or_else(|| bad("a row runs past the end"))?;
            let row = match prev {
                None => u32::try_from(delta).ok(),
                Some(prev) => u32::try_from(delta).ok().filter(|&d| d > 0).and_then(|d| prev.checked_add(d)),
            };
            let row = row.ok_or_else(|| bad("rows out of order"))?;
            small.insert(row);
            prev = Some(row);
        }
        if pos != raw.len() {
            return Err(bad("bytes after the rows"));
        }
        small
    } else {
        RoaringBitmap::deserialize_from(io::Cursor::new(raw)).map_err(|e| bad(&e.to_string()))?
    };
    let values = &bytes[at + len..];
    if rows_bitmap.len() != count
        || rows_bitmap.max().is_some_and(|max| u64::from(max) >= rows)
        || Some(values.len() as u64) != count.checked_mul(u64::from(width))
    {
        return Err(bad("its rows, count and values disagree"));
    }
    Ok(Postings { rows: rows_bitmap, width, values, end: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_with_a_width_no_writer_uses_is_damage_not_a_panic() {
        let column = Column { rows: vec![1, 5, 9], values: vec![300, 7, 9], ..Column::default() };
        let mut bytes = Vec::new();
        column.encode(&mut bytes, true, false);
        assert_eq!(bytes[1], 2, "count 3 (one byte), then the width");
        for width in [3u8, 5, 8, 255] {
            // Values sized for the hostile width, so that only the width is wrong.
            let mut hostile = bytes[..bytes.len() - 6].to_vec();
            hostile[1] = width;
            hostile.extend(std::iter::repeat_n(0xAB, 3 * usize::from(width)));
            let error = parse_column(&hostile, 1 << 20).err().expect("a bad width is refused");
            assert!(error.contains("width"), "{error}");
            assert_eq!(column_len(&hostile), None);
        }
    }

    #[test]
    fn columns_round_trip_at_every_width() {
        let many: Vec<u32> = (0..40).map(|i| i % 3 + 1).collect();
        for values in [vec![1, 1, 1], vec![3, 1, 200], vec![1, 300, 7], vec![70_000, 1, 2], vec![], vec![5], many] {
            let rows: Vec<u32> = (0..values.len() as u32).map(|i| i * 1000 + 5).collect();
            let column = Column { rows: rows.clone(), values: values.clone(), ..Column::default() };
            let mut bytes = Vec::new();
            column.encode(&mut bytes, true, false);
            assert_eq!(column_len(&bytes), Some(bytes.len()));
            let read = parse_column(&bytes, 1 << 20).unwrap();
            assert_eq!(read.rows.iter().collect::<Vec<_>>(), rows);
            let got: Vec<u32> = (0..values.len()).map(|r| read.value(r)).collect();
            assert_eq!(got, values);
            assert!(parse_column(&bytes, 1).is_err() || rows.is_empty());
        }
    }

    #[test]
    fn sorting_merges_runs_with_their_positions() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..500 {
            // Rows 0..n dealt to a few inputs, each input's in order, as a
            // merge gathers them; every row with 1–3 positions.
            let n = next(60) as u32;
            let inputs = 1 + next(5) as usize;
            let mut dealt: Vec<Vec<u32>> = vec![Vec::new(); inputs];
            for row in 0..n {
                dealt[next(inputs as u64) as usize].push(row);
            }
            let positions = |row: u32| (0..1 + row % 3).map(move |k| row * 10 + k * (row % 7 + 1)).collect::<Vec<_>>();
            let (mut with, mut without) = (Column::default(), Column::default());
            for row in dealt.iter().flatten().copied() {
                for p in positions(row) {
                    with.bump_at(row, p);
                }
                without.push(row, row + 1);
            }
            with.sort();
            without.sort();
            let want: Vec<u32> = (0..n).collect();
            assert_eq!(with.rows, want);
            assert_eq!(without.rows, want);
            assert_eq!(without.values, want.iter().map(|r| r + 1).collect::<Vec<_>>());
            let mut reread = Positions { bytes: &with.raw, at: 0 };
            for (rank, &row) in with.rows.iter().enumerate() {
                assert_eq!(with.values[rank] as usize, positions(row).len());
                let mut got = Vec::new();
                reread.read(with.values[rank], &mut got).unwrap();
                assert_eq!(got, positions(row), "row {row}");
                assert_eq!(with.raw_ends[rank], reread.at);
            }
        }
    }

    /// A word's impacts: per block of 128 rows, its last row and exactly
    /// the pairs no other row of the block beats on both counts (against a
    /// brute force), by frequency decreasing; a column of 128 rows has
    /// none; every cut of the bytes is an error, never a panic.
    #[test]
    fn sorting_by_head_is_sorting_by_head_then_tie() {
        // Heads drawn from few values per byte, so that buckets nest deep,
        // many heads tie, and some buckets fall under RADIX_MIN.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in [0, 1, 2, RADIX_MIN - 1, RADIX_MIN, 300, 5000] {
            let mut items: Vec<Headed> = (0..n as u32)
                .map(|id| {
                    let mut term: Vec<u8> = (0..16).map(|_| b'0' + (next() % 3) as u8 * (next() % 2) as u8).collect();
                    if next() % 4 == 0 {
                        term.truncate(8);
                    }
                    Headed::new(&term, id)
                })
                .collect();
            // Ties broken by the id, backwards.
            let tie = |a: u32, b: u32| b.cmp(&a);
            let mut want = items.clone();
            want.sort_by(|a, b| a.head().cmp(&b.head()).then_with(|| tie(a.id, b.id)));
            let mut scratch = vec![Headed::default(); items.len()];
            sort_by_head(&mut items, &mut scratch, 0, &tie);
            assert_eq!(items, want, "{n} items");
        }
    }

    #[test]
    fn impacts_are_each_blocks_unbeaten_pairs() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n) as u32
        };
        for count in [1, 128, 129, 256, 1_000, 5_000] {
            let mut column = Column::default();
            let mut lens = Vec::new();
            let mut row = 0;
            for _ in 0..count {
                row += 1 + next(3);
                let freq = match next(10) {
                    0 => 2 + next(40),
                    1 => 2,
                    _ => 1,
                };
                column.push(row, freq);
                lens.resize(row as usize + 1, 0);
                lens[row as usize] = freq + next(200);
            }
            let mut out = Vec::new();
            ImpactWriter::default().encode(&column, &lens, &mut out);
            let mut at = 0;
            let len = get_varint(&out, &mut at).unwrap() as usize;
            assert_eq!(at + len, out.len());
            let blocks = if count > IMPACT_BLOCK { count.div_ceil(IMPACT_BLOCK) } else { 0 };
            let read = |bytes| Impacts { bytes, at: 0, left: blocks, last: None };
            let mut impacts = read(&out[at..]);
            let mut pairs = Vec::new();
            for b in 0..blocks {
                let range = b * IMPACT_BLOCK..((b + 1) * IMPACT_BLOCK).min(count);
                assert_eq!(impacts.next_block(&mut pairs).unwrap(), Some(column.rows[range.end - 1]), "block {b}");
                let all: Vec<(u32, u32)> =
                    range.map(|i| (column.values[i], lens[column.rows[i] as usize])).collect();
                let mut unbeaten: Vec<(u32, u32)> = all
                    .iter()
                    .copied()
                    .filter(|&(f, l)| !all.iter().any(|&(g, m)| g >= f && m <= l && (g, m) != (f, l)))
                    .collect();
                unbeaten.sort_unstable_by(|a, b| b.cmp(a));
                unbeaten.dedup();
                assert_eq!(pairs, unbeaten, "block {b} of {count}");
            }
            assert_eq!(impacts.next_block(&mut pairs).unwrap(), None);
            if blocks > 0 {
                for cut in 0..len {
                    let mut impacts = read(&out[at..at + cut]);
                    let failed = (0..=blocks).any(|_| impacts.next_block(&mut pairs).is_err());
                    assert!(failed, "{count} rows cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn positions_round_trip_after_their_column() {
        // Rows out of order, as a merge gathers them: sorting moves each
        // row's positions with it.
        let mut column = Column::default();
        let rows = [(40u32, vec![0u32, 1, 2, 200]), (3, vec![7]), (900, vec![0, 127, 128, 100_000, 4_000_000_000]), (5, vec![1, 3])];
        for (row, positions) in &rows {
            for &position in positions {
                column.bump_at(*row, position);
            }
        }
        column.sort();
        let mut bytes = Vec::new();
        column.encode(&mut bytes, true, true);
        let len = column_len(&bytes).unwrap();
        let mut read = parse_column(&bytes[..len], 1 << 20).unwrap();
        read.end = len as u64;
        let mut at = 0;
        let positions_len = get_varint(&bytes[len..], &mut at).unwrap() as usize;
        assert_eq!(len + at + positions_len, bytes.len(), "the positions' length, then the positions");
        let mut positions = Positions { bytes: &bytes[len + at..], at: 0 };
        let mut sorted = rows.to_vec();
        sorted.sort();
        for (rank, (row, want)) in sorted.iter().enumerate() {
            assert_eq!(read.rows.iter().nth(rank), Some(*row));
            let mut got = Vec::new();
            positions.read(read.value(rank), &mut got).unwrap();
            assert_eq!(&got, want, "row {row}");
        }
        assert!(positions.at_end());
        // Skipping reads as far as reading.
        let mut skipped = Positions { bytes: &bytes[len + at..], at: 0 };
        for rank in 0..sorted.len() {
            skipped.skip(read.value(rank)).unwrap();
        }
        assert!(skipped.at_end());
        // Cut short, or a position past 2^32: refused, not a panic.
        let mut cut = Positions { bytes: &bytes[len + at..bytes.len() - 1], at: 0 };
        let mut out = Vec::new();
        let results: Vec<_> = (0..sorted.len()).map(|rank| cut.read(read.value(rank), &mut out)).collect();
        assert!(results.iter().any(|r| r.is_err()));
        let mut past = Positions { bytes: &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x05], at: 0 };
        assert!(past.read(2, &mut out).is_err());
    }
}
