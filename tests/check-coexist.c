/* SPDX-License-Identifier: MIT */
/*
 * Coexistence with the host program: its own handler for the interrupt
 * signal (installed before the library's, after it, even while a call is
 * blocked), process-directed signals from another process, profiling and
 * alarm timers, a tracer attaching, threads that are not workers, and
 * fork()+exec() from a body and from the caller.
 *
 * Loading and unloading the library (dlopen/dlclose) is tests/dlopen-test.c;
 * fork() without exec is check-fork.
 *
 * Bodies never call Check's assertions; they record what they saw and the
 * test asserts it after the join.  Every wait is bounded.
 */
#include "config.h"

#include "harness.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>

#define WAIT_MS		5000
#define BODY_MS		10000
#define CHILD_ENV	"INTR_COEXIST_CHILD"

/* ------------------------------------------------------------ app handlers */

/* The application's handlers, counting per kind of arrival. */
static atomic_int a0_count, a1_count;
static atomic_int lib_seen;	/* a signal the library sent reached us */
static _Atomic(void (*)(int, siginfo_t *, void *)) a1_chain;

static void note_lib(const siginfo_t *si)
{
	/* The test never sigqueues itself: SI_QUEUE from our own pid is the
	 * library's, which must never reach the application. */
	if (si->si_code == SI_QUEUE && si->si_pid == getpid())
		atomic_fetch_add(&lib_seen, 1);
}

static void a0_handler(int signo, siginfo_t *si, void *uc)
{
	(void)signo;
	(void)uc;
	note_lib(si);
	atomic_fetch_add(&a0_count, 1);
}

static void a1_handler(int signo, siginfo_t *si, void *uc)
{
	void (*chain)(int, siginfo_t *, void *) = atomic_load(&a1_chain);

	note_lib(si);
	atomic_fetch_add(&a1_count, 1);
	if (chain)
		chain(signo, si, uc);
}

static void a1_plain(int signo)
{
	(void)signo;
	atomic_fetch_add(&a1_count, 1);
}

static uintptr_t install_a0(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = a0_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	return (uintptr_t)a0_handler;
}

enum a1_kind { A1_RESTART, A1_CHAIN, A1_PLAIN, N_A1_KINDS };
static const char *const a1_names[] = {
	"SA_RESTART, no chaining", "SA_RESTART, chaining to what it replaced",
	"plain handler, no SA_RESTART",
};

/* Install the application's later handler; a chaining one calls the
 * handler it replaced, as libraries that share a signal do. */
static uintptr_t install_a1(int kind)
{
	struct sigaction sa, old;

	memset(&sa, 0, sizeof(sa));
	if (kind == A1_PLAIN) {
		sa.sa_handler = a1_plain;
	} else {
		sa.sa_sigaction = a1_handler;
		sa.sa_flags = SA_SIGINFO | SA_RESTART;
	}
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
	if (kind == A1_CHAIN && (old.sa_flags & SA_SIGINFO) &&
	    old.sa_sigaction != a1_handler)
		atomic_store(&a1_chain, old.sa_sigaction);
	return kind == A1_PLAIN ? (uintptr_t)a1_plain : (uintptr_t)a1_handler;
}

/* ------------------------------------------------------------ bodies */

static void *nop_body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

/* A plain read(2), which the library does not wrap: only the EINTR of its
 * own handler (no SA_RESTART) gets the body out. */
struct plain {
	int fd;
	atomic_int up;		/* the body's thread id, once it runs */
};

static void *plain_read_body(intr_ctx *ctx, void *arg)
{
	struct plain *p = arg;
	uint64_t end = h_deadline(BODY_MS);
	char b;

	atomic_store(&p->up, (int)h_gettid());
	while (!h_passed(end)) {
		ssize_t r = read(p->fd, &b, 1);

		if (r == 1)
			return BODY_RELEASED;
		if (r < 0 && errno == EINTR) {
			if (intr_cancelled(ctx))
				return BODY_CANCELLED;
			continue;
		}
		return BODY_ERROR;
	}
	return BODY_TIMEOUT;
}

/* Cancel a body blocked in a plain read() after a random delay; the
 * cancel must get it out.  Returns false if the body was skipped. */
