//! Deterministic embedding vectors for the OpenAI and Gemini embedding endpoints, and the
//! standard base64 both formats put bytes in (OpenAI's `encoding_format: "base64"`,
//! Gemini's thought signatures).

use crate::reply::fnv1a;

/// The largest vector a request may ask for.
pub(crate) const MAX_DIMENSIONS: u64 = 8192;

/// The unit-length vector of `text` with `dimensions` components. The components are a
/// pseudo-random sequence seeded by the text's hash, so the same text always gives the
/// same vector, and a shorter vector is a longer one's start, rescaled to unit length.
pub(crate) fn vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut state = fnv1a(text.as_bytes());
    let raw: Vec<f64> = (0..dimensions)
        .map(|_| {
            // SplitMix64: cheap, well mixed, and stable across Rust releases.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // The top 53 bits as a float in [0, 1), then spread over [-1, 1).
            (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        return (0..dimensions).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect();
    }
    raw.iter().map(|x| (x / norm) as f32).collect()
}

/// The components' little-endian IEEE 754 bytes, base64-encoded: OpenAI's `"base64"` encoding.
pub(crate) fn to_base64(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64(&bytes)
}

/// Standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_unit_length_deterministic_and_nested() {
        let long = vector("hello world", 64);
        assert_eq!(long, vector("hello world", 64));
        assert_ne!(long, vector("hello there", 64));
        let norm: f64 = long.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        let short = vector("hello world", 8);
        let ratio = f64::from(short[0]) / f64::from(long[0]);
        for (s, l) in short.iter().zip(&long) {
            assert!((f64::from(*s) - f64::from(*l) * ratio).abs() < 1e-5);
        }
        assert!(vector("", 3).iter().all(|x| x.is_finite()));
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"sig_mock_1"), "c2lnX21vY2tfMQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b""), "");
        assert_eq!(to_base64(&[1.0]), "AACAPw==");
    }
}
