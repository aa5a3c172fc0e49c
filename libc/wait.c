/* SPDX-License-Identifier: MIT */
/*
 * Waiting for fds, for time and for children.
 *
 * Inside a body each is made the way libc makes it on Linux (the system
 * call it uses, the timeouts it copies so the kernel cannot change the
 * caller's, the remaining time it writes back), with one difference: a
 * signal mask given to ppoll, pselect or epoll_pwait keeps the interrupt
 * signal open, or the cancel could not reach the wait.
 */
#include "config.h"
#undef _FORTIFY_SOURCE

#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* ------------------------------------------------------------ fds */

/* poll() as ppoll(): aarch64 has no poll system call, and the two agree. */
static int poll_body(intr_ctx *ctx, struct pollfd *fds, nfds_t n,
		     int timeout_ms, bool *libc)
{
	struct timespec ts, *tsp = NULL;

	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		tsp = &ts;
	}
	return (int)intr__libc_ret(intr__libc_sc(ctx, libc, SYS_ppoll,
						 (long)fds, (long)n,
						 (long)tsp, 0,
						 INTR_LIBC_NSIG_BYTES, 0));
}

INTR_LIBC_API int poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	intr_ctx *ctx = intr__libc_ctx();
	bool libc;
	int r;

	if (likely(!ctx))
		return REAL(__typeof__(&poll), poll)(fds, n, timeout_ms);
	r = poll_body(ctx, fds, n, timeout_ms, &libc);
	if (libc)
		return REAL(__typeof__(&poll), poll)(fds, n, timeout_ms);
	return r;
}

static int ppoll_body(intr_ctx *ctx, struct pollfd *fds, nfds_t n,
		      const struct timespec *timeout, const sigset_t *mask,
		      bool *libc)
{
	struct timespec ts, *tsp = NULL;
	sigset_t open;

	/* The kernel writes the time left back: not into the caller's. */
	if (timeout) {
		ts = *timeout;
		tsp = &ts;
	}
	if (mask)
		intr__libc_open(&open, mask);
	return (int)intr__libc_ret(intr__libc_sc(ctx, libc, SYS_ppoll,
						 (long)fds, (long)n,
						 (long)tsp,
						 (long)(mask ? &open : NULL),
						 INTR_LIBC_NSIG_BYTES, 0));
}

INTR_LIBC_API int ppoll(struct pollfd *fds, nfds_t n,
			const struct timespec *timeout, const sigset_t *mask)
{
	intr_ctx *ctx = intr__libc_ctx();
	bool libc;
	int r;

	if (likely(!ctx))
		return REAL(__typeof__(&ppoll), ppoll)(fds, n, timeout, mask);
	r = ppoll_body(ctx, fds, n, timeout, mask, &libc);
	if (libc)
		return REAL(__typeof__(&ppoll), ppoll)(fds, n, timeout, mask);
	return r;
}

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout_ms, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
		const sigset_t *mask, size_t fdslen);

INTR_LIBC_API int __poll_chk(struct pollfd *fds, nfds_t n, int timeout_ms,
			     size_t fdslen)
{
	__typeof__(&__poll_chk) real = REAL_OR(__typeof__(&__poll_chk),
					       __poll_chk, -1);

	if (likely(!intr__libc_ctx()) || fdslen / sizeof(*fds) < n)
		return real(fds, n, timeout_ms, fdslen);
	return poll(fds, n, timeout_ms);
}

INTR_LIBC_API int __ppoll_chk(struct pollfd *fds, nfds_t n,
			      const struct timespec *timeout,
			      const sigset_t *mask, size_t fdslen)
{
	__typeof__(&__ppoll_chk) real = REAL_OR(__typeof__(&__ppoll_chk),
						__ppoll_chk, -1);

	if (likely(!intr__libc_ctx()) || fdslen / sizeof(*fds) < n)
		return real(fds, n, timeout, mask, fdslen);
	return ppoll(fds, n, timeout, mask);
}

/* pselect6's sixth argument: the mask and its size. */
struct sigmask_arg {
	const sigset_t *mask;
	size_t size;
};

/*
 * select() as glibc makes it on Linux: the timeout normalised (microseconds
 * beyond a second carried into the seconds; negative values refused) and
 * given to pselect6, and the time left written back to the caller's
 * timeval, as Linux's select always did.
 */
INTR_LIBC_API int select(int n, fd_set *r, fd_set *w, fd_set *x,
			 struct timeval *timeout)
{
	intr_ctx *ctx = intr__libc_ctx();
	struct timespec ts, *tsp = NULL;
	bool libc;
	long ret;