static bool cancel_plain(struct h_rng *r, unsigned max_us, bool wait_up)
{
	struct plain p = { .fd = -1 };
	intr_token *tok = h_new_token(NULL);
	intr_task *t = NULL;
	void *res = BODY_MARK(1);
	int fds[2];

	h_make_pipe(fds);
	p.fd = fds[0];
	atomic_init(&p.up, 0);
	ck_assert_int_eq(intr_spawn(&t, tok, plain_read_body, &p), 0);
	if (wait_up)
		ck_assert(h_wait_atomic(&p.up, 1, WAIT_MS));
	h_spin_ns(h_rng_below(r, (uint64_t)max_us * 1000 + 1));
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_msg(res == BODY_CANCELLED || res == NULL,
		      "cancelled body returned %p", res);
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_close_pipe(fds);
	return res != NULL;
}

/* Send n process-directed signals; each must reach the application's
 * handler (counter c) exactly once. */
static void kill_n(int n, atomic_int *c)
{
	int base = atomic_load(c), i;

	for (i = 0; i < n; i++) {
		ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
		ck_assert_msg(h_wait_atomic(c, base + i + 1, WAIT_MS),
			      "kill %d never reached the application", i);
	}
	h_sleep_ms(5);
	ck_assert_int_eq(atomic_load(c), base + n);
}

/* ------------------------------------------- 1. handler installed after */

/* The library has installed its handler again over the application's
 * (the check after a cancel's send asks the service thread to). */
static bool ours_back(uintptr_t app)
{
	uint64_t end = h_deadline(WAIT_MS);
	struct sigaction sa;

	do {
		ck_assert_int_eq(sigaction(SIGUSR1, NULL, &sa), 0);
		if ((uintptr_t)sa.sa_sigaction != app)
			return true;
		h_sleep_ms(1);
	} while (!h_passed(end));
	return false;
}

/* The first cancel after the application replaced the handler with app:
 * its signal may reach the application's handler (nothing looks at the
 * handler before a call starts); the check after its send puts ours back
 * and sends again, so the cancel is not lost.  Any pass of the service
 * thread puts it back too (its first, at the start, may come after the
 * application's install): app is what the test installed, not what a
 * look after the install finds.  From then on, no signal of the
 * library's reaches the application: the counts start again. */
static void first_cancel_repairs(struct h_rng *r, uintptr_t app)
{
	cancel_plain(r, 50, true);
	ck_assert_msg(ours_back(app),
		      "the library's handler never came back");
	atomic_store(&lib_seen, 0);
	atomic_store(&a0_count, 0);
	atomic_store(&a1_count, 0);
}

START_TEST(app_handler_after_first_use)
{
	struct h_rng r;
	int i, ran = 0;

	printf("app_handler_after_first_use: %s\n", a1_names[_i]);
	h_rng_seed(&r, "app_handler_after_first_use");
	install_a0();
	ck_assert_int_eq(run_interruptible(NULL, nop_body, NULL, NULL), 0);
	first_cancel_repairs(&r, install_a1(_i));
	for (i = 0; i < 400; i++)
		ran += cancel_plain(&r, 200, i % 2);
	printf("app_handler_after_first_use: 400 cancels, %d reached a "
	       "running body\n", ran);
	ck_assert_int_gt(ran, 0);
	/* Foreign signals: to the newest handler, once each; on to the one
	 * before only if it passes them on itself. */
	kill_n(20, &a1_count);
	ck_assert_int_eq(atomic_load(&a0_count), _i == A1_CHAIN ? 20 : 0);
	ck_assert_int_eq(atomic_load(&lib_seen), 0);
}
END_TEST

/* The application installs its handler while a call is blocked: the
 * cancel that follows is not lost (the re-send brings ours back). */
START_TEST(app_handler_while_blocked)
{
	int i;

	install_a0();
	for (i = 0; i < 40; i++) {
		struct plain p = { .fd = -1 };
		intr_token *tok = h_new_token(NULL);
		intr_task *t = NULL;
		void *res = NULL;
		int fds[2];

		h_make_pipe(fds);
		p.fd = fds[0];
		atomic_init(&p.up, 0);
		ck_assert_int_eq(intr_spawn(&t, tok, plain_read_body, &p), 0);
		ck_assert(h_wait_atomic(&p.up, 1, WAIT_MS));
		ck_assert_msg(h_wait_blocked(atomic_load(&p.up), SYS_read,
					     WAIT_MS),
			      "the body never blocked in read()");
		install_a1(i % 2 ? A1_RESTART : A1_PLAIN);
		ck_assert_int_eq(intr_token_cancel(tok), 0);
		ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
		ck_assert_ptr_eq(res, BODY_CANCELLED);
		ck_assert_int_eq(intr_token_free(tok), 0);
		h_close_pipe(fds);
	}
	/* Until the library put its handler back, its signals went to the
	 * application's (lib_seen counts them): documented. */
	kill_n(10, &a1_count);
	ck_assert_int_eq(atomic_load(&a0_count), 0);
}
END_TEST

