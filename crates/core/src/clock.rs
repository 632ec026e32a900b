//! The one source of wall-clock time, so that time is read in a single place.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is before 1970).
#[allow(clippy::disallowed_methods)]
pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
#[allow(clippy::disallowed_methods)]
pub fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis().try_into().unwrap_or(i64::MAX)
}
