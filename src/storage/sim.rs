//! A simulated storage for crash and fault tests: files live in memory, and
//! the storage knows which bytes and which directory entries are durable.
//!
//! What it models, after a real file system with ordered metadata (ext4's
//! default):
//!
//! * a file's bytes are durable up to its last [`StorageFile::sync`]; bytes
//!   written since may be lost in a crash, or (a *torn* crash) survive in
//!   part: a prefix of what was appended since the sync;
//! * directory entries (creations, renames, removals) are durable at the last
//!   [`Storage::sync_dir`]; those made since are lost in a crash, or (torn)
//!   a prefix of them, in the order they were made, survives;
//! * [`SimStorage::crash_after`] crashes the storage at its k-th write
//!   operation: that operation and every later one fail, as if the process
//!   had died there. [`SimStorage::recover`] then gives the storage a new
//!   process would find;
//! * [`SimStorage::fail_op`] fails one operation with an I/O error (`EIO`,
//!   `ENOSPC`, ...), and [`SimStorage::fail_syncs_from`] fails every fsync
//!   from some operation on, leaving the file or directory as it was.
//!
//! Operations are numbered from 1 in the order they are called: all of them
//! for [`SimStorage::fail_op`], the *write* operations (create, rename,
//! remove, sync_dir, append, set_len, sync) for [`SimStorage::crash_after`],
//! since a crash after a read leaves what a crash before it leaves.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{LockGuard, Mapped, Storage, StorageFile};
use crate::files::LOCK;

/// An in-memory, fault-injecting [`Storage`].
#[derive(Clone)]
pub struct SimStorage {
    root: PathBuf,
    state: Arc<Mutex<State>>,
}

/// The contents of one file, shared by every handle open on it.
#[derive(Default)]
struct Node {
    data: Mutex<Data>,
}

#[derive(Default, Clone)]
struct Data {
    bytes: Vec<u8>,
    /// The contents as of the last sync.
    durable: Vec<u8>,
    /// The lowest offset changed since the last sync.
    dirty_from: usize,
}

/// A directory change not yet made durable by `sync_dir`.
#[derive(Clone)]
enum DirOp {
    Put(String, Arc<Node>),
    Remove(String),
}

#[derive(Default)]
struct State {
    /// What the running process sees.
    live: BTreeMap<String, Arc<Node>>,
    /// The directory as of the last `sync_dir`.
    durable: BTreeMap<String, Arc<Node>>,
    /// Directory changes since the last `sync_dir`, in order.
    journal: Vec<DirOp>,
    ops: u64,
    writes: u64,
    crash_after: Option<u64>,
    crashed: bool,
    fail_op: Option<(u64, i32)>,
    fail_syncs_from: Option<u64>,
    /// The injected failures that fired: operation and file.
    fired: Vec<String>,
    /// Scratch files created ([`Storage::scratch`]).
    scratch_files: u64,
    locked: bool,
    /// What [`Storage::set_aside`] put in `lost+found/`, by name there:
    /// durable at once, and out of [`Storage::list`]'s sight, as the
    /// subfolder is on a file system.
    aside: BTreeMap<String, Vec<u8>>,
}

/// Which operation is running: every operation counts in `ops`; writes also
/// count in `writes`, the numbering of crash points.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Sync,
}

const EIO: i32 = 5;

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the storage is gone")
}

