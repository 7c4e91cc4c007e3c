//! Arbitrary bytes as what an HTTP/2 client sends (`http2::flood::FrameCounter`). It never
//! panics, and its answer does not depend on how the bytes arrive: fed whole, or in
//! pieces cut where the first byte says, the same bound is crossed (or none).

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::http2::flood::FrameCounter;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else { return };
    let whole = FrameCounter::new().observe(bytes);
    let mut pieces = FrameCounter::new();
    let step = usize::from(cut).max(1);
    let mut split = Ok(());
    for piece in bytes.chunks(step) {
        split = pieces.observe(piece);
        if split.is_err() {
            break;
        }
    }
    assert_eq!(whole, split, "pieces of {step}");
});
