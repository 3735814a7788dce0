//! The JSON API: `/v1/...` (HTTP.md, part 3), in today's conventions.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
#[allow(unused_imports)]
use super::openapi::*;
use super::wire::{Base64, JsonDocument, MetaValues};
use super::{blocking, read_body, AppState};
use crate::{
    Document, Entry, EnumerationMode, Error, Index, Query, SearchOptions, Sort, State as DocState, Update, Watermarks,
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1", get(about))
        .route("/v1/indexes", get(list_indexes))
        .route("/v1/indexes/{name}", get(get_index).put(put_index).delete(delete_index))
        .route(
            "/v1/indexes/{name}/documents",
            post(add_documents).get(get_document).delete(delete_document).patch(patch_document),
        )
        .route("/v1/indexes/{name}/bulk", post(bulk))
        .route("/v1/indexes/{name}/delete", post(delete_many))
        .route("/v1/indexes/{name}/enumerate", get(enumerate))
        .route("/v1/indexes/{name}/checkpoints", get(list_checkpoints).delete(clear_checkpoints))
        .route("/v1/indexes/{name}/checkpoints/{cp}", get(get_checkpoint).put(put_checkpoint).delete(delete_checkpoint))
        .route("/v1/indexes/{name}/serials/{n}", get(serial_state))
        .route("/v1/indexes/{name}/status", get(status))
        .route("/v1/indexes/{name}/count", get(count))
        .route("/v1/indexes/{name}/sync", post(sync))
        .route("/v1/indexes/{name}/refresh", post(refresh))
        .route("/v1/indexes/{name}/watermarks", get(watermarks))
        .route("/v1/indexes/{name}/search", get(search).post(search_posted))
}

/// The query string's parameters, repeated ones kept in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> Params {
        let raw = raw.unwrap_or_default();
        Params(form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    fn required(&self, key: &str) -> ApiResult<&str> {
        self.get(key).ok_or_else(|| ApiError::invalid(format!("the parameter {key:?} is required")))
    }

    fn bool(&self, key: &str, default: bool) -> ApiResult<bool> {
        match self.get(key) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(ApiError::invalid(format!("{key}={other:?}: true or false"))),
        }
    }

    fn number(&self, key: &str, default: usize) -> ApiResult<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ApiError::invalid(format!("{key}={v:?}: a number"))),
        }
    }

    /// `wait=pushed|synced|searchable` (default pushed).
    fn wait(&self) -> ApiResult<DocState> {
        match self.get("wait").unwrap_or("pushed") {
            "pushed" => Ok(DocState::Pushed),
            "synced" => Ok(DocState::Synced),
            "searchable" => Ok(DocState::Searchable),
            other => Err(ApiError::invalid(format!("wait={other:?}: pushed, synced or searchable"))),
        }
    }

    fn mode(&self) -> ApiResult<EnumerationMode> {
        Ok(match self.get("mode").unwrap_or("recursive_documents") {
            "recursive_documents" => EnumerationMode::RecursiveDocuments,
            "not_recursive_documents" => EnumerationMode::NotRecursiveDocuments,
            "not_recursive_folders" => EnumerationMode::NotRecursiveFolders,
            "not_recursive_all" => EnumerationMode::NotRecursiveAll,
            other => return Err(ApiError::invalid(format!("mode={other:?}: recursive_documents, not_recursive_documents, not_recursive_folders or not_recursive_all"))),
        })
    }
}

/// Middleware of every `/v1/indexes/{name}/...` route, reads and barriers
/// included: a request that names a push session (`X-Push-Session`) that
/// is not the index's current one gets `409 session_mismatch`, whatever it
/// asks (a client that crashed must not take a sync or a status for its
/// own). An index that does not exist is left to the handler (`404`).
pub(super) async fn session_guard(
    State(state): State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let given = request.headers().get("x-push-session").map(|v| v.to_str().unwrap_or_default().to_string());
    let name = request
        .uri()
        .path()
        .strip_prefix("/v1/indexes/")
        .and_then(|rest| rest.split('/').next())
        .map(|segment| percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned());
    if let (Some(given), Some(name)) = (given, name) {
        let checked = blocking(move || match state.indexes.get(&name) {
            Ok(Some(index)) => super::check_session(&index, &given),
            _ => Ok(()),
        })
        .await;
        if let Err(e) = checked {
            return e.into_response();
        }
    }
    next.run(request).await
}

/// `X-Push-Session`, when given, must be the index's current session.
fn check_session(index: &Index, headers: &HeaderMap) -> ApiResult<()> {
    match headers.get("x-push-session") {
        Some(given) => super::check_session(index, given.to_str().unwrap_or_default()),
        None => Ok(()),
    }
}

/// Whether a one-operation write may create its index.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Create {
    No,
    Yes,
}

