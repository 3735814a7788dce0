//! `Index::enumerate_with` lends exactly what `Index::enumerate` yields (and
//! `enumerate_synced_with` what `enumerate_synced` yields): the same
//! entries in the same order, for every mode and root, over random trees
//! with deletions, spread over the memtables and several segments (a 4 KiB
//! memtable flushes all the time), across reopens, and with batches large
//! enough that the walk takes several chunks; a callback that breaks has
//! seen exactly the first entries; `count` agrees; and a callback may write
//! to the index it enumerates.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::Path;

use proptest::prelude::*;
use pushdex::{Document, Entry, EntryRef, EnumerationMode, Index, Options};

use EnumerationMode::*;

const MODES: [EnumerationMode; 4] = [RecursiveDocuments, NotRecursiveDocuments, NotRecursiveFolders, NotRecursiveAll];

#[derive(Debug, Clone)]
enum Step {
    Add(String, String),
    /// `n` documents under a folder in one batch: enough for several chunks
    /// (512 entries each) once a few land.
    Bulk(String, usize),
    Delete(String),
    DeleteRootPath(String, bool),
    DeletePrefix(String),
    Sync,
    Refresh,
    Reopen,
}

/// URIs over a tiny alphabet, so that shared prefixes, folders, empty folder
/// names (`a//b`) and leading slashes happen all the time.
fn uri() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![4 => Just('a'), 3 => Just('b'), 4 => Just('/'), 1 => Just('é')], 1..7)
        .prop_map(|chars| chars.into_iter().collect())
}

fn root() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), Just("/".to_string()), uri()]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => (uri(), "[xyz]{0,3}").prop_map(|(u, s)| Step::Add(u, s)),
        2 => (root(), 1..1500usize).prop_map(|(r, n)| Step::Bulk(r, n)),
        5 => uri().prop_map(Step::Delete),
        3 => (root(), any::<bool>()).prop_map(|(r, rec)| Step::DeleteRootPath(r, rec)),
        2 => uri().prop_map(Step::DeletePrefix),
        3 => Just(Step::Sync),
        2 => Just(Step::Refresh),
        1 => Just(Step::Reopen),
    ]
}

fn open(dir: &Path) -> Index {
    Index::open_with(dir, Options::default().memtable_bytes(4096)).unwrap()
}

fn apply(index: &mut Index, dir: &Path, step: &Step) {
    match step {
        Step::Add(uri, stamp) => {
            index.add(Document::new(uri.clone()).with_stamp(stamp.clone())).unwrap();
        }
        Step::Bulk(root, n) => {
            let folder = pushdex::folder_prefix(root).into_owned();
            // Sub-folders too, so that the non-recursive modes hop over some.
            let docs = (0..*n).map(|i| Document::new(format!("{folder}{}/{i:04}", i % 7)).with_stamp(format!("{i}")));
            index.add_all(docs).unwrap();
        }
        Step::Delete(uri) => {
            index.delete(uri).unwrap();
        }
        Step::DeleteRootPath(root, recursive) => {
            index.delete_root_path(root, *recursive).unwrap();
        }
        Step::DeletePrefix(prefix) => {
            index.delete_with_prefix(prefix).unwrap();
        }
        Step::Sync => {
            index.sync().unwrap();
        }
        Step::Refresh => {
            index.refresh().unwrap();
        }
        Step::Reopen => {
            index.clone().close().unwrap();
            *index = open(dir);
        }
    }
}

/// What the callback saw, copied out.
fn lent(index: &Index, root: &str, mode: EnumerationMode, synced: bool) -> Vec<Entry> {
    let mut seen = Vec::new();
    let f = |entry: EntryRef<'_>| {
        seen.push(entry.to_entry());
        ControlFlow::<()>::Continue(())
    };
    let walked = if synced { index.enumerate_synced_with(root, mode, f) } else { index.enumerate_with(root, mode, f) };
    assert_eq!(walked.unwrap(), ControlFlow::Continue(()));
    seen
}

fn yielded(index: &Index, root: &str, mode: EnumerationMode, synced: bool) -> Vec<Entry> {
    let it = if synced { index.enumerate_synced(root, mode) } else { index.enumerate(root, mode) };
    it.unwrap().map(Result::unwrap).collect()
}

/// Every root worth asking: everything, every folder on the way to a held
/// URI (with and without its slash), and a few that hold nothing.
fn roots(index: &Index) -> BTreeSet<String> {
    let mut roots: BTreeSet<String> = ["", "/", "a", "b/", "zz", "a/b/a"].iter().map(|r| r.to_string()).collect();
    for entry in index.enumerate("", RecursiveDocuments).unwrap() {
        let uri = entry.unwrap().key().to_string();
        for (i, _) in uri.match_indices('/') {
            roots.insert(uri[..i].to_string());
            roots.insert(uri[..=i].to_string());
        }
    }
    roots
}

