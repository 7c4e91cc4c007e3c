//! Arbitrary text as an nginx configuration through `import-nginx`'s pure steps: the
//! parser (`syntax::parse`), the conversion (`convert::convert`) and the TOML writer
//! (`toml_out::write`). None of them panics, and whatever the conversion accepts is
//! written as TOML that parses, and that Portico's validation reads without panicking.
//! (The file reading and the symlink walk are left out: they touch the filesystem.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::import_nginx::includes::SourceFile;
use portico::import_nginx::{convert, syntax, toml_out};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(tree) = syntax::parse(text, 0) else { return };
    let Ok(converted) = convert::convert(&tree) else { return };
    let files = [SourceFile { shown: "fuzz.conf".into() }];
    let toml = toml_out::write(&converted, &files);
    if let Err(e) = toml.parse::<toml::Table>() {
        panic!("the converted configuration is not TOML ({e}):\n{toml}");
    }
    let _ = portico::config_file::parse(&toml, "out.toml");
});
