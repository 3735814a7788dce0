//! # pushdex
//!
//! An embedded document index engine. Connectors (programs that crawl a file
//! share, a database, a web site) push documents into it by URI, and pushdex
//! tells them, for every document and every operation, how far it has
//! travelled: **Pushed** (received), **Synced** (on disk, survives a crash) or
//! **Searchable**. With stamps, checkpoints and enumeration a connector can
//! resume incrementally after any crash without re-sending what the index
//! already holds.
//!
//! ## The connector loop
//!
//! ```
//! use pushdex::{Document, EnumerationMode, Entry, Index, State};
//!
//! # fn main() -> pushdex::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let index = Index::open(dir.path())?;
//!
//! // Where did the last run stop?
//! let resume_from = index.checkpoint("crawl")?.map(|c| c.value);
//! assert_eq!(resume_from, None);
//!
//! // Push a batch, mark the position, make both durable.
//! index.add_all((0..3).map(|i| {
//!     Document::new(format!("file:///share/doc{i}.txt"))
//!         .with_stamp("2024-03-15T10:00:00Z")
//!         .with_text("body", "hello")
//! }))?;
//! index.set_checkpoint("crawl", "doc2")?;
//! index.sync()?; // the checkpoint is Synced, so is everything pushed before it
//!
//! // Compare stamps with what the index holds, folder by folder.
//! for entry in index.enumerate("file:///share", EnumerationMode::NotRecursiveAll)? {
//!     if let Entry::Document(status) = entry? {
//!         assert_eq!(status.state, State::Synced);
//!         assert_eq!(status.stamp, "2024-03-15T10:00:00Z");
//!     }
//! }
//! index.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! ## How it works
//!
//! Every mutating operation gets the next [`Serial`] and is appended to an
//! operation log, then applied to an in-memory radix trie. A document's state
//! is never stored: it is derived from its serial and three [`Watermarks`].
//! `sync()` writes the log and fsyncs it, sharing one fsync among all threads
//! that ask at once. See `docs/ARCHITECTURE.md` and `docs/FORMAT.md`.

#![warn(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

/// The engine's internal layers (the log, the manifest, segments, the trie,
/// the storage): public, undocumented, with no stability promise, only with
/// the `internals` feature, which pushdex's own tests, benches and fuzz
/// targets turn on; private otherwise.
macro_rules! internal_mod {
    ($name:ident) => {
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        #[allow(dead_code, unreachable_pub, unused_imports)]
        mod $name;
    };
}

mod bloom;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod connector;
mod document;
mod error;
mod extract;
mod files;
mod frontcode;
mod index;
internal_mod!(manifest);
mod record;
mod search;
internal_mod!(segment);
#[cfg(feature = "server")]
pub mod server;
mod status;
internal_mod!(storage);
mod text;
internal_mod!(trie);
mod uri;
internal_mod!(wal);

pub use document::{
    Document, Update, MAX_BATCH_BYTES, MAX_BATCH_DOCUMENTS, MAX_NAME_BYTES, MAX_PART_BYTES, MAX_STAMP_BYTES,
    MAX_VALUE_BYTES,
};
pub use error::{Error, Result};
pub use index::{Create, Enumeration, Health, Index, Options, Problem, PushSession, Repair, Verification};
/// One segment searched alone, for the fuzz targets (`internals` only).
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use search::search_segment;
pub use search::{Facet, Hit, Query, SearchOptions, SearchResults, Sort, MAX_QUERY_DEPTH, MAX_SEARCH_LIMIT, MAX_SLOP};
pub use status::{
    Checkpoint, DocumentRef, DocumentStatus, Entry, EntryRef, EnumerationMode, Serial, SessionId, State, Watermarks,
};
pub use text::Analyzer;
pub use uri::{folder_prefix, MAX_URI_BYTES};
