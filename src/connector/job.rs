//! Import jobs: list the source, compare stamps with the index (one
//! enumeration of the root, not a status call per document), push what is
//! new or changed in batches, delete what is gone, record progress, sync,
//! refresh.
//!
//! Every batch ends with its job record (a checkpoint) and a `sync()`: a job
//! killed at any point leaves a prefix of its batches durable, and the next
//! import finds those documents with their new stamps, so it pushes only
//! what the interrupted one did not make durable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::connector::registry::record_job;
use crate::connector::{now_rfc3339, ConnectorInfo, JobState, JobStatus, RunMode, Skip, Source, SourceItem};
use crate::document::Document;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::status::{Entry, EnumerationMode};
use crate::uri::folder_prefix;

/// Documents per `add_all` batch (and per durable progress record).
const BATCH_DOCUMENTS: usize = 1000;
/// Bytes of parts per batch, so that a batch of large files stays small.
const BATCH_BYTES: usize = 32 << 20;

/// A job's status, shared between its thread and the pollers.
#[derive(Default)]
pub(crate) struct Shared {
    status: Mutex<Option<JobStatus>>,
    changed: Condvar,
    abort: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Option<JobStatus>> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The status now.
    pub fn status(&self) -> JobStatus {
        self.lock().clone().expect("a job has a status from its start")
    }

