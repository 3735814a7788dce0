//! A [`Storage`] whose durable state lives in the object store.
//!
//! It wraps the local directory (the node's cache) and keeps, beside it,
//! the model of what a crash would leave that [`SimStorage`] keeps: a
//! file's bytes count up to its last sync, a directory entry from the last
//! `sync_dir`. At every sync it uploads the bytes that became durable as a
//! new immutable object (a *piece*) and publishes the *view*: for each
//! durable file, the pieces whose concatenation is its durable bytes. A
//! publish is one fenced transaction ([`Remote::publish`]), so the published
//! view is always a state the index could have found after a crash on one
//! machine, and the index's own recovery turns it back into an index
//! ([`restore`]). Synced therefore means uploaded and published.
//!
//! Concurrent syncs share one publish (group commit): a sync waits for a
//! publish of a view at least as new as its own change. A file synced many
//! times (the log) gets one piece per sync; eight pieces of one level are
//! merged into one of the next level, read back from the local file, so
//! that a view stays short (about 8 per level) and each byte is uploaded
//! about `log8(syncs)` times.
//!
//! [`SimStorage`]: crate::storage::SimStorage

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::storage::{LockGuard, Mapped, Storage, StorageFile};

/// Pieces of one level merged into one of the next.
pub const MERGE_PIECES: usize = 8;

/// The largest piece: a sync uploads larger new bytes (a merged segment)
/// as several, and pieces are merged only while the result stays within
/// it, so that no upload holds more than this in memory.
pub const PIECE_BYTES: u64 = 16 << 20;

/// The first bytes of an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// The object's key in the store.
    pub key: String,
    /// How many of its bytes belong to the file (a cut file keeps a prefix).
    pub len: u64,
    /// 0 for a sync's own bytes; `l + 1` for a merge of pieces of level `l`.
    pub level: u8,
}

/// The durable files of an index: what a publish names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Each durable file's pieces, in order.
    pub files: BTreeMap<String, Vec<Piece>>,
    /// Every operation up to this serial is in the view's log
    /// ([`StorageFile::sync_through`]): the index's Synced serial as
    /// published.
    #[serde(default)]
    pub serial: u64,
}

/// Where the durable bytes go.
pub trait Remote: Send + Sync + fmt::Debug {
    /// Stores `bytes` as the new object `key` (never overwriting one).
    fn upload(&self, key: &str, bytes: Vec<u8>) -> io::Result<()>;

    /// Makes `view` the index's commit point, if this node still owns the
    /// index: an error of kind [`io::ErrorKind::PermissionDenied`] when it
    /// does not ([`is_fenced`]).
    fn publish(&self, view: &View) -> io::Result<()>;

    /// Objects `keys` are named neither by the view just published nor by
    /// any file, and never will be again: nothing needs them any more (a
    /// new owner restores that view or a later one), so they may be
    /// deleted, best after a while, for readers of older views. By default
    /// they stay.
    fn discard(&self, keys: Vec<String>) {
        let _ = keys;
    }
}

impl View {
    /// The keys of every object the view names.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.files.values().flatten().map(|p| p.key.as_str())
    }
}

/// The error of a publish refused because another node owns the index now.
pub fn fenced(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("fenced: {}", message.into()))
}

/// Whether `e` (an I/O error, or what the library made of one) says the
/// index moved to another owner.
pub fn is_fenced(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied && e.to_string().contains("fenced:")
}

/// One file's content as the store has it, and what changed since.
#[derive(Debug, Default)]
struct Node {
    data: Mutex<NodeData>,
}

#[derive(Debug, Default)]
struct NodeData {
    pieces: Vec<Piece>,
    /// The sum of the pieces' lengths: the durable length.
    durable: u64,
    /// The lowest offset changed since the last sync.
    dirty_from: u64,
}

impl Node {
    fn lock(&self) -> MutexGuard<'_, NodeData> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_pieces(pieces: Vec<Piece>) -> Node {
        let durable = pieces.iter().map(|p| p.len).sum();
        Node { data: Mutex::new(NodeData { pieces, durable, dirty_from: durable }) }
    }
}

#[derive(Debug, Default)]
struct Dirs {
    live: BTreeMap<String, Arc<Node>>,
    durable: BTreeMap<String, Arc<Node>>,
}

