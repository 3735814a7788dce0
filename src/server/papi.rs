//! The Push API's HTTP level: `/papi/4/connectors/{name}/{command}`
//! (HTTP.md, part 1), so that a client written for that protocol works
//! unchanged. Parameters come from the query string and the body (a form or
//! multipart); answers are `text/plain`.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::error::{ApiError, ApiResult};
use super::{blocking, check_session, count_synced, read_body, AppState};
use crate::{Document, Entry, EnumerationMode, Error, Index, Serial, State as DocState, Update};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/papi/4/connectors/{name}/{command}", any(command))
}

/// One parameter: its name, bytes, and (a multipart part's) content type.
struct Field {
    name: String,
    value: Vec<u8>,
    content_type: Option<String>,
}

/// Every parameter, in order: the query string's, then the body's.
struct Fields(Vec<Field>);

impl Fields {
    fn text(&self, name: &str) -> ApiResult<Option<String>> {
        match self.0.iter().find(|f| f.name == name) {
            None => Ok(None),
            Some(f) => String::from_utf8(f.value.clone())
                .map(Some)
                .map_err(|_| ApiError::invalid(format!("parameter {name} is not UTF-8"))),
        }
    }

    fn all(&self, name: &str) -> ApiResult<Vec<String>> {
        self.0
            .iter()
            .filter(|f| f.name == name)
            .map(|f| {
                String::from_utf8(f.value.clone())
                    .map_err(|_| ApiError::invalid(format!("parameter {name} is not UTF-8")))
            })
            .collect()
    }

    fn required(&self, name: &str) -> ApiResult<String> {
        self.text(name)?.ok_or_else(|| ApiError::invalid(format!("the parameter {name} is required")))
    }

    fn bool(&self, name: &str, default: bool) -> ApiResult<bool> {
        match self.text(name)?.as_deref() {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::invalid(format!("{name}={v:?}: true or false"))),
        }
    }

    fn mode(&self) -> ApiResult<EnumerationMode> {
        Ok(match self.text("PAPI_mode")?.as_deref().unwrap_or("RECURSIVE_DOCUMENTS") {
            "RECURSIVE_DOCUMENTS" => EnumerationMode::RecursiveDocuments,
            "NOT_RECURSIVE_DOCUMENTS" => EnumerationMode::NotRecursiveDocuments,
            "NOT_RECURSIVE_FOLDERS" => EnumerationMode::NotRecursiveFolders,
            "NOT_RECURSIVE_ALL" => EnumerationMode::NotRecursiveAll,
            other => return Err(ApiError::invalid(format!("PAPI_mode={other:?}: RECURSIVE_DOCUMENTS, NOT_RECURSIVE_DOCUMENTS, NOT_RECURSIVE_FOLDERS or NOT_RECURSIVE_ALL"))),
        })
    }
}

/// The commands: whether each is a POST (else a GET).
fn is_post(command: &str) -> Option<bool> {
    Some(match command {
        "get_current_session_id"
        | "ping"
        | "get_documents_status"
        | "enumerate_synced_entries"
        | "count_synced_entries"
        | "get_checkpoint"
        | "get_checkpoint_info"
        | "enumerate_checkpoints_info"
        | "are_documents_searchable" => false,
        "add_documents"
        | "update_documents"
        | "delete_documents"
        | "delete_documents_root_path"
        | "delete_documents_with_prefix"
        | "set_checkpoint"
        | "clear_all_checkpoints"
        | "sync"
        | "trigger_indexing_job" => true,
        _ => return None,
    })
}

async fn command(
    State(state): State<AppState>,
    Path((name, command)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    let post = is_post(&command).ok_or_else(|| ApiError::not_found(format!("no Push API command {command:?}")))?;
    if method != if post { Method::POST } else { Method::GET } {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{command} takes {}", if post { "POST" } else { "GET" }),
        ));
    }
    super::indexes::check_name(&name)?;
    let mut fields = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        fields.push(Field { name: k.into_owned(), value: v.into_owned().into_bytes(), content_type: None });
    }
    let body = read_body(request, state.max_body_bytes).await?;
    fields.extend(body_fields(&headers, body, state.max_body_bytes).await?);
    let fields = Fields(fields);
    blocking(move || {
        // Any command creates the index (a Push API client has no other
        // way to), but a refused one leaves nothing behind.
        let text = state.indexes.create_or_use(&name, |index, _| {
            if let Some(session) = fields.text("PAPI_session")? {
                check_session(index, &session)?;
            }
            run(&state, index, &command, &fields)
        })?;
        Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
    })
    .await
}

