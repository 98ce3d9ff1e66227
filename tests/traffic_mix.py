"""Run inside a test namespace: make a real mix of flows on loopback, then hold them.

Usage: python3 -m tests.traffic_mix HOLD_SECONDS
Prints READY once every flow exists; keeps the established connection open until killed.
"""

from __future__ import annotations

import socket
import sys
import threading
import time


def udp_echo(family: int, addr: str, port: int) -> None:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)


def tcp_server(port: int, hold: list[socket.socket] | None) -> None:
    """Greets each client; keeps the connection if ``hold`` is given, else closes once the client has."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(64)
    while True:
        c, _ = srv.accept()
        c.sendall(b"hello")
        if hold is not None:
            hold.append(c)
        else:
            c.recv(10)
            c.close()


def main() -> None:
    hold_s = float(sys.argv[1])
    held: list[socket.socket] = []
    for target, args in ((udp_echo, (socket.AF_INET, "127.0.0.1", 5353)),
                         (udp_echo, (socket.AF_INET6, "::1", 5353)),
                         (tcp_server, (8080, held)), (tcp_server, (8081, None))):
        threading.Thread(target=target, args=args, daemon=True).start()
    time.sleep(0.3)
    # ESTABLISHED (and, through the nft DNAT rule for port 8090, a DNAT'd one)
    for port, addr in ((8080, "127.0.0.1"), (8090, "127.0.0.3")):
        c = socket.create_connection((addr, port))
        c.recv(5)
        held.append(c)
    # TIME_WAIT: the client closes first
    for _ in range(3):
        c = socket.create_connection(("127.0.0.1", 8081))
        c.recv(5)
        c.close()
    # SYN_SENT: an nft rule drops SYNs to port 9
    for _ in range(2):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", 9))
        except BlockingIOError:
            pass
        held.append(c)
    # UDP replied (v4 and v6) and unreplied
    for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.settimeout(2)
        u.sendto(b"q", (addr, 5353))
        u.recvfrom(10)
        held.append(u)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for port in (7001, 7002, 7003):
        u.sendto(b"x", ("127.0.0.1", port))
    time.sleep(0.5)
    print("READY", flush=True)
    time.sleep(hold_s)


if __name__ == "__main__":
    main()
