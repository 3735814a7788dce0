//! The core write and read paths: add without sync, add_all + sync per 1000,
//! status lookups, and a raw-prefix deletion of a 10k-document subtree.
//!
//! `cargo bench --bench push`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pushdex::{Document, Index};

/// A file-share-shaped URI: ~70 bytes, 10 files per folder, 100 folders per level.
fn uri(i: u64) -> String {
    format!("file:///share/projects/p{:03}/reports/r{:03}/doc{:05}.txt", i / 100_000, (i / 10) % 1000, i)
}

fn doc(i: u64) -> Document {
    Document::new(uri(i)).with_stamp(format!("2024-03-15T10:00:{:02}Z", i % 60))
}

fn add_without_sync(c: &mut Criterion) {
    let mut g = c.benchmark_group("add");
    g.throughput(Throughput::Elements(1));
    g.bench_function("small document, no sync", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            let index = Index::open(dir.path()).unwrap();
            let docs: Vec<Document> = (0..iters).map(doc).collect();
            let start = Instant::now();
            for d in docs {
                black_box(index.add(d).unwrap());
            }
            let took = start.elapsed();
            drop(index);
            took
        })
    });
    g.finish();
}

fn add_all_and_sync(c: &mut Criterion) {
    let mut g = c.benchmark_group("add_all");
    g.throughput(Throughput::Elements(1000));
    g.sample_size(20);
    g.bench_function("1000 documents + sync", |b| {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let mut next = 0u64;
        b.iter_batched(
            || {
                let batch: Vec<Document> = (next..next + 1000).map(doc).collect();
                next += 1000;
                batch
            },
            |batch| {
                index.add_all(batch).unwrap();
                index.sync().unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn status_lookups(c: &mut Criterion) {
    const N: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    for chunk in (0..N).collect::<Vec<_>>().chunks(10_000) {
        index.add_all(chunk.iter().map(|&i| doc(i))).unwrap();
    }
    index.sync().unwrap();
    let probes: Vec<String> = (0..1024u64).map(|i| uri(i.wrapping_mul(2_654_435_761) % N)).collect();
    let mut g = c.benchmark_group("status");
    g.throughput(Throughput::Elements(1));
    g.bench_function("hit, 200k documents", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % probes.len();
            black_box(index.status(&probes[i]).unwrap())
        })
    });
    g.bench_function("miss, 200k documents", |b| {
        b.iter(|| black_box(index.status("file:///share/projects/p999/none.txt").unwrap()))
    });
    g.finish();
}

fn delete_prefix(c: &mut Criterion) {
    let mut g = c.benchmark_group("delete_with_prefix");
    g.sample_size(20);
    g.bench_function("10k-document subtree of 110k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let index = Index::open(dir.path()).unwrap();
                // p000 holds documents 0..100k, p001 the 10k documents
                // 100k..110k: the subtree deleted.
                let ids: Vec<u64> = (0..110_000).collect();
                for chunk in ids.chunks(10_000) {
                    index.add_all(chunk.iter().map(|&i| doc(i))).unwrap();
                }
                let start = Instant::now();
                black_box(index.delete_with_prefix("file:///share/projects/p001/").unwrap());
                total += start.elapsed();
                assert_eq!(index.count("", pushdex::EnumerationMode::RecursiveDocuments).unwrap(), 100_000);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, add_without_sync, add_all_and_sync, status_lookups, delete_prefix);
criterion_main!(benches);
