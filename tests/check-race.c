/* SPDX-License-Identifier: MIT */
/*
 * Race suite.  Each test runs RACE_ITERS iterations with the cancel landing
 * before the call (token cancelled before intr_spawn, or right after it), at
 * it (a random 0-50 us after intr_spawn) and after it (the body finished by
 * itself first).  Every wait is bounded, so a lost cancel fails the test
 * instead of hanging it; every outcome is counted and checked at the end.
 *
 * The bodies use plain, unwrapped blocking calls (libc read, nanosleep,
 * liburing's own io_uring_wait_cqe): only the library's re-send closes the
 * window between the body's intr_cancelled() check and the call blocking.
 * In half the iterations the body spends a random 0-50 us ("gap") between
 * the check and the call, as real code does; a cancel landing there has
 * its first signal handled before the call blocks, so it needs the re-send.
 * Those iterations are counted ("in the gap") and must occur.
 *
 * With two CPUs or more, the test thread is pinned to one CPU and the bodies
 * pin their worker to another, so that the canceller really runs while the
 * body is between its check and its call (left alone, the scheduler tends
 * to wake the worker on the canceller's CPU and let it run until it
 * blocks, and the cancel then never lands in the gap).
 *
 * INTR_TEST_SEED=<n> repeats a run's cancel schedule.
 */
#include "config.h"
#include "race.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#ifdef HAVE_LIBURING
#include <liburing.h>
#include "uring-permitted.h"
#endif

#define RACE_ITERS	10000
#define RESEND_US	50		/* first re-send after a lost signal */
#define TEST_TIMEOUT	120		/* seconds, per test */

/* ------------------------------------------------------------ helpers */

/*
 * The body's first check returned false at t_check, and its first blocking
 * call started after t_call.  A cancel that began after t_check and ended
 * before t_call landed wholly in the gap: its first signal was handled
 * before the call blocked.
 */
static void count_gap(struct tally *t, uint64_t t_check, uint64_t t_call,
		      uint64_t c_start, uint64_t c_end)
{
	if (t_check && c_start && t_check < c_start && c_end < t_call)
		t->in_gap++;
}

static void count_ret(struct tally *t, enum when w, int ret)
{
	t->n[w]++;
	if (ret == -ECANCELED)
		t->cancelled[w]++;
	else if (ret == 0)
		t->completed[w]++;
}

/* Report a plain-call test's tally. */
static void print_plain_tally(const char *test, const struct tally *t)
{
	print_when_counts(test, t);
	printf(" skipped %ld, eintr %ld, spurious %ld, cancelled in the gap "
	       "%ld, broken %ld\n", t->skipped, t->eintr, t->spurious,
	       t->in_gap, t->bad);
	fflush(stdout);
}

static void assert_tally(const struct tally *t, bool gap_hits)
{
	if (gap_hits)
		ck_assert_msg(t->in_gap > 0,
			      "no cancel landed between check and call: the "
			      "test did not exercise the re-send");
	ck_assert_msg(t->spurious == 0,
		      "%ld spurious EINTR (signal reached an uncancelled call)",
		      t->spurious);
	ck_assert_msg(t->bad == 0, "%ld iterations broke the contract (see above)",
		      t->bad);
}

/*
 * Body side, once per turn of a check-then-block loop, after the check
 * returned false: stamp the first check, spend the gap, stamp the first call.
 */
static void gap_then_call(uint64_t *t_check, uint64_t gap_ns, uint64_t *t_call)
{
	if (!*t_check)
		*t_check = h_now_ns();
	if (gap_ns)
		h_spin_ns(gap_ns);
	if (!*t_call)
		*t_call = h_now_ns();
}

/* Body side, after the blocking call failed with EINTR: count it, and tell
 * whether the call was cancelled (else the EINTR was spurious). */
