//! nginx's realip module: behind a balancer or proxy the connection's peer is that
//! machine, and the client's address comes in a header it adds (`X-Forwarded-For`,
//! `X-Real-IP`) or in the PROXY protocol header. Taken only when the peer is one of
//! `set_real_ip_from`; then `$remote_addr`, the access log and uWSGI's `REMOTE_ADDR` name
//! the client. Pure: the request's header values come in through a closure.
//!
//! ```toml
//! set_real_ip_from = ["10.0.0.0/8", "2001:db8::/32"]
//! real_ip_header = "X-Forwarded-For"   # "X-Real-IP" (the default), any header, or "proxy_protocol"
//! real_ip_recursive = true             # skip trusted addresses from the right
//! ```

use std::net::{IpAddr, SocketAddr};

use crate::config::diag::Diagnostics;
use crate::config::section::Section;

/// An address block of `set_real_ip_from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// `"10.0.0.0/8"`, `"2001:db8::/32"`, or one address.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| format!("`{addr}` is not an IP address"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("`/{b}` is not a prefix length (0-{max})"))?,
        };
        let cidr = Cidr { net, bits };
        if cidr.masked(net) != net {
            // nginx warns "low address bits are meaningless"; a typo here trusts the wrong block
            return Err(format!(
                "`{text}` has address bits set below /{bits}: write {}/{bits}",
                cidr.masked(net)
            ));
        }
        Ok(cidr)
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // an IPv4 client on an IPv6 socket arrives as ::ffff:a.b.c.d
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.net.is_ipv4() && self.masked(ip) == self.net
    }
}

/// Where the client's address is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A request header, by its lower-case name.
    Header(String),
    /// The connection's PROXY protocol header.
    ProxyProtocol,
}

/// A server's realip keys.
#[derive(Clone, Debug)]
pub struct RealIp {
    trusted: Vec<Cidr>,
    source: Source,
    recursive: bool,
}

impl Default for RealIp {
    fn default() -> RealIp {
        RealIp { trusted: Vec::new(), source: Source::Header("x-real-ip".into()), recursive: false }
    }
}

impl RealIp {
    /// Reads the keys of a table over `inherited` (the top level's, for a server).
    pub fn parse(s: &mut Section, inherited: &RealIp, diags: &mut Diagnostics) -> RealIp {
        let mut out = inherited.clone();
        if let Some(list) =
            s.get::<Vec<String>>("set_real_ip_from", "set_real_ip_from = [\"10.0.0.0/8\"]", diags)
        {
            let mut trusted = Vec::new();
            for text in list.get_ref() {
                match Cidr::parse(text) {
                    Ok(c) => trusted.push(c),
                    Err(e) => diags.error(
                        list.span(),
                        format!("set_real_ip_from: {e}"),
                        Some(
                            "write the balancers' addresses or blocks: [\"10.0.0.0/8\", \"192.0.2.7\"]"
                                .into(),
                        ),
                    ),
                }
            }
            out.trusted = trusted;
        }
        if let Some(h) = s.get::<String>("real_ip_header", "real_ip_header = \"X-Forwarded-For\"", diags) {
            let name = h.get_ref();
            if name == "proxy_protocol" {
                out.source = Source::ProxyProtocol;
            } else if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                out.source = Source::Header(name.to_ascii_lowercase());
            } else {
                diags.error(
                    h.span(),
                    format!("real_ip_header: `{name}` is not a header name"),
                    Some("write \"X-Forwarded-For\", \"X-Real-IP\" or \"proxy_protocol\"".into()),
                );
            }
        }
        out.recursive = s.get_or("real_ip_recursive", "real_ip_recursive = true", out.recursive, diags);
        out
    }

    /// Whether `source` reads the PROXY protocol header, for the check that the server
    /// listens with it.
    pub fn uses_proxy_protocol(&self) -> bool {
        !self.trusted.is_empty() && self.source == Source::ProxyProtocol
    }

    /// Whether `ip` is one of `set_real_ip_from`.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The request header the address is read from (lower-case), if it is one.
    pub fn header_name(&self) -> Option<&str> {
        match &self.source {
            Source::Header(name) if !self.trusted.is_empty() => Some(name),
            _ => None,
        }
    }

    /// The client's address when `peer` is trusted and says one; `None` leaves the
    /// peer's. `values` are those of the [`RealIp::header_name`] header in arrival order;
    /// `proxy` is the PROXY protocol header's source.
    pub fn client<'h>(
        &self,
        peer: IpAddr,
        values: impl Iterator<Item = &'h [u8]>,
        proxy: Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        if !self.trusts(peer) {
            return None;
        }
        if self.source == Source::ProxyProtocol {
            return proxy;
        }
        // every address the header lines list, left to right
        let mut addrs: Vec<&[u8]> = Vec::new();
        for value in values {
            addrs.extend(value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|a| !a.is_empty()));
        }
        let parse = |a: &[u8]| std::str::from_utf8(a).ok().and_then(parse_entry);
        if self.recursive {
            // from the right, past every trusted hop; all trusted: the leftmost; an entry
            // that is no address ends the walk at the last good one (nginx's rule)
            let mut chosen = None;
            for a in addrs.iter().rev() {
                let Some(addr) = parse(a) else { break };
                chosen = Some(addr);
                if !self.trusts(addr.ip()) {
                    break;
                }
            }
            chosen
        } else {
            addrs.last().and_then(|a| parse(a))
        }
    }
}

