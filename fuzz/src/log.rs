//! `log_frames`: bytes as log files.
//!
//! The first byte picks the mode. Even: the rest is `wal-1.log`, as is (the
//! fuzzer has to find the magic and forge crcs by itself; seeds are real
//! logs). Odd: the rest is read with `arbitrary` as a [`LogSpec`], a list of
//! frames (well-formed operations or raw payloads, with chosen serials) over
//! one or more files, which the harness frames with correct checks (format
//! version 2 with a salt per file, or version 1), then damages as the spec
//! says. The second mode reaches the payload decoders
//! and the replay of every operation at once.
//!
//! Every input runs [`pushdex::wal::recover`] on one copy of the files and
//! opens an [`pushdex::Index`] on another, then reads everything the index
//! holds, writes once more, closes and reopens it.
//!
//! Properties (docs/FORMAT.md, "Log"; API.md, "States" and "Serials"):
//! * recovery never panics; the frames it replays have non-decreasing
//!   serials; recovering the recovered files again replays the same frames;
//! * undamaged files with non-decreasing serials replay every frame; a last
//!   file cut at any byte (or cut and zero-filled) replays exactly the frames
//!   wholly before the cut, unless a valid frame with a higher serial stands
//!   after the torn one (then, and only then, `Corrupt`); payloads carry
//!   copies of the frame-like byte patterns that fooled version 1, and of
//!   frames framed with another salt;
//! * the index opens only if recovery succeeds; it opens with `synced ==
//!   last`; the next write takes serial `last + 1`; after a clean close, the
//!   reopened index holds exactly what the first one did.

use arbitrary::{Arbitrary, Unstructured};
use pushdex::storage::{SimStorage, Storage};
use pushdex::wal;
use pushdex::{Document, Serial};
use serde::Serialize;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::common::{self, error_kind, snapshot, ROOT};

/// One recovered frame: serial, kind, payload.
pub type Rec = (u64, u8, Vec<u8>);

/// The layout of a log file, as docs/FORMAT.md writes it down: version 1,
/// or version 2 with the file's salt.
#[derive(Clone, Copy, Debug)]
pub enum Layout {
    /// Version 1: 16-byte header; frames of len, crc32c, serial, kind.
    V1,
    /// Version 2: 32-byte header with the salt; frames of check (xxh3-64
    /// seeded with the salt), len, serial, kind.
    V2(u64),
}

impl Layout {
    /// Bytes of the file header.
    pub fn header_bytes(self) -> usize {
        match self {
            Layout::V1 => 16,
            Layout::V2(_) => 32,
        }
    }

    /// Bytes of a frame header.
    pub fn frame_header_bytes(self) -> usize {
        match self {
            Layout::V1 => 17,
            Layout::V2(_) => 21,
        }
    }

    /// The file header.
    pub fn file_header(self) -> Vec<u8> {
        let mut header = b"PDXWAL\r\n".to_vec();
        let version: u32 = if let Layout::V1 = self { 1 } else { 2 };
        header.extend_from_slice(&version.to_le_bytes());
        let crc = crc32c::crc32c(&header);
        header.extend_from_slice(&crc.to_le_bytes());
        if let Layout::V2(salt) = self {
            header.extend_from_slice(&salt.to_le_bytes());
            let check = xxh3_64(&header);
            header.extend_from_slice(&check.to_le_bytes());
        }
        header
    }

    /// One frame.
    pub fn frame_bytes(self, serial: u64, kind: u8, payload: &[u8]) -> Vec<u8> {
        match self {
            Layout::V1 => {
                let mut covered = serial.to_le_bytes().to_vec();
                covered.push(kind);
                covered.extend_from_slice(payload);
                let mut out = (payload.len() as u32).to_le_bytes().to_vec();
                out.extend_from_slice(&crc32c::crc32c(&covered).to_le_bytes());
                out.extend_from_slice(&covered);
                out
            }
            Layout::V2(salt) => {
                let mut checked = (payload.len() as u32).to_le_bytes().to_vec();
                checked.extend_from_slice(&serial.to_le_bytes());
                checked.push(kind);
                checked.extend_from_slice(payload);
                let mut out = xxh3_64_with_seed(&checked, salt).to_le_bytes().to_vec();
                out.extend_from_slice(&checked);
                out
            }
        }
    }

