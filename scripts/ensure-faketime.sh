#!/usr/bin/env bash
# Make sure libfaketime exists: the chaos run's `skew` fault and the guard torture's skewed racers start real
# processes with a real clock offset (LD_PRELOAD=libfaketime.so.1, FAKETIME=…), not a patched time.time.
# Installs Debian's `faketime` (which brings `libfaketime`) when absent. Prints the library's path.
set -euo pipefail
find_lib() {
  for dir in /usr/lib/x86_64-linux-gnu/faketime /usr/lib/aarch64-linux-gnu/faketime /usr/lib/faketime; do
    if [ -f "$dir/libfaketime.so.1" ]; then
      echo "$dir/libfaketime.so.1"
      return 0
    fi
  done
  return 1
}
if find_lib; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-faketime: installing Debian's faketime (libfaketime)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends faketime >/dev/null
  find_lib
else
  echo "ensure-faketime: libfaketime not found; install Debian's faketime" >&2
  exit 2
fi
