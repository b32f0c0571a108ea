/* timerq: one background thread that hands items back when they fall due,
 * plus an optional periodic tick. Items sit in a min-heap ordered by due time
 * (ties keep insertion order). Callbacks run on the timer thread without the
 * queue's lock held, so they may call tq_add. The queue never owns items: it
 * stores and returns the caller's pointers. */
#ifndef ADSYNC_MOCK_TIMERQ_H
#define ADSYNC_MOCK_TIMERQ_H

#include <stdint.h>

typedef struct tq tq;

typedef void (*tq_fire_cb)(void *cls, void *item);
typedef void (*tq_tick_cb)(void *cls);

/* CLOCK_MONOTONIC in milliseconds: the clock of all due times. */
int64_t tq_now_ms(void);

/* Starts the thread. fire gets each item once it is due; tick (may be NULL)
 * runs about every tick_ms. cls is passed to both (borrowed). NULL on
 * failure. */
tq *tq_new(tq_fire_cb fire, tq_tick_cb tick, uint32_t tick_ms, void *cls);

/* Queues item for due_ms (tq_now_ms clock). 0, or -1 when out of memory or
 * stopped (then the item was not queued and fire will not see it). */
int tq_add(tq *q, int64_t due_ms, void *item);

/* Stops and joins the thread; items not yet fired stay queued for tq_take.
 * Must not be called from a callback. Idempotent. */
void tq_stop(tq *q);

/* After tq_stop: removes and returns the earliest pending item, or NULL. */
void *tq_take(tq *q);

/* Stops (if needed) and frees the queue; NULL is a no-op. Items still queued
 * are forgotten, not freed. */
void tq_free(tq *q);

#endif
