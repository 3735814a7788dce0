//! Simulated crashes at every write: a scripted workload runs once on the
//! simulated storage to count its write operations, then again crashing at
//! each of them in turn. Every time, the storage a new process would find
//! (unsynced bytes and directory entries lost, or torn: a prefix of them
//! kept) must open and hold exactly the operations 1..j for some j at least
//! the synced watermark reported before the crash, with serials continuing
//! from j + 1.

mod common;

use common::{check_recovered, is_storage_error, open, read_state, run_step, script, spilling_script, Model, Step};
use proptest::prelude::*;
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
            Ok(true) => step.apply(&mut model),
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
    assert!(full.last > 50, "the script does something");
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

/// A merge whose tables spill to a scratch file ([`spilling_script`]): a
/// crash at any write, in the flushes or the merge, scratch writes
/// included, recovers a prefix with everything synced.
#[test]
fn a_crash_while_a_merge_spills_its_tables_recovers_a_prefix() {
    let options = Options::default().memtable_bytes(4096);
    let steps = spilling_script();
    let dry = SimStorage::new("/sim");
    run(&dry, &options, &steps);
    assert!(dry.scratch_files() > 0, "the merge's tables spilled");
    let points = crash_everywhere(5, &steps, &options);
    eprintln!("{points} crash points around a merge that spills");
}

/// One long random script, crashed again and again at random writes (clean
/// or torn), each time reopened and continued from where the recovered
/// index stands: the engine must match the model after every step, and
/// every recovery must be a prefix holding everything reported synced.
fn crash_repeatedly(seed: u64, crashes: &[(u16, Option<u64>)]) -> Result<(), TestCaseError> {
    let options = if seed.is_multiple_of(2) { Options::default() } else { Options::default().memtable_bytes(4096) };
    let steps = script(seed, 250);
    let mut storage = SimStorage::new("/sim");
    let mut model = Model::default();
    let mut at = 0;
    for &(after, torn) in crashes.iter().chain([(u16::MAX, None)].iter()) {
        storage.crash_after(storage.writes() + u64::from(after));
        // Everything the model holds now was recovered (or is nothing): synced.
        let mut synced = model.last;
        if let Ok(mut index) = open(&storage, &options) {
            while at < steps.len() {
                let step = &steps[at];
                let result = run_step(&mut index, &storage, &options, step);
                synced = synced.max(index.watermarks().synced.0);
                match result {
                    Ok(accepted) => {
                        prop_assert!(step.accepted_by(&model), "step {at} {step:?} should have been refused");
                        if accepted {
                            step.apply(&mut model);
                        }
                    }
                    Err(pushdex::Error::NotFound { .. }) if !step.accepted_by(&model) => {}
                    Err(e) => {
                        prop_assert!(is_storage_error(&e) && storage.has_crashed(), "step {at} {step:?}: {e}");
                        break;
                    }
                }
                at += 1;
                if at % 25 == 0 {
                    prop_assert_eq!(read_state(&index).unwrap(), model.contents(), "after step {}", at);
                }
            }
        }
        storage.crash();
        let recovered = storage.recover(torn);
        let what = format!("seed {seed}, crash {after} writes in, torn {torn:?}, at step {at}");
        let j = check_recovered(&recovered, &options, &model, synced, &what);
        // check_recovered added one document after j: redo that in the model.
        model.rewind(j).unwrap();
        Step::Add("after/crash".into(), String::new()).apply(&mut model);
        storage = recovered;
        if at == steps.len() {
            break;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_scripts_crashed_repeatedly_match_the_model(
        seed in 0u64..1_000_000,
        crashes in proptest::collection::vec((0u16..400, proptest::option::of(0u64..1000)), 1..6),
    ) {
        crash_repeatedly(seed, &crashes)?;
    }
}
