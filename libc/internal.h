/* SPDX-License-Identifier: MIT */
/*
 * libinterruptible-libc: libc's blocking functions as cancellation points
 * inside bodies.  Shared declarations of the files of libc/.
 *
 * Every interposed function starts the same way: intr__libc_ctx() says
 * whether a body runs on this thread.  Outside bodies (any thread that is
 * not a worker, a worker's finalizers, wake-up actions and context hooks,
 * and a signal handler that runs over one of our own system calls) the
 * function is libc's own, called through the pointer that dlsym(RTLD_NEXT)
 * gave: same results, same errno, same pthread cancellation.  Inside a
 * body it makes the system call through the library's window
 * (lib/point.c), so a cancel landing just before the kernel takes the
 * call is never lost, and fails the way lib/point.c says (EINTR the first
 * time in a call, then ECANCELED or ETIMEDOUT, without acknowledging) once
 * the call is cancelled.  While the thread's pthread cancellation state is
 * PTHREAD_CANCEL_DISABLE nothing is a cancellation point, ours included:
 * the function is libc's again, whatever the call's state.
 *
 * A few functions are not a system call in libc either (sem_wait is a
 * futex loop, sleep a nanosleep): those check the cancel, call libc's own
 * and translate its EINTR; a cancel landing between the check and the
 * futex wait is caught by the library's re-send of the signal.
 */
#ifndef INTR_LIBC_INTERNAL_H
#define INTR_LIBC_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "point.h"

/* The interposed functions; everything else is hidden. */
#define INTR_LIBC_API __attribute__((visibility("default")))

#define likely(x)	__builtin_expect(!!(x), 1)

/*
 * libc's own functions, resolved with dlsym(RTLD_NEXT) when the library is
 * loaded (real.c), or on first use if code in another library's
 * constructor calls one before that.  NULL for a function this libc does
 * not have: the interposed function then fails with ENOSYS.
 */
#define INTR_LIBC_FUNCS(X) \
	X(read) X(readv) X(write) X(writev) \
	X(recv) X(recvfrom) X(recvmsg) X(send) X(sendto) X(sendmsg) \
	X(accept) X(accept4) X(connect) \
	X(poll) X(ppoll) X(select) X(pselect) \
	X(epoll_wait) X(epoll_pwait) X(epoll_pwait2) \
	X(nanosleep) X(clock_nanosleep) X(usleep) X(sleep) \
	X(waitpid) X(wait4) X(waitid) X(wait) \
	X(sigwaitinfo) X(sigtimedwait) X(sigwait) X(pause) X(sigsuspend) \
	X(flock) X(fcntl) X(fcntl64) X(lockf) X(lockf64) \
	X(mq_receive) X(mq_timedreceive) X(msgrcv) X(semop) X(semtimedop) \
	X(sem_wait) X(sem_timedwait) X(sem_clockwait) \
	X(__read_chk) X(__recv_chk) X(__recvfrom_chk) X(__poll_chk) \
	X(__ppoll_chk)

#define INTR_LIBC_FIELD(name) _Atomic(void *) name;
struct intr_libc_real {
	INTR_LIBC_FUNCS(INTR_LIBC_FIELD)
};
#undef INTR_LIBC_FIELD

extern struct intr_libc_real intr__real;

/* Resolve libc's function name into *slot; NULL if it has none. */
void *intr__libc_resolve(const char *name, _Atomic(void *) *slot);

/* libc's function f as a pointer of type T.  Relaxed: a slot only ever
 * goes from NULL to the one value dlsym gives. */
#define REAL(T, f) ({ \
	void *real_p__ = atomic_load_explicit(&intr__real.f, \
					      memory_order_relaxed); \
	(T)(likely(real_p__) ? real_p__ : \
	    intr__libc_resolve(#f, &intr__real.f)); })

/* libc's function f, or fail with ENOSYS (ret) if it has none. */
#define REAL_OR(T, f, fail) ({ \
	T real_fn__ = REAL(T, f); \
	if (!real_fn__) { \
		errno = ENOSYS; \
		return fail; \
	} \
	real_fn__; })

/* True while this thread's pthread cancellation state is DISABLE. */
static inline bool intr__libc_masked(void)
{
	int old;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	if (old == PTHREAD_CANCEL_DISABLE)
		return true;
	pthread_setcancelstate(old, NULL);
	return false;
}

/*
 * In a body: the system call through the window.  Returns the kernel's
 * result (>= 0, or -errno), or what to report if the call is cancelled
 * (-EINTR the first time, then the reason: lib/point.c).  While the
 * thread has cancellation disabled the call is libc's: an interruption is
 * its EINTR, and when the window did not make the system call at all *libc
 * is set and the caller calls libc's function, exactly as outside a body.
 */
static inline long intr__libc_sc(intr_ctx *ctx, bool *libc, long nr, long a1,
				 long a2, long a3, long a4, long a5, long a6)
{
	long r;

	*libc = false;
	r = intr__libc_syscall(ctx, nr, a1, a2, a3, a4, a5, a6);
	if (likely(r != INTR__LIBC_STOP && r != -EINTR))
		return r;
	if (r == -EINTR && !intr_reason(ctx))
		return r;	/* another signal's */
	if (intr__libc_masked()) {
		*libc = r == INTR__LIBC_STOP;
		return r == INTR__LIBC_STOP ? 0 : r;
	}
	return intr__libc_stop(ctx);
}

/* The same for a function that is not one system call: 0 while the body
 * may go on (not cancelled, or cancellation disabled), else what to
 * report (-EINTR or the reason). */
static inline int intr__libc_check(intr_ctx *ctx)
{
	if (likely(!intr_reason(ctx)) || intr__libc_masked())
		return 0;
	return intr__libc_stop(ctx);
}

/* A kernel-style result as libc returns it: -1 and errno, or the value. */
static inline long intr__libc_ret(long r)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

/*
 * The whole of an interposed function that is one system call in libc:
 * libc's own outside bodies, the window inside.  args is the parenthesised
 * argument list for libc's function, then the system call and its
 * arguments.
 */
#define INTR_LIBC_ONE(name, args, nr, a1, a2, a3, a4, a5, a6) do { \
	intr_ctx *ctx__ = intr__libc_ctx(); \
	bool libc__; \
	long r__; \
	if (likely(!ctx__)) \
		return REAL(__typeof__(&name), name) args; \
	r__ = intr__libc_sc(ctx__, &libc__, nr, (long)(a1), (long)(a2), \
			    (long)(a3), (long)(a4), (long)(a5), (long)(a6)); \
	if (libc__) \
		return REAL(__typeof__(&name), name) args; \
	return intr__libc_ret(r__); \
} while (0)

/* The kernel's signal set size (8 bytes on Linux's 64-bit ABIs). */
#define INTR_LIBC_NSIG_BYTES (_NSIG / 8)

/* *set without the interrupt signal: a body's waits must let the cancel
 * in, and must not consume it as a waited-for signal. */
static inline void intr__libc_open(sigset_t *out, const sigset_t *set)
{
	*out = *set;
	sigdelset(out, intr__libc_signal());
}

#endif /* INTR_LIBC_INTERNAL_H */
