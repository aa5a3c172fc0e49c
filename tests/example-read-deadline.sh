#!/bin/sh
# Smoke test: the read-deadline example reads what stdin has at once, and
# gives up after its 2 s deadline when stdin stays open with nothing in it.
# TAP output (tests/tap.sh).
set -u
. "${srcdir:-.}/tests/tap.sh"

# Input waiting: read() returns it ("hello\n", 6 bytes).
out=$(echo hello | timeout -k 10 60 ./examples/read-deadline)
rc=$?
echo "$out" | sed 's/^/# /'
[ "$rc" -eq 0 ] && [ "$out" = "read 6 bytes" ]
tap_ok $? "input read (exit $rc)"

# No input, and stdin kept open by a writer that never writes: the read
# blocks until the deadline cancels it.  The writer holds a FIFO (not a
# pipe into the example, which the shell would wait for) and is killed
# once the example is done.
dir=$(mktemp -d) || exit 1
mkfifo "$dir/in" || { rm -rf "$dir"; exit 1; }
sleep 120 >"$dir/in" &
writer=$!
start=$(date +%s)
out=$(timeout -k 10 60 ./examples/read-deadline <"$dir/in")
rc=$?
elapsed=$(($(date +%s) - start))
kill "$writer" 2>/dev/null
wait "$writer" 2>/dev/null
rm -rf "$dir"
echo "$out" | sed 's/^/# /'
# At least the deadline (whole seconds: 1 or more); no upper bound but the
# timeout, which a loaded machine must not turn into a failure.
[ "$rc" -eq 0 ] && [ "$out" = "no input within 2 s" ] && [ "$elapsed" -ge 1 ]
tap_ok $? "gave up after ~${elapsed} s without input (exit $rc)"
tap_done
