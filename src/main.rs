//! The `pushdex` command line: import a directory tree through a managed
//! connector, and look at (or clean up) what an index holds.
//!
//! ```text
//! pushdex [--index DIR] import [DIR]
//! pushdex connectors | job ID [--json] | docs ID [--rows N] [--start N] | rm-connector ID
//! pushdex status URI | ls ROOT [--mode MODE]
//! pushdex rm URI | rm --root-path ROOT [--non-recursive] | rm --prefix PREFIX  [--all]
//! pushdex checkpoint get NAME | checkpoint set NAME VALUE | checkpoint ls
//! pushdex search QUERY [--limit N] [--offset N] [--sort META|-META] [--facet META]...
//!                [--folders ROOT [--folder-limit N]]
//!                [--snippet PART | --no-snippet] [--strict] [--count] [--json]
//! pushdex verify | repair
//! ```
//!
//! The index directory is `--index`, else `$PUSHDEX_INDEX`, else
//! `./pushdex-data`. Only `import` creates an index there (in a missing or
//! empty directory); every other command needs one and says so. Results go
//! to stdout, with control characters in URIs and values escaped
//! (`\t`, `\n`, `\x1b`, `\\`); a failure is one line `error: ...` on
//! stderr and exit code 1 (usage errors are clap's, code 2). Every command
//! opens the index, does its work and closes it. An index is open in one
//! process at a time: a second `pushdex` on the same directory fails with
//! "already open" while the first one runs, rather than waiting.
//!
//! `search` prints each hit as `N. TITLE`, then `URI  score S  stamp T`
//! (one line `N. URI  score S  stamp T` when the hit has no title), then
//! its snippet on one line, the matched words in bold when stdout is a
//! terminal (and `NO_COLOR` is unset), else between `[` and `]`; then
//! `total: N (A to B shown)`, each `--facet`'s counts and `--folders`'
//! counts (each folder whole, a root for `under:`). `--json` prints
//! one object instead, shaped as the server's answer, snippets with `<b>`
//! and `</b>` around the matched words.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pushdex::connector::{ConnectorInfo, Connectors, JobStatus, RunMode};
use pushdex::{Checkpoint, Create, Entry, EnumerationMode, Error, Index, Options, Query, SearchOptions, Sort, State};

/// The index directory when neither `--index` nor `$PUSHDEX_INDEX` names one.
const DEFAULT_INDEX_DIR: &str = "./pushdex-data";

/// How often `import` polls the job status for its progress bar.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Any failure of a command: pushdex's own errors keep their `Display`.
type CliResult<T> = Result<T, Box<dyn StdError>>;

