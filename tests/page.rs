//! The search page at `/` in a real browser: the `pushdex` binary on a free
//! loopback port, ~30 documents with metas, and headless Chromium driven by
//! Python's selenium (`tests/page/drive.py`): a query with highlighted
//! snippets, a facet value and a folder that narrow the hits to their count,
//! paging, the URL as the page's state, and a document holding `<script>`
//! shown as text.
//!
//! Nothing comes from the internet but the tools themselves: Chromium and
//! its driver (apt-get) and selenium (pip) are installed when missing, and
//! the test fails when they cannot be. `PUSHDEX_SCREENSHOT=docs/search-page.png`
//! also saves a screenshot of the page with results and facets.

#![cfg(feature = "server")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const TOKEN: &str = "page-test-token-0123456789abcdef";
/// The longest the browser part may take, installs excluded.
const BROWSER_LIMIT: Duration = Duration::from_secs(180);

/// A running child, killed when dropped, even when the test fails.
struct Killed {
    child: Child,
    /// For the browser: its process group is killed too, and every orphan
    /// it left (this process is their subreaper) is killed and reaped,
    /// except this child of ours.
    group: Option<u32>,
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(keep) = self.group {
            // The driver script, chromedriver and Chromium: one group.
            // SAFETY: kill(2) on a process group of ours.
            unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = self.child.kill();
            let _ = self.child.wait();
            reap_orphans(keep);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes this process the reaper of its descendants' orphans (Chromium's
/// helpers outlive their parents), so that none is left to the machine's
/// init: [`reap_orphans`] kills and reaps them.
fn become_subreaper() {
    // SAFETY: prctl(2) with integer arguments.
    let done = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(done, 0, "prctl(PR_SET_CHILD_SUBREAPER): {}", std::io::Error::last_os_error());
}

/// The pids whose parent is this process.
fn children() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": the comm may hold anything but ')'s last.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(me) {
            out.push(pid);
        }
    }
    out
}

