//! `ops`: operation sequences against a `BTreeMap` model, with crashes.
//!
//! The input is read with `arbitrary` as a list of [`Op`]s (at most
//! [`MAX_OPS`]) over tiny alphabets of URIs, names and values, run against
//! an [`Index`] on a [`SimStorage`] with a 4 KiB memtable (so flushes,
//! merges and log rotations happen every few operations, on the background
//! threads), and compared with the model after every operation.
//!
//! Crashes: [`Op::Crash`] crashes the storage now, [`Op::CrashAfter`] at a
//! later write (the background threads may hit it); the index is then
//! dropped and reopened on what a new process would find
//! (`SimStorage::recover`, torn or not). [`Op::FailOp`] and
//! [`Op::FailSyncs`] inject I/O errors; an operation may then fail with
//! `Io` (and changes nothing), and the next reopen is judged like a crash.
//!
//! Properties (API.md, "Serials", "States", "Deletion", "Enumeration",
//! "Checkpoints"):
//! * with no fault armed, every operation succeeds (or is refused exactly
//!   when the API says: `update` of an absent URI, an empty batch, an empty
//!   prefix, an update that changes nothing) and returns the next serial;
//!   a refused or failed operation changes nothing;
//! * every read matches the model: statuses (serial, stamp, state from the
//!   watermarks), documents, enumerate / enumerate_synced / count in all
//!   four modes under several roots, checkpoints;
//! * `searchable <= synced <= last`; `sync` and `refresh` move them to
//!   `last`; `searchable` moves only by `refresh` (and at reopen);
//! * after a crash (or a failure), the reopened index holds exactly the
//!   model's state after some serial `j` with `synced at the crash <= j <=
//!   last`, never inside a batch; `synced == last == j`; serials go on from
//!   `j + 1`; after a clean close or drop, `j == last`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use pushdex::storage::{SimStorage, Storage};
use pushdex::{Document, Entry, EnumerationMode, Error, Index, Options, Serial, Update, Watermarks};

use crate::common::{error_kind, ROOT};

/// `assert!` for a comparison that may be run again: returns the mismatch.
macro_rules! ensure {
    ($cond:expr, $($what:tt)+) => {
        if !$cond {
            return Err(Mismatch::Wrong(format!($($what)+)));
        }
    };
}

/// `assert_eq!` for a comparison that may be run again.
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($what:tt)+) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err(Mismatch::Wrong(format!("{}: got {got:?}, want {want:?}", format!($($what)+))));
        }
    }};
}

/// Operations per input.
pub const MAX_OPS: usize = 48;

const MODES: [EnumerationMode; 4] = [
    EnumerationMode::RecursiveDocuments,
    EnumerationMode::NotRecursiveDocuments,
    EnumerationMode::NotRecursiveFolders,
    EnumerationMode::NotRecursiveAll,
];

/// A URI over `a`, `b` and `/`: folders, empty folder names (`a//b`) and
/// leading slashes all happen.
#[derive(Debug, Clone)]
pub struct Uri(pub String);

impl<'a> Arbitrary<'a> for Uri {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Uri> {
        let len = u.int_in_range(1..=5)?;
        let mut s = String::new();
        for _ in 0..len {
            s.push(*u.choose(&['a', 'b', '/', 'a'])?);
        }
        Ok(Uri(s))
    }
}

/// A root: `""`, a URI, or a URI with a trailing `/`.
#[derive(Debug, Clone)]
pub struct Root(pub String);

impl<'a> Arbitrary<'a> for Root {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Root> {
        Ok(Root(match u.int_in_range(0..=5)? {
            0 => String::new(),
            1 => format!("{}/", Uri::arbitrary(u)?.0),
            _ => Uri::arbitrary(u)?.0,
        }))
    }
}

/// One of a few names: metas `a`/`b`, parts `p`/`q`, checkpoints.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Name {
    /// First.
    One,
    /// Second.
    Two,
}

const METAS: [&str; 2] = ["a", "b"];
const PARTS: [&str; 2] = ["p", "q"];
const CHECKPOINTS: [&str; 3] = ["c1", "c2", "pushdex.job"];

impl Name {
    fn meta(self) -> &'static str {
        METAS[self as usize]
    }
    fn part(self) -> &'static str {
        PARTS[self as usize]
    }
}

