/* SPDX-License-Identifier: MIT */
/*
 * The interruption protocol: one call's life on the thread that runs it
 * (a pool worker, or the caller's own in place), and the rules under which
 * a signal may be sent to that thread.
 *
 * States (struct intr_task.state, changed only under the tree lock):
 *
 *   QUEUED --start--> RUNNING --body returns--> DONE
 *      \______________start, already cancelled___^
 *
 *   QUEUED   submitted; the body has not started.  No signal is sent.
 *   RUNNING  the body runs with the interrupt signal unblocked.  A cancel
 *            that reaches the call's token sends one signal, and the call
 *            stays on the running list, where the service thread re-sends
 *            with back-off until the body acknowledges (intr_cancelled()
 *            returns true) or returns.
 *   DONE     the body has returned (or never ran).  No signal is ever sent
 *            for this call again.  Finalizers run in this state, with the
 *            interrupt signal blocked.
 *
 * The cancel side sets the token's reason and, if the call is RUNNING,
 * sends the signal, both under the tree lock.  The worker side:
 *   start:  under the lock, reads the reason.  Cancelled: DONE, the body is
 *           skipped.  Otherwise RUNNING; then it unblocks the signal and
 *           calls the body.
 *   end:    blocks the signal, then under the lock moves to DONE and reads
 *           the reason, which is the call's status.
 *
 * No cancel is lost.  A cancel takes the lock either before the start
 * (the worker then reads the reason and skips the body), between start and
 * end (the call is RUNNING: a signal is sent, and re-sent until the body
 * acknowledges or returns, so a body blocked in any interruptible system
 * call gets EINTR even if the first signal arrived just before it entered
 * the kernel), or after the end (the body had already returned: by
 * definition the call was not cancelled, and its status says 0).
 *
 * No cancel leaks into later code on the worker.  Every signal for a call
 * is sent under the lock while the call is RUNNING, hence before the end
 * step takes the lock.  At that point the signal is already blocked, so a
 * signal sent late is not delivered during the finalizers or while the
 * worker idles: it stays pending until the worker next unblocks the signal
 * for another body.  Unblocking delivers pending signals before
 * pthread_sigmask() returns, i.e. before that body has made any system
 * call, and the handler ignores them (signal.c): their cookie is that of
 * the previous call on this worker.  The interruptible window of every body
 * therefore sees only signals sent for that body.
 *
 * The re-send list holds exactly the RUNNING calls, so the service thread
 * can never signal a call that has ended or a worker that moved on.  Each
 * re-send also makes the call's wake-up actions due again: the repeating
 * ones (intr_on_cancel_repeat, wake.c) are handed back to the call after
 * they ran, and only while it is RUNNING, so one that ran too early for
 * the wait it ends runs again with the signal's back-off, until the body
 * acknowledges or returns, and none runs after the end step.
 *
 * Waits that need no signal (intr_sleep, intr_poll, the io_uring waits;
 * slot.c).  Such a wait sleeps on a kernel object the canceller can wake
 * (a futex on the call's own reason word; ppoll on an eventfd of the
 * call's own), and says so in the call's wake slot (t->wslot): the body
 * stores the slot, then looks at the reason (the window's flag check),
 * then waits, and takes the slot back after.  The cancel, under the lock,
 * stores the reason, then loads the slot; if a wait is published, it
 * claims the slot with a compare-and-swap (WOKEN) and wakes the word
 * instead of signalling.  The body's take-back is a swap too, so exactly
 * one side wins, and the winner decides: the canceller's win is "woken,
 * no signal", the body's is "the wait is over, signal as before".  A body
 * that finds, at its take-back, that the canceller won reports the reason
 * whatever ended its wait (a deadline that came with the cancel): the
 * canceller woke it instead of signalling, so nothing else will tell its
 * next plain call.
 *
 * No cancel is lost by it.  Both sides store, then load the other's
 * word, sequentially consistent (with fences for qemu-user), so one of
 * the loads sees the other's store.  The canceller saw no slot: it
 * signals, as above, and the body's look at the reason, made after its
 * store of the slot, sees the cancel (the signal meanwhile is an EINTR or
 * takes the cancel exit).  The canceller claimed the slot: the body has
 * not taken it back, so it is before its wait, in it, or just out of it,
 * and it reads the reason after the wait in every case; the kernel
 * compares the futex word with 0 under its hash-bucket lock, which the
 * canceller's wake takes after the store, so a body not yet queued
 * returns at once and one queued is woken; an eventfd's counter, once
 * written, stays set, so a ppoll not yet asleep finds it readable.  A handler over the wait on
 * the same thread (SIGPROF, or the application's own cancelling one)
 * ends the wait with EINTR; the body then reads the reason.  The body
 * took the slot back first: the canceller's swap fails and it signals,
 * as above.
 *
 * A slot can be out while the thread waits elsewhere: a handler runs over
 * the futex wait and blocks, or a handler's siglongjmp left the sleep
 * before its take-back.  Every wait that only the signal ends (the
 * wrappers' and libinterruptible-libc's passes, the io_uring waits) first
 * marks a slot it finds out SIGNAL (intr__slot_signal), and the canceller
 * that claims a slot so marked wakes and signals.  The mark and the claim
 * are both read-modify-writes of the slot: the mark first, the claim sees
 * it and signals; the claim first, the mark reads from it, after the
 * reason's store, and the wait's look at the reason that follows sees
 * the cancel.  A signal-free wait that finds the slot taken marks it so
 * too and waits on the signal.  What no mark covers is a plain call in
 * such a handler or after such a jump: it gets the cancel at the first
 * re-send (resend_us), which stays armed after a wake for that reason;
 * every wait that returns acknowledges, and the re-send then finds
 * nothing to do.  Nor is a wait signal-free in a body that blocked the
 * interrupt signal itself: that body holds its cancels off, and its waits
 * go on until it unblocks it.
 *
 * Nor does a wake leak.  The canceller wakes only the call it found
 * RUNNING, on that call's own reason word, which no other call waits on,
 * and the end step clears the slot under the lock, after which no
 * canceller acts on the call (each call has its own slot: the clear is
 * for the code after the body, not the next one).  A sleep that took no
 * signal leaves none behind for the finalizers or the next call.
 *
 * A signal is not the cancel.  Whoever sent it (another process may send
 * the interrupt signal too), the handler acts for a body only when that
 * call's reason is set, which the canceller stores before it sends
 * (signal.c); anything else at most interrupts a system call, which the
 * wrappers make again.  A cancel's signal that lands in another signal's
 * handler running over a wrapper's window is deferred, through that
 * handler's mask, to the window itself.  The window's flags say the
 * window is open only while it is: a handler over it gets libc's own
 * functions from libinterruptible-libc, not points that would pass
 * through the window again (point.c), and every body starts with them
 * down, so a handler that left an earlier body's window by siglongjmp
 * cannot have later cancels deferred to a window that is gone.  (Within
 * the body it jumped in, they stay up until its next pass through the
 * window, whose leaving puts them down.)
 *
 * A send can fail.  The kernel refuses a real-time signal while the
 * per-user queue of pending signals is full (EAGAIN); a classic one it
 * delivers without its details, which the handler recognises (signal.c).
 * A refused send is not a send: the call stays on the running list, and
 * the service thread tries again retry_gap later (1 ms, doubling up to
 * RESEND_CAP_NS), not resend_us later, until a send goes through or the
 * body acknowledges or returns; the re-sends' back-off starts from the
 * first send that went through.  The argument above holds from that send
 * on.  Before it, the reason is set and the wake-up actions run (they need
 * no signal), so no cancel is lost; one can only be late, for as long as
 * the queue stays full.
 *
 * fork().  A child has only the thread that forked.  The parent's other
 * calls end there as cancelled (end_in_child), their workers gone; the
 * call whose user code forked (here) goes on as the child's, and so do
 * the calls a scope runs inside of (its chain of outer calls, the same
 * thread's): the list of running calls holds them alone, with the
 * child's tid, so the argument above holds in the child for them.  Their
 * eventfds are the parent's open files,
 * and the child closes its copies, so a completion in the child writes
 * nothing the parent sees.  Wake-up actions the parent's wake-up thread
 * was running at the fork stay the parent's: the child does not wait for
 * them (wake_busy is zeroed), or its worker would wait for ever.  Its
 * deadlines and re-sends need a service thread, which fork_child
 * (lifecycle.c) starts when the body goes on.  The parent's calls are
 * found by their task handles, and, for a join the forking thread waits
 * in (a handler forked over it), by that thread's list of the tasks it
 * awaits: run_interruptible's worker takes the handle out before it
 * releases the task (task.c), and the join would otherwise wait for a
 * release no one in the child makes.
 *
 * Unloading (intr__fini, lifecycle.c) goes ahead only with no call
 * running, pooled or in place (a scope keeps no worker busy: lifecycle.c
 * counts them),
 * and for good: the pool refuses calls (-EAGAIN) and the service threads,
 * once stopped, refuse to start, so a call that comes in later starts no
 * thread in code about to be unmapped.  A cancel then finds no RUNNING
 * call and sends nothing.
 *
 * Masks.  The worker runs the library's code, and takes the tree lock,
 * only with every signal blocked but the synchronous faults (the quiet
 * mask): a signal handler that cancels takes the same lock, and must never
 * interrupt the thread that holds it.  A call's user code runs under the
 * mask of the thread that submitted it (t->mask, saved by the tree lock
 * intr_spawn takes anyway): the body with the interrupt signal open,
 * everything else (install, the wake-ups the worker runs, finalizers,
 * restore, release) with it blocked.  Any of these may change the mask;
 * none is followed by the lock before the worker has set the quiet mask
 * again: after the body, before the end step; after the last hook
 * (release, also for a call skipped at the start), before the token is
 * unlinked.  So the end step and the argument above are unchanged: the
 * interrupt signal is blocked from the end of the body until the next
 * body unblocks it, whatever the application's mask.
 *
 * In place (intr_run_here, here.c).  The host of a call is a pool worker
 * or the caller's own thread; the states, the sends and the handler are
 * the same, and so is the argument above, but for the masks.  The
 * caller's thread has its own mask, which may block the interrupt signal
 * or leave it open, and goes on running the caller's code after the
 * call.  So:
 *   start:  the bind's lock (here.c) blocks every signal and saves the
 *           caller's mask, and its unlock leaves them blocked for the
 *           start's lock, with only the library's code between: no
 *           signal is delivered on this thread from the bind to the
 *           start's unlock.  Under that lock the call becomes RUNNING,
 *           and this thread's intr__current and cookies become the
 *           call's before the unlock, from which a signal for it may be
 *           delivered, and the window's flags go down (an outer body's
 *           may be left up by a handler's siglongjmp: the handler would
 *           defer that signal by blocking it for the whole body).  The
 *           unlock sets the body's mask: the caller's with the interrupt
 *           signal open (blocked until the install hooks have run, if
 *           there are any).  `opened' says the caller had it blocked.
 *   end:    the lock saves the mask the body left.  Every send for the
 *           call is made under the lock while it is RUNNING, and sets
 *           `sent' first (send_self, from the handler on this very
 *           thread during the body, sets it too): when the end step holds
 *           the lock, every send's system call has returned, and none
 *           follows.  If nothing was sent, nothing is queued for the call.
 *           If something was, the unlock opens the interrupt signal, so
 *           the kernel delivers every queued instance (one for a classic
 *           signal, several for a real-time one) before that system call
 *           returns; the handler knows them by the call's cookie, still
 *           this thread's, and does nothing (the call is DONE, the
 *           window's flags are down).  Then the mask is the body's again,
 *           with the interrupt signal blocked if the scope opened it.
 *           The finalizers, the wake-ups run here and the hooks follow,
 *           under that mask: no signal for the call is left to reach
 *           them, nor the caller's code after the scope.  Held (`hold'):
 *           with none of these to run, and no wake-up running on the
 *           wake-up thread (none can start: DONE), the unlock keeps
 *           every signal blocked to the unlink's lock, and that
 *           section's unlock does all of the above instead, the
 *           cookies and the flags still the call's; the next step
 *           follows it.
 *   after:  intr__current and the cookies go back to the call the scope
 *           ran inside of, if any (a pooled body, another scope), with
 *           the scope's cookie as the previous one.  While the scope ran,
 *           that call's signals were still known for ours (signal.c walks
 *           the chain of outer calls), so a cancel of the outer call
 *           interrupts the scope's system calls and reaches no handler of
 *           the application.
 * The scope undoes exactly its own changes to the mask; a change the body
 * made is the caller's own code's, and stays.
 *
 * model/interrupt.pml follows this file, token.c, service.c, signal.c and
 * the window step by step; make model-check has spin verify, over every
 * interleaving of two calls on one worker, that no cancel is lost, none
 * leaks, finalizers run exactly once, nothing deadlocks, the worker takes
 * the lock only with every signal blocked (a handler that cancels lands
 * on it wherever the application's mask lets it in), a refused send
 * still reaches a body that needs no re-send, a signal-free wait ends
 * on its cancel with every signal of ours lost, and a cancel whose signal
 * went to a handler the application installed over ours is repaired and
 * sent again without waiting for a re-send (intr__cancel_locked looks at
 * the handler after its sends, and the service thread looks only under
 * the lock, so no repair of its own hides a send that went astray from
 * that look).  Change the protocol here, change the model with it.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

/* The longest re-send interval, unless resend_us is longer still. */
#define RESEND_CAP_NS 100000000ull
/* A send that failed is tried again this soon (or after resend_us, if that
 * is sooner), then at doubling intervals up to RESEND_CAP_NS. */
