#!/usr/bin/env bash
# The operator console in a real browser: tests/browser/console.mjs drives Debian's chromium
# with playwright-core against a live `herald serve` and the local emulator (both the binaries
# of this checkout), and checks every page with axe-core. Screenshots of every page are kept
# in target/console-screenshots (HERALD_CONSOLE_SHOTS to change it).
set -euo pipefail
cd "$(dirname "$0")/.."

herald=${HERALD_BIN:-target/debug/herald}
emulator=${HERALD_EMULATOR_BIN:-target/debug/local-emulator}
if [ -z "${HERALD_BIN:-}" ]; then cargo build --locked --bin herald; fi
if [ -z "${HERALD_EMULATOR_BIN:-}" ]; then cargo build --locked -p local-emulator --bin local-emulator; fi
export HERALD_CONSOLE_SHOTS=${HERALD_CONSOLE_SHOTS:-$PWD/target/console-screenshots}
node tests/browser/console.mjs "$herald" "$emulator"
