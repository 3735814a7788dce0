//! Instruction counts of search (callgrind): builds the components bench's
//! corpus (DOCS documents in 4 segments), then runs each of its queries
//! 20 times (after one warm-up round). `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*search_counts*run_queries*' target/release/examples/search_counts`.
use pushdex::{Document, Index, Query};

#[path = "../benches/corpus/mod.rs"]
mod corpus;
use corpus::{text, uri};

#[inline(never)]
fn run_queries(index: &Index, rounds: usize) -> usize {
    let word = |w: &str| Query::Text { field: None, text: w.to_string() };
    let both = Query::And(vec![word("w3"), word("w20")]);
    let mut n = 0;
    for _ in 0..rounds {
        n += index.search(&word("w40"), 10).unwrap().len();
        n += index.search(&both, 10).unwrap().len();
        n += index.search_count(&word("w0")).unwrap() as usize;
    }
    n
}

fn main() {
    let docs: u64 = std::env::var("DOCS").ok().and_then(|d| d.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    for wave in 0..4u64 {
        let (from, to) = (wave * docs / 4, (wave + 1) * docs / 4);
        index.add_all((from..to).map(|i| Document::new(uri(i)).with_stamp("s").with_text("body", text(i)))).unwrap();
        index.refresh().unwrap();
    }
    // Warm: the first search prepares the snapshot.
    run_queries(&index, 1);
    println!("{}", run_queries(&index, 20));
}
