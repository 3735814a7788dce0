//! Front-coded blocks of sorted keys, what a segment's `names` (URIs by
//! ordinal) and `metas` (meta-value terms) sections are made of
//! (docs/FORMAT.md): each entry is a varint count of the bytes it shares
//! with the key before it in its block (0 for a block's first), a varint
//! length of the rest, the rest, and, when the keys carry values, a varint
//! value.

use crate::record::{get_varint, put_varint};

/// Writes keys (in the order they must be read back) in blocks of `block`.
pub(crate) struct Builder {
    block: usize,
    /// The blocks' bytes not yet taken by [`Builder::drain`].
    data: Vec<u8>,
    /// How many bytes [`Builder::drain`] took.
    drained: u64,
    starts: Vec<u64>,
    prev: Vec<u8>,
    count: usize,
}

impl Builder {
    pub fn new(block: usize) -> Builder {
        Builder { block, data: Vec::new(), drained: 0, starts: Vec::new(), prev: Vec::new(), count: 0 }
    }

    /// Appends `key`, with `value` if the keys carry values.
    pub fn push(&mut self, key: &[u8], value: Option<u64>) {
        let shared = if self.count.is_multiple_of(self.block) {
            self.starts.push(self.drained + self.data.len() as u64);
            0
        } else {
            common_prefix(&self.prev, key)
        };
        put_varint(&mut self.data, shared);
        put_varint(&mut self.data, key.len() - shared);
        self.data.extend_from_slice(&key[shared..]);
        if let Some(value) = value {
            put_varint(&mut self.data, value as usize);
        }
        self.prev.clear();
        self.prev.extend_from_slice(key);
        self.count += 1;
    }

