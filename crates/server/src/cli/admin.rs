//! `accounts` and `keys`: the administrator's commands, and the only code that prints
//! to stdout.

use clap::Subcommand;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokenrouter_core::NanoUsd;
use tokenrouter_store::{Account, Db, KeyScope, NewKey};

use super::CliError;
use crate::{auth, policy};

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account.
    Create {
        name: String,
        /// Initial balance in USD.
        #[arg(long)]
        balance: Option<String>,
        /// The account may use the admin routes.
        #[arg(long)]
        admin: bool,
    },
    /// Print a one-time sign-in URL for the dashboard (for servers without GitHub
    /// sign-in, and for the first admin).
    LoginLink {
        name: String,
        /// How long the link works, in seconds.
        #[arg(long, default_value_t = 900)]
        ttl: u32,
    },
    /// Add balance (a ledger entry; a negative amount is an adjustment).
    Credit {
        name: String,
        #[arg(allow_hyphen_values = true)]
        usd: String,
    },
    /// List every account with its balance, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show balance, open holds and recent ledger rows.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: its keys stop working on every gateway within a second.
    Disable { name: String },
    /// Enable a disabled account again.
    Enable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum CodesCommand {
    /// Mint redemption codes, printed one per line and shown once (stored hashed).
    Create {
        /// What each code credits, in USD.
        #[arg(long)]
        amount: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Expiry time, RFC 3339.
        #[arg(long)]
        expires: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Mint a key; the secret is printed once, alone on the last line.
    Create {
        #[arg(long)]
        account: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Allowed models: exact ids or prefix* patterns, comma-separated.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Allowed client addresses: CIDRs or addresses, IPv4 or IPv6, comma-separated.
        #[arg(long, value_delimiter = ',')]
        ips: Vec<String>,
        /// Requests per minute (smooth: a burst of this many, then one per 60 s / rpm).
        #[arg(long)]
        rpm: Option<u32>,
        /// Tokens per minute (estimated at admission, corrected when usage is known).
        #[arg(long)]
        tpm: Option<u32>,
        /// Spend limit in USD.
        #[arg(long)]
        spend_limit: Option<String>,
        /// Expiry time, RFC 3339 (e.g. 2027-01-01T00:00:00Z).
        #[arg(long)]
        expires: Option<String>,
        /// inference: /v1/*; management: /api/* for the account, never /v1/*.
        #[arg(long, default_value = "inference", value_parser = ["inference", "management"])]
        scope: String,
        /// Never route this key's requests to community instances.
        #[arg(long)]
        no_community: bool,
        #[arg(long)]
        json: bool,
    },
    /// List an account's keys (never their secrets).
    List {
        #[arg(long)]
        account: String,
    },
    /// Revoke a key by id; it stops working within a second.
    Revoke { id: String },
}

/// Prints one line of a command's output.
#[allow(clippy::print_stdout)]
pub fn say(line: &str) {
    println!("{line}");
}

fn usd(text: &str, what: &str) -> Result<NanoUsd, CliError> {
    NanoUsd::parse_usd(text).map_err(|e| CliError::Usage(format!("{what}: {e}")))
}

async fn account(db: &Db, name: &str) -> Result<Account, CliError> {
    db.account_by_name(name).await?.ok_or_else(|| CliError::Usage(format!("no account named '{name}'")))
}

fn date(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// `public_origin`: where browsers reach the gateway (for sign-in links).
pub async fn accounts(db: &Db, command: AccountsCommand, public_origin: &str) -> Result<(), CliError> {
    match command {
        AccountsCommand::Create { name, balance, admin } => {
            if name.trim().is_empty() {
                return Err(CliError::Usage("an account name must not be empty".into()));
            }
            let balance = balance.as_deref().map(|b| usd(b, "--balance")).transpose()?.unwrap_or_default();
            let created = db.create_account(&name, balance).await?;
            if admin {
                db.set_admin(&name, true).await?;
            }
            say(&format!(
                "created {}account '{}' (id {}) with balance {} USD",
                if admin { "admin " } else { "" },
                created.name,
                created.id,
                created.balance
            ));
        }
        AccountsCommand::LoginLink { name, ttl } => {
            let acct = account(db, &name).await?;
            if ttl == 0 {
                return Err(CliError::Usage("--ttl must be at least 1 second".into()));
            }
            let token = auth::random_token().map_err(|e| CliError::Runtime(format!("no randomness available: {e}")))?;
            let now = tokenrouter_core::clock::now_unix();
            db.create_login_link(&auth::hash_secret(&token), acct.id, now, now + i64::from(ttl)).await?;
            say(&format!("{}/auth/link/{token}", public_origin.trim_end_matches('/')));
        }
        AccountsCommand::Disable { name } | AccountsCommand::Enable { name } if name.trim().is_empty() => {
            return Err(CliError::Usage("an account name must not be empty".into()));
        }
        AccountsCommand::Disable { name } => {
            db.set_account_disabled(&name, true).await?;
            say(&format!("account '{name}' is disabled: its keys no longer work"));
        }
        AccountsCommand::Enable { name } => {
            db.set_account_disabled(&name, false).await?;
            say(&format!("account '{name}' is enabled"));
        }
        AccountsCommand::Credit { name, usd: amount } => {
            let amount = usd(&amount, "amount")?;
            let updated = db.credit(&name, amount, "credit from the command line").await?;
            say(&format!("account '{}' balance is now {} USD", updated.name, updated.balance));
        }
        AccountsCommand::List { json } => {
            let mut accounts = Vec::new();
            let mut before = None;
            loop {
                let page = db.list_accounts(100, before).await?;
                before = page.last().map(|a| a.id);
                let full = page.len() == 100;
                accounts.extend(page);
                if !full {
                    break;
                }
            }
            if json {
                let rows: Vec<_> = accounts
                    .iter()
                    .map(|a| {
                        json!({
                            "id": a.id, "name": a.name, "admin": a.is_admin, "login": a.login,
                            "balance_nano_usd": a.balance.0, "held_nano_usd": a.held.0,
                            "disabled": a.disabled_at.is_some(), "created_at": a.created_at,
                        })
                    })
                    .collect();
                say(&serde_json::Value::Array(rows).to_string());
            } else {
                say("id      name                      role   balance (USD)         held (USD)   state");
                for a in &accounts {
                    say(&format!(
                        "{:<7} {:<25} {:<6} {:>16} {:>16}   {}",
                        a.id,
                        a.name,
                        if a.is_admin { "admin" } else { "user" },
                        a.balance.to_usd_string(),
                        a.held.to_usd_string(),
                        if a.disabled_at.is_some() { "disabled" } else { "active" }
                    ));
                }
            }
        }
        AccountsCommand::Show { name, json } => {
            let acct = account(db, &name).await?;
            let ledger_sum = db.ledger_sum(acct.id).await?;
            let rows = db.ledger(acct.id, 20).await?;
            let held = db.held(acct.id).await?;
            if json {
                let ledger: Vec<_> = rows
                    .iter()
                    .map(|r| json!({"id": r.id, "kind": r.kind, "amount_nano_usd": r.amount.0, "request_id": r.request_id, "memo": r.memo, "created_at": r.created_at}))
                    .collect();
                say(&json!({
                    "id": acct.id, "name": acct.name,
                    "balance_nano_usd": acct.balance.0, "balance_usd": acct.balance.to_usd_string(),
                    "held_nano_usd": held.0, "ledger_sum_nano_usd": ledger_sum.0,
                    "ledger": ledger,
                })
                .to_string());
            } else {
                say(&format!("account:    {} (id {})", acct.name, acct.id));
                say(&format!("balance:    {} USD", acct.balance));
                say(&format!("open holds: {held} USD"));
                say(&format!("ledger sum: {ledger_sum} USD"));
                say("recent ledger rows:");
                for r in &rows {
                    say(&format!(
                        "  {}  {:<10} {:>16}  {}  {}",
                        date(r.created_at),
                        r.kind,
                        r.amount.to_usd_string(),
                        r.request_id.as_deref().unwrap_or("-"),
                        r.memo
                    ));
                }
            }
        }
    }
    Ok(())
}

pub async fn keys(db: &Db, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::Create {
            account: name,
            name: key_name,
            models,
            ips,
            rpm,
            tpm,
            spend_limit,
            expires,
            scope,
            no_community,
            json,
        } => {
            let acct = account(db, &name).await?;
            let spend_limit = spend_limit.as_deref().map(|s| usd(s, "--spend-limit")).transpose()?;
            let expires_at = expires.as_deref().map(|e| rfc3339(e, "--expires")).transpose()?;
            let minted = auth::mint().map_err(|e| CliError::Runtime(format!("no randomness available: {e}")))?;
            let models: Vec<String> =
                models.into_iter().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect();
            let ips: Vec<String> = ips.into_iter().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect();
            if let Some(bad) = ips.iter().find(|ip| policy::parse_net(ip).is_none()) {
                return Err(CliError::Usage(format!("--ips: '{bad}' is not a CIDR (10.0.0.0/8) or an IP address")));
            }
            if rpm == Some(0) || tpm == Some(0) {
                return Err(CliError::Usage("--rpm and --tpm must be at least 1 (leave them out for no limit)".into()));
            }
            db.insert_key(&NewKey {
                id: minted.id.clone(),
                account_id: acct.id,
                name: key_name,
                secret_hash: minted.hash,
                models,
                ips,
                rpm,
                tpm,
                spend_limit,
                expires_at,
                scope: KeyScope::parse(&scope).unwrap_or_default(),
                community: !no_community,
            })
            .await?;
            let prefix = auth::display_prefix(&minted.id);
            if json {
                say(&json!({"id": minted.id, "key": minted.full, "prefix": prefix, "account": acct.name}).to_string());
            } else {
                say(&format!(
                    "created key {} for account '{}'; the secret below is shown only once:",
                    minted.id, acct.name
                ));
                say(&minted.full);
            }
        }
        KeysCommand::List { account: name } => {
            let acct = account(db, &name).await?;
            say("id                prefix                  name              created               state");
            for k in db.list_keys(acct.id).await? {
                let state = match (k.revoked_at, k.expires_at) {
                    (Some(at), _) => format!("revoked {}", date(at)),
                    (None, Some(at)) => format!("expires {}", date(at)),
                    (None, None) => "active".to_owned(),
                };
                say(&format!(
                    "{:<17} {:<23} {:<17} {}  {state}",
                    k.id,
                    auth::display_prefix(&k.id),
                    k.name,
                    date(k.created_at)
                ));
            }
        }
        KeysCommand::Revoke { id } => {
            db.revoke_key(&id).await?;
            say(&format!("revoked key {id}"));
        }
    }
    Ok(())
}

pub async fn codes(db: &Db, command: CodesCommand) -> Result<(), CliError> {
    match command {
        CodesCommand::Create { amount, count, expires } => {
            let amount = usd(&amount, "--amount")?;
            if amount.0 <= 0 {
                return Err(CliError::Usage("--amount must be more than 0".into()));
            }
            if count == 0 || count > auth::MAX_CODES {
                return Err(CliError::Usage(format!("--count must be between 1 and {}", auth::MAX_CODES)));
            }
            let now = tokenrouter_core::clock::now_unix();
            let expires_at = expires.as_deref().map(|e| rfc3339(e, "--expires")).transpose()?;
            if expires_at.is_some_and(|at| at <= now) {
                return Err(CliError::Usage("--expires is in the past".into()));
            }
            let codes: Vec<String> = (0..count)
                .map(|_| auth::mint_code())
                .collect::<Result<_, _>>()
                .map_err(|e| CliError::Runtime(format!("no randomness available: {e}")))?;
            let hashes: Vec<[u8; 32]> = codes.iter().map(|c| auth::hash_secret(c)).collect();
            db.create_codes(&hashes, amount, now, expires_at).await?;
            for code in &codes {
                say(code);
            }
        }
    }
    Ok(())
}

fn rfc3339(text: &str, what: &str) -> Result<i64, CliError> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|err| CliError::Usage(format!("{what}: '{text}' is not an RFC 3339 time ({err})")))
}
