/* SPDX-License-Identifier: MIT */
/*
 * The interruption protocol of lib/call.c, as a Promela model for spin.
 *
 * Two calls run one after the other on one pooled worker.  The first is
 * cancelled by two parties at once, an application thread
 * (intr_token_cancel) and a deadline fired by the service thread; the
 * second is never cancelled.  Each body picks one way to block (the
 * assembly window, the portable C window, a plain system call after an
 * intr_cancelled() check, a wait only a wake-up action ends, a wait that
 * ignores a wake-up arriving before it started and that only a repeating
 * action ends, or none) and may register a wake-up action; every body
 * defers a finalizer that defers one more.  The processes, and the code each follows:
 *
 *   Worker     pool.c worker_main, call.c intr__call_run and the body,
 *              syscall.c cp_call/cp_once, arch/x86_64/syscall.S
 *              intr__sc_call, arch/generic/syscall.c
 *   Canceller  cancel.c intr_token_cancel -> call.c intr__cancel_locked ->
 *              token.c intr__token_cancel_locked, call.c cancel_one_locked
 *   Service    service.c service_main: deadlines_fire_locked (token.c, call.c),
 *              call.c intr__call_resend_locked
 *   Waker      service.c waker_main, call.c intr__call_wake_take_locked,
 *              intr__call_wake_done_locked
 *   Kernel     the delivery of the worker's pending interrupt signal, and
 *              signal.c handler() running on the worker
 *
 * Properties, one exhaustive search each (model/check.sh, run by
 * make model-check):
 *   lost_cancel   LTL under weak fairness: once the first call is cancelled
 *                 while RUNNING, its body returns (state DONE).
 *   all_return    LTL under weak fairness: the worker gets through both
 *                 calls (the second one's system call completes only if no
 *                 stray signal keeps interrupting it).
 *   no_leak       assertions (-DCHECK_LEAK): a signal handled as the
 *                 current call's is for a call that is RUNNING and
 *                 cancelled; a stale one (previous call's cookie) is
 *                 handled only while the worker unblocks the signal for
 *                 the next body; none is handled in the finalizers or
 *                 between calls; the system call of a call that is not
 *                 cancelled is never interrupted (no EINTR, no cancel exit).
 *   once          assertions (-DCHECK_ONCE): every finalizer runs exactly
 *                 once, with the signal blocked and after every wake-up
 *                 action finished; a wake-up action runs at most once, and
 *                 exactly once if its call was cancelled while RUNNING; a
 *                 repeating one runs at least once if so, never if not.
 *   window        assertions (-DCHECK_WINDOW): with the assembly window, no
 *                 system call is entered once the call's signal has been
 *                 handled, so the window needs no re-send.
 *   no_deadlock   no invalid end state: every process ends or waits at an
 *                 end_* label, where waiting forever is correct.
 *   mask          assertions (-DCHECK_MASK): the worker takes the tree lock
 *                 only with every signal blocked (the application's signal,
 *                 whose handler cancels, closed).
 *   lost_send     LTL under weak fairness (-DSEND_FAILS -DNO_SLOW_RESEND):
 *                 sends fail while the queue of pending signals is full,
 *                 which it is at first and stops being at some point;
 *                 re-sends resend_us apart never come (resend_us far
 *                 away), and the bodies are those that need no re-send
 *                 (window, one-shot wake-up, none; a repeating wake-up
 *                 repeats with the re-sends).  A cancel still reaches the
 *                 first call: the failed send is retried until it goes
 *                 through.
 *   no_leak_send  no_leak's assertions with sends that fail (-DSEND_FAILS).
 *   no_signal     LTL under weak fairness (-DSIGNAL_LOST -DNO_SLOW_RESEND):
 *                 every signal of ours is lost and no re-send comes; the
 *                 bodies are those that need no signal (intr_sleep's
 *                 futex, intr_poll's eventfd, a wake-up action, none).
 *                 A cancel still reaches the first call.
 *   slot          assertions (-DCHECK_SLOT -DNO_SLOW_RESEND): the
 *                 canceller's own step does not signal a call whose wake
 *                 slot it claimed, unless a wait over that slot asked for
 *                 the signal (WS_SIGNAL).  The re-send, left out here,
 *                 may still signal a woken body slow to acknowledge.
 *   stale_slot    LTL under weak fairness (-DSTALE_SLOT -DNO_SLOW_RESEND):
 *                 a body leaves intr_sleep by a siglongjmp, its slot still
 *                 published, then waits in a wrapper (K_JUMP).  Without a
 *                 re-send, the cancel still reaches it: the wrapper asked
 *                 for the signal.
 *   lost_replaced LTL under weak fairness (-DREPLACED -DNO_SLOW_RESEND):
 *                 the application installs its own handler (SA_RESTART)
 *                 over ours before the cancel, and nothing checks the
 *                 handler before the call starts; the cancel's signal
 *                 reaches the application's handler, a system call it
 *                 interrupts is made again.  Without a re-send, the cancel
 *                 still reaches the first call: the canceller looks at the
 *                 handler after its sends and has the service thread
 *                 repair it and send again (App, Repair).  Every pass
 *                 of the service thread looks at the handler, under the
 *                 lock.  The same in place: scope_lost_replaced
 *                 (-DSCOPE).
 *
 * In place (-DSCOPE; call.c, "In place").  The Worker is the caller's
 * own thread, which runs the two calls as scopes of intr_run_here, one
 * after the other, with its own code before, between and after them
 * (W_CALLER).  Its own mask has the interrupt signal open or blocked,
 * chosen at the start (caller_open).  Every tree lock section blocks
 * every signal and puts the caller's mask back at its unlock; the start
 * sets the thread's cookies to the call's under the lock and its unlock
 * opens the signal for the body; the end step reads `sent' (set before
 * every send, and by send_self) and, if set, its unlock opens the signal
 * first (W_FLUSH), so that what is pending is delivered there, then puts
 * the caller's mask back; after the finalizers the cookies are the
 * caller's again (none), the scope's the previous one.  A body may
 * register no finalizer: with no wake-up either, nothing of the user's
 * runs after it, and the end step holds every signal blocked to the
 * unlink's section, whose unlock flushes in its place; the cookies go
 * back after that (call.c `hold').  The bind before the start, which
 * holds every signal blocked to the start's lock, is one section with it
 * here (the token tree is abstracted away).  The caller's own
 * handler may cancel in its code too (Ctrl-C before a scope).  The
 * properties run in this variant as scope_*; no_leak there also asserts
 * that no signal of ours is delivered in the caller's code or the
 * finalizers, and none is pending when a scope returns, whatever the
 * caller's mask.  With -DSTALE_FLAGS the caller may be a body whose
 * window a handler left by siglongjmp, the window's flags still up
 * (sc_active); the scope's start lowers them under its lock, and the
 * handler, which defers wherever the PC is out of the window with the
 * flags up, finds them down when the start's unlock opens the signal:
 * with -DCHECK_MASK the body starts with the signal open, always
 * (scope_stale_mask), and no cancel is lost (scope_stale_lost).
 *
 * User code and masks (call.c, Masks): the application's own signal, whose
 * handler cancels the first call's token (a SIGALRM handler calling
 * intr_token_cancel), is open on the worker while it runs a call's user
 * code: the body (the submitter's mask), and install, the wake-ups it
 * runs, finalizers, restore and release (the same mask, interrupt signal
 * blocked; release may open more).  The handler runs on the worker itself
 * (app_handler, inside the Worker process: the thread is in the handler),
 * wherever that signal is open: in the body, and, if the worker got it
 * wrong, inside a critical section, where it waits for the lock its own
 * thread holds.  Every call's token is unlinked under the lock after
 * release (the skip path too).
 *
 * Abstracted away: time (a deadline or a re-send is due whenever the
 * service thread gets to run; back-off intervals are not modelled), the
 * token tree (cancelling a parent reaches the call's token under the same
 * lock, in the same step), more workers and more calls, the instructions
 * of the window (one flag load, then the syscall instruction), the
 * waker's futex sequence (modelled as waking whenever work is due), lost
 * signal details (RLIMIT_SIGPENDING: model/pending.pml), queued real-time
 * signals, foreign signals but one handler frame (see "A foreign handler
 * frame" below), fork, and the joiner.
 *
 * MUTATION_* macros each put one bug back; make model-mutants checks that
 * each breaks the property named for it in model/check.sh:
 *   NO_RESEND       the service thread never re-sends
 *   NO_REDIRECT     the handler leaves the PC in the window
 *   NO_STATE_CHECK  a cancel signals a call that has already ended
 *   NO_RUNNING_DEL  an ended call stays on the re-send list
 *   BLOCK_LATE      the worker blocks the signal after the end step
 *   FIN_SNAPSHOT    what a finalizer defers is dropped
 *   WAKE_NO_TAKE    the wake-up thread leaves the actions on the call
 *   NO_WAKE_WAIT    the worker does not wait for running wake-up actions
 *   WAIT_LOCKED     the worker waits for them holding the tree lock
 *   RELEASE_OPEN    the worker takes the lock after the release hooks
 *                   without blocking every signal again
 *   SKIP_OPEN       the same on the path of a call skipped at its start
 *   SEND_UNCHECKED  a send the kernel refused counts as sent (no retry)
 *   ONE_SHOT        the wake-up thread drops a repeating action after it
 *                   ran, instead of handing it back to the call
 *   SLOT_NO_PUBLISH intr_sleep never publishes its wake slot
 *   SLOT_NO_RECHECK the futex wait sleeps without comparing the word
 *   SLOT_SIGNAL_TOO the canceller that claimed the slot signals as well
 *   SLOT_NO_MARK    a wrapper's pass does not ask for the signal when it
 *                   finds a slot out (intr__slot_signal)
 *   FD_NO_WAKE      the canceller that claims an eventfd wait's slot does
 *                   not write the eventfd
 *   SCOPE_NO_FLUSH  a scope's end step puts the caller's mask back without
 *                   opening the signal first when something was sent
 *   SCOPE_HOLD_NO_FLUSH  a scope whose end step held every signal blocked
 *                   to the unlink does not open the signal at the unlink's
 *                   unlock when something was sent
 *   SCOPE_HOLD_COOKIES_FIRST  the held unlink puts the caller's cookies
 *                   back before its flush
 *   SCOPE_OPEN_LOCK  a scope's bind and start take the tree lock under the
 *                   caller's own mask: its handler lands on the thread
 *                   that holds the lock and waits for it (no_deadlock)
 *   SCOPE_STALE_FLAGS  a scope lowers the window's flags only after its
 *                   start has opened the signal (scope_stale_mask: a
 *                   cancel's signal delivered there is deferred by
 *                   blocking the signal for the whole body)
 *   NO_POST_CHECK   the canceller does not look at the handler after its
 *                   sends (only the next re-send's check would repair it)
 *   CHECK_UNLOCKED  the service thread's pass looks at the handler before
 *                   it takes the lock (Repair)
 */

