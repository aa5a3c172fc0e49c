/* SPDX-License-Identifier: MIT */
/*
 * Description: another process flooding forged interrupt signals never makes a wrapper report a cancel, never crashes the victim, never stops the real cancel.
 *
 * The attacker is a separate process, forked before the victim first uses
 * the library (it knows nothing the library keeps in memory).  It may
 * signal the victim (same uid), and sends the library's signal with
 * rt_tgsigqueueinfo() to the thread of a body blocked in each wrapper in
 * turn, as fast as it can: every si_code another process may use
 * (SI_QUEUE, SI_TIMER, SI_MESGQ, SI_ASYNCIO, SI_SIGIO, SI_DETHREAD,
 * SI_ASYNCNL, other negative codes; SI_TKILL is refused by the kernel),
 * si_pid set to the victim's pid or to others, and values made from the
 * constant the library once used and guessed cookies (small counters, as
 * cookies once were), or random; now and then a plain tgkill() or a
 * process-directed sigqueue().
 *
 * The victim's bodies call the wrapper in a loop: a wrapper that returns
 * -ECANCELED or -ETIMEDOUT while intr_reason() says 0 is a false cancel.
 * After the flood, with the attacker still flooding, the victim cancels
 * the call for real: it must end within a bound.  The application's own
 * handler for the signal (the forged signals are foreign) counts them.
 *
 * INTR_ATTACK_SECONDS sets the flood per wrapper (default 2; scaled by
 * INTR_TEST_SCALE); run it for 60 by hand.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <interruptible.h>
#ifdef HAVE_LIBURING
#include <liburing.h>
#include <interruptible/uring.h>
#endif

#include "clock.h"
#include "tap.h"

#define OLD_MAGIC	0x1a7e51c0a5c0ffeeull
#define CANCEL_MS	5000	/* bound on the real cancel */

/* ------------------------------------------------------------ attacker */

struct order {
	int tid;		/* flood this thread; 0: pause; -1: exit */
};

static uint64_t rng_s;

