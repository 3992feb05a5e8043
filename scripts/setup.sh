#!/usr/bin/env bash
# Installs what building and testing vswitch needs on Debian 12 (run as root). Idempotent.
set -euo pipefail

PKGS=(build-essential pkg-config clang llvm libbpf-dev linux-libc-dev
      iproute2 ethtool iperf3 iputils-ping procps kmod python3 tcpdump valgrind
      # DPDK ports (bindgen needs libclang); vhost-user front-end and traffic generator
      libdpdk-dev libclang-dev dpdk-dev
      # real guests: QEMU, and what the guest image is built from
      qemu-system-x86 busybox-static cpio xz-utils zstd
      # interop partners: Open vSwitch's userspace bond (LACP), scapy (malformed LACP PDUs)
      openvswitch-switch-dpdk python3-scapy
      # metrics: a real Prometheus server scrapes vswitchd in a test; promtool checks the text
      prometheus curl)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        echo "setup: add \$HOME/.cargo/bin to PATH" >&2
    else
        echo "setup: no Rust toolchain: install rustup (https://rustup.rs) and Rust 1.95 or newer" >&2
    fi
    exit 1
fi

# The XDP program is compiled by clang for the bpf target; AF_XDP needs these kernel features.
for f in /proc/sys/net/core/bpf_jit_enable; do
    [ -e "$f" ] || echo "setup: warning: $f missing (no BPF in this kernel?)" >&2
done
