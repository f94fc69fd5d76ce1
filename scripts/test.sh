#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole test suite with `swift test`
# (XCTest; the suite has no Swift Testing tests, so that runner is switched off and the last
# summary line is XCTest's). Tests that need the offline copies of the downloads look for
# ../shared/assets (or $LLMFT_ASSETS) and are skipped with a message when neither exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift test --disable-swift-testing "$@"