/// A checkpoint name: two ordinary ones and a reserved one.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Checkpoint {
    /// `c1`.
    C1,
    /// `c2`.
    C2,
    /// `pushdex.job`: refused (reserved for pushdex's own layers).
    Reserved,
}

impl Checkpoint {
    fn name(self) -> &'static str {
        CHECKPOINTS[self as usize]
    }
}

/// A part: `len` (modulo 1 KiB) bytes of `fill`, text or binary.
#[derive(Debug, Clone, Arbitrary)]
pub struct PartSpec {
    name: Name,
    text: bool,
    fill: u8,
    len: u16,
}

impl PartSpec {
    fn bytes(&self) -> Vec<u8> {
        // Text parts stay ASCII so that they are UTF-8.
        let fill = if self.text { b'a' + self.fill % 26 } else { self.fill };
        vec![fill; usize::from(self.len % 1024)]
    }
}

/// A document to add.
#[derive(Debug, Clone, Arbitrary)]
pub struct DocSpec {
    uri: Uri,
    stamp: Option<u8>,
    metas: Vec<(Name, u8)>,
    parts: Vec<PartSpec>,
}

/// One change of an update.
#[derive(Debug, Clone, Arbitrary)]
pub enum Change {
    /// Replace every value of a meta (none: remove it).
    Meta(Name, Vec<u8>),
    /// Add or replace a part.
    Part(PartSpec),
    /// Remove a part.
    RemovePart(Name),
}

/// One step of a sequence.
#[derive(Debug, Clone)]
pub enum Op {
    /// `add`.
    Add(DocSpec),
    /// `add_all` (up to 6 documents; none is refused).
    AddAll(Vec<DocSpec>),
    /// `update` with a stamp and changes (neither is refused).
    Update(Uri, Option<u8>, Vec<Change>),
    /// `delete`.
    Delete(Uri),
    /// `delete_root_path`.
    DeleteRootPath(Root, bool),
    /// `delete_with_prefix` (an empty root is the refused empty prefix).
    DeleteWithPrefix(Root),
    /// `set_checkpoint`.
    SetCheckpoint(Checkpoint, u8),
    /// `delete_checkpoint`.
    DeleteCheckpoint(Checkpoint),
    /// `clear_checkpoints`.
    ClearCheckpoints,
    /// `sync`.
    Sync,
    /// `refresh`.
    Refresh,
    /// `compact`.
    Compact,
    /// Crash now; reopen on the durable state, torn by `torn` if given.
    Crash {
        /// Seed of the torn crash.
        torn: Option<u64>,
    },
    /// Crash at the `writes % 32`-th write operation from now.
    CrashAfter {
        /// Write operations that still happen.
        writes: u8,
    },
    /// Fail the `after % 16`-th storage operation from now with EIO or ENOSPC.
    FailOp {
        /// Operations that still succeed.
        after: u8,
        /// ENOSPC rather than EIO.
        enospc: bool,
    },
    /// Fail every fsync from the `after % 16`-th operation on.
    FailSyncs {
        /// Operations before the first failing fsync.
        after: u8,
    },
    /// `close`, then open again.
    CloseReopen,
    /// Drop the last handle, then open again.
    DropReopen,
}

impl<'a> Arbitrary<'a> for Op {
    /// Writes are frequent, crashes and faults rarer: one byte picks the
    /// operation by weight.
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Op> {
        Ok(match u8::arbitrary(u)? {
            0..=69 => Op::Add(u.arbitrary()?),
            70..=89 => Op::AddAll(u.arbitrary()?),
            90..=109 => Op::Update(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?),
            110..=129 => Op::Delete(u.arbitrary()?),
            130..=141 => Op::DeleteRootPath(u.arbitrary()?, u.arbitrary()?),
            142..=151 => Op::DeleteWithPrefix(u.arbitrary()?),
            152..=163 => Op::SetCheckpoint(u.arbitrary()?, u.arbitrary()?),
            164..=167 => Op::DeleteCheckpoint(u.arbitrary()?),
            168..=169 => Op::ClearCheckpoints,
            170..=183 => Op::Sync,
            184..=193 => Op::Refresh,
            194..=199 => Op::Compact,
            200..=211 => Op::Crash { torn: u.arbitrary()? },
            212..=219 => Op::CrashAfter { writes: u.arbitrary()? },
            220..=229 => Op::FailOp { after: u.arbitrary()?, enospc: u.arbitrary()? },
            230..=235 => Op::FailSyncs { after: u.arbitrary()? },
            236..=247 => Op::CloseReopen,
            _ => Op::DropReopen,
        })
    }
}