#define NCALLS		2

/* struct intr_task.state */
#define QUEUED		0
#define RUNNING		1
#define DONE		2

/* How a body blocks. */
#define K_NONE		0	/* returns at once */
#define K_WINDOW	1	/* intr_read & co: the assembly window */
#define K_GENERIC	2	/* the same built with --disable-syscall-window */
#define K_PLAIN		3	/* intr_cancelled(), then a plain read() */
#define K_WAKE		4	/* a wait that signals do not break, ended by
				 * its intr_on_cancel action */
#define K_REPEAT	5	/* the same, but a wake-up that comes before
				 * the wait started is ignored (a PQcancel
				 * before the query): intr_on_cancel_repeat */
#define K_FUTEX		6	/* intr_sleep: a futex on the reason word,
				 * through the window, with the wake slot */
#define K_JUMP		7	/* intr_sleep left by siglongjmp, its slot
				 * out, then intr_read (-DSTALE_SLOT) */
#define K_FDWAIT	8	/* intr_poll: ppoll through the window on the
				 * call's eventfd, with the wake slot; the
				 * wake (its write) comes after the claim,
				 * and the counter stays set */

/* Where the worker is, as the signal handler would find it. */
#define W_IDLE		0	/* in the pool, or in call_run, signal blocked */
#define W_UNBLOCK	1	/* returning from pthread_sigmask(body mask) */
#define W_BODY		2	/* body code, outside any system call */
#define W_WINDOW	3	/* intr__sc_begin <= PC < intr__sc_end */
#define W_KERNEL	4	/* blocked in the system call */
#define W_EINTR		5	/* the kernel returns -EINTR */
#define W_REDIR		6	/* the handler moved the PC to intr__sc_cancel */
#define W_FIN		7	/* after the body: signal blocked */
#define W_FUTEX		10	/* asleep in FUTEX_WAIT on reason[c] */
#define W_WOKE		11	/* the canceller's FUTEX_WAKE ended it */
#define W_FLUSH		12	/* SCOPE: the end step's unlock opens the
				 * signal to flush what was sent */