#[derive(Parser)]
#[command(name = "pushdex", version, about = "An embedded document index engine")]
struct Cli {
    /// The index directory [default: $PUSHDEX_INDEX, else ./pushdex-data]
    #[arg(long, global = true, value_name = "DIR")]
    index: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import a directory tree through its connector (created on first use)
    Import {
        /// The directory to import
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// List the connectors with their job status
    Connectors,
    /// Show a connector's job status
    Job {
        /// The connector id (c1, c2, ...)
        id: String,
        /// Print the status as JSON
        #[arg(long)]
        json: bool,
    },
    /// Page through a connector's documents in URI order
    Docs {
        /// The connector id
        id: String,
        /// How many documents to show
        #[arg(long, default_value_t = 20)]
        rows: usize,
        /// The position of the first one (0-based)
        #[arg(long, default_value_t = 0)]
        start: u64,
    },
    /// Delete a connector and every document under its root, for good
    RmConnector {
        /// The connector id
        id: String,
    },
    /// Show what the index holds for one URI
    Status {
        /// The document's URI
        uri: String,
    },
    /// List the documents and folders under a root
    Ls {
        /// The root ("" for everything)
        root: String,
        /// What to list
        #[arg(long, value_enum, default_value_t = LsMode::All)]
        mode: LsMode,
    },
    /// Delete a document, a root path or every URI with a prefix, then sync
    Rm(RmArgs),
    /// Read and write checkpoints
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Serve the indexes of a data directory over HTTP (../shared/HTTP.md)
    #[cfg(feature = "server")]
    Serve(ServeArgs),
    /// A cluster of servers (../shared/CLUSTER.md)
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Read every file of the index and say what is wrong where
    Verify,
    /// Bring an index that does not open back to the longest valid prefix of its log
    /// (what is dropped goes to lost+found/ inside the index)
    Repair,
    /// Search what the last refresh made searchable (query syntax: API.md)
    Search(SearchArgs),
}

#[derive(Args)]
struct SearchArgs {
    /// The query, e.g. 'body:"quarterly report" @author:ann NOT draft'
    query: String,
    /// How many hits to show (1 to 10000)
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// How many of the ordered hits to skip first (offset + limit at most 10000)
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Print only how many documents match
    #[arg(long)]
    count: bool,
    /// Read the query strictly (juxtaposed words are all required) instead of
    /// ranking documents by how many of the bare words they hold
    #[arg(long)]
    strict: bool,
    /// Order the hits by a meta instead of the score: META or META:asc
    /// (smallest first), -META or META:desc (largest first)
    #[arg(long, value_name = "META", value_parser = parse_sort, allow_hyphen_values = true)]
    sort: Option<Sort>,
    /// Count the hits by the values of a meta (repeatable); printed after the hits
    #[arg(long = "facet", value_name = "META")]
    facets: Vec<String>,
    /// Count the hits by the folder directly under ROOT that holds them ("" for
    /// the top folders); printed after the facets, each folder whole: a root
    /// to search in with under:"FOLDER"
    #[arg(long, value_name = "ROOT")]
    folders: Option<String>,
    /// How many folders --folders shows, the fullest first (1 to 10000)
    #[arg(long, value_name = "N", default_value_t = 10, requires = "folders",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    folder_limit: usize,
    /// The text part to show a passage of, matched words highlighted
    /// [default: content, body or text, the first the index has]
    #[arg(long, value_name = "PART")]
    snippet: Option<String>,
    /// Show no passage
    #[arg(long, conflicts_with = "snippet")]
    no_snippet: bool,
    /// Print one JSON object: {"hits": [{"uri", "stamp", "score", "title",
    /// "snippet"}], "total", "facets": [{"name", "values": [[value, count]]}],
    /// "folders": {"root", "values": [{"folder", "count"}]} (with --folders)}
    /// ({"total"} alone with --count)
    #[arg(long)]
    json: bool,
}

#[cfg(feature = "server")]
#[derive(Subcommand)]
enum ClusterCommand {
    /// Print the cluster's nodes, indexes, owners, epochs and published
    /// serials, read from etcd (what GET /v1/cluster answers), as JSON
    Status {
        /// etcd's endpoints, comma-separated
        #[arg(long, env = "PUSHDEX_CLUSTER", default_value = "http://127.0.0.1:2379", value_name = "ENDPOINTS")]
        cluster: String,
        /// The prefix of the cluster's keys in etcd
        #[arg(long, env = "PUSHDEX_CLUSTER_PREFIX", default_value = "/pushdex", value_name = "PREFIX")]
        cluster_prefix: String,
    },
}

#[cfg(feature = "server")]
#[derive(Args)]
struct ServeArgs {
    /// The data directory: one index per name in DATA/indexes/<name>/
    #[arg(long, env = "PUSHDEX_DATA", default_value = DEFAULT_INDEX_DIR, value_name = "DIR")]
    data: PathBuf,
    /// The address to listen on (port 0: a free port, printed on start)
    #[arg(long, env = "PUSHDEX_LISTEN", default_value = "127.0.0.1:8719", value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// The API token [default: DATA/token, created if missing]
    #[arg(long, env = "PUSHDEX_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The largest request body in bytes
    #[arg(long, default_value_t = pushdex::server::DEFAULT_MAX_BODY_BYTES, value_name = "N")]
    max_body_bytes: usize,
    /// A directory that FILE_SYSTEM live sources may read (repeatable)
    #[arg(long = "source-root", env = "PUSHDEX_SOURCE_ROOTS", value_delimiter = ':', value_name = "DIR")]
    source_roots: Vec<PathBuf>,
    /// Refresh every index with new operations this often (seconds, e.g.
    /// 1 or 0.5) [default: never on its own]
    #[arg(long, env = "PUSHDEX_REFRESH_INTERVAL", value_name = "SECONDS", value_parser = parse_seconds)]
    refresh_interval: Option<std::time::Duration>,
    /// Join a cluster: etcd's endpoints, comma-separated (e.g.
    /// http://127.0.0.1:2379); needs --node-id and --store (a build with
    /// the cluster feature)
    #[arg(long, env = "PUSHDEX_CLUSTER", value_name = "ENDPOINTS", requires_all = ["node_id", "store"])]
    cluster: Option<String>,
    /// This node's id in the cluster
    #[arg(long, env = "PUSHDEX_NODE_ID", value_name = "ID", requires = "cluster")]
    node_id: Option<String>,
    /// The cluster's object store: a directory, or s3://bucket/prefix
    /// (AWS_* variables: AWS_ENDPOINT_URL, AWS_ALLOW_HTTP=true, keys)
    #[arg(long, env = "PUSHDEX_STORE", value_name = "DIR_OR_URL", requires = "cluster")]
    store: Option<String>,
    /// The prefix of the cluster's keys in etcd
    #[arg(long, env = "PUSHDEX_CLUSTER_PREFIX", default_value = "/pushdex", value_name = "PREFIX")]
    cluster_prefix: String,
    /// The lease TTL of a node in etcd, in seconds: a node that stops
    /// renewing it loses its indexes after this long
    #[arg(long, env = "PUSHDEX_LEASE_TTL", default_value = "3", value_name = "SECONDS", value_parser = parse_seconds)]
    lease_ttl: std::time::Duration,
    /// The host:port other nodes reach this one at [default: the address
    /// it listens on; 127.0.0.1 when that is 0.0.0.0]
    #[arg(long, env = "PUSHDEX_ADVERTISE", value_name = "HOST:PORT", requires = "cluster")]
    advertise: Option<String>,
}

/// A positive number of seconds, whole or decimal.
#[cfg(feature = "server")]
fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(std::time::Duration::from_secs_f64(s)),
        _ => Err(format!("{text:?} is not a number of seconds between 0 and 86400 (e.g. 1 or 0.5)")),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LsMode {
    /// Every document under the root
    Recursive,
    /// The root's direct children
    Documents,
    /// The root's folders
    Folders,
    /// Direct children and folders
    All,
}

impl From<LsMode> for EnumerationMode {
    fn from(mode: LsMode) -> EnumerationMode {
        match mode {
            LsMode::Recursive => EnumerationMode::RecursiveDocuments,
            LsMode::Documents => EnumerationMode::NotRecursiveDocuments,
            LsMode::Folders => EnumerationMode::NotRecursiveFolders,
            LsMode::All => EnumerationMode::NotRecursiveAll,
        }
    }
}

#[derive(Args)]
#[command(group(ArgGroup::new("target").required(true).args(["uri", "root_path", "prefix"])))]
struct RmArgs {
    /// The URI of the document to delete
    uri: Option<String>,
    /// Delete every document under this root
    #[arg(long, value_name = "ROOT")]
    root_path: Option<String>,
    /// With --root-path: only the root's direct children
    // Not `requires = "root_path"`: clap let `rm URI --non-recursive`
    // through with it. Ruling out the other two members of the required
    // group leaves --root-path as the only way to satisfy it.
    #[arg(long, conflicts_with_all = ["uri", "prefix"])]
    non_recursive: bool,
    /// Delete every URI starting with this string
    #[arg(long)]
    prefix: Option<String>,
    /// Allow a deletion of every document of the index (--root-path '' does that)
    #[arg(long, conflicts_with = "uri")]
    all: bool,
}

#[derive(Subcommand)]
enum CheckpointCommand {
    /// Print a checkpoint's value
    Get {
        /// The checkpoint's name
        name: String,
    },
    /// Set a checkpoint and sync
    Set {
        /// The checkpoint's name
        name: String,
        /// Its new value
        value: String,
    },
    /// List the checkpoints
    Ls,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = io::stdout().lock();
    match run(cli, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`pushdex ls ... | head`): not an error.
        Err(e) if e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Flush what was printed before the error so the two streams
            // read in order on a terminal.
            let _ = out.flush();
            eprintln!("error: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// The error contract is one line on stderr, whatever the message holds.
fn one_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

fn index_dir(cli: &Cli) -> PathBuf {
    if let Some(dir) = &cli.index {
        return dir.clone();
    }
    match std::env::var_os("PUSHDEX_INDEX") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_INDEX_DIR),
    }
}

fn run(cli: Cli, out: &mut dyn Write) -> CliResult<()> {
    let dir = index_dir(&cli);
    match cli.command {
        Command::Verify => return verify(&dir, out),
        Command::Repair => return repair(&dir, out),
        #[cfg(feature = "server")]
        #[cfg(feature = "server")]
        Command::Cluster(ClusterCommand::Status { cluster, cluster_prefix }) => {
            let status = pushdex::server::cluster_status(&cluster, &cluster_prefix)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&status).unwrap_or_default())?;
            return Ok(());
        }
        #[cfg(feature = "server")]
        Command::Serve(args) => {
            let config = pushdex::server::Config {
                data: args.data,
                listen: args.listen,
                token: args.token,
                max_body_bytes: args.max_body_bytes,
                source_roots: args.source_roots,
                refresh_interval: args.refresh_interval,
                cluster: args.cluster.map(|etcd| pushdex::server::ClusterConfig {
                    etcd,
                    node_id: args.node_id.unwrap_or_default(),
                    store: args.store.unwrap_or_default(),
                    prefix: args.cluster_prefix,
                    lease_ttl: args.lease_ttl,
                    advertise: args.advertise,
                }),
            };
            return Ok(pushdex::server::serve(config)?);
        }
        _ => {}
    }
    // Only an import creates an index, and only where nothing else is.
    let create = if matches!(cli.command, Command::Import { .. }) { Create::IfEmpty } else { Create::Never };
    let index = Index::open_with(&dir, Options::default().create(create)).map_err(|e| open_error(&dir, create, e))?;
    match cli.command {
        Command::Import { dir } => import(&index, &dir, out)?,
        Command::Connectors => list_connectors(&index, out)?,
        Command::Job { id, json } => job(&index, &id, json, out)?,
        Command::Docs { id, rows, start } => docs(&index, &id, rows, start, out)?,
        Command::RmConnector { id } => rm_connector(&index, &id, out)?,
        Command::Status { uri } => status(&index, &uri, out)?,
        Command::Ls { root, mode } => ls(&index, &root, mode.into(), out)?,
        Command::Rm(args) => rm(&index, &args, out)?,
        Command::Checkpoint(command) => checkpoint(&index, command, out)?,
        Command::Search(args) => search(&index, &args, out)?,
        Command::Verify | Command::Repair => unreachable!("handled above without opening the index"),
        #[cfg(feature = "server")]
        Command::Serve(_) => unreachable!("handled above"),
        #[cfg(feature = "server")]
        Command::Cluster(_) => unreachable!("handled above"),
    }
    index.close()?;
    Ok(())
}

