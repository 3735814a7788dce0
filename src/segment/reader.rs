//! Reading a segment file: [`Segment::open`] checks the footer and every
//! section it can check without reading the heaps; lookups, rows, URIs by
//! ordinal and ordered iteration ([`SegmentIter`]) read the rest, each
//! 64 KiB block verified on first use; [`Segment::verify_all`] reads it all.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::Path;

use fst::Streamer;

use crate::bloom;
use crate::error::{Error, Result};
use crate::storage::{Storage, StorageFile};
use crate::uri::prefix_successor;

use super::format::{
    le_u32, le_u64, parse_footer, Section, Sections, Slice, BLOCK, BLOCKED, NAMES_BLOCK, NO_URIS_VERSION, ROW_BODY_LEN, ROW_BODY_OFF,
    ROW_BYTES, ROW_SERIAL, ROW_STAMP_LEN, ROW_STAMP_OFF, WHOLE,
};
use super::postings::{Inverted, InvertedIndex, PartInfo, Postings};

/// An open segment.
pub struct Segment {
    name: String,
    version: u32,
    sections: Sections,
    /// The `uris` fst of versions 3 to 6, which only [`Segment::verify_all`]
    /// reads (against the `names` section); none from version 7 on.
    uris: Option<fst::Map<Slice>>,
    inverted: InvertedIndex,
    rows: u64,
    min_serial: u64,
    max_serial: u64,
    /// The crc32c of each whole section that the footer holds and open
    /// does not check (the block-checked ones, from version 4 on), for
    /// [`Segment::verify_all`].
    whole_crcs: [Option<u32>; Section::COUNT],
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment").field("name", &self.name).field("rows", &self.rows).finish()
    }
}

/// One row of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row<'a> {
    /// The serial of the operation that wrote this version.
    pub serial: u64,
    /// The stamp.
    pub stamp: &'a str,
    /// The encoded body.
    pub body: &'a [u8],
}

/// The crc32c of bytes `range` of `file`, read in chunks.
fn file_crc(file: &dyn StorageFile, range: Range<usize>) -> Result<u32> {
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; CHUNK.min(range.len())];
    let (mut crc, mut at) = (0u32, range.start);
    while at < range.end {
        let n = CHUNK.min(range.end - at);
        file.read_at(at as u64, &mut buf[..n])?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        at += n;
    }
    Ok(crc)
}

