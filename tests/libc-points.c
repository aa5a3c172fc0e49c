/* SPDX-License-Identifier: MIT */
/*
 * Description: libinterruptible-libc makes libc's blocking functions
 * cancellation points in bodies and leaves them libc's everywhere else.
 *
 * The program links libinterruptible-libc as an application opts in.
 *   1. Every interposed wait (tests/waits.h), in a body that retries EINTR
 *      forever as third-party code does: cancelled while blocked, cancelled
 *      before the call, and stopped by a deadline, the loop ends: the first
 *      failure is EINTR (what the signal alone gives), the next ECANCELED
 *      (ETIMEDOUT for the deadline).
 *   2. Each function against libc's own (found in libc.so.6 itself), on
 *      inputs that do not block: the same result, errno and output, outside
 *      bodies, in bodies that are not cancelled, and in finalizers.
 *   3. Another signal's EINTR in a body is returned as libc returns it;
 *      pthread_setcancelstate(PTHREAD_CANCEL_DISABLE) turns the points off;
 *      pthread_cancel still cancels a thread blocked in an interposed call.
 *   4. Races: the cancel lands before, at and after the call, with the
 *      library's re-send pushed to 10 s where the window is in assembly, so
 *      only the window can catch a cancel landing just before the kernel
 *      takes the call.
 */
#include "config.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>

#include "body.h"
#include "tap.h"
#include "waits.h"

#define BOUND_MS 5000		/* every wait of the test */

static void *libc_handle;
static int finals;		/* finalizers run, per call */

static void *libc_sym(const char *name)
{
	return dlsym(libc_handle, name);
}

/* ------------------------------------------------------------ 1. waits */

enum how { H_BLOCKED, H_BEFORE, H_DEADLINE };

struct wait_run {
	const struct wait_case *w;
	struct wait_env env;
	enum how how;
	atomic_int tid;
	long r;
	int err;
	int eintr;		/* EINTRs the loop retried */
	uint64_t done_ns;
};

static void count_final(void *arg)
{
	(*(int *)arg)++;
}

/* The third-party loop: retry EINTR, whatever happens. */
static void *retry_body(intr_ctx *ctx, void *arg)
{
	struct wait_run *wr = arg;

	intr_defer(ctx, count_final, &finals);
	if (wr->how == H_BEFORE)
		intr_token_cancel(intr_ctx_token(ctx));
	/* The deadline from the body itself: before a loaded machine got the
	 * body started, it could end the call with the body never run. */
	if (wr->how == H_DEADLINE &&
	    intr_token_cancel_after(intr_ctx_token(ctx), 20000000))
		return NULL;
	atomic_store(&wr->tid, b_gettid());
	for (;;) {
		errno = 0;
		wr->r = wr->w->call(&wr->env);
		wr->err = errno;
		if (!(wr->r < 0 && wr->err == EINTR))
			break;
		wr->eintr++;
	}
	wr->done_ns = h_now_ns();
	return NULL;
}

static const char *how_name[] = {
	"cancelled while blocked", "cancelled before the call",
	"stopped by a deadline",
};

static void wait_case(const struct wait_case *w, enum how how)
{
	struct wait_run wr = { .w = w, .how = how };
	int want = how == H_DEADLINE ? ETIMEDOUT : ECANCELED;
	intr_token *tok = NULL;
	intr_task *t;
	uint64_t t0 = 0;
	const char *why;
	int r, fds0;

	fds0 = b_fds();
	why = w->setup(&wr.env);
	if (why) {
		tap_skip("%s, %s: %s", w->name, how_name[how], why);
		return;
	}
	finals = 0;
	if (intr_token_new(&tok, NULL) ||
	    intr_spawn(&t, tok, retry_body, &wr)) {
		tap_ok(false, "%s, %s: start", w->name, how_name[how]);
		return;
	}
	if (how == H_BLOCKED) {
		if (!b_wait_blocked(&wr.tid, BOUND_MS))
			tap_diag("%s: not seen blocked", w->name);
		t0 = h_now_ns();
		intr_token_cancel(tok);
	}
	r = b_join_within(t, NULL, BOUND_MS);
	if (r == -ETIME) {
		tap_ok(false, "%s, %s: the loop did not end within %d ms",
		       w->name, how_name[how], BOUND_MS);
		return;		/* the body still uses wr: leak it all */
	}
	w->teardown(&wr.env);
	/* sigwait retries EINTR itself, as libc's does: the loop sees none. */
	tap_ok(wr.r == -1 && wr.err == want && wr.eintr == !w->restarts &&
	       finals == 1 &&
	       r == (how == H_DEADLINE ? -ETIMEDOUT : -ECANCELED) &&
	       b_fds() == fds0,
	       "%s, %s: ends with %s (got %ld, %s, %d EINTR, %d finalizers, "
	       "%d fds left)", w->name, how_name[how], strerror(want), wr.r,
	       strerror(wr.err), wr.eintr, finals, b_fds() - fds0);
	if (t0)
		tap_diag("  body back %.1f us after the cancel",
			 (double)(wr.done_ns - t0) / 1000.0);
	intr_token_free(tok);
}

/* ------------------------------------------------------------ 2. same as libc */

