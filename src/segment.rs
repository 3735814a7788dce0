//! Immutable, sorted, memory-mapped segment files.
//!
//! A segment is a memtable written out in URI order: an `fst::Map` from URI
//! to ordinal (its rank), fixed-width rows by ordinal (serial, stamp and body
//! locations), and the stamp and body heaps. Because the URIs are sorted,
//! every prefix is one contiguous ordinal range, which is what makes subtree
//! deletion one bitmap range per segment. `docs/FORMAT.md` has the layout.
//!
//! A blocked Bloom filter over the URIs (`bloom`) lets a lookup skip a
//! segment that cannot hold the URI without walking its fst.
//!
//! Checksums at the right grain: the footer, the `uris` and `bloom` sections
//! and the block-checksum table are verified in full at open (fst trusts its input);
//! rows and heaps carry a crc32c per 64 KiB block, checked when a block is
//! first read.

use std::fmt;
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use fst::{IntoStreamer, Streamer};

use crate::bloom::{self, BloomBuilder};
use crate::error::{Error, Result};
use crate::inverted::{PartInfo, Postings};
use crate::storage::{Mapped, Storage, StorageFile};
use crate::uri::prefix_successor;

/// Magic number at the start of the footer.
pub const MAGIC: &[u8; 8] = b"PDXSEG\r\n";
/// The format version this code writes and reads.
pub const VERSION: u32 = 3;
/// Rows and heaps are checksummed in blocks of this many bytes.
pub const BLOCK: usize = 64 * 1024;
/// Bytes per row: serial, stamp offset, body offset (u64 each), stamp and body length (u32 each).
pub const ROW_BYTES: usize = 32;
/// Bytes of the footer.
pub const FOOTER_BYTES: usize = 256;

/// Sections in a segment file, in file order: bodies, stamps, rows, uris,
/// bloom, names, norms, postings, terms, metas, parts, crcs.
pub const SECTIONS: usize = 12;
const BODIES: usize = 0;
const STAMPS: usize = 1;
const ROWS: usize = 2;
const URIS: usize = 3;
const BLOOM: usize = 4;
const NAMES: usize = 5;
const NORMS: usize = 6;
const POSTINGS: usize = 7;
const TERMS: usize = 8;
const METAS: usize = 9;
const PARTS: usize = 10;
const CRCS: usize = 11;
/// URIs per front-coded block of the `names` section.
pub const NAMES_BLOCK: usize = 16;
/// The sections checked per 64 KiB block, in the order of the block-checksum
/// table; the others are checked whole at open.
const BLOCKED: [usize; 7] = [BODIES, STAMPS, ROWS, NAMES, NORMS, POSTINGS, METAS];
/// The whole-section checksums in the footer, in footer order.
const WHOLE: [(usize, &str); 5] =
    [(URIS, "uris"), (BLOOM, "bloom"), (TERMS, "terms"), (PARTS, "parts"), (CRCS, "crcs")];

/// Where section `s`'s block checksums are among [`BLOCKED`].
fn blocked(s: usize) -> usize {
    BLOCKED.iter().position(|&b| b == s).expect("a block-checked section")
}

/// One row to write.
#[derive(Clone, Copy, Debug)]
pub struct SegmentEntry<'a> {
    /// The URI; entries come in strictly increasing URI order.
    pub uri: &'a [u8],
    /// The serial of the operation that wrote this version.
    pub serial: u64,
    /// The stamp.
    pub stamp: &'a str,
    /// The encoded body.
    pub body: &'a [u8],
}

/// A source of entries: called once per pass, it calls `visit` for every
/// entry in URI order. Several passes let the writer stream each section
/// without buffering a whole memtable.
pub type Entries<'s> = dyn Fn(&mut dyn FnMut(SegmentEntry<'_>) -> Result<()>) -> Result<()> + 's;

/// Appends one section to the file through a buffer, keeping its
/// per-block checksums and its whole checksum.
pub(crate) struct SectionWriter<'f> {
    file: &'f dyn StorageFile,
    buf: Vec<u8>,
    start: u64,
    len: u64,
    blocks: Vec<u32>,
    block_crc: u32,
    whole_crc: u32,
}

