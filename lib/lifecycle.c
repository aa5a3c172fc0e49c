/* SPDX-License-Identifier: MIT */
/*
 * The runtime's life: its start at the first call that needs it
 * (intr_token_new, intr_spawn, run_interruptible, intr_token_cancel_after:
 * the interrupt signal's handler, then the service threads), fork(), and
 * the unload.  It sits above everything else and calls down into it; no
 * other file calls up into it but the entry points.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>

#include "internal.h"

static int atfork_err;

/*
 * The scopes in progress (intr_run_here), for the unload, which must leave
 * the handler, the tokens and the service in place while one runs: no
 * pool worker is busy then.  A scope counts itself in, then looks at
 * `closing'; the unload sets `closing', then looks at the count.  Both
 * sequentially consistent: one of the two sees the other, so either the
 * unload backs off or the scope is refused.  `mine' counts this thread's,
 * the only ones a fork child goes on with.
 */
static atomic_int scopes;
static atomic_bool closing;
static INTR_TLS int mine;
/* The forking thread's mask, and fork_prepare's own (every signal
 * blocked).  Written and read only under the context list's lock: glibc
 * runs the handlers of two threads' forks at the same time, and a second
 * fork_prepare must not store its mask over the first's. */
static sigset_t fork_saved;
static sigset_t fork_cfg_saved;

/* fork(): take the locks so the child gets them in a consistent state;
 * the child then resets what no longer exists there (threads, timer).
 * The context list's lock first: it is never held with another. */
static void fork_prepare(void)
{
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	intr__context_fork_lock();
	fork_saved = old;
	intr__config_lock(&fork_cfg_saved);
	intr__pool_lock();
	intr__tree_lock_blocked();
}

static void fork_parent(void)
{
	sigset_t old;

	intr__tree_unlock_blocked();
	intr__pool_unlock();
	intr__config_unlock(&fork_cfg_saved);
	old = fork_saved;
	intr__context_fork_unlock();
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void fork_child(void)
{
	bool body;

	intr__tree_lock_reset();
	intr__pool_after_fork();
	intr__service_after_fork();
	/* A process that never started the runtime pays nothing here: the
	 * handler's state (a fresh key) is made when it starts.  fork()
	 * holds the configuration's lock, so the start is not under way. */
	if (intr__config_started())
		intr__signal_after_fork();
	body = intr__call_after_fork();
	atomic_store(&scopes, mine);
	intr__config_after_fork();
	intr__context_after_fork();
	pthread_sigmask(SIG_SETMASK, &fork_saved, NULL);
	/* A body forked and goes on here as a running call: its deadlines
	 * fire and its re-sends go out in this process too.  If the threads
	 * cannot be had, the next call that needs them tries again. */
	if (body)
		intr__service_start();
}

/* The fork handlers, registered when the library is loaded, before any
 * of its locks can be held: a process that never uses it pays a few
 * uncontended locks per fork().  (glibc's dlclose() removes the handlers
 * of the object it unloads.)  If there is no memory for them then, the
 * runtime never starts: every call that needs it fails with -ENOMEM, and
 * so does intr_context_add(), whose lock they take. */
__attribute__((constructor)) static void register_atfork(void)
{
	atfork_err = pthread_atfork(fork_prepare, fork_parent, fork_child);
	if (atfork_err)
		intr__context_no_fork_handlers(atfork_err);
	/* Loading orders it before any call; helgrind cannot see that. */
	intr__hg_before(&atfork_err);
}

/* Once: the configuration frozen and the handler installed. */
static int init(void)
{
	sigset_t saved;
	int ret = 0;

	if (intr__config_started())
		return 0;
	intr__hg_after(&atfork_err);
	if (atfork_err)
		return -atfork_err;
	intr__config_lock(&saved);
	if (intr__config_started())
		goto out;
	intr__config_settle();
	ret = intr__signal_install(intr__cfg.signo);
	if (ret)
		goto out;
	intr__config_freeze();
out:
	intr__config_unlock(&saved);
	return ret;
}

/* A scope begins: 0, or -EAGAIN once the library is unloaded. */
int intr__scope_enter(void)
{
	atomic_fetch_add(&scopes, 1);
	mine++;
	if (atomic_load(&closing)) {
		intr__scope_leave();
		return -EAGAIN;
	}
	return 0;
}

void intr__scope_leave(void)
{
	mine--;
	atomic_fetch_sub(&scopes, 1);
}

/* The runtime, at the first call that needs it (and after a failure, at
 * the next): the handler, then the service threads.  0, or -EAGAIN or
 * -ENOMEM when they cannot be had (-EAGAIN for good once unloaded). */
int intr__start(void)
{
	int ret;

	ret = init();
	if (ret)
		return ret;
	return intr__service_start();
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
	atomic_store(&closing, true);
	if (atomic_load(&scopes)) {
		atomic_store(&closing, false);
		goto out;
	}
	if (intr__pool_stop()) {
		atomic_store(&closing, false);
		goto out;
	}
	intr__service_stop();
	intr__signal_restore();
	intr__handles_free();
	intr__context_free();
out:
	errno = e;
}

