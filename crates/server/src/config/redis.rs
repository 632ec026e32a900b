//! `[redis]`: where the rate limits live when several replicas share them.

use super::raw::RawRedis;

pub const DEFAULT_REDIS_KEY_PREFIX: &str = "tokenrouter:";

/// Where the rate limits live when several replicas share them.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `None`: each replica counts on its own.
    pub url: Option<String>,
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig { url: None, key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned() }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only its host and port are shown.
        let endpoint = self.url.as_deref().map(tokenrouter_store::counters::endpoint);
        f.debug_struct("RedisConfig").field("endpoint", &endpoint).field("key_prefix", &self.key_prefix).finish()
    }
}

impl RedisConfig {
    /// A Redis URL as accepted: `redis://…` or `rediss://…`.
    pub fn check_url(url: &str) -> Result<(), String> {
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            Ok(())
        } else {
            Err("expected a URL starting with redis:// or rediss://".to_owned())
        }
    }

    pub(super) fn build(raw: RawRedis, errors: &mut Vec<String>) -> RedisConfig {
        let mut config = RedisConfig::default();
        if let Some(url) = raw.url {
            match RedisConfig::check_url(&url) {
                Ok(()) => config.url = Some(url),
                Err(e) => errors.push(format!("redis.url: {e}")),
            }
        }
        match raw.key_prefix {
            Some(prefix) if prefix.is_empty() => errors.push("redis.key_prefix: cannot be empty".to_owned()),
            Some(prefix) => config.key_prefix = prefix,
            None => {}
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_prefixes_are_checked_with_their_path_and_passwords_never_shown() {
        let mut errors = Vec::new();
        let raw = RawRedis { url: Some("http://cache:6379".into()), key_prefix: Some(String::new()) };
        assert_eq!(RedisConfig::build(raw, &mut errors), RedisConfig::default());
        assert_eq!(
            errors,
            ["redis.url: expected a URL starting with redis:// or rediss://", "redis.key_prefix: cannot be empty"]
        );
        let raw = RawRedis { url: Some("rediss://user:s3cret@cache:6380/2".into()), key_prefix: None };
        let config = RedisConfig::build(raw, &mut errors);
        assert_eq!(config.key_prefix, "tokenrouter:");
        let shown = format!("{config:?}");
        assert!(shown.contains("cache:6380") && !shown.contains("s3cret"), "{shown}");
    }
}
