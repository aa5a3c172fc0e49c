/* SPDX-License-Identifier: MIT */
/*
 * Fault injection, for tests only: built with --enable-fault-injection,
 * and empty otherwise (a release build has no hook, no cost and no extra
 * symbol).
 *
 * Every place in lib/ that allocates memory, creates a thread, creates a
 * file descriptor or sends the interrupt signal names its site (fault.h)
 * and asks intr__fault() first.  The hook counts the events of each kind
 * and, when a test has armed it, says "fail" for the nth event of the
 * chosen kind (and for every later one if the failure is sticky).  The
 * site then fails the way the system would: an allocation returns NULL
 * with errno ENOMEM, a thread creation EAGAIN, an fd creation EMFILE, and
 * a signal send does what the kernel does when the queue of signal
 * details (RLIMIT_SIGPENDING) is full (signal.c).
 *
 * The control functions are hidden like every internal symbol: only a
 * program linked with the static library (tests/check-fault) reaches them,
 * so no environment variable or other outside input can make a program
 * that uses a fault-injection build fail.  Counting per site lets the test
 * check that its sweep reached every site.  Everything is an atomic: the
 * signal send may be asked from a signal handler (intr_token_cancel).
 *
 * The delays (fault.h, enum intr__delay) are the other half: a test arms
 * one to make the library wait at a named place between two steps of the
 * protocol, so that a window a few instructions wide becomes one that a
 * test can see into (the worker's mask in the end step) or run through
 * (the next call, before the worker is idle again).
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifdef INTR_FAULT_INJECTION

static const struct {
	const char *name;
	enum intr__fault_kind kind;
} sites[INTR_SITES] = {
	[INTR_SITE_CONTEXT_ADD] = { "context.c intr_context_add", INTR_FAULT_ALLOC },
	[INTR_SITE_CONTEXT_CAPTURE] = { "context.c capture", INTR_FAULT_ALLOC },
	[INTR_SITE_TOKEN_VALUE] = { "context.c token value", INTR_FAULT_ALLOC },
	[INTR_SITE_DEFER] = { "ctx.c intr_defer", INTR_FAULT_ALLOC },
	[INTR_SITE_HANDLES] = { "handles.c reserve", INTR_FAULT_ALLOC },
	[INTR_SITE_WORKER] = { "pool.c worker", INTR_FAULT_ALLOC },
	[INTR_SITE_TASK] = { "task.c intr_spawn", INTR_FAULT_ALLOC },
	[INTR_SITE_TOKEN] = { "token.c intr_token_new", INTR_FAULT_ALLOC },
	[INTR_SITE_ON_CANCEL] = { "wake.c intr_on_cancel", INTR_FAULT_ALLOC },
	[INTR_SITE_WORKER_THREAD] = { "pool.c worker thread", INTR_FAULT_THREAD },
	[INTR_SITE_SERVICE_THREAD] = { "service.c service thread", INTR_FAULT_THREAD },
	[INTR_SITE_WAKER_THREAD] = { "service.c wake-up thread", INTR_FAULT_THREAD },
	[INTR_SITE_TIMERFD] = { "timer.c timerfd", INTR_FAULT_FD },
	[INTR_SITE_EVENTFD] = { "task.c eventfd", INTR_FAULT_FD },
	[INTR_SITE_SIGNAL_SEND] = { "signal.c send", INTR_FAULT_SIGNAL },
	[INTR_SITE_RESOLVE] = { "resolve.c address", INTR_FAULT_ALLOC },
	[INTR_SITE_RESOLVE_NAME] = { "resolve.c canonical name", INTR_FAULT_ALLOC },
	[INTR_SITE_RESOLV_CONF] = { "resolve.c INTR_RESOLV_CONF", INTR_FAULT_FD },
	[INTR_SITE_WAKE_FD] = { "slot.c wake eventfd", INTR_FAULT_FD },
};

static const char *const kind_names[INTR_FAULT_KINDS] = {
	[INTR_FAULT_ALLOC] = "allocation",
	[INTR_FAULT_THREAD] = "thread creation",
	[INTR_FAULT_FD] = "fd creation",
	[INTR_FAULT_SIGNAL] = "signal send",
};

static atomic_ulong kind_events[INTR_FAULT_KINDS];
static atomic_ulong site_events[INTR_SITES];
static atomic_ulong site_injected[INTR_SITES];
static atomic_int armed_kind = -1;	/* -1: no kind fails */
static atomic_int armed_site = -1;	/* -1: no one site fails */
static atomic_ulong armed_nth;
static atomic_bool armed_sticky;
static struct rlimit sigpending_limit;	/* saved when armed */

