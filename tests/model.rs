//! The index against a `BTreeMap` model: long random sequences of every
//! operation, including sync, refresh and reopen, compared after every step
//! (statuses, serials, watermarks, checkpoints, and enumerate / count in all
//! four modes under random roots).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proptest::prelude::*;
use pushdex::{Document, Entry, EnumerationMode, Error, Index, Options, Serial, State, Update};

const MODES: [EnumerationMode; 4] = [
    EnumerationMode::RecursiveDocuments,
    EnumerationMode::NotRecursiveDocuments,
    EnumerationMode::NotRecursiveFolders,
    EnumerationMode::NotRecursiveAll,
];

#[derive(Debug, Clone)]
enum Op {
    Add(String, String),
    AddAll(Vec<(String, String)>),
    Update(String, String),
    Delete(String),
    DeleteRootPath(String, bool),
    DeletePrefix(String),
    SetCheckpoint(String, String),
    DeleteCheckpoint(String),
    ClearCheckpoints,
    Sync,
    Refresh,
    Reopen,
    DropAndReopen,
}

/// URIs over a tiny alphabet, so that shared prefixes, folders, empty folder
/// names (`a//b`) and leading slashes happen all the time.
fn uri() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![4 => Just('a'), 3 => Just('b'), 4 => Just('/'), 1 => Just(':')], 1..7)
        .prop_map(|chars| chars.into_iter().collect())
}

fn root() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), Just("/".to_string()), uri()]
}

fn stamp() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[xyz]{1,3}"]
}

fn checkpoint_name() -> impl Strategy<Value = String> {
    prop_oneof![Just("c1".to_string()), Just("c2".to_string()), Just("pushdex.job".to_string())]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (uri(), stamp()).prop_map(|(u, s)| Op::Add(u, s)),
        6 => proptest::collection::vec((uri(), stamp()), 1..6).prop_map(Op::AddAll),
        4 => (uri(), stamp()).prop_map(|(u, s)| Op::Update(u, s)),
        6 => uri().prop_map(Op::Delete),
        4 => (root(), any::<bool>()).prop_map(|(r, rec)| Op::DeleteRootPath(r, rec)),
        3 => uri().prop_map(Op::DeletePrefix),
        3 => (checkpoint_name(), "[0-9]{1,2}").prop_map(|(n, v)| Op::SetCheckpoint(n, v)),
        1 => checkpoint_name().prop_map(Op::DeleteCheckpoint),
        1 => Just(Op::ClearCheckpoints),
        3 => Just(Op::Sync),
        2 => Just(Op::Refresh),
        1 => Just(Op::Reopen),
        1 => Just(Op::DropAndReopen),
    ]
}

#[derive(Default)]
struct Model {
    docs: BTreeMap<String, (u64, String)>,
    checkpoints: BTreeMap<String, (String, u64)>,
    last: u64,
    synced: u64,
    searchable: u64,
}

impl Model {
    fn next(&mut self) -> u64 {
        self.last += 1;
        self.last
    }

    fn state(&self, serial: u64) -> State {
        if serial == 0 || serial > self.last {
            State::Initial
        } else if serial <= self.searchable {
            State::Searchable
        } else if serial <= self.synced {
            State::Synced
        } else {
            State::Pushed
        }
    }

    /// API.md's definitions, written out as plainly as possible.
    fn enumerate(&self, root: &str, mode: EnumerationMode, synced_only: bool) -> Vec<String> {
        let prefix = if root.is_empty() || root.ends_with('/') { root.to_string() } else { format!("{root}/") };
        let mut docs = BTreeSet::new();
        let mut folders = BTreeSet::new();
        for (uri, (serial, _)) in &self.docs {
            if !uri.starts_with(&prefix) || (synced_only && *serial > self.synced) {
                continue;
            }
            let rest = &uri[prefix.len()..];
            match rest.find('/') {
                None => {
                    docs.insert(uri.clone());
                }
                Some(i) => {
                    if mode == EnumerationMode::RecursiveDocuments {
                        docs.insert(uri.clone());
                    } else {
                        folders.insert(format!("{prefix}{}", &rest[..=i]));
                    }
                }
            }
        }
        let mut out: Vec<String> = match mode {
            EnumerationMode::RecursiveDocuments | EnumerationMode::NotRecursiveDocuments => docs.into_iter().collect(),
            EnumerationMode::NotRecursiveFolders => folders.into_iter().collect(),
            EnumerationMode::NotRecursiveAll => docs.into_iter().chain(folders).collect(),
        };
        out.sort();
        out
    }
}

fn open(dir: &Path, options: &Options) -> Index {
    Index::open_with(dir, options.clone()).expect("reopen")
}

