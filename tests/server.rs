//! `pushdex serve` as its clients use it: the real binary on a free port,
//! real HTTP requests, SIGTERM. (The Push API and live-source dialects, and
//! the crash, load and bad-input must-shows of the server issue, come with
//! those dialects.)

#![cfg(feature = "server")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

const TOKEN: &str = "test-token-0123456789abcdef";

/// A running server, stopped (SIGKILL) when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pushdex"))
            .args(["serve", "--listen", "127.0.0.1:0", "--token", TOKEN, "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            // PUSHDEX_TEST_SERVER_LOG=1 shows the servers' request logs.
            .stderr(if std::env::var_os("PUSHDEX_TEST_SERVER_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(base.starts_with("http://127.0.0.1:"), "{line}");
        Server { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, and the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        unsafe_free_kill(self.child.id(), "TERM");
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_free_kill(pid: u32, signal: &str) {
    assert!(Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap().success());
}

/// A request's status and JSON body (`Value::Null` when not JSON).
fn call(method: &str, url: &str, auth: Option<&str>, body: Option<(&str, &str)>) -> (u16, Value, String) {
    let mut request = ureq::request(method, url);
    if let Some(auth) = auth {
        request = request.set("Authorization", auth);
    }
    let result = match body {
        Some((content_type, body)) => request.set("Content-Type", content_type).send_string(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let www = response.header("WWW-Authenticate").unwrap_or_default().to_string();
    let text = response.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), www)
}

fn bearer() -> Option<&'static str> {
    Some("Bearer test-token-0123456789abcdef")
}

fn get(server: &Server, path: &str) -> (u16, Value) {
    let (status, body, _) = call("GET", &server.url(path), bearer(), None);
    (status, body)
}

fn post_json(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    let (status, body, _) = call("POST", &server.url(path), bearer(), Some(("application/json", &body.to_string())));
    (status, body)
}

#[test]
fn every_route_but_health_needs_the_token() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    for (method, path) in [
        ("GET", "/v1"),
        ("GET", "/v1/indexes"),
        ("PUT", "/v1/indexes/a"),
        ("POST", "/v1/indexes/a/sync"),
        ("GET", "/nowhere"),
    ] {
        for auth in [None, Some("Bearer wrong"), Some("Basic dXNlcjp3cm9uZw=="), Some("Token x")] {
            let (status, body, www) = call(method, &server.url(path), auth, None);
            assert_eq!(status, 401, "{method} {path} {auth:?}");
            assert_eq!(body["error"], "unauthorized", "{body}");
            assert!(www.contains("Basic"), "{www}");
        }
    }
    // Nothing was created by the refused PUT.
    assert_eq!(get(&server, "/v1/indexes").1, json!([]));
    // Basic with any user name and the token as password.
    let basic = format!("Basic {}", base64_encode(&format!("anyone:{TOKEN}")));
    assert_eq!(call("GET", &server.url("/v1"), Some(&basic), None).0, 200);
    assert_eq!(call("GET", &server.url("/health/live"), None, None).0, 200);
    assert_eq!(call("GET", &server.url("/health/ready"), None, None).0, 200);
    assert_eq!(get(&server, "/nowhere").0, 404);
}

fn base64_encode(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn indexes_documents_barriers_and_search() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    assert_eq!(call("PUT", &server.url("/v1/indexes/docs"), bearer(), None).0, 201);
    assert_eq!(call("PUT", &server.url("/v1/indexes/docs"), bearer(), None).0, 200);
    let (status, body) = post_json(
        &server,
        "/v1/indexes/docs/documents?wait=synced",
        &json!([
            {"uri": "share/a.txt", "stamp": "1", "metas": {"author": "ann", "tag": ["x", "y"]}, "text": {"body": "quarterly report"}},
            {"uri": "share/b.bin", "binary": {"raw": "AAEC"}}
        ]),
    );
    assert_eq!(
        (status, &body["count"], &body["last_serial"], &body["state"]),
        (200, &json!(2), &json!(2), &json!("Synced")),
        "{body}"
    );
    let (status, doc) = get(&server, "/v1/indexes/docs/documents?uri=share/a.txt");
    assert_eq!(status, 200);
    assert_eq!(doc["metas"], json!({"author": "ann", "tag": ["x", "y"]}));
    assert_eq!(doc["text"]["body"], "quarterly report");
    assert_eq!(doc["state"], "Synced");
    assert_eq!(get(&server, "/v1/indexes/docs/documents?uri=share/b.bin").1["binary"]["raw"], "AAEC");
    assert_eq!(get(&server, "/v1/indexes/docs/documents?uri=nope").0, 404);
    let (_, statuses) = get(&server, "/v1/indexes/docs/status?uri=share/b.bin&uri=nope");
    assert_eq!(statuses[0]["serial"], 2);
    assert_eq!(statuses[1]["state"], "Initial");

    // NDJSON, searchable at once.
    let ndjson = "{\"uri\": \"share/c.txt\", \"text\": {\"body\": \"annual report\"}}\n\n{\"uri\": \"other/d\"}\n";
    let (status, body, _) = call(
        "POST",
        &server.url("/v1/indexes/docs/documents?wait=searchable"),
        bearer(),
        Some(("application/x-ndjson", ndjson)),
    );
    assert_eq!((status, &body["state"]), (200, &json!("Searchable")), "{body}");
    let (_, hits) = get(&server, "/v1/indexes/docs/search?q=report&count=true");
    assert_eq!(hits["count"], 2, "{hits}");
    let uris: Vec<&str> = hits["hits"].as_array().unwrap().iter().map(|h| h["uri"].as_str().unwrap()).collect();
    assert_eq!(uris.len(), 2);
    // Bare words are ranked by default (mode=natural); mode=strict needs
    // them all; a part no searchable document has is a 400 naming the parts.
    let (_, hits) = get(&server, "/v1/indexes/docs/search?q=annual+report+nowhere&count=true");
    assert_eq!(hits["count"], 1, "{hits}");
    let (_, hits) = get(&server, "/v1/indexes/docs/search?q=annual+report+nowhere&mode=strict&count=true");
    assert_eq!(hits["count"], 0, "{hits}");
    // Paging: the second hit alone, the count of all.
    let (_, both) = get(&server, "/v1/indexes/docs/search?q=report&limit=2");
    let (_, second) = get(&server, "/v1/indexes/docs/search?q=report&offset=1&limit=1&count=true");
    assert_eq!((&second["hits"][0], &second["count"]), (&both["hits"][1], &json!(2)), "{second}");
    let (_, second) = post_json(&server, "/v1/indexes/docs/search", &json!({"q": "report", "offset": 1}));
    assert_eq!(second["hits"], json!([both["hits"][1]]), "{second}");
    assert_eq!(get(&server, "/v1/indexes/docs/search?q=report&offset=9999&limit=2").0, 400);
    let (_, faceted) = get(&server, "/v1/indexes/docs/search?q=report&facet=nothing&count=true");
    assert_eq!((&faceted["total"], &faceted["facets"]), (&json!(2), &json!([{"name": "nothing", "values": []}])));
    let (_, hits) = post_json(&server, "/v1/indexes/docs/search", &json!({"q": "annual nowhere", "mode": "strict"}));
    assert_eq!(hits["hits"], json!([]), "{hits}");
    let (status, body) = get(&server, "/v1/indexes/docs/search?q=a&mode=fuzzy");
    assert_eq!((status, &body["error"]), (400, &json!("invalid_input")), "{body}");
    let (status, body) = get(&server, "/v1/indexes/docs/search?q=title:report");
    assert_eq!((status, &body["error"]), (400, &json!("invalid_input")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("(the text parts: body)"), "{body}");
    assert_eq!(get(&server, "/v1/indexes/docs/count?root=share").1["count"], 3);
    assert_eq!(get(&server, "/v1/indexes/docs/watermarks").1, json!({"last": 4, "synced": 4, "searchable": 4}));

    // Deletion; barriers.
    let (status, body, _) = call("DELETE", &server.url("/v1/indexes/docs/documents?uri=share/a.txt"), bearer(), None);
    assert_eq!((status, &body["serial"]), (200, &json!(5)));
    assert_eq!(post_json(&server, "/v1/indexes/docs/sync", &json!({})).1, json!({"synced": 5}));
    assert_eq!(post_json(&server, "/v1/indexes/docs/refresh", &json!({})).1, json!({"searchable": 5}));

    let (_, list) = get(&server, "/v1/indexes");
    assert_eq!(list[0]["name"], "docs");
    assert_eq!(list[0]["documents"], 3);
    assert_eq!(call("DELETE", &server.url("/v1/indexes/docs"), bearer(), None).0, 204);
    assert_eq!(get(&server, "/v1/indexes/docs").0, 404);
    assert!(!data.path().join("indexes/docs").exists());
}

#[test]
fn search_sort_snippet_and_titles() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let docs = json!([
        {"uri": "s/a", "metas": {"date": "2024-03", "title": "March"}, "text": {"body": "the quarterly report of march"}},
        {"uri": "s/b", "metas": {"date": "2024-01"}, "text": {"body": "a report, early"}},
        {"uri": "s/c", "metas": {"date": "2024-02", "title": "February"}, "text": {"body": "report report report"}}
    ]);
    assert_eq!(post_json(&server, "/v1/indexes/s/documents?wait=searchable", &docs).0, 200);

    // Every hit has "title" (the title meta, else the first line of the
    // text) and "snippet" (null unless asked for).
    let (status, plain) = get(&server, "/v1/indexes/s/search?q=report");
    assert_eq!(status, 200, "{plain}");
    let mut titles: Vec<(&str, &str)> = Vec::new();
    for hit in plain["hits"].as_array().unwrap() {
        let fields = hit.as_object().unwrap();
        assert!(fields.contains_key("title") && fields.contains_key("snippet"), "{hit}");
        assert_eq!(hit["snippet"], Value::Null, "no snippet= asked: {hit}");
        titles.push((hit["uri"].as_str().unwrap(), hit["title"].as_str().unwrap()));
    }
    titles.sort();
    assert_eq!(titles, [("s/a", "March"), ("s/b", "a report, early"), ("s/c", "February")], "{plain}");

    // sort= (GET) and "sort" (POST) in the three spellings reach the library.
    let descending = ["sort=-date", "sort=date:desc", "sort=date:DESC"];
    for (params, want) in descending
        .iter()
        .map(|p| (*p, ["s/a", "s/c", "s/b"]))
        .chain([("sort=date", ["s/b", "s/c", "s/a"]), ("sort=date:asc", ["s/b", "s/c", "s/a"])])
    {
        for (status, body) in [
            get(&server, &format!("/v1/indexes/s/search?q=report&{params}")),
            post_json(&server, "/v1/indexes/s/search", &json!({"q": "report", "sort": &params["sort=".len()..]})),
        ] {
            assert_eq!(status, 200, "{params}: {body}");
            let uris: Vec<&str> = body["hits"].as_array().unwrap().iter().map(|h| h["uri"].as_str().unwrap()).collect();
            assert_eq!(uris, want, "{params}: {body}");
        }
    }
    // A sort that does not parse is a 400 naming it, from GET and POST.
    for bad in ["", "-", ":desc", "date:descending", "date:", "-date:asc"] {
        let query = form_urlencoded_value(bad);
        for (status, body) in [
            get(&server, &format!("/v1/indexes/s/search?q=report&sort={query}")),
            post_json(&server, "/v1/indexes/s/search", &json!({"q": "report", "sort": bad})),
        ] {
            assert_eq!((status, &body["error"]), (400, &json!("invalid_input")), "sort={bad:?}: {body}");
            let message = body["message"].as_str().unwrap();
            assert!(message.starts_with("sort="), "sort={bad:?}: {message}");
        }
    }

    // snippet= names a text part; another is a 400 naming the parts.
    let (status, body) = get(&server, "/v1/indexes/s/search?q=report&snippet=nothere");
    assert_eq!((status, &body["error"]), (400, &json!("invalid_input")), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("snippet=") && body["message"].as_str().unwrap().contains("body")
    );
    for (status, body) in [
        get(&server, "/v1/indexes/s/search?q=quarterly&snippet=body"),
        post_json(&server, "/v1/indexes/s/search", &json!({"q": "quarterly", "snippet": "body"})),
    ] {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["hits"][0]["uri"], "s/a", "{body}");
        assert_eq!(body["hits"][0]["snippet"], "the <b>quarterly</b> report of march", "{body}");
        assert_eq!(body["hits"][0]["title"], "March", "{body}");
    }
}

/// `folders=ROOT` (GET) and `"folders"` (POST): the matches counted by the
/// folder directly under the root, each folder whole (a root for `under:`),
/// its count the total of that `under:` refinement; in the query's mode; a
/// bad root or limit is a 400 like other bad search input.
#[test]
fn search_folder_facets() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let docs = json!([
        {"uri": "f/a/1", "text": {"body": "report"}},
        {"uri": "f/a/2", "text": {"body": "report"}},
        {"uri": "f/a/deep/3", "text": {"body": "report"}},
        {"uri": "f/b/4", "text": {"body": "report"}},
        {"uri": "f/top", "text": {"body": "report"}},
        {"uri": "f/c/5", "text": {"body": "report other"}},
        {"uri": "g/x/6", "text": {"body": "report"}},
        {"uri": "/abs/7", "text": {"body": "report"}},
        {"uri": "h/8", "text": {"body": "nothing"}}
    ]);
    assert_eq!(post_json(&server, "/v1/indexes/f/documents?wait=searchable", &docs).0, 200);
    let folders = |body: &Value| -> Vec<(String, u64)> {
        let values = body["folders"]["values"].as_array().unwrap_or_else(|| panic!("no folders: {body}"));
        values.iter().map(|v| (v["folder"].as_str().unwrap().to_string(), v["count"].as_u64().unwrap())).collect()
    };
    let pairs =
        |want: &[(&str, u64)]| -> Vec<(String, u64)> { want.iter().map(|(f, n)| (f.to_string(), *n)).collect() };

    let (status, plain) = get(&server, "/v1/indexes/f/search?q=report");
    assert_eq!(status, 200, "{plain}");
    assert!(plain.get("folders").is_none(), "no folders= asked: {plain}");
    let under_f = pairs(&[("f/a/", 3), ("f/b/", 1), ("f/c/", 1)]);
    let top = pairs(&[("f/", 6), ("/", 1), ("g/", 1)]);
    for (root, want) in [("f", &under_f), ("f/", &under_f), ("", &top), ("f/a", &pairs(&[("f/a/deep/", 1)]))] {
        for (status, body) in [
            get(&server, &format!("/v1/indexes/f/search?q=report&folders={}", form_urlencoded_value(root))),
            post_json(&server, "/v1/indexes/f/search", &json!({"q": "report", "folders": root})),
        ] {
            assert_eq!(status, 200, "folders={root:?}: {body}");
            assert_eq!(body["folders"]["root"], root, "{body}");
            assert_eq!(&folders(&body), want, "folders={root:?}: {body}");
        }
        // Each count is what searching in that folder finds.
        for (folder, count) in want {
            let refined = json!({"q": format!("report under:\"{folder}\""), "count": true, "folders": folder});
            let (status, body) = post_json(&server, "/v1/indexes/f/search", &refined);
            assert_eq!((status, body["total"].as_u64()), (200, Some(*count)), "{folder}: {body}");
            assert!(body["hits"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["uri"].as_str().unwrap().starts_with(folder.as_str())));
        }
    }
    // folder_limit: the fullest first.
    let (_, body) = get(&server, "/v1/indexes/f/search?q=report&folders=f&folder_limit=1");
    assert_eq!(folders(&body), pairs(&[("f/a/", 3)]), "{body}");
    let (_, body) =
        post_json(&server, "/v1/indexes/f/search", &json!({"q": "report", "folders": "", "folder_limit": 2}));
    assert_eq!(folders(&body), pairs(&[("f/", 6), ("/", 1)]), "{body}");
    // The hits' mode: natural ranks two of three words, strict needs all.
    let (_, body) = get(&server, "/v1/indexes/f/search?q=report+other+zzz&folders=f&count=true");
    assert_eq!((folders(&body), &body["total"]), (pairs(&[("f/c/", 1)]), &json!(1)), "{body}");
    let (_, body) = get(&server, "/v1/indexes/f/search?q=report+other+zzz&mode=strict&folders=f&count=true");
    assert_eq!((folders(&body), &body["total"]), (Vec::new(), &json!(0)), "{body}");
    // A root that is not one, a limit out of bounds: 400 invalid_input.
    let long = "r".repeat(5000);
    for (status, body) in [
        get(&server, "/v1/indexes/f/search?q=report&folders=a%00b"),
        post_json(&server, "/v1/indexes/f/search", &json!({"q": "report", "folders": "a\u{0}b"})),
        get(&server, &format!("/v1/indexes/f/search?q=report&folders={long}")),
        post_json(&server, "/v1/indexes/f/search", &json!({"q": "report", "folders": long})),
    ] {
        assert_eq!((status, &body["error"]), (400, &json!("invalid_input")), "{body}");
        assert!(body["message"].as_str().unwrap().starts_with("folders="), "{body}");
    }
    for (status, body) in [
        get(&server, "/v1/indexes/f/search?q=report&folders=f&folder_limit=0"),
        get(&server, "/v1/indexes/f/search?q=report&folders=f&folder_limit=10001"),
        get(&server, "/v1/indexes/f/search?q=report&folders=f&folder_limit=many"),
        post_json(&server, "/v1/indexes/f/search", &json!({"q": "report", "folders": "f", "folder_limit": 0})),
    ] {
        assert_eq!((status, &body["error"]), (400, &json!("invalid_input")), "{body}");
        assert!(body["message"].as_str().unwrap().contains("folder_limit"), "{body}");
    }
    let negative = json!({"q": "report", "folders": "f", "folder_limit": -1});
    assert_eq!(post_json(&server, "/v1/indexes/f/search", &negative).0, 400);
}

/// `s` percent-encoded for a query string (every byte but unreserved ones).
fn form_urlencoded_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn refused_requests_change_nothing() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--max-body-bytes", "1000"]);
    // A bad first write creates no index.
    for body in [json!([{"stamp": "no uri"}]), json!([{"uri": ""}]), json!([]), json!({"uri": "not an array"})] {
        let (status, reply) = post_json(&server, "/v1/indexes/fresh/documents", &body);
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(reply["error"] == "invalid_input" || reply["error"] == "invalid_uri", "{reply}");
    }
    let (status, reply) = post_json(&server, "/v1/indexes/.hidden/documents", &json!([{"uri": "a"}]));
    assert_eq!((status, &reply["error"]), (400, &json!("invalid_input")));
    assert_eq!(get(&server, "/v1/indexes").1, json!([]));
    assert_eq!(get(&server, "/v1/indexes/fresh").0, 404);

    post_json(&server, "/v1/indexes/i/documents", &json!([{"uri": "a"}]));
    let before = get(&server, "/v1/indexes/i/watermarks").1;
    let (status, reply, _) = call("POST", &server.url("/v1/indexes/i/documents"), bearer(), Some(("text/csv", "a,b")));
    assert_eq!((status, &reply["error"]), (415, &json!("unsupported_media_type")));
    let big = json!([{"uri": "b", "text": {"body": "x".repeat(2000)}}]);
    let (status, reply) = post_json(&server, "/v1/indexes/i/documents", &big);
    assert_eq!((status, &reply["error"]), (413, &json!("payload_too_large")));
    assert!(reply["message"].as_str().unwrap().contains("1000 bytes"), "{reply}");
    let (status, reply) = post_json(&server, "/v1/indexes/i/documents?wait=soon", &json!([{"uri": "c"}]));
    assert_eq!((status, &reply["error"]), (400, &json!("invalid_input")));
    // A stale push session.
    let (status, reply, _) = {
        let r = ureq::post(&server.url("/v1/indexes/i/documents"))
            .set("Authorization", bearer().unwrap())
            .set("X-Push-Session", "12345")
            .send_json(json!([{"uri": "d"}]));
        let response = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let status = response.status();
        (status, response.into_json::<Value>().unwrap(), ())
    };
    assert_eq!((status, &reply["error"]), (409, &json!("session_mismatch")));
    assert_eq!(get(&server, "/v1/indexes/i/watermarks").1, before, "a refused request changed the index");
}

