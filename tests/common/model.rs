//! The one model of an index that the tests and the fuzz crate's `ops`
//! target share (`tests/model.rs`, `tests/kill.rs`, `tests/search_model.rs`,
//! the crash and fault tests through `tests/common`, and
//! `fuzz/src/ops.rs`, which includes this file by path): API.md's contract
//! written out as plainly as possible, in `BTreeMap`s.
//!
//! * Documents by URI, each with the serial of its newest operation and its
//!   content ([`Doc`]: stamp, metas, parts), and checkpoints by name with
//!   their value and serial.
//! * Serials ("Serials"): one per operation, one per document of `add_all`,
//!   none for a refused call ([`Refused`]: API.md's "Arguments" and
//!   `NotFound`) or a barrier.
//! * Watermarks and states ("States"): `last`, `synced`, `searchable`;
//!   Pushed, Synced, Searchable by serial.
//! * Folder rules ("Folders", "Deletion", "Enumeration"): [`folder_prefix`],
//!   [`under`], [`Model::enumerate`].
//! * Crashes: what a reopen may recover ([`Model::reopened`]): operations
//!   1..j, never part of a batch, with j at least what was synced; the model
//!   goes back to j through an undo log.
//!
//! And the comparisons every test makes of an index with the model:
//! [`Model::write`] (a write's serial or refusal), [`Model::barrier`]
//! (`sync` and `refresh`), [`Model::check`] (watermarks, statuses,
//! documents, enumerations, counts, checkpoints).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use pushdex::{Document, Entry, EnumerationMode, Error, Index, Serial, State, Update, Watermarks};

/// Every enumeration mode.
pub const MODES: [EnumerationMode; 4] = [
    EnumerationMode::RecursiveDocuments,
    EnumerationMode::NotRecursiveDocuments,
    EnumerationMode::NotRecursiveFolders,
    EnumerationMode::NotRecursiveAll,
];

/// The prefix the documents under `root` share (API.md, "Folders").
pub fn folder_prefix(root: &str) -> String {
    if root.is_empty() || root.ends_with('/') {
        root.to_string()
    } else {
        format!("{root}/")
    }
}

/// Whether `uri` is under `root` (`recursive`), or one of its direct
/// children: the documents `delete_root_path(root, recursive)` deletes, and
/// those a `Query::Under` matches. The document named exactly `root` is not
/// under it.
pub fn under(uri: &str, root: &str, recursive: bool) -> bool {
    match uri.strip_prefix(folder_prefix(root).as_str()) {
        Some(rest) => recursive || !rest.contains('/'),
        None => false,
    }
}

/// Whether a checkpoint name is reserved for pushdex's own layers: refused
/// by `set_checkpoint` and `delete_checkpoint`, not listed by
/// `checkpoints()`, left by `clear_checkpoints()`.
pub fn reserved(name: &str) -> bool {
    name.starts_with("pushdex.")
}

/// A part of a document.
#[derive(Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    /// Text (full-text indexed) or binary.
    pub text: bool,
    pub bytes: Vec<u8>,
}

/// Shows UTF-8 bytes as a string, so that failing operations read well.
impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct(if self.text { "Text" } else { "Binary" });
        out.field("name", &self.name);
        match std::str::from_utf8(&self.bytes) {
            Ok(text) => out.field("bytes", &text),
            Err(_) => out.field("bytes", &format_args!("{} bytes", self.bytes.len())),
        };
        out.finish()
    }
}

/// A document's content as the model keeps it: what `get` must return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Doc {
    pub stamp: String,
    /// `(name, value)` in order: metas are multi-valued.
    pub metas: Vec<(String, String)>,
    /// At most one part of a name, in the order they were first added.
    pub parts: Vec<Part>,
}

impl Doc {
    /// A document with this stamp, no metas and no parts.
    pub fn new(stamp: impl Into<String>) -> Doc {
        Doc { stamp: stamp.into(), ..Doc::default() }
    }

    /// Appends a value to a meta, as `Document::with_meta`.
    pub fn meta(mut self, name: impl Into<String>, value: impl Into<String>) -> Doc {
        self.metas.push((name.into(), value.into()));
        self
    }

    /// Adds or replaces a text part, as `Document::with_text`.
    pub fn text(mut self, name: impl Into<String>, text: impl Into<String>) -> Doc {
        self.set_part(Part { name: name.into(), text: true, bytes: text.into().into_bytes() });
        self
    }

