"""A bad pgbouncer.ini stops the start: exit status 1 within seconds, and stderr names the
file, the line and the key (docs/compatibility.md: `unknown parameter: pgbouncer/foo_bar`, then
`cannot load config file`)."""

import re

import pytest

import harness

CASES = [
    ("unknown_key", "pool_mood", "transaction"),
    ("bad_enum", "pool_mode", "transcation"),
    ("bad_int", "max_client_conn", "lots"),
]


def write_bad(daemon, key, value):
    """Append the bad line at the end of [pgbouncer]; return its 1-based line number."""
    text = daemon.ini_text.rstrip("\n") + f"\n{key} = {value}\n"
    daemon.rewrite_ini(raw_ini=text)
    return text.count("\n")


@pytest.mark.parametrize("name,key,value", CASES, ids=[c[0] for c in CASES])
def test_bad_ini_exits_1_naming_file_line_key(tidepool, name, key, value):
    d = tidepool(start=False)
    line = write_bad(d, key, value)
    rc, elapsed, log = d.run_expect_exit(timeout=10)
    assert rc == 1, (rc, log)
    assert elapsed < 5, elapsed
    assert key in log, log
    assert f"{d.ini_path}:{line}" in log, log
    assert "cannot load config file" in log, log
    assert not harness.port_open("127.0.0.1", d.port)
    if name == "unknown_key":
        assert "unknown parameter: pgbouncer/pool_mood" in log, log
    else:
        assert re.search(rf'invalid value "{value}" for parameter {key}', log), log


def test_unknown_database_key_is_an_error(tidepool, pg):
    d = tidepool(start=False, databases={"appdb": f"host=127.0.0.1 port={pg.port} dbnmae=appdb"})
    rc, elapsed, log = d.run_expect_exit(timeout=10)
    assert rc == 1, log
    assert "unrecognized connection parameter: dbnmae" in log, log


def test_reload_with_bad_file_keeps_running_config(tidepool):
    d = tidepool({"pool_mode": "transaction"})
    with d.connect() as c, c.cursor() as cur:
        cur.execute("SELECT 1")
    c.close()
    write_bad(d, "pool_mode", "transcation")
    d.reload()
    d.wait_log(r'invalid value "transcation" for parameter pool_mode', timeout=10)
    assert d.alive()
    with d.connect() as c, c.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    c.close()