/// Compares everything the index answers with the model. A full memtable
/// is flushed in the background, and a flush syncs: `synced` may move on
/// while the comparison runs. So the model takes the engine's `synced` (never
/// below its own), and a comparison that straddled a move is run again.
fn check(index: &Index, model: &mut Model, roots: &[String], probe: &[String]) -> Result<(), TestCaseError> {
    for _ in 0..10 {
        let w = index.watermarks();
        prop_assert_eq!(w.last, Serial(model.last));
        prop_assert!(w.synced.0 >= model.synced && w.synced.0 <= model.last, "synced {} < {}", w.synced, model.synced);
        prop_assert_eq!(w.searchable, Serial(model.searchable));
        model.synced = w.synced.0;
        let result = compare(index, model, roots, probe);
        if index.watermarks() == w {
            return result;
        }
    }
    prop_assert!(false, "synced never stood still for a whole comparison");
    Ok(())
}

fn compare(index: &Index, model: &Model, roots: &[String], probe: &[String]) -> Result<(), TestCaseError> {
    for uri in probe {
        let st = index.status(uri).unwrap();
        match model.docs.get(uri) {
            Some((serial, stamp)) => {
                prop_assert_eq!(st.serial, Serial(*serial), "serial of {}", uri);
                prop_assert_eq!(&st.stamp, stamp);
                prop_assert_eq!(st.state, model.state(*serial));
                prop_assert_eq!(index.get(uri).unwrap().map(|d| d.stamp().to_string()), Some(stamp.clone()));
            }
            None => {
                prop_assert_eq!(st.state, State::Initial, "{} should be absent", uri);
                prop_assert_eq!(st.serial, Serial(0));
                prop_assert!(index.get(uri).unwrap().is_none());
            }
        }
    }
    for root in roots {
        for mode in MODES {
            for synced_only in [false, true] {
                let it = if synced_only { index.enumerate_synced(root, mode) } else { index.enumerate(root, mode) };
                let got: Vec<Entry> = it.unwrap().map(|e| e.unwrap()).collect();
                let keys: Vec<String> = got.iter().map(|e| e.key().to_string()).collect();
                let want = model.enumerate(root, mode, synced_only);
                prop_assert_eq!(
                    &keys,
                    &want,
                    "enumerate{} {:?} {:?}",
                    if synced_only { "_synced" } else { "" },
                    root,
                    mode
                );
                for e in &got {
                    if let Entry::Document(st) = e {
                        let (serial, stamp) = &model.docs[&st.uri];
                        prop_assert_eq!(st.serial, Serial(*serial));
                        prop_assert_eq!(&st.stamp, stamp);
                        prop_assert_eq!(st.state, model.state(*serial));
                    }
                }
            }
            prop_assert_eq!(index.count(root, mode).unwrap(), model.enumerate(root, mode, false).len() as u64);
        }
    }
    let cps: Vec<(String, String, Serial, State)> =
        index.checkpoints().unwrap().into_iter().map(|c| (c.name, c.value, c.serial, c.state)).collect();
    let want: Vec<(String, String, Serial, State)> = model
        .checkpoints
        .iter()
        .filter(|(n, _)| !n.starts_with("pushdex."))
        .map(|(n, (v, s))| (n.clone(), v.clone(), Serial(*s), model.state(*s)))
        .collect();
    prop_assert_eq!(cps, want);
    let reserved = index.checkpoint("pushdex.job").unwrap().map(|c| (c.value, c.serial));
    prop_assert_eq!(reserved, model.checkpoints.get("pushdex.job").map(|(v, s)| (v.clone(), Serial(*s))));
    Ok(())
}

