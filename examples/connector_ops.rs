//! Instruction counts of a connector's three everyday operations on 100,000
//! documents (issue 17's callgrind baselines): `push` them 1,000 per
//! `add_all`, then `sync`; 100,000 `status` `lookups`, 90% of them present;
//! `enumerate` the folder that holds all of them (`RecursiveDocuments`)
//! with the `Enumeration` iterator, or with `Index::enumerate_with`'s
//! borrowing walk (`enumerate_with`); the work a bulk push waits on, one
//! `flush` of the 100,000 documents into a segment (`Index::refresh`); and
//! a `reopen` of the index followed by one lookup (the comparison's row 7).
//! The documents are `benches/compare`'s synthetic share at 100k, from the
//! harness's own data module, generated from their number: the same bytes
//! on every run. `flush` pushes them with the harness's eight metas; the
//! other modes keep three of them (author, MIME type, size).
//!
//! ```text
//! connector_ops push|flush|lookups|enumerate|enumerate_with|reopen DIR
//! ```
//!
//! `push` builds the index in DIR afresh (an index left there by an earlier
//! run is removed, anything else refused) and closes it, which flushes it
//! into one segment; the other modes reuse that index when DIR holds it
//! and build it first otherwise. Each mode runs its measured part in its
//! own `#[inline(never)] fn measured_<mode>`, apart from the setup
//! (generating documents and URIs, opening, building), so that callgrind
//! can count that part alone:
//!
//! ```text
//! cargo build --release --example connector_ops
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*connector_ops*measured_push*' \
//!     target/release/examples/connector_ops push /tmp/connector-ops
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*connector_ops*measured_lookups*' \
//!     target/release/examples/connector_ops lookups /tmp/connector-ops
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*connector_ops*measured_enumerate*' \
//!     target/release/examples/connector_ops enumerate /tmp/connector-ops
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*connector_ops*measured_enumerate_with*' \
//!     target/release/examples/connector_ops enumerate_with /tmp/connector-ops
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*connector_ops*measured_flush*' \
//!     target/release/examples/connector_ops flush /tmp/connector-flush
//! ```
//!
//! The `summary:` line of each `callgrind.out.<pid>` (or the `PROGRAM
//! TOTALS` of `callgrind_annotate`) is the count. The index's background
//! threads do next to nothing meanwhile (`--separate-threads=yes` shows
//! under 10,000 instructions each): 100,000 of these documents stay under
//! the default memtable threshold, so pushing them starts no flush (`flush`
//! opens its index with a 1 GiB one, for the eight metas). The
//! program prints what each phase found, so a run that measured the wrong
//! thing shows.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use pushdex::{Document, Entry, EntryRef, EnumerationMode, Index, Options};

#[path = "common/share.rs"]
mod share;

use share::data::{mix, Share};
use share::{clear, document};

