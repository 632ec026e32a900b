//! `GET /api/openapi.json` describes every `/api` route, and real answers — successes and
//! errors — match the schemas it gives for them, with no undocumented field.

use reqwest::Method;
use serde_json::{Value, json};
use tokenrouter_store::KeyScope;

use crate::harness::{Gateway, key_for, user};

/// Checks `value` against a JSON Schema (the subset utoipa writes: `$ref`, `allOf`, `oneOf`,
/// `anyOf`, `type` (one or several), `properties`, `required`, `items`); every property of
/// an object must be documented.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return check(doc, &doc["components"]["schemas"][name], value, at);
    }
    if let Some(parts) = schema["allOf"].as_array() {
        for part in parts {
            check_loose(doc, part, value, at)?;
        }
        return documented(doc, schema, value, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            let errors: Vec<String> = options.iter().filter_map(|o| check(doc, o, value, at).err()).collect();
            return if errors.len() < options.len() { Ok(()) } else { Err(errors.join(" | ")) };
        }
    }
    check_loose(doc, schema, value, at)?;
    documented(doc, schema, value, at)
}

/// `check` without the undocumented-field rule (for the parts of an `allOf`).
fn check_loose(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if schema.get("$ref").is_some() || schema.get("allOf").is_some() || schema.get("oneOf").is_some() {
        return check(doc, schema, value, at).or_else(|e| if e.contains("undocumented") { Ok(()) } else { Err(e) });
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let fits = |t: &str| match t {
        "null" => value.is_null(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| fits(t)) {
        return Err(format!("{at}: {value} is not {types:?}"));
    }
    if let (Some(required), Some(object)) = (schema["required"].as_array(), value.as_object()) {
        for name in required.iter().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                return Err(format!("{at}: required '{name}' is missing"));
            }
        }
    }
    if let (Some(properties), Some(object)) = (schema["properties"].as_object(), value.as_object()) {
        for (name, field) in object {
            if let Some(property) = properties.get(name) {
                check(doc, property, field, &format!("{at}.{name}"))?;
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check(doc, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Every property a schema documents, following `$ref` and `allOf`.
fn properties(doc: &Value, schema: &Value, into: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return properties(doc, &doc["components"]["schemas"][name], into);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        properties(doc, part, into);
    }
    into.extend(schema["properties"].as_object().into_iter().flat_map(|p| p.keys().cloned()));
}

fn documented(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Some(object) = value.as_object() else { return Ok(()) };
    let mut known = Vec::new();
    properties(doc, schema, &mut known);
    if known.is_empty() {
        return Ok(());
    }
    match object.keys().find(|k| !known.contains(k)) {
        Some(extra) => Err(format!("{at}: undocumented field '{extra}'")),
        None => Ok(()),
    }
}

/// The documented schema of `method path` answering `status`.
fn schema_for<'d>(doc: &'d Value, method: &Method, path: &str, status: u16) -> &'d Value {
    let operation = &doc["paths"][path][method.as_str().to_ascii_lowercase()];
    assert!(operation.is_object(), "{method} {path} is not documented");
    let response = &operation["responses"][status.to_string()];
    assert!(response.is_object(), "{method} {path} → {status} is not documented: {operation}");
    &response["content"]["application/json"]["schema"]
}

struct Api<'g> {
    gw: &'g Gateway,
    doc: Value,
    key: String,
    checked: Vec<(String, String)>,
}

impl Api<'_> {
    /// Calls `method url` (with `path` its documented template), checks the answer against
    /// the document, and returns it.
    async fn call(&mut self, method: Method, path: &str, url: &str, body: Option<Value>, status: u16) -> Value {
        let mut request = self.gw.http.request(method.clone(), format!("{}{url}", self.gw.url)).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status().as_u16(), status, "{method} {url}");
        let value: Value = answer.json().await.unwrap();
        let schema = schema_for(&self.doc, &method, path, status);
        if let Err(e) = check(&self.doc, schema, &value, &format!("{method} {url}")) {
            panic!("{e}\nanswer: {value}\nschema: {schema}");
        }
        self.checked.push((method.to_string(), path.to_owned()));
        value
    }
}

