//! Arbitrary bytes as a chunked body: the decoder never panics, never claims more input
//! than it was given, and gives the same result fed in one piece or byte by byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::http1::chunked::ChunkedDecoder;

fuzz_target!(|data: &[u8]| {
    let mut whole = ChunkedDecoder::new();
    let mut out_whole = Vec::new();
    let whole_result = whole.decode_into(data, &mut out_whole);
    if let Ok(n) = whole_result {
        assert!(n <= data.len());
        assert!(out_whole.len() <= n);
    }

    let mut bytewise = ChunkedDecoder::new();
    let mut out_bytes = Vec::new();
    let mut result = Ok(0);
    for b in data {
        if bytewise.is_done() {
            break;
        }
        match bytewise.decode_into(std::slice::from_ref(b), &mut out_bytes) {
            Ok(n) => result = result.map(|total| total + n),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    assert_eq!(whole_result.is_ok(), result.is_ok());
    if whole_result.is_ok() {
        assert_eq!(out_whole, out_bytes);
        assert_eq!(whole.is_done(), bytewise.is_done());
    }
});
