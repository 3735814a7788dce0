//! The only door to files.
//!
//! Every byte pushdex reads or writes goes through [`Storage`] and
//! [`StorageFile`]: the real implementation ([`FsStorage`]) uses files and
//! memory maps; the fault-injecting one used by the crash tests keeps files in
//! memory, knows which bytes were fsynced, and can crash or fail on demand.
//! The trait is deliberately small so that both are easy to get right.
//!
//! Files are named by plain names inside one flat directory (`wal-1.log`,
//! `MANIFEST`, …); the storage decides where that directory is.

mod counted;
mod fs;
/// The in-memory storage of the crash and fault tests.
#[cfg(any(test, feature = "internals"))]
mod sim;

use std::any::Any;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

pub use counted::Counted;
pub use fs::FsStorage;
#[cfg(any(test, feature = "internals"))]
pub use sim::SimStorage;

/// Read-only bytes of a whole file: a memory map on the real storage.
pub type Mapped = Arc<dyn MappedBytes>;

/// What [`Storage::map`] returns.
pub trait MappedBytes: AsRef<[u8]> + Send + Sync {
    /// Lets go of the pages read so far: a memory map keeps every page it
    /// touched in the process's resident set until it is dropped, and a
    /// merge reads whole segments. They read back the same afterwards
    /// (from the page cache, else the disk). Nothing to do for bytes in
    /// memory.
    fn release(&self) {}
}

impl MappedBytes for Vec<u8> {}

/// A guard that holds the directory lock until it is dropped.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// One directory of files.
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// The directory, for error messages.
    fn root(&self) -> &Path;

    /// Creates `name` empty, replacing any file of that name.
    ///
    /// The new directory entry is durable only after [`Storage::sync_dir`].
    fn create(&self, name: &str) -> io::Result<Arc<dyn StorageFile>>;

    /// Opens the existing file `name` for reading and appending.
    fn open(&self, name: &str) -> io::Result<Arc<dyn StorageFile>>;

    /// The names of the files in the directory, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;

    /// Renames `from` to `to`, replacing `to` atomically. Durable after
    /// [`Storage::sync_dir`].
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;

    /// Removes `name`. Durable after [`Storage::sync_dir`].
    fn remove(&self, name: &str) -> io::Result<()>;

    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self) -> io::Result<()>;

    /// Maps the whole file `name` read-only.
    fn map(&self, name: &str) -> io::Result<Mapped>;

    /// A new empty file with no name, for scratch bytes (what a segment
    /// writer cannot hold in memory): appended to and read back like any
    /// other, never in [`Storage::list`], never durable, and gone when the
    /// last handle drops or the process dies, so that nothing is left to
    /// clean up after a crash.
    fn scratch(&self) -> io::Result<Arc<dyn StorageFile>>;

    /// Takes the directory's exclusive lock without waiting:
    /// `Ok(None)` when another holder has it.
    fn try_lock(&self) -> io::Result<Option<LockGuard>>;

    /// Takes the directory's lock shared, without waiting and without
    /// writing anything: `Ok(None)` while an open index holds it. Held, it
    /// keeps an open (and so a recovery, which may cut a log file) or a
    /// repair from starting (they get `Locked`), and lets others share it.
    fn try_lock_shared(&self) -> io::Result<Option<LockGuard>>;

    /// The length of file `name`, read without opening it for writing.
    fn file_len(&self, name: &str) -> io::Result<u64>;

    /// Moves (`copy == false`) or copies file `name` into the folder
    /// [`LOST_AND_FOUND`] beside the files, creating the folder, never
    /// replacing a file there (`name`, else `name.1`, `name.2`, ...).
    /// Returns the path it got, relative to the directory
    /// (`lost+found/wal-3.log`). Durable when it returns: the copy's bytes,
    /// and the directory entries of both folders.
    fn set_aside(&self, name: &str, copy: bool) -> io::Result<String>;
}

/// The folder inside a storage's directory that [`Storage::set_aside`]
/// fills: what a repair dropped, never deleted.
pub const LOST_AND_FOUND: &str = "lost+found";

/// An open file: appended to at its end, read anywhere.
///
/// Shared between threads (`&self` methods), so that one thread can fsync
/// while another appends.
// `len` is an I/O query here, not a collection's size: an `is_empty` beside
// it would only be a second way to fail.
#[allow(clippy::len_without_is_empty)]
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Appends `bytes` at the end of the file.
    fn append(&self, bytes: &[u8]) -> io::Result<()>;

    /// Fills `buf` from `offset`; an error if the file is shorter.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Cuts (or extends with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Makes the file's data durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;

    /// [`StorageFile::sync`] of the log, which makes every operation up to
    /// `serial` durable: a storage that publishes commit points (the
    /// cluster's) records the serial with the bytes; others just sync.
    fn sync_through(&self, serial: u64) -> io::Result<()> {
        let _ = serial;
        self.sync()
    }
}

/// Reads a whole file.
pub fn read_all(file: &dyn StorageFile) -> io::Result<Vec<u8>> {
    let len = usize::try_from(file.len()?).map_err(|_| io::Error::other("file too large to read"))?;
    let mut buf = vec![0; len];
    file.read_at(0, &mut buf)?;
    Ok(buf)
}
