//! Choosing among a model's deployments: the order in which to try them under each
//! strategy, with deployments in cooldown left out, and the outcome of each attempt fed
//! back into health, latency and success rate.

mod ewma;
mod health;
mod round_robin;
mod slots;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use health::{
    BASE_BACKOFF, DEFAULT_RATE_LIMIT_COOLDOWN, FAILURE_THRESHOLD, Failure, MAX_COOLDOWN, PROBE_IN_FLIGHT_RETRY,
};

use crate::config::{Deployment, Model};
use health::Admission;
use round_robin::Rotations;
use slots::{Slot, Slots};

/// How candidates are ordered (`X-TokenRouter-Strategy`, a model's `strategy`, or the
/// server's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Cheapest healthy deployment first.
    #[default]
    Cost,
    /// Lowest recent time to first byte first (peak-sensitive EWMA, power of two choices).
    Latency,
    /// Best recent success rate first.
    Availability,
    /// Weighted round-robin.
    RoundRobin,
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(text: &str) -> Result<Strategy, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "cost" => Ok(Strategy::Cost),
            "latency" => Ok(Strategy::Latency),
            "availability" => Ok(Strategy::Availability),
            "round-robin" | "round_robin" | "roundrobin" => Ok(Strategy::RoundRobin),
            _ => Err(format!("'{text}' is not one of cost, latency, availability, round-robin")),
        }
    }
}

/// Added to the random seed for every power-of-two draw (the golden ratio, as in SplitMix64).
const SEED_STEP: u64 = 0x9E37_79B9_7F4A_7C15;
/// The least latency a score uses, so attempts in flight still count when ttfb is ~0.
const LATENCY_FLOOR_SECS: f64 = 1e-6;

/// Routing state shared by every request: per-deployment health and averages, and
/// per-model round-robin rotations. Ordering reads a lock-free map and takes each
/// deployment's own mutex for a few nanoseconds.
pub struct Routing {
    slots: Slots,
    rotations: Rotations,
    rng: AtomicU64,
}

impl Default for Routing {
    fn default() -> Routing {
        Routing::new()
    }
}

impl std::fmt::Debug for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routing").finish_non_exhaustive()
    }
}

/// Every deployment of the model is cooling down (or half-open with its probe in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every deployment of the model is cooling down; retry in {retry_after:?}")]
pub struct AllCooling {
    /// Until the first deployment may be probed.
    pub retry_after: Duration,
}

/// A deployment that may be tried, with what its strategy ranks it by.
struct Candidate<'m> {
    deployment: &'m Deployment,
    index: usize,
    cost: i64,
    /// Latency in seconds (`None`: never measured) or success rate.
    value: Option<f64>,
    in_flight: u32,
}

impl Routing {
    pub fn new() -> Routing {
        Routing::with_seed(fastrand::u64(..))
    }

    /// With a fixed seed for the latency strategy's random draws (tests, benchmarks).
    pub fn with_seed(seed: u64) -> Routing {
        Routing { slots: Slots::default(), rotations: Rotations::default(), rng: AtomicU64::new(seed) }
    }

    /// How many of the model's deployments are not cooling down (a read: nothing moves).
    pub fn live_count(&self, model: &Model, now: Instant) -> usize {
        let slots = self.slots.load();
        model
            .deployments
            .iter()
            .filter(|deployment| match slots::find(&slots, deployment) {
                Some(slot) => slot.lock().health.blocked_for(now).is_none(),
                None => true,
            })
            .count()
    }

