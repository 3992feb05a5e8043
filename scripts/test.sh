#!/usr/bin/env bash
# Runs every test of vswitch: format and lint checks, unit and property tests, golden pipeline
# tests over ring ports, root integration tests (AF_XDP over veths in network namespaces, the
# daemon driven by vswitchctl), short fuzz runs and the pipeline benchmark in smoke mode.
# Run as root on Debian 12: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || echo "test: not root: the integration tests will print SKIP" >&2
./scripts/setup.sh

echo "== fmt and clippy"
cargo fmt --all --check
cargo clippy -q --workspace --all-targets -- -D warnings

echo "== tests"
cargo test --workspace

echo "== pipeline benchmark (smoke: checks it runs; speed is judged from full runs)"
cargo run -q --release -p bench --bin pipeline-bench -- --quick

echo "== fuzz smoke"
./scripts/fuzz.sh 15
