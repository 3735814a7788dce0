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
use crate::storage::{Mapped, Storage, StorageFile};
use crate::uri::prefix_successor;

/// Magic number at the start of the footer.
pub const MAGIC: &[u8; 8] = b"PDXSEG\r\n";
/// The format version this code writes and reads.
pub const VERSION: u32 = 2;
/// Rows and heaps are checksummed in blocks of this many bytes.
pub const BLOCK: usize = 64 * 1024;
/// Bytes per row: serial, stamp offset, body offset (u64 each), stamp and body length (u32 each).
pub const ROW_BYTES: usize = 32;
/// Bytes of the footer.
pub const FOOTER_BYTES: usize = 152;

/// Sections in a segment file, in file order: bodies, stamps, rows, uris,
/// bloom, crcs.
pub const SECTIONS: usize = 6;
const BODIES: usize = 0;
const STAMPS: usize = 1;
const ROWS: usize = 2;
const URIS: usize = 3;
const BLOOM: usize = 4;
const CRCS: usize = 5;

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
struct SectionWriter<'f> {
    file: &'f dyn StorageFile,
    buf: Vec<u8>,
    start: u64,
    len: u64,
    blocks: Vec<u32>,
    block_crc: u32,
    whole_crc: u32,
}

impl<'f> SectionWriter<'f> {
    fn new(file: &'f dyn StorageFile, start: u64) -> SectionWriter<'f> {
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

    fn put(&mut self, mut bytes: &[u8]) -> io::Result<()> {
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
    fn finish(mut self) -> io::Result<(u64, u64, Vec<u32>, u32)> {
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

/// Writes segment file `name` from `entries` (strictly increasing URIs),
/// fsyncs the file, and returns its row count. The caller fsyncs the
/// directory.
pub fn write_segment(storage: &dyn Storage, name: &str, entries: &Entries<'_>) -> Result<u64> {
    let file = storage.create(name)?;
    let file = file.as_ref();
    let mut at = 0u64;
    let mut sections = [(0u64, 0u64); SECTIONS];
    let mut block_crcs = Vec::new();
    let (mut rows, mut min_serial, mut max_serial) = (0u64, u64::MAX, 0u64);

    // Pass 1: bodies; also checks the order and counts the rows.
    let mut w = SectionWriter::new(file, at);
    let mut prev: Option<Vec<u8>> = None;
    entries(&mut |e| {
        if prev.as_deref().is_some_and(|p| p >= e.uri) {
            return Err(Error::invalid_input("segment entries must come in strictly increasing URI order"));
        }
        prev = Some(e.uri.to_vec());
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
    let mut ordinal = 0u64;
    entries(&mut |e| {
        builder.insert(e.uri, ordinal).map_err(fst_io)?;
        bloom.insert(e.uri);
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
    footer.extend_from_slice(&uris_crc.to_le_bytes());
    footer.extend_from_slice(&bloom_crc.to_le_bytes());
    footer.extend_from_slice(&crcs_crc.to_le_bytes());
    let crc = crc32c::crc32c(&footer);
    footer.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(footer.len(), FOOTER_BYTES);
    file.append(&footer)?;
    file.sync()?;
    Ok(rows)
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
struct Slice {
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
    rows: u64,
    min_serial: u64,
    max_serial: u64,
    sections: [Range<usize>; SECTIONS],
    /// Block crcs of bodies, stamps and rows, and whether each was verified
    /// (0 = not yet, 1 = good).
    crcs: [Vec<u32>; 3],
    verified: [Vec<AtomicU8>; 3],
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
        let blocks = |i: usize| sections[i].len().div_ceil(BLOCK);
        let total_blocks = blocks(BODIES) + blocks(STAMPS) + blocks(ROWS);
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
        let crc_fields =
            [(URIS, FOOTER_BYTES - 16, "uris"), (BLOOM, FOOTER_BYTES - 12, "bloom"), (CRCS, FOOTER_BYTES - 8, "crcs")];
        for (section, at, what) in crc_fields {
            let want = le_u32(footer, at);
            let got = file_crc(file.as_ref(), sections[section].clone())?;
            if want != got {
                return Err(corrupt(format!("{what} section crc32c is {got:#010x}, expected {want:#010x}")));
            }
        }
        let table = &bytes[sections[CRCS].clone()];
        let mut all = (0..total_blocks).map(|b| le_u32(table, 4 * b));
        let crcs = [
            all.by_ref().take(blocks(BODIES)).collect(),
            all.by_ref().take(blocks(STAMPS)).collect(),
            all.by_ref().take(blocks(ROWS)).collect(),
        ];
        let verified = [
            (0..blocks(BODIES)).map(|_| AtomicU8::new(0)).collect(),
            (0..blocks(STAMPS)).map(|_| AtomicU8::new(0)).collect(),
            (0..blocks(ROWS)).map(|_| AtomicU8::new(0)).collect(),
        ];
        let uris = fst::Map::new(Slice { map: map.clone(), range: sections[URIS].clone() })
            .map_err(|e| corrupt(format!("the uris section is not an fst: {e}")))?;
        if uris.len() as u64 != rows {
            return Err(corrupt(format!("the uris section holds {} URIs for {rows} rows", uris.len())));
        }
        Ok(Segment { name: name.to_string(), path, map, uris, rows, min_serial, max_serial, sections, crcs, verified })
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

    /// The bytes `range` of section `s` (bodies, stamps or rows), verifying
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
        if self.verified[s][block].load(Ordering::Relaxed) == 1 {
            return Ok(());
        }
        let section = &self.sections[s];
        let from = section.start + block * BLOCK;
        let to = (from + BLOCK).min(section.end);
        let got = crc32c::crc32c(&(*self.map).as_ref()[from..to]);
        let want = self.crcs[s][block];
        if got != want {
            let what = ["bodies", "stamps", "rows"][s];
            return Err(Error::corrupt(
                &self.path,
                format!("{what} block {block} has crc32c {got:#010x}, expected {want:#010x}"),
            ));
        }
        self.verified[s][block].store(1, Ordering::Relaxed);
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
}
