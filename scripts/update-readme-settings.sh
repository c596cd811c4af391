#!/bin/sh
# update-readme-settings.sh: regenerate the README's settings table from `tidepool --list-settings`.
set -eu
bin=${1:-build/tidepool}
table=$("$bin" --list-settings)
TABLE="$table" /usr/bin/python3 - <<'PY'
import os, re
s = open("README.md").read()
s = re.sub(r"<!-- settings:begin -->.*<!-- settings:end -->",
           lambda m: "<!-- settings:begin -->\n" + os.environ["TABLE"] + "\n<!-- settings:end -->", s, flags=re.S)
open("README.md", "w").write(s)
PY
