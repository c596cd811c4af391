#!/bin/bash
# Run the libFuzzer harnesses built by `make fuzz-build` (build-fuzz/fuzz_*).
#
#   tests/fuzz/run.sh [--regress] [harness...]      (default: every build-fuzz/fuzz_* binary)
#
# For each harness:
#   1. every saved crash input in tests/fuzz/regressions/<harness>/ is replayed: each must run
#      clean (a file there that still crashes is a bug not fixed yet);
#   2. the seed corpus tests/fuzz/corpus/<harness>/ is replayed once;
#   3. unless --regress: fuzzing for FUZZ_SECONDS (default 60) with the seeds, the dictionary
#      tests/fuzz/dict/<harness>.dict and a working corpus in build-fuzz/corpus/<harness>/.
# Findings land in build-fuzz/artifacts/<harness>/ with the command that reproduces them.
# Prints one line per harness ("fuzz <harness>: ok, N runs in S s ..." or "... FAILED ...")
# and a summary line; exits non-zero if anything failed.
#
# Environment: FUZZ_BUILD (build-fuzz), FUZZ_SECONDS (60), FUZZ_JOBS (1: parallel fuzzing
# processes per harness, each for FUZZ_SECONDS), FUZZ_ARGS (extra libFuzzer flags).
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
case "$FUZZ_BUILD" in /*) ;; *) FUZZ_BUILD="$ROOT/$FUZZ_BUILD" ;; esac
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-1}
FUZZ_ARGS=${FUZZ_ARGS:-}
REGRESS_ONLY=0
if [ "${1:-}" = "--regress" ]; then
	REGRESS_ONLY=1
	shift
fi

harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
	for b in "$FUZZ_BUILD"/fuzz_*; do
		[ -x "$b" ] && [ -f "$b" ] && harnesses+=("$(basename "$b")")
	done
fi
if [ ${#harnesses[@]} -eq 0 ]; then
	echo "no harnesses in $FUZZ_BUILD: run make fuzz-build" >&2
	exit 2
fi

# Sanitizer reports abort the run; leaks are reported per input by libFuzzer.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1:handle_abort=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
ok=0
summary=()
for h in "${harnesses[@]}"; do
	bin="$FUZZ_BUILD/$h"
	seeds="$ROOT/tests/fuzz/corpus/$h"
	regs="$ROOT/tests/fuzz/regressions/$h"
	work="$FUZZ_BUILD/corpus/$h"
	art="$FUZZ_BUILD/artifacts/$h"
	logs="$FUZZ_BUILD/logs"
	dict="$ROOT/tests/fuzz/dict/$h.dict"
	mkdir -p "$work" "$art" "$logs"
	if [ ! -x "$bin" ]; then
		echo "fuzz $h: FAILED (no binary $bin)"
		failed=$((failed + 1))
		continue
	fi
	status=ok
	detail=""

	# 1. saved crash inputs
	if [ -d "$regs" ] && [ -n "$(ls -A "$regs" 2>/dev/null)" ]; then
		for f in "$regs"/*; do
			[ -f "$f" ] || continue
			# twice: netsim's fd-leak check starts with the second input of a process
			if ! "$bin" -runs=2 -artifact_prefix="$art/regression-" "$f" >"$logs/$h.regress.log" 2>&1; then
				status=FAILED
				detail+=" regression $(basename "$f") still fails (see $logs/$h.regress.log; reproduce: $bin $f);"
				cp "$logs/$h.regress.log" "$art/regression-$(basename "$f").log"
			fi
		done
	fi

	# 2. seed corpus replay
	if [ -d "$seeds" ]; then
		if ! "$bin" -runs=0 -artifact_prefix="$art/seed-" "$seeds" >"$logs/$h.seeds.log" 2>&1; then
			status=FAILED
			detail+=" a seed input fails (see $logs/$h.seeds.log);"
		fi
	fi

	# 3. fuzzing
	runs=0
	secs=0
	if [ "$REGRESS_ONLY" = 0 ]; then
		dictarg=()
		[ -f "$dict" ] && dictarg=(-dict="$dict")
		t0=$(date +%s)
		pids=()
		for j in $(seq 1 "$FUZZ_JOBS"); do
			# CPU time (user + system) of each job goes to a .cpu file: on a shared machine the
			# wall-clock time says little about how much fuzzing was done.
			(
				TIMEFORMAT='%U %S'
				# shellcheck disable=SC2086
				{ time "$bin" "$work" "$seeds" "${dictarg[@]}" -max_total_time="$FUZZ_SECONDS" -timeout=120 \
					-rss_limit_mb=4096 -max_len=16384 -print_final_stats=1 -artifact_prefix="$art/" \
					$FUZZ_ARGS >"$logs/$h.fuzz.$j.log" 2>&1; } 2>"$logs/$h.fuzz.$j.cpu"
			) &
			pids+=($!)
		done
		for j in "${!pids[@]}"; do
			if ! wait "${pids[$j]}"; then
				status=FAILED
				log="$logs/$h.fuzz.$((j + 1)).log"
				crash=$(grep -a -o "Test unit written to .*" "$log" | tail -1 | sed 's/Test unit written to //')
				why=$(grep -a -m1 -E "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|FUZZ_CHECK failed|netsim:" "$log")
				detail+=" ${why:-fuzzer exited non-zero} -> ${crash:-see $log} (reproduce: $bin ${crash:-});"
			fi
		done
		secs=$(($(date +%s) - t0))
		cpu=0
		for j in $(seq 1 "$FUZZ_JOBS"); do
			n=$(grep -a -m1 "stat::number_of_executed_units" "$logs/$h.fuzz.$j.log" | awk '{print $2}')
			runs=$((runs + ${n:-0}))
			c=$(tail -1 "$logs/$h.fuzz.$j.cpu" 2>/dev/null | awk '{printf "%.1f", $1 + $2}')
			cpu=$(awk -v a="$cpu" -v b="${c:-0}" 'BEGIN { printf "%.1f", a + b }')
		done
		cov=$(grep -a -E "^#[0-9]+.*(DONE|cov:)" "$logs/$h.fuzz.1.log" | tail -1 | grep -o "cov: [0-9]*" || true)
		corpus=$(find "$work" -type f | wc -l)
		detail=" $runs runs in ${secs}s x $FUZZ_JOBS job(s) (${cpu} CPU-s), $cov, corpus $corpus;$detail"
	fi
	line="fuzz $h: $status,${detail%;}"
	echo "$line"
	summary+=("$line")
	if [ "$status" = ok ]; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
done

echo
echo "fuzz summary: ${#harnesses[@]} harnesses, $ok ok, $failed failed"
[ "$failed" = 0 ]
