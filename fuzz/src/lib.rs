//! The cargo-fuzz targets of pushdex, as plain functions.
//!
//! Each target in `fuzz_targets/` is one line that calls a function here,
//! so the same code also runs on a stable toolchain: `cargo test` in this
//! directory replays every committed seed and regression input
//! (`tests/replay.rs`), and writes the seeds anew with
//! `PUSHDEX_FUZZ_WRITE_SEEDS=1`.
//!
//! * [`log_frames`]: bytes as log files; recovery and an index open on them.
//! * [`segment`]: bytes as a segment file; every reader.
//! * [`manifest`]: bytes as `MANIFEST` or a deletion bitmap; round trips.
//! * [`ops`]: operation sequences with crashes against a `BTreeMap` model.
//!
//! A target panics only when pushdex does, or when an answer is wrong: every
//! `assert!` here states a property that pushdex promises (API.md,
//! docs/FORMAT.md). Errors returned for damaged input are expected.

mod common;
pub mod log;
pub mod manifest;
/// The tests' model of an index, shared with the `ops` target.
#[allow(dead_code)] // the tests use parts of it that `ops` does not
#[path = "../../tests/common/model.rs"]
mod model;
pub mod ops;
pub mod seeds;
pub mod segment;

pub use log::log_frames;
pub use manifest::manifest;
pub use ops::ops;
pub use segment::segment;
