//! The operation log: framing, writing and recovery.
//!
//! Every mutating operation is appended to the log as part of one *frame*
//! before it is applied in memory; after a crash, [`recover`] replays the
//! frames in order. The log is split in files, one per memtable generation
//! (`wal-<gen>.log`). The byte layout and the recovery rule are written down
//! in `docs/FORMAT.md`, section "Log"; this module is their only
//! implementation.
//!
//! The frame payload is opaque here: the index encodes its records with
//! `postcard` straight into the writer's buffer ([`WalWriter::append`]) and
//! decodes them in the `apply` callback of [`recover`].
//!
//! Writing is split in three steps so that the index can do group commit:
//! [`WalWriter::append`] encodes into memory (the hot path: no I/O, one crc per
//! frame), [`WalWriter::write_out`] hands the buffer to the file (no fsync),
//! and the index fsyncs [`WalWriter::file`] outside its writer lock.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::{Storage, StorageFile};

/// Bytes before a frame's payload: `len` u32, `crc32c` u32, `serial` u64, `kind` u8.
pub const FRAME_HEADER_BYTES: usize = 17;

/// Bytes of the header at the start of every log file: magic, version, crc32c.
pub const FILE_HEADER_BYTES: usize = 16;

/// The first 8 bytes of every log file. `\r\n` catches text-mode mangling.
const MAGIC: &[u8; 8] = b"PDXWAL\r\n";

/// The log format version written in the file header.
const VERSION: u32 = 1;

/// Where the crc of a frame starts: it covers serial, kind and payload.
const CRC_START: usize = 8;

/// How far above the last good serial a frame found after a bad one may be
/// and still count as a real frame (see [`find_valid_frame`]). No log file
/// holds 2^40 operations; random bytes land in this window about once in
/// 2^24 offsets, so the expensive crc check almost never runs on garbage.
const SERIAL_WINDOW: u64 = 1 << 40;

/// A buffer that grew past this (a huge batch) is given back after
/// [`WalWriter::write_out`], so that one big batch does not pin its memory.
const KEEP_BUFFER_CAPACITY: usize = 4 << 20;

/// The name of the log file of generation `gen`: `wal-<gen>.log`.
pub fn log_name(gen: u64) -> String {
    format!("wal-{gen}.log")
}

/// The generation of a log file name written by [`log_name`]; `None` for
/// any other name.
///
/// Only the canonical spelling is accepted (no sign, no leading zero), so two
/// different files can never claim the same generation.
pub fn parse_log_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// The 16 bytes that start every log file.
fn file_header() -> [u8; FILE_HEADER_BYTES] {
    let mut header = [0; FILE_HEADER_BYTES];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    let crc = crc32c::crc32c(&header[..12]);
    header[12..].copy_from_slice(&crc.to_le_bytes());
    header
}

fn poisoned_error(why: &str) -> Error {
    Error::Io(io::Error::other(format!("log poisoned by an earlier I/O error: {why}")))
}

/// Appends frames to one log file through an in-memory buffer.
///
/// Not synchronized itself: the index keeps it under its writer lock.
/// [`append`](WalWriter::append) never writes to the file, whatever the size of
/// the buffer: the caller decides when to [`write_out`](WalWriter::write_out)
/// (at every sync, and when [`buffer_len`](WalWriter::buffer_len) passes a
/// bound of its choosing, e.g. 1 MiB, to keep memory flat during long runs
/// without a sync).
///
/// After an I/O error the writer is *poisoned*: the file may end in a part of
/// a frame, so nothing more may be added to it; every later `write_out`
/// returns an error until the index is reopened and recovery cuts the torn
/// tail.
pub struct WalWriter {
    file: Arc<dyn StorageFile>,
    gen: u64,
    /// Bytes handed to the file so far, header included.
    written: u64,
    /// Whole frames not yet handed to the file.
    buf: Vec<u8>,
    /// Why the writer is poisoned (the first reason wins).
    poisoned: Option<String>,
}

