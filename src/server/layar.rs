//! The live-source routes: `/layar/liveSource...` (HTTP.md, part 2), so
//! that the platform guide's Python `requests` snippets work unchanged. The
//! live sources live in the index named `default`, as managed connectors.

use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
#[allow(unused_imports)]
use super::openapi::*;
use super::{blocking, read_body, AppState};
use crate::connector::{ConnectorInfo, Connectors, JobStatus, RunMode, SourceKind};

/// The index that holds the live sources.
pub const LIVE_SOURCE_INDEX: &str = "default";

/// The longest time between two scans of a continuous source: a year.
const MAX_SCAN_INTERVAL_SECONDS: u64 = 366 * 24 * 3600;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/layar/liveSource", post(create).get(list))
        .route("/layar/liveSource/{id}", get(one).delete(delete))
        .route("/layar/liveSource/{id}/jobStatus", get(job_status))
        .route("/layar/liveSource/{id}/importStatus", get(import_status))
        .route("/layar/liveSource/{id}/sourceDocuments", get(source_documents))
        .route("/layar/liveSource/{id}/import", post(import))
        .route("/layar/liveSource/{id}/stop", post(stop))
}

/// The connectors of the `default` index, opened on first use; `None`
/// while no live source was ever created (the index is created only by the
/// first one, so that reads and refused requests leave nothing behind).
fn open_connectors(state: &AppState) -> ApiResult<Option<Connectors>> {
    let slot = || state.connectors.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(connectors) = slot().as_ref() {
        return Ok(Some(connectors.clone()));
    }
    // Not under the slot's lock: a first live source being created holds
    // the indexes' lock, then takes the slot's.
    let Some(index) = state.indexes.get(LIVE_SOURCE_INDEX)? else { return Ok(None) };
    let mut slot = slot();
    if let Some(connectors) = slot.as_ref() {
        return Ok(Some(connectors.clone()));
    }
    let connectors = Connectors::open(&index)?;
    *slot = Some(connectors.clone());
    Ok(Some(connectors))
}

/// The connectors, for a route that names a live source: `404` when none
/// was ever created.
fn connectors(state: &AppState) -> ApiResult<Connectors> {
    open_connectors(state)?.ok_or_else(|| ApiError::not_found("no such live source: none has been created"))
}

/// The JSON body, if any (an empty body is `{}`); its `"id"`, when given,
/// must be the path's.
async fn body_json(state: &AppState, request: Request, id: Option<&str>) -> ApiResult<Value> {
    let body = read_body(request, state.max_body_bytes).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("the body is not JSON: {e}")))?;
    if let (Some(id), Some(given)) = (id, value.get("id")) {
        if given.as_str() != Some(id) {
            return Err(ApiError::invalid(format!("the body's id {given} is not the path's {id:?}")));
        }
    }
    Ok(value)
}

fn connector_json(info: &ConnectorInfo) -> Value {
    let url = match &info.kind {
        SourceKind::Directory { path } => format!("file://{path}"),
        SourceKind::Custom => info.root.clone(),
    };
    let (run_mode, interval) = match info.mode {
        RunMode::Once => ("SCAN_ONCE", None),
        RunMode::Continuous { interval } => ("CONTINUOUS", Some(interval.as_secs())),
    };
    let mut value = json!({
        "id": info.id,
        "name": info.name,
        "description": info.description,
        "liveSourceType": "FILE_SYSTEM",
        "url": url,
        "runMode": run_mode,
        "root": info.root,
        "created": info.created,
    });
    if let Some(interval) = interval {
        value["scanIntervalSeconds"] = json!(interval);
    }
    value
}

fn job_json(status: &JobStatus) -> Value {
    serde_json::to_value(status).unwrap_or_else(|e| json!({ "error": e.to_string() }))
}

/// The directory of a `FILE_SYSTEM` source, which must lie under one of the
/// server's `--source-root`s (after `..` and symlinks are resolved).
fn source_dir(state: &AppState, url: &str) -> ApiResult<PathBuf> {
    // file:///dir, file://localhost/dir (percent-encoded, as a file URL
    // is), or a plain absolute path.
    let path = match url.strip_prefix("file://") {
        Some(rest) => {
            let rest = rest.strip_prefix("localhost").unwrap_or(rest);
            let bytes: Vec<u8> = percent_encoding::percent_decode_str(rest).collect();
            String::from_utf8(bytes).map_err(|_| ApiError::invalid(format!("url {url:?}: not UTF-8 once decoded")))?
        }
        None => url.to_string(),
    };
    let path = path.as_str();
    if !path.starts_with('/') {
        return Err(ApiError::invalid(format!("url {url:?}: file:///absolute/dir or /absolute/dir")));
    }
    let dir = std::fs::canonicalize(path)
        .map_err(|e| ApiError::invalid(format!("url {url:?}: the directory cannot be opened: {e}")))?;
    if !state.source_roots.iter().any(|root| dir.starts_with(root)) {
        let why = if state.source_roots.is_empty() {
            "the server has no --source-root, so no FILE_SYSTEM source may be created".to_string()
        } else {
            format!("{} lies under no --source-root", dir.display())
        };
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", why));
    }
    Ok(dir)
}

