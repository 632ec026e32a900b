//! Prepaid billing: before the upstream call a request holds its cost ceiling against
//! its account's balance and its key's remaining spend limit with one conditional write
//! in the database (so that any number of gateway replicas together never spend more
//! than there is); after the answer its usage record — written by the batching writer,
//! in the transaction that charges it — closes the hold. Nothing in this process's memory
//! decides whether money may be spent.
//!
//! Holds of requests arriving together are taken together: one task sends whatever holds
//! are waiting as one batch (one transaction, one round trip), and while that batch is in
//! the database the next one gathers. Alone, a request waits for one round trip as before;
//! under load, many share each. A gathered batch also waits for the requests already on
//! their way to it (their rate limits being checked, a round trip to Redis when limits
//! are shared), as a group commit does: a commit — with PostgreSQL, a flush to disk — costs
//! more than the wait, and nothing waits when no other request is coming.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokenrouter_core::{NanoUsd, clock};
use tokenrouter_store::{Db, HoldOutcome, KeyRow, NewHold};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::error::ApiError;
use crate::gather::gather;
use crate::metering::UsageWriter;

/// The most holds taken in one transaction.
const HOLD_BATCH: usize = 256;
/// Holds waiting for their batch; when full, requests wait for room.
const HOLD_QUEUE: usize = 8_192;

/// How long a request waits for its hold before it is refused (503): the store rolls a
/// hold back after 5 s, and a hold that still commits later is released by its guard.
const HOLD_WAIT: Duration = Duration::from_secs(10);

/// The longest a gathered batch waits for requests still on their way (one held up —
/// Redis slow to answer — holds up the batch no longer than this, rounded up to the
/// timer's next millisecond: under 2 ms).
const COMING_WAIT: Duration = Duration::from_millis(1);

/// What became of a hold: taken (the reservation, which releases it if dropped — so a
/// request that went away at any moment leaves nothing held), or refused.
enum Taken {
    Held(Reservation),
    /// The account's available balance cannot cover it.
    Balance(NanoUsd),
    /// The key's remaining spend limit cannot cover it.
    SpendLimit(NanoUsd),
}

/// A hold waiting to be taken, and where its outcome goes (`Err`: the store failed).
type Ask = (NewHold, oneshot::Sender<Result<Taken, ()>>);

/// Hands holds to the task that takes them in batches.
#[derive(Clone)]
pub struct HoldQueue {
    tx: mpsc::Sender<Ask>,
    coming: Arc<Coming>,
}

/// How many requests are on their way to ask for a hold, and a signal when one turns
/// away without asking.
#[derive(Default)]
struct Coming {
    count: AtomicUsize,
    turned_away: Notify,
}

/// A request on its way to ask for a hold (taken before its rate limits are checked): a
/// batch gathering waits for it. Given to [`reserve`] (it ends once the hold is asked for),
/// or dropped when the request ends first.
pub struct OnTheWay {
    coming: Arc<Coming>,
    asked: bool,
}

impl Coming {
    fn set_out(self: &Arc<Coming>) -> OnTheWay {
        self.count.fetch_add(1, Ordering::AcqRel);
        OnTheWay { coming: self.clone(), asked: false }
    }
}

impl OnTheWay {
    /// The request asks for its hold now: no longer counted as coming, and not as turning
    /// away either (a batch waiting for it takes its ask as it arrives).
    fn asking(mut self) {
        self.asked = true;
    }
}

impl Drop for OnTheWay {
    fn drop(&mut self) {
        self.coming.count.fetch_sub(1, Ordering::AcqRel);
        if !self.asked {
            self.coming.turned_away.notify_one();
        }
    }
}

impl HoldQueue {
    /// Starts the task; holds whose request went away before their outcome arrived are
    /// released through `writer`.
    pub fn start(db: Db, writer: UsageWriter) -> HoldQueue {
        let (tx, rx) = mpsc::channel(HOLD_QUEUE);
        let coming = Arc::new(Coming::default());
        tokio::spawn(take_holds(db, writer, rx, coming.clone()));
        HoldQueue { tx, coming }
    }

    /// Marks a request as on its way to ask for a hold, until the [`OnTheWay`] is given to
    /// [`reserve`] or dropped.
    pub fn on_the_way(&self) -> OnTheWay {
        self.coming.set_out()
    }

    async fn hold(&self, hold: NewHold, on_the_way: OnTheWay) -> Result<Taken, ()> {
        let (answer, outcome) = oneshot::channel();
        // Before its ask is in the queue: a batch that gathered it must not wait for it.
        on_the_way.asking();
        let wait = async {
            self.tx.send((hold, answer)).await.map_err(|_| ())?;
            outcome.await.map_err(|_| ())?
        };
        tokio::time::timeout(HOLD_WAIT, wait).await.map_err(|_| {
            tracing::warn!("a hold took longer than {HOLD_WAIT:?}; the request is refused");
        })?
    }
}