/* A probe calls one function on inputs that return at once, either libc's
 * own (L) or the interposed one, and folds what it returned and wrote into
 * one value. */
typedef long (*probe_fn)(bool L, struct wait_env *e);

#define LIBC(f) ((__typeof__(&f))libc_sym(#f))
#define CALL(f, ...) (L ? LIBC(f)(__VA_ARGS__) : f(__VA_ARGS__))

static long p_read_badf(bool L, struct wait_env *e)
{
	return CALL(read, -1, e->buf, 1);
}

static long p_read_data(bool L, struct wait_env *e)
{
	long r;

	if (write(e->fd[1], "abc", 3) != 3)
		return -99;
	r = CALL(read, e->fd[0], e->buf, sizeof(e->buf));
	return r * 1000 + e->buf[0];
}

static long p_readv_badf(bool L, struct wait_env *e)
{
	struct iovec v = { .iov_base = e->buf, .iov_len = 1 };

	return CALL(readv, -1, &v, 1);
}

static long p_write_data(bool L, struct wait_env *e)
{
	long r = CALL(write, e->fd[1], "xy", 2);

	return r * 1000 + read(e->fd[0], e->buf, sizeof(e->buf));
}

static long p_writev_badf(bool L, struct wait_env *e)
{
	struct iovec v = { .iov_base = e->buf, .iov_len = 1 };

	return CALL(writev, -1, &v, 1);
}

static long p_recv_notsock(bool L, struct wait_env *e)
{
	return CALL(recv, e->fd[0], e->buf, 1, 0);
}

static long p_recvfrom_nowait(bool L, struct wait_env *e)
{
	int sp[2];
	long r;

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp))
		return -99;
	r = CALL(recvfrom, sp[0], e->buf, 1, MSG_DONTWAIT, NULL, NULL);
	close(sp[0]);
	close(sp[1]);
	return r;
}

static long p_recvmsg_notsock(bool L, struct wait_env *e)
{
	struct msghdr m = { 0 };

	return CALL(recvmsg, e->fd[0], &m, 0);
}

static long p_send_notsock(bool L, struct wait_env *e)
{
	return CALL(send, e->fd[1], "x", 1, 0);
}

static long p_sendto_data(bool L, struct wait_env *e)
{
	int sp[2];
	long r;

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp))
		return -99;
	r = CALL(sendto, sp[0], "hello", 5, 0, NULL, 0);
	r = r * 1000 + recv(sp[1], e->buf, sizeof(e->buf), MSG_DONTWAIT);
	close(sp[0]);
	close(sp[1]);
	return r;
}

static long p_sendmsg_notsock(bool L, struct wait_env *e)
{
	struct msghdr m = { 0 };

	return CALL(sendmsg, e->fd[1], &m, 0);
}

static long p_accept_inval(bool L, struct wait_env *e)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	long r = CALL(accept, s, NULL, NULL);

	close(s);
	return r;
}

static long p_accept4_badflags(bool L, struct wait_env *e)
{
	return CALL(accept4, e->fd[0], NULL, NULL, -1);
}

static long p_connect_noent(bool L, struct wait_env *e)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	long r;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s/intr-none-%d",
		 w_tmpdir(), (int)getpid());
	r = CALL(connect, s, (struct sockaddr *)&a, sizeof(a));
	close(s);
	return r;
}

static long p_poll_nval(bool L, struct wait_env *e)
{
	struct pollfd p[2] = {
		{ .fd = 1000000, .events = POLLIN },
		{ .fd = e->fd[1], .events = POLLOUT },
	};
	long r = CALL(poll, p, 2, 0);

	return r * 100000 + p[0].revents * 100 + p[1].revents;
}

static long p_ppoll_timeout(bool L, struct wait_env *e)
{
	struct timespec ts = { 0, 1000 };
	struct pollfd p = { .fd = e->fd[0], .events = POLLIN };
	long r = CALL(ppoll, &p, 1, &ts, NULL);

	/* The caller's timeout is not written. */
	return r * 1000 + (ts.tv_nsec == 1000);
}

static long p_select_tv(bool L, struct wait_env *e)
{
	struct timeval tv = { 0, 0 };
	fd_set w;
	long r;

	FD_ZERO(&w);
	FD_SET(e->fd[1], &w);
	r = CALL(select, e->fd[1] + 1, NULL, &w, NULL, &tv);
	return r * 1000 + FD_ISSET(e->fd[1], &w) * 10 + (tv.tv_usec == 0);
}

static long p_select_neg(bool L, struct wait_env *e)
{
	struct timeval tv = { 0, -1 };

	return CALL(select, 0, NULL, NULL, NULL, &tv);
}

static long p_select_carry(bool L, struct wait_env *e)
{
	/* 1.5 ms written as 0 s and 1500 us, and 2e6 us carried into the
	 * seconds: both end at once here because the fd is writable. */
	struct timeval tv = { 0, 2000000 };
	fd_set w;
	long r;

	FD_ZERO(&w);
	FD_SET(e->fd[1], &w);
	r = CALL(select, e->fd[1] + 1, NULL, &w, NULL, &tv);
	return r * 1000 + (tv.tv_sec == 1 || tv.tv_sec == 2);
}

