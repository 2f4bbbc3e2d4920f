#!/usr/bin/env bash
# Lays out the root filesystem of veer's image in DIR: the given binaries in
# /usr/local/bin, without debug info, and every shared library they load (ldd), at
# the path the dynamic loader finds it. Nothing else: no shell, no package manager,
# and no second list of runtime packages to keep in step with the link line.
# The Containerfile's runtime stage copies DIR; tests/deploy/run.sh builds an image
# from it with buildah, since no base image can be pulled on the test machines.
set -euo pipefail

if (($# < 2)); then
	echo "usage: $0 DIR BINARY..." >&2
	exit 2
fi
dir=$1
shift

mkdir -p "$dir/usr/local/bin"
declare -A libs=()
for bin in "$@"; do
	strip --strip-debug -o "$dir/usr/local/bin/$(basename "$bin")" "$bin"
	# "libx.so.1 => /lib/.../libx.so.1 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)";
	# a library ldd cannot find is an error here, not a broken image later.
	out=$(ldd "$bin")
	if grep -q 'not found' <<<"$out"; then
		echo "image-rootfs: $bin: $(grep 'not found' <<<"$out")" >&2
		exit 1
	fi
	while read -r lib; do
		libs[$lib]=1
	done < <(grep -o '/[^ ]*' <<<"$out")
done
for lib in "${!libs[@]}"; do
	mkdir -p "$dir$(dirname "$lib")"
	cp -L "$lib" "$dir$lib"
done
# Where the agent's default paths and the runtime's mounts land; /tmp for libraries
# that want one.
mkdir -p "$dir/run/veer" "$dir/sys/fs/bpf" "$dir/tmp"
chmod 1777 "$dir/tmp"
