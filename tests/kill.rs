//! A real crash: a child process writes to an index and is killed with
//! SIGKILL at a random moment (inside a push, a sync, a flush, a background
//! merge, a manifest commit, or the recovery of its own open), then the
//! parent reopens the index and checks the failure model (API.md: what was
//! Synced survives a crash)
//! against the shared `BTreeMap` model (`tests/common/model.rs`):
//!
//! 1. open succeeds;
//! 2. the index holds exactly the effect of operations 1..j for some j (every
//!    document with its stamp, serial and body; every checkpoint), where
//!    j = `watermarks().last` falls between two operations, never inside an
//!    `add_all`;
//! 3. j is at least every serial the child saw synced before it died (and
//!    every serial an earlier open recovered);
//! 4. serials continue: the next operation gets j+1.
//!
//! The workload is deterministic: step n is a function of the trial's seed,
//! n, and the model's state after steps 1..n-1 (to pick existing URIs to
//! update), so the parent replays it to learn what operations 1..j were. The
//! child checks every serial it is handed against the same model, and
//! prints a line after every `sync()` or `refresh()`.
//!
//! A trial runs the child one to three times on the same directory: each run
//! reopens what the previous kill left, checks it, and resumes the workload
//! where the recovered index stands, so recoveries of recoveries are checked
//! too. Some trials use a 64, 16 or 4 KiB memtable so that flushes and
//! merges run all the time.
//!
//! `cargo test --test kill` runs [`NORMAL_TRIALS`] trials; the soak is
//! `cargo test --release --test kill -- --ignored` ([`SOAK_TRIALS`] trials,
//! or `PUSHDEX_KILL_TRIALS=n`). `PUSHDEX_KILL_TRIAL=t` runs trial t alone:
//! its workload, memtable and kill delays are the same on every run (where
//! the kill lands still depends on the machine's speed).

#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use common::model::{Change, Doc, Edit, Mismatch, Model, Op};
use pushdex::{Index, Options};

/// Trials of the normal run: about 13 s in a debug build on the 2-core development machine.
const NORMAL_TRIALS: u64 = 24;
/// Trials of the `#[ignore]`d soak, unless `PUSHDEX_KILL_TRIALS` says otherwise.
const SOAK_TRIALS: u64 = 1000;

/// Set in the child's environment: the index directory (its presence makes
/// `child_writer` write instead of returning at once).
const CHILD_DIR_ENV: &str = "PUSHDEX_KILL_CHILD";
/// Set in the child's environment: the trial number.
const CHILD_TRIAL_ENV: &str = "PUSHDEX_KILL_CHILD_TRIAL";
const TRIALS_ENV: &str = "PUSHDEX_KILL_TRIALS";
const TRIAL_ENV: &str = "PUSHDEX_KILL_TRIAL";

/// Starts every line the child reports, so that the test harness's own
/// output on the same stream is never mistaken for a report.
const MARK: &str = "pushdex-kill:";
const SIGKILL: i32 = 9;
/// Not a timing assertion: a guard, so that a child stuck in `open` fails
/// the test instead of hanging it.
const OPEN_GUARD: Duration = Duration::from_secs(120);
/// Operations the parent pushes after the last recovery, before its own
/// clean reopen.
const TAIL_STEPS: u64 = 40;
/// Outside the workload's URIs: the parent's first write after recovery.
const AFTER_URI: &str = "after/crash";

// ---- deterministic randomness ---------------------------------------------

/// SplitMix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(mix(seed ^ 0x5DEE_CE66_D1CE_4E5B))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ---- trials -----------------------------------------------------------------

/// Everything a trial number decides: the workload's seed, the memtable,
/// how many times the child runs.
#[derive(Clone, Copy, Debug)]
struct Trial {
    number: u64,
    seed: u64,
    memtable_bytes: Option<usize>,
    runs: u64,
}

impl Trial {
    fn new(number: u64) -> Trial {
        let mut rng = Rng::new(number);
        let seed = rng.next();
        let memtable_bytes = match rng.below(4) {
            0 => None,
            1 => Some(64 * 1024),
            2 => Some(16 * 1024),
            _ => Some(Options::MIN_MEMTABLE_BYTES),
        };
        Trial { number, seed, memtable_bytes, runs: rng.range(1, 3) }
    }

