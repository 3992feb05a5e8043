# Shared by the guest test scripts (source it after setting VS): TAP-style results and a guest
# command shortcut. The caller initialises pass=0 fail=0.

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
