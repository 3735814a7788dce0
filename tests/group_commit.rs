//! Many threads calling `sync()` at once share fsyncs: counted through the
//! storage trait, the fsyncs issued are well below the number of calls.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use pushdex::storage::{FsStorage, LockGuard, Mapped, Storage, StorageFile};
use pushdex::{Document, Index, Options, State};

/// The real storage, counting file fsyncs.
#[derive(Debug)]
struct CountingStorage {
    fs: FsStorage,
    syncs: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct CountingFile {
    file: Arc<dyn StorageFile>,
    syncs: Arc<AtomicUsize>,
}

impl StorageFile for CountingFile {
    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        self.file.append(bytes)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_at(offset, buf)
    }
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        // Make each fsync slow enough that callers pile up behind it, as
        // they do on a real disk.
        std::thread::sleep(std::time::Duration::from_millis(2));
        self.file.sync()
    }
}

impl CountingStorage {
    fn wrap(&self, file: Arc<dyn StorageFile>) -> Arc<dyn StorageFile> {
        Arc::new(CountingFile { file, syncs: self.syncs.clone() })
    }
}

impl Storage for CountingStorage {
    fn root(&self) -> &Path {
        self.fs.root()
    }
    fn create(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(self.fs.create(name)?))
    }
    fn open(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(self.fs.open(name)?))
    }
    fn list(&self) -> io::Result<Vec<String>> {
        self.fs.list()
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.fs.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.fs.remove(name)
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.fs.sync_dir()
    }
    fn map(&self, name: &str) -> io::Result<Mapped> {
        self.fs.map(name)
    }
    fn scratch(&self) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(self.fs.scratch()?))
    }
    fn try_lock(&self) -> io::Result<Option<LockGuard>> {
        self.fs.try_lock()
    }
    fn try_lock_shared(&self) -> io::Result<Option<LockGuard>> {
        self.fs.try_lock_shared()
    }
    fn file_len(&self, name: &str) -> io::Result<u64> {
        self.fs.file_len(name)
    }
    fn set_aside(&self, name: &str, copy: bool) -> io::Result<String> {
        self.fs.set_aside(name, copy)
    }
}

#[test]
fn concurrent_syncs_share_fsyncs() {
    const THREADS: usize = 16;
    const ROUNDS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let syncs = Arc::new(AtomicUsize::new(0));
    let storage = CountingStorage { fs: FsStorage::new(dir.path()).unwrap(), syncs: syncs.clone() };
    let index = Index::open_with_storage(Arc::new(storage), Options::default()).unwrap();
    let before = syncs.load(Ordering::SeqCst);
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let index = index.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                for i in 0..ROUNDS {
                    let serial = index.add(Document::new(format!("t{t}/{i}"))).unwrap();
                    let synced = index.sync().unwrap();
                    // The contract of sync(): on return, every earlier
                    // operation (ours included) is Synced.
                    assert!(synced >= serial);
                    assert!(index.state_of(serial) >= State::Synced);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let fsyncs = syncs.load(Ordering::SeqCst) - before;
    let calls = THREADS * ROUNDS;
    println!("{calls} sync() calls issued {fsyncs} fsyncs");
    assert!(fsyncs * 2 < calls, "{calls} sync() calls issued {fsyncs} fsyncs: group commit is not grouping");
    assert_eq!(index.watermarks().synced, index.watermarks().last);
    index.close().unwrap();
}

#[test]
fn a_sync_with_nothing_new_issues_no_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let syncs = Arc::new(AtomicUsize::new(0));
    let storage = CountingStorage { fs: FsStorage::new(dir.path()).unwrap(), syncs: syncs.clone() };
    let index = Index::open_with_storage(Arc::new(storage), Options::default()).unwrap();
    index.add(Document::new("a")).unwrap();
    index.sync().unwrap();
    let after_first = syncs.load(Ordering::SeqCst);
    for _ in 0..10 {
        index.sync().unwrap();
    }
    assert_eq!(syncs.load(Ordering::SeqCst), after_first);
}
