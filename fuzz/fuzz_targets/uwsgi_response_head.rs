//! Arbitrary bytes as a uWSGI response: the head parser never panics, and a parsed head is
//! within the input and the limit, with a status that can be relayed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::uwsgi::codec::app_response::{parse_head, Framing};

fuzz_target!(|data: &[u8]| {
    for (limit, head) in [(4096, false), (64, true), (usize::MAX, false)] {
        if let Ok(Some(h)) = parse_head(data, limit, head) {
            assert!(h.head_len <= data.len() && h.head_len <= limit);
            assert!((200..=599).contains(&h.status));
            if head {
                assert_eq!(h.framing, Framing::None);
            }
            let _ = h.reason(data);
            for (name, value) in h.headers(data) {
                for hop in [&b"content-length"[..], b"transfer-encoding", b"connection"] {
                    assert!(!name.eq_ignore_ascii_case(hop));
                }
                // what is relayed to the client carries no line breaks
                assert!(!value.contains(&b'\n') && !value.contains(&b'\r'));
            }
        }
    }
});
