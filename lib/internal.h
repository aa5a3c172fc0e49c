/* SPDX-License-Identifier: MIT */
/*
 * Internal declarations shared by the files of lib/.  Nothing here is
 * exported: the library is built with -fvisibility=hidden and only the
 * functions marked INTR_API (and listed in libinterruptible.map) are
 * visible.  Internal non-static symbols are prefixed intr__.
 *
 * Locking
 *   The tree lock (intr__tree) protects the token tree, the handle
 *   registry, the list of running calls, every call's state, the deadline
 *   list and the service timer.  It is a futex lock that is only ever held
 *   with every signal blocked on the holding thread, so a signal handler
 *   that cancels a token (and therefore takes the lock) can never interrupt
 *   its own thread's holder: intr_token_cancel is async-signal-safe.
 *   The pool mutex (pool.c) is an ordinary mutex, never taken in a signal
 *   handler and never nested with the tree lock.
 */
#ifndef INTR_INTERNAL_H
#define INTR_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "interruptible.h"
#include "fault.h"

#define INTR_API __attribute__((visibility("default")))
#define INTR_TLS __thread __attribute__((tls_model("initial-exec")))

#define intr__container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* ---------------------------------------------------------------- lock.c */
struct intr__lock {
	atomic_int word;	/* 0 free, 1 held, 2 held with waiters */
};

void intr__lock_acquire(struct intr__lock *l);
void intr__lock_release(struct intr__lock *l);

/* The tree lock, from any thread: blocks every signal first. */
void intr__tree_lock(sigset_t *saved);
void intr__tree_unlock(const sigset_t *saved);
/* The same, for library threads whose signals are already all blocked. */
void intr__tree_lock_blocked(void);
void intr__tree_unlock_blocked(void);
void intr__tree_lock_reset(void);

/* Orderings made by atomics alone, named for helgrind, which sees only
 * locks: in the checker build (-DINTR_VALGRIND) only. */
#ifdef INTR_VALGRIND
#include <valgrind/helgrind.h>
#define intr__hg_before(p)	ANNOTATE_HAPPENS_BEFORE(p)
#define intr__hg_after(p)	ANNOTATE_HAPPENS_AFTER(p)
/* An atomic read on purpose without ordering (a hint): not a race. */
#define intr__hg_benign(p)	VALGRIND_HG_DISABLE_CHECKING(p, sizeof(*(p)))
#else
#define intr__hg_before(p)	do { } while (0)
#define intr__hg_after(p)	do { } while (0)
#define intr__hg_benign(p)	do { } while (0)
#endif

int intr__futex_wait(atomic_int *addr, int val, const struct timespec *abs);
void intr__futex_wake(atomic_int *addr, int n);
uint64_t intr__now_ns(void);
pid_t intr__gettid(void);

/* ------------------------------------------------------------- handles.c */
/* Registry of live handles: the values the API hands out for tokens and
 * tasks, never addresses and never made twice, mapped to their objects, so
 * that a freed, joined or made-up handle is refused with -EINVAL.  The
 * kind is the value's low three bits.  Tree lock. */
enum intr__kind { INTR_H_TOKEN = 1, INTR_H_TASK = 3, INTR_H_CTX = 5 };
#define INTR_H_KIND_MASK ((uintptr_t)7)

int intr__handles_reserve(unsigned n);
/* Make a new handle of kind for obj; -ENOSPC: reserve first. */
int intr__handle_add(void *obj, enum intr__kind kind, uintptr_t *out);
/* Register obj under a given value (tests choose their keys). */
int intr__handle_insert(uintptr_t key, void *obj);
/* The object handle h names if it is a live handle of kind, else NULL. */
void *intr__handle_get(uintptr_t h, enum intr__kind kind);
void intr__handle_del(uintptr_t h);
/* A value of kind made once, like a handle's, but not registered (a
 * scope's ctx).  Tree lock held. */
