//! Kept responses (`previous_response_id`) as a chain: each row keeps what its turn
//! added and links to the response it continued; a conversation is read back by walking
//! the links, bounded and within one account.

/// A response kept for `previous_response_id`, readable by its account until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptResponse {
    pub id: String,
    pub account_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    /// The response this one continued (same account); `None` when it starts its
    /// conversation, and for rows kept before chains, which hold the whole conversation.
    pub previous_id: Option<String>,
    /// What this turn adds to the conversation (opaque to the store).
    pub record: Vec<u8>,
    /// The Response object as the client received it.
    pub answer: Vec<u8>,
}

/// The conversation a kept response ends, as [`crate::Db::kept_chain`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptChain {
    /// The records of the conversation's responses, the oldest first (the first one
    /// starts it), the asked one last.
    Found(Vec<Vec<u8>>),
    /// The account has no such response (never kept, expired, deleted, or another's).
    Missing,
    /// The response is kept but an earlier one of its conversation is not any more
    /// (deleted), or is not this account's.
    Broken,
    /// The conversation has more responses than the walk may read.
    TooLong,
}

/// One row of a walk: a response's id, its link and its record, the asked one first.
pub(crate) type Link = (String, Option<String>, Vec<u8>);

/// The chain from the rows a walk read (at most `max + 1`, newest first, each the one
/// the previous row links to).
pub(crate) fn assemble(links: Vec<Link>, max: usize) -> KeptChain {
    let Some((_, last_link, _)) = links.last() else { return KeptChain::Missing };
    if links.len() > max {
        return KeptChain::TooLong;
    }
    if last_link.is_some() {
        return KeptChain::Broken;
    }
    let mut records: Vec<Vec<u8>> = links.into_iter().map(|(_, _, record)| record).collect();
    records.reverse();
    KeptChain::Found(records)
}

/// The longest chain a sweep of expired responses peels in one run: each pass deletes
/// the expired rows no other row links to.
pub(crate) const SWEEP_PASSES: usize = 1_100;