/// A document in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MDoc {
    serial: u64,
    stamp: String,
    metas: Vec<(String, String)>,
    parts: Vec<(String, bool, Vec<u8>)>,
}

impl MDoc {
    fn set_part(&mut self, name: &str, text: bool, bytes: Vec<u8>) {
        match self.parts.iter_mut().find(|p| p.0 == name) {
            Some(p) => *p = (name.to_string(), text, bytes),
            None => self.parts.push((name.to_string(), text, bytes)),
        }
    }
}

/// What the index holds after some serial.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    docs: BTreeMap<String, MDoc>,
    checkpoints: BTreeMap<String, (String, u64)>,
}

impl State {
    /// API.md's definitions, written out as plainly as possible.
    fn enumerate(&self, root: &str, mode: EnumerationMode, synced: Option<u64>) -> Vec<String> {
        let prefix = if root.is_empty() || root.ends_with('/') { root.to_string() } else { format!("{root}/") };
        let mut out = BTreeSet::new();
        for (uri, doc) in &self.docs {
            if !uri.starts_with(&prefix) || synced.is_some_and(|s| doc.serial > s) {
                continue;
            }
            let rest = &uri[prefix.len()..];
            match rest.find('/') {
                None if mode != EnumerationMode::NotRecursiveFolders => {
                    out.insert(uri.clone());
                }
                Some(_) if mode == EnumerationMode::RecursiveDocuments => {
                    out.insert(uri.clone());
                }
                Some(i) if mode == EnumerationMode::NotRecursiveFolders || mode == EnumerationMode::NotRecursiveAll => {
                    out.insert(format!("{prefix}{}", &rest[..=i]));
                }
                _ => {}
            }
        }
        out.into_iter().collect()
    }
}

/// The model: the current state, and the state after every serial that
/// ends an operation (a batch's inner serials are no recovery point).
#[derive(Debug)]
struct Model {
    state: State,
    last: u64,
    /// The synced watermark is at least this.
    synced: u64,
    searchable: u64,
    /// `history[j]`: the state after serial `j`, if `j` ends an operation.
    history: Vec<Option<State>>,
}

fn doc_of(spec: &DocSpec, serial: u64) -> (Document, MDoc) {
    let stamp = spec.stamp.map(|s| format!("s{}", s % 4)).unwrap_or_default();
    let mut doc = Document::new(spec.uri.0.as_str()).with_stamp(stamp.as_str());
    let mut m = MDoc { serial, stamp, metas: Vec::new(), parts: Vec::new() };
    for (name, value) in spec.metas.iter().take(3) {
        doc = doc.with_meta(name.meta(), value.to_string());
        m.metas.push((name.meta().to_string(), value.to_string()));
    }
    for part in spec.parts.iter().take(2) {
        let bytes = part.bytes();
        doc = if part.text {
            doc.with_text(part.name.part(), String::from_utf8(bytes.clone()).expect("ASCII"))
        } else {
            doc.with_part(part.name.part(), bytes.clone())
        };
        m.set_part(part.name.part(), part.text, bytes);
    }
    (doc, m)
}

fn open(storage: &SimStorage) -> pushdex::Result<Index> {
    Index::open_with_storage(Arc::new(storage.clone()), Options::default().memtable_bytes(4096))
}

/// The harness: the index under test, its storage, and the model.
struct Run {
    storage: SimStorage,
    index: Option<Index>,
    model: Model,
    /// A fault is armed or has fired: operations may fail with `Io`, and
    /// the next reopen is judged like a crash.
    faulty: bool,
    /// Roots to enumerate under.
    roots: BTreeSet<String>,
    /// Every URI ever used: absent ones must read as absent.
    probes: BTreeSet<String>,
}

impl Run {
    fn index(&self) -> &Index {
        self.index.as_ref().expect("an open index")
    }

