/* SPDX-License-Identifier: MIT */
/*
 * Fault injection sites (see lib/fault.c).  Every allocation, thread
 * creation, file descriptor creation and signal send of lib/ goes through
 * one of the helpers below, naming its site.  Without
 * --enable-fault-injection they are plain calls and intr__fault() is the
 * constant false; with it, lib/fault.c counts every event and makes the
 * one a test chose fail as the system would.
 */
#ifndef INTR_FAULT_H
#define INTR_FAULT_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

enum intr__fault_kind {
	INTR_FAULT_ALLOC,	/* fails as ENOMEM */
	INTR_FAULT_THREAD,	/* fails as EAGAIN */
	INTR_FAULT_FD,		/* fails as EMFILE */
	INTR_FAULT_SIGNAL,	/* as with RLIMIT_SIGPENDING exhausted */
	INTR_FAULT_KINDS
};

/* One per call site in lib/; fault.c knows each one's kind and name. */
enum intr__site {
	INTR_SITE_CONTEXT_ADD,		/* context.c: intr_context_add */
	INTR_SITE_CONTEXT_CAPTURE,	/* context.c: a call's values */
	INTR_SITE_TOKEN_VALUE,		/* context.c: intr_token_set_value */
	INTR_SITE_DEFER,		/* ctx.c: intr_defer */
	INTR_SITE_HANDLES,		/* handles.c: the registry grows */
	INTR_SITE_WORKER,		/* pool.c: a worker's state */
	INTR_SITE_TASK,			/* task.c: intr_spawn */
	INTR_SITE_TOKEN,		/* token.c: intr_token_new */
	INTR_SITE_ON_CANCEL,		/* wake.c: intr_on_cancel */
	INTR_SITE_WORKER_THREAD,	/* pool.c: a worker thread */
	INTR_SITE_SERVICE_THREAD,	/* service.c: deadlines, re-sends */
	INTR_SITE_WAKER_THREAD,		/* service.c: wake-up actions */
	INTR_SITE_TIMERFD,		/* timer.c: the service timer */
	INTR_SITE_EVENTFD,		/* task.c: intr_task_fd */
	INTR_SITE_SIGNAL_SEND,		/* signal.c: the interrupt signal */
	INTR_SITE_RESOLVE,		/* resolve.c: an address found */
	INTR_SITE_RESOLVE_NAME,		/* resolve.c: the canonical name */
	INTR_SITE_RESOLV_CONF,		/* resolve.c: INTR_RESOLV_CONF */
	INTR_SITE_WAKE_FD,		/* slot.c: a call's wake eventfd */
	INTR_SITES
};

/*
 * Places where a test may make the library wait a while, to widen a window
 * between two steps whose order the protocol depends on.  Each names one
 * place in lib/, and only a fault injection build has them.
 */
enum intr__delay {
	INTR_DELAY_END_STEP,		/* call.c: the end step, lock held */
	INTR_DELAY_WORKER_IDLE,		/* pool.c: call ended, worker not idle */
	INTR_DELAY_SLOT_CLEAR,		/* syscall.c: a sleep's end, slot out */
	INTR_DELAY_COMPLETE,		/* task.c: done 1, not yet released */
	INTR_DELAY_TREE_LOCKED,		/* lock.c: intr__tree_lock taken */
	INTR_DELAYS
};

#ifdef INTR_FAULT_INJECTION
/* True if this event must fail.  Async-signal-safe. */
bool intr__fault(enum intr__site site);
/* rt_tgsigqueueinfo with the queue of signal details full.  Async-signal-
 * safe. */
long intr__fault_sigqueue(pid_t pid, pid_t tid, int sig, siginfo_t *si);

/* Control, for tests linked with the static library (all hidden). */
enum intr__fault_kind intr__fault_kind_of(enum intr__site site);
const char *intr__fault_site_name(enum intr__site site);
const char *intr__fault_kind_name(enum intr__fault_kind kind);
/* Zero every count, then fail the nth (from 1) event of kind, and every
 * later one too if sticky; nth 0 fails nothing (counting only). */
void intr__fault_arm(enum intr__fault_kind kind, unsigned long nth,
		     bool sticky);
/* The same, for the nth event at one site. */
void intr__fault_arm_site(enum intr__site site, unsigned long nth);
/* Stop failing; counts are kept. */
void intr__fault_disarm(void);
unsigned long intr__fault_events(enum intr__site site);
unsigned long intr__fault_injected(enum intr__site site);
/* Wait here for as long as a test asked (intr__fault_delay_arm), on a
 * library thread with every signal blocked; nothing if it asked nothing. */
void intr__fault_delay(enum intr__delay d);
/* Make every later pass through d wait ms milliseconds (0: not at all). */
void intr__fault_delay_arm(enum intr__delay d, unsigned ms);
/* How many times a pass through d has waited since it was armed. */
unsigned long intr__fault_delayed(enum intr__delay d);
/* How many threads wait at d now. */
int intr__fault_delaying(enum intr__delay d);
#else
static inline void intr__fault_delay(enum intr__delay d)
{
	(void)d;
}

static inline bool intr__fault(enum intr__site site)
{
	(void)site;
	return false;
}

static inline long intr__fault_sigqueue(pid_t pid, pid_t tid, int sig,
					siginfo_t *si)
{
	return syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, si);
}
#endif

/* malloc and calloc; an injected failure sets errno as theirs does. */
static inline void *intr__malloc(enum intr__site site, size_t size)
{
	if (intr__fault(site)) {
		errno = ENOMEM;
		return NULL;
	}
	return malloc(size);
}

static inline void *intr__calloc(enum intr__site site, size_t n, size_t size)
{
	if (intr__fault(site)) {
		errno = ENOMEM;
		return NULL;
	}
	return calloc(n, size);
}

#endif /* INTR_FAULT_H */
