#!/bin/sh
# Every man page renders without a groff warning (-ww), every .so link
# points at a page that exists, and every exported function has a page.
# TAP output (tests/tap.sh).
set -u
srcdir=${srcdir:-.}
. "$srcdir/tests/tap.sh"
n=0
for page in "$srcdir"/man/*.[137]; do
	[ -e "$page" ] || continue
	n=$((n + 1))
	first=$(head -n 1 "$page")
	case "$first" in
	.so\ *)
		target="$srcdir/man/${first#.so man?/}"
		[ -e "$target" ]
		tap_ok $? "$page -> $target"
		continue
		;;
	esac
	out=$(LC_ALL=C.UTF-8 groff -ww -t -man -Tutf8 -z "$page" 2>&1)
	[ -z "$out" ]
	tap_ok $? "$page renders without a warning"
	[ -z "$out" ] || echo "$out" | sed 's/^/# /'
done
[ "$n" -gt 0 ]
tap_ok $? "$n man pages found"

# Every function the library exports (the version script's list) has a
# page, or a link to one; not the private entry points (intr__*) that
# only libinterruptible-libc calls.
missing=""
for f in $(sed -n '/global:/,/local:/p' "$srcdir/lib/libinterruptible.map" |
	grep -E '^[[:space:]]*[a-z_]+;' | tr -d ' \t;' | grep -v '^intr__'); do
	[ -e "$srcdir/man/$f.3" ] || missing="$missing $f"
done
[ -z "$missing" ]
tap_ok $? "every exported function has a man page${missing:+ (missing:$missing)}"
tap_done
