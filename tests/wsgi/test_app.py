"""The WSGI app the forwarding tests run under a real uWSGI.

Routes, by the last path segment:
  /echo (and anything else)  JSON: the environ's str values, the body's length and sha256
  /stream?n=N&size=S         N chunks of S bytes from a generator, no Content-Length
  /big?n=N                   N bytes of a repeating pattern, with Content-Length
  /sleep?secs=S[&mark=PATH]  answers after S seconds (first creating PATH, so a test can
                             see the request has arrived)
  /crash                     raises before start_response (uWSGI writes nothing)
  /cookies                   three Set-Cookie headers and a repeated X-Multi
  /noread                    answers without reading the request body
  /status?code=N             that status, with a small body (none for 204/304)
  /te                        the app sets Transfer-Encoding: chunked itself
  /die?n=N                   promises N bytes, sends half, then the worker dies
  /page?n=N[&type=T][&status=S][&h=Name:value...][&stream=1]
                             N bytes of HTML-like text (page_text in the tests), with the
                             given type, status and headers; Content-Length unless stream=1
                             (then 4 KiB pieces from a generator)
"""
import hashlib
import json
import os
import time
from urllib.parse import parse_qs

PATTERN = bytes(range(256)) * 256  # 64 KiB


def arg(environ, name, default):
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return values[0] if values else default


def pattern(n):
    full, rest = divmod(n, len(PATTERN))
    for _ in range(full):
        yield PATTERN
    if rest:
        yield PATTERN[:rest]


def application(environ, start_response):
    route = "/" + environ.get("PATH_INFO", "").rstrip("/").rsplit("/", 1)[-1]

    if route == "/stream":
        n, size = int(arg(environ, "n", "3")), int(arg(environ, "size", "8"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (bytes([65 + i % 26]) * size for i in range(n))

    if route == "/big":
        n = int(arg(environ, "n", "1000"))
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
        return pattern(n)

    if route == "/sleep":
        mark = arg(environ, "mark", "")
        if mark:
            open(mark, "w").close()
        time.sleep(float(arg(environ, "secs", "2")))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
        return [b"slept\n"]

    if route == "/crash":
        raise RuntimeError("crash before start_response")

    if route == "/cookies":
        start_response("200 OK", [
            ("Content-Type", "text/plain"),
            ("Set-Cookie", "a=1; Path=/"),
            ("Set-Cookie", "b=2; Path=/; HttpOnly"),
            ("Set-Cookie", "c=3; Path=/"),
            ("X-Multi", "one"),
            ("X-Multi", "two"),
            ("Content-Length", "3"),
        ])
        return [b"ok\n"]

    if route == "/cached":
        start_response("200 OK", [
            ("Content-Type", "text/plain"),
            ("Cache-Control", "private, max-age=60"),
            ("Expires", "Mon, 01 Jan 2001 00:00:00 GMT"),
            ("Content-Length", "3"),
        ])
        return [b"ok\n"]

    if route == "/noread":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "8")])
        return [b"ignored\n"]

    if route == "/status":
        code = int(arg(environ, "code", "404"))
        body = b"" if code in (204, 304) else b"status %d\n" % code
        headers = [("Content-Type", "text/plain")]
        if body:
            headers.append(("Content-Length", str(len(body))))
        start_response("%d Custom Reason" % code, headers)
        return [body]

    if route == "/te":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")])
        return [b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"]

    if route == "/die":
        n = int(arg(environ, "n", "1000000"))
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])

        def half_then_die():
            yield b"x" * (n // 2)
            os._exit(1)
        return half_then_die()

    if route == "/page":
        n = int(arg(environ, "n", "20000"))
        body = b"".join(b"<p>line %d of the page</p>\n" % i for i in range(n // 20 + 1))[:n]
        headers = [("Content-Type", arg(environ, "type", "text/html; charset=utf-8"))]
        for h in parse_qs(environ.get("QUERY_STRING", "")).get("h", []):
            name, _, value = h.partition(":")
            headers.append((name, value))
        status = arg(environ, "status", "200 OK")
        if arg(environ, "stream", "") == "":
            headers.append(("Content-Length", str(len(body))))
            start_response(status, headers)
            return [body]
        start_response(status, headers)
        return (body[i:i + 4096] for i in range(0, len(body), 4096))

    body = environ["wsgi.input"].read()
    env = {k: v for k, v in environ.items() if isinstance(v, str)}
    data = json.dumps({
        "environ": env,
        "body_len": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