/// What `share::data` returns its errors as (the harness's `Res`).
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Documents in the index.
const DOCS: u64 = 100_000;
/// Documents per `add_all`.
const BATCH: u64 = 1_000;
/// Status lookups.
const LOOKUPS: u64 = 100_000;
/// The folder that holds every document.
const SHARE: &str = "file:///srv/share/";

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: connector_ops push|flush|lookups|enumerate|enumerate_with|reopen DIR";
    let mode = args.next().expect(usage);
    let dir = args.next().unwrap_or_else(|| "/tmp/connector-ops".into());
    let dir = Path::new(&dir);
    match mode.as_str() {
        "push" => {
            let batches = batches();
            let index = fresh(dir);
            let start = Instant::now();
            let serial = measured_push(&index, batches);
            eprintln!("pushed {serial} documents and synced in {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
            index.close().unwrap();
        }
        "lookups" => {
            let uris: Vec<String> = (0..LOOKUPS).map(lookup_uri).collect();
            let index = built(dir);
            let start = Instant::now();
            let found = measured_lookups(&index, &uris);
            eprintln!(
                "{found} of {LOOKUPS} lookups found (expected 90%) in {:.1} ms",
                start.elapsed().as_secs_f64() * 1e3
            );
            assert!(found > LOOKUPS * 85 / 100 && found < LOOKUPS * 95 / 100);
        }
        "enumerate" => {
            let index = built(dir);
            let start = Instant::now();
            let (count, bytes) = measured_enumerate(&index);
            eprintln!("enumerated {count} entries ({bytes} bytes) in {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
            assert_eq!(count, DOCS);
        }
        "enumerate_with" => {
            let index = built(dir);
            let start = Instant::now();
            let (count, bytes) = measured_enumerate_with(&index);
            eprintln!("enumerated {count} entries ({bytes} bytes) in {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
            assert_eq!(count, DOCS);
        }
        "flush" => {
            // Room for all of them, so that no background flush takes a
            // part before the measured one.
            let index = fresh_with(dir, Options::default().memtable_bytes(1 << 30));
            for batch in batches_of(full_doc) {
                index.add_all(batch).unwrap();
            }
            let start = Instant::now();
            let searchable = measured_flush(&index);
            eprintln!("flushed {searchable} documents in {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
            assert_eq!(searchable, DOCS);
            index.close().unwrap();
        }
        "reopen" => {
            built(dir).close().unwrap();
            let uri = lookup_uri(1);
            let start = Instant::now();
            let found = measured_reopen(dir, &uri);
            eprintln!("reopened and looked up {uri} (found: {found}) in {:.2} ms", start.elapsed().as_secs_f64() * 1e3);
        }
        _ => panic!("{usage}"),
    }
}

#[inline(never)]
fn measured_push(index: &Index, batches: Vec<Vec<Document>>) -> u64 {
    for batch in batches {
        index.add_all(batch).unwrap();
    }
    index.sync().unwrap().0
}

/// Makes every document searchable: one flush of the memtable into a
/// segment, in this thread.
#[inline(never)]
fn measured_flush(index: &Index) -> u64 {
    index.refresh().unwrap().0
}

/// Opens the index in `dir` and looks `uri` up (the comparison's row 7).
#[inline(never)]
fn measured_reopen(dir: &Path, uri: &str) -> bool {
    let index = Index::open(dir).unwrap();
    let found = index.status(uri).unwrap().exists();
    // Left open (and its threads running) until the process exits: closing
    // is not part of what is measured.
    std::mem::forget(index);
    found
}

#[inline(never)]
fn measured_lookups(index: &Index, uris: &[String]) -> u64 {
    let mut found = 0;
    for uri in uris {
        found += u64::from(index.status(uri).unwrap().exists());
    }
    found
}

/// Counts the entries and their URI and stamp bytes (so that both are read).
#[inline(never)]
fn measured_enumerate(index: &Index) -> (u64, usize) {
    let (mut count, mut bytes) = (0, 0);
    for entry in index.enumerate(SHARE, EnumerationMode::RecursiveDocuments).unwrap() {
        if let Entry::Document(status) = entry.unwrap() {
            count += 1;
            bytes += status.uri.len() + status.stamp.len();
        }
    }
    (count, bytes)
}

/// [`measured_enumerate`] with the borrowing walk.
#[inline(never)]
fn measured_enumerate_with(index: &Index) -> (u64, usize) {
    let (mut count, mut bytes) = (0, 0);
    let walked = index.enumerate_with(SHARE, EnumerationMode::RecursiveDocuments, |entry| {
        if let EntryRef::Document(doc) = entry {
            count += 1;
            bytes += doc.uri.len() + doc.stamp.len();
        }
        ControlFlow::<()>::Continue(())
    });
    assert!(walked.unwrap().is_continue());
    (count, bytes)
}

/// An empty index in `dir`: an index left there is removed, anything else
/// refused.
fn fresh(dir: &Path) -> Index {
    fresh_with(dir, Options::default())
}

fn fresh_with(dir: &Path, options: Options) -> Index {
    clear(dir).unwrap();
    Index::open_with(dir, options).unwrap()
}

/// The index of the 100k documents, built (and closed, so flushed into one
/// segment) unless `dir` holds it already.
fn built(dir: &Path) -> Index {
    if dir.join("MANIFEST").exists() {
        let index = Index::open(dir).unwrap();
        if index.count(SHARE, EnumerationMode::RecursiveDocuments).unwrap() == DOCS {
            return index;
        }
        index.close().unwrap();
    }
    let index = fresh(dir);
    for batch in batches() {
        index.add_all(batch).unwrap();
    }
    index.close().unwrap();
    Index::open(dir).unwrap()
}

fn batches() -> Vec<Vec<Document>> {
    batches_of(doc)
}

fn batches_of(doc: fn(u64) -> Document) -> Vec<Vec<Document>> {
    (0..DOCS / BATCH).map(|b| (b * BATCH..(b + 1) * BATCH).map(doc).collect()).collect()
}

/// The share of 100,000 documents (10 in each leaf folder).
fn share() -> Share {
    let share = Share::with_about(DOCS);
    assert_eq!(share.len(), DOCS);
    share
}

/// The `k`-th document in push order: `benches/compare`'s `Share::doc`
/// with three of its eight metas (author, MIME type, size), the documents
/// of the `push`, `lookups` and `enumerate` baselines.
fn doc(k: u64) -> Document {
    let keep = ["author", "mimetype", "size"];
    document(share().doc(k), |name| keep.contains(&name))
}

/// The `k`-th document with all eight metas, as `benches/compare` pushes
/// it (the `flush` mode).
fn full_doc(k: u64) -> Document {
    document(share().doc(k), |_| true)
}

/// The URI of the `i`-th lookup: one in ten is a URI in a real folder that
/// no document has (as `benches/compare`'s row 3).
fn lookup_uri(i: u64) -> String {
    let h = mix(i ^ 0x5eed);
    let share = share();
    if h.is_multiple_of(10) {
        share.missing((h >> 8) % DOCS)
    } else {
        share.doc((h >> 8) % DOCS).uri
    }
}