static long p_pselect_zero(bool L, struct wait_env *e)
{
	struct timespec ts = { 0, 0 };
	fd_set r;

	FD_ZERO(&r);
	FD_SET(e->fd[0], &r);
	return CALL(pselect, e->fd[0] + 1, &r, NULL, NULL, &ts, NULL);
}

static long p_epoll_wait_badf(bool L, struct wait_env *e)
{
	struct epoll_event ev;

	return CALL(epoll_wait, -1, &ev, 1, 0);
}

static long p_epoll_pwait_inval(bool L, struct wait_env *e)
{
	struct epoll_event ev;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	long r = CALL(epoll_pwait, ep, &ev, 0, 0, NULL);

	close(ep);
	return r;
}

static long p_nanosleep_short(bool L, struct wait_env *e)
{
	struct timespec ts = { 0, 1000 };

	return CALL(nanosleep, &ts, NULL);
}

static long p_nanosleep_inval(bool L, struct wait_env *e)
{
	struct timespec ts = { 0, -1 };

	return CALL(nanosleep, &ts, NULL);
}

static long p_clock_nanosleep_thread(bool L, struct wait_env *e)
{
	struct timespec ts = { 0, 1000 };

	return CALL(clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, &ts, NULL);
}

static long p_clock_nanosleep_proc(bool L, struct wait_env *e)
{
	struct timespec ts = { 0, 1 };

	return CALL(clock_nanosleep, CLOCK_PROCESS_CPUTIME_ID, TIMER_ABSTIME,
		    &ts, NULL);
}

static long p_clock_nanosleep_badclock(bool L, struct wait_env *e)
{
	struct timespec ts = { 0, 1 };

	return CALL(clock_nanosleep, (clockid_t)12345, 0, &ts, NULL);
}

static long p_usleep(bool L, struct wait_env *e)
{
	return CALL(usleep, 1);
}

static long p_sleep0(bool L, struct wait_env *e)
{
	return (long)CALL(sleep, 0);
}

static long p_waitpid_echild(bool L, struct wait_env *e)
{
	return CALL(waitpid, -1, NULL, WNOHANG);
}

static long p_wait4_echild(bool L, struct wait_env *e)
{
	return CALL(wait4, -1, NULL, WNOHANG, NULL);
}

static long p_waitid_echild(bool L, struct wait_env *e)
{
	siginfo_t si;

	return CALL(waitid, P_ALL, 0, &si, WEXITED | WNOHANG);
}

static long p_wait_echild(bool L, struct wait_env *e)
{
	return CALL(wait, NULL);
}

static long p_waitpid_child(bool L, struct wait_env *e)
{
	pid_t pid = fork();
	int st = 0;
	long r;

	if (pid < 0)
		return -99;
	if (!pid)
		_exit(7);
	r = CALL(waitpid, pid, &st, 0);
	return (r == pid) * 1000 + WEXITSTATUS(st);
}

static long p_sigtimedwait_again(bool L, struct wait_env *e)
{
	struct timespec ts = { 0, 0 };
	sigset_t s = w_unsent();

	return CALL(sigtimedwait, &s, NULL, &ts);
}

/* raise() sends with tkill: libc reports that as SI_USER. */
static long p_sigwaitinfo_raised(bool L, struct wait_env *e)
{
	sigset_t s, old;
	siginfo_t si;
	long r;

	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN + 6);
	pthread_sigmask(SIG_BLOCK, &s, &old);
	raise(SIGRTMIN + 6);
	r = CALL(sigwaitinfo, &s, &si);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return (r == SIGRTMIN + 6) * 1000 + si.si_code + 100;
}

static long p_sigwait_raised(bool L, struct wait_env *e)
{
	sigset_t s, old;
	int sig = 0;
	long r;

	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN + 6);
	pthread_sigmask(SIG_BLOCK, &s, &old);
	raise(SIGRTMIN + 6);
	r = CALL(sigwait, &s, &sig);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r * 1000 + (sig == SIGRTMIN + 6);
}

static long p_flock_badf(bool L, struct wait_env *e)
{
	return CALL(flock, -1, LOCK_EX);
}

static long p_fcntl_getfl(bool L, struct wait_env *e)
{
	return CALL(fcntl, e->fd[0], F_GETFL);
}

static long p_fcntl_setlkw_free(bool L, struct wait_env *e)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[128];
	long r;
	int fd;

	snprintf(path, sizeof(path), "%s/intr-free-%d", w_tmpdir(),
		 (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	r = CALL(fcntl, fd, F_SETLKW, &fl);
	close(fd);
	unlink(path);
	return r;
}

static long p_fcntl_setlkw_badf(bool L, struct wait_env *e)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	return CALL(fcntl, -1, F_OFD_SETLKW, &fl);
}

static long p_fcntl64_dupfd(bool L, struct wait_env *e)
{
	long r = CALL(fcntl64, e->fd[0], F_DUPFD_CLOEXEC, 100);

	if (r >= 0)
		close((int)r);
	return r >= 100;
}

static long p_lockf_test(bool L, struct wait_env *e)
{
	return CALL(lockf, e->fd[0], F_TEST, 0) * 1000 +
	       CALL(lockf, e->fd[0], 12345, 0);
}

static long p_mq_receive_badf(bool L, struct wait_env *e)
{
	return CALL(mq_receive, (mqd_t)-1, e->buf, sizeof(e->buf), NULL);
}

