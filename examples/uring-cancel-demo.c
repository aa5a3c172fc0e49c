/* SPDX-License-Identifier: MIT */
/*
 * uring-cancel-demo: a thread blocked in liburing's own io_uring_wait_cqe()
 * is cancelled, and the time the cancel took is measured.
 *
 * Each round runs a body that waits for completions on a ring with the
 * unmodified io_uring_wait_cqe(), checking intr_cancelled() whenever the
 * wait returns.  Once the body is blocked, the main thread cancels the token
 * and measures the time until (a) the body is back in user space holding the
 * cancel and (b) run_interruptible() has returned in the caller, after the
 * body's finalizer ran.
 *
 * usage: uring-cancel-demo [rounds]      (default 200)
 */
#include <errno.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <interruptible.h>

struct round {
	struct io_uring *ring;
	atomic_int waiting;	/* the body is about to block */
	uint64_t t_cancel;	/* main: just before intr_token_cancel */
	uint64_t t_body;	/* body: back from the wait, cancel seen */
	int finalized;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void finalize(void *arg)
{
	struct round *r = arg;

	r->finalized = 1;
}

static void *poll_loop(intr_ctx *ctx, void *arg)
{
	struct round *r = arg;
	struct io_uring_cqe *cqe;

	intr_defer(ctx, finalize, r);
	while (!intr_cancelled(ctx)) {
		atomic_store(&r->waiting, 1);
		/* Unmodified liburing: returns -EINTR when interrupted. */
		if (io_uring_wait_cqe(r->ring, &cqe) == 0)
			io_uring_cqe_seen(r->ring, cqe);
	}
	r->t_body = now_ns();
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	printf("  %-34s min %6.1f  p50 %6.1f  p99 %6.1f  max %7.1f us\n", what,
	       v[0] / 1e3, v[n / 2] / 1e3, v[(n * 99) / 100] / 1e3,
	       v[n - 1] / 1e3);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 200;
	uint64_t *body, *ret_lat;
	struct io_uring ring;
	int i, ret;

	if (rounds < 1) {
		fprintf(stderr, "usage: %s [rounds]\n", argv[0]);
		return 2;
	}
	ret = io_uring_queue_init(8, &ring, 0);
	if (ret) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	body = calloc((size_t)rounds, sizeof(*body));
	ret_lat = calloc((size_t)rounds, sizeof(*ret_lat));
	if (!body || !ret_lat)
		return 1;

	printf("libinterruptible %s: cancelling a thread blocked in "
	       "io_uring_wait_cqe(), %d rounds\n", intr_version(), rounds);
	for (i = 0; i < rounds; i++) {
		struct round r = { .ring = &ring };
		struct timespec settle = { 0, 2000000 };
		intr_token *tok;
		intr_task *task;
		uint64_t t_ret;

		ret = intr_token_new(&tok, NULL);
		if (!ret)
			ret = intr_spawn(&task, tok, poll_loop, &r);
		if (ret) {
			fprintf(stderr, "start: %s\n", strerror(-ret));
			return 1;
		}
		while (!atomic_load(&r.waiting))
			;
		nanosleep(&settle, NULL);	/* let it block in the kernel */

		r.t_cancel = now_ns();
		intr_token_cancel(tok);
		ret = intr_join(task, NULL);
		t_ret = now_ns();
		if (ret != -ECANCELED || !r.finalized) {
			fprintf(stderr, "round %d: join returned %d, "
				"finalized %d\n", i, ret, r.finalized);
			return 1;
		}
		body[i] = r.t_body - r.t_cancel;
		ret_lat[i] = t_ret - r.t_cancel;
		intr_token_free(tok);
	}
	printf("cancel latency (from intr_token_cancel):\n");
	report("body back with the cancel", body, rounds);
	report("run returned, finalizer done", ret_lat, rounds);
	io_uring_queue_exit(&ring);
	free(body);
	free(ret_lat);
	return 0;
}
