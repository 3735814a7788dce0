//! A [`Storage`] that counts the bytes appended through it: what an index
//! writes (log, segments, manifests, bitmaps), for `Index::bytes_written`.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{LockGuard, Mapped, Storage, StorageFile};

/// Wraps a storage; every file it creates or opens adds what is appended to
/// it to one shared count.
#[derive(Debug)]
pub struct Counted {
    inner: Arc<dyn Storage>,
    written: Arc<AtomicU64>,
}

impl Counted {
    /// `inner`, counting into `written`.
    pub fn new(inner: Arc<dyn Storage>, written: Arc<AtomicU64>) -> Counted {
        Counted { inner, written }
    }

    fn wrap(&self, file: Arc<dyn StorageFile>) -> Arc<dyn StorageFile> {
        Arc::new(CountedFile { inner: file, written: self.written.clone() })
    }
}

impl Storage for Counted {
    fn root(&self) -> &Path {
        self.inner.root()
    }

    fn create(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(self.inner.create(name)?))
    }

    fn open(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(self.inner.open(name)?))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.inner.sync_dir()
    }

    fn map(&self, name: &str) -> io::Result<Mapped> {
        self.inner.map(name)
    }

    fn scratch(&self) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(self.inner.scratch()?))
    }

    fn try_lock(&self) -> io::Result<Option<LockGuard>> {
        self.inner.try_lock()
    }

    fn try_lock_shared(&self) -> io::Result<Option<LockGuard>> {
        self.inner.try_lock_shared()
    }

    fn file_len(&self, name: &str) -> io::Result<u64> {
        self.inner.file_len(name)
    }

    fn set_aside(&self, name: &str, copy: bool) -> io::Result<String> {
        self.inner.set_aside(name, copy)
    }
}

#[derive(Debug)]
struct CountedFile {
    inner: Arc<dyn StorageFile>,
    written: Arc<AtomicU64>,
}

impl StorageFile for CountedFile {
    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        self.inner.append(bytes)?;
        self.written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }

    fn sync_through(&self, serial: u64) -> io::Result<()> {
        self.inner.sync_through(serial)
    }
}