    /// Whether a good frame with a serial in `(last, last + 2^40]` and a
    /// kind other than 0 starts at `at`.
    fn valid_frame_at(self, data: &[u8], at: usize, last: u64) -> bool {
        let head = self.frame_header_bytes();
        let u32_at = |i: usize| u32::from_le_bytes(data[at + i..at + i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_le_bytes(data[at + i..at + i + 8].try_into().unwrap());
        let (len, serial) = match self {
            Layout::V1 => (u32_at(0) as usize, u64_at(8)),
            Layout::V2(_) => (u32_at(8) as usize, u64_at(12)),
        };
        // Kind 0 is never written: no candidate.
        if serial <= last || serial - last > 1 << 40 || len > data.len() - at - head || data[at + head - 1] == 0 {
            return false;
        }
        match self {
            Layout::V1 => crc32c::crc32c(&data[at + 8..at + head + len]) == u32_at(4),
            Layout::V2(salt) => xxh3_64_with_seed(&data[at + 8..at + head + len], salt) == u64_at(0),
        }
    }
}

/// A string for URIs, roots, prefixes and names: mostly over a tiny
/// alphabet, so that folders and shared prefixes happen, sometimes anything
/// (empty, NUL, any UTF-8: what the API refuses but a log could hold).
#[derive(Debug, Clone)]
pub struct Text(pub String);

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Text> {
        if u.ratio(1, 8)? {
            return Ok(Text(String::arbitrary(u)?));
        }
        let len = u.int_in_range(1..=6)?;
        let mut s = String::new();
        for _ in 0..len {
            s.push(*u.choose(&['a', 'b', '/', '/', 'a', ':'])?);
        }
        Ok(Text(s))
    }
}

/// A document body as `pushdex` encodes it (the private `Body`: metas, then
/// parts), or raw bytes that may not decode.
#[derive(Debug, Arbitrary)]
pub enum BodySpec {
    /// Metas `(name, value)` and parts `(name, text, bytes)`.
    Encoded(Vec<(Text, Text)>, Vec<(Text, bool, Vec<u8>)>),
    /// Anything.
    Raw(Vec<u8>),
}

#[derive(Serialize)]
struct EncodedPart<'a> {
    name: &'a str,
    text: bool,
    #[serde(with = "serde_bytes")]
    bytes: &'a [u8],
}

impl BodySpec {
    fn encode(&self) -> Vec<u8> {
        match self {
            BodySpec::Encoded(metas, parts) => {
                let metas: Vec<(&str, &str)> = metas.iter().map(|(n, v)| (n.0.as_str(), v.0.as_str())).collect();
                let parts: Vec<EncodedPart<'_>> =
                    parts.iter().map(|(n, text, bytes)| EncodedPart { name: &n.0, text: *text, bytes }).collect();
                postcard::to_stdvec(&(metas, parts)).expect("encoding into a Vec")
            }
            BodySpec::Raw(bytes) => bytes.clone(),
        }
    }
}

/// A document record: URI, stamp, body.
#[derive(Debug, Arbitrary)]
pub struct DocSpec {
    uri: Text,
    stamp: Text,
    body: BodySpec,
}

#[derive(Serialize)]
struct DocRecord<'a> {
    uri: &'a str,
    stamp: &'a str,
    #[serde(with = "serde_bytes")]
    body: &'a [u8],
}

impl DocSpec {
    fn record(&self, body: &[u8]) -> Vec<u8> {
        postcard::to_stdvec(&DocRecord { uri: &self.uri.0, stamp: &self.stamp.0, body }).expect("encoding")
    }
}

/// What a frame holds: one of the eight operations, encoded as the index
/// encodes them (src/record.rs), or a raw kind byte and payload.
#[derive(Debug, Arbitrary)]
pub enum Payload {
    /// Kind 1.
    Add(DocSpec),
    /// Kind 2 (an empty batch is refused by replay).
    Batch(Vec<DocSpec>),
    /// Kind 3.
    Delete(Text),
    /// Kind 4.
    DeleteRootPath(Text, bool),
    /// Kind 5.
    DeletePrefix(Text),
    /// Kind 6.
    SetCheckpoint(Text, Text),
    /// Kind 7.
    DeleteCheckpoint(Text),
    /// Kind 8.
    ClearCheckpoints,
    /// Anything.
    Raw(u8, Vec<u8>),
    /// Bytes that look like frames: the 17-byte pattern that passed as a
    /// version 1 frame anywhere (length 0, crc32c `FFFFFFFF` of `FF FF FF
    /// FF 00…`), or a frame framed with another salt, with a serial `ahead`
    /// of this frame's; `copies` of it, between `filler` bytes.
    FrameLike { pattern: bool, ahead: u8, copies: u8, filler: Vec<u8> },
}

