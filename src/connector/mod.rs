//! Managed connectors (live sources): a registry of sources, each owning a
//! URI root, whose imports run as jobs with a status to poll, whose
//! documents page with `rows`/`start`, and whose deletion is immediate,
//! irreversible and durable.
//!
//! This layer uses only the public [`Index`] API. The registry and the job
//! records are checkpoints under the reserved `pushdex.` prefix, written in
//! the same ordered stream as the documents: they survive restarts and
//! crashes exactly like the documents do.
//!
//! ```no_run
//! use pushdex::connector::{Connectors, RunMode};
//! use pushdex::Index;
//! # fn main() -> pushdex::Result<()> {
//! let index = Index::open("/tmp/pushdex-data")?;
//! let connectors = Connectors::open(&index)?;
//! let info = connectors.create_directory("/srv/share", RunMode::Once)?;
//! let job = connectors.run_import(&info.id)?;
//! println!("{}: {} added, {} updated, {} deleted", job.status, job.added, job.updated, job.deleted);
//! let page = connectors.source_documents(&info.id, 100, 0)?;
//! # let _ = page;
//! connectors.delete(&info.id)?;
//! # Ok(())
//! # }
//! ```

mod directory;
mod job;
mod registry;
mod source;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::document::check_name;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::status::{Entry, EnumerationMode, State};
use crate::uri::check_root;
use job::JobHandle;
use registry::Registry;

pub use directory::{DirectorySource, MAX_CONTENT_BYTES};
pub use source::{Skip, Source, SourceItem};

/// The most documents [`Connectors::source_documents`] returns in one page.
pub const MAX_PAGE_ROWS: usize = 1000;

/// How a connector's import runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Each import scans the source once and ends.
    Once,
    /// An import scans the source, waits `interval`, and scans again, until
    /// it is stopped or the connector is deleted.
    Continuous {
        /// The pause between the end of one scan and the start of the next.
        #[serde(with = "humantime_serde_secs")]
        interval: Duration,
    },
}

/// What kind of source a connector reads: what the registry needs to build
/// it again after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The built-in [`DirectorySource`] over this absolute directory.
    Directory {
        /// The directory, absolute.
        path: String,
    },
    /// A source of the user's: after a restart it must be given again with
    /// [`Connectors::attach`] before the connector can import.
    Custom,
}

/// A connector as the registry holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorInfo {
    /// The connector's id (`"c1"`, `"c2"`, …): never reused.
    pub id: String,
    /// The name it was created with.
    pub name: String,
    /// The URI root it owns (slash hierarchy): every document under it is
    /// the connector's, and no other connector's root overlaps it.
    pub root: String,
    /// The source's description.
    pub source: String,
    /// The source's kind.
    pub kind: SourceKind,
    /// How imports run.
    pub mode: RunMode,
    /// When it was created (RFC 3339, UTC).
    pub created: String,
    /// What its creator said of it (empty when nothing was said).
    #[serde(default)]
    pub description: String,
}

/// The state of a connector's import job, as the platform names it.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    /// No import has run since the connector was created.
    #[serde(rename = "not yet run")]
    NotYetRun,
    /// An import is running.
    #[serde(rename = "running")]
    Running,
    /// A continuous connector waits for its next scan.
    #[serde(rename = "waiting")]
    Waiting,
    /// The last import finished (items that failed are counted in `failed`).
    #[serde(rename = "done")]
    Done,
    /// The last import stopped on an error (see `last_error`), or the
    /// process stopped while it ran.
    #[serde(rename = "error")]
    Error,
    /// A stop was asked for; the job ends at its next batch boundary.
    #[serde(rename = "aborting")]
    Aborting,
    /// The last import was stopped before it finished.
    #[serde(rename = "aborted")]
    Aborted,
}

