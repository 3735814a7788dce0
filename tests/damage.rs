//! Damage to any file of an index directory: a flipped byte, a cut (or a
//! byte appended), a tail of zeros or a removed file either makes open, or
//! a read, fail with `Error::Corrupt` / `Error::Io`, or leaves the index
//! holding exactly the operations `1..=j` of the history, for the `j` that
//! docs/FORMAT.md promises: never a panic, never a document, stamp or body
//! that was not written.
//!
//! One deterministic history builds two directories, and every file of each
//! (`LOCK` aside) is damaged, one case at a time, on a fresh copy:
//!
//! * `flushed`: three segments (one of them a merge, one with a two-block
//!   `bodies` section), two deletion bitmaps, checkpoints, and a log whose
//!   frames (adds, batches, updates, every kind of deletion, checkpoint
//!   operations) came after the last commit; dropped without close.
//! * `crashed`: what a crash during that last flush leaves, between its
//!   `MANIFEST.tmp` and the rename (FORMAT.md, "Commits", step 6): the
//!   previous manifest, its segments and bitmap, the complete older log and
//!   the newer one (both replayed), and as orphans the new segment, the new
//!   bitmaps and `MANIFEST.tmp`.
//!
//! What each case may give, from FORMAT.md: a torn tail of the last log (a
//! cut, zeros, a flip in its last frame) recovers exactly the frames before
//! the damage and must open; a flip in any other frame, damage to an older
//! log, to the manifest, a segment or a bitmap must not open unless it
//! recovers everything; orphans are never read, so their damage changes
//! nothing. A file read whole at open (all but segments) never makes a later
//! read fail. After a log repair, a second open recovers the same state.
//!
//! The normal run flips every byte of the small files and of every header,
//! footer, frame header and section boundary, plus a spread of offsets, and
//! cuts at every frame boundary and a spread of lengths; the files of
//! `crashed` that are byte-identical to one of `flushed` get a few cases
//! only. Set `PUSHDEX_DAMAGE_FULL=1` to flip every byte of every file with
//! every mask and cut at every length (slow: about half a million cases).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use pushdex::segment::Section;
use pushdex::{
    folder_prefix, Checkpoint, Document, DocumentStatus, Entry, EnumerationMode, Error, Index, Options, Serial, State,
    Update,
};

/// Large enough that only `refresh()` and `compact()` write segments. An
/// automatic flush or merge runs on a background thread, so the files would
/// depend on timing and a reported (file, offset, mask) would not reproduce.
/// Explicit, so that `PUSHDEX_DEFAULT_MEMTABLE_BYTES` builds do not change the layout.
const MEMTABLE_BYTES: usize = 1 << 20;

/// Every byte of every file, every mask, every cut.
const FULL_ENV: &str = "PUSHDEX_DAMAGE_FULL";

/// Every byte of small files and the bytes whose meaning matters most (log
/// file header, frame lengths, section and block boundaries) get each of
/// these; the other header, footer and frame header bytes get one, in turn.
const MASKS: [u8; 3] = [0x01, 0x80, 0xff];
/// One of these, in turn, for the spread offsets.
const SPREAD_MASKS: [u8; 5] = [0x01, 0x80, 0xff, 0x5a, 0x10];
/// Spread offsets per large file (segment, log).
const SPREAD: usize = 300;
/// Files up to this size get every byte flipped with every mask.
const SMALL_FILE: usize = 1024;

/// The layouts of docs/FORMAT.md, as the crate exports them.
const LOG_HEADER: usize = pushdex::wal::FILE_HEADER_BYTES;
const FRAME_HEADER: usize = pushdex::wal::FRAME_HEADER_BYTES;
/// The footer of the segments this build writes (format version 4).
const SEGMENT_FOOTER: usize = pushdex::segment::v4::FOOTER_LEN;
const SEGMENT_BLOCK: usize = pushdex::segment::BLOCK;
/// The header of `MANIFEST` and of deletion bitmaps.
const FILE_HEADER: usize = 20;

fn options() -> Options {
    Options::default().memtable_bytes(MEMTABLE_BYTES)
}

// ---- the model ------------------------------------------------------------

/// What one serial did.
#[derive(Clone, Debug)]
enum Effect {
    Put(Document),
    Delete(String),
    DeleteRoot(String, bool),
    DeletePrefix(String),
    SetCheckpoint(String, String),
    DeleteCheckpoint(String),
    ClearCheckpoints,
}

/// The state after operations `1..=j`.
#[derive(Default)]
struct Model {
    /// URI -> (serial of its newest operation, the document).
    docs: BTreeMap<String, (u64, Document)>,
    /// Name -> (value, serial).
    checkpoints: BTreeMap<String, (String, u64)>,
}

#[derive(Default)]
struct History {
    /// `effects[s - 1]` is what serial `s` did.
    effects: Vec<Effect>,
    /// Every URI written, deleted or asked about.
    uris: BTreeSet<String>,
    /// Every checkpoint name used.
    names: BTreeSet<String>,
}

impl History {
    fn total(&self) -> u64 {
        self.effects.len() as u64
    }

