/* SPDX-License-Identifier: MIT */
/*
 * nested-calls: calls started inside a body, cancelled with it.
 *
 * A parent body passes intr_ctx_token(ctx), its call's own token, to the
 * calls it starts, so that they are cancelled whenever it is:
 *
 *   main
 *    `- parent            intr_spawn(root token)
 *        |- reader        intr_spawn(parent's token): intr_read() on a pipe
 *        |                nobody writes to
 *        `- sleeper       run_interruptible(parent's token): intr_sleep(5 s);
 *                         the parent blocks in run_interruptible() meanwhile
 *
 * One intr_token_cancel() of the root token, from main, stops all three:
 * each reports -ECANCELED.  Finalizers run as each call ends: the nested
 * calls' before the parent's (the parent waits for them), and the parent's
 * own last registered first.
 *
 * Before that, the parent shows the other direction: a deadline on a child
 * token of its own (intr_token_cancel_after) stops a nested call with
 * -ETIMEDOUT and leaves the parent, and its other calls, running.
 *
 * Output: what each call's blocking wrapper and each join returned, one
 * line per finalizer as it runs, and "finalizer order: ok".  Exits 0 when
 * everything came out as described.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <interruptible.h>

#define LONG_NS		5000000000u	/* 5 s: never ends on its own here */
#define DEADLINE_NS	100000000u	/* 100 ms */
#define MAX_FIN		8

struct demo {
	pthread_mutex_t lock;	/* protects what follows, and stdout order */
	pthread_cond_t cond;	/* main waits here for "blocked" */
	int blocked;		/* nested calls about to block (2nd part) */
	int gave_up;		/* the parent stopped early: don't wait */
	const char *fin[MAX_FIN];	/* finalizers, in the order they ran */
	int nfin;
	int pipefd[2];		/* the reader's pipe */
	intr_token *deadline;	/* the parent's child token with a deadline */
	int ok;			/* every result as expected so far */
};

/* One nested call: what it is, and what its wrapper returned. */
struct nested {
	struct demo *d;
	const char *name;
	int tell_main;		/* count in d->blocked before blocking */
	intr_token *deadline;	/* arm this one's deadline once running */
	int ret;
};

static const char *rname(int r)
{
	switch (r) {
	case 0:
		return "0";
	case -ECANCELED:
		return "-ECANCELED";
	case -ETIMEDOUT:
		return "-ETIMEDOUT";
	default:
		return strerror(-r);
	}
}

/* Print a line and check a result: everything goes through here. */
static void report(struct demo *d, const char *who, const char *what, int got,
		   int want)
{
	pthread_mutex_lock(&d->lock);
	printf("%s: %s returned %s\n", who, what, rname(got));
	if (got != want) {
		printf("  (expected %s)\n", rname(want));
		d->ok = 0;
	}
	pthread_mutex_unlock(&d->lock);
}

/* Every finalizer ends here: record the order, print it. */
static void note_fin(struct demo *d, const char *name)
{
	pthread_mutex_lock(&d->lock);
	if (d->nfin < MAX_FIN)
		d->fin[d->nfin++] = name;
	printf("finalizer: %s\n", name);
	pthread_mutex_unlock(&d->lock);
}

static void nested_fin(void *arg)
{
	struct nested *n = arg;

	note_fin(n->d, n->name);
}

/* About to block: let main know, in the second part, when to cancel.  A
 * cancel that came before the wrapper entered the kernel would not be lost
 * (the wrapper would return it at once), so this is for a tidy demo only. */
static void about_to_block(struct nested *n)
{
	if (!n->tell_main)
		return;
	pthread_mutex_lock(&n->d->lock);
	n->d->blocked++;
	pthread_cond_broadcast(&n->d->cond);
	pthread_mutex_unlock(&n->d->lock);
}

static void *sleeper(intr_ctx *ctx, void *arg)
{
	struct nested *n = arg;

	intr_defer(ctx, nested_fin, n);
	/* Armed here, once the body runs, so that it has a sleep to stop.
	 * Armed before the call, a deadline that passed before a worker took
	 * the call would skip the body: run_interruptible() would return
	 * -ETIMEDOUT all the same, but there would be nothing to show. */
	if (n->deadline)
		intr_token_cancel_after(n->deadline, DEADLINE_NS);
	about_to_block(n);
	n->ret = intr_sleep(ctx, LONG_NS);
	report(n->d, n->name, "intr_sleep", n->ret, n->tell_main ?
	       -ECANCELED : -ETIMEDOUT);
	return NULL;
}

static void *reader(intr_ctx *ctx, void *arg)
{
	struct nested *n = arg;
	char c;

	intr_defer(ctx, nested_fin, n);
	about_to_block(n);
	n->ret = (int)intr_read(ctx, n->d->pipefd[0], &c, 1);
	report(n->d, n->name, "intr_read", n->ret, -ECANCELED);
	return NULL;
}

/* The parent's finalizers, registered in this order, run in reverse. */
static void free_deadline_token(void *arg)
{
	struct demo *d = arg;
	int ret;

	/* The call that used it has ended: it can be freed. */
	ret = intr_token_free(d->deadline);

	note_fin(d, "parent: free the deadline token");
	if (ret)
		report(d, "parent", "intr_token_free(deadline)", ret, 0);
}

