#!/usr/bin/python3
"""Build REPORT.md and chart.png from a scenario results dir (default tests/scenario/results).

    report.py [RESULTS_DIR]

Reads scenario.json and runs/<mode>-<users>u/{meta.json,stats.csv,failures.csv,history.csv,samples.csv},
all written by scenario.py. Exit status 1 if a pooled run broke the acceptance rules (connection
errors, or more server connections than pool + reserve); speed is never asserted.
"""
import csv
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_ORDER = ["direct-50u", "pooled-50u", "direct-100u", "pooled-100u"]
LABELS = {"direct-50u": "direct, 50 users", "pooled-50u": "pooled, 50 users", "direct-100u": "direct, 100 users",
          "pooled-100u": "pooled, 100 users"}
CONN_KINDS = ("db-connect", "db-conn-lost")

# What the seed documents promise (PGBOUNCER_SETUP_COMPLETE.md, pgbouncer_setup_windows.md).
SEED = {
    "direct-50u": {"success": 98.58, "median": 180},
    "pooled-50u": {"success_min": 99.0, "conn_errors": 0, "median": 180},
    "direct-100u": {"success": 91.72, "failures": 373, "median": 1200, "rps": 15.06},
    "pooled-100u": {"success_min": 95.0, "failures_max": 200, "conn_errors": 0, "median_max": 600,
                    "rps_range": (18, 20), "server_conns": 25, "cl_active": 95},
}


