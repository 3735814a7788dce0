//! Reopening after damage to the log: a torn tail recovers the prefix, a
//! flipped byte in the middle is `Error::Corrupt`, serials continue, and
//! what was synced before a close or a drop is there.

use std::fs;
use std::path::{Path, PathBuf};

use pushdex::{Document, EnumerationMode, Error, Index, Serial, State};

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "LOCK" {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn uris(index: &Index) -> Vec<String> {
    index.enumerate("", EnumerationMode::RecursiveDocuments).unwrap().map(|e| e.unwrap().key().to_string()).collect()
}

/// Pushes `n` documents (the last two as one batch) with a sync after each
/// operation; returns the log's length after each one.
fn write_history(dir: &Path, n: usize) -> Vec<u64> {
    let index = Index::open(dir).unwrap();
    let mut lengths = vec![fs::metadata(&log_files(dir)[0]).unwrap().len()];
    for i in 0..n - 2 {
        index.add(Document::new(format!("doc/{i}")).with_stamp(format!("s{i}")).with_text("t", "x".repeat(i))).unwrap();
        index.sync().unwrap();
        lengths.push(fs::metadata(&log_files(dir)[0]).unwrap().len());
    }
    index.add_all([Document::new(format!("doc/{}", n - 2)), Document::new(format!("doc/{}", n - 1))]).unwrap();
    index.sync().unwrap();
    lengths.push(fs::metadata(&log_files(dir)[0]).unwrap().len());
    // Dropped, not closed: close() would flush the log into a segment.
    drop(index);
    lengths
}

#[test]
fn torn_tail_recovers_the_prefix_at_every_cut() {
    let original = tempfile::tempdir().unwrap();
    let lengths = write_history(original.path(), 6);
    let ops = lengths.len() - 1; // 4 adds and one batch
                                 // Cut inside each of the last two frames, at every byte.
    for frame in ops - 1..=ops {
        for cut in lengths[frame - 1]..lengths[frame] {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(original.path(), dir.path());
            let log = log_files(dir.path()).pop().unwrap();
            fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(cut).unwrap();

            let index = Index::open(dir.path()).unwrap();
            // The operations fully before the cut: one document each.
            let want_docs = frame - 1;
            let docs = uris(&index);
            assert_eq!(docs.len(), want_docs, "cut at {cut}");
            let w = index.watermarks();
            assert_eq!(w.last, Serial(want_docs as u64), "cut at {cut}");
            assert_eq!(w.synced, w.last, "recovered operations are Synced");
            // The torn frame is gone from the file; serials continue.
            assert_eq!(fs::metadata(&log).unwrap().len(), lengths[frame - 1], "truncated to the frame boundary");
            let next = index.add(Document::new("after")).unwrap();
            assert_eq!(next, Serial(want_docs as u64 + 1));
            index.close().unwrap();
            let index = Index::open(dir.path()).unwrap();
            assert_eq!(index.status("after").unwrap().serial, next);
        }
    }
}

#[test]
fn a_batch_is_recovered_whole_or_not_at_all() {
    let original = tempfile::tempdir().unwrap();
    let lengths = write_history(original.path(), 6);
    let (start, end) = (lengths[lengths.len() - 2], lengths[lengths.len() - 1]);
    for cut in [start, start + 1, (start + end) / 2, end - 1, end] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(original.path(), dir.path());
        let log = log_files(dir.path()).pop().unwrap();
        fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(cut).unwrap();
        let index = Index::open(dir.path()).unwrap();
        let has4 = index.status("doc/4").unwrap().exists();
        let has5 = index.status("doc/5").unwrap().exists();
        assert_eq!(has4, has5, "cut at {cut}: half a batch");
        assert_eq!(has4, cut == end);
    }
}

#[test]
fn a_flipped_byte_mid_log_is_corrupt() {
    let original = tempfile::tempdir().unwrap();
    let lengths = write_history(original.path(), 8);
    // Every byte of the second frame, which has good frames after it.
    for at in lengths[1]..lengths[2] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(original.path(), dir.path());
        let log = log_files(dir.path()).pop().unwrap();
        let mut bytes = fs::read(&log).unwrap();
        bytes[at as usize] ^= 0x40;
        fs::write(&log, &bytes).unwrap();
        match Index::open(dir.path()) {
            Err(Error::Corrupt { path, detail }) => {
                assert!(path.starts_with(dir.path()), "{path:?}");
                assert!(!detail.is_empty());
            }
            other => panic!("flip at {at}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn serials_continue_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    index.add(Document::new("a")).unwrap();
    index.set_checkpoint("c", "1").unwrap();
    index.delete("a").unwrap();
    let last = index.add_all([Document::new("b"), Document::new("c")]).unwrap();
    assert_eq!(last, Serial(5));
    index.close().unwrap();
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.watermarks().last, Serial(5));
    assert_eq!(index.delete_root_path("", true).unwrap(), Serial(6));
    assert!(uris(&index).is_empty());
    drop(index);
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.add(Document::new("d")).unwrap(), Serial(7));
}

#[test]
fn synced_work_survives_close_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = Index::open(dir.path()).unwrap();
        index.add(Document::new("x/1").with_stamp("one").with_meta("m", "v").with_part("p", vec![1, 2, 3])).unwrap();
        index.set_checkpoint("crawl", "x/1").unwrap();
        index.sync().unwrap();
        index.add(Document::new("x/2")).unwrap();
        // Dropped without close: the last handle syncs on a best-effort basis.
    }
    let index = Index::open(dir.path()).unwrap();
    let d = index.get("x/1").unwrap().unwrap();
    assert_eq!((d.stamp(), d.meta("m"), d.part("p")), ("one", Some("v"), Some(&[1u8, 2, 3][..])));
    assert!(index.status("x/1").unwrap().state >= State::Synced);
    assert!(index.status("x/2").unwrap().exists(), "dropping the last handle syncs");
    assert_eq!(index.checkpoint("crawl").unwrap().unwrap().value, "x/1");
    let w = index.watermarks();
    assert_eq!(w.synced, w.last);
    index.update("x/1", pushdex::Update::new().meta("m", ["w"])).unwrap();
    index.close().unwrap();
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.get("x/1").unwrap().unwrap().meta("m"), Some("w"));
    assert_eq!(index.get("x/1").unwrap().unwrap().part("p"), Some(&[1u8, 2, 3][..]));
}
