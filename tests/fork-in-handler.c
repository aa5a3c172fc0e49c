/* SPDX-License-Identifier: MIT */
/*
 * Description: fork() from a signal handler that interrupted the library
 * while it held a lock its fork handlers take (intr_configure(), the start
 * at the first call, intr_context_add()): the child runs, instead of the
 * handler waiting forever for its own thread.
 *
 * Linked with the library's objects and --wrap=pthread_mutex_unlock: the
 * test's unlock raises the signal on the thread that is about to release
 * the lock, so the handler runs exactly while the lock is held, the
 * widest window there is.  A handler that waits for the lock never
 * returns; each case runs in a child of the test, bounded.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bound.h"
#include "tap.h"

#define WAIT_MS 5000

int __real_pthread_mutex_unlock(pthread_mutex_t *m);
int __wrap_pthread_mutex_unlock(pthread_mutex_t *m);

static __thread bool raise_next;	/* this thread's next unlock raises */
static volatile sig_atomic_t forked;	/* 1: the handler's child exited 0 */

/* Every unlock of the library and of this program comes here first. */
int __wrap_pthread_mutex_unlock(pthread_mutex_t *m)
{
	if (raise_next) {
		raise_next = false;
		raise(SIGUSR2);
	}
	return __real_pthread_mutex_unlock(m);
}

static void on_usr2(int sig)
{
	pid_t pid;
	int st;

	(void)sig;
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0)
		forked = 1;
}

static void *body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

static void *cap(void *d) { (void)d; return NULL; }
static void *ins(void *c, void *d) { (void)c; (void)d; return NULL; }
static void res(void *s, void *d) { (void)s; (void)d; }

static const struct intr_context_element el = {
	.capture = cap, .install = ins, .restore = res,
};

enum where { CONFIGURE, START, CONTEXT_ADD };

static const char *const names[] = {
	[CONFIGURE] = "intr_configure() (the configuration lock)",
	[START] = "the first call's start (the configuration lock)",
	[CONTEXT_ADD] = "intr_context_add() (the context list's lock)",
};

/* In a fresh child of the test: 0 the handler forked and its child ran,
 * 1 set-up failed, 2 the fork in the handler failed. */
static int scenario(enum where where)
{
	struct intr_config cfg;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL))
		return 1;
	intr_config_default(&cfg);
	switch (where) {
	case CONFIGURE:
		raise_next = true;
		if (intr_configure(&cfg))
			return 1;
		break;
	case START:
		/* The configuration frozen and the interrupt signal's
		 * handler installed, under the lock. */
		if (intr_configure(&cfg))
			return 1;
		raise_next = true;
		if (run_interruptible(NULL, body, NULL, NULL))
			return 1;
		break;
	case CONTEXT_ADD:
		raise_next = true;
		if (intr_context_add(&el))
			return 1;
		break;
	}
	if (raise_next)
		return 1;	/* no unlock was seen */
	return forked ? 0 : 2;
}

static void run(enum where where)
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(scenario(where));
	st = b_child_within(pid, WAIT_MS);
	tap_ok(st == 0, "fork() in a handler that interrupted %s, the "
	       "library not used before: %s", names[where],
	       st == 0 ? "the child ran" :
	       st == 1 ? "set-up failed" :
	       st == 2 ? "fork() failed" :
	       "the handler waited for the lock its own thread holds");
}

int main(void)
{
#ifdef __SANITIZE_THREAD__
	tap_skip_all("TSan defers signals to its own points: the handler "
		     "does not run inside the unlock");
#endif
	run(CONFIGURE);
	run(START);
	run(CONTEXT_ADD);
	return tap_done();
}
