/* SPDX-License-Identifier: MIT */
/*
 * check-fault: the library when resources run out.
 *
 * 1. max_workers: with max_workers = 2 and two bodies blocked, a third
 *    intr_spawn and a run_interruptible return -EAGAIN; cancelling the two
 *    frees their workers and calls go through again.
 * 2. RLIMIT_NPROC: with the soft limit at 0 no thread can be created (root
 *    is exempt from the limit, so a root test first becomes "nobody"):
 *    starting the service threads, and a call that needs a new worker,
 *    return -EAGAIN; with the limit back, the same calls succeed.
 * 3. The fault sweep (a library built with --enable-fault-injection only;
 *    see lib/fault.c).  A workload reaches every allocation, thread
 *    creation, fd creation and signal send site of lib/: tokens, values,
 *    context elements, finalizers, nested calls, a deadline, a body blocked
 *    in intr_read and cancelled (with intr_on_cancel and intr_task_fd), a
 *    condition wait cancelled, the handle registry growing, concurrent
 *    calls.  A first run only counts the events of each kind.  Then, for
 *    every kind and every n up to that count, a fresh process makes the
 *    nth event fail (and, in a second pass, every event from the nth on)
 *    and runs the workload: every public call must succeed or return one
 *    of its documented errors, errno untouched, no hang, no crash; the
 *    cancels must still arrive.  The same process then runs the workload
 *    again with nothing failing, and it must succeed entirely.  At the end
 *    no fd may be left but the service timer, no thread but the two
 *    service threads once the workers have idled out, and every context
 *    value captured must have been released; memory leaks are left to
 *    LeakSanitizer (make check-fault builds with ASan, and a leak fails
 *    the process).  Signal sends fail as the kernel makes them fail when
 *    the queue of signal details is full, for a classic interrupt signal
 *    (details lost, the signal still delivered) and a real-time one
 *    (refused; the re-send delivers it).  Last, each site's first event
 *    fails in a run of its own, which must reach it: every site fails at
 *    least once whatever the order of events between threads.  The
 *    failing event can only cause its own errors: an allocation -ENOMEM,
 *    a thread -EAGAIN, the service's timer -EAGAIN, intr_task_fd's eventfd
 *    -EMFILE, a signal send nothing at all.
 *
 * Each scenario runs in a child process (this program again, exec'd) that
 * is killed if it outlives its bound.  Output: TAP (tests/tap.h), one line
 * per scenario and per fault sweep run.
 */
#include "config.h"

#include "clock.h"
#include "tap.h"
#include "wait.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <interruptible.h>
#ifdef HAVE_LIBURING
#include <interruptible/uring.h>
#include <liburing.h>
#endif

#ifdef INTR_FAULT_INJECTION
#include "fault.h"
#endif

#define CHILD_BOUND_MS 30000	/* one child process, ASan included */
#define WAIT_MS 10000		/* one wait inside a child */
#define ERRNO_MARK 7919
#define CHILD_LEAKED 3		/* exit status: an fd, thread or value left */
#define LSAN_LEAKED 23		/* LeakSanitizer's exit status */

#if defined(__SANITIZE_ADDRESS__)
#define LEAK_CHECKER "LeakSanitizer"
#else
#define LEAK_CHECKER "not checked, build with ASan: make check-fault"
#endif

static const char *self;

/* ------------------------------------------------------------ helpers */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000L,
	};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* --------------------------------------------------- child failures */

static atomic_int bad;		/* failures seen in this child */
static int leaks;		/* of them, resources left over */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "FAIL: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	atomic_fetch_add(&bad, 1);
}

/* Call a public function with errno set to a mark, and check that it comes
 * back unchanged. */
#define CALL(expr) ({							\
	long r_;							\
	errno = ERRNO_MARK;						\
	r_ = (long)(expr);						\
	if (errno != ERRNO_MARK)					\
		fail("%s:%d: errno changed to %d by %s", __FILE__,	\
		     __LINE__, errno, #expr);				\
	r_;								\
})

/* Errors a call may return when a resource fails. */
#define E_NOMEM (1u << 0)
#define E_AGAIN (1u << 1)
#define E_FILE (1u << 2)		/* EMFILE, ENFILE */

/* The errors the failing kind of event can cause: none, in a run where
 * nothing fails. */
static unsigned possible;
static atomic_int refused;	/* calls that returned an allowed error */

/* True if r is want; an error allowed for this call, and possible for the
 * faults of this run, is counted and returns false; anything else fails
 * the child. */
static bool expect(const char *what, long r, long want, unsigned allowed)
{
	allowed &= possible;
	if (r == want)
		return true;
	if ((((allowed & E_NOMEM) && r == -ENOMEM) ||
			((allowed & E_AGAIN) && r == -EAGAIN) ||
			((allowed & E_FILE) && (r == -EMFILE || r == -ENFILE)))) {
		atomic_fetch_add(&refused, 1);
		return false;
	}
	fail("%s: %ld (%s), want %ld", what, r, r < 0 ? strerror((int)-r) :
	     "-", want);
	return false;
}

