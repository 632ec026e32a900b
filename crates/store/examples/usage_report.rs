//! How fast `/api/usage` and `/api/requests` read with a million request rows: records 1M
//! usage rows for one account over 30 days (5 models, 3 keys) through the settlement path,
//! then times the reports. `cargo run --release -p tokenrouter-store --example usage_report
//! -- [sqlite|postgres://…] [rows]`.

use std::io::Write;
use std::time::Instant;

use tokenrouter_store::{Batch, Db, KeyScope, NanoUsd, NewKey, RequestFilter, UsageGroup, UsageRecord, UsageSource};

const DAY: i64 = 86_400;

/// A line of the report, on stdout (this example's whole output).
fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = std::env::args().nth(1).unwrap_or_else(|| "sqlite".to_owned());
    let rows: i64 = std::env::args().nth(2).map_or(Ok(1_000_000), |n| n.parse())?;
    let dir = tempfile::tempdir()?;
    let url = if target == "sqlite" { format!("sqlite://{}", dir.path().join("report.db").display()) } else { target };
    let db = Db::connect(&url).await?;
    let account = db.create_account(&format!("bench-{}", std::process::id()), NanoUsd(1_000_000_000_000_000)).await?;
    let keys: Vec<String> = (0..3).map(|i| format!("k{i}-{}", std::process::id())).collect();
    for id in &keys {
        db.insert_key(&NewKey {
            id: id.clone(),
            account_id: account.id,
            name: id.clone(),
            secret_hash: [1; 32],
            models: Vec::new(),
            ips: Vec::new(),
            rpm: None,
            tpm: None,
            spend_limit: None,
            expires_at: None,
            scope: KeyScope::Inference,
            community: true,
        })
        .await?;
    }
    let models = ["gpt-4o-mini", "gpt-4o", "claude-haiku-4-5", "gemini-2.0-flash", "deepseek-chat"];
    let now = tokenrouter_core::clock::now_unix();
    let start = now - 30 * DAY;
    let step = (30 * DAY) as f64 / rows as f64;
    let written = Instant::now();
    let mut batch = Vec::with_capacity(1_000);
    for i in 0..rows {
        batch.push(UsageRecord {
            request_id: format!("req_{}_{i}", std::process::id()),
            key_id: keys[(i % 3) as usize].clone(),
            account_id: account.id,
            model: models[(i % 5) as usize].to_owned(),
            provider: "bench".to_owned(),
            upstream_model: "bench".to_owned(),
            endpoint: "chat.completions".to_owned(),
            stream: i % 2 == 0,
            status: 200,
            usage: tokenrouter_core::Usage {
                prompt_tokens: 100,
                completion_tokens: 50,
                cached_tokens: 0,
                cache_write_tokens: 0,
                reasoning_tokens: 0,
                hosted: Default::default(),
            },
            cost: NanoUsd(1_000 + i % 7),
            usage_source: UsageSource::Upstream,
            client_disconnected: false,
            latency_ms: 200,
            created_at: start + (i as f64 * step) as i64,
            error_code: None,
            ttfb_ms: Some(50),
            earning: None,
        });
        if batch.len() == 1_000 {
            db.write_batch(Batch { usage: &batch, ..Batch::default() }).await?;
            batch.clear();
        }
    }
    db.write_batch(Batch { usage: &batch, ..Batch::default() }).await?;
    say(&format!("{} — {rows} rows recorded in {:.1} s", db.backend(), written.elapsed().as_secs_f64()));
    let from = start - start.rem_euclid(DAY);
    let to = now - now.rem_euclid(DAY) + DAY;
    for (name, group) in
        [("day", UsageGroup::Day), ("hour", UsageGroup::Hour), ("model", UsageGroup::Model), ("key", UsageGroup::Key)]
    {
        let mut best = f64::MAX;
        let mut totals = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            totals = db.usage_totals(account.id, from, to, group).await?;
            best = best.min(started.elapsed().as_secs_f64() * 1000.0);
        }
        let requests: i64 = totals.iter().map(|t| t.requests).sum();
        say(&format!(
            "/api/usage 30 days by {name:<5}: {:>5} buckets, {requests} requests, best of 5: {best:.2} ms",
            totals.len()
        ));
        assert_eq!(requests, rows, "every request counted");
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let page = db.requests_page(account.id, &RequestFilter::default(), 100, None).await?;
        let last = page.last().map(|r| (r.created_at, r.request_id.clone()));
        db.requests_page(account.id, &RequestFilter::default(), 100, last).await?;
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
    }
    say(&format!("/api/requests two pages of 100: best of 5: {best:.2} ms"));
    Ok(())
}