static uint64_t rnd(void)
{
	uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static const int codes[] = {
	SI_QUEUE, SI_TIMER, SI_MESGQ, SI_ASYNCIO, SI_SIGIO, -7 /* DETHREAD */,
	-60 /* ASYNCNL */, -8, -100, -128,
};

/* One forged signal at victim thread tid. */
static void forge(pid_t victim, int tid, int signo, uint64_t n)
{
	uint64_t pick = rnd();
	siginfo_t si;

	if (pick % 64 == 0) {
		syscall(SYS_tgkill, victim, tid, signo);
		return;
	}
	memset(&si, 0, sizeof(si));
	si.si_signo = signo;
	si.si_uid = getuid();
	if (pick % 4) {
		/* The likeliest forgery: SI_QUEUE, the victim's pid, the
		 * old constant with a small cookie. */
		si.si_code = SI_QUEUE;
		si.si_pid = victim;
		si.si_value.sival_ptr = (void *)(uintptr_t)(OLD_MAGIC ^
							     (1 + n % 16));
	} else {
		si.si_code = codes[(pick >> 8) % (sizeof(codes) /
						  sizeof(codes[0]))];
		si.si_pid = (pick >> 16) % 3 ? victim : (pid_t)(rnd() % 65536);
		switch ((pick >> 24) % 4) {
		case 0:
			si.si_value.sival_ptr = (void *)(uintptr_t)rnd();
			break;
		case 1:
			si.si_value.sival_ptr = (void *)(uintptr_t)(OLD_MAGIC ^
								     (n % 4096));
			break;
		case 2:
			si.si_value.sival_int = (int)(n % 1024);
			break;
		default:
			si.si_value.sival_ptr = (void *)(uintptr_t)n;
			break;
		}
	}
	if (pick % 97 == 0)	/* process-directed */
		syscall(SYS_rt_sigqueueinfo, victim, signo, &si);
	else
		syscall(SYS_rt_tgsigqueueinfo, victim, tid, signo, &si);
}

/* Flood as ordered; report the count sent for each order on ack. */
static int attacker_main(int cmd, int ack, pid_t victim, int signo)
{
	struct order o = { 0 };
	uint64_t n = 0, sent = 0;
	struct pollfd p = { .fd = cmd, .events = POLLIN };

	rng_s = (uint64_t)getpid() * 0x2545f4914f6cdd1dull;
	for (;;) {
		int k;

		if (o.tid <= 0 || poll(&p, 1, 0) > 0) {
			if (read(cmd, &o, sizeof(o)) != sizeof(o) || o.tid < 0)
				break;
			if (write(ack, &sent, sizeof(sent)) != sizeof(sent))
				break;
			sent = 0;
			continue;
		}
		for (k = 0; k < 64; k++, n++, sent++)
			forge(victim, o.tid, signo, n);
	}
	return 0;
}

/* ------------------------------------------------------------ victim */

enum kind {
	K_READ, K_WRITE, K_POLL, K_ACCEPT, K_SLEEP, K_SYSCALL, K_COND,
#ifdef HAVE_LIBURING
	K_URING,
#endif
	K_NR
};

static const char *const kind_name[] = {
	"intr_read", "intr_write", "intr_poll", "intr_accept", "intr_sleep",
	"intr_syscall(SYS_read)", "intr_cond_wait",
#ifdef HAVE_LIBURING
	"intr_uring_wait_cqe",
#endif
};

struct victim {
	enum kind kind;
	int fd;			/* read: empty pipe; write: full pipe; ... */
	pthread_mutex_t m;
	pthread_cond_t c;
	atomic_int tid;
	long calls;		/* wrapper calls made */
	long false_cancels;
	long unexpected;	/* any other result the loop did not expect */
	long last_unexpected;
	long result;		/* the last result, the reason at the end */
#ifdef HAVE_LIBURING
	struct io_uring ring;
#endif
};

static atomic_long foreign_seen;

static void on_foreign(int signo)
{
	(void)signo;
	atomic_fetch_add(&foreign_seen, 1);
}

/* One wrapper call of the kind. */
static long call_once(intr_ctx *ctx, struct victim *v)
{
	char b = 'x';

	switch (v->kind) {
	case K_READ:
		return intr_read(ctx, v->fd, &b, 1);
	case K_WRITE:
		return intr_write(ctx, v->fd, &b, 1);
	case K_POLL: {
		struct pollfd p = { .fd = v->fd, .events = POLLIN };

		return intr_poll(ctx, &p, 1, -1);
	}
	case K_ACCEPT:
		return intr_accept(ctx, v->fd, NULL, NULL);
	case K_SLEEP:
		return intr_sleep(ctx, 3600ull * 1000000000u);
	case K_SYSCALL:
		return intr_syscall(ctx, SYS_read, v->fd, &b, 1);
	case K_COND: {
		long r;

		pthread_mutex_lock(&v->m);
		r = intr_cond_wait(ctx, &v->c, &v->m);
		pthread_mutex_unlock(&v->m);
		return r;
	}
#ifdef HAVE_LIBURING
	case K_URING: {
		struct io_uring_cqe *cqe;

		return intr_uring_wait_cqe(ctx, &v->ring, &cqe);
	}
#endif
	default:
		return -EINVAL;
	}
}

static void *victim_body(intr_ctx *ctx, void *arg)
{
	struct victim *v = arg;
	long r;

	atomic_store(&v->tid, (int)syscall(SYS_gettid));
	for (;;) {
		r = call_once(ctx, v);
		v->calls++;
		if (r == -ECANCELED || r == -ETIMEDOUT) {
			if (intr_reason(ctx))
				break;		/* the real cancel */
			v->false_cancels++;
			continue;
		}
		/* A condition wait may wake up spuriously (0); nothing else
		 * may come back: no data, no connection, no event. */
		if (!(v->kind == K_COND && r == 0)) {
			v->unexpected++;
			v->last_unexpected = r;
		}
	}
	v->result = r;
	return v;
}

/* Set up what the kind blocks on; false if it cannot be had here. */
static bool victim_init(struct victim *v, int fds[2])
{
	fds[0] = fds[1] = -1;
	pthread_mutex_init(&v->m, NULL);
	pthread_cond_init(&v->c, NULL);
	switch (v->kind) {
	case K_WRITE:
		if (pipe(fds))
			return false;
		fcntl(fds[1], F_SETFL, O_NONBLOCK);
		while (write(fds[1], "xxxxxxxxxxxxxxxx", 16) > 0)
			;
		fcntl(fds[1], F_SETFL, 0);
		v->fd = fds[1];
		return true;
	case K_ACCEPT: {
		struct sockaddr_in a;

		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[0] < 0 || bind(fds[0], (struct sockaddr *)&a,
				       sizeof(a)) || listen(fds[0], 4))
			return false;
		v->fd = fds[0];
		return true;
	}
#ifdef HAVE_LIBURING
	case K_URING:
		return io_uring_queue_init(4, &v->ring, 0) == 0;
#endif
	default:
		if (pipe(fds))
			return false;
		v->fd = fds[0];
		return true;
	}
}

static void victim_fini(struct victim *v, int fds[2])
{
#ifdef HAVE_LIBURING
	if (v->kind == K_URING)
		io_uring_queue_exit(&v->ring);
#endif
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	pthread_mutex_destroy(&v->m);
	pthread_cond_destroy(&v->c);
}

/* Wait until the task is done, at most ms; true if it is. */
static bool wait_done(intr_task *t, int ms)
{
	struct pollfd p = { .fd = intr_task_fd(t), .events = POLLIN };
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;
	int64_t left;

	while ((left = (int64_t)(end - h_now_ns())) > 0)
		if (poll(&p, 1, (int)(left / 1000000) + 1) > 0)
			return true;
	return false;
}

static void order(int cmd, int ack, int tid, uint64_t *sent)
{
	struct order o = { .tid = tid };

	if (write(cmd, &o, sizeof(o)) != sizeof(o) ||
	    read(ack, sent, sizeof(*sent)) != sizeof(*sent)) {
		tap_ok(false, "the attacker process is gone");
		exit(tap_done());
	}
}