static int count_dir(const char *path)
{
	struct dirent *d;
	DIR *dir = opendir(path);
	int n = 0;

	if (!dir)
		return -1;
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - (strcmp(path, "/proc/self/fd") ? 0 : 1);	/* the DIR */
}

/* Threads of this process, once they settle at want (or after ms). */
static int threads_settle(int want, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;
	int n;

	while ((n = count_dir("/proc/self/task")) != want && h_now_ns() < end)
		sleep_ms(10);
	return n;
}

/* Only fds opened since the start remain: the service's timer. */
static void check_fds(int before)
{
	int after = count_dir("/proc/self/fd");

	if (after != before + 1) {
		fail("%d fds open after the workload, %d before (+1 timer)",
		     after, before);
		leaks++;
	}
}

static void *no_op(void *arg)
{
	return arg;
}

/* Threads of the process before the library runs anything: the main
 * thread, and any thread a runtime keeps for itself (ThreadSanitizer
 * starts one, at the latest with the first thread created). */
static int base_threads(void)
{
	static int base;
	pthread_t th;

	if (!base) {
		if (pthread_create(&th, NULL, no_op, NULL) == 0)
			pthread_join(th, NULL);
		base = threads_settle(1, 100);
	}
	return base;
}

/* Only the base threads and the two service threads remain once idle. */
static void check_threads(void)
{
	int want = base_threads() + 2;
	int n = threads_settle(want, WAIT_MS);

	if (n != want) {
		fail("%d threads once idle, want %d (%d before, 2 service)",
		     n, want, want - 2);
		leaks++;
	}
}

/* ------------------------------------------------------------ children */

static void configure(int signo, unsigned max_workers)
{
	struct intr_config cfg;

	intr_config_default(&cfg);
	cfg.signo = signo;
	cfg.max_workers = max_workers;
	cfg.idle_ms = 30;	/* workers leave soon: the thread count settles */
	cfg.resend_us = 2000;
	if (intr_configure(&cfg))
		fail("intr_configure");
}

/* A body blocked reading a pipe until cancelled; it says which thread it
 * runs on, so that the test can wait until it sleeps in the read. */
struct pipe_reader {
	int *fds;
	atomic_int tid;
};

static void *blocked_on_pipe(intr_ctx *ctx, void *arg)
{
	struct pipe_reader *pr = arg;
	char c;

	atomic_store(&pr->tid, (int)syscall(SYS_gettid));
	return (void *)CALL(intr_read(ctx, pr->fds[0], &c, 1));
}

/* Wait, bounded, until the body of pr has started and sleeps in its read. */
static bool reader_blocked(struct pipe_reader *pr)
{
	uint64_t end = h_now_ns() + (uint64_t)WAIT_MS * 1000000u;

	while (!atomic_load(&pr->tid)) {
		if (h_now_ns() > end)
			return false;
		sleep_ms(1);
	}
	return h_wait_blocked(atomic_load(&pr->tid), SYS_read, WAIT_MS);
}

static void *nothing(intr_ctx *ctx, void *arg)
{
	return arg;
}

/* max_workers = 2: the third concurrent call is refused, then not.  The
 * two bodies are cancelled once they block, so each must return the
 * cancel from its read (a body cancelled before it started would be
 * skipped, and that is not what this tests). */
static int child_max_workers(void)
{
	intr_task *t[2];
	struct pipe_reader pr[2];
	int fds[2], i;
	void *res;
	intr_token *tok;
	intr_task *x;
	int fds_before = count_dir("/proc/self/fd");

	configure(SIGUSR1, 2);
	if (pipe2(fds, O_CLOEXEC) || intr_token_new(&tok, NULL))
		return 1;
	for (i = 0; i < 2; i++) {
		pr[i].fds = fds;
		atomic_init(&pr[i].tid, 0);
		expect("intr_spawn under the limit",
		       CALL(intr_spawn(&t[i], tok, blocked_on_pipe, &pr[i])),
		       0, 0);
	}
	for (i = 0; i < 2; i++)
		if (!reader_blocked(&pr[i]))
			fail("body %d never blocked in its read", i);
	expect("intr_spawn over max_workers",
	       CALL(intr_spawn(&x, NULL, nothing, NULL)), -EAGAIN, 0);
	expect("run_interruptible over max_workers",
	       CALL(run_interruptible(NULL, nothing, NULL, NULL)), -EAGAIN, 0);
	expect("intr_token_cancel", CALL(intr_token_cancel(tok)), 0, 0);
	for (i = 0; i < 2; i++) {
		expect("intr_join", CALL(intr_join(t[i], &res)), -ECANCELED, 0);
		if (res != (void *)(long)-ECANCELED)
			fail("blocked body: %p", res);
	}
	res = NULL;
	expect("run_interruptible after", CALL(run_interruptible(NULL, nothing,
								 &i, &res)),
	       0, 0);
	if (res != &i)
		fail("run_interruptible after: %p", res);
	expect("intr_token_free", CALL(intr_token_free(tok)), 0, 0);
	close(fds[0]);
	close(fds[1]);
	check_fds(fds_before);
	check_threads();
	return atomic_load(&bad) ? 1 : 0;
}

