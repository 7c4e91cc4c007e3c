//! A real uWSGI (from the project's .venv, made by scripts/setup-python) running the test
//! app tests/wsgi/test_app.py (or another WSGI file) on a Unix socket.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's uwsgi; the tests need it and say how to get it.
pub fn uwsgi_bin() -> PathBuf {
    let bin = repo().join(".venv/bin/uwsgi");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/setup-python (scripts/test does it first)",
        bin.display()
    );
    bin
}

/// A running uWSGI, stopped when dropped.
pub struct Uwsgi {
    child: Option<Child>,
    pub socket: PathBuf,
    pub log: PathBuf,
    app: PathBuf,
    args: Vec<String>,
}

impl Uwsgi {
    /// Starts uWSGI with the test app on `socket`; `extra` adds uWSGI options.
    pub fn start(socket: &Path, extra: &[&str]) -> Uwsgi {
        Self::start_app(socket, &repo().join("tests/wsgi/test_app.py"), extra)
    }

    /// As [`Uwsgi::start`], running the WSGI file `app` instead of the test app.
    pub fn start_app(socket: &Path, app: &Path, extra: &[&str]) -> Uwsgi {
        let mut u = Uwsgi {
            child: None,
            socket: socket.to_path_buf(),
            log: socket.with_extension("log"),
            app: app.to_path_buf(),
            args: extra.iter().map(|s| s.to_string()).collect(),
        };
        u.spawn();
        u
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new(uwsgi_bin())
            .arg("--socket")
            .arg(&self.socket)
            .arg("--wsgi-file")
            .arg(&self.app)
            .args(["--master", "--processes", "2", "--die-on-term", "--disable-logging", "--need-app"])
            .arg("--logto")
            .arg(&self.log)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn uwsgi");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "uWSGI did not listen on {}; its log:\n{}",
            self.socket.display(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Stops uWSGI at once, master and workers (SIGINT); its socket file is left behind,
    /// as a crashed uWSGI leaves it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same socket.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Uwsgi {
    fn drop(&mut self) {
        self.stop();
    }
}
