//! HTTP/2 over TLS with real clients: curl (`--http2`) for files, ranges, HEAD, uWSGI
//! with request bodies of known and unknown length, and compression; the h2 crate as a
//! client for what curl cannot do on purpose: the rapid-reset pattern (streams opened
//! and reset until the connection is closed), a SETTINGS flood, the limits the server
//! advertises, the idle timeout. ALPN offers h2 only where a server says `http2`.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::tls::{client_config, Ca};
use common::uwsgi::Uwsgi;
use common::{Portico, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const SITE: &str = r#"
error_log = "{dir}/error.log"
error_log_level = "info"

[[server]]
listen = ["127.0.0.1:{port} ssl"]
server_name = ["a.test"]
default_server = true
http2 = true
keepalive_timeout = 2
ssl_certificate = "{dir}/a.pem"
ssl_certificate_key = "{dir}/a.key"
root = "{dir}/a"
access_log = "{dir}/access.log"
gzip = true
gzip_types = ["text/css"]

[[server.location]]
match = "/"

[[server.location]]
match = "/app/"
uwsgi_pass = "unix:{dir}/app.sock"

[[server]]
listen = ["127.0.0.1:{port} ssl"]
server_name = ["b.test"]
ssl_certificate = "{dir}/a.pem"
ssl_certificate_key = "{dir}/a.key"
root = "{dir}/a"

[[server.location]]
match = "/"
"#;

struct Stack {
    portico: Portico,
    _uwsgi: Uwsgi,
}

fn big() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

fn start() -> Stack {
    let d = TempDir::new("h2");
    let ca = Ca::new();
    ca.write_pem(d.path());
    ca.issue(d.path(), "a", &["a.test", "b.test", "127.0.0.1"]);
    d.write("a/index.html", "site a\n");
    d.write("a/big.bin", big());
    d.write("a/style.css", "body { color: red; }\n".repeat(500));
    let uwsgi = Uwsgi::start(&d.path().join("app.sock"), &[]);
    let portico = Portico::start_in(d, SITE, &[]);
    Stack { portico, _uwsgi: uwsgi }
}

fn have_curl() -> bool {
    if Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("HTTP2"))
    {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "curl with HTTP/2 is missing under CI (.ci/run installs it)");
    eprintln!("SKIPPED: curl with HTTP/2 is not installed");
    false
}

/// curl over HTTP/2 to `name` (resolved to the server); returns (HTTP version, headers,
/// body).
fn curl(s: &Stack, name: &str, path: &str, args: &[&str]) -> (String, String, Vec<u8>) {
    curl_in(s, name, path, args, std::process::Stdio::null())
}

/// As [`curl`], with `stdin` for `-T -`.
fn curl_in(
    s: &Stack,
    name: &str,
    path: &str,
    args: &[&str],
    stdin: impl Into<std::process::Stdio>,
) -> (String, String, Vec<u8>) {
    let port = s.portico.addr.port();
    let dir = s.portico.dir.path();
    let out = Command::new("curl")
        .args(["-sS", "--http2", "--cacert"])
        .arg(dir.join("ca.pem"))
        .args(["--resolve", &format!("{name}:{port}:127.0.0.1"), "-D"])
        .arg(dir.join("headers.txt"))
        .args(["-w", "%{stderr}%{http_version}"])
        .args(args)
        .arg(format!("https://{name}:{port}{path}"))
        .stdin(stdin)
        .output()
        .expect("curl");
    let log = || std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "curl {path}: {}\nerror.log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        log()
    );
    let headers = std::fs::read_to_string(dir.join("headers.txt")).unwrap_or_default();
    (String::from_utf8_lossy(&out.stderr).into_owned(), headers, out.stdout)
}

