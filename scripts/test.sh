#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole test suite with `swift test`.
# Tests that need the offline copies of the downloads look for ../shared/assets (or
# $LLMFT_ASSETS) and are skipped with a message when neither exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift test "$@"
