/* SPDX-License-Identifier: MIT */
/*
 * window-race: proves the system call window of lib/arch/<arch>/ on the
 * machine (or emulator) it runs on.  Plain C, no test framework, so that
 * the same binary runs natively and under qemu-aarch64.
 *
 * The library is configured with a re-send interval of 10 s, so no cancel
 * can be rescued by a re-send within the bounds used here: every cancel
 * must be caught by the flag check, the window, or EINTR.
 *
 * 1. (x86-64) The cancel lands exactly inside the window.  The body is
 *    single-stepped with the trap flag; when the next instruction is the
 *    window's "syscall", the SIGTRAP handler cancels the call, whose signal
 *    is then delivered with the PC on that instruction.  The write must not
 *    happen and intr_write must return -ECANCELED.
 * 2. (x86-64, aarch64) The cancel is pending as the thread resumes on the
 *    window's system call instruction itself: a handler of the test's
 *    cancels the call (its signal stays blocked meanwhile) and rewrites the
 *    context it returns to so that execution continues on that instruction,
 *    set up for write(2).  The interrupt is delivered right there; the
 *    write must not happen and the window must return -ECANCELED.  This
 *    one needs the window's (hidden) labels: the test links the static
 *    library.
 *    Both 1 and 2 run first with a forged signal instead of the cancel:
 *    what another process may send (SI_QUEUE, this pid, a guessed value).
 *    The call is not cancelled, so the write must happen and nothing may
 *    report a cancel.
 * 3. Races: a body calls intr_syscall(SYS_read), intr_read, intr_sleep or
 *    intr_cond_wait once, on something that never completes, and the cancel
 *    lands before the spawn or 0-50 us after it.  Every call must return
 *    -ECANCELED from the wrapper itself, before the re-send could have
 *    rescued it.
 * 4. (x86-64, aarch64) A cancel made from a SIGPROF handler (SA_RESTART)
 *    that runs over a body blocked in a wrapper: the library's signal is
 *    handled inside that handler, and the restarted system call must
 *    still return -ECANCELED at once, leaving the signal unblocked.
 *
 * Every case runs on both hosts of tests/host.h, with the same counts:
 * on a pool worker (intr_spawn), then in place (intr_run_here on a thread
 * of the test's own, which runs scope after scope, so whatever one leaves
 * on the thread meets the next).  The single step, the forced window and
 * the nested handler act on whichever thread runs the body: in place, the
 * trap flag, the rewritten context and the SIGPROF are the application
 * thread's, and the cancel reaches the scope through the token it is
 * bound under.  The forged cases of both hosts run before anything else.
 *
 * Output is TAP (tests/tap.h): one line per test and host ("pool: ...",
 * "in place: ..."), skipped as a whole where the library was built
 * without an assembly window.  Exit status 0 when all passed, 1 otherwise.
 * usage: window-race [iterations]     (default 20000, on each host)
 */
#include "config.h"

#include "clock.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <interruptible.h>


#if !INTR_TEST_WINDOW
int main(void)
{
	tap_skip_all("built without an assembly system call window");
}
#else
#include "host.h"

#define JOIN_BOUND_MS 3000
#define STEP_ROUNDS 1000

static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void result(const char *name, int bad, const char *detail)
{
	tap_ok(!bad, "%s: %s: %s", h_host_names[h_host_now], name, detail);
}

/*
 * Join with a bound: a lost cancel fails instead of hanging.  With the
 * re-send 10 s away, a cancel the window lost ends the call only then, or
 * never; a call that ends before that was merely starved of CPU on a busy
 * machine, which is reported (*late_ms) but is no failure.  So wait up to
 * LOST_MS for the call: past it, *timed_out says the cancel was lost (and
 * the re-send, or nothing, ended the call).  A call still running at
 * GIVE_UP_MS cannot be joined safely: the program stops there, failing.
 */
#define LOST_MS 9500		/* the re-send comes at 10 s */
#define GIVE_UP_MS 15000