/* The application puts back the handler it had before: it gets the foreign
 * signals again, once each. */
START_TEST(app_handler_put_back)
{
	struct sigaction sa;
	struct h_rng r;
	int i;

	h_rng_seed(&r, "app_handler_put_back");
	install_a0();
	ck_assert_int_eq(run_interruptible(NULL, nop_body, NULL, NULL), 0);
	first_cancel_repairs(&r, install_a1(A1_RESTART));
	first_cancel_repairs(&r, install_a0());
	for (i = 0; i < 50; i++)
		cancel_plain(&r, 50, true);
	kill_n(10, &a0_count);
	ck_assert_int_eq(atomic_load(&a1_count), 0);
	ck_assert_int_eq(sigaction(SIGUSR1, NULL, &sa), 0);
	ck_assert(sa.sa_sigaction != a0_handler);
}
END_TEST

/* --------------------------------- 2. kill() from another process */

#define N_READERS 6
#define BYTES_EACH 3072

struct reader {
	int fd;
	long bytes;
	int err;
	bool cancelled;
};

/* Read until EOF with the wrapper; a foreign EINTR must never show. */
static void *reader_body(intr_ctx *ctx, void *arg)
{
	struct reader *rd = arg;
	char buf[64];

	for (;;) {
		ssize_t n = intr_read(ctx, rd->fd, buf, sizeof(buf));

		if (n > 0) {
			rd->bytes += n;
			continue;
		}
		if (n < 0)
			rd->err = (int)-n;
		break;
	}
	rd->cancelled = intr_cancelled(ctx);
	return rd;
}

/* A child process that sends SIGUSR1 to pid until killed. */
static pid_t start_killer(pid_t pid, unsigned gap_us)
{
	pid_t k = fork();

	ck_assert_int_ge(k, 0);
	if (k == 0) {
		for (;;) {
			struct timespec ts = { 0, (long)gap_us * 1000 };

			if (kill(pid, SIGUSR1))
				_exit(0);
			nanosleep(&ts, NULL);
		}
	}
	return k;
}

static void stop_child(pid_t k)
{
	int st;

	ck_assert_int_eq(kill(k, SIGKILL), 0);
	ck_assert_int_eq(waitpid(k, &st, 0), k);
}

/* Feed n bytes into each writer fd, a few at a time. */
static void feed(int *wfd, int nw, long n)
{
	char buf[16];
	long done;
	int k;

	memset(buf, 'd', sizeof(buf));
	for (done = 0; done < n; done += (long)sizeof(buf)) {
		for (k = 0; k < nw; k++) {
			ssize_t w;

			do
				w = write(wfd[k], buf, sizeof(buf));
			while (w < 0 && errno == EINTR);
			ck_assert_int_eq(w, (ssize_t)sizeof(buf));
		}
		if (done % 512 == 0)
			h_sleep_ms(1);
	}
}

START_TEST(process_kill_never_cancels)
{
	struct reader rd[N_READERS];
	intr_token *tok = h_new_token(NULL);
	intr_task *t[N_READERS];
	int fds[N_READERS][2], wfd[N_READERS], k;
	pid_t killer;
	void *res;

	install_a0();
	/* Before the pipes: the child must not hold their write ends. */
	killer = start_killer(getpid(), 50);
	memset(rd, 0, sizeof(rd));
	for (k = 0; k < N_READERS; k++) {
		h_make_pipe(fds[k]);
		rd[k].fd = fds[k][0];
		wfd[k] = fds[k][1];
		ck_assert_int_eq(intr_spawn(&t[k], tok, reader_body, &rd[k]), 0);
	}
	feed(wfd, N_READERS, BYTES_EACH);
	for (k = 0; k < N_READERS; k++)
		close(fds[k][1]);
	for (k = 0; k < N_READERS; k++) {
		ck_assert_int_eq(h_join_within(t[k], &res, WAIT_MS), 0);
		ck_assert_ptr_eq(res, &rd[k]);
		ck_assert_int_eq(rd[k].err, 0);
		ck_assert(!rd[k].cancelled);
		ck_assert_int_eq(rd[k].bytes, BYTES_EACH);
		close(fds[k][0]);
	}
	stop_child(killer);
	printf("process_kill_never_cancels: %d foreign signals handled by "
	       "the application\n", atomic_load(&a0_count));
	ck_assert_int_gt(atomic_load(&a0_count), 0);
	ck_assert_int_eq(atomic_load(&lib_seen), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* ------------------------------------------------- 3. SIGPROF, SIGALRM */

static atomic_int prof_count, alrm_count;

static void on_prof(int s)
{
	(void)s;
	atomic_fetch_add(&prof_count, 1);
}

static void on_alrm(int s)
{
	(void)s;
	atomic_fetch_add(&alrm_count, 1);
}

struct sleeper {
	int n, err, cancelled;
};

static void *sleeper_body(intr_ctx *ctx, void *arg)
{
	struct sleeper *s = arg;
	sigset_t set;
	int k, r;

	/* A body that wants the timers' signals unblocks them itself. */
	sigemptyset(&set);
	sigaddset(&set, SIGPROF);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	for (k = 0; k < s->n; k++) {
		r = intr_sleep(ctx, 200000);
		if (r == -ECANCELED || r == -ETIMEDOUT)
			s->cancelled++;
		else if (r)
			s->err = -r;
	}
	return s;
}

static void *unblocked_reader_body(intr_ctx *ctx, void *arg)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPROF);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return reader_body(ctx, arg);
}

