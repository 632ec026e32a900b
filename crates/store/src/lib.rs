//! Token Router's state: accounts, their ledger, API keys, holds, usage, kept responses,
//! community instances, async jobs and the processes sharing them, behind one `Db`
//! handle — SQLite (embedded default) or PostgreSQL (several replicas) — and the
//! rate-limit counters.
//!
//! `Db` is an enum over storage backends whose async methods delegate to the backend, so
//! callers never name one. Each backend has its own module and migrations folder; the
//! same test suite runs against both.

/// Calls the same method on whichever backend this is.
macro_rules! delegate {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            $crate::Db::Sqlite(db) => db.$method($($arg),*).await,
            $crate::Db::Postgres(db) => db.$method($($arg),*).await,
        }
    };
}

mod accounts;
pub mod counters;
mod error;
mod holds;
mod instances;
mod jobs;
mod keys;
mod postgres;
mod reports;
mod responses;
mod rows;
mod sessions;
mod settle;
mod sqlite;
mod usage;

pub use accounts::{Account, LedgerRow};
pub use error::StoreError;
pub use holds::{Hold, HoldOutcome, NewHold, Progress, Replica, ReplicaRow};
pub use instances::{
    FAILURES_TO_OFFLINE, Instance, InstanceChanges, InstanceModel, InstanceStats, InstanceStatus, NewInstance,
    NewProcessingUnit, NewSoftware, ProbeResult, ProbeStatus, ProcessingUnit, Software, USAGE_FLAG_SECS, provider_name,
};
pub use jobs::{
    Cancellation, JOB_HOLDER, JOBS_PAGE_MAX, Job, JobFilter, JobKind, JobOutcome, JobStatus, NewJob, StrandedHold,
};
pub use keys::{KeyChanges, KeyRow, KeyScope, NewKey, Revocation};
pub use postgres::{Change, Changes, PostgresDb};
pub use reports::{RequestFilter, RequestRow, UsageGroup, UsageTotals};
pub use responses::{KeptChain, KeptResponse};
pub use sessions::{GithubProfile, Redemption, SecretHash};
pub use sqlite::SqliteDb;
pub use tokenrouter_core::NanoUsd;
use tokenrouter_core::Usage;
pub use usage::{Earning, UsageRecord, UsageSource};

/// What settles in one transaction (see [`Db::write_batch`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Batch<'a> {
    /// Usage of finished requests; each closes its request's hold and is charged once.
    pub usage: &'a [UsageRecord],
    /// Holds to release with no charge (requests that never reached an answer and
    /// recorded nothing).
    pub releases: &'a [String],
    /// Checkpoints of requests still streaming.
    pub progress: &'a [Progress],
}

impl Batch<'_> {
    fn is_empty(&self) -> bool {
        self.usage.is_empty() && self.releases.is_empty() && self.progress.is_empty()
    }
}

/// A handle to the database. Cheap to clone: every backend holds a shared pool.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(PostgresDb),
}

