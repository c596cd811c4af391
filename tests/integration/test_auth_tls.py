"""Authentication and TLS (issue 5): SCRAM towards clients and pass-through to PostgreSQL,
client and server TLS, HBA, auth_query.

Every test binds 127.0.0.1 only; the TLS tests make a throwaway CA with the openssl CLI.
"""

import asyncio
import os
import re
import subprocess
import threading
import time

import asyncpg
import psycopg2
import pytest

import harness
from harness import APP_PASSWORD, APP_USER, MD5_PASSWORD, MD5_USER, WireError, raw_login


def assert_fatal(err, text, sqlstate="08P01"):
    assert err.message == text, err.fields
    assert err.sqlstate == sqlstate, err.fields
    assert err.fields.get("S") == "FATAL", err.fields


def pg_secret(pg, user):
    return pg.sql("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (user,))[0][0]


def psql(d, sql, user=APP_USER, password=APP_PASSWORD, dbname="appdb", extra_env=None, conninfo=None):
    env = d.env_for(user=user, password=password, dbname=dbname)
    env.update(extra_env or {})
    cmd = ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]
    if conninfo:
        cmd.insert(1, conninfo)
    return subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=30)


def asyncpg_query(port, sql, user=APP_USER, password=APP_PASSWORD, ssl=False):
    async def go():
        c = await asyncpg.connect(host="127.0.0.1", port=port, user=user, password=password,
                                  database="appdb", ssl=ssl, timeout=10)
        try:
            return await c.fetchval(sql)
        finally:
            await c.close()
    return asyncio.run(go())


def one(d, sql, **kw):
    with d.connect(**kw) as c, c.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


# --------------------------------------------------------------------------- SCRAM (clients)


def test_scram_clients_plain_password_in_userlist(tidepool):
    """auth_type scram-sha-256 with a plain password stored: psql, psycopg2, asyncpg and a raw
    client log in with SCRAM; tidepool logs in to PostgreSQL (SCRAM) with that password."""
    d = tidepool({"auth_type": "scram-sha-256"})
    r = psql(d, "SELECT current_user")
    assert r.returncode == 0 and r.stdout.strip() == APP_USER, r.stdout
    assert one(d, "SELECT 1") == 1
    assert asyncpg_query(d.port, "SELECT 7") == 7
    c = raw_login(d.port, APP_USER, "appdb", APP_PASSWORD)
    assert c.query("SELECT 42")[0] == [["42"]]
    c.close()
    # the md5 role logs in with SCRAM to us; we use md5 towards PostgreSQL
    assert one(d, "SELECT current_user", user=MD5_USER, password=MD5_PASSWORD) == MD5_USER


def test_scram_pass_through_no_plaintext_anywhere(tidepool, pg):
    """auth_file holds only PostgreSQL's own SCRAM secret: the client's proof is enough for
    tidepool to log in to PostgreSQL (pass-through)."""
    secret = pg_secret(pg, APP_USER)
    assert secret.startswith("SCRAM-SHA-256$")
    d = tidepool({"auth_type": "scram-sha-256"}, userlist={APP_USER: secret})
    with open(d.userlist_path) as f, open(d.ini_path) as g:
        assert APP_PASSWORD not in f.read() + g.read()
    assert one(d, "SELECT current_user") == APP_USER
    r = psql(d, "SELECT 2")
    assert r.returncode == 0 and r.stdout.strip() == "2", r.stdout
    assert asyncpg_query(d.port, "SELECT 3") == 3
    # wrong password is refused with PgBouncer's text
    with pytest.raises(WireError) as ei:
        raw_login(d.port, APP_USER, "appdb", "wrong")
    assert_fatal(ei.value, "SASL authentication failed")


def test_scram_pass_through_new_server_connections(tidepool, pg):
    """Servers opened later (pool growth, after the first ones are closed) still log in."""
    secret = pg_secret(pg, APP_USER)
    d = tidepool({"auth_type": "scram-sha-256", "pool_mode": "session"}, userlist={APP_USER: secret})
    conns = [d.connect() for _ in range(4)]  # session mode: four server connections
    try:
        for c in conns:
            with c.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
        pids = set()
        for c in conns:
            with c.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                pids.add(cur.fetchone()[0])
        assert len(pids) == 4
    finally:
        for c in conns:
            c.close()


def test_md5_auth_type_falls_back_to_scram_for_scram_secret(tidepool, pg):
    secret = pg_secret(pg, APP_USER)
    d = tidepool({"auth_type": "md5"},
                 userlist={APP_USER: secret, MD5_USER: harness.md5_secret(MD5_USER, MD5_PASSWORD)})
    assert one(d, "SELECT current_user") == APP_USER  # SCRAM, pass-through
    assert one(d, "SELECT current_user", user=MD5_USER, password=MD5_PASSWORD) == MD5_USER  # md5
    with pytest.raises(WireError) as ei:
        raw_login(d.port, APP_USER, "appdb", "wrong")
    assert_fatal(ei.value, "SASL authentication failed")
    with pytest.raises(WireError) as ei:
        raw_login(d.port, MD5_USER, "appdb", "wrong")
    assert_fatal(ei.value, "password authentication failed")


def test_scram_unknown_user_and_md5_secret(tidepool):
    """No user enumeration: an unknown user goes through a full-looking SCRAM exchange and
    gets the same error as a wrong password; an md5 hash cannot serve SCRAM."""
    d = tidepool({"auth_type": "scram-sha-256"},
                 userlist={APP_USER: APP_PASSWORD, MD5_USER: harness.md5_secret(MD5_USER, MD5_PASSWORD)})
    for user, pw in (("nobody", "x"), (MD5_USER, MD5_PASSWORD), (APP_USER, "wrong")):
        with pytest.raises(WireError) as ei:
            raw_login(d.port, user, "appdb", pw)
        assert_fatal(ei.value, "SASL authentication failed")
        with pytest.raises(psycopg2.OperationalError) as ei2:
            d.connect(user=user, password=pw)
        assert "SASL authentication failed" in str(ei2.value)
    d.wait_log(r"no such user: nobody")


def test_plain_auth_type_checks_scram_secret(tidepool, pg):
    secret = pg_secret(pg, APP_USER)
    d = tidepool({"auth_type": "plain"}, userlist={APP_USER: secret})
    with pytest.raises(WireError) as ei:
        raw_login(d.port, APP_USER, "appdb", "wrong")
    assert_fatal(ei.value, "password authentication failed")
    # right password accepted by us; the server login needs keys we do not have (no SCRAM
    # from the client), which PgBouncer refuses the same way
    c = harness.RawConn("127.0.0.1", d.port)
    with pytest.raises((WireError, ConnectionError, OSError)):
        c.sock.settimeout(5)
        c.startup(APP_USER, "appdb", APP_PASSWORD)
        c.query("SELECT 1")
    c.sock.close()


@pytest.mark.timeout(240)
def test_thousand_wrong_passwords_others_still_served(tidepool, pg):
    """1,000 wrong-password attempts (SCRAM and md5) leave tidepool serving everyone else."""
    d = tidepool({"auth_type": "md5", "max_client_conn": "400"},
                 userlist={APP_USER: pg_secret(pg, APP_USER),
                           MD5_USER: harness.md5_secret(MD5_USER, MD5_PASSWORD)})
    good = d.connect()
    stop = threading.Event()
    errors = []

    def hammer(user, n):
        try:
            for _ in range(n):
                try:
                    raw_login(d.port, user, "appdb", "wrong").close()
                    errors.append("wrong password accepted")
                except WireError as e:
                    if e.message not in ("SASL authentication failed", "password authentication failed"):
                        errors.append(e.message)
                if stop.is_set():
                    return
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=hammer, args=(u, 125)) for u in (APP_USER, MD5_USER, "nobody", APP_USER,
                                                                       MD5_USER, "nobody", APP_USER, MD5_USER)]
    for t in threads:
        t.start()
    try:
        t0 = time.monotonic()
        while any(t.is_alive() for t in threads):
            with good.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
            assert one(d, "SELECT 5") == 5  # fresh logins work meanwhile
            assert time.monotonic() - t0 < 200
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors[:5]
    assert d.alive()
    good.close()


