//! Signing in: server-side sessions, one-time sign-in links and redemption codes. Every
//! secret (session token, link token, code) is stored as its SHA-256 only; the store never
//! sees one in the clear.

use crate::NanoUsd;

/// SHA-256 of a secret.
pub type SecretHash = [u8; 32];

/// What redeeming a code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redemption {
    /// Credited `amount`; the account's balance is now `balance`.
    Credited { amount: NanoUsd, balance: NanoUsd },
    /// Unknown, already redeemed or expired (one answer for all three, so that a caller
    /// learns nothing about codes it does not hold).
    Invalid,
}

/// A GitHub user as `/user` describes them; `id` is what finds the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubProfile {
    pub id: i64,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub email: Option<String>,
}