uintptr_t intr__handle_make(enum intr__kind kind);
void intr__handles_each(enum intr__kind kind, void (*fn)(void *obj));
void intr__handles_free(void);

/* --------------------------------------------------------------- token.c */
struct intr_task;
struct intr__value;
struct elements;

/* A token (the public intr_token * is its handle, not its address). */
struct intr_token {
	uintptr_t handle;		/* its value in the API */
	struct intr_token *parent;
	struct intr_token *child;	/* first child */
	struct intr_token *next, *prev;	/* siblings */
	atomic_int reason;		/* 0, -ECANCELED or -ETIMEDOUT */
	struct intr_task *call;		/* set for a call's own token */
	uint64_t deadline;		/* CLOCK_MONOTONIC ns, 0: none */
	struct intr_token *dl_next;	/* deadline list, soonest first */
	struct intr__value *values;	/* context.c; tree lock */
};

/* The token a public handle names, or NULL (tree lock held). */
static inline struct intr_token *intr__token_of(const intr_token *handle)
{
	return intr__handle_get((uintptr_t)handle, INTR_H_TOKEN);
}

void intr__token_init(struct intr_token *t);
void intr__token_link_locked(struct intr_token *t, struct intr_token *parent);
void intr__token_unlink_locked(struct intr_token *t);
struct intr_task *intr__token_cancel_locked(struct intr_token *root,
					    int reason);
void intr__deadline_set_locked(struct intr_token *t, uint64_t at);
struct intr_token *intr__deadline_due_locked(uint64_t now, uint64_t *next);

/* ---------------------------------------------------------------- call.c */
enum intr__state {
	INTR_QUEUED,	/* submitted, body not started */
	INTR_RUNNING,	/* body running: signals may be sent */
	INTR_DONE,	/* body returned or skipped: no signal is ever sent */
};

struct intr__fin {
	intr_finalizer fn;
	void *arg;
	struct intr__fin *next;
};

/* A wake-up action (wake.c). */
struct intr__waker {
	void (*fn)(void *arg);
	void *arg;
	struct intr__waker *next;
	bool owned;			/* freed after it runs (intr_on_cancel) */
	atomic_int done;		/* not owned: 1 once it ran */
	bool repeat;			/* intr_on_cancel_repeat: again at every
					   re-send until acknowledged */
	bool ran;			/* repeat: it has run once */
};

/* The thread a call's life runs on (call.c). */
enum intr__host {
	INTR_HOST_POOL,	/* a pool worker, all its signals blocked between */
	INTR_HOST_HERE,	/* the caller's own thread (intr_run_here, here.c) */
};

/* A job for a pool worker (pool.c): run runs it on the worker, whose
 * thread id is tid; done follows once the worker is idle again. */
struct intr__job {
	void (*run)(struct intr__job *job, pid_t tid);
	void (*done)(struct intr__job *job);
};

/* A call (the public intr_task * is its handle, not its address). */
struct intr_task {
	uintptr_t handle;		/* its value in the API */
	uintptr_t ctx;			/* its intr_ctx * value, the same
					 * count of kind INTR_H_CTX */
	intr_fn fn;
	void *arg;
	void *result;
	struct intr__job job;		/* for the pool: run, then done */
	struct intr_token tok;		/* the call's own token */

	sigset_t mask;			/* the body's: the submitter's, interrupt
					 * signal open (intr__call_set_mask) */
	enum intr__host host;
	atomic_bool sent;		/* a signal went out for it (call.c) */
	bool opened;			/* here: the caller had the signal
					 * blocked, the scope opened it */
	bool held;			/* here: the bind's section left every
					 * signal blocked, the caller's mask
					 * in mask (here.c, call.c) */
	struct intr_task *outer;	/* here: the call this thread ran
					 * when it started, or NULL */

