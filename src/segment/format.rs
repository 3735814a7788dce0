//! The on-disk layout of a segment file (docs/FORMAT.md, "Segments"): its
//! sections ([`Section`]), the footer and its table of contents
//! ([`Footer`]), the versions this build reads, and the two pieces that
//! every other part of the segment code shares: [`SectionWriter`], which
//! appends a section with its checksums, and [`Sections`], which hands out
//! a mapped file's sections, verifying each 64 KiB block on first use.
//!
//! Nothing here knows what a section holds beyond its size rules; the
//! lowest module of `segment`, it imports no other.

use std::fmt;
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::bloom;
use crate::error::Error;
use crate::storage::{Mapped, Storage, StorageFile};

/// Magic number of the footer: at the end of the trailer (version 4 on), at
/// the start of the fixed footer (version 3).
pub const MAGIC: &[u8; 8] = b"PDXSEG\r\n";
/// The format version this code writes.
pub const VERSION: u32 = 7;
/// The oldest format version this code reads.
pub const OLDEST_VERSION: u32 = 3;
/// The versions this code reads, both ends included.
pub const SUPPORTED: (u32, u32) = (OLDEST_VERSION, VERSION);
/// The first version whose footer is a table of contents ending in a trailer.
pub const TOC_VERSION: u32 = 4;
/// The first version whose word columns are followed by their positions.
pub const POSITIONS_VERSION: u32 = 5;
/// The first version whose word columns carry impacts after their
/// positions (per block of rows, the best frequency and length pairs).
pub const IMPACTS_VERSION: u32 = 6;
/// The first version without the `uris` fst (its section is empty): URIs
/// are found in the `names` section, which every version has.
pub const NO_URIS_VERSION: u32 = 7;

/// Rows and heaps are checksummed in blocks of this many bytes.
pub const BLOCK: usize = 64 * 1024;
/// URIs per front-coded block of the `names` section.
pub const NAMES_BLOCK: usize = 16;

/// Where a row's fields are: serial, stamp offset, body offset (`u64`
/// each), stamp and body length (`u32` each).
pub(crate) const ROW_SERIAL: usize = 0;
pub(crate) const ROW_STAMP_OFF: usize = ROW_SERIAL + 8;
pub(crate) const ROW_BODY_OFF: usize = ROW_STAMP_OFF + 8;
pub(crate) const ROW_STAMP_LEN: usize = ROW_BODY_OFF + 8;
pub(crate) const ROW_BODY_LEN: usize = ROW_STAMP_LEN + 4;
/// Bytes per row.
pub const ROW_BYTES: usize = ROW_BODY_LEN + 4;

/// A section of a segment file. The discriminant is the section's id in
/// the table of contents (0 is no section, so that zeroed bytes never name one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum Section {
    /// The encoded bodies, by ordinal.
    Bodies = 1,
    /// The stamps, by ordinal.
    Stamps = 2,
    /// Fixed-width rows, by ordinal.
    Rows = 3,
    /// The URI → ordinal fst.
    Uris = 4,
    /// The Bloom filter over the URIs.
    Bloom = 5,
    /// The URIs by ordinal, front-coded.
    Names = 6,
    /// Search: per text part, its rows' lengths in words.
    Norms = 7,
    /// Search: per term, the rows holding it.
    Postings = 8,
    /// Search: the word terms fst.
    Terms = 9,
    /// Search: the meta-value terms table.
    Metas = 10,
    /// Search: the text parts table.
    Parts = 11,
    /// The block-checksum table.
    Crcs = 12,
}

impl Section {
    /// Every section, in the order the writer lays them out.
    pub const ALL: [Section; 12] = [
        Section::Bodies,
        Section::Stamps,
        Section::Rows,
        Section::Uris,
        Section::Bloom,
        Section::Names,
        Section::Norms,
        Section::Postings,
        Section::Terms,
        Section::Metas,
        Section::Parts,
        Section::Crcs,
    ];
    /// How many sections there are.
    pub const COUNT: usize = Section::ALL.len();

    /// The id in the table of contents.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The section with id `id`, if this build knows one.
    pub fn from_id(id: u32) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Its position in [`Section::ALL`]: an index into per-section arrays.
    pub fn index(self) -> usize {
        self as usize - 1
    }