/// The body's parameters: a form, or multipart parts (a part counts by its
/// field name, file name or not).
async fn body_fields(headers: &HeaderMap, body: axum::body::Bytes, limit: usize) -> ApiResult<Vec<Field>> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return Ok(form_urlencoded::parse(&body)
            .map(|(k, v)| Field { name: k.into_owned(), value: v.into_owned().into_bytes(), content_type: None })
            .collect());
    }
    if content_type.starts_with("multipart/form-data") {
        let boundary =
            multer::parse_boundary(content_type).map_err(|e| ApiError::invalid(format!("multipart: {e}")))?;
        let stream = axum::body::Body::from(body).into_data_stream();
        let constraints = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit as u64));
        let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
        let mut fields = Vec::new();
        while let Some(part) =
            multipart.next_field().await.map_err(|e| ApiError::invalid(format!("bad multipart body: {e}")))?
        {
            let name = part.name().unwrap_or_default().to_string();
            let content_type = part.content_type().map(|m| m.essence_str().to_string());
            let value = part.bytes().await.map_err(|e| ApiError::invalid(format!("bad multipart body: {e}")))?;
            fields.push(Field { name, value: value.to_vec(), content_type });
        }
        return Ok(fields);
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("Content-Type {content_type:?}: application/x-www-form-urlencoded or multipart/form-data"),
    ))
}

/// What RFC 3986 leaves unreserved: letters, digits, `-`, `.`, `_`, `~`.
const RESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, RESERVED).to_string()
}

/// A checkpoint value in a line: `\` `\\`, CR `\r`, LF `\n`.
fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\r', "\\r").replace('\n', "\\n")
}

fn state_word(state: DocState) -> &'static str {
    match state {
        DocState::Initial => "Initial",
        DocState::Pushed => "Pushed",
        DocState::Synced => "Synced",
        DocState::Searchable => "Searchable",
    }
}

/// The checkpoint name `""` (the protocol's default) is `default`.
fn checkpoint_name(fields: &Fields) -> ApiResult<String> {
    let name = match fields.text("PAPI_name")?.unwrap_or_default() {
        name if name.is_empty() => "default".to_string(),
        name => name,
    };
    if name.starts_with(crate::index::RESERVED_CHECKPOINT_PREFIX) {
        return Err(ApiError::invalid(format!("checkpoint {name:?}: names beginning with pushdex. are pushdex's own")));
    }
    Ok(name)
}