    /// Adds or replaces a binary part, as `Document::with_part`.
    pub fn binary(mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Doc {
        self.set_part(Part { name: name.into(), text: false, bytes: bytes.into() });
        self
    }

    /// A part replaces the one of the same name where it stands.
    fn set_part(&mut self, part: Part) {
        match self.parts.iter_mut().find(|p| p.name == part.name) {
            Some(old) => *old = part,
            None => self.parts.push(part),
        }
    }

    /// The document to push under `uri`, which `get(uri)` must return.
    pub fn document(&self, uri: &str) -> Document {
        let mut doc = Document::new(uri).with_stamp(self.stamp.as_str());
        for (name, value) in &self.metas {
            doc = doc.with_meta(name.as_str(), value.as_str());
        }
        for part in &self.parts {
            doc = match std::str::from_utf8(&part.bytes) {
                Ok(text) if part.text => doc.with_text(part.name.as_str(), text),
                _ => doc.with_part(part.name.as_str(), part.bytes.clone()),
            };
        }
        doc
    }

    /// A document the index returned, as the model's content.
    pub fn read(doc: &Document) -> Doc {
        Doc {
            stamp: doc.stamp().to_string(),
            metas: doc.all_metas().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            parts: doc
                .parts()
                .map(|(name, text, bytes)| Part { name: name.to_string(), text, bytes: bytes.to_vec() })
                .collect(),
        }
    }

    /// Applies an update (the engine's order of the metas: the new values of
    /// a meta take the place of its first old value, else come last).
    fn apply(&mut self, edit: &Edit) {
        if let Some(stamp) = &edit.stamp {
            self.stamp.clone_from(stamp);
        }
        for change in &edit.changes {
            match change {
                Change::Meta(name, values) => {
                    let at = self.metas.iter().position(|(n, _)| n == name).unwrap_or(self.metas.len());
                    self.metas.retain(|(n, _)| n != name);
                    let at = at.min(self.metas.len());
                    self.metas.splice(at..at, values.iter().map(|v| (name.clone(), v.clone())));
                }
                Change::Part(part) => self.set_part(part.clone()),
                Change::RemovePart(name) => self.parts.retain(|p| &p.name != name),
            }
        }
    }
}

/// One change of an [`Edit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Replace every value of a meta (none: remove it).
    Meta(String, Vec<String>),
    /// Add or replace a part.
    Part(Part),
    /// Remove a part (nothing happens if there is none).
    RemovePart(String),
}

impl Change {
    /// Adds or replaces a text part.
    pub fn text(name: impl Into<String>, text: impl Into<String>) -> Change {
        Change::Part(Part { name: name.into(), text: true, bytes: text.into().into_bytes() })
    }

    /// Adds or replaces a binary part.
    pub fn binary(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Change {
        Change::Part(Part { name: name.into(), text: false, bytes: bytes.into() })
    }
}

/// A partial update: a new stamp, changes applied in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edit {
    pub stamp: Option<String>,
    pub changes: Vec<Change>,
}

impl Edit {
    /// The same update for the engine.
    pub fn update(&self) -> Update {
        let mut update = Update::new();
        if let Some(stamp) = &self.stamp {
            update = update.stamp(stamp.as_str());
        }
        for change in &self.changes {
            update = match change {
                Change::Meta(name, values) => update.meta(name.as_str(), values.iter().map(String::as_str)),
                Change::Part(Part { name, text: true, bytes }) => {
                    update.text(name.as_str(), String::from_utf8(bytes.clone()).expect("a text part is UTF-8"))
                }
                Change::Part(Part { name, bytes, .. }) => update.part(name.as_str(), bytes.clone()),
                Change::RemovePart(name) => update.remove_part(name.as_str()),
            };
        }
        update
    }
}

/// A mutating operation: what takes serials.
#[derive(Clone, Debug)]
pub enum Op {
    Add(String, Doc),
    AddAll(Vec<(String, Doc)>),
    Update(String, Edit),
    Delete(String),
    DeleteRootPath(String, bool),
    DeletePrefix(String),
    SetCheckpoint(String, String),
    DeleteCheckpoint(String),
    ClearCheckpoints,
}