static long p_mq_timedreceive_badf(bool L, struct wait_env *e)
{
	struct timespec ts = { 0, 0 };

	return CALL(mq_timedreceive, (mqd_t)-1, e->buf, sizeof(e->buf), NULL,
		    &ts);
}

static long p_msgrcv_nomsg(bool L, struct wait_env *e)
{
	int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	long r;

	if (id < 0)
		return -99;
	r = CALL(msgrcv, id, e->buf, 8, 0, IPC_NOWAIT);
	msgctl(id, IPC_RMID, NULL);
	return r;
}

static long p_semop_again(bool L, struct wait_env *e)
{
	struct sembuf op = { .sem_num = 0, .sem_op = -1, .sem_flg = IPC_NOWAIT };
	int id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
	long r;

	if (id < 0)
		return -99;
	r = CALL(semop, id, &op, 1);
	semctl(id, 0, IPC_RMID);
	return r;
}

static long p_semtimedop_timeout(bool L, struct wait_env *e)
{
	struct sembuf op = { .sem_num = 0, .sem_op = -1 };
	struct timespec ts = { 0, 1000 };
	int id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
	long r;

	if (id < 0)
		return -99;
	r = CALL(semtimedop, id, &op, 1, &ts);
	semctl(id, 0, IPC_RMID);
	return r;
}

static long p_sem_wait_token(bool L, struct wait_env *e)
{
	sem_t s;
	long r;

	sem_init(&s, 0, 1);
	r = CALL(sem_wait, &s);
	sem_destroy(&s);
	return r;
}

static long p_sem_timedwait_past(bool L, struct wait_env *e)
{
	struct timespec ts = { 1, 0 };
	sem_t s;
	long r;

	sem_init(&s, 0, 0);
	r = CALL(sem_timedwait, &s, &ts);
	sem_destroy(&s);
	return r;
}

static long p_sem_timedwait_inval(bool L, struct wait_env *e)
{
	struct timespec ts = { 1, -5 };
	sem_t s;
	long r;

	sem_init(&s, 0, 0);
	r = CALL(sem_timedwait, &s, &ts);
	sem_destroy(&s);
	return r;
}

static const struct probe {
	const char *name;
	probe_fn fn;
} probes[] = {
	{ "read, bad fd", p_read_badf },
	{ "read, data waiting", p_read_data },
	{ "readv, bad fd", p_readv_badf },
	{ "write", p_write_data },
	{ "writev, bad fd", p_writev_badf },
	{ "recv, not a socket", p_recv_notsock },
	{ "recvfrom, MSG_DONTWAIT on nothing", p_recvfrom_nowait },
	{ "recvmsg, not a socket", p_recvmsg_notsock },
	{ "send, not a socket", p_send_notsock },
	{ "sendto", p_sendto_data },
	{ "sendmsg, not a socket", p_sendmsg_notsock },
	{ "accept, not listening", p_accept_inval },
	{ "accept4, bad flags", p_accept4_badflags },
	{ "connect, no such socket", p_connect_noent },
	{ "poll, POLLNVAL and POLLOUT", p_poll_nval },
	{ "ppoll, timeout not written", p_ppoll_timeout },
	{ "select, timeout written back", p_select_tv },
	{ "select, negative timeout", p_select_neg },
	{ "select, microseconds carried", p_select_carry },
	{ "pselect, zero timeout", p_pselect_zero },
	{ "epoll_wait, bad fd", p_epoll_wait_badf },
	{ "epoll_pwait, no room", p_epoll_pwait_inval },
	{ "nanosleep, 1 us", p_nanosleep_short },
	{ "nanosleep, bad time", p_nanosleep_inval },
	{ "clock_nanosleep, thread CPU clock", p_clock_nanosleep_thread },
	{ "clock_nanosleep, process CPU clock", p_clock_nanosleep_proc },
	{ "clock_nanosleep, bad clock", p_clock_nanosleep_badclock },
	{ "usleep", p_usleep },
	{ "sleep(0)", p_sleep0 },
	{ "waitpid, no child", p_waitpid_echild },
	{ "waitpid, a child", p_waitpid_child },
	{ "wait4, no child", p_wait4_echild },
	{ "waitid, no child", p_waitid_echild },
	{ "wait, no child", p_wait_echild },
	{ "sigtimedwait, nothing pending", p_sigtimedwait_again },
	{ "sigwaitinfo, raised", p_sigwaitinfo_raised },
	{ "sigwait, raised", p_sigwait_raised },
	{ "flock, bad fd", p_flock_badf },
	{ "fcntl F_GETFL", p_fcntl_getfl },
	{ "fcntl F_SETLKW, free", p_fcntl_setlkw_free },
	{ "fcntl F_OFD_SETLKW, bad fd", p_fcntl_setlkw_badf },
	{ "fcntl64 F_DUPFD_CLOEXEC", p_fcntl64_dupfd },
	{ "lockf F_TEST, bad command", p_lockf_test },
	{ "mq_receive, bad queue", p_mq_receive_badf },
	{ "mq_timedreceive, bad queue", p_mq_timedreceive_badf },
	{ "msgrcv, IPC_NOWAIT", p_msgrcv_nomsg },
	{ "semop, IPC_NOWAIT", p_semop_again },
	{ "semtimedop, timeout", p_semtimedop_timeout },
	{ "sem_wait, a token", p_sem_wait_token },
	{ "sem_timedwait, past", p_sem_timedwait_past },
	{ "sem_timedwait, bad time", p_sem_timedwait_inval },
};

