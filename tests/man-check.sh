#!/bin/sh
# Every man page renders without a groff warning (-ww), every .so link
# points at a page that exists, and every exported function has a page.
set -u
srcdir=${srcdir:-.}
status=0
n=0
for page in "$srcdir"/man/*.[137]; do
	n=$((n + 1))
	first=$(head -n 1 "$page")
	case "$first" in
	.so\ *)
		target="$srcdir/man/${first#.so man?/}"
		if [ -e "$target" ]; then
			echo "PASS: $page -> $target"
		else
			echo "FAIL: $page points at a missing $target"
			status=1
		fi
		continue
		;;
	esac
	out=$(LC_ALL=C.UTF-8 groff -ww -t -man -Tutf8 -z "$page" 2>&1)
	if [ -n "$out" ]; then
		echo "FAIL: $page"
		echo "$out"
		status=1
	else
		echo "PASS: $page"
	fi
done
[ "$n" -gt 0 ] || { echo "FAIL: no man pages found"; status=1; }

# Every function the library exports (the version script's list) has a
# page, or a link to one; not the private entry points (intr__*) that
# only libinterruptible-libc calls.
missing=""
for f in $(sed -n '/global:/,/local:/p' "$srcdir/lib/libinterruptible.map" |
	grep -E '^[[:space:]]*[a-z_]+;' | tr -d ' \t;' | grep -v '^intr__'); do
	[ -e "$srcdir/man/$f.3" ] || missing="$missing $f"
done
if [ -n "$missing" ]; then
	echo "FAIL: exported without a man page:$missing"
	status=1
else
	echo "PASS: every exported function has a man page"
fi
exit $status
