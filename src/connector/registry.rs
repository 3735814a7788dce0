//! The registry: connectors and their job records, kept as reserved
//! checkpoints so that they are logged, synced and recovered in the same
//! ordered stream as the documents.
//!
//! | checkpoint                  | value                                   |
//! |-----------------------------|-----------------------------------------|
//! | `pushdex.connectors.next`   | the number of the next id (`"3"`)       |
//! | `pushdex.connector.<id>`    | the [`ConnectorInfo`] as JSON           |
//! | `pushdex.job.<id>`          | the last recorded [`JobStatus`] as JSON |

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::connector::{ConnectorInfo, JobState, JobStatus, Source};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::uri::folder_prefix;

const NEXT_ID: &str = "pushdex.connectors.next";
const CONNECTOR: &str = "pushdex.connector.";
const JOB: &str = "pushdex.job.";

/// The name of a connector's registry checkpoint.
pub(crate) fn connector_key(id: &str) -> String {
    format!("{CONNECTOR}{id}")
}

/// The name of a connector's job-record checkpoint.
pub(crate) fn job_key(id: &str) -> String {
    format!("{JOB}{id}")
}

/// One registered connector.
pub(crate) struct Entry {
    pub info: ConnectorInfo,
    /// The source to import from: rebuilt for directories, attached by the
    /// user for custom sources.
    pub source: Option<Arc<dyn Source>>,
    /// The job status as last recorded (before any job of this process).
    pub recorded: JobStatus,
}

/// The connectors of an index, in memory, as the checkpoints hold them.
#[derive(Default)]
pub(crate) struct Registry {
    /// By id number (`c12` is 12), so that listing is in creation order.
    pub entries: BTreeMap<u64, Entry>,
    pub next_id: u64,
}

impl Registry {
    /// Reads the registry from the index's reserved checkpoints.
    pub fn load(index: &Index) -> Result<Registry> {
        // The registry is written only by this module (the public API
        // refuses `pushdex.` names), so a value that does not parse was
        // written by another version or a bug: a bad record, not a bad file.
        let bad = |name: &str, what: String| Error::BadRecord { name: name.to_string(), detail: what };
        let mut registry = Registry { entries: BTreeMap::new(), next_id: 1 };
        if let Some(c) = index.checkpoint(NEXT_ID)? {
            registry.next_id = c.value.parse().map_err(|e| bad(NEXT_ID, format!("{e}")))?;
            if registry.next_id == 0 {
                return Err(bad(NEXT_ID, format!("{} is not a connector id number", registry.next_id)));
            }
        }
        for c in index.checkpoints_with_prefix(CONNECTOR)? {
            let info: ConnectorInfo = serde_json::from_str(&c.value).map_err(|e| bad(&c.name, e.to_string()))?;
            let number = id_number(&info.id).ok_or_else(|| bad(&c.name, format!("bad id {:?}", info.id)))?;
            let source = super::source_of(&info.kind);
            let recorded = match index.checkpoint(&job_key(&info.id))? {
                Some(job) => {
                    let mut status: JobStatus =
                        serde_json::from_str(&job.value).map_err(|e| bad(&job.name, e.to_string()))?;
                    if status.status.is_active() {
                        // The process stopped while the job ran.
                        status.status = JobState::Error;
                        status.last_error = Some("interrupted: the process stopped while this import ran".into());
                    }
                    status
                }
                None => JobStatus::not_yet_run(),
            };
            registry.next_id = registry.next_id.max(number + 1);
            registry.entries.insert(number, Entry { info, source, recorded });
        }
        Ok(registry)
    }

    /// The entry of `id`.
    pub fn get(&self, id: &str) -> Result<&Entry> {
        id_number(id).and_then(|n| self.entries.get(&n)).ok_or_else(|| super::not_found(id))
    }

    /// The entry of `id`, to change.
    pub fn get_mut(&mut self, id: &str) -> Result<&mut Entry> {
        id_number(id).and_then(|n| self.entries.get_mut(&n)).ok_or_else(|| super::not_found(id))
    }

