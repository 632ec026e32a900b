//! This process among the gateway replicas sharing a database: its identity and
//! heartbeat, and the ending of holds that dead replicas left — by any live replica, at
//! start and every few seconds (under a lease, so one replica sweeps at a time), each hold
//! exactly once: settled at what its client had received, the rest released.

use std::collections::HashMap;
use std::time::Duration;

use tokenrouter_core::clock;
use tokenrouter_store::{Batch, Db, Hold, Replica, ReplicaRow, StoreError, UsageRecord, orphan_record};

/// How often a replica says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A replica silent for this long is dead (four missed heartbeats).
const DEAD_AFTER_SECS: i64 = 20;
/// How often a live replica looks for holds of dead ones.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);
const SWEEP_LEASE: &str = "hold-sweeper";

/// Who this process is.
pub fn identity() -> Replica {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    Replica {
        id: format!("rep_{}", uuid::Uuid::now_v7().simple()),
        host,
        pid: std::process::id(),
        started_at: clock::now_unix(),
    }
}

/// Whether `row` is a replica that can no longer settle its holds.
fn is_dead(row: &ReplicaRow, me: &Replica, now: i64) -> bool {
    if row.id == me.id {
        return false;
    }
    if row.seen_at < now - DEAD_AFTER_SECS {
        return true;
    }
    // A replica of this host whose process is gone (restarted after a crash) is known
    // dead at once, without waiting for its heartbeat to go stale.
    row.host == me.host && process_gone(row.pid)
}

/// Whether no process `pid` runs on this host (`false` when that cannot be told).
fn process_gone(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// Ends every hold whose replica is dead (or unknown). Returns how many.
pub async fn end_orphans(db: &Db, me: &Replica) -> Result<usize, StoreError> {
    let now = clock::now_unix();
    let replicas: HashMap<String, ReplicaRow> = db.replicas().await?.into_iter().map(|r| (r.id.clone(), r)).collect();
    let dead = |hold: &Hold| match replicas.get(&hold.replica) {
        // A queued job's hold is the job machinery's to end (`jobs::sweep_once`).
        _ if hold.replica == tokenrouter_store::JOB_HOLDER => false,
        Some(row) => is_dead(row, me, now),
        None => hold.replica != me.id,
    };
    let orphans: Vec<UsageRecord> =
        db.open_holds().await?.iter().filter(|h| dead(h)).map(|h| orphan_record(h, now)).collect();
    if !orphans.is_empty() {
        let delivered: i64 = orphans.iter().map(|r| r.cost.0).sum();
        db.write_batch(Batch { usage: &orphans, ..Batch::default() }).await?;
        tracing::warn!(
            holds = orphans.len(),
            charged_nano_usd = delivered,
            "ended holds left by gateway processes that died (charged what they had delivered)"
        );
    }
    for row in replicas.values().filter(|r| is_dead(r, me, now)) {
        // Its running jobs are claimable now (they run again: charged at most once).
        let resumed = db.expire_job_leases(&row.id).await?;
        if resumed > 0 {
            tracing::warn!(jobs = resumed, replica = %row.id, "jobs a dead replica was running will run again");
        }
        db.forget_replica(&row.id).await?;
    }
    Ok(orphans.len())
}

/// Beats while the process runs; sweeps dead replicas' holds when it holds the lease.
pub async fn keep_alive(db: Db, me: Replica, alive: std::sync::Weak<crate::state::Shared>) {
    let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        beat.tick().await;
        if alive.upgrade().is_none() {
            return;
        }
        let now = clock::now_unix();
        if let Err(e) = db.heartbeat(&me, now).await {
            tracing::warn!(error = %e, "could not write this replica's heartbeat");
            continue;
        }
        if last_sweep.elapsed() < SWEEP_EVERY {
            continue;
        }
        last_sweep = tokio::time::Instant::now();
        let lease = i64::try_from(SWEEP_EVERY.as_secs() * 2).unwrap_or(30);
        match db.try_lease(SWEEP_LEASE, &me.id, now, lease).await {
            Ok(true) => {
                if let Err(e) = end_orphans(&db, &me).await {
                    tracing::warn!(error = %e, "could not end the holds of dead replicas");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not take the sweeper's lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_is_dead_when_silent_or_when_its_process_on_this_host_is_gone() {
        let me = Replica { id: "me".into(), host: "h".into(), pid: std::process::id(), started_at: 0 };
        let row = |id: &str, host: &str, pid: u32, seen_at: i64| ReplicaRow {
            id: id.into(),
            host: host.into(),
            pid,
            started_at: 0,
            seen_at,
        };
        assert!(!is_dead(&row("me", "h", 1, 0), &me, 1000), "never myself");
        assert!(is_dead(&row("a", "other", 1, 979), &me, 1000), "silent for 21 s");
        assert!(!is_dead(&row("a", "other", 1, 990), &me, 1000), "another host: only its heartbeat tells");
        assert!(!is_dead(&row("a", "h", std::process::id(), 990), &me, 1000), "a live process here");
        assert!(is_dead(&row("a", "h", u32::MAX - 7, 990), &me, 1000), "no such process here");
    }
}