/// The 17 bytes that are a valid version 1 frame wherever they stand.
const V1_FOOL: [u8; 17] = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0];

impl Payload {
    /// Kind byte, payload, and how many serials the operation takes.
    fn encode(&self) -> (u8, Vec<u8>, u64) {
        match self {
            Payload::Add(doc) => (1, doc.record(&doc.body.encode()), 1),
            Payload::Batch(docs) => {
                let bodies: Vec<Vec<u8>> = docs.iter().map(|d| d.body.encode()).collect();
                let records: Vec<DocRecord<'_>> = docs
                    .iter()
                    .zip(&bodies)
                    .map(|(d, body)| DocRecord { uri: &d.uri.0, stamp: &d.stamp.0, body })
                    .collect();
                (2, postcard::to_stdvec(&records).expect("encoding"), docs.len() as u64)
            }
            Payload::Delete(t) => (3, enc(&t.0.as_str()), 1),
            Payload::DeleteRootPath(t, recursive) => (4, enc(&(t.0.as_str(), *recursive)), 1),
            Payload::DeletePrefix(t) => (5, enc(&t.0.as_str()), 1),
            Payload::SetCheckpoint(n, v) => (6, enc(&(n.0.as_str(), v.0.as_str())), 1),
            Payload::DeleteCheckpoint(n) => (7, enc(&n.0.as_str()), 1),
            Payload::ClearCheckpoints => (8, Vec::new(), 1),
            Payload::Raw(kind, bytes) => (*kind, bytes.clone(), 1),
            Payload::FrameLike { .. } => unreachable!("framed by `encode_at`, which knows the serial"),
        }
    }

    /// [`Payload::encode`], for a frame with `serial`.
    fn encode_at(&self, serial: u64) -> (u8, Vec<u8>, u64) {
        let Payload::FrameLike { pattern, ahead, copies, filler } = self else { return self.encode() };
        let one = if *pattern {
            V1_FOOL.to_vec()
        } else {
            let ahead = serial.saturating_add(u64::from(*ahead));
            Layout::V2(0x0bad_5a17).frame_bytes(ahead, 1, filler)
        };
        let mut bytes = Vec::new();
        for _ in 0..(*copies).min(64) {
            bytes.extend_from_slice(&one);
            bytes.extend_from_slice(filler);
        }
        (99, bytes, 1)
    }
}

fn enc<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("encoding into a Vec")
}

/// One item of a log: a frame, or the start of the next log file.
#[derive(Debug, Arbitrary)]
pub enum Item {
    /// A frame. `step` chooses its serial relative to where the previous
    /// operation left off: mostly the next one, sometimes a repeat, a gap
    /// or a step back.
    Frame { step: u8, payload: Payload },
    /// The next file: the next generation, a few further, or one near
    /// `u64::MAX`.
    NewFile { gap: u8 },
}

/// Damage done after framing.
#[derive(Debug, Arbitrary)]
pub enum Damage {
    /// Cut the last file at this byte (modulo its length + 1).
    Cut(u16),
    /// Cut the last file and fill the cut part with zeros, as a disk that
    /// extended the file before writing its data leaves it.
    Zeros(u16),
    /// XOR one byte of one file (file index and offset taken modulo).
    Flip { file: u8, at: u16, xor: u8 },
    /// Append bytes to one file.
    Append { file: u8, bytes: Vec<u8> },
}

/// A log: frames over files, then damage.
#[derive(Debug, Arbitrary)]
pub struct LogSpec {
    /// Write every file in format version 1 (as earlier releases did),
    /// else in version 2 with this salt (the file's generation added).
    pub version1: bool,
    /// The salt of version 2 files.
    pub salt: u64,
    /// The frames and file boundaries, in order.
    pub items: Vec<Item>,
    /// What happens to the files afterwards.
    pub damage: Vec<Damage>,
}

/// One built log file: generation, bytes, frames with their end offsets.
type BuiltFile = (u64, Vec<u8>, Vec<(Rec, usize)>);

fn layout_of(spec: &LogSpec, gen: u64) -> Layout {
    if spec.version1 {
        Layout::V1
    } else {
        Layout::V2(spec.salt.wrapping_add(gen))
    }
}

/// The files a [`LogSpec`] builds.
#[derive(Debug, Default)]
struct Built {
    /// Ascending by generation.
    files: Vec<BuiltFile>,
    /// Whether every serial is at least the one before it.
    ordered: bool,
}

