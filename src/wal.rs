//! The operation log: framing, writing and recovery.
//!
//! Every mutating operation is appended to the log as part of one *frame*
//! before it is applied in memory; after a crash, [`recover`] replays the
//! frames in order. The log is split in files (`wal-<gen>.log`); each open
//! of the index starts a new one. The byte layout and the recovery rule are
//! written down in `docs/FORMAT.md`, section "Log"; this module is their
//! only implementation.
//!
//! Every file carries a random 64-bit *salt*, drawn when it is created, that
//! seeds the 64-bit check of each of its frames. Bytes that were not framed
//! by this very file's writer (a document's contents, another log, zeros)
//! therefore pass as a frame with probability 2^-64 per offset, so the
//! search for a good frame after a bad one, which tells damage in the middle
//! of the log from a torn tail, cannot be fooled by what a torn frame
//! carried.
//!
//! The frame payload is opaque here: the index encodes its records with
//! `postcard` straight into the writer's buffer ([`WalWriter::append`]) and
//! decodes them in the `apply` callback of [`recover`].
//!
//! Writing is split in three steps so that the index can do group commit:
//! [`WalWriter::append`] encodes into memory (the hot path: no I/O, one hash
//! per frame), [`WalWriter::write_out`] hands the buffer to the file (no
//! fsync), and the index fsyncs [`WalWriter::file`] outside its writer lock.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::error::{Error, Result};
use crate::files::FileName;
use crate::storage::{Storage, StorageFile};

/// Bytes before a frame's payload: `check` u64, `len` u32, `serial` u64, `kind` u8.
pub const FRAME_HEADER_BYTES: usize = 21;

/// Bytes of the header at the start of every log file: magic, version,
/// crc32c, salt, check.
pub const FILE_HEADER_BYTES: usize = 32;

/// The first 8 bytes of every log file. `\r\n` catches text-mode mangling.
const MAGIC: &[u8; 8] = b"PDXWAL\r\n";

/// The log format version this code writes.
pub const VERSION: u32 = 2;

/// The log format versions this code reads: version 1 files (written by
/// earlier releases) are replayed as they are; the next open writes on in a
/// new version 2 file.
pub const SUPPORTED_VERSIONS: (u32, u32) = (1, 2);

/// Version 1's file header (magic, version, crc32c) and frame header
/// (`len` u32, `crc32c` u32, `serial` u64, `kind` u8).
const V1_FILE_HEADER_BYTES: usize = 16;
const V1_FRAME_HEADER_BYTES: usize = 17;

/// Where a frame's check starts covering: everything after the check.
const CHECKED_FROM: usize = 8;

/// How far above the last good serial a frame found after a bad one may be
/// and still count as a real frame (see [`find_valid_frame`]). No log file
/// holds 2^40 operations; random bytes land in this window about once in
/// 2^24 offsets, so the hash almost never runs on garbage.
const SERIAL_WINDOW: u64 = 1 << 40;

/// A buffer that grew past this (a huge batch) is given back after
/// [`WalWriter::write_out`], so that one big batch does not pin its memory.
const KEEP_BUFFER_CAPACITY: usize = 4 << 20;

/// The name of the log file of generation `gen`: `wal-<gen>.log`.
pub fn log_name(gen: u64) -> String {
    FileName::Log(gen).to_string()
}

/// The generation of a log file name written by [`log_name`]; `None` for
/// any other name (see [`FileName::parse`]: only the canonical spelling).
pub fn parse_log_name(name: &str) -> Option<u64> {
    match FileName::parse(name)? {
        FileName::Log(gen) => Some(gen),
        _ => None,
    }
}

/// The 32 bytes that start a version 2 log file with this salt.
pub fn file_header(salt: u64) -> [u8; FILE_HEADER_BYTES] {
    let mut header = [0; FILE_HEADER_BYTES];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    // Bytes 0..16 have version 1's layout, so that any release reads the
    // version before anything else it might call damage.
    let crc = crc32c::crc32c(&header[..12]);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    header[16..24].copy_from_slice(&salt.to_le_bytes());
    let check = xxh3_64(&header[..24]);
    header[24..32].copy_from_slice(&check.to_le_bytes());
    header
}

/// A new file's salt: random, so that no two files (of this index or any
/// other) share one.
fn new_salt() -> Result<u64> {
    getrandom::u64().map_err(|e| Error::Io(io::Error::other(format!("no random salt for a new log file: {e}"))))
}

/// The check of a version 2 frame: xxh3-64 seeded with the file's salt over
/// the frame after the check (length, serial, kind, payload).
#[inline]
pub fn frame_check(salt: u64, checked: &[u8]) -> u64 {
    xxh3_64_with_seed(checked, salt)
}

