//! The gateway's shared state: the config and key snapshots (swapped atomically, read
//! without locks on the hot path), the store, the upstream client, the usage writer and
//! this replica's identity.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokenrouter_store::{Change, Db, Replica};

use crate::auth::KeySnapshot;
use crate::config::Config;
use crate::journal::Journal;
use crate::limits::Limits;
use crate::metering::UsageWriter;
use crate::policy::IpAllowlists;
use crate::retention::Retention;
use crate::routing::Routing;
use crate::settlement::HoldQueue;
use crate::upstream::UpstreamClient;

/// How often the key snapshot checks the store for keys created or revoked elsewhere.
pub const KEY_REFRESH_EVERY: Duration = Duration::from_millis(250);
/// The least time between two refreshes forced by requests with an unknown key.
const FORCED_REFRESH_GAP_MS: i64 = 50;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: ArcSwap<Config>,
    pub keys: ArcSwap<KeySnapshot>,
    pub db: Db,
    pub upstream: UpstreamClient,
    pub usage: UsageWriter,
    /// Takes requests' holds in batches.
    pub holds: HoldQueue,
    /// Sign-in attempts and redemptions per client address.
    pub abuse: crate::abuse::Abuse,
    /// Deployment health and the strategies' state.
    pub routing: Routing,
    /// This process among the replicas sharing the database.
    pub replica: Replica,
    /// Per-key RPM/TPM buckets.
    pub limits: Limits,
    /// What `/metrics` counts.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The store's gauges for `/metrics`, read at most every few seconds.
    pub store_gauges: crate::recent::Recent<crate::metrics::Snapshot>,
    /// `/ready`'s database check (`None`: it answered), made at most once a second.
    pub store_check: crate::recent::Recent<Option<&'static str>>,
    /// Keys' IP allowlists, parsed.
    pub allowlists: IpAllowlists,
    /// Responses kept for `previous_response_id`.
    pub retention: Arc<Retention>,
    /// Online community instances as deployments (the routing table).
    pub instances: crate::instances::routing::LiveInstances,
    /// Wakes this replica's instance prober (see [`AppState::instances_changed`]).
    pub probe_wake: Arc<tokio::sync::Notify>,
    /// Wakes this replica's job workers when it queued a job.
    pub jobs_wake: Arc<tokio::sync::Notify>,
    /// The rate-limit admissions of jobs queued here, for their runs to settle.
    pub job_admissions: crate::jobs::admissions::Admissions,
    /// Where the config came from, to reload it (SIGHUP, `POST /api/admin/reload`).
    pub reload: crate::reload::Reloader,
    /// The span exporter; `None` when traces are off (no `[telemetry] otlp_endpoint`).
    pub traces: Option<crate::telemetry::Traces>,
    /// Set once SIGTERM/SIGINT arrived: `/ready` answers 503 while requests finish.
    draining: AtomicBool,
    /// When the newest key reload began (Unix ms).
    last_refresh_ms: AtomicI64,
    /// Taken by requests with a key the snapshot does not know, one at a time.
    refresh_gate: tokio::sync::Mutex<()>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The state a background task holds while it works (it keeps only a weak reference
    /// between turns, so that the gateway can stop).
    pub(crate) fn from_shared(shared: Arc<Shared>) -> AppState {
        AppState(shared)
    }

    /// A reference that does not keep the gateway alive (for background tasks).
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Shared> {
        Arc::downgrade(&self.0)
    }

    /// The models as a request sees them now: the config with the online instances.
    pub fn catalog(&self) -> crate::instances::routing::Catalog {
        crate::instances::routing::Catalog::new(self.config.load_full(), self.instances.load_full())
    }

    /// An instance was registered or changed: the prober looks for due instances now
    /// rather than at its next tick (the store already made it due).
    pub fn instances_changed(&self) {
        self.probe_wake.notify_one();
    }

    /// The gateway stopped accepting connections and is finishing its requests.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Loads the keys and starts the background tasks (key refresh, usage writer).
    pub async fn start(config: Config, db: Db) -> Result<AppState, tokenrouter_store::StoreError> {
        AppState::start_with_journal(config, db, None).await
    }

    /// Starts with a usage journal: records a previous process journaled are written to
    /// the store first (idempotently), then leftover holds are released.
    pub async fn start_with_journal(
        config: Config,
        db: Db,
        journal: Option<Journal>,
    ) -> Result<AppState, tokenrouter_store::StoreError> {
        if let Some(journal) = &journal {
            replay(journal, &db).await?;
        }
        let journal = journal.map(Arc::new);
        let upstream = UpstreamClient::for_config(&config);
        let replica = crate::replicas::identity();
        db.heartbeat(&replica, tokenrouter_core::clock::now_unix()).await?;
        // Holds of processes that died (this host's previous run, or any silent replica)
        // end before this one serves.
        crate::replicas::end_orphans(&db, &replica).await?;
        let version = db.keys_version().await?;
        let keys = KeySnapshot::new(version, db.active_keys().await?);
        let limits = match &config.redis.url {
            Some(url) => {
                let limits = Limits::redis(url, &config.redis.key_prefix).await;
                let endpoint = tokenrouter_store::counters::endpoint(url);
                tracing::info!(redis = %endpoint, "rate limits shared through Redis");
                limits
            }
            None => {
                if matches!(db, Db::Postgres(_)) {
                    tracing::warn!(
                        "no [redis] configured: with several replicas on this database, each applies RPM/TPM limits on its own (limits × replicas); money stays exact"
                    );
                }
                Limits::local()
            }
        };
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let usage = UsageWriter::start(db.clone(), journal, metrics.clone());
        let traces = crate::telemetry::Traces::start(&config.telemetry);
        let config = Arc::new(config);
        let instances = crate::instances::routing::LiveInstances::new(config.clone());
        instances.refresh(&db, config.clone()).await?;
        let state = AppState(Arc::new(Shared {
            config: ArcSwap::new(config),
            instances,
            keys: ArcSwap::from_pointee(keys),
            holds: HoldQueue::start(db.clone(), usage.clone()),
            abuse: crate::abuse::Abuse::default(),
            usage,
            db,
            upstream,
            routing: Routing::new(),
            replica,
            limits,
            metrics,
            store_gauges: crate::recent::Recent::new(Duration::from_secs(5)),
            store_check: crate::recent::Recent::new(Duration::from_secs(1)),
            allowlists: IpAllowlists::default(),
            retention: Arc::default(),
            draining: AtomicBool::new(false),
            last_refresh_ms: AtomicI64::new(0),
            refresh_gate: tokio::sync::Mutex::new(()),
            probe_wake: Arc::default(),
            jobs_wake: Arc::default(),
            job_admissions: crate::jobs::admissions::Admissions::default(),
            reload: crate::reload::Reloader::default(),
            traces,
        }));
        tokio::spawn(refresh_keys(state.clone()));
        tokio::spawn(crate::instances::probe::run(
            Arc::downgrade(&state.0),
            state.probe_wake.clone(),
            crate::instances::connector::Resolver::System,
        ));
        tokio::spawn(crate::instances::routing::keep_fresh(Arc::downgrade(&state.0)));
        tokio::spawn(crate::replicas::keep_alive(state.db.clone(), state.replica.clone(), Arc::downgrade(&state.0)));
        if let Some(changes) = state.db.changes().await? {
            tokio::spawn(follow_changes(changes, Arc::downgrade(&state.0)));
        }
        tokio::spawn(crate::retention::forget_expired(state.db.clone(), Arc::downgrade(&state.0)));
        tokio::spawn(crate::jobs::work(Arc::downgrade(&state.0), state.jobs_wake.clone()));
        tokio::spawn(crate::jobs::sweep(Arc::downgrade(&state.0)));
        Ok(state)
    }

    /// Makes sure the key snapshot was loaded after `arrived_ms` (a request's arrival,
    /// Unix ms) — for a well-formed key it does not know, which may have been created a
    /// moment ago elsewhere. Requests wait their turn; a reload that began after they
    /// arrived serves them all, and reloads forced this way are at least 50 ms apart, so
    /// unknown keys cannot flood the store.
    pub async fn refresh_keys_since(&self, arrived_ms: i64) {
        let _turn = self.refresh_gate.lock().await;
        if self.last_refresh_ms.load(Ordering::Acquire) > arrived_ms {
            return;
        }
        let wait = self.last_refresh_ms.load(Ordering::Acquire) + FORCED_REFRESH_GAP_MS
            - tokenrouter_core::clock::now_unix_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
        }
        if let Err(e) = self.reload_keys_if_changed().await {
            tracing::warn!(error = %e, "could not refresh the key snapshot");
        }
    }

    /// Reloads the key snapshot, changed or not.
    pub async fn reload_keys(&self) -> Result<(), tokenrouter_store::StoreError> {
        self.last_refresh_ms.fetch_max(tokenrouter_core::clock::now_unix_ms(), Ordering::AcqRel);
        let version = self.db.keys_version().await?;
        let rows = self.db.active_keys().await?;
        self.keys.store(Arc::new(KeySnapshot::new(version, rows)));
        Ok(())
    }

    /// Reloads the key snapshot when the store says keys changed.
    pub async fn reload_keys_if_changed(&self) -> Result<(), tokenrouter_store::StoreError> {
        self.last_refresh_ms.fetch_max(tokenrouter_core::clock::now_unix_ms(), Ordering::AcqRel);
        let version = self.db.keys_version().await?;
        if version != self.keys.load().version {
            let rows = self.db.active_keys().await?;
            self.keys.store(Arc::new(KeySnapshot::new(version, rows)));
        }
        Ok(())
    }
}

