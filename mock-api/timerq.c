/* timerq: a timer thread over a min-heap (see timerq.h). */
#include "timerq.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

typedef struct tq_entry {
  int64_t due;
  uint64_t seq;  /* insertion order, breaks ties */
  void *item;
} tq_entry;

struct tq {
  pthread_mutex_t mu;
  pthread_cond_t cond;  /* on CLOCK_MONOTONIC */
  pthread_t thread;
  int running;          /* thread started and not yet joined */
  int stopping;
  tq_entry *heap;
  size_t n, cap;
  uint64_t seq;
  tq_fire_cb fire;
  tq_tick_cb tick;
  uint32_t tick_ms;
  int64_t next_tick;
  void *cls;
};

int64_t tq_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- heap -------------------------------------------------------------------- */

static int tq_before(const tq_entry *a, const tq_entry *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void tq_swap(tq_entry *a, tq_entry *b) {
  tq_entry t = *a;
  *a = *b;
  *b = t;
}

static void tq_sift_up(tq *q, size_t i) {
  while (i > 0 && tq_before(&q->heap[i], &q->heap[(i - 1) / 2])) {
    tq_swap(&q->heap[i], &q->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
}

static void tq_sift_down(tq *q, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < q->n && tq_before(&q->heap[l], &q->heap[m]))
      m = l;
    if (r < q->n && tq_before(&q->heap[r], &q->heap[m]))
      m = r;
    if (m == i)
      return;
    tq_swap(&q->heap[i], &q->heap[m]);
    i = m;
  }
}

/* Removes and returns the top item; the heap must not be empty. Locked. */
static void *tq_pop(tq *q) {
  void *item = q->heap[0].item;
  q->heap[0] = q->heap[--q->n];
  tq_sift_down(q, 0);
  return item;
}

/* ---- thread ------------------------------------------------------------------ */

/* Sleeps until wake_ms (INT64_MAX = until signalled). Locked. */
static void tq_wait_until(tq *q, int64_t wake_ms) {
  if (wake_ms == INT64_MAX) {
    pthread_cond_wait(&q->cond, &q->mu);
    return;
  }
  struct timespec ts = {.tv_sec = wake_ms / 1000, .tv_nsec = (long)(wake_ms % 1000) * 1000000L};
  pthread_cond_timedwait(&q->cond, &q->mu, &ts);
}

/* Run a callback with the lock released; locked on entry and exit. */
static void tq_unlocked_fire(tq *q, void *item) {
  pthread_mutex_unlock(&q->mu);
  q->fire(q->cls, item);
  pthread_mutex_lock(&q->mu);
}

static void tq_unlocked_tick(tq *q) {
  pthread_mutex_unlock(&q->mu);
  q->tick(q->cls);
  pthread_mutex_lock(&q->mu);
}

static void *tq_main(void *arg) {
  tq *q = arg;
  pthread_mutex_lock(&q->mu);
  while (!q->stopping) {
    int64_t now = tq_now_ms();
    if (q->n && q->heap[0].due <= now) {
      tq_unlocked_fire(q, tq_pop(q));
      continue;
    }
    if (q->tick && now >= q->next_tick) {
      q->next_tick = now + q->tick_ms;
      tq_unlocked_tick(q);
      continue;
    }
    int64_t wake = q->tick ? q->next_tick : INT64_MAX;
    if (q->n && q->heap[0].due < wake)
      wake = q->heap[0].due;
    tq_wait_until(q, wake);
  }
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

/* ---- API --------------------------------------------------------------------- */

static int tq_init_sync(tq *q) {
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0)
    return -1;
  int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rc == 0)
    rc = pthread_cond_init(&q->cond, &attr);
  pthread_condattr_destroy(&attr);
  if (rc != 0)
    return -1;
  if (pthread_mutex_init(&q->mu, NULL) != 0) {
    pthread_cond_destroy(&q->cond);
    return -1;
  }
  return 0;
}

tq *tq_new(tq_fire_cb fire, tq_tick_cb tick, uint32_t tick_ms, void *cls) {
  tq *q = calloc(1, sizeof *q);
  if (!q)
    return NULL;
  q->fire = fire;
  q->tick = tick;
  q->tick_ms = tick_ms ? tick_ms : 1000;
  q->next_tick = tq_now_ms() + q->tick_ms;
  q->cls = cls;
  if (tq_init_sync(q) != 0) {
    free(q);
    return NULL;
  }
  if (pthread_create(&q->thread, NULL, tq_main, q) != 0) {
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cond);
    free(q);
    return NULL;
  }
  q->running = 1;
  return q;
}

/* Doubles the heap when full. Locked. */
static int tq_grow(tq *q) {
  if (q->n < q->cap)
    return 0;
  size_t cap = q->cap ? q->cap * 2 : 64;
  tq_entry *h = realloc(q->heap, cap * sizeof *h);
  if (!h)
    return -1;
  q->heap = h;
  q->cap = cap;
  return 0;
}

int tq_add(tq *q, int64_t due_ms, void *item) {
  pthread_mutex_lock(&q->mu);
  int rc = (q->stopping || tq_grow(q) != 0) ? -1 : 0;
  if (rc == 0) {
    q->heap[q->n] = (tq_entry){.due = due_ms, .seq = q->seq++, .item = item};
    tq_sift_up(q, q->n++);
    if (q->heap[0].item == item)
      pthread_cond_signal(&q->cond);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

void tq_stop(tq *q) {
  pthread_mutex_lock(&q->mu);
  q->stopping = 1;
  pthread_cond_signal(&q->cond);
  pthread_mutex_unlock(&q->mu);
  if (q->running) {
    pthread_join(q->thread, NULL);
    q->running = 0;
  }
}

void *tq_take(tq *q) {
  pthread_mutex_lock(&q->mu);
  void *item = q->n ? tq_pop(q) : NULL;
  pthread_mutex_unlock(&q->mu);
  return item;
}

void tq_free(tq *q) {
  if (!q)
    return;
  tq_stop(q);
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cond);
  free(q->heap);
  free(q);
}
