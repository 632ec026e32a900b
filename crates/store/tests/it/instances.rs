//! Community instances: registration scoped to its account, probe verdicts and revisions,
//! the routing table's read, health from traffic, probe leases shared by replicas,
//! inventory with its constraints, deletion cascading, and statistics.

use std::collections::HashSet;

use sqlx::Connection;
use tokenrouter_store::{
    Db, Instance, InstanceChanges, InstanceModel, InstanceStatus, NanoUsd, NewInstance, NewProcessingUnit, NewSoftware,
    ProbeResult, ProbeStatus, StoreError, provider_name,
};

use crate::fixture::{Backend, TestDb, TestResult, on_both_backends, usage_record};

fn model(id: &str) -> InstanceModel {
    InstanceModel { model: id.to_owned(), upstream_model: format!("org/{id}") }
}

fn new_instance(account_id: i64, models: &[&str]) -> NewInstance {
    NewInstance {
        account_id,
        name: "garage box".to_owned(),
        base_url: "http://127.0.0.1:9/v1".to_owned(),
        region: Some("eu-west".to_owned()),
        api_key: "key-one".into(),
        models: models.iter().map(|m| model(m)).collect(),
    }
}

fn probe(instance: &Instance, status: ProbeStatus, at: i64) -> ProbeResult {
    ProbeResult { revision: instance.revision, status, detail: format!("{status:?}"), latency_ms: Some(40), at }
}

fn gpu(count: i64) -> NewProcessingUnit {
    NewProcessingUnit {
        kind: "gpu".to_owned(),
        vendor: "nvidia".to_owned(),
        model: "A100".to_owned(),
        memory_mb: 80_000,
        count,
    }
}

/// Runs one statement outside the store (to reach past its checks) and returns the first
/// column of its first row, when it answers one.
async fn raw(db: &TestDb, backend: Backend, sql: String) -> Result<Option<i64>, sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(sql);
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await?;
            sqlx::query_scalar(sql).fetch_optional(&mut conn).await
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await?;
            sqlx::query_scalar(sql).fetch_optional(&mut conn).await
        }
    }
}

async fn online(db: &Db, instance: &Instance) -> Result<Instance, Box<dyn std::error::Error>> {
    assert!(db.record_probe(&instance.id, &probe(instance, ProbeStatus::Online, 1_000)).await?);
    Ok(db.instance_by_id(&instance.id).await?.ok_or("gone")?)
}

async fn an_instance_is_its_accounts_alone(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let other = db.create_account("other", NanoUsd::ZERO).await?.id;
    let version = db.instances_version().await?;
    let created = db.create_instance(&new_instance(owner, &["llama", "gemma"])).await?;
    assert!(created.id.starts_with("inst_") && created.id.len() == 5 + 32, "{}", created.id);
    assert_eq!(created.status, InstanceStatus::Pending);
    assert_eq!(created.models, vec![model("gemma"), model("llama")], "in model order");
    assert_eq!((created.region.as_deref(), created.api_key.as_str()), (Some("eu-west"), "key-one"));
    assert!(db.instances_version().await? > version);
    let second = db.create_instance(&new_instance(owner, &["llama"])).await?;

    let mine = db.instances_of(owner).await?;
    assert_eq!(mine.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [&second.id, &created.id], "newest first");
    assert_eq!(db.instance(owner, &created.id).await?, Some(created.clone()));
    assert!(db.instances_of(other).await?.is_empty());
    assert_eq!(db.instance(other, &created.id).await?, None);
    let rename = InstanceChanges { name: Some("stolen".into()), ..Default::default() };
    assert_eq!(db.update_instance(other, &created.id, &rename).await?, None);
    assert_eq!(db.rotate_instance_key(other, &created.id, "key-two").await?, None);
    assert!(!db.delete_instance(other, &created.id).await?);
    assert_eq!(db.processing_units(other, &created.id).await?, None);
    assert_eq!(db.add_processing_unit(other, &created.id, &gpu(1)).await?, None);
    assert_eq!(db.software(other, &created.id).await?, None);
    assert_eq!(db.instance(owner, &created.id).await?, Some(created), "untouched by the other account");
    Ok(())
}

