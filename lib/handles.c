/* SPDX-License-Identifier: MIT */
/*
 * Registry of live handles (tokens and tasks), an open-addressing hash set
 * keyed by address with linear probing and backward-shift deletion.  Public
 * functions look a handle up here, under the tree lock, before touching it,
 * so a freed, joined or made-up pointer is refused with -EINVAL and never
 * dereferenced.  Look-ups allocate nothing and are async-signal-safe (the
 * cancel path uses them).
 *
 * Nothing here allocates or frees under the tree lock: a thread that holds
 * it waiting for malloc's lock, while a signal handler on the thread that
 * holds malloc's lock waits for the tree lock, would be a deadlock.  The
 * table grows in intr__handles_reserve(), called without the lock: the new
 * table is allocated first, swapped in under the lock, and the old one is
 * freed after.  intr__handle_add() never grows it; past three quarters full
 * it refuses with -ENOSPC, and the caller reserves again.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"

struct slot {
	const void *p;
	int kind;
};

static struct slot *tab;
static size_t cap;	/* a power of two, or 0 */
static size_t used;
/* How many more handles fit before intr__handles_reserve() would grow the
 * table: cap / 2 - used, kept under the lock.  Read without it, as a hint
 * that lets a reserve skip the lock; intr__handle_add() decides. */
static atomic_size_t room;

/* Tree lock held, after used or cap changed. */
static void note_room(void)
{
	atomic_store_explicit(&room, cap / 2 > used ? cap / 2 - used : 0,
			      memory_order_relaxed);
}

static size_t hash(const void *p)
{
	uint64_t x = (uint64_t)(uintptr_t)p;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x;
}

static size_t find(const void *p)
{
	size_t i = hash(p) & (cap - 1);

	while (tab[i].p && tab[i].p != p)
		i = (i + 1) & (cap - 1);
	return i;
}

/* Move every entry of the current table into fresh, which becomes the
 * table; returns the old one.  Tree lock held. */
static struct slot *swap_in(struct slot *fresh, size_t ncap)
{
	struct slot *old = tab;
	size_t ocap = cap, i;

	tab = fresh;
	cap = ncap;
	note_room();
	for (i = 0; i < ocap; i++)
		if (old[i].p)
			tab[find(old[i].p)] = old[i];
	return old;
}

int intr__handles_reserve(unsigned n)
{
	struct slot *fresh, *old;
	size_t ncap, have;
	sigset_t ss;

	/* Room enough, as last seen: no lock.  Should it be gone by the
	 * time the caller adds, the add refuses and the caller comes back. */
	intr__hg_benign(&room);
	if (atomic_load_explicit(&room, memory_order_relaxed) >= n)
		return 0;
	for (;;) {
		intr__tree_lock(&ss);
		have = cap;	/* cap is the lock's: compare with a copy */
		ncap = have ? have : 64;
		while ((used + n) * 2 > ncap)
			ncap *= 2;
		intr__tree_unlock(&ss);
		if (ncap == have)
			return 0;

		fresh = intr__calloc(INTR_SITE_HANDLES, ncap, sizeof(*fresh));
		if (!fresh)
			return -ENOMEM;
		old = fresh;
		intr__tree_lock(&ss);
		if (ncap > cap && (used + n) * 2 <= ncap)
			old = swap_in(fresh, ncap);
		intr__tree_unlock(&ss);
		free(old);	/* the old table, or ours if another won */
		if (old != fresh)
			return 0;
	}
}

int intr__handle_add(const void *p, enum intr__kind kind)
{
	size_t i;

	if ((used + 1) * 4 > cap * 3)
		return -ENOSPC;
	i = find(p);
	if (!tab[i].p) {
		used++;
		note_room();
	}
	tab[i].p = p;
	tab[i].kind = kind;
	return 0;
}

bool intr__handle_live(const void *p, enum intr__kind kind)
{
	size_t i;

	if (!p || !cap)
		return false;
	i = find(p);
	return tab[i].p == p && tab[i].kind == (int)kind;
}

void intr__handle_del(const void *p)
{
	size_t i, j, home;

	if (!p || !cap)
		return;
	i = find(p);
	if (!tab[i].p)
		return;
	tab[i].p = NULL;
	used--;
	note_room();
	/* Shift back the entries of the run after i that probed past it. */
	for (j = (i + 1) & (cap - 1); tab[j].p; j = (j + 1) & (cap - 1)) {
		home = hash(tab[j].p) & (cap - 1);
		if (((j - home) & (cap - 1)) >= ((j - i) & (cap - 1))) {
			tab[i] = tab[j];
			tab[j].p = NULL;
			i = j;
		}
	}
}

/* Call fn on every handle of the given kind that stays live throughout.
 * fn may delete handles but add none; it may then be called again for a
 * handle that a deletion moved, so it must be idempotent.  Used in a child
 * after fork(), where no other thread exists.
 *
 * A deletion shifts entries of its run towards the start of the run, never
 * across an empty slot, and no empty slot is ever filled.  The walk starts
 * at an empty slot, so that no run wraps around its start, and goes
 * backwards: an entry not yet seen lies behind the walk, and can only move
 * further behind it; one already seen may move behind it again, and is seen
 * twice.  (Going forwards, a shift would move entries not yet seen to where
 * the walk has already been.) */
void intr__handles_each(enum intr__kind kind, void (*fn)(void *p))
{
	size_t start, n, i;

	if (!cap)
		return;
	for (start = 0; tab[start].p; start++)
		;	/* never more than three quarters full */
	for (n = cap - 1; n > 0; n--) {
		i = (start + n) & (cap - 1);
		if (tab[i].p && tab[i].kind == (int)kind)
			fn((void *)tab[i].p);
	}
}

/* Unloading (config.c): free the table if no handle is left in it.  A live
 * token keeps it, so a late intr_token_cancel() still finds a table. */
void intr__handles_free(void)
{
	sigset_t ss;
	struct slot *old = NULL;

	intr__tree_lock(&ss);
	if (!used) {
		old = tab;
		tab = NULL;
		cap = 0;
		note_room();
	}
	intr__tree_unlock(&ss);
	free(old);
}
