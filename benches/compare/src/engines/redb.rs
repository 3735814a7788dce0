//! redb: one copy-on-write B-tree file, a write transaction per batch.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Engine, Writer};
use crate::data::{decode_stamp, encode_value, folder_prefix, prefix_end, Doc};
use crate::Res;

const DOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("docs");

pub struct Redb {
    db: Arc<Database>,
}

impl Engine for Redb {
    type Writer = RedbWriter;

    fn open(dir: &Path) -> Res<Self> {
        let db = Database::create(dir.join("docs.redb"))?;
        // Create the table, so that readers find it even before the first batch.
        let txn = db.begin_write()?;
        txn.open_table(DOCS)?;
        txn.commit()?;
        Ok(Redb { db: Arc::new(db) })
    }

    fn put_batch(&mut self, docs: Vec<Doc>, durable: bool) -> Res<()> {
        let mut txn = self.db.begin_write()?;
        if !durable {
            txn.set_durability(Durability::None)?;
        }
        {
            let mut table = txn.open_table(DOCS)?;
            for doc in &docs {
                table.insert(doc.uri.as_str(), encode_value(doc).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn stamps(&mut self, uris: &[String], out: &mut Vec<Option<String>>) -> Res<()> {
        out.clear();
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DOCS)?;
        for uri in uris {
            // The trait's lifetime-bound accessor, as redb's own benchmarks use it
            // (the inherent `get` returns a reference-counted guard).
            out.push(match ReadableTable::get(&table, uri.as_str())? {
                Some(v) => Some(decode_stamp(v.value())?.to_string()),
                None => None,
            });
        }
        Ok(())
    }

    fn scan(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &str)) -> Res<u64> {
        let end = prefix_end(prefix);
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DOCS)?;
        let mut n = 0;
        for item in ReadableTable::range::<&str>(&table, prefix..end.as_str())? {
            let (k, v) = item?;
            f(k.value(), decode_stamp(v.value())?);
            n += 1;
        }
        Ok(n)
    }

    fn delete_under(&mut self, root: &str) -> Res<()> {
        self.delete_prefix(&folder_prefix(root))
    }

    fn delete_prefix(&mut self, prefix: &str) -> Res<()> {
        let end = prefix_end(prefix);
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(DOCS)?;
            table.retain_in::<&str, _>(prefix..end.as_str(), |_, _| false)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn writer(&mut self) -> Res<RedbWriter> {
        Ok(RedbWriter { db: self.db.clone() })
    }

    fn close(self) -> Res<()> {
        let db = Arc::try_unwrap(self.db).map_err(|_| "redb: a writer still holds the database")?;
        db.close()?;
        Ok(())
    }
}

pub struct RedbWriter {
    db: Arc<Database>,
}

impl Writer for RedbWriter {
    fn put_durable(&mut self, doc: Doc) -> Res<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(DOCS)?.insert(doc.uri.as_str(), encode_value(&doc).as_slice())?;
        txn.commit()?;
        Ok(())
    }
}
