//! The seed corpus: real files written by pushdex, and a few structured
//! inputs, for `seeds/<target>/`. Deterministic, so that regenerating them
//! (`PUSHDEX_FUZZ_WRITE_SEEDS=1 cargo test` in this directory) changes
//! nothing unless the formats did.

use std::sync::Arc;

use pushdex::segment::{parse_footer, reseal, write_segment, Section, SegmentEntry};
use pushdex::storage::{SimStorage, Storage};
use pushdex::{Document, Index, Options, Update};

use crate::common::ROOT;

/// Header bytes of `MANIFEST` and bitmap files (magic, version, length, crc).
const FRAME_HEADER: usize = 20;

/// One seed: target, file name, bytes.
pub type Seed = (&'static str, String, Vec<u8>);

/// xorshift64*: the same bytes on every run.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend_from_slice(bytes);
    out
}

/// An index history with every kind of operation; returns its storage
/// after the index was dropped (its log synced, not flushed).
fn history(refresh_midway: bool) -> SimStorage {
    let storage = SimStorage::new(ROOT);
    let options = Options::default().memtable_bytes(64 << 20);
    let index = Index::open_with_storage(Arc::new(storage.clone()), options).expect("open");
    for i in 0..6 {
        let doc = Document::new(format!("file:///share/d{}/doc{i}.txt", i % 2))
            .with_stamp(format!("2024-03-1{i}"))
            .with_meta("author", "me")
            .with_text("body", "hello world")
            .with_part("raw", vec![i as u8; 3]);
        index.add(doc).expect("add");
    }
    index.add_all((0..3).map(|i| Document::new(format!("a/b/{i}")).with_stamp("s"))).expect("add_all");
    index.update("a/b/1", Update::new().stamp("t").meta("m", ["1", "2"]).remove_part("x")).expect("update");
    if refresh_midway {
        index.refresh().expect("refresh");
    }
    index.delete("a/b/0").expect("delete");
    index.delete_root_path("file:///share/d1", false).expect("delete_root_path");
    index.delete_with_prefix("file:///share/d0/doc4").expect("delete_with_prefix");
    index.set_checkpoint("crawl", "doc5").expect("set_checkpoint");
    index.delete_checkpoint("gone").expect("delete_checkpoint");
    index.clear_checkpoints().expect("clear_checkpoints");
    if refresh_midway {
        index.refresh().expect("refresh");
    }
    drop(index);
    storage
}

fn file(storage: &SimStorage, suffix: &str) -> Vec<u8> {
    let mut names: Vec<String> = storage.list().expect("list").into_iter().filter(|n| n.ends_with(suffix)).collect();
    names.sort();
    let name = names.pop().unwrap_or_else(|| panic!("no *{suffix} file"));
    storage.read(&name).expect("read")
}

