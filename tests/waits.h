/* SPDX-License-Identifier: MIT */
/*
 * Blocking waits, one per entry: what it takes to make the call block
 * (setup), the call itself as libc's caller sees it (-1 and errno, or a
 * result), and the clean-up.  tests/raw-waits stops each with the README's
 * plain idiom; tests/libc-points stops the interposed ones inside a loop
 * that retries EINTR forever, as third-party code does.
 *
 * Every call blocks until the test cancels it: nothing else ever arrives.
 * A setup that the system refuses (no message queues in this container)
 * returns a reason, and the case is skipped with it.
 */
#ifndef INTR_TEST_WAITS_H
#define INTR_TEST_WAITS_H

#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

struct wait_env {
	int fd[2];		/* a pipe or a socket pair */
	int lfd;		/* a listener, a lock holder, an epoll fd */
	int cfd;		/* a connecting socket */
	pid_t child;
	mqd_t mq;
	int ipc;
	sem_t sem;
	FILE *fp;
	char path[108];
	char buf[256];
	int spare[4];		/* fds that fill a backlog */
#ifdef HAVE_LIBURING
	struct io_uring ring;
#endif
};

struct wait_case {
	const char *name;
	/* NULL when it worked, else why it cannot run here. */
	const char *(*setup)(struct wait_env *e);
	long (*call)(struct wait_env *e);
	void (*teardown)(struct wait_env *e);
	bool interposed;	/* libinterruptible-libc makes it a point */
	bool restarts;		/* libc retries EINTR: the signal alone does
				   not end it */
	bool masks;		/* its mask blocks the interrupt signal: the
				   signal alone cannot reach it */
};

/* ------------------------------------------------------------ setups */

static const char *w_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	return t && *t ? t : "/tmp";
}

static const char *w_pipe(struct wait_env *e)
{
	return pipe2(e->fd, O_CLOEXEC) ? "pipe2" : NULL;
}

static void w_close2(struct wait_env *e)
{
	close(e->fd[0]);
	close(e->fd[1]);
}

/* A pipe whose buffer is full: a write blocks. */
static const char *w_full_pipe(struct wait_env *e)
{
	char b[4096];
	int fl;

	if (pipe2(e->fd, O_CLOEXEC))
		return "pipe2";
	fl = fcntl(e->fd[1], F_GETFL);
	fcntl(e->fd[1], F_SETFL, fl | O_NONBLOCK);
	memset(b, 'x', sizeof(b));
	while (write(e->fd[1], b, sizeof(b)) > 0)
		;
	while (write(e->fd[1], b, 1) > 0)
		;
	fcntl(e->fd[1], F_SETFL, fl);
	return NULL;
}

static const char *w_socketpair(struct wait_env *e)
{
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, e->fd) ?
		"socketpair" : NULL;
}

/* A socket pair whose send buffer is full: a send blocks. */
static const char *w_full_socket(struct wait_env *e)
{
	char b[4096];
	int size = 4096;

	if (w_socketpair(e))
		return "socketpair";
	setsockopt(e->fd[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	memset(b, 'x', sizeof(b));
	while (send(e->fd[1], b, sizeof(b), MSG_DONTWAIT) > 0)
		;
	while (send(e->fd[1], b, 1, MSG_DONTWAIT) > 0)
		;
	return NULL;
}

static struct sockaddr_un w_unix_addr(struct wait_env *e)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	snprintf(e->path, sizeof(e->path), "%s/intr-w-%d-%p", w_tmpdir(),
		 (int)getpid(), (void *)e);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", e->path);
	return a;
}

/* A listening Unix socket nobody connects to: accept blocks. */
static const char *w_listener(struct wait_env *e)
{
	struct sockaddr_un a = w_unix_addr(e);

	e->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (e->lfd < 0)
		return "socket";
	unlink(e->path);
	if (bind(e->lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(e->lfd, 0)) {
		close(e->lfd);
		return "bind/listen";
	}
	return NULL;
}

static void w_listener_end(struct wait_env *e)
{
	close(e->lfd);
	unlink(e->path);
}

/* A Unix listener whose backlog is full: a blocking connect waits for
 * room that never comes. */
static const char *w_full_backlog(struct wait_env *e)
{
	struct sockaddr_un a;
	int i, s;

	for (i = 0; i < 4; i++)
		e->spare[i] = -1;
	if (w_listener(e))
		return "listener";
	a = w_unix_addr(e);
	for (i = 0; i < 4; i++) {
		s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			   0);
		if (s < 0)
			break;
		if (connect(s, (struct sockaddr *)&a, sizeof(a))) {
			close(s);
			break;
		}
		e->spare[i] = s;
	}
	e->cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	return e->cfd < 0 ? "socket" : NULL;
}

static void w_full_backlog_end(struct wait_env *e)
{
	int i;

	for (i = 0; i < 4; i++)
		if (e->spare[i] >= 0)
			close(e->spare[i]);
	close(e->cfd);
	w_listener_end(e);
}

static const char *w_epoll(struct wait_env *e)
{
	struct epoll_event ev = { .events = EPOLLIN };

	if (w_pipe(e))
		return "pipe2";
	e->lfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->lfd < 0 || epoll_ctl(e->lfd, EPOLL_CTL_ADD, e->fd[0], &ev))
		return "epoll";
	return NULL;
}

