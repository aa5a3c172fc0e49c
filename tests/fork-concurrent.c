/* SPDX-License-Identifier: MIT */
/*
 * Description: two threads fork() at the same time, each with its own
 * signal mask: each keeps its own mask across fork(), in the parent and
 * in the child, also while the library's fork handlers of one wait for
 * the other's.
 *
 * Linked with the library's objects, pthread_mutex_lock and
 * pthread_mutex_unlock wrapped: the first thread is held in its fork's
 * parent handlers (at its first unlock there) until the second is seen
 * asleep in its own fork's prepare handler (at its first lock there), so
 * the two forks overlap in the one order where they can meet.
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

int __real_pthread_mutex_lock(pthread_mutex_t *m);
int __real_pthread_mutex_unlock(pthread_mutex_t *m);
int __wrap_pthread_mutex_lock(pthread_mutex_t *m);
int __wrap_pthread_mutex_unlock(pthread_mutex_t *m);

static __thread int role;		/* 1: first forker, 2: second */
static __thread bool armed;		/* the next wrapped call acts */
static pid_t armed_in;			/* in this process only: not in a
					 * child's own fork handler */
static atomic_int first_held;		/* the first waits in its parent */
static atomic_int second_in;		/* the second is in its prepare */
static pid_t second_tid;

int __wrap_pthread_mutex_lock(pthread_mutex_t *m)
{
	if (armed && role == 2 && getpid() == armed_in) {
		armed = false;
		atomic_store(&second_in, 1);
	}
	return __real_pthread_mutex_lock(m);
}

int __wrap_pthread_mutex_unlock(pthread_mutex_t *m)
{
	if (armed && role == 1 && getpid() == armed_in) {
		armed = false;
		/* In the parent handlers: let the second fork begin. */
		atomic_store(&first_held, 1);
		if (b_wait_atomic(&second_in, 1, WAIT_MS))
			b_thread_sleeps(second_tid, WAIT_MS);
	}
	return __real_pthread_mutex_unlock(m);
}

struct forker {
	int sig;		/* the one signal this thread blocks */
	int role;
	bool parent_ok;		/* its mask after fork(), in the parent */
	int child_st;		/* the child's exit: 0 if its mask was kept */
};

static bool mask_is(int sig)
{
	sigset_t now;
	int i;

	pthread_sigmask(SIG_SETMASK, NULL, &now);
	for (i = 1; i < 32; i++)
		if (i != SIGKILL && i != SIGSTOP &&
		    sigismember(&now, i) != (i == sig))
			return false;
	return true;
}

static void *forker(void *arg)
{
	struct forker *f = arg;
	sigset_t m;
	pid_t pid;

	sigemptyset(&m);
	sigaddset(&m, f->sig);
	pthread_sigmask(SIG_SETMASK, &m, NULL);
	role = f->role;
	if (role == 2) {
		second_tid = b_gettid();
		/* Only once the first is held inside its fork. */
		if (!b_wait_atomic(&first_held, 1, WAIT_MS))
			return NULL;
	}
	armed = true;
	pid = fork();
	if (pid == 0)
		_exit(mask_is(f->sig) ? 0 : 1);
	armed = false;
	/* A fork without the library's handlers held no one. */
	if (role == 1)
		atomic_store(&first_held, 1);
	f->parent_ok = mask_is(f->sig);
	f->child_st = pid > 0 ? b_child_within(pid, WAIT_MS) : -3;
	return NULL;
}

static void *body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

/* 0 both masks kept (parents and children), 1 set-up failed, 2 a mask
 * changed. */
static int scenario(bool used)
{
	struct forker a = { .sig = SIGUSR2, .role = 1, .child_st = -4 };
	struct forker b = { .sig = SIGTERM, .role = 2, .child_st = -4 };
	pthread_t ta, tb;

	if (used && run_interruptible(NULL, body, NULL, NULL))
		return 1;
	armed_in = getpid();
	if (pthread_create(&ta, NULL, forker, &a) ||
	    pthread_create(&tb, NULL, forker, &b))
		return 1;
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	return a.parent_ok && b.parent_ok && !a.child_st && !b.child_st ?
	       0 : 2;
}

static void run(bool used)
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(scenario(used));
	st = b_child_within(pid, 4 * WAIT_MS);
	tap_ok(st == 0, "two threads fork() at once, the library %s: %s",
	       used ? "in use" : "not used before",
	       st == 0 ? "each keeps its own mask" :
	       st == 1 ? "set-up failed" :
	       st == 2 ? "a thread's mask changed across fork()" :
	       "hung");
}

int main(void)
{
	run(true);
	run(false);
	return tap_done();
}
