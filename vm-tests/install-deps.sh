#!/usr/bin/env bash
# Installs what the VM test harness needs on Debian 12: QEMU (TCG), busybox for the
# guest userland, cpio/gzip/xz to build the initramfs, and the guest tools (bpftool,
# iproute2, curl) whose binaries are copied into it.
# Idempotent: does nothing when all packages are already present.
set -euo pipefail

packages=(
	qemu-system-x86 busybox-static cpio gzip xz-utils zstd kmod
	bpftool iproute2 curl
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "[vm] install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