static void w_epoll_end(struct wait_env *e)
{
	close(e->lfd);
	w_close2(e);
}

/* A child that waits for its end: waitpid and friends block. */
static const char *w_child(struct wait_env *e)
{
	e->child = fork();
	if (e->child < 0)
		return "fork";
	if (!e->child) {
		for (;;)
			pause();
	}
	return NULL;
}

static void w_child_end(struct wait_env *e)
{
	kill(e->child, SIGKILL);
	while (waitpid(e->child, NULL, 0) < 0 && errno == EINTR)
		;
}

/* A file write-locked through one open file description with an OFD lock,
 * which conflicts with OFD and with process-owned locks alike, even within
 * one process; and a second open file description to wait on. */
static const char *w_locked(struct wait_env *e)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	snprintf(e->path, sizeof(e->path), "%s/intr-lock-%d-%p", w_tmpdir(),
		 (int)getpid(), (void *)e);
	e->lfd = open(e->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (e->lfd < 0)
		return "open";
	e->cfd = open(e->path, O_RDWR | O_CLOEXEC);
	if (e->cfd < 0 || fcntl(e->lfd, F_OFD_SETLK, &fl)) {
		close(e->lfd);
		return "F_OFD_SETLK";
	}
	return NULL;
}

/* The same file held with flock(). */
static const char *w_flocked(struct wait_env *e)
{
	snprintf(e->path, sizeof(e->path), "%s/intr-flock-%d-%p", w_tmpdir(),
		 (int)getpid(), (void *)e);
	e->lfd = open(e->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (e->lfd < 0)
		return "open";
	e->cfd = open(e->path, O_RDWR | O_CLOEXEC);
	if (e->cfd < 0 || flock(e->lfd, LOCK_EX)) {
		close(e->lfd);
		return "flock";
	}
	return NULL;
}

static void w_locked_end(struct wait_env *e)
{
	close(e->cfd);
	close(e->lfd);
	unlink(e->path);
}

static const char *w_mq(struct wait_env *e)
{
	struct mq_attr at = { .mq_maxmsg = 1, .mq_msgsize = 64 };

	snprintf(e->path, sizeof(e->path), "/intr-w-%d-%p", (int)getpid(),
		 (void *)e);
	e->mq = mq_open(e->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600,
			&at);
	return e->mq == (mqd_t)-1 ? "no POSIX message queues here" : NULL;
}

static void w_mq_end(struct wait_env *e)
{
	mq_close(e->mq);
	mq_unlink(e->path);
}

static const char *w_msg(struct wait_env *e)
{
	e->ipc = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	return e->ipc < 0 ? "no System V message queues here" : NULL;
}

static void w_msg_end(struct wait_env *e)
{
	msgctl(e->ipc, IPC_RMID, NULL);
}

static const char *w_sysv_sem(struct wait_env *e)
{
	e->ipc = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
	return e->ipc < 0 ? "no System V semaphores here" : NULL;
}

static void w_sysv_sem_end(struct wait_env *e)
{
	semctl(e->ipc, 0, IPC_RMID);
}

static const char *w_sem(struct wait_env *e)
{
	return sem_init(&e->sem, 0, 0) ? "sem_init" : NULL;
}

static void w_sem_end(struct wait_env *e)
{
	sem_destroy(&e->sem);
}

static const char *w_fifo(struct wait_env *e)
{
	int fd;

	snprintf(e->path, sizeof(e->path), "%s/intr-fifo-%d-%p", w_tmpdir(),
		 (int)getpid(), (void *)e);
	unlink(e->path);
	if (mkfifo(e->path, 0600))
		return "mkfifo";
	/* Read and write: the open does not wait for a writer. */
	fd = open(e->path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return "open";
	e->fp = fdopen(fd, "r");
	if (!e->fp) {
		close(fd);
		return "fdopen";
	}
	return NULL;
}

static void w_fifo_end(struct wait_env *e)
{
	fclose(e->fp);
	unlink(e->path);
}

static const char *w_none(struct wait_env *e)
{
	return NULL;
}

static void w_nothing(struct wait_env *e)
{
}

#ifdef HAVE_LIBURING
static const char *w_ring(struct wait_env *e)
{
	return io_uring_queue_init(4, &e->ring, 0) ? "io_uring refused here" :
		NULL;
}

static void w_ring_end(struct wait_env *e)
{
	io_uring_queue_exit(&e->ring);
}
#endif

/* ------------------------------------------------------------ calls */

/* A result given as an error number: as -1 and errno. */
static long w_errnum(int r)
{
	if (!r)
		return 0;
	errno = r;
	return -1;
}

static long c_read(struct wait_env *e)
{
	return read(e->fd[0], e->buf, sizeof(e->buf));
}

static long c_readv(struct wait_env *e)
{
	struct iovec v = { .iov_base = e->buf, .iov_len = sizeof(e->buf) };

	return readv(e->fd[0], &v, 1);
}

static long c_write(struct wait_env *e)
{
	return write(e->fd[1], e->buf, sizeof(e->buf));
}

static long c_writev(struct wait_env *e)
{
	struct iovec v = { .iov_base = e->buf, .iov_len = sizeof(e->buf) };

	return writev(e->fd[1], &v, 1);
}

static long c_recv(struct wait_env *e)
{
	return recv(e->fd[0], e->buf, sizeof(e->buf), 0);
}

static long c_recvfrom(struct wait_env *e)
{
	return recvfrom(e->fd[0], e->buf, sizeof(e->buf), 0, NULL, NULL);
}

static long c_recvmsg(struct wait_env *e)
{
	struct iovec v = { .iov_base = e->buf, .iov_len = sizeof(e->buf) };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };

	return recvmsg(e->fd[0], &m, 0);
}

static long c_send(struct wait_env *e)
{
	return send(e->fd[1], e->buf, sizeof(e->buf), 0);
}

static long c_sendto(struct wait_env *e)
{
	return sendto(e->fd[1], e->buf, sizeof(e->buf), 0, NULL, 0);
}

static long c_sendmsg(struct wait_env *e)
{
	struct iovec v = { .iov_base = e->buf, .iov_len = sizeof(e->buf) };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };

	return sendmsg(e->fd[1], &m, 0);
}

