//! The PROXY protocol header an L4 balancer (HAProxy `send-proxy`, a cloud load balancer)
//! puts before a connection's first byte, versions 1 (text) and 2 (binary), as nginx's
//! `listen ... proxy_protocol` reads them: the client's address and port as the balancer
//! saw them. Pure: bytes in, the header's length and addresses out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest version 1 header (the specification's bound).
const V1_MAX: usize = 107;
/// The longest version 2 header accepted: the addresses and a few TLVs (nginx reads it
/// into a buffer of its own too).
pub const V2_MAX: usize = 16 + 2048;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A complete header.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    /// Its length: the connection's own bytes start after it.
    pub len: usize,
    /// The client's address and port (`None`: `UNKNOWN`, a `LOCAL` health check, or a
    /// family other than TCP over IPv4/IPv6).
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
}

/// Why the bytes are not a PROXY header (the connection is closed).
#[derive(Debug, PartialEq, Eq)]
pub struct ProxyError(pub &'static str);

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Parses the header at the start of `buf`: `Ok(None)` while more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    let v2_prefix = buf.len().min(V2_SIGNATURE.len());
    if !buf.is_empty() && buf[..v2_prefix] == V2_SIGNATURE[..v2_prefix] {
        return parse_v2(buf);
    }
    let v1_prefix = buf.len().min(6);
    if buf[..v1_prefix] != b"PROXY "[..v1_prefix] {
        return Err(ProxyError("broken header: not a PROXY protocol header"));
    }
    parse_v1(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    let Some(end) = memchr::memchr(b'\n', &buf[..buf.len().min(V1_MAX)]) else {
        return if buf.len() >= V1_MAX { Err(ProxyError("header too long")) } else { Ok(None) };
    };
    if end == 0 || buf[end - 1] != b'\r' {
        return Err(ProxyError("broken header: the line does not end with CRLF"));
    }
    let line = std::str::from_utf8(&buf[6..end - 1]).map_err(|_| ProxyError("broken header: not text"))?;
    let mut words = line.split(' ');
    let family = words.next().unwrap_or("");
    if family == "UNKNOWN" {
        return Ok(Some(Header { len: end + 1, source: None, destination: None }));
    }
    let (src, dst, sport, dport) =
        match (words.next(), words.next(), words.next(), words.next(), words.next()) {
            (Some(a), Some(b), Some(c), Some(d), None) => (a, b, c, d),
            _ => return Err(ProxyError("broken header: expected family, two addresses and two ports")),
        };
    let ip = |s: &str| -> Result<IpAddr, ProxyError> {
        match family {
            "TCP4" => s
                .parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| ProxyError("broken header: bad IPv4 address")),
            "TCP6" => s
                .parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| ProxyError("broken header: bad IPv6 address")),
            _ => Err(ProxyError("broken header: unknown family (TCP4, TCP6 or UNKNOWN)")),
        }
    };
    let port = |s: &str| -> Result<u16, ProxyError> {
        // digits only, no sign or leading zeros beyond "0" (the specification's form)
        if s.is_empty()
            || s.len() > 5
            || !s.bytes().all(|b| b.is_ascii_digit())
            || (s.len() > 1 && s.starts_with('0'))
        {
            return Err(ProxyError("broken header: bad port"));
        }
        s.parse().map_err(|_| ProxyError("broken header: bad port"))
    };
    Ok(Some(Header {
        len: end + 1,
        source: Some(SocketAddr::new(ip(src)?, port(sport)?)),
        destination: Some(SocketAddr::new(ip(dst)?, port(dport)?)),
    }))
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    if version != 2 {
        return Err(ProxyError("broken header: version 2 signature with another version"));
    }
    let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > V2_MAX {
        return Err(ProxyError("header too long"));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let body = &buf[16..len];
    let (source, destination) = match (command, buf[13]) {
        // LOCAL: the balancer's own connection (a health check): the socket's addresses
        (0, _) => (None, None),
        (1, 0x11) if body.len() >= 12 => {
            let a = |i: usize| IpAddr::V4(Ipv4Addr::new(body[i], body[i + 1], body[i + 2], body[i + 3]));
            let p = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
            (Some(SocketAddr::new(a(0), p(8))), Some(SocketAddr::new(a(4), p(10))))
        }
        (1, 0x21) if body.len() >= 36 => {
            let a = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&body[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            let p = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
            (Some(SocketAddr::new(a(0), p(32))), Some(SocketAddr::new(a(16), p(34))))
        }
        (1, 0x11 | 0x21) => return Err(ProxyError("broken header: addresses shorter than their family")),
        // UDP, UNIX or unspecified: nothing to take (as nginx)
        (1, _) => (None, None),
        _ => return Err(ProxyError("broken header: unknown command")),
    };
    Ok(Some(Header { len, source, destination }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn version_1() {
        let h = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
        assert_eq!(
            parse(h),
            Ok(Some(Header {
                len: 45,
                source: addr("192.0.2.1:56324"),
                destination: addr("198.51.100.2:443")
            }))
        );
        let h = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
        assert_eq!(parse(h).unwrap().unwrap().source, addr("[2001:db8::1]:1"));
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Ok(Some(Header { len: 15, source: None, destination: None }))
        );
        assert_eq!(parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").unwrap().unwrap().source, None);
        // byte by byte: more is needed until the line ends
        let h = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
        for n in 0..45 {
            assert_eq!(parse(&h[..n]), Ok(None), "{n} bytes");
        }
    }

    #[test]
    fn broken_version_1_headers() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            parse(&[b'P'; 200][..]).unwrap_err(),
            ProxyError("broken header: not a PROXY protocol header")
        );
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(120, b'x');
        assert_eq!(parse(&long), Err(ProxyError("header too long")));
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn version_2() {
        let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2];
        body.extend_from_slice(&56324u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(&[0x04, 0, 1, 0]); // a TLV, skipped
        let h = v2(1, 0x11, &body);
        assert_eq!(
            parse(&h),
            Ok(Some(Header {
                len: 32,
                source: addr("192.0.2.1:56324"),
                destination: addr("198.51.100.2:443")
            }))
        );
        for n in 0..h.len() {
            assert_eq!(parse(&h[..n]), Ok(None), "{n} bytes");
        }
        let mut six = [0u8; 36];
        six[15] = 1;
        six[31] = 2;
        six[33] = 80;
        assert_eq!(parse(&v2(1, 0x21, &six)).unwrap().unwrap().source, addr("[::1]:80"));
        // LOCAL and other families: the socket's own addresses
        assert_eq!(parse(&v2(0, 0x11, &body)).unwrap().unwrap().source, None);
        assert_eq!(parse(&v2(1, 0x31, &[0; 216])).unwrap().unwrap().source, None);
        assert!(parse(&v2(1, 0x11, &[0; 4])).is_err());
        assert!(parse(&v2(2, 0x11, &body)).is_err());
        let mut wrong_version = v2(1, 0x11, &body);
        wrong_version[12] = 0x11;
        assert!(parse(&wrong_version).is_err());
        assert_eq!(parse(&v2(1, 0x11, &vec![0; V2_MAX])), Err(ProxyError("header too long")));
    }
}