static bool eintr_cancelled(intr_ctx *ctx, int *eintr, int *spurious)
{
	(*eintr)++;
	if (intr_cancelled(ctx))
		return true;
	(*spurious)++;
	return false;
}

/* --------------------------------------------- 1. plain read() in a loop */

struct rd_arg {
	int fd;
	uint64_t gap_ns;	/* spin between the check and read() */
	uint64_t t_check;	/* first check returned false */
	uint64_t t_call;	/* first read() about to start */
	bool ran;
	bool saw_cancel;
	int bytes;
	int eintr;
	int spurious;
	int err;
	pid_t tid;
	uint64_t t_ret;		/* h_now_ns() just before an uncancelled return */
};

/*
 * The check-then-block loop the library must cope with: plain read(), EINTR
 * goes back to the check.  A byte in the pipe ends the call by itself.
 */
static void *read_body(intr_ctx *ctx, void *p)
{
	struct rd_arg *a = p;
	char c;

	a->ran = true;
	a->tid = h_gettid();
	body_pin();
	while (!intr_cancelled(ctx)) {
		ssize_t n;

		gap_then_call(&a->t_check, a->gap_ns, &a->t_call);
		n = read(a->fd, &c, 1);

		if (n == 1) {
			a->bytes++;
			a->t_ret = h_now_ns();
			return a;
		}
		if (n < 0 && errno == EINTR) {
			if (eintr_cancelled(ctx, &a->eintr, &a->spurious))
				break;
			continue;
		}
		a->err = n < 0 ? errno : -1;
		a->t_ret = h_now_ns();
		return a;
	}
	a->saw_cancel = true;
	return a;
}

/*
 * Rules for one read_body call.  released: a byte was written for it.
 * t_cancel: h_now_ns() right after the cancel returned (0: no cancel).
 */
static void check_read_call(struct tally *t, long i, enum when w, int ret,
			    void *res, const struct rd_arg *a, int left,
			    bool released, uint64_t c_start, uint64_t t_cancel)
{
	count_ret(t, w, ret);
	count_gap(t, a->t_check, a->t_call, c_start, t_cancel);
	t->eintr += a->eintr;
	t->spurious += a->spurious;
	if (!a->ran)
		t->skipped++;

	if (ret != 0 && ret != -ECANCELED) {
		bad(t, i, w, "returned %d", ret);
		return;
	}
	if (res != (a->ran ? (const void *)a : NULL))
		bad(t, i, w, "result %p, expected %p (body %s)", res,
		    a->ran ? (const void *)a : NULL, a->ran ? "ran" : "did not run");
	if (a->err)
		bad(t, i, w, "read failed: %d", a->err);
	if (a->bytes + left != (released ? 1 : 0))
		bad(t, i, w, "byte accounting: read %d + left %d != written %d",
		    a->bytes, left, released ? 1 : 0);
	if (a->saw_cancel && ret != -ECANCELED)
		bad(t, i, w, "body saw the cancel but the call returned %d", ret);
	if (ret == 0 && (!a->ran || a->bytes != 1))
		bad(t, i, w, "returned 0 but the body did not finish by itself");
	if (ret == 0 && t_cancel && t_cancel < a->t_ret)
		bad(t, i, w, "returned 0 but the cancel finished %" PRIu64
		    " ns before the body returned", a->t_ret - t_cancel);
	switch (w) {
	case W_BEFORE:
		if (ret != -ECANCELED || a->ran)
			bad(t, i, w, "cancelled token: returned %d, body %s", ret,
			    a->ran ? "ran" : "did not run");
		break;
	case W_RIGHT_AFTER:
	case W_AT:
		if (ret != -ECANCELED)
			bad(t, i, w, "blocked body cancelled: returned %d", ret);
		break;
	case W_AFTER:
		if (ret != 0)
			bad(t, i, w, "cancel after the body returned: returned %d",
			    ret);
		break;
	default:
		break;
	}
}

