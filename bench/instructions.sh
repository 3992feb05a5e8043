#!/usr/bin/env bash
# Instructions per packet of each pipeline-bench case, and of vhost-bench's ring dequeue +
# enqueue, counted by callgrind over the measured code only (set-up, warm-up and vhost-bench's
# mock driver excluded). Deterministic, unlike cycle counts on a shared VM.
#
# Usage: bench/instructions.sh [--packets N] [--only TEXT] [--no-latency]
#   (TEXT "vhost": the ring code only; --no-latency: the pipeline without latency sampling)
set -euo pipefail
cd "$(dirname "$0")/.."
packets=100000
only=""
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --no-latency) extra+=(--no-latency); shift ;;
    --packets) packets=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "usage: $0 [--packets N] [--only TEXT] [--no-latency]" >&2; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "valgrind is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
cargo build --release -q -p bench --bin pipeline-bench --bin vhost-bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cases=("rule    1 flow" "rule    1k flows" "rule    100k flows" "rule    1M flows" "rule+qos 1 flow" "rule+qos 1k flows" "NORMAL  1 flow"
    "NORMAL  1k flows" "NORMAL  100k flows" "NORMAL  1M flows" "encap   1 flow" "encap   1k flows" "decap   1 flow" "decap   1k flows")
printf '%-20s %12s\n' case instr/pkt
for c in "${cases[@]}"; do
    [[ -z "$only" || "$c" == *"$only"* ]] || continue
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_loop*' \
        --callgrind-out-file="$out/cg" ./target/release/pipeline-bench --packets "$packets" --only "$c" "${extra[@]}" \
        >/dev/null 2>"$out/log"
    total=$(awk '/^(summary|totals):/ {print $2; exit}' "$out/cg")
    [ -n "$total" ] || { cat "$out/log" >&2; exit 1; }
    # --packets is rounded up to whole batches of 32.
    n=$(( (packets + 31) / 32 * 32 ))
    printf '%-20s %12.1f\n' "$c" "$(awk -v t="$total" -v n="$n" 'BEGIN { print t / n }')"
done
if [[ -z "$only" || "vhost" == *"$only"* ]]; then
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*device_dequeue*' \
        --toggle-collect='*device_enqueue*' --callgrind-out-file="$out/cg" \
        ./target/release/vhost-bench --packets "$packets" >/dev/null 2>"$out/log"
    total=$(awk '/^(summary|totals):/ {print $2; exit}' "$out/cg")
    [ -n "$total" ] || { cat "$out/log" >&2; exit 1; }
    n=$(( (packets + 31) / 32 * 32 ))
    printf '%-20s %12.1f\n' "vhost deq+enq" "$(awk -v t="$total" -v n="$n" 'BEGIN { print t / n }')"
fi
