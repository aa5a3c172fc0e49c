/* SPDX-License-Identifier: MIT */
/*
 * Description: the waits that need no signal (intr_sleep, intr_poll, the
 * io_uring waits): a cancel that finds the body asleep ends the wait in
 * the kernel and sends the worker none.
 *
 * The number of interrupt signals sent is the fault injection hook's count
 * of its send site (make check-fault builds the hook; the program is
 * linked statically, as the count is hidden).  Without the hook every case
 * still checks what intr_sleep returns, bounded, and the counts are
 * skipped with one line.  Re-sends are 10 s away, out of the picture.
 *
 *   asleep    the body seen asleep, then cancelled: the reason, no send
 *   deadline  a token deadline fires while it sleeps: -ETIMEDOUT, no send
 *   sigprof   a SIGPROF handled over the sleep, then the cancel: no send
 *   running   cancelled while the body runs outside any wait, then it
 *             sleeps: the reason at once, one send (the signal's way)
 *   held      the body blocked the interrupt signal itself: its cancel is
 *             held, the sleep goes on to its end (0), one send
 *   poll      intr_poll on one empty pipe: as asleep; on sixteen
 *             (more than it copies): one send
 *   ring      intr_uring_wait_cqe on an empty ring, cancelled or under a
 *             token deadline: as asleep; a DEFER_TASKRUN ring: one send
 *   env       INTR_WAKE=signal (a child, set before its first call):
 *             asleep, then cancelled: the reason, one send
 *
 * And the waits that take the signal while a sleep's slot is still out
 * (re-sends two minutes away, so only the first signal can end them):
 *
 *   jump      a SIGALRM handler siglongjmps out of the sleep; the body
 *             then blocks in intr_read (and, with liburing, in
 *             intr_uring_wait_cqe): the cancel ends it at once
 *   nested    a SIGPROF handler over the sleep blocks in intr_read: the
 *             cancel ends the read, then the sleep
 *   late      (fault hook) the cancel comes after the sleep's deadline,
 *             before it takes its slot back: intr_sleep returns the
 *             reason, so the plain read the body would make next is
 *             never made
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <dirent.h>
#include <poll.h>
#include <setjmp.h>
#include <unistd.h>
#ifdef HAVE_LIBURING
#include <liburing.h>
#include "interruptible/uring.h"
#endif

#include "bound.h"
#include "tap.h"
#include "wait.h"
#ifdef INTR_FAULT_INJECTION
#include "fault.h"
#endif

#define BOUND_MS	10000u
#define LONG_NS		30000000000ull	/* 30 s: far past BOUND_MS */
#define HELD_NS		1000000000ull	/* a held sleep: 1 s */
#define RESEND_US	120000000u	/* 2 min: no re-send within a case */

enum kind {
	K_ASLEEP, K_DEADLINE, K_SIGPROF, K_RUNNING, K_HELD,
	K_POLL, K_POLL_BIG, K_POLL_HELD,
	K_RING, K_RING_DEADLINE, K_RING_DEFER, K_RING_HELD, K_NR
};

static const char *const kind_name[K_NR] = {
	"asleep", "deadline", "sigprof", "running", "held",
	"poll asleep", "poll of 16 asleep", "poll held",
	"ring asleep", "ring deadline", "DEFER_TASKRUN ring asleep",
	"ring held",
};

static bool ring_kind(enum kind k)
{
	return k >= K_RING;
}

static bool poll_kind(enum kind k)
{
	return k == K_POLL || k == K_POLL_BIG || k == K_POLL_HELD;
}

/* The body blocks the interrupt signal itself: the cancel is held off,
 * the wait goes on to its timeout. */
static bool held(enum kind k)
{
	return k == K_HELD || k == K_POLL_HELD || k == K_RING_HELD;
}

/* Interrupt signals a case's cancel sends: one where the wait takes the
 * signal, none where it is woken. */
static long kind_sends(enum kind k)
{
	return k == K_RUNNING || held(k) || k == K_POLL_BIG ||
	       k == K_RING_DEFER;
}

struct sleeper {
	enum kind kind;
	int signo;
	atomic_int tid;
	atomic_int go;		/* running: the cancel is in */
	int ret;
	uint64_t slept_ns;
};

static atomic_int prof_seen;

static void on_prof(int sig)
{
	(void)sig;
	atomic_fetch_add(&prof_seen, 1);
}

