//! `pushdex serve`: the library behind HTTP (`../shared/HTTP.md`).
//!
//! Thin by design: each dialect translates requests into calls of the
//! public library API and results into responses; errors become statuses in
//! one table ([`error`]). The library's calls block (a sync waits for an
//! fsync), so handlers run them on tokio's blocking pool, never on the
//! async workers; concurrent syncs then share fsyncs through the library's
//! group commit.
//!
//! This first part serves the process (token, data directory, graceful
//! stop, request log, in-flight and body limits), authentication, health,
//! the Push API's `/papi/4` commands, and the `/v1` JSON API's indexes,
//! documents, statuses, barriers and search, and the search page at `/`
//! (`page.rs`). The live sources' `/layar`
//! and the rest of `/v1` come next.

mod auth;
mod checkpoints;
#[cfg(feature = "cluster")]
mod cluster;
mod error;
mod indexes;
mod layar;
mod metrics;
mod openapi;
mod page;
mod papi;
#[cfg(feature = "cluster")]
mod replicas;
mod v1;
mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;

pub use error::ApiError;
use error::ApiResult;
use indexes::Indexes;

/// How `pushdex serve` was asked to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The data directory: one index per name in `DATA/indexes/<name>/`.
    pub data: PathBuf,
    /// Where to listen (port 0: a free port, printed on start).
    pub listen: SocketAddr,
    /// The API token; `None`: `DATA/token`, created if missing.
    pub token: Option<String>,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The directories that `FILE_SYSTEM` live sources may read (they must
    /// be one of them or lie under one).
    pub source_roots: Vec<PathBuf>,
    /// When set, every index with operations that are not Searchable yet is
    /// refreshed at this interval; otherwise states move only on request.
    pub refresh_interval: Option<Duration>,
    /// `--cluster`: a node of a cluster (`../shared/CLUSTER.md`); `None`:
    /// one server alone.
    pub cluster: Option<ClusterConfig>,
}

/// `--cluster` and the options that go with it.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// etcd's endpoints, comma-separated (`http://127.0.0.1:2379`).
    pub etcd: String,
    /// This node's id (`--node-id`).
    pub node_id: String,
    /// `--store`: a directory, or `s3://bucket/prefix`.
    pub store: String,
    /// `--cluster-prefix` (default `/pushdex`).
    pub prefix: String,
    /// `--lease-ttl` (default 3 s).
    pub lease_ttl: Duration,
    /// `--advertise`: the `host:port` other nodes reach this one at
    /// (default: the address it listens on, `127.0.0.1` for an
    /// unspecified IP).
    pub advertise: Option<String>,
}

/// `pushdex cluster status`: what `GET /v1/cluster` answers, read from the
/// cluster's etcd.
///
/// # Errors
/// When etcd does not answer, or in a build without the `cluster` feature.
pub fn cluster_status(endpoints: &str, prefix: &str) -> crate::Result<serde_json::Value> {
    #[cfg(feature = "cluster")]
    return Ok(cluster::status_from_etcd(endpoints, prefix)?);
    #[cfg(not(feature = "cluster"))]
    {
        let _ = (endpoints, prefix);
        Err(crate::Error::Io(without_cluster()))
    }
}

/// The error of `--cluster` in a build without the `cluster` feature.
#[cfg(not(feature = "cluster"))]
fn without_cluster() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "this pushdex was built without the cluster feature \
         (cargo build --release --features cluster; it needs protoc: scripts/provision)",
    )
}