    fn options(&self) -> Options {
        match self.memtable_bytes {
            Some(bytes) => Options::default().memtable_bytes(bytes),
            None => Options::default(),
        }
    }

    fn open(&self, dir: &Path) -> Result<Index, String> {
        Index::open_with(dir, self.options()).map_err(|e| format!("open failed: {e}"))
    }
}

// ---- the workload -------------------------------------------------------------

/// One step of the workload: an operation, or a barrier.
#[derive(Clone, Debug)]
enum Step {
    Write(Op),
    Sync,
    Refresh,
}

/// `t1` is a raw prefix of `t10` and `t11` but not their folder.
const TOPS: [&str; 5] = ["t0", "t1", "t2", "t10", "t11"];
const WORDS: [&str; 12] =
    ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett", "kilo", "lima"];
const CHECKPOINTS: [&str; 4] = ["c0", "c1", "c2", "crawl"];

fn top(rng: &mut Rng) -> &'static str {
    TOPS[rng.index(TOPS.len())]
}

/// About 700 URIs, in three folder depths, plus documents whose URI is
/// also a folder's name (`t1/s2` beside `t1/s2/f3`).
fn uri(rng: &mut Rng) -> String {
    let top = top(rng);
    let (sub, file) = (rng.below(4), rng.below(12));
    match rng.below(7) {
        0 | 1 => format!("{top}/f{file}"),
        2 | 3 => format!("{top}/s{sub}/f{file}"),
        4 | 5 => format!("{top}/s{sub}/x/f{file}"),
        _ => format!("{top}/s{sub}"),
    }
}

/// A URI the model holds (most of the time), so that updates and deletes
/// usually hit something.
fn held_uri(rng: &mut Rng, model: &Model, percent: u64) -> String {
    if !model.docs.is_empty() && rng.chance(percent) {
        model.docs.keys().nth(rng.index(model.docs.len())).cloned().unwrap_or_default()
    } else {
        uri(rng)
    }
}

fn blob(rng: &mut Rng) -> Vec<u8> {
    let len = rng.range(200, 3000) as usize;
    let start = rng.next();
    (0..len as u64).map(|i| mix(start.wrapping_add(i)) as u8).collect()
}

/// A document: the stamp, a `gen` meta, tags, a body, sometimes a blob.
fn doc(rng: &mut Rng, stamp: String, gen: u64) -> Doc {
    let words = rng.range(1, 40);
    let body = (0..words).map(|_| WORDS[rng.index(WORDS.len())]).collect::<Vec<_>>().join(" ");
    let tags: Vec<String> = (0..rng.below(3)).map(|_| format!("tag{}", rng.below(5))).collect();
    let blob = if rng.chance(10) { Some(blob(rng)) } else { None };
    let mut doc = Doc::new(stamp).meta("gen", gen.to_string());
    for tag in tags {
        doc = doc.meta("tag", tag);
    }
    doc = doc.text("body", body);
    match blob {
        Some(blob) => doc.binary("blob", blob),
        None => doc,
    }
}

