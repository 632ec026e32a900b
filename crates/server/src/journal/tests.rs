use std::sync::Arc;
use std::time::Instant;

use tokenrouter_core::{HostedCalls, NanoUsd, Usage};
use tokenrouter_store::{Earning, UsageRecord, UsageSource};

use super::Journal;

fn record(n: usize) -> UsageRecord {
    UsageRecord {
        request_id: format!("req-{n}"),
        key_id: "key".to_owned(),
        account_id: 1,
        model: "gpt-4o-mini".to_owned(),
        provider: "mock".to_owned(),
        upstream_model: "mock-gpt".to_owned(),
        endpoint: "chat".to_owned(),
        stream: false,
        status: 200,
        usage: Usage { prompt_tokens: 12, completion_tokens: 34, cache_write_tokens: 5, ..Usage::default() },
        cost: NanoUsd(1234),
        usage_source: UsageSource::Upstream,
        client_disconnected: false,
        latency_ms: 7,
        created_at: 1_700_000_000,
        error_code: None,
        ttfb_ms: None,
        earning: None,
    }
}

/// `tasks` tasks each append `each` records, waiting for the journal to be on disk after
/// every append (as a request whose batch is next would); returns the fsyncs it took.
async fn append_from_tasks(journal: &Arc<Journal>, tasks: usize, each: usize) -> u64 {
    let before = journal.sync_count();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let journal = journal.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    let line = Journal::line(&record(t * each + i));
                    journal.lock().append(&line);
                    journal.synced().await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    journal.sync_count() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_fsync_covers_many_appends_and_records_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.db.usage-journal");
    let journal = Arc::new(Journal::open(path.clone()).unwrap());
    let syncs = append_from_tasks(&journal, 50, 20).await;
    assert!(syncs > 0 && syncs < 250, "1000 appends from 50 tasks took {syncs} fsyncs");
    drop(Arc::into_inner(journal).unwrap());

    let reopened = Journal::open(path).unwrap();
    let pending = reopened.pending().unwrap();
    assert_eq!(pending.len(), 1000);
    assert_eq!(pending[999].usage.cache_write_tokens, 5);
    let mut ids: Vec<&str> = pending.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "every record once");
    // Nothing appended: waiting costs no fsync.
    reopened.synced().await;
    assert_eq!(reopened.sync_count(), 0);
}

/// The cost of the syncer: 10,000 appends from 100 tasks, each waiting for its append to
/// be on disk, against the same appends without syncing (`--nocapture` shows the numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_synced_appends_cost_a_few_hundred_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path().join("j")).unwrap());
    let started = Instant::now();
    let syncs = append_from_tasks(&journal, 100, 100).await;
    let synced = started.elapsed();

    let plain = Journal::open(dir.path().join("plain")).unwrap();
    let started = Instant::now();
    for i in 0..10_000 {
        let line = Journal::line(&record(i));
        plain.lock().append(&line);
    }
    let unsynced = started.elapsed();
    eprintln!("10k appends: {unsynced:?} unsynced; {synced:?} each waiting for its fsync, {syncs} fsyncs");
    assert!(syncs < 10_000 / 4, "{syncs} fsyncs for 10k appends");
}

/// A line is what `serde_json` writes for the record, byte for byte (the replay reads it
/// with serde, and lines of an older process may sit in the journal): every variant of
/// every optional or enum field, strings that need escaping (quotes, backslashes, control
/// characters, non-ASCII), and the extremes of the numbers.
#[test]
fn a_line_is_what_serde_writes_for_the_record() {
    let mut records = vec![record(1)];
    let texts =
        ["", "plain", "quote \" and \\ backslash", "tab\tnew\nline\r\u{8}\u{c}", "\u{0}\u{1f}\u{7f}", "ünïcødé ✓ 𝄞"];
    for (i, text) in texts.iter().enumerate() {
        let mut r = record(i);
        r.request_id = (*text).to_owned();
        r.key_id = format!("{text}-key");
        r.model = (*text).to_owned();
        r.provider = format!("instance:{text}");
        r.upstream_model = (*text).to_owned();
        r.endpoint = (*text).to_owned();
        r.error_code = Some((*text).to_owned());
        records.push(r);
    }
    for (i, source) in [UsageSource::Upstream, UsageSource::Counted, UsageSource::None].into_iter().enumerate() {
        let mut r = record(100 + i);
        r.usage_source = source;
        r.stream = i % 2 == 0;
        r.client_disconnected = i == 1;
        r.ttfb_ms = Some(u64::MAX >> i);
        r.latency_ms = u64::MAX;
        r.status = u16::MAX;
        r.account_id = i64::MIN;
        r.created_at = -1;
        r.cost = NanoUsd(i64::MAX);
        r.usage = Usage {
            prompt_tokens: u64::MAX,
            cached_tokens: 3,
            reasoning_tokens: 4,
            hosted: HostedCalls { web_search: i as u64, web_fetch: 2 },
            ..Usage::default()
        };
        r.earning = Some(Earning { account_id: -7, share_ppb: 1_000_000_000 });
        records.push(r);
    }
    for r in &records {
        let mut expected = serde_json::to_vec(r).unwrap();
        expected.push(b'\n');
        let line = Journal::line(r);
        assert_eq!(String::from_utf8_lossy(&line), String::from_utf8_lossy(&expected));
        assert_eq!(&serde_json::from_slice::<UsageRecord>(&line).unwrap(), r);
    }
}