/* Interrupt signals sent so far, or -1 without the hook. */
static long sends(void)
{
#ifdef INTR_FAULT_INJECTION
	return (long)intr__fault_events(INTR_SITE_SIGNAL_SEND);
#else
	return -1;
#endif
}

static void *sleeper_body(intr_ctx *ctx, void *arg)
{
	struct sleeper *s = arg;
	uint64_t t0;
	sigset_t set;

	sigemptyset(&set);
	if (held(s->kind)) {
		sigaddset(&set, s->signo);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
	} else if (s->kind == K_SIGPROF) {
		sigaddset(&set, SIGPROF);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	}
	atomic_store(&s->tid, (int)b_gettid());
	if (s->kind == K_RUNNING)
		b_wait_atomic(&s->go, 1, BOUND_MS);
	t0 = h_now_ns();
	if (poll_kind(s->kind)) {
		struct pollfd p[16];
		int fds[2], i, n = s->kind == K_POLL_BIG ? 16 : 1;

		if (pipe(fds)) {
			s->ret = -errno;
			return s;
		}
		for (i = 0; i < n; i++)
			p[i] = (struct pollfd){ .fd = fds[0], .events = POLLIN };
		s->ret = intr_poll(ctx, p, (nfds_t)n, held(s->kind) ?
				   (int)(HELD_NS / 1000000) : -1);
		s->slept_ns = h_now_ns() - t0;
		if (held(s->kind))
			pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		close(fds[0]);
		close(fds[1]);
		return s;
	}
#ifdef HAVE_LIBURING
	if (ring_kind(s->kind)) {
		struct io_uring ring;
		struct io_uring_cqe *cqe;
		unsigned fl = 0;

#ifdef IORING_SETUP_DEFER_TASKRUN
		if (s->kind == K_RING_DEFER)
			fl = IORING_SETUP_SINGLE_ISSUER |
			     IORING_SETUP_DEFER_TASKRUN;
#endif
		s->ret = io_uring_queue_init(4, &ring, fl);
		if (!s->ret) {
			struct __kernel_timespec ts = {
				.tv_sec = HELD_NS / 1000000000u,
				.tv_nsec = HELD_NS % 1000000000u,
			};

			s->ret = intr_uring_wait_cqes(ctx, &ring, &cqe, 1,
						      held(s->kind) ? &ts : NULL);
			io_uring_queue_exit(&ring);
		}
		s->slept_ns = h_now_ns() - t0;
		if (held(s->kind))
			pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		return s;
	}
#endif
	s->ret = intr_sleep(ctx, s->kind == K_HELD ? HELD_NS : LONG_NS);
	s->slept_ns = h_now_ns() - t0;
	if (s->kind == K_HELD)
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return s;
}

/* The system call the sleep waits in: the futex, unless it takes the
 * signal (a held cancel, INTR_WAKE=signal). */
static long asleep_in(enum kind k)
{
	const char *w = getenv("INTR_WAKE");

	if (k == K_RING_DEFER || k == K_RING_HELD)
		return SYS_io_uring_enter;
	if (ring_kind(k) || poll_kind(k))
		return SYS_ppoll;
	if (k == K_HELD || (w && !strcmp(w, "signal")))
		return SYS_clock_nanosleep;
	return SYS_futex;
}

/* The number of descriptors thread tid waits on in ppoll, as the kernel
 * reports it; -1 if it does not (or speaks other numbers, qemu-user). */
static long ppoll_nfds(pid_t tid)
{
	char path[64], buf[256];
	unsigned long nr, a0, a1;
	FILE *f;
	int n;

	if (!h_syscall_numbers_ours())
		return -1;
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fgets(buf, sizeof(buf), f) ?
	    sscanf(buf, "%lu %lx %lx", &nr, &a0, &a1) : 0;
	fclose(f);
	return n == 3 && nr == SYS_ppoll ? (long)a1 : -1;
}

