//! The search layer: what a search asks for ([`Query`], with its text syntax
//! [`Query::parse`]), what it returns ([`Hit`]), and how text becomes words
//! (`analysis`).
//!
//! In DESIGN.md's layers, `search` sits beside the memtable and the log,
//! above `segment`: it reads the segments of the snapshot published by the
//! last `refresh()`, and segments know nothing of queries. This module holds
//! the model and the parser; evaluation over a snapshot's segments (BM25
//! ranking, posting lists) comes next and will live here too.

pub(crate) mod analysis;
mod query;

pub use query::{Hit, Query};
