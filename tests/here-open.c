/* SPDX-License-Identifier: MIT */
/*
 * Description: signal handlers over an in-place scope's own sections of
 * the tree lock, which the scope takes without blocking signals.  The
 * handler runs on the very thread that holds the lock.
 *
 * Each case holds the scope's thread in one of its sections (the fault
 * hook's delay, where the lock is taken open), waits until it sleeps
 * there, and signals it; the handler:
 * 1. cancels the scope's token in the bind's section: the cancel is owed
 *    to the section's end, and the scope returns -ECANCELED with its body
 *    skipped;
 * 2. cancels it in the start's section: the body, asleep in intr_sleep
 *    for longer than the bound, is woken and returns -ECANCELED;
 * 3. cancels it in the end step's section: the body has returned, so the
 *    scope returns 0, and the token is cancelled after it;
 * 4. reads the token's reason in the start's section: 0, with no lock;
 * 5. cancels a task (intr_task_cancel) in the start's section: the
 *    task's body, blocked in intr_sleep, returns -ECANCELED;
 * 6. forks in the start's section: in both processes the scope's body
 *    gives its own token a 50 ms deadline and blocks in intr_read() on a
 *    pipe no one writes, and the deadline's signal ends the read (in the
 *    child, it must go to the child's thread: the child's part of the
 *    fork handler ran at the section's end, after the section made the
 *    call RUNNING);
 *    then a pooled call and another scope work in the child.
 * A handler that took the lock would wait for its own thread for ever:
 * a watchdog thread ends the test with a failure after the bound.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bound.h"
#include "internal.h"
#include "tap.h"
#ifdef INTR_FAULT_INJECTION
#include "fault.h"
#endif

#define BOUND_MS	10000u
/* A sleep no cancel can be waited for through: past the bound. */
#define LONG_NS		(3ull * BOUND_MS * 1000000u)

#ifdef INTR_FAULT_INJECTION
enum act { A_CANCEL, A_REASON, A_TASK, A_FORK };

static intr_token *tok;
static intr_task *task;
static volatile enum act what;
static volatile int reason_seen;
static volatile int act_ret;
static volatile sig_atomic_t in_child;
static atomic_int ran, finished;

struct kicker {
	pthread_t target;
	pid_t tid;
	unsigned long section;	/* the how-manyth open section, from 1 */
};

static void on_usr2(int sig)
{
	(void)sig;
	switch (what) {
	case A_CANCEL:
		act_ret = intr_token_cancel(tok);
		break;
	case A_REASON:
		reason_seen = intr_token_reason(tok);
		act_ret = 0;
		break;
	case A_TASK:
		act_ret = intr_task_cancel(task);
		break;
	case A_FORK:
		act_ret = fork();
		if (act_ret == 0)
			in_child = 1;
		break;
	}
}

/* Once the scope's thread is held in its section-th open section and
 * sleeps there, signal it; disarm the delay after. */
static void *kick(void *arg)
{
	struct kicker *k = arg;
	uint64_t end = h_now_ns() + (uint64_t)BOUND_MS * 1000000u;

	while (intr__fault_delayed(INTR_DELAY_TREE_OPEN) < k->section ||
	       !intr__fault_delaying(INTR_DELAY_TREE_OPEN)) {
		if (h_now_ns() > end)
			return NULL;
		b_sleep_ms(1);
	}
	if (b_thread_sleeps(k->tid, BOUND_MS))
		pthread_kill(k->target, SIGUSR2);
	intr__fault_delay_arm(INTR_DELAY_TREE_OPEN, 0);
	return NULL;
}

/* The bound for the whole test: a handler that waits for its own
 * thread's lock never comes back. */
static void *watchdog(void *arg)
{
	(void)arg;
	if (!b_wait_atomic(&finished, 1, 6 * BOUND_MS)) {
		printf("not ok - a case never ended: the handler waited for "
		       "the lock its own thread holds\n");
		fflush(stdout);
		_exit(1);
	}
	return NULL;
}

static void *sleeper(intr_ctx *ctx, void *arg)
{
	int r;

	(void)arg;
	atomic_fetch_add(&ran, 1);
	r = intr_sleep(ctx, LONG_NS);
	return (void *)(intptr_t)r;
}

static int pipe_rd = -1;

/* Have its own scope cancelled by a deadline while it waits in a read:
 * the service thread signals the thread the call is RUNNING on. */
static void *self_reader(intr_ctx *ctx, void *arg)
{
	char c;
	ssize_t r;

	(void)arg;
	intr_token_cancel_after(intr_ctx_token(ctx), 50 * 1000000ull);
	r = intr_read(ctx, pipe_rd, &c, 1);
	return (void *)(intptr_t)r;
}

static void *quick(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	atomic_fetch_add(&ran, 1);
	return arg;
}

/* Run fn in a scope under a fresh tok, the handler doing a in the
 * section-th open section of it.  Returns the scope's status. */
static int scope_kicked(enum act a, unsigned long section, intr_fn fn,
			void **res)
{
	struct kicker k = { pthread_self(), b_gettid(), section };
	pthread_t th;
	int r;

	what = a;
	act_ret = -1000;
	atomic_store(&ran, 0);
	if (intr_token_new(&tok, NULL))
		return -1000;
	intr__fault_delay_arm(INTR_DELAY_TREE_OPEN, 300);
	if (pthread_create(&th, NULL, kick, &k)) {
		intr__fault_delay_arm(INTR_DELAY_TREE_OPEN, 0);
		return -1000;
	}
	r = intr_run_here(tok, fn, (void *)(uintptr_t)7, res);
	if (in_child)
		return r;
	pthread_join(th, NULL);
	intr__fault_delay_arm(INTR_DELAY_TREE_OPEN, 0);
	return r;
}