static int join_bounded(intr_task *t, void **res, int *timed_out,
			long *late_ms)
{
	struct pollfd p = { .fd = host_task_fd(t), .events = POLLIN };
	uint64_t start = h_now_ns();
	uint64_t give_up = start + (uint64_t)GIVE_UP_MS * 1000000u;
	int64_t left;
	long ms;

	while ((left = (int64_t)(give_up - h_now_ns())) > 0)
		if (poll(&p, 1, (int)(left / 1000000) + 1) > 0)
			break;
	ms = (long)((h_now_ns() - start) / 1000000);
	if (ms >= JOIN_BOUND_MS)
		*late_ms = ms;
	if (ms >= LOST_MS)
		*timed_out = 1;
	if (left <= 0 && poll(&p, 1, 0) <= 0) {
		printf("Bail out! a cancelled call still runs after %d ms\n",
		       GIVE_UP_MS);
		fflush(stdout);
		_exit(1);
	}
	return host_join(t, res);
}

/* ------------------------------------------------------- forged signals */
/*
 * What another process may send: the library's signal, thread-directed,
 * with si_code SI_QUEUE, this process's pid and a value made as the
 * library once made its own, from a fixed constant and a guessed cookie
 * (a counter: the nth call of the process had cookie n).  The forged tests
 * run first, so the guess is right for that scheme.  Such a signal must
 * never make a wrapper report a cancel: the call's reason is not set.
 */
#define OLD_MAGIC 0x1a7e51c0a5c0ffeeull

static uint64_t calls_started;	/* spawns so far: the guessed cookie */
static atomic_int foreign_seen;

static void forge_signal(void)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = SIGUSR1;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_ptr = (void *)(uintptr_t)(OLD_MAGIC ^ calls_started);
	syscall(SYS_rt_tgsigqueueinfo, getpid(), syscall(SYS_gettid), SIGUSR1,
		&si);
}

/* The application's own handler for the signal: forged signals are
 * foreign, so they come here. */
static void on_foreign(int sig)
{
	(void)sig;
	atomic_fetch_add(&foreign_seen, 1);
}

/* ----------------------------------------------------------- single step */
#if defined(__x86_64__)
#define X86_TF 0x100

static intr_token *step_tok;
static atomic_int step_state;	/* 0 idle, 1 stepping, 2 cancelled */
static long step_ret;

static bool step_forge;		/* a forged signal instead of the cancel */

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
		/* The next instruction is the window's "syscall". */
		if (step_forge)
			forge_signal();
		else
			intr_token_cancel(step_tok);
		atomic_store(&step_state, 2);
		gr[REG_EFL] &= ~(greg_t)X86_TF;
	}
}

static void *step_body(intr_ctx *ctx, void *arg)
{
	int *fds = arg;

	/* Resolve the PLT entry first: nothing but the window may make a
	 * system call between arming and the wrapper's own. */
	intr_write(ctx, -1, "", 0);
	atomic_store(&step_state, 1);
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGTRAP);
	step_ret = intr_write(ctx, fds[1], "x", 1);
	return NULL;
}

static void test_single_step(bool forge)
{
	const char *name = forge ? "single_step_forged" : "single_step";
	struct sigaction sa;
	int fds[2], i, bad = 0, written = 0, other = 0;
	char buf[16], msg[200];

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_trap;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);	/* delivered after sigreturn */
	if (sigaction(SIGTRAP, &sa, NULL) || pipe2(fds, O_NONBLOCK)) {
		result(name, 1, "setup failed");
		return;
	}
	step_forge = forge;
	for (i = 0; i < STEP_ROUNDS; i++) {
		int timed_out = 0;
		long late_ms = 0;
		intr_task *t;

		intr_token_new(&step_tok, NULL);
		atomic_store(&step_state, 0);
		step_ret = 0;
		calls_started++;	/* before: the body reads it */
		if (host_spawn(&t, step_tok, step_body, fds)) {
			bad++;
			break;
		}
		join_bounded(t, NULL, &timed_out, &late_ms);
		if (read(fds[0], buf, sizeof(buf)) > 0)
			written++;
		if (timed_out || atomic_load(&step_state) != 2 ||
		    step_ret != (forge ? 1 : -ECANCELED))
			other++;
		intr_token_free(step_tok);
	}
	if (forge)
		snprintf(msg, sizeof(msg),
			 "%d forged signals landing on the syscall "
			 "instruction: %d writes went through, %d other "
			 "(a false -ECANCELED is one)", i, written, other);
	else
		snprintf(msg, sizeof(msg),
			 "%d cancels landing on the syscall instruction: %d "
			 "returned -ECANCELED, %d let the write through, %d "
			 "other", i, i - other, written, other);
	result(name, bad || (forge ? written != i : written != 0) || other,
	       msg);
	close(fds[0]);
	close(fds[1]);
	signal(SIGTRAP, SIG_DFL);
}
#endif

