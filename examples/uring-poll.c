/* SPDX-License-Identifier: MIT */
/*
 * uring-poll: the io_uring poll loop of a binding, stopped by Ctrl-C.
 *
 * A body owns a ring and loops on intr_uring_wait_cqe(), processing
 * completions (here: a timeout that re-arms itself every 50 ms, standing in
 * for real I/O).  No polling timeout: while it waits, the thread sleeps in
 * the kernel.  SIGINT's handler cancels the token; the wait returns
 * -ECANCELED at once, the body returns, its finalizer tears the ring down,
 * and the program prints how long the cancel took and exits 0.
 *
 * usage: uring-poll [--stop-after MS]
 *   --stop-after MS  send ourselves SIGINT after MS milliseconds
 *
 * Where io_uring is not permitted (a seccomp filter such as Docker's
 * default one, kernel.io_uring_disabled, a kernel without it) it says so in
 * one line and exits 77.
 */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>
#include <interruptible/uring.h>

static intr_token *tok;
/* Set by the first SIGINT.  The handler may run on the main thread or on
 * the worker (a body runs under the mask of the thread that submitted
 * it, SIGINT open here): lock-free atomics, safe in a handler. */
static _Atomic uint64_t t_cancel;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);	/* async-signal-safe */
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_sigint(int sig)
{
	uint64_t none = 0;

	(void)sig;
	atomic_compare_exchange_strong(&t_cancel, &none, now_ns());
	intr_token_cancel(tok);	/* async-signal-safe */
}

struct loop {
	struct io_uring ring;
	unsigned long completions;
	uint64_t t_back;	/* the body has the cancel in hand */
	int torn_down;
};

static void teardown(void *arg)
{
	struct loop *l = arg;

	io_uring_queue_exit(&l->ring);
	l->torn_down = 1;
}

static void arm_tick(struct io_uring *ring)
{
	static struct __kernel_timespec tick = { .tv_nsec = 50000000 };
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	io_uring_prep_timeout(sqe, &tick, 0, 0);
	io_uring_submit(ring);
}

static void *poll_loop(intr_ctx *ctx, void *arg)
{
	struct loop *l = arg;
	struct io_uring_cqe *cqe;
	int ret;

	ret = io_uring_queue_init(8, &l->ring, 0);
	if (ret) {
		if (ret != -EPERM && ret != -EACCES && ret != -ENOSYS)
			fprintf(stderr, "io_uring_queue_init: %s\n",
				strerror(-ret));
		return (void *)(long)ret;
	}
	intr_defer(ctx, teardown, l);
	printf("polling the ring; press Ctrl-C to stop\n");
	fflush(stdout);	/* the smoke test waits for this line */
	arm_tick(&l->ring);
	for (;;) {
		ret = intr_uring_wait_cqe(ctx, &l->ring, &cqe);
		if (ret == -ECANCELED || ret == -ETIMEDOUT)
			break;
		if (ret < 0) {
			fprintf(stderr, "wait: %s\n", strerror(-ret));
			return (void *)(long)ret;
		}
		l->completions++;	/* process the completion */
		io_uring_cqe_seen(&l->ring, cqe);
		arm_tick(&l->ring);
	}
	l->t_back = now_ns();
	return NULL;
}

static void *stopper(void *arg)
{
	struct timespec ts;
	long ms = (long)arg;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	nanosleep(&ts, NULL);
	kill(getpid(), SIGINT);
	return NULL;
}

int main(int argc, char **argv)
{
	struct loop l = { .completions = 0 };
	struct sigaction sa;
	sigset_t block;
	pthread_t th;
	uint64_t t_ret;
	void *res;
	int ret;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, NULL);
	ret = intr_token_new(&tok, NULL);
	if (ret) {
		fprintf(stderr, "intr_token_new: %s\n", strerror(-ret));
		return 1;
	}
	if (argc == 3 && !strcmp(argv[1], "--stop-after")) {
		/* The stopper blocks SIGINT: the main thread takes it. */
		sigemptyset(&block);
		sigaddset(&block, SIGINT);
		pthread_sigmask(SIG_BLOCK, &block, NULL);
		pthread_create(&th, NULL, stopper, (void *)atol(argv[2]));
		pthread_sigmask(SIG_UNBLOCK, &block, NULL);
		pthread_detach(th);
	} else if (argc != 1) {
		fprintf(stderr, "usage: %s [--stop-after MS]\n", argv[0]);
		return 2;
	}

	ret = run_interruptible(tok, poll_loop, &l, &res);
	t_ret = now_ns();
	if (res == (void *)(long)-EPERM || res == (void *)(long)-EACCES ||
	    res == (void *)(long)-ENOSYS) {
		printf("io_uring is not permitted here (io_uring_setup: %s): "
		       "nothing to poll\n", strerror(-(int)(long)res));
		intr_token_free(tok);
		return 77;
	}
	if (ret == -ECANCELED && !res && !l.t_back) {
		/* The SIGINT came before the body ran: no ring was made. */
		printf("stopped before the ring was set up\n");
		intr_token_free(tok);
		return 0;
	}
	if (ret != -ECANCELED || res || !l.torn_down) {
		fprintf(stderr, "unexpected end: %d\n", ret);
		return 1;
	}
	printf("stopped after %lu completions; ring torn down by the "
	       "finalizer\n", l.completions);
	printf("cancel latency: body back %.1f us, run_interruptible "
	       "returned %.1f us\n", (l.t_back - atomic_load(&t_cancel)) / 1e3,
	       (t_ret - atomic_load(&t_cancel)) / 1e3);
	intr_token_free(tok);
	return 0;
}
