"""Fault injection and abuse (issue 8): real PostgreSQL, the daemon from $TIDEPOOL_BIN.

Each test injects one fault, checks what the affected client sees, and then that:
- tidepool is still running and serving new clients,
- no client got another client's data (queries echo a per-client token) or transaction state
  (an aborted client's uncommitted row never appears; the next client is not inside a
  transaction),
- the log explains what happened.
What each client saw is collected and printed at the end of the module (and appended to
$FAULT_REPORT when set), for the closing note of the issue.

Run: TIDEPOOL_BIN=$PWD/build/tidepool /usr/bin/python3 -m pytest -q tests/integration/test_faults.py
With the ASan build (build-san/tidepool) the 10,000-connection test also checks LeakSanitizer.
"""

import asyncio
import os
import signal
import socket
import struct
import threading
import time
import uuid

import psycopg
import psycopg2
import pytest

import fault_helpers as fh
import harness
from harness import APP_PASSWORD, APP_USER, WireError, raw_login

pytestmark = pytest.mark.tidepool_only("fault-injection expectations are tidepool's")

SEEN = []


def report(fault, what):
    SEEN.append((fault, what))


@pytest.fixture(scope="module", autouse=True)
def _print_report():
    yield
    lines = [f"- {f}: {w}" for f, w in SEEN]
    text = "fault -> what the client saw\n" + "\n".join(lines) + "\n"
    print("\n" + text)
    path = os.environ.get("FAULT_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(text)


@pytest.fixture(scope="module")
def fault_table(pg):
    pg.sql("DROP TABLE IF EXISTS fault_t", dbname="appdb")
    pg.sql("CREATE TABLE fault_t (v text)", dbname="appdb")
    pg.sql(f"GRANT ALL ON fault_t TO {APP_USER}", dbname="appdb")
    return "fault_t"


def token():
    return uuid.uuid4().hex[:12]


def assert_serving(d, what="after the fault"):
    """tidepool runs and a brand-new client gets its own answer, outside any transaction."""
    assert d.alive(), f"tidepool exited {what}:\n{d.log()[-4000:]}"
    t = token()
    c = raw_login(d.port, APP_USER, "appdb", APP_PASSWORD)
    try:
        rows, _ = c.query(f"SELECT '{t}', pg_current_xact_id_if_assigned() IS NULL")
        assert rows == [[t, "t"]], rows
    finally:
        c.close()


def rows_with(pg, v):
    return pg.sql("SELECT count(*) FROM fault_t WHERE v = %s", (v,), dbname="appdb")[0][0]


def raw_socket(d, timeout=10):
    return socket.create_connection(("127.0.0.1", d.port), timeout=timeout)


def raw_logged_in(d, user=APP_USER, password=APP_PASSWORD):
    return raw_login(d.port, user, "appdb", password)


# --------------------------------------------------------------------------- PostgreSQL faults


class _Loader(threading.Thread):
    """One client in a loop of short transactions, each checking it got its own token back."""

    def __init__(self, d, idx, stop):
        super().__init__(daemon=True)
        self.d, self.idx, self.stop_evt = d, idx, stop
        self.ok = 0
        self.errors = []
        self.mismatch = []
        self.last_ok = 0.0

    def run(self):
        conn = None
        deadline = time.monotonic() + 150
        while not self.stop_evt.is_set() and time.monotonic() < deadline:
            t = f"{self.idx}-{token()}"
            try:
                if conn is None:
                    conn = self.d.connect()
                with conn.cursor() as cur:
                    cur.execute("BEGIN")
                    cur.execute("SELECT %s, pg_current_xact_id() IS NOT NULL", (t,))
                    got = cur.fetchone()
                    cur.execute("COMMIT")
                if got != (t, True):
                    self.mismatch.append((t, got))
                self.ok += 1
                self.last_ok = time.monotonic()
            except psycopg2.Error as e:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                self.errors.append(msg)
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                conn = None
                time.sleep(0.1)
        if conn is not None:
            conn.close()


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_postgres_killed_and_restarted_under_load(tidepool, pg):
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "4", "server_login_retry": "1",
                  "query_wait_timeout": "60"})
    stop = threading.Event()
    loaders = [_Loader(d, i, stop) for i in range(6)]
    for t in loaders:
        t.start()
    try:
        harness.wait_until(lambda: all(t.ok > 3 for t in loaders), 30, what="load running")
        pg.stop("immediate")  # a crash: backends die without a clean shutdown
        time.sleep(2)
        assert d.alive(), d.log()[-3000:]
        pg.start()
        t_up = time.monotonic()
        harness.wait_until(lambda: all(t.last_ok > t_up for t in loaders), 60, interval=0.2,
                           what="every client working again after the restart")
    finally:
        stop.set()
        for t in loaders:
            t.join(30)
    assert all(not t.mismatch for t in loaders), [t.mismatch for t in loaders]
    errors = sorted({e for t in loaders for e in t.errors})
    report("PostgreSQL killed (pg_ctl -m immediate) and restarted under load (6 clients)",
           f"{sum(len(t.errors) for t in loaders)} failed transactions, errors: {errors}; "
           f"all 6 clients resumed after the restart, no token mix-up")
    assert_serving(d)
    assert "server conn crashed?" in d.log() or "closing because: server closed the connection" in d.log() \
        or "server closed the connection" in d.log(), d.log()[-3000:]


