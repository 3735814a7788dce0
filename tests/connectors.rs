//! Managed connectors: imports that converge, paging, irreversible delete,
//! job status, and imports interrupted by crashes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushdex::connector::{Connectors, JobState, RunMode, Skip, Source, SourceItem, MAX_PAGE_ROWS};
use pushdex::storage::SimStorage;
use pushdex::{Document, EnumerationMode, Error, Index, Options, State};

/// An in-memory source: URI → (stamp, body), changeable between imports.
#[derive(Default)]
struct MapSource {
    items: Mutex<BTreeMap<String, (String, String)>>,
    /// Sleep this long per fetch (to watch a job run).
    fetch_delay: Option<Duration>,
}

impl MapSource {
    fn with(root: &str, n: usize) -> MapSource {
        let source = MapSource::default();
        for i in 0..n {
            source.set(&format!("{root}/d{}/doc{i:05}", i % 7), "v1");
        }
        source
    }

    fn set(&self, uri: &str, stamp: &str) {
        self.items.lock().unwrap().insert(uri.to_string(), (stamp.to_string(), format!("body of {uri} at {stamp}")));
    }

    fn remove(&self, uri: &str) {
        self.items.lock().unwrap().remove(uri);
    }

    fn uris(&self) -> Vec<String> {
        self.items.lock().unwrap().keys().cloned().collect()
    }
}

impl Source for MapSource {
    fn description(&self) -> String {
        "a map".to_string()
    }

    fn list(&self, visit: &mut dyn FnMut(SourceItem) -> pushdex::Result<()>) -> pushdex::Result<()> {
        let items: Vec<_> = self.items.lock().unwrap().iter().map(|(u, (s, _))| (u.clone(), s.clone())).collect();
        // Any order: the job sorts.
        for (uri, stamp) in items.into_iter().rev() {
            visit(SourceItem { uri, stamp })?;
        }
        Ok(())
    }

    fn fetch(&self, item: &SourceItem) -> pushdex::Result<Option<Document>> {
        if let Some(delay) = self.fetch_delay {
            std::thread::sleep(delay);
        }
        Ok(self.items.lock().unwrap().get(&item.uri).map(|(stamp, body)| {
            Document::new(&item.uri).with_stamp(stamp).with_meta("kind", "map").with_text("content", body.as_str())
        }))
    }
}

/// The index's documents under `root`: URI → stamp.
fn held(index: &Index, root: &str) -> BTreeMap<String, String> {
    index
        .enumerate(root, EnumerationMode::RecursiveDocuments)
        .unwrap()
        .map(|e| match e.unwrap() {
            pushdex::Entry::Document(d) => (d.uri, d.stamp),
            pushdex::Entry::Folder(f) => panic!("folder {f} in a documents enumeration"),
        })
        .collect()
}

fn expected(source: &MapSource) -> BTreeMap<String, String> {
    source.items.lock().unwrap().iter().map(|(u, (s, _))| (u.clone(), s.clone())).collect()
}

const ROOT: &str = "map://src";

#[test]
fn imports_push_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    let source = Arc::new(MapSource::with(ROOT, 2500));
    let info = connectors.create("map", ROOT, source.clone(), RunMode::Once).unwrap();
    assert_eq!(info.id, "c1");
    assert_eq!(connectors.job_status("c1").unwrap().status, JobState::NotYetRun);

    let job = connectors.run_import("c1").unwrap();
    assert_eq!((job.status, job.job_id.as_str()), (JobState::Done, "c1-1"));
    assert_eq!((job.listed, job.added, job.updated, job.unchanged, job.deleted, job.failed), (2500, 2500, 0, 0, 0, 0));
    assert_eq!((job.documents_processed, job.documents_outstanding, job.documents_in_queue), (2500, 0, 0));
    assert_eq!(held(&index, ROOT), expected(&source));
    assert_eq!(index.status(&source.uris()[17]).unwrap().state, State::Searchable);
    let import = connectors.import_status("c1").unwrap();
    assert_eq!(import.percent_complete, 100);
    assert!(import.message.contains("2500 added"), "{}", import.message);

    let last = index.watermarks().last;
    let job = connectors.run_import("c1").unwrap();
    assert_eq!((job.job_id.as_str(), job.added, job.updated, job.unchanged, job.deleted), ("c1-2", 0, 0, 2500, 0));
    // Only the job's own records were written: no document was pushed.
    assert!(index.watermarks().last.0 - last.0 <= 3, "{:?} -> {:?}", last, index.watermarks().last);

    let uris = source.uris();
    source.set(&uris[5], "v2");
    let job = connectors.run_import("c1").unwrap();
    assert_eq!((job.added, job.updated, job.unchanged, job.deleted), (0, 1, 2499, 0));
    assert_eq!(index.get(&uris[5]).unwrap().unwrap().stamp(), "v2");

    source.remove(&uris[9]);
    source.set(&format!("{ROOT}/new/one"), "v1");
    let job = connectors.run_import("c1").unwrap();
    assert_eq!((job.added, job.updated, job.unchanged, job.deleted), (1, 0, 2499, 1));
    assert_eq!(held(&index, ROOT), expected(&source));
    assert!(!index.status(&uris[9]).unwrap().exists());

    // Documents outside the root are not the connector's: untouched.
    index.add(Document::new("map://other/x").with_stamp("mine")).unwrap();
    connectors.run_import("c1").unwrap();
    assert_eq!(index.status("map://other/x").unwrap().stamp, "mine");
}