    /// Its name, as docs/FORMAT.md and error messages give it.
    pub fn name(self) -> &'static str {
        match self {
            Section::Bodies => "bodies",
            Section::Stamps => "stamps",
            Section::Rows => "rows",
            Section::Uris => "uris",
            Section::Bloom => "bloom",
            Section::Names => "names",
            Section::Norms => "norms",
            Section::Postings => "postings",
            Section::Terms => "terms",
            Section::Metas => "metas",
            Section::Parts => "parts",
            Section::Crcs => "crcs",
        }
    }

    /// Where the section's block checksums are among [`BLOCKED`], if it is
    /// checked per block.
    pub fn blocked(self) -> Option<usize> {
        BLOCKED.iter().position(|&b| b == self)
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The sections checked per 64 KiB block, in the order of the
/// block-checksum table; the others ([`WHOLE`]) are checked whole at open.
pub const BLOCKED: [Section; 7] = [
    Section::Bodies,
    Section::Stamps,
    Section::Rows,
    Section::Names,
    Section::Norms,
    Section::Postings,
    Section::Metas,
];
/// The sections checked whole at open (fst trusts its input), in the
/// order of version 3's footer crcs.
pub const WHOLE: [Section; 5] = [Section::Uris, Section::Bloom, Section::Terms, Section::Parts, Section::Crcs];

/// Version 3's fixed footer: magic, version, flags, row count, serial
/// range, then (offset, length) of every section in [`Section::ALL`]
/// order, the whole crcs of [`WHOLE`], and the footer's crc.
pub mod v3 {
    use super::{Section, WHOLE};

    /// Where the magic is.
    pub const MAGIC_AT: usize = 0;
    /// Where the version (`u32`) is.
    pub const VERSION_AT: usize = MAGIC_AT + 8;
    /// Where the flags (`u32`) are.
    pub const FLAGS_AT: usize = VERSION_AT + 4;
    /// Where the row count (`u64`) is.
    pub const ROWS_AT: usize = FLAGS_AT + 4;
    /// Where the smallest serial (`u64`) is.
    pub const MIN_SERIAL_AT: usize = ROWS_AT + 8;
    /// Where the largest serial (`u64`) is.
    pub const MAX_SERIAL_AT: usize = MIN_SERIAL_AT + 8;
    /// Where the section table starts.
    pub const TABLE_AT: usize = MAX_SERIAL_AT + 8;
    /// Bytes per section in the table: offset and length (`u64` each).
    pub const TABLE_ENTRY_LEN: usize = 16;
    /// Where the whole-section crcs start.
    pub const WHOLE_CRCS_AT: usize = TABLE_AT + TABLE_ENTRY_LEN * Section::COUNT;
    /// Where the footer's own crc is.
    pub const CRC_AT: usize = WHOLE_CRCS_AT + 4 * WHOLE.len();
    /// Bytes of the footer.
    pub const FOOTER_LEN: usize = CRC_AT + 4;
    const _: () = assert!(FOOTER_LEN == 256);
}

/// Version 4's footer: a head, a table of contents of any number of
/// entries, and a trailer whose layout every later version keeps, so that
/// any release finds the version of any segment.
pub mod v4 {
    /// Head: where the row count (`u64`) is.
    pub const ROWS_AT: usize = 0;
    /// Head: where the smallest serial (`u64`) is.
    pub const MIN_SERIAL_AT: usize = ROWS_AT + 8;
    /// Head: where the largest serial (`u64`) is.
    pub const MAX_SERIAL_AT: usize = MIN_SERIAL_AT + 8;
    /// Head: where the flags (`u32`, 0) are.
    pub const FLAGS_AT: usize = MAX_SERIAL_AT + 8;
    /// Head: where the entry count (`u32`) is.
    pub const ENTRIES_AT: usize = FLAGS_AT + 4;
    /// Bytes of the head; the table of contents follows.
    pub const HEAD_LEN: usize = ENTRIES_AT + 4;

    /// Entry: where the section id (`u32`) is.
    pub const ENTRY_ID_AT: usize = 0;
    /// Entry: where the crc32c of the whole section (`u32`) is.
    pub const ENTRY_CRC_AT: usize = ENTRY_ID_AT + 4;
    /// Entry: where the section's offset in the file (`u64`) is.
    pub const ENTRY_OFFSET_AT: usize = ENTRY_CRC_AT + 4;
    /// Entry: where the section's length (`u64`) is.
    pub const ENTRY_LEN_AT: usize = ENTRY_OFFSET_AT + 8;
    /// Bytes per entry of the table of contents.
    pub const TOC_ENTRY_LEN: usize = ENTRY_LEN_AT + 8;

    /// Trailer (the file's last bytes): where the magic is.
    pub const MAGIC_AT: usize = 0;
    /// Trailer: where the version (`u32`) is.
    pub const VERSION_AT: usize = MAGIC_AT + 8;
    /// Trailer: where the length of the whole footer (`u32`) is.
    pub const FOOTER_LEN_AT: usize = VERSION_AT + 4;
    /// Trailer: where the crc32c of the trailer's bytes before it (magic,
    /// version, footer length) is.
    pub const TRAILER_CRC_AT: usize = FOOTER_LEN_AT + 4;
    /// Trailer: where the crc32c of all the footer's bytes before it is.
    pub const FOOTER_CRC_AT: usize = TRAILER_CRC_AT + 4;
    /// Bytes of the trailer.
    pub const TRAILER_LEN: usize = FOOTER_CRC_AT + 4;

    /// Bytes of a footer of `entries` entries.
    pub const fn footer_len(entries: usize) -> usize {
        HEAD_LEN + TOC_ENTRY_LEN * entries + TRAILER_LEN
    }

    /// Bytes of the footer this version writes (every section).
    pub const FOOTER_LEN: usize = footer_len(super::Section::COUNT);
    const _: () = assert!(FOOTER_LEN == 344);
}

/// Little-endian `u64` at `at`; the caller has checked the length.
pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Little-endian `u32` at `at`; the caller has checked the length.
pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Why a footer does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FooterError {
    /// Damage, described.
    Corrupt(String),
    /// A well-formed footer of a version this build does not read.
    Unsupported(u32),
}

impl FooterError {
    /// The crate error for the file at `path`.
    pub fn at(self, path: &Path) -> Error {
        match self {
            FooterError::Corrupt(detail) => Error::corrupt(path, detail),
            FooterError::Unsupported(found) => {
                Error::UnsupportedVersion { path: path.to_path_buf(), found, supported: SUPPORTED }
            }
        }
    }
}

/// What a segment's footer says, checked for consistency (see
/// [`parse_footer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// The format version.
    pub version: u32,
    /// How many rows the segment holds.
    pub rows: u64,
    /// The smallest serial of a row (0 when empty).
    pub min_serial: u64,
    /// The largest serial of a row (0 when empty).
    pub max_serial: u64,
    /// Bytes of the footer, at the end of the file.
    pub len: usize,
    /// Where each section is in the file, by [`Section::index`].
    pub sections: [Range<u64>; Section::COUNT],
    /// The crc32c of each whole section, where the footer holds one: every
    /// section from version 4 on, the [`WHOLE`] ones in version 3.
    pub crcs: [Option<u32>; Section::COUNT],
}