START_TEST(race_plain_read)
{
	struct tally t = { 0 };
	struct h_rng r;
	bool pinned;
	long i;

	host_set(_i);
	h_rng_seed(&r, "race_plain_read");
	pinned = pin_setup();
	configure(0, RESEND_US);
	for (i = 0; i < h_scale(RACE_ITERS); i++) {
		enum when w = pick_when(&r, true);
		bool by_task = (w == W_RIGHT_AFTER || w == W_AT) &&
			       h_rng_below(&r, 4) == 0;
		uint64_t spin = h_rng_below(&r, MAX_SPIN_NS + 1);
		struct rd_arg a = { .gap_ns = h_pick_gap(&r, MAX_GAP_NS) };
		void *res = &t;		/* must be overwritten */
		uint64_t c_start = 0, t_cancel = 0;
		intr_token *tok;
		intr_task *task;
		int fds[2], ret;

		h_make_pipe(fds);
		a.fd = fds[0];
		ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
		if (w == W_BEFORE)
			ck_assert_int_eq(intr_token_cancel(tok), 0);
		ck_assert_int_eq(host_spawn(&task, tok, read_body, &a), 0);
		switch (w) {
		case W_BEFORE:
			break;
		case W_RIGHT_AFTER:
			c_start = h_now_ns();
			t_cancel = do_cancel(tok, task,
					     by_task ? HOW_TASK : HOW_TOKEN);
			break;
		case W_AT:
			h_spin_ns(spin);
			c_start = h_now_ns();
			t_cancel = do_cancel(tok, task,
					     by_task ? HOW_TASK : HOW_TOKEN);
			break;
		case W_AFTER:
			h_write_byte(fds[1]);
			wait_done(task, i, when_name[w]);
			t_cancel = do_cancel(tok, task, HOW_TOKEN);
			break;
		case W_AFTER_RACE:
			h_write_byte(fds[1]);
			h_spin_ns(spin);
			c_start = h_now_ns();
			t_cancel = do_cancel(tok, task, HOW_TOKEN);
			break;
		default:
			break;
		}
		ret = join_bounded(task, &res, i, when_name[w]);
		check_read_call(&t, i, w, ret, res, &a, pipe_avail(fds[0]),
				w == W_AFTER || w == W_AFTER_RACE, c_start,
				w == W_AFTER ? 0 : t_cancel);
		ck_assert_int_eq(intr_token_free(tok), 0);
		h_close_pipe(fds);
	}
	print_plain_tally("race_plain_read", &t);
	assert_tally(&t, pinned && h_full_scale());
}
END_TEST

/* ---------------------------------- 2. liburing's own io_uring_wait_cqe */

#ifdef HAVE_LIBURING

#define UD_DATA	0xda7aull
#define UD_STOP	0x5709ull

struct ur_arg {
	struct io_uring *ring;
	uint64_t gap_ns;
	uint64_t t_check;
	uint64_t t_call;
	uint64_t t_ret;		/* h_now_ns() just before an uncancelled return */
	bool ran;
	bool saw_cancel;
	int data_seen;
	int stop_seen;
	int other_seen;
	int eintr;
	int spurious;
	int err;
};

static void *uring_body(intr_ctx *ctx, void *p)
{
	struct ur_arg *a = p;

	a->ran = true;
	body_pin();
	while (!intr_cancelled(ctx)) {
		struct io_uring_cqe *cqe;
		uint64_t ud;
		int ret;

		gap_then_call(&a->t_check, a->gap_ns, &a->t_call);
		ret = io_uring_wait_cqe(a->ring, &cqe);
		if (ret == 0) {
			ud = cqe->user_data;
			io_uring_cqe_seen(a->ring, cqe);
			if (ud == UD_STOP) {
				a->stop_seen++;
				a->t_ret = h_now_ns();
				return a;
			}
			if (ud == UD_DATA)
				a->data_seen++;
			else
				a->other_seen++;
			continue;
		}
		if (ret == -EINTR) {
			if (eintr_cancelled(ctx, &a->eintr, &a->spurious))
				break;
			continue;
		}
		a->err = ret;
		a->t_ret = h_now_ns();
		return a;
	}
	a->saw_cancel = true;
	return a;
}

