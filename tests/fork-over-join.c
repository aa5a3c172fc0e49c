/* SPDX-License-Identifier: MIT */
/*
 * Description: fork() from a signal handler over run_interruptible, whose
 * join takes no lock: its worker takes the task's handle out.  The child,
 * whose only thread is the joiner, ends the call and leaves nothing of it.
 *
 * 1. (fault build) The handler runs right after the submit, before the
 *    join, while the worker, the call over and the handle out already,
 *    is held between the completion's two stores: the child's join
 *    returns the result.  Linked with --wrap=pthread_create: the first
 *    thread made after the runtime started is the worker, and the
 *    wrapper raises the signal then, delivered when the caller's mask
 *    comes back after the submit.
 * 2. The handler forks while the body still runs (the kernel shows the
 *    joiner asleep): the child's join returns -ECANCELED, and no task
 *    handle is left in the child's registry (linked statically: it is
 *    hidden).
 * 3. (fault build) The signal comes while the call is being bound, the
 *    tree lock held open: no handler runs between the bind and the end
 *    of the submit, so the child has the call submitted to a worker it
 *    does not have, and ends it; had the handler run at the bind's
 *    unlock, the child's own submit would start a worker on a call it
 *    had ended and its join freed.  The child must end the join with no
 *    thread made: one thread, its own.
 * Each child is waited for with a bound: a join never ended fails the case.
 */
#include "config.h"

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

int __real_pthread_create(pthread_t *th, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg);

static atomic_int raise_on_create;
static volatile sig_atomic_t in_child, held_at_fork;
static volatile pid_t child;
static atomic_int forked;
static unsigned tasks_left;

int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg)
{
	int r = __real_pthread_create(th, attr, fn, arg);

	if (atomic_exchange(&raise_on_create, 0))
		raise(SIGUSR2);
	return r;
}

static void do_fork(void)
{
	pid_t p = fork();

	if (p == 0) {
		in_child = 1;
	} else {
		child = p;
		atomic_store(&forked, 1);
	}
}

/* Wait for the child, bounded; true if it exited 0. */
static bool child_ok(const char **why)
{
	int st = child > 0 ? b_child_within(child, BOUND_MS) : -2;

	*why = st == 0 ? "ended" : st == -1 ?
	       "still waiting after the bound" : "failed";
	return st == 0;
}

/* SIGUSR2 runs fn, with SA_RESTART; the disposition before in *old. */
static void on_usr2(void (*fn)(int), struct sigaction *old)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, old);
}

static void count_task(void *obj)
{
	(void)obj;
	tasks_left++;
}

#ifdef INTR_FAULT_INJECTION
static void *echo(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

/* True once some thread is held in delay d, within the bound. */
static bool wait_delaying(enum intr__delay d)
{
	uint64_t end = h_now_ns() + (uint64_t)BOUND_MS * 1000000u;

	while (!intr__fault_delaying(d)) {
		if (h_now_ns() > end)
			return false;
		b_sleep_ms(1);
	}
	return true;
}

/* After the submit: once the worker is held before the release, fork. */
static void held_handler(int sig)
{
	(void)sig;
	wait_delaying(INTR_DELAY_COMPLETE);
	held_at_fork = intr__fault_delaying(INTR_DELAY_COMPLETE) > 0;
	/* The sanitizer's allocator is not fork-safe with a thread in it. */
	b_others_asleep(BOUND_MS);
	do_fork();
}
#endif

static void fork_in_submit(void)
{
#ifdef INTR_FAULT_INJECTION
	struct sigaction old;
	const char *why = "";
	intr_token *tok = NULL;
	void *res = NULL;
	bool ok;
	int r;

	on_usr2(held_handler, &old);
	/* The runtime's own threads first: the next one made is the
	 * worker. */
	if (intr_token_new(&tok, NULL)) {
		tap_ok(false, "intr_token_new");
		return;
	}
	intr__fault_delay_arm(INTR_DELAY_COMPLETE, 500);
	atomic_store(&raise_on_create, 1);
	r = run_interruptible(NULL, echo, (void *)(uintptr_t)7, &res);
	if (in_child)
		_exit(r == 0 && res == (void *)(uintptr_t)7 ? 0 : 1);
	intr__fault_delay_arm(INTR_DELAY_COMPLETE, 0);
	atomic_store(&raise_on_create, 0);
	sigaction(SIGUSR2, &old, NULL);
	ok = child_ok(&why);
	tap_ok(ok && held_at_fork && r == 0, "a fork right after the submit, "
	       "the worker held before the release: the parent's call returns "
	       "%d, the child's join %s (held at the fork: %d)", r, why,
	       (int)held_at_fork);
	intr_token_free(tok);
	child = 0;
	atomic_store(&forked, 0);
#else
	tap_skip("a fork right after the submit, the worker held before the "
		 "release: needs the fault hook's delay (make check-fault)");
#endif
}

static atomic_int started, release_body;

/* Runs until the fork is made, or the bound. */
static void *held_body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	atomic_store(&started, 1);
	b_wait_atomic(&release_body, 1, BOUND_MS);
	return arg;
}

