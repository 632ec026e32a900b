//! The instances pages: the owner sees each instance (name, status, models, 24 h stats,
//! the register form and the one-time key dialog) but never an instance key; another
//! account's instance is a 404 page; without a session the browser goes to sign in; the
//! Models page counts the online instances serving each model. Every base URL here is
//! loopback (`allow_private_addresses = true`): nothing is dialed anywhere else.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION};
use tokenrouter_core::NanoUsd;
use tokenrouter_core::Usage;
use tokenrouter_mock::MockConfig;
use tokenrouter_store::{
    Earning, InstanceModel, NewInstance, NewProcessingUnit, NewSoftware, ProbeResult, ProbeStatus, UsageRecord,
    UsageSource, provider_name,
};

use crate::harness::Gateway;

const EXTRA: &str = r#"
[instances]
allow_private_addresses = true
probe_interval_secs = 3600

[[models]]
id = "community-llama"
context_window = 8000
max_output_tokens = 1000
input_price = 1
output_price = 2
instances = true
deployments = []
"#;

const OWN_KEY: &str = "sk-inst-ownsecretownsecretownsecretownsecret0";
const OTHER_KEY: &str = "sk-inst-theirsecrettheirsecrettheirsecret000";

async fn open(gw: &Gateway, cookie: &str, path: &str) -> (u16, String) {
    let response = gw.http.get(format!("{}{path}", gw.url)).header(COOKIE, cookie).send().await.unwrap();
    let status = response.status().as_u16();
    let csp = response.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
    (status, response.text().await.unwrap())
}