#[utoipa::path(post, path = "/layar/liveSource", tag = "layar", summary = "Create a live source (its first import starts)", request_body = LiveSourceCreate, responses((status = 201, body = LiveSource), Errors))]
pub(super) async fn create(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let body = body_json(&state, request, None).await?;
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    match text("liveSourceType").as_deref() {
        Some(t) if t.eq_ignore_ascii_case("FILE_SYSTEM") => {}
        other => return Err(ApiError::invalid(format!("liveSourceType {other:?}: only FILE_SYSTEM is served"))),
    }
    let url = text("url").ok_or_else(|| ApiError::invalid("url is required"))?;
    let mode = match text("runMode").map(|m| m.to_ascii_uppercase()).as_deref() {
        None | Some("SCAN_ONCE") => RunMode::Once,
        Some("CONTINUOUS") => {
            let secs = match body.get("scanIntervalSeconds") {
                None | Some(Value::Null) => 60,
                Some(v) => v.as_u64().filter(|s| (1..=MAX_SCAN_INTERVAL_SECONDS).contains(s)).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "scanIntervalSeconds {v}: a whole number of seconds, 1 to {MAX_SCAN_INTERVAL_SECONDS}"
                    ))
                })?,
            };
            RunMode::Continuous { interval: Duration::from_secs(secs) }
        }
        Some(other) => return Err(ApiError::invalid(format!("runMode {other:?}: SCAN_ONCE or CONTINUOUS"))),
    };
    let dir = source_dir(&state, &url)?;
    let (name, description) = (text("name"), text("description").unwrap_or_default());
    blocking(move || {
        let create = |connectors: &Connectors| -> ApiResult<ConnectorInfo> {
            let info = connectors.create_directory_described(&dir, name.as_deref(), &description, mode)?;
            connectors.start_import(&info.id)?;
            Ok(info)
        };
        let info = match open_connectors(&state)? {
            Some(connectors) => create(&connectors)?,
            // The first live source creates the index `default`, unless it
            // is refused.
            None => state.indexes.create_or_use(LIVE_SOURCE_INDEX, |index, _| {
                let mut slot = state.connectors.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(connectors) = slot.as_ref() {
                    return create(connectors);
                }
                let connectors = Connectors::open(index)?;
                let info = create(&connectors)?;
                *slot = Some(connectors);
                Ok(info)
            })?,
        };
        Ok((StatusCode::CREATED, Json(connector_json(&info))).into_response())
    })
    .await
}

#[utoipa::path(get, path = "/layar/liveSource", tag = "layar", summary = "Every live source", responses((status = 200, body = Vec<LiveSource>), Errors))]
pub(super) async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    blocking(move || {
        let list = open_connectors(&state)?.map(|c| c.list()).unwrap_or_default();
        Ok(Json(Value::Array(list.iter().map(connector_json).collect())))
    })
    .await
}

#[utoipa::path(get, path = "/layar/liveSource/{id}", tag = "layar", summary = "One live source", params(SourceId), request_body(content = Option<SourceRequest>, description = "Optional; the guide sends {\"id\": ID}"), responses((status = 200, body = LiveSource), Errors))]
pub(super) async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<Json<Value>> {
    body_json(&state, request, Some(&id)).await?;
    blocking(move || Ok(Json(connector_json(&connectors(&state)?.get(&id)?)))).await
}

#[utoipa::path(get, path = "/layar/liveSource/{id}/jobStatus", tag = "layar", summary = "Its import job", params(SourceId), request_body(content = Option<SourceRequest>, description = "Optional; the guide sends {\"id\": ID}"), responses((status = 200, body = JobStatus), Errors))]
pub(super) async fn job_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<Json<Value>> {
    body_json(&state, request, Some(&id)).await?;
    blocking(move || Ok(Json(job_json(&connectors(&state)?.job_status(&id)?)))).await
}