impl<'f> SectionWriter<'f> {
    pub(crate) fn new(file: &'f dyn StorageFile, start: u64) -> SectionWriter<'f> {
        SectionWriter {
            file,
            buf: Vec::with_capacity(1 << 20),
            start,
            len: 0,
            blocks: Vec::new(),
            block_crc: 0,
            whole_crc: 0,
        }
    }

    /// The bytes put so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn put(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        self.whole_crc = crc32c::crc32c_append(self.whole_crc, bytes);
        while !bytes.is_empty() {
            let in_block = (self.len % BLOCK as u64) as usize;
            let take = bytes.len().min(BLOCK - in_block);
            self.block_crc = crc32c::crc32c_append(self.block_crc, &bytes[..take]);
            self.buf.extend_from_slice(&bytes[..take]);
            self.len += take as u64;
            bytes = &bytes[take..];
            if self.len.is_multiple_of(BLOCK as u64) {
                self.blocks.push(std::mem::take(&mut self.block_crc));
            }
            if self.buf.len() >= 1 << 20 {
                self.file.append(&self.buf)?;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Writes out the rest; returns (offset, length, block crcs, whole crc).
    pub(crate) fn finish(mut self) -> io::Result<(u64, u64, Vec<u32>, u32)> {
        if !self.len.is_multiple_of(BLOCK as u64) {
            self.blocks.push(self.block_crc);
        }
        self.file.append(&self.buf)?;
        Ok((self.start, self.len, self.blocks, self.whole_crc))
    }
}

impl Write for SectionWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.put(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a new segment's inverted index comes from.
pub(crate) enum Terms<'a> {
    /// Analysing each entry's body.
    Analyze,
    /// The merged `inputs`' own, renumbered by `remap` (`remap[i][row]`: the
    /// new ordinal of row `row` of `inputs[i]`, or `u32::MAX`), which the
    /// entries fill in as they are visited.
    Merge { inputs: Vec<&'a Segment>, remap: &'a std::cell::RefCell<Vec<Vec<u32>>> },
}

/// Writes segment file `name` from `entries` (strictly increasing URIs),
/// fsyncs the file, and returns its row count. The caller fsyncs the
/// directory.
pub fn write_segment(storage: &dyn Storage, name: &str, entries: &Entries<'_>) -> Result<u64> {
    write_segment_with(storage, name, entries, Terms::Analyze)
}

/// [`write_segment`], with the inverted index from `terms`.
pub(crate) fn write_segment_with(
    storage: &dyn Storage,
    name: &str,
    entries: &Entries<'_>,
    terms: Terms<'_>,
) -> Result<u64> {
    let file = storage.create(name)?;
    let file = file.as_ref();
    let mut at = 0u64;
    let mut sections = [(0u64, 0u64); SECTIONS];
    let mut block_crcs = Vec::new();
    let (mut rows, mut min_serial, mut max_serial) = (0u64, u64::MAX, 0u64);

    // Pass 1: bodies; also checks the order, counts the rows and, at a
    // flush, analyses the bodies.
    let mut w = SectionWriter::new(file, at);
    let mut prev: Option<Vec<u8>> = None;
    let mut analyzer = matches!(terms, Terms::Analyze).then(crate::inverted::Analyzer::default);
    entries(&mut |e| {
        if prev.as_deref().is_some_and(|p| p >= e.uri) {
            return Err(Error::invalid_input("segment entries must come in strictly increasing URI order"));
        }
        prev = Some(e.uri.to_vec());
        if let Some(analyzer) = analyzer.as_mut() {
            analyzer.add(rows as u32, e.body);
        }
        rows += 1;
        min_serial = min_serial.min(e.serial);
        max_serial = max_serial.max(e.serial);
        Ok(w.put(e.body)?)
    })?;
    let (off, len, crcs, _) = w.finish()?;
    sections[BODIES] = (off, len);
    block_crcs.extend(crcs);
    at += len;

    // Pass 2: stamps.
    let mut w = SectionWriter::new(file, at);
    entries(&mut |e| Ok(w.put(e.stamp.as_bytes())?))?;
    let (off, len, crcs, _) = w.finish()?;
    sections[STAMPS] = (off, len);
    block_crcs.extend(crcs);
    at += len;

    // Pass 3: rows.
    let mut w = SectionWriter::new(file, at);
    let (mut stamp_off, mut body_off) = (0u64, 0u64);
    entries(&mut |e| {
        let mut row = [0u8; ROW_BYTES];
        row[0..8].copy_from_slice(&e.serial.to_le_bytes());
        row[8..16].copy_from_slice(&stamp_off.to_le_bytes());
        row[16..24].copy_from_slice(&body_off.to_le_bytes());
        row[24..28].copy_from_slice(&len_u32(e.stamp.len())?.to_le_bytes());
        row[28..32].copy_from_slice(&len_u32(e.body.len())?.to_le_bytes());
        stamp_off += e.stamp.len() as u64;
        body_off += e.body.len() as u64;
        Ok(w.put(&row)?)
    })?;
    let (off, len, crcs, _) = w.finish()?;
    sections[ROWS] = (off, len);
    block_crcs.extend(crcs);
    at += len;

    // Pass 4: the fst, and the URI filter.
    let w = SectionWriter::new(file, at);
    let mut builder = fst::MapBuilder::new(w).map_err(fst_io)?;
    let mut bloom = BloomBuilder::new(rows);
    let mut names = crate::frontcode::Builder::new(NAMES_BLOCK);
    let mut ordinal = 0u64;
    entries(&mut |e| {
        builder.insert(e.uri, ordinal).map_err(fst_io)?;
        bloom.insert(e.uri);
        names.push(e.uri, None);
        ordinal += 1;
        Ok(())
    })?;
    let w = builder.into_inner().map_err(fst_io)?;
    let (off, len, _, uris_crc) = w.finish()?;
    sections[URIS] = (off, len);
    at += len;

    let mut w = SectionWriter::new(file, at);
    w.put(bloom.bytes())?;
    let (off, len, _, bloom_crc) = w.finish()?;
    sections[BLOOM] = (off, len);
    at += len;

    let mut w = SectionWriter::new(file, at);
    // The URIs in ordinal order, front-coded, then each block's offset.
    w.put(&names.finish())?;
    let (off, len, crcs, _) = w.finish()?;
    sections[NAMES] = (off, len);
    block_crcs.extend(crcs);
    at += len;

    // The inverted index: norms, postings, terms, parts.
    let written = match (analyzer, terms) {
        (Some(analyzer), _) => analyzer.write(file, at)?,
        (None, Terms::Merge { inputs, remap }) => crate::inverted::write_merged(&inputs, &remap.borrow(), file, at)?,
        (None, Terms::Analyze) => unreachable!("an analyzer is made for Terms::Analyze"),
    };
    let mut whole_crcs = vec![uris_crc, bloom_crc];
    for (section, (off, len, crcs, crc)) in [NORMS, POSTINGS, TERMS, METAS, PARTS].into_iter().zip(written) {
        sections[section] = (off, len);
        at += len;
        if BLOCKED.contains(&section) {
            block_crcs.extend(crcs);
        } else {
            whole_crcs.push(crc);
        }
    }

    // The block-checksum table.
    let mut w = SectionWriter::new(file, at);
    for crc in &block_crcs {
        w.put(&crc.to_le_bytes())?;
    }
    let (off, len, _, crcs_crc) = w.finish()?;
    sections[CRCS] = (off, len);

    let mut footer = Vec::with_capacity(FOOTER_BYTES);
    footer.extend_from_slice(MAGIC);
    footer.extend_from_slice(&VERSION.to_le_bytes());
    footer.extend_from_slice(&0u32.to_le_bytes());
    footer.extend_from_slice(&rows.to_le_bytes());
    footer.extend_from_slice(&(if rows == 0 { 0 } else { min_serial }).to_le_bytes());
    footer.extend_from_slice(&max_serial.to_le_bytes());
    for (off, len) in sections {
        footer.extend_from_slice(&off.to_le_bytes());
        footer.extend_from_slice(&len.to_le_bytes());
    }
    whole_crcs.push(crcs_crc);
    for crc in whole_crcs {
        footer.extend_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32c::crc32c(&footer);
    footer.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(footer.len(), FOOTER_BYTES);
    file.append(&footer)?;
    file.sync()?;
    #[cfg(debug_assertions)]
    self_check(storage, name, entries);
    Ok(rows)
}

/// In every build with debug assertions (tests, fuzzing): reopens the
/// segment just written, reads all of it, and compares every row with its
/// entry, so that no test or fuzz run can write a segment the reader
/// refuses or misreads without failing at once. A read failing with an I/O
/// error (fault injection) skips the check: the write itself succeeded.
#[cfg(debug_assertions)]
fn self_check(storage: &dyn Storage, name: &str, entries: &Entries<'_>) {
    let seg = match Segment::open(storage, name) {
        Ok(seg) => seg,
        Err(Error::Io(_)) => return,
        Err(e) => panic!("the segment writer wrote {name}, which the reader refuses: {e}"),
    };
    match seg.verify_all() {
        Ok(()) | Err(Error::Io(_)) => {}
        Err(e) => panic!("the segment writer wrote {name}, which does not read back whole: {e}"),
    }
    let mut ordinal = 0u32;
    let compared = entries(&mut |e| {
        let row = seg.row(ordinal)?;
        assert_eq!(seg.uri_at(ordinal)?, e.uri, "{name}: URI of row {ordinal}");
        assert_eq!((row.serial, row.stamp, row.body), (e.serial, e.stamp, e.body), "{name}: row {ordinal}");
        ordinal += 1;
        Ok(())
    });
    match compared {
        Ok(()) => assert_eq!(u64::from(ordinal), seg.rows(), "{name}: row count"),
        Err(Error::Io(_)) => {}
        Err(e) => panic!("{name} does not read back: {e}"),
    }
}

fn len_u32(len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::invalid_input("a stamp or body of 4 GiB or more cannot be stored"))
}

fn fst_io(e: fst::Error) -> Error {
    match e {
        fst::Error::Io(e) => Error::Io(e),
        e => Error::invalid_input(format!("segment URIs: {e}")),
    }
}

/// A section of the mapped file, as fst wants its bytes.
#[derive(Clone)]
pub(crate) struct Slice {
    map: Mapped,
    range: Range<usize>,
}

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        &(*self.map).as_ref()[self.range.clone()]
    }
}

/// An open segment.
pub struct Segment {
    name: String,
    path: PathBuf,
    map: Mapped,
    uris: fst::Map<Slice>,
    terms: fst::Map<Slice>,
    parts: Vec<PartInfo>,
    rows: u64,
    min_serial: u64,
    max_serial: u64,
    sections: [Range<usize>; SECTIONS],
    /// Block crcs of the [`BLOCKED`] sections, and whether each was
    /// verified (0 = not yet, 1 = good).
    crcs: [Vec<u32>; BLOCKED.len()],
    verified: [Vec<AtomicU8>; BLOCKED.len()],
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

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
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
    /// Maps segment `name` and checks its footer, its block-checksum table
    /// and its `uris` section. A missing file is `Corrupt` (a manifest names it).
    pub fn open(storage: &dyn Storage, name: &str) -> Result<Segment> {
        let path = storage.root().join(name);
        let corrupt = |detail: String| Error::corrupt(&path, detail);
        let map = match storage.map(name) {
            Ok(map) => map,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(corrupt("the segment file is missing".into())),
            Err(e) => return Err(Error::Io(e)),
        };
        let bytes = (*map).as_ref();
        if bytes.len() < FOOTER_BYTES {
            return Err(corrupt(format!("{} bytes is too short for a segment footer of {FOOTER_BYTES}", bytes.len())));
        }
        let footer = &bytes[bytes.len() - FOOTER_BYTES..];
        if &footer[..8] != MAGIC {
            return Err(corrupt(format!("footer magic is {:?}, expected {:?}", &footer[..8], MAGIC)));
        }
        let want = le_u32(footer, FOOTER_BYTES - 4);
        let got = crc32c::crc32c(&footer[..FOOTER_BYTES - 4]);
        if want != got {
            return Err(corrupt(format!("footer crc32c is {got:#010x}, expected {want:#010x}")));
        }
        let version = le_u32(footer, 8);
        if version != VERSION {
            return Err(corrupt(format!("format version {version}, this build reads {VERSION}")));
        }
        let rows = le_u64(footer, 16);
        let (min_serial, max_serial) = (le_u64(footer, 24), le_u64(footer, 32));
        let body_end = (bytes.len() - FOOTER_BYTES) as u64;
        let mut sections: [Range<usize>; SECTIONS] = Default::default();
        let mut expect_off = 0u64;
        for (i, section) in sections.iter_mut().enumerate() {
            let (off, len) = (le_u64(footer, 40 + 16 * i), le_u64(footer, 48 + 16 * i));
            let end = off.checked_add(len).filter(|&end| off == expect_off && end <= body_end);
            let Some(end) = end else {
                return Err(corrupt(format!("section {i} at {off}+{len} is out of place")));
            };
            *section = off as usize..end as usize;
            expect_off = end;
        }
        if expect_off != body_end {
            return Err(corrupt(format!("sections end at {expect_off}, the footer starts at {body_end}")));
        }
        if rows.checked_mul(ROW_BYTES as u64) != Some(sections[ROWS].len() as u64) || rows > u64::from(u32::MAX) {
            return Err(corrupt(format!("{rows} rows do not fit a rows section of {} bytes", sections[ROWS].len())));
        }
        if sections[BLOOM].len() != bloom::blocks_for(rows) * bloom::BLOCK_BYTES {
            return Err(corrupt(format!(
                "a URI filter of {} bytes for {rows} rows, expected {}",
                sections[BLOOM].len(),
                bloom::blocks_for(rows) * bloom::BLOCK_BYTES
            )));
        }
        if sections[METAS].len() < 8 {
            return Err(corrupt(format!("a metas section of {} bytes", sections[METAS].len())));
        }
        let name_blocks = (rows as usize).div_ceil(NAMES_BLOCK);
        if sections[NAMES].len() < 8 * name_blocks {
            return Err(corrupt(format!("a names section of {} bytes for {rows} rows", sections[NAMES].len())));
        }
        let blocks = |i: usize| sections[i].len().div_ceil(BLOCK);
        let total_blocks: usize = BLOCKED.iter().map(|&s| blocks(s)).sum();
        if sections[CRCS].len() != 4 * total_blocks {
            return Err(corrupt(format!(
                "{} bytes of block checksums for {total_blocks} blocks",
                sections[CRCS].len()
            )));
        }
        // Verified in full before fst (which trusts its input) walks it.
        // Read through the file, not the map: the pages stay in the page
        // cache without counting in this process's resident memory until
        // lookups touch them.
        let file = storage.open(name)?;
        let first_crc = FOOTER_BYTES - 4 - 4 * WHOLE.len();
        for (k, (section, what)) in WHOLE.into_iter().enumerate() {
            let want = le_u32(footer, first_crc + 4 * k);
            let got = file_crc(file.as_ref(), sections[section].clone())?;
            if want != got {
                return Err(corrupt(format!("{what} section crc32c is {got:#010x}, expected {want:#010x}")));
            }
        }
        let table = &bytes[sections[CRCS].clone()];
        let mut all = (0..total_blocks).map(|b| le_u32(table, 4 * b));
        let crcs = BLOCKED.map(|s| all.by_ref().take(blocks(s)).collect());
        let verified = BLOCKED.map(|s| (0..blocks(s)).map(|_| AtomicU8::new(0)).collect());
        let uris = fst::Map::new(Slice { map: map.clone(), range: sections[URIS].clone() })
            .map_err(|e| corrupt(format!("the uris section is not an fst: {e}")))?;
        if uris.len() as u64 != rows {
            return Err(corrupt(format!("the uris section holds {} URIs for {rows} rows", uris.len())));
        }
        let terms = fst::Map::new(Slice { map: map.clone(), range: sections[TERMS].clone() })
            .map_err(|e| corrupt(format!("the terms section is not an fst: {e}")))?;
        let parts = crate::inverted::parse_parts(&bytes[sections[PARTS].clone()], rows, sections[NORMS].len() as u64)
            .map_err(corrupt)?;
        Ok(Segment {
            name: name.to_string(),
            path,
            map,
            uris,
            terms,
            parts,
            rows,
            min_serial,
            max_serial,
            sections,
            crcs,
            verified,
        })
    }