/// The replicating storage of one owned index.
pub struct Replicated {
    local: Arc<dyn Storage>,
    remote: Arc<dyn Remote>,
    /// Object keys are `<prefix><n>`: unique to this owner and epoch.
    prefix: String,
    /// [`PIECE_BYTES`], smaller in tests.
    piece_limit: u64,
    next_key: AtomicU64,
    dirs: Mutex<Dirs>,
    /// Bumped by every change to the durable state.
    version: AtomicU64,
    /// The highest serial whose log bytes are uploaded ([`View::serial`]).
    serial: AtomicU64,
    /// The newest version published; held while publishing.
    published: Mutex<u64>,
    /// Every object of this owner's files (uploaded, or restored) not yet
    /// discarded ([`Remote::discard`]).
    tracked: Mutex<HashSet<String>>,
    fenced: AtomicBool,
}

impl fmt::Debug for Replicated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replicated").field("local", &self.local).field("prefix", &self.prefix).finish()
    }
}

impl Replicated {
    /// Replicates `local`, whose files are those of `view` (as [`restore`]
    /// wrote them), to `remote`, naming new objects `prefix` + a number.
    pub fn new(local: Arc<dyn Storage>, remote: Arc<dyn Remote>, prefix: String, view: &View) -> Replicated {
        let mut dirs = Dirs::default();
        for (name, pieces) in &view.files {
            let node = Arc::new(Node::with_pieces(pieces.clone()));
            dirs.live.insert(name.clone(), node.clone());
            dirs.durable.insert(name.clone(), node);
        }
        Replicated {
            local,
            remote,
            prefix,
            piece_limit: PIECE_BYTES,
            next_key: AtomicU64::new(0),
            dirs: Mutex::new(dirs),
            version: AtomicU64::new(0),
            serial: AtomicU64::new(view.serial),
            published: Mutex::new(0),
            tracked: Mutex::new(view.keys().map(str::to_string).collect()),
            fenced: AtomicBool::new(false),
        }
    }

    /// The largest piece is `bytes` (at least 1), not [`PIECE_BYTES`].
    pub fn with_piece_limit(mut self, bytes: u64) -> Replicated {
        self.piece_limit = bytes.max(1);
        self
    }

    fn dirs(&self) -> MutexGuard<'_, Dirs> {
        self.dirs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Once fenced, nothing is written any more.
    fn check(&self) -> io::Result<()> {
        if self.fenced.load(Ordering::SeqCst) {
            return Err(fenced("this node no longer owns the index"));
        }
        Ok(())
    }

    /// Whether a publish was refused: another node owns the index.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    /// The view as the store has it now (published or about to be).
    pub fn view(&self) -> View {
        let dirs = self.dirs();
        let files = dirs.durable.iter().map(|(name, node)| (name.clone(), node.lock().pieces.clone())).collect();
        View { files, serial: self.serial.load(Ordering::SeqCst) }
    }

    fn upload(&self, bytes: Vec<u8>, level: u8) -> io::Result<Piece> {
        let key = format!("{}{:08}", self.prefix, self.next_key.fetch_add(1, Ordering::SeqCst));
        let len = bytes.len() as u64;
        self.remote.upload(&key, bytes)?;
        Ok(Piece { key, len, level })
    }

    /// Uploads what became durable in `file` (`node`'s local bytes); with
    /// `serial` (a sync of the log), every operation up to it is in them.
    fn sync_file(&self, node: &Node, file: &dyn StorageFile, serial: Option<u64>) -> io::Result<()> {
        self.check()?;
        {
            let mut data = node.lock();
            let len = file.len()?;
            let from = data.dirty_from.min(data.durable);
            // Cut the pieces back to `from`.
            let mut kept = 0u64;
            let mut pieces = Vec::with_capacity(data.pieces.len() + 1);
            for piece in &data.pieces {
                if kept >= from {
                    break;
                }
                let take = piece.len.min(from - kept);
                pieces.push(Piece { len: take, ..piece.clone() });
                kept += take;
            }
            let mut at = from;
            let mut uploaded = Vec::new();
            while at < len {
                let size = (len - at).min(self.piece_limit);
                let mut bytes = vec![0; usize::try_from(size).map_err(io::Error::other)?];
                file.read_at(at, &mut bytes)?;
                let piece = self.upload(bytes, 0)?;
                uploaded.push(piece.key.clone());
                pieces.push(piece);
                at += size;
            }
            self.merge_pieces(&mut pieces, file, &mut uploaded)?;
            if pieces != data.pieces {
                // Bumped before the file's lock is let go: a concurrent sync
                // of the same file that finds nothing new then still waits
                // for a publish of this change (see `publish`).
                self.version.fetch_add(1, Ordering::SeqCst);
            }
            data.pieces = pieces;
            data.durable = len;
            data.dirty_from = len;
            // Tracked only now that the pieces name them (`unneeded`). An
            // upload that failed above leaves its objects untracked: they
            // stay in the store, unnamed.
            self.tracked.lock().unwrap_or_else(|e| e.into_inner()).extend(uploaded);
        }
        // After the upload: a view that carries the serial holds the bytes.
        if serial.is_some_and(|serial| self.serial.fetch_max(serial, Ordering::SeqCst) < serial) {
            self.version.fetch_add(1, Ordering::SeqCst);
        }
        // Even unchanged: a concurrent sync may have uploaded these bytes
        // and not published them yet; its version is bumped already.
        self.publish()
    }

