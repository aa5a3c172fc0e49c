/* SPDX-License-Identifier: MIT */
/* The portable window: correct through the re-send, see arch.h. */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>

#include "internal.h"

long intr__sc_call(const atomic_int *flag, long nr, long a1, long a2, long a3,
		   long a4, long a5, long a6)
{
	int e = errno;
	long r;

	if (atomic_load(flag))
		return -ECANCELED;
	r = syscall(nr, a1, a2, a3, a4, a5, a6);
	if (r == -1)
		r = -errno;
	errno = e;
	return r;
}
