#!/bin/sh
# The shared library exports exactly the functions the version script
# lists, each under a version node, and nothing else.  TAP output
# (tests/tap.sh).
set -u
srcdir=${srcdir:-.}
. "$srcdir/tests/tap.sh"
so=lib/.libs/libinterruptible.so
[ -e "$so" ] || tap_skip_all "no shared library in this build"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -n '/global:/,/local:/p' "$srcdir/lib/libinterruptible.map" |
	grep -E '^[[:space:]]*[a-z_]+;' | tr -d ' \t;' | sort > "$tmp/map"
nm -D --defined-only "$so" | awk '$2 == "T" { print $3 }' | sort > "$tmp/exported"
sed 's/@@*[A-Z_0-9.]*$//' "$tmp/exported" | sort > "$tmp/names"
diff -u "$tmp/map" "$tmp/names" >"$tmp/diff"
tap_ok $? "$(wc -l < "$tmp/map") exported functions, exactly the version script's"
sed 's/^/# /' "$tmp/diff"
unversioned=$(grep -vc '@@' "$tmp/exported")
[ "$unversioned" -eq 0 ]
tap_ok $? "every exported function carries a symbol version ($unversioned without)"
other=$(nm -D --defined-only "$so" | awk '$2 != "T" && $2 != "A" { print $3 }')
[ -z "$other" ]
tap_ok $? "no exported data${other:+: $other}"
tap_done