def test_backend_terminated_mid_transaction(tidepool, pg, fault_table):
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "2"})
    other = raw_logged_in(d)
    c = raw_logged_in(d)
    t = "term-" + token()
    c.query("BEGIN")
    c.query(f"INSERT INTO fault_t VALUES ('{t}')")
    pid = int(c.query("SELECT pg_backend_pid()")[0][0][0])
    pg.sql("SELECT pg_terminate_backend(%s)", (pid,))
    # without sending anything, the client is told, then disconnected
    buf, closed = fh.read_until_close(c.sock, timeout=10)
    seen = fh.describe(buf, closed)
    report("backend terminated mid-transaction (pg_terminate_backend)", seen)
    msgs = [fh.error_fields(b) for ty, b in fh.parse_messages(buf) if ty == b"E"]
    assert any(m.get("C") == "57P01" for m in msgs), seen
    assert any(m.get("M") == "server conn crashed?" and m.get("C") == "08P01" for m in msgs), seen
    assert closed, seen
    assert rows_with(pg, t) == 0
    # the other client never noticed
    o = token()
    assert other.query(f"SELECT '{o}'")[0] == [[o]]
    other.close()
    assert_serving(d)
    d.wait_log(r"server conn crashed\?")


def test_server_accepts_tcp_but_never_answers(tidepool, pg):
    hole = fh.BlackholeServer()
    try:
        dbs = {"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb",
               "blackhole": f"host=127.0.0.1 port={hole.port} dbname=x"}
        d = tidepool({"server_connect_timeout": "1", "query_wait_timeout": "4", "server_login_retry": "1"},
                     databases=dbs)
        t0 = time.monotonic()
        with pytest.raises(WireError) as ei:
            raw_login(d.port, APP_USER, "blackhole", APP_PASSWORD)
        elapsed = time.monotonic() - t0
        report("server accepts TCP but never answers (server_connect_timeout=1, query_wait_timeout=4)",
               f"{ei.value.severity} {ei.value.sqlstate} {ei.value.message} after {elapsed:.1f}s")
        assert ei.value.sqlstate == "08P01"
        assert ei.value.message in ("query_wait_timeout", "client_login_timeout (server down)"), ei.value.fields
        assert elapsed < 10
        assert len(hole.accepted) >= 1 and hole.received > 0  # it really got our startup packet
        d.wait_log(r"connect timeout")
        assert_serving(d)
    finally:
        hole.close()


def test_query_timeout_covers_the_wait_for_an_unreachable_server(tidepool, pg):
    """A client waiting for a server that never logs in is closed by query_timeout when that
    comes before query_wait_timeout, with PgBouncer's message."""
    hole = fh.BlackholeServer()
    try:
        dbs = {"blackhole": f"host=127.0.0.1 port={hole.port} dbname=x"}
        d = tidepool({"server_connect_timeout": "1", "query_timeout": "2", "query_wait_timeout": "30"},
                     databases=dbs)
        t0 = time.monotonic()
        with pytest.raises(WireError) as ei:
            raw_login(d.port, APP_USER, "blackhole", APP_PASSWORD)
        assert ei.value.message == "query_timeout", ei.value.fields
        assert time.monotonic() - t0 < 10
        d.wait_log(r"closing because: connect timeout")
    finally:
        hole.close()


