#!/bin/sh
# Smoke test: the trace-context example exits 0, and every log line of a
# request carries that request's id (the id crossed to the workers).
set -u
out=$(timeout -k 10 60 ./examples/trace-context)
rc=$?
echo "$out"
if [ "$rc" -ne 0 ]; then
	echo "FAIL: trace-context exited $rc"
	exit 1
fi
# Every line must carry the id of the request it belongs to: the one whose
# "request received" line came last.
bad=$(echo "$out" | awk '
	/request received$/ { cur = $1 }
	$1 != cur || cur !~ /^\[req-/ { bad++ }
	END { print bad + 0 }')
lines=$(echo "$out" | grep -c .)
if [ "$lines" -lt 4 ] || [ "$bad" -ne 0 ]; then
	echo "FAIL: $bad of $lines lines without their request's id"
	exit 1
fi
echo "PASS: trace-context"