    /// The file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's path, for errors.
    pub fn path(&self) -> &Path {
        &self.path
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
        (*self.map).as_ref().len() as u64
    }

    fn ordinal_checked(&self, value: u64) -> Result<u32> {
        if value >= self.rows {
            return Err(Error::corrupt(&self.path, format!("URI ordinal {value} is past the {} rows", self.rows)));
        }
        Ok(value as u32)
    }

    /// The ordinal of `uri`, if the segment holds it. The URI filter
    /// answers most misses without walking the fst.
    pub fn ordinal(&self, uri: &[u8]) -> Result<Option<u32>> {
        if !self.may_contain(uri) {
            return Ok(None);
        }
        self.uris.get(uri).map(|v| self.ordinal_checked(v)).transpose()
    }

    /// False if the segment certainly does not hold `uri` (its filter,
    /// verified at open, says so); true if it may.
    pub fn may_contain(&self, uri: &[u8]) -> bool {
        bloom::may_contain(&(*self.map).as_ref()[self.sections[BLOOM].clone()], uri)
    }

    /// The first ordinal whose URI is `>= key` (`rows()` if none).
    pub fn lower_bound(&self, key: &[u8]) -> Result<u32> {
        let mut stream = self.uris.range().ge(key).into_stream();
        match stream.next() {
            Some((_, v)) => self.ordinal_checked(v),
            None => Ok(self.rows as u32),
        }
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

    /// Iterates `(uri, ordinal)` over the URIs that start with `prefix` and
    /// are `>= start`, in order.
    pub fn range(&self, prefix: &[u8], start: &[u8]) -> SegmentIter<'_> {
        let from = if start > prefix { start } else { prefix };
        let builder = self.uris.range().ge(from);
        let stream = match prefix_successor(prefix) {
            Some(next) => builder.lt(next).into_stream(),
            None => builder.into_stream(),
        };
        SegmentIter { stream, seg: self }
    }

