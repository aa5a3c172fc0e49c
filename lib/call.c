/* SPDX-License-Identifier: MIT */
/*
 * The interruption protocol: one call's life on its worker, and the rules
 * under which a signal may be sent to that worker.
 *
 * States (struct intr_task.state, changed only under the tree lock):
 *
 *   QUEUED --start--> RUNNING --body returns--> DONE
 *      \______________start, already cancelled___^
 *
 *   QUEUED   submitted; the body has not started.  No signal is sent.
 *   RUNNING  the body runs with the interrupt signal unblocked.  A cancel
 *            that reaches the call's token sends one signal, and the call
 *            stays on the running list, where the service thread re-sends
 *            with back-off until the body acknowledges (intr_cancelled()
 *            returns true) or returns.
 *   DONE     the body has returned (or never ran).  No signal is ever sent
 *            for this call again.  Finalizers run in this state, with the
 *            interrupt signal blocked.
 *
 * The cancel side sets the token's reason and, if the call is RUNNING,
 * sends the signal, both under the tree lock.  The worker side:
 *   start:  under the lock, reads the reason.  Cancelled: DONE, the body is
 *           skipped.  Otherwise RUNNING; then it unblocks the signal and
 *           calls the body.
 *   end:    blocks the signal, then under the lock moves to DONE and reads
 *           the reason, which is the call's status.
 *
 * No cancel is lost.  A cancel takes the lock either before the start
 * (the worker then reads the reason and skips the body), between start and
 * end (the call is RUNNING: a signal is sent, and re-sent until the body
 * acknowledges or returns, so a body blocked in any interruptible system
 * call gets EINTR even if the first signal arrived just before it entered
 * the kernel), or after the end (the body had already returned: by
 * definition the call was not cancelled, and its status says 0).
 *
 * No cancel leaks into later code on the worker.  Every signal for a call
 * is sent under the lock while the call is RUNNING, hence before the end
 * step takes the lock.  At that point the signal is already blocked, so a
 * signal sent late is not delivered during the finalizers or while the
 * worker idles: it stays pending until the worker next unblocks the signal
 * for another body.  Unblocking delivers pending signals before
 * pthread_sigmask() returns, i.e. before that body has made any system
 * call, and the handler ignores them (signal.c): their cookie is that of
 * the previous call on this worker.  The interruptible window of every body
 * therefore sees only signals sent for that body.
 *
 * The re-send list holds exactly the RUNNING calls, so the service thread
 * can never signal a call that has ended or a worker that moved on.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"

/* The longest re-send interval, unless resend_us is longer still. */
#define RESEND_CAP_NS 100000000ull

INTR_TLS struct intr_task *intr__current;

static struct intr_task *running;	/* RUNNING calls */
static uint64_t next_cookie;

static void running_add(struct intr_task *t)
{
	t->run_prev = NULL;
	t->run_next = running;
	if (running)
		running->run_prev = t;
	running = t;
}

static void running_del(struct intr_task *t)
{
	if (t->run_prev)
		t->run_prev->run_next = t->run_next;
	else
		running = t->run_next;
	if (t->run_next)
		t->run_next->run_prev = t->run_prev;
	t->run_next = t->run_prev = NULL;
}

/* A cancel has just reached this call's token.  Tree lock held; may run in
 * a signal handler on any thread. */
void intr__call_cancel_locked(struct intr_task *t)
{
	if (t->state != INTR_RUNNING)
		return;
	intr__signal_send(t->tid, t->cookie);
	t->resend_gap = (uint64_t)intr__cfg.resend_us * 1000u;
	t->resend_at = intr__now_ns() + t->resend_gap;
	intr__service_arm_locked(t->resend_at);
	if (t->wakers) {
		/* Wake-up actions (wake.c): the service thread, now. */
		t->wake_due = true;
		intr__service_arm_locked(intr__now_ns());
	}
}

/* Take the wake-up actions of one RUNNING call that a cancel made due; the
 * call cannot end before intr__call_wake_done_locked.  Tree lock held. */
