/* SPDX-License-Identifier: MIT */
/*
 * Misuse and bad input: every misuse the API names, and the others the
 * library can detect, each gets its defined error, errno is left alone, and
 * nothing crashes.  Bad INTR_SIGNAL values get one clear line on stderr and
 * the default signal.
 *
 * Handles are values made once, not addresses, so a freed handle is
 * refused however old it is (tests/check-handles makes new objects in the
 * old one's memory); the made-up ones here are addresses, which no handle
 * ever is.
 *
 * Bodies and finalizers never call Check's assertions; they record what
 * they saw and the test asserts it after the join.  Every wait is bounded.
 */
#include "config.h"

#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifdef HAVE_LIBURING
#include <interruptible/uring.h>
#else
/* Built without liburing: the io_uring waits exist, and say so.  No
 * header is installed for them in such a build. */
struct io_uring;
struct io_uring_cqe;
struct __kernel_timespec;
int intr_uring_wait_cqe(intr_ctx *ctx, struct io_uring *ring,
			struct io_uring_cqe **cqe);
int intr_uring_wait_cqes(intr_ctx *ctx, struct io_uring *ring,
			 struct io_uring_cqe **cqe, unsigned wait_nr,
			 struct __kernel_timespec *ts);
int intr_uring_submit_and_wait(intr_ctx *ctx, struct io_uring *ring,
			       unsigned wait_nr);
#endif

#define WAIT_MS		5000
#define BODY_MS		10000
#define BODY_DONE	BODY_MARK(0xd0e)

/* errno as a probe saw it after a call, next to the call's result. */
struct seen {
	long ret;
	int err;
};

#define PROBE(s, expr)							\
	do {								\
		errno = MAGIC_ERRNO;					\
		(s)->ret = (long)(expr);				\
		(s)->err = errno;					\
	} while (0)

static void assert_seen(const struct seen *s, long want, const char *what)
{
	ck_assert_msg(s->ret == want, "%s returned %ld, want %ld", what,
		      s->ret, want);
	ck_assert_msg(s->err == MAGIC_ERRNO, "%s changed errno to %d", what,
		      s->err);
}

/* ------------------------------------------------------------ wrappers */

/*
 * Every function that works only inside the body of the call ctx names.
 * Each is called with a ctx that does not qualify and must return -EINVAL
 * without touching its arguments' objects.
 */
static int pipe_fds[2];
static pthread_mutex_t cw_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cw_cv = PTHREAD_COND_INITIALIZER;
static atomic_int wake_ran;

static void wake_nop(void *arg)
{
	(void)arg;
	atomic_fetch_add(&wake_ran, 1);
}

static long call_wrapper(int which, intr_ctx *ctx)
{
	struct pollfd p = { .fd = pipe_fds[0], .events = POLLIN };
	char b;
	long r;

	switch (which) {
	case 0:
		return intr_syscall(ctx, SYS_read, (long)pipe_fds[0], (long)&b,
				    1L);
	case 1:
		return intr_read(ctx, pipe_fds[0], &b, 1);
	case 2:
		return intr_write(ctx, pipe_fds[1], "x", 1);
	case 3:
		return intr_poll(ctx, &p, 1, 0);
	case 4:
		return intr_accept(ctx, -1, NULL, NULL);
	case 5:
		return intr_sleep(ctx, 1000);
	case 6:
		pthread_mutex_lock(&cw_mu);
		r = intr_cond_wait(ctx, &cw_cv, &cw_mu);
		pthread_mutex_unlock(&cw_mu);
		return r;
	case 7:
		return intr_on_cancel(ctx, wake_nop, NULL);
#ifdef HAVE_LIBURING
	case 8: {
		struct io_uring_cqe *cqe = NULL;

		return intr_uring_wait_cqe(ctx, (struct io_uring *)&p, &cqe);
	}
	case 9: {
		struct io_uring_cqe *cqe = NULL;

		return intr_uring_wait_cqes(ctx, (struct io_uring *)&p, &cqe,
					    1, NULL);
	}
	case 10:
		return intr_uring_submit_and_wait(ctx, (struct io_uring *)&p,
						  1);
#endif
	}
	return 12345;
}

#ifdef HAVE_LIBURING
#define N_WRAPPERS 11
#else
#define N_WRAPPERS 8
#endif

static const char *const wrapper_names[] = {
	"intr_syscall", "intr_read", "intr_write", "intr_poll", "intr_accept",
	"intr_sleep", "intr_cond_wait", "intr_on_cancel",
	"intr_uring_wait_cqe", "intr_uring_wait_cqes",
	"intr_uring_submit_and_wait",
};

/* A body held until the test releases it, with its ctx smuggled out. */
struct held {
	struct h_gate g;
	_Atomic(intr_ctx *) ctx;
	int which;		/* wrapper a finalizer calls */
	struct seen fin;	/* what it saw */
	atomic_int fin_ran;
};

