/* SPDX-License-Identifier: MIT */
/*
 * Description: the context switches of an empty run_interruptible with
 * the caller and its worker on one CPU, as intr-latency measures it.
 *
 * The floor is two: the caller wakes the worker, which runs at once (the
 * caller is switched out), runs the call, completes it and sleeps (the
 * worker is switched out), and the caller finds the call done.  The pool
 * wakes the worker after letting go of its lock: woken under it, the
 * worker would find the lock held and sleep again on it, and the caller
 * would have to wake it a second time, four switches a call.
 *
 * What tells the two apart is how often the worker sleeps: once a call
 * (waiting for the next), or more (on the pool lock too, whenever it ran
 * before the caller let go of it: 1.3 to 1.6 times a call, measured so
 * with the join's yields below; 2.0 without).  Counted per thread
 * (getrusage RUSAGE_THREAD), from its first body to its last over CALLS
 * calls: its voluntary switches, which only its own sleeps make.  Other
 * processes on the same CPU preempt it (involuntary switches, printed
 * with the caller's), but do not make it sleep: the bound, 1.15 a call,
 * sits between the two.
 *
 * Then the same with a worker the scheduler does not let preempt its
 * waker (the body makes it SCHED_BATCH, and SCHED_OTHER again after):
 * woken, it waits for the caller to leave the CPU.  If the caller slept
 * at once, the completion would wake it, and it would often take the CPU
 * from the worker before the release, to give it back and wait for it
 * (0.09 to 0.25 preemptions of the worker a call, measured so).  The join
 * yields first, and the worker runs the call through to its sleep: none,
 * but for another process's time slices, a few a loop, and more in a
 * burst (0.05 a call once, under ThreadSanitizer with two busy processes
 * beside): the best of three loops counts.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "bound.h"
#include "tap.h"

#define CALLS		2000
#define MAX_SLEEPS	1.15
#define MAX_PREEMPTED	0.05
/* Loops of the batch worker, at most. */
#define ROUNDS		3

/* This thread's context switches so far: voluntary in *vol. */
static long switches(long *vol)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return -1;
	*vol = ru.ru_nvcsw;
	return ru.ru_nvcsw + ru.ru_nivcsw;
}

/* The worker's switches so far, and the CPU it ran on. */
struct probe {
	long sw, vol;
	int cpu;
};

/* The worker's scheduling policy: *arg. */
static void *set_policy(intr_ctx *ctx, void *arg)
{
	struct sched_param sp = { 0 };

	(void)ctx;
	return (void *)(intptr_t)pthread_setschedparam(pthread_self(),
						       *(int *)arg, &sp);
}

static void *body(intr_ctx *ctx, void *arg)
{
	struct probe *p = arg;

	(void)ctx;
	p->sw = switches(&p->vol);
	p->cpu = sched_getcpu();
	return NULL;
}

int main(void)
{
	struct probe first = { 0 }, last = { 0 };
	long before, after, worker, vol;
	double sleeps, preempted, best = 0;
	void *res;
	cpu_set_t one;
	int i, round, loops, cpu, bad = 0, moved = 0;

	if (RUNNING_ON_VALGRIND)
		tap_skip_all("valgrind runs one thread at a time itself");
	cpu = sched_getcpu();
	if (cpu < 0)
		tap_skip_all("no sched_getcpu here (%s)", strerror(errno));
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		tap_skip_all("cannot pin to CPU %d (%s)", cpu, strerror(errno));

	/* The worker is made now, on this CPU: it inherits the mask. */
	for (i = 0; i < 100; i++)
		if (run_interruptible(NULL, body, &first, NULL))
			bad++;
	tap_ok(first.cpu == cpu, "the worker runs on the caller's CPU (%d, %d)",
	       first.cpu, cpu);

	before = switches(&vol);
	if (run_interruptible(NULL, body, &first, NULL))
		bad++;
	for (i = 0; i < CALLS; i++) {
		if (run_interruptible(NULL, body, &last, NULL))
			bad++;
		if (last.cpu != cpu)
			moved++;
	}
	after = switches(&vol);
	tap_ok(!bad, "%d empty calls return 0", CALLS + 101);
	tap_ok(!moved, "every body ran on CPU %d (%d did not)", cpu, moved);

	worker = last.sw - first.sw;
	sleeps = (double)(last.vol - first.vol) / CALLS;
	tap_diag("per call: caller %.2f, worker %.2f context switches",
		 (double)(after - before) / CALLS, (double)worker / CALLS);
	tap_ok(before >= 0 && first.sw >= 0 && worker >= 0,
	       "the counts are read");
	tap_ok(sleeps <= MAX_SLEEPS,
	       "the worker sleeps %.2f times a call, at most %.2f", sleeps,
	       MAX_SLEEPS);

	/* A worker that does not preempt its caller: its best of ROUNDS
	 * loops, as another process's time slices come in bursts. */
	for (round = 0, bad = 0; round < ROUNDS; round++) {
		i = SCHED_BATCH;
		if (run_interruptible(NULL, set_policy, &i, &res) || res) {
			tap_skip("no SCHED_BATCH for the worker here");
			return tap_done();
		}
		if (run_interruptible(NULL, body, &first, NULL))
			bad++;
		for (i = 0; i < CALLS; i++)
			if (run_interruptible(NULL, body, &last, NULL))
				bad++;
		i = SCHED_OTHER;
		if (run_interruptible(NULL, set_policy, &i, &res) || res)
			bad++;
		preempted = (double)((last.sw - last.vol) -
				     (first.sw - first.vol)) / CALLS;
		tap_diag("per call, batch worker, loop %d: %.2f sleeps, %.2f "
			 "preemptions", round + 1,
			 (double)(last.vol - first.vol) / CALLS, preempted);
		if (!round || preempted < best)
			best = preempted;
		if (best <= MAX_PREEMPTED)
			break;
	}
	loops = round < ROUNDS ? round + 1 : ROUNDS;
	tap_ok(!bad, "%d calls to a batch worker return 0",
	       (CALLS + 3) * loops);
	tap_ok(best <= MAX_PREEMPTED,
	       "a worker that does not preempt its caller is preempted %.2f "
	       "times a call (its best loop of %d), at most %.2f", best, loops,
	       MAX_PREEMPTED);
	return tap_done();
}
