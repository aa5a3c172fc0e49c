/* SPDX-License-Identifier: MIT */
/*
 * What a body can ask about its own call.  A ctx is the call's task seen
 * from inside, a value made once for the call (handles.c); it is valid only
 * on the worker running that call, while its body or its finalizers run,
 * which is what intr__current says.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"

INTR_API bool intr_cancelled(intr_ctx *ctx)
{
	struct intr_task *t = intr__call_of(ctx);

	if (!t || !atomic_load(&t->tok.reason))
		return false;
	intr__acknowledge(t);
	return true;
}

INTR_API int intr_reason(const intr_ctx *ctx)
{
	struct intr_task *t = intr__call_of(ctx);

	return t ? atomic_load(&t->tok.reason) : -EINVAL;
}

INTR_API intr_token *intr_ctx_token(intr_ctx *ctx)
{
	struct intr_task *t = intr__call_of(ctx);

	if (!t)
		return NULL;
	/* A scope's token is registered only once it is asked for. */
	if (!t->tok.handle && intr__here_token(t))
		return NULL;
	return (intr_token *)t->tok.handle;
}

INTR_API int intr_defer(intr_ctx *ctx, intr_finalizer fn, void *arg)
{
	int e = errno;
	struct intr_task *t = intr__call_of(ctx);
	struct intr__fin *f;

	if (!t || !fn)
		return -EINVAL;
	f = intr__malloc(INTR_SITE_DEFER, sizeof(*f));
	if (!f) {
		errno = e;
		return -ENOMEM;
	}
	f->fn = fn;
	f->arg = arg;
	f->next = t->fins;
	t->fins = f;
	return 0;
}