#define RETRY_FIRST_NS 1000000ull

/* The call intr__call_run runs on this thread, hooks included. */
static INTR_TLS struct intr_task *here;
/* This thread's kernel id, once asked (intr__call_tid). */
static INTR_TLS pid_t self_tid;
/* The tasks this thread waits for in a join (task.c), the innermost
 * first, through awaited_outer (a handler's join over another).  A join
 * a handler's siglongjmp left stays in the list until an outer join
 * ends: its task is never freed (only its join would free it). */
static INTR_TLS struct intr_task *awaited;

static struct intr_task *running;	/* RUNNING calls */
static uint64_t next_cookie;

static void running_add(struct intr_task *t)
{
	t->run_prev = NULL;
	t->run_next = running;
	if (running)
		running->run_prev = t;
	running = t;
}

static void running_del(struct intr_task *t)
{
	if (t->run_prev)
		t->run_prev->run_next = t->run_next;
	else
		running = t->run_next;
	if (t->run_next)
		t->run_next->run_prev = t->run_prev;
	t->run_next = t->run_prev = NULL;
}

/* Signal the worker of RUNNING call t.  Tree lock held.  Returns 0, or
 * the send's error: -EAGAIN for a real-time signal while the queue of
 * pending signals (RLIMIT_SIGPENDING) is full. */
