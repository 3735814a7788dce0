//! Reopening after damage to the log: a torn tail recovers the prefix, a
//! flipped byte in the middle is `Error::Corrupt`, serials continue, and
//! what was synced before a close or a drop is there. Each test runs twice:
//! with the default memtable, and with a 4 KiB one after a bulk of documents
//! has gone through many flushes and merges into segments, so that the log
//! being damaged is the newest of several generations.

use std::fs;
use std::path::{Path, PathBuf};

use pushdex::{Document, EnumerationMode, Error, Index, Options, Serial, State};

/// One test configuration: the options, and how many documents go into
/// segments before the history under test.
#[derive(Clone, Copy, Debug)]
struct Config {
    memtable_bytes: Option<usize>,
    bulk: usize,
}

const CONFIGS: [Config; 2] =
    [Config { memtable_bytes: None, bulk: 0 }, Config { memtable_bytes: Some(4096), bulk: 300 }];

impl Config {
    fn open(&self, dir: &Path) -> pushdex::Result<Index> {
        let options = match self.memtable_bytes {
            Some(bytes) => Options::default().memtable_bytes(bytes),
            None => Options::default(),
        };
        Index::open_with(dir, options)
    }
}

/// The newest log file (the one with the highest generation).
fn newest_log(dir: &Path) -> PathBuf {
    let gen = |p: &PathBuf| -> u64 {
        let name = p.file_name().unwrap().to_str().unwrap();
        name.strip_prefix("wal-").and_then(|r| r.strip_suffix(".log")).unwrap().parse().unwrap()
    };
    let logs =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "log"));
    logs.max_by_key(gen).expect("a log file")
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

/// The documents under `doc/`: the history under test, not the bulk.
fn docs(index: &Index) -> Vec<String> {
    index
        .enumerate("doc/", EnumerationMode::RecursiveDocuments)
        .unwrap()
        .map(|e| e.unwrap().key().to_string())
        .collect()
}

/// Pushes `config.bulk` documents and refreshes (so they are in segments),
/// then `n` documents (the last two as one batch) with a sync after each
/// operation; returns the newest log's length after each of those.
fn write_history(config: Config, dir: &Path, n: usize) -> Vec<u64> {
    let index = config.open(dir).unwrap();
    for i in 0..config.bulk {
        index.add(Document::new(format!("bulk/{i:04}")).with_text("t", "y".repeat(i % 50))).unwrap();
    }
    if config.bulk > 0 {
        index.refresh().unwrap();
        let segments =
            fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "pdx"));
        assert!(segments.count() >= 1, "the bulk is in segments");
    }
    let log = newest_log(dir);
    let mut lengths = vec![fs::metadata(&log).unwrap().len()];
    for i in 0..n - 2 {
        index.add(Document::new(format!("doc/{i}")).with_stamp(format!("s{i}")).with_text("t", "x".repeat(i))).unwrap();
        index.sync().unwrap();
        lengths.push(fs::metadata(&log).unwrap().len());
    }
    index.add_all([Document::new(format!("doc/{}", n - 2)), Document::new(format!("doc/{}", n - 1))]).unwrap();
    index.sync().unwrap();
    lengths.push(fs::metadata(&log).unwrap().len());
    assert_eq!(newest_log(dir), log, "the history under test is in one log file");
    // Dropped, not closed: close() would flush the log into a segment.
    drop(index);
    lengths
}

#[test]
fn torn_tail_recovers_the_prefix_at_every_cut() {
    for config in CONFIGS {
        let original = tempfile::tempdir().unwrap();
        let lengths = write_history(config, original.path(), 6);
        let ops = lengths.len() - 1; // 4 adds and one batch
        let bulk = config.bulk as u64;
        // Cut inside each of the last two frames, at every byte.
        for frame in ops - 1..=ops {
            for cut in lengths[frame - 1]..lengths[frame] {
                let dir = tempfile::tempdir().unwrap();
                copy_dir(original.path(), dir.path());
                let log = newest_log(dir.path());
                fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(cut).unwrap();

                let index = config.open(dir.path()).unwrap();
                // The operations fully before the cut: one document each.
                let want_docs = frame - 1;
                assert_eq!(docs(&index).len(), want_docs, "{config:?}, cut at {cut}");
                assert_eq!(uris(&index).len(), config.bulk + want_docs, "{config:?}, cut at {cut}");
                let w = index.watermarks();
                assert_eq!(w.last, Serial(bulk + want_docs as u64), "{config:?}, cut at {cut}");
                assert_eq!(w.synced, w.last, "recovered operations are Synced");
                // The torn frame is gone from the file; serials continue.
                assert_eq!(fs::metadata(&log).unwrap().len(), lengths[frame - 1], "truncated to the frame boundary");
                let next = index.add(Document::new("after")).unwrap();
                assert_eq!(next, Serial(bulk + want_docs as u64 + 1));
                index.close().unwrap();
                let index = config.open(dir.path()).unwrap();
                assert_eq!(index.status("after").unwrap().serial, next);
                assert_eq!(uris(&index).len(), config.bulk + want_docs + 1);
            }
        }
    }
}