/// A write of one operation: the index (`404` if it does not exist, unless
/// `create`), the session check, the operation, the wait; answers
/// `{"serial", "state"}`.
async fn write_one(
    state: AppState,
    name: String,
    headers: HeaderMap,
    wait: DocState,
    create: Create,
    op: impl FnOnce(&Index) -> ApiResult<crate::Serial> + Send + 'static,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let write = |index: &Index, _created: bool| {
            check_session(index, &headers)?;
            let serial = op(index)?;
            Ok(Json(json!({ "serial": serial.0, "state": state_name(reach(index, wait)?) })))
        };
        match create {
            Create::Yes => state.indexes.create_or_use(&name, write),
            Create::No => write(&state.indexes.existing(&name)?, false),
        }
    })
    .await
}

/// Brings the operations up to `serial` to `wait`; returns the state reached.
fn reach(index: &Index, wait: DocState) -> ApiResult<DocState> {
    match wait {
        DocState::Synced => {
            super::metrics::sync(index)?;
        }
        DocState::Searchable => {
            super::metrics::refresh(index)?;
        }
        _ => {}
    }
    Ok(wait)
}

/// A state as the library names it (`Initial`, `Pushed`, `Synced`,
/// `Searchable`), as in every dialect.
fn state_name(state: DocState) -> &'static str {
    match state {
        DocState::Initial => "Initial",
        DocState::Pushed => "Pushed",
        DocState::Synced => "Synced",
        DocState::Searchable => "Searchable",
    }
}

fn watermarks_json(w: Watermarks) -> Value {
    json!({ "last": w.last.0, "synced": w.synced.0, "searchable": w.searchable.0 })
}

#[utoipa::path(get, path = "/v1", tag = "v1", summary = "The server's version and limits", responses((status = 200, body = About), Errors))]
pub(super) async fn about(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "limits": {
            "max_body_bytes": state.max_body_bytes,
            "max_batch_documents": crate::MAX_BATCH_DOCUMENTS,
            "max_batch_bytes": crate::MAX_BATCH_BYTES,
            "max_uri_bytes": crate::MAX_URI_BYTES,
        }
    }))
}

fn index_json(name: &str, index: &Index) -> ApiResult<Value> {
    Ok(json!({
        "name": name,
        "documents": index.count("", EnumerationMode::RecursiveDocuments)?,
        "session": index.session_id().0,
        "watermarks": watermarks_json(index.watermarks()),
    }))
}

#[utoipa::path(get, path = "/v1/indexes", tag = "v1", summary = "Every index", responses((status = 200, body = Vec<IndexInfo>), Errors))]
pub(super) async fn list_indexes(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    blocking(move || {
        let mut out = Vec::new();
        // An index that does not open is listed with its error, and does
        // not hide the others.
        for name in state.indexes.candidates()? {
            match state.indexes.get(&name).and_then(|index| index.map(|i| index_json(&name, &i)).transpose()) {
                Ok(Some(json)) => out.push(json),
                Ok(None) => {}
                Err(e) => out.push(json!({ "name": name, "error": e.code, "message": e.message })),
            }
        }
        Ok(Json(Value::Array(out)))
    })
    .await
}

#[utoipa::path(get, path = "/v1/indexes/{name}", tag = "v1", summary = "One index", params(IndexName), responses((status = 200, body = IndexInfo), Errors))]
pub(super) async fn get_index(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    blocking(move || Ok(Json(index_json(&name, &state.indexes.existing(&name)?)?))).await
}

#[utoipa::path(put, path = "/v1/indexes/{name}", tag = "v1", summary = "Create an index", params(IndexName), responses((status = 200, description = "It existed", body = IndexInfo), (status = 201, description = "Created", body = IndexInfo), Errors))]
pub(super) async fn put_index(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    blocking(move || {
        let (created, info) = state.indexes.create_or_use(&name, |index, created| {
            check_session(index, &headers)?;
            Ok((created, index_json(&name, index)?))
        })?;
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
        Ok((status, Json(info)).into_response())
    })
    .await
}

#[utoipa::path(delete, path = "/v1/indexes/{name}", tag = "v1", summary = "Remove an index and its directory", params(IndexName), responses((status = 204, description = "Closed and removed"), Errors))]
pub(super) async fn delete_index(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    blocking(move || {
        let path = state.indexes.dir_of(&name);
        let removed = state.indexes.remove(&name, || {
            state.checkpoints.forget(&path);
            // The live sources go with their index: their jobs stop first,
            // and no request sets them again before the index is closed.
            let mut slot = state.connectors.lock().unwrap_or_else(|e| e.into_inner());
            if name == super::layar::LIVE_SOURCE_INDEX {
                drop(slot.take());
            }
            slot
        })?;
        if removed {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::not_found(format!("no index named {name:?}")))
        }
    })
    .await
}

