/* SPDX-License-Identifier: MIT */
/*
 * The in-place scope, intr_run_here(): a body run on the calling thread
 * with everything a pooled body has.  Cancel by token while the body
 * blocks in intr_read, a plain read(), intr_poll, intr_sleep and an
 * io_uring wait; a deadline; a token cancelled before the scope;
 * intr_cancelled; intr_on_cancel; finalizers; context hooks; nesting (a
 * scope in a pooled body, a scope in a scope with the outer's token and
 * with an unrelated one, a pooled call in a scope); the caller's mask
 * restored exactly, whether it had the interrupt signal open or blocked;
 * no late signal reaching the caller's handler or its next system call;
 * errno; bad input.
 *
 * The scope runs on the test's own thread (Check forks each test, so the
 * library starts fresh in every one).  A canceller thread waits until the
 * scope's body is blocked where the case says, cancels, and if the scope
 * has not returned WAIT_MS later, writes the byte that ends the wait: a
 * lost cancel fails, never hangs.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#ifdef HAVE_LIBURING
#include <liburing.h>
#include <interruptible/uring.h>
#include "uring-permitted.h"
#endif

#include "harness.h"

#define WAIT_MS 5000
#define TEST_TIMEOUT 60
#define LATE_ITERS 3000
#define LATE_MS 20000		/* the rounds' budget, past the first 100 */

/* ------------------------------------------------------------ signals */

/* The application's own handler for the interrupt signal, installed
 * before the library's: a signal of ours taken for a foreign one would be
 * passed on to it. */
static atomic_int app_handler_runs;

static void app_handler(int signo)
{
	(void)signo;
	atomic_fetch_add(&app_handler_runs, 1);
}

static void install_app_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = app_handler;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
}

static sigset_t mask_now(void)
{
	sigset_t m;

	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &m), 0);
	return m;
}

/* Every signal number, not only the first 64 glibc keeps room for. */
static bool same_mask(const sigset_t *a, const sigset_t *b)
{
	int s;

	for (s = 1; s < NSIG; s++)
		if (sigismember(a, s) != sigismember(b, s))
			return false;
	return true;
}

static void set_blocked(int signo, bool blocked)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, signo);
	ck_assert_int_eq(pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK,
					 &s, NULL), 0);
}

static bool is_pending(int signo)
{
	sigset_t p;

	return !sigpending(&p) && sigismember(&p, signo) == 1;
}

/* ------------------------------------------------------------ canceller */

struct canceller {
	pthread_t th;
	atomic_int *tid;	/* the thread to watch, once it is not 0 */
	atomic_int *started;	/* the body says it is about to block */
	long nr;		/* the system call it blocks in, -1: any,
				 * -2: it does not block */
	intr_token *tok;	/* cancelled once it blocks */
	int rescue_fd;		/* written WAIT_MS after the cancel, -1: none */
	atomic_int returned;	/* the scope has returned */
	bool saw_blocked;
};

static void *canceller_main(void *p)
{
	struct canceller *c = p;
	uint64_t end = h_deadline(WAIT_MS);

	while ((!atomic_load(c->tid) || !atomic_load(c->started)) &&
	       !h_passed(end))
		h_sleep_ms(1);
	/* nr -2: a body that never blocks; cancel once it started. */
	c->saw_blocked = atomic_load(c->tid) &&
			 (c->nr == -2 ||
			  h_wait_blocked(atomic_load(c->tid), c->nr, WAIT_MS));
	intr_token_cancel(c->tok);
	end = h_deadline(WAIT_MS);
	while (!atomic_load(&c->returned) && !h_passed(end))
		h_sleep_ms(1);
	if (!atomic_load(&c->returned) && c->rescue_fd >= 0)
		h_write_byte(c->rescue_fd);
	return NULL;
}

static void canceller_start(struct canceller *c, atomic_int *tid,
			    atomic_int *started, long nr, intr_token *tok,
			    int rescue_fd)
{
	c->tid = tid;
	c->started = started;
	c->nr = nr;
	c->tok = tok;
	c->rescue_fd = rescue_fd;
	atomic_init(&c->returned, 0);
	c->saw_blocked = false;
	ck_assert_int_eq(pthread_create(&c->th, NULL, canceller_main, c), 0);
}

