/* SPDX-License-Identifier: MIT */
/*
 * The interrupt signal: parsing and checking its name, installing the
 * handler, sending it to one worker, what the handler does with it, and
 * passing on what is not ours.
 *
 * Sending.  Every signal the library sends is thread-directed
 * (rt_tgsigqueueinfo) to a worker, with si_code SI_QUEUE, si_pid our own
 * pid, and as value the cookie of the call it is meant for, mixed with a
 * key drawn at random for each process (so that no other process can make
 * one up), in which the send's sequence number is folded.
 *
 * Acting.  What the handler does for the body running on its thread does
 * not depend on who sent the signal: only the call's reason decides, which
 * the canceller stores before it sends.  Reason not set: nothing (the
 * signal may have interrupted a system call; the wrappers retry the EINTR).
 * Reason set, and the PC inside the system call window, before the kernel
 * took the call: the PC moves to the window's cancel exit.  Reason set,
 * the thread inside a wrapper's window but the PC elsewhere: the signal
 * has landed in another signal's handler that interrupted the window (a
 * profiler's SIGPROF, say), whose return may even restart the system call
 * (SA_RESTART rewinds the PC to the system call instruction).  The handler
 * then blocks the signal in the context it returns to and queues one more
 * to its own thread: when the other handler returns, the window's own
 * mask comes back, the new signal is delivered at the window's PC, and
 * moves it to the exit.  The wrapper unblocks the signal when it leaves
 * the window, in case the context was its own code, not another handler.
 * So a plain read() in the body is interrupted by every later re-send.
 *
 * Telling ours from foreign, for passing on.  A signal from our pid whose
 * value is that of the cookie of the call running on this thread, or of
 * the call that ran on it before, or of a call that an in-place scope
 * running on this thread runs inside of (its chain of outer calls), is
 * ours.  The protocol in call.c ensures
 * those are the only two of ours that can be delivered here: a signal sent
 * in the last instant of a call stays pending until the worker unblocks
 * the signal for its next body, and is delivered then, before that body
 * runs, where ignoring it is harmless.  When the kernel has no room for a
 * signal's details (RLIMIT_SIGPENDING), it delivers a classic signal as if
 * from kill() by nobody: that one is ours if a send of ours to this thread
 * is outstanding (ours_pending, below).  Anything else (kill from another
 * process, the application's own raise or sigqueue, a forgery) goes to the
 * handler installed before ours, or gets that handler's disposition
 * (default or ignore).
 *
 * An application may install its own handler for the signal after the
 * library's.  After a cancel has sent its signals, the canceller looks
 * (one rt_sigaction, async-signal-safe): if its handler is no longer
 * there, the service thread is told to repair it and re-send at once.
 * At every pass, before its re-sends, the service thread looks too,
 * under the same lock (so its repair cannot fall between a cancel's send
 * and that cancel's look), and if the handler is not there records the
 * application's as the one foreign signals go to and installs its own
 * again.  A call nobody cancels needs neither: foreign signals reach the
 * application's handler directly.  The chain of handlers so recorded,
 * oldest first, is prevs[0..nprev): a foreign signal goes to the
 * newest; if that one passes it back to the handler it replaced (ours),
 * the next older one gets it, and so on, so nothing recurses.  A
 * recorded handler runs as the kernel would have run it: on the stack
 * ours runs on (ours has SA_ONSTACK, so a thread's alternate signal
 * stack, if it has one), under the interrupted code's mask plus its own
 * sa_mask and, without SA_NODEFER, the signal; with SA_RESETHAND, once.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "arch.h"
#include "internal.h"

INTR_TLS uint64_t intr__cookie_cur;
INTR_TLS uint64_t intr__cookie_prev;
/*
 * Per worker: 0, or the number of the last send of ours to this thread
 * times two, plus one while that send's system call has not returned.
 * Sends happen under the tree lock, one at a time.  The sender stores it
 * before its system call and clears the low bit after.  A delivery with
 * details carries its send's number: if it is the one named, it is
 * settled.  After any other delivery the handler asks the kernel whether
 * the signal is still pending (a classic signal is never pending twice):
 * if not, nothing of ours is owed any more.  A delivery without details
 * is ours while it is not 0.
 */
