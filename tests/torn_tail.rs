//! A torn tail is never mistaken for damage, whatever the torn frame
//! carried: batches whose binary parts are full of frame-like bytes (the
//! 17 bytes that were a valid version 1 frame anywhere, zeros, all-ones,
//! copies of this index's own log and of another index's log with serials
//! above the last good one, version 1 frames with such serials) are cut at
//! every offset of the last frame (every byte of its first and last 4 KiB,
//! a stride through the rest), and every cut opens as the state before that
//! frame, never `Corrupt`.
//!
//! The same through a real process: `pushdex import` of a tree of such
//! files is killed with SIGKILL at spread moments, 100 times; each time the
//! index opens (`pushdex verify`), and the next import converges on the
//! tree.

use std::collections::BTreeMap;
use std::sync::Arc;

use pushdex::storage::{SimStorage, Storage};
use pushdex::{Document, EnumerationMode, Index, Options};

/// The 17 bytes that pass as a version 1 frame wherever they stand.
const V1_FOOL: [u8; 17] = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0];

fn options() -> Options {
    // Large enough that nothing flushes: every operation stays in the log.
    Options::default().memtable_bytes(256 << 20)
}

/// Every file of the storage with its bytes.
fn files(storage: &SimStorage) -> BTreeMap<String, Vec<u8>> {
    storage.list().unwrap().into_iter().map(|name| (name.clone(), storage.read(&name).unwrap())).collect()
}

fn last_log(files: &BTreeMap<String, Vec<u8>>) -> String {
    files
        .keys()
        .filter(|n| pushdex::wal::parse_log_name(n).is_some())
        .max_by_key(|n| pushdex::wal::parse_log_name(n))
        .unwrap()
        .clone()
}

/// What an index holds: every document's URI and stamp.
fn held(index: &Index) -> BTreeMap<String, String> {
    index
        .enumerate("", EnumerationMode::RecursiveDocuments)
        .unwrap()
        .map(|e| match e.unwrap() {
            pushdex::Entry::Document(d) => (d.uri, d.stamp),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Version 1 frames (len, crc32c of serial + kind + payload, serial, kind)
/// with serials from `first`: what an older release's log looks like.
fn v1_frames(first: u64, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for serial in first..first + n {
        let payload = format!("doc {serial}").into_bytes();
        let mut covered = serial.to_le_bytes().to_vec();
        covered.push(1);
        covered.extend_from_slice(&payload);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c(&covered).to_le_bytes());
        out.extend_from_slice(&covered);
    }
    out
}

fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

/// The frame-like contents of the last batch's parts; `own_log` is this
/// index's log as it stands, `other_log` another index's with serials
/// above the last good one.
fn frame_like_parts(own_log: &[u8], other_log: &[u8], last: u64) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("v1-pattern", V1_FOOL.repeat(600)),
        ("zeros", vec![0; 16 << 10]),
        ("ones", vec![0xff; 16 << 10]),
        ("own-log", own_log.to_vec()),
        ("other-log", other_log.to_vec()),
        ("v1-frames-ahead", v1_frames(last + 1, 200)),
        // Headers of version 2 frames with plausible serials and no valid
        // check, every few bytes.
        (
            "v2-headers",
            (0..400u64)
                .flat_map(|i| {
                    let mut h = vec![0u8; 8];
                    h.extend_from_slice(&0u32.to_le_bytes());
                    h.extend_from_slice(&(last + 1 + i).to_le_bytes());
                    h.push(1);
                    h
                })
                .collect(),
        ),
    ]
}

#[test]
fn a_torn_frame_full_of_frame_like_bytes_is_a_torn_tail_at_every_cut() {
    // Another index's log, whose serials run past this one's.
    let other = SimStorage::new("/other");
    let other_index = Index::open_with_storage(Arc::new(other.clone()), options()).unwrap();
    for i in 0..300 {
        other_index.add(Document::new(format!("other/{i}")).with_stamp("o")).unwrap();
    }
    other_index.sync().unwrap();
    let other_log = files(&other)[&last_log(&files(&other))].clone();

    let storage = SimStorage::new("/idx");
    let index = Index::open_with_storage(Arc::new(storage.clone()), options()).unwrap();
    for b in 0..5 {
        index
            .add_all((0..10).map(|i| Document::new(format!("a/{b}/{i}")).with_stamp("s").with_text("body", "words")))
            .unwrap();
    }
    index.set_checkpoint("crawl", "batch 5").unwrap();
    index.sync().unwrap();
    let before = held(&index);
    let last = index.watermarks().last.0;
    let own_log = files(&storage)[&last_log(&files(&storage))].clone();
    // The last batch: one document per kind of frame-like contents.
    let parts = frame_like_parts(&own_log, &other_log, last);
    index
        .add_all(
            parts.iter().map(|(name, bytes)| Document::new(format!("b/{name}")).with_part("content", bytes.clone())),
        )
        .unwrap();
    index.sync().unwrap();
    let all = files(&storage);
    let log = last_log(&all);
    let bytes = &all[&log];
    let frame_start = own_log.len();
    let frame_len = bytes.len() - frame_start;
    assert!(frame_len > 64 << 10, "the last frame is large: {frame_len} bytes");

    let cuts: Vec<usize> = (frame_start..frame_start + 4096)
        .chain((frame_start + 4096..bytes.len() - 4096).step_by(97))
        .chain(bytes.len() - 4096..bytes.len())
        .collect();
    for &cut in &cuts {
        let copy = SimStorage::new("/copy");
        for (name, content) in &all {
            copy.write(name, if *name == log { &content[..cut] } else { content });
        }
        let reopened = Index::open_with_storage(Arc::new(copy), options())
            .unwrap_or_else(|e| panic!("cut at {cut} of {} (frame at {frame_start}): {e}", bytes.len()));
        assert_eq!(reopened.watermarks().last.0, last, "cut at {cut}");
        assert_eq!(held(&reopened), before, "cut at {cut}");
        assert_eq!(reopened.checkpoint("crawl").unwrap().unwrap().value, "batch 5");
        drop(reopened);
    }
    // The whole frame is there: the batch is.
    let copy = SimStorage::new("/copy");
    for (name, content) in &all {
        copy.write(name, content);
    }
    let reopened = Index::open_with_storage(Arc::new(copy), options()).unwrap();
    assert_eq!(held(&reopened).len(), before.len() + parts.len());
    for (name, bytes) in &parts {
        let doc = reopened.get(&format!("b/{name}")).unwrap().unwrap();
        assert_eq!(doc.part("content").unwrap(), &bytes[..], "{name}");
    }
}

