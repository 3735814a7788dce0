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
    data: Vec<u8>,
    starts: Vec<u64>,
    prev: Vec<u8>,
    count: usize,
}

impl Builder {
    pub fn new(block: usize) -> Builder {
        Builder { block, data: Vec::new(), starts: Vec::new(), prev: Vec::new(), count: 0 }
    }

    /// Appends `key`, with `value` if the keys carry values.
    pub fn push(&mut self, key: &[u8], value: Option<u64>) {
        let shared = if self.count.is_multiple_of(self.block) {
            self.starts.push(self.data.len() as u64);
            0
        } else {
            self.prev.iter().zip(key).take_while(|(a, b)| a == b).count()
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

    /// The blocks, one after the other, then each block's offset among them
    /// as a `u64`.
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

#[cfg(test)]
mod tests {
    use super::*;

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