fn run(state: &AppState, index: &Index, command: &str, fields: &Fields) -> ApiResult<String> {
    let serial = |s: Serial| Ok(s.0.to_string());
    match command {
        "get_current_session_id" => Ok(index.session_id().0.to_string()),
        "ping" => Ok("OK".to_string()),
        "add_documents" => {
            let docs: Vec<Document> = documents(fields)?.into_iter().map(|d| d.document()).collect::<ApiResult<_>>()?;
            if docs.is_empty() {
                return Err(ApiError::invalid("no documents (fields PAPI_<docid>:uri, ...)"));
            }
            serial(index.add_all(docs)?)
        }
        "update_documents" => {
            let updates = documents(fields)?;
            if updates.is_empty() {
                return Err(ApiError::invalid("no documents (fields PAPI_<docid>:uri, ...)"));
            }
            let mut last = Serial(0);
            for (applied, doc) in updates.into_iter().enumerate() {
                let (uri, update) = doc.update()?;
                last = index.update(&uri, update).map_err(|e| {
                    let mut error = ApiError::from(e);
                    error.message =
                        format!("{} ({applied} updates of the request were applied before it)", error.message);
                    error
                })?;
            }
            serial(last)
        }
        "delete_documents" => {
            let uris = fields.all("PAPI_uri")?;
            if uris.is_empty() {
                return Err(ApiError::invalid("the parameter PAPI_uri is required"));
            }
            // Every URI checked before any is deleted: a refused request
            // changes nothing.
            for uri in &uris {
                if uri.is_empty() || uri.contains('\0') || uri.len() > crate::MAX_URI_BYTES {
                    return Err(Error::InvalidUri { uri: uri.clone(), reason: "not a valid URI".into() }.into());
                }
            }
            let mut last = Serial(0);
            for uri in uris {
                last = index.delete(&uri)?;
            }
            serial(last)
        }
        "delete_documents_root_path" => {
            serial(index.delete_root_path(&fields.required("PAPI_rootPath")?, fields.bool("PAPI_recursive", true)?)?)
        }
        "delete_documents_with_prefix" => serial(index.delete_with_prefix(&fields.required("PAPI_prefix")?)?),
        "get_documents_status" => {
            let mut out = String::new();
            for uri in fields.all("PAPI_uri")? {
                let s = index.status(&uri)?;
                out.push_str(&format!(
                    "{} {} {} {} {}\n",
                    encode(&uri),
                    encode(&s.stamp),
                    s.exists(),
                    state_word(s.state),
                    s.serial.0
                ));
            }
            Ok(out)
        }
        "enumerate_synced_entries" => {
            let root = fields.text("PAPI_rootPath")?.unwrap_or_default();
            let mut out = String::new();
            for entry in index.enumerate_synced(&root, fields.mode()?)? {
                match entry? {
                    Entry::Document(d) => out.push_str(&format!("D {} {}\n", encode(&d.uri), encode(&d.stamp))),
                    Entry::Folder(f) => out.push_str(&format!("F {}\n", encode(&f))),
                }
            }
            Ok(out)
        }
        "count_synced_entries" => {
            let root = fields.text("PAPI_rootPath")?.unwrap_or_default();
            Ok(count_synced(index, &root, fields.mode()?)?.to_string())
        }
        "set_checkpoint" => {
            let value = fields.required("PAPI_checkpoint")?;
            let cp = checkpoint_name(fields)?;
            let sync = fields.bool("PAPI_sync", false)?;
            let s = state.checkpoints.set(index, &cp, &value)?;
            if sync {
                super::metrics::sync(index)?;
            }
            serial(s)
        }
        "get_checkpoint" => {
            let cp = checkpoint_name(fields)?;
            state.checkpoints.synced_value(index, &cp)?.ok_or_else(|| {
                ApiError::not_found(format!("no synced checkpoint named {cp:?} (sync, or PAPI_sync=true)"))
            })
        }
        "get_checkpoint_info" => {
            let cp = checkpoint_name(fields)?;
            let value = if fields.bool("PAPI_showSynchronizedOnly", true)? {
                state.checkpoints.synced_value(index, &cp)?
            } else {
                index.checkpoint(&cp)?.map(|c| c.value)
            };
            value.ok_or_else(|| ApiError::not_found(format!("no checkpoint named {cp:?}")))
        }
        "enumerate_checkpoints_info" => {
            let synced_only = fields.bool("PAPI_showSynchronizedOnly", false)?;
            let checkpoints: Vec<(String, Option<String>)> = if synced_only {
                // Names deleted since their synced value count too.
                let mut out = Vec::new();
                for name in state.checkpoints.names(index)? {
                    let value = state.checkpoints.synced_value(index, &name)?;
                    out.push((name, value));
                }
                out
            } else {
                index.checkpoints()?.into_iter().map(|c| (c.name, Some(c.value))).collect()
            };
            let mut out = String::new();
            for (name, value) in checkpoints {
                if let Some(value) = value {
                    out.push_str(&format!("{} {}\n", encode(&name), escape_value(&value)));
                }
            }
            Ok(out)
        }
        "clear_all_checkpoints" => serial(state.checkpoints.clear(index)?),
        "sync" => serial(super::metrics::sync(index)?),
        "trigger_indexing_job" => serial(super::metrics::refresh(index)?),
        "are_documents_searchable" => {
            let s: u64 = fields
                .required("PAPI_serial")?
                .parse()
                .map_err(|_| ApiError::invalid("PAPI_serial: a serial, decimal"))?;
            Ok((index.state_of(Serial(s)) == DocState::Searchable).to_string())
        }
        _ => Err(ApiError::not_found(format!("no Push API command {command:?}"))),
    }
}

/// What the fields `PAPI_<docid>:<field>` of one document say.
#[derive(Default)]
struct PapiDocument {
    uri: Option<String>,
    stamp: Option<String>,
    metas: Vec<(String, String)>,
    /// Part name → (bytes, content type of the file part).
    parts: Vec<(String, Vec<u8>, Option<String>)>,
    directives: HashMap<(String, String), String>,
    removed: Vec<String>,
}

