/* SPDX-License-Identifier: MIT */
/*
 * Context propagation: context elements (capture, install, restore,
 * release) and token values (intr_token_set_value, intr_ctx_value).
 *
 * Elements are process-wide and cannot be removed, but Check forks every
 * test, so each test adds the elements it needs in its own process.  No
 * Check macro runs on a worker or a helper thread: bodies and hooks record
 * what they saw (in atomics where threads meet) and the test thread
 * asserts.  Every wait is bounded.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 5000
#define TEST_TIMEOUT 30

/* ------------------------------------------------------------ sequence */

/* A global event clock: every hook or body that wants to say "when" takes
 * the next number. */
static atomic_int seq_clock;

static int next_seq(void)
{
	return atomic_fetch_add(&seq_clock, 1) + 1;
}

/* Shorter, and reads better in a failed assertion's message. */
static int ld(atomic_int *v)
{
	return atomic_load(v);
}

/* ------------------------------------------------------------ order log */

/* Two characters per event: what ('c'apture, 'i'nstall, 'r'estore,
 * re'l'ease, 'b'ody, 'f'inalizer) and who (element name, or '-'). */
static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
static char order_log[256];
static size_t order_len;

static void order_event(char what, char who)
{
	pthread_mutex_lock(&order_mu);
	if (order_len + 2 < sizeof(order_log)) {
		order_log[order_len++] = what;
		order_log[order_len++] = who;
		order_log[order_len] = '\0';
	}
	pthread_mutex_unlock(&order_mu);
}

static void order_reset(void)
{
	pthread_mutex_lock(&order_mu);
	order_len = 0;
	order_log[0] = '\0';
	pthread_mutex_unlock(&order_mu);
}

/* A copy of the log, taken under the lock. */
static void order_get(char *buf, size_t n)
{
	pthread_mutex_lock(&order_mu);
	snprintf(buf, n, "%s", order_log);
	pthread_mutex_unlock(&order_mu);
}

/* The log with the release events taken out. */
static void order_strip_releases(const char *in, char *out)
{
	for (; in[0] && in[1]; in += 2)
		if (in[0] != 'l') {
			*out++ = in[0];
			*out++ = in[1];
		}
	*out = '\0';
}

/* Position (in events) of the event what/who, or -1; counts how many. */
static int order_find(const char *log, char what, char who, int *count)
{
	int pos = -1, i;

	*count = 0;
	for (i = 0; log[2 * i] && log[2 * i + 1]; i++)
		if (log[2 * i] == what && log[2 * i + 1] == who) {
			if (pos < 0)
				pos = i;
			(*count)++;
		}
	return pos;
}

/* ------------------------------------------------------------ counting
 * elements */

struct counter {
	char name;
	atomic_int cap, ins, res, rel;
	atomic_int bad;			/* a hook got a pointer it did not expect */
	atomic_int last_res, last_rel;	/* seq of the latest restore, release */
	atomic_int last_ins;		/* seq of the latest install */
};

#define SNAP_MAGIC 0x5a175a17u
#define SNAP_DEAD 0xdeadbeefu

struct snap {
	unsigned magic;
	struct counter *owner;
};

static struct counter cnt_a = { .name = 'A' };
static struct counter cnt_b = { .name = 'B' };
static struct counter cnt_c = { .name = 'C' };

static void *cnt_capture(void *data)
{
	struct counter *c = data;
	struct snap *s = malloc(sizeof(*s));

	order_event('c', c->name);
	atomic_fetch_add(&c->cap, 1);
	if (!s) {
		atomic_fetch_add(&c->bad, 1);
		return NULL;
	}
	s->magic = SNAP_MAGIC;
	s->owner = c;
	return s;
}

/* For an element without a release: a snapshot that needs no freeing. */
static struct snap static_snap_b = { .magic = SNAP_MAGIC, .owner = &cnt_b };

static void *cnt_capture_static(void *data)
{
	struct counter *c = data;

	order_event('c', c->name);
	atomic_fetch_add(&c->cap, 1);
	return c == &cnt_b ? &static_snap_b : NULL;
}

static void *cnt_install(void *captured, void *data)
{
	struct counter *c = data;
	struct snap *s = captured;

	order_event('i', c->name);
	if (!s || s->magic != SNAP_MAGIC || s->owner != c)
		atomic_fetch_add(&c->bad, 1);
	atomic_fetch_add(&c->ins, 1);
	atomic_store(&c->last_ins, next_seq());
	return &c->ins;		/* what restore must get back */
}

static void cnt_restore(void *saved, void *data)
{
	struct counter *c = data;

	order_event('r', c->name);
	if (saved != &c->ins)
		atomic_fetch_add(&c->bad, 1);
	atomic_fetch_add(&c->res, 1);
	atomic_store(&c->last_res, next_seq());
}

static void cnt_release(void *captured, void *data)
{
	struct counter *c = data;
	struct snap *s = captured;

	order_event('l', c->name);
	if (!s || s->magic != SNAP_MAGIC || s->owner != c)
		atomic_fetch_add(&c->bad, 1);
	if (s)
		s->magic = SNAP_DEAD;
	free(s);
	atomic_fetch_add(&c->rel, 1);
	atomic_store(&c->last_rel, next_seq());
}

static void add_counter(struct counter *c)
{
	struct intr_context_element el = {
		.capture = cnt_capture,
		.install = cnt_install,
		.restore = cnt_restore,
		.release = cnt_release,
		.data = c,
	};

	ck_assert_int_eq(intr_context_add(&el), 0);
}

/* cap, ins, res, rel */
struct counts {
	int v[4];
};

static struct counts counts_of(struct counter *c)
{
	struct counts k = { { ld(&c->cap), ld(&c->ins),
			      ld(&c->res), ld(&c->rel) } };

	return k;
}

/* The counts of c moved by exactly (cap, ins, res, rel) since before. */
static void check_delta(const char *what, struct counter *c,
			struct counts before, int cap, int ins, int res,
			int rel)
{
	struct counts now = counts_of(c);

	ck_assert_msg(now.v[0] - before.v[0] == cap &&
		      now.v[1] - before.v[1] == ins &&
		      now.v[2] - before.v[2] == res &&
		      now.v[3] - before.v[3] == rel,
		      "%s: element %c: capture/install/restore/release "
		      "%d/%d/%d/%d, want %d/%d/%d/%d", what, c->name,
		      now.v[0] - before.v[0], now.v[1] - before.v[1],
		      now.v[2] - before.v[2], now.v[3] - before.v[3],
		      cap, ins, res, rel);
	ck_assert_int_eq(ld(&c->bad), 0);
}

/* ------------------------------------------------------------ trace id */

/* The caller's thread-local state that an element carries across. */
static __thread long trace_id;

#define TSNAP_MAGIC 0x7ace5a5au
#define TSAVE_MAGIC 0x7ace5a7eu

struct trace_snap {
	unsigned magic;
	long id;
	pid_t tid;		/* the capturing thread */
};

