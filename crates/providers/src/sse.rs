//! Server-sent events framing: splits a byte stream into whole events without copying,
//! and reads an event's `data` payload.

/// The largest event accepted from an upstream: one that grows past this without ending
/// ends the stream (a server that never sends a blank line must not grow a buffer without
/// bound).
pub const MAX_EVENT: usize = 4 * 1024 * 1024;

/// Accumulates bytes that arrive in arbitrary pieces and hands out whole events.
#[derive(Debug, Default)]
pub struct SseBuffer {
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no blank line: the next search resumes near
    /// there, so an event arriving in many small pieces is not searched again from its
    /// start on every piece.
    searched: usize,
}

impl SseBuffer {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Bytes held back because they do not yet end an event.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The bytes held back are more than [`MAX_EVENT`]: an event that will not end.
    pub fn overflowed(&self) -> bool {
        self.pending.len() > MAX_EVENT
    }

    /// Takes every complete event out of the buffer (each slice ends with its blank line).
    pub fn take_complete(&mut self) -> Option<Vec<u8>> {
        // A blank line not found before may end with the bytes just pushed: it starts at
        // most 3 bytes (`\r\n\r` of `\r\n\r\n`) before the end of what was searched.
        let from = self.searched.saturating_sub(3);
        let Some(first) = event_len(&self.pending[from..]) else {
            self.searched = self.pending.len();
            return None;
        };
        let end = from + first;
        let end = end + complete_prefix_len(&self.pending[end..]);
        let rest = self.pending.split_off(end);
        self.searched = rest.len();
        Some(std::mem::replace(&mut self.pending, rest))
    }
}

/// Length of the longest prefix of `bytes` that consists of whole events.
pub fn complete_prefix_len(bytes: &[u8]) -> usize {
    let mut end = 0;
    while let Some(len) = event_len(&bytes[end..]) {
        end += len;
    }
    end
}

/// Length of the first event in `bytes`, blank line included, if it is complete.
///
/// One pass over the line feeds up to the first that ends a blank line (`\n\n`, or
/// `\r\n\r\n`): finding an event costs its length, whatever follows it. (Searching the
/// rest of the buffer for each terminator apart made a large chunk of many CRLF events
/// quadratic.)
pub fn event_len(bytes: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', bytes).find_map(|i| match bytes.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if i > 0 && bytes[i - 1] == b'\r' && bytes.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

/// Iterates over the whole events of a slice made of whole events.
pub fn events(mut bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = event_len(bytes)?;
        let (event, rest) = bytes.split_at(len);
        bytes = rest;
        Some(event)
    })
}

/// The `data` payload of one event: the value of its `data:` line (lines joined by `\n`
/// when there are several). `None` for events without data (comments, pings).
pub fn data(event: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let mut found: Option<std::borrow::Cow<'_, [u8]>> = None;
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(value) = line.strip_prefix(b"data:") else {
            continue;
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        found = Some(match found {
            None => std::borrow::Cow::Borrowed(value),
            Some(prev) => {
                let mut joined = prev.into_owned();
                joined.push(b'\n');
                joined.extend_from_slice(value);
                std::borrow::Cow::Owned(joined)
            }
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_arbitrary_boundaries() {
        let stream = b"data: {\"a\":1}\n\n: ping\n\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut buf = SseBuffer::default();
            let mut out = Vec::new();
            for piece in [&stream[..cut], &stream[cut..]] {
                buf.push(piece);
                if let Some(done) = buf.take_complete() {
                    out.extend(events(&done).map(<[u8]>::to_vec));
                }
            }
            assert!(buf.is_empty(), "cut at {cut}");
            let datas: Vec<_> = out.iter().filter_map(|e| data(e).map(|d| d.into_owned())).collect();
            assert_eq!(datas, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec(), b"[DONE]".to_vec()]);
        }
    }

    #[test]
    fn an_event_ends_at_the_first_blank_line_of_either_kind() {
        let cases: [(&[u8], Option<usize>); 8] = [
            (b"data: a\n\n", Some(9)),
            (b"data: a\r\n\r\n", Some(11)),
            (b"a\r\n\n", Some(4)),
            (b"a\n\r\n\r\n", Some(6)),
            (b"a\r\n\r\nb\n\n", Some(5)),
            (b"\n\n", Some(2)),
            (b"a\r\n\r", None),
            (b"a\n\rb\n\r\r\n", None),
        ];
        for (bytes, len) in cases {
            assert_eq!(event_len(bytes), len, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn many_crlf_events_in_one_piece_take_linear_time() {
        // Found by the `sse` fuzz target: 20,000 CRLF events in one buffer took minutes.
        let stream = b"data: {}\r\n\r\n".repeat(200_000);
        let start = std::time::Instant::now();
        assert_eq!(complete_prefix_len(&stream), stream.len());
        assert_eq!(events(&stream).count(), 200_000);
        let lf_then_cr = [&b"data: {}\n\n".repeat(200_000)[..], b"\r"].concat();
        assert_eq!(complete_prefix_len(&lf_then_cr), lf_then_cr.len() - 1);
        assert!(start.elapsed() < std::time::Duration::from_secs(2), "{:?}", start.elapsed());
    }

    #[test]
    fn a_large_event_in_small_pieces_is_searched_once() {
        let event = [&b"data: \""[..], &b"x\r\n".repeat(300_000), b"\"\r\n\r\n"].concat();
        let start = std::time::Instant::now();
        let mut buf = SseBuffer::default();
        let mut taken = Vec::new();
        for piece in event.chunks(16) {
            buf.push(piece);
            taken.extend(buf.take_complete().unwrap_or_default());
        }
        assert_eq!(taken, event);
        assert!(buf.is_empty());
        assert!(start.elapsed() < std::time::Duration::from_secs(2), "{:?}", start.elapsed());
    }

    #[test]
    fn joins_multi_line_data() {
        assert_eq!(data(b"event: x\ndata: a\ndata: b\n\n").unwrap().as_ref(), b"a\nb");
        assert!(data(b": comment\n\n").is_none());
    }
}
