//! Immutable, sorted, memory-mapped segment files.
//!
//! A segment is a memtable written out in URI order: an `fst::Map` from URI
//! to ordinal (its rank), fixed-width rows by ordinal (serial, stamp and body
//! locations), the stamp and body heaps, the URIs by ordinal, and the
//! inverted index search reads. Because the URIs are sorted, every prefix is
//! one contiguous ordinal range, which is what makes subtree deletion one
//! bitmap range per segment. `docs/FORMAT.md` has the layout.
//!
//! A blocked Bloom filter over the URIs (`bloom`) lets a lookup skip a
//! segment that cannot hold the URI without searching its names.
//!
//! Checksums at the right grain: the footer, the `uris`, `bloom`, `terms`
//! and `parts` sections and the block-checksum table are verified in full at
//! open (fst trusts its input); rows, heaps, names, norms, postings and metas
//! carry a crc32c per 64 KiB block, checked when a block is first read.
//!
//! The modules, lowest first (none imports one above it):
//!
//! - `format`: the on-disk layout: [`Section`], the footer and its table
//!   of contents, the versions read, the section writer and the
//!   block-verified section reader;
//! - `postings`: the inverted index (term keys, columns, norms, the parts
//!   table), written at flush or merge and read by search, over section
//!   bytes;
//! - `reader`: [`Segment`]: open, lookups, rows, iteration, `verify_all`;
//! - `writer`: [`write_segment`], which also reads back what it wrote.

mod format;
mod postings;
mod reader;
mod writer;

pub use format::{
    parse_footer, reseal, v3, v4, Footer, FooterError, Section, BLOCK, BLOCKED, MAGIC, NAMES_BLOCK, OLDEST_VERSION,
    NO_URIS_VERSION, POSITIONS_VERSION, ROW_BYTES, SUPPORTED, TOC_VERSION, VERSION, WHOLE,
};
pub(crate) use postings::{term_key, value_at, Postings, IMPACT_BLOCK, META, RELEASE_EVERY, WORD};
pub use reader::{Names, Row, Segment};
pub use writer::{write_segment, Entries, SegmentEntry, TABLE_BYTES};
pub(crate) use writer::{write_segment_with, Terms};

