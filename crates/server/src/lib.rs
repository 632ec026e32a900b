//! Token Router: one OpenAI-compatible URL and key in front of many LLM providers.
//! The request path runs edge → auth → policy → dispatch → respond → meter; see
//! ARCHITECTURE.md for the map.

pub mod abuse;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod dispatch;
pub mod edge;
pub mod error;
pub mod gather;
pub mod instances;
pub mod jobs;
pub mod journal;
pub mod limits;
pub mod listener;
pub mod metering;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod recent;
pub mod reload;
pub mod replicas;
pub mod retention;
pub mod routes;
pub mod routing;
pub mod settlement;
pub mod signin;
pub mod state;
pub mod streaming;
pub mod telemetry;
pub mod tokens;
pub mod upstream;

use std::future::Future;

use tokio::net::TcpListener;

/// Serves the gateway on `listener` until `shutdown` resolves, then drains: the listener
/// closes, `/ready` answers 503, requests in flight finish for up to `[server]
/// shutdown_grace_secs` (then are cut, each billed for what it delivered), and every
/// queued usage record is written before this returns.
pub async fn serve(
    listener: TcpListener,
    state: state::AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = listener::Limits::from_config(&state.config.load().server);
    let app = routes::router(state.clone());
    listener::serve(listener, app, limits, shutdown, || state.start_draining()).await;
    state.usage.flush().await;
    // Stopped cleanly with everything settled: no other replica needs to wait for this
    // one's heartbeat to go stale.
    if let Err(e) = state.db.forget_replica(&state.replica.id).await {
        tracing::warn!(error = %e, "could not sign this replica off");
    }
    Ok(())
}