/* ------------------------------------------------------- forced window */
#if defined(__x86_64__) || defined(__aarch64__)
#define FORCED_ROUNDS 1000

extern char intr__sc_begin[], intr__sc_end[];

static intr_token *forced_tok;
static int forced_fd;
static sigjmp_buf forced_env;
static volatile long forced_ret;
#if defined(__x86_64__)
static _Alignas(16) unsigned char landing_stack[16384];
#endif

/* Where the window's final "ret" goes: back into the body.  On aarch64
 * the result register is also the first argument's; x86-64 needs a hop
 * from %rax to %rdi. */
void forced_landing(long r);
void forced_landing(long r)
{
	forced_ret = r;
	siglongjmp(forced_env, 1);
}

#if defined(__x86_64__)
__attribute__((naked)) static void landing(void)
{
	__asm__ volatile("movq %rax, %rdi\n\tjmp forced_landing");
}
#else
#define landing forced_landing
#endif

static bool forced_forge;

static void on_usr2(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;

	/* The library's signal is blocked in here (sa_mask) and stays
	 * pending until the context below is resumed. */
	if (forced_forge)
		forge_signal();
	else
		intr_token_cancel(forced_tok);
#if defined(__x86_64__)
	{
		greg_t *gr = uc->uc_mcontext.gregs;
		uintptr_t sp = (uintptr_t)(landing_stack + sizeof(landing_stack) - 64);

		*(uintptr_t *)sp = (uintptr_t)landing;	/* "ret" pops it */
		gr[REG_RSP] = (greg_t)sp;
		gr[REG_RAX] = SYS_write;
		gr[REG_RDI] = forced_fd;
		gr[REG_RSI] = (greg_t)(uintptr_t)"x";
		gr[REG_RDX] = 1;
		gr[REG_RIP] = (greg_t)((uintptr_t)intr__sc_end - 2); /* syscall */
	}
#else
	uc->uc_mcontext.regs[8] = SYS_write;
	uc->uc_mcontext.regs[0] = (unsigned long)forced_fd;
	uc->uc_mcontext.regs[1] = (unsigned long)(uintptr_t)"x";
	uc->uc_mcontext.regs[2] = 1;
	uc->uc_mcontext.regs[30] = (unsigned long)(uintptr_t)landing;
	uc->uc_mcontext.pc = (uintptr_t)intr__sc_end - 4;	/* svc */
#endif
}

static void *forced_body(intr_ctx *ctx, void *arg)
{
	sigset_t usr2;

	(void)ctx;
	(void)arg;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);
	forced_ret = 0;
	if (!sigsetjmp(forced_env, 0)) {
		syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR2);
		forced_ret = -1000;	/* not reached if the handler ran */
	}
	pthread_sigmask(SIG_BLOCK, &usr2, NULL);
	return NULL;
}

static void test_forced_window(bool forge)
{
	const char *name = forge ? "forced_window_forged" : "forced_window";
	struct sigaction sa;
	int fds[2], i, bad = 0, written = 0, other = 0;
	char buf[16], msg[200];

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_usr2;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	if (sigaction(SIGUSR2, &sa, NULL) || pipe2(fds, O_NONBLOCK)) {
		result(name, 1, "setup failed");
		return;
	}
	forced_fd = fds[1];
	forced_forge = forge;
	for (i = 0; i < FORCED_ROUNDS; i++) {
		int timed_out = 0, ret;
		long late_ms = 0;
		intr_task *t;

		intr_token_new(&forced_tok, NULL);
		calls_started++;	/* before: the body reads it */
		if (host_spawn(&t, forced_tok, forced_body, NULL)) {
			bad++;
			break;
		}
		ret = join_bounded(t, NULL, &timed_out, &late_ms);
		if (read(fds[0], buf, sizeof(buf)) > 0)
			written++;
		if (forge ? timed_out || ret != 0 || forced_ret != 1 :
		    timed_out || ret != -ECANCELED || forced_ret != -ECANCELED)
			other++;
		intr_token_free(forced_tok);
	}
	if (forge)
		snprintf(msg, sizeof(msg),
			 "%d forged signals pending on the window's system "
			 "call instruction: %d writes went through, %d other "
			 "(the cancel exit taken is one)", i, written, other);
	else
		snprintf(msg, sizeof(msg),
			 "%d cancels pending on the window's system call "
			 "instruction: %d left by the cancel exit, %d let the "
			 "write through, %d other", i, i - other, written,
			 other);
	result(name, bad || (forge ? written != i : written != 0) || other,
	       msg);
	close(fds[0]);
	close(fds[1]);
	signal(SIGUSR2, SIG_DFL);
}
#endif