/* Run one case; false with a line of diagnosis if it went wrong. */
static bool run_case(enum kind k, int signo, long want_sends)
{
	const char *name = kind_name[k];
	int want = k == K_DEADLINE || k == K_RING_DEADLINE ? -ETIMEDOUT :
		   k == K_HELD || k == K_POLL_HELD ? 0 :
		   k == K_RING_HELD ? -ETIME : -ECANCELED;
	intr_token *tok = NULL;
	intr_task *t = NULL;
	struct sleeper s;
	long before, sent;
	void *res = NULL;
	int r, prof;
	bool ok;

	memset(&s, 0, sizeof(s));
	s.kind = k;
	s.signo = signo;
	r = intr_token_new(&tok, NULL);
	if (!r)
		r = intr_spawn(&t, tok, sleeper_body, &s);
	if (r) {
		tap_diag("%s: intr_token_new or intr_spawn: %d", name, r);
		return false;
	}
	ok = b_wait_atomic(&s.tid, 1, BOUND_MS);
	if (ok && k != K_RUNNING)
		ok = h_wait_blocked(atomic_load(&s.tid), asleep_in(k), BOUND_MS);
	/* The waits without the signal poll one descriptor more: the wake
	 * eventfd.  Told without the fault hook's count too. */
	if (ok && (k == K_POLL || k == K_RING || k == K_RING_DEADLINE)) {
		long nfds = ppoll_nfds(atomic_load(&s.tid));

		if (nfds >= 0 && nfds != 2) {
			tap_diag("%s: asleep in ppoll on %ld descriptors, not "
				 "2 (no wake eventfd)", name, nfds);
			ok = false;
		}
	}
	if (ok && k == K_SIGPROF) {
		prof = atomic_load(&prof_seen);
		ok = !syscall(SYS_tgkill, getpid(), atomic_load(&s.tid),
			      SIGPROF) &&
		     b_wait_atomic(&prof_seen, prof + 1, BOUND_MS) &&
		     h_wait_blocked(atomic_load(&s.tid), asleep_in(k),
				    BOUND_MS);
	}
	if (!ok) {
		tap_diag("%s: the body never slept", name);
		return false;
	}
	before = sends();
	if (k == K_DEADLINE || k == K_RING_DEADLINE)
		r = intr_token_cancel_after(tok, 1000000);
	else
		r = intr_token_cancel(tok);
	if (k == K_RUNNING)
		atomic_store(&s.go, 1);
	if (r) {
		tap_diag("%s: the cancel: %d", name, r);
		return false;
	}
	r = b_join_within(t, &res, BOUND_MS);
	if (r == B_TIMEOUT) {
		tap_diag("%s: the call did not end within %u ms (a lost "
			 "cancel)", name, BOUND_MS);
		return false;
	}
	sent = before < 0 ? -1 : sends() - before;
	intr_token_free(tok);
	if (r != (k == K_DEADLINE || k == K_RING_DEADLINE ? -ETIMEDOUT :
		  -ECANCELED) || res != &s) {
		tap_diag("%s: join %d", name, r);
		return false;
	}
	if (s.ret != want || (held(k) && s.slept_ns < HELD_NS - 1000000)) {
		tap_diag("%s: the wait returned %d after %" PRIu64 " us, "
			 "not %d", name, s.ret, s.slept_ns / 1000, want);
		return false;
	}
	if (sent >= 0 && sent != want_sends) {
		tap_diag("%s: %ld interrupt signals sent, not %ld", name, sent,
			 want_sends);
		return false;
	}
	return true;
}

/* ThreadSanitizer runs a handler only from its own interceptors, never
 * over the library's raw system calls: the cases whose handler must run
 * over a wait cannot be made. */
static bool deferred_handlers(void)
{
#if defined(__SANITIZE_THREAD__)
	return true;
#else
	return false;
#endif
}

/* ---------------------------------------------- waits over a sleep's slot */
enum over_kind { O_JUMP_READ, O_JUMP_URING, O_NESTED, O_LATE, O_NR };

static const char *const over_name[O_NR] = {
	"jump, then intr_read", "jump, then intr_uring_wait_cqe",
	"nested intr_read", "late",
};

struct over {
	enum over_kind kind;
	int rfd;		/* a pipe nobody writes to, unless to rescue */
	atomic_int tid;
	atomic_int jumped;	/* the SIGALRM handler left the sleep */
	int sleep_ret;		/* -1000: not returned */
	int ret;		/* the wait after it */
	bool skip;		/* io_uring refused */
};

static sigjmp_buf over_jb;
static struct over *over_cur;
static intr_ctx *over_ctx;
static atomic_int nested_in, nested_ret;