/// The benches' corpus, for `tests::measure_positions`.
#[cfg(test)]
#[path = "../../benches/corpus/mod.rs"]
mod corpus;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, Result};
    use crate::storage::{FsStorage, Storage};
    use crate::text::Analyzer;
    use fst::Streamer;
    use std::collections::BTreeMap;

    fn write(storage: &dyn Storage, name: &str, entries: &BTreeMap<Vec<u8>, (u64, String, Vec<u8>)>) -> Segment {
        write_segment(storage, name, &|visit| {
            for (uri, (serial, stamp, body)) in entries {
                visit(SegmentEntry { uri, serial: *serial, stamp, body })?;
            }
            Ok(())
        })
        .unwrap();
        Segment::open(storage, name).unwrap()
    }

    /// A lookup searches the names: every URI is found at its ordinal, and
    /// nothing else is found (with the filter out of the way, so that
    /// misses reach the search too): keys before the first, after the last,
    /// between two, every prefix of a URI, a URI extended, in segments of
    /// one row, of a whole number of blocks and of one more.
    #[test]
    fn lookups_search_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        for (n, rows) in [1u64, 16, 17, 1000].into_iter().enumerate() {
            let mut entries = BTreeMap::new();
            for i in 0..rows {
                let uri = format!("b/{}/{}{i:04}", i % 3, "x".repeat((i % 5) as usize)).into_bytes();
                entries.insert(uri, (i + 1, String::new(), Vec::new()));
            }
            let seg = write(&storage, &format!("seg-{}.pdx", n + 1), &entries);
            let mut misses = vec![b"".to_vec(), b"a".to_vec(), b"b/".to_vec(), b"c".to_vec(), b"\xff".to_vec()];
            for (ord, uri) in entries.keys().enumerate() {
                assert_eq!(seg.ordinal(uri).unwrap(), Some(ord as u32));
                assert_eq!(seg.search_names(uri).unwrap(), Some(ord as u32));
                misses.extend((0..uri.len()).map(|len| uri[..len].to_vec()));
                misses.push([uri.as_slice(), b"\0"].concat());
                misses.push([uri.as_slice(), b"0"].concat());
            }
            for key in misses.iter().filter(|k| !entries.contains_key(*k)) {
                assert_eq!(seg.search_names(key).unwrap(), None, "{:?}", String::from_utf8_lossy(key));
                assert_eq!(seg.ordinal(key).unwrap(), None);
            }
        }
    }

    #[test]
    fn round_trip_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let mut entries = BTreeMap::new();
        for i in 0..5000u64 {
            let uri = format!("f/{}/{i:05}", i % 7).into_bytes();
            let body = if i == 17 { vec![7u8; 200_000] } else { vec![i as u8; (i % 50) as usize] };
            entries.insert(uri, (i + 1, format!("s{i}"), body));
        }
        let seg = write(&storage, "seg-1.pdx", &entries);
        assert_eq!(seg.rows(), 5000);
        for (ord, (uri, (serial, stamp, body))) in entries.iter().enumerate() {
            assert_eq!(seg.ordinal(uri).unwrap(), Some(ord as u32));
            let row = seg.row(ord as u32).unwrap();
            assert_eq!((row.serial, row.stamp, row.body), (*serial, stamp.as_str(), body.as_slice()));
        }
        assert_eq!(seg.ordinal(b"nope").unwrap(), None);
        let range = seg.prefix_range(b"f/3/").unwrap();
        let want = entries.keys().filter(|k| k.starts_with(b"f/3/")).count();
        assert_eq!((range.end - range.start) as usize, want);
        let mut it = seg.names_in(b"f/3/", b"f/3/02").unwrap();
        let mut got = Vec::new();
        while let Some(item) = it.next_entry() {
            got.push(item.unwrap().0.to_vec());
        }
        let want: Vec<Vec<u8>> =
            entries.keys().filter(|k| k.starts_with(b"f/3/") && k.as_slice() >= &b"f/3/02"[..]).cloned().collect();
        assert_eq!(got, want);
        assert_eq!(seg.prefix_range(b"\xff").unwrap(), 5000..5000);
        assert_eq!(seg.lower_bound(b"").unwrap(), 0);
        // Every URI with its ordinal, in order, from the names (5000 is not
        // a whole number of blocks).
        let mut names = seg.names();
        let mut got = Vec::new();
        while let Some(item) = names.next_entry() {
            let (uri, ord) = item.unwrap();
            got.push((uri.to_vec(), ord));
        }
        let want: Vec<(Vec<u8>, u32)> = entries.keys().cloned().zip(0..).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn empty_segment_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let seg = write(&storage, "seg-1.pdx", &BTreeMap::new());
        assert_eq!(seg.rows(), 0);
        assert_eq!(seg.prefix_range(b"a").unwrap(), 0..0);
        let err = write_segment(&storage, "seg-2.pdx", &|visit| {
            visit(SegmentEntry { uri: b"b", serial: 1, stamp: "", body: b"" })?;
            visit(SegmentEntry { uri: b"a", serial: 2, stamp: "", body: b"" })
        })
        .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }));
    }

    /// Everything a segment's inverted index holds, readable.
    type Dump = (Vec<(String, u64, u64, Vec<(u32, u32)>)>, Vec<(Vec<u8>, Vec<(u32, u32)>)>);

    fn dump(seg: &Segment) -> Dump {
        dump_with(seg).0
    }

    /// Each word's key and its positions by row.
    type WordPositions = Vec<(Vec<u8>, Vec<(u32, Vec<u32>)>)>;

    /// [`dump`], and each word's positions by row (none before version 5).
    fn dump_with(seg: &Segment) -> (Dump, WordPositions) {
        let column = |p: &Postings<'_>| p.rows.iter().enumerate().map(|(r, row)| (row, p.value(r))).collect::<Vec<_>>();
        let parts =
            seg.parts().iter().map(|p| (p.name.clone(), p.docs, p.total_len, column(&seg.norms(p).unwrap()))).collect();
        let mut terms = Vec::new();
        let mut metas = seg.meta_terms().unwrap();
        while let Some((key, offset)) = metas.next_term().unwrap() {
            let key = [&[META][..], key].concat();
            terms.push((key, column(&seg.postings_at(offset).unwrap())));
        }
        let mut positions = Vec::new();
        let mut stream = seg.terms().stream();
        while let Some((key, offset)) = stream.next() {
            let postings = seg.postings_at(offset).unwrap();
            terms.push((key.to_vec(), column(&postings)));
            if let Some(mut at) = seg.positions(&postings).unwrap() {
                let mut rows = Vec::new();
                for (rank, row) in postings.rows.iter().enumerate() {
                    let mut out = Vec::new();
                    at.read(postings.value(rank), &mut out).unwrap();
                    rows.push((row, out));
                }
                assert!(at.at_end());
                positions.push((key.to_vec(), rows));
            }
        }
        ((parts, terms), positions)
    }

    fn body(i: u64) -> Vec<u8> {
        let words = ["alpha", "Beta", "gamma", "delta", "ÉTÉ", "x"];
        let mut doc = crate::document::Document::new("u");
        let text: Vec<&str> = (0..(i % 9)).map(|k| words[((i * 7 + k * k) % 6) as usize]).collect();
        doc = doc.with_text("body", text.join(" "));
        if i.is_multiple_of(3) {
            doc = doc.with_text("title", format!("Title {i} alpha"));
        }
        if i.is_multiple_of(4) {
            doc = doc.with_meta("tag", format!("t{}", i % 5)).with_meta("tag", "all");
        }
        if i.is_multiple_of(5) {
            doc = doc.with_part("blob", b"alpha beta".to_vec());
        }
        doc.body().encode()
    }

    /// The terms fst and the metas table spill to a scratch file past
    /// their memory limit, and the names go out as they are coded: the
    /// file is byte for byte the one written with everything in memory,
    /// for a flush (the bodies analysed) and for a merge (postings carried
    /// over), with several MiB of spilled tables (more than one scratch
    /// chunk) and with a limit of one byte.
    #[test]
    fn spilled_tables_write_the_same_file() {
        let storage = crate::storage::SimStorage::new("/spill");
        let mut entries = BTreeMap::new();
        for i in 0..80_000u64 {
            let uri = format!("s://h/{}/{i:06}", i % 13).into_bytes();
            let mut doc = crate::document::Document::new("u")
                .with_meta("hash", format!("{:032x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                .with_meta("title", format!("Title number {i}"));
            doc = doc.with_text("body", format!("w{} w{} common", i % 977, i / 3));
            entries.insert(uri, (i + 1, String::new(), doc.body().encode()));
        }
        let visit = |visit: &mut dyn FnMut(SegmentEntry<'_>) -> Result<()>| {
            for (uri, (serial, stamp, body)) in &entries {
                visit(SegmentEntry { uri, serial: *serial, stamp, body })?;
            }
            Ok(())
        };
        // The file, and how many writes (appends, creations) it took.
        let written = |name: &str, terms: Terms<'_>, table_bytes: usize| {
            let before = storage.writes();
            write_segment_with(&storage, name, &visit, terms, table_bytes).unwrap();
            (storage.read(name).unwrap(), storage.writes() - before)
        };
        let fresh = written("whole.pdx", Terms::Analyze(Analyzer::Exact), TABLE_BYTES);
        let seg = Segment::open(&storage, "whole.pdx").unwrap();
        let metas = parse_footer(&fresh.0).unwrap().sections[Section::Metas.index()].clone();
        assert!(metas.end - metas.start > 3 << 19, "the metas table spills more than one chunk: {metas:?}");
        let remap = std::cell::RefCell::new(Vec::new());
        let merge = || {
            *remap.borrow_mut() = vec![(0..seg.rows() as u32).collect()];
            Terms::Merge { inputs: vec![&seg], remap: &remap, analysis: Analyzer::Exact }
        };
        let whole = written("merged.pdx", merge(), TABLE_BYTES);
        for limit in [1, 100_000] {
            let spilled = written("spilled.pdx", Terms::Analyze(Analyzer::Exact), limit);
            assert!(fresh.0 == spilled.0, "a flush, limit {limit}");
            // A scratch file and at least two chunks written to it.
            assert!(spilled.1 >= fresh.1 + 3, "a flush, limit {limit}: {} writes, {} in memory", spilled.1, fresh.1);
            let spilled = written("merged-spilled.pdx", merge(), limit);
            assert!(whole.0 == spilled.0, "a merge, limit {limit}");
            assert!(spilled.1 >= whole.1 + 3, "a merge, limit {limit}: {} writes, {} in memory", spilled.1, whole.1);
        }
    }

    #[test]
    fn uri_at_walks_back_from_ordinals() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let mut entries = BTreeMap::new();
        for i in 0..3000u64 {
            let uri = format!("s://h/{}/{}{}", i % 13, "x".repeat((i % 5) as usize), i * 7919 % 3001).into_bytes();
            entries.insert(uri, (i, String::new(), body(i)));
        }
        entries.insert(b"s://h".to_vec(), (0, String::new(), body(0)));
        entries.insert(b"s://h/".to_vec(), (0, String::new(), body(0)));
        let seg = write(&storage, "seg-1.pdx", &entries);
        for (ord, uri) in entries.keys().enumerate() {
            assert_eq!(&seg.uri_at(ord as u32).unwrap(), uri);
        }
        assert!(matches!(seg.uri_at(entries.len() as u32), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn merged_postings_equal_a_fresh_analysis() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
        for i in 0..2000u64 {
            let uri = format!("u/{:05}", i * 37 % 2011).into_bytes();
            if i % 3 == 0 {
                b.insert(uri, (i, String::new(), body(i)));
            } else {
                a.insert(uri, (i, String::new(), body(i)));
            }
        }
        // Some URIs in both: b's version wins; and rows of a left out.
        for i in 0..300u64 {
            let uri = format!("u/{:05}", i * 37 % 2011).into_bytes();
            a.insert(uri, (i, String::new(), body(i + 5000)));
        }
        let (seg_a, seg_b) = (write(&storage, "a.pdx", &a), write(&storage, "b.pdx", &b));
        let mut merged = BTreeMap::new();
        let mut remap = vec![vec![u32::MAX; a.len()], vec![u32::MAX; b.len()]];
        let mut keep = Vec::new();
        for (ord, (uri, e)) in a.iter().enumerate() {
            if ord % 11 != 0 && !b.contains_key(uri) {
                merged.insert(uri.clone(), e.clone());
                keep.push((0, ord, uri.clone()));
            }
        }
        for (ord, (uri, e)) in b.iter().enumerate() {
            merged.insert(uri.clone(), e.clone());
            keep.push((1, ord, uri.clone()));
        }
        for (input, ord, uri) in keep {
            remap[input][ord] = merged.keys().position(|k| *k == uri).unwrap() as u32;
        }
        let remap = std::cell::RefCell::new(remap);
        let entries = |visit: &mut dyn FnMut(SegmentEntry<'_>) -> Result<()>| {
            for (uri, (serial, stamp, body)) in &merged {
                visit(SegmentEntry { uri, serial: *serial, stamp, body })?;
            }
            Ok(())
        };
        let terms = Terms::Merge { inputs: vec![&seg_a, &seg_b], remap: &remap, analysis: Analyzer::Exact };
        write_segment_with(&storage, "m.pdx", &entries, terms, TABLE_BYTES).unwrap();
        write_segment(&storage, "f.pdx", &entries).unwrap();
        let (m, f) = (Segment::open(&storage, "m.pdx").unwrap(), Segment::open(&storage, "f.pdx").unwrap());
        let want = dump(&f);
        assert!(want.0.len() == 2 && want.1.len() > 20, "the fixture has parts and terms");
        assert!(want.1.iter().any(|(k, _)| k.starts_with(b"wbody\0\xc3\xa9t\xc3\xa9")), "words are lower-cased");
        assert!(!want.1.iter().any(|(k, _)| k.starts_with(b"wblob")), "binary parts are not indexed");
        let (fresh, merged_positions) = (dump_with(&f), dump_with(&m));
        assert!(fresh.1.len() == want.1.iter().filter(|(k, _)| k[0] == WORD).count(), "every word has positions");
        assert_eq!(merged_positions, fresh, "the merge carries the positions with their rows");
        // Lookups by key, and a term the segment does not hold.
        let mut key = Vec::new();
        term_key(&mut key, META, "tag", "all");
        let all = f.postings(&key).unwrap().unwrap();
        assert_eq!(all.rows.len(), merged.values().filter(|e| e.0 % 4 == 0).count() as u64);
        term_key(&mut key, WORD, "body", "nope");
        assert!(f.postings(&key).unwrap().is_none());
    }

    /// What `tests/fixtures/segment-v3.pdx` holds (written by the version 3
    /// writer, before version 4): 240 documents with text parts, metas and
    /// a binary part.
    fn fixture_entries() -> Vec<(Vec<u8>, u64, String, Vec<u8>)> {
        entries_like_fixtures(240, 11, true)
    }

    /// `count` documents of up to `words - 1` words, a title every third,
    /// and (with `extras`) metas every fourth and a binary part every fifth.
    fn entries_like_fixtures(count: u64, words: u64, extras: bool) -> Vec<(Vec<u8>, u64, String, Vec<u8>)> {
        let vocabulary = ["alpha", "Beta", "gamma", "delta", "ÉTÉ", "x", "3.14", "don't"];
        let mut out = Vec::new();
        for i in 0..count {
            let uri = format!("file:///fixture/{}/{i:04}", i % 7).into_bytes();
            let text: Vec<&str> = (0..(i % words)).map(|k| vocabulary[((i * 7 + k * k) % 8) as usize]).collect();
            let mut doc = crate::document::Document::new("u").with_text("body", text.join(" "));
            if i % 3 == 0 {
                doc = doc.with_text("title", format!("Title {i} alpha"));
            }
            if extras && i % 4 == 0 {
                doc = doc.with_meta("tag", format!("t{}", i % 5)).with_meta("tag", "all");
            }
            if extras && i % 5 == 0 {
                doc = doc.with_part("blob", vec![i as u8; 40]);
            }
            out.push((uri, i * 3 + 1, format!("2024-03-{:02}", i % 28 + 1), doc.body().encode()));
        }
        out.sort();
        out
    }

    /// What `tests/fixtures/segment-v5.pdx` holds (written by the version 5
    /// writer, before version 6), and `segment-v6.pdx` (written by the
    /// version 6 writer, before version 7): 600 documents whose common words are in
    /// more than 128 rows (so that version 6 gives them impact blocks),
    /// with repeats and lengths that vary.
    fn v5_fixture_entries() -> Vec<(Vec<u8>, u64, String, Vec<u8>)> {
        entries_like_fixtures(600, 13, false)
    }

    /// Version 3's fixed footer (the previous version, still read): a file
    /// written by the version 3 writer opens, reads whole, and holds the
    /// same rows, URIs and inverted index as the same entries written now.
    #[test]
    fn a_version_3_segment_reads_as_it_was_written() {
        let v3 = include_bytes!("../../tests/fixtures/segment-v3.pdx");
        assert_eq!(&v3[v3.len() - v3::FOOTER_LEN..][..8], MAGIC, "a fixed version 3 footer");
        assert_eq!(parse_footer(v3).unwrap().version, 3);
        let storage = crate::storage::SimStorage::new("/idx");
        storage.write("old.pdx", v3);
        let entries = fixture_entries();
        write_segment(&storage, "new.pdx", &|visit| {
            for (uri, serial, stamp, body) in &entries {
                visit(SegmentEntry { uri, serial: *serial, stamp, body })?;
            }
            Ok(())
        })
        .unwrap();
        let (old, new) = (Segment::open(&storage, "old.pdx").unwrap(), Segment::open(&storage, "new.pdx").unwrap());
        assert_eq!((old.version(), new.version()), (3, VERSION));
        old.verify_all().unwrap();
        assert_eq!(old.rows(), entries.len() as u64);
        assert_eq!((old.min_serial(), old.max_serial()), (new.min_serial(), new.max_serial()));
        for (ord, (uri, serial, stamp, body)) in entries.iter().enumerate() {
            let ord = ord as u32;
            assert_eq!(old.ordinal(uri).unwrap(), Some(ord));
            assert_eq!(old.uri_at(ord).unwrap(), *uri);
            assert_eq!(old.row(ord).unwrap(), Row { serial: *serial, stamp, body });
        }
        assert_eq!(old.prefix_range(b"file:///fixture/3/").unwrap(), new.prefix_range(b"file:///fixture/3/").unwrap());
        let want = dump(&new);
        assert!(want.0.len() == 2 && want.1.len() > 10, "the fixture has parts and terms");
        assert_eq!(dump(&old), want);
        assert!(dump_with(&old).1.is_empty(), "no positions before version 5");
        // The sections before the postings are byte for byte the same but
        // the `uris` fst, which version 7 no longer writes (the postings have
        // gained the words' positions since).
        let new_bytes = storage.read("new.pdx").unwrap();
        let (f3, f7) = (parse_footer(v3).unwrap(), parse_footer(&new_bytes).unwrap());
        for s in [Section::Bodies, Section::Stamps, Section::Rows, Section::Bloom, Section::Names, Section::Norms] {
            let (old, new) = (f3.section(s), f7.section(s));
            assert_eq!(v3[old.start as usize..old.end as usize], new_bytes[new.start as usize..new.end as usize], "{s}");
        }
        assert!(!f3.section(Section::Uris).is_empty() && f7.section(Section::Uris).is_empty());
        // A merge of it analyses the bodies (it has no positions to carry
        // over): the result is the fresh analysis, positions included.
        let remap = std::cell::RefCell::new(vec![(0..old.rows() as u32).collect::<Vec<_>>()]);
        let terms = Terms::Merge { inputs: vec![&old], remap: &remap, analysis: Analyzer::Exact };
        write_segment_with(
            &storage,
            "merged.pdx",
            &|visit| {
                for (uri, serial, stamp, body) in &entries {
                    visit(SegmentEntry { uri, serial: *serial, stamp, body })?;
                }
                Ok(())
            },
            terms,
            TABLE_BYTES,
        )
        .unwrap();
        let merged = Segment::open(&storage, "merged.pdx").unwrap();
        assert_eq!(merged.version(), VERSION);
        assert_eq!(dump_with(&merged), dump_with(&new));
    }

    /// Visits `entries` in order, as a segment writer's source.
    fn visit_entries(entries: &[(Vec<u8>, u64, String, Vec<u8>)]) -> Box<Entries<'_>> {
        Box::new(move |visit| {
            for (uri, serial, stamp, body) in entries {
                visit(SegmentEntry { uri, serial: *serial, stamp, body })?;
            }
            Ok(())
        })
    }

    /// Fixture `bytes` of format `version` as `old.pdx`, beside what the
    /// writer makes of the same entries now as `new.pdx`; both verify.
    fn old_and_new(bytes: &[u8], version: u32, entries: &Entries<'_>) -> (crate::storage::SimStorage, Segment, Segment) {
        let storage = crate::storage::SimStorage::new("/idx");
        storage.write("old.pdx", bytes);
        write_segment(&storage, "new.pdx", entries).unwrap();
        let (old, new) = (Segment::open(&storage, "old.pdx").unwrap(), Segment::open(&storage, "new.pdx").unwrap());
        assert_eq!((old.version(), new.version()), (version, VERSION));
        old.verify_all().unwrap();
        new.verify_all().unwrap();
        (storage, old, new)
    }

    /// Version 5 (positions, no impacts), still read: a file written by the
    /// version 5 writer holds the same rows, inverted index and positions
    /// as the same entries written now, has no impacts, and a merge of it
    /// carries its postings over and adds them (checked by `verify_all`).
    #[test]
    fn a_version_5_segment_reads_as_it_was_written() {
        let entries = v5_fixture_entries();
        let visit_all = visit_entries(&entries);
        let (storage, old, new) =
            old_and_new(include_bytes!("../../tests/fixtures/segment-v5.pdx"), 5, &visit_all);
        let want = dump_with(&new);
        assert!(!want.1.is_empty(), "the fixture has positions");
        assert_eq!(dump_with(&old), want);
        // Impacts: none in version 5; in version 6 for every word, with
        // blocks for the words in more than 128 rows.
        let mut blocks = 0;
        let mut stream = new.terms().stream();
        while let Some((key, offset)) = stream.next() {
            let postings = new.postings_at(offset).unwrap();
            assert!(old.impacts(&old.postings(key).unwrap().unwrap()).unwrap().is_none());
            let mut impacts = new.impacts(&postings).unwrap().expect("version 6 has impacts");
            while impacts.next_block(&mut Vec::new()).unwrap().is_some() {
                blocks += 1;
            }
        }
        assert!(blocks > 0, "some word of the fixture is in more than 128 rows");
        let remap = std::cell::RefCell::new(vec![(0..old.rows() as u32).collect::<Vec<_>>()]);
        let terms = Terms::Merge { inputs: vec![&old], remap: &remap, analysis: Analyzer::Exact };
        write_segment_with(&storage, "merged.pdx", &visit_all, terms, TABLE_BYTES).unwrap();
        let merged = Segment::open(&storage, "merged.pdx").unwrap();
        merged.verify_all().unwrap();
        assert_eq!(dump_with(&merged), want);
        assert_eq!(storage.read("merged.pdx").unwrap(), storage.read("new.pdx").unwrap(), "the same file");
    }

    /// Version 6 (with the `uris` fst), still read: a file written by the
    /// version 6 writer (the entries of the version 5 fixture) verifies
    /// with its fst agreeing with its names, answers every lookup and range
    /// as the entries say, and merges into a file byte for byte the same as
    /// the entries written now, which has no fst. A version 7 file whose
    /// `uris` section is not empty is damage, as a version 6 file without
    /// one.
    #[test]
    fn a_version_6_segment_reads_as_it_was_written() {
        let v6 = include_bytes!("../../tests/fixtures/segment-v6.pdx");
        let entries = v5_fixture_entries();
        let visit_all = visit_entries(&entries);
        let (storage, old, new) = old_and_new(v6, 6, &visit_all);
        assert_eq!(dump_with(&old), dump_with(&new));
        let uris: Vec<&[u8]> = entries.iter().map(|(uri, ..)| uri.as_slice()).collect();
        let mut keys: Vec<Vec<u8>> = vec![Vec::new(), b"\xff".to_vec(), b"file:///fixture/".to_vec()];
        for uri in &uris {
            keys.push(uri.to_vec());
            keys.push([*uri, b"\0"].concat());
            keys.push(uri[..uri.len() - 1].to_vec());
        }
        for seg in [&old, &new] {
            for key in &keys {
                let at = uris.partition_point(|uri| *uri < key.as_slice()) as u32;
                assert_eq!(seg.lower_bound(key).unwrap(), at, "{key:?}");
                let want = uris.get(at as usize).is_some_and(|uri| uri == key).then_some(at);
                assert_eq!(seg.ordinal(key).unwrap(), want, "{key:?}");
            }
            let (prefix, start) = (b"file:///fixture/3/", b"file:///fixture/3/0200");
            let mut it = seg.names_in(prefix, start).unwrap();
            let mut got = Vec::new();
            while let Some(item) = it.next_entry() {
                got.push(item.unwrap().1);
            }
            let want: Vec<u32> = (0..uris.len() as u32)
                .filter(|&o| uris[o as usize].starts_with(prefix) && uris[o as usize] >= start.as_slice())
                .collect();
            assert!(want.len() > 10);
            assert_eq!(got, want);
        }
        let remap = std::cell::RefCell::new(vec![(0..old.rows() as u32).collect::<Vec<_>>()]);
        let terms = Terms::Merge { inputs: vec![&old], remap: &remap, analysis: Analyzer::Exact };
        write_segment_with(&storage, "merged.pdx", &visit_all, terms, TABLE_BYTES).unwrap();
        assert_eq!(storage.read("merged.pdx").unwrap(), storage.read("new.pdx").unwrap(), "the same file");
        // Each version's `uris` section where the other's is expected.
        let relabel = |bytes: &[u8], version: u32| {
            let mut b = bytes.to_vec();
            let at = b.len() - v4::TRAILER_LEN + v4::VERSION_AT;
            b[at..][..4].copy_from_slice(&version.to_le_bytes());
            reseal_footer(&mut b);
            open_bytes(&b)
        };
        match relabel(v6, NO_URIS_VERSION) {
            Err(Error::Corrupt { detail, .. }) => assert!(detail.contains("not empty"), "{detail}"),
            other => panic!("{other:?}"),
        }
        match relabel(&storage.read("new.pdx").unwrap(), NO_URIS_VERSION - 1) {
            Err(Error::Corrupt { detail, .. }) => assert!(detail.contains("not an fst"), "{detail}"),
            other => panic!("{other:?}"),
        }
    }

    /// Positions are each word's index among the words of its part, per
    /// row, in the order of the text; a repeated word has each of its.
    #[test]
    fn positions_are_the_words_indexes_in_their_part() {
        let storage = crate::storage::SimStorage::new("/idx");
        let texts = ["a b a c a", "c c", "b"];
        let entries: Vec<(Vec<u8>, Vec<u8>)> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let doc = crate::document::Document::new("u").with_text("body", *t).with_text("title", "x a");
                (format!("u/{i}").into_bytes(), doc.body().encode())
            })
            .collect();
        write_segment(&storage, "s.pdx", &|visit| {
            for (uri, body) in &entries {
                visit(SegmentEntry { uri, serial: 1, stamp: "", body })?;
            }
            Ok(())
        })
        .unwrap();
        let seg = Segment::open(&storage, "s.pdx").unwrap();
        let (_, positions) = dump_with(&seg);
        let of = |key: &[u8]| positions.iter().find(|(k, _)| k == key).map(|(_, p)| p.clone()).unwrap();
        assert_eq!(of(b"wbody\0a"), vec![(0, vec![0, 2, 4])]);
        assert_eq!(of(b"wbody\0c"), vec![(0, vec![3]), (1, vec![0, 1])]);
        assert_eq!(of(b"wbody\0b"), vec![(0, vec![1]), (2, vec![0])]);
        assert_eq!(of(b"wtitle\0a"), vec![(0, vec![1]), (1, vec![1]), (2, vec![1])]);
    }

    /// A changed byte of the positions, behind good checksums (a forged
    /// file), is `Corrupt` from `verify_all`, never a panic.
    #[test]
    fn damaged_positions_are_corrupt() {
        let bytes = written(60);
        let storage = crate::storage::SimStorage::new("/idx");
        storage.write("s.pdx", &bytes);
        let seg = Segment::open(&storage, "s.pdx").unwrap();
        seg.verify_all().unwrap();
        // Where the positions of each word are.
        let footer = parse_footer(&bytes).unwrap();
        let base = footer.section(Section::Postings).start as usize;
        let mut spans = Vec::new();
        let mut stream = seg.terms().stream();
        while let Some((_, offset)) = stream.next() {
            let len = postings::column_len(&bytes[base + offset as usize..]).unwrap();
            spans.push(base + offset as usize + len);
        }
        drop(stream);
        let mut refused = 0;
        for (i, &at) in spans.iter().enumerate().step_by(3) {
            // The length byte, and the first position.
            for (at, flip) in [(at, 0x01u8), (at + 1, 0x7f), (at, 0x80)] {
                let mut b = bytes.clone();
                b[at] ^= flip;
                reseal(&mut b).unwrap();
                let result = open_bytes(&b).and_then(|seg| seg.verify_all());
                match result {
                    Err(Error::Corrupt { .. }) => refused += 1,
                    Ok(()) => {}
                    Err(e) => panic!("word {i}: {e}"),
                }
            }
        }
        assert!(refused > spans.len() / 3, "most flips are found: {refused} of {}", 3 * spans.len().div_ceil(3));
    }

    /// The bytes of a segment of `n` small documents.
    fn written(n: u64) -> Vec<u8> {
        let storage = crate::storage::SimStorage::new("/idx");
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..n).map(|i| (format!("u/{i:03}").into_bytes(), body(i))).collect();
        write_segment(&storage, "s.pdx", &|visit| {
            for (i, (uri, body)) in entries.iter().enumerate() {
                visit(SegmentEntry { uri, serial: i as u64 + 1, stamp: "s", body })?;
            }
            Ok(())
        })
        .unwrap();
        storage.read("s.pdx").unwrap()
    }

    #[test]
    fn names_out_of_order_are_corrupt_to_a_merge() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let entries: BTreeMap<Vec<u8>, (u64, String, Vec<u8>)> =
            (0..40u64).map(|i| (format!("k{i:03}").into_bytes(), (i + 1, "s".to_string(), Vec::new()))).collect();
        write(&storage, "s.pdx", &entries);
        let mut bytes = std::fs::read(dir.path().join("s.pdx")).unwrap();
        // The second block's first URI, written whole: `k016` becomes
        // `k010`, below the first block's last, behind valid checksums.
        let names = parse_footer(&bytes).unwrap().section(Section::Names);
        let (start, end) = (names.start as usize, names.end as usize);
        let at = start + bytes[start..end].windows(4).position(|w| w == b"k016").expect("k016 is whole") + 3;
        bytes[at] = b'0';
        reseal(&mut bytes).unwrap();
        let seg = open_bytes(&bytes).unwrap();
        let mut names = seg.names();
        for ordinal in 0..16 {
            assert_eq!(names.next_entry().unwrap().unwrap().1, ordinal);
        }
        match names.next_entry() {
            Some(Err(Error::Corrupt { detail, .. })) => assert!(detail.contains("out of order"), "{detail}"),
            other => panic!("{other:?}"),
        }
        assert!(names.next_entry().is_none(), "nothing after the damage");
    }

    fn open_bytes(bytes: &[u8]) -> Result<Segment> {
        let storage = crate::storage::SimStorage::new("/idx");
        storage.write("s.pdx", bytes);
        Segment::open(&storage, "s.pdx")
    }

    /// Rewrites the footer crcs of version 4 file `bytes` after an edit of
    /// its footer.
    fn reseal_footer(bytes: &mut [u8]) {
        let len = bytes.len();
        let t = len - v4::TRAILER_LEN;
        let crc = crc32c::crc32c(&bytes[t..t + v4::TRAILER_CRC_AT]);
        bytes[t + v4::TRAILER_CRC_AT..][..4].copy_from_slice(&crc.to_le_bytes());
        let footer_len = format::le_u32(bytes, t + v4::FOOTER_LEN_AT) as usize;
        let crc = crc32c::crc32c(&bytes[len - footer_len..len - 4]);
        bytes[len - 4..].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn the_table_of_contents_is_checked_entry_by_entry() {
        let bytes = written(40);
        let footer = parse_footer(&bytes).unwrap();
        assert_eq!((footer.version, footer.len), (VERSION, v4::FOOTER_LEN));
        assert!(open_bytes(&bytes).is_ok());
        let toc = bytes.len() - v4::FOOTER_LEN + v4::HEAD_LEN;
        let entry = |e: usize| toc + v4::TOC_ENTRY_LEN * e;
        let corrupt = |bytes: &[u8], what: &str| match open_bytes(bytes) {
            Err(Error::Corrupt { detail, .. }) => assert!(detail.contains(what), "{what}: {detail}"),
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        };
        // An id this version does not know (a later version's section).
        let mut b = bytes.clone();
        b[entry(3)..][..4].copy_from_slice(&99u32.to_le_bytes());
        reseal_footer(&mut b);
        corrupt(&b, "section id 99");
        // A section listed twice, so another is missing.
        let mut b = bytes.clone();
        b[entry(3)..][..4].copy_from_slice(&Section::Bodies.id().to_le_bytes());
        reseal_footer(&mut b);
        corrupt(&b, "twice");
        // One entry fewer: the last section goes missing... the count and
        // the room disagree unless the footer shrinks too.
        let mut b = bytes.clone();
        let count_at = bytes.len() - v4::FOOTER_LEN + v4::ENTRIES_AT;
        b[count_at..][..4].copy_from_slice(&11u32.to_le_bytes());
        reseal_footer(&mut b);
        corrupt(&b, "room for 12");
        // A section moved: no longer right after the one before.
        let mut b = bytes.clone();
        let off = format::le_u64(&b, entry(2) + v4::ENTRY_OFFSET_AT) + 1;
        b[entry(2) + v4::ENTRY_OFFSET_AT..][..8].copy_from_slice(&off.to_le_bytes());
        reseal_footer(&mut b);
        corrupt(&b, "out of place");
        // Flags this version does not define.
        let mut b = bytes.clone();
        b[bytes.len() - v4::FOOTER_LEN + v4::FLAGS_AT] = 1;
        reseal_footer(&mut b);
        corrupt(&b, "flags");
        // A footer length that is not a whole number of entries.
        let mut b = bytes.clone();
        let at = bytes.len() - v4::TRAILER_LEN + v4::FOOTER_LEN_AT;
        b[at..][..4].copy_from_slice(&(v4::FOOTER_LEN as u32 + 1).to_le_bytes());
        reseal_footer(&mut b);
        assert!(matches!(open_bytes(&b), Err(Error::Corrupt { .. })));
        // A flipped version byte without a new trailer crc is damage.
        let mut b = bytes.clone();
        b[bytes.len() - v4::TRAILER_LEN + v4::VERSION_AT] ^= 1;
        corrupt(&b, "trailer crc32c");
        // Every cut of the footer is damage, never a panic.
        for cut in 1..=v4::FOOTER_LEN {
            assert!(matches!(open_bytes(&bytes[..bytes.len() - cut]), Err(Error::Corrupt { .. })), "cut {cut}");
        }
    }

    #[test]
    fn a_version_outside_the_supported_range_is_unsupported() {
        let bytes = written(10);
        for found in [VERSION + 1, u32::MAX, OLDEST_VERSION - 1, 0] {
            let mut b = bytes.clone();
            let at = b.len() - v4::TRAILER_LEN + v4::VERSION_AT;
            b[at..][..4].copy_from_slice(&found.to_le_bytes());
            reseal_footer(&mut b);
            match open_bytes(&b) {
                Err(Error::UnsupportedVersion { found: f, supported, .. }) => {
                    assert_eq!((f, supported), (found, (OLDEST_VERSION, VERSION)))
                }
                other => panic!("version {found}: {other:?}"),
            }
        }
        // In version 3's fixed footer too.
        let mut v3 = include_bytes!("../../tests/fixtures/segment-v3.pdx").to_vec();
        let f = v3.len() - v3::FOOTER_LEN;
        v3[f + v3::VERSION_AT..][..4].copy_from_slice(&(VERSION + 1).to_le_bytes());
        let crc = crc32c::crc32c(&v3[f..f + v3::CRC_AT]);
        v3[f + v3::CRC_AT..][..4].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(open_bytes(&v3), Err(Error::UnsupportedVersion { found, .. }) if found == VERSION + 1));
    }

    use super::corpus;

    /// What positions cost: a segment of the bench corpus (20-word texts,
    /// Zipf-skewed over 5000 words), its `postings` section and the bytes
    /// of positions in it (a version 4 file is the same less those).
    /// `cargo test --lib measure_positions -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn measure_positions() {
        let storage = crate::storage::SimStorage::new("/idx");
        let n = 20_000u64;
        let entries: Vec<(Vec<u8>, Vec<u8>)> = {
            let mut e: Vec<_> = (0..n)
                .map(|i| {
                    let doc = crate::document::Document::new("u").with_text("body", corpus::text(i));
                    (corpus::uri(i).into_bytes(), doc.body().encode())
                })
                .collect();
            e.sort();
            e
        };
        write_segment(&storage, "s.pdx", &|visit| {
            for (uri, body) in &entries {
                visit(SegmentEntry { uri, serial: 1, stamp: "s", body })?;
            }
            Ok(())
        })
        .unwrap();
        let bytes = storage.read("s.pdx").unwrap();
        let seg = Segment::open(&storage, "s.pdx").unwrap();
        let footer = parse_footer(&bytes).unwrap();
        let base = footer.section(Section::Postings).start as usize;
        let mut positions = 0usize;
        let mut stream = seg.terms().stream();
        while let Some((_, offset)) = stream.next() {
            let at = base + offset as usize;
            let end = at + postings::column_len(&bytes[at..]).unwrap();
            let mut skip = 0;
            let len = crate::record::get_varint(&bytes[end..], &mut skip).unwrap() as usize;
            positions += skip + len;
        }
        let postings = footer.section_len(Section::Postings) as usize;
        println!(
            "{n} documents: file {} bytes, postings {postings} bytes of which positions {positions}; \
             without positions (version 4): file {}, postings {}",
            bytes.len(),
            bytes.len() - positions,
            postings - positions
        );
    }
}