/// The entries lent by a walk that breaks after `k`, and what it returned.
fn first(index: &Index, root: &str, mode: EnumerationMode, synced: bool, k: usize) -> (ControlFlow<usize>, Vec<Entry>) {
    let mut seen = Vec::new();
    let f = |entry: EntryRef<'_>| {
        seen.push(entry.to_entry());
        if seen.len() == k {
            ControlFlow::Break(k)
        } else {
            ControlFlow::Continue(())
        }
    };
    let walked = if synced { index.enumerate_synced_with(root, mode, f) } else { index.enumerate_with(root, mode, f) };
    (walked.unwrap(), seen)
}

fn check(index: &Index) -> Result<(), TestCaseError> {
    for root in roots(index) {
        for mode in MODES {
            for synced in [false, true] {
                // A flush of a full memtable syncs the log in the background,
                // so states (and the synced view) may move on between two
                // walks: compare walks made between two iterator walks that
                // agree.
                let mut tries = 0;
                let (want, got, firsts) = loop {
                    let want = yielded(index, &root, mode, synced);
                    let got = lent(index, &root, mode, synced);
                    let ks = if want.is_empty() { vec![1] } else { vec![1, want.len() / 2 + 1, want.len()] };
                    let firsts: Vec<_> = ks.into_iter().map(|k| (k, first(index, &root, mode, synced, k))).collect();
                    if yielded(index, &root, mode, synced) == want {
                        break (want, got, firsts);
                    }
                    tries += 1;
                    prop_assert!(tries < 500, "the index never settled");
                    std::thread::sleep(std::time::Duration::from_millis(2));
                };
                if got != want {
                    let at = got.iter().zip(&want).position(|(g, w)| g != w).unwrap_or(got.len().min(want.len()));
                    return Err(TestCaseError::fail(format!(
                        "root {root:?}, {mode:?}, synced {synced}: {} entries lent, {} yielded; at {at}: {:?} lent, {:?} yielded",
                        got.len(),
                        want.len(),
                        got.get(at),
                        want.get(at)
                    )));
                }
                if !synced {
                    let count = index.count(&root, mode).unwrap();
                    prop_assert_eq!(count, want.len() as u64, "count of {:?}, {:?}: {:?}", root, mode, index);
                }
                // Breaking after k entries: the callback saw the first k,
                // and the walk hands back what it broke with.
                for (k, (walked, seen)) in firsts {
                    if k <= want.len() {
                        prop_assert_eq!(walked, ControlFlow::Break(k));
                        prop_assert!(seen[..] == want[..k], "root {:?}, {:?}: the first {} differ", root, mode, k);
                    } else {
                        prop_assert_eq!(walked, ControlFlow::Continue(()));
                        prop_assert!(seen.is_empty());
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn enumerate_with_lends_what_enumerate_yields(steps in proptest::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut index = open(dir.path());
        for (i, step) in steps.iter().enumerate() {
            apply(&mut index, dir.path(), step);
            if i % 8 == 7 {
                check(&index)?;
            }
        }
        check(&index)?;
        index.close().unwrap();
    }
}

/// The callback runs with no lock held: it may read and write the index it
/// enumerates (a callback under the read lock would deadlock on `add`).
/// Whatever it adds may or may not be seen, but every entry comes once, in
/// order.
#[test]
fn the_callback_may_write_to_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    index.add_all((0..3000).map(|i| Document::new(format!("r/{i:05}")))).unwrap();
    let mut last = String::new();
    let mut n = 0;
    let walked = index.enumerate_with("r", RecursiveDocuments, |entry| {
        assert!(entry.key() > last.as_str(), "{} after {last}", entry.key());
        last = entry.key().to_string();
        n += 1;
        assert!(index.status(entry.key()).unwrap().exists());
        if n % 100 == 0 {
            // Ahead of the walk, and behind it.
            index.add(Document::new(format!("r/{:05}x", n * 2))).unwrap();
            index.add(Document::new(format!("r/{:05}y", n / 2))).unwrap();
            index.delete(&format!("r/{:05}", n + 700)).unwrap();
        }
        ControlFlow::<()>::Continue(())
    });
    assert!(walked.unwrap().is_continue());
    assert!(n >= 3000 - 30, "{n} entries");
}

/// A folder hop (non-recursive modes skip a sub-folder's keys) moves only
/// the sources behind it: a segment already past the folder keeps its
/// entry. (The first version of the borrowing cursor moved every segment
/// on, and lost `r/b` here.)
#[test]
fn a_folder_hop_keeps_what_other_segments_hold() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    for uri in ["r/b", "r/a/1", "r/c/1"] {
        index.add(Document::new(uri)).unwrap();
        index.refresh().unwrap();
    }
    index.add(Document::new("r/a/2")).unwrap();
    let want = ["r/a/", "r/b", "r/c/"];
    let keys: Vec<String> =
        index.enumerate("r", NotRecursiveAll).unwrap().map(|e| e.unwrap().key().to_string()).collect();
    assert_eq!(keys, want);
    let mut lent = Vec::new();
    let walked = index.enumerate_with("r", NotRecursiveAll, |entry| {
        lent.push(entry.key().to_string());
        ControlFlow::<()>::Continue(())
    });
    assert!(walked.unwrap().is_continue());
    assert_eq!(lent, want);
    assert_eq!(index.count("r", NotRecursiveAll).unwrap(), 3);
}
