/* SPDX-License-Identifier: MIT */
/*
 * Description: the README's plain idiom stops a body blocked in each raw
 * libc or kernel wait, with and without libinterruptible-libc.
 *
 * Every wait of tests/waits.h (data and sockets, poll and friends, sleeps,
 * children, signals, locks, message queues, semaphores, stdio's fgets,
 * liburing's io_uring_wait_cqe) runs in a body that retries EINTR unless
 * intr_cancelled() says the call is cancelled, blocks, and is cancelled:
 * the body must be back, its finalizer run once, nothing left open.
 *
 * Built twice: tests/raw-waits.tap without libinterruptible-libc (the
 * signal alone does it), tests/raw-waits-libc.tap linked with it (the
 * interposed functions fail with EINTR first: the idiom is unchanged);
 * tests/libc-preload.tap runs the first with LD_PRELOAD.  Two kinds are
 * stopped only with libinterruptible-libc: sigwait(), which glibc retries
 * after EINTR, and a ppoll() or sigsuspend() whose mask blocks every
 * signal, the interrupt signal included.
 */
#include "config.h"

#include "body.h"
#include "tap.h"
#include "waits.h"

#define BOUND_MS 5000

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif

static int finals;

struct run {
	const struct wait_case *w;
	struct wait_env env;
	atomic_int tid;
	long r;
	int err;
	bool stopped;
	uint64_t done_ns;
};

static void count_final(void *arg)
{
	(*(int *)arg)++;
}

/* The README's idiom. */
static void *idiom_body(intr_ctx *ctx, void *arg)
{
	struct run *ru = arg;

	intr_defer(ctx, count_final, &finals);
	atomic_store(&ru->tid, b_gettid());
	do {
		errno = 0;
		ru->r = ru->w->call(&ru->env);
		ru->err = errno;
	} while (ru->r < 0 && ru->err == EINTR && !intr_cancelled(ctx));
	ru->stopped = ru->r < 0 && intr_reason(ctx) != 0;
	ru->done_ns = h_now_ns();
	return NULL;
}

/* Whether poll() is a cancellation point here: a body that cancelled
 * itself gets EINTR from a poll() on nothing, which libc's own returns at
 * once with 0.  (Comparing addresses would not do: a sanitizer's
 * interceptor stands in for libc's too.) */
static void *probe_point(intr_ctx *ctx, void *arg)
{
	intr_token_cancel(intr_ctx_token(ctx));
	*(int *)arg = poll(NULL, 0, 0);
	intr_cancelled(ctx);
	return NULL;
}

static bool interposed(void)
{
	int r = 0;

	run_interruptible(NULL, probe_point, &r, NULL);
	return r == -1;
}

static void *nop_body(intr_ctx *ctx, void *arg)
{
	return NULL;
}

int main(void)
{
	bool libc = interposed();
	struct b_lat lat = { 0 };
	intr_token *warm;
	size_t i;

	tap_diag("libinterruptible-libc %s", libc ? "interposed" :
		 "not loaded");
#ifndef EXPECT_LIBC
#define EXPECT_LIBC 0
#endif
	/* ThreadSanitizer defines libc's names itself, ahead of a static
	 * libinterruptible-libc: which the link takes from which is the
	 * linker's business. */
	if ((EXPECT_LIBC || getenv("INTR_TEST_EXPECT_LIBC")) && UNDER_TSAN)
		tap_skip_all("ThreadSanitizer's interceptors take libc's "
			     "names");
	if (EXPECT_LIBC || getenv("INTR_TEST_EXPECT_LIBC"))
		tap_ok(libc, "libc's names resolve to libinterruptible-libc");
	/* The service threads and their timer, before any fd is counted. */
	if (intr_token_new(&warm, NULL) ||
	    run_interruptible(warm, nop_body, NULL, NULL))
		tap_skip_all("the library cannot start here");
	intr_token_free(warm);

	for (i = 0; i < N_WAIT_CASES; i++) {
		const struct wait_case *w = &wait_cases[i];
		struct run ru = { .w = w };
		intr_token *tok;
		intr_task *t;
		const char *why;
		uint64_t t0;
		int r, fds0;

		if ((w->restarts || w->masks) && !libc) {
			tap_skip("%s: the signal alone cannot stop it; "
				 "libinterruptible-libc does", w->name);
			continue;
		}
		fds0 = b_fds();
		why = w->setup(&ru.env);
		if (why) {
			tap_skip("%s: %s", w->name, why);
			continue;
		}
		finals = 0;
		if (intr_token_new(&tok, NULL) ||
		    intr_spawn(&t, tok, idiom_body, &ru)) {
			tap_ok(false, "%s: start", w->name);
			continue;
		}
		if (!b_wait_blocked(&ru.tid, BOUND_MS))
			tap_diag("%s: not seen blocked", w->name);
		t0 = h_now_ns();
		intr_token_cancel(tok);
		r = b_join_within(t, NULL, BOUND_MS);
		if (r == -ETIME) {
			tap_ok(false, "%s: still blocked %d ms after the "
			       "cancel", w->name, BOUND_MS);
			continue;	/* the body still uses ru */
		}
		w->teardown(&ru.env);
		b_lat_add(&lat, ru.done_ns - t0);
		tap_ok(r == -ECANCELED && ru.stopped && finals == 1 &&
		       b_fds() == fds0,
		       "%s: stopped by the plain idiom (%s, %.1f us, %d "
		       "finalizers, %d fds left)", w->name, strerror(ru.err),
		       (double)(ru.done_ns - t0) / 1000.0, finals,
		       b_fds() - fds0);
		intr_token_free(tok);
	}
	tap_diag("%zu waits: body back p50 %.1f us, p99 %.1f us after the "
		 "cancel", lat.n, (double)b_lat_q(&lat, 0.5) / 1000.0,
		 (double)b_lat_q(&lat, 0.99) / 1000.0);
	b_lat_free(&lat);
	return tap_done();
}
