//! Instruction counts of search (callgrind): builds the components bench's
//! corpus (DOCS documents in 4 segments), then runs each of its queries
//! ROUNDS times. `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*search_counts*run_queries*' target/release/examples/search_counts`.
use pushdex::{Document, Index, Query};

fn uri(i: u64) -> String {
    format!("file:///share/projects/p{:03}/reports/r{:03}/doc{:06}.txt", i / 100_000, (i / 10) % 1000, i)
}

fn text(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let words: Vec<String> = (0..20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let rank = (5000f64.powf((x % 10_000) as f64 / 10_000.0)) as u64 - 1;
            format!("w{rank}")
        })
        .collect();
    words.join(" ")
}

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
