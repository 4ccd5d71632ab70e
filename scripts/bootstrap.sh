#!/usr/bin/env bash
# Idempotent bootstrap: a virtualenv with the package (and dev tools), and the npm L1 toolchain.
# Safe to run again and again; it only does work when pyproject.toml or package-lock.json changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: ha-sequencer needs Python >= 3.11 (found: $("$python" --version 2>&1))" >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$python" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "bootstrap: installing Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  # trio-typing (a dependency of py-libp2p) installs stub-only packages written for trio 0.2x. Type checkers
  # prefer stub packages to a library's own inline types, so they would hide the API of the trio we run.
  # They hold no runtime code (py-libp2p imports `trio_typing`, which stays).
  rm -rf .venv/lib/python3*/site-packages/{trio,outcome,async_generator}-stubs
  touch .venv/.installed
fi

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing Node.js and npm from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "bootstrap: npm is required (Node.js >= 18) for the L1 toolchain (anvil, cast, solc)" >&2
    exit 2
  fi
fi
if [ ! -f node_modules/.installed ] || [ package-lock.json -nt node_modules/.installed ]; then
  echo "bootstrap: installing the L1 toolchain (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules/.installed
fi
