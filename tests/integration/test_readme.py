"""The README's settings table is exactly what `tidepool --list-settings` prints."""
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("TIDEPOOL_BIN", os.path.join(ROOT, "build", "tidepool"))


@pytest.mark.skipif(os.path.basename(BIN) == "pgbouncer", reason="tidepool's own README")
def test_readme_settings_table_matches_binary():
    out = subprocess.run([BIN, "--list-settings"], capture_output=True, text=True, check=True).stdout
    readme = open(os.path.join(ROOT, "README.md")).read()
    m = re.search(r"<!-- settings:begin -->\n(.*?)\n?<!-- settings:end -->", readme, re.S)
    assert m, "README has no settings block"
    assert m.group(1).strip() == out.strip(), "README settings table is stale: run scripts/update-readme-settings.sh"
    # every known setting is listed once
    names = [line.split("|")[1].strip() for line in out.splitlines()[2:]]
    assert len(names) == len(set(names)) and len(names) >= 98


@pytest.mark.skipif(os.path.basename(BIN) == "pgbouncer", reason="tidepool's own README")
def test_readme_env_table_matches_entrypoint():
    ep = os.path.join(os.path.dirname(BIN), "tidepool-entrypoint")
    out = subprocess.run([ep, "--help-markdown"], capture_output=True, text=True, check=True).stdout
    readme = open(os.path.join(ROOT, "README.md")).read()
    m = re.search(r"<!-- env-table:begin -->\n(.*?)\n?<!-- env-table:end -->", readme, re.S)
    assert m, "README has no env-table block"
    assert m.group(1).strip() == out.strip(), "README env table is stale: run make docker-doc"
