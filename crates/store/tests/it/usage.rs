//! Usage recording: exactly-once charges, round trips, batch speed.

use std::time::{Duration, Instant};

use tokenrouter_store::{Earning, NanoUsd, UsageSource};

use crate::fixture::{Backend, TestResult, new_key, on_both_backends, usage_record};

async fn same_request_id_is_charged_once_within_and_across_batches(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd(1_000_000)).await?;
    db.insert_key(&new_key("k1", acme.id)).await?;

    let first = usage_record("req-1", "k1", acme.id, 300);
    let mut changed = first.clone();
    changed.cost = NanoUsd(999_999);
    changed.status = 500;
    db.record_usage(&[first.clone(), changed.clone(), usage_record("req-2", "k1", acme.id, 50)]).await?;
    db.record_usage(&[changed, first.clone()]).await?;

    let balance = db.account_by_id(acme.id).await?.ok_or("acme missing")?.balance;
    assert_eq!(balance, NanoUsd(1_000_000 - 300 - 50));
    assert_eq!(db.ledger_sum(acme.id).await?, balance);
    assert_eq!(db.usage_count().await?, 2);
    // The first write wins.
    assert_eq!(db.usage_by_request("req-1").await?, Some(first));

    let charges: Vec<(String, i64, Option<String>)> = db
        .ledger(acme.id, 10)
        .await?
        .into_iter()
        .filter(|row| row.kind == "charge")
        .map(|row| (row.kind, row.amount.0, row.request_id))
        .collect();
    assert_eq!(
        charges,
        [("charge".to_owned(), -50, Some("req-2".to_owned())), ("charge".to_owned(), -300, Some("req-1".to_owned())),]
    );
    let key = db.active_keys().await?.pop().ok_or("no key")?;
    assert_eq!(key.spent, NanoUsd(350));
    Ok(())
}

/// A batch longer than one statement's worth of rows, half of it recorded by an earlier
/// batch and each of its records sent twice (the copy at another cost): only the new
/// request ids are stored and charged, each once, at its first record's cost.
async fn a_long_batch_half_recorded_before_charges_only_the_new(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd(100_000_000)).await?;
    db.insert_key(&new_key("k1", acme.id)).await?;
    let record = |i: usize| usage_record(&format!("req-{i:04}"), "k1", acme.id, 100 + i64::try_from(i).unwrap_or(0));
    let earlier: Vec<_> = (0..600).map(record).collect();
    db.record_usage(&earlier).await?;
    let mut batch = Vec::new();
    for i in 300..1_500 {
        let first = record(i);
        let mut copy = first.clone();
        copy.cost = NanoUsd(7);
        batch.extend([first, copy]);
    }
    db.record_usage(&batch).await?;
    assert_eq!(db.usage_count().await?, 1_500);
    let charged: i64 = (0..1_500).map(|i| 100 + i).sum();
    let balance = db.account_by_id(acme.id).await?.ok_or("acme missing")?.balance;
    assert_eq!(balance, NanoUsd(100_000_000 - charged));
    assert_eq!(db.ledger_sum(acme.id).await?, balance);
    assert_eq!(db.usage_by_request("req-0999").await?, Some(record(999)));
    let key = db.active_keys().await?.pop().ok_or("no key")?;
    assert_eq!(key.spent, NanoUsd(charged));
    Ok(())
}

async fn zero_cost_usage_is_recorded_without_a_charge(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd(10)).await?;
    db.insert_key(&new_key("k1", acme.id)).await?;
    let mut failed = usage_record("req-err", "k1", acme.id, 0);
    failed.status = 502;
    failed.usage = tokenrouter_core::Usage::default();
    failed.usage_source = UsageSource::None;
    db.record_usage(&[failed.clone()]).await?;

    assert_eq!(db.usage_by_request("req-err").await?, Some(failed));
    assert_eq!(db.ledger(acme.id, 10).await?.len(), 1); // the initial credit only
    assert_eq!(db.account_by_id(acme.id).await?.ok_or("acme")?.balance, NanoUsd(10));
    db.record_usage(&[]).await?;
    assert_eq!(db.usage_count().await?, 1);
    Ok(())
}

async fn usage_record_round_trips_every_field(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd::ZERO).await?;
    db.insert_key(&new_key("k1", acme.id)).await?;
    let mut record = usage_record("req-full", "k1", acme.id, 123_456);
    record.model = "claude-sonnet".to_owned();
    record.provider = "anthropic".to_owned();
    record.upstream_model = "claude-sonnet-4-20250514".to_owned();
    record.endpoint = "/v1/messages".to_owned();
    record.stream = true;
    record.status = 499;
    record.usage = tokenrouter_core::Usage {
        prompt_tokens: 1_000_000,
        completion_tokens: 2_345,
        cached_tokens: 900_000,
        cache_write_tokens: 0,
        reasoning_tokens: 1_024,
        hosted: Default::default(),
    };
    record.usage_source = UsageSource::Counted;
    record.client_disconnected = true;
    record.latency_ms = 61_234;
    record.created_at = 1_750_000_123;
    db.record_usage(std::slice::from_ref(&record)).await?;

    assert_eq!(db.usage_by_request("req-full").await?, Some(record));
    assert_eq!(db.usage_by_request("req-missing").await?, None);
    assert_eq!(db.account_by_id(acme.id).await?.ok_or("acme")?.balance, NanoUsd(-123_456));
    Ok(())
}

