/* SPDX-License-Identifier: MIT */
/*
 * What wakes the service threads (service.c): the timer the service thread
 * sleeps on, armed for the next deadline or re-send, and the kick that
 * wakes the wake-up thread.
 *
 * The timer is armed under the tree lock by whoever makes the earliest
 * event (a deadline, a cancel that reaches a running call).  Both arming
 * and kicking are async-signal-safe (one timerfd_settime; an atomic and a
 * futex wake), so a cancel from a signal handler schedules its own re-send
 * and its wake-ups without waking anyone itself.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"

static int tfd = -1;		/* the timer; set once per process image */
static uint64_t armed_at;	/* tree lock; 0: not armed */
static atomic_int kick_seq;	/* futex: bumped when wake-ups are due */

/* The timer, made if there is none yet.  0, -ENOMEM, or -EAGAIN (no
 * descriptor: EMFILE, ENFILE).  Under the service's start lock. */
int intr__timer_open(void)
{
	if (tfd >= 0)
		return 0;
	if (intr__fault(INTR_SITE_TIMERFD))
		errno = EMFILE;
	else
		tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (tfd < 0)
		return errno == ENOMEM ? -ENOMEM : -EAGAIN;
	return 0;
}

/* Fire at the absolute monotonic time at, unless armed for sooner.  Tree
 * lock held. */
void intr__timer_arm_locked(uint64_t at)
{
	struct itimerspec its;

	if (tfd < 0 || (armed_at && armed_at <= at))
		return;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(at / 1000000000u);
	its.it_value.tv_nsec = (long)(at % 1000000000u);
	if (!timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL))
		armed_at = at;
}

/* A pass of the service thread begins: whatever it arms next is the
 * next event.  Tree lock held. */
void intr__timer_pass_locked(void)
{
	armed_at = 0;
}

/* Fire now, and let no pass arm it for later (the stop).  Tree lock
 * held. */
void intr__timer_fire_locked(void)
{
	struct itimerspec its;

	if (tfd < 0)
		return;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_nsec = 1;
	timerfd_settime(tfd, 0, &its, NULL);
	armed_at = 1;
}

/* The service thread's sleep, until the timer fires.  A failure only
 * means another pass. */
void intr__timer_wait(void)
{
	uint64_t n;

	if (read(tfd, &n, sizeof(n)) < 0)
		return;
}

/* Closed: at the unload, and in a fork child, whose timer is the
 * parent's (a fresh one is made when the service is next needed). */
void intr__timer_close(void)
{
	if (tfd >= 0)
		close(tfd);
	tfd = -1;
	armed_at = 0;
}

/* Wake the wake-up thread.  Async-signal-safe. */
void intr__timer_kick(void)
{
	atomic_fetch_add(&kick_seq, 1);
	intr__futex_wake(&kick_seq, 1);
}

/* The wake-up thread reads the kicks' count before it looks for work,
 * and sleeps only while no kick came after that. */
int intr__timer_kicks(void)
{
	return atomic_load(&kick_seq);
}

void intr__timer_wait_kick(int seen)
{
	intr__futex_wait(&kick_seq, seen, NULL);
}
