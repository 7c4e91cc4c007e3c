//! The one thread that writes log files. Requests append finished lines to a per-file
//! in-memory queue (a short, uncontended lock, no I/O) and never wait; the writer wakes
//! every [`FLUSH_INTERVAL`] — or early, when a queue passes [`FLUSH_AT`] bytes — and
//! writes each queue in one go. Waking per line would cost a context switch per request.
//!
//! A queue over [`MAX_QUEUE`] bytes drops new lines and counts them. A failing write (disk
//! full, file removed) is reported once on stderr per file until a write succeeds again;
//! serving goes on either way. `reopen` (on SIGUSR1) reopens every file by path, for log
//! rotation; `open` adds the files a reloaded configuration names (a file no sink uses
//! any more is closed once its queue is written); `stop` writes what is queued and ends
//! the thread.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

/// How long a line may wait in memory before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// A queue this big wakes the writer at once.
pub const FLUSH_AT: usize = 64 << 10;
/// A queue this big drops new lines until the writer catches up.
pub const MAX_QUEUE: usize = 16 << 20;

/// Lines waiting for one file.
#[derive(Default)]
struct Queue {
    lines: Mutex<Vec<u8>>,
    dropped: AtomicU64,
}

/// What the request side shares with the writer thread.
struct Shared {
    thread: Thread,
    reopen: AtomicBool,
    stop: AtomicBool,
    /// Set by the writer thread once it has written everything and ended.
    finished: AtomicBool,
    /// The queue of each target sinks are handed out for.
    queues: Mutex<HashMap<Target, Arc<Queue>>>,
    /// Files opened since the writer's last turn, for it to take over.
    opened: Mutex<Vec<(Arc<Queue>, Output)>>,
}

/// Where one log goes.
#[derive(Clone)]
pub struct Sink {
    queue: Arc<Queue>,
    shared: Arc<Shared>,
}

impl Sink {
    /// Queues a line (with its newline); never blocks on I/O.
    pub fn write(&self, line: &[u8]) {
        let mut lines = self.queue.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() + line.len() > MAX_QUEUE {
            drop(lines);
            self.queue.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        lines.extend_from_slice(line);
        let urgent = lines.len() >= FLUSH_AT;
        drop(lines);
        if urgent {
            self.shared.thread.unpark();
        }
    }
}

/// A log target: a file path, or the process's stderr.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    File(PathBuf),
    Stderr,
}

/// The running writer: hands out sinks, reopens files, stops.
pub struct LogWriter {
    control: LogControl,
    handle: Option<JoinHandle<()>>,
}

/// Lets another thread (the signal handler) hand out sinks, add files on reload, and ask
/// for reopening or a final flush.
#[derive(Clone)]
pub struct LogControl(Arc<Shared>);

impl LogControl {
    /// Opens those of `targets` not open yet (append mode, created if missing), for a
    /// configuration about to be served. Fails with the path and the reason, opening none.
    pub fn open(&self, targets: &[Target]) -> Result<(), String> {
        let mut fresh = Vec::new();
        {
            let queues = self.0.queues.lock().unwrap_or_else(|e| e.into_inner());
            for t in targets {
                if let Target::File(path) = t {
                    if !queues.contains_key(t) && !fresh.iter().any(|(p, _)| p == path) {
                        fresh.push((path.clone(), open_log(path)?));
                    }
                }
            }
        }
        let mut queues = self.0.queues.lock().unwrap_or_else(|e| e.into_inner());
        let mut opened = self.0.opened.lock().unwrap_or_else(|e| e.into_inner());
        for (path, file) in fresh {
            let q = Arc::new(Queue::default());
            queues.insert(Target::File(path.clone()), q.clone());
            opened.push((q, Output::file(path, file)));
        }
        Ok(())
    }

    /// Forgets the files none of `targets` names: each is closed once the sinks still
    /// writing to it (requests of the old configuration) are gone.
    pub fn keep_only(&self, targets: &[Target]) {
        let mut queues = self.0.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.retain(|t, _| *t == Target::Stderr || targets.contains(t));
    }

    /// The sink for `target`, which must have been opened (anything else goes to stderr).
    pub fn sink(&self, target: &Target) -> Sink {
        let queues = self.0.queues.lock().unwrap_or_else(|e| e.into_inner());
        let queue = queues.get(target).or_else(|| queues.get(&Target::Stderr)).cloned().unwrap_or_default();
        Sink { queue, shared: self.0.clone() }
    }

    /// Reopens every file by its path (after logrotate moved them).
    pub fn reopen(&self) {
        self.0.reopen.store(true, Ordering::Release);
        self.0.thread.unpark();
    }