	if (likely(!ctx))
		return REAL(__typeof__(&select), select)(n, r, w, x, timeout);
	if (timeout) {
		if (timeout->tv_sec < 0 || timeout->tv_usec < 0) {
			errno = EINVAL;
			return -1;
		}
		ts.tv_sec = timeout->tv_sec + timeout->tv_usec / 1000000;
		if (ts.tv_sec < timeout->tv_sec)	/* overflow */
			ts.tv_sec = (time_t)(~(uintmax_t)0 >> 1);
		ts.tv_nsec = (long)(timeout->tv_usec % 1000000) * 1000L;
		tsp = &ts;
	}
	ret = intr__libc_sc(ctx, &libc, SYS_pselect6, n, (long)r, (long)w,
			    (long)x, (long)tsp, 0);
	if (libc)
		return REAL(__typeof__(&select), select)(n, r, w, x, timeout);
	if (timeout) {
		timeout->tv_sec = ts.tv_sec;
		timeout->tv_usec = ts.tv_nsec / 1000;
	}
	return (int)intr__libc_ret(ret);
}

INTR_LIBC_API int pselect(int n, fd_set *r, fd_set *w, fd_set *x,
			  const struct timespec *timeout,
			  const sigset_t *mask)
{
	intr_ctx *ctx = intr__libc_ctx();
	struct timespec ts, *tsp = NULL;
	struct sigmask_arg arg;
	sigset_t open;
	bool libc;
	long ret;

	if (likely(!ctx))
		return REAL(__typeof__(&pselect), pselect)(n, r, w, x,
							   timeout, mask);
	/* pselect leaves the caller's timeout alone. */
	if (timeout) {
		ts = *timeout;
		tsp = &ts;
	}
	if (mask)
		intr__libc_open(&open, mask);
	arg.mask = mask ? &open : NULL;
	arg.size = INTR_LIBC_NSIG_BYTES;
	ret = intr__libc_sc(ctx, &libc, SYS_pselect6, n, (long)r, (long)w,
			    (long)x, (long)tsp, (long)&arg);
	if (libc)
		return REAL(__typeof__(&pselect), pselect)(n, r, w, x,
							   timeout, mask);
	return (int)intr__libc_ret(ret);
}

/* epoll_wait as epoll_pwait without a mask: aarch64 has only the latter. */
INTR_LIBC_API int epoll_wait(int epfd, struct epoll_event *ev, int max,
			     int timeout_ms)
{
	INTR_LIBC_ONE(epoll_wait, (epfd, ev, max, timeout_ms),
		      SYS_epoll_pwait, epfd, ev, max, timeout_ms, 0,
		      INTR_LIBC_NSIG_BYTES);
}

INTR_LIBC_API int epoll_pwait(int epfd, struct epoll_event *ev, int max,
			      int timeout_ms, const sigset_t *mask)
{
	intr_ctx *ctx = intr__libc_ctx();
	sigset_t open;
	bool libc;
	long r;

	if (likely(!ctx))
		return REAL(__typeof__(&epoll_pwait), epoll_pwait)(
			epfd, ev, max, timeout_ms, mask);
	if (mask)
		intr__libc_open(&open, mask);
	r = intr__libc_sc(ctx, &libc, SYS_epoll_pwait, epfd, (long)ev, max,
			  timeout_ms, (long)(mask ? &open : NULL),
			  INTR_LIBC_NSIG_BYTES);
	if (libc)
		return REAL(__typeof__(&epoll_pwait), epoll_pwait)(
			epfd, ev, max, timeout_ms, mask);
	return (int)intr__libc_ret(r);
}

#if defined(HAVE_EPOLL_PWAIT2) && defined(SYS_epoll_pwait2)
INTR_LIBC_API int epoll_pwait2(int epfd, struct epoll_event *ev, int max,
			       const struct timespec *timeout,
			       const sigset_t *mask)
{
	__typeof__(&epoll_pwait2) real = REAL_OR(__typeof__(&epoll_pwait2),
						 epoll_pwait2, -1);
	intr_ctx *ctx = intr__libc_ctx();
	sigset_t open;
	bool libc;
	long r;

	if (likely(!ctx))
		return real(epfd, ev, max, timeout, mask);
	if (mask)
		intr__libc_open(&open, mask);
	r = intr__libc_sc(ctx, &libc, SYS_epoll_pwait2, epfd, (long)ev, max,
			  (long)timeout, (long)(mask ? &open : NULL),
			  INTR_LIBC_NSIG_BYTES);
	if (libc)
		return real(epfd, ev, max, timeout, mask);
	return (int)intr__libc_ret(r);
}
#endif

/* ------------------------------------------------------------ time */

/*
 * clock_nanosleep(), the kernel way: CPU-time clocks are glibc's business
 * (the thread's own is refused, the process's becomes the kernel's clock id
 * for it); the time left is written only when the sleep was interrupted.
 * Returns 0 or an error number, never -1.
 */
#define PROCESS_CPUCLOCK_SCHED ((clockid_t)-6)	/* pid 0, CPUCLOCK_SCHED */

