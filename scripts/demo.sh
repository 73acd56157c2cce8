#!/usr/bin/env bash
# The main demo: a local mesh on loopback (no root, no cluster): the control
# plane, a proxy following it, two app versions. Builds them in release mode, then runs `strait demo` with any flags
# given here (e.g. --duration 10s).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p strait-proxy -p strait-cli -p strait-control-plane --bin strait-proxy --bin strait --bin strait-controller
exec target/release/strait demo "$@"
