#!/usr/bin/env bash
# Create .venv and install ShuffleBits with its pinned dependencies (idempotent).
# Re-installs only when pyproject.toml changed since the last successful setup.
# Everything goes into .venv; nothing is installed outside it.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh   -> the CPU build of torch first
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv (first run; everything is installed inside it)" >&2
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.shufflebits-setup
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        torch_pin=$(grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')
        echo "setup: installing $torch_pin from $TORCH_INDEX_URL into .venv" >&2
        .venv/bin/python -m pip install --quiet "$torch_pin" --index-url "$TORCH_INDEX_URL"
    fi
    echo "setup: installing shufflebits and its pinned dependencies (pyproject.toml) into .venv" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]'
    echo "$want" > "$stamp"
fi
