//! ASCII helpers the parsers and escapers share (URI, headers, uwsgi, chunked bodies,
//! log lines): HTTP's optional whitespace, hex digits both ways, plain decimals.

/// Trims spaces and tabs from both ends: HTTP's optional whitespace (RFC 9110 §5.6.3).
pub fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(v.len());
    let end = v.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |e| e + 1);
    &v[start..end]
}

/// The value of one hexadecimal digit.
pub fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The two uppercase hex digits of a byte, as `%XX` and `\\xXX` escapes write them.
pub fn hex_pair(b: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]
}

/// A non-negative decimal number made of digits only (no sign, no spaces), as
/// `Content-Length` must be.
pub fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(hex_digit(b'F'), Some(15));
        assert_eq!(hex_digit(b'g'), None);
        assert_eq!(&hex_pair(0x2f), b"2F");
        assert_eq!(parse_decimal(b"602"), Some(602));
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b"3x"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"99999999999999999999999"), None);
    }
}
