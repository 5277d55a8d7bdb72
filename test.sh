#!/usr/bin/env bash
# Tests: set up (first run only), then run the test suite.
#   bash test.sh            -> the CI suite (slow tests excluded)
#   bash test.sh -m slow    -> the long exhaustive checks
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
bash scripts/setup-browser.sh || echo "note: headless chromium unavailable; browser tests will skip"
if [ "$#" -eq 0 ]; then
    set -- -m "not slow"
fi
exec .venv/bin/python -m pytest -q "$@"