impl fmt::Debug for WalWriter {
    // The buffer can hold megabytes of frames: show its length, not its bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalWriter")
            .field("gen", &self.gen)
            .field("written", &self.written)
            .field("buffered", &self.buf.len())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl WalWriter {
    /// Creates `wal-<gen>.log` with its header, fsyncs the file and the
    /// directory.
    ///
    /// A file of that name is replaced: the caller owns the numbering and
    /// must only create generations newer than every existing log. Once this
    /// returns, the file survives a crash, so recovery never sees a torn
    /// header on any file but the last.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be created, written or fsynced.
    pub fn create(storage: &dyn Storage, gen: u64) -> Result<WalWriter> {
        let file = storage.create(&log_name(gen))?;
        file.append(&file_header())?;
        file.sync()?;
        storage.sync_dir()?;
        Ok(WalWriter::at_end(file, gen, FILE_HEADER_BYTES as u64))
    }

    fn at_end(file: Arc<dyn StorageFile>, gen: u64, len: u64) -> WalWriter {
        WalWriter { file, gen, written: len, buf: Vec::new(), poisoned: None }
    }

    /// Encodes one frame into the buffer.
    ///
    /// `serial` is the serial of the frame's first operation; `kind` and the
    /// payload mean something to the index only. `payload` writes the payload
    /// bytes by appending them to the given `Vec` (so callers can
    /// `postcard::to_extend` straight into the buffer without a temporary); it
    /// must not touch the bytes already there. Length and crc are filled in
    /// afterwards, over the bytes already in the buffer.
    ///
    /// Nothing is written to the file: see [`write_out`](WalWriter::write_out).
    /// On a poisoned writer this does nothing (the next `write_out` reports the
    /// error). A payload of 4 GiB or more cannot be framed: the frame is
    /// dropped and the writer poisoned.
    #[inline]
    pub fn append(&mut self, serial: u64, kind: u8, payload: impl FnOnce(&mut Vec<u8>)) {
        if self.poisoned.is_some() {
            return;
        }
        let start = self.buf.len();
        let mut header = [0; FRAME_HEADER_BYTES];
        header[8..16].copy_from_slice(&serial.to_le_bytes());
        header[16] = kind;
        self.buf.extend_from_slice(&header);
        payload(&mut self.buf);
        let end = self.buf.len();
        if end < start + FRAME_HEADER_BYTES {
            // The closure replaced or cut the buffer: the frames in it can no
            // longer be trusted, and neither can the caller's view of them.
            self.poison("a payload writer removed bytes from the log buffer");
            return;
        }
        let Ok(len) = u32::try_from(end - start - FRAME_HEADER_BYTES) else {
            let bytes = end - start - FRAME_HEADER_BYTES;
            self.buf.truncate(start);
            self.poison(&format!(
                "a payload of {bytes} bytes does not fit in one log frame (at most {} bytes)",
                u32::MAX
            ));
            return;
        };
        let crc = crc32c::crc32c(&self.buf[start + CRC_START..]);
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    /// The number of bytes in the buffer: a mark for
    /// [`truncate_buffer`](WalWriter::truncate_buffer).
    pub fn buffer_len(&self) -> usize {
        self.buf.len()
    }

    /// Discards the frames appended since the buffer length `mark` (for a
    /// batch that fails half-way while encoding).
    ///
    /// `mark` must come from [`buffer_len`](WalWriter::buffer_len) with no
    /// [`write_out`](WalWriter::write_out) in between: frames already handed
    /// to the file cannot be taken back.
    pub fn truncate_buffer(&mut self, mark: usize) {
        debug_assert!(
            mark <= self.buf.len() || self.poisoned.is_some(),
            "mark {mark} is past the buffer's {} bytes: was there a write_out since?",
            self.buf.len()
        );
        self.buf.truncate(mark);
    }

    /// Writes the buffer to the file (no fsync), leaving the buffer empty.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the write fails; the writer is then poisoned and every
    /// later call returns an error of kind [`io::ErrorKind::Other`] ("log
    /// poisoned by an earlier I/O error: ...").
    pub fn write_out(&mut self) -> Result<()> {
        if let Some(why) = &self.poisoned {
            return Err(poisoned_error(why));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.append(&self.buf) {
            // Part of the buffer may be in the file: appending more after it
            // would hide good frames behind a torn one.
            self.poison(&e.to_string());
            return Err(Error::Io(e));
        }
        self.written += self.buf.len() as u64;
        self.buf.clear();
        if self.buf.capacity() > KEEP_BUFFER_CAPACITY {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Whether an I/O error (or [`poison`](WalWriter::poison)) has stopped
    /// this writer.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Stops the writer for good: the index calls this when an fsync of the
    /// file fails, since the kernel may have dropped the unsynced pages and
    /// a retried fsync would succeed without them. Buffered frames are
    /// discarded; the first reason is kept.
    pub fn poison(&mut self, why: &str) {
        if self.poisoned.is_none() {
            self.poisoned = Some(why.to_owned());
        }
        self.buf = Vec::new();
    }

    /// The file, to fsync it outside the writer lock (group commit is done
    /// by the index).
    pub fn file(&self) -> Arc<dyn StorageFile> {
        Arc::clone(&self.file)
    }

    /// The generation of the file: it is `wal-<gen>.log`.
    pub fn gen(&self) -> u64 {
        self.gen
    }

    /// Bytes in the file plus the buffer.
    // Never empty (the file header counts), so no `is_empty`.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.written + self.buf.len() as u64
    }
}

/// One recovered frame, borrowed from the mapped file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The serial of the frame's first operation.
    pub serial: u64,
    /// What the payload holds; meaningful to the index only.
    pub kind: u8,
    /// The payload bytes, as appended.
    pub payload: &'a [u8],
}

/// What [`recover`] found, and where writing goes on.
#[derive(Debug)]
pub struct Recovery {
    /// The log generations found (those >= `from_gen`), ascending. Empty when
    /// there was none; the writer's fresh file is then not listed.
    pub gens: Vec<u64>,
    /// The writer positioned at the end of the last log (created fresh as
    /// gen `from_gen.max(1)` when there was none).
    pub writer: WalWriter,
}

/// Replays every log file with gen >= `from_gen` in order, calling `apply`
/// for each valid frame, and returns a writer that appends to the end of the
/// last file.
///
/// The recovery rule (`docs/FORMAT.md`, "Log"): frames are read in order; the
/// first bad frame (incomplete header, length past the end of the file, crc
/// mismatch) ends the log. In the last file, if no valid frame with a higher
/// serial can be found at any byte offset after it, it is a torn tail and the
/// file is cut right before it. A last file shorter than its header (or all
/// zeros) is a torn creation and gets a fresh header.
///
/// Before returning, every replayed file is fsynced, and the directory too,
/// so that everything passed to `apply` is durable (DESIGN.md, "Open syncs
/// what it recovers"). Log files with gen < `from_gen` are left alone (the
/// caller removes them).
///
/// # Errors
///
/// * [`Error::Corrupt`] naming the file and the offset: a bad frame followed
///   by a valid one, a bad frame in a file that is not the last, a serial
///   lower than the one before it, a damaged or unknown file header.
/// * The error of `apply`, which aborts recovery.
/// * [`Error::Io`].
///
/// `apply` may have been called for some frames before an error: the caller
/// discards what it built.
pub fn recover(
    storage: &dyn Storage,
    from_gen: u64,
    mut apply: impl FnMut(Frame<'_>) -> Result<()>,
) -> Result<Recovery> {
    let mut gens: Vec<u64> =
        storage.list()?.iter().filter_map(|name| parse_log_name(name)).filter(|&gen| gen >= from_gen).collect();
    gens.sort_unstable();
    let Some(&last_gen) = gens.last() else {
        let writer = WalWriter::create(storage, from_gen.max(1))?;
        return Ok(Recovery { gens, writer });
    };

    let mut last_serial = 0;
    let mut writer = None;
    for &gen in &gens {
        let is_last = gen == last_gen;
        let name = log_name(gen);
        let path = storage.root().join(&name);
        let end = {
            let map = storage.map(&name)?;
            replay_file((*map).as_ref(), &path, is_last, &mut last_serial, &mut apply)?
            // The map is dropped here, before the file is cut.
        };
        let file = storage.open(&name)?;
        let len = match end {
            FileEnd::Clean { len } => len,
            FileEnd::Torn { at } => {
                file.set_len(at as u64)?;
                at as u64
            }
            FileEnd::TornCreation => {
                file.set_len(0)?;
                file.append(&file_header())?;
                FILE_HEADER_BYTES as u64
            }
        };
        // Even an untouched file may hold pages written by a process that
        // died before its fsync: what we replayed must be on disk before the
        // index calls it Synced.
        file.sync()?;
        if is_last {
            writer = Some(WalWriter::at_end(file, gen, len));
        }
    }
    // A crash right after `create` can leave the last file's entry unsynced.
    storage.sync_dir()?;
    let writer = writer.ok_or_else(|| io::Error::other("no last log file"))?;
    Ok(Recovery { gens, writer })
}

/// How one log file ends, as found by [`replay_file`].
#[derive(Debug, PartialEq, Eq)]
enum FileEnd {
    /// Every byte belongs to a valid frame; the file is `len` bytes.
    Clean { len: u64 },
    /// A torn tail starts at byte `at`.
    Torn { at: usize },
    /// The file is shorter than its header, or all zeros: it was being
    /// created when the process died.
    TornCreation,
}

/// Why a frame is bad.
#[derive(Debug, PartialEq, Eq)]
enum BadFrame {
    ShortHeader { have: usize },
    PastEnd { len: u32, have: usize },
    Crc { stored: u32, computed: u32 },
}

impl fmt::Display for BadFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadFrame::ShortHeader { have } => {
                write!(f, "incomplete frame header: {have} bytes left, expected {FRAME_HEADER_BYTES}")
            }
            BadFrame::PastEnd { len, have } => {
                write!(f, "frame length {len} runs past the end of the file ({have} payload bytes left)")
            }
            BadFrame::Crc { stored, computed } => {
                write!(f, "frame crc32c mismatch: expected {stored:#010x} (stored), found {computed:#010x}")
            }
        }
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(b)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b)
}

/// Decodes and checks the frame starting at `data[pos..]`.
fn decode_frame(data: &[u8], pos: usize) -> std::result::Result<Frame<'_>, BadFrame> {
    let rest = &data[pos..];
    if rest.len() < FRAME_HEADER_BYTES {
        return Err(BadFrame::ShortHeader { have: rest.len() });
    }
    let len = le_u32(rest);
    let have = rest.len() - FRAME_HEADER_BYTES;
    let Some(end) = usize::try_from(len).ok().filter(|&l| l <= have) else {
        return Err(BadFrame::PastEnd { len, have });
    };
    let end = FRAME_HEADER_BYTES + end;
    let stored = le_u32(&rest[4..]);
    let computed = crc32c::crc32c(&rest[CRC_START..end]);
    if stored != computed {
        return Err(BadFrame::Crc { stored, computed });
    }
    Ok(Frame { serial: le_u64(&rest[8..]), kind: rest[16], payload: &rest[FRAME_HEADER_BYTES..end] })
}

