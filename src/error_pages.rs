//! `error_page`: answering an error status with a URI or a named location instead of the
//! built-in page, as nginx does. Written on a server (inherited) or a location:
//!
//! ```toml
//! error_page = { "404" = "/404.html", "500 502 503 504" = "/50x.html", "403" = "=404 /404.html", "502" = "@maintenance" }
//! ```

use std::collections::HashMap;
use std::ops::Range;

use crate::config::diag::Diagnostics;
use crate::config::section::Section;

/// Where an error status goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorTarget {
    /// Internal redirect to this URI (GET), answered with `status` or the original code.
    Uri { uri: Vec<u8>, status: Option<u16> },
    /// Continue in this named location, keeping the request method.
    Named { name: String, status: Option<u16> },
}

/// The `error_page` table of a server or location.
#[derive(Clone, Debug, Default)]
pub struct ErrorPages {
    pages: HashMap<u16, ErrorTarget>,
    /// Named locations referred to, with where, for validation.
    pub named: Vec<(String, Range<usize>)>,
}

impl ErrorPages {
    /// Reads `error_page`; a location without one inherits its server's.
    pub fn parse(s: &mut Section, inherited: &ErrorPages, diags: &mut Diagnostics) -> ErrorPages {
        let Some(table) = s.get::<HashMap<String, String>>(
            "error_page",
            "error_page = { \"404\" = \"/404.html\", \"502 504\" = \"@maintenance\" }",
            diags,
        ) else {
            return inherited.clone();
        };
        let span = table.span();
        let mut out = ErrorPages::default();
        for (codes, target) in table.into_inner() {
            let target = match parse_target(&target) {
                Ok(t) => t,
                Err(hint) => {
                    diags.error(
                        span.clone(),
                        format!("error_page target `{target}` is not a URI or @name"),
                        Some(hint),
                    );
                    continue;
                }
            };
            if let ErrorTarget::Named { name, .. } = &target {
                out.named.push((name.clone(), span.clone()));
            }
            for code in codes.split_whitespace() {
                match code.parse::<u16>() {
                    Ok(c) if (300..=599).contains(&c) => {
                        out.pages.insert(c, target.clone());
                    }
                    _ => diags.error(
                        span.clone(),
                        format!("`{code}` in error_page is not a status code from 300 to 599"),
                        Some("write the codes as a key: \"500 502 503 504\" = \"/50x.html\"".into()),
                    ),
                }
            }
        }
        out
    }

    /// Where `status` should go, if anywhere.
    pub fn get(&self, status: u16) -> Option<&ErrorTarget> {
        self.pages.get(&status)
    }
}

fn parse_target(text: &str) -> Result<ErrorTarget, String> {
    let text = text.trim();
    let (status, rest) = match text.strip_prefix('=') {
        Some(r) => {
            let (code, rest) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
            let code: u16 = code
                .parse()
                .ok()
                .filter(|c| (200..=599).contains(c))
                .ok_or_else(|| "a response code override is written \"=200 /empty.gif\"".to_string())?;
            (Some(code), rest.trim())
        }
        None => (None, text),
    };
    if let Some(name) = rest.strip_prefix('@') {
        if !name.is_empty() {
            return Ok(ErrorTarget::Named { name: name.to_string(), status });
        }
    }
    if rest.starts_with('/') {
        return Ok(ErrorTarget::Uri { uri: rest.as_bytes().to_vec(), status });
    }
    Err("write a URI such as \"/50x.html\" or a named location such as \"@maintenance\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("/50x.html"),
            Ok(ErrorTarget::Uri { uri: b"/50x.html".to_vec(), status: None })
        );
        assert_eq!(
            parse_target("=200 /empty.gif"),
            Ok(ErrorTarget::Uri { uri: b"/empty.gif".to_vec(), status: Some(200) })
        );
        assert_eq!(
            parse_target("@maintenance"),
            Ok(ErrorTarget::Named { name: "maintenance".into(), status: None })
        );
        assert!(parse_target("50x.html").is_err());
        assert!(parse_target("=abc /x").is_err());
    }
}
