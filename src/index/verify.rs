//! `Index::verify` and `Index::repair`: read every file of an index
//! directory without opening it, and bring an index that open refuses back
//! to the longest valid prefix of its history.
//!
//! Verification runs what open runs (the manifest, the committed segments
//! and bitmaps, the log replayed on top), without writing anything, then
//! reads every block of every segment, which open leaves to the first read
//! that needs it. Repair fixes what only the log can break: it keeps every
//! frame before the first damage and moves what it drops into
//! `lost+found/`; damage to `MANIFEST`, a segment or a bitmap is reported,
//! never guessed around (`docs/FORMAT.md`, "Repair").

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::files::FileName;
use crate::manifest;
use crate::segment::Segment;
use crate::storage::{FsStorage, Storage};
use crate::wal::{self, FileEnd};

use super::{load_committed, next_free_gen, replay_frame};

/// What [`Index::verify`](super::Index::verify) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Whether [`Index::open`](super::Index::open) would open the directory
    /// as it is (a torn log tail, which open cuts, does not prevent it).
    pub opens: bool,
    /// What is wrong, in the order found; empty when nothing is.
    pub problems: Vec<Problem>,
    /// Every file of the index read, by name, with its size in bytes.
    pub files: Vec<(String, u64)>,
    /// The serial of the last operation the index holds: what open would
    /// recover, or, when the log is damaged, what repair would keep.
    pub last_serial: u64,
    /// The serial the manifest commits (0 without a manifest).
    pub committed_serial: u64,
    /// The committed segments, and the rows they hold (deleted rows
    /// included).
    pub segments: usize,
    /// Rows in the committed segments.
    pub segment_rows: u64,
    /// Log frames replayed on top of the manifest (up to any damage).
    pub log_frames: u64,
    /// A torn tail that open cuts off (file, offset, why): the end of a
    /// write the process or the machine died in, never Synced. Not a problem.
    pub torn_tail: Option<(String, u64, String)>,
    /// Whether another process had the index open while this verification
    /// read it (what it read may have changed meanwhile).
    pub in_use: bool,
}

/// One thing wrong with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, by name in the index directory.
    pub file: String,
    /// What is wrong, as the error open or a read would give.
    pub detail: String,
    /// Whether open fails on it (else only some reads do).
    pub blocks_open: bool,
    /// Whether [`Index::repair`](super::Index::repair) fixes it.
    pub repairable: bool,
}

/// What [`Index::repair`](super::Index::repair) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// Files moved whole into `lost+found/`: (name, name there).
    pub moved: Vec<(String, String)>,
    /// Log files cut at the damage: (name, bytes kept, bytes before), with
    /// a whole copy in `lost+found/` (its name there).
    pub cut: Vec<(String, u64, u64, String)>,
    /// Problems repair leaves as they are (damage to `MANIFEST`, a segment
    /// or a bitmap).
    pub unrepaired: Vec<Problem>,
    /// The index after the repair.
    pub after: Verification,
}

impl Repair {
    /// Whether the repair changed anything.
    pub fn changed(&self) -> bool {
        !self.moved.is_empty() || !self.cut.is_empty()
    }
}

/// The storage of an existing directory; `NoIndex` when there is none.
pub(super) fn existing_storage(dir: &Path) -> Result<FsStorage> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => FsStorage::new(dir).map_err(Error::Io),
        Ok(_) => Err(Error::NoIndex { path: dir.to_path_buf() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NoIndex { path: dir.to_path_buf() }),
        Err(e) => Err(Error::Io(e)),
    }
}

/// Whether the files of a directory, by name, are a pushdex index: the lock
/// file that every open creates first, and a manifest or a log file. (Either
/// alone is found among other files: Python packages have a `MANIFEST`, and
/// a copy of a log can be anywhere.)
pub(crate) fn names_hold_index<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> bool {
    let (mut lock, mut data) = (false, false);
    for name in names {
        match FileName::parse(name.as_ref()) {
            Some(FileName::Lock) => lock = true,
            Some(FileName::Manifest | FileName::Log(_)) => data = true,
            _ => {}
        }
    }
    lock && data
}

/// [`names_hold_index`] for a storage.
pub(super) fn holds_index(storage: &dyn Storage) -> Result<bool> {
    Ok(names_hold_index(storage.list()?))
}

/// Where the log is damaged, as a verification found it.
struct LogDamage {
    gen: u64,
    offset: u64,
    /// Good frames in that file before the damage.
    frames: u64,
}

