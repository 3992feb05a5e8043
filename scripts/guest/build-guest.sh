#!/usr/bin/env bash
# build-guest.sh OUTDIR — builds OUTDIR/vmlinuz and OUTDIR/initramfs.cpio.gz for the real-guest
# tests, from Debian packages only:
#   - the kernel: `apt-get download` of the package linux-image-cloud-amd64 depends on (or
#     $VSGUEST_KERNEL_PKG), unpacked with dpkg-deb -x into OUTDIR/cache (never installed);
#   - busybox-static, iproute2's ip, ethtool and iperf3 with the shared libraries ldd lists and
#     the ELF interpreter, taken from this host;
#   - the modules virtio_pci, virtio_net, 8021q, bonding and their dependencies (resolved with depmod +
#     modprobe --show-depends against the unpacked kernel; built-in ones are skipped,
#     compressed ones are decompressed);
#   - /init (guest-init.sh beside this script).
# Idempotent: nothing is rebuilt when OUTDIR/stamp matches the inputs (kernel package version,
# host tool versions, this script and guest-init.sh). VSGUEST_FORCE=1 rebuilds.
# Needs root only to apt-get install missing tools (VSGUEST_NO_APT=1 to never do that).
set -euo pipefail

OUT=${1:?usage: build-guest.sh OUTDIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$OUT/cache"
OUT=$(cd "$OUT" && pwd)

log() { echo "build-guest: $*" >&2; }

# --- host tools -------------------------------------------------------------------------
need_pkgs=()
for pair in busybox:busybox-static cpio:cpio depmod:kmod modprobe:kmod /usr/sbin/ip:iproute2 \
            ethtool:ethtool iperf3:iperf3 xz:xz-utils zstd:zstd dpkg-deb:dpkg gzip:gzip; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || PATH=$PATH:/sbin:/usr/sbin command -v "$cmd" >/dev/null 2>&1 \
        || need_pkgs+=("$pkg")
done
# busybox-static specifically: the guest needs a static busybox (ldd fails on static ELFs).
if [ -x /bin/busybox ] && ldd /bin/busybox >/dev/null 2>&1; then need_pkgs+=(busybox-static); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "${VSGUEST_NO_APT:-0}" = 1 ] || [ "$(id -u)" != 0 ]; then
        log "missing packages: ${need_pkgs[*]}"; exit 1
    fi
    log "installing ${need_pkgs[*]}"
    apt-get install -y "${need_pkgs[@]}" >&2 || { apt-get update >&2 && apt-get install -y "${need_pkgs[@]}" >&2; }
fi
export PATH=$PATH:/sbin:/usr/sbin
BUSYBOX=/bin/busybox
! ldd "$BUSYBOX" >/dev/null 2>&1 || { log "$BUSYBOX is not static (install busybox-static)"; exit 1; }

# --- which kernel -------------------------------------------------------------------------
kpkg=${VSGUEST_KERNEL_PKG:-}
if [ -z "$kpkg" ]; then
    kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
           | awk '/Depends: linux-image-[0-9]/{print $2; exit}') || true
fi
if [ -z "$kpkg" ]; then
    # apt lists missing (no apt-get update yet): reuse a cached download, else update once.
    cached=$(ls "$OUT"/cache/linux-image-[0-9]*.deb 2>/dev/null | sort -V | tail -1 || true)
    if [ -n "$cached" ]; then
        kpkg=$(dpkg-deb -f "$cached" Package)
    else
        apt-get update >&2
        kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    fi
fi
[ -n "$kpkg" ] || { log "cannot find the cloud kernel package"; exit 1; }
kver=$(apt-cache policy "$kpkg" 2>/dev/null | awk '/Candidate:/{print $2}')
deb=$(ls "$OUT/cache/${kpkg}_"*.deb 2>/dev/null | sort -V | tail -1 || true)
if [ -n "$deb" ] && { [ -z "$kver" ] || [ "$kver" = "(none)" ] || [ "$(dpkg-deb -f "$deb" Version)" = "$kver" ]; }; then
    :
else
    log "downloading $kpkg $kver"
    rm -f "$OUT/cache/${kpkg}_"*.deb
    (cd "$OUT/cache" && apt-get -o APT::Sandbox::User=root download "$kpkg" >&2)
    deb=$(ls "$OUT/cache/${kpkg}_"*.deb | sort -V | tail -1)
fi
kver=$(dpkg-deb -f "$deb" Version)

# --- up to date? --------------------------------------------------------------------------
tool_versions=$(dpkg-query -W -f='${Package}=${Version}\n' busybox-static iproute2 ethtool iperf3 2>/dev/null || true)
stamp_want=$(printf '%s\n' "kernel=$kpkg=$kver" "$tool_versions" \
    "modules=${VSGUEST_MODULES:-default}" \
    "build=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)" \
    "init=$(sha256sum "$HERE/guest-init.sh" | cut -c1-16)")
