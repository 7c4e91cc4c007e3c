"""What Portico's load scripts share: `benches/vs-nginx/run` (Portico against nginx) and
`benches/soak` (load and soak).

The fixture tree and Portico's configuration for it, a real uWSGI running hello.py,
waiting for sockets, readings from /proc, the fd limit, wrk's report, and the client that
holds idle keep-alive connections. Not the servers' lifecycles: each script starts and
stops its own. A failure raises BenchError with a sentence saying what went wrong.
"""

import os
import random
import re
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# nginx's open_file_cache and Portico's equivalent, the same for both servers.
OPEN_FILE_CACHE_MAX, OPEN_FILE_CACHE_INACTIVE, OPEN_FILE_CACHE_VALID = 1000, "20s", "60s"
# Long enough that no idle connection is closed while a memory case holds it.
KEEPALIVE_TIMEOUT_S = 300
# What each idle keep-alive connection asks for before it is left idle.
IDLE_PATH = "/static/1k.txt"


class BenchError(Exception):
    """A load script cannot go on; the message says what failed."""


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} did not listen on {port}")


def wait_unix(path, what):
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(path))
            s.close()
            return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{what} is not listening on {path}")


def fixture(work):
    """A static tree with 1 KB, 100 KB and 10 MB files, 100 KB of CSS and a 15 KB HTML page
    (for gzip), and a theme tree for the regex alias, under `work`; returns the static root."""
    root = work / "root"
    (root / "static").mkdir(parents=True)
    (work / "themes/aurora/static/css").mkdir(parents=True)
    (root / "index.html").write_bytes(b"<h1>bench</h1>\n")
    (root / "static/1k.txt").write_bytes(b"x" * 1023 + b"\n")
    (root / "static/100k.bin").write_bytes(os.urandom(100 * 1024))
    (root / "static/10m.bin").write_bytes(os.urandom(10 * 1024 * 1024))
    (root / "static/100k.css").write_bytes(stylesheet(100 * 1024))
    (root / "static/page.html").write_bytes(html_page(15 * 1024))
    (work / "themes/aurora/static/css/theme.css").write_bytes(b"h1 { color: #123; }\n" * 51)
    (work / "logs").mkdir()
    return root


def stylesheet(size):
    """`size` bytes of CSS that compresses as a real stylesheet does (about 5:1 with gzip
    -1), the same every run."""
    rnd = random.Random(11)
    props = ["color", "margin", "padding", "border", "font-size", "line-height", "background", "width", "display"]
    values = ["0", "auto", "1px solid #ddd", "1.5em", "none", "block", "inherit", "100%", "#333"]
    out = []
    while sum(map(len, out)) < size:
        sel = f".{rnd.choice(['nav', 'post', 'forum', 'topic', 'user', 'btn'])}-{rnd.randrange(2000)}"
        body = "; ".join(f"{rnd.choice(props)}: {rnd.choice(values)}" for _ in range(rnd.randrange(2, 7)))
        out.append(f"{sel} {{ {body}; }}\n")
    return "".join(out).encode()[:size]


def html_page(size):
    """`size` bytes of forum-like HTML (FlaskBB's index is 15 KB), the same every run."""
    rnd = random.Random(7)
    words = "topic post reply forum user thread welcome general news help rules moderator".split()
    out = ["<!DOCTYPE html>\n<html><head><title>Forum</title></head><body>\n"]
    while sum(map(len, out)) < size:
        title = " ".join(rnd.choice(words) for _ in range(rnd.randrange(2, 6)))
        out.append(
            f'<div class="topic-row"><a href="/topic/{rnd.randrange(9999)}-{title.replace(" ", "-")}">{title}</a>'
            f'<span class="meta">by <a href="/user/{rnd.randrange(999)}">user{rnd.randrange(999)}</a>, '
            f'{rnd.randrange(1, 28)} days ago</span><span class="count">{rnd.randrange(500)}</span></div>\n'
        )
    return "".join(out).encode()[:size]


