#!/usr/bin/env bash
# Install Debian's chromium for the report's browser test, when we may (root + apt).
# Set SHUFFLEBITS_SKIP_BROWSER=1 to skip it (the browser test then skips).
set -euo pipefail
[ "${SHUFFLEBITS_SKIP_BROWSER:-0}" = 1 ] && exit 1
command -v chromium >/dev/null 2>&1 && exit 0
command -v apt-get >/dev/null 2>&1 || exit 1
[ "$(id -u)" = 0 ] || exit 1
echo "setup: installing Debian's chromium (outside .venv, ~70 s, for the report's browser test;" \
     "SHUFFLEBITS_SKIP_BROWSER=1 skips it)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium >/dev/null