static void on_alrm(int sig)
{
	(void)sig;
	atomic_store(&over_cur->jumped, 1);
	siglongjmp(over_jb, 1);
}

static void on_prof_read(int sig)
{
	char c;

	(void)sig;
	atomic_store(&nested_in, 1);
	atomic_store(&nested_ret, (int)intr_read(over_ctx, over_cur->rfd,
						 &c, 1));
}

static int blocked_wait(intr_ctx *ctx, struct over *o)
{
	char c;

#ifdef HAVE_LIBURING
	if (o->kind == O_JUMP_URING) {
		struct io_uring ring;
		struct io_uring_cqe *cqe;
		int r = io_uring_queue_init(4, &ring, 0);

		if (r) {
			o->skip = true;
			return r;
		}
		r = intr_uring_wait_cqe(ctx, &ring, &cqe);
		io_uring_queue_exit(&ring);
		return r;
	}
#endif
	return (int)intr_read(ctx, o->rfd, &c, 1);
}

static void *over_body(intr_ctx *ctx, void *arg)
{
	struct over *o = arg;
	sigset_t set;
	char c;

	sigemptyset(&set);
	sigaddset(&set, o->kind == O_NESTED ? SIGPROF : SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	over_ctx = ctx;
	atomic_store(&o->tid, (int)b_gettid());
	if (o->kind == O_LATE) {
		o->sleep_ret = intr_sleep(ctx, 1000000);
		/* A plain call: only a signal ends it, and none comes. */
		if (!o->sleep_ret)
			o->ret = (int)read(o->rfd, &c, 1);
		return o;
	}
	if (sigsetjmp(over_jb, 1)) {
		/* Out of the sleep by the jump, its slot still out. */
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		o->ret = blocked_wait(ctx, o);
		return o;
	}
	o->sleep_ret = intr_sleep(ctx, LONG_NS);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return o;
}

static long over_blocked_in(enum over_kind k)
{
#ifdef SYS_io_uring_enter
	if (k == O_JUMP_URING)
		return SYS_io_uring_enter;
#endif
	return k == O_LATE ? -1 : SYS_read;
}

/* 1: passed, 0: failed (with a line), -1: cannot run here (with a line). */
static int run_over(enum over_kind k)
{
	const char *name = over_name[k];
	int want = -ECANCELED, pfd[2], r, ret = 0;
	intr_token *tok = NULL;
	intr_task *t = NULL;
	struct over o;
	void *res = NULL;
	pid_t tid;

#ifndef HAVE_LIBURING
	if (k == O_JUMP_URING) {
		tap_diag("%s: built without liburing", name);
		return -1;
	}
#endif
#ifndef INTR_FAULT_INJECTION
	if (k == O_LATE) {
		tap_diag("%s: needs the fault hook's delay (make check-fault)",
			 name);
		return -1;
	}
#else
	if (k == O_LATE)
		intr__fault_delay_arm(INTR_DELAY_SLOT_CLEAR, 3000);
#endif
	memset(&o, 0, sizeof(o));
	o.kind = k;
	o.sleep_ret = -1000;
	o.ret = -1000;
	if (pipe(pfd)) {
		tap_diag("%s: pipe: %s", name, strerror(errno));
		return 0;
	}
	o.rfd = pfd[0];
	over_cur = &o;
	atomic_store(&nested_in, 0);
	atomic_store(&nested_ret, -1000);
	r = intr_token_new(&tok, NULL);
	if (!r)
		r = intr_spawn(&t, tok, over_body, &o);
	if (r) {
		tap_diag("%s: intr_token_new or intr_spawn: %d", name, r);
		goto out;
	}
	if (!b_wait_atomic(&o.tid, 1, BOUND_MS)) {
		tap_diag("%s: the body never started", name);
		goto rescue;
	}
	tid = atomic_load(&o.tid);
#ifdef INTR_FAULT_INJECTION
	if (k == O_LATE) {
		/* Past the deadline, the slot not yet taken back. */
		uint64_t end = h_now_ns() + (uint64_t)BOUND_MS * 1000000u;

		while (!intr__fault_delaying(INTR_DELAY_SLOT_CLEAR)) {
			if (h_now_ns() > end) {
				tap_diag("%s: the sleep never ended", name);
				goto rescue;
			}
			b_sleep_ms(1);
		}
	}
#endif
	if (k != O_LATE && !h_wait_blocked(tid, -1, BOUND_MS)) {
		tap_diag("%s: the body never slept", name);
		goto rescue;
	}
	if (k == O_JUMP_READ || k == O_JUMP_URING) {
		syscall(SYS_tgkill, getpid(), tid, SIGALRM);
		if (!b_wait_atomic(&o.jumped, 1, BOUND_MS)) {
			tap_diag("%s: no jump", name);
			goto rescue;
		}
	} else if (k == O_NESTED) {
		syscall(SYS_tgkill, getpid(), tid, SIGPROF);
		if (!b_wait_atomic(&nested_in, 1, BOUND_MS)) {
			tap_diag("%s: the handler never ran", name);
			goto rescue;
		}
	}
	if (k != O_LATE && !h_wait_blocked(tid, over_blocked_in(k), BOUND_MS)) {
		if (o.skip) {
			tap_diag("%s: io_uring_queue_init: %d", name, o.ret);
			ret = -1;
		} else {
			tap_diag("%s: the body never blocked in the wait", name);
		}
		goto rescue;
	}
	r = intr_token_cancel(tok);
#ifdef INTR_FAULT_INJECTION
	if (k == O_LATE && !intr__fault_delaying(INTR_DELAY_SLOT_CLEAR)) {
		tap_diag("%s: the cancel came after the delay (a busy host); "
			 "not this case", name);
		ret = -1;
		goto rescue;
	}
#endif
	if (r) {
		tap_diag("%s: the cancel: %d", name, r);
		goto rescue;
	}
	r = b_join_within(t, &res, BOUND_MS);
	if (r == B_TIMEOUT) {
		tap_diag("%s: the call did not end within %u ms: its wait got "
			 "no signal (sleep %d)", name, BOUND_MS, o.sleep_ret);
		goto rescue;
	}
	t = NULL;
	if (r != -ECANCELED || res != &o) {
		tap_diag("%s: join %d", name, r);
		goto out;
	}
	if (k == O_NESTED && (atomic_load(&nested_ret) != want ||
			      o.sleep_ret != want)) {
		tap_diag("%s: the handler's read %d, the sleep %d, not %d",
			 name, atomic_load(&nested_ret), o.sleep_ret, want);
		goto out;
	}
	if (k == O_LATE && o.sleep_ret != want) {
		tap_diag("%s: intr_sleep returned %d, not %d", name,
			 o.sleep_ret, want);
		goto out;
	}
	if ((k == O_JUMP_READ || k == O_JUMP_URING) && o.ret != want) {
		tap_diag("%s: the wait returned %d, not %d", name, o.ret, want);
		goto out;
	}
	ret = 1;
	goto out;
rescue:
	/* Let a body stuck in its read go, so the program can end. */
	if (write(pfd[1], "x", 1) < 0)
		tap_diag("%s: rescue: %s", name, strerror(errno));
	if (t && b_join_within(t, &res, BOUND_MS) == B_TIMEOUT)
		tap_diag("%s: the body is still stuck", name);
out:
#ifdef INTR_FAULT_INJECTION
	if (k == O_LATE)
		intr__fault_delay_arm(INTR_DELAY_SLOT_CLEAR, 0);
#endif
	if (tok)
		intr_token_free(tok);
	close(pfd[0]);
	close(pfd[1]);
	return ret;
}

/* Whether this process can set up the ring a case needs (a kernel
 * without io_uring, or one a seccomp filter denies, cannot). */
static bool ring_ok(enum kind k)
{
#ifdef HAVE_LIBURING
	struct io_uring ring;
	unsigned fl = 0;

#ifdef IORING_SETUP_DEFER_TASKRUN
	if (k == K_RING_DEFER)
		fl = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
#else
	if (k == K_RING_DEFER)
		return false;
#endif
	if (io_uring_queue_init(4, &ring, fl))
		return false;
	io_uring_queue_exit(&ring);
	return true;
#else
	(void)k;
	return false;
#endif
}

static int configure(void)
{
	struct intr_config cfg;
	int r;

	intr_config_default(&cfg);
	cfg.resend_us = RESEND_US;
	r = intr_configure(&cfg);
	return r ? r : cfg.signo;
}

/* ------------------------------------------- wake eventfds and fork() */
#define FORK_THREADS	3
#define FORKS		1000

static atomic_int fork_stop;

static void *poll_once(intr_ctx *ctx, void *arg)
{
	(void)arg;
	/* No descriptor, 1 ms: a wake eventfd made, then closed. */
	return (void *)(intptr_t)intr_poll(ctx, NULL, 0, 1);
}

static void *poller_thread(void *arg)
{
	long *calls = arg;

	while (!atomic_load(&fork_stop)) {
		run_interruptible(NULL, poll_once, NULL, NULL);
		(*calls)++;
	}
	return NULL;
}

/* Eventfds open in this process. */
static int eventfds(void)
{
	char path[300], link[64];
	struct dirent *d;
	DIR *dir = opendir("/proc/self/fd");
	ssize_t n;
	int c = 0;

	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		snprintf(path, sizeof(path), "/proc/self/fd/%s", d->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = 0;
			c += !strcmp(link, "anon_inode:[eventfd]");
		}
	}
	closedir(dir);
	return c;
}