    /// Applies the outcome of a write of `n` serials: on success the model
    /// moves on through `apply` (called once per serial); on failure nothing
    /// changes, and the failure must be allowed.
    fn written(&mut self, result: pushdex::Result<Serial>, n: u64, mut apply: impl FnMut(&mut State, u64, usize)) {
        match result {
            Ok(serial) => {
                let first = self.model.last + 1;
                assert_eq!(serial, Serial(self.model.last + n), "the serial of a write");
                for i in 0..n {
                    apply(&mut self.model.state, first + i, i as usize);
                    let end = i + 1 == n;
                    self.model.history.push(end.then(|| self.model.state.clone()));
                }
                self.model.last += n;
            }
            Err(e) => self.failed(&e),
        }
    }

    /// A call failed: only allowed once a fault is armed, and then only
    /// with an I/O error, or the writer that one stopped.
    fn failed(&self, e: &Error) {
        assert!(self.faulty && matches!(error_kind(e), "Io" | "Poisoned"), "an operation failed: {e:?}");
    }

    /// A refused call: the error the API names (or, once a fault is armed,
    /// the I/O error of a poisoned log, which may be checked first).
    fn refused(&self, result: pushdex::Result<Serial>, kind: &str) {
        match result {
            Ok(s) => panic!("a call the API refuses returned {s}"),
            Err(e) if self.faulty && matches!(error_kind(&e), "Io" | "Poisoned") => {}
            Err(e) => assert_eq!(error_kind(&e), kind, "{e:?}"),
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Crash { torn } => {
                self.storage.crash();
                self.recover(*torn);
            }
            Op::CloseReopen => self.reopen(true),
            Op::DropReopen => self.reopen(false),
            _ => {
                // A clone: dropping the last handle is an operation of its own.
                let ix = self.index().clone();
                self.call(&ix, op);
            }
        }
        self.check();
    }

