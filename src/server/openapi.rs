//! `GET /openapi.json`: an OpenAPI 3.1 description of the `/v1` and
//! `/layar` routes, generated (utoipa) from the handlers' own annotations
//! in `v1.rs` and `layar.rs` and from the wire types below, which name
//! every field the handlers read and write. CI runs Schemathesis against
//! it (`.ci/schemathesis`): no 5xx, no answer the description does not
//! allow.

// The query parameters' structs describe what the handlers parse by hand
// (repeated keys, exact messages): only the generator reads their fields.
#![allow(dead_code)]

use std::collections::BTreeMap;

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

pub use crate::connector::ImportStatus;

/// Every error, in every dialect.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A code of HTTP.md's table: `invalid_uri`, `invalid_input`,
    /// `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `session_mismatch`, `conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `too_many_requests`, `unavailable`,
    /// `corrupt`, `io`.
    pub error: String,
    /// What went wrong, in words.
    pub message: String,
}

/// A state, as the library names it.
#[derive(Serialize, Deserialize, ToSchema)]
pub enum StateName {
    /// Not written (or no such serial yet).
    Initial,
    /// Accepted, in memory and in the log's buffer.
    Pushed,
    /// On disk: survives a crash.
    Synced,
    /// Visible to search.
    Searchable,
}

/// `GET /v1`.
#[derive(Serialize, ToSchema)]
pub struct About {
    /// The server's version.
    pub version: String,
    /// The limits requests must keep to.
    pub limits: Limits,
}

/// What requests must keep to.
#[derive(Serialize, ToSchema)]
pub struct Limits {
    /// The largest request body (`--max-body-bytes`).
    pub max_body_bytes: u64,
    /// The most documents in one batch.
    pub max_batch_documents: u64,
    /// The largest batch, in bytes.
    pub max_batch_bytes: u64,
    /// The longest URI, in bytes.
    pub max_uri_bytes: u64,
}

/// An index's watermarks.
#[derive(Serialize, ToSchema)]
pub struct WatermarksJson {
    /// The highest serial handed out (Pushed).
    pub last: u64,
    /// Every operation up to here is on disk.
    pub synced: u64,
    /// Every operation up to here is visible to search.
    pub searchable: u64,
}

/// An index. In the list, an index that does not open has only `name`,
/// `error` and `message`.
#[derive(Serialize, ToSchema)]
pub struct IndexInfo {
    /// Its name.
    pub name: String,
    /// Its documents.
    pub documents: Option<u64>,
    /// Its session id: new at every start of the server.
    pub session: Option<u64>,
    /// Its watermarks.
    pub watermarks: Option<WatermarksJson>,
    /// Why it does not open (an error code).
    pub error: Option<String>,
    /// Why it does not open, in words.
    pub message: Option<String>,
}

/// A meta's value: one string, or several.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MetaValue {
    /// One value.
    One(String),
    /// Several values, in order.
    Many(Vec<String>),
}

/// A document. Part names are unique across `text` and `binary`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DocumentJson {
    /// Its URI: 1 to 4096 bytes, no NUL.
    #[schema(min_length = 1, max_length = 4096, pattern = "^[^\\u0000]+$")]
    pub uri: String,
    /// Its stamp (a version, a date: anything the connector compares).
    pub stamp: Option<String>,
    /// Its metas.
    pub metas: Option<BTreeMap<String, MetaValue>>,
    /// Its text parts (searchable).
    pub text: Option<BTreeMap<String, String>>,
    /// Its binary parts, in base64.
    pub binary: Option<BTreeMap<String, String>>,
}

/// A stored document.
#[derive(Serialize, ToSchema)]
pub struct StoredDocument {
    /// Its URI.
    pub uri: String,
    /// Its stamp.
    pub stamp: String,
    /// Its metas.
    pub metas: BTreeMap<String, MetaValue>,
    /// Its text parts.
    pub text: BTreeMap<String, String>,
    /// Its binary parts, in base64.
    pub binary: BTreeMap<String, String>,
    /// The state of the operation that wrote it.
    pub state: StateName,
    /// That operation's serial.
    pub serial: u64,
}

/// An update of a stored document: what is given replaces what it had.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct UpdateJson {
    /// The URI (when given, the query's).
    pub uri: Option<String>,
    /// A new stamp.
    pub stamp: Option<String>,
    /// Metas to set (`null`: remove the meta).
    pub metas: Option<BTreeMap<String, MetaValue>>,
    /// Text parts to set.
    pub text: Option<BTreeMap<String, String>>,
    /// Binary parts to set, in base64.
    pub binary: Option<BTreeMap<String, String>>,
    /// Parts to remove.
    pub remove_parts: Option<Vec<String>>,
}

/// One write's acknowledgement.
#[derive(Serialize, ToSchema)]
pub struct WriteAck {
    /// The operation's serial.
    pub serial: u64,
    /// The state reached (`wait`).
    pub state: StateName,
}

/// A batch's acknowledgement.
#[derive(Serialize, ToSchema)]
pub struct BatchAck {
    /// Documents added.
    pub count: u64,
    /// The batch's last serial.
    pub last_serial: u64,
    /// The state reached (`wait`).
    pub state: StateName,
}

