//! The store's error type. Messages name accounts and key ids, never secrets or URLs.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Holds only the URL's scheme: the rest may contain a password.
    #[error(
        "unsupported database URL scheme '{0}' (expected sqlite://PATH, sqlite:PATH, sqlite::memory: or postgres://USER@HOST:PORT/DB)"
    )]
    UnsupportedUrl(String),
    #[error("account '{0}' already exists")]
    AccountExists(String),
    #[error("account '{0}' not found")]
    AccountNotFound(String),
    #[error("account '{0}' holds funds for requests in flight: its balance cannot go below them")]
    WouldOverdraw(String),
    #[error("request '{0}' asked to hold a negative amount")]
    NegativeHold(String),
    #[error("API key '{0}' not found")]
    KeyNotFound(String),
    #[error("instance '{0}' not found")]
    InstanceNotFound(String),
    #[error("model '{0}' is listed twice for one instance")]
    DuplicateInstanceModel(String),
    #[error(transparent)]
    Money(#[from] tokenrouter_core::MoneyError),
    /// Holds only the database's name: the URL may contain a password.
    #[error(
        "the PostgreSQL database '{0}' does not exist: create it first (e.g. `createdb {0}`); tokenrouter creates tables, not databases"
    )]
    NoDatabase(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The thread of SQLite's writing connection could not take or answer a write.
    #[error("the database's writing connection failed: {0}")]
    Writer(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// True when the error is a unique-constraint violation reported by the database.
    pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
        matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
    }
}
