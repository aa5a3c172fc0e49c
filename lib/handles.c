/* SPDX-License-Identifier: MIT */
/*
 * Registry of live handles: tokens and tasks.
 *
 * The intr_token * and intr_task * values the API hands out (and the
 * intr_ctx * of a call, which is not registered: see intr__call_of) are
 * not addresses.  Each is a number made once from a 64-bit counter and
 * never made again, which this registry maps to the object it names.  A
 * freed, joined or made-up handle is not in the map, so it is refused with
 * -EINVAL and nothing is reached through it, whatever the allocator has
 * done with the memory since: a stale copy can never name a newer object.
 *
 * A handle's value is the counter's value times an odd constant, modulo
 * 2^61 (a bijection: distinct counts give distinct values), shifted left
 * by three, with the kind (odd: token 1, task 3, ctx 5) in the low bits.
 * So no aligned address is ever a handle, small integers are not either,
 * and the kind is checked before the table is.  2^61 handles, at a
 * billion a second, last 73 years; where pointers have 32 bits the values
 * wrap after 2^29 handles, and a value still in use is then skipped.
 *
 * The map is an open-addressing hash table with linear probing and
 * backward-shift deletion, under the tree lock.  Look-ups allocate nothing
 * and are async-signal-safe (the cancel path uses them).
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
	uintptr_t key;		/* 0: empty */
	void *obj;
};

static struct slot *tab;
static size_t cap;	/* a power of two, or 0 */
static size_t used;
static uint64_t next_id;	/* the last count handed out */
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

static size_t hash(uintptr_t key)
{
	uint64_t x = (uint64_t)key;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x;
}

static size_t find(uintptr_t key)
{
	size_t i = hash(key) & (cap - 1);

	while (tab[i].key && tab[i].key != key)
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
		if (old[i].key)
			tab[find(old[i].key)] = old[i];
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

int intr__handle_insert(uintptr_t key, void *obj)
{
	size_t i;

	if ((used + 1) * 4 > cap * 3)
		return -ENOSPC;
	i = find(key);
	if (!tab[i].key) {
		used++;
		note_room();
	}
	tab[i].key = key;
	tab[i].obj = obj;
	return 0;
}

int intr__handle_add(void *obj, enum intr__kind kind, uintptr_t *out)
{
	uintptr_t key;
	size_t i;

	if ((used + 1) * 4 > cap * 3)
		return -ENOSPC;
	do {
		key = (uintptr_t)(++next_id * 0x9e3779b97f4a7c15ull) << 3 |
		      (uintptr_t)kind;
		i = find(key);
	} while (tab[i].key);	/* only once the values wrapped */
	tab[i].key = key;
	tab[i].obj = obj;
	used++;
	note_room();
	*out = key;
	return 0;
}

uintptr_t intr__handle_make(enum intr__kind kind)
{
	return (uintptr_t)(++next_id * 0x9e3779b97f4a7c15ull) << 3 |
	       (uintptr_t)kind;
}

void *intr__handle_get(uintptr_t key, enum intr__kind kind)
{
	size_t i;

	if ((key & INTR_H_KIND_MASK) != (uintptr_t)kind || !cap)
		return NULL;
	i = find(key);
	return tab[i].key ? tab[i].obj : NULL;
}

void intr__handle_del(uintptr_t key)
{
	size_t i, j, home;

	if (!key || !cap)
		return;
	i = find(key);
	if (!tab[i].key)
		return;
	tab[i].key = 0;
	used--;
	note_room();
	/* Shift back the entries of the run after i that probed past it. */
	for (j = (i + 1) & (cap - 1); tab[j].key; j = (j + 1) & (cap - 1)) {
		home = hash(tab[j].key) & (cap - 1);
		if (((j - home) & (cap - 1)) >= ((j - i) & (cap - 1))) {
			tab[i] = tab[j];
			tab[j].key = 0;
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
 * across an empty slot, and no empty slot is ever filled.  Counting slots
 * from an empty one, so that no run wraps around, the walk goes from the
 * highest to the lowest: an entry not yet seen lies below the walk's
 * position, and a shift only moves it lower still; one already seen may
 * move below it, and is then seen twice.  (Going upwards, a shift would
 * move entries not yet seen to slots the walk has passed.) */
void intr__handles_each(enum intr__kind kind, void (*fn)(void *obj))
{
	size_t start, n, i;

	if (!cap)
		return;
	for (start = 0; tab[start].key; start++)
		;	/* never more than three quarters full */
	for (n = cap - 1; n > 0; n--) {
		i = (start + n) & (cap - 1);
		if ((tab[i].key & INTR_H_KIND_MASK) == (uintptr_t)kind)
			fn(tab[i].obj);
	}
}

/* Unloading (lifecycle.c): free the table if no handle is left in it.  A live
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
