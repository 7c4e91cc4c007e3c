//! `portico explain`: the route a request would take, from the server's own steps.

mod common;

use std::process::Command;

use common::{portico_bin, TempDir};

const SITE: &str = r#"
[[server]]
listen = ["127.0.0.1:8080"]
server_name = ["localhost"]
root = "{dir}/html"

[[server.location]]
match = "/"
try_files = ["$uri", "$uri/index.html", "@app"]

[[server.location]]
match = "^~ /assets/"
alias = "{dir}/html/"

[[server.location]]
match = "~ \\.css$"
alias = "{dir}/html/site.css"

[[server.location]]
match = "= /exact"
alias = "{dir}/html/a.txt"

[[server.location]]
match = "@app"
uwsgi_pass = "unix:{dir}/app.sock"

[[server]]
listen = ["127.0.0.1:8080"]
server_name = ["other.test", "*.wild.test", "~^api[0-9]+\\.test$"]
root = "{dir}/other"

[[server.location]]
match = "/"
"#;

fn explain(args: &[&str]) -> String {
    let d = TempDir::new("explain");
    d.write("html/a.txt", "aaa\n");
    d.write("html/site.css", "b{}");
    d.write("other/o.txt", "o\n");
    let conf = d.write("p.toml", SITE.replace("{dir}", &d.path().display().to_string()));
    let out = Command::new(portico_bin()).args(["explain", "-c"]).arg(&conf).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).replace(&d.path().display().to_string(), "DIR")
}

#[test]
fn a_file_found_by_try_files() {
    let out = explain(&["/a.txt"]);
    assert!(out.contains("server: #1"), "{out}");
    assert!(out.contains("/: the longest matching prefix, kept while regexes are tried"), "{out}");
    assert!(out.contains("~ \\.css$: regex does not match"), "{out}");
    assert!(out.contains("try_files /a.txt -> DIR/html/a.txt: exists"), "{out}");
    assert!(out.contains("answer: 200 with the file DIR/html/a.txt (text/plain, 4 bytes)"), "{out}");
}

#[test]
fn try_files_candidates_then_the_named_upstream() {
    let out = explain(&["/nothing"]);
    assert!(out.contains("try_files /nothing -> DIR/html/nothing: missing"), "{out}");
    assert!(out.contains("try_files /nothing/index.html -> DIR/html/nothing/index.html: missing"), "{out}");
    assert!(out.contains("then: go to @app"), "{out}");
    assert!(out.contains("location @app (named"), "{out}");
    assert!(out.contains("answer: forwarded to upstream unix:DIR/app.sock"), "{out}");
}

#[test]
fn precedence_is_told_as_nginx_applies_it() {
    let out = explain(&["/assets/site.css"]);
    assert!(out.contains("^~ /assets/: the longest matching prefix, ^~: chosen, no regex tried"), "{out}");
    assert!(!out.contains("regex does not match") && !out.contains("regex matches"), "{out}");
    let out = explain(&["/x/site.css"]);
    assert!(out.contains("~ \\.css$: regex matches: chosen"), "{out}");
    let out = explain(&["/exact"]);
    assert!(out.contains("= /exact: equal: chosen"), "{out}");
}

#[test]
fn the_host_picks_the_server() {
    let out = explain(&["--host", "other.test", "/o.txt"]);
    assert!(out.contains("for Host \"other.test\" on 127.0.0.1:8080: an exact server_name matched"), "{out}");
    assert!(out.starts_with("server: #2 (server_name [\"other.test\","), "{out}");
    assert!(out.contains("the file DIR/other/o.txt"), "{out}");
    let out = explain(&["http://other.test:8080/o.txt"]);
    assert!(out.contains("server: #2"), "{out}");
    // and says why, in nginx's order
    let out = explain(&["--host", "a.b.wild.test", "/o.txt"]);
    assert!(
        out.contains("server: #2") && out.contains("the longest leading wildcard *.wild.test matched"),
        "{out}"
    );
    let out = explain(&["--host", "api7.test", "/o.txt"]);
    assert!(
        out.contains("server: #2") && out.contains("the first regex ~^api[0-9]+\\.test$ matched"),
        "{out}"
    );
    let out = explain(&["--host", "nobody.test", "/o.txt"]);
    assert!(
        out.contains("server: #1") && out.contains("no server_name matched: the default server"),
        "{out}"
    );
    // a bad target is refused before any location, as the server would
    let out = explain(&["/a/../../x"]);
    assert!(out.contains("answer: 400, before any location"), "{out}");
}
