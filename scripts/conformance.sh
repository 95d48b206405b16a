#!/usr/bin/env bash
# Run aioftp's own published test suite (aioftp 0.28.3, downloaded by the harness at
# run time) against this checkout, and fail when fewer tests pass than the number
# docs/aioftp-compatibility.md records.  Extra arguments go to the harness's pytest.
#
# The harness lives outside the repository: AIOFTP_SUITE_HARNESS, or
# ../shared/conformance/aioftp_suite next to the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout="$PWD"
harness="${AIOFTP_SUITE_HARNESS:-$checkout/../shared/conformance/aioftp_suite}"
if [ ! -x "$harness/run.sh" ]; then
    echo "conformance: harness not found at $harness (set AIOFTP_SUITE_HARNESS)" >&2
    exit 2
fi
expected="$(sed -n 's/^Last result: \*\*\([0-9]*\) passed.*/\1/p' docs/aioftp-compatibility.md)"
if [ -z "$expected" ]; then
    echo "conformance: docs/aioftp-compatibility.md has no 'Last result: **N passed' line" >&2
    exit 2
fi
args=()
[ "$#" -gt 0 ] && args=(-- "$@")
output="$("$harness/run.sh" "$checkout" "${args[@]}" | tee /dev/stderr | tail -n 1)"
passed="$(sed -n 's/^aioftp-suite: \([0-9]*\) passed.*/\1/p' <<<"$output")"
if [ -z "$passed" ]; then
    echo "conformance: the harness printed no result line" >&2
    exit 2
fi
if [ "$#" -eq 0 ] && [ "$passed" -lt "$expected" ]; then
    echo "conformance: $passed passed, fewer than the $expected documented" >&2
    exit 1
fi
echo "conformance: $passed passed (documented: $expected)"