static void held_fin(void *arg)
{
	struct held *h = arg;

	PROBE(&h->fin, call_wrapper(h->which, atomic_load(&h->ctx)));
	atomic_store(&h->fin_ran, 1);
}

static void *held_body(intr_ctx *ctx, void *arg)
{
	struct held *h = arg;

	atomic_store(&h->ctx, ctx);
	if (intr_defer(ctx, held_fin, h))
		return BODY_ERROR;
	h_gate_announce(&h->g);
	return h_gate_wait(ctx, &h->g, BODY_MS, false);
}

static intr_task *start_held(struct held *h, int which)
{
	intr_task *t = NULL;

	memset(h, 0, sizeof(*h));
	h->which = which;
	h->fin.ret = 12345;
	h_gate_init(&h->g);
	ck_assert_int_eq(intr_spawn(&t, NULL, held_body, h), 0);
	h_gate_wait_up(&h->g, WAIT_MS);
	return t;
}

static void finish_held(struct held *h, intr_task *t)
{
	void *res = NULL;

	h_gate_open(&h->g);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	h_gate_fini(&h->g);
}

static void wrappers_setup(void)
{
	ck_assert_int_eq(pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK), 0);
	atomic_store(&wake_ran, 0);
}

static void wrappers_teardown(void)
{
	h_close_pipe(pipe_fds);
}