    fn call(&mut self, ix: &Index, op: &Op) {
        match op {
            Op::Add(spec) => {
                let (doc, m) = doc_of(spec, 0);
                self.probes.insert(spec.uri.0.clone());
                self.written(ix.add(doc), 1, |s, serial, _| {
                    s.docs.insert(spec.uri.0.clone(), MDoc { serial, ..m.clone() });
                });
            }
            Op::AddAll(specs) => {
                let specs = &specs[..specs.len().min(6)];
                let docs: Vec<(Document, MDoc)> = specs.iter().map(|s| doc_of(s, 0)).collect();
                let result = ix.add_all(docs.iter().map(|d| d.0.clone()));
                if specs.is_empty() {
                    return self.refused(result, "InvalidInput");
                }
                self.probes.extend(specs.iter().map(|s| s.uri.0.clone()));
                self.written(result, specs.len() as u64, |s, serial, i| {
                    s.docs.insert(specs[i].uri.0.clone(), MDoc { serial, ..docs[i].1.clone() });
                });
            }
            Op::Update(uri, stamp, changes) => {
                let changes = &changes[..changes.len().min(3)];
                let stamp = stamp.map(|s| format!("s{}", s % 4));
                let mut update = Update::new();
                if let Some(stamp) = &stamp {
                    update = update.stamp(stamp.as_str());
                }
                for change in changes {
                    update = match change {
                        Change::Meta(name, values) => {
                            update.meta(name.meta(), values.iter().take(2).map(|v| v.to_string()))
                        }
                        Change::Part(p) if p.text => {
                            update.text(p.name.part(), String::from_utf8(p.bytes()).expect("ASCII"))
                        }
                        Change::Part(p) => update.part(p.name.part(), p.bytes()),
                        Change::RemovePart(name) => update.remove_part(name.part()),
                    };
                }
                self.probes.insert(uri.0.clone());
                let result = ix.update(&uri.0, update);
                if stamp.is_none() && changes.is_empty() {
                    return self.refused(result, "InvalidInput");
                }
                if !self.model.state.docs.contains_key(&uri.0) {
                    return self.refused(result, "NotFound");
                }
                self.written(result, 1, |s, serial, _| {
                    let doc = s.docs.get_mut(&uri.0).expect("present");
                    doc.serial = serial;
                    if let Some(stamp) = &stamp {
                        doc.stamp.clone_from(stamp);
                    }
                    for change in changes {
                        match change {
                            Change::Meta(name, values) => {
                                doc.metas.retain(|(n, _)| n != name.meta());
                                let values = values.iter().take(2);
                                doc.metas.extend(values.map(|v| (name.meta().to_string(), v.to_string())));
                            }
                            Change::Part(p) => doc.set_part(p.name.part(), p.text, p.bytes()),
                            Change::RemovePart(name) => doc.parts.retain(|p| p.0 != name.part()),
                        }
                    }
                });
            }
            Op::Delete(uri) => {
                self.probes.insert(uri.0.clone());
                self.written(ix.delete(&uri.0), 1, |s, _, _| {
                    s.docs.remove(&uri.0);
                });
            }
            Op::DeleteRootPath(root, recursive) => {
                self.roots.insert(root.0.clone());
                let mode = if *recursive {
                    EnumerationMode::RecursiveDocuments
                } else {
                    EnumerationMode::NotRecursiveDocuments
                };
                self.written(ix.delete_root_path(&root.0, *recursive), 1, |s, _, _| {
                    for gone in s.enumerate(&root.0, mode, None) {
                        s.docs.remove(&gone);
                    }
                });
            }
            Op::DeleteWithPrefix(prefix) => {
                let result = ix.delete_with_prefix(&prefix.0);
                if prefix.0.is_empty() {
                    return self.refused(result, "InvalidInput");
                }
                self.written(result, 1, |s, _, _| s.docs.retain(|u, _| !u.starts_with(&prefix.0)));
            }
            // pushdex's own names are refused.
            Op::SetCheckpoint(Checkpoint::Reserved, value) => {
                return self
                    .refused(ix.set_checkpoint(Checkpoint::Reserved.name(), &value.to_string()), "InvalidInput");
            }
            Op::DeleteCheckpoint(Checkpoint::Reserved) => {
                return self.refused(ix.delete_checkpoint(Checkpoint::Reserved.name()), "InvalidInput");
            }
            Op::SetCheckpoint(name, value) => {
                self.written(ix.set_checkpoint(name.name(), &value.to_string()), 1, |s, serial, _| {
                    s.checkpoints.insert(name.name().to_string(), (value.to_string(), serial));
                });
            }
            Op::DeleteCheckpoint(name) => {
                self.written(ix.delete_checkpoint(name.name()), 1, |s, _, _| {
                    s.checkpoints.remove(name.name());
                });
            }
            Op::ClearCheckpoints => {
                self.written(ix.clear_checkpoints(), 1, |s, _, _| {
                    s.checkpoints.retain(|n, _| n.starts_with("pushdex."));
                });
            }
            Op::Sync => match ix.sync() {
                Ok(synced) => {
                    assert_eq!(synced, Serial(self.model.last), "sync returns the synced watermark");
                    self.model.synced = self.model.last;
                }
                Err(e) => self.failed(&e),
            },
            Op::Refresh => match ix.refresh() {
                Ok(searchable) => {
                    assert_eq!(searchable, Serial(self.model.last), "refresh returns the searchable watermark");
                    self.model.synced = self.model.last;
                    self.model.searchable = self.model.last;
                }
                Err(e) => self.failed(&e),
            },
            Op::Compact => {
                if let Err(e) = ix.compact() {
                    self.failed(&e);
                }
            }
            Op::CrashAfter { writes } => {
                self.storage.crash_after(self.storage.writes() + u64::from(writes % 32));
                self.faulty = true;
            }
            Op::FailOp { after, enospc } => {
                self.storage.fail_op(self.storage.ops() + 1 + u64::from(after % 16), if *enospc { 28 } else { 5 });
                self.faulty = true;
            }
            Op::FailSyncs { after } => {
                self.storage.fail_syncs_from(self.storage.ops() + 1 + u64::from(after % 16));
                self.faulty = true;
            }
            Op::Crash { .. } | Op::CloseReopen | Op::DropReopen => unreachable!("handled by step"),
        }
    }

    /// The files of the storage with their lengths, for failure messages.
    fn files(&self) -> Vec<(String, usize)> {
        let mut names = self.storage.list().unwrap_or_default();
        names.sort();
        names.into_iter().map(|n| (n.clone(), self.storage.read(&n).map_or(0, |b| b.len()))).collect()
    }

    /// The synced watermark now: what a crash now must keep.
    fn synced_now(&self) -> u64 {
        self.model.synced.max(self.index().watermarks().synced.0)
    }

    /// After a crash: drop the index, reopen on what a new process finds.
    fn recover(&mut self, torn: Option<u64>) {
        let keep = self.synced_now();
        drop(self.index.take());
        self.storage = self.storage.recover(torn);
        self.reopened(keep);
    }

