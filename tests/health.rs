//! `Index::health` and `Index::bytes_written`: what the server's
//! `/health/ready` and `/metrics` report.

mod common;

use common::open;
use pushdex::storage::SimStorage;
use pushdex::{Document, Error, Index, Options};

fn log_bytes_on_disk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("wal-"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn bytes_written_counts_every_byte_appended_to_the_index_s_files() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    // Opening wrote a new log file's header, and nothing else yet.
    let opened = index.bytes_written();
    assert_eq!(opened, log_bytes_on_disk(dir.path()));
    index.add_all((0..1000).map(|i| Document::new(format!("doc/{i}")).with_text("body", "some words"))).unwrap();
    index.sync().unwrap();
    // No flush yet: the log is every byte written.
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