/* Nothing the refused calls could have done happened. */
static void assert_untouched(void)
{
	char b;

	ck_assert_int_eq(read(pipe_fds[0], &b, 1), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(atomic_load(&wake_ran), 0);
}

START_TEST(wrapper_null_ctx)
{
	struct seen s;

	PROBE(&s, call_wrapper(_i, NULL));
	assert_seen(&s, -EINVAL, wrapper_names[_i]);
	assert_untouched();
}
END_TEST

/* The caller's thread, with the live ctx of a running body. */
START_TEST(wrapper_from_caller_thread)
{
	struct held h;
	intr_task *t = start_held(&h, _i);
	struct seen s;

	PROBE(&s, call_wrapper(_i, atomic_load(&h.ctx)));
	finish_held(&h, t);
	assert_seen(&s, -EINVAL, wrapper_names[_i]);
	assert_untouched();
}
END_TEST

struct other_arg {
	intr_ctx *ctx;
	int which;
	struct seen s;
};

static void *other_thread(void *p)
{
	struct other_arg *a = p;

	PROBE(&a->s, call_wrapper(a->which, a->ctx));
	return NULL;
}

/* A thread the application created, not a worker. */
START_TEST(wrapper_from_other_thread)
{
	struct other_arg a = { .which = _i };
	struct held h;
	intr_task *t = start_held(&h, _i);
	pthread_t th;

	a.ctx = atomic_load(&h.ctx);
	ck_assert_int_eq(pthread_create(&th, NULL, other_thread, &a), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	finish_held(&h, t);
	assert_seen(&a.s, -EINVAL, wrapper_names[_i]);
	assert_untouched();
}
END_TEST

/* The call's own finalizer: on the worker, but the body has returned. */
START_TEST(wrapper_from_finalizer)
{
	struct held h;
	intr_task *t = start_held(&h, _i);

	finish_held(&h, t);
	ck_assert_int_eq(atomic_load(&h.fin_ran), 1);
	assert_seen(&h.fin, -EINVAL, wrapper_names[_i]);
	assert_untouched();
}
END_TEST

struct foreign_arg {
	intr_ctx *victim;
	int which;
	struct seen s;
};

static void *foreign_body(intr_ctx *ctx, void *p)
{
	struct foreign_arg *a = p;

	(void)ctx;
	PROBE(&a->s, call_wrapper(a->which, a->victim));
	return BODY_DONE;
}

/* Another body, on another worker, with the first body's ctx. */
START_TEST(wrapper_foreign_ctx)
{
	struct foreign_arg a = { .which = _i };
	struct held h;
	intr_task *t = start_held(&h, _i);
	void *res = NULL;

	a.victim = atomic_load(&h.ctx);
	ck_assert_int_eq(run_interruptible(NULL, foreign_body, &a, &res), 0);
	ck_assert_ptr_eq(res, BODY_DONE);
	finish_held(&h, t);
	assert_seen(&a.s, -EINVAL, wrapper_names[_i]);
	assert_untouched();
}
END_TEST

/* The ctx of a call that has ended, on the thread that ran it. */
START_TEST(wrapper_stale_ctx)
{
	struct held h;
	intr_task *t = start_held(&h, _i);
	struct seen s;

	finish_held(&h, t);
	PROBE(&s, call_wrapper(_i, atomic_load(&h.ctx)));
	assert_seen(&s, -EINVAL, wrapper_names[_i]);
	assert_untouched();
}
END_TEST

/* intr_cond_wait with no condition or no mutex. */
struct cond_null {
	struct seen no_cond, no_mutex;
};

static void *cond_null_body(intr_ctx *ctx, void *p)
{
	struct cond_null *c = p;

	PROBE(&c->no_cond, intr_cond_wait(ctx, NULL, &cw_mu));
	PROBE(&c->no_mutex, intr_cond_wait(ctx, &cw_cv, NULL));
	return BODY_DONE;
}

START_TEST(cond_wait_null_objects)
{
	struct cond_null c;

	ck_assert_int_eq(run_interruptible(NULL, cond_null_body, &c, NULL), 0);
	assert_seen(&c.no_cond, -EINVAL, "intr_cond_wait(NULL cond)");
	assert_seen(&c.no_mutex, -EINVAL, "intr_cond_wait(NULL mutex)");
}
END_TEST

/* ------------------------------------------------------------ ctx */

/* The ctx queries off the worker: false, -EINVAL, NULL, NULL. */
START_TEST(ctx_queries_off_worker)
{
	static const int key;
	struct held h;
	intr_task *t = start_held(&h, 0);
	intr_ctx *ctx = atomic_load(&h.ctx);
	int count = 0;

	errno = MAGIC_ERRNO;
	ck_assert(!intr_cancelled(ctx));
	ck_assert_int_eq(intr_reason(ctx), -EINVAL);
	ck_assert_ptr_null(intr_ctx_token(ctx));
	ck_assert_ptr_null(intr_ctx_value(ctx, &key));
	ck_assert_int_eq(errno, MAGIC_ERRNO);
	CHECK_KEEPS_ERRNO(-EINVAL, intr_defer(ctx, held_fin, &count));
	finish_held(&h, t);
	ck_assert_int_eq(count, 0);
}
END_TEST

static void count_fin(void *arg)
{
	(*(int *)arg)++;
}

/* intr_defer outside any body: no ctx, a made-up ctx, NULL fn. */
START_TEST(defer_outside_body)
{
	int count = 0;
	long fake[16] = { 0 };

	CHECK_KEEPS_ERRNO(-EINVAL, intr_defer(NULL, count_fin, &count));
	CHECK_KEEPS_ERRNO(-EINVAL,
			  intr_defer((intr_ctx *)fake, count_fin, &count));
	ck_assert_int_eq(count, 0);
}
END_TEST

/* ------------------------------------------------------------ tokens */

enum tok_kind { TOK_NULL, TOK_FREED, TOK_MADE_UP, N_TOK_KINDS };
static const char *const tok_kind_names[] = { "NULL", "freed", "made-up" };
static long made_up_token[32];

static intr_token *bad_token(int kind)
{
	intr_token *t = NULL;

	switch (kind) {
	case TOK_FREED:
		t = h_new_token(NULL);
		ck_assert_int_eq(intr_token_free(t), 0);
		return t;
	case TOK_MADE_UP:
		return (intr_token *)made_up_token;
	}
	return NULL;
}

static void *nop_body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

/* Every function taking a token refuses a dead one. */
START_TEST(token_dead)
{
	intr_token *bad = bad_token(_i);
	intr_token *out = (intr_token *)&out;
	intr_task *task = NULL;
	static const int key;
	void *res = BODY_DONE;

	printf("token_dead: %s token\n", tok_kind_names[_i]);
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_cancel(bad));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_cancel_after(bad, 1000));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_cancel_after(bad, 0));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_reason(bad));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_free(bad));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_set_value(bad, &key, NULL));
	if (bad) {
		/* NULL is a valid parent and a valid call token. */
		CHECK_KEEPS_ERRNO(-EINVAL, intr_token_new(&out, bad));
		ck_assert_ptr_eq(out, (intr_token *)&out);
		CHECK_KEEPS_ERRNO(-EINVAL,
				  run_interruptible(bad, nop_body, NULL, &res));
		ck_assert_ptr_eq(res, BODY_DONE);
		CHECK_KEEPS_ERRNO(-EINVAL,
				  intr_spawn(&task, bad, nop_body, NULL));
		ck_assert_ptr_null(task);
	}
	ck_assert_int_eq(made_up_token[0], 0);
}
END_TEST

START_TEST(token_new_null_out)
{
	intr_token *parent = h_new_token(NULL);

	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_new(NULL, NULL));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_new(NULL, parent));
	/* Nothing was linked under parent. */
	CHECK_KEEPS_ERRNO(0, intr_token_free(parent));
}
END_TEST

START_TEST(token_double_free)
{
	intr_token *t = h_new_token(NULL);

	CHECK_KEEPS_ERRNO(0, intr_token_free(t));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_free(t));
}
END_TEST

START_TEST(token_free_busy)
{
	intr_token *parent = h_new_token(NULL);
	intr_token *child = h_new_token(parent);

	CHECK_KEEPS_ERRNO(-EBUSY, intr_token_free(parent));
	CHECK_KEEPS_ERRNO(0, intr_token_free(child));
	CHECK_KEEPS_ERRNO(0, intr_token_free(parent));
}
END_TEST

struct own_tok {
	struct seen free_own;
	intr_token *tok;
};

