//! Arbitrary request targets: normalisation never panics, and a normalised path starts with
//! `/` and has no empty, `.` or `..` segments left to climb with.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::uri::{normalize_path, split_target};

fuzz_target!(|data: &[u8]| {
    let Ok(target) = split_target(data) else { return };
    let mut out = Vec::new();
    if normalize_path(target.raw_path, &mut out).is_ok() {
        assert_eq!(out.first(), Some(&b'/'));
        let inner = &out[1..out.len() - usize::from(out.len() > 1 && out.ends_with(b"/"))];
        if !inner.is_empty() {
            for seg in inner.split(|&b| b == b'/') {
                assert!(
                    !seg.is_empty() && seg != b"." && seg != b"..",
                    "{:?}",
                    String::from_utf8_lossy(&out)
                );
            }
        }
        assert!(!out.contains(&0));
    }
});
