//! `Index`: the write path, the barriers, the reads and the push sessions.
//!
//! One writer at a time: every mutating operation takes the write side of
//! [`Inner::state`], gets the next serial, appends its frame to the log buffer
//! and applies itself to the memtable. Readers take the read side for as long
//! as one lookup or one enumeration chunk. Durability is the log's business:
//! `sync()` writes the buffer out and fsyncs it, one leader at a time, for
//! every thread waiting (group commit, [`Inner::sync_to`]).

mod background;
mod compaction;
mod cursor;
mod enumerate;
mod flush;
mod session;
mod tables;
mod verify;

use std::fmt;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

pub use enumerate::Enumeration;
use enumerate::Walk;
pub use session::PushSession;
pub(crate) use verify::names_hold_index;
pub use verify::{Problem, Repair, Verification};

use crate::document::{check_name, check_value, Document, Update, MAX_BATCH_BYTES, MAX_BATCH_DOCUMENTS};
use crate::error::{Error, Result};
use crate::files::FileName;
use crate::manifest::{self, Manifest};
use crate::record::{kind, DocRecord, Op};
use crate::search::eval::{IndexCache, Snapshot};
use crate::search::present::{self, Highlighter};
use crate::search::{Hit, Query, SearchOptions, SearchResults, Sort};
use crate::segment::Segment;
use crate::status::{Checkpoint, DocumentStatus, EntryRef, EnumerationMode, Serial, SessionId, State, Watermarks};
use crate::storage::{Counted, FsStorage, LockGuard, Storage};
use crate::text::Analyzer;
use crate::uri::{check_prefix, check_root, check_uri, folder_prefix};
use crate::wal::{self, WalWriter};
use background::Background;
use compaction::{MergePolicy, Tiered};
use flush::Maintenance;
pub use tables::RESERVED_CHECKPOINT_PREFIX;
use tables::{CheckpointEntry, LiveSegment, Tables};

/// Operations adding at most this many bytes stall only once the memtable is
/// a quarter past its threshold (see `Inner::must_stall`).
const SMALL_WRITE_BYTES: usize = 64 * 1024;

/// [`Inner::must_stall`]'s rule: whether an operation adding about `bytes`
/// waits, with a memtable of `mem` bytes and a flush threshold of `limit`,
/// while a frozen memtable is (`frozen`) or is not being flushed.
fn stalls(frozen: bool, mem: usize, limit: usize, bytes: usize) -> bool {
    let limit = if bytes <= SMALL_WRITE_BYTES { limit.saturating_add(limit / 4) } else { limit };
    frozen && mem >= limit
}

/// How long a writer stalled behind a full memtable waits before it looks
/// again, should a wake-up ever be missed (none is: see
/// [`Inner::wake_stalled`]).
const STALL_SAFETY_NET: Duration = Duration::from_secs(1);

/// The log buffer is written to the file (not fsynced) once it holds this much.
const WRITE_OUT_BYTES: usize = 1 << 20;

/// Once this much of the log has been written out since the writeback
/// thread last started, it fdatasyncs the log in the background (see
/// [`Inner::write_back`]), so that the next `sync` finds at most about this
/// much to make durable, not everything a bulk push wrote without syncing.
const WRITEBACK_BYTES: u64 = 8 << 20;

/// What [`Index::health`] says of an open index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// Why the writer stopped (a failed log write or fsync), if it did:
    /// every write and sync then fails with [`Error::Poisoned`] until the
    /// index is reopened.
    pub writer_stopped: Option<String>,
    /// Whether the index was closed (every call fails with
    /// [`Error::Closed`]).
    pub closed: bool,
    /// Flushes and merges that failed since the index was opened (each is
    /// tried again; what was Synced stays in the log meanwhile).
    pub background_failures: u64,
    /// The last of those failures.
    pub last_background_failure: Option<String>,
}

impl Health {
    /// Whether the index takes writes: open, and its writer not stopped.
    pub fn takes_writes(&self) -> bool {
        !self.closed && self.writer_stopped.is_none()
    }
}

/// Settings for [`Index::open_with`].
#[derive(Clone, Debug)]
pub struct Options {
    memtable_bytes: usize,
    /// Set by [`Options::memory_budget`], for its error message.
    memory_budget: Option<usize>,
    create: Create,
    analyzer: Analyzer,
}

/// Whether [`Index::open_with`] may create an index ([`Options::create`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Create {
    /// Create the directory if it is missing, and an index in it whatever
    /// it holds (what [`Index::open`] does).
    #[default]
    Always,
    /// Create only in a missing or empty directory: a directory that holds
    /// other files and no pushdex index is refused with
    /// [`Error::NoIndex`], so that a mistyped path does not scatter index
    /// files into a folder of documents.
    IfEmpty,
    /// Never create: a missing directory, or one without a pushdex index, is
    /// [`Error::NoIndex`] (what [`Index::open_existing`] does).
    Never,
}

/// The default flush threshold: two memtables (the active one and the one
/// being flushed) fit a few-GiB, 2-core machine with room to spare.
const DEFAULT_MEMTABLE_BYTES: usize = 64 << 20;

/// The default flush threshold of this build: [`DEFAULT_MEMTABLE_BYTES`],
/// unless the crate was compiled with the environment variable
/// `PUSHDEX_DEFAULT_MEMTABLE_BYTES` set to a number of bytes (a testing aid:
/// CI builds the API contract, which opens indexes with the defaults, once
/// with a 4 KiB memtable so that it crosses many flushes and merges). Read
/// when the crate is compiled, never at run time: a program's behaviour does
/// not depend on the environment it runs in.
const BUILD_MEMTABLE_BYTES: usize = match option_env!("PUSHDEX_DEFAULT_MEMTABLE_BYTES") {
    Some(bytes) => parse_build_bytes(bytes),
    None => DEFAULT_MEMTABLE_BYTES,
};

/// A decimal number of bytes, at compile time (a bad one fails the build).
const fn parse_build_bytes(text: &str) -> usize {
    let digits = text.as_bytes();
    assert!(!digits.is_empty(), "PUSHDEX_DEFAULT_MEMTABLE_BYTES is empty");
    let mut value = 0usize;
    let mut i = 0;
    while i < digits.len() {
        assert!(digits[i].is_ascii_digit(), "PUSHDEX_DEFAULT_MEMTABLE_BYTES is not a number of bytes");
        value = value * 10 + (digits[i] - b'0') as usize;
        i += 1;
    }
    assert!(value >= Options::MIN_MEMTABLE_BYTES, "PUSHDEX_DEFAULT_MEMTABLE_BYTES is below 4096");
    value
}

/// How many times its flush threshold a memory budget is
/// ([`Options::memory_budget`]).
const MEMORY_PER_MEMTABLE: usize = 5;

impl Default for Options {
    /// 64 MiB of memtable (see [`BUILD_MEMTABLE_BYTES`] for test builds),
    /// [`Create::Always`], [`Analyzer::English`]. Reads no environment.
    fn default() -> Options {
        Options {
            memtable_bytes: BUILD_MEMTABLE_BYTES,
            memory_budget: None,
            create: Create::Always,
            analyzer: Analyzer::English,
        }
    }
}

impl Options {
    /// The smallest accepted memtable size.
    pub const MIN_MEMTABLE_BYTES: usize = 4096;

    /// The smallest accepted [`Options::memory_budget`].
    pub const MIN_MEMORY_BUDGET: usize = MEMORY_PER_MEMTABLE * Self::MIN_MEMTABLE_BYTES;

    /// The memtable's flush threshold in bytes (default 64 MiB); at least
    /// 4096, else [`Index::open_with`] fails with `InvalidInput`.
    ///
    /// A full memtable is frozen and flushed in the background while a new
    /// one takes writes. Should that one fill up too before the flush ends,
    /// writes wait for it: an `add_all` batch of more than 64 KiB at the
    /// threshold, anything smaller (one document, a deletion, a checkpoint)
    /// only a quarter past it, so that a connector's single writes are not
    /// held up for a whole flush behind a bulk push. At most two memtables
    /// are held, the second up to 1.25 × this size.
    pub fn memtable_bytes(mut self, bytes: usize) -> Options {
        self.memtable_bytes = bytes;
        self.memory_budget = None;
        self
    }

