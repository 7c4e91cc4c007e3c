//! The one thread that writes log files. Requests hand it finished lines through a bounded
//! channel and never wait: when the channel is full the line is dropped and counted. A
//! failing write (disk full, file removed) is reported once on stderr per file until a
//! write succeeds again; serving goes on either way. `reopen` (on SIGUSR1) reopens every
//! file by path, for log rotation.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 65_536;

enum Message {
    Line(usize, Vec<u8>),
    Reopen,
}

/// Where one log goes: a handle to the writer and the file's slot.
#[derive(Clone)]
pub struct Sink {
    slot: usize,
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl Sink {
    /// Queues a line; never blocks.
    pub fn write(&self, line: Vec<u8>) {
        match self.tx.try_send(Message::Line(self.slot, line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("portico: log writer is behind; dropping log lines until it catches up");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The running writer: hands out sinks and asks for reopening.
#[derive(Clone)]
pub struct LogWriter {
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
    slots: HashMap<PathBuf, usize>,
    stderr_slot: usize,
}

/// A log target: a file path, or the process's stderr.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    File(PathBuf),
    Stderr,
}

impl LogWriter {
    /// Opens every file (append mode, created if missing) and starts the writer thread.
    /// Fails with the path and the reason if a file cannot be opened.
    pub fn start(targets: &[Target]) -> Result<LogWriter, String> {
        let mut files: Vec<Output> = vec![Output::stderr()];
        let mut slots = HashMap::new();
        for t in targets {
            if let Target::File(path) = t {
                if slots.contains_key(path) {
                    continue;
                }
                let file = open_log(path)?;
                slots.insert(path.clone(), files.len());
                files.push(Output::file(path.clone(), file));
            }
        }
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        thread::Builder::new()
            .name("portico-log".into())
            .spawn(move || run(rx, files, counter))
            .map_err(|e| format!("cannot start the log writer thread: {e}"))?;
        Ok(LogWriter {
            tx,
            dropped,
            slots,
            stderr_slot: 0,
        })
    }

    /// The sink for `target`, which must have been passed to [`LogWriter::start`].
    pub fn sink(&self, target: &Target) -> Sink {
        let slot = match target {
            Target::File(p) => self.slots.get(p).copied().unwrap_or(self.stderr_slot),
            Target::Stderr => self.stderr_slot,
        };
        Sink {
            slot,
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
        }
    }

    /// Reopens every file by its path (after logrotate moved them).
    pub fn reopen(&self) {
        let _ = self.tx.try_send(Message::Reopen);
    }
}

fn open_log(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            let hint = match e.kind() {
                io::ErrorKind::NotFound => "; create its directory or change the path",
                io::ErrorKind::PermissionDenied => "; check the directory's owner and mode against the user Portico runs as",
                _ => "",
            };
            format!("cannot open log file {}: {e}{hint}", path.display())
        })
}

struct Output {
    path: Option<PathBuf>,
    out: Box<dyn Write + Send>,
    pending: Vec<u8>,
    failing: bool,
}

impl Output {
    fn stderr() -> Output {
        Output {
            path: None,
            out: Box::new(io::stderr()),
            pending: Vec::new(),
            failing: false,
        }
    }

    fn file(path: PathBuf, file: File) -> Output {
        Output {
            path: Some(path),
            out: Box::new(file),
            pending: Vec::new(),
            failing: false,
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let result = self.out.write_all(&self.pending);
        self.pending.clear();
        match result {
            Ok(()) => self.failing = false,
            Err(e) => {
                if !self.failing {
                    let name = self
                        .path
                        .as_ref()
                        .map_or_else(|| "stderr".to_string(), |p| p.display().to_string());
                    eprintln!(
                        "portico: writing log {name} failed: {e}; lines are lost until writing works again (serving continues)"
                    );
                }
                self.failing = true;
            }
        }
    }

    fn reopen(&mut self) {
        let Some(path) = &self.path else { return };
        match open_log(path) {
            Ok(f) => self.out = Box::new(f),
            Err(e) => eprintln!("portico: reopening logs: {e}; still writing to the old file"),
        }
    }
}

fn run(rx: Receiver<Message>, mut files: Vec<Output>, dropped: Arc<AtomicU64>) {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // take what is queued, then write it in one go per file
        while let Some(msg) = next {
            match msg {
                Message::Line(slot, line) => {
                    if let Some(f) = files.get_mut(slot) {
                        f.pending.extend_from_slice(&line);
                    }
                }
                Message::Reopen => {
                    for f in &mut files {
                        f.flush();
                        f.reopen();
                    }
                }
            }
            next = rx.try_recv().ok();
        }
        for f in &mut files {
            f.flush();
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            eprintln!("portico: {lost} log lines were dropped while the log writer was behind");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn lines_reach_their_files_and_reopen_follows_rotation() {
        let dir = std::env::temp_dir().join(format!("portico-logw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.log");
        let w = LogWriter::start(&[Target::File(a.clone())]).unwrap();
        let sink = w.sink(&Target::File(a.clone()));
        sink.write(b"one\n".to_vec());
        wait_for(&a, "one\n");
        std::fs::rename(&a, dir.join("a.log.1")).unwrap();
        w.reopen();
        sink.write(b"two\n".to_vec());
        wait_for(&a, "two\n");
        assert_eq!(std::fs::read_to_string(dir.join("a.log.1")).unwrap(), "one\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unopenable_file_is_a_clear_error() {
        let e = LogWriter::start(&[Target::File("/nonexistent-dir/x.log".into())])
            .err()
            .unwrap();
        assert!(e.contains("/nonexistent-dir/x.log"), "{e}");
        assert!(e.contains("create its directory"), "{e}");
    }

    fn wait_for(path: &Path, content: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if std::fs::read_to_string(path).map(|s| s == content).unwrap_or(false) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} never held {content:?}", path.display());
    }
}