static long c_accept(struct wait_env *e)
{
	return accept(e->lfd, NULL, NULL);
}

static long c_accept4(struct wait_env *e)
{
	return accept4(e->lfd, NULL, NULL, SOCK_CLOEXEC);
}

static long c_connect(struct wait_env *e)
{
	struct sockaddr_un a = w_unix_addr(e);

	return connect(e->cfd, (struct sockaddr *)&a, sizeof(a));
}

static long c_poll(struct wait_env *e)
{
	struct pollfd p = { .fd = e->fd[0], .events = POLLIN };

	return poll(&p, 1, -1);
}

/* The thread's own mask, as most callers give it. */
static sigset_t w_current_mask(void)
{
	sigset_t cur;

	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return cur;
}

static long c_ppoll(struct wait_env *e)
{
	struct pollfd p = { .fd = e->fd[0], .events = POLLIN };
	sigset_t cur = w_current_mask();

	return ppoll(&p, 1, NULL, &cur);
}

/* Every signal blocked: only libinterruptible-libc, which keeps the
 * interrupt signal out of the mask, lets the cancel in. */
static long c_ppoll_all(struct wait_env *e)
{
	struct pollfd p = { .fd = e->fd[0], .events = POLLIN };
	sigset_t all;

	sigfillset(&all);
	return ppoll(&p, 1, NULL, &all);
}

static long c_select(struct wait_env *e)
{
	fd_set r;

	FD_ZERO(&r);
	FD_SET(e->fd[0], &r);
	return select(e->fd[0] + 1, &r, NULL, NULL, NULL);
}

static long c_pselect(struct wait_env *e)
{
	fd_set r;

	FD_ZERO(&r);
	FD_SET(e->fd[0], &r);
	return pselect(e->fd[0] + 1, &r, NULL, NULL, NULL, NULL);
}

static long c_epoll_wait(struct wait_env *e)
{
	struct epoll_event ev;

	return epoll_wait(e->lfd, &ev, 1, -1);
}

