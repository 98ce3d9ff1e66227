"""A tiny FTP control-channel server and client, just enough for the kernel's FTP helper to make expectations.

The helper reads the server's ``227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`` (or ``229 … (|||port|)`` to
EPSV) on a control flow it is attached to, and adds an expectation for the data connection. No data
connection is ever made: the expectation stays in the table until it times out (5 minutes) or the test ends.

    python -m tests.ftp_helper server HOST:PORT [HOST:PORT...]   prints READY once listening
    python -m tests.ftp_helper client HOST PORT pasv|epsv        prints the reply, then holds the flow open
"""

from __future__ import annotations

import socket
import sys
import threading
import time


def _serve_one(conn: socket.socket, host: str) -> None:
    data = socket.socket(conn.family)
    data.bind((host, 0))  # a real free port, so the expectation names one nobody else uses
    data.listen(1)
    port = data.getsockname()[1]
    with conn:
        conn.sendall(b"220 cttop test\r\n")
        for line in conn.makefile("rb"):
            cmd = line.strip().upper()
            if cmd == b"PASV":
                h = host.replace(".", ",")
                conn.sendall(f"227 Entering Passive Mode ({h},{port >> 8},{port & 0xFF})\r\n".encode())
            elif cmd == b"EPSV":
                conn.sendall(f"229 Entering Extended Passive Mode (|||{port}|)\r\n".encode())
            elif cmd == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"502 not here\r\n")


def _accept(srv: socket.socket, host: str) -> None:
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_serve_one, args=(conn, host), daemon=True).start()


def server(addrs: list[str]) -> None:
    for a in addrs:
        host, _, port = a.rpartition(":")
        host = host.strip("[]")
        srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, int(port)))  # in this thread: a failure ends the server before READY
        srv.listen(16)
        threading.Thread(target=_accept, args=(srv, host), daemon=True).start()
    print("READY", flush=True)
    while True:
        time.sleep(60)


def client(host: str, port: int, verb: str) -> None:
    c = socket.create_connection((host, port))
    f = c.makefile("rb")
    f.readline()
    c.sendall(verb.upper().encode() + b"\r\n")
    print(f.readline().decode().strip(), flush=True)
    while True:  # hold the control flow open: its expectation lives as long as the test wants
        time.sleep(60)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2:])
    else:
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4])
