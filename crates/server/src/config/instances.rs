//! `[instances]`: community model servers — which addresses they may have, how often they
//! are probed, and the share of each charge their owner earns.

use std::time::Duration;

use serde::Deserialize;

/// Probes every 30 s unless configured.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(30);
/// The owner's share of a charge, in billionths (0.8).
pub const DEFAULT_OWNER_SHARE_PPB: u64 = 800_000_000;
const BILLION: u64 = 1_000_000_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstances {
    /// Instances may point at loopback, private and CGNAT addresses (a LAN, tests);
    /// link-local and metadata addresses stay refused.
    pub allow_private_addresses: Option<bool>,
    pub probe_interval_secs: Option<u64>,
    /// The fraction of each charge credited to the serving instance's owner, "0" to "1".
    pub owner_share: Option<toml::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstancesConfig {
    pub allow_private_addresses: bool,
    pub probe_interval: Duration,
    /// The owner's share in billionths of the charge (0 ..= 1e9), so the earning is
    /// `charge × share / 1e9` rounded down, in integers.
    pub owner_share_ppb: u64,
}

impl Default for InstancesConfig {
    fn default() -> Self {
        InstancesConfig {
            allow_private_addresses: false,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            owner_share_ppb: DEFAULT_OWNER_SHARE_PPB,
        }
    }
}

impl InstancesConfig {
    pub fn build(raw: RawInstances, errors: &mut Vec<String>) -> InstancesConfig {
        let probe_interval = match raw.probe_interval_secs {
            None => DEFAULT_PROBE_INTERVAL,
            Some(0) => {
                errors.push("instances.probe_interval_secs: must be at least 1".to_owned());
                DEFAULT_PROBE_INTERVAL
            }
            Some(secs) => Duration::from_secs(secs),
        };
        let owner_share_ppb = match raw.owner_share {
            None => DEFAULT_OWNER_SHARE_PPB,
            Some(value) => {
                let text = match &value {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Integer(i) => i.to_string(),
                    other => other.to_string(),
                };
                share_ppb(&text).unwrap_or_else(|| {
                    errors.push(format!(
                        "instances.owner_share: '{text}' is not a fraction from 0 to 1 with at most 9 decimals (e.g. \"0.8\")"
                    ));
                    DEFAULT_OWNER_SHARE_PPB
                })
            }
        };
        InstancesConfig {
            allow_private_addresses: raw.allow_private_addresses.unwrap_or(false),
            probe_interval,
            owner_share_ppb,
        }
    }

    /// The owner's earning for a charge: `share × charge`, rounded down to the nano-USD.
    pub fn owner_earning(&self, charge_nano: i64) -> i64 {
        if charge_nano <= 0 {
            return 0;
        }
        let earned = i128::from(charge_nano) * i128::from(self.owner_share_ppb) / i128::from(BILLION);
        i64::try_from(earned).unwrap_or(0)
    }
}

/// `"0.8"` → 800 000 000; `"1"` → 1e9; anything outside 0..=1 or with more than 9
/// decimals → `None`. Decimal text only: no float touches money.
fn share_ppb(text: &str) -> Option<u64> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.chars().all(|c| c.is_ascii_digit()) || !fraction.chars().all(|c| c.is_ascii_digit()) || fraction.len() > 9
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let padded = format!("{fraction:0<9}");
    let fraction: u64 = padded.parse().ok()?;
    let ppb = whole.checked_mul(BILLION)?.checked_add(fraction)?;
    (ppb <= BILLION).then_some(ppb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_share_is_a_decimal_fraction_and_earnings_round_down() {
        assert_eq!(share_ppb("0.8"), Some(800_000_000));
        assert_eq!(share_ppb("1"), Some(BILLION));
        assert_eq!(share_ppb("0"), Some(0));
        assert_eq!(share_ppb(".25"), Some(250_000_000));
        assert_eq!(share_ppb("0.123456789"), Some(123_456_789));
        for bad in ["1.5", "-0.1", "0.1234567891", "abc", "", ".", "0.8.1"] {
            assert_eq!(share_ppb(bad), None, "{bad}");
        }
        let config = InstancesConfig { owner_share_ppb: 800_000_000, ..InstancesConfig::default() };
        assert_eq!(config.owner_earning(1_000), 800);
        assert_eq!(config.owner_earning(7), 5); // 5.6 rounds down
        assert_eq!(config.owner_earning(0), 0);
        assert_eq!(config.owner_earning(-5), 0);
        assert_eq!(config.owner_earning(i64::MAX), i64::MAX / 10 * 8 + (i64::MAX % 10) * 8 / 10);
    }

    #[test]
    fn bad_values_are_reported_with_their_path() {
        let mut errors = Vec::new();
        let raw = RawInstances {
            allow_private_addresses: Some(true),
            probe_interval_secs: Some(0),
            owner_share: Some(toml::Value::String("2".to_owned())),
        };
        let config = InstancesConfig::build(raw, &mut errors);
        assert!(config.allow_private_addresses);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("instances.probe_interval_secs"));
        assert!(errors[1].starts_with("instances.owner_share"));
    }
}
