/* SPDX-License-Identifier: MIT */
/*
 * intr-latency: declarations shared by the tool's files.
 *
 *   intr-latency.c  options, the order of the sections, exit status
 *   lat-cancel.c    cancel latency: the library and its peers on one call
 *   lat-cost.c      cost while blocked, call overhead, scale
 *   lat-stats.c     samples, percentiles, tables, histogram, JSON, CSV
 */
#ifndef INTR_LATENCY_H
#define INTR_LATENCY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* The blocking calls a waiter can be stopped in. */
enum lat_call {
	CALL_URING,		/* intr_uring_wait_cqe */
	CALL_URING_RAW,		/* liburing's io_uring_wait_cqe */
	CALL_READ,		/* intr_read on a pipe */
	CALL_READ_RAW,		/* read() on a pipe */
	CALL_POLL,		/* intr_poll */
	CALL_SLEEP,		/* intr_sleep */
	CALL_COND,		/* intr_cond_wait */
	NCALLS
};

/* How the blocked waiter is stopped. */
enum lat_method {
	M_EVENTFD,		/* floor: eventfd write wakes a blocked read */
	M_KILL,			/* pthread_kill -> EINTR, no library */
	M_NOP,			/* NOP submitted to the waiter's ring */
	M_MSGRING,		/* MSG_RING from the canceller's own ring */
	M_INTR,			/* intr_token_cancel */
	M_HERE,			/* the same, of a scope in place */
	M_POLL,			/* the waiter polls a flag with a timeout */
	M_PCANCEL,		/* pthread_cancel: kills the body */
	NMETHODS
};

enum lat_stage { ST_BODY, ST_FINAL, ST_RETURN, NSTAGES };

enum lat_section {
	SEC_CANCEL = 1, SEC_IDLE = 2, SEC_OVERHEAD = 4, SEC_SCALE = 8,
};

/* Where the scale section's workers run (--scale-place). */
enum scale_place {
	PLACE_SPREAD,		/* every allowed CPU but the canceller's */
	PLACE_PINNED,		/* the canceller's CPU */
	PLACE_FREE,		/* every allowed CPU */
};

#define SCALE_SIZES 4		/* sizes -t may list */

struct lat_opts {
	unsigned loops;			/* -n */
	unsigned poll_loops;		/* --poll-loops */
	unsigned timeout_poll_ms;	/* --timeout-poll-ms */
	unsigned idle_ms;		/* --idle-ms */
	unsigned threads[SCALE_SIZES];	/* -t: the scale section's sizes */
	unsigned nthreads;
	enum scale_place scale_place;	/* --scale-place */
	unsigned scale_rounds;		/* --scale-rounds */
	unsigned resend_us;		/* --resend-us, 0: the library's */
	unsigned calls;			/* bit per enum lat_call */
	unsigned methods;		/* bit per enum lat_method */
	unsigned sections;		/* enum lat_section bits */
	bool pin, quiet, histogram;
	int cpu[2];			/* the canceller's CPU, the waiters' */
	const char *json, *csv;
	const char *drop;		/* INTR_LATENCY_DROP: a method whose
					 * stop is not sent (self-check) */
	const char *same_cpu;		/* INTR_LATENCY_SAME_CPU: a method
					 * whose waiters run on the
					 * canceller's CPU (self-check) */
	int lib_signo, raw_signo;
};

extern struct lat_opts opt;

/* A series of samples (ns) and what it is. */
struct series {
	const char *section;		/* "cancel", "overhead" */
	const char *call;		/* display name, or "" */
	const char *method;
	const char *stage;		/* "body", "final", "return", "round" */
	const char *note;
	uint64_t *v;
	unsigned n, cap;
	unsigned failures;
	bool sorted;
	struct series *floor;		/* ratio of p50s; NULL: none */
	/* Where the waiters ran: samples whose waiter's CPU is known, and
	 * of those, the ones where it came back on the CPU of the thread
	 * that stopped it (a wake-up there is cheaper than one of another
	 * CPU, so only runs placed alike compare). */
	unsigned placed, same_cpu;
};

struct idle_result {
	const char *call, *method;
	uint64_t interval_ns, cpu_ns;
	long switches;			/* voluntary + involuntary */
	bool ok;
};

/* One round of the scale section: times from the instant before the
 * cancel; CPU times of the thread that cancels and then joins, and of the
 * whole process from the cancel to the last join. */