/* Children forked while calls make and close their wake eventfds hold
 * none of them. */
static bool fork_leaks_none(void)
{
	pthread_t th[FORK_THREADS];
	long calls[FORK_THREADS] = { 0 };
	int i, st, leaky = 0, forks = (int)b_scale(FORKS);
	pid_t pid;

	atomic_store(&fork_stop, 0);
	for (i = 0; i < FORK_THREADS; i++)
		pthread_create(&th[i], NULL, poller_thread, &calls[i]);
	for (i = 0; i < forks; i++) {
		fflush(stdout);
		pid = fork();
		if (pid == 0)
			_exit(eventfds() == 0 ? 0 : 1);
		st = pid > 0 ? b_child_within(pid, BOUND_MS) : -1;
		if (st)
			leaky++;
	}
	atomic_store(&fork_stop, 1);
	for (i = 0; i < FORK_THREADS; i++)
		pthread_join(th[i], NULL);
	if (leaky)
		tap_diag("fork: %d of %d children held an eventfd (or did not "
			 "exit); %ld calls beside them", leaky, forks,
			 calls[0] + calls[1] + calls[2]);
	return !leaky;
}

/* ---------------------------------------------- io_uring's own answers */
#ifdef HAVE_LIBURING
struct edge {
	int ours[2], theirs[2];
};

