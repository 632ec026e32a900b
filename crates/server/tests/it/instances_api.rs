//! `/api/instances` (CONTRACTS.md §7): registration with its one-time key, reading, changing,
//! rotating and deleting; inventory; validation that names the field; another account's
//! objects are 404; the admins' switch; refused addresses stored never (in a loopback-only
//! network namespace); the instance key never in an answer after the first, nor in the log.
//!
//! Every address given here is loopback: nothing is dialed anywhere else, even by a
//! prober running in the gateway.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokenrouter_mock::MockConfig;
use tokenrouter_store::{KeyScope, NanoUsd, ProbeResult, ProbeStatus};

use crate::harness::{Gateway, key_for};

/// A catalog model open to instances (served by them alone), with private addresses
/// allowed (instances on loopback).
pub const INSTANCES_EXTRA: &str = r#"
[instances]
allow_private_addresses = true

[[models]]
id = "community-llama"
context_window = 8000
max_output_tokens = 1000
input_price = 1
output_price = 2
instances = true
deployments = []

[[models]]
id = "community-qwen"
context_window = 8000
max_output_tokens = 1000
input_price = 1
output_price = 2
instances = true
deployments = []
"#;

const BASE_URL: &str = "http://127.0.0.1:9/v1";

/// A management key of `account_id`, for `/api`.
async fn management_key(gw: &Gateway, account_id: i64) -> String {
    let (mut key, secret) = key_for(account_id);
    key.scope = KeyScope::Management;
    gw.add_key(&key).await;
    secret
}

