#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (initdb, pg_ctl, postgres) exist, installing Debian's
# `postgresql` when absent. The tests then use the server at HA_TEST_DATABASE_URL
# (default 127.0.0.1:5432) or, when none answers, start a private cluster themselves.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: installing Debian's postgresql"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
else
  echo "ensure-postgres: PostgreSQL server binaries not found; install postgresql (>= 13)" >&2
  exit 2
fi
