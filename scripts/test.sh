#!/usr/bin/env bash
# Runs every test of the workspace: formatting, lints, unit and end-to-end tests.
# It installs what the tests need (a Python virtual environment with the official
# Azure SDKs and the Standard Webhooks verifier) so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-test-env.sh
export HERALD_TEST_PYTHON="$PWD/.venv/bin/python"
# The example plug-ins, built from source with ComponentizeJS and componentize-py (the tests
# run them); cached by content, so an unchanged tree rebuilds nothing.
scripts/build-plugins.sh

# Static security scan of infra/ and the Dockerfile (checkov, from PyPI).
scripts/check-infra.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --exclude local-emulator
# The HTTP contract against a live `herald serve` (the binary the tests just built).
scripts/check-api.sh
# The operator console in a real browser (Playwright driving Debian's chromium) against a live
# `herald serve` and the local emulator; screenshots land in target/console-screenshots.
scripts/check-console.sh
# The emulator's tests drive real SDK clients whose timing is sensitive to CPU contention on
# small machines: one test at a time.
cargo test --locked -p local-emulator -- --test-threads=1
