/* SPDX-License-Identifier: MIT */
/* A consumer of the installed library: a blocked read() stopped by a
 * deadline; prints the version it was built against and what happened. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <interruptible.h>

static void *blocked_read(intr_ctx *ctx, void *arg)
{
	int *fds = arg;
	char b;

	/* 50 ms from now: set in the body, so that a slow start of the
	 * worker does not use it up before the read. */
	if (intr_token_cancel_after(intr_ctx_token(ctx), 50000000))
		return "no deadline";
	while (!intr_cancelled(ctx))
		if (read(fds[0], &b, 1) == 1)
			return "data";
	return "cancelled";
}

int main(void)
{
	intr_token *tok;
	void *res = NULL;
	int fds[2], ret;

	if (pipe(fds) || intr_token_new(&tok, NULL))
		return 1;
	ret = run_interruptible(tok, blocked_read, fds, &res);
	printf("libinterruptible %s (header %s): %s, body says %s\n",
	       intr_version(), INTR_VERSION, strerror(-ret),
	       res ? (char *)res : "nothing (it did not run)");
	intr_token_free(tok);
	return ret == -ETIMEDOUT && res && !strcmp(res, "cancelled") ? 0 : 1;
}
