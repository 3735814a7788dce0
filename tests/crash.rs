//! Simulated crashes at every write: a scripted workload runs once on the
//! simulated storage to count its write operations, then again crashing at
//! each of them in turn. Every time, the storage a new process would find
//! (unsynced bytes and directory entries lost, or torn: a prefix of them
//! kept) must open and hold exactly the operations 1..j for some j at least
//! the synced watermark reported before the crash, with serials continuing
//! from j + 1.

mod common;

use common::{check_recovered, open, run_step, script, Model, Step};
use pushdex::storage::SimStorage;
use pushdex::Options;

/// Runs `steps` on `storage` until the storage fails; returns the model of
/// the accepted operations and the highest synced watermark the index
/// reported.
fn run(storage: &SimStorage, options: &Options, steps: &[Step]) -> (Model, u64) {
    let mut model = Model::default();
    let mut synced = 0;
    let Ok(mut index) = open(storage, options) else { return (model, synced) };
    for step in steps {
        let result = run_step(&mut index, storage, options, step);
        synced = synced.max(index.watermarks().synced.0);
        match result {
            Ok(true) => model.apply(step),
            Ok(false) => {}
            Err(e) => {
                assert!(common::is_storage_error(&e) || storage.has_crashed(), "{step:?}: {e}");
                break;
            }
        }
    }
    storage.crash();
    drop(index);
    (model, synced)
}

/// Crashes `steps` at every write point; returns the number of crash points.
fn crash_everywhere(seed: u64, steps: &[Step], options: &Options) -> u64 {
    let dry = SimStorage::new("/sim");
    let (full, _) = run(&dry, options, steps);
    let writes = dry.writes();
    assert!(full.last() > 50, "the script does something");
    let mut recovered = std::collections::BTreeSet::new();
    for k in 0..=writes {
        let storage = SimStorage::new("/sim");
        storage.crash_after(k);
        let (model, synced) = run(&storage, options, steps);
        for torn in [None, Some(k), Some(k + 1_000_003)] {
            let what = format!("seed {seed}, crash after write {k} of {writes}, torn {torn:?}");
            let j = check_recovered(&storage.recover(torn), options, &model, synced, &what);
            recovered.insert(j);
        }
    }
    assert!(recovered.len() > 10, "crashes recover many different prefixes: {recovered:?}");
    writes + 1
}

#[test]
fn a_crash_at_any_write_recovers_a_prefix_with_everything_synced() {
    let mut points = 0;
    for seed in 1..=2 {
        points += crash_everywhere(seed, &script(seed, 120), &Options::default());
    }
    eprintln!("{points} crash points, each recovered clean and torn two ways");
}

#[test]
fn a_crash_during_background_flushes_and_merges_recovers_a_prefix() {
    // A 4 KiB memtable: flushes and merges run on their own threads, so the
    // crash points fall in them too (in whatever order they interleave).
    let options = Options::default().memtable_bytes(4096);
    let mut points = 0;
    for seed in 3..=4 {
        points += crash_everywhere(seed, &script(seed, 120), &options);
    }
    eprintln!("{points} crash points with a 4 KiB memtable");
}
