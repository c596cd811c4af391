"""Protocol completeness: named prepared statements across servers in transaction mode,
pipelining, COPY in every pool mode, NOTICE/NOTIFY, big messages, and dirty-client cleanup.

PgBouncer 1.18 has no prepared-statement tracking, so the tracking tests are tidepool_only.
"""

import asyncio
import os
import socket
import struct
import subprocess
import threading
import time

import psycopg
import psycopg2
import pytest

import harness

MODES = ["session", "transaction", "statement"]


def pg3(d, **kw):
    return psycopg.connect(d.dsn(), autocommit=True, **kw)


def sample_backends(pg, stop, out):
    conn = pg.connect()
    cur = conn.cursor()
    deadline = time.monotonic() + 300
    while not stop.is_set() and time.monotonic() < deadline:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND datname = 'appdb' "
                    "AND backend_type = 'client backend'", (harness.APP_USER,))
        out.append(cur.fetchone()[0])
        stop.wait(0.1)
    conn.close()


@pytest.mark.tidepool_only(reason="PgBouncer 1.18 fails with prepared statement \"P_0\" already exists")
@pytest.mark.timeout(240)
def test_pgbench_prepared_protocol_transaction_mode(pgbench_db, tidepool):
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "10"})
    stop, samples = threading.Event(), []
    t = threading.Thread(target=sample_backends, args=(pgbench_db, stop, samples), daemon=True)
    t.start()
    r = subprocess.run([os.path.join(pgbench_db.bindir, "pgbench"), "-n", "-c", "50", "-j", "2", "-T", "30",
                        "--protocol=prepared"], env=d.env_for(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=150)
    stop.set()
    t.join(10)
    assert r.returncode == 0, r.stdout
    assert "number of failed transactions: 0 " in r.stdout, r.stdout
    assert "error" not in r.stdout.lower(), r.stdout
    assert samples and max(samples) <= 10, max(samples)


@pytest.mark.tidepool_only(reason="needs prepared statement tracking")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_psycopg3_prepared_switching_servers(tidepool, workers):
    """workers=1: each server prepares each statement about once. workers=2: the same results,
    but a server handed to the other worker forgets its statements there (DEALLOCATE ALL), so
    they are prepared again: correct, with more server-side Parses."""
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "2", "workers": workers},
                 userlist={harness.APP_USER: harness.APP_PASSWORD, "postgres": "adminpw"})
    conns = [pg3(d, prepare_threshold=0) for _ in range(6)]
    try:
        pids = {n: set() for n in range(6)}
        for i in range(60):
            holder = conns[i % 6]
            # one client holds a server in a transaction, so the others must use the other one
            with holder.transaction():
                pids[i % 6].add(holder.execute("SELECT pg_backend_pid()").fetchone()[0])
                for n, c in enumerate(conns):
                    if c is holder:
                        continue
                    row = c.execute("SELECT %s::int + %s::int, pg_backend_pid()", (i, n)).fetchone()
                    assert row[0] == i + n
                    pids[n].add(row[1])
                    assert c.execute("SELECT %s::text || 'x'", (str(n),)).fetchone()[0] == f"{n}x"
        # every client ran its prepared statements on both servers
        assert all(len(p) == 2 for p in pids.values()), pids
    finally:
        for c in conns:
            c.close()
    # SHOW STATS: servers prepared each statement about once, clients many times.
    admin = psycopg2.connect(d.dsn(user="postgres", password="adminpw", dbname="pgbouncer"))
    admin.autocommit = True
    cur = admin.cursor()
    cur.execute("SHOW STATS")
    cols = [c.name for c in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    admin.close()
    app = [r for r in rows if r["database"] == "appdb"][0]
    assert int(app["total_client_parse_count"]) >= 6, app
    if workers == "1":
        assert int(app["total_server_parse_count"]) <= 2 * 2 + 2, app
    assert int(app["total_bind_count"]) >= 5 * 60 * 2, app


@pytest.mark.tidepool_only(reason="needs prepared statement tracking")
def test_asyncpg_statement_cache_transaction_mode(tidepool):
    asyncpg = pytest.importorskip("asyncpg")
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "3"})

    async def worker(n):
        conn = await asyncpg.connect(host="127.0.0.1", port=d.port, user=harness.APP_USER,
                                     password=harness.APP_PASSWORD, database="appdb")
        try:
            for i in range(100):
                v = await conn.fetchval("SELECT $1::int * 2", i)
                assert v == 2 * i
                async with conn.transaction():
                    r = await conn.fetchrow("SELECT $1::text AS t, $2::int AS n", f"w{n}", i)
                    assert (r["t"], r["n"]) == (f"w{n}", i)
        finally:
            await conn.close()

    async def main():
        await asyncio.gather(*(worker(n) for n in range(10)))

    asyncio.run(main())


