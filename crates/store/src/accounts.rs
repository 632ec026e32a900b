//! Accounts and their ledger rows as callers see them.

use tokenrouter_core::NanoUsd;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub balance: NanoUsd,
    /// Held for requests in flight.
    pub held: NanoUsd,
    pub created_at: i64,
    /// When the account was disabled (its keys stop working); `None` while enabled.
    pub disabled_at: Option<i64>,
    /// May use the admin routes.
    pub is_admin: bool,
    /// The GitHub user it signs in as (accounts are found by this id, never by login).
    pub github_id: Option<i64>,
    /// Display fields from GitHub, refreshed at each sign-in.
    pub login: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub email: Option<String>,
}

/// One balance change. `amount` is signed: credits positive, charges negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub id: i64,
    pub account_id: i64,
    /// 'credit', 'charge', 'refund' or 'adjustment'.
    pub kind: String,
    pub amount: NanoUsd,
    pub request_id: Option<String>,
    pub memo: String,
    pub created_at: i64,
}
