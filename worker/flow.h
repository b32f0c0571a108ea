/* flow: what a held job does, from pop to its recorded outcome (see
 * flow.c). The process module hands it each popped element and asks it,
 * from housekeeping and shutdown, to move waiting work on; the flow asks
 * the scheduler for API calls, the client registry for clients and the
 * store for writes, and calls ctx_kick whenever a job ended. */
#ifndef ADSYNC_WORKER_FLOW_H
#define ADSYNC_WORKER_FLOW_H

#include <stddef.h>

#include "client.h"
#include "ctx.h"
#include "scheduler.h"

typedef struct flow flow;

/* x, s and clients are borrowed and must outlive the flow. NULL on OOM. */
flow *fl_new(wctx *x, sched *s, cl_set *clients);
/* Teardown: every job is dropped as it stands (the process hands them back
 * through Redis first); the memory goes once libuv closed the timer. NULL
 * is a no-op. */
void fl_free(flow *f);

/* Takes ownership of elem (malloc'd, len bytes and a NUL). Validates,
 * counts the delivery and starts the job, or buries it. -1 when it could
 * not even be held (out of memory): the element stays in the processing
 * list, for the process's orphan check to hand back. */
int fl_start(flow *f, char *elem, size_t len);
/* Sends every batch of synced outcomes still waiting for its timer
 * (shutdown calls it before it waits for the store). */
void fl_flush_batches(flow *f);
/* Housekeeping: lists that waited for the page budget go on once it has
 * room again, and jobs a step failed for are handed back once nothing of
 * theirs is in flight. */
void fl_housekeeping(flow *f);
/* Jobs popped whose first request is not queued yet. */
size_t fl_starting(const flow *f);
/* The orphan check: whether a held job, not yet matched, has exactly these
 * bytes. claimed has one byte per held job (x->jobs_held) and records the
 * matches, so each job accounts for one element. */
int fl_match_held(const flow *f, const char *elem, size_t len, unsigned char *claimed);

#endif