/// A stored document in the JSON API's shape.
fn document_json(doc: &Document) -> Value {
    let mut metas = serde_json::Map::new();
    for (name, _) in doc.all_metas() {
        if !metas.contains_key(name) {
            let values = doc.metas(name);
            let value = if values.len() == 1 { json!(values[0]) } else { json!(values) };
            metas.insert(name.to_string(), value);
        }
    }
    let (mut text, mut binary) = (serde_json::Map::new(), serde_json::Map::new());
    for (name, is_text, bytes) in doc.parts() {
        if is_text {
            text.insert(name.to_string(), json!(String::from_utf8_lossy(bytes)));
        } else {
            binary.insert(name.to_string(), json!(base64::engine::general_purpose::STANDARD.encode(bytes)));
        }
    }
    json!({ "uri": doc.uri(), "stamp": doc.stamp(), "metas": metas, "text": text, "binary": binary })
}

/// `415 unsupported_media_type` unless the body is said to be JSON (or its
/// type is not said).
fn require_json(headers: &HeaderMap) -> ApiResult<()> {
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence.is_empty() || essence == "application/json" || essence.ends_with("+json") {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("Content-Type {content_type:?}: this route takes application/json"),
    ))
}

/// The documents of a body: a JSON array, or NDJSON (one a line).
fn parse_documents(headers: &HeaderMap, body: &[u8]) -> ApiResult<Vec<Document>> {
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let docs: Vec<JsonDocument> = if content_type.starts_with("application/x-ndjson") {
        let text = std::str::from_utf8(body).map_err(|_| ApiError::invalid("the body is not UTF-8"))?;
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| serde_json::from_str(line).map_err(|e| ApiError::invalid(format!("line {}: {e}", i + 1))))
            .collect::<ApiResult<_>>()?
    } else if content_type.is_empty() || content_type.starts_with("application/json") {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("the body is not a JSON array of documents: {e}")))?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type {content_type:?}: application/json or application/x-ndjson"),
        ));
    };
    Ok(docs.into_iter().map(|JsonDocument(doc)| doc).collect())
}

#[utoipa::path(post, path = "/v1/indexes/{name}/documents", tag = "v1", summary = "Add documents (one atomic batch)", params(IndexName, WaitParam, SessionHeader), request_body(content((Vec<DocumentJson> = "application/json"), (Vec<DocumentJson> = "application/x-ndjson")), description = "A JSON array of documents, or NDJSON (one document a line): one add_all, atomic"), responses((status = 200, body = BatchAck), Errors))]
pub(super) async fn add_documents(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(query);
    let wait = params.wait()?;
    super::indexes::check_name(&name)?;
    let body = read_body(request, state.max_body_bytes).await?;
    let docs = parse_documents(&headers, &body)?;
    if docs.is_empty() {
        return Err(ApiError::invalid("no documents: an add_all batch must hold at least one"));
    }
    blocking(move || {
        let count = docs.len();
        // A refused request creates nothing (create_or_use).
        state.indexes.create_or_use(&name, |index, _| {
            check_session(index, &headers)?;
            let last = index.add_all(docs)?;
            let reached = reach(index, wait)?;
            Ok(Json(json!({ "count": count, "last_serial": last.0, "state": state_name(reached) })))
        })
    })
    .await
}

#[utoipa::path(get, path = "/v1/indexes/{name}/documents", tag = "v1", summary = "One document", params(IndexName, UriParam), responses((status = 200, body = StoredDocument), Errors))]
pub(super) async fn get_document(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(query);
    let uri = params.required("uri")?.to_string();
    blocking(move || {
        let index = state.indexes.existing(&name)?;
        let status = index.status(&uri)?;
        let doc = index.get(&uri)?.ok_or_else(|| ApiError::not_found(format!("no document with URI {uri:?}")))?;
        let mut value = document_json(&doc);
        value["state"] = json!(state_name(status.state));
        value["serial"] = json!(status.serial.0);
        Ok(Json(value))
    })
    .await
}

#[utoipa::path(delete, path = "/v1/indexes/{name}/documents", tag = "v1", summary = "Delete a document", params(IndexName, UriParam, WaitParam, SessionHeader), responses((status = 200, body = WriteAck), Errors))]
pub(super) async fn delete_document(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(query);
    let uri = params.required("uri")?.to_string();
    write_one(state, name, headers, params.wait()?, Create::No, move |index| Ok(index.delete(&uri)?)).await
}

#[utoipa::path(get, path = "/v1/indexes/{name}/status", tag = "v1", summary = "The status of documents", params(IndexName, UrisParam), responses((status = 200, body = Vec<StatusEntry>), Errors))]
pub(super) async fn status(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let uris = Params::parse(query).all("uri");
    blocking(move || {
        let index = state.indexes.existing(&name)?;
        let mut out = Vec::with_capacity(uris.len());
        for uri in uris {
            let s = index.status(&uri)?;
            out.push(json!({ "uri": s.uri, "stamp": s.stamp, "state": state_name(s.state), "serial": s.serial.0 }));
        }
        Ok(Json(Value::Array(out)))
    })
    .await
}

