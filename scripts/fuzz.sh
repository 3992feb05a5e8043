#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) on stable Rust, without a sanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install -q cargo-fuzz@0.13.2 --locked
fi
for dir in */fuzz; do
    [ -d "$dir/fuzz_targets" ] || continue
    for t in "$dir"/fuzz_targets/*.rs; do
        name=$(basename "$t" .rs)
        echo "fuzz: $dir $name (${SECS}s)"
        (cd "$dir/.." && cargo fuzz run -s none "$name" -- -max_total_time="$SECS" -rss_limit_mb=2048 2>&1 | tail -n 3)
    done
done
