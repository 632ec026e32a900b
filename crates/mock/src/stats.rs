//! What the mock saw and sent: request counters, the last [`KEPT_REQUESTS`] requests,
//! and stream outcomes. Cheap enough to record on every request of a benchmark.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// How many recorded requests [`Stats`] keeps; older ones are dropped.
pub const KEPT_REQUESTS: usize = 256;

/// One request to an inference path, as the mock received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The URL path, without the query string (e.g. `/v1/chat/completions`).
    pub path: String,
    /// Every header in arrival order, names lower-case, values lossily decoded as UTF-8.
    pub headers: Vec<(String, String)>,
    /// The JSON body, or `Null` if the body was not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Counters and recent requests of one mock server. Thread-safe.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    streams_completed: AtomicU64,
    streams_cancelled: AtomicU64,
    tokens_generated: AtomicU64,
    tool_calls: AtomicU64,
    listings: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    recent: Mutex<VecDeque<RecordedRequest>>,
}

/// Counts a request as being answered until dropped.
pub(crate) struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Stats {
    /// Requests received on any inference path (including ones answered with a fault or a 400).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The most recent requests (at most [`KEPT_REQUESTS`]), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recent().iter().cloned().collect()
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.recent().back().cloned()
    }

    /// Streams whose last event was handed to the connection.
    pub fn streams_completed(&self) -> u64 {
        self.streams_completed.load(Ordering::Relaxed)
    }

    /// Streams whose client went away before the last event.
    pub fn streams_cancelled(&self) -> u64 {
        self.streams_cancelled.load(Ordering::Relaxed)
    }

    /// Completion tokens handed to clients, summed over every response.
    pub fn tokens_generated(&self) -> u64 {
        self.tokens_generated.load(Ordering::Relaxed)
    }

    /// `GET /v1/models` requests, answered or refused.
    pub fn listing_count(&self) -> u64 {
        self.listings.load(Ordering::Relaxed)
    }

    /// Requests (any path) being answered now, hanging ones included.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The most requests (any path) ever answered at once.
    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Ordering::Acquire)
    }

    /// Counts a request (any path) as in flight until the guard is dropped.
    pub(crate) fn begin_any(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.max_in_flight.fetch_max(now, Ordering::AcqRel);
        InFlight(self)
    }

    pub(crate) fn count_listing(&self) {
        self.listings.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a new inference request and returns its 1-based sequence number.
    pub(crate) fn begin_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Reserves `n` tool-call ids and returns the first (1-based).
    pub(crate) fn next_tool_call_ids(&self, n: u64) -> u64 {
        self.tool_calls.fetch_add(n, Ordering::Relaxed) + 1
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        let mut recent = self.recent();
        if recent.len() == KEPT_REQUESTS {
            recent.pop_front();
        }
        recent.push_back(request);
    }

    pub(crate) fn add_tokens(&self, n: u64) {
        if n > 0 {
            self.tokens_generated.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn stream_completed(&self) {
        self.streams_completed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stream_cancelled(&self) {
        self.streams_cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// The ring of recent requests; a panic while holding the lock cannot leave it
    /// inconsistent, so a poisoned lock is simply taken over.
    fn recent(&self) -> std::sync::MutexGuard<'_, VecDeque<RecordedRequest>> {
        self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_most_recent_requests() {
        let stats = Stats::default();
        for i in 0..(KEPT_REQUESTS + 10) {
            stats.begin_request();
            stats.record(RecordedRequest {
                path: format!("/{i}"),
                headers: vec![("Authorization".into(), "Bearer x".into())],
                body: Value::Null,
            });
        }
        let kept = stats.requests();
        assert_eq!(kept.len(), KEPT_REQUESTS);
        assert_eq!(kept[0].path, "/10");
        let last = stats.last_request().unwrap();
        assert_eq!(last.path, format!("/{}", KEPT_REQUESTS + 9));
        assert_eq!(last.header("authorization"), Some("Bearer x"));
        assert_eq!(stats.request_count(), (KEPT_REQUESTS + 10) as u64);
    }
}
