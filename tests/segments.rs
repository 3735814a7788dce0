//! Segments: deletions over documents spread across several segments and
//! the memtable, surviving reopen and merge; damaged segment and manifest
//! files give `Error::Corrupt`, never a panic or a wrong answer.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use pushdex::segment::{parse_footer, Section};
use pushdex::{Document, Entry, EnumerationMode, Error, Index, Options, Query, State};

fn all(index: &Index) -> BTreeSet<String> {
    index.enumerate("", EnumerationMode::RecursiveDocuments).unwrap().map(|e| e.unwrap().key().to_string()).collect()
}

fn files(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Four waves, each refreshed into its own segment, then a fifth left in
/// the memtable; wave k rewrites some URIs of wave k-1.
fn spread(index: &Index) -> BTreeSet<String> {
    let mut want = BTreeSet::new();
    for wave in 0..5 {
        let docs: Vec<Document> = (0..200)
            .map(|i| {
                let uri = format!("eno:bo:{}{}/{}", ["master", "masterpart", "other"][i % 3], i % 7, i + wave * 150);
                want.insert(uri.clone());
                Document::new(uri).with_stamp(format!("w{wave}"))
            })
            .collect();
        index.add_all(docs).unwrap();
        if wave < 4 {
            index.refresh().unwrap();
        }
    }
    want
}

#[test]
fn prefix_deletion_across_segments_and_memtable_survives_reopen_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let mut want = spread(&index);
    assert!(files(dir.path(), "pdx").len() >= 2, "the waves are in several segments");
    assert_eq!(all(&index), want);

    index.delete_with_prefix("eno:bo:master").unwrap();
    want.retain(|u| !u.starts_with("eno:bo:master"));
    index.delete_root_path("eno:bo:other3", true).unwrap();
    want.retain(|u| !u.starts_with("eno:bo:other3/"));
    index.delete_root_path("eno:bo:other4", false).unwrap();
    want.retain(|u| !u.starts_with("eno:bo:other4/") || u["eno:bo:other4/".len()..].contains('/'));
    assert_eq!(all(&index), want);
    assert_eq!(index.count("", EnumerationMode::RecursiveDocuments).unwrap(), want.len() as u64);
    for uri in &want {
        assert!(index.status(uri).unwrap().exists(), "{uri}");
    }
    assert!(!index.status("eno:bo:master0/0").unwrap().exists());

    // Dropped without close: the deletions come back from the log.
    drop(index);
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(all(&index), want);
    index.refresh().unwrap();
    index.compact().unwrap();
    assert_eq!(all(&index), want);
    assert_eq!(index.count("", EnumerationMode::RecursiveDocuments).unwrap(), want.len() as u64);
    index.close().unwrap();
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(all(&index), want);
    for uri in &want {
        assert_eq!(index.status(uri).unwrap().state, State::Searchable);
    }
}

#[test]
fn a_rewritten_or_deleted_document_never_resurfaces_from_an_older_segment() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), Options::default().memtable_bytes(4096)).unwrap();
    for round in 0..20 {
        index.add(Document::new("doc/a").with_stamp(format!("r{round}"))).unwrap();
        index.add(Document::new("doc/b").with_stamp(format!("r{round}"))).unwrap();
        index.refresh().unwrap();
    }
    index.delete("doc/b").unwrap();
    index.refresh().unwrap();
    assert_eq!(index.status("doc/a").unwrap().stamp, "r19");
    assert!(!index.status("doc/b").unwrap().exists());
    assert_eq!(all(&index), BTreeSet::from(["doc/a".to_string()]));
    index.close().unwrap();
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.status("doc/a").unwrap().stamp, "r19");
    assert_eq!(all(&index), BTreeSet::from(["doc/a".to_string()]));
    index.compact().unwrap();
    assert_eq!(all(&index), BTreeSet::from(["doc/a".to_string()]));
}

fn stamped(entry: Entry) -> (String, String) {
    match entry {
        Entry::Document(status) => (status.uri, status.stamp),
        Entry::Folder(folder) => panic!("a folder {folder} in a documents enumeration"),
    }
}

