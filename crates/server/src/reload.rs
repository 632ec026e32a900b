//! Live config reload (SIGHUP and `POST /api/admin/reload`): the file the gateway started
//! with is read again, validated as `tokenrouter config check` does, and swapped in at
//! once. Requests in flight keep the config they started with (they hold its `Arc`).
//! Settings read only at start keep their old value and are named in the result.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};

use crate::config::{Config, ConfigErrors, Env};
use crate::state::{AppState, Shared};

/// Where the running config came from, to read it again.
#[derive(Debug)]
pub struct Source {
    /// The config file (`None`: started from the environment, nothing to re-read).
    pub path: Option<PathBuf>,
    /// The environment as read at start (`api_key_env` and the like resolve against it).
    pub env: Env,
    /// `--redis` / `TOKENROUTER_REDIS_URL`, which override `[redis] url`.
    pub redis_override: Option<String>,
}

/// The source and one reload at a time.
#[derive(Default)]
pub struct Reloader {
    source: OnceLock<Source>,
    turn: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// Remembers where the config came from (once; later calls are ignored).
    pub fn remember(&self, source: Source) {
        let _ = self.source.set(source);
    }
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub providers: usize,
    pub models: usize,
    /// Settings that changed in the file but apply only after a restart (their old value
    /// stays in force), e.g. `server.listen`.
    pub requires_restart: Vec<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The gateway was started without a config file.
    #[error(
        "The gateway was started without a config file (providers from the environment), so there is nothing to reload; restart it to change its providers."
    )]
    NoFile,
    /// The file could not be read; the running config stays.
    #[error("cannot read config file {0}")]
    Unreadable(String),
    /// The file is invalid: the text `tokenrouter config check` prints.
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
}

impl ReloadError {
    /// The error on one line (a log line): each config error separated by `; `.
    pub fn one_line(&self) -> String {
        match self {
            ReloadError::Invalid(errors) => format!("invalid config: {}", errors.0.join("; ")),
            other => other.to_string(),
        }
    }
}

/// Reads and validates the config file at `path` (errors carry `file:line:column`).
pub fn read(path: &Path, env: &Env) -> Result<Config, ReloadError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ReloadError::Unreadable(format!("{}: {e}", path.display())))?;
    Ok(Config::from_toml_named(&text, env, &path.display().to_string())?)
}

/// Reloads the config file, or says why not (the running config then stays). Logs one
/// line either way, naming what asked for it (`by`: `SIGHUP`, `admin 3`).
pub async fn reload(state: &AppState, by: &str) -> Result<Reloaded, ReloadError> {
    let result = swap(state).await;
    match &result {
        Ok(done) => tracing::info!(
            by,
            providers = done.providers,
            models = done.models,
            requires_restart = ?done.requires_restart,
            "config reloaded"
        ),
        Err(e) => {
            tracing::warn!(by, error = %e.one_line(), "config reload refused; the previous config keeps serving");
        }
    }
    result
}

async fn swap(state: &AppState) -> Result<Reloaded, ReloadError> {
    let _turn = state.reload.turn.lock().await;
    let source = state.reload.source.get().ok_or(ReloadError::NoFile)?;
    let path = source.path.as_deref().ok_or(ReloadError::NoFile)?;
    let mut config = read(path, &source.env)?;
    if let Some(url) = &source.redis_override {
        config.redis.url = Some(url.clone());
    }
    let old = state.config.load_full();
    let requires_restart = keep_restart_only(&old, &mut config);
    let done = Reloaded { providers: config.providers.len(), models: config.models().count(), requires_restart };
    let config = Arc::new(config);
    // The instance table is built for the new config before either is swapped in.
    if let Err(e) = state.instances.switch_config(&state.db, config.clone(), &state.config).await {
        // The store did not answer: the new config serves without instances until the
        // table's own refresh (every few seconds) builds them.
        tracing::warn!(error = %e, "could not rebuild the instance table after a reload; it will be retried");
        state.config.store(config);
    }
    Ok(done)
}

/// Settings read only when the gateway starts (listeners, connections, workers, the
/// telemetry pipeline): a changed value is put back to the running one and named.
fn keep_restart_only(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    macro_rules! keep {
        ($($field:ident).+ => $name:literal) => {
            if new.$($field).+ != old.$($field).+ {
                new.$($field).+ = old.$($field).+.clone();
                kept.push($name);
            }
        };
    }
    keep!(server.listen => "server.listen");
    keep!(server.connect_timeout => "server.connect_timeout_ms");
    keep!(server.shutdown_grace => "server.shutdown_grace_secs");
    keep!(server.header_timeout => "server.header_timeout_ms");
    keep!(server.body_timeout => "server.body_timeout_ms");
    keep!(server.keepalive_timeout => "server.keepalive_timeout_ms");
    keep!(server.max_connections => "server.max_connections");
    keep!(redis.url => "redis.url");
    keep!(redis.key_prefix => "redis.key_prefix");
    keep!(instances.allow_private_addresses => "instances.allow_private_addresses");
    keep!(jobs.workers => "jobs.workers");
    keep!(telemetry.otlp_endpoint => "telemetry.otlp_endpoint");
    keep!(telemetry.trace_sample_ratio => "telemetry.trace_sample_ratio");
    keep!(telemetry.log_format => "telemetry.log_format");
    keep!(telemetry.metrics_listen => "telemetry.metrics_listen");
    kept
}

/// Reloads on every SIGHUP until the gateway stops. The handler is installed before this
/// returns, so a SIGHUP sent once the gateway listens never takes the default action
/// (ending the process).
#[cfg(unix)]
pub fn on_hangup(state: &AppState) -> std::io::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let weak: Weak<Shared> = state.downgrade();
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let Some(shared) = weak.upgrade() else { return };
            let _ = reload(&AppState::from_shared(shared), "SIGHUP").await;
        }
    });
    Ok(())
}

#[cfg(not(unix))]
pub fn on_hangup(_state: &AppState) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let base = r#"
[[providers]]
name = "p"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"

[[models]]
id = "m"
context_window = 1000
max_output_tokens = 100
input_price = 1
output_price = 2
deployments = [ { provider = "p" } ]
"#;
        match Config::from_toml(&format!("{text}\n{base}"), &Env::default()) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn settings_read_at_start_keep_their_value_and_are_named() {
        let old = config("[server]\nlisten = \"127.0.0.1:8080\"\nmax_body_bytes = 10\n[jobs]\nworkers = 2");
        let mut new = config(
            "[server]\nlisten = \"127.0.0.1:9090\"\nmax_body_bytes = 20\n[jobs]\nworkers = 3\n[redis]\nurl = \"redis://127.0.0.1:6379\"",
        );
        let kept = keep_restart_only(&old, &mut new);
        assert_eq!(kept, ["server.listen", "redis.url", "jobs.workers"]);
        assert_eq!(new.server.listen, old.server.listen);
        assert_eq!(new.redis.url, None);
        assert_eq!(new.jobs.workers, 2);
        assert_eq!(new.server.max_body_bytes, 20, "a live setting takes the new value");
        let mut same = config("[server]\nlisten = \"127.0.0.1:8080\"\n[jobs]\nworkers = 2");
        assert!(keep_restart_only(&old, &mut same).is_empty());
    }
}