impl Footer {
    /// Where section `s` is in the file.
    pub fn section(&self, s: Section) -> Range<u64> {
        self.sections[s.index()].clone()
    }

    /// The length of section `s`.
    pub fn section_len(&self, s: Section) -> u64 {
        let r = &self.sections[s.index()];
        r.end - r.start
    }

    /// How many 64 KiB blocks section `s` has.
    pub fn blocks(&self, s: Section) -> usize {
        (self.section_len(s) as usize).div_ceil(BLOCK)
    }

    /// How many `u32` the block-checksum table must hold.
    pub fn total_blocks(&self) -> usize {
        BLOCKED.iter().map(|&s| self.blocks(s)).sum()
    }

    /// Version 4's footer for this table of contents, sections in file order.
    pub fn encode(&self) -> Vec<u8> {
        let mut order: Vec<Section> = Section::ALL.to_vec();
        order.sort_by_key(|s| self.sections[s.index()].start);
        let mut out = Vec::with_capacity(v4::footer_len(order.len()));
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&self.min_serial.to_le_bytes());
        out.extend_from_slice(&self.max_serial.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(order.len() as u32).to_le_bytes());
        debug_assert_eq!(out.len(), v4::HEAD_LEN);
        for s in order {
            let range = self.section(s);
            out.extend_from_slice(&s.id().to_le_bytes());
            out.extend_from_slice(&self.crcs[s.index()].unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&range.start.to_le_bytes());
            out.extend_from_slice(&(range.end - range.start).to_le_bytes());
        }
        let trailer_at = out.len();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let footer_len = u32::try_from(v4::footer_len(Section::COUNT)).expect("a small footer");
        out.extend_from_slice(&footer_len.to_le_bytes());
        let crc = crc32c::crc32c(&out[trailer_at..]);
        out.extend_from_slice(&crc.to_le_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(out.len(), v4::FOOTER_LEN);
        out
    }
}

