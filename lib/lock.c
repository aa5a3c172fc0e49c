/* SPDX-License-Identifier: MIT */
/*
 * The tree lock and the few raw primitives under it (futex, clock, tid).
 *
 * The tree lock is a futex word: 0 free, else the kernel id of the thread
 * that holds it, with TREE_WAITERS set while another may sleep on it.  It
 * is taken one of two ways.
 *
 * Blocked (intr__tree_lock, intr__tree_lock_blocked): the holder blocks
 * every signal first, so no handler runs on its thread while it holds
 * the lock, and a handler that takes it only ever waits for another
 * thread, whose section is short and never blocks.
 *
 * Open (intr__tree_lock_open): the thread's mask stays as it is, and a
 * handler may run over the section, on the holder's own thread.  Only
 * the steps of an in-place scope take it so (call.c, here.c), and their
 * sections send no signal and leave the registry of handles alone.  A
 * function a handler may call (the async-signal-safe ones) first looks
 * whether its thread holds the lock (intr__tree_held_here: the word
 * names it): a cancel is then owed to the end of the section
 * (intr__tree_owe), which the unlock's caller pays, and a read of the
 * registry needs no lock, since no one changes it meanwhile.  A fork()
 * over the section leaves the child the rest of its fork handler to run
 * there too (lifecycle.c).  Any other function of the library, not
 * async-signal-safe, called so is an error the blocked lock reports.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/*
 * Helgrind sees pthread mutexes, not a lock made of a futex: the checker
 * build (-DINTR_VALGRIND) tells it where the lock is taken and released.
 * Release builds have no trace of it.
 */
#ifdef INTR_VALGRIND
#include <valgrind/helgrind.h>
#define hg_lock_pre(l)		VALGRIND_HG_MUTEX_LOCK_PRE(l, 0)
#define hg_lock_post(l)		VALGRIND_HG_MUTEX_LOCK_POST(l)
#define hg_unlock_pre(l)	VALGRIND_HG_MUTEX_UNLOCK_PRE(l)
#define hg_unlock_post(l)	VALGRIND_HG_MUTEX_UNLOCK_POST(l)
#else
#define hg_lock_pre(l)		do { } while (0)
#define hg_lock_post(l)		do { } while (0)
#define hg_unlock_pre(l)	do { } while (0)
#define hg_unlock_post(l)	do { } while (0)
#endif

/* The holder's tid, and this bit while a waiter may sleep. */
#define TREE_WAITERS	INT_MIN
/* Handles a handler may leave one open section to cancel. */
#define OWED_MAX	16

static struct intr__lock tree;
/* This thread's kernel id, once it took the tree lock (0: never). */
static INTR_TLS int self;
/* What handlers over this thread's open section left for its end. */
static INTR_TLS uintptr_t owed[OWED_MAX];
static INTR_TLS atomic_uint owed_n;
static INTR_TLS void (*volatile owed_fork)(void);

int intr__futex_wait(atomic_int *addr, int val, const struct timespec *abs)
{
	int e = errno;
	long r;

	if (abs)
		r = syscall(SYS_futex, addr,
			    FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val, abs,
			    NULL, FUTEX_BITSET_MATCH_ANY);
	else
		r = syscall(SYS_futex, addr, FUTEX_WAIT | FUTEX_PRIVATE_FLAG,
			    val, NULL, NULL, 0);
	r = r < 0 ? -errno : 0;
	errno = e;
	return (int)r;
}

void intr__futex_wake(atomic_int *addr, int n)
{
	int e = errno;

	syscall(SYS_futex, addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL,
		NULL, 0);
	errno = e;
}

uint64_t intr__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

pid_t intr__gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static int self_id(void)
{
	if (!self)
		self = (int)intr__gettid();
	return self;
}