static void nproc_limit(rlim_t n)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NPROC, &rl);
	rl.rlim_cur = n < rl.rlim_max ? n : rl.rlim_max;
	if (setrlimit(RLIMIT_NPROC, &rl))
		fail("setrlimit RLIMIT_NPROC: %s", strerror(errno));
}

/* RLIMIT_NPROC at 0: no thread can be created; then the limit is back. */
static int child_nproc(void)
{
	struct rlimit rl;
	intr_token *tok;
	int fds[2];
	struct pipe_reader pr = { .fds = fds };
	intr_task *t, *x;

	/* Root is never held to RLIMIT_NPROC: become nobody first. */
	if (getuid() == 0 && setresuid(65534, 65534, 65534)) {
		printf("SKIP: cannot leave root: %s\n", strerror(errno));
		return 77;
	}
	/* Changing uid made the process undumpable, which LeakSanitizer,
	 * when the test is built with it, needs to be. */
	prctl(PR_SET_DUMPABLE, 1);
	getrlimit(RLIMIT_NPROC, &rl);
	configure(SIGUSR1, 0);
	if (pipe2(fds, O_CLOEXEC))
		return 1;

	nproc_limit(0);
	expect("intr_token_new, no thread possible",
	       CALL(intr_token_new(&tok, NULL)), -EAGAIN, 0);
	nproc_limit(rl.rlim_cur);
	if (!expect("intr_token_new", CALL(intr_token_new(&tok, NULL)), 0, 0))
		return 1;

	/* The service runs; a worker is busy; no second one can be had. */
	expect("intr_spawn", CALL(intr_spawn(&t, tok, blocked_on_pipe, &pr)),
	       0, 0);
	nproc_limit(0);
	expect("intr_spawn, no thread possible",
	       CALL(intr_spawn(&x, NULL, nothing, NULL)), -EAGAIN, 0);
	expect("run_interruptible, no thread possible",
	       CALL(run_interruptible(NULL, nothing, NULL, NULL)), -EAGAIN, 0);
	/* Cancelling still works, and the freed worker is reused. */
	expect("intr_token_cancel", CALL(intr_token_cancel(tok)), 0, 0);
	expect("intr_join", CALL(intr_join(t, NULL)), -ECANCELED, 0);
	expect("run_interruptible on the idle worker",
	       CALL(run_interruptible(NULL, nothing, NULL, NULL)), 0, 0);
	nproc_limit(rl.rlim_cur);
	expect("intr_spawn", CALL(intr_spawn(&t, NULL, blocked_on_pipe, &pr)),
	       0, 0);
	expect("run_interruptible with the limit back",
	       CALL(run_interruptible(NULL, nothing, NULL, NULL)), 0, 0);
	expect("intr_task_cancel", CALL(intr_task_cancel(t)), 0, 0);
	expect("intr_join", CALL(intr_join(t, NULL)), -ECANCELED, 0);
	expect("intr_token_free", CALL(intr_token_free(tok)), 0, 0);
	check_threads();
	return atomic_load(&bad) ? 1 : 0;
}

