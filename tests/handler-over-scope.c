/* SPDX-License-Identifier: MIT */
/*
 * Description: an application's signal handler that comes while an
 * in-place scope holds the tree lock, on the scope's own thread, waits
 * for the library or forks: neither may wait for ever.  The scope's
 * sections hold the lock with every signal blocked, so the handler runs
 * after the section, with the lock free.
 *
 * Each case holds the scope in its bind's section (the fault hook's
 * delay where the tree lock is taken), waits until its thread sleeps
 * there, and signals it:
 * 1. The handler cancels a task whose body sleeps in intr_sleep, then
 *    polls the task's fd: the task ends (its end step takes the tree
 *    lock) within the poll's bound.  A handler run inside the section
 *    would wait for the lock its own thread holds.
 * 2. Another thread forks first, and sleeps in the library's fork
 *    handler for the tree lock, holding glibc's fork lock; then the
 *    handler forks.  Both forks return.  A handler run inside the
 *    section would wait for glibc's lock, held by a thread that waits
 *    for the section.
 * A watchdog thread ends the test with a failure after the bound.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bound.h"
#include "internal.h"
#include "tap.h"
#ifdef INTR_FAULT_INJECTION
#include "fault.h"
#endif

#define BOUND_MS	10000u
/* Past every bound: only a cancel ends it. */
#define LONG_NS		(6ull * BOUND_MS * 1000000u)

#ifdef INTR_FAULT_INJECTION
static intr_task *task;
static int task_fd = -1;
static volatile int polled = -1000;
static volatile pid_t handler_child = -1;
static volatile pid_t other_child = -1;
static volatile int mode;
static atomic_int ran, finished, other_forking;

static void on_usr2(int sig)
{
	struct pollfd p;
	pid_t c;

	(void)sig;
	if (mode == 1) {
		intr_task_cancel(task);
		p.fd = task_fd;
		p.events = POLLIN;
		polled = poll(&p, 1, BOUND_MS);
		return;
	}
	c = fork();
	if (c == 0)
		_exit(0);
	handler_child = c;
}

static void *watchdog(void *arg)
{
	(void)arg;
	if (!b_wait_atomic(&finished, 1, 6 * BOUND_MS)) {
		printf("not ok - a case never ended: a handler over the "
		       "scope's section waited for ever\n");
		fflush(stdout);
		_exit(1);
	}
	return NULL;
}

static void *sleeper(intr_ctx *ctx, void *arg)
{
	(void)arg;
	atomic_store(&ran, 1);
	return (void *)(intptr_t)intr_sleep(ctx, LONG_NS);
}

static void *quick(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

static void *other_fork(void *arg)
{
	pid_t *tid = arg, c;

	*tid = b_gettid();
	atomic_store(&other_forking, 1);
	c = fork();
	if (c == 0)
		_exit(0);
	other_child = c;
	return NULL;
}

struct kicker {
	pthread_t target;
	pid_t tid;
};

/* Once the scope's thread is held with the tree lock, signal it (case
 * 2: once another thread sleeps in its fork, waiting for the lock). */
static void *kick(void *arg)
{
	struct kicker *k = arg;
	uint64_t end = h_now_ns() + (uint64_t)BOUND_MS * 1000000u;
	pthread_t other;
	pid_t other_tid = 0;
	bool forking = false;

	while (!intr__fault_delaying(INTR_DELAY_TREE_LOCKED)) {
		if (h_now_ns() > end)
			return NULL;
		b_sleep_ms(1);
	}
	if (!b_thread_sleeps(k->tid, BOUND_MS))
		return NULL;
	if (mode == 2 && !pthread_create(&other, NULL, other_fork,
					 &other_tid)) {
		forking = true;
		if (b_wait_atomic(&other_forking, 1, BOUND_MS))
			b_thread_sleeps(other_tid, BOUND_MS);
	}
	pthread_kill(k->target, SIGUSR2);
	intr__fault_delay_arm(INTR_DELAY_TREE_LOCKED, 0);
	if (forking)
		pthread_join(other, NULL);
	return NULL;
}

static int scope_kicked(int m)
{
	struct kicker k = { pthread_self(), b_gettid() };
	intr_token *tok;
	pthread_t th;
	int r;

	mode = m;
	if (intr_token_new(&tok, NULL))
		return -1000;
	intr__fault_delay_arm(INTR_DELAY_TREE_LOCKED, 300);
	if (pthread_create(&th, NULL, kick, &k)) {
		intr__fault_delay_arm(INTR_DELAY_TREE_LOCKED, 0);
		intr_token_free(tok);
		return -1000;
	}
	r = intr_run_here(tok, quick, (void *)(uintptr_t)7, NULL);
	pthread_join(th, NULL);
	intr__fault_delay_arm(INTR_DELAY_TREE_LOCKED, 0);
	intr_token_free(tok);
	return r;
}

static void handler_waits(void)
{
	void *res = NULL;
	int r, j;

	atomic_store(&ran, 0);
	if (intr_spawn(&task, NULL, sleeper, NULL)) {
		tap_ok(false, "intr_spawn");
		return;
	}
	task_fd = intr_task_fd(task);
	if (task_fd < 0 || !b_wait_atomic(&ran, 1, BOUND_MS)) {
		tap_ok(false, "the task's body never ran");
		return;
	}
	r = scope_kicked(1);
	j = b_join_within(task, &res, BOUND_MS);
	tap_ok(r == 0 && polled == 1 && j == -ECANCELED,
	       "a handler over the scope's section cancels a task and polls "
	       "its fd: the poll %d (want 1: the task ended), the join %d, "
	       "the scope %d", polled, j, r);
}

static void handler_forks(void)
{
	int r = scope_kicked(2);
	int a = handler_child > 0 ?
		b_child_within(handler_child, BOUND_MS) : -2;
	int b = other_child > 0 ? b_child_within(other_child, BOUND_MS) : -2;

	tap_ok(r == 0 && a == 0 && b == 0,
	       "a handler over the scope's section forks while another "
	       "thread's fork waits for the lock: both forks return "
	       "(children %d, %d), the scope %d", a, b, r);
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
		     "points, and a fork from one is not its to follow");
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
	if (run_interruptible(NULL, quick, NULL, NULL))
		tap_skip_all("no runtime here");
	handler_waits();
	handler_forks();
	atomic_store(&finished, 1);
#else
	tap_skip_all("needs the fault hook's delay (make check-fault)");
#endif
	return tap_done();
}
