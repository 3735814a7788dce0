//! One test per bug the crash, fault and model tests found, named for it.

mod common;

use common::{open, read_state, run_step, Step};
use pushdex::storage::SimStorage;
use pushdex::{Document, Error, Options};

/// Found by the crash test: after a crash, the background flush failed for
/// good, and a writer waiting for it behind a full memtable waited forever.
/// Now the flush's failure reaches the writer as an error.
#[test]
fn a_writer_behind_a_full_memtable_whose_flush_fails_gets_an_error() {
    let storage = SimStorage::new("/sim");
    let index = open(&storage, &Options::default().memtable_bytes(4096)).unwrap();
    index.add(Document::new("before")).unwrap();
    index.sync().unwrap();
    storage.crash();
    let mut refused = None;
    for i in 0..10_000 {
        if let Err(e) = index.add(Document::new(format!("doc/{i}")).with_text("t", "x".repeat(100))) {
            refused = Some(e);
            break;
        }
    }
    assert!(matches!(refused, Some(Error::Io(_) | Error::Poisoned { .. })), "{refused:?}");
}

/// Found by the fault test: a merge committed, then failed to remove the
/// files it made obsolete, and took the failure for its own: it removed its
/// output, which the new manifest named, and the next open found a segment
/// missing. Now nothing a manifest may name is removed.
#[test]
fn a_failed_cleanup_after_a_merge_commit_keeps_the_merged_segment() {
    let options = Options::default();
    let mut steps = Vec::new();
    // Three segments: below the tier a background merge would take.
    for wave in 0..3 {
        steps.push(Step::AddAll((0..20).map(|i| (format!("w{wave}/{i}"), format!("s{wave}"))).collect()));
        steps.push(Step::Delete(format!("w{wave}/3")));
        steps.push(Step::Refresh);
    }
    let prepare = |storage: &SimStorage| {
        let mut index = open(storage, &options).unwrap();
        for step in &steps {
            run_step(&mut index, storage, &options, step).unwrap();
        }
        index
    };
    // Where the compaction's operations start and end.
    let dry = SimStorage::new("/sim");
    let index = prepare(&dry);
    let (start, want) = (dry.ops(), read_state(&index).unwrap());
    index.compact().unwrap();
    let end = dry.ops();
    drop(index);

    let mut removals = 0;
    for n in start + 1..=end {
        let storage = SimStorage::new("/sim");
        let index = prepare(&storage);
        storage.fail_op(n, 5);
        let _ = index.compact();
        let fired = storage.fired();
        if !fired.iter().any(|f| f.starts_with("remove ")) {
            continue;
        }
        removals += 1;
        assert_eq!(read_state(&index).unwrap(), want, "failing {fired:?}");
        index.close().unwrap();
        let index = open(&storage, &options).unwrap_or_else(|e| panic!("failing {fired:?}: reopen: {e}"));
        assert_eq!(read_state(&index).unwrap(), want, "failing {fired:?}");
    }
    assert!(removals > 0, "the compaction removes files");
}

/// Found by the fault test: once the log's fsync had failed (here in a
/// flush, with every operation already synced), a `sync()` with nothing new
/// to make durable still reported success. A poisoned log now fails every
/// sync until reopen.
#[test]
fn a_sync_after_a_failed_log_fsync_fails_even_with_nothing_new() {
    let storage = SimStorage::new("/sim");
    let index = open(&storage, &Options::default()).unwrap();
    index.add(Document::new("a")).unwrap();
    index.sync().unwrap();
    storage.fail_syncs_from(storage.ops() + 1);
    assert!(index.refresh().is_err());
    assert!(storage.fired().iter().any(|f| f.starts_with("sync wal-")), "{:?}", storage.fired());
    let w = index.watermarks();
    assert_eq!(w.synced, w.last, "nothing new to sync");
    assert!(
        matches!(index.sync(), Err(Error::Poisoned { .. })),
        "no sync reports success after a failed fsync, and the error says why"
    );
    assert!(matches!(index.add(Document::new("b")), Err(Error::Poisoned { .. })), "the writer is poisoned");
    let health = index.health();
    assert!(!health.takes_writes() && health.writer_stopped.is_some(), "{health:?}");
    assert!(health.background_failures >= 1 && health.last_background_failure.is_some(), "{health:?}");
}