#define W_CALLER	13	/* SCOPE: the caller's own code, before,
				 * between and after the scopes */

/* A system call's result. */
#define R_NONE		0
#define R_OK		1
#define R_EINTR		2
#define R_CANCELED	3
#define R_AGAIN		4	/* futex: the word was not 0 */
#define R_TIMEDOUT	5	/* futex: the caller's deadline */

/* struct intr_task.wslot (call.c, syscall.c) */
#define WS_NONE		0
#define WS_FUTEX	1
#define WS_FD		8	/* intr_poll, the ring waits: ppoll + eventfd */
#define WS_WOKEN	2	/* or'ed in: the canceller claimed it */
#define WS_SIGNAL	4	/* or'ed in: a wait over it takes the signal */

#define NOCALL		255

/* The tree lock (lock.c): 0 free, else the holder's _pid + 1. */
byte lk;

/* The calls (struct intr_task; tree lock unless noted). */
byte state[NCALLS];
bool reason[NCALLS];		/* tok.reason != 0 (atomic) */
bool status[NCALLS];		/* the reason when the body ended */
bool acked[NCALLS];		/* atomic */
bool sent[NCALLS];		/* a send was made for it (call.c `sent') */
bool on_list[NCALLS];		/* on the running list */
bool resend_armed[NCALLS];	/* resend_at != 0 */
byte cookie[NCALLS];
byte next_cookie;
bool wakers[NCALLS];		/* one owned intr_on_cancel action */
bool wrepeat[NCALLS];		/* it repeats (intr_on_cancel_repeat) */
bool wake_due[NCALLS];
byte wake_busy[NCALLS];		/* atomic */
byte fins[NCALLS];		/* finalizers on the list (worker only) */
bool deadline_armed = true;	/* intr_token_cancel_after on the first */

/* The worker thread (SCOPE: the caller's). */
bool unblocked;			/* its mask lets the interrupt signal in */
bool caller_open;		/* SCOPE: the caller's own mask lets it in */
byte cookie_cur;		/* TLS intr__cookie_cur */
byte cookie_prev;		/* TLS intr__cookie_prev */
byte wloc = W_IDLE;

/* The kernel: the worker's pending interrupt signal.  SIGUSR1 is a
 * classic signal: one pending instance, and a send while one is pending
 * is dropped (the pending one keeps its details). */
bool sig_pending;
byte sig_cookie;
byte sig_call = NOCALL;		/* ghost: the call it was sent for */

/* Ghosts for the properties. */
bool woken[NCALLS];		/* the wake-up action ran */
byte wake_ran[NCALLS];
bool wake_reg[NCALLS];		/* the body registered an action */
bool waiting[NCALLS];		/* K_REPEAT: the wait has started */
bool wake_running;
byte fin_reg[NCALLS];
byte fin_ran[NCALLS];
bool handled_cur[NCALLS];	/* a signal of the call reached its body */
byte ended;			/* calls the worker is through with */

/* User code and masks (call.c, Masks). */
bool app_open;			/* the application's signal open on the worker */
bool app_fired;			/* its handler ran (once) */

#ifdef REPLACED
/* The handler check after a cancel's sends (call.c intr__cancel_locked,
 * signal.c intr__signal_check_sent_locked) and its repair. */
bool ours_installed = true;	/* our handler is the installed one */
bool repair_due;		/* tree lock: repair and re-send now */
bool cx_sent;			/* lock holder: this cancel sent (sends) */
#endif

/* A send that fails (call.c send_next_locked): while the per-user queue
 * of pending signals is full, a real-time signal is refused. */
#ifdef SEND_FAILS
bool queue_full = true;
#else
bool queue_full;
#endif
bool unsent[NCALLS];		/* the last send was refused: retry it */

/*
 * The wake slot (call.c, "Waits that need no signal").  The body of
 * K_FUTEX publishes it, makes the window's flag check, and the kernel
 * compares the word with 0 and sleeps in one step (its hash-bucket lock,
 * which the wake takes too); the canceller claims it with one
 * compare-and-swap under the tree lock and wakes instead of signalling.
 * A foreign handler over the futex wait is not modelled (Foreign acts on
 * W_KERNEL only): it ends the wait with EINTR, as a signal does.
 */
byte wslot[NCALLS];
bool slot_won;			/* the canceller's swap (lock holder only) */
bool slot_woke[NCALLS];		/* ghost: the canceller claimed the slot */
bool efd[NCALLS];		/* the wake (futex or eventfd) was made: an
				 * eventfd stays readable for the call */

#if defined(CHECK_LOST) || defined(CHECK_RETURN)
/* Re-sends are resend_us apart (1 ms, doubling), critical sections take
 * microseconds: a thread waiting for the lock gets it before the next
 * service pass.  Without this the liveness check would blame the unfair
 * lock for a service thread that re-sends with no pause at all. */
byte want;
#define lock()		want++; atomic { lk == 0 -> lk = _pid + 1; want-- }
#define SERVICE_MAY	(want == 0)
#else
#define lock()		atomic { lk == 0 -> lk = _pid + 1 }
#define SERVICE_MAY	true
#endif
#define unlock()	lk = 0

/*
 * A foreign handler frame around the window (signal.c act, syscall.c
 * cp_once).  Another signal (a profiler's SIGPROF, installed with
 * SA_RESTART and a mask that lets the interrupt signal in) reaches the
 * worker once while a wrapper's system call blocks: the kernel interrupts
 * the system call, rewinds the PC to the system call instruction (inside
 * the window) to restart it, and runs that handler (W_FOREIGN).  If the
 * call's signal is handled there, the PC the handler sees is not in the
 * window; since the thread is inside a wrapper (sc_active), the handler
 * blocks the signal in the frame's context and queues one more to its own
 * thread.  The frame's return (sigreturn) restores the window's mask, and
 * the kernel delivers the pending signal before the restarted system call
 * instruction runs: it moves the PC to the cancel exit.  The handler may
 * also find sc_active with the PC in the wrapper's own code, just around
 * the window (W_BODY): it does the same there, and the wrapper unblocks
 * the signal when it leaves the window (window_leave).  The foreign
 * signal landing in the window before the system call is the same case
 * with no rewinding; it is not modelled separately.  The foreign handler
 * makes no pass through the window of its own: libinterruptible-libc
 * gives a handler over the window libc's functions (point.c), and a
 * point's failure acknowledges nothing.  Each body starts with sc_active
 * and deferred down (call.c), which a handler that left an earlier
 * body's window by siglongjmp may have left up; the model has no
 * siglongjmp, and starts every body with them down.
 *   MUTATION_NO_DEFER  the handler does nothing in the foreign frame
 *                      (window: the restarted system call is entered
 *                      after the call's signal was handled)
 *   MUTATION_NO_HEAL   the wrapper leaves the signal blocked (window: the
 *                      body goes on with the signal blocked)
 */
