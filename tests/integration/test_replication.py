"""Replication connections through the pooler: `replication=database` (logical) and
`replication=true` (physical) clients each get a server connection of their own, opened with the
same parameter, and everything (IDENTIFY_SYSTEM, SHOW, CopyBoth streaming) is forwarded. Real
PostgreSQL tools (pg_basebackup, pg_receivewal, pg_recvlogical) run through the daemon.

These tests use their own PostgreSQL (wal_level = logical, replication lines in pg_hba.conf), so
the shared one keeps its defaults.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

import harness
from harness import APP_PASSWORD, APP_USER, MD5_PASSWORD, MD5_USER

ADMIN_PASSWORD = "adminpw"


@pytest.fixture(scope="module")
def repl_pg():
    server = harness.PostgresServer(
        max_connections=30,
        extra_conf={"wal_level": "logical", "max_wal_senders": "10", "max_replication_slots": "10"},
        hba_extra=[
            f"host    replication {MD5_USER}  127.0.0.1/32   md5",
            "host    replication all      127.0.0.1/32   scram-sha-256",
        ],
    )
    try:
        server.init()
        server.sql(f"ALTER ROLE {APP_USER} REPLICATION")
        server.sql("CREATE TABLE repl_t (a int)", dbname="appdb")
        server.sql(f"GRANT ALL ON repl_t TO {APP_USER}, {MD5_USER}", dbname="appdb")
    except BaseException:
        print(server.server_log()[-4000:])
        server.cleanup()
        raise
    yield server
    server.cleanup()


@pytest.fixture
def pooler(repl_pg, daemon_bin):
    """Factory for a daemon in front of repl_pg (with a `replication` database entry)."""
    started = []

    def factory(ini_overrides=None, databases=None, **kw):
        dbs = {
            "appdb": f"host=127.0.0.1 port={repl_pg.port} dbname=appdb",
            "replication": f"host=127.0.0.1 port={repl_pg.port} dbname=replication",
        }
        dbs.update(databases or {})
        settings = {"pool_mode": "session", "log_connections": "1", "log_disconnections": "1"}
        if not harness.binary_is_pgbouncer(daemon_bin):
            # eviction finds idle servers on the client's own worker only (README, Workers)
            settings["workers"] = "1"
        settings.update(ini_overrides or {})
        users = {APP_USER: APP_PASSWORD, MD5_USER: MD5_PASSWORD, "postgres": ADMIN_PASSWORD}
        d = harness.Daemon(repl_pg, settings, databases=dbs, userlist=users, binary=daemon_bin, **kw)
        started.append(d)
        d.start()
        return d

    yield factory
    for d in started:
        reports = d.cleanup()
        assert not reports, reports


def walsenders(pg):
    return pg.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'")[0][0]


def wait_no_walsender(pg):
    harness.wait_until(lambda: walsenders(pg) == 0, 10, what="no walsender left")


def one(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def admin_rows(d, sql):
    c = d.connect(user="postgres", password=ADMIN_PASSWORD, dbname="pgbouncer")
    try:
        with c.cursor() as cur:
            cur.execute(sql)
            cols = [x.name for x in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        c.close()


def test_logical_connection_gets_its_own_parameters(repl_pg, pooler):
    d = pooler()
    c = d.connect(replication="database", application_name="abc", options="'-c enable_seqscan=off'")
    try:
        # the startup parameters reached the walsender itself (no SET is possible on one)
        assert one(c, "SHOW application_name") == [("abc",)]
        assert one(c, "SHOW enable_seqscan") == [("off",)]
        row = one(c, "IDENTIFY_SYSTEM")[0]
        assert len(row) == 4 and row[3] == "appdb"
        servers = [r for r in admin_rows(d, "SHOW SERVERS") if r["database"] == "appdb"]
        assert [r["replication"] for r in servers] == ["logical"]
        clients = [r for r in admin_rows(d, "SHOW CLIENTS") if r["database"] == "appdb"]
        assert [r["replication"] for r in clients] == ["logical"]
        # a normal client of the same pool gets a normal server
        n = d.connect()
        assert one(n, "SELECT 1") == [(1,)]
        assert one(n, "SHOW enable_seqscan") == [("on",)]
        n.close()
    finally:
        c.close()
    wait_no_walsender(repl_pg)
    d.wait_log(r"login attempt: db=appdb user=app tls=no replication=database")
    d.wait_log(r"S-\S+ appdb/app@\S+ closing because: replication client was closed")


def test_physical_connection_forwards_errors_and_show(repl_pg, pooler):
    d = pooler()
    c = d.connect(replication="true", application_name="phys")
    try:
        with pytest.raises(psycopg2.errors.FeatureNotSupported, match="cannot execute SQL commands"):
            one(c, "SELECT 1")
        assert one(c, "SHOW application_name") == [("phys",)]
        assert len(one(c, "IDENTIFY_SYSTEM")[0]) == 4
        servers = [r for r in admin_rows(d, "SHOW SERVERS") if r["database"] == "appdb"]
        assert [r["replication"] for r in servers] == ["physical"]
    finally:
        c.close()
    wait_no_walsender(repl_pg)
    d.wait_log(r"login attempt: db=appdb user=app tls=no replication=yes")


def test_unknown_replication_value_means_a_normal_connection(pooler):
    # as PgBouncer: neither a boolean nor "database" is taken as no replication
    d = pooler()
    c = d.connect(replication="sometimes")
    try:
        assert one(c, "SELECT 1") == [(1,)]
        clients = [r for r in admin_rows(d, "SHOW CLIENTS") if r["database"] == "appdb"]
        assert [r["replication"] for r in clients] == ["none"]
    finally:
        c.close()


def test_options_still_refused_without_replication(pooler):
    d = pooler()
    with pytest.raises(psycopg2.OperationalError, match="unsupported startup parameter"):
        d.connect(options="'-c enable_seqscan=off'")


def test_pg_basebackup(repl_pg, pooler):
    d = pooler()
    out = tempfile.mkdtemp(prefix="tp-basebackup-")
    try:
        # -X stream: a second physical replication connection streams WAL at the same time
        r = subprocess.run(
            [os.path.join(repl_pg.bindir, "pg_basebackup"), "-D", out, "--checkpoint=fast",
             "-X", "stream", "-w"],
            env=d.env_for(dbname="replication"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=120,
        )
        assert r.returncode == 0, r.stdout + d.log()[-3000:]
        assert os.path.exists(os.path.join(out, "PG_VERSION"))
        assert os.listdir(os.path.join(out, "pg_wal"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    wait_no_walsender(repl_pg)


def test_pg_receivewal(repl_pg, pooler):
    d = pooler()
    repl_pg.sql("SELECT pg_create_physical_replication_slot('tp_receivewal')")
    out = tempfile.mkdtemp(prefix="tp-receivewal-")
    try:
        p = subprocess.Popen(
            [os.path.join(repl_pg.bindir, "pg_receivewal"), "-D", out, "--slot=tp_receivewal", "-w"],
            env=d.env_for(dbname="replication"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        # pg_receivewal writes a file once WAL arrives; right after a segment switch (another
        # test's pg_basebackup) there is none until something is written, so write some
        repl_pg.sql("CREATE TABLE IF NOT EXISTS tp_walgen (i int)")
        deadline = time.monotonic() + 20
        while not os.listdir(out) and p.poll() is None and time.monotonic() < deadline:
            repl_pg.sql("INSERT INTO tp_walgen VALUES (1)")
            time.sleep(0.1)
        files = os.listdir(out)
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        output = p.communicate(timeout=15)[0].decode(errors="replace")
        assert files and p.returncode == 0, (files, p.returncode, output, d.log()[-3000:])
    finally:
        shutil.rmtree(out, ignore_errors=True)
        wait_no_walsender(repl_pg)
        repl_pg.sql("SELECT pg_drop_replication_slot('tp_receivewal')")


def test_pg_recvlogical_streams_changes(repl_pg, pooler):
    d = pooler()
    repl_pg.sql("SELECT pg_create_logical_replication_slot('tp_recvlogical', 'test_decoding')",
                dbname="appdb")
    p = subprocess.Popen(
        [os.path.join(repl_pg.bindir, "pg_recvlogical"), "-d", "appdb", "--slot=tp_recvlogical",
         "--start", "-f", "-", "--no-loop", "-w"],
        env=d.env_for(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        harness.wait_until(lambda: walsenders(repl_pg) == 1, 10, what="pg_recvlogical streaming")
        n = d.connect()
        with n.cursor() as cur:
            cur.execute("INSERT INTO repl_t VALUES (42)")
        n.close()
        lines = []

        def read_three():
            while len(lines) < 3:
                line = p.stdout.readline()
                if not line:
                    return
                lines.append(line.decode())

        reader = threading.Thread(target=read_three, daemon=True)
        reader.start()
        reader.join(20)
        assert len(lines) == 3, lines
        assert lines[0].startswith("BEGIN ")
        assert lines[1] == "table public.repl_t: INSERT: a[integer]:42\n"
        assert lines[2].startswith("COMMIT ")
    finally:
        p.kill()
        p.communicate(timeout=10)
        wait_no_walsender(repl_pg)
        repl_pg.sql("SELECT pg_drop_replication_slot('tp_recvlogical')", dbname="appdb")


def test_replication_server_counts_in_pool_size(repl_pg, pooler):
    d = pooler(databases={"small": f"host=127.0.0.1 port={repl_pg.port} dbname=appdb pool_size=1"})
    first = d.connect(dbname="small", replication="database")
    assert one(first, "SELECT 1") == [(1,)]
    got = {}

    def second():
        t0 = time.monotonic()
        c = d.connect(dbname="small", replication="database")
        got["rows"] = one(c, "SELECT 1")
        got["waited"] = time.monotonic() - t0
        c.close()

    t = threading.Thread(target=second)
    t.start()
    try:
        time.sleep(1.0)
        assert "waited" not in got, "the second replication client got a server beyond pool_size"
        pools = [r for r in admin_rows(d, "SHOW POOLS") if r["database"] == "small"]
        assert pools[0]["cl_waiting"] == 1 and pools[0]["sv_active"] == 1, pools
    finally:
        first.close()
        t.join(15)
    assert got["rows"] == [(1,)] and got["waited"] >= 0.9
    wait_no_walsender(repl_pg)


def test_replication_client_evicts_idle_server(repl_pg, pooler):
    d = pooler(databases={"small": f"host=127.0.0.1 port={repl_pg.port} dbname=appdb pool_size=1"})
    n = d.connect(dbname="small")
    assert one(n, "SELECT 1") == [(1,)]
    n.close()  # its server stays idle in the pool, which is now full
    c = d.connect(dbname="small", replication="database")
    try:
        assert len(one(c, "IDENTIFY_SYSTEM")[0]) == 4
    finally:
        c.close()
    d.wait_log(r"S-\S+ small/app@\S+ closing because: evicted")
    wait_no_walsender(repl_pg)


def test_replication_client_evicts_idle_server_of_another_pool(repl_pg, pooler):
    # max_db_connections counts every pool of the database: md5user's idle server makes way
    d = pooler(databases={"capped": f"host=127.0.0.1 port={repl_pg.port} dbname=appdb "
                                    "max_db_connections=1"})
    n = d.connect(dbname="capped", user=MD5_USER, password=MD5_PASSWORD)
    assert one(n, "SELECT 1") == [(1,)]
    n.close()
    c = d.connect(dbname="capped", replication="database")
    try:
        assert len(one(c, "IDENTIFY_SYSTEM")[0]) == 4
    finally:
        c.close()
    d.wait_log(r"S-\S+ capped/md5user@\S+ closing because: evicted")
    wait_no_walsender(repl_pg)


def test_unprivileged_login_failure(repl_pg, pooler):
    d = pooler()
    with pytest.raises(psycopg2.OperationalError, match="login failed"):
        d.connect(user=MD5_USER, password=MD5_PASSWORD, replication="database")
    log = d.log()
    assert re.search(r"must be superuser or replication role|permission denied to start WAL sender", log)
    assert re.search(r"S-\S+ appdb/md5user@\S+ closing because: login failed", log)
    closing = re.search(r"C-\S+ appdb/md5user@\S+ closing because: login failed", log)
    # as in PgBouncer, the closing line comes first: both are logged before the client can
    # see the error
    error = re.search(r"C-\S+ appdb/md5user@\S+ pooler error: login failed", log)
    assert closing and error and closing.start() < error.start(), log


@pytest.mark.tidepool_only(reason="PgBouncer makes the pool's normal logins wait server_login_retry")
def test_replication_login_failure_does_not_block_the_pool(repl_pg, pooler):
    d = pooler()
    with pytest.raises(psycopg2.OperationalError, match="login failed"):
        d.connect(user=MD5_USER, password=MD5_PASSWORD, replication="database")
    # only its own client is concerned: a normal login of the same pool goes on at once
    n = d.connect(user=MD5_USER, password=MD5_PASSWORD)
    assert one(n, "SELECT 1") == [(1,)]
    n.close()


def test_hba_replication_keyword(repl_pg, pooler):
    hba = tempfile.NamedTemporaryFile("w", prefix="tp-hba-", suffix=".conf", delete=False)
    hba.write("host replication app 127.0.0.1/32 scram-sha-256\n"
              "host all app 127.0.0.1/32 reject\n")
    hba.close()
    harness.give_to_daemon_user(hba.name)
    try:
        d = pooler({"auth_type": "hba", "auth_hba_file": hba.name})
        c = d.connect(dbname="replication", replication="true")
        assert len(one(c, "IDENTIFY_SYSTEM")[0]) == 4
        c.close()
        # a logical connection is matched by its database name, like a normal one
        for extra in ({"replication": "database"}, {}):
            with pytest.raises(psycopg2.OperationalError):
                d.connect(**extra)
    finally:
        os.unlink(hba.name)
    wait_no_walsender(repl_pg)


@pytest.mark.tidepool_only(reason="workers is tidepool's own setting")
def test_replication_clients_on_two_workers(repl_pg, pooler):
    # pool_size 2 shared by both workers: 6 replication clients take turns, none gets a third
    d = pooler({"workers": "2"},
               databases={"small": f"host=127.0.0.1 port={repl_pg.port} dbname=appdb pool_size=2"})
    errs, peak = [], []

    def client():
        try:
            c = d.connect(dbname="small", replication="database")
            assert len(one(c, "IDENTIFY_SYSTEM")[0]) == 4
            one(c, "SELECT pg_sleep(0.3)")
            c.close()
        except Exception as e:  # noqa: BLE001
            errs.append(repr(e))

    ts = [threading.Thread(target=client) for _ in range(6)]
    for t in ts:
        t.start()
    while any(t.is_alive() for t in ts):
        peak.append(walsenders(repl_pg))
        time.sleep(0.05)
    assert not errs, errs
    assert max(peak) <= 2, peak
    wait_no_walsender(repl_pg)
