//! Enumeration: folder rules at their edges, the synced view of folders, and
//! streaming under concurrent writes (each entry at most once, in order).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pushdex::{Document, Entry, EnumerationMode, Index};

use EnumerationMode::*;

fn keys(index: &Index, root: &str, mode: EnumerationMode) -> Vec<String> {
    index.enumerate(root, mode).unwrap().map(|e| e.unwrap().key().to_string()).collect()
}

fn synced_keys(index: &Index, root: &str, mode: EnumerationMode) -> Vec<String> {
    index.enumerate_synced(root, mode).unwrap().map(|e| e.unwrap().key().to_string()).collect()
}

#[test]
fn folder_rules_at_the_edges() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    for u in ["a/b", "a/b/", "a/b/c", "a/b//d", "a/bc", "/", "/x", "//y", "a"] {
        index.add(Document::new(u)).unwrap();
    }
    // The document named like the root is not under it; "a/b/" is (its rest
    // after the prefix "a/b/" is empty, so it is a direct child).
    assert_eq!(keys(&index, "a/b", RecursiveDocuments), ["a/b/", "a/b//d", "a/b/c"]);
    assert_eq!(keys(&index, "a/b", NotRecursiveDocuments), ["a/b/", "a/b/c"]);
    assert_eq!(keys(&index, "a/b", NotRecursiveFolders), ["a/b//"]);
    assert_eq!(keys(&index, "a/b/", NotRecursiveAll), ["a/b/", "a/b//", "a/b/c"]);
    // Root "" is everything; root "/" is the folder of URIs starting with "/".
    assert_eq!(keys(&index, "", NotRecursiveAll), ["/", "a", "a/"]);
    assert_eq!(keys(&index, "/", NotRecursiveAll), ["/", "//", "/x"]);
    assert_eq!(keys(&index, "//", RecursiveDocuments), ["//y"]);
    assert_eq!(index.count("", RecursiveDocuments).unwrap(), 9);
    assert_eq!(index.count("a", NotRecursiveAll).unwrap(), 3); // document a/b, folder a/b/, document a/bc

    index.delete_root_path("a/b", false).unwrap();
    assert_eq!(keys(&index, "a", RecursiveDocuments), ["a/b", "a/b//d", "a/bc"]);
    index.delete_root_path("a/b", true).unwrap();
    assert_eq!(keys(&index, "a", RecursiveDocuments), ["a/b", "a/bc"]);
    index.delete_root_path("/", true).unwrap();
    assert_eq!(keys(&index, "", RecursiveDocuments), ["a", "a/b", "a/bc"]);
}

#[test]
fn the_synced_view_lists_folders_holding_a_synced_document() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    index.add(Document::new("r/f/2")).unwrap();
    index.add(Document::new("r/g/1")).unwrap();
    index.sync().unwrap();
    // Newer, unsynced documents: "r/f/1" sorts before the synced "r/f/2".
    index.add(Document::new("r/f/1")).unwrap();
    index.add(Document::new("r/h/1")).unwrap();
    index.add(Document::new("r/top")).unwrap();
    assert_eq!(keys(&index, "r", NotRecursiveAll), ["r/f/", "r/g/", "r/h/", "r/top"]);
    assert_eq!(synced_keys(&index, "r", NotRecursiveAll), ["r/f/", "r/g/"]);
    assert_eq!(synced_keys(&index, "r", NotRecursiveFolders), ["r/f/", "r/g/"]);
    assert_eq!(synced_keys(&index, "r", RecursiveDocuments), ["r/f/2", "r/g/1"]);
    assert_eq!(synced_keys(&index, "r", NotRecursiveDocuments), Vec::<String>::new());
    // Re-adding a synced document makes it Pushed: it leaves the synced view.
    index.add(Document::new("r/g/1")).unwrap();
    assert_eq!(synced_keys(&index, "r", NotRecursiveFolders), ["r/f/"]);
    index.sync().unwrap();
    assert_eq!(synced_keys(&index, "r", NotRecursiveAll), keys(&index, "r", NotRecursiveAll));
}

#[test]
fn enumeration_streams_across_chunks_under_concurrent_writes() {
    const N: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    // Stable documents (never touched again) and a churned set beside them.
    index.add_all((0..N).map(|i| Document::new(format!("s/{i:06}")))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let index = index.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                index.add(Document::new(format!("s/{:06}x", (i * 7919) % N))).unwrap();
                if i.is_multiple_of(3) {
                    index.delete(&format!("s/{:06}x", (i * 104_729) % N)).unwrap();
                }
                if i.is_multiple_of(1000) {
                    // The first 1000 stable documents come and go.
                    index.delete_with_prefix("s/000").unwrap();
                    index.add_all((0..1000).map(|k| Document::new(format!("s/000{k:03}")))).unwrap();
                }
                i += 1;
            }
        })
    };
    for _ in 0..5 {
        // Moved to another thread: the iterator owns what it needs.
        let it = index.enumerate("s", RecursiveDocuments).unwrap();
        let seen: Vec<String> =
            std::thread::spawn(move || it.map(|e| e.unwrap().key().to_string()).collect()).join().unwrap();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, each at most once");
        let seen: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
        // Documents the writer never touches are always seen.
        for i in 1000..N {
            assert!(seen.contains(format!("s/{i:06}").as_str()), "s/{i:06} missing");
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn folder_enumeration_skips_large_folders_cheaply() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    for f in 0..50 {
        index.add_all((0..1000).map(|i| Document::new(format!("big/f{f:02}/{i}")))).unwrap();
    }
    index.add(Document::new("big/top")).unwrap();
    let all: Vec<Entry> = index.enumerate("big", NotRecursiveAll).unwrap().map(Result::unwrap).collect();
    assert_eq!(all.len(), 51);
    assert!(matches!(&all[50], Entry::Document(s) if s.uri == "big/top"));
    assert_eq!(index.count("big", NotRecursiveFolders).unwrap(), 50);
    assert_eq!(index.count("big", NotRecursiveDocuments).unwrap(), 1);
    assert_eq!(index.count("big", RecursiveDocuments).unwrap(), 50_001);
}
