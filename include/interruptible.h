/* SPDX-License-Identifier: MIT */
/*
 * libinterruptible: make any blocking call stoppable.
 *
 * run_interruptible() runs a body on a dedicated worker thread.  Cancelling
 * the call's token sends that thread a signal (SIGUSR1 unless configured
 * otherwise) whose handler was installed without SA_RESTART, so a blocking
 * system call in the body (read, accept, nanosleep, io_uring_enter, ...)
 * returns EINTR.  The body sees the cancel with intr_cancelled(), returns,
 * and the finalizers it registered with intr_defer() run.  Nothing is killed.
 *
 * Conventions
 *   - Functions that can fail return 0 (or a non-negative count) on success
 *     and a negative errno value on failure.  None sets errno; every one
 *     leaves errno as it found it.
 *   - Detectable misuse (NULL object, freed or already joined handle, a
 *     worker-only function called elsewhere) returns -EINVAL.  Nothing
 *     aborts.
 *   - Handles (intr_token *, intr_task *, intr_ctx *) are not addresses:
 *     each is a value the library makes once and never again, so a freed
 *     token, a joined task, the ctx or own token of an ended call, or a
 *     made-up pointer is always refused (-EINVAL, false, NULL), however
 *     many handles were made since, and never names another object.
 *   - "Cancelled" means the token bound to the call was cancelled (directly,
 *     through an ancestor, by a deadline, or by intr_task_cancel) before the
 *     body returned.
 */
#ifndef INTERRUPTIBLE_H
#define INTERRUPTIBLE_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* INTR_VERSION_MAJOR, _MINOR, _PATCH and INTR_VERSION, as built. */
#include <interruptible/version.h>

/* A cancellation source.  Tokens form a tree: cancelling one cancels its
 * descendants and every call bound to any of them. */
typedef struct intr_token intr_token;
/* The body's handle on its own call.  Valid on the worker, inside the body
 * and its finalizers, until the call ends; refused after that. */
typedef struct intr_ctx intr_ctx;
/* An asynchronous call started with intr_spawn(). */
typedef struct intr_task intr_task;

/* A body: runs on a worker thread; its return value reaches the caller. */
typedef void *(*intr_fn)(intr_ctx *ctx, void *arg);
/* A finalizer registered with intr_defer(). */
typedef void (*intr_finalizer)(void *arg);

/*
 * Running a body
 * --------------
 * run_interruptible() runs fn(ctx, arg) on a worker thread taken from the
 * library's pool and waits until fn has returned and all its finalizers have
 * run.  tok may be NULL (the call cannot be cancelled then).
 *
 * Returns 0 if the call was not cancelled, -ECANCELED if it was, -ETIMEDOUT
 * if a deadline cancelled it.  In all three cases *result (if result is not
 * NULL) receives fn's return value.  If the token was cancelled before fn
 * started, fn does not run and *result is NULL.
 * Errors: -EINVAL (fn NULL, tok not a live token), -EAGAIN (no worker could
 * be had: max_workers reached, thread creation failed, or the library is
 * being unloaded; or, on the first call, the library's two service threads
 * could not be started), -ENOMEM.  A process needs room (RLIMIT_NPROC
 * counts every thread of the user) for its own threads, the two service
 * threads and one worker per call running at the same time.
 *
 * May be called from any thread, including from inside a body.  The body
 * runs under the calling thread's signal mask with the interrupt signal
 * unblocked: it receives the signals the caller would receive, and a
 * process it starts inherits the caller's mask.  Finalizers and context
 * hooks run under the same mask with the interrupt signal blocked.
 * Between calls a worker blocks every signal but the synchronous faults
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS), whatever the body
 * did to its mask.
 */
int run_interruptible(intr_token *tok, intr_fn fn, void *arg, void **result);