/// Step `n` of the workload of `seed`, given the model after steps 1..n-1.
fn step(seed: u64, n: u64, model: &Model) -> Step {
    let mut rng = Rng::new(seed ^ mix(n));
    match rng.below(1000) {
        0..=279 => Step::Write(Op::Add(uri(&mut rng), doc(&mut rng, format!("s{n}"), n))),
        280..=399 => {
            let len = rng.range(1, 30);
            // URIs may repeat within a batch: the later wins.
            Step::Write(Op::AddAll((0..len).map(|i| (uri(&mut rng), doc(&mut rng, format!("s{n}.{i}"), n))).collect()))
        }
        // A partial update: always the stamp and the `gen` meta, sometimes more.
        400..=539 => {
            let uri = held_uri(&mut rng, model, 85);
            let mut changes = vec![Change::Meta("gen".to_string(), vec![n.to_string()])];
            if rng.chance(30) {
                changes.push(Change::Meta("tag".to_string(), (0..rng.below(3)).map(|i| format!("new{i}")).collect()));
            }
            if rng.chance(60) {
                changes.push(Change::text("body", format!("updated at step {n}")));
            }
            match rng.below(10) {
                0 | 1 => changes.push(Change::RemovePart("blob".to_string())),
                2 => changes.push(Change::binary("blob", blob(&mut rng))),
                _ => {}
            }
            Step::Write(Op::Update(uri, Edit { stamp: Some(format!("u{n}")), changes }))
        }
        540..=619 => Step::Write(Op::Delete(held_uri(&mut rng, model, 70))),
        620..=649 => {
            let top = top(&mut rng);
            let sub = rng.below(4);
            let root = match rng.below(4) {
                0 => top.to_string(),
                1 => format!("{top}/"),
                2 => format!("{top}/s{sub}"),
                _ => format!("{top}/s{sub}/x"),
            };
            Step::Write(Op::DeleteRootPath(root, rng.chance(50)))
        }
        650..=669 => {
            let top = top(&mut rng);
            let prefix = match rng.below(5) {
                0 => "t1".to_string(),
                1 => format!("{top}/f1"),
                2 => format!("{top}/s"),
                3 => format!("{top}/s{}/x/f", rng.below(4)),
                _ => uri(&mut rng),
            };
            Step::Write(Op::DeletePrefix(prefix))
        }
        670..=799 => {
            let name = CHECKPOINTS[rng.index(CHECKPOINTS.len())].to_string();
            Step::Write(Op::SetCheckpoint(name, format!("at {n}")))
        }
        800..=819 => Step::Write(Op::DeleteCheckpoint(CHECKPOINTS[rng.index(CHECKPOINTS.len())].to_string())),
        820..=829 => Step::Write(Op::ClearCheckpoints),
        830..=979 => Step::Sync,
        980..=998 => Step::Refresh,
        _ => Step::Write(Op::DeleteRootPath(String::new(), true)),
    }
}

/// Runs one step on the index and the model, which must agree on its
/// answer (a serial, `NotFound` for an update of an absent URI, the
/// watermark of a barrier); returns the synced watermark of a barrier.
fn execute(index: &Index, model: &mut Model, step: &Step) -> Result<Option<u64>, Mismatch> {
    match step {
        Step::Write(op) => model.write(index, op).map(|_| None),
        Step::Sync => model.barrier(index, false).map(Some),
        Step::Refresh => model.barrier(index, true).map(Some),
    }
}

// ---- the model ---------------------------------------------------------------

/// The model after the workload's operations 1..j, and the step that
/// brought it there; an error if serial j ends inside an operation (part of
/// an `add_all` recovered).
fn replay(seed: u64, j: u64) -> Result<(Model, u64), String> {
    let mut model = Model::default();
    let mut n = 0;
    while model.last < j {
        n += 1;
        let step = step(seed, n, &model);
        let before = model.last;
        if let Step::Write(op) = &step {
            // A refused update takes no serial.
            let _ = model.apply(op);
        }
        if model.last > j {
            return Err(format!(
                "not a prefix: the index recovered up to serial {j}, inside step {n}, which holds serials {}..={} \
                 ({step:?})",
                before + 1,
                model.last
            ));
        }
    }
    Ok((model, n))
}

/// Checks an index just opened against the model: it holds exactly the
/// model's operations, all synced, and every read agrees (watermarks,
/// documents by status, get, enumeration and count, checkpoints).
fn check(index: &Index, model: &mut Model) -> Result<(), String> {
    model.reopened(&index.watermarks(), model.last)?;
    let uris = model.docs.keys().cloned().collect();
    model.check(index, &uris, &[String::new()], &CHECKPOINTS).map_err(|e| e.to_string())
}

// ---- the child ------------------------------------------------------------------

/// Prints one report line at once: the parent reads them as they come, and
/// what was written before the kill is in the pipe.
fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK} {line}").expect("stdout");
    out.flush().expect("stdout");
}

/// The child writer: returns at once unless the parent started this process
/// as a child. Then it opens the index, checks what it recovered, and
/// resumes the workload until it is killed.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else { return };
    let number = std::env::var(CHILD_TRIAL_ENV).expect("trial number").parse().expect("trial number");
    let trial = Trial::new(number);
    // Reparented: the parent test died without killing us; don't write forever.
    let parent = std::os::unix::process::parent_id();

    let index = trial.open(Path::new(&dir)).unwrap_or_else(|e| panic!("child: {e}"));
    let last = index.watermarks().last.0;
    let (mut model, mut n) = replay(trial.seed, last).unwrap_or_else(|e| panic!("child, after open: {e}"));
    check(&index, &mut model).unwrap_or_else(|e| panic!("child, after open at serial {last}: {e}"));
    report(&format!("opened {last}"));
    loop {
        n += 1;
        let step = step(trial.seed, n, &model);
        let synced = execute(&index, &mut model, &step).unwrap_or_else(|e| panic!("child: step {n}: {e} ({step:?})"));
        if let Some(synced) = synced {
            report(&format!("synced {synced}"));
        }
        if n % 64 == 0 && std::os::unix::process::parent_id() != parent {
            std::process::exit(0);
        }
    }
}

