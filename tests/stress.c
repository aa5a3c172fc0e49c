/* SPDX-License-Identifier: MIT */
/*
 * stress: a soak of the whole library for a given time (STRESS_SECONDS or
 * --seconds N, default 60).  Several driver threads loop: each builds a
 * token tree (a root, children, sometimes grandchildren), starts one to
 * four calls on tokens of that tree, and picks one cancel plan for the
 * round: none, cancel before the spawn, cancel while the calls run (from
 * the driver or from the canceller thread, after a random delay), cancel
 * after they returned, or a deadline.  Bodies block in every way the
 * library knows: intr_read, intr_sleep, intr_poll, intr_cond_wait,
 * intr_uring_wait_cqe, a plain read() (the re-send path), a busy loop on
 * intr_cancelled(), a plain poll() ended by an intr_on_cancel() wake-up,
 * and nested calls (run_interruptible and intr_spawn inside a body, on the
 * call's own token, up to depth 3).  Every body registers finalizers.
 *
 * Invariants, each checked many times and printed with its counts:
 *   returned    every call returns, within 10 s of its cancel (else the
 *               watchdog prints what is stuck and the program fails);
 *   finalizers  every finalizer runs exactly once, before the call returns;
 *   spurious    a call whose tokens were never cancelled completes with
 *               its data, returns 0, and its plain read() sees no EINTR;
 *   outcome     a cancelled call returns 0 or the reason of its cancel,
 *               and a call that could only end by the cancel returns it;
 *   data        every byte written to a body's pipe was read by the body
 *               or is still in the pipe;
 *   wake        an intr_on_cancel() wake-up runs at most once, only for a
 *               cancelled call;
 *   pool        afterwards the pool shrinks back to its idle size.
 * The last line, "N passed, M failed", counts the invariants that held
 * and those broken; exit status 1 on any failure.  INTR_TEST_SEED repeats a schedule (per driver, as far as
 * threads allow).
 */
#include "config.h"

#include "clock.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>
#ifdef HAVE_LIBURING
#include <interruptible/uring.h>

#include "uring-permitted.h"
#endif

#define DRIVERS		4
#define MAX_CALLS	4		/* calls per round */
#define MAX_TOKENS	6		/* root, children, grandchildren */
#define MAX_DEPTH	3		/* nesting of calls in bodies */
#define FOREVER_NS	10000000000ull	/* a sleep only a cancel ends */
#define BOUND_NS	10000000000ull	/* watchdog: 10 s */
#define IDLE_MS		100		/* the pool's idle_ms here */
#define DATA_MAX	512

/* ------------------------------------------------------------ utilities */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(struct rng *r, uint64_t n)
{
	return rnd(r) % n;
}

/* ------------------------------------------------------------ invariants */

enum inv { I_RETURNED, I_FINALIZERS, I_SPURIOUS, I_OUTCOME, I_DATA, I_WAKE,
	   I_POOL, I_NR };

static const char *const inv_name[I_NR] = {
	"returned", "finalizers", "spurious", "outcome", "data", "wake", "pool",
};

static atomic_long inv_pass[I_NR], inv_fail[I_NR];
static atomic_int reports;