struct nop_count {
	long data_submitted;
	long stop_submitted;
	long data_seen;		/* by bodies */
	long stop_seen;
	long data_drained;	/* by the test, between iterations */
	long stop_drained;
	long other;
};

static void submit_nop(struct io_uring *ring, uint64_t ud)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	ck_assert_ptr_nonnull(sqe);
	io_uring_prep_nop(sqe);
	sqe->user_data = ud;
	ck_assert_int_eq(io_uring_submit(ring), 1);
}

static void maybe_nop(struct h_rng *r, bool data, struct io_uring *ring,
		      struct nop_count *nc)
{
	if (!data || h_rng_below(r, 2))
		return;
	submit_nop(ring, UD_DATA);
	nc->data_submitted++;
}

static void classify(uint64_t ud, struct nop_count *nc)
{
	if (ud == UD_DATA)
		nc->data_drained++;
	else if (ud == UD_STOP)
		nc->stop_drained++;
	else
		nc->other++;
}

/* Reap what no body took (no body is running on the ring now). */
static void drain_ring(struct io_uring *ring, struct nop_count *nc)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(ring, &cqe) == 0) {
		classify(cqe->user_data, nc);
		io_uring_cqe_seen(ring, cqe);
	}
}

/* Final drain: bounded wait for every submitted NOP to be accounted for. */
static void drain_ring_final(struct io_uring *ring, struct nop_count *nc)
{
	uint64_t end = h_deadline(WAIT_MS);

	drain_ring(ring, nc);
	while (nc->data_seen + nc->data_drained < nc->data_submitted ||
	       nc->stop_seen + nc->stop_drained < nc->stop_submitted) {
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 10000000 };
		struct io_uring_cqe *cqe;

		if (h_passed(end))
			break;
		if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) == 0) {
			classify(cqe->user_data, nc);
			io_uring_cqe_seen(ring, cqe);
		}
	}
}