	/* Interruption protocol (tree lock). */
	enum intr__state state;
	int status;			/* reason at the moment the body ended */
	pid_t tid;			/* the worker, while RUNNING */
	atomic_int *ours_pending;	/* that worker's intr__ours_pending */
	uint64_t cookie;		/* carried by every signal for this call */
	struct intr_task *run_next, *run_prev;	/* running list */
	struct intr_task *cx_next;	/* calls one cancel reaches (token.c) */
	uint64_t resend_at;		/* next re-send, 0: none */
	uint64_t resend_gap;		/* current back-off */
	uint64_t retry_gap;		/* after a failed send; 0: none */
	atomic_bool acked;		/* the body has seen the cancel */
	atomic_int wslot;		/* INTR_WS_NONE, or the signal-free wait
					 * the body is in (slot.c), with
					 * INTR_WS_WOKEN and INTR_WS_SIGNAL */
	int wake_fd;			/* the body's: its wake eventfd, or -1;
					 * read by the canceller once it saw
					 * the slot INTR_WS_FD (slot.c) */

	struct intr__waker *wakers;	/* tree lock */
	bool wake_due;			/* tree lock: cancelled, not yet run */
	atomic_int wake_busy;		/* actions the service thread runs */

	struct intr__fin *fins;		/* worker only */
	const struct elements *ctx_els;	/* context.c: snapshot captured with */
	void **ctx_vals;		/* captured[n], then saved[n] */
	bool joining;			/* tree lock */
	bool own_join;			/* run_interruptible's: the worker
					 * takes its handle out (task.c) */
	struct intr_task *awaited_outer;	/* its joiner's thread only */

	/* Completion: 0 running, 1 result ready (joiners being woken), 2
	 * released by the worker, and INTR_DONE_WAITER while 0 once a
	 * joiner is about to sleep (task.c).  The joiner frees the task
	 * only once it reads 2. */
	atomic_int done;
	atomic_int fd;			/* eventfd of intr_task_fd, or -1 */
};

/*
 * The wake slot (intr_task.wslot): the body publishes the signal-free wait
 * it is about to make, before its last look at the reason, and takes it
 * back after the wait; the canceller, under the tree lock, claims it with
 * a compare-and-swap and ends that wait in the kernel instead of
 * signalling.  Whoever wins the swap decides (call.c).
 */
#define INTR_WS_NONE	0
#define INTR_WS_FUTEX	1	/* intr_sleep: a futex on tok.reason */
#define INTR_WS_FD	2	/* ppoll with the call's wake eventfd */
#define INTR_WS_KIND	0xff
#define INTR_WS_WOKEN	0x100	/* the canceller woke it, sent nothing */
#define INTR_WS_SIGNAL	0x200	/* a wait nested over it: signal too */

/* INTR_WAKE=signal: every wait on the signal, as before the slot. */
extern bool intr__wake_signal;

#define INTR_DONE_WAITER	4	/* task->done: a joiner sleeps on it */
#define INTR_DONE_MASK		3	/* task->done without that bit */

/* The task a public handle names, or NULL (tree lock held). */
static inline struct intr_task *intr__task_of(const intr_task *handle)
{
	return intr__handle_get((uintptr_t)handle, INTR_H_TASK);
}

/* The call running on this thread (body and finalizers), or NULL
 * (self.c). */
extern INTR_TLS struct intr_task *intr__current;
/* Set only while this thread runs a body proper (t->fn), not its hooks,
 * wake-ups or finalizers: libinterruptible-libc's points act there only
 * (point.c). */
extern INTR_TLS int intr__in_body;

/* The call ctx is the handle of, if it is the one running on this thread
 * (its body or its finalizers); NULL for anything else.  A ctx is a value
 * made once, like a task's handle: one kept past its call never matches a
 * later call. */
static inline struct intr_task *intr__call_of(const intr_ctx *ctx)
{
	struct intr_task *t = intr__current;

	return t && (uintptr_t)ctx == t->ctx ? t : NULL;
}

/* True if t is the call this thread runs, or one it runs inside of (a
 * scope's outer calls, here.c). */
