#!/bin/sh
# Check the interruption protocol model with spin, one exhaustive search
# per property (no partial-order reduction, no bitstate hashing, no state
# compression: -DNOREDUCE, full state storage).
#
#   check.sh MODEL DIR            every property; "N passed, M failed"
#   check.sh MODEL DIR mutants    every MUTATION_* against every property;
#                                 each must break the property named for it
#
# MODEL_DEFS adds spin -D options to every search (MODEL_DEFS=-DMUTATION_x
# checks one mutant).  model/handshake.pml, model/slot.pml and
# model/join.pml, beside MODEL, are checked the same way with their own
# lists (hs_props, hs_mutants; slot_props, slot_mutants; jn_props,
# jn_mutants); model/pending.pml
# serves the properties that say -DPENDING_MODEL.  The work happens in
# DIR: pan.c, pan (built without optimisation, which compiles faster than the search gains), NAME.out,
# and NAME.trail for a property that fails; replay one with
#   spin -DCHECK_x [-DMUTATION_x] -t -k DIR/NAME.trail -p DIR/interrupt.pml
set -u

model=$1
dir=$2
mode=${3:-check}

# name|spin macros|pan compile flags|pan run flags (commas for spaces)
props="
lost_cancel|-DCHECK_LOST|-DNOREDUCE,-DNFAIR=3|-a,-f
all_return|-DCHECK_RETURN|-DNOREDUCE,-DNFAIR=3|-a,-f
no_leak|-DCHECK_LEAK|-DSAFETY,-DNOREDUCE|-E
once|-DCHECK_ONCE|-DSAFETY,-DNOREDUCE|-E
window|-DCHECK_WINDOW|-DSAFETY,-DNOREDUCE|-E
no_deadlock||-DSAFETY,-DNOREDUCE|
pending_safe|-DPENDING_MODEL|-DSAFETY,-DNOREDUCE|
mask|-DCHECK_MASK|-DSAFETY,-DNOREDUCE|-E
lost_send|-DCHECK_LOST,-DSEND_FAILS,-DNO_SLOW_RESEND|-DNOREDUCE,-DNFAIR=3|-a,-f
no_leak_send|-DCHECK_LEAK,-DSEND_FAILS|-DSAFETY,-DNOREDUCE|-E
no_signal|-DCHECK_LOST,-DSIGNAL_LOST,-DNO_SLOW_RESEND|-DNOREDUCE,-DNFAIR=3|-a,-f
slot|-DCHECK_SLOT,-DNO_SLOW_RESEND|-DSAFETY,-DNOREDUCE|-E
stale_slot|-DCHECK_LOST,-DSTALE_SLOT,-DNO_SLOW_RESEND|-DNOREDUCE,-DNFAIR=3|-a,-f
scope_lost|-DSCOPE,-DCHECK_LOST|-DNOREDUCE,-DNFAIR=3|-a,-f
scope_return|-DSCOPE,-DCHECK_RETURN|-DNOREDUCE,-DNFAIR=3|-a,-f
scope_no_leak|-DSCOPE,-DCHECK_LEAK|-DSAFETY,-DNOREDUCE|-E
scope_once|-DSCOPE,-DCHECK_ONCE|-DSAFETY,-DNOREDUCE|-E
scope_mask|-DSCOPE,-DCHECK_MASK|-DSAFETY,-DNOREDUCE|-E
scope_no_leak_send|-DSCOPE,-DCHECK_LEAK,-DSEND_FAILS|-DSAFETY,-DNOREDUCE|-E
scope_no_deadlock|-DSCOPE|-DSAFETY,-DNOREDUCE|
scope_stale_lost|-DSCOPE,-DSTALE_FLAGS,-DCHECK_LOST|-DNOREDUCE,-DNFAIR=3|-a,-f
scope_stale_mask|-DSCOPE,-DSTALE_FLAGS,-DCHECK_MASK|-DSAFETY,-DNOREDUCE|-E
lost_replaced|-DCHECK_LOST,-DREPLACED,-DNO_SLOW_RESEND|-DNOREDUCE,-DNFAIR=3|-a,-f
scope_lost_replaced|-DSCOPE,-DCHECK_LOST,-DREPLACED,-DNO_SLOW_RESEND|-DNOREDUCE,-DNFAIR=3|-a,-f
"

# mutant  the property it must break
mutants="
NO_RESEND|lost_cancel
NO_REDIRECT|window
NO_STATE_CHECK|no_leak
NO_RUNNING_DEL|no_leak
BLOCK_LATE|no_leak
FIN_SNAPSHOT|once
WAKE_NO_TAKE|once
NO_WAKE_WAIT|once
WAIT_LOCKED|no_deadlock
NO_DEFER|window
NO_HEAL|window
PENDING_ANY_SEND|pending_safe
PENDING_CLEAR_ALL|pending_safe
PENDING_NO_LOCK|pending_safe
RELEASE_OPEN|no_deadlock
SKIP_OPEN|mask
SEND_UNCHECKED|lost_send
ONE_SHOT|lost_cancel
SLOT_NO_PUBLISH|no_signal
SLOT_NO_RECHECK|no_signal
SLOT_SIGNAL_TOO|slot
SLOT_NO_MARK|stale_slot
FD_NO_WAKE|no_signal
SCOPE_NO_FLUSH|scope_no_leak
SCOPE_HOLD_NO_FLUSH|scope_no_leak
SCOPE_HOLD_COOKIES_FIRST|scope_no_leak
SCOPE_STALE_FLAGS|scope_stale_mask
SCOPE_OPEN_LOCK|scope_no_deadlock
NO_POST_CHECK|lost_replaced
CHECK_UNLOCKED|lost_replaced
"