/* The scope's open sections, counted from 1: bind, start, end, unlink. */
#define S_BIND	1
#define S_START	2
#define S_END	3

static void cancel_in_bind(void)
{
	int r = scope_kicked(A_CANCEL, S_BIND, quick, NULL);

	tap_ok(r == -ECANCELED && act_ret == 0 && atomic_load(&ran) == 0,
	       "a cancel from a handler over the bind's section: the scope "
	       "returns %d (want %d), the handler's cancel %d, the body ran "
	       "%d times", r, -ECANCELED, act_ret, atomic_load(&ran));
	intr_token_free(tok);
}

static void cancel_in_start(void)
{
	void *res = NULL;
	int r = scope_kicked(A_CANCEL, S_START, sleeper, &res);

	tap_ok(r == -ECANCELED && act_ret == 0 && atomic_load(&ran) == 1 &&
	       (intptr_t)res == -ECANCELED,
	       "a cancel from a handler over the start's section reaches "
	       "the body: the scope returns %d, the body's sleep %d, the "
	       "handler's cancel %d", r, (int)(intptr_t)res, act_ret);
	intr_token_free(tok);
}

static void cancel_in_end(void)
{
	void *res = NULL;
	int r = scope_kicked(A_CANCEL, S_END, quick, &res);
	int after = intr_token_reason(tok);

	tap_ok(r == 0 && act_ret == 0 && (uintptr_t)res == 7 &&
	       after == -ECANCELED,
	       "a cancel from a handler over the end step's section: the "
	       "scope returns %d with the body's result, the token is "
	       "cancelled after it (%d)", r, after);
	intr_token_free(tok);
}

static void reason_in_start(void)
{
	int r;

	reason_seen = -1000;
	r = scope_kicked(A_REASON, S_START, quick, NULL);
	tap_ok(r == 0 && reason_seen == 0,
	       "intr_token_reason from a handler over the start's section: "
	       "%d, the scope returns %d", reason_seen, r);
	intr_token_free(tok);
}

static void task_in_start(void)
{
	void *res = NULL;
	int r, j;

	atomic_store(&ran, 0);
	if (intr_spawn(&task, NULL, sleeper, NULL)) {
		tap_ok(false, "intr_spawn");
		return;
	}
	/* The task's body is asleep before the scope starts. */
	if (!b_wait_atomic(&ran, 1, BOUND_MS)) {
		tap_ok(false, "the task's body never ran");
		return;
	}
	r = scope_kicked(A_TASK, S_START, quick, NULL);
	j = b_join_within(task, &res, BOUND_MS);
	tap_ok(r == 0 && act_ret == 0 && j == -ECANCELED &&
	       (intptr_t)res == -ECANCELED,
	       "intr_task_cancel from a handler over the start's section: "
	       "the task's join %d, its sleep %d; the scope %d", j,
	       (int)(intptr_t)res, r);
	intr_token_free(tok);
}

static void fork_in_start(void)
{
	void *res = NULL, *res2 = NULL, *res3 = NULL;
	int p[2], r, r2, r3, st;

	if (pipe(p)) {
		tap_ok(false, "pipe");
		return;
	}
	pipe_rd = p[0];
	r = scope_kicked(A_FORK, S_START, self_reader, &res);
	if (in_child) {
		r2 = run_interruptible(NULL, quick, (void *)(uintptr_t)8,
				       &res2);
		r3 = intr_run_here(NULL, quick, (void *)(uintptr_t)9, &res3);
		_exit(r == -ETIMEDOUT && (intptr_t)res == -ETIMEDOUT &&
		      r2 == 0 && (uintptr_t)res2 == 8 && r3 == 0 &&
		      (uintptr_t)res3 == 9 ? 0 : 1);
	}
	st = act_ret > 0 ? b_child_within(act_ret, BOUND_MS) : -2;
	tap_ok(r == -ETIMEDOUT && (intptr_t)res == -ETIMEDOUT && st == 0,
	       "a fork from a handler over the start's section: the "
	       "parent's scope returns %d, its read %d; the child's read, "
	       "pooled call and next scope: %s", r, (int)(intptr_t)res,
	       st == 0 ? "all done" : st == -1 ? "not ended after the bound" :
	       "failed");
	close(p[0]);
	close(p[1]);
	intr_token_free(tok);
}
#endif

int main(void)
{
#ifdef INTR_FAULT_INJECTION
	struct sigaction sa;
	pthread_t wd;
#endif

#ifdef __SANITIZE_THREAD__
	tap_skip_all("ThreadSanitizer defers signal handlers to its own "
		     "points: the handler would not run inside the section");
#endif
	if (RUNNING_ON_VALGRIND)
		tap_skip_all("valgrind: its emulated signal delivery");
#ifdef INTR_FAULT_INJECTION
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
	if (pthread_create(&wd, NULL, watchdog, NULL))
		tap_skip_all("no watchdog thread");
	pthread_detach(wd);
	/* Warm: the runtime and a worker. */
	if (run_interruptible(NULL, quick, NULL, NULL))
		tap_skip_all("no runtime here");
	cancel_in_bind();
	cancel_in_start();
	cancel_in_end();
	reason_in_start();
	task_in_start();
	fork_in_start();
	atomic_store(&finished, 1);
#else
	tap_skip_all("needs the fault hook's delay (make check-fault)");
#endif
	return tap_done();
}