#[utoipa::path(get, path = "/v1/indexes/{name}/count", tag = "v1", summary = "Count a folder", params(IndexName, EnumerateParams), responses((status = 200, body = Count), Errors))]
pub(super) async fn count(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(query);
    let (root, mode, synced) =
        (params.get("root").unwrap_or("").to_string(), params.mode()?, params.bool("synced", false)?);
    blocking(move || {
        let index = state.indexes.existing(&name)?;
        let count = if synced { super::count_synced(&index, &root, mode)? } else { index.count(&root, mode)? };
        Ok(Json(json!({ "count": count })))
    })
    .await
}

#[utoipa::path(post, path = "/v1/indexes/{name}/sync", tag = "v1", summary = "Make every operation Synced", params(IndexName), responses((status = 200, body = Synced), Errors))]
pub(super) async fn sync(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    blocking(move || Ok(Json(json!({ "synced": super::metrics::sync(&state.indexes.existing(&name)?)?.0 })))).await
}

#[utoipa::path(post, path = "/v1/indexes/{name}/refresh", tag = "v1", summary = "Make every operation Searchable", params(IndexName), responses((status = 200, body = Searchable), Errors))]
pub(super) async fn refresh(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    blocking(move || Ok(Json(json!({ "searchable": super::metrics::refresh(&state.indexes.existing(&name)?)?.0 }))))
        .await
}

#[utoipa::path(get, path = "/v1/indexes/{name}/watermarks", tag = "v1", summary = "The watermarks", params(IndexName), responses((status = 200, body = WatermarksJson), Errors))]
pub(super) async fn watermarks(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    blocking(move || Ok(Json(watermarks_json(state.indexes.existing(&name)?.watermarks())))).await
}

/// A search's answer (a typed struct, so that scores print as `f32`s).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct SearchReply {
    /// The best hits, best first.
    hits: Vec<HitReply>,
    /// Every match (with `count=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    /// Every match again, under the name HTTP.md's second part gives it
    /// (with `count=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    /// With `facet=NAME` (repeatable): for each, `{"name", "values": [[value,
    /// count], ...]}` over every match, most frequent first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    facets: Vec<Value>,
    /// With `folders=ROOT`: the matches counted by the folder directly
    /// under `ROOT` that holds them, fullest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    folders: Option<FoldersReply>,
}

/// The folder facet of a search's answer (`folders=ROOT`).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct FoldersReply {
    /// The root, as asked.
    root: String,
    /// The `folder_limit` fullest folders directly under the root (ties by
    /// folder); the matches directly in the root are in none.
    values: Vec<FolderCount>,
}

/// A folder and how many matches it holds.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct FolderCount {
    /// The whole folder, ending with `/`: a root to pass back as
    /// `under:"FOLDER"` (or as `folders=`).
    folder: String,
    /// How many matches it holds, at any depth.
    count: u64,
}

/// A hit.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct HitReply {
    /// The document's URI.
    uri: String,
    /// Its stamp.
    stamp: String,
    /// Its BM25 score.
    score: f32,
    /// The document's title (its `title` meta), or null.
    title: Option<String>,
    /// With `snippet=PART`: a passage of that part around the matched
    /// words, each wrapped in `<b>`…`</b>` (the document's own text is not
    /// HTML-escaped), "…" where it cuts the part; else null.
    snippet: Option<String>,
}

