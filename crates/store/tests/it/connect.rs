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
    let err = Db::connect("mysql://admin:hunter2@localhost/tr").await.err().ok_or("mysql URL was accepted")?;
    assert!(matches!(&err, StoreError::UnsupportedUrl(scheme) if scheme == "mysql"));
    let message = err.to_string();
    assert!(message.contains("mysql") && message.contains("postgres://"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let err = Db::connect("just-a-file.db").await.err().ok_or("accepted")?;
    assert!(matches!(err, StoreError::UnsupportedUrl(_)));
    Ok(())
}

#[tokio::test]
async fn a_missing_postgres_database_is_named_not_created() -> TestResult {
    let admin = crate::fixture::postgres_admin_url();
    let missing = crate::fixture::database_url(&admin, "tr_test_does_not_exist");
    for url in [missing.clone(), missing.replacen("postgres://", "postgresql://", 1)] {
        let err = Db::connect(&url).await.err().ok_or("a missing database was accepted")?;
        assert!(matches!(&err, StoreError::NoDatabase(name) if name == "tr_test_does_not_exist"), "{err}");
        assert!(err.to_string().contains("create it first"), "{err}");
    }
    Ok(())
}

#[tokio::test]
async fn several_processes_migrating_at_once_migrate_once() -> TestResult {
    use crate::fixture::Backend;
    let fresh = Backend::Postgres.blank().await?;
    let opened = futures_util::future::join_all((0..8).map(|_| Db::open(&fresh.url))).await;
    let pools: Vec<Db> = opened.into_iter().collect::<Result<_, _>>()?;
    // Eight at once (as eight replicas starting together): the migrator's lock lets one
    // apply everything and the others find nothing left to do.
    let applied = futures_util::future::join_all(pools.iter().map(Db::migrate)).await;
    for result in applied {
        result?;
    }
    assert_eq!(fresh.migrate().await?, 0);
    pools[0].create_account("after", NanoUsd(1)).await?;
    Ok(())
}
