//! Certificates made in the test (a CA of its own and leaf certificates it signs), and a
//! rustls client that says which certificate the server presented.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use super::Conn;

/// A test CA.
pub struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    pub fn new() -> Ca {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "Portico test CA");
        let cert = params.self_signed(&key).expect("CA cert");
        Ca { cert, key }
    }

    /// Writes the CA's certificate to `dir/ca.pem`.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.cert.pem()).expect("write CA");
        path
    }

    /// A leaf certificate for `names` (DNS names or IP addresses), written as
    /// `dir/NAME.pem` and `dir/NAME.key`; returns its DER to compare with what a server
    /// presents.
    pub fn issue(&self, dir: &Path, file: &str, names: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign");
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem() + &self.cert.pem()).expect("write chain");
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).expect("write key");
        cert.der().to_vec()
    }
}

/// Accepts any certificate and keeps nothing: the tests compare the presented one with
/// what they issued (curl checks real verification).
#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

pub type TlsConn = Conn<StreamOwned<ClientConnection, TcpStream>>;

/// A client configuration that accepts any certificate and offers `alpn` (the HTTP/2
/// tests' async client).
pub fn client_config(alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr` sending `sni` (none: the address is named, and rustls sends
/// no SNI for an address), handshake done.
pub fn connect(addr: SocketAddr, sni: Option<&str>) -> TlsConn {
    connect_with(addr, sni, None).expect("TLS handshake")
}

/// A TLS connection over `tcp`, already connected to `addr` (after a PROXY header).
pub fn connect_over(tcp: TcpStream, addr: SocketAddr, sni: Option<&str>) -> TlsConn {
    handshake(Some(tcp), addr, sni, None).expect("TLS handshake")
}

/// As [`connect`], offering only `version` when given; the handshake's error otherwise.
pub fn connect_with(
    addr: SocketAddr,
    sni: Option<&str>,
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> Result<TlsConn, std::io::Error> {
    handshake(None, addr, sni, version)
}

fn handshake(
    tcp: Option<TcpStream>,
    addr: SocketAddr,
    sni: Option<&str>,
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> Result<TlsConn, std::io::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = version.map_or_else(|| rustls::DEFAULT_VERSIONS.to_vec(), |v| vec![v]);
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_string()).expect("server name"),
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let conn = ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = match tcp {
        Some(t) => t,
        None => TcpStream::connect(addr)?,
    };
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(Conn::over(stream))
}

/// The leaf certificate the server presented on `c`.
pub fn presented(c: &TlsConn) -> Vec<u8> {
    c.stream().conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default()
}
