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
            Op::Add(doc) => encode_into(doc, buf),
            Op::Batch(docs) => encode_into(docs, buf),
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

/// Appends the postcard encoding of `value` to `buf`.
fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) {
    let taken = std::mem::take(buf);
    *buf = postcard::to_extend(value, taken).expect("encoding into a Vec cannot fail");
}
