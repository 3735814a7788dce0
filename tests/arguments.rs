//! API.md's "Arguments" table, row by row: each bad argument gets its typed
//! error, takes no serial and changes nothing; each size up to the "always
//! accepted" column is accepted. And after `close()`, every call of every
//! other clone is `Error::Closed`.

use pushdex::{Document, EnumerationMode, Error, Index, Serial, Update, MAX_URI_BYTES};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn open() -> (tempfile::TempDir, Index) {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    index.add(Document::new("existing").with_stamp("s")).unwrap();
    index.set_checkpoint("cp", "v").unwrap();
    (dir, index)
}

/// Runs a call that must be refused and checks that nothing changed.
fn refused<T: std::fmt::Debug>(index: &Index, call: pushdex::Result<T>) -> Error {
    let before = Serial(2);
    let err = call.expect_err("the call should have been refused");
    assert_eq!(index.watermarks().last, before, "a refused call takes no serial ({err:?})");
    assert_eq!(index.count("", EnumerationMode::RecursiveDocuments).unwrap(), 1, "{err:?} changed documents");
    assert_eq!(index.status("existing").unwrap().serial, Serial(1));
    assert_eq!(index.checkpoint("cp").unwrap().unwrap().value, "v");
    assert!(!err.to_string().is_empty());
    err
}

fn is_invalid_uri(e: &Error) -> bool {
    matches!(e, Error::InvalidUri { .. })
}

fn is_invalid_input(e: &Error) -> bool {
    matches!(e, Error::InvalidInput { .. })
}

fn bad_uris() -> Vec<String> {
    vec![String::new(), "a\0b".into(), "\0".into(), "x".repeat(MAX_URI_BYTES + 1)]
}

#[test]
fn uris() {
    let (_dir, index) = open();
    for bad in bad_uris() {
        assert!(is_invalid_uri(&refused(&index, index.add(Document::new(bad.as_str())))));
        assert!(is_invalid_uri(&refused(&index, index.add_all([Document::new("ok"), Document::new(bad.as_str())]))));
        assert!(is_invalid_uri(&refused(&index, index.update(&bad, Update::new().stamp("x")))));
        assert!(is_invalid_uri(&refused(&index, index.delete(&bad))));
        assert!(is_invalid_uri(&refused(&index, index.status(&bad))));
        assert!(is_invalid_uri(&refused(&index, index.get(&bad))));
    }
    // Multi-byte UTF-8 right up to the limit is fine.
    let long = "é".repeat(MAX_URI_BYTES / 2);
    assert_eq!(long.len(), MAX_URI_BYTES);
    index.add(Document::new(long.as_str())).unwrap();
    assert!(index.status(&long).unwrap().exists());
    index.delete(&long).unwrap();
}

#[test]
fn roots_and_prefixes() {
    let (_dir, index) = open();
    for bad in ["a\0".to_string(), "x".repeat(MAX_URI_BYTES + 1)] {
        assert!(is_invalid_uri(&refused(&index, index.enumerate(&bad, EnumerationMode::RecursiveDocuments))));
        assert!(is_invalid_uri(&refused(&index, index.enumerate_synced(&bad, EnumerationMode::NotRecursiveAll))));
        assert!(is_invalid_uri(&refused(&index, index.count(&bad, EnumerationMode::NotRecursiveFolders))));
        assert!(is_invalid_uri(&refused(&index, index.delete_root_path(&bad, true))));
        assert!(is_invalid_uri(&refused(&index, index.delete_with_prefix(&bad))));
    }
    assert!(is_invalid_input(&refused(&index, index.delete_with_prefix(""))));
    // The longest root and prefix are accepted (and delete nothing here).
    let longest = "r".repeat(MAX_URI_BYTES);
    assert_eq!(index.enumerate(&longest, EnumerationMode::NotRecursiveAll).unwrap().count(), 0);
    assert_eq!(index.count("", EnumerationMode::RecursiveDocuments).unwrap(), 1);
    index.delete_root_path(&longest, false).unwrap();
    index.delete_with_prefix(&longest).unwrap();
    assert_eq!(index.count("", EnumerationMode::RecursiveDocuments).unwrap(), 1);
}