int main(void)
{
	const char *env = getenv("INTR_ATTACK_SECONDS");
	const char *scale = getenv("INTR_TEST_SCALE");
	double secs = env && *env ? atof(env) : 2.0;
	int pct = scale && atoi(scale) > 0 ? atoi(scale) : 100;
	int cmdp[2], ackp[2], signo = SIGUSR1, k, st;
	uint64_t flood_ms, total = 0;
	struct intr_config cfg;
	sigset_t sig;
	pid_t victim = getpid(), attacker;

	/* valgrind takes every signal through its own scheduler, one at a
	 * time: a flood of them starves the victim it runs, and memcheck
	 * has nothing to find in a test that is a signal storm. */
	if (RUNNING_ON_VALGRIND)
		tap_skip_all("a signal flood under valgrind starves the victim");
	flood_ms = (uint64_t)(secs * 1000.0 * pct / 100.0);
	if (flood_ms < 200)
		flood_ms = 200;
	/* The signal the library will use, before anything starts it. */
	intr_config_default(&cfg);
	signo = cfg.signo;
	if (pipe(cmdp) || pipe(ackp)) {
		tap_ok(false, "pipes");
		return tap_done();
	}
	attacker = fork();
	if (attacker < 0) {
		tap_ok(false, "fork");
		return tap_done();
	}
	if (attacker == 0) {
		close(cmdp[1]);
		close(ackp[0]);
		_exit(attacker_main(cmdp[0], ackp[1], victim, signo));
	}
	close(cmdp[0]);
	close(ackp[1]);
	tap_diag("attacker pid %d, victim pid %d, signal %d, %llu ms per "
		 "wrapper", (int)attacker, (int)victim, signo,
		 (unsigned long long)flood_ms);

	/* Forged signals are foreign: the application's handler gets them
	 * (with the default disposition, SIGUSR1 would end the process, as
	 * any kill from that process could).  Only bodies take it. */
	signal(signo, on_foreign);
	sigemptyset(&sig);
	sigaddset(&sig, signo);
	pthread_sigmask(SIG_BLOCK, &sig, NULL);

	for (k = 0; k < K_NR; k++) {
		struct victim v;
		intr_token *tok = NULL;
		intr_task *t = NULL;
		uint64_t sent = 0, t0;
		long seen0;
		void *res = NULL;
		int fds[2], ret, tid;
		bool up, done;

		memset(&v, 0, sizeof(v));
		v.kind = (enum kind)k;
		if (!victim_init(&v, fds)) {
			tap_skip("%s: cannot set it up here", kind_name[k]);
			victim_fini(&v, fds);
			continue;
		}
		if (intr_token_new(&tok, NULL) ||
		    intr_spawn(&t, tok, victim_body, &v)) {
			tap_ok(false, "%s: spawn", kind_name[k]);
			victim_fini(&v, fds);
			continue;
		}
		t0 = h_now_ns();
		while (!(tid = atomic_load(&v.tid)) &&
		       h_now_ns() - t0 < 5000000000ull)
			h_spin_ns(100000);
		up = tid != 0;
		seen0 = atomic_load(&foreign_seen);
		if (up) {
			struct timespec ts = {
				.tv_sec = (time_t)(flood_ms / 1000),
				.tv_nsec = (long)(flood_ms % 1000) * 1000000,
			};

			order(cmdp[1], ackp[0], tid, &sent);
			while (nanosleep(&ts, &ts) && errno == EINTR)
				;
		}
		/* The real cancel, under the flood. */
		t0 = h_now_ns();
		intr_token_cancel(tok);
		done = wait_done(t, CANCEL_MS);
		order(cmdp[1], ackp[0], 0, &sent);
		total += sent;
		if (!done) {
			/* Do not leave it behind: nothing more will come. */
			intr_token_cancel(tok);
			wait_done(t, 60000);
		}
		ret = intr_join(t, &res);
		tap_ok(up && done && ret == -ECANCELED && res == &v &&
		       v.result == -ECANCELED && !v.false_cancels &&
		       !v.unexpected,
		       "%s: %llu forged signals, %ld reached the application's "
		       "handler, %ld wrapper calls: %ld false cancels, %ld "
		       "other results (last %ld); the real cancel %s after "
		       "%.1f ms (join %d, wrapper %ld)", kind_name[k],
		       (unsigned long long)sent,
		       atomic_load(&foreign_seen) - seen0, v.calls,
		       v.false_cancels, v.unexpected, v.last_unexpected,
		       done ? "ended the call" : "was LOST",
		       (double)(h_now_ns() - t0) / 1e6, ret, v.result);
		intr_token_free(tok);
		victim_fini(&v, fds);
	}
	{
		struct order o = { .tid = -1 };

		if (write(cmdp[1], &o, sizeof(o)) != sizeof(o))
			kill(attacker, SIGKILL);
	}
	tap_ok(waitpid(attacker, &st, 0) == attacker && WIFEXITED(st) &&
	       WEXITSTATUS(st) == 0, "the attacker ran to the end");
	tap_diag("%llu forged signals in all", (unsigned long long)total);
	return tap_done();
}
