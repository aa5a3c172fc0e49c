/* SPDX-License-Identifier: MIT */
/*
 * io_uring suite: intr_uring_wait_cqe, intr_uring_wait_cqes and
 * intr_uring_submit_and_wait.
 *
 * The race test runs many iterations with the cancel landing before the
 * wait (token cancelled, or deadline passed, before intr_spawn), right
 * after intr_spawn, a random 0-50 us after it, and after the body finished
 * by itself (a "stop" NOP completed), or was released and then cancelled
 * 0-50 us later.  The body loops on the wrapper only while it returns a CQE
 * and never asks intr_cancelled(): the reason must come from the wrapper.
 * Half the iterations also submit "data" NOPs around the cancel; every NOP
 * submitted is accounted for (seen by a body or drained by the test), so a
 * CQE swallowed by a cancel shows.  In half the iterations the body spins a
 * random 0-50 us before the wait, so that the first interrupt signal is
 * handled before io_uring_enter(); resend_us is 1 s: the signal mask given
 * to io_uring_enter() must catch it, and no call may take 500 ms (unless
 * stall canaries show that the machine stalled the test's threads then).
 *
 * Also: a CQE already in the ring is returned even when cancelled, and the
 * next wait reports the cancel; wait_cqes with a timeout; submit_and_wait
 * cancelled before, during and not at all (the number submitted whenever
 * it submitted anything, and then the reason from the next wait; the
 * reason only when nothing was submitted); SIGPROF at 1 kHz, also during
 * waits with a timeout, which must still time out; -EINVAL off the worker.
 *
 * With two CPUs or more the test thread is pinned to one CPU and the
 * bodies to another.  INTR_TEST_SEED=<n> repeats a run's cancel schedule.
 */
#include "config.h"

#ifdef HAVE_LIBURING

#include "race.h"
#include "uring-permitted.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>

#include <interruptible/uring.h>

#define RACE_ITERS	20000		/* intr_uring_wait_cqe */
#define TS_ITERS	3000		/* intr_uring_wait_cqes with a timeout */
#define ND_ITERS	600		/* CQEs present when cancelled */
#define SW_ITERS	1500		/* intr_uring_submit_and_wait */
#define LONG_TS_S	10		/* a timeout only a cancel cuts short */
#define PROF_RUN_NS	2000000000ull	/* SIGPROF test: about 2 s of calls */
#define PROF_DELAY_NS	3000000ull	/* data 3 ms after spawn */
#define TEST_TIMEOUT	120		/* seconds, per test */

#define UD_DATA		((uint64_t)0xda7a)
#define UD_STOP		((uint64_t)0x5709)
#define UD_READ		((uint64_t)0x4ead)

/* The waits are race-free through io_uring_enter()'s signal mask, on every
 * architecture: no re-send is needed. */
#define RESEND_US	1000000

/* -------------------------------------------------- the race machinery */

/* One iteration; the body's argument. */
struct race_iter {
	RACE_ITER_COMMON;
	/* ---- */
	bool with_data;		/* data NOPs around the cancel */
	bool short_ts;		/* wait_cqes: a timeout that ends the body */
	struct __kernel_timespec ts;
	bool use_ts;
	int data_seen;
	int stop_seen;
	int other_seen;
};

#include "race-run.h"

/* ------------------------------------------------------ ring helpers */

static struct io_uring g_ring;

static void ring_init(void)
{
	int ret = io_uring_queue_init(8, &g_ring, 0);

	ck_assert_msg(ret == 0, "io_uring_queue_init: %s", strerror(-ret));
}

static void submit_nop(uint64_t ud)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&g_ring);

	ck_assert_ptr_nonnull(sqe);
	io_uring_prep_nop(sqe);
	sqe->user_data = ud;
	ck_assert_int_eq(io_uring_submit(&g_ring), 1);
}

/* Prepare (not submit) a one-byte read of fd. */
static void prep_read(int fd, char *buf)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&g_ring);

	ck_assert_ptr_nonnull(sqe);
	io_uring_prep_read(sqe, fd, buf, 1, 0);
	sqe->user_data = UD_READ;
}

/* Wait, bounded, until the kernel has consumed every prepared SQE. */
static void wait_sq_empty(void)
{
	uint64_t end = h_now_ns() + (uint64_t)WAIT_MS * 1000000u;

	while (io_uring_sq_ready(&g_ring) != 0) {
		ck_assert_msg((int64_t)(end - h_now_ns()) > 0,
			      "SQE not consumed within %d ms", WAIT_MS);
		sleep_ns(2000);
	}
}

/* Wait, bounded, until n CQEs are in the ring. */
static void wait_cq_ready(unsigned n)
{
	uint64_t end = h_now_ns() + (uint64_t)WAIT_MS * 1000000u;

	while (io_uring_cq_ready(&g_ring) < n) {
		ck_assert_msg((int64_t)(end - h_now_ns()) > 0,
			      "%u CQEs not there within %d ms", n, WAIT_MS);
		sleep_ns(2000);
	}
}

/* Take one CQE, waiting for it (bounded). */
static void reap_one(uint64_t *ud, int *res)
{
	struct __kernel_timespec ts = { .tv_sec = WAIT_MS / 1000 };
	struct io_uring_cqe *cqe;
	int ret = io_uring_wait_cqe_timeout(&g_ring, &cqe, &ts);

	ck_assert_msg(ret == 0, "no CQE within %d ms: %d", WAIT_MS, ret);
	*ud = cqe->user_data;
	*res = cqe->res;
	io_uring_cqe_seen(&g_ring, cqe);
}

/* ---------------------------------- 1. intr_uring_wait_cqe: the race */