/// Merges run beside flushes: a thread compacts in a loop while writers
/// rewrite and delete documents through a tiny memtable (so flushes commit
/// while merges are being written). Nothing a merge does may change what a
/// read returns, then or after a reopen.
#[test]
fn merges_racing_flushes_rewrites_and_deletions_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open_with(dir.path(), Options::default().memtable_bytes(4096)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let compactor = {
        let (index, stop) = (index.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut merges = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                index.compact().unwrap();
                merges += 1;
            }
            merges
        })
    };
    let mut want = std::collections::BTreeMap::new();
    for round in 0..60u32 {
        for i in 0..40u32 {
            let uri = format!("r/{}/{}", i % 5, (i * 7 + round) % 97);
            index.add(Document::new(uri.clone()).with_stamp(format!("{round}.{i}"))).unwrap();
            want.insert(uri, format!("{round}.{i}"));
        }
        let folder = format!("r/{}/", round % 5);
        if round % 7 == 3 {
            index.delete_root_path(&folder, true).unwrap();
            want.retain(|u, _| !u.starts_with(&folder));
        } else if round % 7 == 5 {
            let prefix = format!("r/{}/{}", round % 5, round % 9);
            index.delete_with_prefix(&prefix).unwrap();
            want.retain(|u, _| !u.starts_with(&prefix));
        }
        if round % 10 == 9 {
            index.refresh().unwrap();
        }
        let got: Vec<(String, String)> =
            index.enumerate("", EnumerationMode::RecursiveDocuments).unwrap().map(|e| stamped(e.unwrap())).collect();
        let expected: Vec<(String, String)> = want.iter().map(|(u, s)| (u.clone(), s.clone())).collect();
        assert_eq!(got, expected, "round {round}");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(compactor.join().unwrap() > 0);
    for (uri, stamp) in &want {
        assert_eq!(&index.status(uri).unwrap().stamp, stamp);
    }
    drop(index);
    let index = Index::open(dir.path()).unwrap();
    let got: std::collections::BTreeMap<String, String> =
        index.enumerate("", EnumerationMode::RecursiveDocuments).unwrap().map(|e| stamped(e.unwrap())).collect();
    assert_eq!(got, want);
}

#[test]
fn a_closed_index_replays_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    index.add_all((0..1000).map(|i| Document::new(format!("x/{i}")))).unwrap();
    index.set_checkpoint("c", "1").unwrap();
    index.close().unwrap();
    for log in files(dir.path(), "log") {
        assert_eq!(
            fs::metadata(&log).unwrap().len(),
            pushdex::wal::FILE_HEADER_BYTES as u64,
            "{log:?} holds frames after close"
        );
    }
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.count("x", EnumerationMode::RecursiveDocuments).unwrap(), 1000);
    assert_eq!(index.checkpoint("c").unwrap().unwrap().value, "1");
}

fn expect_corrupt_or_correct(dir: &Path, want: &BTreeSet<String>) {
    match Index::open(dir) {
        Err(Error::Corrupt { .. }) => {}
        Err(e) => panic!("expected Corrupt, got {e:?}"),
        Ok(index) => {
            let got: Result<BTreeSet<String>, Error> = index
                .enumerate("", EnumerationMode::RecursiveDocuments)
                .unwrap()
                .map(|e| e.map(|e| e.key().to_string()))
                .collect();
            match got {
                Ok(got) => assert_eq!(&got, want, "a damaged file gave a wrong answer"),
                Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e:?}"),
            }
            for uri in want {
                match index.get(uri) {
                    Ok(Some(d)) => {
                        assert_eq!((d.uri(), d.stamp(), d.text("t")), (uri.as_str(), "s", Some(uri.as_str())))
                    }
                    Ok(None) => panic!("{uri} vanished without an error"),
                    Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e:?}"),
                }
            }
            // Search reads the postings, part lengths and URI fst: right
            // answers or Corrupt.
            match index.search_count(&Query::parse("t:d").unwrap()) {
                Ok(n) => assert_eq!(n, want.len() as u64, "a damaged file gave a wrong count"),
                Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e:?}"),
            }
            for uri in want.iter().step_by(97) {
                let number = uri.rsplit('/').next().unwrap();
                match index.search(&Query::parse(&format!("t:{number}")).unwrap(), 10) {
                    Ok(hits) => assert_eq!(hits.iter().map(|h| h.uri.as_str()).collect::<Vec<_>>(), [uri.as_str()]),
                    Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e:?}"),
                }
            }
            for uri in want.iter().step_by(89) {
                let meta = Query::Meta { name: "m".into(), value: uri.clone() };
                match index.search(&meta, 10) {
                    Ok(hits) => assert_eq!(hits.iter().map(|h| h.uri.as_str()).collect::<Vec<_>>(), [uri.as_str()]),
                    Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e:?}"),
                }
            }
            match index.search(&Query::All, 5) {
                Ok(hits) => {
                    let first: Vec<&str> = want.iter().take(5).map(String::as_str).collect();
                    assert_eq!(hits.iter().map(|h| h.uri.as_str()).collect::<Vec<_>>(), first);
                }
                Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e:?}"),
            }
        }
    }
}

