//! Money as integer nano-USD, and per-model prices. No float ever holds an amount:
//! decimal strings are parsed digit by digit, and costs round up to the next nano-USD.

use std::fmt;

use serde::{Deserialize, Serialize};

const NANOS_PER_USD: i64 = 1_000_000_000;
const TOKENS_PER_PRICE_UNIT: i128 = 1_000_000;

/// An amount in nano-USD (1e-9 USD). Arithmetic is checked: an overflow is an error, not a wrap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NanoUsd(pub i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("'{0}' is not an amount in USD (digits, an optional '.', at most 9 decimals)")]
    Malformed(String),
    #[error("amount '{0}' is too large")]
    TooLarge(String),
    #[error("amount arithmetic overflowed")]
    Overflow,
}

impl NanoUsd {
    pub const ZERO: NanoUsd = NanoUsd(0);

    /// Parses a decimal USD amount such as `"12"`, `"0.15"`, `"-3.000000001"`.
    pub fn parse_usd(text: &str) -> Result<NanoUsd, MoneyError> {
        let malformed = || MoneyError::Malformed(text.to_owned());
        let trimmed = text.trim();
        let (negative, digits) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) || frac.len() > 9 {
            return Err(malformed());
        }
        let too_large = || MoneyError::TooLarge(text.to_owned());
        let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_large())? };
        let mut frac_nanos: i64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            let scale = 10_i64.pow(8 - u32::try_from(i).map_err(|_| malformed())?);
            frac_nanos += i64::from(b - b'0') * scale;
        }
        let value = whole.checked_mul(NANOS_PER_USD).and_then(|w| w.checked_add(frac_nanos)).ok_or_else(too_large)?;
        Ok(NanoUsd(if negative { -value } else { value }))
    }

    /// Parses a price or amount written as a TOML/JSON number. The float's shortest
    /// round-trip text is exactly the decimal the user wrote, which is then parsed exactly.
    pub fn parse_usd_f64(value: f64) -> Result<NanoUsd, MoneyError> {
        if !value.is_finite() {
            return Err(MoneyError::Malformed(value.to_string()));
        }
        let text = format!("{value}");
        if text.contains('e') {
            return Err(MoneyError::Malformed(text));
        }
        NanoUsd::parse_usd(&text)
    }

    pub fn checked_add(self, other: NanoUsd) -> Result<NanoUsd, MoneyError> {
        self.0.checked_add(other.0).map(NanoUsd).ok_or(MoneyError::Overflow)
    }

    pub fn checked_sub(self, other: NanoUsd) -> Result<NanoUsd, MoneyError> {
        self.0.checked_sub(other.0).map(NanoUsd).ok_or(MoneyError::Overflow)
    }

    /// USD with 9 decimals, trailing zeros trimmed to at least 2 (`"0.15"`, `"1.000000001"`).
    /// Written digit by digit: every request's log line and ledger memo carry one, and
    /// `format!` cost about a thousand instructions a call.
    pub fn to_usd_string(self) -> String {
        let abs = self.0.unsigned_abs();
        let nanos = NANOS_PER_USD.unsigned_abs();
        let (whole, mut frac, mut places) = (abs / nanos, abs % nanos, 9);
        while places > 2 && frac % 10 == 0 {
            frac /= 10;
            places -= 1;
        }
        let mut text = String::with_capacity(32);
        if self.0 < 0 {
            text.push('-');
        }
        push_digits(&mut text, whole, 1);
        text.push('.');
        push_digits(&mut text, frac, places);
        text
    }

    /// USD as the management API writes it: the shortest exact decimal (`"12.5"`, `"100"`,
    /// `"0.000000001"`).
    pub fn to_decimal_string(self) -> String {
        let text = self.to_usd_string();
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
fn push_digits(text: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    while n > 0 || digits.len() - at < width {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    text.extend(digits[at..].iter().map(|&d| char::from(d)));
}

impl fmt::Display for NanoUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_usd_string())
    }
}

/// Prices of one model in nano-USD per 1M tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub input: NanoUsd,
    /// Price of prompt tokens read from the provider's cache; defaults to `input`.
    pub cached_input: NanoUsd,
    /// Price of prompt tokens written to the provider's cache; defaults to `input`.
    #[serde(default)]
    pub cache_write: NanoUsd,
    pub output: NanoUsd,
    /// Prices of hosted tool calls, per call.
    #[serde(default)]
    pub tools: ToolPrices,
}

/// What one call of each hosted tool costs (`[[models]] tool_prices`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolPrices {
    #[serde(default)]
    pub web_search: NanoUsd,
    #[serde(default)]
    pub web_fetch: NanoUsd,
}