/// Why an index directory did not open, in words that say what to do.
fn open_error(dir: &Path, create: Create, e: Error) -> Box<dyn StdError> {
    let shown = dir.display();
    match e {
        Error::NoIndex { .. } if dir.is_file() => format!("{shown} is a file, not an index directory").into(),
        Error::NoIndex { .. } if create == Create::IfEmpty => format!(
            "{shown} holds other files and no pushdex index: give --index a new or empty directory, \
             or the directory of an existing index"
        )
        .into(),
        Error::NoIndex { .. } if dir.exists() => {
            format!("{shown} is not a pushdex index (give --index the directory of one)").into()
        }
        Error::NoIndex { .. } => {
            let quoted = shell_quote(&shown.to_string());
            format!("no index at {shown}: `pushdex --index {quoted} import DIR` creates one").into()
        }
        Error::Corrupt { .. } => {
            format!("cannot open index {shown}: {e} (`pushdex verify` says more, `pushdex repair` may fix it)").into()
        }
        e => format!("cannot open index {shown}: {e}").into(),
    }
}

fn verify(dir: &Path, out: &mut dyn Write) -> CliResult<()> {
    let v = Index::verify(dir).map_err(|e| open_error(dir, Create::Never, e))?;
    write_verification(&v, out)?;
    let problems = match v.problems.len() {
        0 => return Ok(()),
        1 => "1 problem".to_string(),
        n => format!("{n} problems"),
    };
    if v.opens {
        return Err(format!("{problems}: some reads will fail (see above)").into());
    }
    Err(format!("{problems}: the index does not open; `pushdex repair` may fix it").into())
}

