#!/usr/bin/env bash
# The deployment's tests: the manifests against the Kubernetes OpenAPI schemas, the
# rendered deploy/veer.yaml against its source, the init container's mount mode, and
# the image built and run with buildah. Prints GoogleTest's summary lines, which
# scripts/run-tests.sh counts. Usage: tests/deploy/run.sh [BIN_DIR] (default build/bin).
#
# `kubectl apply --dry-run=client` is not among them: kubectl's client dry run still
# reads the server's discovery and OpenAPI documents, so without an API server it
# fails before looking at a field. The schemas come from kubernetes-models instead
# (tests/deploy/check.mjs): its validators and TypeScript types, both generated from
# the API's OpenAPI documents; the types also catch misspelt fields.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-build/bin}")

work=$(mktemp -d /tmp/veer-deploy-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

passed=() failed=() skipped=()
# One test: its name, then the command; its output is shown, its status decides.
run() {
	local name=$1
	shift
	echo "[ RUN      ] $name"
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	[[ -n "$out" ]] && printf '%s\n' "$out"
	if ((rc == 0)); then
		echo "[       OK ] $name"
		passed+=("$name")
	elif ((rc == 77)); then
		echo "[  SKIPPED ] $name"
		skipped+=("$name")
	else
		echo "[  FAILED  ] $name"
		failed+=("$name")
	fi
}

check() {
	node tests/deploy/check.mjs "$@"
}

# deploy/veer.yaml holds the objects that deploy/ renders to now.
renderedFileIsCurrent() {
	scripts/render-deploy.sh deploy "$work/veer.yaml" || return 1
	if ! check same deploy/veer.yaml "$work/veer.yaml"; then
		echo "deploy/veer.yaml is stale: run scripts/render-deploy.sh"
		return 1
	fi
}

# Every object of both variants and of the FlowSchema sample is valid for its kind.
objectsMatchSchemas() {
	scripts/render-deploy.sh deploy/privileged "$work/privileged.yaml" || return 1
	check schema deploy/veer.yaml "$work/privileged.yaml" deploy/flowcontrol.yaml
}

# The check above can fail: bad fields put into the real DaemonSet are caught.
validatorRejectsBadFields() {
	check rejects deploy/veer.yaml
}

# The privileged overlay differs from the default in the privileged flags only.
privilegedOverlayOnlyAddsPrivileged() {
	scripts/render-deploy.sh deploy "$work/default.yaml" || return 1
	scripts/render-deploy.sh deploy/privileged "$work/privileged.yaml" || return 1
	# Line 1 is the header naming the source.
	grep -v 'privileged: true$' "$work/privileged.yaml" | tail -n +2 >"$work/privileged-less.yaml"
	tail -n +2 "$work/default.yaml" | diff -u - "$work/privileged-less.yaml" || return 1
	local n
	n=$(grep -c 'privileged: true$' "$work/privileged.yaml")
	if ((n != 2)); then
		echo "want both containers privileged in deploy/privileged, found $n"
		return 1
	fi
	if grep -q 'privileged: true$' "$work/default.yaml"; then
		echo "deploy/ runs a privileged container"
		return 1
	fi
}

# veer-agent --prepare-mounts mounts bpffs and cgroup2 in PID 1's mount namespace, and
# cgroup2 from PID 1's cgroup namespace, not from its own: PID 1 of a new PID namespace
# (prepare-mounts-pid1.sh), in a private mount namespace, must see both mounts made from
# other namespaces, and the machine neither. They go with the namespaces at the end.
prepareMountsMountsInPid1Namespace() {
	local d=$work/mounts
	mkdir -p "$d"
	unshare --pid --fork --mount-proc --mount --propagation private \
		tests/deploy/prepare-mounts-pid1.sh "$d" "$bin/veer-agent" || return 1
	if grep -q " $d/" /proc/self/mounts; then
		echo "the mounts leaked into the test's own mount namespace"
		return 1
	fi
}

# The Containerfile's runtime stage, built with buildah from scratch (no base image can
# be pulled here) over the root filesystem scripts/image-rootfs.sh lays out, as the
# build stage does; then each binary's --version in a container of that image.
imageFromScratchRunsVersion() {
	if ! command -v buildah >/dev/null; then
		echo "buildah is not installed (make deps installs it)"
		return 77
	fi
	# Storage of this run's own, vfs (no overlay mount needed), chroot isolation (no
	# user namespace or OCI runtime setup): what works as root in this sandbox.
	local b=(buildah --root "$work/storage" --runroot "$work/runroot" --storage-driver vfs)
	# Whether buildah can build and run anything here at all, with the machine's own
	# `true`: if not, that is the machine, not veer's image, and the test says why.
	local probe=$work/probe out ctr
	scripts/image-rootfs.sh "$probe" "$(type -P true)" || return 1
	if ! out=$({ ctr=$("${b[@]}" from --quiet scratch) && "${b[@]}" copy --quiet "$ctr" "$probe" / &&
		"${b[@]}" run --isolation chroot "$ctr" -- /usr/local/bin/true && "${b[@]}" rm "$ctr"; } 2>&1); then
		echo "buildah cannot build and run a container from scratch here: $out"
		return 77
	fi
	local ctx=$work/image
	mkdir -p "$ctx"
	scripts/image-rootfs.sh "$ctx/rootfs" "$bin/veer-agent" "$bin/veerctl" "$bin/veer-proxy" || return 1
	# The last stage, with its one cross-stage COPY pointed at the local tree.
	awk '/^FROM /{stage=""} {stage=stage $0 "\n"} END{printf "%s", stage}' Containerfile |
		sed 's|^COPY --from=build /rootfs /$|COPY rootfs /|' >"$ctx/Containerfile"
	if ! grep -q '^FROM scratch$' "$ctx/Containerfile" || ! grep -q '^COPY rootfs /$' "$ctx/Containerfile"; then
		echo "the Containerfile's last stage is no longer 'FROM scratch' + 'COPY --from=build /rootfs /'"
		cat "$ctx/Containerfile"
		return 1
	fi
	local image=localhost/veer-test:$$
	"${b[@]}" bud --quiet --isolation chroot --layers=false -f "$ctx/Containerfile" -t "$image" "$ctx" >/dev/null ||
		return 1
	ctr=$("${b[@]}" from --quiet "$image") || return 1
	local status=0 prog want got
	for prog in veer-agent veerctl veer-proxy; do
		want=$("$bin/$prog" --version)
		got=$("${b[@]}" run --isolation chroot "$ctr" -- "$prog" --version 2>&1)
		if [[ "$got" != "$want" ]]; then
			echo "in the image, $prog --version said '$got', want '$want'"
			status=1
		else
			echo "in the image: $got"
		fi
	done
	if [[ $("${b[@]}" inspect --format '{{.OCIv1.Config.Entrypoint}}' "$image") != '[veer-agent]' ]]; then
		echo "the image's entrypoint is not veer-agent"
		status=1
	fi
	"${b[@]}" rm "$ctr" >/dev/null
	"${b[@]}" rmi "$image" >/dev/null
	return $status
}

tests=(
	DeployManifest.RenderedFileIsCurrent:renderedFileIsCurrent
	DeployManifest.ObjectsMatchSchemas:objectsMatchSchemas
	DeployManifest.ValidatorRejectsBadFields:validatorRejectsBadFields
	DeployManifest.PrivilegedOverlayOnlyAddsPrivileged:privilegedOverlayOnlyAddsPrivileged
	PrepareMounts.MountsInPid1Namespace:prepareMountsMountsInPid1Namespace
	Image.FromScratchRunsVersion:imageFromScratchRunsVersion
)
echo "[==========] Running ${#tests[@]} tests from deploy"
for t in "${tests[@]}"; do
	run "${t%%:*}" "${t#*:}"
done

total=$((${#passed[@]} + ${#failed[@]} + ${#skipped[@]}))
echo "[==========] $total tests ran."
echo "[  PASSED  ] ${#passed[@]} tests."
if ((${#skipped[@]})); then
	echo "[  SKIPPED ] ${#skipped[@]} tests, listed below:"
	printf '[  SKIPPED ] %s\n' "${skipped[@]}"
fi
if ((${#failed[@]})); then
	echo "[  FAILED  ] ${#failed[@]} tests, listed below:"
	printf '[  FAILED  ] %s\n' "${failed[@]}"
	exit 1
fi