impl State {
    /// Counts one operation (`what` names it in the record of failures,
    /// made only for one that fires); the error it must fail with, if any.
    fn begin(&mut self, kind: Kind, what: &dyn Fn() -> String) -> io::Result<()> {
        if self.crashed {
            return Err(crashed());
        }
        self.ops += 1;
        if kind != Kind::Read {
            self.writes += 1;
            if self.crash_after.is_some_and(|k| self.writes > k) {
                self.crashed = true;
                return Err(crashed());
            }
        }
        if let Some((n, errno)) = self.fail_op {
            if n == self.ops {
                self.fired.push(what());
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
        if kind == Kind::Sync && self.fail_syncs_from.is_some_and(|n| self.ops >= n) {
            self.fired.push(what());
            return Err(io::Error::from_raw_os_error(EIO));
        }
        Ok(())
    }

    fn put(&mut self, name: &str, node: Arc<Node>) {
        self.live.insert(name.to_string(), node.clone());
        self.journal.push(DirOp::Put(name.to_string(), node));
    }

    fn remove(&mut self, name: &str) -> io::Result<Arc<Node>> {
        let node = self.live.remove(name).ok_or_else(|| not_found(name))?;
        self.journal.push(DirOp::Remove(name.to_string()));
        Ok(node)
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
}

impl SimStorage {
    /// An empty storage; `root` only names it in error messages.
    pub fn new(root: impl AsRef<Path>) -> SimStorage {
        SimStorage { root: root.as_ref().to_path_buf(), state: Arc::default() }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Operations so far (reads included).
    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// Write operations so far: the crash points.
    pub fn writes(&self) -> u64 {
        self.state().writes
    }

    /// Crashes at write operation `k + 1`: the first `k` write operations
    /// happen, that one and everything after fail.
    pub fn crash_after(&self, k: u64) {
        let mut state = self.state();
        state.crash_after = Some(k);
        if state.writes > k {
            state.crashed = true;
        }
    }

    /// Crashes now: every later operation fails.
    pub fn crash(&self) {
        self.state().crashed = true;
    }

    /// The injected failures that fired so far, each as the operation and
    /// its file with the file's length then (`"sync wal-2.log (32 bytes)"`,
    /// `"sync_dir"`, ...).
    pub fn fired(&self) -> Vec<String> {
        self.state().fired.clone()
    }

    /// How many scratch files segment writers created
    /// ([`Storage::scratch`]): tables that spilled.
    pub fn scratch_files(&self) -> u64 {
        self.state().scratch_files
    }

    /// Whether the storage has crashed.
    pub fn has_crashed(&self) -> bool {
        self.state().crashed
    }

    /// Fails operation number `n` (counting every operation) with the OS
    /// error `errno` (for example 5, `EIO`, or 28, `ENOSPC`).
    pub fn fail_op(&self, n: u64, errno: i32) {
        self.state().fail_op = Some((n, errno));
    }

    /// Fails every fsync (of a file or of the directory) from operation
    /// number `n` on, with `EIO`.
    pub fn fail_syncs_from(&self, n: u64) {
        self.state().fail_syncs_from = Some(n);
    }

    /// The storage a new process finds after a crash now: the durable
    /// directory with each file's durable bytes. With `torn = Some(seed)`,
    /// also a pseudo-random prefix of the directory changes and of each
    /// file's appends made since their last sync, as a disk that wrote part
    /// of its queue before power went would leave.
    pub fn recover(&self, torn: Option<u64>) -> SimStorage {
        let state = self.state();
        let mut rng = torn.map(|seed| seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut dir = state.durable.clone();
        let kept = rng.as_mut().map_or(0, |r| next(r) as usize % (state.journal.len() + 1));
        for op in &state.journal[..kept] {
            match op {
                DirOp::Put(name, node) => {
                    dir.insert(name.clone(), node.clone());
                }
                DirOp::Remove(name) => {
                    dir.remove(name);
                }
            }
        }
        let mut live = BTreeMap::new();
        for (name, node) in dir {
            let data = node.data.lock().unwrap_or_else(|e| e.into_inner());
            let mut bytes = data.durable.clone();
            if let Some(r) = rng.as_mut() {
                // Appends past the durable bytes may have reached the disk
                // in part; an overwrite of durable bytes is not modelled
                // (pushdex never rewrites a synced byte).
                if data.dirty_from >= bytes.len() && data.bytes.len() > bytes.len() {
                    let extra = data.bytes.len() - bytes.len();
                    let keep = next(r) as usize % (extra + 1);
                    bytes.extend_from_slice(&data.bytes[data.durable.len()..data.durable.len() + keep]);
                }
            }
            let node = Node { data: Mutex::new(Data { durable: bytes.clone(), dirty_from: bytes.len(), bytes }) };
            live.insert(name, Arc::new(node));
        }
        let state = State { durable: live.clone(), live, aside: state.aside.clone(), ..State::default() };
        SimStorage { root: self.root.clone(), state: Arc::new(Mutex::new(state)) }
    }

    /// The current contents of file `name`, as the running process sees it.
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        let state = self.state();
        let node = state.live.get(name)?;
        let data = node.data.lock().unwrap_or_else(|e| e.into_inner());
        Some(data.bytes.clone())
    }

    /// What [`Storage::set_aside`] put in `lost+found/` as `name`.
    pub fn aside(&self, name: &str) -> Option<Vec<u8>> {
        self.state().aside.get(name).cloned()
    }

    /// Replaces the contents of file `name` (durably), creating it if needed:
    /// for damage tests.
    pub fn write(&self, name: &str, bytes: &[u8]) {
        let mut state = self.state();
        let data = Data { bytes: bytes.to_vec(), durable: bytes.to_vec(), dirty_from: bytes.len() };
        let node = Arc::new(Node { data: Mutex::new(data) });
        state.live.insert(name.to_string(), node.clone());
        state.durable.insert(name.to_string(), node);
    }
}

/// xorshift64*: deterministic, dependency-free randomness for torn crashes.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

impl fmt::Debug for SimStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("SimStorage")
            .field("root", &self.root)
            .field("files", &state.live.keys().collect::<Vec<_>>())
            .field("ops", &state.ops)
            .field("writes", &state.writes)
            .field("crashed", &state.crashed)
            .finish()
    }
}

struct SimFile {
    name: String,
    node: Arc<Node>,
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile").field("name", &self.name).finish()
    }
}

impl SimFile {
    /// Counts the operation; the record of an injected failure names the
    /// file and its length then (`"sync wal-2.log (32 bytes)"`).
    fn begin(&self, kind: Kind, op: &str) -> io::Result<MutexGuard<'_, Data>> {
        // Under the state's lock, then the file's: the order every holder
        // of both takes them in.
        let what = || {
            let len = self.node.data.lock().unwrap_or_else(|e| e.into_inner()).bytes.len();
            format!("{op} {} ({len} bytes)", self.name)
        };
        self.state.lock().unwrap_or_else(|e| e.into_inner()).begin(kind, &what)?;
        Ok(self.node.data.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl StorageFile for SimFile {
    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        let mut data = self.begin(Kind::Write, "append")?;
        data.dirty_from = data.dirty_from.min(data.bytes.len());
        data.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let data = self.begin(Kind::Read, "read_at")?;
        let start = usize::try_from(offset).ok().filter(|&s| s <= data.bytes.len());
        let range = start.and_then(|s| Some(s..s.checked_add(buf.len())?)).filter(|r| r.end <= data.bytes.len());
        let Some(range) = range else {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the file"));
        };
        buf.copy_from_slice(&data.bytes[range]);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.begin(Kind::Read, "len")?.bytes.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut data = self.begin(Kind::Write, "set_len")?;
        let len = usize::try_from(len).map_err(|_| io::Error::other("length too large"))?;
        data.dirty_from = data.dirty_from.min(len).min(data.bytes.len());
        data.bytes.resize(len, 0);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut data = self.begin(Kind::Sync, "sync")?;
        let from = data.dirty_from.min(data.durable.len());
        let len = data.bytes.len();
        let Data { bytes, durable, .. } = &mut *data;
        durable.truncate(from);
        durable.extend_from_slice(&bytes[from..]);
        data.dirty_from = len;
        Ok(())
    }
}

/// Releases the simulated directory lock when dropped.
struct SimLock(Arc<Mutex<State>>);

impl Drop for SimLock {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).locked = false;
    }
}