    /// The bytes `range` of section `s` (one of [`BLOCKED`]), verifying
    /// every block it touches on first use.
    fn read(&self, s: usize, range: Range<u64>) -> Result<&[u8]> {
        let section = &self.sections[s];
        let bad = || Error::corrupt(&self.path, format!("a row points at {range:?}, past section {s}"));
        if range.start > range.end || range.end > section.len() as u64 {
            return Err(bad());
        }
        let (start, end) = (range.start as usize, range.end as usize);
        if end > start {
            for block in start / BLOCK..=(end - 1) / BLOCK {
                self.verify(s, block)?;
            }
        }
        Ok(&(*self.map).as_ref()[section.start + start..section.start + end])
    }

    fn verify(&self, s: usize, block: usize) -> Result<()> {
        let b = blocked(s);
        if self.verified[b][block].load(Ordering::Relaxed) == 1 {
            return Ok(());
        }
        let section = &self.sections[s];
        let from = section.start + block * BLOCK;
        let to = (from + BLOCK).min(section.end);
        let got = crc32c::crc32c(&(*self.map).as_ref()[from..to]);
        let want = self.crcs[b][block];
        if got != want {
            let what = ["bodies", "stamps", "rows", "names", "norms", "postings", "metas"][b];
            return Err(Error::corrupt(
                &self.path,
                format!("{what} block {block} has crc32c {got:#010x}, expected {want:#010x}"),
            ));
        }
        self.verified[b][block].store(1, Ordering::Relaxed);
        Ok(())
    }

