//! Indexing text, for profiles: N documents (default 200,000) of 20 words
//! drawn from a Zipf distribution over 50,000 words, pushed 1,000 per
//! `add_all`, then one `refresh` — the workload of `benches/compare`'s row
//! S1, pushdex alone, with `Analyzer::Exact` as there. For instruction
//! counts that a busy machine does not disturb:
//!
//! ```text
//! cargo build --release --example index_text
//! valgrind --tool=callgrind target/release/examples/index_text 200000 /tmp/index-text
//! ```
use pushdex::{Document, Index};
#[path = "common/words.rs"]
mod words;
use words::mix;

fn main() {
    let n: u64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(200_000);
    let dir = std::env::args().nth(2).unwrap_or("/tmp/index-text".into());
    // Each run starts afresh: an index left by an earlier run is removed,
    // anything else refused.
    if std::path::Path::new(&dir).join("MANIFEST").exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let words: Vec<String> = (0..50_000u64).map(words::word).collect();
    let total: f64 = (1..=words.len()).map(|r| 1.0 / r as f64).sum();
    let mut acc = 0.0;
    let cdf: Vec<f64> = (1..=words.len())
        .map(|r| {
            acc += 1.0 / r as f64 / total;
            acc
        })
        .collect();
    let index = open(&dir);
    let start = std::time::Instant::now();
    let mut k = 0u64;
    while k < n {
        let end = (k + 1000).min(n);
        let docs: Vec<Document> = (k..end)
            .map(|i| {
                let mut body = String::new();
                for j in 0..20u64 {
                    let h = mix(i.wrapping_mul(31).wrapping_add(j.wrapping_mul(0x9e3779b9)));
                    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
                    let r = cdf.partition_point(|&c| c <= u).min(words.len() - 1);
                    if !body.is_empty() {
                        body.push(' ');
                    }
                    body.push_str(&words[r]);
                }
                Document::new(format!("file:///share/d{}/t{}/p{}/doc{i}.txt", i % 7, i % 13, i % 101))
                    .with_stamp(format!("{:x}", mix(i)))
                    .with_text("body", body)
            })
            .collect();
        index.add_all(docs).unwrap();
        k = end;
    }
    index.refresh().unwrap();
    eprintln!("{n} docs in {:.2} s", start.elapsed().as_secs_f64());
}

fn open(dir: &str) -> Index {
    Index::open_with(dir, pushdex::Options::default().analyzer(pushdex::Analyzer::Exact)).unwrap()
}
