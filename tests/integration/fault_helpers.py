"""Helpers for test_faults.py: misbehaving peers and process measurements.

- BlackholeServer: a TCP listener on 127.0.0.1 that accepts connections and never says a word
  (a PostgreSQL that hangs before its first byte).
- FakeDNS: a UDP DNS server on 127.0.0.1 that answers every query with one fixed RCODE
  (NXDOMAIN by default); pointed to by a private resolv.conf ("nameserver 127.0.0.1:PORT",
  which libevent's evdns understands).
- rss_kb / fd_count / fd_targets: from /proc of a process we started.
- raw protocol helpers on top of harness.RawConn.
"""

import os
import socket
import struct
import threading
import time

import harness


class BlackholeServer:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.received = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            c.setblocking(False)
            self.accepted.append(c)
            for s in list(self.accepted):
                try:
                    d = s.recv(65536)
                    self.received += len(d)
                except OSError:
                    pass

    def close(self):
        self._stop.set()
        self._t.join(5)
        for c in self.accepted:
            c.close()
        self.sock.close()


class FakeDNS:
    """Answers every query with rcode (3 = NXDOMAIN, 2 = SERVFAIL) and no records."""

    def __init__(self, rcode=3):
        self.rcode = rcode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                continue
            if len(data) < 12:
                continue
            qid, flags, qd = struct.unpack("!HHH", data[:6])
            self.queries.append(data[12:])
            # response: same id, QR=1, opcode copied, RD copied, RA=1, rcode; the question echoed
            rflags = 0x8000 | (flags & 0x7900) | 0x0080 | self.rcode
            self.sock.sendto(struct.pack("!HHHHHH", qid, rflags, qd, 0, 0, 0) + data[12:], addr)

    def write_resolv_conf(self, directory):
        path = os.path.join(directory, "resolv.conf")
        with open(path, "w") as f:
            f.write(f"nameserver 127.0.0.1:{self.port}\noptions timeout:1 attempts:1\n")
        harness.give_to_daemon_user(path)
        return path

    def close(self):
        self._stop.set()
        self._t.join(5)
        self.sock.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid):
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = t.split(":")[0] if ":" in t else t
        out[kind] = out.get(kind, 0) + 1
    return out


def be32(n):
    return struct.pack("!I", n & 0xFFFFFFFF)


def startup_packet(user, database, params=None, version=196608):
    kv = {"user": user, "database": database}
    kv.update(params or {})
    body = be32(version) + b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in kv.items()) + b"\0"
    return be32(len(body) + 4) + body


def read_until_close(sock, timeout=10, limit=1 << 20):
    """Everything the peer sends until it closes (or timeout); returns (bytes, closed)."""
    sock.settimeout(0.5)
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(buf) < limit:
        try:
            d = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return buf, True
        if not d:
            return buf, True
        buf += d
    return buf, False


def parse_messages(buf):
    """Split backend bytes into (type, body) pairs; a lone leading 'N' (SSL refused) is kept."""
    out = []
    pos = 0
    while pos + 5 <= len(buf):
        t = buf[pos:pos + 1]
        ln = struct.unpack("!I", buf[pos + 1:pos + 5])[0]
        if ln < 4 or pos + 1 + ln > len(buf):
            break
        out.append((t, buf[pos + 5:pos + 1 + ln]))
        pos += 1 + ln
    return out


def error_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def describe(buf, closed=True):
    """Human summary of what a raw client received: 'FATAL 08P01 msg; closed'."""
    parts = []
    for t, body in parse_messages(buf):
        if t in (b"E", b"N"):
            f = error_fields(body)
            parts.append(f"{f.get('S')} {f.get('C')} {f.get('M')}")
        elif t == b"R":
            parts.append(f"AuthenticationRequest {struct.unpack('!I', body[:4])[0]}")
        else:
            parts.append(t.decode("latin1"))
    if not parts and buf:
        parts.append(repr(buf[:40]))
    if closed:
        parts.append("connection closed")
    return "; ".join(parts) if parts else "nothing"