INTR_TLS atomic_int intr__ours_pending;
/* The thread is inside a wrapper's window (syscall.c); the handler has
 * blocked the signal in a context it returned to. */
INTR_TLS volatile int intr__sc_active;
INTR_TLS volatile int intr__sc_deferred;

int intr__signo;
sigset_t intr__body_mask;
sigset_t intr__quiet_mask;

/* The handlers foreign signals go to, oldest first; the newest is the one
 * the application installed last.  Entries are written before nprev
 * publishes them and are not rewritten while published, except the last
 * one once PREV_MAX are in use.  spent[i]: prevs[i] has SA_RESETHAND and
 * has run once. */
#define PREV_MAX 8
static struct sigaction prevs[PREV_MAX];
static atomic_bool spent[PREV_MAX];
static atomic_int nprev;
static pthread_mutex_t prev_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction ours;
static pid_t self_pid;
/* si_uid of the signals we send: informational only (the handler matches
 * pid and value), so read once rather than on every cancel. */
static uid_t self_uid;
/* Drawn at random for each process (and again in a fork child): without
 * it, a value of ours cannot be made up. */
static uint64_t cookie_key;
/* Send numbers (tree lock), SEQ_BITS wide, never 0. */
#define SEQ_BITS 20
#define SEQ_MASK ((1u << SEQ_BITS) - 1)
static unsigned send_seq;
/* Sends made (tree lock), to tell whether a cancel sent anything. */
static unsigned long sends;
/* A cancel's signal may have reached the application's handler: the
 * service thread repairs ours and re-sends to every cancelled call
 * (tree lock). */
static bool repair_due;

static bool is_fault(int signo)
{
	return signo == SIGSEGV || signo == SIGBUS || signo == SIGFPE ||
	       signo == SIGILL || signo == SIGTRAP || signo == SIGSYS;
}

/* A new random key: the kernel's, or, where it has none to give yet,
 * what the clocks, the pid and the stack's place make of it.
 * Async-signal-safe (a fork child calls it). */
static void new_key(void)
{
	struct timespec a, b;
	uint64_t k = 0;

	if (getrandom(&k, sizeof(k), GRND_NONBLOCK) == (ssize_t)sizeof(k) &&
	    k)
		goto out;
	clock_gettime(CLOCK_REALTIME, &a);
	clock_gettime(CLOCK_MONOTONIC, &b);
	k ^= (uint64_t)a.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)a.tv_sec;
	k ^= ((uint64_t)b.tv_nsec << 21) ^ ((uint64_t)getpid() << 43);
	k ^= (uint64_t)(uintptr_t)&a;
out:
	cookie_key = k;
}

/* The value of a call's signals, before the send number is folded in:
 * the cookie (a counter) and the key, mixed so that knowing the counter
 * says nothing about the value. */
static uintptr_t encode(uint64_t cookie)
{
	uint64_t z = cookie_key + cookie * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (uintptr_t)(z ^ (z >> 31));
}

/* The send number folded into v if v is a value of cookie's, else -1. */
static long seq_of(uintptr_t v, uint64_t cookie)
{
	uintptr_t d;

	if (!cookie)
		return -1;
	d = v ^ encode(cookie);
	return d <= SEQ_MASK ? (long)d : -1;
}

/* True if the signal is pending for this thread.  In the handler it is
 * blocked, so a send that reaches this thread stays pending until then. */
static bool pending_here(void)
{
	sigset_t set;

	return sigpending(&set) || sigismember(&set, intr__signo);
}

/*
 * After a delivery: the send ours_pending names may still owe this thread
 * a signal only if the signal is pending now.  A send still in flight (its
 * system call not returned) is waited for first by taking the tree lock,
 * which the sender holds throughout; the handler may take it, since every
 * signal is blocked while it runs.  model/pending.pml checks this.
 */
