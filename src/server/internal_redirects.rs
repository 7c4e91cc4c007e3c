//! nginx's internal redirects as a state machine: find the location for the URI (or take
//! the named one), run its content step, and follow what it says — an index or
//! try_files URI starts the search again, `@name` jumps to a named location, an error
//! status goes to the `error_page` that covers it (once, keeping or replacing the
//! status, and turning the method into GET as nginx does). Ten redirects end in a 500, as
//! nginx's cycle guard. Pure: the content step is passed in, so files and uWSGI stay out.

use std::borrow::Cow;

use crate::config_file::{Location, Site};
use crate::error_pages::ErrorTarget;
use crate::http1::request_head::Method;
use crate::log::{Level, Note};
use crate::reply::Reply;
use crate::routing::locations::{Captures, LocationId};
use crate::static_files::serve::Outcome;

use super::request_state::RequestInfo;

/// nginx stops after this many internal redirects (index, try_files, error_page).
const MAX_INTERNAL_REDIRECTS: usize = 10;

/// Where routing ended (a value that lives for one step: boxing the reply would cost an
/// allocation per request).
#[allow(clippy::large_enum_variant)]
pub(super) enum Routed {
    /// Send this reply, made in this location (none: no location matched, or the
    /// request was refused before routing).
    Reply(Reply, Option<LocationId>),
    /// Forward to the location's uWSGI.
    Forward(LocationId),
}

