//! Smooth weighted round-robin (nginx's algorithm), one rotation per model id, over the
//! deployments that are not cooling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwap;

use super::slots::FORGET_AFTER;

/// One model's rotation: the current weight of each deployment, by its index in the
/// model's deployment list.
#[derive(Debug)]
pub struct Rotation {
    current: Vec<i64>,
    last_used: Instant,
}

impl Rotation {
    /// Picks among `candidates` (index into the model's deployments, weight): every
    /// candidate's current weight grows by its weight, the largest is chosen (the first on
    /// a tie) and lowered by the candidates' total. `deployments` is the list's length.
    pub fn pick(
        &mut self,
        deployments: usize,
        candidates: impl Iterator<Item = (usize, u32)>,
        now: Instant,
    ) -> Option<usize> {
        if self.current.len() != deployments {
            // The model was reconfigured: start its rotation afresh.
            self.current = vec![0; deployments];
        }
        self.last_used = now;
        let mut total = 0i64;
        let mut best: Option<(usize, i64)> = None;
        for (index, weight) in candidates {
            let Some(current) = self.current.get_mut(index) else { continue };
            let weight = i64::from(weight);
            *current += weight;
            total += weight;
            if best.is_none_or(|(_, b)| b < *current) {
                best = Some((index, *current));
            }
        }
        let (chosen, _) = best?;
        if let Some(current) = self.current.get_mut(chosen) {
            *current -= total;
        }
        Some(chosen)
    }
}

#[derive(Default)]
pub struct Rotations {
    map: ArcSwap<HashMap<String, Arc<Mutex<Rotation>>>>,
    writer: Mutex<()>,
}

impl Rotations {
    /// Runs `f` on the rotation of `model`, holding only that rotation's lock.
    pub fn with<R>(&self, model: &str, now: Instant, f: impl FnOnce(&mut Rotation) -> R) -> R {
        let map = self.map.load();
        if let Some(rotation) = map.get(model) {
            return f(&mut rotation.lock().unwrap_or_else(PoisonError::into_inner));
        }
        drop(map);
        let rotation = self.insert(model, now);
        let mut rotation = rotation.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut rotation)
    }

    /// Creates the rotation of `model`, dropping those idle for an hour.
    fn insert(&self, model: &str, now: Instant) -> Arc<Mutex<Rotation>> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(rotation) = current.get(model) {
            return rotation.clone();
        }
        let mut next: HashMap<_, _> = current
            .iter()
            .filter(|(_, rotation)| {
                let last = rotation.lock().unwrap_or_else(PoisonError::into_inner).last_used;
                now.saturating_duration_since(last) < FORGET_AFTER
            })
            .map(|(id, rotation)| (id.clone(), rotation.clone()))
            .collect();
        let rotation = Arc::new(Mutex::new(Rotation { current: Vec::new(), last_used: now }));
        next.insert(model.to_owned(), rotation.clone());
        self.map.store(Arc::new(next));
        rotation
    }
}
