//! What outlasts an instance's probes and what admins see: the usage flag kept in its own
//! columns (a probe's verdict leaves it, it is written at most once a minute, and it is
//! shown for a day), and every account's instances listed page by page.

use tokenrouter_store::{Db, Instance, InstanceModel, NanoUsd, NewInstance, ProbeResult, ProbeStatus, USAGE_FLAG_SECS};

use crate::fixture::{Backend, TestResult, on_both_backends};

async fn register(db: &Db, account_id: i64, name: &str) -> Result<Instance, Box<dyn std::error::Error>> {
    let new = NewInstance {
        account_id,
        name: name.to_owned(),
        base_url: "http://127.0.0.1:9/v1".to_owned(),
        region: None,
        api_key: format!("key-{name}"),
        models: vec![
            InstanceModel { model: "gemma".into(), upstream_model: "org/gemma".into() },
            InstanceModel { model: "llama".into(), upstream_model: "org/llama".into() },
        ],
    };
    Ok(db.create_instance(&new).await?)
}

async fn a_usage_flag_outlasts_probes_for_a_day(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let instance = register(&db, owner, "box").await?;
    assert_eq!((instance.usage_flagged_at, instance.usage_flag_detail.as_deref()), (None, None));
    assert!(db.flag_instance(&instance.id, "over-reported usage: 50 + 500", 10_000).await?);
    assert!(!db.flag_instance(&instance.id, "over-reported usage: again", 10_030).await?, "at most once a minute");
    assert!(!db.flag_instance("inst_unknown", "x", 10_000).await?);

    let online = ProbeResult {
        revision: instance.revision,
        status: ProbeStatus::Online,
        detail: "answered in 40 ms".into(),
        latency_ms: Some(40),
        at: 10_100,
    };
    assert!(db.record_probe(&instance.id, &online).await?);
    let probed = db.instance_by_id(&instance.id).await?.ok_or("gone")?;
    assert_eq!(probed.status_detail, "answered in 40 ms", "the probe's own detail");
    assert_eq!(probed.usage_flagged_at, Some(10_000), "the flag outlasts the probe");
    assert_eq!(probed.usage_flag_detail.as_deref(), Some("over-reported usage: 50 + 500"));
    assert_eq!(probed.detail_at(10_100), "answered in 40 ms; over-reported usage: 50 + 500");
    assert_eq!(probed.detail_at(10_000 + USAGE_FLAG_SECS), "answered in 40 ms", "a day later");

    assert!(db.flag_instance(&instance.id, "over-reported usage: 9 + 90", 10_060).await?, "a minute later");
    let again = db.instance(owner, &instance.id).await?.ok_or("gone")?;
    assert_eq!(
        (again.usage_flagged_at, again.usage_flag_detail.as_deref()),
        (Some(10_060), Some("over-reported usage: 9 + 90"))
    );
    assert_eq!(again.status_detail, "answered in 40 ms");
    Ok(())
}

async fn admins_list_every_accounts_instances_page_by_page(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let first = db.create_account("first", NanoUsd::ZERO).await?.id;
    let second = db.create_account("second", NanoUsd::ZERO).await?.id;
    let mut created = Vec::new();
    for (i, account) in [first, second, first, second, first].into_iter().enumerate() {
        created.push(register(&db, account, &format!("box-{i}")).await?);
    }
    let newest_first: Vec<&str> = created.iter().rev().map(|i| i.id.as_str()).collect();

    let all = db.all_instances(100, None).await?;
    assert_eq!(all.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), newest_first);
    assert!(all.iter().all(|i| i.models.len() == 2), "every model of each, whatever the page size");
    assert_eq!(all.iter().filter(|i| i.account_id == second).count(), 2);

    let page = db.all_instances(2, None).await?;
    assert_eq!(page.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), newest_first[..2]);
    assert!(page.iter().all(|i| i.models.len() == 2), "a page limits instances, not rows");
    let next = db.all_instances(2, Some(&page[1].id)).await?;
    assert_eq!(next.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), newest_first[2..4]);
    let last = db.all_instances(2, Some(&next[1].id)).await?;
    assert_eq!(last.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), newest_first[4..]);
    assert!(db.all_instances(2, Some(&last[0].id)).await?.is_empty());
    Ok(())
}

on_both_backends!(a_usage_flag_outlasts_probes_for_a_day, admins_list_every_accounts_instances_page_by_page);