    fn update(&self, f: impl FnOnce(&mut JobStatus)) -> JobStatus {
        let mut guard = self.lock();
        let status = guard.as_mut().expect("a job has a status from its start");
        f(status);
        let copy = status.clone();
        drop(guard);
        self.changed.notify_all();
        copy
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// Waits until the status leaves `running` and `aborting`.
    pub fn wait(&self) -> JobStatus {
        let mut guard = self.lock();
        while guard.as_ref().is_some_and(|s| matches!(s.status, JobState::Running | JobState::Aborting)) {
            guard = self.changed.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        guard.clone().expect("a job has a status from its start")
    }
}

/// A job started by this process.
pub(crate) struct JobHandle {
    pub shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl JobHandle {
    /// Starts run number `run` of the connector on its own thread.
    pub fn start(index: Index, info: ConnectorInfo, source: Arc<dyn Source>, run: u64) -> Result<JobHandle> {
        let shared = Arc::new(Shared::default());
        let first = fresh_status(&info.id, run);
        *shared.lock() = Some(first);
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("pushdex-import-{}", info.id))
            .spawn(move || run_job(&index, &info, source.as_ref(), &thread_shared, run))
            .map_err(Error::Io)?;
        Ok(JobHandle { shared, thread: Some(thread) })
    }

    /// Whether the job's thread is still going (running, waiting between
    /// scans, or stopping).
    pub fn is_active(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Whether a new import may start: the thread has ended, or is ending
    /// after its final status (then it is joined).
    pub fn is_over(&mut self) -> bool {
        if self.is_active() && self.shared.status().status.is_active() {
            return false;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        true
    }

    /// Asks the job to stop at its next batch boundary; returns its thread
    /// (if it has not been joined yet) for the caller to join.
    pub fn request_stop(&mut self) -> Option<JoinHandle<()>> {
        self.shared.abort.store(true, Ordering::SeqCst);
        self.shared.update(|s| {
            if s.status.is_active() {
                s.status = JobState::Aborting;
            }
        });
        self.thread.take()
    }
}

impl Drop for JobHandle {
    /// A job does not outlive the [`Connectors`](super::Connectors) that
    /// started it: it would keep the index (and its directory lock) alive
    /// with no one left to stop it.
    fn drop(&mut self) {
        if let Some(thread) = self.request_stop() {
            // Panics in the job are caught and reported in its status.
            let _ = thread.join();
        }
    }
}

fn fresh_status(id: &str, run: u64) -> JobStatus {
    JobStatus {
        job_id: format!("{id}-{run}"),
        status: JobState::Running,
        start_time: Some(now_rfc3339()),
        ..JobStatus::not_yet_run()
    }
}

/// The job thread: one scan, or scans every interval until stopped.
fn run_job(index: &Index, info: &ConnectorInfo, source: &dyn Source, shared: &Shared, mut run: u64) {
    loop {
        // A panicking source must not leave the job `running` for ever
        // (waiters would wait for good): it ends the scan with an error.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scan(index, info, source, shared)))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_string());
                Err(Error::Io(std::io::Error::other(format!("the source panicked: {what}"))))
            });
        let mut last = shared.status();
        last.end_time = Some(now_rfc3339());
        last.documents_in_queue = 0;
        last.status = match &outcome {
            Ok(()) if shared.aborted() => JobState::Aborted,
            Ok(()) if info.mode == RunMode::Once => JobState::Done,
            Ok(()) => JobState::Waiting,
            Err(e) => {
                last.last_error = Some(e.to_string());
                JobState::Error
            }
        };
        // The final record is durable before pollers see the end.
        record_final(index, &info.id, &last);
        shared.update(|s| *s = last);
        let RunMode::Continuous { interval } = info.mode else { return };
        if outcome.is_err() {
            return;
        }
        if !sleep_unless_aborted(shared, interval) {
            last = shared.status();
            last.status = JobState::Aborted;
            record_final(index, &info.id, &last);
            shared.update(|s| *s = last);
            return;
        }
        run += 1;
        shared.update(|s| *s = fresh_status(&info.id, run));
    }
}

/// Records a job's final status and syncs it: best effort, since the index
/// itself may be what failed.
fn record_final(index: &Index, id: &str, status: &JobStatus) {
    let _ = record_job(index, id, status).and_then(|()| index.sync().map(drop));
}

/// Sleeps `interval`; false if the job was stopped meanwhile.
fn sleep_unless_aborted(shared: &Shared, interval: Duration) -> bool {
    let deadline = Instant::now() + interval;
    let mut guard = shared.lock();
    while !shared.aborted() {
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        guard = shared.changed.wait_timeout(guard, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
    }
    false
}

/// What a scan must do for one URI.
enum Work {
    /// Fetch and push; `changed` when the index holds an older version.
    Push { item: SourceItem, changed: bool },
    /// The source no longer has it.
    Delete(String),
}

/// One scan: list, compare, push and delete in durable batches, refresh.
fn scan(index: &Index, info: &ConnectorInfo, source: &dyn Source, shared: &Shared) -> Result<()> {
    record_job(index, &info.id, &shared.status())?;
    let prefix = folder_prefix(&info.root).into_owned();
    let mut items = Vec::new();
    let mut outside = 0u64;
    let mut stopped = false;
    let mut skips = Vec::new();
    source
        .list_partly(
            &mut |item| {
                if shared.aborted() {
                    stopped = true;
                    return Err(Error::invalid_input("the import was stopped"));
                }
                if item.uri.starts_with(&prefix) && item.uri.len() > prefix.len() {
                    items.push(item);
                } else {
                    outside += 1;
                }
                Ok(())
            },
            &mut |skip| skips.push(skip),
        )
        .or_else(|e| if stopped { Ok(()) } else { Err(e) })?;
    if stopped {
        return Ok(());
    }
    items.sort_unstable_by(|a, b| a.uri.cmp(&b.uri));
    // A URI listed twice: the later listing wins.
    items.reverse();
    items.dedup_by(|later, earlier| later.uri == earlier.uri);
    items.reverse();
    shared.update(|s| {
        s.listed = items.len() as u64 + outside;
        s.failed = outside;
        s.documents_processed = outside;
        s.documents_outstanding = items.len() as u64;
        if outside > 0 {
            s.last_error = Some(format!("{outside} listed items lie outside the root {}", info.root));
        }
    });

    let kept: Vec<String> = skips.iter().filter_map(|s| s.keep.clone()).collect();
    let mut gone = Vec::new();
    if !skips.is_empty() {
        shared.update(|s| {
            s.skipped = skips.len() as u64;
            s.last_error = Some(skip_summary(&skips, &gone));
        });
    }
    let work = compare(index, &info.root, items, &kept, shared)?;
    let mut batch = Batch::default();
    for w in work {
        if shared.aborted() {
            break;
        }
        match w {
            Work::Delete(uri) => batch.deletes.push(uri),
            Work::Push { item, changed } => match source.fetch(&item) {
                Ok(Some(doc)) if doc.uri() == item.uri => batch.push(doc, changed),
                Ok(Some(doc)) => batch.fail(format!("the source gave {:?} for item {:?}", doc.uri(), item.uri)),
                // Gone since listing: the index's copy goes too.
                Ok(None) if changed => batch.deletes.push(item.uri),
                Ok(None) => {
                    batch.gone += 1;
                    gone.push(item.uri);
                    shared.update(|s| s.skipped += 1);
                }
                Err(e) => batch.fail(format!("{}: {e}", item.uri)),
            },
        }
        if batch.is_full() {
            batch.commit(index, info, shared)?;
        }
    }
    if !gone.is_empty() {
        let summary = skip_summary(&skips, &gone);
        shared.update(|s| s.last_error = Some(summary));
    }
    batch.commit(index, info, shared)?;
    if !shared.aborted() {
        index.refresh()?;
    }
    Ok(())
}

/// The `last_error` of a scan that passed things over: how many, by kind
/// of reason, and the first of each kind.
fn skip_summary(skips: &[Skip], vanished: &[String]) -> String {
    let mut kinds: Vec<(&str, usize, &str, &str)> = Vec::new();
    let all = skips
        .iter()
        .map(|s| (s.kind(), s.what.as_str(), s.reason.as_str()))
        .chain(vanished.iter().map(|uri| ("vanished before it was read", uri.as_str(), "vanished before it was read")));
    for (kind, what, reason) in all {
        match kinds.iter_mut().find(|k| k.0 == kind) {
            Some(k) => k.1 += 1,
            None => kinds.push((kind, 1, what, reason)),
        }
    }
    let total: usize = kinds.iter().map(|k| k.1).sum();
    let parts: Vec<String> =
        kinds.iter().map(|(_, n, what, reason)| format!("{n} × {reason} (the first: {what})")).collect();
    let mut summary = format!("{total} skipped: {}", parts.join("; "));
    if skips.iter().any(|s| s.keep.is_some()) {
        summary.push_str("; what could not be read keeps its documents as they are");
    }
    summary
}

/// Merge-joins the sorted listing with the index's documents under the
/// root (one enumeration): counts the unchanged, returns the rest to do.
/// Documents at or under a `skipped` URI are kept, not deleted.
fn compare(
    index: &Index,
    root: &str,
    items: Vec<SourceItem>,
    skipped: &[String],
    shared: &Shared,
) -> Result<Vec<Work>> {
    let kept = |uri: &str| {
        skipped.iter().any(|s| uri == s || (uri.starts_with(folder_prefix(s).as_ref()) && uri.len() > s.len()))
    };
    let mut work = Vec::new();
    let mut unchanged = 0u64;
    let mut held = index.enumerate(root, EnumerationMode::RecursiveDocuments)?.peekable();
    for item in items {
        // Index documents before this item are gone from the source.
        while let Some(entry) = held.next_if(|e| matches!(e, Ok(Entry::Document(d)) if d.uri < item.uri)) {
            if let Ok(Entry::Document(d)) = entry {
                if kept(&d.uri) {
                    unchanged += 1;
                } else {
                    work.push(Work::Delete(d.uri));
                }
            }
        }
        if let Some(Err(_)) = held.peek() {
            return Err(held.next().and_then(|e| e.err()).expect("peeked an error"));
        }
        match held.next_if(|e| matches!(e, Ok(Entry::Document(d)) if d.uri == item.uri)) {
            Some(Ok(Entry::Document(d))) if d.stamp == item.stamp => unchanged += 1,
            Some(_) => work.push(Work::Push { item, changed: true }),
            None => work.push(Work::Push { item, changed: false }),
        }
    }
    for entry in held {
        if let Entry::Document(d) = entry? {
            if kept(&d.uri) {
                unchanged += 1;
            } else {
                work.push(Work::Delete(d.uri));
            }
        }
    }
    shared.update(|s| {
        s.unchanged = unchanged;
        s.documents_processed += unchanged;
        s.documents_outstanding = work.len() as u64;
        s.documents_in_queue = work.len() as u64;
    });
    Ok(work)
}

/// Work gathered for one durable batch.
#[derive(Default)]
struct Batch {
    docs: Vec<(Document, bool)>,
    bytes: usize,
    deletes: Vec<String>,
    failed: Vec<String>,
    /// New items gone between listing and fetching: nothing to do.
    gone: u64,
}

impl Batch {
    /// Adds a fetched document, or counts it as failed if the index would
    /// refuse it (so that one bad document cannot refuse a whole batch).
    fn push(&mut self, doc: Document, changed: bool) {
        match doc.check() {
            Ok(bytes) => {
                self.bytes += bytes;
                self.docs.push((doc, changed));
            }
            Err(e) => self.fail(format!("{}: {e}", doc.uri())),
        }
    }

    fn fail(&mut self, why: String) {
        self.failed.push(why);
    }

    fn len(&self) -> usize {
        self.docs.len() + self.deletes.len() + self.failed.len() + self.gone as usize
    }

    fn is_full(&self) -> bool {
        self.len() >= BATCH_DOCUMENTS || self.bytes >= BATCH_BYTES
    }

    /// Pushes and deletes the batch, records the progress and syncs: after
    /// this returns, the batch and the record of it are durable.
    fn commit(&mut self, index: &Index, info: &ConnectorInfo, shared: &Shared) -> Result<()> {
        if self.len() == 0 {
            return Ok(());
        }
        let processed = self.len() as u64;
        let (mut added, mut updated, mut deleted) = (0u64, 0u64, 0u64);
        let failed = std::mem::take(&mut self.failed);
        if !self.docs.is_empty() {
            let docs = std::mem::take(&mut self.docs);
            updated = docs.iter().filter(|(_, changed)| *changed).count() as u64;
            added = docs.len() as u64 - updated;
            // Every document was checked when it joined the batch, and the
            // batch is far below add_all's limits.
            index.add_all(docs.into_iter().map(|(doc, _)| doc))?;
        }
        for uri in self.deletes.drain(..) {
            index.delete(&uri)?;
            deleted += 1;
        }
        self.bytes = 0;
        self.gone = 0;
        let status = shared.update(|s| {
            s.added += added;
            s.updated += updated;
            s.deleted += deleted;
            s.failed += failed.len() as u64;
            if let Some(last) = failed.last() {
                s.last_error = Some(last.clone());
            }
            s.documents_processed += processed;
            s.documents_outstanding = s.documents_outstanding.saturating_sub(processed);
            s.documents_in_queue = s.documents_in_queue.saturating_sub(processed);
        });
        record_job(index, &info.id, &status)?;
        index.sync()?;
        Ok(())
    }
}
