/* sinkwriter: where the sink's batches go. sink.c drains the outbox — claim
 * a batch, hand it to a writer, acknowledge it with its dead letters — and
 * knows nothing of the store behind; a writer (sink_pg.c: PostgreSQL) reads
 * the claimed entries, writes them, and says which it had to refuse. A
 * second sink is a second writer, not a second copy of the claim and
 * acknowledgement logic. */
#ifndef ADSYNC_WORKER_SINKWRITER_H
#define ADSYNC_WORKER_SINKWRITER_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"

/* A batch between its claim and its acknowledgement. The driver owns the
 * entries and the dead letters; the writer hangs its own view on rows. */
typedef struct sink_batch {
    size_t n;                    /* entries claimed */
    char **entries;              /* as claimed (NUL-terminated) */
    size_t *lens;
    char **dead;                 /* dead letters (JSON, malloc'd), room for n */
    size_t ndead;
    size_t written;              /* rows the writer committed */
    int full;                    /* claimed as many as allowed: claim again at once */
    void *rows;                  /* the writer's (take/release) */
} sink_batch;

/* How a writer tells the driver that something changed. */
typedef struct sink_host {
    void (*step)(void *ud);                    /* an answer came: decide what is next */
    void (*wake)(void *ud);                    /* (re)connected: drop any wait, decide again */
    void (*retry_in)(void *ud, uint64_t ms);   /* nothing to do before ms */
    void *ud;
} sink_host;

/* How far a writer is from taking batches. */
typedef enum { SW_DOWN, SW_CONNECTED, SW_USABLE } sw_state;

typedef struct sink_writer_ops {
    const char *name;            /* "postgres": logs */
    /* Starts connecting. host is copied; x is borrowed. NULL on OOM. */
    void *(*open)(wctx *x, const sink_host *host);
    sw_state (*state)(const void *w);
    /* 1 when a batch may be written now; else 0, and the writer is on its
     * way (connecting, checking its table) or waits for an answer. */
    int (*prepare)(void *w);
    /* Reads b's entries; an unreadable one becomes a dead letter. -1 OOM. */
    int (*take)(void *w, sink_batch *b);
    /* Writes the next part of b; host->step when it is answered. */
    void (*write)(void *w, sink_batch *b);
    /* Nothing of b is left to write: it can be acknowledged. */
    int (*finished)(const sink_batch *b);
    void (*release)(sink_batch *b);   /* frees b->rows */
    /* Drops the connection; callbacks still due return quietly. */
    void (*close)(void *w);
    /* Frees it, once no callback of it can still be due (a loop turn
     * after close). */
    void (*destroy)(void *w);
} sink_writer_ops;

/* Adds a dead letter to b (takes letter: an entry the writer refused).
 * -1 when b has no room: each entry is written or buried once. */
static inline int sink_batch_bury(sink_batch *b, char *letter)
{
    if (b->ndead >= b->n)
        return -1;
    b->dead[b->ndead++] = letter;
    return 0;
}

extern const sink_writer_ops sink_pg_writer;

#endif