// ---- the parent ------------------------------------------------------------------

/// A line the child printed.
#[derive(Clone, Copy, Debug)]
enum Report {
    /// Open returned, with `last` (recovered and fsynced) at this serial.
    Opened(u64),
    /// `sync()` or `refresh()` returned with this synced watermark.
    Synced(u64),
}

fn parse_report(line: &str) -> Option<Report> {
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let mut words = rest.split_whitespace();
    let kind = words.next()?;
    let serial = words.next()?.parse().ok()?;
    match kind {
        "opened" => Some(Report::Opened(serial)),
        "synced" => Some(Report::Synced(serial)),
        _ => None,
    }
}

/// Kills and reaps the child if the parent leaves early (an error, a panic).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one run of the child told the parent before it was killed.
#[derive(Debug, Default)]
struct Run {
    opened: Option<u64>,
    /// The highest synced serial reported.
    synced: Option<u64>,
    syncs: u64,
}

/// Starts the child on `dir`, kills it with SIGKILL after a delay drawn
/// from `rng`, and returns what it reported.
fn run_child(trial: &Trial, dir: &Path, rng: &mut Rng) -> Result<Run, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let child = Command::new(exe)
        .args(["child_writer", "--exact", "--nocapture", "--quiet", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_TRIAL_ENV, trial.number.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning the child: {e}"))?;
    let mut child = Killed(child);
    let stdout = child.0.stdout.take().expect("piped stdout");
    let mut stderr = child.0.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        // A line cut short by the kill is no report.
        while matches!(lines.read_line(&mut line), Ok(n) if n > 0) {
            if line.ends_with('\n') {
                if let Some(report) = parse_report(&line) {
                    if tx.send(report).is_err() {
                        return;
                    }
                }
            }
            line.clear();
        }
    });
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut reports = Vec::new();
    if rng.chance(12) {
        // Early: while the process starts, or while open recovers what the
        // previous kill left.
        thread::sleep(Duration::from_millis(rng.below(40)));
    } else {
        match rx.recv_timeout(OPEN_GUARD) {
            Ok(report) => {
                reports.push(report);
                thread::sleep(Duration::from_millis(rng.range(3, 300)));
            }
            // The child exited by itself: its exit status below says why.
            Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!("the child did not open the index in {OPEN_GUARD:?}"))
            }
        }
    }
    child.0.kill().map_err(|e| format!("kill: {e}"))?;
    let status = child.0.wait().map_err(|e| format!("wait: {e}"))?;
    reader.join().map_err(|_| "the stdout reader panicked".to_string())?;
    let stderr = errors.join().map_err(|_| "the stderr reader panicked".to_string())?;
    if status.signal() != Some(SIGKILL) {
        return Err(format!("the child ended by itself ({status}) before the kill; its stderr:\n{stderr}"));
    }

    reports.extend(rx.try_iter());
    let mut run = Run::default();
    for report in reports {
        match report {
            Report::Opened(serial) => run.opened = Some(serial),
            Report::Synced(serial) => {
                run.synced = run.synced.max(Some(serial));
                run.syncs += 1;
            }
        }
    }
    Ok(run)
}

/// Opens the index the kill left and checks it against the model at
/// j = `last`: a prefix of the workload, with nothing synced lost (`floor`).
fn recover(trial: &Trial, dir: &Path, floor: u64) -> Result<(Index, Model, u64), String> {
    let index = trial.open(dir)?;
    let j = index.watermarks().last.0;
    if j < floor {
        return Err(format!("synced operations lost: the index recovered up to serial {j}, {floor} was synced"));
    }
    let (mut model, n) = replay(trial.seed, j)?;
    check(&index, &mut model).map_err(|e| format!("recovered at serial {j}: {e}"))?;
    Ok((index, model, n))
}