static void *own_tok_body(intr_ctx *ctx, void *p)
{
	struct own_tok *o = p;

	o->tok = intr_ctx_token(ctx);
	PROBE(&o->free_own, intr_token_free(o->tok));
	return BODY_DONE;
}

/* A call's own token belongs to the library: the body cannot free it, and
 * nobody can once the call has ended. */
START_TEST(token_free_call_token)
{
	struct own_tok o = { .free_own = { 12345, 0 } };

	ck_assert_int_eq(run_interruptible(NULL, own_tok_body, &o, NULL), 0);
	assert_seen(&o.free_own, -EINVAL, "intr_token_free(own token)");
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_free(o.tok));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_cancel(o.tok));
}
END_TEST

START_TEST(token_value_misuse)
{
	static const int key;
	intr_token *t = h_new_token(NULL);
	int one, two;

	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_set_value(t, NULL, &one));
	CHECK_KEEPS_ERRNO(0, intr_token_set_value(t, &key, &one));
	CHECK_KEEPS_ERRNO(-EEXIST, intr_token_set_value(t, &key, &two));
	CHECK_KEEPS_ERRNO(0, intr_token_free(t));
}
END_TEST

/* ------------------------------------------------------------ tasks */

enum join_kind { J_JOIN, J_TRYJOIN, N_JOIN_KINDS };

static int do_join(int kind, intr_task *t, void **res)
{
	return kind == J_JOIN ? intr_join(t, res) : intr_tryjoin(t, res);
}

START_TEST(task_null)
{
	void *res = BODY_DONE;

	CHECK_KEEPS_ERRNO(-EINVAL, intr_join(NULL, &res));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_tryjoin(NULL, &res));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_task_cancel(NULL));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_task_fd(NULL));
	ck_assert_ptr_eq(res, BODY_DONE);
}
END_TEST

START_TEST(task_made_up)
{
	long fake[64] = { 0 };
	intr_task *t = (intr_task *)fake;
	void *res = BODY_DONE;
	int i;

	CHECK_KEEPS_ERRNO(-EINVAL, intr_join(t, &res));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_tryjoin(t, &res));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_task_cancel(t));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_task_fd(t));
	ck_assert_ptr_eq(res, BODY_DONE);
	for (i = 0; i < 64; i++)
		ck_assert_int_eq(fake[i], 0);
}
END_TEST

START_TEST(spawn_null_args)
{
	intr_task *t = NULL;
	void *res = BODY_DONE;

	CHECK_KEEPS_ERRNO(-EINVAL, intr_spawn(NULL, NULL, nop_body, NULL));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_spawn(&t, NULL, NULL, NULL));
	ck_assert_ptr_null(t);
	CHECK_KEEPS_ERRNO(-EINVAL, run_interruptible(NULL, NULL, NULL, &res));
	ck_assert_ptr_eq(res, BODY_DONE);
}
END_TEST

/* Joined once (with intr_join or intr_tryjoin), then every task function
 * again, with either kind of join. */
START_TEST(task_after_join)
{
	int first = _i / N_JOIN_KINDS, second = _i % N_JOIN_KINDS;
	intr_task *t = NULL;
	void *res = NULL;

	ck_assert_int_eq(intr_spawn(&t, NULL, nop_body, BODY_DONE), 0);
	h_wait_readable(intr_task_fd(t), WAIT_MS, "task fd");
	CHECK_KEEPS_ERRNO(0, do_join(first, t, &res));
	ck_assert_ptr_eq(res, BODY_DONE);
	res = BODY_MARK(7);
	CHECK_KEEPS_ERRNO(-EINVAL, do_join(second, t, &res));
	ck_assert_ptr_eq(res, BODY_MARK(7));
	/* Cancel and fd after the join. */
	CHECK_KEEPS_ERRNO(-EINVAL, intr_task_cancel(t));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_task_fd(t));
}
END_TEST

struct joiner {
	intr_task *t;
	int ret;
	void *res;
};

static void *join_thread(void *p)
{
	struct joiner *j = p;

	j->ret = intr_join(j->t, &j->res);
	return NULL;
}

/* Two joins at once: one gets the call, the other -EINVAL, at once; the
 * fd is refused once a join has the task. */
START_TEST(task_concurrent_join)
{
	struct held h;
	intr_task *t = start_held(&h, 0);
	struct joiner j = { .t = t, .ret = 1 };
	pthread_t th;
	void *res = BODY_MARK(7);
	uint64_t end = h_deadline(WAIT_MS);
	int ret;

	ck_assert_int_eq(pthread_create(&th, NULL, join_thread, &j), 0);
	/* Wait until the other join has claimed the task. */
	while ((ret = intr_task_fd(t)) >= 0) {
		ck_assert_msg(!h_passed(end), "the join never claimed the task");
		h_sleep_ms(1);
	}
	ck_assert_int_eq(ret, -EINVAL);
	/* The try first: a second join that waited for the call instead
	 * of refusing it would wait for the gate, opened below. */
	CHECK_KEEPS_ERRNO(-EINVAL, intr_tryjoin(t, &res));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_join(t, &res));
	ck_assert_ptr_eq(res, BODY_MARK(7));
	h_gate_open(&h.g);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(j.ret, 0);
	ck_assert_ptr_eq(j.res, BODY_RELEASED);
	h_gate_fini(&h.g);
}
END_TEST

