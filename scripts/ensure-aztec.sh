#!/usr/bin/env bash
# Aztec's own npm packages, pinned in tests/aztec/package-lock.json (@aztec/node-keystore and
# @aztec/validator-ha-signer 4.1.2, ~460 MB with dependencies): the reference the interoperability tests
# run against. Installed into a cache outside the repository's node_modules (every `npm ci` would otherwise
# carry them), keyed by the lock file's hash so a new pin gets a fresh directory; safe to run again and again.
# Prints the directory whose node_modules holds them.
set -euo pipefail
cd "$(dirname "$0")/.."
lock=tests/aztec/package-lock.json
hash=$(sha256sum "$lock" | cut -c1-16)
cache=${HA_SEQUENCER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha-sequencer}
dir="$cache/aztec-$hash"
if [ ! -f "$dir/.installed" ]; then
  command -v npm >/dev/null 2>&1 || { echo "ensure-aztec: npm is required (scripts/bootstrap.sh installs it)" >&2; exit 2; }
  echo "ensure-aztec: installing Aztec's packages into $dir" >&2
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  cp tests/aztec/package.json "$lock" "$dir.tmp/"
  # `npm install` with the lock, not `npm ci`: npm 10/11 write locks that omit other platforms' optional
  # packages (@crate-crypto/node-eth-kzg-*), which `npm ci` then refuses as out of sync; versions stay locked
  (cd "$dir.tmp" && npm install --no-audit --no-fund --loglevel=error >&2)
  touch "$dir.tmp/.installed"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
echo "$dir"