/// Parses the footer at the end of segment file `bytes` and checks that
/// it describes a file of this size: magic, version, checksums; sections
/// that follow each other from offset 0 to the footer; (version 4) every
/// id known, none twice, none missing, flags 0; sizes that agree with the
/// row count (`rows`, `bloom`, `names`, `metas`, `crcs`).
///
/// # Errors
///
/// [`FooterError::Unsupported`] for a version outside [`SUPPORTED`] (read
/// before anything else but the magic and the trailer's own crc, so that a
/// later version may change everything else), [`FooterError::Corrupt`]
/// for any damage.
pub fn parse_footer(bytes: &[u8]) -> Result<Footer, FooterError> {
    let corrupt = |detail: String| FooterError::Corrupt(detail);
    let len = bytes.len();
    let trailer = len.checked_sub(v4::TRAILER_LEN).map(|at| &bytes[at..]);
    let v3_footer = len.checked_sub(v3::FOOTER_LEN).map(|at| &bytes[at..]);
    let footer = if let Some(trailer) = trailer.filter(|t| &t[v4::MAGIC_AT..v4::MAGIC_AT + 8] == MAGIC) {
        parse_toc(bytes, trailer)?
    } else if let Some(footer) = v3_footer.filter(|f| &f[v3::MAGIC_AT..v3::MAGIC_AT + 8] == MAGIC) {
        parse_v3(bytes, footer)?
    } else {
        let tail = &bytes[len.saturating_sub(8)..];
        return Err(corrupt(format!(
            "no segment footer: the file ({len} bytes) ends in {:?}, not in the magic {:?}",
            tail.escape_ascii().to_string(),
            MAGIC.escape_ascii().to_string()
        )));
    };
    check_sizes(&footer).map_err(corrupt)?;
    Ok(footer)
}

/// The footer of version 4 and later, whose trailer is `trailer`.
fn parse_toc(bytes: &[u8], trailer: &[u8]) -> Result<Footer, FooterError> {
    let corrupt = |detail: String| FooterError::Corrupt(detail);
    let (want, got) = (le_u32(trailer, v4::TRAILER_CRC_AT), crc32c::crc32c(&trailer[..v4::TRAILER_CRC_AT]));
    if want != got {
        return Err(corrupt(format!("footer trailer crc32c is {got:#010x}, expected {want:#010x}")));
    }
    let version = le_u32(trailer, v4::VERSION_AT);
    if !(SUPPORTED.0..=SUPPORTED.1).contains(&version) {
        return Err(FooterError::Unsupported(version));
    }
    if version < TOC_VERSION {
        return Err(corrupt(format!("a trailer says version {version}, whose footer has no trailer")));
    }
    let footer_len = le_u32(trailer, v4::FOOTER_LEN_AT) as usize;
    let entries = footer_len.checked_sub(v4::footer_len(0)).map(|n| (n / v4::TOC_ENTRY_LEN, n % v4::TOC_ENTRY_LEN));
    let Some((entries, 0)) = entries.filter(|_| footer_len <= bytes.len()) else {
        return Err(corrupt(format!("a footer of {footer_len} bytes in a file of {}", bytes.len())));
    };
    let footer = &bytes[bytes.len() - footer_len..];
    let crc_at = footer_len - v4::TRAILER_LEN + v4::FOOTER_CRC_AT;
    let (want, got) = (le_u32(footer, crc_at), crc32c::crc32c(&footer[..crc_at]));
    if want != got {
        return Err(corrupt(format!("footer crc32c is {got:#010x}, expected {want:#010x}")));
    }
    let count = le_u32(footer, v4::ENTRIES_AT) as usize;
    if count != entries {
        return Err(corrupt(format!("the footer counts {count} sections and has room for {entries}")));
    }
    let flags = le_u32(footer, v4::FLAGS_AT);
    if flags != 0 {
        return Err(corrupt(format!("footer flags {flags:#x}, and version {version} defines none")));
    }
    let body_end = (bytes.len() - footer_len) as u64;
    let mut sections: [Option<Range<u64>>; Section::COUNT] = Default::default();
    let mut crcs = [None; Section::COUNT];
    let mut expect_off = 0u64;
    for e in 0..count {
        let entry = &footer[v4::HEAD_LEN + v4::TOC_ENTRY_LEN * e..][..v4::TOC_ENTRY_LEN];
        let id = le_u32(entry, v4::ENTRY_ID_AT);
        let Some(s) = Section::from_id(id) else {
            return Err(corrupt(format!(
                "entry {e} of the table of contents names section id {id}, unknown in version {version}"
            )));
        };
        if sections[s.index()].is_some() {
            return Err(corrupt(format!("the table of contents lists the {s} section twice")));
        }
        let (off, len) = (le_u64(entry, v4::ENTRY_OFFSET_AT), le_u64(entry, v4::ENTRY_LEN_AT));
        let end = off.checked_add(len).filter(|&end| off == expect_off && end <= body_end);
        let Some(end) = end else {
            return Err(corrupt(format!("the {s} section at {off}+{len} is out of place")));
        };
        sections[s.index()] = Some(off..end);
        crcs[s.index()] = Some(le_u32(entry, v4::ENTRY_CRC_AT));
        expect_off = end;
    }
    if expect_off != body_end {
        return Err(corrupt(format!("sections end at {expect_off}, the footer starts at {body_end}")));
    }
    let mut ranges: [Range<u64>; Section::COUNT] = Default::default();
    for s in Section::ALL {
        let Some(range) = sections[s.index()].take() else {
            return Err(corrupt(format!("the table of contents has no {s} section")));
        };
        ranges[s.index()] = range;
    }
    Ok(Footer {
        version,
        rows: le_u64(footer, v4::ROWS_AT),
        min_serial: le_u64(footer, v4::MIN_SERIAL_AT),
        max_serial: le_u64(footer, v4::MAX_SERIAL_AT),
        len: footer_len,
        sections: ranges,
        crcs,
    })
}

