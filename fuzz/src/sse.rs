//! The SSE codec's target: a byte stream fed to an `SseBuffer` in pieces yields exactly
//! the whole events of the stream taken at once, each ending with its blank line.

use tokenrouter_providers::sse::{self, SseBuffer};

use crate::pieces::{chunks, header};

pub fn sse(data: &[u8]) {
    let (seed, stream) = header(data);
    let whole_len = sse::complete_prefix_len(stream);
    let mut total = 0;
    for event in sse::events(&stream[..whole_len]) {
        total += event.len();
        assert!(event.ends_with(b"\n\n") || event.ends_with(b"\r\n\r\n"), "an event without its blank line: {event:?}");
        assert_eq!(sse::event_len(event), Some(event.len()), "an event that is not one event: {event:?}");
        if let Some(value) = sse::data(event) {
            assert!(value.len() < event.len());
        }
    }
    assert_eq!(total, whole_len);
    assert_eq!(sse::event_len(&stream[whole_len..]), None);

    let mut buffer = SseBuffer::default();
    let mut taken = Vec::with_capacity(whole_len);
    for piece in chunks(stream, seed) {
        buffer.push(piece);
        if let Some(events) = buffer.take_complete() {
            assert!(!events.is_empty());
            assert_eq!(sse::complete_prefix_len(&events), events.len());
            taken.extend_from_slice(&events);
        }
    }
    assert_eq!(taken, &stream[..whole_len], "events depend on where the stream was split");
    assert_eq!(buffer.pending(), &stream[whole_len..]);
}
