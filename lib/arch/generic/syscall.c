/* SPDX-License-Identifier: MIT */
/* The portable window: correct through the re-send, see arch.h. */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>

#include "internal.h"

struct intr__sc_ret intr__sc_call(const atomic_int *flag, long nr, long a1,
				  long a2, long a3, long a4, long a5, long a6)
{
	struct intr__sc_ret r = { -ECANCELED, 1 };
	int e = errno;

	if (atomic_load(flag))
		return r;
	r.exited = 0;
	r.ret = syscall(nr, a1, a2, a3, a4, a5, a6);
	if (r.ret == -1)
		r.ret = -errno;
	errno = e;
	return r;
}