#[utoipa::path(get, path = "/layar/liveSource/{id}/importStatus", tag = "layar", summary = "Its import, in words and percent", params(SourceId), request_body(content = Option<SourceRequest>, description = "Optional; the guide sends {\"id\": ID}"), responses((status = 200, body = ImportStatus), Errors))]
pub(super) async fn import_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<Json<Value>> {
    body_json(&state, request, Some(&id)).await?;
    blocking(move || {
        let status = connectors(&state)?.import_status(&id)?;
        Ok(Json(serde_json::to_value(&status).map_err(|e| ApiError::invalid(e.to_string()))?))
    })
    .await
}

#[utoipa::path(get, path = "/layar/liveSource/{id}/sourceDocuments", tag = "layar", summary = "A page of its documents, in URI order", params(SourceId, PageParams), request_body(content = Option<SourceRequest>, description = "Optional; the guide sends {\"id\": ID}"), responses((status = 200, body = SourcePageJson), Errors))]
pub(super) async fn source_documents(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> ApiResult<Json<Value>> {
    let body = body_json(&state, request, Some(&id)).await?;
    let query: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    // The query string wins over the body.
    let number = |key: &str, default: u64| -> ApiResult<u64> {
        if let Some((_, v)) = query.iter().find(|(k, _)| k == key) {
            return v.parse().map_err(|_| ApiError::invalid(format!("{key}={v:?}: a number")));
        }
        match body.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| ApiError::invalid(format!("{key}: a number"))),
        }
    };
    let (rows, start) = (number("rows", 50)?, number("start", 0)?);
    blocking(move || {
        let page = connectors(&state)?.source_documents(&id, usize::try_from(rows).unwrap_or(usize::MAX), start)?;
        let documents: Vec<Value> = page
            .documents
            .iter()
            .map(|d| {
                let mut metadata = serde_json::Map::new();
                for (name, value) in &d.metas {
                    let entry = metadata.entry(name.clone()).or_insert_with(|| json!([]));
                    if let Value::Array(values) = entry {
                        values.push(json!(value));
                    }
                }
                json!({
                    "id": d.uri,
                    "uri": d.uri,
                    "name": d.uri.rsplit('/').next().unwrap_or_default(),
                    "stamp": d.stamp,
                    "state": format!("{:?}", d.state),
                    "metadata": metadata,
                })
            })
            .collect();
        Ok(Json(json!({ "documents": documents, "start": page.start, "rows": rows, "total": page.total })))
    })
    .await
}

#[utoipa::path(post, path = "/layar/liveSource/{id}/import", tag = "layar", summary = "Start an import", params(SourceId), request_body(content = Option<SourceRequest>, description = "Optional; the guide sends {\"id\": ID}"), responses((status = 202, body = JobStatus), Errors))]
pub(super) async fn import(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    body_json(&state, request, Some(&id)).await?;
    blocking(move || {
        let connectors = connectors(&state)?;
        if connectors.job_status(&id)?.status.is_active() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("live source {id} has an import under way: stop it first, or wait"),
            ));
        }
        // Two imports asked for at once: the one that loses the race is a
        // conflict too, not a bad request.
        let status = connectors.start_import(&id).map_err(|e| match e {
            crate::Error::InvalidInput { reason } if connectors.job_status(&id).is_ok_and(|s| s.status.is_active()) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", reason)
            }
            e => e.into(),
        })?;
        Ok((StatusCode::ACCEPTED, Json(job_json(&status))).into_response())
    })
    .await
}

#[utoipa::path(post, path = "/layar/liveSource/{id}/stop", tag = "layar", summary = "Stop its import at a batch boundary", params(SourceId), request_body(content = Option<SourceRequest>, description = "Optional; the guide sends {\"id\": ID}"), responses((status = 202, body = JobStatus), Errors))]
pub(super) async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    body_json(&state, request, Some(&id)).await?;
    blocking(move || {
        let status = connectors(&state)?.stop(&id)?;
        Ok((StatusCode::ACCEPTED, Json(job_json(&status))).into_response())
    })
    .await
}

#[utoipa::path(delete, path = "/layar/liveSource/{id}", tag = "layar", summary = "Delete a live source and its documents (irreversible)", params(SourceId), request_body(content = Option<SourceRequest>, description = "Optional; the guide sends {\"id\": ID}"), responses((status = 204, description = "Deleted with its documents, durably"), Errors))]
pub(super) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<StatusCode> {
    body_json(&state, request, Some(&id)).await?;
    // Durable before the answer: `Connectors::delete` syncs.
    blocking(move || {
        connectors(&state)?.delete(&id)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