/* ------------------------------------------------------ nested handler */
/*
 * The cancel's signal lands in another signal's handler that interrupted
 * the window's system call.  SIGPROF, installed with SA_RESTART and
 * without blocking the library's signal, reaches a body blocked in a
 * wrapper: the kernel rewinds the body's PC to the system call instruction
 * (to restart it) and runs the SIGPROF handler, which cancels the call.
 * The library's signal is delivered inside that handler, where the PC is
 * not in the window; the restarted system call must still not block:
 * with re-sends 10 s away, the wrapper has to return the reason at once.
 * Afterwards the body's mask must let the library's signal in again.
 */
#define NESTED_ROUNDS 200
enum nested_kind { N_READ, N_SLEEP, N_SYSCALL, N_NR };
static const char *const nested_name[N_NR] = {
	"intr_read", "intr_sleep", "intr_syscall(SYS_read)",
};

static intr_token *nested_tok;
static atomic_int nested_tid;
static atomic_int nested_profs;

static void on_prof_cancel(int sig)
{
	(void)sig;
	atomic_fetch_add(&nested_profs, 1);
	intr_token_cancel(nested_tok);
}

struct nested {
	enum nested_kind kind;
	int rfd;
	volatile long ret;
	volatile int usr1_blocked;
};

static void *nested_body(intr_ctx *ctx, void *arg)
{
	struct nested *n = arg;
	sigset_t prof, cur;
	char b;

	sigemptyset(&prof);
	sigaddset(&prof, SIGPROF);
	pthread_sigmask(SIG_UNBLOCK, &prof, NULL);
	atomic_store(&nested_tid, (int)syscall(SYS_gettid));
	switch (n->kind) {
	case N_READ:
		n->ret = intr_read(ctx, n->rfd, &b, 1);
		break;
	case N_SLEEP:
		n->ret = intr_sleep(ctx, 20ull * 1000000000u);
		break;
	default:
		n->ret = intr_syscall(ctx, SYS_read, n->rfd, &b, 1);
		break;
	}
	pthread_sigmask(SIG_BLOCK, &prof, NULL);
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	n->usr1_blocked = sigismember(&cur, SIGUSR1);
	return NULL;
}

/* True once thread tid sleeps in the kernel, within 3 s. */
static bool wait_sleeping(int tid)
{
	uint64_t end = h_now_ns() + 3000000000ull;
	char path[64], buf[256], *p;
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	while ((int64_t)(end - h_now_ns()) > 0) {
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return false;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len > 0) {
			buf[len] = 0;
			p = strrchr(buf, ')');
			if (p && p[1] == ' ' && p[2] == 'S')
				return true;
		}
		h_spin_ns(200000);
	}
	return false;
}