struct nop_count {
	long data_submitted;
	long stop_submitted;
	long data_seen;		/* by bodies */
	long stop_seen;
	long data_drained;	/* by the test, between iterations */
	long stop_drained;
	long other;
	long etime;		/* wait_cqes timeouts that ended a body */
};

static struct nop_count g_nc;

static void classify(uint64_t ud)
{
	if (ud == UD_DATA)
		g_nc.data_drained++;
	else if (ud == UD_STOP)
		g_nc.stop_drained++;
	else
		g_nc.other++;
}

/* Reap what no body took (no body is running on the ring now). */
static void drain_ring(void)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&g_ring, &cqe) == 0) {
		classify(cqe->user_data);
		io_uring_cqe_seen(&g_ring, cqe);
	}
}

static void drain_ring_final(void)
{
	uint64_t end = h_now_ns() + (uint64_t)WAIT_MS * 1000000u;

	drain_ring();
	while (g_nc.data_seen + g_nc.data_drained < g_nc.data_submitted ||
	       g_nc.stop_seen + g_nc.stop_drained < g_nc.stop_submitted) {
		struct __kernel_timespec ts = { .tv_nsec = 10000000 };
		struct io_uring_cqe *cqe;

		if ((int64_t)(end - h_now_ns()) <= 0)
			break;
		if (io_uring_wait_cqe_timeout(&g_ring, &cqe, &ts) == 0) {
			classify(cqe->user_data);
			io_uring_cqe_seen(&g_ring, cqe);
		}
	}
}

static void *wait_body(intr_ctx *ctx, void *p)
{
	struct race_iter *it = p;
	struct call *a = &it->a;

	body_enter(a);
	for (;;) {
		struct io_uring_cqe *cqe = NULL;
		uint64_t ud;
		int n;

		if (it->use_ts)
			n = intr_uring_wait_cqes(ctx, &g_ring, &cqe, 1, &it->ts);
		else
			n = intr_uring_wait_cqe(ctx, &g_ring, &cqe);
		body_note(a, n);
		if (n == 0) {
			if (!cqe) {
				body_fail(a, "wait returned 0 without a CQE", 0);
				break;
			}
			ud = cqe->user_data;
			io_uring_cqe_seen(&g_ring, cqe);
			if (ud == UD_STOP) {
				it->stop_seen++;
				a->done = true;
				break;
			}
			if (ud == UD_DATA)
				it->data_seen++;
			else
				it->other_seen++;
			continue;
		}
		if (n == -ETIME && it->short_ts) {
			a->done = true;
			break;
		}
		if (!is_reason(n))
			body_fail(a, it->use_ts ? "intr_uring_wait_cqes" :
				  "intr_uring_wait_cqe", n);
		break;
	}
	a->t_ret = h_now_ns();
	return it;
}

static void maybe_nop(struct race_iter *it)
{
	if (!it->with_data || h_rng_below(it->r, 2))
		return;
	submit_nop(UD_DATA);
	g_nc.data_submitted++;
}

static void wait_prepare(struct race_iter *it)
{
	it->with_data = h_rng_below(it->r, 2);
	maybe_nop(it);
}

/* wait_cqes: a 10 s timeout, or (released iterations, half the time) a
 * 0-50 us one that ends the body by itself with -ETIME. */
static void ts_prepare(struct race_iter *it)
{
	it->use_ts = true;
	it->ts.tv_sec = LONG_TS_S;
	if ((it->w == W_AFTER || it->w == W_AFTER_RACE) &&
	    h_rng_below(it->r, 2)) {
		it->short_ts = true;
		it->ts.tv_sec = 0;
		it->ts.tv_nsec = (long long)h_rng_below(it->r, MAX_SPIN_NS + 1);
	} else {
		it->with_data = h_rng_below(it->r, 2);
		maybe_nop(it);
	}
}

static void wait_spawned(struct race_iter *it)
{
	maybe_nop(it);
}

static void wait_release(struct race_iter *it)
{
	if (it->short_ts)
		return;		/* the timeout ends it */
	submit_nop(UD_STOP);
	g_nc.stop_submitted++;
}

static void wait_check(struct race_iter *it, struct tally *t, long i, int ret)
{
	(void)ret;
	g_nc.data_seen += it->data_seen;
	g_nc.stop_seen += it->stop_seen;
	g_nc.other += it->other_seen;
	if (it->short_ts && it->a.done)
		g_nc.etime++;
	if (it->other_seen)
		bad(t, i, it->w, "%d unknown CQEs", it->other_seen);
	drain_ring();
}

static void wait_init(void)
{
	memset(&g_nc, 0, sizeof(g_nc));
	ring_init();
}

static void wait_fini(void)
{
	drain_ring_final();
	io_uring_queue_exit(&g_ring);
	printf("NOPs: data %ld submitted, %ld seen by bodies, %ld drained; "
	       "stop %ld submitted, %ld seen, %ld drained; %ld unknown; "
	       "%ld bodies ended by -ETIME\n",
	       g_nc.data_submitted, g_nc.data_seen, g_nc.data_drained,
	       g_nc.stop_submitted, g_nc.stop_seen, g_nc.stop_drained,
	       g_nc.other, g_nc.etime);
	fflush(stdout);
	ck_assert_msg(g_nc.data_seen + g_nc.data_drained == g_nc.data_submitted,
		      "data CQEs: %ld seen + %ld drained != %ld submitted",
		      g_nc.data_seen, g_nc.data_drained, g_nc.data_submitted);
	ck_assert_msg(g_nc.stop_seen + g_nc.stop_drained == g_nc.stop_submitted,
		      "stop CQEs: %ld seen + %ld drained != %ld submitted",
		      g_nc.stop_seen, g_nc.stop_drained, g_nc.stop_submitted);
	ck_assert_int_eq(g_nc.other, 0);
}

