//! `[jobs]`: async jobs — how many run at once on each replica, how long finished ones
//! are kept, how many an account may have waiting, and how long one may wait to run.

use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_WORKERS: usize = 4;
/// A week.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(604_800);
pub const DEFAULT_MAX_QUEUED: u64 = 1000;
/// A day, as OpenAI's Batch API's completion window.
pub const DEFAULT_EXPIRE_AFTER: Duration = Duration::from_secs(86_400);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJobs {
    pub workers: Option<u64>,
    pub retention_secs: Option<u64>,
    pub max_queued_per_account: Option<u64>,
    pub expire_after_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsConfig {
    /// Jobs run at once on this replica (0: this replica runs none, others do).
    pub workers: usize,
    /// Finished jobs are deleted this long after they finished.
    pub retention: Duration,
    /// An account's jobs queued or running at once; past it, 429.
    pub max_queued_per_account: u64,
    /// A job that has not run to its end this long after it was queued — still queued,
    /// or left by a dead worker — is ended as `expired`: never run again, hold released.
    pub expire_after: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            workers: DEFAULT_WORKERS,
            retention: DEFAULT_RETENTION,
            max_queued_per_account: DEFAULT_MAX_QUEUED,
            expire_after: DEFAULT_EXPIRE_AFTER,
        }
    }
}

/// More workers than this on one replica is a typo, not a plan.
const MAX_WORKERS: u64 = 1024;

impl JobsConfig {
    pub fn build(raw: RawJobs, errors: &mut Vec<String>) -> JobsConfig {
        let workers = match raw.workers {
            None => DEFAULT_WORKERS,
            Some(n) if n > MAX_WORKERS => {
                errors.push(format!("jobs.workers: {n} is more than {MAX_WORKERS}"));
                DEFAULT_WORKERS
            }
            Some(n) => usize::try_from(n).unwrap_or(DEFAULT_WORKERS),
        };
        let retention = match raw.retention_secs {
            None => DEFAULT_RETENTION,
            Some(0) => {
                errors.push("jobs.retention_secs: must be at least 1".to_owned());
                DEFAULT_RETENTION
            }
            Some(secs) => Duration::from_secs(secs),
        };
        let max_queued_per_account = match raw.max_queued_per_account {
            None => DEFAULT_MAX_QUEUED,
            Some(0) => {
                errors.push("jobs.max_queued_per_account: must be at least 1".to_owned());
                DEFAULT_MAX_QUEUED
            }
            Some(n) => n,
        };
        let expire_after = match raw.expire_after_secs {
            None => DEFAULT_EXPIRE_AFTER,
            Some(0) => {
                errors.push("jobs.expire_after_secs: must be at least 1".to_owned());
                DEFAULT_EXPIRE_AFTER
            }
            Some(secs) => Duration::from_secs(secs),
        };
        JobsConfig { workers, retention, max_queued_per_account, expire_after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        let mut errors = Vec::new();
        assert_eq!(JobsConfig::build(RawJobs::default(), &mut errors), JobsConfig::default());
        let raw = RawJobs {
            workers: Some(0),
            retention_secs: Some(60),
            max_queued_per_account: Some(5),
            expire_after_secs: Some(3600),
        };
        let config = JobsConfig::build(raw, &mut errors);
        assert_eq!((config.workers, config.retention.as_secs(), config.max_queued_per_account), (0, 60, 5));
        assert_eq!(config.expire_after.as_secs(), 3600);
        assert!(errors.is_empty(), "{errors:?}");
        let raw = RawJobs {
            workers: Some(5000),
            retention_secs: Some(0),
            max_queued_per_account: Some(0),
            expire_after_secs: Some(0),
        };
        JobsConfig::build(raw, &mut errors);
        assert_eq!(errors.len(), 4, "{errors:?}");
    }
}