def fnum(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def read_csv(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def error_kind(err):
    """'CatchResponseError("db-connect: FATAL ...")' -> 'db-connect'."""
    m = re.match(r"""^\s*(?:\w+\()?['"]?([a-z][a-z0-9-]*):""", err or "")
    if m:
        return m.group(1)
    if "ConnectionError" in err or "Timeout" in err or "RemoteDisconnected" in err:
        return "transport"
    return "other"


def error_text(err):
    m = re.match(r"""^\s*\w+\(['"](.*)['"]\)\s*$""", err or "", re.S)
    return (m.group(1) if m else err or "").strip()


def summarize(run_dir, cfg):
    meta = {}
    try:
        with open(os.path.join(run_dir, "meta.json")) as f:
            meta = json.load(f)
    except OSError:
        pass
    stats = read_csv(os.path.join(run_dir, "stats.csv"))
    agg = next((r for r in stats if r.get("Name") == "Aggregated"), {})
    req = int(fnum(agg.get("Request Count")) or 0)
    fail = int(fnum(agg.get("Failure Count")) or 0)
    by_kind, by_error = {}, {}
    for r in read_csv(os.path.join(run_dir, "failures.csv")):
        n = int(fnum(r.get("Occurrences")) or 0)
        k = error_kind(r.get("Error", ""))
        by_kind[k] = by_kind.get(k, 0) + n
        msg = error_text(r.get("Error", "")).split(":", 1)[-1].strip()
        msg = re.sub(r'connection to server at "[^"]*", port \d+ failed: ', "", msg)
        t = f"{k}: " + msg[:120]
        by_error[t] = by_error.get(t, 0) + n
    samples = read_csv(os.path.join(run_dir, "samples.csv"))

    def peak(col):
        vals = [fnum(s.get(col)) for s in samples]
        vals = [v for v in vals if v is not None]
        return int(max(vals)) if vals else None

    console = any(fnum(s.get("cl_active")) is not None for s in samples)
    endpoints = [
        {"name": r["Name"], "requests": int(fnum(r.get("Request Count")) or 0),
         "failures": int(fnum(r.get("Failure Count")) or 0), "median": fnum(r.get("Median Response Time")),
         "p95": fnum(r.get("95%"))}
        for r in stats if r.get("Name") != "Aggregated"
    ]
    tcp = peak("tcp_clients")
    return {
        "name": meta.get("name", os.path.basename(run_dir)), "mode": meta.get("mode"), "users": meta.get("users"),
        "meta": meta, "requests": req, "failures": fail,
        "success": (100.0 * (req - fail) / req) if req else None,
        "by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
        "by_error": dict(sorted(by_error.items(), key=lambda kv: -kv[1])),
        "conn_errors": sum(v for k, v in by_kind.items() if k in CONN_KINDS),
        "median": fnum(agg.get("Median Response Time")), "p95": fnum(agg.get("95%")),
        "p99": fnum(agg.get("99%")), "avg": fnum(agg.get("Average Response Time")),
        "rps": fnum(agg.get("Requests/s")), "peak_pg": peak("pg_total"), "peak_pg_active": peak("pg_active"),
        "peak_cl_active": peak("cl_active"), "peak_cl_waiting": peak("cl_waiting"),
        "peak_sv_active": peak("sv_active"), "peak_maxwait": peak("maxwait"),
        # the sampler's own console connection is one of the pooler's TCP clients
        "peak_tcp_clients": (tcp - 1 if console and tcp else tcp),
        "console": console, "endpoints": endpoints, "samples": samples,
        "history": read_csv(os.path.join(run_dir, "history.csv")),
    }


# --------------------------------------------------------------------------- formatting


def fmt(v, unit="", nd=0):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        s = f"{v:,.{nd}f}"
    else:
        s = f"{v:,}"
    return s + unit


def cpu(s):
    return s["meta"].get("cpu_s") or {}


def others_pct(s):
    c = cpu(s)
    if not c.get("wall"):
        return None
    return 100.0 * c.get("others", 0) / (c["wall"] * (os.cpu_count() or 2))


def own_cpu(s):
    c = cpu(s)
    keys = ("postgres", "tidepool", "gunicorn", "locust", "sampler")
    return sum(c.get(k) or 0 for k in keys) if c else None


def per_cpu(s):
    own = own_cpu(s)
    if not own:
        return "n/a"
    return fmt((s["requests"] - s["failures"]) / own, "", 1)


def cpu_text(s):
    c = cpu(s)
    if not c:
        return "n/a"
    t = "–" if s["mode"] != "pooled" else fmt(c.get("tidepool"), "", 0)
    return f"{fmt(c.get('postgres'), '', 0)} / {t} / {fmt(c.get('gunicorn'), '', 0)} / {fmt(c.get('locust'), '', 0)}"


def kinds_text(s):
    if not s["by_kind"]:
        return "none"
    return ", ".join(f"{k} {n:,}" for k, n in s["by_kind"].items())


def results_table(runs, cfg):
    cols = [r for r in RUN_ORDER if r in runs]
    head = "| | " + " | ".join(runs[c]["label"] for c in cols) + " |"
    sep = "|---|" + "---:|" * len(cols)
    limit_pool = cfg["default_pool_size"] + cfg["reserve_pool_size"]
    rows = [
        ("Requests", lambda s: fmt(s["requests"])),
        ("Success rate", lambda s: fmt(s["success"], " %", 2)),
        ("Failures", lambda s: fmt(s["failures"])),
        ("Failures by kind", kinds_text),
        ("Database connection errors", lambda s: f"**{fmt(s['conn_errors'])}**"),
        ("HTTP connection resets (Locust ↔ gunicorn)", lambda s: fmt(s["by_kind"].get("transport", 0))),
        ("Median response", lambda s: fmt(s["median"], " ms")),
        ("p95 response", lambda s: fmt(s["p95"], " ms")),
        ("Requests/s", lambda s: fmt(s["rps"], "", 1)),
        ("Peak server connections (pg_stat_activity)", lambda s: fmt(s["peak_pg"])),
        ("Peak `cl_active` (SHOW POOLS)", lambda s: fmt(s["peak_cl_active"]) if s["mode"] == "pooled" else "–"),
        ("Peak `cl_waiting` (SHOW POOLS)", lambda s: fmt(s["peak_cl_waiting"]) if s["mode"] == "pooled" else "–"),
        ("Peak client TCP connections to the pooler (console fallback)",
         lambda s: fmt(s["peak_tcp_clients"]) if s["mode"] == "pooled" else "–"),
        ("PostgreSQL \"too many clients\" FATALs", lambda s: fmt(s["meta"].get("pg_fatal_too_many_clients"))),
        ("CPU s: PostgreSQL / tidepool / gunicorn / Locust", cpu_text),
        ("Successful requests per CPU second of the scenario's own processes", per_cpu),
        ("Other processes' share of the machine's CPU", lambda s: fmt(others_pct(s), " %", 0)),
        ("Machine busy during the run / just before it", lambda s: f"{fmt(cpu(s).get('machine_busy_pct'), ' %', 0)} / "
         f"{fmt(s['meta'].get('machine_busy_pct_before'), ' %', 0)}"),
    ]
    if all(runs[c]["peak_tcp_clients"] is None for c in cols):
        rows = [r for r in rows if not r[0].startswith("Peak client TCP")]
    out = [head, sep]
    for label, f in rows:
        out.append(f"| {label} | " + " | ".join(f(runs[c]) for c in cols) + " |")
    out.append("")
    out.append(f"Limits: PostgreSQL `max_connections = {cfg['max_connections']}` "
               f"({cfg['max_connections'] - cfg['superuser_reserved_connections']} for the app after "
               f"`superuser_reserved_connections = {cfg['superuser_reserved_connections']}`); "
               f"pooler `default_pool_size = {cfg['default_pool_size']}` + `reserve_pool_size = "
               f"{cfg['reserve_pool_size']}` = {limit_pool}. Two of PostgreSQL's 47 ordinary slots hold the "
               "harness's own superuser connections (the sampler and the driver), so the app can get at most 45.")
    return "\n".join(out)


def verdict(ok):
    return "yes" if ok else "**no**"


def seed_checks():
    """(run, metric, what the seed expects, value(s, runs), agrees(s, runs) or None)."""
    near = lambda a, b, tol: a is not None and b is not None and abs(a - b) <= tol * b  # noqa: E731

    def vs_direct(s, runs):
        d = runs.get("direct-100u")
        return (s["rps"] or 0) / d["rps"] if d and d["rps"] else None

    return [
        ("direct-50u", "success rate", "98.58 %", lambda s, r: fmt(s["success"], " %", 2),
         lambda s, r: near(s["success"], 98.58, 0.005)),
        ("direct-50u", "median", "180 ms", lambda s, r: fmt(s["median"], " ms"), lambda s, r: near(s["median"], 180, 0.5)),
        ("pooled-50u", "success rate", "> 99 %", lambda s, r: fmt(s["success"], " %", 2),
         lambda s, r: (s["success"] or 0) > 99),
        ("pooled-50u", "connection errors", "0", lambda s, r: fmt(s["conn_errors"]), lambda s, r: s["conn_errors"] == 0),
        ("pooled-50u", "median", "~180 ms, no regression from direct",
         lambda s, r: f"{fmt(s['median'], ' ms')} (direct {fmt(r['direct-50u']['median'], ' ms') if 'direct-50u' in r else 'n/a'})",
         lambda s, r: None if "direct-50u" not in r else (s["median"] or 0) <= 1.2 * (r["direct-50u"]["median"] or 0)),
        ("direct-100u", "success rate", "91.72 %", lambda s, r: fmt(s["success"], " %", 2),
         lambda s, r: near(s["success"], 91.72, 0.02)),
        ("direct-100u", "failures", "373", lambda s, r: fmt(s["failures"]), lambda s, r: near(s["failures"], 373, 0.5)),
        ("direct-100u", "connection errors", "high: connections exhausted",
         lambda s, r: f"{fmt(s['conn_errors'])} (peak {fmt(s['peak_pg'])} connections)", lambda s, r: s["conn_errors"] > 0),
        ("direct-100u", "median", "1,200 ms", lambda s, r: fmt(s["median"], " ms"), lambda s, r: near(s["median"], 1200, 0.5)),
        ("direct-100u", "requests/s", "15.06", lambda s, r: fmt(s["rps"], "", 1), lambda s, r: near(s["rps"], 15.06, 0.25)),
        ("pooled-100u", "success rate", "> 95 % (> 97 % in the Windows guide)", lambda s, r: fmt(s["success"], " %", 2),
         lambda s, r: (s["success"] or 0) > 95),
        ("pooled-100u", "failures", "< 200", lambda s, r: fmt(s["failures"]), lambda s, r: s["failures"] < 200),
        ("pooled-100u", "connection errors", "0", lambda s, r: fmt(s["conn_errors"]), lambda s, r: s["conn_errors"] == 0),
        ("pooled-100u", "median", "< 600 ms (< 400 ms in the Windows guide)", lambda s, r: fmt(s["median"], " ms"),
         lambda s, r: (s["median"] or 1e9) < 600),
        ("pooled-100u", "requests/s", "18-20, +20 % over direct",
         lambda s, r: f"{fmt(s['rps'], '', 1)} ({fmt(100 * (vs_direct(s, r) - 1) if vs_direct(s, r) else None, ' %', 0)} vs direct)",
         lambda s, r: None if vs_direct(s, r) is None else vs_direct(s, r) >= 1.2),
        ("pooled-100u", "server connections", "~25 (24 active + 1 idle); 25-30", lambda s, r: fmt(s["peak_pg"]),
         lambda s, r: s["peak_pg"] is not None and s["peak_pg"] <= 30),
        ("pooled-100u", "`cl_active`", "~95", lambda s, r: fmt(s["peak_cl_active"]),
         lambda s, r: None if s["peak_cl_active"] is None else near(s["peak_cl_active"], 95, 0.2)),
    ]


def seed_comparison(runs, prev=None):
    """Rows: run | metric | the seed expects | this run | (previous run) | agrees."""
    head = "| Run | Metric | The seed expects | This run |" + (" Previous run |" if prev else "") + (" Agrees (this / previous) |" if prev else " Agrees |")
    head += "\n|---|---|---|---|" + ("---|" if prev else "") + "---|"
    rows = [head]
    for run, metric, seed, value, ok in seed_checks():
        if run not in runs:
            continue
        s = runs[run]
        cells = [LABELS.get(run, run), metric, seed, value(s, runs)]
        verdicts = [ok(s, runs)]
        if prev:
            if run in prev:
                cells.append(value(prev[run], prev))
                verdicts.append(ok(prev[run], prev))
            else:
                cells.append("n/a")
        v = " / ".join("–" if x is None else ("yes" if x else "**no**") for x in verdicts)
        rows.append("| " + " | ".join(cells) + f" | {v} |")
    return "\n".join(rows)


def endpoint_table(s):
    out = ["| Endpoint | Requests | Failures | Median | p95 |", "|---|---:|---:|---:|---:|"]
    for e in sorted(s["endpoints"], key=lambda e: -e["requests"]):
        out.append(f"| {e['name']} | {e['requests']:,} | {e['failures']:,} | {fmt(e['median'], ' ms')} | "
                   f"{fmt(e['p95'], ' ms')} |")
    return "\n".join(out)


# --------------------------------------------------------------------------- chart


def series(rows, t0, col):
    xs, ys = [], []
    for r in rows:
        t, v = fnum(r.get("Timestamp")), fnum(r.get(col))
        if t is None or v is None:
            continue
        xs.append(t - t0)
        ys.append(v)
    return xs, ys


def sample_series(samples, col):
    xs, ys = [], []
    for r in samples:
        t, v = fnum(r.get("t")), fnum(r.get(col))
        if t is not None and v is not None:
            xs.append(t)
            ys.append(v)
    return xs, ys


def chart(runs, cfg, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({s["users"] for s in runs.values()})
    fig, axes = plt.subplots(3, len(sizes), figsize=(6.5 * len(sizes), 10.5), sharex="col", squeeze=False)
    colors = {"direct": "#d62728", "pooled": "#1f77b4"}
    app_limit = cfg["max_connections"] - cfg["superuser_reserved_connections"]
    pool_limit = cfg["default_pool_size"] + cfg["reserve_pool_size"]
    for j, n in enumerate(sizes):
        ax_rt, ax_rps, ax_c = axes[0][j], axes[1][j], axes[2][j]
        for mode in ("direct", "pooled"):
            s = runs.get(f"{mode}-{n}u")
            if not s:
                continue
            t0 = s["meta"].get("t0", 0)
            c = colors[mode]
            x, y = series(s["history"], t0, "50%")
            ax_rt.plot(x, y, color=c, lw=1.6, label=f"{mode}: median")
            x, y = series(s["history"], t0, "95%")
            ax_rt.plot(x, y, color=c, lw=1, ls="--", alpha=0.8, label=f"{mode}: p95")
            x, y = series(s["history"], t0, "Requests/s")
            ax_rps.plot(x, y, color=c, lw=1.4, label=f"{mode}: requests/s")
            x, y = series(s["history"], t0, "Failures/s")
            ax_rps.plot(x, y, color=c, lw=1, ls=":", label=f"{mode}: failures/s")
            x, y = sample_series(s["samples"], "pg_total")
            ax_c.plot(x, y, color=c, lw=1.6, label=f"{mode}: server connections (pg_stat_activity)")
            if mode == "pooled":
                x, y = sample_series(s["samples"], "cl_active")
                if x:
                    ax_c.plot(x, y, color="#17becf", lw=1, ls="--", label="pooled: cl_active (SHOW POOLS)")
                x, y = sample_series(s["samples"], "cl_waiting")
                if x:
                    ax_c.plot(x, y, color="#9467bd", lw=1, ls=":", label="pooled: cl_waiting")
        ax_c.axhline(app_limit, color=colors["direct"], lw=0.8, ls="-.", alpha=0.7)
        ax_c.text(2, app_limit + 1, f"max_connections {cfg['max_connections']} - superuser_reserved {cfg['superuser_reserved_connections']} = {app_limit}", fontsize=8, color=colors["direct"])
        ax_c.axhline(pool_limit, color=colors["pooled"], lw=0.8, ls="-.", alpha=0.7)
        ax_c.text(2, pool_limit + 1, f"pool + reserve ({pool_limit})", fontsize=8, color=colors["pooled"])
        ax_rt.set_title(f"{n} users (Locust -u {n} -r {cfg.get('spawn_rate', 2)})")
        ax_rt.set_ylabel("response time, ms (10 s window)")
        ax_rt.set_yscale("log")
        ax_rps.set_ylabel("per second")
        ax_c.set_ylabel("connections")
        ax_c.set_xlabel("seconds since the start of the run")
        lo, hi = ax_c.get_ylim()
        ax_c.set_ylim(0, max(hi, app_limit) * 1.45)
        lo, hi = ax_rps.get_ylim()
        ax_rps.set_ylim(0, hi * 1.35)
        lo, hi = ax_rt.get_ylim()
        ax_rt.set_ylim(lo, hi * 4)
        for ax in (ax_rt, ax_rps, ax_c):
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.suptitle("Django + gunicorn + Locust: direct to PostgreSQL vs through tidepool (transaction pooling)",
                 fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------- the report


def acceptance(runs, cfg):
    problems = []
    limit = cfg["default_pool_size"] + cfg["reserve_pool_size"]
    for name, s in runs.items():
        if s["mode"] != "pooled":
            continue
        if s["conn_errors"]:
            problems.append(f"{name}: {s['conn_errors']} connection errors through the pooler")
        if s["peak_pg"] is None or s["peak_pg"] > limit:
            problems.append(f"{name}: peak server connections {s['peak_pg']} > pool + reserve {limit}")
        if not s["requests"]:
            problems.append(f"{name}: no requests")
    return problems


def write_report(out, cfg, runs, prev=None, prev_cfg=None):
    env = cfg.get("env", {})
    pre = cfg.get("preflight", {})
    dur = cfg.get("duration_s")
    for k, s in runs.items():
        s["label"] = f"{s['mode']}, {s['users']} users"
    L = []
    L.append("# The user's scenario, measured: Django + Locust, direct vs through tidepool\n")
    L.append(f"Generated by `make scenario` (tests/scenario/scenario.py, report.py) on {env.get('date', '?')}, "
             f"tidepool at git `{env.get('git', '?')}` ({pre.get('pooler_version', '?')}).\n")
    L.append(f"Machine: {env.get('cpus')} cores ({env.get('cpu')}), {env.get('mem_gib')} GiB; {env.get('os')}. "
             f"PostgreSQL {env.get('postgres')}, Django {env.get('django')}, {env.get('gunicorn')}, "
             f"Locust {env.get('locust')}, Python {env.get('python')} (all from Debian 12's packages). "
             "PostgreSQL, tidepool, gunicorn and Locust all share the 2 cores.\n")
    L.append("## Results\n")
    L.append(f"Four runs of {dur} s each, in this order: " + ", ".join(
        f"`{runs[k]['label']}`" for k in RUN_ORDER if k in runs) + ". A fresh gunicorn for each run, a fresh "
        "tidepool for each pooled run, and no connection of an earlier run left in PostgreSQL.\n")
    shares = [others_pct(s) for s in runs.values() if others_pct(s) is not None]
    if shares and max(shares) > 15:
        L.append(f"**Caveat: the machine was shared.** Processes that are not part of the scenario (other "
                 f"engineers' builds, tests and benchmarks on the same 2 cores) used {min(shares):.0f}-"
                 f"{max(shares):.0f} % of the machine's CPU during the runs (row \"Other processes' share\"). "
                 "Response times and requests/s are therefore lower and noisier than on a quiet machine, and "
                 "differ between runs for reasons that are not direct vs pooled. The connection counts, the "
                 "kinds of failures and whether PostgreSQL ran out of connections are what to read here, and "
                 "\"successful requests per CPU second\", which does not depend on how much CPU the scenario got.\n")
    L.append(results_table(runs, cfg) + "\n")
    L.append("![Response time, throughput and connections over time, direct vs pooled](chart.png)\n")
    L.append("Database connection errors are failures of kind `db-connect` (Django could not open a "
             "database connection: PostgreSQL's `too many clients`, or the pooler refusing) and `db-conn-lost` "
             "(the connection broke under a query). `transport` failures (no HTTP response: gunicorn reset the "
             "connection) are counted apart: they happen between Locust and gunicorn, before any database "
             "work, and come from a starved gunicorn. Server connections are the app's client backends in `pg_stat_activity`, sampled "
             f"every {cfg.get('sample_interval', 0.5)} s; `cl_active`/`cl_waiting` come from `SHOW POOLS` on "
             "tidepool's admin console, sampled at the same time.\n")
    if prev:
        pe = (prev_cfg or {}).get("env", {})
        L.append(f"### The run before this one (same code and settings, {pe.get('date', '?')}, git `{pe.get('git', '?')}`)\n")
        L.append("`make scenario` keeps the previous complete run in `previous/`, so that two runs show the spread "
                 "on this shared machine.\n")
        L.append(results_table(prev, prev_cfg or cfg).split("\n\nLimits:")[0] + "\n")
        L.append("![The previous run](previous/chart.png)\n")
    # failure details
    L.append("### Failures, by message\n")
    any_fail = False
    for k in RUN_ORDER:
        s = runs.get(k)
        if not s or not s["by_error"]:
            continue
        any_fail = True
        L.append(f"- **{s['label']}**: " + "; ".join(f"{n:,} × `{t}`" for t, n in list(s["by_error"].items())[:6]))
    if not any_fail:
        L.append("No failures in any run.")
    L.append("")
    L.append("## Against the seed's expectations\n")
    L.append("The seed documents (PGBOUNCER_SETUP_COMPLETE.md and pgbouncer_setup_windows.md) promise these "
             "numbers; the last column says whether our run agrees. Their machine, data and Locust file are not "
             "ours, so absolute times and rates are not expected to match; what should carry over is the shape: "
             "connection errors without a pooler at 100 users, none with it, and a small fixed number of "
             "server connections.\n")
    L.append(seed_comparison(runs, prev) + "\n")
    # the checklist
    L.append("## The seed's checklist, through tidepool in transaction mode\n")
    L.append("| Step | Result |\n|---|---|")
    for st in pre.get("steps", []):
        res = "ok" if st["ok"] else ("**failed**" if st["required"] else "failed (expected, see below)")
        L.append(f"| {st['name']} | {res} |")
    L.append("")
    if pre.get("options_rejected"):
        L.append("The seed's `DATABASES['default']['OPTIONS']` sends `options = '-c statement_timeout=60000 -c "
                 "idle_in_transaction_session_timeout=120000'` as a startup parameter. Like PgBouncer, tidepool "
                 "refuses it (`unsupported startup parameter: options`), so with the seed's pgbouncer.ini Django "
                 "cannot connect at all. The fix used here: `ignore_startup_parameters = options` in the ini, and "
                 "the two timeouts set on the role instead (`ALTER ROLE app SET statement_timeout = '60s'`, "
                 "same for `idle_in_transaction_session_timeout`), because an ignored parameter is not applied.\n")
    if pre.get("console_output"):
        L.append("`psql -h 127.0.0.1 -p $POOLER_PORT -U app -d pgbouncer -c 'SHOW POOLS' -c 'SHOW pool_mode' "
                 "-c 'SHOW max_client_conn'` (idle, before the runs):\n")
        L.append("```\n" + pre["console_output"] + "\n```\n")
    console_runs = [s for s in runs.values() if s["mode"] == "pooled"]
    if console_runs and not all(s["console"] for s in console_runs):
        errs = {s["meta"].get("console_error") for s in console_runs if not s["console"]}
        L.append("The admin console was **not available** in some pooled runs (" + "; ".join(
            str(e) for e in errs) + "): `cl_active` there is n/a; the pooler's client connections are counted "
            "from /proc/net/tcp instead (\"Peak client TCP connections\").\n")
    # per endpoint, 100 users
    L.append("## Per endpoint\n")
    for k in RUN_ORDER:
        if k in runs:
            L.append(f"**{runs[k]['label']}**\n\n" + endpoint_table(runs[k]) + "\n")
    # scaling
    app_limit = cfg["max_connections"] - cfg["superuser_reserved_connections"]
    threads = cfg["gunicorn_workers"] * cfg["gunicorn_threads"]
    L.append("## Scaling choices\n")
    L.append(f"""- **PostgreSQL `max_connections = {cfg['max_connections']}`** (the seed: 200). The seed's pooler
  settings are kept as they are (`default_pool_size = {cfg['default_pool_size']}`, `reserve_pool_size =
  {cfg['reserve_pool_size']}`, `max_client_conn = {cfg['max_client_conn']}`, `pool_mode = transaction`), so the
  pool ({cfg['default_pool_size'] + cfg['reserve_pool_size']}) fits under PostgreSQL's limit for the app
  ({app_limit}) with room for the monitoring connection, and the direct setup can run out the way theirs did.
- **gunicorn**: {cfg['gunicorn_workers']} workers × {cfg['gunicorn_threads']} threads (`--worker-class gthread`) =
  {threads} request threads, one per Locust user at 100 users. Direct, Django keeps one connection per thread
  (`CONN_MAX_AGE = 600`), so the number of PostgreSQL connections grows with the number of requests in flight
  at the busiest moment, and more than {app_limit} at once exhausts PostgreSQL. Pooled (`CONN_MAX_AGE = 0`), each
  request opens a client connection to tidepool and closes it at the end.
- **The app** (tests/scenario/ahsp/): Django's login with database sessions, a dashboard doing four ORM
  queries (projects with a GROUP BY count and sum, recent items with a join, a catalogue aggregate, a grand
  total) plus `pg_sleep({cfg['dashboard_sleep']})` standing in for the real app's slow report query, a project
  page, and a write endpoint (insert an item, update the project, in one transaction). 100 accounts, 300
  projects, 12,000 items, 2,000 priced resources. Passwords use Django's default PBKDF2 hasher.
- **Locust mix** (tests/scenario/locustfile.py): every user logs in on start; then dashboard 5, project page 3,
  add item 1, log out and in again 1; think time {cfg['wait_min']:g}-{cfg['wait_max']:g} s; `-r 2` as in the seed;
  {dur} s per run (the seed ran 300 s).
- **Settings** (tests/scenario/ahsp/config/settings/base.py): the seed's `PGBOUNCER_PORT` switch verbatim.
  `CONN_HEALTH_CHECKS` only exists from Django 4.1; Debian 12's Django 3.2 ignores it.
""")
    L.append("## Reproduce\n")
    L.append("```sh\napt-get install -y python3-django gunicorn python3-locust python3-psycopg2 python3-matplotlib "
             "postgresql\nmake scenario          # the four runs + this report (25-45 min: before each run it waits up to 5 min for a quiet machine)\nmake scenario-smoke    # "
             "one 30 s pooled run + check/migrate (CI)\n```\n")
    L.append("Each run's Locust command (ports differ per run):\n")
    L.append("```sh")
    for k in RUN_ORDER:
        if k in runs:
            L.append(re.sub(r"--csv results/(\S+)", r"--csv $WORK/locust-\1/run", runs[k]["meta"].get("locust_cmd", "")))
    L.append("```\n")
    L.append("Raw data per run: `runs/<mode>-<users>u/` (Locust's stats, failures and aggregated history CSVs, "
             "the connection samples, meta.json).\n")
    problems = acceptance(runs, cfg)
    L.append("## Acceptance (pooled runs)\n")
    if problems:
        L.append("**Not met:**\n\n" + "\n".join(f"- {p}" for p in problems) + "\n")
    else:
        L.append("Met: 0 connection errors in the pooled runs, and peak server connections never above "
                 f"pool + reserve ({cfg['default_pool_size'] + cfg['reserve_pool_size']}).\n")
    with open(os.path.join(out, "REPORT.md"), "w") as f:
        f.write("\n".join(L))
    return problems


def load_runs(d):
    try:
        with open(os.path.join(d, "scenario.json")) as f:
            cfg = json.load(f)
    except OSError:
        return {}, None
    runs = {k: summarize(os.path.join(d, "runs", k), cfg) for k in RUN_ORDER if os.path.isdir(os.path.join(d, "runs", k))}
    return runs, cfg


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = argv[0] if argv else os.path.join(HERE, "results")
    with open(os.path.join(out, "scenario.json")) as f:
        cfg = json.load(f)
    runs = {}
    for k in RUN_ORDER:
        d = os.path.join(out, "runs", k)
        if os.path.isdir(d):
            runs[k] = summarize(d, cfg)
    if not runs:
        print(f"no runs under {out}/runs", file=sys.stderr)
        return 1
    prev, prev_cfg = load_runs(os.path.join(out, "previous"))
    for r in (prev or {}).values():
        r["label"] = LABELS.get(r["name"], r["name"])
    problems = write_report(out, cfg, runs, prev or None, prev_cfg)
    chart(runs, cfg, os.path.join(out, "chart.png"))
    if prev:
        chart(prev, prev_cfg, os.path.join(out, "previous", "chart.png"))
    for k in RUN_ORDER:
        if k in runs:
            s = runs[k]
            print(f"{k:12s} requests {s['requests']:6d}  success {fmt(s['success'], '%', 2):>8s}  "
                  f"conn-errors {s['conn_errors']:5d}  median {fmt(s['median'], 'ms'):>8s}  p95 {fmt(s['p95'], 'ms'):>8s}  "
                  f"{fmt(s['rps'], ' req/s', 1):>11s}  peak server conns {fmt(s['peak_pg'])}  "
                  f"peak cl_active {fmt(s['peak_cl_active'])}  kinds: {kinds_text(s)}")
    print(f"wrote {os.path.join(out, 'REPORT.md')} and chart.png")
    for p in problems:
        print("NOT MET:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