    /// A clean close (or drop) and reopen; judged like a crash if a fault
    /// was armed.
    fn reopen(&mut self, close: bool) {
        if self.storage.has_crashed() {
            return self.recover(Some(self.model.last));
        }
        let keep = if self.faulty { self.synced_now() } else { self.model.last };
        let index = self.index.take().expect("an open index");
        if close {
            let closed = index.close();
            if let Err(e) = &closed {
                self.failed(e);
            }
        } else {
            drop(index);
        }
        if self.storage.has_crashed() {
            self.storage = self.storage.recover(None);
        }
        // Disarm whatever did not fire: the reopen itself must succeed.
        self.storage.fail_op(0, 0);
        self.storage.fail_syncs_from(u64::MAX);
        self.storage.crash_after(u64::MAX);
        self.reopened(keep);
    }

    /// Opens the index again and checks that it holds the model's state
    /// after some serial in `keep..=last`; the model goes back there.
    fn reopened(&mut self, keep: u64) {
        let index = open(&self.storage).unwrap_or_else(|e| panic!("reopen failed: {e:?}\nfiles: {:?}", self.files()));
        let w = index.watermarks();
        let j = w.last.0;
        assert!(keep <= j && j <= self.model.last, "recovered to serial {j}, outside {keep}..={}", self.model.last);
        assert_eq!(w.synced, w.last, "a reopened index has synced everything it holds");
        let state =
            self.model.history[j as usize].clone().unwrap_or_else(|| panic!("recovered to serial {j}, inside a batch"));
        assert!(
            self.model.searchable <= w.searchable.0 && w.searchable <= w.last,
            "searchable {} after reopen, was {}",
            w.searchable,
            self.model.searchable
        );
        self.model.state = state;
        self.model.history.truncate(j as usize + 1);
        self.model.last = j;
        self.model.synced = j;
        self.model.searchable = w.searchable.0;
        self.index = Some(index);
        self.faulty = false;
    }

    /// Compares everything the index answers with the model. The
    /// background flush syncs, so `synced` may move during a comparison: a
    /// mismatch counts only if the watermarks stood still around it.
    fn check(&mut self) {
        for _ in 0..20 {
            let w = self.index().watermarks();
            let result = self.compare(&w);
            let stable = self.index().watermarks() == w;
            match result {
                Err(Mismatch::Read(e)) => return self.failed(&e),
                Ok(()) if stable => {
                    self.model.synced = w.synced.0;
                    return;
                }
                Err(Mismatch::Wrong(what)) if stable => panic!("{what}\nwatermarks {w:?}"),
                _ => {}
            }
        }
        panic!("the watermarks never stood still for a whole comparison");
    }

    /// One comparison under watermarks `w`.
    fn compare(&self, w: &Watermarks) -> Result<(), Mismatch> {
        let model = &self.model;
        ensure_eq!(w.last, Serial(model.last), "last");
        ensure!(w.synced.0 >= model.synced && w.synced <= w.last, "synced {} below {}", w.synced, model.synced);
        ensure_eq!(w.searchable, Serial(model.searchable), "searchable");
        let ix = self.index();
        self.compare_docs(ix, w)?;
        self.compare_lists(ix, w)?;
        self.compare_checkpoints(ix, w)
    }

    fn compare_docs(&self, ix: &Index, w: &Watermarks) -> Result<(), Mismatch> {
        let state = &self.model.state;
        for uri in &self.probes {
            let status = ix.status(uri)?;
            let got = ix.get(uri)?;
            let Some(m) = state.docs.get(uri) else {
                ensure!(!status.exists() && status.serial == Serial(0), "{uri:?} should be absent: {status:?}");
                ensure!(got.is_none(), "{uri:?} should be absent: {got:?}");
                continue;
            };
            ensure_eq!((status.serial, &status.stamp), (Serial(m.serial), &m.stamp), "status of {uri:?}");
            ensure_eq!(status.state, w.state_of(Serial(m.serial)), "state of {uri:?}");
            let Some(doc) = got else { return Err(Mismatch::Wrong(format!("{uri:?} is missing"))) };
            ensure_eq!((doc.uri(), doc.stamp()), (uri.as_str(), m.stamp.as_str()), "document {uri:?}");
            for name in METAS {
                let want: Vec<&str> = m.metas.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
                ensure_eq!(doc.metas(name), want, "meta {name} of {uri:?}");
            }
            ensure_eq!(doc.all_metas().count(), m.metas.len(), "metas of {uri:?}");
            for name in PARTS {
                let want = m.parts.iter().find(|p| p.0 == name);
                ensure_eq!(doc.part(name), want.map(|p| p.2.as_slice()), "part {name} of {uri:?}");
                ensure_eq!(doc.text(name).is_some(), want.is_some_and(|p| p.1), "text part {name} of {uri:?}");
            }
            ensure_eq!(doc.parts().count(), m.parts.len(), "parts of {uri:?}");
        }
        Ok(())
    }

