//! SQLite in WAL mode; `synchronous` follows the durability of each commit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Engine, Writer};
use crate::data::{encode_metas, prefix_end, Doc};
use crate::Res;

const UPSERT: &str = "INSERT INTO docs (uri, stamp, metas) VALUES (?1, ?2, ?3) \
                      ON CONFLICT (uri) DO UPDATE SET stamp = excluded.stamp, metas = excluded.metas";

pub struct Sqlite {
    conn: Connection,
    path: PathBuf,
    /// The `synchronous` setting in force: FULL for a durable commit (the
    /// WAL is fsynced at commit), NORMAL otherwise (fsynced at checkpoints).
    full: bool,
}

fn connect(path: &Path) -> Res<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

fn set_full(conn: &Connection, full: &mut bool, want: bool) -> Res<()> {
    if *full != want {
        conn.pragma_update(None, "synchronous", if want { "FULL" } else { "NORMAL" })?;
        *full = want;
    }
    Ok(())
}

impl Engine for Sqlite {
    type Writer = SqliteWriter;

    fn open(dir: &Path) -> Res<Self> {
        let path = dir.join("docs.sqlite");
        let conn = connect(&path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS docs (uri TEXT PRIMARY KEY NOT NULL, stamp TEXT NOT NULL, metas BLOB NOT NULL)",
        )?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(Sqlite { conn, path, full: true })
    }

    fn put_batch(&mut self, docs: Vec<Doc>, durable: bool) -> Res<()> {
        set_full(&self.conn, &mut self.full, durable)?;
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(UPSERT)?;
            for doc in &docs {
                stmt.execute(params![doc.uri, doc.stamp, encode_metas(doc)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn stamps(&mut self, uris: &[String], out: &mut Vec<Option<String>>) -> Res<()> {
        out.clear();
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("SELECT stamp FROM docs WHERE uri = ?1")?;
            for uri in uris {
                out.push(stmt.query_row([uri], |row| row.get::<_, String>(0)).optional()?);
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn scan(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &str)) -> Res<u64> {
        let end = prefix_end(prefix);
        let mut stmt =
            self.conn.prepare_cached("SELECT uri, stamp FROM docs WHERE uri >= ?1 AND uri < ?2 ORDER BY uri")?;
        let mut rows = stmt.query([prefix, end.as_str()])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            f(row.get_ref(0)?.as_str()?, row.get_ref(1)?.as_str()?);
            n += 1;
        }
        Ok(n)
    }

    fn delete_under(&mut self, root: &str) -> Res<()> {
        self.delete_prefix(&crate::data::folder_prefix(root))
    }

    fn delete_prefix(&mut self, prefix: &str) -> Res<()> {
        set_full(&self.conn, &mut self.full, true)?;
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM docs WHERE uri >= ?1 AND uri < ?2", [prefix, prefix_end(prefix).as_str()])?;
        tx.commit()?;
        Ok(())
    }

    fn writer(&mut self) -> Res<SqliteWriter> {
        let conn = connect(&self.path)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(SqliteWriter { conn })
    }

    fn close(self) -> Res<()> {
        self.conn.close().map_err(|(_, e)| e)?;
        Ok(())
    }
}

pub struct SqliteWriter {
    conn: Connection,
}

impl Writer for SqliteWriter {
    fn put_durable(&mut self, doc: Doc) -> Res<()> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached(UPSERT)?.execute(params![doc.uri, doc.stamp, encode_metas(&doc)])?;
        tx.commit()?;
        Ok(())
    }
}
