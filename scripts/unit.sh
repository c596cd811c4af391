#!/bin/sh
# unit.sh: run each unit-test binary and print the one closing line "N passed, N failed".
passed=0
failed=0
status=0
for t in "$@"; do
	out=$("$t") || status=1
	line=$(printf '%s\n' "$out" | grep '^UNIT ' | tail -n 1)
	if [ -z "$line" ]; then
		echo "$t: crashed or printed no totals" >&2
		failed=$((failed + 1))
		status=1
		continue
	fi
	p=$(echo "$line" | cut -d' ' -f3)
	f=$(echo "$line" | cut -d' ' -f4)
	echo "$(basename "$t"): $p passed, $f failed"
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "$passed passed, $failed failed"
exit $status