/// The documents of a request, in the order their first field appears.
fn documents(fields: &Fields) -> ApiResult<Vec<PapiDocument>> {
    let mut order: Vec<String> = Vec::new();
    let mut docs: HashMap<String, PapiDocument> = HashMap::new();
    for f in &fields.0 {
        let Some(rest) = f.name.strip_prefix("PAPI_") else { continue };
        let Some((docid, field)) = rest.split_once(':') else { continue };
        if docid.is_empty() || !docid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            continue;
        }
        if !docs.contains_key(docid) {
            order.push(docid.to_string());
        }
        let doc = docs.entry(docid.to_string()).or_default();
        let text = || {
            String::from_utf8(f.value.clone()).map_err(|_| ApiError::invalid(format!("field {} is not UTF-8", f.name)))
        };
        if field == "uri" {
            if doc.uri.is_some() {
                return Err(ApiError::invalid(format!("document {docid} has two uri fields")));
            }
            doc.uri = Some(text()?);
        } else if field == "stamp" {
            doc.stamp = Some(text()?);
        } else if let Some(meta) = field.strip_prefix("meta:") {
            doc.metas.push((meta.to_string(), text()?));
        } else if let Some(part) = field.strip_prefix("part_bytes:") {
            doc.parts.push((part.to_string(), f.value.clone(), f.content_type.clone()));
        } else if let Some(rest) = field.strip_prefix("part_directive:") {
            if let Some((part, directive)) = rest.rsplit_once(':') {
                doc.directives.insert((part.to_string(), directive.to_string()), text()?);
            }
        } else if let Some(part) = field.strip_prefix("remove_part:") {
            doc.removed.push(part.to_string());
        }
        // Anything else (url, public_url, directive:*, ...) is accepted and ignored.
    }
    order
        .into_iter()
        .map(|id| {
            let doc = docs.remove(&id).expect("every id has a document");
            if doc.uri.is_none() {
                return Err(ApiError::invalid(format!("document {id} has no uri field (PAPI_{id}:uri)")));
            }
            Ok(doc)
        })
        .collect()
}

/// A part as the index stores it: text (full-text indexed) or binary.
enum Content {
    Text(String),
    Binary(Vec<u8>),
}

impl PapiDocument {
    fn content(&self, part: &str, bytes: &[u8], file_type: Option<&str>) -> Content {
        let directive = |d: &str| self.directives.get(&(part.to_string(), d.to_string())).map(String::as_str);
        let mime =
            directive("mimeHint").or(file_type).map(|m| m.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        let texty = mime.as_deref().is_none_or(|m| m.starts_with("text/") || m == "application/xhtml+xml");
        if !texty {
            return Content::Binary(bytes.to_vec());
        }
        // Any encoding label of the WHATWG Encoding Standard (`utf8`,
        // `latin1`, `windows-1252`, `shift_jis`, ...); bytes that do not
        // decode, or an unknown label, make a binary part.
        let decoded = match directive("encoding").map(str::to_ascii_lowercase).as_deref() {
            None | Some("utf-8" | "utf8") => String::from_utf8(bytes.to_vec()).ok(),
            Some(label) => {
                let label = if label == "latin-1" { "latin1" } else { label };
                encoding_rs::Encoding::for_label(label.as_bytes()).and_then(|encoding| {
                    encoding.decode_without_bom_handling_and_without_replacement(bytes).map(|text| text.into_owned())
                })
            }
        };
        let Some(text) = decoded else { return Content::Binary(bytes.to_vec()) };
        if matches!(mime.as_deref(), Some("text/html" | "application/xhtml+xml")) {
            return Content::Text(crate::extract::visible_text(&text));
        }
        Content::Text(text)
    }

    fn document(self) -> ApiResult<Document> {
        let mut doc =
            Document::new(self.uri.clone().unwrap_or_default()).with_stamp(self.stamp.clone().unwrap_or_default());
        for (name, value) in &self.metas {
            doc = doc.with_meta(name.clone(), value.clone());
        }
        for (part, bytes, file_type) in &self.parts {
            doc = match self.content(part, bytes, file_type.as_deref()) {
                Content::Text(text) => doc.with_text(part.clone(), text),
                Content::Binary(bytes) => doc.with_part(part.clone(), bytes),
            };
        }
        Ok(doc)
    }

    fn update(self) -> ApiResult<(String, Update)> {
        let mut update = Update::new();
        if let Some(stamp) = &self.stamp {
            update = update.stamp(stamp.clone());
        }
        let mut names: Vec<&str> = self.metas.iter().map(|(n, _)| n.as_str()).collect();
        names.dedup();
        for name in names {
            let values: Vec<String> = self.metas.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect();
            update = update.meta(name.to_string(), values);
        }
        for (part, bytes, file_type) in &self.parts {
            update = match self.content(part, bytes, file_type.as_deref()) {
                Content::Text(text) => update.text(part.clone(), text),
                Content::Binary(bytes) => update.part(part.clone(), bytes),
            };
        }
        for part in &self.removed {
            update = update.remove_part(part.clone());
        }
        Ok((self.uri.unwrap_or_default(), update))
    }
}
