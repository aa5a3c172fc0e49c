/* SPDX-License-Identifier: MIT */
/*
 * Description: the last steps of a call on its worker, in order: the
 * worker blocks the interrupt signal before the end step (it holds the
 * tree lock there with every signal blocked), and it is idle again before
 * the join returns, so a one-worker pool runs call after call.
 *
 * Both windows are a few instructions wide.  In a build with the fault
 * injection hook (make check-fault), the hook's delays hold the worker in
 * the end step, where the test reads its mask from /proc, and between
 * the end of the call and the idle list, where the next call comes in.
 * Without the hook, the second check runs many calls in a row instead and
 * the first is skipped.  Linked statically: the delays are hidden.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bound.h"
#include "fault.h"
#include "tap.h"

#define BOUND_MS	10000u

static atomic_int started;
static atomic_int worker_tid;

/* Waits for a byte on the pipe whose read end arg is. */
static void *wait_byte(intr_ctx *ctx, void *arg)
{
	int fd = (int)(intptr_t)arg;
	char c;

	(void)ctx;
	atomic_fetch_add(&started, 1);
	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void *empty(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	atomic_store(&worker_tid, (int)b_gettid());
	return arg;
}

/* max_workers = 1: a second call while the first runs is refused. */
static void one_worker_refuses_second(void)
{
	intr_task *a = NULL, *b = NULL;
	int fds[2], ra, rb = -EAGAIN;

	if (pipe(fds)) {
		tap_ok(false, "pipe: %s", strerror(errno));
		return;
	}
	atomic_store(&started, 0);
	ra = intr_spawn(&a, NULL, wait_byte, (void *)(intptr_t)fds[0]);
	if (!ra && b_wait_atomic(&started, 1, BOUND_MS))
		rb = intr_spawn(&b, NULL, wait_byte, (void *)(intptr_t)fds[0]);
	tap_ok(!ra && rb == -EAGAIN, "max_workers = 1: a second call while "
	       "the first runs gets -EAGAIN (%d, %d)", ra, rb);
	if (write(fds[1], "xx", 2) != 2)
		tap_diag("write: %s", strerror(errno));
	if (!ra)
		tap_ok(b_join_within(a, NULL, BOUND_MS) == 0,
		       "the first call ends once released");
	if (!rb)
		b_join_within(b, NULL, BOUND_MS);
	close(fds[0]);
	close(fds[1]);
}

/* The join returns with the worker idle again: the next call has it. */
static void worker_idle_before_join(void)
{
	long i, n, refused = 0, other = 0;
	int r;

#ifdef INTR_FAULT_INJECTION
	n = 20;
	intr__fault_delay_arm(INTR_DELAY_WORKER_IDLE, 20);
#else
	n = b_scale(2000);
#endif
	for (i = 0; i < n; i++) {
		r = run_interruptible(NULL, empty, NULL, NULL);
		if (r == -EAGAIN)
			refused++;
		else if (r)
			other++;
	}
#ifdef INTR_FAULT_INJECTION
	{
		unsigned long waited =
			intr__fault_delayed(INTR_DELAY_WORKER_IDLE);

		intr__fault_delay_arm(INTR_DELAY_WORKER_IDLE, 0);
		tap_ok(waited >= (unsigned long)n, "the worker went through "
		       "the delay before the idle list %lu times", waited);
	}
#endif
	tap_ok(!refused && !other, "max_workers = 1: %ld calls in a row, "
	       "%ld refused with -EAGAIN (worker not idle when the previous "
	       "join returned), %ld other errors", n, refused, other);
}

#ifdef INTR_FAULT_INJECTION
/* The worker's blocked signals (SigBlk of /proc/self/task/TID/status). */
static bool blocked_of(pid_t tid, uint64_t *mask)
{
	char path[64], line[256];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SigBlk: %" SCNx64, mask) == 1)
			found = true;
	fclose(f);
	return found;
}

/* In the end step (tree lock held, DONE not yet stored), the worker has
 * every signal blocked, the interrupt signal first. */
static void end_step_mask(int signo)
{
	uint64_t mask = 0, bit = 1ull << (signo - 1);
	uint64_t others = (1ull << (SIGINT - 1)) | (1ull << (SIGTERM - 1));
	unsigned long pass;
	bool seen = false;
	intr_task *t;
	int try, r;

	intr__fault_delay_arm(INTR_DELAY_END_STEP, 300);
	for (try = 0; try < 5 && !seen; try++) {
		atomic_store(&worker_tid, 0);
		r = intr_spawn(&t, NULL, empty, NULL);
		if (r) {
			tap_ok(false, "intr_spawn: %d", r);
			break;
		}
		if (!b_wait_atomic(&worker_tid, 1, BOUND_MS)) {
			tap_ok(false, "the body did not run");
			break;
		}
		/* The worker is in the end step once it waits there. */
		{
			uint64_t end = h_now_ns() +
				       (uint64_t)BOUND_MS * 1000000u;

			while (intr__fault_delaying(INTR_DELAY_END_STEP) < 1 &&
			       h_now_ns() < end)
				b_sleep_ms(1);
		}
		pass = intr__fault_delayed(INTR_DELAY_END_STEP);
		if (intr__fault_delaying(INTR_DELAY_END_STEP) >= 1 &&
		    blocked_of(atomic_load(&worker_tid), &mask) &&
		    intr__fault_delaying(INTR_DELAY_END_STEP) >= 1 &&
		    intr__fault_delayed(INTR_DELAY_END_STEP) == pass)
			seen = true;
		r = b_join_within(t, NULL, BOUND_MS);
		if (r) {
			tap_ok(false, "join after the end step: %d", r);
			break;
		}
	}
	intr__fault_delay_arm(INTR_DELAY_END_STEP, 0);
	tap_ok(seen, "the worker's mask read while it waits in the end step");
	tap_ok(seen && (mask & bit) && (mask & others) == others,
	       "end step: the worker holds the tree lock with the interrupt "
	       "signal (%d) and every other blocked (SigBlk %016" PRIx64 ")",
	       signo, mask);
}
#endif

int main(void)
{
	struct intr_config cfg;
	int r;

	intr_config_default(&cfg);
	cfg.max_workers = 1;
	r = intr_configure(&cfg);
	if (r) {
		tap_ok(false, "intr_configure: %d", r);
		return tap_done();
	}
	one_worker_refuses_second();
	worker_idle_before_join();
#ifdef INTR_FAULT_INJECTION
	end_step_mask(cfg.signo);
#else
	tap_skip("the end step's mask: needs the fault injection hook's "
		 "delay (make check-fault)");
#endif
	return tap_done();
}