impl Op {
    /// Runs the operation on the index.
    pub fn run(&self, index: &Index) -> pushdex::Result<Serial> {
        match self {
            Op::Add(uri, doc) => index.add(doc.document(uri)),
            Op::AddAll(docs) => index.add_all(docs.iter().map(|(uri, doc)| doc.document(uri))),
            Op::Update(uri, edit) => index.update(uri, edit.update()),
            Op::Delete(uri) => index.delete(uri),
            Op::DeleteRootPath(root, recursive) => index.delete_root_path(root, *recursive),
            Op::DeletePrefix(prefix) => index.delete_with_prefix(prefix),
            Op::SetCheckpoint(name, value) => index.set_checkpoint(name, value),
            Op::DeleteCheckpoint(name) => index.delete_checkpoint(name),
            Op::ClearCheckpoints => index.clear_checkpoints(),
        }
    }

    /// The URIs the operation names (deletions by root or prefix name none).
    pub fn uris(&self) -> Vec<&str> {
        match self {
            Op::Add(uri, _) | Op::Update(uri, _) | Op::Delete(uri) => vec![uri.as_str()],
            Op::AddAll(docs) => docs.iter().map(|(uri, _)| uri.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// Why the API refuses a call (which then takes no serial and changes
/// nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// An empty batch, an empty prefix, an update that changes nothing, a
    /// reserved checkpoint name.
    InvalidInput,
    /// An update of a URI the index does not hold.
    NotFound,
}

impl Refused {
    /// Whether `e` is this refusal.
    pub fn is(self, e: &Error) -> bool {
        match self {
            Refused::InvalidInput => matches!(e, Error::InvalidInput { .. }),
            Refused::NotFound => matches!(e, Error::NotFound { .. }),
        }
    }
}

/// A document the model holds: its content and the serial of its newest
/// operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub serial: u64,
    pub doc: Doc,
}

/// What the index holds: documents by URI, checkpoints by name (value,
/// serial).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    pub docs: BTreeMap<String, Held>,
    pub checkpoints: BTreeMap<String, (String, u64)>,
}

/// What one serial changed: the previous value of every key it touched.
#[derive(Clone, Debug, Default)]
struct Undo {
    /// Whether the serial ends an operation (not inside an `add_all`).
    ends_op: bool,
    docs: Vec<(String, Option<Held>)>,
    checkpoints: Vec<(String, Option<(String, u64)>)>,
}

/// The model: what operations 1..`last` leave, the watermarks, and how to go
/// back to an earlier serial.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub docs: BTreeMap<String, Held>,
    /// name → (value, serial); reserved names too.
    pub checkpoints: BTreeMap<String, (String, u64)>,
    pub last: u64,
    /// The synced watermark is at least this.
    pub synced: u64,
    pub searchable: u64,
    /// `undo[i]`: what serial i + 1 changed.
    undo: Vec<Undo>,
}

/// Why a comparison of the index with the model stopped.
#[derive(Debug)]
pub enum Mismatch {
    /// A call failed where the model expects an answer (a fault test may
    /// allow it: the model is then unchanged).
    Failed(Error),
    /// An answer differs from the model.
    Wrong(String),
}

impl From<Error> for Mismatch {
    fn from(e: Error) -> Mismatch {
        Mismatch::Failed(e)
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Failed(e) => write!(f, "a call failed: {e:?}"),
            Mismatch::Wrong(what) => f.write_str(what),
        }
    }
}

/// `assert_eq!` for a comparison that may be run again.
fn same<T: PartialEq + fmt::Debug>(got: T, want: T, what: impl FnOnce() -> String) -> Result<(), Mismatch> {
    if got == want {
        return Ok(());
    }
    Err(Mismatch::Wrong(format!("{}: got {got:?}, want {want:?}", what())))
}

/// [`same`] for lists, which may be long: names the first difference.
fn same_list<T: PartialEq + fmt::Debug>(got: &[T], want: &[T], what: impl FnOnce() -> String) -> Result<(), Mismatch> {
    if got == want {
        return Ok(());
    }
    let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    Err(Mismatch::Wrong(format!(
        "{}: {} entries, want {}; first difference at #{at}: got {:?}, want {:?}",
        what(),
        got.len(),
        want.len(),
        got.get(at),
        want.get(at)
    )))
}

impl Model {
    /// The documents and checkpoints.
    pub fn contents(&self) -> Contents {
        Contents { docs: self.docs.clone(), checkpoints: self.checkpoints.clone() }
    }