static int send_locked(struct intr_task *t)
{
	/* Before the send: the end step of a scope reads it (in place). */
	atomic_store(&t->sent, true);
	return intr__signal_send(t->tid, t->cookie, t->ours_pending);
}

/* Send to call t and set when the service thread comes back to it.  A
 * send that went through is followed by the re-sends, resend_us apart and
 * doubling (first: the cancel's own send).  One that failed is tried
 * again at once, retry_gap apart, whatever resend_us: until it goes
 * through, nothing carries the cancel to a body blocked in a system call.
 * Tree lock held. */
static void send_next_locked(struct intr_task *t, uint64_t now, bool first)
{
	uint64_t cap;

	cap = (uint64_t)intr__cfg.resend_us * 1000u;
	if (cap < RESEND_CAP_NS)
		cap = RESEND_CAP_NS;
	if (!send_locked(t)) {
		/* Back off only after a send that went through. */
		if (!first && !t->retry_gap) {
			t->resend_gap *= 2;
			if (t->resend_gap > cap)
				t->resend_gap = cap;
		}
		t->retry_gap = 0;
		t->resend_at = now + t->resend_gap;
		return;
	}
	if (!t->retry_gap) {
		t->retry_gap = t->resend_gap < RETRY_FIRST_NS ?
			       t->resend_gap : RETRY_FIRST_NS;
	} else {
		t->retry_gap *= 2;
		if (t->retry_gap > RESEND_CAP_NS)
			t->retry_gap = RESEND_CAP_NS;
	}
	t->resend_at = now + t->retry_gap;
}

