//! GCRA (generic cell rate algorithm) on a nanosecond clock. A limit of `L` units a
//! minute is an emission interval T = 60 s / L with a burst tolerance of 60 s − T: an
//! idle bucket takes `L` units at once, then one per T — smooth, so no window boundary
//! ever lets 2 × L through. The state is one number, the theoretical arrival time (TAT):
//! when the bucket is idle again. It is kept in nanoseconds × L, where one unit costs
//! exactly 60 s and nothing is rounded, whatever the limit.

/// The limits' period: a minute, in nanoseconds.
pub const PERIOD_NS: u64 = 60_000_000_000;
const PERIOD: u128 = PERIOD_NS as u128;

/// One limit's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// The TAT in nanoseconds × `limit`.
    tat: u128,
    /// The limit `tat` is scaled by (0: never used).
    limit: u32,
}

impl Bucket {
    /// This bucket under `limit` (a changed limit keeps the TAT's time).
    fn under(self, limit: u32) -> Bucket {
        let tat = match self.limit {
            0 => 0,
            old if old == limit => self.tat,
            old => self.tat * u128::from(limit) / u128::from(old),
        };
        Bucket { tat, limit }
    }

    /// Admits `cost` units at `now` (ns): the bucket after it, or how many nanoseconds
    /// until the same request would be admitted. A cost above the whole limit is taken
    /// as the limit: admitted when the bucket is idle; settlement charges the rest.
    pub fn admit(self, now: u64, cost: u64, limit: u32) -> Result<Bucket, u64> {
        let limit = limit.max(1);
        let bucket = self.under(limit);
        let now = u128::from(now) * u128::from(limit);
        let cost = u128::from(cost.min(u64::from(limit)));
        let next = bucket.tat.max(now).saturating_add(cost * PERIOD);
        let capacity = PERIOD * u128::from(limit);
        match (next - now).checked_sub(capacity) {
            None | Some(0) => Ok(Bucket { tat: next, limit }),
            Some(over) => Err(nanos(over, limit)),
        }
    }

    /// The bucket that is busy at `now` (ns) for `busy_ms` milliseconds × `limit`, as
    /// Redis keeps it: one unit is 60 000 there as 60 s is here.
    pub fn with_busy(now: u64, busy_ms: u64, limit: u32) -> Bucket {
        let limit = limit.max(1);
        Bucket { tat: u128::from(now) * u128::from(limit) + u128::from(busy_ms) * 1_000_000, limit }
    }

    /// Units that could be admitted at once at `now`.
    pub fn remaining(self, now: u64, limit: u32) -> u64 {
        let limit = limit.max(1);
        let busy = self.under(limit).tat.saturating_sub(u128::from(now) * u128::from(limit));
        let free = (PERIOD * u128::from(limit)).saturating_sub(busy);
        u64::try_from(free / PERIOD).unwrap_or(u64::MAX)
    }

    /// Nanoseconds until the bucket is idle (the whole limit available) again.
    pub fn reset(self, now: u64, limit: u32) -> u64 {
        let limit = limit.max(1);
        nanos(self.under(limit).tat.saturating_sub(u128::from(now) * u128::from(limit)), limit)
    }

    /// Charges `units` more (a request used more than it was admitted with).
    pub fn charge(&mut self, units: u64) {
        self.tat = self.tat.saturating_add(u128::from(units) * PERIOD);
    }

    /// Gives back up to `units` that a request admitted at TAT `admitted` did not use —
    /// no more than is still in the bucket from that admission, so a refund can never
    /// take capacity from requests admitted after the admission had drained.
    pub fn refund(&mut self, units: u64, now: u64, admitted: Bucket) {
        if admitted.limit != self.limit {
            return;
        }
        let left = admitted.tat.saturating_sub(u128::from(now) * u128::from(self.limit));
        self.tat = self.tat.saturating_sub((u128::from(units) * PERIOD).min(left));
    }
}