#define W_FOREIGN	8	/* in the foreign handler, over the window */
#define W_RESTART	9	/* its return: PC on the system call instruction */

bool sc_active;			/* TLS intr__sc_active */
bool deferred;			/* TLS intr__sc_deferred */
bool redo;			/* deliver(): queue one more to this thread */
byte redo_call = NOCALL;

/* The handler, where the PC is not in the window but the thread is in a
 * wrapper: block the signal where it returns, queue another. */
inline frame_defer()
{
	unblocked = false;
	deferred = true;
	redo = true;
	redo_call = sig_call;
	sent[sig_call] = true	/* send_self */
}

/* The end of deliver(): the signal queued by frame_defer. */
inline frame_requeue()
{
	if
	:: redo ->
		redo = false;
		sig_pending = true;
		sig_cookie = cookie_cur;
		sig_call = redo_call
	:: else
	fi
}

/* syscall.c window_leave, after the window. */
inline window_leave()
{
	atomic {
		sc_active = false;
		if
#ifndef MUTATION_NO_HEAL
		:: deferred ->
			deferred = false;
			unblocked = true;
			if
			:: sig_pending -> deliver()
			:: else
			fi
#endif
		:: else
		fi
	}
#ifdef CHECK_WINDOW
	assert(unblocked);
#endif
}

/* call.c send_locked: rt_tgsigqueueinfo to the call's worker. */
inline send_locked(c)
{
	atomic {
#ifdef CHECK_SLOT
	assert(!slot_woke[c] || (wslot[c] & WS_SIGNAL));
#endif
	sent[c] = true;		/* before the send, refused or not */
#ifdef REPLACED
	cx_sent = true;		/* signal.c sends++, refused or not */
#endif
	/* Refused while the queue is full (EAGAIN): nothing is pending, and
	 * the service thread retries (unsent) until a send goes through. */
	if
#ifdef SIGNAL_LOST
	:: true -> unsent[c] = false	/* sent, and lost on the way */
#else
	:: queue_full ->
#ifndef MUTATION_SEND_UNCHECKED
		unsent[c] = true
#else
		skip
#endif
	:: else ->
		unsent[c] = false;
		if
		:: !sig_pending ->
			sig_pending = true;
			sig_cookie = cookie[c];
			sig_call = c
		:: else
		fi
#endif
	fi
	}
}

/* call.c cancel_one_locked. */
inline call_cancel_locked(c)
{
	if
#ifdef MUTATION_NO_STATE_CHECK
	/* Signal any call that has started, ended or not. */
	:: state[c] != QUEUED && cookie[c] != 0 ->
#else
	:: state[c] == RUNNING ->
#endif
		/* The reason is stored; the slot is loaded and claimed with
		 * a compare-and-swap. */
		atomic {
			if
			:: (wslot[c] & (WS_FUTEX | WS_FD)) &&
			   !(wslot[c] & WS_WOKEN) ->
				wslot[c] = wslot[c] | WS_WOKEN;
				slot_woke[c] = true;
				slot_won = true
			:: else -> slot_won = false
			fi
		}
		if
		:: slot_won ->
			/* FUTEX_WAKE on reason[c], or the write of the
			 * eventfd (whose counter then stays set): a waiter
			 * queued now is woken; one not yet queued finds the
			 * word or the counter set */
			atomic {
#ifndef MUTATION_FD_NO_WAKE
				efd[c] = true;
#else
				efd[c] = !(wslot[c] & WS_FD);
#endif
				if
				:: wloc == W_FUTEX && efd[c] -> wloc = W_WOKE
				:: else
				fi
			}
			if
#ifdef MUTATION_SLOT_SIGNAL_TOO
			:: true -> send_locked(c)
#else
			:: wslot[c] & WS_SIGNAL -> send_locked(c)
#endif
			:: else
			fi
		:: else ->
			send_locked(c)
		fi;
		slot_won = false;
#ifndef NO_SLOW_RESEND
		resend_armed[c] = true;	/* also after a wake: the safety net */
#endif
		if
		:: wakers[c] -> wake_due[c] = true
		:: else
		fi
	:: else
	fi
}

/* token.c intr__cancel_locked, for the call's own token. */
inline cancel_locked(c)
{
#ifdef REPLACED
	cx_sent = false;	/* intr__cancel_locked: sends, before */
#endif
	if
	:: !reason[c] ->
		reason[c] = true;
		call_cancel_locked(c)
	:: else
	fi
}

/* After a cancel's sends, under the same lock: if it sent anything
 * (sends moved), one rt_sigaction; the handler replaced, the service
 * thread repairs it and re-sends now. */
inline post_check()
{
#if defined(REPLACED) && !defined(MUTATION_NO_POST_CHECK)
	if
	:: cx_sent && !ours_installed -> repair_due = true
	:: else
	fi;
	cx_sent = false
#else
	skip
#endif
}

/* The application's handler for its own signal, on the worker: it
 * cancels the first call's token (token.c intr_token_cancel: the tree
 * lock, every signal blocked).  It may land wherever the signal is open;
 * once is enough.  If this thread holds the lock, it waits for itself. */
inline app_handler()
{
	if
	:: app_open && !app_fired ->
		app_fired = true;
		lock();
		cancel_locked(0);
		post_check();
		unlock()
	:: true
	fi
}

/* The worker takes the tree lock (intr__tree_lock_blocked): every signal
 * must be blocked; a handler that lands inside the critical section
 * would wait for the lock this thread holds. */
inline worker_lock()
{
#ifdef CHECK_MASK
	assert(!app_open);
#endif
	lock();
	app_handler()
}

