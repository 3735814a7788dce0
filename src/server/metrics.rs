//! `GET /metrics`: the Prometheus text format (version 0.0.4), through the
//! `metrics` facade and its Prometheus exporter.
//!
//! Recorded as they happen: requests by route and status and their latency
//! (histogram), syncs and refreshes the server ran and their latency.
//! Read from the library at each scrape: per open index, its documents,
//! watermarks, bytes written and whether it takes writes; the live
//! sources' import jobs by state.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::error::ApiResult;
use super::{blocking, AppState};
use crate::connector::JobState;
use crate::{EnumerationMode, Index, Serial};

/// Latency buckets, in seconds: 0.5 ms to about 16 s.
const BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.0, 4.0, 8.0, 16.0];

/// Every import job state, so that a state with no job reads 0.
const JOB_STATES: [JobState; 7] = [
    JobState::NotYetRun,
    JobState::Running,
    JobState::Waiting,
    JobState::Done,
    JobState::Error,
    JobState::Aborting,
    JobState::Aborted,
];

/// The process's recorder, installed once (a second server in the same
/// process shares it).
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().set_buckets(&BUCKETS).ok()?.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

/// Installs the recorder; called when the server starts.
pub(crate) fn install() {
    let _ = handle();
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("pushdex_http_requests_total", "HTTP requests answered, by method, route and status");
    describe_histogram!(
        "pushdex_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency, by method and route"
    );
    describe_counter!("pushdex_syncs_total", "Syncs the server ran (wait=synced, sync commands), by index");
    describe_histogram!(
        "pushdex_sync_duration_seconds",
        Unit::Seconds,
        "Sync latency (group commit shares fsyncs), by index"
    );
    describe_counter!("pushdex_refreshes_total", "Refreshes the server ran, by index");
    describe_histogram!("pushdex_refresh_duration_seconds", Unit::Seconds, "Refresh latency, by index");
    describe_gauge!("pushdex_indexes_open", "Indexes open in this server");
    describe_gauge!("pushdex_index_documents", "Documents in the index (its current view)");
    describe_gauge!("pushdex_index_serial", "The index's watermarks: last (Pushed), synced, searchable");
    describe_counter!(
        "pushdex_index_bytes_written_total",
        Unit::Bytes,
        "Bytes written to the index's files since it was opened"
    );
    describe_gauge!("pushdex_index_takes_writes", "1 while the index takes writes, 0 once its writer stopped");
    describe_gauge!("pushdex_import_jobs", "Live-source import jobs, by state");
}

/// Middleware: counts every request by method, route (the pattern, never
/// the path, so that URIs and names stay out of the labels) and status, and
/// records its latency.
pub(crate) async fn record_request(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    histogram!("pushdex_http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    counter!("pushdex_http_requests_total", "method" => method, "route" => route, "status" => status).increment(1);
    response
}

/// The index's name: its directory's.
fn name_of(index: &Index) -> String {
    index.path().file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// `index.sync()`, counted and timed.
pub(crate) fn sync(index: &Index) -> crate::Result<Serial> {
    barrier(index, Index::sync, "pushdex_syncs_total", "pushdex_sync_duration_seconds")
}

/// `index.refresh()`, counted and timed.
pub(crate) fn refresh(index: &Index) -> crate::Result<Serial> {
    barrier(index, Index::refresh, "pushdex_refreshes_total", "pushdex_refresh_duration_seconds")
}

fn barrier(
    index: &Index,
    call: fn(&Index) -> crate::Result<Serial>,
    count: &'static str,
    latency: &'static str,
) -> crate::Result<Serial> {
    let started = Instant::now();
    let result = call(index);
    let name = name_of(index);
    histogram!(latency, "index" => name.clone()).record(started.elapsed().as_secs_f64());
    counter!(count, "index" => name).increment(1);
    result
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(state): State<AppState>) -> ApiResult<Response> {
    let text = blocking(move || {
        let open = state.indexes.open_indexes();
        gauge!("pushdex_indexes_open").set(open.len() as f64);
        for (name, index) in open {
            let marks = index.watermarks();
            for (which, serial) in [("last", marks.last), ("synced", marks.synced), ("searchable", marks.searchable)] {
                gauge!("pushdex_index_serial", "index" => name.clone(), "watermark" => which).set(serial.0 as f64);
            }
            if let Ok(documents) = index.count("", EnumerationMode::RecursiveDocuments) {
                gauge!("pushdex_index_documents", "index" => name.clone()).set(documents as f64);
            }
            counter!("pushdex_index_bytes_written_total", "index" => name.clone()).absolute(index.bytes_written());
            let takes_writes = if index.health().takes_writes() { 1.0 } else { 0.0 };
            gauge!("pushdex_index_takes_writes", "index" => name).set(takes_writes);
        }
        let mut jobs = [0u64; JOB_STATES.len()];
        if let Some(connectors) = state.connectors.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            for info in connectors.list() {
                if let Ok(status) = connectors.job_status(&info.id) {
                    if let Some(i) = JOB_STATES.iter().position(|s| *s == status.status) {
                        jobs[i] += 1;
                    }
                }
            }
        }
        for (job_state, n) in JOB_STATES.iter().zip(jobs) {
            gauge!("pushdex_import_jobs", "state" => job_state.as_str()).set(n as f64);
        }
        Ok(handle().map(|h| {
            h.run_upkeep();
            h.render()
        }))
    })
    .await?;
    let Some(text) = text else {
        let why = "metrics are off: another metrics recorder was installed in this process first";
        return Ok((StatusCode::SERVICE_UNAVAILABLE, why).into_response());
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}