    /// How much memory the index may use for writing, in bytes: what
    /// [`Options::memtable_bytes`] is set from (a fifth of it; at least
    /// [`Options::MIN_MEMORY_BUDGET`], else [`Index::open_with`] fails with
    /// `InvalidInput`). The last of the two calls wins.
    ///
    /// With a flush threshold `T` = `bytes / 5`, writing holds at most:
    /// - the memtable taking writes (up to 1.25 `T`) and the one being
    ///   flushed (`T`);
    /// - the flush's working set, about as much as its memtable (`T`);
    /// - a merge's terms and metas tables, `T / 2` each: what is beyond
    ///   goes to a scratch file and is copied into the segment at its turn;
    /// - and per row of the segment a merge writes, about 20 bytes (its
    ///   ordinal mapping, the rows' lengths, the URI filter), with the
    ///   largest postings column it carries over.
    ///
    /// A merge reads its inputs through memory maps and lets go of their
    /// pages as it moves on, so they do not stay in the resident set.
    /// Searches and lookups are not counted: the pages they read are the
    /// operating system's page cache, shared and reclaimable. A smaller
    /// budget makes smaller segments, so more merging for the same data.
    pub fn memory_budget(mut self, bytes: usize) -> Options {
        self.memtable_bytes = bytes / MEMORY_PER_MEMTABLE;
        self.memory_budget = Some(bytes);
        self
    }

    /// Whether opening may create an index (default [`Create::Always`]).
    pub fn create(mut self, create: Create) -> Options {
        self.create = create;
        self
    }

    /// Whether these options may create an index ([`Options::create`]).
    #[cfg(feature = "cluster")]
    pub(crate) fn create_mode(&self) -> Create {
        self.create
    }

    /// How a new index analyses text (default [`Analyzer::English`]).
    /// Recorded when the index is created and used for as long as it
    /// lives: opening an existing index keeps its own analyzer, whatever
    /// this says ([`Index::analyzer`] tells which it has).
    pub fn analyzer(mut self, analyzer: Analyzer) -> Options {
        self.analyzer = analyzer;
        self
    }

    fn check(&self) -> Result<()> {
        if let Some(budget) = self.memory_budget.filter(|&b| b < Self::MIN_MEMORY_BUDGET) {
            return Err(Error::invalid_input(format!(
                "memory_budget {budget} is below the minimum of {}",
                Self::MIN_MEMORY_BUDGET
            )));
        }
        if self.memtable_bytes < Self::MIN_MEMTABLE_BYTES {
            return Err(Error::invalid_input(format!(
                "memtable_bytes {} is below the minimum of {}",
                self.memtable_bytes,
                Self::MIN_MEMTABLE_BYTES
            )));
        }
        Ok(())
    }
}

/// An open index: a cheap handle, shared across threads by cloning.
///
/// See the crate documentation for the connector loop, and API.md for the
/// meaning of every operation.
#[derive(Clone)]
pub struct Index {
    inner: Arc<Inner>,
    /// Shared by the user's handles only (not by background work): when the
    /// last one goes, the index shuts down and releases its directory.
    _handles: Arc<LastHandle>,
}

/// Shuts the index down when the last user handle is dropped.
struct LastHandle {
    inner: Arc<Inner>,
}

impl Drop for LastHandle {
    fn drop(&mut self) {
        // Best effort: nobody is left to hear about a failure.
        let _ = self.inner.shut_down(false);
    }
}

/// What the writer lock protects: the tables, and the log they are ahead of.
struct Shared {
    tables: Tables,
    wal: WalWriter,
}

/// The group-commit round: at most one thread fsyncs at a time, the others
/// wait for it and find their serials covered.
#[derive(Default)]
struct SyncRound {
    leader: bool,
    /// Set when an fsync failed: the log can no longer be trusted.
    failed: Option<String>,
    /// Threads waiting for the round under way.
    waiting: usize,
    /// How many waiting threads the last round released, and how long its
    /// fsync took: the next leader gathers that many operations, for at
    /// most that long, before it writes out (see [`Inner::gather`]).
    released: usize,
    last_fsync: Duration,
}

/// The longest a leader waits for the writers its last round released.
const MAX_GATHER: Duration = Duration::from_millis(2);

/// One open index, shared by the user's handles and (weakly) by the
/// background threads.
///
/// # Lock order
///
/// A thread that holds several of these locks took them in this order, and
/// never takes an earlier one while it holds a later one:
///
/// 1. `merging` (a whole merge; `compact`, the merge thread, close)
/// 2. `maintenance` (a flush or a merge's pick and commit; refresh, close)
/// 3. `round` (the group-commit round; `sync_to`, which poisons the log
///    under it when an fsync fails)
/// 4. `stall` (a writer checking whether it must wait for a flush)
/// 5. `state` (the writer lock: tables and log)
/// 6. `published` (what search sees; taken by `publish` after reading
///    `state`, which it releases first)
/// 7. `dir_lock`
///
/// The background work's own locks (its signals, thread handles and last
/// failures) are leaves: nothing is taken under them. Search takes its
/// cache's locks (a snapshot's `prepared`, then the cache's `by_name`) and
/// nothing else under them.
/// `round` and `stall` are never held together. In particular nothing takes
/// `maintenance` under `state` (a flush takes `state` inside
/// `maintenance`), and the writers' `flushed` condition variable is only
/// notified under `stall` ([`Inner::wake_stalled`]).
pub(crate) struct Inner {
    storage: Arc<dyn Storage>,
    /// Bytes appended to the index's files since it was opened.
    written: Arc<AtomicU64>,
    session: SessionId,
    options: Options,
    /// The flush threshold: `options.memtable_bytes` at open, changed by
    /// [`Index::set_memtable_bytes`].
    memtable_bytes: AtomicUsize,
    closed: AtomicBool,
    last: AtomicU64,
    synced: AtomicU64,
    searchable: AtomicU64,
    state: RwLock<Shared>,
    /// What search sees: the committed segments as of the last refresh
    /// (or open).
    published: RwLock<Arc<Snapshot>>,
    search_cache: Arc<IndexCache>,
    round: Mutex<SyncRound>,
    round_done: Condvar,
    /// Log bytes written out since the writeback thread was last woken.
    written_out: AtomicU64,
    /// Set while a leader gathers; writers and new waiters then wake it.
    gathering: AtomicBool,
    gathered: Condvar,
    dir_lock: Mutex<Option<LockGuard>>,
    maintenance: Mutex<Maintenance>,
    /// Held through a merge: one at a time, and close waits for it.
    merging: Mutex<()>,
    /// Which segments merge.
    merge_policy: Box<dyn MergePolicy>,
    /// Writers stalled behind a full memtable wait on `flushed` under this
    /// lock for a flush to finish or fail (see [`Inner::wake_stalled`]).
    stall: Mutex<()>,
    flushed: Condvar,
    /// The flush and merge threads and their failures.
    background: Background,
}

impl Index {
    /// Opens (creating it if missing) the index in directory `dir`.
    ///
    /// # Errors
    /// `Locked` if another open `Index` holds the directory, `Corrupt` if a
    /// file is damaged, `Io` when the file system fails.
    pub fn open(dir: impl AsRef<Path>) -> Result<Index> {
        Index::open_with(dir, Options::default())
    }

    /// Opens the index in directory `dir`, which must hold one: never
    /// creates anything.
    ///
    /// # Errors
    /// [`Error::NoIndex`] when `dir` is missing, is not a directory, or
    /// holds no pushdex index; else as [`Index::open`].
    pub fn open_existing(dir: impl AsRef<Path>) -> Result<Index> {
        Index::open_with(dir, Options::default().create(Create::Never))
    }

    /// [`Index::open`] with settings.
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Index> {
        options.check()?;
        let dir = dir.as_ref();
        let storage = match options.create {
            Create::Always => FsStorage::new(dir)?,
            create => match verify::existing_storage(dir) {
                Ok(storage) => {
                    // Empty, or holding only what a creation that died
                    // before its first manifest left (the lock file, a
                    // manifest not yet renamed): a creation to resume.
                    let empty = || -> Result<bool> {
                        for entry in std::fs::read_dir(dir)? {
                            let name = entry?.file_name();
                            let leftover = matches!(
                                name.to_str().and_then(FileName::parse),
                                Some(FileName::Lock | FileName::ManifestTmp)
                            );
                            if !leftover {
                                return Ok(false);
                            }
                        }
                        Ok(true)
                    };
                    if !verify::holds_index(&storage)? && (create == Create::Never || !empty()?) {
                        return Err(Error::NoIndex { path: dir.to_path_buf() });
                    }
                    storage
                }
                Err(Error::NoIndex { .. }) if create == Create::IfEmpty && !dir.exists() => FsStorage::new(dir)?,
                Err(e) => return Err(e),
            },
        };
        Index::open_on(Arc::new(storage), options)
    }

