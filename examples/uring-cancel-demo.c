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
 * (resend_us later), while intr_uring_wait_cqe() closes the gap.  For each,
 * the median and 99th percentile of the cancel-to-return time are shown,
 * and how many rounds took longer than resend_us: the cancels that only
 * the re-send delivered.  (A single worst case would be noise: a busy
 * machine can stall any round that long.)
 *
 * Where io_uring is not permitted (a seccomp filter such as Docker's
 * default one, kernel.io_uring_disabled, a kernel without it) it says so
 * in one line and exits 0: there is nothing to show.
 *
 * usage: uring-cancel-demo [rounds]      (default 200)
 */
#define _GNU_SOURCE 1	/* gettid */
#include <errno.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>
#include <interruptible/uring.h>

struct round {
	struct io_uring *ring;
	atomic_int waiting;	/* the body's thread, about to block */
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
		atomic_store(&r->waiting, (int)gettid());
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

/* Cancel 0-50 us after the start; each cancel-to-return time in v[]. */
static int racing(struct io_uring *ring, intr_fn body, uint64_t *v,
		  int rounds)
{
	uint64_t seed = now_ns();
	int i, ret;

	for (i = 0; i < rounds; i++) {
		struct round r = { .ring = ring };
		intr_token *tok;
		intr_task *task;
		uint64_t t;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		ret = intr_token_new(&tok, NULL);
		if (ret)
			return ret;
		ret = intr_spawn(&task, tok, body, &r);
		if (ret) {
			intr_token_free(tok);
			return ret;
		}
		spin_ns((seed >> 33) % 50000);
		t = now_ns();
		intr_token_cancel(tok);
		intr_join(task, NULL);
		v[i] = now_ns() - t;
		intr_token_free(tok);
	}
	return 0;
}

/* Whether thread tid of this process sleeps in the kernel (its state in
 * /proc/self/task/TID/stat is S or D). */
static int asleep(int tid)
{
	char path[64], buf[256], *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && (p[2] == 'S' || p[2] == 'D');
}

/* Wait, at most 10 s, until the body of r sleeps in its wait. */
static int wait_blocked(struct round *r)
{
	uint64_t end = now_ns() + 10000000000ull;
	struct timespec ts = { 0, 20000 };

	while (!atomic_load(&r->waiting) || !asleep(atomic_load(&r->waiting))) {
		if (now_ns() > end)
			return -1;
		nanosleep(&ts, NULL);
	}
	return 0;
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

/* p50, p99, and the rounds slower than the re-send interval. */
static void report_racing(const char *what, uint64_t *v, int n,
			  unsigned resend_us)
{
	int i, over = 0;

	qsort(v, (size_t)n, sizeof(*v), cmp);
	for (i = 0; i < n; i++)
		over += v[i] > (uint64_t)resend_us * 1000u;
	printf("  %-34s p50 %7.1f  p99 %7.1f us  over %u us: %4d of %d\n",
	       what, v[n / 2] / 1e3, v[(n * 99) / 100] / 1e3, resend_us, over,
	       n);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 200;
	uint64_t *body, *ret_lat, *plain, *wrapped;
	struct intr_config cfg;
	struct io_uring ring;
	int i, ret;

	if (rounds < 1) {
		fprintf(stderr, "usage: %s [rounds]\n", argv[0]);
		return 2;
	}
	ret = io_uring_queue_init(8, &ring, 0);
	if (ret == -EPERM || ret == -EACCES || ret == -ENOSYS) {
		printf("io_uring is not permitted here (io_uring_setup: %s): "
		       "nothing to show\n", strerror(-ret));
		return 0;
	}
	if (ret) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	body = calloc((size_t)rounds, sizeof(*body));
	ret_lat = calloc((size_t)rounds, sizeof(*ret_lat));
	plain = calloc((size_t)rounds * 10, sizeof(*plain));
	wrapped = calloc((size_t)rounds * 10, sizeof(*wrapped));
	if (!body || !ret_lat || !plain || !wrapped)
		return 1;

	printf("libinterruptible %s: cancelling a thread blocked in "
	       "io_uring_wait_cqe(), %d rounds\n", intr_version(), rounds);
	for (i = 0; i < rounds; i++) {
		struct round r = { .ring = &ring };
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
		if (wait_blocked(&r)) {
			fprintf(stderr, "round %d: the body never blocked\n", i);
			return 1;
		}

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
	ret = racing(&ring, racing_plain, plain, rounds * 10);
	if (!ret)
		ret = racing(&ring, racing_wrapped, wrapped, rounds * 10);
	if (ret) {
		fprintf(stderr, "start: %s\n", strerror(-ret));
		return 1;
	}
	printf("cancel landing 0-50 us into a body that works %d us between "
	       "its checks and waits, %d rounds each, cancel-to-return (a "
	       "missed signal waits for the re-send, resend_us %u):\n",
	       WORK_NS / 1000, rounds * 10, cfg.resend_us);
	report_racing("io_uring_wait_cqe (unmodified)", plain, rounds * 10,
		      cfg.resend_us);
	report_racing("intr_uring_wait_cqe", wrapped, rounds * 10,
		      cfg.resend_us);
	io_uring_queue_exit(&ring);
	free(body);
	free(ret_lat);
	free(plain);
	free(wrapped);
	return 0;
}
