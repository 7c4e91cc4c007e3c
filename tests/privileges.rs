//! Who serves: started as root, Portico binds and opens its logs, then serves as `user`
//! on every thread; root without `user` is refused; a normal user cannot take a port
//! below 1024 and is told why. These need root (CI runs as root): elsewhere they say so
//! and skip, and under CI a missing root fails them.

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::{free_port, portico_bin, Portico, TempDir};

const SITE: &str = r#"
[[server]]
listen = ["127.0.0.1:{port}"]
root = "{dir}/html"
access_log = "{dir}/access.log"
error_log = "{dir}/error.log"

[[server.location]]
match = "/"
"#;

/// Whether the test can run: root, or a loud skip (a failure under CI).
fn root_or_skip(what: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "{what} needs root, and CI runs as root");
    eprintln!("SKIPPED: {what} needs root");
    false
}

/// `portico run` for `config` (with `{port}` and `{dir}` filled in) that is expected to
/// exit at once: its status and stderr.
fn run_briefly(prefix: &[&str], config: &str) -> (Option<i32>, String) {
    let d = TempDir::new("priv");
    let lease = free_port();
    let conf = d.write(
        "p.toml",
        config.replace("{port}", &lease.port.to_string()).replace("{dir}", &d.path().display().to_string()),
    );
    let mut cmd = Command::new(prefix.first().copied().unwrap_or(portico_bin()));
    if !prefix.is_empty() {
        cmd.args(&prefix[1..]).arg(portico_bin());
    }
    let out = cmd.args(["run", "-c"]).arg(&conf).output().expect("run portico");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The `Uid:`/`Gid:`/`Groups:` lines of every thread of `pid`.
fn thread_ids(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let status = std::fs::read_to_string(task.expect("task").path().join("status")).unwrap_or_default();
        let ids: Vec<&str> = status
            .lines()
            .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:") || l.starts_with("Groups:"))
            .collect();
        out.push(ids.join(" | ").split_whitespace().collect::<Vec<_>>().join(" "));
    }
    out
}

#[test]
fn root_without_user_is_refused_with_what_to_write() {
    if !root_or_skip("refusing root without `user`") {
        return;
    }
    let (code, stderr) = run_briefly(&[], SITE);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("started as root without `user`"), "{stderr}");
    assert!(stderr.contains("user = \"www-data\""), "{stderr}");
}

#[test]
fn an_explicit_root_user_serves_with_a_warning() {
    if !root_or_skip("`user = \"root\"`") {
        return;
    }
    let d = TempDir::new("priv");
    d.write("html/a.txt", "a\n");
    let p = Portico::start_in(d, &format!("user = \"root\"\n{SITE}"), &[]);
    assert_eq!(p.get("/a.txt").status, 200);
    assert!(p.stderr().contains("serving as root"), "{}", p.stderr());
}

