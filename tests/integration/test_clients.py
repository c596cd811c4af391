"""Real clients through the pooler (transaction mode): psql, psycopg2, psycopg 3, asyncpg.

Each runs a query, a transaction (BEGIN, INSERT, SELECT sees it, COMMIT) and a 100 MB result
(`SELECT repeat('x', 1000) FROM generate_series(1, 100000)`), checking rows and bytes.
"""

import asyncio
import os
import subprocess

import asyncpg
import psycopg
import psycopg2
import pytest

from harness import APP_PASSWORD, APP_USER, MD5_PASSWORD, MD5_USER

ROWS = 100_000
WIDTH = 1000
BIG = f"SELECT repeat('x', {WIDTH}) FROM generate_series(1, {ROWS})"

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def pool(tidepool):
    return tidepool({"pool_mode": "transaction", "default_pool_size": "4"})


def check_big(values):
    values = list(values)
    assert len(values) == ROWS
    assert sum(len(v) for v in values) == ROWS * WIDTH
    assert all(v == "x" * WIDTH for v in (values[0], values[-1], values[ROWS // 2]))


def committed_count(pg, table):
    return pg.sql(f"SELECT count(*) FROM {table}", dbname="appdb")[0][0]


def test_psql(pool, pg):
    env = pool.env_for()
    psql = os.path.join(pg.bindir, "psql")

    def run(*args, inp=None, timeout=60):
        r = subprocess.run([psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", *args], env=env, input=inp,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        assert r.returncode == 0, r.stderr.decode()
        return r.stdout

    assert run("-c", "SELECT 40 + 2").decode().strip() == "42"
    script = (
        "DROP TABLE IF EXISTS tp_cli_psql;\n"
        "CREATE TABLE tp_cli_psql (id int);\n"
        "BEGIN;\n"
        "INSERT INTO tp_cli_psql VALUES (1), (2);\n"
        "SELECT 'seen', count(*) FROM tp_cli_psql;\n"
        "COMMIT;\n"
    )
    out = run(inp=script.encode()).decode()
    assert "seen|2" in out
    assert committed_count(pg, "tp_cli_psql") == 2
    big = run("-c", BIG, timeout=120)
    lines = big.rstrip(b"\n").split(b"\n")
    assert len(lines) == ROWS
    assert len(big) == ROWS * (WIDTH + 1)
    assert set(big) == {ord("x"), ord("\n")}


def test_psycopg2(pool, pg):
    conn = psycopg2.connect(pool.dsn())
    try:
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT 40 + 2")
        assert cur.fetchone() == (42,)
        cur.execute("DROP TABLE IF EXISTS tp_cli_pg2; CREATE TABLE tp_cli_pg2 (id int)")
        cur.execute("BEGIN")
        cur.execute("INSERT INTO tp_cli_pg2 VALUES (%s), (%s)", (1, 2))
        cur.execute("SELECT count(*) FROM tp_cli_pg2")
        assert cur.fetchone() == (2,)
        assert committed_count(pg, "tp_cli_pg2") == 0  # not visible outside yet
        cur.execute("COMMIT")
        assert committed_count(pg, "tp_cli_pg2") == 2
        # Django-style: autocommit off, psycopg2 issues BEGIN itself
        conn.autocommit = False
        cur.execute("INSERT INTO tp_cli_pg2 VALUES (3)")
        conn.rollback()
        cur.execute("SELECT count(*) FROM tp_cli_pg2")
        assert cur.fetchone() == (2,)
        conn.commit()
        conn.autocommit = True
        cur.execute(BIG)
        check_big(r[0] for r in cur.fetchall())
    finally:
        conn.close()


def test_psycopg3(pool, pg):
    with psycopg.connect(pool.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
        conn.execute("DROP TABLE IF EXISTS tp_cli_pg3")
        conn.execute("CREATE TABLE tp_cli_pg3 (id int)")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO tp_cli_pg3 VALUES (%s), (%s)", (1, 2))  # extended protocol, unnamed
        assert conn.execute("SELECT count(*) FROM tp_cli_pg3").fetchone() == (2,)
        conn.execute("COMMIT")
        assert committed_count(pg, "tp_cli_pg3") == 2
        with conn.transaction():
            conn.execute("INSERT INTO tp_cli_pg3 VALUES (3)")
        assert committed_count(pg, "tp_cli_pg3") == 3
        cur = conn.execute(BIG)
        check_big(r[0] for r in cur.fetchall())


def test_asyncpg(pool, pg):
    async def go():
        conn = await asyncpg.connect(host="127.0.0.1", port=pool.port, user=APP_USER, password=APP_PASSWORD,
                                     database="appdb", statement_cache_size=0, timeout=10)
        try:
            assert await conn.fetchval("SELECT 40 + 2") == 42
            await conn.execute("DROP TABLE IF EXISTS tp_cli_apg; CREATE TABLE tp_cli_apg (id int)")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO tp_cli_apg VALUES ($1), ($2)", 1, 2)
            assert await conn.fetchval("SELECT count(*) FROM tp_cli_apg") == 2
            await conn.execute("COMMIT")
            async with conn.transaction():
                await conn.execute("INSERT INTO tp_cli_apg VALUES (3)")
            rows = await conn.fetch(BIG)
            return rows
        finally:
            await conn.close()

    rows = asyncio.run(asyncio.wait_for(go(), 120))
    check_big(r[0] for r in rows)
    assert committed_count(pg, "tp_cli_apg") == 3


def test_md5_user_through_pooler(pool):
    """md5user authenticates to the pooler with md5 and the pooler to PostgreSQL with md5."""
    with psycopg2.connect(pool.dsn(MD5_USER, MD5_PASSWORD)) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, 1")
        assert cur.fetchone() == (MD5_USER, 1)
    conn.close()