    fn raw_row(&self, ordinal: u32) -> Result<&[u8]> {
        let at = u64::from(ordinal) * ROW_BYTES as u64;
        self.read(ROWS, at..at + ROW_BYTES as u64)
    }

    /// The serial of a row.
    pub fn serial(&self, ordinal: u32) -> Result<u64> {
        Ok(le_u64(self.raw_row(ordinal)?, 0))
    }

    /// A whole row.
    pub fn row(&self, ordinal: u32) -> Result<Row<'_>> {
        let raw = self.raw_row(ordinal)?;
        let serial = le_u64(raw, 0);
        let (stamp_off, body_off) = (le_u64(raw, 8), le_u64(raw, 16));
        let (stamp_len, body_len) = (u64::from(le_u32(raw, 24)), u64::from(le_u32(raw, 28)));
        let overflow = || Error::corrupt(&self.path, format!("row {ordinal} points past the end of a heap"));
        let stamp = self.read(STAMPS, stamp_off..stamp_off.checked_add(stamp_len).ok_or_else(overflow)?)?;
        let body = self.read(BODIES, body_off..body_off.checked_add(body_len).ok_or_else(overflow)?)?;
        let stamp = std::str::from_utf8(stamp)
            .map_err(|_| Error::corrupt(&self.path, format!("the stamp of row {ordinal} is not UTF-8")))?;
        Ok(Row { serial, stamp, body })
    }
}

/// The inverted index (see [`crate::inverted`]).
impl Segment {
    /// The text parts, by name.
    pub(crate) fn parts(&self) -> &[PartInfo] {
        &self.parts
    }

