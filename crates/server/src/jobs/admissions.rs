//! The rate-limit admissions of jobs queued on this replica, kept so that the job's run
//! settles its tokens as a synchronous request's answer does: the estimate counted at
//! submission corrected to what the run used (a failed or cancelled job gives its tokens
//! back). A job run by another replica, or later than [`KEPT_FOR`], keeps its estimate: by
//! then the minute the estimate was counted in has passed, and nothing is left to correct.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::limits::Admission;

/// How long an admission waits for its job's run.
pub const KEPT_FOR: Duration = Duration::from_secs(120);

/// How often the admissions past their time are dropped (a walk over all of them).
const PRUNE_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Admissions {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    by_request: HashMap<String, (Instant, Admission)>,
    pruned: Option<Instant>,
}

impl Admissions {
    /// Keeps the admission of the job with this request id (dropping those past their time,
    /// whose estimates stand).
    pub fn keep(&self, request_id: String, admission: Admission, now: Instant) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.pruned.is_none_or(|at| now.saturating_duration_since(at) >= PRUNE_EVERY) {
            kept.by_request.retain(|_, (since, _)| now.saturating_duration_since(*since) < KEPT_FOR);
            kept.pruned = Some(now);
        }
        kept.by_request.insert(request_id, (now, admission));
    }

    /// The admission of this job, if it was queued here and not too long ago.
    pub fn take(&self, request_id: &str, now: Instant) -> Option<Admission> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let (since, admission) = kept.by_request.remove(request_id)?;
        (now.saturating_duration_since(since) < KEPT_FOR).then_some(admission)
    }

    /// How many admissions wait for their jobs' runs.
    pub fn waiting(&self) -> usize {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner).by_request.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admission_is_taken_once_and_only_in_time() {
        let admissions = Admissions::default();
        let start = Instant::now();
        admissions.keep("req_a".into(), Admission::none(), start);
        admissions.keep("req_b".into(), Admission::none(), start);
        assert!(admissions.take("req_a", start + Duration::from_secs(1)).is_some());
        assert!(admissions.take("req_a", start + Duration::from_secs(1)).is_none(), "once");
        assert!(admissions.take("req_b", start + KEPT_FOR).is_none(), "too late: the estimate stands");
        admissions.keep("req_c".into(), Admission::none(), start);
        admissions.keep("req_d".into(), Admission::none(), start + KEPT_FOR);
        assert_eq!(admissions.waiting(), 1, "those past their time are dropped");
    }
}