/// Every seed.
pub fn seeds() -> Vec<Seed> {
    let mut out: Vec<Seed> = Vec::new();

    // log_frames: a real log, torn copies of it, structured inputs.
    let log = file(&history(false), ".log");
    out.push(("log_frames", "real-log".into(), with_mode(0, &log)));
    out.push(("log_frames", "torn-log".into(), with_mode(0, &log[..log.len() - 5])));
    out.push(("log_frames", "header-only".into(), with_mode(0, &log[..32])));
    for (i, len) in [64, 256, 1024].into_iter().enumerate() {
        out.push(("log_frames", format!("structured-{i}"), with_mode(1, &noise(i as u64 + 1, len))));
    }

    // segment: one from write_segment with a body of 40 KB, one from a
    // flush, structured inputs (which also span 64 KiB blocks).
    let storage = SimStorage::new(ROOT);
    let entries: std::collections::BTreeMap<String, u64> =
        (0..40u64).map(|i| (format!("a/{}/{i:02}", i % 3), i)).collect();
    write_segment(&storage, "seg-1.pdx", &|visit| {
        for (uri, &i) in &entries {
            let body = vec![i as u8; if i == 7 { 40_000 } else { 30 }];
            visit(SegmentEntry { uri: uri.as_bytes(), serial: i + 1, stamp: "s", body: &body })?;
        }
        Ok(())
    })
    .expect("write_segment");
    out.push(("segment", "written".into(), with_mode(0, &storage.read("seg-1.pdx").expect("segment"))));
    let flushed = history(true);
    let segment = file(&flushed, ".pdx");
    out.push(("segment", "flushed".into(), with_mode(0, &segment)));
    // Earlier format versions, which are still read: the fixture the main
    // crate's tests read, written by the version 3 writer; and the
    // `written` seed as the version 6 writer (the last with the `uris` fst)
    // made it, kept as it was.
    out.push(("segment", "written-v3".into(), with_mode(0, include_bytes!("../../tests/fixtures/segment-v3.pdx"))));
    out.push(("segment", "written-v6".into(), include_bytes!("../seeds/segment/written-v6").to_vec()));
    // Column widths no writer uses, every checksum made to match, so that
    // the width checks (norms headers at open, postings at search) are
    // reached: the first norms column and the first postings column, each
    // a count (one varint byte here) then the width.
    let footer = parse_footer(&segment).expect("a written segment's footer");
    for (name, section) in [("bad-norms-width", Section::Norms), ("bad-postings-width", Section::Postings)] {
        let mut bytes = segment.clone();
        let at = footer.section(section).start as usize + 1;
        assert!(bytes[at] <= 4, "{name}: a width at {at}");
        bytes[at] = 3;
        reseal(&mut bytes).expect("reseal");
        out.push(("segment", name.into(), with_mode(0, &bytes)));
    }
    // A word's positions (format version 5) past its part's length, every
    // checksum made to match, so that the positions checks are reached: the
    // last column of `postings` is a word's (word keys sort after meta
    // values'), a short one, so its last byte is its impacts' length (0:
    // none, format version 6) and the one before the last position's.
    let mut bytes = segment.clone();
    let end = footer.section(Section::Postings).end as usize;
    assert_eq!(bytes[end - 1], 0, "bad-positions: a short column's empty impacts at the end");
    let at = end - 2;
    assert!(bytes[at] < 0x80, "bad-positions: the end of a varint at {at}");
    bytes[at] = 0x7f;
    reseal(&mut bytes).expect("reseal");
    out.push(("segment", "bad-positions".into(), with_mode(0, &bytes)));
    // Impacts (format version 6): a flushed segment whose words are in more
    // than 128 rows (blocks of impacts), and the same with the last pair's
    // length changed, every checksum made to match, so that the impacts
    // checks are reached (the last column of `postings` is the word `x`'s,
    // and its last byte the length of its last block's last pair).
    let storage = SimStorage::new(ROOT);
    let index = Index::open_with_storage(Arc::new(storage.clone()), Options::default()).expect("open");
    index
        .add_all((0..300usize).map(|i| {
            let text = format!("{}{}", "word ".repeat(1 + i % 4), "x ".repeat(1 + i % 7));
            Document::new(format!("w/{i:03}")).with_text("body", text)
        }))
        .expect("add_all");
    index.refresh().expect("refresh");
    drop(index);
    let impacts = file(&storage, ".pdx");
    out.push(("segment", "impacts".into(), with_mode(0, &impacts)));
    let mut bytes = impacts.clone();
    let at = parse_footer(&impacts).expect("a flushed segment's footer").section(Section::Postings).end as usize - 1;
    assert!(bytes[at] > 0 && bytes[at] < 0x80, "bad-impacts: a length's one-byte varint at {at}");
    bytes[at] = 0;
    reseal(&mut bytes).expect("reseal");
    out.push(("segment", "bad-impacts".into(), with_mode(0, &bytes)));
    for (i, len) in [128, 512].into_iter().enumerate() {
        out.push(("segment", format!("structured-{i}"), with_mode(1, &noise(i as u64 + 11, len))));
    }

    // manifest: a real manifest and bitmap, framed and bare, structured.
    let manifest = file(&flushed, "MANIFEST");
    out.push(("manifest", "real-manifest".into(), with_mode(0, &manifest)));
    out.push(("manifest", "manifest-payload".into(), with_mode(1, &manifest[FRAME_HEADER..])));
    let bitmap = file(&flushed, ".bm");
    let rows = 16u64.to_le_bytes();
    out.push(("manifest", "real-bitmap".into(), with_mode(2, &[&rows[..], &bitmap].concat())));
    out.push(("manifest", "bitmap-payload".into(), with_mode(3, &[&rows[..], &bitmap[FRAME_HEADER..]].concat())));
    for (i, len) in [64, 256].into_iter().enumerate() {
        out.push(("manifest", format!("structured-{i}"), with_mode(4, &noise(i as u64 + 21, len))));
    }

    // ops: operation sequences of a few lengths.
    for (i, len) in [32, 96, 256, 512].into_iter().enumerate() {
        out.push(("ops", format!("ops-{i}"), noise(i as u64 + 31, len)));
    }
    out
}