static void test_nested_handler(enum nested_kind kind)
{
	struct nested n = { .kind = kind };
	struct sigaction sa, old;
	int fds[2], i, hung = 0, wrong = 0, masked = 0, unsure = 0;
	char msg[240], name[64];

	snprintf(name, sizeof(name), "nested_handler: %s", nested_name[kind]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_prof_cancel;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPROF, &sa, &old) || pipe(fds)) {
		result(name, 1, "setup failed");
		return;
	}
	n.rfd = fds[0];
	for (i = 0; i < NESTED_ROUNDS; i++) {
		int timed_out = 0, ret, tid;
		long late_ms = 0;
		intr_task *t;

		n.ret = 1;
		n.usr1_blocked = -1;
		atomic_store(&nested_tid, 0);
		intr_token_new(&nested_tok, NULL);
		calls_started++;
		if (host_spawn(&t, nested_tok, nested_body, &n)) {
			wrong++;
			intr_token_free(nested_tok);
			break;
		}
		while (!(tid = atomic_load(&nested_tid)))
			h_spin_ns(1000);
		if (!wait_sleeping(tid))
			unsure++;
		syscall(SYS_tgkill, getpid(), tid, SIGPROF);
		ret = join_bounded(t, NULL, &timed_out, &late_ms);
		if (timed_out) {
			hung++;
			if (hung <= 3)
				printf("  %s: round %d: the wrapper returned "
				       "only after %ld ms%s\n",
				       h_host_names[h_host_now], i, late_ms,
				       late_ms >= 9900 ? " (the re-send)" : "");
		} else if (ret != -ECANCELED || n.ret != -ECANCELED) {
			wrong++;
		}
		if (n.usr1_blocked)
			masked++;
		intr_token_free(nested_tok);
		if (hung >= 3) {
			i++;
			break;		/* broken: do not wait 10 s a round */
		}
	}
	snprintf(msg, sizeof(msg),
		 "%d cancels from a SIGPROF handler (SA_RESTART) over the "
		 "blocked wrapper: %d hung, %d wrong result, %d left the "
		 "signal blocked (%d not seen asleep first)", i, hung, wrong,
		 masked, unsure);
	result(name, hung || wrong || masked, msg);
	sigaction(SIGPROF, &old, NULL);
	close(fds[0]);
	close(fds[1]);
}

/* ---------------------------------------------------------------- races */
enum kind { K_SYSCALL, K_READ, K_SLEEP, K_COND, K_NR };
static const char *const kind_name[K_NR] = {
	"intr_syscall(SYS_read)", "intr_read", "intr_sleep", "intr_cond_wait",
};

struct race {
	enum kind kind;
	int rfd;		/* a pipe that never gets data */
	pthread_mutex_t m;
	pthread_cond_t c;
	volatile long ret;	/* what the wrapper returned */
	int held;		/* cond: the mutex was held on return */
};

static void *race_body(intr_ctx *ctx, void *arg)
{
	struct race *r = arg;
	char b;

	switch (r->kind) {
	case K_SYSCALL:
		r->ret = intr_syscall(ctx, SYS_read, r->rfd, &b, 1);
		break;
	case K_READ:
		r->ret = intr_read(ctx, r->rfd, &b, 1);
		break;
	case K_SLEEP:
		r->ret = intr_sleep(ctx, 10ull * 1000000000u);
		break;
	case K_COND:
		pthread_mutex_lock(&r->m);
		r->ret = intr_cond_wait(ctx, &r->c, &r->m);
		/* Only the owner can unlock an error-checking mutex. */
		r->held = pthread_mutex_unlock(&r->m) == 0;
		break;
	default:
		break;
	}
	return r;
}