    /// Reads every file of the index in `dir` (every block of every segment
    /// too, which open leaves to the first read that needs it) and says
    /// whether [`Index::open`] would open it and what is wrong where. Opens
    /// nothing for writing, takes no lock; an index open in another process
    /// is read as it is (`in_use` says so).
    ///
    /// # Errors
    /// [`Error::NoIndex`] when `dir` holds no index, [`Error::Io`]. Damage is
    /// not an error: it is what the [`Verification`] reports.
    pub fn verify(dir: impl AsRef<Path>) -> Result<Verification> {
        verify::verify(&verify::existing_storage(dir.as_ref())?)
    }

    /// Brings an index that open refuses because of a damaged log back to
    /// the longest valid prefix of its history: keeps every log frame before
    /// the first damage and every committed segment, and moves what it
    /// drops into `lost+found/` inside the directory (a damaged file is
    /// copied there whole before it is cut). Never deletes a byte. Damage
    /// to `MANIFEST`, a segment or a bitmap is reported in
    /// [`Repair::unrepaired`] and left as it is. `docs/FORMAT.md`, "Repair".
    ///
    /// # Errors
    /// [`Error::Locked`] while the index is open, [`Error::NoIndex`],
    /// [`Error::Io`].
    pub fn repair(dir: impl AsRef<Path>) -> Result<Repair> {
        verify::repair(Arc::new(verify::existing_storage(dir.as_ref())?))
    }

    /// [`Index::verify`] on any [`Storage`].
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn verify_storage(storage: &dyn Storage) -> Result<Verification> {
        verify::verify(storage)
    }

    /// [`Index::repair`] on any [`Storage`].
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn repair_storage(storage: Arc<dyn Storage>) -> Result<Repair> {
        verify::repair(storage)
    }

    /// Opens an index on any [`Storage`] (the crash tests use an in-memory one).
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn open_with_storage(storage: Arc<dyn Storage>, options: Options) -> Result<Index> {
        Index::open_on(storage, options)
    }

    /// Opens an index on `storage`: what every open comes to.
    pub(crate) fn open_on(storage: Arc<dyn Storage>, options: Options) -> Result<Index> {
        options.check()?;
        let written = Arc::new(AtomicU64::new(0));
        let storage: Arc<dyn Storage> = Arc::new(Counted::new(storage, written.clone()));
        let dir_lock = storage.try_lock()?.ok_or_else(|| Error::Locked { path: storage.root().to_path_buf() })?;
        let manifest = match manifest::read_manifest(storage.as_ref())? {
            Some(manifest) => manifest,
            None => {
                // A new index (or one of an earlier release that never
                // flushed): its analyzer is recorded before any document
                // is analysed.
                let manifest = Manifest { analyzer: options.analyzer, ..Manifest::default() };
                manifest::write_manifest(storage.as_ref(), &manifest)?;
                manifest
            }
        };
        let mut tables = load_committed(storage.as_ref(), &manifest)?;
        // Checked before recovery creates a log at the manifest's generation.
        let mut next_gen = next_free_gen(storage.as_ref(), &manifest)?;
        let log_path = storage.root().to_path_buf();
        // Writing goes on in a new log file: a new generation, a new salt.
        let log_gen = next_gen;
        next_gen += 1;
        let recovery = wal::recover(storage.as_ref(), manifest.log_gen.max(1), log_gen, |frame| {
            replay_frame(&mut tables, frame, &log_path)
        })?;
        let last = tables.last;
        let search_cache = Arc::new(IndexCache::new(manifest.analyzer));
        let published = RwLock::new(Arc::new(Snapshot::new(tables.committed_segments(), search_cache.clone())));
        let inner = Arc::new(Inner {
            storage,
            written,
            session: SessionId(new_session_id()?),
            memtable_bytes: AtomicUsize::new(options.memtable_bytes),
            options,
            closed: AtomicBool::new(false),
            last: AtomicU64::new(last),
            // Recovery fsynced everything it kept.
            synced: AtomicU64::new(last),
            // What the manifest holds was committed by a flush; what the log
            // replayed on top of it is in the memtable, not yet searchable.
            searchable: AtomicU64::new(manifest.serial),
            state: RwLock::new(Shared { tables, wal: recovery.writer }),
            published,
            search_cache,
            round: Mutex::new(SyncRound::default()),
            written_out: AtomicU64::new(0),
            round_done: Condvar::new(),
            gathering: AtomicBool::new(false),
            gathered: Condvar::new(),
            dir_lock: Mutex::new(Some(dir_lock)),
            maintenance: Mutex::new(Maintenance {
                next_gen,
                committed: manifest.serial,
                pending: None,
                manifest: manifest.clone(),
                merge_output: None,
            }),
            merging: Mutex::new(()),
            merge_policy: Box::new(Tiered::default()),
            stall: Mutex::new(()),
            flushed: Condvar::new(),
            background: Background::default(),
        });
        // Leftovers of a flush or merge that died before its commit, and
        // logs the manifest covers.
        inner.remove_obsolete(&manifest, None)?;
        Background::start(&inner)?;
        Ok(Index { _handles: Arc::new(LastHandle { inner: inner.clone() }), inner })
    }

    /// Flushes the memtable and syncs, then releases the directory. Every
    /// other clone of this index then gets [`Error::Closed`] from every call.
    pub fn close(self) -> Result<()> {
        self.inner.shut_down(true)
    }

    /// Merges every segment into one, dropping deleted and replaced rows.
    /// What reads return does not change.
    pub fn compact(&self) -> Result<()> {
        self.inner.check_open()?;
        self.inner.compact()
    }

    // ---- writes ----------------------------------------------------------

    /// Adds a document, or replaces the whole document of that URI.
    ///
    /// # Errors
    /// `InvalidUri` / `InvalidInput` for arguments outside API.md's limits.
    pub fn add(&self, doc: Document) -> Result<Serial> {
        doc.check()?;
        let body = doc.body().encode();
        let (uri, stamp) = doc.into_uri_and_stamp();
        let bytes = uri.len() + stamp.len() + body.len();
        self.inner
            .write_with(bytes, |shared, serial| Ok(shared.log_and_put(serial, vec![OwnedDoc { uri, stamp, body }])))
    }

    /// Adds every document of the batch, one serial each, consecutive and in
    /// order (a URI given twice: the later wins); returns the last serial.
    /// After a crash the whole batch is there or none of it.
    ///
    /// # Errors
    /// `InvalidInput` for an empty batch or one over 100,000 documents /
    /// 256 MiB; any bad document refuses the whole batch.
    pub fn add_all(&self, docs: impl IntoIterator<Item = Document>) -> Result<Serial> {
        let docs = docs.into_iter();
        let mut batch = Vec::with_capacity(docs.size_hint().0.min(MAX_BATCH_DOCUMENTS));
        let mut bytes = 0usize;
        for doc in docs {
            if batch.len() == MAX_BATCH_DOCUMENTS {
                return Err(Error::invalid_input(format!("a batch holds at most {MAX_BATCH_DOCUMENTS} documents")));
            }
            bytes += doc.check()?;
            if bytes > MAX_BATCH_BYTES {
                return Err(Error::invalid_input(format!("a batch holds at most {MAX_BATCH_BYTES} bytes")));
            }
            let body = doc.body().encode();
            let (uri, stamp) = doc.into_uri_and_stamp();
            batch.push(OwnedDoc { uri, stamp, body });
        }
        if batch.is_empty() {
            return Err(Error::invalid_input("an add_all batch must hold at least one document"));
        }
        self.inner.write_with(bytes, |shared, serial| Ok(shared.log_and_put(serial, batch)))
    }

    /// Changes part of a document: stamp, metas, parts.
    ///
    /// # Errors
    /// `NotFound` if the index does not hold `uri`; `InvalidInput` for an
    /// update that changes nothing or breaks a limit.
    pub fn update(&self, uri: &str, update: Update) -> Result<Serial> {
        check_uri(uri)?;
        update.check()?;
        // One document, as small as a lone `add` for the stall (see
        // `Inner::must_stall`).
        self.inner.write_with(0, |shared, serial| {
            let mut doc =
                shared.tables.document(uri, self.path())?.ok_or_else(|| Error::NotFound { uri: uri.to_string() })?;
            update.apply(&mut doc);
            doc.check()?;
            let body = doc.body().encode();
            // The log holds the resulting document, so replay needs no reads.
            shared.log_and_apply(serial, Op::Add(DocRecord { uri, stamp: doc.stamp(), body: &body }))
        })
    }

