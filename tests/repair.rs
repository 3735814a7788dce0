//! Damage in the middle of synced log frames is refused (`Corrupt`), never
//! skipped; `Index::verify` says where, and `Index::repair` (`pushdex
//! repair`) brings the index back to the longest valid prefix, moving what
//! it drops into `lost+found/` and deleting nothing. A crash at any write of
//! a repair leaves a directory that a second repair (or open) finishes.
//! (The same from the command line is in `tests/cli_safety.rs`: a test that
//! spawns processes does not run beside tests that close and reopen an
//! index, since a child forked at that moment holds the directory lock
//! until it execs.)

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

mod frame_like;

use frame_like::{held, options};
use pushdex::storage::{SimStorage, Storage};
use pushdex::wal::{log_name, parse_log_name, FILE_HEADER_BYTES, FRAME_HEADER_BYTES};
use pushdex::{Document, Error, Index};

/// Writes `batches` synced batches of 5 documents, one frame each, into the
/// index open on `storage`; returns what the index held after each batch.
fn write_batches(index: &Index, from: usize, batches: usize) -> Vec<BTreeMap<String, String>> {
    (from..from + batches)
        .map(|b| {
            index.add_all((0..5).map(|i| Document::new(format!("b{b:02}/{i}")).with_stamp(format!("s{b}")))).unwrap();
            index.sync().unwrap();
            held(index)
        })
        .collect()
}

/// The offsets where each frame of a version 2 log file starts.
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut at = FILE_HEADER_BYTES;
    let mut starts = Vec::new();
    while at < bytes.len() {
        starts.push(at);
        at += FRAME_HEADER_BYTES + u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
    }
    starts
}

fn logs(dir: &Path) -> Vec<String> {
    let mut gens: Vec<u64> =
        fs::read_dir(dir).unwrap().filter_map(|e| parse_log_name(e.unwrap().file_name().to_str()?)).collect();
    gens.sort_unstable();
    gens.into_iter().map(log_name).collect()
}

#[test]
fn damage_in_the_middle_is_corrupt_and_repair_keeps_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    // Two opens, two log files: wal-1 with batches 0..6, the next with 6..9.
    let index = Index::open_with(dir.path(), options()).unwrap();
    let mut states = write_batches(&index, 0, 6);
    drop(index);
    let index = Index::open_with(dir.path(), options()).unwrap();
    states.extend(write_batches(&index, 6, 3));
    drop(index);
    let names = logs(dir.path());
    assert_eq!(names.len(), 2, "{names:?}");
    let first = dir.path().join(&names[0]);
    let second = dir.path().join(&names[1]);
    let original_second = fs::read(&second).unwrap();

    // One flipped byte in the payload of the third frame of wal-1.
    let mut bytes = fs::read(&first).unwrap();
    let starts = frame_starts(&bytes);
    assert_eq!(starts.len(), 6);
    bytes[starts[2] + FRAME_HEADER_BYTES + 3] ^= 0x20;
    fs::write(&first, &bytes).unwrap();

    match Index::open(dir.path()) {
        Err(Error::Corrupt { path, detail }) => {
            assert_eq!(path, first);
            assert!(detail.contains(&format!("bad frame at offset {}", starts[2])), "{detail}");
        }
        other => panic!("a damaged synced frame did not give Corrupt: {other:?}"),
    }
    assert_eq!(fs::read(&first).unwrap(), bytes, "a refused open changed the log");

    let v = Index::verify(dir.path()).unwrap();
    assert!(!v.opens);
    assert_eq!(v.problems.len(), 1, "{v:?}");
    assert_eq!((v.problems[0].file.as_str(), v.problems[0].repairable), (names[0].as_str(), true));
    assert_eq!(v.last_serial, 10, "two batches of five before the damage");

    let r = Index::repair(dir.path()).unwrap();
    assert!(r.unrepaired.is_empty(), "{r:?}");
    assert_eq!(r.cut, [(names[0].clone(), starts[2] as u64, bytes.len() as u64, format!("lost+found/{}", names[0]))]);
    assert_eq!(r.moved, [(names[1].clone(), format!("lost+found/{}", names[1]))]);
    assert!(r.after.opens && r.after.problems.is_empty(), "{:?}", r.after);
    // Nothing deleted: the whole damaged file and the later one are kept.
    let lost = dir.path().join("lost+found");
    assert_eq!(fs::read(lost.join(&names[0])).unwrap(), bytes);
    assert_eq!(fs::read(lost.join(&names[1])).unwrap(), original_second);

    let index = Index::open(dir.path()).unwrap();
    assert_eq!(held(&index), states[1], "the prefix before the damaged frame");
    assert_eq!(index.watermarks().last.0, 10);
    // It goes on from there, and survives a reopen.
    let serial = index.add(Document::new("after/repair")).unwrap();
    assert_eq!(serial.0, 11);
    index.close().unwrap();
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(held(&index).len(), 11);
    drop(index);

    // A second repair has nothing to do and moves nothing more.
    let again = Index::repair(dir.path()).unwrap();
    assert!(!again.changed(), "{again:?}");
    assert_eq!(fs::read_dir(&lost).unwrap().count(), 2);
}

