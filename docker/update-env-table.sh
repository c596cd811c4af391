#!/bin/sh
# update-env-table.sh ENTRYPOINT_BINARY: put the entrypoint's --help-markdown between the
# env-table markers of README.md (make docker-doc). make docker-test checks they agree.
set -eu
bin=${1:-build/tidepool-entrypoint}
readme=$(dirname "$0")/../README.md
tmp=$(mktemp)
"$bin" --help-markdown >"$tmp.table"
awk -v table="$tmp.table" '
	/<!-- env-table:end -->/ { skip = 0 }
	!skip { print }
	/<!-- env-table:begin -->/ { while ((getline l < table) > 0) print l; skip = 1 }
' "$readme" >"$tmp"
cat "$tmp" >"$readme"
rm -f "$tmp" "$tmp.table"
echo "updated $readme"
