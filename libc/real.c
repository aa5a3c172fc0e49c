/* SPDX-License-Identifier: MIT */
/*
 * libc's own functions, for the interposed ones to call outside bodies.
 *
 * dlsym(RTLD_NEXT) finds the definition that comes after this library in
 * the lookup order, which is libc's (or a sanitizer's interceptor, which
 * then calls libc's).  All of them are resolved when the library is
 * loaded; a function called before that, from another library's
 * constructor, resolves itself on first use.  A slot is written once with
 * the same value by whoever gets there, so a relaxed store suffices: a
 * reader that sees NULL resolves it again.
 */
#include "config.h"
#undef _FORTIFY_SOURCE

#include <dlfcn.h>

#include "internal.h"

struct intr_libc_real intr__real;

void *intr__libc_resolve(const char *name, _Atomic(void *) *slot)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (f)
		atomic_store_explicit(slot, f, memory_order_relaxed);
	return f;
}

__attribute__((constructor)) static void resolve_all(void)
{
	int e = errno;

#define RESOLVE(name) intr__libc_resolve(#name, &intr__real.name);
	INTR_LIBC_FUNCS(RESOLVE)
#undef RESOLVE
	errno = e;
}