static void tree_take(void)
{
	int id = self_id();
	int c = 0;
	int spins;

	hg_lock_pre(&tree);
	if (atomic_compare_exchange_strong(&tree.word, &c, id))
		goto out;
	for (spins = 0; spins < 64; spins++) {
		c = 0;
		if (atomic_compare_exchange_weak(&tree.word, &c, id))
			goto out;
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	}
	for (;;) {
		c = atomic_load(&tree.word);
		if (!c) {
			/* Another may sleep still: whoever takes it after a
			 * sleep says so, as the three-state mutex's 2. */
			if (atomic_compare_exchange_weak(&tree.word, &c,
							 id | TREE_WAITERS))
				goto out;
			continue;
		}
		if (!(c & TREE_WAITERS) &&
		    !atomic_compare_exchange_weak(&tree.word, &c,
						  c | TREE_WAITERS))
			continue;
		intr__futex_wait(&tree.word, c | TREE_WAITERS, NULL);
	}
out:
	hg_lock_post(&tree);
}

static void tree_give(void)
{
	hg_unlock_pre(&tree);
	if (atomic_exchange(&tree.word, 0) & TREE_WAITERS)
		intr__futex_wake(&tree.word, 1);
	hg_unlock_post(&tree);
}

bool intr__tree_held_here(void)
{
	return self && (atomic_load(&tree.word) & ~TREE_WAITERS) == self;
}

/* The blocked lock on the thread that holds it open: a handler over an
 * open section called a function that may not be called there.  Waiting
 * would be waiting for ever. */
static void tree_misuse(void)
{
	static const char m[] = "libinterruptible: a function that is not "
				"async-signal-safe was called from a signal "
				"handler\n";
	ssize_t r = write(2, m, sizeof(m) - 1);

	(void)r;
	abort();
}

void intr__tree_lock(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, saved);
	if (intr__tree_held_here())
		tree_misuse();
	tree_take();
	intr__fault_delay(INTR_DELAY_TREE_LOCKED);
}

void intr__tree_unlock(const sigset_t *saved)
{
	tree_give();
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

void intr__tree_lock_blocked(void)
{
	tree_take();
}

void intr__tree_unlock_blocked(void)
{
	tree_give();
}

void intr__tree_lock_open(void)
{
	tree_take();
	intr__fault_delay(INTR_DELAY_TREE_OPEN);
}

bool intr__tree_unlock_open(void)
{
	tree_give();
	/* A handler that ran before the release left its work; one that
	 * runs after it takes the lock itself. */
	atomic_signal_fence(memory_order_seq_cst);
	return atomic_load(&owed_n) || owed_fork;
}

int intr__tree_owe(uintptr_t handle)
{
	unsigned n = atomic_load(&owed_n), i;

	for (i = 0; i < n && i < OWED_MAX; i++)
		if (owed[i] == handle)
			return 0;
	/* A handler over this one may add its own between the two: each
	 * takes an index of its own. */
	i = atomic_fetch_add(&owed_n, 1);
	if (i >= OWED_MAX) {
		atomic_fetch_sub(&owed_n, 1);
		return -EAGAIN;
	}
	owed[i] = handle;
	return 0;
}

uintptr_t intr__tree_owed_next(void)
{
	unsigned n = atomic_load(&owed_n);
	uintptr_t h;

	if (!n)
		return 0;
	atomic_store(&owed_n, n - 1);
	h = owed[n - 1];
	owed[n - 1] = 0;
	return h;
}

void intr__tree_owe_fork(void (*fn)(void))
{
	owed_fork = fn;
}

void (*intr__tree_owed_fork(void))(void)
{
	void (*fn)(void) = owed_fork;

	owed_fork = NULL;
	return fn;
}

/* In a child after fork(): the parent's holder does not exist here. */
void intr__tree_lock_reset(void)
{
	/* fork_prepare took it on the thread that forked, this one. */
	hg_unlock_pre(&tree);
	atomic_store(&tree.word, 0);
	hg_unlock_post(&tree);
	self = 0;
}

/* In a child after a fork() a handler made over this thread's open
 * section: the section goes on here, under this thread's new id. */
void intr__tree_lock_adopt(void)
{
	self = 0;
	atomic_store(&tree.word, self_id());
}
