#!/usr/bin/env bash
# Host driver for the VM tests: boots a Debian kernel in QEMU with a layered
# initramfs and runs veer's integration suite inside it, using the binaries and BPF
# objects built for the host (CO-RE: nothing is recompiled for the guest kernel).
#
# Stages: deps -> kernel (apt, cached) -> base initramfs (cached) -> top initramfs
# (this build) -> boot + run (live per-test progress) -> summary and exit code.
#
# Variables (environment or make):
#   KERNEL=6.1                       upstream version the kernel package must have
#   KERNEL_PKG=linux-image-cloud-amd64  Debian package (a meta package is resolved)
#   VM_ACCEL=tcg                     tcg (default) or kvm
#   VM_TIMEOUT=2400                  seconds for the whole boot + suite
#   VM_MEM=2048 VM_SMP=2             guest memory (MiB) and CPUs
#   VM_SUITE=all                     smoke | integration | all
#   VM_TEST_FILTER=                  passed to --gtest_filter
#   VM_STALL_SECS=120                dump guest process state after this long silent (0: off)
#   VM_MODULES="veth bridge dummy sch_ingress cls_bpf act_bpf inet_diag tcp_diag udp_diag"
#                                    loaded (with deps; *_diag: socket recycling by netlink)
#   VM_TOOLS="ip tc bpftool curl sysctl dash bash"  host tools copied in with their libraries
#                                    (dash becomes /bin/sh: busybox sh would run its
#                                    own ip/tc applets ahead of PATH)
#   VM_CACHE=/var/cache/veer-vm      kernel packages and base initramfs
#   VM_WORK=build/vm                 per-run files: initramfs, console and result logs
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

KERNEL=${KERNEL:-6.1}
KERNEL_PKG=${KERNEL_PKG:-linux-image-cloud-amd64}
VM_ACCEL=${VM_ACCEL:-tcg}
VM_TIMEOUT=${VM_TIMEOUT:-2400}
VM_MEM=${VM_MEM:-2048}
VM_SMP=${VM_SMP:-2}
VM_SUITE=${VM_SUITE:-all}
VM_TEST_FILTER=${VM_TEST_FILTER:-}
VM_STALL_SECS=${VM_STALL_SECS:-120}
VM_MODULES=${VM_MODULES:-veth bridge dummy sch_ingress cls_bpf act_bpf inet_diag tcp_diag udp_diag}
VM_TOOLS=${VM_TOOLS:-ip tc bpftool curl sysctl dash bash}
VM_CACHE=${VM_CACHE:-/var/cache/veer-vm}
VM_WORK=${VM_WORK:-$repo/build/vm}

t_start=$(date +%s)
stage() { printf '[vm] == %s (%ds)\n' "$*" $(($(date +%s) - t_start)); }
die() {
	printf '\n[vm] ************************************************************\n' >&2
	printf '[vm] FAIL: %s\n' "$@" >&2
	printf '[vm] ************************************************************\n' >&2
	exit 1
}

qemu_pid=""
reader_pid=""
cleanup() {
	# Our output may be a pipe that is already gone: stop QEMU before saying so.
	trap '' PIPE
	if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill -TERM "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
		echo "[vm] stopped QEMU (pid $qemu_pid)" >&2 || true
	fi
	# The reader (tail --pid) ends on its own once QEMU is gone.
	[[ -n $reader_pid ]] && wait "$reader_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo "[vm] interrupted" >&2; exit 130' INT TERM

# --- deps --------------------------------------------------------------------
stage "deps"
bash "$here/install-deps.sh"
qemu=$(command -v qemu-system-x86_64 || true)
[[ -n $qemu ]] || die "qemu-system-x86_64 is not installed and could not be installed;" \
	"the VM tests cannot run on this machine."
"$qemu" -accel help 2>/dev/null | grep -qx "$VM_ACCEL" ||
	die "QEMU here does not support accelerator '$VM_ACCEL' ($("$qemu" -accel help 2>&1 | tr '\n' ' '))"
if [[ $VM_ACCEL == kvm && ! -w /dev/kvm ]]; then
	die "VM_ACCEL=kvm but /dev/kvm is not usable; use the default VM_ACCEL=tcg"
fi
mkdir -p "$VM_CACHE" "$VM_WORK"

# --- kernel ------------------------------------------------------------------
stage "kernel: resolving $KERNEL_PKG (want $KERNEL)"
apt-cache show "$KERNEL_PKG" >/dev/null 2>&1 || apt-get update -qq
apt-cache show "$KERNEL_PKG" >/dev/null 2>&1 || die "apt knows no package $KERNEL_PKG"
pkg=$KERNEL_PKG
dep=$(apt-cache depends "$pkg" | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}')
[[ -n $dep ]] && pkg=$dep
ver=$(apt-cache policy "$pkg" | awk '$1 == "Candidate:" {print $2}')
[[ -n $ver && $ver != "(none)" ]] || die "no installable version of $pkg"
case $ver in
"$KERNEL" | "$KERNEL".* | "$KERNEL"-* | "$KERNEL"~*) ;;
*) die "KERNEL=$KERNEL but $KERNEL_PKG resolves to $pkg $ver;" \
	"name a package of that kernel with KERNEL_PKG=..." ;;