#[tokio::test]
async fn the_document_covers_every_route_and_real_answers_match_it() {
    let gw = Gateway::start_with(tokenrouter_mock::MockConfig::default(), crate::instances_api::INSTANCES_EXTRA).await;
    gw.db.set_admin("acme", true).await.unwrap();
    let (mut admin, secret) = key_for(gw.account_id);
    admin.scope = KeyScope::Management;
    gw.add_key(&admin).await;
    let response = gw.http.get(format!("{}/api/openapi.json", gw.url)).send().await.unwrap();
    assert_eq!(response.status(), 200, "no credentials needed");
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for scheme in ["session", "management_key"] {
        assert!(doc["components"]["securitySchemes"][scheme].is_object(), "{scheme}");
    }
    assert!(doc["info"]["description"].as_str().unwrap().contains("UTC"));
    let chat = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("hello there")})).await;
    gw.usage(&crate::harness::request_id(&chat)).await;

    // The checker itself refuses drift: an undocumented field, a wrong type, a missing field.
    let me_schema = schema_for(&doc, &Method::GET, "/api/me", 200).clone();
    let mut me: Value =
        gw.http.get(format!("{}/api/me", gw.url)).bearer_auth(&secret).send().await.unwrap().json().await.unwrap();
    assert!(check(&doc, &me_schema, &me, "me").is_ok());
    me["surprise"] = json!(1);
    assert!(check(&doc, &me_schema, &me, "me").unwrap_err().contains("undocumented"));
    me.as_object_mut().unwrap().remove("surprise");
    me["balance_nano_usd"] = json!("12");
    assert!(check(&doc, &me_schema, &me, "me").is_err());
    me.as_object_mut().unwrap().remove("balance_nano_usd");
    assert!(check(&doc, &me_schema, &me, "me").unwrap_err().contains("missing"));

    let mut api = Api { gw: &gw, doc, key: secret, checked: Vec::new() };
    let get = Method::GET;
    api.call(get.clone(), "/api/me", "/api/me", None, 200).await;
    let created = api
        .call(
            Method::POST,
            "/api/keys",
            "/api/keys",
            Some(json!({"name": "doc", "rpm": 5, "spend_limit_usd": "2"})),
            201,
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    api.call(get.clone(), "/api/keys", "/api/keys?limit=2", None, 200).await;
    api.call(Method::PATCH, "/api/keys/{id}", &format!("/api/keys/{id}"), Some(json!({"rpm": null, "tpm": 100})), 200)
        .await;
    api.call(Method::DELETE, "/api/keys/{id}", &format!("/api/keys/{id}"), None, 200).await;
    api.call(Method::DELETE, "/api/keys/{id}", &format!("/api/keys/{id}"), None, 409).await;
    api.call(Method::DELETE, "/api/keys/{id}", "/api/keys/nope", None, 404).await;
    api.call(Method::POST, "/api/keys", "/api/keys", Some(json!({"rpm": 0})), 400).await;
    for group in ["day", "hour", "model", "key", "provider"] {
        api.call(get.clone(), "/api/usage", &format!("/api/usage?group_by={group}"), None, 200).await;
    }
    api.call(get.clone(), "/api/usage", "/api/usage?group_by=week", None, 400).await;
    api.call(get.clone(), "/api/requests", "/api/requests", None, 200).await;
    api.call(get.clone(), "/api/ledger", "/api/ledger", None, 200).await;
    api.call(get.clone(), "/api/models", "/api/models", None, 200).await;
    api.call(Method::POST, "/api/redeem", "/api/redeem", Some(json!({"code": "trc-nope"})), 400).await;
    let codes = api
        .call(
            Method::POST,
            "/api/admin/redemption-codes",
            "/api/admin/redemption-codes",
            Some(json!({"amount_usd": "1", "count": 2})),
            201,
        )
        .await;
    let code = codes["codes"][0].as_str().unwrap().to_owned();
    api.call(Method::POST, "/api/redeem", "/api/redeem", Some(json!({"code": code})), 200).await;
    api.call(get.clone(), "/api/admin/accounts", "/api/admin/accounts", None, 200).await;
    let other = gw.db.create_account("other", tokenrouter_store::NanoUsd::ZERO).await.unwrap().id;
    let credit = format!("/api/admin/accounts/{other}/credit");
    api.call(
        Method::POST,
        "/api/admin/accounts/{id}/credit",
        &credit,
        Some(json!({"amount_usd": "3", "memo": "hi"})),
        201,
    )
    .await;
    let patch = format!("/api/admin/accounts/{other}");
    api.call(Method::PATCH, "/api/admin/accounts/{id}", &patch, Some(json!({"disabled": true})), 200).await;
    api.call(
        Method::PATCH,
        "/api/admin/accounts/{id}",
        "/api/admin/accounts/999999",
        Some(json!({"disabled": true})),
        404,
    )
    .await;
    // Started without a file: nothing to reload (409); with one: reloaded, then refused.
    api.call(Method::POST, "/api/admin/reload", "/api/admin/reload", None, 409).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    let text = crate::harness::config_toml(&gw.mock.base_url(), crate::instances_api::INSTANCES_EXTRA);
    std::fs::write(&file, &text).unwrap();
    gw.state.reload.remember(tokenrouter::reload::Source {
        path: Some(file.clone()),
        env: tokenrouter::config::Env::default(),
        redis_override: None,
    });
    let done = api.call(Method::POST, "/api/admin/reload", "/api/admin/reload", None, 200).await;
    assert_eq!(done["requires_restart"], json!([]));
    std::fs::write(&file, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let refused = api.call(Method::POST, "/api/admin/reload", "/api/admin/reload", None, 400).await;
    assert_eq!(refused["error"]["code"], "invalid_config");
    check_instance_routes(&mut api).await;
    check_job_routes(&mut api).await;

    // Every documented /api operation was exercised, and every /api route is documented.
    let doc = api.doc.clone();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let exercised = api.checked.iter().any(|(m, p)| m.eq_ignore_ascii_case(method) && p == path);
            assert!(exercised || path == "/auth/logout", "{method} {path} documented but not checked");
        }
    }
    let routes = [
        "/api/me",
        "/api/keys",
        "/api/keys/{id}",
        "/api/usage",
        "/api/requests",
        "/api/ledger",
        "/api/models",
        "/api/redeem",
        "/api/admin/accounts",
        "/api/admin/accounts/{id}",
        "/api/admin/accounts/{id}/credit",
        "/api/admin/redemption-codes",
        "/api/admin/reload",
        "/api/instances",
        "/api/instances/{id}",
        "/api/instances/{id}/rotate-key",
        "/api/instances/{id}/processing-units",
        "/api/instances/{id}/processing-units/{unit}",
        "/api/instances/{id}/software",
        "/api/instances/{id}/software/{software}",
        "/api/admin/instances",
        "/api/admin/instances/{id}",
        "/api/jobs",
        "/api/jobs/{id}",
        "/auth/logout",
    ];
    for route in routes {
        assert!(doc["paths"][route].is_object(), "{route} is not documented");
    }
}

