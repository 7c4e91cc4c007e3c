//! The compression keys of a server or location, inherited as nginx's: `gzip`,
//! `gzip_types`, `gzip_min_length`, `gzip_comp_level`, `gzip_vary`, `gzip_proxied`,
//! `gzip_http_version`, and `brotli`, `brotli_comp_level` (brotli shares the types and
//! the minimum length with gzip).
//!
//! ```toml
//! gzip = true
//! gzip_types = ["text/css", "application/javascript"]   # text/html always
//! brotli = true
//! ```

use crate::config::diag::Diagnostics;
use crate::config::section::Section;

/// nginx's `gzip_proxied` conditions, for requests that came through a proxy (`Via`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Proxied {
    pub any: bool,
    pub expired: bool,
    pub no_cache: bool,
    pub no_store: bool,
    pub private: bool,
    pub no_last_modified: bool,
    pub no_etag: bool,
    pub auth: bool,
}

/// A server's or location's compression settings.
#[derive(Clone, Debug)]
pub struct Compression {
    pub gzip: bool,
    /// MIME types compressed (lowercase, without parameters); `text/html` is always one.
    pub(super) types: Vec<String>,
    pub(super) any_type: bool,
    pub min_length: u64,
    pub gzip_level: u32,
    pub vary: bool,
    /// `None`: nginx's `off`, requests with `Via` get no coded answer.
    pub proxied: Option<Proxied>,
    /// `gzip_http_version = "1.0"`: HTTP/1.0 clients get coded answers too.
    pub http10: bool,
    pub brotli: bool,
    pub brotli_level: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            gzip: false,
            types: vec!["text/html".into()],
            any_type: false,
            min_length: 20,
            gzip_level: 1,
            // nginx's default is off; on here so that a cache in front never hands a
            // compressed answer to a client that cannot read it
            vary: true,
            proxied: None,
            http10: false,
            brotli: false,
            // ngx_brotli's 6 costs about three times gzip's level 1 per page; 4 is
            // already smaller than gzip -6
            brotli_level: 4,
        }
    }
}

impl Compression {
    /// Reads the keys of a server (`inherited` the defaults) or a location (its server's).
    pub fn parse(s: &mut Section, inherited: &Compression, diags: &mut Diagnostics) -> Compression {
        let mut c = inherited.clone();
        c.gzip = s.get_or("gzip", "gzip = true", c.gzip, diags);
        c.brotli = s.get_or("brotli", "brotli = true", c.brotli, diags);
        c.vary = s.get_or("gzip_vary", "gzip_vary = true", c.vary, diags);
        c.min_length =
            s.size("gzip_min_length", "gzip_min_length = 256", c.min_length, (1 << 40, "1024g"), diags);
        let gzip_hint = "write a level from 1 (fastest, nginx's default) to 9 (smallest)";
        c.gzip_level = read_level(
            s,
            ("gzip_comp_level", "gzip_comp_level = 1   # 1..9"),
            1..=9,
            c.gzip_level,
            gzip_hint,
            diags,
        );
        let br_hint = "write a level from 0 (fastest) to 11 (smallest, far too slow for answers on the fly)";
        c.brotli_level = read_level(
            s,
            ("brotli_comp_level", "brotli_comp_level = 4   # 0..11"),
            0..=11,
            c.brotli_level,
            br_hint,
            diags,
        );
        if let Some(types) = s.get::<Vec<String>>(
            "gzip_types",
            "gzip_types = [\"text/css\", \"application/javascript\"]",
            diags,
        ) {
            let span = types.span();
            let mut list = vec!["text/html".to_string()];
            let mut any = false;
            for t in types.into_inner() {
                let t = t.trim().to_ascii_lowercase();
                if t == "*" {
                    any = true;
                } else if t.split_once('/').is_some_and(|(a, b)| {
                    !a.is_empty() && !b.is_empty() && !b.contains(['/', ';', ' ', '*']) && !a.contains('*')
                }) {
                    if !list.contains(&t) {
                        list.push(t);
                    }
                } else {
                    diags.error(
                        span.clone(),
                        format!("`{t}` in gzip_types is not a MIME type"),
                        Some(
                            "write whole types such as \"text/css\" (no parameters, no `text/*`), or \"*\" for every type"
                                .into(),
                        ),
                    );
                }
            }
            c.types = list;
            c.any_type = any;
        }
        if let Some(list) = s.get::<Vec<String>>(
            "gzip_proxied",
            "gzip_proxied = [\"expired\", \"no-cache\", \"no-store\", \"private\", \"auth\"]",
            diags,
        ) {
            let span = list.span();
            let mut p = Proxied::default();
            let mut off = false;
            for word in list.into_inner() {
                match word.as_str() {
                    "off" => off = true,
                    "any" => p.any = true,
                    "expired" => p.expired = true,
                    "no-cache" => p.no_cache = true,
                    "no-store" => p.no_store = true,
                    "private" => p.private = true,
                    "no_last_modified" => p.no_last_modified = true,
                    "no_etag" => p.no_etag = true,
                    "auth" => p.auth = true,
                    other => diags.error(
                        span.clone(),
                        format!("`{other}` is not a gzip_proxied condition"),
                        Some("use off, any, expired, no-cache, no-store, private, no_last_modified, no_etag, auth".into()),
                    ),
                }
            }
            if off && p != Proxied::default() {
                diags.error(
                    span,
                    "gzip_proxied lists `off` with other conditions",
                    Some("write [\"off\"] alone, or leave `off` out".into()),
                );
            }
            c.proxied = (!off && p != Proxied::default()).then_some(p);
        }
        if let Some(v) = s.get::<String>("gzip_http_version", "gzip_http_version = \"1.1\"", diags) {
            match v.get_ref().as_str() {
                "1.0" => c.http10 = true,
                "1.1" => c.http10 = false,
                other => diags.error(
                    v.span(),
                    format!("gzip_http_version \"{other}\" is not an HTTP version"),
                    Some("write \"1.1\" (nginx's default) or \"1.0\"".into()),
                ),
            }
        }
        c
    }

