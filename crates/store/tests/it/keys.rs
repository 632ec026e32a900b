//! API keys: insert, list, revoke, active keys, the keys_version counter, JSON columns.

use tokenrouter_store::{NanoUsd, StoreError};

use crate::fixture::{Backend, TestResult, new_key, on_both_backends};

async fn insert_list_revoke_and_version_bumps(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd::ZERO).await?;
    let other = db.create_account("other", NanoUsd::ZERO).await?;
    assert_eq!(db.keys_version().await?, 0);

    db.insert_key(&new_key("k1", acme.id)).await?;
    db.insert_key(&new_key("k2", acme.id)).await?;
    db.insert_key(&new_key("k3", other.id)).await?;
    assert_eq!(db.keys_version().await?, 3);

    let listed: Vec<String> = db.list_keys(acme.id).await?.into_iter().map(|k| k.id).collect();
    assert_eq!(listed, ["k2", "k1"]);

    db.revoke_key("k1").await?;
    assert_eq!(db.keys_version().await?, 4);
    // Revoking again is a no-op: same revocation time, no new version.
    let revoked_at = db.list_keys(acme.id).await?[1].revoked_at.ok_or("k1 not revoked")?;
    db.revoke_key("k1").await?;
    assert_eq!(db.keys_version().await?, 4);
    let k1 = db.list_keys(acme.id).await?.into_iter().find(|k| k.id == "k1").ok_or("k1")?;
    assert_eq!(k1.revoked_at, Some(revoked_at));

    // Revoked keys stay listed but are no longer active.
    assert_eq!(db.list_keys(acme.id).await?.len(), 2);
    let mut active: Vec<(String, String)> =
        db.active_keys().await?.into_iter().map(|k| (k.id, k.account_name)).collect();
    active.sort();
    assert_eq!(active, [("k2".to_owned(), "acme".to_owned()), ("k3".to_owned(), "other".to_owned())]);

    let err = db.revoke_key("nope").await.err().ok_or("unknown key revoked")?;
    assert!(matches!(&err, StoreError::KeyNotFound(id) if id == "nope"));
    assert_eq!(db.keys_version().await?, 4);
    Ok(())
}

async fn every_field_round_trips(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd::ZERO).await?;
    let mut key = new_key("tr_pub_1", acme.id);
    key.name = "ci runner".to_owned();
    key.secret_hash = std::array::from_fn(|i| u8::try_from(i).unwrap_or(0) * 3);
    key.models = vec!["gpt-4o".to_owned(), "claude-*".to_owned(), "quote\"d".to_owned()];
    key.ips = vec!["10.0.0.0/8".to_owned(), "::1".to_owned()];
    key.rpm = Some(60);
    key.tpm = Some(u32::MAX);
    key.spend_limit = Some(NanoUsd(25_000_000_000));
    key.expires_at = Some(1_900_000_000);
    db.insert_key(&key).await?;

    let rows = db.list_keys(acme.id).await?;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.id, "tr_pub_1");
    assert_eq!(row.account_id, acme.id);
    assert_eq!(row.account_name, "acme");
    assert_eq!(row.name, "ci runner");
    assert_eq!(row.secret_hash, key.secret_hash);
    assert_eq!(row.models, key.models);
    assert_eq!(row.ips, key.ips);
    assert_eq!(row.rpm, Some(60));
    assert_eq!(row.tpm, Some(u32::MAX));
    assert_eq!(row.spend_limit, Some(NanoUsd(25_000_000_000)));
    assert_eq!(row.spent, NanoUsd::ZERO);
    assert_eq!(row.expires_at, Some(1_900_000_000));
    assert!(row.created_at > 1_600_000_000);
    assert_eq!(row.revoked_at, None);

    // Empty lists and absent limits round-trip as such.
    db.insert_key(&new_key("tr_pub_2", acme.id)).await?;
    let plain = db.list_keys(acme.id).await?.into_iter().find(|k| k.id == "tr_pub_2");
    let plain = plain.ok_or("tr_pub_2 missing")?;
    assert!(plain.models.is_empty() && plain.ips.is_empty());
    assert_eq!((plain.rpm, plain.tpm, plain.spend_limit), (None, None, None));
    Ok(())
}

async fn debug_output_hides_the_secret_hash(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd::ZERO).await?;
    let mut key = new_key("k1", acme.id);
    key.secret_hash = [0xAB; 32];
    db.insert_key(&key).await?;
    let row = db.active_keys().await?.pop().ok_or("no key")?;

    for text in [format!("{row:?}"), format!("{key:?}")] {
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains("171"), "{text}"); // 0xAB
        assert!(text.contains("k1"), "{text}");
    }
    Ok(())
}

async fn key_for_unknown_account_is_refused(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let err = db.insert_key(&new_key("k1", 404)).await.err().ok_or("accepted")?;
    assert!(matches!(err, StoreError::Database(_)), "{err}");
    assert_eq!(db.keys_version().await?, 0);
    Ok(())
}

on_both_backends!(
    insert_list_revoke_and_version_bumps,
    every_field_round_trips,
    debug_output_hides_the_secret_hash,
    key_for_unknown_account_is_refused,
);
