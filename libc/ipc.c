/* SPDX-License-Identifier: MIT */
/*
 * Message queues and semaphores, POSIX and System V.
 *
 * sem_wait and its timed variants are futex loops in libc, with no system
 * call of their own to put in the window and a layout of sem_t that is
 * libc's business.  In a body they check the cancel, run libc's loop, and
 * turn its EINTR into the stop when the call is cancelled: glibc's loop
 * returns EINTR when a signal interrupts its futex wait.  A cancel landing
 * between the check and the futex wait is caught by the library's re-send
 * of the signal (resend_us later, 1 ms by default).
 */
#include "config.h"
#undef _FORTIFY_SOURCE

#include <mqueue.h>
#include <semaphore.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <time.h>

#include "internal.h"

INTR_LIBC_API ssize_t mq_receive(mqd_t q, char *msg, size_t n,
				 unsigned int *prio)
{
	INTR_LIBC_ONE(mq_receive, (q, msg, n, prio), SYS_mq_timedreceive, q,
		      msg, n, prio, 0, 0);
}

INTR_LIBC_API ssize_t mq_timedreceive(mqd_t q, char *msg, size_t n,
				      unsigned int *prio,
				      const struct timespec *abs)
{
	INTR_LIBC_ONE(mq_timedreceive, (q, msg, n, prio, abs),
		      SYS_mq_timedreceive, q, msg, n, prio, abs, 0);
}

INTR_LIBC_API ssize_t msgrcv(int id, void *msg, size_t n, long type, int flags)
{
	INTR_LIBC_ONE(msgrcv, (id, msg, n, type, flags), SYS_msgrcv, id, msg,
		      n, type, flags, 0);
}

INTR_LIBC_API int semop(int id, struct sembuf *ops, size_t n)
{
	INTR_LIBC_ONE(semop, (id, ops, n), SYS_semtimedop, id, ops, n, 0, 0,
		      0);
}

INTR_LIBC_API int semtimedop(int id, struct sembuf *ops, size_t n,
			     const struct timespec *timeout)
{
	INTR_LIBC_ONE(semtimedop, (id, ops, n, timeout), SYS_semtimedop, id,
		      ops, n, timeout, 0, 0);
}

/* Before libc's loop: 0 to go on, else -1 with errno set to the stop. */
static int sem_before(intr_ctx *ctx)
{
	int stop = intr__libc_check(ctx);

	if (!stop)
		return 0;
	errno = -stop;
	return -1;
}

/* After it: its EINTR is the stop if the call is cancelled. */
static int sem_after(intr_ctx *ctx, int r)
{
	int stop;

	if (r == 0 || errno != EINTR)
		return r;
	stop = intr__libc_check(ctx);
	if (stop)
		errno = -stop;
	return r;
}

INTR_LIBC_API int sem_wait(sem_t *s)
{
	intr_ctx *ctx = intr__libc_ctx();

	if (likely(!ctx))
		return REAL(__typeof__(&sem_wait), sem_wait)(s);
	if (sem_before(ctx))
		return -1;
	return sem_after(ctx, REAL(__typeof__(&sem_wait), sem_wait)(s));
}

INTR_LIBC_API int sem_timedwait(sem_t *s, const struct timespec *abs)
{
	intr_ctx *ctx = intr__libc_ctx();

	if (likely(!ctx))
		return REAL(__typeof__(&sem_timedwait), sem_timedwait)(s, abs);
	if (sem_before(ctx))
		return -1;
	return sem_after(ctx, REAL(__typeof__(&sem_timedwait),
				   sem_timedwait)(s, abs));
}

#ifdef HAVE_SEM_CLOCKWAIT
INTR_LIBC_API int sem_clockwait(sem_t *s, clockid_t clock,
				const struct timespec *abs)
{
	__typeof__(&sem_clockwait) real = REAL_OR(__typeof__(&sem_clockwait),
						  sem_clockwait, -1);
	intr_ctx *ctx = intr__libc_ctx();

	if (likely(!ctx))
		return real(s, clock, abs);
	if (sem_before(ctx))
		return -1;
	return sem_after(ctx, real(s, clock, abs));
}
#endif