async fn take_holds(db: Db, writer: UsageWriter, mut rx: mpsc::Receiver<Ask>, coming: Arc<Coming>) {
    let mut asks = Vec::with_capacity(HOLD_BATCH);
    // A commit's cost (its pages written to the log, its locks, the trip to the
    // database's thread) is shared by the holds of a batch.
    while gather(&mut rx, &mut asks, HOLD_BATCH).await > 0 {
        wait_for_coming(&mut rx, &mut asks, HOLD_BATCH, &coming).await;
        let (holds, answers): (Vec<NewHold>, Vec<_>) = asks.drain(..).unzip();
        match db.hold_many(&holds).await {
            Ok(outcomes) => {
                for ((hold, answer), outcome) in holds.into_iter().zip(answers).zip(outcomes) {
                    let taken = match outcome {
                        HoldOutcome::Held => Taken::Held(Reservation {
                            request_id: hold.request_id,
                            amount: hold.amount,
                            writer: writer.clone(),
                            done: false,
                            adopted: false,
                        }),
                        HoldOutcome::Balance { available } => Taken::Balance(available),
                        HoldOutcome::SpendLimit { remaining } => Taken::SpendLimit(remaining),
                    };
                    // A request that went away drops its answer here: a reservation in it
                    // releases the hold.
                    let _ = answer.send(Ok(taken));
                }
            }
            Err(e) => {
                // Perhaps after committing (an answer lost on the way back): every hold of
                // the batch is released — a no-op for those never taken — and refused.
                tracing::warn!(error = %e, holds = holds.len(), "could not hold funds for requests");
                for (hold, answer) in holds.into_iter().zip(answers) {
                    writer.release(hold.request_id);
                    let _ = answer.send(Err(()));
                }
            }
        }
    }
}

