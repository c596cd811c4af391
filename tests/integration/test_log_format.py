"""The log keeps PgBouncer's line format: operators and tools grep it."""

import re
import signal

import psycopg2

LINE = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \w+ \[\d+\] "
LOGIN = LINE + r"LOG C-0x[0-9a-f]+: appdb/app@127\.0\.0\.1:\d+ login attempt: db=appdb user=app tls=no"
CLOSE = LINE + r"LOG C-0x[0-9a-f]+: appdb/app@127\.0\.0\.1:(\d+) closing because: client close request \(age=\d+s\)"


def test_login_and_close_lines(tidepool):
    d = tidepool()
    conn = psycopg2.connect(d.dsn(sslmode="disable"))
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()
    conn.close()
    m = d.wait_log(CLOSE, timeout=10)
    log = d.log()
    assert re.search(LOGIN, log, re.M), log
    # the close line is for the same client socket as the login line
    port = m.group(1)
    assert re.search(LOGIN.replace(r"127\.0\.0\.1:\d+", r"127\.0\.0\.1:" + port), log, re.M), log
    # every line of the log has the PgBouncer prefix and a known level
    for line in log.splitlines():
        assert re.match(LINE + r"(LOG|WARNING|ERROR|FATAL|NOISE|DEBUG|NOTICE) ", line), line
    assert d.pid and re.search(rf"\[{d.pid}\] ", log), "the [pid] is the daemon's PID"


def test_sighup_is_logged(tidepool):
    d = tidepool()
    d.send_signal(signal.SIGHUP)
    d.wait_log(LINE + r"LOG got SIGHUP, re-reading config", timeout=10)
    assert d.alive()