struct intr_task *intr__call_wake_take_locked(struct intr__waker **list)
{
	struct intr_task *t;

	for (t = running; t; t = t->run_next) {
		if (!t->wake_due)
			continue;
		t->wake_due = false;
		*list = t->wakers;
		t->wakers = NULL;
		atomic_fetch_add(&t->wake_busy, 1);
		return t;
	}
	return NULL;
}

/* The service thread ran what it took.  Waking the worker under the tree
 * lock keeps t alive until then: the worker needs the lock to end. */
void intr__call_wake_done_locked(struct intr_task *t)
{
	if (atomic_fetch_sub(&t->wake_busy, 1) == 1)
		intr__futex_wake(&t->wake_busy, 1);
}

/* Re-send to every cancelled call that is due and has not acknowledged.
 * Returns the next time one is due, or 0.  Tree lock held. */
uint64_t intr__call_resend_locked(uint64_t now)
{
	uint64_t next = 0, cap;
	struct intr_task *t;

	cap = (uint64_t)intr__cfg.resend_us * 1000u;
	if (cap < RESEND_CAP_NS)
		cap = RESEND_CAP_NS;
	for (t = running; t; t = t->run_next) {
		if (!t->resend_at || atomic_load(&t->acked))
			continue;
		if (t->resend_at <= now) {
			intr__signal_send(t->tid, t->cookie);
			t->resend_gap *= 2;
			if (t->resend_gap > cap)
				t->resend_gap = cap;
			t->resend_at = now + t->resend_gap;
		}
		if (!next || t->resend_at < next)
			next = t->resend_at;
	}
	return next;
}

/* In the child after fork(): none of the parent's calls runs here. */
void intr__call_forget_running(void)
{
	running = NULL;
	intr__current = NULL;
}

static void run_finalizers(struct intr_task *t)
{
	struct intr__fin *f;

	/* Last registered first; a finalizer may register more, which then
	 * come next.  Each node is unlinked before it runs: exactly once. */
	while ((f = t->fins)) {
		t->fins = f->next;
		f->fn(f->arg);
		free(f);
	}
}

/* Run call t on the calling worker, whose signals are all blocked. */
void intr__call_run(struct intr_task *t, pid_t tid)
{
	struct intr__waker *wake;
	bool skip;
	int busy;

	intr__tree_lock_blocked();
	skip = atomic_load(&t->tok.reason) != 0;
	if (skip) {
		t->state = INTR_DONE;
		t->status = atomic_load(&t->tok.reason);
	} else {
		t->state = INTR_RUNNING;
		t->tid = tid;
		t->cookie = ++next_cookie;
		running_add(t);
	}
	intr__tree_unlock_blocked();

	if (!skip) {
		intr__current = t;
		intr__cookie_prev = intr__cookie_cur;
		intr__cookie_cur = t->cookie;
		pthread_sigmask(SIG_SETMASK, &intr__body_mask, NULL);
		t->result = t->fn((intr_ctx *)(void *)t, t->arg);
		pthread_sigmask(SIG_SETMASK, &intr__quiet_mask, NULL);

		intr__tree_lock_blocked();
		t->state = INTR_DONE;
		t->status = atomic_load(&t->tok.reason);
		running_del(t);
		wake = t->wakers;
		t->wakers = NULL;
		t->wake_due = false;
		intr__tree_unlock_blocked();

		/* Wake-up actions not run yet run now if the call was
		 * cancelled; then wait for those the service thread runs. */
		if (t->status)
			intr__wakers_run(wake);
		else
			intr__wakers_drop(wake);
		while ((busy = atomic_load(&t->wake_busy)))
			intr__futex_wait(&t->wake_busy, busy, NULL);

		run_finalizers(t);
		intr__current = NULL;
	}

	/* The call's own token ends with the call. */
	intr__tree_lock_blocked();
	intr__token_unlink_locked(&t->tok);
	intr__handle_del(&t->tok);
	intr__tree_unlock_blocked();
}
