//! The search layer: what a search asks for ([`Query`], with its text syntax
//! [`Query::parse`]) and what it returns ([`Hit`]). How text becomes words
//! is `crate::text`, below both this layer and the segments that index
//! the words.
//!
//! In the layers of docs/ARCHITECTURE.md, `search` sits above `segment`
//! and below `index`: it reads the segments of the snapshot published by the
//! last `refresh()`, and segments know nothing of queries. This module holds
//! the model and the parser (`query`) and evaluation over a snapshot's
//! segments (`eval`: bitmap algebra, BM25, top-k, sort by meta), and what
//! a hit shows a person (`present`: titles and highlighted snippets).

pub(crate) mod eval;
pub(crate) mod present;
mod query;
mod sort;

#[cfg(feature = "internals")]
pub use eval::search_segment;
pub use eval::MAX_LIMIT as MAX_SEARCH_LIMIT;
pub use query::{Facet, Hit, Query, SearchOptions, SearchResults, Sort, MAX_QUERY_DEPTH, MAX_SLOP};