#[test]
fn the_registry_and_job_records_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let source = Arc::new(MapSource::with(ROOT, 300));
    {
        let index = Index::open(dir.path()).unwrap();
        let connectors = Connectors::open(&index).unwrap();
        connectors.create("map", ROOT, source.clone(), RunMode::Once).unwrap();
        connectors.create("two", "map://two", Arc::new(MapSource::default()), RunMode::Once).unwrap();
        connectors.run_import("c1").unwrap();
        index.close().unwrap();
    }
    let index = Index::open(dir.path()).unwrap();
    // Reserved checkpoints are not the user's.
    assert!(index.checkpoints().unwrap().is_empty());
    index.clear_checkpoints().unwrap();
    let connectors = Connectors::open(&index).unwrap();
    let ids: Vec<String> = connectors.list().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["c1", "c2"]);
    let job = connectors.job_status("c1").unwrap();
    assert_eq!((job.status, job.added, job.job_id.as_str()), (JobState::Done, 300, "c1-1"));
    // A custom source must be attached again after a restart.
    assert!(matches!(connectors.start_import("c1"), Err(Error::InvalidInput { .. })));
    connectors.attach("c1", source.clone()).unwrap();
    let job = connectors.run_import("c1").unwrap();
    assert_eq!((job.job_id.as_str(), job.unchanged, job.added), ("c1-2", 300, 0));
    // Ids are never reused, even after a delete.
    connectors.delete("c2").unwrap();
    let info = connectors.create("three", "map://three", Arc::new(MapSource::default()), RunMode::Once).unwrap();
    assert_eq!(info.id, "c3");
}

#[test]
fn overlapping_roots_and_bad_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    let empty = || Arc::new(MapSource::default());
    connectors.create("a", "map://share/a", empty(), RunMode::Once).unwrap();
    let last = index.watermarks().last;
    for root in ["map://share/a", "map://share/a/", "map://share/a/b", "map://share", "map://share/"] {
        let e = connectors.create("b", root, empty(), RunMode::Once).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{root}: {e}");
    }
    // A sibling that shares a raw prefix is not a folder of it.
    connectors.create("ab", "map://share/ab", empty(), RunMode::Once).unwrap();
    let last2 = index.watermarks().last;
    assert!(matches!(connectors.create("", "map://x", empty(), RunMode::Once), Err(Error::InvalidInput { .. })));
    assert!(matches!(connectors.create("x", "bad\0root", empty(), RunMode::Once), Err(Error::InvalidUri { .. })));
    let zero = RunMode::Continuous { interval: Duration::ZERO };
    assert!(matches!(connectors.create("x", "map://x", empty(), zero), Err(Error::InvalidInput { .. })));
    assert!(last2 > last);
    assert_eq!(index.watermarks().last, last2, "refused calls changed nothing");
    for call in [
        connectors.get("c9").map(drop),
        connectors.job_status("nope").map(drop),
        connectors.start_import("c01").map(drop),
        connectors.delete("c9"),
        connectors.source_documents("c9", 10, 0).map(drop),
    ] {
        assert!(matches!(call, Err(Error::ConnectorNotFound { .. })), "{call:?}");
    }
}