/* A cancel has just reached this call's token.  Tree lock held; may run in
 * a signal handler on any thread. */
static void cancel_one_locked(struct intr_task *t)
{
	uint64_t now;
	int s;

	if (t->state != INTR_RUNNING)
		return;
	now = intr__now_ns();
	t->resend_gap = (uint64_t)intr__cfg.resend_us * 1000u;
	t->retry_gap = 0;
	/* The reason is stored (token.c); now the slot is loaded.  The body
	 * stores the slot, then loads the reason: with both orders
	 * sequentially consistent one of the loads sees the other's store.
	 * The fence is for qemu-user, as the body's (syscall.c). */
	atomic_thread_fence(memory_order_seq_cst);
	s = atomic_load(&t->wslot);
	if ((s & INTR_WS_KIND) && !(s & INTR_WS_WOKEN) &&
	    atomic_compare_exchange_strong(&t->wslot, &s, s | INTR_WS_WOKEN)) {
		/* Ours: the body's clear has not run, so it is in the wait,
		 * about to make it (the kernel will find the word set), or
		 * just out of it, and reads the reason next.  The task lives:
		 * the worker needs the lock to end. */
		intr__slot_wake_locked(t, s);
		if (s & INTR_WS_SIGNAL) {
			/* A wait over it on the same thread takes the
			 * signal. */
			send_next_locked(t, now, true);
		} else {
			/* No signal.  The re-send is armed all the same: a
			 * body that left the wait by a handler's siglongjmp
			 * does not acknowledge, and a plain call it blocks
			 * in next has only the signal to end it.  One that
			 * acknowledged (every intr_sleep that returns) is
			 * skipped when it comes due. */
			t->resend_at = now + t->resend_gap;
		}
	} else {
		send_next_locked(t, now, true);
	}
	intr__timer_arm_locked(t->resend_at);
	if (t->wakers) {
		/* Wake-up actions (wake.c): the wake-up thread, now. */
		t->wake_due = true;
		intr__timer_kick();
	}
}

