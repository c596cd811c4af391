#!/bin/bash
# Line coverage of src/ reached by the fuzz corpora (seeds + build-fuzz/corpus/): builds the
# harnesses again with clang's source-based coverage (no sanitizers) into build-fuzz/cov/,
# replays every corpus file once and prints llvm-cov's per-file report.
#
#   tests/fuzz/coverage.sh [harness...]        (default: all)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
CC=${FUZZ_CC:-clang-14}
PROFDATA=${LLVM_PROFDATA:-llvm-profdata-14}
COV=${LLVM_COV:-llvm-cov-14}
OUT=build-fuzz/cov
mkdir -p "$OUT/lib" "$OUT/profiles"
rm -f "$OUT"/profiles/*.profraw
PKG_CFLAGS=$(pkg-config --cflags libevent openssl)
PKG_LIBS="$(pkg-config --libs libevent openssl) -lpthread -ldl"
CFLAGS="-std=c11 -D_GNU_SOURCE -O1 -g -fprofile-instr-generate -fcoverage-mapping $PKG_CFLAGS -Isrc -Isrc/entrypoint"
objs=()
for f in $(ls src/*.c src/entrypoint/*.c | grep -v -e '^src/main.c$' -e '^src/entrypoint/main.c$'); do
	o="$OUT/lib/$(echo "$f" | tr '/' '_').o"
	if [ ! -f "$o" ] || [ "$f" -nt "$o" ]; then
		$CC $CFLAGS -c -o "$o" "$f"
	fi
	objs+=("$o")
done
for f in tests/fuzz/netsim.c tests/fuzz/sandbox.c; do
	o="$OUT/lib/$(basename "$f" .c).o"
	$CC $CFLAGS -fsanitize=fuzzer-no-link -c -o "$o" "$f"
	objs+=("$o")
done
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=($(ls tests/fuzz/fuzz_*.c | xargs -n1 basename | sed 's/\.c$//'))
bins=()
for h in "${harnesses[@]}"; do
	$CC $CFLAGS -fsanitize=fuzzer -o "$OUT/$h" "tests/fuzz/$h.c" "${objs[@]}" $PKG_LIBS
	dirs=()
	for d in "tests/fuzz/corpus/$h" "build-fuzz/corpus/$h"; do
		[ -d "$d" ] && [ -n "$(ls -A "$d")" ] && dirs+=("$d")
	done
	LLVM_PROFILE_FILE="$OUT/profiles/$h.%p.profraw" FUZZ_SKIP_KNOWN=1 "$OUT/$h" -runs=0 "${dirs[@]}" \
		>"$OUT/$h.log" 2>&1 || echo "coverage: $h exited non-zero (see $OUT/$h.log)"
	bins+=(-object "$OUT/$h")
done
$PROFDATA merge -sparse "$OUT"/profiles/*.profraw -o "$OUT/all.profdata"
$COV report "${bins[@]:1}" -instr-profile="$OUT/all.profdata" $(ls src/*.c src/entrypoint/*.c | grep -v 'main.c$')
