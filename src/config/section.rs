//! Typed access to one TOML table of the configuration, keeping the span of every value.
//!
//! A module that owns some keys asks the [`Section`] for them by name; whatever is left
//! unasked when the section is finished is an unknown key, reported with a "did you mean"
//! hint. Values are deserialized with serde one key at a time, so one bad value does not
//! hide the next.

use std::ops::Range;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::diag::{did_you_mean, Diagnostics};

/// One TOML table (`[[server]]`, `[[server.location]]`, `[upstream.NAME]`...).
pub struct Section<'a, 'i> {
    /// How the table is written in the file, for messages: "[[server.location]]".
    kind: &'static str,
    table: &'a DeTable<'i>,
    span: Range<usize>,
    asked: Vec<&'static str>,
}

impl<'a, 'i> Section<'a, 'i> {
    pub fn new(kind: &'static str, table: &'a DeTable<'i>, span: Range<usize>) -> Self {
        Section { kind, table, span, asked: Vec::new() }
    }

    /// Span of the whole table: where to point when something is missing from it.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    fn raw(&mut self, key: &'static str) -> Option<&'a Spanned<DeValue<'i>>> {
        if !self.asked.contains(&key) {
            self.asked.push(key);
        }
        self.table.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(_, v)| v)
    }

    /// Span of the key itself (not its value), if present.
    pub fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.table.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(k, _)| k.span())
    }

    /// Reads `key` as a `T`. A wrong type is reported (with `example` as the hint) and
    /// yields `None`, as does an absent key.
    pub fn get<T: DeserializeOwned>(
        &mut self,
        key: &'static str,
        example: &str,
        diags: &mut Diagnostics,
    ) -> Option<Spanned<T>> {
        let value = self.raw(key)?;
        let span = value.span();
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => Some(Spanned::new(span, v)),
            Err(e) => {
                let at = e.span().unwrap_or(span);
                diags.error(
                    at,
                    format!("`{key}` in {}: {}", self.kind, e.message().trim()),
                    Some(format!("write it like: {example}")),
                );
                None
            }
        }
    }

    /// Reads `key`; `default` when it is absent or wrong (the error is reported).
    pub fn get_or<T: DeserializeOwned>(
        &mut self,
        key: &'static str,
        example: &str,
        default: T,
        diags: &mut Diagnostics,
    ) -> T {
        self.get(key, example, diags).map_or(default, Spanned::into_inner)
    }

    /// Reads `key` as a duration that may not be zero; `default` when absent or wrong.
    pub fn duration(
        &mut self,
        key: &'static str,
        example: &str,
        default: std::time::Duration,
        diags: &mut Diagnostics,
    ) -> std::time::Duration {
        match self.get::<Duration>(key, example, diags) {
            Some(d) if d.get_ref().0.is_zero() => {
                diags.error(
                    d.span(),
                    format!("`{key}` cannot be zero"),
                    Some(format!("write it like: {example}")),
                );
                default
            }
            Some(d) => d.into_inner().0,
            None => default,
        }
    }

    /// Reads `key` as a [`Size`] of at most `max` bytes (`max_text`, as the error says it).
    pub fn size(
        &mut self,
        key: &'static str,
        example: &str,
        default: u64,
        (max, max_text): (u64, &str),
        diags: &mut Diagnostics,
    ) -> u64 {
        match self.get::<Size>(key, example, diags) {
            Some(v) if v.get_ref().0 > max => {
                diags.error(
                    v.span(),
                    format!("`{key}` is over its largest value, \"{max_text}\""),
                    Some(format!("write at most {key} = \"{max_text}\"")),
                );
                default
            }
            Some(v) => v.into_inner().0,
            None => default,
        }
    }

    /// Reads `key` as an array of tables (`[[server.location]]`) or a table of tables
    /// (`[upstream.NAME]`), returning a section for each with its name if it has one.
    pub fn tables(
        &mut self,
        key: &'static str,
        kind: &'static str,
        diags: &mut Diagnostics,
    ) -> Vec<(Option<Spanned<String>>, Section<'a, 'i>)> {
        let Some(value) = self.raw(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match value.get_ref() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::Table(t) => out.push((None, Section::new(kind, t, item.span()))),
                        other => diags.error(
                            item.span(),
                            format!("each `{key}` must be a table, found {}", other.type_str()),
                            Some(format!("write it as {kind} followed by its keys")),
                        ),
                    }
                }
            }
            DeValue::Table(named) => {
                for (name, item) in named.iter() {
                    let name = Spanned::new(name.span(), name.get_ref().to_string());
                    match item.get_ref() {
                        DeValue::Table(t) => out.push((Some(name), Section::new(kind, t, item.span()))),
                        other => diags.error(
                            item.span(),
                            format!("`{key}.{}` must be a table, found {}", name.get_ref(), other.type_str()),
                            Some(format!("write it as {kind} followed by its keys")),
                        ),
                    }
                }
            }
            other => diags.error(
                value.span(),
                format!("`{key}` must be a table, found {}", other.type_str()),
                Some(format!("write it as {kind} followed by its keys")),
            ),
        }
        out
    }

    /// Reports every key nobody asked for. Call once all owners have read their keys.
    pub fn finish(self, diags: &mut Diagnostics) {
        for (key, _) in self.table.iter() {
            let name = key.get_ref().as_ref();
            if self.asked.contains(&name) {
                continue;
            }
            let hint = nginx_directive_hint(name)
                .map(str::to_string)
                .or_else(|| {
                    did_you_mean(name, self.asked.iter().copied()).map(|k| format!("did you mean `{k}`?"))
                })
                .or_else(|| {
                    let mut known = self.asked.clone();
                    known.sort_unstable();
                    Some(format!("keys allowed here: {}", known.join(", ")))
                });
            diags.error(key.span(), format!("unknown key `{name}` in {}", self.kind), hint);
        }
    }
}