    fn compare_lists(&self, ix: &Index, w: &Watermarks) -> Result<(), Mismatch> {
        let state = &self.model.state;
        let fixed = ["", "/", "a", "a/", "b", "a/a", "a//"];
        let roots = fixed.iter().map(|r| r.to_string()).chain(self.roots.iter().take(6).cloned());
        for root in roots {
            for mode in MODES {
                for synced in [false, true] {
                    let entries = if synced { ix.enumerate_synced(&root, mode)? } else { ix.enumerate(&root, mode)? };
                    let got = entries.collect::<pushdex::Result<Vec<Entry>>>()?;
                    let keys: Vec<&str> = got.iter().map(Entry::key).collect();
                    let want = state.enumerate(&root, mode, synced.then_some(w.synced.0));
                    ensure_eq!(keys, want, "enumerate (synced only: {synced}) {root:?} {mode:?}");
                    for entry in &got {
                        if let Entry::Document(st) = entry {
                            let m = &state.docs[&st.uri];
                            ensure_eq!((st.serial, &st.stamp), (Serial(m.serial), &m.stamp), "listed {:?}", st.uri);
                            ensure_eq!(st.state, w.state_of(st.serial), "listed state of {:?}", st.uri);
                        }
                    }
                }
                let count = ix.count(&root, mode)?;
                ensure_eq!(count, state.enumerate(&root, mode, None).len() as u64, "count {root:?} {mode:?}");
            }
        }
        Ok(())
    }

    fn compare_checkpoints(&self, ix: &Index, w: &Watermarks) -> Result<(), Mismatch> {
        let state = &self.model.state;
        let got: Vec<(String, String, Serial)> =
            ix.checkpoints()?.into_iter().map(|c| (c.name, c.value, c.serial)).collect();
        let want: Vec<(String, String, Serial)> = state
            .checkpoints
            .iter()
            .filter(|(n, _)| !n.starts_with("pushdex."))
            .map(|(n, (v, s))| (n.clone(), v.clone(), Serial(*s)))
            .collect();
        ensure_eq!(got, want, "checkpoints");
        for name in CHECKPOINTS {
            let got = ix.checkpoint(name)?;
            let want = state.checkpoints.get(name);
            ensure_eq!(got.as_ref().map(|c| (&c.value, c.serial)), want.map(|(v, s)| (v, Serial(*s))), "{name}");
            if let Some(c) = got {
                ensure_eq!(c.state, w.state_of(c.serial), "state of checkpoint {name}");
            }
        }
        Ok(())
    }
}

/// Why a comparison stopped.
enum Mismatch {
    /// A read failed.
    Read(Error),
    /// An answer differs from the model.
    Wrong(String),
}

impl From<Error> for Mismatch {
    fn from(e: Error) -> Mismatch {
        Mismatch::Read(e)
    }
}

/// Reads the operations of one input.
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS && !u.is_empty() {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// The fuzz target: see the module documentation.
pub fn ops(data: &[u8]) {
    run(&decode(data));
}

/// Runs a sequence of operations and checks it against the model; at the
/// end, a close and reopen must keep everything (unless a fault is armed).
pub fn run(ops: &[Op]) {
    let storage = SimStorage::new(ROOT);
    let index = open(&storage).expect("open a new index");
    let model =
        Model { state: State::default(), last: 0, synced: 0, searchable: 0, history: vec![Some(State::default())] };
    let mut run =
        Run { storage, index: Some(index), model, faulty: false, roots: BTreeSet::new(), probes: BTreeSet::new() };
    for op in ops {
        run.step(op);
    }
    run.reopen(true);
    run.check();
    run.index.take().expect("an open index").close().expect("close");
}
