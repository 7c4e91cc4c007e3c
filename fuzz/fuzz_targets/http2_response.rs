//! Arbitrary bytes as the HTTP/1.1 answer the request steps write to an HTTP/2 stream
//! (`http2::response_reader`), in pieces cut where the first byte says. It never
//! panics, every call consumes something or asks for nothing more, DATA lies within the
//! input, and nothing follows the end of a response.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::http2::response_reader::{Event, ResponseReader};

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else { return };
    let mut reader = ResponseReader::new(first & 1 == 1);
    let step = usize::from(first >> 1).max(1);
    for piece in bytes.chunks(step) {
        let mut input = piece;
        while !input.is_empty() {
            let Ok((n, event)) = reader.feed(input) else { return };
            assert!(n <= input.len());
            match event {
                Event::Data(r) => assert!(r.start < r.end && r.end <= n, "{r:?} of {n}"),
                Event::Nothing if n == 0 => break,
                _ => {}
            }
            if reader.is_done() {
                // (the rest is dropped whole, never read as another response)
                let (m, after) = reader.feed(input).unwrap_or((0, Event::End));
                assert!(matches!(after, Event::Nothing | Event::End) && m <= input.len());
            }
            input = &input[n..];
        }
    }
});
