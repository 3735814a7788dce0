//! The log's background writeback: a bulk push without `sync` reaches the
//! disk in the background (so the next `sync` has little left to wait on),
//! yet nothing becomes Synced but through `sync`, `refresh`, `close` or a
//! flush (API.md); and a failed background fdatasync stops the writer as a
//! failed `sync` does.
//!
//! The writeback runs on its own thread: each test waits for it in a loop
//! bounded in time, and asserts nothing about how long it took.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::open;
use pushdex::storage::SimStorage;
use pushdex::{Document, EnumerationMode, Error, Index, Options, Serial, State};

/// Long enough for a thread that a 2-core machine also runs the tests on.
const PATIENCE: Duration = Duration::from_secs(60);

/// One batch of 1,000 documents of about 600 bytes each: about 0.6 MiB of
/// log.
fn batch(b: u32) -> impl Iterator<Item = Document> {
    (0..1000).map(move |i| Document::new(format!("doc/{b:03}/{i:04}")).with_stamp("s").with_text("t", "x".repeat(600)))
}

/// No flush during the pushes: the memtable holds them all.
fn options() -> Options {
    Options::default().memtable_bytes(1 << 30)
}

/// Documents that a process started on `storage`'s durable state now would
/// find.
fn durable_documents(storage: &SimStorage) -> u64 {
    let recovered = Index::open_with_storage(Arc::new(storage.recover(None)), options()).unwrap();
    recovered.count("", EnumerationMode::RecursiveDocuments).unwrap()
}

#[test]
fn a_bulk_push_without_sync_reaches_the_disk_in_the_background_and_stays_pushed() {
    let storage = SimStorage::new("/sim");
    let index = open(&storage, &options()).unwrap();
    let mut last = Serial(0);
    // About 14 MiB of log, past the writeback's 8 MiB.
    for b in 0..24 {
        last = index.add_all(batch(b)).unwrap();
    }
    let deadline = Instant::now() + PATIENCE;
    let durable = loop {
        let durable = durable_documents(&storage);
        if durable > 0 {
            break durable;
        }
        assert!(Instant::now() < deadline, "the writeback never made any of the log durable");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(durable <= 24_000 && durable.is_multiple_of(1000), "whole batches: {durable}");
    // Without the writeback nothing would be: no flush, no sync ran.
    // Durable on disk, yet not Synced: only sync() says so.
    assert_eq!(index.watermarks().synced, Serial(0));
    assert_eq!(index.state_of(last), State::Pushed);
    assert_eq!(index.sync().unwrap(), last);
    assert_eq!(index.state_of(last), State::Synced);
    assert_eq!(durable_documents(&storage), 24_000);
}

#[test]
fn a_failed_background_writeback_stops_the_writer() {
    let storage = SimStorage::new("/sim");
    let index = open(&storage, &options()).unwrap();
    index.add(Document::new("before").with_stamp("s")).unwrap();
    index.sync().unwrap();
    // Every fsync fails from now on; nothing but the writeback fsyncs.
    storage.fail_syncs_from(storage.ops() + 1);
    // Past 8 MiB of log (a push may already be refused: the writeback runs
    // beside the pushes), then single documents until one is refused.
    let deadline = Instant::now() + PATIENCE;
    let mut b = 0;
    let refused = loop {
        let pushed = if b < 24 { index.add_all(batch(b)) } else { index.add(Document::new("probe").with_stamp("s")) };
        b += 1;
        match pushed {
            Err(e) => break e,
            Ok(_) if b >= 24 => {
                assert!(Instant::now() < deadline, "the failed writeback never stopped the writer");
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(_) => {}
        }
    };
    assert!(matches!(refused, Error::Poisoned { .. }), "{refused:?}");
    assert!(storage.fired().iter().any(|f| f.starts_with("sync wal-")), "{:?}", storage.fired());
    assert!(index.sync().is_err(), "no sync reports the log durable after a failed fsync");
    assert!(!index.health().takes_writes());
    // What was Synced before stays.
    assert_eq!(durable_documents(&storage), 1);
}
