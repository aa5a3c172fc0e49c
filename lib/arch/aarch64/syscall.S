/* SPDX-License-Identifier: MIT */
/*
 * struct intr__sc_ret intr__sc_call(const int *flag, long nr, long a1, ...,
 *				     long a6)
 *
 * The cancellable system call window, aarch64; see the x86-64 version for
 * the contract.  From intr__sc_begin up to (not including) intr__sc_end the
 * flag has not been seen set and the system call has not returned; the
 * handler moves a PC found there to intr__sc_cancel.  The kernel leaves the
 * PC after "svc" (at intr__sc_end) when it returns -EINTR.  The result
 * comes back in x0:x1: the system call's and 0, or -ECANCELED and 1 from
 * the cancel exit.
 *
 * Arguments: x0 flag, x1 nr, x2..x7 a1..a6.
 * Kernel:    x8 nr, x0..x5 arguments, result in x0.
 *
 * Built with -mbranch-protection (BTI, PAC), the entry is a "bti c" landing
 * pad and the object's GNU property note says so, as the compiler's
 * objects do: the linker marks the library only if every object is.  A
 * leaf that never saves the link register needs no pointer signing.
 */
#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define FEATURE_BTI 1
#else
#define FEATURE_BTI 0
#endif
#if defined(__ARM_FEATURE_PAC_DEFAULT) && __ARM_FEATURE_PAC_DEFAULT
#define FEATURE_PAC 2
#else
#define FEATURE_PAC 0
#endif

	.text
	.globl	intr__sc_call
	.hidden	intr__sc_call
	.type	intr__sc_call, %function
	.globl	intr__sc_begin
	.hidden	intr__sc_begin
	.globl	intr__sc_end
	.hidden	intr__sc_end
	.globl	intr__sc_cancel
	.hidden	intr__sc_cancel
	.p2align 2
intr__sc_call:
#if FEATURE_BTI
	hint	#34			/* bti c */
#endif
intr__sc_begin:
	ldr	w9, [x0]
	cbnz	w9, intr__sc_cancel
	mov	x8, x1
	mov	x0, x2
	mov	x1, x3
	mov	x2, x4
	mov	x3, x5
	mov	x4, x6
	mov	x5, x7
	svc	#0
intr__sc_end:
	mov	x1, #0			/* the kernel's result */
	ret
intr__sc_cancel:
	mov	x0, #-125		/* -ECANCELED */
	mov	x1, #1			/* from the cancel exit */
	ret
	.size	intr__sc_call, . - intr__sc_call

#if FEATURE_BTI || FEATURE_PAC
	/* NT_GNU_PROPERTY_TYPE_0: GNU_PROPERTY_AARCH64_FEATURE_1_AND. */
	.section .note.gnu.property, "a"
	.p2align 3
	.long	1f - 0f			/* name size */
	.long	4f - 2f			/* descriptor size */
	.long	5			/* NT_GNU_PROPERTY_TYPE_0 */
0:	.asciz	"GNU"
1:	.p2align 3
2:	.long	0xc0000000		/* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
	.long	3f - 5f
5:	.long	FEATURE_BTI | FEATURE_PAC
3:	.p2align 3
4:
#endif

	.section .note.GNU-stack, "", %progbits