/// Adds to `batch` (up to `max`) the asks of the requests on their way when it was
/// gathered, as they arrive, until each of them came or turned away or [`COMING_WAIT`]
/// passed. Requests setting out later are not waited for: they join the next batch.
async fn wait_for_coming<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, max: usize, coming: &Coming) {
    let mut expected = coming.count.load(Ordering::Acquire);
    let deadline = tokio::time::Instant::now() + COMING_WAIT;
    while expected > 0 && batch.len() < max {
        tokio::select! {
            biased;
            ask = rx.recv() => match ask {
                Some(ask) => {
                    batch.push(ask);
                    expected -= 1;
                }
                None => return,
            },
            // However many turned away, no more than are still on their way can come.
            () = coming.turned_away.notified() => expected = expected.min(coming.count.load(Ordering::Acquire)),
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// What a request holds. Settle it when its usage record is written (that record closes
/// the hold in the store); dropped unsettled, the hold is released with no charge.
#[must_use]
pub struct Reservation {
    request_id: String,
    amount: NanoUsd,
    writer: UsageWriter,
    done: bool,
    /// A queued job's hold: dropping the run (its replica stopping, its job cancelled or
    /// taken over) leaves the hold to the job — the canceller releases it, a run after a
    /// restart settles it, the sweeper ends it once the job is over.
    adopted: bool,
}

/// The request a hold is for.
pub struct Holding<'a> {
    pub request_id: &'a str,
    pub key: &'a KeyRow,
    pub model: &'a str,
    pub endpoint: &'a str,
    pub stream: bool,
}

/// Holds `amount` for a request. With `enforce`, refuses (402) when the account's
/// available balance or the key's remaining spend limit cannot cover it.
pub async fn reserve(
    holds: &HoldQueue,
    on_the_way: OnTheWay,
    replica: &str,
    request: Holding<'_>,
    amount: NanoUsd,
    enforce: bool,
) -> Result<Reservation, ApiError> {
    let hold = NewHold {
        request_id: request.request_id.to_owned(),
        account_id: request.key.account_id,
        key_id: request.key.id.clone(),
        amount,
        enforce,
        replica: replica.to_owned(),
        model: request.model.to_owned(),
        endpoint: request.endpoint.to_owned(),
        stream: request.stream,
        created_at: clock::now_unix(),
    };
    let taken = holds.hold(hold, on_the_way).await.map_err(|()| ApiError::StoreUnavailable)?;
    match taken {
        Taken::Held(reservation) => Ok(reservation),
        Taken::Balance(available) => Err(ApiError::InsufficientQuota(format!(
            "The account's balance ({available} USD available) cannot cover this request's maximum cost of {amount} USD. \
             Add credit, or lower max_tokens."
        ))),
        Taken::SpendLimit(remaining) => Err(ApiError::InsufficientQuota(format!(
            "The key's spend limit ({remaining} USD remaining) cannot cover this request's maximum cost of {amount} USD."
        ))),
    }
}

impl Reservation {
    /// The reservation of a hold already in the store (a queued job's, taken when it was
    /// submitted): settled like any, but not released when dropped (see `adopted`).
    pub fn adopt(request_id: String, amount: NanoUsd, writer: UsageWriter) -> Reservation {
        Reservation { request_id, amount, writer, done: false, adopted: true }
    }

    /// The amount held.
    pub fn amount(&self) -> NanoUsd {
        self.amount
    }

    /// Leaves the hold in the store, owned by what took it over (a job, which ends it).
    pub fn hand_over(mut self) {
        self.done = true;
    }

    /// The request's usage record, about to be written, closes the hold and charges
    /// `cost` (which may exceed the hold when usage beat the estimate).
    pub fn settle(mut self, cost: NanoUsd) {
        if cost > self.amount {
            tracing::warn!(
                held = self.amount.0,
                cost = cost.0,
                "a request cost more than its reservation (usage above the estimate)"
            );
        }
        self.done = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done && !self.adopted {
            self.writer.release(std::mem::take(&mut self.request_id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As `HoldQueue::hold` does: no longer coming, then in the queue.
    async fn ask(tx: &mpsc::Sender<u32>, on_the_way: OnTheWay, ask: u32) {
        on_the_way.asking();
        tx.send(ask).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_for_nobody_when_no_request_is_on_its_way() {
        let (_tx, mut rx) = mpsc::channel::<u32>(8);
        let coming = Arc::new(Coming::default());
        let (mut batch, start) = (vec![1], tokio::time::Instant::now());
        wait_for_coming(&mut rx, &mut batch, 8, &coming).await;
        assert_eq!((batch, start.elapsed()), (vec![1], Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_takes_the_requests_on_their_way_as_they_ask_then_goes() {
        let (tx, mut rx) = mpsc::channel::<u32>(8);
        let coming = Arc::new(Coming::default());
        let (first, second) = (coming.set_out(), coming.set_out());
        let asking = tokio::spawn(async move {
            tokio::task::yield_now().await;
            ask(&tx, first, 2).await;
            tokio::task::yield_now().await;
            ask(&tx, second, 3).await;
            tx
        });
        let (mut batch, start) = (vec![1], tokio::time::Instant::now());
        wait_for_coming(&mut rx, &mut batch, 8, &coming).await;
        assert_eq!(batch, [1, 2, 3]);
        assert!(start.elapsed() < COMING_WAIT, "went as soon as both had asked, not at the deadline");
        assert_eq!(coming.count.load(Ordering::Acquire), 0);
        drop(asking.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_turns_away_is_not_waited_for() {
        let (_tx, mut rx) = mpsc::channel::<u32>(8);
        let coming = Arc::new(Coming::default());
        let refused = coming.set_out();
        let turning = tokio::spawn(async move {
            tokio::task::yield_now().await;
            drop(refused); // e.g. refused by its rate limit
        });
        let (mut batch, start) = (vec![1], tokio::time::Instant::now());
        wait_for_coming(&mut rx, &mut batch, 8, &coming).await;
        assert_eq!((batch, start.elapsed()), (vec![1], Duration::ZERO));
        turning.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_held_up_on_its_way_delays_the_batch_no_longer_than_the_limit() {
        let (_tx, mut rx) = mpsc::channel::<u32>(8);
        let coming = Arc::new(Coming::default());
        let _stuck = coming.set_out();
        let (mut batch, start) = (vec![1], tokio::time::Instant::now());
        wait_for_coming(&mut rx, &mut batch, 8, &coming).await;
        assert_eq!(batch, [1]);
        assert!(start.elapsed() >= COMING_WAIT && start.elapsed() < 3 * COMING_WAIT, "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn requests_setting_out_after_the_batch_gathered_join_the_next_one() {
        let (tx, mut rx) = mpsc::channel::<u32>(8);
        let coming = Arc::new(Coming::default());
        let early = coming.set_out();
        let setting_out = coming.clone();
        let asking = tokio::spawn(async move {
            tokio::task::yield_now().await;
            let late = setting_out.set_out();
            ask(&tx, early, 2).await;
            (tx, late)
        });
        let mut batch = vec![1];
        wait_for_coming(&mut rx, &mut batch, 8, &coming).await;
        assert_eq!(batch, [1, 2], "did not wait for the one that set out later");
        assert_eq!(coming.count.load(Ordering::Acquire), 1, "the later one is still on its way");
        drop(asking.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_without_waiting() {
        let (tx, mut rx) = mpsc::channel::<u32>(8);
        let coming = Arc::new(Coming::default());
        let (first, _second) = (coming.set_out(), coming.set_out());
        ask(&tx, first, 2).await;
        let (mut batch, start) = (vec![1], tokio::time::Instant::now());
        wait_for_coming(&mut rx, &mut batch, 2, &coming).await;
        assert_eq!((batch, start.elapsed()), (vec![1, 2], Duration::ZERO), "did not wait for the second");
    }
}