    /// Deletes one document; deleting an absent URI is still one operation.
    pub fn delete(&self, uri: &str) -> Result<Serial> {
        check_uri(uri)?;
        self.inner.write(Op::Delete(uri))
    }

    /// Deletes every document under `root` (`recursive`), or only its direct
    /// children. The document whose URI equals the root stays.
    pub fn delete_root_path(&self, root: &str, recursive: bool) -> Result<Serial> {
        check_root(root)?;
        self.inner.write(Op::DeleteRootPath(root, recursive))
    }

    /// Deletes every URI that starts with the string `prefix`.
    ///
    /// # Errors
    /// `InvalidInput` for an empty prefix.
    pub fn delete_with_prefix(&self, prefix: &str) -> Result<Serial> {
        check_prefix(prefix)?;
        self.inner.write(Op::DeletePrefix(prefix))
    }

    /// Sets checkpoint `name` to `value`, in the same ordered stream as the
    /// documents.
    ///
    /// # Errors
    /// `InvalidInput` for a name or value outside API.md's limits, and for a
    /// name beginning with `pushdex.`: those belong to pushdex's own layers
    /// (the connectors' registry), whose records a stray write would break.
    pub fn set_checkpoint(&self, name: &str, value: &str) -> Result<Serial> {
        check_unreserved(name)?;
        self.set_reserved_checkpoint(name, value)
    }

    /// Deletes checkpoint `name` (an absent name is still one operation).
    ///
    /// # Errors
    /// `InvalidInput` as for [`Index::set_checkpoint`].
    pub fn delete_checkpoint(&self, name: &str) -> Result<Serial> {
        check_unreserved(name)?;
        self.delete_reserved_checkpoint(name)
    }

    /// [`Index::set_checkpoint`] for pushdex's own layers: `pushdex.` names
    /// allowed.
    pub(crate) fn set_reserved_checkpoint(&self, name: &str, value: &str) -> Result<Serial> {
        check_name("checkpoint name", name)?;
        check_value("checkpoint value", value)?;
        self.inner.write(Op::SetCheckpoint(name, value))
    }

    /// [`Index::delete_checkpoint`] for pushdex's own layers.
    pub(crate) fn delete_reserved_checkpoint(&self, name: &str) -> Result<Serial> {
        check_name("checkpoint name", name)?;
        self.inner.write(Op::DeleteCheckpoint(name))
    }

    /// Deletes every checkpoint but pushdex's own (`pushdex.` names).
    pub fn clear_checkpoints(&self) -> Result<Serial> {
        self.inner.write(Op::ClearCheckpoints)
    }

    // ---- barriers --------------------------------------------------------

    /// Makes every earlier operation Synced; returns the synced watermark.
    ///
    /// Threads that call `sync()` at once share fsyncs.
    ///
    /// # Errors
    /// `Io` if writing or fsyncing the log fails; the index then refuses
    /// writes until it is reopened.
    pub fn sync(&self) -> Result<Serial> {
        self.inner.check_open()?;
        self.inner.sync_to(self.inner.last.load(Ordering::SeqCst))
    }

    /// Makes every earlier operation Searchable; returns the searchable
    /// watermark.
    pub fn refresh(&self) -> Result<Serial> {
        self.inner.check_open()?;
        self.inner.flush(true)?;
        Ok(Serial(self.inner.searchable.load(Ordering::SeqCst)))
    }

    /// The best `limit` Searchable documents matching `query`: BM25 score
    /// descending, then URI in byte order. Search sees the documents as
    /// they were at the last `refresh()`.
    ///
    /// # Errors
    /// `InvalidInput` unless `1 <= limit <= 10_000` ([`crate::MAX_SEARCH_LIMIT`]),
    /// for a query nested deeper than [`crate::MAX_QUERY_DEPTH`], and for a
    /// `Text` with no word to search for (`👍`, `"..."`), naming it;
    /// `Corrupt` for a damaged segment.
    pub fn search(&self, query: &Query, limit: usize) -> Result<Vec<Hit>> {
        self.inner.check_open()?;
        query.check()?;
        self.inner.snapshot().search(query, limit)
    }

    /// [`Index::search`] with paging and a total: the hits ordered as
    /// `search` orders them, `options.offset` of them skipped, then at most
    /// `options.limit`; `total` counts every hit when `options.count`.
    ///
    /// # Errors
    /// As [`Index::search`], and `InvalidInput` when `offset + limit` is
    /// above [`crate::MAX_SEARCH_LIMIT`] (page with a narrower query past
    /// that), for a facet name that is not a meta name, and for the options
    /// this version does not serve yet: a sort by meta and snippets
    /// (refused, never silently ignored).
    ///
    /// Facets count every hit, not only the page: for each meta of
    /// `options.facets`, the hits holding each value (a hit once per
    /// distinct value), the `facet_limit` most frequent first, ties by
    /// value.
    pub fn search_with(&self, query: &Query, options: &SearchOptions) -> Result<SearchResults> {
        self.inner.check_open()?;
        query.check()?;
        let SearchOptions { limit, offset, ref sort, ref snippet, ref facets, count, .. } = *options;
        if limit == 0 || limit > crate::MAX_SEARCH_LIMIT {
            return Err(Error::invalid_input(format!("limit must be 1 to {}, not {limit}", crate::MAX_SEARCH_LIMIT)));
        }
        let window = offset.checked_add(limit).filter(|&w| w <= crate::MAX_SEARCH_LIMIT).ok_or_else(|| {
            Error::invalid_input(format!(
                "offset + limit is at most {} (offset {offset}, limit {limit})",
                crate::MAX_SEARCH_LIMIT
            ))
        })?;
        for name in facets {
            check_name("facet meta name", name)?;
        }
        let snapshot = self.inner.snapshot();
        let found = match sort {
            Sort::Score => snapshot.search_located(query, window)?,
            Sort::Meta { name, descending } => {
                check_name("sort meta name", name)?;
                snapshot.search_by_meta(query, name, *descending, window)?
            }
        };
        let highlighter = match snippet {
            Some(part) => {
                check_name("snippet part name", part)?;
                Some(Highlighter::new(query, part, self.analyzer(), &options.highlight)?)
            }
            None => None,
        };
        let hits = snapshot.present(found.into_iter().skip(offset).collect(), &mut |hit, body| {
            hit.title = present::title(body);
            hit.snippet = highlighter.as_ref().and_then(|h| h.snippet(body));
            Ok(())
        })?;
        // Facets evaluate every hit: their count is the total.
        let (facets, total) = if facets.is_empty() {
            (Vec::new(), if count { Some(snapshot.count(query)?) } else { None })
        } else {
            let (facets, matched) = snapshot.facets(query, facets, options.facet_limit)?;
            (facets, count.then_some(matched))
        };
        Ok(SearchResults { hits, total, facets })
    }

    /// How many of `query`'s Searchable hits are in each folder directly
    /// under `root` (counting everything inside it), the `limit` fullest
    /// first, ties by name: the refinements an `under:` facet offers (a
    /// search page shows them beside the meta facets). Hits directly in
    /// `root` count in no folder. Returns the folders, each by its whole
    /// string ending in `/` as [`Entry::Folder`](crate::Entry::Folder) writes it (a root to pass
    /// back to `under:`), and the number of hits.
    ///
    /// # Errors
    /// As [`Index::search`]; `InvalidUri` for a root that is not one.
    pub fn folder_facets(&self, query: &Query, root: &str, limit: usize) -> Result<(Vec<(String, u64)>, u64)> {
        self.inner.check_open()?;
        query.check()?;
        check_root(root)?;
        self.inner.snapshot().folder_counts(query, root, limit)
    }

    /// How this index analyses text: the analyzer it was created with
    /// ([`Options::analyzer`]); [`Analyzer::Exact`] for an index created
    /// before analyzers existed.
    pub fn analyzer(&self) -> Analyzer {
        self.inner.search_cache.analyzer()
    }