    /// The state of `serial` under the model's watermarks.
    pub fn state_of(&self, serial: u64) -> State {
        if serial == 0 || serial > self.last {
            State::Initial
        } else if serial <= self.searchable {
            State::Searchable
        } else if serial <= self.synced {
            State::Synced
        } else {
            State::Pushed
        }
    }

    /// Whether the API refuses `op`, and how.
    pub fn refusal(&self, op: &Op) -> Option<Refused> {
        match op {
            Op::AddAll(docs) if docs.is_empty() => Some(Refused::InvalidInput),
            Op::Update(_, edit) if edit.stamp.is_none() && edit.changes.is_empty() => Some(Refused::InvalidInput),
            Op::Update(uri, _) if !self.docs.contains_key(uri) => Some(Refused::NotFound),
            Op::DeletePrefix(prefix) if prefix.is_empty() => Some(Refused::InvalidInput),
            Op::SetCheckpoint(name, _) | Op::DeleteCheckpoint(name) if reserved(name) => Some(Refused::InvalidInput),
            _ => None,
        }
    }

    /// Applies `op` (unless the API refuses it); returns its (last) serial.
    pub fn apply(&mut self, op: &Op) -> Result<u64, Refused> {
        if let Some(refused) = self.refusal(op) {
            return Err(refused);
        }
        let mut undo = Undo { ends_op: true, ..Undo::default() };
        match op {
            Op::Add(uri, doc) => self.put(&mut undo, uri, doc.clone()),
            Op::AddAll(docs) => {
                for (i, (uri, doc)) in docs.iter().enumerate() {
                    self.put(&mut undo, uri, doc.clone());
                    if i + 1 < docs.len() {
                        self.end(std::mem::take(&mut undo), false);
                    }
                }
            }
            Op::Update(uri, edit) => {
                let mut doc = self.docs[uri].doc.clone();
                doc.apply(edit);
                self.put(&mut undo, uri, doc);
            }
            Op::Delete(uri) => self.remove_docs(&mut undo, |u| u == uri),
            Op::DeleteRootPath(root, recursive) => self.remove_docs(&mut undo, |u| under(u, root, *recursive)),
            Op::DeletePrefix(prefix) => self.remove_docs(&mut undo, |u| u.starts_with(prefix.as_str())),
            Op::SetCheckpoint(name, value) => {
                let old = self.checkpoints.insert(name.clone(), (value.clone(), self.last + 1));
                undo.checkpoints.push((name.clone(), old));
            }
            Op::DeleteCheckpoint(name) => {
                let old = self.checkpoints.remove(name);
                undo.checkpoints.push((name.clone(), old));
            }
            Op::ClearCheckpoints => {
                let gone: Vec<String> = self.checkpoints.keys().filter(|n| !reserved(n)).cloned().collect();
                for name in gone {
                    let old = self.checkpoints.remove(&name);
                    undo.checkpoints.push((name, old));
                }
            }
        }
        self.end(undo, true);
        Ok(self.last)
    }

    /// Puts a document at the next serial.
    fn put(&mut self, undo: &mut Undo, uri: &str, doc: Doc) {
        let old = self.docs.insert(uri.to_string(), Held { serial: self.last + 1, doc });
        undo.docs.push((uri.to_string(), old));
    }

    fn remove_docs(&mut self, undo: &mut Undo, gone: impl Fn(&str) -> bool) {
        let uris: Vec<String> = self.docs.keys().filter(|u| gone(u)).cloned().collect();
        for uri in uris {
            let old = self.docs.remove(&uri);
            undo.docs.push((uri, old));
        }
    }

    /// Ends a serial.
    fn end(&mut self, mut undo: Undo, ends_op: bool) {
        undo.ends_op = ends_op;
        self.undo.push(undo);
        self.last += 1;
    }

    /// The model after a crash (or a failure) that kept operations 1..j:
    /// an error if j is past the last operation or inside a batch.
    pub fn rewind(&mut self, j: u64) -> Result<(), String> {
        if j > self.last {
            return Err(format!("serial {j} is past the last operation {}", self.last));
        }
        if j > 0 && !self.undo[j as usize - 1].ends_op {
            return Err(format!("serial {j} is inside an add_all"));
        }
        while self.last > j {
            let undo = self.undo.pop().expect("a serial to undo");
            for (uri, old) in undo.docs.into_iter().rev() {
                match old {
                    Some(held) => self.docs.insert(uri, held),
                    None => self.docs.remove(&uri),
                };
            }
            for (name, old) in undo.checkpoints.into_iter().rev() {
                match old {
                    Some(value) => self.checkpoints.insert(name, value),
                    None => self.checkpoints.remove(&name),
                };
            }
            self.last -= 1;
        }
        self.synced = self.synced.min(j);
        self.searchable = self.searchable.min(j);
        Ok(())
    }

