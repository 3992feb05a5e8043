#!/usr/bin/env bash
# The Debian package: builds it from target/release (scripts/package-deb.sh --no-build),
# installs it with dpkg -i, checks the unit with systemd-analyze verify, starts the packaged
# vswitchd (on a private socket and state file) and asks the packaged vswitchctl for `show`,
# checks the sd_notify READY=1 the unit's Type=notify waits for, then removes the package.
# Root. Leaves an already installed vswitch package alone (SKIP).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "SKIP: package test needs root"; exit 0; }
if dpkg-query -W -f='${Status}' vswitch 2>/dev/null | grep -q "install ok installed"; then
    echo "SKIP: a vswitch package is installed already; not touching it"
    exit 0
fi
DEB=$(./scripts/package-deb.sh --no-build)
T=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    dpkg -r vswitch >/dev/null 2>&1 || true
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

dpkg -i "$DEB" >/dev/null || fail "dpkg -i $DEB"
for f in /usr/sbin/vswitchd /usr/bin/vswitchctl /lib/systemd/system/vswitchd.service /etc/default/vswitchd; do
    [ -e "$f" ] || fail "$f not installed"
done
echo "ok   - dpkg -i $(basename "$DEB")"
systemd-analyze verify /lib/systemd/system/vswitchd.service || fail "systemd-analyze verify"
echo "ok   - systemd-analyze verify vswitchd.service"

# The packaged daemon, with a notify socket of our own standing in for systemd's.
python3 - "$T/notify" > "$T/notified" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
print(s.recv(4096).decode(), end="")
PY
NPID=$!
for _ in $(seq 50); do [ -S "$T/notify" ] && break; sleep 0.1; done
NOTIFY_SOCKET="$T/notify" /usr/sbin/vswitchd --socket "$T/vswitchd.sock" --state "$T/state.json" --log warn &
PID=$!
wait "$NPID" || fail "no sd_notify message from vswitchd"
grep -q "READY=1" "$T/notified" || fail "sd_notify said: $(cat "$T/notified")"
echo "ok   - vswitchd notified READY=1"
/usr/bin/vswitchctl --socket "$T/vswitchd.sock" add-br br0 || fail "vswitchctl add-br"
/usr/bin/vswitchctl --socket "$T/vswitchd.sock" show | grep -q "Bridge br0" || fail "vswitchctl show"
echo "ok   - packaged vswitchd answers vswitchctl show"
kill "$PID"; wait "$PID" || true; PID=
dpkg -r vswitch >/dev/null || fail "dpkg -r"
[ ! -e /usr/sbin/vswitchd ] || fail "dpkg -r left /usr/sbin/vswitchd"
echo "ok   - dpkg -r vswitch"
