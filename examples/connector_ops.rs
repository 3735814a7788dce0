//! Instruction counts of a connector's three everyday operations on 100,000
//! documents (issue 17's callgrind baselines): `push` them 1,000 per
//! `add_all`, then `sync`; 100,000 `status` `lookups`, 90% of them present;
//! `enumerate` the folder that holds all of them (`RecursiveDocuments`)
//! with the `Enumeration` iterator, or with `Index::enumerate_with`'s
//! borrowing walk (`enumerate_with`).
//! The documents are `benches/compare`'s synthetic share at 100k (its URIs
//! and stamps, fewer metas), generated from their number: the same bytes on
//! every run.
//!
//! ```text
//! connector_ops push|lookups|enumerate|enumerate_with DIR
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
//! ```
//!
//! The `summary:` line of each `callgrind.out.<pid>` (or the `PROGRAM
//! TOTALS` of `callgrind_annotate`) is the count. The index's background
//! threads do next to nothing meanwhile (`--separate-threads=yes` shows
//! under 10,000 instructions each): 100,000 of these documents stay under
//! the default memtable threshold, so pushing them starts no flush. The
//! program prints what each phase found, so a run that measured the wrong
//! thing shows.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use pushdex::{Document, Entry, EntryRef, EnumerationMode, Index};

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
    let usage = "usage: connector_ops push|lookups|enumerate|enumerate_with DIR";
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
    if dir.join("MANIFEST").exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    assert!(!dir.exists() || dir.read_dir().unwrap().next().is_none(), "{} holds something else", dir.display());
    Index::open(dir).unwrap()
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
    (0..DOCS / BATCH).map(|b| (b * BATCH..(b + 1) * BATCH).map(doc).collect()).collect()
}

/// Folder levels above the files, as in `benches/compare`: 10 departments ×
/// 10 teams × 10 projects × 2 years × 5 categories, 10 files in each.
const RADICES: [u64; 6] = [10, 10, 10, 2, 5, DOCS / 10_000];
const CATEGORIES: [(&str, &str, &str); 5] = [
    ("reports", "pdf", "application/pdf"),
    ("invoices", "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("minutes", "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("drafts", "txt", "text/plain"),
    ("contracts", "pdf", "application/pdf"),
];

/// The `k`-th document in push order: `benches/compare`'s `Share::doc` with
/// three of its eight metas.
fn doc(k: u64) -> Document {
    let (uri, serial, category) = place(k);
    let (_, _, mime) = CATEGORIES[category as usize];
    let h = mix(serial);
    Document::new(uri)
        .with_stamp(stamp_of(h))
        .with_meta("author", format!("user{:04}@corp.example.com", h % 10_000))
        .with_meta("mimetype", mime)
        .with_meta("size", format!("{}", (h >> 16) % 50_000_000))
}

/// The URI of the `k`-th document, its serial and its category: each
/// level's children are visited in an order scrambled by their parent, so
/// batches have folder locality without arriving sorted (`benches/compare`'s
/// `Share::place`).
fn place(k: u64) -> (String, u64, u64) {
    let mut digits = [0u64; 6];
    let mut rest = k;
    for level in (0..6).rev() {
        digits[level] = rest % RADICES[level];
        rest /= RADICES[level];
    }
    let mut parent = 0x9e37_79b9_7f4a_7c15u64;
    let mut serial = 0u64;
    for level in 0..6 {
        let r = RADICES[level];
        digits[level] = (digits[level] * coprime_multiplier(r) + mix(parent) % r) % r;
        parent = mix(parent ^ (digits[level] + 1).wrapping_mul(0x100_0000_01b3));
        serial = serial * r + digits[level];
    }
    let [dept, team, project, year, category, _] = digits;
    let (cat, ext, _) = CATEGORIES[category as usize];
    let uri = format!("{SHARE}dept{dept:02}/team{team:02}/project{project}/{}/{cat}/doc{serial:07}.{ext}", 2023 + year);
    (uri, serial, category)
}

/// The URI of the `i`-th lookup: one in ten is a URI in a real folder that
/// no document has (as `benches/compare`'s row 3).
fn lookup_uri(i: u64) -> String {
    let h = mix(i ^ 0x5eed);
    if h.is_multiple_of(10) {
        let (mut uri, _, _) = place((h >> 8) % DOCS);
        uri.push_str(".missing");
        uri
    } else {
        place((h >> 8) % DOCS).0
    }
}

fn stamp_of(h: u64) -> String {
    format!(
        "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        20 + h % 5,
        1 + (h >> 8) % 12,
        1 + (h >> 16) % 28,
        (h >> 24) % 24,
        (h >> 32) % 60,
        (h >> 40) % 60
    )
}

/// A multiplier coprime with `r`, so that `x * m + c (mod r)` permutes `0..r`.
fn coprime_multiplier(r: u64) -> u64 {
    (r / 2 + 1..).find(|m| gcd(*m, r) == 1).unwrap_or(1)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// splitmix64's finalizer (as `benches/compare` has it).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
