//! Opening databases: URL forms, reopening a file, in-memory databases.

use tokenrouter_store::{Db, NanoUsd, StoreError};

use crate::fixture::{TestResult, file_url, temp_db};

#[tokio::test]
async fn reopening_a_file_sees_its_data_and_reruns_no_migration() -> TestResult {
    let (dir, db) = temp_db().await?;
    let alice = db.create_account("alice", NanoUsd(5_000)).await?;
    // Write-ahead logging is on: its log file sits beside the database while open.
    assert!(dir.path().join("store.db-wal").exists());

    let again = Db::connect(&file_url(&dir)).await?;
    let seen = again.account_by_name("alice").await?.ok_or("alice missing")?;
    assert_eq!(seen, alice);
    assert_eq!(seen.balance, NanoUsd(5_000));

    // Writes through either handle are visible to the other.
    again.credit("alice", NanoUsd(1), "top-up").await?;
    let via_first = db.account_by_id(alice.id).await?.ok_or("alice missing")?;
    assert_eq!(via_first.balance, NanoUsd(5_001));
    Ok(())
}

#[tokio::test]
async fn sqlite_colon_path_form_creates_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("plain.db");
    let db = Db::connect(&format!("sqlite:{}", path.display())).await?;
    db.create_account("bob", NanoUsd::ZERO).await?;
    assert!(path.exists());
    Ok(())
}

#[tokio::test]
async fn memory_database_is_one_shared_database() -> TestResult {
    let db = Db::connect("sqlite::memory:").await?;
    let account = db.create_account("mem", NanoUsd(42)).await?;
    // A clone shares the pool and so the same in-memory database.
    let clone = db.clone();
    let seen = clone.account_by_id(account.id).await?.ok_or("account missing")?;
    assert_eq!(seen.balance, NanoUsd(42));
    assert_eq!(clone.ledger_sum(account.id).await?, NanoUsd(42));
    assert_eq!(clone.keys_version().await?, 0);

    // Two memory URLs are two distinct databases.
    let other = Db::connect("sqlite::memory:").await?;
    assert_eq!(other.account_by_name("mem").await?, None);
    Ok(())
}

#[tokio::test]
async fn unsupported_scheme_is_rejected_without_echoing_the_url() -> TestResult {
    let err = Db::connect("postgres://admin:hunter2@localhost/tr").await.err().ok_or("postgres URL was accepted")?;
    assert!(matches!(&err, StoreError::UnsupportedUrl(scheme) if scheme == "postgres"));
    let message = err.to_string();
    assert!(message.contains("postgres"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let err = Db::connect("just-a-file.db").await.err().ok_or("accepted")?;
    assert!(matches!(err, StoreError::UnsupportedUrl(_)));
    Ok(())
}
