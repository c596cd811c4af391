"""Admin console (docs/compatibility.md): `psql -d pgbouncer`, PgBouncer 1.25's exact result sets, access
rules, control commands and their blocking replies, SHOW <setting>, and stats that are true.

The column fixture fixtures/admin_columns.json (written from docs/compatibility.md) is the single
source for names, order and wire types.
"""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import psycopg2
import pytest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "fixtures", "admin_columns.json")) as _f:
    FIXTURE = json.load(_f)
OIDS = FIXTURE["type_oids"]

ADMIN_USER, ADMIN_PASSWORD = "postgres", "adminpass"
STATS_USER = harness.APP_USER  # app: a stats user, and a normal user of appdb
PGBOUNCER_118 = harness.binary_is_pgbouncer()  # validating the tests against Debian's PgBouncer
TIME_RX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")


# --------------------------------------------------------------------------- helpers


class Result:
    def __init__(self):
        self.columns = None  # [(name, type oid)] or None without RowDescription
        self.rows, self.tags, self.notices = [], [], []
        self.error = None

    def dicts(self):
        names = [c[0] for c in self.columns]
        return [dict(zip(names, r)) for r in self.rows]


class Console(harness.RawConn):
    """A raw console connection that keeps RowDescription type OIDs."""

    def run(self, sql):
        self.send(b"Q", sql.encode() + b"\0")
        return self.read_result()

    def read_result(self):
        res = Result()
        while True:
            typ, body = self.read_msg()
            if typ == b"T":
                n = struct.unpack("!H", body[:2])[0]
                pos, cols = 2, []
                for _ in range(n):
                    end = body.index(b"\0", pos)
                    name = body[pos:end].decode()
                    pos = end + 1
                    _tbl, _col, oid, _len, _mod, _fmt = struct.unpack("!IhIhih", body[pos:pos + 18])
                    pos += 18
                    cols.append((name, oid))
                res.columns = cols
            elif typ == b"D":
                n = struct.unpack("!H", body[:2])[0]
                pos, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", body[pos:pos + 4])[0]
                    pos += 4
                    row.append(None if ln < 0 else body[pos:pos + ln].decode())
                    pos += max(ln, 0)
                res.rows.append(row)
            elif typ == b"C":
                res.tags.append(body.rstrip(b"\0").decode())
            elif typ == b"E":
                res.error = harness._parse_fields(body)
            elif typ == b"N":
                res.notices.append(harness._parse_fields(body))
            elif typ == b"Z":
                return res

    def ok(self, sql):
        r = self.run(sql)
        assert r.error is None, (sql, r.error)
        return r


def console(d, user=ADMIN_USER, password=ADMIN_PASSWORD, timeout=15, host="127.0.0.1"):
    c = Console(host, d.port, timeout=timeout)
    try:
        return c.startup(user, "pgbouncer", password)
    except BaseException:
        c.sock.close()
        raise


def start(tidepool, overrides=None, **kw):
    ini = {"admin_users": ADMIN_USER, "stats_users": STATS_USER, "pool_mode": "transaction"}
    ini.update(overrides or {})
    userlist = {harness.APP_USER: harness.APP_PASSWORD, harness.MD5_USER: harness.MD5_PASSWORD,
                ADMIN_USER: ADMIN_PASSWORD}
    return tidepool(ini, userlist=userlist, **kw)


def row_of(res, **match):
    for r in res.dicts():
        if all(r[k] == v for k, v in match.items()):
            return r
    raise AssertionError(f"no row {match} in {res.dicts()}")