/// Checks the file header. `Ok(false)`: a torn creation (only possible in
/// the last file).
fn check_file_header(data: &[u8], path: &Path, is_last: bool) -> Result<bool> {
    if data.len() < FILE_HEADER_BYTES {
        if is_last {
            return Ok(false);
        }
        return Err(Error::corrupt(
            path,
            format!(
                "log file of {} bytes is shorter than its {FILE_HEADER_BYTES}-byte header, \
                 and only the last log file may be torn",
                data.len()
            ),
        ));
    }
    let header = &data[..FILE_HEADER_BYTES];
    if &header[..8] != MAGIC {
        // Created, then the size reached the disk but the header did not.
        if is_last && data.iter().all(|&b| b == 0) {
            return Ok(false);
        }
        return Err(Error::corrupt(
            path,
            format!(
                "not a pushdex log: expected magic \"{}\", found \"{}\"",
                MAGIC.escape_ascii(),
                header[..8].escape_ascii()
            ),
        ));
    }
    let stored = le_u32(&header[12..]);
    let computed = crc32c::crc32c(&header[..12]);
    if stored != computed {
        return Err(Error::corrupt(
            path,
            format!("log file header crc32c mismatch: expected {stored:#010x} (stored), found {computed:#010x}"),
        ));
    }
    let version = le_u32(&header[8..]);
    if version != VERSION {
        return Err(Error::corrupt(
            path,
            format!("unsupported log format version: expected {VERSION}, found {version}"),
        ));
    }
    Ok(true)
}