fn write_verification(v: &pushdex::Verification, out: &mut dyn Write) -> io::Result<()> {
    let bytes: u64 = v.files.iter().map(|(_, len)| len).sum();
    writeln!(out, "files: {} ({bytes} bytes)", v.files.len())?;
    writeln!(
        out,
        "segments: {} ({} rows), committed through serial {}",
        v.segments, v.segment_rows, v.committed_serial
    )?;
    writeln!(out, "log: {} frames on top, last serial {}", v.log_frames, v.last_serial)?;
    if let Some((file, at, why)) = &v.torn_tail {
        writeln!(out, "torn tail: {file} at offset {at} ({why}); open cuts it (never synced)")?;
    }
    if v.in_use {
        writeln!(out, "in use: another process has the index open; what was read may be changing")?;
    }
    for p in &v.problems {
        let what = if p.blocks_open { "does not open" } else { "reads fail" };
        let fix = if p.repairable { "repair fixes it" } else { "repair leaves it" };
        writeln!(out, "problem: {}: {} ({what}; {fix})", p.file, one_line(&p.detail))?;
    }
    writeln!(out, "opens: {}", if v.opens { "yes" } else { "no" })?;
    Ok(())
}

fn repair(dir: &Path, out: &mut dyn Write) -> CliResult<()> {
    let r = Index::repair(dir).map_err(|e| open_error(dir, Create::Never, e))?;
    for (name, there) in &r.moved {
        writeln!(out, "moved {name} to {there}")?;
    }
    for (name, kept, len, copy) in &r.cut {
        writeln!(out, "cut {name} to {kept} of {len} bytes (the whole file is in {copy})")?;
    }
    if !r.changed() {
        writeln!(out, "nothing to repair in the log")?;
    }
    write_verification(&r.after, out)?;
    if !r.after.opens {
        return Err("the index still does not open: repair only mends the log (see the problems above: a damaged \
                    manifest, segment or bitmap needs a copy from a backup, a newer format a newer pushdex)"
            .into());
    }
    Ok(())
}

fn import(index: &Index, dir: &Path, out: &mut dyn Write) -> CliResult<()> {
    // Canonical, so that `.`, `./` and the absolute path all find the same
    // connector; this also turns a missing directory into a clear error.
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("cannot import {}: {e}", dir.display()))?;
    if !dir.is_dir() {
        return Err(format!("cannot import {}: not a directory", dir.display()).into());
    }
    let connectors = Connectors::open(index)?;
    let (info, new) = match connectors.find_directory(&dir)? {
        Some(info) => (info, false),
        None => (connectors.create_directory(&dir, RunMode::Once)?, true),
    };
    let started = Instant::now();
    connectors.start_import(&info.id)?;
    let (job, elapsed) = follow_job(&connectors, &info.id, started)?;

    let age = if new { "new" } else { "existing" };
    writeln!(out, "connector {} ({age}): {}, root {}", info.id, escape(&info.source), escape(&info.root))?;
    writeln!(out, "job {}: {} in {}", job.job_id, job.status, format_elapsed(elapsed))?;
    write_counts(&job, out)?;
    let by_state = count_by_state(index, &info.root)?;
    if by_state.is_empty() {
        writeln!(out, "documents: none")?;
    } else {
        let counts: Vec<String> = by_state.iter().map(|(state, n)| format!("{state:?} {n}")).collect();
        writeln!(out, "documents: {}", counts.join(", "))?;
    }
    if job.status == pushdex::connector::JobState::Error {
        let reason = job.last_error.as_deref().unwrap_or("unknown error");
        return Err(format!("import job {} failed: {reason}", job.job_id).into());
    }
    Ok(())
}