#[test]
fn sigterm_stops_cleanly_and_everything_pushed_is_there_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let docs: Vec<Value> = (0..50).map(|i| json!({"uri": format!("d/{i}")})).collect();
    let (status, _) = post_json(&server, "/v1/indexes/keep/documents", &Value::Array(docs));
    assert_eq!(status, 200);
    let session = get(&server, "/v1/indexes/keep").1["session"].clone();
    assert!(server.terminate().success());
    // The index directory opens as an ordinary index while the server is down.
    let index = pushdex::Index::open_existing(data.path().join("indexes/keep")).unwrap();
    assert_eq!(index.count("", pushdex::EnumerationMode::RecursiveDocuments).unwrap(), 50);
    drop(index);
    let server = Server::start(data.path(), &[]);
    let (_, info) = get(&server, "/v1/indexes/keep");
    assert_eq!(info["documents"], 50);
    assert_ne!(info["session"], session, "a restart is a new session");
}

/// A multipart body, as Push API exporters send it: every field a part,
/// plain values as file parts with an empty file name.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----pushdexTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, content_type, value) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"\"\r\n").as_bytes(),
        );
        body.extend_from_slice(format!("Content-Type: {}\r\n\r\n", content_type.unwrap_or("text/plain")).as_bytes());
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A Push API command: status and text body.
fn papi(server: &Server, method: &str, command: &str, query: &str, body: Option<(String, Vec<u8>)>) -> (u16, String) {
    let url = server.url(&format!("/papi/4/connectors/pushed/{command}{query}"));
    let basic = format!("Basic {}", base64_encode(&format!("papi:{TOKEN}")));
    let request = ureq::request(method, &url).set("Authorization", &basic);
    let result = match body {
        Some((content_type, bytes)) => request.set("Content-Type", &content_type).send_bytes(&bytes),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{command}: {e}"),
    };
    (response.status(), response.into_string().unwrap())
}

