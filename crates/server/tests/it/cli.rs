//! The `tokenrouter` binary's commands (CONTRACTS.md §1): output, exit codes, and the
//! config checker reporting every mistake at once with its path.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use tokenrouter::config::{Config, Env};

fn tokenrouter(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokenrouter"))
        .current_dir(dir)
        .env_remove("TOKENROUTER_CONFIG")
        .env_remove("TOKENROUTER_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .args(["--database", "sqlite://cli.db"])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn accounts_and_keys_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    stdout(&tokenrouter(d, &["accounts", "create", "team", "--balance", "12.5"]));
    stdout(&tokenrouter(d, &["accounts", "credit", "team", "0.000000001"]));
    let show: Value = serde_json::from_str(&stdout(&tokenrouter(d, &["accounts", "show", "team", "--json"]))).unwrap();
    assert_eq!(show["balance_nano_usd"], 12_500_000_001_i64);
    assert_eq!(show["ledger_sum_nano_usd"], 12_500_000_001_i64);
    assert_eq!(show["held_nano_usd"], 0);

    let text = stdout(&tokenrouter(d, &["keys", "create", "--account", "team", "--name", "ci"]));
    let secret = text.lines().last().unwrap();
    assert!(secret.starts_with("sk-tr-") && secret.len() == 66, "{secret}");
    let created: Value = serde_json::from_str(&stdout(&tokenrouter(
        d,
        &["keys", "create", "--account", "team", "--json", "--models", "gpt-4o,claude-*"],
    )))
    .unwrap();
    let id = created["id"].as_str().unwrap();
    assert!(created["key"].as_str().unwrap().starts_with(&format!("sk-tr-{id}_")));
    assert_eq!(created["prefix"], format!("sk-tr-{id}"));

    let list = stdout(&tokenrouter(d, &["keys", "list", "--account", "team"]));
    assert!(list.contains(id) && !list.contains(created["key"].as_str().unwrap()) && !list.contains(secret));
    stdout(&tokenrouter(d, &["keys", "revoke", id]));
    assert!(stdout(&tokenrouter(d, &["keys", "list", "--account", "team"])).contains("revoked"));

    for bad in [
        &["accounts", "create", "team"][..],
        &["accounts", "credit", "team", "lots"],
        &["accounts", "show", "nobody"],
        &["keys", "create", "--account", "nobody"],
        &["keys", "create", "--account", "team", "--expires", "tomorrow"],
        &["keys", "revoke", "no-such-key"],
        &["frobnicate"],
    ] {
        let output = tokenrouter(d, bad);
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        assert!(!output.stderr.is_empty());
    }
}

#[test]
fn config_check_reports_every_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[server]
listen = "nowhere"
colour = "blue"

[[providers]]
name = "a"
kind = "azure"

[[providers]]
name = "b"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"

[[providers]]
name = "c"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
api_key = "k"
api_key_env = "K"

[[models]]
id = "mystery"
deployments = [ { provider = "zzz" } ]

[[models]]
id = "gpt-4o"
input_price = "free"
deployments = [ { provider = "b", weight = 0 } ]
"#;
    std::fs::write(dir.path().join("bad.toml"), config).unwrap();
    let output = tokenrouter(dir.path(), &["--config", "bad.toml", "config", "check"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for path in [
        "server.colour",
        "providers[0].kind",
        "providers[2]: set api_key or api_key_env",
        "models[0].context_window",
        "models[0].input_price",
        "models[0].deployments[0].provider",
        "models[1].input_price",
        "models[1].deployments[0].weight",
    ] {
        assert!(stderr.contains(path), "missing {path} in:\n{stderr}");
    }
}

#[test]
fn config_errors_give_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        std::fs::write(dir.path().join("tokenrouter.toml"), text).unwrap();
        let output = tokenrouter(dir.path(), &["config", "check"]);
        assert_eq!(output.status.code(), Some(2));
        String::from_utf8(output.stderr).unwrap()
    };
    // A syntax error: where the parser stopped.
    let stderr = check("[server]\nlisten = \"127.0.0.1:8080\"\nbilling = prepaid\n");
    assert!(stderr.contains("tokenrouter.toml:3:11: "), "{stderr}");
    // Unknown field, wrong type, bad value: the field's own position and its path.
    let text = r#"
[server]
colour = "blue"
max_body_bytes = "big"

[[providers]]
name = "p"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"

[[models]]
id = "m"
context_window = 100
max_output_tokens = 10
input_price = 1
output_price = 1
deployments = [ { provider = "p", weight = 0 } ]

[jobs]
workers = "many"
"#;
    let stderr = check(text);
    assert!(stderr.contains("tokenrouter.toml:3:1: server.colour: unknown field `colour`"), "{stderr}");
    assert!(stderr.contains("tokenrouter.toml:17:35: models[0].deployments[0].weight: must be at least 1"), "{stderr}");
    assert!(stderr.contains("tokenrouter.toml:20:1: jobs.workers: invalid type: string"), "{stderr}");
    // `serve` refuses the same file with the same text.
    let output = tokenrouter(dir.path(), &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(output.status.code(), Some(2));
    let served = String::from_utf8(output.stderr).unwrap();
    assert!(served.contains("tokenrouter.toml:3:1: server.colour: unknown field `colour`"), "{served}");
}

#[test]
fn the_example_config_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tokenrouter.example.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let config = Config::from_toml(&text, &Env::from_pairs([("OPENAI_API_KEY", "sk-test")])).unwrap();
    assert_eq!(config.providers.len(), 2);
    let llama = config.model("llama-3.1-8b").unwrap();
    assert_eq!(llama.deployments[0].upstream_model, "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(llama.deployments[0].price.unwrap().input.0, 10_000_000);
    assert_eq!(config.model("gpt-4o-mini").unwrap().price.cached_input.0, 75_000_000);
    assert_eq!(config.model("bge-m3").unwrap().capabilities, ["embeddings"]);
    let output = tokenrouter(example.parent().unwrap(), &["--config", "tokenrouter.example.toml", "config", "check"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn without_a_config_file_providers_come_from_the_environment() {
    let config =
        Config::from_env(&Env::from_pairs([("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"), ("DEEPSEEK_API_KEY", "k")]));
    let ids: Vec<&str> = config.models().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "gpt-4o",
            "gpt-4o-mini",
            "deepseek-chat",
            "deepseek-reasoner",
            "gpt-3.5-turbo-instruct",
            "text-embedding-3-small",
            "text-embedding-3-large"
        ]
    );
    let mini = config.model("gpt-4o-mini").unwrap();
    assert_eq!(mini.deployments[0].provider.base_url, "http://127.0.0.1:9/v1");
    assert_eq!(config.model("deepseek-chat").unwrap().deployments[0].provider.base_url, "https://api.deepseek.com/v1");
    let all = Config::from_env(&Env::from_pairs([
        ("OPENAI_API_KEY", "k"),
        ("ANTHROPIC_API_KEY", "k"),
        ("GEMINI_API_KEY", "k"),
        ("DEEPSEEK_API_KEY", "k"),
        ("MISTRAL_API_KEY", "k"),
    ]));
    assert_eq!(all.models().count(), 16, "every catalog model");
    let embed = all.model("gemini-embedding-001").unwrap();
    assert_eq!(embed.capabilities, ["embeddings"]);
    assert_eq!(embed.max_output_tokens, 0);
}

#[test]
fn admins_links_codes_and_management_keys_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(stdout(&tokenrouter(d, &["accounts", "create", "boss", "--admin"])).contains("created admin account"));
    stdout(&tokenrouter(d, &["accounts", "create", "worker", "--balance", "2.5"]));
    let listed: Value = serde_json::from_str(&stdout(&tokenrouter(d, &["accounts", "list", "--json"]))).unwrap();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["worker", "boss"], "newest first");
    assert_eq!(
        (listed[1]["admin"].clone(), listed[0]["balance_nano_usd"].clone()),
        (json!(true), json!(2_500_000_000_i64))
    );
    assert!(stdout(&tokenrouter(d, &["accounts", "list"])).contains("admin"));
    let link = stdout(&tokenrouter(d, &["accounts", "login-link", "boss", "--ttl", "60"]));
    assert!(link.trim().starts_with("http://127.0.0.1:8080/auth/link/") && link.lines().count() == 1, "{link}");
    let codes = stdout(&tokenrouter(d, &["codes", "create", "--amount", "1.25", "--count", "3"]));
    assert_eq!(codes.lines().count(), 3, "one per line and nothing else: {codes}");
    let key: Value = serde_json::from_str(&stdout(&tokenrouter(
        d,
        &["keys", "create", "--account", "boss", "--scope", "management", "--no-community", "--json"],
    )))
    .unwrap();
    assert!(key["key"].as_str().unwrap().starts_with("sk-tr-"));
    for bad in [
        &["codes", "create", "--amount", "0"][..],
        &["codes", "create", "--amount", "1", "--count", "0"],
        &["codes", "create", "--amount", "1", "--expires", "2001-01-01T00:00:00Z"],
        &["accounts", "login-link", "nobody"],
        &["accounts", "login-link", "boss", "--ttl", "0"],
        &["keys", "create", "--account", "boss", "--scope", "root"],
    ] {
        let output = tokenrouter(d, bad);
        assert_eq!(output.status.code(), Some(2), "{bad:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
}