fn build(spec: &LogSpec) -> Built {
    let mut built = Built { files: vec![(1, layout_of(spec, 1).file_header(), Vec::new())], ordered: true };
    let (mut next, mut prev) = (1u64, 0u64);
    for item in &spec.items {
        match item {
            Item::NewFile { gap } => {
                let gen = built.files.last().map_or(1, |f| f.0);
                let new = match gap {
                    0..=199 => gen.checked_add(1),
                    200..=249 => gen.checked_add(u64::from(*gap - 198)),
                    _ => Some(gen.max(u64::MAX - u64::from(255 - gap))),
                };
                if let Some(new) = new.filter(|&new| new > gen) {
                    built.files.push((new, layout_of(spec, new).file_header(), Vec::new()));
                }
            }
            Item::Frame { step, payload } => {
                let serial = match step {
                    0..=219 => next,
                    220..=234 => prev,
                    235..=249 => next.saturating_add(u64::from(*step - 234)),
                    _ => prev.saturating_sub(u64::from(*step - 249)),
                };
                built.ordered &= serial >= prev;
                let (kind, payload, serials) = payload.encode_at(serial);
                let file = built.files.last_mut().expect("one file at least");
                file.1.extend_from_slice(&layout_of(spec, file.0).frame_bytes(serial, kind, &payload));
                file.2.push(((serial, kind, payload), file.1.len()));
                prev = serial;
                next = serial.saturating_add(serials.max(1));
            }
        }
    }
    built
}

/// The first offset `>= from` holding a frame that decodes with a serial in
/// `(last, last + 2^40]`: the rule of docs/FORMAT.md that tells damage in the
/// middle of the log from a torn tail, written out independently.
fn valid_frame_after(layout: Layout, data: &[u8], from: usize, last: u64) -> Option<usize> {
    let end = data.len().checked_sub(layout.frame_header_bytes())?;
    (from..=end).find(|&at| layout.valid_frame_at(data, at, last))
}

/// What recovery must replay from `built` after the damage in `spec`, when
/// that is known: `Some(Ok(frames))`, or `Some(Err(()))` for `Corrupt`.
fn expected(built: &Built, spec: &LogSpec) -> Option<Result<Vec<Rec>, ()>> {
    if !built.ordered {
        return None;
    }
    let (last, earlier) = built.files.split_last().expect("one file at least");
    let layout = layout_of(spec, last.0);
    let mut frames: Vec<Rec> = earlier.iter().flat_map(|f| f.2.iter().map(|(r, _)| r.clone())).collect();
    let original = &last.1;
    let mut data = original.clone();
    for d in &spec.damage {
        match d {
            Damage::Cut(at) => data.truncate(usize::from(*at) % (data.len() + 1)),
            Damage::Zeros(at) => {
                let at = usize::from(*at) % (data.len() + 1);
                data[at..].fill(0);
            }
            // Only damage that a crash can do has a known outcome.
            _ => return None,
        }
    }
    // The first byte the damage changed.
    let changed = data.iter().zip(original).position(|(a, b)| a != b).unwrap_or(data.len());
    if changed < layout.header_bytes() {
        // A torn creation when no longer than a version 2 header or all
        // zeros; else a damaged header.
        let torn = data.len() <= 32 || data.iter().all(|&b| b == 0);
        return torn.then_some(Ok(frames));
    }
    let kept: Vec<Rec> = last.2.iter().filter(|(_, end)| *end <= changed).map(|(r, _)| r.clone()).collect();
    let boundary = last.2.iter().map(|(_, end)| *end).filter(|&end| end <= changed).max();
    let boundary = boundary.unwrap_or(layout.header_bytes());
    let last_serial = kept.last().or(frames.last()).map_or(0, |r| r.0);
    frames.extend(kept);
    if boundary < data.len() && valid_frame_after(layout, &data, boundary + 1, last_serial).is_some() {
        return Some(Err(()));
    }
    Some(Ok(frames))
}

fn damage(files: &mut [(u64, Vec<u8>)], spec: &LogSpec) {
    let n = files.len();
    for d in &spec.damage {
        match d {
            Damage::Cut(at) => {
                let data = &mut files[n - 1].1;
                data.truncate(usize::from(*at) % (data.len() + 1));
            }
            Damage::Zeros(at) => {
                let data = &mut files[n - 1].1;
                let at = usize::from(*at) % (data.len() + 1);
                data[at..].fill(0);
            }
            Damage::Flip { file, at, xor } => {
                let data = &mut files[usize::from(*file) % n].1;
                if !data.is_empty() {
                    let at = usize::from(*at) % data.len();
                    data[at] ^= *xor;
                }
            }
            Damage::Append { file, bytes } => files[usize::from(*file) % n].1.extend_from_slice(bytes),
        }
    }
}