async fn changes_that_need_a_probe_reset_the_status(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let pending = db.create_instance(&new_instance(owner, &["llama"])).await?;
    assert!(db.all_routable_instances().await?.is_empty(), "pending is not routed");
    let live = online(&db, &pending).await?;
    assert_eq!((live.status, live.last_probe_at, live.latency_ms), (InstanceStatus::Online, Some(1_000), Some(40)));
    assert_eq!(db.all_routable_instances().await?, vec![live.clone()]);

    let rename = InstanceChanges { name: Some("renamed".into()), region: Some(None), ..Default::default() };
    let renamed = db.update_instance(owner, &live.id, &rename).await?.ok_or("gone")?;
    assert_eq!((renamed.name.as_str(), renamed.region.as_deref()), ("renamed", None));
    assert_eq!((renamed.status, renamed.revision), (InstanceStatus::Online, live.revision), "still online");

    let moved = InstanceChanges { base_url: Some("http://127.0.0.1:10/v1".into()), ..Default::default() };
    let moved = db.update_instance(owner, &live.id, &moved).await?.ok_or("gone")?;
    assert_eq!(moved.status, InstanceStatus::Pending);
    assert!(moved.revision > live.revision);
    assert!(db.all_routable_instances().await?.is_empty());
    assert!(!db.record_probe(&live.id, &probe(&live, ProbeStatus::Online, 1_010)).await?, "a stale probe");
    assert_eq!(db.instance_by_id(&live.id).await?.ok_or("gone")?.status, InstanceStatus::Pending);

    let live = online(&db, &moved).await?;
    let remodel = InstanceChanges { models: Some(vec![model("llama"), model("qwen")]), ..Default::default() };
    let remodeled = db.update_instance(owner, &live.id, &remodel).await?.ok_or("gone")?;
    assert_eq!((remodeled.status, remodeled.models.len()), (InstanceStatus::Pending, 2));

    let off = InstanceChanges { enabled: Some(false), ..Default::default() };
    let off = db.update_instance(owner, &live.id, &off).await?.ok_or("gone")?;
    assert_eq!((off.status, off.enabled), (InstanceStatus::Disabled, false));
    assert!(!db.record_probe(&off.id, &probe(&off, ProbeStatus::Online, 1_020)).await?, "disabled stays so");
    let on = InstanceChanges { enabled: Some(true), ..Default::default() };
    assert_eq!(db.update_instance(owner, &live.id, &on).await?.ok_or("gone")?.status, InstanceStatus::Pending);
    Ok(())
}

async fn mismatch_and_offline_verdicts_are_not_routed(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let instance = db.create_instance(&new_instance(owner, &["llama"])).await?;
    let mut verdict = probe(&instance, ProbeStatus::Mismatch, 1_000);
    verdict.detail = "GET /models does not list org/llama".into();
    assert!(db.record_probe(&instance.id, &verdict).await?);
    let seen = db.instance_by_id(&instance.id).await?.ok_or("gone")?;
    assert_eq!((seen.status, seen.status_detail.as_str()), (InstanceStatus::Mismatch, verdict.detail.as_str()));
    assert_eq!(seen.consecutive_failures, 1);
    assert!(db.all_routable_instances().await?.is_empty());
    assert!(db.record_probe(&instance.id, &probe(&instance, ProbeStatus::Offline, 1_030)).await?);
    assert_eq!(db.instance_by_id(&instance.id).await?.ok_or("gone")?.consecutive_failures, 2);
    online(&db, &instance).await?;
    assert_eq!(db.instance_by_id(&instance.id).await?.ok_or("gone")?.consecutive_failures, 0);
    Ok(())
}

async fn three_failed_requests_in_a_row_take_it_offline(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let instance = db.create_instance(&new_instance(owner, &["llama"])).await?;
    let instance = online(&db, &instance).await?;
    assert!(!db.record_request_outcome(&instance.id, false).await?);
    assert!(!db.record_request_outcome(&instance.id, false).await?);
    assert!(!db.record_request_outcome(&instance.id, true).await?, "a good request breaks the run");
    assert!(!db.record_request_outcome(&instance.id, false).await?);
    assert!(!db.record_request_outcome(&instance.id, false).await?);
    let version = db.instances_version().await?;
    assert!(db.record_request_outcome(&instance.id, false).await?, "the third in a row");
    assert!(db.instances_version().await? > version);
    let offline = db.instance_by_id(&instance.id).await?.ok_or("gone")?;
    assert_eq!(offline.status, InstanceStatus::Offline);
    assert!(offline.status_detail.contains("in a row"), "{}", offline.status_detail);
    assert!(db.all_routable_instances().await?.is_empty());
    assert!(!db.record_request_outcome(&instance.id, false).await?, "already offline");
    online(&db, &offline).await?;
    assert_eq!(db.all_routable_instances().await?.len(), 1, "back after a good probe");
    assert!(!db.record_request_outcome("inst_unknown", false).await?);
    Ok(())
}

