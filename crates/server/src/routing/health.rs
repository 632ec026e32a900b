//! One deployment's circuit breaker: healthy, cooling after repeated failures or a 429,
//! then half-open with a single probe whose outcome closes the circuit or cools it longer.

use std::time::{Duration, Instant};

/// Consecutive failures (connect, timeout, 5xx) that put a healthy deployment in cooldown.
pub const FAILURE_THRESHOLD: u32 = 3;
/// The first cooldown after repeated failures; each failed probe doubles it.
pub const BASE_BACKOFF: Duration = Duration::from_secs(5);
/// The longest cooldown, for failures and for a 429's Retry-After alike.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(300);
/// A 429's cooldown when the upstream sent no Retry-After.
pub const DEFAULT_RATE_LIMIT_COOLDOWN: Duration = Duration::from_secs(5);
/// What `AllCooling` reports for a half-open deployment whose probe is still in flight.
pub const PROBE_IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

/// How a failed attempt counts against the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be made.
    Connect,
    /// No response (or no first byte) in time.
    Timeout,
    /// A 5xx from the upstream.
    ServerError,
    /// A 429: cools only this deployment, for `retry_after` (5 s without one, at most 5 min),
    /// without growing the failure backoff.
    RateLimited { retry_after: Option<Duration> },
}

/// Whether `begin` may start an attempt, and whether it is the half-open probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Open,
    Probe(u32),
    Refused,
}

#[derive(Debug, Clone, Default)]
pub struct Health {
    consecutive_failures: u32,
    /// Length of the current failure cooldown; `None` until failures have cooled the
    /// deployment since it was last healthy.
    backoff: Option<Duration>,
    /// `Some`: cooling until then, half-open afterwards. `None`: healthy.
    until: Option<Instant>,
    /// The ticket of the probe in flight while half-open.
    probe: Option<u32>,
    next_ticket: u32,
}

impl Health {
    /// `None` if `order` may include the deployment now, else how long until it may.
    pub fn blocked_for(&self, now: Instant) -> Option<Duration> {
        match self.until {
            None => None,
            Some(until) if now < until => Some(until - now),
            Some(_) => self.probe.map(|_| PROBE_IN_FLIGHT_RETRY),
        }
    }

    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.until {
            None => Admission::Open,
            Some(until) if now < until || self.probe.is_some() => Admission::Refused,
            Some(_) => {
                let ticket = self.next_ticket;
                self.next_ticket = self.next_ticket.wrapping_add(1);
                self.probe = Some(ticket);
                Admission::Probe(ticket)
            }
        }
    }

    pub fn succeeded(&mut self, ticket: Option<u32>, now: Instant) {
        self.consecutive_failures = 0;
        let probe = self.take_probe(ticket);
        // A late success from an attempt begun before the cooldown does not lift it early.
        if probe || self.until.is_some_and(|until| until <= now) {
            self.until = None;
            self.backoff = None;
            self.probe = None;
        }
    }

    pub fn failed(&mut self, ticket: Option<u32>, failure: Failure, now: Instant) {
        let probe = self.take_probe(ticket);
        if let Failure::RateLimited { retry_after } = failure {
            let cooldown = retry_after.unwrap_or(DEFAULT_RATE_LIMIT_COOLDOWN).min(MAX_COOLDOWN);
            let end = later(now, cooldown);
            self.until = Some(self.until.map_or(end, |until| until.max(end)));
            return;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if probe {
            let backoff = self.backoff.map_or(BASE_BACKOFF, |b| b.saturating_mul(2).min(MAX_COOLDOWN));
            self.backoff = Some(backoff);
            self.until = Some(later(now, backoff));
        } else if self.until.is_none() && self.consecutive_failures >= FAILURE_THRESHOLD {
            self.backoff = Some(BASE_BACKOFF);
            self.until = Some(later(now, BASE_BACKOFF));
        }
    }

    /// The attempt ended without a verdict: only its probe slot, if any, is given back.
    pub fn abandoned(&mut self, ticket: Option<u32>) {
        self.take_probe(ticket);
    }

    /// Releases the probe slot if `ticket` still holds it; whether it did.
    fn take_probe(&mut self, ticket: Option<u32>) -> bool {
        let holds = ticket.is_some() && ticket == self.probe && self.until.is_some();
        if holds {
            self.probe = None;
        }
        holds
    }
}

fn later(now: Instant, by: Duration) -> Instant {
    now.checked_add(by).unwrap_or(now)
}
