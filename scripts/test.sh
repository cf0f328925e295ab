#!/usr/bin/env bash
# Run the test suite offline, with Prefect in a throw-away home (embedded server, no analytics).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFECT_HOME=$(mktemp -d -t uniflow-prefect-XXXXXX)
trap 'rm -rf "$PREFECT_HOME"' EXIT
export PREFECT_HOME
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120
export HF_HUB_OFFLINE=0 HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1
unset PREFECT_API_URL
exec .venv/bin/python -m pytest "$@"
