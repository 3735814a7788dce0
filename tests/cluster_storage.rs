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
    /// A published view held a merged piece (level > 0).
    merged_seen: bool,
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
        state.merged_seen |= view.files.values().flatten().any(|p| p.level > 0);
        state.published = view.clone();
        state.publishes += 1;
        Ok(())
    }

    /// Deleted at once (a node waits a while first): a view that still
    /// named one would fail to publish or restore.
    fn discard(&self, keys: Vec<String>) {
        let mut state = self.lock();
        for key in keys {
            assert!(state.objects.remove(&key).is_some(), "{key} discarded twice, or never uploaded");
            assert!(!state.published.keys().any(|k| k == key), "{key} discarded while published");
        }
    }
}

impl MemRemote {
    /// Objects in the store that the published view does not name.
    fn unnamed(&self) -> usize {
        let state = self.lock();
        let named: std::collections::HashSet<&str> = state.published.keys().collect();
        state.objects.keys().filter(|k| !named.contains(k.as_str())).count()
    }
}

/// Opens the index as owner `epoch`: restores the published view into a
/// new local directory and replicates it (pieces of at most 3000 bytes,
/// so that segments are uploaded in several and merges stop at the limit).
fn open_owner(remote: &Arc<MemRemote>, epoch: u64, options: &Options) -> pushdex::Result<Index> {
    let local = remote.restored();
    let view = remote.lock().published.clone();
    let replicated =
        Replicated::new(Arc::new(local), remote.clone(), format!("e{epoch}/"), &view).with_piece_limit(3000);
    Index::open_with_storage(Arc::new(ReplicatedStorage(Arc::new(replicated))), options.clone())
}

fn options() -> Options {
    Options::default().memtable_bytes(4096)
}

