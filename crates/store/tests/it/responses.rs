//! Kept responses: readable by their own account until they expire, then forgotten;
//! a conversation read back by walking its links — bounded, within one account, and
//! clear when an earlier response is gone.

use tokenrouter_store::{Db, KeptChain, KeptResponse, NanoUsd};

use crate::fixture::{Backend, TestResult, on_both_backends};

async fn a_kept_response_is_read_back_by_its_account_until_it_expires(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd(0)).await?;
    let other = db.create_account("other", NanoUsd(0)).await?;
    let kept = KeptResponse {
        id: "resp_1".to_owned(),
        account_id: acme.id,
        created_at: 1_000,
        expires_at: 2_000,
        previous_id: None,
        record: b"{\"items\":[]}".to_vec(),
        answer: b"{\"id\":\"resp_1\"}".to_vec(),
    };
    db.keep_response(&kept).await?;

    assert_eq!(db.kept_response("resp_1", acme.id, 1_999).await?, Some(kept.record.clone()));
    assert_eq!(db.kept_response("resp_1", other.id, 1_999).await?, None, "another account must not read it");
    assert_eq!(db.kept_response("resp_1", acme.id, 2_000).await?, None, "expired");
    assert_eq!(db.kept_response("resp_2", acme.id, 1_500).await?, None);

    // Keeping the same id again replaces the record.
    db.keep_response(&KeptResponse { record: b"{}".to_vec(), expires_at: 3_000, ..kept.clone() }).await?;
    assert_eq!(db.kept_response("resp_1", acme.id, 2_500).await?, Some(b"{}".to_vec()));

    assert_eq!(db.kept_answer("resp_1", acme.id, 2_500).await?, Some(kept.answer.clone()));
    assert_eq!(db.kept_answer("resp_1", other.id, 2_500).await?, None);

    assert_eq!(db.forget_responses(2_999).await?, 0);
    assert_eq!(db.forget_responses(3_000).await?, 1);
    assert_eq!(db.kept_response("resp_1", acme.id, 1_500).await?, None);

    db.keep_response(&kept).await?;
    assert!(!db.forget_response("resp_1", other.id).await?, "only its own account deletes it");
    assert!(db.forget_response("resp_1", acme.id).await?);
    assert!(!db.forget_response("resp_1", acme.id).await?);
    assert_eq!(db.kept_answer("resp_1", acme.id, 1_500).await?, None);
    Ok(())
}

/// Keeps `id` for `account_id`, continuing `previous`, until `expires_at`; its record is
/// its id.
async fn keep(db: &Db, account_id: i64, id: &str, previous: Option<&str>, expires_at: i64) -> TestResult {
    let kept = KeptResponse {
        id: id.to_owned(),
        account_id,
        created_at: 1_000,
        expires_at,
        previous_id: previous.map(str::to_owned),
        record: id.as_bytes().to_vec(),
        answer: format!("{{\"id\":\"{id}\"}}").into_bytes(),
    };
    Ok(db.keep_response(&kept).await?)
}

fn found(ids: &[&str]) -> KeptChain {
    KeptChain::Found(ids.iter().map(|id| id.as_bytes().to_vec()).collect())
}

async fn a_conversation_is_read_back_by_walking_its_links(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd(0)).await?.id;
    let other = db.create_account("other", NanoUsd(0)).await?.id;
    // A row without a link starts its conversation (as rows kept whole before chains do).
    keep(&db, acme, "resp_1", None, 2_000).await?;
    keep(&db, acme, "resp_2", Some("resp_1"), 3_000).await?;
    keep(&db, acme, "resp_3", Some("resp_2"), 4_000).await?;
    keep(&db, acme, "resp_3b", Some("resp_2"), 4_000).await?;

    assert_eq!(db.kept_chain("resp_3", acme, 1_500, 1000).await?, found(&["resp_1", "resp_2", "resp_3"]));
    assert_eq!(db.kept_chain("resp_3b", acme, 1_500, 1000).await?, found(&["resp_1", "resp_2", "resp_3b"]));
    assert_eq!(db.kept_chain("resp_1", acme, 1_500, 1000).await?, found(&["resp_1"]));
    assert_eq!(db.kept_response("resp_3", acme, 1_500).await?, Some(b"resp_3".to_vec()), "only its own turn");
    // The asked response must be alive; earlier ones serve the later ones after they expire.
    assert_eq!(db.kept_chain("resp_3", acme, 3_500, 1000).await?, found(&["resp_1", "resp_2", "resp_3"]));
    assert_eq!(db.kept_chain("resp_2", acme, 3_500, 1000).await?, KeptChain::Missing, "expired itself");
    assert_eq!(db.kept_chain("resp_3", other, 1_500, 1000).await?, KeptChain::Missing, "another account's");
    assert_eq!(db.kept_chain("resp_9", acme, 1_500, 1000).await?, KeptChain::Missing);

    // Bounded: a walk reads at most `max` responses.
    assert_eq!(db.kept_chain("resp_3", acme, 1_500, 3).await?, found(&["resp_1", "resp_2", "resp_3"]));
    assert_eq!(db.kept_chain("resp_3", acme, 1_500, 2).await?, KeptChain::TooLong);

    // A link can never reach another account's response.
    keep(&db, other, "resp_x", Some("resp_2"), 4_000).await?;
    assert_eq!(db.kept_chain("resp_x", other, 1_500, 1000).await?, KeptChain::Broken);
    // Nor can another account take over a kept id.
    keep(&db, other, "resp_2", None, 9_000).await?;
    assert_eq!(db.kept_chain("resp_3", acme, 1_500, 1000).await?, found(&["resp_1", "resp_2", "resp_3"]));
    assert_eq!(db.kept_chain("resp_2", other, 1_500, 1000).await?, KeptChain::Missing);

    // Deleting a middle response deletes only it: the turns after it cannot be continued.
    assert!(db.forget_response("resp_2", acme).await?);
    assert_eq!(db.kept_chain("resp_3", acme, 1_500, 1000).await?, KeptChain::Broken);
    assert_eq!(db.kept_answer("resp_3", acme, 1_500).await?, Some(b"{\"id\":\"resp_3\"}".to_vec()));
    assert_eq!(db.kept_chain("resp_1", acme, 1_500, 1000).await?, found(&["resp_1"]));
    Ok(())
}

async fn the_sweep_keeps_expired_responses_a_later_turn_still_needs(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = db.create_account("acme", NanoUsd(0)).await?.id;
    keep(&db, acme, "resp_1", None, 2_000).await?;
    keep(&db, acme, "resp_2", Some("resp_1"), 3_000).await?;
    keep(&db, acme, "resp_3", Some("resp_2"), 4_000).await?;
    keep(&db, acme, "resp_alone", None, 2_000).await?;

    assert_eq!(db.forget_responses(3_500).await?, 1, "only the expired response nothing continues");
    assert_eq!(db.kept_chain("resp_3", acme, 3_500, 1000).await?, found(&["resp_1", "resp_2", "resp_3"]));
    assert_eq!(db.kept_answer("resp_1", acme, 3_500).await?, None, "expired for its own reading");

    assert_eq!(db.forget_responses(4_000).await?, 3, "the whole conversation once its last turn expired");
    assert_eq!(db.forget_responses(5_000).await?, 0);
    Ok(())
}

on_both_backends!(
    a_kept_response_is_read_back_by_its_account_until_it_expires,
    a_conversation_is_read_back_by_walking_its_links,
    the_sweep_keeps_expired_responses_a_later_turn_still_needs,
);
