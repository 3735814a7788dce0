//! The cluster's storage (`src/cluster/replicated.rs`): an index whose
//! syncs upload to an object store and publish a view. Losing the owner at
//! any moment (every later upload and publish fails) or failing one upload
//! or publish leaves a published view that restores, on another machine,
//! to a prefix of the accepted operations holding everything reported
//! Synced; a fenced owner writes nothing more; objects are never
//! overwritten. Reopening in the scripts is a failover: the next owner
//! restores the published view.

mod common;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use common::{check_recovered, is_storage_error, run_step, script, Model, Step};
use pushdex::cluster::replicated::{fenced, restore, Remote, Replicated, ReplicatedStorage, View};
use pushdex::storage::SimStorage;
use pushdex::{Index, Options};

/// An object store and commit point in memory, failing on demand.
#[derive(Debug, Default)]
struct MemRemote {
    state: Mutex<RemoteState>,
}

#[derive(Debug, Default)]
struct RemoteState {
    objects: HashMap<String, Vec<u8>>,
    published: View,
    /// Uploads and publishes, numbered from 1.
    ops: u64,
    /// This one fails.
    fail_op: Option<u64>,
    /// This one and every later one fail (the owner is gone).
    dead_from: Option<u64>,
    /// Publishes from this one on are refused: another node owns the index.
    fenced_from: Option<u64>,
    fired: u64,
    publishes: u64,
}

impl RemoteState {
    fn begin(&mut self) -> io::Result<()> {
        self.ops += 1;
        if self.fail_op == Some(self.ops) || self.dead_from.is_some_and(|n| self.ops >= n) {
            self.fired += 1;
            return Err(io::Error::other(format!("injected: remote operation {} fails", self.ops)));
        }
        Ok(())
    }
}

impl MemRemote {
    fn lock(&self) -> std::sync::MutexGuard<'_, RemoteState> {
        self.state.lock().unwrap()
    }

    fn fetch(&self, key: &str) -> io::Result<Vec<u8>> {
        self.lock().objects.get(key).cloned().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, key.to_string()))
    }

    /// The published view restored into a new machine's directory.
    fn restored(&self) -> SimStorage {
        let view = self.lock().published.clone();
        let storage = SimStorage::new("/restored");
        restore(&view, &storage, &|key| self.fetch(key)).expect("the published view restores");
        storage
    }
}

impl Remote for MemRemote {
    fn upload(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        let mut state = self.lock();
        state.begin()?;
        assert!(!state.objects.contains_key(key), "object {key} written twice");
        state.objects.insert(key.to_string(), bytes);
        Ok(())
    }

    fn publish(&self, view: &View) -> io::Result<()> {
        let mut state = self.lock();
        state.begin()?;
        if state.fenced_from.is_some_and(|n| state.ops >= n) {
            return Err(fenced("another node took the index"));
        }
        for pieces in view.files.values() {
            for piece in pieces {
                let object =
                    state.objects.get(&piece.key).unwrap_or_else(|| panic!("{} published unuploaded", piece.key));
                assert!(piece.len <= object.len() as u64, "{} published longer than uploaded", piece.key);
            }
        }
        state.published = view.clone();
        state.publishes += 1;
        Ok(())
    }
}

/// Opens the index as owner `epoch`: restores the published view into a
/// new local directory and replicates it.
fn open_owner(remote: &Arc<MemRemote>, epoch: u64, options: &Options) -> pushdex::Result<Index> {
    let local = remote.restored();
    let view = remote.lock().published.clone();
    let replicated = Replicated::new(Arc::new(local), remote.clone(), format!("e{epoch}/"), &view);
    Index::open_with_storage(Arc::new(ReplicatedStorage(Arc::new(replicated))), options.clone())
}

fn options() -> Options {
    Options::default().memtable_bytes(4096)
}