/// Registers an instance of `owner` (on a loopback port where nothing listens), keeping
/// the gateway's prober off it.
async fn register(gw: &Gateway, owner: i64, name: &str, key: &str) -> String {
    let new = NewInstance {
        account_id: owner,
        name: name.into(),
        base_url: "http://127.0.0.1:9/v1".into(),
        region: Some("eu-west".into()),
        api_key: key.into(),
        models: vec![InstanceModel { model: "community-llama".into(), upstream_model: "meta/llama-up".into() }],
    };
    let instance = gw.db.create_instance(&new).await.unwrap();
    let now = tokenrouter_core::clock::now_unix();
    let leased = gw.db.take_probe_lease("test", now, 3600, 100).await.unwrap();
    if !leased.iter().any(|i| i.id == instance.id) {
        // The gateway's prober got there first: let its verdict land.
        let deadline = Instant::now() + Duration::from_secs(3);
        while gw.db.instance_by_id(&instance.id).await.unwrap().unwrap().last_probe_at.is_none() {
            assert!(Instant::now() < deadline, "the prober's probe never landed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    instance.id
}

async fn set_online(gw: &Gateway, id: &str) {
    let revision = gw.db.instance_by_id(id).await.unwrap().unwrap().revision;
    let verdict = ProbeResult {
        revision,
        status: ProbeStatus::Online,
        detail: "answers with the key".into(),
        latency_ms: Some(42),
        at: tokenrouter_core::clock::now_unix(),
    };
    assert!(gw.db.record_probe(id, &verdict).await.unwrap());
}

/// The table row whose opening tag holds `attr`.
fn row<'a>(html: &'a str, attr: &str) -> &'a str {
    let start = html.find(attr).unwrap_or_else(|| panic!("no {attr}"));
    let rest = &html[start..];
    &rest[..rest.find("</tr>").unwrap()]
}

#[tokio::test]
async fn the_instances_page_shows_the_owners_instances_and_never_a_key() {
    let gw = Gateway::start_with(MockConfig::default(), EXTRA).await;
    let cookie = gw.session(gw.account_id).await;
    let (status, html) = open(&gw, &cookie, "/dashboard/instances").await;
    assert_eq!(status, 200);
    assert!(html.contains("No instances yet."), "{html}");

    let id = register(&gw, gw.account_id, "garage-4090", OWN_KEY).await;
    set_online(&gw, &id).await;
    let other = gw.db.create_account("someone-else", NanoUsd(0)).await.unwrap();
    let theirs = register(&gw, other.id, "not-yours", OTHER_KEY).await;

    let (status, html) = open(&gw, &cookie, "/dashboard/instances").await;
    assert_eq!(status, 200);
    let mine = row(&html, &format!("data-instance-id=\"{id}\""));
    for shown in [
        "garage-4090",
        "eu-west",
        "data-status=\"online\"",
        "community-llama",
        "meta/llama-up",
        "42 ms",
        "<time",
        "$0",
        "100.0%",
        &format!("href=\"/dashboard/instances/{id}\""),
        &format!("data-api=\"PATCH /api/instances/{id}\""),
        &format!("data-api=\"POST /api/instances/{id}/rotate-key\""),
        &format!("data-api=\"DELETE /api/instances/{id}\""),
        ">Disable<",
    ] {
        assert!(mine.contains(shown), "{shown} missing from {mine}");
    }
    // Never a key; never another account's instance.
    assert!(!html.contains(OWN_KEY) && !html.contains(OTHER_KEY));
    assert!(!html.contains("not-yours") && !html.contains(&theirs));
    // The register form: labelled fields, the models open to instances as a hint, the
    // one-time key dialog with the start commands, a privacy note, the page's script.
    for label in ["Name", "Base URL", "Models", "Region"] {
        assert!(html.contains(&format!("\">{label}</label>")), "no label {label}");
    }
    for name in ["name=\"name\"", "name=\"base_url\"", "name=\"models\"", "name=\"region\""] {
        assert!(html.contains(name), "no field {name}");
    }
    assert!(html.contains("http://203.0.113.7:8000/v1"));
    assert!(html.contains("Open to instances: community-llama."));
    for id in ["id=\"register-instance\"", "id=\"new-instance-key\"", "id=\"start-vllm\"", "id=\"start-llama\""] {
        assert!(html.contains(id), "no {id}");
    }
    assert!(html.contains(">Copy key<") && html.contains("only time the key is shown"));
    assert!(html.contains("can read the prompts"));
    assert!(
        html.contains("/assets/instances.") && html.contains("href=\"/dashboard/instances\" aria-current=\"page\"")
    );

    // Disabled by its owner: the badge says so and the button turns it back on.
    let changes = tokenrouter_store::InstanceChanges { enabled: Some(false), ..Default::default() };
    gw.db.update_instance(gw.account_id, &id, &changes).await.unwrap().unwrap();
    let (_, html) = open(&gw, &cookie, "/dashboard/instances").await;
    let mine = row(&html, &format!("data-instance-id=\"{id}\""));
    assert!(mine.contains("data-status=\"disabled\"") && mine.contains(">Enable<"), "{mine}");
}

#[tokio::test]
async fn the_detail_page_shows_everything_but_the_key_and_only_to_its_owner() {
    let gw = Gateway::start_with(MockConfig::default(), EXTRA).await;
    let cookie = gw.session(gw.account_id).await;
    let id = register(&gw, gw.account_id, "rack-2", OWN_KEY).await;
    let unit = NewProcessingUnit {
        kind: "gpu".into(),
        vendor: "NVIDIA".into(),
        model: "RTX 4090".into(),
        memory_mb: 24_000,
        count: 2,
    };
    let unit = gw.db.add_processing_unit(gw.account_id, &id, &unit).await.unwrap().unwrap();
    let software = NewSoftware { name: "vllm".into(), version: "0.6.3".into() };
    let software = gw.db.add_software(gw.account_id, &id, &software).await.unwrap().unwrap();

    // Two requests it served: 3 days ago and now; the owner earns 80% of each charge.
    let now = tokenrouter_core::clock::now_unix();
    let served = |n: usize, at: i64, cost: i64| UsageRecord {
        request_id: format!("req_served{n}"),
        key_id: gw.key_id.clone(),
        account_id: gw.account_id,
        model: "community-llama".into(),
        provider: provider_name(&id),
        upstream_model: "meta/llama-up".into(),
        endpoint: "/v1/chat/completions".into(),
        stream: false,
        status: 200,
        usage: Usage { prompt_tokens: 10, completion_tokens: 5, ..Usage::default() },
        cost: NanoUsd(cost),
        usage_source: UsageSource::Upstream,
        client_disconnected: false,
        latency_ms: 5,
        created_at: at,
        error_code: None,
        ttfb_ms: Some(2),
        earning: Some(Earning { account_id: gw.account_id, share_ppb: 800_000_000 }),
    };
    gw.db.record_usage(&[served(1, now - 3 * 86_400, 1_000), served(2, now, 2_500)]).await.unwrap();

    let (status, html) = open(&gw, &cookie, &format!("/dashboard/instances/{id}")).await;
    assert_eq!(status, 200);
    let day = |back: i64| {
        let t = time::OffsetDateTime::from_unix_timestamp(now - back * 86_400).unwrap();
        t.date().to_string()[5..].to_owned()
    };
    for shown in [
        // 24 h: the second request; 30 days: both, each on its own day.
        "id=\"instance-requests\">1<",
        "id=\"instance-earnings\">$0.000002<",
        "$0.0000028 in all",
        &format!("<title>{}: Earnings $0.000002</title>", day(0)),
        &format!("<title>{}: Earnings $0.0000008</title>", day(3)),
        &format!("<title>{}: Requests 1</title>", day(3)),
        &format!("<title>{}: Earnings $0</title>", day(1)),
        "<h1>rack-2</h1>",
        "http://127.0.0.1:9/v1",
        "eu-west",
        "meta/llama-up",
        "Earnings per day",
        "Earnings per day, last 30 days",
        "Requests per day",
        "RTX 4090",
        "24 GB",
        "NVIDIA",
        "0.6.3",
        &format!("data-api=\"DELETE /api/instances/{id}/processing-units/{}\"", unit.id),
        &format!("data-api=\"DELETE /api/instances/{id}/software/{}\"", software.id),
        &format!("data-api=\"POST /api/instances/{id}/processing-units\""),
        &format!("data-api=\"POST /api/instances/{id}/software\""),
        &format!("data-api=\"POST /api/instances/{id}/rotate-key\""),
        "id=\"new-instance-key\"",
        "can read the prompts",
    ] {
        assert!(html.contains(shown), "{shown} missing");
    }
    assert!(!html.contains(OWN_KEY));
    for (name, kind) in [("kind", None), ("vendor", None), ("memory_gb", Some("int")), ("count", Some("int"))] {
        assert!(html.contains(&format!("name=\"{name}\"")), "no field {name}");
        if let Some(kind) = kind {
            assert!(html.contains(&format!("name=\"{name}\" type=\"number\"")) && html.contains(kind));
        }
    }

    // Another account's instance, or none at all: the 404 page.
    let other = gw.db.create_account("someone-else", NanoUsd(0)).await.unwrap();
    let theirs = register(&gw, other.id, "not-yours", OTHER_KEY).await;
    for path in [format!("/dashboard/instances/{theirs}"), "/dashboard/instances/inst_nope".to_owned()] {
        let (status, html) = open(&gw, &cookie, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("belongs to another account") && !html.contains("not-yours"), "{html}");
        assert!(!html.contains(OTHER_KEY));
    }
}

#[tokio::test]
async fn the_instances_pages_need_a_session() {
    let gw = Gateway::start_with(MockConfig::default(), EXTRA).await;
    let id = register(&gw, gw.account_id, "box", OWN_KEY).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for path in ["/dashboard/instances".to_owned(), format!("/dashboard/instances/{id}")] {
        let response = http.get(format!("{}{path}", gw.url)).send().await.unwrap();
        assert_eq!(response.status(), 302, "{path}");
        let expected = format!("/login?next={}", tokenrouter_core::form::form_encode(&path));
        assert_eq!(response.headers()[LOCATION], expected.as_str());
    }
}

#[tokio::test]
async fn the_models_page_counts_the_online_instances_of_each_model() {
    let gw = Gateway::start_with(MockConfig::default(), EXTRA).await;
    let cookie = gw.session(gw.account_id).await;
    let (_, html) = open(&gw, &cookie, "/dashboard/models").await;
    assert!(html.contains("scope=\"col\">Instances</th>"), "no Instances column");
    let configured = row(&html, "data-model-id=\"gpt-4o-mini\"");
    assert!(configured.contains("<td class=\"num instances\">0</td>"), "{configured}");

    let first = register(&gw, gw.account_id, "one", OWN_KEY).await;
    let other = gw.db.create_account("someone-else", NanoUsd(0)).await.unwrap();
    let second = register(&gw, other.id, "two", OTHER_KEY).await;
    set_online(&gw, &first).await;
    set_online(&gw, &second).await;
    // The routing table follows the store within a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, html) = open(&gw, &cookie, "/dashboard/models").await;
        assert_eq!(status, 200);
        if let Some(start) = html.find("data-model-id=\"community-llama\"") {
            let community = row(&html[start..], "data-model-id");
            if community.contains("<td class=\"num instances\">2</td>") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the Models page never counted 2 instances: {html}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
