"""A tiny DNS server answering PTR queries from a table, for the reverse-DNS tests.

    FakeDNS(names, host, port)   start it in a thread (in the caller's namespace)
    python -m tests.dns_server HOST PORT ADDR=NAME...   run it as a process (prints READY)

Answers use a compression pointer back to the question, as real servers do; an address it has no
name for gets NXDOMAIN. ``queries`` counts what it was asked, per name.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from collections import Counter

from cttop.live.resolve import ptr_name


class FakeDNS:
    def __init__(self, names: dict[str, str], host: str = "127.0.0.1", port: int = 0,
                 gate: threading.Event | None = None) -> None:
        self.names = {ptr_name(socket.inet_pton(socket.AF_INET6 if ":" in a else socket.AF_INET, a)): n
                      for a, n in names.items()}
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)  # so close() is noticed: closing a socket does not wake a blocked recvfrom
        self.port = self.sock.getsockname()[1]
        self.gate = gate  # when given, every answer waits until it is set
        self.queries: Counter[str] = Counter()
        self.clients: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                msg, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            qid = struct.unpack_from(">H", msg)[0]
            labels, pos = [], 12
            while msg[pos]:
                labels.append(msg[pos + 1:pos + 1 + msg[pos]].decode())
                pos += 1 + msg[pos]
            question = msg[12:pos + 5]
            qname = ".".join(labels)
            self.queries[qname] += 1
            self.clients.add(peer[:2])
            if self.gate is not None:
                self.gate.wait()
            name = self.names.get(qname)
            if name is None:
                reply = struct.pack(">HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
            else:
                rdata = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
                answer = struct.pack(">HHHIH", 0xC00C, 12, 1, 120, len(rdata)) + rdata
                reply = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + answer
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        if self.gate is not None:
            self.gate.set()
        self._thread.join(2)
        self.sock.close()


if __name__ == "__main__":
    table = dict(a.split("=", 1) for a in sys.argv[3:])
    server = FakeDNS(table, sys.argv[1], int(sys.argv[2]))
    print("READY", flush=True)
    threading.Event().wait()