#[utoipa::path(get, path = "/v1/indexes/{name}/search", tag = "v1", summary = "Search", params(IndexName, SearchParams), responses((status = 200, body = SearchReply), Errors))]
pub(super) async fn search(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<SearchReply>> {
    let params = Params::parse(query);
    let mode = match params.get("mode") {
        None | Some("natural") => SearchMode::Natural,
        Some("strict") => SearchMode::Strict,
        Some(mode) => return Err(ApiError::invalid(format!("mode={mode:?}: the modes are natural and strict"))),
    };
    let request = SearchRequest {
        q: params.required("q")?.to_string(),
        mode,
        limit: params.number("limit", DEFAULT_LIMIT)?,
        offset: params.number("offset", 0)?,
        facet: params.all("facet"),
        count: params.bool("count", false)?,
        sort: params.get("sort").map(str::to_string),
        snippet: params.get("snippet").map(str::to_string),
        folders: params.get("folders").map(str::to_string),
        folder_limit: params.number("folder_limit", DEFAULT_FOLDER_LIMIT)?,
    };
    run_search(state, name, request).await
}

/// `POST /v1/indexes/{name}/search`: the same as GET, in a JSON body.
#[utoipa::path(post, path = "/v1/indexes/{name}/search", tag = "v1", summary = "Search, the query in a JSON body", params(IndexName), request_body = SearchRequest, responses((status = 200, body = SearchReply), Errors))]
pub(super) async fn search_posted(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Json<SearchReply>> {
    let body = read_body(request, state.max_body_bytes).await?;
    run_search(state, name, parse_json(&headers, &body)?).await
}

/// The hits asked for when a search does not say.
const DEFAULT_LIMIT: usize = 10;

fn default_limit() -> usize {
    DEFAULT_LIMIT
}

/// The folders counted when a search with `folders=` does not say.
const DEFAULT_FOLDER_LIMIT: usize = 10;

fn default_folder_limit() -> usize {
    DEFAULT_FOLDER_LIMIT
}

/// A search, from the query string or a JSON body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchRequest {
    /// The query (`Query::parse` syntax; bare words ranked, as
    /// `Query::parse_natural` reads them, unless `mode` is `strict`).
    q: String,
    /// `natural` (the default: `Query::parse_natural`) or `strict`
    /// (`Query::parse`: juxtaposed words are all required).
    #[serde(default)]
    mode: SearchMode,
    /// How many hits (1 to 10000; default 10).
    #[serde(default = "default_limit")]
    #[schema(minimum = 1, maximum = 10000)]
    limit: usize,
    /// How many of the ordered hits to skip (offset + limit at most 10000;
    /// default 0).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9999)]
    offset: usize,
    /// Meta names to count the matches by.
    #[serde(default)]
    facet: Vec<String>,
    /// Whether to count every match too (default false).
    #[serde(default)]
    count: bool,
    /// The order of the hits (default: best score first): `META` or
    /// `META:asc` by a meta's value, smallest first; `-META` or `META:desc`,
    /// largest first; ties by URI.
    #[serde(default)]
    #[schema(example = "-lastmodifieddate")]
    sort: Option<String>,
    /// A text part to cut each hit's `snippet` from (default: none).
    #[serde(default)]
    #[schema(example = "content")]
    snippet: Option<String>,
    /// A root (`""`: the whole index) whose folders to count the matches by:
    /// the answer's `folders` (default: none).
    #[serde(default)]
    #[schema(example = "file:///share/")]
    folders: Option<String>,
    /// How many folders `folders` lists at most (1 to 10000; default 10).
    #[serde(default = "default_folder_limit")]
    #[schema(minimum = 1, maximum = 10000)]
    folder_limit: usize,
}

/// A search's `sort=` ([`Sort`]'s text form), or a 400 naming it.
fn parse_sort(text: &str) -> ApiResult<Sort> {
    text.parse().map_err(|e| match e {
        Error::InvalidInput { reason } => ApiError::invalid(format!("sort={text:?}: {reason}")),
        e => e.into(),
    })
}

/// How a search's `q` is read.
#[derive(Debug, Default, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum SearchMode {
    /// `Query::parse_natural`: runs of bare words are ranked OR.
    #[default]
    Natural,
    /// `Query::parse`: juxtaposition is AND.
    Strict,
}

async fn run_search(state: AppState, name: String, request: SearchRequest) -> ApiResult<Json<SearchReply>> {
    let query = match request.mode {
        SearchMode::Natural => Query::parse_natural(&request.q)?,
        SearchMode::Strict => Query::parse(&request.q)?,
    };
    let sort = request.sort.as_deref().map(parse_sort).transpose()?.unwrap_or_default();
    if !(1..=crate::MAX_SEARCH_LIMIT).contains(&request.folder_limit) {
        return Err(ApiError::invalid(format!(
            "folder_limit={}: 1 to {}",
            request.folder_limit,
            crate::MAX_SEARCH_LIMIT
        )));
    }
    blocking(move || {
        let index = state.searched(&name)?;
        let parts = index.text_parts();
        let known = || if parts.is_empty() { "none".to_string() } else { parts.join(", ") };
        if let Some(field) = query.fields().into_iter().find(|f| !parts.iter().any(|p| p == f)) {
            return Err(ApiError::invalid(format!(
                "no searchable document has a text part {field:?} (the text parts: {})",
                known()
            )));
        }
        if let Some(part) = request.snippet.as_deref().filter(|s| !parts.iter().any(|p| p == s)) {
            return Err(ApiError::invalid(format!(
                "snippet={part:?}: no searchable document has this text part (the text parts: {})",
                known()
            )));
        }
        let options = SearchOptions {
            limit: request.limit,
            offset: request.offset,
            count: request.count,
            facets: request.facet,
            sort,
            snippet: request.snippet,
            ..Default::default()
        };
        let folders = match request.folders {
            Some(root) => Some(folder_facet(&index, &query, root, request.folder_limit)?),
            None => None,
        };
        let found = index.search_with(&query, &options)?;
        let hits = found.hits.into_iter().map(|h| HitReply {
            uri: h.uri,
            stamp: h.stamp,
            score: h.score,
            title: h.title,
            snippet: h.snippet,
        });
        let facets = found.facets.into_iter().map(|f| json!({"name": f.name, "values": f.values})).collect();
        Ok(Json(SearchReply { hits: hits.collect(), count: found.total, total: found.total, facets, folders }))
    })
    .await
}

