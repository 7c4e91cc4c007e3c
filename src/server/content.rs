//! A location's content step: its `return`, else try_files, then the file (root/alias,
//! index, ranges...) — or `None` for a location that forwards to uWSGI. Also the
//! request's view for the static-file code, and a `return`'s answer as an outcome.

use std::borrow::Cow;

use crate::config_file::{Location, Site};
use crate::log::Note;
use crate::reply::{Body, Head, Reply};
use crate::return_directive::{Base, Return, Returned};
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
    if let Some(ret) = &loc.ret {
        return Some(returned(ret, site, info));
    }
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
        scheme: info.scheme(),
        host: &info.host,
        port: info.local.map(|l| l.port()),
    }
}

/// A `return`'s answer to the request, as a content step's outcome (444 as a reply with
/// that status and nothing to send: `respond` closes the connection for it).
pub(super) fn returned(ret: &Return, site: &Site, info: &RequestInfo) -> Outcome {
    let vars = Vars::of_request(info, &site.name);
    let base = Base { scheme: info.scheme(), host: &info.host, port: info.local.map(|l| l.port()) };
    match ret.answer(&vars, &base) {
        Returned::Reply(r) => Outcome::Reply(r),
        Returned::Status(s) => Outcome::Status(s),
        Returned::Close => Outcome::Reply(Reply { head: Head::new(ret.status), body: Body::Empty }),
    }
}
