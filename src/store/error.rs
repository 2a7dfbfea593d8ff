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
}

impl StoreError {
    /// A record of `table` that cannot be encoded or decoded.
    pub fn codec(table: &str, message: impl std::fmt::Display) -> Self {
        Self::Codec { table: table.to_string(), message: message.to_string() }
    }
}
