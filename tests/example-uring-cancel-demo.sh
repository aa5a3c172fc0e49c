#!/bin/sh
# Smoke test: the quick start's demo, with 20 rounds (200 racing rounds of
# each wait): it exits 0 and prints the cancel latency of a blocked
# io_uring_wait_cqe(), then p50, p99 and the rounds over resend_us of the
# unmodified and the wrapped wait.  No time is asserted: the figures are
# for people.  Where io_uring is not permitted the demo says so in one
# line and exits 0, and the test is skipped with that line.  TAP output
# (tests/tap.sh).
set -u
. "${srcdir:-.}/tests/tap.sh"
out=$(timeout -k 10 120 ./examples/uring-cancel-demo 20)
rc=$?
echo "$out" | sed 's/^/# /'
case "$out" in
"io_uring is not permitted here"*)
	[ "$rc" -eq 0 ] || { tap_ok 1 "the demo exited 0 (exit $rc)"; tap_done; }
	tap_skip_all "$out" ;;
esac
tap_ok "$rc" "the demo exited 0 (exit $rc)"
for want in "body back with the cancel" "run returned, finalizer done"; do
	echo "$out" | grep -qE "^  $want +min +[0-9.]+ +p50 +[0-9.]+ +p99 +[0-9.]+ +max +[0-9.]+ us$"
	tap_ok $? "latency row: $want"
done
row=' +p50 +[0-9.]+ +p99 +[0-9.]+ us +over [0-9]+ us: +[0-9]+ of 200$'
echo "$out" | grep -qE "^  io_uring_wait_cqe \(unmodified\)$row"
tap_ok $? "racing row, p50, p99 and rounds over resend_us: io_uring_wait_cqe"
echo "$out" | grep -qE "^  intr_uring_wait_cqe$row"
tap_ok $? "racing row, p50, p99 and rounds over resend_us: intr_uring_wait_cqe"
tap_done
