//! The command line (CONTRACTS.md §1): `serve`, `mock-upstream`, `accounts`, `keys`,
//! `config check`. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or invalid config.

mod admin;
mod mock_github;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokenrouter_store::Db;

use crate::config::{Config, ConfigErrors, DEFAULT_LISTEN, Env, RedisConfig};
use crate::state::AppState;

#[derive(Debug, Parser)]
#[command(name = "tokenrouter", version, about = "One OpenAI-compatible URL and key in front of many LLM providers.")]
pub struct Cli {
    /// Database URL: sqlite://FILE (created on first use) or postgres://USER@HOST:PORT/DB (several replicas).
    #[arg(long, global = true, env = "TOKENROUTER_DATABASE_URL", default_value = "sqlite://tokenrouter.db")]
    pub database: String,
    /// Config file (default ./tokenrouter.toml when present; otherwise providers come from the environment).
    #[arg(long, global = true, env = "TOKENROUTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Redis URL (redis:// or rediss://) for rate limits shared by replicas; overrides [redis] url.
    #[arg(long, global = true, env = "TOKENROUTER_REDIS_URL")]
    pub redis: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080, or [server] listen).
        #[arg(long, env = "TOKENROUTER_LISTEN")]
        listen: Option<SocketAddr>,
    },
    /// Run a fake provider (OpenAI wire format) for tests, demos and benchmarks.
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1:9999")]
        listen: SocketAddr,
        /// Delay before each response head, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Pace of streamed tokens (0 = as fast as possible).
        #[arg(long, default_value_t = 0)]
        tokens_per_second: u64,
        /// Length of each reply in tokens.
        #[arg(long, default_value_t = 16)]
        reply_tokens: u64,
        /// Fault to inject in every answer: 500, 429, 400, 400:N (message of N bytes), overloaded, hang, reset, cut, cut:N, stream_error or safety.
        #[arg(long)]
        fault: Option<String>,
    },
    /// Run the project's fake GitHub (OAuth sign-in) on a free port of 127.0.0.1, for tests and demos.
    MockGithub(mock_github::MockGithubArgs),
    /// Manage accounts and their balance.
    #[command(subcommand)]
    Accounts(admin::AccountsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Redemption codes.
    #[command(subcommand)]
    Codes(admin::CodesCommand),
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Apply pending database migrations and exit (before starting several replicas).
    Migrate,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config file and say what is wrong, with each field's path.
    Check,
}

/// A command's failure, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error("{0}")]
    Runtime(String),
}

impl From<tokenrouter_store::StoreError> for CliError {
    fn from(e: tokenrouter_store::StoreError) -> Self {
        use tokenrouter_store::StoreError as E;
        match e {
            E::AccountExists(_)
            | E::AccountNotFound(_)
            | E::KeyNotFound(_)
            | E::UnsupportedUrl(_)
            | E::Money(_)
            | E::WouldOverdraw(_) => CliError::Usage(e.to_string()),
            other => CliError::Runtime(other.to_string()),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The gateway logs in the format its config asks for (a config that cannot be read
    // is reported by `serve` itself, in text).
    let format = match &cli.command {
        Command::Serve { .. } => load_config(cli.config.as_deref(), &Env::from_process())
            .map(|(config, _)| config.telemetry.log_format)
            .unwrap_or_default(),
        _ => crate::config::LogFormat::Text,
    };
    crate::telemetry::init(format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli));
    crate::telemetry::flush_logs();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match format {
                // Every stderr line of a gateway logging JSON is JSON.
                crate::config::LogFormat::Json => tracing::error!("error: {e}"),
                crate::config::LogFormat::Text => eprintln!("error: {e}"),
            }
            ExitCode::from(match e {
                CliError::Usage(_) | CliError::Config(_) => 2,
                CliError::Runtime(_) => 1,
            })
        }
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let env = Env::from_process();
    match cli.command {
        Command::Serve { listen } => {
            serve(&cli.database, cli.config.as_deref(), cli.redis.as_deref(), listen, &env).await
        }
        Command::MockUpstream { listen, latency_ms, tokens_per_second, reply_tokens, fault } => {
            let fault = fault.map(|f| f.parse()).transpose().map_err(|e| CliError::Usage(format!("--fault: {e}")))?;
            let config = tokenrouter_mock::MockConfig {
                latency_ms,
                tokens_per_second,
                reply_tokens,
                fault,
                ..Default::default()
            };
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| CliError::Runtime(format!("cannot listen on {listen}: {e}")))?;
            let addr = listener.local_addr().map_err(|e| CliError::Runtime(e.to_string()))?;
            tracing::info!("mock upstream listening on http://{addr}/v1");
            tokenrouter_mock::serve(listener, config, Default::default()).await;
            Ok(())
        }
        Command::MockGithub(args) => mock_github::run(args).await,
        Command::Migrate => {
            let db = Db::open(&cli.database).await?;
            let applied = db.migrate().await?;
            admin::say(&format!("{} database migrated: {applied} migration(s) applied", db.backend()));
            Ok(())
        }
        Command::Accounts(command) => {
            let public_origin = match &command {
                admin::AccountsCommand::LoginLink { .. } => {
                    load_config(cli.config.as_deref(), &env)?.0.server.public_origin()
                }
                _ => String::new(),
            };
            admin::accounts(&Db::connect(&cli.database).await?, command, &public_origin).await
        }
        Command::Codes(command) => admin::codes(&Db::connect(&cli.database).await?, command).await,
        Command::Keys(command) => admin::keys(&Db::connect(&cli.database).await?, command).await,
        Command::Config(ConfigCommand::Check) => {
            let (config, source) = load_config(cli.config.as_deref(), &env)?;
            admin::say(&format!(
                "config OK ({source}): {} providers, {} models",
                config.providers.len(),
                config.models().count()
            ));
            Ok(())
        }
    }
}

