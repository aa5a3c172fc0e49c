/* SPDX-License-Identifier: MIT */
/*
 * Wake-up actions: intr_on_cancel(), intr_on_cancel_repeat() and
 * intr_cond_wait().
 *
 * Some waits are not broken by a signal (a condition variable, a custom
 * event loop).  For those the body registers a wake-up action on its call.
 * When a cancel reaches the RUNNING call, it marks the call's actions due
 * and kicks the wake-up thread (timer.c; a futex wake, async-signal-safe),
 * which takes the whole list off the call under the tree lock and runs it
 * without the lock, never in a signal handler.  If the body
 * returns first, the worker takes what is left when it moves the call to
 * DONE and runs it itself, before the finalizers, if the call was
 * cancelled, or drops it if not.  Either way each action is taken off the
 * list exactly once, under the lock, so it runs at most once; the worker
 * waits for actions the wake-up thread is still running before it goes on,
 * so they all finish before the call returns to its caller.  The wake-up
 * thread is not the thread that fires deadlines and re-sends: an action
 * that blocks delays other wake-ups, never a deadline.
 *
 * A repeating action (intr_on_cancel_repeat) is for a wake-up that can
 * arrive too early: a server that ignores a PQcancel or a CLIENT UNBLOCK
 * sent before it started the wait.  The wake-up thread hands it back to
 * the call after it ran (intr__call_wake_done_locked puts it back while
 * the call is RUNNING), and every re-send of the signal (call.c, with the
 * signal's back-off, until the body acknowledges) makes the call's actions
 * due again; it still runs on one thread at a time, never concurrently
 * with itself.  The worker frees it at the end without running it again,
 * unless it never ran.
 *
 * intr_cond_wait's action broadcasts the condition under its mutex.  The
 * waiter registers it and checks the reason under the tree lock while it
 * holds the mutex, then waits, which releases the mutex atomically; the
 * action takes the mutex before it broadcasts.  So either the waiter sees
 * the reason, or the broadcast comes after the waiter is waiting: no lost
 * wake-up.  After the wait the waiter takes its action back; if the service
 * thread already took it, the waiter lets go of the mutex until the action
 * has finished with it, and takes the mutex again before it returns.
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "internal.h"

/* On the worker, after the body of a cancelled call: the actions the
 * wake-up thread has not run.  A repeating one that ran already is done
 * with: the body it woke has returned. */
void intr__wakers_run(struct intr__waker *w)
{
	struct intr__waker *next;

	for (; w; w = next) {
		next = w->next;
		if (w->repeat && w->ran) {
			free(w);
			continue;
		}
		w->fn(w->arg);
		if (w->owned) {
			free(w);
		} else {
			/* On the waiter's stack: 1 wakes it, 2 says this
			 * thread is done with it (the waiter may not return
			 * before, or the wake would name its old stack). */
			atomic_store(&w->done, 1);
			intr__futex_wake(&w->done, 1);
			atomic_store(&w->done, 2);
		}
	}
}

/* On the wake-up thread: every action taken off a cancelled call; the
 * repeating ones are returned, to go back on the call for its next
 * re-send, the others are done with. */
struct intr__waker *intr__wakers_repeat(struct intr__waker *w)
{
	struct intr__waker *next, *again = NULL;

	for (; w; w = next) {
		next = w->next;
		if (!w->repeat) {
			w->next = NULL;
			intr__wakers_run(w);
			continue;
		}
		w->fn(w->arg);
		w->ran = true;
		w->next = again;
		again = w;
	}
	return again;
}

void intr__wakers_drop(struct intr__waker *w)
{
	struct intr__waker *next;

	for (; w; w = next) {
		next = w->next;
		if (w->owned)
			free(w);
	}
}

/* Register w on t unless t is cancelled; returns 0 or the reason. */
static int add(struct intr_task *t, struct intr__waker *w)
{
	sigset_t ss;
	int reason;

	intr__tree_lock(&ss);
	reason = atomic_load(&t->tok.reason);
	if (!reason) {
		w->next = t->wakers;
		t->wakers = w;
	}
	intr__tree_unlock(&ss);
	if (!reason)
		return 0;
	intr__acknowledge(t);
	return reason;
}

/* Take w back from t; false if the wake-up thread has taken it. */
static bool take_back(struct intr_task *t, struct intr__waker *w)
{
	struct intr__waker **pp;
	bool found = false;
	sigset_t ss;

	intr__tree_lock(&ss);
	for (pp = &t->wakers; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			found = true;
			break;
		}
	}
	intr__tree_unlock(&ss);
	return found;
}

static int on_cancel(intr_ctx *ctx, void (*wake)(void *arg), void *arg,
		     bool repeat)
{
	int e = errno;
	struct intr_task *t = intr__body_of(ctx);
	struct intr__waker *w;
	int ret;

	if (!t || !wake)
		return -EINVAL;
	w = intr__calloc(INTR_SITE_ON_CANCEL, 1, sizeof(*w));
	if (!w) {
		errno = e;
		return -ENOMEM;
	}
	w->fn = wake;
	w->arg = arg;
	w->owned = true;
	w->repeat = repeat;
	ret = add(t, w);
	if (ret)
		free(w);
	return ret;
}

INTR_API int intr_on_cancel(intr_ctx *ctx, void (*wake)(void *arg), void *arg)
{
	return on_cancel(ctx, wake, arg, false);
}

INTR_API int intr_on_cancel_repeat(intr_ctx *ctx, void (*wake)(void *arg),
				   void *arg)
{
	return on_cancel(ctx, wake, arg, true);
}

struct cond_wake {
	pthread_cond_t *c;
	pthread_mutex_t *m;
};

static void cond_wake(void *arg)
{
	struct cond_wake *cw = arg;

	pthread_mutex_lock(cw->m);
	pthread_cond_broadcast(cw->c);
	pthread_mutex_unlock(cw->m);
}

INTR_API int intr_cond_wait(intr_ctx *ctx, pthread_cond_t *c,
			    pthread_mutex_t *m)
{
	struct intr_task *t = intr__body_of(ctx);
	struct cond_wake cw = { .c = c, .m = m };
	struct intr__waker w = { .fn = cond_wake, .arg = &cw };
	int ret;

	if (!t || !c || !m)
		return -EINVAL;
	atomic_init(&w.done, 0);
	ret = add(t, &w);
	if (ret)
		return ret;
	ret = -pthread_cond_wait(c, m);
	if (!take_back(t, &w)) {
		if (!atomic_load(&w.done)) {
			/* The wake-up thread is running the broadcast, which
			 * needs the mutex: let it finish. */
			pthread_mutex_unlock(m);
			while (!atomic_load(&w.done))
				intr__futex_wait(&w.done, 0, NULL);
			pthread_mutex_lock(m);
		}
		/* Between 1 and 2 there is only its wake-up call. */
		while (atomic_load(&w.done) != 2)
			sched_yield();
	}
	if (atomic_load(&t->tok.reason))
		return intr__acknowledge(t);
	return ret;
}
