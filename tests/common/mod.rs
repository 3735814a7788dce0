//! A scripted workload on the simulated storage, with a model of what every
//! prefix of it holds: the crash and I/O-error tests run it, break the
//! storage somewhere, and check that reopening recovers one of the model's
//! states.

#![allow(dead_code)] // each test binary uses its own part of it

use std::sync::Arc;

use pushdex::storage::SimStorage;
use pushdex::{Entry, EnumerationMode, Error, Index, Options};

pub mod model;

pub use model::{Contents, Model};
use model::{Doc, Edit, Held, Op};

/// One step of the script.
#[derive(Clone, Debug)]
pub enum Step {
    Add(String, String),
    AddAll(Vec<(String, String)>),
    /// A new stamp for a document the model holds.
    Update(String, String),
    Delete(String),
    DeleteRootPath(String, bool),
    DeletePrefix(String),
    SetCheckpoint(String, String),
    DeleteCheckpoint(String),
    Sync,
    Refresh,
    Compact,
    /// `close()`, then open again on the same storage.
    CloseAndReopen,
}

impl Step {
    /// The operation of a step that writes: documents get the stamp, and a
    /// text part made of it.
    pub fn op(&self) -> Option<Op> {
        Some(match self {
            Step::Add(uri, stamp) => Op::Add(uri.clone(), doc(stamp)),
            Step::AddAll(docs) => Op::AddAll(docs.iter().map(|(uri, stamp)| (uri.clone(), doc(stamp))).collect()),
            Step::Update(uri, stamp) => {
                Op::Update(uri.clone(), Edit { stamp: Some(stamp.clone()), changes: Vec::new() })
            }
            Step::Delete(uri) => Op::Delete(uri.clone()),
            Step::DeleteRootPath(root, recursive) => Op::DeleteRootPath(root.clone(), *recursive),
            Step::DeletePrefix(prefix) => Op::DeletePrefix(prefix.clone()),
            Step::SetCheckpoint(name, value) => Op::SetCheckpoint(name.clone(), value.clone()),
            Step::DeleteCheckpoint(name) => Op::DeleteCheckpoint(name.clone()),
            Step::Sync | Step::Refresh | Step::Compact | Step::CloseAndReopen => return None,
        })
    }

    /// Whether the engine must accept the step (an update needs its document).
    pub fn accepted_by(&self, model: &Model) -> bool {
        self.op().is_none_or(|op| model.refusal(&op).is_none())
    }

    /// Applies a step the engine accepted to the model.
    pub fn apply(&self, model: &mut Model) {
        if let Some(op) = self.op() {
            model.apply(&op).unwrap_or_else(|refused| panic!("{self:?} is refused: {refused:?}"));
        }
    }
}

fn doc(stamp: &str) -> Doc {
    Doc::new(stamp).text("t", text_of(stamp))
}

pub fn text_of(stamp: &str) -> String {
    format!("the body of version {stamp}")
}

/// xorshift64*.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn uri(rng: &mut Rng) -> String {
    let folder = ["a", "a/b", "a/b/c", "d", "d/e", "f:g"][rng.below(6) as usize];
    format!("{folder}/{}", rng.below(12))
}

