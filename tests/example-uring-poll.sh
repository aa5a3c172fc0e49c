#!/bin/sh
# Smoke test: the io_uring poll loop, once it polls, stops on SIGINT, tears
# its ring down and exits 0; where io_uring is not permitted it says so and
# exits 77, and the test is skipped with its line.  The example bounds nothing itself, so bound
# it here: the SIGINT goes through timeout, which passes it on.  TAP output
# (tests/tap.sh).
set -u
. "${srcdir:-.}/tests/tap.sh"
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
timeout -k 10 60 ./examples/uring-poll >"$out" &
pid=$!
i=0
while [ "$i" -lt 300 ] && ! grep -qE '^(polling the ring|io_uring is not permitted)' "$out"; do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
	i=$((i + 1))
done
if grep -q '^io_uring is not permitted here' "$out"; then
	wait "$pid"
	rc=$?
	[ "$rc" -eq 77 ] || tap_ok 1 "uring-poll exited 77 without io_uring (exit $rc)"
	[ "$rc" -eq 77 ] || tap_done
	tap_skip_all "$(cat "$out")"
fi
grep -q '^polling the ring' "$out"
tap_ok $? "polling the ring"
kill -INT "$pid" 2>/dev/null
wait "$pid"
rc=$?
sed 's/^/# /' "$out"
tap_ok "$rc" "uring-poll exited 0 after SIGINT (exit $rc)"
grep -q "ring torn down by the finalizer" "$out"
tap_ok $? "ring torn down by the finalizer"
grep -q "^cancel latency:" "$out"
tap_ok $? "cancel latency reported"
tap_done
