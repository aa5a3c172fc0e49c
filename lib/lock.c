/* SPDX-License-Identifier: MIT */
/*
 * The tree lock and the few raw primitives under it (futex, clock, tid).
 *
 * The lock is a three-state futex mutex: 0 free, 1 held, 2 held with
 * waiters.  It is async-signal-safe to take because every holder blocks all
 * signals first: no handler can run on a thread while that thread holds it,
 * so a handler that takes it only ever waits for another thread, whose
 * critical section is short and never blocks.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
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

static struct intr__lock tree;

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

static void lock_take(struct intr__lock *l)
{
	int c = 0;
	int spins;

	if (atomic_compare_exchange_strong(&l->word, &c, 1))
		return;
	for (spins = 0; spins < 64; spins++) {
		c = 0;
		if (atomic_compare_exchange_weak(&l->word, &c, 1))
			return;
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	}
	if (c != 2)
		c = atomic_exchange(&l->word, 2);
	while (c != 0) {
		intr__futex_wait(&l->word, 2, NULL);
		c = atomic_exchange(&l->word, 2);
	}
}

void intr__lock_acquire(struct intr__lock *l)
{
	hg_lock_pre(l);
	lock_take(l);
	hg_lock_post(l);
}

void intr__lock_release(struct intr__lock *l)
{
	hg_unlock_pre(l);
	if (atomic_exchange(&l->word, 0) == 2)
		intr__futex_wake(&l->word, 1);
	hg_unlock_post(l);
}

void intr__tree_lock(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, saved);
	intr__lock_acquire(&tree);
	intr__fault_delay(INTR_DELAY_TREE_LOCKED);
}

void intr__tree_unlock(const sigset_t *saved)
{
	intr__lock_release(&tree);
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

void intr__tree_lock_blocked(void)
{
	intr__lock_acquire(&tree);
}

void intr__tree_unlock_blocked(void)
{
	intr__lock_release(&tree);
}

/* In a child after fork(): the parent's holder does not exist here. */
void intr__tree_lock_reset(void)
{
	/* fork_prepare took it on the thread that forked, this one. */
	hg_unlock_pre(&tree);
	atomic_store(&tree.word, 0);
	hg_unlock_post(&tree);
}
