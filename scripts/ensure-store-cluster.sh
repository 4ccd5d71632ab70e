#!/usr/bin/env bash
# Make sure a replicated duty store can be run locally (the store-cluster tests, `devnet up --store-cluster`):
# etcd from Debian's `etcd-server` (etcdctl from `etcd-client`), Patroni from PyPI into the project's venv (the
# `store-cluster` extra of pyproject.toml), PostgreSQL from Debian (scripts/ensure-postgres.sh). Idempotent:
# installs only what is missing; apt starts no service (the harness runs its own etcd and Patroni members).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv/bin
if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-store-cluster: installing Debian's etcd-server and etcd-client"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server etcd-client >/dev/null
  else
    echo "ensure-store-cluster: etcd/etcdctl not found; install Debian's etcd-server and etcd-client (>= 3.4)" >&2
    exit 2
  fi
fi
# Patroni runs as the `postgres` user (PostgreSQL refuses root), so it needs a Python that user can run: as root
# (whose own interpreter may live under /root), a venv of the system python3 in PATRONI_VENV; otherwise .venv.
PATRONI_VENV=${HA_SEQUENCER_PATRONI_VENV:-/opt/ha-sequencer/patroni-venv}
if [ "$(id -u)" = 0 ]; then
  target=$PATRONI_VENV
  if [ ! -x "$target/bin/python" ]; then
    echo "ensure-store-cluster: creating $target (system python3, runnable by the postgres user)"
    mkdir -p "$(dirname "$target")"
    if ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    /usr/bin/python3 -m venv "$target"
  fi
else
  target=.venv
fi
if [ ! -x "$target/bin/patroni" ]; then
  echo "ensure-store-cluster: installing Patroni (pyproject extra store-cluster) into $target"
  # the extra's requirement, read from pyproject.toml so the pin lives in one place
  req=$("$VENV/python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["store-cluster"][0])')
  "$target/bin/python" -m pip install -q "$req"
fi
