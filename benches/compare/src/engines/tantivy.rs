//! tantivy, for the search workload only, used the way its examples
//! (basic_search.rs, reload_after_commit.rs) use it.

use std::path::Path;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, PhraseQuery, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, Value, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::SearchEngine;
use crate::data::TextDoc;
use crate::Res;

/// The writer's memory budget, split among its indexing threads.
const WRITER_BUDGET: usize = 100_000_000;

pub struct Tantivy {
    index: Index,
    writer: IndexWriter,
    reader: IndexReader,
    uri: Field,
    stamp: Field,
    body: Field,
}

impl Tantivy {
    /// Every word in `body`: a TermQuery for one word, a BooleanQuery of
    /// Must TermQuerys for more. The words are lower-case ASCII already: what
    /// the default tokenizer makes of them.
    fn query(&self, words: &[&str]) -> Box<dyn Query> {
        let term = |w: &str| TermQuery::new(Term::from_field_text(self.body, w), IndexRecordOption::WithFreqs);
        match words {
            [one] => Box::new(term(one)),
            _ => Box::new(BooleanQuery::new(
                words.iter().map(|w| (Occur::Must, Box::new(term(w)) as Box<dyn Query>)).collect(),
            )),
        }
    }

    /// At least one word in `body`: a BooleanQuery of Should TermQuerys.
    fn any_query(&self, words: &[&str]) -> Box<dyn Query> {
        let term = |w: &str| TermQuery::new(Term::from_field_text(self.body, w), IndexRecordOption::WithFreqs);
        Box::new(BooleanQuery::new(
            words.iter().map(|w| (Occur::Should, Box::new(term(w)) as Box<dyn Query>)).collect(),
        ))
    }

    /// The words adjacent, in order: a PhraseQuery (slop 0).
    fn phrase_query(&self, words: &[&str]) -> Box<dyn Query> {
        Box::new(PhraseQuery::new(words.iter().map(|w| Term::from_field_text(self.body, w)).collect()))
    }

    fn top_of(&mut self, query: &dyn Query, limit: usize, out: &mut Vec<(String, String)>) -> Res<()> {
        out.clear();
        let searcher = self.reader.searcher();
        for (_score, address) in searcher.search(query, &TopDocs::with_limit(limit).order_by_score())? {
            let doc: TantivyDocument = searcher.doc(address)?;
            let text = |f: Field| doc.get_first(f).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            out.push((text(self.uri), text(self.stamp)));
        }
        Ok(())
    }
}

impl SearchEngine for Tantivy {
    fn open(dir: &Path) -> Res<Self> {
        let mut builder = Schema::builder();
        let uri = builder.add_text_field("uri", STRING | STORED);
        let stamp = builder.add_text_field("stamp", STORED);
        let body = builder.add_text_field("body", TEXT);
        let index = Index::create_in_dir(dir, builder.build())?;
        let writer: IndexWriter = index.writer(WRITER_BUDGET)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Tantivy { index, writer, reader, uri, stamp, body })
    }

    fn add_batch(&mut self, docs: Vec<TextDoc>) -> Res<()> {
        for d in docs {
            self.writer.add_document(doc!(self.uri => d.uri, self.stamp => d.stamp, self.body => d.body))?;
        }
        Ok(())
    }

    fn make_searchable(&mut self) -> Res<()> {
        self.writer.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    fn top(&mut self, words: &[&str], limit: usize, out: &mut Vec<(String, String)>) -> Res<()> {
        let query = self.query(words);
        self.top_of(query.as_ref(), limit, out)
    }

    fn count(&mut self, words: &[&str]) -> Res<u64> {
        let searcher = self.reader.searcher();
        Ok(searcher.search(&self.query(words), &Count)? as u64)
    }

    fn top_any(&mut self, words: &[&str], limit: usize, out: &mut Vec<(String, String)>) -> Res<()> {
        let query = self.any_query(words);
        self.top_of(query.as_ref(), limit, out)
    }

    fn top_phrase(&mut self, words: &[&str], limit: usize, out: &mut Vec<(String, String)>) -> Res<()> {
        let query = self.phrase_query(words);
        self.top_of(query.as_ref(), limit, out)
    }

    fn count_phrase(&mut self, words: &[&str]) -> Res<u64> {
        let searcher = self.reader.searcher();
        Ok(searcher.search(&self.phrase_query(words), &Count)? as u64)
    }

    fn describe(&mut self) -> String {
        let searcher = self.reader.searcher();
        format!("{} segments", searcher.segment_readers().len())
    }

    fn close(self) -> Res<()> {
        let Tantivy { index, writer, reader, .. } = self;
        drop(reader);
        writer.wait_merging_threads()?;
        drop(index);
        Ok(())
    }
}
