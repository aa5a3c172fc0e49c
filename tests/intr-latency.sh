#!/bin/sh
# Smoke test of tools/intr-latency: bad arguments exit 2 with the usage,
# --help and --version exit 0, and a tiny run of every section exits 0 with
# a JSON file that parses and has the expected keys and a CSV with a header
# and samples; every waiter is pinned by default and its placement shown,
# and targets from waiters placed unlike are not judged.  No time is
# asserted: the figures are for people.  TAP output (tests/tap.sh).
set -u
. "${srcdir:-.}/tests/tap.sh"
tool=./tools/intr-latency
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT

check() {
	tap_ok "$1" "$2"
}

# Bad arguments: exit 2, usage on stderr, nothing measured.
for args in "--loops 0" "-n abc" "-m warp" "-c nosuchcall" "--bogus" \
	"--timeout-poll-ms -5" "-s cancel,nothing" "extra"; do
	# shellcheck disable=SC2086 # one word per argument
	timeout 10 $tool $args >"$dir/out" 2>"$dir/err"
	rc=$?
	grep -q '^usage: intr-latency' "$dir/err"
	check $(( rc != 2 || $? != 0 )) "'$args' exits 2 with the usage (exit $rc)"
done

timeout 10 $tool --help >"$dir/out" 2>&1
rc=$?
grep -q -- '--timeout-poll-ms' "$dir/out"
check $(( rc != 0 || $? != 0 )) "--help exits 0 and lists the options"

timeout 10 $tool --version >"$dir/out" 2>&1
rc=$?
grep -q '^intr-latency [0-9]' "$dir/out"
check $(( rc != 0 || $? != 0 )) "--version exits 0 and names the version"

# A tiny run of everything.  Bounded: every wait in the tool is, and the
# timeout catches a tool that would not be.
timeout 60 $tool -q -n 20 --poll-loops 2 --timeout-poll-ms 10 --idle-ms 50 \
	-t 50 --scale-rounds 1 -c uring,read,cond -m all --histogram \
	--json "$dir/r.json" --csv "$dir/r.csv" >"$dir/out" 2>"$dir/err"
rc=$?
sed 's/^/# /' "$dir/out" "$dir/err"
check "$rc" "a tiny run exits 0"
# Where io_uring is not permitted, its rows say so and are left out.
if grep -q 'skipped: io_uring not permitted here' "$dir/out"; then
	tap_skip "the io_uring measurements: io_uring is not permitted here"
fi
for want in "cancel latency: intr_read" "cancel latency: intr_uring_wait_cqe" \
	"cost while blocked" "call overhead" "scale: calls blocked" " 50 calls" \
	"canceller CPU per call" "joiner CPU per call" "floor: sender CPU" \
	"targets" "in place / pooled" \
	"histogram"; do
	grep -q "$want" "$dir/out"
	check $? "the output has '$want'"
done

python3 -m json.tool "$dir/r.json" >/dev/null
check $? "--json output parses with python3 -m json.tool"
python3 - "$dir/r.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("tool", "version", "options", "cancel", "overhead", "idle", "scale",
          "targets"):
    assert k in r, "no key " + k
rows = {(c["call"], c["method"], c["stage"]) for c in r["cancel"]}
for m in ("eventfd", "kill", "intr", "intr-in-place", "poll",
          "pthread_cancel"):
    assert ("intr_read", m, "body") in rows, "no intr_read/" + m
assert ("intr_read", "intr-in-place", "final") in rows
uring = not any(c["call"] == "intr_uring_wait_cqe" and
                c["note"].startswith("skipped") for c in r["cancel"])
for m in ("nop", "msgring") if uring else ():
    assert ("intr_uring_wait_cqe", m, "body") in rows, "no uring/" + m
for c in r["cancel"]:
    if c["stage"] != "-":
        assert c["failures"] == 0 and c["n"] > 0, c
        assert c["min_ns"] <= c["p50_ns"] <= c["p99_ns"] <= c["max_ns"], c
assert {o["method"] for o in r["overhead"]} >= {
    "run_interruptible", "in-place scope", "pthread_create+join",
    "futex ping-pong"}
assert len(r["scale"]) == 1 and r["scale"][0]["calls"] == 50, r["scale"]
s = r["scale"][0]["rounds"][0]
assert s["cancelled"] == 50, s
assert s["cancel_cpu_ns"] > 0 and s["join_cpu_ns"] > 0, s
assert s["last_body_ns"] <= s["last_return_ns"], s
assert s["half_return_ns"] <= s["last_return_ns"], s
assert s["floor_send_cpu_ns"] > 0 and s["floor_last_ns"] > 0, s
assert any(i["method"] == "intr" and i["ok"] for i in r["idle"])
assert all(t["pass"] in (True, False, None) for t in r["targets"])
EOF
check $? "the JSON has every section, method and count"

head -n 1 "$dir/r.csv" | grep -q '^section,call,method,stage,i,ns$'
check $? "the CSV has its header"
rows=$(grep -c '^cancel,intr_read,intr,body,' "$dir/r.csv")
check $(( rows != 20 )) "the CSV has the 20 samples of intr_read/intr/body ($rows)"

