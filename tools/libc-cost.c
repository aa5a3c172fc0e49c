/* SPDX-License-Identifier: MIT */
/*
 * intr-libc-cost: what libinterruptible-libc costs a call, outside bodies
 * and inside them, beside libc's own function called the same way (through
 * a pointer from libc.so.6 itself), in one run, interleaved.
 *
 * Two calls: sem_wait() on a semaphore that has a token (no system call:
 * the interposition is all there is to see) and read() of 0 bytes from a
 * pipe (a system call).  Each figure is the fastest of 101 batches (of
 * 20,000 sem_wait or 2,000 read calls), the batches of the two sides
 * alternating, so that both get the machine's quiet moments; the
 * difference is the cost.  The goal (<= 5 ns a call outside bodies) is printed with
 * PASS or MISS; it never changes the exit status.
 *
 * usage: intr-libc-cost [batches]
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>

static const int calls[2] = { 20000, 2000 };
static int batches = 101;
static int pipefd[2];
static sem_t sem;
static int (*libc_sem_wait)(sem_t *);
static ssize_t (*libc_read)(int, void *, size_t);

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One batch of n calls of kind k (0 sem_wait, 1 read), libc's (own) or
 * the interposed one; ns per call.  sem_post refills the token: it is in
 * both sides' loop and cancels out. */
static double batch(int k, int own)
{
	char c;
	double t0 = now_ns();
	int i;

	for (i = 0; i < calls[k]; i++) {
		if (k == 0) {
			sem_post(&sem);
			if (own)
				libc_sem_wait(&sem);
			else
				sem_wait(&sem);
		} else if (own) {
			if (libc_read(pipefd[0], &c, 0) < 0)
				abort();
		} else if (read(pipefd[0], &c, 0) < 0) {
			abort();
		}
	}
	return (now_ns() - t0) / calls[k];
}

struct fig {
	double own, here;	/* ns per call, the fastest batch */
};

static void measure(struct fig f[2])
{
	int k, b;

	for (k = 0; k < 2; k++) {
		f[k].own = f[k].here = 1e12;
		for (b = 0; b < batches; b++) {
			double x = batch(k, b & 1), y = batch(k, !(b & 1));
			double own = b & 1 ? x : y, here = b & 1 ? y : x;

			if (own < f[k].own)
				f[k].own = own;
			if (here < f[k].here)
				f[k].here = here;
		}
	}
}

static void *body(intr_ctx *ctx, void *arg)
{
	measure(arg);
	return NULL;
}

static void row(const char *where, const char *call, const struct fig *f)
{
	printf("| %-16s | %-22s | %8.2f | %8.2f | %+7.2f |\n", where, call,
	       f->own, f->here, f->here - f->own);
}

int main(int argc, char **argv)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	struct fig out[2], in[2];
	double cost;

	if (argc > 1)
		batches = atoi(argv[1]) > 0 ? atoi(argv[1]) : batches;
	if (!libc) {
		printf("intr-libc-cost: not glibc (no libc.so.6): nothing to "
		       "compare with\n");
		return 0;
	}
	libc_sem_wait = (int (*)(sem_t *))dlsym(libc, "sem_wait");
	libc_read = (ssize_t (*)(int, void *, size_t))dlsym(libc, "read");
	if (!libc_sem_wait || !libc_read || pipe(pipefd) ||
	    sem_init(&sem, 0, 0))
		return 1;
	if ((void *)libc_read == dlsym(RTLD_DEFAULT, "read"))
		printf("intr-libc-cost: libinterruptible-libc is not "
		       "interposed here\n");
	measure(out);
	if (run_interruptible(NULL, body, in, NULL))
		return 1;

	printf("libinterruptible-libc: ns per call, fastest of %d batches, "
	       "libc's own beside the interposed one\n\n", batches);
	printf("| %-16s | %-22s | %8s | %8s | %7s |\n", "where", "call",
	       "libc", "here", "cost");
	printf("| --- | --- | ---: | ---: | ---: |\n");
	row("outside bodies", "sem_wait (no syscall)", &out[0]);
	row("outside bodies", "read 0 bytes (syscall)", &out[1]);
	row("in a body", "sem_wait (no syscall)", &in[0]);
	row("in a body", "read 0 bytes (syscall)", &in[1]);
	cost = out[0].here - out[0].own;
	printf("\ntarget: outside bodies <= 5 ns a call: %.2f ns  %s\n", cost,
	       cost <= 5.0 ? "PASS" : "MISS");
	return 0;
}