/* signal.c handler(), on the worker, with every signal blocked: atomic. */
inline deliver()
{
	sig_pending = false;
	if
	:: cookie_cur != 0 && sig_cookie == cookie_cur ->
		/* Ours, for the body running here; in place also the
		 * flush of a scope's end, its call DONE. */
#ifdef CHECK_LEAK
		assert(wloc == W_FLUSH ||
		       (state[sig_call] == RUNNING && reason[sig_call]));
		assert(wloc != W_IDLE && wloc != W_FIN && wloc != W_CALLER);
#endif
		handled_cur[sig_call] = true;
		if
#ifndef MUTATION_NO_REDIRECT
		:: wloc == W_WINDOW -> wloc = W_REDIR	/* redirect_window */
		:: wloc == W_RESTART -> wloc = W_REDIR	/* the same */
#endif
		:: wloc == W_KERNEL -> wloc = W_EINTR	/* no SA_RESTART */
		:: wloc == W_FUTEX -> wloc = W_EINTR
#ifndef MUTATION_NO_DEFER
		:: (wloc == W_FOREIGN || wloc == W_BODY ||
		    wloc == W_UNBLOCK) && sc_active ->
			frame_defer()
#endif
		:: else
		fi
	:: cookie_prev != 0 && sig_cookie == cookie_prev ->
		/* Stale: the previous call on this worker had ended. */
#ifdef CHECK_LEAK
		assert(wloc == W_UNBLOCK);
#endif
		if
		:: wloc == W_KERNEL || wloc == W_FUTEX -> wloc = W_EINTR
		:: else
		fi
	:: else ->
		/* pass_on(): never one of ours. */
#ifdef CHECK_LEAK
		assert(false);
#endif
		skip
	fi;
	sig_call = NOCALL;
	frame_requeue()
}

/* The kernel delivers the pending signal to the handler installed now.
 * With REPLACED the application may have installed its own over ours
 * (SA_RESTART): it takes the signal, and a system call it interrupted is
 * made again. */
inline take()
{
#ifdef REPLACED
	if
	:: ours_installed -> deliver()
	:: else ->
		sig_pending = false;
		sig_call = NOCALL
	fi
#else
	deliver()
#endif
}

/* The kernel returning from a blocking system call: -EINTR once a handler
 * ran; the uncancelled call's data arrives at any time, the cancelled
 * call's never (nothing else would wake it). */
inline sys_block(c)
{
	if
	:: atomic { wloc == W_EINTR -> r = R_EINTR; wloc = W_BODY }
#ifdef CHECK_LEAK
		assert(reason[c]);
#endif
	:: atomic { c == 1 && wloc == W_KERNEL -> r = R_OK; wloc = W_BODY }
	:: atomic { wloc == W_REDIR -> r = R_CANCELED }	/* restart redirected */
	fi
}

/* arch/x86_64/syscall.S intr__sc_call. */
inline sc_window(c)
{
	r = R_NONE;
	wloc = W_WINDOW;
	atomic {
		/* movl (%rdi), %eax; testl; jnz intr__sc_cancel */
		if
		:: wloc == W_REDIR || reason[c] -> r = R_CANCELED
		:: else
		fi
	}
	/* The moves into the system call registers: a signal may land. */
	if
	:: r == R_NONE ->
		atomic {
			if
			:: wloc == W_REDIR -> r = R_CANCELED
			:: else ->
				/* syscall */
#ifdef CHECK_WINDOW
				assert(!handled_cur[c]);
#endif
				wloc = W_KERNEL
			fi
		}
		if
		:: r == R_NONE -> sys_block(c)
		:: else
		fi
	:: else
	fi;
	if
	:: r == R_CANCELED ->
#ifdef CHECK_LEAK
		assert(reason[c]);
#endif
		skip
	:: else
	fi;
	wloc = W_BODY
}

/* arch/generic/syscall.c intr__sc_call: no window, no redirect. */
inline sc_generic(c)
{
	r = R_NONE;
	if
	:: reason[c] -> r = R_CANCELED
	:: else
	fi;
	if
	:: r == R_NONE ->
		/* syscall(): a signal landing before this step is spent */
		wloc = W_KERNEL;
		sys_block(c)
	:: else
	fi
}

/* syscall.c cp_call around either window: retried after another
 * signal's EINTR, the reason returned (and acknowledged) if cancelled. */
inline cp_call(c, k)
{
	do
	:: /* intr__slot_signal: a slot out asks for the signal too */
	   atomic {
		if
#ifndef MUTATION_SLOT_NO_MARK
		:: wslot[c] != WS_NONE -> wslot[c] = wslot[c] | WS_SIGNAL
#endif
		:: else
		fi
	   }
	   if
	   :: k == K_GENERIC -> sc_generic(c)
	   :: else -> sc_active = true; sc_window(c); window_leave()
	   fi;
	   if
	   :: r == R_EINTR || r == R_CANCELED ->
		if
		:: reason[c] -> acked[c] = true; break
		:: else -> assert(r == R_EINTR)	/* retried */
		fi
	   :: else -> break
	   fi
	od
}

/* The kernel returning from FUTEX_WAIT_BITSET on reason[c]: -EINTR once
 * a handler ran, 0 once the canceller woke it, -ETIMEDOUT at the second
 * call's deadline (the first one's lasts longer than any cancel). */
inline futex_block(c)
{
	if
	:: atomic { wloc == W_EINTR -> r = R_EINTR; wloc = W_BODY }
#ifdef CHECK_LEAK
		assert(reason[c]);
#endif
	:: atomic { wloc == W_WOKE -> r = R_OK; wloc = W_BODY }
#ifdef CHECK_LEAK
		assert(reason[c] && state[c] == RUNNING && slot_woke[c]);
#endif
	:: atomic { c == 1 && wloc == W_FUTEX -> r = R_TIMEDOUT; wloc = W_BODY }
	fi
}

/* The window around the futex system call (sc_window): the flag check,
 * then the kernel's compare of the word and its sleep, one step. */
inline sc_futex(c, ws)
{
	r = R_NONE;
	wloc = W_WINDOW;
	atomic {
		if
		:: wloc == W_REDIR || reason[c] -> r = R_CANCELED
		:: else
		fi
	}
	if
	:: r == R_NONE ->
		atomic {
			if
			:: wloc == W_REDIR -> r = R_CANCELED
			:: else ->
				/* syscall */
#ifdef CHECK_WINDOW
				assert(!handled_cur[c]);
#endif
				if
#ifndef MUTATION_SLOT_NO_RECHECK
				/* the futex compares the reason word; ppoll
				 * finds the eventfd readable */
				:: (ws == WS_FUTEX && reason[c]) ||
				   (ws == WS_FD && efd[c]) -> r = R_AGAIN
#endif
				:: else -> wloc = W_FUTEX
				fi
			fi
		}
		if
		:: r == R_NONE -> futex_block(c)
		:: else
		fi
	:: else
	fi;
	wloc = W_BODY
}

/* syscall.c intr_sleep: publish the slot, then the window (its flag
 * check is the look at the reason after the publish) until the reason
 * is set or the deadline passed; take the slot back. */
