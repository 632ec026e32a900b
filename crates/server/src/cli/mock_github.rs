//! `tokenrouter mock-github`: the project's fake GitHub (`tokenrouter_mock::github`) as a
//! process of its own, for browser tests and demos of "Sign in with GitHub" without the
//! internet. Every authorization approves at once as the one user given on the command line.

use clap::Args;
use tokenrouter_mock::github::{CLIENT_SECRET, FakeGithub, GithubUser};

use super::CliError;

#[derive(Debug, Args)]
pub struct MockGithubArgs {
    /// GitHub's numeric user id of the user every sign-in approves as.
    #[arg(long, default_value_t = 583231)]
    pub id: i64,
    /// Their login.
    #[arg(long, default_value = "octocat")]
    pub login: String,
    /// Their display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Their public email (`/user`'s `email`); absent: private.
    #[arg(long)]
    pub email: Option<String>,
    /// Their primary, verified email (`/user/emails`); default LOGIN@users.example.
    #[arg(long)]
    pub primary_email: Option<String>,
}

/// Serves the fake on a free port of 127.0.0.1 until interrupted; its URL (both
/// `base_url` and `api_base_url` of `[auth.github]`) is logged, and the client secret it
/// accepts is printed alongside.
pub async fn run(args: MockGithubArgs) -> Result<(), CliError> {
    let fake =
        FakeGithub::start().await.map_err(|e| CliError::Runtime(format!("cannot start the fake GitHub: {e}")))?;
    let primary_email = args.primary_email.unwrap_or_else(|| format!("{}@users.example", args.login));
    fake.sign_in_as(GithubUser {
        id: args.id,
        login: args.login.clone(),
        name: args.name,
        email: args.email,
        primary_email: Some(primary_email),
    });
    tracing::info!(login = %args.login, client_secret = CLIENT_SECRET, "mock github listening on {}", fake.url());
    let _ = tokio::signal::ctrl_c().await;
    drop(fake);
    Ok(())
}
