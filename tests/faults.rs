//! I/O errors at every storage operation: the scripted workload runs once to
//! count its operations, then again failing each one in turn (`EIO` or
//! `ENOSPC`). The call that meets the failure returns an `Io` error (or,
//! when a background flush or merge met it, nothing does); what the index
//! answers stays exactly the accepted operations; a failed fsync of the log
//! poisons the writer (every later write and sync fails, until reopen: no
//! fsync is retried and reported a success); and the durable state still
//! reopens to a prefix holding everything reported synced.

mod common;

use common::{check_recovered, is_storage_error, open, read_state, run_step, script, Model};
use pushdex::storage::SimStorage;
use pushdex::{Document, Error, Options};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

/// Fails operation `n` with `errno`; returns whether it fired.
fn fail_at(n: u64, errno: i32, steps: &[common::Step], options: &Options, seed: u64) -> bool {
    let what = format!("seed {seed}, operation {n} fails with errno {errno}");
    let storage = SimStorage::new("/sim");
    storage.fail_op(n, errno);
    let mut index = match open(&storage, options) {
        Ok(index) => index,
        Err(e) => {
            assert!(is_storage_error(&e), "{what}: open failed with {e}");
            // The failure was used up: open works now, on an empty index.
            let index = open(&storage, options).unwrap_or_else(|e| panic!("{what}: second open: {e}"));
            assert_eq!(read_state(&index).unwrap(), common::Contents::default());
            index
        }
    };
    // A failure that open met is behind us: the index opened after it.
    let before = storage.fired().len();
    let mut model = Model::default();
    let mut synced = 0;
    for step in steps {
        let result = run_step(&mut index, &storage, options, step);
        synced = synced.max(index.watermarks().synced.0);
        match result {
            Ok(true) => step.apply(&mut model),
            Ok(false) => {}
            Err(e) => {
                assert!(is_storage_error(&e), "{what}: {step:?} failed with {e}");
                assert!(storage.fired().len() > before, "{what}: {step:?} failed with {e}, but nothing was injected");
                break;
            }
        }
    }
    let fired = storage.fired().split_off(before);
    if let Ok(got) = read_state(&index) {
        assert_eq!(got, model.contents(), "{what}: after {fired:?}, reads hold exactly the accepted operations");
    }
    // The fsync of a log holding frames failed (not that of a new log's
    // header, which never became the writer's, though a later rotation may
    // make a file of that name again): poisoned until reopen.
    let log_fsync_failed = fired.iter().filter_map(|f| f.strip_prefix("sync wal-")).any(|rest| {
        let len = rest.split(" (").nth(1).and_then(|bytes| bytes.strip_suffix(" bytes)"));
        len.and_then(|len| len.parse::<usize>().ok()).is_some_and(|len| len > pushdex::wal::FILE_HEADER_BYTES)
    });
    if log_fsync_failed {
        let added = index.add(Document::new("poisoned"));
        assert!(
            matches!(added, Err(Error::Poisoned { .. } | Error::Closed)),
            "{what}: a write after a failed log fsync {fired:?}: {added:?}"
        );
        assert!(
            matches!(index.sync(), Err(Error::Poisoned { .. } | Error::Closed)),
            "{what}: a sync after a failed log fsync reported success"
        );
        let health = index.health();
        assert!(!health.takes_writes(), "{what}: health says the index takes writes: {health:?}");
    }
    storage.crash();
    drop(index);
    check_recovered(&storage.recover(None), options, &model, synced, &what);
    before > 0 || !fired.is_empty()
}

fn fail_everywhere(seed: u64, options: &Options) -> (u64, u64) {
    fail_everywhere_in(seed, &script(seed, 100), options)
}

/// Fails each operation of `steps` in turn; returns how many operations
/// there are and how many failures fired.
fn fail_everywhere_in(seed: u64, steps: &[common::Step], options: &Options) -> (u64, u64) {
    let dry = SimStorage::new("/sim");
    {
        let mut index = open(&dry, options).unwrap();
        for step in steps {
            run_step(&mut index, &dry, options, step).unwrap();
        }
        index.close().unwrap();
    }
    let ops = dry.ops();
    let mut fired = 0;
    for n in 1..=ops {
        let errno = if n % 3 == 0 { ENOSPC } else { EIO };
        fired += u64::from(fail_at(n, errno, steps, options, seed));
    }
    (ops, fired)
}

#[test]
fn an_io_error_at_any_operation_is_reported_and_changes_nothing_accepted() {
    let (mut ops, mut fired) = (0, 0);
    for seed in 11..=12 {
        let (o, f) = fail_everywhere(seed, &Options::default());
        ops += o;
        fired += f;
    }
    assert!(fired * 10 >= ops * 9, "most injected failures fire: {fired} of {ops}");
    eprintln!("{ops} failure points, {fired} fired");
}

#[test]
fn an_io_error_in_background_flushes_and_merges_is_survived() {
    let options = Options::default().memtable_bytes(4096);
    let (ops, fired) = fail_everywhere(13, &options);
    eprintln!("{ops} failure points with a 4 KiB memtable, {fired} fired");
}

/// A failure at any operation of a merge whose tables spill to a scratch
/// file (creating it, appending, reading it back) fails that merge alone.
#[test]
fn an_io_error_while_a_merge_spills_its_tables_is_survived() {
    let options = Options::default().memtable_bytes(4096);
    let steps = common::spilling_script();
    let dry = SimStorage::new("/sim");
    let mut index = open(&dry, &options).unwrap();
    for step in &steps {
        run_step(&mut index, &dry, &options, step).unwrap();
    }
    assert!(dry.scratch_files() > 0, "the merge's tables spilled");
    drop(index);
    let (ops, fired) = fail_everywhere_in(14, &steps, &options);
    eprintln!("{ops} failure points around a merge that spills, {fired} fired");
}

/// Every fsync fails from some point on: nothing is reported synced past
/// the last fsync that succeeded.
#[test]
fn failing_every_fsync_from_some_point_loses_nothing_reported_synced() {
    let steps = script(21, 100);
    let options = Options::default();
    let dry = SimStorage::new("/sim");
    {
        let mut index = open(&dry, &options).unwrap();
        for step in &steps {
            run_step(&mut index, &dry, &options, step).unwrap();
        }
    }
    let ops = dry.ops();
    for from in (1..=ops).step_by(7) {
        let what = format!("every fsync fails from operation {from}");
        let storage = SimStorage::new("/sim");
        storage.fail_syncs_from(from);
        let Ok(mut index) = open(&storage, &options) else { continue };
        let mut model = Model::default();
        let mut synced = 0;
        for step in &steps {
            let result = run_step(&mut index, &storage, &options, step);
            synced = synced.max(index.watermarks().synced.0);
            match result {
                Ok(true) => step.apply(&mut model),
                Ok(false) => {}
                Err(e) => assert!(is_storage_error(&e), "{what}: {step:?}: {e}"),
            }
        }
        storage.crash();
        drop(index);
        check_recovered(&storage.recover(None), &options, &model, synced, &what);
    }
}
