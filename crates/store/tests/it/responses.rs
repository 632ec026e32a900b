//! Kept responses: readable by their own account until they expire, then forgotten.

use tokenrouter_store::{KeptResponse, NanoUsd};

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

on_both_backends!(a_kept_response_is_read_back_by_its_account_until_it_expires,);