#[test]
fn files_ranges_and_head_over_http2() {
    if !have_curl() {
        return;
    }
    let s = start();
    // bigger than the stream's flow-control window: the response waits for WINDOW_UPDATEs
    let (version, headers, body) = curl(&s, "a.test", "/big.bin", &[]);
    assert_eq!(version, "2");
    assert!(headers.starts_with("HTTP/2 200"), "{headers}");
    assert!(headers.contains("content-length: 300000"), "{headers}");
    assert!(!headers.contains("connection:"), "no connection-specific fields: {headers}");
    assert_eq!(body, big());
    let (_, headers, body) = curl(&s, "a.test", "/big.bin", &["-r", "100-199"]);
    assert!(headers.starts_with("HTTP/2 206"), "{headers}");
    assert_eq!(body, big()[100..200]);
    let (_, headers, body) = curl(&s, "a.test", "/index.html", &["-I"]);
    assert!(headers.contains("content-length: 7"), "{headers}");
    assert!(!String::from_utf8_lossy(&body).contains("site a"), "no body for HEAD");
    let (_, headers, _) = curl(&s, "a.test", "/missing", &[]);
    assert!(headers.starts_with("HTTP/2 404"), "{headers}");
    let log =
        s.portico.wait_for_log(&s.portico.dir.path().join("access.log"), "\"GET /missing HTTP/2.0\" 404");
    assert!(log.contains("\"GET /big.bin HTTP/2.0\" 200 300000"), "{log}");
    assert!(log.contains("\"HEAD /index.html HTTP/2.0\" 200"), "{log}");
}

#[test]
fn alpn_offers_http2_only_where_a_server_says_so() {
    if !have_curl() {
        return;
    }
    let s = start();
    let (version, _, body) = curl(&s, "b.test", "/index.html", &[]);
    assert_eq!((version.as_str(), body.as_slice()), ("1.1", &b"site a\n"[..]));
}

#[test]
fn uwsgi_gets_http2_requests_with_their_bodies() {
    if !have_curl() {
        return;
    }
    let s = start();
    let upload: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let file = s.portico.dir.write("upload.bin", &upload);
    let digest = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(&upload))
    };
    let file_arg = format!("@{}", file.display());
    // a body of known length, after `100 Continue` (an interim HEADERS)
    let args = ["--data-binary", &file_arg, "-H", "Expect: 100-continue", "-H", "Cookie: a=1"];
    let (version, headers, body) = curl(&s, "a.test", "/app/echo", &args);
    assert_eq!(version, "2");
    assert!(headers.starts_with("HTTP/2 100"), "{headers}");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["body_len"], 1_000_000);
    assert_eq!(v["body_sha256"], digest.as_str());
    let env = &v["environ"];
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/2.0");
    assert_eq!(env["HTTPS"], "on");
    assert_eq!(env["wsgi.url_scheme"], "https");
    assert_eq!(env["HTTP_HOST"], format!("a.test:{}", s.portico.addr.port()).as_str());
    assert_eq!(env["HTTP_COOKIE"], "a=1");
    assert_eq!(env["REQUEST_METHOD"], "POST");
    // one of unknown length (`-T -`: DATA frames and no content-length; framed chunked
    // for the request steps), with a client's X-Forwarded-Proto that is not passed on
    let upload_file = std::fs::File::open(&file).expect("upload");
    let args = ["-T", "-", "-X", "POST", "-H", "X-Forwarded-Proto: http"];
    let (_, _, body) = curl_in(&s, "a.test", "/app/echo", &args, upload_file);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["body_len"], 1_000_000);
    assert_eq!(v["body_sha256"], digest.as_str());
    assert!(v["environ"].get("HTTP_X_FORWARDED_PROTO").is_none(), "{}", v["environ"]);
    s.portico.wait_for_log(&s.portico.dir.path().join("access.log"), "\"POST /app/echo HTTP/2.0\" 200");
}

#[test]
fn compression_over_http2() {
    if !have_curl() {
        return;
    }
    let s = start();
    let (_, headers, body) = curl(&s, "a.test", "/style.css", &["-H", "Accept-Encoding: gzip"]);
    assert!(headers.contains("content-encoding: gzip"), "{headers}");
    assert!(body.len() < 1000, "{}", body.len());
    let (_, headers, body) = curl(&s, "a.test", "/style.css", &["--compressed"]);
    assert!(headers.contains("content-encoding:"), "{headers}");
    assert_eq!(body, "body { color: red; }\n".repeat(500).as_bytes());
    // an app's streamed page, compressed on the fly (chunked for HTTP/1.1, plain DATA here)
    let (_, headers, body) = curl(&s, "a.test", "/app/page?n=50000&stream=1", &["--compressed"]);
    assert!(
        headers.contains("content-encoding:"),
        "{headers}\n{}",
        std::fs::read_to_string(s.portico.dir.path().join("error.log")).unwrap_or_default()
    );
    assert!(!headers.contains("transfer-encoding"), "{headers}");
    assert_eq!(body.len(), 50_000);
}