/// Polls the job until it is no longer active, drawing a progress bar on
/// stderr (indicatif hides it when stderr is not a terminal); returns the
/// final status and the time since `started`.
///
/// A helper thread blocks in [`Connectors::wait`] and wakes the poll loop
/// as soon as the scan ends, so the reported duration is not rounded up to
/// the poll interval.
fn follow_job(connectors: &Connectors, id: &str, started: Instant) -> CliResult<(JobStatus, Duration)> {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{wide_bar}] {pos}/{len} {msg}")?
            .progress_chars("=> "),
    );
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let waiter = {
        let connectors = connectors.clone();
        let id = id.to_string();
        thread::spawn(move || {
            // Its result is not needed: job_status below is the record.
            let _ = connectors.wait(&id);
            drop(done_tx);
        })
    };
    let job = loop {
        let job = connectors.job_status(id)?;
        if job.listed == 0 {
            // Still listing: no length yet, and 0/0 would draw a full bar.
            bar.set_message("listing the source");
        } else {
            bar.set_length(job.listed);
            bar.set_position(job.documents_processed);
            bar.set_message(format!("{} added, {} updated, {} deleted", job.added, job.updated, job.deleted));
        }
        if !job.status.is_active() {
            break job;
        }
        bar.tick();
        // Disconnected: the waiter is done (a continuous connector's scan
        // ended but the job stays active); plain polling from here on.
        if let Err(RecvTimeoutError::Disconnected) = done_rx.recv_timeout(POLL_INTERVAL) {
            thread::sleep(POLL_INTERVAL);
        }
    };
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    // The job is over, so the waiter returns (or has returned) at once.
    let _ = waiter.join();
    Ok((job, elapsed))
}

fn format_elapsed(elapsed: Duration) -> String {
    let millis = Duration::from_millis(elapsed.as_millis().try_into().unwrap_or(u64::MAX));
    humantime::format_duration(millis).to_string()
}

fn write_counts(job: &JobStatus, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "listed: {}", job.listed)?;
    writeln!(out, "added: {}", job.added)?;
    writeln!(out, "updated: {}", job.updated)?;
    writeln!(out, "unchanged: {}", job.unchanged)?;
    writeln!(out, "deleted: {}", job.deleted)?;
    writeln!(out, "failed: {}", job.failed)?;
    writeln!(out, "skipped: {}", job.skipped)?;
    if let Some(error) = &job.last_error {
        writeln!(out, "last_error: {}", escape(error))?;
    }
    Ok(())
}