static inline bool intr__call_on_thread(const struct intr_task *t)
{
	const struct intr_task *c;

	for (c = intr__current; c; c = c->outer)
		if (c == t)
			return true;
	return false;
}

/* The body has seen the cancel: the re-sends stop.  Returns the reason. */
static inline int intr__acknowledge(struct intr_task *t)
{
	atomic_store(&t->acked, true);
	return atomic_load(&t->tok.reason);
}

/* The same, but only while the body runs (not in the finalizers). */
static inline struct intr_task *intr__body_of(const intr_ctx *ctx)
{
	struct intr_task *t = intr__call_of(ctx);

	return t && t->state == INTR_RUNNING ? t : NULL;
}

void intr__call_set_mask(struct intr_task *t, const sigset_t *submitter);
void intr__call_run(struct intr_task *t, pid_t tid);
/* This thread's kernel id, asked once per thread (and again in a fork
 * child). */
pid_t intr__call_tid(void);
void intr__cancel_locked(struct intr_token *root, int reason);
uint64_t intr__call_resend_locked(uint64_t now, bool all);
bool intr__call_after_fork(void);
/* A join on this thread waits for task t (task.c), until _end: a fork
 * child ends it, if nothing else did (intr__call_after_fork). */
void intr__call_await(struct intr_task *t);
void intr__call_await_end(struct intr_task *t);
struct intr_task *intr__call_wake_take_locked(struct intr__waker **list);
struct intr__waker *intr__call_wake_done_locked(struct intr_task *t,
					       struct intr__waker *again);

/* ---------------------------------------------------------------- wake.c */
void intr__wakers_run(struct intr__waker *w);
struct intr__waker *intr__wakers_repeat(struct intr__waker *w);
void intr__wakers_drop(struct intr__waker *w);

/* --------------------------------------------------- arch/<arch>/syscall */
/* What the window returns: the system call's result, and whether the call
 * left by the cancel exit instead (then the system call was not made, and
 * ret is -ECANCELED).  Two registers: rax:rdx, x0:x1. */
struct intr__sc_ret {
	long ret;
	long exited;
};

/* Make system call nr unless *flag is set; the cancel exit if it is, or if
 * the handler moved the PC out of the window (see the stubs). */
struct intr__sc_ret intr__sc_call(const atomic_int *flag, long nr, long a1,
				  long a2, long a3, long a4, long a5, long a6);
extern char intr__sc_begin[], intr__sc_end[], intr__sc_cancel[];

/* -------------------------------------------------------------- syscall.c */
/* intr__sc_call for body t, with what the handler needs around it; a wait
 * that only the signal ends (intr__slot_signal first). */
struct intr__sc_ret intr__sc_pass(struct intr_task *t, long nr, long a1,
				  long a2, long a3, long a4, long a5, long a6);

/* ---------------------------------------------------------------- slot.c */
/* Publish the signal-free wait of kind the body is about to make; the
 * reason must be looked at after this.  False if the slot is taken (a
 * wait over another on this thread): then this wait takes the signal,
 * and the canceller is told to send it. */
bool intr__slot_publish(struct intr_task *t, int kind);
/* Take it back after the wait; true if the canceller had claimed it (it
 * woke the wait instead of signalling: the reason is set). */
bool intr__slot_clear(struct intr_task *t);
/* A wait that only the interrupt signal ends is about to be made: if a
 * signal-free wait's slot is out on this thread (a handler runs over that
 * wait, or a siglongjmp left it), the canceller must signal as well.  The
 * reason must be looked at after this. */
void intr__slot_signal(struct intr_task *t);
/* The call's wake eventfd, made on first use; -1 if there is none to be
 * had (the budget, a failure, INTR_WAKE=signal): take the signal. */
int intr__slot_fd(struct intr_task *t);
/* Close it (the call's end step, or a fork child dropping the parent's;
 * tree lock). */