/*
 * Running a body in place
 * -----------------------
 * intr_run_here() runs fn(ctx, arg) on the calling thread itself, which is
 * interruptible for as long as fn runs: no worker, no thread hop.  The body
 * has everything a pooled body has (cancel by tok and its deadlines,
 * intr_cancelled(), the blocking wrappers, intr_on_cancel(), intr_defer(),
 * intr_ctx_token(), context elements) and returns as run_interruptible()
 * does: 0, -ECANCELED or -ETIMEDOUT, with fn's value in *result (NULL if a
 * token cancelled before the scope kept fn from running).  Errors: -EINVAL
 * (fn NULL, tok not a live token), -EAGAIN (the library's service threads
 * could not be started on first use, or the library is being unloaded),
 * -ENOMEM only while context elements capture.
 *
 * The body runs under the calling thread's mask with the interrupt signal
 * open, opened by the scope if the caller had it blocked.  When the scope
 * returns, every signal the library sent for it has been delivered and
 * ignored (none reaches the caller's handlers or interrupts its next
 * system call), and the mask is the one the body left, with the scope's
 * own opening undone: a caller that blocked the signal has it blocked
 * again.  Finalizers and context hooks run on the calling thread: install
 * before the body with the interrupt signal blocked, finalizers, restore
 * and release after it under the caller's mask.  errno is preserved.
 *
 * Any thread may call it, including a pooled body, a finalizer or another
 * scope's body; not a signal handler.  There is no task: cancel the scope
 * through tok, or through intr_ctx_token(ctx) handed out by its body.
 * Nested, only the innermost call's ctx works on the thread.  A scope
 * nested on intr_ctx_token() of the call it runs in is cancelled with it;
 * on an unrelated token, the outer call's cancel only interrupts the inner
 * body's system calls (the wrappers make them again), and the outer body
 * sees it once the scope has returned.
 */
int intr_run_here(intr_token *tok, intr_fn fn, void *arg, void **result);

/*
 * intr_spawn() starts the same call without waiting; intr_join() waits for
 * it, stores the result, frees the task and returns what run_interruptible()
 * would have returned.  intr_tryjoin() returns -EBUSY while the call is
 * still running and otherwise behaves as intr_join().  A task is joined
 * exactly once; a second join returns -EINVAL, as does a join while another
 * join has the task, or one from the task's own body or finalizers.
 *
 * intr_task_cancel() cancels this one call (not its token's tree).  It is
 * async-signal-safe and idempotent, and returns 0, or -EINVAL for a task
 * that was already joined.
 *
 * intr_task_fd() returns a file descriptor (owned by the task, closed by the
 * join) that becomes readable when the call is done, for use with poll,
 * epoll or io_uring.  -EMFILE/-ENFILE/-ENOMEM if none can be created.
 */
int intr_spawn(intr_task **out, intr_token *tok, intr_fn fn, void *arg);
int intr_task_cancel(intr_task *t);
int intr_join(intr_task *t, void **result);
int intr_tryjoin(intr_task *t, void **result);
int intr_task_fd(intr_task *t);

/*
 * Tokens
 * ------
 * intr_token_new() creates a token under parent (NULL for a root).  A token
 * created under a cancelled parent is born cancelled.  The first call that
 * needs them (this one, intr_spawn, intr_token_cancel_after) starts the
 * library's two service threads (deadlines and re-sends; wake-ups): those
 * calls can also fail with -EAGAIN when no thread (or the threads' timer
 * fd) can be created, or once the library has been unloaded.
 *
 * intr_token_cancel() cancels tok, its descendants and every call bound to
 * them, with reason -ECANCELED.  It may be called from any thread and from
 * a signal handler: it allocates nothing, takes no lock that an interrupted
 * thread could hold, and costs one signal per running call it reaches.
 * Cancelling an already cancelled token does nothing.  Returns 0.
 *
 * intr_token_cancel_after() arms a deadline timeout_ns from now on
 * CLOCK_MONOTONIC; when it passes the token is cancelled with reason
 * -ETIMEDOUT.  Calling it again keeps whichever deadline is earlier.
 *
 * intr_token_reason() returns 0, -ECANCELED or -ETIMEDOUT (-EINVAL for a
 * NULL or dead token).  Descendants cancelled by an ancestor's deadline
 * report -ETIMEDOUT.
 *
 * intr_token_free() returns -EBUSY while calls or child tokens are bound to
 * the token; tokens used only by finished calls can be freed.
 */
int intr_token_new(intr_token **out, intr_token *parent);
int intr_token_cancel(intr_token *tok);
int intr_token_cancel_after(intr_token *tok, uint64_t timeout_ns);
int intr_token_reason(const intr_token *tok);
int intr_token_free(intr_token *tok);

