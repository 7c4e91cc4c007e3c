//! `portico check` looking at the machine: what a visitor would see, said before a visitor
//! sees it — a socket the serving user may not open, a socket nothing listens on, a
//! listener that is not uWSGI, a directory that is missing or closed, a symlink the rule
//! refuses, a unit with PrivateTmp, uWSGI's buffer-size. Exit 2 for warnings only, 0
//! when nothing is found, JSON for scripts. A real uWSGI answers the ping.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;

use common::uwsgi::Uwsgi;
use common::{portico_bin, TempDir};

struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn check(dir: &TempDir, config: &str, args: &[&str]) -> Checked {
    let text = config.replace("{dir}", &dir.path().display().to_string());
    let path = dir.write("site.toml", text);
    let out =
        Command::new(portico_bin()).args(["check", "-c"]).arg(&path).args(args).output().expect("run check");
    Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A site served as nobody: files under {dir}/html, the app on {dir}/app.sock.
const SITE: &str = r#"
user = "nobody"

[[server]]
listen = ["127.0.0.1:8080"]
server_name = ["localhost"]
root = "{dir}/html"

[[server.location]]
match = "/"

[[server.location]]
match = "@app"
uwsgi_pass = "unix:{dir}/app.sock"

[[server.location]]
match = "/app/"
try_files = ["$uri", "@app"]
"#;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `user:group` of a file, as `ls -l` names them.
fn owner_of(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    let user = nix::unistd::User::from_uid(meta.uid().into()).unwrap().unwrap().name;
    let group = nix::unistd::Group::from_gid(meta.gid().into()).unwrap().unwrap().name;
    format!("{user}:{group}")
}

fn site_dir() -> TempDir {
    let d = TempDir::new("machine");
    d.write("html/index.html", "home\n");
    // the scratch directory itself must be searchable by nobody
    chmod(d.path(), 0o755);
    d
}

#[test]
fn a_socket_the_user_may_not_open_is_a_predicted_502_in_one_sentence() {
    let d = site_dir();
    let sock = d.path().join("app.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    chmod(&sock, 0o600);
    let c = check(&d, SITE, &[]);
    assert_eq!(c.code, Some(2), "{}", c.stderr);
    let owner = owner_of(&sock);
    let want = format!(
        "location @app would return 502: {} is srw------- {owner} and portico runs as nobody",
        sock.display()
    );
    assert!(c.stderr.contains(&want), "wanted {want:?} in:\n{}", c.stderr);
}

#[test]
fn a_real_uwsgi_answers_the_ping_and_nothing_is_found() {
    let d = site_dir();
    let _uwsgi = Uwsgi::start(&d.path().join("app.sock"), &["--chmod-socket=666"]);
    let c = check(&d, SITE, &[]);
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    assert!(c.stdout.contains("configuration ok"), "{}", c.stdout);
}

#[test]
fn a_socket_left_behind_and_a_listener_that_is_not_uwsgi() {
    let d = site_dir();
    let sock = d.path().join("app.sock");
    drop(UnixListener::bind(&sock).unwrap());
    chmod(&sock, 0o666);
    let c = check(&d, SITE, &[]);
    assert!(c.stderr.contains("nothing listens on"), "{}", c.stderr);

    std::fs::remove_file(&sock).unwrap();
    let _silent = UnixListener::bind(&sock).unwrap();
    chmod(&sock, 0o666);
    let c = check(&d, SITE, &[]);
    assert!(c.stderr.contains("does not answer uWSGI's ping"), "{}", c.stderr);
}

#[test]
fn missing_and_closed_directories_are_predicted_404_and_403() {
    let d = site_dir();
    let _uwsgi = Uwsgi::start(&d.path().join("app.sock"), &["--chmod-socket=666"]);
    let missing = SITE.replace("{dir}/html", "{dir}/gone");
    let c = check(&d, &missing, &[]);
    assert!(
        c.stderr.contains("location / would return 404:") && c.stderr.contains("gone does not exist"),
        "{}",
        c.stderr
    );

    chmod(&d.path().join("html"), 0o700);
    let c = check(&d, SITE, &[]);
    assert!(c.stderr.contains("location / would return 403:"), "{}", c.stderr);
    assert!(c.stderr.contains("drwx------") && c.stderr.contains("portico runs as nobody"), "{}", c.stderr);
}

#[test]
fn symlinks_the_rule_refuses_are_named_and_the_configurations_are_not() {
    let d = site_dir();
    d.write("secret/x.txt", "x");
    d.write("static/app.css", "a{}");
    std::fs::create_dir_all(d.path().join("themes/aurora")).unwrap();
    std::os::unix::fs::symlink("../secret", d.path().join("html/leak")).unwrap();
    std::os::unix::fs::symlink("../../static", d.path().join("themes/aurora/static")).unwrap();
    let site = format!(
        "{SITE}\n[[server.location]]\nmatch = \"~ ^/_themes/([^/]+)/(.*)$\"\nalias = \"{{dir}}/themes/$1/static/$2\"\n"
    );
    let _uwsgi = Uwsgi::start(&d.path().join("app.sock"), &["--chmod-socket=666"]);
    let c = check(&d, &site, &[]);
    assert!(c.stderr.contains("html/leak -> ../secret leads outside"), "{}", c.stderr);
    assert!(c.stderr.contains("set symlinks = \"follow\""), "{}", c.stderr);
    assert!(!c.stderr.contains("aurora/static ->"), "the theme's link is the configuration's:\n{}", c.stderr);
}

#[test]
fn private_tmp_and_a_smaller_buffer_size_are_the_classic_traps() {
    let d = site_dir();
    let unit = d.write("portico.service", "[Service]\nExecStart=/usr/sbin/portico run\nPrivateTmp=true\n");
    let ini = d.write("app.ini", "[uwsgi]\nsocket = /tmp/flaskbb.sock\nbuffer-size = 2048\n");
    let site = SITE.replace("unix:{dir}/app.sock", "unix:/tmp/flaskbb.sock");
    let c = check(&d, &site, &["--unit", unit.to_str().unwrap(), "--uwsgi-ini", ini.to_str().unwrap()]);
    assert!(c.stderr.contains("PrivateTmp=") && c.stderr.contains("/tmp/flaskbb.sock"), "{}", c.stderr);
    assert!(c.stderr.contains("uwsgi_buffer_size is 4096 but uWSGI's buffer-size is 2048"), "{}", c.stderr);
}

#[test]
fn json_for_scripts() {
    let d = site_dir();
    let c = check(&d, SITE, &["--json"]);
    assert_eq!(c.code, Some(2));
    let report: serde_json::Value = serde_json::from_str(&c.stdout).expect("JSON on stdout");
    assert_eq!(report["exit"], 2);
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["status"] == 502 && f["subject"].as_str().unwrap().contains("@app")),
        "{report}"
    );
    let bad = check(&d, "[[server]]\nlisten = 1\n", &["--json"]);
    assert_eq!(bad.code, Some(1));
    let report: serde_json::Value = serde_json::from_str(&bad.stdout).unwrap();
    let diags = report["configuration"].as_array().unwrap();
    assert!(diags.iter().any(|d| d["severity"] == "error" && d["line"] == 2), "{report}");
}
