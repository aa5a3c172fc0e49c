/* SPDX-License-Identifier: MIT */
/*
 * Description: when the fork handlers cannot be registered (pthread_atfork
 * fails with ENOMEM when the library is loaded), nothing that needs them
 * goes ahead: the calls and intr_context_add() fail with -ENOMEM, and
 * errno is kept.
 *
 * Linked with the library's objects and --wrap=pthread_atfork: the
 * test's pthread_atfork refuses, as glibc's does without memory.  Without
 * the handlers, a fork() while another thread holds the context list's
 * lock would leave it held in the child for good.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include <interruptible.h>

#include "tap.h"

int __wrap_pthread_atfork(void (*prepare)(void), void (*parent)(void),
			  void (*child)(void));

static int asked;

int __wrap_pthread_atfork(void (*prepare)(void), void (*parent)(void),
			  void (*child)(void))
{
	(void)prepare;
	(void)parent;
	(void)child;
	asked++;
	return ENOMEM;
}

static void *cap(void *d) { (void)d; return NULL; }
static void *ins(void *c, void *d) { (void)c; (void)d; return NULL; }
static void res(void *s, void *d) { (void)s; (void)d; }

static const struct intr_context_element el = {
	.capture = cap, .install = ins, .restore = res,
};

static void *body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

int main(void)
{
	intr_token *tok = NULL;
	int r;

	errno = 1234;
	r = intr_context_add(&el);
	tap_ok(r == -ENOMEM && errno == 1234,
	       "intr_context_add() without fork handlers: -ENOMEM (%d), "
	       "errno kept (%d)", r, errno);
	r = run_interruptible(NULL, body, NULL, NULL);
	tap_ok(r == -ENOMEM, "run_interruptible() without them: -ENOMEM "
	       "(%d)", r);
	r = intr_token_new(&tok, NULL);
	tap_ok(r == -ENOMEM, "intr_token_new() without them: -ENOMEM (%d)",
	       r);
	tap_ok(asked == 1, "the library asked for its fork handlers once "
	       "(%d)", asked);
	return tap_done();
}