fn form(pairs: &[(&str, &str)]) -> Option<(String, Vec<u8>)> {
    let body: String = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", k, v.bytes().map(|b| format!("%{b:02X}")).collect::<String>()))
        .collect::<Vec<_>>()
        .join("&");
    Some(("application/x-www-form-urlencoded".to_string(), body.into_bytes()))
}

#[test]
fn a_push_api_client_s_wire_format_and_every_command() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let (status, session) = papi(&server, "GET", "get_current_session_id", "", None);
    assert_eq!(status, 200);
    let session: u64 = session.parse().unwrap();
    assert_eq!(papi(&server, "GET", "ping", "", None), (200, "OK".to_string()));
    assert_eq!(papi(&server, "POST", "ping", "", None).0, 405);
    assert_eq!(papi(&server, "GET", "sync", "", None).0, 405);
    assert_eq!(papi(&server, "GET", "nonsense", "", None).0, 404);
    // A refused command creates no index; an accepted one does.
    let (status, _) = papi(&server, "POST", "delete_documents_with_prefix", "", form(&[("PAPI_prefix", "")]));
    assert_eq!(status, 400);
    let url = server.url("/papi/4/connectors/never/delete_documents_with_prefix");
    let (status, _, _) = call("POST", &url, bearer(), Some(("application/x-www-form-urlencoded", "PAPI_prefix=")));
    assert_eq!(status, 400);
    assert_eq!(get(&server, "/v1/indexes/never").0, 404, "a refused Push API command created an index");

    let html = b"<html><head><style>.hidden { color: red }</style><script>var secretword = 1;</script></head>\
        <body><h1>Quarterly&nbsp;report</h1><p class=\"markupclass\">Revenue went <b>up</b>.</p></body></html>";
    let (content_type, body) = multipart(&[
        ("PAPI_d1:uri", None, b"eno:bo:master"),
        ("PAPI_d1:url", None, b"http://example.com/ignored"),
        ("PAPI_d1:public_url", None, b"http://example.com/ignored-too"),
        ("PAPI_d1:stamp", None, b"v1"),
        ("PAPI_d1:meta:author", None, b"ann"),
        ("PAPI_d1:meta:author", None, b"bob"),
        ("PAPI_d1:part_bytes:master", Some("text/html"), html),
        ("PAPI_d1:part_directive:master:encoding", None, b"utf8"),
        ("PAPI_d2:uri", None, b"eno:bo:masterpart"),
        ("PAPI_d2:part_bytes:master", Some("application/octet-stream"), &[0, 159, 146, 150]),
        ("PAPI_d3:uri", None, b"eno:bo:masterpart:subpart1"),
        ("PAPI_d4:uri", None, b"eno:bo:master:subpart2"),
        ("PAPI_d5:uri", None, b"eno:bo:other"),
        ("PAPI_d6:uri", None, b"share/a/x.txt"),
        ("PAPI_d7:uri", None, b"share/a/b/y.txt"),
    ]);
    let (status, last) = papi(&server, "POST", "add_documents", "", Some((content_type, body)));
    assert_eq!((status, last.as_str()), (200, "7"));
    // Repeated metas kept in order; url and public_url ignored; the HTML
    // part stored as its visible text, the octet stream as bytes.
    let (_, doc) = get(&server, "/v1/indexes/pushed/documents?uri=eno:bo:master");
    assert_eq!(doc["metas"], json!({"author": ["ann", "bob"]}), "{doc}");
    assert_eq!(doc["stamp"], "v1");
    let text = doc["text"]["master"].as_str().unwrap();
    assert!(text.contains("Quarterly") && text.contains("Revenue went") && !text.contains('<'), "{text}");
    assert!(!doc.to_string().contains("example.com"), "url and public_url are ignored: {doc}");
    let (_, binary) = get(&server, "/v1/indexes/pushed/documents?uri=eno:bo:masterpart");
    assert_eq!(binary["binary"]["master"], "AJ+Slg==", "{binary}");

    // Status lines: URI, stamp, exists, state, serial; percent-encoded.
    let (_, lines) = papi(&server, "GET", "get_documents_status", "?PAPI_uri=eno:bo:master&PAPI_uri=nope%20x", None);
    assert_eq!(lines, "eno%3Abo%3Amaster v1 true Pushed 1\nnope%20x  false Initial 0\n");
    // Nothing synced yet: synced enumeration is empty.
    assert_eq!(papi(&server, "GET", "count_synced_entries", "?PAPI_rootPath=share", None).1, "0");
    assert_eq!(papi(&server, "POST", "sync", "", None), (200, "7".to_string()));
    assert_eq!(papi(&server, "GET", "count_synced_entries", "?PAPI_rootPath=share", None).1, "2");
    let (_, entries) =
        papi(&server, "GET", "enumerate_synced_entries", "?PAPI_rootPath=share/a&PAPI_mode=NOT_RECURSIVE_ALL", None);
    assert_eq!(entries, "F share%2Fa%2Fb%2F\nD share%2Fa%2Fx.txt \n");

    // Checkpoints: get_checkpoint answers the newest synced value only.
    assert_eq!(papi(&server, "POST", "set_checkpoint", "", form(&[("PAPI_checkpoint", "page 1")])).0, 200);
    assert_eq!(papi(&server, "GET", "get_checkpoint", "", None).0, 404, "not synced yet");
    assert_eq!(papi(&server, "GET", "get_checkpoint_info", "?PAPI_showSynchronizedOnly=false", None).1, "page 1");
    papi(&server, "POST", "set_checkpoint", "", form(&[("PAPI_checkpoint", "page 2"), ("PAPI_sync", "true")]));
    assert_eq!(papi(&server, "GET", "get_checkpoint", "", None), (200, "page 2".to_string()));
    papi(&server, "POST", "set_checkpoint", "", form(&[("PAPI_checkpoint", "page\n3"), ("PAPI_name", "other")]));
    papi(&server, "POST", "set_checkpoint", "", form(&[("PAPI_checkpoint", "page 4")]));
    assert_eq!(papi(&server, "GET", "get_checkpoint", "", None).1, "page 2", "the newest synced value");
    assert_eq!(papi(&server, "GET", "get_checkpoint_info", "?PAPI_showSynchronizedOnly=false", None).1, "page 4");
    assert_eq!(papi(&server, "GET", "enumerate_checkpoints_info", "", None).1, "default page 4\nother page\\n3\n");

    // The guide's raw-prefix example, and a root path.
    let (status, _) =
        papi(&server, "POST", "delete_documents_with_prefix", "", form(&[("PAPI_prefix", "eno:bo:master")]));
    assert_eq!(status, 200);
    let (_, lines) = papi(
        &server,
        "GET",
        "get_documents_status",
        "?PAPI_uri=eno:bo:masterpart&PAPI_uri=eno:bo:master:subpart2&PAPI_uri=eno:bo:other",
        None,
    );
    let exists: Vec<&str> = lines.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert_eq!(exists, ["false", "false", "true"], "{lines}");
    papi(
        &server,
        "POST",
        "delete_documents_root_path",
        "",
        form(&[("PAPI_rootPath", "share/a"), ("PAPI_recursive", "false")]),
    );
    let (_, lines) =
        papi(&server, "GET", "get_documents_status", "?PAPI_uri=share/a/x.txt&PAPI_uri=share/a/b/y.txt", None);
    assert!(lines.starts_with("share%2Fa%2Fx.txt  false") && lines.contains("y.txt  true"), "{lines}");

    // Deletion by URI (repeated): the serial of the last one.
    let before: u64 = papi(&server, "POST", "sync", "", None).1.parse().unwrap();
    let (status, serial) = papi(
        &server,
        "POST",
        "delete_documents",
        "",
        form(&[("PAPI_uri", "share/a/b/y.txt"), ("PAPI_uri", "eno:bo:masterpart:subpart1")]),
    );
    assert_eq!((status, serial.parse::<u64>().unwrap()), (200, before + 2));
    let (_, lines) = papi(
        &server,
        "GET",
        "get_documents_status",
        "?PAPI_uri=share/a/b/y.txt&PAPI_uri=eno:bo:masterpart:subpart1",
        None,
    );
    assert_eq!(lines.lines().filter(|l| l.split(' ').nth(2) == Some("false")).count(), 2, "{lines}");

    // Update: a missing URI refuses, saying how many were applied.
    let (content_type, body) = multipart(&[
        ("PAPI_u1:uri", None, b"eno:bo:other"),
        ("PAPI_u1:stamp", None, b"v2"),
        ("PAPI_u2:uri", None, b"gone"),
        ("PAPI_u2:stamp", None, b"v2"),
    ]);
    let (status, text) = papi(&server, "POST", "update_documents", "", Some((content_type, body)));
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("1 updates of the request were applied"), "{text}");
    let (_, lines) = papi(&server, "GET", "get_documents_status", "?PAPI_uri=eno:bo:other", None);
    assert!(lines.starts_with("eno%3Abo%3Aother v2 true"), "{lines}");

    // Searchable: the visible text of the HTML, not its markup.
    let (content_type, body) =
        multipart(&[("PAPI_h:uri", None, b"html/page"), ("PAPI_h:part_bytes:master", Some("text/html"), html)]);
    let (_, last) = papi(&server, "POST", "add_documents", "", Some((content_type, body)));
    assert_eq!(papi(&server, "GET", "are_documents_searchable", &format!("?PAPI_serial={last}"), None).1, "false");
    let (_, searchable) = papi(&server, "POST", "trigger_indexing_job", "", None);
    assert_eq!(searchable, last);
    assert_eq!(papi(&server, "GET", "are_documents_searchable", &format!("?PAPI_serial={last}"), None).1, "true");
    let count =
        |q: &str| get(&server, &format!("/v1/indexes/pushed/search?q={q}&count=true")).1["count"].as_u64().unwrap();
    assert_eq!(count("quarterly"), 1);
    assert_eq!(count("revenue"), 1);
    for markup in ["html", "markupclass", "secretword", "hidden", "nbsp", "style"] {
        assert_eq!(count(markup), 0, "{markup} is markup, not text");
    }

    // A stale session changes nothing.
    let (status, text) =
        papi(&server, "POST", "clear_all_checkpoints", &format!("?PAPI_session={}", session + 1), None);
    assert_eq!(status, 409, "{text}");
    assert_eq!(papi(&server, "GET", "get_checkpoint_info", "?PAPI_showSynchronizedOnly=false", None).1, "page 4");
    assert_eq!(papi(&server, "POST", "clear_all_checkpoints", &format!("?PAPI_session={session}"), None).0, 200);
    assert_eq!(papi(&server, "GET", "enumerate_checkpoints_info", "", None).1, "");
}