impl Storage for SimStorage {
    fn root(&self) -> &Path {
        &self.root
    }

    fn create(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.state();
        state.begin(Kind::Write, &|| format!("create {name}"))?;
        let node = Arc::new(Node::default());
        state.put(name, node.clone());
        Ok(Arc::new(SimFile { name: name.to_string(), node, state: self.state.clone() }))
    }

    fn open(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.state();
        state.begin(Kind::Read, &|| format!("open {name}"))?;
        let node = state.live.get(name).ok_or_else(|| not_found(name))?.clone();
        Ok(Arc::new(SimFile { name: name.to_string(), node, state: self.state.clone() }))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut state = self.state();
        state.begin(Kind::Read, &|| "list".to_string())?;
        Ok(state.live.keys().cloned().collect())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.state();
        state.begin(Kind::Write, &|| format!("rename {from} {to}"))?;
        let node = state.remove(from)?;
        state.put(to, node);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut state = self.state();
        state.begin(Kind::Write, &|| format!("remove {name}"))?;
        state.remove(name).map(|_| ())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut state = self.state();
        state.begin(Kind::Sync, &|| "sync_dir".to_string())?;
        state.durable = state.live.clone();
        state.journal.clear();
        Ok(())
    }

    fn map(&self, name: &str) -> io::Result<Mapped> {
        let mut state = self.state();
        state.begin(Kind::Read, &|| format!("map {name}"))?;
        let node = state.live.get(name).ok_or_else(|| not_found(name))?;
        let bytes = node.data.lock().unwrap_or_else(|e| e.into_inner()).bytes.clone();
        Ok(Arc::new(bytes))
    }