    fn at(&self, j: u64) -> Model {
        let mut m = Model::default();
        for (serial, effect) in (1..).zip(&self.effects[..j as usize]) {
            match effect {
                Effect::Put(doc) => {
                    m.docs.insert(doc.uri().to_string(), (serial, doc.clone()));
                }
                Effect::Delete(uri) => {
                    m.docs.remove(uri);
                }
                Effect::DeleteRoot(root, recursive) => {
                    let prefix = folder_prefix(root);
                    m.docs
                        .retain(|u, _| !(u.starts_with(&*prefix) && (*recursive || !u[prefix.len()..].contains('/'))));
                }
                Effect::DeletePrefix(prefix) => m.docs.retain(|u, _| !u.starts_with(prefix.as_str())),
                Effect::SetCheckpoint(name, value) => {
                    m.checkpoints.insert(name.clone(), (value.clone(), serial));
                }
                Effect::DeleteCheckpoint(name) => {
                    m.checkpoints.remove(name);
                }
                Effect::ClearCheckpoints => m.checkpoints.retain(|name, _| name.starts_with("pushdex.")),
            }
        }
        m
    }
}

// ---- the documents --------------------------------------------------------

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Deterministic text of about `bytes` bytes (some of it not ASCII).
fn words(seed: u64, bytes: usize) -> String {
    const WORDS: [&str; 12] = [
        "quarterly",
        "report",
        "invoice",
        "draft",
        "élan",
        "naïve",
        "données",
        "share",
        "folder",
        "budget",
        "2024",
        "ok",
    ];
    let mut x = seed | 1;
    let mut s = String::with_capacity(bytes + 16);
    while s.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
        s.push(' ');
    }
    s
}

/// One version of a document, from which both the `Document` pushed and the
/// `Update` that produces it are made.
#[derive(Clone, Debug)]
struct Spec {
    uri: String,
    stamp: String,
    tags: Vec<String>,
    body: String,
    blob: Option<Vec<u8>>,
}

fn spec(uri: &str, version: u32, body_bytes: usize) -> Spec {
    let seed = fnv(uri) ^ (u64::from(version) << 32);
    Spec {
        uri: uri.to_string(),
        stamp: format!("{version}.{:08x}", seed as u32),
        tags: (0..seed % 3).map(|t| format!("t{t}.v{version}")).collect(),
        body: format!("{uri} version {version}: {}", words(seed, body_bytes)),
        blob: Some((0..16 + (seed % 48) as usize).map(|i| (seed >> (i % 8 * 8)) as u8 ^ i as u8).collect()),
    }
}

impl Spec {
    /// Metas `kind` then `tag`s, parts `body` then `blob`: the order
    /// `Update` keeps when it replaces the tags and the body.
    fn doc(&self) -> Document {
        let kind = self.uri.split('/').nth(1).unwrap_or("eno");
        let mut doc = Document::new(self.uri.as_str()).with_stamp(self.stamp.as_str()).with_meta("kind", kind);
        for tag in &self.tags {
            doc = doc.with_meta("tag", tag.as_str());
        }
        doc = doc.with_text("body", self.body.as_str());
        if let Some(blob) = &self.blob {
            doc = doc.with_part("blob", blob.clone());
        }
        doc
    }
}

/// Pushes the history and keeps its model.
struct Writer {
    index: Index,
    history: History,
    specs: BTreeMap<String, Spec>,
}

impl Writer {
    fn record(&mut self, serial: Serial, effects: Vec<Effect>) {
        self.history.effects.extend(effects);
        assert_eq!(serial.0, self.history.total(), "serials are consecutive");
    }

    fn add(&mut self, spec: Spec) {
        let serial = self.index.add(spec.doc()).unwrap();
        self.history.uris.insert(spec.uri.clone());
        self.specs.insert(spec.uri.clone(), spec.clone());
        self.record(serial, vec![Effect::Put(spec.doc())]);
    }

    fn add_all(&mut self, specs: Vec<Spec>) {
        let serial = self.index.add_all(specs.iter().map(Spec::doc)).unwrap();
        for spec in &specs {
            self.history.uris.insert(spec.uri.clone());
            self.specs.insert(spec.uri.clone(), spec.clone());
        }
        self.record(serial, specs.iter().map(|s| Effect::Put(s.doc())).collect());
    }

    /// Replaces the stamp, the tags and the body (keeping or removing the blob).
    fn update(&mut self, uri: &str, version: u32, body_bytes: usize, remove_blob: bool) {
        assert!(self.history.at(self.history.total()).docs.contains_key(uri), "{uri} is live");
        let mut new = spec(uri, version, body_bytes);
        new.blob = if remove_blob { None } else { self.specs[uri].blob.clone() };
        let mut update =
            Update::new().stamp(new.stamp.as_str()).meta("tag", new.tags.clone()).text("body", new.body.as_str());
        if remove_blob {
            update = update.remove_part("blob");
        }
        let serial = self.index.update(uri, update).unwrap();
        assert_eq!(self.index.get(uri).unwrap(), Some(new.doc()), "the model of update");
        self.specs.insert(uri.to_string(), new.clone());
        self.record(serial, vec![Effect::Put(new.doc())]);
    }

    fn delete(&mut self, uri: &str) {
        let serial = self.index.delete(uri).unwrap();
        self.history.uris.insert(uri.to_string());
        self.record(serial, vec![Effect::Delete(uri.to_string())]);
    }

    fn delete_root(&mut self, root: &str, recursive: bool) {
        let serial = self.index.delete_root_path(root, recursive).unwrap();
        self.record(serial, vec![Effect::DeleteRoot(root.to_string(), recursive)]);
    }

    fn delete_prefix(&mut self, prefix: &str) {
        let serial = self.index.delete_with_prefix(prefix).unwrap();
        self.record(serial, vec![Effect::DeletePrefix(prefix.to_string())]);
    }