async fn refresh_keys(state: AppState) {
    let weak = Arc::downgrade(&state.0);
    drop(state);
    let mut tick = tokio::time::interval(KEY_REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = weak.upgrade() else { return };
        if let Err(e) = AppState(shared).reload_keys_if_changed().await {
            tracing::warn!(error = %e, "could not refresh the key snapshot");
        }
    }
}

/// Reloads the keys the moment the database announces a change (PostgreSQL); after a
/// lost connection everything is reloaded, since announcements may have been missed. The
/// periodic version check stays as the backstop.
async fn follow_changes(mut changes: tokenrouter_store::Changes, weak: std::sync::Weak<Shared>) {
    loop {
        let next = changes.next().await;
        let Some(shared) = weak.upgrade() else { return };
        let state = AppState(shared);
        match next {
            Ok(Change::Changed) => {
                if let Err(e) = state.reload_keys_if_changed().await {
                    tracing::warn!(error = %e, "could not refresh the key snapshot");
                }
                crate::instances::routing::refresh(&state).await;
            }
            Ok(Change::Reconnected) => {
                tracing::info!("change notifications reconnected; reloading keys");
                if let Err(e) = state.reload_keys().await {
                    tracing::warn!(error = %e, "could not reload the key snapshot");
                }
                crate::instances::routing::refresh(&state).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "change notifications unavailable; polling until they return");
                drop(state);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Writes the records a previous process journaled but may not have committed.
async fn replay(journal: &Journal, db: &Db) -> Result<(), tokenrouter_store::StoreError> {
    let records = match journal.pending() {
        Ok(records) => records,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the usage journal");
            return Ok(());
        }
    };
    if !records.is_empty() {
        for chunk in records.chunks(256) {
            db.record_usage(chunk).await?;
        }
        tracing::info!(records = records.len(), "usage journal replayed");
    }
    journal.lock().clear();
    Ok(())
}