/* A body, or its finalizer, joining its own task would wait for itself
 * forever: refused. */
struct self_join {
	_Atomic(intr_task *) t;
	struct h_gate g;
	struct seen body_join, body_tryjoin, fin_join;
};

static void self_fin(void *p)
{
	struct self_join *s = p;

	PROBE(&s->fin_join, intr_join(atomic_load(&s->t), NULL));
}

static void *self_body(intr_ctx *ctx, void *p)
{
	struct self_join *s = p;
	uint64_t end = h_deadline(BODY_MS);

	intr_defer(ctx, self_fin, s);
	while (!atomic_load(&s->t) && !h_passed(end))
		h_sleep_ms(1);
	PROBE(&s->body_join, intr_join(atomic_load(&s->t), NULL));
	PROBE(&s->body_tryjoin, intr_tryjoin(atomic_load(&s->t), NULL));
	return BODY_DONE;
}

START_TEST(task_self_join)
{
	struct self_join s;
	intr_task *t = NULL;
	void *res = NULL;

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(intr_spawn(&t, NULL, self_body, &s), 0);
	atomic_store(&s.t, t);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_DONE);
	assert_seen(&s.body_join, -EINVAL, "intr_join(self) in the body");
	assert_seen(&s.body_tryjoin, -EINVAL, "intr_tryjoin(self) in the body");
	assert_seen(&s.fin_join, -EINVAL, "intr_join(self) in a finalizer");
}
END_TEST

/* ------------------------------------------------------------ context */

static void *cap(void *d) { return d; }
static void *inst(void *c, void *d) { (void)d; return c; }
static void rest(void *s, void *d) { (void)s; (void)d; }

START_TEST(context_add_incomplete)
{
	struct intr_context_element el = {
		.capture = cap, .install = inst, .restore = rest,
	};
	struct intr_context_element e;

	CHECK_KEEPS_ERRNO(-EINVAL, intr_context_add(NULL));
	e = el;
	e.capture = NULL;
	CHECK_KEEPS_ERRNO(-EINVAL, intr_context_add(&e));
	e = el;
	e.install = NULL;
	CHECK_KEEPS_ERRNO(-EINVAL, intr_context_add(&e));
	e = el;
	e.restore = NULL;
	CHECK_KEEPS_ERRNO(-EINVAL, intr_context_add(&e));
	/* release may be NULL. */
	CHECK_KEEPS_ERRNO(0, intr_context_add(&el));
}
END_TEST

/* ------------------------------------------------------------ configuration */

START_TEST(configure_after_first_use)
{
	struct intr_config cfg;
	intr_token *t;

	intr_config_default(&cfg);
	CHECK_KEEPS_ERRNO(0, intr_configure(&cfg));
	/* Before the first use it may be called again. */
	cfg.max_workers = 3;
	CHECK_KEEPS_ERRNO(0, intr_configure(&cfg));
	t = h_new_token(NULL);
	CHECK_KEEPS_ERRNO(-EBUSY, intr_configure(&cfg));
	CHECK_KEEPS_ERRNO(0, intr_token_free(t));
	CHECK_KEEPS_ERRNO(-EBUSY, intr_configure(&cfg));
}
END_TEST

START_TEST(configure_after_run)
{
	struct intr_config cfg;

	intr_config_default(&cfg);
	ck_assert_int_eq(run_interruptible(NULL, nop_body, NULL, NULL), 0);
	CHECK_KEEPS_ERRNO(-EBUSY, intr_configure(&cfg));
}
END_TEST

/* Adding a context element is not a first use. */
START_TEST(configure_after_context_add)
{
	struct intr_context_element el = {
		.capture = cap, .install = inst, .restore = rest,
	};
	struct intr_config cfg;

	intr_config_default(&cfg);
	ck_assert_int_eq(intr_context_add(&el), 0);
	CHECK_KEEPS_ERRNO(0, intr_configure(&cfg));
}
END_TEST

/* Only SIGUSR1, SIGUSR2 and the real-time signals may be the interrupt
 * signal: every other one means something to the kernel, the terminal or
 * process management. */
static const int bad_signos[] = {
	0, -1, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
	SIGSYS, SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGABRT, SIGPIPE, SIGALRM,
	SIGTERM, SIGSTKFLT, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG,
	SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR,
	32, 33, 65, 1000, 99999, -2147483647 - 1, 2147483647,
};
#define N_BAD_SIGNOS ((int)(sizeof(bad_signos) / sizeof(bad_signos[0])))