#[test]
fn a_batch_is_recovered_whole_or_not_at_all() {
    for config in CONFIGS {
        let original = tempfile::tempdir().unwrap();
        let lengths = write_history(config, original.path(), 6);
        let (start, end) = (lengths[lengths.len() - 2], lengths[lengths.len() - 1]);
        for cut in [start, start + 1, (start + end) / 2, end - 1, end] {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(original.path(), dir.path());
            let log = newest_log(dir.path());
            fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(cut).unwrap();
            let index = config.open(dir.path()).unwrap();
            let has4 = index.status("doc/4").unwrap().exists();
            let has5 = index.status("doc/5").unwrap().exists();
            assert_eq!(has4, has5, "{config:?}, cut at {cut}: half a batch");
            assert_eq!(has4, cut == end);
            assert_eq!(uris(&index).len(), config.bulk + 4 + 2 * usize::from(has4));
        }
    }
}

#[test]
fn a_flipped_byte_mid_log_is_corrupt() {
    for config in CONFIGS {
        let original = tempfile::tempdir().unwrap();
        let lengths = write_history(config, original.path(), 8);
        // Every byte of the second frame, which has good frames after it.
        for at in lengths[1]..lengths[2] {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(original.path(), dir.path());
            let log = newest_log(dir.path());
            let mut bytes = fs::read(&log).unwrap();
            bytes[at as usize] ^= 0x40;
            fs::write(&log, &bytes).unwrap();
            match config.open(dir.path()) {
                Err(Error::Corrupt { path, detail }) => {
                    assert!(path.starts_with(dir.path()), "{path:?}");
                    assert!(!detail.is_empty());
                }
                other => panic!("{config:?}, flip at {at}: expected Corrupt, got {other:?}"),
            }
        }
    }
}

#[test]
fn serials_continue_after_reopen() {
    for config in CONFIGS {
        serials_continue_after_reopen_with(config);
    }
}

fn serials_continue_after_reopen_with(config: Config) {
    let dir = tempfile::tempdir().unwrap();
    let index = config.open(dir.path()).unwrap();
    for i in 0..config.bulk {
        index.add(Document::new(format!("bulk/{i}"))).unwrap();
    }
    index.delete_with_prefix("bulk/").unwrap();
    let base = index.watermarks().last.0;
    index.add(Document::new("a")).unwrap();
    index.set_checkpoint("c", "1").unwrap();
    index.delete("a").unwrap();
    let last = index.add_all([Document::new("b"), Document::new("c")]).unwrap();
    assert_eq!(last, Serial(base + 5));
    index.close().unwrap();
    let index = config.open(dir.path()).unwrap();
    assert_eq!(index.watermarks().last, Serial(base + 5));
    assert_eq!(uris(&index), ["b", "c"]);
    assert_eq!(index.delete_root_path("", true).unwrap(), Serial(base + 6));
    assert!(uris(&index).is_empty());
    drop(index);
    let index = config.open(dir.path()).unwrap();
    assert_eq!(index.add(Document::new("d")).unwrap(), Serial(base + 7));
    assert_eq!(uris(&index), ["d"]);
}

#[test]
fn synced_work_survives_close_and_drop() {
    for config in CONFIGS {
        synced_work_survives_close_and_drop_with(config);
    }
}

fn synced_work_survives_close_and_drop_with(config: Config) {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = config.open(dir.path()).unwrap();
        for i in 0..config.bulk {
            index.add(Document::new(format!("bulk/{i}")).with_part("p", vec![7; i])).unwrap();
        }
        index.add(Document::new("x/1").with_stamp("one").with_meta("m", "v").with_part("p", vec![1, 2, 3])).unwrap();
        index.set_checkpoint("crawl", "x/1").unwrap();
        index.sync().unwrap();
        index.add(Document::new("x/2")).unwrap();
        // Dropped without close: the last handle syncs on a best-effort basis.
    }
    let index = config.open(dir.path()).unwrap();
    assert_eq!(uris(&index).len(), config.bulk + 2);
    let d = index.get("x/1").unwrap().unwrap();
    assert_eq!((d.stamp(), d.meta("m"), d.part("p")), ("one", Some("v"), Some(&[1u8, 2, 3][..])));
    assert!(index.status("x/1").unwrap().state >= State::Synced);
    assert!(index.status("x/2").unwrap().exists(), "dropping the last handle syncs");
    assert_eq!(index.checkpoint("crawl").unwrap().unwrap().value, "x/1");
    let w = index.watermarks();
    assert_eq!(w.synced, w.last);
    index.update("x/1", pushdex::Update::new().meta("m", ["w"])).unwrap();
    index.close().unwrap();
    let index = config.open(dir.path()).unwrap();
    assert_eq!(index.get("x/1").unwrap().unwrap().meta("m"), Some("w"));
    assert_eq!(index.get("x/1").unwrap().unwrap().part("p"), Some(&[1u8, 2, 3][..]));
}
