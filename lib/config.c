/* SPDX-License-Identifier: MIT */
/*
 * Configuration, first-use initialisation, fork handling and the version.
 *
 * The runtime starts on the first call that needs it (intr_token_new,
 * intr_spawn, run_interruptible, intr_token_cancel_after): the interrupt
 * signal's handler is installed then, once.  intr_configure() is accepted
 * only before that.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_IDLE_MS 10000
#define DEFAULT_RESEND_US 1000

struct intr_config intr__cfg;
/* Set once, before the first call can start (intr__init). */
bool intr__wake_signal;

static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool started;
static bool configured;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_err;
static sigset_t fork_saved;

/* The signal INTR_SIGNAL names, or SIGUSR1 (unset or empty); complains
 * once if unusable. */
static int env_signal(void)
{
	static atomic_bool warned;
	const char *s = getenv("INTR_SIGNAL");
	int signo;

	if (!s || !*s)
		return SIGUSR1;
	signo = intr__signal_parse(s);
	if (intr__signal_usable(signo))
		return signo;
	if (!atomic_exchange(&warned, true))
		fprintf(stderr,
			"libinterruptible: INTR_SIGNAL=\"%s\" is not a usable "
			"interrupt signal (want SIGUSR1, SIGUSR2 or a real-time "
			"signal: USR2, RTMIN+3, SIGRTMAX-1, a number); using "
			"SIGUSR1\n", s);
	return SIGUSR1;
}

/* INTR_WAKE=signal: the waits that can end without the interrupt signal
 * (intr_sleep) take it anyway, as they did before.  Anything else, unset
 * or empty: the signal-free waits. */
static bool env_wake_signal(void)
{
	const char *s = getenv("INTR_WAKE");

	return s && !strcmp(s, "signal");
}

INTR_API void intr_config_default(struct intr_config *cfg)
{
	int e = errno;

	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->signo = env_signal();
	cfg->max_workers = 0;
	cfg->idle_ms = DEFAULT_IDLE_MS;
	cfg->stack_size = 0;
	cfg->resend_us = DEFAULT_RESEND_US;
	errno = e;
}

INTR_API int intr_configure(const struct intr_config *cfg)
{
	int ret = 0;

	if (!cfg || !intr__signal_usable(cfg->signo) || !cfg->resend_us ||
	    (cfg->stack_size && cfg->stack_size < (size_t)PTHREAD_STACK_MIN))
		return -EINVAL;
	pthread_mutex_lock(&init_mu);
	if (atomic_load(&started)) {
		ret = -EBUSY;
	} else {
		intr__cfg = *cfg;
		configured = true;
	}
	pthread_mutex_unlock(&init_mu);
	return ret;
}

INTR_API const char *intr_version(void)
{
	return PACKAGE_VERSION;
}

/* fork(): take the locks so the child gets them in a consistent state;
 * the child then resets what no longer exists there (threads, timer).
 * The context list's lock first: it is never held with another. */
static void fork_prepare(void)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &fork_saved);
	intr__context_fork_lock();
	pthread_mutex_lock(&init_mu);
	intr__pool_lock();
	intr__tree_lock_blocked();
}

static void fork_parent(void)
{
	intr__tree_unlock_blocked();
	intr__pool_unlock();
	pthread_mutex_unlock(&init_mu);
	intr__context_fork_unlock();
	pthread_sigmask(SIG_SETMASK, &fork_saved, NULL);
}

static void fork_child(void)
{
	bool body;

	intr__tree_lock_reset();
	intr__pool_after_fork();
	intr__service_after_fork();
	intr__signal_after_fork();
	body = intr__call_after_fork();
	intr__here_after_fork();
	pthread_mutex_init(&init_mu, NULL);
	intr__context_after_fork();
	pthread_sigmask(SIG_SETMASK, &fork_saved, NULL);
	/* A body forked and goes on here as a running call: its deadlines
	 * fire and its re-sends go out in this process too.  If the threads
	 * cannot be had, the next call that needs them tries again. */
	if (body)
		intr__service_start();
}

/* Registered outside init_mu: fork() runs fork_prepare, which takes
 * init_mu, while it may hold libc's own lock around the fork handlers. */
static void register_atfork(void)
{
	atfork_err = pthread_atfork(fork_prepare, fork_parent, fork_child);
	intr__hg_before(&atfork_err);
}

/* The fork handlers, registered once: at first use, or by the first
 * intr_context_add() if that comes earlier.  0 or -ENOMEM. */
int intr__atfork(void)
{
	pthread_once(&atfork_once, register_atfork);
	/* pthread_once orders it; helgrind is told so (it cannot see it). */
	intr__hg_after(&atfork_err);
	return -atfork_err;
}

int intr__init(void)
{
	int ret = 0;

	if (atomic_load(&started))
		return 0;
	ret = intr__atfork();
	if (ret)
		return ret;
	pthread_mutex_lock(&init_mu);
	if (atomic_load(&started))
		goto out;
	if (!configured)
		intr_config_default(&intr__cfg);
	ret = intr__signal_install(intr__cfg.signo);
	if (ret)
		goto out;
	intr__wake_signal = env_wake_signal();
	atomic_store(&started, true);
out:
	pthread_mutex_unlock(&init_mu);
	return ret;
}

/*
 * When the library is unloaded (dlclose), or the process exits: if no call
 * is running (on a worker, or in place on a thread of the application),
 * stop every thread of the library and wait until it is gone
 * (none may run unmapped code), close the timer, put back the handler the
 * signal had (if ours is still the installed one) and free what is left.
 * While a call runs, nothing is touched: unloading then is a misuse the
 * library cannot make safe (the body runs on its worker, in code that is
 * about to be unmapped); at process exit it is harmless.  After this, a
 * call that still comes in (from another thread, during exit or between
 * this and the unmapping) is refused with -EAGAIN, and nothing starts a
 * thread or a timer again: the pool refuses calls, the service refuses to
 * start.  Not static, so that a statically linked test can run it early.
 */
__attribute__((destructor)) void intr__fini(void)
{
	int e = errno;

	/* A scope runs on a thread of the application, not on a worker. */
	if (intr__here_close())
		goto out;
	if (intr__pool_stop()) {
		intr__here_reopen();
		goto out;
	}
	intr__service_stop();
	intr__signal_restore();
	intr__handles_free();
	intr__context_free();
out:
	errno = e;
}

/* Start a library thread with every signal blocked but the synchronous
 * faults, so nothing reaches it before it is ready.  Every library thread
 * is joinable: unloading the library (intr__fini) must wait until none
 * runs its code any more. */
int intr__create_thread(enum intr__site site, void *(*fn)(void *), void *arg,
			pthread_t *th)
{
	pthread_attr_t attr;
	sigset_t saved;
	int ret;

	ret = pthread_attr_init(&attr);
	if (ret)
		return -ret;
	if (intr__cfg.stack_size)
		ret = pthread_attr_setstacksize(&attr, intr__cfg.stack_size);
	if (!ret) {
		pthread_sigmask(SIG_SETMASK, &intr__quiet_mask, &saved);
		ret = intr__fault(site) ? EAGAIN :
			pthread_create(th, &attr, fn, arg);
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
	}
	pthread_attr_destroy(&attr);
	return -ret;
}