/* Cancel the subtree of token root with reason, and tell every call whose
 * own token it reaches.  Tree lock held; may run in a signal handler on
 * any thread. */
void intr__cancel_locked(struct intr_token *root, int reason)
{
	unsigned long sends = intr__signal_sends();
	struct intr_task *t, *next;

	for (t = intr__token_cancel_locked(root, reason); t; t = next) {
		next = t->cx_next;
		t->cx_next = NULL;
		cancel_one_locked(t);
	}
	/* No call looks at the handler before it starts: the application
	 * may have installed its own over ours since.  If a signal just
	 * sent went there, the service thread repairs ours and sends
	 * again at once.  It looks at the handler only under this lock:
	 * had it put ours back between the sends and this look, which
	 * then would find it, nothing would be sent again before
	 * resend_us.  The pass clears the timer's mark under this
	 * lock: either it has not yet and sees the repair due, or it has
	 * and this arms the timer anew. */
	if (intr__signal_check_sent_locked(sends))
		intr__timer_arm_locked(intr__now_ns());
}

/* Take the wake-up actions of one RUNNING call that a cancel made due, for
 * the wake-up thread; the call cannot end before intr__call_wake_done_locked.
 * Tree lock held. */
struct intr_task *intr__call_wake_take_locked(struct intr__waker **list)
{
	struct intr_task *t;

	for (t = running; t; t = t->run_next) {
		if (!t->wake_due)
			continue;
		t->wake_due = false;
		*list = t->wakers;
		t->wakers = NULL;
		atomic_fetch_add(&t->wake_busy, 1);
		return t;
	}
	return NULL;
}

/* The wake-up thread ran what it took.  The repeating actions it hands
 * back (again) go back on a call that is still RUNNING, for the next
 * re-send; those of a call that has ended are returned, for the caller to
 * free without the lock.  Waking the worker under the tree lock keeps t
 * alive until then: the worker needs the lock to end. */
struct intr__waker *intr__call_wake_done_locked(struct intr_task *t,
					       struct intr__waker *again)
{
	struct intr__waker *last;

	if (again && t->state == INTR_RUNNING) {
		for (last = again; last->next; last = last->next)
			;
		last->next = t->wakers;
		t->wakers = again;
		again = NULL;
	}
	if (atomic_fetch_sub(&t->wake_busy, 1) == 1)
		intr__futex_wake(&t->wake_busy, 1);
	return again;
}

/* Re-send to every cancelled call that is due (all: every one, due or
 * not: our handler was just repaired) and has not acknowledged, and retry
 * the sends that failed.  Returns the next time one is due, or 0.  Tree
 * lock held. */
uint64_t intr__call_resend_locked(uint64_t now, bool all)
{
	uint64_t next = 0;
	struct intr_task *t;

	for (t = running; t; t = t->run_next) {
		if (!t->resend_at || atomic_load(&t->acked))
			continue;
		if (t->resend_at <= now || all) {
			send_next_locked(t, now, false);
			if (t->wakers) {
				/* Repeating actions (intr_on_cancel_repeat)
				 * run again with every re-send. */
				t->wake_due = true;
				intr__timer_kick();
			}
		}
		if (!next || t->resend_at < next)
			next = t->resend_at;
	}
	return next;
}

/* A call of the parent's, in the child after fork(): it is not running
 * here and never will, so it ends now, cancelled (a join returns
 * -ECANCELED, or its own status if it had finished), and its token leaves
 * the tree.  Its finalizers belong to the parent's worker and do not run
 * here.  Its fd, if any, is the parent's open file, which must not be
 * written: the child closes its copy, and intr_task_fd() makes a new one
 * there, readable at once. */
static void end_in_child(struct intr_task *t)
{
	int fd;

	if (t == here || intr__call_on_thread(t) ||
	    atomic_load(&t->done) == 2)
		return;
	fd = atomic_exchange(&t->fd, -1);
	if (fd >= 0)
		close(fd);
	intr__slot_close_locked(t);
	if (t->state != INTR_DONE) {
		if (!atomic_load(&t->tok.reason))
			atomic_store(&t->tok.reason, -ECANCELED);
		t->state = INTR_DONE;
		t->status = atomic_load(&t->tok.reason);
	}
	if (intr__handle_get(t->tok.handle, INTR_H_TOKEN)) {
		intr__token_unlink_locked(&t->tok);
		intr__handle_del(t->tok.handle);
	}
	/* run_interruptible's join takes no lock to take it out (task.c):
	 * its worker would have, and is not here. */
	if (t->own_join)
		intr__handle_del(t->handle);
	t->wakers = NULL;
	atomic_store(&t->wake_busy, 0);
	atomic_store(&t->done, 2);
}