    fn set_checkpoint(&mut self, name: &str, value: &str) {
        let serial = self.index.set_checkpoint(name, value).unwrap();
        self.history.names.insert(name.to_string());
        self.record(serial, vec![Effect::SetCheckpoint(name.to_string(), value.to_string())]);
    }

    /// A connector: the registry's two reserved checkpoints (the next id,
    /// the entry), written by the connector layer, the only writer of
    /// `pushdex.` names.
    fn create_connector(&mut self, root: &str) {
        struct Nothing;
        impl pushdex::connector::Source for Nothing {
            fn description(&self) -> String {
                "nothing".into()
            }
            fn list(
                &self,
                _: &mut dyn FnMut(pushdex::connector::SourceItem) -> pushdex::Result<()>,
            ) -> pushdex::Result<()> {
                Ok(())
            }
            fn fetch(&self, _: &pushdex::connector::SourceItem) -> pushdex::Result<Option<Document>> {
                Ok(None)
            }
        }
        let connectors = pushdex::connector::Connectors::open(&self.index).unwrap();
        let info =
            connectors.create("files", root, std::sync::Arc::new(Nothing), pushdex::connector::RunMode::Once).unwrap();
        for name in ["pushdex.connectors.next".to_string(), format!("pushdex.connector.{}", info.id)] {
            let c = self.index.checkpoint(&name).unwrap().expect("the registry's checkpoint");
            self.history.names.insert(name.clone());
            self.record(c.serial, vec![Effect::SetCheckpoint(name, c.value)]);
        }
    }

    fn delete_checkpoint(&mut self, name: &str) {
        let serial = self.index.delete_checkpoint(name).unwrap();
        self.history.names.insert(name.to_string());
        self.record(serial, vec![Effect::DeleteCheckpoint(name.to_string())]);
    }

    fn clear_checkpoints(&mut self) {
        let serial = self.index.clear_checkpoints().unwrap();
        self.record(serial, vec![Effect::ClearCheckpoints]);
    }
}

fn alpha(i: usize) -> String {
    format!("share/alpha/{i:03}.txt")
}

fn beta(i: usize) -> String {
    format!("share/beta/{}/{i:03}.txt", i % 5)
}

fn gamma(i: usize) -> String {
    format!("share/gamma/{i:02}.bin")
}

fn delta(i: usize) -> String {
    format!("share/delta/{i}.txt")
}

// ---- the two directories --------------------------------------------------