/// `python3` with `requests`, installed with pip if missing (a test that
/// needs it provisions it rather than skip).
fn python_with_requests() -> &'static str {
    let has = |py: &str| Command::new(py).args(["-c", "import requests"]).status().is_ok_and(|s| s.success());
    if !has("python3") {
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "requests"])
            .status()
            .expect("python3 runs");
        assert!(installed.success() && has("python3"), "python3 -m pip install requests failed");
    }
    "python3"
}

/// The live-source guide's three snippets (jobStatus and sourceDocuments as
/// GET with a JSON body, DELETE with a JSON body), as Python `requests`
/// runs them; the server is SIGKILLed right after the 204.
const GUIDE: &str = r#"
import json, sys, time, requests
base, token, directory = sys.argv[1], sys.argv[2], sys.argv[3]
headers = {"Authorization": "Bearer " + token}
r = requests.post(base + "/layar/liveSource", headers=headers, json={
    "liveSourceType": "FILE_SYSTEM", "name": "guide", "description": "the guide's tree",
    "url": "file://" + directory, "runMode": "SCAN_ONCE"})
assert r.status_code == 201, r.text
source = r.json()
sid = source["id"]
assert source["liveSourceType"] == "FILE_SYSTEM" and source["description"] == "the guide's tree", source

# Snippet 1: the job status, a GET with a JSON body.
for _ in range(600):
    status = requests.get(base + "/layar/liveSource/" + sid + "/jobStatus", headers=headers, json={"id": sid}).json()
    if status["status"] in ("done", "error", "aborted"):
        break
    time.sleep(0.05)
assert status["status"] == "done", status
assert status["job_id"] == sid + "-1", status

# Snippet 2: the source documents, page by page, a GET with a JSON body.
uris, start = [], 0
while True:
    page = requests.get(base + "/layar/liveSource/" + sid + "/sourceDocuments", headers=headers,
                        json={"id": sid, "rows": 7, "start": start}).json()
    assert page["start"] == start and page["rows"] == 7, page
    if not page["documents"]:
        break
    for d in page["documents"]:
        assert d["id"] == d["uri"] and d["name"] == d["uri"].rsplit("/", 1)[1], d
        assert d["state"] == "Searchable" and d["metadata"]["file_name"] == [d["name"]], d
    uris += [d["uri"] for d in page["documents"]]
    start += len(page["documents"])
assert uris == sorted(uris) and len(set(uris)) == len(uris) == page["total"], (uris, page)
print(json.dumps({"documents": len(uris)}), flush=True)

# A body id that is not the path's is refused.
r = requests.get(base + "/layar/liveSource/" + sid + "/jobStatus", headers=headers, json={"id": "c999"})
assert r.status_code == 400, r.text

# Snippet 3: delete, with a JSON body.
r = requests.delete(base + "/layar/liveSource/" + sid, headers=headers, json={"id": sid})
assert r.status_code == 204 and r.content == b"", (r.status_code, r.content)
print(json.dumps({"deleted": sid}), flush=True)
"#;

#[test]
fn the_live_source_guide_s_python_snippets_run_unchanged() {
    let python = python_with_requests();
    let data = tempfile::tempdir().unwrap();
    let sources = tempfile::tempdir().unwrap();
    let tree = sources.path().join("tree");
    for i in 0..30 {
        let path = tree.join(format!("d{}/file{i:02}.txt", i % 4));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("file number {i}")).unwrap();
    }
    let tree = std::fs::canonicalize(&tree).unwrap();
    let root = sources.path().to_str().unwrap().to_string();
    let mut server = Server::start(data.path(), &["--source-root", &root]);
    let out = Command::new(python).args(["-c", GUIDE, &server.base, TOKEN, tree.to_str().unwrap()]).output().unwrap();
    // SIGKILL right after the 204: the deletion was durable before it.
    let _ = server.child.kill();
    let _ = server.child.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("{\"documents\": 30}"), "{stdout}");
    drop(server);
    let server = Server::start(data.path(), &["--source-root", &root]);
    assert_eq!(get(&server, "/layar/liveSource").1, json!([]));
    let (_, count) = get(&server, &format!("/v1/indexes/default/count?root=file://{}", tree.display()));
    assert_eq!(count["count"], 0, "the deleted live source's documents came back after a crash");

    // Outside every --source-root: 403, and nothing created.
    let (status, body) = post_json(
        &server,
        "/layar/liveSource",
        &json!({"liveSourceType": "FILE_SYSTEM", "name": "etc", "url": "/etc"}),
    );
    assert_eq!((status, &body["error"]), (403, &json!("forbidden")));
    let (status, body) =
        post_json(&server, "/layar/liveSource", &json!({"liveSourceType": "WEB", "name": "w", "url": "http://x"}));
    assert_eq!((status, &body["error"]), (400, &json!("invalid_input")));
    assert_eq!(get(&server, "/layar/liveSource").1, json!([]));
}

fn send(server: &Server, method: &str, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let (status, value, _) = call(method, &server.url(path), bearer(), Some((content_type, body)));
    (status, value)
}