#ifdef INTR_FAULT_INJECTION
/* Wait until *v == want, at most ms. */
static bool wait_for(atomic_int *v, int want, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;

	while (atomic_load(v) != want) {
		if (h_now_ns() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* Wait until *v != 0, at most ms. */
static bool wait_nonzero(atomic_int *v, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;

	while (!atomic_load(v)) {
		if (h_now_ns() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* ------------------------------------------------------------ workload */

static const int value_key = 1;
static int value;
static atomic_int captured, released;

static void *ctx_capture(void *data)
{
	atomic_fetch_add(&captured, 1);
	return data;
}

static void *ctx_install(void *captured_value, void *data)
{
	return NULL;
}

static void ctx_restore(void *saved, void *data)
{
}

static void ctx_release(void *captured_value, void *data)
{
	atomic_fetch_add(&released, 1);
}

struct body {
	atomic_int defers_ok;	/* intr_defer calls that succeeded */
	atomic_int fins;	/* finalizers run */
	bool has_value;		/* the token value is set: the body sees it */
	bool nest;		/* run a nested call */
	int nested_ret;
	struct body *inner;
};

static void finalizer(void *arg)
{
	struct body *b = arg;

	atomic_fetch_add(&b->fins, 1);
}

static void *body_main(intr_ctx *ctx, void *arg)
{
	struct body *b = arg;
	int i;

	for (i = 0; i < 2; i++)
		if (expect("intr_defer", CALL(intr_defer(ctx, finalizer, b)),
			   0, E_NOMEM))
			atomic_fetch_add(&b->defers_ok, 1);
	if (b->has_value &&
	    (void *)CALL(intr_ctx_value(ctx, &value_key)) != &value)
		fail("intr_ctx_value: the root's value not seen");
	if (b->nest) {
		b->nested_ret = (int)CALL(run_interruptible(
			intr_ctx_token(ctx), body_main, b->inner, NULL));
		expect("nested run_interruptible", b->nested_ret, 0,
		       E_NOMEM | E_AGAIN);
	}
	return b;
}

/* Finalizers ran exactly once for each intr_defer that succeeded. */
static void check_fins(const char *what, struct body *b)
{
	if (atomic_load(&b->fins) != atomic_load(&b->defers_ok))
		fail("%s: %d finalizers ran for %d deferred", what,
		     atomic_load(&b->fins), atomic_load(&b->defers_ok));
}

static void *sleeper(intr_ctx *ctx, void *arg)
{
	int *ret = arg;

	*ret = (int)CALL(intr_sleep(ctx, 30ull * 1000000000u));
	return NULL;
}

struct blocker {
	int fds[2];
	atomic_int started;	/* the body's thread id, once it runs */
	int on_cancel;		/* what intr_on_cancel returned */
	atomic_int woken;	/* the wake-up action ran */
	long read_ret;
};

static void wake_action(void *arg)
{
	struct blocker *bk = arg;

	atomic_fetch_add(&bk->woken, 1);
}

static void *blocked_reader(intr_ctx *ctx, void *arg)
{
	struct blocker *bk = arg;
	char c;

	bk->on_cancel = (int)CALL(intr_on_cancel(ctx, wake_action, bk));
	expect("intr_on_cancel", bk->on_cancel, 0, E_NOMEM);
	atomic_store(&bk->started, (int)syscall(SYS_gettid));
	bk->read_ret = CALL(intr_read(ctx, bk->fds[0], &c, 1));
	return NULL;
}

struct waiter {
	pthread_mutex_t m;
	pthread_cond_t c;
	atomic_int started;
	int ret;
};

#ifdef HAVE_LIBURING
struct ring_waiter {
	atomic_int started;	/* the body's thread id, once it waits */
	int ret;
};

static void *ring_waiter(intr_ctx *ctx, void *arg)
{
	struct ring_waiter *rw = arg;
	struct io_uring_cqe *cqe;
	struct io_uring ring;

	bool ring_ok = !io_uring_queue_init(2, &ring, 0);

	atomic_store(&rw->started, (int)syscall(SYS_gettid));
	if (!ring_ok) {
		/* No io_uring here (a kernel without it, a filter denying
		 * it): the cancel ends a sleep instead. */
		rw->ret = CALL(intr_sleep(ctx, 30ull * 1000000000u));
		return NULL;
	}
	rw->ret = CALL(intr_uring_wait_cqe(ctx, &ring, &cqe));
	io_uring_queue_exit(&ring);
	return NULL;
}

/* A body in an io_uring wait, cancelled: its wake eventfd, or the
 * signal when there is none. */
static void ring_wait(intr_token *parent)
{
	struct ring_waiter rw = { 0 };
	intr_task *t;
	int tid;

	if (!expect("intr_spawn ring", CALL(intr_spawn(&t, parent, ring_waiter,
						       &rw)),
		    0, E_NOMEM | E_AGAIN))
		return;
	if (!wait_nonzero(&rw.started, WAIT_MS))
		fail("the ring waiter did not start");
	tid = atomic_load(&rw.started);
	if (!h_wait_blocked(tid, -1, WAIT_MS))
		fail("the ring waiter did not block");
	expect("intr_task_cancel ring", CALL(intr_task_cancel(t)), 0, 0);
	expect("intr_join ring", CALL(intr_join(t, NULL)), -ECANCELED, 0);
	if (rw.ret != -ECANCELED)
		fail("intr_uring_wait_cqe cancelled: %d", rw.ret);
}
#endif

static void *cond_waiter(intr_ctx *ctx, void *arg)
{
	struct waiter *w = arg;
	int r;

	pthread_mutex_lock(&w->m);
	atomic_store(&w->started, 1);
	do
		r = intr_cond_wait(ctx, &w->c, &w->m);
	while (r == 0);
	pthread_mutex_unlock(&w->m);
	w->ret = r;
	return NULL;
}

/* Name resolution: a numeric host (its entries and canonical name) and a
 * name whose server refuses (the file INTR_RESOLV_CONF names).  An EAI_*
 * code is folded into the errno a resource fault stands for. */
static bool have_resolver = true;

struct lookup {
	const char *node;
	int r;
};

static void *lookup_body(intr_ctx *ctx, void *arg)
{
	struct lookup *l = arg;
	struct addrinfo h = { .ai_flags = AI_CANONNAME,
			      .ai_socktype = SOCK_STREAM }, *res = NULL;

	l->r = (int)CALL(intr_getaddrinfo(ctx, l->node, "80", &h, &res));
	CALL((intr_freeaddrinfo(res), 0));
	return NULL;
}

static long eai_errno(int r)
{
	return r == EAI_MEMORY ? -ENOMEM : r == EAI_AGAIN ? -EAGAIN : r;
}

static void lookups(intr_token *tok)
{
	struct lookup l = { .node = "127.0.0.1" };
	int r;

	r = (int)CALL(run_interruptible(tok, lookup_body, &l, NULL));
	if (!expect("run_interruptible lookup", r, 0, E_NOMEM | E_AGAIN))
		return;
	if (l.r == -ENOSYS) {
		have_resolver = false;	/* built without c-ares */
		return;
	}
	expect("intr_getaddrinfo numeric", eai_errno(l.r), 0, E_NOMEM);
	l = (struct lookup){ .node = "fault.invalid" };
	r = (int)CALL(run_interruptible(tok, lookup_body, &l, NULL));
	if (expect("run_interruptible lookup refused", r, 0,
		   E_NOMEM | E_AGAIN))
		expect("intr_getaddrinfo refused", eai_errno(l.r), -EAGAIN,
		       E_NOMEM | E_FILE);
}

/* A resolver file whose server is a UDP port nobody listens on. */
static char resolv_conf[64];

static void resolver_file(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	FILE *f;
	int fd;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &len))
		fail("a UDP port for the resolver: %s", strerror(errno));
	if (fd >= 0)
		close(fd);	/* closed: queries to it are refused */
	snprintf(resolv_conf, sizeof(resolv_conf), "/tmp/intr-fault-%d.conf",
		 (int)getpid());
	f = fopen(resolv_conf, "w");
	if (!f) {
		fail("%s: %s", resolv_conf, strerror(errno));
		return;
	}
	fprintf(f, "nameserver 127.0.0.1:%d\noptions timeout:1 attempts:1\n",
		ntohs(a.sin_port));
	fclose(f);
	setenv("INTR_RESOLV_CONF", resolv_conf, 1);
}

static void *short_body(intr_ctx *ctx, void *arg)
{
	sleep_ms(5);		/* long enough to need several workers */
	return arg;
}

#define NTOKENS 40
#define NCONCURRENT 3

static void free_token(const char *what, intr_token *t)
{
	if (t)
		expect(what, CALL(intr_token_free(t)), 0, 0);
}

static void workload(int round)
{
	static struct intr_context_element el = {
		.capture = ctx_capture, .install = ctx_install,
		.restore = ctx_restore, .release = ctx_release,
	};
	intr_token *root = NULL, *child = NULL, *dl = NULL, *tc = NULL;
	intr_token *many[NTOKENS] = { NULL };
	struct body outer = { 0 }, inner = { 0 };
	intr_task *tasks[NCONCURRENT] = { NULL };
	struct waiter w = { .m = PTHREAD_MUTEX_INITIALIZER,
			    .c = PTHREAD_COND_INITIALIZER };
	struct blocker bk = { .fds = { -1, -1 } };
	bool value_set = false;
	void *res;
	int i, fd, r, slept = 1;
	intr_task *t;

	/* A context element, a root token with a value, a child token. */
	el.data = (void *)(intptr_t)(round + 1);	/* passed through */
	expect("intr_context_add", CALL(intr_context_add(&el)), 0, E_NOMEM);
	if (!expect("intr_token_new root", CALL(intr_token_new(&root, NULL)),
		    0, E_NOMEM | E_AGAIN))
		root = NULL;
	if (root)
		value_set = expect("intr_token_set_value",
				   CALL(intr_token_set_value(root, &value_key,
							     &value)),
				   0, E_NOMEM);
	if (!expect("intr_token_new child", CALL(intr_token_new(&child, root)),
		    0, E_NOMEM | E_AGAIN))
		child = NULL;

	/* A call with finalizers, the value, and a nested call. */
	outer.has_value = inner.has_value = value_set && child;
	outer.nest = true;
	outer.inner = &inner;
	res = NULL;
	r = (int)CALL(run_interruptible(child, body_main, &outer, &res));
	if (expect("run_interruptible", r, 0, E_NOMEM | E_AGAIN)) {
		if (res != &outer)
			fail("run_interruptible: result %p", res);
		check_fins("outer", &outer);
		check_fins("inner", &inner);
	}

	/* A deadline cancels a body asleep. */
	if (expect("intr_token_new deadline", CALL(intr_token_new(&dl, child)),
		   0, E_NOMEM | E_AGAIN) &&
	    expect("intr_token_cancel_after",
		   CALL(intr_token_cancel_after(dl, 10000000)), 0,
		   E_NOMEM | E_AGAIN)) {
		r = (int)CALL(run_interruptible(dl, sleeper, &slept, NULL));
		/* The body may not have started before the deadline. */
		if (expect("run_interruptible deadline", r, -ETIMEDOUT,
			   E_NOMEM | E_AGAIN) && slept != 1 &&
		    slept != -ETIMEDOUT)
			fail("intr_sleep under a deadline: %d", slept);
	}

	/* A body blocked in intr_read, cancelled: the signal, the wake-up
	 * action, the task's fd. */
	if (pipe2(bk.fds, O_CLOEXEC))
		fail("pipe2: %s", strerror(errno));
	r = (int)CALL(intr_spawn(&t, child, blocked_reader, &bk));
	if (expect("intr_spawn blocked", r, 0, E_NOMEM | E_AGAIN)) {
		fd = (int)CALL(intr_task_fd(t));
		expect("intr_task_fd", fd >= 0 ? 0 : fd, 0, E_NOMEM | E_FILE);
		if (!wait_nonzero(&bk.started, WAIT_MS) ||
		    !h_wait_blocked(atomic_load(&bk.started), SYS_read,
				    WAIT_MS))
			fail("the blocked body did not block in its read");
		expect("intr_task_cancel", CALL(intr_task_cancel(t)), 0, 0);
		if (fd >= 0) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			if (poll(&p, 1, WAIT_MS) != 1)
				fail("the task's fd is not readable");
		}
		expect("intr_join blocked", CALL(intr_join(t, NULL)),
		       -ECANCELED, 0);
		if (bk.read_ret != -ECANCELED)
			fail("intr_read cancelled: %ld", bk.read_ret);
		if (atomic_load(&bk.woken) != (bk.on_cancel == 0))
			fail("wake-up action ran %d times, registered: %d",
			     atomic_load(&bk.woken), bk.on_cancel == 0);
	}
	close(bk.fds[0]);
	close(bk.fds[1]);
#ifdef HAVE_LIBURING
	if (child)
		ring_wait(child);
#endif

	/* A condition wait cancelled through a token. */
	if (expect("intr_token_new cond", CALL(intr_token_new(&tc, root)), 0,
		   E_NOMEM | E_AGAIN)) {
		r = (int)CALL(intr_spawn(&t, tc, cond_waiter, &w));
		if (expect("intr_spawn cond", r, 0, E_NOMEM | E_AGAIN)) {
			if (!wait_for(&w.started, 1, WAIT_MS))
				fail("the condition waiter did not start");
			expect("intr_token_cancel", CALL(intr_token_cancel(tc)),
			       0, 0);
			expect("intr_join cond", CALL(intr_join(t, NULL)),
			       -ECANCELED, 0);
			if (w.ret != -ECANCELED)
				fail("intr_cond_wait cancelled: %d", w.ret);
		}
	}

	/* Enough tokens at once for the handle registry to grow. */
	for (i = 0; i < NTOKENS; i++)
		if (!expect("intr_token_new many",
			    CALL(intr_token_new(&many[i], root)), 0,
			    E_NOMEM | E_AGAIN))
			many[i] = NULL;
	for (i = 0; i < NTOKENS; i++)
		free_token("intr_token_free many", many[i]);

	lookups(root);

	/* Concurrent calls: several workers. */
	for (i = 0; i < NCONCURRENT; i++)
		if (!expect("intr_spawn concurrent",
			    CALL(intr_spawn(&tasks[i], root, short_body,
					    &tasks[i])),
			    0, E_NOMEM | E_AGAIN))
			tasks[i] = NULL;
	for (i = 0; i < NCONCURRENT; i++) {
		if (!tasks[i])
			continue;
		res = NULL;
		expect("intr_join concurrent", CALL(intr_join(tasks[i], &res)),
		       0, 0);
		if (res != &tasks[i])
			fail("concurrent call: result %p", res);
	}

	free_token("intr_token_free cond", tc);
	free_token("intr_token_free deadline", dl);
	free_token("intr_token_free child", child);
	free_token("intr_token_free root", root);
}

static void check_context(void)
{
	if (atomic_load(&captured) != atomic_load(&released)) {
		fail("context: %d values captured, %d released",
		     atomic_load(&captured), atomic_load(&released));
		leaks++;
	}
}

/* The workload with the nth event of kind failing (nth 0: counting only;
 * mode "once", "sticky": that event and all after it, or "site": kind is a
 * site, its nth event fails), then again with nothing failing.  Prints,
 * for the parent, one line per site: "site S EVENTS INJECTED" (of the
 * first run). */
static int child_fault(int signo, int kind, unsigned long nth,
		       const char *mode)
{
	int fds_before = count_dir("/proc/self/fd");
	int s;

	static const unsigned errors[INTR_FAULT_KINDS] = {
		[INTR_FAULT_ALLOC] = E_NOMEM,
		[INTR_FAULT_THREAD] = E_AGAIN,
		[INTR_FAULT_FD] = E_AGAIN | E_FILE,	/* timerfd, eventfd */
		[INTR_FAULT_SIGNAL] = 0,		/* nothing may fail */
	};

	configure(signo, 0);
	resolver_file();
	if (!strcmp(mode, "site")) {
		possible = errors[intr__fault_kind_of((enum intr__site)kind)];
		intr__fault_arm_site((enum intr__site)kind, nth);
	} else {
		possible = nth ? errors[kind] : 0;
		intr__fault_arm((enum intr__fault_kind)kind, nth,
				!strcmp(mode, "sticky"));
	}
	workload(0);
	intr__fault_disarm();
	for (s = 0; s < INTR_SITES; s++)
		printf("site %d %lu %lu\n", s,
		       intr__fault_events((enum intr__site)s),
		       intr__fault_injected((enum intr__site)s));
	printf("refused %d\n", atomic_load(&refused));
	if (!have_resolver)
		printf("resolver none\n");
	fflush(stdout);

	possible = 0;
	workload(1);
	unlink(resolv_conf);
	check_fds(fds_before);
	check_threads();
	check_context();
	return leaks ? CHILD_LEAKED : atomic_load(&bad) ? 1 : 0;
}
static int parse_signal(const char *s)
{
	if (!strcmp(s, "SIGUSR1"))
		return SIGUSR1;
	return SIGRTMIN + 2;
}

#endif

/* ------------------------------------------------------------ parent */

/* Run this program with args in a child bounded in time; its stdout goes
 * to out (if not NULL, up to size bytes).  Returns its exit status, or -1
 * if it was killed or died of a signal. */
static int run_child(char *const args[], char *out, size_t size)
{
	uint64_t end = h_now_ns() + (uint64_t)CHILD_BOUND_MS * 1000000u;
	size_t len = 0;
	int p[2], st;
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		dup2(p[1], 1);
		execv(self, args);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		int left = (int)((int64_t)(end - h_now_ns()) / 1000000);

		if (left <= 0) {
			fprintf(stderr, "FAIL: %s %s: killed after %d ms\n",
				args[1], args[2] ? args[2] : "",
				CHILD_BOUND_MS);
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&pf, 1, left) <= 0)
			continue;
		if (out && len + 1 < size)
			n = read(p[0], out + len, size - len - 1);
		else {
			char sink[256];

			n = read(p[0], sink, sizeof(sink));
		}
		if (n <= 0)
			break;
		if (out && len + 1 < size)
			len += (size_t)n;
	}
	if (out)
		out[len] = 0;
	close(p[0]);
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	if (WIFSIGNALED(st)) {
		fprintf(stderr, "FAIL: %s: died of signal %d\n", args[1],
			WTERMSIG(st));
		return -1;
	}
	return WEXITSTATUS(st);
}

#ifdef INTR_FAULT_INJECTION
struct sweep {
	unsigned long events[INTR_SITES];	/* in the counting run */
	unsigned long injected[INTR_SITES];	/* over the whole sweep */
	unsigned long kind_events[INTR_FAULT_KINDS];
	unsigned long faults, runs, leaky, refused;
};

/* Parse the "site" lines of a child; false if some are missing. */
static bool parse_sites(const char *out, unsigned long events[],
			unsigned long injected[])
{
	const char *p = out;
	int s, seen = 0;
	unsigned long e, i;

	while ((p = strstr(p, "site "))) {
		if (sscanf(p, "site %d %lu %lu", &s, &e, &i) == 3 &&
		    s >= 0 && s < INTR_SITES) {
			events[s] = e;
			injected[s] = i;
			seen++;
		}
		p += 5;
	}
	return seen == INTR_SITES;
}

/* One child (see child_fault): kind is a site in mode "site". */
static void run_fault(struct sweep *sw, const char *sig, int kind,
		      unsigned long nth, const char *mode)
{
	char k[16], n[32], out[4096];
	char *args[] = { "check-fault", "fault", (char *)sig, k, n,
			 (char *)mode, NULL };
	unsigned long ev[INTR_SITES] = { 0 }, inj[INTR_SITES] = { 0 };
	unsigned long got = 0;
	const char *p;
	int st, s;

	snprintf(k, sizeof(k), "%d", kind);
	snprintf(n, sizeof(n), "%lu", nth);
	st = run_child(args, out, sizeof(out));
	if (!parse_sites(out, ev, inj))
		st = st ? st : 1;
	if ((p = strstr(out, "refused ")))
		sw->refused += strtoul(p + 8, NULL, 10);
	for (s = 0; s < INTR_SITES; s++) {
		sw->injected[s] += inj[s];
		got += inj[s];
	}
	sw->faults += got;
	sw->runs++;
	if (st == CHILD_LEAKED || st == LSAN_LEAKED)
		sw->leaky++;
	/* A site's own run must reach it. */
	if (!strcmp(mode, "site") && !got && !st)
		st = 1;
	tap_ok(st == 0, "%s %s %s, event %lu (%s): %lu injected", sig,
	       strcmp(mode, "site") ? "kind" : "site",
	       strcmp(mode, "site") ?
	       intr__fault_kind_name((enum intr__fault_kind)kind) :
	       intr__fault_site_name((enum intr__site)kind),
	       nth, mode, got);
}

static bool no_resolver;

static bool no_ring;

/* A site of resolve.c, in a build where nothing reaches it; the wake
 * eventfd, where no io_uring wait can be made (no liburing, no io_uring
 * in the kernel or a filter denying it). */
static bool unreached_site(int s)
{
	if (s == INTR_SITE_WAKE_FD)
		return no_ring;
	return no_resolver &&
	       !strncmp(intr__fault_site_name((enum intr__site)s),
			"resolve.c", 9);
}

static void sweep(void)
{
	static const char *const sigs[] = { "SIGUSR1", "SIGRTMIN+2" };
	char out[4096];
	char *count_args[] = { "check-fault", "fault", "SIGUSR1", "0", "0",
			       "once", NULL };
	struct sweep sw = { 0 };
	unsigned long ev[INTR_SITES] = { 0 }, inj[INTR_SITES] = { 0 };
	unsigned long n, per_kind[INTR_FAULT_KINDS] = { 0 };
	unsigned nsites[INTR_FAULT_KINDS] = { 0 };
	uint64_t t0 = h_now_ns();
	int st, s, k, v, missed = 0;

	st = run_child(count_args, out, sizeof(out));
	if (st || !parse_sites(out, ev, inj)) {
		tap_ok(false, "fault sweep: the counting run failed");
		return;
	}
	/* Built without c-ares, intr_getaddrinfo reaches none of its sites. */
	no_resolver = strstr(out, "resolver none") != NULL;
	if (no_resolver)
		printf("resolve.c sites: not in this build (no c-ares)\n");
	no_ring = !ev[INTR_SITE_WAKE_FD];
	if (no_ring)
		printf("slot.c wake eventfd: not reached (no io_uring wait "
		       "here)\n");
	for (s = 0; s < INTR_SITES; s++) {
		k = intr__fault_kind_of((enum intr__site)s);
		per_kind[k] += ev[s];
		nsites[k]++;
		sw.events[s] = ev[s];
	}
	tap_diag("counting run: %lu allocations, %lu thread creations, "
		 "%lu fd creations, %lu signal sends",
	       per_kind[INTR_FAULT_ALLOC], per_kind[INTR_FAULT_THREAD],
	       per_kind[INTR_FAULT_FD], per_kind[INTR_FAULT_SIGNAL]);

	for (k = 0; k < INTR_FAULT_KINDS; k++) {
		for (v = 0; v < 2; v++) {
			/* The signal's kind matters only for the send. */
			if (v && k != INTR_FAULT_SIGNAL)
				continue;
			for (n = 1; n <= per_kind[k]; n++)
				run_fault(&sw, sigs[v], k, n, "once");
			/* Every event from the nth on; a real-time signal
			 * refused for good would never arrive. */
			if (v)
				continue;
			for (n = 1; n <= per_kind[k]; n++)
				run_fault(&sw, sigs[v], k, n, "sticky");
		}
	}
	/* Each site's first event, whatever the order of events of its kind
	 * (threads make it vary a little from run to run). */
	for (s = 0; s < INTR_SITES; s++)
		if (!unreached_site(s))
			run_fault(&sw, sigs[0], s, 1, "site");

	tap_diag("%-30s %-16s %8s %9s", "site", "kind", "reached",
		 "injected");
	for (s = 0; s < INTR_SITES; s++) {
		k = intr__fault_kind_of((enum intr__site)s);
		tap_diag("%-30s %-16s %8lu %9lu",
		       intr__fault_site_name((enum intr__site)s),
		       intr__fault_kind_name((enum intr__fault_kind)k),
		       sw.events[s], sw.injected[s]);
		if (!sw.injected[s] && !unreached_site(s))
			missed++;
	}
	tap_ok(!missed, "fault sweep: %u allocation sites, %u thread-creation "
	       "sites, %u fd-creation sites, %u signal-send sites, %s; "
	       "%lu injected faults in %lu runs, %lu public calls refused "
	       "with a documented error, %.1f s",
	       nsites[INTR_FAULT_ALLOC], nsites[INTR_FAULT_THREAD],
	       nsites[INTR_FAULT_FD], nsites[INTR_FAULT_SIGNAL],
	       missed ? "some never failed" : "all failed at least once",
	       sw.faults, sw.runs, sw.refused,
	       (double)(h_now_ns() - t0) / 1e9);
	tap_ok(!sw.leaky, "fault sweep: %lu runs leaked (fds, threads, "
	       "context values; memory: %s)", sw.leaky, LEAK_CHECKER);
}
#endif

int main(int argc, char **argv)
{
	char *workers_args[] = { "check-fault", "max-workers", NULL };
	char *nproc_args[] = { "check-fault", "nproc", NULL };
	int st;

	base_threads();		/* before the library starts any thread */
	if (argc > 1 && !strcmp(argv[1], "max-workers"))
		return child_max_workers();
	if (argc > 1 && !strcmp(argv[1], "nproc"))
		return child_nproc();
#ifdef INTR_FAULT_INJECTION
	if (argc == 6 && !strcmp(argv[1], "fault"))
		return child_fault(parse_signal(argv[2]), atoi(argv[3]),
				   strtoul(argv[4], NULL, 10), argv[5]);
#endif
	self = "/proc/self/exe";
	{
		static char path[4096];
		ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

		if (n > 0) {
			path[n] = 0;
			self = path;
		}
	}

	st = run_child(workers_args, NULL, 0);
	tap_ok(st == 0, "max_workers = 2: a third call gets -EAGAIN, then "
	       "runs once the others are cancelled");
	st = run_child(nproc_args, NULL, 0);
	if (st == 77)
		tap_skip("RLIMIT_NPROC exhausted: cannot leave root here");
	else
		tap_ok(st == 0, "RLIMIT_NPROC exhausted: -EAGAIN, then the "
		       "library works again");
#ifdef INTR_FAULT_INJECTION
	sweep();
#else
	tap_skip("fault sweep: not built (configure --enable-fault-injection; "
		 "make check-fault)");
#endif
	return tap_done();
}
