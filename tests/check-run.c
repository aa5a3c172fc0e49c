/* SPDX-License-Identifier: MIT */
/*
 * Running bodies: run_interruptible, tasks, the ctx functions, finalizers,
 * signal masks, nesting, configuration and errno hygiene.
 *
 * Bodies never call Check's assertions (they run on worker threads); they
 * record what they saw and the test asserts it after the join.  Every wait,
 * in the test and in the bodies, is bounded.
 */
#include "config.h"

#include "harness.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define WAIT_MS		5000	/* bound on waits for the library */
#define BODY_MS		10000	/* bound on waits inside a body */
#define BODY_DONE	BODY_MARK(0xd0e)

/* ------------------------------------------------------------ helpers */

static void configure(unsigned max_workers, unsigned idle_ms, int signo)
{
	struct intr_config cfg;

	intr_config_default(&cfg);
	cfg.max_workers = max_workers;
	if (idle_ms)
		cfg.idle_ms = idle_ms;
	if (signo)
		cfg.signo = signo;
	ck_assert_int_eq(intr_configure(&cfg), 0);
}

/* ------------------------------------------------------------ jobs */

/*
 * A job is a body the test controls: it announces itself on its gate, then
 * waits (bounded) for the test to open the gate or for a cancel.
 */
struct job {
	struct h_gate g;
	int runs;		/* times the body started */
	intr_ctx *ctx;		/* smuggled out of the body */
	intr_token *ctx_tok;	/* intr_ctx_token(ctx) seen in the body */
	pid_t tid;		/* the worker's thread id */
	int reason;		/* intr_reason(ctx) when the body ended */
	int ctx_tok_reason;	/* intr_token_reason(ctx_tok) then */
	bool cancelled_seen;	/* intr_cancelled(ctx) then */
};

static void job_init(struct job *j)
{
	memset(j, 0, sizeof(*j));
	h_gate_init(&j->g);
	j->reason = 1;
	j->ctx_tok_reason = 1;
}

static void job_fini(struct job *j)
{
	h_gate_fini(&j->g);
}

static void job_release(struct job *j)
{
	h_gate_open(&j->g);
}

/* Wait (bounded) until the body has announced itself. */
static void job_wait_up(struct job *j)
{
	h_gate_wait_up(&j->g, WAIT_MS);
}

/* Body side: record who we are and tell the test we run. */
static bool job_announce(intr_ctx *ctx, struct job *j)
{
	j->ctx = ctx;
	j->ctx_tok = intr_ctx_token(ctx);
	j->tid = h_gettid();
	__atomic_add_fetch(&j->runs, 1, __ATOMIC_SEQ_CST);
	return h_gate_announce(&j->g);
}

/* Body side: wait for the gate; returns how the wait ended. */
static void *gate_wait(intr_ctx *ctx, struct job *j, bool heed_cancel)
{
	return h_gate_wait(ctx, &j->g, BODY_MS, heed_cancel);
}

static void *job_body(intr_ctx *ctx, void *arg)
{
	struct job *j = arg;
	void *woke;

	if (!job_announce(ctx, j))
		return BODY_ERROR;
	woke = gate_wait(ctx, j, true);
	j->reason = intr_reason(ctx);
	j->ctx_tok_reason = intr_token_reason(j->ctx_tok);
	j->cancelled_seen = intr_cancelled(ctx);
	return woke;
}

/* Like job_body, but ignores cancels: only the gate ends it. */
static void *stubborn_body(intr_ctx *ctx, void *arg)
{
	struct job *j = arg;

	if (!job_announce(ctx, j))
		return BODY_ERROR;
	return gate_wait(ctx, j, false);
}

static void *count_body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	__atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
	return arg;
}

static intr_task *spawn_job(intr_token *tok, intr_fn fn, struct job *j)
{
	intr_task *t = NULL;

	ck_assert_int_eq(intr_spawn(&t, tok, fn, j), 0);
	ck_assert_ptr_nonnull(t);
	job_wait_up(j);
	return t;
}

/* ------------------------------------------------------------ run */

START_TEST(test_run_returns_result)
{
	intr_token *tok = h_new_token(NULL);
	int count = 0;
	void *res = NULL;

	ck_assert_int_eq(run_interruptible(NULL, count_body, &count, &res), 0);
	ck_assert_ptr_eq(res, &count);
	ck_assert_int_eq(count, 1);

	res = NULL;
	ck_assert_int_eq(run_interruptible(tok, count_body, &count, &res), 0);
	ck_assert_ptr_eq(res, &count);
	ck_assert_int_eq(count, 2);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_run_result_may_be_null)
{
	int count = 0;

	ck_assert_int_eq(run_interruptible(NULL, count_body, &count, NULL), 0);
	ck_assert_int_eq(count, 1);
}
END_TEST

