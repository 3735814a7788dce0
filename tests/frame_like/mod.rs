//! What the torn-tail tests push: contents full of frame-like bytes, and
//! the files of a simulated index.

#![allow(dead_code)] // each test binary uses its own part of it

use std::collections::BTreeMap;

use pushdex::storage::{SimStorage, Storage};
use pushdex::{EnumerationMode, Index, Options};

/// The 17 bytes that pass as a version 1 frame wherever they stand.
pub const V1_FOOL: [u8; 17] = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0];

pub fn options() -> Options {
    // Large enough that nothing flushes: every operation stays in the log.
    Options::default().memtable_bytes(256 << 20)
}

/// Every file of the storage with its bytes.
pub fn files(storage: &SimStorage) -> BTreeMap<String, Vec<u8>> {
    storage.list().unwrap().into_iter().map(|name| (name.clone(), storage.read(&name).unwrap())).collect()
}

pub fn last_log(files: &BTreeMap<String, Vec<u8>>) -> String {
    files
        .keys()
        .filter(|n| pushdex::wal::parse_log_name(n).is_some())
        .max_by_key(|n| pushdex::wal::parse_log_name(n))
        .unwrap()
        .clone()
}

/// What an index holds: every document's URI and stamp.
pub fn held(index: &Index) -> BTreeMap<String, String> {
    index
        .enumerate("", EnumerationMode::RecursiveDocuments)
        .unwrap()
        .map(|e| match e.unwrap() {
            pushdex::Entry::Document(d) => (d.uri, d.stamp),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Version 1 frames (len, crc32c of serial + kind + payload, serial, kind)
/// with serials from `first`: what an older release's log looks like.
pub fn v1_frames(first: u64, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for serial in first..first + n {
        let payload = format!("doc {serial}").into_bytes();
        let mut covered = serial.to_le_bytes().to_vec();
        covered.push(1);
        covered.extend_from_slice(&payload);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c(&covered).to_le_bytes());
        out.extend_from_slice(&covered);
    }
    out
}

pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

/// The frame-like contents of the last batch's parts; `own_log` is this
/// index's log as it stands, `other_log` another index's with serials
/// above the last good one.
pub fn frame_like_parts(own_log: &[u8], other_log: &[u8], last: u64) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("v1-pattern", V1_FOOL.repeat(600)),
        ("zeros", vec![0; 16 << 10]),
        ("ones", vec![0xff; 16 << 10]),
        ("own-log", own_log.to_vec()),
        ("other-log", other_log.to_vec()),
        ("v1-frames-ahead", v1_frames(last + 1, 200)),
        // Headers of version 2 frames with plausible serials and no valid
        // check, every few bytes.
        (
            "v2-headers",
            (0..400u64)
                .flat_map(|i| {
                    let mut h = vec![0u8; 8];
                    h.extend_from_slice(&0u32.to_le_bytes());
                    h.extend_from_slice(&(last + 1 + i).to_le_bytes());
                    h.push(1);
                    h
                })
                .collect(),
        ),
    ]
}
