/* SPDX-License-Identifier: MIT */
/*
 * intr_on_cancel_repeat(): a wake-up that the other side may ignore when it
 * comes too early, repeated with the signal's back-off until the body
 * acknowledges the cancel or returns.
 *
 * The "server" of these tests is a condition wait that no signal breaks,
 * and a wake-up that only counts if the body is already waiting, as a
 * PQcancel() counts only once the backend runs the query: an early one is
 * dropped.  The early-cancel race lands the cancel 0-3 ms after the spawn,
 * 1,000 times; a repeating wake-up must leave no body stuck.
 */
#include "config.h"

#include "harness.h"

#include <pthread.h>
#include <string.h>

#define BOUND_MS 5000

/* A wait that ignores an early wake-up. */
struct server {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool waiting;		/* the body is in the wait */
	bool released;		/* a wake-up found it waiting */
	atomic_int runs;	/* the wake-up ran */
	atomic_int ignored;	/* ... and found nobody waiting */
	atomic_int inside;	/* runs in progress, to see overlap */
	atomic_int overlap;
	atomic_int gate;	/* the body may start waiting */
	bool hold_until_run;	/* the body waits for one run first */
	atomic_int registered;	/* the body registered its wake-up */
	uint64_t delay_ns;	/* from the registration to the wait: the
				   request on its way to the server */
	atomic_int fin_runs;	/* runs seen by the finalizer */
	atomic_int fins;
	int reg;		/* what the registration returned */
};

static void server_init(struct server *sv)
{
	memset(sv, 0, sizeof(*sv));
	pthread_mutex_init(&sv->m, NULL);
	pthread_cond_init(&sv->c, NULL);
}

static void server_fini(struct server *sv)
{
	pthread_mutex_destroy(&sv->m);
	pthread_cond_destroy(&sv->c);
}

static void wake(void *arg)
{
	struct server *sv = arg;

	if (atomic_fetch_add(&sv->inside, 1))
		atomic_fetch_add(&sv->overlap, 1);
	pthread_mutex_lock(&sv->m);
	if (sv->waiting) {
		sv->released = true;
		pthread_cond_broadcast(&sv->c);
	} else {
		atomic_fetch_add(&sv->ignored, 1);
	}
	pthread_mutex_unlock(&sv->m);
	atomic_fetch_sub(&sv->inside, 1);
	atomic_fetch_add(&sv->runs, 1);
}

static void fin(void *arg)
{
	struct server *sv = arg;

	atomic_store(&sv->fin_runs, atomic_load(&sv->runs));
	atomic_fetch_add(&sv->fins, 1);
}

/* The test releases a body that no wake-up freed (a lost wake-up), so that
 * it can fail instead of hanging. */
static void release(struct server *sv)
{
	pthread_mutex_lock(&sv->m);
	sv->released = true;
	pthread_cond_broadcast(&sv->c);
	pthread_mutex_unlock(&sv->m);
}

static void *serve(intr_ctx *ctx, struct server *sv, bool repeat)
{
	intr_defer(ctx, fin, sv);
	sv->reg = repeat ? intr_on_cancel_repeat(ctx, wake, sv) :
			   intr_on_cancel(ctx, wake, sv);
	if (sv->reg)
		return BODY_CANCELLED;
	atomic_store(&sv->registered, 1);
	if (sv->hold_until_run)
		h_wait_atomic(&sv->runs, 1, BOUND_MS);
	h_spin_ns(sv->delay_ns);
	/* The wait: a condition variable restarts after signals. */
	pthread_mutex_lock(&sv->m);
	sv->waiting = true;
	while (!sv->released)
		pthread_cond_wait(&sv->c, &sv->m);
	sv->waiting = false;
	pthread_mutex_unlock(&sv->m);
	return BODY_RELEASED;
}

static void *repeat_body(intr_ctx *ctx, void *arg)
{
	return serve(ctx, arg, true);
}

static void *once_body(intr_ctx *ctx, void *arg)
{
	return serve(ctx, arg, false);
}

/* Join within the bound; a body no wake-up freed is released by the test
 * and counted as stuck. */
static int join_or_release(intr_task *t, struct server *sv, bool *stuck)
{
	int fd = intr_task_fd(t);

	ck_assert_int_ge(fd, 0);
	*stuck = h_poll_in(fd, BOUND_MS) != 1;
	if (*stuck)
		release(sv);
	return h_join_within(t, NULL, BOUND_MS);
}

