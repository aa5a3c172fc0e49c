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
 * Then both kinds of body do 20 us of work ("processing a completion")
 * between checking for the cancel and waiting, and the cancel lands at a
 * random moment 0-50 us after the call starts, often inside that work.
 * liburing's own wait is then reached only by the library's re-send
 * (resend_us later), while intr_uring_wait_cqe() closes the gap.  The worst
 * case of each is shown.
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
#include <interruptible/uring.h>

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

static void spin_ns(uint64_t ns);

#define WORK_NS 20000	/* between the cancel check and the wait */

static void *racing_plain(intr_ctx *ctx, void *arg)
{
	struct round *r = arg;
	struct io_uring_cqe *cqe;

	while (!intr_cancelled(ctx)) {
		spin_ns(WORK_NS);
		if (io_uring_wait_cqe(r->ring, &cqe) == 0)
			io_uring_cqe_seen(r->ring, cqe);
	}
	return NULL;
}

static void *racing_wrapped(intr_ctx *ctx, void *arg)
{
	struct round *r = arg;
	struct io_uring_cqe *cqe;

	for (;;) {
		spin_ns(WORK_NS);
		if (intr_uring_wait_cqe(ctx, r->ring, &cqe))
			break;
		io_uring_cqe_seen(r->ring, cqe);
	}
	return NULL;
}

static void spin_ns(uint64_t ns)
{
	uint64_t end = now_ns() + ns;

	while (now_ns() < end)
		;
}

/* Cancel 0-50 us after the start; the worst cancel-to-return time. */
static uint64_t worst_racing(struct io_uring *ring, intr_fn body, int rounds)
{
	uint64_t worst = 0, seed = now_ns();
	int i;

	for (i = 0; i < rounds; i++) {
		struct round r = { .ring = ring };
		intr_token *tok;
		intr_task *task;
		uint64_t t, d;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		if (intr_token_new(&tok, NULL) ||
		    intr_spawn(&task, tok, body, &r))
			return UINT64_MAX;
		spin_ns((seed >> 33) % 50000);
		t = now_ns();
		intr_token_cancel(tok);
		intr_join(task, NULL);
		d = now_ns() - t;
		if (d > worst)
			worst = d;
		intr_token_free(tok);
	}
	return worst;
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
	struct intr_config cfg;
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

	intr_config_default(&cfg);
	printf("cancel landing 0-50 us into a body that works %d us between "
	       "its checks and waits, %d rounds, worst cancel-to-return:\n",
	       WORK_NS / 1000, rounds * 10);
	printf("  %-34s %8.1f us  (a missed signal waits for the re-send, "
	       "%u us)\n", "io_uring_wait_cqe (unmodified)",
	       worst_racing(&ring, racing_plain, rounds * 10) / 1e3,
	       cfg.resend_us);
	printf("  %-34s %8.1f us\n", "intr_uring_wait_cqe",
	       worst_racing(&ring, racing_wrapped, rounds * 10) / 1e3);
	io_uring_queue_exit(&ring);
	free(body);
	free(ret_lat);
	return 0;
}
