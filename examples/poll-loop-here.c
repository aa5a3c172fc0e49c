/* SPDX-License-Identifier: MIT */
/*
 * poll-loop-here: the io_uring poll loop of a binding, on a thread the
 * application owns, stopped by a cancel from another thread.
 *
 * A runtime that owns its threads (a single-threaded dispatcher) wants
 * its poll job made interruptible where it runs, not moved to a worker.
 * The loop thread runs its loop in place (intr_run_here): it owns a ring
 * and waits in intr_uring_wait_cqe() for completions (a timeout that
 * re-arms itself every 20 ms, standing in for real I/O), with no polling
 * timeout.  After a few completions the main thread cancels the job's
 * token, as a scope cancels its job: the wait returns -ECANCELED at once,
 * the loop returns, and its finalizer tears the ring down, all on the
 * loop thread itself; the main thread joins it and exits 0.
 *
 * Where io_uring is not permitted (a seccomp filter such as Docker's
 * default one, kernel.io_uring_disabled, a kernel without it) it says so in
 * one line and exits 77.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>
#include <interruptible/uring.h>

struct job {
	intr_token *tok;
	struct io_uring ring;
	atomic_ulong completions;
	pid_t loop_tid;		/* the loop thread */
	pid_t body_tid;		/* where the body ran */
	pid_t fin_tid;		/* where the finalizer ran */
	atomic_int setup;	/* io_uring_queue_init's result (0 till then) */
	int ret;		/* intr_run_here's */
};

static pid_t tid_now(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static void teardown(void *arg)
{
	struct job *j = arg;

	io_uring_queue_exit(&j->ring);
	j->fin_tid = tid_now();
}

static void arm_tick(struct io_uring *ring)
{
	static struct __kernel_timespec tick = { .tv_nsec = 20000000 };
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	io_uring_prep_timeout(sqe, &tick, 0, 0);
	io_uring_submit(ring);
}

static void *poll_loop(intr_ctx *ctx, void *arg)
{
	struct job *j = arg;
	struct io_uring_cqe *cqe;
	int ret;

	j->body_tid = tid_now();
	intr_defer(ctx, teardown, j);
	arm_tick(&j->ring);
	for (;;) {
		ret = intr_uring_wait_cqe(ctx, &j->ring, &cqe);
		if (ret == -ECANCELED || ret == -ETIMEDOUT)
			return NULL;
		if (ret < 0)
			return (void *)(long)ret;
		atomic_fetch_add(&j->completions, 1);
		io_uring_cqe_seen(&j->ring, cqe);
		arm_tick(&j->ring);
	}
}

/* The application's own thread: its job runs here, interruptible. */
static void *loop_thread(void *arg)
{
	struct job *j = arg;
	void *res = NULL;
	int ret;

	j->loop_tid = tid_now();
	ret = io_uring_queue_init(8, &j->ring, 0);
	atomic_store(&j->setup, ret);
	if (ret)
		return NULL;
	j->ret = intr_run_here(j->tok, poll_loop, j, &res);
	if (res)
		fprintf(stderr, "wait: %s\n", strerror(-(int)(long)res));
	return NULL;
}

int main(void)
{
	struct timespec ms = { 0, 1000000 }, until;
	struct job j;
	pthread_t th;
	int i, ret;

	memset(&j, 0, sizeof(j));
	ret = intr_token_new(&j.tok, NULL);
	if (ret) {
		fprintf(stderr, "intr_token_new: %s\n", strerror(-ret));
		return 1;
	}
	if (pthread_create(&th, NULL, loop_thread, &j))
		return 1;
	/* Let it poll a little (bounded: 10 s). */
	for (i = 0; i < 10000 && atomic_load(&j.completions) < 3; i++) {
		if (atomic_load(&j.setup) < 0)
			break;
		nanosleep(&ms, NULL);
	}
	intr_token_cancel(j.tok);	/* the scope cancels its job */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	if (pthread_timedjoin_np(th, NULL, &until)) {
		fprintf(stderr, "the loop did not stop within 10 s\n");
		return 1;
	}
	intr_token_free(j.tok);
	if (j.setup == -EPERM || j.setup == -EACCES || j.setup == -ENOSYS) {
		printf("io_uring is not permitted here (io_uring_setup: %s): "
		       "nothing to poll\n", strerror(-j.setup));
		return 77;
	}
	if (j.setup) {
		fprintf(stderr, "io_uring_queue_init: %s\n",
			strerror(-j.setup));
		return 1;
	}
	if (j.ret != -ECANCELED || !j.fin_tid) {
		fprintf(stderr, "unexpected end: %d\n", j.ret);
		return 1;
	}
	printf("stopped after %lu completions\n", atomic_load(&j.completions));
	printf("body, finalizer on the loop thread: %s\n",
	       j.body_tid == j.loop_tid && j.fin_tid == j.loop_tid ?
	       "yes" : "no");
	return 0;
}