/* The cancel lands 0-3 ms after the spawn, 1,000 times: before the
 * registration, between it and the wait (the early wake-up the server
 * drops; the body takes 0-300 us to get there), and during the wait. */
START_TEST(test_early_cancel_race)
{
	int rounds = (int)h_scale(1000), stuck = 0, early = 0, skipped = 0;
	int bad = 0, i;
	struct h_rng rng;

	h_rng_seed(&rng, "early_cancel_race");
	for (i = 0; i < rounds; i++) {
		struct server sv;
		intr_token *tok = h_new_token(NULL);
		intr_task *t;
		bool s;
		int r;

		server_init(&sv);
		sv.delay_ns = h_rng_below(&rng, 300001);
		ck_assert_int_eq(intr_spawn(&t, tok, repeat_body, &sv), 0);
		h_spin_ns(h_rng_below(&rng, 3000001));
		intr_token_cancel(tok);
		r = join_or_release(t, &sv, &s);
		stuck += s;
		if (atomic_load(&sv.ignored))
			early++;
		if (atomic_load(&sv.fins) == 0)
			skipped++;	/* the body never ran */
		else if (r != -ECANCELED || atomic_load(&sv.fins) != 1 ||
			 atomic_load(&sv.fin_runs) != atomic_load(&sv.runs) ||
			 atomic_load(&sv.overlap))
			bad++;
		server_fini(&sv);
		ck_assert_int_eq(intr_token_free(tok), 0);
	}
	printf("early_cancel_race: %d rounds, %d with an early wake-up the "
	       "server dropped, %d before the body, %d stuck, %d wrong\n",
	       rounds, early, skipped, stuck, bad);
	ck_assert_int_eq(stuck, 0);
	ck_assert_int_eq(bad, 0);
}
END_TEST

/* Deterministic: the first run comes before the wait and is dropped; the
 * next re-send's run frees the body.  The one-shot intr_on_cancel never
 * runs again: its body is stuck until the test releases it. */
START_TEST(test_early_wake_repeated)
{
	struct server sv;
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	bool s;

	server_init(&sv);
	sv.hold_until_run = true;
	ck_assert_int_eq(intr_spawn(&t, tok, repeat_body, &sv), 0);
	ck_assert(h_wait_atomic(&sv.registered, 1, BOUND_MS));
	intr_token_cancel(tok);
	ck_assert_int_eq(join_or_release(t, &sv, &s), -ECANCELED);
	ck_assert(!s);
	ck_assert_int_ge(atomic_load(&sv.ignored), 1);
	ck_assert_int_ge(atomic_load(&sv.runs), 2);
	ck_assert_int_eq(atomic_load(&sv.overlap), 0);
	ck_assert_int_eq(atomic_load(&sv.fins), 1);
	ck_assert_int_eq(atomic_load(&sv.fin_runs), atomic_load(&sv.runs));
	server_fini(&sv);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_early_wake_once_is_lost)
{
	struct server sv;
	intr_token *tok = h_new_token(NULL);
	intr_task *t;

	server_init(&sv);
	sv.hold_until_run = true;
	ck_assert_int_eq(intr_spawn(&t, tok, once_body, &sv), 0);
	ck_assert(h_wait_atomic(&sv.registered, 1, BOUND_MS));
	intr_token_cancel(tok);
	/* 20 ms: re-sends at 1, 2, 4 and 8 ms have come and gone. */
	ck_assert(h_wait_atomic(&sv.runs, 1, BOUND_MS));
	h_sleep_ms(20);
	ck_assert(!h_task_done(t));
	ck_assert_int_eq(atomic_load(&sv.runs), 1);
	release(&sv);
	ck_assert_int_eq(h_join_within(t, NULL, BOUND_MS), -ECANCELED);
	ck_assert_int_eq(atomic_load(&sv.runs), 1);
	server_fini(&sv);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* After the body acknowledges, no re-send, so no run (one that was under
 * way may finish). */
struct acker {
	struct server sv;
	int at_ack;
	int eintr;
};

static void *ack_body(intr_ctx *ctx, void *arg)
{
	struct acker *a = arg;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 30000000 };

	if (intr_on_cancel_repeat(ctx, wake, &a->sv))
		return BODY_ERROR;
	atomic_store(&a->sv.registered, 1);
	/* Ignore the cancel (no acknowledgement) until the wake-up ran
	 * three times, then acknowledge. */
	h_wait_atomic(&a->sv.runs, 3, BOUND_MS);
	if (!intr_cancelled(ctx))
		return BODY_ERROR;
	a->at_ack = atomic_load(&a->sv.runs);
	/* 30 ms more in the body: nothing re-sends now. */
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		a->eintr++;
	return BODY_RELEASED;
}