@pytest.mark.tidepool_only(reason="needs prepared statement tracking")
def test_eviction_with_small_server_cache(tidepool):
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1", "max_prepared_statements": "2"})
    conns = [pg3(d, prepare_threshold=0) for _ in range(3)]
    try:
        for rnd in range(5):
            for n, c in enumerate(conns):
                for k in range(10):
                    sql = f"SELECT %s::int + {k}"  # 10 distinct statements per client
                    assert c.execute(sql, (rnd,)).fetchone()[0] == rnd + k
        # the single server never holds more than 2 of ours
        with psycopg2.connect(d.dsn()) as plain:
            plain.autocommit = True
            cur = plain.cursor()
            cur.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cur.fetchone()[0] <= 2
    finally:
        for c in conns:
            c.close()


def _admin(d):
    """Admin console of a daemon started with userlist {app, postgres: adminpw}."""
    return psycopg.connect(d.dsn(user="postgres", password="adminpw", dbname="pgbouncer"), autocommit=True)


def _pg_prepared_count(conn):
    return conn.execute("SELECT count(*) FROM pg_prepared_statements", prepare=False).fetchone()[0]


def _closed_by_pooler(conn, result):
    return result.status == psycopg.pq.ExecStatus.FATAL_ERROR and conn.pgconn.status == psycopg.pq.ConnStatus.BAD


@pytest.mark.tidepool_only(reason="needs prepared statement tracking")
@pytest.mark.parametrize("how", ["simple DEALLOCATE ALL", "extended DEALLOCATE ALL", "simple DISCARD ALL",
                                 "simple SELECT 1; DEALLOCATE ALL", "simple deallocate \t all"])
def test_deallocate_all_forgets_the_clients_statements(tidepool, how):
    """DEALLOCATE ALL / DISCARD ALL empty the client's names (however they are sent) and the
    server's cache: the name can be prepared again, another client's statement of the same text is
    prepared again on that server, and a name used after it disconnects the client."""
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1"})
    sql = how.split(" ", 1)[1].encode()
    with pg3(d) as c1, pg3(d) as c2:
        for c in (c1, c2):
            assert c.pgconn.prepare(b"s", b"SELECT 7").status == psycopg.pq.ExecStatus.COMMAND_OK
            assert c.pgconn.exec_prepared(b"s", []).get_value(0, 0) == b"7"
        r = c1.pgconn.exec_(sql) if how.startswith("simple") else c1.pgconn.exec_params(sql, [])
        assert r.status == psycopg.pq.ExecStatus.COMMAND_OK, r.error_message
        # the one server forgot it; client 2 still knows its name: prepared there again
        assert c2.pgconn.exec_prepared(b"s", []).get_value(0, 0) == b"7"
        # client 1's name is free again (psycopg re-prepares _pg3_0 after its own DEALLOCATE ALL)
        assert c1.pgconn.prepare(b"s", b"SELECT 8").status == psycopg.pq.ExecStatus.COMMAND_OK
        assert c1.pgconn.exec_prepared(b"s", []).get_value(0, 0) == b"8"
        assert c1.pgconn.exec_(sql).status == psycopg.pq.ExecStatus.COMMAND_OK
        assert _closed_by_pooler(c1, c1.pgconn.exec_prepared(b"s", []))
        assert c2.pgconn.exec_prepared(b"s", []).get_value(0, 0) == b"7"
    assert "prepared statement did not exist" in d.log()