struct Scenario {
    history: History,
    flushed: Sweep,
    crashed: Sweep,
    _root: tempfile::TempDir,
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "LOCK" {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn count_ext(names: &BTreeSet<String>, ext: &str) -> usize {
    names.iter().filter(|n| n.ends_with(ext)).count()
}

fn scenario() -> Scenario {
    let root = tempfile::tempdir().unwrap();
    let flushed = root.path().join("flushed");
    let snapshot = root.path().join("snapshot");
    let crashed = root.path().join("crashed");
    let mut w = Writer {
        index: Index::open_with(&flushed, options()).unwrap(),
        history: History::default(),
        specs: BTreeMap::new(),
    };

    // Wave 1: a batch, single adds, checkpoints (one of pushdex's own).
    w.add_all((0..40).map(|i| spec(&alpha(i), 1, 60 + i * 7 % 200)).collect());
    for i in 0..6 {
        w.add(spec(&format!("share/alpha/sub/{i}.txt"), 1, 80));
    }
    for i in 0..4 {
        w.add(spec(&format!("share/alpha/sub/deeper/{i}.txt"), 1, 80));
    }
    for i in 0..3 {
        for name in ["master", "masterpart", "other"] {
            w.add(spec(&format!("eno:bo:{name}{i}"), 1, 40));
        }
    }
    w.set_checkpoint("crawl", "alpha");
    w.create_connector("share/alpha");
    w.set_checkpoint("other", "x");
    w.index.refresh().unwrap();

    // Wave 2: rewrites of wave 1 (a bitmap for its segment), then both
    // segments merged into one.
    w.add_all((0..40).map(|i| spec(&beta(i), 1, 100 + i * 13 % 150)).collect());
    for i in 0..10 {
        w.update(&alpha(i), 2, 90, i % 3 == 0);
    }
    for i in 10..15 {
        w.add(spec(&alpha(i), 3, 120));
    }
    w.set_checkpoint("crawl", "beta");
    w.index.refresh().unwrap();
    w.index.compact().unwrap();

    // Wave 3: a segment whose bodies span two 64 KiB blocks; deletions of
    // every kind in the merged segment (its bitmap).
    w.add_all((0..36).map(|i| spec(&gamma(i), 1, 2000 + i * 17)).collect());
    for i in 20..23 {
        w.delete(&alpha(i));
    }
    w.delete("share/never-written.txt");
    w.delete_root("share/alpha/sub", false);
    w.delete_prefix("eno:bo:master");
    w.delete_checkpoint("other");
    let crashed_commit = w.index.refresh().unwrap().0;

    // Wave 4, logged, then copied as it is before its flush commits.
    w.delete(&gamma(3));
    w.delete(&gamma(4));
    w.delete(&beta(1));
    w.delete_root("share/beta/3", true);
    for i in 0..6 {
        w.add(spec(&delta(i), 1, 50 + i * 30));
    }
    w.update(&gamma(10), 2, 300, false);
    w.update(&gamma(11), 2, 2500, true);
    w.set_checkpoint("crawl", "delta");
    w.index.sync().unwrap();
    copy_dir(&flushed, &snapshot);
    let flushed_commit = w.index.refresh().unwrap().0;

    // The tail: only in the log.
    w.add(spec("share/epsilon/0.txt", 1, 70));
    w.add_all((1..5).map(|i| spec(&format!("share/epsilon/{i}.txt"), 1, 40 + i * 40)).collect());
    w.update(&alpha(30), 5, 150, false);
    w.update(&delta(2), 2, 60, true);
    w.delete(&gamma(20));
    w.delete(&delta(4));
    w.index.sync().unwrap();
    w.delete_root("share/alpha", false);
    w.set_checkpoint("crawl", "tail");
    w.clear_checkpoints();
    w.set_checkpoint("after-clear", "1");
    w.add(spec("share/alpha/sub/0.txt", 9, 64));
    w.delete_prefix("share/delta/");
    w.add_all((0..3).map(|i| spec(&format!("share/zeta/{i}.txt"), 1, 30)).collect());
    w.update(&gamma(30), 2, 100, true);
    w.add(spec("eno:bo:master0", 9, 20));
    w.delete("share/epsilon/3.txt");
    w.set_checkpoint("crawl", "end");
    w.index.sync().unwrap();
    for never in ["share/alpha", "share/alpha/", "eno:bo:master", "zzz"] {
        w.history.uris.insert(never.to_string());
    }
    let Writer { index, history, .. } = w;
    // The model is checked against the live index before anything is damaged.
    check_index(&index, &flushed, &history, history.total(), flushed_commit, true)
        .unwrap_or_else(|e| panic!("the live index does not match the model: {e}"));
    // Dropped without close: the tail stays in the log (drop syncs it).
    drop(index);

    let flushed_names = names(&flushed);
    let snapshot_names = names(&snapshot);
    assert_eq!(
        [".pdx", ".bm", ".log"].map(|ext| count_ext(&flushed_names, ext)),
        [3, 2, 1],
        "the flushed directory: {flushed_names:?}"
    );
    assert_eq!(
        [".pdx", ".bm", ".log"].map(|ext| count_ext(&snapshot_names, ext)),
        [2, 1, 1],
        "the snapshot: {snapshot_names:?}"
    );
    // The crash between the flush's MANIFEST.tmp and its rename.
    copy_dir(&snapshot, &crashed);
    for name in flushed_names.difference(&snapshot_names).filter(|n| *n != "LOCK") {
        fs::copy(flushed.join(name), crashed.join(name)).unwrap();
    }
    fs::copy(flushed.join("MANIFEST"), crashed.join("MANIFEST.tmp")).unwrap();

    let flushed_sweep = Sweep::new("flushed", &flushed, flushed_commit, &history, &flushed_names, None);
    assert!(
        flushed_sweep.files.iter().any(|f| matches!(&f.role, Role::Segment(s) if s[0].1 > SEGMENT_BLOCK)),
        "a segment's bodies span two blocks"
    );
    let crashed_sweep =
        Sweep::new("crashed", &crashed, crashed_commit, &history, &snapshot_names, Some(&flushed_sweep));
    Scenario { history, flushed: flushed_sweep, crashed: crashed_sweep, _root: root }
}

// ---- files and the damage done to them -----------------------------------

/// A log frame: its bytes and its serials.
#[derive(Clone, Debug)]
struct Frame {
    start: usize,
    end: usize,
    first: u64,
    last: u64,
}

#[derive(Clone, Debug)]
struct LogInfo {
    /// The newest log file: only it may have a torn tail.
    last: bool,
    /// The serial before its first frame.
    base: u64,
    frames: Vec<Frame>,
}

impl LogInfo {
    /// The last serial of the frames that end at or before `at`.
    fn through(&self, at: usize) -> u64 {
        self.frames.iter().take_while(|f| f.end <= at).last().map_or(self.base, |f| f.last)
    }
}

#[derive(Clone, Debug)]
enum Role {
    Manifest,
    /// A live segment and its five sections (offset, length).
    Segment(Vec<(usize, usize)>),
    Bitmap,
    Log(LogInfo),
    /// A file open never reads: an orphan, `MANIFEST.tmp`.
    Ignored,
}

struct FileInfo {
    name: String,
    bytes: Vec<u8>,
    role: Role,
    /// Byte-identical to a file of the directory swept in full: a few
    /// flips only (and, for a log, the cuts, whose outcome depends on the
    /// logs before it).
    light: bool,
}

struct Sweep {
    name: &'static str,
    path: PathBuf,
    /// The serial `MANIFEST` covers.
    committed: u64,
    files: Vec<FileInfo>,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn log_gen(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?.strip_suffix(".log")?.parse().ok()
}

/// The frames of an undamaged log file (docs/FORMAT.md, "Log").
fn parse_frames(bytes: &[u8]) -> Vec<(usize, usize, u64)> {
    assert_eq!(&bytes[..8], b"PDXWAL\r\n");
    let mut frames = Vec::new();
    let mut at = LOG_HEADER;
    while at < bytes.len() {
        // check u64, len u32, serial u64, kind u8.
        let end = at + FRAME_HEADER + le_u32(bytes, at + 8) as usize;
        assert!(end <= bytes.len(), "a frame at {at} runs past the end");
        frames.push((at, end, le_u64(bytes, at + 12)));
        at = end;
    }
    frames
}

/// The sections of an undamaged segment (offset, length), in
/// `Section::ALL` order, from its footer's table of contents.
fn parse_sections(bytes: &[u8]) -> Vec<(usize, usize)> {
    let footer = pushdex::segment::parse_footer(bytes).expect("an undamaged segment's footer");
    assert_eq!((footer.version, footer.len), (pushdex::segment::VERSION, SEGMENT_FOOTER));
    let sections: Vec<(usize, usize)> =
        Section::ALL.iter().map(|&s| (footer.section(s).start as usize, footer.section_len(s) as usize)).collect();
    let mut at = 0;
    for &(off, len) in &sections {
        assert_eq!(off, at, "sections follow each other");
        at += len;
    }
    assert_eq!(at, bytes.len() - SEGMENT_FOOTER);
    sections
}

impl Sweep {
    /// `live`: the segment and bitmap files the manifest names (the others
    /// are orphans). `full`: a directory swept in full, whose identical
    /// files this one sweeps lightly.
    fn new(
        name: &'static str,
        path: &Path,
        committed: u64,
        history: &History,
        live: &BTreeSet<String>,
        full: Option<&Sweep>,
    ) -> Sweep {
        let mut files: Vec<FileInfo> = Vec::new();
        for file in names(path) {
            if file == "LOCK" {
                continue;
            }
            let bytes = fs::read(path.join(&file)).unwrap();
            let role = if file == "MANIFEST" {
                Role::Manifest
            } else if log_gen(&file).is_some() {
                Role::Log(LogInfo { last: false, base: 0, frames: Vec::new() })
            } else if !live.contains(&file) {
                Role::Ignored
            } else if file.ends_with(".pdx") {
                Role::Segment(parse_sections(&bytes))
            } else if file.ends_with(".bm") {
                Role::Bitmap
            } else {
                panic!("an unexpected file {file} in {}", path.display());
            };
            let light = full.is_some_and(|full| full.files.iter().any(|f| f.bytes == bytes));
            files.push(FileInfo { name: file, bytes, role, light });
        }
        // The logs in replay order; each frame's last serial is one before
        // the next frame's first, across files; the last ends the history.
        let mut logs: Vec<usize> = (0..files.len()).filter(|&i| matches!(files[i].role, Role::Log(_))).collect();
        logs.sort_by_key(|&i| log_gen(&files[i].name));
        let raw: Vec<Vec<(usize, usize, u64)>> = logs.iter().map(|&i| parse_frames(&files[i].bytes)).collect();
        let firsts: Vec<u64> = raw.iter().flatten().map(|f| f.2).chain([history.total() + 1]).collect();
        assert_eq!(firsts[0], committed + 1, "{name}: the logs start right after the manifest");
        let mut k = 0;
        for (n, (&i, raw)) in logs.iter().zip(&raw).enumerate() {
            assert!(!raw.is_empty(), "{name}: every log holds frames");
            let frames: Vec<Frame> = raw
                .iter()
                .map(|&(start, end, first)| {
                    k += 1;
                    Frame { start, end, first, last: firsts[k] - 1 }
                })
                .collect();
            let base = frames[0].first - 1;
            files[i].role = Role::Log(LogInfo { last: n == logs.len() - 1, base, frames });
        }
        Sweep { name, path: path.to_path_buf(), committed, files }
    }
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// The undamaged copy: the baseline.
    None,
    /// `byte[at] ^= mask`.
    Flip {
        at: usize,
        mask: u8,
    },
    /// `set_len`: shorter, or one zero byte longer.
    Cut(usize),
    /// Zeros from this byte (not zero before) to the end.
    Zero(usize),
    Remove,
}

/// What a case may give, from docs/FORMAT.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Open must succeed and recover exactly `1..=j`.
    Opens(u64),
    /// Open may fail (`Corrupt` / `Io`); if it opens, it recovered `1..=j`.
    CorruptOr(u64),
}

struct Case {
    /// `None`: the undamaged directory.
    file: Option<usize>,
    damage: Damage,
    expect: Expect,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::None => write!(f, "undamaged"),
            Damage::Flip { at, mask } => write!(f, "byte {at} ^= {mask:#04x}"),
            Damage::Cut(len) => write!(f, "cut to {len} bytes"),
            Damage::Zero(at) => write!(f, "zeroed from byte {at} on"),
            Damage::Remove => write!(f, "removed"),
        }
    }
}

