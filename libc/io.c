/* SPDX-License-Identifier: MIT */
/*
 * Reads, writes and sockets: one system call each, as libc makes them
 * (recv and send are recvfrom and sendto without an address), and the
 * _FORTIFY_SOURCE variants that code built with it calls instead.
 */
#include "config.h"
#undef _FORTIFY_SOURCE

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

INTR_LIBC_API ssize_t read(int fd, void *buf, size_t n)
{
	INTR_LIBC_ONE(read, (fd, buf, n), SYS_read, fd, buf, n, 0, 0, 0);
}

INTR_LIBC_API ssize_t readv(int fd, const struct iovec *iov, int n)
{
	INTR_LIBC_ONE(readv, (fd, iov, n), SYS_readv, fd, iov, n, 0, 0, 0);
}

INTR_LIBC_API ssize_t write(int fd, const void *buf, size_t n)
{
	INTR_LIBC_ONE(write, (fd, buf, n), SYS_write, fd, buf, n, 0, 0, 0);
}

INTR_LIBC_API ssize_t writev(int fd, const struct iovec *iov, int n)
{
	INTR_LIBC_ONE(writev, (fd, iov, n), SYS_writev, fd, iov, n, 0, 0, 0);
}

INTR_LIBC_API ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	INTR_LIBC_ONE(recv, (fd, buf, n, flags), SYS_recvfrom, fd, buf, n,
		      flags, 0, 0);
}

INTR_LIBC_API ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
			       struct sockaddr *addr, socklen_t *len)
{
	INTR_LIBC_ONE(recvfrom, (fd, buf, n, flags, addr, len), SYS_recvfrom,
		      fd, buf, n, flags, addr, len);
}

INTR_LIBC_API ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	INTR_LIBC_ONE(recvmsg, (fd, msg, flags), SYS_recvmsg, fd, msg, flags,
		      0, 0, 0);
}

INTR_LIBC_API ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	INTR_LIBC_ONE(send, (fd, buf, n, flags), SYS_sendto, fd, buf, n,
		      flags, 0, 0);
}

INTR_LIBC_API ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			     const struct sockaddr *addr, socklen_t len)
{
	INTR_LIBC_ONE(sendto, (fd, buf, n, flags, addr, len), SYS_sendto, fd,
		      buf, n, flags, addr, len);
}

INTR_LIBC_API ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	INTR_LIBC_ONE(sendmsg, (fd, msg, flags), SYS_sendmsg, fd, msg, flags,
		      0, 0, 0);
}

INTR_LIBC_API int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	INTR_LIBC_ONE(accept, (fd, addr, len), SYS_accept4, fd, addr, len, 0,
		      0, 0);
}

INTR_LIBC_API int accept4(int fd, struct sockaddr *addr, socklen_t *len,
			  int flags)
{
	INTR_LIBC_ONE(accept4, (fd, addr, len, flags), SYS_accept4, fd, addr,
		      len, flags, 0, 0);
}

INTR_LIBC_API int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	INTR_LIBC_ONE(connect, (fd, addr, len), SYS_connect, fd, addr, len, 0,
		      0, 0);
}

/*
 * _FORTIFY_SOURCE: the buffer's size comes along, and libc aborts when the
 * call would overrun it.  Inside a body the check is libc's own (its
 * function is called when the size is wrong, and aborts); then the call is
 * the plain one.
 */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       struct sockaddr *addr, socklen_t *len);

INTR_LIBC_API ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	__typeof__(&__read_chk) real = REAL_OR(__typeof__(&__read_chk),
					       __read_chk, -1);

	if (likely(!intr__libc_ctx()) || n > buflen)
		return real(fd, buf, n, buflen);
	return read(fd, buf, n);
}

INTR_LIBC_API ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen,
				 int flags)
{
	__typeof__(&__recv_chk) real = REAL_OR(__typeof__(&__recv_chk),
					       __recv_chk, -1);

	if (likely(!intr__libc_ctx()) || n > buflen)
		return real(fd, buf, n, buflen, flags);
	return recv(fd, buf, n, flags);
}

INTR_LIBC_API ssize_t __recvfrom_chk(int fd, void *buf, size_t n,
				     size_t buflen, int flags,
				     struct sockaddr *addr, socklen_t *len)
{
	__typeof__(&__recvfrom_chk) real =
		REAL_OR(__typeof__(&__recvfrom_chk), __recvfrom_chk, -1);

	if (likely(!intr__libc_ctx()) || n > buflen)
		return real(fd, buf, n, buflen, flags, addr, len);
	return recvfrom(fd, buf, n, flags, addr, len);
}
