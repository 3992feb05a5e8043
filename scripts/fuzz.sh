#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) on stable Rust, without a sanitizer.
# A crash fails the run; its input is kept under <crate>/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install -q cargo-fuzz@0.13.2 --locked
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for dir in */fuzz; do
    [ -d "$dir/fuzz_targets" ] || continue
    for t in "$dir"/fuzz_targets/*.rs; do
        name=$(basename "$t" .rs)
        echo "fuzz: $dir $name (${SECS}s)"
        # Seed inputs kept in the repo start the corpus (the corpus itself is not kept).
        if [ -d "$dir/seeds/$name" ]; then
            mkdir -p "$dir/corpus/$name"
            cp -n "$dir/seeds/$name"/* "$dir/corpus/$name"/ 2>/dev/null || true
        fi
        if ! (cd "$dir/.." && cargo fuzz run -s none "$name" -- -max_total_time="$SECS" -rss_limit_mb=2048) >"$log" 2>&1; then
            grep -v "^\s*Compiling" "$log" | grep -B5 -A30 -m1 -E "panicked|ERROR|deadly signal" || tail -n 60 "$log"
            echo "fuzz: $dir $name FAILED" >&2
            exit 1
        fi
        tail -n 1 "$log"
    done
done
