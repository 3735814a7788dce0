//! Runs one-word and two-word AND queries against an existing index, for
//! profiling search: `cargo run --release --example search_queries -- DIR
//! [ROUNDS] [WORDS]`. The words (at most WORDS) come from the text of the
//! index's first documents, keeping those in 300 to 20,000 documents (the
//! range of the comparison benchmark's one-word queries).

use std::time::Instant;

use pushdex::{EnumerationMode, Index, Query};

fn main() -> pushdex::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: search_queries DIR [ROUNDS]");
    let rounds: usize = args.next().map_or(3, |r| r.parse().expect("ROUNDS is a number"));
    let max_words: usize = args.next().map_or(usize::MAX, |r| r.parse().expect("WORDS is a number"));
    let index = Index::open(&dir)?;
    let mut words = Vec::new();
    for entry in index.enumerate("", EnumerationMode::RecursiveDocuments)?.take(3000) {
        let entry = entry?;
        if let Some(doc) = index.get(entry.key())? {
            if let Some(text) = doc.text("body") {
                words.extend(text.split_whitespace().map(str::to_lowercase));
            }
        }
    }
    words.sort();
    words.dedup();
    let mut kept = Vec::new();
    for word in words {
        let count = index.search_count(&Query::Text { field: None, text: word.clone() })?;
        if (300..=20_000).contains(&count) {
            kept.push(word);
        }
    }
    let mut words = kept;
    words.truncate(max_words);
    println!("{} distinct words", words.len());
    let one: Vec<Query> = words.iter().map(|w| Query::Text { field: None, text: w.clone() }).collect();
    let two: Vec<Query> = words
        .chunks(2)
        .filter(|p| p.len() == 2)
        .map(|p| Query::parse(&format!("{} {}", p[0], p[1])))
        .collect::<pushdex::Result<_>>()?;
    for (what, queries) in [("one word", &one), ("two words AND", &two)] {
        let start = Instant::now();
        let mut hits = 0;
        for _ in 0..rounds {
            for q in queries {
                hits += index.search(q, 10)?.len();
            }
        }
        let n = (rounds * queries.len()) as f64;
        println!("{what}: {:.0} queries/s ({hits} hits)", n / start.elapsed().as_secs_f64());
    }
    Ok(())
}