#[derive(Debug, Default)]
struct Totals {
    trials: u64,
    runs: u64,
    /// Runs killed before they reported their open.
    early_kills: u64,
    syncs: u64,
    /// The sum over trials of the serial recovered at the end.
    recovered: u64,
    /// Segment files the last kill of each trial left (flushes happened).
    segment_files: u64,
}

fn run_trial(trial: &Trial, dir: &Path, totals: &mut Totals) -> Result<(), String> {
    let mut rng = Rng::new(trial.seed ^ 0x6B69_6C6C);
    // The highest serial known durable: synced by the child, or recovered
    // (and fsynced) by an open.
    let mut floor = 0;
    for run_number in 1..=trial.runs {
        let run = run_child(trial, dir, &mut rng).map_err(|e| format!("run {run_number}: {e}"))?;
        totals.runs += 1;
        totals.syncs += run.syncs;
        match run.opened {
            Some(opened) if opened < floor => {
                return Err(format!(
                    "run {run_number}: synced operations lost: the child's open recovered up to serial {opened}, \
                     {floor} was synced"
                ))
            }
            Some(opened) => floor = opened,
            None => totals.early_kills += 1,
        }
        floor = floor.max(run.synced.unwrap_or(0));
        // Between runs, the parent sometimes checks too (the child always
        // does when its open returns).
        if run_number < trial.runs && rng.chance(50) {
            let (index, model, _) = recover(trial, dir, floor).map_err(|e| format!("after run {run_number}: {e}"))?;
            drop(index);
            floor = model.last;
        }
    }

    let segments = std::fs::read_dir(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    totals.segment_files +=
        segments.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "pdx")).count() as u64;
    let (index, mut model, mut n) = recover(trial, dir, floor).map_err(|e| format!("after the last run: {e}"))?;
    let j = model.last;
    totals.recovered += j;
    // Serials continue: the model expects j + 1.
    let after = Step::Write(Op::Add(AFTER_URI.to_string(), doc(&mut rng, "after".to_string(), 0)));
    execute(&index, &mut model, &after).map_err(|e| format!("the first add after recovering {j}: {e}"))?;
    // More of the workload, then a clean reopen: the recovered index keeps working.
    for _ in 0..TAIL_STEPS {
        n += 1;
        let step = step(trial.seed, n, &model);
        execute(&index, &mut model, &step).map_err(|e| format!("after recovery, step {n}: {e} ({step:?})"))?;
    }
    if rng.chance(50) {
        index.close().map_err(|e| format!("close: {e}"))?;
    } else {
        index.sync().map_err(|e| format!("sync: {e}"))?;
        drop(index);
    }
    let index = trial.open(dir).map_err(|e| format!("the clean reopen: {e}"))?;
    check(&index, &mut model).map_err(|e| format!("the clean reopen after recovery: {e}"))?;
    totals.trials += 1;
    Ok(())
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number")))
}

/// Runs trials 0..count (or only `PUSHDEX_KILL_TRIAL`); stops at the first
/// failure, keeping its directory.
fn run_trials(count: u64) {
    let trials: Vec<u64> = match env_number(TRIAL_ENV) {
        Some(one) => vec![one],
        None => (0..count).collect(),
    };
    let started = Instant::now();
    let mut totals = Totals::default();
    for number in trials {
        let trial = Trial::new(number);
        let dir = tempfile::tempdir().expect("a temporary directory");
        if let Err(e) = run_trial(&trial, dir.path(), &mut totals) {
            let kept = dir.keep();
            panic!(
                "kill trial {number} failed ({trial:?}): {e}\nthe index is kept in {}\nrerun: {TRIAL_ENV}={number} \
                 cargo test --test kill -- --include-ignored --nocapture",
                kept.display()
            );
        }
    }
    println!("{totals:?} in {:.1} s", started.elapsed().as_secs_f64());
}

/// A few dozen kills: part of every `cargo test`.
#[test]
fn kill_and_recover() {
    run_trials(NORMAL_TRIALS);
}

/// The soak: `cargo test --release --test kill -- --ignored`.
#[test]
#[ignore = "a long soak: cargo test --release --test kill -- --ignored"]
fn kill_soak() {
    run_trials(env_number(TRIALS_ENV).unwrap_or(SOAK_TRIALS));
}