/// Hints for nginx directives an operator may carry over that Portico spells differently.
fn nginx_directive_hint(name: &str) -> Option<&'static str> {
    Some(match name {
        "include" => "nothing to include: the stock uwsgi_params are built in; use `uwsgi_param` to add or override one",
        "proxy_pass" | "fastcgi_pass" | "scgi_pass" => {
            "Portico forwards to uWSGI only: write `uwsgi_pass = \"unix:/path.sock\"` or the name of an [upstream.NAME]"
        }
        "location" => "locations are written as [[server.location]] tables with a `match` key",
        "return" | "rewrite" => "not supported yet; use try_files with a final \"=code\" or \"@name\"",
        _ => return None,
    })
}

/// The longest duration any key takes: 2^31 - 1 ms (about 24 days), nginx's limit for a
/// timeout. Deadlines are sums of the clock and these, so none can overflow.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_millis(i32::MAX as u64);

/// [`MAX_DURATION`] as the error messages write it.
const MAX_DURATION_TEXT: &str = "596h";

/// A duration written as `"10s"`, `"500ms"`, `"1m"`, `"2h"` or a bare number of seconds,
/// at most [`MAX_DURATION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        let (d, written) = match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration such as \"10s\", \"500ms\" or \"1m\"")
        })? {
            Raw::Seconds(s) => (std::time::Duration::from_secs(s), s.to_string()),
            Raw::Text(t) => match parse_unbounded_duration(&t) {
                Some(d) => (d, t),
                None => {
                    return Err(serde::de::Error::custom(format!(
                        "`{t}` is not a duration; use a number with ms, s, m or h, such as \"10s\""
                    )))
                }
            },
        };
        if d > MAX_DURATION {
            return Err(serde::de::Error::custom(format!(
                "`{written}` is longer than the longest duration, \"{MAX_DURATION_TEXT}\" (about 24 days, nginx's limit)"
            )));
        }
        Ok(Duration(d))
    }
}

/// A duration as the keys write it, at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    parse_unbounded_duration(text).filter(|d| *d <= MAX_DURATION)
}

fn parse_unbounded_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(ms))
}

/// A size in bytes written as `"1m"`, `"8k"`, `"512"` or a bare number, as nginx takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a size such as \"1m\" or \"8k\""))?
        {
            Raw::Bytes(b) => Ok(Size(b)),
            Raw::Text(t) => parse_size(&t).map(Size).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{t}` is not a size; use a number with an optional k, m or g, such as \"1m\""
                ))
            }),
        }
    }
}

pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, factor) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 1u64 << 10),
        'm' | 'M' => (&text[..text.len() - 1], 1 << 20),
        'g' | 'G' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    number.parse::<u64>().ok()?.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_nginx_units() {
        assert_eq!(parse_duration("10s"), Some(std::time::Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Some(std::time::Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(std::time::Duration::from_secs(120)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("5d"), None);
        assert_eq!(parse_duration("596h"), Some(std::time::Duration::from_secs(596 * 3600)));
        assert_eq!(parse_duration("597h"), None, "over nginx's limit");
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }

    #[test]
    fn sizes_take_nginx_units() {
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("8k"), Some(8192));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("1x"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let src = "aliass = \"/x\"\n";
        let table = DeTable::parse(src).unwrap();
        let mut diags = Diagnostics::new("t.toml", src);
        let mut s = Section::new("[[server.location]]", table.get_ref(), table.span());
        let _ = s.get::<String>("alias", "alias = \"/srv/static/\"", &mut diags);
        s.finish(&mut diags);
        let v = diags.into_vec();
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("unknown key `aliass`"));
        assert_eq!(v[0].hint.as_deref(), Some("did you mean `alias`?"));
    }

    #[test]
    fn wrong_types_point_at_the_value() {
        let src = "\nlisten = 80\n";
        let table = DeTable::parse(src).unwrap();
        let mut diags = Diagnostics::new("t.toml", src);
        let mut s = Section::new("[[server]]", table.get_ref(), table.span());
        assert!(s.get::<Vec<String>>("listen", "listen = [\"80\"]", &mut diags).is_none());
        let v = diags.into_vec();
        assert_eq!((v[0].line, v[0].column), (2, 10));
        assert!(v[0].hint.as_deref().unwrap().contains("listen = [\"80\"]"));
    }
}
