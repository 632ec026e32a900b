//! A value worth computing at most once per period however often it is asked for (the
//! store's gauges for `/metrics`, the database check of `/ready`): unauthenticated
//! endpoints must not turn a flood of requests into a flood of queries.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct Recent<T> {
    max_age: Duration,
    /// Held while the value is recomputed: callers meanwhile wait and share the result.
    value: Mutex<Option<(Instant, T)>>,
}

impl<T: Clone> Recent<T> {
    pub fn new(max_age: Duration) -> Recent<T> {
        Recent { max_age, value: Mutex::new(None) }
    }

    /// The value computed less than `max_age` ago, else what `compute` gives now.
    pub async fn get<F: Future<Output = T>>(&self, compute: impl FnOnce() -> F) -> T {
        let mut value = self.value.lock().await;
        if let Some((at, value)) = &*value
            && at.elapsed() < self.max_age
        {
            return value.clone();
        }
        let fresh = compute().await;
        *value = Some((Instant::now(), fresh.clone()));
        fresh
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn computes_once_per_period() {
        let recent = Recent::new(Duration::from_secs(60));
        let calls = AtomicU32::new(0);
        for _ in 0..5 {
            let got = recent.get(|| async { calls.fetch_add(1, Ordering::SeqCst) + 10 }).await;
            assert_eq!(got, 10);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let expired = Recent::new(Duration::ZERO);
        expired.get(|| async { calls.fetch_add(1, Ordering::SeqCst) }).await;
        expired.get(|| async { calls.fetch_add(1, Ordering::SeqCst) }).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
