//! pushdex itself, through its public API only.

use std::ops::ControlFlow;
use std::path::Path;

use pushdex::{Analyzer, Document, EntryRef, EnumerationMode, Index, Options, Query};

use super::{Engine, SearchEngine, Writer};
use crate::data::{Doc, TextDoc};
use crate::Res;

pub struct Pushdex {
    index: Index,
}

fn document(doc: Doc) -> Document {
    let mut d = Document::new(doc.uri).with_stamp(doc.stamp);
    for (name, value) in doc.metas {
        d = d.with_meta(name, value);
    }
    d
}

impl Engine for Pushdex {
    type Writer = PushdexWriter;

    fn open(dir: &Path) -> Res<Self> {
        Ok(Pushdex { index: Index::open(dir)? })
    }

    fn put_batch(&mut self, docs: Vec<Doc>, durable: bool) -> Res<()> {
        self.index.add_all(docs.into_iter().map(document))?;
        if durable {
            self.index.sync()?;
        }
        Ok(())
    }

    fn stamps(&mut self, uris: &[String], out: &mut Vec<Option<String>>) -> Res<()> {
        out.clear();
        for uri in uris {
            let status = self.index.status(uri)?;
            out.push(status.exists().then_some(status.stamp));
        }
        Ok(())
    }

    fn scan(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &str)) -> Res<u64> {
        // A folder prefix ("…/dept03/") is a root as it is. pushdex enumerates
        // folders, not raw prefixes: a raw one (only the checks after a
        // delete_with_prefix ask for it) enumerates its folder and filters.
        // The borrowing walk (`enumerate_with`): no `String` per entry, as
        // the peers' range scans lend their keys and values.
        let root = &prefix[..prefix.rfind('/').map_or(0, |i| i + 1)];
        let mut n = 0;
        let walked = self.index.enumerate_with(root, EnumerationMode::RecursiveDocuments, |entry| {
            if let EntryRef::Document(doc) = entry {
                if root.len() == prefix.len() || doc.uri.starts_with(prefix) {
                    f(doc.uri, doc.stamp);
                    n += 1;
                }
            }
            ControlFlow::<()>::Continue(())
        })?;
        debug_assert!(walked.is_continue());
        Ok(n)
    }

    fn delete_under(&mut self, root: &str) -> Res<()> {
        self.index.delete_root_path(root, true)?;
        self.index.sync()?;
        Ok(())
    }

    fn delete_prefix(&mut self, prefix: &str) -> Res<()> {
        self.index.delete_with_prefix(prefix)?;
        self.index.sync()?;
        Ok(())
    }

    fn writer(&mut self) -> Res<PushdexWriter> {
        Ok(PushdexWriter { index: self.index.clone() })
    }

    fn close(self) -> Res<()> {
        Ok(self.index.close()?)
    }
}

pub struct PushdexWriter {
    index: Index,
}

impl Writer for PushdexWriter {
    fn put_durable(&mut self, doc: Doc) -> Res<()> {
        self.index.add(document(doc))?;
        self.index.sync()?;
        Ok(())
    }
}

/// pushdex as a full-text index (the search workload).
pub struct PushdexSearch {
    index: Index,
}

fn text_document(doc: TextDoc) -> Document {
    Document::new(doc.uri).with_stamp(doc.stamp).with_text("body", doc.body)
}

/// Every word in the `body` text part: `Text` for one word, `And` of
/// `Text`s for more.
fn words_query(words: &[&str]) -> Query {
    let text = |w: &str| Query::Text { field: Some("body".to_string()), text: w.to_string() };
    match words {
        [one] => text(one),
        _ => Query::And(words.iter().map(|w| text(w)).collect()),
    }
}

/// The words adjacent, in this order, in `body`.
fn phrase_query(words: &[&str]) -> Query {
    Query::Phrase { field: Some("body".to_string()), text: words.join(" "), slop: 0 }
}

impl PushdexSearch {
    fn top_of(&mut self, query: &Query, limit: usize, out: &mut Vec<(String, String)>) -> Res<()> {
        out.clear();
        let hits = self.index.search(query, limit)?;
        out.extend(hits.into_iter().map(|h| (h.uri, h.stamp)));
        Ok(())
    }
}

impl SearchEngine for PushdexSearch {
    /// With `Analyzer::Exact`: lower-cased words as written, what tantivy's
    /// default tokenizer makes of them (the default English analyzer would
    /// also stem, which tantivy's default does not).
    fn open(dir: &Path) -> Res<Self> {
        Ok(PushdexSearch { index: Index::open_with(dir, Options::default().analyzer(Analyzer::Exact))? })
    }

    fn add_batch(&mut self, docs: Vec<TextDoc>) -> Res<()> {
        self.index.add_all(docs.into_iter().map(text_document))?;
        Ok(())
    }

    fn add_one(&mut self, doc: TextDoc) -> Res<()> {
        self.index.add(text_document(doc))?;
        Ok(())
    }

    fn make_searchable(&mut self) -> Res<()> {
        self.index.refresh()?;
        Ok(())
    }

    fn top(&mut self, words: &[&str], limit: usize, out: &mut Vec<(String, String)>) -> Res<()> {
        self.top_of(&words_query(words), limit, out)
    }

    fn count(&mut self, words: &[&str]) -> Res<u64> {
        Ok(self.index.search_count(&words_query(words))?)
    }

    fn top_any(&mut self, words: &[&str], limit: usize, out: &mut Vec<(String, String)>) -> Res<()> {
        let query = Query::Any { field: Some("body".to_string()), text: words.join(" "), min_should_match: 1 };
        self.top_of(&query, limit, out)
    }

    fn top_phrase(&mut self, words: &[&str], limit: usize, out: &mut Vec<(String, String)>) -> Res<()> {
        self.top_of(&phrase_query(words), limit, out)
    }

    fn count_phrase(&mut self, words: &[&str]) -> Res<u64> {
        Ok(self.index.search_count(&phrase_query(words))?)
    }

    fn close(self) -> Res<()> {
        Ok(self.index.close()?)
    }
}