    /// The connector whose root overlaps `root` (equal, or a folder of the
    /// other), if any.
    pub fn overlapping(&self, root: &str) -> Option<&ConnectorInfo> {
        let prefix = folder_prefix(root);
        self.entries.values().map(|e| &e.info).find(|info| {
            let other = folder_prefix(&info.root);
            other.starts_with(prefix.as_ref()) || prefix.starts_with(other.as_ref())
        })
    }

    /// Records a new connector: the next id, then its entry, made durable.
    pub fn insert(&mut self, index: &Index, info: ConnectorInfo, source: Arc<dyn Source>) -> Result<()> {
        let number = id_number(&info.id).expect("ids are made by Connectors::create from `next_id`");
        let json = serde_json::to_string(&info).map_err(|e| Error::invalid_input(e.to_string()))?;
        index.set_reserved_checkpoint(NEXT_ID, &(number + 1).to_string())?;
        index.set_reserved_checkpoint(&connector_key(&info.id), &json)?;
        index.sync()?;
        self.next_id = number + 1;
        self.entries.insert(number, Entry { info, source: Some(source), recorded: JobStatus::not_yet_run() });
        Ok(())
    }

    /// Forgets `id` (its checkpoints are deleted by the caller).
    pub fn remove(&mut self, id: &str) {
        if let Some(n) = id_number(id) {
            self.entries.remove(&n);
        }
    }
}

/// Writes a job record (not synced: the job syncs at batch boundaries).
pub(crate) fn record_job(index: &Index, id: &str, status: &JobStatus) -> Result<()> {
    let json = serde_json::to_string(status).map_err(|e| Error::invalid_input(e.to_string()))?;
    index.set_reserved_checkpoint(&job_key(id), &json)?;
    Ok(())
}

/// `"c12"` → 12.
pub(crate) fn id_number(id: &str) -> Option<u64> {
    let digits = id.strip_prefix('c')?;
    if digits.starts_with('0') {
        return None;
    }
    digits.parse().ok().filter(|&number| number <= MAX_ID)
}

/// The highest connector id number: one more always fits in a `u64`, so
/// the counter of the next id (at most `MAX_ID + 1`, every id used) never
/// overflows.
pub(crate) const MAX_ID: u64 = u64::MAX - 1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{Connectors, RunMode};

    /// Ids come from a counter in a reserved checkpoint: its last value
    /// refuses a new connector instead of overflowing, and a record beyond
    /// it is a bad record, not a panic.
    #[test]
    fn connector_ids_cannot_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let tree = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        index.set_reserved_checkpoint(NEXT_ID, &MAX_ID.to_string()).unwrap();
        let connectors = Connectors::open(&index).unwrap();
        let last = connectors.create_directory(tree.path(), RunMode::Once).unwrap();
        assert_eq!(last.id, format!("c{MAX_ID}"));
        let other = tempfile::tempdir().unwrap();
        let refused = connectors.create_directory(other.path(), RunMode::Once);
        assert!(matches!(refused, Err(Error::InvalidInput { .. })), "{refused:?}");
        drop(connectors);
        // Reloaded, the registry says the same.
        let connectors = Connectors::open(&index).unwrap();
        assert!(matches!(connectors.create_directory(other.path(), RunMode::Once), Err(Error::InvalidInput { .. })));
        drop(connectors);
        // A counter or an id past the last one was not written by pushdex.
        index.set_reserved_checkpoint(NEXT_ID, &u64::MAX.to_string()).unwrap();
        assert!(Connectors::open(&index).is_ok());
        index.set_reserved_checkpoint(NEXT_ID, "0").unwrap();
        assert!(matches!(Connectors::open(&index), Err(Error::BadRecord { .. })));
        index.set_reserved_checkpoint(NEXT_ID, "1").unwrap();
        let json = serde_json::to_string(&ConnectorInfo { id: format!("c{}", u64::MAX), ..last }).unwrap();
        index.set_reserved_checkpoint(&connector_key(&format!("c{}", u64::MAX)), &json).unwrap();
        assert!(matches!(Connectors::open(&index), Err(Error::BadRecord { .. })));
    }
}