static void canceller_join(struct canceller *c)
{
	atomic_store(&c->returned, 1);
	ck_assert_int_eq(pthread_join(c->th, NULL), 0);
	ck_assert_msg(c->saw_blocked, "the body never showed blocked");
}

/* ------------------------------------------------------------ bodies */

enum wait_kind { W_INTR_READ, W_PLAIN_READ, W_POLL, W_SLEEP, W_URING };

struct body_arg {
	enum wait_kind kind;
	int fd;			/* read end */
	atomic_int tid;		/* the body's thread */
	atomic_int started;
	long got;		/* what the wait returned */
	bool cancelled;		/* intr_cancelled() after it */
	int reason;		/* intr_reason() after it */
	int eintr;		/* plain read: EINTRs seen */
#ifdef HAVE_LIBURING
	struct io_uring *ring;
#endif
};

static void *wait_body(intr_ctx *ctx, void *p)
{
	struct body_arg *a = p;
	char c;

	atomic_store(&a->tid, h_gettid());
	atomic_store(&a->started, 1);
	switch (a->kind) {
	case W_INTR_READ:
		a->got = intr_read(ctx, a->fd, &c, 1);
		break;
	case W_PLAIN_READ:
		for (;;) {
			ssize_t n = read(a->fd, &c, 1);

			if (n >= 0 || errno != EINTR) {
				a->got = n;
				break;
			}
			a->eintr++;
			if (intr_cancelled(ctx)) {
				a->got = -ECANCELED;
				break;
			}
		}
		break;
	case W_POLL: {
		struct pollfd pf = { .fd = a->fd, .events = POLLIN };

		a->got = intr_poll(ctx, &pf, 1, -1);
		break;
	}
	case W_SLEEP:
		a->got = intr_sleep(ctx, (uint64_t)WAIT_MS * 1000000u);
		break;
	case W_URING: {
#ifdef HAVE_LIBURING
		struct io_uring_cqe *cqe = NULL;

		a->got = intr_uring_wait_cqe(ctx, a->ring, &cqe);
		if (a->got == 0 && cqe)
			io_uring_cqe_seen(a->ring, cqe);
#endif
		break;
	}
	}
	a->cancelled = intr_cancelled(ctx);
	a->reason = intr_reason(ctx);
	return a;
}

/* One scope on this thread whose body waits as kind says, cancelled once
 * it blocks. */
