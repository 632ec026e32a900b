//! The two moving averages the strategies rank by: a peak-sensitive EWMA of time to first
//! byte and an EWMA of the success rate.

use std::time::{Duration, Instant};

/// Time constant of the latency average: lower samples and idle time decay it over ~10 s.
pub const LATENCY_DECAY: Duration = Duration::from_secs(10);
/// Weight of one attempt's outcome in the success rate (about the last ten attempts).
pub const SUCCESS_WEIGHT: f64 = 0.1;
/// Time constant with which a success rate drifts back toward 1.0 while nothing is
/// recorded, so a deployment ranked last after a bad minute is not ranked last forever.
pub const SUCCESS_RECOVERY: Duration = Duration::from_secs(60);

/// Peak-sensitive EWMA of time to first byte, in seconds (Finagle's and tower's PeakEwma):
/// a sample above the estimate replaces it at once; lower samples pull it down weighted by
/// the time since the previous sample. Read, it decays toward zero with idle time, so a
/// deployment not tried for a while is tried again and measured afresh.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeakEwma {
    last: Option<(f64, Instant)>,
}

impl PeakEwma {
    /// The estimate at `now` in seconds; `None` before the first sample.
    pub fn at(&self, now: Instant) -> Option<f64> {
        self.last.map(|(secs, stamp)| secs * decay(now.saturating_duration_since(stamp), LATENCY_DECAY))
    }

    pub fn record(&mut self, sample: Duration, now: Instant) {
        let sample = sample.as_secs_f64();
        let next = match self.last {
            Some((secs, stamp)) if sample <= secs => {
                let w = decay(now.saturating_duration_since(stamp), LATENCY_DECAY);
                secs * w + sample * (1.0 - w)
            }
            _ => sample,
        };
        self.last = Some((next, now));
    }
}

/// EWMA of outcomes, 1.0 for a success and 0.0 for a failure; starts at 1.0.
#[derive(Debug, Clone, Copy, Default)]
pub struct SuccessRate {
    last: Option<(f64, Instant)>,
}

impl SuccessRate {
    pub fn at(&self, now: Instant) -> f64 {
        match self.last {
            None => 1.0,
            Some((rate, stamp)) => 1.0 - (1.0 - rate) * decay(now.saturating_duration_since(stamp), SUCCESS_RECOVERY),
        }
    }

    pub fn record(&mut self, success: bool, now: Instant) {
        let rate = self.at(now);
        let outcome = if success { 1.0 } else { 0.0 };
        self.last = Some((rate + SUCCESS_WEIGHT * (outcome - rate), now));
    }
}

/// The weight an old value keeps after `elapsed`: e^(−elapsed/τ).
fn decay(elapsed: Duration, tau: Duration) -> f64 {
    (-elapsed.as_secs_f64() / tau.as_secs_f64()).exp()
}