/// Runs `steps` with the remote failing as set up; failovers at the
/// script's reopens. Returns the model of accepted operations and the
/// highest serial reported Synced.
fn run(remote: &Arc<MemRemote>, steps: &[Step], what: &str) -> (Model, u64) {
    let options = options();
    let mut epoch = 1;
    let mut model = Model::default();
    let mut synced = 0;
    let Ok(mut index) = open_owner(remote, epoch, &options) else { return (model, 0) };
    let scratch = SimStorage::new("/unused");
    for step in steps {
        let result = match step {
            Step::CloseAndReopen => index.clone().close().and_then(|()| {
                epoch += 1;
                index = open_owner(remote, epoch, &options)?;
                Ok(false)
            }),
            _ => run_step(&mut index, &scratch, &options, step),
        };
        synced = synced.max(index.watermarks().synced.0);
        match result {
            Ok(true) => step.apply(&mut model),
            Ok(false) => {}
            Err(e) => {
                assert!(is_storage_error(&e), "{what}: {step:?} failed with {e}");
                assert!(remote.lock().fired > 0 || remote.lock().fenced_from.is_some(), "{what}: {step:?}: {e}");
                break;
            }
        }
    }
    drop(index);
    (model, synced)
}

#[test]
fn a_restored_view_holds_every_synced_operation_and_failovers_lose_nothing() {
    for seed in 0..4 {
        let remote = Arc::new(MemRemote::default());
        let what = format!("seed {seed}");
        let (model, synced) = run(&remote, &script(seed, 300), &what);
        assert_eq!(remote.lock().fired, 0);
        let published = remote.lock().published.serial;
        assert!(published > 0, "{what}: the view carries the Synced serial");
        let recovered = check_recovered(&remote.restored(), &options(), &model, synced, &what);
        assert!(published <= recovered, "{what}: published serial {published}, only {recovered} recovered");
    }
}

/// How many remote operations the script makes when nothing fails.
fn count_ops(steps: &[Step]) -> u64 {
    let remote = Arc::new(MemRemote::default());
    run(&remote, steps, "counting");
    let ops = remote.lock().ops;
    assert!(ops > 20, "the script uploads and publishes ({ops} operations)");
    ops
}

#[test]
fn losing_the_owner_at_any_remote_operation_keeps_a_synced_prefix() {
    let steps = script(7, 120);
    let ops = count_ops(&steps);
    for k in 1..=ops {
        let remote =
            Arc::new(MemRemote { state: Mutex::new(RemoteState { dead_from: Some(k), ..Default::default() }) });
        let what = format!("the owner lost at remote operation {k} of {ops}");
        let (model, synced) = run(&remote, &steps, &what);
        let published = remote.lock().published.serial;
        let recovered = check_recovered(&remote.restored(), &options(), &model, synced, &what);
        assert!(published <= recovered, "{what}: published serial {published}, only {recovered} recovered");
    }
}

#[test]
fn a_failed_upload_or_publish_is_survived() {
    let steps = script(11, 120);
    let ops = count_ops(&steps);
    for k in 1..=ops {
        let remote = Arc::new(MemRemote { state: Mutex::new(RemoteState { fail_op: Some(k), ..Default::default() }) });
        let what = format!("remote operation {k} of {ops} fails");
        let (model, synced) = run(&remote, &steps, &what);
        check_recovered(&remote.restored(), &options(), &model, synced, &what);
    }
}

#[test]
fn a_fenced_owner_publishes_nothing_more() {
    let options = options();
    let remote = Arc::new(MemRemote::default());
    let index = open_owner(&remote, 1, &options).unwrap();
    index.add(pushdex::Document::new("a/1")).unwrap();
    index.sync().unwrap();
    let published = remote.lock().publishes;
    let next = remote.lock().ops + 1;
    remote.lock().fenced_from = Some(next);
    index.add(pushdex::Document::new("a/2")).unwrap();
    let refused = index.sync().expect_err("a fenced sync fails");
    assert!(is_storage_error(&refused), "{refused}");
    assert!(index.add(pushdex::Document::new("a/3")).is_err(), "a fenced index takes no writes");
    assert!(index.sync().is_err());
    assert_eq!(remote.lock().publishes, published, "nothing published after the fence");
    drop(index);
    let next = Index::open_with_storage(Arc::new(remote.restored()), options).unwrap();
    assert!(next.get("a/1").unwrap().is_some());
    assert!(next.get("a/2").unwrap().is_none(), "a write after the fence is never published");
    assert!(next.get("a/3").unwrap().is_none());
}
