"""Host lists: load_balance_hosts = disable keeps using the host that works and moves on only
when one fails. Until the first login of a pool succeeds, one server logs in at a time (else
both clients' servers would try the bad host)."""

import re
import threading

import harness


def sleepers(d, n, dbname, seconds=0.5):
    errors = []

    def run():
        try:
            conn = d.connect(dbname=dbname)
            with conn.cursor() as cur:
                cur.execute(f"SELECT pg_sleep({seconds})")
            conn.close()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors


def test_disable_moves_past_a_bad_first_host_once(tidepool, pg):
    dbs = {"hl": f"host=no-such-host.invalid,127.0.0.1 port={pg.port} dbname=appdb "
                 "load_balance_hosts=disable"}
    d = tidepool({"server_login_retry": "0.2"}, databases=dbs)
    sleepers(d, 2, "hl")
    log = d.log()
    assert len(re.findall(r"closing because: server DNS lookup failed", log)) == 1, log
    assert len(re.findall(r"127\.0\.0\.1:\d+ new connection to server", log)) == 2, log