START_TEST(configure_bad_signal)
{
	struct intr_config cfg;
	int signo = bad_signos[_i];

	/* 32 and 33 are libc's own (glibc: SIGCANCEL, SIGSETXID). */
	if ((signo == 32 || signo == 33) && signo >= SIGRTMIN)
		return;
	if (signo == 65 && signo <= SIGRTMAX)
		return;
	intr_config_default(&cfg);
	cfg.signo = signo;
	CHECK_KEEPS_ERRNO(-EINVAL, intr_configure(&cfg));
	/* Refused means not applied: the library still works, on its
	 * default signal. */
	ck_assert_int_eq(run_interruptible(NULL, nop_body, NULL, NULL), 0);
	{
		struct sigaction sa;

		ck_assert_int_eq(sigaction(SIGUSR1, NULL, &sa), 0);
		ck_assert(sa.sa_flags & SA_SIGINFO);
	}
}
END_TEST

START_TEST(configure_bad_fields)
{
	struct intr_config cfg;

	CHECK_KEEPS_ERRNO(-EINVAL, intr_configure(NULL));
	intr_config_default(&cfg);
	cfg.resend_us = 0;
	CHECK_KEEPS_ERRNO(-EINVAL, intr_configure(&cfg));
	intr_config_default(&cfg);
	cfg.stack_size = 1;
	CHECK_KEEPS_ERRNO(-EINVAL, intr_configure(&cfg));
	intr_config_default(&cfg);
	CHECK_KEEPS_ERRNO(0, intr_configure(&cfg));
	intr_config_default(NULL);	/* nothing to fill: no crash */
}
END_TEST

/* ------------------------------------------------------------ INTR_SIGNAL */

/*
 * Each value: what intr_config_default() picks (0: refused, the default
 * SIGUSR1 stays and one line goes to stderr).  The usable ones are there
 * so that the refusal is seen to depend on the value.  Set but empty is
 * the same as unset: SIGUSR1, silently.
 */
static const struct env_case {
	const char *value;
	int want;		/* -1: SIGRTMIN+3; -2: SIGRTMAX-2; -3: SIGRTMIN;
				   -4: SIGRTMAX */
} env_cases[] = {
	{ "", SIGUSR1 }, { "abc", 0 }, { "-1", 0 }, { "0", 0 }, { "9", 0 },
	{ "19", 0 }, { "KILL", 0 }, { "SIGKILL", 0 }, { "SIGSTOP", 0 },
	{ "SIGSEGV", 0 }, { "11", 0 }, { "SIGBUS", 0 }, { "SIGFPE", 0 },
	{ "SIGILL", 0 }, { "SIGTRAP", 0 }, { "SIGSYS", 0 }, { "SIGCHLD", 0 },
	{ "17", 0 }, { "32", 0 }, { "33", 0 }, { "65", 0 }, { "99999", 0 },
	{ "2147483648", 0 }, { "4294967306", 0 },
	{ "99999999999999999999", 0 }, { "SIGRTMAX+1", 0 },
	{ "RTMIN-1", 0 }, { "RTMIN+31", 0 }, { "RTMAX-31", 0 },
	{ "RTMIN+99999", 0 }, { "RTMIN+", 0 }, { "SIG", 0 }, { "SIGSIGUSR2", 0 },
	{ "usr2", 0 }, { "sigusr2", 0 }, { " SIGUSR2", 0 }, { "SIGUSR2 ", 0 },
	{ "12abc", 0 }, { "+12", 0 }, { "0x0c", 0 }, { "SIGUSR2\n", 0 },
	{ "SIGUSR2", SIGUSR2 }, { "USR2", SIGUSR2 }, { "12", SIGUSR2 },
	{ "010", SIGUSR1 }, { "RTMIN+3", -1 }, { "SIGRTMAX-2", -2 },
	{ "SIGUSR1", SIGUSR1 }, { "10", SIGUSR1 }, { "SIGRTMIN", -3 },
	{ "RTMAX", -4 },
	/* Signals with a meaning of their own are refused. */
	{ "SIGTERM", 0 }, { "TERM", 0 }, { "15", 0 }, { "INT", 0 },
	{ "SIGINT", 0 }, { "2", 0 }, { "PIPE", 0 }, { "13", 0 },
	{ "HUP", 0 }, { "QUIT", 0 }, { "ABRT", 0 }, { "ALRM", 0 },
	{ "CONT", 0 }, { "TSTP", 0 }, { "TTIN", 0 }, { "TTOU", 0 },
	{ "URG", 0 }, { "XCPU", 0 }, { "XFSZ", 0 }, { "VTALRM", 0 },
	{ "PROF", 0 }, { "WINCH", 0 }, { "IO", 0 }, { "PWR", 0 },
	{ "16", 0 },
};
#define N_ENV_CASES ((int)(sizeof(env_cases) / sizeof(env_cases[0])))

/* Run fn with stderr going to a file; return what was written (static). */
static const char *capture_stderr(void (*fn)(void *), void *arg)
{
	static char buf[4096];
	char path[] = "/tmp/intr-misuse-XXXXXX";
	int fd = mkstemp(path);
	int saved;
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	fflush(stderr);
	saved = dup(2);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(fd, 2), 2);
	fn(arg);
	fflush(stderr);
	ck_assert_int_eq(dup2(saved, 2), 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	ck_assert_int_ge(n, 0);
	buf[n] = 0;
	close(fd);
	return buf;
}