static const struct race_case case_wait_cqe = {
	.name = "race_uring_wait_cqe",
	.iters = RACE_ITERS,
	.release = true,
	.finishes = true,
	.body = wait_body,
	.test_init = wait_init,
	.prepare = wait_prepare,
	.spawned = wait_spawned,
	.release_fn = wait_release,
	.pre_cancel = maybe_nop,
	.check = wait_check,
	.test_fini = wait_fini,
};

static const struct race_case case_wait_cqes_ts = {
	.name = "race_uring_wait_cqes_timeout",
	.iters = TS_ITERS,
	.release = true,
	.finishes = true,
	.body = wait_body,
	.test_init = wait_init,
	.prepare = ts_prepare,
	.spawned = wait_spawned,
	.release_fn = wait_release,
	.pre_cancel = maybe_nop,
	.check = wait_check,
	.test_fini = wait_fini,
};

START_TEST(race_uring_wait_cqe)
{
	host_set(_i);
	run_race(&case_wait_cqe, true);
}
END_TEST

START_TEST(race_uring_wait_cqes_timeout)
{
	host_set(_i);
	run_race(&case_wait_cqes_ts, true);
}
END_TEST

/* ------------------------ 2. a CQE already there is never dropped */

#define ND_MAX	4

struct nd {
	atomic_int started;
	atomic_int go;
	int n;			/* CQEs waiting when the body starts */
	bool use_ts;
	int reason;
	int ret[ND_MAX + 1];
	uint64_t ud[ND_MAX + 1];
	int calls;
	int err;
	bool ran;
};

static void *nd_body(intr_ctx *ctx, void *p)
{
	struct nd *d = p;
	int k;

	d->ran = true;
	body_pin();
	atomic_store(&d->started, 1);
	if (!h_wait_atomic(&d->go, 1, WAIT_MS))
		return d;
	/* cancelled by now, and not acknowledged: the CQEs come first */
	for (k = 0; k <= d->n; k++) {
		struct __kernel_timespec ts = { .tv_sec = LONG_TS_S };
		struct io_uring_cqe *cqe = NULL;

		errno = MAGIC_ERRNO;
		if (d->use_ts)
			d->ret[k] = intr_uring_wait_cqes(ctx, &g_ring, &cqe, 1,
							 &ts);
		else
			d->ret[k] = intr_uring_wait_cqe(ctx, &g_ring, &cqe);
		d->calls++;
		if (errno != MAGIC_ERRNO)
			d->err = errno;
		if (d->ret[k] != 0)
			break;
		d->ud[k] = cqe ? cqe->user_data : 0;
		if (cqe)
			io_uring_cqe_seen(&g_ring, cqe);
	}
	return d;
}

START_TEST(uring_cqe_not_dropped)
{
	long returned = 0;
	struct h_rng r;
	int i, k;

	h_rng_seed(&r, "uring_cqe_not_dropped");
	pin_setup();
	configure(0, RESEND_US);
	ring_init();
	for (i = 0; i < h_scale(ND_ITERS); i++) {
		enum how how = (enum how)h_rng_below(&r, 3);
		struct nd d;
		intr_token *tok;
		intr_task *task;
		void *res = NULL;
		int ret;

		memset(&d, 0, sizeof(d));
		d.n = 1 + (int)h_rng_below(&r, ND_MAX);
		d.use_ts = h_rng_below(&r, 2);
		d.reason = how == HOW_DEADLINE ? -ETIMEDOUT : -ECANCELED;
		for (k = 0; k < d.n; k++)
			submit_nop(UD_DATA + (uint64_t)k);
		wait_cq_ready((unsigned)d.n);

		ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
		ck_assert_int_eq(intr_spawn(&task, tok, nd_body, &d), 0);
		ck_assert(h_wait_atomic(&d.started, 1, WAIT_MS));
		if (how == HOW_DEADLINE) {
			ck_assert_int_eq(intr_token_cancel_after(tok, 1000), 0);
			wait_reason(tok, -ETIMEDOUT);
		} else {
			do_cancel(tok, task, how);
		}
		atomic_store(&d.go, 1);
		ret = h_join_within(task, &res, WAIT_MS);
		ck_assert_msg(ret == d.reason, "iteration %d: returned %d, "
			      "expected %d", i, ret, d.reason);
		ck_assert_ptr_eq(res, &d);
		ck_assert(d.ran);
		for (k = 0; k < d.n; k++) {
			ck_assert_msg(d.ret[k] == 0 &&
				      d.ud[k] == UD_DATA + (uint64_t)k,
				      "iteration %d (%s, cancelled, %d CQEs "
				      "waiting): call %d returned %d with CQE "
				      "%#" PRIx64 ", expected 0 with %#" PRIx64
				      " (a CQE dropped for the cancel)", i,
				      d.use_ts ? "wait_cqes" : "wait_cqe", d.n,
				      k, d.ret[k], d.ud[k],
				      UD_DATA + (uint64_t)k);
			returned++;
		}
		ck_assert_msg(d.calls == d.n + 1 && d.ret[d.n] == d.reason,
			      "iteration %d: after the %d CQEs the wait "
			      "returned %d, expected the reason %d", i, d.n,
			      d.ret[d.n], d.reason);
		ck_assert_msg(d.err == 0, "a wait changed errno to %d", d.err);
		ck_assert_int_eq(io_uring_cq_ready(&g_ring), 0);
		ck_assert_int_eq(intr_token_free(tok), 0);
	}
	io_uring_queue_exit(&g_ring);
	printf("uring_cqe_not_dropped: %ld cancelled calls returned all %ld "
	       "waiting CQEs, then the reason\n", h_scale(ND_ITERS), returned);
	fflush(stdout);
}
END_TEST

/* Not cancelled: wait_cqes times out with -ETIME after the timeout, or
 * returns a CQE that is there at once. */
