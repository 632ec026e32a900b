//! Signing in: sessions end and expire, sign-in links work once, and a redemption code
//! credits exactly once however many redeem it at the same moment.

use tokenrouter_store::{Db, NanoUsd, Redemption};

use crate::fixture::{Backend, TestResult, on_both_backends};

const NOW: i64 = 1_800_000_000;

fn hash(byte: u8) -> [u8; 32] {
    [byte; 32]
}

async fn sessions_last_until_they_expire_or_end(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let account = db.create_account("acme", NanoUsd::ZERO).await?;
    db.create_session(&hash(1), account.id, NOW, NOW + 60).await?;
    assert_eq!(db.session_account(&hash(1), NOW).await?.map(|a| a.id), Some(account.id));
    assert_eq!(db.session_account(&hash(1), NOW + 60).await?, None, "expired");
    assert_eq!(db.session_account(&hash(2), NOW).await?, None, "unknown");
    db.set_account_disabled("acme", true).await?;
    assert_eq!(db.session_account(&hash(1), NOW).await?, None, "disabled account");
    db.set_account_disabled("acme", false).await?;
    assert!(db.end_session(&hash(1)).await?);
    assert_eq!(db.session_account(&hash(1), NOW).await?, None, "ended");
    assert!(!db.end_session(&hash(1)).await?);
    Ok(())
}

async fn a_login_link_signs_in_once(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let other = Db::open(&db.url).await?;
    let account = db.create_account("acme", NanoUsd::ZERO).await?;
    db.create_login_link(&hash(3), account.id, NOW, NOW + 900).await?;
    assert_eq!(db.use_login_link(&hash(3), NOW + 900).await?, None, "expired");
    let link = hash(3);
    let handles: [&Db; 2] = [&db, &other];
    let uses = futures_util::future::try_join_all((0..10).map(|i| handles[i % 2].use_login_link(&link, NOW))).await?;
    assert_eq!(uses.iter().flatten().count(), 1, "{uses:?}");
    assert_eq!(uses.iter().flatten().next(), Some(&account.id));
    db.create_login_link(&hash(4), account.id, NOW, NOW + 900).await?;
    db.set_account_disabled("acme", true).await?;
    assert_eq!(db.use_login_link(&hash(4), NOW).await?, None, "disabled account");
    Ok(())
}

async fn a_code_credits_exactly_once(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let other = Db::open(&db.url).await?;
    let a = db.create_account("a", NanoUsd::ZERO).await?;
    let b = db.create_account("b", NanoUsd::ZERO).await?;
    let five = NanoUsd(5_000_000_000);
    db.create_codes(&[hash(5), hash(6)], five, NOW, Some(NOW + 100)).await?;
    // 20 at once, from two handles, for two accounts: one credit in all.
    let code = hash(5);
    let handles: [(&Db, i64); 2] = [(&db, a.id), (&other, b.id)];
    let tries = futures_util::future::try_join_all((0..20).map(|i| {
        let (handle, account) = handles[i % 2];
        handle.redeem_code(&code, account, NOW)
    }))
    .await?;
    let credited: Vec<_> = tries.iter().filter(|r| matches!(r, Redemption::Credited { .. })).collect();
    assert_eq!(credited.len(), 1, "{tries:?}");
    let a_now = db.account_by_id(a.id).await?.ok_or("a")?;
    let b_now = db.account_by_id(b.id).await?.ok_or("b")?;
    assert_eq!(a_now.balance.0 + b_now.balance.0, five.0);
    assert_eq!(db.ledger_sum(a.id).await?, a_now.balance);
    assert_eq!(db.ledger_sum(b.id).await?, b_now.balance);
    let kinds: Vec<String> =
        db.ledger(a.id, 10).await?.into_iter().chain(db.ledger(b.id, 10).await?).map(|r| r.kind).collect();
    assert_eq!(kinds, ["redemption"]);
    // Expired, unknown: refused alike, nothing credited.
    assert_eq!(db.redeem_code(&hash(6), a.id, NOW + 100).await?, Redemption::Invalid);
    assert_eq!(db.redeem_code(&hash(7), a.id, NOW).await?, Redemption::Invalid);
    assert_eq!(
        db.redeem_code(&hash(6), a.id, NOW + 99).await?,
        Redemption::Credited { amount: five, balance: NanoUsd(a_now.balance.0 + five.0) }
    );
    Ok(())
}

async fn admins_and_key_scopes_are_stored(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let account = db.create_account("acme", NanoUsd::ZERO).await?;
    assert!(!account.is_admin);
    assert!(db.set_admin("acme", true).await?.is_admin);
    assert!(db.account_by_id(account.id).await?.ok_or("gone")?.is_admin);
    let mut key = crate::fixture::new_key("kmgmt", account.id);
    key.scope = tokenrouter_store::KeyScope::Management;
    key.community = false;
    db.insert_key(&key).await?;
    let stored = db.list_keys(account.id).await?;
    assert_eq!((stored[0].scope, stored[0].community), (tokenrouter_store::KeyScope::Management, false));
    Ok(())
}

on_both_backends!(
    sessions_last_until_they_expire_or_end,
    a_login_link_signs_in_once,
    a_code_credits_exactly_once,
    admins_and_key_scopes_are_stored,
    an_accounts_keys_change_and_revoke_only_through_it,
);

async fn an_accounts_keys_change_and_revoke_only_through_it(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd::ZERO).await?;
    let other = db.create_account("other", NanoUsd::ZERO).await?;
    let mut key = crate::fixture::new_key("k1", acme.id);
    key.rpm = Some(5);
    db.insert_key(&key).await?;
    let version = db.keys_version().await?;
    let changes = tokenrouter_store::KeyChanges {
        name: Some("renamed".into()),
        models: Some(vec!["gpt-*".into()]),
        rpm: Some(None),
        tpm: Some(Some(1000)),
        spend_limit: Some(Some(NanoUsd(7))),
        ..Default::default()
    };
    assert_eq!(db.update_key(other.id, "k1", &changes).await?, None, "another account's key");
    let changed = db.update_key(acme.id, "k1", &changes).await?.ok_or("not changed")?;
    assert_eq!(changed.name, "renamed");
    assert_eq!(changed.models, ["gpt-*"]);
    assert_eq!((changed.rpm, changed.tpm, changed.spend_limit), (None, Some(1000), Some(NanoUsd(7))));
    assert_eq!(changed.expires_at, None);
    assert!(db.keys_version().await? > version, "replicas learn of the change");
    // Only what is named changes.
    let again = db
        .update_key(acme.id, "k1", &tokenrouter_store::KeyChanges { expires_at: Some(Some(NOW)), ..Default::default() })
        .await?;
    let again = again.ok_or("not changed")?;
    assert_eq!((again.name.as_str(), again.tpm, again.expires_at), ("renamed", Some(1000), Some(NOW)));

    use tokenrouter_store::Revocation;
    assert_eq!(db.revoke_account_key(other.id, "k1").await?, Revocation::NotFound);
    assert_eq!(db.revoke_account_key(acme.id, "k1").await?, Revocation::Revoked);
    assert_eq!(db.revoke_account_key(acme.id, "k1").await?, Revocation::AlreadyRevoked);
    assert_eq!(db.update_key(acme.id, "k1", &changes).await?, None, "revoked keys do not change");
    assert!(db.account_key(acme.id, "k1").await?.ok_or("gone")?.revoked_at.is_some());
    assert_eq!(db.account_key(other.id, "k1").await?, None);
    Ok(())
}