/// The default `--max-body-bytes`: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;
/// Requests served at once; more get `429` with `Retry-After`.
pub const MAX_IN_FLIGHT: usize = 512;
/// How long a graceful stop lets requests in flight finish.
const GRACE: Duration = Duration::from_secs(10);

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    token: Arc<str>,
    indexes: Arc<Indexes>,
    max_body_bytes: usize,
    in_flight: Arc<Semaphore>,
    checkpoints: Arc<checkpoints::CheckpointHistory>,
    /// The live sources' connectors (of the index `default`), once used.
    connectors: Arc<std::sync::Mutex<Option<crate::connector::Connectors>>>,
    /// `--source-root`s, canonical.
    source_roots: Arc<Vec<PathBuf>>,
    /// This node's part in a cluster (`--cluster`).
    #[cfg(feature = "cluster")]
    cluster: Option<Arc<cluster::Cluster>>,
}

impl AppState {
    /// The index a search of `name` reads: on a cluster node, the replica
    /// of its published manifest (`replicas`); else the index itself.
    fn searched(&self, name: &str) -> ApiResult<crate::Index> {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &self.cluster {
            indexes::check_name(name)?;
            return cluster.searched(name);
        }
        self.indexes.existing(name)
    }
}

/// Runs `f` (which blocks: the library's calls) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io", format!("the request failed: {e}")))
    })
}

/// A session id a request names (`PAPI_session`, `X-Push-Session`) must be
/// the index's current one: `409 session_mismatch` otherwise.
fn check_session(index: &crate::Index, given: &str) -> ApiResult<()> {
    if given.trim().parse::<u64>().ok() != Some(index.session_id().0) {
        return Err(ApiError::session(index.session_id().0, given));
    }
    Ok(())
}

/// How many entries `enumerate_synced` yields (the library counts only the
/// current view).
fn count_synced(index: &crate::Index, root: &str, mode: crate::EnumerationMode) -> ApiResult<u64> {
    let mut n = 0u64;
    for entry in index.enumerate_synced(root, mode)? {
        entry?;
        n += 1;
    }
    Ok(n)
}

/// The token from `--token`, or `DATA/token` (created, random, mode 0600).
fn load_token(config: &Config) -> std::io::Result<String> {
    if let Some(token) = &config.token {
        if token.len() < 16 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "a token has at least 16 characters"));
        }
        return Ok(token.clone());
    }
    let path = config.data.join("token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_string();
        if !token.is_empty() {
            eprintln!("token: {} (from that file)", path.display());
            return Ok(token);
        }
        // An empty file (a crash while it was written): made again.
        std::fs::remove_file(&path)?;
    }
    let token = random_token()?;
    write_private(&path, &token)?;
    eprintln!("token: created {}", path.display());
    Ok(token)
}

