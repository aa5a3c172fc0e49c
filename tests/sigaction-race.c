/* SPDX-License-Identifier: MIT */
/*
 * Description: the application's sigaction() racing the library's check of its handler is never lost.
 *
 * At every pass of its service thread, the library looks at the
 * interrupt signal's handler; if the application has replaced the
 * library's, it records the application's and installs its own again.
 * An application thread that installs another handler between the
 * library's look and its install must not have that handler silently
 * overwritten: foreign signals must reach the handler the application
 * installed last.
 *
 * The race is made deterministic by interposing sigaction(): when the
 * library (on the service thread, in a pass a token's deadline makes)
 * looks at the handler and finds the application's, the interposer
 * installs a newer one right then, as a concurrent thread could.  Round k
 * does it at the library's k-th look of the check, so every gap between
 * a look and the install is hit.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <interruptible.h>

#include "clock.h"
#include "tap.h"

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

static sigaction_fn real_sigaction;
static pid_t test_tid;
static atomic_int trigger_at;	/* the look (1, 2, ...) to act after; 0: off */
static atomic_int looks;
static atomic_int installs;	/* the library's installs, off the test thread */
static atomic_int interposed;
static void (*newer)(int);

/* The application's handlers: a and b take turns as "installed first",
 * c is installed during the library's check. */
static atomic_int count_a, count_b, count_c;
static void on_a(int s) { (void)s; atomic_fetch_add(&count_a, 1); }
static void on_b(int s) { (void)s; atomic_fetch_add(&count_b, 1); }
static void on_c(int s) { (void)s; atomic_fetch_add(&count_c, 1); }

static bool is_app(void (*h)(int))
{
	return h == on_a || h == on_b || h == on_c;
}

int sigaction(int signo, const struct sigaction *act, struct sigaction *old)
{
	struct sigaction tmp, sa;
	int ret;

	if (!real_sigaction)
		real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
	atomic_fetch_add(&interposed, 1);
	/* Only the service thread's looks and installs count: the test
	 * thread's own calls (install(), a cancel's look after its sends)
	 * do not. */
	if (signo != SIGUSR1 || syscall(SYS_gettid) == test_tid)
		return real_sigaction(signo, act, old);
	if (act) {
		ret = real_sigaction(signo, act, old);
		atomic_fetch_add(&installs, 1);
		return ret;
	}
	/* A look at SIGUSR1's handler from the library's thread. */
	ret = real_sigaction(signo, NULL, old ? old : &tmp);
	if (ret || !atomic_load(&trigger_at) ||
	    (old ? old : &tmp)->sa_flags & SA_SIGINFO ||
	    !is_app((old ? old : &tmp)->sa_handler))
		return ret;
	if (atomic_fetch_add(&looks, 1) + 1 == atomic_load(&trigger_at)) {
		/* Another thread of the application, right now. */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = newer;
		real_sigaction(SIGUSR1, &sa, NULL);
		atomic_store(&trigger_at, 0);
	}
	return ret;
}

static void *nop_body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

static void install(void (*h)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	real_sigaction(SIGUSR1, &sa, NULL);
}

/* A pass of the service thread, which looks at the handler: a token's
 * deadline, 1 us away.  True once the library has installed its own
 * handler again, within 5 s. */
static bool service_pass(int installs_before)
{
	uint64_t end = h_now_ns() + 5000000000ull;
	intr_token *tok;
	bool done;

	if (intr_token_new(&tok, NULL) || intr_token_cancel_after(tok, 1000))
		return false;
	while (!(done = atomic_load(&installs) > installs_before) &&
	       h_now_ns() < end)
		usleep(1000);
	intr_token_free(tok);
	return done;
}

int main(void)
{
	int k, looked, i0;

	real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
	if (!real_sigaction)
		tap_skip_all("sigaction cannot be interposed here");
	test_tid = (pid_t)syscall(SYS_gettid);
	install(on_a);
	if (run_interruptible(NULL, nop_body, NULL, NULL) ||
	    !atomic_load(&interposed))
		tap_skip_all("the library's sigaction calls do not reach the "
			     "interposer (static libc or a sanitizer)");
	for (k = 1; k <= 3; k++) {
		int a0, b0, c0;

		/* The application replaces the library's handler with b;
		 * while the library looks (k-th look), c is installed. */
		newer = on_c;
		atomic_store(&looks, 0);
		atomic_store(&trigger_at, k);
		i0 = atomic_load(&installs);
		install(on_b);
		if (!service_pass(i0)) {
			tap_ok(false, "round %d: the service thread did not "
			       "install its handler again within 5 s", k);
			atomic_store(&trigger_at, 0);
			continue;
		}
		looked = atomic_load(&looks);
		if (atomic_load(&trigger_at)) {
			/* The check made fewer looks than k: nothing to
			 * race with there. */
			atomic_store(&trigger_at, 0);
			tap_skip("round %d: the check looks %d times", k,
				 looked);
			continue;
		}
		a0 = atomic_load(&count_a);
		b0 = atomic_load(&count_b);
		c0 = atomic_load(&count_c);
		raise(SIGUSR1);
		tap_ok(atomic_load(&count_c) == c0 + 1 &&
		       atomic_load(&count_b) == b0 &&
		       atomic_load(&count_a) == a0,
		       "round %d: handler installed during the library's look "
		       "%d gets the foreign signal (newest %d, replaced %d, "
		       "first %d)", k, k, atomic_load(&count_c) - c0,
		       atomic_load(&count_b) - b0, atomic_load(&count_a) - a0);
	}
	return tap_done();
}