    /// Whether anything is compressed on the fly here.
    pub fn is_on(&self) -> bool {
        self.gzip || self.brotli
    }

    /// Whether an answer of this `Content-Type` (parameters allowed) is compressed.
    pub fn compresses_type(&self, content_type: &[u8]) -> bool {
        let mime = content_type.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
        !mime.is_empty()
            && (self.any_type || self.types.iter().any(|t| mime.eq_ignore_ascii_case(t.as_bytes())))
    }
}

/// A compression level within `range`; `current` when absent or out of it (reported).
fn read_level(
    s: &mut Section,
    (key, example): (&'static str, &str),
    range: std::ops::RangeInclusive<u32>,
    current: u32,
    hint: &str,
    diags: &mut Diagnostics,
) -> u32 {
    match s.get::<u32>(key, example, diags) {
        Some(level) if range.contains(level.get_ref()) => level.into_inner(),
        Some(level) => {
            diags.error(
                level.span(),
                format!("{key} {} is not a level of its coding", level.get_ref()),
                Some(hint.into()),
            );
            current
        }
        None => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(keys: &str) -> Result<Compression, String> {
        let src = format!("[[server]]\nroot = \"/srv\"\n{keys}\n[[server.location]]\nmatch = \"/\"\n");
        match crate::config_file::parse(&src, "t.toml") {
            Ok((c, _)) => Ok(c.sites[0].compression.clone()),
            Err(d) => {
                Err(d.iter().map(|d| format!("{}: {}", d.line, d.message)).collect::<Vec<_>>().join("; "))
            }
        }
    }

    #[test]
    fn nginx_defaults_and_text_html_always() {
        let c = read("gzip = true").unwrap();
        assert_eq!(
            (c.gzip, c.min_length, c.gzip_level, c.vary, c.proxied, c.http10),
            (true, 20, 1, true, None, false)
        );
        assert!(c.compresses_type(b"text/html; charset=utf-8"));
        assert!(!c.compresses_type(b"text/css"));
        let c = read("gzip_types = [\"text/css\", \"Application/JavaScript\"]").unwrap();
        assert!(
            c.compresses_type(b"TEXT/HTML")
                && c.compresses_type(b"text/css")
                && c.compresses_type(b"application/javascript")
        );
        assert!(!c.compresses_type(b"image/png"));
        assert!(read("gzip_types = [\"*\"]").unwrap().compresses_type(b"image/png"));
        assert!(
            !read("gzip_types = [\"*\"]").unwrap().compresses_type(b""),
            "an answer without a type is not"
        );
    }

    #[test]
    fn bad_values_are_refused_with_their_line() {
        for (keys, says) in [
            ("gzip_comp_level = 10", "not a level"),
            ("brotli_comp_level = 12", "not a level"),
            ("gzip_types = [\"css\"]", "not a MIME type"),
            ("gzip_types = [\"text/*\"]", "not a MIME type"),
            ("gzip_proxied = [\"sometimes\"]", "not a gzip_proxied condition"),
            ("gzip_proxied = [\"off\", \"any\"]", "`off` with other"),
            ("gzip_http_version = \"2\"", "not an HTTP version"),
        ] {
            let e = read(keys).expect_err(keys);
            assert!(e.starts_with("3: ") && e.contains(says), "{keys}: {e}");
        }
        let c = read("gzip_proxied = [\"expired\", \"auth\"]\ngzip_http_version = \"1.0\"").unwrap();
        assert_eq!(c.proxied, Some(Proxied { expired: true, auth: true, ..Proxied::default() }));
        assert!(c.http10);
    }
}
