//! The per-segment URI filter: a blocked Bloom filter that answers "this
//! segment cannot hold the URI" without walking the fst.
//!
//! A point read probes the segments newest to oldest, and a flush probes
//! every older segment for each URI it writes (to mark rewritten rows): a
//! URI that a segment does not hold should cost a hash and one cache line,
//! not an fst walk. The layout is in `docs/FORMAT.md` (Segments / `bloom`).
//!
//! Blocked: the filter is an array of 512-bit blocks; a key sets (and a
//! probe tests) [`PROBES`] bits inside one block picked by its hash, so a
//! probe touches one 64-byte cache line. With [`BITS_PER_KEY`] = 10 the
//! false-positive rate is about 1%.

use xxhash_rust::xxh3::xxh3_128;

/// Bits of filter per URI.
pub const BITS_PER_KEY: u64 = 10;
/// Bits set and tested per URI, all inside one block.
pub const PROBES: u32 = 7;
/// Bytes per block: one cache line.
pub const BLOCK_BYTES: usize = 64;

/// The bit positions of `key`: its block, then [`PROBES`] positions of 9
/// bits (0..512) inside it, from the two halves of its xxh3-128 hash.
fn positions(key: &[u8], blocks: usize) -> (usize, impl Iterator<Item = usize>) {
    let h = xxh3_128(key);
    let (low, high) = (h as u64, (h >> 64) as u64);
    // Fast range: the high 32 bits of `low`, scaled to the block count.
    let block = (((low >> 32) * blocks as u64) >> 32) as usize;
    (block, (0..PROBES).map(move |i| ((high >> (9 * i)) & 511) as usize))
}

/// How many blocks a filter for `keys` URIs has (0 for none).
pub fn blocks_for(keys: u64) -> usize {
    (keys * BITS_PER_KEY).div_ceil(8 * BLOCK_BYTES as u64) as usize
}

/// A filter being built.
pub struct BloomBuilder {
    bytes: Vec<u8>,
}

impl BloomBuilder {
    /// An empty filter sized for `keys` URIs.
    pub fn new(keys: u64) -> BloomBuilder {
        BloomBuilder { bytes: vec![0; blocks_for(keys) * BLOCK_BYTES] }
    }

    /// Adds `key`.
    pub fn insert(&mut self, key: &[u8]) {
        let blocks = self.bytes.len() / BLOCK_BYTES;
        if blocks == 0 {
            return;
        }
        let (block, bits) = positions(key, blocks);
        let base = block * BLOCK_BYTES;
        for bit in bits {
            self.bytes[base + bit / 8] |= 1 << (bit % 8);
        }
    }

    /// The filter's bytes, as the segment's `bloom` section stores them.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Whether the filter `bytes` (a whole number of blocks, checked at open)
/// may hold `key`: false means certainly not.
pub fn may_contain(bytes: &[u8], key: &[u8]) -> bool {
    let blocks = bytes.len() / BLOCK_BYTES;
    if blocks == 0 {
        return false;
    }
    let (block, mut bits) = positions(key, blocks);
    let base = block * BLOCK_BYTES;
    bits.all(|bit| bytes[base + bit / 8] & (1 << (bit % 8)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("file:///share/dept{}/doc{i}.txt", i % 13)).collect();
        let mut builder = BloomBuilder::new(keys.len() as u64);
        keys.iter().for_each(|k| builder.insert(k.as_bytes()));
        let bytes = builder.bytes();
        assert_eq!(bytes.len(), blocks_for(20_000) * BLOCK_BYTES);
        assert!(keys.iter().all(|k| may_contain(bytes, k.as_bytes())), "no false negatives");
        let false_positives =
            (0..20_000).filter(|i| may_contain(bytes, format!("file:///share/other/doc{i}.txt").as_bytes())).count();
        // About 1% expected; 3% would mean a broken hash or layout.
        assert!(false_positives < 600, "{false_positives} false positives in 20000");
        assert!(false_positives > 0, "a 10-bit filter has some false positives");
    }

    #[test]
    fn an_empty_filter_holds_nothing() {
        let builder = BloomBuilder::new(0);
        assert!(builder.bytes().is_empty());
        assert!(!may_contain(builder.bytes(), b"x"));
        let mut one = BloomBuilder::new(1);
        one.insert(b"");
        assert_eq!(one.bytes().len(), BLOCK_BYTES);
        assert!(may_contain(one.bytes(), b""));
    }
}