/// Runs `steps` with the remote failing as set up; failovers at the
/// script's reopens. Returns the model of accepted operations and the
/// highest serial reported Synced.
fn run(remote: &Arc<MemRemote>, steps: &[Step], options: &Options, what: &str) -> (Model, u64) {
    let mut epoch = 1;
    let mut model = Model::default();
    let mut synced = 0;
    let Ok(mut index) = open_owner(remote, epoch, options) else { return (model, 0) };
    let scratch = SimStorage::new("/unused");
    for step in steps {
        let result = match step {
            Step::CloseAndReopen => index.clone().close().and_then(|()| {
                epoch += 1;
                index = open_owner(remote, epoch, options)?;
                Ok(false)
            }),
            _ => run_step(&mut index, &scratch, options, step),
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
        let (model, synced) = run(&remote, &script(seed, 300), &options(), &what);
        assert_eq!(remote.lock().fired, 0);
        let published = remote.lock().published.serial;
        assert!(published > 0, "{what}: the view carries the Synced serial");
        let view = remote.lock().published.clone();
        for (name, pieces) in &view.files {
            assert!(pieces.iter().all(|p| p.len <= 3000), "{what}: {name} has a piece over the limit");
        }
        assert!(view.files.values().any(|p| p.len() > 1), "{what}: some file was uploaded in several pieces");
        let recovered = check_recovered(&remote.restored(), &options(), &model, synced, &what);
        assert!(published <= recovered, "{what}: published serial {published}, only {recovered} recovered");
        assert_eq!(remote.unnamed(), 0, "{what}: every object no view names any more was discarded");
    }
}

/// How many remote operations the script makes when nothing fails.
fn count_ops(steps: &[Step], options: &Options) -> u64 {
    let remote = Arc::new(MemRemote::default());
    run(&remote, steps, options, "counting");
    let ops = remote.lock().ops;
    assert!(ops > 20, "the script uploads and publishes ({ops} operations)");
    ops
}

/// Loses the owner at each remote operation of `steps` in turn.
fn lose_the_owner_everywhere(steps: &[Step], options: &Options) {
    let ops = count_ops(steps, options);
    for k in 1..=ops {
        let remote =
            Arc::new(MemRemote { state: Mutex::new(RemoteState { dead_from: Some(k), ..Default::default() }) });
        let what = format!("the owner lost at remote operation {k} of {ops}");
        let (model, synced) = run(&remote, steps, options, &what);
        let published = remote.lock().published.serial;
        let recovered = check_recovered(&remote.restored(), options, &model, synced, &what);
        assert!(published <= recovered, "{what}: published serial {published}, only {recovered} recovered");
    }
}

#[test]
fn losing_the_owner_at_any_remote_operation_keeps_a_synced_prefix() {
    lose_the_owner_everywhere(&script(7, 120), &options());
}

/// One log synced after every document (a memtable that never fills): its
/// pieces merge level by level, and losing the owner at any upload or
/// publish, merges included, still keeps a Synced prefix.
#[test]
fn a_log_synced_many_times_merges_its_pieces_and_loses_nothing() {
    let options = Options::default();
    let steps: Vec<Step> =
        (0..80).flat_map(|i| [Step::Add(format!("m/{i}"), format!("stamp {i}")), Step::Sync]).collect();
    let remote = Arc::new(MemRemote::default());
    let (model, synced) = run(&remote, &steps, &options, "merging");
    assert!(remote.lock().merged_seen, "a published view held merged pieces");
    let longest = remote.lock().published.files.values().map(Vec::len).max().unwrap_or(0);
    assert!(longest < 20, "merging keeps a view short ({longest} pieces in one file after 80 syncs)");
    check_recovered(&remote.restored(), &options, &model, synced, "merging");
    assert_eq!(remote.unnamed(), 0, "the merged pieces were discarded");
    lose_the_owner_everywhere(&steps, &options);
}

#[test]
fn a_failed_upload_or_publish_is_survived() {
    let steps = script(11, 120);
    let ops = count_ops(&steps, &options());
    for k in 1..=ops {
        let remote = Arc::new(MemRemote { state: Mutex::new(RemoteState { fail_op: Some(k), ..Default::default() }) });
        let what = format!("remote operation {k} of {ops} fails");
        let (model, synced) = run(&remote, &steps, &options(), &what);
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

/// A sync that finds nothing new to upload and no higher serial, and a
/// directory sync that finds the directory unchanged, publish nothing (an
/// etcd transaction each); a change publishes once.
#[test]
fn a_sync_with_nothing_new_publishes_nothing() {
    use pushdex::storage::Storage;
    let remote = Arc::new(MemRemote::default());
    let replicated =
        Replicated::new(Arc::new(SimStorage::new("/owner")), remote.clone(), "e1/".into(), &View::default());
    let storage = ReplicatedStorage(Arc::new(replicated));
    let publishes = || remote.lock().publishes;
    let file = storage.create("wal-1.log").unwrap();
    file.append(b"first").unwrap();
    file.sync().unwrap();
    assert_eq!(publishes(), 1, "new bytes: published");
    file.sync().unwrap();
    assert_eq!(publishes(), 1, "nothing new: not published again");
    storage.sync_dir().unwrap();
    assert_eq!(publishes(), 2, "a new directory entry: published");
    storage.sync_dir().unwrap();
    assert_eq!(publishes(), 2, "the same directory: not published again");
    file.sync_through(7).unwrap();
    assert_eq!(publishes(), 3, "a higher serial with the same bytes: published");
    assert_eq!(remote.lock().published.serial, 7);
    file.sync_through(7).unwrap();
    assert_eq!(publishes(), 3);
    file.append(b" second").unwrap();
    file.sync().unwrap();
    assert_eq!(publishes(), 4);
    let restored = remote.restored();
    let back = restored.open("wal-1.log").unwrap();
    let mut bytes = vec![0; back.len().unwrap() as usize];
    back.read_at(0, &mut bytes).unwrap();
    assert_eq!(bytes, b"first second");
}
