/* SPDX-License-Identifier: MIT */
/*
 * Description: intr_getaddrinfo() with libinterruptible-libc linked
 * returns the cancel's reason, not an EAI_* code, when the cancel stops
 * one of the libc calls it makes on its way (here the read of
 * INTR_RESOLV_CONF, made a FIFO that never gets a line, so the lookup
 * blocks there until the cancel).
 */
#include "config.h"

#include <fcntl.h>
#include <netdb.h>
#include <sys/stat.h>

#include "body.h"
#include "tap.h"

#define BOUND_MS 5000		/* every wait of the test */

static atomic_int tid;

static void *lookup_body(intr_ctx *ctx, void *arg)
{
	struct addrinfo *res = NULL;
	long r;

	(void)arg;
	atomic_store(&tid, b_gettid());
	r = intr_getaddrinfo(ctx, "stop.test", "80", NULL, &res);
	intr_freeaddrinfo(res);
	return (void *)r;
}

static void *probe_body(intr_ctx *ctx, void *arg)
{
	struct addrinfo *res = NULL;
	long r;

	(void)arg;
	r = intr_getaddrinfo(ctx, "127.0.0.1", NULL, NULL, &res);
	intr_freeaddrinfo(res);
	return (void *)r;
}

int main(void)
{
	char dir[256], fifo[300];
	intr_token *tok;
	intr_task *t;
	void *res = NULL;
	int fd, ret;

#if defined(__SANITIZE_THREAD__)
	/* ThreadSanitizer defines libc's names itself, ahead of the static
	 * libinterruptible-libc. */
	tap_skip_all("ThreadSanitizer's interceptors take libc's names");
#endif
	run_interruptible(NULL, probe_body, NULL, &res);
	if ((long)res == -ENOSYS)
		tap_skip_all("built without c-ares");
	snprintf(dir, sizeof(dir), "%s/intr-resolve-points-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		tap_skip_all("cannot make a directory in %s", dir);
	snprintf(fifo, sizeof(fifo), "%s/resolv.conf", dir);
	/* Held open for reading and writing: the lookup's open() returns at
	 * once and its read() waits for a line that never comes. */
	if (mkfifo(fifo, 0600) || (fd = open(fifo, O_RDWR)) < 0)
		tap_skip_all("cannot make a FIFO in %s", dir);
	setenv("INTR_RESOLV_CONF", fifo, 1);

	intr_token_new(&tok, NULL);
	intr_spawn(&t, tok, lookup_body, NULL);
	tap_ok(b_wait_blocked(&tid, BOUND_MS),
	       "the lookup blocks reading its resolver file");
	intr_token_cancel(tok);
	res = NULL;
	ret = b_join_within(t, &res, BOUND_MS);
	tap_ok(ret == -ECANCELED, "the call ends cancelled (%d)", ret);
	tap_ok((long)res == -ECANCELED,
	       "intr_getaddrinfo returns the reason (%ld; as an EAI code: "
	       "%s)", (long)res, gai_strerror((int)(long)res));
	if (ret != -ETIME)
		intr_token_free(tok);
	close(fd);
	unlink(fifo);
	rmdir(dir);
	return tap_done();
}
