//! Each component on its own: the radix trie (insert, get, prefix removal),
//! the log (append, write-out + fsync), a segment (point lookup, prefix
//! range), enumeration over segments and memtable, `refresh()`, and search
//! (analysis at flush, one-word and two-word queries, counts).
//!
//! `cargo bench --bench components`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pushdex::segment::{self, Segment, SegmentEntry};
use pushdex::storage::FsStorage;
use pushdex::trie::Trie;
use pushdex::wal::WalWriter;
use pushdex::{Document, EnumerationMode, Index, Options, Query};

mod corpus;
use corpus::{text, uri};

/// A fixed pseudo-random order of `0..n`, so lookups do not walk in key order.
fn shuffled(n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn trie(c: &mut Criterion) {
    const N: u64 = 100_000;
    let keys: Vec<String> = shuffled(N).into_iter().map(uri).collect();
    let mut g = c.benchmark_group("trie");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.bench_function("insert 100k", |b| {
        b.iter(|| {
            let mut t = Trie::new();
            for (i, k) in keys.iter().enumerate() {
                t.insert(k.as_bytes(), i);
            }
            t
        })
    });
    let mut full = Trie::new();
    for (i, k) in keys.iter().enumerate() {
        full.insert(k.as_bytes(), i);
    }
    g.bench_function("get 100k (hits)", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(full.get(k.as_bytes()));
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("remove_prefix of a 10k subtree (of 100k)", |b| {
        b.iter_batched(
            || full.clone(),
            |mut t| {
                black_box(t.remove_prefix(b"file:///share/projects/p000/reports/r1"));
                t
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn log(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path()).unwrap();
    let mut wal = WalWriter::create(&storage, 1).unwrap();
    let payload = vec![7u8; 120];
    let mut g = c.benchmark_group("log");
    g.throughput(Throughput::Elements(1));
    let mut serial = 0;
    g.bench_function("append a 120-byte frame", |b| {
        b.iter(|| {
            serial += 1;
            wal.append(serial, 1, |buf| buf.extend_from_slice(&payload));
            if wal.buffer_len() > 1 << 20 {
                wal.write_out().unwrap();
            }
        })
    });
    g.bench_function("write out 100 frames + fdatasync", |b| {
        b.iter(|| {
            for _ in 0..100 {
                serial += 1;
                wal.append(serial, 1, |buf| buf.extend_from_slice(&payload));
            }
            wal.write_out().unwrap();
            wal.file().sync().unwrap();
        })
    });
    g.finish();
}

fn segment_reads(c: &mut Criterion) {
    const N: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path()).unwrap();
    let uris: Vec<String> = (0..N).map(uri).collect();
    let mut sorted = uris.clone();
    sorted.sort();
    let body = vec![3u8; 60];
    segment::write_segment(&storage, "seg-1.pdx", &|visit| {
        for (i, u) in sorted.iter().enumerate() {
            visit(SegmentEntry {
                uri: u.as_bytes(),
                serial: i as u64 + 1,
                stamp: "2024-03-15T10:00:00Z",
                body: &body,
            })?;
        }
        Ok(())
    })
    .unwrap();
    let seg = Arc::new(Segment::open(&storage, "seg-1.pdx").unwrap());
    let order: Vec<&String> = shuffled(N).into_iter().map(|i| &uris[i as usize]).collect();
    let mut g = c.benchmark_group("segment");
    g.throughput(Throughput::Elements(1));
    let mut at = 0;
    g.bench_function("ordinal + row, hit (200k rows)", |b| {
        b.iter(|| {
            at = (at + 1) % order.len();
            let ord = seg.ordinal(order[at].as_bytes()).unwrap().unwrap();
            black_box(seg.row(ord).unwrap().serial)
        })
    });
    g.bench_function("ordinal, miss", |b| {
        b.iter(|| black_box(seg.ordinal(b"file:///share/projects/p001/reports/r555/nothing.txt").unwrap()))
    });
    g.bench_function("prefix_range of a 10k subtree", |b| {
        b.iter(|| black_box(seg.prefix_range(b"file:///share/projects/p000/reports/r1").unwrap()))
    });
    g.finish();
}

/// An index of 200k documents: three segments (one refresh each) and a
/// memtable of 20k.
fn filled_index(dir: &std::path::Path) -> Index {
    let index = Index::open_with(dir, Options::default()).unwrap();
    for wave in 0..4u64 {
        let docs = (wave * 50_000..(wave + 1) * 50_000).map(|i| Document::new(uri(i)).with_stamp("s"));
        index.add_all(docs.collect::<Vec<_>>()).unwrap();
        if wave < 3 {
            index.refresh().unwrap();
        }
    }
    index
}

fn enumerate(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let index = filled_index(dir.path());
    let mut g = c.benchmark_group("enumerate");
    g.sample_size(20);
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("a 10k subtree over 3 segments + memtable", |b| {
        b.iter(|| {
            let n = index
                .enumerate("file:///share/projects/p000/reports/", EnumerationMode::RecursiveDocuments)
                .unwrap()
                .take(10_000)
                .count();
            black_box(n)
        })
    });
    g.throughput(Throughput::Elements(200_000));
    g.bench_function("count of 200k", |b| {
        b.iter(|| black_box(index.count("", EnumerationMode::RecursiveDocuments).unwrap()))
    });
    g.finish();
}

fn refresh(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let index = filled_index(dir.path());
    index.refresh().unwrap();
    let mut g = c.benchmark_group("refresh");
    g.sample_size(20);
    let mut next = 1_000_000u64;
    g.bench_function("one new document on a 200k index", |b| {
        b.iter(|| {
            next += 1;
            index.add(Document::new(uri(next)).with_stamp("s")).unwrap();
            index.refresh().unwrap()
        })
    });
    g.finish();
}

fn search(c: &mut Criterion) {
    let mut g = c.benchmark_group("search");
    g.sample_size(10);
    g.throughput(Throughput::Elements(20_000));
    g.bench_function("analyse and flush 20k documents of 20 words", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let index = Index::open(dir.path()).unwrap();
                let docs: Vec<Document> =
                    (0..20_000).map(|i| Document::new(uri(i)).with_stamp("s").with_text("body", text(i))).collect();
                index.add_all(docs).unwrap();
                (dir, index)
            },
            |(dir, index)| {
                index.refresh().unwrap();
                (dir, index)
            },
            BatchSize::PerIteration,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    for wave in 0..4u64 {
        let docs = (wave * 50_000..(wave + 1) * 50_000)
            .map(|i| Document::new(uri(i)).with_stamp("s").with_text("body", text(i)));
        index.add_all(docs.collect::<Vec<_>>()).unwrap();
        index.refresh().unwrap();
    }
    g.throughput(Throughput::Elements(1));
    let word = |w: &str| Query::Text { field: None, text: w.to_string() };
    g.bench_function("one word (in ~1% of 200k), top 10", |b| {
        b.iter(|| black_box(index.search(&word("w40"), 10).unwrap()))
    });
    let both = Query::And(vec![word("w3"), word("w20")]);
    g.bench_function("two words AND, top 10", |b| b.iter(|| black_box(index.search(&both, 10).unwrap())));
    g.bench_function("count of a common word", |b| b.iter(|| black_box(index.search_count(&word("w0")).unwrap())));
    g.finish();
}

/// Facet counts over a million hits against the query that finds them:
/// counting is a few roaring intersections per meta value, well under
/// scoring the hits (API.md: facet counts are over every hit).
fn facets(c: &mut Criterion) {
    const DOCS: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    for wave in 0..DOCS / 100_000 {
        let docs = (wave * 100_000..(wave + 1) * 100_000).map(|i| {
            Document::new(uri(i))
                .with_stamp("s")
                .with_meta("dept", format!("d{:02}", i % 97))
                .with_meta("year", format!("{}", 2020 + i % 5))
                .with_meta("author", format!("a{:04}", (i * 7919) % 1000))
                .with_text("body", format!("{} common", text(i)))
        });
        index.add_all(docs.collect::<Vec<_>>()).unwrap();
    }
    index.refresh().unwrap();
    let mut g = c.benchmark_group("facets");
    g.sample_size(10);
    let common = Query::Text { field: None, text: "common".into() };
    assert_eq!(index.search_count(&common).unwrap(), DOCS);
    g.bench_function("a word in all of 1M documents, top 10", |b| {
        b.iter(|| black_box(index.search(&common, 10).unwrap()))
    });
    let counted =
        pushdex::SearchOptions { facets: vec!["dept".into(), "year".into(), "author".into()], ..Default::default() };
    g.bench_function("the same, top 10 and facets by 3 metas (1,102 values) over the 1M hits", |b| {
        b.iter(|| black_box(index.search_with(&common, &counted).unwrap()))
    });
    g.bench_function("facets alone: by 3 metas over all 1M documents (Query::All, no scoring)", |b| {
        b.iter(|| black_box(index.search_with(&Query::All, &counted).unwrap()))
    });
    g.bench_function("Query::All, top 10", |b| b.iter(|| black_box(index.search(&Query::All, 10).unwrap())));
    g.finish();
    index.close().unwrap();
}

criterion_group!(benches, trie, log, segment_reads, enumerate, refresh, search, facets);
criterion_main!(benches);