/// Verifies the index in `storage`; also returns where the log is damaged.
/// `locked`: the caller holds the directory lock (so it is not "in use").
fn verify_storage(storage: &dyn Storage, locked: bool) -> Result<(Verification, Option<LogDamage>)> {
    if !holds_index(storage)? {
        return Err(Error::NoIndex { path: storage.root().to_path_buf() });
    }
    // Shared, so that no open (whose recovery may cut the log files this
    // maps) or repair starts meanwhile; an open index holds it already,
    // and only ever appends to its logs.
    let shared = if locked { None } else { storage.try_lock_shared()? };
    let in_use = !locked && shared.is_none();
    let mut names = storage.list()?;
    names.sort();
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let len = storage.file_len(&name)?;
        files.push((name, len));
    }
    let mut v = Verification {
        opens: true,
        problems: Vec::new(),
        files,
        last_serial: 0,
        committed_serial: 0,
        segments: 0,
        segment_rows: 0,
        log_frames: 0,
        torn_tail: None,
        in_use,
    };
    let root = storage.root().to_path_buf();
    // The file an error names, relative to the directory.
    let name_of = |e: &Error, fallback: &str| match e {
        Error::Corrupt { path, .. } | Error::UnsupportedVersion { path, .. } => path
            .strip_prefix(&root)
            .ok()
            .and_then(|p| p.to_str())
            .filter(|p| !p.is_empty())
            .unwrap_or(fallback)
            .to_string(),
        _ => fallback.to_string(),
    };
    let problem = |v: &mut Verification, e: Error, file: String, blocks_open: bool, repairable: bool| {
        if !matches!(e, Error::Corrupt { .. } | Error::UnsupportedVersion { .. }) {
            return Err(e);
        }
        v.opens &= !blocks_open;
        v.problems.push(Problem { file, detail: e.to_string(), blocks_open, repairable });
        Ok(())
    };

    let manifest = match manifest::read_manifest(storage) {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => {
            let file = name_of(&e, manifest::MANIFEST);
            problem(&mut v, e, file, true, false)?;
            return Ok((v, None));
        }
    };
    v.committed_serial = manifest.serial;
    if let Err(e) = next_free_gen(storage, &manifest) {
        let file = name_of(&e, manifest::MANIFEST);
        problem(&mut v, e, file, true, false)?;
    }
    let mut tables = match load_committed(storage, &manifest) {
        Ok(tables) => tables,
        Err(e) => {
            let file = name_of(&e, manifest::MANIFEST);
            problem(&mut v, e, file, true, false)?;
            return Ok((v, None));
        }
    };
    // What open leaves to the first read: every block of every segment.
    for seg_ref in &manifest.segments {
        v.segments += 1;
        v.segment_rows += seg_ref.rows;
        if let Err(e) = Segment::open(storage, &seg_ref.name).and_then(|seg| seg.verify_all()) {
            problem(&mut v, e, seg_ref.name.clone(), false, false)?;
        }
    }

    let log_path = storage.root().to_path_buf();
    let scanned = wal::scan(storage, manifest.log_gen.max(1), |frame| replay_frame(&mut tables, frame, &log_path));
    let scanned = match scanned {
        Ok(scanned) => scanned,
        Err(e) => {
            let file = name_of(&e, "the log");
            problem(&mut v, e, file, true, false)?;
            return Ok((v, None));
        }
    };
    v.last_serial = tables.last;
    v.log_frames = scanned.files.iter().map(|f| f.frames).sum();
    if let Some(FileEnd::Torn { at, why }) = scanned.files.last().map(|f| &f.end) {
        if scanned.damage.is_none() {
            v.torn_tail = Some((wal::log_name(scanned.files[scanned.files.len() - 1].gen), *at, why.clone()));
        }
    }
    let damage = match scanned.damage {
        Some(damage) => {
            let file = wal::log_name(damage.gen);
            let frames = scanned.files.last().map_or(0, |f| f.frames);
            let at = LogDamage { gen: damage.gen, offset: damage.offset, frames };
            problem(&mut v, damage.error, file, true, true)?;
            Some(at)
        }
        None => None,
    };
    Ok((v, damage))
}

/// [`Index::verify`](super::Index::verify) on any storage.
pub fn verify(storage: &dyn Storage) -> Result<Verification> {
    verify_storage(storage, false).map(|(v, _)| v)
}

/// [`Index::repair`](super::Index::repair) on any storage.
///
/// One damaged log file at a time: the file is cut right before the damage
/// (a whole copy first goes to `lost+found/`), or moved there whole when no
/// good frame precedes the damage; then the log is read again. A later file
/// whose frames carry on from the kept prefix is kept; one that no longer
/// does is damage in its turn. Each round shortens the log, so this ends.
pub fn repair(storage: Arc<dyn Storage>) -> Result<Repair> {
    // Before the lock, whose file an open creates: a directory that is not
    // an index must stay as it is.
    if !holds_index(storage.as_ref())? {
        return Err(Error::NoIndex { path: storage.root().to_path_buf() });
    }
    let _lock = storage.try_lock()?.ok_or_else(|| Error::Locked { path: storage.root().to_path_buf() })?;
    let storage = storage.as_ref();
    let (before, mut damage) = verify_storage(storage, true)?;
    let unrepaired: Vec<Problem> = before.problems.iter().filter(|p| !p.repairable).cloned().collect();
    let mut after = before;
    let (mut moved, mut cut) = (Vec::new(), Vec::new());
    while let Some(LogDamage { gen, offset, frames }) = damage {
        let name = wal::log_name(gen);
        if frames == 0 {
            let there = storage.set_aside(&name, false)?;
            moved.push((name, there));
        } else {
            // Every frame before `offset` is good: keep them, and a whole
            // copy of the file, durable before the cut.
            let len = storage.file_len(&name)?;
            let copy = storage.set_aside(&name, true)?;
            let file = storage.open(&name)?;
            file.set_len(offset)?;
            file.sync()?;
            cut.push((name, offset, len, copy));
        }
        (after, damage) = verify_storage(storage, true)?;
    }
    Ok(Repair { moved, cut, unrepaired, after })
}