/// Version 3's fixed footer, the last [`v3::FOOTER_LEN`] bytes.
fn parse_v3(bytes: &[u8], footer: &[u8]) -> Result<Footer, FooterError> {
    let corrupt = |detail: String| FooterError::Corrupt(detail);
    let (want, got) = (le_u32(footer, v3::CRC_AT), crc32c::crc32c(&footer[..v3::CRC_AT]));
    if want != got {
        return Err(corrupt(format!("footer crc32c is {got:#010x}, expected {want:#010x}")));
    }
    let version = le_u32(footer, v3::VERSION_AT);
    if !(SUPPORTED.0..=SUPPORTED.1).contains(&version) {
        return Err(FooterError::Unsupported(version));
    }
    if version >= TOC_VERSION {
        return Err(corrupt(format!("a fixed footer says version {version}, whose footer ends in a trailer")));
    }
    let body_end = (bytes.len() - v3::FOOTER_LEN) as u64;
    let mut sections: [Range<u64>; Section::COUNT] = Default::default();
    let mut expect_off = 0u64;
    for s in Section::ALL {
        let at = v3::TABLE_AT + v3::TABLE_ENTRY_LEN * s.index();
        let (off, len) = (le_u64(footer, at), le_u64(footer, at + 8));
        let end = off.checked_add(len).filter(|&end| off == expect_off && end <= body_end);
        let Some(end) = end else {
            return Err(corrupt(format!("the {s} section at {off}+{len} is out of place")));
        };
        sections[s.index()] = off..end;
        expect_off = end;
    }
    if expect_off != body_end {
        return Err(corrupt(format!("sections end at {expect_off}, the footer starts at {body_end}")));
    }
    let mut crcs = [None; Section::COUNT];
    for (k, s) in WHOLE.into_iter().enumerate() {
        crcs[s.index()] = Some(le_u32(footer, v3::WHOLE_CRCS_AT + 4 * k));
    }
    Ok(Footer {
        version,
        rows: le_u64(footer, v3::ROWS_AT),
        min_serial: le_u64(footer, v3::MIN_SERIAL_AT),
        max_serial: le_u64(footer, v3::MAX_SERIAL_AT),
        len: v3::FOOTER_LEN,
        sections,
        crcs,
    })
}