struct trace_save {
	unsigned magic;
	long prev;		/* the worker's own id, put back by restore */
	long set;		/* what install made current */
};

struct trace_stats {
	atomic_int cap, ins, res, rel;
	atomic_int bad;		/* wrong pointer handed to a hook */
	atomic_int same_thread;	/* install on the capturing thread */
	atomic_int prev_nonzero;	/* a worker's own id was not 0 */
	atomic_long last_prev;
	atomic_int restore_mismatch;	/* restore found another id */
	atomic_int live;	/* captured copies not released yet */
};

static struct trace_stats trs;

static void *trace_capture(void *data)
{
	struct trace_snap *s = malloc(sizeof(*s));

	(void)data;
	atomic_fetch_add(&trs.cap, 1);
	if (!s) {
		atomic_fetch_add(&trs.bad, 1);
		return NULL;
	}
	atomic_fetch_add(&trs.live, 1);
	s->magic = TSNAP_MAGIC;
	s->id = trace_id;
	s->tid = h_gettid();
	return s;
}

static void *trace_install(void *captured, void *data)
{
	struct trace_snap *s = captured;
	struct trace_save *sv = malloc(sizeof(*sv));

	(void)data;
	atomic_fetch_add(&trs.ins, 1);
	if (!s || s->magic != TSNAP_MAGIC || !sv) {
		atomic_fetch_add(&trs.bad, 1);
		free(sv);
		return NULL;
	}
	if (s->tid == h_gettid())
		atomic_fetch_add(&trs.same_thread, 1);
	sv->magic = TSAVE_MAGIC;
	sv->prev = trace_id;
	sv->set = s->id;
	/* Workers never get an id of their own: anything but 0 here is a
	 * previous call's id that restore did not take back. */
	if (sv->prev != 0) {
		atomic_fetch_add(&trs.prev_nonzero, 1);
		atomic_store(&trs.last_prev, sv->prev);
	}
	trace_id = s->id;
	return sv;
}

static void trace_restore(void *saved, void *data)
{
	struct trace_save *sv = saved;

	(void)data;
	atomic_fetch_add(&trs.res, 1);
	if (!sv || sv->magic != TSAVE_MAGIC) {
		atomic_fetch_add(&trs.bad, 1);
		return;
	}
	if (trace_id != sv->set)
		atomic_fetch_add(&trs.restore_mismatch, 1);
	trace_id = sv->prev;
	sv->magic = 0;
	free(sv);
}

static void trace_release(void *captured, void *data)
{
	struct trace_snap *s = captured;

	(void)data;
	atomic_fetch_add(&trs.rel, 1);
	if (!s || s->magic != TSNAP_MAGIC) {
		atomic_fetch_add(&trs.bad, 1);
		return;
	}
	s->magic = 0;
	free(s);
	atomic_fetch_sub(&trs.live, 1);
}

static void add_trace_element(void)
{
	struct intr_context_element el = {
		.capture = trace_capture,
		.install = trace_install,
		.restore = trace_restore,
		.release = trace_release,
	};

	ck_assert_int_eq(intr_context_add(&el), 0);
}

static void check_trace_stats(void)
{
	ck_assert_int_eq(ld(&trs.bad), 0);
	ck_assert_int_eq(ld(&trs.same_thread), 0);
	ck_assert_msg(ld(&trs.prev_nonzero) == 0,
		      "%d installs found a leftover worker id (last %ld)",
		      ld(&trs.prev_nonzero),
		      atomic_load(&trs.last_prev));
	ck_assert_int_eq(ld(&trs.restore_mismatch), 0);
	ck_assert_int_eq(ld(&trs.live), 0);
	ck_assert_int_eq(ld(&trs.cap), ld(&trs.rel));
	ck_assert_int_eq(ld(&trs.ins), ld(&trs.res));
}

static void configure_workers(unsigned max)
{
	struct intr_config cfg;

	intr_config_default(&cfg);
	cfg.max_workers = max;
	ck_assert_int_eq(intr_configure(&cfg), 0);
}

/* ------------------------------------------------------------ 1. trace id */

#define DEPTH 3

struct trace_probe {
	long seen[DEPTH];	/* trace_id in the body at each level */
	pid_t tid[DEPTH];
	int nested_ret[DEPTH];
	long fin_seen;		/* trace_id in the outer body's finalizer */
};

struct trace_arg {
	struct trace_probe *p;
	int level;
};

static void trace_fin(void *arg)
{
	struct trace_probe *p = arg;

	p->fin_seen = trace_id;
}

static void *trace_body(intr_ctx *ctx, void *arg)
{
	struct trace_arg *a = arg;
	struct trace_arg next = { a->p, a->level + 1 };

	a->p->seen[a->level] = trace_id;
	a->p->tid[a->level] = h_gettid();
	if (a->level == 0)
		intr_defer(ctx, trace_fin, a->p);
	if (next.level < DEPTH)
		a->p->nested_ret[a->level] =
			run_interruptible(intr_ctx_token(ctx), trace_body,
					  &next, NULL);
	return BODY_MARK(a->level + 1);
}

START_TEST(trace_id_propagates)
{
	struct trace_probe p;
	struct trace_arg a = { &p, 0 };
	pid_t me = h_gettid();
	void *res = NULL;
	long id;
	int i;

	add_trace_element();
	for (i = 0; i < 20; i++) {
		id = 0x7ace0000L + i;
		trace_id = id;
		memset(&p, 0, sizeof(p));
		ck_assert_int_eq(run_interruptible(NULL, trace_body, &a, &res),
				 0);
		ck_assert_ptr_eq(res, BODY_MARK(1));
		/* The caller's own id was never touched. */
		ck_assert_int_eq(trace_id, id);
		ck_assert_int_eq(h_gettid(), me);
		ck_assert_int_eq(p.fin_seen, id);
		for (int l = 0; l < DEPTH; l++) {
			ck_assert_msg(p.seen[l] == id,
				      "call %d level %d saw id %lx, want %lx",
				      i, l, p.seen[l], id);
			ck_assert_int_ne(p.tid[l], me);
			ck_assert_int_ne(p.tid[l], 0);
			if (l + 1 < DEPTH)
				ck_assert_int_eq(p.nested_ret[l], 0);
		}
		/* Each nesting level on its own worker. */
		ck_assert_int_ne(p.tid[0], p.tid[1]);
		ck_assert_int_ne(p.tid[1], p.tid[2]);
		ck_assert_int_ne(p.tid[0], p.tid[2]);
		/* Everything captured was released before the return. */
		ck_assert_int_eq(ld(&trs.live), 0);
		ck_assert_int_eq(ld(&trs.cap), (i + 1) * DEPTH);
		check_trace_stats();
	}
	ck_assert_int_eq(ld(&trs.ins), 20 * DEPTH);
}
END_TEST

/* One worker: the second call runs on the thread the first one used, and
 * finds that thread's own id (0) back in place. */
