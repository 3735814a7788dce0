//! What the server reads and sets on open indexes: `Index::health` and
//! `Index::bytes_written` (its `/health/ready` and `/metrics`), and
//! `Index::set_memtable_bytes` and `Index::set_memory_budget` (its memory
//! budget shared among indexes).

mod common;

use common::open;
use pushdex::storage::SimStorage;
use pushdex::{Document, Error, Index, Options};

/// The bytes of the log files and of the manifest a new index writes at
/// creation (it records the analyzer).
fn log_bytes_on_disk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("wal-") || e.file_name() == "MANIFEST")
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn bytes_written_counts_every_byte_appended_to_the_index_s_files() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    // Creating wrote the first manifest and a new log file's header, and
    // nothing else yet.
    let opened = index.bytes_written();
    assert_eq!(opened, log_bytes_on_disk(dir.path()));
    index.add_all((0..1000).map(|i| Document::new(format!("doc/{i}")).with_text("body", "some words"))).unwrap();
    index.sync().unwrap();
    // No flush yet: the log (and that manifest) is every byte written.
    assert_eq!(index.bytes_written(), log_bytes_on_disk(dir.path()));
    assert!(index.bytes_written() > opened + 1000 * 10);
    // A refresh writes a segment and a manifest on top.
    let before = index.bytes_written();
    index.refresh().unwrap();
    assert!(index.bytes_written() > before, "a flush writes");
    assert!(index.health().takes_writes());
    assert_eq!(index.health().background_failures, 0);
}

#[test]
fn health_says_when_the_writer_stopped_and_why() {
    let storage = SimStorage::new("/sim");
    let index = open(&storage, &Options::default()).unwrap();
    index.add(Document::new("a")).unwrap();
    assert_eq!(index.health(), pushdex::Health::default());
    storage.fail_syncs_from(storage.ops() + 1);
    assert!(index.sync().is_err());
    let health = index.health();
    assert!(!health.takes_writes(), "{health:?}");
    let reason = health.writer_stopped.expect("the reason");
    match index.add(Document::new("b")) {
        Err(Error::Poisoned { reason: why }) => assert_eq!(why, reason),
        other => panic!("{other:?}"),
    }
    index.clone().close().ok();
    assert!(index.health().closed);
}

fn segments_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("seg-"))
        .count()
}

/// 1000 small documents from `from` on.
fn batch(from: usize) -> impl Iterator<Item = Document> {
    (from..from + 1000).map(|i| Document::new(format!("d/{i}")).with_text("t", "words ".repeat(20)))
}

/// Pushes batches until a segment appears (bounded): whether one did.
fn flushes_soon(index: &Index, dir: &std::path::Path) -> bool {
    for round in 1..200 {
        index.add_all(batch(round * 1000)).unwrap();
        if segments_in(dir) > 0 {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

#[test]
fn a_lowered_flush_threshold_flushes_an_open_index() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), Options::default().memtable_bytes(64 << 20)).unwrap();
    index.add_all(batch(0)).unwrap();
    index.sync().unwrap();
    assert_eq!(segments_in(dir.path()), 0, "64 MiB is far from full");
    assert!(index.set_memtable_bytes(100).is_err(), "below the minimum");
    index.set_memtable_bytes(Options::MIN_MEMTABLE_BYTES).unwrap();
    // The next writes find the memtable past the threshold and flush it.
    assert!(flushes_soon(&index, dir.path()), "no flush after the threshold was lowered");
    assert_eq!(index.count("", pushdex::EnumerationMode::RecursiveDocuments).unwrap(), index.watermarks().last.0);
}

/// A memory budget is a flush threshold of a fifth of it: checked at open
/// and when changed, and lowered on an open index like the threshold.
#[test]
fn a_memory_budget_sets_the_flush_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let too_small = Options::default().memory_budget(Options::MIN_MEMORY_BUDGET - 1);
    match Index::open_with(dir.path(), too_small.clone()) {
        Err(Error::InvalidInput { reason }) => assert!(reason.contains("memory_budget"), "{reason}"),
        other => panic!("a budget below the minimum opened: {other:?}"),
    }
    // The last of the two settings wins.
    drop(Index::open_with(dir.path(), too_small.memtable_bytes(Options::MIN_MEMTABLE_BYTES)).unwrap());
    let budget = Options::default().memtable_bytes(100).memory_budget(320 << 20);
    let index = Index::open_with(dir.path(), budget).unwrap();
    index.add_all(batch(0)).unwrap();
    index.sync().unwrap();
    assert_eq!(segments_in(dir.path()), 0, "a 64 MiB memtable is far from full");
    match index.set_memory_budget(Options::MIN_MEMORY_BUDGET - 1) {
        Err(Error::InvalidInput { reason }) => assert!(reason.contains("memory_budget"), "{reason}"),
        other => panic!("a budget below the minimum was taken: {other:?}"),
    }
    index.set_memory_budget(Options::MIN_MEMORY_BUDGET).unwrap();
    assert!(flushes_soon(&index, dir.path()), "no flush after the budget was lowered");
    assert_eq!(index.count("", pushdex::EnumerationMode::RecursiveDocuments).unwrap(), index.watermarks().last.0);
}