/// 24 random bytes in hex.
fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Serves until SIGINT or SIGTERM, then stops gracefully: stops accepting,
/// lets requests in flight finish (at most 10 s), closes every index (each
/// syncs).
///
/// # Errors
/// When the data directory, the token or the address cannot be had, and
/// when an index fails to close.
pub fn serve(config: Config) -> crate::Result<()> {
    std::fs::create_dir_all(&config.data)?;
    #[cfg(not(feature = "cluster"))]
    if config.cluster.is_some() {
        return Err(crate::Error::Io(without_cluster()));
    }
    // Bound before anything else: a cluster node registers its address.
    let listener = std::net::TcpListener::bind(config.listen)?;
    listener.set_nonblocking(true)?;
    #[cfg(feature = "cluster")]
    let cluster = match &config.cluster {
        Some(cluster_config) => {
            let mut address = listener.local_addr()?;
            if address.ip().is_unspecified() {
                address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let address = cluster_config.advertise.clone().unwrap_or_else(|| address.to_string());
            Some(cluster::Cluster::join(cluster_config, &config.data, address)?)
        }
        None => None,
    };
    #[cfg(feature = "cluster")]
    let (token, indexes) = match &cluster {
        Some(cluster) => {
            let token = match &config.token {
                Some(_) => load_token(&config)?,
                None => {
                    let token = cluster.token(&random_token()?)?;
                    eprintln!("token: the cluster's (from etcd)");
                    token
                }
            };
            let backend = Box::new(cluster::ClusterBackend(cluster.clone()));
            (token, Arc::new(Indexes::with_backend(backend)))
        }
        None => (load_token(&config)?, Arc::new(Indexes::new(&config.data)?)),
    };
    #[cfg(not(feature = "cluster"))]
    let (token, indexes) = (load_token(&config)?, Arc::new(Indexes::new(&config.data)?));
    #[cfg(feature = "cluster")]
    if let Some(cluster) = &cluster {
        cluster.start(indexes.clone());
    }
    #[cfg(feature = "cluster")]
    let cluster_for_stop = cluster.clone();
    let mut source_roots = Vec::new();
    for root in &config.source_roots {
        source_roots.push(
            std::fs::canonicalize(root)
                .map_err(|e| std::io::Error::new(e.kind(), format!("--source-root {}: {e}", root.display())))?,
        );
    }
    let connectors = Arc::new(std::sync::Mutex::new(None));
    let state = AppState {
        token: token.into(),
        indexes: indexes.clone(),
        max_body_bytes: config.max_body_bytes,
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        checkpoints: Arc::default(),
        connectors: connectors.clone(),
        source_roots: Arc::new(source_roots),
        #[cfg(feature = "cluster")]
        cluster,
    };
    let refreshed = indexes.clone();
    metrics::install();
    // Every request in flight may hold a blocking thread (a sync, a
    // streamed enumeration): room for all of them, and the timer's.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().max_blocking_threads(MAX_IN_FLIGHT + 64).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        // Registered before the line is printed: a SIGTERM sent as soon as
        // the line is read stops the server gracefully.
        let stop = stop_signal()?;
        // The printed line is the truth (port 0 picks a free port).
        println!("pushdex serve: listening on http://{}", listener.local_addr()?);
        if let Some(every) = config.refresh_interval {
            tokio::spawn(refresh_every(refreshed, every));
        }
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            stop.await;
            let _ = stopping.send(true);
        });
        let signalled = move |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let app = router(state);
        let server = axum::serve(listener, app).with_graceful_shutdown(signalled(stopped.clone()));
        let mut server = tokio::spawn(async move { server.await });
        // Requests in flight get GRACE once the signal came.
        tokio::select! {
            result = &mut server => result.map_err(std::io::Error::other)??,
            () = async { signalled(stopped).await; tokio::time::sleep(GRACE).await } => {
                eprintln!("pushdex serve: requests still in flight after {GRACE:?}; stopping anyway");
            }
        }
        std::io::Result::Ok(())
    })?;
    // The requests' own work ended with them (or GRACE is spent): what is
    // left gets a moment, not another GRACE.
    runtime.shutdown_timeout(Duration::from_secs(1));
    // Import jobs stop at a batch boundary (dropping the connectors joins
    // them) before the indexes close.
    drop(connectors.lock().unwrap_or_else(|e| e.into_inner()).take());
    let closed = indexes.close_all();
    #[cfg(feature = "cluster")]
    if let Some(cluster) = &cluster_for_stop {
        cluster.leave();
    }
    closed
}

/// `--refresh-interval`: refreshes, at each tick, every open index whose
/// newest operation is not Searchable yet (one at a time, off the async
/// workers). A failure is logged and tried again at the next tick; the
/// index's own requests report it too.
async fn refresh_every(indexes: Arc<Indexes>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        for (name, index) in indexes.open_indexes() {
            let marks = index.watermarks();
            if marks.searchable >= marks.last {
                continue;
            }
            let refreshed = tokio::task::spawn_blocking(move || metrics::refresh(&index)).await;
            match refreshed {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => eprintln!("pushdex serve: refreshing index {name}: {e}"),
                Err(e) => eprintln!("pushdex serve: refreshing index {name}: {e}"),
            }
        }
    }
}

/// A future that resolves at SIGINT or SIGTERM; the handlers are
/// registered when this returns.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