struct one_probe {
	long seen;
	pid_t tid;
};

static void *one_body(intr_ctx *ctx, void *arg)
{
	struct one_probe *p = arg;

	(void)ctx;
	p->seen = trace_id;
	p->tid = h_gettid();
	return NULL;
}

START_TEST(trace_id_worker_restored)
{
	struct one_probe p1 = { 0, 0 }, p2 = { 0, 0 }, p3 = { 1, 0 };

	configure_workers(1);
	add_trace_element();
	trace_id = 111;
	ck_assert_int_eq(run_interruptible(NULL, one_body, &p1, NULL), 0);
	trace_id = 222;
	ck_assert_int_eq(run_interruptible(NULL, one_body, &p2, NULL), 0);
	ck_assert_int_eq(p1.seen, 111);
	ck_assert_int_eq(p2.seen, 222);
	ck_assert_int_eq(p1.tid, p2.tid);
	/* A caller without an id gives the body none. */
	trace_id = 0;
	ck_assert_int_eq(run_interruptible(NULL, one_body, &p3, NULL), 0);
	ck_assert_int_eq(p3.seen, 0);
	ck_assert_int_eq(p3.tid, p1.tid);
	ck_assert_int_eq(trace_id, 0);
	ck_assert_int_eq(ld(&trs.ins), 3);
	check_trace_stats();
}
END_TEST

/* intr_context_add: argument checks, errno, and it copies *el. */
static void *plain_body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

START_TEST(context_add_args)
{
	struct intr_context_element el = {
		.capture = cnt_capture,
		.install = cnt_install,
		.restore = cnt_restore,
		.release = cnt_release,
		.data = &cnt_a,
	};
	struct intr_context_element bad;
	struct counts a0, b0;

	CHECK_KEEPS_ERRNO(-EINVAL, intr_context_add(NULL));
	bad = el;
	bad.capture = NULL;
	CHECK_KEEPS_ERRNO(-EINVAL, intr_context_add(&bad));
	bad = el;
	bad.install = NULL;
	CHECK_KEEPS_ERRNO(-EINVAL, intr_context_add(&bad));
	bad = el;
	bad.restore = NULL;
	CHECK_KEEPS_ERRNO(-EINVAL, intr_context_add(&bad));
	/* release may be NULL (then the snapshot must need no freeing). */
	bad = el;
	bad.capture = cnt_capture_static;
	bad.release = NULL;
	bad.data = &cnt_b;
	CHECK_KEEPS_ERRNO(0, intr_context_add(&bad));
	CHECK_KEEPS_ERRNO(0, intr_context_add(&el));
	/* The library keeps its own copies. */
	memset(&el, 0, sizeof(el));
	memset(&bad, 0, sizeof(bad));
	a0 = counts_of(&cnt_a);
	b0 = counts_of(&cnt_b);
	CHECK_KEEPS_ERRNO(0, run_interruptible(NULL, plain_body, NULL, NULL));
	check_delta("copied element", &cnt_a, a0, 1, 1, 1, 1);
	/* B has no release: captured, installed, restored, never released. */
	check_delta("no release", &cnt_b, b0, 1, 1, 1, 0);
}
END_TEST

/* ------------------------------------------------------------ 2. order */

struct seqprobe {
	atomic_int body, fin;
};

static void fin_mark(void *arg)
{
	struct seqprobe *p = arg;

	order_event('f', '-');
	atomic_store(&p->fin, next_seq());
}

static void *mark_body(intr_ctx *ctx, void *arg)
{
	struct seqprobe *p = arg;

	order_event('b', '-');
	atomic_store(&p->body, next_seq());
	if (intr_defer(ctx, fin_mark, p) != 0)
		return BODY_ERROR;
	return BODY_MARK(1);
}

static void check_order_ran(const char *what)
{
	char log[sizeof(order_log)], core[sizeof(order_log)];
	int ia, ib, la, lb, n;

	order_get(log, sizeof(log));
	order_strip_releases(log, core);
	ck_assert_msg(strcmp(core, "cAcBiAiBb-f-rBrA") == 0,
		      "%s: order %s (releases removed from %s)", what, core,
		      log);
	ia = order_find(log, 'i', 'A', &n);
	la = order_find(log, 'l', 'A', &n);
	ck_assert_msg(n == 1, "%s: %d releases of A in %s", what, n, log);
	ib = order_find(log, 'i', 'B', &n);
	lb = order_find(log, 'l', 'B', &n);
	ck_assert_msg(n == 1, "%s: %d releases of B in %s", what, n, log);
	/* A snapshot is freed only after it was installed. */
	ck_assert_int_gt(la, ia);
	ck_assert_int_gt(lb, ib);
}