@pytest.mark.tidepool_only(reason="needs prepared statement tracking")
def test_deallocate_all_keeps_what_is_parsed_after_it(tidepool):
    """A DEALLOCATE ALL recognised only by its CommandComplete (in a query of several statements)
    with a Parse pipelined behind it: the server keeps that one statement, and forgets the rest,
    as PostgreSQL does. (PgBouncer 1.25.2 forgets the pipelined name too and disconnects the
    client when it binds it.)"""
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1"})

    def msg(t, body=b""):
        return t + struct.pack("!I", len(body) + 4) + body

    def until_ready(raw):
        seen = []
        while not seen or seen[-1][0] != b"Z":
            seen.append(raw.read_msg())
        return seen

    def run(raw, name):
        raw.sock.sendall(msg(b"B", b"\0" + name + b"\0\0\0\0\0\0\0") + msg(b"E", b"\0\0\0\0\0") + msg(b"S"))
        return [body for t, body in until_ready(raw) if t in (b"D", b"E")]

    with pg3(d) as other:
        assert other.pgconn.prepare(b"old", b"SELECT 'old'").status == psycopg.pq.ExecStatus.COMMAND_OK
        assert other.pgconn.exec_prepared(b"old", []).get_value(0, 0) == b"old"
        raw = _raw_logged_in(d)
        raw.sock.sendall(msg(b"Q", b"SELECT 1; DEALLOCATE ALL\0") + msg(b"P", b"new\0SELECT 'new'\0\0\0")
                         + msg(b"S"))
        types = [t for t, _ in until_ready(raw)] + [t for t, _ in until_ready(raw)]
        assert b"E" not in types, types
        assert run(raw, b"new") == [b"\0\1\0\0\0\3new"]  # still on the server: not parsed again
        assert other.pgconn.exec_prepared(b"old", []).get_value(0, 0) == b"old"  # parsed again
        assert run(raw, b"new") == [b"\0\1\0\0\0\3new"]
        raw.sock.close()
    assert "already exists" not in d.log()


@pytest.mark.tidepool_only(reason="needs prepared statement tracking")
@pytest.mark.parametrize("what", ["describe", "bind"])
def test_unknown_statement_name_disconnects(tidepool, what):
    """No server can know a name the client never prepared: the client is disconnected."""
    d = tidepool({"pool_mode": "statement"})
    with pg3(d) as c:
        if what == "describe":
            r = c.pgconn.describe_prepared(b"nosuch")
        else:
            r = c.pgconn.exec_prepared(b"nosuch", [])
        assert _closed_by_pooler(c, r)
    log = d.log()
    assert "prepared statement 'nosuch' not found" in log
    assert "pooler error: prepared statement did not exist" in log
    # a portal Describe is not about statements: PostgreSQL answers it
    with pg3(d) as c:
        r = c.pgconn.describe_portal(b"nosuch")
        assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"34000"
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_unknown_statement_name_session_mode_is_postgres(tidepool):
    d = tidepool({"pool_mode": "session"})
    with pg3(d) as c:
        r = c.pgconn.describe_prepared(b"nosuch")
        assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"26000"
        assert c.execute("SELECT 1").fetchone()[0] == 1


