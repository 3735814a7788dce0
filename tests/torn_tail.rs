//! A torn tail is never mistaken for damage, whatever the torn frame
//! carried: batches whose binary parts are full of frame-like bytes (the
//! 17 bytes that were a valid version 1 frame anywhere, zeros, all-ones,
//! copies of this index's own log and of another index's log with serials
//! above the last good one, version 1 frames with such serials) are cut at
//! every offset of the last frame (every byte of its first and last 4 KiB,
//! a stride through the rest), and every cut opens as the state before that
//! frame, never `Corrupt`.
//!
//! The same through a real process is `tests/torn_tail_kill.rs`.

mod frame_like;

use std::sync::Arc;

use frame_like::{files, frame_like_parts, held, last_log, options};
use pushdex::storage::SimStorage;
use pushdex::{Document, Index};

#[test]
fn a_torn_frame_full_of_frame_like_bytes_is_a_torn_tail_at_every_cut() {
    // Another index's log, whose serials run past this one's.
    let other = SimStorage::new("/other");
    let other_index = Index::open_with_storage(Arc::new(other.clone()), options()).unwrap();
    for i in 0..300 {
        other_index.add(Document::new(format!("other/{i}")).with_stamp("o")).unwrap();
    }
    other_index.sync().unwrap();
    let other_log = files(&other)[&last_log(&files(&other))].clone();

    let storage = SimStorage::new("/idx");
    let index = Index::open_with_storage(Arc::new(storage.clone()), options()).unwrap();
    for b in 0..5 {
        index
            .add_all((0..10).map(|i| Document::new(format!("a/{b}/{i}")).with_stamp("s").with_text("body", "words")))
            .unwrap();
    }
    index.set_checkpoint("crawl", "batch 5").unwrap();
    index.sync().unwrap();
    let before = held(&index);
    let last = index.watermarks().last.0;
    let own_log = files(&storage)[&last_log(&files(&storage))].clone();
    // The last batch: one document per kind of frame-like contents.
    let parts = frame_like_parts(&own_log, &other_log, last);
    index
        .add_all(
            parts.iter().map(|(name, bytes)| Document::new(format!("b/{name}")).with_part("content", bytes.clone())),
        )
        .unwrap();
    index.sync().unwrap();
    let all = files(&storage);
    let log = last_log(&all);
    let bytes = &all[&log];
    let frame_start = own_log.len();
    let frame_len = bytes.len() - frame_start;
    assert!(frame_len > 64 << 10, "the last frame is large: {frame_len} bytes");

    let cuts: Vec<usize> = (frame_start..frame_start + 4096)
        .chain((frame_start + 4096..bytes.len() - 4096).step_by(97))
        .chain(bytes.len() - 4096..bytes.len())
        .collect();
    for &cut in &cuts {
        let copy = SimStorage::new("/copy");
        for (name, content) in &all {
            copy.write(name, if *name == log { &content[..cut] } else { content });
        }
        let reopened = Index::open_with_storage(Arc::new(copy), options())
            .unwrap_or_else(|e| panic!("cut at {cut} of {} (frame at {frame_start}): {e}", bytes.len()));
        assert_eq!(reopened.watermarks().last.0, last, "cut at {cut}");
        assert_eq!(held(&reopened), before, "cut at {cut}");
        assert_eq!(reopened.checkpoint("crawl").unwrap().unwrap().value, "batch 5");
        drop(reopened);
    }
    // The whole frame is there: the batch is.
    let copy = SimStorage::new("/copy");
    for (name, content) in &all {
        copy.write(name, content);
    }
    let reopened = Index::open_with_storage(Arc::new(copy), options()).unwrap();
    assert_eq!(held(&reopened).len(), before.len() + parts.len());
    for (name, bytes) in &parts {
        let doc = reopened.get(&format!("b/{name}")).unwrap().unwrap();
        assert_eq!(doc.part("content").unwrap(), &bytes[..], "{name}");
    }
}