    /// The norms of `part` (one of [`Segment::parts`]): its rows and their
    /// lengths in words.
    pub(crate) fn norms(&self, part: &PartInfo) -> Result<Postings<'_>> {
        let bytes = self.read(NORMS, part.norms.clone())?;
        crate::inverted::parse_column(bytes, self.rows).map_err(|e| Error::corrupt(&self.path, e))
    }

    /// The terms fst: term key → offset of its postings.
    pub(crate) fn terms(&self) -> &fst::Map<Slice> {
        &self.terms
    }

    /// The postings at `offset` in the postings section.
    pub(crate) fn postings_at(&self, offset: u64) -> Result<Postings<'_>> {
        let head = self.postings_head(offset)?;
        let bad = || Error::corrupt(&self.path, format!("postings at {offset} are out of place"));
        let len = crate::inverted::column_len(head).ok_or_else(bad)? as u64;
        let to = offset.checked_add(len).filter(|&to| to <= self.sections[POSTINGS].len() as u64).ok_or_else(bad)?;
        let bytes = self.read(POSTINGS, offset..to)?;
        crate::inverted::parse_column(bytes, self.rows).map_err(|e| Error::corrupt(&self.path, e))
    }

    /// The (verified) bytes at `offset` in the postings section that a
    /// column's header can take, fewer at the section's end.
    fn postings_head(&self, offset: u64) -> Result<&[u8]> {
        let end = self.sections[POSTINGS].len() as u64;
        if offset >= end {
            return Err(Error::corrupt(&self.path, format!("postings at {offset} are out of place")));
        }
        self.read(POSTINGS, offset..end.min(offset + 32))
    }

    /// How many rows the term with key `key` is in (deleted ones too),
    /// read from its postings' header alone; `None` if the segment does
    /// not hold it.
    pub(crate) fn postings_count(&self, key: &[u8]) -> Result<Option<u64>> {
        let Some(offset) = self.term_offset(key)? else { return Ok(None) };
        let count = crate::inverted::column_count(self.postings_head(offset)?)
            .filter(|&n| n <= self.rows)
            .ok_or_else(|| Error::corrupt(&self.path, format!("the postings at {offset} have a damaged header")))?;
        Ok(Some(count))
    }

    /// The postings of the term with key `key` (see
    /// [`crate::inverted::term_key`]), if the segment holds it.
    pub(crate) fn postings(&self, key: &[u8]) -> Result<Option<Postings<'_>>> {
        self.term_offset(key)?.map(|offset| self.postings_at(offset)).transpose()
    }

    /// Where the postings of the term with key `key` are: words in the
    /// terms fst, meta values in the metas table.
    fn term_offset(&self, key: &[u8]) -> Result<Option<u64>> {
        match key.split_first() {
            Some((&crate::inverted::META, key)) => self.meta_offset(key),
            _ => Ok(self.terms.get(key)),
        }
    }

    /// The `metas` section's block count and where its block index starts.
    fn meta_index(&self) -> Result<(u64, u64)> {
        let len = self.sections[METAS].len() as u64;
        let count = le_u64(self.read(METAS, len - 8..len)?, 0);
        let index = count.checked_mul(8).and_then(|n| (len - 8).checked_sub(n));
        let index = index.ok_or_else(|| Error::corrupt(&self.path, "the metas table's block index is damaged"))?;
        Ok((count, index))
    }

    /// Decodes block `b` of front-coded section `s` (`names` or `metas`,
    /// whose `count` block offsets start at `index`), calling `visit` as
    /// [`crate::frontcode::decode_block`] does: a block ends where the next
    /// starts, the last where the offsets start.
    fn front_coded_block(
        &self,
        s: usize,
        (count, index): (u64, u64),
        b: u64,
        visit: &mut dyn FnMut(&[u8], u64) -> bool,
    ) -> Result<()> {
        let what = if s == NAMES { "names" } else { "metas table" };
        let at = index + 8 * b;
        let start = le_u64(self.read(s, at..at + 8)?, 0);
        let end = if b + 1 < count { le_u64(self.read(s, at + 8..at + 16)?, 0) } else { index };
        if start > end || end > index {
            return Err(Error::corrupt(&self.path, format!("block {b} of the {what} is out of place")));
        }
        crate::frontcode::decode_block(self.read(s, start..end)?, s == METAS, visit)
            .ok_or_else(|| Error::corrupt(&self.path, format!("block {b} of the {what} is damaged")))
    }

    /// The postings offset of meta term `key` (without its kind byte): a
    /// binary search over the blocks' first keys, then a scan of one block.
    fn meta_offset(&self, key: &[u8]) -> Result<Option<u64>> {
        let at = self.meta_index()?;
        // The last block whose first key is <= key.
        let (mut lo, mut hi) = (0, at.0);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let mut first_le = false;
            self.front_coded_block(METAS, at, mid, &mut |k, _| {
                first_le = k <= key;
                false
            })?;
            if first_le {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let Some(block) = lo.checked_sub(1) else { return Ok(None) };
        let mut found = None;
        self.front_coded_block(METAS, at, block, &mut |k, offset| {
            if k == key {
                found = Some(offset);
            }
            k < key
        })?;
        Ok(found)
    }

    /// The meta terms in key order, a block at a time.
    pub(crate) fn meta_terms(&self) -> Result<MetaTerms<'_>> {
        Ok(MetaTerms { seg: self, at: self.meta_index()?, block: 0, keys: Vec::new(), entries: Vec::new(), next: 0 })
    }

    /// Reads the whole inverted index: every part's norms and every term's
    /// postings, checking each as a search would. Returns how many
    /// (term, row) postings there are. For tests and fuzzing.
    #[doc(hidden)]
    pub fn check_search_index(&self) -> Result<u64> {
        for part in &self.parts {
            self.norms(part)?;
        }
        let mut total = 0;
        let mut stream = self.terms.stream();
        while let Some((_, offset)) = stream.next() {
            total += self.postings_at(offset)?.rows.len();
        }
        let mut metas = self.meta_terms()?;
        while let Some((_, offset)) = metas.next_term()? {
            total += self.postings_at(offset)?.rows.len();
        }
        Ok(total)
    }

    /// Reads the whole segment as every reader would: every block of every
    /// block-checked section, every row, the URI of every ordinal in both
    /// the `uris` fst and the `names` section (they must agree, in order),
    /// every row's serial within the footer's range, and the whole inverted
    /// index. What `Index::verify` and the writer's self-check run.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] naming the first damage found.
    pub fn verify_all(&self) -> Result<()> {
        for (b, &s) in BLOCKED.iter().enumerate() {
            for block in 0..self.crcs[b].len() {
                self.verify(s, block)?;
            }
        }
        let mut uris = self.uris.stream();
        let mut expected = 0u64;
        while let Some((uri, ordinal)) = uris.next() {
            if ordinal != expected {
                return Err(Error::corrupt(
                    &self.path,
                    format!("the URI fst gives ordinal {ordinal} where {expected} comes next"),
                ));
            }
            let ordinal = self.ordinal_checked(ordinal)?;
            if self.uri_at(ordinal)? != uri {
                return Err(Error::corrupt(
                    &self.path,
                    format!("the names section and the URI fst differ at {ordinal}"),
                ));
            }
            let row = self.row(ordinal)?;
            if self.rows > 0 && !(self.min_serial..=self.max_serial).contains(&row.serial) {
                return Err(Error::corrupt(
                    &self.path,
                    format!(
                        "row {ordinal} has serial {}, outside the footer's {}..={}",
                        row.serial, self.min_serial, self.max_serial
                    ),
                ));
            }
            expected += 1;
        }
        if expected != self.rows {
            return Err(Error::corrupt(
                &self.path,
                format!("the URI fst holds {expected} URIs, the footer {} rows", self.rows),
            ));
        }
        self.check_search_index()?;
        Ok(())
    }

    /// The URI of row `ordinal`, from the front-coded `names` section.
    pub fn uri_at(&self, ordinal: u32) -> Result<Vec<u8>> {
        if u64::from(ordinal) >= self.rows {
            return Err(Error::corrupt(&self.path, format!("no URI has ordinal {ordinal}: past the last row")));
        }
        let blocks = self.rows.div_ceil(NAMES_BLOCK as u64);
        let index = self.sections[NAMES].len() as u64 - 8 * blocks;
        let block = u64::from(ordinal) / NAMES_BLOCK as u64;
        let (mut skip, mut uri) = (ordinal as usize % NAMES_BLOCK, None);
        self.front_coded_block(NAMES, (blocks, index), block, &mut |key, _| {
            if skip == 0 {
                uri = Some(key.to_vec());
            }
            skip = skip.wrapping_sub(1);
            uri.is_none()
        })?;
        uri.ok_or_else(|| Error::corrupt(&self.path, format!("block {block} of the names has no URI {ordinal}")))
    }
}