fn spread(len: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| k * len / n).filter(move |&at| at < len)
}

/// The flips and cuts of one file.
fn plan(file: &FileInfo, full: bool) -> (BTreeMap<usize, BTreeSet<u8>>, BTreeSet<usize>) {
    let len = file.bytes.len();
    let mut flips: BTreeMap<usize, BTreeSet<u8>> = BTreeMap::new();
    let mut cuts: BTreeSet<usize> = [0, 1, len.saturating_sub(1), len + 1].into();
    let all_masks = |at: usize, flips: &mut BTreeMap<usize, BTreeSet<u8>>| {
        if at < len {
            flips.entry(at).or_default().extend(MASKS);
        }
    };
    let one_mask = |at: usize, flips: &mut BTreeMap<usize, BTreeSet<u8>>| {
        if at < len {
            flips.entry(at).or_default().insert(MASKS[at % MASKS.len()]);
        }
    };
    if full {
        (0..len).for_each(|at| all_masks(at, &mut flips));
        cuts.extend(0..len);
    } else if file.light {
        for (k, at) in spread(len, 16).chain([len - 1]).enumerate() {
            flips.entry(at).or_default().insert(SPREAD_MASKS[k % SPREAD_MASKS.len()]);
        }
        if let Role::Log(log) = &file.role {
            cuts.extend(log.frames.iter().flat_map(|f| [f.start - 1, f.start, f.start + 1]));
        }
    } else {
        if len <= SMALL_FILE {
            (0..len).for_each(|at| all_masks(at, &mut flips));
        }
        match &file.role {
            Role::Log(log) => {
                (0..LOG_HEADER).for_each(|at| all_masks(at, &mut flips));
                cuts.extend([LOG_HEADER - 1, LOG_HEADER, LOG_HEADER + 1]);
                for frame in &log.frames {
                    // The length gets every mask; the check, serial and
                    // kind one each.
                    (frame.start + 8..frame.start + 12).for_each(|at| all_masks(at, &mut flips));
                    (frame.start..frame.start + 8).for_each(|at| one_mask(at, &mut flips));
                    (frame.start + 12..=frame.start + FRAME_HEADER).for_each(|at| one_mask(at, &mut flips));
                    all_masks(frame.end - 1, &mut flips);
                    cuts.extend([frame.start - 1, frame.start + 1, frame.end - 1, frame.end, frame.end + 1]);
                }
            }
            Role::Segment(sections) => {
                (len - SEGMENT_FOOTER..len).for_each(|at| one_mask(at, &mut flips));
                cuts.extend([len - SEGMENT_FOOTER - 1, len - SEGMENT_FOOTER, len - SEGMENT_FOOTER + 1]);
                for (i, &(off, section_len)) in sections.iter().enumerate() {
                    cuts.extend([off, off + 1, off + section_len / 2]);
                    // The first and last byte of the section and, for the
                    // block-checked ones, of every 64 KiB block.
                    // (bodies, stamps, rows, names, norms, postings, metas:
                    // docs/FORMAT.md).
                    let step = if Section::ALL[i].blocked().is_some() { SEGMENT_BLOCK } else { section_len.max(1) };
                    for start in (off..off + section_len).step_by(step) {
                        all_masks(start, &mut flips);
                        all_masks((start + step).min(off + section_len) - 1, &mut flips);
                    }
                }
            }
            Role::Manifest | Role::Bitmap | Role::Ignored => {
                cuts.extend([FILE_HEADER - 1, FILE_HEADER, FILE_HEADER + 1]);
            }
        }
        if len > SMALL_FILE {
            for (k, at) in spread(len, SPREAD).chain([len - 1]).enumerate() {
                flips.entry(at).or_default().insert(SPREAD_MASKS[k % SPREAD_MASKS.len()]);
            }
        }
        cuts.extend(spread(len, 16));
    }
    cuts.remove(&len);
    cuts.retain(|&cut| cut <= len + 1);
    (flips, cuts)
}