struct tsb {
	bool with_cqe;
	int etime_ret[5];
	uint64_t etime_ns[5];
	int zero_ret;
	int ready_ret;
	uint64_t ready_ud;
};

static void *tsb_body(intr_ctx *ctx, void *p)
{
	struct tsb *b = p;
	struct io_uring_cqe *cqe = NULL;
	int k;

	if (b->with_cqe) {
		struct __kernel_timespec ts = { .tv_sec = LONG_TS_S };

		b->ready_ret = intr_uring_wait_cqes(ctx, &g_ring, &cqe, 1, &ts);
		if (b->ready_ret == 0 && cqe) {
			b->ready_ud = cqe->user_data;
			io_uring_cqe_seen(&g_ring, cqe);
		}
		return b;
	}
	for (k = 0; k < 5; k++) {
		struct __kernel_timespec ts = { .tv_nsec = 20000000 };
		uint64_t t0 = h_now_ns();

		b->etime_ret[k] = intr_uring_wait_cqes(ctx, &g_ring, &cqe, 1,
						       &ts);
		b->etime_ns[k] = h_now_ns() - t0;
	}
	{
		struct __kernel_timespec ts = { .tv_sec = 0 };

		b->zero_ret = intr_uring_wait_cqes(ctx, &g_ring, &cqe, 1, &ts);
	}
	return b;
}

