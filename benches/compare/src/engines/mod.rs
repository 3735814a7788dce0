//! One adapter per engine, each using its engine the way the engine's own
//! documentation recommends. The workloads only see this trait.

use std::path::Path;

use crate::data::{Doc, TextDoc};
use crate::Res;

pub mod fjall;
pub mod lmdb;
pub mod pushdex;
pub mod redb;
pub mod sqlite;
pub mod tantivy;

/// A store of `URI → (stamp, metas)`.
///
/// "Durable" means: when the call returns, what it wrote and everything
/// written before survives a power loss. Non-durable writes are the engine's
/// cheapest commit that is still atomic and visible to readers.
pub trait Engine: Sized {
    /// A handle for another thread (the group-commit workload).
    type Writer: Writer + Send + 'static;

    /// Opens the store in `dir` (an existing directory), creating it if empty.
    fn open(dir: &Path) -> Res<Self>;

    /// Adds or replaces the batch in one atomic step. The batch is the
    /// engine's to consume: a connector builds documents to hand them over.
    fn put_batch(&mut self, docs: Vec<Doc>, durable: bool) -> Res<()>;

    /// The stamps of the batch's URIs (`None`: absent), into `out`.
    fn stamps(&mut self, uris: &[String], out: &mut Vec<Option<String>>) -> Res<()>;

    /// Calls `f(uri, stamp)` for every document whose URI starts with
    /// `prefix`, in byte order of URIs; returns how many.
    fn scan(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &str)) -> Res<u64>;

    /// Deletes every document under the folder `root` (see API.md), durably.
    fn delete_under(&mut self, root: &str) -> Res<()>;

    /// Deletes every URI that starts with the string `prefix`, durably.
    fn delete_prefix(&mut self, prefix: &str) -> Res<()>;

    /// A writer that another thread can use while this handle stays open.
    fn writer(&mut self) -> Res<Self::Writer>;

    /// Closes cleanly (everything durable, files released).
    fn close(self) -> Res<()>;
}

/// One thread's handle in the group-commit workload.
pub trait Writer {
    /// Adds one document and makes it durable before returning.
    fn put_durable(&mut self, doc: Doc) -> Res<()>;
}

/// A full-text index of [`TextDoc`]s: the search workload (`--search`)
/// only sees this trait.
pub trait SearchEngine: Sized {
    /// Opens a new index in `dir` (an existing, empty directory).
    fn open(dir: &Path) -> Res<Self>;

    /// Adds the batch; it need not be searchable yet.
    fn add_batch(&mut self, docs: Vec<TextDoc>) -> Res<()>;

    /// Adds one document; it need not be searchable yet.
    fn add_one(&mut self, doc: TextDoc) -> Res<()> {
        self.add_batch(vec![doc])
    }

    /// Makes every document added so far searchable.
    fn make_searchable(&mut self) -> Res<()>;

    /// The best `limit` documents (BM25) whose body holds every word of
    /// `words`, as `(uri, stamp)`, into `out`.
    fn top(&mut self, words: &[&str], limit: usize, out: &mut Vec<(String, String)>) -> Res<()>;

    /// How many documents' bodies hold every word of `words`.
    fn count(&mut self, words: &[&str]) -> Res<u64>;

    /// The best `limit` documents (BM25) whose body holds at least one word
    /// of `words` (a ranked OR), as `(uri, stamp)`, into `out`.
    fn top_any(&mut self, words: &[&str], limit: usize, out: &mut Vec<(String, String)>) -> Res<()>;

    /// The best `limit` documents whose body holds `words` as a phrase (in
    /// this order, adjacent), as `(uri, stamp)`, into `out`.
    fn top_phrase(&mut self, words: &[&str], limit: usize, out: &mut Vec<(String, String)>) -> Res<()>;

    /// How many documents' bodies hold `words` as a phrase.
    fn count_phrase(&mut self, words: &[&str]) -> Res<u64>;

    /// A remark for the table about the index as searched now (segments).
    fn describe(&mut self) -> String {
        String::new()
    }

    /// Closes cleanly (everything durable, files released).
    fn close(self) -> Res<()>;
}