static void check(enum inv i, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void check(enum inv i, bool ok, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		atomic_fetch_add(&inv_pass[i], 1);
		return;
	}
	atomic_fetch_add(&inv_fail[i], 1);
	if (atomic_fetch_add(&reports, 1) >= 20)
		return;
	printf("FAIL %s: ", inv_name[i]);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* ------------------------------------------------------------ figures */

enum plan { P_NONE, P_BEFORE, P_DURING, P_FOREIGN, P_AFTER, P_DEADLINE,
	    P_NR };

static const char *const plan_name[P_NR] = {
	"no cancel", "cancel before spawn", "cancel during (driver)",
	"cancel during (other thread)", "cancel after return", "deadline",
};

enum kind { K_READ, K_SLEEP, K_POLL, K_COND, K_URING, K_PLAIN, K_BUSY,
	    K_WAKE, K_NEST_RUN, K_NEST_SPAWN, K_NR };

static const char *const kind_name[K_NR] = {
	"intr_read", "intr_sleep", "intr_poll", "intr_cond_wait",
	"intr_uring_wait_cqe", "plain read", "busy loop", "on_cancel wake",
	"nested run", "nested spawn",
};

static atomic_long n_rounds[P_NR];
static atomic_long n_calls, n_kind[K_NR], n_cancelled, n_completed;
static atomic_long n_deadlines_fired, n_depth[MAX_DEPTH + 1], n_wakes;
static atomic_long n_eintr_cancelled;

/* A line per invariant with its checks, then the total over invariants
 * (one broken check breaks its invariant); returns the number broken. */
static int print_invariants(void)
{
	int i, held = 0, broken = 0;

	for (i = 0; i < I_NR; i++) {
		printf("invariant %s: %ld checks passed, %ld failed\n",
		       inv_name[i], atomic_load(&inv_pass[i]),
		       atomic_load(&inv_fail[i]));
		if (atomic_load(&inv_fail[i]))
			broken++;
		else
			held++;
	}
	printf("%d passed, %d failed\n", held, broken);
	fflush(stdout);
	return broken;
}

/* ------------------------------------------------------------ calls */

/*
 * One call's record.  affected: some cancel (or deadline) reaches its
 * token; forever: the body waits for something only a cancel brings.
 */
struct rec {
	enum kind kind;
	int depth;
	bool affected;
	bool forever;
	int reason;		/* what a cancel makes it return */
	struct rng r;		/* the body's own choices */

	int fds[2];		/* data pipe (K_READ, K_POLL, K_PLAIN) */
	int written;		/* bytes the driver wrote */
	int got;		/* bytes the body read */
	int want;		/* bytes an unaffected body waits for */
	pthread_mutex_t m;	/* K_COND */
	pthread_cond_t c;
	bool pred;
	int wake_fds[2];	/* K_WAKE */
#ifdef HAVE_LIBURING
	struct io_uring *ring;	/* K_URING: the driver's, one per call slot */
#endif

	atomic_int fin_expected;
	atomic_int fin_runs;
	atomic_int fin_bad;	/* a finalizer ran twice */
	atomic_int wake_runs;
	bool ran;
	bool finished;		/* ended by itself, with its data */
	int eintr;		/* EINTRs seen by a plain read() */
	int err;		/* unexpected error inside the body */
	const char *err_what;
	int nested_bad;		/* nested calls with a broken invariant */
};

static void *body(intr_ctx *ctx, void *p);

struct fin {
	struct rec *rec;
	atomic_int runs;
	bool chain;		/* registers one more finalizer */
	struct fin *next_fin;
};

static void fin_fn(void *p)
{
	struct fin *f = p;

	if (atomic_fetch_add(&f->runs, 1) != 0)
		atomic_fetch_add(&f->rec->fin_bad, 1);
	atomic_fetch_add(&f->rec->fin_runs, 1);
}

/* The finalizers live as long as the call's record: a finalizer that ran
 * twice is still seen. */
#define MAX_FINS 4
struct call {
	struct rec rec;
	struct fin fins[MAX_FINS];
	intr_task *task;
	int tok_idx;
	int ret;
	void *res;
	bool joined;
};

static void add_fins(intr_ctx *ctx, struct call *c)
{
	int n = 1 + (int)below(&c->rec.r, 3), i;

	for (i = 0; i < n; i++) {
		c->fins[i].rec = &c->rec;
		if (intr_defer(ctx, fin_fn, &c->fins[i]) == 0)
			atomic_fetch_add(&c->rec.fin_expected, 1);
		else
			c->rec.err_what = "intr_defer";
	}
}

static void body_err(struct rec *r, const char *what, long v)
{
	if (!r->err_what) {
		r->err_what = what;
		r->err = (int)v;
	}
}

static bool is_reason(long v)
{
	return v == -ECANCELED || v == -ETIMEDOUT;
}

static void wake_fn(void *p)
{
	struct rec *r = p;

	atomic_fetch_add(&r->wake_runs, 1);
	if (write(r->wake_fds[1], "w", 1) != 1)
		body_err(r, "wake write", errno);
}

/* Whether the io_uring bodies run: built with liburing, and io_uring is
 * permitted here. */
static bool uring_ok;

/* Choose a kind for a call: forever kinds only where a cancel will come. */
static enum kind pick_kind(struct rng *r, int depth)
{
	for (;;) {
		enum kind k = (enum kind)below(r, K_NR);

		if (k == K_URING && !uring_ok)
			continue;
		if ((k == K_NEST_RUN || k == K_NEST_SPAWN) && depth >= MAX_DEPTH)
			continue;
		return k;
	}
}

static void rec_init(struct rec *r, enum kind k, int depth, bool affected,
		     bool forever, int reason, uint64_t seed)
{
	memset(r, 0, sizeof(*r));
	r->kind = k;
	r->depth = depth;
	r->affected = affected;
	r->forever = forever;
	r->reason = reason;
	r->r.s = seed;
	r->fds[0] = r->fds[1] = -1;
	r->wake_fds[0] = r->wake_fds[1] = -1;
	if (pipe2(r->fds, O_CLOEXEC))
		r->fds[0] = r->fds[1] = -1;
	if (k == K_WAKE && pipe2(r->wake_fds, O_CLOEXEC))
		r->wake_fds[0] = r->wake_fds[1] = -1;
	pthread_mutex_init(&r->m, NULL);
	pthread_cond_init(&r->c, NULL);
	atomic_fetch_add(&n_kind[k], 1);
	atomic_fetch_add(&n_depth[depth], 1);
}

static void rec_fini(struct rec *r)
{
	if (r->fds[0] >= 0) {
		close(r->fds[0]);
		close(r->fds[1]);
	}
	if (r->wake_fds[0] >= 0) {
		close(r->wake_fds[0]);
		close(r->wake_fds[1]);
	}
	pthread_mutex_destroy(&r->m);
	pthread_cond_destroy(&r->c);
}

/* Kinds that need the driver to feed them (data, a predicate) to finish. */
static bool needs_feed(enum kind k)
{
	return k == K_READ || k == K_POLL || k == K_COND || k == K_PLAIN;
}

/* The driver's feed: data into the pipe, or the predicate. */
static void feed(struct rec *r, int n)
{
	char buf[DATA_MAX];

	if (r->kind == K_COND) {
		pthread_mutex_lock(&r->m);
		r->pred = true;
		pthread_cond_broadcast(&r->c);
		pthread_mutex_unlock(&r->m);
		return;
	}
	memset(buf, 'd', sizeof(buf));
	if (write(r->fds[1], buf, (size_t)n) == n)
		r->written += n;
}

/* Check what a call did against its record (after it returned). */
static void judge(const char *where, struct rec *r, int ret, void *res,
		  void *want_res)
{
	int left = 0;
	char c;

	atomic_fetch_add(&n_calls, 1);
	if (ret == 0)
		atomic_fetch_add(&n_completed, 1);
	else if (is_reason(ret))
		atomic_fetch_add(&n_cancelled, 1);
	if (ret == -ETIMEDOUT)
		atomic_fetch_add(&n_deadlines_fired, 1);

	check(I_FINALIZERS, atomic_load(&r->fin_bad) == 0 &&
	      atomic_load(&r->fin_runs) == atomic_load(&r->fin_expected),
	      "%s %s: %d finalizers ran, %d registered, %d twice", where,
	      kind_name[r->kind], atomic_load(&r->fin_runs),
	      atomic_load(&r->fin_expected), atomic_load(&r->fin_bad));
	check(I_WAKE, atomic_load(&r->wake_runs) <= 1 &&
	      (atomic_load(&r->wake_runs) == 0 || is_reason(ret)),
	      "%s %s: wake-up ran %d times, call returned %d", where,
	      kind_name[r->kind], atomic_load(&r->wake_runs), ret);
	n_wakes += atomic_load(&r->wake_runs);

	if (!r->affected) {
		check(I_SPURIOUS, ret == 0 && r->finished && r->eintr == 0 &&
		      !r->err_what && r->nested_bad == 0 && res == want_res,
		      "%s %s (depth %d), never cancelled: returned %d, "
		      "finished %d, %d EINTR, error %s %d, %d nested broken",
		      where, kind_name[r->kind], r->depth, ret, r->finished,
		      r->eintr, r->err_what ? r->err_what : "none", r->err,
		      r->nested_bad);
	} else {
		bool ok = ret == 0 || ret == r->reason;

		if (r->forever && !r->finished)
			ok = ok && ret == r->reason;
		if (ret == 0)
			ok = ok && r->finished;
		ok = ok && !r->err_what && r->nested_bad == 0;
		check(I_OUTCOME, ok,
		      "%s %s (depth %d), cancelled (reason %d): returned %d, "
		      "finished %d, forever %d, error %s %d, %d nested broken",
		      where, kind_name[r->kind], r->depth, r->reason, ret,
		      r->finished, r->forever,
		      r->err_what ? r->err_what : "none", r->err,
		      r->nested_bad);
		if (r->eintr)
			atomic_fetch_add(&n_eintr_cancelled, r->eintr);
	}
	if (r->fds[0] >= 0 && r->written) {
		fcntl(r->fds[0], F_SETFL, O_NONBLOCK);
		while (read(r->fds[0], &c, 1) == 1)
			left++;
		check(I_DATA, r->got + left == r->written,
		      "%s %s: %d bytes written, %d read by the body, %d left",
		      where, kind_name[r->kind], r->written, r->got, left);
	}
}

/* A nested call from inside a body: on the body's own token, so that it
 * is cancelled with it. */
static void nested(intr_ctx *ctx, struct rec *parent, bool spawn)
{
	struct call *c = calloc(1, sizeof(*c));
	struct rng *r = &parent->r;
	enum kind k;
	int ret;

	if (!c) {
		body_err(parent, "calloc", 0);
		return;
	}
	k = pick_kind(r, parent->depth + 1);
	/* the driver cannot feed a nested call, nor give it a ring */
	while (needs_feed(k) || k == K_URING)
		k = pick_kind(r, parent->depth + 1);
	rec_init(&c->rec, k, parent->depth + 1, parent->affected,
		 parent->forever && below(r, 2), parent->reason, rnd(r));
	if (spawn) {
		ret = intr_spawn(&c->task, intr_ctx_token(ctx), body, c);
		if (ret == 0) {
			/* the task's fd: the join waits as long as it must */
			ret = intr_join(c->task, &c->res);
		}
	} else {
		ret = run_interruptible(intr_ctx_token(ctx), body, c, &c->res);
	}
	if (ret == -EAGAIN || ret == -ENOMEM) {
		body_err(parent, "nested call refused", ret);
	} else {
		long before = atomic_load(&inv_fail[I_SPURIOUS]) +
			      atomic_load(&inv_fail[I_OUTCOME]) +
			      atomic_load(&inv_fail[I_FINALIZERS]) +
			      atomic_load(&inv_fail[I_WAKE]);

		judge("nested", &c->rec, ret, c->res,
		      c->rec.ran ? (void *)c : NULL);
		if (atomic_load(&inv_fail[I_SPURIOUS]) +
		    atomic_load(&inv_fail[I_OUTCOME]) +
		    atomic_load(&inv_fail[I_FINALIZERS]) +
		    atomic_load(&inv_fail[I_WAKE]) != before)
			parent->nested_bad++;
		/* a nested call that ended by its cancel passes it on */
		if (is_reason(ret) && !parent->affected)
			parent->nested_bad++;
	}
	rec_fini(&c->rec);
	free(c);
}

#ifdef HAVE_LIBURING
/* The ring is the driver's (made once: rings mapped and unmapped by the
 * million would only measure the kernel), emptied after every call. */
static void uring_body(intr_ctx *ctx, struct rec *r)
{
	struct io_uring *ring = r->ring;
	struct io_uring_cqe *cqe;
	int ret;

	if (!ring) {
		/* no ring to be had: count it as a short busy body */
		r->finished = true;
		return;
	}
	if (!r->forever) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, 7);
		io_uring_submit(ring);
	}
	ret = intr_uring_wait_cqe(ctx, ring, &cqe);
	if (ret == 0) {
		if (cqe->user_data == 7)
			r->finished = true;
		else
			body_err(r, "uring cqe", (long)cqe->user_data);
		io_uring_cqe_seen(ring, cqe);
	} else if (!is_reason(ret)) {
		body_err(r, "intr_uring_wait_cqe", ret);
	}
}
#endif