inline futex_wait(c, ws)
{
#ifndef MUTATION_SLOT_NO_PUBLISH
	wslot[c] = ws;			/* slot_publish: seq_cst swap */
#endif
	do
	:: sc_active = true; sc_futex(c, ws); window_leave();
		if
		:: reason[c] -> wslot[c] = WS_NONE; acked[c] = true; break
		:: else ->
			if
			:: r == R_TIMEDOUT -> wslot[c] = WS_NONE; break
			:: else		/* another signal's EINTR: again */
			fi
		fi
	od
}

#ifdef STALE_SLOT
/* intr_sleep left by a handler's siglongjmp after it published its slot
 * (sigsetjmp, intr_sleep, SIGALRM): the slot stays out, as the jump came
 * before its take-back; then the body waits in intr_read. */
inline jump_wait(c)
{
	wslot[c] = WS_FUTEX;		/* slot_publish */
	cp_call(c, K_WINDOW)
}
#endif

/* A body that tests intr_cancelled() and then calls plain read(); on
 * EINTR it tests again (the README's advice). */
inline plain_wait(c)
{
	do
	:: atomic { reason[c] -> acked[c] = true }; break
	:: atomic { !reason[c] -> skip };
		/* read(): a signal landing before this step is spent */
		wloc = W_KERNEL;
		sys_block(c);
		if
		:: r == R_EINTR
		:: else -> break
		fi
	od
}

/* wake.c intr_on_cancel (rep false), intr_on_cancel_repeat (rep true):
 * add() under the tree lock. */
inline on_cancel(c, rep)
{
	lock();
	if
	:: !reason[c] -> wakers[c] = true; wake_reg[c] = true; wrepeat[c] = rep
	:: else
	fi;
	unlock();
	if
	:: !wake_reg[c] -> acked[c] = true	/* returns the reason */
	:: else
	fi
}

/* A wait that signals do not break (a futex, a condition variable), with
 * an action that ends it: only the action, run on cancel, lets it go. */
inline wake_wait(c)
{
	on_cancel(c, false);
	if
	:: wake_reg[c] ->
		woken[c];
		acked[c] = true			/* intr_cancelled() */
	:: else
	fi
}

/* A wait that drops a wake-up arriving before it started: only a later
 * run of a repeating action ends it. */
inline repeat_wait(c)
{
	on_cancel(c, true);
	if
	:: wake_reg[c] ->
		waiting[c] = true;	/* the server took the request */
		woken[c];
		acked[c] = true		/* intr_cancelled() */
	:: else
	fi
}

/* The action of intr_on_cancel: ends wake_wait; a repeating one ends
 * repeat_wait only once the wait has started.  wake_ran saturates. */
inline wake_action(c)
{
	wake_running = true;
	if
	:: !wrepeat[c] || waiting[c] -> woken[c] = true
	:: else
	fi;
	if
	:: wake_ran[c] < 3 -> wake_ran[c]++
	:: else
	fi;
	wake_running = false
}

/* call.c run_finalizers. */
inline run_finalizers(c)
{
#ifdef MUTATION_FIN_SNAPSHOT
	/* Run the list as it was: what a finalizer defers is lost. */
	n = fins[c];
	fins[c] = 0;
	do
	:: n > 0 ->
		n--;
#else
	do
	:: fins[c] > 0 ->
		fins[c]--;		/* unlinked before it runs */
#endif
#ifdef CHECK_ONCE
#ifndef SCOPE
		assert(!unblocked);
#endif
		assert(wake_busy[c] == 0 && !wake_running);
#endif
		fin_ran[c]++;
		if
		:: fin_reg[c] == 1 ->	/* the first defers one more */
			fins[c]++;
			fin_reg[c]++
		:: else
		fi
	:: else -> break
	od
}

