/* SPDX-License-Identifier: MIT */
/*
 * The configuration, the interrupt signal's name, and the version.
 *
 * intr_configure() is accepted only until the runtime starts
 * (lifecycle.c), which freezes the configuration under this file's lock.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_IDLE_MS 10000
#define DEFAULT_RESEND_US 1000

struct intr_config intr__cfg;
/* Set once, before the first call can start (intr__config_settle). */
bool intr__wake_signal;

static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool started;
static bool configured;

static const struct {
	const char *name;
	int signo;
} names[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
	{ "ILL", SIGILL }, { "TRAP", SIGTRAP }, { "ABRT", SIGABRT },
	{ "BUS", SIGBUS }, { "FPE", SIGFPE }, { "KILL", SIGKILL },
	{ "USR1", SIGUSR1 }, { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },
	{ "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM },
	{ "CHLD", SIGCHLD }, { "CONT", SIGCONT }, { "STOP", SIGSTOP },
	{ "TSTP", SIGTSTP }, { "TTIN", SIGTTIN }, { "TTOU", SIGTTOU },
	{ "URG", SIGURG }, { "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ },
	{ "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH },
	{ "IO", SIGIO }, { "PWR", SIGPWR }, { "SYS", SIGSYS },
};

/* Parse a decimal number that fills the whole string; -1 if it does not. */
static int parse_num(const char *s)
{
	long v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > 1000)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return (int)v;
}

/* "SIGUSR2", "USR2", "RTMIN+3", "SIGRTMAX-1", "12": the signal number, or
 * -1 for anything else.  Usability is checked separately. */
int intr__signal_parse(const char *s)
{
	size_t i;
	int n;

	if (!s)
		return -1;
	if (*s >= '0' && *s <= '9')
		return parse_num(s);
	if (!strncmp(s, "SIG", 3))
		s += 3;
	if (!strncmp(s, "RTMIN", 5) || !strncmp(s, "RTMAX", 5)) {
		bool min = s[4] == 'N';

		s += 5;
		if (!*s)
			return min ? SIGRTMIN : SIGRTMAX;
		if (*s != (min ? '+' : '-'))
			return -1;
		n = parse_num(s + 1);
		if (n < 0)
			return -1;
		return min ? SIGRTMIN + n : SIGRTMAX - n;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i].name))
			return names[i].signo;
	return -1;
}

/*
 * The interrupt signal must mean nothing of its own: SIGUSR1, SIGUSR2 or a
 * real-time signal.  Every other one is the kernel's (faults, SIGPIPE,
 * SIGXCPU, timers, SIGKILL and SIGSTOP that cannot be caught), the
 * terminal's (SIGINT, SIGHUP, SIGTSTP, SIGWINCH...) or process
 * management's (SIGTERM, SIGCHLD, SIGCONT...): taking it over would break
 * whoever sends it for that meaning.  libc keeps the numbers between
 * SIGSYS and SIGRTMIN for itself.
 */
bool intr__signal_usable(int signo)
{
	if (signo == SIGUSR1 || signo == SIGUSR2)
		return true;
	return signo >= SIGRTMIN && signo <= SIGRTMAX;
}

/* The signal INTR_SIGNAL names, or SIGUSR1 (unset or empty); complains
 * once if unusable. */
static int env_signal(void)
{
	static atomic_bool warned;
	const char *s = getenv("INTR_SIGNAL");
	int signo;

	if (!s || !*s)
		return SIGUSR1;
	signo = intr__signal_parse(s);
	if (intr__signal_usable(signo))
		return signo;
	if (!atomic_exchange(&warned, true))
		fprintf(stderr,
			"libinterruptible: INTR_SIGNAL=\"%s\" is not a usable "
			"interrupt signal (want SIGUSR1, SIGUSR2 or a real-time "
			"signal: USR2, RTMIN+3, SIGRTMAX-1, a number); using "
			"SIGUSR1\n", s);
	return SIGUSR1;
}

/* INTR_WAKE=signal: the waits that can end without the interrupt signal
 * (intr_sleep) take it anyway, as they did before.  Anything else, unset
 * or empty: the signal-free waits. */
static bool env_wake_signal(void)
{
	const char *s = getenv("INTR_WAKE");

	return s && !strcmp(s, "signal");
}

INTR_API void intr_config_default(struct intr_config *cfg)
{
	int e = errno;

	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->signo = env_signal();
	cfg->max_workers = 0;
	cfg->idle_ms = DEFAULT_IDLE_MS;
	cfg->stack_size = 0;
	cfg->resend_us = DEFAULT_RESEND_US;
	errno = e;
}

INTR_API int intr_configure(const struct intr_config *cfg)
{
	sigset_t saved;
	int ret = 0;

	if (!cfg || !intr__signal_usable(cfg->signo) || !cfg->resend_us ||
	    (cfg->stack_size && cfg->stack_size < (size_t)PTHREAD_STACK_MIN))
		return -EINVAL;
	intr__config_lock(&saved);
	if (atomic_load(&started)) {
		ret = -EBUSY;
	} else {
		intr__cfg = *cfg;
		configured = true;
	}
	intr__config_unlock(&saved);
	return ret;
}

INTR_API const char *intr_version(void)
{
	return PACKAGE_VERSION;
}


/*
 * The runtime's start (lifecycle.c) and fork() hold the configuration
 * still while they work: intr_configure() waits, then refuses.  Every
 * signal is blocked while the lock is held (saved: the mask before): the
 * fork handlers take it, and a handler that forks on a thread holding it
 * would wait for itself.  The fork handlers are registered when the
 * library is loaded, so this holds from the first intr_configure() on.
 */
void intr__config_lock(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, saved);
	pthread_mutex_lock(&init_mu);
}

void intr__config_unlock(const sigset_t *saved)
{
	pthread_mutex_unlock(&init_mu);
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

/* In a fork child: the lock the parent's fork held is this thread's. */
void intr__config_after_fork(void)
{
	pthread_mutex_unlock(&init_mu);
}

bool intr__config_started(void)
{
	return atomic_load(&started);
}

/* The configuration the runtime starts with: the application's, or the
 * defaults, now.  Under intr__config_lock. */
void intr__config_settle(void)
{
	if (!configured)
		intr_config_default(&intr__cfg);
	intr__wake_signal = env_wake_signal();
}

/* Started: intr_configure() refuses from now on.  Under intr__config_lock. */
void intr__config_freeze(void)
{
	atomic_store(&started, true);
}
