//! A small deterministic mutator for the smoke test: the seed corpus bent the ways that
//! break parsers (bit flips, JSON, SSE and TOML tokens spliced in, ranges cut, repeated or
//! taken from another seed), and random token soup. Same seed, same inputs: a failure
//! replays.

/// Byte strings that mean something to one of the parsers.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"true",
    b"false",
    b"0",
    b"-1",
    b"1.5",
    b"1e999",
    b"-0",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"4294967296",
    b"\"\\ud800\"",
    b"\\u0000",
    b"\\",
    b"\"\"",
    b"{}",
    b"[]",
    b"\n",
    b"\r",
    b"\n\n",
    b"\r\n\r\n",
    b"data: ",
    b"data:",
    b"event: ",
    b": ping\n\n",
    b"[DONE]",
    b"\"usage\":",
    b"\"usage\":null",
    b"\"choices\":[]",
    b"\"content\":",
    b"\"text\":",
    b"\"type\":",
    b"\"arguments\":",
    b"\"index\":",
    b"\"role\":",
    b"\"error\":",
    b"\"model\":",
    b"\"messages\":",
    b"\"input\":",
    b"\"tools\":",
    b"\"stream\":true",
    b"=",
    b"[[",
    b"]]",
    b"\"\"\"",
    b"'",
    b"#",
    b".",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xa8",
    b"\xf0\x9f\x98\x80",
];

/// A xorshift64* generator with the mutations built on it.
#[derive(Debug, Clone)]
pub struct Mutator {
    state: u64,
}

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator { state: seed | 1 }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { usize::try_from(self.next() % n as u64).unwrap_or(0) }
    }

    fn token(&mut self) -> &'static [u8] {
        TOKENS[self.below(TOKENS.len())]
    }

    /// `input` with one to four mutations; `others` are spliced from.
    pub fn mutate(&mut self, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..=self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(8) {
                0 if !out.is_empty() => {
                    let i = self.below(out.len());
                    out[i] ^= 1 << self.below(8);
                }
                1 if !out.is_empty() => {
                    let i = self.below(out.len());
                    let token = self.token();
                    out[i] = token[0];
                }
                2 => {
                    let token = self.token();
                    out.splice(at..at, token.iter().copied());
                }
                3 => {
                    let len = self.below(out.len() - at + 1).min(16);
                    out.drain(at..at + len);
                }
                4 => {
                    let len = self.below(out.len() - at + 1).min(64);
                    let copy = out[at..at + len].to_vec();
                    for _ in 0..=self.below(3) {
                        out.splice(at..at, copy.iter().copied());
                    }
                }
                5 if !others.is_empty() => {
                    let other = &others[self.below(others.len())];
                    let from = self.below(other.len() + 1);
                    let len = self.below(other.len() - from + 1);
                    out.splice(at..at, other[from..from + len].iter().copied());
                }
                6 => out.truncate(at),
                _ => {
                    // A first byte of flags and split seed, as the stream targets read it.
                    let byte = u8::try_from(self.below(256)).unwrap_or(0);
                    match out.first_mut() {
                        Some(first) => *first = byte,
                        None => out.push(byte),
                    }
                }
            }
        }
        out
    }

    /// Up to `max_tokens` tokens and random bytes run together.
    pub fn soup(&mut self, max_tokens: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..self.below(max_tokens + 1) {
            if self.below(4) == 0 {
                out.push(u8::try_from(self.below(256)).unwrap_or(0));
            } else {
                out.extend_from_slice(self.token());
            }
        }
        out
    }
}