/// Calls `method path` with `key`; the status and the JSON answer.
async fn call(gw: &Gateway, key: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = gw.http.request(method, format!("{}{path}", gw.url)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

/// Asserts a 400 naming `param` with `code`.
#[track_caller]
fn refused(answer: &(u16, Value), code: &str, param: &str) {
    assert_eq!(answer.0, 400, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert_eq!(answer.1["error"]["param"], param, "{}", answer.1);
}

fn registration() -> Value {
    json!({"name": "garage box", "base_url": BASE_URL, "models": [{"id": "community-llama", "upstream_model": "meta/llama"}, {"id": "community-qwen"}], "region": "eu-west"})
}

#[tokio::test]
async fn an_instance_is_registered_read_changed_rotated_and_deleted() {
    let gw = Gateway::start_with(MockConfig::default(), INSTANCES_EXTRA).await;
    let key = management_key(&gw, gw.account_id).await;
    let (status, created) = call(&gw, &key, Method::POST, "/api/instances", Some(registration())).await;
    assert_eq!(status, 201, "{created}");
    let instance_key = created["instance_key"].as_str().unwrap().to_owned();
    assert!(instance_key.starts_with("sk-inst-") && instance_key.len() >= 8 + 43, "{instance_key}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "pending");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["base_url"], BASE_URL);
    assert_eq!(created["region"], "eu-west");
    let mut models: Vec<(String, String)> = created["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_owned(), m["upstream_model"].as_str().unwrap().to_owned()))
        .collect();
    models.sort();
    assert_eq!(
        models,
        [("community-llama".into(), "meta/llama".into()), ("community-qwen".into(), "community-qwen".into())],
        "upstream_model defaults to the id"
    );
    // The prober may already have tried the (unreachable) server: uptime is then 0, else null.
    let mut stats = created["stats"].clone();
    let uptime = stats["uptime_24h"].take();
    assert!(uptime.is_null() || uptime == json!(0.0), "{uptime}");
    assert_eq!(
        stats,
        json!({"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "earnings_usd": "0", "uptime_24h": null})
    );
    assert_eq!(created["processing_units"], json!([]));
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    // The row is read before the stats: a probe may finish between the two reads.
    if !created["last_probe_at"].is_null() {
        assert!(!uptime.is_null(), "a probe's time comes with its uptime");
    }
    assert!(created["latency_ms"].is_null(), "nothing answered");

    // Never again: not in the object, not in the list.
    let (status, got) = call(&gw, &key, Method::GET, &format!("/api/instances/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(got.get("instance_key").is_none() && !got.to_string().contains(&instance_key), "{got}");
    let (status, list) = call(&gw, &key, Method::GET, "/api/instances", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert!(list["next"].is_null());
    assert!(!list.to_string().contains(&instance_key));
    // The stored key is the one shown.
    assert_eq!(gw.db.instance_by_id(&id).await.unwrap().unwrap().api_key, instance_key);

    // A probe's verdict shows in the object. (The gateway's own prober may probe it too,
    // and find nothing listening on port 9: online or offline, never pending again.)
    let stored = gw.db.instance_by_id(&id).await.unwrap().unwrap();
    let now = tokenrouter_core::clock::now_unix();
    let verdict = ProbeResult {
        revision: stored.revision,
        status: ProbeStatus::Online,
        detail: "ok".into(),
        latency_ms: Some(42),
        at: now,
    };
    assert!(gw.db.record_probe(&id, &verdict).await.unwrap());
    let (_, got) = call(&gw, &key, Method::GET, &format!("/api/instances/{id}"), None).await;
    assert!(["online", "offline"].contains(&got["status"].as_str().unwrap()), "{got}");
    let uptime = got["stats"]["uptime_24h"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&uptime) && uptime > 0.0, "{got}");
    assert!(got["last_probe_at"].as_str().unwrap().ends_with('Z'));

    // A rename keeps its verdict; a new address makes it wait for a probe.
    let path = format!("/api/instances/{id}");
    let (status, renamed) =
        call(&gw, &key, Method::PATCH, &path, Some(json!({"name": "rack 2", "region": null}))).await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!((renamed["name"].as_str(), renamed["region"].is_null()), (Some("rack 2"), true));
    assert_ne!(renamed["status"], "pending", "{renamed}");
    let (status, moved) =
        call(&gw, &key, Method::PATCH, &path, Some(json!({"base_url": "HTTP://127.0.0.1:8/v1/"}))).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["base_url"], "http://127.0.0.1:8/v1", "stored in canonical form");
    assert_eq!(moved["status"], "pending");
    let (_, narrowed) =
        call(&gw, &key, Method::PATCH, &path, Some(json!({"models": [{"id": "community-qwen"}]}))).await;
    assert_eq!(narrowed["models"], json!([{"id": "community-qwen", "upstream_model": "community-qwen"}]));
    let (_, off) = call(&gw, &key, Method::PATCH, &path, Some(json!({"enabled": false}))).await;
    assert_eq!((off["enabled"].as_bool(), off["status"].as_str()), (Some(false), Some("disabled")));
    let (_, on) = call(&gw, &key, Method::PATCH, &path, Some(json!({"enabled": true}))).await;
    assert_eq!(on["status"], "pending");
    refused(&call(&gw, &key, Method::PATCH, &path, Some(json!({"name": ""}))).await, "invalid_request", "name");
    refused(
        &call(&gw, &key, Method::PATCH, &path, Some(json!({"enabled": "yes"}))).await,
        "invalid_request",
        "enabled",
    );
    refused(
        &call(&gw, &key, Method::PATCH, &path, Some(json!({"base_url": "http://169.254.169.254/"}))).await,
        "unsafe_url",
        "base_url",
    );
    assert_eq!(gw.db.instance_by_id(&id).await.unwrap().unwrap().base_url, "http://127.0.0.1:8/v1");

    // Rotation: a new key, shown once; the instance waits for a probe with it.
    let before = gw.db.instance_by_id(&id).await.unwrap().unwrap().revision;
    let (status, rotated) = call(&gw, &key, Method::POST, &format!("{path}/rotate-key"), None).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["id"], id.as_str());
    let new_key = rotated["instance_key"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with("sk-inst-") && new_key != instance_key);
    assert_eq!(rotated.as_object().unwrap().len(), 2);
    let stored = gw.db.instance_by_id(&id).await.unwrap().unwrap();
    assert!(stored.revision > before && stored.api_key == new_key, "a new revision, to be probed with the new key");
    let (_, got) = call(&gw, &key, Method::GET, &path, None).await;
    assert_ne!(got["status"], "online", "{got}");
    assert!(!got.to_string().contains(&new_key) && !got.to_string().contains(&instance_key));

    let (status, deleted) = call(&gw, &key, Method::DELETE, &path, None).await;
    assert_eq!((status, deleted), (200, json!({"id": id, "deleted": true})));
    assert_eq!(call(&gw, &key, Method::GET, &path, None).await.0, 404);
    assert_eq!(call(&gw, &key, Method::DELETE, &path, None).await.0, 404);
    assert_eq!(call(&gw, &key, Method::POST, &format!("{path}/rotate-key"), None).await.0, 404);
}

#[tokio::test]
async fn registration_refuses_bad_fields_by_name_and_stores_nothing() {
    let gw = Gateway::start_with(MockConfig::default(), INSTANCES_EXTRA).await;
    let key = management_key(&gw, gw.account_id).await;
    let with = |field: &str, value: Value| {
        let mut body = registration();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = registration();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = [
        (without("name"), "invalid_request", "name"),
        (with("name", json!("")), "invalid_request", "name"),
        (with("name", json!("x".repeat(101))), "invalid_request", "name"),
        (with("name", json!(7)), "invalid_request", "name"),
        (without("base_url"), "invalid_request", "base_url"),
        (with("base_url", json!("not a url")), "unsafe_url", "base_url"),
        (without("models"), "invalid_request", "models"),
        (with("models", json!([])), "invalid_request", "models"),
        (with("models", json!("community-llama")), "invalid_request", "models"),
        (with("models", json!([{"id": "no-such-model"}])), "invalid_request", "models"),
        (with("models", json!([{"id": "gpt-4o-mini"}])), "invalid_request", "models"),
        (
            with("models", json!([{"id": "community-llama"}, {"id": "community-llama", "upstream_model": "x"}])),
            "invalid_request",
            "models",
        ),
        (
            with("models", json!([{"id": "community-llama", "upstream_model": "x".repeat(201)}])),
            "invalid_request",
            "models",
        ),
        (with("models", json!([{"id": "community-llama", "weight": 2}])), "invalid_request", "models"),
        (with("region", json!("r".repeat(65))), "invalid_request", "region"),
        (with("surprise", json!(1)), "invalid_request", "surprise"),
    ];
    for (body, code, param) in cases {
        let answer = call(&gw, &key, Method::POST, "/api/instances", Some(body.clone())).await;
        assert_eq!(answer.0, 400, "{body} → {}", answer.1);
        assert_eq!(
            (answer.1["error"]["code"].as_str(), answer.1["error"]["param"].as_str()),
            (Some(code), Some(param)),
            "{body} → {}",
            answer.1
        );
    }
    let closed =
        call(&gw, &key, Method::POST, "/api/instances", Some(with("models", json!([{"id": "gpt-4o-mini"}])))).await;
    assert!(
        closed.1["error"]["message"].as_str().unwrap().contains("'gpt-4o-mini' is not open to instances"),
        "{}",
        closed.1
    );
    let unknown =
        call(&gw, &key, Method::POST, "/api/instances", Some(with("models", json!([{"id": "no-such-model"}])))).await;
    assert!(unknown.1["error"]["message"].as_str().unwrap().contains("'no-such-model' is not a model of the catalog"));
    let twice = call(
        &gw,
        &key,
        Method::POST,
        "/api/instances",
        Some(with("models", json!([{"id": "community-llama"}, {"id": "community-llama"}]))),
    )
    .await;
    assert!(twice.1["error"]["message"].as_str().unwrap().contains("twice"));
    assert!(gw.db.instances_of(gw.account_id).await.unwrap().is_empty(), "nothing was stored");
}

#[tokio::test]
async fn processing_units_and_software_are_validated_and_kept() {
    let gw = Gateway::start_with(MockConfig::default(), INSTANCES_EXTRA).await;
    let key = management_key(&gw, gw.account_id).await;
    let (_, created) = call(&gw, &key, Method::POST, "/api/instances", Some(registration())).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let units = format!("/api/instances/{id}/processing-units");
    let gpu = json!({"kind": "gpu", "vendor": "NVIDIA", "model": "A100", "memory_gb": 80.5});
    let (status, unit) = call(&gw, &key, Method::POST, &units, Some(gpu.clone())).await;
    assert_eq!(status, 201, "{unit}");
    assert_eq!(
        (unit["kind"].as_str(), unit["memory_gb"].as_f64(), unit["count"].as_i64()),
        (Some("gpu"), Some(80.5), Some(1))
    );
    let unit_id = unit["id"].as_str().unwrap().to_owned();
    let with = |field: &str, value: Value| {
        let mut body = gpu.clone();
        body[field] = value;
        body
    };
    for (body, param) in [
        (with("kind", json!("fpga")), "kind"),
        (with("kind", json!(null)), "kind"),
        (with("count", json!(0)), "count"),
        (with("count", json!(1025)), "count"),
        (with("count", json!(2.5)), "count"),
        (with("memory_gb", json!(0)), "memory_gb"),
        (with("memory_gb", json!(-8)), "memory_gb"),
        (with("memory_gb", json!(100_000.5)), "memory_gb"),
        (with("memory_gb", json!(1.2345)), "memory_gb"),
        (with("memory_gb", json!("80")), "memory_gb"),
        (with("vendor", json!("")), "vendor"),
        (with("model", json!("m".repeat(101))), "model"),
        (with("watts", json!(300)), "watts"),
    ] {
        refused(&call(&gw, &key, Method::POST, &units, Some(body)).await, "invalid_request", param);
    }
    let mut missing = gpu.clone();
    missing.as_object_mut().unwrap().remove("memory_gb");
    refused(&call(&gw, &key, Method::POST, &units, Some(missing)).await, "invalid_request", "memory_gb");
    let (status, patched) =
        call(&gw, &key, Method::PATCH, &format!("{units}/{unit_id}"), Some(json!({"count": 8, "memory_gb": 0.001})))
            .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched,
        json!({"id": unit_id, "kind": "gpu", "vendor": "NVIDIA", "model": "A100", "memory_gb": 0.001, "count": 8})
    );
    refused(
        &call(&gw, &key, Method::PATCH, &format!("{units}/{unit_id}"), Some(json!({"count": -1}))).await,
        "invalid_request",
        "count",
    );
    assert_eq!(call(&gw, &key, Method::PATCH, &format!("{units}/pu_nope"), Some(json!({"count": 2}))).await.0, 404);
    let (_, list) = call(&gw, &key, Method::GET, &units, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    let software = format!("/api/instances/{id}/software");
    let (status, vllm) =
        call(&gw, &key, Method::POST, &software, Some(json!({"name": "vLLM", "version": "0.6.3"}))).await;
    assert_eq!(status, 201, "{vllm}");
    let sw_id = vllm["id"].as_str().unwrap().to_owned();
    refused(
        &call(&gw, &key, Method::POST, &software, Some(json!({"name": "vLLM"}))).await,
        "invalid_request",
        "version",
    );
    refused(
        &call(&gw, &key, Method::POST, &software, Some(json!({"name": "vLLM", "version": "v".repeat(65)}))).await,
        "invalid_request",
        "version",
    );
    refused(
        &call(&gw, &key, Method::POST, &software, Some(json!({"name": "", "version": "1"}))).await,
        "invalid_request",
        "name",
    );
    let (status, upgraded) =
        call(&gw, &key, Method::PATCH, &format!("{software}/{sw_id}"), Some(json!({"version": "0.7.0"}))).await;
    assert_eq!((status, upgraded), (200, json!({"id": sw_id, "name": "vLLM", "version": "0.7.0"})));

    // The instance object carries its inventory.
    let (_, got) = call(&gw, &key, Method::GET, &format!("/api/instances/{id}"), None).await;
    assert_eq!(got["processing_units"][0]["count"], 8);
    assert_eq!(got["software"][0]["version"], "0.7.0");

    let (status, gone) = call(&gw, &key, Method::DELETE, &format!("{units}/{unit_id}"), None).await;
    assert_eq!((status, gone), (200, json!({"id": unit_id, "deleted": true})));
    assert_eq!(call(&gw, &key, Method::DELETE, &format!("{units}/{unit_id}"), None).await.0, 404);
    let (status, gone) = call(&gw, &key, Method::DELETE, &format!("{software}/{sw_id}"), None).await;
    assert_eq!((status, gone), (200, json!({"id": sw_id, "deleted": true})));
    let (_, list) = call(&gw, &key, Method::GET, &software, None).await;
    assert_eq!(list, json!({"data": []}));
}

#[tokio::test]
async fn another_accounts_instance_is_not_found_and_only_admins_disable_it() {
    let gw = Gateway::start_with(MockConfig::default(), INSTANCES_EXTRA).await;
    let owner = management_key(&gw, gw.account_id).await;
    let (_, created) = call(&gw, &owner, Method::POST, "/api/instances", Some(registration())).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/instances/{id}");
    let (_, unit) = call(
        &gw,
        &owner,
        Method::POST,
        &format!("{path}/processing-units"),
        Some(json!({"kind": "cpu", "vendor": "AMD", "model": "EPYC", "memory_gb": 512})),
    )
    .await;
    let unit_path = format!("{path}/processing-units/{}", unit["id"].as_str().unwrap());

    let other_account = gw.db.create_account("mallory", NanoUsd::ZERO).await.unwrap().id;
    let other = management_key(&gw, other_account).await;
    let (_, list) = call(&gw, &other, Method::GET, "/api/instances", None).await;
    assert_eq!(list["data"], json!([]));
    for (method, route, body) in [
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"name": "mine now"}))),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/rotate-key"), None),
        (Method::GET, format!("{path}/processing-units"), None),
        (
            Method::POST,
            format!("{path}/processing-units"),
            Some(json!({"kind": "gpu", "vendor": "x", "model": "y", "memory_gb": 1})),
        ),
        (Method::PATCH, unit_path.clone(), Some(json!({"count": 2}))),
        (Method::DELETE, unit_path.clone(), None),
        (Method::GET, format!("{path}/software"), None),
        (Method::POST, format!("{path}/software"), Some(json!({"name": "x", "version": "1"}))),
    ] {
        let (status, answer) = call(&gw, &other, method.clone(), &route, body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("not_found")), "{method} {route}: {answer}");
    }
    let stored = gw.db.instance_by_id(&id).await.unwrap().unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.api_key.as_str()),
        ("garage box", created["instance_key"].as_str().unwrap())
    );
    assert_eq!(
        call(&gw, &owner, Method::GET, &format!("{path}/processing-units"), None).await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Admins only.
    let admin_path = format!("/api/admin/instances/{id}");
    let (status, answer) = call(&gw, &other, Method::PATCH, &admin_path, Some(json!({"disabled": true}))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{answer}");
    gw.db.set_admin("mallory", true).await.unwrap();
    refused(&call(&gw, &other, Method::PATCH, &admin_path, Some(json!({}))).await, "invalid_request", "disabled");
    let (status, disabled) = call(&gw, &other, Method::PATCH, &admin_path, Some(json!({"disabled": true}))).await;
    assert_eq!(status, 200, "{disabled}");
    assert_eq!((disabled["status"].as_str(), disabled["admin_disabled"].as_bool()), (Some("disabled"), Some(true)));
    assert_eq!(disabled["account_id"], gw.account_id);
    assert!(disabled.get("instance_key").is_none());
    let (_, seen) = call(&gw, &owner, Method::GET, &path, None).await;
    assert_eq!(seen["status"], "disabled");
    assert!(seen["status_detail"].as_str().unwrap().contains("administrator"), "{seen}");
    // The owner's switch does not lift the admin's.
    let (_, still) = call(&gw, &owner, Method::PATCH, &path, Some(json!({"enabled": true, "name": "x"}))).await;
    assert_eq!(still["status"], "disabled");
    let (_, back) = call(&gw, &other, Method::PATCH, &admin_path, Some(json!({"disabled": false}))).await;
    assert_eq!((back["status"].as_str(), back["admin_disabled"].as_bool()), (Some("pending"), Some(false)));
    assert_eq!(
        call(&gw, &other, Method::PATCH, "/api/admin/instances/inst_nope", Some(json!({"disabled": true}))).await.0,
        404
    );
}

#[tokio::test]
async fn a_session_needs_the_gateways_origin_and_an_inference_key_is_refused() {
    let gw = Gateway::start_with(MockConfig::default(), INSTANCES_EXTRA).await;
    let cookie = gw.session(gw.account_id).await;
    let url = format!("{}/api/instances", gw.url);
    let foreign = gw.http.post(&url).header("cookie", &cookie).json(&registration()).send().await.unwrap();
    crate::harness::expect_error(foreign, 403, "csrf_failed").await;
    let origin = "http://127.0.0.1:8080";
    let ok = gw.http.post(&url).header("cookie", &cookie).header("origin", origin).json(&registration()).send().await;
    assert_eq!(ok.unwrap().status(), 201);
    let listed = gw.http.get(&url).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let inference = gw.http.get(&url).bearer_auth(&gw.key).send().await.unwrap();
    crate::harness::expect_error(inference, 403, "forbidden").await;
    let nobody = gw.http.get(&url).send().await.unwrap();
    assert_eq!(nobody.status(), 401);
}

/// URLs refused before any lookup or connection: with private addresses refused, and with
/// them allowed (metadata, other schemes and userinfo stay refused).
const REFUSED_ALWAYS: [&str; 5] = [
    "http://169.254.169.254/",
    "http://[fe80::1]/v1",
    "ftp://127.0.0.1/v1",
    "http://user@127.0.0.1/v1",
    "http://[::ffff:169.254.169.254]/",
];
const REFUSED_UNLESS_PRIVATE: [&str; 6] = [
    "http://[::ffff:127.0.0.1]/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://10.0.0.1/v1",
    "http://localhost:8000/v1",
    "http://[::1]:8000/v1",
];

crate::isolated_test! {
    /// Runs in a loopback-only network namespace: were the policy wrong, no packet could
    /// leave for 10.0.0.1 or the metadata address.
    async fn refused_addresses_are_never_stored() {
        for allow_private in [false, true] {
            let extra = INSTANCES_EXTRA.replace(
                "allow_private_addresses = true",
                &format!("allow_private_addresses = {allow_private}"),
            );
            let gw = Gateway::start_with(MockConfig::default(), &extra).await;
            let key = management_key(&gw, gw.account_id).await;
            let mut urls: Vec<&str> = REFUSED_ALWAYS.to_vec();
            if !allow_private {
                urls.extend(REFUSED_UNLESS_PRIVATE);
            }
            for url in urls {
                let mut body = registration();
                body["base_url"] = json!(url);
                let answer = call(&gw, &key, Method::POST, "/api/instances", Some(body)).await;
                assert_eq!(answer.1["error"]["code"], "unsafe_url", "{url} (allow_private = {allow_private}): {}", answer.1);
                refused(&answer, "unsafe_url", "base_url");
                assert!(answer.1["error"]["message"].as_str().unwrap().len() > 10);
            }
            // A name that does not resolve is not an unsafe URL. (Here any DNS query
            // fails at once: nothing but loopback exists.)
            let mut body = registration();
            body["base_url"] = json!("http://no-such-host.invalid/v1");
            refused(&call(&gw, &key, Method::POST, "/api/instances", Some(body)).await, "invalid_request", "base_url");
            assert!(gw.db.instances_of(gw.account_id).await.unwrap().is_empty(), "nothing was stored");
            // The same refusal when moving an existing instance there.
            if allow_private {
                let (status, created) = call(&gw, &key, Method::POST, "/api/instances", Some(registration())).await;
                assert_eq!(status, 201);
                let path = format!("/api/instances/{}", created["id"].as_str().unwrap());
                for url in REFUSED_ALWAYS {
                    let answer = call(&gw, &key, Method::PATCH, &path, Some(json!({"base_url": url}))).await;
                    refused(&answer, "unsafe_url", "base_url");
                }
                let stored = gw.db.instances_of(gw.account_id).await.unwrap();
                assert_eq!(stored.len(), 1);
                assert_eq!(stored[0].base_url, BASE_URL);
            }
        }
    }
}

/// A real `tokenrouter serve` logging at debug level: the instance keys it issues (at
/// registration and rotation) are in no log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instance_key_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{INSTANCES_EXTRA}\n[[providers]]\nname = \"nowhere\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n"
    );
    std::fs::write(dir.path().join("gw.toml"), config).unwrap();
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_tokenrouter"))
            .current_dir(dir.path())
            .env_remove("TOKENROUTER_CONFIG")
            .env_remove("TOKENROUTER_DATABASE_URL")
            .env("RUST_LOG", "warn")
            .args(["--database", "sqlite://gw.db", "--config", "gw.toml"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    cli(&["accounts", "create", "acme", "--balance", "1"]);
    let key = cli(&["keys", "create", "--account", "acme", "--scope", "management"])
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let log_path = dir.path().join("serve.log");
    let mut server = Command::new(env!("CARGO_BIN_EXE_tokenrouter"))
        .current_dir(dir.path())
        .env_remove("TOKENROUTER_CONFIG")
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .args(["--database", "sqlite://gw.db", "--config", "gw.toml", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let url = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(at) = text.find("listening on http://") {
            break text[at + "listening on ".len()..].split_whitespace().next().unwrap().to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the server did not start:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{url}/api/instances"))
        .bearer_auth(&key)
        .json(&registration())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = created["instance_key"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let rotated: Value = http
        .post(format!("{url}/api/instances/{id}/rotate-key"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second = rotated["instance_key"].as_str().unwrap().to_owned();
    let got = http.get(format!("{url}/api/instances/{id}")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(got.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = server.kill();
    let _ = server.wait();
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.lines().count() > 3, "the log is too thin to prove anything:\n{text}");
    for secret in [&first, &second] {
        let secret_part = secret.trim_start_matches("sk-inst-");
        assert!(!text.contains(secret_part), "an instance key is in the log:\n{text}");
    }
}