fn poisoned_error(why: &str) -> Error {
    Error::Poisoned { reason: why.to_owned() }
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
    salt: u64,
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
    /// Creates `wal-<gen>.log` with its header and a new random salt, fsyncs
    /// the file and the directory.
    ///
    /// A file of that name is replaced: the caller owns the numbering and
    /// must only create generations newer than every existing log. Once this
    /// returns, the header is durable, so a log file whose header is torn
    /// never held a frame.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be created, written or fsynced.
    pub fn create(storage: &dyn Storage, gen: u64) -> Result<WalWriter> {
        WalWriter::create_with_salt(storage, gen, new_salt()?)
    }

    /// [`WalWriter::create`] with a chosen salt: for tests that need
    /// reproducible bytes.
    #[doc(hidden)]
    pub fn create_with_salt(storage: &dyn Storage, gen: u64, salt: u64) -> Result<WalWriter> {
        let file = storage.create(&log_name(gen))?;
        file.append(&file_header(salt))?;
        file.sync()?;
        storage.sync_dir()?;
        Ok(WalWriter { file, gen, salt, written: FILE_HEADER_BYTES as u64, buf: Vec::new(), poisoned: None })
    }

    /// Encodes one frame into the buffer.
    ///
    /// `serial` is the serial of the frame's first operation; `kind` (never
    /// 0) and the payload mean something to the index only. `payload` writes the payload
    /// bytes by appending them to the given `Vec` (so callers can
    /// `postcard::to_extend` straight into the buffer without a temporary); it
    /// must not touch the bytes already there. Length and check are filled in
    /// afterwards, over the bytes already in the buffer.
    ///
    /// Nothing is written to the file: see [`write_out`](WalWriter::write_out).
    /// On a poisoned writer this does nothing (the next `write_out` reports the
    /// error). A payload of 4 GiB or more cannot be framed: the frame is
    /// dropped and the writer poisoned.
    #[inline]
    pub fn append(&mut self, serial: u64, kind: u8, payload: impl FnOnce(&mut Vec<u8>)) {
        debug_assert_ne!(kind, 0, "kind 0 is reserved: recovery never takes it for a frame");
        if self.poisoned.is_some() {
            return;
        }
        let start = self.buf.len();
        let mut header = [0; FRAME_HEADER_BYTES];
        header[12..20].copy_from_slice(&serial.to_le_bytes());
        header[20] = kind;
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
        self.buf[start + 8..start + 12].copy_from_slice(&len.to_le_bytes());
        let check = frame_check(self.salt, &self.buf[start + CHECKED_FROM..]);
        self.buf[start..start + 8].copy_from_slice(&check.to_le_bytes());
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

    /// [`Error::Poisoned`] with the reason, if the writer is poisoned.
    pub fn poisoned(&self) -> Option<Error> {
        self.poisoned.as_deref().map(poisoned_error)
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

    /// The file's salt.
    pub fn salt(&self) -> u64 {
        self.salt
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
    /// The generation of the file that holds the frame.
    pub gen: u64,
    /// Where the frame starts in that file.
    pub offset: u64,
}

/// How one log file ends, as a scan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEnd {
    /// Every byte belongs to the header or a good frame; the file is `len`
    /// bytes.
    Clean {
        /// The file's length.
        len: u64,
    },
    /// A torn tail starts at byte `at`: a bad frame with no good frame after
    /// it (only the last file may end so).
    Torn {
        /// Where the bad frame starts.
        at: u64,
        /// Why the frame there is bad.
        why: String,
    },
    /// The last file's header is incomplete or damaged and nothing but the
    /// header fits in it, or it is all zeros: the process died while
    /// creating it, before any frame could be appended. It holds no frames.
    /// (Only the last file can be one: in an older file, that is damage.)
    TornCreation,
}

/// One log file as a scan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// The file is `wal-<gen>.log`.
    pub gen: u64,
    /// Its format version (`None` for a torn creation).
    pub version: Option<u32>,
    /// Its length in bytes.
    pub len: u64,
    /// How it ends.
    pub end: FileEnd,
    /// How many good frames it holds.
    pub frames: u64,
}

/// Where a scan found damage that recovery must not cut away: a bad frame
/// with a good one after it, a bad frame in a file that is not the last, a
/// damaged file header, serials that go back, or a frame that `apply`
/// refused as `Corrupt`.
#[derive(Debug)]
pub struct Damage {
    /// The file is `wal-<gen>.log`.
    pub gen: u64,
    /// Where in it: every frame before this offset is good (0: the header).
    pub offset: u64,
    /// The `Error::Corrupt` recovery reports.
    pub error: Error,
}

/// What [`scan`] found: every file up to the damage, if any.
#[derive(Debug)]
pub struct Scan {
    /// The files with gen >= `from_gen`, ascending, up to and including the
    /// damaged one.
    pub files: Vec<ScannedFile>,
    /// The first damage; `None` when recovery would succeed.
    pub damage: Option<Damage>,
}

/// Reads every log file with gen >= `from_gen` in order, calling `apply` for
/// each good frame, and says how each ends, without changing anything.
///
/// The recovery rule (`docs/FORMAT.md`, "Log"): frames are read in order; the
/// first bad frame (incomplete header, length past the end of the file,
/// check mismatch) ends the log. In the last file, if no good frame with a
/// higher serial can be found at any byte offset after it, it is a torn
/// tail. Anything else is [`Damage`], and the scan stops there; `Corrupt`
/// errors of `apply` are damage at the frame `apply` refused.
///
/// # Errors
///
/// [`Error::UnsupportedVersion`] for a log written by a newer pushdex,
/// [`Error::Io`], and the errors of `apply` other than `Corrupt`.
pub fn scan(storage: &dyn Storage, from_gen: u64, mut apply: impl FnMut(Frame<'_>) -> Result<()>) -> Result<Scan> {
    let mut gens: Vec<u64> =
        storage.list()?.iter().filter_map(|name| parse_log_name(name)).filter(|&gen| gen >= from_gen).collect();
    gens.sort_unstable();
    let mut files = Vec::with_capacity(gens.len());
    let mut last_serial = 0;
    for (i, &gen) in gens.iter().enumerate() {
        let is_last = i + 1 == gens.len();
        let name = log_name(gen);
        let map = storage.map(&name)?;
        let data = (*map).as_ref();
        let mut file =
            ScannedFile { gen, version: None, len: data.len() as u64, end: FileEnd::TornCreation, frames: 0 };
        let path = storage.root().join(&name);
        let mut reader = FileReader { data, path: &path, gen, is_last, last_serial: &mut last_serial };
        let outcome = reader.replay(&mut file, &mut apply);
        files.push(file);
        match outcome {
            Ok(()) => {}
            Err(Stop::Damage { offset, error }) => {
                return Ok(Scan { files, damage: Some(Damage { gen, offset, error }) });
            }
            Err(Stop::Error(e)) => return Err(e),
        }
    }
    Ok(Scan { files, damage: None })
}

/// What [`recover`] found, and where writing goes on.
#[derive(Debug)]
pub struct Recovery {
    /// The log files replayed that hold frames (gen >= `from_gen`),
    /// ascending; files without frames were removed.
    pub gens: Vec<u64>,
    /// A new, empty log file `wal-<new_gen>.log` to write on.
    pub writer: WalWriter,
}

/// Replays every log file with gen >= `from_gen` in order, calling `apply`
/// for each good frame; cuts a torn tail off the last file, removes files
/// that hold no frames, and returns a writer on a new file of generation
/// `new_gen` (which must be above every existing log's).
///
/// Writing always goes on in a new file, with a new salt: bytes that an
/// earlier process framed and lost (unsynced when it died), and that may
/// live on inside documents, then can never pass as frames of the file
/// being written.
///
/// Before returning, every file kept is fsynced, and the directory too, so
/// that everything passed to `apply` is durable (docs/ARCHITECTURE.md,
/// "Open and recovery").
///
/// # Errors
///
/// * [`Error::Corrupt`] naming the file and the offset: the [`Damage`] a
///   [`scan`] found. Nothing is changed then.
/// * The errors of [`scan`] and of `apply`.
///
/// `apply` may have been called for some frames before an error: the caller
/// discards what it built.
pub fn recover(
    storage: &dyn Storage,
    from_gen: u64,
    new_gen: u64,
    apply: impl FnMut(Frame<'_>) -> Result<()>,
) -> Result<Recovery> {
    let scanned = scan(storage, from_gen, apply)?;
    if let Some(damage) = scanned.damage {
        return Err(damage.error);
    }
    if let Some(last) = scanned.files.last().filter(|f| new_gen <= f.gen) {
        return Err(Error::Io(io::Error::other(format!(
            "a new log file must come after the last one (wal-{}.log), not at generation {new_gen}",
            last.gen
        ))));
    }
    let mut gens = Vec::with_capacity(scanned.files.len());
    let mut removed = false;
    for file in &scanned.files {
        let name = log_name(file.gen);
        if file.frames == 0 {
            // Nothing in it to replay ever again.
            match storage.remove(&name) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(Error::Io(e)),
                _ => {
                    removed = true;
                    continue;
                }
            }
        }
        let handle = storage.open(&name)?;
        if let FileEnd::Torn { at, .. } = file.end {
            handle.set_len(at)?;
        }
        // Even an untouched file may hold pages written by a process that
        // died before its fsync: what was replayed must be on disk before
        // the index calls it Synced.
        handle.sync()?;
        gens.push(file.gen);
    }
    // The removals are durable before the new file exists: a torn creation
    // must never become an older file. (No file system is trusted to
    // order directory changes by itself.)
    if removed {
        storage.sync_dir()?;
    }
    // Its directory fsync also makes durable the entry of a last file whose
    // creation the previous process did not see through.
    let writer = WalWriter::create(storage, new_gen)?;
    Ok(Recovery { gens, writer })
}

/// Why a scan stopped early.
enum Stop {
    /// Damage at this offset of the current file.
    Damage { offset: u64, error: Error },
    /// Anything else: passed on.
    Error(Error),
}

/// How the frames of one file are laid out and checked.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Version 1: `len`, crc32c of serial, kind and payload, `serial`, `kind`.
    V1,
    /// Version 2: a salted xxh3-64 check of everything after it, `len`,
    /// `serial`, `kind`.
    V2 { salt: u64 },
}

impl Layout {
    fn file_header_bytes(self) -> usize {
        match self {
            Layout::V1 => V1_FILE_HEADER_BYTES,
            Layout::V2 { .. } => FILE_HEADER_BYTES,
        }
    }

    fn frame_header_bytes(self) -> usize {
        match self {
            Layout::V1 => V1_FRAME_HEADER_BYTES,
            Layout::V2 { .. } => FRAME_HEADER_BYTES,
        }
    }

    /// The `len` and `serial` fields of a frame header at `rest` (at least
    /// a frame header long), unchecked.
    fn len_and_serial(self, rest: &[u8]) -> (u32, u64) {
        match self {
            Layout::V1 => (le_u32(rest), le_u64(&rest[8..])),
            Layout::V2 { .. } => (le_u32(&rest[8..]), le_u64(&rest[12..])),
        }
    }

    /// Decodes and checks the frame starting at `data[pos..]`.
    fn decode(self, data: &[u8], pos: usize, gen: u64) -> std::result::Result<Frame<'_>, BadFrame> {
        let rest = &data[pos..];
        let head = self.frame_header_bytes();
        if rest.len() < head {
            return Err(BadFrame::ShortHeader { have: rest.len(), need: head });
        }
        let (len, serial) = self.len_and_serial(rest);
        let have = rest.len() - head;
        let Some(end) = usize::try_from(len).ok().filter(|&l| l <= have) else {
            return Err(BadFrame::PastEnd { len, have });
        };
        let end = head + end;
        let kind = match self {
            Layout::V1 => {
                let (stored, computed) = (le_u32(&rest[4..]), crc32c::crc32c(&rest[8..end]));
                if stored != computed {
                    return Err(BadFrame::Check { stored: stored.into(), computed: computed.into() });
                }
                rest[16]
            }
            Layout::V2 { salt } => {
                let (stored, computed) = (le_u64(rest), frame_check(salt, &rest[CHECKED_FROM..end]));
                if stored != computed {
                    return Err(BadFrame::Check { stored, computed });
                }
                rest[20]
            }
        };
        Ok(Frame { serial, kind, payload: &rest[head..end], gen, offset: pos as u64 })
    }
}

