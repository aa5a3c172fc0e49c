/* SPDX-License-Identifier: MIT */
/*
 * Description: fork() while another thread is inside intr_context_add():
 * the child can add context elements (the mutex that guards the list is
 * not inherited held), whether or not the library was used before.
 *
 * The adding thread is held inside the list's critical section by this
 * program's own malloc(), which waits there for its release; that comes
 * only once the forking thread is seen asleep (in fork() waiting for the
 * mutex, or after fork() waiting for the child).  The child adds an
 * element under a 3 s alarm: a deadlock ends it by SIGALRM.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "bound.h"
#include "tap.h"

#define WAIT_MS 5000

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NO_MALLOC_HOOK 1
#endif

#ifndef NO_MALLOC_HOOK
void *__libc_malloc(size_t n);

static __thread bool hold_next;		/* this thread's next malloc waits */
static atomic_int held, released;

/* Every allocation of the program and the library comes here first. */
void *malloc(size_t n)
{
	if (hold_next) {
		hold_next = false;
		atomic_store(&held, 1);
		while (!atomic_load(&released))
			b_sleep_ms(1);
	}
	return __libc_malloc(n);
}
#endif

static void *cap(void *d) { (void)d; return NULL; }
static void *ins(void *c, void *d) { (void)c; (void)d; return NULL; }
static void res(void *s, void *d) { (void)s; (void)d; }

static const struct intr_context_element el = {
	.capture = cap, .install = ins, .restore = res,
};

static void *adder(void *arg)
{
	(void)arg;
#ifndef NO_MALLOC_HOOK
	hold_next = true;
#endif
	return (void *)(long)intr_context_add(&el);
}

static pid_t forker_tid;
static atomic_int forking;

/* Lets the adder go once the forking thread sleeps. */
static void *releaser(void *arg)
{
	(void)arg;
	if (b_wait_atomic(&forking, 1, WAIT_MS))
		b_thread_sleeps(forker_tid, WAIT_MS);
#ifndef NO_MALLOC_HOOK
	atomic_store(&released, 1);
#endif
	return NULL;
}

static void *body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

/* In a fresh child of the test: exit 0, 1 set-up, 2 the grandchild's
 * add deadlocked (SIGALRM), 3 it failed, 4 the parent's add failed. */
static int scenario(bool used)
{
	pthread_t a, r;
	void *ret;
	pid_t pid;
	int st;

	if (used && run_interruptible(NULL, body, NULL, NULL))
		return 1;
	forker_tid = b_gettid();
	if (pthread_create(&a, NULL, adder, NULL) ||
	    pthread_create(&r, NULL, releaser, NULL))
		return 1;
#ifndef NO_MALLOC_HOOK
	if (!b_wait_atomic(&held, 1, WAIT_MS))
		return 1;
#endif
	atomic_store(&forking, 1);
	pid = fork();
	if (pid == 0) {
		alarm(3);
		_exit(intr_context_add(&el) == 0 ? 0 : 1);
	}
	st = pid > 0 ? b_child_within(pid, WAIT_MS) : -1;
	pthread_join(r, NULL);
	pthread_join(a, &ret);
	if (st == 256 + SIGALRM || st == -1)
		return 2;
	if (st)
		return 3;
	return ret ? 4 : 0;
}

static void run(bool used)
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(scenario(used));
	st = b_child_within(pid, 3 * WAIT_MS);
	tap_ok(st == 0, "fork() while intr_context_add() holds its mutex, "
	       "the library %s: %s", used ? "in use" : "not used before",
	       st == 0 ? "the child adds an element" :
	       st == 2 ? "the child's intr_context_add() deadlocked" :
	       st == 1 ? "set-up failed" : "failed");
}

int main(void)
{
#ifdef NO_MALLOC_HOOK
	tap_skip_all("the sanitizer owns malloc: the adder cannot be held");
#endif
	if (RUNNING_ON_VALGRIND)
		tap_skip_all("valgrind owns malloc: the adder cannot be held");
	run(true);
	run(false);
	return tap_done();
}
