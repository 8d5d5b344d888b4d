#!/usr/bin/env bash
# docker-compose 1.29.2 (the last Compose that installs from PyPI) in its own venv under .cache/,
# for checking `cdb-ops export compose` and for the benchmark against Compose. Idempotent; prints
# the path of the docker-compose binary. PyYAML 5.4.1 (compose needs <6) has no wheel for Python
# 3.11, and its sdist only builds with Cython < 3 and without build isolation.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.cache/compose-venv"
bin="$venv/bin/docker-compose"
if [ ! -x "$bin" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "cython<3" wheel >&2
  "$venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation "PyYAML==5.4.1" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "docker-compose==1.29.2" >&2
fi
echo "$bin"