#[test]
fn paging_covers_every_document_once() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    let source = Arc::new(MapSource::with(ROOT, 1234));
    connectors.create("map", ROOT, source.clone(), RunMode::Once).unwrap();
    connectors.run_import("c1").unwrap();
    index.add(Document::new("map://srcs/not-ours")).unwrap();
    let all = source.uris();
    for rows in [1, 7, 100, 999, MAX_PAGE_ROWS] {
        let mut seen = Vec::new();
        let mut start = 0u64;
        loop {
            let page = connectors.source_documents("c1", rows, start).unwrap();
            assert_eq!((page.start, page.total), (start, 1234));
            assert!(page.documents.len() <= rows);
            if page.documents.is_empty() {
                break;
            }
            for d in &page.documents {
                assert_eq!(d.state, State::Searchable);
                assert_eq!(d.stamp, "v1");
                assert_eq!(d.metas, [("kind".to_string(), "map".to_string())]);
            }
            seen.extend(page.documents.into_iter().map(|d| d.uri));
            start += rows as u64;
        }
        assert_eq!(seen, all, "rows = {rows}");
    }
    assert!(connectors.source_documents("c1", 10, 5000).unwrap().documents.is_empty());
    assert!(connectors.source_documents("c1", 10, u64::MAX).unwrap().documents.is_empty());
    for rows in [0, MAX_PAGE_ROWS + 1] {
        assert!(matches!(connectors.source_documents("c1", rows, 0), Err(Error::InvalidInput { .. })));
    }
}

#[test]
fn delete_is_immediate_durable_and_final() {
    let dir = tempfile::tempdir().unwrap();
    let source = Arc::new(MapSource::with(ROOT, 700));
    {
        let index = Index::open(dir.path()).unwrap();
        let connectors = Connectors::open(&index).unwrap();
        connectors.create("map", ROOT, source.clone(), RunMode::Once).unwrap();
        connectors.run_import("c1").unwrap();
        index.add(Document::new("map://keep/me")).unwrap();
        index.sync().unwrap();
        connectors.delete("c1").unwrap();
        assert_eq!(index.count(ROOT, EnumerationMode::RecursiveDocuments).unwrap(), 0);
        assert!(matches!(connectors.get("c1"), Err(Error::ConnectorNotFound { ref id }) if id == "c1"));
        assert!(matches!(connectors.run_import("c1"), Err(Error::ConnectorNotFound { .. })));
        assert!(connectors.list().is_empty());
        // Durable on return: the process "crashes" (no close, no sync).
        std::mem::forget(index);
    }
    // The lock of a forgotten handle is held by this process: copy the
    // directory to open it as another process would after the crash.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let index = Index::open(copy.path()).unwrap();
    assert_eq!(index.count(ROOT, EnumerationMode::RecursiveDocuments).unwrap(), 0);
    assert!(index.status("map://keep/me").unwrap().exists());
    let connectors = Connectors::open(&index).unwrap();
    assert!(connectors.list().is_empty());
    assert!(matches!(connectors.job_status("c1"), Err(Error::ConnectorNotFound { .. })));
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn job_status_shows_a_running_import_then_done() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    let mut source = MapSource::with(ROOT, 6000);
    source.fetch_delay = Some(Duration::from_micros(200));
    connectors.create("map", ROOT, Arc::new(source), RunMode::Once).unwrap();
    let first = connectors.start_import("c1").unwrap();
    assert_eq!(first.status, JobState::Running);
    assert!(matches!(connectors.start_import("c1"), Err(Error::InvalidInput { .. })), "one import at a time");
    let mut seen = Vec::new();
    loop {
        let job = connectors.job_status("c1").unwrap();
        if job.status != JobState::Running {
            assert_eq!(job.status, JobState::Done);
            assert_eq!(job.documents_processed, 6000);
            break;
        }
        seen.push(job.documents_processed);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "processed never goes back: {seen:?}");
    let distinct: std::collections::BTreeSet<_> = seen.iter().filter(|&&n| n > 0 && n < 6000).collect();
    assert!(distinct.len() >= 2, "saw the count grow while running: {seen:?}");
    assert_eq!(connectors.wait("c1").unwrap().status, JobState::Done);
}