/// `folders=ROOT`: the matches of `query` by the folder under `root`, each
/// named by its whole string; a root that is not one is a 400 naming it.
/// (Counted on a snapshot of their own: a refresh between them and the
/// hits can make them disagree with `total`.)
fn folder_facet(index: &Index, query: &Query, root: String, limit: usize) -> ApiResult<FoldersReply> {
    let (folders, _) = index.folder_facets(query, &root, limit).map_err(|e| match e {
        Error::InvalidUri { uri, reason } => ApiError::invalid(format!("folders={uri:?}: {reason}")),
        e => e.into(),
    })?;
    let values = folders.into_iter().map(|(folder, count)| FolderCount { folder, count });
    Ok(FoldersReply { values: values.collect(), root })
}

/// An update as the JSON API writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonUpdate {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    stamp: Option<String>,
    /// A meta's values; `null` removes the meta.
    #[serde(default)]
    metas: BTreeMap<String, Option<MetaValues>>,
    #[serde(default)]
    text: BTreeMap<String, String>,
    #[serde(default)]
    binary: BTreeMap<String, Base64>,
    #[serde(default)]
    remove_parts: Vec<String>,
}

impl JsonUpdate {
    fn into_update(self) -> ApiResult<Update> {
        let mut update = Update::new();
        if let Some(stamp) = self.stamp {
            update = update.stamp(stamp);
        }
        for (name, values) in self.metas {
            update = update.meta(name, values.map(|MetaValues(v)| v).unwrap_or_default());
        }
        for (name, text) in self.text {
            update = update.text(name, text);
        }
        for (name, Base64(bytes)) in self.binary {
            update = update.part(name, bytes);
        }
        for name in self.remove_parts {
            update = update.remove_part(name);
        }
        Ok(update)
    }
}

/// A JSON body: `Content-Type` missing or `application/json` (else `415`).
fn parse_json<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> ApiResult<T> {
    require_json(headers)?;
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("the body is not valid JSON here: {e}")))
}

#[utoipa::path(patch, path = "/v1/indexes/{name}/documents", tag = "v1", summary = "Update a stored document", params(IndexName, UriParam, WaitParam, SessionHeader), request_body = UpdateJson, responses((status = 200, body = WriteAck), Errors))]
pub(super) async fn patch_document(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(query);
    let uri = params.required("uri")?.to_string();
    let wait = params.wait()?;
    let body = read_body(request, state.max_body_bytes).await?;
    let update = parse_json::<JsonUpdate>(&headers, &body)?.into_update()?;
    write_one(state, name, headers, wait, Create::No, move |index| Ok(index.update(&uri, update)?)).await
}

/// `{"root_path": R, "recursive": bool}` or `{"prefix": P}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeleteMany {
    /// A folder: the documents under it.
    #[serde(default)]
    root_path: Option<String>,
    /// With `root_path`: its sub-folders too (default true).
    #[serde(default)]
    recursive: Option<bool>,
    /// A raw URI prefix (not empty).
    #[serde(default)]
    prefix: Option<String>,
}

#[utoipa::path(post, path = "/v1/indexes/{name}/delete", tag = "v1", summary = "Delete a folder or a prefix", params(IndexName, WaitParam, SessionHeader), request_body = DeleteMany, responses((status = 200, body = WriteAck), Errors))]
pub(super) async fn delete_many(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Json<Value>> {
    let wait = Params::parse(query).wait()?;
    let body = read_body(request, state.max_body_bytes).await?;
    let what: DeleteMany = parse_json(&headers, &body)?;
    if what.root_path.is_some() == what.prefix.is_some() {
        return Err(ApiError::invalid("give one of root_path (with recursive) and prefix"));
    }
    write_one(state, name, headers, wait, Create::No, move |index| match (what.root_path, what.prefix) {
        (Some(root), _) => Ok(index.delete_root_path(&root, what.recursive.unwrap_or(true))?),
        (_, prefix) => Ok(index.delete_with_prefix(&prefix.unwrap_or_default())?),
    })
    .await
}

/// One line of a bulk body.
enum BulkOp {
    Add(Document),
    Update(String, Update),
    Delete(String),
    DeleteRootPath(String, bool),
    DeletePrefix(String),
    SetCheckpoint(String, String),
}

fn bulk_op(line: &str) -> ApiResult<BulkOp> {
    let value: Value = serde_json::from_str(line).map_err(|e| ApiError::invalid(format!("not JSON: {e}")))?;
    let Value::Object(object) = value else { return Err(ApiError::invalid("an operation is a JSON object")) };
    if object.len() != 1 {
        return Err(ApiError::invalid("an operation is an object with one key"));
    }
    let (op, body) = object.into_iter().next().expect("one key");
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    let need = |key: &str| text(key).ok_or_else(|| ApiError::invalid(format!("{op}: {key:?} is required")));
    Ok(match op.as_str() {
        "add" => {
            BulkOp::Add(serde_json::from_value::<JsonDocument>(body).map_err(|e| ApiError::invalid(e.to_string()))?.0)
        }
        "update" => {
            let update: JsonUpdate = serde_json::from_value(body).map_err(|e| ApiError::invalid(e.to_string()))?;
            let uri = update.uri.clone().ok_or_else(|| ApiError::invalid("update: \"uri\" is required"))?;
            BulkOp::Update(uri, update.into_update()?)
        }
        "delete" => BulkOp::Delete(need("uri")?),
        "delete_root_path" => {
            let recursive = match body.get("recursive") {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(ApiError::invalid(format!("delete_root_path: recursive is true or false, not {other}")))
                }
            };
            BulkOp::DeleteRootPath(need("root")?, recursive)
        }
        "delete_prefix" => BulkOp::DeletePrefix(need("prefix")?),
        "set_checkpoint" => BulkOp::SetCheckpoint(need("name")?, need("value")?),
        other => return Err(ApiError::invalid(format!("unknown operation {other:?}"))),
    })
}

