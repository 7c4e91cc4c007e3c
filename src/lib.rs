//! Portico: a front server for uWSGI-hosted Python web apps that takes nginx's place.
//!
//! The pure cores (URI normalisation, routing, file mapping and header logic, variables,
//! log formatting, configuration validation) are usable on their own, which is what the
//! tests, benchmarks and fuzz targets do; `server` is the thin async shell around them.

pub mod ascii;
pub mod buffer_pool;
pub mod clock;
pub mod compression;
pub mod config;
pub mod config_file;
pub mod content_coding;
pub mod control;
pub mod errno;
pub mod error_pages;
pub mod http1;
pub mod http2;
pub mod import_nginx;
pub mod log;
pub mod permissions;
pub mod preflight;
pub mod proxy_protocol;
pub mod real_ip;
pub mod reply;
pub mod response_headers;
pub mod return_directive;
pub mod routing;
#[cfg(feature = "server")]
pub mod server;
pub mod static_files;
pub mod tls;
pub mod uri;
pub mod uwsgi;
pub mod variables;
