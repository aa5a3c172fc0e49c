/* SPDX-License-Identifier: MIT */
/*
 * struct intr__sc_ret intr__sc_call(const int *flag, long nr, long a1, ...,
 *				     long a6)
 *
 * The cancellable system call window, x86-64.  From intr__sc_begin up to
 * (not including) intr__sc_end, the cancel flag has not been seen set and
 * the system call has not returned.  If the interrupt signal lands anywhere
 * in that range while the call is cancelled, the handler moves the program
 * counter to intr__sc_cancel, which leaves without entering, or
 * re-entering, the kernel.  A signal that interrupts the blocked system
 * call itself finds the PC at intr__sc_end (the kernel returns -EINTR
 * there, since the handler has no SA_RESTART), so a result the kernel
 * produced is never discarded.  The flag is the call token's reason: the
 * canceller sets it before it sends the signal.
 *
 * Two values come back, in rax:rdx (a struct of two longs): the system
 * call's result and 0, or -ECANCELED and 1 from the cancel exit, so that
 * the caller never mistakes the kernel's own -ECANCELED for the exit.
 *
 * Arguments: rdi flag, rsi nr, rdx a1, rcx a2, r8 a3, r9 a4, stack a5 a6.
 * Kernel:    rax nr, rdi rsi rdx r10 r8 r9; rcx and r11 are clobbered.
 *
 * Built with -fcf-protection (__CET__), the entry is an indirect branch
 * target (endbr64) and the object says so in its GNU property note, as
 * the compiler's objects do: the linker marks the library IBT/SHSTK only
 * if every object is.  The window returns through its caller's own call,
 * so the shadow stack needs nothing more.
 */
	.text
	.globl	intr__sc_call
	.hidden	intr__sc_call
	.type	intr__sc_call, @function
	.globl	intr__sc_begin
	.hidden	intr__sc_begin
	.globl	intr__sc_end
	.hidden	intr__sc_end
	.globl	intr__sc_cancel
	.hidden	intr__sc_cancel
intr__sc_call:
#ifdef __CET__
	endbr64
#endif
intr__sc_begin:
	movl	(%rdi), %eax
	testl	%eax, %eax
	jnz	intr__sc_cancel
	movq	%rsi, %rax
	movq	%rdx, %rdi
	movq	%rcx, %rsi
	movq	%r8, %rdx
	movq	%r9, %r10
	movq	8(%rsp), %r8
	movq	16(%rsp), %r9
	syscall
intr__sc_end:
	xorl	%edx, %edx		/* the kernel's result */
	ret
intr__sc_cancel:
	movq	$-125, %rax		/* -ECANCELED */
	movl	$1, %edx		/* from the cancel exit */
	ret
	.size	intr__sc_call, . - intr__sc_call

#ifdef __CET__
	/* NT_GNU_PROPERTY_TYPE_0: GNU_PROPERTY_X86_FEATURE_1_AND, IBT and
	 * SHSTK. */
	.section .note.gnu.property, "a"
	.p2align 3
	.long	1f - 0f			/* name size */
	.long	4f - 2f			/* descriptor size */
	.long	5			/* NT_GNU_PROPERTY_TYPE_0 */
0:	.asciz	"GNU"
1:	.p2align 3
2:	.long	0xc0000002		/* GNU_PROPERTY_X86_FEATURE_1_AND */
	.long	3f - 5f			/* its size */
5:	.long	3			/* IBT | SHSTK */
3:	.p2align 3
4:
#endif

	.section .note.GNU-stack, "", @progbits
