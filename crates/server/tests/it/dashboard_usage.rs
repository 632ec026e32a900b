//! The usage page and the request log: their totals and CSV equal `/api/usage` exactly,
//! the log lists real requests, filters and pages by cursor, and a request's detail is
//! its account's alone.

use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE};
use serde_json::{Value, json};
use tokenrouter_store::NanoUsd;

use crate::harness::{Gateway, request_id, user};

/// The text inside the element with this id (no nested tags).
fn text_of(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
    let open = start + html[start..].find('>').unwrap() + 1;
    let close = open + html[open..].find('<').unwrap();
    html[open..close].to_owned()
}

/// Every `data-request-id` of a log page, in order.
fn logged_ids(html: &str) -> Vec<String> {
    html.match_indices("data-request-id=\"")
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// The href of the link whose text is `label` (entities decoded).
fn link(html: &str, label: &str) -> Option<String> {
    let end = html.find(&format!(">{label}</a>"))?;
    let start = html[..end].rfind("href=\"")? + "href=\"".len();
    let href = &html[start..end];
    Some(href[..href.find('"')?].replace("&amp;", "&"))
}

struct Browser<'a> {
    gw: &'a Gateway,
    cookie: String,
}

impl Browser<'_> {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.gw.http.get(format!("{}{path}", self.gw.url)).header(COOKIE, &self.cookie).send().await.unwrap()
    }

    async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.unwrap()
    }

    async fn api(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    }
}

/// Four answered requests (two models) and one that failed upstream; their ids, oldest first.
async fn traffic(gw: &Gateway) -> Vec<String> {
    let mut ids = Vec::new();
    for (model, text) in
        [("gpt-4o-mini", "one two"), ("slow-model", "three"), ("gpt-4o-mini", "four five six"), ("gpt-4o-mini", "x")]
    {
        let answer = gw.chat(json!({"model": model, "messages": user(text)})).await;
        assert_eq!(answer.status(), 200);
        ids.push(request_id(&answer));
    }
    let failed = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("x"), "mock": {"fault": "500"}})).await;
    assert_eq!(failed.status(), 502);
    ids.push(request_id(&failed));
    for id in &ids {
        gw.usage(id).await;
    }
    gw.state.usage.flush().await;
    ids
}

