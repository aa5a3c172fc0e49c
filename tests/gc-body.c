/* SPDX-License-Identifier: MIT */
/*
 * Description: bodies registered with the Boehm garbage collector
 * (Debian's libgc) block and are cancelled while another thread collects
 * without pause: every collection must stop them (its signal reaches
 * their threads) and keep what their stacks point to.
 *
 * The collector stops the world by signalling every registered thread
 * (SIGPWR on Linux) and waiting for each to acknowledge from its handler;
 * a registered thread that blocks the signal makes it give up and abort
 * the process.  Each body builds a list in the collected heap, reachable
 * only from its own stack, and checks it after the cancel: a collection
 * that did not scan the body's stack would have freed it.  The work runs
 * in a child process, so that an abort is reported rather than suffered.
 */
#include "config.h"

#ifdef HAVE_BDWGC
#define GC_THREADS 1
#include <gc/gc.h>
#endif

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "bound.h"
#include "tap.h"

#ifdef HAVE_BDWGC

#define ROUNDS		6
#define BODIES		8
#define NODES		200
#define WAIT_MS		10000
#define CHILD_MS	120000
#define SLEEP_NS	60000000000ull

enum kind { K_INTR_READ, K_PLAIN_READ, K_SLEEP, K_COND, K_KINDS };

struct node {
	struct node *next;
	long v;
};

struct bctx {
	enum kind kind;
	int fds[2];
	pthread_mutex_t m;
	pthread_cond_t c;
	atomic_int tid;
	int registered;
	int list_ok;
	int ret;
};

static atomic_int collecting;
static atomic_long collections;

/* A list that only this stack frame's caller keeps alive. */
static struct node *build(long seed)
{
	struct node *head = NULL;
	long i;

	for (i = 0; i < NODES; i++) {
		struct node *n = GC_MALLOC(sizeof(*n));

		if (!n)
			return NULL;
		n->v = seed * 1000 + i;
		n->next = head;
		head = n;
	}
	return head;
}

static int check(const struct node *n, long seed)
{
	long i = NODES;

	for (; n; n = n->next)
		if (n->v != seed * 1000 + --i)
			return 0;
	return i == 0;
}

static void *body(intr_ctx *ctx, void *arg)
{
	struct bctx *b = arg;
	struct GC_stack_base sb;
	struct node *volatile list;
	long seed = b_gettid();
	char c;

	b->registered = GC_get_stack_base(&sb) == GC_SUCCESS &&
			GC_register_my_thread(&sb) == GC_SUCCESS;
	list = build(seed);
	atomic_store(&b->tid, b_gettid());
	switch (b->kind) {
	case K_INTR_READ:
		b->ret = (int)intr_read(ctx, b->fds[0], &c, 1);
		break;
	case K_PLAIN_READ:
		while (!intr_cancelled(ctx))
			if (read(b->fds[0], &c, 1) == 1)
				break;
		b->ret = intr_reason(ctx);
		break;
	case K_SLEEP:
		b->ret = intr_sleep(ctx, SLEEP_NS);
		break;
	case K_COND:
		pthread_mutex_lock(&b->m);
		while (!(b->ret = intr_cond_wait(ctx, &b->c, &b->m)))
			;
		pthread_mutex_unlock(&b->m);
		break;
	default:
		break;
	}
	/* A little more garbage, then the list must be intact. */
	build(seed + 1);
	b->list_ok = check(list, seed);
	if (b->registered)
		GC_unregister_my_thread();
	return NULL;
}

static void *collector(void *arg)
{
	(void)arg;
	while (atomic_load(&collecting)) {
		GC_gcollect();
		atomic_fetch_add(&collections, 1);
		build(7);
	}
	return NULL;
}

/* Wait until the collector has finished n more collections. */
static bool collections_pass(long n)
{
	long want = atomic_load(&collections) + n;
	uint64_t end = h_now_ns() + WAIT_MS * 1000000ull;

	while (atomic_load(&collections) < want) {
		if (h_now_ns() > end)
			return false;
		b_sleep_ms(1);
	}
	return true;
}

