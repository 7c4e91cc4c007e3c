//! Arbitrary bytes as the start of a connection on a `proxy_protocol` port
//! (`proxy_protocol::parse`). It never panics, and what it answers is sound:
//!
//! - a complete header lies within the input and within the protocol's bounds;
//! - the answer does not change when more bytes follow the header (the connection's own),
//!   and every shorter prefix of a complete header asks for more bytes;
//! - a refused input stays refused whatever follows it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::proxy_protocol::{parse, V2_MAX};

fuzz_target!(|data: &[u8]| {
    let answer = parse(data);
    let mut more = data.to_vec();
    more.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    match &answer {
        Ok(Some(h)) => {
            assert!(h.len <= data.len() && h.len <= V2_MAX, "length {} of {}", h.len, data.len());
            assert_eq!(parse(&more), answer, "bytes after the header changed it");
            for n in 0..h.len {
                assert_eq!(parse(&data[..n]), Ok(None), "a prefix of {n} bytes");
            }
        }
        Ok(None) => {}
        Err(_) => assert!(parse(&more).is_err(), "bytes after a refused start made it a header"),
    }
});