def test_dns_fails(tidepool, pg):
    dns = fh.FakeDNS(rcode=3)
    try:
        dbs = {"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb",
               "dnsdb": "host=no-such-host.tidepool-test.invalid port=5432 dbname=x"}
        conf_dir = harness.make_tempdir("tp-dns-")
        resolv = dns.write_resolv_conf(conf_dir)
        d = tidepool({"resolv_conf": resolv, "query_wait_timeout": "3"}, databases=dbs)
        t0 = time.monotonic()
        with pytest.raises(WireError) as ei:
            raw_login(d.port, APP_USER, "dnsdb", APP_PASSWORD)
        elapsed = time.monotonic() - t0
        report("DNS lookup fails (NXDOMAIN from the configured resolver)",
               f"{ei.value.severity} {ei.value.sqlstate} {ei.value.message} after {elapsed:.1f}s")
        assert ei.value.sqlstate == "08P01"
        assert elapsed < 10
        assert dns.queries, "the resolver was never asked"
        d.wait_log(r"DNS lookup failed")
        assert_serving(d)
    finally:
        dns.close()


# --------------------------------------------------------------------------- clients going away


def test_client_disconnects_mid_query(tidepool, pg, fault_table):
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1"})
    t = "midq-" + token()
    c = raw_logged_in(d)
    c.query("BEGIN")
    c.query(f"INSERT INTO fault_t VALUES ('{t}')")
    c.send(b"Q", b"SELECT pg_sleep(3)\0")
    time.sleep(0.3)
    c.sock.close()  # gone while the server is busy
    # the next client (pool of 1) is not inside the dead client's transaction
    t0 = time.monotonic()
    n = raw_logged_in(d)
    rows, _ = n.query(f"SELECT count(*), pg_current_xact_id_if_assigned() IS NULL FROM fault_t WHERE v = '{t}'")
    waited = time.monotonic() - t0
    n.close()
    report("client disconnects mid-query (inside a transaction, pool_size=1)",
           f"next client got a clean server after {waited:.1f}s: no open transaction, "
           f"the dead client's uncommitted row invisible")
    assert rows == [["0", "t"]], rows
    harness.wait_until(lambda: pg.count_backends() <= 1, 15, what="the busy backend to go")
    assert rows_with(pg, t) == 0
    assert_serving(d)
    d.wait_log(r"client disconnect while server was not ready|client unexpected eof")


def test_client_disconnects_mid_copy(tidepool, pg, fault_table):
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1"})
    t = "copy-" + token()
    c = raw_logged_in(d)
    c.send(b"Q", b"COPY fault_t FROM STDIN\0")
    typ, _ = c.read_msg()
    assert typ == b"G", typ
    for _ in range(5):
        c.send(b"d", f"{t}\n".encode())
    time.sleep(0.2)
    c.sock.close()
    n = raw_logged_in(d)
    rows, _ = n.query("SELECT pg_current_xact_id_if_assigned() IS NULL")
    n.close()
    assert rows == [["t"]]
    harness.wait_until(lambda: rows_with(pg, t) == 0 and pg.count_backends() <= 1, 15,
                       what="the half-done COPY rolled back")
    report("client disconnects mid-COPY FROM STDIN", "COPY rolled back (0 rows), next client clean")
    assert_serving(d)
    d.wait_log(r"client disconnect while server was not ready|client unexpected eof")


def test_client_disconnects_after_ssl_request(tidepool):
    d = tidepool()
    s = raw_socket(d)
    s.sendall(fh.be32(8) + fh.be32(80877103))
    answer = s.recv(1)
    s.close()
    report("client sends SSLRequest and disconnects", f"answer {answer!r}, then closed")
    assert answer in (b"N", b"S")
    assert_serving(d)


@pytest.fixture(scope="module")
def tls_files():
    import subprocess
    d = harness.make_tempdir("tp-faults-tls-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", "server.key", "-out", "server.crt", "-days", "2", "-subj", "/CN=localhost"],
                   cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    harness.give_to_daemon_user(d)
    yield os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    import shutil
    shutil.rmtree(d, ignore_errors=True)


