#!/usr/bin/env bash
# PID 1 of PrepareMounts.MountsInPid1Namespace (tests/deploy/run.sh), in a new PID
# namespace and a private mount namespace: runs `AGENT --prepare-mounts` twice from a
# second private mount namespace and a cgroup namespace rooted at a child cgroup made
# for the run, and checks what this PID 1 sees. Usage: prepare-mounts-pid1.sh DIR AGENT
set -euo pipefail
d=$1 agent=$2

mkdir "$d/ref"
mount -t cgroup2 none "$d/ref" # the cgroup tree as this PID 1 sees it
own=$(sed -n 's|^0::||p' /proc/self/cgroup)
child="$d/ref${own%/}/veer-prepare-mounts-$$"
mkdir "$child"
trap 'rmdir "$child"' EXIT

prepare() {
	# Into the child cgroup first, so that the new cgroup namespace's root is the child.
	sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' _ "$child" \
		unshare --cgroup --mount --propagation private \
		"$agent" --prepare-mounts "$d/cgroup2" --bpffs "$d/bpf"
}

prepare
if [[ $(stat -f -c %T "$d/bpf") != bpf_fs ]]; then
	echo "PID 1 sees no bpffs at $d/bpf"
	exit 1
fi
if [[ $(stat -f -c %T "$d/cgroup2") != cgroup2fs ]]; then
	echo "PID 1 sees no cgroup2 at $d/cgroup2"
	exit 1
fi
if [[ $(stat -c %i "$d/cgroup2") != $(stat -c %i "$d/ref") ]]; then
	echo "cgroup2 at $d/cgroup2 is rooted at the agent's cgroup namespace, not PID 1's"
	exit 1
fi
# Where they are already mounted, nothing is mounted again.
prepare
n=$(grep -c " $d/" /proc/self/mounts)
if ((n != 3)); then
	echo "want 3 mounts under $d after a second run (ref, bpf, cgroup2), found $n"
	exit 1
fi