#[utoipa::path(post, path = "/v1/indexes/{name}/bulk", tag = "v1", summary = "Many operations, each its own", params(IndexName, WaitParam, SessionHeader), request_body(content = Vec<BulkLine>, content_type = "application/x-ndjson", description = "NDJSON: one operation (a BulkLine) a line, applied in order, each its own operation"), responses((status = 200, body = BulkAck), Errors))]
pub(super) async fn bulk(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Json<Value>> {
    let wait = Params::parse(query).wait()?;
    super::indexes::check_name(&name)?;
    let body = read_body(request, state.max_body_bytes).await?;
    let text = String::from_utf8(body.to_vec()).map_err(|_| ApiError::invalid("the body is not UTF-8"))?;
    blocking(move || {
        let history = state.checkpoints.clone();
        // A request none of whose lines was accepted creates nothing.
        let (reply, _) = state.indexes.create_or_use_keeping(
            &name,
            |index, _| {
                check_session(index, &headers)?;
                let mut items = Vec::new();
                let mut errors = false;
                let mut accepted = false;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let result = bulk_op(line).and_then(|op| {
                        Ok(match op {
                            BulkOp::Add(doc) => index.add(doc)?,
                            BulkOp::Update(uri, update) => index.update(&uri, update)?,
                            BulkOp::Delete(uri) => index.delete(&uri)?,
                            BulkOp::DeleteRootPath(root, recursive) => index.delete_root_path(&root, recursive)?,
                            BulkOp::DeletePrefix(prefix) => index.delete_with_prefix(&prefix)?,
                            BulkOp::SetCheckpoint(name, value) => history.set(index, &name, &value)?,
                        })
                    });
                    items.push(match result {
                        Ok(serial) => {
                            accepted = true;
                            json!({ "serial": serial.0 })
                        }
                        Err(e) => {
                            errors = true;
                            json!({ "error": e.code, "message": e.message })
                        }
                    });
                }
                let reached = reach(index, wait)?;
                Ok((Json(json!({ "errors": errors, "items": items, "state": state_name(reached) })), accepted))
            },
            |(_, accepted)| *accepted,
        )?;
        Ok(reply)
    })
    .await
}

/// A stream of NDJSON chunks made by a blocking task.
struct Chunks(tokio::sync::mpsc::Receiver<Result<axum::body::Bytes, std::io::Error>>);

impl futures_core::Stream for Chunks {
    type Item = Result<axum::body::Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[utoipa::path(get, path = "/v1/indexes/{name}/enumerate", tag = "v1", summary = "List a folder", params(IndexName, EnumerateParams), responses((status = 200, description = "NDJSON, streamed: {\"uri\", \"stamp\", \"state\", \"serial\"} or {\"folder\"} a line", content_type = "application/x-ndjson", body = String), Errors))]
pub(super) async fn enumerate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(query);
    let (root, mode, synced) =
        (params.get("root").unwrap_or("").to_string(), params.mode()?, params.bool("synced", false)?);
    // Errors before the first byte are statuses; after it, the stream ends.
    let entries = blocking(move || {
        let index = state.indexes.existing(&name)?;
        Ok(if synced { index.enumerate_synced(&root, mode)? } else { index.enumerate(&root, mode)? })
    })
    .await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(64 << 10);
        for entry in entries {
            let line = match entry {
                Ok(Entry::Document(d)) => {
                    json!({ "uri": d.uri, "stamp": d.stamp, "state": state_name(d.state), "serial": d.serial.0 })
                }
                Ok(Entry::Folder(f)) => json!({ "folder": f }),
                Err(e) => {
                    let _ = sender.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            };
            chunk.extend_from_slice(line.to_string().as_bytes());
            chunk.push(b'\n');
            if chunk.len() >= 60 << 10 && sender.blocking_send(Ok(std::mem::take(&mut chunk).into())).is_err() {
                return; // the client went away
            }
        }
        if !chunk.is_empty() {
            let _ = sender.blocking_send(Ok(chunk.into()));
        }
    });
    Ok(([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], axum::body::Body::from_stream(Chunks(receiver)))
        .into_response())
}