static void end_each_in_child(void *p)
{
	end_in_child(p);
}

void intr__call_await(struct intr_task *t)
{
	t->awaited_outer = awaited;
	/* A handler that forks between the two finds the list whole. */
	atomic_signal_fence(memory_order_seq_cst);
	awaited = t;
}

void intr__call_await_end(struct intr_task *t)
{
	awaited = t->awaited_outer;
}

/* Call c, which this thread runs, goes on in the child (below). */
static bool adopt_in_child(struct intr_task *c, pid_t tid)
{
	int fd;

	fd = atomic_exchange(&c->fd, -1);
	if (fd >= 0)
		close(fd);
	/* The wake-up actions the parent's wake-up thread was running are
	 * the parent's: no one here will say they are done, and the thread
	 * must not wait for them. */
	atomic_store(&c->wake_busy, 0);
	/* Cleared, a cancel in the child signals: that ends any wait, also
	 * one a handler that forked returns to. */
	atomic_store(&c->wslot, INTR_WS_NONE);
	/* And its wake fd is the parent's open file too: a cancel there
	 * would wake a wait here.  The next wait makes one. */
	intr__slot_close_locked(c);
	if (c->state != INTR_RUNNING)
		return false;
	c->tid = tid;
	running_add(c);
	return true;
}

/*
 * In the child after fork(): the only calls that can go on are the one
 * whose user code (body, finalizer, hook) forked, on this very thread, and
 * those it runs inside of, if it is a scope (a pooled body's, another
 * scope's): their bodies go on after it on this thread.  Each goes on as
 * the child's own: a worker completes its call here, where no one joins
 * it, so the eventfd it shares with the parent is closed in the child
 * first (completing would make it readable while the parent's call still
 * runs).  Returns true if a body runs: it needs this process's service
 * threads for its deadlines and re-sends.
 */
bool intr__call_after_fork(void)
{
	struct intr_task *c;
	bool body = false;
	pid_t tid;

	running = NULL;
	self_tid = 0;
	tid = intr__gettid();
	/* The call whose user code forked, and those a scope it runs in
	 * runs inside of: each is on this thread, and goes on here. */
	if (here)
		body |= adopt_in_child(here, tid);
	for (c = intr__current; c; c = c->outer)
		if (c != here)
			body |= adopt_in_child(c, tid);
	intr__handles_each(INTR_H_TASK, end_each_in_child);
	/* And one this thread waits for in a join (a handler forked over
	 * it) whose handle its worker took out already (task.c). */
	for (c = awaited; c; c = c->awaited_outer)
		if (atomic_load(&c->done) != 2)
			end_in_child(c);
	intr__slot_after_fork();
	return body;
}

static void run_finalizers(struct intr_task *t)
{
	struct intr__fin *f;

	/* Last registered first; a finalizer may register more, which then
	 * come next.  Each node is unlinked before it runs: exactly once. */
	while ((f = t->fins)) {
		t->fins = f->next;
		f->fn(f->arg);
		free(f);
	}
}

/* The body's mask, from the mask of the thread that submits the call (the
 * tree lock saved it while binding the call): the same, with the
 * interrupt signal open.  The body receives what the application's own
 * thread would, and what it starts inherits nothing the application did
 * not set. */
void intr__call_set_mask(struct intr_task *t, const sigset_t *submitter)
{
	t->mask = *submitter;
	sigdelset(&t->mask, intr__signo);
}

/* User code other than the body runs on the worker under the submitter's
 * mask with the interrupt signal blocked.  In place it runs under the
 * caller's own mask, which the lock sections set (below). */
static void user_mask(const struct intr_task *t)
{
	sigset_t m = t->mask;

	if (t->host == INTR_HOST_HERE)
		return;
	sigaddset(&m, intr__signo);
	pthread_sigmask(SIG_SETMASK, &m, NULL);
}

pid_t intr__call_tid(void)
{
	if (!self_tid)
		self_tid = intr__gettid();
	return self_tid;
}

