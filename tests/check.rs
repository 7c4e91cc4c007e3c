//! `portico check`: the shipped configurations pass; each class of mistake is refused with
//! file, line and a hint; every error in a file is reported at once.

mod common;

use std::process::Command;

use common::{portico_bin, TempDir};

struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn check_file(path: &std::path::Path) -> Checked {
    check_file_with(path, &[])
}

fn check_file_with(path: &std::path::Path, args: &[&str]) -> Checked {
    let out = Command::new(portico_bin())
        .args(["check", "-c"])
        .arg(path)
        .args(args)
        .output()
        .expect("run portico check");
    Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn check(config: &str) -> Checked {
    let d = TempDir::new("check");
    let path = d.write("site.toml", config);
    check_file(&path)
}

/// Asserts the check failed with an error at `line` whose text and hint contain the given
/// fragments.
fn assert_error(c: &Checked, line: usize, message: &str, hint: &str) {
    assert_eq!(c.code, Some(1), "check should fail:\n{}", c.stderr);
    let at = format!("site.toml:{line}:");
    let found = c.stderr.split("\n").collect::<Vec<_>>().windows(2).any(|w| {
        w[0].contains(&at)
            && w[0].contains("error:")
            && w[0].contains(message)
            && w[1].contains("hint:")
            && w[1].contains(hint)
    });
    assert!(found, "no error at line {line} with {message:?} / hint {hint:?} in:\n{}", c.stderr);
}

const HEAD: &str = "[[server]]\nlisten = [\"127.0.0.1:8080\"]\nroot = \"/srv\"\n";

#[test]
fn shipped_flaskbb_config_passes_and_warns_about_root() {
    let c = check_file_with(std::path::Path::new("conf/flaskbb.toml"), &["--syntax-only"]);
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    assert!(c.stdout.contains("configuration ok"));
    assert!(c.stderr.contains("warning: no `root` is set"), "{}", c.stderr);
}

#[test]
fn shipped_demo_config_passes() {
    let c = check_file_with(std::path::Path::new("conf/demo.toml"), &["--syntax-only"]);
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    assert!(c.stdout.contains("configuration ok"));
}

#[test]
fn unknown_key() {
    let c = check(&format!("{HEAD}[[server.location]]\nmatch = \"/\"\naliass = \"/srv/x/\"\n"));
    assert_error(&c, 6, "unknown key `aliass`", "did you mean `alias`?");
}

#[test]
fn nginx_directive_names_get_portico_hints() {
    let c = check(&format!("{HEAD}[[server.location]]\nmatch = \"/\"\nproxy_pass = \"http://x\"\n"));
    assert_error(&c, 6, "unknown key `proxy_pass`", "uwsgi_pass");
}

#[test]
fn wrong_type() {
    let c = check("[[server]]\nlisten = 8080\n");
    assert_error(&c, 2, "`listen`", "listen = [\"127.0.0.1:8080\"]");
}

#[test]
fn bad_regex() {
    let c = check(&format!("{HEAD}[[server.location]]\nmatch = \"~ ^/(unclosed$\"\n"));
    assert_error(&c, 5, "bad regex", "Rust regex syntax");
}

#[test]
fn duplicate_named_locations() {
    let c = check(&format!(
        "{HEAD}[[server.location]]\nmatch = \"@app\"\nuwsgi_pass = \"unix:/a.sock\"\n[[server.location]]\nmatch = \"@app\"\nuwsgi_pass = \"unix:/b.sock\"\n"
    ));
    assert_error(&c, 7, "repeats an earlier location", "merge");
}

#[test]
fn try_files_naming_a_missing_location() {
    let c =
        check(&format!("{HEAD}[[server.location]]\nmatch = \"/\"\ntry_files = [\"$uri\", \"@flaskbb\"]\n"));
    assert_error(&c, 6, "no location `@flaskbb`", "match = \"@flaskbb\"");
}

#[test]
fn alias_and_root_in_one_location() {
    let c = check(&format!(
        "{HEAD}[[server.location]]\nmatch = \"/static\"\nroot = \"/srv\"\nalias = \"/srv/static/\"\n"
    ));
    assert_error(&c, 6, "`alias` and `root` in one location", "keep one");
}

#[test]
fn captures_outside_a_regex_location() {
    let c = check(&format!("{HEAD}[[server.location]]\nmatch = \"/t\"\nalias = \"/srv/$1/x\"\n"));
    assert_error(&c, 6, "not a regex location", "captures come from");
}

#[test]
fn every_error_is_reported_at_once() {
    let c = check(
        "[[server]]\nlisten = [\"not-an-address\"]\nroot = \"/srv\"\n\
         [[server.location]]\nmatch = \"~ (\"\n\
         [[server.location]]\nmatch = \"/x\"\nsymlinks = \"sometimes\"\n\
         [[server.location]]\nmatch = \"/y\"\ntry_files = [\"$uri\", \"@nowhere\"]\n",
    );
    assert_eq!(c.code, Some(1));
    for line in ["site.toml:2:", "site.toml:5:", "site.toml:8:", "site.toml:11:"] {
        assert!(c.stderr.contains(line), "missing {line} in:\n{}", c.stderr);
    }
    assert!(
        c.stderr.contains("unknown variant `sometimes`, expected one of `inside`, `follow`, `deny`"),
        "{}",
        c.stderr
    );
}

#[test]
fn not_toml_at_all() {
    let c = check("[[server]\nlisten = [\"80\"]\n");
    assert_eq!(c.code, Some(1));
    assert!(c.stderr.contains("site.toml:1:"), "{}", c.stderr);
    assert!(c.stderr.contains("not valid TOML"), "{}", c.stderr);
}

#[test]
fn missing_file() {
    let c = check_file(std::path::Path::new("/nonexistent/portico.toml"));
    assert_eq!(c.code, Some(1));
    assert!(c.stderr.contains("cannot read the configuration file"), "{}", c.stderr);
}

#[test]
fn syntax_only_does_not_need_the_paths_to_exist_and_the_full_check_names_them() {
    let d = TempDir::new("check");
    let path = d.write(
        "site.toml",
        "user = \"nobody\"\n[[server]]\nlisten = [\"80\"]\nroot = \"/does/not/exist\"\naccess_log = \"/nope/access.log\"\n[[server.location]]\nmatch = \"/\"\n",
    );
    let c = check_file_with(&path, &["--syntax-only"]);
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    let c = check_file(&path);
    assert_eq!(c.code, Some(2), "warnings only: {}", c.stderr);
    assert!(c.stderr.contains("location / would return 404: /does/not/exist does not exist"), "{}", c.stderr);
}

#[test]
fn version() {
    let out = Command::new(portico_bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("portico {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_missing_error_page_location_is_reported_once() {
    let c = check(&format!(
        "{HEAD}error_page = {{ \"502\" = \"@down\" }}\n[[server.location]]\nmatch = \"/a\"\n[[server.location]]\nmatch = \"/b\"\n"
    ));
    assert_error(&c, 4, "no location `@down`", "match = \"@down\"");
    assert_eq!(c.stderr.matches("no location `@down`").count(), 1, "{}", c.stderr);
}

#[test]
fn durations_and_sizes_past_their_bounds_are_refused_with_the_largest_value() {
    let c = check(&format!(
        "worker_threads = 100000\n{HEAD}keepalive_timeout = \"1000h\"\nclient_body_buffer_size = \"1g\"\n\
         client_max_body_size = 99999999999999\nopen_file_cache = \"max=10 inactive=9999h\"\n[[server.location]]\nmatch = \"/\"\nuwsgi_pass = \"up\"\n\
         [upstream.up]\nservers = [\"unix:/run/x.sock\"]\nconnect_timeout = 18446744073709551615\n"
    ));
    assert_error(&c, 1, "worker_threads must be from 1 to 1024", "worker_threads = 2");
    assert_error(&c, 5, "longest duration, \"596h\"", "keepalive_timeout = ");
    assert_error(&c, 6, "over its largest value, \"64m\"", "client_body_buffer_size = \"64m\"");
    assert_error(&c, 7, "over its largest value, \"1024g\"", "client_max_body_size = \"1024g\"");
    assert_error(&c, 8, "inactive takes a time of at most 596h", "open_file_cache = ");
    assert_error(&c, 14, "longest duration, \"596h\"", "connect_timeout = ");
}

#[test]
fn included_files_hold_servers_and_upstreams_and_their_errors_name_them() {
    let d = TempDir::new("check");
    let main = d.write(
        "portico.toml",
        "include = [\"sites/*.toml\", \"none/*.toml\"]\n[upstream.app]\nservers = [\"unix:/run/app.sock\"]\n",
    );
    d.write("sites/a.toml", "[[server]]\nlisten = [\"127.0.0.1:8080\"]\nroot = \"/srv\"\n[[server.location]]\nmatch = \"/\"\nuwsgi_pass = \"app\"\n");
    d.write("sites/b.toml", "[[server]]\nlisten = [\"127.0.0.1:8081\"]\nroot = \"/srv\"\n[[server.location]]\nmatch = \"/\"\naliass = \"/x/\"\n");
    let c = check_file_with(&main, &["--syntax-only"]);
    assert_eq!(c.code, Some(1), "{}", c.stderr);
    // the error is in the included file, at its line; the empty glob is a warning
    assert!(c.stderr.contains("sites/b.toml:6:1: error: unknown key `aliass`"), "{}", c.stderr);
    assert!(c.stderr.contains("portico.toml:1:") && c.stderr.contains("matches no file"), "{}", c.stderr);
    std::fs::remove_file(d.path().join("sites/b.toml")).unwrap();
    let c = check_file_with(&main, &["--syntax-only"]);
    assert_eq!(c.code, Some(0), "the pool of the main file serves the included server:\n{}", c.stderr);
}

#[test]
fn an_include_loop_is_an_error_at_the_include() {
    let d = TempDir::new("check");
    let main = d.write("portico.toml", "include = [\"a.toml\"]\n");
    d.write("a.toml", "include = [\"portico.toml\"]\n[[server]]\nlisten = [\"127.0.0.1:8080\"]\nroot = \"/srv\"\n[[server.location]]\nmatch = \"/\"\n");
    let c = check_file_with(&main, &["--syntax-only"]);
    assert_eq!(c.code, Some(1), "{}", c.stderr);
    assert!(c.stderr.contains("a.toml:1:") && c.stderr.contains("an include loop"), "{}", c.stderr);
}
