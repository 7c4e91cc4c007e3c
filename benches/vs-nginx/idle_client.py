"""Holds idle keep-alive connections to a server on 127.0.0.1, for the memory cases.

    idle_client.py PORT PATH TIMEOUT COUNT...

Opens connections in batches (each batch within the listen backlog), sends one
`GET PATH` on each and reads each 200 response completely, prints "ready N" once N are
open and idle, and waits for a line on stdin before going on to the next count; after the
last one, stdin's end (or the alarm after TIMEOUT seconds) makes it close everything.
Run as its own process so that it can be pinned to the client's CPU.
"""

import re
import resource
import signal
import socket
import struct
import sys

port, path, timeout = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
counts = [int(c) for c in sys.argv[4:]]
signal.alarm(timeout)  # bounded whatever the server does: SIGALRM ends the process, closing all
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < counts[-1] + 100:
    sys.exit(f"idle client: fd limit {soft} is too low for {counts[-1]} connections")
# 10 000 connections fit in the default ephemeral range from 127.0.0.1 alone; with a small
# range they are spread over 127.0.0.2.. so that each address uses at most half of it
low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
sources = 1 + counts[-1] // ((high - low + 1) // 2)
IP_BIND_ADDRESS_NO_PORT = 24  # the port is chosen at connect, per destination
request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def connect(i):
    s = socket.socket()
    s.settimeout(10)
    if sources > 1:
        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((f"127.0.0.{2 + i % sources}", 0))
    s.connect(("127.0.0.1", port))
    s.sendall(request)
    return s


def read_response(s, i):
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(f"idle client: connection {i} was closed before its response was complete")
        buf += chunk
        head, sep, body = buf.partition(b"\r\n\r\n")
        if sep:
            if not head.startswith(b"HTTP/1.1 200 "):
                sys.exit(f"idle client: connection {i}: {head.splitlines()[0]!r}")
            length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
            if len(body) >= length:
                return


socks = []
for count in counts:
    while len(socks) < count:
        batch = [connect(len(socks) + k) for k in range(min(256, count - len(socks)))]
        for k, s in enumerate(batch):
            read_response(s, len(socks) + k)
        socks += batch
    print(f"ready {count}", flush=True)
    sys.stdin.readline()
# abortive close (RST): no TIME_WAIT left to crowd the ports of the next server and round
for s in socks:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