START_TEST(uring_wait_cqes_timeout_basic)
{
	struct tsb b;
	intr_token *tok;
	void *res = NULL;
	int k;

	configure(0, RESEND_US);
	ring_init();
	memset(&b, 0, sizeof(b));
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	ck_assert_int_eq(run_interruptible(tok, tsb_body, &b, &res), 0);
	ck_assert_ptr_eq(res, &b);
	for (k = 0; k < 5; k++) {
		ck_assert_msg(b.etime_ret[k] == -ETIME, "wait_cqes(20 ms), no "
			      "CQE: returned %d", b.etime_ret[k]);
		ck_assert_msg(b.etime_ns[k] >= 20000000, "wait_cqes(20 ms) "
			      "timed out after %" PRIu64 " us",
			      b.etime_ns[k] / 1000);
	}
	ck_assert_int_eq(b.zero_ret, -ETIME);

	/* with a CQE waiting */
	submit_nop(UD_DATA);
	wait_cq_ready(1);
	memset(&b, 0, sizeof(b));
	b.with_cqe = true;
	ck_assert_int_eq(run_interruptible(tok, tsb_body, &b, &res), 0);
	ck_assert_int_eq(b.ready_ret, 0);
	ck_assert(b.ready_ud == UD_DATA);
	ck_assert_int_eq(io_uring_cq_ready(&g_ring), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
	io_uring_queue_exit(&g_ring);
}
END_TEST

/* ------------------------------ 3. intr_uring_submit_and_wait */

enum sw_mode {
	SW_DURING,	/* cancelled once the SQE is consumed */
	SW_RACE,	/* cancelled 0-50 us after spawn */
	SW_BEFORE,	/* cancelled before the body calls the wrapper */
	SW_NOCANCEL,	/* data written once the SQE is consumed */
	SW_DATA_FIRST,	/* data there before the call */
	SW_NR
};

static const char *const sw_name[SW_NR] = {
	"cancelled during the wait", "cancelled 0-50 us after spawn",
	"cancelled before the call", "not cancelled, data later",
	"not cancelled, data first",
};

struct sw {
	enum sw_mode mode;
	atomic_int started;
	atomic_int go;
	bool ran;
	int ret;
	int err;		/* errno after the call (set to a sentinel) */
	unsigned sq_after;	/* io_uring_sq_ready() after the call */
	int peek;
	int cqe_res;
	uint64_t cqe_ud;
	int next;		/* the wait after it, when no CQE was there */
};

static char g_rbuf[16];

static void *sw_body(intr_ctx *ctx, void *p)
{
	struct sw *s = p;
	struct io_uring_cqe *cqe;

	s->ran = true;
	body_pin();
	atomic_store(&s->started, 1);
	if (s->mode == SW_BEFORE && !h_wait_atomic(&s->go, 1, WAIT_MS))
		return s;
	errno = MAGIC_ERRNO;
	s->ret = intr_uring_submit_and_wait(ctx, &g_ring, 1);
	s->err = errno;
	s->sq_after = io_uring_sq_ready(&g_ring);
	s->peek = -1;
	s->next = 1;
	if (s->ret == 1) {
		s->peek = io_uring_peek_cqe(&g_ring, &cqe);
		if (s->peek == 0) {
			s->cqe_res = cqe->res;
			s->cqe_ud = cqe->user_data;
			io_uring_cqe_seen(&g_ring, cqe);
		} else {
			/* Submitted, and the wait cut short by the cancel:
			 * the next wait reports it. */
			s->next = intr_uring_wait_cqe(ctx, &g_ring, &cqe);
		}
	}
	return s;
}

START_TEST(uring_submit_and_wait)
{
	long n[SW_NR] = { 0 }, race_submitted = 0, race_not = 0, deadlines = 0;
	long slow = 0, skipped = 0, unexcused;
	struct slow_log slows;
	struct h_rng r;
	int i;

	memset(&slows, 0, sizeof(slows));
	h_rng_seed(&r, "uring_submit_and_wait");
	pin_setup();
	configure(0, RESEND_US);
	canaries_start();
	ring_init();
	for (i = 0; i < h_scale(SW_ITERS); i++) {
		enum sw_mode mode = (enum sw_mode)h_rng_below(&r, SW_NR);
		uint64_t spin = h_rng_below(&r, MAX_SPIN_NS + 1), t0, ud;
		enum how how = HOW_TOKEN;
		int fds[2], ret, reason, cres;
		struct io_uring_cqe *cqe;
		struct sw s;
		intr_token *tok;
		intr_task *task;
		void *res = NULL;
		unsigned sq;

		if (mode <= SW_BEFORE)
			how = (enum how)h_rng_below(&r, 3);
		reason = how == HOW_DEADLINE ? -ETIMEDOUT : -ECANCELED;
		memset(&s, 0, sizeof(s));
		s.mode = mode;
		h_make_pipe(fds);
		g_rbuf[0] = 0;
		prep_read(fds[0], g_rbuf);
		ck_assert_int_eq(io_uring_sq_ready(&g_ring), 1);
		if (mode == SW_DATA_FIRST)
			write_char(fds[1], 'p');
		ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
		if (how == HOW_DEADLINE && mode == SW_RACE)
			ck_assert_int_eq(intr_token_cancel_after(tok, spin + 1),
					 0);
		t0 = h_now_ns();
		ck_assert_int_eq(intr_spawn(&task, tok, sw_body, &s), 0);
		switch (mode) {
		case SW_DURING:
			wait_sq_empty();
			h_spin_ns(spin);
			if (how == HOW_DEADLINE)
				ck_assert_int_eq(intr_token_cancel_after(tok, 1),
						 0);
			else
				do_cancel(tok, task, how);
			break;
		case SW_RACE:
			if (how == HOW_DEADLINE)
				break;
			h_spin_ns(spin);
			do_cancel(tok, task, how);
			break;
		case SW_BEFORE:
			ck_assert(h_wait_atomic(&s.started, 1, WAIT_MS));
			if (how == HOW_DEADLINE) {
				ck_assert_int_eq(intr_token_cancel_after(tok, 1),
						 0);
				wait_reason(tok, -ETIMEDOUT);
			} else {
				do_cancel(tok, task, how);
			}
			atomic_store(&s.go, 1);
			break;
		case SW_NOCANCEL:
			wait_sq_empty();
			sleep_ns(h_rng_below(&r, 200000));
			write_char(fds[1], 'p');
			break;
		default:
			break;
		}
		ret = h_join_within(task, &res, WAIT_MS);
		if (h_now_ns() - t0 > SLOW_NS) {
			slow_add(&slows, i, t0, h_now_ns());
			slow++;
		}
		n[mode]++;
		deadlines += how == HOW_DEADLINE;
		ck_assert_msg(!s.ran || s.err == MAGIC_ERRNO,
			      "intr_uring_submit_and_wait changed errno to %d",
			      s.err);
		sq = io_uring_sq_ready(&g_ring);
		ck_assert_ptr_eq(res, s.ran ? &s : NULL);
		if (!s.ran) {
			/* only a cancel right after spawn may beat the body */
			ck_assert_msg(mode == SW_RACE && ret == reason &&
				      sq == 1, "iteration %d (%s): body did not "
				      "run, call returned %d, %u SQEs ready",
				      i, sw_name[mode], ret, sq);
			s.ret = reason;
			s.sq_after = sq;
			skipped++;
		}

		if (mode == SW_NOCANCEL || mode == SW_DATA_FIRST) {
			ck_assert_msg(ret == 0 && s.ret == 1,
				      "iteration %d (%s): call returned %d, "
				      "submit_and_wait %d (expected 1)", i,
				      sw_name[mode], ret, s.ret);
			ck_assert_msg(s.peek == 0 && s.cqe_ud == UD_READ &&
				      s.cqe_res == 1,
				      "iteration %d (%s): CQE not there after "
				      "submit_and_wait returned: peek %d, ud "
				      "%#" PRIx64 ", res %d", i, sw_name[mode],
				      s.peek, s.cqe_ud, s.cqe_res);
			ck_assert_int_eq(sq, 0);
			ck_assert_int_eq(g_rbuf[0], 'p');
		} else {
			/* The count once anything was submitted (the SQE is
			 * in flight; the next wait reports the cancel), the
			 * reason only when nothing was. */
			ck_assert_msg(ret == reason, "iteration %d (%s): call "
				      "returned %d, expected the reason %d", i,
				      sw_name[mode], ret, reason);
			ck_assert_msg(sq == 1 ? s.ret == reason :
				      s.ret == 1 && s.peek == -EAGAIN &&
				      s.next == reason,
				      "iteration %d (%s): %s, but "
				      "submit_and_wait returned %d (then a CQE "
				      "%d, the next wait %d), expected %s",
				      i, sw_name[mode], sq == 1 ? "nothing "
				      "submitted" : "the SQE submitted", s.ret,
				      s.peek, s.next, sq == 1 ? "the reason" :
				      "1, no CQE, then the reason");
			ck_assert_int_eq(s.sq_after, sq);
			if (mode == SW_BEFORE)
				ck_assert_msg(sq == 1, "iteration %d: cancelled "
					      "before the call, but the SQE "
					      "was submitted", i);
			if (mode == SW_DURING)
				ck_assert_int_eq(sq, 0);
			if (sq == 1) {
				race_not += mode == SW_RACE;
				ck_assert_int_eq(io_uring_submit(&g_ring), 1);
			} else {
				race_submitted += mode == SW_RACE;
				ck_assert_int_eq(sq, 0);
			}
			/* the SQE is in the kernel now: its CQE comes with
			 * the data, and nothing else is there */
			ck_assert_int_eq(io_uring_peek_cqe(&g_ring, &cqe),
					 -EAGAIN);
			write_char(fds[1], 'p');
			reap_one(&ud, &cres);
			ck_assert_msg(ud == UD_READ && cres == 1,
				      "iteration %d (%s): CQE %#" PRIx64
				      " res %d", i, sw_name[mode], ud, cres);
			ck_assert_int_eq(g_rbuf[0], 'p');
		}
		ck_assert_int_eq(io_uring_peek_cqe(&g_ring, &cqe), -EAGAIN);
		ck_assert_int_eq(pipe_avail(fds[0]), 0);
		ck_assert_int_eq(intr_token_free(tok), 0);
		h_close_pipe(fds);
	}
	io_uring_queue_exit(&g_ring);
	unexcused = slow_judge("uring_submit_and_wait", &slows);
	printf("uring_submit_and_wait:");
	for (i = 0; i < SW_NR; i++)
		printf(" [%s: %ld]", sw_name[i], n[i]);
	printf(" racing cancels: %ld submitted, %ld not (%ld before the "
	       "body ran); deadlines %ld; calls > 500 ms %ld\n",
	       race_submitted, race_not, skipped, deadlines, slow);
	fflush(stdout);
	ck_assert_msg(unexcused == 0, "%ld calls took more than 500 ms, %ld "
		      "without a machine stall to explain it", slow, unexcused);
}
END_TEST

/* ------------------------ 4. SIGPROF at 1 kHz: no EINTR escapes */

static atomic_long g_prof_total, g_prof_body;
static __thread volatile sig_atomic_t t_in_body;

static void on_sigprof(int sig)
{
	(void)sig;
	atomic_fetch_add(&g_prof_total, 1);
	if (t_in_body)
		atomic_fetch_add(&g_prof_body, 1);
}

struct prof_call {
	bool submit;		/* submit_and_wait, else wait_cqe */
	int ret;
	int timer_err;
	int peek;
	int cqe_res;
	uint64_t cqe_ud;
};

static void *prof_body(intr_ctx *ctx, void *p)
{
	struct prof_call *pc = p;
	struct io_uring_cqe *cqe = NULL;
	sigset_t set;
	timer_t tm;

	pc->timer_err = prof_timer_start(&tm);
	if (pc->timer_err)
		return pc;
	sigemptyset(&set);
	sigaddset(&set, SIGPROF);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	t_in_body = 1;
	if (pc->submit) {
		pc->ret = intr_uring_submit_and_wait(ctx, &g_ring, 1);
		pc->peek = io_uring_peek_cqe(&g_ring, &cqe);
	} else {
		pc->ret = intr_uring_wait_cqe(ctx, &g_ring, &cqe);
		pc->peek = pc->ret;
	}
	if (pc->peek == 0 && cqe) {
		pc->cqe_res = cqe->res;
		pc->cqe_ud = cqe->user_data;
		io_uring_cqe_seen(&g_ring, cqe);
	}
	t_in_body = 0;
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	timer_delete(tm);
	return pc;
}

START_TEST(uring_sigprof)
{
	long calls[2] = { 0 }, eintr = 0, reasons = 0;
	struct sigaction sa;
	intr_token *tok;
	sigset_t set;
	uint64_t end;
	int k;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigprof;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART */
	ck_assert_int_eq(sigaction(SIGPROF, &sa, NULL), 0);
	sigemptyset(&set);
	sigaddset(&set, SIGPROF);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
	configure(0, RESEND_US);
	ring_init();
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);

	end = h_now_ns() + PROF_RUN_NS;
	for (k = 0; (int64_t)(end - h_now_ns()) > 0; k++) {
		struct prof_call pc;
		intr_task *task;
		void *res = NULL;
		int fds[2], ret;

		memset(&pc, 0, sizeof(pc));
		pc.submit = k & 1;
		h_make_pipe(fds);
		g_rbuf[0] = 0;
		prep_read(fds[0], g_rbuf);
		if (!pc.submit)
			ck_assert_int_eq(io_uring_submit(&g_ring), 1);
		ck_assert_int_eq(intr_spawn(&task, tok, prof_body, &pc), 0);
		sleep_ns(PROF_DELAY_NS);
		write_char(fds[1], 'p');
		ret = join_bounded(task, &res, k, pc.submit ?
				   "submit_and_wait under SIGPROF" :
				   "wait_cqe under SIGPROF");
		ck_assert_msg(ret == 0, "uncancelled call returned %d", ret);
		ck_assert_int_eq(pc.timer_err, 0);
		calls[pc.submit]++;
		eintr += pc.ret == -EINTR;
		reasons += is_reason(pc.ret);
		ck_assert_msg(pc.ret == (pc.submit ? 1 : 0),
			      "%s returned %d", pc.submit ?
			      "intr_uring_submit_and_wait" :
			      "intr_uring_wait_cqe", pc.ret);
		ck_assert_msg(pc.peek == 0 && pc.cqe_ud == UD_READ &&
			      pc.cqe_res == 1, "CQE: peek %d ud %#" PRIx64
			      " res %d", pc.peek, pc.cqe_ud, pc.cqe_res);
		ck_assert_int_eq(g_rbuf[0], 'p');
		ck_assert_int_eq(io_uring_cq_ready(&g_ring), 0);
		h_close_pipe(fds);
	}
	printf("uring_sigprof: SIGPROF %ld in all, %ld in bodies; "
	       "wait_cqe x%ld, submit_and_wait x%ld; -EINTR %ld, reasons %ld\n",
	       atomic_load(&g_prof_total), atomic_load(&g_prof_body),
	       calls[0], calls[1], eintr, reasons);
	fflush(stdout);
	ck_assert_int_eq(eintr, 0);
	ck_assert_int_eq(reasons, 0);
	ck_assert_msg(atomic_load(&g_prof_body) > 100,
		      "SIGPROF reached the bodies only %ld times",
		      atomic_load(&g_prof_body));
	ck_assert_int_eq(intr_token_reason(tok), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
	io_uring_queue_exit(&g_ring);
}
END_TEST

/* --------- 4b. SIGPROF at 1 kHz: a wait's timeout is kept across them */

#define TS_PROF_MS	100		/* the wait's timeout */
#define TS_PROF_CALLS	5
#define TS_PROF_BOUND_S	10		/* the token's deadline: the bound */

static atomic_long g_tsprof;

static void on_tsprof(int sig)
{
	(void)sig;
	atomic_fetch_add(&g_tsprof, 1);
}

struct tsprof {
	int timer_err;
	int ret[TS_PROF_CALLS];
	long signals[TS_PROF_CALLS];	/* SIGPROF during each wait */
	uint64_t ns[TS_PROF_CALLS];	/* how long it took (printed only) */
};

static void *tsprof_body(intr_ctx *ctx, void *p)
{
	struct tsprof *tp = p;
	sigset_t set;
	timer_t tm;
	int k;

	tp->timer_err = prof_timer_start(&tm);
	if (tp->timer_err)
		return tp;
	sigemptyset(&set);
	sigaddset(&set, SIGPROF);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	for (k = 0; k < TS_PROF_CALLS; k++) {
		struct __kernel_timespec ts = {
			.tv_nsec = TS_PROF_MS * 1000000LL,
		};
		struct io_uring_cqe *cqe = NULL;
		long before = atomic_load(&g_tsprof);
		uint64_t t0 = h_now_ns();

		tp->ret[k] = intr_uring_wait_cqes(ctx, &g_ring, &cqe, 1, &ts);
		tp->ns[k] = h_now_ns() - t0;
		tp->signals[k] = atomic_load(&g_tsprof) - before;
		if (tp->ret[k] != -ETIME)
			break;
	}
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	timer_delete(tm);
	return tp;
}

/* An empty ring, a 100 ms timeout, a foreign signal every millisecond
 * that ends io_uring_enter() with EINTR: every wait still times out with
 * -ETIME, well before the token's deadline.  (Were the timeout started
 * again after each signal, a wait would end only when the signals paused
 * for 100 ms, or at the deadline, with -ETIMEDOUT.) */
START_TEST(uring_wait_cqes_timeout_sigprof)
{
	struct sigaction sa;
	struct tsprof tp;
	intr_token *tok;
	sigset_t set;
	void *res = NULL;
	int k, ret;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_tsprof;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART */
	ck_assert_int_eq(sigaction(SIGPROF, &sa, NULL), 0);
	sigemptyset(&set);
	sigaddset(&set, SIGPROF);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
	configure(0, RESEND_US);
	ring_init();
	memset(&tp, 0, sizeof(tp));
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	ck_assert_int_eq(intr_token_cancel_after(tok, TS_PROF_BOUND_S *
						 1000000000ull), 0);
	ret = run_interruptible(tok, tsprof_body, &tp, &res);
	ck_assert_int_eq(tp.timer_err, 0);
	ck_assert_ptr_eq(res, &tp);
	for (k = 0; k < TS_PROF_CALLS; k++) {
		printf("uring_wait_cqes_timeout_sigprof: wait %d (%d ms): "
		       "returned %d after %ld SIGPROF, %.1f ms\n", k,
		       TS_PROF_MS, tp.ret[k], tp.signals[k], tp.ns[k] / 1e6);
		ck_assert_msg(tp.ret[k] == -ETIME, "wait %d: returned %d, "
			      "not -ETIME: its %d ms timeout started again "
			      "after each of %ld SIGPROF, and the token's "
			      "%d s deadline ended it", k, tp.ret[k],
			      TS_PROF_MS, tp.signals[k], TS_PROF_BOUND_S);
	}
	fflush(stdout);
	ck_assert_msg(ret == 0, "the call returned %d: the token's %d s "
		      "deadline passed before the waits timed out", ret,
		      TS_PROF_BOUND_S);
	/* The signals did interrupt the waits (else this proves nothing). */
	for (k = 0, ret = 0; k < TS_PROF_CALLS; k++)
		ret += tp.signals[k] > 0;
	ck_assert_msg(ret > 0, "no SIGPROF landed during any wait");
	ck_assert_int_eq(intr_token_free(tok), 0);
	io_uring_queue_exit(&g_ring);
}
END_TEST

/* ---------------------- 5. off the worker: -EINVAL, nothing touched */

struct offw {
	intr_ctx *ctx;
	long calls;
	struct bfail f;
};

/* A NOP CQE waits in the ring and a NOP SQE is prepared: a wrapper that
 * acted would take the CQE or submit the SQE. */
static void all_einval(struct offw *o, intr_ctx *ctx, const char *where)
{
	struct __kernel_timespec ts = { .tv_sec = LONG_TS_S };
	struct io_uring_cqe *cqe = NULL;
	int r;

	CALL(&o->f, r, intr_uring_wait_cqe(ctx, &g_ring, &cqe));
	BCHECK(&o->f, r == -EINVAL, "%s: intr_uring_wait_cqe returned %d",
	       where, r);
	CALL(&o->f, r, intr_uring_wait_cqes(ctx, &g_ring, &cqe, 1, &ts));
	BCHECK(&o->f, r == -EINVAL, "%s: intr_uring_wait_cqes returned %d",
	       where, r);
	CALL(&o->f, r, intr_uring_submit_and_wait(ctx, &g_ring, 1));
	BCHECK(&o->f, r == -EINVAL, "%s: intr_uring_submit_and_wait "
	       "returned %d", where, r);
	o->calls += 3;
	BCHECK(&o->f, io_uring_cq_ready(&g_ring) == 1, "%s: the CQE was "
	       "taken", where);
	BCHECK(&o->f, io_uring_sq_ready(&g_ring) == 1, "%s: the SQE was "
	       "submitted", where);
}

static void *offw_thread(void *p)
{
	struct offw *o = p;

	all_einval(o, o->ctx, "another thread");
	return NULL;
}

static void offw_finalizer(void *p)
{
	struct offw *o = p;

	all_einval(o, o->ctx, "a finalizer");
}

static void *offw_body(intr_ctx *ctx, void *p)
{
	struct offw *o = p;
	struct timespec ts;
	pthread_t th;

	o->ctx = ctx;
	if (pthread_create(&th, NULL, offw_thread, o) == 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += WAIT_MS / 1000;
		BCHECK(&o->f, pthread_timedjoin_np(th, NULL, &ts) == 0,
		       "io_uring wrappers called from another thread blocked");
	}
	BCHECK(&o->f, intr_defer(ctx, offw_finalizer, o) == 0, "intr_defer");
	return o;
}

START_TEST(uring_off_worker_einval)
{
	struct io_uring_sqe *sqe;
	struct offw o;
	intr_token *tok;
	intr_task *task;
	void *res = NULL;

	configure(0, RESEND_US);
	ring_init();
	memset(&o, 0, sizeof(o));
	submit_nop(UD_DATA);
	wait_cq_ready(1);
	sqe = io_uring_get_sqe(&g_ring);
	ck_assert_ptr_nonnull(sqe);
	io_uring_prep_nop(sqe);
	sqe->user_data = UD_STOP;

	all_einval(&o, NULL, "main thread, NULL ctx");
	BFAIL_ASSERT(&o.f);
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	ck_assert_int_eq(intr_spawn(&task, tok, offw_body, &o), 0);
	ck_assert_int_eq(h_join_within(task, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, &o);
	BFAIL_ASSERT(&o.f);
	ck_assert_int_eq(o.calls, 9);
	ck_assert_int_eq(intr_token_free(tok), 0);
	io_uring_queue_exit(&g_ring);
}
END_TEST

/* ------------------------------------------------------------------ suite */

/* wait_nr > 1 with fewer CQEs in the ring than asked for, and the call
 * cancelled (by its body, on its own token): the wait still returns the
 * CQE that is there (data first), then the next one the reason. */
struct nr2 {
	bool use_ts;
	int ret[2];
	uint64_t ud;
};

static void *nr2_body(intr_ctx *ctx, void *p)
{
	struct nr2 *d = p;
	struct __kernel_timespec ts = { .tv_sec = LONG_TS_S };
	struct io_uring_cqe *cqe = NULL;

	if (intr_token_cancel(intr_ctx_token(ctx)))
		return BODY_ERROR;
	d->ret[0] = intr_uring_wait_cqes(ctx, &g_ring, &cqe, 2,
					 d->use_ts ? &ts : NULL);
	if (!d->ret[0] && cqe) {
		d->ud = cqe->user_data;
		io_uring_cqe_seen(&g_ring, cqe);
	}
	cqe = NULL;
	d->ret[1] = intr_uring_wait_cqes(ctx, &g_ring, &cqe, 2,
					 d->use_ts ? &ts : NULL);
	return d;
}

START_TEST(uring_cqe_first_wait_nr)
{
	int use_ts;

	configure(0, RESEND_US);
	ring_init();
	for (use_ts = 0; use_ts < 2; use_ts++) {
		struct nr2 d = { .use_ts = use_ts };
		intr_task *task;
		void *res = NULL;

		submit_nop(UD_DATA);
		wait_cq_ready(1);
		ck_assert_int_eq(intr_spawn(&task, NULL, nr2_body, &d), 0);
		ck_assert_int_eq(h_join_within(task, &res, WAIT_MS),
				 -ECANCELED);
		ck_assert_ptr_eq(res, &d);
		ck_assert_msg(d.ret[0] == 0 && d.ud == UD_DATA,
			      "%s, wait_nr 2, one CQE there, cancelled: "
			      "returned %d with CQE %#" PRIx64 ", expected 0 "
			      "with %#" PRIx64 " (the cancel came before the "
			      "data)", use_ts ? "wait_cqes with a timeout" :
			      "wait_cqes", d.ret[0], d.ud, (uint64_t)UD_DATA);
		ck_assert_int_eq(d.ret[1], -ECANCELED);
		ck_assert_int_eq(io_uring_cq_ready(&g_ring), 0);
	}
	io_uring_queue_exit(&g_ring);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("uring");
	TCase *tc;

	tc = h_tcase(s, "basics", TEST_TIMEOUT);
	tcase_add_test(tc, uring_cqe_not_dropped);
	tcase_add_test(tc, uring_cqe_first_wait_nr);
	tcase_add_test(tc, uring_wait_cqes_timeout_basic);
	tcase_add_test(tc, uring_off_worker_einval);
	tc = h_tcase(s, "race", TEST_TIMEOUT);
	tcase_add_loop_test(tc, race_uring_wait_cqe, 0, H_HOSTS);
	tcase_add_loop_test(tc, race_uring_wait_cqes_timeout, 0, H_HOSTS);
	tcase_add_test(tc, uring_submit_and_wait);
	tc = h_tcase(s, "sigprof", TEST_TIMEOUT);
	tcase_add_test(tc, uring_sigprof);
	tcase_add_test(tc, uring_wait_cqes_timeout_sigprof);
	return s;
}

int main(void)
{
	char why[160];

	/* Where io_uring is not permitted, one line says so; any other
	 * failure to set up a ring fails the tests. */
	if (h_uring_permitted(why, sizeof(why)) == 0) {
		printf("1..0 # SKIP %s\n", why);
		return 0;
	}
	return h_run_suite(make_suite());
}

#else /* !HAVE_LIBURING */

#include <stdio.h>

/* Built without liburing: nothing to test, skipped as a whole (TAP). */
int main(void)
{
	printf("1..0 # SKIP built without liburing\n");
	return 0;
}

#endif /* HAVE_LIBURING */