static void settle(void)
{
	int f = atomic_load(&intr__ours_pending);
	bool locked = false;

	if (!f)
		return;
	if (f & 1) {
		intr__tree_lock_blocked();
		locked = true;
		f = atomic_load(&intr__ours_pending);
	}
	/* Fails if a newer send has stored its own number meanwhile. */
	if (f && !pending_here())
		atomic_compare_exchange_strong(&intr__ours_pending, &f, 0);
	if (locked)
		intr__tree_unlock_blocked();
}

/* A signal of ours with its details, send number seq (0: the handler's
 * own, below), was delivered here. */
static void delivered(long seq)
{
	int f = atomic_load(&intr__ours_pending);

	/* Its own send: settled, whether its sender has cleared the
	 * in-flight bit yet or not. */
	while (f && (f >> 1) == seq)
		if (atomic_compare_exchange_weak(&intr__ours_pending, &f, 0))
			return;
	settle();
}

/* A signal whose details were lost: ours if a send of ours is
 * outstanding.  Never for a real-time signal, which the kernel refuses to
 * send without its details. */
static bool lost_is_ours(void)
{
	if (intr__signo >= SIGRTMIN || !atomic_load(&intr__ours_pending))
		return false;
	settle();
	return true;
}

/* Where every signal of ours leaves from, through the fault hook.
 * Async-signal-safe. */
static long queue_signal(pid_t tid, siginfo_t *si)
{
	if (intr__fault(INTR_SITE_SIGNAL_SEND))
		return intr__fault_sigqueue(self_pid, tid, intr__signo, si);
	return syscall(SYS_rt_tgsigqueueinfo, self_pid, tid, intr__signo, si);
}

#if INTR_HAVE_WINDOW
/* Set while a signal send_self queued to this thread is on its way.  The
 * handler knows that one by its value; an emulator that does not carry a
 * signal's value (qemu-user drops it for si_code SI_USER) leaves it this
 * mark, which the handler takes instead.  Only this thread's own code and
 * handler touch it. */
static INTR_TLS volatile sig_atomic_t self_owed;

/* Queue one more of ours to this thread.  A classic signal goes with
 * si_code SI_USER, whose details the kernel keeps even with the queue of
 * pending signals full.  A real-time one with SI_USER would then be
 * delivered without them, taken for a foreign signal and given its default
 * disposition, which ends the process: it goes with SI_QUEUE, which the
 * kernel refuses instead (-EAGAIN), and the caller does without.
 * Async-signal-safe. */
static int send_self(struct intr_task *t)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = intr__signo;
	si.si_code = intr__signo >= SIGRTMIN ? SI_QUEUE : SI_USER;
	si.si_pid = self_pid;
	si.si_uid = self_uid;
	si.si_value.sival_ptr = (void *)encode(t->cookie);
	/* Before the send: a scope's end flushes what was sent (call.c). */
	atomic_store(&t->sent, true);
	self_owed = 1;
	if (queue_signal(t->tid, &si) < 0) {
		self_owed = 0;
		return -errno;
	}
	return 0;
}
#endif

/* What the handler does for the body running here: see the top. */
static void act(void *uc)
{
#if INTR_HAVE_WINDOW
	struct intr_task *t = intr__current;
	uintptr_t *pc;

	if (!t || !atomic_load(&t->tok.reason))
		return;
	pc = intr__arch_pc(uc);
	if (*pc >= (uintptr_t)intr__sc_begin && *pc < (uintptr_t)intr__sc_end) {
		*pc = (uintptr_t)intr__sc_cancel;
		return;
	}
	/* Right after the window's system call: the wrapper itself, which
	 * finds the reason with the call's -EINTR (or returns the result
	 * that came first).  Nothing to defer. */
	if (*pc == (uintptr_t)intr__sc_end)
		return;
	/* Once only: until the window is left, the signal send_self queued
	 * stands for this cancel.  (Where the mask set below is not applied,
	 * as under valgrind, that signal comes back at once, and deferring
	 * again would send another, for ever.) */
	if (intr__sc_active && !intr__sc_deferred && !send_self(t)) {
		/* In another handler over the window: defer to it. */
		sigaddset(&((ucontext_t *)uc)->uc_sigmask, intr__signo);
		intr__sc_deferred = 1;
	}
#else
	(void)uc;
#endif
}