/// The config from `--config`, else `./tokenrouter.toml`, else the environment.
pub fn load_config(path: Option<&Path>, env: &Env) -> Result<(Config, String), CliError> {
    match config_path(path) {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| CliError::Usage(format!("cannot read config file {}: {e}", p.display())))?;
            Ok((Config::from_toml_named(&text, env, &p.display().to_string())?, p.display().to_string()))
        }
        None => Ok((Config::from_env(env), "no config file; providers from the environment".to_owned())),
    }
}

/// The config file read: `--config`, else `./tokenrouter.toml` when present.
fn config_path(path: Option<&Path>) -> Option<&Path> {
    let default = Path::new("tokenrouter.toml");
    path.or_else(|| default.exists().then_some(default))
}

async fn serve(
    database: &str,
    config: Option<&Path>,
    redis: Option<&str>,
    listen: Option<SocketAddr>,
    env: &Env,
) -> Result<(), CliError> {
    let file = config_path(config).map(Path::to_path_buf);
    let (mut config, source) = load_config(config, env)?;
    if let Some(url) = redis {
        RedisConfig::check_url(url).map_err(|e| CliError::Usage(format!("--redis: {e}")))?;
        config.redis.url = Some(url.to_owned());
    }
    let addr = listen
        .or(config.server.listen)
        .or_else(|| DEFAULT_LISTEN.parse().ok())
        .ok_or_else(|| CliError::Usage("no listen address".into()))?;
    let models = config.models().filter(|m| m.live_deployments().next().is_some()).count();
    if models == 0 {
        tracing::warn!(
            "no model has a usable deployment: set OPENAI_API_KEY (or OPENAI_BASE_URL) or write a config file"
        );
    }
    let db = Db::connect(database).await?;
    let journal = match crate::journal::Journal::path_for(database) {
        Some(path) => Some(
            crate::journal::Journal::open(path.clone())
                .map_err(|e| CliError::Runtime(format!("cannot open the usage journal {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let metrics_listen = config.telemetry.metrics_listen;
    let state = AppState::start_with_journal(config, db, journal).await?;
    if let Some(addr) = metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| CliError::Runtime(format!("cannot listen on {addr} for /metrics: {e}")))?;
        tracing::info!("metrics on http://{addr}/metrics");
        let app = crate::routes::metrics_router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let redis_override = redis.map(str::to_owned);
    state.reload.remember(crate::reload::Source { path: file, env: env.clone(), redis_override });
    crate::reload::on_hangup(&state).map_err(|e| CliError::Runtime(format!("cannot listen for SIGHUP: {e}")))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Runtime(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().map_err(|e| CliError::Runtime(e.to_string()))?;
    tracing::info!(config = %source, models, "tokenrouter listening on http://{local}");
    let traces = state.traces.clone();
    let served = crate::serve(listener, state, shutdown_signal()).await.map_err(|e| CliError::Runtime(e.to_string()));
    if let Some(traces) = traces {
        traces.shutdown().await;
    }
    served
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing requests in flight and writing usage");
}