impl Segment {
    /// Maps segment `name` and checks its footer (docs/FORMAT.md, "Checks"),
    /// its block-checksum table, its `uris`, `bloom`, `terms` and `parts`
    /// sections, and the `metas` block index. A missing file is `Corrupt`
    /// (a manifest names it).
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedVersion`] for a segment of a format version
    /// outside [`super::SUPPORTED`], [`Error::Corrupt`] for damage,
    /// [`Error::Io`].
    pub fn open(storage: &dyn Storage, name: &str) -> Result<Segment> {
        let path = storage.root().join(name);
        let map = match storage.map(name) {
            Ok(map) => map,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::corrupt(&path, "the segment file is missing"));
            }
            Err(e) => return Err(Error::Io(e)),
        };
        let footer = parse_footer((*map).as_ref()).map_err(|e| e.at(&path))?;
        // Verified in full before fst (which trusts its input) walks it.
        // Read through the file, not the map: the pages stay in the page
        // cache without counting in this process's resident memory until
        // lookups touch them.
        let file = storage.open(name)?;
        for s in WHOLE {
            let want = footer.crcs[s.index()].expect("every version keeps the crc of a whole-checked section");
            let range = footer.section(s);
            let got = file_crc(file.as_ref(), range.start as usize..range.end as usize)?;
            if want != got {
                return Err(Error::corrupt(&path, format!("{s} section crc32c is {got:#010x}, expected {want:#010x}")));
            }
        }
        let sections = Sections::new(&path, map, &footer);
        let rows = footer.rows;
        // From version 7 on the section is empty (`parse_footer` checked).
        let uris = if footer.version < NO_URIS_VERSION {
            let uris = fst::Map::new(sections.slice(Section::Uris))
                .map_err(|e| sections.corrupt(format!("the uris section is not an fst: {e}")))?;
            if uris.len() as u64 != rows {
                return Err(sections.corrupt(format!("the uris section holds {} URIs for {rows} rows", uris.len())));
            }
            Some(uris)
        } else {
            None
        };
        let inverted = InvertedIndex::open(&sections, rows)?;
        let mut whole_crcs = footer.crcs;
        for s in WHOLE {
            whole_crcs[s.index()] = None;
        }
        Ok(Segment {
            name: name.to_string(),
            version: footer.version,
            sections,
            uris,
            inverted,
            rows,
            min_serial: footer.min_serial,
            max_serial: footer.max_serial,
            whole_crcs,
        })
    }

    /// The file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's path, for errors.
    pub fn path(&self) -> &Path {
        self.sections.path()
    }

    /// The format version the file was written in.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// How many rows the segment holds.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The smallest serial of a row (0 when empty).
    pub fn min_serial(&self) -> u64 {
        self.min_serial
    }

    /// The largest serial of a row (0 when empty).
    pub fn max_serial(&self) -> u64 {
        self.max_serial
    }

    /// The size of the file.
    pub fn file_bytes(&self) -> u64 {
        self.sections.file_bytes().len() as u64
    }

    fn ordinal_checked(&self, value: u64) -> Result<u32> {
        if value >= self.rows {
            return Err(self.sections.corrupt(format!("URI ordinal {value} is past the {} rows", self.rows)));
        }
        Ok(value as u32)
    }

    /// The ordinal of `uri`, if the segment holds it. The URI filter
    /// answers most misses without a search; the other lookups search the
    /// `names` section: a binary search over its blocks' first URIs (each
    /// stored whole), then one block of 16 decoded: a few times fewer
    /// instructions than the `uris` fst of versions up to 6 cost, walked a
    /// state per byte of the URI.
    pub fn ordinal(&self, uri: &[u8]) -> Result<Option<u32>> {
        if !self.may_contain(uri) {
            return Ok(None);
        }
        self.search_names(uri)
    }

    /// [`Segment::ordinal`] without the filter.
    pub(crate) fn search_names(&self, uri: &[u8]) -> Result<Option<u32>> {
        let Some((b, block)) = self.names_block(|first| first <= uri)? else {
            return Ok(None);
        };
        match crate::frontcode::find_in_block(block, uri) {
            None => Err(self.damaged_names(b)),
            Some(None) => Ok(None),
            Some(Some(at)) => self.names_ordinal(b, at).map(Some),
        }
    }

    /// The first ordinal whose URI is `>= key` (`rows()` if none), from the
    /// `names` section: the last block whose first URI is below `key`, then
    /// that block's URIs up to the first `>= key`.
    pub fn lower_bound(&self, key: &[u8]) -> Result<u32> {
        let Some((b, block)) = self.names_block(|first| first < key)? else {
            return Ok(0);
        };
        let mut at = 0;
        crate::frontcode::decode_block(block, false, &mut |uri, _| {
            if uri >= key {
                return false;
            }
            at += 1;
            true
        })
        .ok_or_else(|| self.damaged_names(b))?;
        if at > NAMES_BLOCK {
            return Err(self.too_many_names(b));
        }
        // Past the block's URIs: the next block's first is >= key.
        Ok((b * NAMES_BLOCK as u64 + at as u64).min(self.rows) as u32)
    }

    /// The bytes of the last block of names whose first URI `before`
    /// accepts (the first URIs increase, so `before` holds for a prefix of
    /// the blocks), with its number; `None` if it accepts none.
    fn names_block<'a>(&'a self, before: impl Fn(&[u8]) -> bool) -> Result<Option<(u64, &'a [u8])>> {
        let (count, index) = self.names_blocks();
        if count == 0 {
            return Ok(None);
        }
        let offsets = self.sections.read(Section::Names, index..index + 8 * count)?;
        let mut window = Window { seg: self, start: 0, bytes: &[] };
        let mut block = |b: u64| -> Result<&'a [u8]> {
            let start = le_u64(offsets, 8 * b as usize);
            let end = if b + 1 < count { le_u64(offsets, 8 * (b + 1) as usize) } else { index };
            if start > end || end > index {
                return Err(self.damaged_names(b));
            }
            window.get(start..end, index)
        };
        let first = |bytes: &'a [u8], b: u64| crate::frontcode::first_key(bytes).ok_or_else(|| self.damaged_names(b));
        // `lo`'s first URI is accepted, `hi`'s is not (or `hi` is past the
        // last block).
        if !before(first(block(0)?, 0)?) {
            return Ok(None);
        }
        let (mut lo, mut hi) = (0, count);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if before(first(block(mid)?, mid)?) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(Some((lo, block(lo)?)))
    }

    /// The ordinal of entry `at` of names block `b`.
    fn names_ordinal(&self, b: u64, at: usize) -> Result<u32> {
        if at >= NAMES_BLOCK {
            return Err(self.too_many_names(b));
        }
        self.ordinal_checked(b * NAMES_BLOCK as u64 + at as u64)
    }

    fn damaged_names(&self, b: u64) -> Error {
        self.sections.corrupt(format!("block {b} of the names is damaged"))
    }

    fn too_many_names(&self, b: u64) -> Error {
        self.sections.corrupt(format!("block {b} of the names holds more than {NAMES_BLOCK} URIs"))
    }

    /// False if the segment certainly does not hold `uri` (its filter,
    /// verified at open, says so); true if it may.
    pub fn may_contain(&self, uri: &[u8]) -> bool {
        bloom::may_contain(self.sections.whole(Section::Bloom), uri)
    }

    /// The ordinals of the URIs that start with `prefix`.
    pub fn prefix_range(&self, prefix: &[u8]) -> Result<Range<u32>> {
        let start = self.lower_bound(prefix)?;
        let end = match prefix_successor(prefix) {
            Some(next) => self.lower_bound(&next)?,
            None => self.rows as u32,
        };
        Ok(start..end.max(start))
    }

    fn raw_row(&self, ordinal: u32) -> Result<&[u8]> {
        let at = u64::from(ordinal) * ROW_BYTES as u64;
        self.sections.read(Section::Rows, at..at + ROW_BYTES as u64)
    }

    /// The serial of a row.
    pub fn serial(&self, ordinal: u32) -> Result<u64> {
        Ok(le_u64(self.raw_row(ordinal)?, ROW_SERIAL))
    }

    /// The serial and stamp of a row, without its body: what a status
    /// lookup or an enumeration reads (the body's heap is neither touched
    /// nor verified).
    pub fn status(&self, ordinal: u32) -> Result<(u64, &str)> {
        let raw = self.raw_row(ordinal)?;
        let stamp_off = le_u64(raw, ROW_STAMP_OFF);
        let stamp_len = u64::from(le_u32(raw, ROW_STAMP_LEN));
        let end = stamp_off
            .checked_add(stamp_len)
            .ok_or_else(|| self.sections.corrupt(format!("row {ordinal} points past the end of a heap")))?;
        let stamp = self.sections.read(Section::Stamps, stamp_off..end)?;
        let stamp = std::str::from_utf8(stamp)
            .map_err(|_| self.sections.corrupt(format!("the stamp of row {ordinal} is not UTF-8")))?;
        Ok((le_u64(raw, ROW_SERIAL), stamp))
    }

    /// A whole row.
    pub fn row(&self, ordinal: u32) -> Result<Row<'_>> {
        let raw = self.raw_row(ordinal)?;
        let serial = le_u64(raw, ROW_SERIAL);
        let (stamp_off, body_off) = (le_u64(raw, ROW_STAMP_OFF), le_u64(raw, ROW_BODY_OFF));
        let (stamp_len, body_len) = (u64::from(le_u32(raw, ROW_STAMP_LEN)), u64::from(le_u32(raw, ROW_BODY_LEN)));
        let overflow = || self.sections.corrupt(format!("row {ordinal} points past the end of a heap"));
        let stamp =
            self.sections.read(Section::Stamps, stamp_off..stamp_off.checked_add(stamp_len).ok_or_else(overflow)?)?;
        let body =
            self.sections.read(Section::Bodies, body_off..body_off.checked_add(body_len).ok_or_else(overflow)?)?;
        let stamp = std::str::from_utf8(stamp)
            .map_err(|_| self.sections.corrupt(format!("the stamp of row {ordinal} is not UTF-8")))?;
        Ok(Row { serial, stamp, body })
    }

    /// The URI of row `ordinal`, from the front-coded `names` section.
    pub fn uri_at(&self, ordinal: u32) -> Result<Vec<u8>> {
        if u64::from(ordinal) >= self.rows {
            return Err(self.sections.corrupt(format!("no URI has ordinal {ordinal}: past the last row")));
        }
        let block = u64::from(ordinal) / NAMES_BLOCK as u64;
        let (mut skip, mut uri) = (ordinal as usize % NAMES_BLOCK, None);
        self.sections.front_coded_block(Section::Names, self.names_blocks(), block, false, &mut |key, _| {
            if skip == 0 {
                uri = Some(key.to_vec());
            }
            skip = skip.wrapping_sub(1);
            uri.is_none()
        })?;
        uri.ok_or_else(|| self.sections.corrupt(format!("block {block} of the names has no URI {ordinal}")))
    }

    /// The `names` section's block count and where its block offsets start
    /// (open checked that the section holds them).
    fn names_blocks(&self) -> (u64, u64) {
        let blocks = self.rows.div_ceil(NAMES_BLOCK as u64);
        (blocks, self.sections.len(Section::Names) - 8 * blocks)
    }

    /// Every URI with its ordinal, in order, from the `names` section: what
    /// a merge reads, each block of names decoded once (walking the `uris`
    /// fst costs several times more per URI).
    pub fn names(&self) -> Names<'_> {
        self.names_between(0, self.rows as u32)
    }

    /// The URIs that start with `prefix` and are `>= start`, with their
    /// ordinals, in order, from the `names` section (two
    /// [`Segment::lower_bound`]s find where they start and end). What an
    /// enumeration reads.
    pub fn names_in(&self, prefix: &[u8], start: &[u8]) -> Result<Names<'_>> {
        let end = match prefix_successor(prefix) {
            Some(next) => self.lower_bound(&next)?,
            None => self.rows as u32,
        };
        let from = self.lower_bound(if start > prefix { start } else { prefix })?;
        Ok(self.names_between(from.min(end), end))
    }

    fn names_between(&self, next: u32, end: u32) -> Names<'_> {
        Names {
            seg: self,
            next,
            end,
            block: u64::MAX,
            keys: Vec::new(),
            ends: Vec::new(),
            last: Vec::new(),
            current: 0..0,
        }
    }

    /// Reads the whole segment as every reader would: every block of every
    /// block-checked section (and, from version 4 on, its whole crc), every
    /// row, the URIs of the `names` section in strictly increasing order
    /// (and, up to version 6, the `uris` fst agreeing with them), every
    /// row's serial within the footer's range, and the whole inverted index. What `Index::verify`
    /// and the writer's self-check run.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] naming the first damage found.
    pub fn verify_all(&self) -> Result<()> {
        for s in BLOCKED {
            for block in 0..self.sections.blocks(s) {
                self.sections.verify(s, block)?;
            }
            if let Some(want) = self.whole_crcs[s.index()] {
                let got = crc32c::crc32c(self.sections.read(s, 0..self.sections.len(s))?);
                if got != want {
                    return Err(self
                        .sections
                        .corrupt(format!("{s} section crc32c is {got:#010x}, expected {want:#010x}")));
                }
            }
        }
        // Every URI in order (the walk checks it), each row's serial in the
        // footer's range and, up to version 6, the fst agreeing.
        let mut uris = self.uris.as_ref().map(|uris| uris.stream());
        let mut names = self.names();
        let mut expected = 0u64;
        while let Some(name) = names.next_entry() {
            let (uri, ordinal) = name?;
            if let Some(stream) = uris.as_mut() {
                match stream.next() {
                    Some((fst_uri, fst_ordinal)) if fst_ordinal == u64::from(ordinal) && fst_uri == uri => {}
                    Some((_, fst_ordinal)) if fst_ordinal != u64::from(ordinal) => {
                        return Err(self
                            .sections
                            .corrupt(format!("the URI fst gives ordinal {fst_ordinal} where {ordinal} comes next")));
                    }
                    _ => {
                        return Err(self
                            .sections
                            .corrupt(format!("the names section and the URI fst differ at {ordinal}")));
                    }
                }
            }
            let row = self.row(ordinal)?;
            if !(self.min_serial..=self.max_serial).contains(&row.serial) {
                return Err(self.sections.corrupt(format!(
                    "row {ordinal} has serial {}, outside the footer's {}..={}",
                    row.serial, self.min_serial, self.max_serial
                )));
            }
            expected += 1;
        }
        if let Some(extra) = uris.as_mut().and_then(|stream| stream.next().map(|(_, ordinal)| ordinal)) {
            return Err(self.sections.corrupt(format!("the URI fst holds ordinal {extra} past the names")));
        }
        if expected != self.rows {
            return Err(self.sections.corrupt(format!("the names hold {expected} URIs, the footer {} rows", self.rows)));
        }
        self.check_search_index()?;
        Ok(())
    }
}

/// The inverted index (see [`super::postings`]).
impl Segment {
    /// The inverted index, for search and merges.
    /// Lets go of the pages of the file read so far, which a memory map
    /// keeps resident: a merge reading whole segments calls it as it goes,
    /// so that its inputs do not all stay in the resident set.
    pub fn release_pages(&self) {
        self.sections.release_pages();
    }

    pub(crate) fn inverted(&self) -> Inverted<'_> {
        Inverted {
            sections: &self.sections,
            index: &self.inverted,
            rows: self.rows,
            positions: self.version >= super::format::POSITIONS_VERSION,
            impacts: self.version >= super::format::IMPACTS_VERSION,
        }
    }

    /// The text parts, by name.
    pub(crate) fn parts(&self) -> &[PartInfo] {
        self.inverted().parts()
    }

    /// The norms of `part` (one of [`Segment::parts`]): its rows and their
    /// lengths in words.
    pub(crate) fn norms(&self, part: &PartInfo) -> Result<Postings<'_>> {
        self.inverted().norms(part)
    }

    /// The terms fst: term key → offset of its postings.
    pub(crate) fn terms(&self) -> &fst::Map<Slice> {
        self.inverted().terms()
    }

    /// The postings at `offset` in the postings section (an offset the
    /// terms fst holds).
    pub(crate) fn postings_at(&self, offset: u64) -> Result<Postings<'_>> {
        self.inverted().postings_at(offset)
    }

    /// The positions of a word's postings (read from this segment), or
    /// `None` if the segment predates positions (version 3 and 4).
    pub(crate) fn positions<'a>(&'a self, word: &Postings<'a>) -> Result<Option<super::postings::Positions<'a>>> {
        self.inverted().positions(word)
    }

    /// The impacts of a word's postings (one read with a word's key), for
    /// skipping blocks of rows that cannot make a top-k search; `None` if
    /// the segment predates them (before version 6).
    pub(crate) fn impacts<'a>(&'a self, word: &Postings<'a>) -> Result<Option<super::postings::Impacts<'a>>> {
        self.inverted().impacts(word)
    }

    /// Whether the word postings carry their impacts (version 6 on).
    pub(crate) fn has_impacts(&self) -> bool {
        self.version >= super::format::IMPACTS_VERSION
    }

    /// Whether the word postings carry their positions (version 5 on).
    pub(crate) fn has_positions(&self) -> bool {
        self.version >= super::format::POSITIONS_VERSION
    }

    /// The meta terms in key order.
    #[cfg(test)]
    pub(crate) fn meta_terms(&self) -> Result<super::postings::MetaTerms<'_>> {
        self.inverted().meta_terms()
    }

    /// The meta terms (`name`, 0, `value`: no kind byte) in key order, from
    /// the block that would hold `key` (smaller keys may come first).
    pub(crate) fn meta_terms_from(&self, key: &[u8]) -> Result<super::postings::MetaTerms<'_>> {
        self.inverted().meta_terms_from(key)
    }

    /// How many rows the term with key `key` is in (deleted ones too),
    /// read from its postings' header alone; `None` if the segment does
    /// not hold it.
    pub(crate) fn postings_count(&self, key: &[u8]) -> Result<Option<u64>> {
        self.inverted().postings_count(key)
    }

    /// The postings of the term with key `key` (see
    /// [`super::term_key`]), if the segment holds it.
    pub(crate) fn postings(&self, key: &[u8]) -> Result<Option<Postings<'_>>> {
        self.inverted().postings(key)
    }

    /// Reads the whole inverted index: every part's norms and every term's
    /// postings, checking each as a search would. Returns how many
    /// (term, row) postings there are. For tests and fuzzing.
    #[doc(hidden)]
    pub fn check_search_index(&self) -> Result<u64> {
        self.inverted().check()
    }
}

/// A stretch of the `names` section read (so verified) at once: the
/// 64 KiB blocks around the block of names a lookup last looked at. The
/// first probes of a binary search land far apart, the later ones in one
/// such stretch, which then costs no further read.
struct Window<'a> {
    seg: &'a Segment,
    /// Where `bytes` starts in the section.
    start: u64,
    bytes: &'a [u8],
}

impl<'a> Window<'a> {
    /// Bytes `range` of the section, which ends before `limit`.
    fn get(&mut self, range: Range<u64>, limit: u64) -> Result<&'a [u8]> {
        let end = self.start + self.bytes.len() as u64;
        if range.start < self.start || range.end > end {
            let block = BLOCK as u64;
            let from = range.start / block * block;
            let to = (range.end.div_ceil(block) * block).min(limit).max(range.end);
            self.bytes = self.seg.sections.read(Section::Names, from..to)?;
            self.start = from;
        }
        Ok(&self.bytes[(range.start - self.start) as usize..(range.end - self.start) as usize])
    }
}

/// A segment's URIs in ordinal order (see [`Segment::names`] and
/// [`Segment::names_in`]).
pub struct Names<'a> {
    seg: &'a Segment,
    /// The next ordinal.
    next: u32,
    /// The ordinal to stop before.
    end: u32,
    /// The block whose URIs `keys` holds (`u64::MAX`: none yet).
    block: u64,
    /// The URIs of that block, one after the other, each ending at `ends[i]`.
    keys: Vec<u8>,
    ends: Vec<usize>,
    /// The URI before the block's first, to check the order against.
    last: Vec<u8>,
    /// Where in `keys` the URI last returned is.
    current: Range<usize>,
}

impl Names<'_> {
    /// The next URI and its ordinal; the URI is valid until the next call.
    /// URIs out of order (damage behind valid checksums) are
    /// [`Error::Corrupt`], as a block that holds too few.
    #[allow(clippy::should_implement_trait)]
    pub fn next_entry(&mut self) -> Option<Result<(&[u8], u32)>> {
        let seg = self.seg;
        if self.next >= self.end {
            return None;
        }
        let block = u64::from(self.next) / NAMES_BLOCK as u64;
        if block != self.block {
            if let Err(e) = self.load(block) {
                self.next = u32::MAX;
                return Some(Err(e));
            }
        }
        let i = self.next as usize % NAMES_BLOCK;
        let Some(&end) = self.ends.get(i) else {
            self.next = u32::MAX;
            return Some(Err(seg.sections.corrupt(format!("block {block} of the names holds too few URIs"))));
        };
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let ordinal = self.next;
        self.next += 1;
        self.current = start..end;
        Some(Ok((&self.keys[start..end], ordinal)))
    }

    /// The URI that [`Names::next_entry`] returned last (empty before the
    /// first).
    pub fn key(&self) -> &[u8] {
        &self.keys[self.current.clone()]
    }

    /// Moves on to the first URI `>= key`, as far as the end the walk was
    /// given, never back: the next URI is already `>= key` if the one last
    /// returned is. The block of names in hand is kept if that URI is in it.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if the `uris` fst holds an ordinal past the rows.
    pub fn seek(&mut self, key: &[u8]) -> Result<()> {
        let ordinal = self.seg.lower_bound(key)?;
        self.next = self.next.max(ordinal.min(self.end));
        Ok(())
    }

    /// Decodes block `block`, checking that its URIs increase from the
    /// last one decoded before (the previous block's, when the walk did not
    /// skip any).
    fn load(&mut self, block: u64) -> Result<()> {
        let seg = self.seg;
        if let Some(&end) = self.ends.last() {
            let start = if self.ends.len() > 1 { self.ends[self.ends.len() - 2] } else { 0 };
            self.last.clear();
            self.last.extend_from_slice(&self.keys[start..end]);
        }
        self.keys.clear();
        self.ends.clear();
        self.current = 0..0;
        self.block = block;
        let (keys, ends, last) = (&mut self.keys, &mut self.ends, &self.last);
        let mut ordered = true;
        seg.sections.front_coded_block(Section::Names, seg.names_blocks(), block, false, &mut |key, _| {
            let previous = match ends.len() {
                0 => last.as_slice(),
                n => &keys[if n == 1 { 0 } else { ends[n - 2] }..ends[n - 1]],
            };
            ordered &= (block == 0 && ends.is_empty()) || previous < key;
            keys.extend_from_slice(key);
            ends.push(keys.len());
            ends.len() < NAMES_BLOCK
        })?;
        if !ordered {
            return Err(seg.sections.corrupt(format!("block {block} of the names holds URIs out of order")));
        }
        Ok(())
    }
}