def _client_hello():
    """The first flight of a real TLS client, without a socket."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def test_client_disconnects_mid_tls_handshake(tidepool, tls_files):
    crt, key = tls_files
    d = tidepool({"client_tls_sslmode": "allow", "client_tls_cert_file": crt, "client_tls_key_file": key})
    hello = _client_hello()
    seen = []
    for what, payload in (("nothing", b""), ("half a ClientHello", hello[:len(hello) // 2]),
                          ("a whole ClientHello", hello), ("garbage", b"\x16\x03\x01\x00\x05hello")):
        s = raw_socket(d)
        s.sendall(fh.be32(8) + fh.be32(80877103))
        answer = s.recv(1)
        if answer != b"S":
            s.close()
            pytest.skip("needs client TLS: tidepool answers %r to SSLRequest" % answer)
        if payload:
            s.sendall(payload)
        if what == "a whole ClientHello":
            s.settimeout(5)
            got = s.recv(65536)  # the ServerHello flight, then we vanish
            seen.append(f"after {what}: server sent {len(got)} bytes of handshake, client left")
        else:
            seen.append(f"after {what}: client left")
        s.close()
    report("client disconnects mid-TLS-handshake (SSLRequest answered 'S')", "; ".join(seen))
    d.wait_log(r"TLS handshake failed")
    assert_serving(d)
    # a real TLS client still gets through
    import psycopg2
    c = psycopg2.connect(d.dsn(sslmode="require"))
    with c.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    c.close()


def test_client_disconnects_mid_md5_auth(tidepool):
    d = tidepool({"auth_type": "md5"})
    for _ in range(20):
        s = raw_socket(d)
        s.sendall(fh.startup_packet(APP_USER, "appdb"))
        typ = s.recv(5)[:1]
        assert typ == b"R"
        s.close()
    report("client disconnects after the md5 challenge (20 times)", "AuthenticationMD5Password, then it left")
    assert_serving(d)


def test_client_disconnects_mid_sasl(tidepool):
    d = tidepool({"auth_type": "scram-sha-256"}, skip_unsupported=True)
    s = raw_socket(d)
    s.sendall(fh.startup_packet(APP_USER, "appdb"))
    hdr = s.recv(9)
    if hdr[:1] != b"R" or struct.unpack("!I", hdr[5:9])[0] != 10:
        s.close()
        pytest.skip("needs client SCRAM authentication: auth_type=scram-sha-256 does not ask for SASL yet")
    first = b"n,,n=,r=" + b"x" * 24
    s.sendall(b"p" + fh.be32(4 + 14 + 4 + len(first)) + b"SCRAM-SHA-256\0" + fh.be32(len(first)) + first)
    s.recv(1)
    s.close()
    report("client disconnects mid-SASL", "SASLContinue received, then it left")
    assert_serving(d)


@pytest.mark.timeout(120)
def test_slow_client_memory_bounded(tidepool, pg):
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "3"})
    s = raw_socket(d, timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c = harness.RawConn.__new__(harness.RawConn)
    c.sock, c.buf, c.notices, c.params = s, b"", [], {}
    c.startup(APP_USER, "appdb", APP_PASSWORD)
    rss0 = fh.rss_kb(d.pid)
    # ~300 MB of result that the client never reads
    c.send(b"Q", b"SELECT repeat('x', 1000) FROM generate_series(1, 300000)\0")
    peak = rss0
    t_end = time.monotonic() + 6
    others = 0
    while time.monotonic() < t_end:
        peak = max(peak, fh.rss_kb(d.pid))
        o = token()
        r = raw_logged_in(d)
        assert r.query(f"SELECT '{o}'")[0] == [[o]]  # everyone else is served meanwhile
        r.close()
        others += 1
        time.sleep(0.3)
    growth_mb = (peak - rss0) / 1024
    report("slow client never reads a 300 MB result",
           f"tidepool RSS grew {growth_mb:.1f} MB (from {rss0 // 1024} MB); {others} other clients served meanwhile")
    assert growth_mb < 20, growth_mb
    s.close()
    assert_serving(d)


# --------------------------------------------------------------------------- abuse


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_flood_over_max_client_conn(tidepool, pg):
    limit = 40
    harness.raise_nofile(8192)
    d = tidepool({"max_client_conn": str(limit), "pool_mode": "transaction", "default_pool_size": "2"},
                 nofile=8192)
    held = [raw_logged_in(d) for _ in range(limit)]  # the pooler is full
    fds0 = fh.fd_count(d.pid)
    N = 20000
    outcomes = {}

    async def attempt(sem):
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", d.port), 20)
            except (OSError, asyncio.TimeoutError) as e:
                return f"connect failed: {type(e).__name__}"
            try:
                w.write(fh.startup_packet(APP_USER, "appdb"))
                await w.drain()
                data = b""
                while True:
                    chunk = await asyncio.wait_for(r.read(4096), 20)
                    if not chunk:
                        break
                    data += chunk
                msgs = fh.parse_messages(data)
                if msgs and msgs[0][0] == b"E":
                    f = fh.error_fields(msgs[0][1])
                    return f"{f.get('S')} {f.get('C')} {f.get('M')}"
                return fh.describe(data)
            except (OSError, asyncio.TimeoutError) as e:
                return f"error: {type(e).__name__}"
            finally:
                w.close()

    async def flood():
        sem = asyncio.Semaphore(100)
        return await asyncio.gather(*(attempt(sem) for _ in range(N)))

    t0 = time.monotonic()
    results = asyncio.run(flood())
    elapsed = time.monotonic() - t0
    for r in results:
        outcomes[r] = outcomes.get(r, 0) + 1
    report(f"flood of {N} connection attempts over max_client_conn={limit}",
           f"{elapsed:.0f}s; outcomes: {outcomes}")
    want = "FATAL 08P01 no more connections allowed (max_client_conn)"
    assert outcomes.get(want, 0) >= N * 0.99, outcomes
    # the admitted clients are untouched and get their own answers
    for h in held:
        o = token()
        assert h.query(f"SELECT '{o}'")[0] == [[o]]
    for h in held[:5]:
        h.close()
    harness.wait_until(lambda: fh.fd_count(d.pid) <= fds0, 15, what="fds back to the level before the flood")
    assert_serving(d)
    for h in held[5:]:
        h.close()
    assert "no more connections allowed (max_client_conn)" in d.log()


def _bad_packet(d, payload, login_first=False):
    if login_first:
        c = raw_logged_in(d)
        s = c.sock
    else:
        s = raw_socket(d)
    s.sendall(payload)
    buf, closed = fh.read_until_close(s, timeout=5)
    s.close()
    return fh.describe(buf, closed), buf, closed


BAD_PACKETS = [
    ("startup length 0", fh.be32(0), False),
    ("startup length 3", fh.be32(3) + b"\0\0\0\0", False),
    ("startup length 2^31", fh.be32(0x80000000) + fh.be32(196608), False),
    ("startup length 10001 (over the 10000 limit)", fh.be32(10001) + fh.be32(196608), False),
    ("startup with protocol 2.0", fh.be32(8) + fh.be32(0x00020000), False),
    ("startup without user", fh.be32(17) + fh.be32(196608) + b"database\0\0", False),
    ("cancel request of wrong length", fh.be32(12) + fh.be32(80877102) + fh.be32(1), False),
    ("Query with length 0", b"Q" + fh.be32(0), True),
    ("Query with length 3", b"Q" + fh.be32(3), True),
    ("Query with length 2^31", b"Q" + fh.be32(0x80000000), True),
    ("unknown message type '?'", b"?" + fh.be32(8) + b"abcd", True),
    ("Query without its NUL", b"Q" + fh.be32(12) + b"SELECT 1", True),
]


@pytest.mark.parametrize("what,payload,after_login", BAD_PACKETS, ids=[b[0] for b in BAD_PACKETS])
def test_bad_packets(tidepool, what, payload, after_login):
    d = tidepool()
    seen, buf, closed = _bad_packet(d, payload, after_login)
    report(f"bad packet: {what}", seen)
    assert closed or buf, seen  # never silently hung
    if "length" in what and "10001" not in what and "cancel" not in what:
        msgs = [fh.error_fields(b) for t, b in fh.parse_messages(buf) if t == b"E"]
        assert any(m.get("C") == "08P01" for m in msgs), seen
    assert_serving(d)


def test_truncated_startup(tidepool):
    d = tidepool({"client_login_timeout": "2"})
    pkt = fh.startup_packet(APP_USER, "appdb")
    # 1) half a packet then gone
    s = raw_socket(d)
    s.sendall(pkt[:9])
    s.close()
    # 2) half a packet, then silence: client_login_timeout ends it
    s = raw_socket(d)
    s.sendall(pkt[:9])
    t0 = time.monotonic()
    buf, closed = fh.read_until_close(s, timeout=8)
    s.close()
    seen = fh.describe(buf, closed)
    report("truncated startup packet, then silence (client_login_timeout=2)",
           f"{seen} after {time.monotonic() - t0:.1f}s")
    assert closed, seen
    assert_serving(d)


@pytest.mark.timeout(180)
def test_thousand_wrong_passwords(tidepool, pg):
    d = tidepool({"auth_type": "md5"})
    rss0 = fh.rss_kb(d.pid)
    results = {}
    lock = threading.Lock()

    def worker(n):
        for _ in range(n):
            try:
                raw_login(d.port, APP_USER, "appdb", "wrong-" + token()).close()
                r = "logged in!"
            except WireError as e:
                r = f"{e.severity} {e.sqlstate} {e.message}"
            except OSError as e:
                r = f"socket error {e}"
            with lock:
                results[r] = results.get(r, 0) + 1

    ts = [threading.Thread(target=worker, args=(50,)) for _ in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(150)
    report("1,000 wrong-password attempts (md5, 20 in parallel)",
           f"{results}; RSS {rss0 // 1024} -> {fh.rss_kb(d.pid) // 1024} MB")
    assert results == {"FATAL 08P01 password authentication failed": 1000}, results
    assert_serving(d)  # the right password still works
    assert d.log().count("password authentication failed") >= 1000


ADMIN_ONLY = ["PAUSE", "PAUSE appdb", "RESUME", "SUSPEND", "KILL appdb", "KILL_CLIENT 1", "DISABLE appdb",
              "ENABLE appdb", "RECONNECT", "RECONNECT appdb", "WAIT_CLOSE", "RELOAD", "SHUTDOWN",
              "SHUTDOWN WAIT_FOR_CLIENTS", "SET default_pool_size = 1", "SET pool_mode = 'session'",
              "SET admin_users = 'statsuser'"]


def test_non_admin_users_and_admin_commands(tidepool, pg):
    ul = {APP_USER: APP_PASSWORD, "statsuser": "statspass"}
    d = tidepool({"admin_users": "nobody_admin", "stats_users": "statsuser", "default_pool_size": "20"},
                 userlist=ul)
    # a user in neither list cannot even log in to the console
    with pytest.raises(WireError) as ei:
        raw_login(d.port, APP_USER, "pgbouncer", APP_PASSWORD)
    report("non-admin user logs in to the console", f"{ei.value.severity} {ei.value.sqlstate} {ei.value.message}")
    assert ei.value.message == "not allowed" and ei.value.sqlstate == "08P01"
    # a stats user: every control command is refused, the connection stays usable
    c = raw_login(d.port, "statsuser", "pgbouncer", "statspass")
    refused = {}
    for cmd in ADMIN_ONLY:
        with pytest.raises(WireError) as ei:
            c.query(cmd)
        refused[cmd] = ei.value.message
        assert ei.value.severity == "ERROR", (cmd, ei.value.fields)
    rows, _ = c.query("SHOW POOLS")  # reading is allowed
    c.close()
    msgs = sorted(set(refused.values()))
    report(f"stats-only user runs {len(ADMIN_ONLY)} admin-only commands", f"each refused with ERROR {msgs}")
    assert msgs == ["admin access needed"], refused
    # nothing happened: not paused, not shut down, settings unchanged, appdb enabled
    assert_serving(d)
    c = raw_login(d.port, "statsuser", "pgbouncer", "statspass")
    cfg = {r[0]: r[1] for r in c.query("SHOW CONFIG")[0]}
    c.close()
    assert cfg.get("default_pool_size") == "20" and cfg.get("pool_mode") == "transaction", cfg
    assert cfg.get("admin_users") == "nobody_admin"


# --------------------------------------------------------------------------- leaks


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ten_thousand_connections_no_growth(tidepool, pg):
    """Open and close 10,000 client connections (login + a query each). Memory and fds of the
    daemon must not grow; with an ASan build, LeakSanitizer must be silent at exit."""
    harness.raise_nofile(4096)
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "4", "max_client_conn": "500",
                  "auth_type": "md5"})
    pid = d.pid

    def run(n, threads=8):
        errs = []

        def w(k):
            for _ in range(k):
                try:
                    c = raw_login(d.port, APP_USER, "appdb", APP_PASSWORD)
                    t = token()
                    rows, _ = c.query(f"SELECT '{t}'")
                    if rows != [[t]]:
                        errs.append(("mismatch", t, rows))
                    c.close()
                except Exception as e:  # noqa: BLE001
                    errs.append(repr(e))

        ts = [threading.Thread(target=w, args=(n // threads,)) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(200)
        return errs

    assert run(800) == []
    time.sleep(1)
    rss0, fds0 = fh.rss_kb(pid), fh.fd_count(pid)
    t0 = time.monotonic()
    errs = run(10000)
    elapsed = time.monotonic() - t0
    harness.wait_until(lambda: fh.fd_count(pid) <= fds0, 15, what="fds back to the baseline")
    time.sleep(1)
    rss1, fds1 = fh.rss_kb(pid), fh.fd_count(pid)
    report("10,000 connections opened and closed (login + query each)",
           f"{elapsed:.0f}s, {len(errs)} errors; RSS {rss0} -> {rss1} kB; fds {fds0} -> {fds1}")
    assert errs == [], errs[:5]
    if not harness.is_sanitized(d.binary):
        assert rss1 - rss0 < 2048, (rss0, rss1)
    assert fds1 <= fds0
    # a clean exit; an ASan build prints LeakSanitizer reports on the way out
    d.stop(sig=signal.SIGTERM, timeout=60)
    log = d.log()
    assert d.proc.returncode == 0, (d.proc.returncode, log[-6000:])
    assert "LeakSanitizer" not in log and "AddressSanitizer" not in log, log[-6000:]


# --------------------------------------------------------------------------- found bugs


def test_stats_period_timer_does_not_crash(tidepool):
    """stats_period makes a timer call app_on_stats; it must get the App (main.c passed &app)."""
    d = tidepool({"stats_period": "1", "log_stats": "1"})
    time.sleep(3.5)
    alive = d.alive()
    report("stats_period=1 (the periodic stats line; default is 60 s)",
           "tidepool still running" if alive else f"tidepool died (exit status {d.proc.returncode})")
    assert alive, f"tidepool died at the stats tick:\n{d.log()[-3000:]}"
    assert_serving(d)
    d.wait_log(r"stats: \d+ xacts/s|LOG stats")


def test_unix_socket_server_down_with_server_login_retry_0(tidepool, pg):
    """A database on a Unix socket that does not exist fails connect() at once; with
    server_login_retry = 0 the relaunch must not recurse (server_close -> launch -> fail ...)."""
    empty = harness.make_tempdir("tp-nosock-")
    dbs = {"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb", "sockdown": f"host={empty} port=5432"}
    d = tidepool({"server_login_retry": "0", "query_wait_timeout": "2"}, databases=dbs)
    with pytest.raises((WireError, ConnectionError, OSError)) as ei:
        raw_login(d.port, APP_USER, "sockdown", APP_PASSWORD)
    time.sleep(0.5)
    alive = d.alive()
    report("Unix-socket server missing with server_login_retry=0",
           f"client: {ei.value!r}; tidepool {'running' if alive else 'died (%s)' % d.proc.returncode}")
    assert alive, f"tidepool died:\n{d.log()[-3000:]}"
    assert_serving(d)


def test_unknown_message_type_is_refused_by_the_pooler(tidepool, pg):
    """A client message type PostgreSQL does not know must not reach the server: PgBouncer
    disconnects the client itself ("unknown pkt from client"), so a client cannot make
    PostgreSQL kill a pooled backend, and the log names the client, not the server."""
    d = tidepool({"pool_mode": "session", "default_pool_size": "2"})
    c = raw_logged_in(d)
    c.query("SELECT 1")  # linked to a backend
    backend = c.query("SELECT pg_backend_pid()")[0][0][0]
    c.sock.sendall(b"?" + fh.be32(8) + b"abcd")
    buf, closed = fh.read_until_close(c.sock, timeout=5)
    c.sock.close()
    seen = fh.describe(buf, closed)
    report("client sends an unknown message type '?' after login", seen)
    msgs = [fh.error_fields(b) for t, b in fh.parse_messages(buf) if t == b"E"]
    assert closed and msgs, seen
    assert not any("invalid frontend message type" in (m.get("M") or "") for m in msgs), \
        f"the message reached PostgreSQL: {seen}"
    assert "server conn crashed?" not in d.log(), d.log()[-2000:]
    assert "invalid frontend message type" not in pg.server_log()[-20000:]
    assert_serving(d)


def _ext(t, body=b""):
    return t + fh.be32(len(body) + 4) + body


def _until_ready(c):
    seen = []
    while True:
        t, body = c.read_msg()
        seen.append(t.decode("latin1"))
        if t == b"Z":
            return seen


@pytest.mark.parametrize("how", ["reset_query_always", "server_lifetime"])
def test_reparse_of_a_prepared_statement_after_its_server_went(tidepool, how):
    """A client Parses the named statement s1, its server forgets it (DISCARD ALL as the reset
    query, or the server connection reaches server_lifetime), and the client sends the same
    Parse again. prepared.c client_put() dropped the client's old reference first, freeing the
    statement when nobody else held it, then referenced it again: use after free, and a double
    free ("free(): double free detected in tcache 2", SIGABRT) that took every client down.
    A name in use is now refused (as PgBouncer does), so the client Closes s1 before each new
    Parse; the last Parse without a Close disconnects that client only."""
    settings = {"pool_mode": "transaction", "max_prepared_statements": "100"}
    if how == "reset_query_always":
        settings.update({"server_reset_query": "DISCARD ALL", "server_reset_query_always": "1"})
    else:
        settings.update({"server_lifetime": "1", "server_idle_timeout": "1"})
    d = tidepool(settings)
    other = raw_logged_in(d)
    c = raw_logged_in(d)
    parse = _ext(b"P", b"s1\0SELECT 41 + $1::int\0\0\0")
    got = []
    try:
        for i in range(3):
            if i:
                c.sock.sendall(_ext(b"C", b"Ss1\0") + _ext(b"S"))
                _until_ready(c)
            c.sock.sendall(parse + _ext(b"S"))
            got.append(_until_ready(c))
            if how == "server_lifetime":
                time.sleep(1.6)  # the idle server is closed, and its statements with it
        # the statement still works...
        c.sock.sendall(_ext(b"B", b"\0s1\0\0\0\0\x01\0\0\0\x011\0\0") + _ext(b"E", b"\0\0\0\0\0") + _ext(b"S"))
        rows = []
        while True:
            t, body = c.read_msg()
            if t == b"D":
                rows.append(body[6:].decode())
            if t == b"E":
                rows.append(fh.error_fields(body).get("M"))
            if t == b"Z":
                break
        # ...and closing it is clean
        c.sock.sendall(_ext(b"C", b"Ss1\0") + _ext(b"S"))
        _until_ready(c)
        # Parse of a name still in use: only this client goes
        c.sock.sendall(parse + _ext(b"S"))
        _until_ready(c)
        c.sock.sendall(parse + _ext(b"S"))
        with pytest.raises((ConnectionError, OSError)):
            _until_ready(c)
        c.close()
    except (ConnectionError, OSError) as e:
        rows = [f"connection lost: {e}"]
    time.sleep(0.3)
    alive = d.alive()
    report(f"client re-Parses a named statement after its server forgot it ({how})",
           f"replies {got}, then {rows}; tidepool {'running' if alive else 'died (%s)' % d.proc.returncode}")
    assert alive, f"tidepool died:\n{d.log()[-3000:]}"
    assert rows == ["42"], rows
    o = token()
    assert other.query(f"SELECT '{o}'")[0] == [[o]]  # the other client never noticed
    other.close()
    assert_serving(d)
