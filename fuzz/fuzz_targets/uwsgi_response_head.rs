//! Arbitrary bytes as a uWSGI response: the head parser never panics, and a parsed head is
//! within the input and the limit, with a status that can be relayed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::uwsgi::codec::response::{parse_head, Framing};

fuzz_target!(|data: &[u8]| {
    for (limit, head) in [(4096, false), (64, true), (usize::MAX, false)] {
        if let Ok(Some(h)) = parse_head(data, limit, head) {
            assert!(h.head_len <= data.len() && h.head_len <= limit);
            assert!((200..=599).contains(&h.status));
            if head {
                assert_eq!(h.framing, Framing::None);
            }
            for (name, _) in &h.headers {
                for hop in ["content-length", "transfer-encoding", "connection"] {
                    assert!(!name.eq_ignore_ascii_case(hop));
                }
            }
        }
    }
});