    /// Hands the blocks' bytes so far to `out` once there are at least
    /// `at_least` of them, so that a long table is written out as it is
    /// built rather than held whole.
    pub fn drain<E>(&mut self, at_least: usize, out: impl FnOnce(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if !self.data.is_empty() && self.data.len() >= at_least {
            out(&self.data)?;
            self.drained += self.data.len() as u64;
            self.data.clear();
        }
        Ok(())
    }

    /// The blocks (what [`Builder::drain`] did not take), one after the
    /// other, then each block's offset among them all as a `u64`.
    pub fn finish(self) -> Vec<u8> {
        let mut out = self.data;
        for start in &self.starts {
            out.extend_from_slice(&start.to_le_bytes());
        }
        out
    }

    /// How many blocks there are so far.
    pub fn blocks(&self) -> usize {
        self.starts.len()
    }
}

/// The first key of a block, borrowed: it is stored whole (it shares
/// nothing), so nothing else of the block is decoded. `None` if the block
/// does not start with a whole key.
pub(crate) fn first_key(block: &[u8]) -> Option<&[u8]> {
    let mut at = 0;
    if get_varint(block, &mut at)? != 0 {
        return None;
    }
    let len = usize::try_from(get_varint(block, &mut at)?).ok()?;
    block.get(at..at.checked_add(len)?)
}

/// Where `key` is among the keys of one block (without values): `Some(Some(i))`
/// if it is the `i`-th, `Some(None)` if the block does not hold it, `None`
/// if the block does not decode. The keys are compared as they are decoded,
/// without being rebuilt: `matched` is how many bytes the key before shares
/// with `key` (it is smaller), so an entry sharing more than that with it is
/// smaller too, one sharing less is greater (keys increase and each shares
/// the most it can with the one before), and only an entry sharing exactly
/// that much needs its bytes compared.
pub(crate) fn find_in_block(block: &[u8], key: &[u8]) -> Option<Option<usize>> {
    let (mut at, mut matched, mut previous, mut i) = (0, 0, 0, 0);
    while at < block.len() {
        let shared = usize::try_from(get_varint(block, &mut at)?).ok()?;
        let len = usize::try_from(get_varint(block, &mut at)?).ok()?;
        let rest = block.get(at..at.checked_add(len)?)?;
        at += len;
        if shared > previous {
            return None;
        }
        if shared < matched {
            return Some(None);
        }
        if shared == matched {
            let wanted = &key[matched..];
            let common = common_prefix(rest, wanted);
            if common == rest.len() && common == wanted.len() {
                return Some(Some(i));
            }
            if common == wanted.len() || (common < rest.len() && rest[common] > wanted[common]) {
                return Some(None);
            }
            matched += common;
        }
        previous = shared + len;
        i += 1;
    }
    Some(None)
}

/// Decodes the entries of one block (its bytes exactly), calling
/// `visit(key, value)` (value 0 when the keys carry none) until it returns
/// false; `None` if the block is damaged.
pub(crate) fn decode_block(block: &[u8], values: bool, visit: &mut dyn FnMut(&[u8], u64) -> bool) -> Option<()> {
    let mut key = Vec::new();
    let mut at = 0;
    while at < block.len() {
        let shared = usize::try_from(get_varint(block, &mut at)?).ok()?;
        let len = usize::try_from(get_varint(block, &mut at)?).ok()?;
        let rest = block.get(at..at.checked_add(len)?)?;
        at += len;
        if shared > key.len() {
            return None;
        }
        key.truncate(shared);
        key.extend_from_slice(rest);
        let value = if values { get_varint(block, &mut at)? } else { 0 };
        if !visit(&key, value) {
            return Some(());
        }
    }
    Some(())
}

/// Length of the longest common prefix of `a` and `b`, compared 8 bytes at
/// a time (keys here are URIs and term keys, which share long prefixes).
#[inline]
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            // Little-endian: the first differing byte is the lowest.
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + a[i..n].iter().zip(&b[i..n]).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_is_the_bytes_compared_one_by_one() {
        let naive = |a: &[u8], b: &[u8]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 7).collect();
        for len_a in 0..=base.len() {
            for len_b in [0, 1, 7, 8, 9, 16, 17, 40].into_iter().filter(|&n| n <= base.len()) {
                for at in 0..len_a.max(1) {
                    let mut a = base[..len_a].to_vec();
                    if at < a.len() {
                        a[at] ^= 0x80;
                    }
                    let b = &base[..len_b];
                    assert_eq!(common_prefix(&a, b), naive(&a, b), "{a:?} {b:?}");
                    assert_eq!(common_prefix(b, &a), naive(b, &a), "{b:?} {a:?}");
                }
            }
        }
    }

    #[test]
    fn find_in_block_agrees_with_decoding() {
        let mut keys: Vec<&[u8]> =
            vec![b"a", b"a/b", b"a/b/c", b"a/bc", b"a/c", b"ab", b"b", b"b\xff", b"ba/x/y", b"bb"];
        keys.sort();
        let mut b = Builder::new(16);
        for key in &keys {
            b.push(key, None);
        }
        let bytes = b.finish();
        let block = &bytes[..bytes.len() - 8];
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(find_in_block(block, key), Some(Some(i)), "{key:?}");
            for len in 0..key.len() {
                if !keys.contains(&&key[..len]) {
                    assert_eq!(find_in_block(block, &key[..len]), Some(None), "{:?}", &key[..len]);
                }
            }
            for more in [&b"\0"[..], b"0", b"/", b"\xff"] {
                let longer = [*key, more].concat();
                if !keys.contains(&longer.as_slice()) {
                    assert_eq!(find_in_block(block, &longer), Some(None), "{longer:?}");
                }
            }
        }
        for missing in [&b""[..], b"0", b"a/a", b"a/bb", b"aa", b"b\xfe", b"c", b"\xff"] {
            assert_eq!(find_in_block(block, missing), Some(None), "{missing:?}");
        }
        // A first entry that claims to share bytes does not decode.
        assert_eq!(find_in_block(&[1, 1, b'a'], b"a"), None);
    }

    #[test]
    fn blocks_round_trip_with_and_without_values() {
        let keys: Vec<Vec<u8>> = (0..40u32).map(|i| format!("key/{}/{i:03}", i % 3).into_bytes()).collect();
        for values in [false, true] {
            let mut b = Builder::new(16);
            for (i, key) in keys.iter().enumerate() {
                b.push(key, values.then_some(i as u64 * 7));
            }
            assert_eq!(b.blocks(), 3);
            let starts = b.starts.clone();
            let bytes = b.finish();
            let data_end = bytes.len() - 8 * starts.len();
            let mut got = Vec::new();
            for (i, &start) in starts.iter().enumerate() {
                let end = starts.get(i + 1).map_or(data_end as u64, |&e| e);
                decode_block(&bytes[start as usize..end as usize], values, &mut |k, v| {
                    got.push((k.to_vec(), v));
                    true
                })
                .unwrap();
            }
            let want: Vec<(Vec<u8>, u64)> =
                keys.iter().enumerate().map(|(i, k)| (k.clone(), if values { i as u64 * 7 } else { 0 })).collect();
            assert_eq!(got, want);
        }
        // A first entry that claims to share bytes is damage.
        assert!(decode_block(&[3, 1, b'x'], false, &mut |_, _| true).is_none());
    }
}