async fn rotating_the_key_changes_it_and_calls_for_a_probe(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let instance = db.create_instance(&new_instance(owner, &["llama"])).await?;
    let instance = online(&db, &instance).await?;
    let rotated = db.rotate_instance_key(owner, &instance.id, "key-two").await?.ok_or("gone")?;
    assert_eq!(rotated.api_key, "key-two");
    assert_eq!(rotated.status, InstanceStatus::Pending);
    assert!(rotated.revision > instance.revision);
    assert!(!format!("{rotated:?}").contains("key-two"), "Debug shows no key");
    Ok(())
}

async fn an_admin_disables_any_instance(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let instance = db.create_instance(&new_instance(owner, &["llama"])).await?;
    let instance = online(&db, &instance).await?;
    let counts = |online, disabled| {
        use InstanceStatus as S;
        vec![(S::Pending, 0), (S::Online, online), (S::Offline, 0), (S::Mismatch, 0), (S::Disabled, disabled)]
    };
    assert_eq!(db.instance_counts().await?, counts(1, 0));
    let disabled = db.set_admin_disabled(&instance.id, true).await?.ok_or("gone")?;
    assert_eq!(db.instance_counts().await?, counts(0, 1), "zeros included");
    assert_eq!((disabled.status, disabled.admin_disabled), (InstanceStatus::Disabled, true));
    assert!(db.all_routable_instances().await?.is_empty());
    assert!(db.take_probe_lease("r1", 5_000, 30, 10).await?.is_empty(), "not probed");
    let on = InstanceChanges { enabled: Some(true), name: Some("x".into()), ..Default::default() };
    assert_eq!(db.update_instance(owner, &instance.id, &on).await?.ok_or("gone")?.status, InstanceStatus::Disabled);
    let back = db.set_admin_disabled(&instance.id, false).await?.ok_or("gone")?;
    assert_eq!(back.status, InstanceStatus::Pending);
    assert_eq!(db.set_admin_disabled("inst_unknown", true).await?, None);
    Ok(())
}

async fn a_disabled_accounts_instances_are_not_routed(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let instance = db.create_instance(&new_instance(owner, &["llama"])).await?;
    online(&db, &instance).await?;
    let before = db.instances_version().await?;
    db.set_account_disabled("owner", true).await?;
    assert!(db.all_routable_instances().await?.is_empty());
    // The routing tables (which rebuild on a new version) drop them at once, and take them
    // back when the account is enabled again.
    let disabled = db.instances_version().await?;
    assert!(disabled > before, "disabling the owner is a routing change");
    db.set_account_disabled("owner", false).await?;
    assert!(db.instances_version().await? > disabled);
    assert_eq!(db.all_routable_instances().await?.len(), 1);
    Ok(())
}

async fn models_are_unique_per_instance(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let twice = db.create_instance(&new_instance(owner, &["llama", "llama"])).await;
    assert!(matches!(twice, Err(StoreError::DuplicateInstanceModel(ref m)) if m == "llama"), "{twice:?}");
    assert!(db.instances_of(owner).await?.is_empty(), "nothing stored");
    let instance = db.create_instance(&new_instance(owner, &["llama"])).await?;
    let twice = InstanceChanges { models: Some(vec![model("qwen"), model("qwen")]), ..Default::default() };
    assert!(matches!(
        db.update_instance(owner, &instance.id, &twice).await,
        Err(StoreError::DuplicateInstanceModel(_))
    ));
    let id = &instance.id;
    let sql = format!("INSERT INTO instance_models (instance_id, model, upstream_model) VALUES ('{id}', 'llama', 'x')");
    assert!(raw(&db, backend, sql).await.is_err(), "the database refuses it too");
    assert_eq!(db.instance(owner, id).await?.ok_or("gone")?.models, vec![model("llama")]);
    Ok(())
}