# The completion handshake of lib/task.c with store buffers.
hs_props="
handshake_qemu||-DSAFETY,-DNOREDUCE|
handshake_native|-DNATIVE,-DWITHOUT_FENCE|-DSAFETY,-DNOREDUCE|
"
hs_mutants="
NO_FENCE|handshake_qemu
"

# The wake slot's store-then-load pair with store buffers.
slot_props="
slot_qemu||-DSAFETY,-DNOREDUCE|
slot_native|-DNATIVE,-DWITHOUT_FENCE|-DSAFETY,-DNOREDUCE|
"
slot_mutants="
NO_FENCE|slot_qemu
"

# The completion's wake-up of a sleeping joiner (lib/task.c).
jn_props="
join_free||-DSAFETY,-DNOREDUCE|
"
jn_mutants="
NO_WAITER_WAKE|join_free
WAKE_AFTER_RELEASE|join_free
WAKE_UNSAID|join_free
"

command -v spin >/dev/null 2>&1 || { echo "spin not found (Debian: spin)"; exit 2; }
mkdir -p "$dir" || exit 2
cp "$model" "$dir/interrupt.pml" || exit 2
# The lost-details model beside it: its properties say -DPENDING_MODEL.
cp "$(dirname "$model")/pending.pml" "$dir/pending.pml" || exit 2
cp "$(dirname "$model")/handshake.pml" "$dir/handshake.pml" || exit 2
cp "$(dirname "$model")/slot.pml" "$dir/slot.pml" || exit 2
cp "$(dirname "$model")/join.pml" "$dir/join.pml" || exit 2
cd "$dir" || exit 2

# run NAME SPINFLAGS CCFLAGS PANFLAGS: sets ok (1 verified, 0 not) and
# summary; pan's output is kept in NAME.out.  The model is $pml.
pml=interrupt.pml
run() {
	sf="$(printf '%s' "$2" | tr , ' ') ${MODEL_DEFS:-}"
	cf=$(printf '%s' "$3" | tr , ' ')
	pf=$(printf '%s' "$4" | tr , ' ')
	src=$pml
	case " $sf " in *" -DPENDING_MODEL "*) src=pending.pml ;; esac
	rm -f pan pan.c "$src.trail"
	# shellcheck disable=SC2086 # flags are word lists
	if ! spin $sf -a "$src" >"$1.out" 2>&1 ||
		! ${CC:-cc} $cf -o pan pan.c >>"$1.out" 2>&1; then
		ok=0
		summary="spin or cc failed, see $dir/$1.out"
		return
	fi
	# shellcheck disable=SC2086
	./pan -m1000000 $pf >>"$1.out" 2>&1
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$1.out" | tail -n 1)
	stored=$(sed -n 's/^ *\([0-9]*\) states, stored.*/\1/p' "$1.out" | tail -n 1)
	trans=$(sed -n 's/^ *\([0-9]*\) transitions.*/\1/p' "$1.out" | tail -n 1)
	depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$1.out" | tail -n 1)
	summary="$stored states stored, $trans transitions, depth $depth, errors ${errors:-?}"
	ok=0
	if [ "${errors:-1}" -eq 0 ] &&
		! grep -q -e 'Search not completed' -e 'depth too small' "$1.out"; then
		ok=1
	fi
	if [ -e "$src.trail" ]; then
		mv "$src.trail" "$1.trail"
		summary="$summary (trail in $dir/$1.trail)"
	fi
}

# check_set PROPS MUTANTS: every property, or (mode mutants) every mutant
# against every property; adds to passed and failed.
check_set() {
	if [ "$mode" = mutants ]; then
		for m in $2; do
			mname=${m%%|*}
			want=${m#*|}
			broken=""
			for p in $1; do
				name=${p%%|*}; rest=${p#*|}
				sflags=${rest%%|*}; rest=${rest#*|}
				cflags=${rest%%|*}; pflags=${rest#*|}
				run "$mname-$name" "$sflags,-DMUTATION_$mname" "$cflags" "$pflags"
				[ "$ok" -eq 0 ] && broken="$broken $name"
			done
			case " $broken " in
			*" $want "*)
				echo "PASS: MUTATION_$mname breaks$broken"
				passed=$((passed + 1)) ;;
			*)
				echo "FAIL: MUTATION_$mname breaks${broken:- nothing}, not $want"
				failed=$((failed + 1)) ;;
			esac
		done
	else
		for p in $1; do
			name=${p%%|*}; rest=${p#*|}
			sflags=${rest%%|*}; rest=${rest#*|}
			cflags=${rest%%|*}; pflags=${rest#*|}
			run "$name" "$sflags" "$cflags" "$pflags"
			if [ "$ok" -eq 1 ]; then
				echo "PASS: $name: $summary"
				passed=$((passed + 1))
			else
				echo "FAIL: $name: $summary"
				failed=$((failed + 1))
			fi
		done
	fi
}

passed=0
failed=0
check_set "$props" "$mutants"
# The same for the handshake model.
pml=handshake.pml
check_set "$hs_props" "$hs_mutants"
# And for the wake slot's.
pml=slot.pml
check_set "$slot_props" "$slot_mutants"
# And for the completion's wake-up.
pml=join.pml
check_set "$jn_props" "$jn_mutants"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
