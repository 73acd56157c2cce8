#!/usr/bin/env bash
# The main demo: a local mesh on loopback (no root, no cluster). Builds the
# proxy and the CLI in release mode, then runs `strait demo` with any flags
# given here (e.g. --duration 10s).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p strait-proxy -p strait-cli
exec target/release/strait demo "$@"