/// What FORMAT.md promises for `damage` to `file`, in a history of `total`
/// operations.
fn expect(file: &FileInfo, damage: Damage, total: u64) -> Expect {
    let len = file.bytes.len();
    match (&file.role, damage) {
        (_, Damage::None) | (Role::Ignored, _) => Expect::Opens(total),
        // A bad frame ends the log: the frames before it are recovered; a
        // valid frame after it is Corrupt; only the last file may be torn.
        (Role::Log(log), Damage::Cut(cut)) if log.last => {
            Expect::Opens(if cut > len { total } else { log.through(cut) })
        }
        (Role::Log(log), Damage::Flip { at, .. }) if log.last && at >= LOG_HEADER => {
            let frame = log.frames.iter().position(|f| f.start <= at && at < f.end).unwrap();
            if frame + 1 == log.frames.len() {
                Expect::Opens(log.frames[frame].first - 1)
            } else {
                Expect::CorruptOr(total)
            }
        }
        // All zeros is a torn creation; zeros after a good frame, a torn
        // tail (every later frame is gone).
        (Role::Log(log), Damage::Zero(0)) if log.last => Expect::Opens(log.base),
        (Role::Log(log), Damage::Zero(at)) if log.last && at >= LOG_HEADER => {
            Expect::Opens(log.frames.iter().find(|f| f.start <= at && at < f.end).unwrap().first - 1)
        }
        // Not written down; replaying the logs before it is the one
        // outcome that is not Corrupt.
        (Role::Log(log), Damage::Remove) if log.last => Expect::CorruptOr(log.base),
        _ => Expect::CorruptOr(total),
    }
}

fn cases(sweep: &Sweep, total: u64, full: bool) -> Vec<Case> {
    let mut cases = vec![Case { file: None, damage: Damage::None, expect: Expect::Opens(total) }];
    for (i, file) in sweep.files.iter().enumerate() {
        let (flips, cuts) = plan(file, full);
        // Zeros from each cut on (the size reached the disk, the data did
        // not), and in a log from each frame's serial and payload on; only
        // from a byte that was not zero already, so that the first changed
        // byte is known.
        let mut zeros = cuts.clone();
        if let Role::Log(log) = &file.role {
            zeros.extend(log.frames.iter().flat_map(|f| [f.start + 12, f.start + FRAME_HEADER]));
        }
        zeros.retain(|&at| file.bytes.get(at).is_some_and(|&b| b != 0));
        let damages = flips
            .iter()
            .flat_map(|(&at, masks)| masks.iter().map(move |&mask| Damage::Flip { at, mask }))
            .chain(cuts.iter().map(|&cut| Damage::Cut(cut)))
            .chain(zeros.iter().map(|&at| Damage::Zero(at)))
            .chain([Damage::Remove]);
        cases.extend(damages.map(|damage| Case { file: Some(i), damage, expect: expect(file, damage, total) }));
    }
    cases
}

