//! Holds: reservations of funds for requests in flight.

/// A reservation as stored while its request is in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub request_id: String,
    pub account_id: i64,
    pub key_id: String,
    pub amount: tokenrouter_core::NanoUsd,
    pub created_at: i64,
}

/// What a gateway needs to start holding funds for an account: its balance and the id
/// of the newest ledger row that balance includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Funds {
    pub balance: tokenrouter_core::NanoUsd,
    pub ledger_high: i64,
}

/// A balance movement not made by the gateway's own charges (a credit, refund or
/// adjustment written by the CLI or the management API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Movement {
    pub id: i64,
    pub account_id: i64,
    pub amount: tokenrouter_core::NanoUsd,
}
