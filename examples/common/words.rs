//! The words of the profiling examples' Zipf corpus (as `benches/compare`
//! makes them), shared by `index_text` and `frequent_words`.

/// A 64-bit mixer (splitmix64's finalizer).
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ceb9fe1a85ec53);
    x ^ (x >> 33)
}

/// Distinct numbers give distinct words (as `benches/compare` makes them).
pub fn syllables(mut n: u64) -> String {
    const C: &[u8; 18] = b"bcdfghjklmnprstvwz";
    const V: &[u8; 5] = b"aeiou";
    let mut out = Vec::new();
    while n > 0 {
        n -= 1;
        let s = n % 90;
        out.push(C[(s / 5) as usize]);
        out.push(V[(s % 5) as usize]);
        n /= 90;
    }
    String::from_utf8(out).unwrap()
}

/// The word of rank `r` (0: the most frequent) of the corpus.
pub fn word(r: u64) -> String {
    syllables(mix(r ^ 0x70c4) % 729_000 + 8_191)
}
