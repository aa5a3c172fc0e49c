/* SPDX-License-Identifier: MIT */
/*
 * Description: a SCHED_FIFO thread joins calls whose worker shares its
 * CPU: the join must sleep until the worker lets go of the task, not spin
 * (a real-time spinner keeps an ordinary worker off its CPU until the
 * kernel's real-time throttling, about 0.95 s, steps in).
 *
 * Everything is pinned to one CPU; the worker is made by an ordinary
 * thread first.  The joiner then turns SCHED_FIFO and joins: the worker's
 * wake-up makes it runnable, and it preempts the worker at once, between
 * the wake and the worker's last store to the task.  A join that yields
 * in a loop there burns CPU until throttling; one that sleeps costs
 * microseconds.  The CPU time the joiner spends in each join is the
 * measure (bounded at 100 ms, ten times below the spin and a thousand
 * times above a sleeping join).
 */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "bound.h"
#include "tap.h"

#define JOINS		20
#define CPU_LIMIT_NS	100000000ull

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *empty(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

int main(void)
{
	struct sched_param sp = { .sched_priority = 1 };
	cpu_set_t one;
	long rt_runtime = 0;
	uint64_t worst = 0;
	FILE *f;
	int i;

	if (RUNNING_ON_VALGRIND)
		tap_skip_all("valgrind runs one thread at a time");
	/* Without throttling, a spinning real-time thread would hold the
	 * CPU for good: do not even try. */
	f = fopen("/proc/sys/kernel/sched_rt_runtime_us", "r");
	if (!f || fscanf(f, "%ld", &rt_runtime) != 1 || rt_runtime < 0)
		tap_skip_all("real-time throttling is off or unknown");
	fclose(f);
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		tap_skip_all("cannot pin to CPU 0");
	/* The worker, made by an ordinary thread on CPU 0. */
	if (run_interruptible(NULL, empty, NULL, NULL))
		tap_skip_all("no worker");
	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp))
		tap_skip_all("SCHED_FIFO not permitted here");
	for (i = 0; i < JOINS; i++) {
		uint64_t before = thread_cpu_ns(), used;
		void *res = NULL;
		int r;

		r = run_interruptible(NULL, empty, &res, &res);
		used = thread_cpu_ns() - before;
		if (used > worst)
			worst = used;
		if (r || res != &res || used >= CPU_LIMIT_NS)
			break;
	}
	sp.sched_priority = 0;
	pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
	tap_ok(i >= JOINS - 1, "%d calls joined by a SCHED_FIFO thread on the "
	       "worker's CPU", i < JOINS ? i + 1 : i);
	tap_ok(worst < CPU_LIMIT_NS, "the joiner slept: at most %.3f ms of "
	       "its CPU time in one join (bound %.0f ms)", worst / 1e6,
	       CPU_LIMIT_NS / 1e6);
	return tap_done();
}