/// Found by the `ops` fuzz target: a log rotation failed half-way (its new
/// log file created, the header's fsync failed), the writer went on in the
/// old log, and a crash tore that log's tail: open refused the index with
/// `Corrupt` ("a bad frame in a log file that is not the last"), losing
/// synced documents. Now a failed rotation removes its file (or, if it
/// cannot, poisons the writer).
#[test]
fn a_failed_log_rotation_then_a_torn_crash_still_opens() {
    let mut rotations_failed = 0;
    for step in 1..=30 {
        for seed in 0..8u64 {
            let storage = SimStorage::new("/sim");
            let index = open(&storage, &Options::default()).unwrap();
            index.add(Document::new("a")).unwrap();
            index.sync().unwrap();
            storage.fail_op(storage.ops() + step, 5);
            if index.refresh().is_ok() {
                continue;
            }
            rotations_failed += u64::from(storage.fired().iter().any(|f| f.contains("wal-2.log")));
            let b = index.add(Document::new("b")).and_then(|_| index.sync());
            index.add(Document::new("c").with_text("t", "x".repeat(100))).ok();
            storage.fail_syncs_from(storage.ops() + 1);
            assert!(index.sync().is_err(), "the fsync of the tail fails");
            storage.crash();
            drop(index);
            let after = storage.recover(Some(seed));
            let index = open(&after, &Options::default())
                .unwrap_or_else(|e| panic!("failing {:?}, torn seed {seed}: {e}", storage.fired()));
            assert!(index.get("a").unwrap().is_some());
            assert_eq!(index.get("b").unwrap().is_some(), b.is_ok() || index.watermarks().last.0 >= 2);
        }
    }
    assert!(rotations_failed > 0, "some failures hit the rotation");
}

/// Found by the `log_frames` and `manifest` fuzz targets: a log file named
/// at generation u64::MAX (or a manifest naming it) overflowed the next
/// free generation: a panic in a debug build, a generation counted from 0
/// again in a release build. Now such a generation is damage.
#[test]
fn a_file_at_the_last_generation_is_corrupt_not_an_overflow() {
    let storage = SimStorage::new("/sim");
    storage.write(&pushdex::wal::log_name(u64::MAX), b"PDXWAL\r\n\x01\x00\x00\x00\x00\x00\x00\x00");
    match open(&storage, &Options::default()) {
        Err(Error::Corrupt { path, detail }) => {
            assert!(path.ends_with(pushdex::wal::log_name(u64::MAX)), "{path:?}");
            assert!(detail.contains("generation"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// A `Document` read with serde can break what the builder methods keep:
/// part names unique, text parts UTF-8. Such a document once reached the
/// segment writer, which wrote a parts table the reader refused (the index
/// then did not open). It is refused at the door now, and changes nothing.
#[test]
fn a_deserialized_document_with_repeated_or_bad_parts_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = pushdex::Index::open(dir.path()).unwrap();
    let good = pushdex::Document::new("u").with_text("body", "hello").with_part("raw", vec![1, 2]);
    let json = serde_json::to_value(&good).unwrap();
    let text = json.to_string();
    assert!(text.contains("\"body\"") && text.contains("\"raw\""), "{text}");
    // The same part name twice.
    let repeated: pushdex::Document = serde_json::from_str(&text.replace("\"raw\"", "\"body\"")).unwrap();
    match index.add(repeated.clone()) {
        Err(pushdex::Error::InvalidInput { reason }) => assert!(reason.contains("\"body\""), "{reason}"),
        other => panic!("a document with a repeated part was accepted: {other:?}"),
    }
    assert!(matches!(index.add_all([good.clone(), repeated]), Err(pushdex::Error::InvalidInput { .. })));
    // A text part whose bytes are not UTF-8 cannot be read at all: the
    // serde form holds text parts as strings.
    let mut value = json.clone();
    let parts = value.pointer_mut("/parts/0/text/value").expect("the text part's value");
    *parts = serde_json::json!([0xff, 0xfe]);
    assert!(serde_json::from_value::<pushdex::Document>(value).is_err());
    // Among many parts too.
    let many = (0..12).fold(pushdex::Document::new("m"), |d, i| d.with_part(format!("p{i:02}"), vec![i]));
    let many = serde_json::to_string(&many).unwrap().replace("\"p11\"", "\"p03\"");
    let many: pushdex::Document = serde_json::from_str(&many).unwrap();
    assert!(matches!(index.add(many), Err(pushdex::Error::InvalidInput { .. })));
    assert_eq!(index.watermarks().last, pushdex::Serial(0), "a refused document took a serial");
    index.add(good).unwrap();
    index.close().unwrap();
    pushdex::Index::open(dir.path()).unwrap();
}

/// An import killed while it created its index (after the lock file, before
/// the first manifest was renamed into place) left `LOCK` and
/// `MANIFEST.tmp`: the next import refused the directory as "other files
/// and no pushdex index" (found by the CLI's SIGKILL test once creation
/// wrote a manifest). Such leftovers are a creation to resume; they are
/// still no index to open.
#[test]
fn a_creation_killed_before_its_first_manifest_is_resumed() {
    use pushdex::{Create, Error, Index, Options};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("LOCK"), b"").unwrap();
    std::fs::write(path.join("MANIFEST.tmp"), b"PDXMAN\r\n partial").unwrap();
    assert!(matches!(Index::open_existing(&path), Err(Error::NoIndex { .. })));
    let index = Index::open_with(&path, Options::default().create(Create::IfEmpty)).unwrap();
    index.add(pushdex::Document::new("a")).unwrap();
    index.close().unwrap();
    assert!(!path.join("MANIFEST.tmp").exists());
    Index::open_existing(&path).unwrap().close().unwrap();
    // Another file still makes the directory someone else's.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("LOCK"), b"").unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    assert!(matches!(Index::open_with(&other, Options::default().create(Create::IfEmpty)), Err(Error::NoIndex { .. })));
}