/// One line of a bulk request's answer: its serial, or why it failed.
#[derive(Serialize, ToSchema)]
pub struct BulkItem {
    /// The line's serial (it was accepted).
    pub serial: Option<u64>,
    /// Its error code (it was refused).
    pub error: Option<String>,
    /// Its error, in words.
    pub message: Option<String>,
}

/// A bulk request's answer.
#[derive(Serialize, ToSchema)]
pub struct BulkAck {
    /// Whether any line failed.
    pub errors: bool,
    /// One item per line, in order.
    pub items: Vec<BulkItem>,
    /// The state reached by the accepted lines.
    pub state: StateName,
}

/// One line of a bulk request: exactly one of these keys.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BulkLine {
    /// Add (or replace) a document.
    pub add: Option<DocumentJson>,
    /// Update a stored document (`uri` required).
    pub update: Option<UpdateJson>,
    /// Delete a document: `{"uri"}`.
    pub delete: Option<UriOnly>,
    /// Delete a folder: `{"root", "recursive"}`.
    pub delete_root_path: Option<RootPath>,
    /// Delete by raw prefix: `{"prefix"}`.
    pub delete_prefix: Option<PrefixOnly>,
    /// Set a checkpoint: `{"name", "value"}`.
    pub set_checkpoint: Option<NamedValue>,
}

/// `{"uri"}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct UriOnly {
    /// The document's URI.
    pub uri: String,
}

/// `{"root", "recursive"}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RootPath {
    /// The folder.
    pub root: String,
    /// Its sub-folders too.
    pub recursive: Option<bool>,
}

/// `{"prefix"}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PrefixOnly {
    /// The raw URI prefix (not empty).
    pub prefix: String,
}

/// `{"name", "value"}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct NamedValue {
    /// The checkpoint's name (not `pushdex.*`).
    pub name: String,
    /// Its value.
    pub value: String,
}

/// A document's status.
#[derive(Serialize, ToSchema)]
pub struct StatusEntry {
    /// The URI asked for.
    pub uri: String,
    /// Its stamp (empty when absent).
    pub stamp: String,
    /// Its state (`Initial` when absent).
    pub state: StateName,
    /// The serial of the last operation on it (0 when none).
    pub serial: u64,
}

/// A count.
#[derive(Serialize, ToSchema)]
pub struct Count {
    /// How many.
    pub count: u64,
}

/// A checkpoint.
#[derive(Serialize, ToSchema)]
pub struct CheckpointJson {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// The serial that set it.
    pub serial: u64,
    /// That operation's state.
    pub state: StateName,
}

/// A checkpoint's new value.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CheckpointValue {
    /// The value.
    pub value: String,
}

/// `POST .../sync`.
#[derive(Serialize, ToSchema)]
pub struct Synced {
    /// The synced watermark.
    pub synced: u64,
}

/// `POST .../refresh`.
#[derive(Serialize, ToSchema)]
pub struct Searchable {
    /// The searchable watermark.
    pub searchable: u64,
}

/// A serial's state.
#[derive(Serialize, ToSchema)]
pub struct SerialState {
    /// Its state.
    pub state: StateName,
}

/// `POST /layar/liveSource`.
#[derive(Serialize, Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct LiveSourceCreate {
    /// `FILE_SYSTEM`.
    pub liveSourceType: String,
    /// `file:///dir` or `/dir`, under a `--source-root`.
    pub url: String,
    /// A name (default: the directory's).
    pub name: Option<String>,
    /// What it is.
    pub description: Option<String>,
    /// `SCAN_ONCE` (default) or `CONTINUOUS`.
    pub runMode: Option<String>,
    /// With `CONTINUOUS`: seconds between scans (default 60).
    pub scanIntervalSeconds: Option<u64>,
}

/// A live source.
#[derive(Serialize, ToSchema)]
#[allow(non_snake_case)]
pub struct LiveSource {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// `FILE_SYSTEM`.
    pub liveSourceType: String,
    /// Its directory.
    pub url: String,
    /// `SCAN_ONCE` or `CONTINUOUS`.
    pub runMode: String,
    /// The folder of the index its documents are under.
    pub root: String,
    /// When it was created.
    pub created: String,
    /// With `CONTINUOUS`: seconds between scans.
    pub scanIntervalSeconds: Option<u64>,
}

/// The body the guide sends with a live source's reads (all optional;
/// `id`, when given, must be the path's).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SourceRequest {
    /// The live source's id.
    pub id: Option<String>,
    /// Documents per page (default 50).
    pub rows: Option<u64>,
    /// The first document's position in URI order (default 0).
    pub start: Option<u64>,
}

/// A page of a live source's documents, in URI order.
#[derive(Serialize, ToSchema)]
pub struct SourcePageJson {
    /// The documents.
    pub documents: Vec<SourceDocumentJson>,
    /// The first one's position.
    pub start: u64,
    /// The page size asked for.
    pub rows: u64,
    /// How many documents the source has in all.
    pub total: u64,
}

