#!/usr/bin/env bash
# Builds the Debian package target/debian/vswitch_<version>_amd64.deb: vswitchd, vswitchctl,
# the systemd unit, /etc/default/vswitchd and the README. Dependencies come from
# dpkg-shlibdeps (libc, DPDK's runtime libraries, ...). Needs dpkg-dev (build-essential).
#   ./scripts/package-deb.sh [--no-build]   (--no-build: use target/release as it is)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = --no-build ] || cargo build --release -q -p ctl
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ARCH=$(dpkg --print-architecture)
OUT=target/debian
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
R=$STAGE/root
install -D -m 0755 target/release/vswitchd "$R/usr/sbin/vswitchd"
install -D -m 0755 target/release/vswitchctl "$R/usr/bin/vswitchctl"
install -D -m 0644 packaging/vswitchd.service "$R/lib/systemd/system/vswitchd.service"
install -D -m 0644 packaging/vswitchd.default "$R/etc/default/vswitchd"
install -D -m 0644 README.md "$R/usr/share/doc/vswitch/README.md"
printf 'vswitch\nLicense: Apache-2.0\n' > "$STAGE/copyright"
install -D -m 0644 "$STAGE/copyright" "$R/usr/share/doc/vswitch/copyright"
strip --strip-debug "$R/usr/sbin/vswitchd" "$R/usr/bin/vswitchctl"

# Shared-library dependencies, as Debian's own packages compute them.
mkdir -p "$STAGE/debian"
printf 'Source: vswitch\n\nPackage: vswitch\nArchitecture: any\n' > "$STAGE/debian/control"
DEPENDS=$(cd "$STAGE" && dpkg-shlibdeps -O -e root/usr/sbin/vswitchd -e root/usr/bin/vswitchctl 2>/dev/null \
          | sed -n 's/^shlibs:Depends=//p')
[ -n "$DEPENDS" ] || { echo "package-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$R/DEBIAN"
cat > "$R/DEBIAN/control" <<CONTROL
Package: vswitch
Version: $VERSION
Architecture: $ARCH
Maintainer: vswitch developers <vswitch@localhost>
Section: net
Priority: optional
Depends: $DEPENDS
Recommends: iproute2, ethtool, dpdk
Installed-Size: $(du -sk "$R" | cut -f1)
Description: userspace poll-mode virtual switch for KVM hosts
 vswitchd connects VMs through vhost-user ports and reaches the wire through AF_XDP and
 DPDK ports, with VLANs, a VXLAN overlay, QoS shaping and policing, bonds with LACP and
 an OpenFlow-like rule table; vswitchctl configures it.
CONTROL
echo /etc/default/vswitchd > "$R/DEBIAN/conffiles"
cat > "$R/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
POSTINST
cat > "$R/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
POSTRM
chmod 0755 "$R/DEBIAN/postinst" "$R/DEBIAN/postrm"
mkdir -p "$OUT"
DEB="$OUT/vswitch_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group --build "$R" "$DEB" >/dev/null
echo "$DEB"