if [ "${VSGUEST_FORCE:-0}" != 1 ] && [ -f "$OUT/stamp" ] && [ -s "$OUT/vmlinuz" ] \
   && [ -s "$OUT/initramfs.cpio.gz" ] && [ "$(cat "$OUT/stamp")" = "$stamp_want" ]; then
    log "up to date ($kpkg $kver)"
    exit 0
fi

t0=$(date +%s.%N)
# --- unpack the kernel --------------------------------------------------------------------
kx=$OUT/cache/kernel
rm -rf "$kx"; mkdir -p "$kx"
dpkg-deb -x "$deb" "$kx"
kname=$(ls "$kx/lib/modules" 2>/dev/null || ls "$kx/usr/lib/modules")
if [ -d "$kx/lib/modules/$kname" ]; then mbase=$kx; else mbase=$kx/usr; fi
mdir=$mbase/lib/modules/$kname
[ -f "$mdir/modules.dep" ] || depmod -b "$mbase" "$kname"

# --- staging tree -------------------------------------------------------------------------
st=$OUT/cache/root
rm -rf "$st"
mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,lib64,lib/x86_64-linux-gnu,etc,proc,sys,dev,tmp,run,root,lib/modules}
cp "$BUSYBOX" "$st/bin/busybox"
# Busybox applet links, except names for which the real tools are shipped.
for a in $("$BUSYBOX" --list); do
    case $a in busybox|ip|ethtool|iperf3) continue ;; esac
    ln -sf busybox "$st/bin/$a"
done

copy_elf() { # copy_elf SRC DEST: a binary with its ldd-listed libraries and interpreter
    local src=$1 dst=$2 lib
    cp -L "$src" "$st$dst"
    ldd "$src" | awk '/=> \//{print $3} /^\t\//{print $1}' | while read -r lib; do
        mkdir -p "$st$(dirname "$lib")"
        [ -e "$st$lib" ] || cp -L "$lib" "$st$lib"
    done
}
copy_elf /usr/sbin/ip /usr/sbin/ip
copy_elf "$(command -v ethtool)" /usr/sbin/ethtool
copy_elf "$(command -v iperf3)" /usr/bin/iperf3
interp=$(readelf -l /usr/bin/iperf3 2>/dev/null | sed -n 's/.*interpreter: \(.*\)]/\1/p' || true)
interp=${interp:-/lib64/ld-linux-x86-64.so.2}
mkdir -p "$st$(dirname "$interp")"; [ -e "$st$interp" ] || cp -L "$interp" "$st$interp"

# --- modules ------------------------------------------------------------------------------
: > "$st/lib/modules/load.list"
builtin_list=
for m in ${VSGUEST_MODULES:-virtio_pci virtio_net 8021q bonding}; do
    deps=$(modprobe -d "$mbase" -S "$kname" --show-depends "$m") || { log "module $m not in $kpkg"; exit 1; }
    while read -r kind path _; do
        case $kind in
        insmod)
            rel=${path#"$mdir"/}
            base=$(basename "$rel"); base=${base%.xz}; base=${base%.zst}; base=${base%.gz}
            grep -qx "$base" "$st/lib/modules/load.list" && continue
            case $path in
            *.xz)  xz -dc "$path" > "$st/lib/modules/$base" ;;
            *.zst) zstd -qdc "$path" > "$st/lib/modules/$base" ;;
            *.gz)  gzip -dc "$path" > "$st/lib/modules/$base" ;;
            *)     cp "$path" "$st/lib/modules/$base" ;;
            esac
            echo "$base" >> "$st/lib/modules/load.list" ;;
        builtin) builtin_list="$builtin_list $path" ;;
        esac
    done <<< "$deps"
done
log "modules: $(tr '\n' ' ' < "$st/lib/modules/load.list")${builtin_list:+; built in:$builtin_list}"

# --- /init and a little /etc --------------------------------------------------------------
install -m 0755 "$HERE/guest-init.sh" "$st/init"
echo "root:x:0:0:root:/root:/bin/sh" > "$st/etc/passwd"
echo "root:x:0:" > "$st/etc/group"
printf '127.0.0.1 localhost\n' > "$st/etc/hosts"
echo "$kpkg $kver" > "$st/etc/vsguest-kernel"

# --- pack ---------------------------------------------------------------------------------
(cd "$st" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) \
    | gzip -6 > "$OUT/initramfs.cpio.gz.tmp"
mv "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
cp "$kx/boot/vmlinuz-$kname" "$OUT/vmlinuz"
echo "$kname" > "$OUT/kernel-release"
rm -rf "$st" "$kx"
echo "$stamp_want" > "$OUT/stamp"
log "built $OUT/vmlinuz ($kpkg $kver) and initramfs.cpio.gz ($(du -k "$OUT/initramfs.cpio.gz" | cut -f1) KiB) in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
