//! The real storage: a directory of the file system.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{LockGuard, Mapped, MappedBytes, Storage, StorageFile};
use crate::files::LOCK;

/// Files in a directory of the file system, mapped with `memmap2`.
#[derive(Debug)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Storage in `root`, creating the directory (and its parents) if missing.
    pub fn new(root: impl AsRef<Path>) -> io::Result<FsStorage> {
        let root = root.as_ref().to_path_buf();
        if let Err(e) = fs::create_dir_all(&root) {
            // "File exists" says nothing of which file, or why it matters.
            if root.exists() && !root.is_dir() {
                let why = format!("{} is a file, not a directory: an index is a directory", root.display());
                return Err(io::Error::new(io::ErrorKind::NotADirectory, why));
            }
            return Err(e);
        }
        Ok(FsStorage { root })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

#[derive(Debug)]
struct FsFile {
    file: File,
}

impl StorageFile for FsFile {
    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        // The file is opened in append mode: every write lands at the end.
        (&self.file).write_all(bytes)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

struct MappedFile(memmap2::Mmap);

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl MappedBytes for MappedFile {
    fn release(&self) {
        // SAFETY: a shared read-only map of a file that is never modified
        // once mapped (see `map`): the pages dropped read back with the
        // same bytes, so no borrow of the map sees a change. Advice only:
        // a failure changes nothing.
        let _ = unsafe { self.0.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
    }
}

impl Storage for FsStorage {
    fn root(&self) -> &Path {
        &self.root
    }

    fn create(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).append(true).create(true).truncate(false).open(self.path(name))?;
        file.set_len(0)?;
        Ok(Arc::new(FsFile { file }))
    }

    fn open(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).append(true).open(self.path(name))?;
        Ok(Arc::new(FsFile { file }))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.path(from), self.path(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.root)?.sync_all()
    }

    fn map(&self, name: &str) -> io::Result<Mapped> {
        let file = File::open(self.path(name))?;
        if file.metadata()?.len() == 0 {
            // Mapping an empty file fails on some systems; nothing to map anyway.
            return Ok(Arc::new(Vec::<u8>::new()));
        }
        // SAFETY: pushdex never modifies a file after it has been written,
        // fsynced and mapped (segments are immutable; the log is read, not
        // mapped), and the directory lock keeps other pushdex processes out.
        // A user editing index files by hand while the index is open is
        // outside what any memory-mapped engine can defend against.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Arc::new(MappedFile(map)))
    }

    fn scratch(&self) -> io::Result<Arc<dyn StorageFile>> {
        // An unnamed file in the directory, where the file system has them.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let unnamed = OpenOptions::new().read(true).append(true).custom_flags(libc::O_TMPFILE).mode(0o600).open(&self.root);
            if let Ok(file) = unnamed {
                return Ok(Arc::new(FsFile { file }));
            }
        }
        // Else a named one, removed at once (its data stays until closed).
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.path(&format!(".scratch-{}-{n}", std::process::id()));
        let file = OpenOptions::new().read(true).append(true).create_new(true).open(&path)?;
        fs::remove_file(&path)?;
        Ok(Arc::new(FsFile { file }))
    }

    fn try_lock_shared(&self) -> io::Result<Option<LockGuard>> {
        let file = match File::open(self.path(LOCK)) {
            Ok(file) => file,
            // Never opened: nothing can hold it (an open creates it first).
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(Box::new(()))),
            Err(e) => return Err(e),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(Box::new(file))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn file_len(&self, name: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(name))?.len())
    }

    fn set_aside(&self, name: &str, copy: bool) -> io::Result<String> {
        let folder = self.root.join(super::LOST_AND_FOUND);
        if !folder.is_dir() {
            fs::create_dir(&folder)?;
            // The folder's own entry, before anything is put in it.
            File::open(&self.root)?.sync_all()?;
        }
        let mut there = name.to_string();
        let mut n = 0;
        while folder.join(&there).exists() {
            n += 1;
            there = format!("{name}.{n}");
        }
        let to = folder.join(&there);
        if copy {
            fs::copy(self.path(name), &to)?;
            File::open(&to)?.sync_all()?;
        } else {
            fs::rename(self.path(name), &to)?;
            File::open(&self.root)?.sync_all()?;
        }
        File::open(&folder)?.sync_all()?;
        Ok(format!("{}/{there}", super::LOST_AND_FOUND))
    }

    fn try_lock(&self) -> io::Result<Option<LockGuard>> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(self.path(LOCK))?;
        // A flock belongs to the open file, which a child forked by any
        // thread of this process shares until it execs (the descriptor is
        // close-on-exec): an index closed in that window stays locked for
        // as long. A few short retries wait that out; a lock held by an
        // open index is still refused at once for all practical purposes.
        for wait_ms in [0, 1, 2, 4, 8] {
            std::thread::sleep(std::time::Duration::from_millis(wait_ms));
            match file.try_lock() {
                Ok(()) => return Ok(Some(Box::new(file))),
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
        Ok(None)
    }
}