class Background(threading.Thread):
    """Run fn() in a thread; .done tells whether it returned, .result / .error what it gave."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.finished = threading.Event()
        self.start()

    def run(self):
        try:
            self.result = self.fn()
        except BaseException as e:  # noqa: BLE001
            self.error = e
        finally:
            self.finished.set()

    def wait(self, timeout):
        return self.finished.wait(timeout)


def app_conn(d, autocommit=True):
    return d.connect(autocommit=autocommit)


# --------------------------------------------------------------------------- result sets


@pytest.mark.tidepool_only(reason="PgBouncer 1.25 result sets; Debian's 1.18 has fewer columns")
def test_every_show_matches_the_fixture(tidepool):
    d = start(tidepool)
    a = app_conn(d)
    with a.cursor() as cur:  # a pool, a server and a client for the row-producing SHOWs
        cur.execute("SELECT 1")
    c = console(d)
    for what, cols in FIXTURE["show"].items():
        r = c.run(f"SHOW {what};")
        assert r.error is None, (what, r.error)
        assert r.tags == ["SHOW"], (what, r.tags)
        if what == "HELP":
            assert r.columns is None
            assert r.notices and r.notices[0]["M"] == "Console usage", r.notices
            assert "SHOW HELP|CONFIG|DATABASES" in r.notices[0]["D"]
            continue
        expected = [(name, OIDS[t]) for name, t in cols]
        assert r.columns == expected, f"SHOW {what}: columns/types differ"
        for row in r.rows:
            assert len(row) == len(expected), (what, row)
    # SELECT is an alias of SHOW
    assert c.ok("select pools").columns == [(n, OIDS[t]) for n, t in FIXTURE["show"]["POOLS"]]
    a.close()
    c.close()


@pytest.mark.tidepool_only(reason="1.25 row sets")
def test_row_sets_and_values(tidepool):
    d = start(tidepool)
    a = app_conn(d)
    with a.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
    c = console(d)
    assert [r[0] for r in c.ok("SHOW LISTS").rows] == FIXTURE["lists_rows"]
    assert [r[0] for r in c.ok("SHOW MEM").rows] == FIXTURE["mem_rows"]
    assert [r[0] for r in c.ok("SHOW TOTALS").rows] == FIXTURE["totals_rows"]
    # one version line for the console and --version, with a PgBouncer version tools can parse
    version = subprocess.run([d.binary, "--version"], stdout=subprocess.PIPE, text=True,
                             check=True).stdout.splitlines()[0]
    assert re.fullmatch(r"PgBouncer 1\.25\.2 \(tidepool \d+\.\d+\.\d+\)", version)
    assert c.ok("SHOW VERSION").rows == [[version]]
    assert c.ok("SHOW STATE").rows == [["active", "yes"], ["paused", "no"], ["suspended", "no"]]
    for name, value in FIXTURE["fake_values"].items():
        assert c.ok(f"SHOW {name.upper()}").rows == [[value]]

    pools = c.ok("SHOW POOLS")
    admin = row_of(pools, database="pgbouncer", user="pgbouncer")
    assert admin["cl_active"] == "1" and admin["pool_mode"] == "statement"
    app = row_of(pools, database="appdb", user="app")
    assert app["cl_active"] == "1" and app["sv_idle"] == "1" and app["pool_mode"] == "transaction"
    assert [r["database"] for r in pools.dicts()] == sorted(r["database"] for r in pools.dicts())

    dbs = c.ok("SHOW DATABASES")
    adm = row_of(dbs, name="pgbouncer")
    assert adm["host"] is None and adm["port"] == str(d.port) and adm["force_user"] == "pgbouncer"
    assert adm["pool_mode"] == "statement" and adm["current_client_connections"] == "1"
    appdb = row_of(dbs, name="appdb")
    assert appdb["pool_mode"] is None and appdb["pool_size"] == "20" and appdb["current_connections"] == "1"

    clients = c.ok("SHOW CLIENTS")
    me = row_of(clients, database="pgbouncer")
    assert me["type"] == "C" and me["user"] == ADMIN_USER and me["replication"] == "none"
    assert TIME_RX.match(me["connect_time"]) and TIME_RX.match(me["request_time"])
    assert re.match(r"^0x[0-9a-f]+$", me["ptr"]) and int(me["id"]) > 0
    ac = row_of(clients, database="appdb")
    assert ac["state"] == "idle" and ac["link"] == ""  # transaction mode: no server between queries

    servers = c.ok("SHOW SERVERS")
    sv = row_of(servers, database="appdb")
    assert sv["type"] == "S" and sv["state"] == "idle" and int(sv["remote_pid"]) == backend
    assert sv["addr"] == "127.0.0.1" and sv["port"] == str(d.pg.port)

    sockets = c.ok("SHOW SOCKETS").dicts()
    assert {"cl_active", "sv_idle"} <= {r["state"] for r in sockets}

    users = {r["name"]: r for r in c.ok("SHOW USERS").dicts()}
    assert {"app", "md5user", "postgres", "pgbouncer"} <= set(users)
    assert users["app"]["pool_size"] == "" and users["app"]["pool_mode"] is None

    config = {r["key"]: r for r in c.ok("SHOW CONFIG").dicts()}
    assert config["pool_mode"]["value"] == "transaction" and config["pool_mode"]["default"] == "session"
    assert config["listen_port"]["changeable"] == "no" and config["default_pool_size"]["changeable"] == "yes"
    assert config["unix_socket_mode"]["value"] == "511"
    assert list(config) == sorted(config)
    a.close()
    c.close()


# --------------------------------------------------------------------------- SHOW <setting>


@pytest.mark.tidepool_only(reason="our extension: PgBouncer answers 'invalid command'")
def test_show_setting_extension(tidepool):
    d = start(tidepool, {"max_client_conn": "1000"})
    c = console(d)
    r = c.ok("SHOW pool_mode;")
    assert r.columns == [("pool_mode", 25)] and r.rows == [["transaction"]] and r.tags == ["SHOW"]
    assert c.ok("SHOW MAX_CLIENT_CONN").columns == [("max_client_conn", 25)]
    assert c.ok("show max_client_conn").rows == [["1000"]]
    assert c.ok("SHOW query_wait_timeout").rows == [["120"]]
    assert c.ok("SELECT default_pool_size").rows == [["20"]]
    r = c.run("SHOW no_such_setting")
    assert r.error["M"] == "invalid command 'SHOW no_such_setting', use SHOW HELP;"
    c.close()


def seed_ini_for(d):
    """The user's seed pgbouncer.ini with only ports, paths and the target changed."""
    with open(os.path.join(HERE, "seed", "pgbouncer.ini")) as f:
        text = f.read()
    subst = {
        "ahsp_db": f"ahsp_db = host=127.0.0.1 port={d.pg.port} dbname=postgres user=postgres",
        "listen_port": f"listen_port = {d.port}\nunix_socket_dir = {d.dir}",
        "auth_file": f"auth_file = {d.userlist_path}",
        "logfile": "logfile = ",
        "pidfile": f"pidfile = {os.path.join(d.dir, 'seed.pid')}",
    }
    out = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith(";") else None
        out.append(subst.get(key, line))
    return "\n".join(out) + "\n"


