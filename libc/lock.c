/* SPDX-License-Identifier: MIT */
/*
 * File locks: flock(), and the waits of fcntl() (F_SETLKW, F_OFD_SETLKW)
 * and of lockf() (F_LOCK, which is F_SETLKW on the rest of the file).
 * Every other fcntl() and lockf() command does not block and is libc's,
 * in bodies too.
 */
#include "config.h"
#undef _FORTIFY_SOURCE

#include <fcntl.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

INTR_LIBC_API int flock(int fd, int op)
{
	INTR_LIBC_ONE(flock, (fd, op), SYS_flock, fd, op, 0, 0, 0, 0);
}

static bool waits(int cmd)
{
	return cmd == F_SETLKW || cmd == F_OFD_SETLKW || cmd == F_SETLKW64;
}

#if __SIZEOF_LONG__ == 8
/* 64-bit ABIs: one fcntl system call takes every lock command, and struct
 * flock is struct flock64. */
#define LOCK_SYSCALL 1
#else
/* 32-bit ABIs: libc picks fcntl64 and converts; here the wait is libc's
 * own, checked before and translated after (a cancel landing just before
 * the wait is caught by the re-send). */
#define LOCK_SYSCALL 0
#endif

/* A lock wait in a body.  *libc: call libc's function instead. */
static int lock_body(intr_ctx *ctx, int fd, int cmd, void *arg, bool *libc)
{
#if LOCK_SYSCALL
	return (int)intr__libc_ret(intr__libc_sc(ctx, libc, SYS_fcntl, fd, cmd,
						 (long)arg, 0, 0, 0));
#else
	int r = intr__libc_check(ctx);

	*libc = !r;
	if (r) {
		errno = -r;
		return -1;
	}
	return 0;
#endif
}

#if !LOCK_SYSCALL
/* After libc's wait: its EINTR, if the call is cancelled, is the stop. */
static int lock_after(intr_ctx *ctx, int r)
{
	int stop;

	if (r >= 0 || errno != EINTR)
		return r;
	stop = intr__libc_check(ctx);
	if (stop)
		errno = -stop;
	return -1;
}
#else
#define lock_after(ctx, r) (r)
#endif

typedef int (*fcntl_fn)(int, int, ...);

/* libc reads the third argument as a pointer whatever the command; so
 * does this. */
static int fcntl_point(fcntl_fn real, int fd, int cmd, void *arg)
{
	intr_ctx *ctx = intr__libc_ctx();
	bool libc;
	int r;

	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	if (likely(!ctx) || !waits(cmd))
		return real(fd, cmd, arg);
	r = lock_body(ctx, fd, cmd, arg, &libc);
	if (libc)
		return lock_after(ctx, real(fd, cmd, arg));
	return r;
}

INTR_LIBC_API int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_point(REAL(fcntl_fn, fcntl), fd, cmd, arg);
}

INTR_LIBC_API int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_point(REAL(fcntl_fn, fcntl64), fd, cmd, arg);
}

/* lockf(F_LOCK) is F_SETLKW on the rest of the file from the offset.
 * *libc: call libc's lockf instead (another command, or no window). */
static int lockf_point(int fd, int cmd, off64_t len, bool *libc)
{
	struct flock64 fl = {
		.l_type = F_WRLCK, .l_whence = SEEK_CUR, .l_len = len,
	};
	intr_ctx *ctx = intr__libc_ctx();

	*libc = true;
	if (likely(!ctx) || cmd != F_LOCK)
		return 0;
	return lock_body(ctx, fd, F_SETLKW64, &fl, libc);
}

INTR_LIBC_API int lockf(int fd, int cmd, off_t len)
{
	__typeof__(&lockf) real = REAL_OR(__typeof__(&lockf), lockf, -1);
	bool libc;
	int r = lockf_point(fd, cmd, len, &libc);

	if (!libc)
		return r;
	return cmd == F_LOCK ? lock_after(intr__libc_ctx(), real(fd, cmd, len)) :
			       real(fd, cmd, len);
}

INTR_LIBC_API int lockf64(int fd, int cmd, off64_t len)
{
	__typeof__(&lockf64) real = REAL_OR(__typeof__(&lockf64), lockf64, -1);
	bool libc;
	int r = lockf_point(fd, cmd, len, &libc);

	if (!libc)
		return r;
	return cmd == F_LOCK ? lock_after(intr__libc_ctx(), real(fd, cmd, len)) :
			       real(fd, cmd, len);
}