/// The sizes every version's sections must have for its row count.
fn check_sizes(f: &Footer) -> Result<(), String> {
    let rows = f.rows;
    let len = |s: Section| f.section_len(s);
    if rows > u64::from(u32::MAX) || rows.checked_mul(ROW_BYTES as u64) != Some(len(Section::Rows)) {
        return Err(format!("{rows} rows do not fit a rows section of {} bytes", len(Section::Rows)));
    }
    let bloom = (bloom::blocks_for(rows) * bloom::BLOCK_BYTES) as u64;
    if len(Section::Bloom) != bloom {
        return Err(format!("a URI filter of {} bytes for {rows} rows, expected {bloom}", len(Section::Bloom)));
    }
    if len(Section::Metas) < 8 {
        return Err(format!("a metas section of {} bytes", len(Section::Metas)));
    }
    if f.version >= NO_URIS_VERSION && len(Section::Uris) != 0 {
        return Err(format!("a uris section of {} bytes: not empty (version 7 on writes none)", len(Section::Uris)));
    }
    let name_blocks = rows.div_ceil(NAMES_BLOCK as u64);
    if len(Section::Names) < 8 * name_blocks {
        return Err(format!("a names section of {} bytes for {rows} rows", len(Section::Names)));
    }
    let total_blocks = f.total_blocks();
    if len(Section::Crcs) != 4 * total_blocks as u64 {
        return Err(format!("{} bytes of block checksums for {total_blocks} blocks", len(Section::Crcs)));
    }
    if rows == 0 && (f.min_serial, f.max_serial) != (0, 0) || f.min_serial > f.max_serial {
        return Err(format!("a serial range {}..={} for {rows} rows", f.min_serial, f.max_serial));
    }
    Ok(())
}

/// One section as written: where, its block crcs and its whole crc.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub offset: u64,
    pub len: u64,
    pub blocks: Vec<u32>,
    pub crc: u32,
}

impl Written {
    /// Where the next section starts.
    pub(crate) fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// Bytes a [`SectionWriter`] gathers before it checksums and appends them.
const WRITE_OUT: usize = 1 << 20;

/// Bytes of a front-coded table (names, metas) gathered before they go to
/// the section's writer or the scratch file: tables are written out as
/// they are built, not held whole.
pub(crate) const TABLE_DRAIN: usize = 64 << 10;

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
            buf: Vec::with_capacity(WRITE_OUT),
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