/// The engines of the search workload, in table order, with how each is
/// configured.
pub const SEARCH_ENGINES: [(&str, &str); 2] = [
    (
        "pushdex",
        "Index::open_with, default Options but Analyzer::Exact (lower-cased words as written, as tantivy's \
         default tokenizer; the default English analyzer also stems). Each document is \
         Document::new(uri).with_stamp(stamp).with_text(\"body\", text), pushed with add_all per 1,000, then \
         refresh() makes them searchable. Top 10: search(&Query::Text { field: Some(\"body\"), text: word }, 10) \
         for one word, search(&Query::And([Text a, Text b]), 10) for two, Query::Any { text: \"a b\", \
         min_should_match: 1 } for OR, Query::Phrase { text: \"a b\", slop: 0 } for a phrase; hits carry the URI \
         and the stamp. Count: search_count of the same queries. One new document: add + refresh().",
    ),
    (
        "tantivy",
        "tantivy 0.27 (default features), schema uri: STRING | STORED, stamp: STORED, body: TEXT (the default \
         tokenizer: split on non-alphanumerics, lower-case, drop tokens over 40 bytes), Index::create_in_dir (mmap \
         directory) in the store directory, index.writer(100 MB) (its default thread count: min(cores, 8)), \
         add_document per document, one commit() at the end, a reader with ReloadPolicy::Manual then \
         reader.reload(). Top 10: TermQuery(body, word, WithFreqs), or a BooleanQuery of two Must TermQuerys (two \
         Should TermQuerys for OR), a PhraseQuery of the two terms for a phrase, \
         collected with TopDocs::with_limit(10).order_by_score(), then searcher.doc() of each hit for its uri and \
         stamp (so that hits carry what pushdex's do). Count: the Count collector (which, for a single term in a \
         segment without deletions, reads the term's document frequency from the dictionary instead of its \
         postings). One new document: \
         add_document + commit() + reader.reload(). A searcher from reader.searcher() per query.",
    ),
];

/// The engines, in table order, with how each is configured.
pub const ENGINES: [(&str, &str); 5] = [
    (
        "pushdex",
        "Index::open, default Options (64 MiB memtable). Non-durable: add_all returns with the batch Pushed \
         (in the log buffer / page cache). Durable: sync() = write the log and fdatasync it; concurrent sync() \
         calls share one fdatasync (group commit). Deletes: delete_root_path(root, true) / delete_with_prefix, \
         one log record each, then sync().",
    ),
    (
        "sqlite",
        "rusqlite (bundled SQLite), one table `docs(uri TEXT PRIMARY KEY, stamp TEXT, metas BLOB)` (a rowid \
         table: rows are ~300 bytes, over the ~1/20 page that SQLite's docs give for WITHOUT ROWID), \
         journal_mode=WAL, default page and cache sizes. Non-durable commit: PRAGMA synchronous=NORMAL (WAL \
         written, no fsync; the WAL is fsynced only at checkpoints). Durable commit: PRAGMA synchronous=FULL \
         (the WAL is fsynced at every commit: the same point as pushdex's sync()). Upsert with \
         INSERT .. ON CONFLICT DO UPDATE in one transaction per batch; lookups and scans through cached \
         prepared statements; range delete: DELETE WHERE uri >= ? AND uri < ?. Threads: one connection each, \
         BEGIN IMMEDIATE, busy_timeout 60 s.",
    ),
    (
        "redb",
        "Database::create (defaults: 1 GiB cache), TableDefinition<&str, &[u8]>, one write transaction per \
         batch. Non-durable: Durability::None. Durable: Durability::Immediate (the default). Lookups: one read \
         transaction per batch of 1,000; range delete: Table::retain_in(range, |_, _| false). Threads: \
         shared Database, begin_write blocks until the writer is free.",
    ),
    (
        "fjall",
        "Database::builder(dir).open() (defaults), one keyspace, one WriteBatch per batch. Non-durable: the \
         batch's default durability (PersistMode::Buffer: journal flushed to the OS). Durable: \
         PersistMode::SyncData (fdatasync of the journal). No range delete in fjall 3: the range is read and \
         removed key by key in one WriteBatch committed with SyncData. Threads: shared Database, one \
         WriteBatch(SyncData) per document.",
    ),
    (
        "lmdb",
        "heed (LMDB mdb.master), map_size 64 GiB, default flags, one write transaction per batch. \
         Non-durable: MDB_NOSYNC set on the environment for that commit. Durable: MDB_NOSYNC cleared, so \
         the commit fdatasyncs the data file and the meta page (LMDB's default). Lookups: one read \
         transaction per batch of 1,000; range delete: Database::delete_range. Threads: shared Env, \
         write_txn blocks until the writer is free.",
    ),
];
