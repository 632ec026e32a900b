//! `GET /api/admin/instances`: every account's instances with their owners, page by page,
//! for admins only; never an instance key.

use reqwest::Method;
use serde_json::Value;
use tokenrouter_mock::MockConfig;
use tokenrouter_store::{InstanceModel, KeyScope, NanoUsd, NewInstance};

use crate::harness::{Gateway, key_for};
use crate::instances_api::INSTANCES_EXTRA;

async fn management_key(gw: &Gateway, account_id: i64) -> String {
    let (mut key, secret) = key_for(account_id);
    key.scope = KeyScope::Management;
    gw.add_key(&key).await;
    secret
}

async fn get(gw: &Gateway, key: &str, path: &str) -> (u16, Value) {
    let answer = gw.http.request(Method::GET, format!("{}{path}", gw.url)).bearer_auth(key).send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

#[tokio::test]
async fn admins_list_every_accounts_instances_and_no_one_else_does() {
    let gw = Gateway::start_with(MockConfig::default(), INSTANCES_EXTRA).await;
    let other = gw.db.create_account("other", NanoUsd::ZERO).await.unwrap().id;
    let mut created = Vec::new();
    for (i, account) in [gw.account_id, other, gw.account_id, other, other].into_iter().enumerate() {
        let new = NewInstance {
            account_id: account,
            name: format!("box {i}"),
            // Port 9 on loopback: nothing listens, nothing leaves the machine.
            base_url: "http://127.0.0.1:9/v1".to_owned(),
            region: None,
            api_key: format!("sk-inst-secret-{i}"),
            models: vec![InstanceModel { model: "community-llama".into(), upstream_model: "meta/llama".into() }],
        };
        created.push(gw.db.create_instance(&new).await.unwrap());
    }

    let user = management_key(&gw, other).await;
    let (status, answer) = get(&gw, &user, "/api/admin/instances").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{answer}");
    let (status, _) = get(&gw, &gw.key, "/api/admin/instances").await;
    assert_eq!(status, 403, "an inference key");

    gw.db.set_admin("acme", true).await.unwrap();
    let admin = management_key(&gw, gw.account_id).await;
    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut path = "/api/admin/instances?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = get(&gw, &admin, &path).await;
        assert_eq!(status, 200, "{page}");
        let text = page.to_string();
        assert!(!text.contains("sk-inst-secret") && !text.contains("instance_key"), "no key listed: {text}");
        for instance in page["data"].as_array().unwrap() {
            assert_eq!(instance["models"][0]["id"], "community-llama", "{instance}");
            assert!(instance["status_detail"].is_string() && instance["admin_disabled"] == false, "{instance}");
            seen.push((instance["id"].as_str().unwrap().to_owned(), instance["account_id"].as_i64().unwrap()));
        }
        pages += 1;
        match page["next"].as_str() {
            Some(next) => path = format!("/api/admin/instances?limit=2&before={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<(String, i64)> = created.iter().rev().map(|i| (i.id.clone(), i.account_id)).collect();
    assert_eq!(seen, expected, "every account's instances, newest first, each with its owner");

    let (status, answer) = get(&gw, &admin, "/api/admin/instances?before=nonsense").await;
    assert_eq!((status, answer["error"]["param"].as_str()), (400, Some("before")), "{answer}");
    let (status, answer) = get(&gw, &admin, "/api/admin/instances?limit=1000").await;
    assert_eq!((status, answer["error"]["param"].as_str()), (400, Some("limit")), "{answer}");
}