/// Replays the frames of one file, applying the recovery rule.
///
/// `last_serial` is the serial of the last good frame so far (0 before the
/// first); it carries over from file to file.
fn replay_file<F: FnMut(Frame<'_>) -> Result<()>>(
    data: &[u8],
    path: &Path,
    is_last: bool,
    last_serial: &mut u64,
    apply: &mut F,
) -> Result<FileEnd> {
    if !check_file_header(data, path, is_last)? {
        return Ok(FileEnd::TornCreation);
    }
    let mut pos = FILE_HEADER_BYTES;
    while pos < data.len() {
        let bad = match decode_frame(data, pos) {
            Ok(frame) => {
                // The writer hands out serials in order: a step back means
                // frames from elsewhere, and replaying them would reorder.
                if frame.serial < *last_serial {
                    return Err(Error::corrupt(
                        path,
                        format!(
                            "frame at offset {pos} has serial {}, lower than the serial {} before it",
                            frame.serial, *last_serial
                        ),
                    ));
                }
                *last_serial = frame.serial;
                pos += FRAME_HEADER_BYTES + frame.payload.len();
                apply(frame)?;
                continue;
            }
            Err(bad) => bad,
        };
        if !is_last {
            return Err(Error::corrupt(
                path,
                format!(
                    "bad frame at offset {pos} ({bad}) in a log file that is not the last: \
                     only the last log file may end in a torn frame"
                ),
            ));
        }
        if let Some((at, serial)) = find_valid_frame(data, pos + 1, *last_serial) {
            return Err(Error::corrupt(
                path,
                format!(
                    "bad frame at offset {pos} ({bad}) is followed by a valid frame at offset \
                     {at} (serial {serial}): the log is damaged in the middle, not torn at its end"
                ),
            ));
        }
        return Ok(FileEnd::Torn { at: pos });
    }
    Ok(FileEnd::Clean { len: data.len() as u64 })
}

