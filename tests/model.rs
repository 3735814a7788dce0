//! The index against the shared `BTreeMap` model (`tests/common/model.rs`): long random sequences of every
//! operation, including sync, refresh and reopen, compared after every step
//! (statuses, serials, watermarks, checkpoints, and enumerate / count in all
//! four modes under random roots).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::model::{Doc, Edit, Model, Op};
use proptest::prelude::*;
use pushdex::{Index, Options};

/// A write, or what moves the watermarks.
#[derive(Debug, Clone)]
enum Step {
    Write(Op),
    Sync,
    Refresh,
    Reopen,
    DropAndReopen,
}

const CHECKPOINTS: [&str; 3] = ["c1", "c2", "pushdex.job"];

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
    proptest::sample::select(&CHECKPOINTS[..]).prop_map(str::to_string)
}

fn step() -> impl Strategy<Value = Step> {
    // Documents with a stamp, no metas, no parts.
    let doc = || (uri(), stamp()).prop_map(|(u, s)| (u, Doc::new(s)));
    prop_oneof![
        20 => doc().prop_map(|(u, d)| Step::Write(Op::Add(u, d))),
        6 => proptest::collection::vec(doc(), 1..6).prop_map(|b| Step::Write(Op::AddAll(b))),
        4 => (uri(), stamp()).prop_map(|(u, s)| Step::Write(Op::Update(u, Edit { stamp: Some(s), changes: Vec::new() }))),
        6 => uri().prop_map(|u| Step::Write(Op::Delete(u))),
        4 => (root(), any::<bool>()).prop_map(|(r, rec)| Step::Write(Op::DeleteRootPath(r, rec))),
        3 => uri().prop_map(|p| Step::Write(Op::DeletePrefix(p))),
        3 => (checkpoint_name(), "[0-9]{1,2}").prop_map(|(n, v)| Step::Write(Op::SetCheckpoint(n, v))),
        1 => checkpoint_name().prop_map(|n| Step::Write(Op::DeleteCheckpoint(n))),
        1 => Just(Step::Write(Op::ClearCheckpoints)),
        3 => Just(Step::Sync),
        2 => Just(Step::Refresh),
        1 => Just(Step::Reopen),
        1 => Just(Step::DropAndReopen),
    ]
}

fn open(dir: &Path, options: &Options) -> Index {
    Index::open_with(dir, options.clone()).expect("reopen")
}

fn run(steps: Vec<Step>, roots: Vec<String>, options: Options) -> Result<(), TestCaseError> {
    let fail = |e: common::model::Mismatch| TestCaseError::fail(e.to_string());
    let dir = tempfile::tempdir().unwrap();
    let mut index = Some(open(dir.path(), &options));
    let mut model = Model::default();
    let mut probe: BTreeSet<String> = BTreeSet::new();
    let mut roots = roots;
    roots.push(String::new());
    for step in steps {
        let ix = index.as_ref().unwrap();
        match step {
            Step::Write(op) => {
                model.write(ix, &op).map_err(fail)?;
                probe.extend(op.uris().into_iter().map(str::to_string));
                if let Op::DeleteRootPath(r, _) = op {
                    roots.push(r);
                }
            }
            Step::Sync => {
                model.barrier(ix, false).map_err(fail)?;
            }
            Step::Refresh => {
                model.barrier(ix, true).map_err(fail)?;
            }
            // What reopen makes Searchable is the engine's business; it is
            // never more than what is there, never less than before.
            Step::Reopen | Step::DropAndReopen => {
                let old = index.take().unwrap();
                if matches!(step, Step::Reopen) {
                    old.close().unwrap();
                } else {
                    drop(old);
                }
                let ix = index.insert(open(dir.path(), &options));
                model.reopened(&ix.watermarks(), model.last).map_err(TestCaseError::fail)?;
            }
        }
        let roots = &roots[roots.len().saturating_sub(4)..];
        model.check(index.as_ref().unwrap(), &probe, roots, &CHECKPOINTS).map_err(fail)?;
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
    fn engine_matches_model(steps in proptest::collection::vec(step(), 200..260), roots in proptest::collection::vec(root(), 3)) {
        run(steps, roots, Options::default())?;
    }

    /// The smallest memtable: every few operations cross a flush.
    #[test]
    fn engine_matches_model_with_tiny_memtable(steps in proptest::collection::vec(step(), 200..260), roots in proptest::collection::vec(root(), 3)) {
        run(steps, roots, Options::default().memtable_bytes(4096))?;
    }
}