static long c_epoll_pwait(struct wait_env *e)
{
	struct epoll_event ev;

	return epoll_pwait(e->lfd, &ev, 1, -1, NULL);
}

static long c_nanosleep(struct wait_env *e)
{
	struct timespec ts = { .tv_sec = 600 };

	return nanosleep(&ts, &ts);
}

static long c_clock_nanosleep(struct wait_env *e)
{
	struct timespec ts = { .tv_sec = 600 };

	return w_errnum(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts));
}

static long c_usleep(struct wait_env *e)
{
	return usleep(999999);	/* the longest POSIX asks usleep to take */
}

/* sleep() as -1 and errno: EINTR when it returns the time it did not
 * sleep, the stop's errno when it returns 0 early. */
static long c_sleep(struct wait_env *e)
{
	unsigned left;

	errno = 0;
	left = sleep(600);
	if (left) {
		errno = EINTR;
		return -1;
	}
	return errno == ECANCELED || errno == ETIMEDOUT ? -1 : 0;
}

static long c_waitpid(struct wait_env *e)
{
	return waitpid(e->child, NULL, 0);
}

static long c_wait4(struct wait_env *e)
{
	return wait4(e->child, NULL, 0, NULL);
}

static long c_waitid(struct wait_env *e)
{
	siginfo_t si;

	return waitid(P_PID, (id_t)e->child, &si, WEXITED);
}

static long c_wait(struct wait_env *e)
{
	return wait(NULL);
}

/* A real-time signal nobody sends, blocked as everything is in a body. */
static sigset_t w_unsent(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN + 5);
	return s;
}

static long c_sigwaitinfo(struct wait_env *e)
{
	sigset_t s = w_unsent();

	return sigwaitinfo(&s, NULL);
}

static long c_sigtimedwait(struct wait_env *e)
{
	struct timespec ts = { .tv_sec = 600 };
	sigset_t s = w_unsent();

	return sigtimedwait(&s, NULL, &ts);
}

static long c_sigwait(struct wait_env *e)
{
	sigset_t s = w_unsent();
	int sig;

	return w_errnum(sigwait(&s, &sig));
}

static long c_pause(struct wait_env *e)
{
	return pause();
}

static long c_sigsuspend(struct wait_env *e)
{
	sigset_t cur = w_current_mask();

	return sigsuspend(&cur);
}

static long c_sigsuspend_all(struct wait_env *e)
{
	sigset_t all;

	sigfillset(&all);
	return sigsuspend(&all);
}

static long c_flock(struct wait_env *e)
{
	return flock(e->cfd, LOCK_EX);
}

static long c_setlkw(struct wait_env *e)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	return fcntl(e->cfd, F_SETLKW, &fl);
}

static long c_ofd_setlkw(struct wait_env *e)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	return fcntl(e->cfd, F_OFD_SETLKW, &fl);
}

static long c_lockf(struct wait_env *e)
{
	return lockf(e->cfd, F_LOCK, 0);
}

static long c_mq_receive(struct wait_env *e)
{
	return mq_receive(e->mq, e->buf, sizeof(e->buf), NULL);
}

static long c_mq_timedreceive(struct wait_env *e)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 600;
	return mq_timedreceive(e->mq, e->buf, sizeof(e->buf), NULL, &ts);
}

static long c_msgrcv(struct wait_env *e)
{
	return msgrcv(e->ipc, e->buf, sizeof(e->buf) - sizeof(long), 0, 0);
}

static long c_semop(struct wait_env *e)
{
	struct sembuf op = { .sem_num = 0, .sem_op = -1 };

	return semop(e->ipc, &op, 1);
}

static long c_semtimedop(struct wait_env *e)
{
	struct sembuf op = { .sem_num = 0, .sem_op = -1 };
	struct timespec ts = { .tv_sec = 600 };

	return semtimedop(e->ipc, &op, 1, &ts);
}

static long c_sem_wait(struct wait_env *e)
{
	return sem_wait(&e->sem);
}

static long c_sem_timedwait(struct wait_env *e)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 600;
	return sem_timedwait(&e->sem, &ts);
}

static long c_fgets(struct wait_env *e)
{
	return fgets(e->buf, sizeof(e->buf), e->fp) ? 0 : -1;
}

#ifdef HAVE_LIBURING
static long c_uring(struct wait_env *e)
{
	struct io_uring_cqe *cqe;

	return w_errnum(-io_uring_wait_cqe(&e->ring, &cqe));
}
#endif

/* ------------------------------------------------------------ table */

#define W(n, s, c, t, i) \
	{ .name = n, .setup = s, .call = c, .teardown = t, .interposed = i }
