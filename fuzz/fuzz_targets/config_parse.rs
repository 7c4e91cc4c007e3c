//! Arbitrary configuration text: loading never panics; it is accepted or refused with
//! diagnostics that point inside the file.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match portico::config_file::parse(text, "fuzz.toml") {
        Ok(_) => {}
        Err(diags) => {
            assert!(!diags.is_empty());
            let lines = text.lines().count().max(1);
            for d in diags {
                assert!(d.line <= lines + 1, "{d}");
            }
        }
    }
});