/*
 * The tree lock for call t's steps.  A worker has every signal blocked
 * already.  The caller's thread of a scope has its own mask: the lock
 * blocks everything and saves that mask in *ss, and each step's unlock
 * says which mask the thread goes on with.  The start's lock finds every
 * signal blocked still by the bind's section (here.c), the caller's mask
 * in t->mask.
 */
static void call_lock(struct intr_task *t, sigset_t *ss)
{
	if (t->host != INTR_HOST_HERE) {
		intr__tree_lock_blocked();
	} else if (t->held) {
		/* The bind's section left every signal blocked. */
		t->held = false;
		*ss = t->mask;
		intr__tree_lock_blocked();
	} else {
		intr__tree_lock(ss);
	}
}

static void call_unlock(const struct intr_task *t, const sigset_t *m)
{
	if (t->host == INTR_HOST_HERE)
		intr__tree_unlock(m);
	else
		intr__tree_unlock_blocked();
}

/* The TLS of the call a scope runs inside of, kept in the scope's frame
 * and put back after it. */
struct outer_tls {
	struct intr_task *current, *here;
	uint64_t cookie_cur, cookie_prev;
	int in_body, sc_active, sc_deferred;
};

/* The TLS of the call the scope ran inside of, back (in place); a worker
 * has none. */
static void outer_back(struct intr_task *t, const struct outer_tls *o)
{
	intr__current = o->current;
	if (t->host != INTR_HOST_HERE)
		return;
	intr__cookie_cur = o->cookie_cur;
	intr__cookie_prev = t->cookie;
	intr__in_body = o->in_body;
	intr__sc_active = o->sc_active;
	intr__sc_deferred = o->sc_deferred;
}

/*
 * The end step's unlock in place, or the unlink's where the end step held
 * every signal blocked to it (hold).  cur is the mask the body left.  The
 * thread goes on with it, and with the interrupt signal blocked again if
 * the scope opened it: the scope undoes exactly its own change.  If a
 * signal was sent for t, the unlock first opens the signal, so the kernel
 * delivers every instance queued for t before the system call returns;
 * the handler knows them by t's cookie and does nothing with them.
 */
static void here_end_unlock(const struct intr_task *t, const sigset_t *cur,
			    bool sent)
{
	sigset_t flush = *cur, after = *cur;

	if (t->opened)
		sigaddset(&after, intr__signo);
	if (!sent) {
		intr__tree_unlock(&after);
		return;
	}
	sigdelset(&flush, intr__signo);
	intr__tree_unlock(&flush);
	if (sigismember(&after, intr__signo))
		pthread_sigmask(SIG_SETMASK, &after, NULL);
}

/* Run call t on the calling worker, whose signals are all blocked, as
 * they are again when this returns.  The tree lock is only ever taken
 * here with every signal blocked: user code (hooks, the body, wake-ups,
 * finalizers) runs under the submitter's mask, or under any mask it set
 * itself, and the quiet mask comes back before the next lock.  In place
 * (t->host INTR_HOST_HERE) the calling thread is the caller's, with its
 * own mask, which each lock section saves and sets (call_lock,
 * here_end_unlock; the opening comment, "In place"), but for two pairs
 * that hold every signal blocked from the first's lock to the second's
 * unlock: the bind (here.c) and the start, and the end and the unlink
 * when nothing of the user's runs between (hold); the TLS of the call it
 * may run inside of is put back at the end. */