fn storage_with(files: &[(u64, Vec<u8>)]) -> SimStorage {
    let storage = SimStorage::new(ROOT);
    for (gen, bytes) in files {
        storage.write(&wal::log_name(*gen), bytes);
    }
    storage
}

/// Replays the logs as recovery does, changing nothing: the frames, or the
/// damage as an error.
fn scan_frames(storage: &SimStorage) -> pushdex::Result<Vec<Rec>> {
    let mut frames = Vec::new();
    let scanned = wal::scan(storage, 1, |f| {
        frames.push((f.serial, f.kind, f.payload.to_vec()));
        Ok(())
    })?;
    match scanned.damage {
        Some(damage) => Err(damage.error),
        None => Ok(frames),
    }
}

/// Recovers (cutting a torn tail, writing on in a new file), then scans
/// again: the same frames must come back.
fn recover_twice(storage: &SimStorage, frames: &[Rec]) {
    let Some(last) = storage.list().expect("list").iter().filter_map(|n| wal::parse_log_name(n)).max() else {
        return;
    };
    let Some(new_gen) = last.checked_add(1) else { return };
    let mut again = Vec::new();
    let recovered = wal::recover(storage, 1, new_gen, |f| {
        again.push((f.serial, f.kind, f.payload.to_vec()));
        Ok(())
    });
    assert!(recovered.is_ok(), "recovery failed where the scan did not: {recovered:?}");
    assert_eq!(again, frames, "recovery replayed other frames than the scan");
    drop(recovered);
    let after = scan_frames(storage);
    assert!(after.as_ref().is_ok_and(|a| a == frames), "scanning the recovered log again: {after:?}");
}

/// The fuzz target: see the module documentation.
pub fn log_frames(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (files, expect) = if mode % 2 == 0 {
        (vec![(1, rest.to_vec())], None)
    } else {
        let Ok(spec) = LogSpec::arbitrary_take_rest(Unstructured::new(rest)) else { return };
        let built = build(&spec);
        let expect = expected(&built, &spec);
        let mut files: Vec<(u64, Vec<u8>)> = built.files.into_iter().map(|(g, b, _)| (g, b)).collect();
        damage(&mut files, &spec);
        (files, expect)
    };

    // Recovery alone.
    let storage = storage_with(&files);
    let recovered = scan_frames(&storage);
    if let Ok(frames) = &recovered {
        assert!(frames.windows(2).all(|w| w[0].0 <= w[1].0), "recovery replayed serials out of order");
        recover_twice(&storage, frames);
    }
    match (&expect, &recovered) {
        (Some(Ok(want)), Ok(got)) => assert_eq!(got, want, "recovery replayed other frames than the log holds"),
        (Some(Ok(_)), Err(e)) => panic!("recovery of a torn or undamaged log failed: {e}"),
        (Some(Err(())), Ok(got)) => panic!("a valid frame after the torn one was ignored; replayed {got:?}"),
        (Some(Err(())), Err(e)) => assert_eq!(error_kind(e), "Corrupt", "{e}"),
        (None, _) => {}
    }

    // The index on the same files.
    let storage = storage_with(&files);
    let Ok(index) = common::open(&storage) else { return };
    assert!(recovered.is_ok(), "the index opened on a log that recovery refuses: {recovered:?}");
    let w = index.watermarks();
    assert_eq!(w.synced, w.last, "recovered operations are Synced");
    let Ok(before) = snapshot(&index) else { return };
    let uri = "fuzz/after";
    let serial = index.add(Document::new(uri).with_stamp("s")).expect("a write after recovery");
    assert_eq!(serial, Serial(w.last.0 + 1), "serials continue after recovery");
    let Ok(before_close) = snapshot(&index) else { return };
    let others = |s: &crate::common::Snapshot| s.docs.iter().filter(|d| d.0 != uri).cloned().collect::<Vec<_>>();
    assert_eq!(others(&before_close), others(&before), "one add changed other documents");
    if index.close().is_err() {
        return;
    }
    let index = common::open(&storage).expect("a cleanly closed index reopens");
    let after = snapshot(&index).expect("a cleanly closed index reads back");
    assert_eq!(after, before_close, "a clean close and reopen changed what the index holds");
}