/// How many documents under `root` are in each state (only states present).
fn count_by_state(index: &Index, root: &str) -> CliResult<BTreeMap<State, u64>> {
    let mut counts = BTreeMap::new();
    for entry in index.enumerate(root, EnumerationMode::RecursiveDocuments)? {
        if let Entry::Document(status) = entry? {
            *counts.entry(status.state).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

fn format_mode(mode: RunMode) -> String {
    match mode {
        RunMode::Once => "once".to_string(),
        RunMode::Continuous { interval } => format!("continuous every {}", humantime::format_duration(interval)),
    }
}

fn list_connectors(index: &Index, out: &mut dyn Write) -> CliResult<()> {
    let connectors = Connectors::open(index)?;
    for ConnectorInfo { id, name, root, mode, .. } in connectors.list() {
        let job = connectors.job_status(&id)?;
        writeln!(out, "{id}\t{name}\t{root}\t{}\t{}", format_mode(mode), job.status)?;
    }
    Ok(())
}

fn job(index: &Index, id: &str, json: bool, out: &mut dyn Write) -> CliResult<()> {
    let connectors = Connectors::open(index)?;
    let job = connectors.job_status(id)?;
    let import = job.import_status();
    if json {
        let mut value = serde_json::to_value(&job)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("message".to_string(), import.message.into());
            object.insert("percent_complete".to_string(), import.percent_complete.into());
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    // Destructured in full so that a field added to JobStatus fails to
    // compile here until it is printed too.
    let JobStatus {
        job_id,
        status,
        start_time,
        end_time,
        documents_in_queue,
        documents_outstanding,
        documents_processed,
        listed,
        added,
        updated,
        unchanged,
        deleted,
        failed,
        skipped,
        last_error,
    } = job;
    let none = || "-".to_string();
    let lines = [
        ("job_id", if job_id.is_empty() { none() } else { job_id }),
        ("status", status.to_string()),
        ("start_time", start_time.unwrap_or_else(none)),
        ("end_time", end_time.unwrap_or_else(none)),
        ("documents_in_queue", documents_in_queue.to_string()),
        ("documents_outstanding", documents_outstanding.to_string()),
        ("documents_processed", documents_processed.to_string()),
        ("listed", listed.to_string()),
        ("added", added.to_string()),
        ("updated", updated.to_string()),
        ("unchanged", unchanged.to_string()),
        ("deleted", deleted.to_string()),
        ("failed", failed.to_string()),
        ("skipped", skipped.to_string()),
        ("last_error", last_error.map_or_else(none, |e| escape(&e).into_owned())),
        ("message", import.message),
        ("percent_complete", import.percent_complete.to_string()),
    ];
    for (key, value) in lines {
        writeln!(out, "{key}: {value}")?;
    }
    Ok(())
}

fn docs(index: &Index, id: &str, rows: usize, start: u64, out: &mut dyn Write) -> CliResult<()> {
    let connectors = Connectors::open(index)?;
    let page = connectors.source_documents(id, rows, start)?;
    writeln!(out, "total: {} start: {} shown: {}", page.total, page.start, page.documents.len())?;
    for doc in &page.documents {
        let metas: Vec<String> = doc.metas.iter().map(|(name, value)| format!("{name}={value}")).collect();
        let metas: Vec<String> = metas.iter().map(|m| escape(m).into_owned()).collect();
        writeln!(out, "{}\t{}\t{:?}\t{}", escape(&doc.uri), escape(or_dash(&doc.stamp)), doc.state, metas.join(","))?;
    }
    Ok(())
}

fn rm_connector(index: &Index, id: &str, out: &mut dyn Write) -> CliResult<()> {
    let connectors = Connectors::open(index)?;
    let info = connectors.get(id)?;
    let documents = index.count(&info.root, EnumerationMode::RecursiveDocuments)?;
    connectors.delete(id)?;
    writeln!(out, "removed connector {} ({}, root {}) and its {documents} documents", info.id, info.name, info.root)?;
    Ok(())
}

fn status(index: &Index, uri: &str, out: &mut dyn Write) -> CliResult<()> {
    let status = index.status(uri)?;
    if !status.exists() {
        return Err(format!("no document with URI {}{}", escape(uri), path_hint(uri)).into());
    }
    writeln!(out, "uri: {}", escape(&status.uri))?;
    writeln!(out, "stamp: {}", escape(or_dash(&status.stamp)))?;
    writeln!(out, "state: {:?}", status.state)?;
    writeln!(out, "serial: {}", status.serial)?;
    Ok(())
}

/// `--sort`: [`Sort`]'s text form (`META`, `-META`, `META:asc`,
/// `META:desc`), as the server's `sort=` reads it.
fn parse_sort(text: &str) -> Result<Sort, String> {
    text.parse().map_err(|e| match e {
        Error::InvalidInput { reason } => reason,
        e => e.to_string(),
    })
}

/// The part `search` cuts passages from when `--snippet` does not name one:
/// the directory source's `content`, else a `body` or `text` part, else the
/// only text part there is.
fn default_snippet_part(parts: &[String]) -> Option<&str> {
    let named = ["content", "body", "text"].into_iter().find(|name| parts.iter().any(|p| p == name));
    named.or(match parts {
        [only] => Some(only.as_str()),
        _ => None,
    })
}

/// What the library puts around a matched word in a snippet for the text
/// output: STX and ETX, control characters that text does not hold (every
/// other control character of a snippet is escaped), turned into bold or
/// brackets once the snippet is on one line.
const MARK_START: char = '\u{2}';
const MARK_END: char = '\u{3}';

/// `search --json`: the server's answer, field for field (a typed struct,
/// so that the fields keep this order and scores print as `f32`s).
#[derive(serde::Serialize)]
struct JsonAnswer {
    hits: Vec<JsonHit>,
    total: Option<u64>,
    facets: Vec<JsonFacet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    folders: Option<JsonFolders>,
}

/// A hit of [`JsonAnswer`].
#[derive(serde::Serialize)]
struct JsonHit {
    uri: String,
    stamp: String,
    score: f32,
    title: Option<String>,
    snippet: Option<String>,
}

/// A facet of [`JsonAnswer`]: `values` are `[value, count]` pairs.
#[derive(serde::Serialize)]
struct JsonFacet {
    name: String,
    values: Vec<(String, u64)>,
}

/// The folder counts of [`JsonAnswer`] (`--folders`).
#[derive(serde::Serialize)]
struct JsonFolders {
    root: String,
    values: Vec<JsonFolder>,
}

/// A folder of [`JsonFolders`]: the whole folder string and its hits.
#[derive(serde::Serialize)]
struct JsonFolder {
    folder: String,
    count: u64,
}

fn search(index: &Index, args: &SearchArgs, out: &mut dyn Write) -> CliResult<()> {
    let query = if args.strict { Query::parse(&args.query)? } else { Query::parse_natural(&args.query)? };
    let parts = index.text_parts();
    if let Some(field) = query.fields().into_iter().find(|f| !parts.iter().any(|p| p == f)) {
        return Err(unknown_part(field, &parts).into());
    }
    if args.count && args.facets.is_empty() && args.folders.is_none() {
        let total = index.search_count(&query)?;
        if args.json {
            writeln!(out, "{}", serde_json::json!({ "total": total }))?;
        } else {
            writeln!(out, "{total}")?;
        }
        return Ok(());
    }
    let snippet = match (&args.snippet, args.no_snippet) {
        (_, true) => None,
        (Some(part), false) if !parts.contains(part) => return Err(unknown_part(part, &parts).into()),
        (Some(part), false) => Some(part.clone()),
        (None, false) => default_snippet_part(&parts).map(str::to_string),
    };
    let highlight =
        if args.json { SearchOptions::default().highlight } else { (MARK_START.to_string(), MARK_END.to_string()) };
    let options = SearchOptions {
        limit: args.limit,
        offset: args.offset,
        sort: args.sort.clone().unwrap_or_default(),
        snippet,
        highlight,
        facets: args.facets.clone(),
        count: true,
        ..SearchOptions::default()
    };
    let folders = match &args.folders {
        Some(root) => {
            let (counts, _) = index.folder_facets(&query, root, args.folder_limit)?;
            let values = counts.into_iter().map(|(folder, count)| JsonFolder { folder, count });
            Some(JsonFolders { root: root.clone(), values: values.collect() })
        }
        None => None,
    };
    let found = index.search_with(&query, &options)?;
    if args.json {
        let answer = JsonAnswer {
            hits: found
                .hits
                .into_iter()
                .map(|h| JsonHit { uri: h.uri, stamp: h.stamp, score: h.score, title: h.title, snippet: h.snippet })
                .collect(),
            total: found.total,
            facets: found.facets.into_iter().map(|f| JsonFacet { name: f.name, values: f.values }).collect(),
            folders,
        };
        writeln!(out, "{}", serde_json::to_string(&answer)?)?;
        return Ok(());
    }
    if args.count {
        writeln!(out, "{}", found.total.unwrap_or_default())?;
    } else {
        let bold = io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let (on, off) = if bold { ("\x1b[1m", "\x1b[0m") } else { ("[", "]") };
        for (n, hit) in (args.offset + 1..).zip(&found.hits) {
            let uri = escape(&hit.uri);
            let line = format!("{uri}  score {:.4}  stamp {}", hit.score, escape(or_dash(&hit.stamp)));
            match &hit.title {
                Some(title) => writeln!(out, "{n}. {}\n   {line}", escape(&one_line(title)))?,
                None => writeln!(out, "{n}. {line}")?,
            }
            if let Some(snippet) = &hit.snippet {
                writeln!(out, "   {}", render_snippet(snippet, on, off))?;
            }
        }
        if let Some(total) = found.total {
            let shown = match found.hits.len() {
                0 => String::new(),
                len => format!(" ({} to {} shown)", args.offset + 1, args.offset + len),
            };
            writeln!(out, "total: {total}{shown}")?;
        }
    }
    for facet in &found.facets {
        let values = facet.values.iter().map(|(value, count)| (value.as_str(), *count));
        print_counts(out, &format!("facet {}:", escape(&facet.name)), values)?;
    }
    if let Some(folders) = &folders {
        let values = folders.values.iter().map(|f| (f.folder.as_str(), f.count));
        print_counts(out, &format!("folders under \"{}\":", escape(&folders.root)), values)?;
    }
    Ok(())
}

/// A facet's counts as `search` prints them: the heading, then a line a
/// value, its count first.
fn print_counts<'a>(out: &mut dyn Write, heading: &str, values: impl Iterator<Item = (&'a str, u64)>) -> CliResult<()> {
    writeln!(out, "{heading}")?;
    for (value, count) in values {
        writeln!(out, "  {count:>7}  {}", escape(value))?;
    }
    Ok(())
}

/// A snippet on one line: whitespace runs (line ends too) made one space,
/// other control characters escaped, and each highlighted word between
/// `on` and `off`.
fn render_snippet(snippet: &str, on: &str, off: &str) -> String {
    let mut shown = String::with_capacity(snippet.len() + 16);
    let mut space = false;
    for c in snippet.trim().chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if std::mem::take(&mut space) {
            shown.push(' ');
        }
        match c {
            MARK_START => shown.push_str(on),
            MARK_END => shown.push_str(off),
            c => shown.push_str(&escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    shown
}

/// A query's `part:` that no searchable document has, and the parts there are.
fn unknown_part(field: &str, parts: &[String]) -> String {
    let known = if parts.is_empty() {
        "no searchable document has any text part (refresh after pushing?)".to_string()
    } else {
        format!("the text parts are: {}", parts.join(", "))
    };
    format!("no searchable document has a text part {}; {known}", escape(field))
}

fn ls(index: &Index, root: &str, mode: EnumerationMode, out: &mut dyn Write) -> CliResult<()> {
    let mut any = false;
    for entry in index.enumerate(root, mode)? {
        match entry? {
            Entry::Document(doc) => {
                writeln!(out, "doc\t{}\t{}\t{:?}", escape(&doc.uri), escape(or_dash(&doc.stamp)), doc.state)?
            }
            Entry::Folder(folder) => writeln!(out, "dir\t{}", escape(&folder))?,
        }
        any = true;
    }
    // A folder exists while a document is under it: an empty listing of a
    // root is a folder that does not exist (like `ls` of a missing path).
    if !any && !root.is_empty() && index.count(root, EnumerationMode::RecursiveDocuments)? == 0 {
        return Err(format!("no documents under {}{}", escape(root), path_hint(root)).into());
    }
    Ok(())
}

/// `s` as one shell word: as it is when that is safe, else in single quotes.
fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+,:=@%".contains(&b)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// For a URI or root that looks like a file path: the URI an import gave
/// that path, which is probably what was meant.
fn path_hint(given: &str) -> String {
    if given.contains("://") || !(given.starts_with('/') || given.starts_with('.') || Path::new(given).exists()) {
        return String::new();
    }
    let absolute = std::fs::canonicalize(given).ok().and_then(|p| p.to_str().map(str::to_string));
    let path = absolute.unwrap_or_else(|| given.to_string());
    format!(" (imported files have file:// URIs: try file://{})", escape(&path))
}

/// `s` with control characters and backslashes escaped, so that one entry
/// stays on one line and tabs still separate columns: `\t`, `\n`, `\r`,
/// `\\`, and `\xNN` / `\u{NNNN}` for the others.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || c == '\\') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x100 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn rm(index: &Index, args: &RmArgs, out: &mut dyn Write) -> CliResult<()> {
    /// What to delete.
    enum Target<'a> {
        Uri(&'a str),
        Root(&'a str),
        Prefix(&'a str),
    }
    // clap's ArgGroup guarantees exactly one of the three.
    let target = match (&args.uri, &args.root_path, &args.prefix) {
        (Some(uri), None, None) => Target::Uri(uri),
        (None, Some(root), None) => Target::Root(root),
        (None, None, Some(prefix)) => Target::Prefix(prefix),
        _ => return Err("give exactly one of URI, --root-path and --prefix".into()),
    };
    // This process holds the index: nothing changes between the counts and
    // the deletion.
    let (what, count) = match target {
        Target::Uri(uri) => {
            if !index.status(uri)?.exists() {
                return Err(format!("no document with URI {}: nothing deleted{}", escape(uri), path_hint(uri)).into());
            }
            (escape(uri).into_owned(), 1)
        }
        Target::Root(root) if args.non_recursive => (
            format!("directly in root \"{}\"", escape(root)),
            index.count(root, EnumerationMode::NotRecursiveDocuments)?,
        ),
        Target::Root(root) => {
            (format!("under root \"{}\"", escape(root)), index.count(root, EnumerationMode::RecursiveDocuments)?)
        }
        // The library's own refusal, with the way to do it.
        Target::Prefix("") => return Err("an empty --prefix would delete everything: use --root-path '' --all".into()),
        Target::Prefix(prefix) => (format!("with prefix \"{}\"", escape(prefix)), count_prefix(index, prefix)?),
    };
    if !matches!(target, Target::Uri(_)) && !args.all {
        let total = index.count("", EnumerationMode::RecursiveDocuments)?;
        if count > 0 && count == total {
            return Err(format!(
                "this would delete every document of the index ({total}): add --all if that is what you mean"
            )
            .into());
        }
    }
    let serial = match target {
        Target::Uri(uri) => index.delete(uri)?,
        Target::Root(root) => index.delete_root_path(root, !args.non_recursive)?,
        Target::Prefix(prefix) => index.delete_with_prefix(prefix)?,
    };
    index.sync()?;
    match target {
        Target::Uri(_) => writeln!(out, "deleted 1 document: {what}, serial {serial} (synced)")?,
        _ => {
            let documents = if count == 1 { "document" } else { "documents" };
            writeln!(out, "deleted {count} {documents} {what}, serial {serial} (synced)")?
        }
    }
    Ok(())
}

/// How many URIs start with `prefix`: those of the folder the prefix ends
/// in that match (a raw prefix is not a folder).
fn count_prefix(index: &Index, prefix: &str) -> CliResult<u64> {
    let folder = &prefix[..prefix.rfind('/').map_or(0, |i| i + 1)];
    let mut count = 0;
    for entry in index.enumerate(folder, EnumerationMode::RecursiveDocuments)? {
        if let Entry::Document(doc) = entry? {
            if doc.uri.starts_with(prefix) {
                count += 1;
            } else if doc.uri.as_str() > prefix {
                break;
            }
        }
    }
    Ok(count)
}

fn checkpoint(index: &Index, command: CheckpointCommand, out: &mut dyn Write) -> CliResult<()> {
    match command {
        CheckpointCommand::Get { name } => match index.checkpoint(&name)? {
            Some(checkpoint) => writeln!(out, "{}", checkpoint.value)?,
            None => return Err(format!("no checkpoint named {name:?}").into()),
        },
        CheckpointCommand::Set { name, value } => {
            let serial = index.set_checkpoint(&name, &value)?;
            index.sync()?;
            writeln!(out, "checkpoint {name}: serial {serial} (synced)")?;
        }
        CheckpointCommand::Ls => {
            for Checkpoint { name, value, serial, state } in index.checkpoints()? {
                writeln!(out, "{name}\t{value}\t{serial}\t{state:?}")?;
            }
        }
    }
    Ok(())
}

/// Empty stamps would make a column vanish.
fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snippet_is_one_line_with_its_highlights_rendered() {
        let snippet = "…the \u{2}quarterly\u{3}\n\n\treport,\u{1b}[31m \u{2}due\u{3} now…";
        assert_eq!(render_snippet(snippet, "[", "]"), "…the [quarterly] report,\\x1b[31m [due] now…");
        assert_eq!(
            render_snippet(snippet, "\x1b[1m", "\x1b[0m"),
            "…the \x1b[1mquarterly\x1b[0m report,\\x1b[31m \x1b[1mdue\x1b[0m now…"
        );
        assert_eq!(render_snippet("  plain  ", "[", "]"), "plain");
    }

    #[test]
    fn the_default_snippet_part() {
        let parts = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(default_snippet_part(&parts(&["body", "content", "title"])), Some("content"));
        assert_eq!(default_snippet_part(&parts(&["body", "title"])), Some("body"));
        assert_eq!(default_snippet_part(&parts(&["abstract"])), Some("abstract"));
        assert_eq!(default_snippet_part(&parts(&["abstract", "title"])), None);
        assert_eq!(default_snippet_part(&[]), None);
    }
}