#[test]
fn bulk_updates_deletions_enumeration_checkpoints_and_serials() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let bulk = [
        r#"{"add": {"uri": "a/1", "stamp": "s1", "metas": {"k": "v"}, "text": {"body": "one"}}}"#,
        r#"{"add": {"uri": "a/2"}}"#,
        r#"{"add": {"uri": "b/x/3"}}"#,
        r#"{"update": {"uri": "a/1", "stamp": "s2", "metas": {"k": ["v1", "v2"]}, "remove_parts": ["body"]}}"#,
        r#"{"update": {"uri": "missing", "stamp": "s"}}"#,
        r#"{"frobnicate": {}}"#,
        r#"not json"#,
        r#"{"set_checkpoint": {"name": "crawl", "value": "page 1"}}"#,
        r#"{"set_checkpoint": {"name": "pushdex.x", "value": "refused"}}"#,
        r#"{"delete": {"uri": "a/2"}}"#,
    ]
    .join("\n");
    let (status, reply) = send(&server, "POST", "/v1/indexes/b/bulk?wait=synced", "application/x-ndjson", &bulk);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["errors"], true);
    assert_eq!(reply["state"], "Synced");
    let items = reply["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    let serials: Vec<Value> = items.iter().map(|i| i["serial"].clone()).collect();
    assert_eq!(serials[..4], [json!(1), json!(2), json!(3), json!(4)]);
    assert_eq!(items[4]["error"], "not_found");
    assert_eq!(items[5]["error"], "invalid_input");
    assert_eq!(items[6]["error"], "invalid_input");
    assert_eq!(
        (serials[7].clone(), &items[8]["error"], serials[9].clone()),
        (json!(5), &json!("invalid_input"), json!(6))
    );
    let doc = get(&server, "/v1/indexes/b/documents?uri=a/1").1;
    assert_eq!((&doc["stamp"], &doc["metas"]["k"], &doc["text"]), (&json!("s2"), &json!(["v1", "v2"]), &json!({})));

    // PATCH: an update; 404 for a URI the index does not hold.
    let (status, reply) =
        send(&server, "PATCH", "/v1/indexes/b/documents?uri=a/1", "application/json", r#"{"stamp": "s3"}"#);
    assert_eq!((status, &reply["serial"]), (200, &json!(7)), "{reply}");
    let (status, _) =
        send(&server, "PATCH", "/v1/indexes/b/documents?uri=nope", "application/json", r#"{"stamp": "s"}"#);
    assert_eq!(status, 404);

    // Enumeration as NDJSON, and the synced view.
    let (_, _, _) = call("POST", &server.url("/v1/indexes/b/sync"), bearer(), None);
    let text = ureq::get(&server.url("/v1/indexes/b/enumerate?mode=not_recursive_all"))
        .set("Authorization", bearer().unwrap())
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, [json!({"folder": "a/"}), json!({"folder": "b/"})]);
    let text = ureq::get(&server.url("/v1/indexes/b/enumerate?root=a"))
        .set("Authorization", bearer().unwrap())
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let line: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!((&line["uri"], &line["stamp"], &line["state"]), (&json!("a/1"), &json!("s3"), &json!("Synced")));
    assert_eq!(get(&server, "/v1/indexes/b/enumerate?mode=sideways").0, 400);

    // Deletions by root path and prefix.
    let (status, reply) =
        send(&server, "POST", "/v1/indexes/b/delete", "application/json", r#"{"root_path": "b", "recursive": true}"#);
    assert_eq!((status, &reply["serial"]), (200, &json!(8)));
    let (status, _) = send(&server, "POST", "/v1/indexes/b/delete", "application/json", r#"{"prefix": ""}"#);
    assert_eq!(status, 400);
    assert_eq!(get(&server, "/v1/indexes/b/count").1["count"], 1);

    // Checkpoints.
    let (status, _) = send(&server, "PUT", "/v1/indexes/b/checkpoints/other", "application/json", r#"{"value": "x"}"#);
    assert_eq!(status, 200);
    let (_, list) = get(&server, "/v1/indexes/b/checkpoints");
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["crawl", "other"]);
    assert_eq!(get(&server, "/v1/indexes/b/checkpoints/crawl").1["value"], "page 1");
    assert_eq!(get(&server, "/v1/indexes/b/checkpoints/pushdex.connectors.next").0, 400);
    let (status, _) =
        send(&server, "PUT", "/v1/indexes/b/checkpoints/pushdex.x", "application/json", r#"{"value": "x"}"#);
    assert_eq!(status, 400);
    assert_eq!(call("DELETE", &server.url("/v1/indexes/b/checkpoints/other"), bearer(), None).0, 200);
    assert_eq!(get(&server, "/v1/indexes/b/checkpoints/other").0, 404);
    assert_eq!(call("DELETE", &server.url("/v1/indexes/b/checkpoints"), bearer(), None).0, 200);
    assert_eq!(get(&server, "/v1/indexes/b/checkpoints").1, json!([]));

    // Serials' states.
    assert_eq!(get(&server, "/v1/indexes/b/serials/1").1["state"], "Synced");
    let last = get(&server, "/v1/indexes/b/watermarks").1["last"].as_u64().unwrap();
    assert_eq!(get(&server, &format!("/v1/indexes/b/serials/{}", last + 5)).1["state"], "Initial");
    let (status, reply) = get(&server, "/v1/indexes/b/serials/abc");
    assert_eq!((status, &reply["error"]), (400, &json!("invalid_input")));
}

/// Must-show 3 of the server issue: 8 clients writing with `wait=synced`,
/// the server SIGKILLed mid-stream and restarted, in repeated trials: every
/// acknowledged document is there; the session changed, and a request with
/// the old one gets 409 and changes nothing.
#[test]
fn acknowledged_synced_writes_survive_sigkill_under_load() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    const CLIENTS: usize = 8;
    const TRIALS: usize = 3;
    let data = tempfile::tempdir().unwrap();
    let mut acknowledged: Vec<String> = Vec::new();
    for trial in 0..TRIALS {
        let mut server = Server::start(data.path(), &[]);
        let (_, info) = get(&server, "/v1/indexes/load");
        let old_session = info["session"].as_u64();
        let acks = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (url, acks, stop) =
                    (server.url("/v1/indexes/load/documents?wait=synced"), acks.clone(), stop.clone());
                std::thread::spawn(move || {
                    // Bounded: at most 5,000 requests a client.
                    for i in 0..5000 {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let uri = format!("t{trial}/c{c}/d{i}");
                        let reply = ureq::post(&url)
                            .set("Authorization", bearer().unwrap())
                            .timeout(std::time::Duration::from_secs(10))
                            .send_json(json!([{"uri": uri, "stamp": "s"}]));
                        match reply {
                            Ok(r) if r.status() == 200 => {
                                let body: Value = r.into_json().unwrap();
                                assert_eq!(body["state"], "Synced");
                                acks.lock().unwrap().push(uri);
                            }
                            _ => break, // the server is gone
                        }
                    }
                })
            })
            .collect();
        // Kill once enough writes were acknowledged (or after 5 s).
        let started = std::time::Instant::now();
        while acks.lock().unwrap().len() < 200 * (trial + 1) && started.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = server.child.kill();
        let _ = server.child.wait();
        stop.store(true, Ordering::SeqCst);
        for client in clients {
            client.join().unwrap();
        }
        acknowledged.extend(acks.lock().unwrap().drain(..));
        assert!(!acknowledged.is_empty(), "trial {trial}: nothing was acknowledged");
        drop(server);

        let server = Server::start(data.path(), &[]);
        for chunk in acknowledged.chunks(200) {
            let query: Vec<String> = chunk.iter().map(|u| format!("uri={u}")).collect();
            let (status, statuses) = get(&server, &format!("/v1/indexes/load/status?{}", query.join("&")));
            assert_eq!(status, 200);
            for s in statuses.as_array().unwrap() {
                assert_eq!(s["state"], "Synced", "trial {trial}: an acknowledged write is lost: {s}");
            }
        }
        let (_, info) = get(&server, "/v1/indexes/load");
        assert_ne!(info["session"].as_u64(), old_session, "trial {trial}: the session did not change");
        if let Some(old) = old_session {
            let before = get(&server, "/v1/indexes/load/watermarks").1;
            let reply = ureq::post(&server.url("/v1/indexes/load/documents"))
                .set("Authorization", bearer().unwrap())
                .set("X-Push-Session", &old.to_string())
                .send_json(json!([{"uri": "stale"}]));
            assert!(matches!(reply, Err(ureq::Error::Status(409, _))), "trial {trial}: a stale session was accepted");
            assert_eq!(get(&server, "/v1/indexes/load/watermarks").1, before);
        }
        eprintln!("trial {trial}: {} writes acknowledged so far, all there", acknowledged.len());
    }
}

/// A raw GET: status, Content-Type and body text.
fn get_text(url: &str, auth: Option<&str>) -> (u16, String, String) {
    let mut request = ureq::get(url);
    if let Some(auth) = auth {
        request = request.set("Authorization", auth);
    }
    let response = match request.call() {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = response.status();
    let content_type = response.header("Content-Type").unwrap_or_default().to_string();
    (status, content_type, response.into_string().unwrap())
}

/// The value of the sample `line_start` (a metric name and its labels) in
/// a Prometheus text exposition.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
}

#[test]
fn health_metrics_and_the_refresh_interval() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--refresh-interval", "0.2"]);
    // Health needs no token.
    assert_eq!(get_text(&server.url("/health/live"), None).0, 200);
    let (status, _, body) = get_text(&server.url("/health/ready"), None);
    assert_eq!(status, 200, "{body}");

    // Pushed only: the interval makes it Searchable without a request.
    let (status, body) = post_json(
        &server,
        "/v1/indexes/m/documents",
        &json!([{"uri": "a/1", "text": {"body": "alpha"}}, {"uri": "a/2", "text": {"body": "beta"}}]),
    );
    assert_eq!((status, &body["state"]), (200, &json!("Pushed")), "{body}");
    let mut searchable = false;
    for _ in 0..100 {
        if get(&server, "/v1/indexes/m/watermarks").1["searchable"] == 2 {
            searchable = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(searchable, "--refresh-interval 0.2 did not refresh within 10 s");
    assert_eq!(get(&server, "/v1/indexes/m/search?q=alpha").1["hits"][0]["uri"], "a/1");
    post_json(&server, "/v1/indexes/m/sync", &json!({}));

    // Metrics need the token, and are the Prometheus text format.
    assert_eq!(get_text(&server.url("/metrics"), None).0, 401);
    let (status, content_type, text) = get_text(&server.url("/metrics"), bearer());
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let requests = r#"pushdex_http_requests_total{method="POST",route="/v1/indexes/{name}/documents",status="200"}"#;
    assert_eq!(sample(&text, requests), Some(1.0), "{text}");
    assert!(text.contains("# TYPE pushdex_http_request_duration_seconds histogram"), "{text}");
    assert_eq!(sample(&text, r#"pushdex_index_documents{index="m"}"#), Some(2.0), "{text}");
    assert_eq!(sample(&text, r#"pushdex_index_serial{index="m",watermark="searchable"}"#), Some(2.0), "{text}");
    assert!(sample(&text, r#"pushdex_syncs_total{index="m"}"#) >= Some(1.0), "{text}");
    assert!(sample(&text, r#"pushdex_refreshes_total{index="m"}"#) >= Some(1.0), "{text}");
    assert!(sample(&text, r#"pushdex_index_bytes_written_total{index="m"}"#) > Some(100.0), "{text}");
    assert_eq!(sample(&text, r#"pushdex_index_takes_writes{index="m"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"pushdex_import_jobs{state="running"}"#), Some(0.0), "{text}");
    // Routes are patterns: no URI or index name in a route label.
    assert!(!text.contains("route=\"/v1/indexes/m"), "{text}");

    // An index that does not open makes the server not ready, and says which.
    let broken = data.path().join("indexes/broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("MANIFEST"), b"not a manifest").unwrap();
    std::fs::write(broken.join("LOCK"), b"").unwrap();
    let (status, content_type, body) = get_text(&server.url("/health/ready"), None);
    assert_eq!(status, 503, "{body}");
    assert!(content_type.starts_with("application/json"), "{content_type}");
    assert!(body.contains("broken"), "{body}");
    // The others still serve.
    assert_eq!(get(&server, "/v1/indexes/m/count").1["count"], 2);
}

#[test]
fn without_a_refresh_interval_states_move_only_on_request() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    post_json(&server, "/v1/indexes/q/documents", &json!([{"uri": "a/1", "text": {"body": "alpha"}}]));
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(get(&server, "/v1/indexes/q/watermarks").1, json!({"last": 1, "synced": 0, "searchable": 0}));
}

/// Any request: status, JSON body (`Null` if not JSON), Content-Type and
/// Retry-After.
fn request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, Value, String, Option<String>) {
    let mut request = ureq::request(method, &server.url(path));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(bytes) => request.send_bytes(bytes),
        None => request.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = response.status();
    let content_type = response.header("Content-Type").unwrap_or_default().to_string();
    let retry_after = response.header("Retry-After").map(str::to_string);
    let text = response.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), content_type, retry_after)
}

/// Everything a refused request must leave as it was: the index `e`'s
/// watermarks, documents and checkpoints, and the list of indexes.
fn snapshot(server: &Server) -> Value {
    json!({
        "indexes": get(server, "/v1/indexes").1.as_array().unwrap().iter().map(|i| i["name"].clone()).collect::<Vec<_>>(),
        "watermarks": get(server, "/v1/indexes/e/watermarks").1,
        "documents": get(server, "/v1/indexes/e/count").1,
        "checkpoints": get(server, "/v1/indexes/e/checkpoints").1,
    })
}

/// Must-show 4 of the server issue: every row of HTTP.md's error table,
/// each answered in JSON with its code, changing nothing, the server
/// answering on.
#[test]
fn every_row_of_the_error_table_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let roots = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = roots.path().to_str().unwrap().to_string();
    let server = Server::start(data.path(), &["--max-body-bytes", "4096", "--source-root", &root]);
    let (status, _) = post_json(&server, "/v1/indexes/e/documents?wait=synced", &json!([{"uri": "a/1", "stamp": "s"}]));
    assert_eq!(status, 200);
    put_checkpoint(&server, "e", "cp", "v1");
    let session = get(&server, "/v1/indexes/e").1["session"].as_u64().unwrap().to_string();
    let mut before = snapshot(&server);

    let auth = ("Authorization", "Bearer test-token-0123456789abcdef");
    let json_type = ("Content-Type", "application/json");
    let basic = format!("Basic {}", base64_encode(&format!("papi:{TOKEN}")));
    let papi_auth = ("Authorization", basic.as_str());
    let stale = if session == "1" { "2" } else { "1" };
    let papi_sync = format!("/papi/4/connectors/e/sync?PAPI_session={stale}");
    let big = format!("[{{\"uri\": \"a/2\", \"text\": {{\"body\": \"{}\"}}}}]", "x".repeat(5000));
    let outside_url = format!("file://{}", outside.path().display());
    let outside_source = json!({"liveSourceType": "FILE_SYSTEM", "url": outside_url}).to_string();
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Option<Vec<u8>>, u16, &'a str);
    let cases: Vec<Case> = vec![
        // invalid_uri
        (
            "POST",
            "/v1/indexes/e/documents",
            vec![auth, json_type],
            Some(br#"[{"uri": ""}]"#.to_vec()),
            400,
            "invalid_uri",
        ),
        (
            "POST",
            "/v1/indexes/e/delete",
            vec![auth, json_type],
            Some(br#"{"prefix": "a\u0000"}"#.to_vec()),
            400,
            "invalid_uri",
        ),
        ("DELETE", "/v1/indexes/e/documents?uri=a%00b", vec![auth], None, 400, "invalid_uri"),
        // invalid_input: bad parameter, bad JSON, bad multipart, bad name
        (
            "POST",
            "/v1/indexes/e/documents?wait=soon",
            vec![auth, json_type],
            Some(br#"[{"uri": "a/3"}]"#.to_vec()),
            400,
            "invalid_input",
        ),
        ("POST", "/v1/indexes/e/documents", vec![auth, json_type], Some(b"[{\"uri\": ".to_vec()), 400, "invalid_input"),
        (
            "POST",
            "/v1/indexes/e/bulk",
            vec![auth, ("Content-Type", "application/x-ndjson")],
            Some(b"\xff\xfe".to_vec()),
            400,
            "invalid_input",
        ),
        ("GET", "/v1/indexes/e/search?q=a&limit=zero", vec![auth], None, 400, "invalid_input"),
        ("GET", "/v1/indexes/e/enumerate?mode=sideways", vec![auth], None, 400, "invalid_input"),
        (
            "PUT",
            "/v1/indexes/e/checkpoints/pushdex.mine",
            vec![auth, json_type],
            Some(br#"{"value": "x"}"#.to_vec()),
            400,
            "invalid_input",
        ),
        ("PUT", "/v1/indexes/.e", vec![auth], None, 400, "invalid_input"),
        ("PUT", "/v1/indexes/e%2Fx", vec![auth], None, 400, "invalid_input"),
        (
            "POST",
            "/papi/4/connectors/e/add_documents",
            vec![papi_auth, ("Content-Type", "multipart/form-data; boundary=xyz")],
            Some(b"--xyz\r\nnot a part".to_vec()),
            400,
            "invalid_input",
        ),
        // unauthorized
        (
            "POST",
            "/v1/indexes/e/documents",
            vec![json_type],
            Some(br#"[{"uri": "a/4"}]"#.to_vec()),
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/v1/indexes/e/documents",
            vec![("Authorization", "Bearer nope"), json_type],
            Some(br#"[{"uri": "a/4"}]"#.to_vec()),
            401,
            "unauthorized",
        ),
        // forbidden
        (
            "POST",
            "/layar/liveSource",
            vec![auth, json_type],
            Some(outside_source.clone().into_bytes()),
            403,
            "forbidden",
        ),
        // not_found: index, URI, checkpoint, connector, route
        ("GET", "/v1/indexes/nope/watermarks", vec![auth], None, 404, "not_found"),
        (
            "PATCH",
            "/v1/indexes/e/documents?uri=a/none",
            vec![auth, json_type],
            Some(br#"{"stamp": "t"}"#.to_vec()),
            404,
            "not_found",
        ),
        ("GET", "/v1/indexes/e/documents?uri=a/none", vec![auth], None, 404, "not_found"),
        ("GET", "/v1/indexes/e/checkpoints/none", vec![auth], None, 404, "not_found"),
        ("GET", "/layar/liveSource/nope/jobStatus", vec![auth], None, 404, "not_found"),
        ("GET", "/v2/anything", vec![auth], None, 404, "not_found"),
        // method_not_allowed
        ("GET", "/papi/4/connectors/e/add_documents", vec![papi_auth], None, 405, "method_not_allowed"),
        ("PUT", "/v1/indexes/e/documents", vec![auth], None, 405, "method_not_allowed"),
        // session_mismatch, in both dialects
        (
            "POST",
            "/v1/indexes/e/documents",
            vec![auth, json_type, ("X-Push-Session", stale)],
            Some(br#"[{"uri": "a/5"}]"#.to_vec()),
            409,
            "session_mismatch",
        ),
        ("POST", &papi_sync, vec![papi_auth], Some(Vec::new()), 409, "session_mismatch"),
        // payload_too_large (Content-Length over the limit)
        (
            "POST",
            "/v1/indexes/e/documents",
            vec![auth, json_type],
            Some(big.clone().into_bytes()),
            413,
            "payload_too_large",
        ),
        // unsupported_media_type
        (
            "POST",
            "/v1/indexes/e/documents",
            vec![auth, ("Content-Type", "text/csv")],
            Some(b"uri\na/6".to_vec()),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/indexes/e/search",
            vec![auth, ("Content-Type", "text/plain")],
            Some(br#"{"q": "a"}"#.to_vec()),
            415,
            "unsupported_media_type",
        ),
    ];
    for (method, path, headers, body, status, code) in &cases {
        let (got, reply, content_type, _) = request(&server, method, path, headers, body.as_deref());
        assert_eq!((got, reply["error"].as_str().unwrap_or("(no JSON)")), (*status, *code), "{method} {path}: {reply}");
        assert!(content_type.starts_with("application/json"), "{method} {path}: {content_type}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()), "{method} {path}: {reply}");
        assert_eq!(snapshot(&server), before, "{method} {path} changed something");
    }
    // 413 for a chunked body (no Content-Length) as it passes the limit.
    let chunked = ureq::post(&server.url("/v1/indexes/e/documents"))
        .set("Authorization", auth.1)
        .set("Content-Type", "application/json")
        .send(std::io::Cursor::new(big.clone().into_bytes()));
    let response = match chunked {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(response.status(), 413);
    let reply: Value = response.into_json().unwrap();
    assert!(reply["message"].as_str().unwrap().contains("4096 bytes"), "{reply}");
    assert_eq!(snapshot(&server), before);

    // conflict: an import while one runs (a source big enough that the
    // second request finds the first under way; tried a few times).
    let source = roots.path().join("share");
    std::fs::create_dir(&source).unwrap();
    for i in 0..3000 {
        std::fs::write(source.join(format!("f{i:05}.txt")), format!("file {i}")).unwrap();
    }
    let create = json!({"liveSourceType": "FILE_SYSTEM", "url": format!("file://{}", source.display())});
    let (status, created) = post_json(&server, "/layar/liveSource", &create);
    assert!(status == 200 || status == 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    before["indexes"] = json!(["default", "e"]);
    let mut conflicted = false;
    for attempt in 0..5 {
        let job = |server: &Server| get(server, &format!("/layar/liveSource/{id}/jobStatus")).1;
        while job(&server)["status"] == "running" {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for i in 0..3000 {
            std::fs::write(source.join(format!("f{i:05}.txt")), format!("file {i}, run {attempt}")).unwrap();
        }
        let (status, _) = post_json(&server, &format!("/layar/liveSource/{id}/import"), &json!({}));
        if status == 409 {
            // The source's own first import may still be running.
        } else {
            assert_eq!(status, 202);
        }
        let running = job(&server);
        let (status, reply) = post_json(&server, &format!("/layar/liveSource/{id}/import"), &json!({}));
        if status == 409 {
            assert_eq!(reply["error"], "conflict", "{reply}");
            assert_eq!(job(&server)["job_id"], running["job_id"], "the refused import started a job");
            conflicted = true;
            break;
        }
    }
    assert!(conflicted, "no import was still running when the second was asked for, in 5 attempts");
    assert_eq!(snapshot(&server), before);

    // 503 unavailable: an index that another process holds.
    let held = pushdex::Index::open(data.path().join("indexes/held")).unwrap();
    let (status, reply, ..) = request(&server, "GET", "/v1/indexes/held/watermarks", &[auth], None);
    assert_eq!((status, reply["error"].as_str()), (503, Some("unavailable")), "{reply}");
    drop(held);
    // 500 corrupt: an index whose manifest is damaged.
    let broken = data.path().join("indexes/broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("MANIFEST"), b"not a manifest").unwrap();
    std::fs::write(broken.join("LOCK"), b"").unwrap();
    let (status, reply, ..) = request(&server, "GET", "/v1/indexes/broken/watermarks", &[auth], None);
    assert_eq!((status, reply["error"].as_str()), (500, Some("corrupt")), "{reply}");
    // The list shows it with its error, and the others as they were.
    let (_, list) = get(&server, "/v1/indexes");
    let broken = list.as_array().unwrap().iter().find(|i| i["name"] == "broken").expect("listed");
    assert_eq!(broken["error"], "corrupt", "{list}");
    assert_eq!(get(&server, "/v1/indexes/e/watermarks").1, before["watermarks"]);
}

fn put_checkpoint(server: &Server, index: &str, name: &str, value: &str) {
    let url = server.url(&format!("/v1/indexes/{index}/checkpoints/{name}"));
    let (status, reply, _) =
        call("PUT", &url, bearer(), Some(("application/json", &json!({ "value": value }).to_string())));
    assert_eq!(status, 200, "{reply}");
}

/// Writes `bytes` on a new connection and reads the answer (until the
/// server closes, or 10 s).
fn raw(server: &Server, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let address = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                // One answer is enough: stop at the end of a JSON body.
                if answer.ends_with(b"}") || answer.ends_with(b"\r\n\r\n") && answer.starts_with(b"HTTP/1.1 4") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Must-show 4, the connections: garbage bytes, a Content-Length far over
/// the limit, 200 idle connections, more requests in flight than the
/// limit, and no token on every route: each answered (or the connection
/// closed), nothing changed, the server serving on.
#[test]
fn hostile_connections_leave_the_server_serving() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--max-body-bytes", "4096"]);
    post_json(&server, "/v1/indexes/e/documents?wait=synced", &json!([{"uri": "a/1"}]));
    let before = snapshot(&server);

    // Garbage on the socket: a 400, or a closed connection; never a crash.
    for garbage in [
        &b"\x00\xff\xfe garbage \r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /v1/indexes/e/documents HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"GET /v1 HTTP/1.1\r\nHost: \x01\x02\r\nAuthorization: \xff\xff\r\n\r\n",
        &[b'A'; 1_000_000][..],
    ] {
        let answer = raw(&server, garbage);
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{garbage:?}: {answer}");
    }
    assert_eq!(snapshot(&server), before);

    // A Content-Length far over the limit: without the token, 401 first;
    // with it, 413 stating the limit, before the body is read.
    let head = |auth: &str| {
        format!(
            "POST /v1/indexes/e/documents HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: 999999999999\r\n\r\n[{{\"uri\": \"a/2\"}}"
        )
    };
    let answer = raw(&server, head("").as_bytes());
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let answer = raw(&server, head(&format!("Authorization: Bearer {TOKEN}\r\n")).as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("4096 bytes"), "{answer}");
    assert_eq!(snapshot(&server), before);

    // 200 idle connections: the server answers others meanwhile.
    let address = server.base.trim_start_matches("http://").to_string();
    let idle: Vec<std::net::TcpStream> = (0..200).map(|_| std::net::TcpStream::connect(&address).unwrap()).collect();
    assert_eq!(get(&server, "/v1/indexes/e/count").1["count"], 1);
    drop(idle);

    // More than 512 requests in flight: each of 512 connections sends a
    // request whose body never comes (the request holds its slot while it
    // waits for it); then a probe should get 429 with Retry-After. A loaded
    // machine may take a while to dispatch them all (and a slot of an
    // earlier request may be released a moment late), so more are added,
    // a few at a time, until a probe is refused: at most 1000 connections
    // and 60 s.
    let mut waiting = Vec::new();
    let mut refused = None;
    let started = std::time::Instant::now();
    while refused.is_none() && waiting.len() < 1000 && started.elapsed() < std::time::Duration::from_secs(60) {
        for _ in 0..if waiting.is_empty() { 512 } else { 4 } {
            use std::io::Write;
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            let request = format!(
                "POST /v1/indexes/e/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n["
            );
            stream.write_all(request.as_bytes()).unwrap();
            waiting.push(stream);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (status, reply, _, retry_after) =
            request(&server, "GET", "/v1/indexes/e/count", &[("Authorization", bearer().unwrap())], None);
        if status == 429 {
            refused = Some((reply, retry_after));
        }
    }
    let (reply, retry_after) = refused.expect("no 429 with 512 requests in flight");
    assert_eq!(reply["error"], "too_many_requests", "{reply}");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok()), "Retry-After");
    drop(waiting);
    let mut served = false;
    for _ in 0..100 {
        if request(&server, "GET", "/v1/indexes/e/count", &[("Authorization", bearer().unwrap())], None).0 == 200 {
            served = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(served, "the server did not serve again once the requests in flight went");
    assert_eq!(snapshot(&server), before, "the abandoned requests changed something");

    // No token, on every route of every dialect: 401, nothing created.
    let routes = [
        ("GET", "/v1"),
        ("GET", "/v1/indexes"),
        ("GET", "/v1/indexes/n"),
        ("PUT", "/v1/indexes/n"),
        ("DELETE", "/v1/indexes/e"),
        ("POST", "/v1/indexes/n/documents"),
        ("GET", "/v1/indexes/e/documents?uri=a/1"),
        ("PATCH", "/v1/indexes/e/documents?uri=a/1"),
        ("DELETE", "/v1/indexes/e/documents?uri=a/1"),
        ("POST", "/v1/indexes/n/bulk"),
        ("POST", "/v1/indexes/e/delete"),
        ("GET", "/v1/indexes/e/status?uri=a/1"),
        ("GET", "/v1/indexes/e/enumerate"),
        ("GET", "/v1/indexes/e/count"),
        ("GET", "/v1/indexes/e/checkpoints"),
        ("DELETE", "/v1/indexes/e/checkpoints"),
        ("GET", "/v1/indexes/e/checkpoints/c"),
        ("PUT", "/v1/indexes/n/checkpoints/c"),
        ("DELETE", "/v1/indexes/e/checkpoints/c"),
        ("POST", "/v1/indexes/e/sync"),
        ("POST", "/v1/indexes/e/refresh"),
        ("GET", "/v1/indexes/e/watermarks"),
        ("GET", "/v1/indexes/e/serials/1"),
        ("GET", "/v1/indexes/e/search?q=a"),
        ("POST", "/v1/indexes/e/search"),
        ("GET", "/papi/4/connectors/n/get_current_session_id"),
        ("POST", "/papi/4/connectors/n/add_documents"),
        ("POST", "/layar/liveSource"),
        ("GET", "/layar/liveSource"),
        ("GET", "/layar/liveSource/x"),
        ("DELETE", "/layar/liveSource/x"),
        ("GET", "/layar/liveSource/x/jobStatus"),
        ("GET", "/layar/liveSource/x/importStatus"),
        ("GET", "/layar/liveSource/x/sourceDocuments"),
        ("POST", "/layar/liveSource/x/import"),
        ("POST", "/layar/liveSource/x/stop"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/nowhere"),
    ];
    for (method, path) in routes {
        let body = (method != "GET" && method != "DELETE").then_some(&b"{}"[..]);
        let (status, reply, _, _) = request(&server, method, path, &[("Content-Type", "application/json")], body);
        assert_eq!((status, reply["error"].as_str()), (401, Some("unauthorized")), "{method} {path}: {reply}");
    }
    assert_eq!(snapshot(&server), before);
}

/// Must-show 4's fuzzing: Schemathesis (installed from PyPI when missing)
/// reads `/openapi.json` and sends a bounded number of generated requests
/// (fixed seed) to every `/v1` and `/layar` operation: no 5xx, no status,
/// content type or body that the description does not allow.
#[test]
fn schemathesis_finds_no_5xx_and_nothing_against_the_spec() {
    let has = || Command::new("python3").args(["-c", "import schemathesis"]).status().is_ok_and(|s| s.success());
    if !has() {
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "schemathesis"])
            .status()
            .expect("python3 runs");
        assert!(installed.success() && has(), "python3 -m pip install schemathesis failed");
    }
    let data = tempfile::tempdir().unwrap();
    let roots = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--source-root", roots.path().to_str().unwrap()]);
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let output = Command::new("python3")
        .args(["-m", "schemathesis.cli", "run"])
        .arg(server.url("/openapi.json"))
        .args(["--url", &server.base])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--max-examples", "25", "--seed", "1", "--request-timeout", "30", "--generation-database", "none"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .env("SCHEMATHESIS_HOOKS", "pushdex_hooks")
        .env("PYTHONPATH", &hooks)
        .env("NO_COLOR", "1")
        .current_dir(data.path())
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("Tested: 34"), "not every operation was tested:\n{report}");
    // The server is still up and consistent.
    assert_eq!(get(&server, "/v1").0, 200);
}

/// Found by a review against HTTP.md: the synced checkpoint value across
/// dialects, clears and a removed index; refused first requests that left
/// an index behind; a stale session on a sync or a read; the live sources
/// after their index was removed; a bulk `recursive` that was not a bool.
#[test]
fn review_findings_checkpoints_creations_sessions_and_live_sources() {
    let data = tempfile::tempdir().unwrap();
    let roots = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--source-root", roots.path().to_str().unwrap()]);
    let get_cp = |name: &str| papi(&server, "GET", "get_checkpoint", &format!("?PAPI_name={name}"), None);
    let set_cp = |name: &str, value: &str, sync: &str| {
        let (status, _) = papi(
            &server,
            "POST",
            "set_checkpoint",
            "",
            form(&[("PAPI_name", name), ("PAPI_checkpoint", value), ("PAPI_sync", sync)]),
        );
        assert_eq!(status, 200);
    };
    // A /v1 write after a synced Push API one: the newest synced value.
    set_cp("a", "v1", "true");
    set_cp("a", "v2", "false");
    post_json(&server, "/v1/indexes/pushed/sync", &json!({}));
    put_checkpoint(&server, "pushed", "a", "v3");
    assert_eq!(get_cp("a"), (200, "v2".to_string()));
    post_json(&server, "/v1/indexes/pushed/sync", &json!({}));
    assert_eq!(get_cp("a"), (200, "v3".to_string()));
    // A synced clear: no value, even though an older one was synced.
    set_cp("b", "v1", "true");
    set_cp("b", "v2", "false");
    papi(&server, "POST", "clear_all_checkpoints", "", None);
    papi(&server, "POST", "sync", "", None);
    set_cp("b", "v3", "false");
    assert_eq!(get_cp("b").0, 404);
    // A removed and recreated index starts with no history.
    set_cp("c", "old", "true");
    assert_eq!(call("DELETE", &server.url("/v1/indexes/pushed"), bearer(), None).0, 204);
    set_cp("c", "new", "false");
    assert_eq!(get_cp("c").0, 404);

    // Refused first requests create nothing.
    let stale = [("Authorization", bearer().unwrap()), ("Content-Type", "application/json"), ("X-Push-Session", "7")];
    let (status, ..) = request(&server, "POST", "/v1/indexes/n1/documents", &stale, Some(br#"[{"uri": "a"}]"#));
    assert_eq!(status, 409);
    let long = "x".repeat(300);
    let (status, reply, _) = call(
        "PUT",
        &server.url(&format!("/v1/indexes/n2/checkpoints/{long}")),
        bearer(),
        Some(("application/json", r#"{"value": "v"}"#)),
    );
    assert_eq!(status, 400, "{reply}");
    let (status, reply, _) = call(
        "POST",
        &server.url("/v1/indexes/n3/bulk"),
        bearer(),
        Some((
            "application/x-ndjson",
            "{\"delete\": {}}\n{\"delete_root_path\": {\"root\": \"r\", \"recursive\": \"false\"}}\n",
        )),
    );
    assert_eq!((status, &reply["errors"]), (200, &json!(true)), "{reply}");
    assert!(reply["items"][1]["message"].as_str().unwrap().contains("true or false"), "{reply}");
    std::fs::write(roots.path().join("a-file"), "x").unwrap();
    let url = format!("file://{}", roots.path().join("a-file").display());
    let (status, reply) =
        post_json(&server, "/layar/liveSource", &json!({"liveSourceType": "FILE_SYSTEM", "url": url}));
    assert_eq!(status, 400, "{reply}");
    let names: Vec<Value> =
        get(&server, "/v1/indexes").1.as_array().unwrap().iter().map(|i| i["name"].clone()).collect();
    assert_eq!(names, [json!("pushed")], "a refused request created an index");

    // A stale session on a barrier or a read: 409.
    let session = get(&server, "/v1/indexes/pushed").1["session"].as_u64().unwrap();
    let stale_session = (session + 1).to_string();
    for (method, path) in [("POST", "/v1/indexes/pushed/sync"), ("GET", "/v1/indexes/pushed/watermarks")] {
        let headers = [("Authorization", bearer().unwrap()), ("X-Push-Session", stale_session.as_str())];
        let (status, reply, ..) = request(&server, method, path, &headers, (method == "POST").then_some(&b"{}"[..]));
        assert_eq!((status, reply["error"].as_str()), (409, Some("session_mismatch")), "{method} {path}");
    }
    // The same through a percent-encoded name, and on PUT of a new index.
    let headers = [("Authorization", bearer().unwrap()), ("X-Push-Session", stale_session.as_str())];
    let (status, ..) = request(&server, "POST", "/v1/indexes/%70ushed/sync", &headers, Some(b"{}"));
    assert_eq!(status, 409);
    assert_eq!(request(&server, "PUT", "/v1/indexes/n4", &headers, None).0, 409);
    assert_eq!(get(&server, "/v1/indexes/n4").0, 404);
    // The Push API does not show pushdex's own checkpoints; a synced value
    // of a checkpoint deleted since is still listed as synced.
    assert_eq!(get_cp("pushdex.x").0, 400);
    set_cp("d", "kept", "true");
    call("DELETE", &server.url("/v1/indexes/pushed/checkpoints/d"), bearer(), None);
    let (_, listed) = papi(&server, "GET", "enumerate_checkpoints_info", "?PAPI_showSynchronizedOnly=true", None);
    assert!(listed.contains("d kept\n"), "{listed}");
    let good = session.to_string();
    let headers = [("Authorization", bearer().unwrap()), ("X-Push-Session", good.as_str())];
    assert_eq!(request(&server, "GET", "/v1/indexes/pushed/watermarks", &headers, None).0, 200);

    // Live sources, their index removed, then created again.
    let source = roots.path().join("tree");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("f.txt"), "hello").unwrap();
    let create = json!({"liveSourceType": "FILE_SYSTEM", "url": format!("file://{}", source.display())});
    assert_eq!(post_json(&server, "/layar/liveSource", &create).0, 201);
    assert_eq!(get(&server, "/layar/liveSource").1.as_array().unwrap().len(), 1);
    assert_eq!(call("DELETE", &server.url("/v1/indexes/default"), bearer(), None).0, 204);
    assert_eq!(get(&server, "/layar/liveSource").1, json!([]));
    assert_eq!(post_json(&server, "/layar/liveSource", &create).0, 201);
    assert_eq!(get(&server, "/layar/liveSource").1.as_array().unwrap().len(), 1);
    // A file URL is percent-encoded (and may name localhost); an interval
    // that is not a whole number of seconds is refused.
    let spaced = roots.path().join("my tree");
    std::fs::create_dir(&spaced).unwrap();
    let url = format!("file://localhost{}", spaced.display()).replace(' ', "%20");
    let (status, reply) =
        post_json(&server, "/layar/liveSource", &json!({"liveSourceType": "FILE_SYSTEM", "url": url}));
    assert_eq!(status, 201, "{reply}");
    let other = roots.path().join("other");
    std::fs::create_dir(&other).unwrap();
    for interval in [json!("often"), json!(0), json!(u64::MAX)] {
        let bad = json!({"liveSourceType": "FILE_SYSTEM", "url": other.to_str().unwrap(), "runMode": "CONTINUOUS",
                         "scanIntervalSeconds": interval});
        assert_eq!(post_json(&server, "/layar/liveSource", &bad).0, 400, "{interval}");
    }

    // A Push API part in another encoding is decoded by its label; an
    // unknown label makes a binary part.
    let (content_type, body) = multipart(&[
        ("PAPI_e:uri", None, b"enc/1252"),
        ("PAPI_e:part_bytes:master", Some("text/plain"), b"caf\xe9 cr\xe8me"),
        ("PAPI_e:part_directive:master:encoding", None, b"windows-1252"),
        ("PAPI_f:uri", None, b"enc/unknown"),
        ("PAPI_f:part_bytes:master", Some("text/plain"), b"caf\xe9"),
        ("PAPI_f:part_directive:master:encoding", None, b"no-such-encoding"),
    ]);
    assert_eq!(papi(&server, "POST", "add_documents", "", Some((content_type, body))).0, 200);
    assert_eq!(get(&server, "/v1/indexes/pushed/documents?uri=enc/1252").1["text"]["master"], "café crème");
    assert_eq!(get(&server, "/v1/indexes/pushed/documents?uri=enc/unknown").1["binary"]["master"], "Y2Fm6Q==");

    // PATCH: a null meta removes it, values and parts are set; a meta that
    // is not strings, text that is not a string, binary that is not base64
    // are refused and change nothing.
    let doc = json!([{"uri": "p/1", "metas": {"k": "v", "keep": "x"}, "text": {"t": "old"}}]);
    post_json(&server, "/v1/indexes/patched/documents", &doc);
    let patch = r#"{"metas": {"k": null, "tag": ["a", "b"]}, "text": {"t": "new"}, "binary": {"raw": "AAEC"}}"#;
    let (status, reply) = send(&server, "PATCH", "/v1/indexes/patched/documents?uri=p/1", "application/json", patch);
    assert_eq!(status, 200, "{reply}");
    let stored = get(&server, "/v1/indexes/patched/documents?uri=p/1").1;
    assert_eq!(stored["metas"], json!({"keep": "x", "tag": ["a", "b"]}), "{stored}");
    assert_eq!((&stored["text"]["t"], &stored["binary"]["raw"]), (&json!("new"), &json!("AAEC")));
    let before = get(&server, "/v1/indexes/patched/watermarks").1;
    for bad in [
        r#"{"metas": {"k": 5}}"#,
        r#"{"metas": {"k": ["a", 1]}}"#,
        r#"{"text": {"t": 5}}"#,
        r#"{"binary": {"raw": "!!"}}"#,
    ] {
        let (status, reply) = send(&server, "PATCH", "/v1/indexes/patched/documents?uri=p/1", "application/json", bad);
        assert_eq!((status, reply["error"].as_str()), (400, Some("invalid_input")), "{bad}: {reply}");
    }
    assert_eq!(get(&server, "/v1/indexes/patched/watermarks").1, before);
}
