"""Health checks: each returns None when healthy, else a one-line reason.

Protocol-level where it is cheap (an HTTP status, MySQL's greeting, AMQP's Connection.Start,
a DNS answer), so "ready" means the service answers, not merely that its port is bound.
"""

from __future__ import annotations

import http.client
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

Check = Callable[[], "str | None"]


@dataclass(frozen=True)
class Http:
    host: str
    port: int
    path: str = "/"
    timeout: float = 10.0

    def __call__(self) -> str | None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("GET", self.path, headers={"Accept": "application/json"})
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException) as e:
            return f"{self.describe()}: {e or type(e).__name__}"
        finally:
            conn.close()
        # an API's version document answers 200 or 300 (Multiple Choices)
        return None if 200 <= status < 400 else f"GET {self.describe()}: HTTP {status}"

    def describe(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"


def _recv_some(host: str, port: int, send: bytes, timeout: float) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as s:
        if send:
            s.sendall(send)
        return s.recv(64)


@dataclass(frozen=True)
class MySQL:
    host: str
    port: int

    def __call__(self) -> str | None:
        try:
            greeting = _recv_some(self.host, self.port, b"", 3.0)
        except OSError as e:
            return f"{self.describe()}: {e}"
        # a packet header (4 bytes) then protocol version 10; 0xff would be an error packet
        if len(greeting) > 4 and greeting[4] == 10:
            return None
        if len(greeting) > 7 and greeting[4] == 0xFF:  # error packet: code, then the message
            # 1130 "host not allowed": the server answers, the lab's user is not made yet
            if int.from_bytes(greeting[5:7], "little") == 1130:
                return None
            return f"{self.describe()}: {greeting[7:].decode(errors='replace')}"
        return f"{self.describe()}: unexpected greeting"

    def describe(self) -> str:
        return f"mysql {self.host}:{self.port}"


@dataclass(frozen=True)
class Amqp:
    host: str
    port: int

    def __call__(self) -> str | None:
        try:
            frame = _recv_some(self.host, self.port, b"AMQP\x00\x00\x09\x01", 3.0)
        except OSError as e:
            return f"{self.describe()}: {e}"
        # method frame (type 1) carrying Connection.Start (class 10, method 10)
        if len(frame) >= 11 and frame[0] == 1 and frame[7:11] == b"\x00\x0a\x00\x0a":
            return None
        return f"{self.describe()}: no Connection.Start"

    def describe(self) -> str:
        return f"amqp {self.host}:{self.port}"


def dns_query(name: str, qtype: int = 6, qclass: int = 1) -> tuple[int, bytes]:
    """A minimal DNS query packet (default SOA IN): (id, packet)."""
    qid = int.from_bytes(os.urandom(2), "big")
    header = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)  # no recursion desired
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".") if p)
    return qid, header + qname + b"\x00" + struct.pack(">HH", qtype, qclass)


@dataclass(frozen=True)
class Dns:
    host: str
    port: int
    name: str = "version.bind"
    qclass: int = 3  # CHAOS: answered by BIND9 and designate-mdns alike (even REFUSED counts)

    def __call__(self) -> str | None:
        qid, packet = dns_query(self.name, qtype=16, qclass=self.qclass)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(3.0)
                s.sendto(packet, (self.host, self.port))
                answer = s.recv(512)
        except OSError as e:
            return f"{self.describe()}: {e}"
        if len(answer) >= 2 and int.from_bytes(answer[:2], "big") == qid:
            return None
        return f"{self.describe()}: no answer"

    def describe(self) -> str:
        return f"dns {self.host}:{self.port}"


@dataclass(frozen=True)
class Tcp:
    host: str
    port: int

    def __call__(self) -> str | None:
        try:
            socket.create_connection((self.host, self.port), timeout=3.0).close()
        except OSError as e:
            return f"{self.describe()}: {e}"
        return None

    def describe(self) -> str:
        return f"tcp {self.host}:{self.port}"


@dataclass(frozen=True)
class AllOf:
    """Healthy when every check is (BIND9: on loopback and on the lab's services network)."""

    checks: tuple[Http | MySQL | Amqp | Dns | Tcp, ...]

    def __call__(self) -> str | None:
        for check in self.checks:
            reason = check()
            if reason is not None:
                return reason
        return None

    def describe(self) -> str:
        return " + ".join(c.describe() for c in self.checks)