impl JobState {
    /// The platform's name for the state: `"not yet run"`, `"running"`, …
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::NotYetRun => "not yet run",
            JobState::Running => "running",
            JobState::Waiting => "waiting",
            JobState::Done => "done",
            JobState::Error => "error",
            JobState::Aborting => "aborting",
            JobState::Aborted => "aborted",
        }
    }

    /// Whether an import is under way (running, waiting between scans, or
    /// being stopped).
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Running | JobState::Waiting | JobState::Aborting)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connector's job status, shaped like the platform's.
///
/// Counts are of the current (or last) scan, whose units of work are the
/// listed items and the index's documents found gone from the source.
/// `documents_processed` counts units settled (unchanged, pushed, deleted,
/// failed); `documents_in_queue` the pushes and deletions found needed and
/// not yet done; `documents_outstanding` every unit not yet settled
/// (while listing: those listed so far).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// `"<connector id>-<run number>"`; empty before the first run.
    pub job_id: String,
    /// The job's state.
    pub status: JobState,
    /// When the current (or last) scan started (RFC 3339, UTC).
    pub start_time: Option<String>,
    /// When it ended.
    pub end_time: Option<String>,
    /// Items found to need a push or a deletion, not yet done.
    pub documents_in_queue: u64,
    /// Items listed and not yet processed.
    pub documents_outstanding: u64,
    /// Items processed.
    pub documents_processed: u64,
    /// Items the source listed.
    pub listed: u64,
    /// Documents pushed that the index did not hold.
    pub added: u64,
    /// Documents pushed again because their stamp changed.
    pub updated: u64,
    /// Documents whose stamp matched: not pushed.
    pub unchanged: u64,
    /// Documents deleted because the source no longer has them.
    pub deleted: u64,
    /// Items that could not be fetched or pushed.
    pub failed: u64,
    /// Parts of the source passed over, with the reasons in `last_error`:
    /// what could not be read this time (its documents are kept as they
    /// are), names that cannot be URIs, links and special files, indexes,
    /// files that vanished while the import ran.
    #[serde(default)]
    pub skipped: u64,
    /// The last error met, if any.
    pub last_error: Option<String>,
}

impl JobStatus {
    fn not_yet_run() -> JobStatus {
        JobStatus {
            job_id: String::new(),
            status: JobState::NotYetRun,
            start_time: None,
            end_time: None,
            documents_in_queue: 0,
            documents_outstanding: 0,
            documents_processed: 0,
            listed: 0,
            added: 0,
            updated: 0,
            unchanged: 0,
            deleted: 0,
            failed: 0,
            skipped: 0,
            last_error: None,
        }
    }

    /// The job as an import status: a message and a percentage.
    pub fn import_status(&self) -> ImportStatus {
        let percent_complete = match self.status {
            JobState::Done => 100,
            _ => {
                let total = self.documents_processed + self.documents_outstanding;
                (self.documents_processed * 100).checked_div(total).unwrap_or(0).min(100) as u8
            }
        };
        let message = match self.status {
            JobState::NotYetRun => "not yet run".to_string(),
            JobState::Running if self.listed == 0 => "listing the source".to_string(),
            JobState::Running => format!(
                "{} of {} documents processed",
                self.documents_processed,
                self.documents_processed + self.documents_outstanding
            ),
            JobState::Waiting => format!("scan done ({} documents); waiting for the next scan", self.listed),
            JobState::Done => format!(
                "done: {} added, {} updated, {} unchanged, {} deleted, {} failed",
                self.added, self.updated, self.unchanged, self.deleted, self.failed
            ),
            JobState::Error => format!("error: {}", self.last_error.as_deref().unwrap_or("unknown")),
            JobState::Aborting => "stopping".to_string(),
            JobState::Aborted => format!("stopped after {} of {} documents", self.documents_processed, self.listed),
        };
        ImportStatus { status: self.status, message, percent_complete }
    }
}

/// An import's progress in words and percent.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportStatus {
    /// The job's state.
    pub status: JobState,
    /// What the import is doing, or how it ended.
    pub message: String,
    /// Processed items over listed ones, 0 to 100.
    pub percent_complete: u8,
}

/// One document of a connector, as [`Connectors::source_documents`] pages them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceDocument {
    /// The URI.
    pub uri: String,
    /// The stamp.
    pub stamp: String,
    /// Pushed, Synced or Searchable.
    pub state: State,
    /// Every meta, in order (multi-valued metas appear once per value).
    pub metas: Vec<(String, String)>,
}

/// A page of a connector's documents in URI order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourcePage {
    /// The documents, at most `rows` of them.
    pub documents: Vec<SourceDocument>,
    /// The position of the first one in URI order (as asked).
    pub start: u64,
    /// How many documents the connector holds in all.
    pub total: u64,
}