static void *body(intr_ctx *ctx, void *p)
{
	struct call *c = p;
	struct rec *r = &c->rec;
	char buf[DATA_MAX];
	struct pollfd pfd;
	long n;

	r->ran = true;
	add_fins(ctx, c);
	switch (r->kind) {
	case K_READ:
		while (r->got < r->want || r->forever) {
			n = intr_read(ctx, r->fds[0], buf, sizeof(buf));
			if (n > 0) {
				r->got += (int)n;
				continue;
			}
			if (!is_reason(n))
				body_err(r, "intr_read", n);
			break;
		}
		r->finished = r->got >= r->want && !r->forever;
		break;
	case K_SLEEP:
		n = intr_sleep(ctx, r->forever ? FOREVER_NS :
			       below(&r->r, 200000));
		if (n == 0)
			r->finished = true;
		else if (!is_reason(n))
			body_err(r, "intr_sleep", n);
		break;
	case K_POLL:
		pfd = (struct pollfd){ .fd = r->fds[0], .events = POLLIN };
		while (r->got < r->want || r->forever) {
			n = intr_poll(ctx, &pfd, 1, -1);
			if (n != 1) {
				if (!is_reason(n))
					body_err(r, "intr_poll", n);
				break;
			}
			n = read(r->fds[0], buf, sizeof(buf));
			if (n <= 0) {
				body_err(r, "read after poll", n);
				break;
			}
			r->got += (int)n;
		}
		r->finished = r->got >= r->want && !r->forever;
		break;
	case K_COND:
		pthread_mutex_lock(&r->m);
		while (!r->pred) {
			n = intr_cond_wait(ctx, &r->c, &r->m);
			if (n) {
				if (!is_reason(n))
					body_err(r, "intr_cond_wait", n);
				break;
			}
		}
		r->finished = r->pred && !r->forever;
		pthread_mutex_unlock(&r->m);
		break;
	case K_URING:
#ifdef HAVE_LIBURING
		uring_body(ctx, r);
#endif
		break;
	case K_PLAIN:
		/* The check-then-block race a wrapper would close: only the
		 * re-send ends a read() that started after the signal. */
		for (;;) {
			if (intr_cancelled(ctx))
				break;
			/* sometimes a gap, so the signal lands in it */
			if (below(&r->r, 2))
				h_spin_ns(below(&r->r, 50000));
			n = read(r->fds[0], buf, sizeof(buf));
			if (n > 0) {
				r->got += (int)n;
				if (r->got >= r->want && !r->forever) {
					r->finished = true;
					break;
				}
				continue;
			}
			if (n < 0 && errno == EINTR) {
				r->eintr++;
				continue;
			}
			body_err(r, "read", n < 0 ? errno : 0);
			break;
		}
		break;
	case K_BUSY:
		if (r->forever) {
			uint64_t end = h_now_ns() + BOUND_NS;

			while (!intr_cancelled(ctx) && h_now_ns() < end)
				;
		} else {
			h_spin_ns(below(&r->r, 100000));
			r->finished = true;
		}
		break;
	case K_WAKE:
		n = intr_on_cancel(ctx, wake_fn, r);
		if (n) {
			if (!is_reason(n))
				body_err(r, "intr_on_cancel", n);
			break;
		}
		pfd = (struct pollfd){ .fd = r->wake_fds[0], .events = POLLIN };
		if (!r->forever) {
			if (poll(&pfd, 1, 0) == 0)
				r->finished = true;
			break;
		}
		/* Plain poll(): signals do not end it, only the wake-up. */
		for (;;) {
			n = poll(&pfd, 1, (int)(BOUND_NS / 1000000));
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		break;
	case K_NEST_RUN:
	case K_NEST_SPAWN:
		nested(ctx, r, r->kind == K_NEST_SPAWN);
		if (!r->forever)
			r->finished = true;
		else if (!intr_cancelled(ctx))
			/* the nested call ended but no cancel came yet:
			 * wait for it the way a careful body does */
			while (intr_sleep(ctx, FOREVER_NS) == 0)
				;
		break;
	default:
		break;
	}
	return c;
}

/* ------------------------------------------------------------ canceller */

/* A driver hands a cancel to the canceller thread: it is made there after
 * a random delay, while the driver goes on. */
struct handoff {
	atomic_int state;	/* 0 idle, 1 posted, 2 done */
	intr_token *tok;
	uint64_t delay_ns;
};

static struct handoff handoffs[DRIVERS];
static atomic_int stop_all;

static void *canceller_main(void *p)
{
	(void)p;
	while (!atomic_load(&stop_all)) {
		bool any = false;
		int d;

		for (d = 0; d < DRIVERS; d++) {
			struct handoff *h = &handoffs[d];

			if (atomic_load(&h->state) != 1)
				continue;
			any = true;
			h_spin_ns(h->delay_ns);
			if (intr_token_cancel(h->tok))
				check(I_OUTCOME, false, "canceller: cancel "
				      "refused");
			atomic_store(&h->state, 2);
		}
		if (!any) {
			struct timespec ts = { 0, 20000 };

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* ------------------------------------------------------------ drivers */

struct tree {
	intr_token *tok[MAX_TOKENS];
	int parent[MAX_TOKENS];	/* index, -1 for the root */
	int n;
};

/* Does cancelling token a reach token b? */
static bool reaches(const struct tree *t, int a, int b)
{
	for (; b >= 0; b = t->parent[b])
		if (b == a)
			return true;
	return false;
}

struct driver {
	int id;
	struct rng r;
	uint64_t end;
	long rounds;
#ifdef HAVE_LIBURING
	struct io_uring rings[MAX_CALLS];
	bool ring_ok[MAX_CALLS];
#endif
};

/* Wait for a call, at most BOUND_NS from since; on expiry say what is
 * stuck and end the program: a lost cancel must fail, not hang. */
static void join_bounded(struct call *c, uint64_t since, enum plan plan)
{
	struct pollfd pfd = { .fd = intr_task_fd(c->task), .events = POLLIN };

	for (;;) {
		int64_t left = (int64_t)(since + BOUND_NS - h_now_ns());

		if (left <= 0) {
			check(I_RETURNED, false, "a %s call (%s, depth 0, "
			      "affected %d, forever %d) did not return within "
			      "10 s", kind_name[c->rec.kind], plan_name[plan],
			      c->rec.affected, c->rec.forever);
			print_invariants();
			_exit(1);
		}
		if (poll(&pfd, 1, (int)(left / 1000000) + 1) > 0)
			break;
	}
	c->ret = intr_join(c->task, &c->res);
	c->joined = true;
	check(I_RETURNED, true, "%s", "");
}

static void round_once(struct driver *d)
{
	struct handoff *h = &handoffs[d->id];
	struct call *calls[MAX_CALLS];
	struct tree t = { .n = 0 };
	enum plan plan = (enum plan)below(&d->r, P_NR);
	int ncalls = 1 + (int)below(&d->r, MAX_CALLS);
	int target, reason, i, ret;
	uint64_t t_cancel = 0, deadline_ns = 0;

	atomic_fetch_add(&n_rounds[plan], 1);
	/* the tree: a root, then children of random earlier tokens */
	t.n = 1 + (int)below(&d->r, MAX_TOKENS);
	for (i = 0; i < t.n; i++) {
		t.parent[i] = i ? (int)below(&d->r, (uint64_t)i) : -1;
		ret = intr_token_new(&t.tok[i], i ? t.tok[t.parent[i]] : NULL);
		if (ret) {
			check(I_OUTCOME, false, "intr_token_new: %d", ret);
			t.n = i;
			break;
		}
	}
	if (!t.n)
		return;
	target = (int)below(&d->r, (uint64_t)t.n);
	reason = plan == P_DEADLINE ? -ETIMEDOUT : -ECANCELED;
	if (plan == P_DEADLINE)
		deadline_ns = below(&d->r, 3000000);

	if (plan == P_BEFORE)
		intr_token_cancel(t.tok[target]);
	if (plan == P_DEADLINE && below(&d->r, 2)) {
		intr_token_cancel_after(t.tok[target], deadline_ns + 1);
		t_cancel = h_now_ns() + deadline_ns;
	}

	for (i = 0; i < ncalls; i++) {
		struct call *c = calloc(1, sizeof(*c));
		bool affected, forever;
		enum kind k;

		if (!c) {
			ncalls = i;
			break;
		}
		calls[i] = c;
		c->tok_idx = (int)below(&d->r, (uint64_t)t.n);
		affected = plan != P_NONE && plan != P_AFTER &&
			   reaches(&t, target, c->tok_idx);
		k = pick_kind(&d->r, 0);
		forever = affected && below(&d->r, 2);
		rec_init(&c->rec, k, 0, affected, forever, reason, rnd(&d->r));
#ifdef HAVE_LIBURING
		c->rec.ring = d->ring_ok[i] ? &d->rings[i] : NULL;
#endif
		if (needs_feed(k) && !forever)
			c->rec.want = 1 + (int)below(&d->r, DATA_MAX);
		if (needs_feed(k) && below(&d->r, 2) && !forever)
			feed(&c->rec, c->rec.want);	/* data up front */
		ret = intr_spawn(&c->task, t.tok[c->tok_idx], body, c);
		if (ret) {
			check(I_OUTCOME, false, "intr_spawn: %d", ret);
			rec_fini(&c->rec);
			free(c);
			ncalls = i;
			break;
		}
	}

	/* feed what is still to be fed, interleaved with the cancel */
	switch (plan) {
	case P_DURING:
		h_spin_ns(below(&d->r, 300000));
		intr_token_cancel(t.tok[target]);
		t_cancel = h_now_ns();
		break;
	case P_FOREIGN:
		h->tok = t.tok[target];
		h->delay_ns = below(&d->r, 300000);
		atomic_store(&h->state, 1);
		break;
	case P_DEADLINE:
		if (!t_cancel) {
			intr_token_cancel_after(t.tok[target],
						deadline_ns + 1);
			t_cancel = h_now_ns() + deadline_ns;
		}
		break;
	default:
		break;
	}
	for (i = 0; i < ncalls; i++) {
		struct rec *r = &calls[i]->rec;

		if (needs_feed(r->kind) && !r->forever && r->written < r->want)
			feed(r, r->want - r->written);
	}
	if (plan == P_FOREIGN) {
		uint64_t end = h_now_ns() + BOUND_NS;

		while (atomic_load(&h->state) != 2 && h_now_ns() < end)
			sleep_ms(0);
		t_cancel = h_now_ns();
		atomic_store(&h->state, 0);
	}

	for (i = 0; i < ncalls; i++) {
		struct call *c = calls[i];

		join_bounded(c, t_cancel ? t_cancel : h_now_ns(), plan);
		judge("call", &c->rec, c->ret, c->res,
		      c->rec.ran ? (void *)c : NULL);
	}
	if (plan == P_AFTER)
		intr_token_cancel(t.tok[target]);
	for (i = 0; i < ncalls; i++) {
#ifdef HAVE_LIBURING
		struct io_uring_cqe *cqe;

		/* a NOP whose wait was cancelled leaves its CQE */
		if (calls[i]->rec.ring)
			while (io_uring_peek_cqe(calls[i]->rec.ring, &cqe) == 0)
				io_uring_cqe_seen(calls[i]->rec.ring, cqe);
#endif
		rec_fini(&calls[i]->rec);
		free(calls[i]);
	}
	/* children first: each token is freed once, leaves upwards */
	for (i = t.n - 1; i >= 0; i--)
		intr_token_free(t.tok[i]);
	d->rounds++;
}

static void *driver_main(void *p)
{
	struct driver *d = p;
	int i;

#ifdef HAVE_LIBURING
	for (i = 0; i < MAX_CALLS; i++) {
		int r = uring_ok ? io_uring_queue_init(4, &d->rings[i], 0) : 1;

		d->ring_ok[i] = r == 0;
		if (uring_ok)
			check(I_OUTCOME, r == 0, "driver %d: io_uring_queue_init: "
			      "%s", d->id, strerror(-r));
	}
#endif
	while (h_now_ns() < d->end)
		round_once(d);
#ifdef HAVE_LIBURING
	for (i = 0; i < MAX_CALLS; i++)
		if (d->ring_ok[i])
			io_uring_queue_exit(&d->rings[i]);
#endif
	(void)i;
	return NULL;
}

/* ------------------------------------------------------------ pool size */

static int count_threads(void)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!dir)
		return -1;
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* Wait (bounded by ms) until at most want threads are left. */
static int wait_threads(int want, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;
	int n;

	while ((n = count_threads()) > want && h_now_ns() < end)
		sleep_ms(10);
	return n;
}

static atomic_int nop_tid;

static void *nop_body(intr_ctx *ctx, void *p)
{
	(void)ctx;
	atomic_store(&nop_tid, (int)syscall(SYS_gettid));
	return p;
}

/* Wait (bounded by ms) until thread tid of this process is gone. */
static bool thread_gone(int tid, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d", tid);
	while (!access(path, F_OK))
		if (h_now_ns() >= end)
			return false;
		else
			sleep_ms(5);
	return true;
}

int main(int argc, char **argv)
{
	struct driver drivers[DRIVERS];
	pthread_t th[DRIVERS], canceller;
	struct intr_config cfg;
	const char *env = getenv("STRESS_SECONDS");
	const char *seed_env = getenv("INTR_TEST_SEED");
	unsigned seconds = env && *env ? (unsigned)atoi(env) : 60;
	uint64_t seed, t0, elapsed;
	int i, idle, end_threads;
	void *res;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = (unsigned)atoi(argv[++i]);
	seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 0) :
	       h_now_ns() ^ ((uint64_t)getpid() << 32);
	printf("stress: %u s, %d drivers, seed %" PRIu64
	       " (INTR_TEST_SEED repeats it)\n", seconds, DRIVERS, seed);
	fflush(stdout);

	intr_config_default(&cfg);
	cfg.idle_ms = IDLE_MS;
	if (intr_configure(&cfg)) {
		printf("intr_configure failed\n0 passed, 1 failed\n");
		return 1;
	}
	/* The idle size: the library's own threads once a call has come
	 * and its worker has left (after idle_ms; waited for, bounded). */
	if (run_interruptible(NULL, nop_body, NULL, &res) ||
	    !thread_gone(atomic_load(&nop_tid), 5000 + IDLE_MS * 10)) {
		printf("first call failed, or its worker stayed\n"
		       "0 passed, 1 failed\n");
		return 1;
	}
	idle = count_threads();
#ifdef HAVE_LIBURING
	{
		char why[160];
		int r = h_uring_permitted(why, sizeof(why));

		uring_ok = r == 1;
		if (r == 0)
			printf("%s: the io_uring bodies are left out\n", why);
		else if (r < 0)
			printf("FAIL: io_uring_queue_init: %s\n",
			       strerror(-r));
		if (r < 0) {
			printf("0 passed, 1 failed\n");
			return 1;
		}
	}
#endif

	if (pthread_create(&canceller, NULL, canceller_main, NULL)) {
		printf("pthread_create failed\n0 passed, 1 failed\n");
		return 1;
	}
	t0 = h_now_ns();
	for (i = 0; i < DRIVERS; i++) {
		drivers[i].id = i;
		drivers[i].r.s = seed + (uint64_t)i * 0x1000193;
		drivers[i].end = t0 + (uint64_t)seconds * 1000000000u;
		drivers[i].rounds = 0;
		if (pthread_create(&th[i], NULL, driver_main, &drivers[i])) {
			printf("pthread_create failed\n0 passed, 1 failed\n");
			return 1;
		}
	}
	for (i = 0; i < DRIVERS; i++)
		pthread_join(th[i], NULL);
	atomic_store(&stop_all, 1);
	pthread_join(canceller, NULL);
	elapsed = h_now_ns() - t0;

	end_threads = wait_threads(idle, 5000 + IDLE_MS * 10);
	check(I_POOL, end_threads == idle, "%d threads left after the run, "
	      "%d when idle before it", end_threads, idle);

	printf("calls %ld (%.0f/s): %ld completed, %ld cancelled, "
	       "%ld deadlines fired, %ld wake-ups, %ld EINTR in cancelled "
	       "plain reads\n", atomic_load(&n_calls),
	       (double)atomic_load(&n_calls) * 1e9 / (double)elapsed,
	       atomic_load(&n_completed), atomic_load(&n_cancelled),
	       atomic_load(&n_deadlines_fired), atomic_load(&n_wakes),
	       atomic_load(&n_eintr_cancelled));
	printf("rounds by plan:");
	for (i = 0; i < P_NR; i++)
		printf(" [%s: %ld]", plan_name[i], atomic_load(&n_rounds[i]));
	printf("\ncalls by kind:");
	for (i = 0; i < K_NR; i++)
		printf(" [%s: %ld]", kind_name[i], atomic_load(&n_kind[i]));
	printf("\ncalls by depth:");
	for (i = 0; i <= MAX_DEPTH; i++)
		printf(" [%d: %ld]", i, atomic_load(&n_depth[i]));
	printf("\nthreads when idle: %d before, %d after\n", idle, end_threads);
	return print_invariants() ? 1 : 0;
}
