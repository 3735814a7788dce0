//! fjall: an LSM-tree with a journal, one keyspace, a WriteBatch per batch.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Engine, Writer};
use crate::data::{decode_stamp, encode_value, folder_prefix, Doc};
use crate::Res;

pub struct Fjall {
    db: Database,
    docs: Keyspace,
}

fn durability(durable: bool) -> Option<PersistMode> {
    // Buffer is what Database::batch() sets by default: the journal is
    // handed to the OS, not fsynced. SyncData is fdatasync, as pushdex's sync.
    Some(if durable { PersistMode::SyncData } else { PersistMode::Buffer })
}

impl Engine for Fjall {
    type Writer = FjallWriter;

    fn open(dir: &Path) -> Res<Self> {
        let db = Database::builder(dir).open()?;
        let docs = db.keyspace("docs", KeyspaceCreateOptions::default)?;
        Ok(Fjall { db, docs })
    }

    fn put_batch(&mut self, docs: Vec<Doc>, durable: bool) -> Res<()> {
        let mut batch = self.db.batch().durability(durability(durable));
        for doc in &docs {
            batch.insert(&self.docs, doc.uri.as_str(), encode_value(doc));
        }
        batch.commit()?;
        Ok(())
    }

    fn stamps(&mut self, uris: &[String], out: &mut Vec<Option<String>>) -> Res<()> {
        out.clear();
        for uri in uris {
            out.push(match self.docs.get(uri)? {
                Some(v) => Some(decode_stamp(&v)?.to_string()),
                None => None,
            });
        }
        Ok(())
    }

    fn scan(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &str)) -> Res<u64> {
        let mut n = 0;
        for guard in self.docs.prefix(prefix) {
            let (k, v) = guard.into_inner()?;
            f(std::str::from_utf8(&k)?, decode_stamp(&v)?);
            n += 1;
        }
        Ok(n)
    }

    fn delete_under(&mut self, root: &str) -> Res<()> {
        self.delete_prefix(&folder_prefix(root))
    }

    fn delete_prefix(&mut self, prefix: &str) -> Res<()> {
        let mut batch = self.db.batch().durability(durability(true));
        for guard in self.docs.prefix(prefix) {
            batch.remove(&self.docs, guard.key()?);
        }
        batch.commit()?;
        Ok(())
    }

    fn writer(&mut self) -> Res<FjallWriter> {
        Ok(FjallWriter { db: self.db.clone(), docs: self.docs.clone() })
    }

    fn close(self) -> Res<()> {
        // Dropping the last handle persists the journal (SyncAll) and stops
        // the background workers; make the durability explicit first.
        self.db.persist(PersistMode::SyncAll)?;
        let Fjall { db, docs } = self;
        drop(docs);
        drop(db);
        Ok(())
    }
}

pub struct FjallWriter {
    db: Database,
    docs: Keyspace,
}

impl Writer for FjallWriter {
    fn put_durable(&mut self, doc: Doc) -> Res<()> {
        let mut batch = self.db.batch().durability(durability(true));
        batch.insert(&self.docs, doc.uri.as_str(), encode_value(&doc));
        batch.commit()?;
        Ok(())
    }
}