impl Price {
    /// Cost of `usage` at these prices, rounded up to the next nano-USD: prompt tokens
    /// neither read from nor written to the cache at `input`, cache reads at
    /// `cached_input`, cache writes at `cache_write`, completion tokens at `output`; plus
    /// each hosted tool call at its price in `tools`.
    ///
    /// Counts come from upstreams and are not trusted: a cost too large for an `i64` is
    /// `i64::MAX` (never a wrap, never a panic), whatever the counts.
    pub fn cost(&self, usage: &crate::Usage) -> NanoUsd {
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let written = usage.cache_write_tokens.min(usage.prompt_tokens - cached);
        let plain = usage.prompt_tokens - cached - written;
        // Each product fits an i128 (u64 × i64); only their sums can overflow it.
        let times = |count: u64, price: NanoUsd| i128::from(count) * i128::from(price.0);
        let sum = |terms: &[i128]| terms.iter().try_fold(0_i128, |total, term| total.checked_add(*term));
        let micro_units = sum(&[
            times(plain, self.input),
            times(cached, self.cached_input),
            times(written, self.cache_write),
            times(usage.completion_tokens, self.output),
        ]);
        let rounded_up = micro_units
            .and_then(|m| m.checked_add(TOKENS_PER_PRICE_UNIT - 1))
            .map(|m| m.div_euclid(TOKENS_PER_PRICE_UNIT));
        let calls = self.tools.cost(&usage.hosted);
        let total = rounded_up.and_then(|tokens| tokens.checked_add(i128::from(calls.0)));
        NanoUsd(total.and_then(|t| i64::try_from(t).ok()).unwrap_or(i64::MAX))
    }
}