async fn inventory_is_checked_and_scoped(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let other = db.create_account("other", NanoUsd::ZERO).await?.id;
    let instance = db.create_instance(&new_instance(owner, &["llama"])).await?;
    let id = instance.id.as_str();
    let unit = db.add_processing_unit(owner, id, &gpu(8)).await?.ok_or("not added")?;
    assert!(unit.id.starts_with("pu_"));
    assert_eq!((unit.kind.as_str(), unit.memory_mb, unit.count), ("gpu", 80_000, 8));
    let cpu = NewProcessingUnit { kind: "cpu".into(), vendor: "amd".into(), model: "EPYC".into(), ..gpu(2) };
    let second = db.add_processing_unit(owner, id, &cpu).await?.ok_or("not added")?;
    assert_eq!(db.processing_units(owner, id).await?, Some(vec![unit.clone(), second.clone()]));

    for bad in [
        NewProcessingUnit { kind: "fpga".into(), ..gpu(1) },
        gpu(0),
        gpu(-1),
        NewProcessingUnit { memory_mb: 0, ..gpu(1) },
    ] {
        assert!(db.add_processing_unit(owner, id, &bad).await.is_err(), "{bad:?} refused");
        assert!(db.update_processing_unit(owner, id, &unit.id, &bad).await.is_err(), "{bad:?} refused");
    }
    let changed = db.update_processing_unit(owner, id, &unit.id, &gpu(4)).await?.ok_or("gone")?;
    assert_eq!((changed.id.as_str(), changed.count), (unit.id.as_str(), 4));
    assert_eq!(db.update_processing_unit(other, id, &unit.id, &gpu(1)).await?, None);
    assert!(!db.delete_processing_unit(other, id, &unit.id).await?);
    let elsewhere = db.create_instance(&new_instance(owner, &["llama"])).await?;
    assert_eq!(db.update_processing_unit(owner, &elsewhere.id, &unit.id, &gpu(1)).await?, None, "wrong instance");
    assert!(db.delete_processing_unit(owner, id, &unit.id).await?);
    assert!(!db.delete_processing_unit(owner, id, &unit.id).await?);
    assert_eq!(db.processing_units(owner, id).await?, Some(vec![second]));

    let vllm = NewSoftware { name: "vllm".into(), version: "0.6.3".into() };
    let sw = db.add_software(owner, id, &vllm).await?.ok_or("not added")?;
    assert!(sw.id.starts_with("sw_"));
    assert_eq!(db.add_software(other, id, &vllm).await?, None);
    let newer = NewSoftware { version: "0.7.0".into(), ..vllm };
    assert_eq!(db.update_software(other, id, &sw.id, &newer).await?, None);
    let updated = db.update_software(owner, id, &sw.id, &newer).await?.ok_or("gone")?;
    assert_eq!(updated.version, "0.7.0");
    assert_eq!(db.software(owner, id).await?, Some(vec![updated]));
    assert!(!db.delete_software(other, id, &sw.id).await?);
    assert!(db.delete_software(owner, id, &sw.id).await?);
    assert_eq!(db.software(owner, id).await?, Some(Vec::new()));
    Ok(())
}

async fn deleting_an_instance_deletes_what_hangs_on_it(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let instance = db.create_instance(&new_instance(owner, &["llama", "qwen"])).await?;
    let id = instance.id.clone();
    online(&db, &instance).await?;
    db.add_processing_unit(owner, &id, &gpu(1)).await?.ok_or("not added")?;
    db.add_software(owner, &id, &NewSoftware { name: "vllm".into(), version: "1".into() }).await?.ok_or("no")?;
    let version = db.instances_version().await?;
    assert!(db.delete_instance(owner, &id).await?);
    assert!(db.instances_version().await? > version);
    assert!(!db.delete_instance(owner, &id).await?);
    assert_eq!(db.instance(owner, &id).await?, None);
    assert!(db.all_routable_instances().await?.is_empty());
    for table in ["instance_models", "processing_units", "software", "instance_probes"] {
        let left = raw(&db, backend, format!("SELECT COUNT(*) FROM {table} WHERE instance_id = '{id}'")).await?;
        assert_eq!(left, Some(0), "{table}");
    }
    Ok(())
}

