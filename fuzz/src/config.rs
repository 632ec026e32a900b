//! The config target: any text as a config file is either a validated `Config` or a list
//! of errors, each placed in the file (`file:line:column: …`).

use tokenrouter::config::{Config, Env};

pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = Env::from_pairs([
        ("OPENAI_API_KEY", "sk-fuzz"),
        ("ANTHROPIC_API_KEY", "sk-ant-fuzz"),
        ("FUZZ_KEY", "k"),
        ("GITHUB_CLIENT_SECRET", "s"),
    ]);
    match Config::from_toml_named(text, &env, "fuzz.toml") {
        Ok(config) => {
            for model in config.models() {
                assert!(config.model(&model.id).is_some());
                let _ = model.live_deployments().count();
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a config refused without a reason");
            for error in &errors.0 {
                assert!(error.starts_with("fuzz.toml"), "an error not placed in the file: {error}");
            }
        }
    }
}