    /// While the last [`MERGE_PIECES`] pieces share a level and together
    /// fit in a piece, uploads their bytes again as one of the next level.
    fn merge_pieces(
        &self,
        pieces: &mut Vec<Piece>,
        file: &dyn StorageFile,
        uploaded: &mut Vec<String>,
    ) -> io::Result<()> {
        while pieces.len() >= MERGE_PIECES {
            let tail = &pieces[pieces.len() - MERGE_PIECES..];
            let level = tail[0].level;
            if tail.iter().any(|p| p.level != level) {
                break;
            }
            let start: u64 = pieces[..pieces.len() - MERGE_PIECES].iter().map(|p| p.len).sum();
            let len: u64 = tail.iter().map(|p| p.len).sum();
            if len > self.piece_limit {
                break;
            }
            let mut bytes = vec![0; usize::try_from(len).map_err(io::Error::other)?];
            file.read_at(start, &mut bytes)?;
            let merged = self.upload(bytes, level.saturating_add(1))?;
            uploaded.push(merged.key.clone());
            pieces.truncate(pieces.len() - MERGE_PIECES);
            pieces.push(merged);
        }
        Ok(())
    }

    /// Publishes a view at least as new as every change made so far, or
    /// waits for a concurrent publish that is.
    fn publish(&self) -> io::Result<()> {
        let wanted = self.version.load(Ordering::SeqCst);
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        self.check()?;
        if *published >= wanted {
            return Ok(());
        }
        let version = self.version.load(Ordering::SeqCst);
        let view = self.view();
        match self.remote.publish(&view) {
            Ok(()) => {
                *published = version;
                let unneeded = self.unneeded(&view);
                if !unneeded.is_empty() {
                    self.remote.discard(unneeded);
                }
                Ok(())
            }
            Err(e) => {
                if is_fenced(&e) {
                    self.fenced.store(true, Ordering::SeqCst);
                }
                Err(e)
            }
        }
    }

    /// The tracked objects that neither `view` (just published) nor any
    /// file's pieces name: no view will name them again (a file only ever
    /// gains new objects), so they are discarded, and no longer tracked.
    fn unneeded(&self, view: &View) -> Vec<String> {
        // Tracked only once in a file's pieces (see `sync_file`): what is
        // tracked before the pieces are read below is either in them, or
        // was in them and is gone for good.
        let tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut named: HashSet<String> = view.keys().map(str::to_string).collect();
        {
            let dirs = self.dirs();
            for node in dirs.live.values().chain(dirs.durable.values()) {
                named.extend(node.lock().pieces.iter().map(|p| p.key.clone()));
            }
        }
        let unneeded: Vec<String> = tracked.into_iter().filter(|key| !named.contains(key)).collect();
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        for key in &unneeded {
            tracked.remove(key);
        }
        unneeded
    }

    fn node(&self, name: &str) -> Arc<Node> {
        self.dirs().live.entry(name.to_string()).or_default().clone()
    }
}

/// The storage handed to the index: an `Arc` so that its files can reach
/// back to it for publishing.
#[derive(Clone, Debug)]
pub struct ReplicatedStorage(pub Arc<Replicated>);

impl ReplicatedStorage {
    /// `file`, local file `name`, as the index sees it: its syncs upload.
    fn wrap(&self, name: &str, file: Arc<dyn StorageFile>) -> Arc<dyn StorageFile> {
        Arc::new(ReplicatedFile { storage: self.0.clone(), node: self.0.node(name), file })
    }
}

impl Storage for ReplicatedStorage {
    fn root(&self) -> &Path {
        self.0.local.root()
    }