/// A tree of files whose contents are frame-like bytes: `n` files of 2 to
/// 24 KiB each, plus a real log of another index.
#[cfg(feature = "cli")]
fn frame_like_tree(root: &std::path::Path, n: usize) {
    let other = SimStorage::new("/other");
    let other_index = Index::open_with_storage(Arc::new(other.clone()), options()).unwrap();
    for i in 0..2000 {
        other_index.add(Document::new(format!("other/{i}")).with_stamp("o")).unwrap();
    }
    other_index.sync().unwrap();
    let other_log = files(&other)[&last_log(&files(&other))].clone();
    std::fs::create_dir_all(root.join("logs")).unwrap();
    std::fs::write(root.join("logs/wal-1.log"), &other_log).unwrap();
    let parts = frame_like_parts(&other_log, &other_log, 1);
    for i in 0..n {
        let (name, bytes) = &parts[i % parts.len()];
        let size = (2 << 10) + (i * 7919) % (22 << 10);
        let content: Vec<u8> = bytes.iter().copied().cycle().take(size).collect();
        let dir = root.join(format!("d{}", i % 5));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}-{i}.bin")), content).unwrap();
    }
}

#[cfg(feature = "cli")]
fn import(index: &std::path::Path, tree: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pushdex"));
    command.arg("--index").arg(index).arg("import").arg(tree).env_remove("PUSHDEX_INDEX");
    command
}

/// The value after `key: ` in the output of an import.
#[cfg(feature = "cli")]
fn field(out: &str, key: &str) -> u64 {
    let line = out.lines().find(|l| l.starts_with(&format!("{key}: "))).unwrap_or_else(|| panic!("no {key} in {out}"));
    line[key.len() + 2..].trim().parse().unwrap()
}

#[cfg(feature = "cli")]
#[test]
fn a_real_import_killed_at_100_moments_always_reopens_and_converges() {
    use std::time::{Duration, Instant};
    const TRIALS: usize = 100;
    const FILES: usize = 1500;
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    frame_like_tree(&tree, FILES);
    let tree = std::fs::canonicalize(tree).unwrap();
    let listed = FILES as u64 + 1;

    // How long a whole first import takes here, with the tree in the page
    // cache (the second of two): the kill moments spread over it, with a
    // tenth more.
    let mut whole = Duration::ZERO;
    for timing in ["timing-1", "timing-2"] {
        let started = Instant::now();
        let out = import(&tmp.path().join(timing), &tree).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        whole = started.elapsed();
    }

    let (mut partial, mut torn) = (0, 0);
    for trial in 0..TRIALS {
        let index = tmp.path().join(format!("idx{trial}"));
        let moment = whole.mul_f64(1.1 * trial as f64 / TRIALS as f64);
        let mut child = import(&index, &tree)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(moment);
        // SIGKILL; the child may have finished already.
        let _ = child.kill();
        child.wait().unwrap();

        // The index opens: what verify says, and what open does.
        match Index::verify(&index) {
            Ok(v) => {
                assert!(v.opens && v.problems.is_empty(), "trial {trial} at {moment:?}: {v:?}");
                torn += usize::from(v.torn_tail.is_some());
            }
            // Killed before the index was created.
            Err(pushdex::Error::NoIndex { .. }) => {}
            Err(e) => panic!("trial {trial} at {moment:?}: {e}"),
        }
        let opened = Index::open(&index).unwrap_or_else(|e| panic!("trial {trial} at {moment:?}: {e}"));
        let held = opened.count("", EnumerationMode::RecursiveDocuments).unwrap();
        partial += usize::from(held > 0 && held < listed);
        opened.close().unwrap();

        // The next import converges on the tree (and, every tenth trial,
        // the one after it has nothing to do).
        let out = import(&index, &tree).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "trial {trial}: {text}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(field(&text, "listed"), listed, "trial {trial}: {text}");
        assert_eq!(field(&text, "added") + field(&text, "unchanged"), listed, "trial {trial}: {text}");
        if trial % 10 == 0 {
            let out = import(&index, &tree).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let counts = (field(&text, "added"), field(&text, "updated"), field(&text, "unchanged"));
            assert_eq!(counts, (0, 0, listed), "trial {trial}: {text}");
        }
        std::fs::remove_dir_all(&index).unwrap();
        if trial % 10 == 0 {
            eprintln!("trial {trial}: killed at {moment:?} of {whole:?}; partial so far {partial}, torn tails {torn}");
        }
    }
    eprintln!("{TRIALS} trials: {partial} left part of the tree, {torn} a torn log tail");
    assert!(partial + torn >= TRIALS / 10, "the kills missed the imports: {partial} partial, {torn} torn");
}
