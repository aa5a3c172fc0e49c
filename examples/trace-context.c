/* SPDX-License-Identifier: MIT */
/*
 * trace-context: carry a request id from the caller's thread into bodies.
 *
 * An application's logging API keeps the current request id in a
 * thread-local variable.  A body runs on one of the library's worker
 * threads, where that variable is empty, so without help every line a body
 * logs would lose its request.  One context element, added once at start-up,
 * carries the id into every body (nested calls included) without a single
 * call site passing it.  A token value carries something else: an immutable
 * configuration that all calls of a token tree read.
 *
 * Output: each line starts with "[request-id]"; all lines of one request,
 * whichever thread logged them, show that request's id.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <interruptible.h>

/* ------------------------------------------------------------------------
 * An existing logging API (stands for yours): it knows nothing of the
 * library.
 */
static __thread char log_request[32];	/* "" when there is none */

static void log_set_request(const char *id)
{
	snprintf(log_request, sizeof(log_request), "%s", id ? id : "");
}

static const char *log_get_request(void)
{
	return log_request;
}

static void log_msg(const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf("[%s] %s\n", log_request[0] ? log_request : "-", line);
}

/* ------------------------------------------------------------------------
 * The context element: four hooks around every call.
 */

/* On the submitting thread: snapshot its id.  Must not fail loudly: NULL
 * (out of memory) simply means "no id" in install. */
static void *trace_capture(void *data)
{
	(void)data;
	return strdup(log_get_request());
}

/* On the worker, before the body: make the snapshot current and hand back
 * the worker's own id, for restore. */
static void *trace_install(void *captured, void *data)
{
	char *saved = strdup(log_get_request());

	(void)data;
	log_set_request(captured);
	return saved;
}

/* On the worker, after the body and its finalizers: put the worker's own
 * id back, so that the next call on this thread starts clean. */
static void trace_restore(void *saved, void *data)
{
	(void)data;
	log_set_request(saved);
	free(saved);
}

/* Exactly once per capture, also when the body never ran. */
static void trace_release(void *captured, void *data)
{
	(void)data;
	free(captured);
}

static const struct intr_context_element trace_element = {
	.capture = trace_capture,
	.install = trace_install,
	.restore = trace_restore,
	.release = trace_release,
	.data = NULL,
};

/* ------------------------------------------------------------------------
 * Immutable configuration, attached to a token as a value.  The key is
 * compared by address, so any unique object will do.
 */
struct app_config {
	const char *service;
	unsigned max_items;
};

static const char config_key;

static const struct app_config *config_of(intr_ctx *ctx)
{
	return intr_ctx_value(ctx, &config_key);
}

/* ------------------------------------------------------------------------
 * The bodies.  They log through the ordinary API and never see an id.
 */
static void *lookup_user(intr_ctx *ctx, void *arg)
{
	const struct app_config *cfg = config_of(ctx);

	/* A nested call: another worker, same id, same configuration. */
	log_msg("looking up user %s in %s", (const char *)arg,
		cfg ? cfg->service : "?");
	return "found";
}

static void log_done(void *arg)
{
	/* Finalizers run before restore: the id is still there. */
	log_msg("cleanup after %s", (const char *)arg);
}

static void *handle_request(intr_ctx *ctx, void *arg)
{
	const struct app_config *cfg = config_of(ctx);
	void *found = NULL;
	int ret;

	if (!cfg)
		return "no configuration";
	log_msg("handling for %s, at most %u items", (const char *)arg,
		cfg->max_items);
	intr_defer(ctx, log_done, arg);
	/* Pass the call's own token: the nested call is cancelled with this
	 * one and sees the same token values. */
	ret = run_interruptible(intr_ctx_token(ctx), lookup_user, arg, &found);
	if (ret != 0)
		return "lookup failed";
	log_msg("user lookup: %s", (const char *)found);
	return "ok";
}

/* ------------------------------------------------------------------------ */

static int serve(intr_token *root, const char *request_id, const char *user)
{
	void *answer = NULL;
	int ret;

	log_set_request(request_id);	/* what the request handler does */
	log_msg("request received");
	ret = run_interruptible(root, handle_request, (void *)user, &answer);
	if (ret != 0) {
		fprintf(stderr, "run_interruptible: %s\n", strerror(-ret));
		return -1;
	}
	log_msg("request answered: %s", (const char *)answer);
	log_set_request(NULL);
	return 0;
}

int main(void)
{
	static const struct app_config config = {
		.service = "user-db",
		.max_items = 100,
	};
	intr_token *root;
	int ret;

	/* Once, before the calls that should carry the id. */
	ret = intr_context_add(&trace_element);
	if (ret == 0)
		ret = intr_token_new(&root, NULL);
	/* Values are read-only by contract: the library never writes, copies
	 * or frees them, hence the cast. */
	if (ret == 0)
		ret = intr_token_set_value(root, &config_key, (void *)&config);
	if (ret != 0) {
		fprintf(stderr, "setup: %s\n", strerror(-ret));
		return 1;
	}
	if (serve(root, "req-1001", "alice") || serve(root, "req-1002", "bob"))
		return 1;
	ret = intr_token_free(root);
	if (ret != 0) {
		fprintf(stderr, "intr_token_free: %s\n", strerror(-ret));
		return 1;
	}
	return 0;
}