impl ToolPrices {
    /// What `calls` cost at these prices (`i64::MAX` when that does not fit).
    pub fn cost(&self, calls: &crate::HostedCalls) -> NanoUsd {
        let times = |count: u64, price: NanoUsd| i128::from(count) * i128::from(price.0);
        let total = times(calls.web_search, self.web_search).checked_add(times(calls.web_fetch, self.web_fetch));
        NanoUsd(total.and_then(|t| i64::try_from(t).ok()).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Usage;

    #[test]
    fn parses_decimal_usd_exactly() {
        assert_eq!(NanoUsd::parse_usd("0.15").unwrap(), NanoUsd(150_000_000));
        assert_eq!(NanoUsd::parse_usd("12").unwrap(), NanoUsd(12_000_000_000));
        assert_eq!(NanoUsd::parse_usd("-3.000000001").unwrap(), NanoUsd(-3_000_000_001));
        assert_eq!(NanoUsd::parse_usd(".5").unwrap(), NanoUsd(500_000_000));
        assert!(NanoUsd::parse_usd("1.0000000001").is_err());
        assert!(NanoUsd::parse_usd("abc").is_err());
        assert!(NanoUsd::parse_usd("").is_err());
        assert!(NanoUsd::parse_usd("99999999999999").is_err());
        assert_eq!(NanoUsd::parse_usd_f64(0.15).unwrap(), NanoUsd(150_000_000));
        assert_eq!(NanoUsd::parse_usd_f64(2.5).unwrap(), NanoUsd(2_500_000_000));
    }

    #[test]
    fn formats_usd() {
        assert_eq!(NanoUsd(150_000_000).to_usd_string(), "0.15");
        assert_eq!(NanoUsd(-1_000_000_001).to_usd_string(), "-1.000000001");
        assert_eq!(NanoUsd(0).to_usd_string(), "0.00");
        assert_eq!(NanoUsd(1).to_usd_string(), "0.000000001");
        assert_eq!(NanoUsd(10_000_000).to_usd_string(), "0.01");
        assert_eq!(NanoUsd(1_230_000_000).to_usd_string(), "1.23");
        assert_eq!(NanoUsd(1_234_000_000).to_usd_string(), "1.234");
        assert_eq!(NanoUsd(i64::MAX).to_usd_string(), "9223372036.854775807");
        assert_eq!(NanoUsd(i64::MIN).to_usd_string(), "-9223372036.854775808");
        // The same text as formatting it would give, over a spread of values.
        for n in (-3_000_000_000_i64..3_000_000_000).step_by(7_777_777).chain([999_999_999, -10, 100]) {
            let abs = n.unsigned_abs();
            let frac = format!("{:09}", abs % 1_000_000_000);
            let frac = frac.trim_end_matches('0');
            let frac = if frac.len() < 2 { &format!("{frac:0<2}") } else { frac };
            let sign = if n < 0 { "-" } else { "" };
            assert_eq!(NanoUsd(n).to_usd_string(), format!("{sign}{}.{frac}", abs / 1_000_000_000), "{n}");
        }
        assert_eq!(NanoUsd(0).to_decimal_string(), "0");
        assert_eq!(NanoUsd(12_500_000_000).to_decimal_string(), "12.5");
        assert_eq!(NanoUsd(100_000_000_000).to_decimal_string(), "100");
        assert_eq!(NanoUsd(-1).to_decimal_string(), "-0.000000001");
    }

    #[test]
    fn cost_rounds_up_and_prices_cache() {
        let price = Price {
            input: NanoUsd::parse_usd("0.15").unwrap(),
            cached_input: NanoUsd::parse_usd("0.075").unwrap(),
            cache_write: NanoUsd::parse_usd("0.15").unwrap(),
            output: NanoUsd::parse_usd("0.60").unwrap(),
            tools: Default::default(),
        };
        let usage = Usage { prompt_tokens: 10, completion_tokens: 3, cached_tokens: 4, ..Usage::default() };
        assert_eq!(price.cost(&usage), NanoUsd(3000));
        let one = Usage { prompt_tokens: 1, ..Usage::default() };
        let tiny = Price {
            input: NanoUsd(1),
            cached_input: NanoUsd(1),
            cache_write: NanoUsd(1),
            output: NanoUsd(1),
            tools: Default::default(),
        };
        assert_eq!(tiny.cost(&one), NanoUsd(1), "a fraction of a nano-USD rounds up");
    }

    #[test]
    fn hosted_tool_calls_cost_their_price_per_call() {
        let price = Price {
            input: NanoUsd::parse_usd("3").unwrap(),
            output: NanoUsd::parse_usd("15").unwrap(),
            tools: ToolPrices { web_search: NanoUsd::parse_usd("0.01").unwrap(), web_fetch: NanoUsd::ZERO },
            ..Price::default()
        };
        let usage = Usage {
            prompt_tokens: 1000,
            completion_tokens: 100,
            hosted: crate::HostedCalls { web_search: 3, web_fetch: 2 },
            ..Usage::default()
        };
        // 1000 × 3000 + 100 × 15000 nano-USD (3 and 15 USD per 1M tokens); 3 searches × 0.01 USD.
        assert_eq!(price.cost(&usage), NanoUsd(4_500_000 + 30_000_000));
    }

    #[test]
    fn absurd_counts_cost_the_most_an_amount_can_be_never_a_wrap() {
        let price = Price {
            input: NanoUsd(i64::MAX),
            cached_input: NanoUsd(i64::MAX),
            cache_write: NanoUsd(i64::MAX),
            output: NanoUsd(i64::MAX),
            tools: ToolPrices { web_search: NanoUsd(i64::MAX), web_fetch: NanoUsd(i64::MAX) },
        };
        let usage = Usage {
            prompt_tokens: u64::MAX,
            completion_tokens: u64::MAX,
            cached_tokens: u64::MAX / 3,
            cache_write_tokens: u64::MAX / 3,
            reasoning_tokens: 0,
            hosted: crate::HostedCalls { web_search: u64::MAX, web_fetch: u64::MAX },
        };
        assert_eq!(price.cost(&usage), NanoUsd(i64::MAX));
        let calls_only = Price { tools: price.tools, ..Price::default() };
        let searches = Usage { hosted: crate::HostedCalls { web_search: u64::MAX, web_fetch: 1 }, ..Usage::default() };
        assert_eq!(calls_only.cost(&searches), NanoUsd(i64::MAX));
        // Within range the tools' own sum is exact.
        let tools = ToolPrices { web_search: NanoUsd(10_000_000), web_fetch: NanoUsd(3) };
        assert_eq!(tools.cost(&crate::HostedCalls { web_search: 7, web_fetch: 5 }), NanoUsd(70_000_015));
    }

    #[test]
    fn cache_writes_cost_the_cache_write_price() {
        // Claude Sonnet 4.5: $3 input, $0.30 cache reads, $3.75 cache writes, $15 output.
        let price = Price {
            input: NanoUsd::parse_usd("3").unwrap(),
            cached_input: NanoUsd::parse_usd("0.30").unwrap(),
            cache_write: NanoUsd::parse_usd("3.75").unwrap(),
            output: NanoUsd::parse_usd("15").unwrap(),
            tools: Default::default(),
        };
        // 12 plain + 2000 read + 100 written prompt tokens, 20 out:
        // 12×3000 + 2000×300 + 100×3750 + 20×15000 = 1_311_000 nano-USD.
        let usage = Usage {
            prompt_tokens: 2112,
            completion_tokens: 20,
            cached_tokens: 2000,
            cache_write_tokens: 100,
            reasoning_tokens: 0,
            hosted: Default::default(),
        };
        assert_eq!(price.cost(&usage), NanoUsd(1_311_000));
        // Writes beyond the uncached prompt are capped: never more tokens than the prompt.
        let over = Usage { prompt_tokens: 10, cached_tokens: 4, cache_write_tokens: 50, ..Usage::default() };
        assert_eq!(price.cost(&over), NanoUsd(4 * 300 + 6 * 3750));
        // An old journal line without the field reads as no cache writes.
        let old: Usage =
            serde_json::from_str(r#"{"prompt_tokens":5,"completion_tokens":1,"cached_tokens":0,"reasoning_tokens":0}"#)
                .unwrap();
        assert_eq!(old.cache_write_tokens, 0);
    }
}
