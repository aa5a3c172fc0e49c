/* SPDX-License-Identifier: MIT */
/*
 * intr-latency: samples, percentiles and every form of output (tables,
 * histogram, targets, JSON, CSV), and the small system helpers.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>

#include "lat.h"

#define MAX_SERIES 256

static struct series *all[MAX_SERIES];
static unsigned nall;

/* ------------------------------------------------------------ helpers */
uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

pid_t lat_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

void sleep_ns(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000u),
		.tv_nsec = (long)(ns % 1000000000u),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

int futex_wait(atomic_int *w, int val, uint64_t timeout_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(timeout_ns / 1000000000u),
		.tv_nsec = (long)(timeout_ns % 1000000000u),
	};

	return (int)syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val,
			    timeout_ns ? &ts : NULL, NULL, 0);
}

void futex_wake(atomic_int *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* The CPUs the process was allowed at the start, before any pinning. */
static cpu_set_t allowed;

int pin_setup(void)
{
	int i, n = 0;

	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		return -errno;
	for (i = 0; i < CPU_SETSIZE && n < 2; i++)
		if (CPU_ISSET(i, &allowed))
			opt.cpu[n++] = i;
	if (!n)
		return -ENODEV;
	if (n == 1)
		opt.cpu[1] = opt.cpu[0];
	return 0;
}

void pin_self(int which)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(opt.cpu[which], &set);
	sched_setaffinity(0, sizeof(set), &set);
}

int cpus_allowed(void)
{
	return CPU_COUNT(&allowed);
}

void place_scale_worker(void)
{
	static _Thread_local bool placed;
	cpu_set_t set;

	if (placed)
		return;
	placed = true;
	set = allowed;
	if (opt.scale_place == PLACE_PINNED && opt.pin) {
		CPU_ZERO(&set);
		CPU_SET(opt.cpu[0], &set);
	} else if (opt.scale_place == PLACE_SPREAD && opt.pin &&
		   CPU_COUNT(&set) > 1) {
		CPU_CLR(opt.cpu[0], &set);
	}
	sched_setaffinity(0, sizeof(set), &set);
}

uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void place_waiter(const char *method)
{
	if (opt.same_cpu && !strcmp(opt.same_cpu, method))
		pin_self(0);
	else if (opt.pin)
		pin_self(1);
}

static int read_task_file(pid_t tid, const char *name, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/%s", (int)tid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

long blocked_syscall(pid_t tid)
{
	char buf[256];

	if (read_task_file(tid, "syscall", buf, sizeof(buf)))
		return -1;
	if (!strncmp(buf, "running", 7))
		return -2;
	return strtol(buf, NULL, 10);
}

int thread_cost(pid_t tid, uint64_t *cpu_ns, long *switches)
{
	char buf[2048], *s;
	long v = 0, nv = 0;

	if (read_task_file(tid, "schedstat", buf, sizeof(buf)))
		return -1;
	*cpu_ns = strtoull(buf, NULL, 10);
	if (read_task_file(tid, "status", buf, sizeof(buf)))
		return -1;
	s = strstr(buf, "\nvoluntary_ctxt_switches:");
	if (s)
		v = strtol(s + 25, NULL, 10);
	s = strstr(buf, "\nnonvoluntary_ctxt_switches:");
	if (s)
		nv = strtol(s + 28, NULL, 10);
	*switches = v + nv;
	return 0;
}

void progress(const char *fmt, ...)
{
	va_list ap;

	if (opt.quiet || !isatty(STDERR_FILENO))
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ series */
struct series *series_new(const char *section, const char *call,
			  const char *method, const char *stage,
			  const char *note)
{
	struct series *s;

	if (nall == MAX_SERIES)
		abort();
	s = calloc(1, sizeof(*s));
	if (!s)
		abort();
	s->section = section;
	s->call = call;
	s->method = method;
	s->stage = stage;
	s->note = note;
	all[nall++] = s;
	return s;
}

void series_add(struct series *s, uint64_t ns)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 256;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v)
			abort();
	}
	s->v[s->n++] = ns;
	s->sorted = false;
}

void series_place(struct series *s, int waiter_cpu, int own_cpu)
{
	if (waiter_cpu < 0 || own_cpu < 0)
		return;
	s->placed++;
	s->same_cpu += waiter_cpu == own_cpu;
}