async fn each_instance_is_leased_to_one_replica_at_a_time(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let mut all = HashSet::new();
    for _ in 0..12 {
        all.insert(db.create_instance(&new_instance(owner, &["llama"])).await?.id);
    }
    let replicas = [Db::open(&db.url).await?, Db::open(&db.url).await?, Db::open(&db.url).await?];
    let now = 10_000;
    let (a, b, c) = tokio::join!(
        replicas[0].take_probe_lease("r0", now, 30, 3),
        replicas[1].take_probe_lease("r1", now, 30, 3),
        replicas[2].take_probe_lease("r2", now, 30, 3),
    );
    let mut claimed: Vec<String> = Vec::new();
    for batch in [a?, b?, c?] {
        assert!(batch.len() <= 3);
        claimed.extend(batch.into_iter().map(|i| i.id));
    }
    let distinct: HashSet<String> = claimed.iter().cloned().collect();
    assert_eq!(distinct.len(), claimed.len(), "no instance claimed twice: {claimed:?}");
    let rest = db.take_probe_lease("r3", now, 30, 100).await?;
    assert!(rest.iter().all(|i| !distinct.contains(&i.id)));
    assert_eq!(distinct.len() + rest.len(), all.len(), "every due instance was claimed once");

    assert!(db.take_probe_lease("r0", now + 29, 30, 100).await?.is_empty(), "all leased");
    let changed = rest.first().ok_or("none left")?;
    let moved = InstanceChanges { base_url: Some("http://127.0.0.1:11/v1".into()), ..Default::default() };
    db.update_instance(owner, &changed.id, &moved).await?;
    let due = db.take_probe_lease("r0", now + 29, 30, 100).await?;
    assert_eq!(due.iter().map(|i| &i.id).collect::<Vec<_>>(), [&changed.id], "a change is due at once");
    let again = db.take_probe_lease("r1", now + 30, 30, 100).await?;
    assert_eq!(again.len(), all.len() - 1, "expired leases are free again");
    Ok(())
}

async fn stats_count_what_the_instance_served(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let owner = db.create_account("owner", NanoUsd::ZERO).await?.id;
    let consumer = db.create_account("consumer", NanoUsd(1_000_000)).await?.id;
    db.insert_key(&crate::fixture::new_key("k1", consumer)).await?;
    let instance = db.create_instance(&new_instance(owner, &["llama"])).await?;
    let id = instance.id.as_str();
    let fresh = db.instance_stats(id, 0).await?;
    assert_eq!((fresh.requests, fresh.earnings, fresh.uptime_24h), (0, NanoUsd::ZERO, None));

    let served = |request_id: &str, at: i64| {
        let mut record = usage_record(request_id, "k1", consumer, 1_000);
        record.provider = provider_name(id);
        record.created_at = at;
        record
    };
    let elsewhere = usage_record("r-other", "k1", consumer, 1_000);
    db.record_usage(&[served("r1", 5_000), served("r2", 6_000), served("r-old", 10), elsewhere]).await?;
    for request in ["r1", "r2", "r-old"] {
        let sql = format!(
            "INSERT INTO ledger (account_id, kind, amount_nano, request_id, memo, created_at) \
             VALUES ({owner}, 'earning', 800, '{request}', 'llama', 5000)"
        );
        raw(&db, backend, sql).await?;
    }
    let mut at = 4_000;
    for status in [ProbeStatus::Online, ProbeStatus::Online, ProbeStatus::Offline, ProbeStatus::Online] {
        assert!(db.record_probe(id, &probe(&instance, status, at)).await?);
        at += 30;
    }
    assert!(db.record_probe(id, &probe(&instance, ProbeStatus::Offline, 100)).await?, "before the window");

    let stats = db.instance_stats(id, 1_000).await?;
    assert_eq!((stats.requests, stats.prompt_tokens, stats.completion_tokens), (2, 24, 68));
    assert_eq!(stats.earnings, NanoUsd(1_600));
    assert_eq!(stats.uptime_24h, Some(0.75));
    Ok(())
}

on_both_backends!(
    an_instance_is_its_accounts_alone,
    changes_that_need_a_probe_reset_the_status,
    mismatch_and_offline_verdicts_are_not_routed,
    three_failed_requests_in_a_row_take_it_offline,
    rotating_the_key_changes_it_and_calls_for_a_probe,
    an_admin_disables_any_instance,
    a_disabled_accounts_instances_are_not_routed,
    models_are_unique_per_instance,
    inventory_is_checked_and_scoped,
    deleting_an_instance_deletes_what_hangs_on_it,
    each_instance_is_leased_to_one_replica_at_a_time,
    stats_count_what_the_instance_served,
);