/* wait_nr 0 and a timeout the kernel refuses: intr_uring_wait_cqes
 * answers as liburing does on the same ring, whichever way it waits. */
static void *ring_edges(intr_ctx *ctx, void *arg)
{
	struct edge *e = arg;
	struct __kernel_timespec zero = { 0, 0 }, bad = { -1, 0 };
	struct io_uring_cqe *cqe;
	struct io_uring ring;

	if (io_uring_queue_init(4, &ring, 0)) {
		e->ours[0] = 1;
		return NULL;
	}
	e->ours[0] = intr_uring_wait_cqes(ctx, &ring, &cqe, 0, &zero);
	e->theirs[0] = io_uring_wait_cqes(&ring, &cqe, 0, &zero, NULL);
	e->ours[1] = intr_uring_wait_cqes(ctx, &ring, &cqe, 1, &bad);
	e->theirs[1] = io_uring_wait_cqes(&ring, &cqe, 1, &bad, NULL);
	io_uring_queue_exit(&ring);
	return NULL;
}
#endif

/* A handler that forks over intr_poll's wait: the child goes on with
 * the call, without the parent's wake fd, to the poll's own timeout. */
static pid_t fork_parent;
static atomic_int forkh_tid, forkh_child;

static void on_winch_fork(int sig)
{
	(void)sig;
	atomic_store(&forkh_child, (int)fork());
}

