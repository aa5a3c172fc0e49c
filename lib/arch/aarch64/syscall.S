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
 */
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

	.section .note.GNU-stack, "", %progbits