START_TEST(test_repeat_stops_at_ack)
{
	struct acker a;
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	void *res;

	memset(&a, 0, sizeof(a));
	server_init(&a.sv);
	ck_assert_int_eq(intr_spawn(&t, tok, ack_body, &a), 0);
	ck_assert(h_wait_atomic(&a.sv.registered, 1, BOUND_MS));
	intr_token_cancel(tok);
	ck_assert_int_eq(h_join_within(t, &res, BOUND_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	ck_assert_int_ge(a.at_ack, 3);
	ck_assert_int_le(atomic_load(&a.sv.runs), a.at_ack + 1);
	ck_assert_int_le(a.eintr, 1);
	server_fini(&a.sv);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* A call that is not cancelled never runs it. */
static void *quiet_body(intr_ctx *ctx, void *arg)
{
	struct server *sv = arg;

	intr_defer(ctx, fin, sv);
	return intr_on_cancel_repeat(ctx, wake, sv) ? BODY_ERROR :
		BODY_RELEASED;
}

START_TEST(test_repeat_not_cancelled)
{
	struct server sv;
	void *res;

	server_init(&sv);
	ck_assert_int_eq(run_interruptible(NULL, quiet_body, &sv, &res), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	ck_assert_int_eq(atomic_load(&sv.runs), 0);
	ck_assert_int_eq(atomic_load(&sv.fins), 1);
	server_fini(&sv);
}
END_TEST

/* Cancelled before the registration: the reason, nothing registered. */
static void *late_body(intr_ctx *ctx, void *arg)
{
	struct server *sv = arg;

	intr_token_cancel(intr_ctx_token(ctx));
	sv->reg = intr_on_cancel_repeat(ctx, wake, sv);
	return NULL;
}

START_TEST(test_repeat_already_cancelled)
{
	struct server sv;

	server_init(&sv);
	ck_assert_int_eq(run_interruptible(NULL, late_body, &sv, NULL),
			 -ECANCELED);
	ck_assert_int_eq(sv.reg, -ECANCELED);
	ck_assert_int_eq(atomic_load(&sv.runs), 0);
	server_fini(&sv);
}
END_TEST

/*
 * The body returns before the wake-up thread gets to the action (it is
 * busy with another call's): the action runs once, on the worker, before
 * the finalizers.
 */
struct blocker {
	atomic_int registered;
	atomic_int in;
	atomic_int go;
};

static void block_wake(void *arg)
{
	struct blocker *b = arg;

	atomic_store(&b->in, 1);
	h_wait_atomic(&b->go, 1, BOUND_MS);
}

static void *blocker_body(intr_ctx *ctx, void *arg)
{
	struct blocker *b = arg;

	if (intr_on_cancel(ctx, block_wake, b))
		return BODY_ERROR;
	atomic_store(&b->registered, 1);
	h_wait_atomic(&b->go, 1, BOUND_MS);
	return NULL;
}

struct quick {
	struct server sv;
	pid_t tid;
	pid_t fin_tid;
};

static void quick_fin(void *arg)
{
	struct quick *q = arg;

	q->fin_tid = h_gettid();
	fin(&q->sv);
}

static void quick_wake(void *arg)
{
	struct quick *q = arg;

	q->sv.reg = h_gettid();
	wake(&q->sv);
}

static void *quick_body(intr_ctx *ctx, void *arg)
{
	struct quick *q = arg;

	q->tid = h_gettid();
	intr_defer(ctx, quick_fin, q);
	if (intr_on_cancel_repeat(ctx, quick_wake, q))
		return BODY_ERROR;
	intr_token_cancel(intr_ctx_token(ctx));
	return NULL;
}

START_TEST(test_repeat_on_worker)
{
	struct blocker b = { 0 };
	struct quick q;
	intr_token *tok = h_new_token(NULL);
	intr_task *bt;

	memset(&q, 0, sizeof(q));
	server_init(&q.sv);
	ck_assert_int_eq(intr_spawn(&bt, tok, blocker_body, &b), 0);
	ck_assert(h_wait_atomic(&b.registered, 1, BOUND_MS));
	intr_token_cancel(tok);
	ck_assert(h_wait_atomic(&b.in, 1, BOUND_MS));
	/* The wake-up thread is inside block_wake now. */
	ck_assert_int_eq(run_interruptible(NULL, quick_body, &q, NULL),
			 -ECANCELED);
	atomic_store(&b.go, 1);
	ck_assert_int_eq(h_join_within(bt, NULL, BOUND_MS), -ECANCELED);
	ck_assert_int_eq(atomic_load(&q.sv.runs), 1);
	ck_assert_int_eq(q.sv.reg, q.tid);	/* ran on the worker */
	ck_assert_int_eq(q.fin_tid, q.tid);
	ck_assert_int_eq(atomic_load(&q.sv.fin_runs), 1);
	server_fini(&q.sv);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* Misuse: no ctx, a ctx off its worker, a NULL action, a finalizer;
 * errno kept. */
static intr_ctx *stale_ctx;
static int fin_reg = 1;

static void reg_in_fin(void *arg)
{
	fin_reg = intr_on_cancel_repeat(stale_ctx, wake, arg);
}

static void *misuse_body(intr_ctx *ctx, void *arg)
{
	int *r = arg;

	stale_ctx = ctx;
	intr_defer(ctx, reg_in_fin, NULL);
	errno = MAGIC_ERRNO;
	r[0] = intr_on_cancel_repeat(ctx, NULL, NULL);
	r[1] = errno;
	return NULL;
}

START_TEST(test_repeat_misuse)
{
	int r[2] = { 0, 0 };

	CHECK_KEEPS_ERRNO(-EINVAL, intr_on_cancel_repeat(NULL, wake, NULL));
	ck_assert_int_eq(run_interruptible(NULL, misuse_body, r, NULL), 0);
	ck_assert_int_eq(r[0], -EINVAL);
	ck_assert_int_eq(r[1], MAGIC_ERRNO);
	ck_assert_int_eq(fin_reg, -EINVAL);
	CHECK_KEEPS_ERRNO(-EINVAL, intr_on_cancel_repeat(stale_ctx, wake,
							 NULL));
}
END_TEST

/* Two calls cancelled together, neither acknowledging, both blocked in a
 * plain read; then one acknowledges with intr_cancelled().  The other's
 * repeating wake-up is the clock: once it ran three more times, its
 * re-sends went on, and those of the one that acknowledged must not (one
 * under way may still finish). */
struct pair_side {
	atomic_int runs;
	atomic_int registered;
	atomic_int acked;
	int at_ack;
	bool ack;
	int fds[2];
};

static void pair_wake(void *arg)
{
	struct pair_side *p = arg;

	atomic_fetch_add(&p->runs, 1);
}

static void *pair_body(intr_ctx *ctx, void *arg)
{
	struct pair_side *p = arg;
	char c;

	if (intr_on_cancel_repeat(ctx, pair_wake, p))
		return BODY_ERROR;
	atomic_store(&p->registered, 1);
	if (p->ack) {
		if (!h_wait_atomic(&p->runs, 3, BOUND_MS) ||
		    !intr_cancelled(ctx))
			return BODY_ERROR;
		p->at_ack = atomic_load(&p->runs);
		atomic_store(&p->acked, 1);
	}
	while (read(p->fds[0], &c, 1) < 0)
		if (errno != EINTR)
			return BODY_ERROR;
	return BODY_RELEASED;
}

START_TEST(test_repeat_stops_at_ack_beside_other)
{
	struct pair_side a, b;
	intr_task *ta, *tb;
	intr_token *tok;
	void *res;
	int b_at;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.ack = true;
	h_make_pipe(a.fds);
	h_make_pipe(b.fds);
	tok = h_new_token(NULL);
	ck_assert_int_eq(intr_spawn(&ta, tok, pair_body, &a), 0);
	ck_assert_int_eq(intr_spawn(&tb, tok, pair_body, &b), 0);
	ck_assert(h_wait_atomic(&a.registered, 1, BOUND_MS));
	ck_assert(h_wait_atomic(&b.registered, 1, BOUND_MS));
	intr_token_cancel(tok);
	ck_assert(h_wait_atomic(&a.acked, 1, BOUND_MS));
	b_at = atomic_load(&b.runs);
	ck_assert_msg(h_wait_atomic(&b.runs, b_at + 3, BOUND_MS),
		      "the call that did not acknowledge: no re-send");
	ck_assert_msg(atomic_load(&a.runs) <= a.at_ack + 1,
		      "the call that acknowledged at run %d ran its wake-up "
		      "%d times while the other's ran 3 more: its re-sends "
		      "went on after intr_cancelled()", a.at_ack,
		      atomic_load(&a.runs));
	ck_assert_int_eq(write(a.fds[1], "x", 1), 1);
	ck_assert_int_eq(write(b.fds[1], "x", 1), 1);
	ck_assert_int_eq(h_join_within(ta, &res, BOUND_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	ck_assert_int_eq(h_join_within(tb, &res, BOUND_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	h_close_pipe(a.fds);
	h_close_pipe(b.fds);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* The re-sends back off from resend_us, doubling up to 100 ms and no
 * further.  With resend_us = 50 ms, the gaps between the runs of a
 * repeating wake-up on a body that never acknowledges are 50 ms, then
 * 100 ms for good.  Compared within the run, not with the clock: no gap
 * after the second may be PACE_RATIO times the second, which a back-off
 * that goes on doubling past the cap reaches by the sixth. */
#define PACE_RESEND_US	50000
#define PACE_GAPS	7
#define PACE_RATIO	8

struct pacer {
	atomic_int runs;
	uint64_t at[PACE_GAPS + 1];
	atomic_int registered;
	int fds[2];
};

static void pace_wake(void *arg)
{
	struct pacer *p = arg;
	int n = atomic_load(&p->runs);

	/* Never concurrent with itself: runs is this run's place. */
	if (n <= PACE_GAPS)
		p->at[n] = h_now_ns();
	atomic_store(&p->runs, n + 1);
}

static void *pace_body(intr_ctx *ctx, void *arg)
{
	struct pacer *p = arg;
	char c;

	if (intr_on_cancel_repeat(ctx, pace_wake, p))
		return BODY_ERROR;
	atomic_store(&p->registered, 1);
	/* Never acknowledges: a plain read that retries EINTR, until the
	 * test writes a byte. */
	while (read(p->fds[0], &c, 1) < 0)
		if (errno != EINTR)
			return BODY_ERROR;
	return BODY_RELEASED;
}

START_TEST(test_repeat_backoff_capped)
{
	struct intr_config cfg;
	struct pacer p;
	uint64_t ref, gap;
	intr_token *tok;
	intr_task *t;
	void *res;
	int k;

	intr_config_default(&cfg);
	cfg.resend_us = PACE_RESEND_US;
	ck_assert_int_eq(intr_configure(&cfg), 0);
	memset(&p, 0, sizeof(p));
	h_make_pipe(p.fds);
	tok = h_new_token(NULL);
	ck_assert_int_eq(intr_spawn(&t, tok, pace_body, &p), 0);
	ck_assert(h_wait_atomic(&p.registered, 1, BOUND_MS));
	intr_token_cancel(tok);
	/* The cancel's run, then two re-sends: 50 ms, then 100 ms. */
	ck_assert(h_wait_atomic(&p.runs, 3, BOUND_MS));
	ref = p.at[2] - p.at[1];
	for (k = 3; k <= PACE_GAPS; k++) {
		while (atomic_load(&p.runs) <= k) {
			gap = h_now_ns() - p.at[k - 1];
			ck_assert_msg(gap <= PACE_RATIO * ref,
				      "re-send %d: %" PRIu64 " ms since the "
				      "last, %d times the second gap (%" PRIu64
				      " ms) and more: the back-off went past "
				      "its 100 ms cap", k, gap / 1000000,
				      PACE_RATIO, ref / 1000000);
			h_sleep_ms(1);
		}
	}
	ck_assert_int_eq(write(p.fds[1], "x", 1), 1);
	ck_assert_int_eq(h_join_within(t, &res, BOUND_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	h_close_pipe(p.fds);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("wake");
	TCase *tc;

	tc = h_tcase(s, "repeat", 120);
	tcase_add_test(tc, test_early_cancel_race);
	tcase_add_test(tc, test_early_wake_repeated);
	tcase_add_test(tc, test_early_wake_once_is_lost);
	tcase_add_test(tc, test_repeat_stops_at_ack);
	tcase_add_test(tc, test_repeat_not_cancelled);
	tcase_add_test(tc, test_repeat_already_cancelled);
	tcase_add_test(tc, test_repeat_on_worker);
	tcase_add_test(tc, test_repeat_misuse);
	tcase_add_test(tc, test_repeat_backoff_capped);
	tcase_add_test(tc, test_repeat_stops_at_ack_beside_other);
	return s;
}

int main(void)
{
	return h_run_suite(make_suite());
}