/// The job routes (§8), each answer checked against the document: a job that completed,
/// one that failed, the list, and the refusals (a finished job's cancel, unknown ids).
async fn check_job_routes(api: &mut Api<'_>) {
    let mut ids = Vec::new();
    for model in ["gpt-4o-mini", "dead-model"] {
        let body = json!({"model": model, "messages": user("queue me"), "max_tokens": 10});
        let response = api
            .gw
            .http
            .post(format!("{}/v1/chat/completions", api.gw.url))
            .bearer_auth(&api.gw.key)
            .header("prefer", "respond-async")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let job: Value = response.json().await.unwrap();
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let job = api.call(Method::GET, "/api/jobs/{id}", &format!("/api/jobs/{id}"), None, 200).await;
            if !matches!(job["status"].as_str(), Some("queued" | "in_progress")) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{job}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let list = api.call(Method::GET, "/api/jobs", "/api/jobs?limit=1", None, 200).await;
    assert!(list["next"].is_string(), "{list}");
    api.call(Method::GET, "/api/jobs", "/api/jobs?status=sometimes", None, 400).await;
    api.call(Method::DELETE, "/api/jobs/{id}", &format!("/api/jobs/{}", ids[0]), None, 409).await;
    api.call(Method::DELETE, "/api/jobs/{id}", "/api/jobs/job_nope", None, 404).await;
    api.call(Method::GET, "/api/jobs/{id}", "/api/jobs/job_nope", None, 404).await;
}

/// The instance routes (§7), each answer checked against the document.
async fn check_instance_routes(api: &mut Api<'_>) {
    let (get, post, patch, delete) = (Method::GET, Method::POST, Method::PATCH, Method::DELETE);
    let body = json!({"name": "doc", "base_url": "http://127.0.0.1:9/v1", "models": [{"id": "community-llama"}]});
    let created = api.call(post.clone(), "/api/instances", "/api/instances", Some(body), 201).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let one = format!("/api/instances/{id}");
    let bad = json!({"name": "doc", "base_url": "ftp://127.0.0.1/v1", "models": [{"id": "community-llama"}]});
    api.call(post.clone(), "/api/instances", "/api/instances", Some(bad), 400).await;
    api.call(get.clone(), "/api/instances", "/api/instances", None, 200).await;
    api.call(get.clone(), "/api/instances/{id}", &one, None, 200).await;
    api.call(get.clone(), "/api/instances/{id}", "/api/instances/inst_nope", None, 404).await;
    api.call(patch.clone(), "/api/instances/{id}", &one, Some(json!({"region": "eu"})), 200).await;
    api.call(patch.clone(), "/api/instances/{id}", &one, Some(json!({"models": []})), 400).await;
    api.call(post.clone(), "/api/instances/{id}/rotate-key", &format!("{one}/rotate-key"), None, 200).await;
    let units = format!("{one}/processing-units");
    let gpu = json!({"kind": "gpu", "vendor": "NVIDIA", "model": "H100", "memory_gb": 80, "count": 8});
    let unit = api.call(post.clone(), "/api/instances/{id}/processing-units", &units, Some(gpu), 201).await;
    api.call(post.clone(), "/api/instances/{id}/processing-units", &units, Some(json!({"kind": "fpga"})), 400).await;
    api.call(get.clone(), "/api/instances/{id}/processing-units", &units, None, 200).await;
    let unit = format!("{units}/{}", unit["id"].as_str().unwrap());
    let unit_path = "/api/instances/{id}/processing-units/{unit}";
    api.call(patch.clone(), unit_path, &unit, Some(json!({"count": 4})), 200).await;
    api.call(delete.clone(), unit_path, &unit, None, 200).await;
    let software = format!("{one}/software");
    let sw = json!({"name": "vLLM", "version": "0.6.3"});
    let sw = api.call(post.clone(), "/api/instances/{id}/software", &software, Some(sw), 201).await;
    api.call(get.clone(), "/api/instances/{id}/software", &software, None, 200).await;
    let sw = format!("{software}/{}", sw["id"].as_str().unwrap());
    let sw_path = "/api/instances/{id}/software/{software}";
    api.call(patch.clone(), sw_path, &sw, Some(json!({"version": "0.7"})), 200).await;
    api.call(delete.clone(), sw_path, &sw, None, 200).await;
    let admin = format!("/api/admin/instances/{id}");
    api.call(patch.clone(), "/api/admin/instances/{id}", &admin, Some(json!({"disabled": true})), 200).await;
    api.call(get.clone(), "/api/admin/instances", "/api/admin/instances?limit=5", None, 200).await;
    api.call(delete.clone(), "/api/instances/{id}", &one, None, 200).await;
    api.call(delete, "/api/instances/{id}", &one, None, 404).await;
}
