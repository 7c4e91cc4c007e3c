//! Serving files from disk as nginx's static, index and try_files modules do, but never
//! from outside the configured directory.
//!
//! `config` reads the keys, `mapping` maps URIs to paths: root, alias, regex alias (pure), `headers` decides types,
//! validators, conditionals and ranges (pure), `open` opens beneath the base with
//! `openat2`, `open_file_cache` keeps what opening gave (nginx's `open_file_cache`), and
//! `serve` puts these together into a reply for the server to send.

pub mod config;
pub mod headers;
pub mod mapping;
pub mod open;
pub mod open_file_cache;
pub mod serve;
