#!/bin/sh
# The mutation score of lib/: run.sh DIR PATCH...
#
# DIR/src is a copy of the source tree (make mutants makes it with make
# distdir).  It is configured once, in DIR/obj, with the fault injection
# hook (whose delays some tests use to widen a window) and without shared
# libraries, and built.  Then, for each patch (tests/mutants/NN-name.patch,
# a change to lib/ that breaks one documented guarantee): apply it to
# DIR/src, build again, and run the tests its second line names
# ("# Killed by: tests/check-run tests/...") until one fails; then take
# the patch back out.  A mutant a test fails on is killed; one that every
# named test passes survived.  Each test runs under a hard bound
# (MUTANT_TIMEOUT seconds, then SIGKILL); a test that hits it, or a Check
# case that hits Check's own timeout, counts as a hang, and a mutant that
# only a hang stops is reported as such: every test here bounds its own
# waits, so a hang is a test to fix.
#
# Before any mutant, every named test runs once on the tree as it is: a
# test that fails there makes the whole run fail (exit 2), since it could
# not tell a mutant from the tree.
#
# Prints one line per mutant, "killed: NAME (by TEST)", "killed: NAME (by
# hang in TEST)" or "survived: NAME", and "N killed, M survived" last.
# Exit status 1 if any survived or could not be built, 2 if the tree
# itself fails, 0 otherwise.
#
# Environment: MUTANT_TIMEOUT (per test, default 300 s); MUTANT_TESTS (run
# these tests for every mutant instead of the named ones); MUTANTS_SHARE
# "k/n" (only the mutants whose place in the sorted list, from 0, is k
# modulo n: CI runs a rotating third); MAKE, MUTANTS_JOBS (default 2).
set -u
dir=${1:?usage: run.sh DIR PATCH...}
shift
make=${MAKE:-make}
jobs=${MUTANTS_JOBS:-2}
bound=${MUTANT_TIMEOUT:-300}
share=${MUTANTS_SHARE:-}
src=$dir/src
obj=$dir/obj
logs=$dir/logs
start=$(date +%s)

[ -d "$src/lib" ] || { echo "run.sh: no source tree in $src"; exit 2; }
mkdir -p "$obj" "$logs"
chmod -R u+w "$src"
dir=$(cd "$dir" && pwd)
src=$dir/src
obj=$dir/obj
logs=$dir/logs

# The mutants of this run, in order.
n=0
patches=
for p in "$@"; do
	if [ -n "$share" ]; then
		k=${share%/*}
		m=${share#*/}
		if [ $((n % m)) -ne "$k" ]; then
			n=$((n + 1))
			continue
		fi
	fi
	n=$((n + 1))
	patches="$patches $p"
done

tests_of() {
	if [ -n "${MUTANT_TESTS:-}" ]; then
		echo "$MUTANT_TESTS"
	else
		sed -n '2s/^# Killed by: *//p' "$1"
	fi
}

# A test is a script of the source tree or a program to build.
programs_of() {
	for t in $1; do
		[ -f "$src/$t" ] || echo "$t"
	done
}

all_tests=$(for p in $patches; do tests_of "$p"; done | tr ' ' '\n' |
	sed '/^$/d' | sort -u | tr '\n' ' ')

echo "configuring and building in $obj"
if ! (cd "$obj" && "$src/configure" --disable-shared \
	--enable-fault-injection CFLAGS="-O2" >"$logs/configure.log" 2>&1); then
	tail -n 20 "$logs/configure.log"
	echo "run.sh: configure failed"
	exit 2
fi
# shellcheck disable=SC2046 # one word per program
if ! $make -C "$obj" -j"$jobs" lib/libinterruptible.la \
	$(programs_of "$all_tests") >"$logs/build.log" 2>&1; then
	tail -n 20 "$logs/build.log"
	echo "run.sh: the tree does not build"
	exit 2
fi

# run_test NAME TEST: 0 passed (or skipped), 1 failed, 2 hung.
run_test() {
	log="$logs/$1.${2##*/}.log"
	if [ -f "$src/$2" ]; then
		cmd="$src/$2"
	else
		cmd="./$2"
	fi
	(cd "$obj" && srcdir=$src CK_DEFAULT_TIMEOUT=$((bound / 2)) \
		timeout -s KILL "$bound" $cmd) >"$log" 2>&1
	rc=$?
	# Check's TAP marks a case that ran into its timeout; the rest
	# are real failures.
	if grep '^not ok' "$log" | grep -qv 'Test timeout expired'; then
		return 1
	fi
	if [ "$rc" -eq 137 ] || grep -q 'Test timeout expired' "$log"; then
		return 2
	fi
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		return 1
	fi
	return 0
}

echo "the tree as it is: $all_tests"
for t in $all_tests; do
	run_test pristine "$t"
	case $? in
	0) ;;
	*) echo "run.sh: $t fails on the tree itself ($logs/pristine.${t##*/}.log)"
	   exit 2 ;;
	esac
done

killed=0
survived=0
hangs=0
broken=0
for p in $patches; do
	name=$(basename "$p" .patch)
	if ! patch -p1 -s -d "$src" <"$p" >"$logs/$name.patch.log" 2>&1; then
		echo "error: $name does not apply"
		patch -R -p1 -s -d "$src" <"$p" >/dev/null 2>&1
		broken=$((broken + 1))
		continue
	fi
	tests=$(tests_of "$p")
	# shellcheck disable=SC2046 # one word per program
	if ! $make -C "$obj" -j"$jobs" lib/libinterruptible.la \
		$(programs_of "$tests") >"$logs/$name.build.log" 2>&1; then
		echo "error: $name does not build ($logs/$name.build.log)"
		broken=$((broken + 1))
	else
		by=
		hung=
		for t in $tests; do
			run_test "$name" "$t"
			case $? in
			1) by=$t; break ;;
			2) [ -n "$hung" ] || hung=$t ;;
			esac
		done
		if [ -n "$by" ]; then
			echo "killed: $name (by $by)"
			killed=$((killed + 1))
		elif [ -n "$hung" ]; then
			echo "killed: $name (by hang in $hung)"
			killed=$((killed + 1))
			hangs=$((hangs + 1))
		else
			echo "survived: $name"
			survived=$((survived + 1))
		fi
	fi
	if ! patch -R -p1 -s -d "$src" <"$p" >>"$logs/$name.patch.log" 2>&1; then
		echo "run.sh: $name does not come back out of $src"
		exit 2
	fi
done
# The objects and programs of the last mutant: rebuilt from the tree as
# it is, so that what is left in DIR/obj is not a mutant.
# shellcheck disable=SC2046 # one word per program
$make -C "$obj" -j"$jobs" lib/libinterruptible.la \
	$(programs_of "$all_tests") >/dev/null 2>&1

echo "# $hangs killed only by a hang, $broken not built, $(($(date +%s) - start)) s"
echo "$killed killed, $survived survived"
[ "$survived" -eq 0 ] && [ "$broken" -eq 0 ]