/// Scaled nanoseconds back to nanoseconds, rounded up.
fn nanos(scaled: u128, limit: u32) -> u64 {
    u64::try_from(scaled.div_ceil(u128::from(limit.max(1)))).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// One request every `step` for `total`: the times admitted.
    fn admitted(limit: u32, step: u64, total: u64) -> Vec<u64> {
        let (mut bucket, mut out, mut now) = (Bucket::default(), Vec::new(), 0);
        while now < total {
            if let Ok(next) = bucket.admit(now, 1, limit) {
                bucket = next;
                out.push(now);
            }
            now += step;
        }
        out
    }

    fn burst(mut bucket: Bucket, now: u64, limit: u32) -> (Bucket, u32) {
        let mut n = 0;
        while let Ok(next) = bucket.admit(now, 1, limit) {
            bucket = next;
            n += 1;
        }
        (bucket, n)
    }

    #[test]
    fn an_idle_bucket_takes_the_whole_limit_at_once_then_one_per_interval() {
        let (full, n) = burst(Bucket::default(), 0, 20);
        assert_eq!(n, 20);
        assert_eq!(full.admit(0, 1, 20), Err(3 * SECOND), "the 21st waits one interval");
        assert_eq!(full.admit(SECOND, 1, 20), Err(2 * SECOND));
        assert_eq!(full.admit(3 * SECOND - 1, 1, 20), Err(1));
        assert!(full.admit(3 * SECOND, 1, 20).is_ok());
        assert_eq!(Bucket::default().remaining(0, 20), 20);
        assert_eq!(Bucket::default().admit(0, 1, 20).unwrap().remaining(0, 20), 19);
        assert_eq!(full.remaining(0, 20), 0);
        assert_eq!(full.remaining(3 * SECOND, 20), 1);
        assert_eq!(full.reset(SECOND, 20), 59 * SECOND);
        assert_eq!(Bucket::default().reset(0, 20), 0);
    }

    #[test]
    fn no_double_burst_at_a_minute_boundary() {
        // A burst saved for the end of one minute buys nothing at the start of the next.
        let (full, n) = burst(Bucket::default(), 59 * SECOND, 20);
        assert_eq!(n, 20);
        let next_minute = (60..63).filter(|s| full.admit(s * SECOND, 1, 20).is_ok()).count();
        assert_eq!(next_minute, 1, "only at 62 s: 59 s + one interval");
        // A steady flood: the burst, then exactly one per interval, never 21 in under 3 s.
        let times = admitted(20, SECOND / 10, 600 * SECOND);
        assert!(times.windows(21).all(|w| w[20] - w[0] >= 3 * SECOND));
        assert!(times[20..].windows(2).all(|w| w[1] - w[0] == 3 * SECOND));
        let minute = times.iter().filter(|t| (300 * SECOND..360 * SECOND).contains(*t)).count();
        assert_eq!(minute, 20, "a minute in steady state admits exactly the limit");
    }

    #[test]
    fn token_costs_refunds_and_limits_that_do_not_divide_a_minute() {
        let first = Bucket::default().admit(0, 60, 100).unwrap();
        assert_eq!(first.reset(0, 100), 36 * SECOND);
        assert_eq!(first.remaining(0, 100), 40);
        assert_eq!(first.admit(0, 60, 100), Err(12 * SECOND));
        let mut settled = first;
        settled.refund(50, SECOND, first);
        assert_eq!(settled.remaining(SECOND, 100), 91, "10 used, 1 s drained");
        settled.charge(30);
        assert_eq!(settled.remaining(SECOND, 100), 61);
        // A refund after the admission drained gives nothing back.
        let mut late = Bucket::default().admit(100 * SECOND, 60, 100).unwrap();
        late.refund(60, 100 * SECOND, first);
        assert_eq!(late.remaining(100 * SECOND, 100), 40);
        // A cost over the whole limit waits for an idle bucket, then takes all of it.
        let whole = Bucket::default().admit(0, 500, 100).unwrap();
        assert_eq!(whole.remaining(0, 100), 0);
        assert_eq!(first.admit(0, 500, 100), Err(36 * SECOND));
        for limit in [7, 13, 999, 1_000_003] {
            let (bucket, n) = burst(Bucket::default(), 0, limit);
            assert_eq!(n, limit, "exactly the limit at once");
            assert_eq!(bucket.remaining(0, limit), 0);
        }
        assert_eq!(Bucket::default().remaining(0, u32::MAX), u64::from(u32::MAX));
        // A changed limit keeps the time: half of 20 used is half of 40 used.
        let half = Bucket::default().admit(0, 10, 20).unwrap();
        assert_eq!(half.remaining(0, 40), 20);
    }
}
