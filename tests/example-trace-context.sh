#!/bin/sh
# Smoke test: the trace-context example exits 0, and every log line of a
# request carries that request's id (the id crossed to the workers).  TAP
# output (tests/tap.sh).
set -u
. "${srcdir:-.}/tests/tap.sh"
out=$(timeout -k 10 60 ./examples/trace-context)
rc=$?
echo "$out" | sed 's/^/# /'
tap_ok "$rc" "trace-context exited 0 (exit $rc)"
# Every line must carry the id of the request it belongs to: the one whose
# "request received" line came last.
bad=$(echo "$out" | awk '
	/request received$/ { cur = $1 }
	$1 != cur || cur !~ /^\[req-/ { bad++ }
	END { print bad + 0 }')
lines=$(echo "$out" | grep -c .)
[ "$lines" -ge 4 ] && [ "$bad" -eq 0 ]
tap_ok $? "every line of $lines carries its request's id ($bad without)"
tap_done