#define N_PROBES (sizeof(probes) / sizeof(probes[0]))

struct probe_out {
	long r[2];
	int err[2];
};

/* Both versions, on a fresh pipe each. */
static void probe_pair(const struct probe *p, struct probe_out *o)
{
	struct wait_env e;
	int k;

	for (k = 0; k < 2; k++) {
		memset(&e, 0, sizeof(e));
		if (pipe2(e.fd, O_CLOEXEC)) {
			o->r[k] = -98;
			continue;
		}
		errno = 4321;
		o->r[k] = p->fn(k == 0, &e);
		o->err[k] = errno;
		w_close2(&e);
	}
}

struct probe_set {
	struct probe_out out[N_PROBES];
};

static void run_probes(struct probe_set *ps)
{
	size_t i;

	for (i = 0; i < N_PROBES; i++)
		probe_pair(&probes[i], &ps->out[i]);
}

static void *probes_body(intr_ctx *ctx, void *arg)
{
	run_probes(arg);
	return NULL;
}

static void probes_final(void *arg)
{
	run_probes(arg);
}

/* The finalizers of a cancelled call run libc's functions. */
static void *probes_fin_body(intr_ctx *ctx, void *arg)
{
	intr_defer(ctx, probes_final, arg);
	intr_token_cancel(intr_ctx_token(ctx));
	return NULL;
}

static void check_probes(const char *where, struct probe_set *ps)
{
	size_t i;

	for (i = 0; i < N_PROBES; i++) {
		struct probe_out *o = &ps->out[i];

		/* errno as numbers: strerror() of an unknown one (the mark
		 * left when nothing changed it) reuses its buffer. */
		tap_ok(o->r[0] == o->r[1] && o->err[0] == o->err[1] &&
		       o->r[0] != -99,
		       "%s: %s as libc's (libc %ld errno %d, here %ld errno "
		       "%d)", where, probes[i].name, o->r[0], o->err[0],
		       o->r[1], o->err[1]);
	}
}

static void same_as_libc(void)
{
	static struct probe_set ps;
	intr_token *tok;
	sigset_t s, old;

	/* sigwait and sigwaitinfo take a signal that must stay blocked on
	 * the main thread too. */
	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN + 6);
	pthread_sigmask(SIG_BLOCK, &s, &old);
	run_probes(&ps);
	check_probes("outside bodies", &ps);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	memset(&ps, 0, sizeof(ps));
	run_interruptible(NULL, probes_body, &ps, NULL);
	check_probes("in a body", &ps);

	memset(&ps, 0, sizeof(ps));
	intr_token_new(&tok, NULL);
	run_interruptible(tok, probes_fin_body, &ps, NULL);
	intr_token_free(tok);
	check_probes("in a cancelled call's finalizer", &ps);
}

/* ------------------------------------------------------------ 3. signals */

static atomic_int usr2_seen;

static void on_usr2(int sig)
{
	atomic_fetch_add(&usr2_seen, 1);
}

struct sig_run {
	int fd[2];
	atomic_int tid;
	long r;
	int err;
	int eintr;
	bool cancelled;
};

/* Another signal (unblocked by the body) interrupts read(): EINTR, as
 * libc gives it, and the call is not cancelled. */
static void *foreign_body(intr_ctx *ctx, void *arg)
{
	struct sig_run *sr = arg;
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	atomic_store(&sr->tid, b_gettid());
	errno = 0;
	sr->r = read(sr->fd[0], &sr->err, 1);
	sr->err = errno;
	sr->cancelled = intr_reason(ctx) != 0;
	return NULL;
}

static void foreign_signal(void)
{
	struct sigaction sa = { .sa_handler = on_usr2 };
	struct sig_run sr = { 0 };
	intr_task *t;
	int r;

	sigaction(SIGUSR2, &sa, NULL);	/* no SA_RESTART */
	if (pipe2(sr.fd, O_CLOEXEC) || intr_spawn(&t, NULL, foreign_body,
						   &sr)) {
		tap_ok(false, "foreign signal: start");
		return;
	}
	b_wait_blocked(&sr.tid, BOUND_MS);
	syscall(SYS_tgkill, getpid(), atomic_load(&sr.tid), SIGUSR2);
	r = b_join_within(t, NULL, BOUND_MS);
	tap_ok(r == 0 && sr.r == -1 && sr.err == EINTR && !sr.cancelled &&
	       atomic_load(&usr2_seen) == 1,
	       "another signal's EINTR in a body is returned as libc does "
	       "(join %d, read %ld, %s)", r, sr.r, strerror(sr.err));
	close(sr.fd[0]);
	close(sr.fd[1]);
}

/* With cancellation disabled, a cancelled body's read is libc's: EINTR for
 * the signal, then it blocks until the data comes. */
