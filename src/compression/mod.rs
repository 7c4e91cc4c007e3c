//! Compression on the fly: nginx's `gzip*` keys and `brotli`, which answers to compress
//! and how (`decide`, pure), and the streaming encoders (`encoder`). Precompressed
//! files beside the originals are `static_files`' part; whether a request may get a
//! coded answer at all (`gzip_http_version`, `gzip_proxied`) is decided here for both.

pub mod config;
pub mod decide;
pub mod encoder;

pub use config::Compression;
pub use decide::{decide, Decision, ResponseFacts};
pub use encoder::{Codec, Encoder};