#[test]
fn damaged_segments_and_manifests_are_corrupt() {
    let original = tempfile::tempdir().unwrap();
    let want: BTreeSet<String> = (0..3000).map(|i| format!("d/{}/{i:05}", i % 9)).collect();
    {
        let index = Index::open(original.path()).unwrap();
        index
            .add_all(want.iter().map(|u| {
                Document::new(u.as_str()).with_stamp("s").with_text("t", u.as_str()).with_meta("m", u.as_str())
            }))
            .unwrap();
        index.close().unwrap();
    }
    let seg = files(original.path(), "pdx").pop().unwrap();
    let bytes = fs::read(&seg).unwrap();
    let len = bytes.len();
    let manifest_len = fs::metadata(original.path().join("MANIFEST")).unwrap().len() as usize;
    // The sections (bodies, stamps, rows, bloom, names, norms, postings,
    // terms, metas, parts, block crcs) from the footer's table
    // (docs/FORMAT.md): their first, last and 40 spread bytes. The `uris`
    // section is empty from version 7 on.
    let footer = parse_footer(&bytes).unwrap();
    let mut targets: Vec<(&str, usize)> = Vec::new();
    for section in Section::ALL {
        let (off, section_len) = (footer.section(section).start as usize, footer.section_len(section) as usize);
        if section == Section::Uris {
            assert_eq!(section_len, 0, "no uris fst from version 7 on");
            continue;
        }
        assert!(section_len > 0, "section {section} is empty");
        targets.extend((0..40).map(|k| ("seg", off + k * section_len / 40)));
        targets.push(("seg", off + section_len - 1));
    }
    targets.extend((len - footer.len..len).map(|at| ("seg", at)));
    targets.extend((0..manifest_len).map(|at| ("MANIFEST", at)));
    for (file, at) in targets {
        let dir = tempfile::tempdir().unwrap();
        for entry in fs::read_dir(original.path()).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        let path = if file == "seg" { dir.path().join(seg.file_name().unwrap()) } else { dir.path().join("MANIFEST") };
        let mut bytes = fs::read(&path).unwrap();
        bytes[at] ^= 0x5a;
        fs::write(&path, &bytes).unwrap();
        if file == "MANIFEST" {
            assert!(matches!(Index::open(dir.path()), Err(Error::Corrupt { .. })), "MANIFEST flip at {at}");
        } else {
            expect_corrupt_or_correct(dir.path(), &want);
        }
    }
    // A manifest naming a missing segment.
    let dir = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(original.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.path() != seg {
            fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    assert!(matches!(Index::open(dir.path()), Err(Error::Corrupt { .. })));
}

/// An index of one segment: 50 documents with a text part `t` and a meta.
fn one_segment() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    index
        .add_all((0..50).map(|i| {
            Document::new(format!("d/{i:02}"))
                .with_stamp("s")
                .with_text("t", format!("word{i} all"))
                .with_meta("m", "x")
        }))
        .unwrap();
    index.close().unwrap();
    let seg = files(dir.path(), "pdx").pop().unwrap();
    (dir, seg)
}

/// A norms column whose value width byte is one no writer uses (3, 5, ...),
/// with every checksum made to match: `Corrupt` (at open, which checks each
/// norms column's header against its part), never an out-of-bounds read of
/// the lengths (before 347e547 the first search panicked).
#[test]
fn a_norms_column_with_a_bad_width_is_corrupt() {
    for width in [3u8, 5, 8, 255] {
        let (dir, seg) = one_segment();
        let mut bytes = fs::read(&seg).unwrap();
        let footer = parse_footer(&bytes).unwrap();
        let norms = footer.section(Section::Norms).start as usize;
        // The first column: count (50, one varint byte), then the width.
        assert_eq!(bytes[norms], 50);
        assert_eq!(bytes[norms + 1], 1, "lengths of one byte");
        bytes[norms + 1] = width;
        pushdex::segment::reseal(&mut bytes).unwrap();
        fs::write(&seg, &bytes).unwrap();
        match Index::open(dir.path()) {
            Err(Error::Corrupt { detail, .. }) => assert!(detail.contains("norms"), "{detail}"),
            Err(e) => panic!("width {width}: expected Corrupt, got {e:?}"),
            Ok(index) => match index.search(&Query::parse("t:all").unwrap(), 10) {
                Err(Error::Corrupt { .. }) => {}
                other => panic!("width {width}: a bad norms width gave {other:?}"),
            },
        }
    }
}

/// A segment of the next format version (its trailer, the part every
/// version keeps, says so): `UnsupportedVersion` naming the file, the
/// version found and the versions read, not `Corrupt`.
#[test]
fn a_segment_of_a_newer_format_version_is_unsupported() {
    use pushdex::segment::{v4, OLDEST_VERSION, VERSION};
    let (dir, seg) = one_segment();
    let mut bytes = fs::read(&seg).unwrap();
    let trailer = bytes.len() - v4::TRAILER_LEN;
    bytes[trailer + v4::VERSION_AT..][..4].copy_from_slice(&(VERSION + 1).to_le_bytes());
    let crc = crc32c::crc32c(&bytes[trailer..trailer + v4::TRAILER_CRC_AT]);
    bytes[trailer + v4::TRAILER_CRC_AT..][..4].copy_from_slice(&crc.to_le_bytes());
    fs::write(&seg, &bytes).unwrap();
    match Index::open(dir.path()) {
        Err(Error::UnsupportedVersion { path, found, supported }) => {
            assert_eq!((path, found, supported), (seg, VERSION + 1, (OLDEST_VERSION, VERSION)));
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}