START_TEST(timers_no_spurious_cancel)
{
	struct itimerval it = { { 0, 1000 }, { 0, 1000 } };
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	struct reader rd[N_READERS];
	struct sleeper sl[N_READERS];
	intr_task *t[N_READERS], *ts[N_READERS];
	int fds[N_READERS][2], wfd[N_READERS], k, round;
	struct sigaction sa;
	intr_token *tok = h_new_token(NULL);
	struct h_rng r;
	uint64_t end;
	void *res;

	printf("timers_no_spurious_cancel: handlers %s SA_RESTART\n",
	       _i ? "with" : "without");
	h_rng_seed(&r, "timers_no_spurious_cancel");
	memset(&sa, 0, sizeof(sa));
	sa.sa_flags = _i ? SA_RESTART : 0;
	sa.sa_handler = on_prof;
	ck_assert_int_eq(sigaction(SIGPROF, &sa, NULL), 0);
	sa.sa_handler = on_alrm;
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	ck_assert_int_eq(setitimer(ITIMER_PROF, &it, NULL), 0);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);

	/* At least 3 rounds and 300 ms of 1 kHz timers. */
	end = h_deadline(300);
	for (round = 0; round < 3 || !h_passed(end); round++) {
		memset(rd, 0, sizeof(rd));
		memset(sl, 0, sizeof(sl));
		for (k = 0; k < N_READERS; k++) {
			h_make_pipe(fds[k]);
			rd[k].fd = fds[k][0];
			wfd[k] = fds[k][1];
			ck_assert_int_eq(intr_spawn(&t[k], tok,
						    k % 2 ? reader_body :
						    unblocked_reader_body,
						    &rd[k]), 0);
			sl[k].n = 20;
			ck_assert_int_eq(intr_spawn(&ts[k], tok, sleeper_body,
						    &sl[k]), 0);
		}
		/* Cancelled calls in between: they must still work. */
		for (k = 0; k < 30; k++)
			cancel_plain(&r, 100, k % 2);
		feed(wfd, N_READERS, BYTES_EACH / 3);
		for (k = 0; k < N_READERS; k++)
			close(fds[k][1]);
		for (k = 0; k < N_READERS; k++) {
			ck_assert_int_eq(h_join_within(t[k], &res, WAIT_MS), 0);
			ck_assert_int_eq(rd[k].err, 0);
			ck_assert(!rd[k].cancelled);
			ck_assert_int_eq(rd[k].bytes, BYTES_EACH / 3);
			close(fds[k][0]);
			ck_assert_int_eq(h_join_within(ts[k], &res, WAIT_MS), 0);
			ck_assert_int_eq(sl[k].err, 0);
			ck_assert_int_eq(sl[k].cancelled, 0);
		}
	}
	ck_assert_int_eq(setitimer(ITIMER_PROF, &off, NULL), 0);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
	printf("timers_no_spurious_cancel: %d rounds, SIGPROF %d, "
	       "SIGALRM %d\n", round, atomic_load(&prof_count),
	       atomic_load(&alrm_count));
	ck_assert_int_gt(atomic_load(&alrm_count), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* --------------------------------------------- 4. non-worker threads */

static atomic_bool idle_stop;

static void *idle_thread(void *unused)
{
	(void)unused;
	while (!atomic_load(&idle_stop))
		h_sleep_ms(1);
	return NULL;
}

START_TEST(non_workers_never_signalled)
{
	pthread_t th[3];
	struct h_rng r;
	sigset_t set;
	int i, ran = 0;

	h_rng_seed(&r, "non_workers_never_signalled");
	install_a0();
	/* The main thread and three others take SIGUSR1. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, idle_thread,
						NULL), 0);
	for (i = 0; i < 2000; i++)
		ran += cancel_plain(&r, 100, i % 4 == 0);
	atomic_store(&idle_stop, true);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	printf("non_workers_never_signalled: 2000 cancels, %d of running "
	       "bodies; library signals at non-workers %d\n", ran,
	       atomic_load(&lib_seen));
	ck_assert_int_eq(atomic_load(&lib_seen), 0);
	ck_assert_int_eq(atomic_load(&a0_count), 0);
}
END_TEST

/* ------------------------------------------------ 5. fork() + exec() */

/* The program as a child: a cancelled call and a normal one must work. */
static int child_main(void)
{
	struct plain p = { .fd = -1 };
	intr_token *tok;
	intr_task *t;
	void *res = NULL;
	int fds[2], ret;

	if (pipe(fds) || intr_token_new(&tok, NULL))
		return 2;
	p.fd = fds[0];
	atomic_init(&p.up, 0);
	if (intr_spawn(&t, tok, plain_read_body, &p))
		return 3;
	if (!h_wait_atomic(&p.up, 1, WAIT_MS) ||
	    !h_wait_blocked(atomic_load(&p.up), SYS_read, WAIT_MS))
		return 6;
	intr_token_cancel(tok);
	ret = intr_join(t, &res);
	if (ret != -ECANCELED || res != BODY_CANCELLED)
		return 4;
	if (run_interruptible(NULL, nop_body, &p, &res) || res != &p)
		return 5;
	return 0;
}

static char *const child_argv[] = { "check-coexist", NULL };
static char **child_envp;

/* The environment for the child (the libtool wrapper's library path
 * included), built before any fork: the child of a body may only exec. */
static void make_child_env(void)
{
	extern char **environ;
	int n = 0, k;

	while (environ[n])
		n++;
	child_envp = calloc((size_t)n + 2, sizeof(*child_envp));
	ck_assert_ptr_nonnull(child_envp);
	for (k = 0; k < n; k++)
		child_envp[k] = environ[k];
	child_envp[n] = CHILD_ENV "=1";
}

static int wait_exit(pid_t pid)
{
	uint64_t end = h_deadline(WAIT_MS * 2);
	int st;
	pid_t w;

	while ((w = waitpid(pid, &st, WNOHANG)) == 0) {
		if (h_passed(end)) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			ck_abort_msg("child %d did not exit in time", (int)pid);
		}
		h_sleep_ms(2);
	}
	ck_assert_int_eq(w, pid);
	ck_assert_msg(WIFEXITED(st), "child died, status 0x%x", st);
	return WEXITSTATUS(st);
}

static char self_path[4096] = "/proc/self/exe";

static void *fork_exec_body(intr_ctx *ctx, void *arg)
{
	pid_t pid;

	(void)ctx;
	(void)arg;
	pid = fork();
	if (pid == 0) {
		execve(self_path, child_argv, child_envp);
		_exit(127);
	}
	return (void *)(intptr_t)pid;
}

START_TEST(fork_exec)
{
	struct plain p[3];
	intr_token *tok = h_new_token(NULL);
	intr_task *t[3];
	void *res;
	int fds[3][2], k, round;
	pid_t pid;

	make_child_env();
	for (k = 0; k < 3; k++) {
		h_make_pipe(fds[k]);
		p[k].fd = fds[k][0];
		atomic_init(&p[k].up, 0);
		ck_assert_int_eq(intr_spawn(&t[k], tok, plain_read_body,
					    &p[k]), 0);
		ck_assert(h_wait_atomic(&p[k].up, 1, WAIT_MS));
	}
	for (round = 0; round < 10; round++) {
		if (_i == 0) {
			pid = fork();
			ck_assert_int_ge(pid, 0);
			if (pid == 0) {
				execve(self_path, child_argv,
				       child_envp);
				_exit(127);
			}
		} else {
			ck_assert_int_eq(run_interruptible(NULL,
				fork_exec_body, NULL, &res), 0);
			pid = (pid_t)(intptr_t)res;
			ck_assert_int_gt(pid, 0);
		}
		ck_assert_int_eq(wait_exit(pid), 0);
	}
	/* The parent's blocked calls were not disturbed, and still work. */
	for (k = 0; k < 3; k++)
		ck_assert(!h_task_done(t[k]));
	h_write_byte(fds[0][1]);
	ck_assert_int_eq(h_join_within(t[0], &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	for (k = 1; k < 3; k++) {
		ck_assert_int_eq(h_join_within(t[k], &res, WAIT_MS),
				 -ECANCELED);
		ck_assert_ptr_eq(res, BODY_CANCELLED);
	}
	for (k = 0; k < 3; k++)
		h_close_pipe(fds[k]);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* ------------------------------------------------------ 6. strace -p */

static int tracer_of(pid_t tid)
{
	char path[64], line[256];
	int tracer = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "TracerPid: %d", &tracer) == 1)
			break;
	fclose(f);
	return tracer;
}

struct traced {
	struct plain p;
	atomic_int tid;
};

static void *traced_body(intr_ctx *ctx, void *arg)
{
	struct traced *tr = arg;

	atomic_store(&tr->tid, (int)h_gettid());
	return plain_read_body(ctx, &tr->p);
}

/* Attach strace to a worker blocked in a call (_i 0), or to the whole
 * process (_i 1), and detach: no cancel, and cancels work after. */
START_TEST(strace_attach)
{
	static const char *const paths[] = { "/usr/bin/strace", "/bin/strace" };
	const char *strace = NULL;
	struct traced tr[4];
	intr_token *tok = h_new_token(NULL);
	intr_task *t[4];
	int fds[4][2], k;
	struct h_rng r;
	char target[32];
	pid_t st;
	void *res;

	for (k = 0; k < 2; k++)
		if (!access(paths[k], X_OK))
			strace = paths[k];
	if (!strace) {
		printf("strace_attach: SKIP: no strace installed\n");
		return;
	}
	h_rng_seed(&r, "strace_attach");
	prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
	for (k = 0; k < 4; k++) {
		h_make_pipe(fds[k]);
		tr[k].p.fd = fds[k][0];
		atomic_init(&tr[k].p.up, 0);
		atomic_init(&tr[k].tid, 0);
		ck_assert_int_eq(intr_spawn(&t[k], tok, traced_body, &tr[k]),
				 0);
		ck_assert(h_wait_atomic(&tr[k].p.up, 1, WAIT_MS));
	}
	snprintf(target, sizeof(target), "%d",
		 _i ? (int)getpid() : atomic_load(&tr[0].tid));
	st = fork();
	ck_assert_int_ge(st, 0);
	if (st == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, 1);
		dup2(devnull, 2);
		if (_i)
			execl(strace, "strace", "-q", "-f", "-o", "/dev/null",
			      "-p", target, (char *)NULL);
		else
			execl(strace, "strace", "-q", "-o", "/dev/null", "-p",
			      target, (char *)NULL);
		_exit(127);
	}
	{
		uint64_t end = h_deadline(WAIT_MS);
		int status;

		while (tracer_of(atomic_load(&tr[0].tid)) != st) {
			if (waitpid(st, &status, WNOHANG) == st) {
				printf("strace_attach: SKIP: strace could not "
				       "attach here (exit 0x%x)\n", status);
				goto out;
			}
			ck_assert_msg(!h_passed(end), "strace never attached");
			h_sleep_ms(5);
		}
	}
	/* Traced: calls come and go, get cancelled; the traced bodies stay. */
	for (k = 0; k < 20; k++)
		cancel_plain(&r, 100, true);
	ck_assert_int_eq(tracer_of(atomic_load(&tr[0].tid)), st);
	for (k = 0; k < 4; k++)
		ck_assert_msg(!h_task_done(t[k]), "traced body %d ended", k);
	/* Detach: strace leaves on SIGTERM. */
	ck_assert_int_eq(kill(st, SIGTERM), 0);
	{
		int status;

		ck_assert_int_eq(waitpid(st, &status, 0), st);
		ck_assert_msg((WIFEXITED(status) && !WEXITSTATUS(status)) ||
			      (WIFSIGNALED(status) &&
			       WTERMSIG(status) == SIGTERM),
			      "strace ended with status 0x%x", status);
	}
	st = 0;
	ck_assert_int_eq(tracer_of(atomic_load(&tr[0].tid)), 0);
	for (k = 0; k < 4; k++)
		ck_assert_msg(!h_task_done(t[k]), "body %d ended at detach", k);
	for (k = 0; k < 20; k++)
		cancel_plain(&r, 100, true);
	printf("strace_attach: %s traced and released, 40 cancels around "
	       "it, no traced body disturbed\n", _i ? "process" : "worker");
out:
	if (st > 0) {
		kill(st, SIGKILL);
		waitpid(st, NULL, 0);
	}
	h_write_byte(fds[0][1]);
	ck_assert_int_eq(h_join_within(t[0], &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	for (k = 1; k < 4; k++) {
		ck_assert_int_eq(h_join_within(t[k], &res, WAIT_MS),
				 -ECANCELED);
		ck_assert_ptr_eq(res, BODY_CANCELLED);
	}
	for (k = 0; k < 4; k++)
		h_close_pipe(fds[k]);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* --------------------------------------- 5. how a chained handler runs */

/*
 * A foreign signal reaches the application's handler through the
 * library's: it must run as the kernel would have run it, installed on its
 * own: under its own mask and flags, and able to leave by siglongjmp.
 */
static sigjmp_buf chain_env;
static atomic_int chain_count;
static sigset_t chain_mask_seen;
static void *chain_stack_lo;
static size_t chain_stack_size;
static atomic_int chain_on_alt;

static atomic_int chain_jump;	/* chain_env is set: jump there */

static void chain_longjmp(int signo, siginfo_t *si, void *uc)
{
	(void)signo;
	(void)si;
	(void)uc;
	atomic_fetch_add(&chain_count, 1);
	if (atomic_load(&chain_jump))
		siglongjmp(chain_env, 1);
}

static void chain_record(int signo, siginfo_t *si, void *uc)
{
	char here;

	(void)signo;
	(void)si;
	(void)uc;
	pthread_sigmask(SIG_BLOCK, NULL, &chain_mask_seen);
	if (chain_stack_lo && (char *)&here >= (char *)chain_stack_lo &&
	    (char *)&here < (char *)chain_stack_lo + chain_stack_size)
		atomic_fetch_add(&chain_on_alt, 1);
	atomic_fetch_add(&chain_count, 1);
}

static void install_chain(int signo, void (*fn)(int, siginfo_t *, void *),
			  int flags, const sigset_t *mask)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | flags;
	if (mask)
		sa.sa_mask = *mask;
	else
		sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(signo, &sa, NULL), 0);
}

/* A handler that leaves by siglongjmp, three times: each of the three
 * signals must reach it (the library's pass-on state must not stay behind
 * in the abandoned frame).  _i 0: installed before the library's; 1: over
 * it, later. */
START_TEST(chained_handler_longjmp)
{
	volatile int round;
	struct h_rng r;

	h_rng_seed(&r, "chained_handler_longjmp");
	if (_i == 0)
		install_chain(SIGUSR1, chain_longjmp, 0, NULL);
	ck_assert_int_eq(run_interruptible(NULL, nop_body, NULL, NULL), 0);
	if (_i == 1) {
		install_chain(SIGUSR1, chain_longjmp, 0, NULL);
		/* The next cancel records it (its signal may reach it
		 * first, which returns then). */
		first_cancel_repairs(&r, (uintptr_t)chain_longjmp);
		atomic_store(&chain_count, 0);
	}
	atomic_store(&chain_jump, 1);
	for (round = 0; round < 3; round++) {
		if (!sigsetjmp(chain_env, 1))
			raise(SIGUSR1);	/* delivered before raise returns */
		ck_assert_msg(atomic_load(&chain_count) == round + 1,
			      "signal %d: the handler ran %d times", round + 1,
			      atomic_load(&chain_count));
	}
	atomic_store(&chain_jump, 0);
	/* Cancels still work. */
	cancel_plain(&r, 50, true);
}
END_TEST

/* The chained handler's mask: the interrupted code's, plus its sa_mask,
 * plus the signal itself unless SA_NODEFER (_i 1) - not every signal. */
START_TEST(chained_handler_mask)
{
	sigset_t extra, blocked, old;

	sigemptyset(&extra);
	sigaddset(&extra, SIGUSR2);
	install_chain(SIGUSR1, chain_record, _i ? SA_NODEFER : 0, &extra);
	ck_assert_int_eq(run_interruptible(NULL, nop_body, NULL, NULL), 0);
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGWINCH);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &blocked, &old), 0);
	ck_assert_int_eq(raise(SIGUSR1), 0);
	ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	ck_assert_int_eq(atomic_load(&chain_count), 1);
	ck_assert_msg(sigismember(&chain_mask_seen, SIGUSR2),
		      "its sa_mask is not blocked");
	ck_assert_msg(sigismember(&chain_mask_seen, SIGWINCH),
		      "the interrupted code's mask is not kept");
	ck_assert_msg(!sigismember(&chain_mask_seen, SIGTERM) &&
		      !sigismember(&chain_mask_seen, SIGALRM),
		      "it runs with signals blocked it did not ask for");
	if (_i)
		ck_assert_msg(!sigismember(&chain_mask_seen, SIGUSR1),
			      "SA_NODEFER: the signal itself is blocked");
	else
		ck_assert_msg(sigismember(&chain_mask_seen, SIGUSR1),
			      "the signal itself is not blocked");
}
END_TEST

