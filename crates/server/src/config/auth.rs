//! `[auth.github]`: signing in with GitHub (absent: no GitHub sign-in; one-time links
//! still work), and how long sessions last.

use serde::Deserialize;

use super::Env;

pub const DEFAULT_SESSION_TTL_SECS: u64 = 7 * 24 * 3600;

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub github: Option<RawGithub>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGithub {
    pub client_id: Option<String>,
    pub client_secret_env: Option<String>,
    pub client_secret: Option<String>,
    pub base_url: Option<String>,
    pub api_base_url: Option<String>,
    pub signup: Option<String>,
    pub allowed_logins: Option<Vec<String>>,
    pub admins: Option<Vec<String>>,
    pub session_ttl_secs: Option<u64>,
}

/// Who may sign in, and how.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    pub github: Option<GithubConfig>,
    pub session_ttl_secs: u64,
}

#[derive(Clone, PartialEq, Eq)]
pub struct GithubConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Where `/login/oauth/authorize` and `/login/oauth/access_token` live.
    pub base_url: String,
    /// Where `/user` and `/user/emails` live.
    pub api_base_url: String,
    /// Unknown GitHub users get an account (`open`) or are refused (`closed`).
    pub signup_open: bool,
    /// Lowercased; empty: anyone.
    pub allowed_logins: Vec<String>,
    /// Lowercased.
    pub admins: Vec<String>,
}

impl std::fmt::Debug for GithubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("api_base_url", &self.api_base_url)
            .field("signup_open", &self.signup_open)
            .field("allowed_logins", &self.allowed_logins)
            .field("admins", &self.admins)
            .finish()
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("github", &self.github)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .finish()
    }
}

fn base(url: Option<String>, default: &str, path: &str, errors: &mut Vec<String>) -> String {
    let url = url.unwrap_or_else(|| default.to_owned());
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        errors.push(format!("{path}: '{url}' must start with https:// (or http://)"));
    }
    url.trim_end_matches('/').to_owned()
}

impl AuthConfig {
    pub(super) fn build(raw: RawAuth, env: &Env, errors: &mut Vec<String>) -> AuthConfig {
        let Some(raw) = raw.github else {
            return AuthConfig { github: None, session_ttl_secs: DEFAULT_SESSION_TTL_SECS };
        };
        let session_ttl_secs = match raw.session_ttl_secs {
            Some(0) => {
                errors.push("auth.github.session_ttl_secs: must be at least 1".to_owned());
                DEFAULT_SESSION_TTL_SECS
            }
            Some(secs) => secs.min(366 * 24 * 3600),
            None => DEFAULT_SESSION_TTL_SECS,
        };
        let client_id = raw.client_id.unwrap_or_default();
        if client_id.trim().is_empty() {
            errors.push("auth.github.client_id: required (the OAuth app's client id)".to_owned());
        }
        let client_secret = match (raw.client_secret, raw.client_secret_env) {
            (Some(_), Some(_)) => {
                errors.push("auth.github: set client_secret or client_secret_env, not both".to_owned());
                String::new()
            }
            (Some(secret), None) => secret,
            (None, Some(var)) => match env.get(&var) {
                Some(secret) => secret.to_owned(),
                None => {
                    errors.push(format!("auth.github.client_secret_env: the environment variable {var} is not set"));
                    String::new()
                }
            },
            (None, None) => {
                errors.push("auth.github: set client_secret_env (or client_secret)".to_owned());
                String::new()
            }
        };
        let signup_open = match raw.signup.as_deref() {
            None | Some("open") => true,
            Some("closed") => false,
            Some(other) => {
                errors.push(format!("auth.github.signup: '{other}' is not one of open, closed"));
                true
            }
        };
        let lower = |list: Option<Vec<String>>| -> Vec<String> {
            list.unwrap_or_default().iter().map(|l| l.trim().to_ascii_lowercase()).filter(|l| !l.is_empty()).collect()
        };
        let github = GithubConfig {
            client_id: client_id.trim().to_owned(),
            client_secret,
            base_url: base(raw.base_url, "https://github.com", "auth.github.base_url", errors),
            api_base_url: base(raw.api_base_url, "https://api.github.com", "auth.github.api_base_url", errors),
            signup_open,
            allowed_logins: lower(raw.allowed_logins),
            admins: lower(raw.admins),
        };
        AuthConfig { github: Some(github), session_ttl_secs }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Env};

    fn errors(toml: &str, env: &Env) -> Vec<String> {
        Config::from_toml(toml, env).err().map(|e| e.0).unwrap_or_default()
    }

    #[test]
    fn github_sign_in_is_configured_or_refused_with_every_reason() {
        let env = Env::from_pairs([("GH_SECRET", "s3cret")]);
        let config = Config::from_toml(
            "[auth.github]\nclient_id = \"abc\"\nclient_secret_env = \"GH_SECRET\"\nadmins = [\"Mona\"]\nsignup = \"closed\"\n",
            &env,
        )
        .unwrap();
        let github = config.auth.github.clone().unwrap();
        assert_eq!((github.client_secret.as_str(), github.signup_open), ("s3cret", false));
        assert_eq!(github.admins, ["mona"]);
        assert_eq!(github.base_url, "https://github.com");
        assert!(!format!("{:?}", config.auth).contains("s3cret"), "the secret never reaches a log");

        let all = errors(
            "[auth.github]\nclient_secret = \"x\"\nclient_secret_env = \"GH_SECRET\"\nsignup = \"maybe\"\nbase_url = \"ftp://x\"\nsession_ttl_secs = 0\n",
            &env,
        );
        for needle in ["client_id", "not both", "signup", "base_url", "session_ttl_secs"] {
            assert!(all.iter().any(|e| e.contains(needle)), "{needle}: {all:?}");
        }
        let missing = errors("[auth.github]\nclient_id = \"abc\"\nclient_secret_env = \"NOPE\"\n", &env);
        assert!(missing.iter().any(|e| e.contains("NOPE is not set")), "{missing:?}");
        assert!(errors("[auth]\nfacebook = {}\n", &env).iter().any(|e| e.contains("facebook")));
        let bad_origin = errors("[server]\npublic_url = \"https://gw.example.com/sub\"\n", &env);
        assert!(bad_origin.iter().any(|e| e.contains("public_url")), "{bad_origin:?}");
        let origin = Config::from_toml("[server]\npublic_url = \"https://GW.example.com/\"\n", &env).unwrap();
        assert_eq!(origin.server.public_origin(), "https://gw.example.com");
    }
}
