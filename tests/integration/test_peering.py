"""Peering: three processes share one TCP port (so_reuseport), each with its own peer_id and a
[peers] section naming the others by Unix socket. A cancel request reaching any of them finds
the process that issued the key, whose id is inside it."""

import os
import shutil
import socket
import struct
import threading
import time

import psycopg
import pytest

import harness
from harness import APP_PASSWORD, APP_USER, RawConn, WireError

pytestmark = pytest.mark.tidepool_only(reason="run against tidepool's own binary")

IDS = (1, 2, 3)
ADMIN = {"admin_users": "postgres"}
USERS = {APP_USER: APP_PASSWORD, "postgres": "adminpw"}


def peers_section(daemons, skip=None):
    lines = ["[peers]"]
    for pid, d in daemons.items():
        if pid != skip:
            lines.append(f"{pid} = host={d.dir} port={d.port}")
    return "\n".join(lines) + "\n"


def write_ini(d, own, daemons, with_own=False):
    settings = d.default_settings()
    settings.update({"so_reuseport": "1", "peer_id": str(own), **ADMIN})
    text = harness.format_ini(d.default_databases(), settings)
    d.rewrite_ini(raw_ini=text + peers_section(daemons, None if with_own else own),
                  userlist=USERS)


def socket_path(d):
    return os.path.join(d.dir, f".s.PGSQL.{d.port}")


@pytest.fixture
def group(tidepool):
    port = harness.free_port()
    daemons = {i: tidepool(start=False, port=port) for i in IDS}
    for i, d in daemons.items():
        write_ini(d, i, daemons)
    for d in daemons.values():
        d.spawn()
        # the shared port answers as soon as the first one listens: wait for each one's socket
        harness.wait_until(lambda: os.path.exists(socket_path(d)) or not d.alive(), 15,
                           what="Unix socket")
        assert d.alive(), d.log()[-3000:]
    return daemons


def login(d):
    c = RawConn(d.dir, d.port)
    c.startup(APP_USER, "appdb", APP_PASSWORD)
    return c


def send_cancel(d, pid, key):
    """A CancelRequest over d's own Unix socket; returns once d closed it."""
    c = RawConn(d.dir, d.port)
    c.sock.sendall(struct.pack("!IIII", 16, 80877102, pid, key))
    assert c.sock.recv(1) == b""
    c.sock.close()


def run_sleep(conn, seconds):
    """Run pg_sleep in a thread; the result is 'done', the SQLSTATE of its error, or an exception."""
    out = {}

    def body():
        try:
            conn.query(f"SELECT pg_sleep({seconds})")
            out["r"] = "done"
        except WireError as e:
            out["r"] = e.sqlstate
        except Exception as e:  # noqa: BLE001 - reported by the assertion
            out["r"] = repr(e)

    t = threading.Thread(target=body)
    t.start()
    time.sleep(0.4)  # the query is running on the server now
    return t, out


def test_key_names_its_peer(group):
    """The key PgBouncer's peers read: pid positive, peer_id in bytes 1-2, three hops left."""
    for i, d in group.items():
        c = login(d)
        pid, key = c.backend_key
        b = struct.pack("!II", pid, key)
        assert b[0] & 0x80 == 0, b.hex()
        assert b[1] | (b[2] << 8) == i, b.hex()
        assert b[7] & 3 == 3, b.hex()
        c.close()


def test_cancel_reaches_the_issuing_peer(group):
    """Each process's client is cancelled through each other process."""
    for i, owner in group.items():
        for j, via in group.items():
            if i == j:
                continue
            c = login(owner)
            t, out = run_sleep(c, 10)
            t0 = time.monotonic()
            send_cancel(via, *c.backend_key)
            t.join(5)
            assert out.get("r") == "57014", (i, j, out, via.log()[-2000:])
            assert time.monotonic() - t0 < 3
            assert c.query("SELECT 1")[0] == [["1"]]
            c.close()


def test_cancel_through_the_shared_port(group):
    """As an application sees it: connection and cancel both go to whichever process the
    kernel picks."""
    d = group[1]
    for _ in range(6):
        with psycopg.connect(d.dsn(), autocommit=True) as conn:
            timer = threading.Timer(0.4, conn.cancel)
            timer.start()
            t0 = time.monotonic()
            with pytest.raises(psycopg.errors.QueryCanceled, match="due to user request"):
                conn.execute("SELECT pg_sleep(10)")
            assert time.monotonic() - t0 < 4
            timer.join(5)


