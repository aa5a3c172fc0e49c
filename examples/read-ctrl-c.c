/* SPDX-License-Identifier: MIT */
/*
 * read-ctrl-c: the main thread reads standard input, and Ctrl-C stops the
 * read.  No thread is started for it: the read runs in place, in a scope
 * of the main thread (intr_run_here), which is interruptible for as long
 * as the read blocks.  SIGINT's handler cancels the scope's token; the
 * read returns -ECANCELED, and the program says so and exits 0.
 *
 * usage: read-ctrl-c [--restart]
 *   --restart  install the SIGINT handler with SA_RESTART: the wrapper's
 *              read is stopped all the same
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <interruptible.h>

static intr_token *tok;

static void on_sigint(int sig)
{
	(void)sig;
	intr_token_cancel(tok);		/* async-signal-safe */
}

static void *read_stdin(intr_ctx *ctx, void *buf)
{
	printf("reading standard input; press Ctrl-C to stop\n");
	fflush(stdout);		/* the smoke test waits for this line */
	return (void *)(intptr_t)intr_read(ctx, STDIN_FILENO, buf, 255);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	char buf[256];
	void *res = NULL;
	long n;
	int ret;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	if (argc == 2 && !strcmp(argv[1], "--restart"))
		sa.sa_flags = SA_RESTART;
	else if (argc != 1) {
		fprintf(stderr, "usage: %s [--restart]\n", argv[0]);
		return 2;
	}
	ret = intr_token_new(&tok, NULL);
	if (ret) {
		fprintf(stderr, "intr_token_new: %s\n", strerror(-ret));
		return 1;
	}
	sigaction(SIGINT, &sa, NULL);
	ret = intr_run_here(tok, read_stdin, buf, &res);
	n = (long)(intptr_t)res;
	if (ret == -ECANCELED)
		printf("interrupted\n");
	else if (ret)
		fprintf(stderr, "intr_run_here: %s\n", strerror(-ret));
	else if (n < 0)
		fprintf(stderr, "read: %s\n", strerror((int)-n));
	else
		printf("read %ld bytes\n", n);
	signal(SIGINT, SIG_DFL);
	intr_token_free(tok);
	return ret && ret != -ECANCELED ? 1 : 0;
}
