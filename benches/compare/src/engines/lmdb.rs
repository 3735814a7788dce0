//! LMDB through heed: one memory-mapped B-tree, a write transaction per batch.

use std::ops::Bound;
use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, FlagSetMode};

use super::{Engine, Writer};
use crate::data::{decode_stamp, encode_value, folder_prefix, prefix_end, Doc};
use crate::Res;

type Docs = Database<'static, Bytes, Bytes>;

/// The map is address space, not memory or disk: the file grows as pages are used.
const MAP_SIZE: usize = 64 << 30;

pub struct Lmdb {
    env: Env,
    docs: Docs,
    /// Whether MDB_NOSYNC is set on the environment.
    nosync: bool,
}

impl Lmdb {
    /// Sets or clears MDB_NOSYNC so that the next commit is (not) durable.
    fn durable(&mut self, durable: bool) -> Res<()> {
        if self.nosync == durable {
            let mode = if durable { FlagSetMode::Disable } else { FlagSetMode::Enable };
            // SAFETY: one thread changes the flags, and no writer of another
            // thread is running (the group-commit writers come and go while
            // the flag stays cleared).
            unsafe { self.env.set_flags(EnvFlags::NO_SYNC, mode)? };
            self.nosync = !durable;
        }
        Ok(())
    }
}

impl Engine for Lmdb {
    type Writer = LmdbWriter;

    fn open(dir: &Path) -> Res<Self> {
        // SAFETY: the directory is this process's alone and is opened once;
        // LMDB's files are not truncated or written by anything else.
        let env = unsafe { EnvOpenOptions::new().map_size(MAP_SIZE).open(dir)? };
        let wtxn = env.write_txn()?;
        let docs = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> Result<_, heed::Error> {
                Ok(CommitOrAbort::<_, ()>::Commit(opener.create_database::<Bytes, Bytes>(wtxn, None)?))
            })?
            .unwrap_commit();
        Ok(Lmdb { env, docs, nosync: false })
    }

    fn put_batch(&mut self, docs: Vec<Doc>, durable: bool) -> Res<()> {
        self.durable(durable)?;
        let mut wtxn = self.env.write_txn()?;
        for doc in &docs {
            self.docs.put(&mut wtxn, doc.uri.as_bytes(), &encode_value(doc))?;
        }
        wtxn.commit()?;
        Ok(())
    }

    fn stamps(&mut self, uris: &[String], out: &mut Vec<Option<String>>) -> Res<()> {
        out.clear();
        let rtxn = self.env.read_txn()?;
        for uri in uris {
            out.push(match self.docs.get(&rtxn, uri.as_bytes())? {
                Some(v) => Some(decode_stamp(v)?.to_string()),
                None => None,
            });
        }
        Ok(())
    }

    fn scan(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &str)) -> Res<u64> {
        let rtxn = self.env.read_txn()?;
        let mut n = 0;
        for item in self.docs.prefix_iter(&rtxn, prefix.as_bytes())? {
            let (k, v) = item?;
            f(std::str::from_utf8(k)?, decode_stamp(v)?);
            n += 1;
        }
        Ok(n)
    }

    fn delete_under(&mut self, root: &str) -> Res<()> {
        self.delete_prefix(&folder_prefix(root))
    }

    fn delete_prefix(&mut self, prefix: &str) -> Res<()> {
        self.durable(true)?;
        let end = prefix_end(prefix);
        let mut wtxn = self.env.write_txn()?;
        let range = (Bound::Included(prefix.as_bytes()), Bound::Excluded(end.as_bytes()));
        self.docs.delete_range(&mut wtxn, &range)?;
        wtxn.commit()?;
        Ok(())
    }

    fn writer(&mut self) -> Res<LmdbWriter> {
        self.durable(true)?;
        Ok(LmdbWriter { env: self.env.clone(), docs: self.docs })
    }

    fn close(mut self) -> Res<()> {
        self.durable(true)?;
        self.env.force_sync()?;
        self.env.prepare_for_closing().wait();
        Ok(())
    }
}

pub struct LmdbWriter {
    env: Env,
    docs: Docs,
}

impl Writer for LmdbWriter {
    fn put_durable(&mut self, doc: Doc) -> Res<()> {
        let mut wtxn = self.env.write_txn()?;
        self.docs.put(&mut wtxn, doc.uri.as_bytes(), &encode_value(&doc))?;
        wtxn.commit()?;
        Ok(())
    }
}