static void *disabled_body(intr_ctx *ctx, void *arg)
{
	struct sig_run *sr = arg;
	int old;
	char c;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	atomic_store(&sr->tid, b_gettid());
	do {
		errno = 0;
		sr->r = read(sr->fd[0], &c, 1);
		sr->err = errno;
		if (sr->r < 0 && sr->err == EINTR) {
			sr->eintr++;
			/* The test writes once it has seen the first EINTR. */
			atomic_store(&sr->tid, -b_gettid());
		}
	} while (sr->r < 0 && sr->err == EINTR);
	pthread_setcancelstate(old, NULL);
	/* Enabled again: the cancel is reported (EINTR first). */
	errno = 0;
	if (read(sr->fd[0], &c, 1) < 0 && errno == EINTR &&
	    read(sr->fd[0], &c, 1) < 0 && errno == ECANCELED)
		sr->cancelled = true;
	return NULL;
}

static void cancel_disabled(void)
{
	struct sig_run sr = { 0 };
	intr_token *tok;
	intr_task *t;
	uint64_t end;
	int r;

	if (pipe2(sr.fd, O_CLOEXEC) || intr_token_new(&tok, NULL) ||
	    intr_spawn(&t, tok, disabled_body, &sr)) {
		tap_ok(false, "cancellation disabled: start");
		return;
	}
	b_wait_blocked(&sr.tid, BOUND_MS);
	intr_token_cancel(tok);
	end = h_now_ns() + (uint64_t)BOUND_MS * 1000000u;
	while (atomic_load(&sr.tid) > 0 && h_now_ns() < end)
		b_sleep_ms(1);
	/* Blocked again in read, not failed: then the byte ends it. */
	if (write(sr.fd[1], "z", 1) != 1)
		tap_diag("write failed");
	r = b_join_within(t, NULL, BOUND_MS);
	tap_ok(r == -ECANCELED && sr.r == 1 && sr.eintr >= 1 && sr.cancelled,
	       "PTHREAD_CANCEL_DISABLE: libc's read (EINTR %d times, then the "
	       "data), and the cancel reported once enabled again", sr.eintr);
	intr_token_free(tok);
	close(sr.fd[0]);
	close(sr.fd[1]);
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
static atomic_int cleaned;

static void cleanup(void *arg)
{
	atomic_store(&cleaned, 1);
}

static void *plain_thread(void *arg)
{
	struct sig_run *sr = arg;
	char c;

	pthread_cleanup_push(cleanup, NULL);
	atomic_store(&sr->tid, b_gettid());
	sr->r = read(sr->fd[0], &c, 1);
	pthread_cleanup_pop(0);
	return NULL;
}

/* Outside bodies pthread_cancel works as libc has it. */
static void pthread_cancel_kept(void)
{
	struct sig_run sr = { 0 };
	pthread_t th;
	void *ret = NULL;

	if (pipe2(sr.fd, O_CLOEXEC) ||
	    pthread_create(&th, NULL, plain_thread, &sr)) {
		tap_ok(false, "pthread_cancel: start");
		return;
	}
	b_wait_blocked(&sr.tid, BOUND_MS);
	pthread_cancel(th);
	pthread_join(th, &ret);
	tap_ok(ret == PTHREAD_CANCELED && atomic_load(&cleaned),
	       "pthread_cancel of a thread blocked in read() outside bodies: "
	       "cancelled, cleanup handler ran");
	close(sr.fd[0]);
	close(sr.fd[1]);
}
#endif

/* ------------------------------------------------------------ 4. races */

#if INTR_TEST_WINDOW && defined(__x86_64__)
/*
 * The cancel made to land on the system call instruction of an
 * interposed write(): the body single-steps itself (the trap flag) from
 * the call on, and when the next instruction is a "syscall" the SIGTRAP
 * handler cancels the call; the interrupt signal, blocked in the handler,
 * arrives as the thread resumes on that instruction.  The write must not
 * happen.  Without the window (a check of the cancel, then libc's or a
 * plain system call) it would.
 */
#include <ucontext.h>

#define X86_TF 0x100

static intr_token *step_tok;
static atomic_int step_state;	/* 0 idle, 1 stepping, 2 cancelled */

static void on_trap(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *gr = uc->uc_mcontext.gregs;
	const unsigned char *pc = (const unsigned char *)gr[REG_RIP];

	if (atomic_load(&step_state) != 1)
		return;
	if (si->si_code == SI_TKILL) {
		gr[REG_EFL] |= X86_TF;	/* start stepping */
		return;
	}
	if (pc[0] == 0x0f && pc[1] == 0x05) {
		intr_token_cancel(step_tok);
		atomic_store(&step_state, 2);
		gr[REG_EFL] &= ~(greg_t)X86_TF;
	}
}

struct step {
	int fd[2];
	long r1, r2;
	int e1, e2;
};

static void *step_body(intr_ctx *ctx, void *arg)
{
	struct step *st = arg;

	/* Everything bound and resolved before stepping starts: the first
	 * system call met must be the write's own. */
	if (write(st->fd[1], "", 0) < 0)
		return NULL;
	atomic_store(&step_state, 1);
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGTRAP);
	errno = 0;
	st->r1 = write(st->fd[1], "x", 1);
	st->e1 = errno;
	errno = 0;
	st->r2 = write(st->fd[1], "x", 1);
	st->e2 = errno;
	return NULL;
}