void intr__call_run(struct intr_task *t, pid_t tid)
{
	struct outer_tls o = {
		intr__current, here, intr__cookie_cur, intr__cookie_prev,
		intr__in_body, intr__sc_active, intr__sc_deferred,
	};
	bool in_place = t->host == INTR_HOST_HERE;
	bool skip, user, sent = false, hold = false;
	struct intr__value *values;
	struct intr__waker *wake;
	sigset_t ss, end_ss;
	int busy;

	here = t;
	call_lock(t, &ss);
	skip = atomic_load(&t->tok.reason) != 0;
	if (skip) {
		t->state = INTR_DONE;
		t->status = atomic_load(&t->tok.reason);
	} else {
		t->state = INTR_RUNNING;
		t->tid = tid;
		t->ours_pending = &intr__ours_pending;
		t->cookie = ++next_cookie;
		running_add(t);
	}
	if (in_place && !skip) {
		/* Signals for t may come from the unlock on, with the
		 * caller's thread open to them: the handler must know t
		 * already.  The body's mask is the caller's, signal open. */
		t->outer = o.current;
		t->mask = ss;
		t->opened = sigismember(&ss, intr__signo) == 1;
		sigdelset(&t->mask, intr__signo);
		intr__current = t;
		intr__cookie_prev = intr__cookie_cur;
		intr__cookie_cur = t->cookie;
		/* And the window's flags down: an outer body's, left up by
		 * a handler's siglongjmp out of its window, would have the
		 * handler defer a cancel that comes at the unlock by
		 * blocking the signal for the whole body. */
		intr__sc_active = 0;
		intr__sc_deferred = 0;
		ss = t->mask;
		/* Hooks run with the signal blocked, as on a worker. */
		if (t->ctx_els)
			sigaddset(&ss, intr__signo);
	}
	call_unlock(t, &ss);

	if (!skip) {
		if (!in_place) {
			intr__current = t;
			intr__cookie_prev = intr__cookie_cur;
			intr__cookie_cur = t->cookie;
		}
		if (t->ctx_els) {
			user_mask(t);
			intr__context_install(t);
		}
		/* A handler that left a wrapper's window by siglongjmp in
		 * an earlier body left the window's flags as they were:
		 * the window is not open here, whatever they say. */
		intr__sc_active = 0;
		intr__sc_deferred = 0;
		intr__in_body = 1;
		if (!in_place || t->ctx_els)
			pthread_sigmask(SIG_SETMASK, &t->mask, NULL);
		t->result = t->fn((intr_ctx *)t->ctx, t->arg);
		if (!in_place)
			pthread_sigmask(SIG_SETMASK, &intr__quiet_mask, NULL);
		intr__in_body = 0;
		if (in_place) {
			/* A handler's siglongjmp out of a window in the body
			 * left its flags up: the flush must not defer. */
			intr__sc_active = 0;
			intr__sc_deferred = 0;
		}

		call_lock(t, &ss);
		intr__fault_delay(INTR_DELAY_END_STEP);
		t->state = INTR_DONE;
		t->status = atomic_load(&t->tok.reason);
		sent = atomic_load(&t->sent);
		running_del(t);
		/* A wait left by siglongjmp leaves its slot published; no
		 * canceller looks at it from here on (DONE). */
		atomic_store(&t->wslot, INTR_WS_NONE);
		wake = t->wakers;
		t->wakers = NULL;
		t->wake_due = false;
		/* DONE: no canceller writes the wake fd any more. */
		intr__slot_close_locked(t);
		/* In place with no user code left (no wake-up, finalizer or
		 * hook; no wake-up running on the wake-up thread, and none
		 * can start: DONE), every signal stays blocked to the
		 * unlink's section, whose unlock flushes instead: the pair
		 * costs the mask changes of one.  The thread's cookies stay
		 * the call's until then. */
		hold = in_place && !wake && !t->fins && !t->ctx_els &&
		       !atomic_load(&t->wake_busy);
		if (hold) {
			end_ss = ss;
			intr__tree_unlock_blocked();
		} else if (in_place) {
			here_end_unlock(t, &ss, sent);
		} else {
			intr__tree_unlock_blocked();
		}

		/* Does user code run on this thread after the body: wake-ups,
		 * finalizers, context hooks?  Under the submitter's mask,
		 * and the quiet mask comes back after the last of them. */
		user = (t->status && wake) || t->fins || t->ctx_els;
		if (user)
			user_mask(t);

		/* Wake-up actions not run yet run now if the call was
		 * cancelled; then wait for those the wake-up thread runs. */
		if (t->status)
			intr__wakers_run(wake);
		else
			intr__wakers_drop(wake);
		while ((busy = atomic_load(&t->wake_busy)))
			intr__futex_wait(&t->wake_busy, busy, NULL);

		run_finalizers(t);
		if (!hold)
			outer_back(t, &o);
		intr__context_restore(t);
	} else {
		/* Skipped: only the release hooks, if any, are user code. */
		user = t->ctx_els != NULL;
		if (user)
			user_mask(t);
	}
	intr__context_release(t);
	/* The tree lock needs every signal blocked.  Without user code
	 * since the body, the mask is still the quiet one: no system call. */
	if (user && !in_place)
		pthread_sigmask(SIG_SETMASK, &intr__quiet_mask, NULL);

	/* The call's own token ends with the call. */
	if (hold)
		intr__tree_lock_blocked();
	else
		call_lock(t, &ss);
	intr__token_unlink_locked(&t->tok);
	intr__handle_del(t->tok.handle);
	/* run_interruptible's join takes no lock to take it out (task.c). */
	if (t->own_join)
		intr__handle_del(t->handle);
	values = t->tok.values;
	t->tok.values = NULL;
	if (hold) {
		here_end_unlock(t, &end_ss, sent);
		outer_back(t, &o);
	} else {
		call_unlock(t, &ss);
	}
	here = o.here;
	intr__values_free(values);
}