    fn scratch(&self) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.state();
        state.begin(Kind::Write, &|| "create a scratch file".to_string())?;
        state.scratch_files += 1;
        // In no directory: a crash loses it, as it does an unnamed file.
        let node = Arc::new(Node::default());
        Ok(Arc::new(SimFile { name: "(scratch)".to_string(), node, state: self.state.clone() }))
    }

    fn try_lock_shared(&self) -> io::Result<Option<LockGuard>> {
        let mut state = self.state();
        state.begin(Kind::Read, &|| "try_lock_shared".to_string())?;
        // Shared holders are not modelled: nothing here races them.
        Ok((!state.locked).then(|| Box::new(()) as LockGuard))
    }

    fn file_len(&self, name: &str) -> io::Result<u64> {
        let mut state = self.state();
        state.begin(Kind::Read, &|| format!("file_len {name}"))?;
        let node = state.live.get(name).ok_or_else(|| not_found(name))?;
        let len = node.data.lock().unwrap_or_else(|e| e.into_inner()).bytes.len();
        Ok(len as u64)
    }

    fn set_aside(&self, name: &str, copy: bool) -> io::Result<String> {
        let mut state = self.state();
        state.begin(Kind::Write, &|| format!("set_aside {name}"))?;
        let node = state.live.get(name).ok_or_else(|| not_found(name))?.clone();
        let bytes = node.data.lock().unwrap_or_else(|e| e.into_inner()).bytes.clone();
        let mut there = name.to_string();
        let mut n = 0;
        while state.aside.contains_key(&there) {
            n += 1;
            there = format!("{name}.{n}");
        }
        state.aside.insert(there.clone(), bytes);
        if !copy {
            // Durable on return, as the real storage's directory fsyncs.
            state.live.remove(name);
            state.durable.remove(name);
            state.journal.retain(|op| !matches!(op, DirOp::Put(n, _) | DirOp::Remove(n) if n == name));
        }
        Ok(format!("{}/{there}", super::LOST_AND_FOUND))
    }

    fn try_lock(&self) -> io::Result<Option<LockGuard>> {
        let mut state = self.state();
        state.begin(Kind::Read, &|| "try_lock".to_string())?;
        if state.locked {
            return Ok(None);
        }
        state.locked = true;
        // The real storage's lock is a file, created by the first lock and
        // never removed: what tells an index directory from others.
        if !state.live.contains_key(LOCK) {
            let node = Arc::new(Node::default());
            state.live.insert(LOCK.to_string(), node.clone());
            state.durable.insert(LOCK.to_string(), node);
        }
        Ok(Some(Box::new(SimLock(self.state.clone()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(storage: &SimStorage, name: &str) -> Vec<u8> {
        storage.read(name).unwrap_or_else(|| panic!("{name} is missing"))
    }

    #[test]
    fn unsynced_bytes_and_entries_are_lost_in_a_crash() {
        let s = SimStorage::new("/sim");
        let f = s.create("a").unwrap();
        f.append(b"one").unwrap();
        f.sync().unwrap();
        s.sync_dir().unwrap();
        f.append(b"two").unwrap();
        let g = s.create("b").unwrap();
        g.append(b"x").unwrap();
        g.sync().unwrap();
        let after = s.recover(None);
        assert_eq!(file(&after, "a"), b"one");
        assert!(after.read("b").is_none(), "the directory was not synced after b");
        assert_eq!(file(&s, "a"), b"onetwo", "the running process sees everything");
    }

    #[test]
    fn a_rename_is_durable_at_the_directory_sync() {
        let s = SimStorage::new("/sim");
        let f = s.create("tmp").unwrap();
        f.append(b"new").unwrap();
        f.sync().unwrap();
        s.sync_dir().unwrap();
        s.rename("tmp", "M").unwrap();
        assert!(s.recover(None).read("M").is_none());
        assert_eq!(file(&s.recover(None), "tmp"), b"new");
        s.sync_dir().unwrap();
        assert_eq!(file(&s.recover(None), "M"), b"new");
        assert!(s.recover(None).read("tmp").is_none());
    }

    #[test]
    fn a_torn_crash_keeps_a_prefix_of_the_appends() {
        let s = SimStorage::new("/sim");
        let f = s.create("log").unwrap();
        f.append(b"head").unwrap();
        f.sync().unwrap();
        s.sync_dir().unwrap();
        f.append(b"0123456789").unwrap();
        let mut lengths = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let bytes = file(&s.recover(Some(seed)), "log");
            assert!(b"head0123456789".starts_with(&bytes) && bytes.len() >= 4, "{bytes:?}");
            lengths.insert(bytes.len());
        }
        assert!(lengths.len() > 5, "torn crashes keep different prefixes: {lengths:?}");
    }

    #[test]
    fn truncation_then_sync_is_durable() {
        let s = SimStorage::new("/sim");
        let f = s.create("log").unwrap();
        f.append(b"abcdef").unwrap();
        f.sync().unwrap();
        s.sync_dir().unwrap();
        f.set_len(2).unwrap();
        f.append(b"XY").unwrap();
        assert_eq!(file(&s.recover(None), "log"), b"abcdef");
        f.sync().unwrap();
        assert_eq!(file(&s.recover(None), "log"), b"abXY");
    }

    #[test]
    fn crash_after_k_writes_fails_the_next_one_and_everything_after() {
        let s = SimStorage::new("/sim");
        s.crash_after(2);
        let f = s.create("a").unwrap();
        f.append(b"1").unwrap();
        assert!(f.append(b"2").is_err());
        assert!(s.has_crashed());
        assert!(s.list().is_err(), "reads fail too once crashed");
        assert!(s.recover(None).read("a").is_none());
    }

    #[test]
    fn failures_hit_one_operation_or_every_sync() {
        let s = SimStorage::new("/sim");
        let f = s.create("a").unwrap(); // op 1
        s.fail_op(3, 28);
        f.append(b"1").unwrap(); // op 2
        let e = f.append(b"2").unwrap_err(); // op 3
        assert_eq!(e.raw_os_error(), Some(28));
        f.append(b"3").unwrap(); // op 4
        assert_eq!(file(&s, "a"), b"13", "a failed append changes nothing");
        s.fail_syncs_from(6);
        f.sync().unwrap(); // op 5
        assert_eq!(f.sync().unwrap_err().raw_os_error(), Some(EIO));
        assert!(s.sync_dir().is_err());
        assert_eq!(s.ops(), 7);
        assert_eq!(s.fired(), ["append a (1 bytes)", "sync a (2 bytes)", "sync_dir"]);
    }

    #[test]
    fn the_lock_is_exclusive_until_dropped() {
        let s = SimStorage::new("/sim");
        let guard = s.try_lock().unwrap().unwrap();
        assert!(s.try_lock().unwrap().is_none());
        drop(guard);
        assert!(s.try_lock().unwrap().is_some());
    }
}