async fn thousand_records_in_batches_of_hundred_are_fast(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd(1_000_000_000)).await?;
    db.insert_key(&new_key("k1", acme.id)).await?;
    let records: Vec<_> = (0..1_000).map(|i| usage_record(&format!("req-{i:04}"), "k1", acme.id, 1_000)).collect();

    let started = Instant::now();
    for batch in records.chunks(100) {
        db.record_usage(batch).await?;
    }
    let elapsed = started.elapsed();

    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_eq!(db.usage_count().await?, 1_000);
    let balance = db.account_by_id(acme.id).await?.ok_or("acme")?.balance;
    assert_eq!(balance, NanoUsd(1_000_000_000 - 1_000_000));
    assert_eq!(db.ledger_sum(acme.id).await?, balance);
    Ok(())
}

async fn an_instance_owner_earns_a_share_of_the_charge_once(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd(1_000_000)).await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?;
    db.insert_key(&new_key("k1", acme.id)).await?;
    let mut served = usage_record("req-i", "k1", acme.id, 1_003);
    served.provider = "instance:inst_1".to_owned();
    served.earning = Some(Earning { account_id: owner.id, share_ppb: 800_000_000 });
    let mut free = usage_record("req-free", "k1", acme.id, 0);
    free.earning = served.earning;
    db.record_usage(&[served.clone(), served.clone(), free]).await?;
    db.record_usage(&[served.clone()]).await?;

    let earnings: Vec<(String, i64, Option<String>)> =
        db.ledger(owner.id, 10).await?.into_iter().map(|row| (row.kind, row.amount.0, row.request_id)).collect();
    // 0.8 × 1003 = 802.4, rounded down; the operator keeps 201. Nothing for a free request.
    assert_eq!(earnings, [("earning".to_owned(), 802, Some("req-i".to_owned()))]);
    let owner_balance = db.account_by_id(owner.id).await?.ok_or("owner")?.balance;
    assert_eq!(owner_balance, NanoUsd(802));
    assert_eq!(db.ledger_sum(owner.id).await?, owner_balance);
    let balance = db.account_by_id(acme.id).await?.ok_or("acme")?.balance;
    assert_eq!(balance, NanoUsd(1_000_000 - 1_003), "the consumer pays the whole charge");
    assert_eq!(db.ledger_sum(acme.id).await?, balance);
    assert_eq!(Earning { account_id: 0, share_ppb: 1_000_000_000 }.of(7), 7);
    assert_eq!(Earning { account_id: 0, share_ppb: 2_000_000_000 }.of(7), 7, "never more than the charge");
    assert_eq!(Earning { account_id: 0, share_ppb: 800_000_000 }.of(-5), 0);
    Ok(())
}

/// A charge or an earning for an account that does not exist fails the whole batch
/// (as a foreign key would): nothing of it is written, and the accounts that exist are
/// untouched. (No account is ever deleted; this guards the settlement, not a user path.)
async fn a_charge_or_earning_for_an_unknown_account_fails_the_batch(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd(1_000_000)).await?;
    db.insert_key(&new_key("k1", acme.id)).await?;
    let unknown = acme.id + 1_000;
    let stray = usage_record("req-stray", "k1", unknown, 100);
    assert!(db.record_usage(&[usage_record("req-1", "k1", acme.id, 10), stray]).await.is_err());
    let mut earning = usage_record("req-2", "k1", acme.id, 100);
    earning.provider = "instance:inst_1".to_owned();
    earning.earning = Some(Earning { account_id: unknown, share_ppb: 500_000_000 });
    assert!(db.record_usage(&[usage_record("req-3", "k1", acme.id, 10), earning]).await.is_err());

    assert_eq!(db.usage_count().await?, 0);
    let balance = db.account_by_id(acme.id).await?.ok_or("acme")?.balance;
    assert_eq!(balance, NanoUsd(1_000_000));
    assert_eq!(db.ledger_sum(acme.id).await?, balance);
    // The batch alone still goes through.
    db.record_usage(&[usage_record("req-1", "k1", acme.id, 10)]).await?;
    assert_eq!(db.account_by_id(acme.id).await?.ok_or("acme")?.balance, NanoUsd(1_000_000 - 10));
    Ok(())
}

on_both_backends!(
    a_charge_or_earning_for_an_unknown_account_fails_the_batch,
    a_long_batch_half_recorded_before_charges_only_the_new,
    same_request_id_is_charged_once_within_and_across_batches,
    zero_cost_usage_is_recorded_without_a_charge,
    usage_record_round_trips_every_field,
    thousand_records_in_batches_of_hundred_are_fast,
    an_instance_owner_earns_a_share_of_the_charge_once,
);
