//! Writing a segment file: the sections in file order, each streamed in its
//! own pass over the sorted entries, then the block-checksum table and the
//! footer (docs/FORMAT.md, "Segments", "Writing").

use std::cell::RefCell;

use crate::bloom::BloomBuilder;
use crate::error::{Error, Result};
use crate::storage::Storage;

use super::format::{
    Footer, Section, SectionWriter, Written, BLOCKED, NAMES_BLOCK, ROW_BODY_LEN, ROW_BODY_OFF, ROW_BYTES, ROW_SERIAL,
    ROW_STAMP_LEN, ROW_STAMP_OFF, TABLE_DRAIN, VERSION,
};
use super::postings::{self, Analyzer};
use super::reader::Segment;

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

/// Where a new segment's inverted index comes from.
pub(crate) enum Terms<'a> {
    /// Analysing each entry's body with this analyzer.
    Analyze(crate::text::Analyzer),
    /// The merged `inputs`' own, renumbered by `remap` (`remap[i][row]`: the
    /// new ordinal of row `row` of `inputs[i]`, or `u32::MAX`), which the
    /// entries fill in as they are visited; or, when an input has no
    /// positions (version 3 or 4), the bodies analysed with `analysis` (the
    /// index's analyzer, which wrote the inputs).
    Merge { inputs: Vec<&'a Segment>, remap: &'a RefCell<Vec<Vec<u32>>>, analysis: crate::text::Analyzer },
}

/// What [`write_segment`] lets the terms fst and the metas table each hold
/// in memory before they spill to a scratch file.
pub const TABLE_BYTES: usize = 32 << 20;

/// Writes segment file `name` from `entries` (strictly increasing URIs),
/// fsyncs the file, and returns its row count. The caller fsyncs the
/// directory. Text parts are analysed with [`Analyzer::Exact`]
/// (crate::text::Analyzer): what low-level tests and benches expect; an
/// index passes its own analyzer to [`write_segment_with`].
pub fn write_segment(storage: &dyn Storage, name: &str, entries: &Entries<'_>) -> Result<u64> {
    write_segment_with(storage, name, entries, Terms::Analyze(crate::text::Analyzer::Exact), TABLE_BYTES)
}