    /// The text parts that some Searchable document has, sorted: what a
    /// `part:word` query can find (the command line and the server name
    /// them when a query asks for another). Empty once the index is closed.
    pub fn text_parts(&self) -> Vec<String> {
        if self.inner.check_open().is_err() {
            return Vec::new();
        }
        self.inner.snapshot().text_parts()
    }

    /// How many Searchable documents match `query`.
    ///
    /// # Errors
    /// As [`Index::search`], but for the limit.
    pub fn search_count(&self, query: &Query) -> Result<u64> {
        self.inner.check_open()?;
        query.check()?;
        self.inner.snapshot().count(query)
    }

    /// The three watermarks, `searchable <= synced <= last`.
    pub fn watermarks(&self) -> Watermarks {
        self.inner.watermarks()
    }

    /// The bytes this index has written to its files (log, segments,
    /// manifests, bitmaps) since it was opened, recovery included: with the
    /// bytes pushed, its write amplification. Never goes down.
    pub fn bytes_written(&self) -> u64 {
        self.inner.written.load(Ordering::Relaxed)
    }

    /// Changes this open index's flush threshold ([`Options::memtable_bytes`]
    /// at open): a process that shares one memory budget among many
    /// indexes (the server) lowers it as more indexes open. Takes effect at
    /// the next write: a memtable already past a lowered threshold is then
    /// flushed.
    ///
    /// # Errors
    /// `InvalidInput` below [`Options::MIN_MEMTABLE_BYTES`].
    pub fn set_memtable_bytes(&self, bytes: usize) -> Result<()> {
        self.set_options(Options::default().memtable_bytes(bytes))
    }

    /// Changes this open index's memory budget ([`Options::memory_budget`]
    /// at open), as [`Index::set_memtable_bytes`] changes its flush
    /// threshold.
    ///
    /// # Errors
    /// `InvalidInput` below [`Options::MIN_MEMORY_BUDGET`].
    pub fn set_memory_budget(&self, bytes: usize) -> Result<()> {
        self.set_options(Options::default().memory_budget(bytes))
    }

    /// Takes `options`' flush threshold, once checked.
    fn set_options(&self, options: Options) -> Result<()> {
        options.check()?;
        self.inner.memtable_bytes.store(options.memtable_bytes, Ordering::SeqCst);
        // A raised threshold may let stalled writers through.
        self.inner.wake_stalled();
        Ok(())
    }

    /// Whether the index takes writes, and the last failure of its
    /// background work (flushes and merges, which are retried).
    pub fn health(&self) -> Health {
        let inner = &self.inner;
        let last = inner.background.last_failure();
        let writer_stopped = match inner.state.read().unwrap_or_else(|e| e.into_inner()).wal.poisoned() {
            Some(Error::Poisoned { reason }) => Some(reason),
            _ => None,
        };
        Health {
            writer_stopped,
            closed: inner.closed.load(Ordering::SeqCst),
            background_failures: inner.background.failures(),
            last_background_failure: last.map(|failure| failure.to_string()),
        }
    }

    /// The state of the operation with this serial: `Initial` for
    /// `Serial(0)` and for serials not handed out yet.
    pub fn state_of(&self, serial: Serial) -> State {
        self.inner.watermarks().state_of(serial)
    }

    // ---- reads -----------------------------------------------------------

    /// The status of the newest operation on `uri`.
    pub fn status(&self, uri: &str) -> Result<DocumentStatus> {
        check_uri(uri)?;
        let shared = self.inner.read_lock()?;
        Ok(match shared.tables.status(uri.as_bytes())? {
            Some((serial, stamp)) => DocumentStatus {
                uri: uri.to_string(),
                stamp: stamp.to_string(),
                state: self.inner.watermarks().state_of(Serial(serial)),
                serial: Serial(serial),
            },
            None => DocumentStatus::absent(uri),
        })
    }

    /// The newest version of the document, `None` if the index does not hold it.
    pub fn get(&self, uri: &str) -> Result<Option<Document>> {
        check_uri(uri)?;
        let shared = self.inner.read_lock()?;
        shared.tables.document(uri, self.path())
    }

    /// Lists what is under `root`, in byte order (see [`EnumerationMode`]).
    /// The iterator streams in chunks: it may see writes made while it runs,
    /// but yields each entry at most once, in order.
    ///
    /// Each entry is an owned [`Entry`]; [`Index::enumerate_with`] walks the
    /// same entries without allocating any.
    pub fn enumerate(&self, root: &str, mode: EnumerationMode) -> Result<Enumeration> {
        check_root(root)?;
        self.inner.check_open()?;
        Ok(Enumeration::new(self.clone(), Walk::new(root, mode, false)))
    }

    /// [`Index::enumerate`] filtered to documents whose newest operation is
    /// Synced or Searchable, and to the folders holding one.
    pub fn enumerate_synced(&self, root: &str, mode: EnumerationMode) -> Result<Enumeration> {
        check_root(root)?;
        self.inner.check_open()?;
        Ok(Enumeration::new(self.clone(), Walk::new(root, mode, true)))
    }

    /// Lends what is under `root` to `f`, one [`EntryRef`] at a time: the
    /// entries [`Index::enumerate`] yields, in the same order, but borrowed
    /// from a buffer the walk reuses, so that no `String` is allocated per
    /// entry. Stops early when `f` returns [`ControlFlow::Break`], and
    /// returns what it broke with; [`ControlFlow::Continue`] once every
    /// entry has been seen.
    ///
    /// Like the iterator it walks in chunks, taking the index's read lock
    /// for one chunk at a time (it may see writes made while it runs, but
    /// lends each entry at most once, in order), and calls `f` with no lock
    /// held: `f` may call the index, writes included.
    ///
    /// ```
    /// # fn main() -> pushdex::Result<()> {
    /// use std::ops::ControlFlow;
    /// use pushdex::{Document, EntryRef, EnumerationMode, Index};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let index = Index::open(dir.path())?;
    /// index.add(Document::new("file:///share/a.txt").with_stamp("v1"))?;
    /// index.add(Document::new("file:///share/b.txt").with_stamp("v2"))?;
    ///
    /// // The first document whose stamp is "v2", without copying the others.
    /// let found = index.enumerate_with("file:///share", EnumerationMode::RecursiveDocuments, |entry| {
    ///     match entry {
    ///         EntryRef::Document(doc) if doc.stamp == "v2" => ControlFlow::Break(doc.uri.to_string()),
    ///         _ => ControlFlow::Continue(()),
    ///     }
    /// })?;
    /// assert_eq!(found, ControlFlow::Break("file:///share/b.txt".to_string()));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `InvalidUri` for a bad root, `Closed`, `Corrupt` for a damaged
    /// segment: `f` has then seen the entries before the damage.
    pub fn enumerate_with<B>(
        &self,
        root: &str,
        mode: EnumerationMode,
        f: impl FnMut(EntryRef<'_>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        check_root(root)?;
        self.inner.check_open()?;
        Walk::new(root, mode, false).for_each(&self.inner, f)
    }

    /// [`Index::enumerate_with`] filtered as [`Index::enumerate_synced`] is.
    pub fn enumerate_synced_with<B>(
        &self,
        root: &str,
        mode: EnumerationMode,
        f: impl FnMut(EntryRef<'_>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        check_root(root)?;
        self.inner.check_open()?;
        Walk::new(root, mode, true).for_each(&self.inner, f)
    }

    /// How many entries [`Index::enumerate`] would yield.
    pub fn count(&self, root: &str, mode: EnumerationMode) -> Result<u64> {
        check_root(root)?;
        if mode == EnumerationMode::RecursiveDocuments {
            let shared = self.inner.read_lock()?;
            if let Some(n) = shared.tables.count_under(folder_prefix(root).as_bytes())? {
                return Ok(n);
            }
        }
        let mut n = 0;
        let walked = self.enumerate_with(root, mode, |_| {
            n += 1;
            ControlFlow::<()>::Continue(())
        })?;
        debug_assert!(walked.is_continue());
        Ok(n)
    }

    /// The newest value of checkpoint `name`, with its serial and state.
    pub fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>> {
        check_name("checkpoint name", name)?;
        let shared = self.inner.read_lock()?;
        let marks = self.inner.watermarks();
        Ok(shared.tables.checkpoints.get(name).map(|c| checkpoint(name, c, &marks)))
    }

    /// Every checkpoint, sorted by name (pushdex's own `pushdex.` names are
    /// not listed).
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let shared = self.inner.read_lock()?;
        let marks = self.inner.watermarks();
        Ok(shared
            .tables
            .checkpoints
            .iter()
            .filter(|(name, _)| !name.starts_with(RESERVED_CHECKPOINT_PREFIX))
            .map(|(name, c)| checkpoint(name, c, &marks))
            .collect())
    }

    /// Every checkpoint whose name starts with `prefix`, sorted by name,
    /// pushdex's own `pushdex.` names included: how the connector layer
    /// reads its registry.
    pub fn checkpoints_with_prefix(&self, prefix: &str) -> Result<Vec<Checkpoint>> {
        let shared = self.inner.read_lock()?;
        let marks = self.inner.watermarks();
        Ok(shared
            .tables
            .checkpoints
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(name, c)| checkpoint(name, c, &marks))
            .collect())
    }

