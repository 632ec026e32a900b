//! Holds: reservations of funds for requests in flight, taken by one conditional write
//! in the database that owns the balances.

use tokenrouter_core::NanoUsd;

use crate::Earning;

/// A hold to take for one request before its upstream call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    pub request_id: String,
    pub account_id: i64,
    pub key_id: String,
    /// The request's cost ceiling.
    pub amount: NanoUsd,
    /// Refuse when the account's available balance or the key's remaining spend limit
    /// cannot cover `amount`. Without it (billing off) the hold is recorded at 0: it only
    /// marks the request as in flight.
    pub enforce: bool,
    /// The gateway process serving the request.
    pub replica: String,
    pub model: String,
    pub endpoint: String,
    pub stream: bool,
    pub created_at: i64,
}

/// What became of a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOutcome {
    Held,
    /// The account's balance less what it holds already.
    Balance {
        available: NanoUsd,
    },
    /// The key's spend limit less what it spent and holds.
    SpendLimit {
        remaining: NanoUsd,
    },
}

/// A hold as stored while its request is in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub request_id: String,
    pub account_id: i64,
    pub key_id: String,
    pub amount: NanoUsd,
    pub created_at: i64,
    pub replica: String,
    pub model: String,
    pub endpoint: String,
    pub stream: bool,
    /// The cost of what the client had received by the last checkpoint.
    pub delivered: NanoUsd,
    /// Who was serving the request at the last checkpoint.
    pub provider: Option<String>,
    /// The instance owner who earns from what was delivered.
    pub earning: Option<Earning>,
}

/// A request still streaming: the cost of what its client has received so far, so that
/// if its gateway dies another one settles the hold at that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub request_id: String,
    pub delivered: NanoUsd,
    /// The deployment serving it (e.g. `openai`, `instance:7`).
    pub provider: String,
    /// A community instance serving it: its owner earns a share of what was delivered.
    pub earning: Option<Earning>,
}

/// A gateway process, as it announces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub started_at: i64,
}

/// A replica as stored, with its last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRow {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub started_at: i64,
    pub seen_at: i64,
}
