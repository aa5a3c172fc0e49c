#!/bin/sh
# SPDX-License-Identifier: MIT
# Description: the files of lib/ call only down their layers, and no two
# call each other.
#
# usage: layers.sh [LIBDIR]
# Reads the objects LIBDIR/.libs/*.o (LIBDIR/*.o in a static build),
# makes one edge per symbol one file uses and another defines, and fails
# on an edge
# that goes up the layers below, or on one between two files of a layer
# that closes a cycle.  Edges the layout has not removed yet are listed
# under KNOWN; one listed that no longer exists fails too, so the list
# only shrinks; it is empty now: the layout holds.

objdir=${1:-lib}
[ -d "$objdir/.libs" ] && ls "$objdir"/.libs/*.o >/dev/null 2>&1 &&
	objdir=$objdir/.libs

# layer file...: each file may use the files of its own layer (without a
# cycle) and of every layer above it in this list.
LAYERS='
0 config lock fault self
1 signal handles thread timer pool
2 token context wake slot
3 call
4 service
5 lifecycle
6 task here cancel ctx syscall uring uring-none resolve point
'

# from to: edges against the layers that are still there.
KNOWN='
'

# For the test of this script: other layers, other known edges.
[ -n "${LAYERS_LIST+x}" ] && LAYERS=$LAYERS_LIST
[ -n "${LAYERS_KNOWN+x}" ] && KNOWN=$LAYERS_KNOWN

set -e
ls "$objdir"/*.o >/dev/null 2>&1 || {
	echo "layers.sh: no objects in $objdir (build first)" >&2
	exit 2
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# file symbol, for every definition and every use.
for o in "$objdir"/*.o; do
	f=$(basename "$o" .o)
	f=${f#libinterruptible_la-}
	f=${f#libinterruptible_libc_la-}
	nm "$o" | awk -v f="$f" '
		NF == 3 && $2 ~ /^[TDBRVW]$/ { print "D", f, $3 }
		NF == 2 && $1 == "U" { print "U", f, $2 }'
done >"$tmp/all"
awk '$1 == "D" { print $2, $3 }' "$tmp/all" >"$tmp/def"
awk '$1 == "U" { print $2, $3 }' "$tmp/all" >"$tmp/use"

echo "$LAYERS" | awk 'NF { for (i = 2; i <= NF; i++) print $i, $1 }' \
	>"$tmp/layer"
echo "$KNOWN" | awk 'NF == 2' | sort -u >"$tmp/known"

# from to, once per pair of files.
awk 'FNR == NR { def[$2] = $1; next }
	($2 in def) && def[$2] != $1 { print $1, def[$2] }' \
	"$tmp/def" "$tmp/use" | sort -u >"$tmp/edges"

awk -v known="$tmp/known" -v out="$tmp/used" '
	BEGIN { while ((getline l < known) > 0) { split(l, p); ok[p[1] " " p[2]] = 1 } }
	FNR == NR { layer[$1] = $2; next }
	{
		a = $1; b = $2
		if (!(a in layer) || !(b in layer)) {
			printf "layers.sh: %s has no layer\n", (a in layer) ? b : a
			bad = 1
			next
		}
		if (layer[b] <= layer[a])
			next
		if ((a " " b) in ok) {
			print a, b > out
			next
		}
		printf "layers.sh: %s (layer %d) uses %s (layer %d)\n", a, layer[a], b, layer[b]
		bad = 1
	}
	END { exit bad }' "$tmp/layer" "$tmp/edges" || fail=1
touch "$tmp/used"
sort -u "$tmp/used" -o "$tmp/used"
# An edge listed as known that is gone, or that the layers allow.
comm -23 "$tmp/known" "$tmp/used" | while read -r a b; do
	echo "layers.sh: $a -> $b is listed as known but is not an edge against the layers: take it off the list"
	echo x >>"$tmp/stale"
done
[ -s "$tmp/stale" ] && fail=1

# Without the known edges, no cycle: an edge a -> b is on one when b
# reaches a (only files of one layer can still make one).
awk -v known="$tmp/known" '
	BEGIN { while ((getline l < known) > 0) ok[l] = 1 }
	($1 " " $2) in ok { next }
	{ e[$1 " " $2] = 1; r[$1, $2] = 1; n[$1] = 1; n[$2] = 1 }
	END {
		for (k in n) for (i in n) if ((i, k) in r)
			for (j in n) if ((k, j) in r) r[i, j] = 1
		for (x in e) {
			split(x, p, " ")
			if ((p[2], p[1]) in r) {
				printf "layers.sh: %s -> %s is on a cycle\n", p[1], p[2]
				bad = 1
			}
		}
		exit bad
	}' "$tmp/edges" || fail=1
[ -z "$fail" ] && echo "layers.sh: $(wc -l <"$tmp/edges") edges, $(wc -l <"$tmp/known") known against the layers"
exit ${fail:-0}
