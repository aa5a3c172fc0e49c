#!/bin/sh
# Smoke test: the io_uring poll loop on a thread of the application's own,
# run in place, stops when another thread cancels its token; its body and
# its finalizer ran on that thread.  Where io_uring is not permitted the
# example says so and exits 77, and the test is skipped with its line.
# TAP output (tests/tap.sh).
set -u
. "${srcdir:-.}/tests/tap.sh"
out=$(timeout -k 10 60 ./examples/poll-loop-here)
rc=$?
echo "$out" | sed 's/^/# /'
if [ "$rc" -eq 77 ]; then
	tap_skip_all "$out"
fi
tap_ok "$rc" "poll-loop-here exited 0 after the cancel (exit $rc)"
echo "$out" | grep -qE '^stopped after [0-9]+ completions$'
tap_ok $? "stopped after its completions"
echo "$out" | grep -q '^body, finalizer on the loop thread: yes$'
tap_ok $? "body and finalizer ran on the loop thread"
tap_done
