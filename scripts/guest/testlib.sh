# Shared by the guest test scripts: their set-up, TAP-style results, a guest command shortcut
# and the end-of-run log handling. Source it, then call guest_test_init.

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# guest_test_init TAG: exports VSGUEST_IMG (default target/guest-image) and a fresh run dir
# VSGUEST_RUN (/tmp/TAG<pid>.XXXX); sets VS (vsguest.py), the guest name prefix P, the start
# time T0 and the counters pass/fail.
guest_test_init() {
    export VSGUEST_IMG=${VSGUEST_IMG:-$(cd "$GUEST_DIR/../.." && pwd)/target/guest-image}
    VSGUEST_RUN=$(mktemp -d "/tmp/$1$$.XXXX")
    export VSGUEST_RUN
    VS="python3 $GUEST_DIR/vsguest.py"
    P=$1$$
    T0=$(date +%s.%N)
    pass=0 fail=0
}
# finish_logs NAME [WHAT]: keeps the run dir when SELFTEST_KEEP=1 or a check failed, else removes it
finish_logs() {
    if [ "${SELFTEST_KEEP:-0}" = 1 ] || [ "$fail" -gt 0 ]; then
        echo "$1: logs kept in $VSGUEST_RUN${2:+ ($2)}"
    else
        rm -rf "$VSGUEST_RUN"
    fi
}

ok()  { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
# check DESC CMD...: passes when CMD exits 0
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# elapsed T0: seconds since T0 (a `date +%s.%N` value), one decimal
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
# gx [-t S] NAME CMD: runs CMD in a live guest
gx() { $VS exec "$@"; }
# stop_pid PID: SIGTERM, up to 5 s to exit, then SIGKILL
stop_pid() {
    kill "$1" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