static void *forkh_body(intr_ctx *ctx, void *arg)
{
	struct pollfd p;
	int fds[2], r;
	uint64_t t0;
	sigset_t set;

	(void)arg;
	if (pipe(fds))
		return NULL;
	sigemptyset(&set);
	sigaddset(&set, SIGWINCH);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	p = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	atomic_store(&forkh_tid, (int)b_gettid());
	t0 = h_now_ns();
	r = intr_poll(ctx, &p, 1, 1000);
	if (getpid() != fork_parent)
		_exit(r == 0 && h_now_ns() - t0 >= 990000000u ? 0 : 1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	close(fds[0]);
	close(fds[1]);
	return NULL;
}

static bool fork_in_handler(void)
{
	struct sigaction sa;
	intr_task *t;
	int st = -1, r = -1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_winch_fork;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, NULL);
	fork_parent = getpid();
	atomic_store(&forkh_tid, 0);
	atomic_store(&forkh_child, 0);
	if (intr_spawn(&t, NULL, forkh_body, NULL))
		return false;
	if (b_wait_atomic(&forkh_tid, 1, BOUND_MS) &&
	    h_wait_blocked(atomic_load(&forkh_tid), SYS_ppoll, BOUND_MS)) {
		fflush(stdout);
		syscall(SYS_tgkill, getpid(), atomic_load(&forkh_tid), SIGWINCH);
		if (b_wait_atomic(&forkh_child, 1, BOUND_MS))
			st = b_child_within(atomic_load(&forkh_child), BOUND_MS);
	}
	r = b_join_within(t, NULL, BOUND_MS);
	if (st || r)
		tap_diag("fork in a handler: child status %d (1: its poll "
			 "ended early), join %d", st, r);
	return !st && !r;
}

int main(void)
{
	struct sigaction sa;
	sigset_t set;
	int signo, st;
	pid_t pid;
	enum kind k;
	enum over_kind o;

	/* The escape hatch, in a child: the environment is read at the
	 * first use of the library, which is still to come. */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		setenv("INTR_WAKE", "signal", 1);
		signo = configure();
		_exit(signo > 0 && run_case(K_ASLEEP, signo, 1) ? 0 : 1);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_prof;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPROF, &sa, NULL);
	/* Only the sleeper that asks for it takes SIGPROF. */
	sigemptyset(&set);
	sigaddset(&set, SIGPROF);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signo = configure();
	if (signo <= 0) {
		tap_ok(false, "intr_configure: %d", signo);
		return tap_done();
	}
	if (sends() < 0)
		tap_diag("no fault injection hook: the signals sent are not "
			 "counted (make check-fault counts them)");
	for (k = 0; k < K_NR; k++) {
		if (ring_kind(k) && !ring_ok(k)) {
			tap_skip("%s: no such io_uring here", kind_name[k]);
			continue;
		}
		tap_ok(run_case(k, signo, kind_sends(k)),
		       "%s, cancel %s: %s",
		       ring_kind(k) ? "intr_uring_wait_cqe" :
		       poll_kind(k) ? "intr_poll" :
		       "intr_sleep",
		       kind_name[k], kind_sends(k) ? "one signal" :
		       "no signal");
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alrm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_prof_read;
	sigaction(SIGPROF, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (o = 0; o < O_NR; o++) {
		int r;

		if (deferred_handlers()) {
			tap_skip("a wait over a sleep's slot, %s: "
				 "ThreadSanitizer defers signal handlers",
				 over_name[o]);
			continue;
		}
		r = run_over(o);

		if (r < 0)
			tap_skip("a wait over a sleep's slot, %s", over_name[o]);
		else
			tap_ok(r, "a wait over a sleep's slot, %s: the cancel "
			       "ends it", over_name[o]);
	}
#ifdef HAVE_LIBURING
	if (ring_ok(K_RING)) {
		struct edge e = { { 0, 0 }, { 0, 0 } };

		run_interruptible(NULL, ring_edges, &e, NULL);
		tap_ok(e.ours[0] == e.theirs[0] && e.ours[1] == e.theirs[1],
		       "intr_uring_wait_cqes answers wait_nr 0 (%d) and a "
		       "refused timeout (%d) as liburing does (%d, %d)",
		       e.ours[0], e.ours[1], e.theirs[0], e.theirs[1]);
	} else {
		tap_skip("io_uring's own answers: no io_uring here");
	}
#endif
	if (deferred_handlers())
		tap_skip("a handler that forks over intr_poll: ThreadSanitizer "
			 "defers signal handlers");
	else
		tap_ok(fork_in_handler(), "a handler that forks over intr_poll: "
		       "the child's poll goes on to its timeout");
	tap_ok(fork_leaks_none(), "children forked beside calls that make and "
	       "close wake eventfds hold none");
	st = pid > 0 ? b_child_within(pid, 2 * BOUND_MS) : -3;
	tap_ok(st == 0, "INTR_WAKE=signal: intr_sleep cancelled asleep with "
	       "one signal (child status %d)", st);
	return tap_done();
}