def portico_conf(work, root, port, hello, worker_threads=1, flaskbb=None, fb_port=None, tls=None):
    """Portico's site for the fixture: /static by alias, the theme by the seed's regex
    alias, /hello and try_files misses to uWSGI at `hello`; FlaskBB on `fb_port` if given;
    with `tls` = (port, certificate, key), the same site over TLSv1.3 on that port too."""
    tls_listen = tls_keys = ""
    if tls:
        tls_port, cert, key = tls
        # its own port: Portico wants every listen entry of one port to agree on `ssl`
        tls_listen = f', "127.0.0.1:{tls_port} ssl"'
        tls_keys = f'ssl_certificate = "{cert}"\nssl_certificate_key = "{key}"\nssl_protocols = ["TLSv1.3"]\n'
    fb = ""
    if flaskbb:
        fb = f"""
[[server]]
listen = ["127.0.0.1:{fb_port}"]
server_name = ["localhost"]
access_log = "{work}/logs/portico-fb-access.log"
gzip = true
[[server.location]]
match = "/"
uwsgi_pass = "unix:{flaskbb}"
"""
    # started as root, Portico must be told to stay root (it refuses to by accident); as
    # any other user it serves as that user anyway
    user = 'user = "root"' if os.geteuid() == 0 else ""
    return f"""
{user}
worker_threads = {worker_threads}
keepalive_timeout = "{KEEPALIVE_TIMEOUT_S}s"
log_format.main = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'

[[server]]
listen = ["127.0.0.1:{port}"{tls_listen}]
server_name = ["localhost"]
{tls_keys}root = "{root}"
access_log = "{work}/logs/portico-access.log"
error_log = "{work}/logs/portico-error.log"
open_file_cache = "max={OPEN_FILE_CACHE_MAX} inactive={OPEN_FILE_CACHE_INACTIVE}"
open_file_cache_valid = "{OPEN_FILE_CACHE_VALID}"
open_file_cache_errors = true
# as the nginx side: gzip at level 1 for HTML and CSS, Vary on
gzip = true
gzip_types = ["text/css"]

[[server.location]]
match = "/"
try_files = ["$uri", "@hello"]

[[server.location]]
match = "/static"
alias = "{root}/static/"

[[server.location]]
match = "~ ^/_themes/([^/]+)/(.*)$"
alias = "{work}/themes/$1/static/$2"

[[server.location]]
match = "= /hello"
uwsgi_pass = "unix:{hello}"

[[server.location]]
match = "@hello"
uwsgi_pass = "unix:{hello}"
{fb}"""


def start_uwsgi(args, log_path, cpu=None):
    pin = ["taskset", "-c", cpu] if cpu else []
    return subprocess.Popen(
        [*pin, str(REPO / ".venv/bin/uwsgi"), *args, "--disable-logging", "--logto", str(log_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def hello_uwsgi_args(socket_path):
    """uWSGI running hello.py on a Unix socket: two workers, a listen queue deep enough for
    every connection the load cases keep in flight."""
    return ["--socket", str(socket_path), "--wsgi-file", str(HERE / "hello.py"), "--master", "--processes", "2", "--listen", "1024"]


def stop(proc):
    proc.send_signal(2)  # SIGINT: Portico, nginx and uWSGI all stop at once
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def status_kib(pids, key):
    """The sum of a /proc/PID/status field (VmRSS, VmHWM) over `pids`, in KiB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def fd_count(pid):
    """Open file descriptors of `pid` (its /proc/PID/fd entries)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_fd_limit(need):
    """Raises the soft fd limit, which the servers and clients started from here inherit
    (Portico has no setting for it: like most servers it takes what it is started with);
    returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    if want < need:
        raise BenchError(f"{need} fds are needed, the hard limit is {hard} (raise it: ulimit -Hn {need})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    return max(soft, want)


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        print(f"unreadable latency from wrk: {text!r}", file=sys.stderr)
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return {"us": v / 1000, "ms": v, "s": v * 1000, "m": v * 60000}[unit]


def parse_wrk(out):
    """wrk's report (run with --latency): requests, req/s, p50/p99 ms, non-2xx/3xx
    responses and its socket error counters by kind."""
    done = re.search(r"(\d+) requests in", out)
    if not done:
        raise BenchError(f"wrk printed no report:\n{out}")
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non_2xx_3xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = dict(zip(("connect", "read", "write", "timeout"), (int(x) for x in m.groups()) if m else (0, 0, 0, 0)))
    return {
        "requests": int(done.group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": to_ms(re.search(r"50%\s+(\S+)", out).group(1)),
        "p99": to_ms(re.search(r"99%\s+(\S+)", out).group(1)),
        "non_2xx_3xx": non_2xx_3xx,
        "socket_errors": socket_errors,
    }


def hold_idle(port, counts, at_each, timeout, what, cpu=None):
    """Opens idle keep-alive connections to `port` (one `GET IDLE_PATH` each), up to each of
    `counts` in turn, and calls `at_each(count)` while that many are held; closes them all
    (RST) before returning. The client process gives up after `timeout` seconds."""
    pin = ["taskset", "-c", cpu] if cpu else []
    client = subprocess.Popen(
        [*pin, sys.executable, str(HERE / "idle_client.py"), str(port), IDLE_PATH, str(timeout), *map(str, counts)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for count in counts:
            line = client.stdout.readline().strip()  # bounded by the client's own alarm
            if line != f"ready {count}":
                raise BenchError(f"the idle client failed against {what} before holding {count} connections (exit {client.wait()})")
            at_each(count)
            client.stdin.write("next\n")
            client.stdin.flush()
        client.stdin.close()
        client.wait(30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