    // ---- sessions --------------------------------------------------------

    /// The id drawn by this open of the index.
    pub fn session_id(&self) -> SessionId {
        self.inner.session
    }

    /// `SessionMismatch` unless `id` is this open's session.
    pub fn check_session(&self, id: SessionId) -> Result<()> {
        self.inner.check_open()?;
        if id != self.inner.session {
            return Err(Error::SessionMismatch { expected: self.inner.session, actual: id });
        }
        Ok(())
    }

    /// Starts a push session under this open's id.
    pub fn start_push_session(&self) -> PushSession {
        PushSession::new(self.clone(), self.inner.session)
    }

    /// Resumes the session `id`: `SessionMismatch` if the index was
    /// reopened since it was started.
    pub fn resume_push_session(&self, id: SessionId) -> Result<PushSession> {
        self.check_session(id)?;
        Ok(PushSession::new(self.clone(), id))
    }

    /// The index's directory.
    pub fn path(&self) -> &Path {
        self.inner.storage.root()
    }

    /// The options the index was opened with.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("path", &self.inner.storage.root())
            .field("session", &self.inner.session)
            .field("watermarks", &self.inner.watermarks())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

fn checkpoint(name: &str, c: &CheckpointEntry, marks: &Watermarks) -> Checkpoint {
    Checkpoint {
        name: name.to_string(),
        value: c.value.clone(),
        serial: Serial(c.serial),
        state: marks.state_of(Serial(c.serial)),
    }
}

fn new_session_id() -> Result<u64> {
    loop {
        let id = getrandom::u64().map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        if id != 0 {
            return Ok(id);
        }
    }
}

impl Inner {
    /// The snapshot search reads.
    fn snapshot(&self) -> Arc<Snapshot> {
        self.published.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Publishes the committed segments as what search sees, and drops the
    /// search indexes of segments no longer in it.
    pub(crate) fn publish(&self) -> Result<()> {
        let segments = self.read_lock()?.tables.committed_segments();
        let snapshot = Arc::new(Snapshot::new(segments, self.search_cache.clone()));
        self.search_cache.retain(&snapshot.names());
        *self.published.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Shared> {
        // A panic while holding the lock cannot leave the memtable half
        // changed in a way later reads would misread (each change is one trie
        // call); keep serving rather than poisoning every handle.
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read_lock(&self) -> Result<RwLockReadGuard<'_, Shared>> {
        self.check_open()?;
        Ok(self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn lock_guard(&self) -> std::sync::MutexGuard<'_, Option<LockGuard>> {
        self.dir_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn watermarks(&self) -> Watermarks {
        // Loaded in this order so that the snapshot keeps
        // searchable <= synced <= last although each moves on its own.
        let searchable = self.searchable.load(Ordering::SeqCst);
        let synced = self.synced.load(Ordering::SeqCst);
        let last = self.last.load(Ordering::SeqCst);
        Watermarks { last: Serial(last), synced: Serial(synced), searchable: Serial(searchable) }
    }

    /// The write path for an operation known before the lock is taken.
    fn write(&self, op: Op<'_>) -> Result<Serial> {
        self.write_with(0, |shared, serial| shared.log_and_apply(serial, op))
    }

    /// The write path: takes the writer lock, hands `op` the next serial,
    /// and returns the last serial it used. `op` validates whatever needs the
    /// current state (update) before it logs and applies anything; `bytes`
    /// is about what it adds to the memtable (0 for an operation that only
    /// deletes or updates one document), for the stall.
    fn write_with(&self, bytes: usize, op: impl FnOnce(&mut Shared, u64) -> Result<u64>) -> Result<Serial> {
        let mut shared = self.write_lock();
        // Backpressure: while one memtable is being flushed, the next may
        // grow to the threshold again, not beyond (a small operation: a
        // quarter beyond, see `must_stall`). If that flush fails, the
        // operation is refused rather than left waiting for good (a storage
        // that has failed may never let a flush through).
        let failures = self.background.flush_failures();
        while self.must_stall(&shared, bytes) {
            drop(shared);
            self.background.flush.notify();
            {
                let stall = self.stall.lock().unwrap_or_else(|e| e.into_inner());
                // Checked again under `stall`: a flush that ends after this
                // check notifies while we wait ([`Inner::wake_stalled`]).
                // The timeout is a safety net, not the mechanism.
                let still = self.must_stall(&self.state.read().unwrap_or_else(|e| e.into_inner()), bytes);
                if still && self.background.flush_failures() == failures && !self.closed.load(Ordering::SeqCst) {
                    drop(self.flushed.wait_timeout(stall, STALL_SAFETY_NET).unwrap_or_else(|e| e.into_inner()));
                }
            }
            self.check_open()?;
            if self.background.flush_failures() != failures {
                let failure = self.background.last_flush_failure();
                let context = "the memtable is full and its flush failed";
                return Err(failure.map_or_else(|| Error::Io(std::io::Error::other(context)), |f| f.to_error(context)));
            }
            shared = self.write_lock();
        }
        // Checked under the lock: close() takes the lock after setting the
        // flag, so no operation slips in after its final sync.
        self.check_open()?;
        if shared.wal.buffer_len() >= WRITE_OUT_BYTES {
            // Done before the operation, so that an I/O error here refuses
            // it with nothing changed.
            let bytes = shared.wal.buffer_len() as u64;
            shared.wal.write_out()?;
            if self.written_out.fetch_add(bytes, Ordering::SeqCst) + bytes >= WRITEBACK_BYTES {
                self.written_out.store(0, Ordering::SeqCst);
                self.background.writeback.notify();
            }
        }
        if let Some(e) = shared.wal.poisoned() {
            return Err(e);
        }
        // Between buffering its frame and storing `last`, an operation must
        // not be cut short: the next one would reuse its serials and the
        // log would no longer open. A panic there (a bug, or an allocation
        // failure) stops the writer instead, as a failed fsync does; the
        // operations Synced so far stay, and a reopen recovers.
        let next = self.last.load(Ordering::SeqCst) + 1;
        let last = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(&mut shared, next))) {
            Ok(last) => last?,
            Err(panic) => {
                shared.wal.poison("an operation panicked while it was being applied");
                drop(shared);
                std::panic::resume_unwind(panic);
            }
        };
        self.last.store(last, Ordering::SeqCst);
        if shared.tables.mem_bytes >= self.memtable_limit() && shared.tables.frozen.is_none() {
            self.background.flush.notify();
        }
        drop(shared);
        self.wake_gatherer();
        Ok(Serial(last))
    }

    /// Whether a writer adding about `bytes` must wait for the flush in
    /// progress: the memtable that takes writes is full again before the
    /// frozen one is written. A small operation (at most
    /// [`SMALL_WRITE_BYTES`]: one document, a deletion, a checkpoint) waits
    /// only once the memtable is a quarter past full, so that a connector's
    /// single writes and deletions are not held up for a whole flush behind
    /// a bulk push, whose batches wait at the threshold itself.
    fn must_stall(&self, shared: &Shared, bytes: usize) -> bool {
        stalls(shared.tables.frozen.is_some(), shared.tables.mem_bytes, self.memtable_limit(), bytes)
    }

    /// The log's writeback (its own background thread, woken every
    /// [`WRITEBACK_BYTES`] written out): fdatasyncs the log file as it
    /// stands, outside every lock, so that a bulk push without `sync` does
    /// not leave its whole log for the next `sync` to wait on. It makes
    /// nothing Synced (API.md: only `sync`, `refresh`, `close` and a flush
    /// do); the `sync` after it finds most of the bytes on disk already.
    /// A failed fdatasync stops the writer, as a failed `sync` does: the
    /// kernel may have dropped the pages it could not write, and no later
    /// fsync may report them durable.
    pub(crate) fn write_back(&self) {
        let file = {
            let shared = self.read_tables();
            if shared.wal.poisoned().is_some() {
                return;
            }
            shared.wal.file()
        };
        if let Err(e) = file.sync() {
            self.log_fsync_failed(&mut self.round.lock().unwrap_or_else(|e| e.into_inner()), &e);
            self.background.record(background::Job::Writeback, &Error::Io(e));
        }
    }

    /// After a failed fsync of the log (a sync round's or the writeback's):
    /// every later sync fails (`round.failed`) and every write too (the log
    /// writer poisoned). Never retry an fsync and report success: the
    /// kernel may have dropped the dirty pages it failed to write.
    fn log_fsync_failed(&self, round: &mut SyncRound, e: &dyn std::fmt::Display) {
        round.failed = Some(format!("the log could not be made durable: {e}"));
        self.write_lock().wal.poison(&e.to_string());
    }

    /// Group commit: returns once every operation up to `target` is fsynced.
    /// One thread at a time leads a round (writes the buffer out, fsyncs);
    /// the others wait and usually find themselves covered by its fsync.
    fn sync_to(&self, target: u64) -> Result<Serial> {
        // A log that failed a write or an fsync fails every sync until
        // reopen, even one with nothing new to make durable: the index is
        // broken and must say so.
        if let Some(e) = self.state.read().unwrap_or_else(|e| e.into_inner()).wal.poisoned() {
            return Err(e);
        }
        let mut round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let synced = self.synced.load(Ordering::SeqCst);
            if synced >= target {
                return Ok(Serial(synced));
            }
            if let Some(why) = &round.failed {
                return Err(Error::Poisoned { reason: why.clone() });
            }
            if round.leader {
                round.waiting += 1;
                if self.gathering.load(Ordering::SeqCst) {
                    self.gathered.notify_all();
                }
                round = self.round_done.wait(round).unwrap_or_else(|e| e.into_inner());
                round.waiting -= 1;
                continue;
            }
            round.leader = true;
            round = self.gather(round, synced);
            drop(round);
            let started = std::time::Instant::now();
            let result = self.lead_sync_round();
            round = self.round.lock().unwrap_or_else(|e| e.into_inner());
            round.leader = false;
            round.last_fsync = started.elapsed();
            round.released = round.waiting;
            match result {
                Ok(covered) => {
                    self.synced.fetch_max(covered, Ordering::SeqCst);
                }
                Err(e) => {
                    self.log_fsync_failed(&mut round, &e);
                    self.round_done.notify_all();
                    return Err(e);
                }
            }
            self.round_done.notify_all();
        }
    }

    /// Before a round: the threads the last round released usually come
    /// straight back, each with one more operation and a `sync()`. On two
    /// cores they are still waking when the first of them becomes leader,
    /// and a round that wrote out at once would cover only that one, leaving
    /// the rest a whole fsync behind. So the leader waits until as many
    /// operations as the last round released are pending (or as many
    /// threads wait for it), for at most the last fsync's duration. A lone
    /// writer (no one released) never waits.
    fn gather<'a>(&self, mut round: MutexGuard<'a, SyncRound>, synced: u64) -> MutexGuard<'a, SyncRound> {
        let expect = round.released;
        if expect == 0 {
            return round;
        }
        let deadline = std::time::Instant::now() + round.last_fsync.min(MAX_GATHER);
        self.gathering.store(true, Ordering::SeqCst);
        loop {
            let pending = self.last.load(Ordering::SeqCst).saturating_sub(synced);
            let now = std::time::Instant::now();
            if pending as usize > expect || round.waiting >= expect || now >= deadline {
                break;
            }
            round = self.gathered.wait_timeout(round, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        self.gathering.store(false, Ordering::SeqCst);
        round
    }

    /// Wakes a gathering leader after an operation was applied.
    fn wake_gatherer(&self) {
        if self.gathering.load(Ordering::SeqCst) {
            // Taken and released so that the leader is either before its
            // check (and sees the new operation) or waiting (and is woken).
            drop(self.round.lock().unwrap_or_else(|e| e.into_inner()));
            self.gathered.notify_all();
        }
    }

    /// One fsync round: writes the buffer out under the writer lock (so the
    /// file holds exactly the operations 1..covered), fsyncs outside it.
    fn lead_sync_round(&self) -> Result<u64> {
        let (file, covered) = {
            let mut shared = self.write_lock();
            if let Some(e) = shared.wal.poisoned() {
                return Err(e);
            }
            shared.wal.write_out()?;
            (shared.wal.file(), self.last.load(Ordering::SeqCst))
        };
        file.sync_through(covered)?;
        Ok(covered)
    }
}

impl Inner {
    /// The flush threshold now.
    pub(crate) fn memtable_limit(&self) -> usize {
        self.memtable_bytes.load(Ordering::SeqCst)
    }