static void test_race(enum kind kind, int iters)
{
	struct race r = { .kind = kind };
	pthread_mutexattr_t ma;
	int fds[2], i, ran = 0, wrong = 0, hung = 0, notheld = 0;
	char msg[200];

	if (pipe(fds)) {
		result(kind_name[kind], 1, "pipe failed");
		return;
	}
	r.rfd = fds[0];
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&r.m, &ma);
	pthread_cond_init(&r.c, NULL);

	for (i = 0; i < iters; i++) {
		unsigned pick = (unsigned)(rng() % 10);
		int timed_out = 0, ret;
		long late_ms = 0;
		intr_token *tok;
		intr_task *t;
		void *res;

		r.ret = 1;
		r.held = 0;
		intr_token_new(&tok, NULL);
		if (pick == 0)
			intr_token_cancel(tok);		/* before */
		if (host_spawn(&t, tok, race_body, &r)) {
			wrong++;
			intr_token_free(tok);
			continue;
		}
		if (pick >= 2)
			h_spin_ns(rng() % 50000);		/* at: 0-50 us */
		intr_token_cancel(tok);			/* pick 1: right after */
		ret = join_bounded(t, &res, &timed_out, &late_ms);
		if (late_ms)
			tap_diag("%s: %s: %s: iteration %d, cancel %s, "
				 "wrapper %s (%ld), the call ended after %ld "
				 "ms%s", h_host_names[h_host_now],
				 kind_name[kind], timed_out ? "hung" : "slow", i,
				 pick == 0 ? "before spawn" :
				 pick == 1 ? "right after spawn" :
				 "0-50 us after",
				 r.ret == 1 ? "not returned" : "returned",
				 r.ret, late_ms, timed_out ? " (the re-send)" :
				 " (starved, before any re-send: not lost)");
		if (timed_out)
			hung++;
		else if (ret != -ECANCELED)
			wrong++;
		else if (res) {
			/* The body ran: the wrapper itself must say so. */
			ran++;
			if (r.ret != -ECANCELED)
				wrong++;
			if (kind == K_COND && !r.held)
				notheld++;
		}
		intr_token_free(tok);
	}
	snprintf(msg, sizeof(msg),
		 "%d iterations (%d reached the wrapper): %d hung, %d wrong "
		 "result, %d returned without the mutex", iters, ran, hung,
		 wrong, notheld);
	result(kind_name[kind], hung || wrong || notheld, msg);
	close(fds[0]);
	close(fds[1]);
	pthread_mutex_destroy(&r.m);
	pthread_cond_destroy(&r.c);
}

int main(int argc, char **argv)
{
	const char *scale = getenv("INTR_TEST_SCALE");
	int pct = scale && atoi(scale) > 0 ? atoi(scale) : 100;
	int iters = argc > 1 ? atoi(argv[1]) : 20000 * pct / 100 + 1;
	/*
	 * Tests 1 and 2 need the CPU's own signal delivery: the interrupt
	 * must arrive with the PC on the window's instruction, and the
	 * library's handler must rewrite the context the thread returns to.
	 * ThreadSanitizer defers every handler to the thread's next
	 * synchronisation point and hands it a copy of the context; valgrind
	 * runs translated code, has no trap flag and delivers signals only
	 * between its translated blocks.  Under either, only the races run
	 * (through EINTR and the cancel flag).
	 */
#if defined(__SANITIZE_THREAD__)
	bool emulated = true;
#else
	bool emulated = RUNNING_ON_VALGRIND;
#endif
	const char *seed = getenv("INTR_TEST_SEED");
	struct intr_config cfg;
	int h, k;

	rng_state = seed ? strtoull(seed, NULL, 0) : h_now_ns();
	tap_diag("window-race: seed %llu (INTR_TEST_SEED repeats it)",
		 (unsigned long long)rng_state);
	intr_config_default(&cfg);
	cfg.resend_us = 10000000;	/* 10 s: no rescue by re-sending */
	if (!tap_ok(intr_configure(&cfg) == 0, "intr_configure"))
		return tap_done();
	signal(SIGUSR1, on_foreign);
	/* First, on both hosts: the forged tests guess the cookies of a
	 * fresh process. */
	for (h = 0; h < H_HOSTS && !emulated; h++) {
		host_set(h);
#if defined(__x86_64__)
		test_single_step(true);
#endif
#if defined(__x86_64__) || defined(__aarch64__)
		test_forced_window(true);
#endif
	}
	for (h = 0; h < H_HOSTS; h++) {
		host_set(h);
		if (emulated) {
			tap_skip("%s: single_step: signal delivery is "
				 "emulated (ThreadSanitizer, valgrind)",
				 h_host_names[h]);
			tap_skip("%s: forced_window: signal delivery is "
				 "emulated (ThreadSanitizer, valgrind)",
				 h_host_names[h]);
			tap_skip("%s: nested_handler: signal delivery is "
				 "emulated (ThreadSanitizer, valgrind)",
				 h_host_names[h]);
		} else {
#if defined(__x86_64__)
			test_single_step(false);
#endif
#if defined(__x86_64__) || defined(__aarch64__)
			test_forced_window(false);
#endif
			for (k = 0; k < N_NR; k++)
				test_nested_handler((enum nested_kind)k);
		}
		for (k = 0; k < K_NR; k++)
			test_race((enum kind)k, iters);
	}
	return tap_done();
}
#endif /* INTR_TEST_WINDOW */
