//! A location's content step: try_files, then the file (root/alias, index, ranges...) —
//! or `None` for a location that forwards to uWSGI. Also the request's view for the
//! static-file code.

use std::borrow::Cow;

use crate::config_file::{Location, Site};
use crate::log::Note;
use crate::static_files::serve::{serve, try_files, FileRequest, Outcome};

use super::request_state::RequestInfo;
use super::request_vars::Vars;

/// Runs the location's content step for the request.
pub(super) fn run_location(
    site: &Site,
    loc: &Location,
    info: &mut RequestInfo,
    notes: &mut Vec<Note>,
) -> Option<Outcome> {
    let tried = {
        let vars = Vars::of_request(info, &site.name);
        try_files(&loc.files, &file_request(info, &vars))
    };
    match tried {
        Ok(Some(uri)) => info.uri = Cow::Owned(uri),
        Ok(None) => {}
        Err(fallback) => return Some(*fallback),
    }
    if loc.uwsgi.is_some() {
        return None;
    }
    let vars = Vars::of_request(info, &site.name);
    Some(serve(&loc.files, &loc.compression, &file_request(info, &vars), notes))
}

pub(super) fn file_request<'a>(info: &'a RequestInfo, vars: &'a Vars<'a, 'a>) -> FileRequest<'a> {
    FileRequest {
        method: info.method,
        uri: &info.uri,
        args: info.query,
        request: info.req,
        vars,
        host: &info.host,
        port: info.local.map(|l| l.port()),
    }
}