/*
 * Inside a body (worker thread only)
 * ----------------------------------
 * intr_cancelled() returns true once the call is cancelled, and by doing so
 * acknowledges the cancel: until a body acknowledges (or returns), the
 * library keeps re-sending the interrupt signal with back-off starting at
 * resend_us, so a body blocked in a call the library does not wrap is
 * reached even if the first signal landed just before that call blocked.
 * Returns false when called from any other thread or with a foreign ctx.
 *
 * intr_reason() returns 0, -ECANCELED or -ETIMEDOUT (-EINVAL off-worker).
 *
 * intr_ctx_token() returns the call's own token: a child of the token the
 * call was started with, cancelled whenever the call is.  Pass it to nested
 * calls so they are cancelled with this one.  The library frees it when the
 * call ends (the handle is refused from then on); child tokens still under
 * it then are detached and become roots.  NULL off-worker.
 *
 * intr_defer() registers fn(arg) to run after the body returns, on the
 * worker, under the submitter's mask with the interrupt signal blocked,
 * last registered first, exactly
 * once, cancelled or not, before the caller is released.  A finalizer may
 * register further finalizers; they run next.  Returns 0, -ENOMEM, or
 * -EINVAL (fn NULL, or not called on the worker running ctx).
 */
bool intr_cancelled(intr_ctx *ctx);
int intr_reason(const intr_ctx *ctx);
intr_token *intr_ctx_token(intr_ctx *ctx);
int intr_defer(intr_ctx *ctx, intr_finalizer fn, void *arg);

/*
 * intr_on_cancel() registers wake(arg): a wake-up for blocking that no
 * signal can break (a custom event loop, a NOP submitted to a ring the body
 * waits on, shutdown() of a socket).  It runs at most once, only if the call
 * is cancelled before its body returns, and always before the call returns
 * to its caller.  It runs on the library's wake-up thread, concurrently
 * with the body, never in a signal handler; if the body returns before the
 * wake-up thread got to it, it runs on the worker, after the body and before
 * the finalizers.  It should not block for long: the wake-ups of other
 * cancelled calls wait while it runs (deadlines and re-sends do not).  Returns 0; the reason (-ECANCELED,
 * -ETIMEDOUT) without registering anything if the call is already
 * cancelled; -ENOMEM; -EINVAL (wake NULL, or not on the worker).
 */
int intr_on_cancel(intr_ctx *ctx, void (*wake)(void *arg), void *arg);

/*
 * intr_on_cancel_repeat() registers wake(arg) as intr_on_cancel() does,
 * for a wake-up that the other side ignores when it arrives too early: a
 * PQcancel() or a Redis CLIENT UNBLOCK that reaches the server before it
 * started the query or the blocking command is dropped, and the body would
 * stay blocked.  The action runs when the call is cancelled, and again at
 * every re-send of the interrupt signal (resend_us, doubling up to 100 ms)
 * until the body acknowledges the cancel (intr_cancelled() returns true, a
 * wrapper returns the reason) or returns.  It runs on the wake-up thread,
 * never concurrently with itself or another wake-up, never in a signal
 * handler; if the body returns before it ever ran, it runs once on the
 * worker, after the body and before the finalizers.  It never runs for a
 * call that is not cancelled, and never after the finalizers started.
 * Each run must be harmless when the wait it ends is already over.
 * Returns as intr_on_cancel().
 */
int intr_on_cancel_repeat(intr_ctx *ctx, void (*wake)(void *arg), void *arg);

/*
 * Race-free blocking calls (worker thread, inside the body only)
 * ---------------------------------------------------------------
 * Each returns the call's own result as a non-negative value or a negative
 * errno value (never -1 with errno), or the reason (-ECANCELED or
 * -ETIMEDOUT) if the call was cancelled before the system call entered the
 * kernel or while it was blocked there.  A cancel is never lost, whatever
 * its timing: the system call is issued from a small assembly window that
 * the signal handler recognises (x86-64 and aarch64), so a signal landing
 * between the cancel check and the system call makes the call return the
 * reason instead of blocking.  On other architectures the window is plain C
 * and the re-send of the signal closes the race, after at most resend_us.
 * A result that the kernel produced (bytes read, a connection accepted) is
 * always returned, never replaced by the reason; the next call reports it.
 * EINTR caused by any other signal is retried transparently.  Returning the
 * reason acknowledges the cancel, as intr_cancelled() does.  Called outside
 * a body (from a finalizer, or any other thread) they return -EINVAL.
 *
 * intr_syscall() takes the system call number and up to six arguments and
 * returns the raw kernel result; EINTR from another signal restarts it
 * with the same arguments.  intr_poll() keeps its overall timeout across
 * restarts; intr_sleep() sleeps ns nanoseconds on CLOCK_MONOTONIC and
 * returns 0 once it slept the whole time.
 *
 * intr_cond_wait() waits on c like pthread_cond_wait() (m locked by the
 * caller) and returns 0 on a wake-up (spurious ones included), or the
 * reason if the call is cancelled before or during the wait: the canceller
 * broadcasts c under m, so no wake-up is lost.  m is held on return, in
 * every case.
 */
