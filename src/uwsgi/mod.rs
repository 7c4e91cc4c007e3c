//! Forwarding to uWSGI over the binary uwsgi protocol. Owns `uwsgi_pass`.

pub mod codec;

use crate::config::diag::Diagnostics;
use crate::config::section::Section;

/// A location's `uwsgi_pass`.
#[derive(Clone, Debug)]
pub struct UwsgiLocation {
    /// `unix:/path.sock`, `host:port`, or the name of an `[upstream.NAME]`.
    pub pass: String,
}

impl UwsgiLocation {
    pub fn parse(s: &mut Section, diags: &mut Diagnostics) -> Option<UwsgiLocation> {
        let pass = s.get::<String>("uwsgi_pass", "uwsgi_pass = \"unix:/tmp/flaskbb.sock\"", diags)?;
        Some(UwsgiLocation {
            pass: pass.into_inner(),
        })
    }
}