/*
 * A siginfo the library hands to a chained handler is a copy, marked in its
 * last bytes, which the kernel always leaves zero: a chained handler that
 * calls ours back (it saw ours installed before it, and passes the signal
 * on) hands the mark back, and the mark says how far down the chain the
 * signal has come.  Nothing is kept per thread, so a chained handler that
 * leaves by siglongjmp leaves nothing behind.
 */
#define CHAIN_MAGIC 0x6e69616863746e69ull
struct chain_mark {
	uint64_t magic;
	uint64_t depth;
};

static int chained_depth(const siginfo_t *si)
{
	struct chain_mark m;

	memcpy(&m, (const char *)si + sizeof(*si) - sizeof(m), sizeof(m));
	if (m.magic != CHAIN_MAGIC || m.depth >= PREV_MAX)
		return -1;
	return (int)m.depth;
}

/* The mask a handler installed for signo would run under: the interrupted
 * code's, its own sa_mask, and the signal itself without SA_NODEFER. */
static void chained_mask(const struct sigaction *prev, int signo,
			 const void *uc, sigset_t *m)
{
	if (!uc) {
		sigfillset(m);
		return;
	}
	/* The kernel's part of uc_sigmask: the first 64 signals. */
	sigemptyset(m);
	memcpy(m, &((const ucontext_t *)uc)->uc_sigmask, 8);
	sigorset(m, m, &prev->sa_mask);
	if (!(prev->sa_flags & SA_NODEFER))
		sigaddset(m, signo);
}