/// A script of `len` steps from `seed`: every kind of operation, with syncs,
/// refreshes, a compaction and clean reopens among them. Updates name only
/// documents the script has added and not deleted (so none is refused).
/// 300 documents with a unique word each, in batches of 10, each synced,
/// with a refresh every 100 (flushes, whenever the background ones run),
/// then a deletion (so that the compaction rewrites whatever background
/// merges did), a compaction, one more document and a sync: with a 4 KiB
/// memtable (tables hold 2 KiB in memory) the compaction's terms fst, about
/// 15 bytes a word, spills to a scratch file.
#[allow(dead_code)]
pub fn spilling_script() -> Vec<Step> {
    let mut steps = Vec::new();
    for n in 0..30u64 {
        let docs = (0..10u64)
            .map(|i| {
                let word = format!("q{:016x}", (n * 10 + i).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                (format!("s/{}/{n:02}{i}", i % 3), word)
            })
            .collect();
        steps.extend([Step::AddAll(docs), if n % 10 == 9 { Step::Refresh } else { Step::Sync }]);
    }
    steps.extend([
        Step::Delete("s/0/000".into()),
        Step::Compact,
        Step::Add("s/after".into(), "after".into()),
        Step::Sync,
    ]);
    steps
}

pub fn script(seed: u64, len: usize) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let mut model = Model::default();
    let mut steps = Vec::with_capacity(len);
    for n in 0..len {
        let stamp = format!("{seed}.{n}");
        let step = match rng.below(100) {
            0..=29 => Step::Add(uri(&mut rng), stamp),
            30..=39 => {
                let k = 1 + rng.below(5) as usize;
                Step::AddAll((0..k).map(|i| (uri(&mut rng), format!("{stamp}.{i}"))).collect())
            }
            40..=47 => match model.docs.keys().nth(rng.below(model.docs.len().max(1) as u64) as usize) {
                Some(held) => Step::Update(held.clone(), stamp),
                None => Step::Add(uri(&mut rng), stamp),
            },
            48..=53 => Step::Delete(uri(&mut rng)),
            54..=57 => {
                let root = ["a", "a/b", "d", "", "/", "f:g"][rng.below(6) as usize];
                Step::DeleteRootPath(root.to_string(), rng.below(2) == 0)
            }
            58..=61 => Step::DeletePrefix(["a/b", "d/", "f", "a/1", "d/e/1"][rng.below(5) as usize].to_string()),
            62..=69 => Step::SetCheckpoint(format!("c{}", rng.below(3)), stamp),
            70..=71 => Step::DeleteCheckpoint(format!("c{}", rng.below(3))),
            72..=84 => Step::Sync,
            85..=93 => Step::Refresh,
            94..=95 => Step::Compact,
            _ => Step::CloseAndReopen,
        };
        step.apply(&mut model);
        steps.push(step);
    }
    steps
}

pub fn open(storage: &SimStorage, options: &Options) -> pushdex::Result<Index> {
    Index::open_with_storage(Arc::new(storage.clone()), options.clone())
}

/// Runs one step; `Ok(true)` if the engine accepted an operation the model
/// must apply.
pub fn run_step(index: &mut Index, storage: &SimStorage, options: &Options, step: &Step) -> pushdex::Result<bool> {
    if let Some(op) = step.op() {
        return op.run(index).map(|_| true);
    }
    match step {
        Step::Sync => index.sync().map(|_| false),
        Step::Refresh => index.refresh().map(|_| false),
        Step::Compact => index.compact().map(|_| false),
        _ => {
            index.clone().close()?;
            *index = open(storage, options)?;
            Ok(false)
        }
    }
}

/// Everything the index holds, as the model's contents (checkpoints but
/// the reserved ones).
pub fn read_state(index: &Index) -> pushdex::Result<Contents> {
    let mut state = Contents::default();
    for entry in index.enumerate("", EnumerationMode::RecursiveDocuments)? {
        let Entry::Document(status) = entry? else { panic!("a folder in a documents enumeration") };
        let doc = index.get(&status.uri)?.expect("an enumerated document can be read");
        assert_eq!(doc.stamp(), status.stamp, "get and enumerate agree on {}", status.uri);
        state.docs.insert(status.uri, Held { serial: status.serial.0, doc: Doc::read(&doc) });
    }
    for checkpoint in index.checkpoints()? {
        state.checkpoints.insert(checkpoint.name, (checkpoint.value, checkpoint.serial.0));
    }
    Ok(state)
}

/// Opens `storage` (as a new process would after a crash) and checks that it
/// holds exactly the model's state after some serial j with `synced <= j`,
/// that reads agree, and that serials continue from j + 1. Returns j.
pub fn check_recovered(storage: &SimStorage, options: &Options, model: &Model, synced: u64, what: &str) -> u64 {
    let index = match open(storage, options) {
        Ok(index) => index,
        Err(e) => panic!("{what}: reopen failed: {e}"),
    };
    let j = index.watermarks().last.0;
    let mut want = model.clone();
    want.reopened(&index.watermarks(), synced).unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = read_state(&index).unwrap_or_else(|e| panic!("{what}: reading the recovered index: {e}"));
    assert_eq!(got, want.contents(), "{what}: the recovered index is not the state after serial {j}");
    let next = doc("").document("after/crash");
    let next = index.add(next).unwrap_or_else(|e| panic!("{what}: add after reopen: {e}"));
    assert_eq!(next.0, j + 1, "{what}: serials continue");
    index.close().unwrap_or_else(|e| panic!("{what}: close after reopen: {e}"));
    j
}

/// Whether `e` is what a crashed or failing storage makes the engine say.
pub fn is_storage_error(e: &Error) -> bool {
    matches!(e, Error::Io(_) | Error::Poisoned { .. } | Error::Closed)
}
