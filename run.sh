#!/usr/bin/env bash
# Main job: set up (first run only), then run the whole study and write the report.
#   bash run.sh                       -> shufflebits study --profile default --out study-out
#   bash run.sh study --profile quick --out quick-out   (any shufflebits command)
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
    set -- study --profile default --out study-out
fi
exec .venv/bin/shufflebits "$@"