active proctype Worker()
{
	byte c = 0, k, r, n;
	bool skip_body, took, s, hold;

#ifdef SCOPE
	/* The caller's thread, which has the interrupt signal open or
	 * blocked in its own mask, and the application's signal open. */
	if
	:: caller_open = true
	:: caller_open = false
	fi;
	atomic { unblocked = caller_open; app_open = true; wloc = W_CALLER };
#endif
	do
	:: c < NCALLS ->
#ifndef SCOPE
		/* pool.c worker_main: the call is w->task */
		wloc = W_IDLE;
#else
		/* The caller's code: its own handler may cancel (a
		 * Ctrl-C before the scope). */
		app_handler();
#ifdef STALE_FLAGS
		/* The caller is a body whose window a handler left by
		 * siglongjmp: the window's flags may still be up. */
		if
		:: sc_active = true
		:: skip
		fi;
#endif
		/* here.c intr_run_here: the tree lock blocks every signal
		 * and saves the caller's mask */
#ifndef MUTATION_SCOPE_OPEN_LOCK
		atomic { unblocked = false; app_open = false };
#endif
#endif
		/* call.c intr__call_run: start */
		worker_lock();
		if
		:: reason[c] ->
			state[c] = DONE;
			status[c] = true;
			skip_body = true
		:: else ->
			state[c] = RUNNING;
			next_cookie++;
			cookie[c] = next_cookie;
			on_list[c] = true;	/* running_add */
			skip_body = false
		fi;
#ifdef SCOPE
		/* In place the thread's cookies are the call's before the
		 * unlock, which opens the signal. */
		if
		:: !skip_body ->
			cookie_prev = cookie_cur;
			cookie_cur = cookie[c];
#ifndef MUTATION_SCOPE_STALE_FLAGS
			/* and the window's flags down */
			sc_active = false;
			deferred = false
#else
			skip
#endif
		:: else
		fi;
#endif
		unlock();
		if
		:: !skip_body ->
#ifndef SCOPE
			cookie_prev = cookie_cur;
			cookie_cur = cookie[c];
#endif
			/* pthread_sigmask(body mask): a pending signal is
			 * handled before it returns */
			atomic {
				wloc = W_UNBLOCK;
				unblocked = true;
				app_open = true;	/* submitter's mask */
				if
				:: sig_pending -> take()
				:: else
				fi;
				wloc = W_BODY
			}
#ifdef MUTATION_SCOPE_STALE_FLAGS
			/* The flags down only once the signal is open. */
			atomic { sc_active = false; deferred = false };
#endif
#if defined(SCOPE) && defined(CHECK_MASK)
			/* The body runs with the interrupt signal open. */
			assert(unblocked);
#endif
			app_handler();		/* lands in the body */

			/* The body. */
#ifdef SCOPE
			/* A scope's body may register no finalizer: with no
			 * user code left after it, the end step may hold
			 * every signal blocked to the unlink. */
			if
			:: fins[c]++;		/* intr_defer */
			   fin_reg[c]++
			:: skip
			fi;
#else
			fins[c]++;		/* intr_defer */
			fin_reg[c]++;
#endif
			if
			:: k = K_NONE
#ifndef SIGNAL_LOST
			:: k = K_WINDOW
#endif
			:: k = K_FUTEX
			:: k = K_FDWAIT
#ifdef STALE_SLOT
			:: k = K_JUMP
#endif
			:: c == 0 -> k = K_WAKE
#ifndef NO_SLOW_RESEND
			:: k = K_GENERIC
			:: k = K_PLAIN
			:: c == 0 -> k = K_REPEAT	/* repeats with the re-sends */
#endif
			fi;
			if
			:: k == K_WINDOW || k == K_GENERIC -> cp_call(c, k)
			:: k == K_PLAIN -> plain_wait(c)
			:: k == K_FUTEX -> futex_wait(c, WS_FUTEX)
			:: k == K_FDWAIT -> futex_wait(c, WS_FD)
#ifdef STALE_SLOT
			:: k == K_JUMP -> jump_wait(c)
#endif
			:: k == K_WAKE -> wake_wait(c)
			:: k == K_REPEAT -> repeat_wait(c)
			:: k == K_NONE ->
				if
				:: on_cancel(c, false)	/* never waited on */
				:: skip
				fi
			fi;

			/* pthread_sigmask(quiet mask), then the end step */
#ifndef MUTATION_BLOCK_LATE
			unblocked = false;
#endif
			app_open = false;
			wloc = W_FIN;
			worker_lock();
			state[c] = DONE;
			status[c] = reason[c];
#ifndef MUTATION_NO_RUNNING_DEL
			on_list[c] = false;	/* running_del */
#endif
			wslot[c] = WS_NONE;
			took = wakers[c];
			wakers[c] = false;
			wake_due[c] = false;
			s = sent[c];
			/* In place with no user code left (no wake-up taken,
			 * no finalizer, none running on the wake-up thread):
			 * every signal stays blocked to the unlink's section,
			 * and the cookies stay the call's until its unlock. */
#ifdef SCOPE
			hold = !took && fins[c] == 0 && wake_busy[c] == 0;
#else
			hold = false;
#endif
#ifdef MUTATION_WAIT_LOCKED
			/* Wait for the wake-up thread with the lock held. */
			wake_busy[c] == 0;
#endif
			unlock();
#ifdef MUTATION_BLOCK_LATE
			unblocked = false;
#endif
#ifdef SCOPE
			/* The unlock: if anything was sent, the signal open
			 * first, so every instance queued is delivered before
			 * it returns; then the caller's mask (the body left
			 * it alone here).  Held: every signal stays blocked. */
			if
			:: hold
#ifndef MUTATION_SCOPE_NO_FLUSH
			:: !hold && s ->
				atomic {
					wloc = W_FLUSH;
					unblocked = true;
					/* to the handler installed now */
					if
					:: sig_pending -> take()
					:: else
					fi
				}
#endif
			:: else
			fi;
			if
			:: !hold ->
				atomic { wloc = W_FIN; unblocked = caller_open }
			:: else
			fi;
			/* user code, if any: the caller's mask */
			app_open = !hold;
#else
			app_open = true;	/* user code: submitter's mask */
#endif
			/* wakers_run: a repeating action that ran already
			 * is only freed */
			if
			:: took && status[c] &&
			   !(wrepeat[c] && wake_ran[c] > 0) -> wake_action(c)
			:: else				/* wakers_drop */
			fi;
#ifndef MUTATION_NO_WAKE_WAIT
			wake_busy[c] == 0;	/* futex wait */
#endif
			run_finalizers(c)
#ifdef SCOPE
			;
			/* Back to the caller's cookies: none, the scope's the
			 * previous one (held: after the unlink). */
			if
			:: !hold ->
				cookie_prev = cookie_cur;
				cookie_cur = 0
			:: else
			fi
#endif
		:: else
#ifdef SCOPE
			/* Skipped: the start's unlock put the caller's mask
			 * back. */
			hold = false;
			atomic { unblocked = caller_open; app_open = true }
#endif
		fi;
#ifdef SCOPE
		/* The token unlinked: the tree lock blocks every signal,
		 * and its unlock puts the caller's mask back; held, it
		 * flushes first, as the end step's would have, and then the
		 * cookies go back. */
		atomic { unblocked = false; app_open = false };
		worker_lock();
		unlock();
		if
		:: hold ->
#ifdef MUTATION_SCOPE_HOLD_COOKIES_FIRST
			/* The cookies back before the flush. */
			cookie_prev = cookie_cur;
			cookie_cur = 0;
#endif
			if
#ifndef MUTATION_SCOPE_HOLD_NO_FLUSH
			:: s ->
				atomic {
					wloc = W_FLUSH;
					unblocked = true;
					if
					:: sig_pending -> take()
					:: else
					fi
				}
#endif
			:: else
			fi;
#ifndef MUTATION_SCOPE_HOLD_COOKIES_FIRST
			cookie_prev = cookie_cur;
			cookie_cur = 0
#else
			skip
#endif
		:: else
		fi;
		atomic { unblocked = caller_open; app_open = true; wloc = W_CALLER };
#ifdef CHECK_LEAK
		/* Nothing of the scope's is left for the caller's code. */
		assert(!sig_pending);
#endif
#else
		/* The release hooks (user code, which may open signals), also
		 * for a call skipped at its start; then the quiet mask again;
		 * then the call's token is unlinked under the lock. */
		app_open = true;
		if
		:: skip_body ->
#ifndef MUTATION_SKIP_OPEN
			app_open = false
#else
			skip
#endif
		:: else ->
#ifndef MUTATION_RELEASE_OPEN
			app_open = false
#else
			skip
#endif
		fi;
		worker_lock();
		unlock();
#endif
#ifdef CHECK_ONCE
		assert(fins[c] == 0 && fin_ran[c] == fin_reg[c]);
#ifdef SCOPE
		assert(skip_body -> fin_reg[c] == 0 :
		       (fin_reg[c] == 0 || fin_reg[c] == 2));
#else
		assert(fin_reg[c] == (skip_body -> 0 : 2));
#endif
		assert(wrepeat[c] || wake_ran[c] <= 1);
		assert(!wake_reg[c] ||
		       (status[c] -> wake_ran[c] >= 1 : wake_ran[c] == 0));
#endif
#ifndef SCOPE
		wloc = W_IDLE;
#endif
		ended++;
		c++
	:: else -> break
	od
}