static void race_uring(const char *name, bool data)
{
	struct nop_count nc = { 0 };
	struct tally t = { 0 };
	struct io_uring ring;
	struct h_rng r;
	bool pinned;
	long i;
	int ret;

	h_rng_seed(&r, name);
	pinned = pin_setup();
	configure(0, RESEND_US);
	ret = io_uring_queue_init(8, &ring, 0);
	ck_assert_msg(ret == 0, "io_uring_queue_init: %s", strerror(-ret));

	for (i = 0; i < h_scale(RACE_ITERS); i++) {
		enum when w = pick_when(&r, true);
		uint64_t spin = h_rng_below(&r, MAX_SPIN_NS + 1);
		struct ur_arg a = { .ring = &ring,
				    .gap_ns = h_pick_gap(&r, MAX_GAP_NS) };
		uint64_t c_start = 0, t_cancel = 0;
		void *res = &t;
		intr_token *tok;
		intr_task *task;

		ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
		if (w == W_BEFORE)
			ck_assert_int_eq(intr_token_cancel(tok), 0);
		maybe_nop(&r, data, &ring, &nc);
		ck_assert_int_eq(host_spawn(&task, tok, uring_body, &a), 0);
		maybe_nop(&r, data, &ring, &nc);
		switch (w) {
		case W_BEFORE:
			break;
		case W_RIGHT_AFTER:
			c_start = h_now_ns();
			ck_assert_int_eq(intr_token_cancel(tok), 0);
			t_cancel = h_now_ns();
			break;
		case W_AT:
			h_spin_ns(spin);
			maybe_nop(&r, data, &ring, &nc);
			c_start = h_now_ns();
			ck_assert_int_eq(intr_token_cancel(tok), 0);
			t_cancel = h_now_ns();
			break;
		case W_AFTER:
			submit_nop(&ring, UD_STOP);
			nc.stop_submitted++;
			wait_done(task, i, when_name[w]);
			ck_assert_int_eq(intr_token_cancel(tok), 0);
			break;
		case W_AFTER_RACE:
			submit_nop(&ring, UD_STOP);
			nc.stop_submitted++;
			h_spin_ns(spin);
			maybe_nop(&r, data, &ring, &nc);
			c_start = h_now_ns();
			ck_assert_int_eq(intr_token_cancel(tok), 0);
			t_cancel = h_now_ns();
			break;
		default:
			break;
		}
		maybe_nop(&r, data, &ring, &nc);
		ret = join_bounded(task, &res, i, when_name[w]);

		count_ret(&t, w, ret);
		count_gap(&t, a.t_check, a.t_call, c_start, t_cancel);
		t.eintr += a.eintr;
		t.spurious += a.spurious;
		nc.data_seen += a.data_seen;
		nc.stop_seen += a.stop_seen;
		nc.other += a.other_seen;
		if (!a.ran)
			t.skipped++;
		if (ret != 0 && ret != -ECANCELED)
			bad(&t, i, w, "returned %d", ret);
		if (res != (a.ran ? (void *)&a : NULL))
			bad(&t, i, w, "result %p, body %s", res,
			    a.ran ? "ran" : "did not run");
		if (a.err)
			bad(&t, i, w, "io_uring_wait_cqe: %d", a.err);
		if (a.saw_cancel && ret != -ECANCELED)
			bad(&t, i, w, "body saw the cancel, call returned %d", ret);
		if (ret == 0 && a.stop_seen != 1)
			bad(&t, i, w, "returned 0 but the body did not finish");
		if (ret == 0 && t_cancel && t_cancel < a.t_ret)
			bad(&t, i, w, "returned 0 but the cancel finished %" PRIu64
			    " ns before the body returned", a.t_ret - t_cancel);
		if (w == W_BEFORE && (ret != -ECANCELED || a.ran))
			bad(&t, i, w, "cancelled token: returned %d, body %s",
			    ret, a.ran ? "ran" : "did not run");
		if ((w == W_RIGHT_AFTER || w == W_AT) && ret != -ECANCELED)
			bad(&t, i, w, "blocked body cancelled: returned %d", ret);
		if (w == W_AFTER && ret != 0)
			bad(&t, i, w, "cancel after the body returned: %d", ret);

		ck_assert_int_eq(intr_token_free(tok), 0);
		drain_ring(&ring, &nc);
	}
	drain_ring_final(&ring, &nc);
	io_uring_queue_exit(&ring);

	print_plain_tally(name, &t);
	printf("%s: NOPs: data %ld submitted, %ld seen by bodies, %ld drained; "
	       "stop %ld submitted, %ld seen, %ld drained; %ld unknown\n",
	       name, nc.data_submitted, nc.data_seen, nc.data_drained,
	       nc.stop_submitted, nc.stop_seen, nc.stop_drained, nc.other);
	fflush(stdout);
	ck_assert_msg(nc.data_seen + nc.data_drained == nc.data_submitted,
		      "data CQEs: %ld seen + %ld drained != %ld submitted",
		      nc.data_seen, nc.data_drained, nc.data_submitted);
	ck_assert_msg(nc.stop_seen + nc.stop_drained == nc.stop_submitted,
		      "stop CQEs: %ld seen + %ld drained != %ld submitted",
		      nc.stop_seen, nc.stop_drained, nc.stop_submitted);
	ck_assert_int_eq(nc.other, 0);
	assert_tally(&t, pinned && h_full_scale());
}

START_TEST(race_uring_wait_cqe)
{
	host_set(_i);
	race_uring("race_uring_wait_cqe", false);
}
END_TEST