    fn create(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        self.0.check()?;
        let file = self.0.local.create(name)?;
        self.0.dirs().live.insert(name.to_string(), Arc::default());
        Ok(self.wrap(name, file))
    }

    fn open(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        let file = self.0.local.open(name)?;
        Ok(self.wrap(name, file))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        self.0.local.list()
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.0.check()?;
        self.0.local.rename(from, to)?;
        let mut dirs = self.0.dirs();
        let node = dirs.live.remove(from).unwrap_or_default();
        dirs.live.insert(to.to_string(), node);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.0.check()?;
        self.0.local.remove(name)?;
        self.0.dirs().live.remove(name);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.0.check()?;
        {
            let mut dirs = self.0.dirs();
            let same = dirs.durable.len() == dirs.live.len()
                && dirs.durable.iter().zip(&dirs.live).all(|((a, x), (b, y))| a == b && Arc::ptr_eq(x, y));
            if !same {
                // Under the lock, as in `sync_file`: a concurrent
                // `sync_dir` that finds the directory unchanged waits for
                // the publish of this change.
                self.0.version.fetch_add(1, Ordering::SeqCst);
                dirs.durable = dirs.live.clone();
            }
        }
        self.0.publish()
    }

    fn map(&self, name: &str) -> io::Result<Mapped> {
        self.0.local.map(name)
    }

    fn scratch(&self) -> io::Result<Arc<dyn StorageFile>> {
        self.0.local.scratch()
    }

    fn try_lock(&self) -> io::Result<Option<LockGuard>> {
        self.0.local.try_lock()
    }

    fn try_lock_shared(&self) -> io::Result<Option<LockGuard>> {
        self.0.local.try_lock_shared()
    }

    fn file_len(&self, name: &str) -> io::Result<u64> {
        self.0.local.file_len(name)
    }

    fn set_aside(&self, name: &str, copy: bool) -> io::Result<String> {
        self.0.check()?;
        let path = self.0.local.set_aside(name, copy)?;
        if !copy {
            // Durable when it returns: gone from the published view too.
            {
                let mut dirs = self.0.dirs();
                dirs.live.remove(name);
                dirs.durable.remove(name);
                self.0.version.fetch_add(1, Ordering::SeqCst);
            }
            self.0.publish()?;
        }
        Ok(path)
    }
}

/// A local file whose syncs upload and publish.
#[derive(Debug)]
struct ReplicatedFile {
    storage: Arc<Replicated>,
    node: Arc<Node>,
    file: Arc<dyn StorageFile>,
}

impl StorageFile for ReplicatedFile {
    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        self.storage.check()?;
        self.file.append(bytes)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_at(offset, buf)
    }

    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.storage.check()?;
        self.file.set_len(len)?;
        let mut data = self.node.lock();
        data.dirty_from = data.dirty_from.min(len);
        Ok(())
    }

    /// No local fsync: the store is what keeps the bytes; the local copy is
    /// a cache, rebuilt from the store whenever the index is opened.
    fn sync(&self) -> io::Result<()> {
        self.storage.sync_file(&self.node, self.file.as_ref(), None)
    }

    fn sync_through(&self, serial: u64) -> io::Result<()> {
        self.storage.sync_file(&self.node, self.file.as_ref(), Some(serial))
    }
}

/// Writes the files of `view` into `local` (an empty directory), fetching
/// each piece with `fetch`, and makes them durable there.
pub fn restore(view: &View, local: &dyn Storage, fetch: &dyn Fn(&str) -> io::Result<Vec<u8>>) -> io::Result<()> {
    for (name, pieces) in &view.files {
        restore_file(name, pieces, local, fetch)?;
    }
    local.sync_dir()
}

/// Writes file `name` of a view, its `pieces` fetched by key, into `local`
/// (synced; its directory entry is not).
pub fn restore_file(
    name: &str,
    pieces: &[Piece],
    local: &dyn Storage,
    fetch: &dyn Fn(&str) -> io::Result<Vec<u8>>,
) -> io::Result<()> {
    let file = local.create(name)?;
    for piece in pieces {
        let bytes = fetch(&piece.key)?;
        let len = usize::try_from(piece.len).map_err(io::Error::other)?;
        let part = bytes.get(..len).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("object {} has {} bytes; the view names {len}", piece.key, bytes.len()),
            )
        })?;
        file.append(part)?;
    }
    file.sync()
}