    pub(crate) fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        // Checksummed when written out, a stretch at a time: most puts are
        // a few bytes (a term's column, an fst node), and a crc call per
        // put cost more than the bytes did.
        self.buf.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
        if self.buf.len() >= WRITE_OUT {
            self.write_out()?;
        }
        Ok(())
    }

    /// Checksums the buffered bytes (the whole section's and each block's)
    /// and appends them to the file.
    fn write_out(&mut self) -> io::Result<()> {
        let mut at = self.len - self.buf.len() as u64;
        let mut bytes = &self.buf[..];
        self.whole_crc = crc32c::crc32c_append(self.whole_crc, bytes);
        while !bytes.is_empty() {
            let in_block = (at % BLOCK as u64) as usize;
            let take = bytes.len().min(BLOCK - in_block);
            self.block_crc = crc32c::crc32c_append(self.block_crc, &bytes[..take]);
            at += take as u64;
            bytes = &bytes[take..];
            if at.is_multiple_of(BLOCK as u64) {
                self.blocks.push(std::mem::take(&mut self.block_crc));
            }
        }
        self.file.append(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Writes out the rest.
    pub(crate) fn finish(mut self) -> io::Result<Written> {
        self.write_out()?;
        if !self.len.is_multiple_of(BLOCK as u64) {
            self.blocks.push(self.block_crc);
        }
        Ok(Written { offset: self.start, len: self.len, blocks: self.blocks, crc: self.whole_crc })
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

/// Bytes a section's writer builds while another section is being
/// written out (the terms fst and the metas table, which come after the
/// postings): held in memory up to a limit, then appended to a scratch
/// file ([`Storage::scratch`]), and copied into the section at its turn.
/// A merge's tables grow with the segment; this keeps what they hold in
/// memory bounded.
pub(crate) struct Spill<'s> {
    storage: &'s dyn Storage,
    /// Bytes held in memory before the first spill.
    limit: usize,
    buf: Vec<u8>,
    file: Option<Arc<dyn StorageFile>>,
    /// Bytes in the scratch file.
    spilled: u64,
}

impl<'s> Spill<'s> {
    pub(crate) fn new(storage: &'s dyn Storage, limit: usize) -> Spill<'s> {
        Spill { storage, limit, buf: Vec::new(), file: None, spilled: 0 }
    }

    /// The bytes it holds in memory before its first spill.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        let cap = if self.file.is_some() { WRITE_OUT } else { self.limit };
        if self.buf.len() + bytes.len() > cap && !self.buf.is_empty() {
            let file = match &self.file {
                Some(file) => file,
                None => self.file.insert(self.storage.scratch()?),
            };
            file.append(&self.buf)?;
            self.spilled += self.buf.len() as u64;
            if self.buf.capacity() > 2 * WRITE_OUT {
                self.buf = Vec::with_capacity(WRITE_OUT);
            }
            self.buf.clear();
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Puts all of it into `w`, in order.
    pub(crate) fn copy_to(self, w: &mut SectionWriter<'_>) -> io::Result<()> {
        if let Some(file) = &self.file {
            let mut chunk = vec![0; WRITE_OUT];
            let mut at = 0;
            while at < self.spilled {
                let n = (self.spilled - at).min(WRITE_OUT as u64) as usize;
                file.read_at(at, &mut chunk[..n])?;
                w.put(&chunk[..n])?;
                at += n as u64;
            }
        }
        w.put(&self.buf)
    }
}

impl Write for Spill<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.put(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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

/// The sections of a mapped segment file whose footer parsed: whole
/// sections (for those verified at open) and block-verified reads.
pub(crate) struct Sections {
    path: PathBuf,
    map: Mapped,
    /// By [`Section::index`]; inside the map (checked by [`parse_footer`]
    /// against the file's length).
    ranges: [Range<usize>; Section::COUNT],
    /// Block crcs of the [`BLOCKED`] sections, and whether each was
    /// verified (0 = not yet, 1 = good).
    crcs: [Vec<u32>; BLOCKED.len()],
    verified: [Vec<AtomicU8>; BLOCKED.len()],
}

impl Sections {
    /// Lets go of the file's pages read so far (see
    /// [`MappedBytes::release`](crate::storage::MappedBytes::release)).
    pub(crate) fn release_pages(&self) {
        self.map.release();
    }

    /// The sections of `map`, whose footer is `footer`; reads the
    /// block-checksum table, which the caller has verified whole.
    pub(crate) fn new(path: &Path, map: Mapped, footer: &Footer) -> Sections {
        let bytes = (*map).as_ref();
        debug_assert!(footer.sections.iter().all(|r| r.end as usize <= bytes.len()));
        let ranges = footer.sections.clone().map(|r| r.start as usize..r.end as usize);
        let table = &bytes[ranges[Section::Crcs.index()].clone()];
        debug_assert_eq!(table.len(), 4 * footer.total_blocks());
        let mut all = (0..footer.total_blocks()).map(|b| le_u32(table, 4 * b));
        let crcs = BLOCKED.map(|s| all.by_ref().take(footer.blocks(s)).collect());
        let verified = BLOCKED.map(|s| (0..footer.blocks(s)).map(|_| AtomicU8::new(0)).collect());
        Sections { path: path.to_path_buf(), map, ranges, crcs, verified }
    }

    /// `Corrupt` for this file.
    pub(crate) fn corrupt(&self, detail: impl Into<String>) -> Error {
        Error::corrupt(&self.path, detail)
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file.
    pub(crate) fn file_bytes(&self) -> &[u8] {
        (*self.map).as_ref()
    }

    /// The length of section `s`.
    pub(crate) fn len(&self, s: Section) -> u64 {
        self.ranges[s.index()].len() as u64
    }

    /// The whole of section `s`, one of [`WHOLE`] (verified at open).
    pub(crate) fn whole(&self, s: Section) -> &[u8] {
        debug_assert!(WHOLE.contains(&s), "{s} is read by block");
        &self.file_bytes()[self.ranges[s.index()].clone()]
    }

    /// Section `s` as fst wants it.
    pub(crate) fn slice(&self, s: Section) -> Slice {
        Slice { map: self.map.clone(), range: self.ranges[s.index()].clone() }
    }

    /// The bytes `range` of section `s` (one of [`BLOCKED`]), verifying
    /// every block it touches on first use.
    pub(crate) fn read(&self, s: Section, range: Range<u64>) -> crate::error::Result<&[u8]> {
        let section = &self.ranges[s.index()];
        if range.start > range.end || range.end > section.len() as u64 {
            return Err(self.corrupt(format!("a read of {range:?} runs past the {s} section")));
        }
        let (start, end) = (range.start as usize, range.end as usize);
        if end > start {
            for block in start / BLOCK..=(end - 1) / BLOCK {
                self.verify(s, block)?;
            }
        }
        Ok(&self.file_bytes()[section.start + start..section.start + end])
    }

    /// Verifies block `block` of section `s` (one of [`BLOCKED`]), once.
    pub(crate) fn verify(&self, s: Section, block: usize) -> crate::error::Result<()> {
        let b = s.blocked().expect("a block-checked section");
        let (Some(flag), Some(&want)) = (self.verified[b].get(block), self.crcs[b].get(block)) else {
            return Err(self.corrupt(format!("the {s} section has no block {block}")));
        };
        if flag.load(Ordering::Relaxed) == 1 {
            return Ok(());
        }
        let section = &self.ranges[s.index()];
        let from = section.start + block * BLOCK;
        let to = (from + BLOCK).min(section.end);
        let got = crc32c::crc32c(&self.file_bytes()[from..to]);
        if got != want {
            return Err(self.corrupt(format!("{s} block {block} has crc32c {got:#010x}, expected {want:#010x}")));
        }
        flag.store(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many blocks section `s` (one of [`BLOCKED`]) has.
    pub(crate) fn blocks(&self, s: Section) -> usize {
        self.crcs[s.blocked().expect("a block-checked section")].len()
    }

    /// Decodes block `b` of front-coded section `s` (`names` or `metas`,
    /// whose `count` block offsets, `u64` each, start at `index`), calling
    /// `visit` as [`crate::frontcode::decode_block`] does: a block ends
    /// where the next starts, the last where the offsets start.
    pub(crate) fn front_coded_block(
        &self,
        s: Section,
        (count, index): (u64, u64),
        b: u64,
        values: bool,
        visit: &mut dyn FnMut(&[u8], u64) -> bool,
    ) -> crate::error::Result<()> {
        let what = if s == Section::Names { "names" } else { "metas table" };
        let out_of_place = || self.corrupt(format!("block {b} of the {what} is out of place"));
        if b >= count {
            return Err(out_of_place());
        }
        let at = b.checked_mul(8).and_then(|n| n.checked_add(index)).ok_or_else(out_of_place)?;
        let start = le_u64(self.read(s, at..at.saturating_add(8))?, 0);
        let end = if b + 1 < count { le_u64(self.read(s, at + 8..at.saturating_add(16))?, 0) } else { index };
        if start > end || end > index {
            return Err(out_of_place());
        }
        crate::frontcode::decode_block(self.read(s, start..end)?, values, visit)
            .ok_or_else(|| self.corrupt(format!("block {b} of the {what} is damaged")))
    }
}

/// Rewrites every checksum of version 4 segment file `bytes` (each block's
/// in the block-checksum table, each section's in the table of contents,
/// the footer's) to match its bytes, keeping the table of contents as it
/// is. For tests and fuzz seeds: a section edited, then resealed, reaches
/// the checks behind the checksums.
///
/// # Errors
///
/// What [`parse_footer`] says of the footer, which must be intact; a
/// version 3 footer is `Unsupported` here.
#[doc(hidden)]
pub fn reseal(bytes: &mut [u8]) -> Result<(), FooterError> {
    let footer = parse_footer(bytes)?;
    if footer.version < TOC_VERSION {
        return Err(FooterError::Unsupported(footer.version));
    }
    let range = |s: Section| {
        let r = footer.section(s);
        r.start as usize..r.end as usize
    };
    let mut table = Vec::with_capacity(4 * footer.total_blocks());
    for s in BLOCKED {
        for block in bytes[range(s)].chunks(BLOCK) {
            table.extend_from_slice(&crc32c::crc32c(block).to_le_bytes());
        }
    }
    bytes[range(Section::Crcs)].copy_from_slice(&table);
    let start = bytes.len() - footer.len;
    for e in 0..(footer.len - v4::footer_len(0)) / v4::TOC_ENTRY_LEN {
        let entry = start + v4::HEAD_LEN + v4::TOC_ENTRY_LEN * e;
        let s = Section::from_id(le_u32(bytes, entry + v4::ENTRY_ID_AT)).expect("parse_footer knows every id");
        let crc = crc32c::crc32c(&bytes[range(s)]);
        bytes[entry + v4::ENTRY_CRC_AT..][..4].copy_from_slice(&crc.to_le_bytes());
    }
    let crc_at = bytes.len() - v4::TRAILER_LEN + v4::FOOTER_CRC_AT;
    let crc = crc32c::crc32c(&bytes[start..crc_at]);
    bytes[crc_at..][..4].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}