    /// The deployments of `model` in the order to try them, cooling ones left out.
    /// When every deployment is cooling: `Err(AllCooling { retry_after })`, the time until
    /// the first one may be probed. A model without deployments gives an empty list.
    pub fn order<'m>(
        &self,
        model: &'m Model,
        strategy: Strategy,
        now: Instant,
    ) -> Result<Vec<&'m Deployment>, AllCooling> {
        let mut candidates = Vec::with_capacity(model.deployments.len());
        let mut retry_after: Option<Duration> = None;
        let slots = self.slots.load();
        for (index, deployment) in model.deployments.iter().enumerate() {
            let mut candidate = Candidate { deployment, index, cost: 0, value: None, in_flight: 0 };
            match slots::find(&slots, deployment) {
                Some(slot) => {
                    let stats = slot.lock();
                    if let Some(wait) = stats.health.blocked_for(now) {
                        retry_after = Some(retry_after.map_or(wait, |r| r.min(wait)));
                        continue;
                    }
                    candidate.in_flight = stats.in_flight;
                    candidate.value = match strategy {
                        Strategy::Latency => stats.latency.at(now),
                        Strategy::Availability => Some(stats.success.at(now)),
                        Strategy::Cost | Strategy::RoundRobin => None,
                    };
                }
                None if strategy == Strategy::Availability => candidate.value = Some(1.0),
                None => {}
            }
            if strategy == Strategy::Cost {
                let price = deployment.price.as_ref().unwrap_or(&model.price);
                candidate.cost = price.input.0.saturating_add(price.output.0);
            }
            candidates.push(candidate);
        }
        drop(slots);
        if candidates.is_empty() {
            return match retry_after {
                Some(retry_after) => Err(AllCooling { retry_after }),
                None => Ok(Vec::new()),
            };
        }
        match strategy {
            Strategy::Cost => candidates.sort_by_key(|c| c.cost),
            Strategy::Availability => {
                candidates.sort_by(|a, b| b.value.unwrap_or(1.0).total_cmp(&a.value.unwrap_or(1.0)));
            }
            Strategy::Latency => self.rank_by_latency(&mut candidates),
            Strategy::RoundRobin => {
                let chosen = self.rotations.with(&model.id, now, |rotation| {
                    let weighted = candidates.iter().map(|c| (c.index, c.deployment.weight));
                    rotation.pick(model.deployments.len(), weighted, now)
                });
                if let Some(position) = candidates.iter().position(|c| Some(c.index) == chosen) {
                    candidates[..=position].rotate_right(1);
                }
            }
        }
        Ok(candidates.into_iter().map(|c| c.deployment).collect())
    }

    /// Power of two choices on `latency × (in_flight + 1)` for the first candidate, the
    /// rest by the same score. Never-measured deployments count as the fastest measured.
    fn rank_by_latency(&self, candidates: &mut [Candidate<'_>]) {
        let fastest = candidates.iter().filter_map(|c| c.value).min_by(f64::total_cmp).unwrap_or(1.0);
        for c in candidates.iter_mut() {
            let latency = c.value.unwrap_or(fastest).max(LATENCY_FLOOR_SECS);
            c.value = Some(latency * (f64::from(c.in_flight) + 1.0));
        }
        let score = |c: &Candidate<'_>| c.value.unwrap_or(0.0);
        let first = match candidates.len() {
            0 | 1 => return,
            n => {
                let mut rng = fastrand::Rng::with_seed(self.rng.fetch_add(SEED_STEP, Ordering::Relaxed));
                let a = rng.usize(..n);
                let b = (a + 1 + rng.usize(..n - 1)) % n;
                // On a tie the first draw wins, so equals (and the never measured) share the load.
                let (a, b) = (&candidates[a], &candidates[b]);
                if score(b) < score(a) { b.index } else { a.index }
            }
        };
        candidates.sort_by(|a, b| score(a).total_cmp(&score(b)));
        if let Some(position) = candidates.iter().position(|c| c.index == first) {
            candidates[..=position].rotate_right(1);
        }
    }

    /// Marks the start of an attempt on `deployment`; the returned guard ends it.
    /// `None` when the deployment may not be tried now — it started cooling since `order`,
    /// or it is half-open and another attempt already holds its single probe slot — and
    /// the caller moves on to the next candidate.
    pub fn begin(&self, deployment: &Deployment, now: Instant) -> Option<Attempt> {
        let slot = self.slots.get_or_insert(deployment, now);
        let probe = {
            let mut stats = slot.lock();
            let probe = match stats.health.admit(now) {
                Admission::Refused => return None,
                Admission::Open => None,
                Admission::Probe(ticket) => Some(ticket),
            };
            stats.in_flight = stats.in_flight.saturating_add(1);
            stats.last_used = now;
            probe
        };
        Some(Attempt { slot, probe, reported: false })
    }
}

/// One attempt on a deployment, from `Routing::begin` to its report. Dropped without a
/// report (the client went away, or the request was the client's fault) it is neutral:
/// it only ends the in-flight count and gives back the probe slot.
#[must_use = "report the attempt's outcome with succeeded() or failed()"]
#[derive(Debug)]
pub struct Attempt {
    slot: Arc<Slot>,
    /// The probe ticket when this attempt is a half-open deployment's probe.
    probe: Option<u32>,
    reported: bool,
}

impl Attempt {
    /// Whether this attempt is the probe of a half-open deployment.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }

    /// The upstream answered (for streams: the first byte arrived) after `ttfb`.
    pub fn succeeded(mut self, ttfb: Duration, now: Instant) {
        self.reported = true;
        let mut stats = self.slot.lock();
        stats.in_flight = stats.in_flight.saturating_sub(1);
        stats.last_used = now;
        stats.health.succeeded(self.probe, now);
        stats.latency.record(ttfb, now);
        stats.success.record(true, now);
    }

    /// The attempt failed in a way that counts against the deployment's health.
    pub fn failed(mut self, failure: Failure, now: Instant) {
        self.reported = true;
        let mut stats = self.slot.lock();
        stats.in_flight = stats.in_flight.saturating_sub(1);
        stats.last_used = now;
        stats.health.failed(self.probe, failure, now);
        stats.success.record(false, now);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.reported {
            let mut stats = self.slot.lock();
            stats.in_flight = stats.in_flight.saturating_sub(1);
            stats.health.abandoned(self.probe);
        }
    }
}
