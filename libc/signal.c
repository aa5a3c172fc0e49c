/* SPDX-License-Identifier: MIT */
/*
 * Waiting for signals.  Inside a body the interrupt signal stays out of
 * the set waited for (the cancel must interrupt the wait, not be taken as
 * its result) and out of the mask sigsuspend installs.
 */
#include "config.h"
#undef _FORTIFY_SOURCE

#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* rt_sigtimedwait as libc makes it: a signal sent by tkill (raise) is
 * reported as sent by kill, SI_USER. */
static int timedwait_body(intr_ctx *ctx, const sigset_t *set, siginfo_t *info,
			  const struct timespec *timeout, bool *libc)
{
	sigset_t open;
	long r;

	if (set)	/* else the kernel's EFAULT, as libc gets it */
		intr__libc_open(&open, set);
	r = intr__libc_sc(ctx, libc, SYS_rt_sigtimedwait,
			  (long)(set ? &open : NULL),
			  (long)info, (long)timeout, INTR_LIBC_NSIG_BYTES, 0,
			  0);
	if (*libc)
		return 0;
	if (r > 0 && info && info->si_code == SI_TKILL)
		info->si_code = SI_USER;
	return (int)intr__libc_ret(r);
}

INTR_LIBC_API int sigtimedwait(const sigset_t *set, siginfo_t *info,
			       const struct timespec *timeout)
{
	intr_ctx *ctx = intr__libc_ctx();
	bool libc;
	int r;

	if (likely(!ctx))
		return REAL(__typeof__(&sigtimedwait), sigtimedwait)(
			set, info, timeout);
	r = timedwait_body(ctx, set, info, timeout, &libc);
	if (libc)
		return REAL(__typeof__(&sigtimedwait), sigtimedwait)(
			set, info, timeout);
	return r;
}

INTR_LIBC_API int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
	intr_ctx *ctx = intr__libc_ctx();
	bool libc;
	int r;

	if (likely(!ctx))
		return REAL(__typeof__(&sigwaitinfo), sigwaitinfo)(set, info);
	r = timedwait_body(ctx, set, info, NULL, &libc);
	if (libc)
		return REAL(__typeof__(&sigwaitinfo), sigwaitinfo)(set, info);
	return r;
}

/*
 * sigwait() retries EINTR (POSIX gives it no such error), so the signal
 * alone never ends it.  Here the retry ends once the cancel is reported
 * the second time: it returns ECANCELED or ETIMEDOUT, as an error number.
 */
INTR_LIBC_API int sigwait(const sigset_t *set, int *sig)
{
	intr_ctx *ctx = intr__libc_ctx();
	siginfo_t si;
	bool libc;
	int r;

	if (likely(!ctx))
		return REAL(__typeof__(&sigwait), sigwait)(set, sig);
	do
		r = timedwait_body(ctx, set, &si, NULL, &libc);
	while (!libc && r < 0 && errno == EINTR);
	if (libc)
		return REAL(__typeof__(&sigwait), sigwait)(set, sig);
	if (r < 0)
		return errno;
	*sig = r;
	return 0;
}

INTR_LIBC_API int sigsuspend(const sigset_t *mask)
{
	intr_ctx *ctx = intr__libc_ctx();
	sigset_t open;
	bool libc;
	long r;

	if (likely(!ctx))
		return REAL(__typeof__(&sigsuspend), sigsuspend)(mask);
	intr__libc_open(&open, mask);	/* declared nonnull by libc */
	r = intr__libc_sc(ctx, &libc, SYS_rt_sigsuspend, (long)&open,
			  INTR_LIBC_NSIG_BYTES, 0, 0, 0, 0);
	if (libc)
		return REAL(__typeof__(&sigsuspend), sigsuspend)(mask);
	return (int)intr__libc_ret(r);
}

/* pause() where the kernel has it; elsewhere (aarch64) a ppoll on nothing,
 * which also returns only when a handler ran. */
INTR_LIBC_API int pause(void)
{
#ifdef SYS_pause
	INTR_LIBC_ONE(pause, (), SYS_pause, 0, 0, 0, 0, 0, 0);
#else
	INTR_LIBC_ONE(pause, (), SYS_ppoll, 0, 0, 0, 0, INTR_LIBC_NSIG_BYTES,
		      0);
#endif
}