static void cancel_case(enum wait_kind kind, long nr)
{
	struct body_arg a = { .kind = kind };
	struct canceller c;
	intr_token *tok;
	void *res = NULL;
	int fds[2], ret;
#ifdef HAVE_LIBURING
	struct io_uring ring;

	if (kind == W_URING) {
		/* Added only where io_uring is permitted (make_suite). */
		ck_assert_int_eq(io_uring_queue_init(4, &ring, 0), 0);
		a.ring = &ring;
	}
#endif
	h_make_pipe(fds);
	a.fd = fds[0];
#ifdef HAVE_LIBURING
	if (kind == W_URING) {
		/* The rescue byte completes this poll. */
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		io_uring_prep_poll_add(sqe, fds[0], POLLIN);
		ck_assert_int_eq(io_uring_submit(&ring), 1);
	}
#endif
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	canceller_start(&c, &a.tid, &a.started, nr, tok, fds[1]);
	ret = intr_run_here(tok, wait_body, &a, &res);
	canceller_join(&c);
	ck_assert_int_eq(ret, -ECANCELED);
	ck_assert_ptr_eq(res, &a);
	ck_assert_int_eq(a.tid, h_gettid());
	ck_assert_int_eq(a.got, -ECANCELED);
	ck_assert(a.cancelled);
	ck_assert_int_eq(a.reason, -ECANCELED);
	/* Nothing left for the caller: no byte was needed. */
	ck_assert_int_eq(h_poll_in(fds[0], 0), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
#ifdef HAVE_LIBURING
	if (kind == W_URING)
		io_uring_queue_exit(&ring);
#endif
	h_close_pipe(fds);
}

START_TEST(cancel_intr_read)
{
	cancel_case(W_INTR_READ, SYS_read);
}
END_TEST

START_TEST(cancel_plain_read)
{
	cancel_case(W_PLAIN_READ, SYS_read);
}
END_TEST

START_TEST(cancel_intr_poll)
{
	cancel_case(W_POLL, -1);
}
END_TEST

START_TEST(cancel_intr_sleep)
{
	cancel_case(W_SLEEP, -1);
}
END_TEST

#ifdef HAVE_LIBURING
START_TEST(cancel_uring_wait)
{
	cancel_case(W_URING, -1);
}
END_TEST
#endif

/* The caller blocked the interrupt signal itself: the body has it open
 * all the same, a plain read() is interrupted, and the block is back
 * after the scope, with nothing of ours pending. */
START_TEST(cancel_caller_blocks_signal)
{
	struct body_arg a = { .kind = W_PLAIN_READ };
	struct canceller c;
	sigset_t before;
	intr_token *tok;
	void *res = NULL;
	int fds[2];

	set_blocked(SIGUSR1, true);
	set_blocked(SIGWINCH, true);
	before = mask_now();
	h_make_pipe(fds);
	a.fd = fds[0];
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	canceller_start(&c, &a.tid, &a.started, SYS_read, tok, fds[1]);
	ck_assert_int_eq(intr_run_here(tok, wait_body, &a, &res), -ECANCELED);
	canceller_join(&c);
	ck_assert_int_eq(a.got, -ECANCELED);
	{
		sigset_t after = mask_now();

		ck_assert_msg(same_mask(&before, &after),
			      "the caller's mask was not restored");
	}
	ck_assert_msg(!is_pending(SIGUSR1), "a signal of ours is pending");
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_close_pipe(fds);
}
END_TEST

static void *mask_body(intr_ctx *ctx, void *p)
{
	sigset_t *in = p;

	(void)ctx;
	pthread_sigmask(SIG_BLOCK, NULL, in);
	return NULL;
}

/* The body runs under the caller's mask with the interrupt signal open;
 * after the scope the mask is the caller's again, exactly, whether the
 * caller had the signal open or blocked. */
START_TEST(mask_restored_exactly)
{
	int blocked;

	for (blocked = 0; blocked < 2; blocked++) {
		sigset_t before, after, in;
		int s;

		set_blocked(SIGUSR1, blocked);
		set_blocked(SIGWINCH, true);
		set_blocked(SIGRTMIN + 3, true);
		before = mask_now();
		ck_assert_int_eq(intr_run_here(NULL, mask_body, &in, NULL), 0);
		after = mask_now();
		ck_assert_msg(same_mask(&before, &after),
			      "mask not restored (caller %s the signal)",
			      blocked ? "blocked" : "had open");
		ck_assert_int_eq(sigismember(&in, SIGUSR1), 0);
		for (s = 1; s < NSIG; s++)
			if (s != SIGUSR1)
				ck_assert_int_eq(sigismember(&in, s),
						 sigismember(&before, s));
	}
}
END_TEST

/* ------------------------------------------------------------ deadline */

START_TEST(deadline_ends_read)
{
	struct body_arg a = { .kind = W_INTR_READ };
	intr_token *tok;
	void *res = NULL;
	int fds[2];

	h_make_pipe(fds);
	a.fd = fds[0];
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	ck_assert_int_eq(intr_token_cancel_after(tok, 20000000ull), 0);
	ck_assert_int_eq(intr_run_here(tok, wait_body, &a, &res),
			 -ETIMEDOUT);
	ck_assert_ptr_eq(res, &a);
	ck_assert_int_eq(a.got, -ETIMEDOUT);
	ck_assert_int_eq(a.reason, -ETIMEDOUT);
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_close_pipe(fds);
}
END_TEST

/* ------------------------------------------------------------ before */

static atomic_int ran;

static void *count_body(intr_ctx *ctx, void *p)
{
	(void)ctx;
	atomic_fetch_add(&ran, 1);
	return p;
}

START_TEST(cancelled_before_skips_body)
{
	intr_token *tok, *child;
	void *res = &res;

	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	ck_assert_int_eq(intr_token_new(&child, tok), 0);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(intr_run_here(child, count_body, &ran, &res),
			 -ECANCELED);
	ck_assert_ptr_null(res);
	ck_assert_int_eq(atomic_load(&ran), 0);
	/* The scope's own token left the tree: the child can be freed. */
	ck_assert_int_eq(intr_token_free(child), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(uncancelled_returns_result)
{
	void *res = NULL;

	ck_assert_int_eq(intr_run_here(NULL, count_body, &ran, &res), 0);
	ck_assert_ptr_eq(res, &ran);
	ck_assert_int_eq(atomic_load(&ran), 1);
	/* A result pointer is optional. */
	ck_assert_int_eq(intr_run_here(NULL, count_body, &ran, NULL), 0);
	ck_assert_int_eq(atomic_load(&ran), 2);
}
END_TEST

/* ------------------------------------------------------------ intr_cancelled */

struct spin_arg {
	atomic_int tid;
	atomic_int started;
	bool saw;
	bool after_ctx_ok;
	intr_ctx *ctx;
};

static void *spin_body(intr_ctx *ctx, void *p)
{
	struct spin_arg *s = p;
	uint64_t end = h_deadline(WAIT_MS);

	s->ctx = ctx;
	atomic_store(&s->tid, h_gettid());
	atomic_store(&s->started, 1);
	while (!h_passed(end))
		if (intr_cancelled(ctx)) {
			s->saw = true;
			break;
		}
	return NULL;
}

START_TEST(cancelled_seen_by_body)
{
	struct spin_arg s = { 0 };
	struct canceller c;
	intr_token *tok;

	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	canceller_start(&c, &s.tid, &s.started, -2, tok, -1);
	ck_assert_int_eq(intr_run_here(tok, spin_body, &s, NULL), -ECANCELED);
	canceller_join(&c);
	ck_assert(s.saw);
	/* The ctx of an ended scope is refused. */
	ck_assert(!intr_cancelled(s.ctx));
	ck_assert_int_eq(intr_reason(s.ctx), -EINVAL);
	ck_assert_ptr_null(intr_ctx_token(s.ctx));
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* ------------------------------------------------------------ on_cancel, finalizers */

struct oc_arg {
	int fds[2];
	atomic_int tid;
	atomic_int started;
	atomic_int woke;
	atomic_int fin_tid;
	atomic_int fins;
	int fin_order[2];
	long got;
	bool saw;
};

static void oc_wake(void *p)
{
	struct oc_arg *o = p;

	atomic_fetch_add(&o->woke, 1);
	h_write_byte(o->fds[1]);
}

static void oc_fin(void *p)
{
	struct oc_arg *o = p;
	int n = atomic_fetch_add(&o->fins, 1);

	atomic_store(&o->fin_tid, h_gettid());
	if (n < 2)
		o->fin_order[n] = n;
}

static void *oc_body(intr_ctx *ctx, void *p)
{
	struct oc_arg *o = p;
	struct pollfd pf = { .fd = o->fds[0], .events = POLLIN };
	sigset_t s;

	ck_assert_int_eq(intr_defer(ctx, oc_fin, o), 0);
	ck_assert_int_eq(intr_defer(ctx, oc_fin, o), 0);
	ck_assert_int_eq(intr_on_cancel(ctx, oc_wake, o), 0);
	/* A wait no signal ends: the interrupt signal blocked here, so
	 * only the wake-up action ends it. */
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	atomic_store(&o->tid, h_gettid());
	atomic_store(&o->started, 1);
	o->got = poll(&pf, 1, WAIT_MS);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	o->saw = intr_cancelled(ctx);
	return NULL;
}

START_TEST(on_cancel_and_finalizers)
{
	struct oc_arg o = { 0 };
	struct canceller c;
	intr_token *tok;
	sigset_t before;

	before = mask_now();
	h_make_pipe(o.fds);
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	canceller_start(&c, &o.tid, &o.started, -1, tok, -1);
	ck_assert_int_eq(intr_run_here(tok, oc_body, &o, NULL), -ECANCELED);
	canceller_join(&c);
	ck_assert_int_eq(o.got, 1);
	ck_assert(o.saw);
	ck_assert_int_eq(atomic_load(&o.woke), 1);
	ck_assert_int_eq(atomic_load(&o.fins), 2);
	ck_assert_int_eq(atomic_load(&o.fin_tid), h_gettid());
	{
		sigset_t after = mask_now();

		ck_assert(same_mask(&before, &after));
	}
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_close_pipe(o.fds);
}
END_TEST

/* ------------------------------------------------------------ context */

static char hook_log[64];
static size_t hook_len;
static pid_t hook_tid_bad;

static void hook_note(char c)
{
	if (hook_len + 1 < sizeof(hook_log))
		hook_log[hook_len++] = c;
	if (h_gettid() != getpid())
		hook_tid_bad = h_gettid();
}

static void *h_capture(void *d)
{
	(void)d;
	hook_note('c');
	return (void *)0x1;
}

static void *h_install(void *cap, void *d)
{
	(void)d;
	hook_note(cap == (void *)0x1 ? 'i' : '?');
	return (void *)0x2;
}

static void h_restore(void *saved, void *d)
{
	(void)d;
	hook_note(saved == (void *)0x2 ? 'r' : '?');
}

static void h_release(void *cap, void *d)
{
	(void)d;
	hook_note(cap == (void *)0x1 ? 'l' : '?');
}

static void h_fin(void *p)
{
	(void)p;
	hook_note('f');
}

static void *hook_body(intr_ctx *ctx, void *p)
{
	(void)p;
	hook_note('b');
	intr_defer(ctx, h_fin, NULL);
	return NULL;
}

START_TEST(context_hooks_on_caller)
{
	struct intr_context_element el = {
		.capture = h_capture, .install = h_install,
		.restore = h_restore, .release = h_release,
	};
	intr_token *tok;

	ck_assert_int_eq(intr_context_add(&el), 0);
	ck_assert_int_eq(intr_run_here(NULL, hook_body, NULL, NULL), 0);
	hook_log[hook_len] = 0;
	ck_assert_str_eq(hook_log, "cibfrl");
	/* Skipped: captured and released, nothing else. */
	hook_len = 0;
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(intr_run_here(tok, hook_body, NULL, NULL),
			 -ECANCELED);
	hook_log[hook_len] = 0;
	ck_assert_str_eq(hook_log, "cl");
	ck_assert_int_eq(hook_tid_bad, 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* ------------------------------------------------------------ nesting */

struct nest_arg {
	int mode;		/* see the cases */
	struct body_arg inner;
	int inner_ret;
	void *inner_res;
	bool outer_saw;
	int outer_ctx_in_inner;	/* intr_reason(outer ctx) in the inner */
	intr_ctx *outer_ctx;
};

enum { N_HERE_CTX, N_POOL_IN_HERE, N_HERE_IN_POOL };

static void *inner_probe_body(intr_ctx *ctx, void *p)
{
	struct nest_arg *n = p;

	n->outer_ctx_in_inner = intr_reason(n->outer_ctx);
	return wait_body(ctx, &n->inner);
}

static void *outer_body(intr_ctx *ctx, void *p)
{
	struct nest_arg *n = p;

	n->outer_ctx = ctx;
	switch (n->mode) {
	case N_HERE_CTX:
	case N_HERE_IN_POOL:
		n->inner_ret = intr_run_here(intr_ctx_token(ctx),
					     inner_probe_body, n,
					     &n->inner_res);
		break;
	case N_POOL_IN_HERE:
		n->inner_ret = run_interruptible(intr_ctx_token(ctx),
						 wait_body, &n->inner,
						 &n->inner_res);
		break;
	}
	n->outer_saw = intr_cancelled(ctx);
	return NULL;
}

static void nest_case(int mode)
{
	struct nest_arg n = { .mode = mode };
	struct canceller c;
	intr_token *tok;
	int fds[2], ret;

	install_app_handler();
	h_make_pipe(fds);
	n.inner.kind = W_INTR_READ;
	n.inner.fd = fds[0];
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	canceller_start(&c, &n.inner.tid, &n.inner.started, SYS_read, tok,
			fds[1]);
	if (mode == N_HERE_IN_POOL)
		ret = run_interruptible(tok, outer_body, &n, NULL);
	else
		ret = intr_run_here(tok, outer_body, &n, NULL);
	canceller_join(&c);
	ck_assert_int_eq(ret, -ECANCELED);
	ck_assert_int_eq(n.inner_ret, -ECANCELED);
	ck_assert_int_eq(n.inner.got, -ECANCELED);
	ck_assert(n.outer_saw);
	if (mode != N_POOL_IN_HERE)
		ck_assert_int_eq(n.outer_ctx_in_inner, -EINVAL);
	ck_assert_int_eq(atomic_load(&app_handler_runs), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_close_pipe(fds);
}

START_TEST(nest_here_in_pool)
{
	nest_case(N_HERE_IN_POOL);
}
END_TEST

START_TEST(nest_here_in_here)
{
	nest_case(N_HERE_CTX);
}
END_TEST

START_TEST(nest_pool_in_here)
{
	nest_case(N_POOL_IN_HERE);
}
END_TEST

/* A scope in a scope on an unrelated token: the outer's cancel does not
 * end the inner's read, whose data ends it; the outer then sees its
 * cancel.  The outer's signals meanwhile reach no handler of the
 * application. */
struct unrel {
	intr_token *outer_tok;
	intr_token *inner_tok;
	struct body_arg inner;
	int inner_ret;
	bool outer_saw;
	int wfd;
};

static void *unrel_outer(intr_ctx *ctx, void *p)
{
	struct unrel *u = p;

	u->inner_ret = intr_run_here(u->inner_tok, wait_body, &u->inner,
				     NULL);
	u->outer_saw = intr_cancelled(ctx);
	return NULL;
}

struct unrel_driver {
	pthread_t th;
	struct unrel *u;
	bool blocked_before, woke, blocked_after;
	int outer_reason;
};

/* How many times thread tid has gone to sleep and been woken. */
static long switches(pid_t tid)
{
	char path[64], line[128];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* Wait, at most ms, until tid has slept and woken k more times than
 * from. */
static bool wait_woken(pid_t tid, long from, long k, unsigned ms)
{
	uint64_t end = h_deadline(ms);

	while (switches(tid) < from + k)
		if (h_passed(end))
			return false;
		else
			h_sleep_ms(1);
	return true;
}

static void *unrel_drive(void *p)
{
	struct unrel_driver *d = p;
	struct unrel *u = d->u;
	uint64_t end = h_deadline(WAIT_MS);
	long sw = 0;
	pid_t tid;

	while ((!atomic_load(&u->inner.started) ||
		!atomic_load(&u->inner.tid)) && !h_passed(end))
		h_sleep_ms(1);
	tid = atomic_load(&u->inner.tid);
	d->blocked_before = tid && h_wait_blocked(tid, SYS_read, WAIT_MS);
	sw = tid ? switches(tid) : 0;
	intr_token_cancel(u->outer_tok);
	d->outer_reason = intr_token_reason(u->outer_tok);
	/* The outer's signals interrupt the read, which the wrapper makes
	 * again: the inner wakes and is back in read().  Then its data. */
	d->woke = tid && wait_woken(tid, sw, 1, WAIT_MS);
	d->blocked_after = tid && h_wait_blocked(tid, SYS_read, WAIT_MS);
	h_write_byte(u->wfd);
	return NULL;
}

START_TEST(nest_here_unrelated)
{
	struct unrel u = { 0 };
	struct unrel_driver d = { .u = &u };
	int fds[2], ret;

	install_app_handler();
	h_make_pipe(fds);
	u.inner.kind = W_INTR_READ;
	u.inner.fd = fds[0];
	u.wfd = fds[1];
	ck_assert_int_eq(intr_token_new(&u.outer_tok, NULL), 0);
	ck_assert_int_eq(intr_token_new(&u.inner_tok, NULL), 0);
	ck_assert_int_eq(pthread_create(&d.th, NULL, unrel_drive, &d), 0);
	ret = intr_run_here(u.outer_tok, unrel_outer, &u, NULL);
	ck_assert_int_eq(pthread_join(d.th, NULL), 0);
	ck_assert(d.blocked_before);
	ck_assert(d.woke);
	ck_assert(d.blocked_after);
	ck_assert_int_eq(d.outer_reason, -ECANCELED);
	ck_assert_int_eq(u.inner_ret, 0);
	ck_assert_int_eq(u.inner.got, 1);
	ck_assert(u.outer_saw);
	ck_assert_int_eq(ret, -ECANCELED);
	ck_assert_int_eq(atomic_load(&app_handler_runs), 0);
	ck_assert_int_eq(intr_token_free(u.inner_tok), 0);
	ck_assert_int_eq(intr_token_free(u.outer_tok), 0);
	h_close_pipe(fds);
}
END_TEST

/* ------------------------------------------------------------ late signals */

/*
 * The cancel races the body's return, many times over, on one thread
 * whose mask alternates between the interrupt signal open and blocked.
 * After each scope nothing of ours is pending, the application's handler
 * has never run, and a read() of the caller's that blocks 50 us is not
 * interrupted.
 */
struct late {
	atomic_int round;	/* the canceller's go: the round number */
	atomic_int done;	/* the last round it has cancelled */
	atomic_int body_in;	/* the round whose body has started */
	atomic_int armed;	/* the round the canceller is about to
				 * cancel, once it saw the body start */
	intr_token *_Atomic tok;
	uint64_t spin;
	atomic_int stop;
};

static void *late_canceller(void *p)
{
	struct late *l = p;
	struct h_rng r;
	int seen = 0, k;

	h_rng_seed(&r, "late_canceller");
	while (!atomic_load(&l->stop)) {
		k = atomic_load(&l->round);
		if (k == seen) {
			sched_yield();
			continue;
		}
		seen = k;
		/* Once the body has started; the body goes on only
		 * once it knows, so the two overlap even on one CPU. */
		while (atomic_load(&l->body_in) != k && !atomic_load(&l->stop))
			sched_yield();
		atomic_store(&l->armed, k);
		h_spin_ns(h_rng_below(&r, 60000));
		intr_token_cancel(atomic_load(&l->tok));
		atomic_store(&l->done, k);
	}
	return NULL;
}

struct late_body {
	struct late *l;
	int k;
	uint64_t spin;
};

static void late_fin(void *arg)
{
	(void)arg;
}

/* Every other pair of rounds the body registers a finalizer: the scope's
 * end then runs user code after its end step, which flushes; without,
 * the flush comes at the unlink's unlock. */
static void *late_body_fn(intr_ctx *ctx, void *p)
{
	struct late_body *b = p;
	uint64_t end = h_deadline(WAIT_MS);

	if ((b->k >> 1) & 1)
		ck_assert_int_eq(intr_defer(ctx, late_fin, NULL), 0);
	atomic_store(&b->l->body_in, b->k);
	while (atomic_load(&b->l->armed) != b->k && !h_passed(end))
		sched_yield();
	h_spin_ns(b->spin);
	return NULL;
}

START_TEST(late_signal_never_leaks)
{
	struct late l = { 0 };
	struct h_rng r;
	pthread_t th;
	long i, n = h_scale(LATE_ITERS), cancelled = 0, plain = 0;
	uint64_t stop = h_deadline(LATE_MS);
	struct timeval tv = { .tv_sec = 0, .tv_usec = 50 };
	sigset_t before;
	int sv[2];

	install_app_handler();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    sv), 0);
	ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv,
				    sizeof(tv)), 0);
	h_rng_seed(&r, "late_signal_never_leaks");
	ck_assert_int_eq(pthread_create(&th, NULL, late_canceller, &l), 0);
	/* A loaded machine runs fewer rounds rather than outrun the test
	 * case's timeout; each round asserts all it did. */
	for (i = 1; h_more_rounds(i - 1, n, stop); i++) {
		struct late_body b = { .l = &l, .k = (int)i,
				       .spin = h_rng_below(&r, 30000) };
		bool blocked = i & 1;
		uint64_t end;
		intr_token *tok;
		int e, ret;
		char c;

		set_blocked(SIGUSR1, blocked);
		before = mask_now();
		ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
		atomic_store(&l.tok, tok);
		atomic_store(&l.round, (int)i);
		errno = 77;
		ret = intr_run_here(tok, late_body_fn, &b, NULL);
		e = errno;
		/* The canceller's cancel is done: nothing can be sent for
		 * this scope any more, whatever came late. */
		end = h_deadline(WAIT_MS);
		while (atomic_load(&l.done) != (int)i && !h_passed(end))
			sched_yield();
		ck_assert_int_eq(atomic_load(&l.done), (int)i);
		ck_assert_int_eq(e, 77);
		if (ret == -ECANCELED)
			cancelled++;
		else
			plain++;
		ck_assert_msg(ret == 0 || ret == -ECANCELED, "ret %d", ret);
		ck_assert_msg(!is_pending(SIGUSR1),
			      "round %ld: a signal of ours is pending after "
			      "the scope (caller %s)", i,
			      blocked ? "blocked it" : "had it open");
		/* A read that blocks 50 us and times out: EINTR if a
		 * signal of ours came after the scope. */
		errno = 0;
		ck_assert_msg(read(sv[0], &c, 1) < 0 && errno != EINTR,
			      "round %ld: the caller's read() after the "
			      "scope: %s", i, strerror(errno));
		{
			sigset_t after = mask_now();

			ck_assert_msg(same_mask(&before, &after),
				      "round %ld: mask not restored", i);
		}
		ck_assert_int_eq(atomic_load(&app_handler_runs), 0);
		ck_assert_int_eq(intr_token_free(tok), 0);
	}
	atomic_store(&l.stop, 1);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	set_blocked(SIGUSR1, false);
	/* Anything still owed would be delivered now. */
	ck_assert_int_eq(atomic_load(&app_handler_runs), 0);
	close(sv[0]);
	close(sv[1]);
	printf("late_signal_never_leaks: %ld rounds of %ld, %ld cancelled "
	       "in the body, %ld not\n", i - 1, n, cancelled, plain);
	ck_assert_int_gt(cancelled, 0);
}
END_TEST

/* ------------------------------------------------------------ errno, input */

static void *errno_body(intr_ctx *ctx, void *p)
{
	(void)ctx;
	(void)p;
	errno = EIO;
	return NULL;
}

START_TEST(errno_preserved)
{
	intr_token *tok;

	errno = 4242;
	ck_assert_int_eq(intr_run_here(NULL, errno_body, NULL, NULL), 0);
	ck_assert_int_eq(errno, 4242);
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	errno = 4343;
	ck_assert_int_eq(intr_run_here(tok, errno_body, NULL, NULL),
			 -ECANCELED);
	ck_assert_int_eq(errno, 4343);
	errno = 4444;
	ck_assert_int_eq(intr_run_here(NULL, NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(errno, 4444);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(bad_input)
{
	intr_token *tok;
	void *res = &res;

	ck_assert_int_eq(intr_run_here(NULL, NULL, NULL, &res), -EINVAL);
	ck_assert_ptr_eq(res, &res);
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
	ck_assert_int_eq(intr_run_here(tok, count_body, NULL, &res), -EINVAL);
	ck_assert_ptr_eq(res, &res);
	ck_assert_int_eq(intr_run_here((intr_token *)(uintptr_t)0x1234,
				       count_body, NULL, &res), -EINVAL);
	ck_assert_int_eq(atomic_load(&ran), 0);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("here");
	TCase *tc = h_tcase(s, "cancel", TEST_TIMEOUT);
#ifdef HAVE_LIBURING
	static char why[160];
#endif

	tcase_add_test(tc, cancel_intr_read);
	tcase_add_test(tc, cancel_plain_read);
	tcase_add_test(tc, cancel_intr_poll);
	tcase_add_test(tc, cancel_intr_sleep);
#ifdef HAVE_LIBURING
	/* Where io_uring is not permitted, one line says so; any other
	 * failure to set up a ring fails the test. */
	if (h_uring_permitted(why, sizeof(why)) == 0)
		h_skip_test("cancel_uring_wait", why);
	else
		tcase_add_test(tc, cancel_uring_wait);
#endif
	tcase_add_test(tc, cancel_caller_blocks_signal);
	tcase_add_test(tc, deadline_ends_read);
	tcase_add_test(tc, cancelled_before_skips_body);
	tcase_add_test(tc, uncancelled_returns_result);
	tcase_add_test(tc, cancelled_seen_by_body);
	tcase_add_test(tc, on_cancel_and_finalizers);
	tc = h_tcase(s, "context", TEST_TIMEOUT);
	tcase_add_test(tc, context_hooks_on_caller);
	tc = h_tcase(s, "nesting", TEST_TIMEOUT);
	tcase_add_test(tc, nest_here_in_pool);
	tcase_add_test(tc, nest_here_in_here);
	tcase_add_test(tc, nest_pool_in_here);
	tcase_add_test(tc, nest_here_unrelated);
	tc = h_tcase(s, "masks", TEST_TIMEOUT);
	tcase_add_test(tc, mask_restored_exactly);
	tcase_add_test(tc, late_signal_never_leaks);
	tc = h_tcase(s, "misuse", TEST_TIMEOUT);
	tcase_add_test(tc, errno_preserved);
	tcase_add_test(tc, bad_input);
	return s;
}

int main(void)
{
	return h_run_suite(make_suite());
}