START_TEST(order_of_hooks)
{
	struct seqprobe p;
	char log[sizeof(order_log)];
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	void *res = NULL;
	int n;

	add_counter(&cnt_a);
	add_counter(&cnt_b);

	order_reset();
	ck_assert_int_eq(run_interruptible(tok, mark_body, &p, &res), 0);
	ck_assert_ptr_eq(res, BODY_MARK(1));
	check_order_ran("run_interruptible");

	order_reset();
	ck_assert_int_eq(intr_spawn(&t, NULL, mark_body, &p), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_MARK(1));
	check_order_ran("intr_spawn");

	/* A call that never runs: captures in order, then both released. */
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	order_reset();
	ck_assert_int_eq(run_interruptible(tok, mark_body, &p, &res),
			 -ECANCELED);
	order_get(log, sizeof(log));
	ck_assert_msg(strncmp(log, "cAcB", 4) == 0 && strlen(log) == 8,
		      "cancelled call: order %s", log);
	order_find(log, 'l', 'A', &n);
	ck_assert_int_eq(n, 1);
	order_find(log, 'l', 'B', &n);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* ------------------------------------------------------------ 3. counts */

/* Restore after the finalizers; release before the call returned. */
static void check_seq(const char *what, struct seqprobe *p, int before)
{
	int after = next_seq();
	struct counter *cs[2] = { &cnt_a, &cnt_b };

	for (int k = 0; k < 2; k++) {
		struct counter *c = cs[k];

		ck_assert_msg(ld(&c->last_ins) > before &&
			      ld(&c->last_ins) < ld(&p->body),
			      "%s: %c installed at %d, body at %d", what,
			      c->name, ld(&c->last_ins),
			      ld(&p->body));
		ck_assert_msg(ld(&c->last_res) > ld(&p->fin),
			      "%s: %c restored at %d, finalizer at %d", what,
			      c->name, ld(&c->last_res),
			      ld(&p->fin));
		ck_assert_msg(ld(&c->last_rel) > before &&
			      ld(&c->last_rel) < after,
			      "%s: %c released at %d, call %d..%d", what,
			      c->name, ld(&c->last_rel), before,
			      after);
	}
	ck_assert_int_gt(ld(&p->fin), ld(&p->body));
}

START_TEST(counts_normal)
{
	struct seqprobe p;
	struct counts a0, b0;
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	void *res = NULL;
	int before;

	add_counter(&cnt_a);
	add_counter(&cnt_b);

	a0 = counts_of(&cnt_a);
	b0 = counts_of(&cnt_b);
	before = next_seq();
	ck_assert_int_eq(run_interruptible(NULL, mark_body, &p, &res), 0);
	ck_assert_ptr_eq(res, BODY_MARK(1));
	check_delta("run_interruptible", &cnt_a, a0, 1, 1, 1, 1);
	check_delta("run_interruptible", &cnt_b, b0, 1, 1, 1, 1);
	check_seq("run_interruptible", &p, before);

	a0 = counts_of(&cnt_a);
	b0 = counts_of(&cnt_b);
	before = next_seq();
	ck_assert_int_eq(intr_spawn(&t, tok, mark_body, &p), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_MARK(1));
	check_delta("intr_spawn", &cnt_a, a0, 1, 1, 1, 1);
	check_delta("intr_spawn", &cnt_b, b0, 1, 1, 1, 1);
	check_seq("intr_spawn", &p, before);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* A body held at a gate until cancelled; it defers fin_mark. */
struct held {
	struct h_gate g;
	struct seqprobe p;
};

static void *held_body(intr_ctx *ctx, void *arg)
{
	struct held *h = arg;

	atomic_store(&h->p.body, next_seq());
	if (intr_defer(ctx, fin_mark, &h->p) != 0)
		return BODY_ERROR;
	if (!h_gate_announce(&h->g))
		return BODY_ERROR;
	return h_gate_wait(ctx, &h->g, WAIT_MS, true);
}

START_TEST(counts_cancelled_running)
{
	struct held h;
	struct counts a0, b0;
	intr_token *tok = h_new_token(NULL);
	intr_task *t;
	void *res = NULL;
	int before;

	add_counter(&cnt_a);
	add_counter(&cnt_b);
	h_gate_init(&h.g);
	a0 = counts_of(&cnt_a);
	b0 = counts_of(&cnt_b);
	before = next_seq();
	ck_assert_int_eq(intr_spawn(&t, tok, held_body, &h), 0);
	h_gate_wait_up(&h.g, WAIT_MS);
	/* Running: installed, not restored. */
	check_delta("running", &cnt_a, a0, 1, 1, 0, 0);
	check_delta("running", &cnt_b, b0, 1, 1, 0, 0);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	check_delta("cancelled", &cnt_a, a0, 1, 1, 1, 1);
	check_delta("cancelled", &cnt_b, b0, 1, 1, 1, 1);
	check_seq("cancelled", &h.p, before);
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_gate_fini(&h.g);
}
END_TEST

START_TEST(counts_cancelled_before)
{
	struct seqprobe p;
	struct counts a0, b0;
	intr_token *tok = h_new_token(NULL);
	intr_token *kid = h_new_token(tok);
	intr_token *late = h_new_token(NULL);
	intr_task *t;
	void *res = BODY_MARK(9);
	int before;

	add_counter(&cnt_a);
	add_counter(&cnt_b);
	atomic_init(&p.body, 0);
	atomic_init(&p.fin, 0);
	ck_assert_int_eq(intr_token_cancel(tok), 0);

	a0 = counts_of(&cnt_a);
	b0 = counts_of(&cnt_b);
	before = next_seq();
	ck_assert_int_eq(run_interruptible(tok, mark_body, &p, &res),
			 -ECANCELED);
	ck_assert_ptr_null(res);
	check_delta("run, cancelled token", &cnt_a, a0, 1, 0, 0, 1);
	check_delta("run, cancelled token", &cnt_b, b0, 1, 0, 0, 1);
	ck_assert_int_gt(ld(&cnt_a.last_rel), before);
	ck_assert_int_gt(ld(&cnt_b.last_rel), before);

	/* Through an ancestor. */
	a0 = counts_of(&cnt_a);
	b0 = counts_of(&cnt_b);
	ck_assert_int_eq(run_interruptible(kid, mark_body, &p, NULL),
			 -ECANCELED);
	check_delta("run, cancelled parent", &cnt_a, a0, 1, 0, 0, 1);
	check_delta("run, cancelled parent", &cnt_b, b0, 1, 0, 0, 1);

	/* intr_spawn: released by the time intr_join returns. */
	a0 = counts_of(&cnt_a);
	b0 = counts_of(&cnt_b);
	before = next_seq();
	res = BODY_MARK(9);
	ck_assert_int_eq(intr_spawn(&t, tok, mark_body, &p), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_null(res);
	check_delta("spawn, cancelled token", &cnt_a, a0, 1, 0, 0, 1);
	check_delta("spawn, cancelled token", &cnt_b, b0, 1, 0, 0, 1);
	ck_assert_int_gt(ld(&cnt_a.last_rel), before);

	/* A deadline that already passed. */
	ck_assert_int_eq(intr_token_cancel_after(late, 0), 0);
	a0 = counts_of(&cnt_a);
	ck_assert_int_eq(run_interruptible(late, mark_body, &p, NULL),
			 -ETIMEDOUT);
	check_delta("run, deadline passed", &cnt_a, a0, 1, 0, 0, 1);

	ck_assert_int_eq(ld(&p.body), 0);
	ck_assert_int_eq(intr_token_free(late), 0);
	ck_assert_int_eq(intr_token_free(kid), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* A refused call captures and releases in pairs (or not at all) and never
 * installs. */
static void check_refused(const char *what, struct counter *c,
			  struct counts before)
{
	struct counts now = counts_of(c);
	int cap = now.v[0] - before.v[0], rel = now.v[3] - before.v[3];

	ck_assert_msg(cap == rel && (cap == 0 || cap == 1),
		      "%s: %c captured %d, released %d", what, c->name, cap,
		      rel);
	ck_assert_int_eq(now.v[1] - before.v[1], 0);
	ck_assert_int_eq(now.v[2] - before.v[2], 0);
	ck_assert_int_eq(ld(&c->bad), 0);
}

START_TEST(counts_refused)
{
	struct held h;
	struct seqprobe p;
	struct counts a0, b0;
	intr_token *tok;
	intr_task *t, *u = NULL;
	void *res = NULL;

	configure_workers(1);	/* before anything starts the runtime */
	tok = h_new_token(NULL);
	add_counter(&cnt_a);
	add_counter(&cnt_b);
	h_gate_init(&h.g);
	ck_assert_int_eq(intr_spawn(&t, tok, held_body, &h), 0);
	h_gate_wait_up(&h.g, WAIT_MS);

	a0 = counts_of(&cnt_a);
	b0 = counts_of(&cnt_b);
	ck_assert_int_eq(run_interruptible(NULL, mark_body, &p, NULL),
			 -EAGAIN);
	check_refused("run_interruptible", &cnt_a, a0);
	check_refused("run_interruptible", &cnt_b, b0);

	a0 = counts_of(&cnt_a);
	b0 = counts_of(&cnt_b);
	ck_assert_int_eq(intr_spawn(&u, NULL, mark_body, &p), -EAGAIN);
	check_refused("intr_spawn", &cnt_a, a0);
	check_refused("intr_spawn", &cnt_b, b0);

	h_gate_open(&h.g);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	/* Over all: every capture released, every install restored. */
	ck_assert_int_eq(ld(&cnt_a.cap), ld(&cnt_a.rel));
	ck_assert_int_eq(ld(&cnt_a.ins), 1);
	ck_assert_int_eq(ld(&cnt_a.res), 1);
	ck_assert_int_eq(ld(&cnt_b.cap), ld(&cnt_b.rel));
	ck_assert_int_eq(ld(&cnt_b.ins), 1);
	ck_assert_int_eq(ld(&cnt_b.res), 1);
	ck_assert_int_eq(intr_token_free(tok), 0);

	/* A dead token: refused as well, still in balance. */
	a0 = counts_of(&cnt_a);
	ck_assert_int_eq(run_interruptible(tok, mark_body, &p, NULL), -EINVAL);
	check_refused("dead token", &cnt_a, a0);
	a0 = counts_of(&cnt_a);
	ck_assert_int_eq(intr_spawn(&u, tok, mark_body, &p), -EINVAL);
	check_refused("dead token, spawn", &cnt_a, a0);
	h_gate_fini(&h.g);
}
END_TEST

/* 1000 random calls of every kind. */
static atomic_int rnd_bodies, rnd_nested;

struct rnd_call {
	uint64_t sleep_ns;
	bool nest;
};

static void rnd_fin(void *arg)
{
	(void)arg;
}

static void *rnd_body(intr_ctx *ctx, void *arg)
{
	struct rnd_call *rc = arg;
	struct rnd_call leaf = { 0, false };

	atomic_fetch_add(&rnd_bodies, 1);
	intr_defer(ctx, rnd_fin, NULL);
	if (rc->sleep_ns)
		intr_sleep(ctx, rc->sleep_ns);
	if (rc->nest) {
		atomic_fetch_add(&rnd_nested, 1);
		run_interruptible(intr_ctx_token(ctx), rnd_body, &leaf, NULL);
	}
	return NULL;
}

START_TEST(counts_random)
{
	struct h_rng rng;
	int submitted = 0, i;

	h_rng_seed(&rng, "counts_random");
	add_counter(&cnt_a);
	add_counter(&cnt_b);
	for (i = 0; i < 1000; i++) {
		struct rnd_call rc = { 0, false };
		intr_token *tok = h_new_token(NULL);
		int kind = (int)h_rng_below(&rng, 6), ret;
		intr_task *t;

		switch (kind) {
		case 0:		/* plain */
			ret = run_interruptible(NULL, rnd_body, &rc, NULL);
			ck_assert_int_eq(ret, 0);
			break;
		case 1:		/* token cancelled before */
			ck_assert_int_eq(intr_token_cancel(tok), 0);
			ret = run_interruptible(tok, rnd_body, &rc, NULL);
			ck_assert_int_eq(ret, -ECANCELED);
			break;
		case 2:		/* cancelled at a random moment */
			rc.sleep_ns = 200000;
			ck_assert_int_eq(intr_spawn(&t, tok, rnd_body, &rc), 0);
			h_spin_ns(h_pick_gap(&rng, 50000));
			ck_assert_int_eq(intr_token_cancel(tok), 0);
			ret = h_join_within(t, NULL, WAIT_MS);
			ck_assert(ret == 0 || ret == -ECANCELED);
			break;
		case 3:		/* a deadline */
			rc.sleep_ns = 200000;
			ck_assert_int_eq(intr_token_cancel_after(tok,
				h_rng_below(&rng, 100000)), 0);
			ret = run_interruptible(tok, rnd_body, &rc, NULL);
			ck_assert(ret == 0 || ret == -ETIMEDOUT);
			break;
		case 4:		/* nested */
			rc.nest = true;
			ret = run_interruptible(tok, rnd_body, &rc, NULL);
			ck_assert_int_eq(ret, 0);
			break;
		default:	/* spawned on a cancelled token */
			ck_assert_int_eq(intr_token_cancel(tok), 0);
			ck_assert_int_eq(intr_spawn(&t, tok, rnd_body, &rc), 0);
			ck_assert_int_eq(h_join_within(t, NULL, WAIT_MS),
					 -ECANCELED);
			break;
		}
		submitted++;
		ck_assert_int_eq(intr_token_free(tok), 0);
		/* Everything of this call (and its nested one) is released
		 * and restored by now. */
		ck_assert_int_eq(ld(&cnt_a.cap),
				 ld(&cnt_a.rel));
		ck_assert_int_eq(ld(&cnt_a.ins),
				 ld(&cnt_a.res));
		ck_assert_int_eq(ld(&cnt_b.cap),
				 ld(&cnt_b.rel));
		ck_assert_int_eq(ld(&cnt_b.ins),
				 ld(&cnt_b.res));
	}
	submitted += ld(&rnd_nested);
	ck_assert_int_eq(ld(&cnt_a.cap), submitted);
	ck_assert_int_eq(ld(&cnt_b.cap), submitted);
	/* Installed exactly for the bodies that ran. */
	ck_assert_int_eq(ld(&cnt_a.ins), ld(&rnd_bodies));
	ck_assert_int_eq(ld(&cnt_b.ins), ld(&rnd_bodies));
	ck_assert_int_eq(ld(&cnt_a.bad), 0);
	ck_assert_int_eq(ld(&cnt_b.bad), 0);
	printf("counts_random: %d calls (%d nested), %d bodies ran\n",
	       submitted, ld(&rnd_nested),
	       ld(&rnd_bodies));
}
END_TEST

/* ------------------------------------------------------------ 4. adding
 * while calls run */

/* Set by C's install on the worker, cleared by its restore. */
static __thread int c_installed;

static void *c_install(void *captured, void *data)
{
	c_installed = 1;
	return cnt_install(captured, data);
}

static void c_restore(void *saved, void *data)
{
	c_installed = 0;
	cnt_restore(saved, data);
}

struct c_probe {
	struct h_gate g;
	atomic_int saw_c;
};

static void *c_body(intr_ctx *ctx, void *arg)
{
	struct c_probe *p = arg;
	void *ret = BODY_RELEASED;

	if (p->g.go[0] >= 0) {
		if (!h_gate_announce(&p->g))
			return BODY_ERROR;
		ret = h_gate_wait(ctx, &p->g, WAIT_MS, false);
	}
	atomic_store(&p->saw_c, c_installed);
	return ret;
}

START_TEST(add_while_running)
{
	struct intr_context_element el = {
		.capture = cnt_capture,
		.install = c_install,
		.restore = c_restore,
		.release = cnt_release,
		.data = &cnt_c,
	};
	struct c_probe held, later;
	struct counts a0, c0;
	intr_task *t;
	void *res = NULL;

	add_counter(&cnt_a);
	h_gate_init(&held.g);
	atomic_init(&held.saw_c, -1);
	atomic_init(&later.saw_c, -1);
	later.g.go[0] = -1;

	a0 = counts_of(&cnt_a);
	ck_assert_int_eq(intr_spawn(&t, NULL, c_body, &held), 0);
	h_gate_wait_up(&held.g, WAIT_MS);
	/* The call blocks on its pipe; now C arrives. */
	ck_assert_int_eq(intr_context_add(&el), 0);
	c0 = counts_of(&cnt_c);
	h_gate_open(&held.g);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	ck_assert_int_eq(ld(&held.saw_c), 0);
	check_delta("running call", &cnt_c, c0, 0, 0, 0, 0);
	check_delta("running call", &cnt_a, a0, 1, 1, 1, 1);

	/* A call submitted afterwards sees C. */
	a0 = counts_of(&cnt_a);
	ck_assert_int_eq(run_interruptible(NULL, c_body, &later, &res), 0);
	ck_assert_int_eq(ld(&later.saw_c), 1);
	check_delta("later call", &cnt_c, c0, 1, 1, 1, 1);
	check_delta("later call", &cnt_a, a0, 1, 1, 1, 1);
	h_gate_fini(&held.g);
}
END_TEST

/* Elements added by one thread while others make calls: every call sees
 * a prefix of the elements, in order; every capture is released. */
#define NMASK 8

static __thread unsigned installed_mask;
static atomic_int mask_cap[NMASK], mask_ins[NMASK], mask_res[NMASK];
static atomic_int mask_rel[NMASK], mask_bad;
static int mask_idx[NMASK];

static void *mask_capture(void *data)
{
	int k = *(int *)data;

	atomic_fetch_add(&mask_cap[k], 1);
	return &mask_idx[k];
}

static void *mask_install(void *captured, void *data)
{
	int k = *(int *)data;
	unsigned bit = 1u << k;
	/* Bit k must be the next one: all earlier elements installed. */
	if (captured != &mask_idx[k] || installed_mask != bit - 1)
		atomic_fetch_add(&mask_bad, 1);
	atomic_fetch_add(&mask_ins[k], 1);
	installed_mask |= bit;
	return &mask_idx[k];
}

static void mask_restore(void *saved, void *data)
{
	int k = *(int *)data;
	unsigned bit = 1u << k;

	/* Restored in reverse: bit k is the highest still set. */
	if (saved != &mask_idx[k] || installed_mask != (bit << 1) - 1)
		atomic_fetch_add(&mask_bad, 1);
	atomic_fetch_add(&mask_res[k], 1);
	installed_mask &= ~bit;
}

static void mask_release(void *captured, void *data)
{
	int k = *(int *)data;

	if (captured != &mask_idx[k])
		atomic_fetch_add(&mask_bad, 1);
	atomic_fetch_add(&mask_rel[k], 1);
}

static atomic_int mask_adding, mask_calls, mask_not_prefix;

static void *mask_body(intr_ctx *ctx, void *arg)
{
	unsigned m = installed_mask;

	(void)ctx;
	(void)arg;
	if (m & (m + 1))
		atomic_fetch_add(&mask_not_prefix, 1);
	return BODY_MARK(m + 1);
}

static void *mask_caller(void *arg)
{
	long fails = 0;

	(void)arg;
	while (ld(&mask_adding)) {
		if (run_interruptible(NULL, mask_body, NULL, NULL) != 0)
			fails++;
		atomic_fetch_add(&mask_calls, 1);
	}
	return (void *)fails;
}

START_TEST(add_concurrently)
{
	pthread_t th[3];
	void *res;
	int k;

	atomic_store(&mask_adding, 1);
	for (k = 0; k < 3; k++)
		ck_assert_int_eq(pthread_create(&th[k], NULL, mask_caller,
						NULL), 0);
	for (k = 0; k < NMASK; k++) {
		struct intr_context_element el = {
			.capture = mask_capture,
			.install = mask_install,
			.restore = mask_restore,
			.release = mask_release,
			.data = &mask_idx[k],
		};

		mask_idx[k] = k;
		ck_assert(h_wait_atomic(&mask_calls, 20 * (k + 1), WAIT_MS));
		ck_assert_int_eq(intr_context_add(&el), 0);
	}
	ck_assert(h_wait_atomic(&mask_calls, 20 * (NMASK + 1), WAIT_MS));
	atomic_store(&mask_adding, 0);
	for (k = 0; k < 3; k++) {
		ck_assert_int_eq(pthread_join(th[k], &res), 0);
		ck_assert_ptr_null(res);
	}
	/* Now every call sees all of them. */
	ck_assert_int_eq(run_interruptible(NULL, mask_body, NULL, &res), 0);
	ck_assert_ptr_eq(res, BODY_MARK((1u << NMASK)));
	ck_assert_int_eq(ld(&mask_not_prefix), 0);
	ck_assert_int_eq(ld(&mask_bad), 0);
	for (k = 0; k < NMASK; k++) {
		ck_assert_int_eq(ld(&mask_cap[k]),
				 ld(&mask_rel[k]));
		ck_assert_int_eq(ld(&mask_ins[k]),
				 ld(&mask_res[k]));
		ck_assert_int_eq(ld(&mask_ins[k]),
				 ld(&mask_cap[k]));
		/* Later elements were seen by fewer calls. */
		if (k)
			ck_assert_int_le(ld(&mask_cap[k]),
					 ld(&mask_cap[k - 1]));
	}
	printf("add_concurrently: %d calls, element 0 seen by %d, "
	       "element %d by %d\n", ld(&mask_calls),
	       ld(&mask_cap[0]), NMASK - 1,
	       ld(&mask_cap[NMASK - 1]));
}
END_TEST

/* ------------------------------------------------------------ 5. token
 * values */

/* Keys are compared by address. */
static const char key_a = 'a', key_b = 'b', key_c = 'c';
static int v_root_a = 1, v_root_b = 2, v_child_a = 3, v_other = 4;
static int v_own = 5;

struct val_probe {
	void *a[DEPTH];		/* key_a at each level */
	void *b[DEPTH];		/* key_b at each level */
	void *c[DEPTH];		/* key_c (set nowhere) */
	void *null_key[DEPTH];
	bool errno_kept[DEPTH];
	int nested_ret[DEPTH];
	intr_ctx *ctx;		/* the outer body's, for its finalizer */
	void *fin_a, *fin_b;
	bool fin_errno_kept;
	int set_own;		/* intr_token_set_value on the call's token */
	int set_own_again;
};

struct val_arg {
	struct val_probe *p;
	int level;
	bool set_own;		/* set key_b on the call's own token */
};

static void val_fin(void *arg)
{
	struct val_probe *p = arg;

	errno = MAGIC_ERRNO;
	p->fin_a = intr_ctx_value(p->ctx, &key_a);
	p->fin_b = intr_ctx_value(p->ctx, &key_b);
	p->fin_errno_kept = errno == MAGIC_ERRNO;
}

static void *val_body(intr_ctx *ctx, void *arg)
{
	struct val_arg *va = arg;
	struct val_probe *p = va->p;
	struct val_arg next = { p, va->level + 1, false };
	int l = va->level;

	if (va->set_own) {
		p->set_own = intr_token_set_value(intr_ctx_token(ctx), &key_b,
						  &v_own);
		p->set_own_again = intr_token_set_value(intr_ctx_token(ctx),
							&key_b, &v_other);
	}
	errno = MAGIC_ERRNO;
	p->a[l] = intr_ctx_value(ctx, &key_a);
	p->b[l] = intr_ctx_value(ctx, &key_b);
	p->c[l] = intr_ctx_value(ctx, &key_c);
	p->null_key[l] = intr_ctx_value(ctx, NULL);
	p->errno_kept[l] = errno == MAGIC_ERRNO;
	if (l == 0) {
		p->ctx = ctx;
		intr_defer(ctx, val_fin, p);
	}
	if (next.level < DEPTH)
		p->nested_ret[l] = run_interruptible(intr_ctx_token(ctx),
						     val_body, &next, NULL);
	return BODY_MARK(l + 1);
}

static void run_val(intr_token *tok, struct val_probe *p, bool set_own)
{
	struct val_arg a = { p, 0, set_own };
	void *res = NULL;

	memset(p, 0, sizeof(*p));
	ck_assert_int_eq(run_interruptible(tok, val_body, &a, &res), 0);
	ck_assert_ptr_eq(res, BODY_MARK(1));
	for (int l = 0; l < DEPTH; l++) {
		ck_assert_ptr_null(p->c[l]);
		ck_assert_ptr_null(p->null_key[l]);
		ck_assert(p->errno_kept[l]);
		if (l + 1 < DEPTH)
			ck_assert_int_eq(p->nested_ret[l], 0);
	}
	ck_assert(p->fin_errno_kept);
}

START_TEST(token_values)
{
	intr_token *root = h_new_token(NULL);
	intr_token *child = h_new_token(root);
	intr_token *bare = h_new_token(NULL);
	intr_token *dead = h_new_token(NULL);
	struct val_probe p;
	int l;

	CHECK_KEEPS_ERRNO(0, intr_token_set_value(root, &key_a, &v_root_a));
	CHECK_KEEPS_ERRNO(0, intr_token_set_value(root, &key_b, &v_root_b));
	/* Once per key: the old value stays. */
	CHECK_KEEPS_ERRNO(-EEXIST,
			  intr_token_set_value(root, &key_a, &v_other));
	CHECK_KEEPS_ERRNO(-EEXIST,
			  intr_token_set_value(root, &key_a, &v_root_a));
	/* The same key on another token is its own value. */
	CHECK_KEEPS_ERRNO(0, intr_token_set_value(child, &key_a, &v_child_a));
	CHECK_KEEPS_ERRNO(-EEXIST,
			  intr_token_set_value(child, &key_a, &v_other));
	/* Misuse. */
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_set_value(root, NULL, &v_other));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_set_value(NULL, &key_c,
							&v_other));
	CHECK_KEEPS_ERRNO(0, intr_token_free(dead));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_set_value(dead, &key_c,
							&v_other));
	/* A NULL value is a value. */
	CHECK_KEEPS_ERRNO(0, intr_token_set_value(bare, &key_c, NULL));
	CHECK_KEEPS_ERRNO(-EEXIST, intr_token_set_value(bare, &key_c,
							&v_other));

	/* Root: visible at three levels and in the finalizer. */
	run_val(root, &p, false);
	for (l = 0; l < DEPTH; l++) {
		ck_assert_ptr_eq(p.a[l], &v_root_a);
		ck_assert_ptr_eq(p.b[l], &v_root_b);
	}
	ck_assert_ptr_eq(p.fin_a, &v_root_a);
	ck_assert_ptr_eq(p.fin_b, &v_root_b);

	/* Child: its own key_a wins, key_b comes from the root. */
	run_val(child, &p, false);
	for (l = 0; l < DEPTH; l++) {
		ck_assert_ptr_eq(p.a[l], &v_child_a);
		ck_assert_ptr_eq(p.b[l], &v_root_b);
	}
	ck_assert_ptr_eq(p.fin_a, &v_child_a);
	ck_assert_ptr_eq(p.fin_b, &v_root_b);

	/* A value set on the call's own token is nearest of all, and the
	 * nested calls see it. */
	run_val(root, &p, true);
	ck_assert_int_eq(p.set_own, 0);
	ck_assert_int_eq(p.set_own_again, -EEXIST);
	for (l = 0; l < DEPTH; l++) {
		ck_assert_ptr_eq(p.a[l], &v_root_a);
		ck_assert_ptr_eq(p.b[l], &v_own);
	}
	ck_assert_ptr_eq(p.fin_b, &v_own);
	/* ... and it went with that call's token: the root is unchanged. */
	run_val(root, &p, false);
	ck_assert_ptr_eq(p.b[0], &v_root_b);

	/* No token, or one without values: nothing. */
	run_val(NULL, &p, false);
	for (l = 0; l < DEPTH; l++) {
		ck_assert_ptr_null(p.a[l]);
		ck_assert_ptr_null(p.b[l]);
	}
	ck_assert_ptr_null(p.fin_a);
	run_val(bare, &p, false);
	ck_assert_ptr_null(p.a[0]);

	/* Tokens with values free like any other. */
	ck_assert_int_eq(intr_token_free(child), 0);
	ck_assert_int_eq(intr_token_free(root), 0);
	ck_assert_int_eq(intr_token_free(bare), 0);
}
END_TEST

/* intr_ctx_value off the worker: from the test thread (a smuggled ctx),
 * from another worker (a foreign ctx), with NULL. */
struct smuggle {
	struct h_gate g;
	intr_ctx *_Atomic ctx;
	void *own;		/* the body's own look-up */
};

static void *smuggle_body(intr_ctx *ctx, void *arg)
{
	struct smuggle *s = arg;

	s->own = intr_ctx_value(ctx, &key_a);
	atomic_store(&s->ctx, ctx);
	if (!h_gate_announce(&s->g))
		return BODY_ERROR;
	return h_gate_wait(ctx, &s->g, WAIT_MS, false);
}

struct foreign {
	intr_ctx *victim;
	void *seen;
	void *own;
	bool errno_kept;
};

static void *foreign_body(intr_ctx *ctx, void *arg)
{
	struct foreign *f = arg;

	errno = MAGIC_ERRNO;
	f->seen = intr_ctx_value(f->victim, &key_a);
	f->errno_kept = errno == MAGIC_ERRNO;
	f->own = intr_ctx_value(ctx, &key_a);
	return NULL;
}

START_TEST(token_values_off_worker)
{
	intr_token *tok = h_new_token(NULL);
	struct smuggle s;
	struct foreign f = { NULL, BODY_MARK(1), BODY_MARK(1), false };
	intr_task *t;
	void *res = NULL;
	int err;

	ck_assert_int_eq(intr_token_set_value(tok, &key_a, &v_root_a), 0);
	h_gate_init(&s.g);
	atomic_init(&s.ctx, NULL);
	ck_assert_int_eq(intr_spawn(&t, tok, smuggle_body, &s), 0);
	h_gate_wait_up(&s.g, WAIT_MS);
	ck_assert_ptr_eq(s.own, &v_root_a);
	f.victim = atomic_load(&s.ctx);
	ck_assert_ptr_nonnull(f.victim);

	/* The call is live, but this is not its worker. */
	errno = MAGIC_ERRNO;
	res = intr_ctx_value(f.victim, &key_a);
	err = errno;
	ck_assert_ptr_null(res);
	ck_assert_int_eq(err, MAGIC_ERRNO);
	errno = MAGIC_ERRNO;
	res = intr_ctx_value(NULL, &key_a);
	err = errno;
	ck_assert_ptr_null(res);
	ck_assert_int_eq(err, MAGIC_ERRNO);

	/* Another worker, whose own call has no values. */
	ck_assert_int_eq(run_interruptible(NULL, foreign_body, &f, NULL), 0);
	ck_assert_ptr_null(f.seen);
	ck_assert_ptr_null(f.own);
	ck_assert(f.errno_kept);

	h_gate_open(&s.g);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_gate_fini(&s.g);
}
END_TEST

/* ------------------------------------------------------------ 6. many
 * threads */

#define NTHREADS 4
#define NCALLS 500

static const char key_thread = 't';

struct submitter {
	int idx;
	intr_token *tok;	/* carries key_thread = this struct */
	atomic_int calls, bodies;
	atomic_int wrong_id, wrong_value, errors;
	atomic_long last_wrong;
};

struct sub_call {
	struct submitter *s;
	long want;
	int nest;
};

static void *sub_body(intr_ctx *ctx, void *arg)
{
	struct sub_call *c = arg;
	struct submitter *s = c->s;

	atomic_fetch_add(&s->bodies, 1);
	if (trace_id != c->want) {
		atomic_fetch_add(&s->wrong_id, 1);
		atomic_store(&s->last_wrong, trace_id);
	}
	if (intr_ctx_value(ctx, &key_thread) != s)
		atomic_fetch_add(&s->wrong_value, 1);
	if (c->nest) {
		struct sub_call inner = { s, c->want, c->nest - 1 };

		atomic_fetch_add(&s->calls, 1);
		if (run_interruptible(intr_ctx_token(ctx), sub_body, &inner,
				      NULL) != 0)
			atomic_fetch_add(&s->errors, 1);
	}
	return BODY_MARK(c->want);
}

static void *submitter_thread(void *arg)
{
	struct submitter *s = arg;
	int j;

	for (j = 0; j < NCALLS; j++) {
		struct sub_call c = {
			.s = s,
			.want = (long)(s->idx + 1) * 1000000L + j,
			.nest = j % 10 == 0 ? 2 : 0,
		};
		void *res = NULL;
		intr_task *t;
		int ret;

		trace_id = c.want;
		atomic_fetch_add(&s->calls, 1);
		if (j % 7 == 3) {
			ret = intr_spawn(&t, s->tok, sub_body, &c);
			if (ret == 0)
				ret = intr_join(t, &res);
		} else {
			ret = run_interruptible(s->tok, sub_body, &c, &res);
		}
		if (ret != 0 || res != BODY_MARK(c.want) ||
		    trace_id != c.want)
			atomic_fetch_add(&s->errors, 1);
	}
	return NULL;
}

START_TEST(many_threads)
{
	static struct submitter subs[NTHREADS];
	pthread_t th[NTHREADS];
	uint64_t t0 = h_now_ns();
	int k, total = 0;

	add_trace_element();
	add_counter(&cnt_a);
	for (k = 0; k < NTHREADS; k++) {
		subs[k].idx = k;
		subs[k].tok = h_new_token(NULL);
		ck_assert_int_eq(intr_token_set_value(subs[k].tok, &key_thread,
						      &subs[k]), 0);
	}
	for (k = 0; k < NTHREADS; k++)
		ck_assert_int_eq(pthread_create(&th[k], NULL, submitter_thread,
						&subs[k]), 0);
	for (k = 0; k < NTHREADS; k++)
		ck_assert_int_eq(pthread_join(th[k], NULL), 0);
	for (k = 0; k < NTHREADS; k++) {
		struct submitter *s = &subs[k];

		ck_assert_msg(ld(&s->wrong_id) == 0,
			      "thread %d: %d bodies saw another id (last %ld)",
			      k, ld(&s->wrong_id),
			      atomic_load(&s->last_wrong));
		ck_assert_int_eq(ld(&s->wrong_value), 0);
		ck_assert_int_eq(ld(&s->errors), 0);
		ck_assert_int_eq(ld(&s->bodies),
				 ld(&s->calls));
		ck_assert_int_eq(ld(&s->calls),
				 NCALLS + NCALLS / 10 * 2);
		total += ld(&s->calls);
		ck_assert_int_eq(intr_token_free(s->tok), 0);
	}
	ck_assert_int_eq(ld(&trs.cap), total);
	ck_assert_int_eq(ld(&trs.ins), total);
	ck_assert_int_eq(ld(&cnt_a.cap), total);
	check_delta("many threads", &cnt_a, (struct counts){ { 0, 0, 0, 0 } },
		    total, total, total, total);
	check_trace_stats();
	printf("many_threads: %d calls in %" PRIu64 " ms\n", total,
	       (h_now_ns() - t0) / 1000000);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("context");
	TCase *tc;

	tc = h_tcase(s, "trace", TEST_TIMEOUT);
	tcase_add_test(tc, trace_id_propagates);
	tcase_add_test(tc, trace_id_worker_restored);
	tcase_add_test(tc, context_add_args);
	tc = h_tcase(s, "order", TEST_TIMEOUT);
	tcase_add_test(tc, order_of_hooks);
	tc = h_tcase(s, "counts", TEST_TIMEOUT);
	tcase_add_test(tc, counts_normal);
	tcase_add_test(tc, counts_cancelled_running);
	tcase_add_test(tc, counts_cancelled_before);
	tcase_add_test(tc, counts_refused);
	tcase_add_test(tc, counts_random);
	tc = h_tcase(s, "adding", TEST_TIMEOUT);
	tcase_add_test(tc, add_while_running);
	tcase_add_test(tc, add_concurrently);
	tc = h_tcase(s, "values", TEST_TIMEOUT);
	tcase_add_test(tc, token_values);
	tcase_add_test(tc, token_values_off_worker);
	tc = h_tcase(s, "threads", TEST_TIMEOUT);
	tcase_add_test(tc, many_threads);
	return s;
}

int main(void)
{
	return h_run_suite(make_suite());
}
