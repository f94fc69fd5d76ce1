#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole test suite with `swift test`.
# Release mode (with testability, for @testable imports): the numerical tests run GPT-2 forward
# and backward passes, which are many times slower in a debug build. XCTest only: the suite has
# no Swift Testing tests, so that runner is off and the closing summary line is XCTest's.
# Tests that need the offline copies of the downloads look for ../shared/assets (or
# $LLMFT_ASSETS) and are skipped with a message when neither exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift test -c release -Xswiftc -enable-testing --disable-swift-testing "$@"
