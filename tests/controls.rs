//! `pid_file` and the controls that use it: `portico reopen` (SIGUSR1) and `portico stop`
//! (`--graceful`: SIGQUIT), with clear errors when there is no pid file or no process.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{portico_bin, Portico, TempDir};

const SITE: &str = r#"
pid_file = "{dir}/portico.pid"
shutdown_timeout = "1s"

[[server]]
listen = ["127.0.0.1:{port}"]
root = "{dir}/html"
access_log = "{dir}/access.log"
error_log = "{dir}/error.log"

[[server.location]]
match = "/"
"#;

fn control(p: &Portico, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(portico_bin())
        .args(args)
        .arg("-c")
        .arg(p.dir.path().join("portico.toml"))
        .output()
        .expect("run portico");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn start() -> Portico {
    let d = TempDir::new("controls");
    d.write("html/a.txt", "a\n");
    let p = Portico::start_in(d, SITE, &[]);
    p.wait_pid_file(&p.dir.path().join("portico.pid"));
    p
}

#[test]
fn the_pid_file_names_the_server_and_reopen_reopens_its_logs() {
    let p = start();
    let pid = std::fs::read_to_string(p.dir.path().join("portico.pid")).unwrap();
    assert_eq!(pid.trim(), p.child.id().to_string());

    let log = p.dir.path().join("access.log");
    assert_eq!(p.get("/a.txt?before").status, 200);
    p.wait_for_log(&log, "before");
    std::fs::rename(&log, p.dir.path().join("access.log.1")).unwrap();
    let (code, stderr) = control(&p, &["reopen"]);
    assert_eq!(code, Some(0), "{stderr}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !log.exists() {
        assert!(std::time::Instant::now() < deadline, "the log was not reopened");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(p.get("/a.txt?after").status, 200);
    p.wait_for_log(&log, "after");
}

#[test]
fn stop_graceful_ends_the_server_and_removes_its_pid_file() {
    let mut p = start();
    let (code, stderr) = control(&p, &["stop", "--graceful"]);
    assert_eq!(code, Some(0), "{stderr}");
    let status = p.wait_exit(Duration::from_secs(20)).expect("portico did not stop");
    assert!(status.success(), "{status}");
    assert!(!p.dir.path().join("portico.pid").exists());
    // now there is nothing to signal: said so
    let (code, stderr) = control(&p, &["stop"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot read pid_file") && stderr.contains("is Portico running"), "{stderr}");
}

#[test]
fn a_stale_pid_and_a_missing_pid_file_key_are_explained() {
    let mut p = start();
    let pid_file = p.dir.path().join("portico.pid");
    let (code, _) = control(&p, &["stop"]);
    assert_eq!(code, Some(0));
    p.wait_exit(Duration::from_secs(10)).expect("portico did not stop");
    // a pid no process can have: pids are below the kernel's pid_max
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().to_string();
    std::fs::write(&pid_file, format!("{pid_max}\n")).unwrap();
    let (code, stderr) = control(&p, &["reopen"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&format!("no process {pid_max}")) && stderr.contains("stale"), "{stderr}");

    let conf = p.dir.path().join("portico.toml");
    let text = std::fs::read_to_string(&conf).unwrap().replace("pid_file = ", "# pid_file = ");
    std::fs::write(&conf, text).unwrap();
    let (code, stderr) = control(&p, &["reopen"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("sets no pid_file"), "{stderr}");
}

#[test]
fn systemd_hears_ready_when_serving_reloading_around_a_reload_and_stopping_on_a_stop() {
    use std::os::unix::net::UnixDatagram;
    let d = TempDir::new("controls");
    d.write("html/a.txt", "a\n");
    let notify = UnixDatagram::bind(d.path().join("notify.sock")).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let lease = common::free_port();
    let conf = d.write(
        "portico.toml",
        common::as_this_user(SITE)
            .replace("{port}", &lease.port.to_string())
            .replace("{dir}", &d.path().display().to_string()),
    );
    /// Kills the server if an assertion fails first.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Command::new(portico_bin())
        .args(["run", "-c"])
        .arg(&conf)
        .env("NOTIFY_SOCKET", d.path().join("notify.sock"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child = Running(child);
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 from portico");
    let ready = format!("MAINPID={}\nREADY=1", child.0.id());
    assert_eq!(buf[..n].trim_ascii_end(), ready.as_bytes());
    // serving by then: the listener is bound
    assert!(std::net::TcpStream::connect(("127.0.0.1", lease.port)).is_ok());
    // a reload is announced, and its end
    let _ = Command::new("kill").arg("-HUP").arg(child.0.id().to_string()).status();
    let n = notify.recv(&mut buf).expect("RELOADING=1 from portico");
    assert_eq!(buf[..n].trim_ascii_end(), b"RELOADING=1");
    let n = notify.recv(&mut buf).expect("READY=1 after the reload");
    assert_eq!(buf[..n].trim_ascii_end(), b"READY=1");
    let _ = Command::new("kill").arg("-TERM").arg(child.0.id().to_string()).status();
    let n = notify.recv(&mut buf).expect("STOPPING=1 from portico");
    assert_eq!(buf[..n].trim_ascii_end(), b"STOPPING=1");
}