#[tokio::test]
async fn the_usage_page_and_its_csv_equal_the_api_exactly() {
    let gw = Gateway::start().await;
    let browser = Browser { cookie: gw.session(gw.account_id).await, gw: &gw };
    traffic(&gw).await;
    for group in ["day", "hour", "model", "key", "provider"] {
        let api = browser.api(&format!("/api/usage?group_by={group}")).await;
        let rows = api["data"].as_array().unwrap();
        assert!(!rows.is_empty(), "{group}");
        let requests: i64 = rows.iter().map(|r| r["requests"].as_i64().unwrap()).sum();
        let tokens: i64 =
            rows.iter().map(|r| r["prompt_tokens"].as_i64().unwrap() + r["completion_tokens"].as_i64().unwrap()).sum();
        let cost: i64 = rows.iter().map(|r| NanoUsd::parse_usd(r["cost_usd"].as_str().unwrap()).unwrap().0).sum();
        assert!(cost > 0);
        let html = browser.page(&format!("/dashboard/usage?group_by={group}")).await;
        assert_eq!(text_of(&html, "usage-total-requests"), requests.to_string(), "{group}");
        assert_eq!(text_of(&html, "usage-total-requests"), "5");
        assert_eq!(text_of(&html, "usage-total-tokens").replace(',', ""), tokens.to_string(), "{group}");
        assert_eq!(text_of(&html, "usage-total-cost"), format!("${}", NanoUsd(cost).to_decimal_string()), "{group}");
        for row in rows {
            assert!(html.contains(&format!("data-bucket=\"{}\"", row["bucket"].as_str().unwrap())), "{group}");
        }
        if group == "day" || group == "hour" {
            assert!(html.contains("<svg class=\"chart\""), "{group} has charts");
        }
        // The CSV, row for row.
        let csv = browser.get(&format!("/dashboard/usage.csv?group_by={group}")).await;
        assert_eq!(csv.status(), 200);
        assert_eq!(csv.headers()[CONTENT_TYPE], "text/csv; charset=utf-8");
        let disposition = csv.headers()[CONTENT_DISPOSITION].to_str().unwrap().to_owned();
        assert!(disposition.starts_with("attachment; filename=\"usage-") && disposition.ends_with(".csv\""));
        let text = csv.text().await.unwrap();
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next(), Some("bucket,requests,prompt_tokens,completion_tokens,cost_usd"));
        let expected: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{},{},{},{},{}",
                    r["bucket"].as_str().unwrap(),
                    r["requests"],
                    r["prompt_tokens"],
                    r["completion_tokens"],
                    r["cost_usd"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(lines.filter(|l| !l.is_empty()).collect::<Vec<_>>(), expected, "{group}");
    }
    // Keys are named beside their ids.
    let by_key = browser.page("/dashboard/usage?group_by=key").await;
    assert!(by_key.contains(&gw.key_id) && by_key.contains(">test<"), "the key's name");
    // The form's own bounds, and a link to the same report as CSV.
    let today = &browser.api("/api/usage").await["data"][0]["bucket"].as_str().unwrap()[..10].to_owned();
    let html = browser.page(&format!("/dashboard/usage?from={today}&to={today}&group_by=model")).await;
    assert_eq!(text_of(&html, "usage-total-requests"), "5");
    assert_eq!(
        link(&html, "Download CSV").unwrap(),
        format!("/dashboard/usage.csv?from={today}&to={today}&group_by=model")
    );
    let csv = browser.get(&format!("/dashboard/usage.csv?from={today}&to={today}")).await;
    assert_eq!(
        csv.headers()[CONTENT_DISPOSITION],
        format!("attachment; filename=\"usage-{today}-{today}.csv\"").as_str()
    );
    // Empty fields are the defaults; bad ones are explained on the page.
    browser.page("/dashboard/usage?from=&to=&group_by=").await;
    for (query, words) in
        [("group_by=week", "group_by"), ("from=yesterday", "from"), ("from=2026-12-02&to=2026-12-01", "before")]
    {
        let response = browser.get(&format!("/dashboard/usage?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let html = response.text().await.unwrap();
        assert!(html.contains("role=\"alert\"") && html.contains(words), "{query}: a readable reason");
        assert!(html.contains(">Show</button>"), "the form stays to fix it");
    }
}

#[tokio::test]
async fn the_request_log_filters_pages_by_cursor_and_opens_a_request() {
    let gw = Gateway::start().await;
    let browser = Browser { cookie: gw.session(gw.account_id).await, gw: &gw };
    let ids = traffic(&gw).await;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    let html = browser.page("/dashboard/requests").await;
    assert_eq!(logged_ids(&html), newest_first);
    let api = browser.api("/api/requests").await;
    let api_ids: Vec<&str> = api["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(logged_ids(&html), api_ids, "the rows of /api/requests");
    for label in [">Model", ">Key", ">Status", ">Filter</button>"] {
        assert!(html.contains(label), "{label}");
    }
    assert!(html.contains(&format!("href=\"/dashboard/requests/{}\"", ids[0])));
    assert!(link(&html, "Older").is_none(), "one page holds them all");

    // Filters: by model, by status, by key.
    let slow = browser.page("/dashboard/requests?model=slow-model&key_id=&status=").await;
    assert_eq!(logged_ids(&slow), [ids[1].clone()]);
    let failed = browser.page("/dashboard/requests?model=&status=502").await;
    assert_eq!(logged_ids(&failed), [ids[4].clone()]);
    assert!(failed.contains("<option value=\"502\" selected>"), "the filter is kept");
    let ok_mini = browser.page("/dashboard/requests?model=gpt-4o-mini&status=200").await;
    assert_eq!(logged_ids(&ok_mini), [ids[3].clone(), ids[2].clone(), ids[0].clone()]);
    let by_key = browser.page(&format!("/dashboard/requests?key_id={}", gw.key_id)).await;
    assert_eq!(logged_ids(&by_key).len(), 5);
    assert_eq!(logged_ids(&browser.page("/dashboard/requests?key_id=tr_none").await).len(), 0);
    let bad = browser.get("/dashboard/requests?status=abc").await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("must be an HTTP status"), "a readable reason");

    // Pages of two by cursor, filters kept, until the oldest; "Newest" goes back.
    let mut seen = Vec::new();
    let mut path = "/dashboard/requests?limit=2".to_owned();
    loop {
        let html = browser.page(&path).await;
        seen.extend(logged_ids(&html));
        assert!(!path.contains("before=") || link(&html, "Newest").as_deref() == Some("/dashboard/requests?limit=2"));
        match link(&html, "Older") {
            Some(next) => {
                assert!(next.contains("limit=2&before="), "{next}");
                path = next;
            }
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
    let two = browser.page("/dashboard/requests?model=gpt-4o-mini&limit=2").await;
    let older = link(&two, "Older").unwrap();
    assert!(older.starts_with("/dashboard/requests?model=gpt-4o-mini&limit=2&before="), "{older}");
    assert_eq!(logged_ids(&browser.page(&older).await), [ids[2].clone(), ids[0].clone()]);

    // A request's detail: its numbers as the API gives them.
    let row = api["data"].as_array().unwrap().iter().find(|r| r["id"] == ids[2].as_str()).unwrap().clone();
    let detail = browser.page(&format!("/dashboard/requests/{}", ids[2])).await;
    assert_eq!(text_of(&detail, "request-id"), ids[2]);
    assert_eq!(text_of(&detail, "request-cost"), format!("${}", row["cost_usd"].as_str().unwrap()));
    assert_eq!(text_of(&detail, "request-latency"), format!("{} ms", row["latency_ms"]));
    for fact in ["Time to first byte", "Attempts", "Provider", "chat.completions", "gpt-4o-mini", &gw.key_id] {
        assert!(detail.contains(fact), "{fact}");
    }
    let failed = browser.page(&format!("/dashboard/requests/{}", ids[4])).await;
    assert!(failed.contains("502"));

    // Unknown, or another account's: not found.
    let other = gw.db.create_account("other", NanoUsd::ZERO).await.unwrap();
    let stranger = Browser { cookie: gw.session(other.id).await, gw: &gw };
    for (who, id) in [(&browser, "req_unknown"), (&stranger, ids[2].as_str())] {
        let response = who.get(&format!("/dashboard/requests/{id}")).await;
        assert_eq!(response.status(), 404, "{id}");
        assert!(response.text().await.unwrap().contains("belongs to another account"));
    }
    assert!(logged_ids(&stranger.page("/dashboard/requests").await).is_empty());
    assert_eq!(text_of(&stranger.page("/dashboard/usage").await, "usage-total-requests"), "0");
}