#[test]
fn stop_aborts_at_a_batch_boundary_and_the_next_import_converges() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    let mut source = MapSource::with(ROOT, 5000);
    source.fetch_delay = Some(Duration::from_micros(300));
    let source = Arc::new(source);
    connectors.create("map", ROOT, source.clone(), RunMode::Once).unwrap();
    connectors.start_import("c1").unwrap();
    while connectors.job_status("c1").unwrap().documents_processed < 1000 {
        std::thread::sleep(Duration::from_millis(2));
    }
    let stopped = connectors.stop("c1").unwrap();
    assert_eq!(stopped.status, JobState::Aborted);
    assert!(stopped.added < 5000, "{stopped:?}");
    let pushed = stopped.added;
    assert_eq!(index.count(ROOT, EnumerationMode::RecursiveDocuments).unwrap(), pushed);
    let job = connectors.run_import("c1").unwrap();
    assert_eq!((job.status, job.unchanged, job.added), (JobState::Done, pushed, 5000 - pushed));
    assert_eq!(held(&index, ROOT), expected(&source));
}

#[test]
fn continuous_connectors_scan_again_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    let source = Arc::new(MapSource::with(ROOT, 50));
    let mode = RunMode::Continuous { interval: Duration::from_secs(1) };
    connectors.create("map", ROOT, source.clone(), mode).unwrap();
    connectors.start_import("c1").unwrap();
    let first = connectors.wait("c1").unwrap();
    assert_eq!((first.status, first.added), (JobState::Waiting, 50));
    source.set(&format!("{ROOT}/late"), "v1");
    // The next scan picks the new document up.
    while !index.status(&format!("{ROOT}/late")).unwrap().exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = connectors.stop("c1").unwrap();
    assert_eq!(stopped.status, JobState::Aborted);
    assert!(stopped.job_id.ends_with("-2") || stopped.job_id.ends_with("-3"), "{}", stopped.job_id);
}

/// An import crashed at its k-th storage write, recovered, and run again
/// converges: everything the source holds, pushing only what the crash lost.
#[test]
fn an_import_interrupted_by_a_crash_converges_on_the_next_run() {
    let options = Options::default().memtable_bytes(64 * 1024);
    let source = Arc::new(MapSource::with(ROOT, 1500));
    let dry = SimStorage::new("/sim");
    {
        let index = Index::open_with_storage(Arc::new(dry.clone()), options.clone()).unwrap();
        let connectors = Connectors::open(&index).unwrap();
        connectors.create("map", ROOT, source.clone(), RunMode::Once).unwrap();
        connectors.run_import("c1").unwrap();
        index.close().unwrap();
    }
    let writes = dry.writes();
    let mut points = 0;
    let mut partial = 0;
    for k in (1..writes).step_by((writes as usize / 25).max(1)) {
        points += 1;
        let storage = SimStorage::new("/sim");
        storage.crash_after(k);
        if let Ok(index) = Index::open_with_storage(Arc::new(storage.clone()), options.clone()) {
            if let Ok(connectors) = Connectors::open(&index) {
                if connectors.create("map", ROOT, source.clone(), RunMode::Once).is_ok() {
                    // Ends in error, or done if the crash hits the close.
                    connectors.run_import("c1").unwrap();
                }
            }
        }
        for torn in [None, Some(k)] {
            let recovered = storage.recover(torn);
            let index = Index::open_with_storage(Arc::new(recovered), options.clone()).unwrap();
            let connectors = Connectors::open(&index).unwrap();
            let before = held(&index, ROOT);
            partial += usize::from(!before.is_empty() && before.len() < 1500);
            let job = match connectors.get("c1") {
                Ok(_) => {
                    let recorded = connectors.job_status("c1").unwrap();
                    assert_ne!(recorded.status, JobState::Running, "k = {k}");
                    connectors.attach("c1", source.clone()).unwrap();
                    connectors.run_import("c1").unwrap()
                }
                Err(Error::ConnectorNotFound { .. }) => {
                    assert!(before.is_empty(), "k = {k}: documents without their connector");
                    // The id may be c2: a crash can keep the id counter
                    // without the entry, and ids are never reused.
                    let info = connectors.create("map", ROOT, source.clone(), RunMode::Once).unwrap();
                    connectors.run_import(&info.id).unwrap()
                }
                Err(e) => panic!("k = {k}: {e}"),
            };
            assert_eq!(job.status, JobState::Done, "k = {k}");
            assert_eq!(held(&index, ROOT), expected(&source), "k = {k}");
            // What the crash left durable is not pushed again.
            assert_eq!(job.unchanged, before.len() as u64, "k = {k}");
            assert_eq!(job.added, 1500 - before.len() as u64, "k = {k}");
            index.close().unwrap();
        }
    }
    assert!(points >= 20);
    assert!(partial >= 5, "crashes hit the middle of imports: {partial} of {points}");
}