struct scale_round {
	uint64_t last_body_ns;		/* last body back */
	uint64_t half_return_ns;	/* half the joins returned */
	uint64_t last_return_ns;	/* last join returned */
	uint64_t cancel_wall_ns;	/* intr_token_cancel, wall time */
	uint64_t cancel_cpu_ns;		/* ... its thread's CPU time */
	uint64_t join_cpu_ns;		/* the join loop's thread CPU time */
	uint64_t proc_cpu_ns;		/* every thread, cancel to last join */
	long switches;			/* the process's context switches */
	unsigned cancelled;		/* calls that saw the cancel */
	unsigned cpus;			/* CPUs the bodies returned on */
	/* The floor: as many plain threads blocked in read(), placed
	 * alike, one pthread_sigqueue() each from the same thread. */
	uint64_t floor_send_cpu_ns;	/* the sends, that thread's CPU */
	uint64_t floor_send_wall_ns;	/* the sends, wall time */
	uint64_t floor_last_ns;		/* last plain thread back */
	bool floor_ok;			/* every one came back with EINTR */
};

struct scale_result {
	unsigned calls, rounds;
	struct scale_round r[16];
	long rss_per_call;		/* bytes, round 1 */
	size_t stack_reserved;		/* bytes of address space per worker */
	bool ok;
	char skipped[160];		/* why the size was not run, or "" */
};

/* lat-stats.c */
struct series *series_new(const char *section, const char *call,
			  const char *method, const char *stage,
			  const char *note);
void series_add(struct series *s, uint64_t ns);
/* One sample's placement: the waiter's CPU and the stopping thread's (-1:
 * not known). */
void series_place(struct series *s, int waiter_cpu, int own_cpu);
uint64_t series_pct(struct series *s, double q);
struct series *series_find(const char *section, const char *call,
			   const char *method, const char *stage);
void print_table(const char *title, const char *section, const char *call);
void print_histogram(const char *section, const char *call);
void print_idle(const struct idle_result *r, unsigned n);
void print_scale(const struct scale_result *r, unsigned n);
void print_targets(const struct idle_result *idle, unsigned nidle,
		   const struct scale_result *scale, unsigned nscale);
int write_json(const char *path, const struct idle_result *idle,
	       unsigned nidle, const struct scale_result *scale,
	       unsigned nscale);
int write_csv(const char *path);

/* lat-cancel.c */
extern const char *const call_name[NCALLS];
extern const char *const call_short[NCALLS];
extern const char *const method_name[NMETHODS];
bool method_applies(enum lat_method m, enum lat_call c);
const char *method_note(enum lat_method m);
/* Measure cancel latency of every selected method on call c.  Returns the
 * number of failed iterations. */
unsigned measure_cancel(enum lat_call c);
/* One blocked interval of idle_ms for method m on call c. */
int measure_idle(enum lat_call c, enum lat_method m, struct idle_result *r);
void watchdog_start(void);
int raw_signal_install(void);
/* Bound the current phase: after ms, rescue() (may be NULL: give up). */
void watch_arm(unsigned ms, void (*rescue)(void *), void *arg);
bool watch_disarm(void);		/* true if it fired */

/* lat-cost.c */
unsigned measure_overhead(void);
/* The scale section for calls blocked calls.  Returns the number of
 * failed rounds; a size whose threads cannot start is skipped (r->skipped
 * says why), not failed. */
unsigned measure_scale(struct scale_result *r, unsigned calls);

/* helpers (lat-stats.c) */
uint64_t now_ns(void);
pid_t lat_gettid(void);
void sleep_ns(uint64_t ns);
int futex_wait(atomic_int *w, int val, uint64_t timeout_ns);
void futex_wake(atomic_int *w);
/* The CPUs of --pin: the first two this process may run on (one CPU:
 * both there).  Returns 0 or a negative errno. */
int pin_setup(void);
void pin_self(int which);		/* 0: canceller, 1: waiter */
/* The CPUs this process was allowed when it started. */
int cpus_allowed(void);
/* Move the calling scale worker where --scale-place says (once per
 * thread; a worker keeps its place from round to round). */
void place_scale_worker(void);
uint64_t thread_cpu_ns(void);		/* CLOCK_THREAD_CPUTIME_ID */
/* Pin a waiter of method m as the run wants it (and the self-check). */
void place_waiter(const char *method);
/* The system call tid is blocked in, -1 if none, -2 if running. */
long blocked_syscall(pid_t tid);
int thread_cost(pid_t tid, uint64_t *cpu_ns, long *switches);
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* INTR_LATENCY_H */