static void single_step(void)
{
	struct sigaction sa = { .sa_sigaction = on_trap,
				.sa_flags = SA_SIGINFO };
	int i, bad = 0, written = 0, rounds = 200;
	char buf[16];

	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);	/* delivered after sigreturn */
	if (sigaction(SIGTRAP, &sa, NULL)) {
		tap_ok(false, "single step: sigaction");
		return;
	}
	for (i = 0; i < rounds; i++) {
		struct step st = { 0 };
		intr_task *t;

		if (pipe2(st.fd, O_NONBLOCK | O_CLOEXEC) ||
		    intr_token_new(&step_tok, NULL)) {
			bad++;
			break;
		}
		atomic_store(&step_state, 0);
		if (intr_spawn(&t, step_tok, step_body, &st) ||
		    b_join_within(t, NULL, BOUND_MS) == -ETIME) {
			bad++;
			break;
		}
		if (read(st.fd[0], buf, sizeof(buf)) > 0)
			written++;
		if (atomic_load(&step_state) != 2 || st.r1 != -1 ||
		    st.e1 != EINTR || st.r2 != -1 || st.e2 != ECANCELED)
			bad++;
		intr_token_free(step_tok);
		close(st.fd[0]);
		close(st.fd[1]);
	}
	signal(SIGTRAP, SIG_DFL);
	tap_ok(!bad && !written && i == rounds,
	       "%d cancels landing on write()'s syscall instruction: nothing "
	       "written, EINTR then ECANCELED (%d let the write through, %d "
	       "other)", i, written, bad);
}
#endif

struct race {
	int kind;
	int fd[2];
	atomic_int armed;	/* the body is about to make its call */
	long r;
	int err;
};

static void *race_body(intr_ctx *ctx, void *arg)
{
	struct race *ra = arg;
	struct pollfd p = { .fd = ra->fd[0], .events = POLLIN };
	struct timespec ts = { .tv_sec = 600 };
	char c;

	atomic_store(&ra->armed, 1);
	do {
		errno = 0;
		switch (ra->kind) {
		case 0:
			ra->r = read(ra->fd[0], &c, 1);
			break;
		case 1:
			ra->r = poll(&p, 1, -1);
			break;
		case 2:
			ra->r = nanosleep(&ts, NULL);
			break;
		default:
			ra->r = recv(ra->fd[0], &c, 1, 0);
			break;
		}
		ra->err = errno;
	} while (ra->r < 0 && ra->err == EINTR);
	return NULL;
}

static void races(int rounds)
{
	static const char *names[] = { "read", "poll", "nanosleep", "recv" };
	int k, i, bad, slow;

	for (k = 0; k < 4; k++) {
		struct b_lat lat = { 0 };
		uint64_t seed = h_now_ns();

		bad = slow = 0;
		for (i = 0; i < rounds; i++) {
			struct race ra = { .kind = k };
			intr_token *tok;
			intr_task *t;
			uint64_t t0;
			int r;

			seed = seed * 6364136223846793005ull + 1;
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				       ra.fd) ||
			    intr_token_new(&tok, NULL) ||
			    intr_spawn(&t, tok, race_body, &ra)) {
				bad++;
				break;
			}
			/* Land the cancel 0-2 us after the body says it is
			 * about to call: around the point where the call
			 * checks the cancel and enters the kernel (the
			 * single-step test above lands it exactly there). */
			t0 = h_now_ns() + (uint64_t)BOUND_MS * 1000000u;
			while (!atomic_load(&ra.armed) && h_now_ns() < t0)
				;
			h_spin_ns((seed >> 33) % 2000);
			t0 = h_now_ns();
			intr_token_cancel(tok);
			r = b_join_within(t, NULL, BOUND_MS);
			if (r == -ETIME) {
				bad++;
				break;	/* ra is still in use */
			}
			b_lat_add(&lat, h_now_ns() - t0);
			if (h_now_ns() - t0 > 1000000000u)
				slow++;
			/* The body may have been skipped (cancel before it
			 * started): then r stays 0. */
			if (r != -ECANCELED ||
			    (ra.r && !(ra.r == -1 && ra.err == ECANCELED)))
				bad++;
			intr_token_free(tok);
			close(ra.fd[0]);
			close(ra.fd[1]);
		}
		tap_ok(!bad && !slow,
		       "race, %s: %d cancels 0-2 us before it, every loop "
		       "ended by ECANCELED (%d wrong, %d over 1 s; join "
		       "p50 %.1f us, p99 %.1f us)", names[k], rounds, bad, slow,
		       (double)b_lat_q(&lat, 0.5) / 1000.0,
		       (double)b_lat_q(&lat, 0.99) / 1000.0);
		b_lat_free(&lat);
	}
}

static void *nop_body(intr_ctx *ctx, void *arg)
{
	return NULL;
}

/* Whether poll() is a cancellation point here: a body that cancelled
 * itself gets EINTR from a poll() on nothing, which libc's own returns at
 * once with 0.  (Comparing addresses would not do: a sanitizer's
 * interceptor stands in for libc's too.) */
static void *probe_point(intr_ctx *ctx, void *arg)
{
	intr_token_cancel(intr_ctx_token(ctx));
	*(int *)arg = poll(NULL, 0, 0);
	intr_cancelled(ctx);
	return NULL;
}