/// [`write_segment`], with the inverted index from `terms`.
///
/// The terms fst and the metas table, built while the postings are written,
/// hold at most `table_bytes` each in memory, the rest in a scratch file.
pub(crate) fn write_segment_with(
    storage: &dyn Storage,
    name: &str,
    entries: &Entries<'_>,
    terms: Terms<'_>,
    table_bytes: usize,
) -> Result<u64> {
    let file = storage.create(name)?;
    let file = file.as_ref();
    // The sections in file order.
    let mut written: Vec<(Section, Written)> = Vec::with_capacity(Section::COUNT);
    let (mut rows, mut min_serial, mut max_serial) = (0u64, u64::MAX, 0u64);

    // Pass 1: bodies; also checks the order, counts the rows and, at a
    // flush, analyses the bodies.
    let mut w = SectionWriter::new(file, 0);
    // The URI before, in one buffer (not one allocation per entry).
    let mut prev = Vec::new();
    // A merge carries its inputs' postings over, unless one predates
    // positions (version 3 or 4): then it analyses the bodies, as a flush.
    let mut analyzer = match &terms {
        Terms::Analyze(analysis) => Some(Analyzer::new(*analysis)),
        Terms::Merge { inputs, analysis, .. } => {
            inputs.iter().any(|seg| !seg.has_positions()).then(|| Analyzer::new(*analysis))
        }
    };
    entries(&mut |e| {
        if rows > 0 && prev.as_slice() >= e.uri {
            return Err(Error::invalid_input("segment entries must come in strictly increasing URI order"));
        }
        prev.clear();
        prev.extend_from_slice(e.uri);
        if let Some(analyzer) = analyzer.as_mut() {
            analyzer.add(rows as u32, e.body);
        }
        rows += 1;
        min_serial = min_serial.min(e.serial);
        max_serial = max_serial.max(e.serial);
        Ok(w.put(e.body)?)
    })?;
    let done = w.finish()?;
    let mut at = done.end();
    written.push((Section::Bodies, done));

    // Pass 2: stamps, and the URI filter (written after the rows).
    let mut bloom = BloomBuilder::new(rows);
    let mut w = SectionWriter::new(file, at);
    entries(&mut |e| {
        bloom.insert(e.uri);
        Ok(w.put(e.stamp.as_bytes())?)
    })?;
    let done = w.finish()?;
    at = done.end();
    written.push((Section::Stamps, done));

    // Pass 3: rows.
    let mut w = SectionWriter::new(file, at);
    let (mut stamp_off, mut body_off) = (0u64, 0u64);
    entries(&mut |e| {
        let mut row = [0u8; ROW_BYTES];
        row[ROW_SERIAL..][..8].copy_from_slice(&e.serial.to_le_bytes());
        row[ROW_STAMP_OFF..][..8].copy_from_slice(&stamp_off.to_le_bytes());
        row[ROW_BODY_OFF..][..8].copy_from_slice(&body_off.to_le_bytes());
        row[ROW_STAMP_LEN..][..4].copy_from_slice(&len_u32(e.stamp.len())?.to_le_bytes());
        row[ROW_BODY_LEN..][..4].copy_from_slice(&len_u32(e.body.len())?.to_le_bytes());
        stamp_off += e.stamp.len() as u64;
        body_off += e.body.len() as u64;
        Ok(w.put(&row)?)
    })?;
    let done = w.finish()?;
    at = done.end();
    written.push((Section::Rows, done));

    // The `uris` section, version 6's fst, stays empty: lookups and ranges
    // search the names.
    let done = SectionWriter::new(file, at).finish()?;
    at = done.end();
    written.push((Section::Uris, done));

    let mut w = SectionWriter::new(file, at);
    w.put(bloom.bytes())?;
    let done = w.finish()?;
    at = done.end();
    written.push((Section::Bloom, done));

    // Pass 4: the URIs in ordinal order, front-coded, written out as they
    // are coded (a merge's may be tens of MiB), then each block's offset.
    let mut w = SectionWriter::new(file, at);
    let mut names = crate::frontcode::Builder::new(NAMES_BLOCK);
    entries(&mut |e| {
        names.push(e.uri, None);
        Ok(names.drain(TABLE_DRAIN, |bytes| w.put(bytes))?)
    })?;
    w.put(&names.finish())?;
    let done = w.finish()?;
    at = done.end();
    written.push((Section::Names, done));

    // The inverted index: norms, postings, terms, metas, parts.
    let search = match (analyzer, terms) {
        (Some(analyzer), _) => analyzer.write(storage, file, at, table_bytes)?,
        (None, Terms::Merge { inputs, remap, .. }) => {
            let inputs: Vec<_> = inputs.iter().map(|seg| seg.inverted()).collect();
            postings::write_merged(&inputs, &remap.borrow(), storage, file, at, table_bytes)?
        }
        (None, Terms::Analyze(_)) => unreachable!("an analyzer is made for Terms::Analyze"),
    };
    for (section, done) in search {
        at = done.end();
        written.push((section, done));
    }

    // The block-checksum table, in the order of BLOCKED.
    let mut w = SectionWriter::new(file, at);
    for s in BLOCKED {
        let (_, done) = written.iter().find(|(w, _)| *w == s).expect("every block-checked section was written");
        for crc in &done.blocks {
            w.put(&crc.to_le_bytes())?;
        }
    }
    written.push((Section::Crcs, w.finish()?));

    let mut footer = Footer {
        version: VERSION,
        rows,
        min_serial: if rows == 0 { 0 } else { min_serial },
        max_serial,
        len: 0,
        sections: Default::default(),
        crcs: [None; Section::COUNT],
    };
    debug_assert_eq!(written.iter().map(|(s, _)| *s).collect::<Vec<_>>(), Section::ALL);
    for (s, done) in &written {
        footer.sections[s.index()] = done.offset..done.end();
        footer.crcs[s.index()] = Some(done.crc);
    }
    file.append(&footer.encode())?;
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
        // The entries gave up (a merge whose index closed) or the storage
        // failed: nothing to compare with.
        Err(Error::Io(_) | Error::Closed) => {}
        Err(e) => panic!("{name} does not read back: {e}"),
    }
}

fn len_u32(len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::invalid_input("a stamp or body of 4 GiB or more cannot be stored"))
}