/// One entry of an address header: `203.0.113.9`, `2001:db8::1`, or with a port as some
/// balancers write it (`203.0.113.9:5678`, `[2001:db8::1]:443`); port 0 when it has none,
/// as nginx.
fn parse_entry(s: &str) -> Option<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    s.parse::<SocketAddr>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(trusted: &[&str], source: Source, recursive: bool) -> RealIp {
        RealIp { trusted: trusted.iter().map(|t| Cidr::parse(t).unwrap()).collect(), source, recursive }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn with<'a>(values: &'a [&'a str]) -> impl Iterator<Item = &'a [u8]> {
        values.iter().map(|v| v.as_bytes())
    }

    #[test]
    fn blocks() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.200.1.2")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains(ip("2001:db8:1::5")));
        assert!(Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.7")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("10.0.0.1/8").unwrap_err().contains("write 10.0.0.0/8"));
        assert!(Cidr::parse("10.0.0.0/33").is_err() && Cidr::parse("example.com").is_err());
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let r = real(&["10.0.0.0/8"], Source::Header("x-forwarded-for".into()), false);
        assert_eq!(
            r.client(ip("10.0.0.5"), with(&["203.0.113.9"]), None),
            Some("203.0.113.9:0".parse().unwrap())
        );
        assert_eq!(r.client(ip("198.51.100.1"), with(&["203.0.113.9"]), None), None);
        assert_eq!(r.client(ip("10.0.0.5"), with(&[]), None), None, "no header: the peer");
        assert_eq!(r.client(ip("10.0.0.5"), with(&["not-an-ip"]), None), None);
    }

    #[test]
    fn forwarded_for_last_or_recursive() {
        let spoofed = ["1.1.1.1, 203.0.113.9", "10.0.0.7"];
        let last = real(&["10.0.0.0/8"], Source::Header("x-forwarded-for".into()), false);
        assert_eq!(last.client(ip("10.0.0.5"), with(&spoofed), None).map(|a| a.ip()), Some(ip("10.0.0.7")));
        let rec = real(&["10.0.0.0/8"], Source::Header("x-forwarded-for".into()), true);
        assert_eq!(rec.client(ip("10.0.0.5"), with(&spoofed), None).map(|a| a.ip()), Some(ip("203.0.113.9")));
        assert_eq!(
            rec.client(ip("10.0.0.5"), with(&["10.1.1.1, 10.2.2.2"]), None).map(|a| a.ip()),
            Some(ip("10.1.1.1"))
        );
        let unknown = rec.client(ip("10.0.0.5"), with(&["unknown, 10.0.0.7"]), None);
        assert_eq!(unknown.map(|a| a.ip()), Some(ip("10.0.0.7")), "a bad entry ends the walk");
        let with_port = last.client(ip("10.0.0.5"), with(&["203.0.113.9:5678"]), None);
        assert_eq!(with_port, Some("203.0.113.9:5678".parse().unwrap()));
        let v6 = last.client(ip("10.0.0.5"), with(&["[2001:db8::1]:443"]), None);
        assert_eq!(v6.map(|a| a.ip()), Some(ip("2001:db8::1")));
    }

    #[test]
    fn proxy_protocol_source() {
        let r = real(&["127.0.0.1"], Source::ProxyProtocol, false);
        let from_header = Some("203.0.113.9:4242".parse().unwrap());
        assert_eq!(r.client(ip("127.0.0.1"), with(&[]), from_header), from_header);
        assert_eq!(r.client(ip("127.0.0.2"), with(&[]), from_header), None);
        assert!(r.uses_proxy_protocol());
    }
}