/// Kills and reaps every child of this process but `keep`, until none has
/// come for a moment (orphans arrive as their parents die).
fn reap_orphans(keep: u32) {
    let (mut quiet, started) = (0, Instant::now());
    while quiet < 5 && started.elapsed() < Duration::from_secs(10) {
        let orphans: Vec<u32> = children().into_iter().filter(|&pid| pid != keep).collect();
        quiet = if orphans.is_empty() { quiet + 1 } else { 0 };
        for pid in orphans {
            // SAFETY: kill(2) and waitpid(2) on a child of ours.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_server(data: &Path) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushdex"))
        .args(["serve", "--listen", "127.0.0.1:0", "--token", TOKEN, "--data"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("PUSHDEX_TEST_SERVER_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .expect("pushdex serve starts");
    let stdout = child.stdout.take().unwrap();
    let server = Killed { child, group: None };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    (server, base)
}

fn request(method: &str, url: &str, auth: bool, body: Option<&Value>) -> ureq::Response {
    let mut request = ureq::request(method, url).timeout(Duration::from_secs(20));
    if auth {
        request = request.set("Authorization", &format!("Bearer {TOKEN}"));
    }
    let result = match body {
        Some(body) => request.send_json(body.clone()),
        None => request.call(),
    };
    match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// ~30 documents with metas in `docs`, three in `wiki` (text part `content`).
fn load(base: &str) {
    const TOPICS: [&str; 6] = ["sales", "hiring", "security", "travel", "budget", "support"];
    const AUTHORS: [&str; 3] = ["ann", "bob", "cy"];
    let mut docs = Vec::new();
    for i in 0..29 {
        let topic = TOPICS[i % TOPICS.len()];
        let uri = if i % 2 == 0 {
            format!("https://intranet.example/reports/{i:02}")
        } else {
            format!("share/notes/{topic}-{i:02}.txt")
        };
        let mut metas = json!({
            "author": AUTHORS[i % 3],
            "type": if i % 4 == 0 { "memo" } else { "report" },
            "lang": if i % 7 == 0 { "fr" } else { "en" },
            "year": (2021 + i % 4).to_string(),
        });
        let body = if i < 26 {
            if i % 5 != 0 {
                metas["title"] = json!(format!("Report {i}: {topic}"));
            }
            format!(
                "Quarterly {topic} review number {i}.\n\nThis report covers the {topic} figures of the quarter, \
                 the goals the team met and the ones it missed. The next report comes in three months; \
                 questions about the {topic} numbers go to the team lead."
            )
        } else {
            format!("Meeting notes on {topic}, number {i}: nothing to add this week.")
        };
        docs.push(json!({"uri": uri, "stamp": i.to_string(), "metas": metas, "text": {"body": body}}));
    }
    docs.push(json!({
        "uri": "share/untrusted.html",
        "metas": {"author": "mallory", "title": "<b>Bold</b> <script>window.pwned = 3</script> title"},
        "text": {"body": "An exploit report: <script>window.pwned = 1</script> and <img src=x onerror=\"window.pwned = 2\"> inside."}
    }));
    let wiki = json!([
        {"uri": "wiki/tea", "text": {"content": "How to make tea: boil the kettle, then wait a minute."}},
        {"uri": "wiki/kettle", "text": {"content": "The kettle is descaled every month."}},
        {"uri": "wiki/coffee", "text": {"content": "Coffee needs a grinder."}}
    ]);
    for (index, docs) in [("docs", Value::Array(docs)), ("wiki", wiki)] {
        let response =
            request("POST", &format!("{base}/v1/indexes/{index}/documents?wait=searchable"), true, Some(&docs));
        assert_eq!(response.status(), 200, "{}", response.into_string().unwrap());
    }
}

/// Whether `program args` runs and succeeds.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Chromium, its driver and Python's selenium, installed when missing (the
/// test provisions what it needs rather than skip; CI's `.ci/run` installs
/// them first).
fn provision() {
    // (Chromium itself is not started for this: it leaves helpers behind.)
    let browser = || Path::new("/usr/bin/chromium").exists() && runs("/usr/bin/chromedriver", &["--version"]);
    if !browser() {
        eprintln!("page test: installing chromium and chromium-driver (apt-get)");
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        assert!(apt(&["update", "-qq"]), "apt-get update failed (the page test needs chromium and chromium-driver)");
        assert!(
            apt(&["install", "-y", "-qq", "chromium", "chromium-driver"]) && browser(),
            "apt-get install -y chromium chromium-driver failed (the page test needs them)"
        );
    }
    let selenium = || runs("python3", &["-c", "import selenium"]);
    if !selenium() {
        eprintln!("page test: installing selenium (pip)");
        let installed = runs("python3", &["-m", "pip", "install", "--quiet", "selenium"]);
        assert!(installed && selenium(), "python3 -m pip install selenium failed (the page test needs it)");
    }
}

/// Where `PUSHDEX_SCREENSHOT` asks for the screenshot (relative to the
/// repository), if it does.
fn screenshot() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("PUSHDEX_SCREENSHOT")?);
    Some(if path.is_absolute() { path } else { Path::new(env!("CARGO_MANIFEST_DIR")).join(path) })
}

#[test]
fn the_search_page_in_a_browser() {
    become_subreaper();
    provision();
    let data = tempfile::tempdir().unwrap();
    let (server, base) = start_server(data.path());

    // The page: behind the token (a browser is asked for it), self-contained.
    let refused = request("GET", &format!("{base}/"), false, None);
    assert_eq!(refused.status(), 401);
    assert!(refused.header("WWW-Authenticate").unwrap_or_default().starts_with("Basic realm=\"pushdex\""));
    let page = request("GET", &format!("{base}/?q=x"), true, None);
    assert_eq!(page.status(), 200);
    assert_eq!(page.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.header("Cache-Control"), Some("no-cache"));
    let csp = page.header("Content-Security-Policy").unwrap().to_string();
    assert!(csp.starts_with("default-src 'none'; script-src 'nonce-"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap().to_string();
    let html = page.into_string().unwrap();
    assert_eq!(html.matches(&format!("nonce=\"{nonce}\"")).count(), 2, "the inline style and script");
    let again = request("GET", &format!("{base}/"), true, None);
    assert!(!again.header("Content-Security-Policy").unwrap().contains(&nonce), "a nonce per response");

    load(&base);

    // The browser, its driver and the script: one process group, killed
    // when the test ends however it ends.
    let started = Instant::now();
    let mut command = Command::new("python3");
    command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/page/drive.py")).args([&base, TOKEN]);
    command.env_remove("PUSHDEX_SCREENSHOT");
    if let Some(path) = screenshot() {
        command.env("PUSHDEX_SCREENSHOT", path);
    }
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut driver = Killed { child: command.spawn().expect("python3 runs"), group: Some(server.child.id()) };
    let status = loop {
        if let Some(status) = driver.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < BROWSER_LIMIT, "the browser test took over {BROWSER_LIMIT:?}: killed");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "the browser test failed ({status}): see its output above");
    eprintln!("page test: the browser part took {:?}", started.elapsed());
    drop(driver);
    assert_eq!(children(), [server.child.id()], "every browser process is gone");
}
