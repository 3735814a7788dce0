//! Top-10 of one word, for the most frequent words: 400 queries (the 100
//! most frequent words of `examples/index_text.rs`'s Zipf corpus, 4 times
//! each) on the index that example writes, for instruction counts of
//! top-k search where the word is in a large share of the documents:
//!
//! ```text
//! cargo build --release --example index_text --example frequent_words
//! target/release/examples/index_text 1000000 /tmp/index-text
//! valgrind --tool=callgrind --toggle-collect='frequent_words::measured' \
//!     target/release/examples/frequent_words /tmp/index-text
//! ```
//!
//! The words are made as `index_text` makes them (word of rank `r`, the
//! most frequent first). `frequent_words DIR FROM TO` queries 100 ranks
//! spread over FROM..TO instead (`100 5000`: about benches/compare's row
//! S3).
use pushdex::{Index, Query};

#[path = "common/words.rs"]
mod words;

/// The queries, timed; returns the hits found.
#[inline(never)]
fn measured(index: &Index, queries: &[Query]) -> usize {
    let mut hits = 0;
    for _ in 0..4 {
        for query in queries {
            hits += index.search(query, 10).unwrap().len();
        }
    }
    hits
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or("/tmp/index-text".into());
    let index = Index::open(&dir).unwrap();
    // Ranks FROM..TO, 100 of them spread evenly (default 0..100: the most
    // frequent words).
    let from: u64 = std::env::args().nth(2).map_or(0, |s| s.parse().unwrap());
    let to: u64 = std::env::args().nth(3).map_or(100, |s| s.parse().unwrap());
    let queries: Vec<Query> =
        (0..100u64).map(|i| Query::Text { field: None, text: words::word(from + i * (to - from) / 100) }).collect();
    let counts: Vec<u64> = queries[..3].iter().map(|q| index.search_count(q).unwrap()).collect();
    let start = std::time::Instant::now();
    let hits = measured(&index, &queries);
    let took = start.elapsed();
    eprintln!(
        "400 queries, {hits} hits, in {:.1} ms ({:.0} queries/s); the 3 most frequent words are in {counts:?} documents",
        took.as_secs_f64() * 1e3,
        400.0 / took.as_secs_f64()
    );
}