START_TEST(test_run_fn_null)
{
	intr_task *t = NULL;
	void *res = BODY_DONE;
	int count = 0;

	ck_assert_int_eq(run_interruptible(NULL, NULL, NULL, &res), -EINVAL);
	ck_assert_int_eq(intr_spawn(&t, NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(intr_spawn(NULL, NULL, count_body, &count), -EINVAL);
	ck_assert_int_eq(count, 0);
}
END_TEST

START_TEST(test_run_dead_token)
{
	intr_token *tok = h_new_token(NULL);
	intr_task *t = NULL;
	int count = 0;

	ck_assert_int_eq(intr_token_free(tok), 0);
	ck_assert_int_eq(run_interruptible(tok, count_body, &count, NULL),
			 -EINVAL);
	ck_assert_int_eq(intr_spawn(&t, tok, count_body, &count), -EINVAL);
	ck_assert_int_eq(count, 0);
}
END_TEST

START_TEST(test_run_cancelled_token_skips_body)
{
	intr_token *tok = h_new_token(NULL);
	intr_token *kid = h_new_token(tok);
	int count = 0;
	void *res = BODY_DONE;

	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(run_interruptible(tok, count_body, &count, &res),
			 -ECANCELED);
	ck_assert_ptr_null(res);
	res = BODY_DONE;
	/* Cancelled through an ancestor: same thing. */
	ck_assert_int_eq(run_interruptible(kid, count_body, &count, &res),
			 -ECANCELED);
	ck_assert_ptr_null(res);
	ck_assert_int_eq(run_interruptible(kid, count_body, &count, NULL),
			 -ECANCELED);
	ck_assert_int_eq(count, 0);
	ck_assert_int_eq(intr_token_free(kid), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_run_timed_out_token_skips_body)
{
	intr_token *tok = h_new_token(NULL);
	int count = 0;
	void *res = BODY_DONE;

	ck_assert_int_eq(intr_token_cancel_after(tok, 0), 0);
	ck_assert_int_eq(run_interruptible(tok, count_body, &count, &res),
			 -ETIMEDOUT);
	ck_assert_ptr_null(res);
	ck_assert_int_eq(count, 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_spawn_cancelled_token)
{
	intr_token *tok = h_new_token(NULL);
	intr_task *t = NULL;
	int count = 0;
	void *res = BODY_DONE;

	ck_assert_int_eq(intr_token_cancel(tok), 0);
	/* API.md: spawn on a cancelled token succeeds, the join reports. */
	ck_assert_int_eq(intr_spawn(&t, tok, count_body, &count), 0);
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_null(res);
	ck_assert_int_eq(count, 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_run_deadline)
{
	struct job j;
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	void *res = NULL;

	job_init(&j);
	ck_assert_int_eq(intr_spawn(&t, tok, job_body, &j), 0);
	/* Armed once the body runs: on a loaded machine a deadline set
	 * before the spawn may fire before the body starts. */
	job_wait_up(&j);
	ck_assert_int_eq(intr_token_cancel_after(tok, 50 * 1000000ull), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ETIMEDOUT);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	ck_assert_int_eq(j.reason, -ETIMEDOUT);
	ck_assert_int_eq(j.ctx_tok_reason, -ETIMEDOUT);
	ck_assert_int_eq(intr_token_reason(tok), -ETIMEDOUT);
	ck_assert_int_eq(intr_token_free(tok), 0);
	job_fini(&j);
}
END_TEST

START_TEST(test_run_deadline_not_reached)
{
	intr_token *tok = h_new_token(NULL);
	int count = 0;
	void *res = NULL;

	ck_assert_int_eq(intr_token_cancel_after(tok, 10000 * 1000000ull), 0);
	ck_assert_int_eq(run_interruptible(tok, count_body, &count, &res), 0);
	ck_assert_ptr_eq(res, &count);
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_run_cancelled_result_kept)
{
	struct job j;
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	void *res = NULL;

	job_init(&j);
	t = spawn_job(tok, job_body, &j);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	/* The body ran and its value reached the caller. */
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	ck_assert_int_eq(j.runs, 1);
	ck_assert_int_eq(j.reason, -ECANCELED);
	ck_assert(j.cancelled_seen);
	ck_assert_int_eq(intr_token_free(tok), 0);
	job_fini(&j);
}
END_TEST

START_TEST(test_run_cancel_after_return)
{
	intr_token *tok = h_new_token(NULL);
	int count = 0;
	void *res = NULL;

	ck_assert_int_eq(run_interruptible(tok, count_body, &count, &res), 0);
	ck_assert_ptr_eq(res, &count);
	/* Too late for that call; the next one never runs. */
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	res = BODY_DONE;
	ck_assert_int_eq(run_interruptible(tok, count_body, &count, &res),
			 -ECANCELED);
	ck_assert_ptr_null(res);
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* A plain read() of one byte from fd, retrying EINTR until the call is
 * cancelled or end (h_deadline) has passed: the body's result. */
static void *read_retrying_eintr(intr_ctx *ctx, int fd, uint64_t end)
{
	char c;

	for (;;) {
		if (read(fd, &c, 1) >= 0)
			return BODY_RELEASED;
		if (errno != EINTR)
			return BODY_ERROR;
		if (intr_cancelled(ctx))
			return BODY_CANCELLED;
		if (h_passed(end))
			return BODY_TIMEOUT;
	}
}

/* The cancel's signal is spent before the body blocks in a plain read()
 * that no wrapper makes: only a re-send (resend_us later) reaches the
 * read. */
struct late_read {
	int fds[2];
	atomic_int started;
};

static void *late_read_body(intr_ctx *ctx, void *arg)
{
	struct late_read *l = arg;
	struct timespec ts = { .tv_sec = BODY_MS / 1000 };
	uint64_t end = h_deadline(BODY_MS);

	atomic_store(&l->started, 1);
	/* Not acknowledged: intr_reason() only looks. */
	while (!intr_reason(ctx))
		if (h_passed(end))
			return BODY_TIMEOUT;
	/* The reason is stored before the signal is sent: wait here until
	 * a signal has been spent.  The cancel's own ends this sleep, or it
	 * came already, in user space, and only a re-send can end it; a
	 * sleep that runs out saw neither. */
	if (nanosleep(&ts, NULL) == 0 || errno != EINTR)
		return BODY_TIMEOUT;
	return read_retrying_eintr(ctx, l->fds[0], end);
}

START_TEST(test_run_cancel_before_plain_read_resent)
{
	struct late_read l;
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	void *res = NULL;

	memset(&l, 0, sizeof(l));
	h_make_pipe(l.fds);
	ck_assert_int_eq(intr_spawn(&t, tok, late_read_body, &l), 0);
	ck_assert(h_wait_atomic(&l.started, 1, BODY_MS));
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, &res, BODY_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	h_close_pipe(l.fds);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* A body blocked in a plain read() that retries EINTR unless cancelled. */
static void *plain_read_body(intr_ctx *ctx, void *arg)
{
	struct job *j = arg;
	uint64_t end = h_deadline(BODY_MS);

	if (!job_announce(ctx, j))
		return BODY_ERROR;
	return read_retrying_eintr(ctx, j->g.go[0], end);
}

START_TEST(test_run_plain_read_cancel)
{
	struct job j;
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	void *res = NULL;

	job_init(&j);
	t = spawn_job(tok, plain_read_body, &j);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	ck_assert_int_eq(intr_token_free(tok), 0);
	job_fini(&j);
}
END_TEST

/* ------------------------------------------------------------ tasks */

START_TEST(test_spawn_join)
{
	intr_task *t = NULL;
	int count = 0;
	void *res = NULL;

	ck_assert_int_eq(intr_spawn(&t, NULL, count_body, &count), 0);
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, &count);
	ck_assert_int_eq(count, 1);

	/* The result pointer may be NULL for the join too. */
	ck_assert_int_eq(intr_spawn(&t, NULL, count_body, &count), 0);
	ck_assert_int_eq(h_join_within(t, NULL, WAIT_MS), 0);
	ck_assert_int_eq(count, 2);
}
END_TEST

START_TEST(test_tryjoin_busy_then_result)
{
	struct job j;
	intr_task *t;
	void *res = BODY_DONE;

	job_init(&j);
	t = spawn_job(NULL, job_body, &j);
	ck_assert_int_eq(intr_tryjoin(t, &res), -EBUSY);
	ck_assert_int_eq(intr_tryjoin(t, &res), -EBUSY);
	job_release(&j);
	h_wait_readable(intr_task_fd(t), WAIT_MS, "task fd");
	ck_assert_int_eq(intr_tryjoin(t, &res), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	/* tryjoin joined it: the task is gone. */
	ck_assert_int_eq(intr_tryjoin(t, &res), -EINVAL);
	job_fini(&j);
}
END_TEST

/*
 * Joins racing the completion: tryjoin in a tight loop joins as early as
 * it can, often while the worker is still waking joiners.  Each must get
 * the body's result.  (The task then lives on until the worker lets go of
 * it; a wake into freed memory was once seen by memcheck in check-fork.)
 */
static void *self_body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

START_TEST(test_join_during_completion)
{
	long i, n = h_scale(20000);
	uint64_t stop = h_deadline(10000);
	intr_task *t;
	void *res;
	int r;

	for (i = 0; h_more_rounds(i, n, stop); i++) {
		uint64_t end = h_deadline(WAIT_MS);

		ck_assert_int_eq(intr_spawn(&t, NULL, self_body, &n), 0);
		while ((r = intr_tryjoin(t, &res)) == -EBUSY)
			ck_assert_msg(!h_passed(end), "call %ld never done", i);
		ck_assert_int_eq(r, 0);
		ck_assert_ptr_eq(res, &n);
	}
}
END_TEST

START_TEST(test_task_fd_readable_when_done)
{
	struct job j;
	intr_task *t;
	struct pollfd p = { .events = POLLIN };
	void *res = NULL;
	int fd;

	job_init(&j);
	t = spawn_job(NULL, job_body, &j);
	fd = intr_task_fd(t);
	ck_assert_int_ge(fd, 0);
	p.fd = fd;
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	h_sleep_ms(20);
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	job_release(&j);
	h_wait_readable(fd, WAIT_MS, "task fd");
	ck_assert_int_gt(poll(&p, 1, 0), 0);
	ck_assert(p.revents & POLLIN);
	ck_assert_int_eq(intr_join(t, &res), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	job_fini(&j);
}
END_TEST

START_TEST(test_task_cancel_only_that_task)
{
	struct job ja, jb;
	intr_token *tok = h_new_token(NULL);
	intr_task *a, *b;
	void *res = NULL;

	job_init(&ja);
	job_init(&jb);
	a = spawn_job(tok, job_body, &ja);
	b = spawn_job(tok, job_body, &jb);

	ck_assert_int_eq(intr_task_cancel(a), 0);
	ck_assert_int_eq(intr_task_cancel(a), 0);
	ck_assert_int_eq(h_join_within(a, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	ck_assert_int_eq(ja.reason, -ECANCELED);
	/* Not the token's tree. */
	ck_assert_int_eq(intr_token_reason(tok), 0);

	/* b is still blocked, then finishes normally when released. */
	ck_assert_int_eq(intr_tryjoin(b, &res), -EBUSY);
	job_release(&jb);
	res = NULL;
	ck_assert_int_eq(h_join_within(b, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	ck_assert_int_eq(jb.reason, 0);
	ck_assert(!jb.cancelled_seen);
	ck_assert_int_eq(intr_token_free(tok), 0);
	job_fini(&ja);
	job_fini(&jb);
}
END_TEST

START_TEST(test_task_cancel_null_token)
{
	struct job j;
	intr_task *t;
	void *res = NULL;

	/* A call started without a token can still be cancelled alone. */
	job_init(&j);
	t = spawn_job(NULL, job_body, &j);
	ck_assert_int_eq(intr_task_cancel(t), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	job_fini(&j);
}
END_TEST

START_TEST(test_task_cancel_after_done)
{
	intr_task *t = NULL;
	int count = 0;
	void *res = NULL;

	ck_assert_int_eq(intr_spawn(&t, NULL, count_body, &count), 0);
	h_wait_readable(intr_task_fd(t), WAIT_MS, "task fd");
	/* The body already returned: not cancelled, the result stands. */
	ck_assert_int_eq(intr_task_cancel(t), 0);
	ck_assert_int_eq(intr_join(t, &res), 0);
	ck_assert_ptr_eq(res, &count);
}
END_TEST

START_TEST(test_task_misuse)
{
	intr_task *t = NULL;
	int count = 0;
	void *res = NULL;

	ck_assert_int_eq(intr_task_cancel(NULL), -EINVAL);
	ck_assert_int_eq(intr_join(NULL, &res), -EINVAL);
	ck_assert_int_eq(intr_tryjoin(NULL, &res), -EINVAL);
	ck_assert_int_eq(intr_task_fd(NULL), -EINVAL);

	ck_assert_int_eq(intr_spawn(&t, NULL, count_body, &count), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_int_eq(intr_task_cancel(t), -EINVAL);
	ck_assert_int_eq(intr_task_fd(t), -EINVAL);
}
END_TEST

START_TEST(test_join_twice)
{
	intr_task *t = NULL;
	int count = 0;
	void *res = NULL;

	ck_assert_int_eq(intr_spawn(&t, NULL, count_body, &count), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	res = BODY_DONE;
	ck_assert_int_eq(intr_join(t, &res), -EINVAL);
	ck_assert_int_eq(intr_tryjoin(t, &res), -EINVAL);
	ck_assert_int_eq(count, 1);
}
END_TEST

/* ------------------------------------------------------------ ctx */

static void count_fin(void *arg)
{
	__atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

START_TEST(test_ctx_null)
{
	int count = 0;

	ck_assert(!intr_cancelled(NULL));
	ck_assert_int_eq(intr_reason(NULL), -EINVAL);
	ck_assert_ptr_null(intr_ctx_token(NULL));
	ck_assert_int_eq(intr_defer(NULL, count_fin, &count), -EINVAL);
	ck_assert_int_eq(count, 0);
}
END_TEST

struct null_probe {
	bool cancelled;
	int reason;
	intr_token *tok;
	int defer;
	int count;
};

static void *null_probe_body(intr_ctx *ctx, void *arg)
{
	struct null_probe *p = arg;

	(void)ctx;
	p->cancelled = intr_cancelled(NULL);
	p->reason = intr_reason(NULL);
	p->tok = intr_ctx_token(NULL);
	p->defer = intr_defer(NULL, count_fin, &p->count);
	return BODY_DONE;
}

START_TEST(test_ctx_null_in_body)
{
	struct null_probe p = { .cancelled = true, .reason = 1,
				.tok = BODY_MARK(1), .defer = 1 };
	intr_token *tok = h_new_token(NULL);

	ck_assert_int_eq(run_interruptible(tok, null_probe_body, &p, NULL), 0);
	ck_assert(!p.cancelled);
	ck_assert_int_eq(p.reason, -EINVAL);
	ck_assert_ptr_null(p.tok);
	ck_assert_int_eq(p.defer, -EINVAL);
	ck_assert_int_eq(p.count, 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_ctx_off_worker_main)
{
	struct job j;
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	void *res = NULL;
	int count = 0;

	job_init(&j);
	t = spawn_job(tok, stubborn_body, &j);
	ck_assert_ptr_nonnull(j.ctx);

	ck_assert(!intr_cancelled(j.ctx));
	ck_assert_int_eq(intr_reason(j.ctx), -EINVAL);
	ck_assert_ptr_null(intr_ctx_token(j.ctx));
	ck_assert_int_eq(intr_defer(j.ctx, count_fin, &count), -EINVAL);

	/* Even with the call cancelled, the main thread gets nothing. */
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert(!intr_cancelled(j.ctx));
	ck_assert_int_eq(intr_reason(j.ctx), -EINVAL);
	ck_assert_ptr_null(intr_ctx_token(j.ctx));
	ck_assert_int_eq(intr_defer(j.ctx, count_fin, &count), -EINVAL);

	job_release(&j);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	/* The refused finalizers never ran. */
	ck_assert_int_eq(count, 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
	job_fini(&j);
}
END_TEST

struct foreign_probe {
	intr_ctx *victim;
	bool cancelled;
	int reason;
	intr_token *tok;
	int defer;
	int count;
};

static void *foreign_body(intr_ctx *ctx, void *arg)
{
	struct foreign_probe *p = arg;

	(void)ctx;
	p->cancelled = intr_cancelled(p->victim);
	p->reason = intr_reason(p->victim);
	p->tok = intr_ctx_token(p->victim);
	p->defer = intr_defer(p->victim, count_fin, &p->count);
	return BODY_DONE;
}

START_TEST(test_ctx_off_worker_foreign)
{
	struct job j;
	struct foreign_probe p = { .cancelled = true, .reason = 1,
				   .tok = BODY_MARK(1), .defer = 1 };
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	void *res = NULL;

	job_init(&j);
	t = spawn_job(tok, stubborn_body, &j);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	p.victim = j.ctx;

	/* Another body, on another worker, with a foreign ctx. */
	ck_assert_int_eq(run_interruptible(NULL, foreign_body, &p, &res), 0);
	ck_assert_ptr_eq(res, BODY_DONE);
	ck_assert(!p.cancelled);
	ck_assert_int_eq(p.reason, -EINVAL);
	ck_assert_ptr_null(p.tok);
	ck_assert_int_eq(p.defer, -EINVAL);

	job_release(&j);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	ck_assert_int_eq(p.count, 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
	job_fini(&j);
}
END_TEST

struct defer_probe {
	int defer_null;
	int defer_ok;
	int reason;
	bool cancelled;
	int count;
};

static void *defer_null_body(intr_ctx *ctx, void *arg)
{
	struct defer_probe *p = arg;

	p->defer_null = intr_defer(ctx, NULL, &p->count);
	p->defer_ok = intr_defer(ctx, count_fin, &p->count);
	p->reason = intr_reason(ctx);
	p->cancelled = intr_cancelled(ctx);
	return BODY_DONE;
}

START_TEST(test_defer_null_fn)
{
	struct defer_probe p = { .defer_null = 1, .defer_ok = 1, .reason = 1,
				 .cancelled = true };

	ck_assert_int_eq(run_interruptible(NULL, defer_null_body, &p, NULL), 0);
	ck_assert_int_eq(p.defer_null, -EINVAL);
	ck_assert_int_eq(p.defer_ok, 0);
	ck_assert_int_eq(p.reason, 0);
	ck_assert(!p.cancelled);
	ck_assert_int_eq(p.count, 1);
}
END_TEST

START_TEST(test_ctx_token_child_of_call_token)
{
	struct job j;
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	void *res = NULL;

	job_init(&j);
	t = spawn_job(tok, job_body, &j);
	ck_assert_ptr_nonnull(j.ctx_tok);
	ck_assert_ptr_ne(j.ctx_tok, tok);
	/* A child: the parent cannot be freed while the call runs. */
	ck_assert_int_eq(intr_token_free(tok), -EBUSY);

	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	/* Seen inside the body: the ctx token was cancelled with it. */
	ck_assert_int_eq(j.ctx_tok_reason, -ECANCELED);
	ck_assert_int_eq(j.reason, -ECANCELED);
	ck_assert_int_eq(intr_token_free(tok), 0);
	job_fini(&j);
}
END_TEST

START_TEST(test_ctx_token_task_cancel)
{
	struct job j;
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	void *res = NULL;

	job_init(&j);
	t = spawn_job(tok, job_body, &j);
	ck_assert_int_eq(intr_task_cancel(t), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	ck_assert_int_eq(j.ctx_tok_reason, -ECANCELED);
	ck_assert_int_eq(intr_token_reason(tok), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
	job_fini(&j);
}
END_TEST

struct kid_probe {
	struct job j;
	intr_token *kid;
	int new_ret;
	int kid_reason;
};

static void *kid_body(intr_ctx *ctx, void *arg)
{
	struct kid_probe *p = arg;
	void *woke;

	p->new_ret = intr_token_new(&p->kid, intr_ctx_token(ctx));
	if (!job_announce(ctx, &p->j))
		return BODY_ERROR;
	woke = gate_wait(ctx, &p->j, true);
	p->kid_reason = intr_token_reason(p->kid);
	return woke;
}

START_TEST(test_ctx_token_kids_detached)
{
	struct kid_probe p = { .new_ret = 1, .kid_reason = 1 };
	intr_task *t = NULL;
	void *res = NULL;

	job_init(&p.j);
	ck_assert_int_eq(intr_spawn(&t, NULL, kid_body, &p), 0);
	job_wait_up(&p.j);
	ck_assert_int_eq(p.new_ret, 0);
	ck_assert_ptr_nonnull(p.kid);
	ck_assert_int_eq(intr_task_cancel(t), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	ck_assert_int_eq(p.kid_reason, -ECANCELED);
	/* The call's token is gone; its child survives as a root. */
	ck_assert_int_eq(intr_token_reason(p.kid), -ECANCELED);
	ck_assert_int_eq(intr_token_free(p.kid), 0);
	job_fini(&p.j);
}
END_TEST

START_TEST(test_ctx_token_kids_detached_live)
{
	struct kid_probe p = { .new_ret = 1, .kid_reason = 1 };
	intr_task *t = NULL;
	void *res = NULL;

	job_init(&p.j);
	ck_assert_int_eq(intr_spawn(&t, NULL, kid_body, &p), 0);
	job_wait_up(&p.j);
	job_release(&p.j);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	ck_assert_int_eq(p.new_ret, 0);
	ck_assert_int_eq(p.kid_reason, 0);
	/* Detached root, still working. */
	ck_assert_int_eq(intr_token_reason(p.kid), 0);
	ck_assert_int_eq(intr_token_cancel(p.kid), 0);
	ck_assert_int_eq(intr_token_reason(p.kid), -ECANCELED);
	ck_assert_int_eq(intr_token_free(p.kid), 0);
	job_fini(&p.j);
}
END_TEST

/* ------------------------------------------------------------ finalizers */

#define FIN_MAX 8

struct fin_log {
	intr_ctx *ctx;
	struct job *j;		/* wait for a cancel when set */
	bool body_done;		/* the body is about to return */
	int n;
	int order[FIN_MAX];
	bool after_body[FIN_MAX];
	bool usr1_blocked[FIN_MAX];
	pid_t tid[FIN_MAX];
	pid_t body_tid;
	int defer_ret[FIN_MAX];
	int nested_defer;
};

struct fin {
	struct fin_log *log;
	int id;
};

static void log_fin(void *arg)
{
	struct fin *f = arg;
	struct fin_log *log = f->log;
	sigset_t set;
	int i = log->n++;

	if (i >= FIN_MAX)
		return;
	log->order[i] = f->id;
	log->after_body[i] = log->body_done;
	log->tid[i] = h_gettid();
	sigemptyset(&set);
	pthread_sigmask(SIG_BLOCK, NULL, &set);
	log->usr1_blocked[i] = sigismember(&set, SIGUSR1) == 1;
}

static struct fin fins[FIN_MAX];

static void *fin_body(intr_ctx *ctx, void *arg)
{
	struct fin_log *log = arg;
	void *ret = BODY_DONE;
	int i;

	log->ctx = ctx;
	log->body_tid = h_gettid();
	for (i = 0; i < 3; i++) {
		fins[i].log = log;
		fins[i].id = i + 1;
		log->defer_ret[i] = intr_defer(ctx, log_fin, &fins[i]);
	}
	if (log->j) {
		if (!job_announce(ctx, log->j))
			return BODY_ERROR;
		ret = gate_wait(ctx, log->j, true);
	}
	log->body_done = true;
	return ret;
}

static void check_lifo(const struct fin_log *log)
{
	int i;

	ck_assert_int_eq(log->n, 3);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(log->defer_ret[i], 0);
		ck_assert_int_eq(log->order[i], 3 - i);
		ck_assert(log->after_body[i]);
		/* On the worker that ran the body. */
		ck_assert_int_eq(log->tid[i], log->body_tid);
	}
}

START_TEST(test_fin_lifo)
{
	struct fin_log log;
	void *res = NULL;

	memset(&log, 0, sizeof(log));
	ck_assert_int_eq(run_interruptible(NULL, fin_body, &log, &res), 0);
	ck_assert_ptr_eq(res, BODY_DONE);
	/* All of them ran, in reverse, before run_interruptible returned. */
	check_lifo(&log);
}
END_TEST

START_TEST(test_fin_join)
{
	struct fin_log log;
	intr_task *t = NULL;
	void *res = NULL;

	memset(&log, 0, sizeof(log));
	ck_assert_int_eq(intr_spawn(&t, NULL, fin_body, &log), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_DONE);
	check_lifo(&log);
}
END_TEST

START_TEST(test_fin_when_cancelled)
{
	struct fin_log log;
	struct job j;
	intr_token *tok = h_new_token(NULL);
	intr_task *t = NULL;
	void *res = NULL;

	memset(&log, 0, sizeof(log));
	job_init(&j);
	log.j = &j;
	ck_assert_int_eq(intr_spawn(&t, tok, fin_body, &log), 0);
	job_wait_up(&j);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	check_lifo(&log);
	ck_assert_int_eq(intr_token_free(tok), 0);
	job_fini(&j);
}
END_TEST

static void fin_that_defers(void *arg)
{
	struct fin *f = arg;
	struct fin_log *log = f->log;

	log_fin(arg);
	fins[2].log = log;
	fins[2].id = 3;
	log->nested_defer = intr_defer(log->ctx, log_fin, &fins[2]);
}

static void *nested_fin_body(intr_ctx *ctx, void *arg)
{
	struct fin_log *log = arg;

	log->ctx = ctx;
	log->body_tid = h_gettid();
	fins[0].log = log;
	fins[0].id = 1;
	fins[1].log = log;
	fins[1].id = 2;
	log->defer_ret[0] = intr_defer(ctx, log_fin, &fins[0]);
	log->defer_ret[1] = intr_defer(ctx, fin_that_defers, &fins[1]);
	log->body_done = true;
	return BODY_DONE;
}

START_TEST(test_fin_registers_fin)
{
	struct fin_log log;
	void *res = NULL;
	int i;

	memset(&log, 0, sizeof(log));
	log.nested_defer = 1;
	ck_assert_int_eq(run_interruptible(NULL, nested_fin_body, &log, &res),
			 0);
	ck_assert_ptr_eq(res, BODY_DONE);
	ck_assert_int_eq(log.defer_ret[0], 0);
	ck_assert_int_eq(log.defer_ret[1], 0);
	ck_assert_int_eq(log.nested_defer, 0);
	/* 2 registers 3, which runs next; then 1. */
	ck_assert_int_eq(log.n, 3);
	ck_assert_int_eq(log.order[0], 2);
	ck_assert_int_eq(log.order[1], 3);
	ck_assert_int_eq(log.order[2], 1);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(log.tid[i], log.body_tid);
}
END_TEST

/* ------------------------------------------------------------ signals */

/*
 * A body runs under the mask of the thread that submitted it, with the
 * interrupt signal opened; its finalizers under the same mask with the
 * interrupt signal blocked.  (glibc's own two signals, 32 and 33, can
 * never be blocked and are left out of the comparison.)
 */
struct mask_probe {
	int ret;
	bool blocked[NSIG];
	bool fin_blocked[NSIG];
	int fin_runs;
	sigset_t submitter;
	int signo;
};

static void record_mask(bool *blocked)
{
	sigset_t set;
	int s;

	sigemptyset(&set);
	pthread_sigmask(SIG_BLOCK, NULL, &set);
	for (s = 1; s < NSIG; s++)
		blocked[s] = sigismember(&set, s) == 1;
}

static void mask_fin(void *arg)
{
	struct mask_probe *p = arg;

	record_mask(p->fin_blocked);
	p->fin_runs++;
}

static void *mask_body(intr_ctx *ctx, void *arg)
{
	struct mask_probe *p = arg;

	p->ret = intr_defer(ctx, mask_fin, p);
	record_mask(p->blocked);
	return BODY_DONE;
}

/* Submit mask_body from a thread that has set mask m. */
static void *mask_submitter(void *arg)
{
	struct mask_probe *p = arg;

	pthread_sigmask(SIG_SETMASK, &p->submitter, NULL);
	return (void *)(long)run_interruptible(NULL, mask_body, p, NULL);
}

static void check_mask_from(int signo, const int *block, int n)
{
	struct mask_probe p;
	pthread_t th;
	void *ret;
	int s;

	memset(&p, 0, sizeof(p));
	p.ret = 1;
	sigemptyset(&p.submitter);
	for (s = 0; s < n; s++)
		sigaddset(&p.submitter, block[s]);
	ck_assert_int_eq(pthread_create(&th, NULL, mask_submitter, &p), 0);
	ck_assert_int_eq(pthread_join(th, &ret), 0);
	ck_assert_int_eq((int)(long)ret, 0);
	ck_assert_int_eq(p.ret, 0);
	ck_assert_int_eq(p.fin_runs, 1);
	for (s = 1; s < NSIG; s++) {
		bool sub = sigismember(&p.submitter, s) == 1;

		if (s == 32 || s == 33)
			continue;
		if (s == signo) {
			ck_assert_msg(!p.blocked[s], "interrupt signal %d "
				      "blocked in the body", s);
			ck_assert_msg(p.fin_blocked[s], "interrupt signal %d "
				      "open in a finalizer", s);
			continue;
		}
		ck_assert_msg(p.blocked[s] == sub, "signal %d %s in the body, "
			      "%s on the submitter", s,
			      p.blocked[s] ? "blocked" : "open",
			      sub ? "blocked" : "open");
		ck_assert_msg(p.fin_blocked[s] == sub, "signal %d %s in a "
			      "finalizer, %s on the submitter", s,
			      p.fin_blocked[s] ? "blocked" : "open",
			      sub ? "blocked" : "open");
	}
}

START_TEST(test_body_sigmask)
{
	static const int a[] = { SIGINT, SIGUSR2 };
	static const int b[] = { SIGTERM, SIGUSR1, SIGWINCH };

	unsetenv("INTR_SIGNAL");
	configure(0, 0, 0);
	check_mask_from(SIGUSR1, a, 2);
	check_mask_from(SIGUSR1, b, 3);
	check_mask_from(SIGUSR1, NULL, 0);
}
END_TEST

START_TEST(test_body_sigmask_usr2)
{
	static const int a[] = { SIGUSR1, SIGUSR2, SIGINT };

	configure(0, 0, SIGUSR2);
	check_mask_from(SIGUSR2, a, 3);
}
END_TEST

START_TEST(test_fin_sigmask_when_cancelled)
{
	struct fin_log log;
	struct job j;
	intr_token *tok;
	intr_task *t = NULL;
	void *res = NULL;
	int i;

	unsetenv("INTR_SIGNAL");
	configure(0, 0, SIGUSR1);
	tok = h_new_token(NULL);
	memset(&log, 0, sizeof(log));
	job_init(&j);
	log.j = &j;
	ck_assert_int_eq(intr_spawn(&t, tok, fin_body, &log), 0);
	job_wait_up(&j);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	check_lifo(&log);
	for (i = 0; i < 3; i++)
		ck_assert_msg(log.usr1_blocked[i],
			      "SIGUSR1 open in finalizer %d", i);
	ck_assert_int_eq(intr_token_free(tok), 0);
	job_fini(&j);
}
END_TEST

/* Between calls a worker blocks every signal but the faults, whatever a
 * body or a finalizer did to its mask: SigBlk of the idle worker, read
 * from /proc once the call has returned (the worker restores its mask
 * before it reports the call complete). */
struct idle_mask {
	pid_t tid;
	bool in_fin;		/* open SIGINT in a finalizer, else in the body */
};

static void open_sigint(void *arg)
{
	sigset_t one;

	(void)arg;
	sigemptyset(&one);
	sigaddset(&one, SIGINT);
	pthread_sigmask(SIG_UNBLOCK, &one, NULL);
}

static void *idle_mask_body(intr_ctx *ctx, void *arg)
{
	struct idle_mask *m = arg;

	m->tid = h_gettid();
	if (m->in_fin)
		ck_assert_int_eq(intr_defer(ctx, open_sigint, NULL), 0);
	else
		open_sigint(NULL);
	return BODY_DONE;
}

static unsigned long long worker_sigblk(pid_t tid)
{
	char path[64], line[256];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "SigBlk:", 7))
			v = strtoull(line + 7, NULL, 16);
	fclose(f);
	return v;
}

START_TEST(test_idle_worker_mask)
{
	struct idle_mask m;
	unsigned long long blk;
	int in_fin;

	unsetenv("INTR_SIGNAL");
	configure(1, 0, SIGUSR1);
	for (in_fin = 0; in_fin < 2; in_fin++) {
		memset(&m, 0, sizeof(m));
		m.in_fin = in_fin;
		ck_assert_int_eq(run_interruptible(NULL, idle_mask_body, &m,
						   NULL), 0);
		ck_assert_int_ne(m.tid, 0);
		blk = worker_sigblk(m.tid);
		ck_assert_msg(blk & (1ull << (SIGINT - 1)),
			      "SIGINT left open on the idle worker by its %s "
			      "(SigBlk %llx)", in_fin ? "finalizer" : "body",
			      blk);
		ck_assert_msg(blk & (1ull << (SIGUSR1 - 1)),
			      "SIGUSR1 open on the idle worker (SigBlk %llx)",
			      blk);
	}
}
END_TEST

/* ------------------------------------------------------------ nesting */

struct nest {
	struct job j;
	int inner_ret;
	void *inner_res;
	int outer_tok_reason;
	bool inner_tok_differs;
};

static void *inner_body(intr_ctx *ctx, void *arg)
{
	struct nest *n = arg;

	return plain_read_body(ctx, &n->j);
}

static void *outer_body(intr_ctx *ctx, void *arg)
{
	struct nest *n = arg;
	intr_token *mine = intr_ctx_token(ctx);

	n->inner_ret = run_interruptible(mine, inner_body, n, &n->inner_res);
	n->inner_tok_differs = n->j.ctx_tok != mine;
	n->outer_tok_reason = intr_token_reason(mine);
	return BODY_DONE;
}

START_TEST(test_nested_result)
{
	struct nest n = { .inner_ret = 1, .outer_tok_reason = 1 };
	intr_task *t = NULL;
	void *res = NULL;

	job_init(&n.j);
	ck_assert_int_eq(intr_spawn(&t, NULL, outer_body, &n), 0);
	job_wait_up(&n.j);
	job_release(&n.j);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_DONE);
	ck_assert_int_eq(n.inner_ret, 0);
	ck_assert_ptr_eq(n.inner_res, BODY_RELEASED);
	ck_assert(n.inner_tok_differs);
	ck_assert_int_eq(n.outer_tok_reason, 0);
	job_fini(&n.j);
}
END_TEST

START_TEST(test_nested_cancel)
{
	struct nest n = { .inner_ret = 1, .outer_tok_reason = 1 };
	intr_token *tok = h_new_token(NULL);
	intr_task *t = NULL;
	void *res = NULL;

	job_init(&n.j);
	ck_assert_int_eq(intr_spawn(&t, tok, outer_body, &n), 0);
	/* Wait until the inner body runs, then cancel the outer token. */
	job_wait_up(&n.j);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_DONE);
	ck_assert_int_eq(n.inner_ret, -ECANCELED);
	ck_assert_ptr_eq(n.inner_res, BODY_CANCELLED);
	ck_assert_int_eq(n.outer_tok_reason, -ECANCELED);
	ck_assert_int_eq(intr_token_free(tok), 0);
	job_fini(&n.j);
}
END_TEST

START_TEST(test_nested_task_cancel)
{
	struct nest n = { .inner_ret = 1, .outer_tok_reason = 1 };
	intr_task *t = NULL;
	void *res = NULL;

	/* intr_task_cancel on the outer call reaches the nested one. */
	job_init(&n.j);
	ck_assert_int_eq(intr_spawn(&t, NULL, outer_body, &n), 0);
	job_wait_up(&n.j);
	ck_assert_int_eq(intr_task_cancel(t), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_int_eq(n.inner_ret, -ECANCELED);
	ck_assert_ptr_eq(n.inner_res, BODY_CANCELLED);
	job_fini(&n.j);
}
END_TEST

/* ------------------------------------------------------------ config */

START_TEST(test_configure_after_use)
{
	struct intr_config cfg;
	intr_token *tok = NULL;
	intr_task *t = NULL;
	int count = 0;

	intr_config_default(&cfg);
	switch (_i) {
	case 0:
		ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
		break;
	case 1:
		ck_assert_int_eq(run_interruptible(NULL, count_body, &count,
						   NULL), 0);
		break;
	case 2:
		ck_assert_int_eq(intr_spawn(&t, NULL, count_body, &count), 0);
		ck_assert_int_eq(h_join_within(t, NULL, WAIT_MS), 0);
		break;
	}
	ck_assert_int_eq(intr_configure(&cfg), -EBUSY);
	ck_assert_int_eq(intr_configure(&cfg), -EBUSY);
	if (tok)
		ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_configure_before_use)
{
	struct intr_config cfg;
	int count = 0;

	intr_config_default(&cfg);
	ck_assert_int_eq(intr_configure(&cfg), 0);
	ck_assert_int_eq(run_interruptible(NULL, count_body, &count, NULL), 0);
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(intr_configure(&cfg), -EBUSY);
}
END_TEST

START_TEST(test_configure_null)
{
	ck_assert_int_eq(intr_configure(NULL), -EINVAL);
}
END_TEST

static const int bad_signals[] = {
	SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGCHLD,
	0, 65, -1,
};

START_TEST(test_configure_bad_signal)
{
	struct intr_config cfg;

	intr_config_default(&cfg);
	cfg.signo = bad_signals[_i];
	ck_assert_msg(intr_configure(&cfg) == -EINVAL,
		      "signal %d accepted", bad_signals[_i]);
}
END_TEST

START_TEST(test_configure_resend_zero)
{
	struct intr_config cfg;

	intr_config_default(&cfg);
	cfg.resend_us = 0;
	ck_assert_int_eq(intr_configure(&cfg), -EINVAL);
}
END_TEST

START_TEST(test_configure_refused_then_ok)
{
	struct intr_config cfg;
	int count = 0;
	unsigned i;

	/* Refusals are not a first use: a good config still applies. */
	for (i = 0; i < sizeof(bad_signals) / sizeof(bad_signals[0]); i++) {
		intr_config_default(&cfg);
		cfg.signo = bad_signals[i];
		ck_assert_int_eq(intr_configure(&cfg), -EINVAL);
	}
	intr_config_default(&cfg);
	cfg.resend_us = 0;
	ck_assert_int_eq(intr_configure(&cfg), -EINVAL);
	ck_assert_int_eq(intr_configure(NULL), -EINVAL);
	intr_config_default(&cfg);
	cfg.signo = SIGUSR2;
	ck_assert_int_eq(intr_configure(&cfg), 0);
	ck_assert_int_eq(run_interruptible(NULL, count_body, &count, NULL), 0);
	ck_assert_int_eq(count, 1);
}
END_TEST

START_TEST(test_config_default)
{
	struct intr_config cfg;

	unsetenv("INTR_SIGNAL");
	memset(&cfg, 0xa5, sizeof(cfg));
	intr_config_default(&cfg);
	ck_assert_int_eq(cfg.signo, SIGUSR1);
	ck_assert_uint_eq(cfg.max_workers, 0);
	ck_assert_uint_eq(cfg.idle_ms, 10000);
	ck_assert_uint_eq(cfg.resend_us, 1000);
	/* The defaults are a usable configuration. */
	ck_assert_int_eq(intr_configure(&cfg), 0);
}
END_TEST

static const struct {
	const char *value;
	int rt_offset;		/* >= 0: SIGRTMIN + rt_offset */
	int signo;		/* otherwise this */
} env_signals[] = {
	{ "SIGUSR2", -1, SIGUSR2 },
	{ "USR2", -1, SIGUSR2 },
	{ "RTMIN+3", 3, 0 },
	{ "SIGRTMIN+3", 3, 0 },
	{ "12", -1, 12 },
	{ "SIGKILL", -1, SIGUSR1 },
	{ "SIGCHLD", -1, SIGUSR1 },
	{ "9", -1, SIGUSR1 },
	{ "65", -1, SIGUSR1 },
	{ "garbage", -1, SIGUSR1 },
};

START_TEST(test_config_env)
{
	struct intr_config cfg;
	int want = env_signals[_i].rt_offset >= 0 ?
		   SIGRTMIN + env_signals[_i].rt_offset : env_signals[_i].signo;

	ck_assert_int_eq(setenv("INTR_SIGNAL", env_signals[_i].value, 1), 0);
	intr_config_default(&cfg);
	ck_assert_msg(cfg.signo == want, "INTR_SIGNAL=%s gave %d, want %d",
		      env_signals[_i].value, cfg.signo, want);
}
END_TEST

START_TEST(test_max_workers_one_eagain)
{
	struct job j;
	intr_task *a, *b = NULL;
	int count = 0;
	void *res = NULL;

	configure(1, 0, 0);
	job_init(&j);
	a = spawn_job(NULL, job_body, &j);

	ck_assert_int_eq(intr_spawn(&b, NULL, count_body, &count), -EAGAIN);
	ck_assert_int_eq(run_interruptible(NULL, count_body, &count, &res),
			 -EAGAIN);
	ck_assert_int_eq(count, 0);

	job_release(&j);
	ck_assert_int_eq(h_join_within(a, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);

	/* The worker is free again as soon as the join returned. */
	b = NULL;
	ck_assert_int_eq(intr_spawn(&b, NULL, count_body, &count), 0);
	ck_assert_int_eq(h_join_within(b, &res, WAIT_MS), 0);
	ck_assert_int_eq(count, 1);
	job_fini(&j);
}
END_TEST

START_TEST(test_max_workers_one_sequential)
{
	int count = 0;
	int i;

	configure(1, 0, 0);
	for (i = 0; i < 1000; i++) {
		void *res = NULL;
		int ret;

		if (i % 10 == 0) {
			intr_token *tok = h_new_token(NULL);

			ret = run_interruptible(tok, count_body, &count, &res);
			ck_assert_int_eq(intr_token_free(tok), 0);
		} else {
			ret = run_interruptible(NULL, count_body, &count, &res);
		}
		ck_assert_msg(ret == 0, "call %d returned %d", i, ret);
		ck_assert_ptr_eq(res, &count);
	}
	ck_assert_int_eq(count, 1000);
}
END_TEST

static int thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static bool thread_alive(pid_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d", (int)tid);
	return access(path, F_OK) == 0;
}

START_TEST(test_idle_workers_exit)
{
	enum { N = 4 };
	struct job j[N];
	intr_task *t[N];
	intr_token *tok;
	uint64_t end;
	int base, busy, now = 0, alive = 0, count = 0, i, k;

	configure(0, 50, 0);
	tok = h_new_token(NULL);

	/*
	 * Warm up: one call starts whatever the runtime needs besides
	 * workers; the baseline is taken once that call's worker is gone.
	 */
	job_init(&j[0]);
	t[0] = spawn_job(tok, job_body, &j[0]);
	job_release(&j[0]);
	ck_assert_int_eq(h_join_within(t[0], NULL, WAIT_MS), 0);
	end = h_deadline(WAIT_MS);
	while (thread_alive(j[0].tid)) {
		if (h_passed(end))
			ck_abort_msg("idle worker alive after %d ms", WAIT_MS);
		h_sleep_ms(10);
	}
	job_fini(&j[0]);
	base = thread_count();

	for (i = 0; i < N; i++) {
		job_init(&j[i]);
		t[i] = spawn_job(tok, job_body, &j[i]);
	}
	/* Concurrent calls each have a dedicated worker thread. */
	for (i = 0; i < N; i++) {
		ck_assert_int_ne(j[i].tid, h_gettid());
		for (k = 0; k < i; k++)
			ck_assert_int_ne(j[i].tid, j[k].tid);
	}
	busy = thread_count();
	ck_assert_int_ge(busy, base + N);

	for (i = 0; i < N; i++) {
		void *res = NULL;

		job_release(&j[i]);
		ck_assert_int_eq(h_join_within(t[i], &res, WAIT_MS), 0);
		ck_assert_ptr_eq(res, BODY_RELEASED);
	}

	end = h_deadline(WAIT_MS);
	for (;;) {
		alive = 0;
		for (i = 0; i < N; i++)
			alive += thread_alive(j[i].tid);
		now = thread_count();
		if ((!alive && now <= base) || h_passed(end))
			break;
		h_sleep_ms(10);
	}
	ck_assert_msg(alive == 0, "%d idle workers still alive", alive);
	ck_assert_msg(now <= base, "%d threads, baseline %d", now, base);

	/* And the pool still works afterwards. */
	ck_assert_int_eq(run_interruptible(tok, count_body, &count, NULL), 0);
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(intr_token_free(tok), 0);
	for (i = 0; i < N; i++)
		job_fini(&j[i]);
}
END_TEST

START_TEST(test_version)
{
	char want[32];

	/* The library and the header it was built with agree, and both
	 * come from configure.ac (PACKAGE_VERSION, config.h). */
	ck_assert_ptr_nonnull(intr_version());
	ck_assert_str_eq(intr_version(), PACKAGE_VERSION);
	ck_assert_str_eq(intr_version(), INTR_VERSION);
	snprintf(want, sizeof(want), "%d.%d.%d", INTR_VERSION_MAJOR,
		 INTR_VERSION_MINOR, INTR_VERSION_PATCH);
	ck_assert_str_eq(intr_version(), want);
}
END_TEST

/* ------------------------------------------------------------ errno */

START_TEST(test_errno_run_paths)
{
	intr_token *tok = h_new_token(NULL);
	intr_token *dead = h_new_token(NULL);
	int count = 0;
	void *res = NULL;

	CHECK_KEEPS_ERRNO(0, run_interruptible(NULL, count_body, &count, &res));
	CHECK_KEEPS_ERRNO(0, run_interruptible(tok, count_body, &count, NULL));
	CHECK_KEEPS_ERRNO(-EINVAL, run_interruptible(tok, NULL, NULL, &res));
	CHECK_KEEPS_ERRNO(0, intr_token_free(dead));
	CHECK_KEEPS_ERRNO(-EINVAL,
			  run_interruptible(dead, count_body, &count, &res));
	CHECK_KEEPS_ERRNO(0, intr_token_cancel(tok));
	CHECK_KEEPS_ERRNO(-ECANCELED,
			  run_interruptible(tok, count_body, &count, &res));
	ck_assert_int_eq(count, 2);
	CHECK_KEEPS_ERRNO(0, intr_token_free(tok));
}
END_TEST

START_TEST(test_errno_task_paths)
{
	struct job j;
	intr_task *t = NULL, *u = NULL;
	intr_token *tok = h_new_token(NULL);
	void *res = NULL;
	int fd, err;

	job_init(&j);
	CHECK_KEEPS_ERRNO(-EINVAL, intr_spawn(&t, NULL, NULL, NULL));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_spawn(NULL, NULL, job_body, &j));
	CHECK_KEEPS_ERRNO(0, intr_spawn(&t, tok, job_body, &j));
	job_wait_up(&j);
	CHECK_KEEPS_ERRNO(-EBUSY, intr_tryjoin(t, &res));
	errno = MAGIC_ERRNO;
	fd = intr_task_fd(t);
	err = errno;
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(err, MAGIC_ERRNO);
	CHECK_KEEPS_ERRNO(0, intr_task_cancel(t));
	CHECK_KEEPS_ERRNO(0, intr_task_cancel(t));
	h_wait_readable(fd, WAIT_MS, "task fd");
	CHECK_KEEPS_ERRNO(-ECANCELED, intr_join(t, &res));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_join(t, &res));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_tryjoin(t, &res));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_task_cancel(t));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_task_cancel(NULL));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_task_fd(NULL));

	/* A plain successful join, and tryjoin of a finished task. */
	CHECK_KEEPS_ERRNO(0, intr_spawn(&u, NULL, count_body, &err));
	h_wait_readable(intr_task_fd(u), WAIT_MS, "task fd");
	CHECK_KEEPS_ERRNO(0, intr_tryjoin(u, &res));
	CHECK_KEEPS_ERRNO(0, intr_spawn(&u, NULL, count_body, &err));
	CHECK_KEEPS_ERRNO(0, intr_join(u, NULL));
	CHECK_KEEPS_ERRNO(0, intr_token_free(tok));
	job_fini(&j);
}
END_TEST

START_TEST(test_errno_misc_paths)
{
	struct intr_config cfg;
	const char *v;
	int err;

	errno = MAGIC_ERRNO;
	intr_config_default(&cfg);
	err = errno;
	ck_assert_int_eq(err, MAGIC_ERRNO);
	CHECK_KEEPS_ERRNO(-EINVAL, intr_configure(NULL));
	cfg.resend_us = 0;
	CHECK_KEEPS_ERRNO(-EINVAL, intr_configure(&cfg));
	intr_config_default(&cfg);
	cfg.signo = SIGKILL;
	CHECK_KEEPS_ERRNO(-EINVAL, intr_configure(&cfg));
	intr_config_default(&cfg);
	CHECK_KEEPS_ERRNO(0, intr_configure(&cfg));
	CHECK_KEEPS_ERRNO(0, run_interruptible(NULL, count_body, &err, NULL));
	CHECK_KEEPS_ERRNO(-EBUSY, intr_configure(&cfg));

	errno = MAGIC_ERRNO;
	v = intr_version();
	err = errno;
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(err, MAGIC_ERRNO);

	CHECK_KEEPS_ERRNO(false, intr_cancelled(NULL));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_reason(NULL));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_defer(NULL, count_fin, &err));
	errno = MAGIC_ERRNO;
	ck_assert_ptr_null(intr_ctx_token(NULL));
	ck_assert_int_eq(errno, MAGIC_ERRNO);
}
END_TEST

START_TEST(test_errno_env_refusal)
{
	struct intr_config cfg;
	int err;

	/* A refused INTR_SIGNAL prints a message; errno must survive. */
	ck_assert_int_eq(setenv("INTR_SIGNAL", "garbage", 1), 0);
	errno = MAGIC_ERRNO;
	intr_config_default(&cfg);
	err = errno;
	ck_assert_int_eq(err, MAGIC_ERRNO);
	ck_assert_int_eq(cfg.signo, SIGUSR1);
}
END_TEST

/* Inside a body: the ctx functions keep the worker's errno. */
struct errno_probe {
	int bad;		/* bitmask of calls that changed errno */
	int count;
};

static void *errno_body(intr_ctx *ctx, void *arg)
{
	struct errno_probe *p = arg;

	errno = MAGIC_ERRNO;
	(void)intr_cancelled(ctx);
	p->bad |= (errno != MAGIC_ERRNO) << 0;
	errno = MAGIC_ERRNO;
	(void)intr_reason(ctx);
	p->bad |= (errno != MAGIC_ERRNO) << 1;
	errno = MAGIC_ERRNO;
	(void)intr_ctx_token(ctx);
	p->bad |= (errno != MAGIC_ERRNO) << 2;
	errno = MAGIC_ERRNO;
	(void)intr_defer(ctx, count_fin, &p->count);
	p->bad |= (errno != MAGIC_ERRNO) << 3;
	errno = MAGIC_ERRNO;
	(void)intr_defer(ctx, NULL, &p->count);
	p->bad |= (errno != MAGIC_ERRNO) << 4;
	errno = MAGIC_ERRNO;
	(void)intr_reason(NULL);
	p->bad |= (errno != MAGIC_ERRNO) << 5;
	return BODY_DONE;
}

START_TEST(test_errno_ctx_paths)
{
	struct errno_probe p = { 0, 0 };

	ck_assert_int_eq(run_interruptible(NULL, errno_body, &p, NULL), 0);
	ck_assert_msg(p.bad == 0, "errno changed in the body (mask %#x)",
		      p.bad);
	ck_assert_int_eq(p.count, 1);
}
END_TEST

START_TEST(test_errno_eagain)
{
	struct job j;
	intr_task *a, *b = NULL;
	int count = 0;

	configure(1, 0, 0);
	job_init(&j);
	a = spawn_job(NULL, job_body, &j);
	CHECK_KEEPS_ERRNO(-EAGAIN, intr_spawn(&b, NULL, count_body, &count));
	CHECK_KEEPS_ERRNO(-EAGAIN,
			  run_interruptible(NULL, count_body, &count, NULL));
	job_release(&j);
	ck_assert_int_eq(h_join_within(a, NULL, WAIT_MS), 0);
	ck_assert_int_eq(count, 0);
	job_fini(&j);
}
END_TEST

/*
 * The interrupt's handler must leave the body's errno alone.  The body
 * holds the signal blocked until the cancel has made it pending, sets
 * errno, and unblocks it: the handler runs before pthread_sigmask returns.
 */
struct handler_probe {
	struct job j;
	int mask_ret;
	bool pending;		/* the signal became pending */
	int err;		/* errno after the handler ran */
	bool saw_cancel;
};

static void *handler_errno_body(intr_ctx *ctx, void *arg)
{
	struct handler_probe *p = arg;
	uint64_t end = h_deadline(WAIT_MS);
	sigset_t one, pend;

	sigemptyset(&one);
	sigaddset(&one, SIGUSR1);
	p->mask_ret = pthread_sigmask(SIG_BLOCK, &one, NULL);
	if (p->mask_ret || !job_announce(ctx, &p->j))
		return BODY_ERROR;
	while (!h_passed(end)) {
		sigemptyset(&pend);
		if (!sigpending(&pend) && sigismember(&pend, SIGUSR1) == 1) {
			p->pending = true;
			break;
		}
		h_spin_ns(100000);
	}
	errno = MAGIC_ERRNO;
	p->mask_ret = pthread_sigmask(SIG_UNBLOCK, &one, NULL);
	p->err = errno;
	p->saw_cancel = intr_cancelled(ctx);
	return BODY_DONE;
}

START_TEST(test_errno_body_across_handler)
{
	struct handler_probe p = { .mask_ret = 1, .err = 0 };
	intr_token *tok;
	intr_task *t = NULL;

	unsetenv("INTR_SIGNAL");
	configure(0, 0, SIGUSR1);
	tok = h_new_token(NULL);
	job_init(&p.j);
	ck_assert_int_eq(intr_spawn(&t, tok, handler_errno_body, &p), 0);
	job_wait_up(&p.j);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, NULL, WAIT_MS * 2), -ECANCELED);
	ck_assert_int_eq(p.mask_ret, 0);
	ck_assert_msg(p.pending, "the cancel never signalled the worker");
	ck_assert_int_eq(p.err, MAGIC_ERRNO);
	ck_assert(p.saw_cancel);
	ck_assert_int_eq(intr_token_free(tok), 0);
	job_fini(&p.j);
}
END_TEST

/* ------------------------------------------------------------ suite */

/* A finalizer cancels its own call's token.  The body has returned: the
 * call is DONE, so no signal is sent for it (none is pending on the
 * worker, where the finalizer runs with the interrupt signal blocked and
 * would find it), and the call's status stays 0, since it was not
 * cancelled before its body returned. */
struct fin_cancel {
	intr_ctx *ctx;
	int signo;
	int cancel;
	int sigpending_ret;
	int pending;
	int reason;
};

static void fin_cancel_own(void *arg)
{
	struct fin_cancel *p = arg;
	sigset_t pend;

	p->cancel = intr_token_cancel(intr_ctx_token(p->ctx));
	sigemptyset(&pend);
	p->sigpending_ret = sigpending(&pend);
	p->pending = sigismember(&pend, p->signo);
	p->reason = intr_reason(p->ctx);
}

static void *fin_cancel_body(intr_ctx *ctx, void *arg)
{
	struct fin_cancel *p = arg;

	p->ctx = ctx;
	return intr_defer(ctx, fin_cancel_own, p) ? BODY_ERROR : BODY_DONE;
}

START_TEST(test_fin_cancel_own_token_no_signal)
{
	struct intr_config cfg;
	struct fin_cancel p;
	void *res = NULL;

	memset(&p, 0, sizeof(p));
	intr_config_default(&cfg);
	p.signo = cfg.signo;
	p.pending = -1;
	ck_assert_int_eq(run_interruptible(NULL, fin_cancel_body, &p, &res),
			 0);
	ck_assert_ptr_eq(res, BODY_DONE);
	ck_assert_int_eq(p.cancel, 0);
	ck_assert_int_eq(p.reason, -ECANCELED);
	ck_assert_int_eq(p.sigpending_ret, 0);
	ck_assert_msg(p.pending == 0, "a cancel that reached a DONE call "
		      "sent the interrupt signal (%d): pending in its "
		      "finalizer", p.signo);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("run");
	TCase *tc;

	tc = h_tcase(s, "run", 30);
	tcase_add_test(tc, test_run_returns_result);
	tcase_add_test(tc, test_run_result_may_be_null);
	tcase_add_test(tc, test_run_fn_null);
	tcase_add_test(tc, test_run_dead_token);
	tcase_add_test(tc, test_run_cancelled_token_skips_body);
	tcase_add_test(tc, test_run_timed_out_token_skips_body);
	tcase_add_test(tc, test_spawn_cancelled_token);
	tcase_add_test(tc, test_run_deadline);
	tcase_add_test(tc, test_run_deadline_not_reached);
	tcase_add_test(tc, test_run_cancelled_result_kept);
	tcase_add_test(tc, test_run_cancel_after_return);
	tcase_add_test(tc, test_run_plain_read_cancel);
	tcase_add_test(tc, test_run_cancel_before_plain_read_resent);

	tc = h_tcase(s, "task", 30);
	tcase_add_test(tc, test_spawn_join);
	tcase_add_test(tc, test_tryjoin_busy_then_result);
	tcase_add_test(tc, test_join_during_completion);
	tcase_add_test(tc, test_task_fd_readable_when_done);
	tcase_add_test(tc, test_task_cancel_only_that_task);
	tcase_add_test(tc, test_task_cancel_null_token);
	tcase_add_test(tc, test_task_cancel_after_done);
	tcase_add_test(tc, test_task_misuse);
	tcase_add_test(tc, test_join_twice);

	tc = h_tcase(s, "ctx", 30);
	tcase_add_test(tc, test_ctx_null);
	tcase_add_test(tc, test_ctx_null_in_body);
	tcase_add_test(tc, test_ctx_off_worker_main);
	tcase_add_test(tc, test_ctx_off_worker_foreign);
	tcase_add_test(tc, test_defer_null_fn);
	tcase_add_test(tc, test_ctx_token_child_of_call_token);
	tcase_add_test(tc, test_ctx_token_task_cancel);
	tcase_add_test(tc, test_ctx_token_kids_detached);
	tcase_add_test(tc, test_ctx_token_kids_detached_live);

	tc = h_tcase(s, "finalizers", 30);
	tcase_add_test(tc, test_fin_lifo);
	tcase_add_test(tc, test_fin_join);
	tcase_add_test(tc, test_fin_when_cancelled);
	tcase_add_test(tc, test_fin_registers_fin);
	tcase_add_test(tc, test_fin_cancel_own_token_no_signal);

	tc = h_tcase(s, "signals", 30);
	tcase_add_test(tc, test_body_sigmask);
	tcase_add_test(tc, test_body_sigmask_usr2);
	tcase_add_test(tc, test_fin_sigmask_when_cancelled);
	tcase_add_test(tc, test_idle_worker_mask);

	tc = h_tcase(s, "nested", 30);
	tcase_add_test(tc, test_nested_result);
	tcase_add_test(tc, test_nested_cancel);
	tcase_add_test(tc, test_nested_task_cancel);

	tc = h_tcase(s, "config", 60);
	tcase_add_loop_test(tc, test_configure_after_use, 0, 3);
	tcase_add_test(tc, test_configure_before_use);
	tcase_add_test(tc, test_configure_null);
	tcase_add_loop_test(tc, test_configure_bad_signal, 0,
			    sizeof(bad_signals) / sizeof(bad_signals[0]));
	tcase_add_test(tc, test_configure_resend_zero);
	tcase_add_test(tc, test_configure_refused_then_ok);
	tcase_add_test(tc, test_config_default);
	tcase_add_loop_test(tc, test_config_env, 0,
			    sizeof(env_signals) / sizeof(env_signals[0]));
	tcase_add_test(tc, test_max_workers_one_eagain);
	tcase_add_test(tc, test_max_workers_one_sequential);
	tcase_add_test(tc, test_idle_workers_exit);
	tcase_add_test(tc, test_version);

	tc = h_tcase(s, "errno", 30);
	tcase_add_test(tc, test_errno_run_paths);
	tcase_add_test(tc, test_errno_task_paths);
	tcase_add_test(tc, test_errno_misc_paths);
	tcase_add_test(tc, test_errno_env_refusal);
	tcase_add_test(tc, test_errno_ctx_paths);
	tcase_add_test(tc, test_errno_eagain);
	tcase_add_test(tc, test_errno_body_across_handler);

	return s;
}

int main(void)
{
	return h_run_suite(make_suite());
}
