//! What one log frame holds: the payload of each kind of operation.
//!
//! The log ([`crate::wal`]) frames opaque bytes; this module gives them
//! meaning. Payloads are postcard-encoded tuples and structs, borrowed from the
//! mapped log on replay so that recovery copies each byte once (into the
//! memtable). `docs/FORMAT.md` describes each one.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The kind byte of a frame.
pub(crate) mod kind {
    /// One document added (or the result of an update): a [`super::DocRecord`].
    pub const ADD: u8 = 1;
    /// An `add_all` batch: a sequence of [`super::DocRecord`], one serial each.
    pub const BATCH: u8 = 2;
    /// `delete(uri)`: the URI as a string.
    pub const DELETE: u8 = 3;
    /// `delete_root_path(root, recursive)`: `(root, recursive)`.
    pub const DELETE_ROOT_PATH: u8 = 4;
    /// `delete_with_prefix(prefix)`: the prefix as a string.
    pub const DELETE_PREFIX: u8 = 5;
    /// `set_checkpoint(name, value)`: `(name, value)`.
    pub const SET_CHECKPOINT: u8 = 6;
    /// `delete_checkpoint(name)`: the name as a string.
    pub const DELETE_CHECKPOINT: u8 = 7;
    /// `clear_checkpoints()`: no payload.
    pub const CLEAR_CHECKPOINTS: u8 = 8;
}

/// A document as logged: URI, stamp and the encoded body
/// ([`crate::document::Body`]) exactly as the memtable keeps it.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct DocRecord<'a> {
    pub uri: &'a str,
    pub stamp: &'a str,
    #[serde(with = "serde_bytes")]
    pub body: &'a [u8],
}

