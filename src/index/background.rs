//! Background work: the flush thread and the merge thread, owned by the
//! index that started them.
//!
//! [`Background`] holds the threads' join handles and what went wrong in
//! them. The threads hold only a `Weak` reference to the index, so they
//! never keep it open; [`Background::stop`] (called by close and by the
//! last handle's drop, after the `closed` flag is set) wakes and joins
//! them, so that no thread of an index outlives it. A failure is never
//! dropped: it is counted and kept for [`Index::health`](crate::Index::health),
//! and a flush failure is also handed to the writers that wait on that
//! flush (see `Inner::write_with`); the next `refresh`, `compact` or
//! `close` retries the work and reports its own result.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::index::Inner;

/// How long an idle background thread sleeps between looks at the index.
const IDLE: Duration = Duration::from_millis(200);

/// Work asked of a background thread: set by [`Signal::notify`], taken by
/// the thread.
#[derive(Default)]
pub(crate) struct Signal {
    wanted: Mutex<bool>,
    wake: Condvar,
}

impl Signal {
    pub fn notify(&self) {
        *self.wanted.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Waits until notified or `timeout` passed; true if notified.
    fn wait(&self, timeout: Duration) -> bool {
        let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
        if !*wanted {
            wanted = self.wake.wait_timeout(wanted, timeout).unwrap_or_else(|e| e.into_inner()).0;
        }
        std::mem::replace(&mut *wanted, false)
    }
}

/// Which background job failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    Flush,
    Merge,
    /// The log's writeback (see `Inner::write_back`).
    Writeback,
}

/// The last failure of a background job, kept in a form that can be handed
/// on as an [`Error`] of the same kind.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    job: Job,
    /// The `io::ErrorKind` of an `Io` failure (a full disk stays a full
    /// disk for whoever hears of it later).
    kind: Option<io::ErrorKind>,
    /// The writer was stopped (`Error::Poisoned`).
    poisoned: bool,
    message: String,
}

impl Failure {
    /// The failure as an error for a caller that waited on the job, with
    /// `context` in front.
    pub fn to_error(&self, context: &str) -> Error {
        let reason = format!("{context}: {}", self.message);
        if self.poisoned {
            Error::Poisoned { reason }
        } else {
            Error::Io(io::Error::new(self.kind.unwrap_or(io::ErrorKind::Other), reason))
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let job = match self.job {
            Job::Flush => "flush",
            Job::Merge => "merge",
            Job::Writeback => "log writeback",
        };
        write!(f, "{job}: {}", self.message)
    }
}

/// The background threads of one index and their failures.
#[derive(Default)]
pub(crate) struct Background {
    /// Wakes the flush thread.
    pub flush: Arc<Signal>,
    /// Wakes the merge thread.
    pub merge: Arc<Signal>,
    /// Wakes the log's writeback thread.
    pub writeback: Arc<Signal>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    flush_failures: AtomicU64,
    /// Failures of the merges and of the log's writeback.
    other_failures: AtomicU64,
    /// The last failure of any job, and the last of a flush.
    last_failure: Mutex<Option<Failure>>,
    last_flush_failure: Mutex<Option<Failure>>,
}

impl Background {
    /// Starts the threads: one flushes full memtables, the other merges
    /// segments, so that a long merge never holds up a flush (and the
    /// writers waiting for it).
    pub fn start(inner: &Arc<Inner>) -> Result<()> {
        let flusher = spawn(Job::Flush, inner.background.flush.clone(), Arc::downgrade(inner), |inner| {
            // `flush` records its own failure (see `Inner::flush_failed`).
            if inner.memtable_full() {
                let _ = inner.flush(false);
            }
        })?;
        inner.background.threads.lock().unwrap_or_else(|e| e.into_inner()).push(flusher);
        let merger = spawn(Job::Merge, inner.background.merge.clone(), Arc::downgrade(inner), |inner| {
            if let Err(e) = inner.merge_if_needed() {
                inner.background.record(Job::Merge, &e);
            }
        });
        let writer = merger.and_then(|merger| {
            inner.background.threads.lock().unwrap_or_else(|e| e.into_inner()).push(merger);
            spawn(Job::Writeback, inner.background.writeback.clone(), Arc::downgrade(inner), Inner::write_back)
        });
        match writer {
            Ok(writer) => inner.background.threads.lock().unwrap_or_else(|e| e.into_inner()).push(writer),
            Err(e) => {
                // The open fails: the threads started must not outlive it.
                inner.closed.store(true, Ordering::SeqCst);
                inner.background.stop();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Wakes the threads and waits for them to end; the caller has set the
    /// index's `closed` flag, which they check on waking. A merge in
    /// progress gives up at that flag; a flush in progress finishes.
    pub fn stop(&self) {
        self.flush.notify();
        self.merge.notify();
        self.writeback.notify();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            // A background thread never shuts its own index down: it holds
            // no user handle (and would hold the locks close waits for).
            debug_assert_ne!(thread.thread().id(), std::thread::current().id());
            // Its panics are caught and recorded inside it.
            let _ = thread.join();
        }
    }

    /// Records a failure of `job`.
    pub fn record(&self, job: Job, e: &Error) {
        let counter = match job {
            Job::Flush => &self.flush_failures,
            Job::Merge | Job::Writeback => &self.other_failures,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let kind = match e {
            Error::Io(e) => Some(e.kind()),
            _ => None,
        };
        let failure = Failure { job, kind, poisoned: matches!(e, Error::Poisoned { .. }), message: e.to_string() };
        if job == Job::Flush {
            *self.last_flush_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure.clone());
        }
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure);
    }

    /// Flushes that failed so far.
    pub fn flush_failures(&self) -> u64 {
        self.flush_failures.load(Ordering::SeqCst)
    }

    /// Flushes, merges and log writebacks that failed so far.
    pub fn failures(&self) -> u64 {
        self.flush_failures() + self.other_failures.load(Ordering::SeqCst)
    }

    /// The last failure, if any.
    pub fn last_failure(&self) -> Option<Failure> {
        self.last_failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The last failure of a flush, if any.
    pub fn last_flush_failure(&self) -> Option<Failure> {
        self.last_flush_failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One background thread: runs `work` each time `signal` is notified, until
/// the index closes or is gone.
fn spawn(job: Job, signal: Arc<Signal>, inner: Weak<Inner>, work: fn(&Inner)) -> Result<JoinHandle<()>> {
    let name = match job {
        Job::Flush => "pushdex-flush",
        Job::Merge => "pushdex-merge",
        Job::Writeback => "pushdex-log",
    };
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || loop {
            let notified = signal.wait(IDLE);
            let Some(inner) = inner.upgrade() else { return };
            if inner.closed.load(Ordering::SeqCst) {
                return;
            }
            if notified {
                // A panic (a bug) must not end the thread unheard: it is
                // recorded like a failure, and the thread goes on.
                if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&inner))) {
                    let what = panic_message(panic.as_ref());
                    inner.background.record(job, &Error::Io(io::Error::other(format!("panicked: {what}"))));
                    if job == Job::Flush {
                        inner.wake_stalled();
                    }
                }
            }
        })
        .map_err(Error::Io)
}

/// The message of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}
