#!/usr/bin/env bash
# docker-compose 1.29.2 (the last Compose that installs from PyPI) in its own venv under .cache/,
# for checking `cdb-ops export compose` and for the benchmark against Compose. Idempotent; prints
# the path of the docker-compose binary. PyYAML 5.4.1 (compose needs <6) has no wheel for Python
# 3.11, and its sdist only builds with Cython < 3 and without build isolation. Compose 1.29 also
# predates docker-py 7 (which dropped `ssl_version`) and requests 2.32 (which broke docker-py 6's
# http+docker:// scheme), so both are pinned to the last versions it works with.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.cache/compose-venv"
bin="$venv/bin/docker-compose"
stamp="$venv/.cdb-ops-pins-2"
if [ ! -x "$bin" ] || [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "cython<3" wheel >&2
  "$venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation "PyYAML==5.4.1" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "docker-compose==1.29.2" "docker==6.1.3" \
    "requests<2.32" >&2
  touch "$stamp"
fi
echo "$bin"