START_TEST(race_uring_wait_cqe_nops)
{
	host_set(_i);
	race_uring("race_uring_wait_cqe_nops", true);
}
END_TEST

#endif /* HAVE_LIBURING */

/* ---------------------------- 3. no stale interrupt on a one-worker pool */

struct quiet_arg {
	pid_t tid;
	int eintr;
	int cancelled;
	int err;
};

/* A call that a stray signal would break: five 20 us sleeps. */
static void *quiet_body(intr_ctx *ctx, void *p)
{
	struct quiet_arg *q = p;

	q->tid = h_gettid();
	body_pin();
	h_quiet_sleeps(ctx, 5, &q->eintr, &q->cancelled, &q->err);
	return q;
}

START_TEST(race_no_stale_interrupt)
{
	long b_eintr = 0, b_cancelled = 0, b_bad = 0, other_worker = 0;
	struct tally t = { 0 };
	struct h_rng r;
	bool pinned;
	long i;

	host_set(_i);
	h_rng_seed(&r, "race_no_stale_interrupt");
	pinned = pin_setup();
	configure(1, 20);
	host_max(1);
	for (i = 0; i < h_scale(RACE_ITERS); i++) {
		/* A released by a byte then cancelled, or cancelled blocked */
		bool released = h_rng_below(&r, 2);
		enum when w = released ? W_AFTER_RACE : W_AT;
		uint64_t spin = h_rng_below(&r, MAX_SPIN_NS + 1);
		struct rd_arg a = { .gap_ns = h_pick_gap(&r, MAX_GAP_NS) };
		struct quiet_arg q = { 0 };
		void *res = &t, *qres = NULL;
		intr_token *ta, *tb;
		intr_task *task;
		uint64_t c_start, t_cancel;
		int fds[2], ret;

		h_make_pipe(fds);
		a.fd = fds[0];
		ck_assert_int_eq(intr_token_new(&ta, NULL), 0);
		ck_assert_int_eq(host_spawn(&task, ta, read_body, &a), 0);
		if (released)
			h_write_byte(fds[1]);
		h_spin_ns(spin);
		c_start = h_now_ns();
		ck_assert_int_eq(intr_token_cancel(ta), 0);
		t_cancel = h_now_ns();
		ret = join_bounded(task, &res, i, when_name[w]);
		check_read_call(&t, i, w, ret, res, &a, pipe_avail(fds[0]),
				released, c_start, t_cancel);
		ck_assert_int_eq(intr_token_free(ta), 0);
		h_close_pipe(fds);

		/* B: same worker, fresh token, never cancelled */
		ck_assert_int_eq(intr_token_new(&tb, NULL), 0);
		ret = host_spawn(&task, tb, quiet_body, &q);
		ck_assert_msg(ret == 0,
			      "iteration %ld: spawn after the only worker's call returned: %d",
			      i, ret);
		ret = join_bounded(task, &qres, i, "uncancelled call after a cancel");
		if (a.ran && q.tid != a.tid)
			other_worker++;
		b_eintr += q.eintr;
		b_cancelled += q.cancelled;
		if (ret != 0 || qres != &q || q.err || q.eintr || q.cancelled) {
			if (b_bad++ < MAX_REPORTS)
				printf("  iteration %ld (%s, spin %" PRIu64
				       " ns): next call returned %d, %d EINTR, "
				       "intr_cancelled true %d times, err %d\n",
				       i, when_name[w], spin, ret, q.eintr,
				       q.cancelled, q.err);
		}
		ck_assert_int_eq(intr_token_free(tb), 0);
	}
	print_plain_tally("race_no_stale_interrupt (call A)", &t);
	printf("race_no_stale_interrupt (call B): %ld EINTR, %ld cancelled, "
	       "%ld broken, %ld on another worker\n",
	       b_eintr, b_cancelled, b_bad, other_worker);
	fflush(stdout);
	ck_assert_msg(other_worker == 0,
		      "max_workers = 1 but %ld calls ran on another thread",
		      other_worker);
	ck_assert_msg(b_eintr == 0,
		      "%ld stale interrupts reached the next call on the worker",
		      b_eintr);
	ck_assert_msg(b_cancelled == 0,
		      "intr_cancelled() true %ld times in a never-cancelled call",
		      b_cancelled);
	ck_assert_msg(b_bad == 0, "%ld uncancelled calls went wrong", b_bad);
	assert_tally(&t, pinned && h_full_scale());
}
END_TEST

