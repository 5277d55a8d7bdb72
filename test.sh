#!/usr/bin/env bash
# Tests: set up (first run only), lint, then run the test suite.
#   bash test.sh            -> ruff (lint + format check) and the CI suite (slow tests excluded)
#   bash test.sh -m slow    -> the long exhaustive checks
#   SHUFFLEBITS_SKIP_BROWSER=1 bash test.sh   -> no chromium install (the browser test skips)
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
bash scripts/setup-browser.sh || echo "note: no headless chromium (or SHUFFLEBITS_SKIP_BROWSER=1); browser tests will skip"
.venv/bin/ruff check src tests scripts
.venv/bin/ruff format --check src tests scripts
if [ "$#" -eq 0 ]; then
    set -- -m "not slow"
fi
exec .venv/bin/python -m pytest -q "$@"