/* What the recorded disposition prevs[i] does with a foreign signal. */
static void pass_on(int i, int depth, int signo, siginfo_t *si, void *uc)
{
	const struct sigaction *prev = &prevs[i];
	void (*fn)(int) = prev->sa_handler;
	struct chain_mark mark = { CHAIN_MAGIC, (uint64_t)depth };
	sigset_t old, set;
	siginfo_t copy;

	if ((prev->sa_flags & SA_RESETHAND) && atomic_exchange(&spent[i], true))
		fn = SIG_DFL;	/* it ran once: the default from now on */
	else if (prev->sa_flags & SA_SIGINFO) {
		if (!prev->sa_sigaction)
			return;
		copy = *si;
		memcpy((char *)&copy + sizeof(copy) - sizeof(mark), &mark,
		       sizeof(mark));
		chained_mask(prev, signo, uc, &set);
		pthread_sigmask(SIG_SETMASK, &set, &old);
		prev->sa_sigaction(signo, &copy, uc);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return;
	}
	if (fn == SIG_IGN)
		return;
	if (fn != SIG_DFL) {
		chained_mask(prev, signo, uc, &set);
		pthread_sigmask(SIG_SETMASK, &set, &old);
		fn(signo);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return;
	}
	/* Default disposition.  Those whose default is to ignore: done. */
	if (signo == SIGURG || signo == SIGWINCH || signo == SIGCONT)
		return;
	if (signo == SIGTSTP || signo == SIGTTIN || signo == SIGTTOU) {
		kill(self_pid, SIGSTOP);
		return;
	}
	/* Terminate as the default would: restore it and take the signal
	 * again, unblocked, on this thread. */
	signal(signo, SIG_DFL);
	syscall(SYS_tgkill, self_pid, intr__gettid(), signo);
	sigemptyset(&set);
	sigaddset(&set, signo);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* A foreign signal, depth handlers down the chain already: to the newest
 * recorded handler first (depth 0); to the next older one when a handler
 * hands it back to ours; dropped when the chain is used up. */
static void pass_foreign(int depth, int signo, siginfo_t *si, void *uc)
{
	int n = atomic_load(&nprev);

	if (depth < n)
		pass_on(n - 1 - depth, depth, signo, si, uc);
}

static void handler(int signo, siginfo_t *si, void *uc)
{
	int e = errno;
	uintptr_t v = (uintptr_t)si->si_value.sival_ptr;
	int depth = chained_depth(si);
	struct intr_task *t;
	long seq;

	if (depth >= 0) {
		/* A chained handler passing a foreign signal back. */
		pass_foreign(depth + 1, signo, si, uc);
		goto out;
	}
	act(uc);
	if ((si->si_code == SI_QUEUE || si->si_code == SI_USER) &&
	    si->si_pid == self_pid) {
		/* Ours, for the body running here, or stale: the previous
		 * call on this worker had ended, and it is delivered as this
		 * body unblocks the signal, before the body runs. */
		seq = seq_of(v, intr__cookie_cur);
		if (seq < 0)
			seq = seq_of(v, intr__cookie_prev);
		/* Or for a call a scope on this thread runs inside of: its
		 * cancel may come while the scope runs (here.c). */
		for (t = intr__current; seq < 0 && t; t = t->outer)
			seq = seq_of(v, t->cookie);
		if (seq >= 0) {
#if INTR_HAVE_WINDOW
			if (!seq)	/* send_self's own */
				self_owed = 0;
#endif
			delivered(seq);
			goto out;
		}
#if INTR_HAVE_WINDOW
		if (self_owed) {	/* send_self's, its value lost */
			self_owed = 0;
			settle();
			goto out;
		}
#endif
	}
	if (si->si_code == SI_USER && si->si_pid == 0) {
		if (lost_is_ours())
			goto out;
	} else {
		/* It may have taken the place of one of ours. */
		settle();
	}
	pass_foreign(0, signo, si, uc);
out:
	errno = e;
}

int intr__signal_install(int signo)
{
	struct sigaction sa;
	int i;

	/* Everything the handler reads is in place before it is installed:
	 * a foreign signal arriving at once finds the previous handler. */
	if (sigaction(signo, NULL, &prevs[0]))
		return -errno;
	atomic_store(&spent[0], false);
	atomic_store(&nprev, 1);
	intr__signo = signo;
	self_pid = getpid();
	self_uid = getuid();
	new_key();
	sigfillset(&intr__quiet_mask);
	for (i = 1; i <= SIGSYS; i++)
		if (is_fault(i))
			sigdelset(&intr__quiet_mask, i);
	intr__body_mask = intr__quiet_mask;
	sigdelset(&intr__body_mask, signo);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	/* No SA_RESTART: that's the point.  SA_ONSTACK: on a thread with an
	 * alternate signal stack (a Go runtime's), ours and the handler it
	 * chains run there. */
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigfillset(&sa.sa_mask);
	ours = sa;
	if (sigaction(signo, &sa, NULL))
		return -errno;
	return 0;
}

static bool is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == handler;
}

static bool same(const struct sigaction *a, const struct sigaction *b)
{
	if ((a->sa_flags & SA_SIGINFO) != (b->sa_flags & SA_SIGINFO))
		return false;
	if (a->sa_flags & SA_SIGINFO)
		return a->sa_sigaction == b->sa_sigaction;
	return a->sa_handler == b->sa_handler;
}

/* Make cur the newest handler of the chain: cut the chain back to it if
 * it is recorded already, else add it.  prev_mu held. */
static void record(const struct sigaction *cur)
{
	int i, n = atomic_load(&nprev);

	for (i = 0; i < n; i++)
		if (same(&prevs[i], cur))
			break;
	if (i < n) {
		atomic_store(&nprev, i + 1);
		return;
	}
	if (n == PREV_MAX)
		n--;
	prevs[n] = *cur;
	atomic_store(&spent[n], false);
	atomic_store(&nprev, n + 1);
}