static bool interposed(void)
{
	int r = 0;

	run_interruptible(NULL, probe_point, &r, NULL);
	return r == -1;
}

static void warm_up(void)
{
	intr_token *tok;

	if (!intr_token_new(&tok, NULL)) {
		run_interruptible(tok, nop_body, NULL, NULL);
		intr_token_free(tok);
	}
}

/* 5. A body whose own call is cancelled cancels another call asleep in a
 * wait that needs no signal (intr_poll): the cancel's wake of that wait
 * is the library's, not one of libc's points, so it is made all the same
 * and the other call ends at once, not at the re-send (10 s). */
struct cross {
	intr_token *other;
	atomic_int tid;		/* the poller, once it runs */
	atomic_int running;	/* the canceller's body runs */
	int poll_ret;
};

static void *cross_poller(intr_ctx *ctx, void *arg)
{
	struct cross *x = arg;
	struct pollfd p;
	int fds[2];

	if (pipe(fds)) {
		x->poll_ret = -errno;
		return NULL;
	}
	p = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	atomic_store(&x->tid, (int)b_gettid());
	x->poll_ret = intr_poll(ctx, &p, 1, 2 * BOUND_MS);
	close(fds[0]);
	close(fds[1]);
	return NULL;
}

static void *cross_canceller(intr_ctx *ctx, void *arg)
{
	struct cross *x = arg;
	uint64_t end = h_now_ns() + (uint64_t)BOUND_MS * 1000000u;

	atomic_store(&x->running, 1);
	while (!intr_reason(ctx) && h_now_ns() < end)
		b_sleep_ms(1);
	intr_token_cancel(x->other);
	return NULL;
}

static void cross_cancel(void)
{
	struct cross x = { 0 };
	intr_token *mine = NULL;
	intr_task *a = NULL, *b = NULL;
	int ra = -1, rb = -1;

	if (intr_token_new(&x.other, NULL) || intr_token_new(&mine, NULL) ||
	    intr_spawn(&b, x.other, cross_poller, &x)) {
		tap_ok(false, "cross cancel: set-up");
		return;
	}
	if (b_wait_blocked(&x.tid, BOUND_MS) &&
	    !intr_spawn(&a, mine, cross_canceller, &x)) {
		uint64_t end = h_now_ns() + (uint64_t)BOUND_MS * 1000000u;

		while (!atomic_load(&x.running) && h_now_ns() < end)
			b_sleep_ms(1);
		intr_token_cancel(mine);
		ra = b_join_within(a, NULL, BOUND_MS);
		rb = b_join_within(b, NULL, BOUND_MS);
	}
	tap_ok(ra == -ECANCELED && rb == -ECANCELED &&
	       x.poll_ret == -ECANCELED,
	       "a cancelled body's cancel ends intr_poll in another call at "
	       "once (joins %d, %d; intr_poll %d)", ra, rb, x.poll_ret);
	if (rb == -ETIME)
		intr_token_cancel(x.other);
	intr_token_free(mine);
	intr_token_free(x.other);
}

int main(void)
{
	const char *scale = getenv("INTR_TEST_SCALE");
	int pct = scale && atoi(scale) > 0 ? atoi(scale) : 100;
	struct intr_config cfg;
	size_t i;
	int h;

#if defined(__SANITIZE_THREAD__)
	/* ThreadSanitizer defines libc's names itself, ahead of the static
	 * libinterruptible-libc: which of them the link takes from which
	 * is the linker's business, and nothing here would be meaningful. */
	tap_skip_all("ThreadSanitizer's interceptors take libc's names");
#endif
	libc_handle = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	if (!libc_handle)
		tap_skip_all("libc.so.6 is not loaded: not glibc");
	intr_config_default(&cfg);
#if INTR_TEST_WINDOW
	/* No rescue by the re-send within the bounds: the window must catch
	 * every cancel that lands just before the kernel takes the call. */
	cfg.resend_us = 10000000;
#endif
	if (intr_configure(&cfg))
		tap_skip_all("intr_configure refused");
	/* The service threads and their timer exist from here on: the fd
	 * counts below see only what a case leaves. */
	warm_up();

	tap_ok(interposed(), "libc's names resolve to libinterruptible-libc");

	for (i = 0; i < N_WAIT_CASES; i++) {
		if (!wait_cases[i].interposed)
			continue;
		for (h = H_BLOCKED; h <= H_DEADLINE; h++)
			wait_case(&wait_cases[i], (enum how)h);
	}
	same_as_libc();
	foreign_signal();
	cancel_disabled();
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* Their runtimes do not survive the unwinding of a thread that
	 * pthread_cancel ends (a check of the sanitizer's own fails). */
	tap_skip("pthread_cancel outside bodies: not under a sanitizer");
#else
	pthread_cancel_kept();
#endif
#if INTR_TEST_WINDOW && defined(__x86_64__)
	/* Needs the CPU's own signal delivery: not under valgrind or
	 * ThreadSanitizer, which hand the handler a copy of the context. */
#if !defined(__SANITIZE_THREAD__)
	if (!RUNNING_ON_VALGRIND)
		single_step();
#endif
#endif
	races(2000 * pct / 100 + 1);
	cross_cancel();
	return tap_done();
}