long intr_syscall(intr_ctx *ctx, long nr, ...);
ssize_t intr_read(intr_ctx *ctx, int fd, void *buf, size_t n);
ssize_t intr_write(intr_ctx *ctx, int fd, const void *buf, size_t n);
int intr_poll(intr_ctx *ctx, struct pollfd *fds, nfds_t nfds, int timeout_ms);
int intr_accept(intr_ctx *ctx, int fd, struct sockaddr *addr,
		socklen_t *len);
int intr_sleep(intr_ctx *ctx, uint64_t ns);
int intr_cond_wait(intr_ctx *ctx, pthread_cond_t *c, pthread_mutex_t *m);

/*
 * Name resolution (worker thread, inside the body only)
 * -----------------------------------------------------
 * intr_getaddrinfo() is getaddrinfo() for a body: the same arguments after
 * ctx, the same rules for hints, services and numeric hosts (libc's own
 * apply), and the same results, but a name is looked up through c-ares
 * with its sockets waited on in the library's window, so a cancel stops a
 * lookup whose server does not answer at once.  libc's own getaddrinfo()
 * cannot be stopped: it waits in its own poll() and retries EINTR.
 *
 * Returns 0 and a list in *res, to be freed with intr_freeaddrinfo(); an
 * EAI_* code (as getaddrinfo() returns them: EAI_NONAME, EAI_AGAIN when
 * the servers do not answer within the resolver's own timeout, ...); the
 * reason (-ECANCELED, -ETIMEDOUT) if the call was cancelled, with nothing
 * left allocated or open; -EINVAL (res NULL, or not called in a body);
 * -ENOSYS in a library built without c-ares.  *res is NULL unless 0 is
 * returned.  errno is left alone: EAI_SYSTEM is never returned.
 *
 * The configuration is /etc/resolv.conf and /etc/hosts (not NSS modules),
 * or the file named by the environment variable INTR_RESOLV_CONF (ignored
 * in set-user-ID programs), whose nameserver lines may give a port:
 * "nameserver 127.0.0.1:5353", "nameserver [::1]:5353".
 *
 * intr_freeaddrinfo() frees a list intr_getaddrinfo() returned (NULL is
 * fine); it may be called from any thread.
 */
struct addrinfo;
int intr_getaddrinfo(intr_ctx *ctx, const char *node, const char *service,
		     const struct addrinfo *hints, struct addrinfo **res);
void intr_freeaddrinfo(struct addrinfo *res);

/*
 * Context propagation
 * -------------------
 * A body runs on a worker thread, where the caller's thread-local state (a
 * trace id, a log context, an allocator arena) is not.  A context element
 * carries one such piece across, at every call, without the call sites
 * knowing:
 *
 *   capture(data)            on the submitting thread, in intr_spawn() or
 *                            run_interruptible(): returns a snapshot.
 *   install(captured, data)  on the worker, before the body: makes the
 *                            snapshot current; returns what restore needs.
 *   restore(saved, data)     on the worker, after the finalizers: puts the
 *                            worker's own state back.
 *   release(captured, data)  frees the snapshot (may be NULL): exactly once
 *                            for every capture, before the call returns to
 *                            its caller, also when the body never ran
 *                            (token already cancelled) and when the call is
 *                            refused (-EAGAIN, -ENOMEM).
 *
 * Elements are installed in the order they were added and restored in
 * reverse.  intr_context_add() copies *el; it is process-wide, may be called
 * at any time from any thread, and affects the calls submitted after it
 * returns.  Returns 0, -EINVAL (el, capture, install or restore NULL),
 * -ENOMEM.  Elements cannot be removed.
 *
 * Ordering: capture happens-before install; install happens-before the
 * body; the body and the finalizers happen-before restore; restore and
 * release happen-before run_interruptible() or intr_join() returns.  The
 * hooks of one call never run concurrently with each other; hooks of
 * different calls may run concurrently on different threads.  None runs in
 * a signal handler.
 */