static void close_pipe(void *arg)
{
	struct demo *d = arg;

	/* Registered after the token's finalizer, so it runs before it. */
	close(d->pipefd[0]);
	close(d->pipefd[1]);
	note_fin(d, "parent: close the pipe");
}

static void *give_up(struct demo *d, const char *what, int err)
{
	pthread_mutex_lock(&d->lock);
	fprintf(stderr, "parent: %s: %s\n", what, strerror(-err));
	d->ok = 0;
	d->gave_up = 1;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

static void *parent(intr_ctx *ctx, void *arg)
{
	struct demo *d = arg;
	intr_token *mine = intr_ctx_token(ctx);	/* for nested calls */
	struct nested late = { .d = d, .name = "sleeper (deadline)" };
	struct nested slp = { .d = d, .name = "sleeper", .tell_main = 1 };
	struct nested rdr = { .d = d, .name = "reader", .tell_main = 1 };
	intr_task *rtask;
	int ret;

	/*
	 * First part: a deadline on a child token stops a nested call only.
	 * The token is the parent's child, so a cancel of the parent would
	 * reach it as well; its deadline reaches nothing above it.
	 */
	ret = intr_token_new(&d->deadline, mine);
	if (ret)
		return give_up(d, "intr_token_new", ret);
	intr_defer(ctx, free_deadline_token, d);
	late.deadline = d->deadline;
	ret = run_interruptible(d->deadline, sleeper, &late, NULL);
	report(d, "parent", "run_interruptible(sleeper, 100 ms deadline)",
	       ret, -ETIMEDOUT);
	/* The parent itself was not cancelled, nor is its token. */
	report(d, "parent", "intr_reason after the deadline", intr_reason(ctx),
	       0);

	/*
	 * Second part: two nested calls on the parent's own token, then one
	 * cancel of the root token from main.
	 */
	if (pipe(d->pipefd))
		return give_up(d, "pipe", -errno);
	intr_defer(ctx, close_pipe, d);
	ret = intr_spawn(&rtask, mine, reader, &rdr);
	if (ret)
		return give_up(d, "intr_spawn", ret);
	/* run_interruptible() waits: the parent is blocked from here until
	 * the sleeper returns, which it does when main cancels the root. */
	ret = run_interruptible(mine, sleeper, &slp, NULL);
	/* Acknowledge the cancel at once (the library re-sends its signal
	 * to an unacknowledged call), and stop starting anything. */
	intr_cancelled(ctx);
	report(d, "parent", "run_interruptible(sleeper)", ret, -ECANCELED);
	/* Always join what was spawned; the cancel reached the reader too,
	 * so this does not wait long. */
	ret = intr_join(rtask, NULL);
	report(d, "parent", "intr_join(reader)", ret, -ECANCELED);
	report(d, "parent", "intr_reason", intr_reason(ctx), -ECANCELED);
	return NULL;
}

static int index_of(const struct demo *d, const char *name)
{
	int i;

	for (i = 0; i < d->nfin; i++)
		if (!strcmp(d->fin[i], name))
			return i;
	return -1;
}

/* The nested calls' finalizers ran before the parent's (in any order
 * between them: they end concurrently), the parent's last-first. */
static int order_ok(const struct demo *d)
{
	int dl = index_of(d, "sleeper (deadline)");
	int s = index_of(d, "sleeper");
	int r = index_of(d, "reader");
	int p = index_of(d, "parent: close the pipe");
	int t = index_of(d, "parent: free the deadline token");

	return d->nfin == 5 && dl == 0 && s > dl && r > dl && p > s &&
	       p > r && t > p;
}

int main(void)
{
	struct demo d = { .ok = 1 };
	intr_token *root;
	intr_task *task;
	int ret;

	pthread_mutex_init(&d.lock, NULL);
	pthread_cond_init(&d.cond, NULL);
	ret = intr_token_new(&root, NULL);
	if (ret) {
		fprintf(stderr, "intr_token_new: %s\n", strerror(-ret));
		return 1;
	}
	/* Spawned, not run: main must stay free to cancel. */
	ret = intr_spawn(&task, root, parent, &d);
	if (ret) {
		fprintf(stderr, "intr_spawn: %s\n", strerror(-ret));
		return 1;
	}

	pthread_mutex_lock(&d.lock);
	while (d.blocked < 2 && !d.gave_up)
		pthread_cond_wait(&d.cond, &d.lock);
	printf("main: reader and sleeper blocked; cancelling the root token\n");
	pthread_mutex_unlock(&d.lock);

	intr_token_cancel(root);	/* the one cancel */
	ret = intr_join(task, NULL);
	report(&d, "main", "intr_join(parent)", ret, -ECANCELED);

	/* Every call has ended: no locking needed below. */
	if (order_ok(&d)) {
		printf("finalizer order: ok\n");
	} else {
		printf("finalizer order: wrong\n");
		d.ok = 0;
	}
	/* The parent's token went with its call, the deadline token with
	 * the parent's finalizer: nothing is bound to the root any more. */
	if (intr_token_free(root))
		d.ok = 0;
	pthread_cond_destroy(&d.cond);
	pthread_mutex_destroy(&d.lock);
	return d.ok ? 0 : 1;
}
