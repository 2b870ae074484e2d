//! Errors of the store layer: user-caused ones apart from internal ones.

use crate::model::ValidationError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("contact {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// Identities already held by other active contacts: (input field, holder id).
    #[error("identity already belongs to another contact")]
    IdentityTaken(Vec<(String, String)>),
    #[error("an active contact with this name exists: {0}")]
    NameTaken(String),
    #[error("external_id already belongs to contact {0}")]
    ExternalIdTaken(String),
    #[error("version mismatch: current version is {current}")]
    VersionMismatch { current: u64 },
    #[error("{0}")]
    Conflict(String),
    /// A scoped key's write would leave the contact outside the key's scope.
    #[error("the contact would leave this key's scope")]
    OutOfScope,
    /// A body that cannot be applied as given (a patch of the wrong shape, ...).
    #[error("{0}")]
    BadRequest(String),
    #[error("the store is shut down")]
    Closed,
    /// The writer's queue is full: the command was not queued.
    #[error("the write queue is full")]
    Overloaded,
    #[error("storage error: {0}")]
    Storage(#[from] redb::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The batch the command was in panicked (a bug): nothing of it was committed.
    #[error("the write batch panicked: {0}")]
    Panicked(String),
}

impl StoreError {
    /// Internal errors abort a whole group-commit batch; the others only their command.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            StoreError::Storage(_)
                | StoreError::Corrupt(_)
                | StoreError::Closed
                | StoreError::Panicked(_)
        )
    }
}

macro_rules! from_redb {
    ($($kind:ty),*) => {$(
        impl From<$kind> for StoreError {
            fn from(error: $kind) -> Self {
                StoreError::Storage(error.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