@pytest.mark.tidepool_only(reason="SHOW <setting> is our extension; 1.18 also rejects the seed's inline comments")
def test_seed_config_psql_show_pool_mode_and_max_client_conn(tidepool):
    """The user's commands, with psql, on the seed config: user pgbouncer over the Unix socket
    from the daemon's own uid (no password, docs/compatibility.md)."""
    d = tidepool(start=False)
    d.rewrite_ini(raw_ini=seed_ini_for(d))
    d.start()
    cmd = ["psql", "-X", "-h", d.dir, "-p", str(d.port), "-U", "pgbouncer", "-d", "pgbouncer",
           "-c", "SHOW pool_mode;", "-c", "SHOW max_client_conn;"]
    r = subprocess.run(harness.run_as_cmd(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=30, env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
    assert r.returncode == 0, r.stdout + d.log()[-2000:]
    assert re.search(r"^\s*pool_mode\s*\n-+\n\s*transaction\s*$", r.stdout, re.M), r.stdout
    assert re.search(r"^\s*max_client_conn\s*\n-+\n\s*1000\s*$", r.stdout, re.M), r.stdout
    assert "pgbouncer access from unix socket" in d.log()


# --------------------------------------------------------------------------- access


def test_access_rules(tidepool):
    d = start(tidepool)
    with pytest.raises(harness.WireError) as e:
        console(d, harness.MD5_USER, harness.MD5_PASSWORD)
    assert (e.value.severity, e.value.sqlstate, e.value.message) == ("FATAL", "08P01", "not allowed")
    with pytest.raises(harness.WireError) as e:
        console(d, ADMIN_USER, "wrong")
    assert e.value.message == "password authentication failed"
    with pytest.raises(harness.WireError):  # no password for "pgbouncer" over TCP
        console(d, "pgbouncer", "")

    s = console(d, STATS_USER, harness.APP_PASSWORD)
    assert s.params["server_version"].endswith("/bouncer") and s.params["client_encoding"] == "UTF8"
    assert s.ok("SHOW POOLS").tags == ["SHOW"]
    assert s.ok("SHOW CONFIG").rows
    for cmd in ("SHOW FDS", "PAUSE", "RESUME", "RELOAD", "SHUTDOWN", "KILL appdb", "SUSPEND",
                "DISABLE appdb", "ENABLE appdb", "RECONNECT", "WAIT_CLOSE", "SET default_pool_size = 5"):
        r = s.run(cmd)
        assert r.error and (r.error["S"], r.error["C"], r.error["M"]) == ("ERROR", "08P01", "admin access needed"), cmd
    r = s.run("SET client_encoding = 'utf8'")  # the fake parameters are for everyone
    assert r.error is None and r.tags == ["SET"] and r.notices[0]["M"] == "SET ignored"
    assert s.ok("SHOW STATS").tags == ["SHOW"]  # still usable
    assert d.alive()
    s.close()


def test_auth_type_any_gives_stats_access(tidepool):
    d = start(tidepool, {"auth_type": "any"})
    c = console(d, harness.MD5_USER, None)
    assert c.ok("SHOW POOLS").tags == ["SHOW"]
    assert c.run("PAUSE").error["M"] == "admin access needed"
    a = console(d, ADMIN_USER, None)  # listed in admin_users: full access
    assert a.ok("SHOW FDS").tags == ["SHOW"]
    c.close()
    a.close()


def test_garbage_keeps_the_session(tidepool):
    d = start(tidepool)
    c = console(d)
    for q in ("hello", "SELECT 1", "SHOW POOLS; SHOW STATS", "SHOW POOLS;;", "SHOW", "", "BEGIN",
              "SHOW server_version", "SHOW ALL", "SET server_reset_query = DISCARD ALL", "\u00e9\u00e8"):
        r = c.run(q)
        assert r.error is not None, q
        assert (r.error["S"], r.error["C"]) == ("ERROR", "08P01")
        assert r.error["M"] == f"invalid command '{q}', use SHOW HELP;"
    assert c.run("SHOW " + "x" * 70).error["M"] == "bad arguments"
    assert c.run("SET foo = 1").error["M"] == "SET failed"
    assert c.run("RELOAD now").error["M"] == "invalid command 'RELOAD now', use SHOW HELP;"
    assert c.ok("show pools").tags == ["SHOW"]
    assert re.search(r"ERROR invalid command 'hello', use SHOW HELP;", d.log())
    c.close()


def test_extended_protocol_is_refused(tidepool):
    d = start(tidepool)
    c = console(d)
    c.send(b"P", b"\0SHOW POOLS\0\0\0")
    c.send(b"S", b"")
    typ, body = c.read_msg()
    assert typ == b"E"
    f = harness._parse_fields(body)
    assert (f["S"], f["C"], f["M"]) == ("ERROR", "08P01", "extended query protocol not supported by admin console")
    msgs = []
    with pytest.raises(ConnectionError):
        for _ in range(5):
            msgs.append(c.read_msg())
    assert d.alive()


def test_psycopg2_and_psql_clients(tidepool):
    d = start(tidepool)
    conn = psycopg2.connect(host="127.0.0.1", port=d.port, user=ADMIN_USER, password=ADMIN_PASSWORD,
                            dbname="pgbouncer", connect_timeout=10)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SHOW POOLS")
        cols = [(col.name, col.type_code) for col in cur.description]
        assert cols[:3] == [("database", 25), ("user", 25), ("cl_active", 23)]
        cur.execute("SHOW STATS")
        assert cur.description[1].type_code == 1700
    conn.close()
    env = dict(os.environ, PGPASSWORD=ADMIN_PASSWORD, PGCONNECT_TIMEOUT="10")
    r = subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(d.port), "-U", ADMIN_USER, "-d", "pgbouncer",
                        "-c", "SHOW POOLS;", "-c", "SHOW STATS;", "-c", "SHOW SERVERS;", "-c", "SHOW CLIENTS;"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stdout
    assert "cl_active" in r.stdout and "total_xact_count" in r.stdout and "pgbouncer" in r.stdout


# --------------------------------------------------------------------------- control commands


def test_pause_blocks_until_released_and_resume(tidepool):
    d = start(tidepool, {"default_pool_size": "2"})
    a = app_conn(d, autocommit=False)
    cur = a.cursor()
    cur.execute("SELECT 1")  # psycopg2 opened a transaction: the server stays with `a`
    c = console(d)
    pause = Background(lambda: c.run("PAUSE"))
    assert not pause.wait(1.5), "PAUSE must wait while a transaction holds a server"
    a.commit()
    assert pause.wait(15), "PAUSE must finish once the server is released"
    assert pause.error is None and pause.result.tags == ["PAUSE"], (pause.error, pause.result and pause.result.error)
    c2 = console(d)
    if not PGBOUNCER_118:
        assert c2.ok("SHOW STATE").rows[1] == ["paused", "yes"]
    assert row_of(c2.ok("SHOW POOLS"), database="appdb")["sv_idle"] == "0"  # servers are gone
    assert c2.run("PAUSE").error["M"] == "already suspended/paused"

    b = app_conn(d)  # logging in works; queries wait
    q = Background(lambda: b.cursor().execute("SELECT 2"))
    assert not q.wait(1.5), "a query must wait while paused"
    assert int(row_of(c2.ok("SHOW POOLS"), database="appdb")["cl_waiting"]) >= 1
    assert c2.ok("RESUME").tags == ["RESUME"]
    assert q.wait(10) and q.error is None, q.error
    if not PGBOUNCER_118:
        assert c2.ok("SHOW STATE").rows[0] == ["active", "yes"]
    assert c2.run("RESUME").error["M"] == "pooler is not paused/suspended"
    log = d.log()
    assert "LOG PAUSE command issued" in log and "LOG RESUME command issued" in log
    for x in (a, b, c, c2):
        x.close()


@pytest.mark.tidepool_only(reason="SHOW STATE is 1.25")
def test_cancel_of_a_waiting_pause_resumes(tidepool):
    """psql's ^C on a PAUSE that waits: PgBouncer's admin_handle_cancel resumes."""
    d = start(tidepool)
    a = app_conn(d, autocommit=False)
    a.cursor().execute("SELECT 1")  # holds a server
    conn = psycopg2.connect(host="127.0.0.1", port=d.port, user=ADMIN_USER, password=ADMIN_PASSWORD,
                            dbname="pgbouncer", connect_timeout=10)
    conn.autocommit = True
    pause = Background(lambda: conn.cursor().execute("PAUSE"))
    assert not pause.wait(1.0)
    conn.cancel()
    assert pause.wait(15) and pause.error is None, pause.error
    c = console(d)
    assert c.ok("SHOW STATE").rows[0] == ["active", "yes"]
    a.commit()
    with a.cursor() as cur:
        cur.execute("SELECT 2")
    for x in (a, conn, c):
        x.close()


def test_pause_one_database(tidepool):
    d = start(tidepool)
    a = app_conn(d)
    with a.cursor() as cur:
        cur.execute("SELECT 1")
    c = console(d)
    assert c.ok("PAUSE appdb").tags == ["PAUSE"]  # its idle server is closed at once
    assert row_of(c.ok("SHOW DATABASES"), name="appdb")["paused"] == "1"
    assert c.run("PAUSE pgbouncer").error["M"] == "cannot pause admin db: pgbouncer"
    assert c.run("PAUSE nosuch").error["M"] == "no such database: nosuch"
    q = Background(lambda: a.cursor().execute("SELECT 2"))
    assert not q.wait(1.0)
    other = d.connect(dbname="postgres")
    with other.cursor() as cur:  # other databases keep working
        cur.execute("SELECT 3")
    assert c.ok("RESUME appdb").tags == ["RESUME"]
    assert q.wait(10) and q.error is None
    assert c.run("RESUME appdb").error["M"] == "database appdb is not paused"
    assert "PAUSE 'appdb' command issued" in d.log()
    a.close()
    other.close()


def test_reload_picks_up_default_pool_size(tidepool):
    d = start(tidepool)
    c = console(d)

    def pool_size():
        return row_of(c.ok("SHOW CONFIG"), key="default_pool_size")["value"]

    assert pool_size() == "20"
    d.rewrite_ini({"admin_users": ADMIN_USER, "stats_users": STATS_USER, "pool_mode": "transaction",
                   "default_pool_size": "7"},
                  userlist={harness.APP_USER: harness.APP_PASSWORD, ADMIN_USER: ADMIN_PASSWORD})
    r = c.ok("RELOAD")
    assert r.tags == ["RELOAD"]
    assert pool_size() == "7"
    assert row_of(c.ok("SHOW DATABASES"), name="appdb")["pool_size"] == "7"
    # a broken file: F0000, the running config stays, the session goes on
    with open(d.ini_path, "a") as f:
        f.write("no_such_setting = 1\n")
    r = c.run("RELOAD")
    if not PGBOUNCER_118:  # 1.18 keeps going with a partly read file
        assert (r.error["S"], r.error["C"], r.error["M"]) == ("ERROR", "F0000",
                                                             "RELOAD failed, see logs for additional details")
    assert pool_size() == "7"
    assert "RELOAD command issued" in d.log()
    c.close()


@pytest.mark.tidepool_only(reason="no-reload keys: PgBouncer ignores them silently, we answer an error")
def test_set(tidepool):
    d = start(tidepool)
    c = console(d)
    assert c.ok("SET default_pool_size = 3").tags == ["SET default_pool_size=3"]
    assert c.ok("SHOW default_pool_size").rows == [["3"]]
    assert c.ok("set query_wait_timeout to '2.5'").tags == ["SET query_wait_timeout=2.5"]
    assert c.ok("SHOW query_wait_timeout").rows == [["2.5"]]
    assert c.ok("SET server_reset_query = 'DISCARD ALL'").tags == ["SET server_reset_query=DISCARD ALL"]
    r = c.run("SET listen_port = 7777")
    assert r.error["C"] == "08P01" and "listen_port" in r.error["M"] and "start" in r.error["M"]
    assert c.ok("SHOW listen_port").rows == [[str(d.port)]]
    r = c.run("SET default_pool_size = lots")
    assert r.error["M"] == "SET failed" and "lots" in r.error.get("D", "")
    r = c.run("SET pool_mode = 'transaction'")
    assert r.error is None
    c.close()


def pooler_error_of(raw):
    """The ErrorResponse a pooler sent on its own to a raw connection, before closing it."""
    typ, body = raw.read_msg()
    assert typ == b"E", (typ, body)
    f = harness._parse_fields(body)
    with pytest.raises((ConnectionError, OSError)):
        raw.read_msg()
    return f["S"], f["C"], f["M"]


def test_kill_and_resume(tidepool):
    d = start(tidepool)
    a = harness.raw_login(d.port, harness.APP_USER, "appdb", harness.APP_PASSWORD)
    a.query("SELECT 1")
    c = console(d)
    assert c.ok("KILL appdb").tags == ["KILL"]
    assert pooler_error_of(a) == ("FATAL", "08P01", "database removed")
    assert row_of(c.ok("SHOW DATABASES"), name="appdb")["paused"] == "1"
    assert c.run("KILL pgbouncer").error["M"] == "cannot kill admin db: pgbouncer"
    if PGBOUNCER_118:  # 1.18 keeps a login that waited on a killed database hanging after RESUME
        return
    conns = []

    def new_client_query():  # PgBouncer holds the login, tidepool the first query
        b = app_conn(d)
        conns.append(b)
        b.cursor().execute("SELECT 2")

    q = Background(new_client_query)
    assert not q.wait(1.0), "the killed database stays paused"
    assert c.ok("RESUME appdb").tags == ["RESUME"]
    assert q.wait(10) and q.error is None, q.error
    assert "KILL 'appdb' command issued" in d.log()
    for b in conns:
        b.close()


@pytest.mark.tidepool_only(reason="KILL_CLIENT is 1.25")
def test_kill_client(tidepool):
    d = start(tidepool)
    a = harness.raw_login(d.port, harness.APP_USER, "appdb", harness.APP_PASSWORD)
    a.query("SELECT 1")
    c = console(d)
    cid = row_of(c.ok("SHOW CLIENTS"), database="appdb")["id"]
    assert c.run("KILL_CLIENT abc").error["M"] == "invalid client pointer supplied"
    assert c.run("KILL_CLIENT 999999").error["M"] == "client not found"
    assert c.ok(f"KILL_CLIENT {cid}").tags == ["KILL_CLIENT"]
    assert pooler_error_of(a) == ("FATAL", "08P01", "admin forced disconnect")
    c.close()


def test_disable_enable(tidepool):
    d = start(tidepool)
    c = console(d)
    assert c.run("DISABLE").error["M"] == "a database is required"
    assert c.ok("DISABLE appdb").tags == ["DISABLE"]
    assert row_of(c.ok("SHOW DATABASES"), name="appdb")["disabled"] == "1"
    with pytest.raises(psycopg2.Error) as e:
        app_conn(d)
    assert 'database "appdb" is disabled' in str(e.value)
    assert c.ok("ENABLE appdb").tags == ["ENABLE"]
    app_conn(d).close()
    assert c.run("ENABLE nosuch").error["M"] == "no such database: nosuch"
    c.close()


def test_reconnect_and_wait_close(tidepool):
    d = start(tidepool, {"pool_mode": "session"})
    a = app_conn(d)
    with a.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid1 = cur.fetchone()[0]
    c = console(d)
    assert c.ok("RECONNECT appdb").tags == ["RECONNECT"]
    assert row_of(c.ok("SHOW SERVERS"), database="appdb")["close_needed"] == "1"
    wait = Background(lambda: c.run("WAIT_CLOSE appdb"))
    assert not wait.wait(1.0), "session mode: the server is in use until the client leaves"
    a.close()
    assert wait.wait(10) and wait.result.tags == ["WAIT_CLOSE"]
    b = app_conn(d)
    with b.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        assert cur.fetchone()[0] != pid1
    b.close()
    assert c.ok("WAIT_CLOSE").tags == ["WAIT_CLOSE"]
    assert c.run("RECONNECT pgbouncer").error["M"] == "cannot reconnect admin db: pgbouncer"
    c.close()


@pytest.mark.tidepool_only(reason="SHUTDOWN WAIT_FOR_CLIENTS is PgBouncer 1.23+")
def test_shutdown_wait_for_clients(tidepool):
    d = start(tidepool)
    a = app_conn(d)
    c = console(d)
    assert c.ok("SHUTDOWN WAIT_FOR_CLIENTS").tags == ["SHUTDOWN"]
    harness.wait_until(lambda: not harness.port_open("127.0.0.1", d.port), 5, what="TCP listener closed")
    with a.cursor() as cur:  # existing clients keep working
        cur.execute("SELECT 5")
        assert cur.fetchone() == (5,)
    a.close()
    time.sleep(0.5)
    assert d.alive(), "the console is a client too"
    c.close()
    assert d.proc.wait(timeout=10) == 0
    assert "SHUTDOWN WAIT_FOR_CLIENTS command issued" in d.log()


@pytest.mark.tidepool_only(reason="SHUTDOWN WAIT_FOR_SERVERS is PgBouncer 1.23+")
def test_shutdown_wait_for_servers(tidepool):
    d = start(tidepool)
    a = app_conn(d, autocommit=False)
    a.cursor().execute("SELECT 1")  # a transaction holds a server
    c = console(d)
    assert c.ok("SHUTDOWN WAIT_FOR_SERVERS").tags == ["SHUTDOWN"]
    time.sleep(0.5)
    assert d.alive(), "waits for the server to be released"
    a.commit()
    assert d.proc.wait(timeout=10) == 0


def test_shutdown_wait_for_servers_refuses_new_transactions(tidepool):
    """While SHUTDOWN WAIT_FOR_SERVERS waits, an open transaction goes on, but a client that
    starts a new one, or already waits for a server, is closed with "server shutting down"."""
    d = start(tidepool, {"default_pool_size": "1"})
    a = app_conn(d, autocommit=False)
    a.cursor().execute("SELECT 1")  # a transaction holds the only server
    idle = app_conn(d)
    waiting = app_conn(d)
    blocked = Background(lambda: waiting.cursor().execute("SELECT 1"))
    time.sleep(0.3)
    assert not blocked.finished.is_set()
    c = console(d)
    assert c.ok("SHUTDOWN WAIT_FOR_SERVERS").tags == ["SHUTDOWN"]
    a.cursor().execute("SELECT 2")  # same transaction: still served
    assert blocked.wait(5) and isinstance(blocked.error, psycopg2.OperationalError)
    with pytest.raises(psycopg2.OperationalError):
        idle.cursor().execute("SELECT 1")
    assert d.log().count("closing because: server shutting down") >= 2
    a.commit()
    assert d.proc.wait(timeout=10) == 0


def test_shutdown_immediate(tidepool):
    d = start(tidepool)
    c = console(d)
    c.send(b"Q", b"SHUTDOWN\0")
    assert d.proc.wait(timeout=10) == 0
    with pytest.raises((ConnectionError, OSError)):
        c.read_msg()  # no reply: the process went away
    assert "SHUTDOWN command issued" in d.log()


@pytest.mark.tidepool_only(reason="SHOW STATE is 1.25")
def test_sigusr1_sigusr2_pause_resume(tidepool):
    d = start(tidepool)
    a = app_conn(d)
    c = console(d)
    d.send_signal(signal.SIGUSR1)
    harness.wait_until(lambda: c.ok("SHOW STATE").rows[1] == ["paused", "yes"], 5, what="paused")
    q = Background(lambda: a.cursor().execute("SELECT 1"))
    assert not q.wait(1.0)
    d.send_signal(signal.SIGUSR2)
    assert q.wait(10) and q.error is None
    assert c.ok("SHOW STATE").rows[0] == ["active", "yes"]
    a.close()
    c.close()


@pytest.mark.tidepool_only(reason="SHOW STATE is 1.25")
def test_suspend_resume(tidepool):
    d = start(tidepool)
    a = app_conn(d)
    with a.cursor() as cur:
        cur.execute("SELECT 1")
    c = console(d)
    assert c.ok("SUSPEND").tags == ["SUSPEND"]
    assert c.ok("SHOW STATE").rows == [["active", "no"], ["paused", "no"], ["suspended", "yes"]]
    q = Background(lambda: a.cursor().execute("SELECT 2"))
    assert not q.wait(1.0)
    assert c.ok("RESUME").tags == ["RESUME"]
    assert q.wait(10) and q.error is None
    a.close()
    c.close()


# --------------------------------------------------------------------------- stats under load


def pool_row(c):
    return row_of(c.ok("SHOW POOLS"), database="appdb", user=harness.APP_USER)


def stats_row(c):
    r = c.ok("SHOW STATS")
    assert r.columns[0] == ("database", 25) and all(t == 1700 for _, t in r.columns[1:])
    for row in r.dicts():
        if row["database"] == "appdb":
            return {k: (v if k == "database" else int(v)) for k, v in row.items()}
    return None


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.tidepool_only(reason="1.25 SHOW STATS columns")
def test_pgbench_pools_and_stats(pgbench_db, tidepool):
    pg = pgbench_db
    d = start(tidepool, {"default_pool_size": "20", "max_client_conn": "200", "stats_period": "2"})
    c = console(d)
    before = stats_row(c) or {"total_xact_count": 0, "total_query_count": 0}
    duration = 12
    bench = subprocess.Popen([os.path.join(pg.bindir, "pgbench"), "-c", "100", "-j", "2", "-T", str(duration), "-n"],
                             env=d.env_for(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples, mid_stats = [], None
    try:
        # pgbench's clock starts once its 100 connections are up: sample from then on
        harness.wait_until(lambda: bench.poll() is not None or
                           int(pool_row(c)["cl_active"]) + int(pool_row(c)["cl_waiting"]) == 100,
                           60, interval=0.2, what="100 pgbench clients")
        time.sleep(1)
        deadline = time.monotonic() + duration - 4
        while time.monotonic() < deadline and bench.poll() is None:
            p = pool_row(c)
            samples.append((int(p["cl_active"]) + int(p["cl_waiting"]),
                            int(p["sv_active"]) + int(p["sv_idle"]) + int(p["sv_used"]), int(p["maxwait"])))
            if mid_stats is None and time.monotonic() > deadline - 3:
                mid_stats = stats_row(c)
            time.sleep(0.3)
        out, _ = bench.communicate(timeout=duration + 60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)
    assert bench.returncode == 0, out[-3000:]
    processed = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    assert samples, "no SHOW POOLS sample during the run"
    assert all(cl == 100 for cl, _, _ in samples), samples
    assert all(sv <= 20 for _, sv, _ in samples), samples
    time.sleep(0.5)
    after = stats_row(c)
    xacts = after["total_xact_count"] - before["total_xact_count"]
    queries = after["total_query_count"] - before["total_query_count"]
    assert abs(xacts - processed) <= processed * 0.01, (xacts, processed)
    assert abs(queries - 7 * processed) <= 7 * processed * 0.01, (queries, processed)  # TPC-B: 7 statements
    assert after["total_server_assignment_count"] >= processed
    assert after["total_xact_time"] > 0 and after["total_query_time"] > 0 and after["total_wait_time"] > 0
    assert after["total_received"] > 0 and after["total_sent"] > 0
    # averages over the stats period, in the middle of the run
    assert mid_stats is not None
    assert mid_stats["avg_xact_count"] > 0 and mid_stats["avg_query_count"] >= mid_stats["avg_xact_count"]
    assert 0 < mid_stats["avg_xact_time"] < 10_000_000 and mid_stats["avg_recv"] > 0
    totals = {r[0]: int(r[1]) for r in c.ok("SHOW TOTALS").rows}
    assert totals["total_xact_count"] >= after["total_xact_count"]
    print(f"pgbench: {processed} transactions; SHOW STATS: {xacts} xacts, {queries} queries; "
          f"{len(samples)} SHOW POOLS samples, max servers {max(s for _, s, _ in samples)}")
    c.close()


def test_stats_count_simple_queries(tidepool):
    d = start(tidepool)
    c = console(d)
    a = app_conn(d)
    before = stats_row(c) or {k: 0 for k in ("total_xact_count", "total_query_count", "total_xact_time")}
    with a.cursor() as cur:
        for i in range(10):
            cur.execute("SELECT pg_sleep(0.01)")
    after = stats_row(c)
    assert after["total_xact_count"] - before["total_xact_count"] == 10
    assert after["total_query_count"] - before["total_query_count"] == 10
    assert after["total_xact_time"] - before["total_xact_time"] >= 10 * 10_000  # autocommit statements count
    a.close()
    c.close()


def totals(c):
    return {name: int(value) for name, value in c.ok("SHOW TOTALS").rows}


@pytest.mark.tidepool_only(reason="PgBouncer 1.25 counts console commands; 1.18 did not")
def test_console_commands_count_in_stats(tidepool):
    """Each console command is one query and one transaction of database pgbouncer, visible
    in SHOW STATS and in SHOW TOTALS (which counts itself)."""
    d = start(tidepool)
    c = console(d)
    first = totals(c)
    c.ok("SHOW VERSION")
    c.ok("SHOW POOLS")
    second = totals(c)
    assert second["total_xact_count"] - first["total_xact_count"] == 3
    assert second["total_query_count"] - first["total_query_count"] == 3
    row = row_of(c.ok("SHOW STATS"), database="pgbouncer")
    assert int(row["total_query_count"]) == second["total_query_count"] + 1
    c.close()


def test_session_mode_stats_per_database(tidepool):
    """Session pooling: one server assignment per client, one transaction per autocommit
    statement or explicit transaction, one query per statement (BEGIN and COMMIT included)."""
    d = start(tidepool, {"pool_mode": "session"})
    for _ in range(3):
        a = app_conn(d)
        a.cursor().execute("SELECT 1")
        a.close()
    a = app_conn(d, autocommit=False)
    with a.cursor() as cur:
        for _ in range(2):
            cur.execute("SELECT 1")
            cur.execute("SELECT 1")
            a.commit()
    a.close()
    c = console(d)
    row = row_of(c.ok("SHOW STATS"), database="appdb")
    assert int(row["total_server_assignment_count"]) == 4
    assert int(row["total_xact_count"]) == 3 + 2
    assert int(row["total_query_count"]) == 3 + 2 * 4  # BEGIN, SELECT, SELECT, COMMIT
    c.close()


def test_server_lifetime_zero_uses_each_server_once(tidepool):
    """server_lifetime = 0: a server is closed when its client lets go of it, so every client
    gets a new one; clients and servers share one id sequence (SHOW SOCKETS)."""
    d = start(tidepool, {"pool_mode": "session", "server_lifetime": "0"})
    c = console(d)
    admin_id = max(int(r["id"]) for r in c.ok("SHOW SOCKETS").dicts())
    pids = set()
    for i in range(1, 4):
        a = app_conn(d)
        with a.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pids.add(cur.fetchone()[0])
        servers = c.ok("SHOW SERVERS").dicts()
        assert [int(s["id"]) for s in servers] == [admin_id + 2 * i]
        clients = [int(r["id"]) for r in c.ok("SHOW CLIENTS").dicts() if r["database"] == "appdb"]
        assert clients == [admin_id + 2 * i - 1]
        a.close()
        harness.wait_until(lambda: not c.ok("SHOW SERVERS").rows, 5, what="server closed after use")
    assert len(pids) == 3
    assert "server lifetime over" in d.log()
    c.close()