    /// After an open (clean, or after a crash or a failure): the index,
    /// with watermarks `w`, must hold operations 1..j, j = `w.last`, with
    /// `keep <= j <= last` (`keep`: what was synced, or `last` after a clean
    /// close), never part of a batch; everything it holds is synced, and
    /// what was searchable stays so. The model goes back to j.
    pub fn reopened(&mut self, w: &Watermarks, keep: u64) -> Result<(), String> {
        let j = w.last.0;
        if j < keep || j > self.last {
            return Err(format!("recovered up to serial {j}, outside {keep}..={}", self.last));
        }
        if w.synced != w.last {
            return Err(format!("a reopened index has synced everything it holds: {w:?}"));
        }
        if w.searchable.0 < self.searchable || w.searchable > w.last {
            return Err(format!("searchable {} after reopen, was {}", w.searchable, self.searchable));
        }
        self.rewind(j)?;
        self.synced = j;
        self.searchable = w.searchable.0;
        Ok(())
    }

    /// Runs `op` on the index and, when the engine accepts it, on the
    /// model: the answer must be the model's serial (returned), or its
    /// refusal (`None`). An error the model does not predict changes nothing
    /// and is returned as [`Mismatch::Failed`].
    pub fn write(&mut self, index: &Index, op: &Op) -> Result<Option<u64>, Mismatch> {
        match (self.refusal(op), op.run(index)) {
            (None, Ok(serial)) => {
                let want = self.apply(op).expect("accepted");
                same(serial, Serial(want), || format!("the serial of {op:?}"))?;
                Ok(Some(want))
            }
            (Some(refused), Err(e)) if refused.is(&e) => Ok(None),
            (Some(refused), Ok(serial)) => {
                Err(Mismatch::Wrong(format!("{op:?} returned {serial}, but the API refuses it ({refused:?})")))
            }
            (_, Err(e)) => Err(Mismatch::Failed(e)),
        }
    }

    /// `sync()` (or `refresh()`): it returns the watermark at `last`, which
    /// the model moves there; returns it.
    pub fn barrier(&mut self, index: &Index, refresh: bool) -> Result<u64, Mismatch> {
        let got = if refresh { index.refresh()? } else { index.sync()? };
        same(got, Serial(self.last), || {
            format!("{} returns the new watermark", if refresh { "refresh" } else { "sync" })
        })?;
        self.synced = self.last;
        if refresh {
            self.searchable = self.last;
        }
        Ok(self.last)
    }

    /// What `enumerate` (or `enumerate_synced`) under `root` lists in
    /// `mode`: API.md's definitions, written out as plainly as possible.
    pub fn enumerate(&self, root: &str, mode: EnumerationMode, synced_only: bool) -> Vec<String> {
        let prefix = folder_prefix(root);
        let mut docs = BTreeSet::new();
        let mut folders = BTreeSet::new();
        for (uri, held) in &self.docs {
            if !uri.starts_with(&prefix) || (synced_only && held.serial > self.synced) {
                continue;
            }
            let rest = &uri[prefix.len()..];
            match rest.find('/') {
                None => {
                    docs.insert(uri.clone());
                }
                Some(_) if mode == EnumerationMode::RecursiveDocuments => {
                    docs.insert(uri.clone());
                }
                Some(i) => {
                    folders.insert(format!("{prefix}{}", &rest[..=i]));
                }
            }
        }
        let mut out: Vec<String> = match mode {
            EnumerationMode::RecursiveDocuments | EnumerationMode::NotRecursiveDocuments => docs.into_iter().collect(),
            EnumerationMode::NotRecursiveFolders => folders.into_iter().collect(),
            _ => docs.into_iter().chain(folders).collect(),
        };
        out.sort();
        out
    }