/* ----------------------------------- 4. data: no byte lost to a cancel */

struct data_arg {
	int fd;
	int want;
	uint64_t gap_ns;
	uint64_t t_check;
	uint64_t t_call;
	bool ran;
	bool saw_cancel;
	int bytes;
	int eintr;
	int spurious;
	int err;
	uint64_t t_ret;
};

static void *data_body(intr_ctx *ctx, void *p)
{
	struct data_arg *a = p;
	char buf[256];

	a->ran = true;
	body_pin();
	while (!intr_cancelled(ctx)) {
		ssize_t n;

		if (a->bytes == a->want) {
			a->t_ret = h_now_ns();
			return a;
		}
		gap_then_call(&a->t_check, a->gap_ns, &a->t_call);
		n = read(a->fd, buf, sizeof(buf));
		if (n > 0) {
			a->bytes += (int)n;
			continue;
		}
		if (n < 0 && errno == EINTR) {
			if (eintr_cancelled(ctx, &a->eintr, &a->spurious))
				break;
			continue;
		}
		a->err = n < 0 ? errno : -1;
		a->t_ret = h_now_ns();
		return a;
	}
	a->saw_cancel = true;
	return a;
}

START_TEST(race_data_read)
{
	long written = 0, read_total = 0, left_total = 0;
	struct tally t = { 0 };
	struct h_rng r;
	long i;

	host_set(_i);
	h_rng_seed(&r, "race_data_read");
	pin_setup();
	configure(0, RESEND_US);
	for (i = 0; i < h_scale(RACE_ITERS); i++) {
		enum when w = pick_when(&r, true);
		uint64_t spin = h_rng_below(&r, MAX_SPIN_NS + 1);
		bool writer_first = h_rng_below(&r, 2);
		struct data_arg a = {
			.gap_ns = h_pick_gap(&r, MAX_GAP_NS / 4)
		};
		struct writer wa = { 0 };
		void *res = &t;
		uint64_t c_start = 0, t_cancel = 0;
		intr_token *tok;
		intr_task *task;
		pthread_t wr;
		int fds[2], ret, left;

		if (w == W_AFTER_RACE)	/* same as W_AT here */
			w = W_AT;
		h_make_pipe(fds);
		wa.fd = fds[1];
		/* less than a pipe holds */
		wa.total = 1 + (int)h_rng_below(&r, 8192);
		wa.seed = h_rng_next(&r);
		a.fd = fds[0];
		a.want = wa.total;
		ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
		if (w == W_BEFORE)
			ck_assert_int_eq(intr_token_cancel(tok), 0);
		if (writer_first)
			ck_assert_int_eq(pthread_create(&wr, NULL, writer_main, &wa), 0);
		ck_assert_int_eq(host_spawn(&task, tok, data_body, &a), 0);
		if (!writer_first)
			ck_assert_int_eq(pthread_create(&wr, NULL, writer_main, &wa), 0);
		switch (w) {
		case W_BEFORE:
			break;
		case W_RIGHT_AFTER:
			c_start = h_now_ns();
			ck_assert_int_eq(intr_token_cancel(tok), 0);
			t_cancel = h_now_ns();
			break;
		case W_AT:
			h_spin_ns(spin);
			c_start = h_now_ns();
			ck_assert_int_eq(intr_token_cancel(tok), 0);
			t_cancel = h_now_ns();
			break;
		case W_AFTER:
			wait_done(task, i, when_name[w]);
			ck_assert_int_eq(intr_token_cancel(tok), 0);
			break;
		default:
			break;
		}
		ret = join_bounded(task, &res, i, when_name[w]);
		ck_assert_int_eq(pthread_join(wr, NULL), 0);
		ck_assert_int_eq(wa.err, 0);
		ck_assert_int_eq(wa.written, wa.total);
		left = pipe_avail(fds[0]);

		count_ret(&t, w, ret);
		count_gap(&t, a.t_check, a.t_call, c_start, t_cancel);
		t.eintr += a.eintr;
		t.spurious += a.spurious;
		written += wa.written;
		read_total += a.bytes;
		left_total += left;
		if (!a.ran)
			t.skipped++;
		if (ret != 0 && ret != -ECANCELED)
			bad(&t, i, w, "returned %d", ret);
		if (res != (a.ran ? (void *)&a : NULL))
			bad(&t, i, w, "result %p, body %s", res,
			    a.ran ? "ran" : "did not run");
		if (a.err)
			bad(&t, i, w, "read failed: %d", a.err);
		if (a.bytes + left != wa.written)
			bad(&t, i, w, "bytes: read %d + left in pipe %d != written %d",
			    a.bytes, left, wa.written);
		if (a.saw_cancel && ret != -ECANCELED)
			bad(&t, i, w, "body saw the cancel, call returned %d", ret);
		if (ret == 0 && a.bytes != a.want)
			bad(&t, i, w, "returned 0 with %d of %d bytes read",
			    a.bytes, a.want);
		if (ret == 0 && t_cancel && t_cancel < a.t_ret)
			bad(&t, i, w, "returned 0 but the cancel finished %" PRIu64
			    " ns before the body returned", a.t_ret - t_cancel);
		if (w == W_BEFORE && (ret != -ECANCELED || a.ran))
			bad(&t, i, w, "cancelled token: returned %d, body %s",
			    ret, a.ran ? "ran" : "did not run");
		if (w == W_AFTER && ret != 0)
			bad(&t, i, w, "cancel after the body returned: %d", ret);

		ck_assert_int_eq(intr_token_free(tok), 0);
		h_close_pipe(fds);
	}
	print_plain_tally("race_data_read", &t);
	printf("race_data_read: %ld bytes written, %ld read by bodies, "
	       "%ld left in pipes\n", written, read_total, left_total);
	fflush(stdout);
	ck_assert_int_eq(read_total + left_total, written);
	assert_tally(&t, false);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *make_suite(void)
{
	Suite *s = suite_create("race");
	TCase *tc;
#ifdef HAVE_LIBURING
	static char why[160];
#endif

	tc = h_tcase(s, "plain_read", TEST_TIMEOUT);
	tcase_add_loop_test(tc, race_plain_read, 0, H_HOSTS);
#ifdef HAVE_LIBURING
	/* Where io_uring is not permitted, one line says so; any other
	 * failure to set up a ring fails the tests. */
	if (h_uring_permitted(why, sizeof(why)) == 0) {
		h_skip_test("race_uring_wait_cqe, race_uring_wait_cqe_nops",
			    why);
	} else {
		tc = h_tcase(s, "uring_wait_cqe", TEST_TIMEOUT);
		tcase_add_loop_test(tc, race_uring_wait_cqe, 0, H_HOSTS);
		tcase_add_loop_test(tc, race_uring_wait_cqe_nops, 0, H_HOSTS);
	}
#endif
	tc = h_tcase(s, "stale", TEST_TIMEOUT);
	tcase_add_loop_test(tc, race_no_stale_interrupt, 0, H_HOSTS);
	tc = h_tcase(s, "data", TEST_TIMEOUT);
	tcase_add_loop_test(tc, race_data_read, 0, H_HOSTS);
	return s;
}

int main(void)
{
	return h_run_suite(make_suite());
}