/// One of a live source's documents.
#[derive(Serialize, ToSchema)]
pub struct SourceDocumentJson {
    /// Its URI.
    pub id: String,
    /// Its URI.
    pub uri: String,
    /// Its file name.
    pub name: String,
    /// Its stamp.
    pub stamp: String,
    /// Its state.
    pub state: String,
    /// Its metas, each with its values.
    pub metadata: BTreeMap<String, Vec<String>>,
}

/// The error answers any operation may give, `{"error", "message"}`.
#[derive(utoipa::IntoResponses)]
pub enum Errors {
    /// Refused; nothing changed
    #[response(status = "4XX")]
    Refused(ErrorBody),
    /// Failed
    #[response(status = "5XX")]
    Failed(ErrorBody),
}

/// `{name}`: an index.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IndexName {
    /// The index: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with .
    #[param(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
}

/// `{id}`: a live source.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SourceId {
    /// The live source's id
    pub id: String,
}

/// `X-Push-Session`, on a write.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct SessionHeader {
    /// The push session: 409 session_mismatch if it is not the index's current one
    #[serde(rename = "X-Push-Session")]
    pub session: Option<String>,
}

/// `?wait=`: the state a write's answer waits for.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitParam {
    /// `pushed` (default), `synced` or `searchable`.
    #[param(inline)]
    pub wait: Option<Wait>,
}

/// A state to wait for.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Accepted.
    Pushed,
    /// On disk.
    Synced,
    /// Visible to search.
    Searchable,
}

/// `?uri=`: one document.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UriParam {
    /// The document's URI.
    pub uri: String,
}

/// `?root=&mode=&synced=`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnumerateParams {
    /// The folder (default: everything).
    pub root: Option<String>,
    /// What to list (default `recursive_documents`).
    #[param(inline)]
    pub mode: Option<Mode>,
    /// Only what is Synced (default false).
    pub synced: Option<bool>,
}

/// What an enumeration lists.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every document under the root.
    RecursiveDocuments,
    /// The root's direct documents.
    NotRecursiveDocuments,
    /// The root's direct folders.
    NotRecursiveFolders,
    /// Both.
    NotRecursiveAll,
}

/// `?q=&mode=&limit=&count=`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The query (`Query::parse` syntax; bare words ranked, as
    /// `Query::parse_natural` reads them, unless `mode` is `strict`).
    pub q: String,
    /// `natural` (the default) or `strict`.
    pub mode: Option<super::v1::SearchMode>,
    /// How many hits (1 to 10000; default 10).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u64>,
    /// How many of the ordered hits to skip (offset + limit at most 10000).
    #[param(minimum = 0, maximum = 9999)]
    pub offset: Option<u64>,
    /// A meta name to count the matches by (repeatable).
    pub facet: Option<Vec<String>>,
    /// Whether to count every match too.
    pub count: Option<bool>,
    /// The order of the hits (default: best score first): `META` or
    /// `META:asc` by a meta's value, smallest first; `-META` or `META:desc`,
    /// largest first; ties by URI.
    #[param(example = "-lastmodifieddate")]
    pub sort: Option<String>,
    /// A text part to cut each hit's `snippet` from (default: none).
    #[param(example = "content")]
    pub snippet: Option<String>,
    /// A root (empty: the whole index) whose folders to count the matches
    /// by: the answer's `folders` (default: none).
    #[param(example = "file:///share/")]
    pub folders: Option<String>,
    /// How many folders `folders` lists at most (1 to 10000; default 10).
    #[param(minimum = 1, maximum = 10000)]
    pub folder_limit: Option<u64>,
}

/// `?uri=A&uri=B`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UrisParam {
    /// The URIs, in the order of the answer.
    pub uri: Vec<String>,
}

/// `?rows=&start=` (they win over the body's).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Documents per page.
    pub rows: Option<u64>,
    /// The first document's position.
    pub start: Option<u64>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "pushdex", description = "The /v1 JSON API and the /layar live-source routes of `pushdex serve` (HTTP.md)."),
    modifiers(&Security),
    security(("bearer" = []), ("basic" = [])),
    paths(
        super::v1::about,
        super::v1::list_indexes,
        super::v1::get_index,
        super::v1::put_index,
        super::v1::delete_index,
        super::v1::add_documents,
        super::v1::get_document,
        super::v1::patch_document,
        super::v1::delete_document,
        super::v1::bulk,
        super::v1::delete_many,
        super::v1::status,
        super::v1::enumerate,
        super::v1::count,
        super::v1::list_checkpoints,
        super::v1::clear_checkpoints,
        super::v1::get_checkpoint,
        super::v1::put_checkpoint,
        super::v1::delete_checkpoint,
        super::v1::sync,
        super::v1::refresh,
        super::v1::watermarks,
        super::v1::serial_state,
        super::v1::search,
        super::v1::search_posted,
        super::layar::create,
        super::layar::list,
        super::layar::one,
        super::layar::delete,
        super::layar::job_status,
        super::layar::import_status,
        super::layar::source_documents,
        super::layar::import,
        super::layar::stop,
    ),
    components(schemas(crate::connector::JobStatus, crate::connector::ImportStatus, crate::connector::JobState))
)]
struct ApiDoc;

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
