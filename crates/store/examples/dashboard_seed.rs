//! Seeds an existing account with request-log rows for the dashboard benchmark
//! (bench/dashboard.sh): 3 keys, 5 models, one request in 500 failed upstream (502,
//! charged nothing), spread over the last 30 days, written through the settlement path
//! (`write_batch`: the log row, its ledger charge and the hourly rollup in one
//! transaction). Prints `key=`, `request=` (a row half-way down) and `cursor=` (the
//! `before=` of a page half-way down). `cargo run --release -p tokenrouter-store --example
//! dashboard_seed -- DATABASE_URL ACCOUNT [rows]`.

use std::io::Write;

use tokenrouter_store::{Batch, Db, KeyScope, NanoUsd, NewKey, UsageRecord, UsageSource};

const DAY: i64 = 86_400;

fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: dashboard_seed DATABASE_URL ACCOUNT [rows]")?;
    let name = args.next().ok_or("usage: dashboard_seed DATABASE_URL ACCOUNT [rows]")?;
    let rows: i64 = args.next().map_or(Ok(1_000_000), |n| n.parse())?;
    let db = Db::connect(&url).await?;
    let account = db.account_by_name(&name).await?.ok_or("no such account")?;
    let keys: Vec<String> = (0..3).map(|i| format!("tr_bench{i}")).collect();
    for (i, id) in keys.iter().enumerate() {
        db.insert_key(&NewKey {
            id: id.clone(),
            account_id: account.id,
            name: format!("bench key {i}"),
            secret_hash: [u8::try_from(i).unwrap_or(0); 32],
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
    let at = |i: i64| start + (i as f64 * step) as i64;
    let id = |i: i64| format!("req_bench{i:08}");
    let mut batch = Vec::with_capacity(1_000);
    for i in 0..rows {
        let failed = i % 500 == 499;
        batch.push(UsageRecord {
            request_id: id(i),
            key_id: keys[(i % 3) as usize].clone(),
            account_id: account.id,
            model: models[(i % 5) as usize].to_owned(),
            provider: "bench".to_owned(),
            upstream_model: "bench".to_owned(),
            endpoint: "chat.completions".to_owned(),
            stream: i % 2 == 0,
            status: if failed { 502 } else { 200 },
            usage: tokenrouter_core::Usage {
                prompt_tokens: 100,
                completion_tokens: if failed { 0 } else { 50 },
                cached_tokens: 0,
                cache_write_tokens: 0,
                reasoning_tokens: 0,
                hosted: Default::default(),
            },
            cost: NanoUsd(if failed { 0 } else { 1_000 + i % 7 }),
            usage_source: UsageSource::Upstream,
            client_disconnected: false,
            latency_ms: 200,
            created_at: at(i),
            error_code: failed.then(|| "upstream_error".to_owned()),
            ttfb_ms: Some(50),
            earning: None,
        });
        if batch.len() == 1_000 {
            db.write_batch(Batch { usage: &batch, ..Batch::default() }).await?;
            batch.clear();
        }
    }
    db.write_batch(Batch { usage: &batch, ..Batch::default() }).await?;
    let middle = rows / 2;
    say(&format!("key={}", keys[0]));
    say(&format!("request={}", id(middle)));
    say(&format!("cursor={}_{}", at(middle), id(middle)));
    Ok(())
}