/// The managed connectors of one index.
///
/// Open one per index: jobs are tracked in memory by the value that
/// started them (their records are durable through checkpoints). Cloning
/// shares the same registry and jobs.
#[derive(Clone)]
pub struct Connectors {
    index: Index,
    shared: Arc<Mutex<Registry>>,
    jobs: Arc<Mutex<HashMap<String, JobHandle>>>,
}

impl fmt::Debug for Connectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connectors").field("index", &self.index).finish_non_exhaustive()
    }
}

impl Connectors {
    /// The connectors of `index`, as its registry checkpoints hold them. A
    /// job that was running when the process stopped is reported as
    /// `error` ("interrupted"); the next import converges.
    ///
    /// # Errors
    /// `Corrupt` if a registry checkpoint does not parse.
    pub fn open(index: &Index) -> Result<Connectors> {
        let registry = Registry::load(index)?;
        Ok(Connectors {
            index: index.clone(),
            shared: Arc::new(Mutex::new(registry)),
            jobs: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The index the connectors push into.
    pub fn index(&self) -> &Index {
        &self.index
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn jobs(&self) -> MutexGuard<'_, HashMap<String, JobHandle>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a connector for `source` owning the URI root `root`, and
    /// makes the registry entry durable.
    ///
    /// # Errors
    /// `InvalidUri` for a bad root; `InvalidInput` for an empty or
    /// over-long name, or a root that overlaps another connector's (equal,
    /// or one a folder of the other).
    pub fn create(&self, name: &str, root: &str, source: Arc<dyn Source>, mode: RunMode) -> Result<ConnectorInfo> {
        let kind = SourceKind::Custom;
        self.create_with_kind(name, root, source, mode, kind, "")
    }

    fn create_with_kind(
        &self,
        name: &str,
        root: &str,
        source: Arc<dyn Source>,
        mode: RunMode,
        kind: SourceKind,
        description: &str,
    ) -> Result<ConnectorInfo> {
        check_root(root)?;
        check_name("connector name", name)?;
        if let RunMode::Continuous { interval } = mode {
            if interval.is_zero() {
                return Err(Error::invalid_input("a continuous connector needs an interval of at least 1 s"));
            }
        }
        let mut registry = self.registry();
        if let Some(other) = registry.overlapping(root) {
            return Err(Error::invalid_input(format!(
                "root {root:?} overlaps the root {:?} of connector {}",
                other.root, other.id
            )));
        }
        if registry.next_id > registry::MAX_ID {
            return Err(Error::invalid_input("every connector id of this index has been used"));
        }
        let info = ConnectorInfo {
            id: format!("c{}", registry.next_id),
            name: name.to_string(),
            root: root.to_string(),
            source: source.description(),
            kind,
            mode,
            created: now_rfc3339(),
            description: description.to_string(),
        };
        registry.insert(&self.index, info.clone(), source)?;
        Ok(info)
    }

    /// Creates a connector for the directory tree at `dir` (made absolute):
    /// root `file://` + the directory's path, named after the directory's
    /// last component.
    ///
    /// # Errors
    /// `InvalidInput` if `dir` is not a directory, and as
    /// [`Connectors::create`].
    pub fn create_directory(&self, dir: impl AsRef<Path>, mode: RunMode) -> Result<ConnectorInfo> {
        self.create_directory_described(dir, None, "", mode)
    }

    /// [`Connectors::create_directory`] with a name (default: the
    /// directory's last component) and a description of the creator's.
    ///
    /// # Errors
    /// As [`Connectors::create_directory`].
    pub fn create_directory_described(
        &self,
        dir: impl AsRef<Path>,
        name: Option<&str>,
        description: &str,
        mode: RunMode,
    ) -> Result<ConnectorInfo> {
        let source = DirectorySource::new(dir)?;
        let path = source.dir().to_string_lossy().into_owned();
        let root = source.root();
        // Named after the directory itself (the whole path is in the kind,
        // and may be longer than a name may be).
        let name = name.map_or_else(|| directory_name(source.dir()), str::to_string);
        let kind = SourceKind::Directory { path: path.clone() };
        self.create_with_kind(&name, &root, Arc::new(source), mode, kind, description)
    }

    /// The directory connector whose directory is `dir` (made absolute), if any.
    ///
    /// # Errors
    /// `InvalidInput` if `dir` is not a directory.
    pub fn find_directory(&self, dir: impl AsRef<Path>) -> Result<Option<ConnectorInfo>> {
        let source = DirectorySource::new(dir)?;
        let path = source.dir().to_string_lossy();
        Ok(self
            .registry()
            .entries
            .values()
            .find(|e| matches!(&e.info.kind, SourceKind::Directory { path: p } if *p == path))
            .map(|e| e.info.clone()))
    }

    /// Gives a [`SourceKind::Custom`] connector its source again after a
    /// restart (or replaces it; not while it imports).
    pub fn attach(&self, id: &str, source: Arc<dyn Source>) -> Result<()> {
        self.check_idle(id)?;
        self.registry().get_mut(id)?.source = Some(source);
        Ok(())
    }

    /// Every connector, in creation order.
    pub fn list(&self) -> Vec<ConnectorInfo> {
        self.registry().entries.values().map(|e| e.info.clone()).collect()
    }

    /// One connector.
    ///
    /// # Errors
    /// `ConnectorNotFound` for an unknown (or deleted) id.
    pub fn get(&self, id: &str) -> Result<ConnectorInfo> {
        self.registry().get(id).map(|e| e.info.clone())
    }

    fn check_idle(&self, id: &str) -> Result<()> {
        match self.jobs().get_mut(id).map(JobHandle::is_over) {
            Some(false) => Err(Error::invalid_input(format!("connector {id} has an import under way; stop it first"))),
            _ => Ok(()),
        }
    }

    /// Starts an import on its own thread and returns its first status
    /// (`running`).
    ///
    /// # Errors
    /// `ConnectorNotFound`; `InvalidInput` if an import of this connector is
    /// already under way or a custom source was not attached; `Closed`.
    pub fn start_import(&self, id: &str) -> Result<JobStatus> {
        let registry = self.registry();
        let entry = registry.get(id)?;
        let source = entry.source.clone().ok_or_else(|| {
            Error::invalid_input(format!("connector {id} has a custom source: attach it before importing"))
        })?;
        let mut jobs = self.jobs();
        let previous = match jobs.get_mut(id) {
            Some(job) => {
                if !job.is_over() {
                    return Err(Error::invalid_input(format!("connector {id} already has an import under way")));
                }
                job.shared.status()
            }
            None => entry.recorded.clone(),
        };
        let run = previous.job_id.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) + 1;
        let job = JobHandle::start(self.index.clone(), entry.info.clone(), source, run)?;
        let status = job.shared.status();
        jobs.insert(id.to_string(), job);
        Ok(status)
    }

    /// Runs an import and waits for it: [`Connectors::start_import`] then
    /// [`Connectors::wait`].
    pub fn run_import(&self, id: &str) -> Result<JobStatus> {
        self.start_import(id)?;
        self.wait(id)
    }

    /// Waits until the connector's scan under way ends (a continuous
    /// connector then waits for its next scan), and returns the status
    /// then; at once when nothing runs.
    pub fn wait(&self, id: &str) -> Result<JobStatus> {
        let shared = match self.jobs().get(id) {
            Some(job) => Arc::clone(&job.shared),
            None => return self.job_status(id),
        };
        Ok(shared.wait())
    }

    /// Asks the connector's import to stop at its next batch boundary and
    /// waits for it (`aborted`); a continuous connector stops scanning. At
    /// once when nothing runs.
    pub fn stop(&self, id: &str) -> Result<JobStatus> {
        // The registry lock is held until the job has ended, so that no
        // import of this connector starts meanwhile (start_import takes it
        // first too); the job thread itself takes neither lock.
        let registry = self.registry();
        let recorded = registry.get(id)?.recorded.clone();
        let Some(shared) = self.end_job(id) else { return Ok(recorded) };
        drop(registry);
        Ok(shared.status())
    }

    /// Asks the job of `id` (if this value started one) to stop, and waits
    /// for its thread outside the jobs lock; returns its shared status.
    /// Callers hold the registry lock, so no import starts meanwhile.
    fn end_job(&self, id: &str) -> Option<Arc<job::Shared>> {
        let (shared, thread) = self.jobs().get_mut(id).map(|job| (job.shared.clone(), job.request_stop()))?;
        if let Some(thread) = thread {
            // Panics in the job are caught and reported in its status.
            let _ = thread.join();
        }
        Some(shared)
    }

    /// The connector's job status: of the job this process ran last, else
    /// as last recorded in the index.
    ///
    /// # Errors
    /// `ConnectorNotFound`.
    pub fn job_status(&self, id: &str) -> Result<JobStatus> {
        let recorded = self.registry().get(id)?.recorded.clone();
        Ok(self.jobs().get(id).map_or(recorded, |job| job.shared.status()))
    }

    /// The connector's import status: message and percent complete.
    pub fn import_status(&self, id: &str) -> Result<ImportStatus> {
        self.job_status(id).map(|job| job.import_status())
    }

    /// A page of the connector's documents in URI order: at most `rows`,
    /// from position `start` (0-based), with their metas. A `start` past
    /// the end gives an empty page.
    ///
    /// # Errors
    /// `InvalidInput` for `rows` 0 or above [`MAX_PAGE_ROWS`];
    /// `ConnectorNotFound`.
    pub fn source_documents(&self, id: &str, rows: usize, start: u64) -> Result<SourcePage> {
        if rows == 0 || rows > MAX_PAGE_ROWS {
            return Err(Error::invalid_input(format!("rows must be 1 to {MAX_PAGE_ROWS}, not {rows}")));
        }
        let root = self.get(id)?.root;
        let total = self.index.count(&root, EnumerationMode::RecursiveDocuments)?;
        let mut documents = Vec::with_capacity(rows.min(total.saturating_sub(start) as usize));
        if start < total {
            let skip = usize::try_from(start).unwrap_or(usize::MAX);
            for entry in self.index.enumerate(&root, EnumerationMode::RecursiveDocuments)?.skip(skip).take(rows) {
                let Entry::Document(status) = entry? else { continue };
                // Deleted since it was enumerated: not on the page.
                let Some(doc) = self.index.get(&status.uri)? else { continue };
                documents.push(SourceDocument {
                    uri: status.uri,
                    stamp: doc.stamp().to_string(),
                    state: status.state,
                    metas: doc.all_metas().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
                });
            }
        }
        Ok(SourcePage { documents, start, total })
    }

    /// Deletes the connector, now and for good: stops its import, deletes
    /// every document under its root (one root-path deletion), its job
    /// record and its registry entry, and syncs before returning. Later
    /// calls with the id give `ConnectorNotFound`.
    ///
    /// A crash during `delete` recovers a prefix of these steps: the
    /// connector is then still listed (with fewer or no documents) and
    /// `delete` can be called again.
    pub fn delete(&self, id: &str) -> Result<()> {
        // Under the registry lock from start to end: no import of this
        // connector can start while it is being deleted.
        let mut registry = self.registry();
        let root = registry.get(id)?.info.root.clone();
        self.end_job(id);
        self.jobs().remove(id);
        self.index.delete_root_path(&root, true)?;
        self.index.delete_reserved_checkpoint(&registry::job_key(id))?;
        self.index.delete_reserved_checkpoint(&registry::connector_key(id))?;
        self.index.sync()?;
        registry.remove(id);
        Ok(())
    }
}

/// A directory connector's name: the directory's last component ("/" for
/// the root), cut to [`crate::MAX_NAME_BYTES`] at a character boundary.
fn directory_name(dir: &Path) -> String {
    let name = dir.file_name().map_or_else(|| dir.to_string_lossy(), |n| n.to_string_lossy()).into_owned();
    let mut end = name.len().min(crate::MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// The source a registry entry is rebuilt with after a restart.
fn source_of(kind: &SourceKind) -> Option<Arc<dyn Source>> {
    match kind {
        SourceKind::Directory { path } => DirectorySource::new(path).ok().map(|s| Arc::new(s) as Arc<dyn Source>),
        SourceKind::Custom => None,
    }
}

/// `Duration` as whole seconds in the registry's JSON.
mod humantime_serde_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Now, in RFC 3339 to the second, UTC.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn not_found(id: &str) -> Error {
    Error::ConnectorNotFound { id: id.to_string() }
}