void intr__slot_close_locked(struct intr_task *t);
/* In a fork child, after every call's wake fd was closed. */
void intr__slot_after_fork(void);
/* The canceller's wake of a claimed slot s (tree lock; async-signal-safe). */
void intr__slot_wake_locked(struct intr_task *t, int s);

/* ---------------------------------------------------------------- here.c */
/* Register the own token of scope t, for intr_ctx_token(): 0, -ENOMEM. */
int intr__here_token(struct intr_task *t);

/* -------------------------------------------------------------- signal.c */
extern int intr__signo;
/* Cookies of the call running on this thread and of the one before. */
extern INTR_TLS uint64_t intr__cookie_cur;
extern INTR_TLS uint64_t intr__cookie_prev;
/* A send of ours to this thread is outstanding (signal.c). */
extern INTR_TLS atomic_int intr__ours_pending;
/* The thread is inside a wrapper's window; the handler has blocked the
 * signal in a context it returned to, for the window (signal.c). */
extern INTR_TLS volatile int intr__sc_active;
extern INTR_TLS volatile int intr__sc_deferred;
extern sigset_t intr__body_mask;	/* a worker inside a body */
extern sigset_t intr__quiet_mask;	/* a library thread otherwise */

int intr__signal_install(int signo);
int intr__signal_send(pid_t tid, uint64_t cookie, atomic_int *pending);
void intr__signal_after_fork(void);
void intr__signal_check(void);
unsigned long intr__signal_sends(void);
bool intr__signal_installed(void);
bool intr__signal_check_sent_locked(unsigned long before);
bool intr__signal_repair_take_locked(void);
void intr__signal_restore(void);

/* ------------------------------------------------------------- service.c */
int intr__service_start(void);
void intr__service_after_fork(void);
void intr__service_stop(void);

/* --------------------------------------------------------------- timer.c */
int intr__timer_open(void);
void intr__timer_arm_locked(uint64_t at);
void intr__timer_pass_locked(void);
void intr__timer_fire_locked(void);
void intr__timer_wait(void);
void intr__timer_close(void);
void intr__timer_kick(void);
int intr__timer_kicks(void);
void intr__timer_wait_kick(int seen);

/* ---------------------------------------------------------------- pool.c */
int intr__pool_submit(struct intr__job *job);
void intr__pool_lock(void);
void intr__pool_unlock(void);
void intr__pool_after_fork(void);
int intr__pool_stop(void);
/* True on a worker thread (also in a child forked by one). */
extern INTR_TLS bool intr__is_worker;

/* ------------------------------------------------------------- context.c */
int intr__context_capture(struct intr_task *t);
void intr__context_install(struct intr_task *t);
void intr__context_restore(struct intr_task *t);
void intr__context_release(struct intr_task *t);
void intr__values_free(struct intr__value *v);
void intr__context_no_fork_handlers(int err);
void intr__context_fork_lock(void);
void intr__context_fork_unlock(void);
void intr__context_after_fork(void);
void intr__context_free(void);

/* -------------------------------------------------------------- config.c */
extern struct intr_config intr__cfg;
int intr__signal_parse(const char *s);
bool intr__signal_usable(int signo);
void intr__config_lock(sigset_t *saved);
void intr__config_unlock(const sigset_t *saved);
void intr__config_after_fork(void);
bool intr__config_started(void);
void intr__config_settle(void);
void intr__config_freeze(void);

/* -------------------------------------------------------------- thread.c */
int intr__create_thread(enum intr__site site, void *(*fn)(void *), void *arg,
			pthread_t *th);

/* ----------------------------------------------------------- lifecycle.c */
int intr__start(void);
/* A scope (intr_run_here) counts itself in and out, for the unload: 0,
 * or -EAGAIN once the library is unloaded. */
int intr__scope_enter(void);
void intr__scope_leave(void);
/* The unload destructor; a statically linked test may call it early. */
void intr__fini(void);

#endif /* INTR_INTERNAL_H */