struct intr_context_element {
	void *(*capture)(void *data);
	void *(*install)(void *captured, void *data);
	void (*restore)(void *saved, void *data);
	void (*release)(void *captured, void *data);
	void *data;
};

int intr_context_add(const struct intr_context_element *el);

/*
 * Token values: immutable data attached to a token and seen through all of
 * its descendants, so by nested calls started with intr_ctx_token().
 * intr_token_set_value() sets key (compared by address) on tok once:
 * -EEXIST if tok already has that key (the old value stays), -EINVAL for a
 * NULL key or a dead token, -ENOMEM.  Values are read-only by contract:
 * the library never copies or frees them, and mutable per-call state
 * belongs in a context element, not here.
 * intr_ctx_value() looks key up on the call's own token and then its
 * ancestors, nearest first; NULL if none has it, or off the worker.  It can
 * be called from the body and its finalizers.
 */
int intr_token_set_value(intr_token *tok, const void *key, void *value);
void *intr_ctx_value(intr_ctx *ctx, const void *key);

/*
 * Configuration
 * -------------
 * intr_config_default() fills cfg with the defaults: the interrupt signal
 * named by the environment variable INTR_SIGNAL if it is set, not empty
 * and usable (SIGUSR2, USR2, RTMIN+3, SIGRTMIN+3, a number), else SIGUSR1;
 * no worker limit; idle workers live 10 s; the system's stack size; first
 * re-send after 1000 us.  An unusable INTR_SIGNAL gets one line on stderr.
 *
 * Coexistence: an application may install its own handler for the
 * interrupt signal before or after the library's first use.  After a
 * cancel has sent its signal, and before each re-send, the library checks
 * that its handler is installed (one rt_sigaction); if the application
 * replaced it, the application's handler receives the foreign signals from
 * then on, the library's is installed again and the cancelled calls get
 * their signal again at once.  A call or scope that nobody cancels makes
 * no check.  Unloading the library (dlclose) while a call runs is misuse;
 * with none running, the library stops its threads, puts that handler
 * back and frees its memory.  See interruptible(7).
 *
 * A real-time interrupt signal is queued: while the per-user queue of
 * pending signals (RLIMIT_SIGPENDING) is full, the kernel refuses to send
 * it, and the library tries again, 1 ms later and then at doubling
 * intervals up to 100 ms, until it goes through.  A body blocked in a
 * system call is reached only then; the token's reason, intr_cancelled()
 * and wake-up actions do not wait for it.  A classic signal (SIGUSR1,
 * SIGUSR2) is never refused.
 *
 * intr_configure() applies cfg.  It must come before the first call that
 * needs the runtime (intr_spawn, run_interruptible, intr_token_new); after
 * that it returns -EBUSY.  -EINVAL for an unusable signal, a resend_us of
 * 0, or a stack_size other than 0 below PTHREAD_STACK_MIN.  The usable
 * signals are those that mean nothing of their own: SIGUSR1, SIGUSR2 and
 * the real-time signals SIGRTMIN to SIGRTMAX.  Every other one belongs to
 * the kernel (SIGSEGV, SIGPIPE, SIGALRM...), the terminal (SIGINT, SIGHUP,
 * SIGTSTP...) or process management (SIGTERM, SIGCHLD, SIGCONT...), or
 * cannot be caught (SIGKILL, SIGSTOP), and is refused, as are the numbers
 * libc reserves below SIGRTMIN and those out of range.
 */
struct intr_config {
	int signo;		/* interrupt signal; default SIGUSR1 */
	unsigned max_workers;	/* 0: no limit beyond the system's */
	unsigned idle_ms;	/* how long an idle worker lives */
	size_t stack_size;	/* 0: system default */
	unsigned resend_us;	/* first re-send interval after a cancel */
};

void intr_config_default(struct intr_config *cfg);
int intr_configure(const struct intr_config *cfg);

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *intr_version(void);

#ifdef __cplusplus
}
#endif

#endif /* INTERRUPTIBLE_H */