def test_hops_are_counted(group):
    """Each forward takes one off the key's TTL; one that has none left is dropped."""
    owner, via = group[1], group[2]
    c = login(owner)
    pid, key = c.backend_key
    t, out = run_sleep(c, 1.5)
    send_cancel(via, pid, key & ~3)  # no hops left: group[2] must not forward it
    t.join(5)
    assert out.get("r") == "done", out
    via.wait_log(r"cancel request for peer 1 not forwarded: its TTL is exhausted")
    t, out = run_sleep(c, 10)
    send_cancel(via, pid, (key & ~3) | 1)  # one hop left: arrives with none, still ours
    t.join(5)
    assert out.get("r") == "57014", out
    c.close()


def test_unknown_peer_is_dropped(group):
    c = login(group[1])
    pid, key = c.backend_key
    other = (pid & 0xff0000ff) | (9 << 16)  # names peer 9, which nobody configured
    t, out = run_sleep(c, 1.5)
    send_cancel(group[2], other, key)
    t.join(5)
    assert out.get("r") == "done", out
    group[2].wait_log(r"cancel request for peer 9 not forwarded: no such peer in \[peers\]")
    c.close()


def console_reload(d):
    conn = RawConn(d.dir, d.port)
    conn.startup("postgres", "pgbouncer", "adminpw")
    assert conn.query("RELOAD")[1] == ["RELOAD"]
    conn.close()


def test_reload_takes_a_changed_peers_section(group):
    """Our own id in [peers] is accepted and never forwarded to; a peer dropped from [peers]
    gets nothing forwarded any more; SHOW PEERS follows."""
    for i, d in group.items():
        write_ini(d, i, group, with_own=True)
        console_reload(d)
    rows = show_unix(group[1], "PEERS")
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (i, d.dir, d.port, 20) for i, d in group.items()]
    for i, d in group.items():  # our own entry: handled here, not sent to ourselves
        c = login(d)
        t, out = run_sleep(c, 10)
        send_cancel(d, *c.backend_key)
        t.join(5)
        assert out.get("r") == "57014", (i, out)
        c.close()
    # group[2] forgets peer 1
    write_ini(group[2], 2, {i: d for i, d in group.items() if i != 1})
    console_reload(group[2])
    rows = show_unix(group[2], "PEERS")
    assert [r[0] for r in rows] == [3]
    c = login(group[1])
    t, out = run_sleep(c, 1.5)
    send_cancel(group[2], *c.backend_key)
    t.join(5)
    assert out.get("r") == "done", out
    c.close()


def show_unix(d, what):
    conn = RawConn(d.dir, d.port)
    conn.startup("postgres", "pgbouncer", "adminpw")
    rows = conn.query(f"SHOW {what}")[0]
    conn.close()
    return [tuple(int(v) if v is not None and v.isdigit() else v for v in r) for r in rows]


def test_show_peers_and_their_defaults(tidepool):
    """As PgBouncer shows them: port 6432 and default_pool_size unless given; SHOW PEER_POOLS
    has no row for a peer nothing is being forwarded to."""
    d = tidepool(start=False)
    settings = d.default_settings()
    settings.update({"peer_id": "1", "default_pool_size": "7", **ADMIN})
    d.rewrite_ini(raw_ini=harness.format_ini(d.default_databases(), settings)
                  + "[peers]\n2 = host=/tmp/p2\n3 = host=10.1.1.1 port=7000 pool_size=3\n", userlist=USERS)
    d.start()
    assert show_unix(d, "PEERS") == [(2, "/tmp/p2", 6432, 7), (3, "10.1.1.1", 7000, 3)]
    assert show_unix(d, "PEER_POOLS") == []


def test_bad_peers_line_stops_the_start(tidepool):
    d = tidepool(start=False)
    text = d.ini_text + "[peers]\n1 = host=/tmp\nx = host=/tmp\n"
    d.rewrite_ini(raw_ini=text)
    line = text.count("\n")
    rc, _, log = d.run_expect_exit(timeout=10)
    assert rc == 1, log
    assert f'{d.ini_path}:{line}: invalid peer id "x": expected 1 to 16383' in log, log
    d.rewrite_ini(raw_ini=d.ini_text.replace("x = host=/tmp", "2 = host=/tmp sslmode=require"))
    rc, _, log = d.run_expect_exit(timeout=10)
    assert rc == 1, log
    assert f"{d.ini_path}:{line}: unrecognized peer parameter: sslmode" in log, log
    d.rewrite_ini(raw_ini=d.ini_text.replace("2 = host=/tmp sslmode=require", "2 = port=6000"))
    rc, _, log = d.run_expect_exit(timeout=10)
    assert rc == 1, log
    assert f"{d.ini_path}:{line}: host was not provided for peer 2" in log, log


