#!/bin/sh
# Every man page renders without a groff warning (-ww), and every .so link
# points at a page that exists.
set -u
srcdir=${srcdir:-.}
status=0
n=0
for page in "$srcdir"/man/*.[37]; do
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
exit $status
