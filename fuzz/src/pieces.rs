//! How a target reads its input: a leading byte of flags and a split seed, and the
//! pieces a stream arrives in.

/// The first byte of `data` (0 when there is none) and the rest.
pub fn header(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (0, data),
    }
}

/// `bytes` cut into pieces whose lengths (1 to 32 bytes) follow from `seed`, as an
/// upstream's stream may arrive.
pub fn chunks(bytes: &[u8], seed: u8) -> Vec<&[u8]> {
    let max = u32::from(seed % 32) + 1;
    let mut state = u32::from(seed).wrapping_mul(0x9e37_79b9) | 1;
    let mut pieces = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        // xorshift32: deterministic, so a crash replays from its input alone.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = usize::try_from(state % max + 1).unwrap_or(1).min(rest.len());
        let (piece, tail) = rest.split_at(len);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_input_in_order() {
        let bytes: Vec<u8> = (0..=255).collect();
        for seed in 0..=255 {
            let pieces = chunks(&bytes, seed);
            assert_eq!(pieces.concat(), bytes);
            assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= 32));
        }
    }
}
