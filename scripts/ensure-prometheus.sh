#!/usr/bin/env bash
# Make sure Prometheus and promtool exist (the alert rules' unit tests and `devnet up --prometheus` run the
# real binaries), installing Debian's `prometheus` when absent. apt starts no service here; the devnet starts
# its own Prometheus with its own configuration and data directory.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-prometheus: installing Debian's prometheus (prometheus, promtool)"
  apt-get update -qq
  # the package's post-install may try to start a service; policy-rc.d-less containers just skip it
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
else
  echo "ensure-prometheus: prometheus/promtool not found; install Debian's prometheus (>= 2.37)" >&2
  exit 2
fi