# --------------------------------------------------------------------------- TLS fixtures


def _openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout


class Certs:
    """A throwaway CA (and a second, unrelated one) with a server and two client certificates."""

    def __init__(self):
        self.dir = harness.make_tempdir("tp-certs-")
        d = self.dir
        for ca in ("ca", "ca2"):
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", f"{ca}.key", "-out",
                     f"{ca}.crt", "-days", "2", "-subj", f"/CN=tidepool test {ca}", cwd=d)
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        with open(os.path.join(d, "wronghost.ext"), "w") as f:
            f.write("subjectAltName=DNS:elsewhere.example\n")
        self._leaf("server", "localhost", "ca", "server.ext")
        self._leaf("server2", "localhost", "ca2", "server.ext")  # same names, other CA
        self._leaf("wronghost", "elsewhere.example", "ca", "wronghost.ext")
        self._leaf("client_app", APP_USER, "ca")
        self._leaf("client_md5", MD5_USER, "ca")
        self._leaf("client_foreign", APP_USER, "ca2")
        for n in os.listdir(d):
            os.chmod(os.path.join(d, n), 0o600 if n.endswith(".key") else 0o644)
        harness.give_to_daemon_user(d)

    def _leaf(self, name, cn, ca, ext=None):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", cwd=self.dir)
        args = ["x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2"]
        if ext:
            args += ["-extfile", ext]
        _openssl(*args, cwd=self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def client_key_copy(self, name):
        """libpq refuses a key readable by others; our copy, owned by us, mode 0600."""
        src, dst = self.path(f"{name}.key"), self.path(f"{name}.mine.key")
        if not os.path.exists(dst):
            with open(src) as f, open(dst, "w") as g:
                g.write(f.read())
            os.chmod(dst, 0o600)
        return dst


@pytest.fixture(scope="session")
def certs():
    c = Certs()
    yield c
    import shutil
    shutil.rmtree(c.dir, ignore_errors=True)


def tls_settings(certs, mode="require", **extra):
    s = {"client_tls_sslmode": mode, "client_tls_cert_file": certs.path("server.crt"),
         "client_tls_key_file": certs.path("server.key")}
    s.update(extra)
    return s


def ssl_ctx(certs, verify=True, cert=None):
    import ssl
    ctx = ssl.create_default_context(cafile=certs.path("ca.crt"))
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(certs.path(f"{cert}.crt"), certs.client_key_copy(cert))
    return ctx


# --------------------------------------------------------------------------- client TLS


def test_client_tls_require_and_verify_full(tidepool, certs):
    d = tidepool(tls_settings(certs, "require"))
    r = psql(d, "SHOW ssl_is_used", extra_env={"PGSSLMODE": "require"})
    # psql's own view: the session is encrypted (sslinfo is on PostgreSQL, so ask libpq)
    r = psql(d, "SELECT 1", extra_env={"PGSSLMODE": "require"})
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stdout
    r = psql(d, "SELECT 1", extra_env={"PGSSLMODE": "verify-full", "PGSSLROOTCERT": certs.path("ca.crt")})
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stdout
    # the certificate is for localhost and 127.0.0.1: a wrong CA fails on the client side
    r = psql(d, "SELECT 1", extra_env={"PGSSLMODE": "verify-full", "PGSSLROOTCERT": certs.path("ca2.crt")})
    assert r.returncode != 0 and "certificate verify failed" in r.stdout, r.stdout
    d.wait_log(r"login attempt: db=appdb user=app tls=TLSv1\.[23]/\S+ ")
    # plaintext is refused with require
    r = psql(d, "SELECT 1", extra_env={"PGSSLMODE": "disable"})
    assert r.returncode != 0 and "SSL required" in r.stdout, r.stdout
    with pytest.raises(WireError) as ei:
        raw_login(d.port, APP_USER, "appdb", APP_PASSWORD)
    assert_fatal(ei.value, "SSL required")
    # psycopg2 and asyncpg over TLS
    with d.connect(sslmode="verify-full", sslrootcert=certs.path("ca.crt")) as c, c.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
        assert c.info.ssl_in_use
    assert asyncpg_query(d.port, "SELECT 3", ssl=ssl_ctx(certs, verify=False)) == 3


def test_show_clients_tls_column(tidepool, certs):
    import psycopg2
    d = tidepool(tls_settings(certs, "prefer"),
                 userlist={APP_USER: APP_PASSWORD, "postgres": "adminpw"})
    tls_conn = d.connect(sslmode="require")
    plain_conn = d.connect(sslmode="disable")
    try:
        admin = psycopg2.connect(d.dsn(user="postgres", password="adminpw", dbname="pgbouncer",
                                       sslmode="disable"))
        admin.autocommit = True
        cur = admin.cursor()
        cur.execute("SHOW CLIENTS")
        cols = [c.name for c in cur.description]
        rows = [dict(zip(cols, r)) for r in cur.fetchall() if r[cols.index("user")] == APP_USER]
        admin.close()
        tls_values = sorted(r["tls"] or "" for r in rows)
        assert len(tls_values) == 2, rows
        assert tls_values[0] == "", tls_values  # the plaintext client
        assert tls_values[1].startswith("TLSv1."), tls_values  # e.g. TLSv1.3/TLS_AES_256_GCM_SHA384/...
    finally:
        tls_conn.close()
        plain_conn.close()


def test_client_tls_prefer_allows_plaintext(tidepool, certs):
    d = tidepool(tls_settings(certs, "prefer"))
    with d.connect(sslmode="disable") as c:
        assert not c.info.ssl_in_use
    with d.connect(sslmode="require") as c, c.cursor() as cur:
        assert c.info.ssl_in_use
        cur.execute("SELECT 1")
    # Unix socket clients never get TLS, and need none even with require
    d2 = tidepool(tls_settings(certs, "require"))
    r = psql(d2, "SELECT 5", extra_env={"PGHOST": d2.dir, "PGSSLMODE": "prefer"})
    assert r.returncode == 0 and r.stdout.strip() == "5", r.stdout


def test_client_tls_disable_answers_n(tidepool):
    d = tidepool()
    with d.connect(sslmode="prefer") as c:
        assert not c.info.ssl_in_use
    with pytest.raises(psycopg2.OperationalError) as ei:
        d.connect(sslmode="require")
    assert "does not support SSL" in str(ei.value)


def test_scram_plus_channel_binding_over_tls(tidepool, certs, pg):
    d = tidepool(tls_settings(certs, "require", auth_type="scram-sha-256"),
                 userlist={APP_USER: pg_secret(pg, APP_USER)})
    # libpq picks SCRAM-SHA-256-PLUS when offered over TLS; channel_binding=require insists
    r = psql(d, "SELECT 1", extra_env={"PGSSLMODE": "require", "PGCHANNELBINDING": "require"})
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stdout
    r = psql(d, "SELECT 1", extra_env={"PGSSLMODE": "require", "PGCHANNELBINDING": "require"},
             password="wrong")
    assert r.returncode != 0 and "SASL authentication failed" in r.stdout, r.stdout
    assert asyncpg_query(d.port, "SELECT 4", ssl=ssl_ctx(certs, verify=False)) == 4


def _raw_tls_request(port):
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(bytes([0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]))
    return s


def test_client_tls_stalled_or_bad_handshakes(tidepool, certs):
    d = tidepool(tls_settings(certs, "require", client_login_timeout="1"))
    import socket
    # 1. stalls after 'S': closed by client_login_timeout, the loop keeps serving others
    stalled = [_raw_tls_request(d.port) for _ in range(5)]
    for s in stalled:
        assert s.recv(1) == b"S"
    with d.connect(sslmode="require") as c, c.cursor() as cur:
        cur.execute("SELECT 1")
    t0 = time.monotonic()
    for s in stalled:
        s.settimeout(10)
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        s.close()
    assert time.monotonic() - t0 < 8
    # 2. garbage instead of a ClientHello
    s = _raw_tls_request(d.port)
    assert s.recv(1) == b"S"
    s.sendall(b"GET / HTTP/1.0\r\n\r\n" * 10)
    s.settimeout(10)
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    s.close()
    # 3. plaintext pipelined behind SSLRequest (CVE-2021-23214): refused, never read as TLS
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    body = struct_startup(APP_USER, "appdb")
    s.sendall(bytes([0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]) + body)
    time.sleep(0.2)
    got = b""
    try:
        while True:
            chunk = s.recv(100)
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    assert got in (b"", b"S"), got
    s.close()
    d.wait_log(r"TLS handshake failed")
    with d.connect(sslmode="require") as c, c.cursor() as cur:
        cur.execute("SELECT 1")
    assert d.alive()


def struct_startup(user, db):
    import struct
    body = struct.pack("!I", 196608) + f"user\0{user}\0database\0{db}\0\0".encode()
    return struct.pack("!I", len(body) + 4) + body


def test_client_tls_reload(tidepool, certs):
    """RELOAD re-reads the TLS files: a certificate from another CA is served afterwards; a
    broken key file keeps the running configuration."""
    d = tidepool(tls_settings(certs, "require"))
    env_ca1 = {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": certs.path("ca.crt")}
    env_ca2 = {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": certs.path("ca2.crt")}
    assert psql(d, "SELECT 1", extra_env=env_ca1).returncode == 0
    held = d.connect(sslmode="require")
    d.rewrite_ini(tls_settings(certs, "require", client_tls_cert_file=certs.path("server2.crt"),
                               client_tls_key_file=certs.path("server2.key")))
    d.reload()
    harness.wait_until(lambda: psql(d, "SELECT 1", extra_env=env_ca2).returncode == 0, 10,
                       what="new certificate served")
    assert psql(d, "SELECT 1", extra_env=env_ca1).returncode != 0
    with held.cursor() as cur:  # an existing TLS session is untouched
        cur.execute("SELECT 1")
    held.close()
    # a key that does not match: the reload fails, the old context stays
    d.rewrite_ini(tls_settings(certs, "require", client_tls_cert_file=certs.path("server.crt"),
                               client_tls_key_file=certs.path("server2.key")))
    d.reload()
    d.wait_log(r"TLS setup failed.*keeping the running configuration")
    assert psql(d, "SELECT 1", extra_env=env_ca2).returncode == 0


def test_client_tls_bad_files_refuse_to_start(tidepool, certs):
    d = tidepool(tls_settings(certs, "require", client_tls_key_file=certs.path("nonexistent.key")),
                 start=False)
    rc, _, log = d.run_expect_exit()
    assert rc != 0 and "TLS setup failed" in log, log
    d = tidepool({"client_tls_sslmode": "require"}, start=False)
    rc, _, log = d.run_expect_exit()
    assert rc != 0 and "needs client_tls_cert_file" in log, log


def test_client_tls_large_transfers(tidepool, certs):
    """Records larger than the buffer (data kept inside OpenSSL) in both directions."""
    d = tidepool(tls_settings(certs, "require", pkt_buf="4096"))
    with d.connect(sslmode="require") as c, c.cursor() as cur:
        cur.execute("SELECT repeat('x', 3000000)")
        assert len(cur.fetchone()[0]) == 3000000
        cur.execute("SELECT g, md5(g::text) FROM generate_series(1, 100000) g")
        rows = cur.fetchall()
        assert len(rows) == 100000 and rows[-1][0] == 100000
        big = "y" * 2000000
        cur.execute("SELECT length(%s), md5(%s)", (big, big))
        import hashlib
        assert cur.fetchone() == (2000000, hashlib.md5(big.encode()).hexdigest())


@pytest.mark.timeout(240)
def test_two_hundred_tls_clients_pgbench(tidepool, certs, pgbench_db):
    d = tidepool(tls_settings(certs, "require", max_client_conn="400", default_pool_size="20"))
    env = d.env_for()
    env["PGSSLMODE"] = "require"
    r = subprocess.run(["pgbench", "-n", "-S", "-c", "200", "-j", "8", "-t", "20"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=200)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "number of failed transactions: 0" in r.stdout or "number of transactions actually processed: 4000" in r.stdout, r.stdout
    assert "number of transactions actually processed: 4000/4000" in r.stdout, r.stdout


# --------------------------------------------------------------------------- server TLS


@pytest.fixture(scope="module")
def pg_tls(certs):
    """A second PostgreSQL with ssl=on that refuses plaintext TCP (hostnossl ... reject)."""
    server = harness.PostgresServer(max_connections=30, extra_conf={
        "ssl": "on", "ssl_cert_file": f"'{certs.path('server.crt')}'",
        "ssl_key_file": f"'{certs.path('server.key')}'"})
    try:
        server.init()
        with open(os.path.join(server.datadir, "pg_hba.conf"), "w") as f:
            f.write("local all postgres trust\n"
                    f"hostssl all {MD5_USER} 127.0.0.1/32 md5\n"
                    "hostssl all all 127.0.0.1/32 scram-sha-256\n"
                    "host all all 127.0.0.1/32 reject\n")
        server.sql("SELECT pg_reload_conf()")
    except BaseException:
        server.cleanup()
        raise
    yield server
    server.cleanup()


def tls_dbs(pg_tls, host="127.0.0.1"):
    return {"appdb": f"host={host} port={pg_tls.port} dbname=appdb"}


def server_ssl_in_use(d, **kw):
    return one(d, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", **kw)


def test_server_tls_prefer_and_require(tidepool, pg_tls, certs):
    # default server_tls_sslmode = prefer: TLS when the server offers it
    d = tidepool(databases=tls_dbs(pg_tls))
    assert server_ssl_in_use(d) is True
    assert one(d, "SELECT current_user", user=MD5_USER, password=MD5_PASSWORD) == MD5_USER
    d2 = tidepool({"server_tls_sslmode": "require"}, databases=tls_dbs(pg_tls))
    assert server_ssl_in_use(d2) is True
    # disable: plaintext, which this server rejects (hostnossl ... reject)
    d3 = tidepool({"server_tls_sslmode": "disable", "query_wait_timeout": "3"}, databases=tls_dbs(pg_tls))
    with pytest.raises(psycopg2.OperationalError) as ei:
        one(d3, "SELECT 1")
    assert "rejects connection" in str(ei.value) or "no encryption" in str(ei.value), str(ei.value)


def test_server_tls_require_refused_by_plain_server(tidepool, pg):
    """The session PostgreSQL has ssl=off: require fails, prefer falls back to plaintext. A TLS
    failure towards the server is logged; the client keeps waiting for a retry (PgBouncer)."""
    d = tidepool({"server_tls_sslmode": "require", "query_wait_timeout": "3"})
    with pytest.raises(psycopg2.OperationalError) as ei:
        one(d, "SELECT 1")
    assert "query_wait_timeout" in str(ei.value), str(ei.value)
    d.wait_log(r"server TLS: server does not support TLS")
    d2 = tidepool({"server_tls_sslmode": "prefer"})
    assert server_ssl_in_use(d2) is False


def test_server_tls_verify_full(tidepool, pg_tls, certs, pg):
    ok = tidepool({"server_tls_sslmode": "verify-full", "server_tls_ca_file": certs.path("ca.crt")},
                  databases=tls_dbs(pg_tls))
    assert server_ssl_in_use(ok) is True
    # SCRAM pass-through over server TLS, no plaintext password anywhere
    pt = tidepool({"server_tls_sslmode": "verify-full", "server_tls_ca_file": certs.path("ca.crt"),
                   "auth_type": "scram-sha-256"},
                  databases=tls_dbs(pg_tls), userlist={APP_USER: pg_secret(pg_tls, APP_USER)})
    assert server_ssl_in_use(pt) is True
    bad = tidepool({"server_tls_sslmode": "verify-full", "server_tls_ca_file": certs.path("ca2.crt"),
                    "query_wait_timeout": "3"}, databases=tls_dbs(pg_tls))
    with pytest.raises(psycopg2.OperationalError) as ei:
        one(bad, "SELECT 1")
    assert "query_wait_timeout" in str(ei.value), str(ei.value)
    bad.wait_log(r"server TLS: .*certificate verify failed")
    # verify-ca does not look at the name; verify-full does
    pg_tls.sql(f"ALTER SYSTEM SET ssl_cert_file = '{certs.path('wronghost.crt')}'")
    pg_tls.sql(f"ALTER SYSTEM SET ssl_key_file = '{certs.path('wronghost.key')}'")
    pg_tls.sql("SELECT pg_reload_conf()")
    try:
        time.sleep(0.5)
        ca = tidepool({"server_tls_sslmode": "verify-ca", "server_tls_ca_file": certs.path("ca.crt")},
                      databases=tls_dbs(pg_tls))
        assert server_ssl_in_use(ca) is True
        full = tidepool({"server_tls_sslmode": "verify-full", "server_tls_ca_file": certs.path("ca.crt"),
                         "query_wait_timeout": "3"}, databases=tls_dbs(pg_tls))
        with pytest.raises(psycopg2.OperationalError) as ei:
            one(full, "SELECT 1")
        assert "query_wait_timeout" in str(ei.value), str(ei.value)
        full.wait_log(r"server TLS: .*certificate verify failed")
    finally:
        pg_tls.sql("ALTER SYSTEM RESET ssl_cert_file")
        pg_tls.sql("ALTER SYSTEM RESET ssl_key_file")
        pg_tls.sql("SELECT pg_reload_conf()")


def test_server_tls_client_certificate(tidepool, pg_tls, certs):
    """server_tls_cert_file/key_file are presented to PostgreSQL (clientcert=verify-full)."""
    with open(os.path.join(pg_tls.datadir, "postgresql.auto.conf"), "a") as f:
        f.write(f"ssl_ca_file = '{certs.path('ca.crt')}'\n")
    hba = os.path.join(pg_tls.datadir, "pg_hba.conf")
    with open(hba) as f:
        saved = f.read()
    with open(hba, "w") as f:
        f.write("local all postgres trust\n"
                "hostssl all app 127.0.0.1/32 cert\n"
                "host all all 127.0.0.1/32 reject\n")
    pg_tls.sql("SELECT pg_reload_conf()")
    try:
        time.sleep(0.5)
        d = tidepool({"server_tls_sslmode": "verify-full", "server_tls_ca_file": certs.path("ca.crt"),
                      "server_tls_cert_file": certs.path("client_app.crt"),
                      "server_tls_key_file": certs.path("client_app.key")}, databases=tls_dbs(pg_tls))
        assert server_ssl_in_use(d) is True
        d2 = tidepool({"server_tls_sslmode": "require", "query_wait_timeout": "3"}, databases=tls_dbs(pg_tls))
        with pytest.raises(psycopg2.OperationalError):
            one(d2, "SELECT 1")
    finally:
        with open(hba, "w") as f:
            f.write(saved)
        pg_tls.sql("SELECT pg_reload_conf()")


def test_server_tls_cancel_and_reload(tidepool, pg_tls, certs):
    """Cancel requests reach a TLS-only server; RELOAD with changed server TLS settings
    replaces the server connections."""
    d = tidepool({"server_tls_sslmode": "require", "pool_mode": "session"}, databases=tls_dbs(pg_tls))
    c = d.connect()
    pid = None
    with c.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]

    def cancel_soon():
        time.sleep(0.5)
        c.cancel()
    t = threading.Thread(target=cancel_soon)
    t.start()
    with pytest.raises(psycopg2.errors.QueryCanceled):
        with c.cursor() as cur:
            cur.execute("SELECT pg_sleep(20)")
    t.join()
    c.close()
    d.rewrite_ini({"server_tls_sslmode": "verify-ca", "server_tls_ca_file": certs.path("ca.crt"),
                   "pool_mode": "session"}, databases=tls_dbs(pg_tls))
    d.reload()
    harness.wait_until(lambda: one(d, "SELECT pg_backend_pid()") != pid, 10, what="new server connection")


# --------------------------------------------------------------------------- TLS settings SET on the console

ADMIN_USERLIST = {APP_USER: APP_PASSWORD, MD5_USER: MD5_PASSWORD, "postgres": "adminpw"}


def console_set(d, setting, value):
    """SET on the admin console; returns the NOTICE texts (an error raises WireError)."""
    c = psycopg2.connect(host=d.dir, port=d.port, user="postgres", password="adminpw", dbname="pgbouncer")
    try:
        c.autocommit = True
        c.cursor().execute(f"SET {setting} = '{value}'")
        return [n.split(":", 1)[1].strip() for n in c.notices]
    finally:
        c.close()


def test_console_set_client_tls(tidepool, certs):
    """client_tls_* SET on the console take effect at once, for the next client; settings that do
    not make a valid context yet (a new key before its certificate) keep the old context."""
    d = tidepool(userlist=ADMIN_USERLIST)
    env_ca1 = {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": certs.path("ca.crt")}
    env_ca2 = {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": certs.path("ca2.crt")}
    assert console_set(d, "client_tls_key_file", certs.path("server.key")) == []
    assert console_set(d, "client_tls_cert_file", certs.path("server.crt")) == []
    assert console_set(d, "client_tls_sslmode", "require") == []
    r = psql(d, "SELECT 1", extra_env=env_ca1)
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stdout
    assert console_set(d, "client_tls_sslmode", "disable") == []
    with pytest.raises(psycopg2.OperationalError) as ei:
        d.connect(sslmode="require")
    assert "does not support SSL" in str(ei.value)
    assert console_set(d, "client_tls_sslmode", "require") == []
    # a key of the other certificate: no valid pair yet, the old context serves on
    notices = console_set(d, "client_tls_key_file", certs.path("server2.key"))
    assert notices == ["TLS settings could not be applied, still using old configuration"], notices
    d.wait_log(r"ERROR TLS setup failed: .*client_tls_key_file")
    assert psql(d, "SELECT 1", extra_env=env_ca1).returncode == 0
    assert console_set(d, "client_tls_cert_file", certs.path("server2.crt")) == []
    assert psql(d, "SELECT 1", extra_env=env_ca2).returncode == 0
    assert psql(d, "SELECT 1", extra_env=env_ca1).returncode != 0


def test_console_set_tls13_ciphers(tidepool, certs):
    d = tidepool(tls_settings(certs, "require", client_tls_protocols="tlsv1.3",
                              client_tls13_ciphers="TLS_CHACHA20_POLY1305_SHA256"),
                 userlist=ADMIN_USERLIST)
    env = {"PGSSLMODE": "require"}
    assert psql(d, "SELECT 1", extra_env=env).returncode == 0
    d.wait_log(r"login attempt: db=appdb user=app tls=TLSv1\.3/TLS_CHACHA20_POLY1305_SHA256")
    assert console_set(d, "client_tls13_ciphers", "TLS_AES_128_GCM_SHA256") == []
    assert psql(d, "SELECT 1", extra_env=env).returncode == 0
    d.wait_log(r"login attempt: db=appdb user=app tls=TLSv1\.3/TLS_AES_128_GCM_SHA256")
    notices = console_set(d, "client_tls13_ciphers", "unknown")
    assert notices == ["TLS settings could not be applied, still using old configuration"], notices
    d.wait_log(r"failed to set the TLSv1\.3 cipher suites")
    assert psql(d, "SELECT 1", extra_env=env).returncode == 0


def test_console_set_server_tls(tidepool, pg_tls, certs):
    """server_tls_* SET on the console: the server connections are replaced, and a login that
    failed under the old settings does not hold clients back for server_login_retry."""
    d = tidepool({"server_tls_sslmode": "disable", "server_login_retry": "30", "query_wait_timeout": "4"},
                 databases=tls_dbs(pg_tls), userlist=ADMIN_USERLIST)
    with pytest.raises(psycopg2.OperationalError) as ei:  # pg_tls refuses plaintext
        one(d, "SELECT 1")
    assert "no encryption" in str(ei.value) or "SSL off" in str(ei.value), str(ei.value)
    assert console_set(d, "server_tls_sslmode", "require") == []
    assert server_ssl_in_use(d) is True
    pid = one(d, "SELECT pg_backend_pid()")
    # a CA that did not sign the server's certificate: the next server login fails, the client
    # waits for a retry
    assert console_set(d, "server_tls_ca_file", certs.path("ca2.crt")) == []
    assert console_set(d, "server_tls_sslmode", "verify-full") == []
    waiter = raw_login(d.port, APP_USER, "appdb", APP_PASSWORD)
    with pytest.raises(WireError) as ei:
        waiter.query("SELECT 1")
    assert_fatal(ei.value, "query_wait_timeout")
    d.wait_log(r"server TLS: .*certificate verify failed")
    assert console_set(d, "server_tls_ca_file", certs.path("ca.crt")) == []
    assert server_ssl_in_use(d) is True
    assert one(d, "SELECT pg_backend_pid()") != pid


# --------------------------------------------------------------------------- HBA and cert


def raw_login_from(source, port, user, database, password=None, params=None):
    """raw_login from another loopback source address (the whole of 127/8 is loopback)."""
    import socket
    c = harness.RawConn.__new__(harness.RawConn)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0))
    c.buf, c.notices, c.params = b"", [], {}
    try:
        return c.startup(user, database, password, params)
    except BaseException:
        c.sock.close()
        raise


def write_hba(d, text):
    path = os.path.join(d.dir, "hba.conf")
    with open(path, "w") as f:
        f.write(text)
    harness.give_to_daemon_user(path)
    return path


def hba_daemon(tidepool, text, extra=None, start=True, **kw):
    d = tidepool({"auth_type": "hba"}, start=False, **kw)
    path = write_hba(d, text)
    settings = {"auth_type": "hba", "auth_hba_file": path}
    settings.update(extra or {})
    d.rewrite_ini(settings, **{k: v for k, v in kw.items() if k in ("databases", "userlist", "users")})
    if start:
        d.start()
    return d


def login_ok(port, user, password, db="appdb", source="127.0.0.1"):
    c = raw_login_from(source, port, user, db, password)
    rows = c.query("SELECT current_user")[0]
    c.close()
    return rows == [[user]]


def login_result(port, user, password, db="appdb", source="127.0.0.1"):
    """The error message of a login, or "ok"."""
    try:
        raw_login_from(source, port, user, db, password).close()
        return "ok"
    except WireError as e:
        return e.message


def login_err(port, user, password, db="appdb", source="127.0.0.1"):
    with pytest.raises(WireError) as ei:
        raw_login_from(source, port, user, db, password).close()
    assert ei.value.sqlstate == "08P01" and ei.value.fields.get("S") == "FATAL", ei.value.fields
    return ei.value.message


def test_hba_matrix(tidepool):
    d = hba_daemon(tidepool,
                   "# allow/deny by address, database, user and method\n"
                   "host  all      all     127.0.0.3/32            reject\n"
                   "host  postgres app     127.0.0.1/32            reject\n"
                   f"host  appdb    {MD5_USER} 127.0.0.0 255.0.0.0 md5\n"
                   "host  appdb    app     127.0.0.2/32            password\n"
                   "host  appdb    app     127.0.0.1/32            scram-sha-256\n"
                   "host  postgres all     ::1/128                 trust\n")
    # by address + method
    assert login_ok(d.port, APP_USER, APP_PASSWORD)                      # scram
    assert login_ok(d.port, APP_USER, APP_PASSWORD, source="127.0.0.2")  # password
    assert login_err(d.port, APP_USER, APP_PASSWORD, source="127.0.0.3") == "login rejected"
    assert login_err(d.port, APP_USER, APP_PASSWORD, source="127.0.0.4") == "login rejected"  # no rule
    # by database
    assert login_err(d.port, APP_USER, APP_PASSWORD, db="postgres") == "login rejected"
    # by user (md5 for md5user from anywhere in 127/8)
    assert login_ok(d.port, MD5_USER, MD5_PASSWORD, source="127.0.0.4")
    assert login_err(d.port, MD5_USER, MD5_PASSWORD, db="postgres") == "login rejected"
    # each method refuses a wrong password with PgBouncer's text
    assert login_err(d.port, APP_USER, "wrong") == "SASL authentication failed"
    assert login_err(d.port, APP_USER, "wrong", source="127.0.0.2") == "password authentication failed"
    assert login_err(d.port, MD5_USER, "wrong") == "password authentication failed"
    assert login_err(d.port, "nobody", "x") == "login rejected"
    d.wait_log(r"login rejected by auth_hba_file line 2")
    d.wait_log(r"login rejected: no auth_hba_file line matches")
    # libpq sees the same
    with pytest.raises(psycopg2.OperationalError) as ei:
        d.connect(dbname="postgres")
    assert "login rejected" in str(ei.value)


def test_hba_hostssl_rejects_plaintext(tidepool, certs):
    d = hba_daemon(tidepool,
                   "hostssl   appdb app 127.0.0.1/32 scram-sha-256\n"
                   "hostnossl appdb md5user 127.0.0.1/32 md5\n",
                   extra=tls_settings(certs, "prefer"))
    with pytest.raises(psycopg2.OperationalError) as ei:
        d.connect(sslmode="disable")
    assert "login rejected" in str(ei.value)
    with d.connect(sslmode="require") as c, c.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone() == (APP_USER,)
    # hostnossl: md5user only without TLS
    assert one(d, "SELECT 1", user=MD5_USER, password=MD5_PASSWORD, sslmode="disable") == 1
    with pytest.raises(psycopg2.OperationalError) as ei:
        d.connect(user=MD5_USER, password=MD5_PASSWORD, sslmode="require")
    assert "login rejected" in str(ei.value)


def test_hba_peer_and_local(tidepool, pg):
    import getpass
    me = getpass.getuser()
    dbs = {"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user={APP_USER} password={APP_PASSWORD}"}
    d = hba_daemon(tidepool,
                   f"local all {me} peer\n"
                   "local all all trust\n"
                   "host all all all reject\n",
                   databases=dbs, userlist={me: "unused", "other": "x", APP_USER: APP_PASSWORD})
    r = psql(d, "SELECT current_user", user=me, password="", extra_env={"PGHOST": d.dir})
    assert r.returncode == 0 and r.stdout.strip() == APP_USER, r.stdout  # forced server user
    # trust for another known user over the socket; TCP is rejected
    r = psql(d, "SELECT 1", user="other", password="", extra_env={"PGHOST": d.dir})
    assert r.returncode == 0, r.stdout
    r = psql(d, "SELECT 1", user="other", password="x")
    assert r.returncode != 0 and "login rejected" in r.stdout, r.stdout
    # peer for a name that is not ours
    d2 = hba_daemon(tidepool, "local all all peer\n", databases=dbs,
                    userlist={"other": "x", me: "unused"})
    r = psql(d2, "SELECT 1", user="other", password="", extra_env={"PGHOST": d2.dir})
    assert r.returncode != 0 and "unix socket login rejected" in r.stdout, r.stdout


def test_hba_reload_and_errors(tidepool):
    d = hba_daemon(tidepool, "host all all 127.0.0.1/32 md5\n")
    assert login_ok(d.port, APP_USER, APP_PASSWORD)
    write_hba(d, "host all app 127.0.0.1/32 reject\nhost all all 127.0.0.1/32 md5\n")
    d.reload()
    harness.wait_until(lambda: login_result(d.port, APP_USER, APP_PASSWORD) == "login rejected", 10,
                       what="new HBA rules")
    assert login_ok(d.port, MD5_USER, MD5_PASSWORD)
    # a broken file keeps the running rules
    write_hba(d, "host all all 127.0.0.1/32 md5\nhost all +group all md5\n")
    d.reload()
    d.wait_log(r"hba\.conf:2: group membership \(\+group\) is not supported; keeping the running")
    assert login_err(d.port, APP_USER, APP_PASSWORD) == "login rejected"
    # at start: refuses to run
    bad = hba_daemon(tidepool, "host all all 127.0.0.1 md5\n", start=False)
    rc, _, log = bad.run_expect_exit()
    assert rc != 0 and "hba.conf:1: address \"127.0.0.1\" needs a CIDR mask" in log, log
    nofile = tidepool({"auth_type": "hba"}, start=False)
    rc, _, log = nofile.run_expect_exit()
    assert rc != 0 and "auth_type = hba needs auth_hba_file" in log, log


def test_cert_auth(tidepool, certs):
    settings = tls_settings(certs, "verify-ca", auth_type="cert", client_tls_ca_file=certs.path("ca.crt"))
    d = tidepool(settings)

    def run(user, cert, password=""):
        env = {"PGSSLMODE": "require"}
        if cert:
            env.update(PGSSLCERT=certs.path(f"{cert}.crt"), PGSSLKEY=certs.client_key_copy(cert))
        return psql(d, "SELECT current_user", user=user, password=password, extra_env=env)
    r = run(APP_USER, "client_app")
    assert r.returncode == 0 and r.stdout.strip() == APP_USER, r.stdout
    r = run(MD5_USER, "client_md5")
    assert r.returncode == 0 and r.stdout.strip() == MD5_USER, r.stdout
    r = run(APP_USER, "client_md5")  # a valid certificate for somebody else
    assert r.returncode != 0 and "certificate authentication failed" in r.stdout, r.stdout
    r = run(APP_USER, None)  # verify-ca: no certificate, no handshake
    assert r.returncode != 0, r.stdout
    r = run(APP_USER, "client_foreign")  # signed by another CA
    assert r.returncode != 0, r.stdout
    d.wait_log(r"TLS certificate name mismatch")
    # via HBA: cert only on hostssl, the rest md5
    d2 = hba_daemon(tidepool, "hostssl all all 127.0.0.1/32 cert\nhost all all 127.0.0.1/32 md5\n",
                    extra=tls_settings(certs, "prefer", client_tls_ca_file=certs.path("ca.crt")))
    env = {"PGSSLMODE": "require", "PGSSLCERT": certs.path("client_app.crt"),
           "PGSSLKEY": certs.client_key_copy("client_app")}
    r = psql(d2, "SELECT current_user", password="", extra_env=env)
    assert r.returncode == 0 and r.stdout.strip() == APP_USER, r.stdout
    r = psql(d2, "SELECT current_user", password="", extra_env={"PGSSLMODE": "require"})
    assert r.returncode != 0 and "certificate authentication failed" in r.stdout, r.stdout
    assert one(d2, "SELECT 1", sslmode="disable") == 1  # md5 without TLS


# --------------------------------------------------------------------------- auth_query


AUTH_USER, AUTH_PASSWORD = "tp_authuser", "authpass"


@pytest.fixture
def aq_roles(pg):
    """The auth_user (superuser: reads pg_authid) and roles missing from auth_file."""
    made = []
    hba = os.path.join(pg.datadir, "pg_hba.conf")
    with open(hba) as f:
        saved_hba = f.read()

    def role(name, password, md5=False, extra=""):
        pg.sql(f"DROP ROLE IF EXISTS {name}")
        enc = "md5" if md5 else "scram-sha-256"
        pg.sql(f"SET password_encryption = '{enc}'; CREATE ROLE {name} LOGIN PASSWORD '{password}' {extra}")
        made.append(name)
        if md5:  # PostgreSQL's md5 method for this role (scram-sha-256 cannot use an md5 hash)
            with open(hba) as f:
                text = f.read()
            with open(hba, "w") as f:
                f.write(f"host all {name} 127.0.0.1/32 md5\n" + text)
            pg.sql("SELECT pg_reload_conf()")
            time.sleep(0.3)
    role(AUTH_USER, AUTH_PASSWORD, extra="SUPERUSER")
    yield role
    with open(hba, "w") as f:
        f.write(saved_hba)
    pg.sql("SELECT pg_reload_conf()")
    for name in made:
        pg.sql(f"DROP ROLE IF EXISTS {name}")


def aq_daemon(tidepool, extra=None, **kw):
    settings = {"auth_user": AUTH_USER}
    settings.update(extra or {})
    kw.setdefault("userlist", {AUTH_USER: AUTH_PASSWORD, MD5_USER: MD5_PASSWORD})
    return tidepool(settings, **kw)


def test_auth_query_lookup(tidepool, pg, aq_roles):
    aq_roles("aq_scram", "scrampw")
    aq_roles("aq_md5", "md5pw", md5=True)
    aq_roles("aq_expired", "oldpw", extra="VALID UNTIL '2001-01-01'")
    d = aq_daemon(tidepool)
    # users absent from auth_file log in (SCRAM secret: SCRAM + pass-through; md5: md5)
    assert one(d, "SELECT current_user", user="aq_scram", password="scrampw") == "aq_scram"
    assert one(d, "SELECT current_user", user="aq_md5", password="md5pw") == "aq_md5"
    r = psql(d, "SELECT current_user", user="aq_scram", password="scrampw")
    assert r.returncode == 0 and r.stdout.strip() == "aq_scram", r.stdout
    assert asyncpg_query(d.port, "SELECT 8", user="aq_scram", password="scrampw") == 8
    # wrong password, expired role, unknown role: refused with the usual text
    assert login_err(d.port, "aq_scram", "wrong") == "SASL authentication failed"
    assert login_err(d.port, "aq_md5", "wrong") == "password authentication failed"
    assert login_err(d.port, "aq_expired", "oldpw") == "password authentication failed"
    assert login_err(d.port, "aq_nobody", "x") == "no such user"  # no mock exchange, as PgBouncer
    d.wait_log(r"aq_nobody@\S+ closing because: no such user \(age=")
    # a role created after start works without reload; a changed password at once
    aq_roles("aq_late", "latepw")
    assert one(d, "SELECT current_user", user="aq_late", password="latepw") == "aq_late"
    pg.sql("ALTER ROLE aq_late PASSWORD 'newpw'")
    assert login_err(d.port, "aq_late", "latepw") == "SASL authentication failed"
    assert login_ok(d.port, "aq_late", "newpw")
    # a role that expires is refused from then on
    pg.sql("ALTER ROLE aq_late VALID UNTIL '2001-01-01'")
    assert login_err(d.port, "aq_late", "newpw") == "password authentication failed"  # unknown now
    # auth_file users are not looked up
    assert one(d, "SELECT current_user", user=MD5_USER, password=MD5_PASSWORD) == MD5_USER


def test_auth_query_per_database_and_auth_dbname(tidepool, pg, aq_roles):
    aq_roles("aq_db", "dbpw")
    dbs = {"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb auth_user={AUTH_USER} auth_dbname=lookup",
           "lookup": f"host=127.0.0.1 port={pg.port} dbname=postgres",
           "plain": f"host=127.0.0.1 port={pg.port} dbname=appdb"}
    d = tidepool({"auth_type": "scram-sha-256"}, databases=dbs,
                 userlist={AUTH_USER: AUTH_PASSWORD})
    assert login_ok(d.port, "aq_db", "dbpw")
    # no auth_user for this database: the user is unknown there
    assert login_err(d.port, "aq_db", "dbpw", db="plain") == "SASL authentication failed"
    # a custom query (schema-qualified function) per database
    pg.sql("CREATE SCHEMA IF NOT EXISTS tp_auth", dbname="appdb")
    pg.sql("CREATE OR REPLACE FUNCTION tp_auth.lookup(u text) RETURNS TABLE(usename name, passwd text) "
           "LANGUAGE sql SECURITY DEFINER AS $$ SELECT rolname, rolpassword FROM pg_catalog.pg_authid "
           "WHERE rolname = u $$", dbname="appdb")
    dbs["plain"] += f" auth_user={AUTH_USER} auth_query='SELECT usename, passwd FROM tp_auth.lookup($1)'"
    d2 = tidepool({"auth_type": "scram-sha-256"}, databases=dbs, userlist={AUTH_USER: AUTH_PASSWORD})
    assert login_ok(d2.port, "aq_db", "dbpw", db="plain")


def test_auth_query_search_path_from_client_is_not_used(tidepool, pg, aq_roles):
    """CVE-2025-12819: a search_path in the startup packet must not reach the auth query."""
    import hashlib
    pg.sql("DROP SCHEMA IF EXISTS evil CASCADE", dbname="appdb")
    pg.sql("CREATE SCHEMA evil", dbname="appdb")
    pg.sql("CREATE TABLE evil.pg_authid (rolname name, rolpassword text, rolvaliduntil timestamptz, "
           "rolcanlogin bool)", dbname="appdb")
    fake = "md5" + hashlib.md5(b"pwnedvictim").hexdigest()
    pg.sql("INSERT INTO evil.pg_authid VALUES ('victim', %s, NULL, true)", (fake,), dbname="appdb")
    pg.sql("GRANT USAGE ON SCHEMA evil TO PUBLIC", dbname="appdb")
    pg.sql("GRANT SELECT ON evil.pg_authid TO PUBLIC", dbname="appdb")
    try:
        d = aq_daemon(tidepool, {"track_extra_parameters": "search_path"})
        with pytest.raises(WireError) as ei:
            raw_login_from("127.0.0.1", d.port, "victim", "appdb", "pwned",
                           params={"search_path": "evil,pg_catalog"}).close()
        assert ei.value.message == "no such user", ei.value.fields
        # and the lookup still works for a real role with that parameter
        aq_roles("aq_sp", "sppw", md5=True)
        c = raw_login_from("127.0.0.1", d.port, "aq_sp", "appdb", "sppw",
                           params={"search_path": "evil,pg_catalog"})
        assert c.query("SELECT current_user")[0] == [["aq_sp"]]
        c.close()
    finally:
        pg.sql("DROP SCHEMA IF EXISTS evil CASCADE", dbname="appdb")


def test_auth_query_failures(tidepool, pg, aq_roles):
    aq_roles("aq_x", "xpw")
    # auth_user cannot log in (not in auth_file, wrong password): the client is told
    # PostgreSQL's own error
    d = aq_daemon(tidepool, userlist={AUTH_USER: "wrong"})
    assert login_err(d.port, "aq_x", "xpw") == f'password authentication failed for user "{AUTH_USER}"'
    d.wait_log(r"auth_query failed: auth_user cannot log in")
    # a broken query: the client learns only that the setup is wrong, the log says why
    d2 = aq_daemon(tidepool, {"auth_query": "SELECT $1::text"})
    assert login_err(d2.port, "aq_x", "xpw") == "bouncer config error"
    d2.wait_log(r"auth_query failed: auth_query must return 2 columns")
    d3 = aq_daemon(tidepool, {"auth_query": "SELECT nosuchcolumn FROM pg_authid WHERE rolname=$1"})
    assert login_err(d3.port, "aq_x", "xpw") == "bouncer config error"
    d3.wait_log(r'auth_query failed: column "nosuchcolumn" does not exist')
    # the auth servers stay usable: many concurrent lookups
    aq_roles("aq_many", "manypw")
    d4 = aq_daemon(tidepool)
    errs = []

    def worker():
        try:
            for _ in range(10):
                if not login_ok(d4.port, "aq_many", "manypw"):
                    errs.append("not ok")
        except Exception as e:  # noqa: BLE001
            errs.append(repr(e))
    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errs, errs[:3]


def test_auth_query_under_trust(tidepool, pg, aq_roles):
    """auth_type = trust with auth_user: a role auth_query finds logs in even when it has no
    password (NULL secret); a role it does not find is told so at once."""
    pg.sql("DROP ROLE IF EXISTS aq_nopw")
    pg.sql("CREATE ROLE aq_nopw LOGIN")
    hba = os.path.join(pg.datadir, "pg_hba.conf")  # aq_roles restores the file
    with open(hba) as f:
        text = f.read()
    with open(hba, "w") as f:
        f.write("host all aq_nopw 127.0.0.1/32 trust\n" + text)
    pg.sql("SELECT pg_reload_conf()")
    time.sleep(0.3)
    try:
        d = aq_daemon(tidepool, {"auth_type": "trust"})
        assert login_ok(d.port, "aq_nopw", None)
        assert login_err(d.port, "aq_nobody", None) == "no such user"
        # a user in neither auth_file nor PostgreSQL, without auth_user: trust still refuses
        d2 = tidepool({"auth_type": "trust"})
        assert login_err(d2.port, "aq_nopw", None) == '"trust" authentication failed'
    finally:
        pg.sql("DROP ROLE IF EXISTS aq_nopw")


def test_failed_login_logs_closing_before_error(tidepool, pg, aq_roles):
    """A refused login is logged as `closing because: ...` (as every disconnect), and the
    line is in the log by the time the client reads the error."""
    d = aq_daemon(tidepool, {"auth_type": "md5"})
    assert login_err(d.port, "nosuchuser_x", "pw", db="nosuchdb") == "password authentication failed"
    assert re.search(r"nosuchuser_x@\S+ closing because: password authentication failed \(age=\d+s\)",
                     d.log()), d.log()
    assert login_err(d.port, "aq_gone", "pw") == "no such user"
    assert re.search(r"aq_gone@\S+ closing because: no such user \(age=", d.log()), d.log()
    d2 = tidepool({"auth_type": "scram-sha-256"})
    assert login_err(d2.port, "nosuchuser_y", "pw") == "SASL authentication failed"
    assert "closing because: SASL authentication failed" in d2.log(), d2.log()


def test_auth_query_for_console_and_reserved_auth_dbname(tidepool, pg, aq_roles):
    """A console user missing from auth_file is looked up with the global auth_user in the
    global auth_dbname; the console itself cannot be the auth database."""
    aq_roles("aq_stats", "statspw", md5=True)
    d = aq_daemon(tidepool, {"auth_type": "md5", "stats_users": "aq_stats", "auth_dbname": "postgres"})
    assert login_result(d.port, "aq_stats", "statspw", db="pgbouncer") == "ok"
    assert login_result(d.port, "aq_stats", "wrong", db="pgbouncer") == "password authentication failed"
    # no auth_dbname: the lookup would run in the console database
    reserved = r'cannot use the reserved "pgbouncer" database as an auth_dbname'
    d2 = aq_daemon(tidepool, {"auth_type": "md5", "stats_users": "aq_stats"})
    assert login_err(d2.port, "aq_stats", "statspw", db="pgbouncer") == "bouncer config error"
    d2.wait_log(reserved)
    # an auth_dbname of a database, or one that is not configured
    dbs = {"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb auth_dbname=pgbouncer",
           "other": f"host=127.0.0.1 port={pg.port} dbname=appdb auth_dbname=nosuchdb"}
    d3 = aq_daemon(tidepool, {"auth_type": "md5"}, databases=dbs)
    assert login_err(d3.port, "aq_stats", "statspw") == "bouncer config error"
    d3.wait_log(reserved)
    assert login_err(d3.port, "aq_stats", "statspw", db="other") == "bouncer config error"
    d3.wait_log(r'authentication database "nosuchdb" is not configured')
    # in [pgbouncer] it is a configuration error
    d4 = aq_daemon(tidepool, {"auth_dbname": "pgbouncer"}, start=False)
    rc, _, log = d4.run_expect_exit()
    assert rc != 0 and re.search(reserved, log), log


def test_scram_server_with_unusable_password_type(tidepool, pg):
    """PostgreSQL asks for SCRAM but what we hold cannot answer it (a SCRAM secret no client
    proved keys for, or an md5 hash): the client is told the password type is wrong."""
    wrong = "cannot do SCRAM authentication: wrong password type"
    d = tidepool({"auth_type": "trust"}, userlist={APP_USER: pg_secret(pg, APP_USER)})
    assert login_err(d.port, APP_USER, None) == wrong
    d.wait_log(r"the password is a SCRAM secret but no client logged in with SCRAM")
    d2 = tidepool({"auth_type": "trust"}, userlist={APP_USER: harness.md5_secret(APP_USER, APP_PASSWORD)})
    assert login_err(d2.port, APP_USER, None) == wrong


def test_server_login_error_reaches_logged_in_waiting_clients(tidepool, pg):
    """A server login refused by PostgreSQL fails every client waiting in the pool at once,
    also those already logged in (the pool's welcome was known) waiting to run a query."""
    pg.sql("DROP ROLE IF EXISTS tp_nologin")
    pg.sql("SET password_encryption = 'scram-sha-256'; CREATE ROLE tp_nologin LOGIN PASSWORD 'nlpw'")
    try:
        d = tidepool({"pool_mode": "transaction", "query_wait_timeout": "60"},
                     userlist={APP_USER: APP_PASSWORD, "tp_nologin": "nlpw"})
        assert one(d, "SELECT 1", user="tp_nologin", password="nlpw") == 1
        pg.sql("ALTER ROLE tp_nologin NOLOGIN")
        pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'tp_nologin'")
        time.sleep(0.3)
        t0 = time.monotonic()
        for _ in range(2):
            c = raw_login(d.port, "tp_nologin", "appdb", "nlpw")  # the cached welcome
            with pytest.raises(WireError) as ei:
                c.query("SELECT 1")
            c.close()
            assert 'role "tp_nologin" is not permitted to log in' in ei.value.message, ei.value.fields
        assert time.monotonic() - t0 < 10
    finally:
        pg.sql("DROP ROLE IF EXISTS tp_nologin")


def test_max_db_connections_evicts_idle_servers_of_other_pools(tidepool, pg, aq_roles):
    """A database at max_db_connections whose idle servers belong to other users: a waiting
    client's pool closes one ("evicted") instead of waiting for query_wait_timeout. The
    auth_query lookup's own server counts too."""
    aq_roles("aq_m", "mpw", md5=True)
    dbs = {"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb min_pool_size=5 pool_size=5 "
                    "max_db_connections=2"}
    d = aq_daemon(tidepool, {"auth_type": "md5", "query_wait_timeout": "60"}, databases=dbs)
    assert one(d, "SELECT current_user", user=MD5_USER, password=MD5_PASSWORD) == MD5_USER
    time.sleep(0.5)  # min_pool_size: md5user's pool holds both slots
    t0 = time.monotonic()
    assert login_ok(d.port, "aq_m", "mpw")
    assert time.monotonic() - t0 < 5
    d.wait_log(r"S-0x[0-9a-f]+: appdb/md5user@\S+ closing because: evicted")
    # min_pool_size alone never evicts: md5user is back with one slot at most
    assert one(d, "SELECT current_user", user=MD5_USER, password=MD5_PASSWORD) == MD5_USER


def write_ident(d, text):
    path = os.path.join(d.dir, "ident.conf")
    with open(path, "w") as f:
        f.write(text)
    harness.give_to_daemon_user(path)
    return path


def test_hba_ident_maps_for_peer_and_cert(tidepool, pg, certs):
    """map= on a peer or cert line: auth_ident_file says which OS user or certificate name may
    log in as which user (re-read on RELOAD); without a mapping the login is refused."""
    import getpass
    me = getpass.getuser()
    dbs = {"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user={APP_USER} password={APP_PASSWORD}"}
    userlist = {me: "unused", "other": "x", "third": "y", APP_USER: APP_PASSWORD, MD5_USER: MD5_PASSWORD}
    d = hba_daemon(tidepool, "local all all peer map=m1\n"
                             "hostssl all all 127.0.0.1/32 cert map=c1\n",
                   databases=dbs, userlist=userlist, start=False,
                   extra=tls_settings(certs, "prefer", client_tls_ca_file=certs.path("ca.crt")))
    ident = write_ident(d, f"m1 {me} other\nc1 {MD5_USER} \"{APP_USER}\"\n")
    settings = {"auth_type": "hba", "auth_hba_file": os.path.join(d.dir, "hba.conf"), "auth_ident_file": ident}
    settings.update(tls_settings(certs, "prefer", client_tls_ca_file=certs.path("ca.crt")))
    d.rewrite_ini(settings, databases=dbs, userlist=userlist)
    d.start()
    sock = {"PGHOST": d.dir}
    r = psql(d, "SELECT 1", user="other", password="", extra_env=sock)
    assert r.returncode == 0, r.stdout
    r = psql(d, "SELECT 1", user="third", password="", extra_env=sock)
    assert r.returncode != 0 and "unix socket login rejected" in r.stdout, r.stdout
    d.wait_log(r"third@\S+ ident map m1 cannot be matched")
    r = psql(d, "SELECT 1", user=me, password="", extra_env=sock)  # the own name needs the map too
    assert r.returncode != 0, r.stdout
    # a certificate issued to MD5_USER may log in as APP_USER only
    env = {"PGSSLMODE": "require", "PGSSLCERT": certs.path("client_md5.crt"),
           "PGSSLKEY": certs.client_key_copy("client_md5")}
    r = psql(d, "SELECT 1", user=APP_USER, password="", extra_env=env)
    assert r.returncode == 0, r.stdout
    r = psql(d, "SELECT 1", user=MD5_USER, password="", extra_env=env)
    assert r.returncode != 0 and "certificate authentication failed" in r.stdout, r.stdout
    d.wait_log(r"ident map: c1 does not have a match")
    # RELOAD re-reads the map: now any user for the peer
    write_ident(d, f"m1 {me} all\n")
    d.reload()
    time.sleep(0.5)
    r = psql(d, "SELECT 1", user="third", password="", extra_env=sock)
    assert r.returncode == 0, r.stdout


def test_max_user_connections_evicts_idle_server_of_other_database(tidepool, pg):
    """max_user_connections reached by idle servers of the user in another database: a client
    waiting in this one gets a server by evicting one of them."""
    d = tidepool({"query_wait_timeout": "60"}, users={APP_USER: "max_user_connections=1"})
    assert one(d, "SELECT current_database()") == "appdb"
    t0 = time.monotonic()
    assert one(d, "SELECT current_database()", dbname="postgres") == "postgres"
    assert time.monotonic() - t0 < 5
    d.wait_log(r"S-0x[0-9a-f]+: appdb/app@\S+ closing because: evicted")
