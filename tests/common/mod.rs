//! A scripted workload on the simulated storage, with a model of what every
//! prefix of it holds: the crash and I/O-error tests run it, break the
//! storage somewhere, and check that reopening recovers one of the model's
//! states.

#![allow(dead_code)] // each test binary uses its own part of it

use std::collections::BTreeMap;
use std::sync::Arc;

use pushdex::storage::SimStorage;
use pushdex::{Document, Entry, EnumerationMode, Error, Index, Options, Update};

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

/// A document as the model sees it: its stamp, and the text its body holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doc {
    pub stamp: String,
    pub text: String,
}

/// What the index holds after some prefix of the operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub docs: BTreeMap<String, Doc>,
    pub checkpoints: BTreeMap<String, String>,
}

/// The model: the current state, and the state after every serial (`None`
/// inside an `add_all`, which is recovered whole or not at all).
#[derive(Clone, Debug)]
pub struct Model {
    pub state: State,
    pub history: Vec<Option<State>>,
}

impl Default for Model {
    fn default() -> Model {
        Model { state: State::default(), history: vec![Some(State::default())] }
    }
}

impl Model {
    pub fn last(&self) -> u64 {
        self.history.len() as u64 - 1
    }

    /// Whether the engine must accept `step` (an update needs its document).
    pub fn accepts(&self, step: &Step) -> bool {
        match step {
            Step::Update(uri, _) => self.state.docs.contains_key(uri),
            _ => true,
        }
    }

    /// The model after a crash that kept operations 1..j.
    pub fn rewind(&mut self, j: u64) {
        self.history.truncate(j as usize + 1);
        self.state = self.history[j as usize].clone().expect("a recovered serial is not inside a batch");
    }

    fn push(&mut self) {
        self.history.push(Some(self.state.clone()));
    }

    /// Applies a step the engine accepted.
    pub fn apply(&mut self, step: &Step) {
        let s = &mut self.state;
        match step {
            Step::Add(uri, stamp) => {
                s.docs.insert(uri.clone(), Doc { stamp: stamp.clone(), text: text_of(stamp) });
            }
            Step::AddAll(docs) => {
                for (i, (uri, stamp)) in docs.iter().enumerate() {
                    self.state.docs.insert(uri.clone(), Doc { stamp: stamp.clone(), text: text_of(stamp) });
                    if i + 1 < docs.len() {
                        self.history.push(None);
                    }
                }
            }
            Step::Update(uri, stamp) => {
                s.docs.get_mut(uri).expect("updates only held documents").stamp = stamp.clone();
            }
            Step::Delete(uri) => {
                s.docs.remove(uri);
            }
            Step::DeleteRootPath(root, recursive) => {
                let folder = pushdex::folder_prefix(root);
                s.docs.retain(|uri, _| match uri.strip_prefix(&*folder) {
                    Some(rest) => !*recursive && rest.contains('/'),
                    None => true,
                });
            }
            Step::DeletePrefix(prefix) => s.docs.retain(|uri, _| !uri.starts_with(prefix.as_str())),
            Step::SetCheckpoint(name, value) => {
                s.checkpoints.insert(name.clone(), value.clone());
            }
            Step::DeleteCheckpoint(name) => {
                s.checkpoints.remove(name);
            }
            Step::Sync | Step::Refresh | Step::Compact | Step::CloseAndReopen => return,
        }
        self.push();
    }
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
            40..=47 => match model.state.docs.keys().nth(rng.below(model.state.docs.len().max(1) as u64) as usize) {
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
        model.apply(&step);
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
    match step {
        Step::Add(uri, stamp) => index.add(document(uri, stamp)).map(|_| true),
        Step::AddAll(docs) => index.add_all(docs.iter().map(|(uri, stamp)| document(uri, stamp))).map(|_| true),
        Step::Update(uri, stamp) => index.update(uri, Update::new().stamp(stamp.as_str())).map(|_| true),
        Step::Delete(uri) => index.delete(uri).map(|_| true),
        Step::DeleteRootPath(root, recursive) => index.delete_root_path(root, *recursive).map(|_| true),
        Step::DeletePrefix(prefix) => index.delete_with_prefix(prefix).map(|_| true),
        Step::SetCheckpoint(name, value) => index.set_checkpoint(name, value).map(|_| true),
        Step::DeleteCheckpoint(name) => index.delete_checkpoint(name).map(|_| true),
        Step::Sync => index.sync().map(|_| false),
        Step::Refresh => index.refresh().map(|_| false),
        Step::Compact => index.compact().map(|_| false),
        Step::CloseAndReopen => {
            index.clone().close()?;
            *index = open(storage, options)?;
            Ok(false)
        }
    }
}

pub fn document(uri: &str, stamp: &str) -> Document {
    Document::new(uri).with_stamp(stamp).with_text("t", text_of(stamp))
}

/// Everything the index answers, as a model state.
pub fn read_state(index: &Index) -> pushdex::Result<State> {
    let mut state = State::default();
    for entry in index.enumerate("", EnumerationMode::RecursiveDocuments)? {
        let Entry::Document(status) = entry? else { panic!("a folder in a documents enumeration") };
        let doc = index.get(&status.uri)?.expect("an enumerated document can be read");
        assert_eq!(doc.stamp(), status.stamp, "get and enumerate agree on {}", status.uri);
        let text = doc.text("t").expect("every document has its text").to_string();
        state.docs.insert(status.uri, Doc { stamp: status.stamp, text });
    }
    for checkpoint in index.checkpoints()? {
        state.checkpoints.insert(checkpoint.name, checkpoint.value);
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
    assert!(j >= synced, "{what}: recovered through serial {j}, but {synced} was reported synced");
    assert!(j <= model.last(), "{what}: recovered serial {j}, past the last operation {}", model.last());
    let Some(want) = &model.history[j as usize] else {
        panic!("{what}: recovered serial {j}, inside an add_all");
    };
    let got = read_state(&index).unwrap_or_else(|e| panic!("{what}: reading the recovered index: {e}"));
    assert_eq!(&got, want, "{what}: the recovered index is not the state after serial {j}");
    assert_eq!(index.watermarks().synced.0, j, "{what}: what open recovered is synced");
    let next = index.add(document("after/crash", "")).unwrap_or_else(|e| panic!("{what}: add after reopen: {e}"));
    assert_eq!(next.0, j + 1, "{what}: serials continue");
    index.close().unwrap_or_else(|e| panic!("{what}: close after reopen: {e}"));
    j
}

/// Whether `e` is what a crashed or failing storage makes the engine say.
pub fn is_storage_error(e: &Error) -> bool {
    matches!(e, Error::Io(_) | Error::Poisoned { .. } | Error::Closed)
}