/// Why a frame is bad.
#[derive(Debug, PartialEq, Eq)]
enum BadFrame {
    ShortHeader { have: usize, need: usize },
    PastEnd { len: u32, have: usize },
    Check { stored: u64, computed: u64 },
}

impl fmt::Display for BadFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadFrame::ShortHeader { have, need } => {
                write!(f, "incomplete frame header: {have} bytes left, expected {need}")
            }
            BadFrame::PastEnd { len, have } => {
                write!(f, "frame length {len} runs past the end of the file ({have} payload bytes left)")
            }
            BadFrame::Check { stored, computed } => {
                write!(f, "frame check mismatch: expected {stored:#x} (stored), found {computed:#x}")
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

/// One file being replayed.
struct FileReader<'a> {
    data: &'a [u8],
    path: &'a Path,
    gen: u64,
    is_last: bool,
    /// The serial of the last good frame so far (0 before the first); it
    /// carries over from file to file.
    last_serial: &'a mut u64,
}

impl FileReader<'_> {
    fn damage(&self, offset: usize, detail: String) -> Stop {
        Stop::Damage { offset: offset as u64, error: Error::corrupt(self.path, detail) }
    }

    /// The file's layout, from its header; `None` for a torn creation.
    fn layout(&self) -> std::result::Result<Option<Layout>, Stop> {
        let data = self.data;
        // Frames are appended only after `create` made the header durable,
        // so a last file with room for nothing but a header never held one;
        // nor did an all-zero one (its size reached the disk, its bytes did
        // not). Whatever such a file holds is a torn creation.
        // Only the last file: `recover` removes such a file before it
        // creates the next one, and the creation's directory fsync makes
        // the removal durable too, so an older file always has its header.
        let torn = self.is_last && (data.len() <= FILE_HEADER_BYTES || data.iter().all(|&b| b == 0));
        let refuse = |detail: String| if torn { Ok(None) } else { Err(self.damage(0, detail)) };
        if data.len() < V1_FILE_HEADER_BYTES {
            return refuse(format!("log file of {} bytes is shorter than a log file header", data.len()));
        }
        if &data[..8] != MAGIC {
            return refuse(format!(
                "not a pushdex log: expected magic \"{}\", found \"{}\"",
                MAGIC.escape_ascii(),
                data[..8].escape_ascii()
            ));
        }
        let (stored, computed) = (le_u32(&data[12..]), crc32c::crc32c(&data[..12]));
        if stored != computed {
            return refuse(format!(
                "log file header crc32c mismatch: expected {stored:#010x} (stored), found {computed:#010x}"
            ));
        }
        match le_u32(&data[8..]) {
            1 => Ok(Some(Layout::V1)),
            2 if data.len() < FILE_HEADER_BYTES => refuse("log file header is incomplete".to_string()),
            2 => {
                let (stored, computed) = (le_u64(&data[24..]), xxh3_64(&data[..24]));
                if stored != computed {
                    return refuse(format!(
                        "log file header check mismatch: expected {stored:#x} (stored), found {computed:#x}"
                    ));
                }
                Ok(Some(Layout::V2 { salt: le_u64(&data[16..]) }))
            }
            found => Err(Stop::Error(Error::UnsupportedVersion {
                path: self.path.to_path_buf(),
                found,
                supported: SUPPORTED_VERSIONS,
            })),
        }
    }

    /// Replays the frames, applying the recovery rule; fills in `file`.
    fn replay<F: FnMut(Frame<'_>) -> Result<()>>(
        &mut self,
        file: &mut ScannedFile,
        apply: &mut F,
    ) -> std::result::Result<(), Stop> {
        let Some(layout) = self.layout()? else {
            file.end = FileEnd::TornCreation;
            return Ok(());
        };
        file.version = Some(match layout {
            Layout::V1 => 1,
            Layout::V2 { .. } => 2,
        });
        let data = self.data;
        let mut pos = layout.file_header_bytes();
        while pos < data.len() {
            let bad = match layout.decode(data, pos, self.gen) {
                Ok(frame) => {
                    // The writer hands out serials in order: a step back
                    // means frames from elsewhere, and replaying them would
                    // reorder.
                    if frame.serial < *self.last_serial {
                        return Err(self.damage(
                            pos,
                            format!(
                                "frame at offset {pos} has serial {}, lower than the serial {} before it",
                                frame.serial, *self.last_serial
                            ),
                        ));
                    }
                    *self.last_serial = frame.serial;
                    match apply(frame) {
                        Ok(()) => {}
                        Err(error @ Error::Corrupt { .. }) => return Err(Stop::Damage { offset: pos as u64, error }),
                        Err(e) => return Err(Stop::Error(e)),
                    }
                    file.frames += 1;
                    pos += layout.frame_header_bytes() + frame.payload.len();
                    continue;
                }
                Err(bad) => bad,
            };
            if !self.is_last {
                return Err(self.damage(
                    pos,
                    format!(
                        "bad frame at offset {pos} ({bad}) in a log file that is not the last: \
                         only the last log file may end in a torn frame"
                    ),
                ));
            }
            if let Some((at, serial)) = find_valid_frame(layout, data, pos + 1, *self.last_serial) {
                return Err(self.damage(
                    pos,
                    format!(
                        "bad frame at offset {pos} ({bad}) is followed by a valid frame at offset \
                         {at} (serial {serial}): the log is damaged in the middle, not torn at its end"
                    ),
                ));
            }
            file.end = FileEnd::Torn { at: pos as u64, why: bad.to_string() };
            return Ok(());
        }
        file.end = FileEnd::Clean { len: data.len() as u64 };
        Ok(())
    }
}