/// A segment's meta terms (keys without the kind byte) with their
/// postings offsets, in key order, decoded a block at a time.
pub(crate) struct MetaTerms<'a> {
    seg: &'a Segment,
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
            self.seg.front_coded_block(METAS, self.at, self.block, &mut |k, offset| {
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

/// Ordered `(uri, ordinal)` pairs of a segment.
pub struct SegmentIter<'a> {
    stream: fst::map::Stream<'a>,
    seg: &'a Segment,
}

impl SegmentIter<'_> {
    /// The next pair; the URI is valid until the next call.
    #[allow(clippy::should_implement_trait)]
    pub fn next_entry(&mut self) -> Option<Result<(&[u8], u32)>> {
        let seg = self.seg;
        let (key, value) = self.stream.next()?;
        Some(seg.ordinal_checked(value).map(|ord| (key, ord)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsStorage;
    use std::collections::BTreeMap;

    fn write(storage: &dyn Storage, name: &str, entries: &BTreeMap<Vec<u8>, (u64, String, Vec<u8>)>) -> Segment {
        write_segment(storage, name, &|visit| {
            for (uri, (serial, stamp, body)) in entries {
                visit(SegmentEntry { uri, serial: *serial, stamp, body })?;
            }
            Ok(())
        })
        .unwrap();
        Segment::open(storage, name).unwrap()
    }

    #[test]
    fn round_trip_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let mut entries = BTreeMap::new();
        for i in 0..5000u64 {
            let uri = format!("f/{}/{i:05}", i % 7).into_bytes();
            let body = if i == 17 { vec![7u8; 200_000] } else { vec![i as u8; (i % 50) as usize] };
            entries.insert(uri, (i + 1, format!("s{i}"), body));
        }
        let seg = write(&storage, "seg-1.pdx", &entries);
        assert_eq!(seg.rows(), 5000);
        for (ord, (uri, (serial, stamp, body))) in entries.iter().enumerate() {
            assert_eq!(seg.ordinal(uri).unwrap(), Some(ord as u32));
            let row = seg.row(ord as u32).unwrap();
            assert_eq!((row.serial, row.stamp, row.body), (*serial, stamp.as_str(), body.as_slice()));
        }
        assert_eq!(seg.ordinal(b"nope").unwrap(), None);
        let range = seg.prefix_range(b"f/3/").unwrap();
        let want = entries.keys().filter(|k| k.starts_with(b"f/3/")).count();
        assert_eq!((range.end - range.start) as usize, want);
        let mut it = seg.range(b"f/3/", b"f/3/02");
        let mut got = Vec::new();
        while let Some(item) = it.next_entry() {
            got.push(item.unwrap().0.to_vec());
        }
        let want: Vec<Vec<u8>> =
            entries.keys().filter(|k| k.starts_with(b"f/3/") && k.as_slice() >= &b"f/3/02"[..]).cloned().collect();
        assert_eq!(got, want);
        assert_eq!(seg.prefix_range(b"\xff").unwrap(), 5000..5000);
        assert_eq!(seg.lower_bound(b"").unwrap(), 0);
    }

    #[test]
    fn empty_segment_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let seg = write(&storage, "seg-1.pdx", &BTreeMap::new());
        assert_eq!(seg.rows(), 0);
        assert_eq!(seg.prefix_range(b"a").unwrap(), 0..0);
        let err = write_segment(&storage, "seg-2.pdx", &|visit| {
            visit(SegmentEntry { uri: b"b", serial: 1, stamp: "", body: b"" })?;
            visit(SegmentEntry { uri: b"a", serial: 2, stamp: "", body: b"" })
        })
        .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }));
    }

    /// Everything a segment's inverted index holds, readable.
    type Dump = (Vec<(String, u64, u64, Vec<(u32, u32)>)>, Vec<(Vec<u8>, Vec<(u32, u32)>)>);

    fn dump(seg: &Segment) -> Dump {
        let column = |p: Postings<'_>| p.rows.iter().enumerate().map(|(r, row)| (row, p.value(r))).collect::<Vec<_>>();
        let parts =
            seg.parts().iter().map(|p| (p.name.clone(), p.docs, p.total_len, column(seg.norms(p).unwrap()))).collect();
        let mut terms = Vec::new();
        let mut metas = seg.meta_terms().unwrap();
        while let Some((key, offset)) = metas.next_term().unwrap() {
            let key = [&[crate::inverted::META][..], key].concat();
            terms.push((key, column(seg.postings_at(offset).unwrap())));
        }
        let mut stream = seg.terms().stream();
        while let Some((key, offset)) = stream.next() {
            terms.push((key.to_vec(), column(seg.postings_at(offset).unwrap())));
        }
        (parts, terms)
    }

    fn body(i: u64) -> Vec<u8> {
        let words = ["alpha", "Beta", "gamma", "delta", "ÉTÉ", "x"];
        let mut doc = crate::document::Document::new("u");
        let text: Vec<&str> = (0..(i % 9)).map(|k| words[((i * 7 + k * k) % 6) as usize]).collect();
        doc = doc.with_text("body", text.join(" "));
        if i.is_multiple_of(3) {
            doc = doc.with_text("title", format!("Title {i} alpha"));
        }
        if i.is_multiple_of(4) {
            doc = doc.with_meta("tag", format!("t{}", i % 5)).with_meta("tag", "all");
        }
        if i.is_multiple_of(5) {
            doc = doc.with_part("blob", b"alpha beta".to_vec());
        }
        doc.body().encode()
    }

    #[test]
    fn uri_at_walks_back_from_ordinals() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let mut entries = BTreeMap::new();
        for i in 0..3000u64 {
            let uri = format!("s://h/{}/{}{}", i % 13, "x".repeat((i % 5) as usize), i * 7919 % 3001).into_bytes();
            entries.insert(uri, (i, String::new(), body(i)));
        }
        entries.insert(b"s://h".to_vec(), (0, String::new(), body(0)));
        entries.insert(b"s://h/".to_vec(), (0, String::new(), body(0)));
        let seg = write(&storage, "seg-1.pdx", &entries);
        for (ord, uri) in entries.keys().enumerate() {
            assert_eq!(&seg.uri_at(ord as u32).unwrap(), uri);
        }
        assert!(matches!(seg.uri_at(entries.len() as u32), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn merged_postings_equal_a_fresh_analysis() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
        for i in 0..2000u64 {
            let uri = format!("u/{:05}", i * 37 % 2011).into_bytes();
            if i % 3 == 0 {
                b.insert(uri, (i, String::new(), body(i)));
            } else {
                a.insert(uri, (i, String::new(), body(i)));
            }
        }
        // Some URIs in both: b's version wins; and rows of a left out.
        for i in 0..300u64 {
            let uri = format!("u/{:05}", i * 37 % 2011).into_bytes();
            a.insert(uri, (i, String::new(), body(i + 5000)));
        }
        let (seg_a, seg_b) = (write(&storage, "a.pdx", &a), write(&storage, "b.pdx", &b));
        let mut merged = BTreeMap::new();
        let mut remap = vec![vec![u32::MAX; a.len()], vec![u32::MAX; b.len()]];
        let mut keep = Vec::new();
        for (ord, (uri, e)) in a.iter().enumerate() {
            if ord % 11 != 0 && !b.contains_key(uri) {
                merged.insert(uri.clone(), e.clone());
                keep.push((0, ord, uri.clone()));
            }
        }
        for (ord, (uri, e)) in b.iter().enumerate() {
            merged.insert(uri.clone(), e.clone());
            keep.push((1, ord, uri.clone()));
        }
        for (input, ord, uri) in keep {
            remap[input][ord] = merged.keys().position(|k| *k == uri).unwrap() as u32;
        }
        let remap = std::cell::RefCell::new(remap);
        let entries = |visit: &mut dyn FnMut(SegmentEntry<'_>) -> Result<()>| {
            for (uri, (serial, stamp, body)) in &merged {
                visit(SegmentEntry { uri, serial: *serial, stamp, body })?;
            }
            Ok(())
        };
        let terms = Terms::Merge { inputs: vec![&seg_a, &seg_b], remap: &remap };
        write_segment_with(&storage, "m.pdx", &entries, terms).unwrap();
        write_segment(&storage, "f.pdx", &entries).unwrap();
        let (m, f) = (Segment::open(&storage, "m.pdx").unwrap(), Segment::open(&storage, "f.pdx").unwrap());
        let want = dump(&f);
        assert!(want.0.len() == 2 && want.1.len() > 20, "the fixture has parts and terms");
        assert!(want.1.iter().any(|(k, _)| k.starts_with(b"wbody\0\xc3\xa9t\xc3\xa9")), "words are lower-cased");
        assert!(!want.1.iter().any(|(k, _)| k.starts_with(b"wblob")), "binary parts are not indexed");
        assert_eq!(dump(&m), want);
        // Lookups by key, and a term the segment does not hold.
        let mut key = Vec::new();
        crate::inverted::term_key(&mut key, crate::inverted::META, "tag", "all");
        let all = f.postings(&key).unwrap().unwrap();
        assert_eq!(all.rows.len(), merged.values().filter(|e| e.0 % 4 == 0).count() as u64);
        crate::inverted::term_key(&mut key, crate::inverted::WORD, "body", "nope");
        assert!(f.postings(&key).unwrap().is_none());
    }
}
