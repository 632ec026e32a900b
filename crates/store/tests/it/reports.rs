//! Usage reports: totals by hour, day, model, key and provider from the rollup kept at
//! write time, equal to the request log's rows and to the ledger's charges — also when a
//! record came twice or a request was charged nothing.

use tokenrouter_core::HostedCalls;
use tokenrouter_store::{Batch, NanoUsd, RequestFilter, UsageGroup};

use crate::fixture::{Backend, TestResult, new_key, on_both_backends, usage_record};

const HOUR: i64 = 1_700_002_800; // a whole hour

async fn totals_equal_the_request_log_and_the_ledger(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let account = db.create_account("acme", NanoUsd(1_000)).await?;
    db.insert_key(&new_key("k1", account.id)).await?;
    db.insert_key(&new_key("k2", account.id)).await?;
    let mut records = Vec::new();
    for i in 0..6_i64 {
        let mut r = usage_record(&format!("req_{i}"), if i % 2 == 0 { "k1" } else { "k2" }, account.id, 100);
        r.created_at = HOUR + (i / 3) * 3600 + i; // three in each of two hours
        r.model = if i < 4 { "gpt-4o-mini".into() } else { "claude-haiku-4-5".into() };
        records.push(r);
    }
    records[5].cost = NanoUsd(0); // charged nothing
    records[4].cost = NanoUsd(900);
    records[1].status = 502; // failed upstream
    db.write_batch(Batch { usage: &records[..3], ..Batch::default() }).await?;
    db.write_batch(Batch { usage: &records, ..Batch::default() }).await?; // the first three again: no change

    let by_hour = db.usage_totals(account.id, HOUR, HOUR + 7200, UsageGroup::Hour).await?;
    let hours: Vec<(String, i64, i64)> = by_hour.iter().map(|t| (t.bucket.clone(), t.requests, t.cost.0)).collect();
    assert_eq!(hours, [(HOUR.to_string(), 3, 300), ((HOUR + 3600).to_string(), 3, 1_000)]);
    assert_eq!(by_hour[0].prompt_tokens, 36);
    assert_eq!(by_hour[0].completion_tokens, 102);
    let by_model = db.usage_totals(account.id, HOUR, HOUR + 7200, UsageGroup::Model).await?;
    let models: Vec<(String, i64)> = by_model.iter().map(|t| (t.bucket.clone(), t.cost.0)).collect();
    assert_eq!(models, [("claude-haiku-4-5".to_owned(), 900), ("gpt-4o-mini".to_owned(), 400)]);
    let by_key = db.usage_totals(account.id, HOUR, HOUR + 7200, UsageGroup::Key).await?;
    assert_eq!(by_key.iter().map(|t| t.requests).sum::<i64>(), 6);
    let by_day = db.usage_totals(account.id, HOUR - 86_400, HOUR + 86_400, UsageGroup::Day).await?;
    assert_eq!(by_day.iter().map(|t| t.cost.0).sum::<i64>(), 1_300);
    let by_provider = db.usage_totals(account.id, HOUR, HOUR + 3600, UsageGroup::Provider).await?;
    assert_eq!((by_provider.len(), by_provider[0].requests), (1, 3), "the second hour is outside");

    // The log: every request once, each with what the ledger charged; pages by cursor.
    let all = db.requests_page(account.id, &RequestFilter::default(), 100, None).await?;
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].request_id, "req_5", "newest first");
    assert_eq!(all.iter().map(|r| r.charged_nano).sum::<i64>(), 1_300);
    let charges: i64 =
        db.ledger(account.id, 100).await?.iter().filter(|r| r.kind == "charge").map(|r| -r.amount.0).sum();
    assert_eq!(charges, 1_300, "usage = requests = ledger");
    let first = db.requests_page(account.id, &RequestFilter::default(), 4, None).await?;
    let last = &first[3];
    let rest = db
        .requests_page(account.id, &RequestFilter::default(), 4, Some((last.created_at, last.request_id.clone())))
        .await?;
    assert_eq!(rest.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(), ["req_1", "req_0"]);
    let k2 = RequestFilter { key_id: Some("k2".into()), ..RequestFilter::default() };
    assert_eq!(db.requests_page(account.id, &k2, 100, None).await?.len(), 3);
    let claude =
        RequestFilter { model: Some("claude-haiku-4-5".into()), status: Some(200), ..RequestFilter::default() };
    assert_eq!(db.requests_page(account.id, &claude, 100, None).await?.len(), 2);
    let other = db.create_account("other", NanoUsd::ZERO).await?;
    assert!(db.requests_page(other.id, &RequestFilter::default(), 100, None).await?.is_empty());
    assert!(db.usage_totals(other.id, HOUR, HOUR + 7200, UsageGroup::Hour).await?.is_empty());

    // A rare status reads its own index; the cursor pages within it.
    let failed = RequestFilter { status: Some(502), ..RequestFilter::default() };
    let rows = db.requests_page(account.id, &failed, 100, None).await?;
    assert_eq!(rows.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(), ["req_1"]);
    assert!(db.requests_page(account.id, &failed, 100, Some((rows[0].created_at, "req_1".into()))).await?.is_empty());
    let none = RequestFilter { status: Some(429), ..RequestFilter::default() };
    assert!(db.requests_page(account.id, &none, 100, None).await?.is_empty());
    // Each key's last request, exact to the second.
    let mut last_used = db.keys_last_used(account.id).await?;
    last_used.sort();
    assert_eq!(last_used, [("k1".to_owned(), HOUR + 3600 + 4), ("k2".to_owned(), HOUR + 3600 + 5)]);
    assert!(db.keys_last_used(other.id).await?.is_empty());

    // One request by id: the same row the log shows; another account's or an unknown id is none.
    let one = db.request_by_id(account.id, "req_4").await?.ok_or("req_4 is in the log")?;
    assert_eq!(Some(&one), all.iter().find(|r| r.request_id == "req_4"));
    assert_eq!(one.charged_nano, 900);
    assert_eq!(db.request_by_id(account.id, "req_5").await?.map(|r| r.charged_nano), Some(0));
    assert_eq!(db.request_by_id(other.id, "req_4").await?, None);
    assert_eq!(db.request_by_id(account.id, "req_nope").await?, None);
    Ok(())
}

