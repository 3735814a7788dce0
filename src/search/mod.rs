//! The search layer: what a search asks for ([`Query`], with its text syntax
//! [`Query::parse`]), what it returns ([`Hit`]), and how text becomes words
//! (`analysis`).
//!
//! In DESIGN.md's layers, `search` sits beside the memtable and the log,
//! above `segment`: it reads the segments of the snapshot published by the
//! last `refresh()`, and segments know nothing of queries. This module holds
//! the model and the parser (`query`) and evaluation over a snapshot's
//! segments (`eval`: bitmap algebra, BM25, top-k).

pub(crate) mod analysis;
pub(crate) mod eval;
mod query;

pub use eval::MAX_LIMIT as MAX_SEARCH_LIMIT;
pub use query::{Hit, Query, MAX_QUERY_DEPTH};
