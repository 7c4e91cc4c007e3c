//! `portico import-nginx`: an nginx configuration (a whole `nginx.conf` or a site file as
//! in `sites-available/`) turned into Portico's, with its traps flagged. The steps: read
//! the files (`includes`, with `syntax` for each), convert level by level (`convert`),
//! look for the traps (`lints`), write TOML (`toml_out`), and validate the result as
//! `portico check --syntax-only` does.

pub mod convert;
pub mod includes;
pub mod lints;
pub mod syntax;
pub mod toml_out;

use std::fmt::Write as _;
use std::path::Path;

use crate::config::diag::{Diagnostic, Severity};

/// The outcome of an import.
pub struct Imported {
    /// The Portico configuration.
    pub toml: String,
    /// What to tell the user (findings, absorbed and not converted directives, check).
    pub report: String,
    /// Something was not converted, or the result does not pass validation.
    pub incomplete: bool,
}

/// Imports `path` (relative includes from `prefix` when given); `shown_out` names the
/// written file in the validation's messages. `Err`: the nginx input is malformed
/// (file:line:column and what), as nginx would refuse it.
pub fn import(path: &Path, prefix: Option<&Path>, shown_out: &str) -> Result<Imported, String> {
    let (files, tree) = includes::load(path, prefix).map_err(|e| e.to_string())?;
    let place =
        |o: convert::Origin| format!("{}:{}", files.get(o.file).map_or("?", |f| f.shown.as_str()), o.line);
    let converted =
        convert::convert(&tree).map_err(|e| format!("{}:{}: {}", place(e.origin), e.column, e.message))?;
    if converted.servers.is_empty() {
        return Err(format!("{}: no server block: nothing to convert (give a site file or an nginx.conf with http {{ server {{ ... }} }})", path.display()));
    }
    let findings = lints::lints(&converted, &tree);
    let toml = toml_out::write(&converted, &files);

    let mut report = String::new();
    let locations: usize = converted.servers.iter().map(|s| s.locations.len()).sum();
    let _ = writeln!(
        report,
        "converted {} ({} file(s) read): {} server(s), {} location(s), {} upstream(s)",
        path.display(),
        files.len(),
        converted.servers.len(),
        locations,
        converted.upstreams.len()
    );
    if !findings.is_empty() {
        let _ = writeln!(report, "\nfindings:");
        for f in &findings {
            let _ = writeln!(
                report,
                "  {}:\n      nginx: {}\n      Portico: {}",
                place(f.origin),
                f.nginx,
                f.portico
            );
        }
    }
    if !converted.absorbed.is_empty() {
        let _ = writeln!(report, "\nabsorbed (no meaning for Portico here):");
        for s in &converted.absorbed {
            let _ = writeln!(report, "  {}: {} — {}", place(s.origin), s.directive, s.why);
        }
    }
    if !converted.not_converted.is_empty() {
        let _ = writeln!(report);
        for s in &converted.not_converted {
            let _ = writeln!(report, "not converted: {} ({}) — {}", s.directive, place(s.origin), s.why);
        }
    }
    let check = validate(&toml, shown_out);
    let invalid = check.iter().any(|d| d.severity == Severity::Error);
    let _ = writeln!(report);
    if check.is_empty() {
        let _ = writeln!(report, "check: {shown_out} is a valid Portico configuration");
    } else {
        let _ = writeln!(
            report,
            "check: {shown_out} {}:",
            if invalid { "does not pass validation" } else { "is valid, with warnings" }
        );
        for d in &check {
            let _ = writeln!(report, "  {d}");
        }
    }
    Ok(Imported { toml, report, incomplete: invalid || !converted.not_converted.is_empty() })
}

/// `portico check --syntax-only`'s validation of the converted text.
fn validate(toml: &str, shown: &str) -> Vec<Diagnostic> {
    match crate::config_file::parse(toml, shown) {
        Ok((_, warnings)) => warnings,
        Err(diags) => diags,
    }
}