class FakePeer:
    """A Unix socket that takes connections like a peer would, records what each sent, and
    closes one only when told to."""

    def __init__(self, tcp=False):
        self.dir = harness.make_tempdir("tp-fakepeer-")
        if tcp:  # host = a name or an address
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        else:  # host = a Unix socket directory
            self.port = 7777
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            path = os.path.join(self.dir, f".s.PGSQL.{self.port}")
            self.sock.bind(path)
            os.chmod(path, 0o777)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.conns = []  # [socket, bytes received]

    def poll(self):
        try:
            while True:
                c, _ = self.sock.accept()
                c.setblocking(False)
                self.conns.append([c, b""])
        except OSError:
            pass
        for rec in self.conns:
            try:
                rec[1] += rec[0].recv(64)
            except OSError:
                pass
        return self.conns

    def close(self):
        for c, _ in self.conns:
            c.close()
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def peer_pools(d):
    return show_unix(d, "PEER_POOLS")


def test_forwards_are_bounded_by_pool_size_and_cancel_wait_timeout(tidepool):
    """pool_size forwards at a time go out, the others wait; each one sends the 16 bytes with one
    hop fewer, and one the peer does not close in cancel_wait_timeout is given up."""
    fake = FakePeer()
    try:
        d = tidepool(start=False)
        settings = d.default_settings()
        settings.update({"peer_id": "1", "cancel_wait_timeout": "3", **ADMIN})
        d.rewrite_ini(raw_ini=harness.format_ini(d.default_databases(), settings)
                      + f"[peers]\n2 = host={fake.dir} port={fake.port} pool_size=1\n", userlist=USERS)
        d.start()
        pid = 0x12020005  # names peer 2 (bytes 1-2: 02 00)
        send_cancel(d, pid, 0xabcdef03)
        send_cancel(d, pid, 0xabcdef02)
        harness.wait_until(lambda: len(fake.poll()) == 1 and len(fake.conns[0][1]) == 16, 5,
                           what="first forward")
        assert fake.conns[0][1] == struct.pack("!IIII", 16, 80877102, pid, 0xabcdef02)
        assert peer_pools(d) == [(2, 1, 1, 1, 0)]
        time.sleep(0.5)
        assert len(fake.poll()) == 1  # the second waits for the slot
        fake.conns[0][0].close()  # the peer is done with the first one
        harness.wait_until(lambda: len(fake.poll()) == 2 and len(fake.conns[1][1]) == 16, 5,
                           what="second forward")
        assert fake.conns[1][1] == struct.pack("!IIII", 16, 80877102, pid, 0xabcdef01)
        assert peer_pools(d) == [(2, 1, 0, 1, 0)]
        # the fake never closes the second one: cancel_wait_timeout (3 s from its arrival) ends it
        d.wait_log(r"peer 2: cancel request not forwarded within cancel_wait_timeout", timeout=6)
        assert peer_pools(d) == []
    finally:
        fake.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_forward_to_a_peer_by_address_or_name(tidepool, host):
    fake = FakePeer(tcp=True)
    try:
        d = tidepool(start=False)
        settings = d.default_settings()
        settings.update({"peer_id": "7", **ADMIN})
        d.rewrite_ini(raw_ini=harness.format_ini(d.default_databases(), settings)
                      + f"[peers]\n300 = host={host} port={fake.port}\n", userlist=USERS)
        d.start()
        pid = 0x002c0141  # names peer 300 (bytes 1-2: 2c 01)
        send_cancel(d, pid, 0x01020303)
        harness.wait_until(lambda: len(fake.poll()) == 1 and len(fake.conns[0][1]) == 16, 5,
                           what="forward")
        assert fake.conns[0][1] == struct.pack("!IIII", 16, 80877102, pid, 0x01020302)
        assert show_unix(d, "PEERS") == [(300, host, fake.port, 20)]
    finally:
        fake.close()


@pytest.mark.skipif(not harness.IS_ROOT, reason="needs root: -u switches user")
def test_shares_the_port_with_a_process_started_as_the_user(tidepool):
    """Root with -u and a process started as that user directly (as PgBouncer with -u is when
    it listens) can share a port: Linux requires one owner for a so_reuseport group."""
    import pwd

    port = harness.free_port()
    a = tidepool({"so_reuseport": "1"}, port=port)
    b = tidepool({"so_reuseport": "1"}, port=port, start=False)
    pw = pwd.getpwnam(harness.RUN_AS)
    plain_preexec = b._preexec

    def as_user():
        plain_preexec()
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    b._preexec = as_user
    b.command = lambda: [b.binary, b.ini_path]
    b.spawn()
    harness.wait_until(lambda: os.path.exists(socket_path(b)) or not b.alive(), 15, what="Unix socket")
    assert b.alive(), b.log()[-2000:]
    assert a.alive()
    for d in (a, b):  # each one still answers on its own socket
        c = RawConn(d.dir, d.port)
        c.startup(APP_USER, "appdb", APP_PASSWORD)
        assert c.query("SELECT 1")[0] == [["1"]]
        c.close()
