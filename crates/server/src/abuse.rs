//! Limits per client address on what an attacker would repeat: sign-in attempts and code
//! redemptions (GCRA: in Redis, exact across replicas, when `[redis]` is set and answers;
//! else in this process). Over the limit: 429 with `Retry-After`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::limits::Limits;
use crate::limits::gcra::Bucket;

/// Addresses remembered at most; past it, idle ones are forgotten first.
const MAX_ADDRESSES: usize = 100_000;

pub struct AddressLimiter {
    /// What is limited, for the error message ("sign-in attempts").
    what: &'static str,
    /// The bucket's name in Redis (with the address after it).
    name: &'static str,
    per_minute: u32,
    base: Instant,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl AddressLimiter {
    pub fn new(what: &'static str, name: &'static str, per_minute: u32) -> AddressLimiter {
        AddressLimiter { what, name, per_minute, base: Instant::now(), buckets: Mutex::default() }
    }

    /// Counts one attempt from `client` (requests whose address is unknown share one
    /// bucket): in Redis when the limits are shared, else here.
    pub async fn check(&self, limits: &Limits, client: Option<IpAddr>) -> Result<(), ApiError> {
        let client = client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        match limits.admit_bucket(&format!("addr:{}:{client}", self.name), self.per_minute).await {
            Some(Ok(())) => Ok(()),
            Some(Err(retry_after)) => Err(ApiError::TooManyAttempts { what: self.what, retry_after }),
            None => self.check_here(client),
        }
    }

    /// Counts one attempt in this process.
    fn check_here(&self, client: IpAddr) -> Result<(), ApiError> {
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_ADDRESSES {
            let limit = self.per_minute;
            buckets.retain(|_, bucket| bucket.remaining(now, limit) < u64::from(limit));
        }
        let bucket = buckets.entry(client).or_default();
        match bucket.admit(now, 1, self.per_minute) {
            Ok(next) => {
                *bucket = next;
                Ok(())
            }
            Err(wait_ns) => {
                Err(ApiError::TooManyAttempts { what: self.what, retry_after: Duration::from_nanos(wait_ns) })
            }
        }
    }
}

/// The limits of CONTRACTS §6: 20 sign-in attempts and 10 redemptions a minute.
pub struct Abuse {
    pub sign_in: AddressLimiter,
    pub redeem: AddressLimiter,
}

impl Default for Abuse {
    fn default() -> Abuse {
        Abuse {
            sign_in: AddressLimiter::new("sign-in attempts", "signin", 20),
            redeem: AddressLimiter::new("redemptions", "redeem", 10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_own_allowance() {
        let limiter = AddressLimiter::new("tries", "tries", 3);
        let one = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..3 {
            assert!(limiter.check_here(one).is_ok());
        }
        match limiter.check_here(one) {
            Err(ApiError::TooManyAttempts { retry_after, .. }) => {
                assert!(
                    retry_after > Duration::from_secs(15) && retry_after <= Duration::from_secs(20),
                    "{retry_after:?}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(limiter.check_here(IpAddr::from([10, 0, 0, 2])).is_ok());
    }
}