fn router(state: AppState) -> Router {
    let router = Router::new();
    #[cfg(feature = "cluster")]
    let router = router.route("/v1/cluster", get(cluster::status));
    let router = router
        .route("/", get(page::page))
        .route("/health/live", get(|| async { "OK" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics::scrape))
        .route("/openapi.json", get(openapi::openapi))
        .merge(v1::routes().route_layer(middleware::from_fn_with_state(state.clone(), v1::session_guard)))
        .merge(papi::routes())
        .merge(layar::routes())
        .fallback(|| async { ApiError::not_found("no such route") });
    // A cluster node serves or forwards, once the request is let in.
    #[cfg(feature = "cluster")]
    let router = router.layer(middleware::from_fn_with_state(state.clone(), cluster::route));
    router
        // Layers run outermost (last added) first: the log line, metrics,
        // JSON errors, panics, the time limit, then authentication before
        // any limit, then the in-flight and body limits.
        .layer(middleware::from_fn_with_state(state.clone(), limit_body))
        .layer(middleware::from_fn_with_state(state.clone(), limit_in_flight))
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(middleware::from_fn(time_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn(metrics::record_request))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// `200` when every index of the data directory opened and none has a
/// stopped writer; `503` otherwise, naming each index and why.
async fn ready(State(state): State<AppState>) -> Response {
    let checked = blocking(move || Ok(state.indexes.readiness())).await;
    match checked {
        Ok((indexes, problems)) if problems.is_empty() => {
            axum::Json(serde_json::json!({ "status": "ready", "indexes": indexes })).into_response()
        }
        Ok((_, problems)) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", problems.join("; ")).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The longest a request may take before it is answered `503` (its
/// operation, already handed to the library, may still complete: its
/// status tells).
const REQUEST_TIME_LIMIT: Duration = Duration::from_secs(600);

/// `503 unavailable` for a request that takes longer than
/// [`REQUEST_TIME_LIMIT`] (a response's streamed body is not limited).
async fn time_limit(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIME_LIMIT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the request took longer than {REQUEST_TIME_LIMIT:?}; its operation may still complete: check its status"),
        )
        .into_response(),
    }
}

/// A handler that panicked (a bug) answers `500` in JSON like every error;
/// the server goes on.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string());
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("the request failed on a bug: {what}"))
        .into_response()
}

/// One line per request on stderr: method, path (no query string), status,
/// milliseconds. Never a token or a body.
async fn log_request(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    eprintln!("{method} {path} {} {}ms", response.status().as_u16(), started.elapsed().as_millis());
    response
}

/// `429` with `Retry-After` beyond [`MAX_IN_FLIGHT`] requests at once.
async fn limit_in_flight(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Ok(permit) = state.in_flight.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!("more than {MAX_IN_FLIGHT} requests in flight: retry"),
        )
        .into_response();
    };
    // A streamed body (enumerate) is in flight until its last byte: the
    // permit goes with the body.
    use http_body_util::BodyExt;
    next.run(request).await.map(|body| {
        axum::body::Body::new(body.map_frame(move |frame| {
            let _in_flight = &permit;
            frame
        }))
    })
}

/// `413` before the body is read when its Content-Length says it is over
/// the limit (bodies without one are cut at the limit as they are read).
async fn limit_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return ApiError::too_large(state.max_body_bytes).into_response();
    }
    next.run(request).await
}

/// The request's body, at most `limit` bytes (`413` past it; `400` for a
/// body that breaks off or is malformed).
async fn read_body(request: Request, limit: usize) -> ApiResult<axum::body::Bytes> {
    axum::body::to_bytes(request.into_body(), limit).await.map_err(|e| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(error) = cause {
            if error.is::<http_body_util::LengthLimitError>() {
                return ApiError::too_large(limit);
            }
            cause = error.source();
        }
        ApiError::invalid(format!("the request body could not be read: {e}"))
    })
}