/* SA_RESETHAND: the first signal runs the handler, the next one gets the
 * default disposition, which for SIGUSR2 ends the process (the test is
 * registered to end by SIGUSR2). */
START_TEST(chained_handler_resethand)
{
	struct intr_config cfg;

	intr_config_default(&cfg);
	cfg.signo = SIGUSR2;
	ck_assert_int_eq(intr_configure(&cfg), 0);
	install_chain(SIGUSR2, chain_record, SA_RESETHAND, NULL);
	ck_assert_int_eq(run_interruptible(NULL, nop_body, NULL, NULL), 0);
	ck_assert_int_eq(raise(SIGUSR2), 0);
	ck_assert_int_eq(atomic_load(&chain_count), 1);
	ck_assert_int_eq(run_interruptible(NULL, nop_body, NULL, NULL), 0);
	raise(SIGUSR2);
	ck_abort_msg("SA_RESETHAND handler ran %d times; the second signal "
		     "did not end the process", atomic_load(&chain_count));
}
END_TEST

/* SA_ONSTACK: a thread with an alternate signal stack runs the chained
 * handler there, as the kernel would. */
START_TEST(chained_handler_onstack)
{
	stack_t ss, old;

	chain_stack_size = 1 << 16;
	chain_stack_lo = malloc(chain_stack_size);
	ck_assert_ptr_nonnull(chain_stack_lo);
	memset(&ss, 0, sizeof(ss));
	ss.ss_sp = chain_stack_lo;
	ss.ss_size = chain_stack_size;
	ck_assert_int_eq(sigaltstack(&ss, &old), 0);
	install_chain(SIGUSR1, chain_record, SA_ONSTACK, NULL);
	ck_assert_int_eq(run_interruptible(NULL, nop_body, NULL, NULL), 0);
	ck_assert_int_eq(raise(SIGUSR1), 0);
	ck_assert_int_eq(atomic_load(&chain_count), 1);
	ck_assert_msg(atomic_load(&chain_on_alt) == 1,
		      "SA_ONSTACK handler ran on the normal stack");
	ss.ss_flags = SS_DISABLE;
	ck_assert_int_eq(sigaltstack(&ss, NULL), 0);
	free(chain_stack_lo);
	chain_stack_lo = NULL;
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *make_suite(void)
{
	Suite *s = suite_create("coexist");
	TCase *tc;

	tc = h_tcase(s, "handler", 60);
	tcase_add_loop_test(tc, app_handler_after_first_use, 0, N_A1_KINDS);
	tcase_add_test(tc, app_handler_while_blocked);
	tcase_add_test(tc, app_handler_put_back);

	tc = h_tcase(s, "chained", 60);
	tcase_add_loop_test(tc, chained_handler_longjmp, 0, 2);
	tcase_add_loop_test(tc, chained_handler_mask, 0, 2);
	tcase_add_test_raise_signal(tc, chained_handler_resethand, SIGUSR2);
	tcase_add_test(tc, chained_handler_onstack);

	tc = h_tcase(s, "foreign-process", 60);
	tcase_set_tags(tc, H_TAG_QEMU_OPEN);
	tcase_add_test(tc, process_kill_never_cancels);

	tc = h_tcase(s, "foreign", 60);
	tcase_add_loop_test(tc, timers_no_spurious_cancel, 0, 2);
	tcase_add_test(tc, non_workers_never_signalled);
	tcase_add_loop_test(tc, strace_attach, 0, 2);

	tc = h_tcase(s, "exec", 60);
	tcase_set_tags(tc, H_TAG_THREADED_FORK);
	tcase_add_loop_test(tc, fork_exec, 0, 2);
	return s;
}

int main(void)
{
	ssize_t n;

	if (getenv(CHILD_ENV))
		return child_main();
	/* Resolved now: under valgrind, /proc/self/exe names valgrind's own
	 * program to execve(), while readlink() of it is answered with the
	 * test's path. */
	n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	if (n > 0)
		self_path[n] = 0;
	return h_run_suite(make_suite());
}