/* token.c intr_token_cancel on the first call's token, from another
 * thread (the signal blocked while it holds the lock). */
active proctype Canceller()
{
	lock();
	cancel_locked(0);
	post_check();
	unlock()
}

/* service.c service_main: it sleeps in read() on its timerfd, which is
 * armed while a deadline or a re-send is pending. */
active proctype Service()
{
	byte c;

end_idle:
	do
	:: atomic {
		lk == 0 && SERVICE_MAY &&
		(deadline_armed ||
		 (on_list[0] && resend_armed[0] && !acked[0]) ||
		 (on_list[1] && resend_armed[1] && !acked[1])) ->
			lk = _pid + 1
	   }
		/* deadlines_fire_locked */
		if
		:: deadline_armed ->
			deadline_armed = false;
			cancel_locked(0);
			post_check()
		:: else
		fi;
		/* intr__call_resend_locked: the running list */
		c = 0;
		do
		:: c < NCALLS ->
#ifndef MUTATION_NO_RESEND
			if
			:: on_list[c] && resend_armed[c] && !acked[c] ->
				send_locked(c);
				/* repeating actions: due again */
				if
				:: wakers[c] -> wake_due[c] = true
				:: else
				fi
			:: else
			fi;
#endif
			c++
		:: else -> break
		od;
		unlock()
	od
}

/* service.c waker_main: woken by a kick when wake-ups are due. */
active proctype Waker()
{
	byte c;

end_idle:
	do
	:: (on_list[0] && wake_due[0]) || (on_list[1] && wake_due[1]) ->
		/* the futex wait on wake_seq returned */
		lock();
		/* intr__call_wake_take_locked: the worker may have taken
		 * the actions meanwhile */
		if
		:: on_list[0] && wake_due[0] -> c = 0
		:: on_list[1] && wake_due[1] -> c = 1
		:: else -> c = NOCALL
		fi;
		if
		:: c != NOCALL ->
			wake_due[c] = false;
#ifndef MUTATION_WAKE_NO_TAKE
			wakers[c] = false;
#endif
			wake_busy[c]++;
			unlock();
			wake_action(c);		/* intr__wakers_repeat */
			lock();
			/* intr__call_wake_done_locked: a repeating action
			 * goes back on a call that still runs */
#ifndef MUTATION_ONE_SHOT
			if
			:: wrepeat[c] && state[c] == RUNNING -> wakers[c] = true
			:: else
			fi;
#endif
			wake_busy[c]--;
			unlock()
		:: else -> unlock()
		fi
	od
}

/* The kernel delivers the worker's pending signal whenever the worker's
 * mask lets it in; the handler runs on the worker before anything else. */
active proctype Kernel()
{
end_idle:
	do
	:: atomic { sig_pending && unblocked -> take() }
	od
}

/* The foreign signal of the frame block above: once, on a worker blocked
 * in a wrapper's system call. */
active proctype Foreign()
{
	bool was;

end_idle:
	atomic {
		wloc == W_KERNEL && sc_active ->
		was = unblocked;
		wloc = W_FOREIGN
	}
	/* Its handler returns: the window's mask is back, and what is
	 * pending is delivered before the system call is made again. */
	atomic {
		unblocked = was;
		wloc = W_RESTART;
		if
		:: sig_pending && unblocked -> take()
		:: else
		fi;
		if
		:: wloc == W_RESTART ->
#ifdef CHECK_WINDOW
			assert(!handled_cur[(cookie_cur == cookie[0] -> 0 : 1)]);
#endif
			wloc = W_KERNEL
		:: else		/* W_REDIR: the cancel exit */
		fi
	}
}

#ifdef SEND_FAILS
/* service.c service_main's pass, as far as refused sends go (call.c
 * intr__call_resend_locked -> send_next_locked): a call whose last send
 * was refused is retried whenever the service thread runs, whatever
 * resend_us, until a send goes through or the body acknowledges. */
active proctype Retry()
{
	byte c;

end_idle:
	do
	:: atomic {
		lk == 0 && SERVICE_MAY &&
		((on_list[0] && unsent[0] && !acked[0]) ||
		 (on_list[1] && unsent[1] && !acked[1])) ->
			lk = _pid + 1
	   }
		c = 0;
		do
		:: c < NCALLS ->
			if
			:: on_list[c] && unsent[c] && !acked[c] ->
				send_locked(c);
				/* the pass runs repeating actions too */
				if
				:: wakers[c] -> wake_due[c] = true
				:: else
				fi
			:: else
			fi;
			c++
		:: else -> break
		od;
		unlock()
	od
}

/* The per-user queue of pending signals: full at first, it gets room at
 * some point (other signals are taken) and keeps it. */
active proctype Queue()
{
	queue_full = false
}
#endif

#ifdef REPLACED
/* The application installs its own handler over ours, once, before the
 * cancel (after it, only the slow re-send repairs it: lost_cancel). */
active proctype App()
{
	atomic { !reason[0] -> ours_installed = false }
}

/* service.c service_main's pass: under the lock, intr__signal_check
 * installs ours again, and with repair_due every cancelled running call
 * that has not acknowledged gets its signal again
 * (intr__call_resend_locked, all).  A pass comes for the repair, or for
 * anything else (another token's deadline, another call's re-send) at
 * any time: every pass looks at the handler.
 *   MUTATION_CHECK_UNLOCKED  the pass looks before it takes the lock
 *                            (lost_replaced: its repair falls between a
 *                            cancel's send, taken by the application's
 *                            handler, and that cancel's look) */
active proctype Repair()
{
	byte c;

end_idle:
	do
#ifdef MUTATION_CHECK_UNLOCKED
	:: atomic { !ours_installed -> ours_installed = true }
	:: atomic { lk == 0 && SERVICE_MAY && repair_due -> lk = _pid + 1 }
#else
	:: atomic {
		lk == 0 && SERVICE_MAY && (repair_due || !ours_installed) ->
			lk = _pid + 1
	   }
#endif
		ours_installed = true;
		if
		:: repair_due ->
			repair_due = false;
			c = 0;
			do
			:: c < NCALLS ->
				if
				:: on_list[c] && reason[c] && !acked[c] ->
					send_locked(c)
				:: else
				fi;
				c++
			:: else -> break
			od
		:: else
		fi;
		unlock()
	od
}
#endif

#ifdef CHECK_RETURN
ltl all_return { <> (ended == NCALLS) }
#endif
#ifdef CHECK_LOST
ltl lost_cancel { [] ((reason[0] && state[0] == RUNNING) -> <> (state[0] == DONE)) }
#endif