esac
kdir=$VM_CACHE/kernels/${pkg}_$ver
if [[ ! -d $kdir/root ]]; then
	stage "kernel: downloading $pkg $ver"
	rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
	if ! (cd "$kdir.tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver"); then
		apt-get update -qq
		(cd "$kdir.tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver") ||
			die "apt-get download $pkg=$ver failed"
	fi
	dpkg-deb -x "$kdir.tmp"/*.deb "$kdir.tmp/root"
	kver=$(basename "$(ls -d "$kdir.tmp"/root/lib/modules/*)")
	depmod -b "$kdir.tmp/root" "$kver"
	rm -rf "$kdir" && mv "$kdir.tmp" "$kdir"
fi
kver=$(basename "$(ls -d "$kdir"/root/lib/modules/*)")
vmlinuz=$kdir/root/boot/vmlinuz-$kver
[[ -f $vmlinuz ]] || die "no $vmlinuz in $pkg"
echo "[vm] kernel $kver ($pkg $ver)"

# --- initramfs -------------------------------------------------------------------
vm_exit=$VM_WORK/vm-exit
if [[ ! -x $vm_exit || $here/vm-exit.c -nt $vm_exit ]]; then
	gcc -O2 -static -o "$vm_exit" "$here/vm-exit.c" || die "cannot build vm-exit (static glibc)"
fi

tool_sums=""
for t in $VM_TOOLS; do
	p=$(command -v "$t") || die "tool '$t' not found on the host"
	tool_sums+="$t $(sha256sum < "$(readlink -f "$p")")"$'\n'
done
base_key=$( {
	cat "$here/build-initramfs.sh" "$here/vm-exit.c"
	echo "$pkg $ver $kver $VM_MODULES"
	echo "$tool_sums"
	sha256sum < /bin/busybox
} | sha256sum | cut -c1-16)
base=$VM_CACHE/initramfs/base-$base_key.cpio.gz
if [[ ! -f $base ]]; then
	stage "initramfs: building base layer $base_key"
	bash "$here/build-initramfs.sh" base "$base" "$kdir/root" "$kver" "$vm_exit" \
		"$VM_TOOLS" "$VM_MODULES"
	find "$VM_CACHE/initramfs" -name 'base-*.cpio.gz' ! -name "base-$base_key.cpio.gz" -delete
else
	stage "initramfs: base layer $base_key (cached)"
fi

stage "initramfs: top layer (this build)"
if [[ $VM_SUITE != smoke && ! -x $repo/build/bin/veer-integration-tests ]]; then
	die "build/bin/veer-integration-tests is not built (make all), and VM_SUITE=$VM_SUITE needs it"
fi
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
{
	echo "VEER_REPO=$(sq "$repo")"
	echo "VM_SUITE=$(sq "$VM_SUITE")"
	echo "VM_TEST_FILTER=$(sq "$VM_TEST_FILTER")"
	echo "VM_STALL_SECS=$(sq "$VM_STALL_SECS")"
} > "$VM_WORK/vm-config"
bash "$here/build-initramfs.sh" top "$VM_WORK/top.cpio.gz" "$repo" "$here/init" "$VM_WORK/vm-config"
cat "$base" "$VM_WORK/top.cpio.gz" > "$VM_WORK/initrd.img"
echo "[vm] initrd $(du -h "$VM_WORK/initrd.img" | cut -f1)" \
	"(base $(du -h "$base" | cut -f1), top $(du -h "$VM_WORK/top.cpio.gz" | cut -f1))"

# --- boot and run ----------------------------------------------------------------
console=$VM_WORK/console.log
results=$VM_WORK/results.log
: > "$console"
: > "$results"
case $VM_ACCEL in
tcg) accel=(-accel tcg,thread=multi -cpu max) ;;
kvm) accel=(-accel kvm -cpu host) ;;
*) accel=(-accel "$VM_ACCEL") ;;
esac
stage "boot: $kver, $VM_ACCEL, ${VM_SMP} CPUs, ${VM_MEM} MiB, timeout ${VM_TIMEOUT}s, suite $VM_SUITE${VM_TEST_FILTER:+ filter $VM_TEST_FILTER}"
t_boot=$(date +%s)
# --foreground keeps QEMU in our process group, so whoever kills the group (Ctrl-C,
# a CI job timeout) kills QEMU with it.
timeout --foreground --kill-after=10 "$VM_TIMEOUT" "$qemu" "${accel[@]}" \
	-m "$VM_MEM" -smp "$VM_SMP" \
	-nodefaults -nographic -no-reboot -nic none \
	-kernel "$vmlinuz" -initrd "$VM_WORK/initrd.img" \
	-append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init" \
	-chardev "file,id=console,path=$console" -serial chardev:console \
	-chardev "file,id=results,path=$results" -serial chardev:results \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	</dev/null >"$VM_WORK/qemu.log" 2>&1 &
qemu_pid=$!

# Live progress from the results port; failing tests' output is shown in full.
# A bash loop rather than awk: mawk reads a pipe in blocks, which delays progress.
report() {
	local line name="" buf="" summary=0 re_test='^\[ +([A-Z]+) +\] ([^ ]+\.[^ ]+)( \(.*\))?$'
	while IFS= read -r line; do
		line=${line%$'\r'}
		case $line in
		"@@VM stage boot "*)
			set -- $line
			echo "[vm] booted in $(($(date +%s) - t_boot))s (guest uptime $4)"
			continue ;;
		"@@VM stall"*) echo "[vm] ${line#@@VM }"; continue ;;
		"@@VM "*) echo "[vm] ${line#@@VM } ($(($(date +%s) - t_boot))s)"; continue ;;
		"[==========] Running"*) summary=0 ;;
		"[==========] "*" ran"*) summary=1 name="" buf="" ;;
		esac
		if ((summary)); then
			echo "[vm] $line"
		elif [[ $line =~ $re_test ]]; then
			case ${BASH_REMATCH[1]} in
			RUN) name=${BASH_REMATCH[2]} buf=""; echo "[vm] RUN $name" ;;
			OK | SKIPPED) echo "[vm] ${BASH_REMATCH[1]} ${BASH_REMATCH[2]}${BASH_REMATCH[3]}"; buf="" ;;
			FAILED) printf '%s' "$buf"; echo "[vm] FAILED ${BASH_REMATCH[2]}${BASH_REMATCH[3]}"; buf="" ;;
			*) echo "[vm] $line" ;;
			esac
		elif [[ -n $name ]]; then
			buf+="[vm]   | $line"$'\n'
		else
			echo "[vm]   | $line"
		fi
	done
}
# In the background so that signals reach our traps while it runs.
tail -n +1 -F --pid="$qemu_pid" "$results" 2>/dev/null | report &
reader_pid=$!
wait "$reader_pid" || true
reader_pid=""

set +e
wait "$qemu_pid"
qrc=$?
set -e
qemu_pid=""
elapsed=$(($(date +%s) - t_boot))

# --- verdict ---------------------------------------------------------------------
guest_rc=$(awk '/^@@VM exit / {print $3}' "$results" | tr -d '\r' | tail -n 1)
passed=$(grep -c '^\[       OK \]' "$results" || true)
failed=$(grep -cE '^\[  FAILED  \] [^ ]+\.[^ ]+ \(' "$results" || true)
echo "[vm] logs: $results (suite), $console (kernel console), $VM_WORK/qemu.log"
show_console() { echo "[vm] last kernel console lines:"; tail -n 30 "$console" | sed 's/^/[vm]   console| /'; }
if ((qrc == 124 || qrc == 137)); then
	show_console
	die "timed out after ${VM_TIMEOUT}s ($passed passed, $failed failed so far)"
fi
if [[ -z $guest_rc ]]; then
	show_console
	sed 's/^/[vm]   qemu| /' "$VM_WORK/qemu.log" | tail -n 20
	die "no result from the guest (qemu exit $qrc): it crashed or the suite never finished"
fi
if ((qrc == 1)) && [[ $guest_rc == 0 ]]; then
	echo "[vm] PASS: $passed tests passed on $kver in ${elapsed}s (total $(($(date +%s) - t_start))s)"
	exit 0
fi
[[ $qrc == 3 || $qrc == 1 ]] || show_console
die "suite failed on $kver: $failed failed, $passed passed (guest rc $guest_rc, qemu exit $qrc, ${elapsed}s)"
