/* SPDX-License-Identifier: MIT */
/* aarch64: the syscall window is lib/arch/aarch64/syscall.S. */
#ifndef INTR_ARCH_H
#define INTR_ARCH_H

#include <stdint.h>
#include <ucontext.h>

#define INTR_HAVE_WINDOW 1

static inline uintptr_t *intr__arch_pc(void *uc)
{
	return (uintptr_t *)&((ucontext_t *)uc)->uc_mcontext.pc;
}

#endif