    /// What a segment writer's terms fst and metas table may each hold in
    /// memory before they spill to a scratch file: half the flush
    /// threshold, so that a flush's tables (smaller than the memtable they
    /// come from) stay in memory and only a merge of large segments spills.
    pub(crate) fn table_bytes(&self) -> usize {
        self.memtable_limit() / 2
    }

    /// Closes the index: no call gets through afterwards. With `flush`
    /// (an explicit `close()`) the memtable is committed so that the next
    /// open replays nothing; else (the last handle dropped) the log is synced.
    /// The directory is released either way.
    fn shut_down(&self, flush: bool) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        // Writers stalled behind a full memtable see the flag and give up;
        // the threads end (a merge gives up at the flag).
        self.wake_stalled();
        self.background.stop();
        // Wait for a merge (it gives up at the flag), a flush in progress,
        // and a writer that saw the index open before the flag was set: the
        // final sync covers every operation that returned a serial, and
        // nothing writes once the directory is released.
        let _merging = self.merging.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = self.lock_maintenance();
        drop(self.write_lock());
        let result = if flush {
            self.flush_locked(&mut m, false).and_then(|_| self.sync_to(self.last.load(Ordering::SeqCst)))
        } else {
            self.sync_to(self.last.load(Ordering::SeqCst))
        };
        self.lock_guard().take();
        result.map(|_| ())
    }
}

/// A checked document on its way into the log and the memtable: what the
/// memtable keeps is moved here, not copied.
struct OwnedDoc {
    uri: String,
    stamp: String,
    body: Vec<u8>,
}

impl Shared {
    /// The write path of `add` and `add_all`: logs the documents as one
    /// frame (`ADD` for one, `BATCH` for several), then moves their stamps
    /// and bodies into the memtable. Returns the last serial used.
    fn log_and_put(&mut self, serial: u64, docs: Vec<OwnedDoc>) -> u64 {
        fn record(d: &OwnedDoc) -> DocRecord<'_> {
            DocRecord { uri: &d.uri, stamp: &d.stamp, body: &d.body }
        }
        match docs.as_slice() {
            [doc] => self.wal.append(serial, kind::ADD, |buf| Op::Add(record(doc)).encode(buf)),
            _ => self.wal.append(serial, kind::BATCH, |buf| Op::Batch(docs.iter().map(record).collect()).encode(buf)),
        }
        #[cfg(test)]
        tests::panic_point();
        let mut last = serial;
        for (serial, doc) in (serial..).zip(docs) {
            self.tables.put(serial, &doc.uri, doc.stamp, doc.body);
            last = serial;
        }
        self.tables.last = last;
        last
    }

    /// Logs `op` as one frame, then applies it; returns its last serial. If
    /// applying fails (a damaged segment), the frame is taken back out.
    fn log_and_apply(&mut self, serial: u64, op: Op<'_>) -> Result<u64> {
        let mark = self.wal.buffer_len();
        self.wal.append(serial, op.kind(), |buf| op.encode(buf));
        self.tables.apply(serial, op).inspect_err(|_| self.wal.truncate_buffer(mark))
    }
}

/// Refuses the names of pushdex's own checkpoints.
fn check_unreserved(name: &str) -> Result<()> {
    if name.starts_with(RESERVED_CHECKPOINT_PREFIX) {
        return Err(Error::invalid_input(format!(
            "checkpoint names beginning with {RESERVED_CHECKPOINT_PREFIX:?} are reserved for pushdex's own \
             layers (the connectors' registry): {name:?}"
        )));
    }
    Ok(())
}