struct env_run {
	int signo[2];
	int ret;
};

static void env_first_use(void *p)
{
	struct env_run *r = p;
	struct intr_config cfg;

	intr_config_default(&cfg);
	r->signo[0] = cfg.signo;
	intr_config_default(&cfg);
	r->signo[1] = cfg.signo;
	r->ret = run_interruptible(NULL, nop_body, NULL, NULL);
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* A body blocked in read(), cancelled: proves the signal in use works. */
static atomic_int block_up;

/* Says it runs (its thread id), then blocks until cancelled. */
static void *block_body(intr_ctx *ctx, void *arg)
{
	int *fds = arg;
	char b;

	atomic_store(&block_up, (int)h_gettid());
	return intr_read(ctx, fds[0], &b, 1) == -ECANCELED ? BODY_CANCELLED
							   : BODY_ERROR;
}

START_TEST(env_intr_signal)
{
	const struct env_case *c = &env_cases[_i];
	int want = c->want == -1 ? SIGRTMIN + 3 :
		   c->want == -2 ? SIGRTMAX - 2 :
		   c->want == -3 ? SIGRTMIN :
		   c->want == -4 ? SIGRTMAX : c->want;
	int expect = want ? want : SIGUSR1;
	struct env_run r = { { 0, 0 }, 1 };
	struct sigaction sa;
	const char *err;
	intr_token *tok;
	intr_task *t;
	void *res = NULL;
	int fds[2];

	printf("env_intr_signal: INTR_SIGNAL=\"%s\"\n", c->value);
	ck_assert_int_eq(setenv("INTR_SIGNAL", c->value, 1), 0);
	err = capture_stderr(env_first_use, &r);
	if (expect == SIGRTMAX && RUNNING_ON_VALGRIND) {
		/* valgrind keeps SIGRTMAX for itself: no handler can be
		 * installed there, and the first call says so. */
		printf("env_intr_signal: INTR_SIGNAL=\"%s\": under valgrind, "
		       "which keeps signal %d, the first call is refused\n",
		       c->value, expect);
		ck_assert_int_eq(r.ret, -EINVAL);
		return;
	}
	ck_assert_int_eq(r.ret, 0);
	ck_assert_int_eq(r.signo[0], expect);
	ck_assert_int_eq(r.signo[1], expect);
	if (want) {
		ck_assert_msg(!*err, "usable value, yet: %s", err);
	} else {
		/* One line, once, naming the variable and the value. */
		ck_assert_msg(count_lines(err) == 1 + (strchr(c->value, '\n') != NULL),
			      "stderr: \"%s\"", err);
		ck_assert_ptr_nonnull(strstr(err, "libinterruptible"));
		ck_assert_ptr_nonnull(strstr(err, "INTR_SIGNAL"));
		ck_assert_ptr_nonnull(strstr(err, c->value));
		ck_assert_ptr_nonnull(strstr(err, "using SIGUSR1"));
	}
	/* The handler is on the signal in use, and a cancel works. */
	ck_assert_int_eq(sigaction(expect, NULL, &sa), 0);
	ck_assert(sa.sa_flags & SA_SIGINFO);
	ck_assert(!(sa.sa_flags & SA_RESTART));
	if (getenv("INTR_TEST_QEMU") && expect > SIGRTMAX - 2) {
		/* qemu-user keeps these two for itself: never delivered. */
		printf("env_intr_signal: INTR_SIGNAL=\"%s\": the cancel not "
		       "tried under qemu-user, which delivers no signal %d\n",
		       c->value, expect);
		return;
	}
	h_make_pipe(fds);
	tok = h_new_token(NULL);
	atomic_store(&block_up, 0);
	ck_assert_int_eq(intr_spawn(&t, tok, block_body, fds), 0);
	/* The cancel must reach a body blocked in the kernel, however slow
	 * the start: only the signal can get it out. */
	ck_assert(h_wait_atomic(&block_up, 1, WAIT_MS));
	ck_assert_msg(h_wait_blocked(atomic_load(&block_up), SYS_read,
				     WAIT_MS), "the body never blocked in read");
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_close_pipe(fds);
}
END_TEST

/* An explicit intr_configure wins over a bad INTR_SIGNAL, silently. */
static void configure_usr2(void *p)
{
	struct intr_config cfg;
	int *ret = p;

	cfg.signo = 0;
	cfg.max_workers = 0;
	cfg.idle_ms = 1000;
	cfg.stack_size = 0;
	cfg.resend_us = 1000;
	cfg.signo = SIGUSR2;
	ret[0] = intr_configure(&cfg);
	ret[1] = run_interruptible(NULL, nop_body, NULL, NULL);
}

START_TEST(env_bad_but_configured)
{
	int ret[2] = { 1, 1 };
	struct sigaction sa;
	const char *err;

	ck_assert_int_eq(setenv("INTR_SIGNAL", "SIGKILL", 1), 0);
	err = capture_stderr(configure_usr2, ret);
	ck_assert_int_eq(ret[0], 0);
	ck_assert_int_eq(ret[1], 0);
	ck_assert_msg(!*err, "stderr: %s", err);
	ck_assert_int_eq(sigaction(SIGUSR2, NULL, &sa), 0);
	ck_assert(sa.sa_flags & SA_SIGINFO);
	ck_assert_int_eq(sigaction(SIGUSR1, NULL, &sa), 0);
	ck_assert(sa.sa_handler == SIG_DFL);
}
END_TEST

/* ------------------------------------------------------------ suite */

#ifndef HAVE_LIBURING
/* Without liburing the io_uring waits return -ENOSYS, wherever they are
 * called, and touch nothing: the same functions as in every build. */
static void *uring_nosys_body(intr_ctx *ctx, void *arg)
{
	struct seen *s = arg;
	struct io_uring_cqe *cqe = NULL;

	PROBE(&s[0], intr_uring_wait_cqe(ctx, NULL, &cqe));
	PROBE(&s[1], intr_uring_wait_cqes(ctx, NULL, &cqe, 1, NULL));
	PROBE(&s[2], intr_uring_submit_and_wait(ctx, NULL, 1));
	return BODY_DONE;
}

START_TEST(uring_without_liburing)
{
	struct seen s[3];
	void *res = NULL;
	int k;

	CHECK_KEEPS_ERRNO(-ENOSYS, intr_uring_wait_cqe(NULL, NULL, NULL));
	CHECK_KEEPS_ERRNO(-ENOSYS, intr_uring_wait_cqes(NULL, NULL, NULL, 1,
							NULL));
	CHECK_KEEPS_ERRNO(-ENOSYS, intr_uring_submit_and_wait(NULL, NULL, 1));
	memset(s, 0, sizeof(s));
	ck_assert_int_eq(run_interruptible(NULL, uring_nosys_body, s, &res),
			 0);
	ck_assert_ptr_eq(res, BODY_DONE);
	for (k = 0; k < 3; k++) {
		ck_assert_int_eq(s[k].ret, -ENOSYS);
		ck_assert_int_eq(s[k].err, MAGIC_ERRNO);
	}
}
END_TEST
#endif

static Suite *make_suite(void)
{
	Suite *s = suite_create("misuse");
	TCase *tc;

	tc = h_tcase(s, "wrappers", 30);
	tcase_add_checked_fixture(tc, wrappers_setup, wrappers_teardown);
	tcase_add_loop_test(tc, wrapper_null_ctx, 0, N_WRAPPERS);
	tcase_add_loop_test(tc, wrapper_from_caller_thread, 0, N_WRAPPERS);
	tcase_add_loop_test(tc, wrapper_from_other_thread, 0, N_WRAPPERS);
	tcase_add_loop_test(tc, wrapper_from_finalizer, 0, N_WRAPPERS);
	tcase_add_loop_test(tc, wrapper_foreign_ctx, 0, N_WRAPPERS);
	tcase_add_loop_test(tc, wrapper_stale_ctx, 0, N_WRAPPERS);
	tcase_add_test(tc, cond_wait_null_objects);
	tcase_add_test(tc, ctx_queries_off_worker);
	tcase_add_test(tc, defer_outside_body);
#ifndef HAVE_LIBURING
	tcase_add_test(tc, uring_without_liburing);
#endif

	tc = h_tcase(s, "tokens", 30);
	tcase_add_loop_test(tc, token_dead, 0, N_TOK_KINDS);
	tcase_add_test(tc, token_new_null_out);
	tcase_add_test(tc, token_double_free);
	tcase_add_test(tc, token_free_busy);
	tcase_add_test(tc, token_free_call_token);
	tcase_add_test(tc, token_value_misuse);

	tc = h_tcase(s, "tasks", 30);
	tcase_add_test(tc, task_null);
	tcase_add_test(tc, task_made_up);
	tcase_add_test(tc, spawn_null_args);
	tcase_add_loop_test(tc, task_after_join, 0,
			    N_JOIN_KINDS * N_JOIN_KINDS);
	tcase_add_test(tc, task_concurrent_join);
	tcase_add_test(tc, task_self_join);

	tc = h_tcase(s, "config", 30);
	tcase_add_test(tc, context_add_incomplete);
	tcase_add_test(tc, configure_after_first_use);
	tcase_add_test(tc, configure_after_run);
	tcase_add_test(tc, configure_after_context_add);
	tcase_add_loop_test(tc, configure_bad_signal, 0, N_BAD_SIGNOS);
	tcase_add_test(tc, configure_bad_fields);
	tcase_add_loop_test(tc, env_intr_signal, 0, N_ENV_CASES);
	tcase_add_test(tc, env_bad_but_configured);
	return s;
}

int main(void)
{
	return h_run_suite(make_suite());
}
