//! Static files over real TCP: location choice, alias/root mapping and its traps, index,
//! types, validators, conditionals, ranges, methods, hidden files, symlink policies.

mod common;

use common::{Portico, TempDir};

/// The seed's site, with a root, against a fixture tree in the scratch dir.
const SITE: &str = r#"
[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["localhost"]
root = "{dir}/html"
access_log = "{dir}/access.log"
error_log = "{dir}/error.log"

[[server.location]]
match = "/"
try_files = ["$uri", "$uri/", "=404"]

[[server.location]]
match = "/static"
alias = "{dir}/static/"

[[server.location]]
match = "~ ^/_themes/([^/]+)/(.*)$"
alias = "{dir}/themes/$1/static/$2"

[[server.location]]
match = "/robots.txt"
alias = "{dir}/static/robots.txt"

[[server.location]]
match = "= /exact"
alias = "{dir}/html/a.txt"

[[server.location]]
match = "^~ /caret/"
alias = "{dir}/html/"

[[server.location]]
match = "/regex/"
alias = "{dir}/html/"

[[server.location]]
match = "~* ^/(regex|caret)/.*\\.TXT$"
alias = "{dir}/static/robots.txt"

[[server.location]]
match = "~ ^/t(.*)$"
alias = "{dir}/themes/$1/static/css/theme.css"

[[server.location]]
match = "/named-fallback"
try_files = ["/nothing-here", "@named"]

[[server.location]]
match = "@named"
alias = "{dir}/html/a.txt"
"#;

fn fixture() -> TempDir {
    let d = TempDir::new("static");
    d.write("html/index.html", "<h1>home</h1>\n");
    d.write("html/a.txt", "plain text\n");
    d.write("html/sub/index.html", "sub index\n");
    d.write("html/empty/.keep", "");
    d.write("html/app.js", "console.log(1);\n");
    d.write("html/font.woff2", [0u8; 16]);
    d.write("html/img.png", [0x89, b'P', b'N', b'G']);
    d.write("html/noext", "x");
    d.write("html/.env", "SECRET=1\n");
    d.write("html/.well-known/acme", "token\n");
    d.write("html/digits.bin", (0..=9u8).map(|i| b'0' + i).collect::<Vec<u8>>());
    d.write("static/css/site.css", "body{}\n");
    d.write("static/robots.txt", "User-agent: *\n");
    d.write("secret.txt", "TOP SECRET beside static\n");
    d.write("themes/aurora/static/css/theme.css", "h1{}\n");
    d
}

fn start() -> Portico {
    Portico::start_in(fixture(), SITE, &[])
}

#[test]
fn seed_locations_serve_their_files() {
    let p = start();
    let r = p.get("/static/css/site.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "body{}\n");
    assert_eq!(r.header("content-type"), Some("text/css"));

    let r = p.get("/_themes/aurora/css/theme.css");
    assert_eq!((r.status, r.text().as_str()), (200, "h1{}\n"));

    let r = p.get("/robots.txt");
    assert_eq!((r.status, r.header("content-type")), (200, Some("text/plain")));

    let r = p.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>home</h1>\n"));
}

#[test]
fn location_precedence_as_nginx() {
    let p = start();
    // exact location
    assert_eq!(p.get("/exact").text(), "plain text\n");
    // ^~ stops the regex search: "~* ^/(regex|caret)/.*\.TXT$" would answer with robots.txt
    assert_eq!(p.get("/caret/a.txt").text(), "plain text\n");
    // a plain prefix does not stop it: the case-insensitive regex wins
    assert_eq!(p.get("/regex/a.txt").text(), "User-agent: *\n");
    assert_eq!(p.get("/regex/index.html").text(), "<h1>home</h1>\n");
    // no location at all would be a 404; "/" catches everything here
    assert_eq!(p.get("/missing").status, 404);
}

#[test]
fn the_seed_alias_trap_does_not_leak() {
    let p = start();
    // nginx 1.22 serves {dir}/static/../secret.txt for this request
    let r = p.get("/static../secret.txt");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("TOP SECRET"));
    let log = p.wait_for_log(&p.dir.path().join("error.log"), "maps outside");
    assert!(log.contains("\"/static../secret.txt\" refused"), "{log}");
    // literal replacement that stays inside is still nginx's behaviour
    assert_eq!(p.get("/staticcss/site.css").status, 200);
}

#[test]
fn dot_dot_in_a_regex_capture_does_not_escape() {
    let p = start();
    // `~ ^/t(.*)$` with alias `{dir}/themes/$1/static/css/theme.css`: $1 = ".."
    let r = p.get("/t..");
    assert_eq!(r.status, 404);
    // while a normal capture maps as written
    assert_eq!(p.get("/taurora").text(), "h1{}\n");
}

#[test]
fn paths_are_decoded_and_normalised_before_matching() {
    let p = start();
    assert_eq!(p.get("/static/css/%73ite.css").status, 200);
    assert_eq!(p.get("/x/../static//css/./site.css").status, 200);
    assert_eq!(p.get("/static/%2e%2e/html/a.txt").status, 404);
    // above the root: 400, as nginx
    let r = p.get("/../secret.txt");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(p.get("/%2e%2e/secret.txt").status, 400);
    assert_eq!(p.get("/bad%zzescape").status, 400);
    assert_eq!(p.get("/nul%00byte").status, 400);
}

#[test]
fn response_headers_as_nginx() {
    let p = start();
    let r = p.get("/a.txt");
    let r2 = p.get("/caret/a.txt");
    assert_eq!(r2.status, 200);
    let meta = std::fs::metadata(p.dir.path().join("html/a.txt")).unwrap();
    let mtime = meta.modified().unwrap();
    let secs = mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(r2.header("etag"), Some(format!("\"{secs:x}-{:x}\"", meta.len()).as_str()));
    assert_eq!(r2.header("last-modified"), Some(httpdate::fmt_http_date(mtime).as_str()));
    assert_eq!(r2.header("content-length"), Some("11"));
    assert_eq!(r2.header("accept-ranges"), Some("bytes"));
    assert_eq!(r2.header("connection"), Some("keep-alive"));
    assert_eq!(r2.header("server"), Some("portico"));
    assert!(r2.header("date").is_some());
    assert_eq!(r.status, 200);
}

/// A file dated before 1970 (`touch -d 1969-06-01`) is served: an HTTP date cannot say
/// when it was modified, so `Last-Modified` is left out; the ETag still comes from the
/// mtime. (Formatting that date panicked the worker before.)
#[test]
fn a_file_from_before_1970_is_served_without_last_modified() {
    let p = start();
    let path = p.dir.path().join("html/a.txt");
    let old = nix::sys::time::TimeSpec::new(-18_000_000, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &path,
        &old,
        &old,
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .unwrap();
    for _ in 0..2 {
        let r = p.get("/a.txt");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len() as u64, std::fs::metadata(&path).unwrap().len());
        assert_eq!(r.header("last-modified"), None, "{}", r.head);
        assert!(r.header("etag").is_some());
    }
    // and the worker goes on serving
    assert_eq!(p.get("/index.html").status, 200);
}

#[test]
fn content_types_by_extension() {
    let p = start();
    for (path, ctype) in [
        ("/index.html", "text/html"),
        ("/app.js", "application/javascript"),
        ("/font.woff2", "font/woff2"),
        ("/img.png", "image/png"),
        ("/noext", "application/octet-stream"),
        ("/static/css/site.css", "text/css"),
    ] {
        assert_eq!(p.get(path).header("content-type"), Some(ctype), "{path}");
    }
}

#[test]
fn conditional_requests() {
    let p = start();
    let r = p.get("/static/css/site.css");
    let etag = r.header("etag").unwrap().to_string();
    let lm = r.header("last-modified").unwrap().to_string();

    let inm =
        p.request(&format!("GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n"));
    assert_eq!(inm.status, 304);
    assert!(inm.body.is_empty());
    assert_eq!(inm.header("etag"), Some(etag.as_str()));
    assert_eq!(inm.header("content-length"), None);

    let ims = p
        .request(&format!("GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {lm}\r\n\r\n"));
    assert_eq!(ims.status, 304);

    let stale = p.request("GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"nope\"\r\n\r\n");
    assert_eq!(stale.status, 200);
    assert_eq!(stale.text(), "body{}\n");

    let older = p.request("GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n\r\n");
    assert_eq!(older.status, 200);

    let if_match = p.request("GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nIf-Match: \"nope\"\r\n\r\n");
    assert_eq!(if_match.status, 412);
}

#[test]
fn range_requests() {
    let p = start();
    let get =
        |range: &str| p.request(&format!("GET /digits.bin HTTP/1.1\r\nHost: x\r\nRange: {range}\r\n\r\n"));
    let r = get("bytes=2-4");
    assert_eq!((r.status, r.text().as_str()), (206, "234"));
    assert_eq!(r.header("content-range"), Some("bytes 2-4/10"));
    assert_eq!(r.header("content-length"), Some("3"));

    let r = get("bytes=7-");
    assert_eq!((r.status, r.text().as_str()), (206, "789"));
    let r = get("bytes=-2");
    assert_eq!((r.status, r.text().as_str()), (206, "89"));
    assert_eq!(r.header("content-range"), Some("bytes 8-9/10"));

    let r = get("bytes=10-");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */10"));

    let r = get("bytes=0-0,5-5");
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap().to_string();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    let body = r.text();
    assert!(body.contains(&format!("--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-0/10\r\n\r\n0\r\n")), "{body}");
    assert!(body.contains("Content-Range: bytes 5-5/10\r\n\r\n5\r\n"), "{body}");
    assert!(body.ends_with(&format!("--{boundary}--\r\n")));

    // If-Range with the current ETag honours the range, with another one sends it all
    let etag = p.get("/digits.bin").header("etag").unwrap().to_string();
    let r = p.request(&format!(
        "GET /digits.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nIf-Range: {etag}\r\n\r\n"
    ));
    assert_eq!((r.status, r.text().as_str()), (206, "01"));
    let r = p.request("GET /digits.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nIf-Range: \"old\"\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
}

/// `Range: bytes=0-0,2-2,...`: `n` one-byte ranges, none overlapping.
fn one_byte_ranges(n: usize) -> String {
    let parts: Vec<String> = (0..n).map(|i| format!("{0}-{0}", i * 2)).collect();
    format!("bytes={}", parts.join(","))
}

#[test]
fn more_ranges_than_max_ranges_get_the_whole_file() {
    let d = fixture();
    d.write("html/hundred.bin", [b'x'; 100]);
    let p = Portico::start_in(d, SITE, &[]);
    let get =
        |range: &str| p.request(&format!("GET /hundred.bin HTTP/1.1\r\nHost: x\r\nRange: {range}\r\n\r\n"));
    let r = get(&one_byte_ranges(16));
    assert_eq!(r.status, 206, "16 ranges are allowed by default");
    assert_eq!(r.text().matches("Content-Range: bytes").count(), 16);
    let r = get(&one_byte_ranges(17));
    assert_eq!((r.status, r.body.len()), (200, 100), "17 ranges: the whole file");
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
}

#[test]
fn max_ranges_is_configurable_and_zero_turns_ranges_off() {
    let d = fixture();
    d.write("html/hundred.bin", [b'x'; 100]);
    let site = SITE.replace("root = \"{dir}/html\"", "root = \"{dir}/html\"\nmax_ranges = 0");
    let p = Portico::start_in(d, &site, &[]);
    let r = p.request("GET /hundred.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (200, 100));
    assert_eq!(r.header("accept-ranges"), None, "ranges are not offered");

    let d = fixture();
    d.write("html/hundred.bin", [b'x'; 100]);
    let site = SITE.replace("root = \"{dir}/html\"", "root = \"{dir}/html\"\nmax_ranges = 2");
    let p = Portico::start_in(d, &site, &[]);
    let get =
        |range: &str| p.request(&format!("GET /hundred.bin HTTP/1.1\r\nHost: x\r\nRange: {range}\r\n\r\n"));
    assert_eq!(get(&one_byte_ranges(2)).status, 206);
    assert_eq!(get(&one_byte_ranges(3)).status, 200);
}

#[test]
fn head_sends_headers_only() {
    let p = start();
    let mut c = p.connect();
    c.send(b"HEAD /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /caret/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = c.read_response(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("11"));
    // the next response starts right after the head: no body bytes were sent
    let next = c.read_response(false);
    assert_eq!(next.text(), "plain text\n");
}

#[test]
fn directories_redirect_then_serve_index_or_403() {
    let p = start();
    let r = p.get("/sub");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some(format!("http://localhost:{}/sub/", p.addr.port()).as_str()));
    let r = p.get("/sub?x=1");
    assert_eq!(r.header("location"), Some(format!("http://localhost:{}/sub/?x=1", p.addr.port()).as_str()));
    assert_eq!(p.get("/sub/").text(), "sub index\n");
    let r = p.get("/empty/");
    assert_eq!(r.status, 403);
    let log = p.wait_for_log(&p.dir.path().join("error.log"), "directory index of");
    assert!(log.contains("/html/empty/\" is forbidden"), "{log}");
    assert_eq!(p.get("/static").status, 301);
    assert_eq!(p.get("/static/css/").status, 403);
}

#[test]
fn methods_other_than_get_and_head() {
    let p = start();
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = p.request(&format!("{method} /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    // a POST body is drained, so the connection stays usable
    let mut c = p.connect();
    c.send(b"POST /caret/a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /caret/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).status, 405);
    assert_eq!(c.read_response(false).status, 200);
}

#[test]
fn hidden_files_are_404_except_well_known() {
    let p = start();
    let r = p.get("/.env");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("SECRET"));
    assert_eq!(p.get("/.well-known/acme").text(), "token\n");
}

#[test]
fn hidden_files_allow() {
    let p = Portico::start_in(
        fixture(),
        &SITE.replace("root = \"{dir}/html\"", "root = \"{dir}/html\"\nhidden_files = \"allow\""),
        &[],
    );
    assert_eq!(p.get("/.env").text(), "SECRET=1\n");
}

#[test]
fn try_files_fallbacks() {
    let p = start();
    // "=404" fallback
    assert_eq!(p.get("/nope").status, 404);
    // "@named" fallback
    assert_eq!(p.get("/named-fallback").text(), "plain text\n");
}

#[test]
fn missing_files_are_logged_like_nginx() {
    let p = start();
    assert_eq!(p.get("/static/missing.css").status, 404);
    let log = p.wait_for_log(&p.dir.path().join("error.log"), "missing.css");
    let line = log.lines().find(|l| l.contains("missing.css")).unwrap();
    assert!(line.contains("[error]"), "{line}");
    assert!(line.contains("open() \""), "{line}");
    assert!(line.contains("/static/missing.css\" failed (2: No such file or directory)"), "{line}");
    assert!(line.contains(", client: 127.0.0.1, server: localhost, request: \"GET /static/missing.css HTTP/1.1\", host: \"localhost\""), "{line}");
}

#[test]
fn access_log_in_combined_format() {
    let p = start();
    p.request(
        "GET /a.txt?q=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: test-agent/1\r\nReferer: http://ref/\r\n\r\n",
    );
    let log = p.wait_for_log(&p.dir.path().join("access.log"), "test-agent");
    let line = log.lines().find(|l| l.contains("test-agent")).unwrap();
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with("] \"GET /a.txt?q=1 HTTP/1.1\" 200 11 \"http://ref/\" \"test-agent/1\""),
        "{line}"
    );
}

fn symlink_fixture() -> TempDir {
    let d = fixture();
    std::os::unix::fs::symlink("css/site.css", d.path().join("static/inside-link.css")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", d.path().join("static/outside-link.txt")).unwrap();
    std::os::unix::fs::symlink(
        d.path().join("static/css/site.css"),
        d.path().join("static/absolute-link.css"),
    )
    .unwrap();
    d
}

#[test]
fn symlinks_inside_is_the_default() {
    let p = Portico::start_in(symlink_fixture(), SITE, &[]);
    assert_eq!(p.get("/static/inside-link.css").text(), "body{}\n");
    let r = p.get("/static/outside-link.txt");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("TOP SECRET"));
    // an absolute symlink is refused even when it points back inside
    assert_eq!(p.get("/static/absolute-link.css").status, 404);
    let log = p.wait_for_log(&p.dir.path().join("error.log"), "outside-link");
    assert!(log.contains("resolves outside"), "{log}");
    assert!(log.contains("symlinks = \"follow\""), "{log}");
}

#[test]
fn symlinks_follow() {
    let site = SITE.replace("root = \"{dir}/html\"", "root = \"{dir}/html\"\nsymlinks = \"follow\"");
    let p = Portico::start_in(symlink_fixture(), &site, &[]);
    assert_eq!(p.get("/static/outside-link.txt").text(), "TOP SECRET beside static\n");
    assert_eq!(p.get("/static/inside-link.css").status, 200);
}

#[test]
fn symlinks_deny() {
    let site = SITE.replace("root = \"{dir}/html\"", "root = \"{dir}/html\"\nsymlinks = \"deny\"");
    let p = Portico::start_in(symlink_fixture(), &site, &[]);
    assert_eq!(p.get("/static/inside-link.css").status, 403);
    assert_eq!(p.get("/static/outside-link.txt").status, 403);
    assert_eq!(p.get("/static/css/site.css").status, 200);
}

/// FlaskBB's git layout: the theme's `static` is a symlink to `../../static`, outside
/// `themes/`; plus links reached through the request's components that leave their tree.
fn theme_link_fixture() -> TempDir {
    let d = TempDir::new("themes");
    d.write("static/css/site.css", "body{}\n");
    d.write("secret.txt", "TOP SECRET\n");
    d.write("elsewhere/css/site.css", "not a theme\n");
    std::fs::create_dir_all(d.path().join("themes/aurora")).unwrap();
    let link = |to: &str, at: &str| std::os::unix::fs::symlink(to, d.path().join(at)).unwrap();
    link("../../static", "themes/aurora/static");
    // a theme name (from the request) that is a link out of themes/
    link("../elsewhere", "themes/evil");
    // a file name (from the request) that is a link out of the theme's static directory
    link("../secret.txt", "static/leak.txt");
    d
}

#[test]
fn a_symlink_the_configuration_names_is_followed_and_the_requests_are_not() {
    let d = theme_link_fixture();
    d.write("html/index.html", "home\n");
    let p = Portico::start_in(d, SITE, &[]);
    let r = p.get("/_themes/aurora/css/site.css");
    assert_eq!((r.status, r.text().as_str()), (200, "body{}\n"), "the theme's static link is the operator's");
    // the request chose `evil`: it must stay beneath themes/
    assert_eq!(p.get("/_themes/evil/css/site.css").status, 404);
    // the request chose `leak.txt`: it must stay beneath the theme's static directory
    let r = p.get("/_themes/aurora/leak.txt");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("TOP SECRET"));
    let log = p.wait_for_log(&p.dir.path().join("error.log"), "leak.txt");
    assert!(log.contains("resolves outside"), "{log}");
}

#[test]
fn error_page_to_a_uri_keeps_the_status() {
    let d = fixture();
    d.write("html/404.html", "custom not found\n");
    let site = SITE
        .replace("root = \"{dir}/html\"", "root = \"{dir}/html\"\nerror_page = { \"404\" = \"/404.html\" }");
    let p = Portico::start_in(d, &site, &[]);
    let r = p.get("/nope");
    assert_eq!((r.status, r.text().as_str()), (404, "custom not found\n"));
}

#[test]
fn server_level_error_page_applies_where_no_location_matches() {
    let d = TempDir::new("errpage");
    d.write("pages/404.html", "nothing here\n");
    let config = r#"
[[server]]
listen = ["127.0.0.1:{port}"]
error_page = { "404" = "/errors/404.html" }

[[server.location]]
match = "/errors/"
alias = "{dir}/pages/"
"#;
    let p = Portico::start_in(d, config, &[]);
    let r = p.get("/no/location/for/this");
    assert_eq!((r.status, r.text().as_str()), (404, "nothing here\n"));
}
