//! What routing remembers about each deployment (health, averages, attempts in flight),
//! keyed by (provider name, upstream model) so it survives config reloads. Reads are
//! lock-free (a copy-on-write map behind `ArcSwap`); each deployment has its own mutex,
//! held only to read or update a few numbers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};

use super::ewma::{PeakEwma, SuccessRate};
use super::health::Health;
use crate::config::Deployment;

/// Entries idle this long (no attempt begun or reported, none in flight) are dropped the
/// next time a new deployment is added, so pairs no longer configured do not pile up.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct Stats {
    pub health: Health,
    pub latency: PeakEwma,
    pub success: SuccessRate,
    pub in_flight: u32,
    pub last_used: Instant,
}

#[derive(Debug)]
pub struct Slot(Mutex<Stats>);

impl Slot {
    fn new(now: Instant) -> Slot {
        Slot(Mutex::new(Stats {
            health: Health::default(),
            latency: PeakEwma::default(),
            success: SuccessRate::default(),
            in_flight: 0,
            last_used: now,
        }))
    }

    /// Nothing panics while holding the lock, and the numbers stay valid if something did.
    pub fn lock(&self) -> MutexGuard<'_, Stats> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// provider name → upstream model → slot.
pub type Map = HashMap<String, HashMap<String, Arc<Slot>>>;

#[derive(Default)]
pub struct Slots {
    map: ArcSwap<Map>,
    /// Serialises the (rare) writers; readers never take it.
    writer: Mutex<()>,
}

impl Slots {
    /// A snapshot of the map for a few look-ups.
    pub fn load(&self) -> Guard<Arc<Map>> {
        self.map.load()
    }

    /// The deployment's slot, created (and stale ones dropped) on first use.
    pub fn get_or_insert(&self, deployment: &Deployment, now: Instant) -> Arc<Slot> {
        if let Some(slot) = find(&self.load(), deployment) {
            return slot.clone();
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(slot) = find(&current, deployment) {
            return slot.clone();
        }
        let mut next: Map = current
            .iter()
            .map(|(provider, models)| {
                let kept = models.iter().filter(|(_, slot)| !forgettable(slot, now));
                (provider.clone(), kept.map(|(m, s)| (m.clone(), s.clone())).collect::<HashMap<_, _>>())
            })
            .filter(|(_, models)| !models.is_empty())
            .collect();
        let slot = Arc::new(Slot::new(now));
        next.entry(deployment.provider.name.clone())
            .or_default()
            .insert(deployment.upstream_model.clone(), slot.clone());
        self.map.store(Arc::new(next));
        slot
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.load().values().map(HashMap::len).sum()
    }
}

pub fn find<'a>(map: &'a Map, deployment: &Deployment) -> Option<&'a Arc<Slot>> {
    map.get(deployment.provider.name.as_str())?.get(deployment.upstream_model.as_str())
}

fn forgettable(slot: &Slot, now: Instant) -> bool {
    let stats = slot.lock();
    stats.in_flight == 0 && now.saturating_duration_since(stats.last_used) >= FORGET_AFTER
}
