//! Push sessions: an id that stops working when the index is reopened.

use crate::error::Result;
use crate::index::Index;
use crate::status::SessionId;

/// A push session: the [`SessionId`] it was started or resumed with, and the
/// index. Operations through [`PushSession::index`] fail with
/// `SessionMismatch` once the index's session has changed (a reopen).
#[derive(Debug)]
pub struct PushSession {
    index: Index,
    id: SessionId,
}

impl PushSession {
    pub(super) fn new(index: Index, id: SessionId) -> PushSession {
        PushSession { index, id }
    }

    /// The session's id, to hand to a client that resumes it later.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The index, after checking that the session is still current.
    ///
    /// # Errors
    /// `SessionMismatch` if the index's session is no longer this one;
    /// `Closed` if the index was closed.
    pub fn index(&self) -> Result<&Index> {
        self.index.check_session(self.id)?;
        Ok(&self.index)
    }

    /// Ends the session.
    pub fn stop(self) {}
}
