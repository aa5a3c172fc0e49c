/* SPDX-License-Identifier: MIT */
/* read-deadline: a plain read() on stdin, given up after 2 seconds. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <interruptible.h>

static void *read_line(intr_ctx *ctx, void *buf)
{
	ssize_t n;

	do	/* EINTR: the cancel's signal, or some other; ask which */
		n = read(STDIN_FILENO, buf, 255);
	while (n < 0 && errno == EINTR && !intr_cancelled(ctx));
	return (void *)n;
}

int main(void)
{
	char buf[256];
	intr_token *tok;
	void *n;
	int ret;

	intr_token_new(&tok, NULL);
	intr_token_cancel_after(tok, 2000000000u);	/* 2 s */
	ret = run_interruptible(tok, read_line, buf, &n);
	if (ret == -ETIMEDOUT)
		printf("no input within 2 s\n");
	else
		printf("read %zd bytes\n", (ssize_t)n);
	intr_token_free(tok);
	return 0;
}