#[test]
fn a_source_that_fails_one_item_fails_only_that_item() {
    struct Flaky(MapSource);
    impl Source for Flaky {
        fn description(&self) -> String {
            "flaky".into()
        }
        fn list(&self, visit: &mut dyn FnMut(SourceItem) -> pushdex::Result<()>) -> pushdex::Result<()> {
            self.0.list(visit)?;
            visit(SourceItem { uri: "elsewhere://x".into(), stamp: "1".into() })
        }
        fn fetch(&self, item: &SourceItem) -> pushdex::Result<Option<Document>> {
            if item.uri.ends_with("doc00003") {
                return Err(Error::Io(std::io::Error::other("permission denied")));
            }
            if item.uri.ends_with("doc00004") {
                return Ok(Some(Document::new(&item.uri).with_meta("", "empty name")));
            }
            self.0.fetch(item)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    connectors.create("flaky", ROOT, Arc::new(Flaky(MapSource::with(ROOT, 20))), RunMode::Once).unwrap();
    let job = connectors.run_import("c1").unwrap();
    assert_eq!((job.status, job.listed, job.added, job.failed), (JobState::Done, 21, 18, 3), "{job:?}");
    assert!(job.last_error.is_some());
    assert_eq!(index.count(ROOT, EnumerationMode::RecursiveDocuments).unwrap(), 18);
}

#[test]
fn items_that_vanish_before_they_are_read_are_counted_as_skipped() {
    /// Lists everything, but two new items and one held one are gone when
    /// fetched.
    struct Vanishing(MapSource);
    impl Source for Vanishing {
        fn description(&self) -> String {
            "vanishing".into()
        }
        fn list(&self, visit: &mut dyn FnMut(SourceItem) -> pushdex::Result<()>) -> pushdex::Result<()> {
            self.0.list(visit)
        }
        fn fetch(&self, item: &SourceItem) -> pushdex::Result<Option<Document>> {
            if item.uri.ends_with("doc00003") || item.uri.ends_with("doc00005") || item.uri.ends_with("doc00007") {
                return Ok(None);
            }
            self.0.fetch(item)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    let map = MapSource::with(ROOT, 10);
    // doc00007 is in the index already, with an older stamp.
    index.add(Document::new(format!("{ROOT}/d0/doc00007")).with_stamp("old")).unwrap();
    connectors.create("vanishing", ROOT, Arc::new(Vanishing(map)), RunMode::Once).unwrap();
    let job = connectors.run_import("c1").unwrap();
    // Two new ones gone: nothing to do but say so. The held one: deleted.
    assert_eq!((job.added, job.deleted, job.failed, job.skipped), (7, 1, 0, 2), "{job:?}");
    let said = job.last_error.as_deref().unwrap_or_default();
    assert!(said.starts_with("2 skipped: 2 × vanished before it was read (the first: "), "{said}");
    assert_eq!(index.count(ROOT, EnumerationMode::RecursiveDocuments).unwrap(), 7);
}

#[test]
fn what_a_source_could_not_list_is_kept_not_deleted() {
    /// Lists only what is outside `hidden` (a folder it "cannot read"), and
    /// says so; `hidden_file` likewise, for one document.
    struct Partial {
        map: MapSource,
        hidden: String,
        hidden_file: String,
    }
    impl Source for Partial {
        fn description(&self) -> String {
            "partial".into()
        }
        fn list(&self, visit: &mut dyn FnMut(SourceItem) -> pushdex::Result<()>) -> pushdex::Result<()> {
            self.map.list(visit)
        }
        fn list_partly(
            &self,
            visit: &mut dyn FnMut(SourceItem) -> pushdex::Result<()>,
            skipped: &mut dyn FnMut(Skip),
        ) -> pushdex::Result<()> {
            skipped(Skip::unreadable(self.hidden.clone(), "cannot be read: permission denied"));
            skipped(Skip::unreadable(self.hidden_file.clone(), "cannot be read: permission denied"));
            skipped(Skip::new("a name", "name is not UTF-8"));
            self.map.list(&mut |item| {
                if item.uri.starts_with(&format!("{}/", self.hidden)) || item.uri == self.hidden_file {
                    return Ok(());
                }
                visit(item)
            })
        }
        fn fetch(&self, item: &SourceItem) -> pushdex::Result<Option<Document>> {
            self.map.fetch(item)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    let map = MapSource::with(ROOT, 70);
    let all = expected(&map);
    // The first import lists everything.
    connectors.create("full", ROOT, Arc::new(map), RunMode::Once).unwrap();
    assert_eq!(connectors.run_import("c1").unwrap().added, 70);
    // The same documents, now through a source that cannot read d3 nor
    // one file of d4, and from which one file of d5 is really gone.
    let partial =
        Partial { map: MapSource::default(), hidden: format!("{ROOT}/d3"), hidden_file: format!("{ROOT}/d4/doc00004") };
    for (uri, stamp) in &all {
        if uri != &format!("{ROOT}/d5/doc00005") {
            partial.map.set(uri, stamp);
        }
    }
    // A sibling sharing d3's raw prefix is not under it: listed normally.
    partial.map.set(&format!("{ROOT}/d30/new"), "v1");
    connectors.attach("c1", Arc::new(partial)).unwrap();
    let job = connectors.run_import("c1").unwrap();
    assert_eq!((job.status, job.added, job.updated, job.deleted), (JobState::Done, 1, 0, 1), "{job:?}");
    // 58 listed and equal, 10 under d3 and 1 in d4 kept.
    assert_eq!(job.unchanged, 69, "the kept documents count as unchanged: {job:?}");
    // Counted and said, by kind, with the first of each.
    assert_eq!(job.skipped, 3, "{job:?}");
    let said = job.last_error.as_deref().unwrap_or_default();
    for needle in ["3 skipped", "2 × cannot be read", "1 × name is not UTF-8", "keeps its documents"] {
        assert!(said.contains(needle), "{needle:?} not in {said:?}");
    }
    let mut want = all.clone();
    want.remove(&format!("{ROOT}/d5/doc00005"));
    want.insert(format!("{ROOT}/d30/new"), "v1".into());
    assert_eq!(held(&index, ROOT), want);
}

/// The must-show sequence on a real directory tree, through the built-in
/// directory source.
#[test]
fn directory_imports_converge_on_a_temp_tree() {
    let tree = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..40 {
        let dir = tree.path().join(format!("d{}", i % 4)).join(format!("e{}", i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("f{i}.txt"));
        std::fs::write(&path, format!("file number {i}")).unwrap();
        files.push(path);
    }
    std::fs::write(tree.path().join("blob.bin"), [0u8, 159, 146, 150]).unwrap();
    let data = tempfile::tempdir().unwrap();
    let index = Index::open(data.path()).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    assert_eq!(connectors.find_directory(tree.path()).unwrap(), None);
    let info = connectors.create_directory(tree.path(), RunMode::Once).unwrap();
    assert_eq!(connectors.find_directory(tree.path()).unwrap().as_ref(), Some(&info));
    let canonical = tree.path().canonicalize().unwrap();
    assert_eq!(info.root, format!("file://{}", canonical.display()));
    assert!(matches!(connectors.create_directory(tree.path(), RunMode::Once), Err(Error::InvalidInput { .. })));

    let job = connectors.run_import(&info.id).unwrap();
    assert_eq!((job.status, job.added, job.updated, job.deleted, job.failed), (JobState::Done, 41, 0, 0, 0));
    let uri = |p: &Path| format!("file://{}", p.canonicalize().unwrap().display());
    let doc = index.get(&uri(&files[7])).unwrap().unwrap();
    assert_eq!(doc.part("content"), Some(&b"file number 7"[..]));
    assert_eq!(doc.meta("file_name"), Some("f7.txt"));

    let job = connectors.run_import(&info.id).unwrap();
    assert_eq!((job.added, job.updated, job.unchanged, job.deleted), (0, 0, 41, 0), "unchanged tree: nothing pushed");

    std::fs::write(&files[3], "changed, and longer than before").unwrap();
    let job = connectors.run_import(&info.id).unwrap();
    assert_eq!((job.added, job.updated, job.unchanged, job.deleted), (0, 1, 40, 0));
    let doc = index.get(&uri(&files[3])).unwrap().unwrap();
    assert_eq!(doc.part("content"), Some(&b"changed, and longer than before"[..]));

    let gone = uri(&files[11]);
    std::fs::remove_file(&files[11]).unwrap();
    let job = connectors.run_import(&info.id).unwrap();
    assert_eq!((job.added, job.updated, job.unchanged, job.deleted), (0, 0, 40, 1));
    assert!(!index.status(&gone).unwrap().exists());

    connectors.delete(&info.id).unwrap();
    assert_eq!(index.count(&info.root, EnumerationMode::RecursiveDocuments).unwrap(), 0);
    assert!(matches!(connectors.job_status(&info.id), Err(Error::ConnectorNotFound { .. })));
}

/// Review findings: a delete racing imports leaves nothing behind; a job
/// does not outlive its `Connectors`; a panicking source ends in `error`.
#[test]
fn delete_racing_start_import_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    let mut source = MapSource::with(ROOT, 3000);
    source.fetch_delay = Some(Duration::from_micros(200));
    connectors.create("map", ROOT, Arc::new(source), RunMode::Once).unwrap();
    connectors.start_import("c1").unwrap();
    while connectors.job_status("c1").unwrap().documents_processed == 0 {
        std::thread::sleep(Duration::from_millis(2));
    }
    let racer = {
        let connectors = connectors.clone();
        std::thread::spawn(move || {
            // Keeps trying to start imports until the connector is gone.
            loop {
                match connectors.start_import("c1") {
                    Err(Error::ConnectorNotFound { .. }) => return,
                    _ => std::thread::sleep(Duration::from_micros(100)),
                }
            }
        })
    };
    connectors.delete("c1").unwrap();
    racer.join().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(index.count(ROOT, EnumerationMode::RecursiveDocuments).unwrap(), 0);
    assert!(index.checkpoints_with_prefix("pushdex.").unwrap().iter().all(|c| c.name == "pushdex.connectors.next"));
}

#[test]
fn a_job_stops_with_its_connectors_and_releases_the_index() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = Index::open(dir.path()).unwrap();
        let connectors = Connectors::open(&index).unwrap();
        let mode = RunMode::Continuous { interval: Duration::from_secs(3600) };
        connectors.create("map", ROOT, Arc::new(MapSource::with(ROOT, 20)), mode).unwrap();
        connectors.start_import("c1").unwrap();
        assert_eq!(connectors.wait("c1").unwrap().status, JobState::Waiting);
    }
    // Every handle is gone: the directory is free again.
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.count(ROOT, EnumerationMode::RecursiveDocuments).unwrap(), 20);
}

#[test]
fn a_panicking_source_ends_the_job_in_error() {
    struct Panics;
    impl Source for Panics {
        fn description(&self) -> String {
            "panics".into()
        }
        fn list(&self, visit: &mut dyn FnMut(SourceItem) -> pushdex::Result<()>) -> pushdex::Result<()> {
            visit(SourceItem { uri: format!("{ROOT}/a"), stamp: "1".into() })
        }
        fn fetch(&self, _: &SourceItem) -> pushdex::Result<Option<Document>> {
            panic!("the source broke")
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path()).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    connectors.create("panics", ROOT, Arc::new(Panics), RunMode::Once).unwrap();
    let job = connectors.run_import("c1").unwrap();
    assert_eq!(job.status, JobState::Error);
    assert!(job.last_error.as_deref().unwrap_or("").contains("the source broke"), "{job:?}");
}

#[test]
fn directory_connectors_skip_indexes_and_take_long_paths() {
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("a.txt"), "a").unwrap();
    // The index lives inside the tree it imports.
    let index = Index::open(tree.path().join("pushdex-data")).unwrap();
    let connectors = Connectors::open(&index).unwrap();
    let info = connectors.create_directory(tree.path(), RunMode::Once).unwrap();
    let job = connectors.run_import(&info.id).unwrap();
    assert_eq!((job.listed, job.added), (1, 1), "{job:?}");
    assert_eq!(connectors.run_import(&info.id).unwrap().unchanged, 1);

    let mut deep = tree.path().join("other");
    while deep.as_os_str().len() < 300 {
        deep = deep.join("a-rather-long-directory-name");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("f.txt"), "deep").unwrap();
    let other = connectors.create_directory(&deep, RunMode::Once);
    // Its root is inside the first connector's: refused for that reason,
    // not for the length of its name.
    assert!(matches!(&other, Err(Error::InvalidInput { reason }) if reason.contains("overlaps")), "{other:?}");
    connectors.delete(&info.id).unwrap();
    let info = connectors.create_directory(&deep, RunMode::Once).unwrap();
    assert_eq!(info.name, "a-rather-long-directory-name");
    assert_eq!(connectors.run_import(&info.id).unwrap().added, 1);
}