/// The first offset >= `from` holding a valid frame whose serial is above
/// `last_serial`, with that serial.
///
/// Runs only on the damage path, over every byte offset: the serial window
/// and the length are checked before the frame's check is computed, so
/// zeros, text and stale copies of older frames (serial <= `last_serial`,
/// e.g. a log file indexed as a document) are skipped without hashing. In a
/// version 2 file a frame must also pass a check seeded with the file's own
/// salt, which bytes framed anywhere else pass with probability 2^-64.
fn find_valid_frame(layout: Layout, data: &[u8], from: usize, last_serial: u64) -> Option<(usize, u64)> {
    let head = layout.frame_header_bytes();
    let last_start = data.len().checked_sub(head)?;
    let highest = last_serial.saturating_add(SERIAL_WINDOW);
    (from..=last_start).find_map(|at| {
        let (len, serial) = layout.len_and_serial(&data[at..]);
        if serial <= last_serial || serial > highest || len as usize > data.len() - at - head {
            return None;
        }
        // Kind 0 is never written (docs/FORMAT.md, "Frame"): the 17 bytes
        // that pass as a version 1 frame anywhere have kind 0.
        if data[at + head - 1] == 0 {
            return None;
        }
        layout.decode(data, at, 0).ok().map(|frame| (at, frame.serial))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FsStorage, SimStorage};

    /// A frame as written: serial, kind, payload.
    type Rec = (u64, u8, Vec<u8>);

    const SALT: u64 = 0x5eed_0123_4567_89ab;

    /// Frames laid out by hand as docs/FORMAT.md says, not by the writer.
    fn frames_bytes(salt: u64, frames: &[Rec]) -> Vec<u8> {
        let mut bytes = file_header(salt).to_vec();
        for (serial, kind, payload) in frames {
            let mut checked = (payload.len() as u32).to_le_bytes().to_vec();
            checked.extend_from_slice(&serial.to_le_bytes());
            checked.push(*kind);
            checked.extend_from_slice(payload);
            bytes.extend_from_slice(&xxh3_64_with_seed(&checked, salt).to_le_bytes());
            bytes.extend_from_slice(&checked);
        }
        bytes
    }

    /// Scans `data` as the only log file (`wal-1.log`), or as the first of
    /// two when `!is_last`.
    fn replay(data: &[u8], is_last: bool) -> (Scan, Vec<Rec>) {
        let storage = SimStorage::new("/idx");
        storage.write(&log_name(1), data);
        if !is_last {
            storage.write(&log_name(2), &file_header(1));
        }
        let mut seen = Vec::new();
        let scanned = scan(&storage, 1, |f: Frame<'_>| {
            seen.push((f.serial, f.kind, f.payload.to_vec()));
            Ok(())
        })
        .unwrap();
        (scanned, seen)
    }

    fn end_of(scanned: &Scan) -> FileEnd {
        assert!(scanned.damage.is_none(), "{:?}", scanned.damage);
        scanned.files[0].end.clone()
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
        let h = file_header(SALT);
        assert_eq!(&h[..8], b"PDXWAL\r\n");
        assert_eq!(&h[8..12], &[2, 0, 0, 0]);
        assert_eq!(le_u32(&h[12..]), crc32c::crc32c(&h[..12]));
        assert_eq!(le_u64(&h[16..]), SALT);
        assert_eq!(le_u64(&h[24..]), xxh3_64(&h[..24]));
    }

    #[test]
    fn append_encodes_the_documented_layout() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let mut w = WalWriter::create_with_salt(&storage, 3, SALT).unwrap();
        assert_eq!(w.len(), FILE_HEADER_BYTES as u64);
        for (serial, kind, payload) in sample() {
            w.append(serial, kind, |buf| buf.extend_from_slice(&payload));
        }
        let expected = frames_bytes(SALT, &sample());
        assert_eq!(w.len(), expected.len() as u64);
        assert_eq!(w.buffer_len(), expected.len() - FILE_HEADER_BYTES);
        w.write_out().unwrap();
        assert_eq!(w.buffer_len(), 0);
        assert_eq!(w.len(), expected.len() as u64);
        let on_disk = std::fs::read(dir.path().join("wal-3.log")).unwrap();
        assert_eq!(on_disk, expected);
        assert_eq!((w.gen(), w.salt()), (3, SALT));
        let debug = format!("{w:?}");
        assert!(debug.contains("gen: 3"), "{debug}");
    }

    #[test]
    fn each_new_file_draws_a_new_salt() {
        let storage = SimStorage::new("/idx");
        let a = WalWriter::create(&storage, 1).unwrap();
        let b = WalWriter::create(&storage, 2).unwrap();
        assert_ne!(a.salt(), b.salt());
    }

    #[test]
    fn clean_file_replays_every_frame() {
        let data = frames_bytes(SALT, &sample());
        let (scanned, seen) = replay(&data, false);
        assert_eq!(end_of(&scanned), FileEnd::Clean { len: data.len() as u64 });
        assert_eq!(scanned.files[0].frames, 4);
        assert_eq!(seen, sample());
    }

    #[test]
    fn every_cut_is_a_torn_tail_at_the_last_boundary() {
        let frames = sample();
        let data = frames_bytes(SALT, &frames);
        let mut boundaries = vec![FILE_HEADER_BYTES];
        for (_, _, p) in &frames {
            boundaries.push(boundaries.last().unwrap() + FRAME_HEADER_BYTES + p.len());
        }
        for cut in FILE_HEADER_BYTES + 1..data.len() {
            let whole = boundaries.iter().filter(|&&b| b <= cut).count() - 1;
            let (scanned, seen) = replay(&data[..cut], true);
            let end = end_of(&scanned);
            if boundaries[whole] == cut {
                assert_eq!(end, FileEnd::Clean { len: cut as u64 }, "cut at {cut}");
            } else {
                assert!(matches!(end, FileEnd::Torn { at, .. } if at == boundaries[whole] as u64), "cut at {cut}");
            }
            assert_eq!(seen, frames[..whole], "cut at {cut}");
        }
    }

    #[test]
    fn a_cut_in_a_file_that_is_not_the_last_is_damage() {
        let data = frames_bytes(SALT, &sample());
        let (scanned, _) = replay(&data[..data.len() - 1], false);
        let damage = scanned.damage.expect("damage");
        assert_eq!(damage.gen, 1);
        assert!(matches!(damage.error, Error::Corrupt { .. }));
    }

    #[test]
    fn damage_before_a_valid_frame_is_corrupt_and_names_the_offset() {
        let mut data = frames_bytes(SALT, &sample());
        let second = FILE_HEADER_BYTES + FRAME_HEADER_BYTES + 3;
        data[second + 12] ^= 0x40; // the serial of the second frame
        let (scanned, seen) = replay(&data, true);
        let damage = scanned.damage.expect("damage");
        assert_eq!(damage.offset, second as u64);
        let Error::Corrupt { detail, .. } = damage.error else { panic!("{:?}", damage.error) };
        assert!(detail.contains(&format!("offset {second}")), "{detail}");
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn zeros_after_the_frames_are_a_torn_tail() {
        let mut data = frames_bytes(SALT, &sample());
        let len = data.len();
        data.resize(len + 4096, 0);
        let (scanned, seen) = replay(&data, true);
        assert!(matches!(end_of(&scanned), FileEnd::Torn { at, .. } if at == len as u64));
        assert_eq!(seen, sample());
    }

    #[test]
    fn bytes_that_pass_as_a_version_1_frame_do_not_pass_in_version_2() {
        // Length 0, and crc32c maps `FF FF FF FF 00…` to `FFFFFFFF`: these
        // 17 bytes were a valid version 1 frame with a huge serial wherever
        // they stood. Version 2 frames are checked with the file's salt.
        let pattern = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0];
        assert_eq!(crc32c::crc32c(&pattern[8..]), 0xffff_ffff);
        let mut payload = Vec::new();
        for _ in 0..64 {
            payload.extend_from_slice(&pattern);
            payload.extend_from_slice(&[0; 13]);
        }
        let data = frames_bytes(SALT, &[(1, 1, b"kept".to_vec()), (2, 2, payload)]);
        let first_end = FILE_HEADER_BYTES + FRAME_HEADER_BYTES + 4;
        for cut in (first_end + 1..data.len()).step_by(7) {
            let (scanned, seen) = replay(&data[..cut], true);
            assert!(matches!(end_of(&scanned), FileEnd::Torn { at, .. } if at == first_end as u64), "cut {cut}");
            assert_eq!(seen.len(), 1);
        }
    }

    #[test]
    fn a_copy_of_another_files_frames_does_not_count() {
        // A torn frame carrying a whole log of another salt, with serials
        // above the last good one: not frames of this file.
        let other = frames_bytes(SALT ^ 1, &[(2, 1, b"x".to_vec()), (3, 1, b"y".to_vec())]);
        let data = frames_bytes(SALT, &[(1, 1, b"kept".to_vec()), (2, 2, other)]);
        let (scanned, seen) = replay(&data[..data.len() - 1], true);
        assert!(matches!(end_of(&scanned), FileEnd::Torn { .. }));
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn stale_frames_with_old_serials_after_damage_do_not_count() {
        // A torn frame whose payload holds a copy of this file's older
        // frames (a log indexed as a document): their serials are not above
        // the last good one, so the tail is torn, not corrupt.
        let old = frames_bytes(SALT, &sample()[..2]);
        let mut data = frames_bytes(SALT, &[(5, 1, b"x".to_vec()), (6, 1, old.clone())]);
        data.truncate(data.len() - 1);
        let (scanned, seen) = replay(&data, true);
        let torn_at = (FILE_HEADER_BYTES + FRAME_HEADER_BYTES + 1) as u64;
        assert!(matches!(end_of(&scanned), FileEnd::Torn { at, .. } if at == torn_at));
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn serials_going_back_are_corrupt() {
        let data = frames_bytes(SALT, &[(5, 1, Vec::new()), (5, 1, Vec::new()), (4, 1, Vec::new())]);
        let (scanned, seen) = replay(&data, true);
        assert!(matches!(scanned.damage, Some(Damage { error: Error::Corrupt { .. }, .. })));
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn headers() {
        let good = file_header(SALT);
        // Room for nothing but a header: a torn creation in the last file,
        // damage in an older one (it was complete before the next began).
        for n in 0..FILE_HEADER_BYTES {
            let (scanned, _) = replay(&good[..n], true);
            assert_eq!(end_of(&scanned), FileEnd::TornCreation);
            let (scanned, _) = replay(&good[..n], false);
            assert!(matches!(scanned.damage, Some(Damage { offset: 0, .. })), "{n} bytes");
        }
        for is_last in [true, false] {
            let (scanned, _) = replay(&good, is_last);
            assert_eq!(end_of(&scanned), FileEnd::Clean { len: FILE_HEADER_BYTES as u64 });
        }
        let (scanned, _) = replay(&[0; 64], true);
        assert_eq!(end_of(&scanned), FileEnd::TornCreation);
        let (scanned, _) = replay(&[0; 64], false);
        assert!(scanned.damage.is_some());

        let with_frame = frames_bytes(SALT, &sample()[..1]);
        let mut bad_magic = with_frame.clone();
        bad_magic[0] = b'X';
        let (scanned, _) = replay(&bad_magic, true);
        let Some(Damage { error: Error::Corrupt { detail, .. }, offset: 0, .. }) = scanned.damage else {
            panic!("bad magic accepted");
        };
        assert!(detail.contains("expected magic \"PDXWAL\\r\\n\", found \"XDXWAL\\r\\n\""), "{detail}");

        for at in [13, 17, 25] {
            let mut bad = with_frame.clone();
            bad[at] ^= 1;
            let (scanned, _) = replay(&bad, true);
            assert!(scanned.damage.is_some(), "header byte {at}");
        }

        let mut v3 = with_frame.clone();
        v3[8] = 3;
        let crc = crc32c::crc32c(&v3[..12]);
        v3[12..16].copy_from_slice(&crc.to_le_bytes());
        let storage = SimStorage::new("/idx");
        storage.write(&log_name(1), &v3);
        match scan(&storage, 1, |_| Ok(())) {
            Err(Error::UnsupportedVersion { found: 3, supported: (1, 2), .. }) => {}
            other => panic!("version 3 accepted: {other:?}"),
        }
    }

    /// Version 1 as earlier releases wrote it.
    fn v1_bytes(frames: &[Rec]) -> Vec<u8> {
        let mut bytes = b"PDXWAL\r\n\x01\0\0\0".to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
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

    #[test]
    fn version_1_files_are_read_and_writing_goes_on_in_version_2() {
        let storage = SimStorage::new("/idx");
        storage.write(&log_name(1), &v1_bytes(&sample()[..3]));
        let torn = v1_bytes(&sample()[3..]);
        let mut second = v1_bytes(&[]);
        second.extend_from_slice(&torn[16..torn.len() - 2]);
        storage.write(&log_name(2), &second);
        let mut seen = Vec::new();
        let r = recover(&storage, 1, 3, |f| {
            seen.push((f.serial, f.kind, f.payload.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, sample()[..3]);
        assert_eq!(r.gens, [1], "the second file held no whole frame: removed");
        assert_eq!(r.writer.gen(), 3);
        assert_eq!(&storage.read(&log_name(3)).unwrap()[8..12], &[2, 0, 0, 0]);
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
        let r = recover(&storage, 1, 2, |f| {
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

    fn failing_writer() -> WalWriter {
        WalWriter { file: Arc::new(FailingFile), gen: 1, salt: SALT, written: 32, buf: Vec::new(), poisoned: None }
    }

    #[test]
    fn a_failed_write_poisons_the_writer() {
        let mut w = failing_writer();
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
            let Err(Error::Poisoned { reason }) = w.write_out() else { panic!("poisoned write succeeded") };
            assert!(reason.contains("disk full"), "{reason}");
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
        assert_eq!(std::fs::metadata(dir.path().join("wal-1.log")).unwrap().len(), FILE_HEADER_BYTES as u64);
    }

    #[test]
    fn a_payload_writer_that_replaces_the_buffer_poisons() {
        let mut w = failing_writer();
        w.append(1, 1, |b| b.extend_from_slice(b"abc"));
        w.append(2, 1, |b| *b = Vec::new());
        assert!(w.is_poisoned());
        assert!(w.write_out().is_err());
    }

    #[test]
    fn recovery_writes_on_in_a_new_file_and_drops_files_without_frames() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let r = recover(&storage, 0, 5, |_| panic!("nothing to replay")).unwrap();
        assert!(r.gens.is_empty());
        assert_eq!((r.writer.gen(), r.writer.len()), (5, FILE_HEADER_BYTES as u64));
        drop(r);
        let r = recover(&storage, 0, 6, |_| panic!("nothing to replay")).unwrap();
        assert!(r.gens.is_empty());
        assert!(!dir.path().join("wal-5.log").exists(), "an empty log is removed");
        assert!(dir.path().join("wal-6.log").exists());
        let mut w = r.writer;
        w.append(1, 1, |b| b.push(1));
        w.write_out().unwrap();
        let r = recover(&storage, 0, 7, |_| Ok(())).unwrap();
        assert_eq!(r.gens, [6]);
        assert!(matches!(recover(&storage, 0, 6, |_| Ok(())), Err(Error::Io(_))), "a new file must be the newest");
    }
}