# Placement.  By default every waiter runs on one CPU and the canceller on
# another (when the process may use two): every iteration of every method
# came back on the waiters' CPU, and the JSON says so.
ncpu=$(python3 -c 'import os; print(len(os.sched_getaffinity(0)))')
python3 - "$dir/r.json" "$ncpu" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["options"]["pin"] is True, "not pinned by default"
a, b = r["options"]["pin_cpus"]
assert (a != b) == (int(sys.argv[2]) > 1), (a, b)
rows = [c for c in r["cancel"] if c["stage"] == "body"]
assert rows and all(c["placed"] == c["n"] for c in rows), rows
for c in rows:
    assert a == b or c["same_cpu"] == 0, c
assert all(x["placed"] == x["n"] for x in r["overhead"]), r["overhead"]
EOF
check $? "by default every waiter is pinned away from the canceller, and each iteration's placement is recorded"
grep -q "^pinned: " "$dir/out" && grep -q "waiters back on the canceller's CPU: " "$dir/out"
check $? "the output says where the waiters ran"

timeout 60 $tool -q --no-pin -n 20 -c read -m eventfd,kill,intr -s cancel \
	>"$dir/out" 2>"$dir/err"
rc=$?
sed 's/^/# /' "$dir/out" "$dir/err"
grep -q "^not pinned" "$dir/out"
check $(( rc != 0 || $? != 0 )) "--no-pin runs and says so (exit $rc)"

# A run whose methods were placed unlike prints no target as met: the
# self-check puts the library's waiters on the canceller's CPU and the
# peers' elsewhere.
if [ "$ncpu" -gt 1 ]; then
	INTR_LATENCY_SAME_CPU=intr timeout 60 $tool -q -n 20 -c read \
		-m eventfd,kill,intr -s cancel --json "$dir/sc.json" \
		>"$dir/out" 2>"$dir/err"
	rc=$?
	sed 's/^/# /' "$dir/out" "$dir/err"
	n=$(grep -E 'intr_read: cancel p50 / (raw pthread_kill|eventfd floor)' \
		"$dir/out" | grep -c 'n/a: placed unlike')
	check $(( rc != 0 || n != 2 )) "targets from waiters placed unlike are n/a, not PASS or MISS ($n of 2)"
	python3 - "$dir/sc.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
t = [x for x in r["targets"] if x["name"].startswith("intr_read: cancel")]
assert len(t) == 2 and all(x["comparable"] is False and x["pass"] is None
                           for x in t), t
EOF
	check $? "the JSON marks them not comparable, pass null"
else
	tap_skip "one CPU: waiters cannot be placed unlike"
fi

# Two sizes side by side; one whose threads cannot start (address space
# for 8 MiB stacks limited to about 1.5 GiB) is skipped with the reason,
# not failed: exit 0, its row says so, the JSON has the reason and no round.
# A sanitizer's build reserves more address space than that for itself
# and cannot run under the limit at all: then the case cannot be made.
# shellcheck disable=SC3045 # dash and bash both have ulimit -v
if ! (ulimit -v 1500000 && exec $tool --version) >/dev/null 2>&1; then
	tap_skip "a size that cannot start its threads: the tool does not run under a 1.5 GB address-space limit (a sanitizer's build)"
	tap_skip "the JSON reports the skipped size: as above"
else
# shellcheck disable=SC3045
(ulimit -v 1500000 && exec timeout 60 $tool -q -s scale -t 20,5000 \
	--scale-rounds 1 --json "$dir/sk.json") >"$dir/out" 2>"$dir/err"
rc=$?
sed 's/^/# /' "$dir/out" "$dir/err"
grep -q '^  5000 calls skipped: call [0-9]* of 5000 could not start' "$dir/out"
check $(( rc != 0 || $? != 0 )) "a size that cannot start its threads is skipped with the reason (exit $rc)"
python3 - "$dir/sk.json" <<'EOF2'
import json, sys
r = json.load(open(sys.argv[1]))
a, b = r["scale"]
assert a["calls"] == 20 and a["ok"] and a["skipped"] is None, a
assert a["rounds"][0]["cancelled"] == 20, a
assert b["calls"] == 5000 and not b["ok"] and b["rounds"] == [], b
assert "could not start" in b["skipped"], b
t = {x["name"]: x for x in r["targets"]}
assert t["5000 calls: canceller CPU per call, us"]["pass"] is None, t
EOF2
check $? "the JSON reports the skipped size with its reason"
fi

# A stop that never arrives (INTR_LATENCY_DROP leaves the cancel out) is
# reported as a failure, exit 1, instead of a hang.
INTR_LATENCY_DROP=intr timeout 30 $tool -q -n 1 -m intr -c read -s cancel \
	>"$dir/out" 2>"$dir/err"
rc=$?
sed 's/^/# /' "$dir/out" "$dir/err"
grep -q 'lost' "$dir/err"
check $(( rc != 1 || $? != 0 )) "a lost cancel exits 1 and says so (exit $rc)"

tap_done
