#!/usr/bin/env bash
# Runs every test binary given, keeps going after a failure, and ends with one
# summary line "tests: N passed, N failed" that CI reads. Exit 1 on any failure.
set -uo pipefail

passed=0 failed=0 broken=()
for bin in "$@"; do
	name=$(basename "$bin")
	echo "=== $name"
	out=$(mktemp)
	"$bin" --gtest_color=no 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\?\..*/\1/p' "$out" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\?, listed below:.*/\1/p' "$out" | tail -1)
	rm -f "$out"
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if ((rc != 0)); then
		broken+=("$name")
		# A crash or a setup failure counts once even if GoogleTest never summarised.
		[[ -z "$f" ]] && failed=$((failed + 1))
	fi
done
((${#broken[@]})) && echo "failing binaries: ${broken[*]}"
echo "tests: $passed passed, $failed failed"
((${#broken[@]} == 0))
