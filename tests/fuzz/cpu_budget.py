#!/usr/bin/python3
"""cpu_budget.py: run one libFuzzer harness until its processes have used a CPU budget.

usage: tests/fuzz/cpu_budget.py TREE HARNESS CPU_SECONDS JOBS   (after `make fuzz-build` in TREE)

`make fuzz` bounds each harness by wall time; on a busy machine that buys little CPU. This runs
JOBS processes on TREE/build-fuzz/corpus/HARNESS (seeds and dictionary as run.sh uses them),
adds up their utime+stime from /proc every 2 s, stops them with SIGINT once the sum reaches
CPU_SECONDS (libFuzzer then exits 72), and prints one line: ok or FINDINGS, runs, CPU-s. Logs go
to /tmp/cpufuzz-HARNESS-N.log, findings to TREE/build-fuzz/artifacts/HARNESS/."""
import os, sys, time, signal, subprocess, glob
tree, h, target, jobs = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
b = f"{tree}/build-fuzz"
corpus = f"{b}/corpus/{h}"; os.makedirs(corpus, exist_ok=True)
seeds = f"{tree}/tests/fuzz/corpus/{h}"
art = f"{b}/artifacts/{h}"; os.makedirs(art, exist_ok=True)
dictf = f"{tree}/tests/fuzz/dict/{h}.dict"
args = [f"{b}/{h}", corpus, seeds] + ([f"-dict={dictf}"] if os.path.exists(dictf) else []) + [
    "-timeout=120", "-rss_limit_mb=4096", "-max_len=16384", "-print_final_stats=1", f"-artifact_prefix={art}/"]
logs = [open(f"/tmp/cpufuzz-{h}-{i}.log", "w") for i in range(jobs)]
procs = [subprocess.Popen(args, stdout=l, stderr=subprocess.STDOUT) for l in logs]
tck = os.sysconf("SC_CLK_TCK")
def cpu(p):
    try:
        f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / tck
    except OSError:
        return last.get(p.pid, 0)
last = {}
t0 = time.time()
while True:
    for p in procs:
        last[p.pid] = cpu(p)
    used = sum(last.values())
    if used >= target or any(p.poll() is not None for p in procs):
        break
    time.sleep(2)
for p in procs:
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
rcs = [p.wait() for p in procs]
for l in logs: l.close()
runs = 0
crash = []
for i in range(jobs):
    t = open(f"/tmp/cpufuzz-{h}-{i}.log", errors="replace").read()
    for line in t.splitlines():
        if line.startswith("stat::number_of_executed_units:"):
            runs += int(line.split()[1])
    for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error", "FUZZ_CHECK failed", "deadly signal", "ERROR: libFuzzer"):
        if m in t:
            crash.append(f"job {i}: {m}")
arts = [a for a in glob.glob(f"{art}/*") if os.path.getmtime(a) > t0]
print(f"cpu_budget {h}: {'FINDINGS ' + str(crash) + ' ' + str(arts) if crash or arts else 'ok'}, {runs} runs, {used:.1f} CPU-s in {time.time()-t0:.0f}s x {jobs} job(s), exit codes {sorted(set(rcs))}", flush=True)