bool intr__fault(enum intr__site site)
{
	enum intr__fault_kind kind = sites[site].kind;
	unsigned long n, nth, s;

	s = atomic_fetch_add(&site_events[site], 1) + 1;
	n = atomic_fetch_add(&kind_events[kind], 1) + 1;
	if (atomic_load(&armed_site) == (int)site)
		n = s;		/* counted at this site only */
	else if (atomic_load(&armed_kind) != (int)kind)
		return false;
	nth = atomic_load(&armed_nth);
	if (!nth || n < nth || (n > nth && !atomic_load(&armed_sticky)))
		return false;
	atomic_fetch_add(&site_injected[site], 1);
	return true;
}

/* The failure is the kernel's own: the soft limit on queued signal
 * details drops to 0 for the one send.  A real-time signal is then refused
 * with EAGAIN; a classic one is still delivered, with its details lost
 * (si_code SI_USER, si_pid 0), which the handler must recognise as ours.
 * A send of another thread in that instant may fail too: a fault as well. */
long intr__fault_sigqueue(pid_t pid, pid_t tid, int sig, siginfo_t *si)
{
	struct rlimit none = sigpending_limit;
	int e;
	long r;

	none.rlim_cur = 0;
	syscall(SYS_prlimit64, 0, RLIMIT_SIGPENDING, &none, NULL);
	r = syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, si);
	e = errno;
	syscall(SYS_prlimit64, 0, RLIMIT_SIGPENDING, &sigpending_limit, NULL);
	errno = e;
	return r;
}

enum intr__fault_kind intr__fault_kind_of(enum intr__site site)
{
	return sites[site].kind;
}

const char *intr__fault_site_name(enum intr__site site)
{
	return sites[site].name;
}

const char *intr__fault_kind_name(enum intr__fault_kind kind)
{
	return kind_names[kind];
}

void intr__fault_arm(enum intr__fault_kind kind, unsigned long nth,
		     bool sticky)
{
	int i;

	atomic_store(&armed_kind, -1);
	atomic_store(&armed_site, -1);
	getrlimit(RLIMIT_SIGPENDING, &sigpending_limit);
	for (i = 0; i < INTR_FAULT_KINDS; i++)
		atomic_store(&kind_events[i], 0);
	for (i = 0; i < INTR_SITES; i++) {
		atomic_store(&site_events[i], 0);
		atomic_store(&site_injected[i], 0);
	}
	atomic_store(&armed_nth, nth);
	atomic_store(&armed_sticky, sticky);
	atomic_store(&armed_kind, (int)kind);
}

void intr__fault_arm_site(enum intr__site site, unsigned long nth)
{
	intr__fault_arm(INTR_FAULT_KINDS, nth, false);
	atomic_store(&armed_site, (int)site);
}

void intr__fault_disarm(void)
{
	atomic_store(&armed_kind, -1);
	atomic_store(&armed_site, -1);
}

unsigned long intr__fault_events(enum intr__site site)
{
	return atomic_load(&site_events[site]);
}

unsigned long intr__fault_injected(enum intr__site site)
{
	return atomic_load(&site_injected[site]);
}

static atomic_uint delay_ms[INTR_DELAYS];
static atomic_ulong delayed[INTR_DELAYS];
static atomic_int delaying[INTR_DELAYS];

/* The whole wait, whatever interrupts it: the threads that pass here have
 * every signal blocked, but a debugger's stop may still cut it short. */
void intr__fault_delay(enum intr__delay d)
{
	unsigned ms = atomic_load(&delay_ms[d]);
	struct timespec ts;

	if (!ms)
		return;
	atomic_fetch_add(&delayed[d], 1);
	atomic_fetch_add(&delaying[d], 1);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
	atomic_fetch_sub(&delaying[d], 1);
}

void intr__fault_delay_arm(enum intr__delay d, unsigned ms)
{
	atomic_store(&delayed[d], 0);
	atomic_store(&delay_ms[d], ms);
}

unsigned long intr__fault_delayed(enum intr__delay d)
{
	return atomic_load(&delayed[d]);
}

int intr__fault_delaying(enum intr__delay d)
{
	return atomic_load(&delaying[d]);
}

#endif /* INTR_FAULT_INJECTION */