/*
 * If the application has replaced our handler, chain to its handler and
 * install ours again.  A handler recorded already (installed again, or an
 * older one put back) cuts the chain there, so none runs twice for one
 * signal.  One rt_sigaction when nothing changed.  Only on the service
 * thread, at each pass, with the tree lock held (service.c): prev_mu is
 * only ever taken inside it, and fork() (which takes the tree lock) never
 * finds it held.
 *
 * The install is an exchange, which returns the handler it actually
 * replaced: one the application installed after the look is not lost.
 * The handler seen by the look is recorded before the install, so that a
 * foreign signal arriving in between still finds it.
 */
void intr__signal_check(void)
{
	struct sigaction cur, old;
	int e = errno;
	int n0;

	if (!intr__signo || sigaction(intr__signo, NULL, &cur) ||
	    is_ours(&cur))
		goto out;
	pthread_mutex_lock(&prev_mu);
	if (sigaction(intr__signo, NULL, &cur) || is_ours(&cur))
		goto unlock;
	n0 = atomic_load(&nprev);
	record(&cur);
	if (sigaction(intr__signo, &ours, &old))
		goto unlock;
	if (is_ours(&old))
		atomic_store(&nprev, n0);	/* it was ours again by then */
	else if (!same(&old, &cur))
		record(&old);
unlock:
	pthread_mutex_unlock(&prev_mu);
out:
	errno = e;
}

/* How many sends have been made.  Tree lock held. */
unsigned long intr__signal_sends(void)
{
	return sends;
}

/* Whether our handler is the one installed: one rt_sigaction.
 * Async-signal-safe. */
bool intr__signal_installed(void)
{
	struct sigaction cur;
	int e = errno;
	bool ours_there;

	ours_there = !intr__signo || sigaction(intr__signo, NULL, &cur) ||
		     is_ours(&cur);
	errno = e;
	return ours_there;
}

/* After sends made under the tree lock since sends was before: if any
 * went out and our handler is no longer installed, one of them may have
 * reached the application's handler instead.  Marks the repair due and
 * returns true: the caller arms the service thread's timer for now.
 * Async-signal-safe (one rt_sigaction when something was sent). */
bool intr__signal_check_sent_locked(unsigned long before)
{
	if (sends == before || intr__signal_installed())
		return false;
	repair_due = true;
	return true;
}

/* The service thread's pass: whether a repair is due (and no longer).
 * Tree lock held. */
bool intr__signal_repair_take_locked(void)
{
	bool due = repair_due;

	repair_due = false;
	return due;
}

/* Put back the handler foreign signals go to, if ours is still installed
 * (the library is being unloaded). */
void intr__signal_restore(void)
{
	struct sigaction cur;
	int n = atomic_load(&nprev);

	if (!intr__signo || !n || sigaction(intr__signo, NULL, &cur) ||
	    !is_ours(&cur))
		return;
	sigaction(intr__signo, &prevs[n - 1], NULL);
}

void intr__signal_after_fork(void)
{
	self_pid = getpid();
	new_key();
	/* The child starts with nothing pending. */
	atomic_store(&intr__ours_pending, 0);
	pthread_mutex_init(&prev_mu, NULL);
}

/* Signal worker tid for the call with this cookie; pending is the worker's
 * intr__ours_pending.  Tree lock held. */
int intr__signal_send(pid_t tid, uint64_t cookie, atomic_int *pending)
{
	unsigned seq;
	siginfo_t si;
	int before, mark;
	long r;

	sends++;
	seq = send_seq = (send_seq + 1) & SEQ_MASK;
	if (!seq)
		seq = send_seq = 1;
	mark = (int)(seq << 1);
	memset(&si, 0, sizeof(si));
	si.si_signo = intr__signo;
	si.si_code = SI_QUEUE;
	si.si_pid = self_pid;
	si.si_uid = self_uid;
	si.si_value.sival_ptr = (void *)(encode(cookie) ^ seq);
	before = atomic_exchange(pending, mark | 1);
	r = queue_signal(tid, &si);
	/* Returned: the low bit goes, unless the delivery has already
	 * settled the send.  Refused: what was outstanding before is. */
	before = r < 0 ? before : mark;
	mark |= 1;
	atomic_compare_exchange_strong(pending, &mark, before);
	return r < 0 ? -errno : 0;
}
