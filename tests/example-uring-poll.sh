#!/bin/sh
# Smoke test: the io_uring poll loop stops on SIGINT, tears its ring down
# and exits 0.  The example bounds nothing itself, so bound it here.
set -u
out=$(timeout 20 ./examples/uring-poll --stop-after 300)
rc=$?
echo "$out"
if [ "$rc" -ne 0 ]; then
	echo "FAIL: uring-poll exited $rc"
	exit 1
fi
case "$out" in
*"ring torn down by the finalizer"*"cancel latency:"*) echo "PASS: uring-poll" ;;
*) echo "FAIL: unexpected output"; exit 1 ;;
esac