fn damage(dir: &Path, file: &str, damage: Damage) {
    let path = dir.join(file);
    match damage {
        Damage::None => {}
        Damage::Flip { at, mask } => {
            let mut bytes = fs::read(&path).unwrap();
            bytes[at] ^= mask;
            fs::write(&path, bytes).unwrap();
        }
        Damage::Cut(len) => fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len as u64).unwrap(),
        Damage::Zero(at) => {
            let mut bytes = fs::read(&path).unwrap();
            bytes[at..].fill(0);
            fs::write(&path, bytes).unwrap();
        }
        Damage::Remove => fs::remove_file(&path).unwrap(),
    }
}

// ---- checking an opened index --------------------------------------------

/// An error a damaged file may give: `Corrupt` naming a path in the index
/// directory with a detail, or `Io`.
fn acceptable(e: &Error, dir: &Path) -> bool {
    match e {
        Error::Corrupt { path, detail } => path.starts_with(dir) && !detail.is_empty(),
        Error::Io(_) => true,
        _ => false,
    }
}

/// Reads everything and compares it with the model at `j = last`; then
/// checks that `j` is the one FORMAT.md promises (`want`). With `clean`
/// (the damaged file is read whole at open), no read may fail. Returns
/// whether a read failed (acceptably).
fn check_index(
    index: &Index,
    dir: &Path,
    history: &History,
    want: u64,
    committed: u64,
    clean: bool,
) -> Result<bool, String> {
    let w = index.watermarks();
    let j = w.last.0;
    if j > history.total() {
        return Err(format!("recovered serial {j}, but only {} operations were written", history.total()));
    }
    if w.synced != w.last || w.searchable != Serial(committed) {
        return Err(format!("watermarks {w:?}: expected synced = last and searchable = {committed}"));
    }
    let model = history.at(j);
    let mut failed_reads = 0usize;
    let mut tolerate = |e: Error, what: &str| -> Result<(), String> {
        if clean || !acceptable(&e, dir) {
            return Err(format!("{what} (state 1..={j}): {e:?}"));
        }
        failed_reads += 1;
        Ok(())
    };
    let status_of = |uri: &str, serial: u64, stamp: &str| DocumentStatus {
        uri: uri.to_string(),
        stamp: stamp.to_string(),
        state: w.state_of(Serial(serial)),
        serial: Serial(serial),
    };

    let expected: Vec<Entry> =
        model.docs.iter().map(|(uri, (serial, doc))| Entry::Document(status_of(uri, *serial, doc.stamp()))).collect();
    match index.enumerate("", EnumerationMode::RecursiveDocuments) {
        Err(e) => tolerate(e, "enumerate")?,
        Ok(entries) => {
            let mut n = 0;
            let mut complete = true;
            for entry in entries {
                match entry {
                    Ok(entry) if expected.get(n) == Some(&entry) => n += 1,
                    Ok(entry) => {
                        return Err(format!(
                            "enumerate (state 1..={j}): entry {n} is {entry:?}, expected {:?}",
                            expected.get(n)
                        ))
                    }
                    Err(e) => {
                        tolerate(e, "enumerate")?;
                        complete = false;
                        break;
                    }
                }
            }
            if complete && n != expected.len() {
                return Err(format!("enumerate (state 1..={j}): {n} entries, expected {}", expected.len()));
            }
        }
    }
    match index.count("", EnumerationMode::RecursiveDocuments) {
        Ok(n) if n == model.docs.len() as u64 => {}
        Ok(n) => return Err(format!("count (state 1..={j}): {n}, expected {}", model.docs.len())),
        Err(e) => tolerate(e, "count")?,
    }
    for uri in &history.uris {
        let want_doc = model.docs.get(uri);
        let want_status = match want_doc {
            Some((serial, doc)) => status_of(uri, *serial, doc.stamp()),
            None => DocumentStatus { uri: uri.clone(), stamp: String::new(), state: State::Initial, serial: Serial(0) },
        };
        match index.status(uri) {
            Ok(status) if status == want_status => {}
            Ok(status) => return Err(format!("status (state 1..={j}): {status:?}, expected {want_status:?}")),
            Err(e) => tolerate(e, &format!("status of {uri}"))?,
        }
        match index.get(uri) {
            Ok(doc) if doc.as_ref() == want_doc.map(|(_, d)| d) => {}
            Ok(doc) => return Err(format!("get {uri} (state 1..={j}): {doc:?}, expected {want_doc:?}")),
            Err(e) => tolerate(e, &format!("get {uri}"))?,
        }
    }
    let checkpoint = |name: &str, (value, serial): &(String, u64)| Checkpoint {
        name: name.to_string(),
        value: value.clone(),
        serial: Serial(*serial),
        state: w.state_of(Serial(*serial)),
    };
    let listed: Vec<Checkpoint> = model
        .checkpoints
        .iter()
        .filter(|(name, _)| !name.starts_with("pushdex."))
        .map(|(name, c)| checkpoint(name, c))
        .collect();
    match index.checkpoints() {
        Ok(got) if got == listed => {}
        Ok(got) => return Err(format!("checkpoints (state 1..={j}): {got:?}, expected {listed:?}")),
        Err(e) => tolerate(e, "checkpoints")?,
    }
    for name in &history.names {
        let want_checkpoint = model.checkpoints.get(name).map(|c| checkpoint(name, c));
        match index.checkpoint(name) {
            Ok(got) if got == want_checkpoint => {}
            Ok(got) => return Err(format!("checkpoint {name} (state 1..={j}): {got:?}, expected {want_checkpoint:?}")),
            Err(e) => tolerate(e, &format!("checkpoint {name}"))?,
        }
    }
    if j != want {
        return Err(format!(
            "recovered operations 1..={j}, a prefix of the history, but FORMAT.md promises 1..={want}"
        ));
    }
    Ok(failed_reads > 0)
}

