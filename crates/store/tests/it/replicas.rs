//! Processes sharing a database: heartbeats, leases with one holder at a time, disabled
//! accounts' keys leaving the active set, and (PostgreSQL) changes pushed to listeners.

use std::time::Duration;

use tokenrouter_store::{Change, Db, NanoUsd, Replica};

use crate::fixture::{Backend, TestResult, new_key, on_both_backends};

async fn heartbeats_announce_and_renew(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let replica = Replica { id: "r1".into(), host: "host-a".into(), pid: 4242, started_at: 100 };
    db.heartbeat(&replica, 100).await?;
    db.heartbeat(&replica, 105).await?;
    let rows = db.replicas().await?;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].host.as_str(), rows[0].pid, rows[0].started_at, rows[0].seen_at), ("host-a", 4242, 100, 105));
    db.forget_replica("r1").await?;
    assert!(db.replicas().await?.is_empty());
    Ok(())
}

async fn a_lease_has_one_holder_until_it_expires(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let other = Db::open(&db.url).await?;
    let (a, b) = tokio::join!(db.try_lease("sweeper", "a", 1000, 30), other.try_lease("sweeper", "b", 1000, 30));
    assert!(a? ^ b?, "exactly one of two takes it");
    let holder = if db.try_lease("sweeper", "a", 1001, 30).await? { "a" } else { "b" };
    let outsider = if holder == "a" { "b" } else { "a" };
    assert!(db.try_lease("sweeper", holder, 1010, 30).await?, "the holder renews");
    assert!(!db.try_lease("sweeper", outsider, 1039, 30).await?, "not before it expires");
    assert!(db.try_lease("sweeper", outsider, 1040, 30).await?, "then anyone may");
    assert!(!db.try_lease("sweeper", holder, 1041, 30).await?);
    assert!(db.try_lease("other-work", holder, 1041, 30).await?, "leases are by name");
    Ok(())
}

async fn a_disabled_accounts_keys_stop_being_active(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let account = db.create_account("acme", NanoUsd(1)).await?;
    db.insert_key(&new_key("k1", account.id)).await?;
    let version = db.keys_version().await?;
    let disabled = db.set_account_disabled("acme", true).await?;
    assert!(disabled.disabled_at.is_some());
    assert!(db.active_keys().await?.is_empty());
    assert!(db.keys_version().await? > version);
    db.set_account_disabled("acme", false).await?;
    assert_eq!(db.active_keys().await?.len(), 1);
    assert!(db.set_account_disabled("nobody", true).await.is_err());
    Ok(())
}

on_both_backends!(
    heartbeats_announce_and_renew,
    a_lease_has_one_holder_until_it_expires,
    a_disabled_accounts_keys_stop_being_active,
);

#[tokio::test]
async fn postgres_pushes_key_changes_to_every_listener() -> TestResult {
    let db = Backend::Postgres.db().await?;
    let account = db.create_account("acme", NanoUsd(1)).await?;
    let mut first = db.changes().await?.ok_or("no listener on PostgreSQL")?;
    let other = Db::open(&db.url).await?;
    let mut second = other.changes().await?.ok_or("no listener")?;
    db.insert_key(&new_key("k1", account.id)).await?;
    for changes in [&mut first, &mut second] {
        let change = tokio::time::timeout(Duration::from_secs(1), changes.next()).await??;
        assert_eq!(change, Change::Changed);
    }
    db.revoke_key("k1").await?;
    let change = tokio::time::timeout(Duration::from_secs(1), second.next()).await??;
    assert_eq!(change, Change::Changed);
    assert!(Backend::Sqlite.db().await?.changes().await?.is_none(), "SQLite polls");
    Ok(())
}
