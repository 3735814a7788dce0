//! The synthetic corpus of the components bench, shared with
//! `examples/search_counts.rs` (which measures the same search under
//! callgrind): file-share URIs and Zipf-skewed texts.

/// A file-share-shaped URI: ~70 bytes, 10 files per folder, 1000 folders.
pub fn uri(i: u64) -> String {
    format!("file:///share/projects/p{:03}/reports/r{:03}/doc{:06}.txt", i / 100_000, (i / 10) % 1000, i)
}

/// A text of 20 words from a vocabulary of 5000, skewed towards the first
/// (word `k` about as often as 1/(k+1)), fixed by `i`.
pub fn text(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let words: Vec<String> = (0..20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Log-uniform over 1..5000: a Zipf-like skew.
            let rank = (5000f64.powf((x % 10_000) as f64 / 10_000.0)) as u64 - 1;
            format!("w{rank}")
        })
        .collect();
    words.join(" ")
}
