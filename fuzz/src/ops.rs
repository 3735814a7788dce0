//! `ops`: operation sequences against a `BTreeMap` model, with crashes.
//! The model is the tests' (`tests/common/model.rs`, included by path as
//! `crate::model`); this file turns the input into its operations.
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

use std::collections::BTreeSet;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use pushdex::storage::{SimStorage, Storage};
use pushdex::{Error, Index, Options};

use crate::common::{error_kind, ROOT};
use crate::model::{self, Doc, Edit, Mismatch, Model};

/// Operations per input.
pub const MAX_OPS: usize = 48;

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

impl DocSpec {
    /// The document: a stamp `s0`..`s3` or none, at most three metas and two parts.
    fn doc(&self) -> (String, Doc) {
        let mut doc = Doc::new(self.stamp.map(|s| format!("s{}", s % 4)).unwrap_or_default());
        for (name, value) in self.metas.iter().take(3) {
            doc = doc.meta(name.meta(), value.to_string());
        }
        for part in self.parts.iter().take(2) {
            doc = if part.text {
                doc.text(part.name.part(), String::from_utf8(part.bytes()).expect("ASCII"))
            } else {
                doc.binary(part.name.part(), part.bytes())
            };
        }
        (self.uri.0.clone(), doc)
    }
}

impl Op {
    /// The write of a step that writes (up to 6 documents of a batch, 3
    /// changes of an update, 2 values of a meta).
    fn write(&self) -> Option<model::Op> {
        Some(match self {
            Op::Add(spec) => {
                let (uri, doc) = spec.doc();
                model::Op::Add(uri, doc)
            }
            Op::AddAll(specs) => model::Op::AddAll(specs.iter().take(6).map(DocSpec::doc).collect()),
            Op::Update(uri, stamp, changes) => {
                let changes = changes.iter().take(3).map(|change| match change {
                    Change::Meta(name, values) => model::Change::Meta(
                        name.meta().to_string(),
                        values.iter().take(2).map(|v| v.to_string()).collect(),
                    ),
                    Change::Part(p) if p.text => {
                        model::Change::text(p.name.part(), String::from_utf8(p.bytes()).expect("ASCII"))
                    }
                    Change::Part(p) => model::Change::binary(p.name.part(), p.bytes()),
                    Change::RemovePart(name) => model::Change::RemovePart(name.part().to_string()),
                });
                let edit = Edit { stamp: stamp.map(|s| format!("s{}", s % 4)), changes: changes.collect() };
                model::Op::Update(uri.0.clone(), edit)
            }
            Op::Delete(uri) => model::Op::Delete(uri.0.clone()),
            Op::DeleteRootPath(root, recursive) => model::Op::DeleteRootPath(root.0.clone(), *recursive),
            Op::DeleteWithPrefix(prefix) => model::Op::DeletePrefix(prefix.0.clone()),
            Op::SetCheckpoint(name, value) => model::Op::SetCheckpoint(name.name().to_string(), value.to_string()),
            Op::DeleteCheckpoint(name) => model::Op::DeleteCheckpoint(name.name().to_string()),
            Op::ClearCheckpoints => model::Op::ClearCheckpoints,
            _ => return None,
        })
    }
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

    /// A call failed: only allowed once a fault is armed, and then only
    /// with an I/O error, or the writer that one stopped.
    fn failed(&self, e: &Error) {
        assert!(self.faulty && matches!(error_kind(e), "Io" | "Poisoned"), "an operation failed: {e:?}");
    }

    /// A comparison with the model: a wrong answer fails; a failed call must
    /// be allowed (and then changed nothing).
    fn judge<T>(&self, result: Result<T, Mismatch>) {
        match result {
            Ok(_) => {}
            Err(Mismatch::Failed(e)) => self.failed(&e),
            Err(Mismatch::Wrong(what)) => panic!("{what}"),
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
        if let Some(write) = op.write() {
            // A write: the model says its serial, or how the API refuses it
            // (once a fault is armed, the I/O error of a poisoned log may
            // come first).
            self.probes.extend(write.uris().into_iter().map(str::to_string));
            if let model::Op::DeleteRootPath(root, _) = &write {
                self.roots.insert(root.clone());
            }
            let result = self.model.write(ix, &write);
            return self.judge(result);
        }
        match op {
            Op::Sync | Op::Refresh => {
                let result = self.model.barrier(ix, matches!(op, Op::Refresh));
                self.judge(result);
            }
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
            _ => unreachable!("handled by step, or a write"),
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
        self.model.reopened(&index.watermarks(), keep).unwrap_or_else(|e| panic!("{e}"));
        self.index = Some(index);
        self.faulty = false;
    }

    /// Compares everything the index answers with the model: statuses and
    /// documents of every URI used, enumerations under fixed roots and the
    /// deleted ones, checkpoints.
    fn check(&mut self) {
        let fixed = ["", "/", "a", "a/", "b", "a/a", "a//"];
        let roots: Vec<String> =
            fixed.iter().map(|r| r.to_string()).chain(self.roots.iter().take(6).cloned()).collect();
        let index = self.index.as_ref().expect("an open index");
        let result = self.model.check(index, &self.probes, &roots, &CHECKPOINTS);
        self.judge(result);
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
    let model = Model::default();
    let mut run =
        Run { storage, index: Some(index), model, faulty: false, roots: BTreeSet::new(), probes: BTreeSet::new() };
    for op in ops {
        run.step(op);
    }
    run.reopen(true);
    run.check();
    run.index.take().expect("an open index").close().expect("close");
}
