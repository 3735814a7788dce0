//! The memtable trie against a `BTreeMap` model.
//!
//! Random sequences of every trie operation over short keys drawn from
//! `b"ab/:"`, so that shared prefixes, edge splits and merges, and folders
//! (`/`) happen all the time. After every operation the results, `len()`, the
//! full ordered iteration and the trie's structural invariants are checked.

use std::collections::BTreeMap;

use proptest::prelude::*;
use pushdex::trie::Trie;

type Model = BTreeMap<Vec<u8>, u32>;

#[derive(Clone, Debug)]
enum Op {
    Insert(Vec<u8>, u32),
    Remove(Vec<u8>),
    Get(Vec<u8>),
    GetMut(Vec<u8>, u32),
    RemovePrefix(Vec<u8>),
    /// Recursive folder removal: `remove_prefix` of the folder prefix of a root.
    RemoveRoot(Vec<u8>),
    /// Non-recursive folder removal of the folder prefix of a root.
    RemoveChildren(Vec<u8>),
    CountPrefix(Vec<u8>),
    Range(Vec<u8>, Vec<u8>),
    Clone,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::sample::select(b"ab/:".to_vec()), 0..8)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (key(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => key().prop_map(Op::Remove),
        2 => key().prop_map(Op::Get),
        1 => (key(), any::<u32>()).prop_map(|(k, v)| Op::GetMut(k, v)),
        1 => key().prop_map(Op::RemovePrefix),
        1 => key().prop_map(Op::RemoveRoot),
        2 => key().prop_map(Op::RemoveChildren),
        2 => key().prop_map(Op::CountPrefix),
        2 => (key(), key()).prop_map(|(p, s)| Op::Range(p, s)),
        1 => Just(Op::Clone),
    ]
}

/// API.md "Folders": `""` and `x/` are folder prefixes already, `a/b` means `a/b/`.
fn folder_prefix(root: &[u8]) -> Vec<u8> {
    let mut prefix = root.to_vec();
    if !prefix.is_empty() && !prefix.ends_with(b"/") {
        prefix.push(b'/');
    }
    prefix
}

fn remove_where(model: &mut Model, doomed: impl Fn(&[u8]) -> bool) -> usize {
    let before = model.len();
    model.retain(|k, _| !doomed(k));
    before - model.len()
}

fn check_same(trie: &Trie<u32>, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(trie.check_invariants(), Ok(()));
    prop_assert_eq!(trie.len(), model.len());
    prop_assert_eq!(trie.is_empty(), model.is_empty());
    let listed: Vec<(Vec<u8>, u32)> = trie.iter().map(|(k, v)| (k, *v)).collect();
    let expected: Vec<(Vec<u8>, u32)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
    prop_assert_eq!(listed, expected);
    Ok(())
}

fn apply(trie: &mut Trie<u32>, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::Insert(k, v) => prop_assert_eq!(trie.insert(k, *v), model.insert(k.clone(), *v)),
        Op::Remove(k) => prop_assert_eq!(trie.remove(k), model.remove(k)),
        Op::Get(k) => prop_assert_eq!(trie.get(k), model.get(k)),
        Op::GetMut(k, v) => {
            let got = trie.get_mut(k).map(|slot| std::mem::replace(slot, *v));
            let want = model.get_mut(k).map(|slot| std::mem::replace(slot, *v));
            prop_assert_eq!(got, want);
        }
        Op::RemovePrefix(p) => {
            let want = remove_where(model, |k| k.starts_with(p));
            prop_assert_eq!(trie.remove_prefix(p), want);
        }
        Op::RemoveRoot(root) => {
            let prefix = folder_prefix(root);
            let had_root_doc = model.contains_key(root.as_slice());
            let want = remove_where(model, |k| k.starts_with(&prefix));
            prop_assert_eq!(trie.remove_prefix(&prefix), want);
            // The document named like the root is not under it.
            if !root.is_empty() && !root.ends_with(b"/") {
                prop_assert_eq!(trie.get(root).is_some(), had_root_doc);
            }
        }
        Op::RemoveChildren(root) => {
            let folder = folder_prefix(root);
            let want = remove_where(model, |k| k.starts_with(&folder) && !k[folder.len()..].contains(&b'/'));
            prop_assert_eq!(trie.remove_children(&folder), want);
        }
        Op::CountPrefix(p) => {
            prop_assert_eq!(trie.count_prefix(p), model.keys().filter(|k| k.starts_with(p)).count());
        }
        Op::Range(prefix, start) => {
            let got: Vec<(Vec<u8>, u32)> = trie.range(prefix, start).map(|(k, v)| (k, *v)).collect();
            let want: Vec<(Vec<u8>, u32)> = model
                .range(start.clone()..)
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            prop_assert_eq!(&got, &want);
            // The lending iterator yields the same.
            let mut lent = Vec::new();
            let mut iter = trie.range(prefix, start);
            while let Some((k, v)) = iter.next_entry() {
                lent.push((k.to_vec(), *v));
            }
            prop_assert_eq!(lent, want);
        }
        Op::Clone => {
            let copy = trie.clone();
            check_same(&copy, model)?;
            // Mutating the copy leaves the original alone.
            let mut copy = copy;
            copy.remove_prefix(b"");
            prop_assert!(copy.is_empty());
        }
    }
    check_same(trie, model)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn trie_matches_btreemap(ops in proptest::collection::vec(op(), 150..=250)) {
        let mut trie = Trie::new();
        let mut model = Model::new();
        for op in &ops {
            apply(&mut trie, &mut model, op)?;
        }
    }
}