    /// Compares everything the index answers with the model: the
    /// watermarks; status and document of every URI in `uris` (absent ones
    /// must read as absent); enumerate, enumerate_synced and count under
    /// every root in every mode; the checkpoints listed, and each of
    /// `checkpoints` read by name.
    ///
    /// A full memtable is flushed in the background, and a flush syncs:
    /// `synced` may move on while the comparison runs. So the model takes
    /// the engine's `synced` (never below its own), and a comparison that
    /// straddled a move is run again.
    pub fn check(
        &mut self,
        index: &Index,
        uris: &BTreeSet<String>,
        roots: &[String],
        checkpoints: &[&str],
    ) -> Result<(), Mismatch> {
        for _ in 0..20 {
            let w = index.watermarks();
            same(w.last, Serial(self.last), || "last".to_string())?;
            if w.synced.0 < self.synced || w.synced > w.last {
                return Err(Mismatch::Wrong(format!("synced {} not in {}..={}", w.synced, self.synced, self.last)));
            }
            same(w.searchable, Serial(self.searchable), || "searchable".to_string())?;
            self.synced = w.synced.0;
            let result = self.compare(index, uris, roots, checkpoints);
            match result {
                Err(Mismatch::Failed(e)) => return Err(Mismatch::Failed(e)),
                Err(Mismatch::Wrong(what)) if index.watermarks() == w => {
                    return Err(Mismatch::Wrong(format!("{what}\nwatermarks {w:?}")))
                }
                Ok(()) if index.watermarks() == w => return Ok(()),
                _ => {}
            }
        }
        Err(Mismatch::Wrong("the watermarks never stood still for a whole comparison".to_string()))
    }

    /// One comparison under the model's watermarks.
    fn compare(
        &self,
        index: &Index,
        uris: &BTreeSet<String>,
        roots: &[String],
        checkpoints: &[&str],
    ) -> Result<(), Mismatch> {
        for uri in uris {
            let status = index.status(uri)?;
            let got = index.get(uri)?;
            match self.docs.get(uri) {
                None => {
                    same((status.state, status.serial), (State::Initial, Serial(0)), || {
                        format!("status of absent {uri:?}")
                    })?;
                    same(got, None, || format!("get of absent {uri:?}"))?;
                }
                Some(held) => {
                    let want = (Serial(held.serial), held.doc.stamp.as_str(), self.state_of(held.serial));
                    same((status.serial, status.stamp.as_str(), status.state), want, || format!("status of {uri:?}"))?;
                    same(got, Some(held.doc.document(uri)), || format!("get {uri:?}"))?;
                }
            }
        }
        for root in roots {
            for mode in MODES {
                for synced_only in [false, true] {
                    let what = || format!("enumerate (synced only: {synced_only}) {root:?} {mode:?}");
                    let entries =
                        if synced_only { index.enumerate_synced(root, mode)? } else { index.enumerate(root, mode)? };
                    let got = entries.collect::<pushdex::Result<Vec<Entry>>>()?;
                    let keys: Vec<&str> = got.iter().map(Entry::key).collect();
                    let want = self.enumerate(root, mode, synced_only);
                    same_list(&keys, &want.iter().map(String::as_str).collect::<Vec<_>>(), what)?;
                    for entry in &got {
                        if let Entry::Document(st) = entry {
                            let held = &self.docs[&st.uri];
                            let want = (Serial(held.serial), held.doc.stamp.as_str(), self.state_of(held.serial));
                            same((st.serial, st.stamp.as_str(), st.state), want, || {
                                format!("{} lists {:?}", what(), st.uri)
                            })?;
                        }
                    }
                }
                let count = index.count(root, mode)?;
                same(count, self.enumerate(root, mode, false).len() as u64, || format!("count {root:?} {mode:?}"))?;
            }
        }
        let got: Vec<(String, String, Serial, State)> =
            index.checkpoints()?.into_iter().map(|c| (c.name, c.value, c.serial, c.state)).collect();
        let want: Vec<(String, String, Serial, State)> = self
            .checkpoints
            .iter()
            .filter(|(name, _)| !reserved(name))
            .map(|(name, (value, serial))| (name.clone(), value.clone(), Serial(*serial), self.state_of(*serial)))
            .collect();
        same_list(&got, &want, || "checkpoints()".to_string())?;
        for name in checkpoints {
            let got = index.checkpoint(name)?.map(|c| (c.value, c.serial, c.state));
            let want = self.checkpoints.get(*name).map(|(v, s)| (v.clone(), Serial(*s), self.state_of(*s)));
            same(got, want, || format!("checkpoint({name:?})"))?;
        }
        Ok(())
    }
}