    /// Writes everything queued and ends the writer, waiting at most `limit`; for a
    /// process about to exit.
    pub fn flush_and_stop(&self, limit: Duration) {
        self.0.stop.store(true, Ordering::Release);
        self.0.thread.unpark();
        let deadline = std::time::Instant::now() + limit;
        while !self.0.finished.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl LogWriter {
    /// Opens every file (append mode, created if missing) and starts the writer thread.
    /// Fails with the path and the reason if a file cannot be opened.
    pub fn start(targets: &[Target]) -> Result<LogWriter, String> {
        let stderr_queue = Arc::new(Queue::default());
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Shared>>();
        let first = stderr_queue.clone();
        let handle = thread::Builder::new()
            .name("portico-log".into())
            .spawn(move || {
                let Ok(shared) = rx.recv() else { return };
                run(&shared, vec![(first, Output::stderr())]);
            })
            .map_err(|e| format!("cannot start the log writer thread: {e}"))?;
        let shared = Arc::new(Shared {
            thread: handle.thread().clone(),
            reopen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            queues: Mutex::new(HashMap::from([(Target::Stderr, stderr_queue)])),
            opened: Mutex::new(Vec::new()),
        });
        let writer = LogWriter { control: LogControl(shared.clone()), handle: Some(handle) };
        let _ = tx.send(shared);
        match writer.control.open(targets) {
            Ok(()) => Ok(writer),
            Err(e) => {
                writer.stop();
                Err(e)
            }
        }
    }

    /// The sink for `target`, which must have been opened (by [`LogWriter::start`] or
    /// [`LogControl::open`]; anything else goes to stderr).
    pub fn sink(&self, target: &Target) -> Sink {
        self.control.sink(target)
    }

    pub fn control(&self) -> LogControl {
        self.control.clone()
    }

    /// Writes everything queued and stops the thread.
    pub fn stop(mut self) {
        self.control.0.stop.store(true, Ordering::Release);
        self.control.0.thread.unpark();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn open_log(path: &Path) -> Result<File, String> {
    OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::NotFound => "; create its directory or change the path",
            io::ErrorKind::PermissionDenied => {
                "; check the directory's owner and mode against the user Portico runs as"
            }
            _ => "",
        };
        format!("cannot open log file {}: {e}{hint}", path.display())
    })
}

struct Output {
    path: Option<PathBuf>,
    out: Box<dyn Write + Send>,
    failing: bool,
}

impl Output {
    fn stderr() -> Output {
        Output { path: None, out: Box::new(io::stderr()), failing: false }
    }

    fn file(path: PathBuf, file: File) -> Output {
        Output { path: Some(path), out: Box::new(file), failing: false }
    }

    fn name(&self) -> String {
        self.path.as_ref().map_or_else(|| "stderr".to_string(), |p| p.display().to_string())
    }

    fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.out.write_all(bytes) {
            Ok(()) => self.failing = false,
            Err(e) => {
                if !self.failing {
                    eprintln!(
                        "portico: writing log {} failed: {e}; lines are lost until writing works again (serving continues)",
                        self.name()
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

fn run(shared: &Shared, mut outputs: Vec<(Arc<Queue>, Output)>) {
    let mut spare = Vec::new();
    loop {
        thread::park_timeout(FLUSH_INTERVAL);
        let stopping = shared.stop.load(Ordering::Acquire);
        let reopen = shared.reopen.swap(false, Ordering::AcqRel);
        outputs.append(&mut shared.opened.lock().unwrap_or_else(|e| e.into_inner()));
        for (queue, output) in &mut outputs {
            {
                let mut lines = queue.lines.lock().unwrap_or_else(|e| e.into_inner());
                std::mem::swap(&mut *lines, &mut spare);
            }
            output.write(&spare);
            spare.clear();
            if reopen {
                output.reopen();
            }
            let lost = queue.dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                eprintln!(
                    "portico: {lost} lines for log {} were dropped while its writer was behind",
                    output.name()
                );
            }
        }
        if stopping {
            shared.finished.store(true, Ordering::Release);
            return;
        }
        // a file no configuration names and no sink writes to any more (its queue was
        // just written): closed
        outputs.retain(|(queue, output)| output.path.is_none() || Arc::strong_count(queue) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn lines_reach_their_files_and_reopen_follows_rotation() {
        let dir = std::env::temp_dir().join(format!("portico-logw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.log");
        let w = LogWriter::start(&[Target::File(a.clone())]).unwrap();
        let sink = w.sink(&Target::File(a.clone()));
        sink.write(b"one\n");
        wait_for(&a, "one\n");
        std::fs::rename(&a, dir.join("a.log.1")).unwrap();
        w.control().reopen();
        // the reopen happens on the writer's next turn
        std::thread::sleep(FLUSH_INTERVAL * 3);
        sink.write(b"two\n");
        wait_for(&a, "two\n");
        assert_eq!(std::fs::read_to_string(dir.join("a.log.1")).unwrap(), "one\n");
        sink.write(b"three\n");
        w.stop();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "two\nthree\n", "stop writes what is queued");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_reload_opens_new_files_and_forgets_the_old_ones() {
        let dir = std::env::temp_dir().join(format!("portico-logw-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (Target::File(dir.join("a.log")), Target::File(dir.join("b.log")));
        let w = LogWriter::start(std::slice::from_ref(&a)).unwrap();
        let old = w.sink(&a);
        let control = w.control();
        control.open(&[a.clone(), b.clone()]).unwrap();
        control.keep_only(std::slice::from_ref(&b));
        // the old configuration's sink still writes to its file; the new one has its own
        old.write(b"old\n");
        control.sink(&b).write(b"new\n");
        wait_for(&dir.join("a.log"), "old\n");
        wait_for(&dir.join("b.log"), "new\n");
        // a forgotten target is no longer handed out
        control.sink(&a).write(b"to stderr\n");
        w.stop();
        assert_eq!(std::fs::read_to_string(dir.join("a.log")).unwrap(), "old\n");
        let e = control.open(&[Target::File("/nonexistent-dir/y.log".into())]).unwrap_err();
        assert!(e.contains("/nonexistent-dir/y.log"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unopenable_file_is_a_clear_error() {
        let e = LogWriter::start(&[Target::File("/nonexistent-dir/x.log".into())]).err().unwrap();
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