@pytest.mark.tidepool_only(reason="needs prepared statement tracking")
@pytest.mark.parametrize("holding_server", [False, True])
def test_prepared_name_reuse_disconnects(tidepool, holding_server):
    """Parse of a name the client already prepared is refused, as PostgreSQL would, and the
    client is disconnected; whether it holds a server (inside a transaction) or not."""
    d = tidepool({"pool_mode": "transaction"})
    with pg3(d) as c:
        if holding_server:
            assert c.pgconn.exec_(b"BEGIN").status == psycopg.pq.ExecStatus.COMMAND_OK
        assert c.pgconn.prepare(b"dup", b"SELECT 1").status == psycopg.pq.ExecStatus.COMMAND_OK
        assert _closed_by_pooler(c, c.pgconn.prepare(b"dup", b"SELECT 1"))
    log = d.log()
    assert "prepared statement 'dup' was already prepared" in log
    assert "pooler error: prepared statement name is already in use" in log
    # the unnamed statement may be parsed again and again
    with pg3(d) as c:
        for _ in range(3):
            assert c.pgconn.prepare(b"", b"SELECT 1").status == psycopg.pq.ExecStatus.COMMAND_OK


@pytest.mark.tidepool_only(reason="needs prepared statement tracking")
def test_server_cache_follows_max_prepared_statements_changes(tidepool):
    """The limit applies at each insert as it is now: raising it lets a server's cache grow past
    the old limit, lowering it evicts down to the new one on the next insert."""
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1", "max_prepared_statements": "1"},
                 userlist={harness.APP_USER: harness.APP_PASSWORD, "postgres": "adminpw"})
    with pg3(d) as c, _admin(d) as admin:
        for i in range(3):
            assert c.execute(f"SELECT '{i}'", prepare=True).fetchone()[0] == str(i)
        assert _pg_prepared_count(c) == 1
        admin.execute("SET max_prepared_statements = 5")
        for i in range(3, 9):
            assert c.execute(f"SELECT '{i}'", prepare=True).fetchone()[0] == str(i)
        assert _pg_prepared_count(c) == 5
        admin.execute("SET max_prepared_statements = 2")
        assert _pg_prepared_count(c) == 5  # nothing inserted yet
        assert c.execute("SELECT '9'", prepare=True).fetchone()[0] == "9"
        assert _pg_prepared_count(c) == 2
        rows = admin.execute("SHOW SERVERS").fetchall()
        cols = [col.name for col in admin.execute("SHOW SERVERS").description]
        assert [r[cols.index("prepared_statements")] for r in rows] == [2]


@pytest.mark.tidepool_only(reason="needs prepared statement tracking")
def test_statement_and_portal_names_longer_than_pkt_buf(tidepool):
    d = tidepool({"pool_mode": "transaction", "pkt_buf": "4096"})
    name = b"n" * 4096 * 4
    with pg3(d) as c:
        assert c.pgconn.prepare(name, b"SELECT $1::text").status == psycopg.pq.ExecStatus.COMMAND_OK
        assert c.pgconn.describe_prepared(name).status == psycopg.pq.ExecStatus.COMMAND_OK
        assert c.pgconn.exec_prepared(name, [b"abc"]).get_value(0, 0) == b"abc"
    # a Bind with a long portal name, on the raw protocol (libpq names no portals)
    raw = _raw_logged_in(d)
    portal = b"p" * 6000  # past pkt_buf; PostgreSQL refuses an Execute over 10000 bytes

    def msg(t, body):
        return t + struct.pack("!I", len(body) + 4) + body
    raw.sock.sendall(msg(b"P", b"st\0SELECT $1::text\0\0\0") + msg(b"S", b""))
    raw.sock.sendall(msg(b"B", portal + b"\0st\0\0\0\0\1\0\0\0\2ok\0\0")
                     + msg(b"E", portal + b"\0\0\0\0\0") + msg(b"S", b""))
    types, rows = [], []
    while not types.count(b"Z") == 2:
        t, body = raw.read_msg()
        types.append(t)
        if t == b"D":
            rows.append(body)
    assert b"E" not in types, types
    assert types.count(b"D") == 1 and rows[0].endswith(b"ok"), (types, rows)
    raw.sock.close()


