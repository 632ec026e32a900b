//! Accounts and the ledger: creation, credits, adjustments, balance == sum of ledger.

use tokenrouter_store::{NanoUsd, StoreError};

use crate::fixture::{Backend, TestResult, on_both_backends};

async fn create_account_writes_an_initial_credit(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd(10_000_000_000)).await?;
    assert_eq!(acme.name, "acme");
    assert_eq!(acme.balance, NanoUsd(10_000_000_000));
    assert!(acme.created_at > 1_600_000_000);

    let ledger = db.ledger(acme.id, 10).await?;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].kind, "credit");
    assert_eq!(ledger[0].amount, NanoUsd(10_000_000_000));
    assert_eq!(ledger[0].account_id, acme.id);
    assert_eq!(ledger[0].request_id, None);

    assert_eq!(db.account_by_name("acme").await?, Some(acme.clone()));
    assert_eq!(db.account_by_id(acme.id).await?, Some(acme));
    assert_eq!(db.account_by_name("nobody").await?, None);
    assert_eq!(db.account_by_id(999).await?, None);
    Ok(())
}

async fn zero_initial_balance_writes_no_ledger_row(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let empty = db.create_account("empty", NanoUsd::ZERO).await?;
    assert_eq!(empty.balance, NanoUsd::ZERO);
    assert!(db.ledger(empty.id, 10).await?.is_empty());
    assert_eq!(db.ledger_sum(empty.id).await?, NanoUsd::ZERO);
    Ok(())
}

async fn duplicate_account_name_is_refused_and_changes_nothing(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let first = db.create_account("acme", NanoUsd(100)).await?;
    let err = db.create_account("acme", NanoUsd(900)).await.err().ok_or("duplicate accepted")?;
    assert!(matches!(&err, StoreError::AccountExists(name) if name == "acme"));
    assert_eq!(err.to_string(), "account 'acme' already exists");

    let still = db.account_by_name("acme").await?.ok_or("acme missing")?;
    assert_eq!(still.balance, NanoUsd(100));
    assert_eq!(db.ledger(first.id, 10).await?.len(), 1);
    Ok(())
}

async fn credit_and_negative_adjustment(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd(1_000)).await?;

    let after_credit = db.credit("acme", NanoUsd(500), "invoice 17").await?;
    assert_eq!(after_credit.balance, NanoUsd(1_500));
    assert_eq!(after_credit.id, acme.id);

    let after_adjust = db.credit("acme", NanoUsd(-2_000), "refund to card").await?;
    assert_eq!(after_adjust.balance, NanoUsd(-500));

    let ledger = db.ledger(acme.id, 10).await?;
    let summary: Vec<(&str, i64, &str)> =
        ledger.iter().map(|row| (row.kind.as_str(), row.amount.0, row.memo.as_str())).collect();
    assert_eq!(
        summary,
        [("adjustment", -2_000, "refund to card"), ("credit", 500, "invoice 17"), ("credit", 1_000, "initial balance"),]
    );
    assert_eq!(db.ledger(acme.id, 2).await?.len(), 2);
    assert_eq!(db.ledger_sum(acme.id).await?, NanoUsd(-500));
    Ok(())
}

async fn credit_to_unknown_account_is_an_error(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let err = db.credit("ghost", NanoUsd(1), "").await.err().ok_or("credit to ghost accepted")?;
    assert!(matches!(&err, StoreError::AccountNotFound(name) if name == "ghost"));
    Ok(())
}

async fn balance_equals_ledger_sum_after_many_operations(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let a = db.create_account("a", NanoUsd(1_000_000)).await?;
    let b = db.create_account("b", NanoUsd(-7)).await?;
    db.insert_key(&crate::fixture::new_key("ka", a.id)).await?;

    let mut expected_a = 1_000_000_i64;
    let mut batch = Vec::new();
    for i in 0..60_i64 {
        let amount = (i * 7_919) % 5_000 - 2_500;
        db.credit("a", NanoUsd(amount), &format!("op {i}")).await?;
        db.credit("b", NanoUsd(amount / 3), "").await?;
        expected_a += amount;
        let cost = i * 11 % 90;
        batch.push(crate::fixture::usage_record(&format!("r{i}"), "ka", a.id, cost));
        expected_a -= cost;
    }
    db.record_usage(&batch).await?;

    let a_now = db.account_by_id(a.id).await?.ok_or("a missing")?;
    let b_now = db.account_by_id(b.id).await?.ok_or("b missing")?;
    assert_eq!(a_now.balance, NanoUsd(expected_a));
    assert_eq!(db.ledger_sum(a.id).await?, a_now.balance);
    assert_eq!(db.ledger_sum(b.id).await?, b_now.balance);
    Ok(())
}

async fn overflowing_credit_is_refused_and_changes_nothing(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let rich = db.create_account("rich", NanoUsd(i64::MAX - 10)).await?;
    let err = db.credit("rich", NanoUsd(11), "one too many").await.err().ok_or("overflow accepted")?;
    assert!(matches!(err, StoreError::Money(_)), "{err}");
    assert_eq!(db.account_by_id(rich.id).await?.ok_or("rich")?.balance, NanoUsd(i64::MAX - 10));
    assert_eq!(db.ledger(rich.id, 10).await?.len(), 1);
    Ok(())
}

async fn concurrent_credits_all_land(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd::ZERO).await?;
    let tasks: Vec<_> = (1..=40_i64)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move { db.credit("acme", NanoUsd(i), "parallel").await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let balance = db.account_by_id(acme.id).await?.ok_or("acme")?.balance;
    assert_eq!(balance, NanoUsd(40 * 41 / 2));
    assert_eq!(db.ledger_sum(acme.id).await?, balance);
    assert_eq!(db.ledger(acme.id, 100).await?.len(), 40);
    Ok(())
}

on_both_backends!(
    create_account_writes_an_initial_credit,
    zero_initial_balance_writes_no_ledger_row,
    duplicate_account_name_is_refused_and_changes_nothing,
    credit_and_negative_adjustment,
    credit_to_unknown_account_is_an_error,
    balance_equals_ledger_sum_after_many_operations,
    overflowing_credit_is_refused_and_changes_nothing,
    concurrent_credits_all_land,
);