static int sleep_body(intr_ctx *ctx, clockid_t clock, int flags,
		      const struct timespec *req, struct timespec *rem,
		      bool *libc)
{
	/* Written by the kernel when it took the call and was interrupted;
	 * a tv_nsec of -1 says it did not take it (the cancel came first). */
	struct timespec left = { .tv_sec = 0, .tv_nsec = -1 };
	long r;

	*libc = false;
	if (clock == CLOCK_THREAD_CPUTIME_ID)
		return EINVAL;
	if (clock == CLOCK_PROCESS_CPUTIME_ID)
		clock = PROCESS_CPUCLOCK_SCHED;
	r = intr__libc_sc(ctx, libc, SYS_clock_nanosleep, clock, flags,
			  (long)req, (long)&left, 0, 0);
	if (*libc)
		return 0;
	if (r == -EINTR && rem && !(flags & TIMER_ABSTIME))
		*rem = left.tv_nsec >= 0 ? left : *req;
	return (int)-r;
}

INTR_LIBC_API int clock_nanosleep(clockid_t clock, int flags,
				  const struct timespec *req,
				  struct timespec *rem)
{
	intr_ctx *ctx = intr__libc_ctx();
	bool libc;
	int r;

	if (likely(!ctx))
		return REAL(__typeof__(&clock_nanosleep), clock_nanosleep)(
			clock, flags, req, rem);
	r = sleep_body(ctx, clock, flags, req, rem, &libc);
	if (libc)
		return REAL(__typeof__(&clock_nanosleep), clock_nanosleep)(
			clock, flags, req, rem);
	return r;
}

INTR_LIBC_API int nanosleep(const struct timespec *req, struct timespec *rem)
{
	intr_ctx *ctx = intr__libc_ctx();
	bool libc;
	int r;

	if (likely(!ctx))
		return REAL(__typeof__(&nanosleep), nanosleep)(req, rem);
	r = sleep_body(ctx, CLOCK_REALTIME, 0, req, rem, &libc);
	if (libc)
		return REAL(__typeof__(&nanosleep), nanosleep)(req, rem);
	if (r) {
		errno = r;
		return -1;
	}
	return 0;
}

INTR_LIBC_API int usleep(useconds_t us)
{
	struct timespec ts = {
		.tv_sec = (time_t)(us / 1000000),
		.tv_nsec = (long)(us % 1000000) * 1000L,
	};
	intr_ctx *ctx = intr__libc_ctx();
	bool libc;
	int r;

	if (likely(!ctx))
		return REAL(__typeof__(&usleep), usleep)(us);
	r = sleep_body(ctx, CLOCK_REALTIME, 0, &ts, NULL, &libc);
	if (libc)
		return REAL(__typeof__(&usleep), usleep)(us);
	if (r) {
		errno = r;
		return -1;
	}
	return 0;
}

/*
 * sleep() returns the whole seconds it did not sleep when a signal cut it
 * short, never -1: stopped by the cancel it returns that count the first
 * time (what the signal alone gives) and 0 afterwards, with errno ECANCELED
 * or ETIMEDOUT, so that "while ((left = sleep(left)))" ends.
 */
INTR_LIBC_API unsigned int sleep(unsigned int seconds)
{
	intr_ctx *ctx = intr__libc_ctx();
	struct timespec ts, left;
	bool libc;
	int e;
	long r;

	if (likely(!ctx))
		return REAL(__typeof__(&sleep), sleep)(seconds);
	e = errno;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = 0;
	left = ts;	/* the kernel writes it only if it took the call */
	r = intr__libc_sc(ctx, &libc, SYS_clock_nanosleep, CLOCK_REALTIME, 0,
			  (long)&ts, (long)&left, 0, 0);
	if (libc)
		return REAL(__typeof__(&sleep), sleep)(seconds);
	if (r == -EINTR) {
		errno = EINTR;
		return (unsigned int)left.tv_sec;
	}
	if (r < 0)
		errno = (int)-r;	/* the reason */
	else
		errno = e;
	return 0;
}

/* ------------------------------------------------------------ children */

INTR_LIBC_API pid_t wait4(pid_t pid, int *status, int options,
			  struct rusage *ru)
{
	INTR_LIBC_ONE(wait4, (pid, status, options, ru), SYS_wait4, pid,
		      status, options, ru, 0, 0);
}

INTR_LIBC_API pid_t waitpid(pid_t pid, int *status, int options)
{
	INTR_LIBC_ONE(waitpid, (pid, status, options), SYS_wait4, pid, status,
		      options, 0, 0, 0);
}

INTR_LIBC_API pid_t wait(int *status)
{
	INTR_LIBC_ONE(wait, (status), SYS_wait4, -1, status, 0, 0, 0, 0);
}

INTR_LIBC_API int waitid(idtype_t idtype, id_t id, siginfo_t *info,
			 int options)
{
	INTR_LIBC_ONE(waitid, (idtype, id, info, options), SYS_waitid, idtype,
		      id, info, options, 0, 0);
}
