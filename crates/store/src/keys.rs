//! API keys as callers write and read them. The secret itself is never stored, only its hash.

use std::fmt;

use tokenrouter_core::NanoUsd;

/// A key to store. `models` and `ips` empty mean "no restriction".
#[derive(Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The public id (the part of the key that may be shown and logged).
    pub id: String,
    pub account_id: i64,
    pub name: String,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
    pub models: Vec<String>,
    pub ips: Vec<String>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub spend_limit: Option<NanoUsd>,
    pub expires_at: Option<i64>,
    pub scope: KeyScope,
    /// May be routed to community instances.
    pub community: bool,
}

/// Changes to a key: `None` leaves a field as it is; for the limits and the expiry,
/// `Some(None)` removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyChanges {
    pub name: Option<String>,
    pub models: Option<Vec<String>>,
    pub ips: Option<Vec<String>>,
    pub rpm: Option<Option<u32>>,
    pub tpm: Option<Option<u32>>,
    pub spend_limit: Option<Option<NanoUsd>>,
    pub expires_at: Option<Option<i64>>,
}

/// What revoking one of an account's keys did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    /// It was revoked before: nothing changed.
    AlreadyRevoked,
    /// No such key on this account.
    NotFound,
}

/// What a key authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyScope {
    /// `/v1/*`: inference.
    #[default]
    Inference,
    /// `/api/*` for its account; never `/v1/*`.
    Management,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Inference => "inference",
            KeyScope::Management => "management",
        }
    }

    pub fn parse(scope: &str) -> Option<KeyScope> {
        match scope {
            "inference" => Some(KeyScope::Inference),
            "management" => Some(KeyScope::Management),
            _ => None,
        }
    }
}

/// A stored key with its account's name and what it has spent so far.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct KeyRow {
    pub id: String,
    pub account_id: i64,
    pub account_name: String,
    pub name: String,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
    pub models: Vec<String>,
    pub ips: Vec<String>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub spend_limit: Option<NanoUsd>,
    pub spent: NanoUsd,
    /// Held for the key's requests in flight.
    pub held: NanoUsd,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub scope: KeyScope,
    pub community: bool,
}

const REDACTED: &str = "<redacted>";

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("name", &self.name)
            .field("secret_hash", &REDACTED)
            .field("models", &self.models)
            .field("ips", &self.ips)
            .field("rpm", &self.rpm)
            .field("tpm", &self.tpm)
            .field("spend_limit", &self.spend_limit)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRow")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("account_name", &self.account_name)
            .field("name", &self.name)
            .field("secret_hash", &REDACTED)
            .field("models", &self.models)
            .field("ips", &self.ips)
            .field("rpm", &self.rpm)
            .field("tpm", &self.tpm)
            .field("spend_limit", &self.spend_limit)
            .field("spent", &self.spent)
            .field("held", &self.held)
            .field("expires_at", &self.expires_at)
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .field("scope", &self.scope)
            .field("community", &self.community)
            .finish()
    }
}
