//! The prober's pure parts: reading `/models`, the verdict of each step, lease timing.

use http::StatusCode;
use serde_json::json;

use super::verdict::{self, Failed, Reply};
use super::*;

fn reply(status: u16, body: serde_json::Value) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        content_type: Some("application/json".into()),
        location: None,
        body: Bytes::from(body.to_string()),
    }
}

fn html(status: u16) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        content_type: Some("text/html".into()),
        location: None,
        body: Bytes::from_static(b"<!DOCTYPE html><html><body>It works!</body></html>"),
    }
}

fn status_of(result: Result<(), Failed>) -> Option<ProbeStatus> {
    result.err().map(|f| f.status)
}

#[test]
fn model_lists_are_read_from_data_ids() {
    let body = json!({"object": "list", "data": [{"id": "a"}, {"id": "b", "object": "model"}, {"x": 1}]});
    assert_eq!(listed_models(body.to_string().as_bytes()).unwrap(), vec!["a", "b"]);
    assert!(listed_models(b"<html>").is_err());
    assert!(listed_models(br#"{"models": []}"#).is_err());
    let listed = vec!["a".to_owned(), "b".to_owned()];
    assert_eq!(missing_model(&listed, &["a", "b"]), None);
    assert_eq!(missing_model(&listed, &["a", "c", "d"]), Some("c"));
}

#[test]
fn ownership_needs_a_wrong_key_refused() {
    assert_eq!(verdict::wrong_key(&reply(401, json!({"error": {"message": "bad key"}}))), Ok(()));
    assert_eq!(verdict::wrong_key(&reply(403, json!({}))), Ok(()));
    let open = verdict::wrong_key(&reply(200, json!({"data": []}))).unwrap_err();
    assert_eq!(open.status, ProbeStatus::Mismatch);
    assert!(open.detail.contains("does not check the instance key"), "{}", open.detail);
    assert!(open.detail.contains("ownership cannot be proven"), "{}", open.detail);
    assert_eq!(status_of(verdict::wrong_key(&reply(500, json!({})))), Some(ProbeStatus::Offline));
    assert_eq!(status_of(verdict::wrong_key(&reply(503, json!({})))), Some(ProbeStatus::Offline));
    let page = verdict::wrong_key(&html(200)).unwrap_err();
    assert_eq!(page.status, ProbeStatus::Offline);
    assert!(page.detail.contains("HTML"), "{}", page.detail);
    let missing = verdict::wrong_key(&reply(404, json!({"error": {"message": "no route"}}))).unwrap_err();
    assert_eq!(missing.status, ProbeStatus::Mismatch);
    assert!(missing.detail.contains("404") && missing.detail.contains("/v1"), "{}", missing.detail);
    let mut redirect = reply(302, json!({}));
    redirect.location = Some("http://10.0.0.1/".into());
    let moved = verdict::wrong_key(&redirect).unwrap_err();
    assert_eq!(moved.status, ProbeStatus::Mismatch);
    assert!(moved.detail.contains("redirect"), "{}", moved.detail);
}

#[test]
fn the_listing_must_name_every_upstream_model() {
    let listing = reply(200, json!({"data": [{"id": "llama-8b"}, {"id": "qwen"}]}));
    assert_eq!(verdict::listing(&listing, &["llama-8b"]), Ok(()));
    let missing = verdict::listing(&listing, &["llama-8b", "mistral-7b"]).unwrap_err();
    assert_eq!(missing.status, ProbeStatus::Mismatch);
    assert!(
        missing.detail.contains("\"mistral-7b\"") && missing.detail.contains("llama-8b, qwen"),
        "{}",
        missing.detail
    );
    let refused = verdict::listing(&reply(401, json!({})), &["a"]).unwrap_err();
    assert_eq!(refused.status, ProbeStatus::Mismatch);
    assert!(refused.detail.contains("refused the instance key"), "{}", refused.detail);
    assert_eq!(status_of(verdict::listing(&html(200), &["a"])), Some(ProbeStatus::Offline));
    assert_eq!(status_of(verdict::listing(&reply(200, json!({"no": "data"})), &["a"])), Some(ProbeStatus::Mismatch));
    assert_eq!(status_of(verdict::listing(&reply(502, json!({})), &["a"])), Some(ProbeStatus::Offline));
}

#[test]
fn the_canary_must_answer_with_the_expected_prompt_tokens() {
    let answer = |prompt_tokens: u64| {
        reply(
            200,
            json!({"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "OK"}}],
                   "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1}}),
        )
    };
    assert_eq!(verdict::canary(&answer(11), "m", None), Ok(()));
    assert_eq!(verdict::canary(&answer(11), "m", Some(11)), Ok(()));
    let wrong = verdict::canary(&answer(12), "m", Some(11)).unwrap_err();
    assert_eq!(wrong.status, ProbeStatus::Mismatch);
    assert!(wrong.detail.contains("12") && wrong.detail.contains("11"), "{}", wrong.detail);
    let no_usage = reply(200, json!({"object": "chat.completion", "choices": [{"index": 0}]}));
    assert_eq!(status_of(verdict::canary(&no_usage, "m", Some(3))), Some(ProbeStatus::Mismatch));
    assert_eq!(verdict::canary(&no_usage, "m", None), Ok(()));
    let not_chat = reply(200, json!({"object": "text_completion", "choices": [{"text": "x"}]}));
    assert_eq!(status_of(verdict::canary(&not_chat, "m", None)), Some(ProbeStatus::Mismatch));
    assert_eq!(status_of(verdict::canary(&reply(200, json!({})), "m", None)), Some(ProbeStatus::Mismatch));
    let unknown = verdict::canary(&reply(404, json!({"error": {"message": "model not found"}})), "m", None);
    assert!(unknown.unwrap_err().detail.contains("model not found"));
    assert_eq!(status_of(verdict::canary(&reply(500, json!({})), "m", None)), Some(ProbeStatus::Offline));
    assert_eq!(status_of(verdict::canary(&html(200), "m", None)), Some(ProbeStatus::Offline));
}

#[test]
fn quoted_server_messages_are_clipped_and_cleaned() {
    let long = "x\n".repeat(500);
    let failed = verdict::listing(&reply(400, json!({"error": {"message": long}})), &["a"]).unwrap_err();
    assert!(failed.detail.len() < 400, "{}", failed.detail);
    assert!(!failed.detail.contains('\n'));
}

#[test]
fn a_lease_lasts_at_least_the_interval_and_a_probe_ends_before_it() {
    let early = Lease::at(10_020, Duration::from_secs(1), 0);
    assert_eq!((early.now, early.secs, early.until_ms), (10, 1, 11_000));
    // Late in a second the store's whole seconds would cut it short: one more second.
    let late = Lease::at(10_900, Duration::from_secs(1), 0);
    assert_eq!((late.now, late.secs, late.until_ms), (10, 2, 12_000));
    let jittered = Lease::at(10_000, Duration::from_secs(30), 3);
    assert_eq!(jittered.secs, 33);
    let past = Lease { now: 0, secs: 1, until_ms: 1_000 };
    assert_eq!(past.remaining(), Duration::ZERO);
    let far = Lease { now: 0, secs: 1, until_ms: clock::now_unix_ms() + 3_600_000 };
    assert_eq!(far.remaining(), PROBE_DEADLINE);
    for _ in 0..100 {
        assert!(jitter(Duration::from_secs(30)) <= 3);
        assert_eq!(jitter(Duration::from_secs(1)), 0);
    }
}

#[test]
fn connection_failures_read_well() {
    let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "os error 111");
    assert_eq!(describe(&refused), "connection refused (is the server running?)");
    let other = std::io::Error::other("boom");
    assert!(describe(&other).contains("boom"));
}