/// A location's content step: the outcome of serving the request there, or `None` for
/// "forward to uWSGI".
pub(super) type Content<'r> =
    fn(&'r Site, &'r Location, &mut RequestInfo<'r>, &mut Vec<Note>) -> Option<Outcome>;

/// Where the next round looks (as `Routed`, not boxed).
#[allow(clippy::large_enum_variant)]
enum Next {
    /// Search the locations for the current URI.
    Uri,
    /// The named location.
    Named(LocationId),
    /// The server's `return` answered.
    Returned(Outcome),
}

/// Routes the request through `site`'s locations, following internal redirects.
pub(super) fn route<'r>(
    site: &'r Site,
    info: &mut RequestInfo<'r>,
    notes: &mut Vec<Note>,
    content: Content<'r>,
) -> Routed {
    let mut next = Next::Uri;
    let mut forced_status: Option<u16> = None;
    let mut error_page_used = false;
    // a server-level `return` answers before any location is looked up
    let mut server_return = site.ret.as_ref();
    for _ in 0..MAX_INTERNAL_REDIRECTS {
        if let Some(ret) = server_return.take() {
            next = Next::Returned(super::content::returned(ret, site, info));
        }
        let (loc_id, captures, returned) = match std::mem::replace(&mut next, Next::Uri) {
            Next::Uri => {
                // captures borrow the URI when it is the request's own bytes
                let subject = match &info.uri {
                    Cow::Borrowed(uri) => Cow::Borrowed(*uri),
                    Cow::Owned(uri) => Cow::Owned(uri.clone()),
                };
                match site.index.find_in(subject) {
                    Some(found) => (Some(found.location), found.captures, None),
                    None => (None, Captures::default(), None),
                }
            }
            Next::Named(id) => (Some(id), Captures::default(), None),
            Next::Returned(outcome) => (None, Captures::default(), Some(outcome)),
        };
        info.captures = captures;
        let outcome = match (loc_id, returned) {
            (_, Some(outcome)) => outcome,
            (Some(id), None) => {
                let loc = &site.locations[id];
                info.document_root = loc.files.mapping.document_root().unwrap_or(b"");
                match content(site, loc, info, notes) {
                    Some(o) => o,
                    None => return Routed::Forward(id),
                }
            }
            (None, None) => Outcome::Status(404),
        };
        match outcome {
            Outcome::Reply(mut r) => {
                if let Some(s) = forced_status.filter(|_| r.head.status == 200) {
                    r.head.status = s;
                }
                return Routed::Reply(r, loc_id);
            }
            Outcome::Redirect(uri) => {
                info.uri = Cow::Owned(uri);
                next = Next::Uri;
            }
            Outcome::Named(name) => match site.index.named(&name) {
                Some(id) => next = Next::Named(id),
                None => return Routed::Reply(Reply::error(500), loc_id),
            },
            Outcome::Status(code) => {
                let pages = loc_id.map_or(&site.error_pages, |id| &site.locations[id].error_pages);
                match pages.get(code).filter(|_| !error_page_used) {
                    Some(ErrorTarget::Uri { uri, status }) => {
                        error_page_used = true;
                        forced_status = Some(status.unwrap_or(code));
                        if info.method != Method::Head {
                            info.method = Method::Get;
                            info.method_name = b"GET";
                        }
                        info.uri = Cow::Owned(uri.clone());
                        next = Next::Uri;
                    }
                    Some(ErrorTarget::Named { name, status }) => {
                        error_page_used = true;
                        forced_status = *status;
                        match site.index.named(name) {
                            Some(id) => next = Next::Named(id),
                            None => return Routed::Reply(Reply::error(code), loc_id),
                        }
                    }
                    None => return Routed::Reply(Reply::error(code), loc_id),
                }
            }
        }
    }
    notes.push(Note::new(
        Level::Error,
        format!(
            "rewrite or internal redirection cycle while internally redirecting to \"{}\"",
            String::from_utf8_lossy(&info.uri)
        ),
    ));
    Routed::Reply(Reply::error(500), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::request_head::{parse_head, HeadLimits, Request, RequestHead};
    use crate::reply::{Body, Head};

    /// Locations for every kind of redirect; the content steps below say what each does.
    const CONFIG: &str = r#"
[[server]]
listen = ["127.0.0.1:8080"]
root = "/srv"
error_page = { "404" = "/404.html", "503" = "@down" }
[[server.location]]
match = "/"
[[server.location]]
match = "/app"
error_page = { "502" = "=503 /maintenance.html" }
[[server.location]]
match = "/broken"
error_page = { "404" = "/broken/page" }
[[server.location]]
match = "@down"
"#;

    fn site() -> Site {
        let (mut config, _) = crate::config_file::parse(CONFIG, "t.toml").unwrap();
        config.sites.remove(0)
    }

    fn head(raw: &[u8]) -> RequestHead {
        match parse_head(raw, &HeadLimits::default(), Vec::new()) {
            Ok(Ok(head)) => head,
            _ => panic!("a whole head"),
        }
    }

    fn info<'r>(req: Request<'r>) -> RequestInfo<'r> {
        let mut info = RequestInfo::new(req, 1, 1, std::time::Instant::now(), (None, None));
        info.request_uri = Cow::Borrowed(req.target());
        info.uri = Cow::Borrowed(req.target());
        info.host = Cow::Borrowed("localhost");
        info
    }

    fn ok() -> Option<Outcome> {
        Some(Outcome::Reply(Reply { head: Head::new(200), body: Body::Empty }))
    }

    /// What each URI does when served: the redirects the tests follow.
    fn content<'r>(
        _: &'r Site,
        loc: &'r Location,
        info: &mut RequestInfo<'r>,
        _: &mut Vec<Note>,
    ) -> Option<Outcome> {
        if matches!(loc.matcher, crate::routing::locations::Matcher::Named(_)) {
            return ok();
        }
        match &info.uri[..] {
            b"/dir/" => Some(Outcome::Redirect(b"/dir/index.html".to_vec())),
            b"/dir/index.html" | b"/404.html" | b"/maintenance.html" => ok(),
            b"/app/down" => Some(Outcome::Status(502)),
            b"/app/named" => Some(Outcome::Named("down".into())),
            b"/app/busy" | b"/busy" => Some(Outcome::Status(503)),
            b"/app" => None,
            b"/loop" => Some(Outcome::Redirect(b"/loop".to_vec())),
            _ => Some(Outcome::Status(404)),
        }
    }

    /// Routes `raw` and gives the status answered (or `None`: forwarded) with the final
    /// URI, method and notes.
    fn routed(raw: &[u8]) -> (Option<u16>, String, Method, Vec<Note>) {
        let site = site();
        let head = head(raw);
        let mut info = info(Request::new(&head, raw));
        let mut notes = Vec::new();
        let status = match route(&site, &mut info, &mut notes, content) {
            Routed::Reply(r, _) => Some(r.head.status),
            Routed::Forward(_) => None,
        };
        (status, String::from_utf8_lossy(&info.uri).into_owned(), info.method, notes)
    }

    #[test]
    fn an_index_redirect_starts_the_search_again() {
        let (status, uri, ..) = routed(b"GET /dir/ HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((status, uri.as_str()), (Some(200), "/dir/index.html"));
    }

    #[test]
    fn a_location_without_content_forwards() {
        assert_eq!(routed(b"GET /app HTTP/1.1\r\nHost: a\r\n\r\n").0, None);
    }

    #[test]
    fn error_page_keeps_the_status_and_makes_the_method_get() {
        let (status, uri, method, _) =
            routed(b"POST /nothing HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!((status, uri.as_str(), method), (Some(404), "/404.html", Method::Get));
        let (.., method, _) = routed(b"HEAD /nothing HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(method, Method::Head, "HEAD stays HEAD");
    }

    #[test]
    fn error_page_can_replace_the_status() {
        let (status, uri, ..) = routed(b"GET /app/down HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((status, uri.as_str()), (Some(503), "/maintenance.html"));
    }

    #[test]
    fn named_locations_from_content_and_from_error_page() {
        assert_eq!(routed(b"GET /app/named HTTP/1.1\r\nHost: a\r\n\r\n").0, Some(200));
        // the location's own error_page replaces the server's, which had the 503
        assert_eq!(routed(b"GET /app/busy HTTP/1.1\r\nHost: a\r\n\r\n").0, Some(503));
        assert_eq!(routed(b"GET /busy HTTP/1.1\r\nHost: a\r\n\r\n").0, Some(200));
    }

    #[test]
    fn an_error_page_is_used_once() {
        // the error page is missing too: its 404 is answered as it is
        let (status, uri, ..) = routed(b"GET /broken/x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((status, uri.as_str()), (Some(404), "/broken/page"));
    }

    #[test]
    fn a_redirect_cycle_ends_in_500_with_a_note() {
        let (status, _, _, notes) = routed(b"GET /loop HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(status, Some(500));
        assert!(notes[0].message.contains("internal redirection cycle"), "{:?}", notes[0].message);
    }
}