#[test]
fn started_as_root_it_serves_as_the_user_on_every_thread() {
    if !root_or_skip("dropping to `user`") {
        return;
    }
    let d = TempDir::new("priv");
    d.write("html/a.txt", "a\n");
    let p = Portico::start_in(d, &format!("user = \"nobody\"\n{SITE}"), &[]);
    assert_eq!(p.get("/a.txt").status, 200);
    let ids = thread_ids(p.child.id());
    assert!(ids.len() > 1, "{ids:?}");
    for t in &ids {
        // real, effective, saved and filesystem ids all nobody's; no supplementary root group
        assert!(
            t.starts_with("Uid: 65534 65534 65534 65534 | Gid: 65534 65534 65534 65534 | Groups: 65534"),
            "{ids:#?}"
        );
    }
    // the logs root opened are the user's, so reopening them keeps working
    for log in ["access.log", "error.log"] {
        let meta = std::fs::metadata(p.dir.path().join(log)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{log}");
    }
    // logrotate's `create` makes the new file for the user; SIGUSR1 opens it
    std::fs::rename(p.dir.path().join("access.log"), p.dir.path().join("access.log.1")).unwrap();
    let fresh = p.dir.write("access.log", "");
    nix::unistd::chown(&fresh, Some(65534.into()), Some(65534.into())).unwrap();
    p.signal("USR1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        assert_eq!(p.get("/a.txt?rotated").status, 200);
        if std::fs::read_to_string(&fresh).unwrap_or_default().contains("rotated") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no line in the reopened log");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_normal_user_is_told_a_port_below_1024_needs_root() {
    if !root_or_skip("running as a normal user (setpriv)") {
        return;
    }
    let as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
    let (code, stderr) = run_briefly(
        &as_nobody,
        &format!("user = \"www-data\"\n{SITE}").replace("127.0.0.1:{port}", "127.0.0.1:1023"),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on 127.0.0.1:1023"), "{stderr}");
    assert!(stderr.contains("below 1024") && stderr.contains("CAP_NET_BIND_SERVICE"), "{stderr}");
    // and `user` is said to have no effect
    assert!(stderr.contains("takes effect only when Portico is started as root"), "{stderr}");
}

#[test]
fn root_with_another_group_serves_as_root_in_that_group() {
    if !root_or_skip("`user = \"root\"` with `group`") {
        return;
    }
    let d = TempDir::new("priv");
    d.write("html/a.txt", "a\n");
    let p = Portico::start_in(d, &format!("user = \"root\"\ngroup = \"nogroup\"\n{SITE}"), &[]);
    assert_eq!(p.get("/a.txt").status, 200);
    for t in thread_ids(p.child.id()) {
        assert!(t.starts_with("Uid: 0 0 0 0 | Gid: 65534 65534 65534 65534"), "{t}");
    }
}

#[test]
fn after_giving_up_root_a_reload_adds_a_port_through_a_new_process_but_not_one_below_1024() {
    if !root_or_skip("reloading after the switch to `user`") {
        return;
    }
    let d = TempDir::new("priv-reload");
    d.write("html/a.txt", "a\n");
    let config =
        format!("user = \"nobody\"\npid_file = \"{{dir}}/portico.pid\"\nshutdown_timeout = \"1s\"\n{SITE}");
    let p = Portico::start_in(d, &config, &[]);
    let dir = p.dir.path().to_path_buf();
    p.wait_pid_file(&dir.join("portico.pid"));
    let conf = dir.join("portico.toml");
    let text = std::fs::read_to_string(&conf).unwrap();
    let listen = format!("listen = [\"127.0.0.1:{}\"]", p.addr.port());
    let with = |extra: &str| {
        text.replace(&listen, &format!("listen = [\"127.0.0.1:{}\", \"{extra}\"]", p.addr.port()))
    };
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !check() {
            assert!(std::time::Instant::now() < deadline, "{what} never happened:\n{}", p.stderr());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };

    // (where unprivileged users may bind low ports, as in some containers, there is
    // nothing to refuse)
    let unprivileged_start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    if unprivileged_start > 81 {
        std::fs::write(&conf, with("127.0.0.1:81")).unwrap();
        p.signal("HUP");
        let log = dir.join("error.log");
        wait("the refusal", &|| std::fs::read_to_string(&log).unwrap_or_default().contains("not reloaded"));
        let text_log = std::fs::read_to_string(&log).unwrap();
        assert!(
            text_log.contains("cannot listen on 127.0.0.1:81") && text_log.contains("restart"),
            "{text_log}"
        );
    } else {
        eprintln!(
            "SKIPPED part: ip_unprivileged_port_start is {unprivileged_start}, so port 81 needs no root here"
        );
    }

    let extra = free_port();
    std::fs::write(&conf, with(&format!("127.0.0.1:{}", extra.port))).unwrap();
    p.signal("HUP");
    let pid = || {
        std::fs::read_to_string(dir.join("portico.pid"))
            .unwrap_or_default()
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
    };
    wait("a new process", &|| pid() != 0 && pid() != p.child.id());
    let new = pid();
    let answered = || {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", extra.port)) else { return false };
        let mut c = common::Conn::new(s.try_clone().unwrap());
        let _ = std::io::Write::write_all(&mut s, b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        c.read_response(false).status == 200
    };
    wait("the added port answered", &answered);
    for t in thread_ids(new) {
        assert!(t.starts_with("Uid: 65534 65534 65534 65534"), "{t}");
    }
    let _ = Command::new("kill").arg("-INT").arg(new.to_string()).status();
}