fn run(ops: Vec<Op>, roots: Vec<String>, options: Options) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut index = Some(open(dir.path(), &options));
    let mut model = Model::default();
    let mut probe: BTreeSet<String> = BTreeSet::new();
    let mut roots = roots;
    roots.push(String::new());
    for op in ops {
        let ix = index.as_ref().unwrap();
        match op.clone() {
            Op::Add(u, s) => {
                let serial = ix.add(Document::new(u.as_str()).with_stamp(s.as_str())).unwrap();
                prop_assert_eq!(serial, Serial(model.next()));
                model.docs.insert(u.clone(), (serial.0, s));
                probe.insert(u);
            }
            Op::AddAll(batch) => {
                let docs = batch.iter().map(|(u, s)| Document::new(u.as_str()).with_stamp(s.as_str()));
                let serial = ix.add_all(docs).unwrap();
                for (u, s) in batch {
                    let n = model.next();
                    model.docs.insert(u.clone(), (n, s));
                    probe.insert(u);
                }
                prop_assert_eq!(serial, Serial(model.last));
            }
            Op::Update(u, s) => {
                let result = ix.update(&u, Update::new().stamp(s.as_str()));
                if model.docs.contains_key(&u) {
                    let n = model.next();
                    prop_assert_eq!(result.unwrap(), Serial(n));
                    model.docs.insert(u.clone(), (n, s));
                } else {
                    prop_assert!(matches!(result, Err(Error::NotFound { .. })), "{:?}", result);
                }
                probe.insert(u);
            }
            Op::Delete(u) => {
                prop_assert_eq!(ix.delete(&u).unwrap(), Serial(model.next()));
                model.docs.remove(&u);
                probe.insert(u);
            }
            Op::DeleteRootPath(r, recursive) => {
                prop_assert_eq!(ix.delete_root_path(&r, recursive).unwrap(), Serial(model.next()));
                let mode = if recursive {
                    EnumerationMode::RecursiveDocuments
                } else {
                    EnumerationMode::NotRecursiveDocuments
                };
                for gone in model.enumerate(&r, mode, false) {
                    model.docs.remove(&gone);
                }
                roots.push(r);
            }
            Op::DeletePrefix(p) => {
                prop_assert_eq!(ix.delete_with_prefix(&p).unwrap(), Serial(model.next()));
                model.docs.retain(|u, _| !u.starts_with(&p));
            }
            // pushdex's own names are refused, taking no serial.
            Op::SetCheckpoint(n, v) if n.starts_with("pushdex.") => {
                let refused = matches!(ix.set_checkpoint(&n, &v), Err(Error::InvalidInput { .. }));
                prop_assert!(refused, "set_checkpoint({:?}) was not refused", n);
            }
            Op::DeleteCheckpoint(n) if n.starts_with("pushdex.") => {
                let refused = matches!(ix.delete_checkpoint(&n), Err(Error::InvalidInput { .. }));
                prop_assert!(refused, "delete_checkpoint({:?}) was not refused", n);
            }
            Op::SetCheckpoint(n, v) => {
                let s = ix.set_checkpoint(&n, &v).unwrap();
                prop_assert_eq!(s, Serial(model.next()));
                model.checkpoints.insert(n, (v, s.0));
            }
            Op::DeleteCheckpoint(n) => {
                prop_assert_eq!(ix.delete_checkpoint(&n).unwrap(), Serial(model.next()));
                model.checkpoints.remove(&n);
            }
            Op::ClearCheckpoints => {
                prop_assert_eq!(ix.clear_checkpoints().unwrap(), Serial(model.next()));
                model.checkpoints.retain(|n, _| n.starts_with("pushdex."));
            }
            Op::Sync => {
                prop_assert_eq!(ix.sync().unwrap(), Serial(model.last));
                model.synced = model.last;
            }
            Op::Refresh => {
                prop_assert_eq!(ix.refresh().unwrap(), Serial(model.last));
                model.synced = model.last;
                model.searchable = model.last;
            }
            Op::Reopen => {
                index.take().unwrap().close().unwrap();
                index = Some(open(dir.path(), &options));
                model.synced = model.last;
                let w = index.as_ref().unwrap().watermarks();
                // What reopen makes Searchable is the engine's business; it
                // is never more than what is there, never less than before.
                prop_assert!(w.searchable.0 >= model.searchable && w.searchable.0 <= model.last);
                model.searchable = w.searchable.0;
            }
            Op::DropAndReopen => {
                drop(index.take());
                index = Some(open(dir.path(), &options));
                model.synced = model.last;
                let w = index.as_ref().unwrap().watermarks();
                prop_assert!(w.searchable.0 >= model.searchable && w.searchable.0 <= model.last);
                model.searchable = w.searchable.0;
            }
        }
        let probe_list: Vec<String> = probe.iter().cloned().collect();
        check(index.as_ref().unwrap(), &mut model, &roots[roots.len().saturating_sub(4)..], &probe_list)?;
    }
    index.take().unwrap().close().unwrap();
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PUSHDEX_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    /// Default options: everything stays in the memtable between reopens.
    #[test]
    fn engine_matches_model(ops in proptest::collection::vec(op(), 200..260), roots in proptest::collection::vec(root(), 3)) {
        run(ops, roots, Options::default())?;
    }

    /// The smallest memtable: every few operations cross a flush.
    #[test]
    fn engine_matches_model_with_tiny_memtable(ops in proptest::collection::vec(op(), 200..260), roots in proptest::collection::vec(root(), 3)) {
        run(ops, roots, Options::default().memtable_bytes(4096))?;
    }
}
