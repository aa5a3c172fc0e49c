#!/bin/sh
# Regenerate the build system from a fresh clone.  Quiet when all is well:
# the notes on the helper files copied into build-aux/ and m4/ are left
# out; any warning or error is shown.
set -e
cd "$(dirname "$0")"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! LIBTOOLIZE="${LIBTOOLIZE:-libtoolize} --quiet" autoreconf -fi >"$log" 2>&1; then
	cat "$log" >&2
	exit 1
fi
grep -v ": installing '[^']*'$" "$log" >&2 || true