/* Exit status: 0, or which step failed. */
static int child(void)
{
	struct bctx b[BODIES];
	intr_token *tok[BODIES];
	intr_task *t[BODIES];
	int rounds = (int)b_scale(ROUNDS);
	pthread_t col;
	int r, i, bad = 0;

	GC_INIT();
	GC_allow_register_threads();
	atomic_store(&collecting, 1);
	if (pthread_create(&col, NULL, collector, NULL))
		return 2;
	for (r = 0; r < rounds; r++) {
		for (i = 0; i < BODIES; i++) {
			memset(&b[i], 0, sizeof(b[i]));
			b[i].kind = (enum kind)((r + i) % K_KINDS);
			atomic_init(&b[i].tid, 0);
			pthread_mutex_init(&b[i].m, NULL);
			pthread_cond_init(&b[i].c, NULL);
			if (pipe(b[i].fds) || intr_token_new(&tok[i], NULL) ||
			    intr_spawn(&t[i], tok[i], body, &b[i]))
				return 3;
		}
		/* Collections while every body blocks. */
		for (i = 0; i < BODIES; i++)
			if (!b_wait_atomic(&b[i].tid, 1, WAIT_MS) ||
			    !b_thread_sleeps(atomic_load(&b[i].tid), WAIT_MS))
				return 4;
		if (!collections_pass(3))
			return 5;
		/* Cancelled while the collector goes on. */
		for (i = 0; i < BODIES; i++)
			intr_token_cancel(tok[i]);
		for (i = 0; i < BODIES; i++) {
			int ret = b_join_within(t[i], NULL, WAIT_MS);

			if (ret != -ECANCELED)
				return 6;
			if (!b[i].registered || !b[i].list_ok ||
			    b[i].ret != -ECANCELED)
				bad++;
			intr_token_free(tok[i]);
			close(b[i].fds[0]);
			close(b[i].fds[1]);
		}
		if (bad)
			return 7;
	}
	if (!collections_pass(1))
		return 5;
	atomic_store(&collecting, 0);
	pthread_join(col, NULL);
	printf("# %d rounds of %d registered bodies, %ld collections, "
	       "collection %lu the last\n", rounds, BODIES,
	       atomic_load(&collections), (unsigned long)GC_get_gc_no());
	fflush(stdout);
	return 0;
}

int main(void)
{
	static const char *const what[] = {
		[2] = "no collector thread", [3] = "a call did not start",
		[4] = "a body did not block",
		[5] = "collections stopped while bodies blocked",
		[6] = "a cancel did not come back as -ECANCELED",
		[7] = "a body lost its list or was not registered",
	};
	pid_t pid;
	int st;

	/* memcheck reports every word the collector's conservative scan
	 * reads before it was written (stacks, free heap). */
	if (RUNNING_ON_VALGRIND)
		tap_skip_all("memcheck reports the collector's conservative scan "
			     "of memory never written");
#ifdef __SANITIZE_THREAD__
	/* TSan runs a handler only when the thread reaches one of its
	 * interceptors; a body blocked in a system call TSan does not
	 * intercept (syscall(), the portable window) is restarted instead
	 * (the collector's handler is SA_RESTART), never acknowledges, and
	 * the collection waits for ever. */
	tap_skip_all("ThreadSanitizer holds the collector's signal back from "
		     "a thread blocked in a system call it does not intercept");
#endif
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		tap_skip_all("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(child());
	st = b_child_within(pid, CHILD_MS);
	tap_ok(st == 0, "collections while %d registered bodies block, and "
	       "while they are cancelled, %ld rounds: %s", BODIES,
	       b_scale(ROUNDS),
	       st == 0 ? "every collection stopped them, every list kept" :
	       st == -1 ? "hung" :
	       st == 256 + SIGABRT ? "the collector aborted the process" :
	       st > 256 ? "killed by a signal" :
	       st < (int)(sizeof(what) / sizeof(what[0])) && what[st] ?
	       what[st] : "failed");
	return tap_done();
}

#else

int main(void)
{
	tap_skip_all("the Boehm collector is not installed (libgc-dev)");
}

#endif