/// Applies one recovered log frame to the tables: its operation must decode
/// and take the serials right after the last one.
fn replay_frame(tables: &mut Tables, frame: wal::Frame<'_>, log_path: &Path) -> Result<()> {
    let op = Op::decode(frame.kind, frame.payload, log_path)?;
    if frame.serial != tables.last + 1 || op.serials() == 0 {
        return Err(Error::corrupt(
            log_path.join(wal::log_name(frame.gen)),
            format!(
                "log frame at offset {} has serial {}, but serial {} comes next",
                frame.offset,
                frame.serial,
                tables.last + 1
            ),
        ));
    }
    tables.apply(frame.serial, op)?;
    Ok(())
}

/// The state the manifest committed: its segments, bitmaps and checkpoints.
fn load_committed(storage: &dyn Storage, manifest: &manifest::Manifest) -> Result<Tables> {
    let mut tables = Tables { last: manifest.serial, ..Tables::default() };
    for seg_ref in &manifest.segments {
        let seg = Segment::open(storage, &seg_ref.name)?;
        if seg.rows() != seg_ref.rows {
            return Err(Error::corrupt(
                seg.path(),
                format!("the manifest says {} rows, the segment holds {}", seg_ref.rows, seg.rows()),
            ));
        }
        let deleted = match &seg_ref.deletions {
            Some(name) => manifest::read_bitmap(storage, name, seg.rows())?,
            None => roaring::RoaringBitmap::new(),
        };
        tables.segments.push(LiveSegment::new(Arc::new(seg), deleted, seg_ref.deletions.clone()));
    }
    for (name, value, serial) in &manifest.checkpoints {
        tables.checkpoints.insert(name.clone(), CheckpointEntry { value: value.clone(), serial: *serial });
    }
    Ok(tables)
}

/// Far more file generations than any index will use (one per flush, merge
/// or log rotation); a number beyond it is damage, and counting on from it
/// would overflow.
const MAX_GEN: u64 = 1 << 62;

/// One past the highest file generation in the directory or the manifest;
/// `Corrupt` for a generation beyond [`MAX_GEN`].
fn next_free_gen(storage: &dyn Storage, manifest: &manifest::Manifest) -> Result<u64> {
    let too_far = |name: &str, gen: u64| {
        Error::corrupt(storage.root().join(name), format!("file generation {gen} is beyond the last one, {MAX_GEN}"))
    };
    if manifest.next_gen > MAX_GEN || manifest.log_gen > MAX_GEN {
        return Err(too_far(manifest::MANIFEST, manifest.next_gen.max(manifest.log_gen)));
    }
    let mut next = manifest.next_gen.max(1);
    for name in storage.list()? {
        let gen = FileName::parse(&name).and_then(FileName::gen);
        if let Some(gen) = gen {
            if gen >= MAX_GEN {
                return Err(too_far(&name, gen));
            }
            next = next.max(gen + 1);
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// Behind a flush in progress, a batch waits at the threshold; one
    /// document, a deletion or a checkpoint only a quarter past it; nothing
    /// waits while no flush is in progress (the full memtable is frozen and
    /// flushed instead).
    #[test]
    fn small_operations_stall_later_than_batches() {
        let limit = 64 << 20;
        let (small, batch) = (SMALL_WRITE_BYTES, SMALL_WRITE_BYTES + 1);
        for bytes in [0, small, batch, 10 << 20] {
            assert!(!stalls(false, 2 * limit, limit, bytes), "no flush in progress");
            assert!(!stalls(true, limit - 1, limit, bytes), "room left");
        }
        assert!(stalls(true, limit, limit, batch));
        assert!(stalls(true, limit, limit, 10 << 20));
        for bytes in [0, 1, small] {
            assert!(!stalls(true, limit, limit, bytes));
            assert!(!stalls(true, limit + limit / 4 - 1, limit, bytes));
            assert!(stalls(true, limit + limit / 4, limit, bytes));
        }
        assert!(stalls(true, usize::MAX, usize::MAX, 0), "no overflow");
    }

    thread_local! {
        /// Set by a test: the next `add` on this thread panics after its
        /// frame is buffered and before its serial is stored.
        static PANIC_AFTER_LOGGING: Cell<bool> = const { Cell::new(false) };
    }

    pub(super) fn panic_point() {
        if PANIC_AFTER_LOGGING.with(|armed| armed.replace(false)) {
            panic!("injected: a panic between buffering a frame and storing `last`");
        }
    }

    /// Set by a test: the next flush of the index in this directory panics
    /// after writing its segment, before its commit.
    static PANIC_IN_FLUSH_OF: Mutex<Option<std::path::PathBuf>> = Mutex::new(None);

    pub(crate) fn flush_panic_point(root: &Path) {
        let mut armed = PANIC_IN_FLUSH_OF.lock().unwrap_or_else(|e| e.into_inner());
        if armed.as_deref() == Some(root) {
            *armed = None;
            drop(armed);
            panic!("injected: a panic in a flush between its freeze and its commit");
        }
    }

    /// A panic in a background flush is recorded (the thread goes on), and
    /// the frozen memtable stays pending: the next flush commits it instead
    /// of freezing over it. Before, the panic went unheard, and the next
    /// freeze replaced the frozen memtable (a debug assertion; in release,
    /// its operations were lost once their log was removed).
    #[test]
    fn a_panic_in_a_background_flush_is_recorded_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default().memtable_bytes(Options::MIN_MEMTABLE_BYTES);
        let index = Index::open_with(dir.path(), options).unwrap();
        index.add(doc(0)).unwrap();
        index.refresh().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        *PANIC_IN_FLUSH_OF.lock().unwrap() = Some(index.inner.storage.root().to_path_buf());
        assert_eq!(index.inner.storage.root(), root.as_path());
        // Past the threshold: the flush thread freezes, writes and panics.
        // A writer stalled behind that flush hears of the failure.
        let mut next = 1;
        for _ in 0..2000 {
            if index.health().background_failures > 0 {
                break;
            }
            match index.add(doc(next)) {
                Ok(_) => next += 1,
                Err(e) => {
                    assert!(matches!(&e, Error::Io(io) if io.to_string().contains("panicked")), "{e:?}");
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let health = index.health();
        assert_eq!(health.background_failures, 1, "{health:?}");
        assert!(health.last_background_failure.as_deref().is_some_and(|f| f.contains("panicked")), "{health:?}");
        // The flush thread is alive, and the pending base is committed first.
        for i in next..next + 200 {
            index.add(doc(i)).unwrap();
        }
        next += 200;
        index.refresh().unwrap();
        assert_eq!(index.search_count(&Query::All).unwrap(), u64::from(next));
        index.close().unwrap();
        let index = Index::open(dir.path()).unwrap();
        assert_eq!(index.count("", EnumerationMode::RecursiveDocuments).unwrap(), u64::from(next));
        assert!((0..next).all(|i| index.get(&format!("file:///d/{i}")).unwrap().is_some()));
    }

    fn doc(i: u32) -> Document {
        Document::new(format!("file:///d/{i}")).with_stamp(format!("s{i}")).with_text("body", "words")
    }

    /// Before the guard, the panicked batch's serials were handed out again
    /// and the next open refused the log as Corrupt.
    #[test]
    fn a_panic_mid_batch_stops_the_writer_and_the_index_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        index.add_all((0..3).map(doc)).unwrap();
        index.sync().unwrap();
        PANIC_AFTER_LOGGING.with(|armed| armed.set(true));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| index.add_all((3..6).map(doc))));
        assert!(panicked.is_err());
        // The writer is stopped: nothing more is accepted or promised.
        assert!(matches!(index.add(doc(9)), Err(Error::Poisoned { .. })), "{:?}", index.add(doc(9)));
        assert!(matches!(index.sync(), Err(Error::Poisoned { .. })));
        assert!(index.health().writer_stopped.is_some());
        assert_eq!(index.get("file:///d/2").unwrap().map(|d| d.stamp().to_string()), Some("s2".into()));
        drop(index);
        // What was Synced is there, the rest is not, and writes go on.
        let index = Index::open(dir.path()).unwrap();
        assert_eq!(index.watermarks().last, Serial(3));
        assert!(index.get("file:///d/2").unwrap().is_some());
        assert!(index.get("file:///d/3").unwrap().is_none());
        assert_eq!(index.add(doc(7)).unwrap(), Serial(4));
        index.sync().unwrap();
        index.close().unwrap();
        let index = Index::open(dir.path()).unwrap();
        assert!(index.get("file:///d/7").unwrap().is_some());
    }
}
