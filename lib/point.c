/* SPDX-License-Identifier: MIT */
/*
 * The entry points of libinterruptible-libc (libc/), the library that
 * makes libc's blocking functions cancellation points inside bodies.  They
 * are exported under the version node INTERRUPTIBLE_PRIVATE, are not
 * declared in any installed header and are not for applications: their
 * only caller is libinterruptible-libc of the same release.
 *
 *   intr__libc_ctx()       the ctx of the body running on this thread, or
 *                          NULL: outside bodies (and in finalizers, wake-up
 *                          actions, context hooks: intr__in_body is set
 *                          around the body proper only, call.c) the
 *                          interposed functions are libc's own.  So they
 *                          are in a signal handler that runs over one of
 *                          the window's passes (intr__sc_active): a point
 *                          there would pass through the window inside the
 *                          window, and leaving the inner pass would end
 *                          the outer one (syscall.c, window_leave).  A
 *                          handler that runs over the body proper is the
 *                          body, for its points as for the signal.  This
 *                          is the whole cost of the interposition outside
 *                          bodies: a call, two TLS loads and compares.
 *   intr__libc_syscall()   one pass through the system call window for that
 *                          body: the kernel's result, or INTR__LIBC_STOP
 *                          when the window's cancel exit was taken (the
 *                          call is cancelled and the kernel never saw the
 *                          system call).  A wait the cancel's signal
 *                          interrupted returns -EINTR, as any other
 *                          signal's does; the caller tells them apart by
 *                          the call's reason.  Nothing is acknowledged.
 *   intr__libc_stop()      what a function stopped by the cancel reports:
 *                          -EINTR the first time in a call, which is what
 *                          the signal alone would have made it return, so
 *                          code that gives up on EINTR (zeromq asserts that
 *                          poll() fails with nothing else) sees what it
 *                          always saw; the reason (-ECANCELED, -ETIMEDOUT)
 *                          every later time, so a loop that retries EINTR
 *                          ends on its next turn.  0 if the call is not
 *                          cancelled.  Nothing is acknowledged: the code
 *                          stopped may be a signal handler, or a library
 *                          that goes on to block where no point is, and
 *                          the re-sends must go on until the body itself
 *                          acknowledges (intr_cancelled()) or returns.
 *   intr__libc_signal()    the interrupt signal, which the interposed
 *                          functions keep out of the masks and sets they
 *                          are given in bodies (sigsuspend, ppoll,
 *                          sigwaitinfo, ...).
 */
#include "config.h"

#include <errno.h>

#include "internal.h"
#include "point.h"

/* The cookie of the last call whose stop was reported as EINTR on this
 * thread.  Cookies are never reused within a process. */
static INTR_TLS uint64_t told;

INTR_API intr_ctx *intr__libc_ctx(void)
{
	struct intr_task *t = intr__current;

	if (!t || !intr__in_body || intr__sc_active)
		return NULL;
	return (intr_ctx *)t->ctx;
}

INTR_API long intr__libc_syscall(intr_ctx *ctx, long nr, long a1, long a2,
				 long a3, long a4, long a5, long a6)
{
	struct intr_task *t = intr__body_of(ctx);
	struct intr__sc_ret r;

	if (!t)
		return -EINVAL;
	r = intr__sc_pass(t, nr, a1, a2, a3, a4, a5, a6);
	/* The window takes its cancel exit only with the reason set. */
	if (r.exited)
		return INTR__LIBC_STOP;
	return r.ret;
}

INTR_API int intr__libc_stop(intr_ctx *ctx)
{
	struct intr_task *t = intr__body_of(ctx);

	if (!t || !atomic_load(&t->tok.reason))
		return 0;
	if (told != t->cookie) {
		told = t->cookie;
		return -EINTR;
	}
	return atomic_load(&t->tok.reason);
}

INTR_API int intr__libc_signal(void)
{
	return intr__signo;
}