#[test]
fn stamps_names_values_and_parts() {
    let (_dir, index) = open();
    let d = || Document::new("new");
    let bad_docs = [
        d().with_stamp("s".repeat(KIB + 1)),
        d().with_stamp("a\0b"),
        d().with_meta("", "v"),
        d().with_meta("n".repeat(256), "v"),
        d().with_meta("a\0", "v"),
        d().with_meta("n", "v".repeat(64 * KIB + 1)),
        d().with_part("", vec![1]),
        d().with_text("t".repeat(256), "x"),
        d().with_part("p\0", vec![1]),
        d().with_part("p", vec![0; 16 * MIB + 1]),
    ];
    for doc in bad_docs {
        assert!(is_invalid_input(&refused(&index, index.add(doc.clone()))));
        assert!(is_invalid_input(&refused(&index, index.add_all([d(), doc]))));
    }
    let bad_updates = [
        Update::new(),
        Update::new().stamp("s".repeat(KIB + 1)),
        Update::new().meta("", ["v"]),
        Update::new().meta("n", ["v".repeat(64 * KIB + 1)]),
        Update::new().part("n".repeat(256), vec![1]),
        Update::new().text("p", "x".repeat(16 * MIB + 1)),
        Update::new().remove_part(""),
    ];
    for update in bad_updates {
        assert!(is_invalid_input(&refused(&index, index.update("existing", update))));
    }
    // Everything at its limit is accepted.
    let biggest = d()
        .with_stamp("s".repeat(KIB))
        .with_meta("n".repeat(255), "v".repeat(64 * KIB))
        .with_part("p".repeat(255), vec![7; 16 * MIB]);
    index.add(biggest.clone()).unwrap();
    assert_eq!(index.get("new").unwrap().unwrap(), biggest);
    index.update("new", Update::new().stamp("t".repeat(KIB)).text("q", "x".repeat(16 * MIB))).unwrap();
    assert_eq!(index.get("new").unwrap().unwrap().part("q").map(<[u8]>::len), Some(16 * MIB));
}

#[test]
fn batches() {
    let (_dir, index) = open();
    assert!(is_invalid_input(&refused(&index, index.add_all(Vec::new()))));
    let too_many = (0..100_001).map(|i| Document::new(format!("b/{i}")));
    assert!(is_invalid_input(&refused(&index, index.add_all(too_many))));
    let too_big = (0..17).map(|i| Document::new(format!("big/{i}")).with_part("p", vec![0; 16 * MIB]));
    assert!(is_invalid_input(&refused(&index, index.add_all(too_big))));
    // The largest batches are accepted.
    let last = index.add_all((0..100_000).map(|i| Document::new(format!("b/{i}")))).unwrap();
    assert_eq!(last, Serial(2 + 100_000));
    let big = (0..15).map(|i| Document::new(format!("big/{i}")).with_part("p", vec![1; 16 * MIB]));
    index.add_all(big).unwrap();
    assert_eq!(index.count("big", EnumerationMode::RecursiveDocuments).unwrap(), 15);
}

#[test]
fn updates_need_the_document() {
    let (_dir, index) = open();
    match refused(&index, index.update("absent", Update::new().stamp("x"))) {
        Error::NotFound { uri } => assert_eq!(uri, "absent"),
        other => panic!("{other:?}"),
    }
    index.delete("existing").unwrap();
    let err = index.update("existing", Update::new().stamp("x")).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[test]
fn checkpoint_names_and_values() {
    let (_dir, index) = open();
    for bad in [String::new(), "n\0".into(), "n".repeat(256)] {
        assert!(is_invalid_input(&refused(&index, index.set_checkpoint(&bad, "v"))));
        assert!(is_invalid_input(&refused(&index, index.delete_checkpoint(&bad))));
        assert!(is_invalid_input(&refused(&index, index.checkpoint(&bad))));
    }
    assert!(is_invalid_input(&refused(&index, index.set_checkpoint("cp", &"v".repeat(64 * KIB + 1)))));
    let name = "n".repeat(255);
    index.set_checkpoint(&name, &"v".repeat(64 * KIB)).unwrap();
    assert_eq!(index.checkpoint(&name).unwrap().unwrap().value.len(), 64 * KIB);
}

#[test]
fn options() {
    let dir = tempfile::tempdir().unwrap();
    let err = Index::open_with(dir.path(), pushdex::Options::default().memtable_bytes(4095)).unwrap_err();
    assert!(is_invalid_input(&err), "{err:?}");
    Index::open_with(dir.path(), pushdex::Options::default().memtable_bytes(4096)).unwrap().close().unwrap();
}

#[test]
fn every_call_after_close_is_closed() {
    let (_dir, index) = open();
    let other = index.clone();
    let session = index.start_push_session();
    index.close().unwrap();
    let closed = |r: Result<(), Error>| assert!(matches!(r, Err(Error::Closed)), "{r:?}");
    closed(other.add(Document::new("x")).map(drop));
    closed(other.add_all([Document::new("x")]).map(drop));
    closed(other.update("existing", Update::new().stamp("x")).map(drop));
    closed(other.delete("existing").map(drop));
    closed(other.delete_root_path("", true).map(drop));
    closed(other.delete_with_prefix("e").map(drop));
    closed(other.set_checkpoint("a", "b").map(drop));
    closed(other.delete_checkpoint("a").map(drop));
    closed(other.clear_checkpoints().map(drop));
    closed(other.sync().map(drop));
    closed(other.refresh().map(drop));
    closed(other.status("existing").map(drop));
    closed(other.get("existing").map(drop));
    closed(other.enumerate("", EnumerationMode::RecursiveDocuments).map(drop));
    closed(other.enumerate_synced("", EnumerationMode::RecursiveDocuments).map(drop));
    closed(other.count("", EnumerationMode::NotRecursiveAll).map(drop));
    closed(other.checkpoint("cp").map(drop));
    closed(other.checkpoints().map(drop));
    closed(other.check_session(other.session_id()));
    closed(other.resume_push_session(other.session_id()).map(drop));
    closed(session.index().map(drop));
    closed(other.clone().close());
}
