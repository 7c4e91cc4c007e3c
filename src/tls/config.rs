//! The TLS keys of the top level and of a server (a server inherits what it does not
//! write, as nginx's `http` level), and the rustls configuration a server's handshakes use.

use std::sync::Arc;

use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::version::{TLS12, TLS13};
use rustls::{ServerConfig, SupportedProtocolVersion};

use crate::config::diag::Diagnostics;
use crate::config::section::Section;

use super::certificates::{load, provider};

/// A server's TLS keys, its certificate already read and checked.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub certificate: Option<Arc<CertifiedKey>>,
    /// `ssl_protocols`, in rustls's terms.
    pub protocols: Vec<&'static SupportedProtocolVersion>,
}

impl Default for TlsSettings {
    fn default() -> TlsSettings {
        TlsSettings { certificate: None, protocols: vec![&TLS12, &TLS13] }
    }
}

/// What the handshake offers for ALPN: HTTP/2 first where it is on, as browsers expect.
const ALPN_HTTP11: &[&[u8]] = &[b"http/1.1"];
const ALPN_HTTP2: &[&[u8]] = &[b"h2", b"http/1.1"];

impl TlsSettings {
    /// Reads the TLS keys of a table, over `inherited`. The certificate and key files are
    /// read here: a missing or bad one is an error at the key.
    pub fn parse(s: &mut Section, inherited: &TlsSettings, diags: &mut Diagnostics) -> TlsSettings {
        let mut out = inherited.clone();
        let cert = s.get::<String>(
            "ssl_certificate",
            "ssl_certificate = \"/etc/letsencrypt/live/NAME/fullchain.pem\"",
            diags,
        );
        let key = s.get::<String>(
            "ssl_certificate_key",
            "ssl_certificate_key = \"/etc/letsencrypt/live/NAME/privkey.pem\"",
            diags,
        );
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let (cert_path, key_path) = (diags.absolute(cert.get_ref()), diags.absolute(key.get_ref()));
                match load(&cert_path, &key_path, &provider()) {
                    Ok(k) => out.certificate = Some(k),
                    Err(e) => {
                        let at = if e.key == "ssl_certificate" { cert.span() } else { key.span() };
                        diags.error(at, e.message, Some(e.hint));
                    }
                }
            }
            (Some(v), None) | (None, Some(v)) => diags.error(
                v.span(),
                "ssl_certificate and ssl_certificate_key go together, in the same table",
                Some("write both: the certificate chain and its private key".into()),
            ),
            (None, None) => {}
        }
        if let Some(list) =
            s.get::<Vec<String>>("ssl_protocols", "ssl_protocols = [\"TLSv1.2\", \"TLSv1.3\"]", diags)
        {
            let mut protocols = Vec::new();
            for name in list.get_ref() {
                match name.as_str() {
                    "TLSv1.2" => protocols.push(&TLS12),
                    "TLSv1.3" => protocols.push(&TLS13),
                    "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => diags.error(
                        list.span(),
                        format!("ssl_protocols: {name} is not offered: it is broken, and rustls does not speak it"),
                        Some("write ssl_protocols = [\"TLSv1.2\", \"TLSv1.3\"]".into()),
                    ),
                    other => diags.error(
                        list.span(),
                        format!("ssl_protocols: `{other}` is not a TLS version"),
                        Some("write ssl_protocols = [\"TLSv1.2\", \"TLSv1.3\"]".into()),
                    ),
                }
            }
            if list.get_ref().is_empty() {
                diags.error(
                    list.span(),
                    "ssl_protocols is empty",
                    Some("write ssl_protocols = [\"TLSv1.2\", \"TLSv1.3\"]".into()),
                );
            }
            if !protocols.is_empty() {
                out.protocols = protocols;
            }
        }
        out
    }

    /// The handshake configuration of a server with a certificate: its protocols, rustls's
    /// default cipher suites, no client certificates, HTTP/1.1 (and HTTP/2 if `http2`)
    /// by ALPN.
    pub fn server_config(&self, http2: bool) -> Option<Arc<ServerConfig>> {
        let cert = self.certificate.clone()?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&self.protocols)
            .ok()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(cert)));
        let alpn = if http2 { ALPN_HTTP2 } else { ALPN_HTTP11 };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Some(Arc::new(config))
    }
}