/* The share of a series' waiters that ran on the stopping thread's CPU. */
static double same_share(const struct series *s)
{
	return s->placed ? (double)s->same_cpu / s->placed : NAN;
}

/* Two series were placed alike: their waiters came back on the stopping
 * thread's CPU equally often (within a tenth of the samples). */
static bool placed_alike(const struct series *a, const struct series *b)
{
	return a->placed && b->placed &&
	       fabs(same_share(a) - same_share(b)) <= 0.1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile; q in [0, 1]. */
uint64_t series_pct(struct series *s, double q)
{
	size_t i;

	if (!s->n)
		return 0;
	if (!s->sorted) {
		qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
		s->sorted = true;
	}
	i = (size_t)ceil(q * s->n);
	if (i > 0)
		i--;
	if (i >= s->n)
		i = s->n - 1;
	return s->v[i];
}

struct series *series_find(const char *section, const char *call,
			   const char *method, const char *stage)
{
	unsigned i;

	for (i = 0; i < nall; i++) {
		struct series *s = all[i];

		if (!strcmp(s->section, section) && !strcmp(s->call, call) &&
		    !strcmp(s->method, method) && !strcmp(s->stage, stage) &&
		    s->n)
			return s;
	}
	return NULL;
}

static double ratio_of(struct series *s)
{
	uint64_t f;

	if (!s->floor || !s->floor->n || !s->n)
		return NAN;
	f = series_pct(s->floor, 0.5);
	return f ? (double)series_pct(s, 0.5) / (double)f : NAN;
}

/* ------------------------------------------------------------ tables */
static const double pcts[] = { 0.0, 0.5, 0.9, 0.99, 0.999, 1.0 };

void print_table(const char *title, const char *section, const char *call)
{
	const char *last_note_method = "";
	unsigned i, j;

	printf("\n%s\n", title);
	printf("  %-19s %-7s %6s %9s %9s %9s %9s %9s %9s %7s %5s\n", "method",
	       "stage", "n", "min", "p50", "p90", "p99", "p99.9", "max",
	       "x floor", "lost");
	for (i = 0; i < nall; i++) {
		struct series *s = all[i];
		double r;

		if (strcmp(s->section, section) || strcmp(s->call, call))
			continue;
		if (!strcmp(s->stage, "-")) {
			printf("  %-19s %-7s %s\n", s->method, "-", s->note);
			continue;
		}
		printf("  %-19s %-7s %6u", s->method, s->stage, s->n);
		for (j = 0; j < sizeof(pcts) / sizeof(pcts[0]); j++) {
			if (s->n)
				printf(" %9.1f", series_pct(s, pcts[j]) / 1e3);
			else
				printf(" %9s", "-");
		}
		r = ratio_of(s);
		if (isnan(r))
			printf(" %7s", "-");
		else if (r >= 1000)
			printf(" %7.0f", r);
		else
			printf(" %7.2f", r);
		printf(" %5u\n", s->failures);
	}
	/* Where the waiters ran, once per method. */
	last_note_method = "";
	for (i = 0; i < nall; i++) {
		struct series *s = all[i];

		if (strcmp(s->section, section) || strcmp(s->call, call) ||
		    !s->placed || !strcmp(s->method, last_note_method))
			continue;
		if (!*last_note_method)
			printf("  %s", strcmp(section, "overhead") ?
			       "waiters back on the canceller's CPU:" :
			       "the other side on the caller's CPU:");
		printf(" %s %u/%u", s->method, s->same_cpu, s->placed);
		last_note_method = s->method;
	}
	if (*last_note_method)
		printf("\n");
	last_note_method = "";
	/* Notes, once per method, in table order. */
	for (i = 0; i < nall; i++) {
		struct series *s = all[i];

		if (strcmp(s->section, section) || strcmp(s->call, call) ||
		    !s->note || !strcmp(s->stage, "-") ||
		    !strcmp(s->method, last_note_method))
			continue;
		printf("    %s: %s\n", s->method, s->note);
		last_note_method = s->method;
	}
}

static const double bucket_us[] = {
	1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4,
	1e5, 2e5, 5e5,
};
#define NBUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]) + 1)

void print_histogram(const char *section, const char *call)
{
	unsigned i, j, k;

	printf("  histogram (count of samples <= us; last column: more)\n");
	printf("  %-22s", "method/stage");
	for (j = 0; j < NBUCKETS - 1; j++) {
		if (bucket_us[j] >= 1e3)
			printf(" %5gk", bucket_us[j] / 1e3);
		else
			printf(" %6g", bucket_us[j]);
	}
	printf(" %6s\n", ">");
	for (i = 0; i < nall; i++) {
		struct series *s = all[i];
		unsigned count[NBUCKETS] = { 0 };
		char label[64];

		if (strcmp(s->section, section) || strcmp(s->call, call) ||
		    !s->n)
			continue;
		for (k = 0; k < s->n; k++) {
			double us = s->v[k] / 1e3;

			for (j = 0; j < NBUCKETS - 1 && us > bucket_us[j]; j++)
				;
			count[j]++;
		}
		snprintf(label, sizeof(label), "%s/%s", s->method, s->stage);
		printf("  %-22s", label);
		for (j = 0; j < NBUCKETS; j++)
			printf(" %6u", count[j]);
		printf("\n");
	}
}

static double idle_wakeups(const struct idle_result *r)
{
	/* Going to sleep for the interval is not a wake-up; every switch
	 * after it is one (the thread woke, ran, and slept again). */
	return (double)r->switches;
}

void print_idle(const struct idle_result *r, unsigned n)
{
	unsigned i;

	printf("\ncost while blocked (the waiting thread, over a blocked interval)\n");
	printf("  %-20s %-15s %9s %11s %9s %11s\n", "call", "method",
	       "interval", "cpu us", "wake-ups", "wake-ups/s");
	for (i = 0; i < n; i++) {
		if (!r[i].ok) {
			printf("  %-20s %-15s %9s\n", r[i].call, r[i].method,
			       "failed");
			continue;
		}
		printf("  %-20s %-15s %7.0fms %11.1f %9.0f %11.1f\n", r[i].call,
		       r[i].method, r[i].interval_ns / 1e6, r[i].cpu_ns / 1e3,
		       idle_wakeups(&r[i]),
		       idle_wakeups(&r[i]) * 1e9 / (double)r[i].interval_ns);
	}
	printf("    cpu: /proc/self/task/TID/schedstat; wake-ups: voluntary + involuntary\n"
	       "    context switches of that thread (/proc/self/task/TID/status)\n");
}

/* What a scale row shows, per round. */
enum scale_field {
	F_BODY, F_HALF, F_LAST, F_CANCEL_WALL, F_CANCEL_CPU, F_JOIN_CPU,
	F_PROC_CPU, F_SWITCHES, F_CPUS, F_FLOOR_CPU, F_FLOOR_LAST,
};

static double scale_field(const struct scale_round *r, enum scale_field f)
{
	switch (f) {
	case F_BODY:		return (double)r->last_body_ns;
	case F_HALF:		return (double)r->half_return_ns;
	case F_LAST:		return (double)r->last_return_ns;
	case F_CANCEL_WALL:	return (double)r->cancel_wall_ns;
	case F_CANCEL_CPU:	return (double)r->cancel_cpu_ns;
	case F_JOIN_CPU:	return (double)r->join_cpu_ns;
	case F_PROC_CPU:	return (double)r->proc_cpu_ns;
	case F_SWITCHES:	return (double)r->switches;
	case F_CPUS:		return (double)r->cpus;
	case F_FLOOR_CPU:
		return r->floor_ok ? (double)r->floor_send_cpu_ns : NAN;
	case F_FLOOR_LAST:
		return r->floor_ok ? (double)r->floor_last_ns : NAN;
	}
	return NAN;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median round's value (the lower of the two middle ones), NAN if
 * the size has no round with it. */
static double scale_median(const struct scale_result *r, enum scale_field f)
{
	double v[16];
	unsigned i, n = 0;

	for (i = 0; i < r->rounds; i++) {
		v[n] = scale_field(&r->r[i], f);
		if (!isnan(v[n]))
			n++;
	}
	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(n - 1) / 2];
}

static const char *const place_text[] = {
	"spread: every allowed CPU but the canceller's",
	"pinned: on the canceller's CPU",
	"free: every allowed CPU",
};

/* One row of the scale table: a label and, per size, the median round's
 * value of f scaled by mul (and divided by the calls if per_call). */
static void scale_row(const struct scale_result *r, unsigned n,
		      const char *label, enum scale_field f, double mul,
		      bool per_call, const char *fmt)
{
	unsigned i;
	double v;

	printf("  %-34s", label);
	for (i = 0; i < n; i++) {
		if (!r[i].rounds) {
			printf(" %14s", r[i].skipped[0] ? "skipped" : "failed");
			continue;
		}
		v = scale_median(&r[i], f) * mul;
		if (per_call)
			v /= r[i].calls;
		if (isnan(v)) {
			printf(" %14s", "-");
			continue;
		}
		printf(" ");
		printf(fmt, v);
	}
	printf("\n");
}

void print_scale(const struct scale_result *r, unsigned n)
{
	unsigned i, k, most = 0;
	char head[48];

	if (!n)
		return;
	printf("\nscale: calls blocked in intr_read on one token, one intr_token_cancel, then\n"
	       "intr_join of each in spawn order on the same thread; %d CPUs allowed, workers\n"
	       "%s; the median round of each size\n",
	       cpus_allowed(), place_text[opt.scale_place]);
	printf("  %-34s", "");
	for (i = 0; i < n; i++) {
		snprintf(head, sizeof(head), "%u calls", r[i].calls);
		printf(" %14s", head);
		if (r[i].rounds > most)
			most = r[i].rounds;
	}
	printf("\n");
	scale_row(r, n, "last body back, ms", F_BODY, 1e-6, false, "%14.2f");
	scale_row(r, n, "half the joins returned, ms", F_HALF, 1e-6, false,
		  "%14.2f");
	scale_row(r, n, "last join returned, ms", F_LAST, 1e-6, false,
		  "%14.2f");
	scale_row(r, n, "intr_token_cancel, wall ms", F_CANCEL_WALL, 1e-6,
		  false, "%14.2f");
	scale_row(r, n, "canceller CPU per call, us", F_CANCEL_CPU, 1e-3,
		  true, "%14.2f");
	scale_row(r, n, "floor: sender CPU per signal, us", F_FLOOR_CPU, 1e-3,
		  true, "%14.2f");
	printf("  %-34s", "canceller CPU / floor");
	for (i = 0; i < n; i++) {
		double c = scale_median(&r[i], F_CANCEL_CPU);
		double f = scale_median(&r[i], F_FLOOR_CPU);

		if (!r[i].rounds || isnan(f) || f <= 0)
			printf(" %14s", "-");
		else
			printf(" %14.2f", c / f);
	}
	printf("\n");
	scale_row(r, n, "joiner CPU per call, us", F_JOIN_CPU, 1e-3, true,
		  "%14.2f");
	scale_row(r, n, "process CPU per call, us", F_PROC_CPU, 1e-3, true,
		  "%14.2f");
	scale_row(r, n, "context switches per call", F_SWITCHES, 1, true,
		  "%14.2f");
	scale_row(r, n, "CPUs the bodies returned on", F_CPUS, 1, false,
		  "%14.0f");
	scale_row(r, n, "floor: last plain thread back, ms", F_FLOOR_LAST,
		  1e-6, false, "%14.2f");
	printf("  %-34s", "memory per blocked call, bytes");
	for (i = 0; i < n; i++) {
		if (r[i].rounds)
			printf(" %14ld", r[i].rss_per_call);
		else
			printf(" %14s", r[i].skipped[0] ? "skipped" : "failed");
	}
	printf("\n");
	for (k = 0; k < most; k++) {
		snprintf(head, sizeof(head), "round %u: body / join, ms", k + 1);
		printf("  %-34s", head);
		for (i = 0; i < n; i++) {
			if (k >= r[i].rounds) {
				printf(" %14s", "-");
				continue;
			}
			snprintf(head, sizeof(head), "%.1f/%.1f",
				 r[i].r[k].last_body_ns / 1e6,
				 r[i].r[k].last_return_ns / 1e6);
			printf(" %14s", head);
		}
		printf("\n");
	}
	for (i = 0; i < n; i++) {
		if (r[i].skipped[0])
			printf("  %u calls skipped: %s\n", r[i].calls,
			       r[i].skipped);
		for (k = 0; k < r[i].rounds; k++)
			if (r[i].r[k].cancelled != r[i].calls)
				printf("  %u calls, round %u: %u cancelled\n",
				       r[i].calls, k + 1, r[i].r[k].cancelled);
	}
	printf("    per call: the thread's CPU time (CLOCK_THREAD_CPUTIME_ID) in\n"
	       "    intr_token_cancel, in the joins, and the process's (getrusage) from the\n"
	       "    cancel to the last join, divided by the calls; floor: as many plain\n"
	       "    threads blocked in read(), placed alike, one pthread_sigqueue() each\n"
	       "    from the same thread, no library; memory: RSS growth while the calls\n"
	       "    start, round 1; %zu KiB of address space per worker stack\n",
	       r[0].stack_reserved / 1024);
}

/* ------------------------------------------------------------ targets */
struct target {
	char name[96];
	double value, limit;
	bool at_least;		/* value >= limit; else value <= limit */
	bool measured;
	char unlike[96];	/* why the two sides do not compare, or "" */
};

static struct target targets[32];
static unsigned ntargets;

static void target_add(bool measured, double value, double limit,
		       bool at_least, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void target_add(bool measured, double value, double limit,
		       bool at_least, const char *fmt, ...)
{
	struct target *t;
	va_list ap;

	if (ntargets == sizeof(targets) / sizeof(targets[0]))
		return;
	t = &targets[ntargets++];
	va_start(ap, fmt);
	vsnprintf(t->name, sizeof(t->name), fmt, ap);
	va_end(ap);
	t->measured = measured && !isnan(value);
	t->unlike[0] = 0;
	t->value = value;
	t->limit = limit;
	t->at_least = at_least;
}

static bool target_pass(const struct target *t)
{
	return t->at_least ? t->value >= t->limit : t->value <= t->limit;
}

/* A ratio of a to b is a target only if their waiters were placed alike:
 * otherwise the last target added is marked as not comparable. */
static void target_placement(const struct series *a, const struct series *b)
{
	struct target *t;

	if (!ntargets || !a || !b || placed_alike(a, b))
		return;
	t = &targets[ntargets - 1];
	snprintf(t->unlike, sizeof(t->unlike), "placed unlike, %s %.0f%% "
		 "and %s %.0f%% on the stopper's CPU", a->method,
		 100 * same_share(a), b->method, 100 * same_share(b));
}

static double p50_ratio(struct series *a, struct series *b)
{
	uint64_t d;

	if (!a || !b)
		return NAN;
	d = series_pct(b, 0.5);
	return d ? (double)series_pct(a, 0.5) / (double)d : NAN;
}

static void compute_targets(const struct idle_result *idle, unsigned nidle,
			    const struct scale_result *scale, unsigned nscale)
{
	struct series *run, *futex, *create, *here;
	unsigned c, i;

	ntargets = 0;
	for (c = 0; c < NCALLS; c++) {
		struct series *in, *k, *f;

		if (c == CALL_COND)
			continue;	/* not the signal path */
		in = series_find("cancel", call_name[c], "intr", "body");
		if (!in)
			continue;
		k = series_find("cancel", call_name[c], "kill", "body");
		f = series_find("cancel", call_name[c], "eventfd", "body");
		target_add(k != NULL, p50_ratio(in, k), 1.1, false,
			   "%s: cancel p50 / raw pthread_kill p50", call_name[c]);
		target_placement(in, k);
		/* The waits that need no signal: at the kernel's floor. */
		target_add(f != NULL, p50_ratio(in, f),
			   c == CALL_URING || c == CALL_POLL || c == CALL_SLEEP ?
			   1.1 : 1.3, false,
			   "%s: cancel p50 / eventfd floor p50", call_name[c]);
		target_placement(in, f);
	}
	/* The scope's cancel beside the pooled body's, the same call. */
	for (c = 0; c < NCALLS; c++) {
		struct series *scope, *pooled;

		scope = series_find("cancel", call_name[c], "intr-in-place",
				    "body");
		pooled = series_find("cancel", call_name[c], "intr", "body");
		if (!scope || !pooled)
			continue;
		target_add(true, p50_ratio(scope, pooled), 1.05, false,
			   "%s: scope / pooled cancel p50",
			   call_name[c]);
		target_placement(scope, pooled);
	}
	run = series_find("overhead", "", "run_interruptible", "round");
	futex = series_find("overhead", "", "futex ping-pong", "round");
	create = series_find("overhead", "", "pthread_create+join", "round");
	here = series_find("overhead", "", "in-place scope", "round");
	if (here)
		target_add(true, (double)series_pct(here, 0.5) / 1e3, 0.3,
			   false, "in-place scope p50, us");
	if (run) {
		target_add(futex != NULL, p50_ratio(run, futex), 1.3, false,
			   "run_interruptible p50 / futex ping-pong p50");
		target_placement(run, futex);
		target_add(create != NULL, p50_ratio(create, run), 3.0, true,
			   "pthread_create+join p50 / run_interruptible p50");
		target_placement(create, run);
	}
	for (i = 0; i < nidle; i++) {
		if (strcmp(idle[i].method, "intr"))
			continue;
		target_add(idle[i].ok, idle_wakeups(&idle[i]), 0, false,
			   "%s: wake-ups while blocked (intr)", idle[i].call);
	}
	for (i = 0; i < nscale; i++) {
		const struct scale_result *r = &scale[i];
		bool ran = r->ok && r->rounds;

		target_add(ran, scale_median(r, F_CANCEL_CPU) / 1e3 / r->calls,
			   2, false, "%u calls: canceller CPU per call, us",
			   r->calls);
		target_add(ran, scale_median(r, F_JOIN_CPU) / 1e3 / r->calls,
			   2, false, "%u calls: joiner CPU per call, us",
			   r->calls);
		if (r->calls == 1000) {
			target_add(ran, scale_median(r, F_LAST) / 1e6, 20,
				   false, "%u calls: last join returned, ms",
				   r->calls);
		} else if (r->calls == 10000) {
			target_add(ran, scale_median(r, F_LAST) / 1e6, 100,
				   false, "%u calls: last join returned, ms",
				   r->calls);
			if (cpus_allowed() < 16)
				snprintf(targets[ntargets - 1].unlike,
					 sizeof(targets[0].unlike),
					 "%d CPUs; the target is for 16",
					 cpus_allowed());
		}
	}
}

/* The scope in place beside the pooled call, measured in the same run.
 * Where the waiters ran is known of the body stage; the return stage is
 * where each caller learns of the end: in place on the waiter's own
 * thread, for the pool on the joiner's. */
static void print_in_place(void)
{
	static const char *const stages[] = { "body", "final", "return" };
	struct series *a, *b;
	bool any = false, alike;
	unsigned c, st;
	char name[80];

	for (c = 0; c < NCALLS; c++) {
		a = series_find("cancel", call_name[c], "intr-in-place", "body");
		b = series_find("cancel", call_name[c], "intr", "body");
		if (!a || !b || !a->n || !b->n)
			continue;
		alike = placed_alike(a, b);
		if (!any)
			printf("\nin place / pooled (p50 ratios from this run)\n");
		any = true;
		for (st = 0; st < 3; st++) {
			a = series_find("cancel", call_name[c],
					"intr-in-place", stages[st]);
			b = series_find("cancel", call_name[c], "intr",
					stages[st]);
			if (!a || !b)
				continue;
			snprintf(name, sizeof(name), "cancel %s, %s",
				 call_name[c], stages[st]);
			printf("  %-52s %8.2f%s\n", name, p50_ratio(a, b),
			       alike ? "" : "  (placed unlike: not comparable)");
		}
	}
	a = series_find("overhead", "", "in-place scope", "round");
	b = series_find("overhead", "", "run_interruptible", "round");
	if (a && b && a->n && b->n) {
		if (!any)
			printf("\nin place / pooled (p50 ratios from this run)\n");
		printf("  %-52s %8.2f\n", "overhead, empty call",
		       p50_ratio(a, b));
	}
}

void print_targets(const struct idle_result *idle, unsigned nidle,
		   const struct scale_result *scale, unsigned nscale)
{
	unsigned i;

	print_in_place();
	compute_targets(idle, nidle, scale, nscale);
	if (!ntargets)
		return;
	printf("\ntargets (informational, ratios from this run; the exit status ignores them)\n");
	for (i = 0; i < ntargets; i++) {
		struct target *t = &targets[i];

		if (t->measured && t->unlike[0]) {
			printf("  %-52s %8.2f %s %-6g n/a: %s\n", t->name,
			       t->value, t->at_least ? ">=" : "<=", t->limit,
			       t->unlike);
			continue;
		}
		if (!t->measured) {
			printf("  %-52s %8s %s %-6g %s\n", t->name, "-",
			       t->at_least ? ">=" : "<=", t->limit,
			       "not measured");
			continue;
		}
		printf("  %-52s %8.2f %s %-6g %s\n", t->name, t->value,
		       t->at_least ? ">=" : "<=", t->limit,
		       target_pass(t) ? "PASS" : "MISS");
	}
}

/* ------------------------------------------------------------ files */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else
		fprintf(f, "%.4f", v);
}

static void json_series(FILE *f, const char *section)
{
	bool first = true;
	unsigned i;

	for (i = 0; i < nall; i++) {
		struct series *s = all[i];

		if (strcmp(s->section, section))
			continue;
		fprintf(f, "%s\n    {\"call\": ", first ? "" : ",");
		first = false;
		json_str(f, s->call);
		fprintf(f, ", \"method\": ");
		json_str(f, s->method);
		fprintf(f, ", \"stage\": ");
		json_str(f, s->stage);
		fprintf(f, ", \"n\": %u, \"failures\": %u", s->n, s->failures);
		if (s->placed)
			fprintf(f, ", \"placed\": %u, \"same_cpu\": %u",
				s->placed, s->same_cpu);
		if (s->n)
			fprintf(f, ", \"min_ns\": %llu, \"p50_ns\": %llu, \"p90_ns\": %llu, \"p99_ns\": %llu, \"p999_ns\": %llu, \"max_ns\": %llu",
				(unsigned long long)series_pct(s, 0),
				(unsigned long long)series_pct(s, 0.5),
				(unsigned long long)series_pct(s, 0.9),
				(unsigned long long)series_pct(s, 0.99),
				(unsigned long long)series_pct(s, 0.999),
				(unsigned long long)series_pct(s, 1));
		fprintf(f, ", \"ratio_floor\": ");
		json_num(f, ratio_of(s));
		fprintf(f, ", \"note\": ");
		json_str(f, s->note ? s->note : "");
		fputc('}', f);
	}
}

int write_json(const char *path, const struct idle_result *idle,
	       unsigned nidle, const struct scale_result *scale,
	       unsigned nscale)
{
	FILE *f = fopen(path, "w");
	unsigned i, k;

	if (!f)
		return -errno;
	compute_targets(idle, nidle, scale, nscale);
	fprintf(f, "{\n  \"tool\": \"intr-latency\",\n  \"version\": ");
	json_str(f, INTR_VERSION);
	fprintf(f, ",\n  \"library_version\": ");
	json_str(f, intr_version());
	fprintf(f, ",\n  \"cpus\": %ld,\n", sysconf(_SC_NPROCESSORS_ONLN));
	fprintf(f, "  \"options\": {\"loops\": %u, \"poll_loops\": %u, \"timeout_poll_ms\": %u, \"idle_ms\": %u, \"threads\": [",
		opt.loops, opt.poll_loops, opt.timeout_poll_ms, opt.idle_ms);
	for (i = 0; i < opt.nthreads; i++)
		fprintf(f, "%s%u", i ? ", " : "", opt.threads[i]);
	fprintf(f, "], \"resend_us\": %u, \"pin\": %s, \"pin_cpus\": [%d, %d], \"signal\": %d, \"raw_signal\": %d},\n",
		opt.resend_us, opt.pin ? "true" : "false",
		opt.cpu[0], opt.cpu[1], opt.lib_signo, opt.raw_signo);
	fprintf(f, "  \"cancel\": [");
	json_series(f, "cancel");
	fprintf(f, "\n  ],\n  \"overhead\": [");
	json_series(f, "overhead");
	fprintf(f, "\n  ],\n  \"idle\": [");
	for (i = 0; i < nidle; i++) {
		fprintf(f, "%s\n    {\"call\": ", i ? "," : "");
		json_str(f, idle[i].call);
		fprintf(f, ", \"method\": ");
		json_str(f, idle[i].method);
		fprintf(f, ", \"ok\": %s, \"interval_ns\": %llu, \"cpu_ns\": %llu, \"wakeups\": %ld, \"wakeups_per_s\": ",
			idle[i].ok ? "true" : "false",
			(unsigned long long)idle[i].interval_ns,
			(unsigned long long)idle[i].cpu_ns, idle[i].switches);
		json_num(f, idle[i].interval_ns ?
			 idle_wakeups(&idle[i]) * 1e9 / (double)idle[i].interval_ns : NAN);
		fputc('}', f);
	}
	fprintf(f, "\n  ],\n  \"scale\": [");
	for (k = 0; k < nscale; k++) {
		const struct scale_result *r = &scale[k];

		fprintf(f, "%s\n    {\"calls\": %u, \"ok\": %s, \"skipped\": ",
			k ? "," : "", r->calls, r->ok ? "true" : "false");
		if (r->skipped[0])
			json_str(f, r->skipped);
		else
			fputs("null", f);
		fprintf(f, ", \"place\": ");
		json_str(f, place_text[opt.scale_place]);
		fprintf(f, ", \"cpus_allowed\": %d, \"rss_per_call_bytes\": %ld, \"stack_reserved_bytes\": %zu, \"rounds\": [",
			cpus_allowed(), r->rss_per_call, r->stack_reserved);
		for (i = 0; i < r->rounds; i++) {
			const struct scale_round *x = &r->r[i];

			fprintf(f, "%s\n      {\"last_body_ns\": %llu, \"half_return_ns\": %llu, \"last_return_ns\": %llu, \"cancel_wall_ns\": %llu, \"cancel_cpu_ns\": %llu, \"join_cpu_ns\": %llu, \"process_cpu_ns\": %llu, \"switches\": %ld, \"cancelled\": %u, \"cpus\": %u",
				i ? "," : "",
				(unsigned long long)x->last_body_ns,
				(unsigned long long)x->half_return_ns,
				(unsigned long long)x->last_return_ns,
				(unsigned long long)x->cancel_wall_ns,
				(unsigned long long)x->cancel_cpu_ns,
				(unsigned long long)x->join_cpu_ns,
				(unsigned long long)x->proc_cpu_ns,
				x->switches, x->cancelled, x->cpus);
			if (x->floor_ok)
				fprintf(f, ", \"floor_send_cpu_ns\": %llu, \"floor_send_wall_ns\": %llu, \"floor_last_ns\": %llu",
					(unsigned long long)x->floor_send_cpu_ns,
					(unsigned long long)x->floor_send_wall_ns,
					(unsigned long long)x->floor_last_ns);
			fputc('}', f);
		}
		fprintf(f, "]}");
	}
	fprintf(f, "\n  ]");
	fprintf(f, ",\n  \"targets\": [");
	for (i = 0; i < ntargets; i++) {
		fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
		json_str(f, targets[i].name);
		fprintf(f, ", \"value\": ");
		json_num(f, targets[i].measured ? targets[i].value : NAN);
		fprintf(f, ", \"limit\": ");
		json_num(f, targets[i].limit);
		fprintf(f, ", \"at_least\": %s, \"comparable\": %s, \"pass\": %s}",
			targets[i].at_least ? "true" : "false",
			targets[i].unlike[0] ? "false" : "true",
			!targets[i].measured || targets[i].unlike[0] ? "null" :
			target_pass(&targets[i]) ? "true" : "false");
	}
	fprintf(f, "\n  ]\n}\n");
	if (fclose(f))
		return -errno;
	return 0;
}

int write_csv(const char *path)
{
	FILE *f = fopen(path, "w");
	unsigned i, k;

	if (!f)
		return -errno;
	/* Every sample; within a series in ascending order (i is the rank). */
	fprintf(f, "section,call,method,stage,i,ns\n");
	for (i = 0; i < nall; i++) {
		struct series *s = all[i];

		series_pct(s, 0);	/* sorts */
		for (k = 0; k < s->n; k++)
			fprintf(f, "%s,%s,%s,%s,%u,%llu\n", s->section,
				s->call, s->method, s->stage, k,
				(unsigned long long)s->v[k]);
	}
	if (fclose(f))
		return -errno;
	return 0;
}