fn reserved(cp: &str) -> ApiResult<()> {
    if cp.starts_with(crate::index::RESERVED_CHECKPOINT_PREFIX) {
        return Err(ApiError::invalid(format!("checkpoint names beginning with pushdex. are reserved: {cp:?}")));
    }
    Ok(())
}

fn checkpoint_json(c: &crate::Checkpoint) -> Value {
    json!({ "name": c.name, "value": c.value, "serial": c.serial.0, "state": state_name(c.state) })
}

#[utoipa::path(get, path = "/v1/indexes/{name}/checkpoints", tag = "v1", summary = "Every checkpoint", params(IndexName), responses((status = 200, body = Vec<CheckpointJson>), Errors))]
pub(super) async fn list_checkpoints(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let index = state.indexes.existing(&name)?;
        Ok(Json(Value::Array(index.checkpoints()?.iter().map(checkpoint_json).collect())))
    })
    .await
}

#[utoipa::path(delete, path = "/v1/indexes/{name}/checkpoints", tag = "v1", summary = "Remove every checkpoint", params(IndexName, WaitParam, SessionHeader), responses((status = 200, body = WriteAck), Errors))]
pub(super) async fn clear_checkpoints(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let wait = Params::parse(query).wait()?;
    let history = state.checkpoints.clone();
    write_one(state, name, headers, wait, Create::No, move |index| Ok(history.clear(index)?)).await
}

#[utoipa::path(get, path = "/v1/indexes/{name}/checkpoints/{cp}", tag = "v1", summary = "One checkpoint", params(IndexName, ("cp" = String, Path, description = "The checkpoint")), responses((status = 200, body = CheckpointJson), Errors))]
pub(super) async fn get_checkpoint(
    State(state): State<AppState>,
    Path((name, cp)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    reserved(&cp)?;
    blocking(move || {
        let index = state.indexes.existing(&name)?;
        let c = index.checkpoint(&cp)?.ok_or_else(|| ApiError::not_found(format!("no checkpoint named {cp:?}")))?;
        Ok(Json(checkpoint_json(&c)))
    })
    .await
}

#[utoipa::path(put, path = "/v1/indexes/{name}/checkpoints/{cp}", tag = "v1", summary = "Set a checkpoint", params(IndexName, ("cp" = String, Path, description = "The checkpoint (not pushdex.*)"), WaitParam, SessionHeader), request_body = CheckpointValue, responses((status = 200, body = WriteAck), Errors))]
pub(super) async fn put_checkpoint(
    State(state): State<AppState>,
    Path((name, cp)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Json<Value>> {
    reserved(&cp)?;
    super::indexes::check_name(&name)?;
    let wait = Params::parse(query).wait()?;
    let body = read_body(request, state.max_body_bytes).await?;
    let value: Value = parse_json(&headers, &body)?;
    let value = value
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("the body is {\"value\": \"...\"}"))?
        .to_string();
    let history = state.checkpoints.clone();
    write_one(state, name, headers, wait, Create::Yes, move |index| Ok(history.set(index, &cp, &value)?)).await
}

#[utoipa::path(delete, path = "/v1/indexes/{name}/checkpoints/{cp}", tag = "v1", summary = "Remove a checkpoint", params(IndexName, ("cp" = String, Path, description = "The checkpoint"), WaitParam, SessionHeader), responses((status = 200, body = WriteAck), Errors))]
pub(super) async fn delete_checkpoint(
    State(state): State<AppState>,
    Path((name, cp)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    reserved(&cp)?;
    let wait = Params::parse(query).wait()?;
    let history = state.checkpoints.clone();
    write_one(state, name, headers, wait, Create::No, move |index| Ok(history.delete(index, &cp)?)).await
}

#[utoipa::path(get, path = "/v1/indexes/{name}/serials/{n}", tag = "v1", summary = "A serial's state", params(IndexName, ("n" = u64, Path, description = "A serial")), responses((status = 200, body = SerialState), Errors))]
pub(super) async fn serial_state(
    State(state): State<AppState>,
    Path((name, n)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let n: u64 = n.parse().map_err(|_| ApiError::invalid(format!("serial {n:?}: a number")))?;
    blocking(move || {
        let index = state.indexes.existing(&name)?;
        Ok(Json(json!({ "state": state_name(index.state_of(crate::Serial(n))) })))
    })
    .await
}
