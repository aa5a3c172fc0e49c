/* SPDX-License-Identifier: MIT */
/*
 * The service threads.  One fires deadlines and re-sends the interrupt
 * signal to cancelled calls that have not acknowledged yet; it never runs
 * user code, so nothing an application does can hold up a deadline or a
 * re-send.  The other, the wake-up thread, runs the wake-up actions of
 * cancelled calls (wake.c), which are user code and may block: a
 * condition wait's broadcast waits for the application's mutex.
 *
 * The service thread sleeps on a timer armed for the next event (timer.c),
 * with no timeout when there is none: while nothing is pending it costs no
 * CPU and no wake-up.  The wake-up thread sleeps until a cancel kicks it.
 */
#include "config.h"

#include <errno.h>

#include "internal.h"

static atomic_bool running;	/* both threads exist */
static bool waker_running;	/* start_mu */
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool stopping;	/* intr__service_stop: both threads end */
static bool closed;		/* start_mu: stopped for good (unloaded) */
static pthread_t service_th, waker_th;

/* Time out every token whose deadline has passed; the next deadline
 * still pending, or 0.  Tree lock held. */
static uint64_t deadlines_fire_locked(uint64_t now)
{
	struct intr_token *t;
	uint64_t next;

	while ((t = intr__deadline_due_locked(now, &next)))
		intr__cancel_locked(t, -ETIMEDOUT);
	return next;
}

static void *service_main(void *unused)
{
	uint64_t now, next, r;
	bool repair;

	for (;;) {
		intr__tree_lock_blocked();
		/* Under the lock: intr__service_stop arms the timer under it
		 * too, so no pass can re-arm it for later after that. */
		if (atomic_load(&stopping)) {
			intr__tree_unlock_blocked();
			break;
		}
		intr__timer_pass_locked();
		/* Our handler must be the one a re-send reaches.  Looked at
		 * under the lock: a cancel sends and then looks under it
		 * too, so no repair made here falls between a send that
		 * went to the application's handler and that look, which
		 * would then find ours and ask for nothing.  A cancel that
		 * found the handler replaced has every cancelled call sent
		 * its signal again now.  (A deadline's cancel below that
		 * finds it so arms the timer for the next pass.) */
		repair = intr__signal_repair_take_locked();
		intr__signal_check();
		now = intr__now_ns();
		next = deadlines_fire_locked(now);
		r = intr__call_resend_locked(now, repair);
		if (r && (!next || r < next))
			next = r;
		if (next)
			intr__timer_arm_locked(next);
		intr__tree_unlock_blocked();

		/* Sleep until the timer fires.  The thread blocks every
		 * signal, so EINTR cannot happen; any other failure just
		 * means another pass, which recomputes everything. */
		intr__timer_wait();
	}
	return NULL;
}

static void *waker_main(void *unused)
{
	struct intr__waker *list;
	struct intr_task *t;
	int seq;

	for (;;) {
		/* Read before the scan: a kick after it changes the value
		 * and the wait below returns at once. */
		seq = intr__timer_kicks();
		if (atomic_load(&stopping))
			break;
		intr__tree_lock_blocked();
		while ((t = intr__call_wake_take_locked(&list))) {
			intr__tree_unlock_blocked();
			list = intr__wakers_repeat(list);
			/* User code may have changed the mask. */
			pthread_sigmask(SIG_SETMASK, &intr__quiet_mask, NULL);
			intr__tree_lock_blocked();
			list = intr__call_wake_done_locked(t, list);
			if (list) {
				/* Repeating actions of a call that ended:
				 * freed, not under the lock. */
				intr__tree_unlock_blocked();
				intr__wakers_drop(list);
				intr__tree_lock_blocked();
			}
		}
		intr__tree_unlock_blocked();
		intr__timer_wait_kick(seq);
	}
	return NULL;
}

int intr__service_start(void)
{
	int ret = 0;

	if (atomic_load(&running))
		return 0;
	pthread_mutex_lock(&start_mu);
	if (atomic_load(&running))
		goto out;
	if (closed) {
		/* Unloaded: a thread started now would run unmapped code. */
		ret = -EAGAIN;
		goto out;
	}
	/* No timer (EMFILE, ENFILE): like no thread, the service cannot
	 * be had now. */
	ret = intr__timer_open();
	if (ret)
		goto out;
	if (!waker_running) {
		ret = intr__create_thread(INTR_SITE_WAKER_THREAD, waker_main,
					  NULL, &waker_th);
		if (ret)
			goto out;
		waker_running = true;
	}
	ret = intr__create_thread(INTR_SITE_SERVICE_THREAD, service_main, NULL,
				  &service_th);
	if (!ret)
		atomic_store(&running, true);
out:
	pthread_mutex_unlock(&start_mu);
	return ret;
}

/*
 * Unloading (lifecycle.c): end both threads, wait until they are gone, and
 * close the timer, for good: intr__service_start refuses from now on.
 * Only when no call is running: a re-send or a wake-up of a running call
 * could still be due.
 */
void intr__service_stop(void)
{
	sigset_t ss;

	pthread_mutex_lock(&start_mu);
	intr__tree_lock(&ss);
	atomic_store(&stopping, true);
	if (atomic_load(&running)) {
		/* The timer fires at once, and no pass re-arms it (it is
		 * due first): the service thread wakes up, sees stopping,
		 * and leaves. */
		intr__timer_fire_locked();
	}
	intr__tree_unlock(&ss);
	if (atomic_load(&running)) {
		pthread_join(service_th, NULL);
		atomic_store(&running, false);
	}
	if (waker_running) {
		intr__timer_kick();
		pthread_join(waker_th, NULL);
		waker_running = false;
	}
	intr__timer_close();
	closed = true;
	pthread_mutex_unlock(&start_mu);
}

/* In the child after fork(): the threads are gone and the timerfd is shared
 * with the parent, so a fresh one is made when the service is next needed. */
void intr__service_after_fork(void)
{
	pthread_mutex_init(&start_mu, NULL);
	intr__timer_close();
	waker_running = false;
	atomic_store(&running, false);
}
