//! `portico import-nginx` on real files: the seed's FlaskBB site converts to a
//! configuration that `check` accepts and that routes 30+ URLs exactly as
//! `conf/flaskbb.toml` does (compared through `portico explain`, the server's own routing
//! steps); each file of the corpus in tests/nginx/ converts to what its `.expected` says
//! (the TOML, the findings, what was absorbed and not converted, the exit status);
//! malformed nginx input is refused with file:line:column; the symlink trap is found on a
//! real tree.
//!
//! `PORTICO_BLESS=1 cargo nextest run --test import_nginx` rewrites the `.expected` files
//! (read the diff before committing it).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{portico_bin, TempDir};

fn import(args: &[&str]) -> Output {
    Command::new(portico_bin()).arg("import-nginx").args(args).output().expect("run portico")
}

fn explain(config: &Path, url: &str) -> String {
    let out =
        Command::new(portico_bin()).args(["explain", "-c"]).arg(config).arg(url).output().expect("explain");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_seed_site_converts_and_routes_as_the_shipped_configuration() {
    let d = TempDir::new("import-seed");
    let out = d.path().join("seed.toml");
    let r = import(&["tests/nginx/seed-flaskbb", "-o", out.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{report}");
    // the seed's two traps and its /tmp socket are named with their lines
    assert!(report.contains("tests/nginx/seed-flaskbb:14:") && report.contains("/static../x"), "{report}");
    assert!(
        report.contains("tests/nginx/seed-flaskbb:9:") && report.contains("compiled-in html"),
        "{report}"
    );
    assert!(report.contains("tests/nginx/seed-flaskbb:28:") && report.contains("PrivateTmp"), "{report}");
    let check =
        Command::new(portico_bin()).args(["check", "--syntax-only", "-c"]).arg(&out).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stderr));

    let shipped = Path::new("conf/flaskbb.toml");
    let urls = [
        "/",
        "/index",
        "/forum/1-general",
        "/topic/1-hello?page=2",
        "/user/admin",
        "/auth/login",
        "/static",
        "/static/",
        "/static/app.css",
        "/static/app.js?v=3",
        "/static/emoji/smile.png",
        "/static/../etc/passwd",
        "/static../flaskbb.cfg",
        "/staticx",
        "/static/fonts/a%20b.woff",
        "/_themes/aurora/styles.css",
        "/_themes/aurora/css/x.css",
        "/_themes/",
        "/_themes/aurora",
        "/_themes/a/b/c/d.js",
        "/_THEMES/aurora/x.css",
        "/robots.txt",
        "/robots.txt/x",
        "/robots.txtx",
        "/favicon.ico",
        "/.git/config",
        "/search?q=%2e%2e",
        "/a//b",
        "/a/./b/../c",
        "/%41bc",
        "http://localhost/static/app.css",
        "http://other.example/static/app.css",
    ];
    assert!(urls.len() >= 30);
    for url in urls {
        assert_eq!(explain(&out, url), explain(shipped, url), "the route of {url}");
    }
}

/// Reads `dir`'s `*.conf` files (not the included snippets below it).
fn corpus() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir("tests/nginx")
        .expect("tests/nginx")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_corpus_converts_as_expected() {
    let files = corpus();
    assert!(files.len() >= 10, "the corpus has {} files", files.len());
    let bless = std::env::var_os("PORTICO_BLESS").is_some();
    let mut wrong = Vec::new();
    for f in files {
        let r = import(&[f.to_str().unwrap()]);
        let got = format!(
            "exit: {}\n--- toml\n{}--- report\n{}",
            r.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        let expected_path = f.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            wrong.push(format!("{}:\n{got}", f.display()));
        }
    }
    assert!(
        wrong.is_empty(),
        "differs from its .expected (PORTICO_BLESS=1 rewrites them):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_directive_family_is_in_the_corpus() {
    let all: String = corpus().iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    for d in [
        "listen",
        "default_server",
        "ipv6only",
        "server_name",
        "root",
        "alias",
        "location =",
        "location ^~",
        "location ~*",
        "location ~",
        "location @",
        "try_files",
        "index",
        "uwsgi_pass",
        "uwsgi_param",
        "if_not_empty",
        "include uwsgi_params",
        "access_log",
        "error_log",
        "log_format",
        "client_max_body_size",
        "client_body_timeout",
        "client_header_timeout",
        "send_timeout",
        "keepalive_timeout",
        "keepalive_requests",
        "upstream",
        "weight=",
        "max_fails=",
        "fail_timeout=",
        "max_conns=",
        "least_conn",
        "error_page",
        "user",
        "pid",
        "gzip",
        "gzip_types",
        "gzip_static",
        "expires",
        "add_header",
        "sendfile",
        "open_file_cache",
        "max_ranges",
        "tcp_nopush",
        "worker_connections",
        "include mime.types",
        "types_hash",
        "underscores_in_headers",
        "disable_symlinks",
        "rewrite",
        "return",
        "proxy_pass",
    ] {
        assert!(all.contains(d), "no corpus file uses `{d}`");
    }
}

#[test]
fn debians_uwsgi_params_is_read_with_the_prefix() {
    let d = TempDir::new("import-prefix");
    d.write(
        "uwsgi_params",
        "uwsgi_param  QUERY_STRING       $query_string;\nuwsgi_param  REQUEST_METHOD     $request_method;\n\
         uwsgi_param  HTTPS              $https if_not_empty;\nuwsgi_param  HTTP_HOST        $host;\n",
    );
    d.write("sites-available/site", "server {\n    listen 80;\n    location / {\n        include uwsgi_params;\n        uwsgi_pass unix:/run/app.sock;\n    }\n}\n");
    let site = d.path().join("sites-available/site");
    let r = import(&[site.to_str().unwrap(), "--prefix", d.path().to_str().unwrap()]);
    let toml = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(toml.contains("uwsgi_param = { HTTP_HOST = \"$host\" }"), "Debian's extra line is kept:\n{toml}");
    assert!(
        !toml.contains("QUERY_STRING") && !toml.contains("HTTPS"),
        "the stock lines are built in:\n{toml}"
    );
    assert!(toml.contains("/uwsgi_params:4:"), "the param names its line:\n{toml}");
    // without the prefix, the same file is looked for beside the site: taken as the stock one
    let r = import(&[site.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&r.stderr).contains("taken as nginx's stock uwsgi_params"));
}

#[test]
fn malformed_input_is_refused_with_its_place() {
    for (file, place, says) in [
        ("unbalanced.conf", "unbalanced.conf:6:1", "expecting \"}\""),
        ("extra-close.conf", "extra-close.conf:4:1", "unexpected \"}\""),
        ("unterminated.conf", "unterminated.conf:3:10", "unterminated quoted string"),
        ("location-in-http.conf", "location-in-http.conf:2:5", "\"location\" directive is not allowed here"),
        (
            "listen-in-location.conf",
            "listen-in-location.conf:3:9",
            "\"listen\" directive is not allowed here",
        ),
        ("loop-a.conf", "loop-b.inc:2:1", "include loop"),
        ("missing-include.conf", "missing-include.conf:3:5", "does not exist"),
        ("duplicate.conf", "duplicate.conf:4:5", "\"root\" directive is duplicate"),
    ] {
        let r = import(&[&format!("tests/nginx/bad/{file}")]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{file}: {err}");
        assert!(err.contains(place) && err.contains(says), "{file}: {err}");
        assert!(r.stdout.is_empty(), "{file}: nothing written");
    }
}

#[test]
fn symlinks_that_leave_the_tree_are_named() {
    let d = TempDir::new("import-symlinks");
    d.write("www/index.html", "hi\n");
    d.write("secret/key", "k\n");
    std::os::unix::fs::symlink(d.path().join("secret"), d.path().join("www/outside")).unwrap();
    std::os::unix::fs::symlink("index.html", d.path().join("www/inside")).unwrap();
    let site = d
        .write("site.conf", format!("server {{\n    listen 80;\n    root {}/www;\n}}\n", d.path().display()));
    let r = import(&[site.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{report}");
    assert!(report.contains("site.conf:3:") && report.contains("www/outside"), "{report}");
    assert!(!report.contains("www/inside"), "a link inside the tree is fine: {report}");
    // with disable_symlinks on the converted site refuses them all: nothing to warn of
    let site = d.write(
        "deny.conf",
        format!(
            "server {{\n    listen 80;\n    root {}/www;\n    disable_symlinks on;\n}}\n",
            d.path().display()
        ),
    );
    let r = import(&[site.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&r.stderr).contains("www/outside"));
    assert!(String::from_utf8_lossy(&r.stdout).contains("symlinks = \"deny\""));
}