#[test]
fn repair_refuses_an_open_index_and_a_directory_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    assert!(matches!(Index::repair(dir.path()), Err(Error::Locked { .. })));
    let v = Index::verify(dir.path()).unwrap();
    assert!(v.in_use && v.opens, "{v:?}");
    drop(index);
    assert!(!Index::verify(dir.path()).unwrap().in_use);
    let missing = dir.path().join("missing");
    assert!(matches!(Index::verify(&missing), Err(Error::NoIndex { .. })));
    assert!(matches!(Index::repair(&missing), Err(Error::NoIndex { .. })));
    assert!(!missing.exists(), "verify or repair created a directory");
    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join("notes.txt"), "hello").unwrap();
    // A MANIFEST among other files is not an index either (Python packages
    // have one): an index always has its LOCK.
    fs::write(other.path().join("MANIFEST"), "include *.py").unwrap();
    assert!(matches!(Index::verify(other.path()), Err(Error::NoIndex { .. })));
    assert!(matches!(Index::repair(other.path()), Err(Error::NoIndex { .. })));
    assert!(matches!(Index::open_existing(other.path()), Err(Error::NoIndex { .. })));
    let names: Vec<_> = fs::read_dir(other.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "verify, repair or open_existing wrote into a foreign directory: {names:?}");
}

#[test]
fn a_later_log_file_that_carries_on_from_the_kept_prefix_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), options()).unwrap();
    let mut states = write_batches(&index, 0, 3);
    drop(index);
    let index = Index::open_with(dir.path(), options()).unwrap();
    states.extend(write_batches(&index, 3, 2));
    drop(index);
    let names = logs(dir.path());
    let first = dir.path().join(&names[0]);
    // Bytes after the last frame of an older file (never a torn tail
    // there): damage, but every frame survives it.
    let whole = fs::read(&first).unwrap();
    let mut damaged = whole.clone();
    damaged.extend_from_slice(b"stray bytes");
    fs::write(&first, &damaged).unwrap();
    assert!(matches!(Index::open(dir.path()), Err(Error::Corrupt { .. })));
    let r = Index::repair(dir.path()).unwrap();
    assert_eq!(
        r.cut,
        [(names[0].clone(), whole.len() as u64, damaged.len() as u64, format!("lost+found/{}", names[0]))]
    );
    assert!(r.moved.is_empty(), "the second file carries on from the first: {r:?}");
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(&held(&index), states.last().unwrap());
}

#[test]
fn damage_to_a_segment_is_reported_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    index.add_all((0..200).map(|i| Document::new(format!("s/{i:03}")).with_text("body", "some words"))).unwrap();
    index.close().unwrap();
    let segment = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("seg-"))
        .unwrap();
    let path = dir.path().join(&segment);
    let mut bytes = fs::read(&path).unwrap();
    bytes[10] ^= 0x01; // the bodies section: checked on first read
    fs::write(&path, &bytes).unwrap();

    let v = Index::verify(dir.path()).unwrap();
    assert!(v.opens, "block damage does not stop open: {v:?}");
    assert_eq!(v.problems.len(), 1, "{v:?}");
    let p = &v.problems[0];
    assert_eq!((p.file.as_str(), p.blocks_open, p.repairable), (segment.as_str(), false, false), "{p:?}");
    let r = Index::repair(dir.path()).unwrap();
    assert!(!r.changed());
    assert_eq!(r.unrepaired, v.problems);
    assert_eq!(fs::read(&path).unwrap(), bytes, "repair changed a segment");
}

/// Every file of a simulated storage, with its bytes.
fn sim_files(storage: &SimStorage) -> BTreeMap<String, Vec<u8>> {
    storage.list().unwrap().into_iter().map(|n| (n.clone(), storage.read(&n).unwrap())).collect()
}

#[test]
fn a_crash_at_any_write_of_a_repair_is_finished_by_the_next_one() {
    // The damaged directory: two log files, a flipped byte in the first.
    let base = SimStorage::new("/idx");
    let index = Index::open_with_storage(Arc::new(base.clone()), options()).unwrap();
    let mut states = write_batches(&index, 0, 4);
    drop(index);
    let index = Index::open_with_storage(Arc::new(base.clone()), options()).unwrap();
    states.extend(write_batches(&index, 4, 2));
    drop(index);
    let mut damaged = sim_files(&base);
    let first =
        damaged.keys().filter(|n| parse_log_name(n).is_some()).min_by_key(|n| parse_log_name(n)).unwrap().clone();
    let bytes = damaged.get_mut(&first).unwrap();
    let starts = frame_starts(bytes);
    bytes[starts[1] + FRAME_HEADER_BYTES + 1] ^= 0x04;
    let fresh = || {
        let storage = SimStorage::new("/idx");
        for (name, bytes) in &damaged {
            storage.write(name, bytes);
        }
        storage
    };

    // Count the writes of a whole repair.
    let whole = fresh();
    pushdex::Index::repair_storage(Arc::new(whole.clone())).unwrap();
    let writes = whole.writes();
    assert!(writes >= 3, "{writes} writes");
    for k in 0..writes {
        for torn in [None, Some(k + 1)] {
            let storage = fresh();
            storage.crash_after(k);
            assert!(pushdex::Index::repair_storage(Arc::new(storage.clone())).is_err(), "k = {k}");
            let after = storage.recover(torn);
            // What the crash left either opens (the cut happened) or is
            // refused as before; a second repair always finishes the job.
            let r = pushdex::Index::repair_storage(Arc::new(after.clone())).unwrap();
            assert!(r.after.opens, "k = {k}, torn {torn:?}: {r:?}");
            let index = Index::open_with_storage(Arc::new(after.clone()), options()).unwrap();
            assert_eq!(held(&index), states[0], "k = {k}, torn {torn:?}");
            drop(index);
            // The damaged file is in lost+found whole, once or more.
            assert_eq!(after.aside(&first).as_deref(), Some(&damaged[&first][..]), "k = {k}, torn {torn:?}");
        }
    }
}
