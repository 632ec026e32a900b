//! Gathering work that arrives together into one batch, so that one round trip (a commit,
//! a Redis call) is shared by many requests.

use tokio::sync::mpsc;

/// How many times a batch waits for more, as long as each wait brought some.
const GATHER_ROUNDS: usize = 4;

/// Waits for the next item and adds to `batch` (up to `max` in all) what arrives with it
/// (see [`gather_more`]). Answers how many are in the batch; 0 when every sender is gone.
pub async fn gather<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, max: usize) -> usize {
    if rx.recv_many(batch, max).await == 0 {
        return 0;
    }
    gather_more(rx, batch, max).await;
    batch.len()
}

/// Adds to `batch` (up to `max` in all) what arrives now: it lets the requests already
/// woken reach the queue first — yielding waits for the runtime to run every other ready
/// task and poll the sockets once: no timer, a few microseconds when idle — so that under
/// load a batch carries most of the requests in flight.
pub async fn gather_more<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, max: usize) {
    for _ in 0..GATHER_ROUNDS {
        tokio::task::yield_now().await;
        let before = batch.len();
        while batch.len() < max {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if batch.len() == before || batch.len() == max {
            break;
        }
    }
}