// ---- running the cases ------------------------------------------------------

#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    cases: usize,
    corrupt: usize,
    io: usize,
    opened: usize,
    failed_reads: usize,
}

enum Outcome {
    /// Open failed: `Corrupt`, or `Io` when `io`.
    Refused { io: bool },
    /// Open succeeded and every read gave the model's answer or, when
    /// `failed_reads`, an acceptable error.
    Opened { failed_reads: bool },
}

/// A directory for one case: in `/dev/shm` when it exists and `TMPDIR` is
/// not set. Every open fsyncs the log and the directory, and on a disk those
/// fsyncs are most of the run (35 s against 9 s on a 2-core VM); what is
/// tested here is what open reads, not durability.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if std::env::var_os("TMPDIR").is_none() && shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new().prefix("pushdex-damage").tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

fn run_case(scenario: &Scenario, sweep: &Sweep, case: &Case) -> Result<Outcome, String> {
    let file = case.file.map(|i| &sweep.files[i]);
    let tmp = scratch();
    let dir = tmp.path();
    copy_dir(&sweep.path, dir);
    if let Some(file) = file {
        damage(dir, &file.name, case.damage);
    }
    let (want, must_open) = match case.expect {
        Expect::Opens(j) => (j, true),
        Expect::CorruptOr(j) => (j, false),
    };
    let role = file.map(|f| &f.role);
    let clean = !matches!(role, Some(Role::Segment(_)));
    let index = match Index::open_with(dir, options()) {
        Err(e) if must_open => return Err(format!("open failed, expected 1..={want}: {e:?}")),
        Err(e) if acceptable(&e, dir) => return Ok(Outcome::Refused { io: matches!(e, Error::Io(_)) }),
        Err(e) => return Err(format!("open failed with an unexpected error: {e:?}")),
        Ok(index) => index,
    };
    let failed_reads = check_index(&index, dir, &scenario.history, want, sweep.committed, clean)?;
    drop(index);
    if matches!(role, Some(Role::Log(_))) {
        // The first open may have repaired the log (cut a torn tail, rewrote
        // a torn header): opening again recovers the same state.
        let index = Index::open_with(dir, options()).map_err(|e| format!("second open: {e:?}"))?;
        check_index(&index, dir, &scenario.history, want, sweep.committed, true)
            .map_err(|e| format!("second open: {e}"))?;
    }
    Ok(Outcome::Opened { failed_reads })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}

fn sweep(scenario: &Scenario, sweep: &Sweep) {
    let started = Instant::now();
    let full = std::env::var(FULL_ENV).is_ok_and(|v| v == "1");
    let cases = cases(sweep, scenario.history.total(), full);
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    // One per file, then the undamaged directory's.
    let tallies: Mutex<Vec<Tally>> = Mutex::new(vec![Tally::default(); sweep.files.len() + 1]);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(k) else { return };
                let result = catch_unwind(AssertUnwindSafe(|| run_case(scenario, sweep, case)))
                    .unwrap_or_else(|payload| Err(format!("PANIC: {}", panic_message(payload.as_ref()))));
                let mut tallies = tallies.lock().unwrap();
                let tally = &mut tallies[case.file.unwrap_or(sweep.files.len())];
                tally.cases += 1;
                match result {
                    Ok(Outcome::Refused { io: false }) => tally.corrupt += 1,
                    Ok(Outcome::Refused { io: true }) => tally.io += 1,
                    Ok(Outcome::Opened { failed_reads }) => {
                        tally.opened += 1;
                        tally.failed_reads += usize::from(failed_reads);
                    }
                    Err(e) => failures.lock().unwrap().push((k, e)),
                }
            });
        }
    });
    let tallies = tallies.into_inner().unwrap();
    eprintln!("{}: undamaged: {:?}", sweep.name, tallies[sweep.files.len()]);
    for (file, tally) in sweep.files.iter().zip(&tallies) {
        eprintln!(
            "{}/{} ({} bytes{}): {} cases; open: {} Corrupt, {} Io, {} opened ({} with a failed read)",
            sweep.name,
            file.name,
            file.bytes.len(),
            if file.light { ", light" } else { "" },
            tally.cases,
            tally.corrupt,
            tally.io,
            tally.opened,
            tally.failed_reads
        );
    }
    eprintln!("{}: {} cases in {:.1} s on {workers} threads", sweep.name, cases.len(), started.elapsed().as_secs_f64());
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    if !failures.is_empty() {
        let shown: Vec<String> = failures
            .iter()
            .take(40)
            .map(|(k, e)| {
                let case = &cases[*k];
                let file = case.file.map_or("", |i| sweep.files[i].name.as_str());
                format!("{}/{file} {} [{:?}]: {e}", sweep.name, case.damage, case.expect)
            })
            .collect();
        panic!("{} of {} damage cases failed:\n{}", failures.len(), cases.len(), shown.join("\n"));
    }
}

#[test]
fn damage_to_any_file_of_a_flushed_index_is_corrupt_or_a_prefix_of_the_history() {
    let scenario = scenario();
    sweep(&scenario, &scenario.flushed);
}

#[test]
fn damage_to_any_file_a_crash_during_a_flush_left_is_corrupt_or_a_prefix_of_the_history() {
    let scenario = scenario();
    sweep(&scenario, &scenario.crashed);
}