on_both_backends!(totals_equal_the_request_log_and_the_ledger, hosted_tool_calls_are_kept_in_the_request_log);

/// Hosted tool calls a provider billed per call are kept with the request: in its usage
/// record and in the request log, a row without any reads 0.
async fn hosted_tool_calls_are_kept_in_the_request_log(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let account = db.create_account("searcher", NanoUsd(1_000_000_000)).await?;
    db.insert_key(&new_key("k1", account.id)).await?;
    let mut searched = usage_record("req_search", "k1", account.id, 30_000_000);
    searched.usage.hosted = HostedCalls { web_search: 3, web_fetch: 2 };
    searched.created_at = HOUR;
    let mut plain = usage_record("req_plain", "k1", account.id, 100);
    plain.created_at = HOUR + 1;
    // Counts beyond what a column holds are stored as the most it can.
    let mut absurd = usage_record("req_absurd", "k1", account.id, 0);
    absurd.usage.hosted = HostedCalls { web_search: u64::MAX, web_fetch: 0 };
    absurd.created_at = HOUR + 2;
    db.write_batch(Batch { usage: &[searched.clone(), plain, absurd], ..Batch::default() }).await?;

    let row = db.request_by_id(account.id, "req_search").await?.ok_or("req_search is in the log")?;
    assert_eq!((row.web_search_calls, row.web_fetch_calls), (3, 2));
    assert_eq!(row.charged_nano, 30_000_000);
    let log = db.requests_page(account.id, &RequestFilter::default(), 10, None).await?;
    let calls: Vec<(&str, i64, i64)> =
        log.iter().map(|r| (r.request_id.as_str(), r.web_search_calls, r.web_fetch_calls)).collect();
    assert_eq!(calls, [("req_absurd", i64::MAX, 0), ("req_plain", 0, 0), ("req_search", 3, 2)]);
    let record = db.usage_by_request("req_search").await?.ok_or("its usage record is stored")?;
    assert_eq!(record.usage.hosted, searched.usage.hosted);
    Ok(())
}
