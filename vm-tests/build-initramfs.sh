#!/usr/bin/env bash
# Builds one layer of the guest initramfs (a gzip'd newc cpio). Linux unpacks
# concatenated archives in order, later files winning, so the VM boots
#   base.cpio.gz (cached: busybox, tools, shared libraries, kernel modules)
# + top.cpio.gz  (per run: /init, the freshly built binaries, BPF objects, configs).
#
#   build-initramfs.sh base OUT KMOD_ROOT KVER VM_EXIT_BIN "TOOLS" "MODULES"
#   build-initramfs.sh top  OUT REPO INIT CONFIG
set -euo pipefail

die() { echo "[vm] build-initramfs: $*" >&2; exit 1; }

stage=""
cleanup() { [[ -n $stage ]] && rm -rf "$stage"; }
trap cleanup EXIT

new_stage() {
	stage=$(mktemp -d "${TMPDIR:-/tmp}/veer-vm-stage.XXXXXX")
	# Lay the guest out like a merged-/usr Debian so /bin/x, /sbin/x, /usr/sbin/x
	# and the paths ldd prints all resolve.
	mkdir -p "$stage"/usr/{bin,sbin,lib,lib64} "$stage"/{dev,proc,sys,run,tmp,etc,root,mnt,var}
	ln -s usr/bin "$stage/bin"
	ln -s usr/sbin "$stage/sbin"
	ln -s usr/lib "$stage/lib"
	ln -s usr/lib64 "$stage/lib64"
	ln -s ../run "$stage/var/run"
	ln -s ../tmp "$stage/var/tmp"
	chmod 1777 "$stage/tmp"
}

# copy_file SRC [DST]: SRC (dereferenced) into the stage at DST (default: same path).
copy_file() {
	local src=$1 dst=${2:-$1}
	mkdir -p "$stage$(dirname "$dst")"
	cp -L --preserve=mode "$src" "$stage$dst"
}

# copy_libs ELF: every shared library ELF needs, at the path the loader looks for it.
copy_libs() {
	local lib
	file -L "$1" | grep -q 'dynamically linked' || return 0
	while read -r lib; do
		[[ -f $stage$lib ]] || copy_file "$lib"
	done < <(ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
}

# write_cpio OUT: archive the stage, root-owned, sorted for reproducibility.
write_cpio() {
	local out=$1
	mkdir -p "$(dirname "$out")"
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
		cpio -o -H newc --owner=0:0 --quiet) | gzip -1 > "$out.tmp"
	mv "$out.tmp" "$out"
}

build_base() {
	local out=$1 kmod_root=$2 kver=$3 vm_exit=$4 tools=$5 modules=$6
	local t name dir applet m
	new_stage

	# Real tools first; busybox must not shadow them (its ip/tc lack what we need).
	declare -A real=()
	for t in $tools; do
		t=$(command -v "$t" || true)
		[[ -n $t && -x $t ]] || die "tool not found on host: $t"
		name=$(basename "$t")
		dir=usr/bin
		[[ $(dirname "$(readlink -f "$t")") == */sbin || $(dirname "$t") == */sbin ]] && dir=usr/sbin
		copy_file "$t" "/$dir/$name"
		copy_libs "$t"
		real[$name]=1
		[[ $dir == usr/sbin ]] && ln -sf "../sbin/$name" "$stage/usr/bin/$name"
	done

	copy_file /bin/busybox /usr/bin/busybox
	while read -r applet; do
		name=$(basename "$applet")
		[[ -n ${real[$name]:-} || $name == busybox ]] && continue
		case $applet in
		bin/* | usr/bin/*) dir=usr/bin ;;
		*) dir=usr/sbin ;;
		esac
		[[ -e $stage/$dir/$name ]] || ln -s /usr/bin/busybox "$stage/$dir/$name"
	done < <(/bin/busybox --list-full)

	# /bin/sh is dash when it was copied in: busybox's sh runs its own applets ahead
	# of PATH (standalone shell), so system("ip ...") from a test would get busybox ip.
	if [[ -n ${real[dash]:-} ]]; then
		ln -sf dash "$stage/usr/bin/sh"
	fi
	copy_file "$vm_exit" /usr/sbin/vm-exit

	# Kernel modules and their dependencies, in load order, decompressed so busybox
	# insmod can load them whatever the package compressed them with.
	: > "$stage/etc/vm-modules"
	local seen=" "
	for m in $modules; do
		while read -r path; do
			[[ $seen == *" $path "* ]] && continue
			seen+="$path "
			local rel=${path#"$kmod_root"} dst
			dst=${rel%.xz}; dst=${dst%.zst}; dst=${dst%.gz}
			mkdir -p "$stage$(dirname "$dst")"
			case $path in
			*.xz) xz -dc "$path" > "$stage$dst" ;;
			*.zst) zstd -qdc "$path" > "$stage$dst" ;;
			*.gz) gzip -dc "$path" > "$stage$dst" ;;
			*) cp "$path" "$stage$dst" ;;
			esac
			echo "$dst" >> "$stage/etc/vm-modules"
		done < <(modprobe -C /dev/null -d "$kmod_root" -S "$kver" --show-depends "$m" |
			awk '$1 == "insmod" {print $2}')
	done
	[[ -s $stage/etc/vm-modules ]] || die "no kernel modules resolved from $kmod_root"

	echo "veer-vm" > "$stage/etc/hostname"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
		> "$stage/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' > "$stage/etc/group"
	printf '127.0.0.1 localhost veer-vm\n::1 localhost ip6-localhost\n' > "$stage/etc/hosts"
	printf 'passwd: files\ngroup: files\nhosts: files\n' > "$stage/etc/nsswitch.conf"
	: > "$stage/etc/resolv.conf"
	write_cpio "$out"
}

build_top() {
	local out=$1 repo=$2 init=$3 config=$4 f
	new_stage
	copy_file "$init" /init
	chmod 755 "$stage/init"
	copy_file "$config" /etc/vm-config

	# The tree sits at the same absolute path as on the host, so both the relative
	# paths tests use from the repo root and absolute ones resolve.
	# Everything built except what only runs on the host (unit tests, benchmarks).
	for f in "$repo"/build/bin/*; do
		[[ -f $f && -x $f ]] || continue
		case $(basename "$f") in *unit-tests | *bench*) continue ;; esac
		copy_file "$f"
		copy_libs "$f"
	done
	for f in "$repo"/build/bpf/*.bpf.o; do
		[[ -f $f ]] && copy_file "$f"
	done
	if [[ -d $repo/configs ]]; then
		mkdir -p "$stage$repo"
		cp -a "$repo/configs" "$stage$repo/"
	fi
	# Test data (yaml/json fixtures, helper scripts) next to the tests.
	if [[ -d $repo/tests ]]; then
		while read -r f; do copy_file "$f"; done < <(find "$repo/tests" -type f \
			\( -name '*.yaml' -o -name '*.yml' -o -name '*.json' -o -name '*.sh' -o -name '*.conf' \))
	fi
	write_cpio "$out"
}

case ${1:-} in
base) shift; (($# == 6)) || die "usage: base OUT KMOD_ROOT KVER VM_EXIT TOOLS MODULES"; build_base "$@" ;;
top) shift; (($# == 4)) || die "usage: top OUT REPO INIT CONFIG"; build_top "$@" ;;
*) die "usage: $0 base|top ..." ;;
esac