/// One decoded frame.
#[derive(Debug)]
pub(crate) enum Op<'a> {
    Add(DocRecord<'a>),
    Batch(Vec<DocRecord<'a>>),
    Delete(&'a str),
    DeleteRootPath(&'a str, bool),
    DeletePrefix(&'a str),
    SetCheckpoint(&'a str, &'a str),
    DeleteCheckpoint(&'a str),
    ClearCheckpoints,
}

impl<'a> Op<'a> {
    /// Decodes a frame's payload; anything malformed is `Error::Corrupt`
    /// (the frame's checksum matched, so this is a bug or deliberate damage).
    pub fn decode(kind: u8, payload: &'a [u8], path: &std::path::Path) -> Result<Op<'a>> {
        let bad = |e: postcard::Error| Error::corrupt(path, format!("log frame of kind {kind} does not decode: {e}"));
        let op = match kind {
            kind::ADD => Op::Add(postcard::from_bytes(payload).map_err(bad)?),
            kind::BATCH => Op::Batch(postcard::from_bytes(payload).map_err(bad)?),
            kind::DELETE => Op::Delete(postcard::from_bytes(payload).map_err(bad)?),
            kind::DELETE_ROOT_PATH => {
                let (root, recursive) = postcard::from_bytes(payload).map_err(bad)?;
                Op::DeleteRootPath(root, recursive)
            }
            kind::DELETE_PREFIX => Op::DeletePrefix(postcard::from_bytes(payload).map_err(bad)?),
            kind::SET_CHECKPOINT => {
                let (name, value) = postcard::from_bytes(payload).map_err(bad)?;
                Op::SetCheckpoint(name, value)
            }
            kind::DELETE_CHECKPOINT => Op::DeleteCheckpoint(postcard::from_bytes(payload).map_err(bad)?),
            kind::CLEAR_CHECKPOINTS if payload.is_empty() => Op::ClearCheckpoints,
            _ => return Err(Error::corrupt(path, format!("log frame of unknown kind {kind}"))),
        };
        Ok(op)
    }

    /// The frame's kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            Op::Add(_) => kind::ADD,
            Op::Batch(_) => kind::BATCH,
            Op::Delete(_) => kind::DELETE,
            Op::DeleteRootPath(..) => kind::DELETE_ROOT_PATH,
            Op::DeletePrefix(_) => kind::DELETE_PREFIX,
            Op::SetCheckpoint(..) => kind::SET_CHECKPOINT,
            Op::DeleteCheckpoint(_) => kind::DELETE_CHECKPOINT,
            Op::ClearCheckpoints => kind::CLEAR_CHECKPOINTS,
        }
    }

    /// Appends the frame's payload to `buf`: the inverse of [`Op::decode`].
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            Op::Add(doc) => doc.encode(buf),
            Op::Batch(docs) => {
                put_varint(buf, docs.len());
                docs.iter().for_each(|doc| doc.encode(buf));
            }
            Op::Delete(s) | Op::DeletePrefix(s) | Op::DeleteCheckpoint(s) => encode_into(s, buf),
            Op::DeleteRootPath(root, recursive) => encode_into(&(root, recursive), buf),
            Op::SetCheckpoint(name, value) => encode_into(&(name, value), buf),
            Op::ClearCheckpoints => {}
        }
    }

    /// How many serials the operation takes.
    pub fn serials(&self) -> u64 {
        match self {
            Op::Batch(docs) => docs.len() as u64,
            _ => 1,
        }
    }
}

impl DocRecord<'_> {
    /// Appends the postcard encoding of the record to `buf`, written
    /// directly: this is the write path's hot loop (a test checks it
    /// against postcard).
    pub fn encode(&self, buf: &mut Vec<u8>) {
        buf.reserve(self.uri.len() + self.stamp.len() + self.body.len() + 3 * MAX_VARINT_BYTES);
        put_bytes(buf, self.uri.as_bytes());
        put_bytes(buf, self.stamp.as_bytes());
        put_bytes(buf, self.body);
    }
}

/// The longest postcard varint of a `usize`.
pub(crate) const MAX_VARINT_BYTES: usize = 10;

/// Appends `n` as postcard does a length: LEB128, 7 bits per byte, low
/// bits first.
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push(n as u8 | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Reads a [`put_varint`] varint at `*at`, moving past it; `None` if the
/// bytes end first or it does not fit 64 bits.
pub(crate) fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        n |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// The number of bytes [`put_varint`] writes for `n`.
pub(crate) fn varint_len(n: usize) -> usize {
    (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize
}

/// Appends a string or byte string as postcard does: its length, then it.
pub(crate) fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(buf, bytes.len());
    buf.extend_from_slice(bytes);
}

/// Appends the postcard encoding of `value` to `buf`.
fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) {
    let taken = std::mem::take(buf);
    *buf = postcard::to_extend(value, taken).expect("encoding into a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_encoding_is_postcards() {
        let long = "x".repeat(20_000);
        let body = vec![9u8; 300];
        let docs: Vec<DocRecord<'_>> =
            [("", "", &[][..]), ("file:///a", "v1", &body[..]), (&long[..], &long[..127], &body[..128])]
                .into_iter()
                .map(|(uri, stamp, body)| DocRecord { uri, stamp, body })
                .collect();
        for doc in &docs {
            let mut buf = Vec::new();
            doc.encode(&mut buf);
            assert_eq!(buf, postcard::to_stdvec(doc).unwrap());
        }
        let mut buf = vec![1, 2];
        let batch = Op::Batch(docs);
        batch.encode(&mut buf);
        let Op::Batch(expected) = &batch else { unreachable!() };
        assert_eq!(buf[2..], postcard::to_stdvec(expected).unwrap());
        let Op::Batch(back) = Op::decode(kind::BATCH, &buf[2..], std::path::Path::new("log")).unwrap() else {
            panic!("not a batch")
        };
        assert_eq!(back.len(), 3);
        assert_eq!((back[2].uri, back[2].stamp, back[2].body), (&long[..], &long[..127], &body[..128]));
        for n in [0, 1, 127, 128, 16_383, 16_384, usize::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, n);
            assert_eq!(buf.len(), varint_len(n));
            assert_eq!(buf, postcard::to_stdvec(&n).unwrap(), "n = {n}");
        }
    }
}
