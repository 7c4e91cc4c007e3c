//! Content codings (`br`, `gzip`, `zstd`) and which one a request's `Accept-Encoding`
//! lets Portico send: the coding with the highest q-value among those on offer, ties
//! going to the order the configuration lists them in; `q=0` refuses a coding, `*`
//! stands for every coding the header does not name. Identity is always acceptable
//! here, as nginx treats it: a client that refuses it (`identity;q=0`) and accepts
//! nothing on offer gets the plain file, never a 406. Pure.

/// A coding Portico can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Br,
    Gzip,
    Zstd,
}

impl Coding {
    /// Its name in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
            Coding::Zstd => "zstd",
        }
    }

    /// The suffix of a precompressed file beside the original (`app.css.gz`).
    pub fn suffix(self) -> &'static [u8] {
        match self {
            Coding::Br => b".br",
            Coding::Gzip => b".gz",
            Coding::Zstd => b".zst",
        }
    }

    /// A configuration's name for it.
    pub fn from_name(name: &str) -> Option<Coding> {
        match name {
            "br" => Some(Coding::Br),
            "gzip" => Some(Coding::Gzip),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }

    fn matches(self, token: &[u8]) -> bool {
        token.eq_ignore_ascii_case(self.token().as_bytes())
            // RFC 9110 §8.4.1.3: x-gzip is gzip
            || (self == Coding::Gzip && token.eq_ignore_ascii_case(b"x-gzip"))
    }
}

/// The coding to send for a request whose `Accept-Encoding` lines are `accept`, among
/// `offered` (in the configuration's order of preference); `None`: identity.
pub fn choose<'a>(accept: impl Iterator<Item = &'a [u8]>, offered: &[Coding]) -> Option<Coding> {
    // q-values in thousandths, as RFC 9110 writes them (at most three decimals)
    let mut named: [Option<u16>; 3] = [None; 3];
    let mut star: Option<u16> = None;
    let mut any_header = false;
    for line in accept {
        any_header = true;
        for item in line.split(|&b| b == b',') {
            let mut parts = item.split(|&b| b == b';');
            let token = trim(parts.next().unwrap_or_default());
            if token.is_empty() {
                continue;
            }
            let mut q = 1000;
            for param in parts {
                let param = trim(param);
                if let Some(v) = param.strip_prefix(b"q=").or_else(|| param.strip_prefix(b"Q=")) {
                    // a malformed q-value counts as a refusal, and of two the lower
                    // counts: the safe readings
                    q = q.min(parse_q(trim(v)).unwrap_or(0));
                }
            }
            if token == b"*" {
                star = Some(star.map_or(q, |s| s.max(q)));
            }
            for (slot, c) in named.iter_mut().zip([Coding::Br, Coding::Gzip, Coding::Zstd]) {
                if c.matches(token) {
                    *slot = Some(slot.map_or(q, |s| s.max(q)));
                }
            }
        }
    }
    if !any_header {
        return None;
    }
    let mut best: Option<(Coding, u16)> = None;
    for &c in offered {
        let slot = match c {
            Coding::Br => named[0],
            Coding::Gzip => named[1],
            Coding::Zstd => named[2],
        };
        let q = slot.or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((c, q));
        }
    }
    best.map(|(c, _)| c)
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// `0`, `0.5`, `1`, `1.000` → thousandths; anything else is not a q-value.
fn parse_q(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;

    fn pick(header: &str, offered: &[Coding]) -> Option<Coding> {
        choose(std::iter::once(header.as_bytes()), offered)
    }

    #[test]
    fn q_values_decide_and_the_configuration_breaks_ties() {
        assert_eq!(pick("gzip, deflate, br", &[Br, Gzip]), Some(Br));
        assert_eq!(pick("gzip, deflate, br", &[Gzip, Br]), Some(Gzip));
        assert_eq!(pick("br;q=0.5, gzip", &[Br, Gzip]), Some(Gzip));
        assert_eq!(pick("br;q=0, gzip;q=0.001", &[Br, Gzip]), Some(Gzip));
        assert_eq!(pick("gzip;q=0", &[Gzip]), None);
        assert_eq!(pick("*", &[Zstd, Gzip]), Some(Zstd));
        assert_eq!(pick("*;q=0.5, gzip;q=0", &[Gzip, Br]), Some(Br));
        assert_eq!(pick("X-GZIP", &[Gzip]), Some(Gzip));
        assert_eq!(pick("identity;q=0", &[Gzip]), None, "identity is sent, never a 406");
        assert_eq!(pick("deflate", &[Gzip, Br]), None);
        assert_eq!(pick("gzip;q=2", &[Gzip]), None, "not a q-value: refused");
        assert_eq!(pick("gzip;q=0.5000", &[Gzip]), None);
        assert_eq!(pick(" gzip ; q=1.0 ", &[Gzip]), Some(Gzip));
        assert_eq!(pick("br;q=0;q=0.5", &[Br]), None, "of two q-values the lower");
        assert_eq!(choose(std::iter::empty(), &[Gzip]), None, "no header: identity");
        let two = [&b"br;q=0"[..], b"gzip"];
        assert_eq!(choose(two.into_iter(), &[Br, Gzip]), Some(Gzip), "every line counts");
    }
}
