#!/bin/sh
# The shared library exports exactly the functions the version script
# lists, each under a version node, and nothing else.
set -u
srcdir=${srcdir:-.}
so=lib/.libs/libinterruptible.so
if [ ! -e "$so" ]; then
	echo "SKIP: no shared library in this build"
	exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -n '/global:/,/local:/p' "$srcdir/lib/libinterruptible.map" |
	grep -E '^[[:space:]]*[a-z_]+;' | tr -d ' \t;' | sort > "$tmp/map"
nm -D --defined-only "$so" | awk '$2 == "T" { print $3 }' | sort > "$tmp/exported"
status=0
sed 's/@@*[A-Z_0-9.]*$//' "$tmp/exported" | sort > "$tmp/names"
if diff -u "$tmp/map" "$tmp/names"; then
	echo "PASS: $(wc -l < "$tmp/map") exported functions, exactly the version script's"
else
	echo "FAIL: exported functions differ from lib/libinterruptible.map"
	status=1
fi
unversioned=$(grep -vc '@@' "$tmp/exported")
if [ "$unversioned" -eq 0 ]; then
	echo "PASS: every exported function carries a symbol version"
else
	echo "FAIL: $unversioned exported functions without a version"
	status=1
fi
other=$(nm -D --defined-only "$so" | awk '$2 != "T" && $2 != "A" { print $3 }')
if [ -z "$other" ]; then
	echo "PASS: no exported data"
else
	echo "FAIL: exported data: $other"
	status=1
fi
exit $status
