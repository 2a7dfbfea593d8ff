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
    #[error("the writer has stopped")]
    WriterGone,
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// A record of `table` that cannot be encoded or decoded.
    pub fn codec(table: &str, message: impl std::fmt::Display) -> Self {
        Self::Codec { table: table.to_string(), message: message.to_string() }
    }
}