@pytest.mark.parametrize("mode", MODES)
def test_pipeline_mode(tidepool, mode):
    d = tidepool({"pool_mode": mode, "default_pool_size": "2"})
    with pg3(d) as c:
        with c.pipeline():
            curs = [c.execute("SELECT %s::int * 3", (i,)) for i in range(20)]
        assert [cur.fetchone()[0] for cur in curs] == [3 * i for i in range(20)]
        if mode != "statement":
            with c.transaction():
                with c.pipeline():
                    c.execute("CREATE TEMP TABLE IF NOT EXISTS tp_pipe (x int)")
                    for i in range(10):
                        c.execute("INSERT INTO tp_pipe VALUES (%s)", (i,))
                    cur = c.execute("SELECT sum(x) FROM tp_pipe")
                assert cur.fetchone()[0] == 45


@pytest.mark.parametrize("mode", MODES)
def test_copy_in_and_out(tidepool, pg, mode):
    pg.sql("CREATE TABLE IF NOT EXISTS tp_copy (id int, t text)", dbname="appdb")
    pg.sql("GRANT ALL ON tp_copy TO app", dbname="appdb")
    d = tidepool({"pool_mode": mode, "default_pool_size": "2"})
    with pg3(d) as c:
        c.execute("DELETE FROM tp_copy")
        with c.cursor() as cur:
            with cur.copy("COPY tp_copy (id, t) FROM STDIN") as cp:
                for i in range(5000):
                    cp.write_row((i, f"row {i}"))
        assert c.execute("SELECT count(*), sum(id) FROM tp_copy").fetchone() == (5000, sum(range(5000)))
        out = []
        with c.cursor() as cur:
            with cur.copy("COPY (SELECT id FROM tp_copy ORDER BY id) TO STDOUT") as cp:
                for row in cp.rows():
                    out.append(int(row[0]))
        assert out == list(range(5000))
    # psql's \copy as the user would type it
    r = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-c",
                        "\\copy (SELECT generate_series(1,3)) TO STDOUT"],
                       env=d.env_for(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["1", "2", "3"], r.stderr


def test_notice_and_notify(tidepool):
    d = tidepool({"pool_mode": "session", "default_pool_size": "2"})
    with pg3(d) as listener, pg3(d) as sender:
        notices = []
        listener.add_notice_handler(lambda diag: notices.append(diag.message_primary))
        listener.execute("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$")
        assert notices == ["hello from plpgsql"]
        listener.execute("LISTEN tp_chan")
        sender.execute("NOTIFY tp_chan, 'payload-1'")
        got = []
        listener.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            listener.execute("SELECT 1")  # notifications arrive with the next reply
            time.sleep(0.05)
        assert got == [("tp_chan", "payload-1")]


def _raw_logged_in(d):
    conn = harness.raw_login(d.port, harness.APP_USER, "appdb", password=harness.APP_PASSWORD)
    return conn


def _send_query(sock, sql):
    body = sql.encode() + b"\0"
    sock.sendall(b"Q" + struct.pack("!I", len(body) + 4) + body)


@pytest.mark.parametrize("what", ["transaction", "copy", "pipeline"])
def test_dirty_client_never_leaks_state(tidepool, pg, what):
    pg.sql("CREATE TABLE IF NOT EXISTS tp_dirty_copy (x int)", dbname="appdb")
    pg.sql("GRANT ALL ON tp_dirty_copy TO app", dbname="appdb")
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1"})
    raw = _raw_logged_in(d)
    sock = raw.sock
    if what == "transaction":
        _send_query(sock, "BEGIN; CREATE TEMP TABLE tp_dirty (x int); SELECT 1")
    elif what == "copy":
        _send_query(sock, "COPY tp_dirty_copy FROM STDIN")
        time.sleep(0.3)
        sock.sendall(b"d" + struct.pack("!I", 4 + 2) + b"1\n")
    else:
        # extended protocol pipeline: BEGIN, then a Parse/Bind/Execute without Sync
        def msg(t, body):
            return t + struct.pack("!I", len(body) + 4) + body
        sock.sendall(msg(b"P", b"\0BEGIN\0\0\0") + msg(b"B", b"\0\0\0\0\0\0\0\0") + msg(b"E", b"\0\0\0\0\0")
                     + msg(b"S", b"") + msg(b"P", b"\0SELECT pg_sleep(0.2)\0\0\0") + msg(b"B", b"\0\0\0\0\0\0\0\0")
                     + msg(b"E", b"\0\0\0\0\0"))
    time.sleep(0.5)
    # die without Terminate
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    time.sleep(0.3)
    c = psycopg2.connect(d.dsn())
    try:
        c.autocommit = True
        cur = c.cursor()
        # BEGIN inside a leaked transaction would warn "there is already a transaction in progress"
        cur.execute("BEGIN")
        cur.execute("SELECT pg_current_xact_id_if_assigned() IS NULL, "
                    "(SELECT count(*) FROM pg_class WHERE relname = 'tp_dirty')")
        assert cur.fetchone() == (True, 0)
        cur.execute("ROLLBACK")
        assert not [n for n in c.notices if "already a transaction" in n], c.notices
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state LIKE 'idle in%'")
        assert cur.fetchone()[0] == 0
    finally:
        c.close()
    assert d.alive()


def _stream_messages(sock, first=b""):
    """Yield (type, length, bytes of the message that were kept) reading in big chunks; bodies of
    DataRow messages are counted, not kept, so 500 MB pass without client-side buffering."""
    buf = bytearray(first)
    while True:
        while len(buf) < 5:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        typ, ln = bytes(buf[:1]), struct.unpack("!I", bytes(buf[1:5]))[0]
        need = 1 + ln
        if typ == b"D" and len(buf) < need:
            got = len(buf)
            del buf[:]
            while got < need:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("closed")
                got += len(chunk)
                if got > need:
                    buf += chunk[len(chunk) - (got - need):]
            yield typ, ln, b""
            continue
        while len(buf) < need:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        body = bytes(buf[5:need])
        del buf[:need]
        yield typ, ln, body


BIG_MB = int(os.environ.get("TP_BIG_MB", "32"))


@pytest.mark.timeout(60 + BIG_MB)
def test_big_messages_stream_through_small_pkt_buf(tidepool):
    """A big query text up and a big DataRow down (32 MB by default, TP_BIG_MB=500 for the
    issue's 500 MB; PostgreSQL itself needs minutes for that here), through a 4 KB pkt_buf:
    streamed, never buffered (the pooler's RSS stays far below the message size)."""
    d = tidepool({"pool_mode": "transaction", "pkt_buf": "4096"})
    raw = harness.raw_login(d.port, harness.APP_USER, "appdb", password=harness.APP_PASSWORD)
    sock = raw.sock
    sock.settimeout(120)
    base_rss = _rss_kb(d.pid)  # sanitizer builds start far higher; growth is what counts
    size = BIG_MB * 1024 * 1024
    payload = b"SELECT length('" + b"x" * size + b"')\0"
    sock.sendall(b"Q" + struct.pack("!I", len(payload) + 4) + payload)
    for typ, ln, body in _stream_messages(sock, raw.buf):
        if typ == b"E":
            pytest.fail(body.decode(errors="replace"))
        if typ == b"Z":
            break
    peak_rss = _rss_kb(d.pid)
    q = b"SELECT repeat('x', %d)\0" % size
    sock.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
    datarow_len = None
    for typ, ln, body in _stream_messages(sock):
        if typ == b"D":
            datarow_len = ln
            peak_rss = max(peak_rss, _rss_kb(d.pid))
        if typ == b"E":
            pytest.fail(body.decode(errors="replace"))
        if typ == b"Z":
            break
    raw.close()
    # DataRow: length(4) + ncols(2) + collen(4) + data
    assert datarow_len == 4 + 2 + 4 + size
    peak_rss = max(peak_rss, _rss_kb(d.pid))
    grown = peak_rss - base_rss
    assert grown < size // 2048, f"pooler RSS grew {grown} kB: a message was buffered instead of streamed"


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int([ln for ln in f if ln.startswith("VmRSS")][0].split()[1])
