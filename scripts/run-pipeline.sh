#!/usr/bin/env bash
# The one command that reproduces everything: installs what is missing, builds the tools in
# release mode, and runs the pipeline (pipeline.yaml by default). Arguments go to `pipeline run`,
# e.g.  scripts/run-pipeline.sh --set train.weights=random
# Offline, point the downloads at a local copy:  LLMFT_MIRROR=../shared/assets scripts/run-pipeline.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release
exec .build/release/pipeline run "$@"