/// The first offset >= `from` holding a valid frame whose serial is above
/// `last_serial`, with that serial.
///
/// Runs only on the damage path, over every byte offset: the serial window
/// and the length are checked before any crc is computed, so zeros, text
/// and stale copies of older frames (serial <= `last_serial`, e.g. a log file
/// indexed as a document) are skipped without hashing.
fn find_valid_frame(data: &[u8], from: usize, last_serial: u64) -> Option<(usize, u64)> {
    let last_start = data.len().checked_sub(FRAME_HEADER_BYTES)?;
    let highest = last_serial.saturating_add(SERIAL_WINDOW);
    (from..=last_start).find_map(|at| {
        let serial = le_u64(&data[at + 8..]);
        if serial <= last_serial || serial > highest {
            return None;
        }
        let len = le_u32(&data[at..]) as usize;
        if len > data.len() - at - FRAME_HEADER_BYTES {
            return None;
        }
        decode_frame(data, at).ok().map(|frame| (at, frame.serial))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsStorage;

    /// A frame as written: serial, kind, payload.
    type Rec = (u64, u8, Vec<u8>);

    fn frames_bytes(frames: &[Rec]) -> Vec<u8> {
        let mut bytes = file_header().to_vec();
        for (serial, kind, payload) in frames {
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            let mut covered = serial.to_le_bytes().to_vec();
            covered.push(*kind);
            covered.extend_from_slice(payload);
            bytes.extend_from_slice(&crc32c::crc32c(&covered).to_le_bytes());
            bytes.extend_from_slice(&covered);
        }
        bytes
    }

    fn replay(data: &[u8], is_last: bool) -> (Result<FileEnd>, Vec<Rec>) {
        let mut seen = Vec::new();
        let mut last = 0;
        let end = replay_file(data, Path::new("wal-1.log"), is_last, &mut last, &mut |f: Frame<'_>| {
            seen.push((f.serial, f.kind, f.payload.to_vec()));
            Ok(())
        });
        (end, seen)
    }

    fn sample() -> Vec<Rec> {
        vec![(1, 1, b"one".to_vec()), (2, 2, Vec::new()), (3, 1, vec![7; 300]), (7, 3, b"batch of four".to_vec())]
    }

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        for gen in [0, 1, 9, 10, 12345, u64::MAX] {
            assert_eq!(parse_log_name(&log_name(gen)), Some(gen));
        }
        assert_eq!(log_name(42), "wal-42.log");
        for name in [
            "wal-.log",
            "wal-01.log",
            "wal-+1.log",
            "wal--1.log",
            "wal-1.log.tmp",
            "wal-1.LOG",
            "xwal-1.log",
            "wal-18446744073709551616.log",
            "wal-1a.log",
            "MANIFEST",
        ] {
            assert_eq!(parse_log_name(name), None, "{name}");
        }
    }

    #[test]
    fn header_layout() {
        let h = file_header();
        assert_eq!(&h[..8], b"PDXWAL\r\n");
        assert_eq!(&h[8..12], &[1, 0, 0, 0]);
        assert_eq!(le_u32(&h[12..]), crc32c::crc32c(&h[..12]));
    }

    #[test]
    fn append_encodes_the_documented_layout() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let mut w = WalWriter::create(&storage, 3).unwrap();
        assert_eq!(w.len(), FILE_HEADER_BYTES as u64);
        for (serial, kind, payload) in sample() {
            w.append(serial, kind, |buf| buf.extend_from_slice(&payload));
        }
        let expected = frames_bytes(&sample());
        assert_eq!(w.len(), expected.len() as u64);
        assert_eq!(w.buffer_len(), expected.len() - FILE_HEADER_BYTES);
        w.write_out().unwrap();
        assert_eq!(w.buffer_len(), 0);
        assert_eq!(w.len(), expected.len() as u64);
        let on_disk = std::fs::read(dir.path().join("wal-3.log")).unwrap();
        assert_eq!(on_disk, expected);
        assert_eq!(w.gen(), 3);
        let debug = format!("{w:?}");
        assert!(debug.contains("gen: 3"), "{debug}");
    }

    #[test]
    fn clean_file_replays_every_frame() {
        let data = frames_bytes(&sample());
        let (end, seen) = replay(&data, false);
        assert_eq!(end.unwrap(), FileEnd::Clean { len: data.len() as u64 });
        assert_eq!(seen, sample());
    }

    #[test]
    fn every_cut_is_a_torn_tail_at_the_last_boundary() {
        let frames = sample();
        let data = frames_bytes(&frames);
        let mut boundaries = vec![FILE_HEADER_BYTES];
        for (_, _, p) in &frames {
            boundaries.push(boundaries.last().unwrap() + FRAME_HEADER_BYTES + p.len());
        }
        for cut in FILE_HEADER_BYTES..data.len() {
            let whole = boundaries.iter().filter(|&&b| b <= cut).count() - 1;
            let (end, seen) = replay(&data[..cut], true);
            let expected_end = if boundaries[whole] == cut {
                FileEnd::Clean { len: cut as u64 }
            } else {
                FileEnd::Torn { at: boundaries[whole] }
            };
            assert_eq!(end.unwrap(), expected_end, "cut at {cut}");
            assert_eq!(seen, frames[..whole], "cut at {cut}");
        }
    }

    #[test]
    fn a_cut_in_a_file_that_is_not_the_last_is_corrupt() {
        let data = frames_bytes(&sample());
        let (end, _) = replay(&data[..data.len() - 1], false);
        assert!(matches!(end, Err(Error::Corrupt { .. })), "{end:?}");
    }

    #[test]
    fn damage_before_a_valid_frame_is_corrupt_and_names_the_offset() {
        let mut data = frames_bytes(&sample());
        let second = FILE_HEADER_BYTES + FRAME_HEADER_BYTES + 3;
        data[second + 8] ^= 0x40; // the serial of the second frame
        let (end, seen) = replay(&data, true);
        match end {
            Err(Error::Corrupt { detail, .. }) => {
                assert!(detail.contains(&format!("offset {second}")), "{detail}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn zeros_after_the_frames_are_a_torn_tail() {
        let mut data = frames_bytes(&sample());
        let len = data.len();
        data.resize(len + 4096, 0);
        let (end, seen) = replay(&data, true);
        assert_eq!(end.unwrap(), FileEnd::Torn { at: len });
        assert_eq!(seen, sample());
    }

    #[test]
    fn stale_frames_with_old_serials_after_damage_do_not_count() {
        // A torn frame whose payload holds a copy of older frames (a log
        // indexed as a document): their serials are not above the last good
        // one, so the tail is torn, not corrupt.
        let old = frames_bytes(&sample()[..2]);
        let mut data = frames_bytes(&[(5, 1, b"x".to_vec()), (6, 1, old.clone())]);
        data.truncate(data.len() - 1);
        let (end, seen) = replay(&data, true);
        assert_eq!(end.unwrap(), FileEnd::Torn { at: FILE_HEADER_BYTES + FRAME_HEADER_BYTES + 1 });
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn serials_going_back_are_corrupt() {
        let data = frames_bytes(&[(5, 1, Vec::new()), (5, 1, Vec::new()), (4, 1, Vec::new())]);
        let (end, seen) = replay(&data, true);
        assert!(matches!(end, Err(Error::Corrupt { .. })), "{end:?}");
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn headers() {
        let path = Path::new("wal-1.log");
        let good = file_header();
        assert!(check_file_header(&good, path, false).unwrap());
        for n in 0..FILE_HEADER_BYTES {
            assert!(!check_file_header(&good[..n], path, true).unwrap());
            assert!(check_file_header(&good[..n], path, false).is_err());
        }
        assert!(!check_file_header(&[0; 64], path, true).unwrap());
        assert!(check_file_header(&[0; 64], path, false).is_err());

        let mut bad_magic = good;
        bad_magic[0] = b'X';
        let Err(Error::Corrupt { detail, .. }) = check_file_header(&bad_magic, path, true) else {
            panic!("bad magic accepted");
        };
        assert!(detail.contains("expected magic \"PDXWAL\\r\\n\", found \"XDXWAL\\r\\n\""), "{detail}");

        let mut bad_crc = good;
        bad_crc[13] ^= 1;
        assert!(check_file_header(&bad_crc, path, true).is_err());

        let mut v2 = good;
        v2[8] = 2;
        let crc = crc32c::crc32c(&v2[..12]);
        v2[12..].copy_from_slice(&crc.to_le_bytes());
        let Err(Error::Corrupt { detail, .. }) = check_file_header(&v2, path, true) else {
            panic!("version 2 accepted");
        };
        assert!(detail.contains("expected 1, found 2"), "{detail}");
    }

    #[test]
    fn truncate_buffer_drops_a_half_encoded_batch() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let mut w = WalWriter::create(&storage, 1).unwrap();
        w.append(1, 1, |b| b.extend_from_slice(b"kept"));
        let mark = w.buffer_len();
        w.append(2, 1, |b| b.extend_from_slice(b"dropped"));
        w.append(3, 1, |b| b.extend_from_slice(b"dropped too"));
        w.truncate_buffer(mark);
        w.append(2, 1, |b| b.extend_from_slice(b"instead"));
        w.write_out().unwrap();
        drop(w);
        let mut seen = Vec::new();
        let r = recover(&storage, 1, |f| {
            seen.push(f.payload.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [b"kept".to_vec(), b"instead".to_vec()]);
        assert_eq!(r.gens, [1]);
    }

    #[derive(Debug)]
    struct FailingFile;

    impl StorageFile for FailingFile {
        fn append(&self, _: &[u8]) -> io::Result<()> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        }
        fn read_at(&self, _: u64, _: &mut [u8]) -> io::Result<()> {
            Ok(())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(0)
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn sync(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_poisons_the_writer() {
        let mut w = WalWriter::at_end(Arc::new(FailingFile), 1, 16);
        w.write_out().unwrap(); // nothing buffered, nothing written
        w.append(1, 1, |b| b.push(1));
        let Err(Error::Io(first)) = w.write_out() else { panic!("write succeeded") };
        assert_eq!(first.kind(), io::ErrorKind::StorageFull);
        assert!(w.is_poisoned());
        assert_eq!(w.buffer_len(), 0);
        w.append(2, 1, |b| b.push(2));
        assert_eq!(w.buffer_len(), 0, "a poisoned writer buffers nothing");
        w.truncate_buffer(100);
        for _ in 0..2 {
            let Err(Error::Io(later)) = w.write_out() else { panic!("poisoned write succeeded") };
            assert_eq!(later.kind(), io::ErrorKind::Other);
            assert!(later.to_string().starts_with("log poisoned by an earlier I/O error: disk full"), "{later}");
        }
    }

    #[test]
    fn poison_by_the_index_keeps_the_first_reason() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let mut w = WalWriter::create(&storage, 1).unwrap();
        w.append(1, 1, |b| b.push(1));
        w.poison("fsync failed: EIO");
        w.poison("second");
        assert!(w.is_poisoned());
        let Err(e) = w.write_out() else { panic!("poisoned write succeeded") };
        assert!(e.to_string().contains("fsync failed: EIO"), "{e}");
        assert_eq!(std::fs::metadata(dir.path().join("wal-1.log")).unwrap().len(), 16);
    }

    #[test]
    fn a_payload_writer_that_replaces_the_buffer_poisons() {
        let mut w = WalWriter::at_end(Arc::new(FailingFile), 1, 16);
        w.append(1, 1, |b| b.extend_from_slice(b"abc"));
        w.append(2, 1, |b| *b = Vec::new());
        assert!(w.is_poisoned());
        assert!(w.write_out().is_err());
    }

    #[test]
    fn no_log_creates_one_at_from_gen() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let r = recover(&storage, 0, |_| panic!("nothing to replay")).unwrap();
        assert!(r.gens.is_empty());
        assert_eq!(r.writer.gen(), 1);
        assert_eq!(r.writer.len(), 16);
        let r = recover(&storage, 5, |_| panic!("nothing to replay")).unwrap();
        assert!(r.gens.is_empty());
        assert_eq!(r.writer.gen(), 5);
        assert!(dir.path().join("wal-5.log").exists());
    }
}
