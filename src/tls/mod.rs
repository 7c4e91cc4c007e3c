//! TLS for `listen = ["443 ssl"]`: each server's `ssl_certificate`, `ssl_certificate_key`
//! and `ssl_protocols`, read and checked when the configuration is assembled (so `check`
//! and a reload refuse a bad certificate with the file and the reason), and turned into
//! the rustls configuration its handshakes use. Which server a handshake gets is chosen
//! by the server (`server/tls_accept.rs`) from the ClientHello's SNI, as Host is matched.
//!
//! ```toml
//! ssl_certificate = "/etc/letsencrypt/live/forum.example.org/fullchain.pem"
//! ssl_certificate_key = "/etc/letsencrypt/live/forum.example.org/privkey.pem"
//! ssl_protocols = ["TLSv1.2", "TLSv1.3"]
//! ```

pub mod certificates;
pub mod config;

pub use config::TlsSettings;