impl Db {
    /// Opens the database at `url` and runs pending migrations.
    ///
    /// Accepted: `sqlite://path.db`, `sqlite:path.db`, `sqlite::memory:` (the file is
    /// created when missing), and `postgres://…` / `postgresql://…` (the database must
    /// exist; several processes may migrate at once, one at a time).
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        let db = Db::open(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Opens the database at `url` without migrating it.
    pub async fn open(url: &str) -> Result<Db, StoreError> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Ok(Db::Sqlite(SqliteDb::open(url).await?)),
            "postgres" | "postgresql" => Ok(Db::Postgres(PostgresDb::open(url).await?)),
            other => Err(StoreError::UnsupportedUrl(other.to_owned())),
        }
    }

    /// Applies pending migrations; returns how many were applied.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        delegate!(self.migrate())
    }

    /// The backend's name, for logs: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Creates an account; a non-zero `initial_balance` is written as a 'credit' ledger row.
    pub async fn create_account(&self, name: &str, initial_balance: NanoUsd) -> Result<Account, StoreError> {
        delegate!(self.create_account(name, initial_balance))
    }

    pub async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError> {
        delegate!(self.account_by_name(name))
    }

    pub async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        delegate!(self.account_by_id(id))
    }

    /// Adds `amount` to the named account's balance with a ledger row ('credit' when
    /// non-negative, 'adjustment' when negative); returns the updated account. A debit
    /// that would leave less than the account holds for requests in flight is refused.
    pub async fn credit(&self, account: &str, amount: NanoUsd, memo: &str) -> Result<Account, StoreError> {
        delegate!(self.credit(account, amount, memo))
    }

    /// An admin's credit to the named account: a `grant` ledger row (`memo` names the admin).
    pub async fn grant(&self, account: &str, amount: NanoUsd, memo: &str) -> Result<Account, StoreError> {
        delegate!(self.move_balance(account, amount, memo, "grant"))
    }

    /// Accounts, newest first: at most `limit`, with ids below `before`.
    pub async fn list_accounts(&self, limit: i64, before: Option<i64>) -> Result<Vec<Account>, StoreError> {
        delegate!(self.list_accounts(limit, before))
    }

    /// The account's ledger rows, newest first: at most `limit`, with ids below `before`.
    pub async fn ledger_page(
        &self,
        account_id: i64,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        delegate!(self.ledger_page(account_id, limit, before))
    }

    /// The sum of the account's ledger rows up to and including row `id`: the balance
    /// right after it.
    pub async fn ledger_sum_through(&self, account_id: i64, id: i64) -> Result<NanoUsd, StoreError> {
        delegate!(self.ledger_sum_through(account_id, id))
    }

    /// Disables (its keys stop working) or enables the named account; bumps `keys_version`.
    pub async fn set_account_disabled(&self, account: &str, disabled: bool) -> Result<Account, StoreError> {
        delegate!(self.set_account_disabled(account, disabled))
    }

    /// The account's newest `limit` ledger rows, newest first.
    pub async fn ledger(&self, account_id: i64, limit: i64) -> Result<Vec<LedgerRow>, StoreError> {
        delegate!(self.ledger(account_id, limit))
    }

    /// The sum of all the account's ledger rows (equal to its balance).
    pub async fn ledger_sum(&self, account_id: i64) -> Result<NanoUsd, StoreError> {
        delegate!(self.ledger_sum(account_id))
    }

    /// Stores a new key and bumps `keys_version`.
    pub async fn insert_key(&self, key: &NewKey) -> Result<(), StoreError> {
        delegate!(self.insert_key(key))
    }

    /// All of the account's keys, revoked ones included, newest first.
    pub async fn list_keys(&self, account_id: i64) -> Result<Vec<KeyRow>, StoreError> {
        delegate!(self.list_keys(account_id))
    }

    /// One of the account's keys (revoked ones too); `None` for another account's.
    pub async fn account_key(&self, account_id: i64, id: &str) -> Result<Option<KeyRow>, StoreError> {
        delegate!(self.account_key(account_id, id))
    }

    /// Changes one of the account's keys that is not revoked, in one statement, and bumps
    /// `keys_version` (every replica sees it within a second); the key as it now is, or
    /// `None` when the account has no such key or it is revoked.
    pub async fn update_key(
        &self,
        account_id: i64,
        id: &str,
        changes: &KeyChanges,
    ) -> Result<Option<KeyRow>, StoreError> {
        delegate!(self.update_key(account_id, id, changes))
    }

    /// Revokes one of the account's keys and bumps `keys_version`.
    pub async fn revoke_account_key(&self, account_id: i64, id: &str) -> Result<Revocation, StoreError> {
        delegate!(self.revoke_account_key(account_id, id))
    }

    /// When each of the account's keys last served a request (its newest usage row).
    pub async fn keys_last_used(&self, account_id: i64) -> Result<Vec<(String, i64)>, StoreError> {
        delegate!(self.keys_last_used(account_id))
    }

    /// Marks the key revoked (a no-op if it already is) and bumps `keys_version`.
    pub async fn revoke_key(&self, id: &str) -> Result<(), StoreError> {
        delegate!(self.revoke_key(id))
    }

    /// Answers when the database does: one indexed read of one row (readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.keys_version().await.map(|_| ())
    }

    /// A counter that changes whenever a key is inserted or revoked or an account is
    /// disabled or enabled.
    pub async fn keys_version(&self) -> Result<i64, StoreError> {
        delegate!(self.keys_version())
    }

    /// Every key that may authenticate: not revoked (expired ones included), of an
    /// account that is not disabled, with its account's name.
    pub async fn active_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        delegate!(self.active_keys())
    }

    /// Pushed notifications of key and account changes (PostgreSQL `LISTEN`); `None`
    /// for SQLite, where processes share a file and poll `keys_version`.
    pub async fn changes(&self) -> Result<Option<Changes>, StoreError> {
        match self {
            Db::Sqlite(_) => Ok(None),
            Db::Postgres(db) => db.changes().await.map(Some),
        }
    }

    /// Makes the named account an admin (or not).
    pub async fn set_admin(&self, account: &str, admin: bool) -> Result<Account, StoreError> {
        delegate!(self.set_admin(account, admin))
    }

    /// The account a GitHub user signs in to (found by GitHub's numeric id, never by login).
    pub async fn account_by_github_id(&self, github_id: i64) -> Result<Option<Account>, StoreError> {
        delegate!(self.account_by_github_id(github_id))
    }

    /// Refreshes an account's GitHub display fields (login, name, avatar, email) and makes
    /// it an admin when `admin` (an admin stays one otherwise).
    pub async fn update_github_profile(
        &self,
        account_id: i64,
        profile: &GithubProfile,
        admin: bool,
    ) -> Result<Account, StoreError> {
        delegate!(self.update_github_profile(account_id, profile, admin))
    }

    /// Creates the account of a GitHub user, named after their login (`login-2`, `-3`, …
    /// when taken). When the same user is being created at the same moment elsewhere, the
    /// account that won is returned.
    pub async fn create_github_account(&self, profile: &GithubProfile, admin: bool) -> Result<Account, StoreError> {
        for attempt in 1..=50 {
            let name = if attempt == 1 { profile.login.clone() } else { format!("{}-{attempt}", profile.login) };
            let created = match self {
                Db::Sqlite(db) => db.insert_github_account(&name, profile, admin).await,
                Db::Postgres(db) => db.insert_github_account(&name, profile, admin).await,
            };
            match created {
                Ok(account) => return Ok(account),
                Err(StoreError::AccountExists(_)) => {
                    if let Some(account) = self.account_by_github_id(profile.id).await? {
                        return Ok(account);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::AccountExists(profile.login.clone()))
    }

    /// The account's usage from `from` to `to` (Unix seconds, whole hours: `[from, to)`),
    /// grouped; time buckets in order, the others by cost, highest first.
    pub async fn usage_totals(
        &self,
        account_id: i64,
        from: i64,
        to: i64,
        group: UsageGroup,
    ) -> Result<Vec<UsageTotals>, StoreError> {
        delegate!(self.usage_totals(account_id, from, to, group))
    }

    /// The account's request log, newest first: at most `limit` rows older than `before`
    /// (`(created_at, request_id)` of the previous page's last row).
    pub async fn requests_page(
        &self,
        account_id: i64,
        filter: &RequestFilter,
        limit: i64,
        before: Option<(i64, String)>,
    ) -> Result<Vec<RequestRow>, StoreError> {
        delegate!(self.requests_page(account_id, filter, limit, before))
    }

    /// One request of the account's log by its id; `None` when unknown or another
    /// account's.
    pub async fn request_by_id(&self, account_id: i64, request_id: &str) -> Result<Option<RequestRow>, StoreError> {
        delegate!(self.request_by_id(account_id, request_id))
    }

    /// Starts a session for the account, valid until `expires_at`.
    pub async fn create_session(
        &self,
        token: &SecretHash,
        account_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        delegate!(self.create_session(token, account_id, now, expires_at))
    }

    /// The account of a session that has not expired or ended, and is not disabled.
    pub async fn session_account(&self, token: &SecretHash, now: i64) -> Result<Option<Account>, StoreError> {
        delegate!(self.session_account(token, now))
    }

    /// Ends a session; whether there was one.
    pub async fn end_session(&self, token: &SecretHash) -> Result<bool, StoreError> {
        delegate!(self.end_session(token))
    }

    /// Records a one-time sign-in link for the account, usable until `expires_at`.
    pub async fn create_login_link(
        &self,
        token: &SecretHash,
        account_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        delegate!(self.create_login_link(token, account_id, now, expires_at))
    }

    /// Uses a sign-in link: the account it signs in, once — a used, expired or unknown
    /// link (or one for a disabled account) gives `None`, however many try at once.
    pub async fn use_login_link(&self, token: &SecretHash, now: i64) -> Result<Option<i64>, StoreError> {
        delegate!(self.use_login_link(token, now))
    }

    /// Stores redemption codes (their hashes), each worth `amount`.
    pub async fn create_codes(
        &self,
        codes: &[SecretHash],
        amount: NanoUsd,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        delegate!(self.create_codes(codes, amount, now, expires_at))
    }

    /// Redeems a code for the account: one transaction marks it used (only if unused and
    /// unexpired), credits the balance and writes a `redemption` ledger row — so a code
    /// credits exactly once, whatever number of processes redeem it at the same moment.
    pub async fn redeem_code(&self, code: &SecretHash, account_id: i64, now: i64) -> Result<Redemption, StoreError> {
        delegate!(self.redeem_code(code, account_id, now))
    }

    /// Holds `hold.amount` for a request: one conditional write that succeeds only when
    /// the account's balance less what it holds, and the key's spend limit less what it
    /// spent and holds, both cover it — whatever other processes hold at the same time.
    pub async fn hold(&self, hold: &NewHold) -> Result<HoldOutcome, StoreError> {
        let outcomes = self.hold_many(std::slice::from_ref(hold)).await?;
        outcomes
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Database(sqlx::Error::Protocol("no outcome for a hold".to_owned())))
    }

    /// Takes many holds in one transaction (one round trip on PostgreSQL), each the same
    /// conditional write as [`Db::hold`], each seeing the ones taken before it; one outcome
    /// per hold, in the order given. When it fails, none was taken.
    pub async fn hold_many(&self, holds: &[NewHold]) -> Result<Vec<HoldOutcome>, StoreError> {
        if holds.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(negative) = holds.iter().find(|h| h.amount.0 < 0) {
            return Err(StoreError::NegativeHold(negative.request_id.clone()));
        }
        delegate!(self.hold_many(holds))
    }

    /// Records a batch of usage in one transaction, charging each new request once.
    pub async fn record_usage(&self, usage: &[UsageRecord]) -> Result<(), StoreError> {
        self.write_batch(Batch { usage, ..Batch::default() }).await
    }

    /// One transaction: records `usage` (each request's row once, idempotent by request
    /// id; a new row closes its hold and charges its cost — capped so that an account never
    /// drops below what it holds for other requests — to the account's balance and the
    /// key's spend, with one ledger row), releases `releases`, and checkpoints `progress`.
    pub async fn write_batch(&self, batch: Batch<'_>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        delegate!(self.write_batch(batch))
    }

    /// Every hold still open.
    pub async fn open_holds(&self) -> Result<Vec<Hold>, StoreError> {
        delegate!(self.open_holds())
    }

    /// How many holds are open (requests and jobs in flight on every replica).
    pub async fn open_hold_count(&self) -> Result<u64, StoreError> {
        delegate!(self.open_hold_count())
    }

    /// What the account holds for requests in flight.
    pub async fn held(&self, account_id: i64) -> Result<NanoUsd, StoreError> {
        delegate!(self.held(account_id))
    }

    /// Announces a process (or notes it is still alive).
    pub async fn heartbeat(&self, replica: &Replica, now: i64) -> Result<(), StoreError> {
        delegate!(self.heartbeat(replica, now))
    }

    /// Every process that announced itself.
    pub async fn replicas(&self) -> Result<Vec<ReplicaRow>, StoreError> {
        delegate!(self.replicas())
    }

    /// Forgets a process (it stopped cleanly, or is known dead).
    pub async fn forget_replica(&self, id: &str) -> Result<(), StoreError> {
        delegate!(self.forget_replica(id))
    }

    /// Takes or renews the lease `name` for `holder` until `now + ttl_secs`; whether
    /// `holder` has it (it does when it held it already or the lease had expired).
    pub async fn try_lease(&self, name: &str, holder: &str, now: i64, ttl_secs: i64) -> Result<bool, StoreError> {
        delegate!(self.try_lease(name, holder, now, ttl_secs))
    }

    pub async fn usage_by_request(&self, request_id: &str) -> Result<Option<UsageRecord>, StoreError> {
        delegate!(self.usage_by_request(request_id))
    }

    pub async fn usage_count(&self) -> Result<i64, StoreError> {
        delegate!(self.usage_count())
    }

    /// Keeps (or replaces) a response.
    pub async fn keep_response(&self, kept: &KeptResponse) -> Result<(), StoreError> {
        delegate!(self.keep_response(kept))
    }

    /// The record of a response of this account that has not expired at `now` (what its
    /// turn added, not the conversation: see [`Db::kept_chain`]).
    pub async fn kept_response(&self, id: &str, account_id: i64, now: i64) -> Result<Option<Vec<u8>>, StoreError> {
        delegate!(self.kept_response(id, account_id, now))
    }

    /// The conversation that response `id` of this account ends, in one round trip: its
    /// record and those of the responses it continues, walked back by their links —
    /// every one of this account, at most `max` of them. `id` must not have expired at
    /// `now`; the earlier ones are kept for as long as a later one needs them.
    pub async fn kept_chain(&self, id: &str, account_id: i64, now: i64, max: usize) -> Result<KeptChain, StoreError> {
        delegate!(self.kept_chain(id, account_id, now, max))
    }

    /// The answer of a response of this account that has not expired at `now`.
    pub async fn kept_answer(&self, id: &str, account_id: i64, now: i64) -> Result<Option<Vec<u8>>, StoreError> {
        delegate!(self.kept_answer(id, account_id, now))
    }

    /// Deletes one response of this account; whether there was one.
    pub async fn forget_response(&self, id: &str, account_id: i64) -> Result<bool, StoreError> {
        delegate!(self.forget_response(id, account_id))
    }

    /// Deletes the responses that expired by `now` and that no kept response continues
    /// (an expired one stays while a later turn of its conversation is kept); returns how
    /// many.
    pub async fn forget_responses(&self, now: i64) -> Result<u64, StoreError> {
        delegate!(self.forget_responses(now))
    }

    /// Registers an instance with its models, in one transaction: `pending`, due for a
    /// probe at once. A model listed twice is refused (`DuplicateInstanceModel`).
    pub async fn create_instance(&self, new: &NewInstance) -> Result<Instance, StoreError> {
        delegate!(self.create_instance(new))
    }

    /// The account's instances with their models, newest first.
    pub async fn instances_of(&self, account_id: i64) -> Result<Vec<Instance>, StoreError> {
        delegate!(self.instances_of(account_id))
    }

    /// One of the account's instances; `None` for another account's.
    pub async fn instance(&self, account_id: i64, id: &str) -> Result<Option<Instance>, StoreError> {
        delegate!(self.instance(account_id, id))
    }

    /// An instance whoever owns it (admins, the prober).
    pub async fn instance_by_id(&self, id: &str) -> Result<Option<Instance>, StoreError> {
        delegate!(self.instance_by_id(id))
    }

    /// What the routing table is built from: instances that are online, enabled, not
    /// disabled by an admin, of accounts that are not disabled; with their models.
    pub async fn all_routable_instances(&self) -> Result<Vec<Instance>, StoreError> {
        delegate!(self.all_routable_instances())
    }

    /// Changes one of the account's instances in one transaction (`None`: no such
    /// instance of this account). A new address or model list, or turning it on or off,
    /// makes it `pending` (or `disabled`) with a new revision, due for a probe at once.
    pub async fn update_instance(
        &self,
        account_id: i64,
        id: &str,
        changes: &InstanceChanges,
    ) -> Result<Option<Instance>, StoreError> {
        delegate!(self.update_instance(account_id, id, changes))
    }

    /// Deletes one of the account's instances with its models, inventory and probe
    /// history; whether there was one. Usage and ledger rows keep its id as text.
    pub async fn delete_instance(&self, account_id: i64, id: &str) -> Result<bool, StoreError> {
        delegate!(self.delete_instance(account_id, id))
    }

    /// Replaces the hash of one of the account's instance keys; the instance waits for a
    /// probe with the new key (`pending`, new revision).
    pub async fn rotate_instance_key(
        &self,
        account_id: i64,
        id: &str,
        api_key: &str,
    ) -> Result<Option<Instance>, StoreError> {
        delegate!(self.rotate_instance_key(account_id, id, api_key))
    }

    /// An admin's switch on any instance: `disabled` at once; turned back on, `pending`
    /// (or `disabled` when its owner turned it off).
    pub async fn set_admin_disabled(&self, id: &str, disabled: bool) -> Result<Option<Instance>, StoreError> {
        delegate!(self.set_admin_disabled(id, disabled))
    }

    /// Records a probe's verdict (status, detail, latency, time; an online verdict resets
    /// the failure count, others add one) and keeps it for the uptime. Not recorded (and
    /// `false`) when the instance is gone, disabled, or changed since the probed revision.
    pub async fn record_probe(&self, id: &str, result: &ProbeResult) -> Result<bool, StoreError> {
        delegate!(self.record_probe(id, result))
    }

    /// Health from traffic: a good request resets the instance's failure count; the
    /// [`FAILURES_TO_OFFLINE`]th failure in a row takes an online instance offline until
    /// its next good probe. Whether this call took it offline. Each call is a statement:
    /// callers report a good request only after a failure (a count kept in memory).
    pub async fn record_request_outcome(&self, id: &str, ok: bool) -> Result<bool, StoreError> {
        delegate!(self.record_request_outcome(id, ok))
    }

    /// Claims up to `limit` instances due for a probe (enabled, not admin-disabled, lease
    /// free or expired at `now`) for `replica_id` until `now + lease_secs`, atomically: two
    /// replicas never get the same instance. The lease is also the schedule: an instance is
    /// next due when its lease ends (a change makes it due at once).
    pub async fn take_probe_lease(
        &self,
        replica_id: &str,
        now: i64,
        lease_secs: i64,
        limit: i64,
    ) -> Result<Vec<Instance>, StoreError> {
        delegate!(self.take_probe_lease(replica_id, now, lease_secs, limit))
    }

    /// How many instances there are in each status: every status, in
    /// [`InstanceStatus::ALL`]'s order, zeros included.
    pub async fn instance_counts(&self) -> Result<Vec<(InstanceStatus, u64)>, StoreError> {
        delegate!(self.instance_counts())
    }

    /// A counter bumped by every change that may alter the routable instances (PostgreSQL
    /// also notifies listeners, see [`Db::changes`]).
    pub async fn instances_version(&self) -> Result<i64, StoreError> {
        delegate!(self.instances_version())
    }

    /// Flags an instance that reported more usage than the gateway counted: `detail` and
    /// `at` are kept (in columns of their own, which probes leave alone) and shown to the
    /// owner for a day (see [`Instance::detail_at`]). A flag at most a minute newer than
    /// the last is not written; `true` when this one was.
    pub async fn flag_instance(&self, id: &str, detail: &str, at: i64) -> Result<bool, StoreError> {
        delegate!(self.flag_instance(id, detail, at))
    }

    /// Every account's instances (admins), newest first: up to `limit` from after the id
    /// `before`.
    pub async fn all_instances(&self, limit: i64, before: Option<&str>) -> Result<Vec<Instance>, StoreError> {
        delegate!(self.all_instances(limit, before))
    }

    /// What the instance did from `since` on (the API passes 24 hours ago): see
    /// [`InstanceStats`]. Callers check the instance is the account's first.
    pub async fn instance_stats(&self, id: &str, since: i64) -> Result<InstanceStats, StoreError> {
        delegate!(self.instance_stats(id, since))
    }

    /// The processing units of one of the account's instances, in the order added;
    /// `None` when it is not the account's.
    pub async fn processing_units(
        &self,
        account_id: i64,
        instance_id: &str,
    ) -> Result<Option<Vec<ProcessingUnit>>, StoreError> {
        delegate!(self.processing_units(account_id, instance_id))
    }

    /// Adds a processing unit to one of the account's instances (`None`: not the
    /// account's). The database refuses a kind outside gpu/cpu/npu/tpu and a count or
    /// memory below 1.
    pub async fn add_processing_unit(
        &self,
        account_id: i64,
        instance_id: &str,
        unit: &NewProcessingUnit,
    ) -> Result<Option<ProcessingUnit>, StoreError> {
        delegate!(self.add_processing_unit(account_id, instance_id, unit))
    }

    /// Replaces a processing unit of one of the account's instances (`None`: not found).
    pub async fn update_processing_unit(
        &self,
        account_id: i64,
        instance_id: &str,
        id: &str,
        unit: &NewProcessingUnit,
    ) -> Result<Option<ProcessingUnit>, StoreError> {
        delegate!(self.update_processing_unit(account_id, instance_id, id, unit))
    }

    /// Deletes a processing unit of one of the account's instances; whether there was one.
    pub async fn delete_processing_unit(
        &self,
        account_id: i64,
        instance_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        delegate!(self.delete_processing_unit(account_id, instance_id, id))
    }

    /// The software of one of the account's instances, in the order added; `None` when it
    /// is not the account's.
    pub async fn software(&self, account_id: i64, instance_id: &str) -> Result<Option<Vec<Software>>, StoreError> {
        delegate!(self.software(account_id, instance_id))
    }

    /// Adds software to one of the account's instances (`None`: not the account's).
    pub async fn add_software(
        &self,
        account_id: i64,
        instance_id: &str,
        software: &NewSoftware,
    ) -> Result<Option<Software>, StoreError> {
        delegate!(self.add_software(account_id, instance_id, software))
    }

    /// Replaces software of one of the account's instances (`None`: not found).
    pub async fn update_software(
        &self,
        account_id: i64,
        instance_id: &str,
        id: &str,
        software: &NewSoftware,
    ) -> Result<Option<Software>, StoreError> {
        delegate!(self.update_software(account_id, instance_id, id, software))
    }

    /// Deletes software of one of the account's instances; whether there was one.
    pub async fn delete_software(&self, account_id: i64, instance_id: &str, id: &str) -> Result<bool, StoreError> {
        delegate!(self.delete_software(account_id, instance_id, id))
    }
}

pub use settle::{LOST_REPLICA, orphan_record};
