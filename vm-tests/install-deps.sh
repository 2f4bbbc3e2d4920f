#!/usr/bin/env bash
# Installs what the VM test harness needs on Debian 12: QEMU (TCG), busybox for the
# guest userland, cpio/gzip/xz to build the initramfs, and the guest tools (bpftool,
# iproute2, curl) whose binaries are copied into it. Idempotent.
set -euo pipefail

exec bash "$(dirname "$0")/../scripts/install-deps.sh" \
	qemu-system-x86 busybox-static cpio gzip xz-utils zstd kmod \
	bpftool iproute2 curl
