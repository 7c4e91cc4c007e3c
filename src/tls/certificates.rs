//! Reading a certificate chain and its private key from PEM files, with a reason a person
//! can act on for each way it fails: unreadable, not PEM, no certificate, no key, a key
//! rustls cannot use, a key that is not the certificate's.

use std::io::Read;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Largest PEM file read: a chain of a few certificates is a few KB, so this bounds what a
/// wrong path (a log file, a device) can make Portico hold.
const MAX_PEM: u64 = 1 << 20;

/// Why a certificate or key file cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct CertError {
    /// Which key the problem is with.
    pub key: &'static str,
    pub message: String,
    pub hint: String,
}

/// The crypto provider every TLS configuration uses (ring, as pingora's rustls build).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &str, key: &'static str) -> Result<Vec<u8>, CertError> {
    let unreadable = |e: std::io::Error| {
        CertError {
        key,
        message: format!("{key} {path}: cannot read it {}", crate::errno::describe(&e)),
        hint: "give the path of a PEM file (certbot: /etc/letsencrypt/live/NAME/fullchain.pem and privkey.pem) readable by the user Portico starts as and, for a reload, by its `user` (README: TLS)".into(),
    }
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM + 1).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 > MAX_PEM {
        return Err(CertError {
            key,
            message: format!("{key} {path}: larger than 1 MiB, which no certificate or key is"),
            hint: "check that the path names the PEM file".into(),
        });
    }
    Ok(bytes)
}

/// Reads the chain (leaf first, as `fullchain.pem`) and the key, and checks that the key
/// is the leaf's.
pub fn load(
    cert_path: &str,
    key_path: &str,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, CertError> {
    let pem = read(cert_path, "ssl_certificate")?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&pem).collect::<Result<_, _>>().map_err(|e| CertError {
            key: "ssl_certificate",
            message: format!("ssl_certificate {cert_path}: not a valid PEM file ({e})"),
            hint: "the file should hold -----BEGIN CERTIFICATE----- blocks, the server's first".into(),
        })?;
    if chain.is_empty() {
        return Err(CertError {
            key: "ssl_certificate",
            message: format!("ssl_certificate {cert_path}: holds no certificate"),
            hint: "the file should hold -----BEGIN CERTIFICATE----- blocks, the server's first (a key belongs in ssl_certificate_key)".into(),
        });
    }
    let pem = read(key_path, "ssl_certificate_key")?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| CertError {
        key: "ssl_certificate_key",
        message: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                format!("ssl_certificate_key {key_path}: holds no private key")
            }
            e => format!("ssl_certificate_key {key_path}: not a valid PEM file ({e})"),
        },
        hint: "the file should hold one -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY) block".into(),
    })?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| {
            let mismatch = matches!(e, rustls::Error::InconsistentKeys(_));
            CertError {
                key: "ssl_certificate_key",
                message: if mismatch {
                    format!(
                        "ssl_certificate_key {key_path}: is not the key of the certificate in {cert_path}"
                    )
                } else {
                    format!("ssl_certificate_key {key_path}: cannot be used ({e})")
                },
                hint: if mismatch {
                    "give the key the certificate was issued for (certbot: privkey.pem beside fullchain.pem)"
                        .into()
                } else {
                    "rustls takes RSA (2048 bits or more), ECDSA P-256/P-384 and Ed25519 keys".into()
                },
            }
        })
        .map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    #[test]
    fn each_way_a_pair_fails_is_named() {
        let dir = std::env::temp_dir().join(format!("portico-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let cert = write(&dir, "a.pem", &a.cert.pem());
        let key = write(&dir, "a.key", &a.key_pair.serialize_pem());
        let other_key = write(&dir, "b.key", &b.key_pair.serialize_pem());
        let empty = write(&dir, "empty.pem", "nothing here\n");
        let p = provider();
        assert!(load(&cert, &key, &p).is_ok());
        let e = load(&cert, &other_key, &p).unwrap_err();
        assert!(e.message.contains("is not the key of the certificate"), "{e:?}");
        let e = load(&empty, &key, &p).unwrap_err();
        assert!(e.message.contains("holds no certificate"), "{e:?}");
        let e = load(&key, &key, &p).unwrap_err();
        assert!(e.message.contains("holds no certificate"), "a key given as the certificate: {e:?}");
        let e = load(&cert, &cert, &p).unwrap_err();
        assert!(e.message.contains("holds no private key"), "{e:?}");
        let e = load("/nonexistent/x.pem", &key, &p).unwrap_err();
        assert!(e.message.contains("cannot read it (2: No such file or directory)"), "{e:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
