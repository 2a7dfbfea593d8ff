//! Storage errors. Always internal to callers: a client never sees their text.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] redb::DatabaseError),
    #[error("transaction: {0}")]
    Transaction(#[from] redb::TransactionError),
    #[error("table: {0}")]
    Table(#[from] redb::TableError),
    #[error("storage: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("commit: {0}")]
    Commit(#[from] redb::CommitError),
    #[error("record {table}: {message}")]
    Codec { table: String, message: String },
    #[error("the data file was created with a different master key (or its check value is damaged); start with the original key or restore the matching data file")]
    WrongMasterKey,
    #[error("the data file has schema version {found}, newer than this binary's {supported}; upgrade gatehouse")]
    TooNew { found: u64, supported: u64 },
    #[error("durability: {0}")]
    Durability(#[from] redb::SetDurabilityError),
    #[error("sealing the master key check value: {0}")]
    Seal(#[from] crate::crypto::CryptoError),
    #[error("meta row {key}: {problem}")]
    Meta { key: &'static str, problem: &'static str },
    #[error("the writer has stopped")]
    WriterGone,
    #[error("cannot start the writer thread: {0}")]
    WriterStart(std::io::Error),
    #[error("the batch commit failed: {0}")]
    BatchCommit(std::sync::Arc<StoreError>),
    #[error("the mutation was not run")]
    NotRun,
    /// Refused before any write: the data directory's filesystem has less free space than the
    /// reserve (`storage.min_free_disk_mb`), kept so that redb never meets ENOSPC mid-commit.
    #[error("the data disk is full: {free} bytes free, {reserve} bytes kept in reserve")]
    DiskFull { free: u64, reserve: u64 },
    /// The data file is closed for reopening after an I/O failure (redb refuses every
    /// transaction after one until the file is opened again).
    #[error("the data file is being reopened after an I/O failure")]
    Reopening,
}

/// Why the store cannot take a write (or a read) for now; each answers 503, not 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Out of space, or below the reserve: frees itself when space returns.
    DiskFull,
    /// Recovering from an I/O failure (the file is being reopened).
    Recovering,
}

impl StoreError {
    /// Whether this failure is the disk (full, or an I/O failure being recovered from) rather
    /// than a bug: the API answers it with 503 and `Retry-After`.
    pub fn unavailable(&self) -> Option<Unavailable> {
        match self {
            Self::DiskFull { .. } => Some(Unavailable::DiskFull),
            Self::Reopening => Some(Unavailable::Recovering),
            Self::BatchCommit(inner) => inner.unavailable(),
            Self::Storage(e) => storage_unavailable(e),
            Self::Commit(redb::CommitError::Storage(e))
            | Self::Transaction(redb::TransactionError::Storage(e))
            | Self::Table(redb::TableError::Storage(e))
            | Self::Database(redb::DatabaseError::Storage(e)) => storage_unavailable(e),
            _ => None,
        }
    }

    /// Whether redb has latched an I/O failure: every later transaction on this handle fails
    /// until the file is closed and opened again.
    pub(super) fn needs_reopen(&self) -> bool {
        let storage = match self {
            Self::BatchCommit(inner) => return inner.needs_reopen(),
            Self::Storage(e) => e,
            Self::Commit(redb::CommitError::Storage(e))
            | Self::Transaction(redb::TransactionError::Storage(e))
            | Self::Table(redb::TableError::Storage(e)) => e,
            _ => return false,
        };
        matches!(storage, redb::StorageError::Io(_) | redb::StorageError::PreviousIo)
    }

    /// A record of `table` that cannot be encoded or decoded.
    pub fn codec(table: &str, message: impl std::fmt::Display) -> Self {
        Self::Codec { table: table.to_string(), message: message.to_string() }
    }
}

fn storage_unavailable(e: &redb::StorageError) -> Option<Unavailable> {
    match e {
        redb::StorageError::Io(io) if is_enospc(io) => Some(Unavailable::DiskFull),
        redb::StorageError::PreviousIo | redb::StorageError::DatabaseClosed => {
            Some(Unavailable::Recovering)
        }
        _ => None,
    }
}

/// ENOSPC or EDQUOT: no room on the filesystem (or in the user's quota).
pub(super) fn is_enospc(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded
}