// --- the h2 crate as a client ---

async fn tls(addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("a.test").expect("name");
    let tls = TlsConnector::from(client_config(&[b"h2"])).connect(name, tcp).await.expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

type Client = (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<Result<(), h2::Error>>);

async fn h2_client(addr: SocketAddr) -> Client {
    let (send, conn) = h2::client::handshake(tls(addr).await).await.expect("h2 handshake");
    (send, tokio::spawn(conn))
}

fn get(path: &str) -> http::Request<()> {
    http::Request::get(format!("https://a.test{path}")).body(()).expect("request")
}

async fn status(send: &mut h2::client::SendRequest<Bytes>, path: &str) -> u16 {
    let (response, _) = send.send_request(get(path), true).expect("send");
    let response = response.await.expect("response");
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    status
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn the_rapid_reset_pattern_is_cut_off() {
    let s = start();
    let addr = s.portico.addr;
    runtime().block_on(async {
        // a browser's share of cancelled requests does not trip the bound
        let (mut send, conn) = h2_client(addr).await;
        for i in 0..300 {
            if i % 4 == 0 {
                let (_, mut stream) = send.send_request(get("/index.html"), false).expect("send");
                stream.send_reset(h2::Reason::CANCEL);
            } else {
                assert_eq!(status(&mut send, "/index.html").await, 200, "request {i}");
            }
        }
        drop(send);
        let _ = conn.await;

        // open and reset, as fast as the connection takes them
        let (mut send, conn) = h2_client(addr).await;
        let mut cut_at = None;
        for i in 0..1000 {
            let ready = tokio::time::timeout(Duration::from_secs(10), send.clone().ready()).await;
            let Ok(Ok(mut ready)) = ready else {
                cut_at = Some(i);
                break;
            };
            match ready.send_request(get("/app/echo"), false) {
                Ok((_, mut stream)) => {
                    // (the HEADERS go out first: a stream reset before then is never sent)
                    tokio::task::yield_now().await;
                    stream.send_reset(h2::Reason::CANCEL)
                }
                Err(_) => {
                    cut_at = Some(i);
                    break;
                }
            }
            send = ready;
        }
        let cut_at = cut_at.expect("1000 streams opened and reset and the connection still stands");
        // (the server cuts at its bound; the client learns of it a little later)
        assert!(cut_at < 600, "cut off only after {cut_at} resets");
        let _ = tokio::time::timeout(Duration::from_secs(10), conn).await.expect("the connection ends");
        // the server goes on serving others
        let (mut send, _conn) = h2_client(addr).await;
        assert_eq!(status(&mut send, "/index.html").await, 200);
    });
    s.portico.wait_for_log(
        &s.portico.dir.path().join("error.log"),
        "http2 flood detected: client reset too many streams",
    );
}

#[test]
fn a_settings_flood_closes_the_connection() {
    let s = start();
    let addr = s.portico.addr;
    runtime().block_on(async {
        let mut t = tls(addr).await;
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for _ in 0..200 {
            // an empty SETTINGS frame: length 0, type 4, no flags, stream 0
            bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        }
        let _ = t.write_all(&bytes).await;
        let mut buf = vec![0u8; 65536];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match t.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the connection was not closed");
    });
    s.portico.wait_for_log(&s.portico.dir.path().join("error.log"), "too many SETTINGS frames");
}

#[test]
fn limits_and_the_idle_timeout() {
    let s = start();
    let addr = s.portico.addr;
    runtime().block_on(async {
        let (mut send, conn) = h2_client(addr).await;
        assert_eq!(status(&mut send, "/index.html").await, 200);
        assert_eq!(send.current_max_send_streams(), 128);
        // a header list larger than an HTTP/1.1 head may be is refused, the connection stays
        let mut big = get("/index.html");
        big.headers_mut().insert("x-big", http::HeaderValue::from_str(&"a".repeat(40_000)).expect("value"));
        let refused = match send.send_request(big, true) {
            Ok((response, _)) => response.await.map(|r| r.status().as_u16()),
            Err(e) => Err(e),
        };
        assert!(!matches!(refused, Ok(200)), "{refused:?}");
        assert_eq!(status(&mut send, "/index.html").await, 200);
        // keepalive_timeout = 2: with no stream open the server says GOAWAY and closes
        let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
        assert!(ended.is_ok(), "the idle connection was not closed");
    });
}