#define W_RESTARTS(n, s, c, t) \
	{ .name = n, .setup = s, .call = c, .teardown = t, .interposed = true, \
	  .restarts = true }
#define W_MASKS(n, s, c, t) \
	{ .name = n, .setup = s, .call = c, .teardown = t, .interposed = true, \
	  .masks = true }

static const struct wait_case wait_cases[] = {
	W("read on a pipe", w_pipe, c_read, w_close2, true),
	W("readv on a pipe", w_pipe, c_readv, w_close2, true),
	W("write to a full pipe", w_full_pipe, c_write, w_close2, true),
	W("writev to a full pipe", w_full_pipe, c_writev, w_close2, true),
	W("recv", w_socketpair, c_recv, w_close2, true),
	W("recvfrom", w_socketpair, c_recvfrom, w_close2, true),
	W("recvmsg", w_socketpair, c_recvmsg, w_close2, true),
	W("send to a full socket", w_full_socket, c_send, w_close2, true),
	W("sendto to a full socket", w_full_socket, c_sendto, w_close2, true),
	W("sendmsg to a full socket", w_full_socket, c_sendmsg, w_close2,
	  true),
	W("accept", w_listener, c_accept, w_listener_end, true),
	W("accept4", w_listener, c_accept4, w_listener_end, true),
	W("connect to a full backlog", w_full_backlog, c_connect,
	  w_full_backlog_end, true),
	W("poll", w_pipe, c_poll, w_close2, true),
	W("ppoll", w_pipe, c_ppoll, w_close2, true),
	W_MASKS("ppoll, every signal masked", w_pipe, c_ppoll_all, w_close2),
	W("select", w_pipe, c_select, w_close2, true),
	W("pselect", w_pipe, c_pselect, w_close2, true),
	W("epoll_wait", w_epoll, c_epoll_wait, w_epoll_end, true),
	W("epoll_pwait", w_epoll, c_epoll_pwait, w_epoll_end, true),
	W("nanosleep", w_none, c_nanosleep, w_nothing, true),
	W("clock_nanosleep", w_none, c_clock_nanosleep, w_nothing, true),
	W("usleep", w_none, c_usleep, w_nothing, true),
	W("sleep", w_none, c_sleep, w_nothing, true),
	W("waitpid", w_child, c_waitpid, w_child_end, true),
	W("wait4", w_child, c_wait4, w_child_end, true),
	W("waitid", w_child, c_waitid, w_child_end, true),
	W("wait", w_child, c_wait, w_child_end, true),
	W("sigwaitinfo", w_none, c_sigwaitinfo, w_nothing, true),
	W("sigtimedwait", w_none, c_sigtimedwait, w_nothing, true),
	W_RESTARTS("sigwait (glibc retries EINTR)", w_none, c_sigwait,
		   w_nothing),
	W("pause", w_none, c_pause, w_nothing, true),
	W("sigsuspend", w_none, c_sigsuspend, w_nothing, true),
	W_MASKS("sigsuspend, every signal masked", w_none, c_sigsuspend_all,
		w_nothing),
	W("flock", w_flocked, c_flock, w_locked_end, true),
	W("fcntl F_SETLKW", w_locked, c_setlkw, w_locked_end, true),
	W("fcntl F_OFD_SETLKW", w_locked, c_ofd_setlkw, w_locked_end, true),
	W("lockf F_LOCK", w_locked, c_lockf, w_locked_end, true),
	W("mq_receive", w_mq, c_mq_receive, w_mq_end, true),
	W("mq_timedreceive", w_mq, c_mq_timedreceive, w_mq_end, true),
	W("msgrcv", w_msg, c_msgrcv, w_msg_end, true),
	W("semop", w_sysv_sem, c_semop, w_sysv_sem_end, true),
	W("semtimedop", w_sysv_sem, c_semtimedop, w_sysv_sem_end, true),
	W("sem_wait", w_sem, c_sem_wait, w_sem_end, true),
	W("sem_timedwait", w_sem, c_sem_timedwait, w_sem_end, true),
	W("fgets on a FIFO (stdio: libc's own read)", w_fifo, c_fgets,
	  w_fifo_end, false),
#ifdef HAVE_LIBURING
	W("io_uring_wait_cqe (liburing)", w_ring, c_uring, w_ring_end, false),
#endif
};

#undef W
#undef W_RESTARTS
#undef W_MASKS

#define N_WAIT_CASES (sizeof(wait_cases) / sizeof(wait_cases[0]))

#endif /* INTR_TEST_WAITS_H */
