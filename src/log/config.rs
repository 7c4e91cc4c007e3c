//! The log keys: `log_format` (top level, named formats), and `access_log`,
//! `access_log_format`, `error_log`, `error_log_level` (top level as defaults, or per
//! server).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::diag::Diagnostics;
use crate::config::section::Section;

use super::access::AccessFormat;
use super::writer::Target;
use super::Level;

/// Where a site's logs go and how they look.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `None` for `access_log = "off"` (or unset).
    pub access: Option<(Target, AccessFormat)>,
    pub error: Target,
    pub error_level: Level,
}

impl LogConfig {
    /// The defaults before any key: no access log, errors to stderr at `error`.
    pub fn builtin() -> LogConfig {
        LogConfig { access: None, error: Target::Stderr, error_level: Level::Error }
    }

    /// Reads the log keys of a section on top of `base` (the top-level settings).
    pub fn parse(
        s: &mut Section,
        base: &LogConfig,
        formats: &HashMap<String, AccessFormat>,
        diags: &mut Diagnostics,
    ) -> LogConfig {
        let format_name = s.get::<String>("access_log_format", "access_log_format = \"combined\"", diags);
        let format = match &format_name {
            Some(name) => match formats.get(name.get_ref()) {
                Some(f) => Some(f.clone()),
                None => {
                    let mut known: Vec<&str> = formats.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    diags.error(
                        name.span(),
                        format!("no log_format named `{}`", name.get_ref()),
                        Some(format!(
                            "define it at the top level as log_format.{} = \"...\", or use one of: {}",
                            name.get_ref(),
                            known.join(", ")
                        )),
                    );
                    None
                }
            },
            None => None,
        };
        let access = match s.get::<String>(
            "access_log",
            "access_log = \"/var/log/portico/access.log\"   # or \"off\"",
            diags,
        ) {
            Some(v) if v.get_ref() == "off" => None,
            Some(v) => path_target(v.get_ref(), v.span(), diags)
                .map(|t| (t, format.clone().unwrap_or_else(AccessFormat::combined))),
            None => base.access.clone().map(|(t, f)| (t, format.clone().unwrap_or(f))),
        };
        let error = match s.get::<String>(
            "error_log",
            "error_log = \"/var/log/portico/error.log\"   # or \"stderr\"",
            diags,
        ) {
            Some(v) if v.get_ref() == "stderr" => Target::Stderr,
            Some(v) => path_target(v.get_ref(), v.span(), diags).unwrap_or(Target::Stderr),
            None => base.error.clone(),
        };
        let error_level = s.get_or(
            "error_log_level",
            "error_log_level = \"error\"   # emerg alert crit error warn notice info debug",
            base.error_level,
            diags,
        );
        LogConfig { access, error, error_level }
    }

    /// Reads the top-level `log_format` table: `log_format.NAME = "..."`.
    pub fn parse_formats(s: &mut Section, diags: &mut Diagnostics) -> HashMap<String, AccessFormat> {
        let mut formats = HashMap::new();
        formats.insert("combined".to_string(), AccessFormat::combined());
        let Some(table) = s.get::<HashMap<String, String>>(
            "log_format",
            "log_format.main = '$remote_addr [$time_local] \"$request\" $status $request_time'",
            diags,
        ) else {
            return formats;
        };
        let span = table.span();
        for (name, text) in table.into_inner() {
            if name == "combined" {
                diags.error(
                    span.clone(),
                    "`combined` is predefined and cannot be redefined",
                    Some("give your format another name".into()),
                );
                continue;
            }
            match AccessFormat::parse(&text) {
                Ok(f) => {
                    formats.insert(name, f);
                }
                Err(e) => {
                    diags.error(span.clone(), format!("log_format.{name}: {}", e.message), Some(e.hint))
                }
            }
        }
        formats
    }
}

fn path_target(path: &str, span: std::ops::Range<usize>, diags: &mut Diagnostics) -> Option<Target> {
    if path.is_empty() {
        diags.error(span, "empty log path", Some("write a path, or \"off\" / \"stderr\"".into()));
        return None;
    }
    Some(Target::File(PathBuf::from(diags.absolute(path))))
}