static void plain_handler(int sig)
{
	(void)sig;
	do_fork();
}

struct kicker {
	pthread_t target;
	pid_t tid;
};

/* Once the body runs and the joiner sleeps, signal it; once it forked,
 * let the body return. */
static void *kick(void *arg)
{
	struct kicker *k = arg;

	if (b_wait_atomic(&started, 1, BOUND_MS) &&
	    b_thread_sleeps(k->tid, BOUND_MS))
		pthread_kill(k->target, SIGUSR2);
	b_wait_atomic(&forked, 1, BOUND_MS);
	atomic_store(&release_body, 1);
	return NULL;
}

static void fork_while_running(void)
{
	struct kicker k = { pthread_self(), b_gettid() };
	struct sigaction old;
	const char *why = "";
	pthread_t th;
	sigset_t ss;
	bool ok;
	int r;

	on_usr2(plain_handler, &old);
	if (pthread_create(&th, NULL, kick, &k)) {
		tap_ok(false, "pthread_create");
		return;
	}
	r = run_interruptible(NULL, held_body, NULL, NULL);
	if (in_child) {
		intr__tree_lock(&ss);
		intr__handles_each(INTR_H_TASK, count_task);
		intr__tree_unlock(&ss);
		_exit(r == -ECANCELED && !tasks_left ? 0 : 1);
	}
	pthread_join(th, NULL);
	sigaction(SIGUSR2, &old, NULL);
	ok = child_ok(&why);
	tap_ok(ok && r == 0, "a fork over the join while the body runs: the "
	       "parent's call returns %d; the child's join -ECANCELED with no "
	       "task handle left: %s", r, why);
}

#ifdef INTR_FAULT_INJECTION
/* Once the caller sleeps in the bind's held lock, signal it. */
static void *kick_bind(void *arg)
{
	struct kicker *k = arg;

	if (wait_delaying(INTR_DELAY_TREE_LOCKED) &&
	    b_thread_sleeps(k->tid, BOUND_MS))
		pthread_kill(k->target, SIGUSR2);
	b_wait_atomic(&forked, 1, BOUND_MS);
	return NULL;
}
#endif

static void fork_at_bind(void)
{
#ifdef INTR_FAULT_INJECTION
	struct kicker k = { pthread_self(), b_gettid() };
	struct sigaction old;
	const char *why = "";
	pthread_t th;
	bool ok;
	int r, n;

	/* Warm: the registry has room (no lock before the bind's), and an
	 * idle worker takes the call. */
	if (run_interruptible(NULL, echo, NULL, NULL)) {
		tap_ok(false, "a first call");
		return;
	}
	on_usr2(plain_handler, &old);
	if (pthread_create(&th, NULL, kick_bind, &k)) {
		tap_ok(false, "pthread_create");
		return;
	}
	intr__fault_delay_arm(INTR_DELAY_TREE_LOCKED, 200);
	r = run_interruptible(NULL, echo, (void *)(uintptr_t)9, NULL);
	if (in_child) {
		n = b_threads();
		_exit((r == -ECANCELED || r == 0) && n == 1 ? 0 : 1);
	}
	intr__fault_delay_arm(INTR_DELAY_TREE_LOCKED, 0);
	pthread_join(th, NULL);
	sigaction(SIGUSR2, &old, NULL);
	ok = child_ok(&why);
	tap_ok(ok && r == 0, "a signal while the call is bound, the tree lock "
	       "held: the parent's call returns %d; the child's join, with "
	       "no thread made: %s", r, why);
	child = 0;
	atomic_store(&forked, 0);
#else
	tap_skip("a fork over the bind: needs the fault hook's delay "
		 "(make check-fault)");
#endif
}

int main(void)
{
#ifdef __SANITIZE_THREAD__
	tap_skip_all("ThreadSanitizer defers signal handlers to its own "
		     "points, and a fork from one is not its to follow");
#endif
	if (RUNNING_ON_VALGRIND)
		tap_skip_all("valgrind: a fork from a handler over its "
			     "emulated signal delivery");
	fork_in_submit();
	fork_while_running();
	fork_at_bind();
	return tap_done();
}
